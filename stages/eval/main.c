/* bin/eval — VBench-style and T2V-CompBench-style scores of a set of videos, exact on the
 * built-in world (DESIGN.md "Evaluation"), in the catalogue, as files and as a report.
 *
 *   eval --videos DIR --prompts FILE            generated videos named PROMPTID-N.EXT (N: the
 *                                               sample index or its seed) against their prompts
 *   eval --model NAME [--checkpoint STEP] --suite S [--prompts FILE]
 *                                               samples a sampling stage recorded (catalogue
 *                                               `samples`), prompts from pipelines/prompts/S.jsonl
 *   eval --truth CORPUS/truth.jsonl [--select clean|all|FLAW]
 *                                               the source videos of a synth corpus, each against
 *                                               the truth of its own (manifest) caption
 *   eval --dataset NAME [--split train|val|all] the curated clips of a dataset (frame shards),
 *                                               against their captions' truth when a sidecar is
 *                                               known (--truth, else the curated root's), else
 *                                               on the quality dimensions only
 *   eval --compare A B ...                      runs (labels or run ids) side by side, each
 *                                               against the first, with 95% intervals
 *   eval --make-prompts DIR                     writes the prompt suites (pipelines/prompts)
 *
 * Every run: scores (cached per video in the catalogue, so a rerun scores only new videos), then
 * writes WS/eval/LABEL/{results.json, summary.json, scores.csv, videos.csv, bars.png, *.gif,
 * report.html} and catalogue rows (runs, eval_runs, scores). --shuffle-truth SEED scores each
 * video against another video's truth (the chance control).
 * Exit status: 0 done, 1 failure, 2 bad options or inputs.
 */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/catalogue.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/tensor.h"
#include "stages/eval/eval.h"

/* ---- truth sidecar (bin/synth's truth.jsonl) ------------------------------------------------ */

typedef struct {
  int64_t videoid;
  char *path;
  scene sc;
  int clean;
  int64_t wrong_from;     /* -1, or the clip whose captions the manifest carries */
  char flaws[128];        /* "flicker,shot_cut" */
  char *caption;          /* what the manifest says (long) */
} truth_row;

typedef struct {
  int n;
  truth_row *r;
} truth_file;

static void truth_free(truth_file *t) {
  for (int i = 0; i < t->n; i++) free(t->r[i].path), free(t->r[i].caption);
  free(t->r);
  memset(t, 0, sizeof *t);
}

static int truth_load(const char *path, truth_file *out) {
  memset(out, 0, sizeof *out);
  char *text = NULL;
  size_t len = 0;
  if (fs_read_all(path, &text, &len) != TB_OK) return err_set("truth %s: %s", path, err_get());
  int cap = 0, line = 0, bad = 0;
  for (size_t pos = 0; pos < len;) {
    size_t end = pos;
    while (end < len && text[end] != '\n') end++;
    line++;
    size_t a = pos;
    pos = end + 1;
    if (end == a) continue;
    json_value *v = json_parse(text + a, end - a, NULL);
    truth_row t = {0};
    t.wrong_from = -1;
    const char *p = NULL;
    const json_value *sv = v ? json_get(v, "scene") : NULL;
    if (!v || json_get_int64(v, "videoid", &t.videoid) != TB_OK ||
        json_get_string(v, "path", &p) != TB_OK || !sv || scene_json_get(sv, &t.sc) != TB_OK) {
      log_error("%s:%d: %s", path, line, err_get());
      json_free(v);
      bad++;
      continue;
    }
    t.path = xstrdup(p);
    json_get_bool(v, "clean", &t.clean);
    const char *cap_s = NULL;
    if (json_get_string(v, "manifest_caption", &cap_s) == TB_OK) t.caption = xstrdup(cap_s);
    const json_value *fl = json_get(v, "flaws");
    size_t fpos = 0;
    for (size_t i = 0; fl && fl->type == JSON_ARRAY && i < fl->count; i++) {
      const char *type = NULL;
      if (json_get_string(&fl->items[i], "type", &type) != TB_OK) continue;
      fpos += (size_t)snprintf(t.flaws + fpos, fpos < sizeof t.flaws ? sizeof t.flaws - fpos : 0,
                               "%s%s", fpos ? "," : "", type);
      if (fpos >= sizeof t.flaws) fpos = sizeof t.flaws - 1;
      if (strcmp(type, "wrong_caption") == 0) json_get_int64(&fl->items[i], "from", &t.wrong_from);
    }
    json_free(v);
    if (out->n == cap) {
      cap = cap ? 2 * cap : 256;
      out->r = xrealloc(out->r, (size_t)cap * sizeof *out->r);
    }
    out->r[out->n++] = t;
  }
  free(text);
  if (bad) {
    truth_free(out);
    return err_set("truth %s: %d bad line(s) (each named above)", path, bad);
  }
  return TB_OK;
}

static const truth_row *truth_by_id(const truth_file *t, int64_t id) {
  if (id >= 0 && id < t->n && t->r[id].videoid == id) return &t->r[id];
  for (int i = 0; i < t->n; i++)
    if (t->r[i].videoid == id) return &t->r[i];
  return NULL;
}

static const truth_row *truth_by_path(const truth_file *t, const char *path) {
  for (int i = 0; i < t->n; i++)
    if (strcmp(t->r[i].path, path) == 0) return &t->r[i];
  return NULL;
}

/* The truth of what a clip's manifest caption says: its own scene, or (wrong caption) the
 * scene of the clip the caption came from. A shot cut's caption describes the first scene. */
static const scene *truth_caption_scene(const truth_file *t, const truth_row *r) {
  if (r->wrong_from >= 0) {
    const truth_row *o = truth_by_id(t, r->wrong_from);
    if (o) return &o->sc;
  }
  return &r->sc;
}

static int truth_selected(const truth_row *r, const char *select) {
  if (!select || strcmp(select, "all") == 0) return 1;
  if (strcmp(select, "clean") == 0) return r->clean;
  /* a flaw name: clips that carry it */
  const char *p = r->flaws;
  size_t n = strlen(select);
  while ((p = strstr(p, select)) != NULL) {
    if ((p == r->flaws || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
    p += n;
  }
  return 0;
}

/* ---- inputs ----------------------------------------------------------------------------------- */

static void item_set_truth_scene(eval_item *e, const scene *s) {
  memset(&e->truth, 0, sizeof e->truth);
  world_spec_from_scene(s, &e->truth);
  e->have_truth = 1;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Videos named PROMPTID-N.EXT in dir against ps. */
static int items_from_folder(const char *dir, const eval_prompts *ps, eval_items *it) {
  DIR *d = opendir(dir);
  if (!d) return err_set("--videos %s: cannot open the folder", dir);
  char **names = NULL;
  int n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue;
    if (n == cap) cap = cap ? 2 * cap : 256, names = xrealloc(names, (size_t)cap * sizeof *names);
    names[n++] = xstrdup(de->d_name);
  }
  closedir(d);
  qsort(names, (size_t)n, sizeof *names, cmp_str);
  int unmatched = 0;
  for (int i = 0; i < n; i++) {
    char stem[PATH_MAX];
    snprintf(stem, sizeof stem, "%s", names[i]);
    char *dot = strrchr(stem, '.');
    if (dot) *dot = 0;
    char *dash = strrchr(stem, '-');
    char *endp = NULL;
    long long num = dash ? strtoll(dash + 1, &endp, 10) : -1;
    int pi = -1;
    if (dash && endp && *endp == 0 && endp != dash + 1) {
      *dash = 0;
      pi = eval_prompts_find(ps, stem);
    }
    if (pi < 0) {
      log_warn("eval: %s/%s: no prompt of %s matches (names are PROMPTID-N.mp4); skipped", dir,
               names[i], ps->path);
      unmatched++;
      continue;
    }
    const eval_prompt *p = &ps->p[pi];
    int64_t seed = -1;
    if (num >= 0 && num < p->nseeds) seed = p->seeds[num];
    for (int k = 0; k < p->nseeds && seed < 0; k++)
      if (p->seeds[k] == num) seed = num;
    eval_item *e = eval_items_add(it);
    char full[PATH_MAX];
    fs_join(full, sizeof full, dir, names[i]);
    e->path = xstrdup(full);
    e->name = xstrdup(names[i]);
    e->prompt_key = xstrdup(p->id);
    e->prompt_text = xstrdup(p->prompt);
    e->truth = p->truth;
    e->have_truth = 1;
    e->dims = p->dims;
    e->seed = seed;
  }
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
  if (unmatched) log_warn("eval: %d file(s) in %s matched no prompt", unmatched, dir);
  return TB_OK;
}

static int items_from_truth(const char *truth_path, const char *root, const char *select,
                            eval_items *it) {
  truth_file t;
  if (truth_load(truth_path, &t) != TB_OK) return TB_ERR;
  char rootbuf[PATH_MAX];
  if (!root) root = fs_dirname(rootbuf, sizeof rootbuf, truth_path);
  uint32_t all = eval_dims_applicable();
  for (int i = 0; i < t.n; i++) {
    const truth_row *r = &t.r[i];
    if (!truth_selected(r, select)) continue;
    eval_item *e = eval_items_add(it);
    char full[PATH_MAX];
    fs_join(full, sizeof full, root, r->path);
    e->path = xstrdup(full);
    e->name = xstrdup(r->path);
    e->prompt_key = xstrdup(r->path);
    e->prompt_text = r->caption ? xstrdup(r->caption) : NULL;
    item_set_truth_scene(e, truth_caption_scene(&t, r));
    e->dims = all;
    e->seed = -1;
    e->clip_id = 0;
  }
  truth_free(&t);
  return TB_OK;
}

static int eval_first_text_cb(void *ctx, int ncol, const char *const *names,
                              const char *const *v) {
  (void)ncol, (void)names;
  snprintf((char *)ctx, PATH_MAX, "%s", v[0] ? v[0] : "");
  return 1;
}

static int items_from_dataset(catalogue *cat, const char *ws, const char *name, const char *split,
                              const char *truth_path, const char *select, eval_items *it) {
  catalogue_dataset ds;
  int r = catalogue_dataset_lookup(cat, name, &ds);
  if (r != 1) return r == 0 ? err_set("--dataset %s: no such dataset in the catalogue", name) : TB_ERR;
  int sp = -1;
  if (split && strcmp(split, "train") == 0) sp = CATALOGUE_SPLIT_TRAIN;
  else if (split && strcmp(split, "val") == 0) sp = CATALOGUE_SPLIT_VAL;
  int64_t *ids = NULL, n = 0;
  int rc = catalogue_dataset_clips(cat, ds.id, sp, NULL, &ids, &n);
  int64_t dsid = ds.id;
  catalogue_dataset_clear(&ds);
  if (rc != TB_OK) return TB_ERR;
  truth_file t = {0};
  int have_truth = 0;
  if (truth_path && fs_exists(truth_path)) {
    if (truth_load(truth_path, &t) != TB_OK) {
      free(ids);
      return TB_ERR;
    }
    have_truth = 1;
  } else {
    log_warn("eval: no truth sidecar for dataset %s (--truth): quality dimensions only", name);
  }
  uint32_t qual = 0;
  for (int d = 0; d < EVAL_QUALITY_COUNT; d++) qual |= EVAL_BIT(d);
  for (int64_t i = 0; i < n; i++) {
    catalogue_tensor ct;
    if (catalogue_tensor_find(cat, "frames", ids[i], dsid, -1, NULL, &ct) != 1) {
      log_warn("eval: dataset %s: clip %lld has no frames tensor; skipped", name,
               (long long)ids[i]);
      continue;
    }
    catalogue_clip cl;
    if (catalogue_clip_get(cat, ids[i], &cl) != 1) {
      catalogue_tensor_clear(&ct);
      continue;
    }
    /* the source's path, to find its truth */
    char q[64];
    snprintf(q, sizeof q, "%lld", (long long)cl.source_id);
    const char *params[1] = {q};
    char srcpath[PATH_MAX] = "";
    catalogue_query(cat, "SELECT path FROM sources WHERE id = CAST(?1 AS INTEGER)", 1, params,
                    eval_first_text_cb, srcpath, NULL);
    eval_item *e = NULL;
    const truth_row *tr = NULL;
    if (have_truth) tr = truth_by_path(&t, srcpath);
    if (have_truth && tr && !truth_selected(tr, select)) {
      catalogue_tensor_clear(&ct), catalogue_clip_clear(&cl);
      continue;
    }
    e = eval_items_add(it);
    char full[PATH_MAX];
    fs_join(full, sizeof full, ws, ct.path);
    e->path = xstrdup(full);
    char nm[PATH_MAX + 32];
    snprintf(nm, sizeof nm, "clip %lld (%s)", (long long)ids[i], srcpath);
    e->name = xstrdup(nm);
    snprintf(nm, sizeof nm, "clip-%lld", (long long)ids[i]);
    e->prompt_key = xstrdup(nm);
    e->prompt_text = cl.caption_long ? xstrdup(cl.caption_long) : NULL;
    e->offset = ct.offset;
    e->nbytes = ct.nbytes;
    e->T = ct.ndim == 4 ? (int)ct.shape[0] : 0;
    e->H = ct.ndim == 4 ? (int)ct.shape[1] : 0;
    e->W = ct.ndim == 4 ? (int)ct.shape[2] : 0;
    e->fps = cl.fps;
    e->clip_id = ids[i];
    e->seed = -1;
    if (tr) {
      item_set_truth_scene(e, truth_caption_scene(&t, tr));
      e->dims = eval_dims_applicable();
    } else {
      e->dims = qual;
    }
    catalogue_tensor_clear(&ct);
    catalogue_clip_clear(&cl);
  }
  free(ids);
  truth_free(&t);
  return TB_OK;
}

static int items_from_samples(catalogue *cat, const char *ws, int64_t model_id, int64_t ck_id,
                              const char *suite, const eval_prompts *ps, eval_items *it) {
  catalogue_sample *sl = NULL;
  int64_t n = 0;
  if (catalogue_samples_list(cat, model_id, ck_id, suite, &sl, &n) != TB_OK) return TB_ERR;
  int missing = 0;
  for (int64_t i = 0; i < n; i++) {
    int pi = eval_prompts_find(ps, sl[i].prompt_id);
    if (pi < 0) {
      log_warn("eval: sample %lld: prompt \"%s\" is not in %s; skipped", (long long)sl[i].id,
               sl[i].prompt_id, ps->path);
      missing++;
      continue;
    }
    const eval_prompt *p = &ps->p[pi];
    eval_item *e = eval_items_add(it);
    char full[PATH_MAX];
    fs_join(full, sizeof full, ws, sl[i].path);
    e->path = xstrdup(full);
    e->name = xstrdup(sl[i].path);
    e->prompt_key = xstrdup(p->id);
    e->prompt_text = xstrdup(p->prompt);
    e->truth = p->truth;
    e->have_truth = 1;
    e->dims = p->dims;
    e->seed = sl[i].seed;
    e->sample_id = sl[i].id;
  }
  catalogue_samples_free(sl, n);
  if (n == 0) return err_set("eval: no samples of that model/checkpoint in suite %s", suite);
  (void)missing;
  return TB_OK;
}

/* Permutes the truths among the items (a derangement where possible): the chance control. */
static void shuffle_truth(eval_items *it, uint64_t seed) {
  int n = it->n;
  if (n < 2) return;
  scene_rng r;
  scene_rng_seed(&r, seed, 0, SCENE_STREAM_SCENE);
  int *perm = xmalloc(sizeof(int) * (size_t)n);
  for (int i = 0; i < n; i++) perm[i] = i;
  /* Sattolo's algorithm: a single cycle, so no item keeps its own truth */
  for (int i = n - 1; i > 0; i--) {
    int j = scene_rng_int(&r, i);
    int t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  world_spec *sp = xmalloc(sizeof *sp * (size_t)n);
  int *have = xmalloc(sizeof(int) * (size_t)n);
  uint32_t *dims = xmalloc(sizeof(uint32_t) * (size_t)n);
  char **text = xmalloc(sizeof(char *) * (size_t)n);
  for (int i = 0; i < n; i++)
    sp[i] = it->v[i].truth, have[i] = it->v[i].have_truth, dims[i] = it->v[i].dims,
    text[i] = it->v[i].prompt_text;
  for (int i = 0; i < n; i++) {
    it->v[i].truth = sp[perm[i]];
    it->v[i].have_truth = have[perm[i]];
    it->v[i].dims = dims[perm[i]];
    it->v[i].prompt_text = text[perm[i]];
  }
  free(perm), free(sp), free(have), free(dims), free(text);
}

/* ---- catalogue rows --------------------------------------------------------------------------- */

static int write_scores(catalogue *cat, const eval_items *it, const eval_summary *s,
                        int64_t run, int64_t model_id, int64_t ck_id) {
  if (catalogue_begin(cat) != TB_OK) return TB_ERR;
  int rc = TB_OK;
  for (int d = 0; d < EVAL_DIM_COUNT && rc == TB_OK; d++) {
    if (s->count[d] == 0) continue;
    catalogue_score sc = {.run_id = run, .model_id = model_id, .checkpoint_id = ck_id,
                          .suite = d >= EVAL_CB_FIRST ? "compbench" : "vbench",
                          .dimension = eval_dim_name((eval_dim)d), .value = s->raw[d],
                          .count = s->count[d]};
    if (d < EVAL_VBENCH_COUNT && !isnan(s->totals.norm[d]))
      sc.has_normalised = 1, sc.normalised = s->totals.norm[d];
    rc = catalogue_score_insert(cat, &sc, NULL);
  }
  const char *tn[3] = {"quality", "semantic", "total"};
  double tv[3] = {s->totals.quality, s->totals.semantic, s->totals.total};
  for (int k = 0; k < 3 && rc == TB_OK; k++) {
    if (isnan(tv[k])) continue;
    catalogue_score sc = {.run_id = run, .model_id = model_id, .checkpoint_id = ck_id,
                          .suite = "vbench", .dimension = tn[k], .value = tv[k],
                          .has_normalised = 1, .normalised = tv[k]};
    rc = catalogue_score_insert(cat, &sc, NULL);
  }
  /* per prompt: the mean over its samples (what --compare pairs) */
  for (int i = 0; i < it->n && rc == TB_OK; i++) {
    const eval_item *e = &it->v[i];
    if (e->state != 1) continue;
    int first = 1;
    for (int j = 0; j < i; j++)
      if (it->v[j].state == 1 && strcmp(it->v[j].prompt_key, e->prompt_key) == 0) first = 0;
    if (!first) continue;
    for (int d = 0; d < EVAL_DIM_COUNT && rc == TB_OK; d++) {
      double sum = 0;
      int64_t cnt = 0;
      for (int j = i; j < it->n; j++) {
        const eval_item *o = &it->v[j];
        if (o->state != 1 || o->weight[d] <= 0 || strcmp(o->prompt_key, e->prompt_key) != 0)
          continue;
        sum += o->value[d];
        cnt++;
      }
      if (cnt == 0) continue;
      catalogue_score sc = {.run_id = run, .model_id = model_id, .checkpoint_id = ck_id,
                            .suite = d >= EVAL_CB_FIRST ? "compbench" : "vbench",
                            .dimension = eval_dim_name((eval_dim)d), .prompt = e->prompt_key,
                            .clip_id = e->clip_id, .value = sum / (double)cnt, .count = cnt,
                            .sample_id = cnt == 1 ? e->sample_id : 0};
      rc = catalogue_score_insert(cat, &sc, NULL);
    }
  }
  if (rc != TB_OK) {
    catalogue_rollback(cat);
    return TB_ERR;
  }
  return catalogue_commit(cat);
}

/* ---- main ------------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  char *workspace = NULL, *videos = NULL, *prompts = NULL, *truth = NULL, *root = NULL,
       *select = NULL, *dataset = NULL, *split = NULL, *model = NULL, *checkpoint = NULL,
       *suite = NULL, *label = NULL, *out = NULL, *make_prompts = NULL;
  int workers = 2, max_frames = 0, rescore = 0, compare = 0, per_group = 24, heldout_n = 8,
      samples = 5, resamples = 2000;
  long long shuffle = -1, seed = 1;
  arg_opt opts[] = {
      {"workspace", ARG_STR, &workspace, "DIR", "workspace (default $TURBO_WORKSPACE or runs/default)"},
      {"videos", ARG_STR, &videos, "DIR", "folder of generated videos named PROMPTID-N.mp4"},
      {"prompts", ARG_STR, &prompts, "FILE", "prompt suite (pipelines/prompts/*.jsonl)"},
      {"truth", ARG_STR, &truth, "FILE", "synth truth sidecar: score its source videos (or the dataset's clips against it)"},
      {"root", ARG_STR, &root, "DIR", "folder the truth file's paths are relative to (default: its folder)"},
      {"select", ARG_STR, &select, "WHICH", "with --truth/--dataset: clean, all or a flaw name (flicker, static, shot_cut, low_quality, wrong_caption, watermark)"},
      {"dataset", ARG_STR, &dataset, "NAME", "score the curated clips of this dataset"},
      {"split", ARG_STR, &split, "train|val|all", "dataset split (default all)"},
      {"model", ARG_STR, &model, "NAME", "score this model's samples (catalogue)"},
      {"checkpoint", ARG_STR, &checkpoint, "STEP|latest|any", "which checkpoint's samples (default any)"},
      {"suite", ARG_STR, &suite, "NAME", "prompt suite of the samples (default vbench)"},
      {"label", ARG_STR, &label, "NAME", "name of this run (for --compare); default from the input"},
      {"out", ARG_STR, &out, "DIR", "output folder (default WS/eval/LABEL)"},
      {"workers", ARG_INT, &workers, "N", "worker processes"},
      {"max-frames", ARG_INT, &max_frames, "N", "score at most N frames per video (0: all)"},
      {"rescore", ARG_FLAG, &rescore, NULL, "ignore cached per-video results"},
      {"shuffle-truth", ARG_I64, &shuffle, "SEED", "score each video against another's truth (chance control)"},
      {"compare", ARG_FLAG, &compare, NULL, "compare the runs named as arguments (labels or run ids)"},
      {"resamples", ARG_INT, &resamples, "N", "bootstrap resamples for --compare intervals"},
      {"make-prompts", ARG_STR, &make_prompts, "DIR", "write the prompt suites into DIR and exit"},
      {"per-group", ARG_INT, &per_group, "N", "--make-prompts: prompts per group (public suites)"},
      {"heldout-per-group", ARG_INT, &heldout_n, "N", "--make-prompts: prompts per group (held-out suite)"},
      {"samples", ARG_INT, &samples, "N", "--make-prompts: samples (seeds) per prompt"},
      {"seed", ARG_I64, &seed, "S", "--make-prompts: generator seed"},
      {0}};
  int pos = args_parse(argc, argv, "eval [options] [--compare A B ...]",
                       "VBench / T2V-CompBench scores of videos, exact on the built-in world.", opts);
  if (pos < 0) return 2;
  if (make_prompts) {
    if (eval_prompts_generate(make_prompts, (uint64_t)seed, per_group, heldout_n, samples) !=
        TB_OK) {
      log_error("eval: %s", err_get());
      return 1;
    }
    return 0;
  }
  const char *ws = catalogue_workspace_dir(workspace);
  if (compare) {
    int n = argc - pos;
    if (n < 2) {
      log_error("eval --compare: name two or more runs (labels or run ids)");
      return 2;
    }
    catalogue *cat = catalogue_open_workspace(ws, CATALOGUE_OPEN_READONLY);
    if (!cat) {
      log_error("eval: %s", err_get());
      return 1;
    }
    char odir[PATH_MAX];
    if (out) snprintf(odir, sizeof odir, "%s", out);
    else snprintf(odir, sizeof odir, "%s/eval/compare", ws);
    int rc = eval_compare(cat, n, argv + pos, odir, resamples, (uint64_t)seed);
    if (rc != TB_OK) log_error("eval --compare: %s", err_get());
    catalogue_close(cat);
    return rc == TB_OK ? 0 : 1;
  }
  int modes = (videos != NULL) + (dataset != NULL) + (model != NULL) + (truth && !dataset);
  if (modes != 1) {
    log_error("eval: choose one input: --videos DIR --prompts FILE, --truth FILE, --dataset "
              "NAME or --model NAME (see --help)");
    return 2;
  }
  if (videos && !prompts) {
    log_error("eval --videos: --prompts FILE is required (the prompts the videos answer)");
    return 2;
  }
  if (workers < 1 || workers > 64) {
    log_error("eval: --workers %d: 1..64", workers);
    return 2;
  }
  if (split && strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "all")) {
    log_error("eval: --split %s: train, val or all", split);
    return 2;
  }
  catalogue *cat = catalogue_open_workspace(ws, 0);
  if (!cat) {
    log_error("eval: %s", err_get());
    return 1;
  }
  int64_t run = 0;
  catalogue_run_begin(cat, "eval", argc, argv, &run);
  double t0 = time_now();
  eval_items it = {0};
  eval_prompts ps = {0};
  int rc = TB_OK, status = 1;
  int64_t model_id = 0, ck_id = -1;
  const char *input = NULL, *suite_name = NULL, *source = NULL;
  char labelbuf[256], pbuf[PATH_MAX];
  if (model && !suite) suite = "vbench";
  if (videos || model) {
    if (!prompts) {
      snprintf(pbuf, sizeof pbuf, "pipelines/prompts/%s.jsonl", suite);
      prompts = pbuf;
    }
    int bad = 0;
    if (eval_prompts_load(prompts, &ps, &bad) != TB_OK) {
      log_error("eval: %s", err_get());
      status = 2;
      rc = TB_ERR;
      goto done;
    }
  }
  if (videos) {
    input = "folder", suite_name = ps.suite, source = videos;
    rc = items_from_folder(videos, &ps, &it);
    char b[PATH_MAX];
    snprintf(b, sizeof b, "%s", videos);
    size_t l = strlen(b);
    while (l > 1 && b[l - 1] == '/') b[--l] = 0;
    const char *base = strrchr(b, '/');
    snprintf(labelbuf, sizeof labelbuf, "%s-%s", base ? base + 1 : b, ps.suite);
  } else if (model) {
    input = "samples", suite_name = suite, source = model;
    catalogue_model m;
    int r = catalogue_model_lookup(cat, model, &m);
    if (r != 1) {
      log_error("eval: --model %s: %s", model, r == 0 ? "no such model in the catalogue" : err_get());
      status = 2;
      rc = TB_ERR;
      goto done;
    }
    model_id = m.id;
    catalogue_model_clear(&m);
    if (checkpoint && strcmp(checkpoint, "any") != 0) {
      if (strcmp(checkpoint, "latest") == 0) {
        catalogue_checkpoint c;
        if (catalogue_checkpoint_latest(cat, model_id, &c) == 1) ck_id = c.id;
        catalogue_checkpoint_clear(&c);
      } else {
        char q[64];
        snprintf(q, sizeof q, "%lld", (long long)model_id);
        const char *params[2] = {q, checkpoint};
        char idtxt[PATH_MAX] = "";
        catalogue_query(cat, "SELECT id FROM checkpoints WHERE model_id = CAST(?1 AS INTEGER)"
                        " AND step = CAST(?2 AS INTEGER)", 2, params, eval_first_text_cb, idtxt,
                        NULL);
        ck_id = idtxt[0] ? strtoll(idtxt, NULL, 10) : -2;
      }
      if (ck_id < 0) {
        log_error("eval: --checkpoint %s: model %s has no such checkpoint", checkpoint, model);
        status = 2;
        rc = TB_ERR;
        goto done;
      }
    }
    rc = items_from_samples(cat, ws, model_id, ck_id, suite, &ps, &it);
    snprintf(labelbuf, sizeof labelbuf, "%s%s%s-%s", model, checkpoint ? "@" : "",
             checkpoint ? checkpoint : "", suite);
  } else if (dataset) {
    input = "dataset", suite_name = dataset, source = dataset;
    char tbuf[PATH_MAX];
    if (!truth) {
      /* the data root of the last curate scan: WS/curate.root */
      char rf[PATH_MAX], *rtext = NULL;
      size_t rl = 0;
      fs_join(rf, sizeof rf, ws, "curate.root");
      if (fs_read_all(rf, &rtext, &rl) == TB_OK) {
        while (rl && (rtext[rl - 1] == '\n' || rtext[rl - 1] == ' ')) rtext[--rl] = 0;
        fs_join(tbuf, sizeof tbuf, rtext, "truth.jsonl");
        truth = tbuf;
      }
      free(rtext);
    }
    rc = items_from_dataset(cat, ws, dataset, split, truth, select, &it);
    snprintf(labelbuf, sizeof labelbuf, "dataset-%s%s%s", dataset, split ? "-" : "",
             split ? split : "");
  } else {
    input = "folder", suite_name = "corpus", source = truth;
    rc = items_from_truth(truth, root, select, &it);
    snprintf(labelbuf, sizeof labelbuf, "corpus%s%s", select ? "-" : "", select ? select : "");
  }
  if (rc != TB_OK) {
    log_error("eval: %s", err_get());
    status = 2;
    goto done;
  }
  if (it.n == 0) {
    log_error("eval: no videos to score");
    status = 2;
    rc = TB_ERR;
    goto done;
  }
  if (shuffle >= 0) {
    shuffle_truth(&it, (uint64_t)shuffle);
    size_t l = strlen(labelbuf);
    snprintf(labelbuf + l, sizeof labelbuf - l, "-shuffled");
  }
  if (!label) label = labelbuf;
  eval_items_keys(&it);
  eval_score_opts so = {.workers = workers, .max_frames = max_frames, .rescore = rescore};
  int n_new = 0, n_cached = 0, n_failed = 0;
  if (eval_score_items(&it, cat, &so, &n_new, &n_cached, &n_failed) != TB_OK) {
    log_error("eval: %s", err_get());
    rc = TB_ERR;
    goto done;
  }
  eval_summary sum;
  eval_summarise(&it, &sum);
  char odir[PATH_MAX];
  if (out) snprintf(odir, sizeof odir, "%s", out);
  else snprintf(odir, sizeof odir, "%s/eval/%s", ws, label);
  eval_run_info ri = {.label = label, .input = input, .suite = suite_name, .source = source,
                      .out_dir = odir, .run_id = run, .n_new = n_new, .n_cached = n_cached,
                      .n_failed = n_failed, .seconds = time_now() - t0,
                      .shuffled = shuffle >= 0};
  if (write_scores(cat, &it, &sum, run, model_id, ck_id > 0 ? ck_id : 0) != TB_OK) {
    log_error("eval: scores: %s", err_get());
    rc = TB_ERR;
    goto done;
  }
  if (eval_write_outputs(&it, &sum, &ri, max_frames) != TB_OK) {
    log_error("eval: outputs: %s", err_get());
    rc = TB_ERR;
    goto done;
  }
  char rel[PATH_MAX + 32];
  if (!out) snprintf(rel, sizeof rel, "eval/%s/results.json", label);
  else snprintf(rel, sizeof rel, "%s/results.json", odir);
  catalogue_eval_run er = {.run_id = run, .label = label, .input = input, .suite = suite_name,
                           .model_id = model_id, .checkpoint_id = ck_id > 0 ? ck_id : 0,
                           .videos = it.n - n_failed, .results = rel};
  if (catalogue_eval_run_set(cat, &er) != TB_OK) log_warn("eval: %s", err_get());
  log_info("eval: %s: %d video(s) (%d new, %d cached, %d unreadable) in %.1f s; total %.4f, "
           "quality %.4f, semantic %.4f; report %s/report.html",
           label, it.n, n_new, n_cached, n_failed, time_now() - t0, sum.totals.total,
           sum.totals.quality, sum.totals.semantic, odir);
  status = 0;
done:
  catalogue_run_end(cat, run, rc == TB_OK ? CATALOGUE_RUN_OK : CATALOGUE_RUN_FAILED,
                    rc == TB_OK ? NULL : err_get());
  catalogue_close(cat);
  eval_items_free(&it);
  eval_prompts_free(&ps);
  return status;
}

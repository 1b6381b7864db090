/* stages/pretrain/reward_train.c — see reward_train.h.
 *
 * A run: options → catalogue run row → the dataset's train and val clips → the model (fresh,
 * or resumed from WORKSPACE/models/reward-NAME.state.safetensors) → steps of AdamW (warm-up then
 * cosine decay, gradient clipping at 1) with a training state every --save-every steps → the
 * checkpoint WORKSPACE/models/reward-NAME.safetensors with the model's config and the dataset
 * it learned from → catalogue model, checkpoint, metric rows → the evaluation on val.
 * Rerun after it finished: nothing to do (--force trains again from scratch).
 */
#include "stages/pretrain/reward_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/args.h"
#include "common/caption.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/scene.h"
#include "common/tensor.h"
#include "kernels/device.h"
#include "kernels/ops.h"

/* ---- data ------------------------------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

void reward_clips_free(reward_clips *d) {
  if (!d) return;
  for (int64_t i = 0; i < d->n; i++) {
    free(d->cap_long[i]);
    free(d->cap_short[i]);
  }
  for (int i = 0; i < d->nfiles; i++) safetensors_close(d->files[i]);
  free(d->files);
  free(d->clip_id);
  free(d->frames);
  free(d->cap_long);
  free(d->cap_short);
  memset(d, 0, sizeof *d);
}

/* The open shard at path (relative to the workspace), opened once. */
static safetensors_file *shard(reward_clips *d, char **paths, const char *ws, const char *rel) {
  for (int i = 0; i < d->nfiles; i++)
    if (strcmp(paths[i], rel) == 0) return d->files[i];
  char full[4096];
  fs_join(full, sizeof full, ws, rel);
  safetensors_file *f = NULL;
  if (safetensors_open(full, &f) != TB_OK) return NULL;
  d->files = xrealloc(d->files, sizeof *d->files * (size_t)(d->nfiles + 1));
  paths[d->nfiles] = xstrdup(rel);
  d->files[d->nfiles++] = f;
  return f;
}

int reward_clips_load(catalogue *cat, const char *workspace, const char *name, int split,
                      reward_clips *out, int64_t *dataset_id) {
  memset(out, 0, sizeof *out);
  catalogue_dataset ds;
  int found = catalogue_dataset_lookup(cat, name, &ds);
  if (found != 1)
    return found == TB_ERR ? TB_ERR
                           : err_set("no dataset '%s' in the catalogue: build it with bin/curate "
                                     "--recipe pipelines/recipes/%s.recipe", name, name);
  int ready = strcmp(ds.status, "ready") == 0;
  *dataset_id = ds.id;
  catalogue_dataset_clear(&ds);
  if (!ready) return err_set("dataset '%s' is not ready (rebuild it with bin/curate --recipe)", name);
  int64_t *ids = NULL, n = 0;
  if (catalogue_dataset_clips(cat, *dataset_id, split, NULL, &ids, &n) != TB_OK) return TB_ERR;
  qsort(ids, (size_t)n, sizeof *ids, cmp_i64);
  int64_t w = 0;
  for (int64_t i = 0; i < n; i++)
    if (i == 0 || ids[i] != ids[i - 1]) ids[w++] = ids[i];
  n = w;
  out->clip_id = ids;
  out->frames = xcalloc((size_t)(n ? n : 1), sizeof *out->frames);
  out->cap_long = xcalloc((size_t)(n ? n : 1), sizeof *out->cap_long);
  out->cap_short = xcalloc((size_t)(n ? n : 1), sizeof *out->cap_short);
  char **paths = xcalloc((size_t)(n ? n : 1), sizeof *paths);
  int rc = TB_OK;
  for (int64_t i = 0; i < n && rc == TB_OK; i++) {
    catalogue_tensor t;
    int f = catalogue_tensor_find(cat, "frames", ids[i], *dataset_id, 0, NULL, &t);
    if (f != 1) {
      rc = f == TB_ERR ? TB_ERR : err_set("clip %lld of dataset '%s' has no frames", (long long)ids[i], name);
      break;
    }
    safetensors_file *sf = shard(out, paths, workspace, t.path);
    char tname[32];
    snprintf(tname, sizeof tname, "clip_%lld", (long long)ids[i]);
    const safetensors_entry *e = sf ? safetensors_find(sf, tname) : NULL;
    if (!sf) rc = TB_ERR;
    else if (!e || e->dtype != DTYPE_U8 || e->ndim != 4 || e->shape[3] != 3)
      rc = err_set("%s: tensor %s missing or not (T, H, W, 3) u8", t.path, tname);
    else if (out->n > 0 && (e->shape[0] != out->T || e->shape[1] != out->H || e->shape[2] != out->W))
      rc = err_set("%s: %s has another geometry than the dataset's first clip", t.path, tname);
    if (rc == TB_OK) {
      char hex[17];
      snprintf(hex, sizeof hex, "%016llx", (unsigned long long)checksum64(e->data, (size_t)(e->end - e->begin)));
      if (t.checksum && strcmp(t.checksum, hex) != 0)
        rc = err_set("%s: %s has checksum %s, the catalogue says %s (the shard changed: rebuild "
                     "the dataset)", t.path, tname, hex, t.checksum);
    }
    if (rc == TB_OK) {
      out->T = (int)e->shape[0], out->H = (int)e->shape[1], out->W = (int)e->shape[2];
      out->frames[i] = e->data;
      catalogue_clip cl;
      if (catalogue_clip_get(cat, ids[i], &cl) == 1) {
        out->cap_long[i] = xstrdup(cl.caption_long ? cl.caption_long : "");
        out->cap_short[i] = xstrdup(cl.caption_short && cl.caption_short[0] ? cl.caption_short
                                    : cl.caption_long ? cl.caption_long : "");
        catalogue_clip_clear(&cl);
      } else {
        rc = err_set("clip %lld is not in the catalogue", (long long)ids[i]);
      }
      out->n = i + 1;
    }
    catalogue_tensor_clear(&t);
  }
  for (int i = 0; i < out->nfiles; i++) free(paths[i]);
  free(paths);
  if (rc != TB_OK) reward_clips_free(out);
  return rc;
}

void reward_clips_frame(const reward_clips *d, int64_t i, int t, float *out) {
  const uint8_t *f = d->frames[i] + (size_t)t * d->H * d->W * 3;
  size_t S = (size_t)d->H * d->W;
  for (size_t p = 0; p < S; p++)
    for (int ch = 0; ch < 3; ch++) out[ch * S + p] = f[p * 3 + ch] * (1.0f / 255.0f);
}

void reward_clips_frame_aug(const reward_clips *d, int64_t i, int t, const reward_aug *a, float *out) {
  const uint8_t *f = d->frames[i] + (size_t)t * d->H * d->W * 3;
  int H = d->H, W = d->W;
  size_t S = (size_t)H * W;
  for (int y = 0; y < H; y++) {
    int sy = y - a->dy;
    sy = sy < 0 ? 0 : sy >= H ? H - 1 : sy;
    for (int x = 0; x < W; x++) {
      int sx = (a->flip ? W - 1 - x : x) - a->dx;
      sx = sx < 0 ? 0 : sx >= W ? W - 1 : sx;
      const uint8_t *p = f + ((size_t)sy * W + sx) * 3;
      for (int ch = 0; ch < 3; ch++) out[ch * S + (size_t)y * W + x] = p[ch] * (1.0f / 255.0f);
    }
  }
}

void reward_aug_caption(const reward_aug *a, const char *caption, char *out, size_t n) {
  if (!a->flip || caption_mirror(caption, out, n) == TB_ERR) snprintf(out, n, "%s", caption);
}

/* ---- random numbers, negatives ---------------------------------------------------------------- */

uint64_t rt_u64(uint64_t *s) { return hash_mix64(*s += 0x9E3779B97F4A7C15ull); }
double rt_uniform(uint64_t *s) { return (double)(rt_u64(s) >> 11) * (1.0 / 9007199254740992.0); }
int rt_int(uint64_t *s, int n) { return n <= 1 ? 0 : (int)(rt_u64(s) % (uint64_t)n); }
reward_aug reward_aug_draw(uint64_t *rng, int max_shift) {
  reward_aug a;
  a.flip = rt_uniform(rng) < 0.5;
  a.dx = rt_int(rng, 2 * max_shift + 1) - max_shift;
  a.dy = rt_int(rng, 2 * max_shift + 1) - max_shift;
  return a;
}

double rt_normal(uint64_t *s) {
  double u1 = rt_uniform(s), u2 = rt_uniform(s);
  return sqrt(-2.0 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2);
}

static int value_count(caption_edit_kind k) {
  switch (k) {
  case CAPTION_EDIT_DIRECTION: return SCENE_MOTION_COUNT;
  case CAPTION_EDIT_SPEED: return SCENE_SPEED_COUNT;
  case CAPTION_EDIT_RELATION: return SCENE_REL_COUNT;
  case CAPTION_EDIT_COLOUR: return SCENE_COLOUR_COUNT;
  case CAPTION_EDIT_SHAPE: return SCENE_SHAPE_COUNT;
  case CAPTION_EDIT_PAN: return SCENE_PAN_COUNT;
  default: return 0;
  }
}

int rt_negative(uint64_t *rng, const char *caption, unsigned kinds, char *out, size_t n) {
  int ks[CAPTION_EDIT_COUNT], nk = 0;
  for (int k = 0; k < CAPTION_EDIT_COUNT; k++)
    if ((kinds & (1u << k)) && caption_sites(caption, (caption_edit_kind)k) > 0) ks[nk++] = k;
  for (int tries = 0; tries < 12 && nk > 0; tries++) {
    caption_edit_kind k = (caption_edit_kind)ks[rt_int(rng, nk)];
    int site = rt_int(rng, caption_sites(caption, k));
    int value = rt_int(rng, value_count(k));
    if (k == CAPTION_EDIT_RELATION && value == SCENE_REL_NONE) continue;
    if (k == CAPTION_EDIT_PAN && value == SCENE_PAN_NONE) continue;
    if (caption_edit(caption, k, site, value, out, n) == 1) return 1;
  }
  return 0;
}

/* ---- metrics, evaluation helpers -------------------------------------------------------------- */

void reward_metrics_add(reward_metrics *m, const char *name, double v) {
  if (m->n >= REWARD_MAX_METRICS) return;
  snprintf(m->name[m->n], sizeof m->name[0], "%s", name);
  m->value[m->n++] = v;
}

int reward_rank_variants(reward_model *m, nn_ctx *c, const float *frames, int F,
                         const char *const *variants, int nv, float *scores) {
  int64_t per = (int64_t)F * 3 * m->cfg.size * m->cfg.size;
  float *x = xmalloc(sizeof(float) * (size_t)(per * nv));
  for (int v = 0; v < nv; v++) memcpy(x + v * per, frames, sizeof(float) * (size_t)per);
  int rc = reward_score(m, c, x, nv, F, variants, scores, NULL);
  free(x);
  return rc;
}

int reward_argmax(const float *v, int n) {
  int b = 0;
  for (int i = 1; i < n; i++)
    if (v[i] > v[b]) b = i;
  return b;
}

#define EMBED_CHUNK 64

int reward_embed_frames(reward_model *m, nn_ctx *c, const float *x, int64_t N, float *out) {
  int video = m->cfg.kind == REWARD_VIDEO, E = m->cfg.embed;
  int64_t per = (int64_t)(video ? m->cfg.frames : 1) * 3 * m->cfg.size * m->cfg.size;
  for (int64_t i0 = 0; i0 < N; i0 += EMBED_CHUNK) {
    int64_t n = N - i0 < EMBED_CHUNK ? N - i0 : EMBED_CHUNK;
    nn_ctx_reset(c);
    nn_ctx_set_grad(c, 0);
    nn_var in = nn_input(c, x + i0 * per, n * per, 0);
    nn_var e = video ? reward_video_forward(m, c, in, n, 1) : reward_frame_forward(m, c, in, n, 1);
    device_memcpy_d2h(out + i0 * E, nn_data(c, e), sizeof(float) * (size_t)(n * E));
  }
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, 1);
  return TB_OK;
}

int reward_embed_texts(reward_model *m, nn_ctx *c, const char *const *texts, int64_t N, float *out) {
  int E = m->cfg.embed;
  for (int64_t i0 = 0; i0 < N; i0 += EMBED_CHUNK) {
    int n = (int)(N - i0 < EMBED_CHUNK ? N - i0 : EMBED_CHUNK);
    text_batch tb;
    if (text_batch_make(&m->text, texts + i0, n, 0, &tb) != TB_OK) return TB_ERR;
    nn_ctx_reset(c);
    nn_ctx_set_grad(c, 0);
    nn_var e = reward_text_forward(m, c, &tb, 1);
    device_memcpy_d2h(out + i0 * E, nn_data(c, e), sizeof(float) * (size_t)n * E);
    text_batch_free(&tb);
  }
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, 1);
  return TB_OK;
}

void reward_retrieval(const float *img, const float *txt, const int *same, int64_t N, int E,
                      const char *name, reward_metrics *out) {
  int64_t r1 = 0, r5 = 0, r1c = 0;
  for (int64_t q = 0; q < N; q++) {
    double sq = 0;
    for (int d = 0; d < E; d++) sq += (double)txt[q * E + d] * img[q * E + d];
    int64_t better = 0, best = q;
    double bs = sq;
    for (int64_t j = 0; j < N; j++) {
      if (j == q) continue;
      double s = 0;
      for (int d = 0; d < E; d++) s += (double)txt[q * E + d] * img[j * E + d];
      better += s > sq;
      if (s > bs) bs = s, best = j;
    }
    r1 += better == 0;
    r5 += better < 5;
    r1c += same[best] == same[q];
  }
  char k[48];
  snprintf(k, sizeof k, "%s_r1", name);
  reward_metrics_add(out, k, (double)r1 / (double)N);
  snprintf(k, sizeof k, "%s_r5", name);
  reward_metrics_add(out, k, (double)r5 / (double)N);
  snprintf(k, sizeof k, "%s_r1_caption", name);
  reward_metrics_add(out, k, (double)r1c / (double)N);
  snprintf(k, sizeof k, "%s_chance_r1", name);
  reward_metrics_add(out, k, 1.0 / (double)N);
}

int reward_variant_accuracy(reward_model *m, nn_ctx *c, const reward_clips *d, reward_input_fn in,
                            int F, int kind, int long_caption, int one_object, const char *name,
                            reward_metrics *out) {
  int64_t per = (int64_t)F * 3 * m->cfg.size * m->cfg.size;
  float *x = xmalloc(sizeof(float) * (size_t)per), sc[16];
  char var[16][512];
  const char *vp[16];
  int64_t hit = 0, n = 0;
  double chance = 0;
  int nvals = value_count((caption_edit_kind)kind);
  /* for the prior baseline: each clip's own value and the values its variants offered */
  int *own_v = xmalloc(sizeof(int) * (size_t)(d->n ? d->n : 1));
  unsigned *offered = xmalloc(sizeof(unsigned) * (size_t)(d->n ? d->n : 1));
  for (int64_t i = 0; i < d->n; i++) {
    const char *cap = long_caption ? d->cap_long[i] : d->cap_short[i];
    if (caption_sites(cap, (caption_edit_kind)kind) < 1) continue;
    if (one_object && caption_sites(cap, CAPTION_EDIT_COLOUR) != 1) continue;
    int cur = caption_site_value(cap, (caption_edit_kind)kind, 0);
    if (kind == CAPTION_EDIT_DIRECTION && cur == SCENE_MOTION_STILL) continue;
    int nv = 0, own = -1;
    unsigned mask = 0;
    for (int v = 0; v < nvals && nv < 16; v++) {
      if (kind == CAPTION_EDIT_DIRECTION && v == SCENE_MOTION_STILL) continue;
      if (kind == CAPTION_EDIT_RELATION && v == SCENE_REL_NONE) continue;
      if (kind == CAPTION_EDIT_PAN && v == SCENE_PAN_NONE) continue;
      if (v == cur) {
        snprintf(var[nv], sizeof var[nv], "%s", cap);
        own = nv;
      } else if (caption_edit(cap, (caption_edit_kind)kind, 0, v, var[nv], sizeof var[nv]) != 1) {
        continue;
      }
      vp[nv] = var[nv];
      mask |= 1u << v;
      nv++;
    }
    if (own < 0 || nv < 2) continue;
    in(d, i, F, x);
    if (reward_rank_variants(m, c, x, F, vp, nv, sc) != TB_OK) {
      free(x);
      free(own_v);
      free(offered);
      return TB_ERR;
    }
    hit += reward_argmax(sc, nv) == own;
    chance += 1.0 / nv;
    own_v[n] = cur, offered[n] = mask;
    n++;
  }
  /* prior baseline: always the value most frequent among these clips' own captions (of those
   * a clip's variants offer), i.e. the best a caption-only guess that never looks at the
   * frames can do here */
  int64_t count[32] = {0}, prior_hit = 0;
  for (int64_t k = 0; k < n; k++) count[own_v[k]]++;
  for (int64_t k = 0; k < n; k++) {
    int best = -1;
    for (int v = 0; v < nvals; v++)
      if ((offered[k] >> v & 1u) && (best < 0 || count[v] > count[best])) best = v;
    prior_hit += best == own_v[k];
  }
  free(x);
  free(own_v);
  free(offered);
  char k[48];
  reward_metrics_add(out, name, n ? (double)hit / (double)n : 0.0);
  snprintf(k, sizeof k, "%s_n", name);
  reward_metrics_add(out, k, (double)n);
  snprintf(k, sizeof k, "%s_chance", name);
  reward_metrics_add(out, k, n ? chance / (double)n : 0.0);
  snprintf(k, sizeof k, "%s_prior", name);
  reward_metrics_add(out, k, n ? (double)prior_hit / (double)n : 0.0);
  return TB_OK;
}

/* ---- the driver -------------------------------------------------------------------------------- */

static void model_paths(const char *ws, const char *name, char *ckpt, char *state, size_t n) {
  char rel[128];
  snprintf(rel, sizeof rel, "models/reward-%s.safetensors", name);
  fs_join(ckpt, n, ws, rel);
  snprintf(rel, sizeof rel, "models/reward-%s.state.safetensors", name);
  fs_join(state, n, ws, rel);
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

static char *file_checksum(const char *path) {
  char *data;
  size_t len;
  if (fs_read_all(path, &data, &len) != TB_OK) return NULL;
  char *hex = xmalloc(17);
  snprintf(hex, 17, "%016llx", (unsigned long long)checksum64(data, len));
  free(data);
  return hex;
}

int reward_train_main(const reward_recipe *r, int argc, char **argv) {
  const char *mname = reward_kind_name(r->kind);
  char *workspace = NULL, *dataset = "tailored";
  int steps = r->steps, batch = r->batch, threads = 0, save_every = 100, force = 0, quick = 0;
  int eval_only = 0;
  long long seed = 1;
  double lr = r->lr;
  arg_opt opts[] = {
      {"workspace", ARG_STR, &workspace, "DIR", "workspace (default $TURBO_WORKSPACE or runs/default)"},
      {"dataset", ARG_STR, &dataset, "NAME", "curated dataset to learn from (default tailored)"},
      {"steps", ARG_INT, &steps, "N", "optimiser steps"},
      {"batch", ARG_INT, &batch, "N", "clips per step"},
      {"lr", ARG_F64, &lr, "LR", "peak learning rate (AdamW, warm-up then cosine decay)"},
      {"seed", ARG_I64, &seed, "N", "initialisation and data-order seed"},
      {"threads", ARG_INT, &threads, "N", "op threads (default: all cores)"},
      {"save-every", ARG_INT, &save_every, "N", "steps between training states (resume points)"},
      {"quick", ARG_FLAG, &quick, NULL, "a small model and few steps (tests, the quick pipeline)"},
      {"force", ARG_FLAG, &force, NULL, "train again from scratch even when a checkpoint exists"},
      {"eval-only", ARG_FLAG, &eval_only, NULL, "evaluate the trained checkpoint on val, no training"},
      {0}};
  char usage[64];
  snprintf(usage, sizeof usage, "pretrain --model %s [options]", mname);
  int pos = args_parse(argc, argv, usage, "Trains a reward model of the built-in world.", opts);
  if (pos < 0) return 2;
  if (pos < argc) {
    log_error("unexpected argument '%s'", argv[pos]);
    return 2;
  }
  if (steps < 1 || batch < 2 || lr <= 0 || save_every < 1) {
    log_error("--steps >= 1, --batch >= 2, --lr > 0 and --save-every >= 1 are required");
    return 2;
  }
  const char *ws = catalogue_workspace_dir(workspace);
  ops_set_num_threads(threads);
  catalogue *cat = catalogue_open_workspace(ws, 0);
  if (!cat) {
    log_error("%s", err_get());
    return 1;
  }
  int64_t run = 0;
  catalogue_run_begin(cat, "pretrain", argc, argv, &run);
  char ckpt[4096], state[4096], dir[4096];
  model_paths(ws, mname, ckpt, state, sizeof ckpt);
  fs_join(dir, sizeof dir, ws, "models");
  fs_mkdir_p(dir);
  reward_clips train, val;
  memset(&train, 0, sizeof train);
  memset(&val, 0, sizeof val);
  int64_t dsid = 0, dsid2 = 0;
  reward_model m;
  memset(&m, 0, sizeof m);
  nn_ctx *c = nn_ctx_new();
  nn_adamw opt;
  memset(&opt, 0, sizeof opt);
  int rc = TB_OK, trained = 0;
  double t_train = 0;
  if (reward_clips_load(cat, ws, dataset, CATALOGUE_SPLIT_TRAIN, &train, &dsid) != TB_OK ||
      reward_clips_load(cat, ws, dataset, CATALOGUE_SPLIT_VAL, &val, &dsid2) != TB_OK) {
    rc = TB_ERR;
    goto out;
  }
  if (train.n < 2 || val.n < 1) {
    rc = err_set("dataset %s has %lld train and %lld val clips: too few to train on", dataset,
                 (long long)train.n, (long long)val.n);
    goto out;
  }
  log_info("%s: dataset %s (id %lld): %lld train, %lld val clips of %dx%dx%d", mname, dataset,
           (long long)dsid, (long long)train.n, (long long)val.n, train.T, train.H, train.W);
  /* the model: the defaults, smaller with --quick */
  reward_config cfg = reward_config_default(r->kind);
  if (quick) {
    cfg.widths[0] = 8, cfg.widths[1] = 16, cfg.widths[2] = 16, cfg.widths[3] = 16;
    cfg.text.layers = 1, cfg.text.dim = 32, cfg.text.heads = 2, cfg.hidden = 16;
    if (cfg.stem) cfg.stem = 8;
    if (r->kind != REWARD_QUALITY) cfg.embed = 32;
  }
  if (train.H != cfg.size || train.W != cfg.size) {
    rc = err_set("dataset %s has %dx%d frames; the %s model reads %dx%d", dataset, train.H, train.W,
                 mname, cfg.size, cfg.size);
    goto out;
  }
  int have_ckpt = access(ckpt, R_OK) == 0;
  if ((have_ckpt && !force) || eval_only) {
    if (!have_ckpt) {
      rc = err_set("%s: no checkpoint to evaluate (train it first)", ckpt);
      goto out;
    }
    if ((rc = reward_model_load(&m, ckpt, 1)) != TB_OK) goto out;
    log_info("%s: %s exists: nothing to train (--force trains again)", mname, ckpt);
  } else {
    int nw;
    const char *const *words = scene_caption_vocabulary(&nw);
    text_vocab v;
    if ((rc = text_vocab_init(&v, words, nw)) != TB_OK) goto out;
    rc = reward_model_create(&m, &cfg, &v);
    text_vocab_free(&v);
    if (rc != TB_OK) goto out;
    reward_model_init(&m, (uint64_t)seed);
    nn_adamw_init(&opt, m.params.total, 0.9f, 0.999f, 1e-8f, 0.01f);
    nn_train_pos tp = {0, 0, hash_mix64((uint64_t)seed ^ 0x5EEDull)};
    if (force) unlink(state);
    if (access(state, R_OK) == 0) {
      if (nn_train_load(state, &m.params, &opt, NULL, &tp) != TB_OK) {
        log_warn("%s: cannot resume from %s (%s); starting again", mname, state, err_get());
        reward_model_init(&m, (uint64_t)seed);
        nn_adamw_free(&opt);
        nn_adamw_init(&opt, m.params.total, 0.9f, 0.999f, 1e-8f, 0.01f);
        tp = (nn_train_pos){0, 0, hash_mix64((uint64_t)seed ^ 0x5EEDull)};
      } else {
        log_info("%s: resuming from %s at step %lld", mname, state, (long long)tp.step);
      }
    }
    log_info("%s: %lld parameters, %d steps of %d clips, lr %g, %d op threads", mname,
             (long long)m.params.total, steps, batch, lr, ops_get_num_threads());
    const char *mk[4];
    char *mv[4];
    int nm = reward_model_meta(&m, mk, mv);
    const char *meta[2 * 6];
    char dsbuf[32];
    snprintf(dsbuf, sizeof dsbuf, "%lld", (long long)dsid);
    int k = 0;
    for (int i = 0; i < nm; i++) meta[k++] = mk[i], meta[k++] = mv[i];
    meta[k++] = "dataset", meta[k++] = dataset;
    meta[k++] = "dataset_id", meta[k++] = dsbuf;
    progress *pg = progress_new(mname, steps, "steps");
    progress_add(pg, tp.step);
    double t0 = time_now(), ema_loss = NAN;
    int warm = steps / 20 < 1 ? 1 : steps / 20;
    for (int64_t st = tp.step; st < steps && rc == TB_OK; st++) {
      nn_ctx_reset(c);
      reward_step s = {&m, c, &train, batch, &tp.rng, st};
      nn_var loss;
      if ((rc = r->step(&s, &loss)) != TB_OK) break;
      float lv, one = 1.0f;
      device_memcpy_d2h(&lv, nn_data(c, loss), sizeof lv);
      nn_params_zero_grad(&m.params);
      nn_backward(c, loss, &one);
      nn_grad_clip(m.params.grad, m.params.total, 1.0f);
      float lrs = nn_lr_at(NN_LR_COSINE, st, (float)lr, warm, steps, (float)lr * 0.05f);
      nn_adamw_step(&opt, m.params.data, m.params.grad, lrs);
      tp.step = st + 1;
      tp.data_pos += batch;
      ema_loss = isnan(ema_loss) ? lv : 0.95 * ema_loss + 0.05 * lv;
      char note[64];
      snprintf(note, sizeof note, "loss %.4f", ema_loss);
      progress_set_note(pg, note);
      progress_add(pg, 1);
      if (tp.step % 10 == 0 || tp.step == steps) catalogue_metric_insert(cat, run, tp.step, "loss", ema_loss);
      if (tp.step % save_every == 0 && tp.step < steps &&
          nn_train_save(state, &m.params, &opt, NULL, &tp, k / 2, meta) != TB_OK)
        log_warn("%s: training state not saved: %s", mname, err_get());
    }
    progress_free(pg);
    t_train = time_now() - t0;
    trained = 1;
    if (rc == TB_OK) {
      char steps_s[32], secs[32];
      snprintf(steps_s, sizeof steps_s, "%d", steps);
      snprintf(secs, sizeof secs, "%.1f", t_train);
      const char *extra[8] = {"dataset", dataset, "dataset_id", dsbuf, "steps", steps_s, "train_seconds", secs};
      rc = reward_model_save(&m, ckpt, 4, extra);
    }
    for (int i = 0; i < nm; i++) free(mv[i]);
    if (rc != TB_OK) goto out;
    unlink(state);
    log_info("%s: trained in %.1f s (%d steps, loss %.4f): %s", mname, t_train, steps, ema_loss, ckpt);
    /* catalogue: the model (its config names the dataset) and the checkpoint */
    char cj[1024], conf[1400];
    snprintf(conf, sizeof conf, "{\"model\":%s,\"dataset\":\"%s\",\"dataset_id\":%lld,\"steps\":%d,"
             "\"batch\":%d,\"lr\":%g,\"seed\":%lld}", reward_config_format(&m.cfg, cj, sizeof cj),
             dataset, (long long)dsid, steps, batch, lr, seed);
    char mn[64], rel[128];
    snprintf(mn, sizeof mn, "reward-%s", mname);
    snprintf(rel, sizeof rel, "models/reward-%s.safetensors", mname);
    int64_t model_id = 0;
    char *sum = file_checksum(ckpt);
    if (catalogue_model_upsert(cat, mn, r->family, conf, run, &model_id) != TB_OK ||
        catalogue_checkpoint_insert(cat, model_id, steps, rel, sum, run, NULL) != TB_OK)
      log_warn("%s: catalogue rows not written: %s", mname, err_get());
    free(sum);
    catalogue_metric_insert(cat, run, steps, "train_seconds", t_train);
    nn_params_freeze(&m.params);
  }
  {
    /* evaluation on the val split */
    reward_metrics met;
    memset(&met, 0, sizeof met);
    double te = time_now();
    if (r->evaluate && r->evaluate(&m, c, &val, (uint64_t)seed, &met) != TB_OK) {
      log_warn("%s: evaluation failed: %s", mname, err_get());
    } else {
      for (int i = 0; i < met.n; i++) {
        log_info("%s val: %-34s %.4f", mname, met.name[i], met.value[i]);
        catalogue_metric_insert(cat, run, steps, met.name[i], met.value[i]);
      }
      log_info("%s: evaluated %lld val clips in %.1f s", mname, (long long)val.n, time_now() - te);
    }
    /* the same measures on as many train clips: the generalisation gap */
    reward_clips probe = train;
    if (probe.n > val.n) probe.n = val.n;
    memset(&met, 0, sizeof met);
    if (r->evaluate && r->evaluate(&m, c, &probe, (uint64_t)seed, &met) == TB_OK)
      for (int i = 0; i < met.n; i++)
        if (!ends_with(met.name[i], "_n") && !strstr(met.name[i], "chance") &&
            !strstr(met.name[i], "_prior") && !strstr(met.name[i], "baseline")) {
          char k[64];
          snprintf(k, sizeof k, "train_%s", met.name[i]);
          log_info("%s train: %-32s %.4f", mname, met.name[i], met.value[i]);
          catalogue_metric_insert(cat, run, steps, k, met.value[i]);
        }
  }
out:
  if (rc != TB_OK) log_error("%s: %s", mname, err_get());
  (void)trained;
  catalogue_run_end(cat, run, rc == TB_OK ? CATALOGUE_RUN_OK : CATALOGUE_RUN_FAILED,
                    rc == TB_OK ? NULL : err_get());
  nn_adamw_free(&opt);
  nn_ctx_free(c);
  reward_model_free(&m);
  reward_clips_free(&train);
  reward_clips_free(&val);
  catalogue_close(cat);
  return rc == TB_OK ? 0 : 1;
}

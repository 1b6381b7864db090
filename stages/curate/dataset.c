/* stages/curate/dataset.c — recipe → named dataset: members, splits, frame shards.
 *
 * Selection reads only stored statistics (no decoding). The frames of the chosen clips are then
 * decoded again (exactly as the scan did) by worker processes, each writing its own shards
 * WORKSPACE/datasets/NAME/frames-WORKER-SHARD.safetensors: one u8 tensor "clip_<id>" of shape
 * (T, H, W, 3) per clip, up to SHARD_CLIPS per file, saved atomically, then recorded as cached
 * tensors (kind "frames", clip and dataset set, offset = the tensor's byte offset in the file).
 */
#include "stages/curate/curate.h"

#include "common/fsutil.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "common/tensor.h"
#include "common/video_dec.h"
#include "stages/curate/recipe.h"
#include "stages/curate/stats.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHARD_CLIPS 256 /* clips per shard file: ~50 MB at 16x64x64x3 */

static int path_row(void *ctx, int ncol, const char *const *names, const char *const *values) {
  (void)names;
  char **out = ctx;
  if (ncol >= 1 && values[0] && !*out) *out = xstrdup(values[0]);
  return 1;
}

char *curate_clip_source_path(catalogue *cat, int64_t clip_id) {
  char idbuf[32];
  snprintf(idbuf, sizeof idbuf, "%lld", (long long)clip_id);
  const char *params[1] = {idbuf};
  char *out = NULL;
  if (catalogue_query(cat,
                      "SELECT s.path FROM clips c JOIN sources s ON s.id = c.source_id WHERE c.id = ?1",
                      1, params, path_row, &out, NULL) != TB_OK)
    return NULL;
  if (!out) err_set("clip %lld has no source", (long long)clip_id);
  return out;
}

/* A statistic for every clip, as a sorted (id, value) table. */
typedef struct {
  char name[32];
  int64_t *ids;
  double *vals;
  int64_t n;
} stat_col;

static int stat_col_load(catalogue *cat, const char *name, stat_col *c) {
  memset(c, 0, sizeof *c);
  size_t l = strlen(name);
  if (l >= sizeof c->name) l = sizeof c->name - 1;
  memcpy(c->name, name, l);
  c->name[l] = 0;
  return catalogue_stat_all(cat, name, &c->ids, &c->vals, &c->n);
}

/* Value of clip `id` (ids are ascending): 1 found, 0 not. */
static int stat_col_get(const stat_col *c, int64_t id, double *v) {
  int64_t lo = 0, hi = c->n - 1;
  while (lo <= hi) {
    int64_t mid = (lo + hi) / 2;
    if (c->ids[mid] == id) {
      *v = c->vals[mid];
      return 1;
    }
    if (c->ids[mid] < id) lo = mid + 1;
    else hi = mid - 1;
  }
  return 0;
}

static void stat_col_free(stat_col *c) {
  free(c->ids);
  free(c->vals);
}

static uint64_t mix64(uint64_t x) { return hash_mix64(x + 0x9E3779B97F4A7C15ull); }

/* A stable key per clip (its source path and start time, hashed), so that a dataset's shuffle
 * and split depend on the recipe's seed and the data, never on the order in which scan workers
 * happened to insert clips (their ids).
 *
 * Clips of the same content (their sources have the same checksum, or their perceptual hashes
 * are within PHASH_MAX_BITS of each other: a re-encode, a resize, a copy under another name)
 * form one group; the dataset takes one clip per group (the largest source, then the smallest
 * key) and shuffles and splits it by the group's key, so copies can never sit on both sides of
 * the train/val split. Groups are found without comparing all pairs: the 256-bit hash is 16
 * bands of 16 bits, two hashes within 15 bits share at least one band exactly, and only clips
 * that share a band are compared. */
#define PHASH_MAX_BITS 24 /* of 256, measured on tests/fixtures/real/footage: one clip re-encoded at
                             360 and 1080 px differs by 0, the same pan at 8 and 12 fps with a
                             mark added by 23, other camera moves over the same photograph by
                             >= 49, unrelated clips by about 128 */
#define PHASH_RUN_MAX 64  /* clips compared per equal band value (bounds degenerate hashes) */

typedef struct {
  int64_t *ids;
  uint64_t *keys;   /* the clip's own key */
  uint64_t *csum;   /* checksum64 of the source checksum text, 0 when none */
  double *area;     /* source pixels (width x height) */
  int64_t *parent;  /* union-find over indices */
  uint64_t *gkey;   /* the group's key: the smallest key in it */
  int64_t *rep;     /* per group root: index of the clip the dataset takes, -1 none */
  int64_t n, cap;
  int64_t groups_merged; /* clips that joined another's group */
} clip_keys;

static int clip_keys_row(void *ctx, int ncol, const char *const *names, const char *const *v) {
  (void)names;
  clip_keys *k = ctx;
  if (ncol < 5 || !v[0] || !v[1]) return 0;
  if (k->n == k->cap) {
    k->cap = k->cap ? 2 * k->cap : 1024;
    k->ids = xrealloc(k->ids, sizeof *k->ids * (size_t)k->cap);
    k->keys = xrealloc(k->keys, sizeof *k->keys * (size_t)k->cap);
    k->csum = xrealloc(k->csum, sizeof *k->csum * (size_t)k->cap);
    k->area = xrealloc(k->area, sizeof *k->area * (size_t)k->cap);
  }
  double start = v[2] ? atof(v[2]) : 0;
  k->ids[k->n] = strtoll(v[0], NULL, 10);
  k->keys[k->n] = checksum64(v[1], strlen(v[1])) ^ mix64((uint64_t)llround(start * 1000.0));
  k->csum[k->n] = v[3] && v[3][0] ? checksum64(v[3], strlen(v[3])) | 1 : 0;
  k->area[k->n] = v[4] ? atof(v[4]) : 0;
  k->n++;
  return 0;
}

static int64_t uf_find(int64_t *p, int64_t i) {
  while (p[i] != i) {
    p[i] = p[p[i]];
    i = p[i];
  }
  return i;
}

static void uf_union(clip_keys *k, int64_t a, int64_t b) {
  a = uf_find(k->parent, a);
  b = uf_find(k->parent, b);
  if (a == b) return;
  if (b < a) {
    int64_t t = a;
    a = b;
    b = t;
  }
  k->parent[b] = a;
  k->groups_merged++;
}

typedef struct {
  uint64_t v;
  int64_t i;
} band_entry;

static int cmp_band(const void *a, const void *b) {
  const band_entry *x = a, *y = b;
  return x->v < y->v ? -1 : x->v > y->v ? 1 : (x->i > y->i) - (x->i < y->i);
}

static int clip_keys_load(catalogue *cat, clip_keys *k) {
  memset(k, 0, sizeof *k);
  int rc = catalogue_query(cat,
                           "SELECT c.id, s.path, c.start_s, s.checksum, "
                           "coalesce(s.width, 0) * coalesce(s.height, 0) FROM clips c JOIN "
                           "sources s ON s.id = c.source_id ORDER BY c.id",
                           0, NULL, clip_keys_row, k, NULL);
  if (rc != TB_OK) return rc;
  int64_t n = k->n;
  k->parent = xmalloc(sizeof *k->parent * (size_t)(n + 1));
  k->gkey = xmalloc(sizeof *k->gkey * (size_t)(n + 1));
  k->rep = xmalloc(sizeof *k->rep * (size_t)(n + 1));
  for (int64_t i = 0; i < n; i++) k->parent[i] = i;
  band_entry *be = xmalloc(sizeof *be * (size_t)(n + 1));
  /* Byte-identical sources. */
  int64_t m = 0;
  for (int64_t i = 0; i < n; i++)
    if (k->csum[i]) be[m++] = (band_entry){k->csum[i], i};
  qsort(be, (size_t)m, sizeof *be, cmp_band);
  for (int64_t i = 1; i < m; i++)
    if (be[i].v == be[i - 1].v) uf_union(k, be[i].i, be[i - 1].i);
  /* Perceptual hashes: 16 chunks of 16 bits per clip (stats phash_00 … phash_15). */
  uint16_t *ph = xcalloc((size_t)(n + 1) * PHASH_CHUNKS, sizeof *ph);
  unsigned char *have = xcalloc((size_t)(n + 1), 1);
  stat_col ok;
  rc = stat_col_load(cat, "phash_ok", &ok);
  for (int64_t j = 0; j < ok.n && rc == TB_OK; j++) {
    int64_t lo = 0, hi = n - 1, id = ok.ids[j];
    while (lo <= hi) {
      int64_t mid = (lo + hi) / 2;
      if (k->ids[mid] == id) {
        have[mid] = ok.vals[j] > 0.5;
        break;
      }
      if (k->ids[mid] < id) lo = mid + 1; else hi = mid - 1;
    }
  }
  if (rc == TB_OK) stat_col_free(&ok);
  for (int c = 0; c < PHASH_CHUNKS && rc == TB_OK; c++) {
    char nm[16];
    snprintf(nm, sizeof nm, "phash_%02d", c);
    stat_col col;
    if ((rc = stat_col_load(cat, nm, &col)) != TB_OK) break;
    for (int64_t i = 0; i < n; i++) {
      double v;
      if (have[i] && stat_col_get(&col, k->ids[i], &v)) ph[(size_t)i * PHASH_CHUNKS + c] = (uint16_t)v;
      else if (have[i] && !stat_col_get(&col, k->ids[i], &v)) have[i] = 0;
    }
    stat_col_free(&col);
  }
  for (int c = 0; c < PHASH_CHUNKS && rc == TB_OK; c++) {
    m = 0;
    for (int64_t i = 0; i < n; i++)
      if (have[i]) be[m++] = (band_entry){ph[(size_t)i * PHASH_CHUNKS + c], i};
    qsort(be, (size_t)m, sizeof *be, cmp_band);
    for (int64_t a = 0; a < m; a++)
      for (int64_t b = a + 1; b < m && b <= a + PHASH_RUN_MAX && be[b].v == be[a].v; b++) {
        const uint16_t *x = ph + (size_t)be[a].i * PHASH_CHUNKS, *y = ph + (size_t)be[b].i * PHASH_CHUNKS;
        int d = 0;
        for (int q = 0; q < PHASH_CHUNKS; q++) d += __builtin_popcount((unsigned)(x[q] ^ y[q]));
        if (d <= PHASH_MAX_BITS) uf_union(k, be[a].i, be[b].i);
      }
  }
  free(ph);
  free(have);
  free(be);
  for (int64_t i = 0; i < n; i++) k->gkey[i] = UINT64_MAX;
  for (int64_t i = 0; i < n; i++) {
    int64_t r = uf_find(k->parent, i);
    if (k->keys[i] < k->gkey[r]) k->gkey[r] = k->keys[i];
    k->rep[i] = -1;
  }
  return rc;
}

static int64_t clip_index(const clip_keys *k, int64_t id) {
  int64_t lo = 0, hi = k->n - 1;
  while (lo <= hi) {
    int64_t mid = (lo + hi) / 2;
    if (k->ids[mid] == id) return mid;
    if (k->ids[mid] < id) lo = mid + 1; else hi = mid - 1;
  }
  return -1;
}

/* The key that shuffles and splits a clip: its content group's. */
static uint64_t clip_key(const clip_keys *k, int64_t id) {
  int64_t i = clip_index(k, id);
  if (i < 0) return mix64((uint64_t)id); /* not reached for catalogued clips */
  return k->gkey[uf_find(k->parent, i)];
}

/* Offers clip `id` as its group's representative: the largest source wins, then the key. */
static void clip_offer(clip_keys *k, int64_t id) {
  int64_t i = clip_index(k, id);
  if (i < 0) return;
  int64_t r = uf_find(k->parent, i), cur = k->rep[r];
  if (cur < 0 || k->area[i] > k->area[cur] ||
      (k->area[i] == k->area[cur] && k->keys[i] < k->keys[cur]))
    k->rep[r] = i;
}

/* 1 when clip `id` is what its group contributes (a clip without catalogue row: itself). */
static int clip_is_rep(const clip_keys *k, int64_t id) {
  int64_t i = clip_index(k, id);
  if (i < 0) return 1;
  return k->rep[uf_find(k->parent, i)] == i;
}

static void clip_keys_free(clip_keys *k) {
  free(k->ids);
  free(k->keys);
  free(k->csum);
  free(k->area);
  free(k->parent);
  free(k->gkey);
  free(k->rep);
}

/* Sorting candidates by a seeded hash of their keys: a shuffle that is the same whatever
 * order the ids came in. */
typedef struct {
  uint64_t h;
  int64_t id;
} keyed_id;

static int cmp_keyed(const void *a, const void *b) {
  const keyed_id *x = a, *y = b;
  return x->h < y->h ? -1 : x->h > y->h ? 1 : (x->id > y->id) - (x->id < y->id);
}

static int find_col(stat_col *cols, int ncols, const char *name) {
  for (int i = 0; i < ncols; i++)
    if (strcmp(cols[i].name, name) == 0) return i;
  return -1;
}

/* Decodes the clips ids[k], ids[k+n], … and writes their shards; exits the process. */
static void shard_worker(const curate_cfg *cfg, const recipe *r, const char *name,
                         int64_t dataset_id, const int64_t *ids, int64_t nids, int k, int n) {
  log_init("curate");
  catalogue *cat = catalogue_open_workspace(cfg->workspace, 0);
  if (!cat) {
    log_error("%s", err_get());
    _exit(3);
  }
  int failures = 0, shard = 0;
  int64_t i = k;
  const int64_t T = r->frames, H = r->height, W = r->width;
  const int64_t shape[4] = {T, H, W, 3};
  while (i < nids) {
    safetensors_writer *w = safetensors_writer_new();
    safetensors_writer_set_meta(w, "format", "turbo.frames");
    safetensors_writer_set_meta(w, "layout", "T,H,W,3 u8 sRGB");
    safetensors_writer_set_meta(w, "dataset", name);
    int64_t members[SHARD_CLIPS];
    uint64_t sums[SHARD_CLIPS];
    int nm = 0;
    for (; i < nids && nm < SHARD_CLIPS; i += n) {
      char *src = curate_clip_source_path(cat, ids[i]);
      char full[4096];
      video_frames fr;
      memset(&fr, 0, sizeof fr);
      video_dec_opts o = video_dec_opts_default();
      o.fps = r->fps;
      o.width = r->width;
      o.height = r->height;
      o.max_frames = r->frames;
      if (!src || fs_path_inside(cfg->root, src, full, sizeof full) != TB_OK ||
          video_decode_rgb(full, &o, &fr) != TB_OK || fr.n != T) {
        log_warn("clip %lld (%s): cannot decode its frames again: %s", (long long)ids[i],
                 src ? src : "?", fr.n ? "frame count changed" : err_get());
        failures++;
        free(src);
        video_frames_free(&fr);
        continue;
      }
      free(src);
      char tname[32];
      snprintf(tname, sizeof tname, "clip_%lld", (long long)ids[i]);
      tensor t = tensor_view(DTYPE_U8, 4, shape, fr.rgb);
      safetensors_writer_add(w, tname, &t);
      sums[nm] = checksum64(fr.rgb, (size_t)(T * H * W * 3));
      members[nm++] = ids[i];
      video_frames_free(&fr);
    }
    if (nm > 0) {
      char rel[512], full[4096];
      snprintf(rel, sizeof rel, "datasets/%s/frames-%02d-%04d.safetensors", name, k, shard++);
      fs_join(full, sizeof full, cfg->workspace, rel);
      safetensors_file *sf = NULL;
      if (safetensors_writer_save(w, full) != TB_OK || safetensors_open(full, &sf) != TB_OK) {
        log_error("%s", err_get());
        failures += nm;
      } else {
        int rc = catalogue_begin(cat);
        for (int j = 0; j < nm && rc == TB_OK; j++) {
          char tname[32], hex[17];
          snprintf(tname, sizeof tname, "clip_%lld", (long long)members[j]);
          const safetensors_entry *e = safetensors_find(sf, tname);
          if (!e) {
            rc = err_set("%s: tensor %s missing after save", rel, tname);
            break;
          }
          snprintf(hex, sizeof hex, "%016llx", (unsigned long long)sums[j]);
          catalogue_tensor ct;
          memset(&ct, 0, sizeof ct);
          ct.kind = "frames";
          ct.clip_id = members[j];
          ct.dataset_id = dataset_id;
          ct.path = rel;
          ct.offset = (int64_t)(safetensors_data_offset(sf) + e->begin);
          ct.nbytes = (int64_t)(e->end - e->begin);
          ct.dtype = DTYPE_U8;
          ct.ndim = 4;
          memcpy(ct.shape, shape, sizeof shape);
          ct.checksum = hex;
          rc = catalogue_tensor_insert(cat, &ct, NULL);
        }
        if (rc == TB_OK) rc = catalogue_commit(cat);
        else catalogue_rollback(cat);
        if (rc != TB_OK) {
          log_error("%s", err_get());
          failures += nm;
        }
        safetensors_close(sf);
      }
    }
    safetensors_writer_free(w);
  }
  catalogue_close(cat);
  _exit(failures ? 4 : 0);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Removes frames-*.safetensors left by an earlier build of this dataset. */
static void clear_shards(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char p[4096];
  while ((e = readdir(d)))
    if (strncmp(e->d_name, "frames-", 7) == 0 && fs_join(p, sizeof p, dir, e->d_name)) unlink(p);
  closedir(d);
}

int curate_dataset_build(catalogue *cat, const curate_cfg *cfg, const char *recipe_path,
                         const char *name_opt, char *name_out, size_t name_n) {
  recipe r;
  if (recipe_load(recipe_path, &r) != TB_OK) {
    recipe_free(&r);
    return TB_ERR;
  }
  const char *name = name_opt && name_opt[0] ? name_opt : r.name;
  snprintf(name_out, name_n, "%s", name);
  for (const char *p = name; *p; p++)
    if (!(*p == '_' || *p == '-' || *p == '.' || (*p >= '0' && *p <= '9') ||
          (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) || name[0] == '.') {
      recipe_free(&r);
      return err_set("dataset name '%s': use letters, digits, _ - . only", name);
    }
  double t0 = time_now();
  /* Learned statistics first (a model scores the clips that lack them). */
  if (curate_learned_scores(cat, cfg, &r) != TB_OK) {
    recipe_free(&r);
    return TB_ERR;
  }
  /* Load every statistic the recipe names, plus the implicit ones. */
  stat_col cols[RECIPE_MAX_CONDS * (RECIPE_MAX_SUBSETS + 1) + 8];
  int ncols = 0, rc = TB_OK;
  clip_keys keys = {0};
  const char *implicit[] = {"usable", "frames", "target_width", "target_height", "target_fps"};
  for (int i = 0; i < 5 && rc == TB_OK; i++) rc = stat_col_load(cat, implicit[i], &cols[ncols++]);
  for (int s = -1; s < r.nsubset && rc == TB_OK; s++) {
    int nc = s < 0 ? r.ncond : r.subset[s].ncond;
    recipe_cond *cc = s < 0 ? r.cond : r.subset[s].cond;
    for (int j = 0; j < nc && rc == TB_OK; j++)
      if (find_col(cols, ncols, cc[j].stat) < 0) rc = stat_col_load(cat, cc[j].stat, &cols[ncols++]);
  }
  if (rc != TB_OK) goto out;
  const stat_col *usable = &cols[0], *frames = &cols[1];
  if (usable->n == 0) {
    rc = err_set("the catalogue has no curated clips: run bin/curate --manifest first");
    goto out;
  }
  /* Learned-score filters on statistics nobody computed yet are skipped. */
  for (int j = 0; j < r.ncond; j++) {
    char b[96];
    int c = find_col(cols, ncols, r.cond[j].stat);
    if (r.cond[j].learned && cols[c].n == 0) {
      log_warn("recipe line %d: learned filter '%s' skipped: no clip has %s yet (a later stage "
               "computes it)", r.cond[j].line, recipe_cond_str(&r.cond[j], b, sizeof b), r.cond[j].stat);
      r.cond[j].stat[0] = 0; /* marks it off */
    } else if (cols[c].n == 0) {
      log_warn("recipe line %d: no clip has statistic '%s': the filter keeps nothing",
               r.cond[j].line, r.cond[j].stat);
    }
  }
  if ((rc = clip_keys_load(cat, &keys)) != TB_OK) goto out;
  /* Candidates per subset. */
  int64_t *cand[RECIPE_MAX_SUBSETS] = {0}, ncand[RECIPE_MAX_SUBSETS] = {0};
  int64_t fail_global[RECIPE_MAX_CONDS] = {0};
  int64_t base = 0, dups = 0;
  for (int pass = 0; pass < 2; pass++)
  for (int64_t i = 0; i < usable->n; i++) {
    int64_t id = usable->ids[i];
    double fv;
    if (usable->vals[i] < 0.5 || !stat_col_get(frames, id, &fv) || fv != r.frames) continue;
    /* The clip's geometry must be the recipe's (a catalogue may hold several curations). */
    double gw, gh, gf;
    if ((stat_col_get(&cols[2], id, &gw) && gw != r.width) ||
        (stat_col_get(&cols[3], id, &gh) && gh != r.height) ||
        (stat_col_get(&cols[4], id, &gf) && fabs(gf - r.fps) > 1e-9))
      continue;
    /* Pass 0 picks one clip per content group among the eligible ones; pass 1 filters. */
    if (pass == 0) {
      clip_offer(&keys, id);
      continue;
    }
    if (!clip_is_rep(&keys, id)) {
      dups++;
      continue;
    }
    base++;
    int ok = 1;
    for (int j = 0; j < r.ncond; j++) {
      if (!r.cond[j].stat[0]) continue;
      double v;
      int c = find_col(cols, ncols, r.cond[j].stat);
      if (!stat_col_get(&cols[c], id, &v) || !recipe_cond_test(&r.cond[j], v)) {
        fail_global[j]++;
        ok = 0;
      }
    }
    if (!ok) continue;
    for (int s = 0; s < r.nsubset; s++) {
      int sok = 1;
      for (int j = 0; j < r.subset[s].ncond && sok; j++) {
        double v;
        int c = find_col(cols, ncols, r.subset[s].cond[j].stat);
        sok = stat_col_get(&cols[c], id, &v) && recipe_cond_test(&r.subset[s].cond[j], v);
      }
      if (sok) {
        cand[s] = xrealloc(cand[s], sizeof(int64_t) * (ncand[s] + 1));
        cand[s][ncand[s]++] = id;
      }
    }
  }
  log_info("dataset %s: %lld usable clips of %dx%dx%d (%lld more are copies or re-encodes of "
           "these and left out)", name, (long long)base, r.frames, r.height, r.width, (long long)dups);
  for (int j = 0; j < r.ncond; j++) {
    char b[96];
    if (r.cond[j].stat[0])
      log_info("  filter %-28s removes %lld", recipe_cond_str(&r.cond[j], b, sizeof b), (long long)fail_global[j]);
  }
  /* Quotas from the weights. */
  double wsum = 0;
  for (int s = 0; s < r.nsubset; s++) wsum += r.subset[s].weight;
  double total = (double)r.size;
  if (r.size == 0) {
    total = INFINITY;
    for (int s = 0; s < r.nsubset; s++) total = fmin(total, ncand[s] / (r.subset[s].weight / wsum));
  }
  int64_t quota[RECIPE_MAX_SUBSETS];
  for (int s = 0; s < r.nsubset; s++) {
    quota[s] = (int64_t)floor(total * r.subset[s].weight / wsum + 1e-9);
    if (quota[s] > ncand[s]) {
      log_warn("subset %s: %lld clips pass its filters, fewer than the %lld its weight asks for",
               r.subset[s].name, (long long)ncand[s], (long long)quota[s]);
      quota[s] = ncand[s];
    }
    /* Seeded shuffle per subset, keyed on the clips' content, not their ids. */
    uint64_t st = mix64(r.seed ^ mix64((uint64_t)s + 1));
    keyed_id *kd = xmalloc(sizeof *kd * (size_t)(ncand[s] + 1));
    for (int64_t i = 0; i < ncand[s]; i++) {
      kd[i].id = cand[s][i];
      kd[i].h = mix64(st ^ clip_key(&keys, cand[s][i]));
    }
    qsort(kd, (size_t)ncand[s], sizeof *kd, cmp_keyed);
    for (int64_t i = 0; i < ncand[s]; i++) cand[s][i] = kd[i].id;
    free(kd);
  }
  int64_t dsid = 0, nmem = 0;
  for (int s = 0; s < r.nsubset; s++) nmem += quota[s];
  for (int s = 0; s < r.nsubset && nmem == 0; s++)
    if (ncand[s] == 0) log_error("subset %s: no clip passes its filters", r.subset[s].name);
  if (nmem == 0) {
    rc = err_set("dataset %s: no clip passes the recipe's filters", name);
    for (int s = 0; s < r.nsubset; s++) free(cand[s]);
    goto out;
  }
  catalogue_member *mem = xcalloc((size_t)nmem, sizeof *mem);
  int64_t *uniq = xmalloc(sizeof(int64_t) * nmem), nu = 0, k = 0, nval = 0;
  for (int s = 0; s < r.nsubset; s++) {
    for (int64_t i = 0; i < quota[s]; i++) {
      int64_t id = cand[s][i];
      double u = (double)(mix64(r.seed * 0x100000001B3ull ^ clip_key(&keys, id)) >> 11) / 9007199254740992.0;
      mem[k].clip_id = id;
      mem[k].split = u < r.val_fraction ? CATALOGUE_SPLIT_VAL : CATALOGUE_SPLIT_TRAIN;
      mem[k].subset = r.subset[s].name;
      nval += mem[k].split == CATALOGUE_SPLIT_VAL;
      uniq[nu++] = id;
      k++;
    }
    log_info("  subset %-10s weight %.2f: %lld candidates, %lld taken", r.subset[s].name,
             r.subset[s].weight, (long long)ncand[s], (long long)quota[s]);
  }
  qsort(uniq, (size_t)nu, sizeof *uniq, cmp_i64);
  int64_t w = 0;
  for (int64_t i = 0; i < nu; i++)
    if (i == 0 || uniq[i] != uniq[i - 1]) uniq[w++] = uniq[i];
  nu = w;
  rc = catalogue_begin(cat);
  if (rc == TB_OK) rc = catalogue_dataset_create(cat, name, r.text, 1, cfg->run_id, &dsid);
  if (rc == TB_OK) rc = catalogue_members_add(cat, dsid, nmem, mem);
  if (rc == TB_OK) rc = catalogue_commit(cat);
  else catalogue_rollback(cat);
  for (int s = 0; s < r.nsubset; s++) free(cand[s]);
  free(mem);
  if (rc != TB_OK) {
    free(uniq);
    goto out;
  }
  log_info("dataset %s: %lld members (%lld val), %lld distinct clips; decoding frames",
           name, (long long)nmem, (long long)nval, (long long)nu);
  /* Frames. */
  char dir[4096], rel[512];
  snprintf(rel, sizeof rel, "datasets/%s", name);
  fs_join(dir, sizeof dir, cfg->workspace, rel);
  if (fs_mkdir_p(dir) != TB_OK) {
    free(uniq);
    rc = TB_ERR;
    goto out;
  }
  clear_shards(dir);
  int nw = cfg->workers < 1 ? 1 : cfg->workers;
  if (nw > nu) nw = (int)nu;
  pid_t pids[64];
  if (nw > 64) nw = 64;
  fflush(NULL);
  for (int j = 0; j < nw; j++) {
    pids[j] = fork();
    if (pids[j] == 0) shard_worker(cfg, &r, name, dsid, uniq, nu, j, nw);
    if (pids[j] < 0) rc = err_set("fork: %s", strerror(errno));
  }
  int bad = 0;
  for (int j = 0; j < nw; j++) {
    int status;
    if (pids[j] > 0 && (waitpid(pids[j], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0))
      bad++;
  }
  free(uniq);
  if (rc == TB_OK && bad) rc = err_set("dataset %s: %d shard worker(s) failed (see the log)", name, bad);
  catalogue_dataset_status_set(cat, dsid, rc == TB_OK ? "ready" : "failed");
  if (rc == TB_OK)
    log_info("dataset %s ready in %.1f s: frames in %s/frames-*.safetensors", name, time_now() - t0, dir);
out:
  for (int i = 0; i < ncols; i++) stat_col_free(&cols[i]);
  clip_keys_free(&keys);
  recipe_free(&r);
  return rc;
}

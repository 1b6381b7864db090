/* bin/motion — the motion-guidance cache (METHOD.md §2): for every clip of a dataset subset,
 * through the teacher, the clip's solver index on the noisy half of the grid, z_t from one noise
 * draw, eps_c / eps_u, the reference top-1 keys and values of its own DDIM-inverted latent on the
 * decoder's temporal-attention layers, and the score dE/dz_t (motion_precompute, kernels/motion.h).
 *
 *   motion --workspace DIR --dataset NAME [--subset motion] [--teacher teacher] [--workers 2]
 *          [--inv-steps 4] [--tau 0.5] [--scale 1e4] [--seed 1] [--layers decoder|all] [--limit N]
 *
 * Inputs, from the catalogue: the teacher model's latest checkpoint (bin/pretrain --model
 * teacher's format, kernels/nn/teacher.h, whose "teacher.null_ctx" is the null context; or a
 * UNet with "unet.config" metadata as bin/import writes), each clip's encodings as
 * bin/encode caches them (common/enc_cache.h): "latent" (variant "mean", else "sample";
 * (T, C, H, W)) and "text_tokens" (variant "long", else "short"; (L, D)), and the empty
 * caption's "text_tokens" of variant "empty" (no clip, no dataset) for checkpoints without a
 * null context; without either the null context is zeros (the teacher's training drop), logged and written
 * into each record.
 * Outputs: one safetensors shard per clip, motion/TEACHER/ckptID/clipID.safetensors (index,
 * z_t, eps_c, eps_u, score, ref_idx, ref_val, E; metadata: teacher, checkpoint, layers, rows,
 * keys, scale, inversion steps, null context), and one tensors row per tensor (kinds
 * motion_index, motion_z_t, teacher_eps_c, teacher_eps_u, guidance_score, motion_ref_idx,
 * motion_ref_val) with model = the teacher and variant "ckpt=ID" (the checkpoint that made it),
 * all of a clip in one transaction.
 * Resume: a clip whose guidance_score row names the current checkpoint is done and skipped; a
 * clip whose rows name another checkpoint is stale: recomputed, its old rows deleted in the same
 * transaction. Shards are written atomically before their rows, so kill -9 at any point leaves
 * finished clips finished.
 * Workers: --workers N processes, worker k takes the clips at positions k, k + N, …, each with
 * its own catalogue handle and one ops thread.
 * Exit codes: 0 done, 1 a clip or the teacher failed (named in the log), 2 bad arguments.
 * TURBO_MOTION_CRASH_AFTER=K makes each worker kill itself (SIGKILL) after K clips (tests).
 */
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/args.h"
#include "common/catalogue.h"
#include "common/enc_cache.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "common/tensor.h"
#include "kernels/diffusion.h"
#include "kernels/motion.h"
#include "kernels/nn.h"
#include "kernels/nn/teacher.h"
#include "kernels/ops.h"

static char *workspace = NULL, *dataset = NULL, *subset = "motion", *teacher_name = "teacher";
static char *layer_sel = "decoder";
static int workers = 1, inv_steps = 4, limit = 0;
static double tau = 0.5, scale = 1e4;
static long long seed = 1;

static const char *const KINDS[] = {"motion_index", "motion_z_t", "teacher_eps_c",
                                    "teacher_eps_u", "guidance_score", "motion_ref_idx",
                                    "motion_ref_val"};
static const char *const NAMES[] = {"index", "z_t", "eps_c", "eps_u", "score", "ref_idx",
                                    "ref_val"};
enum { NKINDS = 7 };

typedef struct {
  catalogue *cat;
  const char *ws;
  int64_t model_id, ckpt_id;
  char variant[64];
  unet u;           /* an imported UNet */
  teacher_model tm; /* or bin/pretrain's teacher (have_tm) */
  int have_tm;
  unet *net;        /* the one in use (the unet holds pointers into itself: never copied) */
  nn_ctx *c;
  diff_schedule s;
  const char *layers[MOTION_MAX_LAYERS];
  int nl;
  float *null_ctx; /* (L, D) */
  int null_L;
  const char *null_src;
} job;

/* ---- inputs -------------------------------------------------------------------------------- */

static int cfg_int(const json_value *o, const char *key, int *dst) {
  int64_t v;
  if (!json_get(o, key)) return TB_OK;
  if (json_get_int64(o, key, &v) != TB_OK) return err_set("unet.config: field %s is not an integer", key);
  *dst = (int)v;
  return TB_OK;
}

/* unet_config from the "unet.config" JSON of a checkpoint (bin/import's fields). */
static int parse_unet_config(const char *text, const char *path, unet_config *cfg) {
  json_value *j = json_parse(text, strlen(text), NULL);
  if (!j) return err_wrap("%s: metadata unet.config", path);
  *cfg = unet_config_default();
  int rc = TB_OK;
  const char *ints[] = {"in_ch", "out_ch", "model_ch", "n_levels", "n_res", "attn_levels",
                        "head_ch", "text_dim", "groups", "temporal_conv", "temporal_conv_layers",
                        "temporal_attn", "init_temporal", "init_heads", "fps_embed",
                        "max_frames", "temporal_pos", "cond_embeds"};
  int *dst[] = {&cfg->in_ch, &cfg->out_ch, &cfg->model_ch, &cfg->n_levels, &cfg->n_res,
                &cfg->attn_levels, &cfg->head_ch, &cfg->text_dim, &cfg->groups,
                &cfg->temporal_conv, &cfg->temporal_conv_layers, &cfg->temporal_attn,
                &cfg->init_temporal, &cfg->init_heads, &cfg->fps_embed, &cfg->max_frames,
                &cfg->temporal_pos, &cfg->cond_embeds};
  for (size_t i = 0; i < sizeof ints / sizeof *ints && rc == TB_OK; i++)
    rc = cfg_int(j, ints[i], dst[i]);
  const json_value *cm = json_get(j, "ch_mult");
  if (rc == TB_OK && cm) {
    for (int l = 0; l < cfg->n_levels && l < UNET_MAX_LEVELS; l++) {
      const json_value *e = json_at(cm, (size_t)l);
      if (!e || e->type != JSON_NUMBER) {
        rc = err_set("%s: unet.config ch_mult[%d] missing", path, l);
        break;
      }
      cfg->ch_mult[l] = (int)e->number;
    }
  }
  json_free(j);
  return rc;
}

static int load_teacher(job *jb) {
  catalogue_model m;
  int f = catalogue_model_lookup(jb->cat, teacher_name, &m);
  if (f != 1) return f == 0 ? err_set("teacher: no model named '%s' in the catalogue", teacher_name) : TB_ERR;
  jb->model_id = m.id;
  catalogue_model_clear(&m);
  catalogue_checkpoint ck;
  f = catalogue_checkpoint_latest(jb->cat, jb->model_id, &ck);
  if (f != 1)
    return f == 0 ? err_set("teacher '%s' has no checkpoint", teacher_name) : TB_ERR;
  jb->ckpt_id = ck.id;
  snprintf(jb->variant, sizeof jb->variant, "ckpt=%lld", (long long)ck.id);
  char path[4096];
  fs_join(path, sizeof path, jb->ws, ck.path);
  catalogue_checkpoint_clear(&ck);
  safetensors_file *sf = NULL;
  if (safetensors_open(path, &sf) != TB_OK) return TB_ERR;
  int rc = TB_OK;
  if (safetensors_meta_get(sf, "teacher.config")) {
    /* bin/pretrain --model teacher: the UNet and the null context it learned with */
    safetensors_close(sf);
    if (teacher_model_load(&jb->tm, path, 1) != TB_OK) return TB_ERR;
    jb->have_tm = 1;
    jb->net = &jb->tm.net;
    size_t nb = (size_t)jb->tm.L * jb->tm.net.cfg.text_dim * sizeof(float);
    jb->null_ctx = xmalloc(nb);
    memcpy(jb->null_ctx, jb->tm.null_ctx, nb);
    jb->null_L = jb->tm.L;
    jb->null_src = "teacher.null_ctx";
  } else {
    const char *cj = safetensors_meta_get(sf, "unet.config");
    unet_config cfg;
    rc = cj ? parse_unet_config(cj, path, &cfg)
            : err_set("%s: neither teacher.config nor unet.config metadata (not a UNet checkpoint)", path);
    safetensors_close(sf);
    if (rc == TB_OK) rc = unet_create(&jb->u, &cfg);
    if (rc == TB_OK && (rc = nn_params_load(&jb->u.params, path, NULL, 0)) != TB_OK)
      unet_free(&jb->u);
    if (rc != TB_OK) return TB_ERR;
    unet_freeze(&jb->u);
    jb->net = &jb->u;
  }
  jb->nl = unet_temporal_layers(jb->net, strcmp(layer_sel, "all") != 0, jb->layers,
                                MOTION_MAX_LAYERS);
  if (jb->nl < 1) {
    if (jb->have_tm) teacher_model_free(&jb->tm);
    else unet_free(&jb->u);
    return err_set("teacher '%s' has no %s temporal-attention layers", teacher_name, layer_sel);
  }
  return TB_OK;
}

/* A catalogue tensor as F32 (host, malloc'd), its trailing dims checked against want (nw dims;
 * a leading 1 is allowed). */
static float *read_tensor(const job *jb, const catalogue_tensor *t, int nw, const int64_t *want,
                          const char *what) {
  int lead = t->ndim - nw;
  if (lead < 0 || lead > 1 || (lead == 1 && t->shape[0] != 1)) {
    err_set("%s: tensor %lld has %d dims, want %d", what, (long long)t->id, t->ndim, nw);
    return NULL;
  }
  for (int i = 0; i < nw; i++)
    if (want[i] > 0 && t->shape[lead + i] != want[i]) {
      err_set("%s: tensor %lld dim %d is %lld, the teacher wants %lld", what, (long long)t->id, i,
              (long long)t->shape[lead + i], (long long)want[i]);
      return NULL;
    }
  int64_t n = shape_numel(t->ndim, t->shape);
  size_t es = t->dtype == DTYPE_F32 ? 4 : (t->dtype == DTYPE_F16 || t->dtype == DTYPE_BF16) ? 2 : 0;
  if (!es || n < 1 || t->nbytes != n * (int64_t)es) {
    err_set("%s: tensor %lld is %s of %lld bytes for %lld values (F32/F16/BF16 wanted)", what,
            (long long)t->id, dtype_name(t->dtype), (long long)t->nbytes, (long long)n);
    return NULL;
  }
  char path[4096];
  fs_join(path, sizeof path, jb->ws, t->path);
  FILE *f = fopen(path, "rb");
  if (!f) {
    err_set("%s: cannot open %s", what, path);
    return NULL;
  }
  void *raw = xmalloc((size_t)t->nbytes);
  int ok = fseeko(f, t->offset, SEEK_SET) == 0 && fread(raw, 1, (size_t)t->nbytes, f) == (size_t)t->nbytes;
  fclose(f);
  if (!ok) {
    free(raw);
    err_set("%s: %s is shorter than offset %lld + %lld bytes", what, path, (long long)t->offset,
            (long long)t->nbytes);
    return NULL;
  }
  float *out = xmalloc((size_t)n * 4);
  if (t->dtype == DTYPE_F32) memcpy(out, raw, (size_t)n * 4);
  else if (t->dtype == DTYPE_F16) convert_f16_to_f32(raw, out, n);
  else convert_bf16_to_f32(raw, out, n);
  free(raw);
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(out[i])) {
      err_set("%s: tensor %lld value %lld is not finite", what, (long long)t->id, (long long)i);
      free(out);
      return NULL;
    }
  return out;
}

/* ---- per clip ------------------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* Standard normal draws from a counter-based stream (clip's seed, i). */
static void clip_noise(uint64_t key, float *z, int64_t n) {
  for (int64_t i = 0; i < n; i += 2) {
    double u1 = ((mix64(key ^ mix64((uint64_t)i)) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (mix64(key ^ mix64((uint64_t)i + 1)) >> 11) / 9007199254740992.0;
    double r = sqrt(-2.0 * log(u1));
    z[i] = (float)(r * cos(2 * M_PI * u2));
    if (i + 1 < n) z[i + 1] = (float)(r * sin(2 * M_PI * u2));
  }
}

/* 1 done with this checkpoint, 0 not, TB_ERR. */
static int clip_done(job *jb, int64_t clip) {
  catalogue_tensor t;
  int f = catalogue_tensor_find(jb->cat, "guidance_score", clip, 0, jb->model_id, jb->variant, &t);
  if (f != 1) return f;
  char path[4096];
  fs_join(path, sizeof path, jb->ws, t.path);
  catalogue_tensor_clear(&t);
  return fs_exists(path);
}

static int record_rows(job *jb, int64_t clip, const char *rel, const char *abs) {
  safetensors_file *sf = NULL;
  if (safetensors_open(abs, &sf) != TB_OK) return TB_ERR;
  int rc = catalogue_begin(jb->cat);
  if (rc == TB_OK) {
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(catalogue_db(jb->cat),
                            "DELETE FROM tensors WHERE clip_id = ?1 AND model_id = ?2 AND "
                            "variant <> ?3 AND kind IN ('motion_index', 'motion_z_t', "
                            "'teacher_eps_c', 'teacher_eps_u', 'guidance_score', "
                            "'motion_ref_idx', 'motion_ref_val')",
                            -1, &st, NULL) == SQLITE_OK ? TB_OK : err_set("catalogue: %s", sqlite3_errmsg(catalogue_db(jb->cat)));
    if (rc == TB_OK) {
      sqlite3_bind_int64(st, 1, clip);
      sqlite3_bind_int64(st, 2, jb->model_id);
      sqlite3_bind_text(st, 3, jb->variant, -1, SQLITE_STATIC);
      if (sqlite3_step(st) != SQLITE_DONE) rc = err_set("catalogue: %s", sqlite3_errmsg(catalogue_db(jb->cat)));
      int stale = sqlite3_changes(catalogue_db(jb->cat));
      if (stale) log_info("clip %lld: %d stale rows of another teacher checkpoint replaced", (long long)clip, stale);
    }
    sqlite3_finalize(st);
    uint64_t base = safetensors_data_offset(sf);
    for (int k = 0; k < NKINDS && rc == TB_OK; k++) {
      const safetensors_entry *e = safetensors_find(sf, NAMES[k]);
      if (!e) {
        rc = err_set("%s: tensor %s missing", abs, NAMES[k]);
        break;
      }
      catalogue_tensor t = {.kind = KINDS[k], .clip_id = clip, .model_id = jb->model_id,
                            .variant = jb->variant, .path = rel,
                            .offset = (int64_t)(base + e->begin),
                            .nbytes = (int64_t)(e->end - e->begin), .dtype = e->dtype,
                            .ndim = e->ndim};
      memcpy(t.shape, e->shape, sizeof t.shape);
      rc = catalogue_tensor_insert(jb->cat, &t, NULL);
    }
    if (rc == TB_OK) rc = catalogue_commit(jb->cat);
    else catalogue_rollback(jb->cat);
  }
  safetensors_close(sf);
  return rc;
}

/* A cached encoding as F32 host floats (malloc'd), its dims checked against want (-1: any).
 * variants are tried in order; 0 with none cached. */
static int get_enc(job *jb, const char *kind, int64_t clip, const char *const *variants, int nv,
                   int nd, const int64_t *want, float **out, int64_t *shape) {
  tensor t;
  int f = 0;
  const char *v = NULL;
  for (int i = 0; i < nv && f == 0; i++) f = enc_cache_get_id(jb->cat, jb->ws, kind, clip, 0, v = variants[i], &t);
  if (f != 1) return f;
  int lead = t.ndim - nd;
  int ok = t.dtype == DTYPE_F32 && (lead == 0 || (lead == 1 && t.shape[0] == 1));
  for (int i = 0; ok && i < nd; i++) {
    shape[i] = t.shape[lead + i];
    ok = want[i] < 0 || shape[i] == want[i];
  }
  int64_t n = shape_numel(t.ndim, t.shape);
  for (int64_t i = 0; ok && i < n; i++) ok = isfinite(((float *)t.data)[i]);
  if (!ok) {
    char sh[96];
    shape_str(t.ndim, t.shape, sh, sizeof sh);
    tensor_free(&t);
    return err_set("clip %lld %s (%s): shape %s or values do not fit the teacher (%d dims, %lld "
                   "channels/width wanted, finite F32)", (long long)clip, kind, v,
                   sh, nd, (long long)want[1]);
  }
  *out = xmalloc((size_t)n * 4);
  memcpy(*out, t.data, (size_t)n * 4);
  tensor_free(&t);
  return 1;
}

static int do_clip(job *jb, int64_t clip) {
  const unet_config *cfg = &jb->net->cfg;
  const char *lv[] = {"mean", "sample"}, *tv[] = {"long", "short"};
  int64_t wl[4] = {-1, cfg->in_ch, -1, -1}, zs[4], wt[2] = {jb->null_ctx ? jb->null_L : -1, cfg->text_dim}, cs[2];
  float *z0 = NULL, *ctx = NULL;
  int f = get_enc(jb, "latent", clip, lv, 2, 4, wl, &z0, zs);
  if (f != 1) return f == 0 ? err_set("clip %lld: no cached latent (run bin/encode)", (long long)clip) : TB_ERR;
  f = get_enc(jb, "text_tokens", clip, tv, 2, 2, wt, &ctx, cs);
  if (f != 1) {
    free(z0);
    return f == 0 ? err_set("clip %lld: no cached text_tokens (run bin/encode)", (long long)clip) : TB_ERR;
  }
  int T = (int)zs[0], H = (int)zs[2], W = (int)zs[3], L = (int)cs[0];
  float *nul = jb->null_ctx ? jb->null_ctx : xcalloc((size_t)L * cfg->text_dim, 4);
  int64_t n = (int64_t)T * cfg->in_ch * H * W;
  uint64_t key = mix64((uint64_t)seed ^ mix64((uint64_t)clip));
  int first = motion_guide_first_index(&jb->s, (float)tau);
  int index = first + (int)(mix64(key ^ 0x1dull) % (uint64_t)(jb->s.n_ddim - first));
  float *buf = xmalloc((size_t)5 * n * 4);
  clip_noise(key, buf + 4 * n, n);
  motion_record r = {.z_t = buf, .eps_c = buf + n, .eps_u = buf + 2 * n, .score = buf + 3 * n};
  int rc = motion_precompute(jb->net, jb->c, &jb->s, T, H, W, L, z0, ctx, nul, buf + 4 * n, index,
                             inv_steps, jb->nl, jb->layers, (float)scale, &r);
  if (rc != TB_OK) err_wrap("clip %lld", (long long)clip);
  char rel[1024], abs[4096], dir[4096];
  snprintf(rel, sizeof rel, "motion/%s/ckpt%lld/clip%lld.safetensors", teacher_name,
           (long long)jb->ckpt_id, (long long)clip);
  fs_join(abs, sizeof abs, jb->ws, rel);
  if (rc == TB_OK) rc = fs_mkdir_p(fs_dirname(dir, sizeof dir, abs));
  if (rc == TB_OK) {
    int64_t rows = motion_ref_total_rows(&r.ref);
    int32_t *ri = xmalloc((size_t)rows * 4);
    float *rv = xmalloc((size_t)rows * 4);
    motion_ref_export(&r.ref, ri, rv);
    int64_t idx64 = index, one = 1, sh4[4] = {T, cfg->in_ch, H, W};
    safetensors_writer *w = safetensors_writer_new();
    tensor ti = tensor_view(DTYPE_I64, 1, &one, &idx64), tE = tensor_view(DTYPE_F32, 1, &one, &r.E);
    tensor tz = tensor_view(DTYPE_F32, 4, sh4, r.z_t), tc = tensor_view(DTYPE_F32, 4, sh4, r.eps_c);
    tensor tu = tensor_view(DTYPE_F32, 4, sh4, r.eps_u), ts = tensor_view(DTYPE_F32, 4, sh4, r.score);
    tensor tri = tensor_view(DTYPE_I32, 1, &rows, ri), trv = tensor_view(DTYPE_F32, 1, &rows, rv);
    safetensors_writer_add(w, "index", &ti);
    safetensors_writer_add(w, "E", &tE);
    safetensors_writer_add(w, "z_t", &tz);
    safetensors_writer_add(w, "eps_c", &tc);
    safetensors_writer_add(w, "eps_u", &tu);
    safetensors_writer_add(w, "score", &ts);
    safetensors_writer_add(w, "ref_idx", &tri);
    safetensors_writer_add(w, "ref_val", &trv);
    json_buf lj = {0}, rj = {0}, kj = {0};
    for (int l = 0; l < r.ref.n; l++) {
      json_buf_printf(&lj, "%s%s", l ? "," : "", r.ref.name[l]);
      json_buf_printf(&rj, "%s%lld", l ? "," : "", (long long)r.ref.rows[l]);
      json_buf_printf(&kj, "%s%d", l ? "," : "", r.ref.nk[l]);
    }
    char num[64];
    safetensors_writer_set_meta(w, "format", "turbo.motion_record.v1");
    safetensors_writer_set_meta(w, "teacher", teacher_name);
    snprintf(num, sizeof num, "%lld", (long long)jb->ckpt_id);
    safetensors_writer_set_meta(w, "teacher_checkpoint", num);
    safetensors_writer_set_meta(w, "layers", lj.data);
    safetensors_writer_set_meta(w, "rows", rj.data);
    safetensors_writer_set_meta(w, "keys", kj.data);
    snprintf(num, sizeof num, "%g", scale);
    safetensors_writer_set_meta(w, "energy_scale", num);
    snprintf(num, sizeof num, "%d", inv_steps);
    safetensors_writer_set_meta(w, "inversion_steps", num);
    safetensors_writer_set_meta(w, "null_context", jb->null_src);
    rc = safetensors_writer_save(w, abs);
    safetensors_writer_free(w);
    json_buf_free(&lj), json_buf_free(&rj), json_buf_free(&kj);
    free(ri), free(rv);
  }
  if (rc == TB_OK) rc = record_rows(jb, clip, rel, abs);
  if (rc == TB_OK)
    log_info("clip %lld: index %d (t %d), E %.4g, %d forwards", (long long)clip, index,
             jb->s.ddim_t[index], (double)r.E, r.forwards);
  motion_ref_free(&r.ref);
  if (!jb->null_ctx) free(nul);
  free(buf), free(z0), free(ctx);
  return rc;
}

/* ---- workers -------------------------------------------------------------------------------- */

static int run_worker(int k, int nw, const int64_t *clips, int64_t n) {
  job jb;
  memset(&jb, 0, sizeof jb);
  jb.ws = catalogue_workspace_dir(workspace);
  jb.cat = catalogue_open_workspace(workspace, CATALOGUE_OPEN_NO_REAP);
  if (!jb.cat) {
    log_error("%s", err_get());
    return 1;
  }
  ops_set_num_threads(1);
  diff_schedule_default(&jb.s);
  if (load_teacher(&jb) != TB_OK) {
    log_error("%s", err_get());
    catalogue_close(jb.cat);
    return 1;
  }
  jb.c = nn_ctx_new();
  if (!jb.null_ctx) jb.null_src = "zeros";
  catalogue_tensor nt;
  if (!jb.null_ctx && catalogue_tensor_find(jb.cat, "text_tokens", 0, 0, -1, "empty", &nt) == 1) {
    int64_t wn[2] = {-1, jb.net->cfg.text_dim};
    jb.null_ctx = read_tensor(&jb, &nt, 2, wn, "empty caption text_emb");
    jb.null_L = jb.null_ctx ? (int)nt.shape[nt.ndim - 2] : 0;
    jb.null_src = "text_tokens:empty";
    catalogue_tensor_clear(&nt);
    if (!jb.null_ctx) {
      log_error("%s", err_get());
      return 1;
    }
  }
  const char *crash = getenv("TURBO_MOTION_CRASH_AFTER");
  int crash_after = crash ? atoi(crash) : 0, made = 0, failed = 0, skipped = 0;
  double t0 = time_now();
  for (int64_t i = k; i < n; i += nw) {
    int d = clip_done(&jb, clips[i]);
    if (d == 1) {
      skipped++;
      continue;
    }
    if (d < 0 || do_clip(&jb, clips[i]) != TB_OK) {
      log_error("%s", err_get());
      failed++;
      continue;
    }
    made++;
    if (crash_after && made >= crash_after) {
      log_warn("worker %d: simulated crash after %d clips", k, made);
      raise(SIGKILL);
    }
  }
  double dt = time_now() - t0;
  log_info("worker %d: %d clips made, %d already cached, %d failed, %.3f clips/s", k, made,
           skipped, failed, dt > 0 ? made / dt : 0.0);
  free(jb.null_ctx);
  nn_ctx_free(jb.c);
  if (jb.have_tm) teacher_model_free(&jb.tm);
  else unet_free(&jb.u);
  catalogue_close(jb.cat);
  return failed ? 1 : 0;
}

int main(int argc, char **argv) {
  log_init("motion");
  arg_opt opts[] = {
      {"workspace", ARG_STR, &workspace, "DIR", "workspace folder (catalogue.db)"},
      {"dataset", ARG_STR, &dataset, "NAME", "dataset whose clips to cache"},
      {"subset", ARG_STR, &subset, "NAME", "subset of the dataset (\"\" for all)"},
      {"teacher", ARG_STR, &teacher_name, "NAME", "teacher model in the catalogue"},
      {"workers", ARG_INT, &workers, "N", "worker processes"},
      {"inv-steps", ARG_INT, &inv_steps, "K", "DDIM inversion steps on a coarse grid (cost K + 5 forwards)"},
      {"tau", ARG_F64, &tau, "F", "guided fraction of the noisiest solver indices"},
      {"scale", ARG_F64, &scale, "S", "energy scale on the mean per-layer MSE"},
      {"seed", ARG_I64, &seed, "N", "seed of each clip's index and noise draw"},
      {"layers", ARG_STR, &layer_sel, "decoder|all", "temporal-attention layers read"},
      {"limit", ARG_INT, &limit, "N", "at most N clips (0: all)"},
      {0}};
  int pos = args_parse(argc, argv, "motion --dataset NAME [options]",
                       "Caches motion-guidance records per clip through the teacher.", opts);
  if (pos < 0) return 2;
  if (!dataset) return log_error("--dataset is required"), 2;
  if (workers < 1 || workers > 64) return log_error("--workers %d: 1..64", workers), 2;
  if (inv_steps < 1 || inv_steps > 200) return log_error("--inv-steps %d: 1..200", inv_steps), 2;
  if (!(tau > 0 && tau <= 1)) return log_error("--tau %g: in (0, 1]", tau), 2;
  if (!(scale > 0) || !isfinite(scale)) return log_error("--scale %g: > 0", scale), 2;
  if (strcmp(layer_sel, "decoder") && strcmp(layer_sel, "all"))
    return log_error("--layers %s: decoder or all", layer_sel), 2;
  catalogue *cat = catalogue_open_workspace(workspace, 0);
  if (!cat) return log_error("%s", err_get()), 1;
  catalogue_dataset ds;
  int f = catalogue_dataset_lookup(cat, dataset, &ds);
  if (f != 1) {
    log_error(f == 0 ? "no dataset named '%s'" : "%s", f == 0 ? dataset : err_get());
    catalogue_close(cat);
    return 1;
  }
  int64_t *clips = NULL, n = 0;
  if (catalogue_dataset_clips(cat, ds.id, -1, subset && *subset ? subset : NULL, &clips, &n) != TB_OK) {
    log_error("%s", err_get());
    catalogue_close(cat);
    return 1;
  }
  catalogue_dataset_clear(&ds);
  if (limit > 0 && n > limit) n = limit;
  int64_t run = 0;
  catalogue_run_begin(cat, "motion", argc, argv, &run);
  log_info("%lld clips of %s/%s, %d workers, %d inversion steps, tau %g, scale %g", (long long)n,
           dataset, subset, workers, inv_steps, tau, scale);
  double t0 = time_now();
  int bad = 0;
  if (workers == 1) {
    bad = run_worker(0, 1, clips, n);
  } else {
    pid_t pids[64];
    for (int k = 0; k < workers; k++) {
      fflush(NULL);
      pids[k] = fork();
      if (pids[k] == 0) _exit(run_worker(k, workers, clips, n));
      if (pids[k] < 0) {
        log_error("fork failed");
        bad = 1;
        workers = k;
        break;
      }
    }
    for (int k = 0; k < workers; k++) {
      int st = 0;
      waitpid(pids[k], &st, 0);
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        log_error("worker %d ended with %s %d", k, WIFSIGNALED(st) ? "signal" : "exit",
                  WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        bad = 1;
      }
    }
  }
  log_info("%lld clips in %.2f s", (long long)n, time_now() - t0);
  catalogue_run_end(cat, run, bad ? CATALOGUE_RUN_FAILED : CATALOGUE_RUN_OK,
                    bad ? "a clip or a worker failed (see the log)" : NULL);
  free(clips);
  catalogue_close(cat);
  return bad ? 1 : 0;
}

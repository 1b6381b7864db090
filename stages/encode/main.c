/* stages/encode/main.c — bin/encode: VAE latents and caption embeddings for every clip of a
 * dataset, cached as tensor shards the catalogue points at (common/enc_cache.h has the kinds,
 * variants and the reader).
 *
 *   bin/encode [--workspace DIR] [--dataset NAME] [--latent mean|sample] [--seed N]
 *              [--vae PATH] [--text PATH] [--text-len L] [--no-text] [--threads N]
 *
 * For each member clip (every split) it encodes what is missing or stale: a latent row or
 * text rows whose shard records another checkpoint checksum than the model's latest
 * checkpoint (the model was retrained), or whose shard is gone. The VAE is the catalogue
 * model "vae" (checkpoint WORKSPACE/models/vae.safetensors unless --vae), the text encoder
 * the text tower of "reward-clip" (models/reward-clip.safetensors unless --text). Everything
 * one run encodes goes into one shard, cache/encode-RUN.safetensors (metadata: the models and
 * their checkpoint checksums, the latent mode and seed), written before its catalogue rows, so
 * a run that dies leaves the catalogue pointing only at complete shards.
 * Latents: mean (default) = scale · posterior mean; sample = scale · a posterior draw from
 * --seed and the clip id (recorded in the variant and the shard metadata).
 *
 * Exit codes: 0 done (also when nothing was missing), 1 failed, 2 bad usage.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/args.h"
#include "common/catalogue.h"
#include "common/enc_cache.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "common/tensor.h"
#include "kernels/nn.h"
#include "kernels/nn/text.h"
#include "kernels/nn/vae.h"
#include "kernels/ops.h"

typedef struct {
  char *name;
  int64_t model_id;
  char *ckpt_sum; /* checksum of the model's latest checkpoint */
} model_ref;

static char *file_sum(const char *path) {
  char *data;
  size_t len;
  if (fs_read_all(path, &data, &len) != TB_OK) return NULL;
  char *hex = xmalloc(17);
  snprintf(hex, 17, "%016llx", (unsigned long long)checksum64(data, len));
  free(data);
  return hex;
}

/* The catalogue model `name` and the checksum of the checkpoint file at path. */
static int model_ref_get(catalogue *cat, const char *name, const char *path, model_ref *r) {
  memset(r, 0, sizeof *r);
  catalogue_model m;
  int f = catalogue_model_lookup(cat, name, &m);
  if (f != 1)
    return f == TB_ERR ? TB_ERR : err_set("no model '%s' in the catalogue (train it: bin/pretrain "
                                          "--model %s)", name, strncmp(name, "reward-", 7) ? name : name + 7);
  r->model_id = m.id;
  catalogue_model_clear(&m);
  r->name = xstrdup(name);
  r->ckpt_sum = file_sum(path);
  if (!r->ckpt_sum) return err_wrap("model %s: ", name);
  return TB_OK;
}

/* Shards already opened (path → the checkpoint checksum their metadata records per kind). */
typedef struct {
  int n;
  char **path;
  safetensors_file **f;
} shard_set;

static const char *shard_model_sum(shard_set *s, const char *ws, const char *rel, const char *kind) {
  int i;
  for (i = 0; i < s->n; i++)
    if (strcmp(s->path[i], rel) == 0) break;
  if (i == s->n) {
    char full[4096];
    fs_join(full, sizeof full, ws, rel);
    safetensors_file *f = NULL;
    if (safetensors_open(full, &f) != TB_OK) f = NULL; /* gone or broken: stale */
    s->path = xrealloc(s->path, sizeof *s->path * (size_t)(s->n + 1));
    s->f = xrealloc(s->f, sizeof *s->f * (size_t)(s->n + 1));
    s->path[s->n] = xstrdup(rel);
    s->f[s->n++] = f;
  }
  if (!s->f[i]) return NULL;
  char key[64];
  snprintf(key, sizeof key, "model_checksum.%s", kind);
  return safetensors_meta_get(s->f[i], key);
}

/* 1 when the row (kind, clip, model, variant) exists and its shard records sum. */
static int fresh(catalogue *cat, shard_set *s, const char *ws, const char *kind, int64_t clip,
                 const model_ref *m, const char *variant) {
  catalogue_tensor t;
  int f = catalogue_tensor_find(cat, kind, clip, 0, m->model_id, variant, &t);
  if (f != 1) return 0;
  const char *sum = shard_model_sum(s, ws, t.path, kind);
  int ok = sum && strcmp(sum, m->ckpt_sum) == 0;
  catalogue_tensor_clear(&t);
  return ok;
}

/* One tensor of the shard being built. */
typedef struct {
  char name[64];
  char kind[24], variant[24];
  int64_t clip;
  int64_t model_id;
  dtype_t dtype;
  int ndim;
  int64_t shape[4];
  float *data;
} pending;

int main(int argc, char **argv) {
  log_init("encode");
  char *workspace = NULL, *dataset = "tailored", *latent = "mean", *vae_path = NULL;
  char *text_path = NULL;
  int threads = 0, text_len = 0, no_text = 0;
  long long seed = 1;
  arg_opt opts[] = {
      {"workspace", ARG_STR, &workspace, "DIR", "workspace (default $TURBO_WORKSPACE or runs/default)"},
      {"dataset", ARG_STR, &dataset, "NAME", "curated dataset whose clips to encode (default tailored)"},
      {"latent", ARG_STR, &latent, "MODE", "mean (default: scale x posterior mean) or sample (a draw)"},
      {"seed", ARG_I64, &seed, "N", "posterior draws with --latent sample (mixed with the clip id)"},
      {"vae", ARG_STR, &vae_path, "PATH", "VAE checkpoint (default WORKSPACE/models/vae.safetensors)"},
      {"text", ARG_STR, &text_path, "PATH", "text encoder checkpoint (default WORKSPACE/models/reward-clip.safetensors)"},
      {"text-len", ARG_INT, &text_len, "L", "caption tokens kept (default: the encoder's max_len)"},
      {"no-text", ARG_FLAG, &no_text, NULL, "latents only"},
      {"threads", ARG_INT, &threads, "N", "op threads (default: all cores)"},
      {0}};
  int pos = args_parse(argc, argv, "encode [options]",
                       "Caches VAE latents and caption embeddings for the clips of a dataset.", opts);
  if (pos < 0) return 2;
  if (pos < argc) {
    log_error("unexpected argument '%s'", argv[pos]);
    return 2;
  }
  int sample = strcmp(latent, "sample") == 0;
  if (!sample && strcmp(latent, "mean") != 0) {
    log_error("--latent is mean or sample, not '%s'", latent);
    return 2;
  }
  if (text_len < 0) {
    log_error("--text-len must be >= 2 (or 0 for the encoder's max_len)");
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
  catalogue_run_begin(cat, "encode", argc, argv, &run);
  char vp[4096], tp[4096];
  if (vae_path) snprintf(vp, sizeof vp, "%s", vae_path);
  else fs_join(vp, sizeof vp, ws, "models/vae.safetensors");
  if (text_path) snprintf(tp, sizeof tp, "%s", text_path);
  else fs_join(tp, sizeof tp, ws, "models/reward-clip.safetensors");
  int rc = TB_OK;
  model_ref mv, mt;
  memset(&mv, 0, sizeof mv);
  memset(&mt, 0, sizeof mt);
  vae v;
  memset(&v, 0, sizeof v);
  text_encoder *te = NULL;
  nn_ctx *c = nn_ctx_new();
  shard_set shards = {0, NULL, NULL};
  pending *pend = NULL;
  int npend = 0, cappend = 0;
  int64_t *ids = NULL, n = 0, dsid = 0;
  const char *variant = sample ? "sample" : "mean";
  catalogue_dataset ds;
  int found = catalogue_dataset_lookup(cat, dataset, &ds);
  if (found != 1) {
    rc = found == TB_ERR ? TB_ERR : err_set("no dataset '%s' in the catalogue (bin/curate --recipe)", dataset);
    goto out;
  }
  dsid = ds.id;
  catalogue_dataset_clear(&ds);
  if ((rc = catalogue_dataset_clips(cat, dsid, -1, NULL, &ids, &n)) != TB_OK) goto out;
  if ((rc = model_ref_get(cat, "vae", vp, &mv)) != TB_OK) goto out;
  if (!no_text && (rc = model_ref_get(cat, "reward-clip", tp, &mt)) != TB_OK) goto out;
  /* what is missing or stale */
  int64_t need_lat = 0, need_txt = 0;
  uint8_t *todo = xcalloc((size_t)(n ? n : 1), 1); /* bit 0 latent, bit 1 text */
  for (int64_t i = 0; i < n; i++) {
    if (!fresh(cat, &shards, ws, "latent", ids[i], &mv, variant)) todo[i] |= 1, need_lat++;
    if (!no_text && !(fresh(cat, &shards, ws, "text_tokens", ids[i], &mt, "long") &&
                      fresh(cat, &shards, ws, "text_tokens", ids[i], &mt, "short") &&
                      fresh(cat, &shards, ws, "text_pooled", ids[i], &mt, "long") &&
                      fresh(cat, &shards, ws, "text_pooled", ids[i], &mt, "short")))
      todo[i] |= 2, need_txt++;
  }
  log_info("encode: dataset %s: %lld clips; %lld need latents (%s), %lld need caption embeddings",
           dataset, (long long)n, (long long)need_lat, variant, (long long)need_txt);
  if (need_lat == 0 && need_txt == 0) {
    free(todo);
    log_info("encode: nothing to do");
    goto out;
  }
  if (need_lat && (rc = vae_load(&v, vp)) != TB_OK) {
    free(todo);
    goto out;
  }
  if (need_lat) vae_freeze(&v);
  int L = 0, Dt = 0;
  if (need_txt) {
    te = text_encoder_load(tp);
    if (!te) {
      rc = TB_ERR;
      free(todo);
      goto out;
    }
    const text_config *tc = text_encoder_config(te);
    L = text_len ? text_len : tc->max_len;
    Dt = tc->dim;
    if (L < 2 || L > tc->max_len) {
      rc = err_set("--text-len %d outside [2, %d] (the encoder's max_len)", L, tc->max_len);
      free(todo);
      goto out;
    }
  }
  progress *pg = progress_new("encode", n, "clips");
  double t0 = time_now();
  for (int64_t i = 0; i < n && rc == TB_OK; i++) {
    if (!todo[i]) {
      progress_add(pg, 1);
      continue;
    }
    if (todo[i] & 1) {
      catalogue_tensor ft;
      int f = catalogue_tensor_find(cat, "frames", ids[i], dsid, 0, NULL, &ft);
      if (f != 1) {
        rc = f == TB_ERR ? TB_ERR : err_set("clip %lld of dataset %s has no frames", (long long)ids[i], dataset);
        break;
      }
      char full[4096];
      fs_join(full, sizeof full, ws, ft.path);
      safetensors_file *sf = NULL;
      char tname[32];
      snprintf(tname, sizeof tname, "clip_%lld", (long long)ids[i]);
      if (safetensors_open(full, &sf) != TB_OK) rc = TB_ERR;
      const safetensors_entry *e = sf ? safetensors_find(sf, tname) : NULL;
      if (rc == TB_OK && (!e || e->dtype != DTYPE_U8 || e->ndim != 4 || e->shape[3] != 3))
        rc = err_set("%s: tensor %s missing or not (T, H, W, 3) u8", ft.path, tname);
      if (rc == TB_OK) {
        int T = (int)e->shape[0], H = (int)e->shape[1], W = (int)e->shape[2], fct = vae_factor(&v);
        if (H % fct || W % fct) rc = err_set("%s: %s is %dx%d, not a multiple of the VAE's factor %d",
                                             ft.path, tname, H, W, fct);
        pending p;
        memset(&p, 0, sizeof p);
        if (rc == TB_OK) {
          p.ndim = 4, p.shape[0] = T, p.shape[1] = v.cfg.z_ch, p.shape[2] = H / fct, p.shape[3] = W / fct;
          p.data = xmalloc(sizeof(float) * (size_t)(T * p.shape[1] * p.shape[2] * p.shape[3]));
          uint64_t s = sample ? hash_mix64((uint64_t)seed * 0x9E3779B97F4A7C15ull ^ (uint64_t)ids[i]) | 1 : 0;
          rc = vae_encode_frames(&v, c, e->data, T, H, W, s, p.data);
        }
        if (rc == TB_OK) {
          snprintf(p.name, sizeof p.name, "latent.%s.%lld", variant, (long long)ids[i]);
          snprintf(p.kind, sizeof p.kind, "latent");
          snprintf(p.variant, sizeof p.variant, "%s", variant);
          p.clip = ids[i], p.model_id = mv.model_id, p.dtype = DTYPE_F32;
          if (npend == cappend) pend = xrealloc(pend, sizeof *pend * (size_t)(cappend = cappend ? 2 * cappend : 64));
          pend[npend++] = p;
        } else {
          free(p.data);
        }
      }
      safetensors_close(sf);
      catalogue_tensor_clear(&ft);
    }
    if (rc == TB_OK && (todo[i] & 2)) {
      catalogue_clip cl;
      int f = catalogue_clip_get(cat, ids[i], &cl);
      if (f != 1) {
        rc = f == TB_ERR ? TB_ERR : err_set("clip %lld is not in the catalogue", (long long)ids[i]);
        break;
      }
      const char *caps[2] = {cl.caption_long ? cl.caption_long : "",
                             cl.caption_short && cl.caption_short[0] ? cl.caption_short
                             : cl.caption_long ? cl.caption_long : ""};
      float *tok = xmalloc(sizeof(float) * (size_t)2 * L * Dt), *pool = xmalloc(sizeof(float) * (size_t)2 * Dt);
      rc = text_encoder_encode(te, caps, 2, L, tok, pool, NULL);
      for (int k = 0; k < 4 && rc == TB_OK; k++) {
        int which = k % 2, pooled = k / 2;
        pending p;
        memset(&p, 0, sizeof p);
        snprintf(p.kind, sizeof p.kind, pooled ? "text_pooled" : "text_tokens");
        snprintf(p.variant, sizeof p.variant, which ? "short" : "long");
        snprintf(p.name, sizeof p.name, "%s.%s.%lld", p.kind, p.variant, (long long)ids[i]);
        p.clip = ids[i], p.model_id = mt.model_id, p.dtype = DTYPE_F32;
        if (pooled) {
          p.ndim = 1, p.shape[0] = Dt;
          p.data = xmalloc(sizeof(float) * (size_t)Dt);
          memcpy(p.data, pool + (size_t)which * Dt, sizeof(float) * (size_t)Dt);
        } else {
          p.ndim = 2, p.shape[0] = L, p.shape[1] = Dt;
          p.data = xmalloc(sizeof(float) * (size_t)L * Dt);
          memcpy(p.data, tok + (size_t)which * L * Dt, sizeof(float) * (size_t)L * Dt);
        }
        if (npend == cappend) pend = xrealloc(pend, sizeof *pend * (size_t)(cappend = cappend ? 2 * cappend : 64));
        pend[npend++] = p;
      }
      free(tok), free(pool);
      catalogue_clip_clear(&cl);
    }
    progress_add(pg, 1);
  }
  progress_free(pg);
  free(todo);
  if (rc != TB_OK) goto out;
  /* the shard, then its rows */
  {
    char rel[128], full[4096], dir[4096];
    snprintf(rel, sizeof rel, "%s/encode-%lld.safetensors", ENC_CACHE_DIR, (long long)run);
    fs_join(full, sizeof full, ws, rel);
    fs_join(dir, sizeof dir, ws, ENC_CACHE_DIR);
    fs_mkdir_p(dir);
    safetensors_writer *w = safetensors_writer_new();
    for (int k = 0; k < npend && rc == TB_OK; k++) {
      tensor t = tensor_view(pend[k].dtype, pend[k].ndim, pend[k].shape, pend[k].data);
      rc = safetensors_writer_add_ref(w, pend[k].name, &t);
    }
    char seedbuf[32];
    snprintf(seedbuf, sizeof seedbuf, "%lld", seed);
    safetensors_writer_set_meta(w, "format", "turbo.encode.v1");
    safetensors_writer_set_meta(w, "dataset", dataset);
    safetensors_writer_set_meta(w, "latent_mode", variant);
    if (sample) safetensors_writer_set_meta(w, "latent_seed", seedbuf);
    safetensors_writer_set_meta(w, "model_checksum.latent", mv.ckpt_sum);
    if (mt.ckpt_sum) {
      safetensors_writer_set_meta(w, "model_checksum.text_tokens", mt.ckpt_sum);
      safetensors_writer_set_meta(w, "model_checksum.text_pooled", mt.ckpt_sum);
    }
    if (rc == TB_OK) rc = safetensors_writer_save(w, full);
    safetensors_writer_free(w);
    safetensors_file *sf = NULL;
    if (rc == TB_OK && safetensors_open(full, &sf) != TB_OK) rc = TB_ERR;
    for (int k = 0; k < npend && rc == TB_OK; k++) {
      const safetensors_entry *e = safetensors_find(sf, pend[k].name);
      catalogue_tensor t;
      memset(&t, 0, sizeof t);
      char hex[17];
      size_t nb = (size_t)(e->end - e->begin);
      snprintf(hex, sizeof hex, "%016llx", (unsigned long long)checksum64(e->data, nb));
      t.kind = pend[k].kind, t.clip_id = pend[k].clip, t.model_id = pend[k].model_id;
      t.variant = pend[k].variant, t.path = rel;
      t.offset = (int64_t)(safetensors_data_offset(sf) + e->begin), t.nbytes = (int64_t)nb;
      t.dtype = pend[k].dtype, t.ndim = pend[k].ndim;
      memcpy(t.shape, pend[k].shape, sizeof pend[k].shape);
      t.checksum = hex;
      rc = catalogue_tensor_insert(cat, &t, NULL);
    }
    safetensors_close(sf);
    if (rc == TB_OK)
      log_info("encode: %d tensors in %.1f s: %s", npend, time_now() - t0, rel);
    catalogue_metric_insert(cat, run, 0, "encoded_tensors", npend);
    catalogue_metric_insert(cat, run, 0, "encode_seconds", time_now() - t0);
  }
out:
  if (rc != TB_OK) log_error("encode: %s", err_get());
  catalogue_run_end(cat, run, rc == TB_OK ? CATALOGUE_RUN_OK : CATALOGUE_RUN_FAILED,
                    rc == TB_OK ? NULL : err_get());
  for (int k = 0; k < npend; k++) free(pend[k].data);
  free(pend);
  for (int k = 0; k < shards.n; k++) {
    free(shards.path[k]);
    safetensors_close(shards.f[k]);
  }
  free(shards.path), free(shards.f);
  free(ids);
  free(mv.name), free(mv.ckpt_sum), free(mt.name), free(mt.ckpt_sum);
  text_encoder_free(te);
  vae_free(&v);
  nn_ctx_free(c);
  catalogue_close(cat);
  return rc == TB_OK ? 0 : 1;
}

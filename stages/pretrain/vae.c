/* stages/pretrain/vae.c — bin/pretrain --model vae: the frame VAE (kernels/nn/vae.h) on the
 * frames of a curated dataset.
 *
 * A run: options → catalogue run row → the dataset's train and val clips (reward_clips_load:
 * u8 frame shards checked against their checksums) → the VAE (fresh, or resumed from
 * WORKSPACE/models/vae.state.safetensors) → steps of AdamW (warm-up, cosine decay, clipping at
 * 1) on batches of random frames of random train clips: loss = L1 + L2 of the decoded posterior
 * sample against the frame + kl_weight · KL (per element) → the scale factor measured on train
 * frames (scale_by_std) → WORKSPACE/models/vae.safetensors (config, scale, dataset in its
 * metadata) → catalogue model "vae" (family "vae"), checkpoint and metric rows → reconstruction
 * PSNR on val: whole frames and, where the catalogue has the clip's scene truth, on the
 * objects' pixels (the pixels whose colour differs from the frame's background, read from the
 * original frame's border).
 * Rerun after it finished: nothing to train (--force trains again from scratch).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/args.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/tensor.h"
#include "kernels/device.h"
#include "kernels/nn/vae.h"
#include "kernels/ops.h"
#include "stages/pretrain/pretrain.h"
#include "stages/pretrain/reward_train.h"

/* One training frame (3, H, W) in [-1, 1]. */
static void frame_pm1(const reward_clips *d, int64_t i, int t, float *out) {
  reward_clips_frame(d, i, t, out);
  int64_t n = (int64_t)3 * d->H * d->W;
  for (int64_t k = 0; k < n; k++) out[k] = out[k] * 2.0f - 1.0f;
}

/* The background colour of a frame: the most common of its border pixels (the world's
 * backgrounds are flat; objects rarely cover the whole border). */
static void border_colour(const uint8_t *f, int H, int W, uint8_t bg[3]) {
  int best = 0;
  memcpy(bg, f, 3);
  for (int probe = 0; probe < 8; probe++) {
    int y = probe < 4 ? 0 : H - 1, x = (probe % 4) * (W - 1) / 3;
    const uint8_t *p = f + ((size_t)y * W + x) * 3;
    int n = 0;
    for (int k = 0; k < W; k++) {
      const uint8_t *q = f + ((size_t)y * W + k) * 3;
      n += abs(q[0] - p[0]) + abs(q[1] - p[1]) + abs(q[2] - p[2]) < 24;
    }
    if (n > best) best = n, memcpy(bg, p, 3);
  }
}

typedef struct {
  double se_all, n_all, se_obj, n_obj;
  int64_t frames;
} psnr_acc;

static double psnr_of(double se, double n) { return n > 0 ? 10.0 * log10(n / fmax(se, 1e-12)) : NAN; }

/* Reconstruction PSNR over `frames` strided frames of every clip of d (mean latents). */
static int evaluate(vae *v, nn_ctx *c, const reward_clips *d, int frames, psnr_acc *a) {
  memset(a, 0, sizeof *a);
  int f = vae_factor(v), H = d->H, W = d->W, h = H / f, w = W / f;
  int F = frames < d->T ? frames : d->T;
  uint8_t *rgb = xmalloc((size_t)F * H * W * 3);
  float *z = xmalloc(sizeof(float) * (size_t)F * v->cfg.z_ch * h * w);
  float *y = xmalloc(sizeof(float) * (size_t)F * 3 * H * W);
  for (int64_t i = 0; i < d->n; i++) {
    for (int k = 0; k < F; k++) {
      int t = F > 1 ? k * (d->T - 1) / (F - 1) : 0;
      memcpy(rgb + (size_t)k * H * W * 3, d->frames[i] + (size_t)t * H * W * 3, (size_t)H * W * 3);
    }
    if (vae_encode_frames(v, c, rgb, F, H, W, 0, z) != TB_OK ||
        vae_decode_latents(v, c, z, F, h, w, y) != TB_OK) {
      free(rgb), free(z), free(y);
      return TB_ERR;
    }
    for (int k = 0; k < F; k++) {
      const uint8_t *o = rgb + (size_t)k * H * W * 3;
      uint8_t bg[3];
      border_colour(o, H, W, bg);
      for (int p = 0; p < H * W; p++) {
        double se = 0;
        for (int ch = 0; ch < 3; ch++) {
          double dd = y[((size_t)k * 3 + ch) * H * W + p] - o[(size_t)p * 3 + ch] / 255.0;
          se += dd * dd;
        }
        a->se_all += se, a->n_all += 3;
        const uint8_t *q = o + (size_t)p * 3;
        if (abs(q[0] - bg[0]) + abs(q[1] - bg[1]) + abs(q[2] - bg[2]) >= 24)
          a->se_obj += se, a->n_obj += 3;
      }
      a->frames++;
    }
  }
  free(rgb), free(z), free(y);
  return TB_OK;
}

static char *file_sum(const char *path) {
  char *data;
  size_t len;
  if (fs_read_all(path, &data, &len) != TB_OK) return NULL;
  char *hex = xmalloc(17);
  snprintf(hex, 17, "%016llx", (unsigned long long)checksum64(data, len));
  free(data);
  return hex;
}

int pretrain_vae(int argc, char **argv) {
  char *workspace = NULL, *dataset = "tailored";
  int steps = 600, batch = 8, threads = 0, save_every = 50, force = 0, quick = 0, eval_only = 0;
  int eval_frames = 4;
  long long seed = 1;
  double lr = 2e-3, kl_weight = 1e-4;
  arg_opt opts[] = {
      {"workspace", ARG_STR, &workspace, "DIR", "workspace (default $TURBO_WORKSPACE or runs/default)"},
      {"dataset", ARG_STR, &dataset, "NAME", "curated dataset to learn from (default tailored)"},
      {"steps", ARG_INT, &steps, "N", "optimiser steps (default 600: about 3.5 minutes at 3 steps/s on one core)"},
      {"batch", ARG_INT, &batch, "N", "frames per step (default 8)"},
      {"lr", ARG_F64, &lr, "LR", "peak learning rate (AdamW, warm-up then cosine decay)"},
      {"kl-weight", ARG_F64, &kl_weight, "W", "weight of the per-element KL term (default 1e-4)"},
      {"seed", ARG_I64, &seed, "N", "initialisation and data-order seed"},
      {"threads", ARG_INT, &threads, "N", "op threads (default: all cores)"},
      {"save-every", ARG_INT, &save_every, "N", "steps between training states (resume points)"},
      {"eval-frames", ARG_INT, &eval_frames, "N", "frames per val clip in the PSNR (default 4)"},
      {"quick", ARG_FLAG, &quick, NULL, "a narrower VAE and few steps (tests, the quick pipeline)"},
      {"force", ARG_FLAG, &force, NULL, "train again from scratch even when a checkpoint exists"},
      {"eval-only", ARG_FLAG, &eval_only, NULL, "evaluate the trained checkpoint on val, no training"},
      {0}};
  int pos = args_parse(argc, argv, "pretrain --model vae [options]",
                       "Trains the frame VAE (LDM AutoencoderKL at the world's size).", opts);
  if (pos < 0) return 2;
  if (pos < argc) {
    log_error("unexpected argument '%s'", argv[pos]);
    return 2;
  }
  if (steps < 1 || batch < 1 || lr <= 0 || save_every < 1 || kl_weight < 0 || eval_frames < 1) {
    log_error("--steps >= 1, --batch >= 1, --lr > 0, --kl-weight >= 0, --save-every >= 1 and "
              "--eval-frames >= 1 are required");
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
  fs_join(ckpt, sizeof ckpt, ws, "models/vae.safetensors");
  fs_join(state, sizeof state, ws, "models/vae.state.safetensors");
  fs_join(dir, sizeof dir, ws, "models");
  fs_mkdir_p(dir);
  reward_clips train, val;
  memset(&train, 0, sizeof train);
  memset(&val, 0, sizeof val);
  int64_t dsid = 0, dsid2 = 0;
  vae v;
  memset(&v, 0, sizeof v);
  nn_ctx *c = nn_ctx_new();
  nn_adamw opt;
  memset(&opt, 0, sizeof opt);
  float *x = NULL, *noise = NULL;
  uint8_t *probe = NULL;
  int rc = TB_OK;
  double t_train = 0;
  if (reward_clips_load(cat, ws, dataset, CATALOGUE_SPLIT_TRAIN, &train, &dsid) != TB_OK ||
      reward_clips_load(cat, ws, dataset, CATALOGUE_SPLIT_VAL, &val, &dsid2) != TB_OK) {
    rc = TB_ERR;
    goto out;
  }
  if (train.n < 1 || val.n < 1) {
    rc = err_set("dataset %s has %lld train and %lld val clips: too few to train on", dataset,
                 (long long)train.n, (long long)val.n);
    goto out;
  }
  vae_config cfg = vae_config_default();
  if (quick) cfg.ch = 8, cfg.groups = 4;
  int f = 1 << (cfg.n_levels - 1);
  if (train.H % f || train.W % f) {
    rc = err_set("dataset %s has %dx%d frames: not a multiple of the VAE's factor %d", dataset,
                 train.H, train.W, f);
    goto out;
  }
  log_info("vae: dataset %s (id %lld): %lld train, %lld val clips of %dx%dx%d", dataset,
           (long long)dsid, (long long)train.n, (long long)val.n, train.T, train.H, train.W);
  int have_ckpt = access(ckpt, R_OK) == 0;
  /* a training state means a run that did not finish (perhaps a killed --force run): it resumes
   * even where an older checkpoint exists */
  int have_state = access(state, R_OK) == 0;
  if ((have_ckpt && !force && !have_state) || eval_only) {
    if (!have_ckpt) {
      rc = err_set("%s: no checkpoint to evaluate (train it first)", ckpt);
      goto out;
    }
    if ((rc = vae_load(&v, ckpt)) != TB_OK) goto out;
    log_info("vae: %s exists: nothing to train (--force trains again)", ckpt);
  } else {
    if ((rc = vae_create(&v, &cfg)) != TB_OK) goto out;
    vae_init_weights(&v, (uint64_t)seed);
    nn_adamw_init(&opt, v.params.total, 0.9f, 0.999f, 1e-8f, 0.0f);
    nn_train_pos tp = {0, 0, hash_mix64((uint64_t)seed ^ 0x5EEDull)};
    if (force) unlink(state);
    if (access(state, R_OK) == 0) {
      if (nn_train_load(state, &v.params, &opt, NULL, &tp) != TB_OK) {
        log_warn("vae: cannot resume from %s (%s); starting again", state, err_get());
        vae_init_weights(&v, (uint64_t)seed);
        nn_adamw_free(&opt);
        nn_adamw_init(&opt, v.params.total, 0.9f, 0.999f, 1e-8f, 0.0f);
        tp = (nn_train_pos){0, 0, hash_mix64((uint64_t)seed ^ 0x5EEDull)};
      } else {
        log_info("vae: resuming from %s at step %lld", state, (long long)tp.step);
      }
    }
    log_info("vae: %lld parameters, %d steps of %d frames, lr %g, kl weight %g, %d op threads",
             (long long)v.params.total, steps, batch, lr, kl_weight, ops_get_num_threads());
    char *cj = vae_config_format(&v.cfg);
    char dsbuf[32];
    snprintf(dsbuf, sizeof dsbuf, "%lld", (long long)dsid);
    const char *meta[6] = {"vae.config", cj, "dataset", dataset, "dataset_id", dsbuf};
    int H = train.H, W = train.W, h = H / f, w = W / f;
    int64_t per = (int64_t)3 * H * W, nz = (int64_t)batch * v.cfg.z_ch * h * w;
    x = xmalloc(sizeof(float) * (size_t)(per * batch));
    noise = xmalloc(sizeof(float) * (size_t)nz);
    progress *pg = progress_new("vae", steps, "steps");
    progress_add(pg, tp.step);
    double t0 = time_now(), ema = NAN;
    int warm = steps / 20 < 1 ? 1 : steps / 20;
    for (int64_t st = tp.step; st < steps && rc == TB_OK; st++) {
      for (int b = 0; b < batch; b++) {
        int64_t i = rt_int(&tp.rng, (int)train.n);
        frame_pm1(&train, i, rt_int(&tp.rng, train.T), x + per * b);
      }
      vae_noise(rt_u64(&tp.rng), noise, nz);
      nn_ctx_reset(c);
      nn_var xv = nn_input(c, x, per * batch, 0), mean, lv;
      vae_encode(&v, c, xv, batch, H, W, &mean, &lv);
      nn_var y = vae_decode(&v, c, nn_gauss_sample(c, mean, lv, noise), batch, h, w);
      nn_var l1 = nn_l1(c, y, xv), l2 = nn_mse(c, y, xv), kl = nn_kl_gauss(c, mean, lv);
      float one = 1.0f, klw = (float)kl_weight, lvals[3];
      device_memcpy_d2h(&lvals[0], nn_data(c, l1), sizeof(float));
      device_memcpy_d2h(&lvals[1], nn_data(c, l2), sizeof(float));
      device_memcpy_d2h(&lvals[2], nn_data(c, kl), sizeof(float));
      nn_var ys[3] = {l1, l2, kl};
      const float *dys[3] = {&one, &one, &klw};
      nn_params_zero_grad(&v.params);
      nn_backward_many(c, 3, ys, dys);
      nn_grad_clip(v.params.grad, v.params.total, 1.0f);
      float lrs = nn_lr_at(NN_LR_COSINE, st, (float)lr, warm, steps, (float)lr * 0.05f);
      nn_adamw_step(&opt, v.params.data, v.params.grad, lrs);
      tp.step = st + 1;
      tp.data_pos += batch;
      double lv_ = lvals[0] + lvals[1] + kl_weight * lvals[2];
      if (!isfinite(lv_)) {
        rc = err_set("vae: the loss is %g at step %lld (lower --lr)", lv_, (long long)tp.step);
        break;
      }
      ema = isnan(ema) ? lv_ : 0.95 * ema + 0.05 * lv_;
      char note[96];
      snprintf(note, sizeof note, "loss %.4f (l2 %.4f, kl %.2f)", ema, lvals[1], lvals[2]);
      progress_set_note(pg, note);
      progress_add(pg, 1);
      if (tp.step % 10 == 0 || tp.step == steps) {
        catalogue_metric_insert(cat, run, tp.step, "loss", ema);
        catalogue_metric_insert(cat, run, tp.step, "l2", lvals[1]);
        catalogue_metric_insert(cat, run, tp.step, "kl", lvals[2]);
      }
      if (tp.step % save_every == 0 && tp.step < steps &&
          nn_train_save(state, &v.params, &opt, NULL, &tp, 3, meta) != TB_OK)
        log_warn("vae: training state not saved: %s", err_get());
    }
    progress_free(pg);
    t_train = time_now() - t0;
    free(cj);
    if (rc != TB_OK) goto out;
    /* scale_by_std on up to 64 train frames (posterior draws, as LDM measures it) */
    int np = train.n * train.T < 64 ? (int)(train.n * train.T) : 64;
    probe = xmalloc((size_t)np * H * W * 3);
    for (int k = 0; k < np; k++) {
      int64_t i = (int64_t)k % train.n;
      int t = (int)((k / train.n) * 5 % train.T);
      memcpy(probe + (size_t)k * H * W * 3, train.frames[i] + (size_t)t * H * W * 3, (size_t)H * W * 3);
    }
    float scale = 1.0f;
    if ((rc = vae_measure_scale(&v, c, probe, np, H, W, (uint64_t)seed + 17, &scale)) != TB_OK) goto out;
    v.cfg.scale = scale;
    char steps_s[32], secs[32];
    snprintf(steps_s, sizeof steps_s, "%d", steps);
    snprintf(secs, sizeof secs, "%.1f", t_train);
    const char *extra[8] = {"dataset", dataset, "dataset_id", dsbuf, "steps", steps_s,
                            "train_seconds", secs};
    if ((rc = vae_save_meta(&v, ckpt, 4, extra)) != TB_OK) goto out;
    unlink(state);
    log_info("vae: trained in %.1f s (%d steps, loss %.4f), scale %.5f: %s", t_train, steps, ema,
             (double)scale, ckpt);
    char *cj2 = vae_config_format(&v.cfg);
    size_t cl = strlen(cj2) + 256;
    char *conf = xmalloc(cl);
    snprintf(conf, cl, "{\"model\":%s,\"dataset\":\"%s\",\"dataset_id\":%lld,\"steps\":%d,"
             "\"batch\":%d,\"lr\":%g,\"kl_weight\":%g,\"seed\":%lld}", cj2, dataset,
             (long long)dsid, steps, batch, lr, kl_weight, seed);
    int64_t model_id = 0;
    char *sum = file_sum(ckpt);
    if (catalogue_model_upsert(cat, "vae", "vae", conf, run, &model_id) != TB_OK ||
        catalogue_checkpoint_insert(cat, model_id, steps, "models/vae.safetensors", sum, run, NULL) != TB_OK)
      log_warn("vae: catalogue rows not written: %s", err_get());
    free(sum), free(conf), free(cj2);
    catalogue_metric_insert(cat, run, steps, "train_seconds", t_train);
    catalogue_metric_insert(cat, run, steps, "scale", scale);
  }
  vae_freeze(&v);
  {
    psnr_acc a;
    double te = time_now();
    if (evaluate(&v, c, &val, eval_frames, &a) != TB_OK) {
      log_warn("vae: evaluation failed: %s", err_get());
    } else {
      double pa = psnr_of(a.se_all, a.n_all), po = psnr_of(a.se_obj, a.n_obj);
      log_info("vae val: %lld frames of %lld clips: PSNR %.2f dB whole frame, %.2f dB on object "
               "pixels (%.1f%% of the pixels) in %.1f s", (long long)a.frames, (long long)val.n,
               pa, po, a.n_all > 0 ? 100.0 * a.n_obj / a.n_all : 0.0, time_now() - te);
      catalogue_metric_insert(cat, run, steps, "val_psnr", pa);
      if (isfinite(po)) catalogue_metric_insert(cat, run, steps, "val_psnr_objects", po);
    }
  }
out:
  if (rc != TB_OK) log_error("vae: %s", err_get());
  catalogue_run_end(cat, run, rc == TB_OK ? CATALOGUE_RUN_OK : CATALOGUE_RUN_FAILED,
                    rc == TB_OK ? NULL : err_get());
  free(x), free(noise), free(probe);
  nn_adamw_free(&opt);
  nn_ctx_free(c);
  vae_free(&v);
  reward_clips_free(&train);
  reward_clips_free(&val);
  catalogue_close(cat);
  return rc == TB_OK ? 0 : 1;
}

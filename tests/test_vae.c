/* The frame VAE (kernels/nn/vae.h):
 *  - gradients of a whole tiny VAE (encode, posterior draw, decode, KL, L1) against central
 *    finite differences, for the input frames and parameters of every kind of layer;
 *  - shapes: 64×64 frames of the default config give 16×16×4 latents;
 *  - vae_save / vae_load: the config (with the scale) and every parameter come back, and the
 *    loaded VAE computes the same bits; a file without vae.config is refused;
 *  - vae_measure_scale: 1 / std of the latents, and latents encoded with it have unit std;
 *    vae_encode_frames with a seed samples (differs from the mean by about the posterior std),
 *    and vae_decode_latents undoes the scale;
 *  - a short training run (bounded steps) on frames of the built-in world's kind (flat
 *    backgrounds, coloured shapes) lowers the reconstruction error measurably.
 * (The match against diffusers' AutoencoderKL is in test_real_models.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/safetensors.h"
#include "kernels/device.h"
#include "kernels/nn.h"
#include "kernels/nn/vae.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

static vae_config tiny_config(void) {
  vae_config c = vae_config_default();
  c.z_ch = 2;
  c.ch = 4;
  c.n_levels = 2;
  c.ch_mult[0] = 1, c.ch_mult[1] = 2;
  c.n_res = 1;
  c.groups = 2;
  return c;
}

/* ---- finite differences over the whole model ------------------------------------------------ */

#define FN 2
#define FH 8
#define FW 8

typedef struct {
  vae *v;
  float *x;                 /* (FN, 3, FH, FW) */
  float *r_mean, *r_lv, *r_y; /* projections */
  float *noise;
  int64_t nx, nz, ny;
} fd_case;

/* loss = sum(mean r_mean) + sum(logvar r_lv) + sum(decode(draw) r_y) + kl + l1(decode, x) */
static double fd_loss(fd_case *k, nn_ctx *c, int grad, float *dx) {
  nn_ctx_reset(c);
  nn_var x = nn_input(c, k->x, k->nx, grad), mean, lv;
  vae_encode(k->v, c, x, FN, FH, FW, &mean, &lv);
  nn_var z = nn_gauss_sample(c, mean, lv, k->noise);
  int f = vae_factor(k->v);
  nn_var y = vae_decode(k->v, c, z, FN, FH / f, FW / f);
  nn_var kl = nn_kl_gauss(c, mean, lv), l1 = nn_l1(c, y, x);
  double L = 0;
  const float *m = nn_data(c, mean), *l = nn_data(c, lv), *yy = nn_data(c, y);
  for (int64_t i = 0; i < k->nz; i++) L += (double)m[i] * k->r_mean[i] + (double)l[i] * k->r_lv[i];
  for (int64_t i = 0; i < k->ny; i++) L += (double)yy[i] * k->r_y[i];
  L += nn_data(c, kl)[0] + nn_data(c, l1)[0];
  if (grad) {
    float one = 1.0f;
    nn_var ys[5] = {mean, lv, y, kl, l1};
    const float *dys[5] = {k->r_mean, k->r_lv, k->r_y, &one, &one};
    nn_params_zero_grad(&k->v->params);
    nn_backward_many(c, 5, ys, dys);
    memcpy(dx, nn_grad(c, x), sizeof(float) * (size_t)k->nx);
  }
  return L;
}

static void test_fd(void) {
  vae_config cfg = tiny_config();
  vae v;
  CHECK(vae_create(&v, &cfg) == TB_OK);
  vae_init_weights(&v, 3);
  fd_case k = {.v = &v};
  int f = vae_factor(&v);
  k.nx = (int64_t)FN * 3 * FH * FW;
  k.nz = (int64_t)FN * cfg.z_ch * (FH / f) * (FW / f);
  k.ny = k.nx;
  k.x = xmalloc(sizeof(float) * k.nx);
  k.r_mean = xmalloc(sizeof(float) * k.nz);
  k.r_lv = xmalloc(sizeof(float) * k.nz);
  k.r_y = xmalloc(sizeof(float) * k.ny);
  k.noise = xmalloc(sizeof(float) * k.nz);
  test_fill_uniform(k.x, k.nx, 1, -1, 1);
  test_fill_uniform(k.r_mean, k.nz, 2, -1, 1);
  test_fill_uniform(k.r_lv, k.nz, 3, -1, 1);
  test_fill_uniform(k.r_y, k.ny, 4, -1, 1);
  vae_noise(5, k.noise, k.nz);
  nn_ctx *c = nn_ctx_new();
  float *dx = xmalloc(sizeof(float) * k.nx);
  fd_loss(&k, c, 1, dx);
  /* parameter gradients, host copies */
  float *pg = xmalloc(sizeof(float) * (size_t)v.params.total);
  device_memcpy_d2h(pg, v.params.grad, sizeof(float) * (size_t)v.params.total);
  int bad = 0, probes = 0;
  double worst = 0;
  const float e = 1e-2f;
  /* input frames */
  for (int64_t j = 0; j < k.nx; j += 37) {
    float keep = k.x[j];
    k.x[j] = keep + e;
    double lp = fd_loss(&k, c, 0, NULL);
    k.x[j] = keep - e;
    double lm = fd_loss(&k, c, 0, NULL);
    k.x[j] = keep;
    double fd = (lp - lm) / (2.0 * e), an = dx[j];
    double err = fabs(fd - an) / (3e-2 + fabs(fd));
    worst = fmax(worst, err);
    probes++;
    if (err > 3e-2 && bad++ < 5) fprintf(stderr, "x[%lld]: analytic %.6g, fd %.6g\n", (long long)j, an, fd);
  }
  /* three values of every parameter tensor whose name says a kind of layer we want covered */
  static const char *probe[] = {"encoder.conv_in.weight", "encoder.down.0.block.0.conv1.weight",
                                "encoder.down.0.downsample.conv.weight",
                                "encoder.down.1.block.0.nin_shortcut.weight",
                                "encoder.mid.attn_1.q.weight", "encoder.mid.attn_1.k.weight",
                                "encoder.mid.attn_1.proj_out.bias", "encoder.norm_out.weight",
                                "quant_conv.weight", "post_quant_conv.bias",
                                "decoder.mid.attn_1.v.weight", "decoder.up.1.upsample.conv.weight",
                                "decoder.up.0.block.0.nin_shortcut.weight",
                                "decoder.up.0.block.1.norm2.bias", "decoder.conv_out.weight"};
  float *host = xmalloc(sizeof(float) * (size_t)v.params.total);
  device_memcpy_d2h(host, v.params.data, sizeof(float) * (size_t)v.params.total);
  for (size_t q = 0; q < sizeof probe / sizeof *probe; q++) {
    int idx = nn_params_find(&v.params, probe[q]);
    CHECKF(idx >= 0, "no parameter %s", probe[q]);
    if (idx < 0) continue;
    const nn_param_info *in = &v.params.info[idx];
    for (int t = 0; t < 3; t++) {
      int64_t j = in->offset + (in->numel * t) / 3;
      float keep = host[j], pv;
      pv = keep + e;
      device_memcpy_h2d(v.params.data + j, &pv, sizeof pv);
      double lp = fd_loss(&k, c, 0, NULL);
      pv = keep - e;
      device_memcpy_h2d(v.params.data + j, &pv, sizeof pv);
      double lm = fd_loss(&k, c, 0, NULL);
      device_memcpy_h2d(v.params.data + j, &keep, sizeof keep);
      double fd = (lp - lm) / (2.0 * e), an = pg[j];
      double err = fabs(fd - an) / (3e-2 + fabs(fd));
      worst = fmax(worst, err);
      probes++;
      if (err > 3e-2 && bad++ < 5)
        fprintf(stderr, "%s[%lld]: analytic %.6g, fd %.6g\n", in->name,
                (long long)(j - in->offset), an, fd);
    }
  }
  printf("whole-VAE gradients: %d probes, worst relative error %.2e\n", probes, worst);
  CHECKF(bad == 0, "whole-VAE gradients: %d of %d probes disagree with finite differences", bad,
         probes);
  free(host), free(pg), free(dx);
  free(k.x), free(k.r_mean), free(k.r_lv), free(k.r_y), free(k.noise);
  nn_ctx_free(c);
  vae_free(&v);
}

/* ---- frames of the world's kind ---------------------------------------------------------------- */

/* N frames (N, H, W, 3): a flat background and one or two flat squares/discs, from seed */
static uint8_t *toy_frames(int N, int H, int W, uint64_t seed) {
  static const uint8_t pal[8][3] = {{220, 40, 40}, {40, 200, 60}, {50, 80, 220}, {230, 210, 40},
                                    {200, 60, 200}, {40, 200, 210}, {240, 240, 240}, {20, 20, 20}};
  uint8_t *f = xmalloc((size_t)N * H * W * 3);
  uint64_t s = seed;
  for (int n = 0; n < N; n++) {
    int bg = (int)(test_rand_u64(&s) % 8);
    uint8_t *fr = f + (size_t)n * H * W * 3;
    for (int p = 0; p < H * W; p++) memcpy(fr + 3 * p, pal[bg], 3);
    int no = 1 + (int)(test_rand_u64(&s) % 2);
    for (int o = 0; o < no; o++) {
      int col = (int)(test_rand_u64(&s) % 8);
      if (col == bg) col = (col + 3) % 8;
      int r = H / 8 + (int)(test_rand_u64(&s) % (uint64_t)(H / 6));
      int cx = r + (int)(test_rand_u64(&s) % (uint64_t)(W - 2 * r));
      int cy = r + (int)(test_rand_u64(&s) % (uint64_t)(H - 2 * r));
      int disc = (int)(test_rand_u64(&s) % 2);
      for (int y = cy - r; y < cy + r; y++)
        for (int x = cx - r; x < cx + r; x++) {
          int dx = x - cx, dy = y - cy;
          if (disc && dx * dx + dy * dy > r * r) continue;
          memcpy(fr + 3 * ((size_t)y * W + x), pal[col], 3);
        }
    }
  }
  return f;
}

/* ---- shapes, checkpoints, the scale ------------------------------------------------------------ */

static void test_shapes_save_scale(void) {
  vae_config d = vae_config_default();
  vae v;
  CHECK(vae_create(&v, &d) == TB_OK);
  CHECK(vae_factor(&v) == 4);
  vae_init_weights(&v, 11);
  printf("default VAE: %lld parameters, factor %d\n", (long long)v.params.total, vae_factor(&v));
  nn_ctx *c = nn_ctx_new();
  int N = 3, H = 64, W = 64;
  uint8_t *rgb = toy_frames(N, H, W, 9);
  int64_t nz = (int64_t)N * 4 * 16 * 16;
  float *z0 = xmalloc(sizeof(float) * nz), *z1 = xmalloc(sizeof(float) * nz);
  CHECK(vae_encode_frames(&v, c, rgb, N, H, W, 0, z0) == TB_OK);
  /* a sample differs from the mean; the same seed draws the same sample */
  CHECK(vae_encode_frames(&v, c, rgb, N, H, W, 77, z1) == TB_OK);
  double dd = 0;
  for (int64_t i = 0; i < nz; i++) dd += fabs((double)z1[i] - z0[i]);
  CHECKF(dd / nz > 1e-3, "a posterior sample equals the mean (mean |diff| %g)", dd / nz);
  float *z2 = xmalloc(sizeof(float) * nz);
  CHECK(vae_encode_frames(&v, c, rgb, N, H, W, 77, z2) == TB_OK);
  CHECK(memcmp(z1, z2, sizeof(float) * nz) == 0);
  /* the scale: 1/std of the unscaled sampled latents; scaled latents have unit std */
  float scale = 0;
  CHECK(vae_measure_scale(&v, c, rgb, N, H, W, 77, &scale) == TB_OK);
  double s = 0, ss = 0;
  for (int64_t i = 0; i < nz; i++) s += z1[i];
  for (int64_t i = 0; i < nz; i++) ss += (z1[i] - s / nz) * (z1[i] - s / nz);
  double sd = sqrt(ss / (nz - 1));
  CHECKF(fabs(scale * sd - 1.0) < 1e-4, "scale %g but the latents' std is %g", (double)scale, sd);
  v.cfg.scale = scale;
  CHECK(vae_encode_frames(&v, c, rgb, N, H, W, 77, z2) == TB_OK);
  s = ss = 0;
  for (int64_t i = 0; i < nz; i++) s += z2[i];
  for (int64_t i = 0; i < nz; i++) ss += (z2[i] - s / nz) * (z2[i] - s / nz);
  CHECKF(fabs(sqrt(ss / (nz - 1)) - 1.0) < 1e-3, "scaled latents have std %g, not 1",
         sqrt(ss / (nz - 1)));
  printf("scale_by_std: %.5f (unscaled std %.5f)\n", (double)scale, sd);
  /* decode undoes the scale: decoding the scaled latents equals decoding with scale 1 */
  int64_t np = (int64_t)N * 3 * H * W;
  float *a = xmalloc(sizeof(float) * np), *b = xmalloc(sizeof(float) * np);
  CHECK(vae_decode_latents(&v, c, z2, N, 16, 16, a) == TB_OK);
  float keep = v.cfg.scale;
  v.cfg.scale = 1.0f;
  for (int64_t i = 0; i < nz; i++) z1[i] = z2[i] / keep;
  CHECK(vae_decode_latents(&v, c, z1, N, 16, 16, b) == TB_OK);
  v.cfg.scale = keep;
  double md = 0;
  for (int64_t i = 0; i < np; i++) md = fmax(md, fabs((double)a[i] - b[i]));
  CHECKF(md < 1e-5, "decode of scaled latents differs by %g", md);
  for (int64_t i = 0; i < np; i++) CHECK(a[i] >= 0.0f && a[i] <= 1.0f);
  /* save / load */
  char path[512];
  snprintf(path, sizeof path, "%s/vae.safetensors", test_outdir());
  const char *meta[2] = {"dataset", "toy"};
  CHECK(vae_save_meta(&v, path, 1, meta) == TB_OK);
  vae u;
  CHECKF(vae_load(&u, path) == TB_OK, "%s", err_get());
  CHECK(memcmp(&u.cfg, &v.cfg, sizeof u.cfg) == 0);
  CHECK(u.params.total == v.params.total);
  CHECK(vae_encode_frames(&u, c, rgb, N, H, W, 77, z1) == TB_OK);
  CHECK(memcmp(z1, z2, sizeof(float) * nz) == 0);
  vae_free(&u);
  /* refusals: not a VAE checkpoint; a bad config */
  CHECK(nn_params_save(&v.params, path) == TB_OK);
  CHECK(vae_load(&u, path) == TB_ERR);
  CHECKF(strstr(err_get(), "vae.config") != NULL, "message: %s", err_get());
  vae_config bad;
  CHECK(vae_config_parse(&bad, "{\"in_ch\":3}") == TB_ERR);
  CHECK(vae_config_parse(&bad, "{\"in_ch\":3,\"z_ch\":4,\"ch\":12,\"n_levels\":3,\"ch_mult\":[1,2,4],"
                               "\"n_res\":1,\"groups\":8,\"mid_attn\":1,\"scale\":1}") == TB_ERR);
  printf("refused: %s\n", err_get());
  CHECK(vae_encode_frames(&v, c, rgb, N, 62, 64, 0, z1) == TB_ERR); /* not a multiple of 4 */
  free(a), free(b), free(z0), free(z1), free(z2), free(rgb);
  nn_ctx_free(c);
  vae_free(&v);
}

/* ---- a short training run ------------------------------------------------------------------ */

static double recon_mse(vae *v, nn_ctx *c, const uint8_t *rgb, int N, int H, int W) {
  int f = vae_factor(v);
  int64_t nz = (int64_t)N * v->cfg.z_ch * (H / f) * (W / f), np = (int64_t)N * 3 * H * W;
  float *z = xmalloc(sizeof(float) * nz), *y = xmalloc(sizeof(float) * np);
  TB_CHECK(vae_encode_frames(v, c, rgb, N, H, W, 0, z) == TB_OK);
  TB_CHECK(vae_decode_latents(v, c, z, N, H / f, W / f, y) == TB_OK);
  double s = 0;
  for (int n = 0; n < N; n++)
    for (int ch = 0; ch < 3; ch++)
      for (int p = 0; p < H * W; p++) {
        double d = y[((size_t)n * 3 + ch) * H * W + p] - rgb[((size_t)n * H * W + p) * 3 + ch] / 255.0;
        s += d * d;
      }
  free(z), free(y);
  return s / (double)np;
}

static void test_learns(void) {
  vae_config cfg = vae_config_default();
  cfg.ch = 8, cfg.groups = 4; /* smaller than the default, the same shape */
  vae v;
  CHECK(vae_create(&v, &cfg) == TB_OK);
  vae_init_weights(&v, 1);
  int H = 32, W = 32, NT = 64, B = 8, steps = 300;
  float lr = 2e-3f;
  uint8_t *train = toy_frames(NT, H, W, 100), *val = toy_frames(16, H, W, 200);
  nn_ctx *c = nn_ctx_new();
  double before = recon_mse(&v, c, val, 16, H, W);
  nn_adamw opt;
  nn_adamw_init(&opt, v.params.total, 0.9f, 0.999f, 1e-8f, 0.0f);
  int64_t per = (int64_t)3 * H * W;
  float *x = xmalloc(sizeof(float) * per * B);
  int f = vae_factor(&v);
  int64_t nz = (int64_t)B * cfg.z_ch * (H / f) * (W / f);
  float *noise = xmalloc(sizeof(float) * nz);
  for (int st = 0; st < steps; st++) {
    for (int b = 0; b < B; b++) {
      int i = (st * B + b) % NT;
      for (int ch = 0; ch < 3; ch++)
        for (int p = 0; p < H * W; p++)
          x[b * per + ch * H * W + p] = train[((size_t)i * H * W + p) * 3 + ch] * (2.0f / 255) - 1;
    }
    vae_noise((uint64_t)st + 1, noise, nz);
    nn_ctx_reset(c);
    nn_var xv = nn_input(c, x, per * B, 0), mean, lv;
    vae_encode(&v, c, xv, B, H, W, &mean, &lv);
    /* bin/pretrain --model vae's objective: L1 + L2 of the decoded posterior draw, small KL */
    nn_var y = vae_decode(&v, c, nn_gauss_sample(c, mean, lv, noise), B, H / f, W / f);
    nn_var l1 = nn_l1(c, y, xv), l2 = nn_mse(c, y, xv), kl = nn_kl_gauss(c, mean, lv);
    float one = 1.0f, klw = 1e-4f;
    nn_var ys[3] = {l1, l2, kl};
    const float *dys[3] = {&one, &one, &klw};
    nn_params_zero_grad(&v.params);
    nn_backward_many(c, 3, ys, dys);
    nn_grad_clip(v.params.grad, v.params.total, 1.0f);
    nn_adamw_step(&opt, v.params.data, v.params.grad, lr);
  }
  double after = recon_mse(&v, c, val, 16, H, W);
  printf("training %d steps of %d frames: val reconstruction MSE %.5f -> %.5f (PSNR %.2f -> %.2f dB)\n",
         steps, B, before, after, 10 * log10(1 / before), 10 * log10(1 / after));
  CHECKF(after < 0.6 * before, "reconstruction MSE %.5f -> %.5f: not 40%% lower", before, after);
  free(x), free(noise), free(train), free(val);
  nn_adamw_free(&opt);
  nn_ctx_free(c);
  vae_free(&v);
}

int main(void) {
  test_begin("test_vae");
  ops_set_num_threads(1); /* one thread: on a shared 2-core machine OpenMP's spin-waits cost */
  for (int be = OPS_CPU_REF; be <= OPS_CPU_FAST; be++) {
    CHECK(ops_backend_set((ops_backend_id)be) == TB_OK);
    printf("-- %s\n", ops_backend_name((ops_backend_id)be));
    test_fd();
  }
  test_shapes_save_scale();
  test_learns();
  return test_finish();
}

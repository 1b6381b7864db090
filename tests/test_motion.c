/* Motion guidance (kernels/motion.h): the top-1 and masked-MSE ops (reference, fast path, FD
 * backward), references extracted from kept temporal maps, the energy (zero when the reference
 * is the sample itself), dE/dz through a whole UNet against central finite differences, each
 * sample's score in a batch equal to its score alone, the flat host form (round trip and
 * refusals), and only the chosen layers kept. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/motion.h"
#include "kernels/nn.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

enum { T = 4, H = 8, W = 8, L = 3, TD = 6 };

static unet_config tiny_config(void) {
  unet_config c = unet_config_default();
  c.model_ch = 8;
  c.n_levels = 2;
  c.ch_mult[0] = 1, c.ch_mult[1] = 2;
  c.n_res = 1;
  c.attn_levels = 0x3;
  c.head_ch = 4;
  c.text_dim = TD;
  c.max_frames = T;
  c.groups = 4;
  return c;
}

static void test_ops(void) {
  enum { R = 37, N = 7 };
  float p[R * N], val[R], val2[R];
  int32_t idx[R], idx2[R];
  test_fill_uniform(p, R * N, 1, 0, 1);
  p[5 * N + 2] = p[5 * N + 4] = 2.0f; /* ties: the first wins */
  const ops_backend *ref = ops_backend_get(OPS_CPU_REF), *fast = ops_backend_get(OPS_CPU_FAST);
  ref->attn_top1(idx, val, p, R, N);
  fast->attn_top1(idx2, val2, p, R, N);
  CHECK(memcmp(idx, idx2, sizeof idx) == 0 && memcmp(val, val2, sizeof val) == 0);
  int ok = 1;
  for (int r = 0; r < R; r++)
    for (int j = 0; j < N; j++) ok &= p[r * N + j] <= val[r] && p[r * N + idx[r]] == val[r];
  CHECKF(ok, "attn_top1 did not find the row maxima");
  CHECK(idx[5] == 2);
  /* masked MSE against shifted values: by hand, FD of the backward, fast = reference */
  float v[R];
  for (int r = 0; r < R; r++) v[r] = val[r] * 0.5f + 0.1f;
  double want = 0;
  for (int r = 0; r < R; r++) want += pow((double)p[r * N + idx[r]] - v[r], 2);
  want /= R;
  float l1, l2;
  ref->masked_mse_fwd(&l1, p, idx, v, R, N);
  fast->masked_mse_fwd(&l2, p, idx, v, R, N);
  CHECKF(fabs(l1 - want) < 1e-6 * want && l1 == l2, "masked mse %g %g want %g", l1, l2, want);
  float dp[R * N], dp2[R * N], fd[R * N];
  for (int i = 0; i < R * N; i++) dp[i] = dp2[i] = 0.25f; /* backward accumulates */
  ref->masked_mse_bwd(dp, 1.5f, p, idx, v, R, N);
  fast->masked_mse_bwd(dp2, 1.5f, p, idx, v, R, N);
  CHECK(memcmp(dp, dp2, sizeof dp) == 0);
  for (int i = 0; i < R * N; i++) {
    float q[R * N];
    memcpy(q, p, sizeof q);
    const double h = 1e-3;
    float lp, lm;
    q[i] = (float)(p[i] + h);
    ref->masked_mse_fwd(&lp, q, idx, v, R, N);
    q[i] = (float)(p[i] - h);
    ref->masked_mse_fwd(&lm, q, idx, v, R, N);
    fd[i] = (float)(0.25 + 1.5 * ((double)lp - lm) / (2 * h));
  }
  check_close_f32("masked_mse_bwd vs FD", dp, fd, R * N, 2e-4, 1e-2);
}

typedef struct {
  float *z, *t, *ctx;
} inputs;

static void make_inputs(inputs *in, int B, uint64_t seed) {
  int64_t nz = (int64_t)B * T * 4 * H * W;
  in->z = xmalloc((size_t)nz * 4);
  in->t = xmalloc((size_t)B * 4);
  in->ctx = xmalloc((size_t)B * L * TD * 4);
  test_fill_uniform(in->z, nz, seed, -1.5f, 1.5f);
  test_fill_uniform(in->ctx, (int64_t)B * L * TD, seed + 1, -1, 1);
  for (int b = 0; b < B; b++) in->t[b] = 600.0f + 37.0f * (float)b;
}

static void free_inputs(inputs *in) { free(in->z), free(in->t), free(in->ctx); }

int main(void) {
  test_begin("test_motion");
  ops_set_num_threads(1);
  test_ops();

  unet_config cfg = tiny_config();
  unet u;
  CHECK(unet_create(&u, &cfg) == TB_OK);
  unet_init_weights(&u, 3, 0);
  unet_freeze(&u);
  const char *layers[8];
  int nl = unet_temporal_layers(&u, 1, layers, 8);
  const char *all[8];
  int na = unet_temporal_layers(&u, 0, all, 8);
  printf("temporal layers: %d, decoder %d (%s ... %s)\n", na, nl, layers[0], layers[nl - 1]);
  CHECK(nl >= 2 && na > nl);
  nn_ctx *c = nn_ctx_new();
  const float scale = 1e4f;

  /* a reference keeps only the chosen layers, with one row per (position, head, frame) */
  inputs a, r;
  make_inputs(&a, 1, 10);
  make_inputs(&r, 1, 20);
  memcpy(r.ctx, a.ctx, (size_t)L * TD * 4); /* the clip's own caption */
  motion_ref ref;
  CHECKF(motion_ref_extract(&u, c, nl, layers, 1, T, H, W, L, r.z, r.t, NULL, NULL, r.ctx,
                            &ref) == TB_OK, "%s", err_get());
  CHECK(ref.n == nl && ref.B == 1);
  for (int l = 0; l < ref.n; l++) CHECK(strcmp(ref.name[l], layers[l]) == 0 && ref.nk[l] == T);

  /* E = 0 when the reference is the sample itself */
  {
    motion_ref self;
    CHECK(motion_ref_extract(&u, c, nl, layers, 1, T, H, W, L, a.z, a.t, NULL, NULL, a.ctx,
                             &self) == TB_OK);
    float E = -1;
    CHECK(motion_score(&u, c, &self, scale, 1, T, H, W, L, a.z, a.t, NULL, NULL, a.ctx, NULL,
                       NULL, &E) == TB_OK);
    CHECKF(E == 0.0f, "E of a sample against its own reference is %g", E);
    motion_ref_free(&self);
  }

  /* dE/dz against central finite differences on a few latent entries */
  int64_t nz = (int64_t)T * 4 * H * W;
  float *g = xmalloc((size_t)nz * 4), *eps = xmalloc((size_t)nz * 4);
  float E0 = 0;
  CHECK(motion_score(&u, c, &ref, scale, 1, T, H, W, L, a.z, a.t, NULL, NULL, a.ctx, eps, g,
                     &E0) == TB_OK);
  printf("E against another clip's motion: %g\n", E0);
  CHECK(E0 > 0);
  /* the eps of the scoring pass is the plain forward's */
  {
    nn_ctx_reset(c);
    nn_ctx_set_grad(c, 0);
    nn_var x = nn_input(c, a.z, nz, 0), cx = nn_input(c, a.ctx, L * TD, 0);
    unet_input in = {.B = 1, .T = T, .H = H, .W = W, .t = a.t, .context = cx, .L = L};
    nn_var y = unet_forward(&u, c, x, &in);
    CHECK(memcmp(nn_data(c, y), eps, (size_t)nz * 4) == 0);
    nn_ctx_reset(c);
    nn_ctx_set_grad(c, 1);
  }
  {
    ops_backend_set(OPS_CPU_REF); /* double accumulations: a clean finite difference */
    float Eg = 0;
    CHECK(motion_score(&u, c, &ref, scale, 1, T, H, W, L, a.z, a.t, NULL, NULL, a.ctx, NULL, g,
                       &Eg) == TB_OK);
    int probes[6] = {0, 77, 300, 511, 777, (int)nz - 1};
    float got[6], want[6];
    for (int k = 0; k < 6; k++) {
      int i = probes[k];
      float keep = a.z[i], Ep, Em;
      const float h = 2e-2f;
      a.z[i] = keep + h;
      motion_score(&u, c, &ref, scale, 1, T, H, W, L, a.z, a.t, NULL, NULL, a.ctx, NULL, NULL,
                   &Ep);
      a.z[i] = keep - h;
      motion_score(&u, c, &ref, scale, 1, T, H, W, L, a.z, a.t, NULL, NULL, a.ctx, NULL, NULL,
                   &Em);
      a.z[i] = keep;
      got[k] = g[i];
      want[k] = (Ep - Em) / (2 * h);
      printf("  dE/dz[%d] = %.6g, finite difference %.6g\n", i, got[k], want[k]);
    }
    double gmax = 0;
    for (int k = 0; k < 6; k++) gmax = fmax(gmax, fabs(want[k]));
    check_close_f32("dE/dz vs finite differences", got, want, 6, 0.02 * gmax, 0.03);
    ops_backend_set(OPS_CPU_FAST);
  }

  /* a batch of two: each sample's E and score equal its own alone */
  {
    inputs b2;
    make_inputs(&b2, 2, 30);
    memcpy(b2.z, a.z, (size_t)nz * 4); /* sample 0 = a */
    memcpy(b2.ctx, a.ctx, (size_t)L * TD * 4);
    b2.t[0] = a.t[0];
    motion_ref refs;
    CHECK(motion_ref_extract(&u, c, nl, layers, 2, T, H, W, L, b2.z, b2.t, NULL, NULL, b2.ctx,
                             &refs) == TB_OK);
    /* sample 0's reference := the other clip's (import from the flat form) */
    int64_t tot = motion_ref_total_rows(&refs), t1 = motion_ref_total_rows(&ref);
    CHECK(tot == 2 * t1);
    int32_t *ib = xmalloc((size_t)tot * 4), *i1 = xmalloc((size_t)t1 * 4);
    float *vb = xmalloc((size_t)tot * 4), *v1 = xmalloc((size_t)t1 * 4);
    motion_ref_export(&refs, ib, vb);
    motion_ref_export(&ref, i1, v1);
    int64_t at = 0, at1 = 0;
    for (int l = 0; l < refs.n; l++) {
      memcpy(ib + at, i1 + at1, (size_t)ref.rows[l] * 4);
      memcpy(vb + at, v1 + at1, (size_t)ref.rows[l] * 4);
      at += 2 * refs.rows[l], at1 += ref.rows[l];
    }
    const char *names[MOTION_MAX_LAYERS];
    for (int l = 0; l < refs.n; l++) names[l] = refs.name[l];
    motion_ref mixed;
    CHECKF(motion_ref_import(&mixed, refs.n, 2, names, refs.rows, refs.nk, ib, vb) == TB_OK,
           "%s", err_get());
    float E2[2], *g2 = xmalloc((size_t)2 * nz * 4), *ga = xmalloc((size_t)nz * 4);
    CHECK(motion_score(&u, c, &mixed, scale, 2, T, H, W, L, b2.z, b2.t, NULL, NULL, b2.ctx, NULL,
                       g2, E2) == TB_OK);
    float Ea;
    CHECK(motion_score(&u, c, &ref, scale, 1, T, H, W, L, a.z, a.t, NULL, NULL, a.ctx, NULL, ga,
                       &Ea) == TB_OK);
    CHECKF(fabsf(E2[0] - Ea) <= 1e-5f * Ea && fabsf(E2[1]) < 1e-6f,
           "batched E (%g, %g), alone %g and 0", E2[0], E2[1], Ea);
    check_nerr_f32("batched score of sample 0 vs alone", g2, ga, nz, 1e-4);
    /* take() gives back a single sample's reference */
    motion_ref one;
    CHECK(motion_ref_take(&one, &mixed, 0) == TB_OK);
    float Et;
    CHECK(motion_score(&u, c, &one, scale, 1, T, H, W, L, a.z, a.t, NULL, NULL, a.ctx, NULL,
                       NULL, &Et) == TB_OK && Et == Ea);
    /* refusals: a key index out of range, a probability above 1, a reference of another
     * model's layers */
    ib[3] = T;
    CHECK(motion_ref_import(&one, refs.n, 2, names, refs.rows, refs.nk, ib, vb) == TB_ERR);
    printf("refused: %s\n", err_get());
    ib[3] = 0;
    vb[4] = 1.5f;
    CHECK(motion_ref_import(&one, refs.n, 2, names, refs.rows, refs.nk, ib, vb) == TB_ERR);
    vb[4] = 0.5f;
    motion_ref bad;
    const char *wrong[1] = {"output_blocks.99.2"};
    int64_t rw[1] = {ref.rows[0]};
    int nkw[1] = {T};
    CHECK(motion_ref_import(&bad, 1, 1, wrong, rw, nkw, i1, v1) == TB_OK);
    CHECK(motion_score(&u, c, &bad, scale, 1, T, H, W, L, a.z, a.t, NULL, NULL, a.ctx, NULL, NULL,
                       &Et) == TB_ERR && strstr(err_get(), "output_blocks.99.2"));
    motion_ref_free(&bad);
    motion_ref_free(&one);
    motion_ref_free(&mixed);
    motion_ref_free(&refs);
    free(ib), free(i1), free(vb), free(v1), free(g2), free(ga);
    free_inputs(&b2);
  }

  /* only the chosen layers are kept */
  {
    nn_ctx_reset(c);
    nn_ctx_keep_attn_only(c, 1, layers);
    nn_var x = nn_input(c, a.z, nz, 0), cx = nn_input(c, a.ctx, L * TD, 0);
    unet_input in = {.B = 1, .T = T, .H = H, .W = W, .t = a.t, .context = cx, .L = L};
    unet_forward(&u, c, x, &in);
    CHECK(nn_attn_count(c) == 1 && strcmp(nn_attn_name(c, 0), layers[0]) == 0);
    nn_ctx_reset(c);
    nn_ctx_keep_attn_only(c, 0, NULL);
    x = nn_input(c, a.z, nz, 0), cx = nn_input(c, a.ctx, L * TD, 0);
    in.context = cx;
    unet_forward(&u, c, x, &in);
    CHECK(nn_attn_count(c) == na);
  }
  CHECK(fabsf(motion_factor(0.36f, 0) - 0.8f) < 1e-6f);
  CHECK(fabsf(motion_factor(0.36f, 1) - sqrtf(0.4f)) < 1e-6f);

  free(g), free(eps);
  free_inputs(&a), free_inputs(&r);
  motion_ref_free(&ref);
  nn_ctx_free(c);
  unet_free(&u);
  return test_finish();
}

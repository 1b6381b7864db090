/* Tape operations: every backward against central finite differences of a random projection
 * of the output (loss = Σ y·R accumulated in double), on small shapes, on the current ops
 * backend (the fast CPU one); attention with several heads (the head split/merge around the op)
 * and a short and a long sequence, including the extra gradient on the probabilities. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/nn.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

#define MAXIN 4

typedef struct {
  const char *name;
  int nin;
  int64_t n[MAXIN];
  float *x[MAXIN];
  int64_t nout;
  float *R;
  float *extra; /* optional dL/dP for the attention case */
  int64_t nextra;
  /* builds y from leaves */
  nn_var (*build)(nn_ctx *c, const nn_var *in, void *arg);
  void *arg;
} opcase;

static double run_loss(nn_ctx *c, opcase *k, int want_grad, float **grads) {
  nn_ctx_reset(c);
  nn_ctx_keep_attn(c, k->extra != NULL);
  nn_var in[MAXIN];
  for (int i = 0; i < k->nin; i++) in[i] = nn_input(c, k->x[i], k->n[i], 1);
  nn_var y = k->build(c, in, k->arg);
  CHECK(nn_numel(c, y) == k->nout);
  const float *yd = nn_data(c, y);
  double L = 0;
  for (int64_t i = 0; i < k->nout; i++) L += (double)yd[i] * k->R[i];
  if (k->extra) {
    int64_t sh[4];
    const float *P = nn_attn_probs(c, 0, sh);
    for (int64_t i = 0; i < k->nextra; i++) L += (double)P[i] * k->extra[i];
  }
  if (want_grad) {
    if (k->extra) memcpy(nn_attn_extra_grad(c, 0), k->extra, k->nextra * sizeof(float));
    nn_backward(c, y, k->R);
    for (int i = 0; i < k->nin; i++) {
      const float *g = nn_grad(c, in[i]);
      for (int64_t j = 0; j < k->n[i]; j++) grads[i][j] = g ? g[j] : 0.0f;
    }
  }
  return L;
}

static void check_case(opcase *k) {
  nn_ctx *c = nn_ctx_new();
  float *g[MAXIN];
  for (int i = 0; i < k->nin; i++) g[i] = xcalloc((size_t)k->n[i], sizeof(float));
  run_loss(c, k, 1, g);
  int bad = 0;
  double maxerr = 0;
  for (int i = 0; i < k->nin; i++) {
    int64_t stride = k->n[i] > 40 ? k->n[i] / 40 : 1;
    for (int64_t j = 0; j < k->n[i]; j += stride) {
      float keep = k->x[i][j], e = 1e-2f;
      k->x[i][j] = keep + e;
      double lp = run_loss(c, k, 0, NULL);
      k->x[i][j] = keep - e;
      double lm = run_loss(c, k, 0, NULL);
      k->x[i][j] = keep;
      double fd = (lp - lm) / (2.0 * e), an = g[i][j];
      double err = fabs(fd - an) / (1e-2 + fabs(fd));
      if (err > maxerr) maxerr = err;
      if (err > 2e-2 && bad++ < 5)
        fprintf(stderr, "%s: input %d [%lld]: analytic %.6g, fd %.6g\n", k->name, i,
                (long long)j, an, fd);
    }
  }
  printf("%-24s max rel err %.2e\n", k->name, maxerr);
  CHECKF(bad == 0, "%s: %d gradient mismatches", k->name, bad);
  for (int i = 0; i < k->nin; i++) free(g[i]);
  nn_ctx_free(c);
}

static void setup(opcase *k, const char *name, int nin, const int64_t *n, int64_t nout,
                  uint64_t seed) {
  memset(k, 0, sizeof *k);
  k->name = name;
  k->nin = nin;
  for (int i = 0; i < nin; i++) {
    k->n[i] = n[i];
    k->x[i] = xmalloc((size_t)n[i] * sizeof(float));
    test_fill_uniform(k->x[i], n[i], seed + 17 * i, -1.0f, 1.0f);
  }
  k->nout = nout;
  k->R = xmalloc((size_t)nout * sizeof(float));
  test_fill_uniform(k->R, nout, seed + 1000, -1.0f, 1.0f);
}

static void teardown(opcase *k) {
  for (int i = 0; i < k->nin; i++) free(k->x[i]);
  free(k->R);
  free(k->extra);
}

typedef struct {
  int64_t a[8];
} dims;

static nn_var b_linear(nn_ctx *c, const nn_var *in, void *arg) {
  dims *d = arg;
  return nn_linear(c, in[0], in[1], in[2], d->a[0], d->a[1], d->a[2]);
}
static nn_var b_conv(nn_ctx *c, const nn_var *in, void *arg) {
  dims *d = arg; /* Nb Ci H W Co k s pad */
  return nn_conv2d(c, in[0], in[1], in[2], d->a[0], d->a[1], d->a[2], d->a[3], d->a[4],
                   (int)d->a[5], (int)d->a[6], (int)d->a[7]);
}
static nn_var b_tconv(nn_ctx *c, const nn_var *in, void *arg) {
  dims *d = arg;
  return nn_tconv3(c, in[0], in[1], in[2], d->a[0], d->a[1], d->a[2], d->a[3], d->a[4]);
}
static nn_var b_gn(nn_ctx *c, const nn_var *in, void *arg) {
  dims *d = arg; /* B T C S G silu */
  return nn_group_norm(c, in[0], in[1], in[2], d->a[0], d->a[1], d->a[2], d->a[3], (int)d->a[4],
                       1e-5f, (int)d->a[5]);
}
static nn_var b_ln(nn_ctx *c, const nn_var *in, void *arg) {
  dims *d = arg;
  return nn_layer_norm(c, in[0], in[1], in[2], d->a[0], d->a[1], 1e-5f);
}
static nn_var b_attn(nn_ctx *c, const nn_var *in, void *arg) {
  dims *d = arg; /* G Nq Nk C heads */
  return nn_attention(c, in[0], in[1], in[2], d->a[0], d->a[1], d->a[2], d->a[3], (int)d->a[4],
                      "probe");
}
static nn_var b_misc(nn_ctx *c, const nn_var *in, void *arg) {
  /* in[0] (2, 3, 4, 4) video-like, in[1] (2, 3) embedding rows, in[2] (2, 5, 4, 4) */
  (void)arg;
  nn_var s = nn_silu(c, in[0]);
  nn_var e = nn_repeat_rows(c, in[1], 1, 2, 6); /* (2, 6) */
  nn_var h = nn_add_bcast_last(c, s, e, 4, 3, 4 * 2);
  nn_var u = nn_upsample2(c, h, 2, 3, 4, 4);            /* (2, 3, 8, 8) */
  int64_t d[4] = {2, 3, 8, 8};
  int perm[4] = {0, 2, 3, 1};
  nn_var p = nn_permute4(c, u, d, perm);                /* (2, 8, 8, 3) */
  nn_var q = nn_geglu(c, p, 2 * 8 * 8 * 3 / 6, 3);      /* (64, 3) of (64, 6) */
  nn_var cc = nn_concat_chan(c, in[0], in[2], 2, 3, 5, 16);
  nn_var r = nn_add_bcast_first(c, cc, in[1], 64, 4); /* the first 4 of 6 rows' values */
  nn_var z = nn_add(c, nn_dropout(c, r, 0.0f), cc);
  /* combine into one output: z (256) then q (192) */
  nn_var zz = nn_concat_chan(c, z, q, 1, 256, 192, 1);
  return zz;
}

static nn_var b_extra(nn_ctx *c, const nn_var *in, void *arg) {
  /* in[0] x (2, 3, 4, 2), in[1] e (2, 4), in[2] a null embedding (24) */
  (void)arg;
  static const uint8_t keep[2] = {1, 0};
  nn_ctx_set_mode(c, 0, 1, 5); /* training: the dropout is live (same mask every pass) */
  nn_var h = nn_bias_add(c, in[0], in[1], 2, 3, 4, 2);
  nn_var d = nn_cond_drop(c, h, in[2], 2, 24, keep);
  d = nn_dropout(c, d, 0.3f);
  nn_var l1 = nn_mse(c, d, in[0]);            /* a target that needs a gradient too */
  nn_var l2 = nn_huber(c, d, h, 0.5f);
  nn_var ls = nn_concat_chan(c, l1, l2, 1, 1, 1, 1);
  return nn_concat_chan(c, d, ls, 1, 48, 2, 1);
}

/* key-padding mask: group g keeps its first 2 + g % 3 keys */
static nn_var b_attn_masked(nn_ctx *c, const nn_var *in, void *arg) {
  dims *d = arg; /* G Nq Nk C heads */
  int64_t G = d->a[0], Nk = d->a[2];
  uint8_t keep[64];
  TB_CHECK(G * Nk <= 64);
  for (int64_t g = 0; g < G; g++)
    for (int64_t j = 0; j < Nk; j++) keep[g * Nk + j] = j < 2 + g % 3;
  return nn_attention_masked(c, in[0], in[1], in[2], G, d->a[1], Nk, d->a[3], (int)d->a[4], keep,
                             NULL);
}
/* a text-encoder-like chain: embedding, gelu, l2norm, token pool, and a cross-entropy over
 * cosine logits; in[0] the table (V=6, D=4), in[1] a second batch of rows (3, 4) */
static nn_var b_tokens(nn_ctx *c, const nn_var *in, void *arg) {
  (void)arg;
  static const int32_t ids[8] = {1, 4, 4, 0, 5, 2, 6, 3}; /* 6 is out of range: a zero row */
  static const float w[8] = {0.5f, 0.5f, 0, 0, 0.25f, 0.25f, 0.25f, 0.25f};
  static const int32_t target[3] = {1, 0, 2};
  nn_var e = nn_embedding(c, in[0], ids, 8, 6, 4); /* (8, 4) as (B=2, N=4, C=4) */
  nn_var g = nn_gelu(c, e);
  nn_var p = nn_token_pool(c, g, w, 2, 4, 4);     /* (2, 4) */
  nn_var pn = nn_l2norm(c, p, 2, 4);
  nn_var rn = nn_l2norm(c, in[1], 3, 4);
  nn_var lg = nn_linear(c, rn, pn, -1, 3, 4, 2);  /* (3, 2) cosines */
  nn_var l = nn_xent(c, lg, target, 3, 2, 5.0f);  /* the last target is out of range */
  nn_var gl = nn_concat_chan(c, g, lg, 1, 32, 6, 1);
  return nn_concat_chan(c, gl, l, 1, 38, 1, 1);
}

/* the frame VAE's ops: in[0] (2, 3, 4, 5) padded (0, 1, 0, 1) as LDM's down-sampler does;
 * in[1] (2, 6, 4): channels 1..3 as the posterior mean; in[2] (24) clamped to [-0.5, 0.5] as
 * its log-variance (values kept 0.05 from the bounds, so differences never straddle one); a
 * posterior draw with fixed noise, the KL and an L1 against a fixed target of both signs */
static nn_var b_vae_ops(nn_ctx *c, const nn_var *in, void *arg) {
  (void)arg;
  float noise[24], target[24];
  for (int i = 0; i < 24; i++) {
    noise[i] = (float)((i * 7) % 11 - 5) / 4.0f;
    target[i] = i % 2 ? 3.0f : -3.0f;
  }
  nn_var p = nn_pad2d(c, in[0], 2, 3, 4, 5, 0, 1, 0, 1);        /* (2, 3, 5, 6) = 180 */
  nn_var mean = nn_chan_slice(c, in[1], 2, 6, 4, 1, 3);         /* (2, 3, 4) = 24 */
  nn_var lv = nn_clamp(c, in[2], -0.5f, 0.5f);                  /* 24 */
  nn_var z = nn_gauss_sample(c, mean, lv, noise);               /* 24 */
  nn_var kl = nn_kl_gauss(c, mean, lv);
  nn_var l1 = nn_l1(c, z, nn_input(c, target, 24, 0));
  nn_var y = nn_concat_chan(c, p, mean, 1, 180, 24, 1);
  y = nn_concat_chan(c, y, lv, 1, 204, 24, 1);
  y = nn_concat_chan(c, y, z, 1, 228, 24, 1);
  y = nn_concat_chan(c, y, kl, 1, 252, 1, 1);
  return nn_concat_chan(c, y, l1, 1, 253, 1, 1);
}

static void run_cases(void);

int main(void) {
  test_begin("test_nn_grad");
  /* every case on the reference backend, then on the fast one (the default) */
  for (int be = OPS_CPU_REF; be <= OPS_CPU_FAST; be++) {
    CHECK(ops_backend_set((ops_backend_id)be) == TB_OK);
    printf("-- %s\n", ops_backend_name((ops_backend_id)be));
    run_cases();
  }
  return test_finish();
}

static void run_cases(void) {
  opcase k;
  {
    dims d = {{5, 7, 3}};
    int64_t n[3] = {35, 21, 3};
    setup(&k, "linear", 3, n, 15, 1);
    k.build = b_linear, k.arg = &d;
    check_case(&k);
    teardown(&k);
  }
  {
    dims d = {{2, 3, 6, 5, 4, 3, 1, 1}};
    int64_t n[3] = {2 * 3 * 30, 4 * 3 * 9, 4};
    setup(&k, "conv2d 3x3", 3, n, 2 * 4 * 30, 2);
    k.build = b_conv, k.arg = &d;
    check_case(&k);
    teardown(&k);
  }
  {
    dims d = {{2, 3, 6, 6, 4, 3, 2, 1}};
    int64_t n[3] = {2 * 3 * 36, 4 * 3 * 9, 4};
    setup(&k, "conv2d 3x3 stride 2", 3, n, 2 * 4 * 9, 3);
    k.build = b_conv, k.arg = &d;
    check_case(&k);
    teardown(&k);
  }
  {
    dims d = {{3, 5, 4, 4, 2, 1, 1, 0}};
    int64_t n[3] = {3 * 5 * 16, 2 * 5, 2};
    setup(&k, "conv2d 1x1", 3, n, 3 * 2 * 16, 4);
    k.build = b_conv, k.arg = &d;
    check_case(&k);
    teardown(&k);
  }
  {
    dims d = {{2, 4, 3, 5, 6}};
    int64_t n[3] = {2 * 4 * 3 * 6, 5 * 3 * 3, 5};
    setup(&k, "tconv3", 3, n, 2 * 4 * 5 * 6, 5);
    k.build = b_tconv, k.arg = &d;
    check_case(&k);
    teardown(&k);
  }
  for (int silu = 0; silu < 2; silu++) {
    dims d = {{2, 3, 6, 5, 3, silu}};
    int64_t n[3] = {2 * 3 * 6 * 5, 6, 6};
    setup(&k, silu ? "group_norm+silu (B,T)" : "group_norm (B,T)", 3, n, n[0], 6 + silu);
    k.build = b_gn, k.arg = &d;
    check_case(&k);
    teardown(&k);
  }
  {
    dims d = {{7, 6}};
    int64_t n[3] = {42, 6, 6};
    setup(&k, "layer_norm", 3, n, 42, 8);
    k.build = b_ln, k.arg = &d;
    check_case(&k);
    teardown(&k);
  }
  {
    /* temporal-like maps (few tokens, two heads) with an extra gradient on the probabilities */
    dims d = {{3, 5, 5, 8, 2}};
    int64_t n[3] = {3 * 5 * 8, 3 * 5 * 8, 3 * 5 * 8};
    setup(&k, "attention small +dP", 3, n, 3 * 5 * 8, 9);
    k.build = b_attn, k.arg = &d;
    k.nextra = 3 * 2 * 5 * 5;
    k.extra = xmalloc(k.nextra * sizeof(float));
    test_fill_uniform(k.extra, k.nextra, 99, -1, 1);
    check_case(&k);
    teardown(&k);
  }
  {
    /* a long sequence (Nq·Nk = 5600) */
    dims d = {{1, 80, 70, 4, 2}};
    int64_t n[3] = {80 * 4, 70 * 4, 70 * 4};
    setup(&k, "attention large +dP", 3, n, 80 * 4, 10);
    k.build = b_attn, k.arg = &d;
    k.nextra = 2 * 80 * 70;
    k.extra = xmalloc(k.nextra * sizeof(float));
    test_fill_uniform(k.extra, k.nextra, 98, -0.1f, 0.1f);
    check_case(&k);
    teardown(&k);
  }
  {
    /* padded keys: several groups, two heads (the mask repeats over the head-major batch) */
    dims d = {{4, 3, 5, 8, 2}};
    int64_t n[3] = {4 * 3 * 8, 4 * 5 * 8, 4 * 5 * 8};
    setup(&k, "attention key mask", 3, n, 4 * 3 * 8, 13);
    k.build = b_attn_masked, k.arg = &d;
    check_case(&k);
    teardown(&k);
  }
  {
    dims d = {{3, 4, 6, 6, 1}};
    int64_t n[3] = {3 * 4 * 6, 3 * 6 * 6, 3 * 6 * 6};
    setup(&k, "attention key mask 1 head", 3, n, 3 * 4 * 6, 14);
    k.build = b_attn_masked, k.arg = &d;
    check_case(&k);
    teardown(&k);
  }
  {
    int64_t n[2] = {24, 12};
    setup(&k, "embedding/gelu/pool/l2norm/xent", 2, n, 39, 15);
    k.build = b_tokens, k.arg = NULL;
    check_case(&k);
    teardown(&k);
  }
  {
    int64_t n[3] = {2 * 3 * 16, 6, 2 * 5 * 16};
    setup(&k, "silu/repeat/bcast/up2/permute/geglu/concat", 3, n, 256 + 192, 11);
    k.build = b_misc, k.arg = NULL;
    check_case(&k);
    teardown(&k);
  }
  {
    int64_t n[3] = {48, 8, 24};
    setup(&k, "bias_add/cond_drop/dropout/mse/huber", 3, n, 50, 12);
    k.build = b_extra, k.arg = NULL;
    check_case(&k);
    teardown(&k);
  }
  {
    int64_t n[3] = {120, 48, 24};
    setup(&k, "pad2d/chan_slice/clamp/gauss_sample/kl/l1", 3, n, 254, 21);
    for (int i = 0; i < 24; i++) /* away from the clamp's bounds */
      if (fabsf(fabsf(k.x[2][i]) - 0.5f) < 0.05f) k.x[2][i] += k.x[2][i] > 0 ? 0.1f : -0.1f;
    k.build = b_vae_ops, k.arg = NULL;
    check_case(&k);
    teardown(&k);
  }
}

/* tests/test_cuda_ops.c — every entry of the CUDA ops table against the CPU reference:
 *  1. each op's forward and backward on random inputs with awkward shapes (odd sizes, T = 1,
 *     strides, paddings, masks, NULL gradients), f32 within a normalised error of 1e-4 (and an
 *     element-wise bound), backward ops accumulating into non-zero gradients;
 *  2. the GEMM-heavy ops again in bf16 mode, within ~1e-2;
 *  3. every CUDA call run twice: the results must be bit-identical (determinism);
 *  4. dropout masks bit-identical to the CPU's (the same counter-based hash);
 *  5. a ResBlock-shaped chain (group norm, SiLU, conv, embedding add, residual, loss) forward
 *     and backward through the op table on both backends.
 * Backward ops get the reference forward's saved tensors (mean/rstd, probs, masks) as inputs,
 * so each backward is tested on its own. Without a GPU: "skipped: no CUDA device", exit 77. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/device.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

#define MAXB 12

enum { B_NONE = 0, B_IN, B_OUT, B_ACC, B_U8IN, B_U8OUT, B_HOSTU8 };

typedef struct {
  int kind;
  int64_t n;
  float *h;    /* f32 initial contents (IN, ACC) or NULL */
  uint8_t *h8; /* u8 contents */
} tbuf;

typedef struct tcase tcase;
typedef void (*call_fn)(const ops_backend *be, void **p, const tcase *c);
struct tcase {
  const char *name;
  int nb;
  tbuf b[MAXB];
  int d[16];
  float f[4];
  uint64_t u;
  call_fn call;
  double tol; /* normalised error bound (0: default) */
  op_attn_mask *mask_tpl; /* attention: which mask parts are present (pointers set per run) */
};

static uint64_t g_seed = 99;
static int g_bf16 = 0;

static float *rndv(int64_t n, float lo, float hi) {
  float *x = xmalloc(sizeof(float) * (size_t)(n ? n : 1));
  test_fill_uniform(x, n, g_seed++, lo, hi);
  return x;
}

/* buffer constructors */
static int add_in(tcase *c, int64_t n, float lo, float hi) {
  c->b[c->nb] = (tbuf){B_IN, n, rndv(n, lo, hi), NULL};
  return c->nb++;
}
static int add_in_data(tcase *c, int64_t n, float *h) {
  c->b[c->nb] = (tbuf){B_IN, n, h, NULL};
  return c->nb++;
}
static int add_out(tcase *c, int64_t n) {
  c->b[c->nb] = (tbuf){B_OUT, n, NULL, NULL};
  return c->nb++;
}
static int add_acc(tcase *c, int64_t n, float lo, float hi) {
  c->b[c->nb] = (tbuf){B_ACC, n, rndv(n, lo, hi), NULL};
  return c->nb++;
}
static int add_none(tcase *c) {
  c->b[c->nb] = (tbuf){B_NONE, 0, NULL, NULL};
  return c->nb++;
}
static int add_u8(tcase *c, int kind, int64_t n, uint8_t *h8) {
  c->b[c->nb] = (tbuf){kind, n, NULL, h8};
  return c->nb++;
}

static int is_f32(int k) { return k == B_IN || k == B_OUT || k == B_ACC; }

/* host copies of every buffer as the case starts */
static void **host_clone(const tcase *c) {
  void **p = xcalloc(MAXB, sizeof(void *));
  for (int i = 0; i < c->nb; i++) {
    const tbuf *b = &c->b[i];
    size_t n = (size_t)(b->n ? b->n : 1);
    if (b->kind == B_NONE) continue;
    if (is_f32(b->kind)) {
      float *x = xmalloc(n * sizeof(float));
      if (b->h) memcpy(x, b->h, (size_t)b->n * sizeof(float));
      else for (size_t j = 0; j < n; j++) x[j] = 777.0f; /* forward must overwrite */
      p[i] = x;
    } else {
      uint8_t *x = xcalloc(n, 1);
      if (b->h8) memcpy(x, b->h8, (size_t)b->n);
      p[i] = x;
    }
  }
  return p;
}
static void host_free(const tcase *c, void **p) {
  for (int i = 0; i < c->nb; i++) free(p[i]);
  free(p);
}

/* runs the case on the CUDA backend; returns host copies of every buffer afterwards */
static void **cuda_run(const tcase *c) {
  void **h = host_clone(c), *d[MAXB] = {0};
  for (int i = 0; i < c->nb; i++) {
    const tbuf *b = &c->b[i];
    if (b->kind == B_NONE) continue;
    if (b->kind == B_HOSTU8) {
      d[i] = h[i];
      continue;
    }
    size_t bytes = (size_t)(b->n ? b->n : 1) * (is_f32(b->kind) ? sizeof(float) : 1);
    d[i] = device_malloc(bytes);
    device_memcpy_h2d(d[i], h[i], bytes);
  }
  c->call(ops_backend_get(OPS_CUDA), d, c);
  device_sync();
  for (int i = 0; i < c->nb; i++) {
    const tbuf *b = &c->b[i];
    if (b->kind == B_NONE || b->kind == B_HOSTU8) continue;
    size_t bytes = (size_t)(b->n ? b->n : 1) * (is_f32(b->kind) ? sizeof(float) : 1);
    device_memcpy_d2h(h[i], d[i], bytes);
    device_free(d[i]);
  }
  return h;
}

static void compare(const tcase *c, void **got, void **ref) {
  char what[200];
  for (int i = 0; i < c->nb; i++) {
    const tbuf *b = &c->b[i];
    if (b->kind == B_OUT || b->kind == B_ACC) {
      const float *g = got[i], *r = ref[i];
      double tol = c->tol > 0 ? c->tol : (g_bf16 ? 1e-2 : 1e-4);
      snprintf(what, sizeof what, "%s%s buffer %d", c->name, g_bf16 ? " [bf16]" : "", i);
      check_nerr_f32(what, g, r, b->n, tol);
      double mx = 0.0;
      for (int64_t j = 0; j < b->n; j++) mx = fmax(mx, fabs(r[j]));
      if (!g_bf16) check_close_f32(what, g, r, b->n, 1e-4 * fmax(mx, 1e-6), 1e-3);
      for (int64_t j = 0; j < b->n; j++)
        if (isnan(g[j]) != isnan(r[j]) || (g[j] == 777.0f) != (r[j] == 777.0f)) {
          CHECKF(0, "%s: element %lld is %g, reference %g", what, (long long)j, g[j], r[j]);
          break;
        }
    } else if (b->kind == B_U8OUT) {
      snprintf(what, sizeof what, "%s u8 buffer %d", c->name, i);
      CHECKF(memcmp(got[i], ref[i], (size_t)b->n) == 0, "%s differs from the reference", what);
    }
  }
}

static int g_cases = 0;

static void run(tcase *c) {
  void **ref = host_clone(c);
  c->call(ops_backend_get(OPS_CPU_REF), ref, c);
  void **g1 = cuda_run(c), **g2 = cuda_run(c);
  compare(c, g1, ref);
  for (int i = 0; i < c->nb; i++) {
    const tbuf *b = &c->b[i];
    if (b->kind != B_OUT && b->kind != B_ACC && b->kind != B_U8OUT) continue;
    size_t bytes = (size_t)b->n * (is_f32(b->kind) ? sizeof(float) : 1);
    CHECKF(memcmp(g1[i], g2[i], bytes) == 0, "%s%s buffer %d: two CUDA runs differ (not "
           "deterministic)", c->name, g_bf16 ? " [bf16]" : "", i);
  }
  printf("  %-28s %s ok\n", c->name, g_bf16 ? "bf16" : "f32 ");
  g_cases++;
  host_free(c, ref);
  host_free(c, g1);
  host_free(c, g2);
  for (int i = 0; i < c->nb; i++) {
    free(c->b[i].h);
    free(c->b[i].h8);
  }
}

#define F(i) ((float *)p[i])
#define U8(i) ((uint8_t *)p[i])
#define D c->d

/* ---- GEMM ----------------------------------------------------------------------------------- */

static void call_matmul(const ops_backend *be, void **p, const tcase *c) {
  be->matmul(D[0], D[1], D[2], D[3], D[4], 0.75f, F(0), F(1), c->f[0], F(2));
}
static void case_matmul(int tA, int tB, int M, int N, int K, float beta) {
  tcase c = {.name = "matmul", .call = call_matmul};
  int d[5] = {tA, tB, M, N, K};
  memcpy(c.d, d, sizeof d);
  c.f[0] = beta;
  add_in(&c, (int64_t)M * K, -1, 1);
  add_in(&c, (int64_t)K * N, -1, 1);
  if (beta != 0.0f) add_acc(&c, (int64_t)M * N, -1, 1);
  else add_out(&c, (int64_t)M * N);
  run(&c);
}

static void call_linear_fwd(const ops_backend *be, void **p, const tcase *c) {
  be->linear_fwd(F(3), F(0), F(1), F(2), D[0], D[1], D[2]);
}
static void call_linear_bwd(const ops_backend *be, void **p, const tcase *c) {
  be->linear_bwd(F(3), F(4), F(5), F(6), F(0), F(1), D[0], D[1], D[2]);
}
static void case_linear(int N, int Cin, int Cout, int bias) {
  tcase c = {.name = "linear_fwd", .call = call_linear_fwd};
  c.d[0] = N, c.d[1] = Cin, c.d[2] = Cout;
  add_in(&c, (int64_t)N * Cin, -1, 1);
  add_in(&c, (int64_t)Cout * Cin, -1, 1);
  if (bias) add_in(&c, Cout, -1, 1); else add_none(&c);
  add_out(&c, (int64_t)N * Cout);
  run(&c);
  tcase b = {.name = "linear_bwd", .call = call_linear_bwd};
  memcpy(b.d, c.d, sizeof c.d);
  add_in(&b, (int64_t)N * Cin, -1, 1);
  add_in(&b, (int64_t)Cout * Cin, -1, 1);
  add_none(&b);
  add_acc(&b, (int64_t)N * Cin, -1, 1);
  add_acc(&b, (int64_t)Cout * Cin, -1, 1);
  if (bias) add_acc(&b, Cout, -1, 1); else add_none(&b);
  add_in(&b, (int64_t)N * Cout, -1, 1);
  run(&b);
}

/* ---- convolutions ---------------------------------------------------------------------------- */

static void call_conv2d_fwd(const ops_backend *be, void **p, const tcase *c) {
  be->conv2d_fwd(F(3), F(0), F(1), F(2), D[0], D[1], D[2], D[3], D[4], D[5], D[6], D[7]);
}
static void call_conv2d_bwd(const ops_backend *be, void **p, const tcase *c) {
  be->conv2d_bwd(F(2), F(3), F(4), F(5), F(0), F(1), D[0], D[1], D[2], D[3], D[4], D[5], D[6],
                 D[7]);
}
static void case_conv2d(int N, int Cin, int H, int W, int Cout, int k, int s, int pad, int bias,
                        int want_dinp) {
  int d[8] = {N, Cin, H, W, Cout, k, s, pad};
  int Ho = (H + 2 * pad - k) / s + 1, Wo = (W + 2 * pad - k) / s + 1;
  int64_t ni = (int64_t)N * Cin * H * W, nw = (int64_t)Cout * Cin * k * k,
          no = (int64_t)N * Cout * Ho * Wo;
  tcase c = {.name = "conv2d_fwd", .call = call_conv2d_fwd};
  memcpy(c.d, d, sizeof d);
  add_in(&c, ni, -1, 1);
  add_in(&c, nw, -1, 1);
  if (bias) add_in(&c, Cout, -1, 1); else add_none(&c);
  add_out(&c, no);
  run(&c);
  tcase b = {.name = "conv2d_bwd", .call = call_conv2d_bwd};
  memcpy(b.d, d, sizeof d);
  add_in(&b, ni, -1, 1);
  add_in(&b, nw, -1, 1);
  if (want_dinp) add_acc(&b, ni, -1, 1); else add_none(&b);
  add_acc(&b, nw, -1, 1);
  if (bias) add_acc(&b, Cout, -1, 1); else add_none(&b);
  add_in(&b, no, -1, 1);
  run(&b);
}

static void call_tconv_fwd(const ops_backend *be, void **p, const tcase *c) {
  be->tconv_fwd(F(3), F(0), F(1), F(2), D[0], D[1], D[2], D[3], D[4], D[5]);
}
static void call_tconv_bwd(const ops_backend *be, void **p, const tcase *c) {
  be->tconv_bwd(F(2), F(3), F(4), F(5), F(0), F(1), D[0], D[1], D[2], D[3], D[4], D[5]);
}
static void case_tconv(int B, int T, int Cin, int S, int Cout, int kt) {
  int d[6] = {B, T, Cin, S, Cout, kt};
  int64_t ni = (int64_t)B * T * Cin * S, nw = (int64_t)Cout * Cin * kt, no = (int64_t)B * T * Cout * S;
  tcase c = {.name = "tconv_fwd", .call = call_tconv_fwd};
  memcpy(c.d, d, sizeof d);
  add_in(&c, ni, -1, 1);
  add_in(&c, nw, -1, 1);
  add_in(&c, Cout, -1, 1);
  add_out(&c, no);
  run(&c);
  tcase b = {.name = "tconv_bwd", .call = call_tconv_bwd};
  memcpy(b.d, d, sizeof d);
  add_in(&b, ni, -1, 1);
  add_in(&b, nw, -1, 1);
  add_acc(&b, ni, -1, 1);
  add_acc(&b, nw, -1, 1);
  add_acc(&b, Cout, -1, 1);
  add_in(&b, no, -1, 1);
  run(&b);
}

static void call_conv3d_fwd(const ops_backend *be, void **p, const tcase *c) {
  be->conv3d_fwd(F(3), F(0), F(1), F(2), D[0], D[1], D[2], D[3], D[4], D[5], D[6], D[7], D[8],
                 D[9], D[10], D[11]);
}
static void call_conv3d_bwd(const ops_backend *be, void **p, const tcase *c) {
  be->conv3d_bwd(F(2), F(3), F(4), F(5), F(0), F(1), D[0], D[1], D[2], D[3], D[4], D[5], D[6],
                 D[7], D[8], D[9], D[10], D[11]);
}
static void case_conv3d(int B, int T, int Cin, int H, int W, int Cout, int kt, int k, int st,
                        int s, int pt, int pd) {
  int d[12] = {B, T, Cin, H, W, Cout, kt, k, st, s, pt, pd};
  int To = (T + 2 * pt - kt) / st + 1, Ho = (H + 2 * pd - k) / s + 1, Wo = (W + 2 * pd - k) / s + 1;
  int64_t ni = (int64_t)B * T * Cin * H * W, nw = (int64_t)Cout * Cin * kt * k * k,
          no = (int64_t)B * To * Cout * Ho * Wo;
  tcase c = {.name = "conv3d_fwd", .call = call_conv3d_fwd};
  memcpy(c.d, d, sizeof d);
  add_in(&c, ni, -1, 1);
  add_in(&c, nw, -1, 1);
  add_in(&c, Cout, -1, 1);
  add_out(&c, no);
  run(&c);
  tcase b = {.name = "conv3d_bwd", .call = call_conv3d_bwd};
  memcpy(b.d, d, sizeof d);
  add_in(&b, ni, -1, 1);
  add_in(&b, nw, -1, 1);
  add_acc(&b, ni, -1, 1);
  add_acc(&b, nw, -1, 1);
  add_acc(&b, Cout, -1, 1);
  add_in(&b, no, -1, 1);
  run(&b);
}

/* ---- normalisation --------------------------------------------------------------------------- */

static void call_gn_fwd(const ops_backend *be, void **p, const tcase *c) {
  be->groupnorm_fwd(F(3), F(4), F(5), F(0), F(1), F(2), D[0], D[1], D[2], D[3], D[4], 1e-5f);
}
static void call_gn_bwd(const ops_backend *be, void **p, const tcase *c) {
  be->groupnorm_bwd(F(5), F(6), F(7), F(8), F(0), F(3), F(4), F(1), D[0], D[1], D[2], D[3], D[4]);
}
static void case_groupnorm(int N, int T, int C, int S, int G, int affine) {
  int64_t n = (int64_t)N * T * C * S;
  tcase c = {.name = "groupnorm_fwd", .call = call_gn_fwd};
  int d[5] = {N, T, C, S, G};
  memcpy(c.d, d, sizeof d);
  add_in(&c, n, -2, 3);
  if (affine) add_in(&c, C, 0.5f, 1.5f); else add_none(&c);
  if (affine) add_in(&c, C, -1, 1); else add_none(&c);
  add_out(&c, n);
  add_out(&c, (int64_t)N * G);
  add_out(&c, (int64_t)N * G);
  /* keep inputs for the backward */
  float *x = xmalloc(sizeof(float) * n), *w = affine ? xmalloc(sizeof(float) * C) : NULL;
  memcpy(x, c.b[0].h, sizeof(float) * n);
  if (w) memcpy(w, c.b[1].h, sizeof(float) * C);
  run(&c);
  float *out = xmalloc(sizeof(float) * n), *mean = xmalloc(sizeof(float) * N * G),
        *rstd = xmalloc(sizeof(float) * N * G);
  ops_backend_get(OPS_CPU_REF)->groupnorm_fwd(out, mean, rstd, x, w, NULL, N, T, C, S, G, 1e-5f);
  free(out);
  tcase b = {.name = "groupnorm_bwd", .call = call_gn_bwd};
  memcpy(b.d, d, sizeof d);
  add_in_data(&b, n, x);
  if (w) add_in_data(&b, C, w); else add_none(&b);
  add_none(&b);
  add_in_data(&b, (int64_t)N * G, mean);
  add_in_data(&b, (int64_t)N * G, rstd);
  add_acc(&b, n, -1, 1);
  if (affine) add_acc(&b, C, -1, 1); else add_none(&b);
  if (affine) add_acc(&b, C, -1, 1); else add_none(&b);
  add_in(&b, n, -1, 1);
  run(&b);
}

static void call_ln_fwd(const ops_backend *be, void **p, const tcase *c) {
  be->layernorm_fwd(F(3), F(4), F(5), F(0), F(1), F(2), D[0], D[1], 1e-5f);
}
static void call_ln_bwd(const ops_backend *be, void **p, const tcase *c) {
  be->layernorm_bwd(F(5), F(6), F(7), F(8), F(0), F(3), F(4), F(1), D[0], D[1]);
}
static void case_layernorm(int N, int C) {
  int64_t n = (int64_t)N * C;
  tcase c = {.name = "layernorm_fwd", .call = call_ln_fwd};
  c.d[0] = N, c.d[1] = C;
  add_in(&c, n, -2, 3);
  add_in(&c, C, 0.5f, 1.5f);
  add_in(&c, C, -1, 1);
  add_out(&c, n);
  add_out(&c, N);
  add_out(&c, N);
  float *x = xmalloc(sizeof(float) * n), *w = xmalloc(sizeof(float) * C);
  memcpy(x, c.b[0].h, sizeof(float) * n);
  memcpy(w, c.b[1].h, sizeof(float) * C);
  run(&c);
  float *out = xmalloc(sizeof(float) * n), *mean = xmalloc(sizeof(float) * N),
        *rstd = xmalloc(sizeof(float) * N);
  ops_backend_get(OPS_CPU_REF)->layernorm_fwd(out, mean, rstd, x, w, NULL, N, C, 1e-5f);
  free(out);
  tcase b = {.name = "layernorm_bwd", .call = call_ln_bwd};
  b.d[0] = N, b.d[1] = C;
  add_in_data(&b, n, x);
  add_in_data(&b, C, w);
  add_none(&b);
  add_in_data(&b, N, mean);
  add_in_data(&b, N, rstd);
  add_acc(&b, n, -1, 1);
  add_acc(&b, C, -1, 1);
  add_acc(&b, C, -1, 1);
  add_in(&b, n, -1, 1);
  run(&b);
}

/* ---- activations, softmax ------------------------------------------------------------------- */

static void call_act_fwd(const ops_backend *be, void **p, const tcase *c) {
  int64_t n = c->b[0].n;
  switch (D[0]) {
  case 0: be->silu_fwd(F(1), F(0), n); break;
  case 1: be->gelu_tanh_fwd(F(1), F(0), n); break;
  case 2: be->gelu_erf_fwd(F(1), F(0), n); break;
  case 3: be->softmax_fwd(F(1), F(0), D[1], D[2]); break;
  case 4: be->quick_gelu_fwd(F(1), F(0), n); break;
  }
}
static void call_act_bwd(const ops_backend *be, void **p, const tcase *c) {
  int64_t n = c->b[0].n;
  switch (D[0]) {
  case 0: be->silu_bwd(F(2), F(1), F(0), n); break;
  case 1: be->gelu_tanh_bwd(F(2), F(1), F(0), n); break;
  case 2: be->gelu_erf_bwd(F(2), F(1), F(0), n); break;
  case 3: be->softmax_bwd(F(2), F(1), F(0), D[1], D[2]); break; /* in0 = softmax output */
  case 4: be->quick_gelu_bwd(F(2), F(1), F(0), n); break;
  }
}
static void case_act(int which, int N, int C) {
  static const char *nf[] = {"silu_fwd", "gelu_tanh_fwd", "gelu_erf_fwd", "softmax_fwd",
                             "quick_gelu_fwd"};
  static const char *nb[] = {"silu_bwd", "gelu_tanh_bwd", "gelu_erf_bwd", "softmax_bwd",
                             "quick_gelu_bwd"};
  int64_t n = (int64_t)N * C;
  tcase c = {.name = nf[which], .call = call_act_fwd};
  c.d[0] = which, c.d[1] = N, c.d[2] = C;
  add_in(&c, n, -4, 4);
  add_out(&c, n);
  run(&c);
  tcase b = {.name = nb[which], .call = call_act_bwd};
  memcpy(b.d, c.d, sizeof c.d);
  if (which == 3) { /* softmax backward takes the forward's output */
    float *x = rndv(n, -4, 4), *y = xmalloc(sizeof(float) * n);
    ops_backend_get(OPS_CPU_REF)->softmax_fwd(y, x, N, C);
    free(x);
    add_in_data(&b, n, y);
  } else {
    add_in(&b, n, -4, 4);
  }
  add_in(&b, n, -1, 1);
  add_acc(&b, n, -1, 1);
  run(&b);
}

/* ---- attention ------------------------------------------------------------------------------- */

/* buffers: 0 q, 1 k, 2 v, 3 out, 4 probs, 5 mask add, 6 mask keep */
static void call_attn_fwd(const ops_backend *be, void **p, const tcase *c) {
  op_attn_mask m = {.add = F(5), .keep = U8(6), .mb = D[5]};
  be->attention_fwd(F(3), F(4), F(0), F(1), F(2), (m.add || m.keep) ? &m : NULL, D[0], D[1], D[2],
                    D[3], D[4], 1.0f / sqrtf((float)D[4]));
}
/* buffers: 0 q, 1 k, 2 v, 3 probs, 4 dout, 5 dprobs, 6 dq, 7 dk, 8 dv */
static void call_attn_bwd(const ops_backend *be, void **p, const tcase *c) {
  be->attention_bwd(F(6), F(7), F(8), F(4), F(5), F(0), F(1), F(2), F(3), D[0], D[1], D[2], D[3],
                    D[4], 1.0f / sqrtf((float)D[4]));
}
/* mask_kind 0 none, 1 additive per batch, 2 boolean causal broadcast (+ a fully masked row),
 * 3 boolean key padding per group g = b % (B/2) */
static void case_attention(int B, int H, int Nq, int Nk, int D_, int mask_kind, int probs_grad) {
  int64_t nq = (int64_t)B * H * Nq * D_, nk = (int64_t)B * H * Nk * D_, np = (int64_t)B * H * Nq * Nk;
  int mb = mask_kind == 1 ? B : mask_kind == 3 ? B / 2 : 1;
  int64_t nm = (int64_t)mb * Nq * Nk;
  float *add = NULL;
  uint8_t *keep = NULL;
  if (mask_kind == 1) add = rndv(nm, -3, 0);
  if (mask_kind == 3) {
    keep = xcalloc((size_t)nm, 1);
    for (int g = 0; g < mb; g++)
      for (int i = 0; i < Nq; i++)
        for (int j = 0; j < Nk; j++) keep[((int64_t)g * Nq + i) * Nk + j] = j <= g % Nk;
  }
  if (mask_kind == 2) {
    keep = xcalloc((size_t)nm, 1);
    for (int i = 0; i < Nq; i++)
      for (int j = 0; j < Nk; j++) keep[(int64_t)i * Nk + j] = j <= i && i != 1; /* row 1: none */
  }
  tcase c = {.name = "attention_fwd", .call = call_attn_fwd};
  int d[6] = {B, H, Nq, Nk, D_, mb};
  memcpy(c.d, d, sizeof d);
  add_in(&c, nq, -1, 1);
  add_in(&c, nk, -1, 1);
  add_in(&c, nk, -1, 1);
  add_out(&c, nq);
  add_out(&c, np);
  if (add) {
    float *a2 = xmalloc(sizeof(float) * nm);
    memcpy(a2, add, sizeof(float) * nm);
    add_in_data(&c, nm, a2);
  } else add_none(&c);
  if (keep) {
    uint8_t *k2 = xmalloc((size_t)nm);
    memcpy(k2, keep, (size_t)nm);
    add_u8(&c, B_U8IN, nm, k2);
  } else add_none(&c);
  float *q = xmalloc(sizeof(float) * nq), *k = xmalloc(sizeof(float) * nk),
        *v = xmalloc(sizeof(float) * nk);
  memcpy(q, c.b[0].h, sizeof(float) * nq);
  memcpy(k, c.b[1].h, sizeof(float) * nk);
  memcpy(v, c.b[2].h, sizeof(float) * nk);
  c.tol = g_bf16 ? 2e-2 : 0;
  run(&c);
  /* backward on the reference forward's probabilities */
  float *out = xmalloc(sizeof(float) * nq), *P = xmalloc(sizeof(float) * np);
  op_attn_mask m = {.add = add, .keep = keep, .mb = mb};
  ops_backend_get(OPS_CPU_REF)->attention_fwd(out, P, q, k, v, mask_kind ? &m : NULL, B, H, Nq,
                                              Nk, D_, 1.0f / sqrtf((float)D_));
  free(out);
  free(add);
  free(keep);
  tcase b = {.name = probs_grad ? "attention_bwd+dprobs" : "attention_bwd", .call = call_attn_bwd};
  memcpy(b.d, d, sizeof d);
  add_in_data(&b, nq, q);
  add_in_data(&b, nk, k);
  add_in_data(&b, nk, v);
  add_in_data(&b, np, P);
  add_in(&b, nq, -1, 1);
  if (probs_grad) add_in(&b, np, -1, 1); else add_none(&b);
  add_acc(&b, nq, -1, 1);
  add_acc(&b, nk, -1, 1);
  add_acc(&b, nk, -1, 1);
  b.tol = g_bf16 ? 2e-2 : 0;
  run(&b);
}

/* ---- token sequences, cross-entropy ---------------------------------------------------------- */

/* embedding: 0 table, 1 ids (bytes), 2 out | 0 dout, 1 ids, 2 dtable */
static void call_embedding(const ops_backend *be, void **p, const tcase *c) {
  if (D[0] == 0) be->embedding_fwd(F(2), F(0), (const int32_t *)p[1], D[1], D[2], D[3]);
  else be->embedding_bwd(F(2), F(0), (const int32_t *)p[1], D[1], D[2], D[3]);
}
static uint8_t *ids_bytes(int N, int mod, int bad) {
  int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)N);
  for (int n = 0; n < N; n++) ids[n] = (int32_t)((n * 7 + 3) % mod);
  if (bad) ids[N - 1] = -1;
  return (uint8_t *)ids;
}
static void case_embedding(int N, int V, int Dm) {
  tcase c = {.name = "embedding_fwd", .call = call_embedding};
  c.d[0] = 0, c.d[1] = N, c.d[2] = V, c.d[3] = Dm;
  add_in(&c, (int64_t)V * Dm, -1, 1);
  add_u8(&c, B_U8IN, (int64_t)N * 4, ids_bytes(N, V, 1));
  add_out(&c, (int64_t)N * Dm);
  run(&c);
  tcase b = {.name = "embedding_bwd", .call = call_embedding};
  b.d[0] = 1, b.d[1] = N, b.d[2] = V, b.d[3] = Dm;
  add_in(&b, (int64_t)N * Dm, -1, 1);
  add_u8(&b, B_U8IN, (int64_t)N * 4, ids_bytes(N, V, 1));
  add_acc(&b, (int64_t)V * Dm, -1, 1);
  run(&b);
}
/* token pool: 0 inp, 1 w, 2 out | 0 dout, 1 w, 2 dinp */
static void call_pool(const ops_backend *be, void **p, const tcase *c) {
  if (D[0] == 0) be->token_pool_fwd(F(2), F(0), F(1), D[1], D[2], D[3]);
  else be->token_pool_bwd(F(2), F(0), F(1), D[1], D[2], D[3]);
}
static void case_token_pool(int B, int N, int C) {
  tcase c = {.name = "token_pool_fwd", .call = call_pool};
  c.d[0] = 0, c.d[1] = B, c.d[2] = N, c.d[3] = C;
  add_in(&c, (int64_t)B * N * C, -1, 1);
  add_in(&c, (int64_t)B * N, 0, 1);
  add_out(&c, (int64_t)B * C);
  run(&c);
  tcase b = {.name = "token_pool_bwd", .call = call_pool};
  b.d[0] = 1, b.d[1] = B, b.d[2] = N, b.d[3] = C;
  add_in(&b, (int64_t)B * C, -1, 1);
  add_in(&b, (int64_t)B * N, 0, 1);
  add_acc(&b, (int64_t)B * N * C, -1, 1);
  run(&b);
}
/* xent: 0 logits, 1 targets (bytes), 2 loss, 3 probs | 0 probs, 1 targets, 2 dlogits */
static void call_xent(const ops_backend *be, void **p, const tcase *c) {
  if (D[0] == 0) be->xent_fwd(F(2), F(3), F(0), (const int32_t *)p[1], D[1], D[2], c->f[0]);
  else be->xent_bwd(F(2), 0.7f, F(0), (const int32_t *)p[1], D[1], D[2], c->f[0]);
}
static void case_xent(int N, int C, float scale) {
  tcase c = {.name = "xent_fwd", .call = call_xent};
  c.d[0] = 0, c.d[1] = N, c.d[2] = C;
  c.f[0] = scale;
  int64_t nl = (int64_t)N * C;
  float *lg = rndv(nl, -1, 1), *lg2 = xmalloc(sizeof(float) * nl);
  memcpy(lg2, lg, sizeof(float) * nl);
  add_in_data(&c, nl, lg2);
  add_u8(&c, B_U8IN, (int64_t)N * 4, ids_bytes(N, C, 1));
  add_out(&c, 1);
  add_out(&c, nl);
  run(&c);
  float loss, *P = xmalloc(sizeof(float) * nl);
  int32_t *t = (int32_t *)ids_bytes(N, C, 1);
  ops_backend_get(OPS_CPU_REF)->xent_fwd(&loss, P, lg, t, N, C, scale);
  free(t);
  free(lg);
  tcase b = {.name = "xent_bwd", .call = call_xent};
  b.d[0] = 1, b.d[1] = N, b.d[2] = C;
  b.f[0] = scale;
  add_in_data(&b, nl, P);
  add_u8(&b, B_U8IN, (int64_t)N * 4, ids_bytes(N, C, 1));
  add_acc(&b, nl, -1, 1);
  run(&b);
}

/* ---- layout -------------------------------------------------------------------------------- */

static void call_permute_fwd(const ops_backend *be, void **p, const tcase *c) {
  be->permute_fwd(F(1), F(0), D[0], D + 1, D + 7);
}
static void call_permute_bwd(const ops_backend *be, void **p, const tcase *c) {
  be->permute_bwd(F(1), F(0), D[0], D + 1, D + 7);
}
static void case_permute(int ndim, const int *shape, const int *perm) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  tcase c = {.name = "permute_fwd", .call = call_permute_fwd};
  c.d[0] = ndim;
  memcpy(c.d + 1, shape, sizeof(int) * ndim);
  memcpy(c.d + 7, perm, sizeof(int) * ndim);
  add_in(&c, n, -1, 1);
  add_out(&c, n);
  run(&c);
  tcase b = {.name = "permute_bwd", .call = call_permute_bwd};
  memcpy(b.d, c.d, sizeof c.d);
  add_in(&b, n, -1, 1);
  add_acc(&b, n, -1, 1);
  run(&b);
}

/* which: 0 upsample, 1 avgpool; fwd: in0 -> out1; bwd: dout in0 -> dinp acc1 */
static void call_resample(const ops_backend *be, void **p, const tcase *c) {
  int N = D[1], C = D[2], H = D[3], W = D[4];
  if (D[0] == 0) be->upsample2x_fwd(F(1), F(0), N, C, H, W);
  else if (D[0] == 1) be->avgpool2x_fwd(F(1), F(0), N, C, H, W);
  else if (D[0] == 2) be->upsample2x_bwd(F(1), F(0), N, C, H, W);
  else be->avgpool2x_bwd(F(1), F(0), N, C, H, W);
}
static void case_resample(int N, int C, int H, int W) {
  static const char *names[] = {"upsample2x_fwd", "avgpool2x_fwd", "upsample2x_bwd",
                                "avgpool2x_bwd"};
  int64_t small = (int64_t)N * C * H * W, big = small * 4;
  for (int w = 0; w < 4; w++) {
    tcase c = {.name = names[w], .call = call_resample};
    int d[5] = {w, N, C, H, W};
    if (w == 1 || w == 3) d[3] = 2 * H, d[4] = 2 * W; /* pooling works on the big side */
    memcpy(c.d, d, sizeof d);
    int64_t in = (w == 0 || w == 3) ? small : big, out = (w == 0 || w == 3) ? big : small;
    add_in(&c, in, -1, 1);
    if (w < 2) add_out(&c, out); else add_acc(&c, out, -1, 1);
    run(&c);
  }
}

/* concat: a, b -> out; concat_bwd: dout -> da, db; split: inp -> a, b */
static void call_concat(const ops_backend *be, void **p, const tcase *c) {
  int M = D[1], Ca = D[2], Cb = D[3], S = D[4];
  if (D[0] == 0) be->concat_fwd(F(2), F(0), F(1), M, Ca, Cb, S);
  else if (D[0] == 1) be->concat_bwd(F(1), F(2), F(0), M, Ca, Cb, S);
  else be->split_fwd(F(1), F(2), F(0), M, Ca, Cb, S);
}
static void case_concat(int M, int Ca, int Cb, int S) {
  int64_t na = (int64_t)M * Ca * S, nb = (int64_t)M * Cb * S;
  tcase c = {.name = "concat_fwd", .call = call_concat};
  int d[5] = {0, M, Ca, Cb, S};
  memcpy(c.d, d, sizeof d);
  add_in(&c, na, -1, 1);
  add_in(&c, nb, -1, 1);
  add_out(&c, na + nb);
  run(&c);
  tcase b = {.name = "concat_bwd", .call = call_concat};
  d[0] = 1;
  memcpy(b.d, d, sizeof d);
  add_in(&b, na + nb, -1, 1);
  add_acc(&b, na, -1, 1);
  add_acc(&b, nb, -1, 1);
  run(&b);
  tcase s = {.name = "split_fwd", .call = call_concat};
  d[0] = 2;
  memcpy(s.d, d, sizeof d);
  add_in(&s, na + nb, -1, 1);
  add_out(&s, na);
  add_out(&s, nb);
  run(&s);
}

static void call_repeat(const ops_backend *be, void **p, const tcase *c) {
  if (D[0] == 0) be->repeat_fwd(F(1), F(0), D[1], D[2], D[3]);
  else be->repeat_bwd(F(1), F(0), D[1], D[2], D[3]);
}
static void case_repeat(int B, int T, int E) {
  tcase c = {.name = "repeat_fwd", .call = call_repeat};
  int d[4] = {0, B, T, E};
  memcpy(c.d, d, sizeof d);
  add_in(&c, (int64_t)B * E, -1, 1);
  add_out(&c, (int64_t)B * T * E);
  run(&c);
  tcase b = {.name = "repeat_bwd", .call = call_repeat};
  d[0] = 1;
  memcpy(b.d, d, sizeof d);
  add_in(&b, (int64_t)B * T * E, -1, 1);
  add_acc(&b, (int64_t)B * E, -1, 1);
  run(&b);
}

/* ---- element-wise -------------------------------------------------------------------------- */

static void call_elem(const ops_backend *be, void **p, const tcase *c) {
  int64_t n = c->b[0].n;
  switch (D[0]) {
  case 0: be->add_fwd(F(2), F(0), F(1), n); break;
  case 1: be->axpy(F(1), -0.625f, F(0), n); break;
  case 2: be->scale_fwd(F(1), F(0), 1.75f, n); break;
  case 3: be->mul_fwd(F(2), F(0), F(1), n); break;
  case 4: be->mul_bwd(F(3), F(4), F(2), F(0), F(1), n); break;
  case 5: be->ema_update(F(1), F(0), 0.95f, n); break;
  }
}
static void case_elem(int64_t n) {
  static const char *names[] = {"add_fwd", "axpy", "scale_fwd", "mul_fwd", "mul_bwd",
                                "ema_update"};
  for (int w = 0; w < 6; w++) {
    tcase c = {.name = names[w], .call = call_elem};
    c.d[0] = w;
    add_in(&c, n, -1, 1);
    if (w == 0 || w == 3) {
      add_in(&c, n, -1, 1);
      add_out(&c, n);
    } else if (w == 1 || w == 5) {
      add_acc(&c, n, -1, 1);
    } else if (w == 2) {
      add_out(&c, n);
    } else {
      add_in(&c, n, -1, 1);
      add_in(&c, n, -1, 1);
      add_acc(&c, n, -1, 1);
      add_acc(&c, n, -1, 1);
    }
    run(&c);
  }
}

static void call_bias_add(const ops_backend *be, void **p, const tcase *c) {
  if (D[0] == 0) be->bias_add_fwd(F(2), F(0), F(1), D[1], D[2], D[3], D[4]);
  else be->bias_add_bwd(F(1), F(2), F(0), D[1], D[2], D[3], D[4]);
}
static void case_bias_add(int B, int T, int C, int S) {
  int64_t n = (int64_t)B * T * C * S;
  tcase c = {.name = "bias_add_fwd", .call = call_bias_add};
  int d[5] = {0, B, T, C, S};
  memcpy(c.d, d, sizeof d);
  add_in(&c, n, -1, 1);
  add_in(&c, (int64_t)B * C, -1, 1);
  add_out(&c, n);
  run(&c);
  tcase b = {.name = "bias_add_bwd", .call = call_bias_add};
  d[0] = 1;
  memcpy(b.d, d, sizeof d);
  add_in(&b, n, -1, 1);
  add_acc(&b, n, -1, 1);
  add_acc(&b, (int64_t)B * C, -1, 1);
  run(&b);
}

static void call_l2_fwd(const ops_backend *be, void **p, const tcase *c) {
  be->l2norm_fwd(F(1), F(2), F(0), D[0], D[1], 1e-6f);
}
static void call_l2_bwd(const ops_backend *be, void **p, const tcase *c) {
  be->l2norm_bwd(F(3), F(0), F(1), F(2), D[0], D[1]);
}
static void case_l2norm(int N, int C) {
  int64_t n = (int64_t)N * C;
  float *x = rndv(n, -1, 1);
  for (int i = 0; i < C; i++) x[i] = 0.0f; /* row 0 is zero: the eps clamp */
  tcase c = {.name = "l2norm_fwd", .call = call_l2_fwd};
  c.d[0] = N, c.d[1] = C;
  float *x2 = xmalloc(sizeof(float) * n);
  memcpy(x2, x, sizeof(float) * n);
  add_in_data(&c, n, x2);
  add_out(&c, n);
  add_out(&c, N);
  run(&c);
  float *y = xmalloc(sizeof(float) * n), *r = xmalloc(sizeof(float) * N);
  ops_backend_get(OPS_CPU_REF)->l2norm_fwd(y, r, x, N, C, 1e-6f);
  free(x);
  tcase b = {.name = "l2norm_bwd", .call = call_l2_bwd};
  b.d[0] = N, b.d[1] = C;
  add_in(&b, n, -1, 1);
  add_in_data(&b, n, y);
  add_in_data(&b, N, r);
  add_acc(&b, n, -1, 1);
  run(&b);
}

/* ---- embeddings, dropout ------------------------------------------------------------------- */

static void call_emb(const ops_backend *be, void **p, const tcase *c) {
  if (D[0] == 0) be->timestep_embedding(F(1), F(0), D[1], D[2], 10000.0f);
  else be->guidance_embedding(F(1), F(0), D[1], D[2]);
}
static void case_emb(int which, int N, int dim) {
  tcase c = {.name = which ? "guidance_embedding" : "timestep_embedding", .call = call_emb};
  c.d[0] = which, c.d[1] = N, c.d[2] = dim;
  add_in(&c, N, which ? 1.0f : 0.0f, which ? 15.0f : 999.0f);
  add_out(&c, (int64_t)N * dim);
  c.tol = 1e-5;
  run(&c);
}

static void call_dropout(const ops_backend *be, void **p, const tcase *c) {
  if (D[0] == 0) be->dropout_fwd(F(1), U8(2), F(0), c->b[0].n, c->f[0], c->u);
  else be->dropout_bwd(F(2), F(0), U8(1), c->b[0].n, c->f[0]);
}
static void case_dropout(int64_t n, float pr, uint64_t seed) {
  tcase c = {.name = "dropout_fwd", .call = call_dropout, .u = seed};
  c.f[0] = pr;
  add_in(&c, n, -1, 1);
  add_out(&c, n);
  add_u8(&c, B_U8OUT, n, NULL);
  run(&c);
  uint8_t *keep = xmalloc((size_t)n);
  for (int64_t i = 0; i < n; i++) keep[i] = pr <= 0.0f || op_rand_uniform(seed, (uint64_t)i) >= pr;
  tcase b = {.name = "dropout_bwd", .call = call_dropout};
  b.d[0] = 1;
  b.f[0] = pr;
  add_in(&b, n, -1, 1);
  add_u8(&b, B_U8IN, n, keep);
  add_acc(&b, n, -1, 1);
  run(&b);
}

static void call_cond_drop(const ops_backend *be, void **p, const tcase *c) {
  if (D[0] == 0) be->cond_drop_fwd(F(2), F(0), F(1), U8(3), D[1], D[2]);
  else be->cond_drop_bwd(F(1), F(2), F(0), U8(3), D[1], D[2]);
}
static void case_cond_drop(int B, int E) {
  uint8_t *keep = xmalloc((size_t)B), *keep2 = xmalloc((size_t)B);
  op_cond_drop_mask(keep, B, 0.4f, 7);
  memcpy(keep2, keep, (size_t)B);
  tcase c = {.name = "cond_drop_fwd", .call = call_cond_drop};
  c.d[0] = 0, c.d[1] = B, c.d[2] = E;
  add_in(&c, (int64_t)B * E, -1, 1);
  add_in(&c, E, -1, 1);
  add_out(&c, (int64_t)B * E);
  add_u8(&c, B_HOSTU8, B, keep);
  run(&c);
  tcase b = {.name = "cond_drop_bwd", .call = call_cond_drop};
  b.d[0] = 1, b.d[1] = B, b.d[2] = E;
  add_in(&b, (int64_t)B * E, -1, 1);
  add_acc(&b, (int64_t)B * E, -1, 1);
  add_acc(&b, E, -1, 1);
  add_u8(&b, B_HOSTU8, B, keep2);
  run(&b);
}

/* ---- losses, optimiser ------------------------------------------------------------------- */

static void call_loss(const ops_backend *be, void **p, const tcase *c) {
  int64_t n = c->b[0].n;
  switch (D[0]) {
  case 0: be->mse_fwd(F(2), F(0), F(1), n); break;
  case 1: be->huber_fwd(F(2), F(0), F(1), n, 0.001f); break;
  case 2: be->mse_bwd(F(2), F(3), 0.7f, F(0), F(1), n); break;
  case 3: be->huber_bwd(F(2), F(3), 0.7f, F(0), F(1), n, 0.001f); break;
  case 4: be->sumsq(F(1), F(0), n); break;
  }
}
static void case_losses(int64_t n) {
  static const char *names[] = {"mse_fwd", "huber_fwd", "mse_bwd", "huber_bwd", "sumsq"};
  for (int w = 0; w < 5; w++) {
    tcase c = {.name = names[w], .call = call_loss};
    c.d[0] = w;
    add_in(&c, n, -1, 1);
    if (w == 4) {
      add_out(&c, 1);
    } else {
      add_in(&c, n, -1, 1);
      if (w < 2) add_out(&c, 1);
      else {
        add_acc(&c, n, -1, 1);
        add_acc(&c, n, -1, 1);
      }
    }
    c.tol = 1e-5;
    run(&c);
  }
}

static void call_infonce(const ops_backend *be, void **p, const tcase *c) {
  if (D[0] == 0) be->infonce_fwd(F(2), F(3), F(4), F(0), F(1), D[1], D[2], 0.07f);
  else be->infonce_bwd(F(4), F(5), 0.9f, F(0), F(1), F(2), F(3), D[1], D[2], 0.07f);
}
static void case_infonce(int N, int Dm) {
  int64_t n = (int64_t)N * Dm;
  float *a = rndv(n, -1, 1), *b = rndv(n, -1, 1), *r = xmalloc(sizeof(float) * N);
  const ops_backend *ref = ops_backend_get(OPS_CPU_REF);
  ref->l2norm_fwd(a, r, a, N, Dm, 1e-6f);
  ref->l2norm_fwd(b, r, b, N, Dm, 1e-6f);
  free(r);
  tcase c = {.name = "infonce_fwd", .call = call_infonce};
  c.d[0] = 0, c.d[1] = N, c.d[2] = Dm;
  float *a2 = xmalloc(sizeof(float) * n), *b2 = xmalloc(sizeof(float) * n);
  memcpy(a2, a, sizeof(float) * n);
  memcpy(b2, b, sizeof(float) * n);
  add_in_data(&c, n, a2);
  add_in_data(&c, n, b2);
  add_out(&c, 1);
  add_out(&c, (int64_t)N * N);
  add_out(&c, (int64_t)N * N);
  run(&c);
  float loss, *pab = xmalloc(sizeof(float) * N * N), *pba = xmalloc(sizeof(float) * N * N);
  ref->infonce_fwd(&loss, pab, pba, a, b, N, Dm, 0.07f);
  tcase g = {.name = "infonce_bwd", .call = call_infonce};
  g.d[0] = 1, g.d[1] = N, g.d[2] = Dm;
  add_in_data(&g, n, a);
  add_in_data(&g, n, b);
  add_in_data(&g, (int64_t)N * N, pab);
  add_in_data(&g, (int64_t)N * N, pba);
  add_acc(&g, n, -1, 1);
  add_acc(&g, n, -1, 1);
  run(&g);
}

/* ---- motion guidance: top-1 rows, masked MSE (idx travels as int32 bytes) ---------------- */

static void call_motion(const ops_backend *be, void **p, const tcase *c) {
  int64_t R = D[1];
  int N = D[2];
  if (D[0] == 0) be->attn_top1((int32_t *)p[1], F(2), F(0), R, N);
  else if (D[0] == 1) be->masked_mse_fwd(F(3), F(0), (const int32_t *)p[1], F(2), R, N);
  else be->masked_mse_bwd(F(3), 0.7f, F(0), (const int32_t *)p[1], F(2), R, N);
}
static void case_motion(int64_t R, int N) {
  static const char *names[] = {"attn_top1", "masked_mse_fwd", "masked_mse_bwd"};
  for (int w = 0; w < 3; w++) {
    tcase c = {.name = names[w], .call = call_motion};
    c.d[0] = w, c.d[1] = (int)R, c.d[2] = N;
    add_in(&c, R * N, 0, 1);
    if (w == 0) {
      add_u8(&c, B_U8OUT, R * 4, NULL);
      add_out(&c, R);
    } else {
      uint8_t *ib = xmalloc((size_t)R * 4);
      int32_t *idx = (int32_t *)ib;
      for (int64_t r = 0; r < R; r++) idx[r] = (int32_t)((r * 7 + 3) % N);
      add_u8(&c, B_U8IN, R * 4, ib);
      add_in(&c, R, 0, 1);
      if (w == 1) add_out(&c, 1);
      else add_acc(&c, R * N, -1, 1);
    }
    c.tol = 1e-5;
    run(&c);
  }
}

static void call_adamw(const ops_backend *be, void **p, const tcase *c) {
  be->adamw_step(F(1), F(0), F(2), F(3), c->b[0].n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 3);
}
static void case_adamw(int64_t n) {
  tcase c = {.name = "adamw_step", .call = call_adamw};
  add_in(&c, n, -1, 1);
  add_acc(&c, n, -1, 1);
  add_acc(&c, n, -0.1f, 0.1f);
  add_acc(&c, n, 0.0f, 0.01f);
  c.tol = 1e-6;
  run(&c);
}

/* ---- the frame VAE's ops ------------------------------------------------------------------ */

static void call_vae(const ops_backend *be, void **p, const tcase *c) {
  int64_t n = c->b[0].n;
  switch (D[0]) {
  case 0: be->pad2d_fwd(F(1), F(0), D[1], D[2], D[3], D[4], 0, 1, 0, 1); break;
  case 1: be->pad2d_bwd(F(1), F(0), D[1], D[2], D[3], D[4], 0, 1, 0, 1); break;
  case 2: be->clamp_fwd(F(1), F(0), -0.5f, 0.5f, n); break;
  case 3: be->clamp_bwd(F(2), F(1), F(0), -0.5f, 0.5f, n); break;
  case 4: be->gauss_sample_fwd(F(3), F(0), F(1), F(2), n); break;
  case 5: be->gauss_sample_bwd(F(3), F(4), F(2), F(0), F(1), n); break;
  case 6: be->kl_gauss_fwd(F(2), F(0), F(1), n); break;
  case 7: be->kl_gauss_bwd(F(2), F(3), 0.7f, F(0), F(1), n); break;
  case 8: be->l1_fwd(F(2), F(0), F(1), n); break;
  case 9: be->l1_bwd(F(2), F(3), 0.7f, F(0), F(1), n); break;
  }
}
static void case_vae_ops(int N, int C, int H, int W) {
  int64_t n = (int64_t)N * C * H * W, np = (int64_t)N * C * (H + 1) * (W + 1);
  static const char *names[] = {"pad2d_fwd", "pad2d_bwd", "clamp_fwd", "clamp_bwd",
                                "gauss_sample_fwd", "gauss_sample_bwd", "kl_gauss_fwd",
                                "kl_gauss_bwd", "l1_fwd", "l1_bwd"};
  for (int w = 0; w < 10; w++) {
    tcase c = {.name = names[w], .call = call_vae};
    c.d[0] = w, c.d[1] = N, c.d[2] = C, c.d[3] = H, c.d[4] = W;
    if (w == 0) {
      add_in(&c, n, -1, 1);
      add_out(&c, np);
    } else if (w == 1) {
      c.b[c.nb++] = (tbuf){B_IN, np, rndv(np, -1, 1), NULL};
      add_acc(&c, n, -1, 1);
    } else if (w == 2) {
      add_in(&c, n, -1, 1);
      add_out(&c, n);
    } else if (w == 3) {
      add_in(&c, n, -1, 1);
      add_in(&c, n, -1, 1);
      add_acc(&c, n, -1, 1);
    } else if (w == 4 || w == 5) {
      add_in(&c, n, -1, 1);
      add_in(&c, n, -2, 2);
      add_in(&c, n, -1, 1);
      if (w == 4) add_out(&c, n);
      else {
        add_acc(&c, n, -1, 1);
        add_acc(&c, n, -1, 1);
      }
    } else {
      add_in(&c, n, -1, 1);
      add_in(&c, n, -2, 2);
      if (w == 6 || w == 8) add_out(&c, 1);
      else {
        add_acc(&c, n, -1, 1);
        add_acc(&c, n, -1, 1);
      }
      c.tol = 1e-5;
    }
    run(&c);
  }
}

/* ---- a ResBlock-shaped chain through the op table ------------------------------------------
 * h = conv(silu(gn(x))) + emb; y = x + conv2(silu(gn2(h))); loss = mse(y, target); backward of
 * every piece, gradients of x and of all weights. Run on a backend with memory from alloc. */
typedef struct {
  int N, C, H, W, G;
  float *x, *w1, *b1, *w2, *b2, *g1, *be1, *g2, *be2, *emb, *target; /* inputs */
} chain_in;

typedef struct {
  float loss;
  float *dx, *dw1, *dw2, *demb;
} chain_out;

static float *dup_to(const float *h, int64_t n, int gpu) {
  float *d = gpu ? device_malloc(sizeof(float) * n) : xmalloc(sizeof(float) * n);
  if (gpu) device_memcpy_h2d(d, h, sizeof(float) * n);
  else memcpy(d, h, sizeof(float) * n);
  return d;
}
static float *zero_on(int64_t n, int gpu) {
  float *d = gpu ? device_malloc(sizeof(float) * n) : xcalloc((size_t)n, sizeof(float));
  if (gpu) device_memset(d, 0, sizeof(float) * n);
  return d;
}
static float *back(float *d, int64_t n, int gpu) {
  if (!gpu) return d;
  float *h = xmalloc(sizeof(float) * n);
  device_memcpy_d2h(h, d, sizeof(float) * n);
  device_free(d);
  return h;
}
static void drop(float *d, int gpu) {
  if (gpu) device_free(d);
  else free(d);
}

static chain_out chain_run(const chain_in *in, ops_backend_id id) {
  const ops_backend *be = ops_backend_get(id);
  int gpu = id == OPS_CUDA;
  int N = in->N, C = in->C, H = in->H, W = in->W, G = in->G, S = H * W;
  int64_t n = (int64_t)N * C * S, nw = (int64_t)C * C * 9;
  float *x = dup_to(in->x, n, gpu), *w1 = dup_to(in->w1, nw, gpu), *b1 = dup_to(in->b1, C, gpu),
        *w2 = dup_to(in->w2, nw, gpu), *b2 = dup_to(in->b2, C, gpu), *g1 = dup_to(in->g1, C, gpu),
        *be1 = dup_to(in->be1, C, gpu), *g2 = dup_to(in->g2, C, gpu),
        *be2 = dup_to(in->be2, C, gpu), *emb = dup_to(in->emb, (int64_t)N * C, gpu),
        *tg = dup_to(in->target, n, gpu);
  float *a1 = zero_on(n, gpu), *m1 = zero_on(N * G, gpu), *r1 = zero_on(N * G, gpu),
        *s1 = zero_on(n, gpu), *c1 = zero_on(n, gpu), *h = zero_on(n, gpu),
        *a2 = zero_on(n, gpu), *m2 = zero_on(N * G, gpu), *r2 = zero_on(N * G, gpu),
        *s2 = zero_on(n, gpu), *c2 = zero_on(n, gpu), *y = zero_on(n, gpu),
        *loss = zero_on(1, gpu);
  /* forward */
  be->groupnorm_fwd(a1, m1, r1, x, g1, be1, N, 1, C, S, G, 1e-5f);
  be->silu_fwd(s1, a1, n);
  be->conv2d_fwd(c1, s1, w1, b1, N, C, H, W, C, 3, 1, 1);
  be->bias_add_fwd(h, c1, emb, N, 1, C, S);
  be->groupnorm_fwd(a2, m2, r2, h, g2, be2, N, 1, C, S, G, 1e-5f);
  be->silu_fwd(s2, a2, n);
  be->conv2d_fwd(c2, s2, w2, b2, N, C, H, W, C, 3, 1, 1);
  be->add_fwd(y, x, c2, n);
  be->mse_fwd(loss, y, tg, n);
  /* backward */
  float *dy = zero_on(n, gpu), *ds2 = zero_on(n, gpu), *da2 = zero_on(n, gpu),
        *dh = zero_on(n, gpu), *ds1 = zero_on(n, gpu), *da1 = zero_on(n, gpu),
        *dx = zero_on(n, gpu), *dw1 = zero_on(nw, gpu), *dw2 = zero_on(nw, gpu),
        *db1 = zero_on(C, gpu), *db2 = zero_on(C, gpu), *dg1 = zero_on(C, gpu),
        *dbe1 = zero_on(C, gpu), *dg2 = zero_on(C, gpu), *dbe2 = zero_on(C, gpu),
        *demb = zero_on((int64_t)N * C, gpu);
  be->mse_bwd(dy, NULL, 1.0f, y, tg, n);
  be->axpy(dx, 1.0f, dy, n);
  be->conv2d_bwd(ds2, dw2, db2, dy, s2, w2, N, C, H, W, C, 3, 1, 1);
  be->silu_bwd(da2, ds2, a2, n);
  be->groupnorm_bwd(dh, dg2, dbe2, da2, h, m2, r2, g2, N, 1, C, S, G);
  be->bias_add_bwd(NULL, demb, dh, N, 1, C, S);
  be->conv2d_bwd(ds1, dw1, db1, dh, s1, w1, N, C, H, W, C, 3, 1, 1); /* c1 -> h is identity */
  be->silu_bwd(da1, ds1, a1, n);
  be->groupnorm_bwd(dx, dg1, dbe1, da1, x, m1, r1, g1, N, 1, C, S, G);
  chain_out o;
  float *lh = back(loss, 1, gpu);
  o.loss = lh[0];
  free(lh);
  o.dx = back(dx, n, gpu);
  o.dw1 = back(dw1, nw, gpu);
  o.dw2 = back(dw2, nw, gpu);
  o.demb = back(demb, (int64_t)N * C, gpu);
  float *rest[] = {x, w1, b1, w2, b2, g1, be1, g2, be2, emb, tg, a1, m1, r1, s1, c1, h, a2, m2,
                   r2, s2, c2, y, dy, ds2, da2, dh, ds1, da1, db1, db2, dg1, dbe1, dg2, dbe2};
  for (size_t i = 0; i < sizeof rest / sizeof *rest; i++) drop(rest[i], gpu);
  return o;
}

static void test_chain(int N, int C, int H, int W, int G) {
  chain_in in = {.N = N, .C = C, .H = H, .W = W, .G = G};
  int64_t n = (int64_t)N * C * H * W, nw = (int64_t)C * C * 9;
  float bound = 1.0f / sqrtf((float)C * 9);
  in.x = rndv(n, -1, 1);
  in.w1 = rndv(nw, -bound, bound);
  in.w2 = rndv(nw, -bound, bound);
  in.b1 = rndv(C, -0.1f, 0.1f);
  in.b2 = rndv(C, -0.1f, 0.1f);
  in.g1 = rndv(C, 0.8f, 1.2f);
  in.g2 = rndv(C, 0.8f, 1.2f);
  in.be1 = rndv(C, -0.1f, 0.1f);
  in.be2 = rndv(C, -0.1f, 0.1f);
  in.emb = rndv((int64_t)N * C, -0.5f, 0.5f);
  in.target = rndv(n, -1, 1);
  chain_out r = chain_run(&in, OPS_CPU_REF), g = chain_run(&in, OPS_CUDA);
  double tol = g_bf16 ? 2e-2 : 1e-4;
  CHECKF(fabs(g.loss - r.loss) <= tol * fabs(r.loss), "resblock chain loss: cuda %.8g, ref %.8g",
         g.loss, r.loss);
  check_nerr_f32("resblock chain dx", g.dx, r.dx, n, tol);
  check_nerr_f32("resblock chain dw1", g.dw1, r.dw1, nw, tol);
  check_nerr_f32("resblock chain dw2", g.dw2, r.dw2, nw, tol);
  check_nerr_f32("resblock chain demb", g.demb, r.demb, (int64_t)N * C, tol);
  printf("  %-28s %s ok (loss %.6f vs %.6f)\n", "resblock chain", g_bf16 ? "bf16" : "f32 ", g.loss,
         r.loss);
  float *all[] = {in.x, in.w1, in.w2, in.b1, in.b2, in.g1, in.g2, in.be1, in.be2, in.emb,
                  in.target, r.dx, r.dw1, r.dw2, r.demb, g.dx, g.dw1, g.dw2, g.demb};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
}

/* ---- main ------------------------------------------------------------------------------------- */

static void gemm_cases(void) {
  for (int tA = 0; tA < 2; tA++)
    for (int tB = 0; tB < 2; tB++) case_matmul(tA, tB, 37, 29, 53, 0.5f);
  case_matmul(0, 0, 256, 384, 512, 0.0f);
  case_matmul(1, 0, 1, 7, 5, 0.0f);
  case_linear(45, 33, 17, 1);
  case_linear(256, 320, 1280, 0);
  case_conv2d(3, 5, 9, 7, 6, 3, 1, 1, 1, 1);
  case_conv2d(2, 4, 8, 8, 5, 3, 2, 1, 1, 1);
  case_conv2d(4, 8, 6, 5, 3, 1, 1, 0, 0, 1);
  case_conv2d(2, 3, 7, 7, 4, 3, 1, 1, 1, 0);
  case_conv2d(16, 64, 16, 16, 64, 3, 1, 1, 1, 1);
  case_tconv(2, 5, 4, 6, 3, 3);
  case_tconv(3, 1, 4, 5, 2, 3);
  case_tconv(1, 16, 32, 64, 32, 3);
  case_conv3d(2, 4, 3, 5, 6, 4, 3, 3, 1, 1, 1, 1);
  case_conv3d(1, 5, 2, 8, 8, 3, 3, 3, 2, 2, 1, 1);
  case_attention(2, 3, 7, 11, 8, 0, 0);
  case_attention(2, 3, 7, 11, 8, 1, 1);
  case_attention(2, 2, 9, 9, 4, 2, 1);
  case_attention(6, 4, 12, 12, 8, 3, 0); /* text encoder: key padding per caption */
  case_attention(64, 2, 16, 16, 8, 0, 1); /* temporal shape */
  case_attention(4, 4, 256, 77, 16, 0, 0); /* cross-attention shape */
}

int main(void) {
  test_begin("test_cuda_ops");
  if (!device_cuda_built()) return test_skip("no CUDA device (built without CUDA)");
  if (device_init("auto") != TB_OK || !device_is_cuda()) return test_skip("no CUDA device");
  TB_CHECK(ops_backend_get(OPS_CUDA) != NULL);
  printf("device: %s\n", device_describe());

  device_set_compute(DEVICE_F32);
  gemm_cases();
  case_groupnorm(3, 1, 8, 10, 4, 1);
  case_groupnorm(2, 4, 6, 9, 3, 1);
  case_groupnorm(2, 16, 64, 64, 32, 1);
  case_groupnorm(3, 2, 4, 5, 2, 0);
  case_layernorm(7, 33);
  case_layernorm(300, 320);
  for (int w = 0; w < 3; w++) case_act(w, 1, 1001);
  case_act(4, 1, 1001);
  case_act(3, 13, 37);
  case_act(3, 5, 1000);
  {
    int s4[4] = {2, 3, 4, 5}, p4[4] = {0, 3, 1, 2};
    case_permute(4, s4, p4);
    int s3[3] = {3, 7, 5}, p3[3] = {0, 2, 1};
    case_permute(3, s3, p3);
    int s6[6] = {2, 3, 2, 4, 1, 3}, p6[6] = {5, 0, 3, 1, 4, 2};
    case_permute(6, s6, p6);
  }
  case_resample(2, 3, 5, 7);
  case_concat(3, 4, 5, 7);
  case_repeat(3, 4, 33);
  case_elem(1003);
  case_bias_add(2, 3, 5, 7);
  case_l2norm(6, 40);
  case_emb(0, 5, 33);
  case_emb(0, 4, 320);
  case_emb(1, 5, 256);
  case_emb(1, 3, 7);
  case_dropout(10007, 0.3f, 42);
  case_dropout(100, 0.0f, 1);
  case_cond_drop(300, 19); /* more than one 256-sample chunk */
  case_cond_drop(5, 77 * 8);
  case_losses(100003);
  case_vae_ops(3, 5, 7, 9);
  case_infonce(9, 16);
  case_embedding(300, 57, 128);
  case_token_pool(5, 12, 33);
  case_xent(7, 300, 14.0f);
  case_xent(64, 2, 1.0f);
  case_motion(4097, 16);
  case_motion(3, 5);
  case_adamw(5001);
  test_chain(2, 32, 8, 8, 8);

  /* the GEMM-heavy ops in bf16 */
  g_bf16 = 1;
  device_set_compute(DEVICE_BF16);
  gemm_cases();
  test_chain(2, 32, 8, 8, 8);
  device_set_compute(DEVICE_F32);
  g_bf16 = 0;

  printf("%d cases\n", g_cases);
  device_shutdown();
  return test_finish();
}

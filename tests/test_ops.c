/* tests/test_ops.c — every operation on every backend present:
 *  1. each non-reference backend's forward and backward against the CPU reference, on random
 *     inputs with awkward shapes (odd sizes, T = 1, batch 3, strides and paddings);
 *  2. each backend's backward against central finite differences of the reference forward:
 *     the loss L = sum_i out_i * R_i (R random, also the incoming gradient) is accumulated in
 *     double from the f32 outputs, whose reductions the reference already does in double;
 *     steps are sized per op so rounding stays well under the tolerance.
 * A backend without an entry (CUDA before it is written) is reported "skipped" for that op. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/ops.h"
#include "tests/testutil.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#define MAXIO 6

typedef struct opcase opcase;
struct opcase {
  const char *name;
  int nin, nout;
  float *in[MAXIO];
  int64_t nin_el[MAXIO];
  int grad_in[MAXIO];  // 1: this input has a gradient to check
  float *out[MAXIO];
  int64_t nout_el[MAXIO];
  /* forward on backend be: reads c->in, writes c->out; returns 0 when unsupported */
  int (*fwd)(const ops_backend *be, opcase *c);
  /* backward: dout (one per output, = R), accumulates into din (NULL where no grad) */
  int (*bwd)(const ops_backend *be, opcase *c, float **dout, float **din);
  int d[12];      // dims
  float f[4];     // float parameters
  void *aux;      // scratch the forward fills (stats, probabilities, keep flags) or a mask
  int aux_kind;   // how aux moves to a device backend (AUX_*)
  int64_t aux_n;  // its element count (AUX_MASK: mb * Nq * Nk)
  float h;        // finite-difference step
  double tol;     // FD tolerance (relative to the largest gradient)
};

enum { AUX_NONE = 0, AUX_F32, AUX_U8_DEVICE, AUX_U8_HOST, AUX_MASK };

static uint64_t g_seed = 1234;
static int g_skipped = 0;

static float *rnd(int64_t n, float lo, float hi) {
  float *x = xmalloc(sizeof(float) * (size_t)(n ? n : 1));
  test_fill_uniform(x, n, g_seed++, lo, hi);
  return x;
}
static float *zeros(int64_t n) { return xcalloc((size_t)(n ? n : 1), sizeof(float)); }

static double loss_of(opcase *c, float **R) {
  double s = 0.0;
  for (int o = 0; o < c->nout; o++)
    for (int64_t i = 0; i < c->nout_el[o]; i++) s += (double)c->out[o][i] * R[o][i];
  return s;
}

/* Moving a case to a device backend (one with mem_alloc): inputs, outputs and the scratch get
 * device copies for the duration, and results come back through mem_to_host. On the CPU
 * backends every helper is the identity. */
typedef struct {
  const ops_backend *be;
  int dev;
  float *in[MAXIO], *out[MAXIO];
  void *aux;
  op_attn_mask mask;
} mirror;

static float *mirror_put(mirror *m, float *h, int64_t n) {
  if (!m->dev || !h) return h;
  float *d = m->be->mem_alloc(sizeof(float) * (size_t)(n ? n : 1));
  m->be->mem_to_device(d, h, sizeof(float) * (size_t)n);
  return d;
}
static void *mirror_put_bytes(mirror *m, const void *h, size_t n) {
  void *d = m->be->mem_alloc(n ? n : 1);
  m->be->mem_to_device(d, h, n);
  return d;
}
static float *mirror_fetch(mirror *m, float *d, int64_t n) {
  if (!m->dev) return d;
  float *h = zeros(n);
  m->be->mem_to_host(h, d, sizeof(float) * (size_t)n);
  return h;
}
static void mirror_release(mirror *m, float *h) {
  if (m->dev) free(h);
}
static void mirror_free(mirror *m, void *d) {
  if (!d) return;
  if (m->dev)
    m->be->mem_free(d);
  else
    free(d);
}
static void mirror_begin(mirror *m, const ops_backend *be, opcase *c) {
  memset(m, 0, sizeof *m);
  m->be = be;
  m->dev = be->mem_alloc != NULL;
  if (!m->dev) return;
  for (int i = 0; i < c->nin; i++) {
    m->in[i] = c->in[i];
    c->in[i] = mirror_put(m, c->in[i], c->nin_el[i]);
  }
  for (int o = 0; o < c->nout; o++) {
    m->out[o] = c->out[o];
    c->out[o] = mirror_put(m, c->out[o], c->nout_el[o]);
  }
  m->aux = c->aux;
  switch (c->aux_kind) {
    case AUX_F32:
      c->aux = mirror_put(m, c->aux, c->aux_n);
      break;
    case AUX_U8_DEVICE:
      c->aux = mirror_put_bytes(m, c->aux, (size_t)c->aux_n);
      break;
    case AUX_MASK: {
      const op_attn_mask *h = c->aux;
      m->mask = *h;
      if (h->add) m->mask.add = mirror_put_bytes(m, h->add, sizeof(float) * (size_t)c->aux_n);
      if (h->keep) m->mask.keep = mirror_put_bytes(m, h->keep, (size_t)c->aux_n);
      c->aux = &m->mask;
      break;
    }
    default:
      break;  // AUX_NONE, AUX_U8_HOST: stays on the host
  }
}
static void mirror_end(mirror *m, opcase *c) {
  if (!m->dev) return;
  for (int i = 0; i < c->nin; i++) {
    if (c->in[i]) m->be->mem_free(c->in[i]);
    c->in[i] = m->in[i];
  }
  for (int o = 0; o < c->nout; o++) {
    if (c->out[o]) m->be->mem_free(c->out[o]);
    c->out[o] = m->out[o];
  }
  switch (c->aux_kind) {
    case AUX_F32:
    case AUX_U8_DEVICE:
      m->be->mem_free(c->aux);
      break;
    case AUX_MASK:
      if (m->mask.add) m->be->mem_free((void *)m->mask.add);
      if (m->mask.keep) m->be->mem_free((void *)m->mask.keep);
      break;
    default:
      break;
  }
  c->aux = m->aux;
}

static void run_case(opcase *c) {
  const ops_backend *ref = ops_backend_get(OPS_CPU_REF);
  float *R[MAXIO], *ref_out[MAXIO], *ref_g[MAXIO] = {0};
  for (int o = 0; o < c->nout; o++) R[o] = rnd(c->nout_el[o], -1, 1);
  TB_CHECK(c->fwd(ref, c));
  for (int o = 0; o < c->nout; o++) {
    ref_out[o] = xmalloc(sizeof(float) * (size_t)(c->nout_el[o] ? c->nout_el[o] : 1));
    memcpy(ref_out[o], c->out[o], sizeof(float) * (size_t)c->nout_el[o]);
  }
  for (int i = 0; i < c->nin; i++) ref_g[i] = c->grad_in[i] ? zeros(c->nin_el[i]) : NULL;
  int has_bwd = c->bwd != NULL;
  c->f[3] = R[0][0];  // the incoming gradient of a scalar loss, as a host value
  if (has_bwd) TB_CHECK(c->bwd(ref, c, R, ref_g));

  // finite differences of the reference forward, on up to 20 elements of each input
  char what[160];
  if (has_bwd)
    for (int i = 0; i < c->nin; i++) {
      if (!c->grad_in[i]) continue;
      double gmax = 0.0;
      for (int64_t e = 0; e < c->nin_el[i]; e++) gmax = fmax(gmax, fabs(ref_g[i][e]));
      int64_t n = c->nin_el[i], picks = n < 20 ? n : 20;
      uint64_t st = g_seed++;
      for (int64_t p = 0; p < picks; p++) {
        int64_t e = n <= 20 ? p : (int64_t)(test_rand_u64(&st) % (uint64_t)n);
        float x0 = c->in[i][e];
        c->in[i][e] = x0 + c->h;
        c->fwd(ref, c);
        double lp = loss_of(c, R);
        c->in[i][e] = x0 - c->h;
        c->fwd(ref, c);
        double lm = loss_of(c, R);
        c->in[i][e] = x0;
        double fd = (lp - lm) / (2.0 * c->h);
        double tol = c->tol * fmax(1.0, gmax);
        snprintf(what, sizeof what, "%s: d/d in%d[%lld] reference backward vs finite difference",
                 c->name, i, (long long)e);
        CHECKF(fabs(fd - ref_g[i][e]) <= tol, "%s: analytic %.6g, fd %.6g (tol %.2g)", what,
               ref_g[i][e], fd, tol);
      }
    }

  // every other backend against the reference
  for (int b = OPS_CPU_REF + 1; b < OPS_NBACKENDS; b++) {
    const ops_backend *be = ops_backend_get((ops_backend_id)b);
    if (!be) {  // a backend not present at all is announced once, at the start
      g_skipped++;
      continue;
    }
    mirror mr;
    mirror_begin(&mr, be, c);
    if (!c->fwd(be, c)) {
      mirror_end(&mr, c);
      printf("  %-22s %-9s skipped (not supported)\n", c->name, be->name);
      g_skipped++;
      continue;
    }
    for (int o = 0; o < c->nout; o++) {
      float *got = mirror_fetch(&mr, c->out[o], c->nout_el[o]);
      snprintf(what, sizeof what, "%s %s forward out%d", c->name, be->name, o);
      check_close_f32(what, got, ref_out[o], c->nout_el[o], 2e-5, 2e-4);
      mirror_release(&mr, got);
    }
    if (has_bwd) {
      // gradients start at 0.5 to check that the backward accumulates; subtracted after
      float *g[MAXIO] = {0}, *dR[MAXIO] = {0};
      for (int i = 0; i < c->nin; i++) {
        if (!c->grad_in[i]) continue;
        float *h = zeros(c->nin_el[i]);
        for (int64_t e = 0; e < c->nin_el[i]; e++) h[e] = 0.5f;
        g[i] = mirror_put(&mr, h, c->nin_el[i]);
        if (g[i] != h) free(h);
      }
      for (int o = 0; o < c->nout; o++) dR[o] = mirror_put(&mr, R[o], c->nout_el[o]);
      c->f[3] = R[0][0];  // the incoming gradient of a scalar loss, as a host value
      if (!c->bwd(be, c, dR, g)) {
        printf("  %-22s %-9s backward skipped (not supported)\n", c->name, be->name);
        g_skipped++;
      } else {
        for (int i = 0; i < c->nin; i++) {
          if (!g[i]) continue;
          float *got = mirror_fetch(&mr, g[i], c->nin_el[i]);
          for (int64_t e = 0; e < c->nin_el[i]; e++) got[e] -= 0.5f;
          snprintf(what, sizeof what, "%s %s backward d in%d (accumulating)", c->name, be->name, i);
          check_close_f32(what, got, ref_g[i], c->nin_el[i], 5e-5, 5e-4);
          mirror_release(&mr, got);
        }
      }
      for (int i = 0; i < c->nin; i++) mirror_free(&mr, g[i]);
      for (int o = 0; o < c->nout; o++)
        if (dR[o] != R[o]) mirror_free(&mr, dR[o]);
    }
    mirror_end(&mr, c);
    printf("  %-22s %-9s ok\n", c->name, be->name);
  }
  for (int o = 0; o < c->nout; o++) {
    free(R[o]);
    free(ref_out[o]);
    free(c->out[o]);
  }
  for (int i = 0; i < c->nin; i++) {
    free(ref_g[i]);
    free(c->in[i]);
  }
  free(c->aux);
}

#define NEED(be, field) \
  if (!(be)->field) return 0

/* ---- the cases --------------------------------------------------------------------------------
 */

static int linear_fwd(const ops_backend *be, opcase *c) {
  NEED(be, linear_fwd);
  be->linear_fwd(c->out[0], c->in[0], c->in[1], c->in[2], c->d[0], c->d[1], c->d[2]);
  return 1;
}
static int linear_bwd(const ops_backend *be, opcase *c, float **dout, float **din) {
  NEED(be, linear_bwd);
  be->linear_bwd(din[0], din[1], din[2], dout[0], c->in[0], c->in[1], c->d[0], c->d[1], c->d[2]);
  return 1;
}
static void case_linear(int N, int Cin, int Cout) {
  opcase c = {.name = "linear",
              .nin = 3,
              .nout = 1,
              .fwd = linear_fwd,
              .bwd = linear_bwd,
              .h = 1e-2f,
              .tol = 2e-3};
  c.d[0] = N, c.d[1] = Cin, c.d[2] = Cout;
  c.in[0] = rnd(c.nin_el[0] = (int64_t)N * Cin, -1, 1);
  c.in[1] = rnd(c.nin_el[1] = (int64_t)Cout * Cin, -1, 1);
  c.in[2] = rnd(c.nin_el[2] = Cout, -1, 1);
  c.grad_in[0] = c.grad_in[1] = c.grad_in[2] = 1;
  c.out[0] = zeros(c.nout_el[0] = (int64_t)N * Cout);
  run_case(&c);
}

static int matmul_fwd(const ops_backend *be, opcase *c) {
  NEED(be, matmul);
  int tA = c->d[0], tB = c->d[1], M = c->d[2], N = c->d[3], K = c->d[4];
  // beta = 0.5 on a fixed C0: the result must not depend on what was there before beyond beta
  for (int64_t i = 0; i < (int64_t)M * N; i++) c->out[0][i] = c->in[2][i];
  be->matmul(tA, tB, M, N, K, 0.75f, c->in[0], c->in[1], 0.5f, c->out[0]);
  return 1;
}
static void case_matmul(int tA, int tB, int M, int N, int K) {
  opcase c = {.name = "matmul", .nin = 3, .nout = 1, .fwd = matmul_fwd, .h = 1e-2f, .tol = 2e-3};
  c.d[0] = tA, c.d[1] = tB, c.d[2] = M, c.d[3] = N, c.d[4] = K;
  c.in[0] = rnd(c.nin_el[0] = (int64_t)M * K, -1, 1);
  c.in[1] = rnd(c.nin_el[1] = (int64_t)K * N, -1, 1);
  c.in[2] = rnd(c.nin_el[2] = (int64_t)M * N, -1, 1);
  c.out[0] = zeros(c.nout_el[0] = (int64_t)M * N);
  run_case(&c);
}

static int conv2d_fwd(const ops_backend *be, opcase *c) {
  NEED(be, conv2d_fwd);
  int *d = c->d;
  be->conv2d_fwd(c->out[0], c->in[0], c->in[1], c->in[2], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
                 d[7]);
  return 1;
}
static int conv2d_bwd(const ops_backend *be, opcase *c, float **dout, float **din) {
  NEED(be, conv2d_bwd);
  int *d = c->d;
  be->conv2d_bwd(din[0], din[1], din[2], dout[0], c->in[0], c->in[1], d[0], d[1], d[2], d[3], d[4],
                 d[5], d[6], d[7]);
  return 1;
}
static void case_conv2d(int N, int Cin, int H, int W, int Cout, int k, int stride, int pad,
                        int bias) {
  opcase c = {.name = "conv2d",
              .nin = 3,
              .nout = 1,
              .fwd = conv2d_fwd,
              .bwd = conv2d_bwd,
              .h = 1e-2f,
              .tol = 2e-3};
  int d[8] = {N, Cin, H, W, Cout, k, stride, pad};
  memcpy(c.d, d, sizeof d);
  int Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1;
  c.in[0] = rnd(c.nin_el[0] = (int64_t)N * Cin * H * W, -1, 1);
  c.in[1] = rnd(c.nin_el[1] = (int64_t)Cout * Cin * k * k, -1, 1);
  c.in[2] = bias ? rnd(c.nin_el[2] = Cout, -1, 1) : NULL;
  c.grad_in[0] = c.grad_in[1] = 1;
  c.grad_in[2] = bias;
  c.out[0] = zeros(c.nout_el[0] = (int64_t)N * Cout * Ho * Wo);
  run_case(&c);
}

static int tconv_fwd(const ops_backend *be, opcase *c) {
  NEED(be, tconv_fwd);
  int *d = c->d;
  be->tconv_fwd(c->out[0], c->in[0], c->in[1], c->in[2], d[0], d[1], d[2], d[3], d[4], d[5]);
  return 1;
}
static int tconv_bwd(const ops_backend *be, opcase *c, float **dout, float **din) {
  NEED(be, tconv_bwd);
  int *d = c->d;
  be->tconv_bwd(din[0], din[1], din[2], dout[0], c->in[0], c->in[1], d[0], d[1], d[2], d[3], d[4],
                d[5]);
  return 1;
}
static void case_tconv(int B, int T, int Cin, int S, int Cout, int kt) {
  opcase c = {.name = "tconv",
              .nin = 3,
              .nout = 1,
              .fwd = tconv_fwd,
              .bwd = tconv_bwd,
              .h = 1e-2f,
              .tol = 2e-3};
  int d[6] = {B, T, Cin, S, Cout, kt};
  memcpy(c.d, d, sizeof d);
  c.in[0] = rnd(c.nin_el[0] = (int64_t)B * T * Cin * S, -1, 1);
  c.in[1] = rnd(c.nin_el[1] = (int64_t)Cout * Cin * kt, -1, 1);
  c.in[2] = rnd(c.nin_el[2] = Cout, -1, 1);
  c.grad_in[0] = c.grad_in[1] = c.grad_in[2] = 1;
  c.out[0] = zeros(c.nout_el[0] = (int64_t)B * T * Cout * S);
  run_case(&c);
}

static int conv3d_fwd(const ops_backend *be, opcase *c) {
  NEED(be, conv3d_fwd);
  int *d = c->d;
  be->conv3d_fwd(c->out[0], c->in[0], c->in[1], c->in[2], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
                 d[7], d[8], d[9], d[10], d[11]);
  return 1;
}
static int conv3d_bwd(const ops_backend *be, opcase *c, float **dout, float **din) {
  NEED(be, conv3d_bwd);
  int *d = c->d;
  be->conv3d_bwd(din[0], din[1], din[2], dout[0], c->in[0], c->in[1], d[0], d[1], d[2], d[3], d[4],
                 d[5], d[6], d[7], d[8], d[9], d[10], d[11]);
  return 1;
}
static void case_conv3d(int B, int T, int Cin, int H, int W, int Cout, int kt, int k, int st, int s,
                        int pt, int p) {
  opcase c = {.name = "conv3d",
              .nin = 3,
              .nout = 1,
              .fwd = conv3d_fwd,
              .bwd = conv3d_bwd,
              .h = 1e-2f,
              .tol = 2e-3};
  int d[12] = {B, T, Cin, H, W, Cout, kt, k, st, s, pt, p};
  memcpy(c.d, d, sizeof d);
  int To = (T + 2 * pt - kt) / st + 1, Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
  c.in[0] = rnd(c.nin_el[0] = (int64_t)B * T * Cin * H * W, -1, 1);
  c.in[1] = rnd(c.nin_el[1] = (int64_t)Cout * Cin * kt * k * k, -1, 1);
  c.in[2] = rnd(c.nin_el[2] = Cout, -1, 1);
  c.grad_in[0] = c.grad_in[1] = c.grad_in[2] = 1;
  c.out[0] = zeros(c.nout_el[0] = (int64_t)B * To * Cout * Ho * Wo);
  run_case(&c);
}

// outputs: out, and mean/rstd as extra outputs (compared, R-weighted too: they are functions
// of the input, and the backward ignores them, so their R must be zero) — keep only out.
/* d[5]: 1 for the fused group norm + SiLU */
static int gn_fwd(const ops_backend *be, opcase *c) {
  int *d = c->d;
  float *ms = c->aux;
  if (d[5]) {
    NEED(be, groupnorm_silu_fwd);
    be->groupnorm_silu_fwd(c->out[0], ms, ms + d[0] * d[4], c->in[0], c->in[1], c->in[2], d[0],
                           d[1], d[2], d[3], d[4], 1e-5f);
    return 1;
  }
  NEED(be, groupnorm_fwd);
  be->groupnorm_fwd(c->out[0], ms, ms + d[0] * d[4], c->in[0], c->in[1], c->in[2], d[0], d[1], d[2],
                    d[3], d[4], 1e-5f);
  return 1;
}
static int gn_bwd(const ops_backend *be, opcase *c, float **dout, float **din) {
  int *d = c->d;
  float *ms = c->aux;
  if (!gn_fwd(be, c)) return 0;  // saved stats from the forward
  if (d[5]) {
    NEED(be, groupnorm_silu_bwd);
    be->groupnorm_silu_bwd(din[0], din[1], din[2], dout[0], c->in[0], ms, ms + d[0] * d[4],
                           c->in[1], c->in[2], d[0], d[1], d[2], d[3], d[4]);
    return 1;
  }
  NEED(be, groupnorm_bwd);
  be->groupnorm_bwd(din[0], din[1], din[2], dout[0], c->in[0], ms, ms + d[0] * d[4], c->in[1], d[0],
                    d[1], d[2], d[3], d[4]);
  return 1;
}
/* affine 0: no weight or bias (NULL); offset: the inputs' mean, to check that the statistics
 * do not cancel when the mean is large against the spread */
static void case_groupnorm_x(int N, int T, int C, int S, int G, int affine, float offset,
                             int silu) {
  opcase c = {.name = silu ? (affine ? "groupnorm+silu" : "groupnorm+silu (no affine)")
                           : (affine ? "groupnorm" : "groupnorm (no affine)"),
              .nin = affine ? 3 : 1,
              .nout = 1,
              .fwd = gn_fwd,
              .bwd = gn_bwd,
              .h = 1e-2f,
              .tol = 3e-3};
  int d[6] = {N, T, C, S, G, silu};
  memcpy(c.d, d, sizeof d);
  c.in[0] = rnd(c.nin_el[0] = (int64_t)N * T * C * S, offset - 2, offset + 3);
  if (affine) {
    c.in[1] = rnd(c.nin_el[1] = C, 0.5f, 1.5f);
    c.in[2] = rnd(c.nin_el[2] = C, -1, 1);
  }
  c.grad_in[0] = c.grad_in[1] = c.grad_in[2] = 1;
  c.out[0] = zeros(c.nout_el[0] = c.nin_el[0]);
  c.aux = zeros(c.aux_n = 2 * N * G);
  c.aux_kind = AUX_F32;
  run_case(&c);
}
static void case_groupnorm(int N, int T, int C, int S, int G) {
  case_groupnorm_x(N, T, C, S, G, 1, 0.0f, 0);
}

static int ln_fwd(const ops_backend *be, opcase *c) {
  NEED(be, layernorm_fwd);
  float *ms = c->aux;
  be->layernorm_fwd(c->out[0], ms, ms + c->d[0], c->in[0], c->in[1], c->in[2], c->d[0], c->d[1],
                    1e-5f);
  return 1;
}
static int ln_bwd(const ops_backend *be, opcase *c, float **dout, float **din) {
  NEED(be, layernorm_bwd);
  float *ms = c->aux;
  ln_fwd(be, c);
  be->layernorm_bwd(din[0], din[1], din[2], dout[0], c->in[0], ms, ms + c->d[0], c->in[1], c->d[0],
                    c->d[1]);
  return 1;
}
static void case_layernorm_x(int N, int C, int affine, float offset) {
  opcase c = {.name = affine ? "layernorm" : "layernorm (no affine)",
              .nin = affine ? 3 : 1,
              .nout = 1,
              .fwd = ln_fwd,
              .bwd = ln_bwd,
              .h = 1e-2f,
              .tol = 3e-3};
  c.d[0] = N, c.d[1] = C;
  c.in[0] = rnd(c.nin_el[0] = (int64_t)N * C, offset - 2, offset + 3);
  if (affine) {
    c.in[1] = rnd(c.nin_el[1] = C, 0.5f, 1.5f);
    c.in[2] = rnd(c.nin_el[2] = C, -1, 1);
  }
  c.grad_in[0] = c.grad_in[1] = c.grad_in[2] = 1;
  c.out[0] = zeros(c.nout_el[0] = c.nin_el[0]);
  c.aux = zeros(c.aux_n = 2 * N);
  c.aux_kind = AUX_F32;
  run_case(&c);
}
static void case_layernorm(int N, int C) { case_layernorm_x(N, C, 1, 0.0f); }

/* element-wise unary ops, by index */
static int act_fwd(const ops_backend *be, opcase *c) {
  int64_t n = c->nin_el[0];
  switch (c->d[0]) {
    case 0:
      NEED(be, silu_fwd);
      be->silu_fwd(c->out[0], c->in[0], n);
      break;
    case 1:
      NEED(be, gelu_tanh_fwd);
      be->gelu_tanh_fwd(c->out[0], c->in[0], n);
      break;
    case 2:
      NEED(be, gelu_erf_fwd);
      be->gelu_erf_fwd(c->out[0], c->in[0], n);
      break;
    case 3:
      NEED(be, softmax_fwd);
      be->softmax_fwd(c->out[0], c->in[0], c->d[1], c->d[2]);
      break;
    case 4:
      NEED(be, geglu_fwd);
      be->geglu_fwd(c->out[0], c->in[0], c->d[1], c->d[2]);
      break;
    case 5:
      NEED(be, quick_gelu_fwd);
      be->quick_gelu_fwd(c->out[0], c->in[0], n);
      break;
  }
  return 1;
}
static int act_bwd(const ops_backend *be, opcase *c, float **dout, float **din) {
  int64_t n = c->nin_el[0];
  switch (c->d[0]) {
    case 0:
      NEED(be, silu_bwd);
      be->silu_bwd(din[0], dout[0], c->in[0], n);
      break;
    case 1:
      NEED(be, gelu_tanh_bwd);
      be->gelu_tanh_bwd(din[0], dout[0], c->in[0], n);
      break;
    case 2:
      NEED(be, gelu_erf_bwd);
      be->gelu_erf_bwd(din[0], dout[0], c->in[0], n);
      break;
    case 3:
      NEED(be, softmax_bwd);
      act_fwd(be, c);
      be->softmax_bwd(din[0], dout[0], c->out[0], c->d[1], c->d[2]);
      break;
    case 4:
      NEED(be, geglu_bwd);
      be->geglu_bwd(din[0], dout[0], c->in[0], c->d[1], c->d[2]);
      break;
    case 5:
      NEED(be, quick_gelu_bwd);
      be->quick_gelu_bwd(din[0], dout[0], c->in[0], n);
      break;
  }
  return 1;
}
static void case_act(const char *name, int which, int N, int C) {
  opcase c = {
      .name = name, .nin = 1, .nout = 1, .fwd = act_fwd, .bwd = act_bwd, .h = 1e-3f, .tol = 2e-3};
  c.d[0] = which, c.d[1] = N, c.d[2] = C;
  c.in[0] = rnd(c.nin_el[0] = (int64_t)N * C, -4, 4);
  c.grad_in[0] = 1;
  c.out[0] = zeros(c.nout_el[0] = c.nin_el[0]);
  run_case(&c);
}
/* GEGLU: inp (M, 2F) = [a | g], out (M, F) */
static void case_geglu(int M, int F) {
  opcase c = {.name = "geglu", .nin = 1, .nout = 1, .fwd = act_fwd, .bwd = act_bwd, .h = 1e-3f,
              .tol = 2e-3};
  c.d[0] = 4, c.d[1] = M, c.d[2] = F;
  c.in[0] = rnd(c.nin_el[0] = (int64_t)M * 2 * F, -4, 4);
  c.grad_in[0] = 1;
  c.out[0] = zeros(c.nout_el[0] = (int64_t)M * F);
  run_case(&c);
}

/* attention: outputs out and probs, both with incoming gradients */
static int attn_fwd(const ops_backend *be, opcase *c) {
  NEED(be, attention_fwd);
  int *d = c->d;
  be->attention_fwd(c->out[0], c->out[1], c->in[0], c->in[1], c->in[2],
                    (const op_attn_mask *)c->aux, d[0], d[1], d[2], d[3], d[4],
                    1.0f / sqrtf((float)d[4]));
  return 1;
}
static int attn_bwd(const ops_backend *be, opcase *c, float **dout, float **din) {
  NEED(be, attention_bwd);
  int *d = c->d;
  attn_fwd(be, c);
  be->attention_bwd(din[0], din[1], din[2], dout[0], c->d[5] ? dout[1] : NULL, c->in[0], c->in[1],
                    c->in[2], c->out[1], d[0], d[1], d[2], d[3], d[4], 1.0f / sqrtf((float)d[4]));
  return 1;
}
/* mask_kind 0 none, 1 additive (per batch), 2 boolean causal (broadcast) with one fully-masked
 * row when Nq > Nk; probs_grad: pass dL/dprobs too. */
typedef struct {
  op_attn_mask m;
  float add[4096];
  uint8_t keep[4096];
} mask_store;
static void case_attention(const char *name, int B, int H, int Nq, int Nk, int D, int mask_kind,
                           int probs_grad) {
  opcase c = {.name = name,
              .nin = 3,
              .nout = probs_grad ? 2 : 1,
              .fwd = attn_fwd,
              .bwd = attn_bwd,
              .h = 1e-2f,
              .tol = 2e-3};
  int d[6] = {B, H, Nq, Nk, D, probs_grad};
  memcpy(c.d, d, sizeof d);
  c.in[0] = rnd(c.nin_el[0] = (int64_t)B * H * Nq * D, -1.5f, 1.5f);
  c.in[1] = rnd(c.nin_el[1] = (int64_t)B * H * Nk * D, -1.5f, 1.5f);
  c.in[2] = rnd(c.nin_el[2] = (int64_t)B * H * Nk * D, -1, 1);
  c.grad_in[0] = c.grad_in[1] = c.grad_in[2] = 1;
  c.out[0] = zeros(c.nout_el[0] = (int64_t)B * H * Nq * D);
  c.out[1] = zeros((int64_t)B * H * Nq * Nk);
  if (probs_grad)
    c.nout_el[1] = (int64_t)B * H * Nq * Nk;
  else
    c.nout = 1;
  if (mask_kind) {
    mask_store *ms = xcalloc(1, sizeof *ms);
    TB_CHECK((int64_t)B * Nq * Nk <= 4096);
    if (mask_kind == 1) {
      ms->m.add = ms->add, ms->m.mb = B;
      uint64_t st = 99;
      for (int i = 0; i < B * Nq * Nk; i++)
        ms->add[i] = test_rand_uniform(&st, 0, 1) < 0.25f ? -1e9f : test_rand_uniform(&st, -1, 1);
    } else if (mask_kind == 3) {
      /* keys masked per group g = b % mb, mb = B / 2: batch entries b and b + mb share one */
      ms->m.keep = ms->keep, ms->m.mb = B / 2;
      for (int g = 0; g < B / 2; g++)
        for (int i = 0; i < Nq; i++)
          for (int j = 0; j < Nk; j++) ms->keep[(g * Nq + i) * Nk + j] = j <= g % Nk;
    } else {
      ms->m.keep = ms->keep, ms->m.mb = 1;
      for (int i = 0; i < Nq; i++)
        for (int j = 0; j < Nk; j++) ms->keep[i * Nk + j] = j <= i - (Nq - Nk);
      // row 0 keeps nothing when Nq > Nk: checks the all-masked path
    }
    c.aux = ms;
    c.aux_kind = AUX_MASK;
    c.aux_n = (int64_t)ms->m.mb * Nq * Nk;
  }
  float *probs = c.out[1];
  run_case(&c);
  if (!probs_grad) free(probs);
}

/* layout ops through the public API (they dispatch through the current backend's permute) */
static ops_backend_id id_of(const ops_backend *be) {
  for (int b = 0; b < OPS_NBACKENDS; b++)
    if (ops_backend_get((ops_backend_id)b) == be) return (ops_backend_id)b;
  return OPS_CPU_REF;
}
static int layout_fwd(const ops_backend *be, opcase *c) {
  int *d = c->d;
  ops_backend_set(id_of(be));
  switch (d[0]) {
    case 0:
      NEED(be, permute_fwd);
      op_video_to_spatial_tokens(c->out[0], c->in[0], d[1], d[2], d[3], d[4]);
      break;
    case 1:
      NEED(be, permute_fwd);
      op_spatial_tokens_to_video(c->out[0], c->in[0], d[1], d[2], d[3], d[4]);
      break;
    case 2:
      NEED(be, permute_fwd);
      op_video_to_temporal_tokens(c->out[0], c->in[0], d[1], d[2], d[3], d[4]);
      break;
    case 3:
      NEED(be, permute_fwd);
      op_temporal_tokens_to_video(c->out[0], c->in[0], d[1], d[2], d[3], d[4]);
      break;
    case 4:
      NEED(be, permute_fwd);
      op_heads_split(c->out[0], c->in[0], d[1], d[2], d[3], d[4]);
      break;
    case 5:
      NEED(be, permute_fwd);
      op_heads_merge(c->out[0], c->in[0], d[1], d[2], d[3], d[4]);
      break;
    case 6:
      NEED(be, repeat_fwd);
      op_context_repeat(c->out[0], c->in[0], d[1], d[2], d[3], d[4]);
      break;
    case 7:
      NEED(be, upsample2x_fwd);
      be->upsample2x_fwd(c->out[0], c->in[0], d[1], d[2], d[3], d[4]);
      break;
    case 8:
      NEED(be, avgpool2x_fwd);
      be->avgpool2x_fwd(c->out[0], c->in[0], d[1], d[2], d[3], d[4]);
      break;
    case 9:
      NEED(be, bias_add_fwd);
      be->bias_add_fwd(c->out[0], c->in[0], c->in[1], d[1], d[2], d[3], d[4]);
      break;
    case 10:
      NEED(be, concat_fwd);
      be->concat_fwd(c->out[0], c->in[0], c->in[1], d[1], d[2], d[3], d[4]);
      break;
    case 11:
      NEED(be, mul_fwd);
      be->mul_fwd(c->out[0], c->in[0], c->in[1], c->nin_el[0]);
      break;
    case 12:
      NEED(be, add_fwd);
      be->add_fwd(c->out[0], c->in[0], c->in[1], c->nin_el[0]);
      break;
    case 13:
      NEED(be, l2norm_fwd);
      be->l2norm_fwd(c->out[0], c->aux, c->in[0], d[1], d[2], 1e-6f);
      break;
    case 14:
      NEED(be, dropout_fwd);
      be->dropout_fwd(c->out[0], c->aux, c->in[0], c->nin_el[0], 0.3f, 77);
      break;
    case 15:
      NEED(be, cond_drop_fwd);
      be->cond_drop_fwd(c->out[0], c->in[0], c->in[1], c->aux, d[1], d[2]);
      break;
  }
  ops_backend_set(OPS_CPU_FAST);
  return 1;
}
static int layout_bwd(const ops_backend *be, opcase *c, float **dout, float **din) {
  int *d = c->d;
  ops_backend_set(id_of(be));
  switch (d[0]) {
    case 0:
      NEED(be, permute_bwd);
      op_video_to_spatial_tokens_bwd(din[0], dout[0], d[1], d[2], d[3], d[4]);
      break;
    case 1:
      NEED(be, permute_bwd);
      op_spatial_tokens_to_video_bwd(din[0], dout[0], d[1], d[2], d[3], d[4]);
      break;
    case 2:
      NEED(be, permute_bwd);
      op_video_to_temporal_tokens_bwd(din[0], dout[0], d[1], d[2], d[3], d[4]);
      break;
    case 3:
      NEED(be, permute_bwd);
      op_temporal_tokens_to_video_bwd(din[0], dout[0], d[1], d[2], d[3], d[4]);
      break;
    case 4:
      NEED(be, permute_bwd);
      op_heads_split_bwd(din[0], dout[0], d[1], d[2], d[3], d[4]);
      break;
    case 5:
      NEED(be, permute_bwd);
      op_heads_merge_bwd(din[0], dout[0], d[1], d[2], d[3], d[4]);
      break;
    case 6:
      NEED(be, repeat_bwd);
      op_context_repeat_bwd(din[0], dout[0], d[1], d[2], d[3], d[4]);
      break;
    case 7:
      NEED(be, upsample2x_bwd);
      be->upsample2x_bwd(din[0], dout[0], d[1], d[2], d[3], d[4]);
      break;
    case 8:
      NEED(be, avgpool2x_bwd);
      be->avgpool2x_bwd(din[0], dout[0], d[1], d[2], d[3], d[4]);
      break;
    case 9:
      NEED(be, bias_add_bwd);
      be->bias_add_bwd(din[0], din[1], dout[0], d[1], d[2], d[3], d[4]);
      break;
    case 10:
      NEED(be, concat_bwd);
      be->concat_bwd(din[0], din[1], dout[0], d[1], d[2], d[3], d[4]);
      break;
    case 11:
      NEED(be, mul_bwd);
      be->mul_bwd(din[0], din[1], dout[0], c->in[0], c->in[1], c->nin_el[0]);
      break;
    case 12:  // residual add: the backward is two axpys
      NEED(be, axpy);
      be->axpy(din[0], 1.0f, dout[0], c->nin_el[0]);
      be->axpy(din[1], 1.0f, dout[0], c->nin_el[0]);
      break;
    case 13:
      NEED(be, l2norm_bwd);
      layout_fwd(be, c);
      be->l2norm_bwd(din[0], dout[0], c->out[0], c->aux, d[1], d[2]);
      break;
    case 14:
      NEED(be, dropout_bwd);
      be->dropout_bwd(din[0], dout[0], c->aux, c->nin_el[0], 0.3f);
      break;
    case 15:
      NEED(be, cond_drop_bwd);
      be->cond_drop_bwd(din[0], din[1], dout[0], c->aux, d[1], d[2]);
      break;
  }
  ops_backend_set(OPS_CPU_FAST);
  return 1;
}
static void case_layout(const char *name, int which, int a, int b, int cc, int dd, int64_t nin0,
                        int64_t nin1, int64_t nout) {
  opcase c = {.name = name,
              .nin = nin1 ? 2 : 1,
              .nout = 1,
              .fwd = layout_fwd,
              .bwd = layout_bwd,
              .h = 1e-2f,
              .tol = 2e-3};
  c.d[0] = which, c.d[1] = a, c.d[2] = b, c.d[3] = cc, c.d[4] = dd;
  c.in[0] = rnd(c.nin_el[0] = nin0, -1, 1);
  c.grad_in[0] = 1;
  if (nin1) {
    c.in[1] = rnd(c.nin_el[1] = nin1, -1, 1);
    c.grad_in[1] = 1;
  }
  c.out[0] = zeros(c.nout_el[0] = nout);
  if (which == 13) c.aux = zeros(c.aux_n = a), c.aux_kind = AUX_F32;
  if (which == 14) c.aux = xcalloc((size_t)(c.aux_n = nin0), 1), c.aux_kind = AUX_U8_DEVICE;
  if (which == 15) {
    uint8_t *keep = xcalloc((size_t)a, 1);
    for (int i = 0; i < a; i++) keep[i] = i % 2 == 0;
    c.aux = keep;
    c.aux_kind = AUX_U8_HOST;
  }
  run_case(&c);
}

/* losses: one scalar output */
static int loss_fwd(const ops_backend *be, opcase *c) {
  int64_t n = c->nin_el[0];
  switch (c->d[0]) {
    case 0:
      NEED(be, mse_fwd);
      be->mse_fwd(c->out[0], c->in[0], c->in[1], n);
      break;
    case 1:
      NEED(be, huber_fwd);
      be->huber_fwd(c->out[0], c->in[0], c->in[1], n, c->f[0]);
      break;
    case 2: {
      NEED(be, infonce_fwd);
      float *p = c->aux;
      int N = c->d[1];
      be->infonce_fwd(c->out[0], p, p + N * N, c->in[0], c->in[1], N, c->d[2], c->f[0]);
      break;
    }
  }
  return 1;
}
static int loss_bwd(const ops_backend *be, opcase *c, float **dout, float **din) {
  int64_t n = c->nin_el[0];
  switch (c->d[0]) {
    case 0:
      NEED(be, mse_bwd);
      be->mse_bwd(din[0], din[1], c->f[3], c->in[0], c->in[1], n);
      break;
    case 1:
      NEED(be, huber_bwd);
      be->huber_bwd(din[0], din[1], c->f[3], c->in[0], c->in[1], n, c->f[0]);
      break;
    case 2: {
      NEED(be, infonce_bwd);
      loss_fwd(be, c);
      float *p = c->aux;
      int N = c->d[1];
      be->infonce_bwd(din[0], din[1], c->f[3], c->in[0], c->in[1], p, p + N * N, N, c->d[2],
                      c->f[0]);
      break;
    }
  }
  return 1;
}
static void case_loss(const char *name, int which, int N, int D, float param, float h) {
  opcase c = {
      .name = name, .nin = 2, .nout = 1, .fwd = loss_fwd, .bwd = loss_bwd, .h = h, .tol = 3e-3};
  c.d[0] = which, c.d[1] = N, c.d[2] = D;
  c.f[0] = param;
  c.in[0] = rnd(c.nin_el[0] = (int64_t)N * D, -1, 1);
  c.in[1] = rnd(c.nin_el[1] = (int64_t)N * D, -1, 1);
  c.grad_in[0] = c.grad_in[1] = 1;
  c.out[0] = zeros(c.nout_el[0] = 1);
  if (which == 2) c.aux = zeros(c.aux_n = 2 * N * N), c.aux_kind = AUX_F32;
  run_case(&c);
}

/* token embedding lookup, weighted pooling, cross-entropy: aux holds the int32 ids/targets */
static int tok_fwd(const ops_backend *be, opcase *c) {
  int *d = c->d;
  switch (d[0]) {
    case 0:
      NEED(be, embedding_fwd);
      be->embedding_fwd(c->out[0], c->in[0], c->aux, d[1], d[2], d[3]);
      break;
    case 1:
      NEED(be, token_pool_fwd);
      be->token_pool_fwd(c->out[0], c->in[0], c->in[1], d[1], d[2], d[3]);
      break;
    case 2:
      NEED(be, xent_fwd);
      be->xent_fwd(c->out[0], (float *)((int32_t *)c->aux + d[1]), c->in[0], c->aux, d[1], d[2],
                   c->f[0]);
      break;
  }
  return 1;
}
static int tok_bwd(const ops_backend *be, opcase *c, float **dout, float **din) {
  int *d = c->d;
  switch (d[0]) {
    case 0:
      NEED(be, embedding_bwd);
      be->embedding_bwd(din[0], dout[0], c->aux, d[1], d[2], d[3]);
      break;
    case 1:
      NEED(be, token_pool_bwd);
      be->token_pool_bwd(din[0], dout[0], c->in[1], d[1], d[2], d[3]);
      break;
    case 2:
      NEED(be, xent_bwd);
      tok_fwd(be, c);
      be->xent_bwd(din[0], c->f[3], (float *)((int32_t *)c->aux + d[1]), c->aux, d[1], d[2],
                   c->f[0]);
      break;
  }
  return 1;
}
/* embedding: N lookups into a (V, D) table, some ids repeated, one out of range */
static void case_embedding(int N, int V, int D) {
  opcase c = {.name = "embedding", .nin = 1, .nout = 1, .fwd = tok_fwd, .bwd = tok_bwd,
              .h = 1e-2f, .tol = 1e-3};
  c.d[0] = 0, c.d[1] = N, c.d[2] = V, c.d[3] = D;
  c.in[0] = rnd(c.nin_el[0] = (int64_t)V * D, -1, 1);
  c.grad_in[0] = 1;
  c.out[0] = zeros(c.nout_el[0] = (int64_t)N * D);
  int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)N);
  for (int n = 0; n < N; n++) ids[n] = (int32_t)((n * 7 + 3) % V);
  ids[N - 1] = V; /* out of range: a zero row, no gradient */
  if (N > 2) ids[1] = ids[0];
  c.aux = ids, c.aux_kind = AUX_U8_DEVICE, c.aux_n = (int64_t)N * 4;
  run_case(&c);
}
static void case_token_pool(int B, int N, int C) {
  opcase c = {.name = "token pool", .nin = 2, .nout = 1, .fwd = tok_fwd, .bwd = tok_bwd,
              .h = 1e-2f, .tol = 1e-3};
  c.d[0] = 1, c.d[1] = B, c.d[2] = N, c.d[3] = C;
  c.in[0] = rnd(c.nin_el[0] = (int64_t)B * N * C, -1, 1);
  c.in[1] = rnd(c.nin_el[1] = (int64_t)B * N, 0, 1);
  for (int i = 0; i < B * N; i += 3) c.in[1][i] = 0.0f; /* padding */
  c.grad_in[0] = 1;
  c.out[0] = zeros(c.nout_el[0] = (int64_t)B * C);
  run_case(&c);
}
/* xent: aux holds the targets (N int32) and then the saved probabilities (N, C), which the
 * backward reads; the loss is the one output compared and differentiated */
static void case_xent(int N, int C, float scale) {
  opcase c = {.name = "xent", .nin = 1, .nout = 1, .fwd = tok_fwd, .bwd = tok_bwd, .h = 1e-3f,
              .tol = 3e-3};
  c.d[0] = 2, c.d[1] = N, c.d[2] = C;
  c.f[0] = scale;
  c.in[0] = rnd(c.nin_el[0] = (int64_t)N * C, -1, 1);
  c.grad_in[0] = 1;
  c.out[0] = zeros(c.nout_el[0] = 1);
  int32_t *t = xcalloc((size_t)N * (1 + C), sizeof(int32_t));
  for (int n = 0; n < N; n++) t[n] = (int32_t)((n * 5 + 1) % C);
  t[N - 1] = -1; /* no target: the row adds nothing */
  c.aux = t, c.aux_kind = AUX_U8_DEVICE, c.aux_n = (int64_t)N * (1 + C) * 4;
  run_case(&c);
}

/* ---- kernels without a backward: embeddings, optimiser, reductions -----------------------------
 */

static void check_embeddings(void) {
  const ops_backend *ref = ops_backend_get(OPS_CPU_REF);
  float t[3] = {0.0f, 1.0f, 999.0f}, out[3 * 7];
  ref->timestep_embedding(out, t, 3, 7, 10000.0f);
  // dim 7: half 3, freqs 1, 10000^-1/3, 10000^-2/3; [cos x3, sin x3, 0]
  double f1 = exp(-log(10000.0) / 3.0);
  CHECK(fabs(out[7 + 1] - cos(f1)) < 1e-6 && fabs(out[7 + 4] - sin(f1)) < 1e-6);
  CHECK(out[0] == 1.0f && out[3] == 0.0f && out[6] == 0.0f);
  CHECK(fabs(out[14 + 0] - cos(999.0)) < 1e-5);
  float w[2] = {0.5f, 7.5f}, g[2 * 8];
  ref->guidance_embedding(g, w, 2, 8);
  // half 4, step ln(1e4)/3: freq_1 = 10^-4/3; [sin x4, cos x4] of 1000 w freq
  double a = 500.0 * exp(-log(10000.0) / 3.0);
  CHECK(fabs(g[1] - sin(a)) < 1e-5 && fabs(g[5] - cos(a)) < 1e-5);
  CHECK(fabs(g[8 + 0] - sin(7500.0)) < 1e-3);
}

static void check_optim(void) {
  for (int b = 0; b < OPS_NBACKENDS; b++) {
    const ops_backend *be = ops_backend_get((ops_backend_id)b);
    if (!be) continue;    // not present: announced at the start
    if (be->mem_alloc) {  // a device backend: covered by the op cases, not by these host checks
      printf("  %-22s %-9s skipped (host-memory check)\n", "optim", be->name);
      g_skipped++;
      continue;
    }
    if (!be->adamw_step || !be->sumsq || !be->ema_update) {
      printf("  %-22s %-9s skipped (not supported)\n", "optim", ops_backend_name(b));
      g_skipped++;
      continue;
    }
    int n = 200003;  // crosses the 65536 chunks of the reduction
    float *p = rnd(n, -1, 1), *g = rnd(n, -1, 1), *m = zeros(n), *v = zeros(n), *e = zeros(n);
    double *pd = xmalloc(sizeof(double) * n), *md = xcalloc(n, sizeof(double)),
           *vd = xcalloc(n, sizeof(double));
    for (int i = 0; i < n; i++) pd[i] = p[i];
    float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f;
    for (int step = 1; step <= 3; step++) {
      be->adamw_step(p, g, m, v, n, lr, b1, b2, eps, wd, step);
      for (int i = 0; i < n; i++) {  // the textbook update in double
        pd[i] *= 1.0 - (double)lr * wd;
        md[i] = b1 * md[i] + (1.0 - b1) * g[i];
        vd[i] = b2 * vd[i] + (1.0 - b2) * (double)g[i] * g[i];
        double mh = md[i] / (1.0 - pow(b1, step)), vh = vd[i] / (1.0 - pow(b2, step));
        pd[i] -= lr * mh / (sqrt(vh) + eps);
      }
    }
    int bad = 0;
    for (int i = 0; i < n && !bad; i++) bad = fabs(p[i] - pd[i]) > 1e-5;
    CHECKF(!bad, "%s adamw differs from the double-precision update", be->name);
    float s1 = 0, s2 = 0;
    double sd = 0.0;
    for (int i = 0; i < n; i++) sd += (double)g[i] * g[i];
    be->sumsq(&s1, g, n);
    be->sumsq(&s2, g, n);
    CHECKF(fabs(s1 - sd) <= 1e-6 * sd && s1 == s2, "%s sumsq %.9g vs %.9g", be->name, s1, sd);
    be->ema_update(e, p, 0.75f, n);
    CHECKF(fabs(e[7] - 0.25f * p[7]) < 1e-7, "%s ema", be->name);
    free(p), free(g), free(m), free(v), free(e), free(pd), free(md), free(vd);
    printf("  %-22s %-9s ok\n", "optim", be->name);
  }
  uint8_t keep[1000];
  op_cond_drop_mask(keep, 1000, 0.1f, 5);
  int dropped = 0;
  for (int i = 0; i < 1000; i++) dropped += !keep[i];
  CHECKF(dropped > 60 && dropped < 140, "cond drop: %d of 1000 dropped at p = 0.1", dropped);
}

/* Masked keys get probability exactly 0 on every backend (motion guidance reads the maps). */
static void check_mask_exact(void) {
  int B = 2, H = 2, Nq = 6, Nk = 40, D = 8;  // Nk above the fast backend's short-sequence path too
  for (int pass = 0; pass < 2; pass++, Nk = 5) {
    float *q = rnd((int64_t)B * H * Nq * D, -1, 1), *k = rnd((int64_t)B * H * Nk * D, -1, 1);
    float *v = rnd((int64_t)B * H * Nk * D, -1, 1), *o = zeros((int64_t)B * H * Nq * D);
    float *p = zeros((int64_t)B * H * Nq * Nk);
    uint8_t *keep = xcalloc((size_t)Nq * Nk, 1);
    for (int i = 0; i < Nq * Nk; i++) keep[i] = (i * 7) % 3 != 0;
    op_attn_mask m = {.keep = keep, .mb = 1};
    for (int b = 0; b < OPS_NBACKENDS; b++) {
      const ops_backend *be = ops_backend_get((ops_backend_id)b);
      if (!be || !be->attention_fwd || be->mem_alloc) continue;
      be->attention_fwd(o, p, q, k, v, &m, B, H, Nq, Nk, D, 0.35f);
      int bad = 0;
      for (int64_t e = 0; e < (int64_t)B * H * Nq * Nk; e++)
        bad += !keep[e % (Nq * Nk)] && p[e] != 0.0f;
      CHECKF(!bad, "%s: %d masked probabilities are not exactly 0 (Nk %d)", be->name, bad, Nk);
    }
    free(q), free(k), free(v), free(o), free(p), free(keep);
  }
}

/* Dropout draws must not depend on threads: fast with 1 and 2 threads gives the same mask. */
static void check_determinism(void) {
  const ops_backend *fast = ops_backend_get(OPS_CPU_FAST);
  int N = 7, C = 48, H = 9, W = 11;
  float *x = rnd((int64_t)N * C * H * W, -1, 1), *w = rnd((int64_t)C * C * 9, -1, 1);
  float *g = rnd((int64_t)N * C * H * W, -1, 1);
  float *dw1 = zeros((int64_t)C * C * 9), *dw2 = zeros((int64_t)C * C * 9);
  ops_set_num_threads(2);
  fast->conv2d_bwd(NULL, dw1, NULL, g, x, w, N, C, H, W, C, 3, 1, 1);
  memset(dw2, 0, sizeof(float) * C * C * 9);
  fast->conv2d_bwd(NULL, dw2, NULL, g, x, w, N, C, H, W, C, 3, 1, 1);
  CHECKF(memcmp(dw1, dw2, sizeof(float) * C * C * 9) == 0, "conv2d dweight differs run to run");
  ops_set_num_threads(1);
  free(x), free(w), free(g), free(dw1), free(dw2);
}

/* TURBO_TEST_FAKE_DEVICE=1 puts a copy of the fast backend with its own "device" memory into the
 * empty CUDA slot, so the mirroring above is exercised (under ASan) without a GPU. */
static void *fake_alloc(size_t n) { return xcalloc(1, n); }
static void fake_free(void *p) { free(p); }
static void fake_copy(void *dst, const void *src, size_t n) { memcpy(dst, src, n); }
static ops_backend g_fake;

#ifdef TURBO_HAVE_CUDA
#include "kernels/cuda/cuda_api.h"
static void *cu_alloc_zero(size_t n) {
  void *p = cuda_malloc(n);
  cuda_memset(p, 0, n);
  return p;
}
static void cu_to_device(void *dst, const void *src, size_t n) {
  cuda_memcpy(dst, src, n, CUDA_COPY_H2D);
}
static void cu_to_host(void *dst, const void *src, size_t n) {
  cuda_memcpy(dst, src, n, CUDA_COPY_D2H);
}
static ops_backend g_cuda;
/* Opens GPU 0 and registers its table (f32 mode, no TF32: it is compared with the reference),
 * giving the table memory entries when it has none. 0 when there is no usable GPU. */
static int open_cuda(void) {
  char desc[256] = "";
  if (cuda_device_count() <= 0) {
    printf("cuda: no usable GPU (%s): skipped\n", err_get());
    return 0;
  }
  if (cuda_open(0, desc, sizeof desc) != TB_OK || cuda_backend_init() != TB_OK) {
    printf("cuda: cannot open GPU 0 (%s): skipped\n", err_get());
    return 0;
  }
  printf("cuda: %s\n", desc);
  cuda_set_compute(0);
  g_cuda = *ops_backend_get(OPS_CUDA);
  if (!g_cuda.mem_alloc) {
    g_cuda.mem_alloc = cu_alloc_zero;
    g_cuda.mem_free = cuda_free;
    g_cuda.mem_to_device = cu_to_device;
    g_cuda.mem_to_host = cu_to_host;
  }
  ops_backend_register(OPS_CUDA, &g_cuda);
  return 1;
}
#endif

/* Generic permutes, fast against reference, exactly (a permute moves values; its backward adds
 * each once): every permutation of 1..5 dims over shapes with unit dims, tiny and odd sizes,
 * and sizes past a 16-wide tile. */
static int next_perm(int *p, int n) {
  int i = n - 2;
  while (i >= 0 && p[i] > p[i + 1]) i--;
  if (i < 0) return 0;
  int j = n - 1;
  while (p[j] < p[i]) j--;
  int t = p[i];
  p[i] = p[j], p[j] = t;
  for (int a = i + 1, b = n - 1; a < b; a++, b--) t = p[a], p[a] = p[b], p[b] = t;
  return 1;
}
static void case_permutes(void) {
  const ops_backend *ref = ops_backend_get(OPS_CPU_REF), *fast = ops_backend_get(OPS_CPU_FAST);
  static const int shapes[][5] = {{3, 1, 4, 2, 5}, {1, 17, 1, 33, 2}, {2, 3, 1, 1, 7},
                                  {19, 18, 1, 1, 1}, {2, 1, 40, 3, 1}, {1, 1, 1, 1, 1}};
  int ncases = 0, bad = 0;
  for (int ndim = 1; ndim <= 5; ndim++)
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
      const int *shape = shapes[si];
      int64_t n = 1;
      for (int d = 0; d < ndim; d++) n *= shape[d];
      float *x = rnd(n, -1, 1), *g = rnd(n, -1, 1), *o1 = zeros(n), *o2 = zeros(n);
      float *d1 = rnd(n, -1, 1), *d2 = xmalloc(sizeof(float) * (size_t)n);
      memcpy(d2, d1, sizeof(float) * (size_t)n);
      int perm[5] = {0, 1, 2, 3, 4};
      do {
        ref->permute_fwd(o1, x, ndim, shape, perm);
        fast->permute_fwd(o2, x, ndim, shape, perm);
        ref->permute_bwd(d1, g, ndim, shape, perm);
        fast->permute_bwd(d2, g, ndim, shape, perm);
        ncases++;
        if (memcmp(o1, o2, sizeof(float) * (size_t)n) || memcmp(d1, d2, sizeof(float) * (size_t)n)) {
          if (bad++ < 5)
            CHECKF(0, "permute ndim %d shape %d,%d,%d,%d,%d perm %d%d%d%d%d: fast != reference",
                   ndim, shape[0], shape[1], shape[2], shape[3], shape[4], perm[0], perm[1],
                   perm[2], perm[3], perm[4]);
        }
      } while (next_perm(perm, ndim));
      free(x), free(g), free(o1), free(o2), free(d1), free(d2);
    }
  CHECKF(bad == 0, "%d of %d permutes differ", bad, ncases);
  printf("  %-22s %-9s ok (%d shape/permutation pairs, exact)\n", "permute", "cpu-fast", ncases);
}

/* The thread count set on one thread reaches ops called on another (a service's worker): the
 * OpenMP count of a fresh thread follows ops_set_num_threads after its first op call. */
static void *threads_probe(void *arg) {
  int *got = arg;
  float a = 1, b = 2, out;
  op_add_fwd(&out, &a, &b, 1);
#ifdef _OPENMP
  *got = omp_get_max_threads();
#else
  *got = 1;
#endif
  return NULL;
}
static void check_threads_reach_workers(void) {
#ifdef _OPENMP
  int procs = omp_get_num_procs();
  for (int want = 1; want <= 2; want++) {
    ops_set_num_threads(want);
    int got = -1;
    pthread_t th;
    TB_CHECK(pthread_create(&th, NULL, threads_probe, &got) == 0);
    pthread_join(th, NULL);
    CHECKF(got == want, "an op on another thread runs with %d OpenMP threads after "
           "ops_set_num_threads(%d) (%d cores)", got, want, procs);
  }
  ops_set_num_threads(1);
#endif
}

int main(void) {
  test_begin("test_ops");
#ifdef TURBO_HAVE_CUDA
  int cuda_opened = getenv("TURBO_TEST_FAKE_DEVICE") ? 0 : open_cuda();
#endif
  if (getenv("TURBO_TEST_FAKE_DEVICE") && !ops_backend_get(OPS_CUDA)) {
    g_fake = *ops_backend_get(OPS_CPU_FAST);
    g_fake.name = "fake-dev";
    g_fake.mem_alloc = fake_alloc;
    g_fake.mem_free = fake_free;
    g_fake.mem_to_device = fake_copy;
    g_fake.mem_to_host = fake_copy;
    ops_backend_register(OPS_CUDA, &g_fake);
  }
  double t0 = time_now();
  printf("backends: ref=%s fast=%s cuda=%s\n", ops_backend_get(OPS_CPU_REF)->name,
         ops_backend_get(OPS_CPU_FAST)->name,
         ops_backend_get(OPS_CUDA) ? ops_backend_get(OPS_CUDA)->name : "(not present)");
  for (int threads = 1; threads <= 2; threads++) {
    ops_set_num_threads(threads);
    printf("-- %d thread(s)\n", threads);
    case_matmul(0, 0, 5, 7, 3);
    case_matmul(1, 0, 6, 4, 9);
    case_matmul(0, 1, 3, 8, 5);
    case_matmul(1, 1, 7, 5, 6);
    case_linear(3, 5, 7);
    case_linear(17, 33, 9);
    case_conv2d(3, 5, 7, 6, 4, 3, 1, 1, 1);
    case_conv2d(2, 3, 9, 7, 5, 3, 2, 1, 1);
    case_conv2d(3, 6, 5, 5, 7, 1, 1, 0, 1);
    case_conv2d(1, 4, 6, 8, 3, 3, 1, 0, 0);
    case_conv2d(2, 3, 8, 8, 2, 1, 2, 0, 1);
    case_conv2d(2, 3, 5, 1, 4, 3, 1, 1, 1);   // W = 1
    case_conv2d(2, 3, 1, 2, 4, 3, 1, 1, 0);   // H = 1, W = 2
    case_conv2d(70, 2, 4, 4, 3, 3, 1, 1, 1);  // several groups of images and a remainder
    case_tconv(3, 5, 4, 6, 3, 3);
    case_tconv(2, 1, 3, 5, 4, 3);  // T = 1: only the centre tap sees data
    case_tconv(2, 3, 3, 4, 5, 5);  // taps past both ends of a short clip
    case_tconv(2, 2, 3, 5, 2, 1);  // one tap: a per-frame 1x1
    case_conv3d(2, 4, 3, 5, 6, 4, 3, 3, 1, 1, 1, 1);
    case_conv3d(1, 5, 2, 6, 5, 3, 3, 3, 2, 2, 1, 1);
    case_groupnorm(3, 1, 6, 7, 3);
    case_groupnorm(2, 3, 8, 5, 4);
    case_groupnorm(3, 1, 5, 9, 5);  // one channel per group
    case_permutes();
    case_layernorm(5, 13);
    case_layernorm_x(4, 37, 0, 0.0f);
    case_layernorm_x(3, 40, 1, 100.0f);
    case_groupnorm_x(2, 3, 8, 5, 4, 0, 0.0f, 0);
    case_groupnorm_x(2, 2, 6, 9, 3, 1, 100.0f, 0);
    case_groupnorm_x(3, 1, 6, 7, 3, 1, 0.0f, 1);
    case_groupnorm_x(2, 3, 8, 5, 4, 0, 0.0f, 1);
    case_groupnorm_x(2, 2, 6, 9, 2, 1, 100.0f, 1);
    case_act("silu", 0, 7, 13);
    case_act("gelu_tanh", 1, 7, 13);
    case_act("gelu_erf", 2, 7, 13);
    case_act("quick_gelu", 5, 7, 13);
    case_act("softmax", 3, 7, 13);
    case_geglu(5, 11);
    case_geglu(1, 1);
    case_attention("attention", 3, 2, 5, 7, 4, 0, 0);
    case_attention("attention+dprobs", 2, 3, 6, 6, 5, 0, 1);
    case_attention("attention+addmask", 3, 2, 5, 7, 4, 1, 1);
    case_attention("attention+keepmask", 2, 2, 6, 5, 3, 2, 1);
    case_attention("temporal attention", 13, 2, 1, 1, 4, 0, 1);  // T = 1
    int B = 3, T = 2, C = 5, S = 7;
    int64_t v = (int64_t)B * T * C * S;
    case_layout("spatial tokens", 0, B, T, C, S, v, 0, v);
    case_layout("spatial tokens back", 1, B, T, C, S, v, 0, v);
    case_layout("temporal tokens", 2, B, T, C, S, v, 0, v);
    case_layout("temporal tokens back", 3, B, T, C, S, v, 0, v);
    case_layout("heads split", 4, 3, 5, 2, 3, 90, 0, 90);
    case_layout("heads merge", 5, 3, 5, 2, 3, 90, 0, 90);
    case_layout("context repeat", 6, 3, 4, 5, 2, 30, 0, 120);
    case_layout("upsample2x", 7, 2, 3, 5, 3, 90, 0, 360);
    case_layout("avgpool2x", 8, 2, 3, 6, 4, 144, 0, 36);
    case_layout("bias add", 9, B, T, C, S, v, B * C, v);
    case_layout("concat", 10, 3, 2, 5, 7, 3 * 2 * 7, 3 * 5 * 7, 3 * 7 * 7);
    case_layout("mul", 11, 0, 0, 0, 0, 37, 37, 37);
    case_layout("residual add", 12, 0, 0, 0, 0, 37, 37, 37);
    case_layout("l2norm", 13, 5, 9, 0, 0, 45, 0, 45);
    case_layout("dropout", 14, 0, 0, 0, 0, 301, 0, 301);
    case_layout("cond drop", 15, 5, 6, 0, 0, 30, 6, 30);
    case_loss("mse", 0, 5, 7, 0, 1e-2f);
    case_loss("huber", 1, 5, 7, 0.001f, 1e-4f);
    case_loss("huber c=0.5", 1, 5, 7, 0.5f, 1e-2f);
    case_loss("infonce", 2, 6, 5, 0.07f, 1e-3f);
    case_embedding(9, 5, 7);
    case_token_pool(3, 6, 5);
    case_xent(5, 7, 1.0f);
    case_xent(4, 9, 14.0f);
    case_attention("attention+groupmask", 6, 2, 4, 5, 3, 3, 1);
  }
  // a few bigger shapes, fast against reference only through the same runner (2 threads)
  ops_set_num_threads(2);
  case_conv2d(5, 16, 12, 10, 24, 3, 1, 1, 1);
  case_conv2d(70, 3, 4, 4, 5, 3, 1, 1, 1);
  case_attention("attention 64 tokens", 2, 2, 64, 64, 16, 0, 1);
  case_attention("attention 40 keys", 2, 2, 33, 40, 8, 1, 1);  // above the short-sequence path
  check_embeddings();
  check_optim();
  check_determinism();
  check_mask_exact();
  check_threads_reach_workers();
  printf("%d backend/op pairs skipped; %.1f s\n", g_skipped, time_now() - t0);
#ifdef TURBO_HAVE_CUDA
  if (cuda_opened) cuda_close();
#endif
  return test_finish();
}

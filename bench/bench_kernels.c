/* bench/bench_kernels.c — GFLOP/s of the fast CPU backend's heavy operations at UNet-like
 * shapes, each beside the sgemm ceiling measured in the same run (same thread count), on 1 and
 * 2 threads. Also the conv2d layout choice: im2col GEMMs over groups of images, 256 columns
 * or more (what the backend does: one image per GEMM at 16x16, several at 8x8 and 4x4), against
 * one im2col GEMM over the whole batch.
 *   sh bench/run.sh cpu kernels     (about 30 s)
 * Each figure is the best of the repeats that fill BENCH_SECONDS of wall time. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TURBO_HAVE_BLAS
#include <cblas.h>
#endif

#include "common/log.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

#define BENCH_SECONDS 0.4 /* per measurement; the whole run stays well under a minute */

/* Each thread count runs the list twice: first a short quiet round, then the measured one. On
 * the shared 2-core VMs a core that sat idle through the 1-thread section can run at half speed
 * for the first second or so of 2-thread work, which no single warm-up call covers. */
static int g_quiet;
static double g_seconds = BENCH_SECONDS;
#define OUT(...)                           \
  do {                                     \
    if (!g_quiet) printf(__VA_ARGS__);     \
  } while (0)

typedef void (*bench_fn)(void *ctx);

/* The fastest of the repeats that fit in BENCH_SECONDS: on a shared machine the minimum is the
 * figure least disturbed by other processes (the mean mostly measures the neighbours). */
static double time_it(bench_fn f, void *ctx) {
  f(ctx); // warm-up: first-touch pages, BLAS buffers
  double best = 1e30, t0 = time_now();
  do {
    double t1 = time_now();
    f(ctx);
    double dt = time_now() - t1;
    best = dt < best ? dt : best;
  } while (time_now() - t0 < g_seconds);
  return best;
}

static float *buf(int64_t n) {
  float *x = xmalloc(sizeof(float) * (size_t)n);
  test_fill_uniform(x, n, (uint64_t)n, -1, 1);
  return x;
}

/* ---- sgemm
 * ---------------------------------------------------------------------------------------- */
typedef struct {
  int M, N, K;
  float *A, *B, *C;
} gemm_ctx;
static void run_gemm(void *p) {
  gemm_ctx *g = p;
  op_matmul(0, 0, g->M, g->N, g->K, 1.0f, g->A, g->B, 0.0f, g->C);
}
static double bench_gemm(int M, int N, int K) {
  gemm_ctx g = {M, N, K, buf((int64_t)M * K), buf((int64_t)K * N), buf((int64_t)M * N)};
  double s = time_it(run_gemm, &g);
  free(g.A), free(g.B), free(g.C);
  return 2.0 * M * N * K / s * 1e-9;
}

/* ---- conv2d
 * ---------------------------------------------------------------------------------------- */
typedef struct {
  int N, C, H, W, Co, k, s, p;
  float *x, *w, *b, *y, *dx, *dw, *db, *col;
} conv_ctx;
static void run_conv_fwd(void *p) {
  conv_ctx *c = p;
  op_conv2d_fwd(c->y, c->x, c->w, c->b, c->N, c->C, c->H, c->W, c->Co, c->k, c->s, c->p);
}
static void run_conv_bwd(void *p) {
  conv_ctx *c = p;
  op_conv2d_bwd(c->dx, c->dw, c->db, c->y, c->x, c->w, c->N, c->C, c->H, c->W, c->Co, c->k, c->s,
                c->p);
}
/* The alternative layout: im2col of all N images into (C*k*k, N*H*W), one threaded GEMM,
 * then the (Co, N, HW) result permuted to (N, Co, HW). Stride 1, pad k/2 only. */
static void run_conv_fwd_batched(void *p) {
  conv_ctx *c = p;
  int K = c->C * c->k * c->k, HW = c->H * c->W, NHW = c->N * HW, r = c->k / 2;
  for (int ci = 0; ci < c->C; ci++)
    for (int ky = 0; ky < c->k; ky++)
      for (int kx = 0; kx < c->k; kx++) {
        float *row = c->col + ((size_t)(ci * c->k + ky) * c->k + kx) * NHW;
        for (int n = 0; n < c->N; n++)
          for (int y = 0; y < c->H; y++)
            for (int x = 0; x < c->W; x++) {
              int yy = y + ky - r, xx = x + kx - r;
              row[(size_t)n * HW + y * c->W + x] =
                  (yy >= 0 && yy < c->H && xx >= 0 && xx < c->W)
                      ? c->x[(((size_t)n * c->C + ci) * c->H + yy) * c->W + xx]
                      : 0.0f;
            }
      }
  op_matmul(0, 0, c->Co, NHW, K, 1.0f, c->w, c->col, 0.0f, c->dx);
  int shape[3] = {c->Co, c->N, HW}, perm[3] = {1, 0, 2};
  op_permute_fwd(c->y, c->dx, 3, shape, perm);
}

static void bench_conv(int N, int C, int H, int W, int Co, int k, int s, double ceil, int alt) {
  int p = k / 2, Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
  int64_t big = (int64_t)N * (C > Co ? C : Co) * H * W;
  conv_ctx c = {N,
                C,
                H,
                W,
                Co,
                k,
                s,
                p,
                buf((int64_t)N * C * H * W),
                buf((int64_t)Co * C * k * k),
                buf(Co),
                buf(big),
                buf(big),
                buf((int64_t)Co * C * k * k),
                buf(Co),
                alt ? buf((int64_t)C * k * k * N * H * W) : NULL};
  double flops = 2.0 * N * Co * Ho * Wo * C * k * k;
  double tf = time_it(run_conv_fwd, &c), tb = time_it(run_conv_bwd, &c);
  OUT(
      "conv2d N=%-3d C=%-3d %2dx%-2d Co=%-3d k=%d s=%d   fwd %6.2f GF/s (%.2f)  bwd %6.2f GF/s "
      "(%.2f)\n",
      N, C, H, W, Co, k, s, flops / tf * 1e-9, flops / tf * 1e-9 / ceil, 2 * flops / tb * 1e-9,
      2 * flops / tb * 1e-9 / ceil);
  if (alt) {
    double ta = time_it(run_conv_fwd_batched, &c);
    OUT("  layout: grouped im2col GEMMs %.2f ms, one batched im2col GEMM %.2f ms\n", tf * 1e3,
           ta * 1e3);
  }
  free(c.x), free(c.w), free(c.b), free(c.y), free(c.dx), free(c.dw), free(c.db), free(c.col);
}

/* ---- temporal conv
 * ----------------------------------------------------------------------------------- */
typedef struct {
  int B, T, C, S;
  float *x, *w, *b, *y, *dx, *dw, *db;
} tconv_ctx;
static void run_tconv_fwd(void *p) {
  tconv_ctx *c = p;
  op_tconv_fwd(c->y, c->x, c->w, c->b, c->B, c->T, c->C, c->S, c->C, 3);
}
static void run_tconv_bwd(void *p) {
  tconv_ctx *c = p;
  op_tconv_bwd(c->dx, c->dw, c->db, c->y, c->x, c->w, c->B, c->T, c->C, c->S, c->C, 3);
}
static void bench_tconv(int B, int T, int C, int S, double ceil) {
  int64_t n = (int64_t)B * T * C * S;
  tconv_ctx c = {B,      T,
                 C,      S,
                 buf(n), buf((int64_t)C * C * 3),
                 buf(C), buf(n),
                 buf(n), buf((int64_t)C * C * 3),
                 buf(C)};
  double flops = 2.0 * B * T * C * S * C * 3 * (T > 1 ? (3.0 * T - 2) / (3.0 * T) : 1.0 / 3);
  double tf = time_it(run_tconv_fwd, &c), tb = time_it(run_tconv_bwd, &c);
  OUT(
      "tconv  B=%d T=%-2d C=%-3d S=%-4d kt=3          fwd %6.2f GF/s (%.2f)  bwd %6.2f GF/s "
      "(%.2f)\n",
      B, T, C, S, flops / tf * 1e-9, flops / tf * 1e-9 / ceil, 2 * flops / tb * 1e-9,
      2 * flops / tb * 1e-9 / ceil);
  free(c.x), free(c.w), free(c.b), free(c.y), free(c.dx), free(c.dw), free(c.db);
}

/* ---- attention
 * ---------------------------------------------------------------------------------------- */
typedef struct {
  int B, H, N, D;
  float *q, *k, *v, *o, *p, *dq, *dk, *dv, *dp;
} attn_ctx;
static void run_attn_fwd(void *x) {
  attn_ctx *a = x;
  op_attention_fwd(a->o, a->p, a->q, a->k, a->v, NULL, a->B, a->H, a->N, a->N, a->D,
                   1.0f / sqrtf((float)a->D));
}
static void run_attn_bwd(void *x) {
  attn_ctx *a = x;
  op_attention_bwd(a->dq, a->dk, a->dv, a->o, a->dp, a->q, a->k, a->v, a->p, a->B, a->H, a->N, a->N,
                   a->D, 1.0f / sqrtf((float)a->D));
}
static void bench_attn(const char *what, int B, int H, int N, int D, double ceil) {
  int64_t nq = (int64_t)B * H * N * D, np = (int64_t)B * H * N * N;
  attn_ctx a = {B,       H,       N,       D,       buf(nq), buf(nq), buf(nq),
                buf(nq), buf(np), buf(nq), buf(nq), buf(nq), buf(np)};
  run_attn_fwd(&a);  // valid probabilities for the backward
  double flops = 4.0 * B * H * (double)N * N * D;
  double tf = time_it(run_attn_fwd, &a), tb = time_it(run_attn_bwd, &a);
  OUT("attn %-9s B*H=%-5d N=%-3d D=%-3d         fwd %6.2f GF/s (%.2f)  bwd %6.2f GF/s (%.2f)\n",
         what, B * H, N, D, flops / tf * 1e-9, flops / tf * 1e-9 / ceil, 2 * flops / tb * 1e-9,
         2 * flops / tb * 1e-9 / ceil);
  free(a.q), free(a.k), free(a.v), free(a.o), free(a.p), free(a.dq), free(a.dk), free(a.dv),
      free(a.dp);
}

int main(void) {
  log_init("bench_kernels");
  double t0 = time_now();
  printf("fast CPU backend; (x.xx) = fraction of the sgemm ceiling (512^3) at the same threads\n");
  for (int round = 0; round < 4; round++) {
    int threads = 1 + round / 2;
    g_quiet = round % 2 == 0;
    g_seconds = g_quiet ? 0.1 : BENCH_SECONDS;
    ops_set_num_threads(threads);
    OUT("\n-- %d thread(s)\n", threads);
    double g256 = bench_gemm(256, 256, 256), g512 = bench_gemm(512, 512, 512);
    double gunet = bench_gemm(64, 256, 576);
    OUT("sgemm 256^3 %6.2f GF/s   512^3 %6.2f GF/s (ceiling)   64x256x576 %6.2f GF/s\n", g256,
           g512, gunet);
    bench_conv(16, 64, 16, 16, 64, 3, 1, g512, 1);
    bench_conv(16, 64, 16, 16, 64, 1, 1, g512, 0);
    bench_conv(16, 64, 16, 16, 128, 3, 2, g512, 0);
    bench_conv(16, 96, 8, 8, 96, 3, 1, g512, 0);
    bench_conv(16, 96, 4, 4, 96, 3, 1, g512, 0);
    bench_tconv(1, 16, 64, 256, g512);
    bench_attn("spatial", 16, 4, 256, 16, g512);   // 16 frames, 4 heads, 16x16 tokens
    bench_attn("temporal", 256, 4, 16, 16, g512);  // 256 positions, 4 heads, 16 frames
  }
  printf("\ntotal %.1f s\n", time_now() - t0);
  return 0;
}

/* Whole-UNet forward + backward throughput at the default size (16 frames of 16×16×4 latents,
 * unet_config_default, 8 text tokens), FLOPs counted analytically per op (backward = 2×
 * forward), beside cblas_sgemm GFLOP/s (512³) measured in the same run, on 1 and 2 threads
 * (model passes and sgemm bursts alternate, so that a busy spell on a shared machine does not
 * land on one side of the ratio only; the median of the passes is the figure, the best beside
 * it; the ratio is median against median), then once more with
 * per-block recomputation (FLOPs still counted without the recompute, so that row shows what
 * the memory saving costs; act MiB is the peak of activations + grads).
 * The model runs through kernels/ops.h on the fast CPU backend (TURBO_BENCH_BACKEND=ref for the
 * reference). "cpu ms" is the process CPU time of the median pass: on a shared machine the
 * single-thread row's cpu ms is the time the work itself took, whatever else was running.
 *   build/bench/bench_unet [iterations]   (TURBO_BENCH_THREADS="1 2" to choose;
 *   TURBO_OPS_PROFILE=1 prints each row's time per op) */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "kernels/nn.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The best time of one 512^3 sgemm over about `seconds` of repetitions, with OpenBLAS's own
 * threading (the way sgemm is usually run; the fast backend keeps BLAS on one thread and splits
 * GEMMs over its OpenMP threads itself): the usual measure of what sgemm can do here. */
typedef struct {
  int n;
  float *a, *b, *c;
} sgemm_probe;

static void sgemm_probe_init(sgemm_probe *p) {
  p->n = 512;
  size_t sz = (size_t)p->n * p->n;
  p->a = malloc(sz * 4), p->b = malloc(sz * 4), p->c = malloc(sz * 4);
  test_fill_uniform(p->a, (int64_t)sz, 1, -1, 1);
  test_fill_uniform(p->b, (int64_t)sz, 2, -1, 1);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* the median of v[0..n) (sorts v) */
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof v[0], cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* GFLOP/s of the median 512^3 sgemm over about `seconds` of repetitions (*best_out: of the
 * best) */
static double sgemm_probe_run(sgemm_probe *p, int n_threads, double seconds, double *best_out) {
  int n = p->n;
  openblas_set_num_threads(n_threads);
  enum { MAXREP = 4096 };
  static double dts[MAXREP];
  int nr = 0;
  double t_end = time_now() + seconds;
  do {
    double t0 = time_now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, p->a, n, p->b, n, 0, p->c, n);
    dts[nr++] = time_now() - t0;
  } while (time_now() < t_end && nr < MAXREP);
  double med = median(dts, nr), best = dts[0];
  openblas_set_num_threads(1);
  /* OpenBLAS's worker threads spin for about 2^28 cycles after their last job before they
   * sleep; the model pass that follows would share the cores with them */
  if (n_threads > 1) usleep(300000);
  *best_out = 2.0 * n * n * n / best * 1e-9;
  return 2.0 * n * n * n / med * 1e-9;
}

int main(int argc, char **argv) {
  log_init("bench_unet");
  const char *be = getenv("TURBO_BENCH_BACKEND");
  if (be && !strcmp(be, "ref")) ops_backend_set(OPS_CPU_REF);
  int iters = 8;
  if (argc > 1) {
    char *end;
    long v = strtol(argv[1], &end, 10);
    if (*end || v < 1 || v > 1000) {
      fprintf(stderr,
              "usage: bench_unet [ITERATIONS]   (1..1000, default 8; TURBO_BENCH_THREADS=\"1 2\",\n"
              "       TURBO_BENCH_BACKEND=ref, TURBO_OPS_PROFILE=1 for the time per op)\n");
      return strcmp(argv[1], "--help") && strcmp(argv[1], "-h") ? 2 : 0;
    }
    iters = (int)v;
  }
  const char *tl = getenv("TURBO_BENCH_THREADS") ? getenv("TURBO_BENCH_THREADS") : "1 2";
  unet_config cfg = unet_config_default();
  unet u;
  if (unet_create(&u, &cfg) != TB_OK) {
    fprintf(stderr, "%s\n", err_get());
    return 1;
  }
  unet_init_weights(&u, 1, 0);
  int B = 1, T = 16, H = 16, W = 16, L = 8;
  int64_t nx = (int64_t)B * T * cfg.in_ch * H * W, nc = (int64_t)B * L * cfg.text_dim;
  float *x = malloc(nx * 4), *cx = malloc(nc * 4), *dy = malloc(nx * 4);
  test_fill_uniform(x, nx, 3, -1, 1);
  test_fill_uniform(cx, nc, 4, -1, 1);
  test_fill_uniform(dy, nx, 5, -1, 1);
  float t = 500;
  double fl = 3.0 * unet_flops_forward(&u, B, T, H, W, L);
  printf("unet default: %lld parameters, %d frames of %dx%dx%d, %.2f GFLOP per forward+backward\n",
         (long long)u.params.total, T, H, W, cfg.in_ch, fl * 1e-9);
  printf("medians of %d passes (best beside); sgemm 512^3 bursts interleaved with the passes\n",
         iters);
  printf("%-9s %11s %8s %8s %13s %14s %11s %7s %9s\n", "threads", "fwd+bwd ms", "best ms", "cpu ms",
         "unet GFLOP/s", "sgemm GFLOP/s", "sgemm best", "ratio", "act MiB");
  nn_ctx *c = nn_ctx_new();
  sgemm_probe probe;
  sgemm_probe_init(&probe);
  char buf[64];
  snprintf(buf, sizeof buf, "%s", tl);
  /* each thread count, then the first one again with per-block recomputation */
  int counts[8], nc_ = 0;
  for (char *tok = strtok(buf, " ,"); tok && nc_ < 7; tok = strtok(NULL, " ,"))
    if (atoi(tok) >= 1) counts[nc_++] = atoi(tok);
  if (nc_ == 0) return 0;
  counts[nc_] = counts[0];
  for (int row = 0; row <= nc_; row++) {
    int nt = counts[row], recompute = row == nc_;
    nn_ctx_free(c);
    c = nn_ctx_new();
    nn_ctx_set_mode(c, recompute, 0, 1);
    ops_set_num_threads(nt);
    /* Rounds of one model pass and a quarter second of sgemm, alternating, so that both see
     * the same machine: the best of each is kept (the first pass sizes the arena, untimed). */
    double *dts = malloc(sizeof(double) * iters), *dcs = malloc(sizeof(double) * iters);
    double *sgs = malloc(sizeof(double) * iters), sg_best = 0;
    for (int it = 0; it < iters + 1; it++) {
      nn_ctx_reset(c);
      nn_params_zero_grad(&u.params);
      double t0 = time_now(), c0 = cpu_now();
      nn_var xv = nn_input(c, x, nx, 1), cv = nn_input(c, cx, nc, 0);
      unet_input in = {.B = B, .T = T, .H = H, .W = W, .t = &t, .context = cv, .L = L};
      nn_var y = unet_forward(&u, c, xv, &in);
      nn_backward(c, y, dy);
      double dt = time_now() - t0, dc = cpu_now() - c0;
      if (it == 0) {
        ops_profile_reset();
        if (row == 0) { /* the output and gradients' fingerprint: kernel changes that should
                           leave the bits alone can be checked against an earlier build */
          uint64_t h = 1469598103934665603ull;
          const float *yv = nn_data(c, y);
          for (int64_t i = 0; i < nx; i++) {
            uint32_t b;
            memcpy(&b, &yv[i], 4);
            h = (h ^ b) * 1099511628211ull;
          }
          for (int64_t i = 0; i < u.params.total; i++) {
            uint32_t b;
            memcpy(&b, &u.params.grad[i], 4);
            h = (h ^ b) * 1099511628211ull;
          }
          printf("output+grad fingerprint (%d threads): %016llx\n", nt, (unsigned long long)h);
        }
        continue;
      }
      dts[it - 1] = dt, dcs[it - 1] = dc;
      double sb;
      sgs[it - 1] = sgemm_probe_run(&probe, nt, 0.25, &sb);
      if (sb > sg_best) sg_best = sb;
    }
    double best = dts[0];
    for (int i = 1; i < iters; i++) best = dts[i] < best ? dts[i] : best;
    double med = median(dts, iters), med_cpu = median(dcs, iters), sg = median(sgs, iters);
    free(dts), free(dcs), free(sgs);
    double g = fl / med * 1e-9;
    char lab[32];
    snprintf(lab, sizeof lab, "%d%s", nt, recompute ? " recomp" : "");
    printf("%-9s %11.1f %8.1f %8.1f %13.2f %14.2f %11.2f %7.2f %9.1f\n", lab, med * 1e3, best * 1e3,
           med_cpu * 1e3, g, sg, sg_best, g / sg, nn_ctx_bytes(c) / 1048576.0);
    fflush(stdout);
    if (ops_profile_enabled()) { /* the row's timed passes, op by op (TURBO_OPS_PROFILE=1) */
      ops_profile_report(stderr);
      ops_profile_reset();
    }
  }
  nn_ctx_free(c);
  unet_free(&u);
  free(x), free(cx), free(dy);
  free(probe.a), free(probe.b), free(probe.c);
  return 0;
}

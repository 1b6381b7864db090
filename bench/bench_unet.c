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
 *   TURBO_OPS_PROFILE=1 prints each row's time per op)
 * Two more modes serve bench/torch_unet.py and bench/race.py (the side-by-side with PyTorch):
 *   build/bench/bench_unet --dump FILE    one fwd+bwd pass of the same model and inputs on one
 *       thread, saved as safetensors: every parameter under its own name, "grad/NAME" its
 *       gradient, and "io/x", "io/context", "io/t", "io/dy", "io/y", "io/dx"
 *   build/bench/bench_unet --serve THREADS    a race worker: reads commands on stdin, one a line
 *       ("run K": K timed passes, one "ms X" line each; "prof": one pass with the op profile,
 *       its table on stdout; "mem": "rss_kib X hwm_kib Y" from /proc/self/status; "quit"),
 *       and answers each with "done" (after "ready" once the model and a first pass are done) */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/safetensors.h"
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

/* The benchmark's model and inputs: the default UNet (seed 1, no zero-initialised outputs, so
 * that every gradient is non-zero), a (1, 16, 4, 16, 16) latent, 8 text tokens, t = 500, and the
 * output gradient dy; all uniform in [-1, 1] from fixed seeds. */
enum { BU_B = 1, BU_T = 16, BU_H = 16, BU_W = 16, BU_L = 8 };
typedef struct {
  unet u;
  int64_t nx, nc;
  float *x, *cx, *dy, t;
} bench_model;

static int bench_model_init(bench_model *m) {
  unet_config cfg = unet_config_default();
  if (unet_create(&m->u, &cfg) != TB_OK) return TB_ERR;
  unet_init_weights(&m->u, 1, 0);
  m->nx = (int64_t)BU_B * BU_T * cfg.in_ch * BU_H * BU_W;
  m->nc = (int64_t)BU_B * BU_L * cfg.text_dim;
  m->x = malloc(m->nx * 4), m->cx = malloc(m->nc * 4), m->dy = malloc(m->nx * 4);
  test_fill_uniform(m->x, m->nx, 3, -1, 1);
  test_fill_uniform(m->cx, m->nc, 4, -1, 1);
  test_fill_uniform(m->dy, m->nx, 5, -1, 1);
  m->t = 500;
  return TB_OK;
}

static void bench_model_free(bench_model *m) {
  unet_free(&m->u);
  free(m->x), free(m->cx), free(m->dy);
}

/* one forward + backward on a reset context; returns the output (*xv: the input leaf) */
static nn_var bench_model_pass(bench_model *m, nn_ctx *c, nn_var *xv_out) {
  nn_ctx_reset(c);
  nn_params_zero_grad(&m->u.params);
  nn_var xv = nn_input(c, m->x, m->nx, 1), cv = nn_input(c, m->cx, m->nc, 0);
  unet_input in = {.B = BU_B, .T = BU_T, .H = BU_H, .W = BU_W, .t = &m->t, .context = cv, .L = BU_L};
  nn_var y = unet_forward(&m->u, c, xv, &in);
  nn_backward(c, y, m->dy);
  if (xv_out) *xv_out = xv;
  return y;
}

static int dump_add(safetensors_writer *w, const char *name, int ndim, const int64_t *shape,
                    const float *data) {
  tensor t = tensor_view(DTYPE_F32, ndim, shape, (void *)data);
  return safetensors_writer_add(w, name, &t);
}

/* --dump FILE: the parameters, their gradients and the pass's inputs and outputs */
static int bench_dump(const char *path) {
  bench_model m;
  if (bench_model_init(&m) != TB_OK) return TB_ERR;
  ops_set_num_threads(1);
  nn_ctx *c = nn_ctx_new();
  nn_var xv;
  nn_var y = bench_model_pass(&m, c, &xv);
  safetensors_writer *w = safetensors_writer_new();
  const nn_params *p = &m.u.params;
  int rc = TB_OK;
  char name[2 * NN_NAME_MAX];
  for (int i = 0; i < p->n && rc == TB_OK; i++) {
    rc = dump_add(w, p->info[i].name, p->info[i].ndim, p->info[i].shape, p->data + p->info[i].offset);
    snprintf(name, sizeof name, "grad/%s", p->info[i].name);
    if (rc == TB_OK)
      rc = dump_add(w, name, p->info[i].ndim, p->info[i].shape, p->grad + p->info[i].offset);
  }
  int in_ch = m.u.cfg.in_ch;
  int64_t sx[5] = {BU_B, BU_T, in_ch, BU_H, BU_W}, sc[3] = {BU_B, BU_L, m.u.cfg.text_dim};
  int64_t st[1] = {BU_B};
  const float *dx = nn_grad(c, xv);
  if (rc == TB_OK) rc = dump_add(w, "io/x", 5, sx, m.x);
  if (rc == TB_OK) rc = dump_add(w, "io/context", 3, sc, m.cx);
  if (rc == TB_OK) rc = dump_add(w, "io/t", 1, st, &m.t);
  if (rc == TB_OK) rc = dump_add(w, "io/dy", 5, sx, m.dy);
  if (rc == TB_OK) rc = dump_add(w, "io/y", 5, sx, nn_data(c, y));
  if (rc == TB_OK && dx) rc = dump_add(w, "io/dx", 5, sx, dx);
  if (rc == TB_OK) rc = safetensors_writer_set_meta(w, "format", "turbo.bench_unet.dump.v1");
  if (rc == TB_OK) rc = safetensors_writer_save(w, path);
  safetensors_writer_free(w);
  int np = p->n;
  nn_ctx_free(c);
  bench_model_free(&m);
  if (rc != TB_OK) return err_wrap("bench_unet --dump %s: ", path);
  printf("wrote %s: %d parameters and their gradients, inputs, output, input gradient\n", path,
         np);
  return TB_OK;
}

/* "rss_kib X hwm_kib Y": the resident set now and its high-water mark */
static void print_mem(void) {
  long rss = -1, hwm = -1;
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  while (f && fgets(line, sizeof line, f)) {
    if (!strncmp(line, "VmRSS:", 6)) rss = strtol(line + 6, NULL, 10);
    if (!strncmp(line, "VmHWM:", 6)) hwm = strtol(line + 6, NULL, 10);
  }
  if (f) fclose(f);
  printf("rss_kib %ld hwm_kib %ld\n", rss, hwm);
}

/* --serve THREADS: the race worker (see the header comment) */
static int bench_serve(int threads) {
  bench_model m;
  if (bench_model_init(&m) != TB_OK) return TB_ERR;
  ops_set_num_threads(threads);
  nn_ctx *c = nn_ctx_new();
  for (int i = 0; i < 2; i++) bench_model_pass(&m, c, NULL); /* sizes the arena, warms up */
  printf("ready\n");
  fflush(stdout);
  char line[128];
  while (fgets(line, sizeof line, stdin)) {
    int k;
    if (sscanf(line, "run %d", &k) == 1 && k >= 1) {
      for (int i = 0; i < k; i++) {
        double t0 = time_now();
        bench_model_pass(&m, c, NULL);
        printf("ms %.3f\n", (time_now() - t0) * 1e3);
      }
    } else if (!strncmp(line, "prof", 4)) {
      ops_profile_enable(1);
      ops_profile_reset();
      bench_model_pass(&m, c, NULL);
      ops_profile_report(stdout);
      ops_profile_enable(0);
      ops_profile_reset();
    } else if (!strncmp(line, "mem", 3)) {
      print_mem();
    } else if (!strncmp(line, "quit", 4)) {
      break;
    } else {
      printf("error: unknown command %.40s", line);
    }
    printf("done\n");
    fflush(stdout);
  }
  nn_ctx_free(c);
  bench_model_free(&m);
  return TB_OK;
}

int main(int argc, char **argv) {
  log_init("bench_unet");
  if (argc == 3 && !strcmp(argv[1], "--dump")) {
    if (bench_dump(argv[2]) == TB_OK) return 0;
    fprintf(stderr, "%s\n", err_get());
    return 1;
  }
  if (argc == 3 && !strcmp(argv[1], "--serve")) {
    char *end;
    long v = strtol(argv[2], &end, 10);
    if (*end || v < 1 || v > 256) {
      fprintf(stderr, "bench_unet --serve THREADS: THREADS must be 1..256, not '%s'\n", argv[2]);
      return 2;
    }
    if (bench_serve((int)v) == TB_OK) return 0;
    fprintf(stderr, "%s\n", err_get());
    return 1;
  }
  const char *be = getenv("TURBO_BENCH_BACKEND");
  if (be && !strcmp(be, "ref")) ops_backend_set(OPS_CPU_REF);
  int iters = 8;
  if (argc > 1) {
    char *end;
    long v = strtol(argv[1], &end, 10);
    if (*end || v < 1 || v > 1000) {
      fprintf(stderr,
              "usage: bench_unet [ITERATIONS]   (1..1000, default 8; TURBO_BENCH_THREADS=\"1 2\",\n"
              "       TURBO_BENCH_BACKEND=ref, TURBO_OPS_PROFILE=1 for the time per op)\n"
              "       bench_unet --dump FILE | --serve THREADS   (for bench/race.py)\n");
      return strcmp(argv[1], "--help") && strcmp(argv[1], "-h") ? 2 : 0;
    }
    iters = (int)v;
  }
  const char *tl = getenv("TURBO_BENCH_THREADS") ? getenv("TURBO_BENCH_THREADS") : "1 2";
  bench_model m;
  if (bench_model_init(&m) != TB_OK) {
    fprintf(stderr, "%s\n", err_get());
    return 1;
  }
  const unet *u = &m.u;
  unet_config cfg = u->cfg;
  int B = BU_B, T = BU_T, H = BU_H, W = BU_W, L = BU_L;
  int64_t nx = m.nx;
  double fl = 3.0 * unet_flops_forward(u, B, T, H, W, L);
  printf("unet default: %lld parameters, %d frames of %dx%dx%d, %.2f GFLOP per forward+backward\n",
         (long long)u->params.total, T, H, W, cfg.in_ch, fl * 1e-9);
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
      double t0 = time_now(), c0 = cpu_now();
      nn_var y = bench_model_pass(&m, c, NULL);
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
          for (int64_t i = 0; i < u->params.total; i++) {
            uint32_t b;
            memcpy(&b, &u->params.grad[i], 4);
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
  bench_model_free(&m);
  free(probe.a), free(probe.b), free(probe.c);
  return 0;
}

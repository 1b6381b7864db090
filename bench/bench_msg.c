/* bench/bench_msg.c — echo round trips through a service in another process, over ipc:// and
 * tcp://127.0.0.1, for tensors of 4 KiB to 256 MiB, beside memcpy of the same size.
 *
 *   build/bench/bench_msg [--quick]     (make bench runs it through bench/run.sh)
 *
 * GB/s counts the payload both ways (2 × size) over the median round-trip time; memcpy GB/s is
 * one copy of `size` bytes over its median time, measured in the same run; ratio = the first
 * over the second. Targets: 64 KiB round trip < 0.5 ms over ipc, 16 MiB >= 1 GB/s over ipc.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/client.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/schema.h"
#include "common/service.h"
#include "common/tensor.h"

#define BENCH_CELL_BUDGET_S 4.0 /* seconds per (size, transport) cell, warm-up excluded */

static int serve(const char *ep) {
  log_init("bench-echo");
  schema_registry *reg = schema_registry_new();
  service_opts o = service_opts_default("bench-echo");
  o.endpoint = ep;
  o.registry = reg;
  service *s = service_new(&o);
  if (!s) {
    log_error("%s", err_get());
    return 1;
  }
  int rc = service_run(s);
  service_free(s);
  schema_registry_free(reg);
  return rc == TB_OK ? 0 : 1;
}

static pid_t spawn(const char *ep) {
  pid_t pid = fork();
  TB_CHECK(pid >= 0);
  if (pid == 0) {
    execl("/proc/self/exe", "bench_msg", "--serve", ep, (char *)NULL);
    _exit(127);
  }
  return pid;
}

static void stop(pid_t pid) {
  kill(pid, SIGTERM);
  int st;
  waitpid(pid, &st, 0);
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double memcpy_median_s(size_t n, int iters) {
  char *a = aligned_alloc_zero(n), *b = aligned_alloc_zero(n);
  memset(a, 1, n);
  memcpy(b, a, n); /* touch both */
  double *t = xmalloc((size_t)iters * sizeof *t);
  for (int i = 0; i < iters; i++) {
    a[i % n] = (char)i;
    double t0 = time_now();
    memcpy(b, a, n);
    t[i] = time_now() - t0;
    if (b[i % n] != (char)i) abort();
  }
  double m = median(t, iters);
  free(t);
  aligned_free(a);
  aligned_free(b);
  return m;
}

typedef struct {
  double med_s, p90_s;
  int iters;
  int ok;
} cell;

static cell run_cell(const char *ep, int64_t size, int max_iters) {
  cell r = {0, 0, 0, 0};
  client_opts o = client_opts_default();
  o.timeout_s = 30;
  o.tries = 1;
  client *c = client_new(ep, &o);
  if (!c) return r;
  int64_t shape[1] = {size};
  tensor t = tensor_new(DTYPE_U8, 1, shape);
  memset(t.data, 0x5a, (size_t)size);
  msg *req = msg_new(SERVICE_SCHEMA_ECHO, 1, 0);
  TB_CHECK(msg_add_tensor_owned(req, "x", &t) == TB_OK);
  double *lat = xmalloc((size_t)max_iters * sizeof *lat);
  int warm = size >= (64 << 20) ? 1 : 3;
  int n = 0;
  double t_start = 0;
  for (int i = 0; i < warm + max_iters; i++) {
    if (i == warm) t_start = time_now();
    msg *rep = NULL;
    double t0 = time_now();
    if (client_call(c, req, &rep) != TB_OK) {
      log_error("%s", err_get());
      break;
    }
    double dt = time_now() - t0;
    const tensor *x = msg_tensor_get(rep, "x");
    int good = x && tensor_nbytes(x) == size;
    msg_free(rep);
    if (!good) break;
    if (i >= warm) {
      lat[n++] = dt;
      if (time_now() - t_start > BENCH_CELL_BUDGET_S && n >= 3) break;
    }
  }
  if (n > 0) {
    qsort(lat, (size_t)n, sizeof *lat, cmp_d);
    r.med_s = median(lat, n);
    r.p90_s = lat[(int)(0.9 * (n - 1))];
    r.iters = n;
    r.ok = 1;
  }
  free(lat);
  msg_free(req);
  client_free(c);
  return r;
}

static const char *size_name(int64_t s, char *buf, size_t n) {
  if (s >= (1 << 20))
    snprintf(buf, n, "%lld MiB", (long long)(s >> 20));
  else
    snprintf(buf, n, "%lld KiB", (long long)(s >> 10));
  return buf;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "--serve") == 0) return serve(argv[2]);
  log_init("bench_msg");
  int quick = argc >= 2 && strcmp(argv[1], "--quick") == 0;
  const char *tmp = getenv("BUILD") ? getenv("BUILD") : "build";
  char ipc[256], tcp[64];
  snprintf(ipc, sizeof ipc, "ipc://%.200s/bench-out/bench_msg.%d.ipc", tmp, (int)getpid());
  snprintf(tcp, sizeof tcp, "tcp://127.0.0.1:%d", 40000 + (int)(getpid() % 20000));
  const char *eps[2] = {ipc, tcp};
  const char *names[2] = {"ipc", "tcp"};
  int64_t sizes[] = {4 << 10, 64 << 10, 1 << 20, 16 << 20, (int64_t)256 << 20};
  int iters[] = {2000, 1000, 200, 30, 3};
  int nsizes = quick ? 4 : 5;

  pid_t pids[2];
  for (int k = 0; k < 2; k++) {
    pids[k] = spawn(eps[k]);
    if (client_wait_ready(eps[k], 10, NULL) != TB_OK) {
      log_error("%s", err_get());
      for (int j = 0; j <= k; j++) stop(pids[j]);
      return 1;
    }
  }
  printf("echo round trip through a service process (median of N; GB/s = 2 x size / median)\n");
  printf("%-8s %-4s %6s %10s %10s %8s %12s %7s\n", "size", "via", "N", "median_ms", "p90_ms",
         "GB/s", "memcpy_GB/s", "ratio");
  double ipc64_ms = -1, ipc16_gbs = -1;
  for (int i = 0; i < nsizes; i++) {
    double mc = memcpy_median_s((size_t)sizes[i], sizes[i] >= (64 << 20) ? 5 : 50);
    double mc_gbs = sizes[i] / mc / 1e9;
    for (int k = 0; k < 2; k++) {
      cell r = run_cell(eps[k], sizes[i], iters[i]);
      char sz[32];
      if (!r.ok) {
        printf("%-8s %-4s failed\n", size_name(sizes[i], sz, sizeof sz), names[k]);
        continue;
      }
      double gbs = 2.0 * sizes[i] / r.med_s / 1e9;
      printf("%-8s %-4s %6d %10.3f %10.3f %8.2f %12.2f %7.3f\n", size_name(sizes[i], sz, sizeof sz),
             names[k], r.iters, r.med_s * 1e3, r.p90_s * 1e3, gbs, mc_gbs, gbs / mc_gbs);
      fflush(stdout);
      if (k == 0 && sizes[i] == (64 << 10)) ipc64_ms = r.med_s * 1e3;
      if (k == 0 && sizes[i] == (16 << 20)) ipc16_gbs = gbs;
    }
  }
  printf("target 64 KiB ipc round trip < 0.5 ms: %.3f ms (%s)\n", ipc64_ms,
         ipc64_ms >= 0 && ipc64_ms < 0.5 ? "met" : "missed");
  printf("target 16 MiB ipc >= 1 GB/s: %.2f GB/s (%s)\n", ipc16_gbs,
         ipc16_gbs >= 1.0 ? "met" : "missed");
  for (int k = 0; k < 2; k++) stop(pids[k]);
  return 0;
}

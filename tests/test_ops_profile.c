/* The op profile (TURBO_OPS_PROFILE=1 / ops_profile_enable): off, nothing is recorded; on, every
 * op_ call counts once under its name with its time; the report lists the ops largest first with
 * their calls; reset clears it; the environment variable turns it on in a fresh process and the
 * table is printed at exit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

/* the report as a string (caller frees) */
static char *report(void) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  ops_profile_report(f);
  fclose(f);
  return buf;
}

/* calls recorded for op `name` in a report, -1 when it is not listed */
static long calls_of(const char *rep, const char *name) {
  char pat[64];
  snprintf(pat, sizeof pat, "\n  %s ", name);
  const char *p = strstr(rep, pat);
  if (!p) return -1;
  return strtol(p + strlen(pat), NULL, 10);
}

static void some_ops(float *a, float *b, float *c, int n, int times) {
  for (int i = 0; i < times; i++) {
    op_matmul(0, 0, n, n, n, 1.0f, a, b, 0.0f, c);
    op_silu_fwd(c, a, (int64_t)n * n);
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "--child")) { /* run with TURBO_OPS_PROFILE=1 */
    float a[16] = {0}, b[16] = {0}, c[16];
    some_ops(a, b, c, 4, 3);
    return 0; /* the table goes to stderr at exit */
  }
  test_begin("test_ops_profile");
  ops_set_num_threads(1);
  int n = 64;
  float *a = xcalloc((size_t)n * n, sizeof(float)), *b = xcalloc((size_t)n * n, sizeof(float));
  float *c = xcalloc((size_t)n * n, sizeof(float));

  ops_profile_enable(0);
  some_ops(a, b, c, n, 2);
  char *r = report();
  CHECKF(r[0] == 0, "profile off, yet the report says: %s", r);
  free(r);

  ops_profile_enable(1);
  CHECK(ops_profile_enabled());
  some_ops(a, b, c, n, 5);
  op_silu_fwd(c, a, (int64_t)n * n);
  r = report();
  printf("%s", r);
  CHECKF(calls_of(r, "matmul") == 5, "matmul calls %ld, want 5", calls_of(r, "matmul"));
  CHECKF(calls_of(r, "silu_fwd") == 6, "silu_fwd calls %ld, want 6", calls_of(r, "silu_fwd"));
  CHECKF(calls_of(r, "gelu_erf_fwd") == -1, "an op never called is listed");
  CHECKF(strstr(r, "us/call") && strstr(r, "share"), "the report has no header");
  free(r);

  ops_profile_reset();
  r = report();
  CHECKF(r[0] == 0, "after reset the report still says: %s", r);
  free(r);
  ops_profile_enable(0);

  /* a fresh process with the environment variable prints its table at exit, on stderr */
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "TURBO_OPS_PROFILE=1 %s --child 2>&1", argv[0]);
  FILE *p = popen(cmd, "r");
  CHECK(p != NULL);
  if (p) {
    char out[8192];
    size_t len = fread(out, 1, sizeof out - 1, p);
    out[len] = 0;
    int st = pclose(p);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child exit status %d", st);
    CHECKF(strstr(out, "op profile") != NULL, "no table at exit: %s", out);
    CHECKF(calls_of(out, "matmul") == 3, "child matmul calls %ld, want 3", calls_of(out, "matmul"));
  }
  free(a), free(b), free(c);
  return test_finish();
}

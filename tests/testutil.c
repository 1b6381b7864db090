/* tests/testutil.c — see testutil.h. */
#include "tests/testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"

int g_test_failures, g_test_checks;
static char g_name[128] = "test";
static char g_outdir[1024];

void test_fail_msg(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "FAIL %s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
}

void test_begin(const char *name) {
  snprintf(g_name, sizeof g_name, "%s", name);
  log_init(name);
}

int test_finish(void) {
  printf("%s: %d checks, %d failures\n", g_name, g_test_checks, g_test_failures);
  return g_test_failures ? 1 : 0;
}

int test_skip(const char *why) {
  printf("%s: skipped: %s\n", g_name, why);
  return TEST_SKIP_CODE;
}

static void mkdir_p(const char *path) {
  char tmp[1024];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      mkdir(tmp, 0755);
      *p = '/';
    }
  mkdir(tmp, 0755);
}

const char *test_outdir(void) {
  if (!g_outdir[0]) {
    const char *env = getenv("TURBO_TEST_OUT");
    if (env && env[0])
      snprintf(g_outdir, sizeof g_outdir, "%s", env);
    else
      snprintf(g_outdir, sizeof g_outdir, "%s/test-out/%s",
               getenv("BUILD") ? getenv("BUILD") : "build", g_name);
    mkdir_p(g_outdir);
  }
  return g_outdir;
}

static int check_close_impl(const char *what, int64_t n, double atol, double rtol,
                            double (*get)(const void *, int64_t), const void *a, const void *ref) {
  int64_t bad = 0;
  double worst = 0;
  int64_t worst_i = -1;
  for (int64_t i = 0; i < n; i++) {
    double x = get(a, i), r = get(ref, i);
    double d = fabs(x - r), lim = atol + rtol * fabs(r);
    if (!(d <= lim)) { /* catches NaN too */
      if (bad < 5) fprintf(stderr, "  %s[%lld]: got %.9g want %.9g (diff %.3g > %.3g)\n", what,
                           (long long)i, x, r, d, lim);
      bad++;
      if (!(d <= worst)) {
        worst = d;
        worst_i = i;
      }
    }
  }
  g_test_checks++;
  if (bad) {
    g_test_failures++;
    fprintf(stderr, "FAIL %s: %lld of %lld elements differ (worst at %lld, |diff| %.3g)\n", what,
            (long long)bad, (long long)n, (long long)worst_i, worst);
    return 0;
  }
  return 1;
}

static double get_f32(const void *p, int64_t i) { return ((const float *)p)[i]; }
static double get_f64(const void *p, int64_t i) { return ((const double *)p)[i]; }

int check_close_f32(const char *what, const float *a, const float *ref, int64_t n, double atol,
                    double rtol) {
  return check_close_impl(what, n, atol, rtol, get_f32, a, ref);
}
int check_close_f64(const char *what, const double *a, const double *ref, int64_t n, double atol,
                    double rtol) {
  return check_close_impl(what, n, atol, rtol, get_f64, a, ref);
}

int check_nerr_f32(const char *what, const float *a, const float *ref, int64_t n, double tol) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)a[i] - (double)ref[i];
    num += d * d;
    den += (double)ref[i] * (double)ref[i];
  }
  double e = sqrt(num) / fmax(sqrt(den), 1e-30);
  g_test_checks++;
  if (!(e <= tol)) {
    g_test_failures++;
    fprintf(stderr, "FAIL %s: normalised error %.3g > %.3g\n", what, e, tol);
    check_close_impl(what, n < 5 ? n : 5, 0, 0, get_f32, a, ref); /* show first values */
    g_test_checks--, g_test_failures--;
    return 0;
  }
  return 1;
}

uint64_t test_rand_u64(uint64_t *s) {
  uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *s = x;
  return x;
}

float test_rand_uniform(uint64_t *s, float lo, float hi) {
  return lo + (hi - lo) * (float)((test_rand_u64(s) >> 40) * (1.0 / 16777216.0));
}

void test_fill_uniform(float *x, int64_t n, uint64_t seed, float lo, float hi) {
  uint64_t s = seed * 0x2545f4914f6cdd1dull + 1;
  for (int64_t i = 0; i < n; i++) x[i] = test_rand_uniform(&s, lo, hi);
}

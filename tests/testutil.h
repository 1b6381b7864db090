/* tests/testutil.h — what every C test uses: checks that count failures, closeness of arrays
 * with the first differing values printed, a per-test output folder, and skip.
 * A test's main() ends with `return test_finish();` (exit 1 on any failure, 77 when skipped). */
#ifndef TURBO_TESTUTIL_H
#define TURBO_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#define TEST_SKIP_CODE 77

extern int g_test_failures, g_test_checks;

#define CHECK(cond)                                                                        \
  do {                                                                                     \
    g_test_checks++;                                                                       \
    if (!(cond)) {                                                                         \
      g_test_failures++;                                                                   \
      test_fail_msg(__FILE__, __LINE__, "CHECK(%s)", #cond);                               \
    }                                                                                      \
  } while (0)
#define CHECKF(cond, ...)                                                                  \
  do {                                                                                     \
    g_test_checks++;                                                                       \
    if (!(cond)) {                                                                         \
      g_test_failures++;                                                                   \
      test_fail_msg(__FILE__, __LINE__, __VA_ARGS__);                                      \
    }                                                                                      \
  } while (0)

void test_fail_msg(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Starts a test: names it in the log, sets the stage name. */
void test_begin(const char *name);
/* Prints "name: N checks, N failures" and returns the exit code for main(). */
int test_finish(void);
/* Prints the reason and returns 77; use as `return test_skip("no GPU");`. */
int test_skip(const char *why);
/* A fresh folder for this test's outputs ($TURBO_TEST_OUT or build/test-out/NAME); returns a
 * path that stays valid for the process. */
const char *test_outdir(void);

/* |a-b| <= atol + rtol*|b| for every element (b is the reference). On failure prints the first
 * few differing values with their indices and counts one failure. Returns 1 when close. */
int check_close_f32(const char *what, const float *a, const float *ref, int64_t n, double atol,
                    double rtol);
int check_close_f64(const char *what, const double *a, const double *ref, int64_t n, double atol,
                    double rtol);
/* Normalised error ||a-b|| / max(||b||, tiny) <= tol (for large tensors). */
int check_nerr_f32(const char *what, const float *a, const float *ref, int64_t n, double tol);

/* Deterministic random numbers for tests (xorshift). */
uint64_t test_rand_u64(uint64_t *state);
float test_rand_uniform(uint64_t *state, float lo, float hi);
void test_fill_uniform(float *x, int64_t n, uint64_t seed, float lo, float hi);

#endif

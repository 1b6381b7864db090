/* kernels/ops.c — the dispatch layer: the backend tables, the current backend, thread settings,
 * and the public op_ functions (each forwards to the current backend's entry; the token and
 * head views are permutes expressed once here for every backend). */
#include "kernels/ops.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/tensor.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/device.h"

static const ops_backend *g_tables[OPS_NBACKENDS] = {&ops_cpu_ref_table, &ops_cpu_fast_table, NULL};
static ops_backend_id g_current = OPS_CPU_FAST;

const ops_backend *ops_backend_get(ops_backend_id id) {
  return (id >= 0 && id < OPS_NBACKENDS) ? g_tables[id] : NULL;
}

int ops_backend_set(ops_backend_id id) {
  if (id < 0 || id >= OPS_NBACKENDS) return err_set("ops: no backend %d", (int)id);
  if (!g_tables[id])
    return err_set("ops: backend %s is not present (build with CUDA and initialise it first)",
                   ops_backend_name(id));
  g_current = id;
  return TB_OK;
}

ops_backend_id ops_backend_current(void) { return g_current; }

const char *ops_backend_name(ops_backend_id id) {
  static const char *names[OPS_NBACKENDS] = {"cpu-ref", "cpu-fast", "cuda"};
  return (id >= 0 && id < OPS_NBACKENDS) ? names[id] : "?";
}

int ops_backend_register(ops_backend_id id, const ops_backend *table) {
  if (id < 0 || id >= OPS_NBACKENDS) return err_set("ops: cannot register backend %d", (int)id);
  g_tables[id] = table;
  return TB_OK;
}

/* Threads. An OpenMP thread count set on one thread (omp_set_num_threads) holds for that
 * thread's parallel regions only, so a count set on a service's main thread would not reach
 * the worker thread that runs its handlers. ops_set_num_threads therefore records the count
 * with a generation number, and every op call first checks that its thread has applied the
 * latest generation (one thread-local compare per call), applying it when not. */
static int g_threads_n;
static _Atomic int g_threads_gen;
static _Thread_local int tl_threads_gen;

static void threads_apply(int n) {
  for (int i = 0; i < OPS_NBACKENDS; i++)
    if (g_tables[i] && g_tables[i]->set_num_threads) g_tables[i]->set_num_threads(n);
}

void ops_set_num_threads(int n) {
  g_threads_n = n;
  threads_apply(n);
  tl_threads_gen = ++g_threads_gen;
}

static inline void threads_sync(void) {
  int gen = g_threads_gen;
  if (__builtin_expect(tl_threads_gen != gen, 0)) {
    tl_threads_gen = gen;
    threads_apply(g_threads_n);
  }
}

int ops_get_num_threads(void) { return cpu_fast_threads(); }

/* Deliberately no threads_sync here: this reports what the thread's last op applied. */
int ops_threads_here(void) { return cpu_fast_threads_here(); }

static void ops_unsupported(const char *op) {
  tb_check_failed("entry != NULL", __FILE__, __LINE__, "op_%s is not supported by backend %s", op,
                  ops_backend_name(g_current));
}

/* ---- op profile ------------------------------------------------------------------------------ */

enum { PROFILE_MAX_OPS = 128 };
typedef struct {
  const char *name;
  int64_t calls;
  double seconds;
} profile_row;
static int g_profile = -1; /* -1: environment not read yet */
static profile_row g_prof[PROFILE_MAX_OPS];
static int g_prof_n;
static pthread_mutex_t g_prof_lock = PTHREAD_MUTEX_INITIALIZER;

static void profile_atexit(void) { ops_profile_report(stderr); }

static int profile_on(void) {
  if (g_profile < 0) {
    const char *e = getenv("TURBO_OPS_PROFILE");
    ops_profile_enable(e && *e && strcmp(e, "0") != 0);
  }
  return g_profile;
}

void ops_profile_enable(int on) {
  static int registered;
  pthread_mutex_lock(&g_prof_lock);
  g_profile = on ? 1 : 0;
  if (on && !registered) registered = 1, atexit(profile_atexit);
  pthread_mutex_unlock(&g_prof_lock);
}

int ops_profile_enabled(void) { return profile_on(); }

void ops_profile_reset(void) {
  pthread_mutex_lock(&g_prof_lock);
  for (int i = 0; i < g_prof_n; i++) g_prof[i].calls = 0, g_prof[i].seconds = 0;
  pthread_mutex_unlock(&g_prof_lock);
}

/* the row of one call site's op, found once per site */
static int profile_slot(const char *name) {
  pthread_mutex_lock(&g_prof_lock);
  int i = 0;
  while (i < g_prof_n && strcmp(g_prof[i].name, name) != 0) i++;
  if (i == g_prof_n && g_prof_n < PROFILE_MAX_OPS) g_prof[g_prof_n++].name = name;
  pthread_mutex_unlock(&g_prof_lock);
  return i < PROFILE_MAX_OPS ? i : -1;
}

static double profile_begin(void) {
  if (g_tables[g_current]->mem_alloc) device_sync();
  return time_now();
}

static void profile_end(int *slot, const char *name, double t0) {
  if (g_tables[g_current]->mem_alloc) device_sync();
  double dt = time_now() - t0;
  if (*slot < 0) *slot = profile_slot(name);
  if (*slot < 0) return;
  pthread_mutex_lock(&g_prof_lock);
  g_prof[*slot].calls++;
  g_prof[*slot].seconds += dt;
  pthread_mutex_unlock(&g_prof_lock);
}

static int profile_cmp(const void *a, const void *b) {
  double x = ((const profile_row *)a)->seconds, y = ((const profile_row *)b)->seconds;
  return (x < y) - (x > y);
}

void ops_profile_report(FILE *f) {
  pthread_mutex_lock(&g_prof_lock);
  profile_row rows[PROFILE_MAX_OPS];
  int n = 0;
  double total = 0;
  for (int i = 0; i < g_prof_n; i++)
    if (g_prof[i].calls) rows[n++] = g_prof[i], total += g_prof[i].seconds;
  pthread_mutex_unlock(&g_prof_lock);
  if (n == 0) return;
  qsort(rows, (size_t)n, sizeof rows[0], profile_cmp);
  fprintf(f, "op profile (%s backend): %.1f ms in op_ calls\n", ops_backend_name(g_current),
          total * 1e3);
  fprintf(f, "  %-28s %10s %12s %10s %7s\n", "op", "calls", "total ms", "us/call", "share");
  for (int i = 0; i < n; i++)
    fprintf(f, "  %-28s %10lld %12.2f %10.1f %6.1f%%\n", rows[i].name, (long long)rows[i].calls,
            rows[i].seconds * 1e3, rows[i].seconds * 1e6 / (double)rows[i].calls,
            total > 0 ? 100.0 * rows[i].seconds / total : 0.0);
}

#define OPS_CALL(name, args)                                   \
  do {                                                        \
    const ops_backend *be_ = g_tables[g_current];             \
    if (!be_->name) ops_unsupported(#name);                   \
    threads_sync();                                           \
    if (__builtin_expect(g_profile != 0, 0) && profile_on()) { \
      static int slot_ = -1;                                  \
      double t0_ = profile_begin();                           \
      be_->name args;                                 \
      profile_end(&slot_, #name, t0_);                        \
    } else {                                                  \
      be_->name args;                                 \
    }                                                         \
  } while (0)

/* ---- forwarding: one dispatcher per entry of kernels/ops_list.h ---------------------------- */

#define OP(name, params, args) \
  void op_##name params { OPS_CALL(name, args); }
#include "kernels/ops_list.h"
#undef OP

/* ---- views built on the permute -------------------------------------------------------------- */

void op_video_to_spatial_tokens(float *out, const float *inp, int B, int T, int C, int S) {
  int shape[3] = {B * T, C, S}, perm[3] = {0, 2, 1};
  op_permute_fwd(out, inp, 3, shape, perm);
}
void op_video_to_spatial_tokens_bwd(float *dinp, const float *dout, int B, int T, int C, int S) {
  int shape[3] = {B * T, C, S}, perm[3] = {0, 2, 1};
  op_permute_bwd(dinp, dout, 3, shape, perm);
}
void op_spatial_tokens_to_video(float *out, const float *inp, int B, int T, int C, int S) {
  int shape[3] = {B * T, S, C}, perm[3] = {0, 2, 1};
  op_permute_fwd(out, inp, 3, shape, perm);
}
void op_spatial_tokens_to_video_bwd(float *dinp, const float *dout, int B, int T, int C, int S) {
  int shape[3] = {B * T, S, C}, perm[3] = {0, 2, 1};
  op_permute_bwd(dinp, dout, 3, shape, perm);
}
// (B, T, C, S) -> (B, S, T, C)
void op_video_to_temporal_tokens(float *out, const float *inp, int B, int T, int C, int S) {
  int shape[4] = {B, T, C, S}, perm[4] = {0, 3, 1, 2};
  op_permute_fwd(out, inp, 4, shape, perm);
}
void op_video_to_temporal_tokens_bwd(float *dinp, const float *dout, int B, int T, int C, int S) {
  int shape[4] = {B, T, C, S}, perm[4] = {0, 3, 1, 2};
  op_permute_bwd(dinp, dout, 4, shape, perm);
}
// (B, S, T, C) -> (B, T, C, S)
void op_temporal_tokens_to_video(float *out, const float *inp, int B, int T, int C, int S) {
  int shape[4] = {B, S, T, C}, perm[4] = {0, 2, 3, 1};
  op_permute_fwd(out, inp, 4, shape, perm);
}
void op_temporal_tokens_to_video_bwd(float *dinp, const float *dout, int B, int T, int C, int S) {
  int shape[4] = {B, S, T, C}, perm[4] = {0, 2, 3, 1};
  op_permute_bwd(dinp, dout, 4, shape, perm);
}
void op_context_repeat(float *out, const float *inp, int B, int T, int L, int C) {
  op_repeat_fwd(out, inp, B, T, (int64_t)L * C);
}
void op_context_repeat_bwd(float *dinp, const float *dout, int B, int T, int L, int C) {
  op_repeat_bwd(dinp, dout, B, T, (int64_t)L * C);
}
// (B, N, H, D) -> (B, H, N, D)
void op_heads_split(float *out, const float *inp, int B, int N, int H, int D) {
  int shape[4] = {B, N, H, D}, perm[4] = {0, 2, 1, 3};
  op_permute_fwd(out, inp, 4, shape, perm);
}
void op_heads_split_bwd(float *dinp, const float *dout, int B, int N, int H, int D) {
  int shape[4] = {B, N, H, D}, perm[4] = {0, 2, 1, 3};
  op_permute_bwd(dinp, dout, 4, shape, perm);
}
void op_heads_merge(float *out, const float *inp, int B, int N, int H, int D) {
  int shape[4] = {B, H, N, D}, perm[4] = {0, 2, 1, 3};
  op_permute_fwd(out, inp, 4, shape, perm);
}
void op_heads_merge_bwd(float *dinp, const float *dout, int B, int N, int H, int D) {
  int shape[4] = {B, H, N, D}, perm[4] = {0, 2, 1, 3};
  op_permute_bwd(dinp, dout, 4, shape, perm);
}

/* ---- host-side random draws -------------------------------------------------------------------
 */

/* splitmix64 of (seed, index): a counter-based generator, so element i's draw does not depend on
 * the order or the thread that computes it; 24 high bits give a float in [0, 1). */
float op_rand_uniform(uint64_t seed, uint64_t index) {
  uint64_t z = hash_mix64(seed * 0xD1B54A32D192ED03ull + (index + 1) * 0x9E3779B97F4A7C15ull);
  return (float)(z >> 40) * (1.0f / 16777216.0f);
}

void op_cond_drop_mask(uint8_t *keep, int B, float p, uint64_t seed) {
  for (int b = 0; b < B; b++) keep[b] = !(p > 0.0f && op_rand_uniform(seed, (uint64_t)b) < p);
}

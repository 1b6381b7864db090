/* kernels/device.c — device selection, memory, streams, the arena, and the data-parallel
 * wrapper (kernels/dp.h). The CUDA work itself lives in kernels/cuda (cuda_api.h); without
 * CUDA in the build every function takes its CPU branch. */
#include "kernels/device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/dp.h"
#include "kernels/ops.h"
#ifdef TURBO_HAVE_CUDA
#include "kernels/cuda/cuda_api.h"
#endif

static device_t g_dev = DEVICE_CPU;
static int g_index = -1;
static int g_inited = 0;
static device_compute_mode g_mode = DEVICE_F32;
static char g_desc[256] = "cpu";

#ifdef TURBO_HAVE_CUDA
#define ON_GPU (g_dev == DEVICE_CUDA)
#else
#define ON_GPU 0
#endif

int device_cuda_built(void) {
#ifdef TURBO_HAVE_CUDA
  return 1;
#else
  return 0;
#endif
}

/* "cuda:3" → 3; "cuda" → -1 (default); TB_ERR on junk */
static int parse_index(const char *s, int *idx) {
  *idx = -1;
  if (s[4] == '\0') return TB_OK;
  if (s[4] != ':' || !s[5]) return TB_ERR;
  char *end = NULL;
  long v = strtol(s + 5, &end, 10);
  if (*end || v < 0 || v > 1024) return TB_ERR;
  *idx = (int)v;
  return TB_OK;
}

static void set_cpu(const char *why) {
  g_dev = DEVICE_CPU;
  g_index = -1;
  snprintf(g_desc, sizeof g_desc, "cpu");
  log_info("device: cpu%s%s", why ? " — " : "", why ? why : "");
}

int device_init(const char *spec) {
  if (!spec || !*spec) spec = getenv("TURBO_DEVICE");
  if (!spec || !*spec) spec = "auto";
  int want_cuda, idx = -1;
  if (!strcmp(spec, "cpu")) {
    want_cuda = 0;
  } else if (!strcmp(spec, "auto")) {
    want_cuda = -1; /* if present */
  } else if (!strncmp(spec, "cuda", 4) && parse_index(spec, &idx) == TB_OK) {
    want_cuda = 1;
  } else {
    return err_set("device: unknown device '%s' (use auto, cpu, cuda or cuda:N)", spec);
  }
  if (idx < 0) { /* data-parallel runs put rank r on its local GPU */
    int rank = 0, world = 1, local = 0;
    if (dp_env(&rank, &world, &local) == TB_OK && world > 1) idx = local;
  }
  const char *mode = getenv("TURBO_COMPUTE");
  if (mode && *mode) {
    if (!strcmp(mode, "f32")) g_mode = DEVICE_F32;
    else if (!strcmp(mode, "tf32")) g_mode = DEVICE_TF32;
    else if (!strcmp(mode, "bf16")) g_mode = DEVICE_BF16;
    else return err_set("device: TURBO_COMPUTE='%s' (use f32, tf32 or bf16)", mode);
  }
  g_inited = 1;
  if (want_cuda == 0) {
    set_cpu(NULL);
    return TB_OK;
  }
#ifdef TURBO_HAVE_CUDA
  int n = cuda_device_count();
  if (n <= 0) {
    char cause[160]; /* err_get's buffer is rewritten by err_set: copy it first */
    snprintf(cause, sizeof cause, "%s", *err_get() ? err_get() : "none visible");
    if (want_cuda == 1)
      return err_set("device: '%s' asked for, but no CUDA device is usable: %s (use --device "
                     "cpu or TURBO_DEVICE=cpu)", spec, cause);
    char why[256];
    snprintf(why, sizeof why, "no CUDA device present (%s); running on the CPU", cause);
    err_clear();
    set_cpu(why);
    return TB_OK;
  }
  if (idx < 0) idx = 0;
  if (idx >= n)
    return err_set("device: cuda:%d asked for, but only %d GPU%s visible", idx, n,
                   n == 1 ? " is" : "s are");
  char desc[200];
  if (cuda_open(idx, desc, sizeof desc) != TB_OK) {
    if (want_cuda == 1) return err_wrap("device: %s", spec);
    char why[300], cause[200];
    snprintf(cause, sizeof cause, "%s", err_get());
    snprintf(why, sizeof why, "cuda:%d unusable (%s); running on the CPU", idx, cause);
    err_clear();
    set_cpu(why);
    return TB_OK;
  }
  if (cuda_backend_init() != TB_OK || ops_backend_set(OPS_CUDA) != TB_OK) return TB_ERR;
  cuda_set_compute((int)g_mode);
  g_dev = DEVICE_CUDA;
  g_index = idx;
  snprintf(g_desc, sizeof g_desc, "cuda:%d %s", idx, desc);
  static const char *mn[] = {"f32", "tf32", "bf16"};
  log_info("device: %s, compute %s", g_desc, mn[g_mode]);
  return TB_OK;
#else
  if (want_cuda == 1)
    return err_set("device: '%s' asked for, but this binary was built without CUDA (rebuild "
                   "with nvcc present, or use --device cpu)", spec);
  set_cpu("built without CUDA");
  return TB_OK;
#endif
}

void device_shutdown(void) {
#ifdef TURBO_HAVE_CUDA
  if (g_dev == DEVICE_CUDA) {
    if (ops_backend_current() == OPS_CUDA) ops_backend_set(OPS_CPU_FAST);
    ops_backend_register(OPS_CUDA, NULL);
    cuda_close();
  }
#endif
  g_dev = DEVICE_CPU;
  g_index = -1;
  g_inited = 0;
  snprintf(g_desc, sizeof g_desc, "cpu");
}

device_t device_current(void) { return g_dev; }
int device_index(void) { return g_index; }
const char *device_describe(void) { return g_desc; }
int device_is_cuda(void) { return g_dev == DEVICE_CUDA; }

void device_set_compute(device_compute_mode mode) {
  g_mode = mode;
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU) cuda_set_compute((int)mode);
#endif
}
device_compute_mode device_get_compute(void) { return g_mode; }

/* ---- memory --------------------------------------------------------------------------------- */

void *device_malloc(size_t bytes) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU) return cuda_malloc(bytes);
#endif
  return aligned_alloc_zero(bytes ? bytes : 1);
}

int device_malloc_try(void **p, size_t bytes) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU) return cuda_malloc_try(p, bytes);
#endif
  *p = aligned_alloc_zero(bytes ? bytes : 1);
  return TB_OK;
}

void device_free(void *p) {
  if (!p) return;
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU) {
    cuda_free(p);
    return;
  }
#endif
  aligned_free(p);
}

#ifdef TURBO_HAVE_CUDA
#define COPY(kind)                                                                         \
  if (ON_GPU) {                                                                            \
    cuda_memcpy(dst, src, bytes, kind);                                                    \
    return;                                                                                \
  }
#else
#define COPY(kind)
#endif
void device_memcpy_h2d(void *dst, const void *src, size_t bytes) {
  COPY(CUDA_COPY_H2D);
  if (bytes) memcpy(dst, src, bytes);
}
void device_memcpy_d2h(void *dst, const void *src, size_t bytes) {
  COPY(CUDA_COPY_D2H);
  if (bytes) memcpy(dst, src, bytes);
}
void device_memcpy_d2d(void *dst, const void *src, size_t bytes) {
  COPY(CUDA_COPY_D2D);
  if (bytes) memmove(dst, src, bytes);
}

void device_memset(void *p, int value, size_t bytes) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU) {
    cuda_memset(p, value, bytes);
    return;
  }
#endif
  if (bytes) memset(p, value, bytes);
}

void device_sync(void) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU) cuda_sync();
#endif
}

void device_mem_info(size_t *free_bytes, size_t *total_bytes) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU) {
    cuda_mem_info(free_bytes, total_bytes);
    return;
  }
#endif
  if (free_bytes) *free_bytes = 0;
  if (total_bytes) *total_bytes = 0;
}

void *device_host_alloc(size_t bytes) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU) return cuda_host_alloc(bytes);
#endif
  return aligned_alloc_zero(bytes ? bytes : 1);
}

void device_host_free(void *p) {
  if (!p) return;
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU) {
    cuda_host_free(p);
    return;
  }
#endif
  aligned_free(p);
}

/* ---- streams and events ------------------------------------------------------------------- */

device_stream device_stream_compute(void) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU) return (device_stream)cuda_stream_compute();
#endif
  return NULL;
}
device_stream device_stream_copy(void) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU) return (device_stream)cuda_stream_copy();
#endif
  return NULL;
}
void device_stream_sync(device_stream s) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU) cuda_stream_sync(s);
#endif
  (void)s;
}
void device_memcpy_h2d_async(void *dst, const void *src, size_t bytes, device_stream s) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU) {
    cuda_memcpy_async(dst, src, bytes, CUDA_COPY_H2D, s);
    return;
  }
#endif
  (void)s;
  if (bytes) memcpy(dst, src, bytes);
}
void device_memcpy_d2h_async(void *dst, const void *src, size_t bytes, device_stream s) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU) {
    cuda_memcpy_async(dst, src, bytes, CUDA_COPY_D2H, s);
    return;
  }
#endif
  (void)s;
  if (bytes) memcpy(dst, src, bytes);
}
device_event device_event_new(void) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU) return (device_event)cuda_event_new();
#endif
  return NULL;
}
void device_event_free(device_event e) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU && e) cuda_event_free(e);
#endif
  (void)e;
}
void device_event_record(device_event e, device_stream s) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU && e) cuda_event_record(e, s);
#endif
  (void)e, (void)s;
}
void device_stream_wait(device_stream s, device_event e) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU && e) cuda_stream_wait_event(s, e);
#endif
  (void)e, (void)s;
}
void device_event_sync(device_event e) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU && e) cuda_event_sync(e);
#endif
  (void)e;
}
float device_event_ms(device_event start, device_event end) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU && start && end) return cuda_event_elapsed_ms(start, end);
#endif
  (void)start, (void)end;
  return 0.0f;
}

/* ---- arena ---------------------------------------------------------------------------------- */

struct device_arena {
  char *base;
  size_t cap, used, high;
};

#define ARENA_ALIGN 256 /* bytes: cuBLAS and vector loads like 256-byte aligned operands */

int device_arena_new(device_arena **out, size_t capacity) {
  *out = NULL;
  void *p = NULL;
  if (device_malloc_try(&p, capacity) != TB_OK)
    return err_wrap("device arena of %zu MiB", capacity >> 20);
  device_arena *a = xcalloc(1, sizeof *a);
  a->base = p;
  a->cap = capacity;
  *out = a;
  return TB_OK;
}

void *device_arena_alloc(device_arena *a, size_t bytes) {
  size_t off = (a->used + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
  if (off > a->cap || bytes > a->cap - off) {
    err_set("device arena full: %zu bytes asked, %zu of %zu used (make the arena larger)", bytes,
            a->used, a->cap);
    return NULL;
  }
  a->used = off + bytes;
  if (a->used > a->high) a->high = a->used;
  return a->base + off;
}

void device_arena_reset(device_arena *a) { a->used = 0; }
size_t device_arena_used(const device_arena *a) { return a->used; }
size_t device_arena_high_water(const device_arena *a) { return a->high; }
size_t device_arena_capacity(const device_arena *a) { return a->cap; }
void device_arena_free(device_arena *a) {
  if (!a) return;
  device_free(a->base);
  free(a);
}

/* ---- bf16 ------------------------------------------------------------------------------------- */

int device_f32_to_bf16(uint16_t *dst, const float *src, int64_t n) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU) {
    cuda_f32_to_bf16(dst, src, n);
    return TB_OK;
  }
#endif
  (void)dst, (void)src, (void)n;
  return err_set("device_f32_to_bf16: needs a GPU (use convert_f32_to_bf16 on the CPU)");
}

int device_gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const uint16_t *A,
                     const uint16_t *B, float beta, float *C) {
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU) {
    cuda_gemm_bf16(transA, transB, M, N, K, alpha, A, B, beta, C);
    return TB_OK;
  }
#endif
  (void)transA, (void)transB, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)B;
  (void)beta, (void)C;
  return err_set("device_gemm_bf16: needs a GPU");
}

/* ---- data parallelism (kernels/dp.h) ----------------------------------------------------- */

static int g_dp_rank = 0, g_dp_world = 1, g_dp_on = 0;

static int env_int(const char *name, int def, int *out) {
  const char *s = getenv(name);
  if (!s || !*s) {
    *out = def;
    return TB_OK;
  }
  char *end = NULL;
  long v = strtol(s, &end, 10);
  if (*end || v < 0 || v > 1000000) return err_set("dp: %s='%s' is not a count", name, s);
  *out = (int)v;
  return TB_OK;
}

int dp_env(int *rank, int *world, int *local_rank) {
  int r, w, l;
  if (env_int("TURBO_RANK", 0, &r) || env_int("TURBO_WORLD_SIZE", 1, &w)) return TB_ERR;
  if (env_int("TURBO_LOCAL_RANK", r, &l)) return TB_ERR;
  if (w < 1) return err_set("dp: TURBO_WORLD_SIZE must be at least 1");
  if (r >= w) return err_set("dp: TURBO_RANK=%d but TURBO_WORLD_SIZE=%d", r, w);
  *rank = r, *world = w, *local_rank = l;
  return TB_OK;
}

int dp_init(void) {
  int r, w, l;
  if (dp_env(&r, &w, &l)) return TB_ERR;
  g_dp_rank = r, g_dp_world = w;
  if (w == 1) return TB_OK;
  if (!g_inited) return err_set("dp: call device_init before dp_init");
#ifdef TURBO_HAVE_CUDA
  if (ON_GPU) {
    if (!cuda_dp_available())
      return err_set("dp: world size %d needs NCCL, and this build has none (install NCCL and "
                     "rebuild)", w);
    const char *f = getenv("TURBO_NCCL_ID_FILE");
    const char *t = getenv("TURBO_NCCL_TIMEOUT");
    double timeout = t && atof(t) > 0 ? atof(t) : 120.0;
    if (cuda_dp_init(r, w, f, timeout)) return TB_ERR;
    g_dp_on = 1;
    log_info("dp: rank %d of %d on %s", r, w, g_desc);
    return TB_OK;
  }
#endif
  return err_set("dp: world size %d needs one GPU per process and NCCL; this process runs on "
                 "the CPU%s (multi-process CPU training is not supported)", w,
                 device_cuda_built() ? "" : " (built without CUDA)");
}

int dp_rank(void) { return g_dp_rank; }
int dp_world(void) { return g_dp_world; }

int dp_allreduce_mean(float *g, int64_t n) {
  if (g_dp_world == 1) return TB_OK;
#ifdef TURBO_HAVE_CUDA
  if (g_dp_on) return cuda_dp_allreduce_mean(g, n);
#endif
  (void)g, (void)n;
  return err_set("dp: not initialised (call dp_init)");
}

int dp_broadcast(float *x, int64_t n, int root) {
  if (g_dp_world == 1) return TB_OK;
#ifdef TURBO_HAVE_CUDA
  if (g_dp_on) return cuda_dp_broadcast(x, n, root);
#endif
  (void)x, (void)n, (void)root;
  return err_set("dp: not initialised (call dp_init)");
}

void dp_shutdown(void) {
#ifdef TURBO_HAVE_CUDA
  if (g_dp_on) cuda_dp_shutdown();
#endif
  g_dp_on = 0;
  g_dp_world = 1;
  g_dp_rank = 0;
}

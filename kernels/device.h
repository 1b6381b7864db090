/* kernels/device.h — where the numbers live: device selection (CPU or one CUDA GPU), device
 * memory and copies, pinned host buffers, streams and events, a bump-allocated device arena,
 * and the compute mode of the GEMM-heavy ops (f32, TF32, bf16).
 *
 * Selection: device_init(spec) with spec "auto" | "cpu" | "cuda" | "cuda:N"; NULL or "" reads
 * $TURBO_DEVICE (default "auto"). A stage passes its --device option straight through. "auto"
 * picks GPU 0 (or TURBO_LOCAL_RANK's GPU in a data-parallel run) when one is present and the
 * CPU otherwise, saying which in one I: line; "cuda" fails with a clear message when no GPU is
 * usable. On a GPU, the OPS_CUDA table is registered and made current; on the CPU the current
 * ops backend is left as it is (cpu-fast by default).
 *
 * Every function below works for either device, so callers write device-agnostic code: on the
 * CPU, device memory is 64-byte aligned host memory, copies are memcpy, streams and events are
 * NULL and no-ops. Float pointers handed to op_xxx must live on the current device.
 *
 * Errors: int functions return TB_OK / TB_ERR with err_get() explaining. device_malloc aborts
 * when memory runs out (start-up sized allocations); device_malloc_try does not.
 */
#ifndef TURBO_DEVICE_H
#define TURBO_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "common/tensor.h" /* device_t: DEVICE_CPU, DEVICE_CUDA */

#ifdef __cplusplus
extern "C" {
#endif

int device_init(const char *spec);
void device_shutdown(void);
device_t device_current(void);
int device_index(void);              /* GPU index, -1 on the CPU */
const char *device_describe(void);   /* "cuda:0 NVIDIA H100 … " or "cpu (…)" */
int device_is_cuda(void);
/* 1 when this binary was built with the CUDA backend (it may still run on the CPU). */
int device_cuda_built(void);

/* Compute mode of the GEMM-heavy ops (matmul, linear, convolutions, attention) on a GPU:
 * DEVICE_F32 (the reference-comparison path: no TF32), DEVICE_TF32, or DEVICE_BF16 (inputs
 * rounded to bf16, f32 accumulation and f32 outputs; weights stay f32 masters). Ignored on the
 * CPU. Also settable with TURBO_COMPUTE=f32|tf32|bf16 at device_init. */
typedef enum { DEVICE_F32 = 0, DEVICE_TF32 = 1, DEVICE_BF16 = 2 } device_compute_mode;
void device_set_compute(device_compute_mode mode);
device_compute_mode device_get_compute(void);

/* ---- memory (on the current device) ---- */
void *device_malloc(size_t bytes);
int device_malloc_try(void **p, size_t bytes);
void device_free(void *p);
void device_memcpy_h2d(void *dst, const void *src, size_t bytes);
void device_memcpy_d2h(void *dst, const void *src, size_t bytes);
void device_memcpy_d2d(void *dst, const void *src, size_t bytes);
void device_memset(void *p, int value, size_t bytes);
void device_sync(void); /* waits for all work on the device */
/* Free and total device memory (host: 0, 0). */
void device_mem_info(size_t *free_bytes, size_t *total_bytes);

/* Pinned host memory for fast (and overlappable) transfers; plain aligned memory on the CPU. */
void *device_host_alloc(size_t bytes);
void device_host_free(void *p);

/* ---- streams and events ----
 * Two streams: compute (every op runs there) and copy (uploads of the next batch). The usual
 * overlap: record an event on the copy stream after the upload, make the compute stream wait
 * for it before the step that reads the batch. */
typedef struct device_stream_s *device_stream;
typedef struct device_event_s *device_event;
device_stream device_stream_compute(void);
device_stream device_stream_copy(void);
void device_stream_sync(device_stream s);
void device_memcpy_h2d_async(void *dst, const void *src, size_t bytes, device_stream s);
void device_memcpy_d2h_async(void *dst, const void *src, size_t bytes, device_stream s);
device_event device_event_new(void);
void device_event_free(device_event e);
void device_event_record(device_event e, device_stream s);
void device_stream_wait(device_stream s, device_event e);
void device_event_sync(device_event e);
/* Milliseconds between two recorded events (GPU timing); 0 on the CPU. */
float device_event_ms(device_event start, device_event end);

/* ---- arena: one allocation, bump allocation, reset; no allocation in the training loop ---- */
typedef struct device_arena device_arena;
/* TB_ERR (err_get) when the capacity cannot be allocated. */
int device_arena_new(device_arena **out, size_t capacity);
/* 256-byte aligned; NULL (and err_set) when the arena is full. */
void *device_arena_alloc(device_arena *a, size_t bytes);
void device_arena_reset(device_arena *a);
size_t device_arena_used(const device_arena *a);
size_t device_arena_high_water(const device_arena *a);
size_t device_arena_capacity(const device_arena *a);
void device_arena_free(device_arena *a);

/* ---- bf16 on the device (GPU only; TB_ERR on the CPU) ---- */
int device_f32_to_bf16(uint16_t *dst, const float *src, int64_t n);
/* Row-major C (M, N) = alpha op(A) op(B) + beta C, A and B bf16, C f32, f32 accumulation. */
int device_gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const uint16_t *A,
                     const uint16_t *B, float beta, float *C);

#ifdef __cplusplus
}
#endif
#endif

/* kernels/cuda/cuda_api.h — the C-callable surface of the CUDA side (the .cu files of kernels/cuda), used
 * by kernels/device.c and kernels/dp.h's implementation. Only compiled-in when TURBO_HAVE_CUDA;
 * callers guard with #ifdef TURBO_HAVE_CUDA. No CUDA header is needed to include this file:
 * streams and events are opaque pointers (cudaStream_t / cudaEvent_t underneath).
 *
 * Errors: functions returning int give TB_OK / TB_ERR with err_get() explaining; CUDA failures
 * that cannot be recovered (a kernel launch, a copy between valid buffers) abort with file:line.
 */
#ifndef TURBO_CUDA_API_H
#define TURBO_CUDA_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable GPUs; 0 (and err_get() says why) when the driver or devices are missing. */
int cuda_device_count(void);
/* Opens device `index`: streams (compute, copy), cuBLAS handle and workspace, op scratch.
 * desc receives "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)". TB_ERR when it cannot. */
int cuda_open(int index, char *desc, size_t desc_len);
void cuda_close(void);
/* Registers the OPS_CUDA table with kernels/ops.c (after cuda_open). */
int cuda_backend_init(void);

/* Memory. cuda_malloc aborts on failure (start-up sized); cuda_malloc_try returns TB_ERR. */
void *cuda_malloc(size_t bytes);
int cuda_malloc_try(void **p, size_t bytes);
void cuda_free(void *p);
enum { CUDA_COPY_H2D = 0, CUDA_COPY_D2H = 1, CUDA_COPY_D2D = 2 };
/* Synchronous copy (orders after the compute stream's work: the compute stream is synced). */
void cuda_memcpy(void *dst, const void *src, size_t bytes, int kind);
/* Asynchronous copy on `stream` (NULL: the copy stream). Host memory must be pinned for true
 * overlap (cuda_host_alloc). */
void cuda_memcpy_async(void *dst, const void *src, size_t bytes, int kind, void *stream);
void cuda_memset(void *p, int value, size_t bytes); /* on the compute stream */
void cuda_sync(void);                               /* whole device */
void *cuda_host_alloc(size_t bytes);                /* pinned; aborts on failure */
void cuda_host_free(void *p);
void cuda_mem_info(size_t *free_bytes, size_t *total_bytes);

/* Streams and events. */
void *cuda_stream_compute(void);
void *cuda_stream_copy(void);
void cuda_stream_sync(void *stream);
void *cuda_event_new(void);
void cuda_event_free(void *ev);
void cuda_event_record(void *ev, void *stream);
void cuda_stream_wait_event(void *stream, void *ev);
void cuda_event_sync(void *ev);
float cuda_event_elapsed_ms(void *start, void *end);

/* Compute mode for the GEMM-heavy ops: 0 f32 (no TF32), 1 TF32, 2 bf16 inputs with f32
 * accumulation (values of device_compute_mode in kernels/device.h). */
void cuda_set_compute(int mode);
int cuda_get_compute(void);
/* Op scratch: capacity and the most ever in use (bytes). */
size_t cuda_scratch_capacity(void);
size_t cuda_scratch_high_water(void);

/* bf16 helpers (dst/src are device pointers; bf16 stored as uint16_t). */
void cuda_f32_to_bf16(uint16_t *dst, const float *src, int64_t n);
void cuda_bf16_to_f32(float *dst, const uint16_t *src, int64_t n);
/* Row-major C (M, N) = alpha op(A) op(B) + beta C with bf16 A, B and f32 C, f32 accumulation
 * (same transpose convention as op_matmul). */
void cuda_gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const uint16_t *A,
                    const uint16_t *B, float beta, float *C);

/* Data parallelism (NCCL). cuda_dp_available: 1 when built with NCCL. */
int cuda_dp_available(void);
int cuda_dp_init(int rank, int world, const char *id_file, double timeout_s);
/* In-place average over ranks of x (n floats, device memory), on the compute stream. */
int cuda_dp_allreduce_mean(float *x, int64_t n);
int cuda_dp_broadcast(float *x, int64_t n, int root);
void cuda_dp_shutdown(void);

#ifdef __cplusplus
}
#endif
#endif

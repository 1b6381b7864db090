/* kernels/cuda/runtime.cu — the CUDA context: device, streams (compute + copy), cuBLAS handle,
 * memory, pinned host buffers, events, the op scratch stack and the compute mode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.cuh"

cu_context g_cu;

#define BLAS_WS_BYTES (32u << 20)        /* cuBLAS workspace: 32 MiB is enough for sm_90 GEMMs */
#define SCRATCH_DEFAULT_MB 1024          /* op scratch; TURBO_CUDA_SCRATCH_MB overrides */

extern "C" int cuda_device_count(void) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError(); /* clear the sticky-free error so later calls start clean */
    err_set("%s", cudaGetErrorString(e));
    return 0;
  }
  if (n == 0) err_set("the driver reports 0 GPUs");
  return n;
}

extern "C" int cuda_open(int index, char *desc, size_t desc_len) {
  if (g_cu.open) {
    if (g_cu.dev == index) return TB_OK;
    return err_set("cuda: device %d is already open (asked for %d)", g_cu.dev, index);
  }
  int n = cuda_device_count();
  if (n <= 0) return TB_ERR;
  if (index < 0 || index >= n)
    return err_set("cuda: device %d does not exist (%d visible; TURBO_DEVICE=cuda:0..%d)", index,
                   n, n - 1);
  cudaError_t e = cudaSetDevice(index);
  if (e != cudaSuccess) return err_set("cuda: cannot use device %d: %s", index, cudaGetErrorString(e));
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  memset(&g_cu, 0, sizeof g_cu);
  g_cu.dev = index;
  g_cu.sm_count = prop.multiProcessorCount;
  CUDA_CHECK(cudaStreamCreateWithFlags(&g_cu.compute, cudaStreamNonBlocking));
  CUDA_CHECK(cudaStreamCreateWithFlags(&g_cu.copy, cudaStreamNonBlocking));
  if (cublasCreate(&g_cu.blas) != CUBLAS_STATUS_SUCCESS)
    return err_set("cuda: cuBLAS initialisation failed on device %d", index);
  CUBLAS_CHECK(cublasSetStream(g_cu.blas, g_cu.compute));
  CUBLAS_CHECK(cublasSetMathMode(g_cu.blas, CUBLAS_DEFAULT_MATH)); /* no TF32 in f32 mode */
  g_cu.blas_ws_bytes = BLAS_WS_BYTES;
  CUDA_CHECK(cudaMalloc(&g_cu.blas_ws, g_cu.blas_ws_bytes));
  CUBLAS_CHECK(cublasSetWorkspace(g_cu.blas, g_cu.blas_ws, g_cu.blas_ws_bytes));

  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  size_t mb = SCRATCH_DEFAULT_MB;
  const char *env = getenv("TURBO_CUDA_SCRATCH_MB");
  if (env && atol(env) > 0) mb = (size_t)atol(env);
  size_t want = mb << 20;
  if (want > free_b / 4) want = free_b / 4; /* never more than a quarter of what is free */
  e = cudaMalloc((void **)&g_cu.scratch, want);
  if (e != cudaSuccess)
    return err_set("cuda: cannot allocate %zu MiB of op scratch: %s", want >> 20,
                   cudaGetErrorString(e));
  g_cu.scratch_cap = want;
  g_cu.mode = CU_MODE_F32;
  g_cu.open = 1;
  if (desc)
    snprintf(desc, desc_len, "%s (sm_%d%d, %.1f GiB, %d SMs)", prop.name, prop.major, prop.minor,
             (double)total_b / (1u << 30), prop.multiProcessorCount);
  return TB_OK;
}

extern "C" void cuda_close(void) {
  if (!g_cu.open) return;
  cudaDeviceSynchronize();
  cublasDestroy(g_cu.blas);
  cudaFree(g_cu.blas_ws);
  cudaFree(g_cu.scratch);
  cudaStreamDestroy(g_cu.compute);
  cudaStreamDestroy(g_cu.copy);
  memset(&g_cu, 0, sizeof g_cu);
}

/* ---- scratch -------------------------------------------------------------------------------- */

void *cu_scratch(size_t bytes) {
  size_t off = (g_cu.scratch_top + 255) & ~(size_t)255;
  if (off + bytes > g_cu.scratch_cap) return NULL;
  g_cu.scratch_top = off + bytes;
  if (g_cu.scratch_top > g_cu.scratch_hw) g_cu.scratch_hw = g_cu.scratch_top;
  return g_cu.scratch + off;
}

void *cu_scratch_need(size_t bytes, const char *what) {
  void *p = cu_scratch(bytes);
  TB_CHECKF(p != NULL,
            "cuda %s needs %zu MiB of op scratch, %zu MiB free of %zu: raise "
            "TURBO_CUDA_SCRATCH_MB",
            what, (bytes >> 20) + 1, cu_scratch_avail() >> 20, g_cu.scratch_cap >> 20);
  return p;
}

extern "C" size_t cuda_scratch_capacity(void) { return g_cu.scratch_cap; }
extern "C" size_t cuda_scratch_high_water(void) { return g_cu.scratch_hw; }
extern "C" void cuda_set_compute(int mode) { g_cu.mode = mode; }
extern "C" int cuda_get_compute(void) { return g_cu.mode; }

/* ---- memory ---------------------------------------------------------------------------------- */

extern "C" void *cuda_malloc(size_t bytes) {
  void *p = NULL;
  CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 1));
  return p;
}

extern "C" int cuda_malloc_try(void **p, size_t bytes) {
  *p = NULL;
  cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
  if (e != cudaSuccess) {
    cudaGetLastError();
    *p = NULL;
    return err_set("cuda: cannot allocate %zu bytes: %s", bytes, cudaGetErrorString(e));
  }
  return TB_OK;
}

extern "C" void cuda_free(void *p) {
  if (p) CUDA_CHECK(cudaFree(p));
}

static cudaMemcpyKind copy_kind(int kind) {
  return kind == CUDA_COPY_H2D   ? cudaMemcpyHostToDevice
         : kind == CUDA_COPY_D2H ? cudaMemcpyDeviceToHost
                                 : cudaMemcpyDeviceToDevice;
}

extern "C" void cuda_memcpy(void *dst, const void *src, size_t bytes, int kind) {
  if (!bytes) return;
  /* on the compute stream, then wait: the copy sees every op enqueued before it */
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, copy_kind(kind), g_cu.compute));
  CUDA_CHECK(cudaStreamSynchronize(g_cu.compute));
}

extern "C" void cuda_memcpy_async(void *dst, const void *src, size_t bytes, int kind,
                                  void *stream) {
  if (!bytes) return;
  cudaStream_t s = stream ? (cudaStream_t)stream : g_cu.copy;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, copy_kind(kind), s));
}

extern "C" void cuda_memset(void *p, int value, size_t bytes) {
  if (bytes) CUDA_CHECK(cudaMemsetAsync(p, value, bytes, g_cu.compute));
}

extern "C" void cuda_sync(void) { CUDA_CHECK(cudaDeviceSynchronize()); }

extern "C" void *cuda_host_alloc(size_t bytes) {
  void *p = NULL;
  CUDA_CHECK(cudaMallocHost(&p, bytes ? bytes : 1));
  return p;
}

extern "C" void cuda_host_free(void *p) {
  if (p) CUDA_CHECK(cudaFreeHost(p));
}

extern "C" void cuda_mem_info(size_t *free_bytes, size_t *total_bytes) {
  size_t f = 0, t = 0;
  CUDA_CHECK(cudaMemGetInfo(&f, &t));
  if (free_bytes) *free_bytes = f;
  if (total_bytes) *total_bytes = t;
}

/* ---- streams and events ------------------------------------------------------------------ */

extern "C" void *cuda_stream_compute(void) { return (void *)g_cu.compute; }
extern "C" void *cuda_stream_copy(void) { return (void *)g_cu.copy; }
extern "C" void cuda_stream_sync(void *stream) {
  CUDA_CHECK(cudaStreamSynchronize(stream ? (cudaStream_t)stream : g_cu.compute));
}
extern "C" void *cuda_event_new(void) {
  cudaEvent_t e;
  CUDA_CHECK(cudaEventCreate(&e));
  return (void *)e;
}
extern "C" void cuda_event_free(void *ev) {
  if (ev) CUDA_CHECK(cudaEventDestroy((cudaEvent_t)ev));
}
extern "C" void cuda_event_record(void *ev, void *stream) {
  CUDA_CHECK(cudaEventRecord((cudaEvent_t)ev, stream ? (cudaStream_t)stream : g_cu.compute));
}
extern "C" void cuda_stream_wait_event(void *stream, void *ev) {
  CUDA_CHECK(
      cudaStreamWaitEvent(stream ? (cudaStream_t)stream : g_cu.compute, (cudaEvent_t)ev, 0));
}
extern "C" void cuda_event_sync(void *ev) { CUDA_CHECK(cudaEventSynchronize((cudaEvent_t)ev)); }
extern "C" float cuda_event_elapsed_ms(void *start, void *end) {
  float ms = 0.0f;
  CUDA_CHECK(cudaEventElapsedTime(&ms, (cudaEvent_t)start, (cudaEvent_t)end));
  return ms;
}

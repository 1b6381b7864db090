/* kernels/cuda/cuda_internal.cuh — shared by the .cu files of the CUDA backend only: the
 * context (device, streams, cuBLAS), check macros, the op scratch stack, launch helpers, the
 * row-major GEMM and the deterministic reductions every op file uses.
 *
 * Every op runs on the compute stream in issue order, so one scratch stack suffices: an op
 * takes scratch, enqueues its kernels, and releases it; the next op's kernels run after these
 * in stream order, so reusing the bytes is safe without synchronisation.
 */
#ifndef TURBO_CUDA_INTERNAL_CUH
#define TURBO_CUDA_INTERNAL_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "common/log.h"
#include "kernels/cuda/cuda_api.h"
#include "kernels/ops.h"

#define CUDA_CHECK(call)                                                                   \
  do {                                                                                     \
    cudaError_t e_ = (call);                                                               \
    if (e_ != cudaSuccess)                                                                 \
      tb_check_failed(#call, __FILE__, __LINE__, "CUDA error %d: %s", (int)e_,             \
                      cudaGetErrorString(e_));                                             \
  } while (0)
#define CUBLAS_CHECK(call)                                                                 \
  do {                                                                                     \
    cublasStatus_t s_ = (call);                                                            \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                       \
      tb_check_failed(#call, __FILE__, __LINE__, "cuBLAS status %d", (int)s_);            \
  } while (0)
/* after every kernel launch: catches bad launch configurations at the call site */
#define CU_LAUNCHED() CUDA_CHECK(cudaGetLastError())

enum { CU_MODE_F32 = 0, CU_MODE_TF32 = 1, CU_MODE_BF16 = 2 };

struct cu_context {
  int open;
  int dev;
  int sm_count;
  cudaStream_t compute, copy;
  cublasHandle_t blas;
  void *blas_ws; /* fixed cuBLAS workspace: keeps its results deterministic across streams */
  size_t blas_ws_bytes;
  char *scratch; /* op scratch stack */
  size_t scratch_cap, scratch_top, scratch_hw;
  int mode;
};
extern cu_context g_cu;

/* Scratch stack: cu_scratch returns `bytes` (256-aligned) or NULL when they do not fit;
 * cu_scratch_mark / cu_scratch_release bracket an op's use. */
void *cu_scratch(size_t bytes);
static inline size_t cu_scratch_mark(void) { return g_cu.scratch_top; }
static inline void cu_scratch_release(size_t mark) { g_cu.scratch_top = mark; }
static inline size_t cu_scratch_avail(void) {
  return g_cu.scratch_cap > g_cu.scratch_top + 4096 ? g_cu.scratch_cap - g_cu.scratch_top - 4096
                                                    : 0;
}
/* Like cu_scratch but aborts with advice when the scratch is too small. */
void *cu_scratch_need(size_t bytes, const char *what);

#define CU_THREADS 256
/* Grid for a grid-stride loop over n elements: enough blocks to fill the GPU, no more. */
static inline unsigned cu_grid(int64_t n, int threads = CU_THREADS) {
  int64_t b = (n + threads - 1) / threads;
  int64_t cap = (int64_t)(g_cu.sm_count > 0 ? g_cu.sm_count : 80) * 32;
  if (b > cap) b = cap;
  if (b < 1) b = 1;
  return (unsigned)b;
}
#define CU_FOR(i, n)                                                                       \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                \
       i += (int64_t)gridDim.x * blockDim.x)

/* Row-major strided-batched GEMM in the current compute mode: for each b < batch,
 * C_b (M, N) = alpha op(A_b) op(B_b) + beta C_b with A_b = A + b*sA (packed (M, K) or (K, M)),
 * B_b = B + b*sB, C_b = C + b*sC (packed). sA or sB 0 shares one matrix across the batch.
 * beta == 0 overwrites C (its old contents are never read). */
void cu_gemm(int tA, int tB, int M, int N, int K, float alpha, const float *A, int64_t sA,
             const float *B, int64_t sB, float beta, float *C, int64_t sC, int batch);

/* out[c] (+)= sum over o < O, i < I of x[(o*C + c)*I + i], in a fixed order (one block per c,
 * tree reduction): deterministic. accumulate 0 overwrites. */
void cu_reduce_oci(float *out, const float *x, int64_t O, int64_t C, int64_t I, int accumulate);

/* ---- device-side helpers ------------------------------------------------------------------ */

/* Sum over a block (blockDim.x a multiple of 32, <= 1024) in a fixed order; every thread gets
 * the total. sh: 32 slots of shared memory. */
template <typename T>
__device__ inline T cu_block_sum(T v, T *sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads(); /* sh may still be read from a previous call */
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  T t = lane < nw ? sh[lane] : (T)0;
  for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
  return t;
}
template <typename T>
__device__ inline T cu_warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline float cu_warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/* The table's entries, defined in the op files and collected in backend.cu. */
extern "C" {
#define OP(name, params, args) void cu_##name params;
#include "kernels/ops_list.h"
#undef OP
}

#endif

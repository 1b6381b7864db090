/* kernels/cuda/gemm.cu — GEMMs through cuBLAS (f32, TF32 or bf16 inputs with f32 accumulation),
 * matmul and linear, bf16 conversions, and the deterministic channel reduction.
 *
 * Row-major ↔ column-major: a row-major (r, c) matrix is, to cuBLAS, the column-major (c, r)
 * matrix of its transpose. So row-major C = op(A) op(B) is computed as column-major
 * C^T = op(B)^T op(A)^T: cuBLAS gets (B, A) in that order, m = N, n = M, with the transposes
 * passed straight through and leading dimensions equal to the stored row lengths.
 */
#include "kernels/cuda/cuda_internal.cuh"

static __global__ void f32_to_bf16_k(__nv_bfloat16 *dst, const float *src, int64_t n) {
  CU_FOR(i, n) dst[i] = __float2bfloat16_rn(src[i]);
}
static __global__ void bf16_to_f32_k(float *dst, const __nv_bfloat16 *src, int64_t n) {
  CU_FOR(i, n) dst[i] = __bfloat162float(src[i]);
}
static __global__ void scale_k(float *y, float s, int64_t n) {
  CU_FOR(i, n) y[i] = s == 0.0f ? 0.0f : y[i] * s;
}

extern "C" void cuda_f32_to_bf16(uint16_t *dst, const float *src, int64_t n) {
  if (n <= 0) return;
  f32_to_bf16_k<<<cu_grid(n), CU_THREADS, 0, g_cu.compute>>>((__nv_bfloat16 *)dst, src, n);
  CU_LAUNCHED();
}
extern "C" void cuda_bf16_to_f32(float *dst, const uint16_t *src, int64_t n) {
  if (n <= 0) return;
  bf16_to_f32_k<<<cu_grid(n), CU_THREADS, 0, g_cu.compute>>>(dst, (const __nv_bfloat16 *)src, n);
  CU_LAUNCHED();
}

/* elements a strided batch of packed (r, c) matrices spans */
#define MAX_BATCH 65535

static int64_t span(int64_t stride, int64_t rc, int batch) {
  return stride == 0 ? rc : stride * (batch - 1) + rc;
}

static void gemm_bf16_raw(int tA, int tB, int M, int N, int K, float alpha, const void *A,
                          int64_t sA, const void *B, int64_t sB, float beta, float *C,
                          int64_t sC, int batch) {
  int lda = tA ? M : K, ldb = tB ? K : N;
  cublasOperation_t oA = tA ? CUBLAS_OP_T : CUBLAS_OP_N, oB = tB ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(g_cu.blas, oB, oA, N, M, K, &alpha, B, CUDA_R_16BF,
                                          ldb, sB, A, CUDA_R_16BF, lda, sA, &beta, C,
                                          CUDA_R_32F, N, sC, batch, CUBLAS_COMPUTE_32F,
                                          CUBLAS_GEMM_DEFAULT));
}

extern "C" void cuda_gemm_bf16(int transA, int transB, int M, int N, int K, float alpha,
                               const uint16_t *A, const uint16_t *B, float beta, float *C) {
  if (M <= 0 || N <= 0) return;
  gemm_bf16_raw(transA, transB, M, N, K, alpha, A, 0, B, 0, beta, C, 0, 1);
}

void cu_gemm(int tA, int tB, int M, int N, int K, float alpha, const float *A, int64_t sA,
             const float *B, int64_t sB, float beta, float *C, int64_t sC, int batch) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  if (batch > MAX_BATCH) { /* keep each cuBLAS call within the grid limits of older releases */
    for (int b0 = 0; b0 < batch; b0 += MAX_BATCH)
      cu_gemm(tA, tB, M, N, K, alpha, A + b0 * sA, sA, B + b0 * sB, sB, beta, C + b0 * sC, sC,
              batch - b0 < MAX_BATCH ? batch - b0 : MAX_BATCH);
    return;
  }
  if (K <= 0) { /* C = beta C */
    for (int b = 0; b < batch; b++) {
      int64_t n = (int64_t)M * N;
      scale_k<<<cu_grid(n), CU_THREADS, 0, g_cu.compute>>>(C + b * sC, beta, n);
      CU_LAUNCHED();
    }
    return;
  }
  int lda = tA ? M : K, ldb = tB ? K : N;
  cublasOperation_t oA = tA ? CUBLAS_OP_T : CUBLAS_OP_N, oB = tB ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (g_cu.mode == CU_MODE_BF16) {
    /* convert the inputs batch-chunk by batch-chunk into scratch; a shared (stride 0) operand
     * is converted once per chunk */
    int64_t eA = (int64_t)M * K, eB = (int64_t)K * N;
    int64_t per = (sA ? eA : 0) + (sB ? eB : 0), fixed = (sA ? 0 : eA) + (sB ? 0 : eB);
    size_t avail = cu_scratch_avail();
    int64_t room = (int64_t)(avail / 2) - fixed - 256; /* bf16 elements left after the shared */
    int64_t fit = room < 0 ? 0 : per ? room / per : batch;
    if (fit >= 1) {
      int chunk = fit < batch ? (int)fit : batch;
      for (int b0 = 0; b0 < batch; b0 += chunk) {
        int nb = batch - b0 < chunk ? batch - b0 : chunk;
        size_t mark = cu_scratch_mark();
        int64_t nA = span(sA, eA, nb), nB = span(sB, eB, nb);
        __nv_bfloat16 *hA = (__nv_bfloat16 *)cu_scratch((size_t)nA * 2);
        __nv_bfloat16 *hB = (__nv_bfloat16 *)cu_scratch((size_t)nB * 2);
        TB_CHECK(hA && hB);
        f32_to_bf16_k<<<cu_grid(nA), CU_THREADS, 0, g_cu.compute>>>(hA, A + b0 * sA, nA);
        CU_LAUNCHED();
        f32_to_bf16_k<<<cu_grid(nB), CU_THREADS, 0, g_cu.compute>>>(hB, B + b0 * sB, nB);
        CU_LAUNCHED();
        gemm_bf16_raw(tA, tB, M, N, K, alpha, hA, sA, hB, sB, beta, C + b0 * sC, sC, nb);
        cu_scratch_release(mark);
      }
      return;
    }
    static int warned = 0;
    if (!warned) {
      log_warn("cuda: bf16 GEMM (%d x %d x %d) does not fit the op scratch; running it in f32 "
               "(raise TURBO_CUDA_SCRATCH_MB)", M, N, K);
      warned = 1;
    }
  }
  if (g_cu.mode == CU_MODE_TF32) {
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(g_cu.blas, oB, oA, N, M, K, &alpha, B, CUDA_R_32F,
                                            ldb, sB, A, CUDA_R_32F, lda, sA, &beta, C,
                                            CUDA_R_32F, N, sC, batch,
                                            CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
  } else if (batch == 1) {
    CUBLAS_CHECK(cublasSgemm(g_cu.blas, oB, oA, N, M, K, &alpha, B, ldb, A, lda, &beta, C, N));
  } else {
    CUBLAS_CHECK(cublasSgemmStridedBatched(g_cu.blas, oB, oA, N, M, K, &alpha, B, ldb, sB, A,
                                           lda, sA, &beta, C, N, sC, batch));
  }
}

/* ---- deterministic reduction: one block per channel ----------------------------------------- */

static __global__ void reduce_oci_k(float *out, const float *x, int64_t O, int64_t C, int64_t I,
                                    int accumulate) {
  __shared__ double sh[32];
  int64_t c = blockIdx.x;
  double s = 0.0;
  int64_t n = O * I;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    int64_t o = j / I, i = j - o * I;
    s += (double)x[(o * C + c) * I + i];
  }
  s = cu_block_sum(s, sh);
  if (threadIdx.x == 0) out[c] = accumulate ? out[c] + (float)s : (float)s;
}

void cu_reduce_oci(float *out, const float *x, int64_t O, int64_t C, int64_t I, int accumulate) {
  if (C <= 0) return;
  reduce_oci_k<<<(unsigned)C, CU_THREADS, 0, g_cu.compute>>>(out, x, O, C, I, accumulate);
  CU_LAUNCHED();
}

/* ---- matmul, linear ------------------------------------------------------------------------ */

extern "C" void cu_matmul(int transA, int transB, int M, int N, int K, float alpha,
                          const float *A, const float *Bm, float beta, float *Cm) {
  cu_gemm(transA, transB, M, N, K, alpha, A, 0, Bm, 0, beta, Cm, 0, 1);
}

/* out (N, Cout) += bias (Cout) broadcast over rows */
static __global__ void add_row_bias_k(float *out, const float *bias, int64_t N, int64_t C) {
  CU_FOR(i, N * C) out[i] += bias[i % C];
}

extern "C" void cu_linear_fwd(float *out, const float *inp, const float *weight,
                              const float *bias, int N, int Cin, int Cout) {
  cu_gemm(0, 1, N, Cout, Cin, 1.0f, inp, 0, weight, 0, 0.0f, out, 0, 1);
  if (bias && N > 0 && Cout > 0) {
    int64_t n = (int64_t)N * Cout;
    add_row_bias_k<<<cu_grid(n), CU_THREADS, 0, g_cu.compute>>>(out, bias, N, Cout);
    CU_LAUNCHED();
  }
}

extern "C" void cu_linear_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, int N, int Cin, int Cout) {
  if (dinp) cu_gemm(0, 0, N, Cin, Cout, 1.0f, dout, 0, weight, 0, 1.0f, dinp, 0, 1);
  if (dweight) cu_gemm(1, 0, Cout, Cin, N, 1.0f, dout, 0, inp, 0, 1.0f, dweight, 0, 1);
  if (dbias) cu_reduce_oci(dbias, dout, N, Cout, 1, 1);
}

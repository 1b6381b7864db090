/* kernels/cpu/fast.c — the fast CPU backend: OpenBLAS sgemm for every contraction, OpenMP for
 * the rest. Entries where the reference is already memory-bound and cheap reuse it.
 *
 * Threads: one pool, OpenMP's. OpenBLAS always runs on the calling thread (its own pthread pool
 * stays idle: two pools on few cores spin against each other). Work that splits into many
 * independent GEMMs (images of a conv, (b, h) pairs of attention, frames of the temporal conv)
 * runs an OpenMP loop of single-threaded GEMMs; a single big GEMM (linear, matmul) is split over
 * the threads along its larger output dimension (sgemm below).
 * Determinism: parameter-gradient sums that cross loop iterations go to per-thread buffers
 * over a static partition and are added in thread order, so a fixed thread count gives the same
 * bits every run.
 */
#include "kernels/cpu/cpu_ops.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(TURBO_HAVE_BLAS)
#include <cblas.h>
#endif

#include "common/log.h"
#include "common/tensor.h"

/* Zeroed, 64-byte aligned scratch of n floats (at least one). Free with aligned_free. */
static float *aligned_alloc_zero_f32(size_t n) {
  return aligned_alloc_zero(sizeof(float) * (n ? n : 1));
}

/* Grow-only scratch owned by the calling thread, 64-byte aligned, contents undefined: for
 * buffers that are fully overwritten before they are read (im2col columns, dcol). Slot
 * SCRATCH_COLS and SCRATCH_PARTIALS may be held together; never freed (reused by the next op,
 * which saves the page faults of a fresh allocation per call). */
enum { SCRATCH_COLS, SCRATCH_PARTIALS, SCRATCH_NSLOTS };
static float *scratch_f32_slot(int slot, size_t n) {
  static _Thread_local float *buf[SCRATCH_NSLOTS];
  static _Thread_local size_t cap[SCRATCH_NSLOTS];
  if (n > cap[slot]) {
    aligned_free(buf[slot]);
    buf[slot] = aligned_alloc_zero_f32(n);
    cap[slot] = n;
  }
  return buf[slot];
}
static float *scratch_f32(size_t n) { return scratch_f32_slot(SCRATCH_COLS, n); }

/* ---- threads -----------------------------------------------------------------------------------
 */

static int g_nthreads = 0;  // 0: not set yet, use OpenMP's default

int cpu_fast_threads(void) {
  if (g_nthreads > 0) return g_nthreads;
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

int cpu_fast_threads_here(void) {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

static void fast_set_num_threads(int n) {
#ifdef _OPENMP
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
#else
  n = 1;
#endif
  g_nthreads = n;
}

/* Row-major sgemm with leading dimensions: C (M, N) = alpha op(A) op(B) + beta C. BLAS itself
 * always runs on the calling thread: one thread pool (OpenMP's) for the whole backend, so no
 * pool ever spins on a core the other needs. A GEMM called outside a parallel region with enough
 * work is split over the OpenMP threads along its larger output dimension; each output element
 * is still computed by one call with the same K order, so the bits do not depend on the split. */
#if defined(TURBO_HAVE_BLAS)
static pthread_once_t g_blas_once = PTHREAD_ONCE_INIT;
static void blas_single_thread(void) { openblas_set_num_threads(1); }
#endif

static void sgemm_serial(int tA, int tB, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return;
#if defined(TURBO_HAVE_BLAS)
  pthread_once(&g_blas_once, blas_single_thread);
  cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, M, N,
              K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float s = 0.0f;
      for (int p = 0; p < K; p++)
        s += (tA ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p]) *
             (tB ? B[(size_t)j * ldb + p] : B[(size_t)p * ldb + j]);
      C[(size_t)i * ldc + j] = alpha * s + (beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j]);
    }
#endif
}

static int in_parallel(void) {
#ifdef _OPENMP
  return omp_in_parallel();
#else
  return 1;
#endif
}

enum { GEMM_SPLIT_MIN_FLOPS = 1 << 20, GEMM_SPLIT_ALIGN = 16 };

static void sgemm(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc) {
  int nt = cpu_fast_threads();
  int by_rows = M >= N, extent = by_rows ? M : N;
  int parts = extent / GEMM_SPLIT_ALIGN < nt ? extent / GEMM_SPLIT_ALIGN : nt;
  if (parts < 2 || in_parallel() || 2.0 * M * N * K < (double)GEMM_SPLIT_MIN_FLOPS * nt) {
    sgemm_serial(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  int blocks = (extent + GEMM_SPLIT_ALIGN - 1) / GEMM_SPLIT_ALIGN;
#pragma omp parallel for schedule(static) num_threads(parts)
  for (int p = 0; p < parts; p++) {
    int lo = (int)((int64_t)blocks * p / parts) * GEMM_SPLIT_ALIGN;
    int hi = (int)((int64_t)blocks * (p + 1) / parts) * GEMM_SPLIT_ALIGN;
    if (hi > extent) hi = extent;
    if (by_rows)
      sgemm_serial(tA, tB, hi - lo, N, K, alpha, tA ? A + lo : A + (size_t)lo * lda, lda, B, ldb,
                   beta, C + (size_t)lo * ldc, ldc);
    else
      sgemm_serial(tA, tB, M, hi - lo, K, alpha, A, lda, tB ? B + (size_t)lo * ldb : B + lo, ldb,
                   beta, C + lo, ldc);
  }
}

/* Per-thread accumulation buffers for parameter gradients: `nt` blocks of n floats, zeroed. */
/* Zeroed per-chunk partial sums (nt, n) in scratch slot SCRATCH_PARTIALS: do not free. */
static float *partials_new(int nt, size_t n) {
  float *p = scratch_f32_slot(SCRATCH_PARTIALS, (size_t)nt * n);
  memset(p, 0, sizeof(float) * (size_t)nt * n);
  return p;
}

/* ---- GEMM, linear -----------------------------------------------------------------------------
 */

static void fast_matmul(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                        const float *Bm, float beta, float *Cm) {
  sgemm(transA, transB, M, N, K, alpha, A, transA ? M : K, Bm, transB ? K : N, beta, Cm, N);
}

// out (N, Cout) = inp (N, Cin) · weight (Cout, Cin)^T + bias
static void fast_linear_fwd(float *out, const float *inp, const float *weight, const float *bias,
                            int N, int Cin, int Cout) {
  if (bias) {
#pragma omp parallel for schedule(static) if ((int64_t)N * Cout > 32768)
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * Cout, bias, sizeof(float) * Cout);
  }
  sgemm(0, 1, N, Cout, Cin, 1.0f, inp, Cin, weight, Cin, bias ? 1.0f : 0.0f, out, Cout);
}

static void colsum_add(float *dst, const float *src, int rows, int cols) {
#pragma omp parallel for schedule(static) if ((int64_t)rows * cols > 32768)
  for (int c = 0; c < cols; c++) {
    double s = 0.0;
    for (int r = 0; r < rows; r++) s += src[(size_t)r * cols + c];
    dst[c] += (float)s;
  }
}

static void fast_linear_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int N, int Cin, int Cout) {
  if (dinp) sgemm(0, 0, N, Cin, Cout, 1.0f, dout, Cout, weight, Cin, 1.0f, dinp, Cin);
  if (dweight) sgemm(1, 0, Cout, Cin, N, 1.0f, dout, Cout, inp, Cin, 1.0f, dweight, Cin);
  if (dbias) colsum_add(dbias, dout, N, Cout);
}

/* dst[c] += the sum of g (nb, C, S) over its nb blocks and S positions: the bias gradient of
 * every channel-major layout. Summed in double (vectorised), in parallel over channels. */
static void channel_sums_add(float *dst, const float *g, int64_t nb, int C, size_t S) {
#pragma omp parallel for schedule(static) if (nb * C * (int64_t)S > 32768)
  for (int c = 0; c < C; c++) {
    double sacc = 0.0;
    for (int64_t b = 0; b < nb; b++) {
      const float *r = g + ((size_t)b * C + c) * S;
#pragma omp simd reduction(+ : sacc)
      for (size_t i = 0; i < S; i++) sacc += r[i];
    }
    dst[c] += (float)sacc;
  }
}

/* ---- conv2d: im2col + sgemm over groups of images ----------------------------------------------
 */

/* The k*k rows of one input channel x (H, W) in a column matrix: row r at col + r * ld, Ho*Wo
 * values each. */
static void im2col_channel(float *col, size_t ld, const float *x, int H, int W, int k, int stride,
                           int pad, int Ho, int Wo) {
  if (stride == 1 && k == 3 && pad == 1) {  // the common case: Ho = H, Wo = W
    for (int ky = 0; ky < 3; ky++)
      for (int kx = 0; kx < 3; kx++) {
        float *row = col + (size_t)(ky * 3 + kx) * ld;
        for (int oy = 0; oy < H; oy++) {
          int y = oy - 1 + ky;
          float *r = row + (size_t)oy * W;
          if (y < 0 || y >= H) {
            memset(r, 0, sizeof(float) * W);
            continue;
          }
          const float *xr = x + (size_t)y * W;
          if (kx == 0) {
            r[0] = 0.0f;
            memcpy(r + 1, xr, sizeof(float) * (W - 1));
          } else if (kx == 1) {
            memcpy(r, xr, sizeof(float) * W);
          } else {
            memcpy(r, xr + 1, sizeof(float) * (W - 1));
            r[W - 1] = 0.0f;
          }
        }
      }
    return;
  }
  for (int ky = 0; ky < k; ky++)
    for (int kx = 0; kx < k; kx++) {
      float *row = col + (size_t)(ky * k + kx) * ld;
      for (int oy = 0; oy < Ho; oy++) {
        int y = oy * stride - pad + ky;
        float *r = row + (size_t)oy * Wo;
        if (y < 0 || y >= H) {
          memset(r, 0, sizeof(float) * Wo);
          continue;
        }
        const float *xr = x + (size_t)y * W;
        for (int ox = 0; ox < Wo; ox++) {
          int xx = ox * stride - pad + kx;
          r[ox] = (xx >= 0 && xx < W) ? xr[xx] : 0.0f;
        }
      }
    }
}

/* dx (H, W) of one input channel += its k*k rows of dcol (row r at dcol + r * ld) */
static void col2im_channel_add(float *dx, const float *dcol, size_t ld, int H, int W, int k,
                               int stride, int pad, int Ho, int Wo) {
  if (stride == 1 && k == 3 && pad == 1) {
    for (int ky = 0; ky < 3; ky++)
      for (int oy = 0; oy < H; oy++) {
        int y = oy - 1 + ky;
        if (y < 0 || y >= H) continue;
        float *xr = dx + (size_t)y * W;
        const float *r0 = dcol + (size_t)(ky * 3) * ld + (size_t)oy * W;
        const float *r1 = r0 + ld, *r2 = r1 + ld;
        /* column x takes kx = 1 at x, kx = 0 at x + 1, kx = 2 at x - 1 */
        if (W == 1) {
          xr[0] += r1[0];
          continue;
        }
        xr[0] += r1[0] + r0[1];
#pragma omp simd
        for (int x = 1; x < W - 1; x++) xr[x] += r1[x] + r0[x + 1] + r2[x - 1];
        xr[W - 1] += r1[W - 1] + r2[W - 2];
      }
    return;
  }
  for (int ky = 0; ky < k; ky++)
    for (int kx = 0; kx < k; kx++) {
      const float *row = dcol + (size_t)(ky * k + kx) * ld;
      for (int oy = 0; oy < Ho; oy++) {
        int y = oy * stride - pad + ky;
        if (y < 0 || y >= H) continue;
        float *xr = dx + (size_t)y * W;
        const float *r = row + (size_t)oy * Wo;
        for (int ox = 0; ox < Wo; ox++) {
          int xx = ox * stride - pad + kx;
          if (xx >= 0 && xx < W) xr[xx] += r[ox];
        }
      }
    }
}

// col (Cin*k*k, Ho*Wo) from one image x (Cin, H, W)
static void im2col(float *col, const float *x, int Cin, int H, int W, int k, int stride, int pad,
                   int Ho, int Wo) {
  size_t HWo = (size_t)Ho * Wo;
  for (int ci = 0; ci < Cin; ci++)
    im2col_channel(col + (size_t)ci * k * k * HWo, HWo, x + (size_t)ci * H * W, H, W, k, stride,
                   pad, Ho, Wo);
}

// dx (Cin, H, W) += the columns of dcol (Cin*k*k, Ho*Wo)
static void col2im_add(float *dx, const float *dcol, int Cin, int H, int W, int k, int stride,
                       int pad, int Ho, int Wo) {
  size_t HWo = (size_t)Ho * Wo;
  for (int ci = 0; ci < Cin; ci++)
    col2im_channel_add(dx + (size_t)ci * H * W, dcol + (size_t)ci * k * k * HWo, HWo, H, W, k,
                       stride, pad, Ho, Wo);
}

/* Loop over `n` independent work items, split into work_chunks(n) contiguous chunks that the
 * threads take dynamically (a thread delayed by another process does not hold the others up).
 * With at least as many items as threads: OpenMP over the chunks (sgemm inside runs on the
 * calling thread); otherwise a serial loop whose GEMMs split over the threads. In the body,
 * `item` is the item, `chunk` its chunk (parameter-gradient partial sums go to one buffer per
 * chunk, then are added in chunk order: the same bits for a fixed thread count, however the
 * chunks were scheduled) and `tid` the thread (per-thread scratch). */
static int work_threads(int64_t n) {
  int nt = cpu_fast_threads();
  return (n >= nt && nt > 1) ? nt : 1;
}
static int work_chunks(int64_t n) {
  int64_t c = 2 * (int64_t)work_threads(n);  // two per thread: enough to balance a late thread
  if (work_threads(n) == 1) c = 1;
  return (int)(c < n ? c : (n > 0 ? n : 1));
}
// clang-format off
#define WORK_LOOP_BEGIN(n)                                                           \
  {                                                                                  \
    int64_t n_ = (n);                                                                \
    int nt_ = work_threads(n_), nch_ = work_chunks(n_), par_ = nt_ > 1;              \
    _Pragma("omp parallel for schedule(dynamic, 1) num_threads(nt_) if (par_)")      \
    for (int chunk = 0; chunk < nch_; chunk++) {                                     \
      int tid = WORK_TID;                                                            \
      (void)tid;                                                                     \
      int64_t lo_ = n_ * chunk / nch_, hi_ = n_ * (chunk + 1) / nch_;                \
      for (int64_t item = lo_; item < hi_; item++) {
// clang-format on
#define WORK_LOOP_END          \
  }                            \
  }                            \
  }
#ifdef _OPENMP
#define WORK_TID omp_get_thread_num()
#else
#define WORK_TID 0
#endif

static int conv_out(int n, int k, int s, int p) { return (n + 2 * p - k) / s + 1; }

/* Images per group: the column matrix of a group is (Cin*k*k, g*Ho*Wo), at least
 * CONV_GROUP_COLS wide so that small images still make an efficient GEMM (a 16x16 image is a
 * group of its own, 4x4 images go 16 at a time), and at most CONV_GROUP_BYTES per thread.
 * Groups are the work items: threads take whole groups, each with single-threaded GEMMs (groups
 * shrink so that every thread gets one); a lone group runs its GEMMs split over the threads. */
enum { CONV_GROUP_COLS = 256 };
#define CONV_GROUP_BYTES ((size_t)8 << 20)
static int conv_group(int N, size_t K, size_t HWo) {
  size_t g = (CONV_GROUP_COLS + HWo - 1) / HWo, nt = (size_t)cpu_fast_threads();
  if ((size_t)N >= nt && g > ((size_t)N + nt - 1) / nt) g = ((size_t)N + nt - 1) / nt;
  while (g > 1 && K * g * HWo * sizeof(float) > CONV_GROUP_BYTES) g--;
  return (int)(g < (size_t)N ? g : (size_t)N);
}

/* cols (Cin*k*k, gi*HWo) from images x[0..gi) (Cin, H, W) */
static void im2col_group(float *cols, const float *x, int gi, int Cin, int H, int W, int k,
                         int stride, int pad, int Ho, int Wo) {
  size_t HWo = (size_t)Ho * Wo, ld = (size_t)gi * HWo;
#pragma omp parallel for schedule(static) if ((int64_t)gi * Cin * k * k * HWo > 32768)
  for (int64_t w = 0; w < (int64_t)gi * Cin; w++) {
    int64_t img = w / Cin, ci = w % Cin;
    im2col_channel(cols + (size_t)ci * k * k * ld + img * HWo, ld,
                   x + ((size_t)img * Cin + ci) * H * W, H, W, k, stride, pad, Ho, Wo);
  }
}

static void fast_conv2d_fwd(float *out, const float *inp, const float *weight, const float *bias,
                            int N, int Cin, int H, int W, int Cout, int k, int stride, int pad) {
  int Ho = conv_out(H, k, stride, pad), Wo = conv_out(W, k, stride, pad);
  size_t HWo = (size_t)Ho * Wo, K = (size_t)Cin * k * k;
  int g = conv_group(N, K, HWo), ngroups = (N + g - 1) / g, nt = cpu_fast_threads();
  size_t per = (K + Cout) * g * HWo;
  float *scr = scratch_f32((size_t)nt * per);
  WORK_LOOP_BEGIN(ngroups)
  int n0 = (int)item * g, gi = N - n0 < g ? N - n0 : g;
  size_t ld = (size_t)gi * HWo;
  float *cols = scr + (size_t)tid * per, *res = cols + K * g * HWo;
  const float *x = inp + (size_t)n0 * Cin * H * W;
  float *o = out + (size_t)n0 * Cout * HWo;
  int direct = k == 1 && stride == 1 && pad == 0 && gi == 1;  // the image is its own columns
  if (!direct) im2col_group(cols, x, gi, Cin, H, W, k, stride, pad, Ho, Wo);
  /* one image: straight into the output; several: (Cout, gi*HWo), then to (gi, Cout, HWo) */
  float *dst = gi == 1 ? o : res;
  sgemm(0, 0, Cout, (int)ld, (int)K, 1.0f, weight, (int)K, direct ? x : cols, (int)ld, 0.0f, dst,
        (int)ld);
  if (gi > 1 || bias) {
#pragma omp parallel for schedule(static) if ((int64_t)Cout * ld > 32768)
    for (int64_t w = 0; w < (int64_t)gi * Cout; w++) {
      int64_t img = w / Cout, co = w % Cout;
      float *orow = o + (size_t)w * HWo;
      const float *r = gi == 1 ? orow : res + (size_t)co * ld + img * HWo;
      float b = bias ? bias[co] : 0.0f;
#pragma omp simd
      for (size_t i = 0; i < HWo; i++) orow[i] = r[i] + b;
    }
  }
  WORK_LOOP_END
}

static void fast_conv2d_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int N, int Cin, int H, int W,
                            int Cout, int k, int stride, int pad) {
  int Ho = conv_out(H, k, stride, pad), Wo = conv_out(W, k, stride, pad);
  size_t HWo = (size_t)Ho * Wo, K = (size_t)Cin * k * k, WN = (size_t)Cout * K;
  int g = conv_group(N, K, HWo), ngroups = (N + g - 1) / g, nt = cpu_fast_threads();
  int direct = k == 1 && stride == 1 && pad == 0;
  /* per thread: cols, dcols, and the group's dout as (Cout, gi*HWo) */
  size_t per = (2 * K + Cout) * g * HWo;
  float *scr = scratch_f32((size_t)nt * per);
  /* parameter-gradient partial sums per chunk (weight then bias), added in chunk order after */
  int nch = work_chunks(ngroups), partial = nch > 1;
  size_t PN = WN + Cout;
  float *dpart = (dweight || dbias) && partial ? partials_new(nch, PN) : NULL;
  WORK_LOOP_BEGIN(ngroups)
  int n0 = (int)item * g, gi = N - n0 < g ? N - n0 : g;
  size_t ld = (size_t)gi * HWo;
  float *cols = scr + (size_t)tid * per, *dcols = cols + K * g * HWo, *gt = dcols + K * g * HWo;
  float *dw = partial ? dpart + (size_t)chunk * PN : dweight;
  float *db = partial ? dpart + (size_t)chunk * PN + WN : dbias;
  const float *x = inp + (size_t)n0 * Cin * H * W, *d = dout + (size_t)n0 * Cout * HWo;
  const float *G = d;
  if (gi > 1) {
#pragma omp parallel for schedule(static) if ((int64_t)Cout * ld > 32768)
    for (int64_t w = 0; w < (int64_t)gi * Cout; w++) {
      int64_t img = w / Cout, co = w % Cout;
      memcpy(gt + (size_t)co * ld + img * HWo, d + (size_t)w * HWo, sizeof(float) * HWo);
    }
    G = gt;
  }
  if (dweight) {
    // dW (Cout, K) += G (Cout, gi*HWo) · cols^T
    const float *c = x;
    if (!(direct && gi == 1)) {
      im2col_group(cols, x, gi, Cin, H, W, k, stride, pad, Ho, Wo);
      c = cols;
    }
    sgemm(0, 1, Cout, (int)K, (int)ld, 1.0f, G, (int)ld, c, (int)ld, 1.0f, dw, (int)K);
  }
  if (dbias) channel_sums_add(db, G, 1, Cout, ld);
  if (dinp) {
    float *dx = dinp + (size_t)n0 * Cin * H * W;
    if (direct && gi == 1) {
      sgemm(1, 0, (int)K, (int)HWo, Cout, 1.0f, weight, (int)K, G, (int)HWo, 1.0f, dx, (int)HWo);
    } else {
      // dcols (K, gi*HWo) = W^T · G, then back to the images
      sgemm(1, 0, (int)K, (int)ld, Cout, 1.0f, weight, (int)K, G, (int)ld, 0.0f, dcols, (int)ld);
#pragma omp parallel for schedule(static) if ((int64_t)gi * Cin * H * W > 32768)
      for (int64_t w = 0; w < (int64_t)gi * Cin; w++) {
        int64_t img = w / Cin, ci = w % Cin;
        col2im_channel_add(dx + (size_t)w * H * W, dcols + (size_t)ci * k * k * ld + img * HWo,
                           ld, H, W, k, stride, pad, Ho, Wo);
      }
    }
  }
  WORK_LOOP_END
  if (dpart) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < PN; i++) {
      float sacc = 0.0f;
      for (int t = 0; t < nch; t++) sacc += dpart[(size_t)t * PN + i];
      if (i < WN) {
        if (dweight) dweight[i] += sacc;
      } else if (dbias) {
        dbias[i - WN] += sacc;
      }
    }
  }
}

/* ---- temporal conv: per output frame, a sum of kt GEMMs ----------------------------------------
 */

// wr (kt, Cout, Cin) from weight (Cout, Cin, kt)
static float *tconv_weight_by_tap(const float *weight, int Cout, int Cin, int kt) {
  float *wr = aligned_alloc_zero_f32((size_t)kt * Cout * Cin);
  for (int co = 0; co < Cout; co++)
    for (int ci = 0; ci < Cin; ci++)
      for (int j = 0; j < kt; j++)
        wr[((size_t)j * Cout + co) * Cin + ci] = weight[((size_t)co * Cin + ci) * kt + j];
  return wr;
}

static void fast_tconv_fwd(float *out, const float *inp, const float *weight, const float *bias,
                           int B, int T, int Cin, int S, int Cout, int kt) {
  float *wr = tconv_weight_by_tap(weight, Cout, Cin, kt);
  int P = kt / 2;
  WORK_LOOP_BEGIN((int64_t)B * T)
  int b = (int)(item / T), t = (int)(item % T);
  float *o = out + item * (size_t)Cout * S;
  for (int co = 0; co < Cout; co++)
    for (int i = 0; i < S; i++) o[(size_t)co * S + i] = bias ? bias[co] : 0.0f;
  for (int j = 0; j < kt; j++) {
    int ts = t + j - P;
    if (ts < 0 || ts >= T) continue;
    sgemm(0, 0, Cout, S, Cin, 1.0f, wr + (size_t)j * Cout * Cin, Cin,
          inp + ((size_t)b * T + ts) * Cin * S, S, 1.0f, o, S);
  }
  WORK_LOOP_END
  aligned_free(wr);
}

static void fast_tconv_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, int B, int T, int Cin, int S,
                           int Cout, int kt) {
  float *wr = tconv_weight_by_tap(weight, Cout, Cin, kt);
  int P = kt / 2, nch = work_chunks((int64_t)B * T);
  size_t WN = (size_t)kt * Cout * Cin;
  float *dw = dweight ? partials_new(nch, WN) : NULL;
  WORK_LOOP_BEGIN((int64_t)B * T)
  int b = (int)(item / T), t = (int)(item % T);
  // item is an input frame t for dinp, and an output frame t for dweight
  for (int j = 0; j < kt; j++) {
    int to = t - j + P;  // output frame that read input frame t through tap j
    if (dinp && to >= 0 && to < T)
      sgemm(1, 0, Cin, S, Cout, 1.0f, wr + (size_t)j * Cout * Cin, Cin,
            dout + ((size_t)b * T + to) * Cout * S, S, 1.0f, dinp + item * (size_t)Cin * S, S);
    int ts = t + j - P;  // input frame output frame t read through tap j
    if (dweight && ts >= 0 && ts < T)
      sgemm(0, 1, Cout, Cin, S, 1.0f, dout + item * (size_t)Cout * S, S,
            inp + ((size_t)b * T + ts) * Cin * S, S, 1.0f,
            dw + (size_t)chunk * WN + (size_t)j * Cout * Cin, Cin);
  }
  WORK_LOOP_END
  if (dweight)
    for (int co = 0; co < Cout; co++)
      for (int ci = 0; ci < Cin; ci++)
        for (int j = 0; j < kt; j++) {
          float s = 0.0f;
          for (int th = 0; th < nch; th++)
            s += dw[(size_t)th * WN + ((size_t)j * Cout + co) * Cin + ci];
          dweight[((size_t)co * Cin + ci) * kt + j] += s;
        }
  if (dbias) channel_sums_add(dbias, dout, (int64_t)B * T, Cout, S);
  aligned_free(wr);
}

/* ---- conv3d on the video layout: per output frame, a sum over kt taps of im2col GEMMs
 * ------------ */

// wr (kt, Cout, Cin*k*k) from weight (Cout, Cin, kt, k, k)
static float *conv3d_weight_by_tap(const float *weight, int Cout, int Cin, int kt, int k) {
  size_t kk = (size_t)k * k, K = (size_t)Cin * kk;
  float *wr = aligned_alloc_zero_f32((size_t)kt * Cout * K);
  for (int co = 0; co < Cout; co++)
    for (int ci = 0; ci < Cin; ci++)
      for (int j = 0; j < kt; j++)
        memcpy(wr + ((size_t)j * Cout + co) * K + ci * kk,
               weight + (((size_t)co * Cin + ci) * kt + j) * kk, sizeof(float) * kk);
  return wr;
}

static void fast_conv3d_fwd(float *out, const float *inp, const float *weight, const float *bias,
                            int B, int T, int Cin, int H, int W, int Cout, int kt, int k,
                            int stride_t, int stride, int pad_t, int pad) {
  int To = conv_out(T, kt, stride_t, pad_t), Ho = conv_out(H, k, stride, pad),
      Wo = conv_out(W, k, stride, pad);
  size_t HWo = (size_t)Ho * Wo, K = (size_t)Cin * k * k, frame = (size_t)Cin * H * W;
  float *wr = conv3d_weight_by_tap(weight, Cout, Cin, kt, k);
  float *cols = scratch_f32((size_t)cpu_fast_threads() * K * HWo);
  WORK_LOOP_BEGIN((int64_t)B * To)
  int b = (int)(item / To), to = (int)(item % To);
  float *col = cols + (size_t)tid * K * HWo, *o = out + item * (size_t)Cout * HWo;
  for (int co = 0; co < Cout; co++)
    for (size_t i = 0; i < HWo; i++) o[co * HWo + i] = bias ? bias[co] : 0.0f;
  for (int j = 0; j < kt; j++) {
    int t = to * stride_t - pad_t + j;
    if (t < 0 || t >= T) continue;
    im2col(col, inp + ((size_t)b * T + t) * frame, Cin, H, W, k, stride, pad, Ho, Wo);
    sgemm(0, 0, Cout, (int)HWo, (int)K, 1.0f, wr + (size_t)j * Cout * K, (int)K, col, (int)HWo,
          1.0f, o, (int)HWo);
  }
  WORK_LOOP_END
  aligned_free(wr);
}

static void fast_conv3d_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int B, int T, int Cin, int H,
                            int W, int Cout, int kt, int k, int stride_t, int stride, int pad_t,
                            int pad) {
  int To = conv_out(T, kt, stride_t, pad_t), Ho = conv_out(H, k, stride, pad),
      Wo = conv_out(W, k, stride, pad);
  size_t HWo = (size_t)Ho * Wo, K = (size_t)Cin * k * k, frame = (size_t)Cin * H * W;
  size_t WN = (size_t)kt * Cout * K;
  int nt = cpu_fast_threads();
  float *wr = conv3d_weight_by_tap(weight, Cout, Cin, kt, k);
  float *cols = scratch_f32((size_t)nt * K * HWo);
  if (dinp) {  // over input frames: gather every (output frame, tap) that read frame t
    WORK_LOOP_BEGIN((int64_t)B * T)
    int b = (int)(item / T), t = (int)(item % T), any = 0;
    float *dcol = cols + (size_t)tid * K * HWo;
    for (int j = 0; j < kt; j++) {
      int num = t + pad_t - j;
      if (num < 0 || num % stride_t || num / stride_t >= To) continue;
      int to = num / stride_t;
      sgemm(1, 0, (int)K, (int)HWo, Cout, 1.0f, wr + (size_t)j * Cout * K, (int)K,
            dout + ((size_t)b * To + to) * Cout * HWo, (int)HWo, any ? 1.0f : 0.0f, dcol, (int)HWo);
      any = 1;
    }
    if (any) col2im_add(dinp + item * frame, dcol, Cin, H, W, k, stride, pad, Ho, Wo);
    WORK_LOOP_END
  }
  if (dweight) {  // over output frames, per-thread partial sums
    int nch = work_chunks((int64_t)B * To);
    float *dw = partials_new(nch, WN);
    WORK_LOOP_BEGIN((int64_t)B * To)
    int b = (int)(item / To), to = (int)(item % To);
    float *col = cols + (size_t)tid * K * HWo;
    for (int j = 0; j < kt; j++) {
      int t = to * stride_t - pad_t + j;
      if (t < 0 || t >= T) continue;
      im2col(col, inp + ((size_t)b * T + t) * frame, Cin, H, W, k, stride, pad, Ho, Wo);
      sgemm(0, 1, Cout, (int)K, (int)HWo, 1.0f, dout + item * (size_t)Cout * HWo, (int)HWo, col,
            (int)HWo, 1.0f, dw + (size_t)chunk * WN + (size_t)j * Cout * K, (int)K);
    }
    WORK_LOOP_END
    size_t kk = (size_t)k * k;
#pragma omp parallel for schedule(static)
    for (int co = 0; co < Cout; co++)
      for (int ci = 0; ci < Cin; ci++)
        for (int j = 0; j < kt; j++)
          for (size_t e = 0; e < kk; e++) {
            float s = 0.0f;
            for (int th = 0; th < nch; th++)
              s += dw[(size_t)th * WN + ((size_t)j * Cout + co) * K + ci * kk + e];
            dweight[(((size_t)co * Cin + ci) * kt + j) * kk + e] += s;
          }
  }
  if (dbias) channel_sums_add(dbias, dout, (int64_t)B * To, Cout, HWo);
  aligned_free(wr);
}

/* ---- element-wise math that vectorises ---------------------------------------------------------
 */

#define EXP_POLY(f)                                              \
  (1.0f +                                                        \
   (f) * (1.0f + (f) * (0.5f + (f) * (1.0f / 6 +                 \
                                      (f) * (1.0f / 24 +         \
                                             (f) * (1.0f / 120 + \
                                                    (f) * (1.0f / 720 + (f) * (1.0f / 5040))))))))

#define EW_PAR _Pragma("omp parallel for simd schedule(static) if (n > 32768)")

/* c ? a : b as a bit select on an all-ones or all-zeros mask: no branch. gcc keeps a float
 * ternary as control flow under the default -ftrapping-math (it will not if-convert a
 * comparison that may trap), and the loop around it is then not vectorised; the mask form
 * gives the same value for every input, NaN included, and vectorises under default flags. */
static inline float fsel(int c, float a, float b) {
  int32_t m = -(int32_t)(c != 0), ia, ib, r;
  float f;
  memcpy(&ia, &a, sizeof ia);
  memcpy(&ib, &b, sizeof ib);
  r = (ia & m) | (ib & ~m);
  memcpy(&f, &r, sizeof f);
  return f;
}

/* exp(x) in float without branches, so that the loops below vectorise: x clamped to [-87, 88]
 * (the result stays a normal float), x = r ln2 + f with r = round(x log2 e) and f reduced in two
 * parts (Cody-Waite, exact for |r| <= 127), e^f by its degree-7 Taylor polynomial on
 * |f| <= ln2/2, then r added to the exponent bits. Measured relative error over [-87, 88]
 * (steps of 1e-4, against exp in double): at most 9.9e-8. */
static inline float vexpf(float x) {
  x = fsel(x > -87.0f, x, -87.0f); /* NaN becomes -87 here; callers' other factors keep it NaN */
  x = fsel(x < 88.0f, x, 88.0f);
  float r = (x * 1.4426950408889634f + 12582912.0f) - 12582912.0f; /* round to nearest */
  float f = (x - r * 0.693145752f) - r * 1.42860677e-6f;
  union {
    float f;
    int32_t i;
  } u = {EXP_POLY(f)};
  u.i += (int32_t)r * (1 << 23);
  return u.f;
}

/* erf(z) given e = exp(-z*z) (callers have it: GELU's derivative needs the same exponential).
 * Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7 in exact arithmetic); measured in
 * float over [-6, 6] against erf in double: at most 5.3e-7, near 0 where 1 - p e cancels. */
static inline float verf_given_exp(float z, float e) {
  float a = fabsf(z), t = 1.0f / (1.0f + 0.3275911f * a);
  float p = t * (0.254829592f +
                 t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  float y = 1.0f - p * e;
  return fsel(z < 0.0f, -y, y);
}

/* ---- normalisation -----------------------------------------------------------------------------
 */

/* The fast path works in float lanes that vectorise, over runs of at most NORM_BLOCK values,
 * and adds the runs in double: the statistics are shifted by the group's first value (so the
 * one-pass variance does not cancel when the mean is large against the spread), and the input
 * gradient is one fused multiply-add per element with per-channel coefficients. */
enum { NORM_BLOCK = 1024 };

/* s1 += sum(x - k), s2 += sum((x - k)^2) over n values */
static inline void run_sum2(const float *x, int64_t n, float k, double *s1, double *s2) {
  for (int64_t i0 = 0; i0 < n; i0 += NORM_BLOCK) {
    int64_t m = n - i0 < NORM_BLOCK ? n - i0 : NORM_BLOCK;
    float a = 0.0f, b = 0.0f;
#pragma omp simd reduction(+ : a, b)
    for (int64_t i = 0; i < m; i++) {
      float d = x[i0 + i] - k;
      a += d;
      b += d * d;
    }
    *s1 += a, *s2 += b;
  }
}

/* sd += sum(d), sdx += sum(d * (x - mu)) over n values */
static inline void run_dot2(const float *d, const float *x, int64_t n, float mu, double *sd,
                            double *sdx) {
  for (int64_t i0 = 0; i0 < n; i0 += NORM_BLOCK) {
    int64_t m = n - i0 < NORM_BLOCK ? n - i0 : NORM_BLOCK;
    float a = 0.0f, b = 0.0f;
#pragma omp simd reduction(+ : a, b)
    for (int64_t i = 0; i < m; i++) {
      a += d[i0 + i];
      b += d[i0 + i] * (x[i0 + i] - mu);
    }
    *sd += a, *sdx += b;
  }
}

/* mean and 1/sqrt(var + eps) from shifted sums over cnt values */
static void norm_stats(double s1, double s2, int64_t cnt, float k, float eps, float *mean,
                       float *rstd) {
  double m1 = s1 / (double)cnt, var = s2 / (double)cnt - m1 * m1;
  *mean = (float)(k + m1);
  *rstd = (float)(1.0 / sqrt((var > 0.0 ? var : 0.0) + (double)eps));
}

static inline float silu_f(float z) { return z / (1.0f + vexpf(-z)); }
static inline float silu_df(float z) {
  float sg = 1.0f / (1.0f + vexpf(-z));
  return sg * (1.0f + z * (1.0f - sg));
}

/* group norm, and with silu != 0 the fused group norm + SiLU */
static void gn_fwd(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                   const float *bias, int N, int T, int C, int S, int G, float eps, int silu) {
  int Cg = C / G;
  size_t per = (size_t)T * C * S, run = (size_t)Cg * S;
#pragma omp parallel for schedule(static) if ((int64_t)N * per > 32768)
  for (int ng = 0; ng < N * G; ng++) {
    int n = ng / G, c0 = (ng % G) * Cg;
    const float *x = inp + n * per + (size_t)c0 * S;
    float *o = out + n * per + (size_t)c0 * S;
    double s1 = 0.0, s2 = 0.0;
    float k = x[0];
    for (int t = 0; t < T; t++) run_sum2(x + (size_t)t * C * S, (int64_t)run, k, &s1, &s2);
    float mu, rs;
    norm_stats(s1, s2, (int64_t)T * run, k, eps, &mu, &rs);
    mean[ng] = mu, rstd[ng] = rs;
    for (int t = 0; t < T; t++)
      for (int c = 0; c < Cg; c++) {
        const float *xr = x + ((size_t)t * C + c) * S;
        float *orow = o + ((size_t)t * C + c) * S;
        float a = rs * (weight ? weight[c0 + c] : 1.0f), b = bias ? bias[c0 + c] : 0.0f;
        if (silu) {
#pragma omp simd
          for (int i = 0; i < S; i++) orow[i] = silu_f((xr[i] - mu) * a + b);
        } else {
#pragma omp simd
          for (int i = 0; i < S; i++) orow[i] = (xr[i] - mu) * a + b;
        }
      }
  }
}

static void fast_groupnorm_fwd(float *out, float *mean, float *rstd, const float *inp,
                               const float *weight, const float *bias, int N, int T, int C, int S,
                               int G, float eps) {
  gn_fwd(out, mean, rstd, inp, weight, bias, N, T, C, S, G, eps, 0);
}
static void fast_groupnorm_silu_fwd(float *out, float *mean, float *rstd, const float *inp,
                                    const float *weight, const float *bias, int N, int T, int C,
                                    int S, int G, float eps) {
  gn_fwd(out, mean, rstd, inp, weight, bias, N, T, C, S, G, eps, 1);
}

/* Backward of gn_fwd. With silu, dz = dout * silu'(z) of the recomputed normalised values z is
 * made once per group into the thread's scratch (a group is T*Cg*S floats) and both passes read
 * it; without, dz is dout. */
static void gn_bwd(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                   const float *mean, const float *rstd, const float *weight, const float *bias,
                   int N, int T, int C, int S, int G, int silu) {
  int Cg = C / G;
  size_t per = (size_t)T * C * S;
  /* per (n, t, c): sum(dz) and sum(dz (x - mean)), for both the input and parameter gradients */
  double *rs1 = xmalloc(sizeof(double) * 2 * (size_t)N * T * C), *rs2 = rs1 + (size_t)N * T * C;
#pragma omp parallel for schedule(static) if ((int64_t)N * per > 32768)
  for (int ng = 0; ng < N * G; ng++) {
    int n = ng / G, c0 = (ng % G) * Cg;
    float mu = mean[ng], rs = rstd[ng];
    float *dzg = silu ? scratch_f32((size_t)T * Cg * S) : NULL;
    double sg = 0.0, sgx = 0.0;
    for (int t = 0; t < T; t++)
      for (int c = c0; c < c0 + Cg; c++) {
        size_t off = n * per + ((size_t)t * C + c) * S, r = ((size_t)n * T + t) * C + c;
        const float *dz = dout + off, *x = inp + off;
        if (silu) {
          float *d = dzg + ((size_t)t * Cg + (c - c0)) * S;
          float a = rs * (weight ? weight[c] : 1.0f), b = bias ? bias[c] : 0.0f;
#pragma omp simd
          for (int i = 0; i < S; i++) d[i] = dz[i] * silu_df((x[i] - mu) * a + b);
          dz = d;
        }
        double sd = 0.0, sdx = 0.0;
        run_dot2(dz, x, S, mu, &sd, &sdx);
        rs1[r] = sd, rs2[r] = sdx;
        double w = weight ? weight[c] : 1.0;
        sg += w * sd, sgx += w * sdx * rs;
      }
    if (!dinp) continue;
    int64_t cnt = (int64_t)T * Cg * S;
    float mg = (float)(sg / (double)cnt), mgx = (float)(sgx / (double)cnt);
    for (int t = 0; t < T; t++)
      for (int c = c0; c < c0 + Cg; c++) {
        size_t off = n * per + ((size_t)t * C + c) * S;
        const float *d = silu ? dzg + ((size_t)t * Cg + (c - c0)) * S : dout + off, *x = inp + off;
        float *dx = dinp + off;
        /* rstd (w dz - mg - xhat mgx) */
        float a = rs * (weight ? weight[c] : 1.0f), bx = -rs * rs * mgx, c1 = -rs * mg;
#pragma omp simd
        for (int i = 0; i < S; i++) dx[i] += a * d[i] + bx * (x[i] - mu) + c1;
      }
  }
  if (dweight || dbias) {
    for (int c = 0; c < C; c++) {
      double sw = 0.0, sb = 0.0;
      for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++) {
          size_t r = ((size_t)n * T + t) * C + c;
          sb += rs1[r];
          sw += rs2[r] * rstd[n * G + c / Cg];
        }
      if (dweight) dweight[c] += (float)sw;
      if (dbias) dbias[c] += (float)sb;
    }
  }
  free(rs1);
}

static void fast_groupnorm_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *mean, const float *rstd,
                               const float *weight, int N, int T, int C, int S, int G) {
  gn_bwd(dinp, dweight, dbias, dout, inp, mean, rstd, weight, NULL, N, T, C, S, G, 0);
}
static void fast_groupnorm_silu_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                                    const float *inp, const float *mean, const float *rstd,
                                    const float *weight, const float *bias, int N, int T, int C,
                                    int S, int G) {
  gn_bwd(dinp, dweight, dbias, dout, inp, mean, rstd, weight, bias, N, T, C, S, G, 1);
}

static void fast_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp,
                               const float *weight, const float *bias, int N, int C, float eps) {
#pragma omp parallel for schedule(static) if ((int64_t)N * C > 16384)
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * C;
    float *o = out + (size_t)n * C;
    double s1 = 0.0, s2 = 0.0;
    run_sum2(x, C, x[0], &s1, &s2);
    float mu, rs;
    norm_stats(s1, s2, C, x[0], eps, &mu, &rs);
    mean[n] = mu, rstd[n] = rs;
    if (weight && bias) {
#pragma omp simd
      for (int c = 0; c < C; c++) o[c] = (x[c] - mu) * rs * weight[c] + bias[c];
    } else {
      for (int c = 0; c < C; c++)
        o[c] = (x[c] - mu) * rs * (weight ? weight[c] : 1.0f) + (bias ? bias[c] : 0.0f);
    }
  }
}

static void fast_layernorm_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *mean, const float *rstd,
                               const float *weight, int N, int C) {
  if (dinp) {
#pragma omp parallel for schedule(static) if ((int64_t)N * C > 16384)
    for (int n = 0; n < N; n++) {
      const float *d = dout + (size_t)n * C, *x = inp + (size_t)n * C;
      float *dx = dinp + (size_t)n * C, mu = mean[n], rs = rstd[n];
      float sg = 0.0f, sgx = 0.0f;
      if (weight) {
#pragma omp simd reduction(+ : sg, sgx)
        for (int c = 0; c < C; c++) {
          float g = d[c] * weight[c];
          sg += g, sgx += g * (x[c] - mu);
        }
      } else {
#pragma omp simd reduction(+ : sg, sgx)
        for (int c = 0; c < C; c++) sg += d[c], sgx += d[c] * (x[c] - mu);
      }
      float mg = sg / (float)C, mgx = sgx * rs / (float)C, bx = -rs * rs * mgx, c1 = -rs * mg;
      if (weight) {
#pragma omp simd
        for (int c = 0; c < C; c++) dx[c] += rs * weight[c] * d[c] + bx * (x[c] - mu) + c1;
      } else {
#pragma omp simd
        for (int c = 0; c < C; c++) dx[c] += rs * d[c] + bx * (x[c] - mu) + c1;
      }
    }
  }
  if (dweight || dbias) {
    /* blocks of channels over all rows: contiguous reads, one thread per block, fixed order */
    enum { CB = 16 };
#pragma omp parallel for schedule(static) if ((int64_t)N * C > 16384)
    for (int c0 = 0; c0 < C; c0 += CB) {
      int m = C - c0 < CB ? C - c0 : CB;
      double sw[CB] = {0}, sb[CB] = {0};
      for (int n = 0; n < N; n++) {
        const float *d = dout + (size_t)n * C + c0, *x = inp + (size_t)n * C + c0;
        float mu = mean[n], rs = rstd[n];
        for (int j = 0; j < m; j++) sb[j] += d[j], sw[j] += (double)d[j] * ((x[j] - mu) * rs);
      }
      for (int j = 0; j < m; j++) {
        if (dweight) dweight[c0 + j] += (float)sw[j];
        if (dbias) dbias[c0 + j] += (float)sb[j];
      }
    }
  }
}

/* ---- activations, element-wise ------------------------------------------------------------------
 */

static void fast_silu_fwd(float *out, const float *inp, int64_t n) {
  EW_PAR for (int64_t i = 0; i < n; i++) out[i] = inp[i] / (1.0f + vexpf(-inp[i]));
}
static void fast_silu_bwd(float *dinp, const float *dout, const float *inp, int64_t n) {
  EW_PAR for (int64_t i = 0; i < n; i++) {
    float x = inp[i], s = 1.0f / (1.0f + vexpf(-x));
    dinp[i] += dout[i] * s * (1.0f + x * (1.0f - s));
  }
}
static void fast_gelu_tanh_fwd(float *out, const float *inp, int64_t n) {
  EW_PAR for (int64_t i = 0; i < n; i++) {
    float x = inp[i], u = 0.7978845608f * (x + 0.044715f * x * x * x);
    out[i] = x - x / (1.0f + vexpf(2.0f * u)); /* 0.5 x (1 + tanh u) = x sigmoid(2u) */
  }
}
static void fast_gelu_tanh_bwd(float *dinp, const float *dout, const float *inp, int64_t n) {
  EW_PAR for (int64_t i = 0; i < n; i++) {
    float x = inp[i], u = 0.7978845608f * (x + 0.044715f * x * x * x);
    float th = 1.0f - 2.0f / (1.0f + vexpf(2.0f * u)); /* tanh u */
    dinp[i] += dout[i] * (0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * 0.7978845608f *
                                                   (1.0f + 3.0f * 0.044715f * x * x));
  }
}
static void fast_gelu_erf_fwd(float *out, const float *inp, int64_t n) {
  EW_PAR for (int64_t i = 0; i < n; i++) {
    float x = inp[i], z = x * 0.70710678f;
    out[i] = 0.5f * x * (1.0f + verf_given_exp(z, vexpf(-z * z)));
  }
}
static void fast_geglu_fwd(float *out, const float *inp, int M, int F) {
#pragma omp parallel for schedule(static) if ((int64_t)M * F > 32768)
  for (int m = 0; m < M; m++) {
    const float *a = inp + (size_t)m * 2 * F, *g = a + F;
    float *o = out + (size_t)m * F;
#pragma omp simd
    for (int f = 0; f < F; f++) {
      float x = g[f], z = x * 0.70710678f;
      o[f] = a[f] * (0.5f * x * (1.0f + verf_given_exp(z, vexpf(-z * z))));
    }
  }
}
static void fast_geglu_bwd(float *dinp, const float *dout, const float *inp, int M, int F) {
#pragma omp parallel for schedule(static) if ((int64_t)M * F > 32768)
  for (int m = 0; m < M; m++) {
    const float *a = inp + (size_t)m * 2 * F, *g = a + F, *dy = dout + (size_t)m * F;
    float *da = dinp + (size_t)m * 2 * F, *dg = da + F;
#pragma omp simd
    for (int f = 0; f < F; f++) {
      float x = g[f], z = x * 0.70710678f, e = vexpf(-z * z);
      float cdf = 0.5f * (1.0f + verf_given_exp(z, e));
      da[f] += dy[f] * x * cdf;
      dg[f] += dy[f] * a[f] * (cdf + x * 0.39894228f * e);
    }
  }
}
static void fast_gelu_erf_bwd(float *dinp, const float *dout, const float *inp, int64_t n) {
  EW_PAR for (int64_t i = 0; i < n; i++) {
    float x = inp[i], z = x * 0.70710678f, e = vexpf(-z * z);
    dinp[i] += dout[i] * (0.5f * (1.0f + verf_given_exp(z, e)) + x * 0.39894228f * e);
  }
}
/* exp(x) for x <= 0 (softmax arguments after the max is subtracted): 2^(x log2 e) split into
 * 2^n (added to the exponent bits) times 2^f, f in [-1/2, 1/2], by a degree-7 Taylor polynomial;
 * relative error below 2e-7. Arguments below -87 (and masked -inf entries) give exactly 0:
 * exp(-87) ~ 1.6e-38 is invisible in a row sum >= 1, and masked keys must get probability 0. SSE2
 * (the x86-64 baseline) four at a time, scalar elsewhere. */
static inline float exp_nonpos(float x) {
  if (x < -87.0f) return 0.0f;  // also a masked (-inf) entry: exactly zero
  float t = x * 1.4426950408889634f;
  float r = (t + 12582912.0f) - 12582912.0f;  // round to nearest integer (|t| < 2^22)
  float f = (t - r) * 0.6931471805599453f;    // 2^(t-r) = e^f
  union {
    float f;
    int32_t i;
  } u = {EXP_POLY(f)};
  u.i += (int32_t)r * (1 << 23);  // times 2^r (r >= -126: no overflow)
  return u.f;
}
/* p[j] = exp(p[j] - mx) for j < n; returns the sum (fixed order: four lanes, then the tail). */
static float exp_row(float *p, int n, float mx) {
  int j = 0;
  float sum = 0.0f;
#ifdef __SSE2__
  __m128 acc = _mm_setzero_ps(), vmx = _mm_set1_ps(mx), lo = _mm_set1_ps(-87.0f);
  for (; j + 4 <= n; j += 4) {
    __m128 xr = _mm_sub_ps(_mm_loadu_ps(p + j), vmx), x = _mm_max_ps(xr, lo);
    __m128 t = _mm_mul_ps(x, _mm_set1_ps(1.4426950408889634f));
    __m128i ri = _mm_cvtps_epi32(t);  // round to nearest
    __m128 f = _mm_mul_ps(_mm_sub_ps(t, _mm_cvtepi32_ps(ri)), _mm_set1_ps(0.6931471805599453f));
    __m128 q = _mm_set1_ps(1.0f / 5040);
    q = _mm_add_ps(_mm_mul_ps(q, f), _mm_set1_ps(1.0f / 720));
    q = _mm_add_ps(_mm_mul_ps(q, f), _mm_set1_ps(1.0f / 120));
    q = _mm_add_ps(_mm_mul_ps(q, f), _mm_set1_ps(1.0f / 24));
    q = _mm_add_ps(_mm_mul_ps(q, f), _mm_set1_ps(1.0f / 6));
    q = _mm_add_ps(_mm_mul_ps(q, f), _mm_set1_ps(0.5f));
    q = _mm_add_ps(_mm_mul_ps(q, f), _mm_set1_ps(1.0f));
    q = _mm_add_ps(_mm_mul_ps(q, f), _mm_set1_ps(1.0f));
    q = _mm_castsi128_ps(_mm_add_epi32(_mm_castps_si128(q), _mm_slli_epi32(ri, 23)));
    q = _mm_and_ps(q, _mm_cmpge_ps(xr, lo));  // below -87 or -inf: 0
    _mm_storeu_ps(p + j, q);
    acc = _mm_add_ps(acc, q);
  }
  float lanes[4];
  _mm_storeu_ps(lanes, acc);
  sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
#endif
  for (; j < n; j++) {
    p[j] = exp_nonpos(p[j] - mx);
    sum += p[j];
  }
  return sum;
}

/* Softmax of one row in place with a mask (add, keep may be NULL): one expf per element (the
 * reference computes exp twice in double; this is the step that bounds attention's forward).
 * An all-masked row becomes zeros. */
static void fast_softmax_row(float *p, const float *add, const uint8_t *keep, int n) {
  float mx = -INFINITY;
  for (int j = 0; j < n; j++) {
    float s = p[j] + (add ? add[j] : 0.0f);
    if (keep && !keep[j]) s = -INFINITY;
    p[j] = s;
    mx = s > mx ? s : mx;
  }
  if (mx == -INFINITY) {
    memset(p, 0, sizeof(float) * n);
    return;
  }
  float sum = exp_row(p, n, mx);
  float inv = 1.0f / sum;
  for (int j = 0; j < n; j++) p[j] *= inv;
}

static void fast_softmax_fwd(float *out, const float *inp, int N, int C) {
#pragma omp parallel for schedule(static) if ((int64_t)N * C > 16384)
  for (int n = 0; n < N; n++) {
    if (out != inp) memcpy(out + (size_t)n * C, inp + (size_t)n * C, sizeof(float) * C);
    fast_softmax_row(out + (size_t)n * C, NULL, NULL, C);
  }
}
static void fast_softmax_bwd(float *dinp, const float *dout, const float *out, int N, int C) {
#pragma omp parallel for schedule(static) if ((int64_t)N * C > 16384)
  for (int n = 0; n < N; n++)
    cpu_softmax_row_bwd(dinp + (size_t)n * C, dout + (size_t)n * C, out + (size_t)n * C, C);
}
static void fast_add_fwd(float *out, const float *a, const float *b, int64_t n) {
  EW_PAR for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
static void fast_axpy(float *y, float alpha, const float *x, int64_t n) {
  EW_PAR for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}
/* dbias (B, C) += sums of dout over (T, S) per (b, c); dinp += dout */
static void fast_bias_add_bwd(float *dinp, float *dbias, const float *dout, int B, int T, int C,
                              int S) {
  if (dinp) fast_axpy(dinp, 1.0f, dout, (int64_t)B * T * C * S);
  if (dbias)
    for (int b = 0; b < B; b++)
      channel_sums_add(dbias + (size_t)b * C, dout + (size_t)b * T * C * S, T, C, (size_t)S);
}
static void fast_scale_fwd(float *out, const float *inp, float s, int64_t n) {
  EW_PAR for (int64_t i = 0; i < n; i++) out[i] = s * inp[i];
}
static void fast_mul_fwd(float *out, const float *a, const float *b, int64_t n) {
  EW_PAR for (int64_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}
static void fast_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n,
                            float lr, float beta1, float beta2, float eps, float weight_decay,
                            int64_t step) {
  double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
  EW_PAR for (int64_t i = 0; i < n; i++) {
    float g = grad[i];
    m[i] = beta1 * m[i] + (1.0f - beta1) * g;
    v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
    double mh = m[i] / bc1, vh = v[i] / bc2;
    double p = (double)param[i] * (1.0 - (double)lr * weight_decay);
    param[i] = (float)(p - lr * mh / (sqrt(vh) + eps));
  }
}
static void fast_ema_update(float *ema, const float *param, float decay, int64_t n) {
  EW_PAR for (int64_t i = 0; i < n; i++) ema[i] = decay * ema[i] + (1.0f - decay) * param[i];
}
/* Fixed chunks of 2^16 summed in double, then the chunk sums in order: the same bits for any
 * thread count. */
#define SUMSQ_CHUNK 65536
static void fast_sumsq(float *out, const float *x, int64_t n) {
  int64_t nch = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
  double *part = malloc(sizeof(double) * (size_t)(nch > 0 ? nch : 1));
#pragma omp parallel for schedule(static) if (nch > 1)
  for (int64_t c = 0; c < nch; c++) {
    int64_t hi = (c + 1) * SUMSQ_CHUNK < n ? (c + 1) * SUMSQ_CHUNK : n;
    double s = 0.0;
    for (int64_t i = c * SUMSQ_CHUNK; i < hi; i++) s += (double)x[i] * x[i];
    part[c] = s;
  }
  double s = 0.0;
  for (int64_t c = 0; c < nch; c++) s += part[c];
  *out = (float)s;
  free(part);
}

/* ---- attention: per (b, h), scores and outputs by sgemm
 * ------------------------------------------ Even the temporal attention's 16x16x16 products run
 * faster through OpenBLAS than through plain vectorised loops (measured: fwd 7.8 vs 6.3, bwd 17.6
 * vs 9.6 GFLOP/s, one thread). */

static void fast_attention_fwd(float *out, float *probs, const float *q, const float *k,
                               const float *v, const op_attn_mask *mask, int B, int H, int Nq,
                               int Nk, int D, float scale) {
  WORK_LOOP_BEGIN((int64_t)B * H)
  (void)tid;
  int b = (int)(item / H);
  float *P = probs + item * (size_t)Nq * Nk;
  const float *qi = q + item * (size_t)Nq * D, *ki = k + item * (size_t)Nk * D;
  sgemm(0, 1, Nq, Nk, D, scale, qi, D, ki, D, 0.0f, P, Nk);
  size_t moff = mask ? (size_t)(b % mask->mb) * Nq * Nk : 0;
  for (int i = 0; i < Nq; i++)
    fast_softmax_row(P + (size_t)i * Nk,
                     mask && mask->add ? mask->add + moff + (size_t)i * Nk : NULL,
                     mask && mask->keep ? mask->keep + moff + (size_t)i * Nk : NULL, Nk);
  sgemm(0, 0, Nq, D, Nk, 1.0f, P, Nk, v + item * (size_t)Nk * D, D, 0.0f,
        out + item * (size_t)Nq * D, D);
  WORK_LOOP_END
}

static void fast_attention_bwd(float *dq, float *dk, float *dv, const float *dout,
                               const float *dprobs, const float *q, const float *k, const float *v,
                               const float *probs, int B, int H, int Nq, int Nk, int D,
                               float scale) {
  int nt = cpu_fast_threads();
  float *bufs = scratch_f32((size_t)nt * Nq * Nk);  // fully overwritten per item
  WORK_LOOP_BEGIN((int64_t)B * H)
  float *dS = bufs + (size_t)tid * Nq * Nk;
  const float *P = probs + item * (size_t)Nq * Nk, *dO = dout + item * (size_t)Nq * D;
  const float *qb = q + item * (size_t)Nq * D, *kb = k + item * (size_t)Nk * D,
              *vb = v + item * (size_t)Nk * D;
  // dP = dO v^T (+ dprobs)
  if (dprobs) memcpy(dS, dprobs + item * (size_t)Nq * Nk, sizeof(float) * Nq * Nk);
  sgemm(0, 1, Nq, Nk, D, 1.0f, dO, D, vb, D, dprobs ? 1.0f : 0.0f, dS, Nk);
  if (dv) sgemm(1, 0, Nk, D, Nq, 1.0f, P, Nk, dO, D, 1.0f, dv + item * (size_t)Nk * D, D);
  for (int i = 0; i < Nq; i++) {
    float *r = dS + (size_t)i * Nk;
    const float *p = P + (size_t)i * Nk;
    double dot = 0.0;
    for (int j = 0; j < Nk; j++) dot += (double)r[j] * p[j];
    for (int j = 0; j < Nk; j++) r[j] = p[j] * (r[j] - (float)dot);
  }
  if (dq) sgemm(0, 0, Nq, D, Nk, scale, dS, Nk, kb, D, 1.0f, dq + item * (size_t)Nq * D, D);
  if (dk) sgemm(1, 0, Nk, D, Nq, scale, dS, Nk, qb, D, 1.0f, dk + item * (size_t)Nk * D, D);
  WORK_LOOP_END
}

/* ---- layout
 * ---------------------------------------------------------------------------------------- */

/* Permutes: dims of size 1 dropped and dims that stay neighbours in order merged, most permutes
 * a model makes (token views, head splits) are a batched transpose with a contiguous inner block:
 * inp (nb, R, C, E) -> out (nb, C, R, E). Those run as 16x16 tiles over (R, C), in parallel over
 * batches and tile rows; anything else takes the generic index walk. */
typedef struct {
  int64_t nb, R, C, E;
} transpose_shape;

/* 1 when (shape, perm) is such a transpose (R == 1 or C == 1 included: then a copy) */
static int permute_as_transpose(int ndim, const int *shape, const int *perm, transpose_shape *t) {
  /* groups: runs of output dims whose input dims follow each other (unit dims skipped) */
  int64_t gsize[6];
  int gfirst[6], ng = 0, last = -1;
  for (int d = 0; d < ndim; d++) {
    int k = perm[d];
    if (shape[k] == 1) continue;
    int joins = last >= 0 && k > last;
    for (int j = last + 1; joins && j < k; j++)
      if (shape[j] != 1) joins = 0;
    if (joins) {
      gsize[ng - 1] *= shape[k];
    } else {
      gfirst[ng] = k, gsize[ng] = shape[k];
      ng++;
    }
    last = k;
  }
  /* order[i]: the output group at input position i */
  int order[6];
  for (int i = 0; i < ng; i++) order[i] = i;
  for (int i = 1; i < ng; i++)
    for (int j = i; j > 0 && gfirst[order[j - 1]] > gfirst[order[j]]; j--) {
      int tmp = order[j];
      order[j] = order[j - 1], order[j - 1] = tmp;
    }
  t->nb = t->R = t->C = t->E = 1;
  int lo = 0, hi = ng;
  if (hi > lo && order[lo] == lo) t->nb = gsize[lo], lo++;
  if (hi > lo && order[hi - 1] == hi - 1) t->E = gsize[hi - 1], hi--;
  if (hi == lo) return 1;
  /* input (nb, R, C, E) -> output (nb, C, R, E): input position lo is output group lo + 1 */
  if (hi - lo != 2 || order[lo] != lo + 1 || order[lo + 1] != lo) return 0;
  t->R = gsize[lo + 1], t->C = gsize[lo];
  return 1;
}

/* out (nb, C, R, E) (=, or += when acc) from inp (nb, R, C, E) */
static void transpose_run(float *out, const float *inp, const transpose_shape *t, int acc) {
  enum { TB = 16 };
  int64_t R = t->R, C = t->C, E = t->E, tiles_r = (R + TB - 1) / TB;
  int64_t work = t->nb * tiles_r;
#pragma omp parallel for schedule(static) if (t->nb * R * C * E > 32768)
  for (int64_t w = 0; w < work; w++) {
    int64_t b = w / tiles_r, r0 = (w % tiles_r) * TB, r1 = r0 + TB < R ? r0 + TB : R;
    const float *src = inp + b * R * C * E;
    float *dst = out + b * R * C * E;
    for (int64_t c0 = 0; c0 < C; c0 += TB) {
      int64_t c1 = c0 + TB < C ? c0 + TB : C;
      for (int64_t c = c0; c < c1; c++)
        for (int64_t r = r0; r < r1; r++) {
          const float *sp = src + (r * C + c) * E;
          float *dp = dst + (c * R + r) * E;
          if (acc) {
#pragma omp simd
            for (int64_t e = 0; e < E; e++) dp[e] += sp[e];
          } else if (E == 1) {
            *dp = *sp;
          } else {
            memcpy(dp, sp, sizeof(float) * (size_t)E);
          }
        }
    }
  }
}

static void fast_permute_fwd(float *out, const float *inp, int ndim, const int *shape,
                             const int *perm) {
  transpose_shape t;
  if (permute_as_transpose(ndim, shape, perm, &t)) {
    transpose_run(out, inp, &t, 0);
    return;
  }
  int64_t n0 = shape[perm[0]], total = 1;
  for (int d = 0; d < ndim; d++) total *= shape[d];
  int nt = total > 32768 ? cpu_fast_threads() : 1;
#pragma omp parallel num_threads(nt)
  {
    int tid = 0, n = 1;
#ifdef _OPENMP
    tid = omp_get_thread_num();
    n = omp_get_num_threads();
#endif
    cpu_permute_range(out, inp, ndim, shape, perm, 0, n0 * tid / n, n0 * (tid + 1) / n);
  }
}

static void fast_permute_bwd(float *dinp, const float *dout, int ndim, const int *shape,
                             const int *perm) {
  int oshape[6] = {0}, inv[6] = {0};
  for (int d = 0; d < ndim; d++) {
    oshape[d] = shape[perm[d]];
    inv[perm[d]] = d;
  }
  /* dinp viewed as the output of permuting dout (shape oshape) by inv, accumulated */
  transpose_shape t;
  if (permute_as_transpose(ndim, oshape, inv, &t)) {
    transpose_run(dinp, dout, &t, 1);
    return;
  }
  int64_t n0 = shape[0], total = 1;
  for (int d = 0; d < ndim; d++) total *= shape[d];
  int nt = total > 32768 ? cpu_fast_threads() : 1;
#pragma omp parallel num_threads(nt)
  {
    int tid = 0, n = 1;
#ifdef _OPENMP
    tid = omp_get_thread_num();
    n = omp_get_num_threads();
#endif
    cpu_permute_range(dinp, dout, ndim, oshape, inv, 2, n0 * tid / n, n0 * (tid + 1) / n);
  }
}

/* ---- token sequences, cross-entropy
 * ---------------------------------------------------------------------------------------- */

static void fast_embedding_fwd(float *out, const float *table, const int32_t *ids, int N, int V,
                               int D) {
#pragma omp parallel for schedule(static) if ((int64_t)N * D > 32768)
  for (int n = 0; n < N; n++) {
    float *o = out + (size_t)n * D;
    if (ids[n] < 0 || ids[n] >= V) memset(o, 0, sizeof(float) * (size_t)D);
    else memcpy(o, table + (size_t)ids[n] * D, sizeof(float) * (size_t)D);
  }
}
/* Threads split the D columns; each walks every row in n order, so rows sharing an id add up in
 * the same order as the reference whatever the thread count. */
static void fast_embedding_bwd(float *dtable, const float *dout, const int32_t *ids, int N, int V,
                               int D) {
  if (!dtable) return;
  enum { COLS = 16 };
  int nblk = (D + COLS - 1) / COLS;
#pragma omp parallel for schedule(static) if ((int64_t)N * D > 32768)
  for (int blk = 0; blk < nblk; blk++) {
    int d0 = blk * COLS, d1 = d0 + COLS < D ? d0 + COLS : D;
    for (int n = 0; n < N; n++) {
      if (ids[n] < 0 || ids[n] >= V) continue;
      float *g = dtable + (size_t)ids[n] * D;
      const float *r = dout + (size_t)n * D;
#pragma omp simd
      for (int d = d0; d < d1; d++) g[d] += r[d];
    }
  }
}
static void fast_token_pool_fwd(float *out, const float *inp, const float *w, int B, int N, int C) {
#pragma omp parallel for schedule(static) if ((int64_t)B * N * C > 32768)
  for (int b = 0; b < B; b++) {
    float *o = out + (size_t)b * C;
    memset(o, 0, sizeof(float) * (size_t)C);
    for (int n = 0; n < N; n++) {
      float wn = w[(size_t)b * N + n];
      if (wn == 0.0f) continue;
      const float *x = inp + ((size_t)b * N + n) * C;
#pragma omp simd
      for (int c = 0; c < C; c++) o[c] += wn * x[c];
    }
  }
}
static void fast_token_pool_bwd(float *dinp, const float *dout, const float *w, int B, int N,
                                int C) {
  if (!dinp) return;
#pragma omp parallel for schedule(static) if ((int64_t)B * N * C > 32768)
  for (int64_t bn = 0; bn < (int64_t)B * N; bn++) {
    float wn = w[bn];
    const float *g = dout + (size_t)(bn / N) * C;
    float *d = dinp + (size_t)bn * C;
#pragma omp simd
    for (int c = 0; c < C; c++) d[c] += wn * g[c];
  }
}
/* Rows in parallel (one expf per element through the masked softmax row), the loss terms
 * summed in row order in double. */
static void fast_xent_fwd(float *loss, float *probs, const float *logits, const int32_t *target,
                          int N, int C, float scale) {
  double *term = malloc(sizeof(double) * (size_t)(N > 0 ? N : 1));
#pragma omp parallel for schedule(static) if ((int64_t)N * C > 16384)
  for (int n = 0; n < N; n++) {
    float *p = probs + (size_t)n * C;
    const float *x = logits + (size_t)n * C;
    for (int j = 0; j < C; j++) p[j] = scale * x[j];
    int t = target[n];
    float xt = t >= 0 && t < C ? p[t] : 0.0f;
    float mx = -INFINITY;
    for (int j = 0; j < C; j++) mx = p[j] > mx ? p[j] : mx;
    float sum = exp_row(p, C, mx);
    float inv = 1.0f / sum;
    for (int j = 0; j < C; j++) p[j] *= inv;
    term[n] = t >= 0 && t < C ? (double)mx + log((double)sum) - xt : 0.0;
  }
  double l = 0.0;
  for (int n = 0; n < N; n++) l += term[n];
  *loss = N > 0 ? (float)(l / N) : 0.0f;
  free(term);
}
static void fast_xent_bwd(float *dlogits, float dloss, const float *probs, const int32_t *target,
                          int N, int C, float scale) {
  if (!dlogits || N <= 0) return;
  float k = (float)((double)dloss * scale / N);
#pragma omp parallel for schedule(static) if ((int64_t)N * C > 16384)
  for (int n = 0; n < N; n++) {
    int t = target[n];
    if (t < 0 || t >= C) continue;
    float *g = dlogits + (size_t)n * C;
    const float *p = probs + (size_t)n * C;
    for (int j = 0; j < C; j++) g[j] += k * (p[j] - (j == t ? 1.0f : 0.0f));
  }
}

/* The reference entry for every op, then this backend's own where it has one (a later
 * designated initializer replaces an earlier one: C11 6.7.9). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"
const ops_backend ops_cpu_fast_table = {
    .name = "cpu-fast",
    .set_num_threads = fast_set_num_threads,
#define OP(name, params, args) .name = ref_##name,
#include "kernels/ops_list.h"
#undef OP
    .matmul = fast_matmul,
    .linear_fwd = fast_linear_fwd,
    .linear_bwd = fast_linear_bwd,
    .conv2d_fwd = fast_conv2d_fwd,
    .conv2d_bwd = fast_conv2d_bwd,
    .tconv_fwd = fast_tconv_fwd,
    .tconv_bwd = fast_tconv_bwd,
    .conv3d_fwd = fast_conv3d_fwd,
    .conv3d_bwd = fast_conv3d_bwd,
    .groupnorm_fwd = fast_groupnorm_fwd,
    .groupnorm_bwd = fast_groupnorm_bwd,
    .groupnorm_silu_fwd = fast_groupnorm_silu_fwd,
    .groupnorm_silu_bwd = fast_groupnorm_silu_bwd,
    .layernorm_fwd = fast_layernorm_fwd,
    .layernorm_bwd = fast_layernorm_bwd,
    .silu_fwd = fast_silu_fwd,
    .silu_bwd = fast_silu_bwd,
    .gelu_tanh_fwd = fast_gelu_tanh_fwd,
    .gelu_tanh_bwd = fast_gelu_tanh_bwd,
    .gelu_erf_fwd = fast_gelu_erf_fwd,
    .gelu_erf_bwd = fast_gelu_erf_bwd,
    .geglu_fwd = fast_geglu_fwd,
    .geglu_bwd = fast_geglu_bwd,
    .softmax_fwd = fast_softmax_fwd,
    .softmax_bwd = fast_softmax_bwd,
    .attention_fwd = fast_attention_fwd,
    .attention_bwd = fast_attention_bwd,
    .permute_fwd = fast_permute_fwd,
    .permute_bwd = fast_permute_bwd,
    .add_fwd = fast_add_fwd,
    .axpy = fast_axpy,
    .scale_fwd = fast_scale_fwd,
    .mul_fwd = fast_mul_fwd,
    .bias_add_bwd = fast_bias_add_bwd,
    .adamw_step = fast_adamw_step,
    .sumsq = fast_sumsq,
    .ema_update = fast_ema_update,
    .embedding_fwd = fast_embedding_fwd,
    .embedding_bwd = fast_embedding_bwd,
    .token_pool_fwd = fast_token_pool_fwd,
    .token_pool_bwd = fast_token_pool_bwd,
    .xent_fwd = fast_xent_fwd,
    .xent_bwd = fast_xent_bwd,
};
#pragma GCC diagnostic pop

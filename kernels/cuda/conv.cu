/* kernels/cuda/conv.cu — conv2d, temporal conv and conv3d as im2col + one cuBLAS GEMM per chunk.
 *
 * All three are one 3-D convolution on the video layout: inp (B, T, Cin, H, W), weight
 * (Cout, Cin, kt, k, k), out (B, To, Cout, Ho, Wo). conv2d is B = N images, T = kt = 1; tconv is
 * H = 1, W = S, k = 1, pad_t = kt/2. Output frames n = b*To + to are processed in chunks
 * [n0, n1): the chunk's columns col (R, nc*P) (R = Cin*kt*k*k rows in the weight's order,
 * P = Ho*Wo) feed a single GEMM W (Cout, R) · col, which keeps small spatial sizes (8×8, 16×16
 * latents) efficient. Why not cuDNN: the activations are (B, T, C, H, W), not cuDNN's NCDHW, so
 * conv3d would need transposes or strided descriptors that not every algorithm supports; this
 * path has one code for all three ops, is deterministic by construction (no atomics: the
 * column-to-image step gathers), takes its workspace from the op scratch, and inherits the bf16
 * GEMM mode. cuDNN stays an optimisation to measure against this (docs/CUDA.md).
 */
#include "kernels/cuda/cuda_internal.cuh"

struct conv_geom {
  int B, T, Cin, H, W, Cout, kt, k, st, s, pt, p, To, Ho, Wo;
};

/* col[r][j], j = (n - n0)*P + (yo*Wo + xo), r = ((ci*kt + dt)*k + dy)*k + dx */
static __global__ void im2col_k(float *col, const float *inp, conv_geom g, int64_t n0,
                                int64_t ncols) {
  int64_t P = (int64_t)g.Ho * g.Wo, R = (int64_t)g.Cin * g.kt * g.k * g.k;
  CU_FOR(idx, R * ncols) {
    int64_t r = idx / ncols, j = idx - r * ncols;
    int64_t n = n0 + j / P, pp = j % P;
    int b = (int)(n / g.To), to = (int)(n % g.To);
    int yo = (int)(pp / g.Wo), xo = (int)(pp % g.Wo);
    int dx = (int)(r % g.k), dy = (int)((r / g.k) % g.k), dt = (int)((r / (g.k * g.k)) % g.kt);
    int ci = (int)(r / ((int64_t)g.k * g.k * g.kt));
    int ti = to * g.st - g.pt + dt, yi = yo * g.s - g.p + dy, xi = xo * g.s - g.p + dx;
    float v = 0.0f;
    if (ti >= 0 && ti < g.T && yi >= 0 && yi < g.H && xi >= 0 && xi < g.W)
      v = inp[((((int64_t)b * g.T + ti) * g.Cin + ci) * g.H + yi) * g.W + xi];
    col[idx] = v;
  }
}

/* dinp (+)= the gather of dcol over the chunk's output frames [n0, n1): each input element
 * sums its (dt, dy, dx) contributions in a fixed order, so no atomics are needed. The launch
 * covers the input frames of batches b0..b1 only. */
static __global__ void col2im_k(float *dinp, const float *dcol, conv_geom g, int64_t n0,
                                int64_t n1, int b0, int b1) {
  int64_t P = (int64_t)g.Ho * g.Wo, ncols = (n1 - n0) * P;
  int64_t per_b = (int64_t)g.T * g.Cin * g.H * g.W;
  int64_t total = (int64_t)(b1 - b0 + 1) * per_b;
  CU_FOR(idx, total) {
    int64_t rem = idx;
    int xi = (int)(rem % g.W); rem /= g.W;
    int yi = (int)(rem % g.H); rem /= g.H;
    int ci = (int)(rem % g.Cin); rem /= g.Cin;
    int ti = (int)(rem % g.T); rem /= g.T;
    int b = b0 + (int)rem;
    float sum = 0.0f;
    int touched = 0;
    for (int dt = 0; dt < g.kt; dt++) {
      int tn = ti + g.pt - dt;
      if (tn < 0 || tn % g.st) continue;
      int to = tn / g.st;
      if (to >= g.To) continue;
      int64_t n = (int64_t)b * g.To + to;
      if (n < n0 || n >= n1) continue;
      for (int dy = 0; dy < g.k; dy++) {
        int yn = yi + g.p - dy;
        if (yn < 0 || yn % g.s) continue;
        int yo = yn / g.s;
        if (yo >= g.Ho) continue;
        for (int dx = 0; dx < g.k; dx++) {
          int xn = xi + g.p - dx;
          if (xn < 0 || xn % g.s) continue;
          int xo = xn / g.s;
          if (xo >= g.Wo) continue;
          int64_t r = (((int64_t)ci * g.kt + dt) * g.k + dy) * g.k + dx;
          int64_t j = (n - n0) * P + (int64_t)yo * g.Wo + xo;
          sum += dcol[r * ncols + j];
          touched = 1;
        }
      }
    }
    if (touched) dinp[(int64_t)b0 * per_b + idx] += sum;
  }
}

/* out[n][co][p] = tmp[co][(n - n0)*P + p] + bias[co] */
static __global__ void scatter_out_k(float *out, const float *tmp, const float *bias, int Cout,
                                     int64_t P, int64_t n0, int64_t ncols) {
  CU_FOR(idx, (int64_t)Cout * ncols) {
    int64_t co = idx / ncols, j = idx - co * ncols;
    int64_t n = n0 + j / P, pp = j % P;
    out[(n * Cout + co) * P + pp] = tmp[idx] + (bias ? bias[co] : 0.0f);
  }
}
/* tmp[co][(n - n0)*P + p] = dout[n][co][p] */
static __global__ void gather_dout_k(float *tmp, const float *dout, int Cout, int64_t P,
                                     int64_t n0, int64_t ncols) {
  CU_FOR(idx, (int64_t)Cout * ncols) {
    int64_t co = idx / ncols, j = idx - co * ncols;
    int64_t n = n0 + j / P, pp = j % P;
    tmp[idx] = dout[(n * Cout + co) * P + pp];
  }
}

static conv_geom make_geom(int B, int T, int Cin, int H, int W, int Cout, int kt, int k, int st,
                           int s, int pt, int p) {
  conv_geom g = {B, T, Cin, H, W, Cout, kt, k, st, s, pt, p, 0, 0, 0};
  g.To = (T + 2 * pt - kt) / st + 1;
  g.Ho = (H + 2 * p - k) / s + 1;
  g.Wo = (W + 2 * p - k) / s + 1;
  return g;
}

/* Output frames per chunk so that col + tmp (+ their bf16 copies in bf16 mode) fit the
 * scratch. */
static int64_t chunk_frames(const conv_geom &g) {
  int64_t P = (int64_t)g.Ho * g.Wo, R = (int64_t)g.Cin * g.kt * g.k * g.k;
  int64_t nout = (int64_t)g.B * g.To;
  int64_t per = (R + g.Cout) * P * 4;
  int64_t fixed = 1 << 20;
  if (g_cu.mode == CU_MODE_BF16) {
    per += (R + g.Cout) * P * 2;
    fixed += R * g.Cout * 2;
  }
  int64_t avail = (int64_t)cu_scratch_avail() - fixed;
  int64_t nc = avail > 0 ? avail / per : 0;
  int64_t maxcols = (int64_t)1 << 30; /* GEMM dimensions are int */
  if (nc * P > maxcols) nc = maxcols / P;
  if (nc > nout) nc = nout;
  TB_CHECKF(nc >= 1,
            "cuda conv: one output frame needs %lld MiB of op scratch (%zu MiB free): raise "
            "TURBO_CUDA_SCRATCH_MB",
            (long long)((per + fixed) >> 20) + 1, cu_scratch_avail() >> 20);
  return nc;
}

static void conv_fwd(float *out, const float *inp, const float *weight, const float *bias,
                     const conv_geom &g) {
  int64_t P = (int64_t)g.Ho * g.Wo, R = (int64_t)g.Cin * g.kt * g.k * g.k;
  int64_t nout = (int64_t)g.B * g.To;
  if (nout <= 0 || P <= 0 || g.Cout <= 0) return;
  int64_t nc = chunk_frames(g);
  for (int64_t n0 = 0; n0 < nout; n0 += nc) {
    int64_t n1 = n0 + nc < nout ? n0 + nc : nout, ncols = (n1 - n0) * P;
    size_t mark = cu_scratch_mark();
    float *col = (float *)cu_scratch_need((size_t)(R * ncols * 4), "conv im2col");
    float *tmp = (float *)cu_scratch_need((size_t)(g.Cout * ncols * 4), "conv output");
    im2col_k<<<cu_grid(R * ncols), CU_THREADS, 0, g_cu.compute>>>(col, inp, g, n0, ncols);
    CU_LAUNCHED();
    cu_gemm(0, 0, g.Cout, (int)ncols, (int)R, 1.0f, weight, 0, col, 0, 0.0f, tmp, 0, 1);
    scatter_out_k<<<cu_grid(g.Cout * ncols), CU_THREADS, 0, g_cu.compute>>>(out, tmp, bias, g.Cout,
                                                                            P, n0, ncols);
    CU_LAUNCHED();
    cu_scratch_release(mark);
  }
}

static void conv_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, const conv_geom &g) {
  int64_t P = (int64_t)g.Ho * g.Wo, R = (int64_t)g.Cin * g.kt * g.k * g.k;
  int64_t nout = (int64_t)g.B * g.To;
  if (nout <= 0 || P <= 0 || g.Cout <= 0) return;
  if (dbias) cu_reduce_oci(dbias, dout, nout, g.Cout, P, 1);
  if (!dinp && !dweight) return;
  int64_t nc = chunk_frames(g);
  for (int64_t n0 = 0; n0 < nout; n0 += nc) {
    int64_t n1 = n0 + nc < nout ? n0 + nc : nout, ncols = (n1 - n0) * P;
    size_t mark = cu_scratch_mark();
    float *col = (float *)cu_scratch_need((size_t)(R * ncols * 4), "conv im2col");
    float *tmp = (float *)cu_scratch_need((size_t)(g.Cout * ncols * 4), "conv gradient");
    gather_dout_k<<<cu_grid(g.Cout * ncols), CU_THREADS, 0, g_cu.compute>>>(tmp, dout, g.Cout, P,
                                                                            n0, ncols);
    CU_LAUNCHED();
    if (dweight) {
      im2col_k<<<cu_grid(R * ncols), CU_THREADS, 0, g_cu.compute>>>(col, inp, g, n0, ncols);
      CU_LAUNCHED();
      /* dW (Cout, R) += tmp (Cout, ncols) · col^T; chunks add in order */
      cu_gemm(0, 1, g.Cout, (int)R, (int)ncols, 1.0f, tmp, 0, col, 0, 1.0f, dweight, 0, 1);
    }
    if (dinp) {
      /* dcol (R, ncols) = W^T · tmp, into the col buffer (no longer needed) */
      cu_gemm(1, 0, (int)R, (int)ncols, g.Cout, 1.0f, weight, 0, tmp, 0, 0.0f, col, 0, 1);
      int b0 = (int)(n0 / g.To), b1 = (int)((n1 - 1) / g.To);
      int64_t total = (int64_t)(b1 - b0 + 1) * g.T * g.Cin * g.H * g.W;
      col2im_k<<<cu_grid(total), CU_THREADS, 0, g_cu.compute>>>(dinp, col, g, n0, n1, b0, b1);
      CU_LAUNCHED();
    }
    cu_scratch_release(mark);
  }
}

extern "C" void cu_conv2d_fwd(float *out, const float *inp, const float *weight,
                              const float *bias, int N, int Cin, int H, int W, int Cout, int k,
                              int stride, int pad) {
  conv_fwd(out, inp, weight, bias, make_geom(N, 1, Cin, H, W, Cout, 1, k, 1, stride, 0, pad));
}
extern "C" void cu_conv2d_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, int N, int Cin, int H, int W,
                              int Cout, int k, int stride, int pad) {
  conv_bwd(dinp, dweight, dbias, dout, inp, weight,
           make_geom(N, 1, Cin, H, W, Cout, 1, k, 1, stride, 0, pad));
}
extern "C" void cu_tconv_fwd(float *out, const float *inp, const float *weight,
                             const float *bias, int B, int T, int Cin, int S, int Cout, int kt) {
  conv_fwd(out, inp, weight, bias, make_geom(B, T, Cin, 1, S, Cout, kt, 1, 1, 1, kt / 2, 0));
}
extern "C" void cu_tconv_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, int B, int T, int Cin, int S,
                             int Cout, int kt) {
  conv_bwd(dinp, dweight, dbias, dout, inp, weight,
           make_geom(B, T, Cin, 1, S, Cout, kt, 1, 1, 1, kt / 2, 0));
}
extern "C" void cu_conv3d_fwd(float *out, const float *inp, const float *weight,
                              const float *bias, int B, int T, int Cin, int H, int W, int Cout,
                              int kt, int k, int stride_t, int stride, int pad_t, int pad) {
  conv_fwd(out, inp, weight, bias,
           make_geom(B, T, Cin, H, W, Cout, kt, k, stride_t, stride, pad_t, pad));
}
extern "C" void cu_conv3d_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, int B, int T, int Cin, int H,
                              int W, int Cout, int kt, int k, int stride_t, int stride, int pad_t,
                              int pad) {
  conv_bwd(dinp, dweight, dbias, dout, inp, weight,
           make_geom(B, T, Cin, H, W, Cout, kt, k, stride_t, stride, pad_t, pad));
}

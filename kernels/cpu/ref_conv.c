/* kernels/cpu/ref_conv.c — reference GEMM, linear and convolutions: plain loops, double
 * accumulation, no BLAS, no threads. The ground truth for every other backend.
 *
 * One convolution core covers the three convolutions: the video layout inp (B, T, Cin, H, W)
 * with weight (Cout, Cin, kt, k, k). conv2d is T = kt = 1 (so (N, Cin, H, W) and
 * (Cout, Cin, k, k)); the temporal conv is H = 1, W = S, k = 1, pad_t = kt/2.
 */
#include "kernels/cpu/cpu_ops.h"

#include <stdlib.h>
#include <string.h>

void ref_matmul(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                const float *Bm, float beta, float *Cm) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0.0;
      for (int p = 0; p < K; p++) {
        double a = transA ? A[(size_t)p * M + i] : A[(size_t)i * K + p];
        double b = transB ? Bm[(size_t)j * K + p] : Bm[(size_t)p * N + j];
        s += a * b;
      }
      float *c = &Cm[(size_t)i * N + j];
      *c = (float)(alpha * s + (beta == 0.0f ? 0.0 : (double)beta * *c));
    }
}

// out (N, Cout) = inp (N, Cin) · weight (Cout, Cin)^T + bias (Cout)
void ref_linear_fwd(float *out, const float *inp, const float *weight, const float *bias, int N,
                    int Cin, int Cout) {
  for (int n = 0; n < N; n++)
    for (int o = 0; o < Cout; o++) {
      double s = bias ? bias[o] : 0.0;
      const float *x = inp + (size_t)n * Cin, *w = weight + (size_t)o * Cin;
      for (int i = 0; i < Cin; i++) s += (double)x[i] * w[i];
      out[(size_t)n * Cout + o] = (float)s;
    }
}

void ref_linear_bwd(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                    const float *weight, int N, int Cin, int Cout) {
  if (dinp)
    for (int n = 0; n < N; n++)
      for (int i = 0; i < Cin; i++) {
        double s = 0.0;
        for (int o = 0; o < Cout; o++)
          s += (double)dout[(size_t)n * Cout + o] * weight[(size_t)o * Cin + i];
        dinp[(size_t)n * Cin + i] += (float)s;
      }
  if (dweight)
    for (int o = 0; o < Cout; o++)
      for (int i = 0; i < Cin; i++) {
        double s = 0.0;
        for (int n = 0; n < N; n++)
          s += (double)dout[(size_t)n * Cout + o] * inp[(size_t)n * Cin + i];
        dweight[(size_t)o * Cin + i] += (float)s;
      }
  if (dbias)
    for (int o = 0; o < Cout; o++) {
      double s = 0.0;
      for (int n = 0; n < N; n++) s += dout[(size_t)n * Cout + o];
      dbias[o] += (float)s;
    }
}

static int out_size(int n, int k, int stride, int pad) { return (n + 2 * pad - k) / stride + 1; }

// out (B, To, Cout, Ho, Wo) from inp (B, T, Cin, H, W), weight (Cout, Cin, kt, k, k)
void ref_conv3d_fwd(float *out, const float *inp, const float *weight, const float *bias, int B,
                    int T, int Cin, int H, int W, int Cout, int kt, int k, int stride_t, int stride,
                    int pad_t, int pad) {
  int To = out_size(T, kt, stride_t, pad_t), Ho = out_size(H, k, stride, pad),
      Wo = out_size(W, k, stride, pad);
  for (int b = 0; b < B; b++)
    for (int to = 0; to < To; to++)
      for (int co = 0; co < Cout; co++)
        for (int oy = 0; oy < Ho; oy++)
          for (int ox = 0; ox < Wo; ox++) {
            double s = bias ? bias[co] : 0.0;
            for (int ci = 0; ci < Cin; ci++)
              for (int jt = 0; jt < kt; jt++) {
                int t = to * stride_t - pad_t + jt;
                if (t < 0 || t >= T) continue;
                for (int ky = 0; ky < k; ky++) {
                  int y = oy * stride - pad + ky;
                  if (y < 0 || y >= H) continue;
                  for (int kx = 0; kx < k; kx++) {
                    int x = ox * stride - pad + kx;
                    if (x < 0 || x >= W) continue;
                    double w = weight[((((size_t)co * Cin + ci) * kt + jt) * k + ky) * k + kx];
                    s += w * inp[((((size_t)b * T + t) * Cin + ci) * H + y) * W + x];
                  }
                }
              }
            out[((((size_t)b * To + to) * Cout + co) * Ho + oy) * Wo + ox] = (float)s;
          }
}

/* Which output index o with o*stride - pad + j == i, if any: -1 when none. */
static int src_index(int i, int j, int stride, int pad, int n_out) {
  int num = i + pad - j;
  if (num < 0 || num % stride) return -1;
  int o = num / stride;
  return o < n_out ? o : -1;
}

void ref_conv3d_bwd(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                    const float *weight, int B, int T, int Cin, int H, int W, int Cout, int kt,
                    int k, int stride_t, int stride, int pad_t, int pad) {
  int To = out_size(T, kt, stride_t, pad_t), Ho = out_size(H, k, stride, pad),
      Wo = out_size(W, k, stride, pad);
#define DOUT(b, to, co, oy, ox) \
  dout[((((size_t)(b)*To + (to)) * Cout + (co)) * Ho + (oy)) * Wo + (ox)]
  // dinp: gather, for each input element, every (output, tap) pair that read it
  if (dinp)
    for (int b = 0; b < B; b++)
      for (int t = 0; t < T; t++)
        for (int ci = 0; ci < Cin; ci++)
          for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
              double s = 0.0;
              for (int jt = 0; jt < kt; jt++) {
                int to = src_index(t, jt, stride_t, pad_t, To);
                if (to < 0) continue;
                for (int ky = 0; ky < k; ky++) {
                  int oy = src_index(y, ky, stride, pad, Ho);
                  if (oy < 0) continue;
                  for (int kx = 0; kx < k; kx++) {
                    int ox = src_index(x, kx, stride, pad, Wo);
                    if (ox < 0) continue;
                    for (int co = 0; co < Cout; co++)
                      s += (double)weight[((((size_t)co * Cin + ci) * kt + jt) * k + ky) * k + kx] *
                           DOUT(b, to, co, oy, ox);
                  }
                }
              }
              dinp[((((size_t)b * T + t) * Cin + ci) * H + y) * W + x] += (float)s;
            }
  if (dweight)
    for (int co = 0; co < Cout; co++)
      for (int ci = 0; ci < Cin; ci++)
        for (int jt = 0; jt < kt; jt++)
          for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
              double s = 0.0;
              for (int b = 0; b < B; b++)
                for (int to = 0; to < To; to++) {
                  int t = to * stride_t - pad_t + jt;
                  if (t < 0 || t >= T) continue;
                  for (int oy = 0; oy < Ho; oy++) {
                    int y = oy * stride - pad + ky;
                    if (y < 0 || y >= H) continue;
                    for (int ox = 0; ox < Wo; ox++) {
                      int x = ox * stride - pad + kx;
                      if (x < 0 || x >= W) continue;
                      s += (double)DOUT(b, to, co, oy, ox) *
                           inp[((((size_t)b * T + t) * Cin + ci) * H + y) * W + x];
                    }
                  }
                }
              dweight[((((size_t)co * Cin + ci) * kt + jt) * k + ky) * k + kx] += (float)s;
            }
  if (dbias)
    for (int co = 0; co < Cout; co++) {
      double s = 0.0;
      for (int b = 0; b < B; b++)
        for (int to = 0; to < To; to++)
          for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) s += DOUT(b, to, co, oy, ox);
      dbias[co] += (float)s;
    }
#undef DOUT
}

void ref_conv2d_fwd(float *out, const float *inp, const float *weight, const float *bias, int N,
                    int Cin, int H, int W, int Cout, int k, int stride, int pad) {
  ref_conv3d_fwd(out, inp, weight, bias, N, 1, Cin, H, W, Cout, 1, k, 1, stride, 0, pad);
}
void ref_conv2d_bwd(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                    const float *weight, int N, int Cin, int H, int W, int Cout, int k, int stride,
                    int pad) {
  ref_conv3d_bwd(dinp, dweight, dbias, dout, inp, weight, N, 1, Cin, H, W, Cout, 1, k, 1, stride, 0,
                 pad);
}
void ref_tconv_fwd(float *out, const float *inp, const float *weight, const float *bias, int B,
                   int T, int Cin, int S, int Cout, int kt) {
  ref_conv3d_fwd(out, inp, weight, bias, B, T, Cin, 1, S, Cout, kt, 1, 1, 1, kt / 2, 0);
}
void ref_tconv_bwd(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                   const float *weight, int B, int T, int Cin, int S, int Cout, int kt) {
  ref_conv3d_bwd(dinp, dweight, dbias, dout, inp, weight, B, T, Cin, 1, S, Cout, kt, 1, 1, 1,
                 kt / 2, 0);
}

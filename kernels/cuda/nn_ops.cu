/* kernels/cuda/nn_ops.cu — group/layer norm, activations, softmax and attention.
 * Reductions are per block or per warp in a fixed order (deterministic); statistics of the
 * norms accumulate in double, as the CPU reference does. */
#include <math.h>

#include "kernels/cuda/cuda_internal.cuh"

/* ---- group norm (layer norm is the G = 1, T = S = 1 case per row) -------------------------- */

/* offset of element j of group (n, g) in (N, T, C, S); j runs over (t, c in group, s) */
__device__ inline int64_t gn_off(int64_t j, int n, int g, int T, int C, int S, int Cg) {
  int64_t per_t = (int64_t)Cg * S;
  int64_t t = j / per_t, rem = j - t * per_t;
  return (((int64_t)n * T + t) * C + (int64_t)g * Cg) * S + rem;
}

/* dz for the fused group norm + SiLU: dout * silu'(z), z = xhat w + b recomputed */
__device__ inline double gn_silu_grad(double dout, double xh, double wc, double bc) {
  double z = xh * wc + bc, sg = 1.0 / (1.0 + exp(-z));
  return dout * sg * (1.0 + z * (1.0 - sg));
}

/* element j of group (n, g): its offset *o, xhat *xh, and the gradient w.r.t. xhat (dz w) */
__device__ inline double gn_grad_xhat(const float *dout, const float *x, const float *w,
                                      const float *b, int64_t j, int n, int g, int T, int C, int S,
                                      int Cg, double mu, double rs, int silu, int64_t *o,
                                      double *xh) {
  *o = gn_off(j, n, g, T, C, S, Cg);
  int c = g * Cg + (int)((j % ((int64_t)Cg * S)) / S);
  double wc = w ? w[c] : 1.0;
  *xh = (x[*o] - mu) * rs;
  double dz = silu ? gn_silu_grad(dout[*o], *xh, wc, b ? b[c] : 0.0) : dout[*o];
  return dz * wc;
}

static __global__ void gn_fwd_k(float *out, float *mean, float *rstd, const float *x,
                                const float *w, const float *b, int T, int C, int S, int G,
                                float eps, int silu) {
  __shared__ double sh[32];
  int n = blockIdx.x / G, g = blockIdx.x % G, Cg = C / G;
  int64_t cnt = (int64_t)T * Cg * S;
  double s = 0.0;
  for (int64_t j = threadIdx.x; j < cnt; j += blockDim.x) s += x[gn_off(j, n, g, T, C, S, Cg)];
  double mu = cu_block_sum(s, sh) / (double)cnt;
  double ss = 0.0;
  for (int64_t j = threadIdx.x; j < cnt; j += blockDim.x) {
    double d = x[gn_off(j, n, g, T, C, S, Cg)] - mu;
    ss += d * d;
  }
  double rs = 1.0 / sqrt(cu_block_sum(ss, sh) / (double)cnt + (double)eps);
  if (threadIdx.x == 0) {
    mean[blockIdx.x] = (float)mu;
    rstd[blockIdx.x] = (float)rs;
  }
  for (int64_t j = threadIdx.x; j < cnt; j += blockDim.x) {
    int64_t o = gn_off(j, n, g, T, C, S, Cg);
    int c = g * Cg + (int)((j % ((int64_t)Cg * S)) / S);
    double wc = w ? w[c] : 1.0, bc = b ? b[c] : 0.0, z = (x[o] - mu) * rs * wc + bc;
    out[o] = (float)(silu ? z / (1.0 + exp(-z)) : z);
  }
}

static __global__ void gn_bwd_input_k(float *dinp, const float *dout, const float *x,
                                      const float *mean, const float *rstd, const float *w,
                                      const float *b, int T, int C, int S, int G, int silu) {
  __shared__ double sh[32];
  int n = blockIdx.x / G, g = blockIdx.x % G, Cg = C / G;
  int64_t cnt = (int64_t)T * Cg * S;
  double mu = mean[blockIdx.x], rs = rstd[blockIdx.x];
  double sg = 0.0, sgx = 0.0;
  for (int64_t j = threadIdx.x; j < cnt; j += blockDim.x) {
    int64_t o;
    double xh, gg = gn_grad_xhat(dout, x, w, b, j, n, g, T, C, S, Cg, mu, rs, silu, &o, &xh);
    sg += gg;
    sgx += gg * xh;
  }
  double mg = cu_block_sum(sg, sh) / (double)cnt;
  double mgx = cu_block_sum(sgx, sh) / (double)cnt;
  for (int64_t j = threadIdx.x; j < cnt; j += blockDim.x) {
    int64_t o;
    double xh, gg = gn_grad_xhat(dout, x, w, b, j, n, g, T, C, S, Cg, mu, rs, silu, &o, &xh);
    dinp[o] += (float)(rs * (gg - mg - xh * mgx));
  }
}

/* one block per channel c: dweight[c] += sum dout*xhat, dbias[c] += sum dout over n, t, s */
static __global__ void gn_bwd_param_k(float *dw, float *db, const float *dout, const float *x,
                                      const float *mean, const float *rstd, const float *w,
                                      const float *b, int N, int T, int C, int S, int G, int silu) {
  __shared__ double sh[32];
  int c = blockIdx.x, g = c / (C / G);
  int64_t cnt = (int64_t)N * T * S;
  double sw = 0.0, sb = 0.0;
  for (int64_t j = threadIdx.x; j < cnt; j += blockDim.x) {
    int64_t nt = j / S, s = j - nt * S;
    int n = (int)(nt / T);
    int64_t o = (nt * C + c) * S + s;
    double xh = (x[o] - (double)mean[n * G + g]) * rstd[n * G + g];
    double d = silu ? gn_silu_grad(dout[o], xh, w ? w[c] : 1.0, b ? b[c] : 0.0) : dout[o];
    sb += d;
    if (dw) sw += d * xh;
  }
  sb = cu_block_sum(sb, sh);
  sw = cu_block_sum(sw, sh);
  if (threadIdx.x == 0) {
    if (db) db[c] += (float)sb;
    if (dw) dw[c] += (float)sw;
  }
}

static unsigned norm_threads(int64_t cnt) { return cnt >= 4096 ? 512 : cnt >= 512 ? 256 : 128; }

static void gn_fwd_launch(float *out, float *mean, float *rstd, const float *inp,
                          const float *weight, const float *bias, int N, int T, int C, int S,
                          int G, float eps, int silu) {
  if (N <= 0 || G <= 0) return;
  gn_fwd_k<<<(unsigned)N * G, norm_threads((int64_t)T * (C / G) * S), 0, g_cu.compute>>>(
      out, mean, rstd, inp, weight, bias, T, C, S, G, eps, silu);
  CU_LAUNCHED();
}

static void gn_bwd_launch(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *mean, const float *rstd,
                          const float *weight, const float *bias, int N, int T, int C, int S,
                          int G, int silu) {
  if (N <= 0 || G <= 0) return;
  if (dinp) {
    gn_bwd_input_k<<<(unsigned)N * G, norm_threads((int64_t)T * (C / G) * S), 0, g_cu.compute>>>(
        dinp, dout, inp, mean, rstd, weight, bias, T, C, S, G, silu);
    CU_LAUNCHED();
  }
  if (dweight || dbias) {
    gn_bwd_param_k<<<(unsigned)C, norm_threads((int64_t)N * T * S), 0, g_cu.compute>>>(
        dweight, dbias, dout, inp, mean, rstd, weight, bias, N, T, C, S, G, silu);
    CU_LAUNCHED();
  }
}

extern "C" void cu_groupnorm_fwd(float *out, float *mean, float *rstd, const float *inp,
                                 const float *weight, const float *bias, int N, int T, int C,
                                 int S, int G, float eps) {
  gn_fwd_launch(out, mean, rstd, inp, weight, bias, N, T, C, S, G, eps, 0);
}

extern "C" void cu_groupnorm_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *mean, const float *rstd,
                                 const float *weight, int N, int T, int C, int S, int G) {
  gn_bwd_launch(dinp, dweight, dbias, dout, inp, mean, rstd, weight, NULL, N, T, C, S, G, 0);
}

extern "C" void cu_groupnorm_silu_fwd(float *out, float *mean, float *rstd, const float *inp,
                                      const float *weight, const float *bias, int N, int T, int C,
                                      int S, int G, float eps) {
  gn_fwd_launch(out, mean, rstd, inp, weight, bias, N, T, C, S, G, eps, 1);
}

extern "C" void cu_groupnorm_silu_bwd(float *dinp, float *dweight, float *dbias,
                                      const float *dout, const float *inp, const float *mean,
                                      const float *rstd, const float *weight, const float *bias,
                                      int N, int T, int C, int S, int G) {
  gn_bwd_launch(dinp, dweight, dbias, dout, inp, mean, rstd, weight, bias, N, T, C, S, G, 1);
}

extern "C" void cu_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp,
                                 const float *weight, const float *bias, int N, int C,
                                 float eps) {
  cu_groupnorm_fwd(out, mean, rstd, inp, weight, bias, N, 1, C, 1, 1, eps);
}
extern "C" void cu_layernorm_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *mean, const float *rstd,
                                 const float *weight, int N, int C) {
  cu_groupnorm_bwd(dinp, dweight, dbias, dout, inp, mean, rstd, weight, N, 1, C, 1, 1);
}

/* ---- activations ------------------------------------------------------------------------- */

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

__device__ inline float silu_f(float x) { return x / (1.0f + expf(-x)); }
__device__ inline float silu_d(float x) {
  float s = 1.0f / (1.0f + expf(-x));
  return s * (1.0f + x * (1.0f - s));
}
__device__ inline float gelu_tanh_f(float x) {
  return 0.5f * x * (1.0f + tanhf(GELU_K * (x + 0.044715f * x * x * x)));
}
__device__ inline float gelu_tanh_d(float x) {
  float th = tanhf(GELU_K * (x + 0.044715f * x * x * x));
  return 0.5f * (1.0f + th) +
         0.5f * x * (1.0f - th * th) * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
}
__device__ inline float gelu_erf_f(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678f)); }
__device__ inline float gelu_erf_d(float x) {
  return 0.5f * (1.0f + erff(x * 0.70710678f)) + x * 0.39894228f * expf(-0.5f * x * x);
}

__device__ inline float quick_gelu_f(float x) { return x / (1.0f + expf(-1.702f * x)); }
__device__ inline float quick_gelu_d(float x) {
  float s = 1.0f / (1.0f + expf(-1.702f * x));
  return s + 1.702f * x * s * (1.0f - s);
}

enum { ACT_SILU, ACT_GELU_TANH, ACT_GELU_ERF, ACT_QUICK_GELU };

static __global__ void act_fwd_k(float *out, const float *inp, int64_t n, int which) {
  CU_FOR(i, n) {
    float x = inp[i];
    out[i] = which == ACT_SILU        ? silu_f(x)
             : which == ACT_GELU_TANH ? gelu_tanh_f(x)
             : which == ACT_GELU_ERF  ? gelu_erf_f(x)
                                      : quick_gelu_f(x);
  }
}
static __global__ void act_bwd_k(float *dinp, const float *dout, const float *inp, int64_t n,
                                 int which) {
  CU_FOR(i, n) {
    float x = inp[i];
    float d = which == ACT_SILU        ? silu_d(x)
              : which == ACT_GELU_TANH ? gelu_tanh_d(x)
              : which == ACT_GELU_ERF  ? gelu_erf_d(x)
                                       : quick_gelu_d(x);
    dinp[i] += dout[i] * d;
  }
}
static void act_fwd(float *out, const float *inp, int64_t n, int which) {
  if (n <= 0) return;
  act_fwd_k<<<cu_grid(n), CU_THREADS, 0, g_cu.compute>>>(out, inp, n, which);
  CU_LAUNCHED();
}
static void act_bwd(float *dinp, const float *dout, const float *inp, int64_t n, int which) {
  if (n <= 0 || !dinp) return;
  act_bwd_k<<<cu_grid(n), CU_THREADS, 0, g_cu.compute>>>(dinp, dout, inp, n, which);
  CU_LAUNCHED();
}
extern "C" void cu_silu_fwd(float *out, const float *inp, int64_t n) { act_fwd(out, inp, n, ACT_SILU); }
extern "C" void cu_silu_bwd(float *dinp, const float *dout, const float *inp, int64_t n) {
  act_bwd(dinp, dout, inp, n, ACT_SILU);
}
extern "C" void cu_gelu_tanh_fwd(float *out, const float *inp, int64_t n) {
  act_fwd(out, inp, n, ACT_GELU_TANH);
}
extern "C" void cu_gelu_tanh_bwd(float *dinp, const float *dout, const float *inp, int64_t n) {
  act_bwd(dinp, dout, inp, n, ACT_GELU_TANH);
}
extern "C" void cu_gelu_erf_fwd(float *out, const float *inp, int64_t n) {
  act_fwd(out, inp, n, ACT_GELU_ERF);
}
extern "C" void cu_gelu_erf_bwd(float *dinp, const float *dout, const float *inp, int64_t n) {
  act_bwd(dinp, dout, inp, n, ACT_GELU_ERF);
}
extern "C" void cu_quick_gelu_fwd(float *out, const float *inp, int64_t n) {
  act_fwd(out, inp, n, ACT_QUICK_GELU);
}
extern "C" void cu_quick_gelu_bwd(float *dinp, const float *dout, const float *inp, int64_t n) {
  act_bwd(dinp, dout, inp, n, ACT_QUICK_GELU);
}

/* GEGLU: inp (M, 2F) = [a | g] per row, out (M, F) = a gelu(g) */
static __global__ void geglu_fwd_k(float *out, const float *inp, int64_t M, int64_t F) {
  CU_FOR(i, M * F) {
    int64_t m = i / F, f = i - m * F;
    const float *r = inp + m * 2 * F;
    out[i] = r[f] * gelu_erf_f(r[F + f]);
  }
}
static __global__ void geglu_bwd_k(float *dinp, const float *dout, const float *inp, int64_t M,
                                   int64_t F) {
  CU_FOR(i, M * F) {
    int64_t m = i / F, f = i - m * F;
    const float *r = inp + m * 2 * F;
    float *d = dinp + m * 2 * F, g = r[F + f];
    d[f] += dout[i] * gelu_erf_f(g);
    d[F + f] += dout[i] * r[f] * gelu_erf_d(g);
  }
}
extern "C" void cu_geglu_fwd(float *out, const float *inp, int M, int F) {
  int64_t n = (int64_t)M * F;
  if (n <= 0) return;
  geglu_fwd_k<<<cu_grid(n), CU_THREADS, 0, g_cu.compute>>>(out, inp, M, F);
  CU_LAUNCHED();
}
extern "C" void cu_geglu_bwd(float *dinp, const float *dout, const float *inp, int M, int F) {
  int64_t n = (int64_t)M * F;
  if (n <= 0 || !dinp) return;
  geglu_bwd_k<<<cu_grid(n), CU_THREADS, 0, g_cu.compute>>>(dinp, dout, inp, M, F);
  CU_LAUNCHED();
}

/* ---- softmax rows: one warp per row -------------------------------------------------------- */

#define ROWS_PER_BLOCK 8 /* warps per block of 256 threads */

/* p (rows, C) in place or from inp: masked softmax. mask rows: add/keep + moff(row) */
static __global__ void softmax_rows_k(float *out, const float *inp, int64_t rows, int C,
                                      const float *add, const uint8_t *keep, int64_t rows_per_b,
                                      int H, int mb) {
  int64_t row = (int64_t)blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const float *x = inp + row * C;
  float *y = out + row * C;
  const float *a = NULL;
  const uint8_t *kp = NULL;
  if (add || keep) {
    /* row = (b*H + h)*Nq + i; the mask is (mb, Nq, Nk) */
    int64_t bh = row / rows_per_b, i = row - bh * rows_per_b;
    int64_t b = bh / H;
    int64_t moff = ((b % mb) * rows_per_b + i) * C;
    if (add) a = add + moff;
    if (keep) kp = keep + moff;
  }
  float mx = -INFINITY;
  for (int j = lane; j < C; j += 32) {
    float s = x[j] + (a ? a[j] : 0.0f);
    if (kp && !kp[j]) s = -INFINITY;
    mx = fmaxf(mx, s);
  }
  mx = cu_warp_max(mx);
  if (mx == -INFINITY) { /* every key masked (or an all -inf row): zeros */
    for (int j = lane; j < C; j += 32) y[j] = 0.0f;
    return;
  }
  float sum = 0.0f;
  for (int j = lane; j < C; j += 32) {
    float s = x[j] + (a ? a[j] : 0.0f);
    if (kp && !kp[j]) s = -INFINITY;
    sum += expf(s - mx);
  }
  sum = cu_warp_sum(sum);
  float inv = 1.0f / sum;
  for (int j = lane; j < C; j += 32) {
    float s = x[j] + (a ? a[j] : 0.0f);
    if (kp && !kp[j]) s = -INFINITY;
    y[j] = expf(s - mx) * inv;
  }
}

/* dinp (+)= p * (d - sum(d * p)) per row; acc 0 overwrites (attention's in-place dS) */
static __global__ void softmax_bwd_rows_k(float *dinp, const float *dout, const float *p,
                                          int64_t rows, int C, int acc) {
  int64_t row = (int64_t)blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const float *d = dout + row * C, *pr = p + row * C;
  float *g = dinp + row * C;
  float dot = 0.0f;
  for (int j = lane; j < C; j += 32) dot += d[j] * pr[j];
  dot = cu_warp_sum(dot);
  for (int j = lane; j < C; j += 32) {
    float v = pr[j] * (d[j] - dot);
    g[j] = acc ? g[j] + v : v;
  }
}

static unsigned row_blocks(int64_t rows) { return (unsigned)((rows + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK); }

extern "C" void cu_softmax_fwd(float *out, const float *inp, int N, int C) {
  if (N <= 0 || C <= 0) return;
  softmax_rows_k<<<row_blocks(N), 32 * ROWS_PER_BLOCK, 0, g_cu.compute>>>(out, inp, N, C, NULL,
                                                                          NULL, 1, 1, 1);
  CU_LAUNCHED();
}
extern "C" void cu_softmax_bwd(float *dinp, const float *dout, const float *out, int N, int C) {
  if (N <= 0 || C <= 0 || !dinp) return;
  softmax_bwd_rows_k<<<row_blocks(N), 32 * ROWS_PER_BLOCK, 0, g_cu.compute>>>(dinp, dout, out, N,
                                                                              C, 1);
  CU_LAUNCHED();
}

/* ---- attention ----------------------------------------------------------------------------- */

extern "C" void cu_attention_fwd(float *out, float *probs, const float *q, const float *k,
                                 const float *v, const op_attn_mask *mask, int B, int H, int Nq,
                                 int Nk, int D, float scale) {
  int BH = B * H;
  if (BH <= 0 || Nq <= 0) return;
  int64_t sQ = (int64_t)Nq * D, sK = (int64_t)Nk * D, sP = (int64_t)Nq * Nk;
  /* scores = scale q k^T straight into probs, then the masked softmax in place */
  cu_gemm(0, 1, Nq, Nk, D, scale, q, sQ, k, sK, 0.0f, probs, sP, BH);
  int64_t rows = (int64_t)BH * Nq;
  softmax_rows_k<<<row_blocks(rows), 32 * ROWS_PER_BLOCK, 0, g_cu.compute>>>(
      probs, probs, rows, Nk, mask ? mask->add : NULL, mask ? mask->keep : NULL, Nq, H,
      mask ? mask->mb : 1);
  CU_LAUNCHED();
  cu_gemm(0, 0, Nq, D, Nk, 1.0f, probs, sP, v, sK, 0.0f, out, sQ, BH);
}

extern "C" void cu_attention_bwd(float *dq, float *dk, float *dv, const float *dout,
                                 const float *dprobs, const float *q, const float *k,
                                 const float *v, const float *probs, int B, int H, int Nq, int Nk,
                                 int D, float scale) {
  int BH = B * H;
  if (BH <= 0 || Nq <= 0 || Nk <= 0) return;
  int64_t sQ = (int64_t)Nq * D, sK = (int64_t)Nk * D, sP = (int64_t)Nq * Nk;
  if (dv) cu_gemm(1, 0, Nk, D, Nq, 1.0f, probs, sP, dout, sQ, 1.0f, dv, sK, BH);
  if (!dq && !dk) return;
  /* dS for a chunk of (b, h) pairs at a time, sized to the scratch (half of it, leaving room
   * for the bf16 copies of the GEMM inputs) */
  int64_t per = sP * 4;
  int64_t fit = (int64_t)(cu_scratch_avail() / 2) / per;
  TB_CHECKF(fit >= 1, "cuda attention backward: one (Nq=%d, Nk=%d) map needs %lld MiB of op "
            "scratch: raise TURBO_CUDA_SCRATCH_MB", Nq, Nk, (long long)(per >> 20) + 1);
  int chunk = fit < BH ? (int)fit : BH;
  for (int b0 = 0; b0 < BH; b0 += chunk) {
    int nb = BH - b0 < chunk ? BH - b0 : chunk;
    size_t mark = cu_scratch_mark();
    float *dS = (float *)cu_scratch_need((size_t)(nb * per), "attention backward");
    const float *P = probs + b0 * sP;
    /* dP = dout v^T (+ dprobs) */
    float beta = 0.0f;
    if (dprobs) {
      CUDA_CHECK(cudaMemcpyAsync(dS, dprobs + b0 * sP, (size_t)(nb * per),
                                 cudaMemcpyDeviceToDevice, g_cu.compute));
      beta = 1.0f;
    }
    cu_gemm(0, 1, Nq, Nk, D, 1.0f, dout + b0 * sQ, sQ, v + b0 * sK, sK, beta, dS, sP, nb);
    /* dS = P (dP - rowsum(dP P)), in place */
    int64_t rows = (int64_t)nb * Nq;
    softmax_bwd_rows_k<<<row_blocks(rows), 32 * ROWS_PER_BLOCK, 0, g_cu.compute>>>(dS, dS, P, rows,
                                                                                   Nk, 0);
    CU_LAUNCHED();
    if (dq) cu_gemm(0, 0, Nq, D, Nk, scale, dS, sP, k + b0 * sK, sK, 1.0f, dq + b0 * sQ, sQ, nb);
    if (dk) cu_gemm(1, 0, Nk, D, Nq, scale, dS, sP, q + b0 * sQ, sQ, 1.0f, dk + b0 * sK, sK, nb);
    cu_scratch_release(mark);
  }
}

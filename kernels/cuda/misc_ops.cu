/* kernels/cuda/misc_ops.cu — layout (permute, up/down-sampling, concat, repeat), element-wise
 * ops, L2 normalisation, embeddings, dropout, losses and the optimiser kernels.
 * Scalar results (losses, sumsq) are reduced in two fixed-order passes (per-block partials,
 * then one block over the partials), in double: deterministic, no atomics. */
#include <math.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.cuh"

#define LAUNCH(kernel, n, ...)                                                             \
  do {                                                                                     \
    if ((n) > 0) {                                                                         \
      kernel<<<cu_grid(n), CU_THREADS, 0, g_cu.compute>>>(__VA_ARGS__);                    \
      CU_LAUNCHED();                                                                       \
    }                                                                                      \
  } while (0)

/* ---- permute ------------------------------------------------------------------------------- */

struct perm_desc {
  int ndim;
  int64_t oshape[6];    /* out's shape */
  int64_t ostride_in[6]; /* input stride of out's dim d */
};

/* mode 0: out = inp; 1: inp += out (a backward into inp). A permute is a bijection, so the
 * backward's scattered += never collides. */
static __global__ void permute_k(float *out, float *inp, perm_desc pd, int64_t n, int mode) {
  CU_FOR(o, n) {
    int64_t rem = o, src = 0;
    for (int d = pd.ndim - 1; d >= 0; d--) {
      src += (rem % pd.oshape[d]) * pd.ostride_in[d];
      rem /= pd.oshape[d];
    }
    if (mode == 0) out[o] = inp[src];
    else inp[src] += out[o];
  }
}

static perm_desc make_perm(int ndim, const int *shape, const int *perm, int64_t *n) {
  perm_desc pd;
  memset(&pd, 0, sizeof pd);
  TB_CHECKF(ndim >= 1 && ndim <= 6, "permute: ndim %d", ndim);
  int64_t istride[6], s = 1;
  for (int d = ndim - 1; d >= 0; d--) {
    istride[d] = s;
    s *= shape[d];
  }
  pd.ndim = ndim;
  for (int d = 0; d < ndim; d++) {
    pd.oshape[d] = shape[perm[d]];
    pd.ostride_in[d] = istride[perm[d]];
  }
  *n = s;
  return pd;
}

extern "C" void cu_permute_fwd(float *out, const float *inp, int ndim, const int *shape,
                               const int *perm) {
  int64_t n;
  perm_desc pd = make_perm(ndim, shape, perm, &n);
  LAUNCH(permute_k, n, out, (float *)inp, pd, n, 0);
}
extern "C" void cu_permute_bwd(float *dinp, const float *dout, int ndim, const int *shape,
                               const int *perm) {
  if (!dinp) return;
  int64_t n;
  perm_desc pd = make_perm(ndim, shape, perm, &n);
  LAUNCH(permute_k, n, (float *)dout, dinp, pd, n, 1);
}

/* ---- up/down-sampling ---------------------------------------------------------------------- */

static __global__ void upsample_fwd_k(float *out, const float *inp, int64_t NC, int H, int W) {
  int64_t n = NC * 4 * H * W;
  CU_FOR(i, n) {
    int x = (int)(i % (2 * W)), y = (int)((i / (2 * W)) % (2 * H));
    int64_t nc = i / (4LL * H * W);
    out[i] = inp[(nc * H + y / 2) * W + x / 2];
  }
}
static __global__ void upsample_bwd_k(float *dinp, const float *dout, int64_t NC, int H, int W) {
  CU_FOR(i, NC * H * W) {
    int x = (int)(i % W), y = (int)((i / W) % H);
    int64_t nc = i / ((int64_t)H * W);
    const float *d = dout + (nc * 2 * H + 2 * y) * 2 * W + 2 * x;
    dinp[i] += (float)((double)d[0] + d[1] + d[2 * W] + d[2 * W + 1]);
  }
}
static __global__ void avgpool_fwd_k(float *out, const float *inp, int64_t NC, int H, int W) {
  int Ho = H / 2, Wo = W / 2;
  CU_FOR(i, NC * Ho * Wo) {
    int x = (int)(i % Wo), y = (int)((i / Wo) % Ho);
    int64_t nc = i / ((int64_t)Ho * Wo);
    const float *s = inp + (nc * H + 2 * y) * W + 2 * x;
    out[i] = (float)(0.25 * ((double)s[0] + s[1] + s[W] + s[W + 1]));
  }
}
static __global__ void avgpool_bwd_k(float *dinp, const float *dout, int64_t NC, int H, int W) {
  int Ho = H / 2, Wo = W / 2;
  CU_FOR(i, NC * H * W) {
    int x = (int)(i % W), y = (int)((i / W) % H);
    int64_t nc = i / ((int64_t)H * W);
    if (y / 2 >= Ho || x / 2 >= Wo) continue;
    dinp[i] += 0.25f * dout[(nc * Ho + y / 2) * Wo + x / 2];
  }
}

extern "C" void cu_upsample2x_fwd(float *out, const float *inp, int N, int C, int H, int W) {
  int64_t NC = (int64_t)N * C;
  LAUNCH(upsample_fwd_k, NC * 4 * H * W, out, inp, NC, H, W);
}
extern "C" void cu_upsample2x_bwd(float *dinp, const float *dout, int N, int C, int H, int W) {
  if (!dinp) return;
  int64_t NC = (int64_t)N * C;
  LAUNCH(upsample_bwd_k, NC * H * W, dinp, dout, NC, H, W);
}
extern "C" void cu_avgpool2x_fwd(float *out, const float *inp, int N, int C, int H, int W) {
  int64_t NC = (int64_t)N * C;
  LAUNCH(avgpool_fwd_k, NC * (H / 2) * (W / 2), out, inp, NC, H, W);
}
extern "C" void cu_avgpool2x_bwd(float *dinp, const float *dout, int N, int C, int H, int W) {
  if (!dinp) return;
  int64_t NC = (int64_t)N * C;
  LAUNCH(avgpool_bwd_k, NC * H * W, dinp, dout, NC, H, W);
}

/* ---- concat, split, repeat ------------------------------------------------------------------ */

/* mode 0: out = [a, b] per m; 1: a, b += parts of out; 2: a, b = parts of out */
static __global__ void concat_k(float *out, float *a, float *b, int64_t M, int64_t Ca, int64_t Cb,
                                int64_t S, int mode) {
  int64_t row = (Ca + Cb) * S;
  CU_FOR(i, M * row) {
    int64_t m = i / row, r = i - m * row;
    float *src = r < Ca * S ? (a ? a + m * Ca * S + r : NULL) : (b ? b + m * Cb * S + (r - Ca * S) : NULL);
    if (mode == 0) out[i] = *src;
    else if (src) *src = mode == 1 ? *src + out[i] : out[i];
  }
}
extern "C" void cu_concat_fwd(float *out, const float *a, const float *b, int M, int Ca, int Cb,
                              int S) {
  LAUNCH(concat_k, (int64_t)M * (Ca + Cb) * S, out, (float *)a, (float *)b, M, Ca, Cb, S, 0);
}
extern "C" void cu_concat_bwd(float *da, float *db, const float *dout, int M, int Ca, int Cb,
                              int S) {
  if (!da && !db) return;
  LAUNCH(concat_k, (int64_t)M * (Ca + Cb) * S, (float *)dout, da, db, M, Ca, Cb, S, 1);
}
extern "C" void cu_split_fwd(float *a, float *b, const float *inp, int M, int Ca, int Cb, int S) {
  if (!a && !b) return;
  LAUNCH(concat_k, (int64_t)M * (Ca + Cb) * S, (float *)inp, a, b, M, Ca, Cb, S, 2);
}

static __global__ void repeat_fwd_k(float *out, const float *inp, int T, int64_t E, int64_t n) {
  CU_FOR(i, n) {
    int64_t bt = i / E, e = i - bt * E;
    out[i] = inp[(bt / T) * E + e];
  }
}
static __global__ void repeat_bwd_k(float *dinp, const float *dout, int T, int64_t E, int64_t n) {
  CU_FOR(i, n) {
    int64_t b = i / E, e = i - b * E;
    double s = 0.0;
    for (int t = 0; t < T; t++) s += dout[(b * T + t) * E + e];
    dinp[i] += (float)s;
  }
}
extern "C" void cu_repeat_fwd(float *out, const float *inp, int B, int T, int64_t E) {
  int64_t n = (int64_t)B * T * E;
  LAUNCH(repeat_fwd_k, n, out, inp, T, E, n);
}
extern "C" void cu_repeat_bwd(float *dinp, const float *dout, int B, int T, int64_t E) {
  if (!dinp) return;
  int64_t n = (int64_t)B * E;
  LAUNCH(repeat_bwd_k, n, dinp, dout, T, E, n);
}

/* ---- element-wise -------------------------------------------------------------------------- */

static __global__ void add_k(float *out, const float *a, const float *b, int64_t n) {
  CU_FOR(i, n) out[i] = a[i] + b[i];
}
static __global__ void axpy_k(float *y, float alpha, const float *x, int64_t n) {
  CU_FOR(i, n) y[i] += alpha * x[i];
}
static __global__ void scale_k(float *out, const float *inp, float s, int64_t n) {
  CU_FOR(i, n) out[i] = s * inp[i];
}
static __global__ void mul_k(float *out, const float *a, const float *b, int64_t n) {
  CU_FOR(i, n) out[i] = a[i] * b[i];
}
static __global__ void mul_bwd_k(float *da, float *db, const float *dout, const float *a,
                                 const float *b, int64_t n) {
  CU_FOR(i, n) {
    if (da) da[i] += dout[i] * b[i];
    if (db) db[i] += dout[i] * a[i];
  }
}
extern "C" void cu_add_fwd(float *out, const float *a, const float *b, int64_t n) {
  LAUNCH(add_k, n, out, a, b, n);
}
extern "C" void cu_axpy(float *y, float alpha, const float *x, int64_t n) {
  if (y) LAUNCH(axpy_k, n, y, alpha, x, n);
}
extern "C" void cu_scale_fwd(float *out, const float *inp, float s, int64_t n) {
  LAUNCH(scale_k, n, out, inp, s, n);
}
extern "C" void cu_mul_fwd(float *out, const float *a, const float *b, int64_t n) {
  LAUNCH(mul_k, n, out, a, b, n);
}
extern "C" void cu_mul_bwd(float *da, float *db, const float *dout, const float *a,
                           const float *b, int64_t n) {
  if (da || db) LAUNCH(mul_bwd_k, n, da, db, dout, a, b, n);
}

static __global__ void bias_add_k(float *out, const float *inp, const float *bias, int T, int C,
                                  int64_t S, int64_t n) {
  CU_FOR(i, n) {
    int64_t btc = i / S;
    int64_t c = btc % C, b = btc / ((int64_t)T * C);
    out[i] = inp[i] + bias[b * C + c];
  }
}
extern "C" void cu_bias_add_fwd(float *out, const float *inp, const float *bias, int B, int T,
                                int C, int S) {
  int64_t n = (int64_t)B * T * C * S;
  LAUNCH(bias_add_k, n, out, inp, bias, T, C, S, n);
}
extern "C" void cu_bias_add_bwd(float *dinp, float *dbias, const float *dout, int B, int T, int C,
                                int S) {
  int64_t per_b = (int64_t)T * C * S;
  if (dinp) cu_axpy(dinp, 1.0f, dout, B * per_b);
  if (dbias)
    for (int b = 0; b < B; b++) cu_reduce_oci(dbias + (int64_t)b * C, dout + b * per_b, T, C, S, 1);
}

/* ---- L2 normalisation: one warp per row ---------------------------------------------------- */

static __global__ void l2norm_fwd_k(float *out, float *rnorm, const float *inp, int N, int C,
                                    float eps) {
  int64_t row = (int64_t)blockIdx.x * 8 + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (row >= N) return;
  const float *x = inp + row * C;
  double s = 0.0;
  for (int j = lane; j < C; j += 32) s += (double)x[j] * x[j];
  s = cu_warp_sum(s);
  double nr = sqrt(s), r = 1.0 / (nr > eps ? nr : (double)eps);
  if (lane == 0) rnorm[row] = (float)r;
  for (int j = lane; j < C; j += 32) out[row * C + j] = (float)(x[j] * r);
}
static __global__ void l2norm_bwd_k(float *dinp, const float *dout, const float *out,
                                    const float *rnorm, int N, int C) {
  int64_t row = (int64_t)blockIdx.x * 8 + (threadIdx.x >> 5);
  int lane = threadIdx.x & 31;
  if (row >= N) return;
  const float *y = out + row * C, *dy = dout + row * C;
  double dot = 0.0, yy = 0.0;
  for (int j = lane; j < C; j += 32) {
    dot += (double)y[j] * dy[j];
    yy += (double)y[j] * y[j];
  }
  dot = cu_warp_sum(dot);
  yy = cu_warp_sum(yy);
  if (yy < 1.0 - 1e-3) dot = 0.0; /* the norm was clamped to eps: out is linear in inp */
  double r = rnorm[row];
  for (int j = lane; j < C; j += 32) dinp[row * C + j] += (float)(r * (dy[j] - y[j] * dot));
}
extern "C" void cu_l2norm_fwd(float *out, float *rnorm, const float *inp, int N, int C, float eps) {
  if (N <= 0) return;
  l2norm_fwd_k<<<(unsigned)((N + 7) / 8), 256, 0, g_cu.compute>>>(out, rnorm, inp, N, C, eps);
  CU_LAUNCHED();
}
extern "C" void cu_l2norm_bwd(float *dinp, const float *dout, const float *out, const float *rnorm,
                              int N, int C) {
  if (N <= 0 || !dinp) return;
  l2norm_bwd_k<<<(unsigned)((N + 7) / 8), 256, 0, g_cu.compute>>>(dinp, dout, out, rnorm, N, C);
  CU_LAUNCHED();
}

/* ---- embeddings (double math, as the reference) -------------------------------------------- */

static __global__ void timestep_emb_k(float *out, const float *t, int N, int dim,
                                      float max_period) {
  int half = dim / 2;
  CU_FOR(i, (int64_t)N * dim) {
    int n = (int)(i / dim), j = (int)(i % dim);
    float v = 0.0f;
    if (j < 2 * half) {
      int f = j < half ? j : j - half;
      double a = (double)t[n] * exp(-log((double)max_period) * f / half);
      v = (float)(j < half ? cos(a) : sin(a));
    }
    out[i] = v;
  }
}
static __global__ void guidance_emb_k(float *out, const float *w, int N, int dim) {
  int half = dim / 2;
  double step = half > 1 ? log(10000.0) / (half - 1) : 0.0;
  CU_FOR(i, (int64_t)N * dim) {
    int n = (int)(i / dim), j = (int)(i % dim);
    float v = 0.0f;
    if (j < 2 * half) {
      int f = j < half ? j : j - half;
      double a = (double)w[n] * 1000.0 * exp(-step * f);
      v = (float)(j < half ? sin(a) : cos(a));
    }
    out[i] = v;
  }
}
extern "C" void cu_timestep_embedding(float *out, const float *t, int N, int dim,
                                      float max_period) {
  LAUNCH(timestep_emb_k, (int64_t)N * dim, out, t, N, dim, max_period);
}
extern "C" void cu_guidance_embedding(float *out, const float *w, int N, int dim) {
  LAUNCH(guidance_emb_k, (int64_t)N * dim, out, w, N, dim);
}

/* ---- dropout --------------------------------------------------------------------------------- */

/* The same counter-based draw as op_rand_uniform (kernels/ops.c), bit for bit. */
__device__ inline float rand_uniform_dev(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0xD1B54A32D192ED03ull + (index + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (float)(z >> 40) * (1.0f / 16777216.0f);
}

static __global__ void dropout_fwd_k(float *out, uint8_t *keep, const float *inp, int64_t n,
                                     float p, float sc, uint64_t seed) {
  CU_FOR(i, n) {
    uint8_t k = p <= 0.0f || rand_uniform_dev(seed, (uint64_t)i) >= p;
    keep[i] = k;
    out[i] = k ? inp[i] * sc : 0.0f;
  }
}
static __global__ void dropout_bwd_k(float *dinp, const float *dout, const uint8_t *keep,
                                     int64_t n, float sc) {
  CU_FOR(i, n) if (keep[i]) dinp[i] += dout[i] * sc;
}
extern "C" void cu_dropout_fwd(float *out, uint8_t *keep, const float *inp, int64_t n, float p,
                               uint64_t seed) {
  float sc = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  LAUNCH(dropout_fwd_k, n, out, keep, inp, n, p, sc, seed);
}
extern "C" void cu_dropout_bwd(float *dinp, const float *dout, const uint8_t *keep, int64_t n,
                               float p) {
  if (!dinp) return;
  float sc = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  LAUNCH(dropout_bwd_k, n, dinp, dout, keep, n, sc);
}

/* cond drop: keep lives in host memory, so it travels in the kernel arguments, 256 samples per
 * launch */
#define COND_CHUNK 256
struct keep_chunk {
  uint8_t k[COND_CHUNK];
};
static __global__ void cond_drop_fwd_k(float *out, const float *inp, const float *null_emb,
                                       keep_chunk kc, int nb, int64_t E) {
  CU_FOR(i, (int64_t)nb * E) {
    int64_t b = i / E, e = i - b * E;
    out[i] = kc.k[b] ? inp[i] : null_emb[e];
  }
}
static __global__ void cond_drop_dinp_k(float *dinp, const float *dout, keep_chunk kc, int nb,
                                        int64_t E) {
  CU_FOR(i, (int64_t)nb * E) {
    if (kc.k[i / E]) dinp[i] += dout[i];
  }
}
/* dnull[e] += sum over dropped b (in order) of dout[b][e] */
static __global__ void cond_drop_dnull_k(float *dnull, const float *dout, keep_chunk kc, int nb,
                                         int64_t E) {
  CU_FOR(e, E) {
    float s = dnull[e];
    for (int b = 0; b < nb; b++)
      if (!kc.k[b]) s += dout[(int64_t)b * E + e];
    dnull[e] = s;
  }
}
extern "C" void cu_cond_drop_fwd(float *out, const float *inp, const float *null_emb,
                                 const uint8_t *keep, int B, int64_t E) {
  for (int b0 = 0; b0 < B; b0 += COND_CHUNK) {
    int nb = B - b0 < COND_CHUNK ? B - b0 : COND_CHUNK;
    keep_chunk kc;
    memset(&kc, 0, sizeof kc);
    memcpy(kc.k, keep + b0, (size_t)nb);
    LAUNCH(cond_drop_fwd_k, (int64_t)nb * E, out + b0 * E, inp + b0 * E, null_emb, kc, nb, E);
  }
}
extern "C" void cu_cond_drop_bwd(float *dinp, float *dnull, const float *dout, const uint8_t *keep,
                                 int B, int64_t E) {
  for (int b0 = 0; b0 < B; b0 += COND_CHUNK) {
    int nb = B - b0 < COND_CHUNK ? B - b0 : COND_CHUNK;
    keep_chunk kc;
    memset(&kc, 0, sizeof kc);
    memcpy(kc.k, keep + b0, (size_t)nb);
    if (dinp) LAUNCH(cond_drop_dinp_k, (int64_t)nb * E, dinp + b0 * E, dout + b0 * E, kc, nb, E);
    if (dnull) LAUNCH(cond_drop_dnull_k, E, dnull, dout + b0 * E, kc, nb, E);
  }
}

/* ---- deterministic scalar reductions ------------------------------------------------------- */

#define RED_BLOCKS 512 /* partials; fixed so the summation order never changes */

enum { RED_MSE, RED_HUBER, RED_SUMSQ, RED_L1, RED_KL };

static __global__ void reduce_partial_k(double *part, const float *x, const float *y, int64_t n,
                                        int kind, float c) {
  __shared__ double sh[32];
  double s = 0.0;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    if (kind == RED_SUMSQ) {
      s += (double)x[i] * x[i];
    } else if (kind == RED_L1) {
      s += fabs((double)x[i] - y[i]);
    } else if (kind == RED_KL) { /* x: mean, y: logvar */
      s += 0.5 * ((double)x[i] * x[i] + exp((double)y[i]) - 1.0 - y[i]);
    } else {
      double d = (double)x[i] - y[i];
      s += kind == RED_MSE ? d * d : sqrt(d * d + (double)c * c) - c;
    }
  }
  s = cu_block_sum(s, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}
static __global__ void reduce_final_k(float *out, const double *part, int nparts, double scale) {
  __shared__ double sh[32];
  double s = 0.0;
  for (int i = threadIdx.x; i < nparts; i += blockDim.x) s += part[i];
  s = cu_block_sum(s, sh);
  if (threadIdx.x == 0) *out = (float)(s * scale);
}
static void reduce_scalar(float *out, const float *x, const float *y, int64_t n, int kind,
                          float c, double scale) {
  size_t mark = cu_scratch_mark();
  double *part = (double *)cu_scratch_need(RED_BLOCKS * sizeof(double), "reduction");
  reduce_partial_k<<<RED_BLOCKS, CU_THREADS, 0, g_cu.compute>>>(part, x, y, n, kind, c);
  CU_LAUNCHED();
  reduce_final_k<<<1, CU_THREADS, 0, g_cu.compute>>>(out, part, RED_BLOCKS, scale);
  CU_LAUNCHED();
  cu_scratch_release(mark);
}

/* ---- losses ----------------------------------------------------------------------------------- */

extern "C" void cu_mse_fwd(float *loss, const float *pred, const float *target, int64_t n) {
  reduce_scalar(loss, pred, target, n, RED_MSE, 0.0f, n > 0 ? 1.0 / (double)n : 0.0);
}
extern "C" void cu_huber_fwd(float *loss, const float *pred, const float *target, int64_t n,
                             float c) {
  reduce_scalar(loss, pred, target, n, RED_HUBER, c, n > 0 ? 1.0 / (double)n : 0.0);
}
extern "C" void cu_sumsq(float *out, const float *x, int64_t n) {
  reduce_scalar(out, x, NULL, n, RED_SUMSQ, 0.0f, 1.0);
}

static __global__ void mse_bwd_k(float *dpred, float *dtarget, double k, const float *pred,
                                 const float *target, int64_t n) {
  CU_FOR(i, n) {
    float g = (float)(k * ((double)pred[i] - target[i]));
    if (dpred) dpred[i] += g;
    if (dtarget) dtarget[i] -= g;
  }
}
static __global__ void huber_bwd_k(float *dpred, float *dtarget, double k, const float *pred,
                                   const float *target, int64_t n, float c) {
  CU_FOR(i, n) {
    double d = (double)pred[i] - target[i];
    float g = (float)(k * d / sqrt(d * d + (double)c * c));
    if (dpred) dpred[i] += g;
    if (dtarget) dtarget[i] -= g;
  }
}
extern "C" void cu_mse_bwd(float *dpred, float *dtarget, float dloss, const float *pred,
                           const float *target, int64_t n) {
  if (!dpred && !dtarget) return;
  LAUNCH(mse_bwd_k, n, dpred, dtarget, 2.0 * dloss / (double)n, pred, target, n);
}
extern "C" void cu_huber_bwd(float *dpred, float *dtarget, float dloss, const float *pred,
                             const float *target, int64_t n, float c) {
  if (!dpred && !dtarget) return;
  LAUNCH(huber_bwd_k, n, dpred, dtarget, dloss / (double)n, pred, target, n, c);
}

/* InfoNCE: one block per i handles row i (probs_ab) and column i (probs_ba) of the logits and
 * writes its loss term; a final block sums the terms in order. */
static __global__ void infonce_rows_k(float *pab, float *pba, double *terms, const float *lg,
                                      int N) {
  __shared__ double sh[32];
  __shared__ float shm[32];
  int i = blockIdx.x;
  for (int dir = 0; dir < 2; dir++) {
    /* dir 0: row i of lg; dir 1: column i */
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < N; j += blockDim.x) {
      float v = dir ? lg[(int64_t)j * N + i] : lg[(int64_t)i * N + j];
      mx = fmaxf(mx, v);
    }
    mx = cu_warp_max(mx);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) shm[threadIdx.x >> 5] = mx;
    __syncthreads();
    mx = -INFINITY;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) mx = fmaxf(mx, shm[w]);
    double s = 0.0;
    for (int j = threadIdx.x; j < N; j += blockDim.x) {
      float v = dir ? lg[(int64_t)j * N + i] : lg[(int64_t)i * N + j];
      s += exp((double)v - mx);
    }
    s = cu_block_sum(s, sh);
    float *p = (dir ? pba : pab) + (int64_t)i * N;
    for (int j = threadIdx.x; j < N; j += blockDim.x) {
      float v = dir ? lg[(int64_t)j * N + i] : lg[(int64_t)i * N + j];
      p[j] = (float)(exp((double)v - mx) / s);
    }
    if (threadIdx.x == 0) {
      double t = mx + log(s) - lg[(int64_t)i * N + i];
      terms[i] = dir ? terms[i] + t : t;
    }
  }
}
static __global__ void sum_terms_k(float *out, const double *terms, int n, double scale) {
  __shared__ double sh[32];
  double s = 0.0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += terms[i];
  s = cu_block_sum(s, sh);
  if (threadIdx.x == 0) *out = (float)(s * scale);
}
extern "C" void cu_infonce_fwd(float *loss, float *probs_ab, float *probs_ba, const float *a,
                               const float *b, int N, int D, float temperature) {
  if (N <= 0) return;
  size_t mark = cu_scratch_mark();
  float *lg = (float *)cu_scratch_need((size_t)N * N * 4, "infonce logits");
  double *terms = (double *)cu_scratch_need((size_t)N * 8, "infonce terms");
  cu_gemm(0, 1, N, N, D, 1.0f / temperature, a, 0, b, 0, 0.0f, lg, 0, 1);
  infonce_rows_k<<<(unsigned)N, 128, 0, g_cu.compute>>>(probs_ab, probs_ba, terms, lg, N);
  CU_LAUNCHED();
  sum_terms_k<<<1, CU_THREADS, 0, g_cu.compute>>>(loss, terms, N, 1.0 / (2.0 * N));
  CU_LAUNCHED();
  cu_scratch_release(mark);
}
/* G[i][j] = k (Pab_ij + Pba_ji - 2[i==j]) */
static __global__ void infonce_grad_k(float *G, const float *pab, const float *pba, int N,
                                      double k) {
  CU_FOR(idx, (int64_t)N * N) {
    int64_t i = idx / N, j = idx - i * N;
    double g = (double)pab[idx] + pba[j * N + i] - (i == j ? 2.0 : 0.0);
    G[idx] = (float)(g * k);
  }
}
extern "C" void cu_infonce_bwd(float *da, float *db, float dloss, const float *a, const float *b,
                               const float *probs_ab, const float *probs_ba, int N, int D,
                               float temperature) {
  if (N <= 0 || (!da && !db)) return;
  size_t mark = cu_scratch_mark();
  float *G = (float *)cu_scratch_need((size_t)N * N * 4, "infonce gradient");
  LAUNCH(infonce_grad_k, (int64_t)N * N, G, probs_ab, probs_ba, N,
         (double)dloss / (2.0 * N * temperature));
  if (da) cu_gemm(0, 0, N, D, N, 1.0f, G, 0, b, 0, 1.0f, da, 0, 1);
  if (db) cu_gemm(1, 0, N, D, N, 1.0f, G, 0, a, 0, 1.0f, db, 0, 1);
  cu_scratch_release(mark);
}

/* ---- optimiser ----------------------------------------------------------------------------- */

static __global__ void adamw_k(float *param, const float *grad, float *m, float *v, int64_t n,
                               float lr, float beta1, float beta2, float eps, float wd, double bc1,
                               double bc2) {
  CU_FOR(i, n) {
    float g = grad[i];
    float mi = beta1 * m[i] + (1.0f - beta1) * g;
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    double mh = mi / bc1, vh = vi / bc2;
    double p = (double)param[i] * (1.0 - (double)lr * wd);
    param[i] = (float)(p - lr * mh / (sqrt(vh) + eps));
  }
}
extern "C" void cu_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n,
                              float lr, float beta1, float beta2, float eps, float weight_decay,
                              int64_t step) {
  double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
  LAUNCH(adamw_k, n, param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, bc1, bc2);
}

static __global__ void ema_k(float *ema, const float *param, float decay, int64_t n) {
  CU_FOR(i, n) ema[i] = decay * ema[i] + (1.0f - decay) * param[i];
}
extern "C" void cu_ema_update(float *ema, const float *param, float decay, int64_t n) {
  LAUNCH(ema_k, n, ema, param, decay, n);
}

/* ---- token sequences: embedding lookup, weighted pooling ------------------------------------ */

static __global__ void embedding_fwd_k(float *out, const float *table, const int32_t *ids, int N,
                                       int V, int D) {
  CU_FOR(i, (int64_t)N * D) {
    int64_t n = i / D, d = i - n * D;
    int id = ids[n];
    out[i] = id >= 0 && id < V ? table[(int64_t)id * D + d] : 0.0f;
  }
}
/* one thread per column d walks every row in n order: no atomics, the reference's order */
static __global__ void embedding_bwd_k(float *dtable, const float *dout, const int32_t *ids, int N,
                                       int V, int D) {
  CU_FOR(d, (int64_t)D) {
    for (int n = 0; n < N; n++) {
      int id = ids[n];
      if (id >= 0 && id < V) dtable[(int64_t)id * D + d] += dout[(int64_t)n * D + d];
    }
  }
}
extern "C" void cu_embedding_fwd(float *out, const float *table, const int32_t *ids, int N, int V,
                                 int D) {
  LAUNCH(embedding_fwd_k, (int64_t)N * D, out, table, ids, N, V, D);
}
extern "C" void cu_embedding_bwd(float *dtable, const float *dout, const int32_t *ids, int N, int V,
                                 int D) {
  if (!dtable) return;
  LAUNCH(embedding_bwd_k, (int64_t)D, dtable, dout, ids, N, V, D);
}

static __global__ void token_pool_fwd_k(float *out, const float *inp, const float *w, int B, int N,
                                        int C) {
  CU_FOR(i, (int64_t)B * C) {
    int64_t b = i / C, c = i - b * C;
    double s = 0.0;
    for (int n = 0; n < N; n++) s += (double)w[b * N + n] * inp[(b * N + n) * C + c];
    out[i] = (float)s;
  }
}
static __global__ void token_pool_bwd_k(float *dinp, const float *dout, const float *w, int B,
                                        int N, int C) {
  CU_FOR(i, (int64_t)B * N * C) {
    int64_t bn = i / C, c = i - bn * C, b = bn / N;
    dinp[i] += w[bn] * dout[b * C + c];
  }
}
extern "C" void cu_token_pool_fwd(float *out, const float *inp, const float *w, int B, int N,
                                  int C) {
  LAUNCH(token_pool_fwd_k, (int64_t)B * C, out, inp, w, B, N, C);
}
extern "C" void cu_token_pool_bwd(float *dinp, const float *dout, const float *w, int B, int N,
                                  int C) {
  if (!dinp) return;
  LAUNCH(token_pool_bwd_k, (int64_t)B * N * C, dinp, dout, w, B, N, C);
}

/* ---- softmax cross-entropy: one block per row writes its probabilities and loss term, then
 * one block sums the terms in order ------------------------------------------------------------ */

static __global__ void xent_rows_k(float *probs, double *terms, const float *logits,
                                   const int32_t *target, int C, float scale) {
  __shared__ double sh[32];
  __shared__ float shm[32];
  int64_t n = blockIdx.x;
  const float *x = logits + n * C;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < C; j += blockDim.x) mx = fmaxf(mx, scale * x[j]);
  mx = cu_warp_max(mx);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) shm[threadIdx.x >> 5] = mx;
  __syncthreads();
  mx = -INFINITY;
  for (int w = 0; w < (int)(blockDim.x >> 5); w++) mx = fmaxf(mx, shm[w]);
  double s = 0.0;
  for (int j = threadIdx.x; j < C; j += blockDim.x) s += exp((double)(scale * x[j]) - mx);
  s = cu_block_sum(s, sh);
  for (int j = threadIdx.x; j < C; j += blockDim.x)
    probs[n * C + j] = (float)(exp((double)(scale * x[j]) - mx) / s);
  if (threadIdx.x == 0) {
    int t = target[n];
    terms[n] = t >= 0 && t < C ? mx + log(s) - (double)(scale * x[t]) : 0.0;
  }
}
extern "C" void cu_xent_fwd(float *loss, float *probs, const float *logits, const int32_t *target,
                            int N, int C, float scale) {
  if (N <= 0) return;
  size_t mark = cu_scratch_mark();
  double *terms = (double *)cu_scratch_need((size_t)N * 8, "cross-entropy terms");
  xent_rows_k<<<(unsigned)N, 128, 0, g_cu.compute>>>(probs, terms, logits, target, C, scale);
  CU_LAUNCHED();
  sum_terms_k<<<1, CU_THREADS, 0, g_cu.compute>>>(loss, terms, N, 1.0 / (double)N);
  CU_LAUNCHED();
  cu_scratch_release(mark);
}
static __global__ void xent_bwd_k(float *dlogits, double k, const float *probs,
                                  const int32_t *target, int N, int C) {
  CU_FOR(i, (int64_t)N * C) {
    int64_t n = i / C, j = i - n * C;
    int t = target[n];
    if (t < 0 || t >= C) continue;
    dlogits[i] += (float)(k * ((double)probs[i] - (j == t ? 1.0 : 0.0)));
  }
}
extern "C" void cu_xent_bwd(float *dlogits, float dloss, const float *probs, const int32_t *target,
                            int N, int C, float scale) {
  if (!dlogits || N <= 0) return;
  LAUNCH(xent_bwd_k, (int64_t)N * C, dlogits, (double)dloss * scale / N, probs, target, N, C);
}

/* ---- motion guidance ------------------------------------------------------------------------ */

static __global__ void attn_top1_k(int32_t *idx, float *val, const float *p, int64_t R, int N) {
  CU_FOR(r, R) {
    const float *row = p + r * N;
    int best = 0;
    for (int j = 1; j < N; j++)
      if (row[j] > row[best]) best = j;
    idx[r] = best;
    val[r] = row[best];
  }
}
extern "C" void cu_attn_top1(int32_t *idx, float *val, const float *p, int64_t R, int N) {
  LAUNCH(attn_top1_k, R, idx, val, p, R, N);
}

/* fixed-order partials, then reduce_final_k: the same bits on every run */
static __global__ void masked_mse_partial_k(double *part, const float *p, const int32_t *idx,
                                            const float *val, int64_t R, int N) {
  __shared__ double sh[32];
  double s = 0.0;
  for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < R;
       r += (int64_t)gridDim.x * blockDim.x) {
    double d = (double)p[r * N + idx[r]] - val[r];
    s += d * d;
  }
  s = cu_block_sum(s, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}
extern "C" void cu_masked_mse_fwd(float *loss, const float *p, const int32_t *idx,
                                  const float *val, int64_t R, int N) {
  size_t mark = cu_scratch_mark();
  double *part = (double *)cu_scratch_need(RED_BLOCKS * sizeof(double), "reduction");
  masked_mse_partial_k<<<RED_BLOCKS, CU_THREADS, 0, g_cu.compute>>>(part, p, idx, val, R, N);
  CU_LAUNCHED();
  reduce_final_k<<<1, CU_THREADS, 0, g_cu.compute>>>(loss, part, RED_BLOCKS,
                                                     R > 0 ? 1.0 / (double)R : 0.0);
  CU_LAUNCHED();
  cu_scratch_release(mark);
}

static __global__ void masked_mse_bwd_k(float *dp, double k, const float *p, const int32_t *idx,
                                        const float *val, int64_t R, int N) {
  CU_FOR(r, R) {
    int64_t at = r * N + idx[r];
    dp[at] += (float)(k * ((double)p[at] - val[r])); /* one entry per row: no races */
  }
}
extern "C" void cu_masked_mse_bwd(float *dp, float dloss, const float *p, const int32_t *idx,
                                  const float *val, int64_t R, int N) {
  if (!dp || R <= 0) return;
  LAUNCH(masked_mse_bwd_k, R, dp, 2.0 * dloss / (double)R, p, idx, val, R, N);
}

/* ---- the frame VAE: asymmetric padding, clamp, posterior draw, KL, L1 ------------------------ */

static __global__ void pad2d_k(float *out, const float *inp, int H, int W, int top, int left,
                               int Ho, int Wo, int64_t n) {
  CU_FOR(o, n) {
    int64_t nc = o / ((int64_t)Ho * Wo);
    int r = (int)(o - nc * Ho * Wo), y = r / Wo - top, x = r % Wo - left;
    out[o] = (y >= 0 && y < H && x >= 0 && x < W) ? inp[(nc * H + y) * W + x] : 0.0f;
  }
}
static __global__ void pad2d_bwd_k(float *dinp, const float *dout, int H, int W, int top,
                                   int left, int Ho, int Wo, int64_t n) {
  CU_FOR(i, n) {
    int64_t nc = i / ((int64_t)H * W);
    int r = (int)(i - nc * H * W), y = r / W, x = r % W;
    dinp[i] += dout[(nc * Ho + y + top) * Wo + x + left];
  }
}
extern "C" void cu_pad2d_fwd(float *out, const float *inp, int N, int C, int H, int W, int top,
                             int bottom, int left, int right) {
  int Ho = H + top + bottom, Wo = W + left + right;
  int64_t n = (int64_t)N * C * Ho * Wo;
  LAUNCH(pad2d_k, n, out, inp, H, W, top, left, Ho, Wo, n);
}
extern "C" void cu_pad2d_bwd(float *dinp, const float *dout, int N, int C, int H, int W, int top,
                             int bottom, int left, int right) {
  if (!dinp) return;
  int Ho = H + top + bottom, Wo = W + left + right;
  int64_t n = (int64_t)N * C * H * W;
  LAUNCH(pad2d_bwd_k, n, dinp, dout, H, W, top, left, Ho, Wo, n);
}

static __global__ void clamp_k(float *out, const float *inp, float lo, float hi, int64_t n) {
  CU_FOR(i, n) out[i] = inp[i] < lo ? lo : inp[i] > hi ? hi : inp[i];
}
static __global__ void clamp_bwd_k(float *dinp, const float *dout, const float *inp, float lo,
                                   float hi, int64_t n) {
  CU_FOR(i, n) if (inp[i] >= lo && inp[i] <= hi) dinp[i] += dout[i];
}
extern "C" void cu_clamp_fwd(float *out, const float *inp, float lo, float hi, int64_t n) {
  LAUNCH(clamp_k, n, out, inp, lo, hi, n);
}
extern "C" void cu_clamp_bwd(float *dinp, const float *dout, const float *inp, float lo, float hi,
                             int64_t n) {
  if (dinp) LAUNCH(clamp_bwd_k, n, dinp, dout, inp, lo, hi, n);
}

static __global__ void gauss_k(float *z, const float *mean, const float *logvar,
                               const float *noise, int64_t n) {
  CU_FOR(i, n) z[i] = mean[i] + expf(0.5f * logvar[i]) * noise[i];
}
static __global__ void gauss_bwd_k(float *dmean, float *dlogvar, const float *dz,
                                   const float *logvar, const float *noise, int64_t n) {
  CU_FOR(i, n) {
    if (dmean) dmean[i] += dz[i];
    if (dlogvar) dlogvar[i] += dz[i] * noise[i] * 0.5f * expf(0.5f * logvar[i]);
  }
}
extern "C" void cu_gauss_sample_fwd(float *z, const float *mean, const float *logvar,
                                    const float *noise, int64_t n) {
  LAUNCH(gauss_k, n, z, mean, logvar, noise, n);
}
extern "C" void cu_gauss_sample_bwd(float *dmean, float *dlogvar, const float *dz,
                                    const float *logvar, const float *noise, int64_t n) {
  if (dmean || dlogvar) LAUNCH(gauss_bwd_k, n, dmean, dlogvar, dz, logvar, noise, n);
}

extern "C" void cu_kl_gauss_fwd(float *loss, const float *mean, const float *logvar, int64_t n) {
  reduce_scalar(loss, mean, logvar, n, RED_KL, 0.0f, n > 0 ? 1.0 / (double)n : 0.0);
}
static __global__ void kl_bwd_k(float *dmean, float *dlogvar, double k, const float *mean,
                                const float *logvar, int64_t n) {
  CU_FOR(i, n) {
    if (dmean) dmean[i] += (float)(k * mean[i]);
    if (dlogvar) dlogvar[i] += (float)(k * 0.5 * (exp((double)logvar[i]) - 1.0));
  }
}
extern "C" void cu_kl_gauss_bwd(float *dmean, float *dlogvar, float dloss, const float *mean,
                                const float *logvar, int64_t n) {
  if (!dmean && !dlogvar) return;
  LAUNCH(kl_bwd_k, n, dmean, dlogvar, n > 0 ? dloss / (double)n : 0.0, mean, logvar, n);
}

extern "C" void cu_l1_fwd(float *loss, const float *pred, const float *target, int64_t n) {
  reduce_scalar(loss, pred, target, n, RED_L1, 0.0f, n > 0 ? 1.0 / (double)n : 0.0);
}
static __global__ void l1_bwd_k(float *dpred, float *dtarget, float k, const float *pred,
                                const float *target, int64_t n) {
  CU_FOR(i, n) {
    float d = pred[i] - target[i], g = d > 0 ? k : d < 0 ? -k : 0.0f;
    if (dpred) dpred[i] += g;
    if (dtarget) dtarget[i] -= g;
  }
}
extern "C" void cu_l1_bwd(float *dpred, float *dtarget, float dloss, const float *pred,
                          const float *target, int64_t n) {
  if (!dpred && !dtarget) return;
  LAUNCH(l1_bwd_k, n, dpred, dtarget, n > 0 ? (float)(dloss / (double)n) : 0.0f, pred, target, n);
}

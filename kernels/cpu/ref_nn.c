/* kernels/cpu/ref_nn.c — reference normalisation, activations, attention, layout, element-wise,
 * embeddings, dropout, losses and optimiser kernels, and the reference backend table.
 * Plain C, serial, double accumulation for every reduction. */
#include "kernels/cpu/cpu_ops.h"

#include "common/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- row / group kernels (the softmax and permute helpers are also used by the fast backend) */

/* Group statistics and normalisation of one (n, g) block: `x` points at sample n, laid out
 * (T, C, S); the group's channels are c0 .. c0+Cg-1. */
static void gn_group_fwd(float *out, float *mean, float *rstd, const float *x, const float *weight,
                         const float *bias, int T, int C, int S, int c0, int Cg, float eps) {
  double s = 0.0, ss = 0.0;
  int64_t cnt = (int64_t)T * Cg * S;
  for (int t = 0; t < T; t++)
    for (int c = c0; c < c0 + Cg; c++) {
      const float *r = x + ((size_t)t * C + c) * S;
      for (int i = 0; i < S; i++) s += r[i];
    }
  double mu = s / (double)cnt;
  for (int t = 0; t < T; t++)
    for (int c = c0; c < c0 + Cg; c++) {
      const float *r = x + ((size_t)t * C + c) * S;
      for (int i = 0; i < S; i++) {
        double d = r[i] - mu;
        ss += d * d;
      }
    }
  double rs = 1.0 / sqrt(ss / (double)cnt + (double)eps);
  *mean = (float)mu;
  *rstd = (float)rs;
  for (int t = 0; t < T; t++)
    for (int c = c0; c < c0 + Cg; c++) {
      const float *r = x + ((size_t)t * C + c) * S;
      float *o = out + ((size_t)t * C + c) * S;
      double w = weight ? weight[c] : 1.0, b = bias ? bias[c] : 0.0;
      for (int i = 0; i < S; i++) o[i] = (float)((r[i] - mu) * rs * w + b);
    }
}

/* dinp = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dout * weight, over the group. */
static void gn_group_bwd_input(float *dinp, const float *dout, const float *x, float mean,
                               float rstd, const float *weight, int T, int C, int S, int c0,
                               int Cg) {
  double sg = 0.0, sgx = 0.0;
  int64_t cnt = (int64_t)T * Cg * S;
  for (int t = 0; t < T; t++)
    for (int c = c0; c < c0 + Cg; c++) {
      size_t off = ((size_t)t * C + c) * S;
      double w = weight ? weight[c] : 1.0;
      for (int i = 0; i < S; i++) {
        double g = dout[off + i] * w, xh = (x[off + i] - (double)mean) * rstd;
        sg += g;
        sgx += g * xh;
      }
    }
  double mg = sg / (double)cnt, mgx = sgx / (double)cnt;
  for (int t = 0; t < T; t++)
    for (int c = c0; c < c0 + Cg; c++) {
      size_t off = ((size_t)t * C + c) * S;
      double w = weight ? weight[c] : 1.0;
      for (int i = 0; i < S; i++) {
        double g = dout[off + i] * w, xh = (x[off + i] - (double)mean) * rstd;
        dinp[off + i] += (float)((double)rstd * (g - mg - xh * mgx));
      }
    }
}

void cpu_softmax_row(float *out, const float *inp, int C) {
  float mx = -INFINITY;
  for (int i = 0; i < C; i++) mx = inp[i] > mx ? inp[i] : mx;
  double s = 0.0;
  for (int i = 0; i < C; i++) s += exp((double)inp[i] - mx);
  for (int i = 0; i < C; i++) out[i] = (float)(exp((double)inp[i] - mx) / s);
}
void cpu_softmax_row_bwd(float *dinp, const float *dout, const float *out, int C) {
  double d = 0.0;
  for (int i = 0; i < C; i++) d += (double)dout[i] * out[i];
  for (int i = 0; i < C; i++) dinp[i] += (float)(out[i] * (dout[i] - d));
}

void cpu_attn_probs_row(float *p, const float *scores, const float *add, const uint8_t *keep,
                        int Nk) {
  double mx = -INFINITY;
  for (int j = 0; j < Nk; j++) {
    double s = (double)scores[j] + (add ? add[j] : 0.0f);
    if (keep && !keep[j]) s = -INFINITY;
    p[j] = (float)s;
    if (s > mx) mx = s;
  }
  if (mx == -INFINITY) {  // every key masked: no attention at all
    for (int j = 0; j < Nk; j++) p[j] = 0.0f;
    return;
  }
  double sum = 0.0;
  for (int j = 0; j < Nk; j++) sum += exp((double)p[j] - mx);
  for (int j = 0; j < Nk; j++) p[j] = (float)(exp((double)p[j] - mx) / sum);
}

/* out index o (row-major over out's shape) <- inp index; out dim d is inp dim perm[d]. */
void cpu_permute_range(float *out, const float *inp, int ndim, const int *shape, const int *perm,
                       int mode, int64_t o0, int64_t o1) {
  int64_t istride[6], ostride_in[6], oshape[6];
  int64_t s = 1;
  for (int d = ndim - 1; d >= 0; d--) {
    istride[d] = s;
    s *= shape[d];
  }
  for (int d = 0; d < ndim; d++) {
    oshape[d] = shape[perm[d]];
    ostride_in[d] = istride[perm[d]];
  }
  // inner-block size: elements of out per index of its first dim
  int64_t inner = 1;
  for (int d = 1; d < ndim; d++) inner *= oshape[d];
  for (int64_t o = o0; o < o1; o++) {
    for (int64_t r = 0; r < inner; r++) {
      int64_t rem = r, src = o * ostride_in[0];
      for (int d = ndim - 1; d >= 1; d--) {
        src += (rem % oshape[d]) * ostride_in[d];
        rem /= oshape[d];
      }
      int64_t dst = o * inner + r;
      if (mode == 0)
        out[dst] = inp[src];
      else if (mode == 1)
        ((float *)inp)[src] += out[dst];
      else
        out[dst] += inp[src];
    }
  }
}

float cpu_silu_d(float x) {
  double s = 1.0 / (1.0 + exp(-(double)x));
  return (float)(s * (1.0 + x * (1.0 - s)));
}
#define GELU_K 0.7978845608028654 /* sqrt(2/pi) */
float cpu_gelu_tanh(float x) {
  double u = GELU_K * (x + 0.044715 * (double)x * x * x);
  return (float)(0.5 * x * (1.0 + tanh(u)));
}
float cpu_gelu_tanh_d(float x) {
  double u = GELU_K * (x + 0.044715 * (double)x * x * x), th = tanh(u);
  return (float)(0.5 * (1.0 + th) +
                 0.5 * x * (1.0 - th * th) * GELU_K * (1.0 + 3.0 * 0.044715 * (double)x * x));
}
float cpu_gelu_erf(float x) { return (float)(0.5 * x * (1.0 + erf(x * 0.7071067811865476))); }
float cpu_gelu_erf_d(float x) {
  double cdf = 0.5 * (1.0 + erf(x * 0.7071067811865476));
  double pdf = 0.3989422804014327 * exp(-0.5 * (double)x * x);
  return (float)(cdf + x * pdf);
}

#define QUICK_GELU_K 1.702 /* CLIP's constant */
float cpu_quick_gelu(float x) { return (float)(x / (1.0 + exp(-QUICK_GELU_K * x))); }
float cpu_quick_gelu_d(float x) {
  double s = 1.0 / (1.0 + exp(-QUICK_GELU_K * x));
  return (float)(s + QUICK_GELU_K * x * s * (1.0 - s));
}

/* ---- normalisation ----------------------------------------------------------------------------
 */

void ref_groupnorm_fwd(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int T, int C, int S, int G, float eps) {
  int Cg = C / G;
  size_t per = (size_t)T * C * S;
  for (int n = 0; n < N; n++)
    for (int g = 0; g < G; g++)
      gn_group_fwd(out + n * per, &mean[n * G + g], &rstd[n * G + g], inp + n * per, weight,
                       bias, T, C, S, g * Cg, Cg, eps);
}

void ref_groupnorm_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                       const float *inp, const float *mean, const float *rstd, const float *weight,
                       int N, int T, int C, int S, int G) {
  int Cg = C / G;
  size_t per = (size_t)T * C * S;
  if (dinp)
    for (int n = 0; n < N; n++)
      for (int g = 0; g < G; g++)
        gn_group_bwd_input(dinp + n * per, dout + n * per, inp + n * per, mean[n * G + g],
                               rstd[n * G + g], weight, T, C, S, g * Cg, Cg);
  if (dweight || dbias)
    for (int c = 0; c < C; c++) {
      double sw = 0.0, sb = 0.0;
      int g = c / Cg;
      for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++) {
          size_t off = n * per + ((size_t)t * C + c) * S;
          for (int i = 0; i < S; i++) {
            sb += dout[off + i];
            sw += (double)dout[off + i] *
                  ((inp[off + i] - (double)mean[n * G + g]) * rstd[n * G + g]);
          }
        }
      if (dweight) dweight[c] += (float)sw;
      if (dbias) dbias[c] += (float)sb;
    }
}

/* the composition, step by step: group norm, then SiLU; backward through the recomputed
 * normalised values */
void ref_groupnorm_silu_fwd(float *out, float *mean, float *rstd, const float *inp,
                            const float *weight, const float *bias, int N, int T, int C, int S,
                            int G, float eps) {
  ref_groupnorm_fwd(out, mean, rstd, inp, weight, bias, N, T, C, S, G, eps);
  int64_t n = (int64_t)N * T * C * S;
  for (int64_t i = 0; i < n; i++) out[i] = (float)(out[i] / (1.0 + exp(-(double)out[i])));
}
void ref_groupnorm_silu_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *mean, const float *rstd,
                            const float *weight, const float *bias, int N, int T, int C, int S,
                            int G) {
  int Cg = C / G;
  size_t per = (size_t)T * C * S;
  int64_t n = (int64_t)N * per;
  float *dz = xmalloc(sizeof(float) * (size_t)(n ? n : 1));
  for (int b = 0; b < N; b++)
    for (int t = 0; t < T; t++)
      for (int c = 0; c < C; c++) {
        int g = c / Cg;
        double mu = mean[b * G + g], rs = rstd[b * G + g];
        double w = weight ? weight[c] : 1.0, bc = bias ? bias[c] : 0.0;
        size_t off = b * per + ((size_t)t * C + c) * S;
        for (int i = 0; i < S; i++) {
          float z = (float)((inp[off + i] - mu) * rs * w + bc);
          dz[off + i] = dout[off + i] * cpu_silu_d(z);
        }
      }
  ref_groupnorm_bwd(dinp, dweight, dbias, dz, inp, mean, rstd, weight, N, T, C, S, G);
  free(dz);
}

void ref_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C, float eps) {
  ref_groupnorm_fwd(out, mean, rstd, inp, weight, bias, N, 1, C, 1, 1, eps);
}
void ref_layernorm_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                       const float *inp, const float *mean, const float *rstd, const float *weight,
                       int N, int C) {
  ref_groupnorm_bwd(dinp, dweight, dbias, dout, inp, mean, rstd, weight, N, 1, C, 1, 1);
}

/* ---- activations --------------------------------------------------------------------------- */

void ref_silu_fwd(float *out, const float *inp, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = (float)(inp[i] / (1.0 + exp(-(double)inp[i])));
}
void ref_silu_bwd(float *dinp, const float *dout, const float *inp, int64_t n) {
  for (int64_t i = 0; i < n; i++) dinp[i] += dout[i] * cpu_silu_d(inp[i]);
}
void ref_gelu_tanh_fwd(float *out, const float *inp, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = cpu_gelu_tanh(inp[i]);
}
void ref_gelu_tanh_bwd(float *dinp, const float *dout, const float *inp, int64_t n) {
  for (int64_t i = 0; i < n; i++) dinp[i] += dout[i] * cpu_gelu_tanh_d(inp[i]);
}
void ref_gelu_erf_fwd(float *out, const float *inp, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = cpu_gelu_erf(inp[i]);
}
void ref_gelu_erf_bwd(float *dinp, const float *dout, const float *inp, int64_t n) {
  for (int64_t i = 0; i < n; i++) dinp[i] += dout[i] * cpu_gelu_erf_d(inp[i]);
}
void ref_quick_gelu_fwd(float *out, const float *inp, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = cpu_quick_gelu(inp[i]);
}
void ref_quick_gelu_bwd(float *dinp, const float *dout, const float *inp, int64_t n) {
  for (int64_t i = 0; i < n; i++) dinp[i] += dout[i] * cpu_quick_gelu_d(inp[i]);
}
void ref_geglu_fwd(float *out, const float *inp, int M, int F) {
  for (int64_t m = 0; m < M; m++)
    for (int64_t f = 0; f < F; f++) {
      const float *r = inp + m * 2 * F;
      out[m * F + f] = (float)((double)r[f] * cpu_gelu_erf(r[F + f]));
    }
}
void ref_geglu_bwd(float *dinp, const float *dout, const float *inp, int M, int F) {
  for (int64_t m = 0; m < M; m++)
    for (int64_t f = 0; f < F; f++) {
      const float *r = inp + m * 2 * F;
      float *d = dinp + m * 2 * F;
      double dy = dout[m * F + f];
      d[f] += (float)(dy * cpu_gelu_erf(r[F + f]));
      d[F + f] += (float)(dy * r[f] * cpu_gelu_erf_d(r[F + f]));
    }
}
void ref_softmax_fwd(float *out, const float *inp, int N, int C) {
  for (int n = 0; n < N; n++) cpu_softmax_row(out + (size_t)n * C, inp + (size_t)n * C, C);
}
void ref_softmax_bwd(float *dinp, const float *dout, const float *out, int N, int C) {
  for (int n = 0; n < N; n++)
    cpu_softmax_row_bwd(dinp + (size_t)n * C, dout + (size_t)n * C, out + (size_t)n * C, C);
}

/* ---- attention ----------------------------------------------------------------------------- */

void ref_attention_fwd(float *out, float *probs, const float *q, const float *k, const float *v,
                       const op_attn_mask *mask, int B, int H, int Nq, int Nk, int D, float scale) {
  float *scores = malloc(sizeof(float) * (size_t)Nk);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      size_t bh = (size_t)b * H + h;
      const float *qb = q + bh * Nq * D, *kb = k + bh * Nk * D, *vb = v + bh * Nk * D;
      size_t moff = mask ? (size_t)(b % mask->mb) * Nq * Nk : 0;
      for (int i = 0; i < Nq; i++) {
        for (int j = 0; j < Nk; j++) {
          double s = 0.0;
          for (int d = 0; d < D; d++) s += (double)qb[(size_t)i * D + d] * kb[(size_t)j * D + d];
          scores[j] = (float)(s * scale);
        }
        float *p = probs + (bh * Nq + i) * Nk;
        const float *add = mask && mask->add ? mask->add + moff + (size_t)i * Nk : NULL;
        const uint8_t *keep = mask && mask->keep ? mask->keep + moff + (size_t)i * Nk : NULL;
        cpu_attn_probs_row(p, scores, add, keep, Nk);
        for (int d = 0; d < D; d++) {
          double s = 0.0;
          for (int j = 0; j < Nk; j++) s += (double)p[j] * vb[(size_t)j * D + d];
          out[(bh * Nq + i) * D + d] = (float)s;
        }
      }
    }
  free(scores);
}

void ref_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *dprobs,
                       const float *q, const float *k, const float *v, const float *probs, int B,
                       int H, int Nq, int Nk, int D, float scale) {
  double *ds = malloc(sizeof(double) * (size_t)Nq * Nk);  // dL/dscores of one (b, h)
  for (size_t bh = 0; bh < (size_t)B * H; bh++) {
    const float *qb = q + bh * Nq * D, *kb = k + bh * Nk * D, *vb = v + bh * Nk * D;
    const float *P = probs + bh * Nq * Nk, *dO = dout + bh * Nq * D;
    for (int i = 0; i < Nq; i++) {
      double rowdot = 0.0;
      for (int j = 0; j < Nk; j++) {
        double dp = dprobs ? dprobs[bh * Nq * Nk + (size_t)i * Nk + j] : 0.0;
        for (int d = 0; d < D; d++) dp += (double)dO[(size_t)i * D + d] * vb[(size_t)j * D + d];
        ds[(size_t)i * Nk + j] = dp;
        rowdot += dp * P[(size_t)i * Nk + j];
      }
      for (int j = 0; j < Nk; j++)
        ds[(size_t)i * Nk + j] = P[(size_t)i * Nk + j] * (ds[(size_t)i * Nk + j] - rowdot);
    }
    if (dv)
      for (int j = 0; j < Nk; j++)
        for (int d = 0; d < D; d++) {
          double s = 0.0;
          for (int i = 0; i < Nq; i++) s += (double)P[(size_t)i * Nk + j] * dO[(size_t)i * D + d];
          dv[bh * Nk * D + (size_t)j * D + d] += (float)s;
        }
    if (dq)
      for (int i = 0; i < Nq; i++)
        for (int d = 0; d < D; d++) {
          double s = 0.0;
          for (int j = 0; j < Nk; j++) s += ds[(size_t)i * Nk + j] * kb[(size_t)j * D + d];
          dq[bh * Nq * D + (size_t)i * D + d] += (float)(s * scale);
        }
    if (dk)
      for (int j = 0; j < Nk; j++)
        for (int d = 0; d < D; d++) {
          double s = 0.0;
          for (int i = 0; i < Nq; i++) s += ds[(size_t)i * Nk + j] * qb[(size_t)i * D + d];
          dk[bh * Nk * D + (size_t)j * D + d] += (float)(s * scale);
        }
  }
  free(ds);
}

/* ---- layout ---------------------------------------------------------------------------------- */

void ref_permute_fwd(float *out, const float *inp, int ndim, const int *shape, const int *perm) {
  cpu_permute_range(out, inp, ndim, shape, perm, 0, 0, shape[perm[0]]);
}
void ref_permute_bwd(float *dinp, const float *dout, int ndim, const int *shape, const int *perm) {
  cpu_permute_range((float *)dout, dinp, ndim, shape, perm, 1, 0, shape[perm[0]]);
}

void ref_upsample2x_fwd(float *out, const float *inp, int N, int C, int H, int W) {
  for (size_t nc = 0; nc < (size_t)N * C; nc++)
    for (int y = 0; y < 2 * H; y++)
      for (int x = 0; x < 2 * W; x++)
        out[(nc * 2 * H + y) * 2 * W + x] = inp[(nc * H + y / 2) * W + x / 2];
}
void ref_upsample2x_bwd(float *dinp, const float *dout, int N, int C, int H, int W) {
  for (size_t nc = 0; nc < (size_t)N * C; nc++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        const float *d = dout + (nc * 2 * H + 2 * y) * 2 * W + 2 * x;
        dinp[(nc * H + y) * W + x] += (float)((double)d[0] + d[1] + d[2 * W] + d[2 * W + 1]);
      }
}
void ref_avgpool2x_fwd(float *out, const float *inp, int N, int C, int H, int W) {
  int Ho = H / 2, Wo = W / 2;
  for (size_t nc = 0; nc < (size_t)N * C; nc++)
    for (int y = 0; y < Ho; y++)
      for (int x = 0; x < Wo; x++) {
        const float *s = inp + (nc * H + 2 * y) * W + 2 * x;
        out[(nc * Ho + y) * Wo + x] = (float)(0.25 * ((double)s[0] + s[1] + s[W] + s[W + 1]));
      }
}
void ref_avgpool2x_bwd(float *dinp, const float *dout, int N, int C, int H, int W) {
  int Ho = H / 2, Wo = W / 2;
  for (size_t nc = 0; nc < (size_t)N * C; nc++)
    for (int y = 0; y < Ho; y++)
      for (int x = 0; x < Wo; x++) {
        float g = 0.25f * dout[(nc * Ho + y) * Wo + x];
        float *d = dinp + (nc * H + 2 * y) * W + 2 * x;
        d[0] += g;
        d[1] += g;
        d[W] += g;
        d[W + 1] += g;
      }
}
void ref_concat_fwd(float *out, const float *a, const float *b, int M, int Ca, int Cb, int S) {
  for (int m = 0; m < M; m++) {
    memcpy(out + (size_t)m * (Ca + Cb) * S, a + (size_t)m * Ca * S, sizeof(float) * Ca * S);
    memcpy(out + ((size_t)m * (Ca + Cb) + Ca) * S, b + (size_t)m * Cb * S, sizeof(float) * Cb * S);
  }
}
void ref_concat_bwd(float *da, float *db, const float *dout, int M, int Ca, int Cb, int S) {
  for (int m = 0; m < M; m++) {
    const float *d = dout + (size_t)m * (Ca + Cb) * S;
    if (da)
      for (size_t i = 0; i < (size_t)Ca * S; i++) da[(size_t)m * Ca * S + i] += d[i];
    if (db)
      for (size_t i = 0; i < (size_t)Cb * S; i++)
        db[(size_t)m * Cb * S + i] += d[(size_t)Ca * S + i];
  }
}
void ref_split_fwd(float *a, float *b, const float *inp, int M, int Ca, int Cb, int S) {
  for (int m = 0; m < M; m++) {
    const float *s = inp + (size_t)m * (Ca + Cb) * S;
    if (a) memcpy(a + (size_t)m * Ca * S, s, sizeof(float) * Ca * S);
    if (b) memcpy(b + (size_t)m * Cb * S, s + (size_t)Ca * S, sizeof(float) * Cb * S);
  }
}
void ref_repeat_fwd(float *out, const float *inp, int B, int T, int64_t E) {
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      memcpy(out + ((size_t)b * T + t) * E, inp + (size_t)b * E, sizeof(float) * E);
}
void ref_repeat_bwd(float *dinp, const float *dout, int B, int T, int64_t E) {
  for (int b = 0; b < B; b++)
    for (int64_t e = 0; e < E; e++) {
      double s = 0.0;
      for (int t = 0; t < T; t++) s += dout[((size_t)b * T + t) * E + e];
      dinp[(size_t)b * E + e] += (float)s;
    }
}

/* ---- element-wise ---------------------------------------------------------------------------- */

void ref_add_fwd(float *out, const float *a, const float *b, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
void ref_axpy(float *y, float alpha, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}
void ref_scale_fwd(float *out, const float *inp, float s, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = s * inp[i];
}
void ref_mul_fwd(float *out, const float *a, const float *b, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}
void ref_mul_bwd(float *da, float *db, const float *dout, const float *a, const float *b,
                 int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    if (da) da[i] += dout[i] * b[i];
    if (db) db[i] += dout[i] * a[i];
  }
}
void ref_bias_add_fwd(float *out, const float *inp, const float *bias, int B, int T, int C, int S) {
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int c = 0; c < C; c++) {
        size_t off = (((size_t)b * T + t) * C + c) * S;
        for (int i = 0; i < S; i++) out[off + i] = inp[off + i] + bias[(size_t)b * C + c];
      }
}
void ref_bias_add_bwd(float *dinp, float *dbias, const float *dout, int B, int T, int C, int S) {
  if (dinp)
    for (size_t i = 0; i < (size_t)B * T * C * S; i++) dinp[i] += dout[i];
  if (dbias)
    for (int b = 0; b < B; b++)
      for (int c = 0; c < C; c++) {
        double s = 0.0;
        for (int t = 0; t < T; t++) {
          size_t off = (((size_t)b * T + t) * C + c) * S;
          for (int i = 0; i < S; i++) s += dout[off + i];
        }
        dbias[(size_t)b * C + c] += (float)s;
      }
}
void ref_l2norm_fwd(float *out, float *rnorm, const float *inp, int N, int C, float eps) {
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * C;
    double s = 0.0;
    for (int i = 0; i < C; i++) s += (double)x[i] * x[i];
    double nr = sqrt(s), r = 1.0 / (nr > eps ? nr : eps);
    rnorm[n] = (float)r;
    for (int i = 0; i < C; i++) out[(size_t)n * C + i] = (float)(x[i] * r);
  }
}
/* With y = x r and r = 1/||x||: dx = r (dy - y (y . dy)); below eps r is a constant. */
void ref_l2norm_bwd(float *dinp, const float *dout, const float *out, const float *rnorm, int N,
                    int C) {
  for (int n = 0; n < N; n++) {
    const float *y = out + (size_t)n * C, *dy = dout + (size_t)n * C;
    double dot = 0.0, yy = 0.0;
    for (int i = 0; i < C; i++) {
      dot += (double)y[i] * dy[i];
      yy += (double)y[i] * y[i];
    }
    if (yy < 1.0 - 1e-3) dot = 0.0;  // the norm was clamped to eps: out is linear in inp
    for (int i = 0; i < C; i++) dinp[(size_t)n * C + i] += (float)(rnorm[n] * (dy[i] - y[i] * dot));
  }
}

/* ---- embeddings, dropout --------------------------------------------------------------------- */

void ref_timestep_embedding(float *out, const float *t, int N, int dim, float max_period) {
  int half = dim / 2;
  for (int n = 0; n < N; n++) {
    float *o = out + (size_t)n * dim;
    for (int i = 0; i < half; i++) {
      double f = exp(-log((double)max_period) * i / half), a = (double)t[n] * f;
      o[i] = (float)cos(a);
      o[half + i] = (float)sin(a);
    }
    if (dim % 2) o[dim - 1] = 0.0f;
  }
}
void ref_guidance_embedding(float *out, const float *w, int N, int dim) {
  int half = dim / 2;
  double step = half > 1 ? log(10000.0) / (half - 1) : 0.0;
  for (int n = 0; n < N; n++) {
    float *o = out + (size_t)n * dim;
    double ws = (double)w[n] * 1000.0;
    for (int i = 0; i < half; i++) {
      double a = ws * exp(-step * i);
      o[i] = (float)sin(a);
      o[half + i] = (float)cos(a);
    }
    if (dim % 2) o[dim - 1] = 0.0f;
  }
}
void ref_dropout_fwd(float *out, uint8_t *keep, const float *inp, int64_t n, float p,
                     uint64_t seed) {
  float sc = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  for (int64_t i = 0; i < n; i++) {
    keep[i] = p <= 0.0f || op_rand_uniform(seed, (uint64_t)i) >= p;
    out[i] = keep[i] ? inp[i] * sc : 0.0f;
  }
}
void ref_dropout_bwd(float *dinp, const float *dout, const uint8_t *keep, int64_t n, float p) {
  float sc = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  for (int64_t i = 0; i < n; i++)
    if (keep[i]) dinp[i] += dout[i] * sc;
}
void ref_cond_drop_fwd(float *out, const float *inp, const float *null_emb, const uint8_t *keep,
                       int B, int64_t E) {
  for (int b = 0; b < B; b++)
    memcpy(out + (size_t)b * E, keep[b] ? inp + (size_t)b * E : null_emb, sizeof(float) * E);
}
void ref_cond_drop_bwd(float *dinp, float *dnull, const float *dout, const uint8_t *keep, int B,
                       int64_t E) {
  for (int b = 0; b < B; b++) {
    float *dst = keep[b] ? (dinp ? dinp + (size_t)b * E : NULL) : dnull;
    if (!dst) continue;
    for (int64_t e = 0; e < E; e++) dst[e] += dout[(size_t)b * E + e];
  }
}

/* ---- losses ---------------------------------------------------------------------------------- */

void ref_mse_fwd(float *loss, const float *pred, const float *target, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)pred[i] - target[i];
    s += d * d;
  }
  *loss = (float)(s / (double)n);
}
void ref_mse_bwd(float *dpred, float *dtarget, float dloss, const float *pred, const float *target,
                 int64_t n) {
  double k = 2.0 * dloss / (double)n;
  for (int64_t i = 0; i < n; i++) {
    float g = (float)(k * ((double)pred[i] - target[i]));
    if (dpred) dpred[i] += g;
    if (dtarget) dtarget[i] -= g;
  }
}
void ref_huber_fwd(float *loss, const float *pred, const float *target, int64_t n, float c) {
  double s = 0.0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)pred[i] - target[i];
    s += sqrt(d * d + (double)c * c) - c;
  }
  *loss = (float)(s / (double)n);
}
void ref_huber_bwd(float *dpred, float *dtarget, float dloss, const float *pred,
                   const float *target, int64_t n, float c) {
  double k = dloss / (double)n;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)pred[i] - target[i];
    float g = (float)(k * d / sqrt(d * d + (double)c * c));
    if (dpred) dpred[i] += g;
    if (dtarget) dtarget[i] -= g;
  }
}
void ref_infonce_fwd(float *loss, float *probs_ab, float *probs_ba, const float *a, const float *b,
                     int N, int D, float temperature) {
  float *lg = malloc(sizeof(float) * (size_t)N * N), *lgt = malloc(sizeof(float) * (size_t)N * N);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      double s = 0.0;
      for (int d = 0; d < D; d++) s += (double)a[(size_t)i * D + d] * b[(size_t)j * D + d];
      lg[(size_t)i * N + j] = lgt[(size_t)j * N + i] = (float)(s / temperature);
    }
  double l = 0.0;
  for (int i = 0; i < N; i++) {
    // -log softmax_ii = logsumexp(row) - row_i, computed in double for both directions
    for (int dir = 0; dir < 2; dir++) {
      const float *r = (dir ? lgt : lg) + (size_t)i * N;
      double mx = -INFINITY, s = 0.0;
      for (int j = 0; j < N; j++) mx = r[j] > mx ? r[j] : mx;
      for (int j = 0; j < N; j++) s += exp(r[j] - mx);
      l += mx + log(s) - r[i];
    }
    cpu_softmax_row(probs_ab + (size_t)i * N, lg + (size_t)i * N, N);
    cpu_softmax_row(probs_ba + (size_t)i * N, lgt + (size_t)i * N, N);
  }
  *loss = (float)(l / (2.0 * N));
  free(lg);
  free(lgt);
}
/* dL/dlogits_ij = ((Pab_ij - [i==j]) + (Pba_ji - [i==j])) / (2N); logits = a b^T / temp. */
void ref_infonce_bwd(float *da, float *db, float dloss, const float *a, const float *b,
                     const float *probs_ab, const float *probs_ba, int N, int D,
                     float temperature) {
  double k = dloss / (2.0 * N * temperature);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      double g =
          (double)probs_ab[(size_t)i * N + j] + probs_ba[(size_t)j * N + i] - (i == j ? 2.0 : 0.0);
      g *= k;
      for (int d = 0; d < D; d++) {
        if (da) da[(size_t)i * D + d] += (float)(g * b[(size_t)j * D + d]);
        if (db) db[(size_t)j * D + d] += (float)(g * a[(size_t)i * D + d]);
      }
    }
}

/* Cross-entropy of scaled logit rows: probs by the shared softmax row, the loss term
 * logsumexp(scale * row) - scale * row[target] in double. */
void ref_xent_fwd(float *loss, float *probs, const float *logits, const int32_t *target, int N,
                  int C, float scale) {
  float *row = malloc(sizeof(float) * (size_t)(C > 0 ? C : 1));
  double l = 0.0;
  for (int n = 0; n < N; n++) {
    const float *x = logits + (size_t)n * C;
    for (int j = 0; j < C; j++) row[j] = scale * x[j];
    cpu_softmax_row(probs + (size_t)n * C, row, C);
    int t = target[n];
    if (t < 0 || t >= C) continue;
    double mx = -INFINITY, s = 0.0;
    for (int j = 0; j < C; j++) mx = row[j] > mx ? row[j] : mx;
    for (int j = 0; j < C; j++) s += exp((double)row[j] - mx);
    l += mx + log(s) - row[t];
  }
  *loss = N > 0 ? (float)(l / N) : 0.0f;
  free(row);
}
void ref_xent_bwd(float *dlogits, float dloss, const float *probs, const int32_t *target, int N,
                  int C, float scale) {
  if (!dlogits || N <= 0) return;
  double k = (double)dloss * scale / N;
  for (int n = 0; n < N; n++) {
    int t = target[n];
    if (t < 0 || t >= C) continue;
    for (int j = 0; j < C; j++)
      dlogits[(size_t)n * C + j] += (float)(k * ((double)probs[(size_t)n * C + j] - (j == t)));
  }
}

/* ---- token sequences --------------------------------------------------------------------------- */

void ref_embedding_fwd(float *out, const float *table, const int32_t *ids, int N, int V, int D) {
  for (int n = 0; n < N; n++) {
    float *o = out + (size_t)n * D;
    if (ids[n] < 0 || ids[n] >= V) memset(o, 0, sizeof(float) * (size_t)D);
    else memcpy(o, table + (size_t)ids[n] * D, sizeof(float) * (size_t)D);
  }
}
void ref_embedding_bwd(float *dtable, const float *dout, const int32_t *ids, int N, int V, int D) {
  if (!dtable) return;
  for (int n = 0; n < N; n++) {
    if (ids[n] < 0 || ids[n] >= V) continue;
    float *g = dtable + (size_t)ids[n] * D;
    for (int d = 0; d < D; d++) g[d] += dout[(size_t)n * D + d];
  }
}
void ref_token_pool_fwd(float *out, const float *inp, const float *w, int B, int N, int C) {
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++) {
      double s = 0.0;
      for (int n = 0; n < N; n++)
        s += (double)w[(size_t)b * N + n] * inp[((size_t)b * N + n) * C + c];
      out[(size_t)b * C + c] = (float)s;
    }
}
void ref_token_pool_bwd(float *dinp, const float *dout, const float *w, int B, int N, int C) {
  if (!dinp) return;
  for (int b = 0; b < B; b++)
    for (int n = 0; n < N; n++) {
      float wn = w[(size_t)b * N + n];
      for (int c = 0; c < C; c++) dinp[((size_t)b * N + n) * C + c] += wn * dout[(size_t)b * C + c];
    }
}

/* ---- optimisation ---------------------------------------------------------------------------- */

void ref_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n, float lr,
                    float beta1, float beta2, float eps, float weight_decay, int64_t step) {
  double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
  for (int64_t i = 0; i < n; i++) {
    float g = grad[i];
    m[i] = beta1 * m[i] + (1.0f - beta1) * g;
    v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
    double mh = m[i] / bc1, vh = v[i] / bc2;
    double p = (double)param[i] * (1.0 - (double)lr * weight_decay);
    param[i] = (float)(p - lr * mh / (sqrt(vh) + eps));
  }
}
void ref_sumsq(float *out, const float *x, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  *out = (float)s;
}
void ref_ema_update(float *ema, const float *param, float decay, int64_t n) {
  for (int64_t i = 0; i < n; i++) ema[i] = decay * ema[i] + (1.0f - decay) * param[i];
}

/* ---- motion guidance ------------------------------------------------------------------------- */

void ref_attn_top1(int32_t *idx, float *val, const float *p, int64_t R, int N) {
  for (int64_t r = 0; r < R; r++) {
    const float *row = p + r * N;
    int best = 0;
    for (int j = 1; j < N; j++)
      if (row[j] > row[best]) best = j; /* strict: the first of equal maxima */
    idx[r] = best;
    val[r] = row[best];
  }
}

void ref_masked_mse_fwd(float *loss, const float *p, const int32_t *idx, const float *val,
                        int64_t R, int N) {
  double s = 0;
  for (int64_t r = 0; r < R; r++) {
    double d = (double)p[r * N + idx[r]] - val[r];
    s += d * d;
  }
  *loss = R > 0 ? (float)(s / (double)R) : 0.0f;
}

void ref_masked_mse_bwd(float *dp, float dloss, const float *p, const int32_t *idx,
                        const float *val, int64_t R, int N) {
  if (!dp || R <= 0) return;
  double k = 2.0 * dloss / (double)R;
  for (int64_t r = 0; r < R; r++) {
    int64_t at = r * N + idx[r];
    dp[at] += (float)(k * ((double)p[at] - val[r]));
  }
}

/* ---- the table ------------------------------------------------------------------------------- */

const ops_backend ops_cpu_ref_table = {
    .name = "cpu-ref",
    .set_num_threads = NULL,
#define OP(name, params, args) .name = ref_##name,
#include "kernels/ops_list.h"
#undef OP
};

/* ---- the frame VAE: asymmetric padding, clamp, posterior draw, KL, L1 ---------------------- */

void ref_pad2d_fwd(float *out, const float *inp, int N, int C, int H, int W, int top, int bottom,
                   int left, int right) {
  int Ho = H + top + bottom, Wo = W + left + right;
  for (int64_t nc = 0; nc < (int64_t)N * C; nc++) {
    float *o = out + nc * Ho * Wo;
    const float *x = inp + nc * H * W;
    for (int y = 0; y < Ho; y++)
      for (int xo = 0; xo < Wo; xo++) {
        int yi = y - top, xi = xo - left;
        o[(size_t)y * Wo + xo] = (yi >= 0 && yi < H && xi >= 0 && xi < W) ? x[(size_t)yi * W + xi] : 0.0f;
      }
  }
}
void ref_pad2d_bwd(float *dinp, const float *dout, int N, int C, int H, int W, int top,
                   int bottom, int left, int right) {
  if (!dinp) return;
  int Ho = H + top + bottom, Wo = W + left + right;
  for (int64_t nc = 0; nc < (int64_t)N * C; nc++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        dinp[(nc * H + y) * W + x] += dout[(nc * Ho + y + top) * Wo + x + left];
}
void ref_clamp_fwd(float *out, const float *inp, float lo, float hi, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = inp[i] < lo ? lo : inp[i] > hi ? hi : inp[i];
}
void ref_clamp_bwd(float *dinp, const float *dout, const float *inp, float lo, float hi,
                   int64_t n) {
  if (!dinp) return;
  for (int64_t i = 0; i < n; i++)
    if (inp[i] >= lo && inp[i] <= hi) dinp[i] += dout[i];
}
void ref_gauss_sample_fwd(float *z, const float *mean, const float *logvar, const float *noise,
                          int64_t n) {
  for (int64_t i = 0; i < n; i++) z[i] = mean[i] + expf(0.5f * logvar[i]) * noise[i];
}
void ref_gauss_sample_bwd(float *dmean, float *dlogvar, const float *dz, const float *logvar,
                          const float *noise, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    if (dmean) dmean[i] += dz[i];
    if (dlogvar) dlogvar[i] += dz[i] * noise[i] * 0.5f * expf(0.5f * logvar[i]);
  }
}
void ref_kl_gauss_fwd(float *loss, const float *mean, const float *logvar, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; i++)
    s += 0.5 * ((double)mean[i] * mean[i] + exp((double)logvar[i]) - 1.0 - logvar[i]);
  *loss = (float)(n > 0 ? s / (double)n : 0.0);
}
void ref_kl_gauss_bwd(float *dmean, float *dlogvar, float dloss, const float *mean,
                      const float *logvar, int64_t n) {
  double k = n > 0 ? dloss / (double)n : 0.0;
  for (int64_t i = 0; i < n; i++) {
    if (dmean) dmean[i] += (float)(k * mean[i]);
    if (dlogvar) dlogvar[i] += (float)(k * 0.5 * (exp((double)logvar[i]) - 1.0));
  }
}
void ref_l1_fwd(float *loss, const float *pred, const float *target, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; i++) s += fabs((double)pred[i] - target[i]);
  *loss = (float)(n > 0 ? s / (double)n : 0.0);
}
void ref_l1_bwd(float *dpred, float *dtarget, float dloss, const float *pred, const float *target,
                int64_t n) {
  float k = n > 0 ? (float)(dloss / (double)n) : 0.0f;
  for (int64_t i = 0; i < n; i++) {
    float d = pred[i] - target[i], g = d > 0 ? k : d < 0 ? -k : 0.0f;
    if (dpred) dpred[i] += g;
    if (dtarget) dtarget[i] -= g;
  }
}

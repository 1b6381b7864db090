/* kernels/nn/prim.c — numeric primitives of the tape operations: plain loops for the
 * element-wise and normalisation parts, cblas_sgemm for every matrix product (convolutions go
 * through im2col over a chunk of frames at once so the products are large). Statistics are
 * accumulated in double. Shapes: see nn_internal.h and kernels/nn.h. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/nn/nn_internal.h"

#define COL_CAP_FLOATS ((int64_t)8 << 20) /* im2col chunk: 32 MiB of floats at most */

/* ---- linear -------------------------------------------------------------------------- */

void prim_linear_fwd(const float *x, const float *W, const float *b, float *y, int64_t M,
                     int64_t K, int64_t N) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, x, (int)K, W,
              (int)K, 0.0f, y, (int)N);
  if (b)
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) y[m * N + n] += b[n];
}

void prim_linear_bwd(const float *x, const float *W, const float *dy, float *dx, float *dW,
                     float *db, int64_t M, int64_t K, int64_t N) {
  if (dx)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)K, (int)N, 1.0f, dy,
                (int)N, W, (int)K, 1.0f, dx, (int)K);
  if (dW)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)N, (int)K, (int)M, 1.0f, dy, (int)N,
                x, (int)K, 1.0f, dW, (int)K);
  if (db)
    for (int64_t n = 0; n < N; n++) {
      double s = 0;
      for (int64_t m = 0; m < M; m++) s += dy[m * N + n];
      db[n] += (float)s;
    }
}

/* ---- conv2d -------------------------------------------------------------------------- */

/* col (Ci·k·k, nf·P) for frames [0, nf) of x (nf, Ci, H, W); P = Ho·Wo */
static void im2col(const float *x, float *col, int64_t nf, int64_t Ci, int64_t H, int64_t Wd,
                   int k, int s, int pad, int64_t Ho, int64_t Wo) {
  int64_t P = Ho * Wo, L = nf * P;
#pragma omp parallel for collapse(2) if (Ci * k * k * L > 65536)
  for (int64_t ci = 0; ci < Ci; ci++)
    for (int kk = 0; kk < k * k; kk++) {
      int ky = kk / k, kx = kk % k;
      float *row = col + (ci * k * k + kk) * L;
      for (int64_t n = 0; n < nf; n++) {
        const float *xp = x + (n * Ci + ci) * H * Wd;
        for (int64_t oy = 0; oy < Ho; oy++) {
          int64_t iy = oy * s - pad + ky;
          float *r = row + n * P + oy * Wo;
          if (iy < 0 || iy >= H) {
            memset(r, 0, Wo * sizeof(float));
            continue;
          }
          if (s == 1) { /* valid columns are one contiguous run */
            int64_t lo = pad - kx > 0 ? pad - kx : 0, hi = Wd + pad - kx < Wo ? Wd + pad - kx : Wo;
            if (hi < lo) hi = lo;
            for (int64_t ox = 0; ox < lo; ox++) r[ox] = 0.0f;
            if (hi > lo) memcpy(r + lo, xp + iy * Wd + lo - pad + kx, (hi - lo) * sizeof(float));
            for (int64_t ox = hi; ox < Wo; ox++) r[ox] = 0.0f;
            continue;
          }
          for (int64_t ox = 0; ox < Wo; ox++) {
            int64_t ix = ox * s - pad + kx;
            r[ox] = (ix >= 0 && ix < Wd) ? xp[iy * Wd + ix] : 0.0f;
          }
        }
      }
    }
}

static void col2im_add(const float *col, float *dx, int64_t nf, int64_t Ci, int64_t H, int64_t Wd,
                       int k, int s, int pad, int64_t Ho, int64_t Wo) {
  int64_t P = Ho * Wo, L = nf * P;
#pragma omp parallel for collapse(2) if (Ci * k * k * L > 65536)
  for (int64_t n = 0; n < nf; n++)
    for (int64_t ci = 0; ci < Ci; ci++) {
      float *xp = dx + (n * Ci + ci) * H * Wd;
      for (int kk = 0; kk < k * k; kk++) {
        int ky = kk / k, kx = kk % k;
        const float *row = col + (ci * k * k + kk) * L + n * P;
        for (int64_t oy = 0; oy < Ho; oy++) {
          int64_t iy = oy * s - pad + ky;
          if (iy < 0 || iy >= H) continue;
          if (s == 1) {
            int64_t lo = pad - kx > 0 ? pad - kx : 0, hi = Wd + pad - kx < Wo ? Wd + pad - kx : Wo;
            int64_t off = iy * Wd - pad + kx; /* ≥ 0 for every ox in [lo, hi) */
            const float *src = row + oy * Wo;
            for (int64_t ox = lo; ox < hi; ox++) xp[off + ox] += src[ox];
            continue;
          }
          for (int64_t ox = 0; ox < Wo; ox++) {
            int64_t ix = ox * s - pad + kx;
            if (ix >= 0 && ix < Wd) xp[iy * Wd + ix] += row[oy * Wo + ox];
          }
        }
      }
    }
}

static int64_t conv_chunk(int64_t Nb, int64_t K, int64_t Co, int64_t P) {
  int64_t per = (K + Co) * P;
  int64_t nf = COL_CAP_FLOATS / (per > 0 ? per : 1);
  if (nf < 1) nf = 1;
  return nf < Nb ? nf : Nb;
}

void prim_conv2d_fwd(nn_ctx *c, const float *x, const float *W, const float *b, float *y,
                     int64_t Nb, int64_t Ci, int64_t H, int64_t Wd, int64_t Co, int k, int s,
                     int pad) {
  int64_t Ho = (H + 2 * pad - k) / s + 1, Wo = (Wd + 2 * pad - k) / s + 1, P = Ho * Wo;
  int64_t K = Ci * k * k;
  int64_t nf = conv_chunk(Nb, K, Co, P);
  float *col = nn_scratch(c, (size_t)((K + Co) * nf * P));
  float *yt = col + K * nf * P; /* (Co, nf·P) */
  for (int64_t n0 = 0; n0 < Nb; n0 += nf) {
    int64_t m = Nb - n0 < nf ? Nb - n0 : nf, L = m * P;
    const float *xs = x + n0 * Ci * H * Wd;
    const float *B_;
    if (k == 1 && s == 1 && pad == 0 && m == 1) {
      B_ = xs; /* a 1×1 conv of one frame is a plain product */
    } else {
      im2col(xs, col, m, Ci, H, Wd, k, s, pad, Ho, Wo);
      B_ = col;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Co, (int)L, (int)K, 1.0f, W,
                (int)K, B_, (int)L, 0.0f, yt, (int)L);
#pragma omp parallel for collapse(2) if (Co * L > 65536)
    for (int64_t f = 0; f < m; f++)
      for (int64_t co = 0; co < Co; co++) {
        float *yo = y + ((n0 + f) * Co + co) * P;
        const float *src = yt + co * L + f * P;
        float bias = b ? b[co] : 0.0f;
        for (int64_t p = 0; p < P; p++) yo[p] = src[p] + bias;
      }
  }
}

void prim_conv2d_bwd(nn_ctx *c, const float *x, const float *W, const float *dy, float *dx,
                     float *dW, float *db, int64_t Nb, int64_t Ci, int64_t H, int64_t Wd,
                     int64_t Co, int k, int s, int pad) {
  int64_t Ho = (H + 2 * pad - k) / s + 1, Wo = (Wd + 2 * pad - k) / s + 1, P = Ho * Wo;
  int64_t K = Ci * k * k;
  int64_t nf = conv_chunk(Nb, K, Co, P);
  float *col = nn_scratch(c, (size_t)((K + Co) * nf * P));
  float *gt = col + K * nf * P; /* (Co, nf·P) gathered dy */
  if (db)
    for (int64_t co = 0; co < Co; co++) {
      double acc = 0;
      for (int64_t n = 0; n < Nb; n++)
        for (int64_t p = 0; p < P; p++) acc += dy[(n * Co + co) * P + p];
      db[co] += (float)acc;
    }
  if (!dx && !dW) return;
  for (int64_t n0 = 0; n0 < Nb; n0 += nf) {
    int64_t m = Nb - n0 < nf ? Nb - n0 : nf, L = m * P;
#pragma omp parallel for collapse(2) if (Co * L > 65536)
    for (int64_t f = 0; f < m; f++)
      for (int64_t co = 0; co < Co; co++)
        memcpy(gt + co * L + f * P, dy + ((n0 + f) * Co + co) * P, P * sizeof(float));
    if (dW) {
      im2col(x + n0 * Ci * H * Wd, col, m, Ci, H, Wd, k, s, pad, Ho, Wo);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Co, (int)K, (int)L, 1.0f, gt,
                  (int)L, col, (int)L, 1.0f, dW, (int)K);
    }
    if (dx) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)L, (int)Co, 1.0f, W,
                  (int)K, gt, (int)L, 0.0f, col, (int)L);
      col2im_add(col, dx + n0 * Ci * H * Wd, m, Ci, H, Wd, k, s, pad, Ho, Wo);
    }
  }
}

/* ---- temporal conv (kernel 3 in time) ------------------------------------------------ */

void prim_tconv3_fwd(nn_ctx *c, const float *x, const float *W, const float *b, float *y,
                     int64_t B, int64_t T, int64_t Ci, int64_t Co, int64_t S) {
  float *Wk = nn_scratch(c, (size_t)(3 * Co * Ci)); /* (3, Co, Ci) */
  for (int64_t o = 0; o < Co; o++)
    for (int64_t i = 0; i < Ci; i++)
      for (int k = 0; k < 3; k++) Wk[(k * Co + o) * Ci + i] = W[(o * Ci + i) * 3 + k];
  for (int64_t bt = 0; bt < B * T; bt++) {
    float *yo = y + bt * Co * S;
    for (int64_t o = 0; o < Co; o++)
      for (int64_t p = 0; p < S; p++) yo[o * S + p] = b ? b[o] : 0.0f;
    int64_t t = bt % T;
    for (int k = 0; k < 3; k++) {
      int64_t ts = t + k - 1;
      if (ts < 0 || ts >= T) continue;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Co, (int)S, (int)Ci, 1.0f,
                  Wk + k * Co * Ci, (int)Ci, x + (bt - t + ts) * Ci * S, (int)S, 1.0f, yo, (int)S);
    }
  }
}

void prim_tconv3_bwd(nn_ctx *c, const float *x, const float *W, const float *dy, float *dx,
                     float *dW, float *db, int64_t B, int64_t T, int64_t Ci, int64_t Co,
                     int64_t S) {
  float *Wk = nn_scratch(c, (size_t)(6 * Co * Ci));
  float *dWk = Wk + 3 * Co * Ci;
  memset(dWk, 0, 3 * Co * Ci * sizeof(float));
  for (int64_t o = 0; o < Co; o++)
    for (int64_t i = 0; i < Ci; i++)
      for (int k = 0; k < 3; k++) Wk[(k * Co + o) * Ci + i] = W[(o * Ci + i) * 3 + k];
  for (int64_t bt = 0; bt < B * T; bt++) {
    const float *g = dy + bt * Co * S;
    int64_t t = bt % T;
    if (db)
      for (int64_t o = 0; o < Co; o++) {
        double acc = 0;
        for (int64_t p = 0; p < S; p++) acc += g[o * S + p];
        db[o] += (float)acc;
      }
    for (int k = 0; k < 3; k++) {
      int64_t ts = t + k - 1;
      if (ts < 0 || ts >= T) continue;
      const float *xs = x + (bt - t + ts) * Ci * S;
      if (dW)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Co, (int)Ci, (int)S, 1.0f, g,
                    (int)S, xs, (int)S, 1.0f, dWk + k * Co * Ci, (int)Ci);
      if (dx)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)Ci, (int)S, (int)Co, 1.0f,
                    Wk + k * Co * Ci, (int)Ci, g, (int)S, 1.0f, dx + (bt - t + ts) * Ci * S,
                    (int)S);
    }
  }
  if (dW)
    for (int64_t o = 0; o < Co; o++)
      for (int64_t i = 0; i < Ci; i++)
        for (int k = 0; k < 3; k++) dW[(o * Ci + i) * 3 + k] += dWk[(k * Co + o) * Ci + i];
}

/* ---- group norm ---------------------------------------------------------------------- */

/* x (B, T, C, S), groups over C; the element (b, t, c, s) is x[((b·T + t)·C + c)·S + s]. */
void prim_gnorm_fwd(const float *x, const float *g, const float *b, float *y, float *stats,
                    int64_t B, int64_t T, int64_t C, int64_t S, int G, float eps, int silu) {
  int64_t Cg = C / G;
#pragma omp parallel for collapse(2) if (B * T * C * S > 65536)
  for (int64_t bi = 0; bi < B; bi++)
    for (int gi = 0; gi < G; gi++) {
      double s1 = 0, s2 = 0;
      for (int64_t t = 0; t < T; t++) {
        const float *xp = x + ((bi * T + t) * C + gi * Cg) * S;
        for (int64_t i = 0; i < Cg * S; i++) {
          s1 += xp[i];
          s2 += (double)xp[i] * xp[i];
        }
      }
      double n = (double)(T * Cg * S), mean = s1 / n, var = s2 / n - mean * mean;
      if (var < 0) var = 0;
      float mu = (float)mean, rs = (float)(1.0 / sqrt(var + eps));
      stats[(bi * G + gi) * 2] = mu;
      stats[(bi * G + gi) * 2 + 1] = rs;
      for (int64_t t = 0; t < T; t++)
        for (int64_t cc = 0; cc < Cg; cc++) {
          int64_t ch = gi * Cg + cc;
          const float *xp = x + ((bi * T + t) * C + ch) * S;
          float *yp = y + ((bi * T + t) * C + ch) * S;
          float a = rs * g[ch], sh = b[ch] - mu * a;
          if (silu)
            for (int64_t p = 0; p < S; p++) {
              float z = xp[p] * a + sh;
              yp[p] = z / (1.0f + expf(-z));
            }
          else
            for (int64_t p = 0; p < S; p++) yp[p] = xp[p] * a + sh;
        }
    }
}

void prim_gnorm_bwd(const float *x, const float *g, const float *b, const float *dy,
                    const float *stats, float *dx, float *dg, float *db, int64_t B, int64_t T,
                    int64_t C, int64_t S, int G, int silu) {
  int64_t Cg = C / G;
  double *dgs = NULL, *dbs = NULL;
  dgs = xcalloc((size_t)(B * C), sizeof(double));
  dbs = xcalloc((size_t)(B * C), sizeof(double));
#pragma omp parallel for collapse(2) if (B * T * C * S > 65536)
  for (int64_t bi = 0; bi < B; bi++)
    for (int gi = 0; gi < G; gi++) {
      float mu = stats[(bi * G + gi) * 2], rs = stats[(bi * G + gi) * 2 + 1];
      double sdx = 0, sdxx = 0; /* Σ dxhat, Σ dxhat·xhat */
      float *dzs = silu ? xmalloc((size_t)(T * Cg * S) * sizeof(float)) : NULL; /* dL/dz kept */
      for (int64_t t = 0; t < T; t++)
        for (int64_t cc = 0; cc < Cg; cc++) {
          int64_t ch = gi * Cg + cc;
          const float *xp = x + ((bi * T + t) * C + ch) * S;
          const float *gp = dy + ((bi * T + t) * C + ch) * S;
          float *dzp = dzs ? dzs + (t * Cg + cc) * S : NULL;
          double a1 = 0, a2 = 0;
          for (int64_t p = 0; p < S; p++) {
            float xh = (xp[p] - mu) * rs, dz = gp[p];
            if (silu) {
              float z = xh * g[ch] + b[ch], sg = 1.0f / (1.0f + expf(-z));
              dz *= sg * (1.0f + z * (1.0f - sg));
              dzp[p] = dz;
            }
            a1 += dz;
            a2 += (double)dz * xh;
          }
          dbs[bi * C + ch] += a1;
          dgs[bi * C + ch] += a2;
          sdx += a1 * g[ch];
          sdxx += a2 * g[ch];
        }
      if (!dx) {
        free(dzs);
        continue;
      }
      double n = (double)(T * Cg * S);
      float m1 = (float)(sdx / n), m2 = (float)(sdxx / n);
      for (int64_t t = 0; t < T; t++)
        for (int64_t cc = 0; cc < Cg; cc++) {
          int64_t ch = gi * Cg + cc;
          const float *xp = x + ((bi * T + t) * C + ch) * S;
          const float *gp = dy + ((bi * T + t) * C + ch) * S;
          float *dp = dx + ((bi * T + t) * C + ch) * S;
          const float *dzp = dzs ? dzs + (t * Cg + cc) * S : gp;
          float gc = g[ch];
          for (int64_t p = 0; p < S; p++) {
            float xh = (xp[p] - mu) * rs;
            dp[p] += rs * (dzp[p] * gc - m1 - xh * m2);
          }
        }
      free(dzs);
    }
  for (int64_t ch = 0; ch < C; ch++) {
    double a = 0, bb = 0;
    for (int64_t bi = 0; bi < B; bi++) a += dgs[bi * C + ch], bb += dbs[bi * C + ch];
    if (dg) dg[ch] += (float)a;
    if (db) db[ch] += (float)bb;
  }
  free(dgs);
  free(dbs);
}

/* ---- layer norm ---------------------------------------------------------------------- */

void prim_lnorm_fwd(const float *x, const float *g, const float *b, float *y, float *stats,
                    int64_t M, int64_t C, float eps) {
#pragma omp parallel for if (M * C > 65536)
  for (int64_t m = 0; m < M; m++) {
    const float *xp = x + m * C;
    double s1 = 0, s2 = 0;
    for (int64_t i = 0; i < C; i++) s1 += xp[i], s2 += (double)xp[i] * xp[i];
    double mean = s1 / C, var = s2 / C - mean * mean;
    if (var < 0) var = 0;
    float mu = (float)mean, rs = (float)(1.0 / sqrt(var + eps));
    stats[2 * m] = mu;
    stats[2 * m + 1] = rs;
    for (int64_t i = 0; i < C; i++) y[m * C + i] = (xp[i] - mu) * rs * g[i] + b[i];
  }
}

void prim_lnorm_bwd(const float *x, const float *g, const float *dy, const float *stats,
                    float *dx, float *dg, float *db, int64_t M, int64_t C) {
  for (int64_t m = 0; m < M; m++) {
    const float *xp = x + m * C, *gp = dy + m * C;
    float mu = stats[2 * m], rs = stats[2 * m + 1];
    double s1 = 0, s2 = 0;
    for (int64_t i = 0; i < C; i++) {
      float xh = (xp[i] - mu) * rs, d = gp[i] * g[i];
      s1 += d;
      s2 += (double)d * xh;
      if (dg) dg[i] += gp[i] * xh;
      if (db) db[i] += gp[i];
    }
    if (dx) {
      float m1 = (float)(s1 / C), m2 = (float)(s2 / C);
      for (int64_t i = 0; i < C; i++) {
        float xh = (xp[i] - mu) * rs;
        dx[m * C + i] += rs * (gp[i] * g[i] - m1 - xh * m2);
      }
    }
  }
}

/* ---- attention ----------------------------------------------------------------------- */

#define ATTN_SMALL 1024 /* Nq·Nk at most (temporal maps): plain loops, parallel over (group, head) */

static void softmax_rows(float *S, int64_t R, int64_t N) {
  for (int64_t r = 0; r < R; r++) {
    float *s = S + r * N, mx = s[0];
    for (int64_t j = 1; j < N; j++) mx = s[j] > mx ? s[j] : mx;
    double sum = 0;
    for (int64_t j = 0; j < N; j++) {
      s[j] = expf(s[j] - mx);
      sum += s[j];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t j = 0; j < N; j++) s[j] *= inv;
  }
}

void prim_attn_fwd(const float *q, const float *k, const float *v, float *o, float *P, int64_t G,
                   int64_t Nq, int64_t Nk, int64_t C, int heads) {
  int64_t d = C / heads;
  float scale = 1.0f / sqrtf((float)d);
  if (Nq * Nk <= ATTN_SMALL) {
#pragma omp parallel for collapse(2) if (G * heads * Nq * Nk * d > 65536)
    for (int64_t gi = 0; gi < G; gi++)
      for (int h = 0; h < heads; h++) {
        const float *Q = q + gi * Nq * C + h * d, *K = k + gi * Nk * C + h * d,
                    *V = v + gi * Nk * C + h * d;
        float *Pp = P + (gi * heads + h) * Nq * Nk;
        float *O = o + gi * Nq * C + h * d;
        for (int64_t i = 0; i < Nq; i++)
          for (int64_t j = 0; j < Nk; j++) {
            float acc = 0;
            for (int64_t e = 0; e < d; e++) acc += Q[i * C + e] * K[j * C + e];
            Pp[i * Nk + j] = acc * scale;
          }
        softmax_rows(Pp, Nq, Nk);
        for (int64_t i = 0; i < Nq; i++) {
          for (int64_t e = 0; e < d; e++) O[i * C + e] = 0;
          for (int64_t j = 0; j < Nk; j++) {
            float p = Pp[i * Nk + j];
            for (int64_t e = 0; e < d; e++) O[i * C + e] += p * V[j * C + e];
          }
        }
      }
    return;
  }
  for (int64_t gi = 0; gi < G; gi++)
    for (int h = 0; h < heads; h++) {
      const float *Q = q + gi * Nq * C + h * d, *K = k + gi * Nk * C + h * d,
                  *V = v + gi * Nk * C + h * d;
      float *Pp = P + (gi * heads + h) * Nq * Nk;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Nq, (int)Nk, (int)d, scale, Q,
                  (int)C, K, (int)C, 0.0f, Pp, (int)Nk);
      softmax_rows(Pp, Nq, Nk);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Nq, (int)d, (int)Nk, 1.0f, Pp,
                  (int)Nk, V, (int)C, 0.0f, o + gi * Nq * C + h * d, (int)C);
    }
}

/* dS = P ⊙ (dP − rowsum(dP ⊙ P)) · scale, in place on dP */
static void softmax_bwd_rows(const float *P, float *dP, int64_t R, int64_t N, float scale) {
  for (int64_t r = 0; r < R; r++) {
    double s = 0;
    for (int64_t j = 0; j < N; j++) s += (double)dP[r * N + j] * P[r * N + j];
    for (int64_t j = 0; j < N; j++)
      dP[r * N + j] = P[r * N + j] * (dP[r * N + j] - (float)s) * scale;
  }
}

void prim_attn_bwd(nn_ctx *c, const float *q, const float *k, const float *v, const float *P,
                   const float *dO, const float *extra, float *dq, float *dk, float *dv,
                   int64_t G, int64_t Nq, int64_t Nk, int64_t C, int heads) {
  int64_t d = C / heads;
  float scale = 1.0f / sqrtf((float)d);
  if (Nq * Nk <= ATTN_SMALL) {
#pragma omp parallel for collapse(2) if (G * heads * Nq * Nk * d > 65536)
    for (int64_t gi = 0; gi < G; gi++)
      for (int h = 0; h < heads; h++) {
        float dP[ATTN_SMALL];
        int64_t off = gi * Nq * C + h * d, offk = gi * Nk * C + h * d;
        const float *Pp = P + (gi * heads + h) * Nq * Nk;
        const float *ex = extra ? extra + (gi * heads + h) * Nq * Nk : NULL;
        for (int64_t i = 0; i < Nq; i++)
          for (int64_t j = 0; j < Nk; j++) {
            float acc = ex ? ex[i * Nk + j] : 0.0f;
            for (int64_t e = 0; e < d; e++) acc += dO[off + i * C + e] * v[offk + j * C + e];
            dP[i * Nk + j] = acc;
            if (dv) {
              float p = Pp[i * Nk + j];
              for (int64_t e = 0; e < d; e++) dv[offk + j * C + e] += p * dO[off + i * C + e];
            }
          }
        softmax_bwd_rows(Pp, dP, Nq, Nk, scale);
        for (int64_t i = 0; i < Nq; i++)
          for (int64_t j = 0; j < Nk; j++) {
            float s = dP[i * Nk + j];
            if (dq)
              for (int64_t e = 0; e < d; e++) dq[off + i * C + e] += s * k[offk + j * C + e];
            if (dk)
              for (int64_t e = 0; e < d; e++) dk[offk + j * C + e] += s * q[off + i * C + e];
          }
      }
    return;
  }
  float *dP = nn_scratch(c, (size_t)(Nq * Nk));
  for (int64_t gi = 0; gi < G; gi++)
    for (int h = 0; h < heads; h++) {
      int64_t off = gi * Nq * C + h * d, offk = gi * Nk * C + h * d;
      const float *Pp = P + (gi * heads + h) * Nq * Nk;
      if (dv)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)Nk, (int)d, (int)Nq, 1.0f, Pp,
                    (int)Nk, dO + off, (int)C, 1.0f, dv + offk, (int)C);
      if (extra) memcpy(dP, extra + (gi * heads + h) * Nq * Nk, Nq * Nk * sizeof(float));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Nq, (int)Nk, (int)d, 1.0f,
                  dO + off, (int)C, v + offk, (int)C, extra ? 1.0f : 0.0f, dP, (int)Nk);
      softmax_bwd_rows(Pp, dP, Nq, Nk, scale);
      if (dq)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Nq, (int)d, (int)Nk, 1.0f, dP,
                    (int)Nk, k + offk, (int)C, 1.0f, dq + off, (int)C);
      if (dk)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)Nk, (int)d, (int)Nq, 1.0f, dP,
                    (int)Nk, q + off, (int)C, 1.0f, dk + offk, (int)C);
    }
}

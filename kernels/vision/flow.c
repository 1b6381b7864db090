/* kernels/vision/flow.c — dense optical flow (coarse-to-fine combined local–global), global
 * translation, warps. See flow.h for the contract. */
#include "kernels/vision/flow.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define FLOW_MAX_LEVELS 8
#define FLOW_MAX_SIDE 16384

typedef struct {
  float *p;
  size_t cap;
} fbuf;

struct flow_ws {
  fbuf pa[FLOW_MAX_LEVELS], pb[FLOW_MAX_LEVELS]; /* pyramids (h, w, C) */
  fbuf uv[FLOW_MAX_LEVELS];                      /* flow per level (h, w, 2) */
  fbuf bw, j, u0;                                /* warped b; 5 tensor maps; flow at warp */
  fbuf tmp;
  uint8_t *mk[FLOW_MAX_LEVELS];
  size_t mkcap[FLOW_MAX_LEVELS];
};

static float *fb(fbuf *b, size_t n) {
  if (b->cap < n) {
    free(b->p);
    b->p = malloc(n * sizeof(float));
    if (!b->p) abort();
    b->cap = n;
  }
  return b->p;
}

void flow_opts_default(flow_opts *o) {
  o->levels = 0;
  o->warps = 2;
  o->sweeps = 12;
  o->alpha = 0.004f;
}

flow_ws *flow_ws_new(void) {
  flow_ws *ws = calloc(1, sizeof *ws);
  if (!ws) abort();
  return ws;
}

void flow_ws_free(flow_ws *ws) {
  if (!ws) return;
  for (int l = 0; l < FLOW_MAX_LEVELS; l++) {
    free(ws->pa[l].p);
    free(ws->pb[l].p);
    free(ws->uv[l].p);
    free(ws->mk[l]);
  }
  free(ws->bw.p);
  free(ws->j.p);
  free(ws->u0.p);
  free(ws->tmp.p);
  free(ws);
}

/* 2x2 average down-sampling of (h, w, C) into (h/2, w/2, C). */
static void down2(const float *src, int h, int w, int C, float *dst) {
  int h2 = h / 2, w2 = w / 2;
  for (int y = 0; y < h2; y++)
    for (int x = 0; x < w2; x++)
      for (int c = 0; c < C; c++) {
        const float *s = src + ((size_t)(2 * y) * w + 2 * x) * C + c;
        dst[((size_t)y * w2 + x) * C + c] =
            0.25f * (s[0] + s[C] + s[(size_t)w * C] + s[(size_t)w * C + C]);
      }
}

static inline float sample(const float *src, int H, int W, int C, int c, float x, float y) {
  if (x < 0) x = 0;
  if (y < 0) y = 0;
  if (x > W - 1) x = (float)(W - 1);
  if (y > H - 1) y = (float)(H - 1);
  int x0 = (int)x, y0 = (int)y;
  int x1 = x0 + 1 < W ? x0 + 1 : x0, y1 = y0 + 1 < H ? y0 + 1 : y0;
  float fx = x - x0, fy = y - y0;
  float a = src[((size_t)y0 * W + x0) * C + c], b = src[((size_t)y0 * W + x1) * C + c];
  float d = src[((size_t)y1 * W + x0) * C + c], e = src[((size_t)y1 * W + x1) * C + c];
  return (a + (b - a) * fx) * (1 - fy) + (d + (e - d) * fx) * fy;
}

void flow_warp(const float *src, int H, int W, int C, const float *uv, float s, float *dst) {
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      size_t i = (size_t)y * W + x;
      float sx = x + s * uv[2 * i], sy = y + s * uv[2 * i + 1];
      for (int c = 0; c < C; c++) dst[i * C + c] = sample(src, H, W, C, c, sx, sy);
    }
}

void flow_midpoint(const float *a, const float *b, int H, int W, int C, const float *uv,
                   float *mid) {
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      size_t i = (size_t)y * W + x;
      float ux = 0.5f * uv[2 * i], uy = 0.5f * uv[2 * i + 1];
      for (int c = 0; c < C; c++)
        mid[i * C + c] = 0.5f * sample(a, H, W, C, c, x - ux, y - uy) +
                         0.5f * sample(b, H, W, C, c, x + ux, y + uy);
    }
}

static int cmp_float_desc(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x < y) - (x > y);
}

double flow_top_mean(const float *uv, int H, int W, double frac) {
  size_t n = (size_t)H * W;
  size_t k = (size_t)(frac * (double)n);
  if (k < 1) k = 1;
  float *m = malloc(n * sizeof(float));
  if (!m) abort();
  for (size_t i = 0; i < n; i++) m[i] = sqrtf(uv[2 * i] * uv[2 * i] + uv[2 * i + 1] * uv[2 * i + 1]);
  qsort(m, n, sizeof(float), cmp_float_desc);
  double s = 0;
  for (size_t i = 0; i < k; i++) s += m[i];
  free(m);
  return s / (double)k;
}

/* 3x3 box mean (borders: mean over the pixels inside) of nmap maps stored (h, w, nmap). */
static void box3(float *m, int h, int w, int nmap, float *tmp) {
  /* horizontal into tmp, vertical back into m */
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      int xa = x > 0 ? x - 1 : x, xb = x < w - 1 ? x + 1 : x;
      float inv = 1.0f / (float)(xb - xa + 1);
      for (int k = 0; k < nmap; k++) {
        float s = 0;
        for (int xx = xa; xx <= xb; xx++) s += m[((size_t)y * w + xx) * nmap + k];
        tmp[((size_t)y * w + x) * nmap + k] = s * inv;
      }
    }
  for (int y = 0; y < h; y++) {
    int ya = y > 0 ? y - 1 : y, yb = y < h - 1 ? y + 1 : y;
    float inv = 1.0f / (float)(yb - ya + 1);
    for (int x = 0; x < w; x++)
      for (int k = 0; k < nmap; k++) {
        float s = 0;
        for (int yy = ya; yy <= yb; yy++) s += tmp[((size_t)yy * w + x) * nmap + k];
        m[((size_t)y * w + x) * nmap + k] = s * inv;
      }
  }
}

/* Structure-tensor maps (J11, J12, J22, J13, J23) of a against the warped b, per pixel, summed
 * over channels: derivatives of the mean of a and bw (central differences), It = bw − a. */
static void tensor_maps(const float *a, const float *bw, int h, int w, int C, float *J) {
  for (int y = 0; y < h; y++) {
    int ya = y > 0 ? y - 1 : y, yb = y < h - 1 ? y + 1 : y;
    float sy = (yb - ya) > 0 ? 1.0f / (float)(yb - ya) : 0;
    for (int x = 0; x < w; x++) {
      int xa = x > 0 ? x - 1 : x, xb = x < w - 1 ? x + 1 : x;
      float sx = (xb - xa) > 0 ? 1.0f / (float)(xb - xa) : 0;
      float j11 = 0, j12 = 0, j22 = 0, j13 = 0, j23 = 0;
      for (int c = 0; c < C; c++) {
#define AV(yy, xx) (0.5f * (a[((size_t)(yy) * w + (xx)) * C + c] + bw[((size_t)(yy) * w + (xx)) * C + c]))
        float ix = (AV(y, xb) - AV(y, xa)) * sx;
        float iy = (AV(yb, x) - AV(ya, x)) * sy;
#undef AV
        size_t i = ((size_t)y * w + x) * C + c;
        float it = bw[i] - a[i];
        j11 += ix * ix;
        j12 += ix * iy;
        j22 += iy * iy;
        j13 += ix * it;
        j23 += iy * it;
      }
      float *o = J + ((size_t)y * w + x) * 5;
      o[0] = j11;
      o[1] = j12;
      o[2] = j22;
      o[3] = j13;
      o[4] = j23;
    }
  }
}

static int check_size(int H, int W, int C) {
  if (H < 2 || W < 2 || H > FLOW_MAX_SIDE || W > FLOW_MAX_SIDE)
    return err_set("flow: frame size %dx%d outside 2..%d", W, H, FLOW_MAX_SIDE);
  if (C < 1 || C > 4) return err_set("flow: %d channels (1..4 supported)", C);
  return TB_OK;
}

static int auto_levels(int H, int W, int want) {
  int n = 1, h = H, w = W;
  int cap = want > 0 ? want : FLOW_MAX_LEVELS;
  if (cap > FLOW_MAX_LEVELS) cap = FLOW_MAX_LEVELS;
  while (n < cap && h / 2 >= (want > 0 ? 2 : 12) && w / 2 >= (want > 0 ? 2 : 12)) {
    h /= 2;
    w /= 2;
    n++;
  }
  return n;
}

int flow_dense(flow_ws *ws, const flow_opts *o, const float *a, const float *b, int H, int W,
               int C, float *uv) {
  if (check_size(H, W, C) != TB_OK) return TB_ERR;
  flow_opts def;
  if (!o) {
    flow_opts_default(&def);
    o = &def;
  }
  flow_ws *own = NULL;
  if (!ws) ws = own = flow_ws_new();
  int L = auto_levels(H, W, o->levels);
  int hs[FLOW_MAX_LEVELS], wsz[FLOW_MAX_LEVELS];
  hs[0] = H;
  wsz[0] = W;
  memcpy(fb(&ws->pa[0], (size_t)H * W * C), a, (size_t)H * W * C * sizeof(float));
  memcpy(fb(&ws->pb[0], (size_t)H * W * C), b, (size_t)H * W * C * sizeof(float));
  for (int l = 1; l < L; l++) {
    hs[l] = hs[l - 1] / 2;
    wsz[l] = wsz[l - 1] / 2;
    size_t n = (size_t)hs[l] * wsz[l] * C;
    down2(ws->pa[l - 1].p, hs[l - 1], wsz[l - 1], C, fb(&ws->pa[l], n));
    down2(ws->pb[l - 1].p, hs[l - 1], wsz[l - 1], C, fb(&ws->pb[l], n));
  }
  float alpha = o->alpha;
  for (int l = L - 1; l >= 0; l--) {
    int h = hs[l], w = wsz[l];
    size_t n = (size_t)h * w;
    float *U = fb(&ws->uv[l], n * 2);
    if (l == L - 1) {
      memset(U, 0, n * 2 * sizeof(float));
    } else {
      /* Up-sample the coarser flow (bilinear on the coarse grid, values scaled by the size
       * ratio). */
      int hc = hs[l + 1], wc = wsz[l + 1];
      const float *Uc = ws->uv[l + 1].p;
      float rx = (float)w / (float)wc, ry = (float)h / (float)hc;
      for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
          float cx = (x + 0.5f) / rx - 0.5f, cy = (y + 0.5f) / ry - 0.5f;
          U[2 * ((size_t)y * w + x)] = rx * sample(Uc, hc, wc, 2, 0, cx, cy);
          U[2 * ((size_t)y * w + x) + 1] = ry * sample(Uc, hc, wc, 2, 1, cx, cy);
        }
    }
    float *bw = fb(&ws->bw, n * C);
    float *J = fb(&ws->j, n * 5);
    float *U0 = fb(&ws->u0, n * 2);
    float *tmp = fb(&ws->tmp, n * 5);
    for (int k = 0; k < o->warps; k++) {
      flow_warp(ws->pb[l].p, h, w, C, U, 1.0f, bw);
      tensor_maps(ws->pa[l].p, bw, h, w, C, J);
      /* where the warped position leaves the frame the data term says nothing (content that
       * enters or leaves): zero it, and the smoothness term carries the neighbours' motion in */
      for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
          size_t i = (size_t)y * w + x;
          float sx = x + U[2 * i], sy = y + U[2 * i + 1];
          if (sx < 0 || sy < 0 || sx > w - 1 || sy > h - 1) memset(J + i * 5, 0, 5 * sizeof(float));
        }
      box3(J, h, w, 5, tmp);
      memcpy(U0, U, n * 2 * sizeof(float));
      /* Gauss–Seidel on the increment: for each pixel with k neighbours,
       *   (J11 + kα) U + J12 V = J11 u0 + J12 v0 − J13 + α Σ U_n
       *   J12 U + (J22 + kα) V = J12 u0 + J22 v0 − J23 + α Σ V_n            */
      for (int s = 0; s < o->sweeps; s++) {
        for (int y = 0; y < h; y++)
          for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            float su = 0, sv = 0;
            int kn = 0;
            if (x > 0) { su += U[2 * (i - 1)]; sv += U[2 * (i - 1) + 1]; kn++; }
            if (x < w - 1) { su += U[2 * (i + 1)]; sv += U[2 * (i + 1) + 1]; kn++; }
            if (y > 0) { su += U[2 * (i - w)]; sv += U[2 * (i - w) + 1]; kn++; }
            if (y < h - 1) { su += U[2 * (i + w)]; sv += U[2 * (i + w) + 1]; kn++; }
            const float *j = J + i * 5;
            float u0 = U0[2 * i], v0 = U0[2 * i + 1];
            float a11 = j[0] + kn * alpha, a12 = j[1], a22 = j[2] + kn * alpha;
            float b1 = j[0] * u0 + j[1] * v0 - j[3] + alpha * su;
            float b2 = j[1] * u0 + j[2] * v0 - j[4] + alpha * sv;
            float det = a11 * a22 - a12 * a12;
            if (det <= 1e-20f) continue;
            /* at most one pixel of change per warping pass at this level: larger motion is the
             * coarser levels' job, and the linearisation does not hold beyond it */
            float nu = (a22 * b1 - a12 * b2) / det, nv = (a11 * b2 - a12 * b1) / det;
            nu = nu < u0 - 1.0f ? u0 - 1.0f : nu > u0 + 1.0f ? u0 + 1.0f : nu;
            nv = nv < v0 - 1.0f ? v0 - 1.0f : nv > v0 + 1.0f ? v0 + 1.0f : nv;
            U[2 * i] = nu;
            U[2 * i + 1] = nv;
          }
      }
    }
  }
  memcpy(uv, ws->uv[0].p, (size_t)H * W * 2 * sizeof(float));
  flow_ws_free(own);
  return TB_OK;
}

static uint8_t *mkbuf(flow_ws *ws, int l, size_t n) {
  if (ws->mkcap[l] < n) {
    free(ws->mk[l]);
    ws->mk[l] = malloc(n);
    if (!ws->mk[l]) abort();
    ws->mkcap[l] = n;
  }
  return ws->mk[l];
}

int flow_translation(flow_ws *ws, const float *a, const float *b, int H, int W, int C,
                     const uint8_t *mask, double *tx, double *ty, double *strength) {
  if (check_size(H, W, C) != TB_OK) return TB_ERR;
  flow_ws *own = NULL;
  if (!ws) ws = own = flow_ws_new();
  int L = 1, hs[FLOW_MAX_LEVELS], wsz[FLOW_MAX_LEVELS];
  hs[0] = H;
  wsz[0] = W;
  while (L < 3 && hs[L - 1] / 2 >= 16 && wsz[L - 1] / 2 >= 16) {
    hs[L] = hs[L - 1] / 2;
    wsz[L] = wsz[L - 1] / 2;
    L++;
  }
  memcpy(fb(&ws->pa[0], (size_t)H * W * C), a, (size_t)H * W * C * sizeof(float));
  memcpy(fb(&ws->pb[0], (size_t)H * W * C), b, (size_t)H * W * C * sizeof(float));
  uint8_t *m0 = mkbuf(ws, 0, (size_t)H * W);
  if (mask) memcpy(m0, mask, (size_t)H * W);
  else memset(m0, 1, (size_t)H * W);
  for (int l = 1; l < L; l++) {
    size_t n = (size_t)hs[l] * wsz[l];
    down2(ws->pa[l - 1].p, hs[l - 1], wsz[l - 1], C, fb(&ws->pa[l], n * C));
    down2(ws->pb[l - 1].p, hs[l - 1], wsz[l - 1], C, fb(&ws->pb[l], n * C));
    uint8_t *mc = mkbuf(ws, l, n);
    const uint8_t *mf = ws->mk[l - 1];
    int wf = wsz[l - 1];
    for (int y = 0; y < hs[l]; y++)
      for (int x = 0; x < wsz[l]; x++) {
        const uint8_t *s = mf + (size_t)(2 * y) * wf + 2 * x;
        mc[(size_t)y * wsz[l] + x] = s[0] && s[1] && s[wf] && s[wf + 1];
      }
  }
  double t[2] = {0, 0}, lam = 0;
  for (int l = L - 1; l >= 0; l--) {
    if (l < L - 1) {
      t[0] *= (double)wsz[l] / wsz[l + 1];
      t[1] *= (double)hs[l] / hs[l + 1];
    }
    int h = hs[l], w = wsz[l];
    const float *pa = ws->pa[l].p, *pb = ws->pb[l].p;
    const uint8_t *mk = ws->mk[l];
    for (int it = 0; it < 6; it++) {
      double j11 = 0, j12 = 0, j22 = 0, j13 = 0, j23 = 0;
      long cnt = 0;
      for (int y = 1; y < h - 1; y++)
        for (int x = 1; x < w - 1; x++) {
          size_t i = (size_t)y * w + x;
          if (!mk[i]) continue;
          float sx = (float)(x + t[0]), sy = (float)(y + t[1]);
          if (sx < 1 || sy < 1 || sx > w - 2 || sy > h - 2) continue;
          cnt++;
          for (int c = 0; c < C; c++) {
            float bwv = sample(pb, h, w, C, c, sx, sy);
            float ix = 0.5f * ((pa[(i + 1) * C + c] - pa[(i - 1) * C + c]) * 0.5f +
                               (sample(pb, h, w, C, c, sx + 1, sy) - sample(pb, h, w, C, c, sx - 1, sy)) * 0.5f);
            float iy = 0.5f * ((pa[(i + w) * C + c] - pa[(i - w) * C + c]) * 0.5f +
                               (sample(pb, h, w, C, c, sx, sy + 1) - sample(pb, h, w, C, c, sx, sy - 1)) * 0.5f);
            float itv = bwv - pa[i * C + c];
            j11 += ix * ix;
            j12 += ix * iy;
            j22 += iy * iy;
            j13 += ix * itv;
            j23 += iy * itv;
          }
        }
      if (cnt == 0) break;
      double det = j11 * j22 - j12 * j12;
      double tr = j11 + j22;
      lam = 0.5 * (tr - sqrt(fmax(0, tr * tr - 4 * det))) / (double)cnt;
      if (det <= 1e-12 * (tr * tr + 1e-30) || det <= 0) break;
      double du = (-j22 * j13 + j12 * j23) / det, dv = (j12 * j13 - j11 * j23) / det;
      if (du > 2) du = 2;
      if (du < -2) du = -2;
      if (dv > 2) dv = 2;
      if (dv < -2) dv = -2;
      t[0] += du;
      t[1] += dv;
      if (fabs(du) < 1e-4 && fabs(dv) < 1e-4) break;
    }
  }
  *tx = t[0];
  *ty = t[1];
  if (strength) *strength = lam;
  flow_ws_free(own);
  return TB_OK;
}

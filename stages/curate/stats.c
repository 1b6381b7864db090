/* stages/curate/stats.c — see stats.h.
 *
 * Names written by clip_stats_video (T frames of H x W at the output size; native luma LH x LW):
 *   frames          T
 *   brightness      mean luma (0..255); contrast: its spatial standard deviation
 *   motion_mad      mean |I_t - I_{t-1}| of raw luma (the VBench-style flicker/motion number)
 *   motion_extent   max over t of mean |B_t - B_0|, B = 4x4 block means of gain-compensated luma:
 *                   how far the content ever gets from the first frame; ~0 for a static shot
 *   flow_mean, flow_median   block-matching optical flow (8x8 blocks, sub-pixel parabola fit) on
 *                   textured blocks of gain-compensated luma, pixels per frame
 *   motion_mag      = flow_mean
 *   flow_dir        direction of the mean flow of moving blocks (degrees; -1 when none move)
 *   flow_coherence  |mean v| / mean |v| over moving blocks (1 = everything moves one way)
 *   flicker         median |log g_t|, g_t the global brightness gain between consecutive frames,
 *                   estimated as the median per-pixel ratio (so moving parts do not count)
 *   flicker_max     max |log g_t|
 *   cut_hist        the colour-histogram L1 distance between consecutive gain-compensated
 *                   frames (0..1), at the change that most exceeds twice its neighbouring
 *                   changes (repeated pictures skipped); cut_block: the same for block means
 *   cut_pos         where the largest jump happens, as a fraction of the clip
 *   noise           noise sigma (0..255) from the median absolute response of a 3x3 Laplacian
 *                   difference kernel on native luma (robust to edges)
 *   edge_width      sqrt(sum g^2 / sum L^2) over strong edges of native luma (pixels): the
 *                   width of edges, larger when blurred
 *   sharpness       variance of the 4-neighbour Laplacian of native luma
 *   watermark       thin strokes (dark or light) that persist in >= 85% of frames while the
 *                   content moves (0 when < 1% of the pixels move), in excess in one corner
 *                   region (0.45 W x 0.35 H) over the rest of the frame, per pixel of height
 *                   (see wm_valleys); watermark_density: the same as a density;
 *                   watermark_edges: persistent-edge density excess (see wm_score)
 *   phash_00 … phash_15   perceptual hash of the content, 16 bits each (see clip_phash);
 *                   phash_ok: 1 when the frames have enough structure for it to mean anything
 */
#include "stages/curate/stats.h"

#include "common/log.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void clip_stats_set(clip_stats *s, const char *name, double v) {
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->name[i], name) == 0) {
      s->value[i] = v;
      return;
    }
  TB_CHECKF(s->n < CLIP_STATS_MAX, "too many statistics (%s)", name);
  snprintf(s->name[s->n], sizeof s->name[s->n], "%s", name);
  s->value[s->n++] = v;
}

double clip_stats_get(const clip_stats *s, const char *name, double dflt) {
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->name[i], name) == 0) return s->value[i];
  return dflt;
}

int clip_stats_has(const clip_stats *s, const char *name) {
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->name[i], name) == 0) return 1;
  return 0;
}

static int cmp_f(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* Median of n floats (sorts a copy in place: x is reordered). */
static float median_f(float *x, int n) {
  if (n <= 0) return 0.f;
  qsort(x, (size_t)n, sizeof *x, cmp_f);
  return (n & 1) ? x[n / 2] : 0.5f * (x[n / 2 - 1] + x[n / 2]);
}

/* ---- motion: block matching ----------------------------------------------------------- */

/* SAD of the BxB block at (bx, by) in a against the block displaced by (dx, dy) in b. */
static float block_sad(const float *a, const float *b, int W, int bx, int by, int dx, int dy,
                       int B) {
  float s = 0.f;
  for (int y = 0; y < B; y++) {
    const float *ra = a + (size_t)(by + y) * W + bx;
    const float *rb = b + (size_t)(by + y + dy) * W + bx + dx;
    for (int x = 0; x < B; x++) s += fabsf(ra[x] - rb[x]);
  }
  return s;
}

/* Sub-pixel offset of a parabola through (-1, l), (0, c), (1, r); 0 when flat. */
static float parabola(float l, float c, float r) {
  float den = l - 2.f * c + r;
  if (den <= 1e-6f) return 0.f;
  float o = 0.5f * (l - r) / den;
  return o < -0.5f ? -0.5f : (o > 0.5f ? 0.5f : o);
}

typedef struct {
  float *mag;  /* magnitudes of textured blocks over all pairs */
  int n, cap;
  double sx, sy;   /* sums of moving vectors (x right, y down) */
  double smag;     /* sum of magnitudes of moving vectors */
  int nmov;
} flow_acc;

static void flow_pair(const float *a, const float *b, int W, int H, flow_acc *acc) {
  const int B = 8;
  int R = W / 16 < 2 ? 2 : W / 16; /* search range: 4 px at 64 px, > fast motion of 1.6 px */
  int sw = 2 * R + 1;
  float *sad = xmalloc(sizeof(float) * sw * sw);
  for (int by = 0; by + B <= H; by += B)
    for (int bx = 0; bx + B <= W; bx += B) {
      /* Texture test: blocks without structure carry no motion information. */
      double m = 0, m2 = 0;
      for (int y = 0; y < B; y++)
        for (int x = 0; x < B; x++) {
          float v = a[(size_t)(by + y) * W + bx + x];
          m += v;
          m2 += v * v;
        }
      m /= B * B;
      double var = m2 / (B * B) - m * m;
      if (var < 16.0) continue; /* std < 4 levels */
      float best = INFINITY;
      int bdx = 0, bdy = 0;
      for (int dy = -R; dy <= R; dy++)
        for (int dx = -R; dx <= R; dx++) {
          float s = INFINITY;
          if (by + dy >= 0 && by + dy + B <= H && bx + dx >= 0 && bx + dx + B <= W)
            s = block_sad(a, b, W, bx, by, dx, dy, B);
          sad[(dy + R) * sw + dx + R] = s;
          /* Prefer the smaller displacement on ties (zero motion first). */
          if (s < best - 1e-3f || (fabsf(s - best) <= 1e-3f && abs(dx) + abs(dy) < abs(bdx) + abs(bdy))) {
            best = s;
            bdx = dx;
            bdy = dy;
          }
        }
      float fx = (float)bdx, fy = (float)bdy;
      int cx = bdx + R, cy = bdy + R;
      if (cx > 0 && cx < sw - 1 && isfinite(sad[cy * sw + cx - 1]) && isfinite(sad[cy * sw + cx + 1]))
        fx += parabola(sad[cy * sw + cx - 1], best, sad[cy * sw + cx + 1]);
      if (cy > 0 && cy < sw - 1 && isfinite(sad[(cy - 1) * sw + cx]) && isfinite(sad[(cy + 1) * sw + cx]))
        fy += parabola(sad[(cy - 1) * sw + cx], best, sad[(cy + 1) * sw + cx]);
      float mag = sqrtf(fx * fx + fy * fy);
      if (acc->n == acc->cap) {
        acc->cap = acc->cap ? acc->cap * 2 : 256;
        acc->mag = xrealloc(acc->mag, sizeof(float) * acc->cap);
      }
      acc->mag[acc->n++] = mag;
      if (mag > 0.2f) {
        acc->sx += fx;
        acc->sy += fy;
        acc->smag += mag;
        acc->nmov++;
      }
    }
  free(sad);
}

#define CUT_NEIGHBOUR_K 2.0 /* a cut's change exceeds twice its neighbours' (an 8 fps sample of
                               12 fps motion alternates steps of 1 and 2 source frames) */
#define CUT_REPEAT_BLOCK 0.5 /* levels: a mean block change below this is a repeated picture */
#define WM_MOVING_DEV 4.0   /* levels of mean absolute deviation from the temporal median */
#define WM_MOVING_FRAC 0.01 /* of the pixels (a still photograph: 0; a small object crossing
                               a still scene of the built-in world: 1-5%) */

/* ---- native luma: noise, edges, watermark --------------------------------------------- */

/* Noise sigma of one frame: median |N * I| / (0.6745 * 6), N = [1 -2 1; -2 4 -2; 1 -2 1]
 * (its response to white noise of sigma s has standard deviation 6 s). */
static double frame_noise(const uint8_t *L, int W, int H) {
  enum { NB = 4096 };
  static _Thread_local int hist[NB];
  memset(hist, 0, sizeof hist);
  int n = 0;
  for (int y = 1; y < H - 1; y++)
    for (int x = 1; x < W - 1; x++) {
      const uint8_t *p = L + (size_t)y * W + x;
      int c = p[-W - 1] - 2 * p[-W] + p[-W + 1] - 2 * p[-1] + 4 * p[0] - 2 * p[1] + p[W - 1] -
              2 * p[W] + p[W + 1];
      c = abs(c);
      hist[c < NB ? c : NB - 1]++;
      n++;
    }
  if (n == 0) return 0;
  int half = n / 2, acc = 0, med = 0;
  for (int i = 0; i < NB; i++) {
    acc += hist[i];
    if (acc > half) {
      med = i;
      break;
    }
  }
  return med / (0.6745 * 6.0);
}

/* Edge statistics of one frame: over the pixels whose gradient is at least half the frame's
 * 99.8th-percentile gradient (the strongest edges, whatever the contrast), accumulates sum g^2
 * and sum L^2; and the Laplacian's moments over all pixels. */
static void frame_edges(const uint8_t *L, int W, int H, double *sg2, double *sl2, double *lsum,
                        double *lsum2, int64_t *ln) {
  enum { NB = 1024 }; /* gradient histogram, 0.25-level bins up to 256 */
  static _Thread_local int hist[NB];
  memset(hist, 0, sizeof hist);
  int n = 0;
  for (int y = 1; y < H - 1; y++)
    for (int x = 1; x < W - 1; x++) {
      const uint8_t *p = L + (size_t)y * W + x;
      double gx = 0.5 * (p[1] - p[-1]), gy = 0.5 * (p[W] - p[-W]);
      double lap = (double)p[1] + p[-1] + p[W] + p[-W] - 4.0 * p[0];
      *lsum += lap;
      *lsum2 += lap * lap;
      (*ln)++;
      int b = (int)(sqrt(gx * gx + gy * gy) * 4.0);
      hist[b < NB ? b : NB - 1]++;
      n++;
    }
  if (n == 0) return;
  int want = n - n / 500, acc = 0, b99 = 0; /* 99.8th percentile: a small object's rim */
  for (int i = 0; i < NB; i++) {
    acc += hist[i];
    if (acc >= want) {
      b99 = i;
      break;
    }
  }
  double ghi = b99 / 4.0;
  if (ghi < 4.0) return; /* no edges worth the name */
  double thr2 = 0.25 * ghi * ghi;
  for (int y = 1; y < H - 1; y++)
    for (int x = 1; x < W - 1; x++) {
      const uint8_t *p = L + (size_t)y * W + x;
      double gx = 0.5 * (p[1] - p[-1]), gy = 0.5 * (p[W] - p[-W]);
      double g2 = gx * gx + gy * gy;
      if (g2 >= thr2) {
        double lap = (double)p[1] + p[-1] + p[W] + p[-W] - 4.0 * p[0];
        *sg2 += g2;
        *sl2 += lap * lap;
      }
    }
}

/* Watermark score on the temporal median M (LW x LH) and temporal mean absolute deviation D of
 * the native luma: for each corner region (0.3 W x 0.3 H) the density of persistent edges
 * (|grad M| > 12 where the content is stable, D < 6) minus the density of such edges in the
 * band next to it; the score is the largest corner's excess. A semi-transparent mark with
 * strokes leaves dense fixed edges in one corner that the rest of the frame lacks. */
static double wm_score(const float *M, const float *D, int W, int H, double *wm_corner) {
  int cw = (int)(0.3 * W), ch = (int)(0.3 * H);
  if (cw < 4 || ch < 4) return 0;
  double best = 0;
  int bestc = -1;
  for (int c = 0; c < 4; c++) {
    int x0 = (c & 1) ? W - cw : 0, y0 = (c & 2) ? H - ch : 0;
    int in = 0, inn = 0, out = 0, outn = 0;
    for (int y = 1; y < H - 1; y++)
      for (int x = 1; x < W - 1; x++) {
        int inside = x >= x0 && x < x0 + cw && y >= y0 && y < y0 + ch;
        /* The comparison band: the same rows, the next 0.3 W columns towards the centre. */
        int band = !inside && y >= y0 && y < y0 + ch &&
                   ((c & 1) ? (x >= x0 - cw && x < x0) : (x >= x0 + cw && x < x0 + 2 * cw));
        if (!inside && !band) continue;
        size_t i = (size_t)y * W + x;
        float gx = 0.5f * (M[i + 1] - M[i - 1]), gy = 0.5f * (M[i + W] - M[i - W]);
        int e = (gx * gx + gy * gy > 144.f) && D[i] < 6.f;
        if (inside) {
          in += e;
          inn++;
        } else {
          out += e;
          outn++;
        }
      }
    double s = (inn ? (double)in / inn : 0) - (outn ? (double)out / outn : 0);
    if (s > best) {
      best = s;
      bestc = c;
    }
  }
  *wm_corner = bestc;
  return best;
}

/* Thin dark strokes: a pixel darker by more than `t` than both neighbours at distance 1 or 2
 * along x or along y (a valley 1-2 pixels wide). Text-like marks are made of such strokes;
 * anti-aliased shapes, flat backgrounds and checkerboards have none. */
static int is_valley(const float *M, int W, int H, int x, int y, float t);

/* A thin stroke of either polarity: a dark valley, or a light ridge (a valley of the inverted
 * picture). White semi-transparent text, the commonest real watermark, is made of ridges. */
static int is_stroke(const float *M, const float *Minv, int W, int H, int x, int y, float t) {
  return is_valley(M, W, H, x, y, t) || is_valley(Minv, W, H, x, y, t);
}

static int is_valley(const float *M, int W, int H, int x, int y, float t) {
  float c = M[(size_t)y * W + x];
  for (int d = 1; d <= 2; d++) {
    if (x - d >= 0 && x + d < W) {
      float a = M[(size_t)y * W + x - d], b = M[(size_t)y * W + x + d];
      float in = d == 2 ? fmaxf(c, fmaxf(M[(size_t)y * W + x - 1], M[(size_t)y * W + x + 1])) : c;
      if (d == 2) in = fminf(in, fmaxf(c, M[(size_t)y * W + x + 1]));
      if (fminf(a, b) - in > t) return 1;
    }
    if (y - d >= 0 && y + d < H) {
      float a = M[(size_t)(y - d) * W + x], b = M[(size_t)(y + d) * W + x];
      float in = d == 2 ? fminf(fmaxf(c, M[(size_t)(y - 1) * W + x]), fmaxf(c, M[(size_t)(y + 1) * W + x])) : c;
      if (fminf(a, b) - in > t) return 1;
    }
  }
  return 0;
}

/* Density of persistent stroke pixels (P: 1 where a pixel is a stroke in >= 85% of the frames,
 * so moving content does not count) in the most marked corner region (0.45 W x 0.35 H) minus
 * their density in the rest of the frame. */
static double wm_valleys(const uint8_t *P, int W, int H, double *corner_out, double *density_out) {
  int cw = (int)(0.45 * W), ch = (int)(0.35 * H);
  double best = 0;
  int bestc = -1;
  int64_t tot = 0, totn = 0;
  int cnt[4] = {0}, cntn[4] = {0};
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int v = P[(size_t)y * W + x];
      int c = -1;
      if (y < ch && x < cw) c = 0;
      else if (y < ch && x >= W - cw) c = 1;
      else if (y >= H - ch && x < cw) c = 2;
      else if (y >= H - ch && x >= W - cw) c = 3;
      if (c >= 0) {
        cnt[c] += v;
        cntn[c]++;
      } else {
        tot += v;
        totn++;
      }
    }
  double rest = totn ? (double)tot / totn : 0;
  double bestd = 0;
  for (int c = 0; c < 4; c++) {
    double d = cntn[c] ? (double)cnt[c] / cntn[c] - rest : 0;
    /* Excess stroke pixels per pixel of frame height: strokes are thin lines whose length grows
     * with the picture, so this does not shrink on large frames as a density would. */
    double e = (cnt[c] - rest * cntn[c]) / H;
    if (d > bestd) bestd = d;
    if (e > best) {
      best = e;
      bestc = c;
    }
  }
  *corner_out = bestc;
  *density_out = bestd;
  return best;
}

/* Perceptual hash: 4 frames spread over the first min(T, 16) (the clip's window), each as a
 * 9 x 8 grid of block means of the full-frame luma, one bit per horizontal neighbour pair
 * (1 when the right block is brighter): 4 x 64 bits. Block means over the whole frame do not
 * depend on the resolution or the encoder, so a re-encode or resize of a clip lands within a
 * few bits of it; unrelated clips differ in about half. */
static void clip_phash(const uint8_t *luma, int LW, int LH, int T, clip_stats *out) {
  int Tc = T < 16 ? T : 16;
  uint16_t chunk[PHASH_CHUNKS] = {0};
  double s = 0, s2 = 0;
  for (int q = 0; q < 4; q++) {
    int t = q * Tc / 4;
    const uint8_t *L = luma + (size_t)t * LW * LH;
    double g[8][9];
    for (int j = 0; j < 8; j++)
      for (int i = 0; i < 9; i++) {
        int x0 = i * LW / 9, x1 = (i + 1) * LW / 9, y0 = j * LH / 8, y1 = (j + 1) * LH / 8;
        double acc = 0;
        for (int y = y0; y < y1; y++)
          for (int x = x0; x < x1; x++) acc += L[(size_t)y * LW + x];
        int area = (x1 - x0) * (y1 - y0);
        g[j][i] = area > 0 ? acc / area : 0;
        s += g[j][i];
        s2 += g[j][i] * g[j][i];
      }
    for (int j = 0; j < 8; j++)
      for (int i = 0; i < 8; i++) {
        int bit = q * 64 + j * 8 + i;
        if (g[j][i + 1] > g[j][i]) chunk[bit / 16] |= (uint16_t)(1u << (bit % 16));
      }
  }
  double m = s / (4 * 72), sd = sqrt(fmax(0, s2 / (4 * 72) - m * m));
  for (int c = 0; c < PHASH_CHUNKS; c++) {
    char nm[16];
    snprintf(nm, sizeof nm, "phash_%02d", c);
    clip_stats_set(out, nm, chunk[c]);
  }
  /* Flat frames (a plain colour, fades) have no structure to hash: such clips are compared by
   * their checksum only. */
  clip_stats_set(out, "phash_ok", sd >= 3.0 && LW >= 9 && LH >= 8);
}

void clip_stats_video(const video_frames *f, clip_stats *out) {
  const int T = f->n, W = f->w, H = f->h, N = W * H;
  clip_stats_set(out, "frames", T);
  if (T < 1) return;
  float *Y = xmalloc(sizeof(float) * (size_t)T * N);
  for (int64_t i = 0; i < (int64_t)T * N; i++) {
    const uint8_t *p = f->rgb + i * 3;
    Y[i] = (77.f * p[0] + 150.f * p[1] + 29.f * p[2]) / 256.f;
  }
  double bsum = 0, bsum2 = 0;
  for (int64_t i = 0; i < (int64_t)T * N; i++) {
    bsum += Y[i];
    bsum2 += (double)Y[i] * Y[i];
  }
  double bmean = bsum / ((double)T * N);
  clip_stats_set(out, "brightness", bmean);
  clip_stats_set(out, "contrast", sqrt(fmax(0, bsum2 / ((double)T * N) - bmean * bmean)));

  /* Gains between consecutive frames and the compensated frames C_t = Y_t / G_t. */
  float *ratio = xmalloc(sizeof(float) * N);
  double *G = xmalloc(sizeof(double) * T);
  double flick = 0, flick_max = 0, mad = 0;
  float *lgs = xmalloc(sizeof(float) * (T > 1 ? T : 1));
  G[0] = 1.0;
  for (int t = 1; t < T; t++) {
    const float *a = Y + (size_t)(t - 1) * N, *b = Y + (size_t)t * N;
    int n = 0;
    double sa = 0, sb = 0;
    for (int i = 0; i < N; i++) {
      mad += fabsf(b[i] - a[i]);
      sa += a[i];
      sb += b[i];
      if (a[i] > 20.f && b[i] > 20.f) ratio[n++] = b[i] / a[i];
    }
    double g = n >= N / 20 ? median_f(ratio, n) : (sb + 1.0) / (sa + 1.0);
    double lg = fabs(log(g));
    lgs[t - 1] = (float)lg;
    flick += lg;
    if (lg > flick_max) flick_max = lg;
    G[t] = G[t - 1] * g;
  }
  clip_stats_set(out, "motion_mad", T > 1 ? mad / ((double)(T - 1) * N) : 0);
  /* The median ignores the one jump a shot cut makes. */
  clip_stats_set(out, "flicker", T > 1 ? median_f(lgs, T - 1) : 0);
  clip_stats_set(out, "flicker_mean", T > 1 ? flick / (T - 1) : 0);
  free(lgs);
  clip_stats_set(out, "flicker_max", flick_max);
  float *C = xmalloc(sizeof(float) * (size_t)T * N);
  for (int t = 0; t < T; t++)
    for (int i = 0; i < N; i++) C[(size_t)t * N + i] = (float)(Y[(size_t)t * N + i] / G[t]);

  /* 4x4 block means of the compensated frames. */
  const int BW = W / 4, BH = H / 4, NB = BW * BH;
  float *Bm = xcalloc((size_t)T * (NB > 0 ? NB : 1), sizeof(float));
  for (int t = 0; t < T && NB > 0; t++)
    for (int y = 0; y < BH * 4; y++)
      for (int x = 0; x < BW * 4; x++)
        Bm[(size_t)t * NB + (y / 4) * BW + x / 4] += C[(size_t)t * N + y * W + x] / 16.f;
  double extent = 0;
  float *dblk = xmalloc(sizeof(float) * (T > 1 ? T : 1));
  for (int t = 1; t < T && NB > 0; t++) {
    double e = 0, d = 0;
    for (int k = 0; k < NB; k++) {
      e += fabsf(Bm[(size_t)t * NB + k] - Bm[k]);
      d += fabsf(Bm[(size_t)t * NB + k] - Bm[(size_t)(t - 1) * NB + k]);
    }
    e /= NB;
    if (e > extent) extent = e;
    dblk[t - 1] = (float)(d / NB);
  }
  clip_stats_set(out, "motion_extent", extent);

  /* static_score: for pairs k = 4 frames apart, the largest change of a 4x4 block mean in any
   * colour channel (gain-compensated), then the median over pairs. A still shot stays near the
   * compression noise; anything that moves a visible edge by a pixel or two over half a second
   * changes some block strongly; the median ignores a shot cut. */
  {
    int k = T > 4 ? 4 : T - 1;
    int np = T - k;
    float *mx = xmalloc(sizeof(float) * (np > 0 ? np : 1));
    float *cb = xcalloc((size_t)2 * 3 * (NB > 0 ? NB : 1), sizeof(float));
    for (int t = k; t < T && NB > 0; t++) {
      float m = 0;
      for (int pass = 0; pass < 2; pass++) {
        int tt = pass ? t - k : t;
        float *dst = cb + (size_t)pass * 3 * NB;
        memset(dst, 0, sizeof(float) * 3 * NB);
        const uint8_t *px = f->rgb + (size_t)tt * N * 3;
        float inv = (float)(1.0 / G[tt]) / 16.f;
        for (int y = 0; y < BH * 4; y++)
          for (int x = 0; x < BW * 4; x++)
            for (int c = 0; c < 3; c++) dst[c * NB + (y / 4) * BW + x / 4] += px[(y * W + x) * 3 + c] * inv;
      }
      for (int i = 0; i < 3 * NB; i++) m = fmaxf(m, fabsf(cb[i] - cb[3 * NB + i]));
      mx[t - k] = m;
    }
    clip_stats_set(out, "static_score", np > 0 && NB > 0 ? median_f(mx, np) : 0);
    free(mx);
    free(cb);
  }

  /* Flow. */
  flow_acc acc;
  memset(&acc, 0, sizeof acc);
  for (int t = 1; t < T; t++) flow_pair(C + (size_t)(t - 1) * N, C + (size_t)t * N, W, H, &acc);
  double fmean = 0;
  for (int i = 0; i < acc.n; i++) fmean += acc.mag[i];
  fmean = acc.n ? fmean / acc.n : 0;
  clip_stats_set(out, "flow_mean", fmean);
  clip_stats_set(out, "motion_mag", fmean);
  clip_stats_set(out, "flow_median", median_f(acc.mag, acc.n));
  if (acc.nmov > 0) {
    double ang = atan2(-acc.sy, acc.sx) * 180.0 / M_PI;
    if (ang < 0) ang += 360.0;
    clip_stats_set(out, "flow_dir", ang);
    clip_stats_set(out, "flow_coherence", sqrt(acc.sx * acc.sx + acc.sy * acc.sy) / acc.smag);
  } else {
    clip_stats_set(out, "flow_dir", -1);
    clip_stats_set(out, "flow_coherence", 0);
  }
  free(acc.mag);

  /* Shot cuts: histogram distance of compensated colours between consecutive frames. */
  float *dh = xmalloc(sizeof(float) * (T > 1 ? T : 1));
  int *h0 = xcalloc(64, sizeof(int)), *h1 = xcalloc(64, sizeof(int));
  for (int t = 0; t < T; t++) {
    memset(h1, 0, 64 * sizeof(int));
    const uint8_t *p = f->rgb + (size_t)t * N * 3;
    for (int i = 0; i < N; i++) {
      int bin = 0;
      for (int c = 0; c < 3; c++) {
        double v = p[i * 3 + c] / G[t];
        int q = (int)(v / 64.0);
        bin = bin * 4 + (q > 3 ? 3 : q);
      }
      h1[bin]++;
    }
    if (t > 0) {
      int d = 0;
      for (int k = 0; k < 64; k++) d += abs(h1[k] - h0[k]);
      dh[t - 1] = (float)d / (2.f * N);
    }
    int *tmp = h0;
    h0 = h1;
    h1 = tmp;
  }
  if (T > 2) {
    int arg = 0;
    float mx = 0, mxb = 0;
    for (int t = 0; t < T - 1; t++) {
      if (dh[t] > mx) {
        mx = dh[t];
        arg = t;
      }
      if (dblk[t] > mxb) mxb = dblk[t];
    }
    (void)mx;
    (void)mxb;
    /* A cut is one change that stands out from the changes around it. Only real changes count
     * (pairs where some block moved: a 1 fps source resampled to 8 fps repeats each picture
     * and then jumps, every jump alike), and each is compared with the larger of its
     * neighbouring changes, not with the clip's median: a fast camera swing rises and falls
     * over several frames, a cut jumps once. */
    int *chg = xmalloc(sizeof(int) * (size_t)(T - 1));
    int nc = 0;
    for (int t = 0; t < T - 1; t++)
      if (dblk[t] > CUT_REPEAT_BLOCK) chg[nc++] = t;
    float bh = 0, bb = 0;
    for (int k = 0; k < nc; k++) {
      float nh = -1, nbk = -1;
      if (k > 0) {
        nh = fmaxf(nh, dh[chg[k - 1]]);
        nbk = fmaxf(nbk, dblk[chg[k - 1]]);
      }
      if (k + 1 < nc) {
        nh = fmaxf(nh, dh[chg[k + 1]]);
        nbk = fmaxf(nbk, dblk[chg[k + 1]]);
      }
      if (nh < 0) nh = nbk = 0; /* the only change in a still clip: compared with stillness */
      float sh = dh[chg[k]] - CUT_NEIGHBOUR_K * nh, sb = dblk[chg[k]] - CUT_NEIGHBOUR_K * nbk;
      if (sh > bh) {
        bh = sh;
        arg = chg[k];
      }
      if (sb > bb) bb = sb;
    }
    free(chg);
    clip_stats_set(out, "cut_hist", bh);
    clip_stats_set(out, "cut_block", bb);
    clip_stats_set(out, "cut_pos", (arg + 1.0) / T);
  } else {
    clip_stats_set(out, "cut_hist", 0);
    clip_stats_set(out, "cut_block", 0);
    clip_stats_set(out, "cut_pos", 0);
  }
  free(h0);
  free(h1);
  free(dh);
  free(dblk);
  free(Bm);
  free(C);
  double *Gk = G; /* gains, used again for the native-resolution static test */
  free(ratio);
  free(Y);

  /* Native-resolution luma: noise, edges, watermark. */
  if (f->luma && f->lw >= 8 && f->lh >= 8) {
    const int LW = f->lw, LH = f->lh, LN = LW * LH;
    double noise = 0;
    for (int t = 0; t < T; t++) noise += frame_noise(f->luma + (size_t)t * LN, LW, LH);
    noise /= T;
    clip_stats_set(out, "noise", noise);
    double sg2 = 0, sl2 = 0, ls = 0, ls2 = 0;
    int64_t ln = 0;
    for (int t = 0; t < T; t++)
      frame_edges(f->luma + (size_t)t * LN, LW, LH, &sg2, &sl2, &ls, &ls2, &ln);
    /* No frame with a clear edge at all: as blurred as it gets (reported as 10 pixels). */
    clip_stats_set(out, "edge_width", sl2 > 0 ? sqrt(sg2 / sl2) : 10.0);
    double lm = ln ? ls / ln : 0;
    clip_stats_set(out, "sharpness", ln ? ls2 / ln - lm * lm : 0);
    clip_phash(f->luma, LW, LH, T, out);
    /* Temporal median and mean absolute deviation per pixel. */
    float *M = xmalloc(sizeof(float) * LN), *D = xmalloc(sizeof(float) * LN);
    float *col = xmalloc(sizeof(float) * T);
    for (int i = 0; i < LN; i++) {
      for (int t = 0; t < T; t++) col[t] = f->luma[(size_t)t * LN + i];
      float med = median_f(col, T);
      double dev = 0;
      for (int t = 0; t < T; t++) dev += fabsf(col[t] - med);
      M[i] = med;
      D[i] = (float)(dev / T);
    }
    /* The static test again on the full native frame (what the centre crop cut off moves too). */
    {
      int k = T > 4 ? 4 : T - 1, np = T - k;
      int bw = LW / 4, bh = LH / 4, nb = bw * bh;
      float *mx = xmalloc(sizeof(float) * (np > 0 ? np : 1));
      float *b0 = xcalloc((size_t)(nb > 0 ? nb : 1), sizeof(float)), *b1 = xcalloc((size_t)(nb > 0 ? nb : 1), sizeof(float));
      for (int t = k; t < T && nb > 0; t++) {
        memset(b0, 0, sizeof(float) * nb);
        memset(b1, 0, sizeof(float) * nb);
        const uint8_t *L0 = f->luma + (size_t)t * LN, *L1 = f->luma + (size_t)(t - k) * LN;
        float i0 = (float)(1.0 / Gk[t]) / 16.f, i1 = (float)(1.0 / Gk[t - k]) / 16.f;
        for (int y = 0; y < bh * 4; y++)
          for (int x = 0; x < bw * 4; x++) {
            b0[(y / 4) * bw + x / 4] += L0[(size_t)y * LW + x] * i0;
            b1[(y / 4) * bw + x / 4] += L1[(size_t)y * LW + x] * i1;
          }
        float m = 0;
        for (int i = 0; i < nb; i++) m = fmaxf(m, fabsf(b0[i] - b1[i]));
        mx[t - k] = m;
      }
      clip_stats_set(out, "static_score_full", np > 0 && nb > 0 ? median_f(mx, np) : 0);
      free(mx);
      free(b0);
      free(b1);
    }
    double corner = -1;
    clip_stats_set(out, "watermark_edges", wm_score(M, D, LW, LH, &corner));
    {
      uint16_t *cnt = xcalloc((size_t)LN, sizeof(uint16_t));
      float *fb = xmalloc(sizeof(float) * LN), *fi = xmalloc(sizeof(float) * LN);
      for (int t = 0; t < T; t++) {
        const uint8_t *L = f->luma + (size_t)t * LN;
        for (int i = 0; i < LN; i++) {
          fb[i] = L[i];
          fi[i] = 255.f - L[i];
        }
        for (int y = 0; y < LH; y++)
          for (int x = 0; x < LW; x++) cnt[(size_t)y * LW + x] += (uint16_t)is_stroke(fb, fi, LW, LH, x, y, 12.f);
      }
      uint8_t *P = xmalloc((size_t)LN);
      for (int i = 0; i < LN; i++) P[i] = cnt[i] * 20 >= 17 * T; /* in >= 85% of the frames */
      /* An overlay is what stays while the content moves: in a clip where nothing moves every
       * stroke persists, and a corner full of dark branches would read as a mark. Such a clip
       * gives no evidence either way (0). Moving: mean deviation from the temporal median above
       * WM_MOVING_DEV levels on at least WM_MOVING_FRAC of the pixels. */
      int64_t moving = 0;
      for (int i = 0; i < LN; i++) moving += D[i] > WM_MOVING_DEV;
      double dens = 0, wmv = wm_valleys(P, LW, LH, &corner, &dens);
      double mfrac = (double)moving / LN;
      clip_stats_set(out, "watermark_moving", mfrac);
      if (mfrac < WM_MOVING_FRAC) {
        wmv = 0;
        dens = 0;
        corner = -1;
      }
      free(fi);
      clip_stats_set(out, "watermark", wmv);
      clip_stats_set(out, "watermark_density", dens);
      free(P);
      free(fb);
      free(cnt);
    }
    clip_stats_set(out, "watermark_corner", corner);
    free(col);
    free(M);
    free(D);
  }
  free(Gk);
}

/* ---- captions -------------------------------------------------------------------------- */

/* Words that describe movement (verbs and directions of travel), in English. */
static const char *k_motion_words[] = {
    "move", "moves", "moving", "moved", "glide", "glides", "gliding", "slide", "slides",
    "sliding", "drift", "drifts", "drifting", "travel", "travels", "travelling", "traveling",
    "run", "runs", "running", "walk", "walks", "walking", "fly", "flies", "flying", "float",
    "floats", "floating", "roll", "rolls", "rolling", "rush", "rushes", "rushing", "race",
    "races", "racing", "zoom", "zooms", "pan", "pans", "panning", "heads", "heading", "rises",
    "rising", "falls", "falling", "sinks", "sinking", "climbs", "climbing", "descends",
    "descending", "crosses", "crossing", "swims", "swimming", "jumps", "jumping", "spins",
    "spinning", "shifts", "shifting", "creeps", "creeping", "speeds", "dashes", "dashing",
    "darts", "darting", "sweeps", "sweeping", "leftward", "rightward", "upward", "downward",
    "leftwards", "rightwards", "upwards", "downwards", "quickly", "slowly", "fast", NULL};
static const char *k_still_words[] = {"still", "static", "motionless", "stationary",
                                      "unmoving", "idle", "rests", "resting", NULL};

static int word_in(const char *w, const char **list) {
  for (int i = 0; list[i]; i++)
    if (strcmp(w, list[i]) == 0) return 1;
  return 0;
}

void clip_stats_caption(const char *caption, clip_stats *out) {
  int words = 0, distinct = 0, motion = 0, still = 0, pan = 0, after_pan = 0;
  unsigned dirs = 0, pan_dirs = 0; /* bit 0 left, 1 right, 2 up, 3 down */
  char seen[128][24], prev[2][24];
  int nseen = 0, nprev = 0;
  const char *p = caption ? caption : "";
  clip_stats_set(out, "caption_chars", (double)strlen(p));
  while (*p) {
    while (*p && !isalnum((unsigned char)*p) && !((unsigned char)*p & 0x80)) p++;
    if (!*p) break;
    char w[24];
    int n = 0;
    while (*p && (isalnum((unsigned char)*p) || ((unsigned char)*p & 0x80) || *p == '\'')) {
      if (n < 23) w[n++] = (char)tolower((unsigned char)*p);
      p++;
    }
    w[n] = 0;
    words++;
    int dup = 0;
    for (int i = 0; i < nseen; i++)
      if (strcmp(seen[i], w) == 0) dup = 1;
    if (!dup) {
      distinct++;
      if (nseen < 128) memcpy(seen[nseen++], w, sizeof w);
    }
    /* "does not move", "never moves", "no motion": a negated motion word describes stillness. */
    int negated = 0;
    for (int b = 1; b <= 2 && b <= nprev; b++) {
      const char *pw = prev[(nprev - b) % 2];
      if (!strcmp(pw, "not") || !strcmp(pw, "never") || !strcmp(pw, "no") ||
          !strcmp(pw, "doesn't") || !strcmp(pw, "don't") || !strcmp(pw, "without"))
        negated = 1;
    }
    if (word_in(w, k_motion_words)) {
      if (negated) still = 1;
      else motion = 1;
    }
    if (word_in(w, k_still_words)) still = 1;
    int is_pan = !strcmp(w, "pan") || !strcmp(w, "pans") || !strcmp(w, "panning");
    if (is_pan || !strcmp(w, "camera")) pan = 1;
    unsigned d = 0;
    if (!strncmp(w, "left", 4) || !strcmp(w, "westward")) d = 1;
    else if (!strncmp(w, "right", 5) || !strcmp(w, "eastward")) d = 2;
    else if (!strncmp(w, "up", 2) && (w[2] == 0 || !strncmp(w + 2, "ward", 4))) d = 4;
    else if (!strncmp(w, "down", 4) || !strcmp(w, "bottom")) d = 8;
    else if (!strcmp(w, "top")) d = 4;
    /* A direction within five words after "pan" is the camera's; others describe objects. */
    if (is_pan) after_pan = 6;
    if (d) {
      if (after_pan > 0) pan_dirs |= d;
      else dirs |= d;
    }
    if (after_pan > 0) after_pan--;
    memcpy(prev[nprev % 2], w, sizeof w);
    nprev++;
  }
  clip_stats_set(out, "caption_words", words);
  clip_stats_set(out, "caption_distinct", distinct);
  clip_stats_set(out, "caption_motion", motion);
  clip_stats_set(out, "caption_still", still);
  clip_stats_set(out, "caption_pan", pan);
  /* The caption says something moves the way the camera pans: on screen it may stand still. */
  clip_stats_set(out, "caption_pan_follow", (dirs & pan_dirs) ? 1 : 0);
}

/* kernels/world/reader.c — the world's pixel reader. The steps are those of reader.h; each
 * threshold has its reason beside it. */
#include "kernels/world/reader.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/vision/flow.h"

#define NCOL SCENE_COLOUR_COUNT
#define MAX_TRACKS 64
#define STILL_WPS 0.02        /* below: still (slow is 0.064 W/s, 3x more) */
#define SPEED_SPLIT_WPS 0.12  /* slow/fast split, between 0.064 and 0.2 (zoomed 0.08 / 0.25) */
#define SIZE_SPLIT 0.13       /* radius split (fraction of W), between 0.09 and 0.17 */
#define PAN_WPS SCENE_WPS_SLOW


static void set_st(world_attr_status *st, world_status s, const char *fmt, ...) {
  st->status = s;
  st->reason[0] = 0;
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->reason, sizeof st->reason, fmt, ap);
    va_end(ap);
  }
}

void world_read_opts_default(world_read_opts *o) {
  o->noise_smooth = -1;
  o->min_area_frac = 0.25;
  o->max_drift = 45;
}

/* ---- colour model ------------------------------------------------------------------------- */

static float PAL[NCOL][3];
static float BGC[SCENE_BG_COUNT][3];
static void palette_init(void) {
  /* Idempotent constant tables: every thread writes the same values. */
  for (int c = 0; c < NCOL; c++) {
    uint8_t v[3];
    scene_colour_rgb((scene_colour)c, v);
    for (int k = 0; k < 3; k++) PAL[c][k] = v[k];
  }
  for (int b = 0; b < SCENE_BG_COUNT; b++) {
    uint8_t v[3];
    scene_bg_rgb((scene_bg)b, v);
    for (int k = 0; k < 3; k++) BGC[b][k] = v[k];
  }
}

/* Best palette colour of drift-corrected pixel q over background colour bg as the blend
 * q = bg + α (c − bg): returns the colour (or −1 when α < ½ for all), *alpha and the squared
 * residual. α may exceed 1 up to 1.5 (brightness flicker on dark backgrounds scales the
 * object's difference from the background). */
static int blend_fit(const float *q, const float *bg, float *alpha, float *res) {
  int best = -1;
  float br = 1e30f, ba = 0;
  float d0 = q[0] - bg[0], d1 = q[1] - bg[1], d2 = q[2] - bg[2];
  for (int c = 0; c < NCOL; c++) {
    float v0 = PAL[c][0] - bg[0], v1 = PAL[c][1] - bg[1], v2 = PAL[c][2] - bg[2];
    float vv = v0 * v0 + v1 * v1 + v2 * v2;
    if (vv < 400) continue; /* colour within 20 levels of the background: invisible on it */
    float a = (d0 * v0 + d1 * v1 + d2 * v2) / vv;
    if (a < 0.5f) continue;
    if (a > 1.5f) a = 1.5f;
    float e0 = d0 - a * v0, e1 = d1 - a * v1, e2 = d2 - a * v2;
    float r = e0 * e0 + e1 * e1 + e2 * e2;
    if (r < br) {
      br = r;
      best = c;
      ba = a;
    }
  }
  *alpha = ba;
  *res = br;
  return best;
}

/* Immerkær's fast noise estimate (levels) on the luma of frame (H, W, 3) in levels. */
static double noise_sigma(const float *f, int H, int W) {
  if (H < 3 || W < 3) return 0;
  double s = 0;
  for (int y = 1; y < H - 1; y++)
    for (int x = 1; x < W - 1; x++) {
      double acc = 0;
      static const int K[3][3] = {{1, -2, 1}, {-2, 4, -2}, {1, -2, 1}};
      for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
          const float *p = f + ((size_t)(y + dy) * W + (x + dx)) * 3;
          acc += K[dy + 1][dx + 1] * (0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]);
        }
      s += fabs(acc);
    }
  return s * sqrt(M_PI / 2) / (6.0 * (W - 2) * (H - 2));
}

/* Dominant colours of a frame: histogram of 16 levels per channel. m1 = the mean of the pixels
 * near the fullest bin; m2 = the same for the fullest bin at least 2 bins away (L∞). Fractions of
 * pixels near each into f1, f2. */
static void dominant(const float *f, int n, float m1[3], float *f1, float m2[3], float *f2) {
  static _Thread_local int hist[4096];
  memset(hist, 0, sizeof hist);
  for (int i = 0; i < n; i++) {
    int r = (int)f[3 * i] >> 4, g = (int)f[3 * i + 1] >> 4, b = (int)f[3 * i + 2] >> 4;
    hist[(r << 8) | (g << 4) | b]++;
  }
  int b1 = 0;
  for (int k = 1; k < 4096; k++)
    if (hist[k] > hist[b1]) b1 = k;
  int b2 = -1;
  for (int k = 0; k < 4096; k++) {
    int dr = abs((k >> 8) - (b1 >> 8)), dg = abs(((k >> 4) & 15) - ((b1 >> 4) & 15)),
        db = abs((k & 15) - (b1 & 15));
    int d = dr > dg ? dr : dg;
    d = d > db ? d : db;
    if (d < 2) continue;
    if (b2 < 0 || hist[k] > hist[b2]) b2 = k;
  }
  int bins[2] = {b1, b2};
  float *ms[2] = {m1, m2};
  float *fs[2] = {f1, f2};
  for (int j = 0; j < 2; j++) {
    if (bins[j] < 0) {
      ms[j][0] = ms[j][1] = ms[j][2] = 0;
      *fs[j] = 0;
      continue;
    }
    float c[3] = {(float)((bins[j] >> 8) * 16 + 8), (float)(((bins[j] >> 4) & 15) * 16 + 8),
                  (float)((bins[j] & 15) * 16 + 8)};
    for (int it = 0; it < 2; it++) {
      double s[3] = {0, 0, 0};
      int cnt = 0;
      for (int i = 0; i < n; i++) {
        const float *p = f + 3 * i;
        if (fabsf(p[0] - c[0]) <= 16 && fabsf(p[1] - c[1]) <= 16 && fabsf(p[2] - c[2]) <= 16) {
          s[0] += p[0];
          s[1] += p[1];
          s[2] += p[2];
          cnt++;
        }
      }
      if (cnt) for (int k = 0; k < 3; k++) c[k] = (float)(s[k] / cnt);
      *fs[j] = (float)cnt / (float)n;
    }
    memcpy(ms[j], c, sizeof c);
  }
}

/* ---- the read ------------------------------------------------------------------------------ */

typedef struct {
  int colour;
  int frame;
  int n;                 /* labelled pixels */
  double sx, sy;         /* sums of unwrapped coordinates */
  int x0, y0, x1, y1;    /* unwrapped bbox (x1, y1 inclusive) */
  int shx, shy;          /* unwrap: pixels with x < shx get +W (shx = 0: none), same for y */
  int whole;
  int touch;             /* edges touched: 1 left, 2 right, 4 top, 8 bottom */
} comp;

typedef struct {
  int colour;
  int n_seen;
  int first, last;
  double ux, uy;         /* last unwrapped centroid */
  int *ci;               /* (F) component index per frame, −1 */
  double *cx, *cy;       /* (F) unwrapped centroid */
} track;

typedef struct {
  int F, H, W;
  double fps;
  float *fr;             /* (F, H, W, 3) levels */
  float drift[3];
  int bg, checkered;
  float bgobs[3];
  int *lab;              /* (F, H, W): colour + 1, 0 none */
  int *cid;              /* (F, H, W): component index or −1 */
  comp *cs;
  int ncs, ccap;
  track tr[MAX_TRACKS];
  int ntr;
} rd;

static int uf_find(int *p, int i) {
  while (p[i] != i) {
    p[i] = p[p[i]];
    i = p[i];
  }
  return i;
}
static void uf_union(int *p, int a, int b) {
  a = uf_find(p, a);
  b = uf_find(p, b);
  if (a != b) p[a < b ? b : a] = a < b ? a : b;
}

/* Largest circular gap of empty entries in occ[0..n): returns the index just after the gap (the
 * start of the occupied arc) or 0 when nothing is empty. */
static int arc_start(const uint8_t *occ, int n) {
  int best = 0, bestlen = 0;
  for (int i = 0; i < n; i++) {
    if (occ[i]) continue;
    int len = 0;
    while (len < n && !occ[(i + len) % n]) len++;
    if (len > bestlen) {
      bestlen = len;
      best = (i + len) % n;
    }
    if (len >= n) return 0;
    i += len - 1;
  }
  return bestlen ? best : 0;
}

static void add_comp(rd *R, const comp *c) {
  if (R->ncs == R->ccap) {
    R->ccap = R->ccap ? 2 * R->ccap : 64;
    R->cs = realloc(R->cs, (size_t)R->ccap * sizeof(comp));
    if (!R->cs) abort();
  }
  R->cs[R->ncs++] = *c;
}

/* Labels and components of frame f. */
static void smooth_frames(rd *R) {
  int H = R->H, W = R->W;
  size_t n = (size_t)H * W;
  float *tmp = xcalloc(n * 3, sizeof(float));
  for (int f = 0; f < R->F; f++) {
    float *fr = R->fr + (size_t)f * n * 3;
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        for (int k = 0; k < 3; k++) {
          float s = 0;
          int cnt = 0;
          for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
              int yy = y + dy, xx = x + dx;
              if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
              s += fr[((size_t)yy * W + xx) * 3 + k];
              cnt++;
            }
          tmp[((size_t)y * W + x) * 3 + k] = s / cnt;
        }
    memcpy(fr, tmp, n * 3 * sizeof(float));
  }
  free(tmp);
}

/* Labels and components of frame f. */
static void frame_components(rd *R, int f, double min_area, int *nstray) {
  int H = R->H, W = R->W, n = H * W;
  const float *fr = R->fr + (size_t)f * n * 3;
  /* Per-frame drift: the frame's dominant colour against the background's palette colour, kept
   * near the first frame's (a far one means the scene changed: keep the first). */
  float d[3];
  memcpy(d, R->drift, sizeof d);
  if (f > 0) {
    float m1[3], m2[3], f1, f2;
    dominant(fr, n, m1, &f1, m2, &f2);
    float ref[3];
    if (R->checkered) {
      float lo = 90, hi = 130;
      float dl = 0, dh = 0;
      for (int k = 0; k < 3; k++) {
        dl = fmaxf(dl, fabsf(m1[k] - lo - R->drift[k]));
        dh = fmaxf(dh, fabsf(m1[k] - hi - R->drift[k]));
      }
      for (int k = 0; k < 3; k++) ref[k] = dl < dh ? lo : hi;
    } else {
      memcpy(ref, BGC[R->bg], sizeof ref);
    }
    float dd[3], far = 0;
    for (int k = 0; k < 3; k++) {
      dd[k] = m1[k] - ref[k];
      far = fmaxf(far, fabsf(dd[k] - R->drift[k]));
    }
    if (far < 40 && f1 > 0.2f) memcpy(d, dd, sizeof d);
  }
  int *lab = R->lab + (size_t)f * n;
  const float tol2 = 45.0f * 45.0f; /* blend residual: noise and codec error stay well below */
  for (int i = 0; i < n; i++) {
    float q[3] = {fr[3 * i] - d[0], fr[3 * i + 1] - d[1], fr[3 * i + 2] - d[2]};
    float a, r;
    int c;
    if (R->checkered) {
      float g1[3] = {90, 90, 90}, g2[3] = {130, 130, 130};
      float a1, r1, a2, r2;
      int c1 = blend_fit(q, g1, &a1, &r1), c2 = blend_fit(q, g2, &a2, &r2);
      /* A pixel close to either gray is background. */
      float e1 = 0, e2 = 0;
      for (int k = 0; k < 3; k++) {
        e1 += (q[k] - 90) * (q[k] - 90);
        e2 += (q[k] - 130) * (q[k] - 130);
      }
      if (fminf(e1, e2) < 30 * 30) { lab[i] = 0; continue; }
      if (c1 >= 0 && (c2 < 0 || r1 <= r2)) { c = c1; a = a1; r = r1; }
      else { c = c2; a = a2; r = r2; }
    } else {
      c = blend_fit(q, BGC[R->bg], &a, &r);
    }
    lab[i] = (c >= 0 && r <= tol2) ? c + 1 : 0;
  }
  /* Components on the torus: 4-neighbours, and across opposite edges (the world wraps). */
  int *par = xcalloc((size_t)n, sizeof(int));
  for (int i = 0; i < n; i++) par[i] = i;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int i = y * W + x;
      if (!lab[i]) continue;
      int r = y * W + (x + 1) % W, b = ((y + 1) % H) * W + x;
      if (lab[r] == lab[i]) uf_union(par, i, r);
      if (lab[b] == lab[i]) uf_union(par, i, b);
    }
  int *cid = R->cid + (size_t)f * n;
  int *root_to = xcalloc((size_t)n, sizeof(int));
  for (int i = 0; i < n; i++) root_to[i] = -1;
  int base = R->ncs;
  int nloc = 0;
  for (int i = 0; i < n; i++) {
    cid[i] = -1;
    if (!lab[i]) continue;
    int rt = uf_find(par, i);
    if (root_to[rt] < 0) root_to[rt] = nloc++;
    cid[i] = root_to[rt];
  }
  comp *loc = xcalloc((size_t)(nloc ? nloc : 1), sizeof(comp));
  uint8_t *occx = xcalloc((size_t)nloc * W + 1, 1), *occy = xcalloc((size_t)nloc * H + 1, 1);
  for (int i = 0; i < n; i++) {
    if (cid[i] < 0) continue;
    int k = cid[i], x = i % W, y = i / W;
    loc[k].colour = lab[i] - 1;
    loc[k].n++;
    occx[(size_t)k * W + x] = 1;
    occy[(size_t)k * H + y] = 1;
    if (x == 0) loc[k].touch |= 1;
    if (x == W - 1) loc[k].touch |= 2;
    if (y == 0) loc[k].touch |= 4;
    if (y == H - 1) loc[k].touch |= 8;
  }
  for (int k = 0; k < nloc; k++) {
    comp *c = &loc[k];
    c->frame = f;
    /* A component touching both opposite edges wraps (unwrap at its largest empty gap); one
     * touching a single edge is cut by it. */
    c->shx = (c->touch & 3) == 3 ? arc_start(occx + (size_t)k * W, W) : 0;
    c->shy = (c->touch & 12) == 12 ? arc_start(occy + (size_t)k * H, H) : 0;
    int cutx = (c->touch & 3) && (c->touch & 3) != 3, cuty = (c->touch & 12) && (c->touch & 12) != 12;
    /* Touching both edges but spanning every column (no gap): not unwrappable: cut. */
    if ((c->touch & 3) == 3 && c->shx == 0) cutx = 1;
    if ((c->touch & 12) == 12 && c->shy == 0) cuty = 1;
    c->whole = !cutx && !cuty;
    c->x0 = c->y0 = 1 << 30;
    c->x1 = c->y1 = -(1 << 30);
  }
  for (int i = 0; i < n; i++) {
    if (cid[i] < 0) continue;
    comp *c = &loc[cid[i]];
    int x = i % W, y = i / W;
    if (c->shx && x < c->shx) x += W;
    if (c->shy && y < c->shy) y += H;
    c->sx += x;
    c->sy += y;
    if (x < c->x0) c->x0 = x;
    if (x > c->x1) c->x1 = x;
    if (y < c->y0) c->y0 = y;
    if (y > c->y1) c->y1 = y;
  }
  /* Strays: too small to be an object. */
  int *remap = xcalloc((size_t)(nloc ? nloc : 1), sizeof(int));
  for (int k = 0; k < nloc; k++) {
    if (loc[k].n < min_area) {
      remap[k] = -1;
      (*nstray)++;
    } else {
      remap[k] = R->ncs;
      add_comp(R, &loc[k]);
    }
  }
  for (int i = 0; i < n; i++)
    if (cid[i] >= 0) cid[i] = remap[cid[i]];
  (void)base;
  free(remap);
  free(occx);
  free(occy);
  free(loc);
  free(root_to);
  free(par);
}

static double wrapd(double d, double L) {
  d = fmod(d, L);
  if (d < -L / 2) d += L;
  if (d >= L / 2) d -= L;
  return d;
}

/* Links components into tracks: same colour, nearest wrap-aware centroid within 0.2 W (a fast
 * object moves 0.025 W per frame at 8 fps), a gap of up to 3 frames. */
static void link_tracks(rd *R) {
  int F = R->F, W = R->W, H = R->H;
  double maxd = 0.2 * W;
  for (int f = 0; f < F; f++) {
    /* components of frame f, largest first */
    int idx[256], m = 0;
    for (int k = 0; k < R->ncs && m < 256; k++)
      if (R->cs[k].frame == f) idx[m++] = k;
    for (int a = 1; a < m; a++)
      for (int b = a; b > 0 && R->cs[idx[b]].n > R->cs[idx[b - 1]].n; b--) {
        int t = idx[b]; idx[b] = idx[b - 1]; idx[b - 1] = t;
      }
    for (int a = 0; a < m; a++) {
      comp *c = &R->cs[idx[a]];
      double cx = c->sx / c->n, cy = c->sy / c->n;
      int best = -1;
      double bd = maxd;
      for (int t = 0; t < R->ntr; t++) {
        track *tr = &R->tr[t];
        if (tr->colour != c->colour || tr->ci[f] >= 0 || f - tr->last > 3) continue;
        double dx = wrapd(cx - tr->ux, W), dy = wrapd(cy - tr->uy, H);
        double dd = sqrt(dx * dx + dy * dy);
        if (dd < bd) { bd = dd; best = t; }
      }
      if (best < 0) {
        if (R->ntr == MAX_TRACKS) continue;
        track *tr = &R->tr[R->ntr++];
        tr->colour = c->colour;
        tr->first = f;
        tr->n_seen = 0;
        tr->ci = xcalloc((size_t)F, sizeof(int));
        tr->cx = xcalloc((size_t)F, sizeof(double));
        tr->cy = xcalloc((size_t)F, sizeof(double));
        for (int g = 0; g < F; g++) tr->ci[g] = -1;
        tr->ux = cx;
        tr->uy = cy;
        best = R->ntr - 1;
      } else {
        track *tr = &R->tr[best];
        cx = tr->ux + wrapd(cx - tr->ux, W);
        cy = tr->uy + wrapd(cy - tr->uy, H);
      }
      track *tr = &R->tr[best];
      tr->ci[f] = idx[a];
      tr->cx[f] = cx;
      tr->cy[f] = cy;
      tr->ux = cx;
      tr->uy = cy;
      tr->last = f;
      tr->n_seen++;
    }
  }
}

/* Shape of component c from its mask: −1 when unclear. */
static int comp_shape(const rd *R, const comp *c, int strict, double *fill_out) {
  int W = R->W, H = R->H;
  int bw = c->x1 - c->x0 + 1, bh = c->y1 - c->y0 + 1;
  if (bw < 3 || bh < 3) return -1;
  const int *cid = R->cid + (size_t)c->frame * W * H;
  int me = (int)(c - R->cs);
  uint8_t *m = xcalloc((size_t)bw * bh, 1);
  for (int y = c->y0; y <= c->y1; y++)
    for (int x = c->x0; x <= c->x1; x++) {
      int fx = x % W, fy = y % H;
      if (cid[fy * W + fx] == me) m[(size_t)(y - c->y0) * bw + (x - c->x0)] = 1;
    }
  double fill = (double)c->n / ((double)bw * bh);
  *fill_out = fill;
  /* hole: the central 30% box */
  int hx0 = (int)floor(bw * 0.35), hx1 = (int)ceil(bw * 0.65), hy0 = (int)floor(bh * 0.35),
      hy1 = (int)ceil(bh * 0.65);
  if (hx1 <= hx0) hx1 = hx0 + 1;
  if (hy1 <= hy0) hy1 = hy0 + 1;
  int hn = 0, hc = 0;
  for (int y = hy0; y < hy1 && y < bh; y++)
    for (int x = hx0; x < hx1 && x < bw; x++) {
      hn++;
      hc += m[(size_t)y * bw + x];
    }
  double hole_fill = hn ? (double)hc / hn : 1;
  /* top vs bottom half */
  double top = 0, bot = 0;
  for (int y = 0; y < bh; y++)
    for (int x = 0; x < bw; x++) {
      if (!m[(size_t)y * bw + x]) continue;
      double w = 1;
      if (2 * y + 1 == bh) w = 0.5;
      if (2 * y + 1 < bh) top += w;
      else if (2 * y + 1 > bh) bot += w;
      else { top += 0.5; bot += 0.5; }
    }
  /* corners: the four 22% boxes */
  int cw = (int)ceil(bw * 0.22), ch = (int)ceil(bh * 0.22);
  int cn = 0, cc = 0;
  for (int y = 0; y < bh; y++)
    for (int x = 0; x < bw; x++) {
      int inx = x < cw || x >= bw - cw, iny = y < ch || y >= bh - ch;
      if (!(inx && iny)) continue;
      cn++;
      cc += m[(size_t)y * bw + x];
    }
  double corner = cn ? (double)cc / cn : 0;
  free(m);
  int s;
  double exp_lo, exp_hi;
  if (hole_fill < 0.35) { s = SCENE_SHAPE_RING; exp_lo = 0.12; exp_hi = 0.62; }
  else if (bot > 0 && top / bot < 0.6) { s = SCENE_SHAPE_TRIANGLE; exp_lo = 0.3; exp_hi = 0.7; }
  else if (corner > 0.55) { s = SCENE_SHAPE_SQUARE; exp_lo = 0.82; exp_hi = 1.01; }
  else { s = SCENE_SHAPE_CIRCLE; exp_lo = 0.65; exp_hi = 0.9; }
  /* A fill far from the shape's own says the blob is not one clean object (merged, partial). */
  if (fill < exp_lo || fill > exp_hi) return -1;
  /* Aspect: every world shape has a square bounding box. */
  double asp = (double)bw / bh;
  if (asp < 0.7 || asp > 1.43) return -1;
  /* An object touching the frame edge may be cut: only a nearly square box is trusted. */
  if (strict && (asp < 0.87 || asp > 1.15)) return -1;
  return s;
}

static int classify_motion(double vx, double vy, int *speed, double *resid) {
  double m = sqrt(vx * vx + vy * vy);
  int mo;
  double maj, minr;
  if (fabs(vx) >= fabs(vy)) { mo = vx < 0 ? SCENE_MOTION_LEFT : SCENE_MOTION_RIGHT; maj = fabs(vx); minr = fabs(vy); }
  else { mo = vy < 0 ? SCENE_MOTION_UP : SCENE_MOTION_DOWN; maj = fabs(vy); minr = fabs(vx); }
  if (m < STILL_WPS) {
    *speed = -1;
    if (resid) *resid = m;
    return SCENE_MOTION_STILL;
  }
  *speed = maj < SPEED_SPLIT_WPS ? SCENE_SPEED_SLOW : SCENE_SPEED_FAST;
  if (resid) {
    /* distance to the nearest velocity the world makes (the still one included) */
    double canon = *speed == SCENE_SPEED_SLOW ? SCENE_WPS_SLOW : SCENE_WPS_FAST;
    double d = sqrt((maj - canon) * (maj - canon) + minr * minr);
    if (m < d) d = m;
    *resid = d;
  }
  return mo;
}

static int cmp_obj(const void *a, const void *b) {
  const world_object_read *x = a, *y = b;
  if (x->first_frame != y->first_frame) return x->first_frame - y->first_frame;
  return (x->x > y->x) - (x->x < y->x);
}

static int read_core(rd *R, const world_read_opts *o, world_read *out) {
  int F = R->F, H = R->H, W = R->W, n = H * W;
  palette_init();
  out->width = W;
  out->height = H;
  out->frames = F;
  out->fps = R->fps;
  /* 0. noise: a noisy video is 3x3-smoothed (σ/3) before anything is read */
  out->noise = noise_sigma(R->fr, H, W);
  int smooth = o->noise_smooth < 0 ? out->noise > 6 : o->noise_smooth;
  if (smooth) smooth_frames(R);
  /* 1. background and drift */
  float m1[3], m2[3], f1, f2;
  dominant(R->fr, n, m1, &f1, m2, &f2);
  int checkered = 0;
  if (f2 > 0.15f && f1 + f2 > 0.45f) {
    float *lo = m1, *hi = m2;
    if (m1[0] + m1[1] + m1[2] > m2[0] + m2[1] + m2[2]) { lo = m2; hi = m1; }
    int ok = 1;
    for (int k = 0; k < 3; k++) {
      float dk = hi[k] - lo[k];
      if (dk < 25 || dk > 55) ok = 0;
      if (fabsf(0.5f * (hi[k] + lo[k]) - 110) > o->max_drift) ok = 0;
    }
    if (ok) {
      checkered = 1;
      for (int k = 0; k < 3; k++) R->drift[k] = 0.5f * (hi[k] + lo[k]) - 110;
      R->bg = SCENE_BG_CHECKERED;
    }
  }
  if (f1 < 0.2f && !checkered) {
    set_st(&out->st[WORLD_ATTR_BACKGROUND], WORLD_FAIL,
           "no dominant background colour (largest covers %.0f%%)", 100.0 * f1);
    out->value[WORLD_ATTR_BACKGROUND] = -1;
    R->bg = 0;
    for (int k = 0; k < 3; k++) R->drift[k] = m1[k] - BGC[0][k];
  } else if (!checkered) {
    /* Candidates within the drift bound; the one whose drift also explains the foreground's
     * colours best (and is smallest) wins. */
    int best = -1, second = -1;
    double bcost = 1e30, scost = 1e30;
    for (int b = 0; b < SCENE_BG_COUNT; b++) {
      if (b == SCENE_BG_CHECKERED) continue;
      float d[3];
      double dn = 0;
      int ok = 1;
      for (int k = 0; k < 3; k++) {
        d[k] = m1[k] - BGC[b][k];
        if (fabsf(d[k]) > o->max_drift) ok = 0;
        dn += (double)d[k] * d[k];
      }
      if (!ok) continue;
      double fres = 0;
      int fcnt = 0;
      for (int i = 0; i < n; i += 1) {
        const float *p = R->fr + 3 * i;
        float e = fabsf(p[0] - m1[0]) + fabsf(p[1] - m1[1]) + fabsf(p[2] - m1[2]);
        if (e < 60) continue;
        float q[3] = {p[0] - d[0], p[1] - d[1], p[2] - d[2]}, a, r;
        int c = blend_fit(q, BGC[b], &a, &r);
        fres += c >= 0 ? fmin(r, 3600) : 3600;
        fcnt++;
      }
      double cost = dn + (fcnt ? fres / fcnt : 0);
      if (cost < bcost) { scost = bcost; second = best; bcost = cost; best = b; }
      else if (cost < scost) { scost = cost; second = b; }
    }
    /* Two backgrounds explain the colours about as well (black and forest are 45 levels apart,
     * within two drifts of 30): say so rather than pick one. */
    if (best >= 0 && second >= 0 && scost < 1.3 * bcost && bcost > 200) {
      set_st(&out->st[WORLD_ATTR_BACKGROUND], WORLD_FAIL, "ambiguous: %s or %s under a colour drift",
             scene_bg_name((scene_bg)best), scene_bg_name((scene_bg)second));
      out->value[WORLD_ATTR_BACKGROUND] = -1;
    }
    if (best < 0) {
      set_st(&out->st[WORLD_ATTR_BACKGROUND], WORLD_FAIL,
             "background colour (%.0f,%.0f,%.0f) is no world background", m1[0], m1[1], m1[2]);
      out->value[WORLD_ATTR_BACKGROUND] = -1;
      best = 0;
      float bd = 1e30f;
      for (int b = 0; b < SCENE_BG_COUNT; b++) {
        if (b == SCENE_BG_CHECKERED) continue;
        float e = 0;
        for (int k = 0; k < 3; k++) e += (m1[k] - BGC[b][k]) * (m1[k] - BGC[b][k]);
        if (e < bd) { bd = e; best = b; }
      }
    }
    R->bg = best;
    for (int k = 0; k < 3; k++) R->drift[k] = m1[k] - BGC[best][k];
  }
  R->checkered = checkered;
  if (out->st[WORLD_ATTR_BACKGROUND].status != WORLD_FAIL) {
    out->value[WORLD_ATTR_BACKGROUND] = R->bg;
    set_st(&out->st[WORLD_ATTR_BACKGROUND], WORLD_OK, NULL);
  }
  for (int k = 0; k < 3; k++) out->drift[k] = R->drift[k];
  /* 2–3. labels and components */
  double small_area = M_PI * pow(SCENE_RADIUS_SMALL * W, 2);
  double ring_area = M_PI * (pow(SCENE_RADIUS_SMALL * W, 2) -
                             pow((SCENE_RADIUS_SMALL - SCENE_RING_STROKE) * W, 2));
  double min_area = o->min_area_frac * fmin(small_area, ring_area * 1.6);
  if (min_area < 3) min_area = 3;
  for (int f = 0; f < F; f++) frame_components(R, f, min_area, &out->n_stray);
  /* 4. tracks */
  link_tracks(R);
  int minseen = (int)ceil(0.2 * F);
  if (minseen < 2) minseen = F >= 2 ? 2 : 1;
  int nobj = 0;
  for (int t = 0; t < R->ntr; t++) {
    track *tr = &R->tr[t];
    int keep = tr->n_seen >= minseen || (tr->first == 0 && tr->n_seen >= (F >= 2 ? 2 : 1));
    if (!keep) { out->n_stray += tr->n_seen; continue; }
    if (nobj == WORLD_READ_MAX_OBJECTS) continue;
    world_object_read *ob = &out->obj[nobj++];
    memset(ob, 0, sizeof *ob);
    ob->track = xcalloc((size_t)F, sizeof(world_track_frame));
    ob->first_frame = tr->first;
    ob->frames_seen = tr->n_seen;
    ob->value[WORLD_ATTR_COLOUR] = tr->colour;
    set_st(&ob->st[WORLD_ATTR_COLOUR], WORLD_OK, NULL);
    int votes[SCENE_SHAPE_COUNT] = {0}, nwhole = 0, nunclear = 0;
    int evotes[SCENE_SHAPE_COUNT] = {0}, nedge = 0;
    double rsum = 0, fillsum = 0, ersum = 0, efill = 0;
    int rcnt = 0;
    for (int f = 0; f < F; f++) {
      world_track_frame *tf = &ob->track[f];
      if (tr->ci[f] < 0) continue;
      const comp *c = &R->cs[tr->ci[f]];
      tf->visible = 1;
      tf->whole = (uint8_t)c->whole;
      tf->x = (float)tr->cx[f];
      tf->y = (float)tr->cy[f];
      tf->area = (float)c->n;
      /* frame bbox of the piece holding the centroid */
      double ox = tr->cx[f] - c->sx / c->n, oy = tr->cy[f] - c->sy / c->n;
      tf->x0 = (float)(c->x0 + ox);
      tf->x1 = (float)(c->x1 + 1 + ox);
      tf->y0 = (float)(c->y0 + oy);
      tf->y1 = (float)(c->y1 + 1 + oy);
      if (f == tr->first) {
        ob->x = fmod(fmod(tr->cx[f], W) + W, W) / W;
        ob->y = fmod(fmod(tr->cy[f], H) + H, H) / H;
      }
      if (!c->whole) {
        /* touching the edge: trusted when the box is still square (just touching) */
        double fill;
        int s = comp_shape(R, c, 1, &fill);
        if (s >= 0) {
          evotes[s]++;
          nedge++;
          efill += fill;
          ersum += 0.5 * fmax(c->x1 - c->x0 + 1, c->y1 - c->y0 + 1);
        }
        continue;
      }
      nwhole++;
      double fill;
      int s = comp_shape(R, c, 0, &fill);
      if (s < 0) { nunclear++; continue; }
      votes[s]++;
      fillsum += fill;
      rsum += 0.25 * ((c->x1 - c->x0 + 1) + (c->y1 - c->y0 + 1));
      rcnt++;
    }
    /* 5. shape and size (from the whole frames; from the frames just touching the edge when
     * no frame shows the object whole) */
    if (nwhole == 0 || votes[0] + votes[1] + votes[2] + votes[3] == 0) {
      if (nedge > 0) {
        memcpy(votes, evotes, sizeof votes);
        rsum = ersum;
        fillsum = efill;
        rcnt = nedge;
        nwhole = nedge;
      }
    }
    int bs = 0, tot = 0;
    for (int s = 0; s < SCENE_SHAPE_COUNT; s++) {
      tot += votes[s];
      if (votes[s] > votes[bs]) bs = s;
    }
    if (nwhole == 0) {
      set_st(&ob->st[WORLD_ATTR_SHAPE], WORLD_FAIL, "cut by the frame edge in every frame");
      set_st(&ob->st[WORLD_ATTR_SIZE], WORLD_FAIL, "cut by the frame edge in every frame");
    } else if (tot == 0) {
      set_st(&ob->st[WORLD_ATTR_SHAPE], WORLD_FAIL, "no frame shows a clear shape (%d unclear)", nunclear);
      set_st(&ob->st[WORLD_ATTR_SIZE], WORLD_FAIL, "no frame shows a clear shape");
    } else {
      if (votes[bs] < 0.6 * tot) {
        set_st(&ob->st[WORLD_ATTR_SHAPE], WORLD_FAIL,
               "shapes disagree across frames: %d circle, %d square, %d triangle, %d ring, %d unclear",
               votes[0], votes[1], votes[2], votes[3], nunclear);
      } else {
        set_st(&ob->st[WORLD_ATTR_SHAPE], WORLD_OK, NULL);
      }
      ob->value[WORLD_ATTR_SHAPE] = bs;
      ob->fill = fillsum / rcnt;
      ob->radius = rsum / rcnt / W;
      if (ob->radius < 0.045 || ob->radius > 0.3) {
        set_st(&ob->st[WORLD_ATTR_SIZE], WORLD_FAIL, "radius %.3f W fits no world size", ob->radius);
        ob->value[WORLD_ATTR_SIZE] = ob->radius < SIZE_SPLIT ? SCENE_SIZE_SMALL : SCENE_SIZE_LARGE;
      } else {
        ob->value[WORLD_ATTR_SIZE] = ob->radius < SIZE_SPLIT ? SCENE_SIZE_SMALL : SCENE_SIZE_LARGE;
        set_st(&ob->st[WORLD_ATTR_SIZE], WORLD_OK, NULL);
      }
    }
    /* screen velocity: least squares over whole frames (all visible ones when fewer than 2
     * whole frames span a quarter of the video) */
    double st = 0, sx = 0, sy = 0, stt = 0, stx = 0, sty = 0;
    int cnt = 0, tmin = F, tmax = -1;
    for (int pass = 0; pass < 2 && cnt < 2; pass++) {
      st = sx = sy = stt = stx = sty = 0;
      cnt = 0;
      tmin = F;
      tmax = -1;
      for (int f = 0; f < F; f++) {
        if (!ob->track[f].visible || (pass == 0 && !ob->track[f].whole)) continue;
        double t = f / R->fps;
        st += t; sx += tr->cx[f]; sy += tr->cy[f]; stt += t * t; stx += t * tr->cx[f]; sty += t * tr->cy[f];
        cnt++;
        if (f < tmin) tmin = f;
        if (f > tmax) tmax = f;
      }
      if (pass == 0 && (tmax - tmin) < 0.25 * (F - 1)) cnt = 0;
    }
    if (cnt >= 2 && tmax > tmin) {
      double den = cnt * stt - st * st;
      ob->vx = (cnt * stx - st * sx) / den / W;
      ob->vy = (cnt * sty - st * sy) / den / W;
      set_st(&ob->st[WORLD_ATTR_MOTION], WORLD_OK, NULL);
    } else {
      set_st(&ob->st[WORLD_ATTR_MOTION], WORLD_FAIL, F < 2 ? "one frame: no motion" : "seen in one frame only");
      set_st(&ob->st[WORLD_ATTR_SPEED], WORLD_FAIL, F < 2 ? "one frame: no motion" : "seen in one frame only");
      ob->value[WORLD_ATTR_MOTION] = -1;
      ob->value[WORLD_ATTR_SPEED] = -1;
    }
  }
  out->n_objects = nobj;
  qsort(out->obj, (size_t)nobj, sizeof out->obj[0], cmp_obj);
  out->value[WORLD_ATTR_COUNT_OBJECTS] = nobj;
  set_st(&out->st[WORLD_ATTR_COUNT_OBJECTS], WORLD_OK, NULL);
  /* 6. background motion and pan */
  if (checkered && F >= 2) {
    uint8_t *mask = xcalloc((size_t)n, 1);
    float *ga = xcalloc((size_t)n, sizeof(float)), *gb = xcalloc((size_t)n, sizeof(float));
    flow_ws *ws = flow_ws_new();
    double sum = 0, lam = 0;
    int pairs = 0;
    for (int f = 0; f + 1 < F; f++) {
      const int *l0 = R->lab + (size_t)f * n, *l1 = R->lab + (size_t)(f + 1) * n;
      for (int i = 0; i < n; i++) {
        /* background = unlabelled in both frames, away (2 px) from any label */
        int ok = !l0[i] && !l1[i];
        int x = i % W, y = i / W;
        for (int dy = -2; dy <= 2 && ok; dy++)
          for (int dx = -2; dx <= 2 && ok; dx++) {
            int xx = x + dx, yy = y + dy;
            if (xx < 0 || yy < 0 || xx >= W || yy >= H) continue;
            if (l0[yy * W + xx] || l1[yy * W + xx]) ok = 0;
          }
        mask[i] = (uint8_t)ok;
        const float *p = R->fr + ((size_t)f * n + i) * 3, *q = R->fr + ((size_t)(f + 1) * n + i) * 3;
        ga[i] = (0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2]) / 255.0f;
        gb[i] = (0.299f * q[0] + 0.587f * q[1] + 0.114f * q[2]) / 255.0f;
      }
      double tx, ty, s;
      if (flow_translation(ws, ga, gb, H, W, 1, mask, &tx, &ty, &s) == TB_OK) {
        /* a(x) ≈ b(x + t): the picture moved by +t */
        sum += tx;
        lam += s;
        pairs++;
      }
    }
    flow_ws_free(ws);
    free(mask);
    free(ga);
    free(gb);
    out->bg_textured = pairs > 0;
    out->bg_vx = pairs ? sum / pairs * R->fps / W : 0;
    out->bg_vy = 0;
  }
  int moving_ok = 1;
  for (int i = 0; i < nobj; i++)
    if (out->obj[i].st[WORLD_ATTR_MOTION].status == WORLD_FAIL) moving_ok = 0;
  static const double PAN_VX[SCENE_PAN_COUNT] = {0, PAN_WPS, -PAN_WPS}; /* screen motion */
  out->pan_hyps = 0;
  if (F < 2) {
    set_st(&out->st[WORLD_ATTR_PAN], WORLD_FAIL, "one frame: no motion");
    out->value[WORLD_ATTR_PAN] = -1;
  } else if (out->bg_textured) {
    double b = out->bg_vx;
    int p = fabs(b) < 0.5 * PAN_WPS ? SCENE_PAN_NONE : b > 0 ? SCENE_PAN_LEFT : SCENE_PAN_RIGHT;
    out->value[WORLD_ATTR_PAN] = p;
    set_st(&out->st[WORLD_ATTR_PAN], WORLD_OK, NULL);
    out->pan_hyps = 1u << p;
    world_pan_hyp *h = &out->hyp[p];
    h->residual = 0;
    for (int i = 0; i < nobj; i++) {
      world_object_read *ob = &out->obj[i];
      if (ob->st[WORLD_ATTR_MOTION].status == WORLD_FAIL) continue;
      double r;
      h->motion[i] = classify_motion(ob->vx - b, ob->vy - out->bg_vy, &h->speed[i], &r);
      if (r > h->residual) h->residual = r;
    }
  } else {
    /* plain background: every pan under which each object's own motion is a world motion */
    double bestr = 1e30;
    int bestp = 0;
    for (int p = 0; p < SCENE_PAN_COUNT; p++) {
      world_pan_hyp *h = &out->hyp[p];
      h->residual = 0;
      for (int i = 0; i < nobj; i++) {
        world_object_read *ob = &out->obj[i];
        if (ob->st[WORLD_ATTR_MOTION].status == WORLD_FAIL) continue;
        double r;
        h->motion[i] = classify_motion(ob->vx - PAN_VX[p], ob->vy, &h->speed[i], &r);
        if (r > h->residual) h->residual = r;
      }
      double tol = 0.015 + 0.15 * SCENE_WPS_SLOW;
      if (nobj > 0 && moving_ok && h->residual <= tol) out->pan_hyps |= 1u << p;
      if (h->residual < bestr) { bestr = h->residual; bestp = p; }
    }
    (void)bestp;
    int nh = 0, only = 0;
    for (int p = 0; p < SCENE_PAN_COUNT; p++)
      if (out->pan_hyps >> p & 1) { nh++; only = p; }
    if (nh == 1) {
      out->value[WORLD_ATTR_PAN] = only;
      set_st(&out->st[WORLD_ATTR_PAN], WORLD_OK, NULL);
    } else if (nh == 0) {
      /* Nothing fits the world's motions exactly: the background shows no motion, so read the
       * objects' screen motion (what CompBench's background tracker would give) and say that
       * the pan itself is unknown. */
      out->pan_hyps = nobj ? 1u << SCENE_PAN_NONE : 0;
      out->value[WORLD_ATTR_PAN] = SCENE_PAN_NONE;
      set_st(&out->st[WORLD_ATTR_PAN], WORLD_FAIL,
             nobj ? "plain background: camera pan not observable" : "plain background and no object: camera pan not observable");
    } else {
      out->value[WORLD_ATTR_PAN] = SCENE_PAN_NONE;
      set_st(&out->st[WORLD_ATTR_PAN], WORLD_FAIL, "ambiguous: plain background, pans%s%s%s fit",
             out->pan_hyps & 1 ? " none" : "", out->pan_hyps & 2 ? " left" : "", out->pan_hyps & 4 ? " right" : "");
    }
  }
  /* object motion and speed from the hypotheses */
  for (int i = 0; i < nobj; i++) {
    world_object_read *ob = &out->obj[i];
    if (ob->st[WORLD_ATTR_MOTION].status == WORLD_FAIL && ob->value[WORLD_ATTR_MOTION] == -1) continue;
    int first = -1, agree_m = 1, agree_s = 1;
    for (int p = 0; p < SCENE_PAN_COUNT; p++) {
      if (!(out->pan_hyps >> p & 1)) continue;
      if (first < 0) { first = p; continue; }
      if (out->hyp[p].motion[i] != out->hyp[first].motion[i]) agree_m = 0;
      if (out->hyp[p].speed[i] != out->hyp[first].speed[i]) agree_s = 0;
    }
    if (first < 0) first = SCENE_PAN_NONE;
    int use = out->pan_hyps >> SCENE_PAN_NONE & 1 ? SCENE_PAN_NONE : first;
    if (out->st[WORLD_ATTR_PAN].status == WORLD_OK) use = out->value[WORLD_ATTR_PAN];
    ob->value[WORLD_ATTR_MOTION] = out->hyp[use].motion[i];
    ob->value[WORLD_ATTR_SPEED] = out->hyp[use].speed[i];
    if (!agree_m) set_st(&ob->st[WORLD_ATTR_MOTION], WORLD_FAIL, "ambiguous: depends on the camera pan (plain background)");
    else set_st(&ob->st[WORLD_ATTR_MOTION], WORLD_OK, NULL);
    if (ob->value[WORLD_ATTR_MOTION] == SCENE_MOTION_STILL && agree_m) set_st(&ob->st[WORLD_ATTR_SPEED], WORLD_NA, "still");
    else if (!agree_s || !agree_m) set_st(&ob->st[WORLD_ATTR_SPEED], WORLD_FAIL, "ambiguous: depends on the camera pan (plain background)");
    else set_st(&ob->st[WORLD_ATTR_SPEED], WORLD_OK, NULL);
  }
  /* 7. relation of the first two objects seen in frame 0 */
  int in0[2], k0 = 0;
  for (int i = 0; i < nobj && k0 < 2; i++)
    if (out->obj[i].first_frame == 0) in0[k0++] = i;
  if (k0 < 2) {
    set_st(&out->st[WORLD_ATTR_RELATION], WORLD_NA, nobj >= 2 ? "fewer than two objects in the first frame" : "one object");
    out->value[WORLD_ATTR_RELATION] = SCENE_REL_NONE;
  } else {
    scene_relation rel = world_relation(out, in0[0], in0[1]);
    out->value[WORLD_ATTR_RELATION] = rel;
    if (rel == SCENE_REL_NONE) set_st(&out->st[WORLD_ATTR_RELATION], WORLD_FAIL, "ambiguous: offset as large across as along");
    else set_st(&out->st[WORLD_ATTR_RELATION], WORLD_OK, NULL);
  }
  return TB_OK;
}

scene_relation world_relation(const world_read *r, int i, int j) {
  if (i < 0 || j < 0 || i >= r->n_objects || j >= r->n_objects || i == j) return SCENE_REL_NONE;
  double dx = (r->obj[j].x - r->obj[i].x) * r->width, dy = (r->obj[j].y - r->obj[i].y) * r->height;
  if (fabs(dx) > 1.2 * fabs(dy)) return dx > 0 ? SCENE_REL_LEFT_OF : SCENE_REL_RIGHT_OF;
  if (fabs(dy) > 1.2 * fabs(dx)) return dy > 0 ? SCENE_REL_ABOVE : SCENE_REL_BELOW;
  return SCENE_REL_NONE;
}

static int check_args(const void *p, int F, int H, int W, double fps, world_read *out) {
  if (out) memset(out, 0, sizeof *out);
  if (!p || !out) return err_set("world_read: NULL frames or output");
  if (F < 1) return err_set("world_read: %d frames (at least 1)", F);
  if (H < 8 || W < 8 || H > 8192 || W > 8192) return err_set("world_read: frame size %dx%d outside 8..8192", W, H);
  if (!(fps > 0) || fps > 1000) return err_set("world_read: fps %g outside (0, 1000]", fps);
  return TB_OK;
}

static void rd_free(rd *R) {
  free(R->fr);
  free(R->lab);
  free(R->cid);
  free(R->cs);
  for (int t = 0; t < R->ntr; t++) {
    free(R->tr[t].ci);
    free(R->tr[t].cx);
    free(R->tr[t].cy);
  }
}

static int read_run(rd *R, const world_read_opts *opts, world_read *out) {
  world_read_opts def;
  if (!opts) {
    world_read_opts_default(&def);
    opts = &def;
  }
  size_t n = (size_t)R->H * R->W;
  R->lab = xcalloc(n * R->F, sizeof(int));
  R->cid = xcalloc(n * R->F, sizeof(int));
  int rc = read_core(R, opts, out);
  rd_free(R);
  return rc;
}

int world_read_video_u8(const uint8_t *rgb, int F, int H, int W, double fps,
                        const world_read_opts *opts, world_read *out) {
  if (check_args(rgb, F, H, W, fps, out) != TB_OK) return TB_ERR;
  rd R = {.F = F, .H = H, .W = W, .fps = fps};
  size_t m = (size_t)F * H * W * 3;
  R.fr = xcalloc(m, sizeof(float));
  for (size_t i = 0; i < m; i++) R.fr[i] = rgb[i];
  return read_run(&R, opts, out);
}

int world_read_video_f32(const float *rgb, int F, int H, int W, double fps,
                         const world_read_opts *opts, world_read *out) {
  if (check_args(rgb, F, H, W, fps, out) != TB_OK) return TB_ERR;
  rd R = {.F = F, .H = H, .W = W, .fps = fps};
  size_t m = (size_t)F * H * W * 3;
  R.fr = xcalloc(m, sizeof(float));
  for (size_t i = 0; i < m; i++) {
    float v = rgb[i];
    if (!(v > 0)) v = 0; /* NaN too */
    if (v > 1) v = 1;
    R.fr[i] = v * 255.0f;
  }
  return read_run(&R, opts, out);
}

void world_read_free(world_read *r) {
  if (!r) return;
  for (int i = 0; i < WORLD_READ_MAX_OBJECTS; i++) {
    free(r->obj[i].track);
    r->obj[i].track = NULL;
  }
}

/* ---- JSON ------------------------------------------------------------------------------------ */

static const char *attr_name(int k, int v) {
  switch (k) {
  case WORLD_ATTR_COLOUR: return scene_colour_name((scene_colour)v);
  case WORLD_ATTR_SHAPE: return scene_shape_name((scene_shape)v);
  case WORLD_ATTR_SIZE: return scene_size_name((scene_size)v);
  case WORLD_ATTR_MOTION: return scene_motion_name((scene_motion)v);
  case WORLD_ATTR_SPEED: return scene_speed_name((scene_speed)v);
  }
  return "?";
}

static void put_attr(json_buf *b, const char *key, const char *val, const world_attr_status *st,
                     int *first) {
  json_buf_printf(b, "%s\"%s\":", *first ? "" : ",", key);
  *first = 0;
  if (st->status == WORLD_OK && val) json_buf_put_string(b, val, strlen(val));
  else json_buf_puts(b, "null");
  if (st->status != WORLD_OK) {
    json_buf_printf(b, ",\"%s_reason\":", key);
    const char *r = st->status == WORLD_NA && !st->reason[0] ? "not applicable" : st->reason;
    json_buf_put_string(b, r, strlen(r));
  }
}

void world_read_json_put(json_buf *b, const world_read *r) {
  static const char *const OBJ_KEYS[WORLD_OBJ_ATTR_COUNT] = {"colour", "shape", "size", "motion", "speed"};
  int first = 1;
  json_buf_puts(b, "{");
  json_buf_printf(b, "\"count\":%d", r->n_objects);
  first = 0;
  put_attr(b, "background", scene_bg_name((scene_bg)r->value[WORLD_ATTR_BACKGROUND]), &r->st[WORLD_ATTR_BACKGROUND], &first);
  put_attr(b, "pan", scene_pan_name((scene_pan)r->value[WORLD_ATTR_PAN]), &r->st[WORLD_ATTR_PAN], &first);
  put_attr(b, "relation", scene_relation_name((scene_relation)r->value[WORLD_ATTR_RELATION]), &r->st[WORLD_ATTR_RELATION], &first);
  json_buf_printf(b, ",\"strays\":%d,\"noise\":", r->n_stray);
  json_buf_put_number(b, r->noise);
  json_buf_puts(b, ",\"objects\":[");
  for (int i = 0; i < r->n_objects; i++) {
    const world_object_read *o = &r->obj[i];
    int f1 = 1;
    json_buf_puts(b, i ? ",{" : "{");
    for (int k = 0; k < WORLD_OBJ_ATTR_COUNT; k++)
      put_attr(b, OBJ_KEYS[k], o->value[k] >= 0 ? attr_name(k, o->value[k]) : NULL, &o->st[k], &f1);
    json_buf_puts(b, ",\"x\":");
    json_buf_put_number(b, o->x);
    json_buf_puts(b, ",\"y\":");
    json_buf_put_number(b, o->y);
    json_buf_puts(b, ",\"radius\":");
    json_buf_put_number(b, o->radius);
    json_buf_puts(b, ",\"vx\":");
    json_buf_put_number(b, o->vx);
    json_buf_puts(b, ",\"vy\":");
    json_buf_put_number(b, o->vy);
    json_buf_puts(b, "}");
  }
  json_buf_puts(b, "]}");
}

/* ---- specs --------------------------------------------------------------------------------- */

void world_spec_from_scene(const scene *s, world_spec *out) {
  memset(out, 0, sizeof *out);
  out->n_objects = s->n_objects;
  for (int i = 0; i < s->n_objects && i < SCENE_MAX_OBJECTS; i++) {
    const scene_object *o = &s->obj[i];
    out->obj[i].colour = o->colour;
    out->obj[i].shape = o->shape;
    out->obj[i].size = o->size;
    out->obj[i].motion = o->motion;
    out->obj[i].speed = o->motion == SCENE_MOTION_STILL ? -1 : (int)o->speed;
  }
  out->relation = s->n_objects == 2 ? (int)s->relation : SCENE_REL_NONE;
  out->bg = s->bg;
  out->pan = s->pan;
}

typedef const char *(*name_fn)(int);
static const char *nm_colour(int v) { return scene_colour_name((scene_colour)v); }
static const char *nm_shape(int v) { return scene_shape_name((scene_shape)v); }
static const char *nm_size(int v) { return scene_size_name((scene_size)v); }
static const char *nm_motion(int v) { return scene_motion_name((scene_motion)v); }
static const char *nm_speed(int v) { return scene_speed_name((scene_speed)v); }
static const char *nm_bg(int v) { return scene_bg_name((scene_bg)v); }
static const char *nm_pan(int v) { return scene_pan_name((scene_pan)v); }
static const char *nm_rel(int v) { return scene_relation_name((scene_relation)v); }

/* Field `key` of obj as an enum value by name (n values); -1 when missing or null. */
static int get_enum(const json_value *obj, const char *key, name_fn nm, int n, int *out,
                    const char *where) {
  *out = -1;
  const json_value *v = json_get(obj, key);
  if (!v) return TB_OK;
  const char *s;
  if (json_get_string(obj, key, &s) != TB_OK) {
    /* null = unspecified; anything else is an error */
    if (v->type == JSON_NULL) return TB_OK;
    return err_set("spec %s\"%s\": not a string", where, key);
  }
  for (int i = 0; i < n; i++)
    if (strcmp(nm(i), s) == 0) { *out = i; return TB_OK; }
  return err_set("spec %s\"%s\": unknown value \"%s\"", where, key, s);
}

int world_spec_json_get(const json_value *v, world_spec *out) {
  memset(out, 0, sizeof *out);
  out->relation = out->bg = out->pan = -1;
  if (get_enum(v, "background", nm_bg, SCENE_BG_COUNT, &out->bg, "") != TB_OK) return TB_ERR;
  if (get_enum(v, "pan", nm_pan, SCENE_PAN_COUNT, &out->pan, "") != TB_OK) return TB_ERR;
  if (get_enum(v, "relation", nm_rel, SCENE_REL_COUNT, &out->relation, "") != TB_OK) return TB_ERR;
  const json_value *objs = json_get(v, "objects");
  if (!objs) return err_set("spec: missing \"objects\"");
  if (objs->type != JSON_ARRAY) return err_set("spec \"objects\": not an array");
  int n = (int)objs->count;
  if (n < 1 || n > SCENE_MAX_OBJECTS) return err_set("spec \"objects\": %d objects (1 or 2)", n);
  out->n_objects = n;
  for (int i = 0; i < n; i++) {
    const json_value *o = json_at(objs, (size_t)i);
    world_spec_object *so = &out->obj[i];
    if (o->type != JSON_OBJECT) return err_set("spec \"objects\"[%d]: not an object", i);
    char where[32];
    snprintf(where, sizeof where, "objects[%d].", i);
    if (get_enum(o, "colour", nm_colour, SCENE_COLOUR_COUNT, &so->colour, where) != TB_OK ||
        get_enum(o, "shape", nm_shape, SCENE_SHAPE_COUNT, &so->shape, where) != TB_OK ||
        get_enum(o, "size", nm_size, SCENE_SIZE_COUNT, &so->size, where) != TB_OK ||
        get_enum(o, "motion", nm_motion, SCENE_MOTION_COUNT, &so->motion, where) != TB_OK ||
        get_enum(o, "speed", nm_speed, SCENE_SPEED_COUNT, &so->speed, where) != TB_OK)
      return TB_ERR;
    if (so->motion == SCENE_MOTION_STILL) so->speed = -1;
  }
  if (n == 1 && out->relation > 0) return err_set("spec \"relation\": a relation needs two objects");
  if (n == 1 && out->relation < 0) out->relation = SCENE_REL_NONE;
  return TB_OK;
}

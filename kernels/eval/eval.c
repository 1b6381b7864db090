/* kernels/eval/eval.c — VBench / CompBench dimensions (eval.h). */
#include "kernels/eval/eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static const char *const NAMES[EVAL_DIM_COUNT] = {
    "subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
    "dynamic_degree", "aesthetic_quality", "imaging_quality", "object_class", "multiple_objects",
    "human_action", "color", "spatial_relationship", "scene", "temporal_style",
    "appearance_style", "overall_consistency", "consistent_attribute_binding",
    "dynamic_attribute_binding", "spatial_relationships", "motion_binding", "action_binding",
    "object_interactions", "generative_numeracy"};
static const char *const TITLES[EVAL_DIM_COUNT] = {
    "Subject consistency", "Background consistency", "Temporal flickering", "Motion smoothness",
    "Dynamic degree", "Aesthetic quality", "Imaging quality", "Object class", "Multiple objects",
    "Human action", "Color", "Spatial relationship", "Scene", "Temporal style",
    "Appearance style", "Overall consistency", "Consistent attribute binding",
    "Dynamic attribute binding", "Spatial relationships", "Motion binding", "Action binding",
    "Object interactions", "Generative numeracy"};
/* VBench scripts/constant.py (METHOD.md §6) */
static const double VB_MIN[EVAL_VBENCH_COUNT] = {0.1462, 0.2615, 0.6293, 0.706, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0009, 0};
static const double VB_MAX[EVAL_VBENCH_COUNT] = {1.0, 1.0, 1.0, 0.9975, 1, 1, 1, 1, 1, 1, 1, 1, 0.8222, 0.364, 0.2855, 0.364};

const char *eval_dim_name(eval_dim d) { return (unsigned)d < EVAL_DIM_COUNT ? NAMES[d] : "?"; }
const char *eval_dim_title(eval_dim d) { return (unsigned)d < EVAL_DIM_COUNT ? TITLES[d] : "?"; }
int eval_dim_from_name(const char *name) {
  for (int d = 0; d < EVAL_DIM_COUNT; d++)
    if (name && strcmp(name, NAMES[d]) == 0) return d;
  return -1;
}
int eval_dim_is_exact(eval_dim d) {
  if (d == EVAL_CB_DYNAMIC_ATTR || d == EVAL_CB_INTERACTION) return -1;
  return d >= EVAL_SEMANTIC_FIRST && d < EVAL_DIM_COUNT;
}
const char *eval_dim_na_reason(eval_dim d) {
  if (d == EVAL_CB_DYNAMIC_ATTR) return "the world has no attribute that changes during a clip";
  if (d == EVAL_CB_INTERACTION) return "the world's objects never touch or act on each other";
  return NULL;
}
void eval_vbench_constants(eval_dim d, double *mn, double *mx, double *w) {
  if ((unsigned)d >= EVAL_VBENCH_COUNT) { *mn = 0; *mx = 1; *w = 1; return; }
  *mn = VB_MIN[d];
  *mx = VB_MAX[d];
  *w = d == EVAL_DYNAMIC_DEGREE ? 0.5 : 1.0;
}
double eval_vbench_normalise(eval_dim d, double x) {
  if ((unsigned)d >= EVAL_VBENCH_COUNT) return x;
  double mn, mx, w;
  eval_vbench_constants(d, &mn, &mx, &w);
  return (x - mn) / (mx - mn) * w;
}

/* ---- quality ------------------------------------------------------------------------------ */

struct eval_ctx {
  flow_ws *ws;
  flow_opts fo;
  float *a, *b, *uv, *mid;
  size_t cap;
};

eval_ctx *eval_ctx_new(void) {
  eval_ctx *c = xcalloc(1, sizeof *c);
  c->ws = flow_ws_new();
  flow_opts_default(&c->fo);
  c->fo.sweeps = 8; /* measured: the top-5% mean moves < 2% from 12 sweeps on the world's clips */
  return c;
}
void eval_ctx_free(eval_ctx *c) {
  if (!c) return;
  flow_ws_free(c->ws);
  free(c->a);
  free(c->b);
  free(c->uv);
  free(c->mid);
  free(c);
}
flow_opts *eval_ctx_flow_opts(eval_ctx *c) { return &c->fo; }

static void ctx_grow(eval_ctx *c, size_t n) {
  if (c->cap >= n) return;
  free(c->a); free(c->b); free(c->uv); free(c->mid);
  c->a = xmalloc(n * 3 * sizeof(float));
  c->b = xmalloc(n * 3 * sizeof(float));
  c->mid = xmalloc(n * 3 * sizeof(float));
  c->uv = xmalloc(n * 2 * sizeof(float));
  c->cap = n;
}

static void to_float(const uint8_t *p, size_t n3, float *o) {
  for (size_t i = 0; i < n3; i++) o[i] = p[i] * (1.0f / 255.0f);
}

double eval_temporal_flickering(const uint8_t *rgb, int F, int H, int W) {
  if (F < 2) return 1;
  size_t n = (size_t)H * W * 3;
  double tot = 0;
  for (int f = 0; f + 1 < F; f++) {
    const uint8_t *a = rgb + (size_t)f * n, *b = a + n;
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s += (uint64_t)abs((int)a[i] - (int)b[i]);
    tot += (double)s / (double)n;
  }
  return (255.0 - tot / (F - 1)) / 255.0;
}

int eval_dynamic_degree(eval_ctx *c, const uint8_t *rgb, int F, int H, int W, double fps,
                        eval_quality *detail) {
  int step = (int)lround(fps / 8.0);
  if (step < 1) step = 1;
  size_t n = (size_t)H * W;
  ctx_grow(c, n);
  int nf = 0;
  for (int f = 0; f < F; f += step) nf++;
  double thres = 6.0 * (H < W ? H : W) / 256.0;
  int count_num = (int)lround(4.0 * nf / 16.0);
  int over = 0, pairs = 0;
  for (int f = 0; f + step < F; f += step) {
    to_float(rgb + (size_t)f * n * 3, n * 3, c->a);
    to_float(rgb + (size_t)(f + step) * n * 3, n * 3, c->b);
    flow_dense(c->ws, &c->fo, c->a, c->b, H, W, 3, c->uv);
    double m = flow_top_mean(c->uv, H, W, 0.05);
    if (detail && pairs < 256) detail->flow_top[pairs] = m;
    if (m > thres) over++;
    pairs++;
  }
  if (detail) {
    detail->n_pairs = pairs;
    detail->dyn_thres = thres;
    detail->dyn_count_num = count_num;
  }
  return over >= count_num ? 1 : 0;
}

double eval_motion_smoothness(eval_ctx *c, const uint8_t *rgb, int F, int H, int W) {
  size_t n = (size_t)H * W;
  ctx_grow(c, n);
  double tot = 0;
  int cnt = 0;
  for (int f = 0; f + 2 < F; f += 2) {
    to_float(rgb + (size_t)f * n * 3, n * 3, c->a);
    to_float(rgb + (size_t)(f + 2) * n * 3, n * 3, c->b);
    flow_dense(c->ws, &c->fo, c->a, c->b, H, W, 3, c->uv);
    flow_midpoint(c->a, c->b, H, W, 3, c->uv, c->mid);
    const uint8_t *odd = rgb + (size_t)(f + 1) * n * 3;
    double s = 0;
    for (size_t i = 0; i < n * 3; i++) {
      double m = floor(c->mid[i] * 255.0 + 0.5);
      if (m > 255) m = 255;
      if (m < 0) m = 0;
      s += fabs(m - odd[i]);
    }
    tot += s / (double)(n * 3);
    cnt++;
  }
  if (!cnt) return 1;
  return (255.0 - tot / cnt) / 255.0;
}

#define DESC_SUB (16 * 16 * 3 + 16 * 8)
#define DESC_BG (8 * 8 * 3 + 3 * 8)
int eval_descriptor_len(int which) { return which ? DESC_BG : DESC_SUB; }

static void l2norm(float *d, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += (double)d[i] * d[i];
  float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0;
  for (int i = 0; i < n; i++) d[i] *= inv;
}

/* Mean over a box of the frame, channel c, levels/255. */
static float box_mean(const uint8_t *fr, int W, int x0, int x1, int y0, int y1, int c) {
  double s = 0;
  int n = 0;
  for (int y = y0; y < y1; y++)
    for (int x = x0; x < x1; x++) { s += fr[((size_t)y * W + x) * 3 + c]; n++; }
  return n ? (float)(s / n / 255.0) : 0;
}

void eval_descriptor(const uint8_t *fr, int H, int W, int which, float *d) {
  if (!which) {
    /* 16x16 colour thumbnail, mean removed per channel */
    int k = 0;
    for (int c = 0; c < 3; c++) {
      float *t = d + c * 256;
      double m = 0;
      for (int gy = 0; gy < 16; gy++)
        for (int gx = 0; gx < 16; gx++) {
          int x0 = gx * W / 16, x1 = (gx + 1) * W / 16, y0 = gy * H / 16, y1 = (gy + 1) * H / 16;
          if (x1 <= x0) x1 = x0 + 1;
          if (y1 <= y0) y1 = y0 + 1;
          t[gy * 16 + gx] = box_mean(fr, W, x0, x1, y0, y1, c);
          m += t[gy * 16 + gx];
        }
      m /= 256;
      for (int i = 0; i < 256; i++) t[i] -= (float)m;
      k += 256;
    }
    /* 4x4 cells x 8 orientation bins of luma gradients (magnitude-weighted) */
    float *g = d + k;
    memset(g, 0, 16 * 8 * sizeof(float));
    for (int y = 1; y < H - 1; y++)
      for (int x = 1; x < W - 1; x++) {
#define LU(yy, xx) (0.299f * fr[((size_t)(yy) * W + (xx)) * 3] + 0.587f * fr[((size_t)(yy) * W + (xx)) * 3 + 1] + 0.114f * fr[((size_t)(yy) * W + (xx)) * 3 + 2])
        float gx = LU(y, x + 1) - LU(y, x - 1), gy = LU(y + 1, x) - LU(y - 1, x);
#undef LU
        float mag = sqrtf(gx * gx + gy * gy) / 255.0f;
        if (mag <= 0) continue;
        double ang = atan2(gy, gx);
        int bin = (int)floor((ang + M_PI) / (2 * M_PI) * 8) & 7;
        int cell = (y * 4 / H) * 4 + (x * 4 / W);
        g[cell * 8 + bin] += mag;
      }
    float s = 0;
    for (int i = 0; i < 128; i++) s += g[i];
    if (s > 0) for (int i = 0; i < 128; i++) g[i] *= 0.5f / s * 16; /* comparable weight */
    l2norm(d, DESC_SUB);
  } else {
    /* border ring as an 8x8 thumbnail (inner 6x6 cells zeroed) and 8-bin colour histograms */
    int bx = W / 8, by = H / 8;
    for (int c = 0; c < 3; c++) {
      float *t = d + c * 64;
      double m = 0;
      int cnt = 0;
      for (int gy = 0; gy < 8; gy++)
        for (int gx = 0; gx < 8; gx++) {
          int ring = gx == 0 || gy == 0 || gx == 7 || gy == 7;
          int x0 = gx * W / 8, x1 = (gx + 1) * W / 8, y0 = gy * H / 8, y1 = (gy + 1) * H / 8;
          if (x1 <= x0) x1 = x0 + 1;
          if (y1 <= y0) y1 = y0 + 1;
          t[gy * 8 + gx] = ring ? box_mean(fr, W, x0, x1, y0, y1, c) : 0;
          if (ring) { m += t[gy * 8 + gx]; cnt++; }
        }
      m /= cnt;
      for (int i = 0; i < 64; i++)
        if (t[i] != 0 || (i / 8 == 0 || i / 8 == 7 || i % 8 == 0 || i % 8 == 7)) t[i] -= (float)m;
    }
    float *h = d + 192;
    memset(h, 0, 24 * sizeof(float));
    int cnt = 0;
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        if (x >= bx && x < W - bx && y >= by && y < H - by) continue;
        for (int c = 0; c < 3; c++) h[c * 8 + (fr[((size_t)y * W + x) * 3 + c] >> 5)] += 1;
        cnt++;
      }
    for (int i = 0; i < 24; i++) h[i] = cnt ? sqrtf(h[i] / cnt) * 0.5f : 0;
    l2norm(d, DESC_BG);
  }
}

double eval_consistency_sum(eval_ctx *c, const uint8_t *rgb, int F, int H, int W, int which) {
  int L = eval_descriptor_len(which);
  float *d0 = xmalloc((size_t)L * sizeof(float)), *dp = xmalloc((size_t)L * sizeof(float)),
        *di = xmalloc((size_t)L * sizeof(float));
  size_t fs = (size_t)H * W * 3;
  eval_descriptor(rgb, H, W, which, d0);
  memcpy(dp, d0, (size_t)L * sizeof(float));
  double sum = 0;
  for (int f = 1; f < F; f++) {
    eval_descriptor(rgb + f * fs, H, W, which, di);
    double c1 = 0, c0 = 0;
    for (int i = 0; i < L; i++) { c1 += (double)dp[i] * di[i]; c0 += (double)d0[i] * di[i]; }
    sum += (fmax(0, c1) + fmax(0, c0)) / 2;
    memcpy(dp, di, (size_t)L * sizeof(float));
  }
  free(d0); free(dp); free(di);
  (void)c;
  return sum;
}

double eval_noise_sigma(const float *l, int H, int W) {
  if (H < 3 || W < 3) return 0;
  double s = 0;
  for (int y = 1; y < H - 1; y++)
    for (int x = 1; x < W - 1; x++) {
      const float *p = l + (size_t)y * W + x;
      double a = p[-W - 1] - 2 * p[-W] + p[-W + 1] - 2 * p[-1] + 4 * p[0] - 2 * p[1] + p[W - 1] - 2 * p[W] + p[W + 1];
      s += fabs(a);
    }
  return s * sqrt(M_PI / 2) / (6.0 * (W - 2) * (H - 2));
}

static int cmpf(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

double eval_imaging_quality(const uint8_t *rgb, int F, int H, int W, double *sharp_out,
                            double *noise_out) {
  size_t n = (size_t)H * W;
  float *l = xmalloc(n * sizeof(float)), *g = xmalloc(n * sizeof(float)), *ls = xmalloc(n * sizeof(float));
  double sh = 0, ns = 0;
  int step = F > 4 ? F / 4 : 1, cnt = 0;
  for (int f = 0; f < F; f += step) {
    const uint8_t *fr = rgb + (size_t)f * n * 3;
    for (size_t i = 0; i < n; i++) l[i] = 0.299f * fr[3 * i] + 0.587f * fr[3 * i + 1] + 0.114f * fr[3 * i + 2];
    size_t m = 0;
    for (int y = 1; y < H - 1; y++)
      for (int x = 1; x < W - 1; x++) {
        size_t i = (size_t)y * W + x;
        float gx = 0.5f * (l[i + 1] - l[i - 1]), gy = 0.5f * (l[i + W] - l[i - W]);
        g[m++] = sqrtf(gx * gx + gy * gy);
      }
    memcpy(ls, l, n * sizeof(float));
    qsort(ls, n, sizeof(float), cmpf);
    float range = ls[(size_t)(0.99 * (n - 1))] - ls[(size_t)(0.01 * (n - 1))];
    qsort(g, m, sizeof(float), cmpf);
    float g99 = m ? g[(size_t)(0.99 * (m - 1))] : 0;
    double s = range > 8 ? fmin(1.0, g99 / (0.5 * range)) : 0;
    sh += s;
    ns += eval_noise_sigma(l, H, W);
    cnt++;
  }
  free(l); free(g); free(ls);
  sh /= cnt;
  ns /= cnt;
  if (sharp_out) *sharp_out = sh;
  if (noise_out) *noise_out = ns;
  return sh * exp(-ns / 10.0);
}

double eval_aesthetic_quality(const uint8_t *rgb, int F, int H, int W, double *fit_out) {
  world_read r;
  int Fr = F < 2 ? F : 2;
  double drift[3] = {0, 0, 0}, noise = 0;
  if (world_read_video_u8(rgb, Fr, H, W, 8, NULL, &r) == TB_OK) {
    memcpy(drift, r.drift, sizeof drift);
    noise = r.noise;
    world_read_free(&r);
  }
  uint8_t pal[SCENE_COLOUR_COUNT][3], bgs[SCENE_BG_COUNT + 2][3];
  for (int c = 0; c < SCENE_COLOUR_COUNT; c++) scene_colour_rgb((scene_colour)c, pal[c]);
  int nb = 0;
  for (int b = 0; b < SCENE_BG_COUNT; b++)
    if (b != SCENE_BG_CHECKERED) scene_bg_rgb((scene_bg)b, bgs[nb++]);
  memset(bgs[nb++], 90, 3);
  memset(bgs[nb++], 130, 3);
  size_t n = (size_t)H * W;
  long fit = 0, tot = 0;
  int step = F > 4 ? F / 4 : 1;
  for (int f = 0; f < F; f += step) {
    const uint8_t *fr = rgb + (size_t)f * n * 3;
    for (size_t i = 0; i < n; i += 2) {
      float q[3] = {fr[3 * i] - (float)drift[0], fr[3 * i + 1] - (float)drift[1], fr[3 * i + 2] - (float)drift[2]};
      float best = 1e30f;
      for (int b = 0; b < nb && best > 576; b++) {
        float d0 = q[0] - bgs[b][0], d1 = q[1] - bgs[b][1], d2 = q[2] - bgs[b][2];
        float e = d0 * d0 + d1 * d1 + d2 * d2;
        if (e < best) best = e;
        for (int c = 0; c < SCENE_COLOUR_COUNT && best > 576; c++) {
          float v0 = pal[c][0] - bgs[b][0], v1 = pal[c][1] - bgs[b][1], v2 = pal[c][2] - bgs[b][2];
          float vv = v0 * v0 + v1 * v1 + v2 * v2;
          float a = vv > 0 ? (d0 * v0 + d1 * v1 + d2 * v2) / vv : 0;
          if (a < 0) a = 0;
          if (a > 1) a = 1;
          float e0 = d0 - a * v0, e1 = d1 - a * v1, e2 = d2 - a * v2;
          float ee = e0 * e0 + e1 * e1 + e2 * e2;
          if (ee < best) best = ee;
        }
      }
      fit += best <= 576; /* within 24 levels */
      tot++;
    }
  }
  double pf = tot ? (double)fit / tot : 0;
  if (fit_out) *fit_out = pf;
  return pf * exp(-noise / 20.0);
}

int eval_quality_video(eval_ctx *c, const uint8_t *rgb, int F, int H, int W, double fps,
                       eval_quality *q) {
  memset(q, 0, sizeof *q);
  if (!c || !rgb) return err_set("eval: NULL context or frames");
  if (F < 2) return err_set("eval: %d frames (at least 2)", F);
  if (H < 8 || W < 8) return err_set("eval: frame size %dx%d (at least 8x8)", W, H);
  if (!(fps > 0)) return err_set("eval: fps %g (must be > 0)", fps);
  q->value[EVAL_SUBJECT_CONSISTENCY] = eval_consistency_sum(c, rgb, F, H, W, 0) / (F - 1);
  q->weight[EVAL_SUBJECT_CONSISTENCY] = F - 1;
  q->value[EVAL_BACKGROUND_CONSISTENCY] = eval_consistency_sum(c, rgb, F, H, W, 1) / (F - 1);
  q->weight[EVAL_BACKGROUND_CONSISTENCY] = F - 1;
  q->value[EVAL_TEMPORAL_FLICKERING] = eval_temporal_flickering(rgb, F, H, W);
  q->weight[EVAL_TEMPORAL_FLICKERING] = 1;
  q->value[EVAL_MOTION_SMOOTHNESS] = eval_motion_smoothness(c, rgb, F, H, W);
  q->weight[EVAL_MOTION_SMOOTHNESS] = F >= 3;
  q->value[EVAL_DYNAMIC_DEGREE] = eval_dynamic_degree(c, rgb, F, H, W, fps, q);
  q->weight[EVAL_DYNAMIC_DEGREE] = 1;
  q->value[EVAL_AESTHETIC_QUALITY] = eval_aesthetic_quality(rgb, F, H, W, &q->palette_fit);
  q->weight[EVAL_AESTHETIC_QUALITY] = 1;
  q->value[EVAL_IMAGING_QUALITY] = eval_imaging_quality(rgb, F, H, W, &q->sharpness, &q->noise_sigma);
  q->weight[EVAL_IMAGING_QUALITY] = 1;
  return TB_OK;
}

/* ---- semantic ------------------------------------------------------------------------------ */

/* Value of read object j's attribute k under pan hypothesis p; −2 when unread. */
static int obj_val(const world_read *r, int j, int k, int p) {
  const world_object_read *o = &r->obj[j];
  if (k == WORLD_ATTR_MOTION || k == WORLD_ATTR_SPEED) {
    if (o->st[WORLD_ATTR_MOTION].status == WORLD_FAIL && o->value[WORLD_ATTR_MOTION] < 0) return -2;
    if (!(r->pan_hyps >> p & 1)) return -2;
    return k == WORLD_ATTR_MOTION ? r->hyp[p].motion[j] : r->hyp[p].speed[j];
  }
  return o->st[k].status == WORLD_OK ? o->value[k] : -2;
}

static int spec_val(const world_spec_object *s, int k) {
  switch (k) {
  case WORLD_ATTR_COLOUR: return s->colour;
  case WORLD_ATTR_SHAPE: return s->shape;
  case WORLD_ATTR_SIZE: return s->size;
  case WORLD_ATTR_MOTION: return s->motion;
  default: return s->speed;
  }
}

static const char *const ATTR_NAMES[WORLD_OBJ_ATTR_COUNT] = {"colour", "shape", "size", "motion", "speed"};

/* Agreements of spec object i with read object j under pan p. */
static int agree(const world_read *r, const world_spec *s, int i, int j, int p) {
  int a = 0;
  for (int k = 0; k < WORLD_OBJ_ATTR_COUNT; k++) {
    int sv = spec_val(&s->obj[i], k);
    if (sv < 0) continue;
    a += obj_val(r, j, k, p) == sv;
  }
  return a;
}

int eval_semantic_video(const world_read *r, const world_spec *s, eval_semantic *out) {
  memset(out, 0, sizeof *out);
  if (!r || !s) return err_set("eval_semantic_video: NULL read or spec");
  if (s->n_objects < 1 || s->n_objects > 2) return err_set("spec: %d objects (1 or 2)", s->n_objects);
  for (int i = 0; i < s->n_objects; i++) {
    const world_spec_object *o = &s->obj[i];
    if (o->colour >= SCENE_COLOUR_COUNT || o->shape >= SCENE_SHAPE_COUNT || o->size >= SCENE_SIZE_COUNT ||
        o->motion >= SCENE_MOTION_COUNT || o->speed >= SCENE_SPEED_COUNT)
      return err_set("spec object %d: value out of range", i);
  }
  if (s->bg >= SCENE_BG_COUNT || s->pan >= SCENE_PAN_COUNT || s->relation >= SCENE_REL_COUNT)
    return err_set("spec: background, pan or relation out of range");
  int N = s->n_objects, M = r->n_objects;
  /* pan hypothesis: the spec's own when it fits, else the read one */
  int pan = r->st[WORLD_ATTR_PAN].status == WORLD_OK ? r->value[WORLD_ATTR_PAN] : SCENE_PAN_NONE;
  if (s->pan >= 0 && (r->pan_hyps >> s->pan & 1)) pan = s->pan;
  else if (!(r->pan_hyps >> pan & 1)) {
    for (int p = 0; p < SCENE_PAN_COUNT; p++) if (r->pan_hyps >> p & 1) { pan = p; break; }
  }
  out->pan_hyp = pan;
  /* best injective assignment */
  int best[2] = {-1, -1}, bscore = -1;
  for (int a = -1; a < M; a++)
    for (int b = -1; b < (N == 2 ? M : 0); b++) {
      if (N == 2 && a >= 0 && a == b) continue;
      int sc = (a >= 0 ? 1 + agree(r, s, 0, a, pan) : 0) + (N == 2 && b >= 0 ? 1 + agree(r, s, 1, b, pan) : 0);
      if (sc > bscore) { bscore = sc; best[0] = a; best[1] = N == 2 ? b : -1; }
    }
  out->match[0] = best[0];
  out->match[1] = best[1];
  for (int d = 0; d < EVAL_DIM_COUNT; d++) out->status[d] = WORLD_NA;
  for (int d = 0; d < EVAL_SEMANTIC_FIRST; d++) snprintf(out->reason[d], WORLD_REASON_MAX, "quality dimension");
  /* per-object attribute checks */
  int allok = 1, nspec = 0;
  char first_fail[WORLD_REASON_MAX] = "";
#define FAILNOTE(s_) do { if (!first_fail[0]) { strncpy(first_fail, (s_), sizeof first_fail - 1); first_fail[sizeof first_fail - 1] = 0; } } while (0)
  double per[WORLD_OBJ_ATTR_COUNT] = {0};
  int pern[WORLD_OBJ_ATTR_COUNT] = {0};
  char reason_attr[WORLD_OBJ_ATTR_COUNT][WORLD_REASON_MAX];
  memset(reason_attr, 0, sizeof reason_attr);
  for (int i = 0; i < N; i++) {
    int j = out->match[i];
    for (int k = 0; k < WORLD_OBJ_ATTR_COUNT; k++) {
      int sv = spec_val(&s->obj[i], k);
      if (sv < 0) continue;
      nspec++;
      pern[k]++;
      int rv = j >= 0 ? obj_val(r, j, k, pan) : -2;
      if (rv == sv) { per[k] += 1; continue; }
      allok = 0;
      if (j < 0) snprintf(reason_attr[k], WORLD_REASON_MAX, "obj %d: not found", i);
      else if (rv == -2) snprintf(reason_attr[k], WORLD_REASON_MAX, "obj %d %s: %s", i, ATTR_NAMES[k], r->obj[j].st[k].reason[0] ? r->obj[j].st[k].reason : "not read");
      else snprintf(reason_attr[k], WORLD_REASON_MAX, "obj %d %s: read %d, asked %d", i, ATTR_NAMES[k], rv, sv);
      FAILNOTE(reason_attr[k]);
    }
  }
#define SETDIM(d, v, why) do { out->status[d] = WORLD_OK; out->value[d] = (v); snprintf(out->reason[d], WORLD_REASON_MAX, "%s", (v) < 1 ? (why) : ""); } while (0)
  if (pern[WORLD_ATTR_SHAPE]) SETDIM(EVAL_OBJECT_CLASS, per[WORLD_ATTR_SHAPE] / pern[WORLD_ATTR_SHAPE], reason_attr[WORLD_ATTR_SHAPE]);
  if (pern[WORLD_ATTR_COLOUR]) SETDIM(EVAL_COLOR, per[WORLD_ATTR_COLOUR] / pern[WORLD_ATTR_COLOUR], reason_attr[WORLD_ATTR_COLOUR]);
  if (pern[WORLD_ATTR_MOTION]) SETDIM(EVAL_HUMAN_ACTION, per[WORLD_ATTR_MOTION] / pern[WORLD_ATTR_MOTION], reason_attr[WORLD_ATTR_MOTION]);
  if (pern[WORLD_ATTR_SIZE]) SETDIM(EVAL_APPEARANCE_STYLE, per[WORLD_ATTR_SIZE] / pern[WORLD_ATTR_SIZE], reason_attr[WORLD_ATTR_SIZE]);
  if (N == 2) {
    int both = 1;
    for (int i = 0; i < 2; i++) {
      int j = out->match[i];
      if (j < 0) { both = 0; continue; }
      if (s->obj[i].colour >= 0 && obj_val(r, j, WORLD_ATTR_COLOUR, pan) != s->obj[i].colour) both = 0;
      if (s->obj[i].shape >= 0 && obj_val(r, j, WORLD_ATTR_SHAPE, pan) != s->obj[i].shape) both = 0;
    }
    SETDIM(EVAL_MULTIPLE_OBJECTS, both ? 1.0 : 0.0, "an object is missing or has another colour or shape");
  }
  int rel = SCENE_REL_NONE;
  if (N == 2 && s->relation > 0) {
    rel = out->match[0] >= 0 && out->match[1] >= 0 ? (int)world_relation(r, out->match[0], out->match[1]) : SCENE_REL_NONE;
    SETDIM(EVAL_SPATIAL_RELATIONSHIP, rel == s->relation ? 1.0 : 0.0, rel == SCENE_REL_NONE ? "relation not read" : "another relation");
    nspec++;
    if (rel != s->relation) { allok = 0; FAILNOTE("relation"); }
  }
  if (s->bg >= 0) {
    int ok = r->st[WORLD_ATTR_BACKGROUND].status == WORLD_OK && r->value[WORLD_ATTR_BACKGROUND] == s->bg;
    SETDIM(EVAL_SCENE, ok ? 1.0 : 0.0, r->st[WORLD_ATTR_BACKGROUND].status == WORLD_OK ? "another background" : r->st[WORLD_ATTR_BACKGROUND].reason);
    nspec++;
    if (!ok) { allok = 0; FAILNOTE("background"); }
  }
  {
    double ts = 0;
    int tn = 0;
    if (s->pan >= 0) { tn++; nspec++; if (r->pan_hyps >> s->pan & 1) ts += 1; else { allok = 0; FAILNOTE("camera pan"); } }
    if (pern[WORLD_ATTR_SPEED]) { tn += pern[WORLD_ATTR_SPEED]; ts += per[WORLD_ATTR_SPEED]; }
    if (tn) SETDIM(EVAL_TEMPORAL_STYLE, ts / tn, s->pan >= 0 && !(r->pan_hyps >> s->pan & 1) ? "camera pan" : reason_attr[WORLD_ATTR_SPEED]);
  }
  if (nspec) SETDIM(EVAL_OVERALL_CONSISTENCY, allok ? 1.0 : 0.0, first_fail);
  /* CompBench: consistent attribute binding */
  {
    static const double MAP[4][4] = {{5, 4.5, 3.5, 3}, {4.5, 4, 2.8, 2.5}, {3.5, 2.8, 2, 1.5}, {3, 2.5, 1.5, 1}};
    int g[2];
    for (int i = 0; i < N; i++) {
      int j = out->match[i];
      if (j < 0) { g[i] = 3; continue; }
      int ok = 1;
      for (int k = WORLD_ATTR_COLOUR; k <= WORLD_ATTR_SIZE; k++) {
        int sv = spec_val(&s->obj[i], k);
        if (sv >= 0 && obj_val(r, j, k, pan) != sv) ok = 0;
      }
      g[i] = !ok ? 2 : r->obj[j].frames_seen >= 0.8 * r->frames ? 0 : 1;
    }
    if (N == 1) g[1] = g[0];
    double sc = MAP[g[0]][g[1]];
    SETDIM(EVAL_CB_CONSISTENT_ATTR, (sc - 1) / 4, "an object's colour, shape or size differs, or it is missing");
  }
  /* CompBench: spatial, first frame */
  if (N == 2 && s->relation > 0) {
    int a = out->match[0], b = out->match[1];
    int ina = a >= 0 && r->obj[a].track[0].visible, inb = b >= 0 && r->obj[b].track[0].visible;
    double v;
    if (!ina && !inb) v = 0;
    else if (!ina || !inb) v = 0.2;
    else if (rel != s->relation) v = 0.4;
    else {
      const world_track_frame *p = &r->obj[a].track[0], *q = &r->obj[b].track[0];
      double ix = fmax(0, fmin(p->x1, q->x1) - fmax(p->x0, q->x0)), iy = fmax(0, fmin(p->y1, q->y1) - fmax(p->y0, q->y0));
      double inter = ix * iy, un = (p->x1 - p->x0) * (p->y1 - p->y0) + (q->x1 - q->x0) * (q->y1 - q->y0) - inter;
      v = 0.4 + 0.6 * (1 - (un > 0 ? inter / un : 0));
    }
    SETDIM(EVAL_CB_SPATIAL, v, "relation wrong or an object missing");
  }
  /* CompBench: motion binding (background-relative displacement) */
  {
    double sc[2];
    int right[2], nm = 0;
    double bgx = r->pan_hyps >> pan & 1 ? (pan == SCENE_PAN_LEFT ? SCENE_WPS_SLOW : pan == SCENE_PAN_RIGHT ? -SCENE_WPS_SLOW : 0) : 0;
    if (r->bg_textured) bgx = r->bg_vx;
    for (int i = 0; i < N; i++) {
      int m = s->obj[i].motion;
      if (m <= SCENE_MOTION_STILL) continue;
      int j = out->match[i];
      double v = -1;
      int ok = 0;
      if (j >= 0) {
        int f0 = -1, f1 = -1;
        for (int f = 0; f < r->frames; f++) if (r->obj[j].track[f].visible) { if (f0 < 0) f0 = f; f1 = f; }
        if (f0 >= 0) {
          double dt = (f1 - f0) / r->fps;
          double dx = r->obj[j].track[f1].x - r->obj[j].track[f0].x - bgx * r->width * dt;
          double dy = r->obj[j].track[f1].y - r->obj[j].track[f0].y;
          double net = m == SCENE_MOTION_LEFT ? -dx / r->width : m == SCENE_MOTION_RIGHT ? dx / r->width
                     : m == SCENE_MOTION_UP ? -dy / r->height : dy / r->height;
          ok = net > 0;
          v = ok ? net : 0;
        }
      }
      sc[nm] = v;
      right[nm] = ok;
      nm++;
    }
    if (nm) {
      double s2;
      if (nm == 1) s2 = sc[0];
      else if (sc[0] < 0 && sc[1] < 0) s2 = -1;
      else if (right[0] && right[1]) s2 = 0.5 * (sc[0] + sc[1]);
      else s2 = 0.5 * (right[0] ? sc[0] : right[1] ? sc[1] : 0);
      SETDIM(EVAL_CB_MOTION, s2 < 0 ? 0 : 0.2 + 0.8 * s2, "CompBench scale: net displacement / frame size");
    } else {
      snprintf(out->reason[EVAL_CB_MOTION], WORLD_REASON_MAX, "no object of the prompt moves");
    }
  }
  /* CompBench: action binding */
  {
    int p = 0, a = 0;
    for (int i = 0; i < N; i++) {
      int j = out->match[i];
      if (j < 0) continue;
      p++;
      int ok = 1;
      if (s->obj[i].motion >= 0 && obj_val(r, j, WORLD_ATTR_MOTION, pan) != s->obj[i].motion) ok = 0;
      if (s->obj[i].speed >= 0 && obj_val(r, j, WORLD_ATTR_SPEED, pan) != s->obj[i].speed) ok = 0;
      a += ok;
    }
    double v;
    if (N == 2) v = p == 2 ? (a == 2 ? 5 : a == 1 ? 4 : 3) : p == 1 ? (a ? 2 : 1) : 0;
    else v = p ? (a ? 5 : 3) : 0;
    SETDIM(EVAL_CB_ACTION, v / 5, "an object missing or its action differs");
  }
  /* CompBench: numeracy, per frame */
  {
    double tot = 0;
    for (int f = 0; f < r->frames; f++) {
      double fs = 0;
      for (int i = 0; i < N; i++) {
        int cnt = 0;
        for (int j = 0; j < M; j++) {
          if (!r->obj[j].track[f].visible) continue;
          int okc = s->obj[i].colour < 0 || (r->obj[j].st[WORLD_ATTR_COLOUR].status == WORLD_OK && r->obj[j].value[WORLD_ATTR_COLOUR] == s->obj[i].colour);
          int oks = s->obj[i].shape < 0 || (r->obj[j].st[WORLD_ATTR_SHAPE].status == WORLD_OK && r->obj[j].value[WORLD_ATTR_SHAPE] == s->obj[i].shape);
          cnt += okc && oks;
        }
        if (cnt == 1) fs += 1.0 / N;
      }
      tot += fs;
    }
    SETDIM(EVAL_CB_NUMERACY, r->frames ? tot / r->frames : 0, "count differs in some frames");
  }
  snprintf(out->reason[EVAL_CB_DYNAMIC_ATTR], WORLD_REASON_MAX, "%s", eval_dim_na_reason(EVAL_CB_DYNAMIC_ATTR));
  snprintf(out->reason[EVAL_CB_INTERACTION], WORLD_REASON_MAX, "%s", eval_dim_na_reason(EVAL_CB_INTERACTION));
  return TB_OK;
}

/* ---- pooling ----------------------------------------------------------------------------- */

void eval_acc_init(eval_acc *a) { memset(a, 0, sizeof *a); }
void eval_acc_add_quality(eval_acc *a, const eval_quality *q) {
  for (int d = 0; d < EVAL_QUALITY_COUNT; d++) {
    if (q->weight[d] <= 0) continue;
    a->sum[d] += q->value[d] * q->weight[d];
    a->wsum[d] += q->weight[d];
    a->n[d]++;
  }
}
void eval_acc_add_semantic(eval_acc *a, const eval_semantic *s) {
  for (int d = EVAL_SEMANTIC_FIRST; d < EVAL_DIM_COUNT; d++) {
    if (s->status[d] != WORLD_OK) continue;
    a->sum[d] += s->value[d];
    a->wsum[d] += 1;
    a->n[d]++;
  }
}
double eval_acc_value(const eval_acc *a, eval_dim d) {
  if ((unsigned)d >= EVAL_DIM_COUNT || a->wsum[d] <= 0) return NAN;
  return a->sum[d] / a->wsum[d];
}

void eval_vbench_totals(const double *raw, const int *have, int clamp, eval_totals *out) {
  double qs = 0, ss = 0;
  int qn = 0, sn = 0;
  for (int d = 0; d < EVAL_VBENCH_COUNT; d++) {
    if (!have[d]) { out->norm[d] = NAN; continue; }
    double mn, mx, w;
    eval_vbench_constants((eval_dim)d, &mn, &mx, &w);
    double n = eval_vbench_normalise((eval_dim)d, raw[d]);
    if (clamp) n = fmin(fmax(n, 0), w);
    out->norm[d] = n;
    if (d < EVAL_QUALITY_COUNT) { qs += n; qn++; }
    else { ss += n; sn++; }
  }
  out->quality_dims = qn;
  out->semantic_dims = sn;
  out->quality = qn == EVAL_QUALITY_COUNT ? qs / 6.5 : NAN;
  out->semantic = sn == EVAL_SEMANTIC_COUNT ? ss / 9.0 : NAN;
  out->total = (isnan(out->quality) || isnan(out->semantic)) ? NAN : (4 * out->quality + out->semantic) / 5;
}

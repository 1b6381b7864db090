/* stages/synth/render.c — a planned clip's pixels (scene, then watermark, flicker, low quality),
 * its encoding, and the damage done to broken files. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "stages/synth/synth.h"

struct synth_work {
  int index;          /* clip the buffers belong to */
  uint8_t *wm_mask;   /* (H, W): 0 nothing, 1 block, 2 stroke */
  float *blur_tmp;    /* (H, W, 3) */
  float *kernel;      /* blur taps, 2 * radius + 1 */
  int radius;
  scene_rng noise;    /* pixel noise, continues from frame to frame */
  int next_frame;     /* frame the noise stream is positioned for */
};

#define WM_BLOCK_LEVEL 235.0  /* light block */
#define WM_STROKE_LEVEL 60.0  /* dark strokes that read as text */

void synth_work_free(synth_work *w) {
  if (!w) return;
  free(w->wm_mask);
  free(w->blur_tmp);
  free(w->kernel);
  free(w);
}

/* Glyphs made of 2–5 of seven segments (a seven-segment digit's), in cells across the block. */
static void watermark_mask(const clip_plan *p, uint8_t *mask) {
  int W = p->width;
  memset(mask, 0, (size_t)W * p->height);
  for (int y = p->wm.y; y < p->wm.y + p->wm.h; y++)
    for (int x = p->wm.x; x < p->wm.x + p->wm.w; x++)
      if (x >= 0 && x < W && y >= 0 && y < p->height) mask[(size_t)W * y + x] = 1;
  scene_rng r;
  scene_rng_seed(&r, p->wm.glyph_seed, 0, 0);
  int pad = p->wm.h / 5 > 1 ? p->wm.h / 5 : 1;
  int th = p->wm.h / 8 > 1 ? p->wm.h / 8 : 1; /* stroke thickness */
  int cell = (p->wm.w - pad) / p->wm.glyphs;
  int gh = p->wm.h - 2 * pad, gw = cell - pad;
  if (gw < 2 * th + 1 || gh < 2 * th + 1) return; /* too small for strokes: a plain block */
  for (int g = 0; g < p->wm.glyphs; g++) {
    int x0 = p->wm.x + pad + g * cell, y0 = p->wm.y + pad;
    int segs = 0;
    while (__builtin_popcount((unsigned)segs) < 2) segs = (int)(scene_rng_u64(&r) & 0x7f);
    for (int s = 0; s < 7; s++) {
      if (!(segs & (1 << s))) continue;
      int ax, ay, bw, bh; /* segment rectangle */
      switch (s) {
      case 0: ax = x0; ay = y0; bw = gw; bh = th; break;                       /* top */
      case 1: ax = x0; ay = y0 + (gh - th) / 2; bw = gw; bh = th; break;       /* middle */
      case 2: ax = x0; ay = y0 + gh - th; bw = gw; bh = th; break;             /* bottom */
      case 3: ax = x0; ay = y0; bw = th; bh = gh / 2; break;                   /* upper left */
      case 4: ax = x0; ay = y0 + gh / 2; bw = th; bh = gh - gh / 2; break;     /* lower left */
      case 5: ax = x0 + gw - th; ay = y0; bw = th; bh = gh / 2; break;         /* upper right */
      default: ax = x0 + gw - th; ay = y0 + gh / 2; bw = th; bh = gh - gh / 2; break;
      }
      for (int y = ay; y < ay + bh; y++)
        for (int x = ax; x < ax + bw; x++)
          if (x >= 0 && x < W && y >= 0 && y < p->height) mask[(size_t)W * y + x] = 2;
    }
  }
}

static synth_work *work_for(const synth_cfg *cfg, const clip_plan *p, synth_work **slot) {
  synth_work *w = *slot;
  if (w && w->index == p->index) return w;
  synth_work_free(w);
  w = xcalloc(1, sizeof *w);
  w->index = p->index;
  size_t n = (size_t)p->width * p->height;
  if (p->flaws & (1u << FLAW_WATERMARK)) {
    w->wm_mask = xmalloc(n);
    watermark_mask(p, w->wm_mask);
  }
  if ((p->flaws & (1u << FLAW_LOW_QUALITY)) && p->lowq_blur) {
    w->blur_tmp = xmalloc(sizeof(float) * 3 * n);
    w->radius = (int)ceil(3.0 * p->lowq_sigma);
    if (w->radius < 1) w->radius = 1;
    w->kernel = xmalloc(sizeof(float) * (size_t)(2 * w->radius + 1));
    double sum = 0;
    for (int k = -w->radius; k <= w->radius; k++)
      sum += exp(-0.5 * k * k / (p->lowq_sigma * p->lowq_sigma));
    for (int k = -w->radius; k <= w->radius; k++)
      w->kernel[k + w->radius] = (float)(exp(-0.5 * k * k / (p->lowq_sigma * p->lowq_sigma)) / sum);
  }
  scene_rng_seed(&w->noise, cfg->seed, (uint64_t)p->index, SCENE_STREAM_PIXELS);
  w->next_frame = 0;
  *slot = w;
  return w;
}

static uint8_t clamp_u8(double v) { return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)(v + 0.5); }

/* Separable Gaussian, edges clamped. */
static void blur_frame(synth_work *w, int W, int H, uint8_t *rgb) {
  int R = w->radius;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int c = 0; c < 3; c++) {
        float s = 0;
        for (int k = -R; k <= R; k++) {
          int xx = x + k < 0 ? 0 : x + k >= W ? W - 1 : x + k;
          s += w->kernel[k + R] * rgb[3 * ((size_t)W * y + xx) + c];
        }
        w->blur_tmp[3 * ((size_t)W * y + x) + c] = s;
      }
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int c = 0; c < 3; c++) {
        float s = 0;
        for (int k = -R; k <= R; k++) {
          int yy = y + k < 0 ? 0 : y + k >= H ? H - 1 : y + k;
          s += w->kernel[k + R] * w->blur_tmp[3 * ((size_t)W * yy + x) + c];
        }
        rgb[3 * ((size_t)W * y + x) + c] = clamp_u8(s);
      }
}

void synth_render_frame(const synth_cfg *cfg, const clip_plan *p, int f, uint8_t *rgb,
                        synth_work **slot) {
  synth_work *w = work_for(cfg, p, slot);
  int W = p->width, H = p->height;
  size_t n = (size_t)W * H;
  int cut = (p->flaws & (1u << FLAW_SHOT_CUT)) && f >= p->cut_frame;
  const scene *s = cut ? &p->cut : &p->sc;
  int local = cut ? f - p->cut_frame : f;
  double t = (p->flaws & (1u << FLAW_STATIC)) ? 0.0 : (double)local / p->fps;
  scene_render(s, t, rgb);
  if (w->wm_mask) {
    double a = p->wm.alpha;
    for (size_t i = 0; i < n; i++) {
      if (!w->wm_mask[i]) continue;
      double level = w->wm_mask[i] == 2 ? WM_STROKE_LEVEL : WM_BLOCK_LEVEL;
      for (int c = 0; c < 3; c++) rgb[3 * i + c] = clamp_u8(rgb[3 * i + c] * (1 - a) + level * a);
    }
  }
  if (p->flaws & (1u << FLAW_FLICKER)) {
    double g = p->gains[f];
    for (size_t i = 0; i < 3 * n; i++) rgb[i] = clamp_u8(rgb[i] * g);
  }
  if (p->flaws & (1u << FLAW_LOW_QUALITY)) {
    if (p->lowq_blur) {
      blur_frame(w, W, H, rgb);
    } else {
      /* the noise stream is sequential: frames must be asked for in order */
      TB_CHECKF(f == w->next_frame, "noise frames out of order (%d, expected %d)", f, w->next_frame);
      for (size_t i = 0; i < 3 * n; i++)
        rgb[i] = clamp_u8(rgb[i] + p->lowq_sigma * scene_rng_normal(&w->noise));
    }
  }
  w->next_frame = f + 1;
}

/* ---- broken files ---------------------------------------------------------------------------- */

static uint32_t be32(const unsigned char *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Offset of the top-level box of type `type` in an ISO-BMFF file, or -1. */
static int64_t find_box(const unsigned char *d, size_t n, const char *type) {
  size_t off = 0;
  while (off + 8 <= n) {
    uint64_t size = be32(d + off);
    if (size == 1 && off + 16 <= n)
      size = (uint64_t)be32(d + off + 8) << 32 | be32(d + off + 12);
    else if (size == 0)
      size = n - off;
    if (memcmp(d + off + 4, type, 4) == 0) return (int64_t)off;
    if (size < 8) return -1;
    off += size;
  }
  return -1;
}

int synth_break_file(const clip_plan *p, const char *path) {
  char *data = NULL;
  size_t n = 0;
  if (fs_read_all(path, &data, &n) != TB_OK) return TB_ERR;
  unsigned char *d = (unsigned char *)data;
  int64_t moov = find_box(d, n, "moov");
  scene_rng r;
  scene_rng_seed(&r, (uint64_t)p->index, 0x6272, 0); /* damage pattern: fixed per clip */
  int rc = TB_OK;
  if (!p->broken_corrupt) {
    /* cut inside the media data, before the index: the demuxer finds no moov box */
    size_t keep = (size_t)((double)(moov > 0 ? (size_t)moov : n) * p->broken_fraction);
    if (keep < 16) keep = 16;
    if (keep >= n) keep = n / 2;
    if (truncate(path, (off_t)keep) != 0) rc = err_set("truncate %s: %s", path, strerror(errno));
  } else {
    /* rename the moov box to an unknown type and scramble its first child (mvhd): the file
     * keeps its length but has no index any more */
    if (moov < 0) moov = 0;
    size_t start = (size_t)moov + 4, end = start + 72 < n ? start + 72 : n;
    for (size_t i = start; i < end; i++) d[i] = (unsigned char)scene_rng_u64(&r);
    if (end - start >= 4 && memcmp(d + start, "moov", 4) == 0) d[start] ^= 0x20;
    rc = fs_write_atomic(path, d, n);
  }
  free(data);
  return rc;
}

/* ---- one clip --------------------------------------------------------------------------------- */

int synth_render_clip(const synth_cfg *cfg, const clip_plan *p, const char *tmp_path,
                      const char *final_path) {
  video_enc_opts o = cfg->enc;
  o.format = "mp4"; /* the temporary name does not end in .mp4 */
  video_enc *e = video_enc_open(tmp_path, p->width, p->height, p->fps, &o);
  if (!e) return err_wrap("clip %d: ", p->index);
  uint8_t *rgb = xmalloc((size_t)3 * p->width * p->height);
  synth_work *work = NULL;
  int rc = TB_OK;
  for (int f = 0; f < p->frames && rc == TB_OK; f++) {
    synth_render_frame(cfg, p, f, rgb, &work);
    rc = video_enc_write_rgb(e, rgb, 3 * p->width);
  }
  free(rgb);
  synth_work_free(work);
  if (rc != TB_OK) {
    video_enc_abort(e);
    return err_wrap("clip %d: ", p->index);
  }
  if (video_enc_close(e) != TB_OK) {
    unlink(tmp_path);
    return err_wrap("clip %d: ", p->index);
  }
  if ((p->flaws & (1u << FLAW_BROKEN)) && synth_break_file(p, tmp_path) != TB_OK) {
    unlink(tmp_path);
    return err_wrap("clip %d: ", p->index);
  }
  if (rename(tmp_path, final_path) != 0) {
    int e2 = errno;
    unlink(tmp_path);
    return err_set("clip %d: rename %s: %s", p->index, final_path, strerror(e2));
  }
  return TB_OK;
}

/* kernels/world/degrade.c — blur, noise, colour shift, zoomed crop, flicker (degrade.h). */
#include "kernels/world/degrade.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/scene.h"

static uint8_t clamp_u8(double v) {
  if (!(v > 0)) return 0;
  if (v > 255) return 255;
  return (uint8_t)lrint(v);
}

void degrade_blur(uint8_t *rgb, int F, int H, int W, double sigma) {
  if (!(sigma > 0)) return;
  int R = (int)ceil(3 * sigma);
  double *k = xcalloc((size_t)(2 * R + 1), sizeof(double)), ks = 0;
  for (int i = -R; i <= R; i++) ks += k[i + R] = exp(-0.5 * i * i / (sigma * sigma));
  for (int i = 0; i <= 2 * R; i++) k[i] /= ks;
  size_t n = (size_t)H * W * 3;
  double *a = xcalloc(n, sizeof(double)), *b = xcalloc(n, sizeof(double));
  for (int f = 0; f < F; f++) {
    uint8_t *p = rgb + (size_t)f * n;
    for (size_t i = 0; i < n; i++) a[i] = p[i];
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        for (int c = 0; c < 3; c++) {
          double s = 0;
          for (int i = -R; i <= R; i++) {
            int xx = x + i < 0 ? 0 : x + i >= W ? W - 1 : x + i;
            s += k[i + R] * a[((size_t)y * W + xx) * 3 + c];
          }
          b[((size_t)y * W + x) * 3 + c] = s;
        }
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        for (int c = 0; c < 3; c++) {
          double s = 0;
          for (int i = -R; i <= R; i++) {
            int yy = y + i < 0 ? 0 : y + i >= H ? H - 1 : y + i;
            s += k[i + R] * b[((size_t)yy * W + x) * 3 + c];
          }
          p[((size_t)y * W + x) * 3 + c] = clamp_u8(s);
        }
  }
  free(k);
  free(a);
  free(b);
}

void degrade_noise(uint8_t *rgb, int F, int H, int W, double sigma, uint64_t seed) {
  scene_rng r;
  scene_rng_seed(&r, seed, 0, SCENE_STREAM_PIXELS);
  size_t n = (size_t)F * H * W * 3;
  for (size_t i = 0; i < n; i++) rgb[i] = clamp_u8(rgb[i] + sigma * scene_rng_normal(&r));
}

void degrade_colour_shift(uint8_t *rgb, int F, int H, int W, const int d[3]) {
  size_t n = (size_t)F * H * W;
  for (size_t i = 0; i < n; i++)
    for (int c = 0; c < 3; c++) rgb[3 * i + c] = clamp_u8((double)rgb[3 * i + c] + d[c]);
}

void degrade_colour_shift_random(uint8_t *rgb, int F, int H, int W, int levels, uint64_t seed,
                                 int d_out[3]) {
  scene_rng r;
  scene_rng_seed(&r, seed, 1, SCENE_STREAM_PIXELS);
  int d[3];
  for (int c = 0; c < 3; c++) d[c] = (scene_rng_u64(&r) & 1) ? levels : -levels;
  degrade_colour_shift(rgb, F, H, W, d);
  if (d_out) memcpy(d_out, d, sizeof d);
}

void degrade_zoom_crop(uint8_t *rgb, int F, int H, int W, double frac, double ox, double oy) {
  if (!(frac > 0) || frac >= 1) return;
  double cw = W * frac, ch = H * frac;
  double x0 = (W - cw) * ox, y0 = (H - ch) * oy;
  size_t n = (size_t)H * W * 3;
  uint8_t *src = xmalloc(n);
  for (int f = 0; f < F; f++) {
    uint8_t *p = rgb + (size_t)f * n;
    memcpy(src, p, n);
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        double sx = x0 + (x + 0.5) * frac - 0.5, sy = y0 + (y + 0.5) * frac - 0.5;
        if (sx < 0) sx = 0;
        if (sy < 0) sy = 0;
        if (sx > W - 1) sx = W - 1;
        if (sy > H - 1) sy = H - 1;
        int ix = (int)sx, iy = (int)sy;
        int jx = ix + 1 < W ? ix + 1 : ix, jy = iy + 1 < H ? iy + 1 : iy;
        double fx = sx - ix, fy = sy - iy;
        for (int c = 0; c < 3; c++) {
          double a = src[((size_t)iy * W + ix) * 3 + c], b = src[((size_t)iy * W + jx) * 3 + c];
          double d = src[((size_t)jy * W + ix) * 3 + c], e = src[((size_t)jy * W + jx) * 3 + c];
          p[((size_t)y * W + x) * 3 + c] =
              clamp_u8((a + (b - a) * fx) * (1 - fy) + (d + (e - d) * fx) * fy);
        }
      }
  }
  free(src);
}

void degrade_flicker(uint8_t *rgb, int F, int H, int W, double amp, uint64_t seed) {
  scene_rng r;
  scene_rng_seed(&r, seed, 2, SCENE_STREAM_PIXELS);
  size_t n = (size_t)H * W * 3;
  for (int f = 0; f < F; f++) {
    double g = 1 + amp * (2 * scene_rng_uniform(&r) - 1);
    uint8_t *p = rgb + (size_t)f * n;
    for (size_t i = 0; i < n; i++) p[i] = clamp_u8(p[i] * g);
  }
}

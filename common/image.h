/* common/image.h — RGB8 pictures for contact sheets, previews and test images.
 *
 * An image is W×H pixels, 3 bytes each (R, G, B), rows top to bottom, no padding. Writers:
 * PNG (deflate with fixed Huffman codes and LZ77, per-row adaptive filters; no zlib needed) and
 * animated GIF (LZW, a fixed 6×7×6 colour cube, optional ordered dithering, frame delay, loop).
 * Drawing: fill, rectangles, blit with clipping, nearest-neighbour scaling, a built-in 5×7
 * bitmap font (ASCII 32–126; other characters draw as '?') with word wrap, and a grid layout
 * for contact sheets. Conversions: a (C, H, W) float tensor in [lo, hi] to RGB (C = 1 or 3),
 * and a heat-map colour map for single-channel maps (attention, flow magnitude).
 *
 * Functions returning int give TB_OK, or TB_ERR with err_get() saying why (bad size, file
 * error). Pixel buffers are owned by the image and freed by image_destroy.
 */
#ifndef TURBO_IMAGE_H
#define TURBO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IMAGE_MAX_SIDE 16384 /* pixels: far above any preview, small enough to never overflow */

typedef struct {
  uint8_t r, g, b;
} rgb8;

typedef struct {
  int w, h;
  uint8_t *px; /* (H, W, 3) */
} image;

/* Allocates a w×h image filled with black. TB_ERR when a side is < 1 or > IMAGE_MAX_SIDE. */
int image_init(image *im, int w, int h);
void image_destroy(image *im); /* frees px; the struct may be reused */
/* Pointer to pixel (x, y) (3 bytes R, G, B); NULL when outside the image. */
uint8_t *image_pixel(const image *im, int x, int y);

/* ---- drawing (everything clips to the image) ---- */
void image_fill(image *im, rgb8 c);
void image_fill_rect(image *im, int x, int y, int w, int h, rgb8 c);
void image_draw_rect(image *im, int x, int y, int w, int h, rgb8 c); /* 1-pixel outline */
/* Copies src with its top-left corner at (x, y). */
void image_blit(image *dst, const image *src, int x, int y);
/* A new w×h image (init'ed into *dst) resampled from src by nearest neighbour. */
int image_scale_nearest(const image *src, int w, int h, image *dst);

/* ---- text: 5×7 glyphs in 6×9 cells, each font pixel drawn as scale×scale ---- */
#define IMAGE_GLYPH_W 6 /* cell width in font pixels (5 + 1 space) */
#define IMAGE_GLYPH_H 9 /* line height in font pixels (7 + 2 space) */
/* Draws one line (no wrapping; '\n' ends it) at (x, y) = top-left; returns the x after it. */
int image_draw_text(image *im, int x, int y, const char *text, rgb8 c, int scale);
/* Width in pixels of one line of text. */
int image_text_width(const char *text, int scale);
/* Draws text wrapped at word boundaries to max_w pixels ('\n' forces a break; a word longer
 * than a line is split), at most max_lines lines (0: no limit; the last shown line ends in
 * ".." when text was cut). Returns the number of lines; with im == NULL only measures. */
int image_draw_text_wrapped(image *im, int x, int y, int max_w, int max_lines, const char *text,
                            rgb8 c, int scale);

/* ---- grid layout for contact sheets ---- */
typedef struct {
  int cols, rows;
  int cell_w, cell_h; /* tile area of each cell, pixels */
  int pad;            /* gap around and between cells */
  int caption_h;      /* text area under each tile (0: none) */
  int scale;          /* caption font scale (0 means 1) */
  rgb8 bg, fg;        /* background, caption colour */
} image_grid;

/* Initialises *out to the grid's full size, filled with g->bg. */
int image_grid_init(image *out, const image_grid *g);
/* Places tile `index` (row-major) into its cell, scaled to fit (aspect kept, centred), with the
 * caption (may be NULL) wrapped under it. TB_ERR when index is outside the grid. */
int image_grid_put(image *out, const image_grid *g, int index, const image *tile, const char *caption);

/* ---- conversions from floats ---- */
/* x is (C, H, W) with C = 1 (grey) or 3 (RGB); values map linearly from [lo, hi] to [0, 255],
 * clamped; NaN draws as 0. Initialises *out (H×W). */
int image_from_chw(image *out, const float *x, int C, int H, int W, float lo, float hi);
/* Same for a CPU tensor of shape (C, H, W) or (H, W) (F32, BF16 or F16). Use lo = -1, hi = 1
 * for model outputs and lo = 0, hi = 1 for pixels. */
int image_from_tensor(image *out, const tensor *t, float lo, float hi);
/* A single-channel (H, W) map through image_colormap; lo >= hi means "use the data's range". */
int image_from_heatmap(image *out, const float *x, int H, int W, float lo, float hi);
/* The heat-map colour of t in [0, 1] (clamped): dark blue-black → purple → red → orange →
 * pale yellow, brightness increasing monotonically so it reads in grey print too. */
rgb8 image_colormap(float t);

/* ---- files ---- */
/* PNG (8-bit RGB) into a malloc'd buffer the caller frees. */
int image_encode_png(const image *im, uint8_t **out, size_t *len);
/* Writes a PNG atomically. */
int image_save_png(const image *im, const char *path);

/* The GIF palette: index i ↔ colour; image_gif_index gives the index of the nearest colour. */
rgb8 image_gif_colour(int index);
int image_gif_index(rgb8 c);

/* Animated GIF, streamed frame by frame and written atomically on close. delay_cs: time each
 * frame shows, hundredths of a second (8 fps ≈ 12); loop: 0 = forever, n = play n+1 times
 * (-1: no loop block, play once). dither: 1 for 4×4 ordered dithering (smoother gradients),
 * 0 for plain nearest colour (exact for colours of the palette). */
typedef struct image_gif image_gif;
image_gif *image_gif_open(const char *path, int w, int h, int delay_cs, int loop, int dither);
int image_gif_add(image_gif *g, const image *frame); /* frame must be w×h */
int image_gif_close(image_gif *g);                    /* commits the file; frees g */
void image_gif_abort(image_gif *g);                   /* discards; frees g */
/* All frames at once (same size). */
int image_save_gif(const char *path, const image *frames, int n, int delay_cs, int dither);

#ifdef __cplusplus
}
#endif
#endif

/* common/image.c — see image.h. */
#include "common/image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/log.h"

/* ---- basics ----------------------------------------------------------------------------- */

int image_init(image *im, int w, int h) {
  im->w = im->h = 0;
  im->px = NULL;
  if (w < 1 || h < 1 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE)
    return err_set("image: size %dx%d outside 1..%d", w, h, IMAGE_MAX_SIDE);
  im->px = calloc((size_t)w * (size_t)h, 3);
  if (!im->px) return err_set("image: out of memory for %dx%d", w, h);
  im->w = w;
  im->h = h;
  return TB_OK;
}

void image_destroy(image *im) {
  if (!im) return;
  free(im->px);
  im->px = NULL;
  im->w = im->h = 0;
}

uint8_t *image_pixel(const image *im, int x, int y) {
  if (x < 0 || y < 0 || x >= im->w || y >= im->h) return NULL;
  return im->px + ((size_t)y * (size_t)im->w + (size_t)x) * 3;
}

void image_fill(image *im, rgb8 c) { image_fill_rect(im, 0, 0, im->w, im->h, c); }

void image_fill_rect(image *im, int x, int y, int w, int h, rgb8 c) {
  int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
  int x1 = x + w > im->w ? im->w : x + w, y1 = y + h > im->h ? im->h : y + h;
  for (int yy = y0; yy < y1; yy++)
    for (int xx = x0; xx < x1; xx++) {
      uint8_t *p = im->px + ((size_t)yy * (size_t)im->w + (size_t)xx) * 3;
      p[0] = c.r, p[1] = c.g, p[2] = c.b;
    }
}

void image_draw_rect(image *im, int x, int y, int w, int h, rgb8 c) {
  if (w <= 0 || h <= 0) return;
  image_fill_rect(im, x, y, w, 1, c);
  image_fill_rect(im, x, y + h - 1, w, 1, c);
  image_fill_rect(im, x, y, 1, h, c);
  image_fill_rect(im, x + w - 1, y, 1, h, c);
}

void image_blit(image *dst, const image *src, int x, int y) {
  int sx0 = x < 0 ? -x : 0, sy0 = y < 0 ? -y : 0;
  int sx1 = src->w, sy1 = src->h;
  if (x + sx1 > dst->w) sx1 = dst->w - x;
  if (y + sy1 > dst->h) sy1 = dst->h - y;
  if (sx1 <= sx0) return;
  for (int sy = sy0; sy < sy1; sy++)
    memcpy(dst->px + ((size_t)(y + sy) * (size_t)dst->w + (size_t)(x + sx0)) * 3,
           src->px + ((size_t)sy * (size_t)src->w + (size_t)sx0) * 3, (size_t)(sx1 - sx0) * 3);
}

int image_scale_nearest(const image *src, int w, int h, image *dst) {
  if (image_init(dst, w, h)) return TB_ERR;
  for (int y = 0; y < h; y++) {
    /* centre of destination pixel mapped into the source */
    int sy = (int)(((int64_t)y * 2 + 1) * src->h / (2 * (int64_t)h));
    for (int x = 0; x < w; x++) {
      int sx = (int)(((int64_t)x * 2 + 1) * src->w / (2 * (int64_t)w));
      memcpy(dst->px + ((size_t)y * (size_t)w + (size_t)x) * 3,
             src->px + ((size_t)sy * (size_t)src->w + (size_t)sx) * 3, 3);
    }
  }
  return TB_OK;
}

/* ---- font ------------------------------------------------------------------------------- */

/* ASCII 32..126, 7 rows of 5 pixels each; bit 4 is the leftmost column. */
static const uint8_t g_font[95][7] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /*   */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04}, /* ! */
    {0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00}, /* " */
    {0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a}, /* # */
    {0x04, 0x0f, 0x14, 0x0e, 0x05, 0x1e, 0x04}, /* $ */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}, /* % */
    {0x0c, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0d}, /* & */
    {0x04, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ' */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, /* ( */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}, /* ) */
    {0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00}, /* * */
    {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00}, /* + */
    {0x00, 0x00, 0x00, 0x00, 0x06, 0x04, 0x08}, /* , */
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00}, /* - */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c}, /* . */
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}, /* / */
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}, /* 0 */
    {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* 1 */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}, /* 2 */
    {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e}, /* 3 */
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}, /* 4 */
    {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e}, /* 5 */
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}, /* 6 */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}, /* 7 */
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}, /* 8 */
    {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c}, /* 9 */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00}, /* : */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x04, 0x08}, /* ; */
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}, /* < */
    {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00}, /* = */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}, /* > */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}, /* ? */
    {0x0e, 0x11, 0x01, 0x0d, 0x15, 0x15, 0x0e}, /* @ */
    {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, /* A */
    {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e}, /* B */
    {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e}, /* C */
    {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c}, /* D */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f}, /* E */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10}, /* F */
    {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f}, /* G */
    {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, /* H */
    {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* I */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}, /* J */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, /* K */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f}, /* L */
    {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11}, /* M */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}, /* N */
    {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, /* O */
    {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10}, /* P */
    {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d}, /* Q */
    {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11}, /* R */
    {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e}, /* S */
    {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* T */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, /* U */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04}, /* V */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a}, /* W */
    {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11}, /* X */
    {0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04}, /* Y */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f}, /* Z */
    {0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e}, /* [ */
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00}, /* \\ */
    {0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e}, /* ] */
    {0x04, 0x0a, 0x11, 0x00, 0x00, 0x00, 0x00}, /* ^ */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f}, /* _ */
    {0x08, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ` */
    {0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f}, /* a */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e}, /* b */
    {0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e}, /* c */
    {0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f}, /* d */
    {0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e}, /* e */
    {0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08}, /* f */
    {0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* g */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11}, /* h */
    {0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e}, /* i */
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0c}, /* j */
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}, /* k */
    {0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* l */
    {0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11}, /* m */
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}, /* n */
    {0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e}, /* o */
    {0x00, 0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10}, /* p */
    {0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x01}, /* q */
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}, /* r */
    {0x00, 0x00, 0x0f, 0x10, 0x0e, 0x01, 0x1e}, /* s */
    {0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06}, /* t */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d}, /* u */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04}, /* v */
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a}, /* w */
    {0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11}, /* x */
    {0x00, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* y */
    {0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f}, /* z */
    {0x03, 0x04, 0x04, 0x08, 0x04, 0x04, 0x03}, /* { */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* | */
    {0x18, 0x04, 0x04, 0x02, 0x04, 0x04, 0x18}, /* } */
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00}, /* ~ */
};

static const uint8_t *glyph_of(unsigned char ch) {
  if (ch < 32 || ch > 126) ch = '?';
  return g_font[ch - 32];
}

static void draw_glyph(image *im, int x, int y, unsigned char ch, rgb8 c, int scale) {
  const uint8_t *g = glyph_of(ch);
  for (int r = 0; r < 7; r++)
    for (int col = 0; col < 5; col++)
      if (g[r] & (1 << (4 - col))) image_fill_rect(im, x + col * scale, y + r * scale, scale, scale, c);
}

/* Characters as the font sees them: one per ASCII byte, one per UTF-8 sequence (drawn as
 * '?'); returns the number of bytes the character at s takes. */
static int char_len(const unsigned char *s) {
  if (s[0] < 0x80) return 1;
  int n = 1;
  while (n < 4 && (s[n] & 0xc0) == 0x80) n++;
  return n;
}

int image_draw_text(image *im, int x, int y, const char *text, rgb8 c, int scale) {
  if (scale < 1) scale = 1;
  const unsigned char *s = (const unsigned char *)text;
  while (*s && *s != '\n') {
    if (im) draw_glyph(im, x, y, *s, c, scale);
    x += IMAGE_GLYPH_W * scale;
    s += char_len(s);
  }
  return x;
}

static int count_chars(const unsigned char *s, size_t n) {
  int k = 0;
  for (size_t i = 0; i < n; i += (size_t)char_len(s + i)) k++;
  return k;
}

int image_text_width(const char *text, int scale) {
  if (scale < 1) scale = 1;
  size_t n = strcspn(text, "\n");
  int k = count_chars((const unsigned char *)text, n);
  return k ? k * IMAGE_GLYPH_W * scale - scale : 0;
}

/* Draws (or only counts) up to `n` bytes as one line. */
static void line_draw(image *im, int x, int y, const unsigned char *s, size_t n, rgb8 c, int scale) {
  for (size_t i = 0; i < n; i += (size_t)char_len(s + i)) {
    if (im) draw_glyph(im, x, y, s[i], c, scale);
    x += IMAGE_GLYPH_W * scale;
  }
}

int image_draw_text_wrapped(image *im, int x, int y, int max_w, int max_lines, const char *text,
                            rgb8 c, int scale) {
  if (scale < 1) scale = 1;
  int per_line = (max_w + scale) / (IMAGE_GLYPH_W * scale); /* last glyph needs no gap */
  if (per_line < 1) per_line = 1;
  const unsigned char *s = (const unsigned char *)text;
  int lines = 0;
  while (*s) {
    /* Take the longest prefix of at most per_line characters that ends at a space, a newline
     * or the end; split a word only when nothing else fits. */
    size_t i = 0, brk = 0;
    int k = 0, has_brk = 0, forced = 0;
    while (s[i] && s[i] != '\n' && k < per_line) {
      i += (size_t)char_len(s + i);
      k++;
      if (s[i] == ' ' || s[i] == '\n' || !s[i]) brk = i, has_brk = 1;
    }
    if (!s[i] || s[i] == '\n') brk = i, has_brk = 1, forced = s[i] == '\n';
    if (!has_brk) brk = i;
    size_t next = brk;
    while (s[next] == ' ') next++;
    if (forced || s[next] == '\n') next++;
    int last = max_lines > 0 && lines + 1 == max_lines && s[next];
    if (last) {
      /* Cut: end the shown line with "..". */
      int shown = count_chars(s, brk);
      if (shown > per_line - 2) {
        size_t j = 0;
        for (int q = 0; q < per_line - 2 && s[j]; q++) j += (size_t)char_len(s + j);
        brk = j;
        shown = per_line - 2;
      }
      line_draw(im, x, y + lines * IMAGE_GLYPH_H * scale, s, brk, c, scale);
      line_draw(im, x + shown * IMAGE_GLYPH_W * scale, y + lines * IMAGE_GLYPH_H * scale,
                (const unsigned char *)"..", 2, c, scale);
      return lines + 1;
    }
    line_draw(im, x, y + lines * IMAGE_GLYPH_H * scale, s, brk, c, scale);
    lines++;
    s += next;
  }
  return lines;
}

/* ---- grid ------------------------------------------------------------------------------- */

static int grid_check(const image_grid *g) {
  if (g->cols < 1 || g->rows < 1 || g->cell_w < 1 || g->cell_h < 1 || g->pad < 0 || g->caption_h < 0)
    return err_set("image grid: bad layout %dx%d cells of %dx%d", g->cols, g->rows, g->cell_w, g->cell_h);
  return TB_OK;
}

int image_grid_init(image *out, const image_grid *g) {
  if (grid_check(g)) return TB_ERR;
  int64_t w = (int64_t)g->cols * g->cell_w + (int64_t)(g->cols + 1) * g->pad;
  int64_t h = (int64_t)g->rows * (g->cell_h + g->caption_h) + (int64_t)(g->rows + 1) * g->pad;
  if (w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE)
    return err_set("image grid: %lldx%lld pixels is too large", (long long)w, (long long)h);
  if (image_init(out, (int)w, (int)h)) return TB_ERR;
  image_fill(out, g->bg);
  return TB_OK;
}

int image_grid_put(image *out, const image_grid *g, int index, const image *tile, const char *caption) {
  if (grid_check(g)) return TB_ERR;
  if (index < 0 || index >= g->cols * g->rows)
    return err_set("image grid: cell %d outside a %dx%d grid", index, g->cols, g->rows);
  int col = index % g->cols, row = index / g->cols;
  int x0 = g->pad + col * (g->cell_w + g->pad);
  int y0 = g->pad + row * (g->cell_h + g->caption_h + g->pad);
  if (tile && tile->w > 0 && tile->h > 0) {
    /* Fit inside the cell keeping the aspect ratio. */
    int w = g->cell_w, h = (int)((int64_t)tile->h * g->cell_w / tile->w);
    if (h > g->cell_h) h = g->cell_h, w = (int)((int64_t)tile->w * g->cell_h / tile->h);
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    image scaled;
    if (w == tile->w && h == tile->h) {
      image_blit(out, tile, x0 + (g->cell_w - w) / 2, y0 + (g->cell_h - h) / 2);
    } else {
      if (image_scale_nearest(tile, w, h, &scaled)) return TB_ERR;
      image_blit(out, &scaled, x0 + (g->cell_w - w) / 2, y0 + (g->cell_h - h) / 2);
      image_destroy(&scaled);
    }
  }
  if (caption && g->caption_h > 0) {
    int scale = g->scale > 0 ? g->scale : 1;
    int max_lines = (g->caption_h - 1) / (IMAGE_GLYPH_H * scale) + ((g->caption_h - 1) % (IMAGE_GLYPH_H * scale) >= 7 * scale);
    if (max_lines > 0)
      image_draw_text_wrapped(out, x0, y0 + g->cell_h + 2, g->cell_w, max_lines, caption, g->fg, scale);
  }
  return TB_OK;
}

/* ---- conversions ------------------------------------------------------------------------ */

static uint8_t to_u8(float v, float lo, float hi) {
  if (!(v == v)) return 0; /* NaN */
  float t = (v - lo) / (hi - lo) * 255.0f + 0.5f;
  if (t <= 0) return 0;
  if (t >= 255) return 255;
  return (uint8_t)t;
}

int image_from_chw(image *out, const float *x, int C, int H, int W, float lo, float hi) {
  if (C != 1 && C != 3) return err_set("image: %d channels, expected 1 or 3", C);
  if (!(hi > lo)) return err_set("image: empty value range [%g, %g]", lo, hi);
  if (image_init(out, W, H)) return TB_ERR;
  size_t plane = (size_t)H * (size_t)W;
  for (size_t i = 0; i < plane; i++) {
    uint8_t *p = out->px + i * 3;
    if (C == 1) p[0] = p[1] = p[2] = to_u8(x[i], lo, hi);
    else for (int c = 0; c < 3; c++) p[c] = to_u8(x[(size_t)c * plane + i], lo, hi);
  }
  return TB_OK;
}

int image_from_tensor(image *out, const tensor *t, float lo, float hi) {
  if (t->device != DEVICE_CPU) return err_set("image: tensor is not in CPU memory");
  if (t->dtype != DTYPE_F32 && t->dtype != DTYPE_BF16 && t->dtype != DTYPE_F16)
    return err_set("image: tensor dtype %s, expected F32, BF16 or F16", dtype_name(t->dtype));
  int C, H, W;
  if (t->ndim == 3) C = (int)t->shape[0], H = (int)t->shape[1], W = (int)t->shape[2];
  else if (t->ndim == 2) C = 1, H = (int)t->shape[0], W = (int)t->shape[1];
  else {
    char b[96];
    return err_set("image: tensor shape %s, expected (C, H, W) or (H, W)", shape_str(t->ndim, t->shape, b, sizeof b));
  }
  if (t->shape[t->ndim - 1] > IMAGE_MAX_SIDE || t->shape[t->ndim - 2] > IMAGE_MAX_SIDE)
    return err_set("image: tensor is larger than %d pixels a side", IMAGE_MAX_SIDE);
  if (t->dtype == DTYPE_F32) return image_from_chw(out, t->data, C, H, W, lo, hi);
  tensor f = tensor_to_f32(t);
  int r = image_from_chw(out, f.data, C, H, W, lo, hi);
  tensor_free(&f);
  return r;
}

/* Anchors of the heat map, darkest to brightest (chosen by eye; luminance rises at each). */
static const float g_heat[6][3] = {
    {0.02f, 0.01f, 0.10f}, {0.28f, 0.05f, 0.45f}, {0.62f, 0.12f, 0.40f},
    {0.90f, 0.30f, 0.18f}, {0.98f, 0.62f, 0.10f}, {0.99f, 0.96f, 0.62f},
};

rgb8 image_colormap(float t) {
  if (!(t == t) || t < 0) t = 0;
  if (t > 1) t = 1;
  float pos = t * 5.0f;
  int i = (int)pos;
  if (i > 4) i = 4;
  float f = pos - (float)i;
  float v[3];
  for (int c = 0; c < 3; c++) v[c] = g_heat[i][c] + (g_heat[i + 1][c] - g_heat[i][c]) * f;
  rgb8 o = {(uint8_t)(v[0] * 255 + 0.5f), (uint8_t)(v[1] * 255 + 0.5f), (uint8_t)(v[2] * 255 + 0.5f)};
  return o;
}

int image_from_heatmap(image *out, const float *x, int H, int W, float lo, float hi) {
  size_t n = (size_t)(H > 0 ? H : 0) * (size_t)(W > 0 ? W : 0);
  if (!(hi > lo)) {
    lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++)
      if (isfinite(x[i])) lo = x[i] < lo ? x[i] : lo, hi = x[i] > hi ? x[i] : hi;
    if (!(hi > lo)) hi = lo + 1; /* constant or empty map: all dark */
    if (!isfinite(lo)) lo = 0, hi = 1;
  }
  if (image_init(out, W, H)) return TB_ERR;
  for (size_t i = 0; i < n; i++) {
    rgb8 c = image_colormap((x[i] - lo) / (hi - lo));
    out->px[i * 3] = c.r, out->px[i * 3 + 1] = c.g, out->px[i * 3 + 2] = c.b;
  }
  return TB_OK;
}

/* ---- deflate (fixed Huffman codes, LZ77 over a 32 KiB window) ----------------------------- */

typedef struct {
  uint8_t *data;
  size_t len, cap;
  uint32_t bits; /* pending bits, LSB first */
  int nbits;
} bitbuf;

static void bb_byte(bitbuf *b, uint8_t v) {
  if (b->len == b->cap) {
    b->cap = b->cap ? b->cap * 2 : 4096;
    b->data = xrealloc(b->data, b->cap);
  }
  b->data[b->len++] = v;
}

static void bb_put(bitbuf *b, uint32_t v, int n) { /* n <= 24 */
  b->bits |= v << b->nbits;
  b->nbits += n;
  while (b->nbits >= 8) {
    bb_byte(b, (uint8_t)b->bits);
    b->bits >>= 8;
    b->nbits -= 8;
  }
}

static void bb_flush(bitbuf *b) {
  if (b->nbits > 0) bb_byte(b, (uint8_t)b->bits);
  b->bits = 0;
  b->nbits = 0;
}

/* Huffman codes are sent most significant bit first. */
static void bb_code(bitbuf *b, uint32_t code, int n) {
  uint32_t r = 0;
  for (int i = 0; i < n; i++) r |= ((code >> i) & 1u) << (n - 1 - i);
  bb_put(b, r, n);
}

static void put_litlen(bitbuf *b, int sym) {
  if (sym < 144) bb_code(b, 0x30u + (uint32_t)sym, 8);
  else if (sym < 256) bb_code(b, 0x190u + (uint32_t)(sym - 144), 9);
  else if (sym < 280) bb_code(b, (uint32_t)(sym - 256), 7);
  else bb_code(b, 0xc0u + (uint32_t)(sym - 280), 8);
}

static const uint16_t g_len_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                        31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t g_len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                        2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t g_dist_base[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,
                                         33,  49,  65,  97,  129, 193,  257,  385,  513,  769,
                                         1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t g_dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                         6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static void put_match(bitbuf *b, int len, int dist) {
  int li = 28;
  while (g_len_base[li] > len) li--;
  put_litlen(b, 257 + li);
  if (g_len_extra[li]) bb_put(b, (uint32_t)(len - g_len_base[li]), g_len_extra[li]);
  int di = 29;
  while (g_dist_base[di] > dist) di--;
  bb_code(b, (uint32_t)di, 5);
  if (g_dist_extra[di]) bb_put(b, (uint32_t)(dist - g_dist_base[di]), g_dist_extra[di]);
}

#define LZ_WINDOW 32768
#define LZ_HASH_BITS 15
#define LZ_MAX_CHAIN 32 /* candidates tried per position: speed against ratio */

static uint32_t lz_hash(const uint8_t *p) {
  return ((uint32_t)p[0] * 0x9e3779b1u ^ (uint32_t)p[1] * 0x85ebca6bu ^ (uint32_t)p[2] * 0xc2b2ae35u) >>
         (32 - LZ_HASH_BITS);
}

/* The zlib trailer: Adler-32 of the uncompressed data, big-endian. */
static void put_adler32(bitbuf *b, const uint8_t *in, size_t n) {
  uint32_t a = 1, s2 = 0;
  for (size_t k = 0; k < n; k++) {
    a = (a + in[k]) % 65521u;
    s2 = (s2 + a) % 65521u;
  }
  uint32_t adler = (s2 << 16) | a;
  for (int k = 3; k >= 0; k--) bb_byte(b, (uint8_t)(adler >> (8 * k)));
}

/* A zlib stream (RFC 1950 around one RFC 1951 block with fixed codes). */
static void zlib_compress(const uint8_t *in, size_t n, bitbuf *b) {
  bb_byte(b, 0x78);
  bb_byte(b, 0x01);
  bb_put(b, 1, 1); /* BFINAL */
  bb_put(b, 1, 2); /* BTYPE = 01, fixed Huffman */
  int32_t *head = xmalloc(sizeof(int32_t) << LZ_HASH_BITS);
  for (size_t i = 0; i < ((size_t)1 << LZ_HASH_BITS); i++) head[i] = -1;
  int32_t *prev = xmalloc(sizeof(int32_t) * LZ_WINDOW);
  size_t i = 0;
  while (i < n) {
    int best_len = 0, best_dist = 0;
    if (i + 3 <= n) {
      uint32_t h = lz_hash(in + i);
      int32_t cand = head[h];
      size_t max_len = n - i < 258 ? n - i : 258;
      for (int chain = 0; cand >= 0 && chain < LZ_MAX_CHAIN; chain++) {
        size_t dist = i - (size_t)cand;
        if (dist > LZ_WINDOW - 1) break;
        if (in[cand + best_len] == in[i + (size_t)best_len]) {
          size_t l = 0;
          while (l < max_len && in[(size_t)cand + l] == in[i + l]) l++;
          if ((int)l > best_len) {
            best_len = (int)l, best_dist = (int)dist;
            if (l == max_len) break;
          }
        }
        int32_t nx = prev[cand % LZ_WINDOW];
        if (nx >= cand) break;
        cand = nx;
      }
      prev[i % LZ_WINDOW] = head[h];
      head[h] = (int32_t)i;
    }
    if (best_len >= 3) {
      put_match(b, best_len, best_dist);
      /* Index the positions the match covers so later matches can find them. */
      for (size_t k = i + 1; k < i + (size_t)best_len && k + 3 <= n; k++) {
        uint32_t h = lz_hash(in + k);
        prev[k % LZ_WINDOW] = head[h];
        head[h] = (int32_t)k;
      }
      i += (size_t)best_len;
    } else {
      put_litlen(b, in[i]);
      i++;
    }
  }
  put_litlen(b, 256);
  bb_flush(b);
  free(head);
  free(prev);
  put_adler32(b, in, n);
}

/* A zlib stream of stored (uncompressed) blocks, for data that LZ77 cannot shrink. */
static void zlib_store(const uint8_t *in, size_t n, bitbuf *b) {
  bb_byte(b, 0x78);
  bb_byte(b, 0x01);
  size_t i = 0;
  do {
    size_t k = n - i < 65535 ? n - i : 65535;
    bb_byte(b, i + k == n ? 1 : 0); /* BFINAL, BTYPE = 00, byte-aligned */
    bb_byte(b, (uint8_t)k), bb_byte(b, (uint8_t)(k >> 8));
    bb_byte(b, (uint8_t)~k), bb_byte(b, (uint8_t)(~k >> 8));
    for (size_t j = 0; j < k; j++) bb_byte(b, in[i + j]);
    i += k;
  } while (i < n);
  put_adler32(b, in, n);
}

/* ---- PNG -------------------------------------------------------------------------------- */

static void be32(bitbuf *b, uint32_t v) {
  for (int k = 3; k >= 0; k--) bb_byte(b, (uint8_t)(v >> (8 * k)));
}

static void png_chunk(bitbuf *b, const char *type, const uint8_t *data, size_t n) {
  be32(b, (uint32_t)n);
  size_t start = b->len;
  for (int k = 0; k < 4; k++) bb_byte(b, (uint8_t)type[k]);
  for (size_t k = 0; k < n; k++) bb_byte(b, data[k]);
  be32(b, crc32_ieee(0, b->data + start, n + 4));
}

static int paeth(int a, int b, int c) {
  int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

/* Filters each row with the type (0-4) whose output has the smallest sum of |signed bytes|,
 * the usual heuristic; out holds H rows of 1 + 3W bytes. */
static void png_filter(const image *im, uint8_t *out) {
  size_t stride = (size_t)im->w * 3;
  uint8_t *cand = xmalloc(stride * 5);
  for (int y = 0; y < im->h; y++) {
    const uint8_t *row = im->px + (size_t)y * stride, *up = y ? row - stride : NULL;
    long best_sum = -1;
    int best = 0;
    for (int f = 0; f < 5; f++) {
      uint8_t *c = cand + (size_t)f * stride;
      long sum = 0;
      for (size_t i = 0; i < stride; i++) {
        int a = i >= 3 ? row[i - 3] : 0, b = up ? up[i] : 0, cc = (up && i >= 3) ? up[i - 3] : 0;
        int pred = f == 0 ? 0 : f == 1 ? a : f == 2 ? b : f == 3 ? (a + b) / 2 : paeth(a, b, cc);
        c[i] = (uint8_t)(row[i] - pred);
        sum += c[i] < 128 ? c[i] : 256 - c[i];
      }
      if (best_sum < 0 || sum < best_sum) best_sum = sum, best = f;
    }
    uint8_t *o = out + (size_t)y * (stride + 1);
    o[0] = (uint8_t)best;
    memcpy(o + 1, cand + (size_t)best * stride, stride);
  }
  free(cand);
}

int image_encode_png(const image *im, uint8_t **out, size_t *len) {
  *out = NULL;
  *len = 0;
  if (!im->px || im->w < 1 || im->h < 1) return err_set("png: empty image");
  size_t raw_n = (size_t)im->h * ((size_t)im->w * 3 + 1);
  uint8_t *raw = xmalloc(raw_n);
  png_filter(im, raw);
  bitbuf z = {0};
  zlib_compress(raw, raw_n, &z);
  if (z.len > raw_n + raw_n / 65535 * 5 + 11) { /* incompressible (noise): stored blocks */
    z.len = 0;
    zlib_store(raw, raw_n, &z);
  }
  free(raw);
  bitbuf b = {0};
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  for (int k = 0; k < 8; k++) bb_byte(&b, sig[k]);
  uint8_t ihdr[13] = {0};
  for (int k = 0; k < 4; k++) {
    ihdr[k] = (uint8_t)((uint32_t)im->w >> (24 - 8 * k));
    ihdr[4 + k] = (uint8_t)((uint32_t)im->h >> (24 - 8 * k));
  }
  ihdr[8] = 8; /* bit depth */
  ihdr[9] = 2; /* colour type: RGB */
  png_chunk(&b, "IHDR", ihdr, sizeof ihdr);
  png_chunk(&b, "IDAT", z.data, z.len);
  png_chunk(&b, "IEND", NULL, 0);
  free(z.data);
  *out = b.data;
  *len = b.len;
  return TB_OK;
}

int image_save_png(const image *im, const char *path) {
  uint8_t *buf;
  size_t n;
  if (image_encode_png(im, &buf, &n)) return err_wrap("%s", path);
  int r = fs_write_atomic(path, buf, n);
  free(buf);
  return r;
}

/* ---- GIF -------------------------------------------------------------------------------- */

/* A fixed colour cube: 6 levels of red, 7 of green (the eye is most sensitive to it), 6 of
 * blue = 252 colours at index r*42 + g*6 + b; indices 252-255 are unused (black). */
#define GIF_LR 6
#define GIF_LG 7
#define GIF_LB 6

rgb8 image_gif_colour(int index) {
  rgb8 c = {0, 0, 0};
  if (index < 0 || index >= GIF_LR * GIF_LG * GIF_LB) return c;
  int r = index / (GIF_LG * GIF_LB), g = (index / GIF_LB) % GIF_LG, b = index % GIF_LB;
  c.r = (uint8_t)((r * 255 + (GIF_LR - 1) / 2) / (GIF_LR - 1));
  c.g = (uint8_t)((g * 255 + (GIF_LG - 1) / 2) / (GIF_LG - 1));
  c.b = (uint8_t)((b * 255 + (GIF_LB - 1) / 2) / (GIF_LB - 1));
  return c;
}

static int level(int v, int levels) { /* nearest of `levels` evenly spaced values */
  int l = (v * (levels - 1) + 127) / 255;
  return l < 0 ? 0 : l > levels - 1 ? levels - 1 : l;
}

int image_gif_index(rgb8 c) {
  return level(c.r, GIF_LR) * GIF_LG * GIF_LB + level(c.g, GIF_LG) * GIF_LB + level(c.b, GIF_LB);
}

struct image_gif {
  fs_atomic *file;
  FILE *fp;
  int w, h, delay, dither, frames;
  char path[1024];
};

static void le16(FILE *fp, int v) {
  fputc(v & 0xff, fp);
  fputc((v >> 8) & 0xff, fp);
}

image_gif *image_gif_open(const char *path, int w, int h, int delay_cs, int loop, int dither) {
  if (w < 1 || h < 1 || w > 65535 || h > 65535) {
    err_set("%s: gif size %dx%d outside 1..65535", path, w, h);
    return NULL;
  }
  fs_atomic *a = fs_atomic_open(path);
  if (!a) return NULL;
  image_gif *g = xcalloc(1, sizeof *g);
  g->file = a;
  g->fp = fs_atomic_file(a);
  g->w = w, g->h = h, g->delay = delay_cs < 0 ? 0 : delay_cs > 65535 ? 65535 : delay_cs;
  g->dither = dither;
  snprintf(g->path, sizeof g->path, "%s", path);
  FILE *fp = g->fp;
  fwrite("GIF89a", 1, 6, fp);
  le16(fp, w);
  le16(fp, h);
  fputc(0xf7, fp); /* global colour table of 2^(7+1) entries, 8-bit colour resolution */
  fputc(0, fp);    /* background colour index */
  fputc(0, fp);    /* square pixels */
  for (int i = 0; i < 256; i++) {
    rgb8 c = image_gif_colour(i);
    fputc(c.r, fp), fputc(c.g, fp), fputc(c.b, fp);
  }
  if (loop >= 0) { /* application extension that browsers read as the loop count */
    fputc(0x21, fp), fputc(0xff, fp), fputc(11, fp);
    fwrite("NETSCAPE2.0", 1, 11, fp);
    fputc(3, fp), fputc(1, fp);
    le16(fp, loop > 65535 ? 65535 : loop);
    fputc(0, fp);
  }
  return g;
}

/* LZW code writer with 255-byte sub-blocks. */
typedef struct {
  FILE *fp;
  uint8_t block[255];
  int nblock;
  uint32_t bits;
  int nbits;
} gif_bits;

static void gb_byte(gif_bits *b, uint8_t v) {
  b->block[b->nblock++] = v;
  if (b->nblock == 255) {
    fputc(255, b->fp);
    fwrite(b->block, 1, 255, b->fp);
    b->nblock = 0;
  }
}

static void gb_code(gif_bits *b, int code, int width) {
  b->bits |= (uint32_t)code << b->nbits;
  b->nbits += width;
  while (b->nbits >= 8) {
    gb_byte(b, (uint8_t)b->bits);
    b->bits >>= 8;
    b->nbits -= 8;
  }
}

#define LZW_HASH 8192 /* open-addressing table for at most 4096 codes */

/* GIF LZW (8-bit minimum code size): codes start at 9 bits and grow to 12; when all 4096 are
 * in use a clear code restarts the table. The decoder adds its table entry one code later than
 * the encoder, which is why the width grows once next > 2^width. */
static void lzw_encode(FILE *fp, const uint8_t *idx, size_t n) {
  enum { CLEAR = 256, EOI = 257 };
  int32_t *keys = xmalloc(sizeof(int32_t) * LZW_HASH);
  int16_t *vals = xmalloc(sizeof(int16_t) * LZW_HASH);
  gif_bits b = {.fp = fp};
  fputc(8, fp); /* minimum code size */
  int width = 9, next = 258;
  for (int i = 0; i < LZW_HASH; i++) keys[i] = -1;
  gb_code(&b, CLEAR, width);
  int prefix = idx[0];
  for (size_t i = 1; i < n; i++) {
    int c = idx[i];
    int32_t key = (prefix << 8) | c;
    uint32_t h = ((uint32_t)key * 2654435761u) >> (32 - 13);
    while (keys[h] >= 0 && keys[h] != key) h = (h + 1) & (LZW_HASH - 1);
    if (keys[h] == key) {
      prefix = vals[h];
      continue;
    }
    gb_code(&b, prefix, width);
    if (next < 4096) {
      keys[h] = key;
      vals[h] = (int16_t)next++;
      if (next > (1 << width) && width < 12) width++;
    }
    if (next == 4096) {
      gb_code(&b, CLEAR, width);
      for (int k = 0; k < LZW_HASH; k++) keys[k] = -1;
      width = 9;
      next = 258;
    }
    prefix = c;
  }
  gb_code(&b, prefix, width);
  /* The decoder adds one more entry on reading that last code; it may widen the codes. */
  if (next < 4096 && next + 1 > (1 << width) && width < 12) width++;
  gb_code(&b, EOI, width);
  if (b.nbits > 0) gb_byte(&b, (uint8_t)b.bits);
  if (b.nblock) {
    fputc(b.nblock, fp);
    fwrite(b.block, 1, (size_t)b.nblock, fp);
  }
  fputc(0, fp); /* block terminator */
  free(keys);
  free(vals);
}

int image_gif_add(image_gif *g, const image *frame) {
  if (frame->w != g->w || frame->h != g->h)
    return err_set("%s: frame %d is %dx%d, the animation is %dx%d", g->path, g->frames, frame->w,
                   frame->h, g->w, g->h);
  size_t n = (size_t)g->w * (size_t)g->h;
  uint8_t *idx = xmalloc(n);
  /* 4×4 Bayer thresholds, centred on zero, scaled to about one palette step. */
  static const int bayer[4][4] = {{0, 8, 2, 10}, {12, 4, 14, 6}, {3, 11, 1, 9}, {15, 7, 13, 5}};
  for (int y = 0; y < g->h; y++)
    for (int x = 0; x < g->w; x++) {
      const uint8_t *p = frame->px + ((size_t)y * (size_t)g->w + (size_t)x) * 3;
      rgb8 c = {p[0], p[1], p[2]};
      if (g->dither) {
        int d = bayer[y & 3][x & 3] * 2 - 15; /* -15..15 */
        int r = p[0] + d * 51 / 32, gg = p[1] + d * 42 / 32, bb = p[2] + d * 51 / 32;
        c.r = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
        c.g = (uint8_t)(gg < 0 ? 0 : gg > 255 ? 255 : gg);
        c.b = (uint8_t)(bb < 0 ? 0 : bb > 255 ? 255 : bb);
      }
      idx[(size_t)y * (size_t)g->w + (size_t)x] = (uint8_t)image_gif_index(c);
    }
  FILE *fp = g->fp;
  fputc(0x21, fp), fputc(0xf9, fp), fputc(4, fp); /* graphic control extension */
  fputc(1 << 2, fp);                              /* disposal: leave in place; no transparency */
  le16(fp, g->delay);
  fputc(0, fp), fputc(0, fp);
  fputc(0x2c, fp); /* image descriptor: full frame, global palette */
  le16(fp, 0), le16(fp, 0), le16(fp, g->w), le16(fp, g->h);
  fputc(0, fp);
  lzw_encode(fp, idx, n);
  free(idx);
  g->frames++;
  return TB_OK;
}

int image_gif_close(image_gif *g) {
  if (!g) return TB_ERR;
  fputc(0x3b, g->fp); /* trailer */
  int r = fs_atomic_commit(g->file);
  free(g);
  return r;
}

void image_gif_abort(image_gif *g) {
  if (!g) return;
  fs_atomic_abort(g->file);
  free(g);
}

int image_save_gif(const char *path, const image *frames, int n, int delay_cs, int dither) {
  if (n < 1) return err_set("%s: no frames", path);
  image_gif *g = image_gif_open(path, frames[0].w, frames[0].h, delay_cs, 0, dither);
  if (!g) return TB_ERR;
  for (int i = 0; i < n; i++) {
    if (image_gif_add(g, &frames[i])) {
      image_gif_abort(g);
      return TB_ERR;
    }
  }
  return image_gif_close(g);
}

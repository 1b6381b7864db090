/* stages/curate/sheet.c — see sheet.h. */
#include "stages/curate/sheet.h"

#include "common/fsutil.h"
#include "common/log.h"
#include "common/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_be32(FILE *f, uint32_t v) {
  uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  fwrite(b, 1, 4, f);
}

static void png_chunk(FILE *f, const char *type, const uint8_t *data, uint32_t n) {
  put_be32(f, n);
  fwrite(type, 1, 4, f);
  if (n) fwrite(data, 1, n, f);
  uint32_t c = crc32_ieee(0, type, 4);
  if (n) c = crc32_ieee(c, data, n);
  put_be32(f, c);
}

int sheet_png_write(const char *path, const uint8_t *rgb, int w, int h) {
  if (w <= 0 || h <= 0) return err_set("png %s: empty image", path);
  size_t raw_n = (size_t)h * (1 + (size_t)w * 3);
  uint8_t *raw = xmalloc(raw_n);
  for (int y = 0; y < h; y++) {
    raw[(size_t)y * (1 + w * 3)] = 0; /* filter: none */
    memcpy(raw + (size_t)y * (1 + w * 3) + 1, rgb + (size_t)y * w * 3, (size_t)w * 3);
  }
  /* zlib: header, stored blocks of <= 65535 bytes, adler32. */
  size_t nblocks = raw_n / 65535 + 1;
  size_t z_n = 2 + raw_n + nblocks * 5 + 4;
  uint8_t *z = xmalloc(z_n);
  size_t o = 0;
  z[o++] = 0x78;
  z[o++] = 0x01;
  uint32_t a = 1, b = 0;
  for (size_t i = 0; i < raw_n; i++) {
    a = (a + raw[i]) % 65521;
    b = (b + a) % 65521;
  }
  size_t pos = 0;
  do {
    size_t len = raw_n - pos > 65535 ? 65535 : raw_n - pos;
    z[o++] = pos + len == raw_n ? 1 : 0;
    z[o++] = (uint8_t)len;
    z[o++] = (uint8_t)(len >> 8);
    z[o++] = (uint8_t)~len;
    z[o++] = (uint8_t)(~len >> 8);
    memcpy(z + o, raw + pos, len);
    o += len;
    pos += len;
  } while (pos < raw_n);
  uint32_t ad = (b << 16) | a;
  z[o++] = (uint8_t)(ad >> 24);
  z[o++] = (uint8_t)(ad >> 16);
  z[o++] = (uint8_t)(ad >> 8);
  z[o++] = (uint8_t)ad;
  free(raw);
  fs_atomic *at = fs_atomic_open(path);
  if (!at) {
    free(z);
    return TB_ERR;
  }
  FILE *f = fs_atomic_file(at);
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  fwrite(sig, 1, 8, f);
  uint8_t ihdr[13] = {0};
  for (int i = 0; i < 4; i++) {
    ihdr[i] = (uint8_t)((uint32_t)w >> (24 - 8 * i));
    ihdr[4 + i] = (uint8_t)((uint32_t)h >> (24 - 8 * i));
  }
  ihdr[8] = 8; /* bit depth */
  ihdr[9] = 2; /* RGB */
  png_chunk(f, "IHDR", ihdr, 13);
  png_chunk(f, "IDAT", z, (uint32_t)o);
  png_chunk(f, "IEND", NULL, 0);
  free(z);
  return fs_atomic_commit(at);
}

/* GIF LZW bit packer into 255-byte sub-blocks. */
typedef struct {
  FILE *f;
  uint8_t block[255];
  int nblock;
  uint32_t acc;
  int nbits;
} gif_bits;

static void gif_byte(gif_bits *g, uint8_t b) {
  g->block[g->nblock++] = b;
  if (g->nblock == 255) {
    fputc(255, g->f);
    fwrite(g->block, 1, 255, g->f);
    g->nblock = 0;
  }
}

static void gif_code(gif_bits *g, unsigned code, int width) {
  g->acc |= (uint32_t)code << g->nbits;
  g->nbits += width;
  while (g->nbits >= 8) {
    gif_byte(g, (uint8_t)g->acc);
    g->acc >>= 8;
    g->nbits -= 8;
  }
}

static void gif_flush(gif_bits *g) {
  if (g->nbits > 0) gif_byte(g, (uint8_t)g->acc);
  g->acc = 0;
  g->nbits = 0;
  if (g->nblock) {
    fputc(g->nblock, g->f);
    fwrite(g->block, 1, (size_t)g->nblock, g->f);
    g->nblock = 0;
  }
  fputc(0, g->f); /* block terminator */
}

int sheet_gif_write(const char *path, const uint8_t *frames, int n, int w, int h, int delay_cs) {
  if (w <= 0 || h <= 0 || n <= 0 || w > 65535 || h > 65535) return err_set("gif %s: bad size", path);
  fs_atomic *at = fs_atomic_open(path);
  if (!at) return TB_ERR;
  FILE *f = fs_atomic_file(at);
  fwrite("GIF89a", 1, 6, f);
  uint8_t lsd[7] = {(uint8_t)w, (uint8_t)(w >> 8), (uint8_t)h, (uint8_t)(h >> 8), 0xF7, 0, 0};
  fwrite(lsd, 1, 7, f);
  for (int i = 0; i < 256; i++) { /* 3-3-2 palette */
    int r = (i >> 5) & 7, g = (i >> 2) & 7, b = i & 3;
    fputc(r * 255 / 7, f);
    fputc(g * 255 / 7, f);
    fputc(b * 255 / 3, f);
  }
  static const uint8_t loop[19] = {0x21, 0xFF, 0x0B, 'N', 'E', 'T', 'S', 'C', 'A', 'P',
                                   'E',  '2',  '.',  '0', 3,   1,   0,   0,   0};
  fwrite(loop, 1, 19, f);
  for (int k = 0; k < n; k++) {
    uint8_t gce[8] = {0x21, 0xF9, 4, 0x04, (uint8_t)delay_cs, (uint8_t)(delay_cs >> 8), 0, 0};
    fwrite(gce, 1, 8, f);
    uint8_t idesc[10] = {0x2C, 0, 0, 0, 0, (uint8_t)w, (uint8_t)(w >> 8), (uint8_t)h, (uint8_t)(h >> 8), 0};
    fwrite(idesc, 1, 10, f);
    fputc(8, f); /* LZW minimum code size */
    gif_bits g;
    memset(&g, 0, sizeof g);
    g.f = f;
    const uint8_t *p = frames + (size_t)k * w * h * 3;
    int since_clear = 0;
    gif_code(&g, 256, 9);
    for (int64_t i = 0; i < (int64_t)w * h; i++) {
      const uint8_t *c = p + i * 3;
      unsigned idx = (unsigned)((c[0] * 7 + 127) / 255) << 5 | (unsigned)((c[1] * 7 + 127) / 255) << 2 |
                     (unsigned)((c[2] * 3 + 127) / 255);
      gif_code(&g, idx, 9);
      if (++since_clear == 250) {
        gif_code(&g, 256, 9);
        since_clear = 0;
      }
    }
    gif_code(&g, 257, 9);
    gif_flush(&g);
  }
  fputc(0x3B, f);
  return fs_atomic_commit(at);
}

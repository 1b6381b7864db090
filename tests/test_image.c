/* Images: PNG and animated GIF written here and decoded back with libav (pixel values, frame
 * count, frame delay); LZW across many sizes and noisy frames (code-width growth, table
 * resets); text layout and word wrap; float and heat-map conversions; a contact sheet and a GIF
 * preview left in the test's output folder for a person to look at. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>

#include "common/fsutil.h"
#include "common/image.h"
#include "common/log.h"
#include "tests/testutil.h"

/* Decodes every frame of an image or animation file to RGB24. *frames holds n * w * h * 3
 * bytes (caller frees); *durations (may be NULL) the packet durations in stream time base
 * units (1/100 s for GIF). Returns the number of frames, or -1. */
static int decode_all(const char *path, int *w, int *h, uint8_t **frames, int64_t *durations, int max_frames) {
  AVFormatContext *fmt = NULL;
  *frames = NULL;
  if (avformat_open_input(&fmt, path, NULL, NULL) < 0) return -1;
  if (avformat_find_stream_info(fmt, NULL) < 0) {
    avformat_close_input(&fmt);
    return -1;
  }
  AVStream *st = fmt->streams[0];
  const AVCodec *dec = avcodec_find_decoder(st->codecpar->codec_id);
  AVCodecContext *ctx = avcodec_alloc_context3(dec);
  avcodec_parameters_to_context(ctx, st->codecpar);
  if (avcodec_open2(ctx, dec, NULL) < 0) {
    avcodec_free_context(&ctx);
    avformat_close_input(&fmt);
    return -1;
  }
  AVPacket *pkt = av_packet_alloc();
  AVFrame *fr = av_frame_alloc();
  int n = 0, npk = 0;
  *w = ctx->width, *h = ctx->height;
  uint8_t *out = NULL;
  int eof = 0;
  while (n < max_frames) {
    if (!eof) {
      if (av_read_frame(fmt, pkt) < 0) {
        eof = 1;
        avcodec_send_packet(ctx, NULL);
      } else {
        if (pkt->stream_index == 0) {
          if (durations && npk < max_frames) durations[npk] = pkt->duration;
          npk++;
          avcodec_send_packet(ctx, pkt);
        }
        av_packet_unref(pkt);
      }
    }
    int r = 0;
    while (n < max_frames && (r = avcodec_receive_frame(ctx, fr)) == 0) {
      *w = fr->width, *h = fr->height;
      size_t fsz = (size_t)*w * (size_t)*h * 3;
      out = realloc(out, fsz * (size_t)(n + 1));
      struct SwsContext *sws = sws_getContext(fr->width, fr->height, fr->format, fr->width, fr->height,
                                              AV_PIX_FMT_RGB24, SWS_POINT, NULL, NULL, NULL);
      uint8_t *dst[4] = {out + fsz * (size_t)n};
      int ls[4] = {*w * 3};
      sws_scale(sws, (const uint8_t *const *)fr->data, fr->linesize, 0, fr->height, dst, ls);
      sws_freeContext(sws);
      n++;
      av_frame_unref(fr);
    }
    if (eof && r == AVERROR_EOF) break;
    if (eof && r != 0 && r != AVERROR(EAGAIN)) break;
  }
  av_frame_free(&fr);
  av_packet_free(&pkt);
  avcodec_free_context(&ctx);
  avformat_close_input(&fmt);
  *frames = out;
  return n;
}

static void fill_test_pattern(image *im, uint64_t seed, int noisy) {
  uint64_t s = seed;
  for (int y = 0; y < im->h; y++)
    for (int x = 0; x < im->w; x++) {
      uint8_t *p = image_pixel(im, x, y);
      if (noisy) {
        uint64_t r = test_rand_u64(&s);
        p[0] = (uint8_t)r, p[1] = (uint8_t)(r >> 8), p[2] = (uint8_t)(r >> 16);
      } else {
        p[0] = (uint8_t)(x * 255 / (im->w > 1 ? im->w - 1 : 1));
        p[1] = (uint8_t)(y * 255 / (im->h > 1 ? im->h - 1 : 1));
        p[2] = (uint8_t)((x ^ y) & 0xff);
      }
    }
}

static int count_diff(const uint8_t *a, const uint8_t *b, size_t n) {
  int d = 0;
  for (size_t i = 0; i < n; i++) d += a[i] != b[i];
  return d;
}

static void test_png(const char *dir) {
  static const struct {
    int w, h, noisy;
  } cases[] = {{1, 1, 0}, {97, 61, 0}, {200, 150, 1}, {300, 40, 0}, {7, 300, 1}};
  char path[1024];
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    image im;
    CHECK(image_init(&im, cases[c].w, cases[c].h) == TB_OK);
    fill_test_pattern(&im, 7 + c, cases[c].noisy);
    if (!cases[c].noisy && im.w > 40) {
      image_fill_rect(&im, 3, 3, 20, 10, (rgb8){255, 255, 255});
      image_draw_text(&im, 5, 5, "PNG", (rgb8){200, 0, 0}, 1);
    }
    snprintf(path, sizeof path, "%s/png_%dx%d.png", dir, im.w, im.h);
    CHECKF(image_save_png(&im, path) == TB_OK, "save: %s", err_get());
    int w = 0, h = 0;
    uint8_t *px;
    int n = decode_all(path, &w, &h, &px, NULL, 4);
    CHECKF(n == 1 && w == im.w && h == im.h, "%s: decoded %d frames of %dx%d", path, n, w, h);
    if (n == 1 && w == im.w && h == im.h) {
      int d = count_diff(px, im.px, (size_t)w * h * 3);
      CHECKF(d == 0, "%s: %d bytes differ", path, d);
    }
    log_info("png %dx%d %s: %lld bytes (raw %d)", im.w, im.h, cases[c].noisy ? "noise" : "pattern",
             (long long)fs_size(path), im.w * im.h * 3);
    free(px);
    image_destroy(&im);
  }
}

static void test_gif(const char *dir) {
  /* Palette colours round-trip exactly; others go to the nearest palette colour. */
  int exact = 1;
  for (int i = 0; i < 252; i++) exact &= image_gif_index(image_gif_colour(i)) == i;
  CHECK(exact);
  static const struct {
    int w, h, frames;
  } cases[] = {{1, 1, 1}, {3, 2, 2}, {255, 3, 2}, {96, 80, 5}, {64, 64, 16}};
  char path[1024];
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    int W = cases[c].w, H = cases[c].h, F = cases[c].frames;
    image *fr = calloc((size_t)F, sizeof *fr);
    for (int k = 0; k < F; k++) {
      image_init(&fr[k], W, H);
      /* alternate noise (fills the LZW table many times) and smooth content (long strings) */
      fill_test_pattern(&fr[k], 100 + (uint64_t)k, k % 2 == 0);
      if (k % 2 == 1) image_fill_rect(&fr[k], k * 3, k * 2, W / 3 + 1, H / 3 + 1, (rgb8){255, 0, 0});
    }
    snprintf(path, sizeof path, "%s/gif_%dx%d_%d.gif", dir, W, H, F);
    CHECKF(image_save_gif(path, fr, F, 12, 0) == TB_OK, "save: %s", err_get());
    int w = 0, h = 0;
    uint8_t *px;
    int64_t dur[32] = {0};
    int n = decode_all(path, &w, &h, &px, dur, 32);
    CHECKF(n == F && w == W && h == H, "%s: decoded %d frames of %dx%d, want %d of %dx%d", path, n, w, h, F, W, H);
    size_t fsz = (size_t)W * H * 3;
    uint8_t *want = malloc(fsz);
    for (int k = 0; k < n && k < F && w == W && h == H; k++) {
      for (size_t i = 0; i < (size_t)W * H; i++) {
        const uint8_t *p = fr[k].px + i * 3;
        rgb8 q = image_gif_colour(image_gif_index((rgb8){p[0], p[1], p[2]}));
        want[i * 3] = q.r, want[i * 3 + 1] = q.g, want[i * 3 + 2] = q.b;
      }
      int d = count_diff(px + fsz * (size_t)k, want, fsz);
      CHECKF(d == 0, "%s frame %d: %d bytes differ", path, k, d);
      CHECKF(dur[k] == 12, "%s frame %d: duration %lld, want 12", path, k, (long long)dur[k]);
    }
    free(want);
    free(px);
    for (int k = 0; k < F; k++) image_destroy(&fr[k]);
    free(fr);
  }
  image a, b;
  image_init(&a, 4, 4);
  image_init(&b, 5, 4);
  snprintf(path, sizeof path, "%s/bad.gif", dir);
  image_gif *g = image_gif_open(path, 4, 4, 10, 0, 1);
  CHECK(g && image_gif_add(g, &a) == TB_OK);
  CHECK(g && image_gif_add(g, &b) == TB_ERR && strstr(err_get(), "frame 1 is 5x4, the animation is 4x4"));
  image_gif_abort(g);
  CHECK(!fs_exists(path));
  image_destroy(&a);
  image_destroy(&b);
}

static void test_text_and_drawing(void) {
  image im;
  CHECK(image_init(&im, 0, 5) == TB_ERR && strstr(err_get(), "size 0x5"));
  CHECK(image_init(&im, 40, 20) == TB_OK);
  rgb8 white = {255, 255, 255};
  int x_end = image_draw_text(&im, 1, 1, "I|", white, 1);
  CHECK(x_end == 1 + 2 * IMAGE_GLYPH_W);
  /* 'I' has its stem in the middle column (x = 1 + 2) on rows 1..5; its corners are empty. */
  int stem = 1;
  for (int r = 1; r <= 5; r++) stem &= image_pixel(&im, 3, 1 + r)[0] == 255;
  CHECK(stem && image_pixel(&im, 1, 2)[0] == 0);
  CHECK(image_pixel(&im, 40, 0) == NULL);
  CHECK(image_text_width("abc", 2) == 3 * 6 * 2 - 2 && image_text_width("", 1) == 0);
  CHECK(image_text_width("caf\xc3\xa9", 1) == 4 * 6 - 1);
  int w10 = 10 * IMAGE_GLYPH_W - 1; /* exactly 10 characters */
  CHECK(image_draw_text_wrapped(NULL, 0, 0, w10, 0, "the quick brown fox", white, 1) == 2);
  CHECK(image_draw_text_wrapped(NULL, 0, 0, w10, 0, "abcdefghijklmnop", white, 1) == 2);
  CHECK(image_draw_text_wrapped(NULL, 0, 0, w10, 0, "one\ntwo\n\nthree", white, 1) == 4);
  CHECK(image_draw_text_wrapped(NULL, 0, 0, w10, 0, "0123456789", white, 1) == 1);
  CHECK(image_draw_text_wrapped(NULL, 0, 0, w10, 2, "a b c d e f g h i j k l m n o p", white, 1) == 2);
  CHECK(image_draw_text_wrapped(NULL, 0, 0, w10, 0, "", white, 1) == 0);
  /* Clipping: drawing partly or wholly outside is harmless. */
  image_draw_text(&im, -7, 15, "clipped text", white, 3);
  image_fill_rect(&im, 30, 10, 100, 100, white);
  CHECK(image_pixel(&im, 39, 19)[2] == 255);

  image small, big;
  image_init(&small, 2, 2);
  image_pixel(&small, 1, 0)[0] = 9;
  CHECK(image_scale_nearest(&small, 4, 4, &big) == TB_OK);
  CHECK(image_pixel(&big, 2, 0)[0] == 9 && image_pixel(&big, 3, 1)[0] == 9 && image_pixel(&big, 1, 1)[0] == 0);
  image_blit(&im, &big, 37, -1); /* clipped on two sides: big (2, 1) lands on (39, 0) */
  CHECK(image_pixel(&im, 39, 0)[0] == 9 && image_pixel(&im, 38, 0)[0] == 0);
  image_destroy(&small);
  image_destroy(&big);
  image_destroy(&im);
}

static void test_conversions(void) {
  float x[3 * 2 * 2] = {-1, 0, 1, 2, /* R */ 0, 0, 0, 0, /* G */ -2, -1, NAN, 0.5f /* B */};
  image im;
  CHECK(image_from_chw(&im, x, 3, 2, 2, -1, 1) == TB_OK);
  CHECK(im.w == 2 && im.h == 2);
  CHECK(image_pixel(&im, 0, 0)[0] == 0 && image_pixel(&im, 1, 0)[0] == 128 && image_pixel(&im, 0, 1)[0] == 255);
  CHECK(image_pixel(&im, 1, 1)[0] == 255 && image_pixel(&im, 0, 0)[1] == 128 && image_pixel(&im, 0, 1)[2] == 0);
  CHECK(image_pixel(&im, 1, 1)[2] == 191);
  image_destroy(&im);
  CHECK(image_from_chw(&im, x, 2, 2, 2, -1, 1) == TB_ERR && strstr(err_get(), "2 channels"));
  int64_t sh[2] = {2, 2};
  tensor t = tensor_new(DTYPE_BF16, 2, sh);
  uint16_t *d = t.data;
  d[0] = f32_to_bf16(0), d[1] = f32_to_bf16(0.5f), d[2] = f32_to_bf16(1), d[3] = f32_to_bf16(0.25f);
  CHECK(image_from_tensor(&im, &t, 0, 1) == TB_OK);
  CHECK(image_pixel(&im, 1, 0)[1] == 128 && image_pixel(&im, 0, 1)[2] == 255);
  image_destroy(&im);
  tensor_free(&t);
  /* Heat map: luminance strictly rises from 0 to 1. */
  double prev = -1;
  int mono = 1;
  for (int i = 0; i <= 100; i++) {
    rgb8 c = image_colormap(i / 100.0f);
    double lum = 0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b;
    if (lum <= prev) mono = 0;
    prev = lum;
  }
  CHECK(mono);
  float map[4] = {3, 5, 7, 9};
  CHECK(image_from_heatmap(&im, map, 2, 2, 0, 0) == TB_OK);
  rgb8 lo = image_colormap(0), hi = image_colormap(1);
  CHECK(image_pixel(&im, 0, 0)[0] == lo.r && image_pixel(&im, 1, 1)[2] == hi.b);
  image_destroy(&im);
}

/* A 4×3 contact sheet of synthetic tiles with captions, and a 16-frame GIF preview. */
static void test_contact_sheet(const char *dir) {
  image_grid g = {.cols = 4, .rows = 3, .cell_w = 96, .cell_h = 96, .pad = 6, .caption_h = 20,
                  .scale = 1, .bg = {24, 24, 28}, .fg = {230, 230, 230}};
  image sheet;
  CHECK(image_grid_init(&sheet, &g) == TB_OK);
  const char *captions[12] = {"a red ball rolls left to right", "gradient", "heat map of a bump",
                              "noise", "checkerboard 8x8", "[-1,1] tensor", "text 2x",
                              "A very long caption that has to be cut after two lines of text",
                              "caf\xc3\xa9 (UTF-8 shows ?)", "tiny 4x3 tile scaled up", "wide tile", "tall tile"};
  for (int i = 0; i < 12; i++) {
    image t;
    int tw = i == 9 ? 4 : i == 10 ? 128 : 64, th = i == 9 ? 3 : i == 11 ? 128 : i == 10 ? 32 : 64;
    image_init(&t, tw, th);
    if (i == 2) {
      float m[64 * 64];
      for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++) m[y * 64 + x] = expf(-((x - 40) * (x - 40) + (y - 24) * (y - 24)) / 200.0f);
      image_destroy(&t);
      image_from_heatmap(&t, m, 64, 64, 0, 0);
    } else if (i == 5) {
      float m[3 * 64 * 64];
      for (int c = 0; c < 3; c++)
        for (int k = 0; k < 64 * 64; k++) m[c * 4096 + k] = sinf((float)(k % 64) * 0.1f * (float)(c + 1)) * cosf((float)(k / 64) * 0.07f);
      image_destroy(&t);
      image_from_chw(&t, m, 3, 64, 64, -1, 1);
    } else if (i == 4) {
      for (int y = 0; y < th; y++)
        for (int x = 0; x < tw; x++) {
          uint8_t v = ((x / 8 + y / 8) % 2) ? 230 : 30;
          uint8_t *p = image_pixel(&t, x, y);
          p[0] = p[1] = p[2] = v;
        }
    } else if (i == 6) {
      image_fill(&t, (rgb8){40, 60, 120});
      image_draw_text(&t, 2, 2, "Hi!", (rgb8){255, 255, 0}, 2);
      image_draw_text_wrapped(&t, 2, 24, 60, 0, "small text wraps here", (rgb8){255, 255, 255}, 1);
    } else if (i == 0) {
      image_fill(&t, (rgb8){200, 220, 255});
      for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++)
          if ((x - 20) * (x - 20) + (y - 40) * (y - 40) < 100) memcpy(image_pixel(&t, x, y), (uint8_t[3]){220, 30, 30}, 3);
    } else {
      fill_test_pattern(&t, (uint64_t)i, i == 3);
    }
    CHECK(image_grid_put(&sheet, &g, i, &t, captions[i]) == TB_OK);
    image_destroy(&t);
  }
  CHECK(image_grid_put(&sheet, &g, 12, NULL, "x") == TB_ERR && strstr(err_get(), "cell 12 outside a 4x3 grid"));
  char path[1024];
  snprintf(path, sizeof path, "%s/contact_sheet.png", dir);
  CHECK(image_save_png(&sheet, path) == TB_OK);
  int w, h;
  uint8_t *px;
  CHECK(decode_all(path, &w, &h, &px, NULL, 2) == 1 && w == sheet.w && h == sheet.h &&
        count_diff(px, sheet.px, (size_t)w * h * 3) == 0);
  free(px);
  log_info("contact sheet %dx%d: %s (%lld bytes)", sheet.w, sheet.h, path, (long long)fs_size(path));
  image_destroy(&sheet);

  /* Preview: a ball moving over a sky gradient, 16 frames at 8 fps, dithered. */
  snprintf(path, sizeof path, "%s/preview.gif", dir);
  image_gif *gif = image_gif_open(path, 64, 64, 12, 0, 1);
  CHECK(gif != NULL);
  image fr;
  image_init(&fr, 64, 64);
  for (int k = 0; k < 16 && gif; k++) {
    for (int y = 0; y < 64; y++)
      for (int x = 0; x < 64; x++) {
        uint8_t *p = image_pixel(&fr, x, y);
        p[0] = (uint8_t)(120 + y), p[1] = (uint8_t)(160 + y), p[2] = 250;
        int cx = 8 + k * 3;
        if ((x - cx) * (x - cx) + (y - 40) * (y - 40) < 64) p[0] = 220, p[1] = 40, p[2] = 40;
      }
    image_draw_text(&fr, 1, 1, "t=", (rgb8){0, 0, 0}, 1);
    char num[16];
    snprintf(num, sizeof num, "%d", k);
    image_draw_text(&fr, 13, 1, num, (rgb8){0, 0, 0}, 1);
    CHECK(image_gif_add(gif, &fr) == TB_OK);
  }
  CHECK(gif && image_gif_close(gif) == TB_OK);
  image_destroy(&fr);
  CHECK(decode_all(path, &w, &h, &px, NULL, 32) == 16);
  free(px);
}

int main(void) {
  test_begin("test_image");
  av_log_set_level(AV_LOG_ERROR);
  const char *dir = test_outdir();
  double t0 = time_now();
  test_png(dir);
  test_gif(dir);
  test_text_and_drawing();
  test_conversions();
  test_contact_sheet(dir);
  log_info("outputs in %s (%.2f s)", dir, time_now() - t0);
  return test_finish();
}

/* The built-in world through the codec: scenes written with common/video_enc (libx264, crf 18,
 * yuv420p) and read back with libav decode to the colours the renderer drew.
 *
 * Tolerances (libx264 crf 18, measured; the test prints its numbers): at pixels >= 3 px inside an
 * object (and >= 4 px from any other) or >= 4 px away from every object and checker edge, each
 * channel is within 20 levels of the rendered value. Measured: max 11 on the palette scenes
 * below, max 15 over 300 corpus clips x 3 frames, most pixels <= 5; the BT.601 round trip costs
 * 1-2 levels, 4:2:0 chroma and H.264 the rest (worst: saturated channels near edges, the trail of
 * fast objects in predicted frames). The mean absolute error over whole frames, edges included,
 * is within 7 levels (measured <= 3.1 on the palette scenes, <= 5.5 over those 300 clips: small
 * frames with two large objects are mostly edge). Closer to edges chroma bleeds further, so
 * evaluators should read colours from object interiors.
 * Then a real bin/synth corpus (clean, quick): every clip's first, middle and last frames, rendered
 * again from truth.jsonl alone, match the decoded video within the same mean bound; and the broken
 * files of a corpus with --rate-broken 1 do not decode at all. */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/json.h"
#include "common/log.h"
#include "common/scene.h"
#include "common/video_enc.h"
#include "tests/testutil.h"

#define TOL_MAX 20     /* levels, per channel, at pixels >= 3 px inside or >= 4 px outside edges */
#define TOL_MEAN 7.0   /* levels, mean over whole frames, edges included */

/* Decodes every frame of path to RGB24 (BT.601 limited → full range). TB_ERR when the file does
 * not open, has no video, or no frame decodes; *out (T, H, W, 3) is malloc'ed. */
static int decode_all(const char *path, uint8_t **out, int *T, int *W, int *H) {
  AVFormatContext *fc = NULL;
  *out = NULL;
  *T = 0;
  if (avformat_open_input(&fc, path, NULL, NULL) < 0) return TB_ERR;
  int rc = TB_ERR;
  AVCodecContext *cc = NULL;
  AVPacket *pkt = av_packet_alloc();
  AVFrame *fr = av_frame_alloc();
  struct SwsContext *sws = NULL;
  size_t cap = 0;
  if (avformat_find_stream_info(fc, NULL) < 0) goto done;
  int si = av_find_best_stream(fc, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
  if (si < 0) goto done;
  const AVCodec *dec = avcodec_find_decoder(fc->streams[si]->codecpar->codec_id);
  if (!dec) goto done;
  cc = avcodec_alloc_context3(dec);
  avcodec_parameters_to_context(cc, fc->streams[si]->codecpar);
  cc->thread_count = 1;
  if (avcodec_open2(cc, dec, NULL) < 0) goto done;
  *W = cc->width;
  *H = cc->height;
  int bad = 0;
  for (int flushing = 0;;) {
    if (!flushing) {
      int r = av_read_frame(fc, pkt);
      if (r < 0) {
        flushing = 1;
        avcodec_send_packet(cc, NULL);
      } else {
        if (pkt->stream_index == si && avcodec_send_packet(cc, pkt) < 0) bad = 1;
        av_packet_unref(pkt);
      }
    }
    for (;;) {
      int r = avcodec_receive_frame(cc, fr);
      if (r == AVERROR(EAGAIN)) break;
      if (r == AVERROR_EOF) goto finished;
      if (r < 0) {
        bad = 1;
        break;
      }
      if (!sws) {
        sws = sws_getContext(fr->width, fr->height, fr->format, fr->width, fr->height,
                             AV_PIX_FMT_RGB24, SWS_BILINEAR | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT,
                             NULL, NULL, NULL);
        const int *coef = sws_getCoefficients(SWS_CS_ITU601);
        sws_setColorspaceDetails(sws, coef, 0, coef, 1, 0, 1 << 16, 1 << 16);
      }
      size_t fsz = (size_t)3 * *W * *H;
      if ((size_t)(*T + 1) * fsz > cap) {
        cap = 2 * (size_t)(*T + 1) * fsz;
        *out = realloc(*out, cap);
      }
      uint8_t *dst[1] = {*out + (size_t)*T * fsz};
      int ls[1] = {3 * *W};
      sws_scale(sws, (const uint8_t *const *)fr->data, fr->linesize, 0, fr->height, dst, ls);
      (*T)++;
      av_frame_unref(fr);
    }
  }
finished:
  rc = (*T > 0 && !bad) ? TB_OK : TB_ERR;
done:
  sws_freeContext(sws);
  av_frame_free(&fr);
  av_packet_free(&pkt);
  avcodec_free_context(&cc);
  avformat_close_input(&fc);
  if (rc != TB_OK) {
    free(*out);
    *out = NULL;
  }
  return rc;
}

/* Pixel classes for scene s at time t into cls (H, W): 1 deep inside an object (>= 3 px from its
 * edge, >= 4 px from any other object), 2 far from every object (>= 4 px) and from checker
 * edges, 0 elsewhere (not judged). */
static void pixel_classes(const scene *s, double t, uint8_t *cls) {
  int W = s->width, H = s->height;
  size_t n = (size_t)W * H;
  /* per object: bit 0 full coverage, bit 1 any coverage */
  uint8_t *cov[SCENE_MAX_OBJECTS] = {NULL};
  for (int i = 0; i < s->n_objects; i++) {
    cov[i] = xcalloc(n, 1);
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        double a = scene_object_coverage(s, i, t, x, y);
        cov[i][(size_t)W * y + x] = (uint8_t)((a >= 1 ? 1 : 0) | (a > 0 ? 2 : 0));
      }
  }
  double sq = (double)W / SCENE_CHECKER_SQUARES;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int full[SCENE_MAX_OBJECTS], near[SCENE_MAX_OBJECTS], near_any = 0, c = 0;
      for (int i = 0; i < s->n_objects; i++) {
        full[i] = 1;
        near[i] = 0;
        for (int dy = -4; dy <= 4; dy++)
          for (int dx = -4; dx <= 4; dx++) {
            uint8_t v = cov[i][(size_t)W * ((y + dy + H) % H) + (size_t)((x + dx + W) % W)];
            if (abs(dx) <= 3 && abs(dy) <= 3 && !(v & 1)) full[i] = 0;
            if (v & 2) near[i] = 1;
          }
        near_any |= near[i];
      }
      /* inside one object, with no other object near (their shared edge bleeds like any edge) */
      for (int i = 0; i < s->n_objects; i++) {
        int alone = 1;
        for (int j = 0; j < s->n_objects; j++)
          if (j != i && near[j]) alone = 0;
        if (full[i] && alone) c = 1;
      }
      if (!near_any) {
        c = 2;
        if (s->bg == SCENE_BG_CHECKERED) {
          double fx = fmod(x + 0.5, sq), fy = fmod(y + 0.5, sq);
          if (s->pan != SCENE_PAN_NONE || fx < 3 || fx > sq - 3 || fy < 3 || fy > sq - 3) c = 0;
        }
      }
      cls[(size_t)W * y + x] = (uint8_t)c;
    }
  for (int i = 0; i < s->n_objects; i++) free(cov[i]);
}

typedef struct {
  int maxerr;       /* at classified pixels */
  double mean;      /* over every pixel */
  int64_t counted;
} err_stats;

static void compare(const scene *s, double t, const uint8_t *ref, const uint8_t *got,
                    err_stats *e) {
  int64_t sum = 0, n = (int64_t)s->width * s->height;
  uint8_t *map = xmalloc((size_t)n);
  pixel_classes(s, t, map);
  for (int y = 0; y < s->height; y++)
    for (int x = 0; x < s->width; x++) {
      size_t i = (size_t)3 * ((size_t)y * s->width + x);
      int cls = map[(size_t)y * s->width + x];
      for (int c = 0; c < 3; c++) {
        int d = abs((int)ref[i + c] - (int)got[i + c]);
        sum += d;
        if (cls && d > e->maxerr) e->maxerr = d;
      }
      if (cls) e->counted++;
    }
  free(map);
  double m = (double)sum / (3.0 * (double)n);
  if (m > e->mean) e->mean = m;
}

/* Encodes T frames of scene s, decodes them, compares. */
static void roundtrip(const char *dir, const char *name, const scene *s, int T, err_stats *e) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s.mp4", dir, name);
  size_t fsz = (size_t)3 * s->width * s->height;
  uint8_t *ref = xmalloc(fsz * (size_t)T);
  for (int t = 0; t < T; t++) scene_render(s, (double)t / s->fps, ref + fsz * (size_t)t);
  video_enc_opts o = video_enc_opts_default();
  CHECKF(video_write_rgb(path, ref, T, s->width, s->height, s->fps, &o) == TB_OK, "%s: %s", name,
         err_get());
  uint8_t *got = NULL;
  int n = 0, w = 0, h = 0;
  CHECKF(decode_all(path, &got, &n, &w, &h) == TB_OK, "%s does not decode", path);
  CHECKF(n == T && w == s->width && h == s->height, "%s: %d frames %dx%d, expected %d %dx%d",
         name, n, w, h, T, s->width, s->height);
  if (got && n == T && w == s->width && h == s->height)
    for (int t = 0; t < T; t++)
      compare(s, (double)t / s->fps, ref + fsz * (size_t)t, got + fsz * (size_t)t, e);
  free(ref);
  free(got);
}

static int read_lines(const char *path, char ***lines) {
  char *text = NULL;
  size_t len = 0;
  if (fs_read_all(path, &text, &len) != TB_OK) return -1;
  int n = 0, cap = 0;
  *lines = NULL;
  for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    if (n == cap) *lines = realloc(*lines, sizeof **lines * (size_t)(cap = cap ? 2 * cap : 64));
    (*lines)[n++] = xstrdup(l);
  }
  free(text);
  return n;
}

int main(void) {
  test_begin("test_synth_codec");
  av_log_set_level(AV_LOG_ERROR);
  const char *dir = test_outdir();
  const char *codec = video_enc_default_codec();
  if (!codec) return test_skip("no video encoder in libavcodec");
  printf("encoder: %s\n", codec);
  if (strcmp(codec, "libx264") != 0) printf("note: not libx264; tolerances are for libx264\n");

  /* 1. every colour on every solid background, still and moving, at two sizes */
  err_stats all = {0, 0, 0};
  for (int c = 0; c < SCENE_COLOUR_COUNT; c++) {
    scene s;
    memset(&s, 0, sizeof s);
    s.width = c % 2 ? 96 : 64;
    s.height = c % 2 ? 72 : 64;
    s.fps = 8;
    s.bg = (scene_bg)(c % 5);
    s.n_objects = 2;
    s.obj[0] = (scene_object){(scene_colour)c, SCENE_SHAPE_SQUARE, SCENE_SIZE_LARGE,
                              SCENE_MOTION_RIGHT, SCENE_SPEED_SLOW, 0.3, 0.5};
    s.obj[1] = (scene_object){(scene_colour)((c + 3) % SCENE_COLOUR_COUNT), SCENE_SHAPE_CIRCLE,
                              SCENE_SIZE_LARGE, SCENE_MOTION_STILL, SCENE_SPEED_SLOW, 0.75, 0.5};
    s.relation = SCENE_REL_LEFT_OF;
    char name[32];
    snprintf(name, sizeof name, "colour%d", c);
    err_stats e = {0, 0, 0};
    roundtrip(dir, name, &s, 16, &e);
    printf("%-7s on %-6s: max error %2d levels at %lld interior pixels, worst frame mean %.2f\n",
           scene_colour_name((scene_colour)c), scene_bg_name(s.bg), e.maxerr,
           (long long)e.counted, e.mean);
    if (e.maxerr > all.maxerr) all.maxerr = e.maxerr;
    if (e.mean > all.mean) all.mean = e.mean;
  }
  /* checkered, panning, two fps */
  {
    scene s;
    memset(&s, 0, sizeof s);
    s.width = 80;
    s.height = 60;
    s.fps = 24;
    s.bg = SCENE_BG_CHECKERED;
    s.pan = SCENE_PAN_NONE; /* (pans are covered by the corpus below) */
    s.n_objects = 1;
    s.obj[0] = (scene_object){SCENE_COLOUR_ORANGE, SCENE_SHAPE_RING, SCENE_SIZE_LARGE,
                              SCENE_MOTION_UP, SCENE_SPEED_FAST, 0.5, 0.5};
    err_stats e = {0, 0, 0};
    roundtrip(dir, "checkered", &s, 24, &e);
    printf("checkered, ring: max error %d, worst frame mean %.2f\n", e.maxerr, e.mean);
    if (e.maxerr > all.maxerr) all.maxerr = e.maxerr;
    if (e.mean > all.mean) all.mean = e.mean;
  }
  printf("overall: max interior error %d levels (tolerance %d), worst frame mean %.2f (tolerance %.1f)\n",
         all.maxerr, TOL_MAX, all.mean, TOL_MEAN);
  if (strcmp(codec, "libx264") == 0) {
    CHECKF(all.maxerr <= TOL_MAX, "max interior error %d > %d", all.maxerr, TOL_MAX);
    CHECKF(all.mean <= TOL_MEAN, "mean error %.2f > %.1f", all.mean, TOL_MEAN);
  }

  /* 2. a bin/synth corpus: truth.jsonl renders to the decoded pixels */
  const char *bin = getenv("BIN") ? getenv("BIN") : "bin";
  char cmd[2048], corpus[512], path[1024];
  snprintf(corpus, sizeof corpus, "%s/corpus", dir);
  snprintf(cmd, sizeof cmd, "%s/synth --quick --clean --clips 8 --seed 7 --workers 2 --force --out %s 2>&1",
           bin, corpus);
  CHECKF(system(cmd) == 0, "%s failed", cmd);
  char **lines = NULL;
  snprintf(path, sizeof path, "%s/truth.jsonl", corpus);
  int nl = read_lines(path, &lines);
  CHECKF(nl == 8, "truth.jsonl has %d lines, expected 8", nl);
  double worst = 0;
  for (int i = 0; i < nl; i++) {
    json_value *v = json_parse(lines[i], strlen(lines[i]), NULL);
    CHECKF(v != NULL, "truth line %d: %s", i, err_get());
    scene s;
    const char *rel = NULL;
    int64_t frames = 0;
    if (!v || scene_json_get(json_get(v, "scene"), &s) != TB_OK ||
        json_get_string(v, "path", &rel) != TB_OK || json_get_int64(v, "frames", &frames) != TB_OK) {
      CHECKF(0, "truth line %d: %s", i, err_get());
      json_free(v);
      continue;
    }
    snprintf(path, sizeof path, "%s/%s", corpus, rel);
    uint8_t *got = NULL;
    int n = 0, w = 0, h = 0;
    CHECKF(decode_all(path, &got, &n, &w, &h) == TB_OK, "%s does not decode", path);
    CHECKF(n == frames && w == s.width && h == s.height, "%s: %d frames %dx%d, truth %lld %dx%d",
           rel, n, w, h, (long long)frames, s.width, s.height);
    if (got && n == frames && w == s.width && h == s.height) {
      size_t fsz = (size_t)3 * w * h;
      uint8_t *ref = xmalloc(fsz);
      int pick[3] = {0, n / 2, n - 1};
      for (int k = 0; k < 3; k++) {
        scene_render(&s, (double)pick[k] / s.fps, ref);
        err_stats e = {0, 0, 0};
        compare(&s, (double)pick[k] / s.fps, ref, got + fsz * (size_t)pick[k], &e);
        if (e.mean > worst) worst = e.mean;
        CHECKF(e.mean <= TOL_MEAN && e.maxerr <= TOL_MAX,
               "%s frame %d: rendered from truth differs: mean %.2f max %d", rel, pick[k], e.mean,
               e.maxerr);
      }
      free(ref);
    }
    free(got);
    json_free(v);
    free(lines[i]);
  }
  free(lines);
  printf("corpus frames rendered from truth.jsonl vs decoded: worst frame mean error %.2f\n", worst);

  /* 3. broken files do not decode */
  snprintf(cmd, sizeof cmd,
           "%s/synth --quick --rate-static 0 --rate-flicker 0 --rate-watermark 0 "
           "--rate-low-quality 0 --rate-wrong-caption 0 --rate-shot-cut 0 --rate-broken 1 --clips 6 --seed 3 --workers 2 --force --out %s/broken 2>&1",
           bin, dir);
  CHECKF(system(cmd) == 0, "%s failed", cmd);
  for (int i = 0; i < 6; i++) {
    snprintf(path, sizeof path, "%s/broken/videos/%06d.mp4", dir, i);
    uint8_t *got = NULL;
    int n = 0, w = 0, h = 0;
    int rc = decode_all(path, &got, &n, &w, &h);
    CHECKF(rc == TB_ERR, "broken clip %s decoded (%d frames)", path, n);
    CHECKF(fs_size(path) > 0, "broken clip %s is empty", path);
    free(got);
  }
  return test_finish();
}

/* common/video_dec.c — see video_dec.h.
 *
 * Each source frame is first converted to RGB24 at its own size (one swscale pass, any pixel
 * format), then the centre crop of that RGB picture is resized to the output size with an
 * area filter (a second pass). Two passes cost a little more than cropping the planes of each
 * pixel format by hand, but work for every format libav decodes.
 */
#include "common/video_dec.h"

#include "common/log.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

video_dec_opts video_dec_opts_default(void) {
  video_dec_opts o;
  memset(&o, 0, sizeof o);
  o.fps = 8.0;
  o.width = 64;
  o.height = 64;
  o.max_frames = 16;
  return o;
}

void video_crop_centre(int src_w, int src_h, int dst_w, int dst_h, int *x, int *y, int *w,
                       int *h) {
  int cw = src_w, ch = src_h;
  /* Compare aspects in integers: src_w/src_h vs dst_w/dst_h. */
  if ((int64_t)src_w * dst_h > (int64_t)src_h * dst_w) {
    cw = (int)(((int64_t)src_h * dst_w + dst_h / 2) / dst_h);
  } else {
    ch = (int)(((int64_t)src_w * dst_h + dst_w / 2) / dst_w);
  }
  if (cw < 1) cw = 1;
  if (ch < 1) ch = 1;
  *x = ((src_w - cw) / 2) & ~1;
  *y = ((src_h - ch) / 2) & ~1;
  *w = cw;
  *h = ch;
}

/* Output and analysis pictures come in one swscale pass each from the decoder's format at
 * their final size (area filter). SWS_ACCURATE_RND keeps swscale off its fast YUV->RGB path,
 * which leaves the last columns black when the width is not a multiple of 8 (seen with 148- and
 * 84-pixel-wide H.264); full chroma interpolation gives the exact colours back. */
#define RGB_FLAGS (SWS_AREA | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP)
#define LUMA_FLAGS (SWS_AREA | SWS_ACCURATE_RND)

static void errbuf_av(int code, char *buf, size_t n) {
  if (av_strerror(code, buf, n) < 0) snprintf(buf, n, "libav error %d", code);
}

typedef struct {
  AVFormatContext *fmt;
  AVCodecContext *dec;
  int stream;
} dec_ctx;

static void dec_close(dec_ctx *d) {
  if (d->dec) avcodec_free_context(&d->dec);
  if (d->fmt) avformat_close_input(&d->fmt);
}

/* What a file that libav cannot open is, from its first bytes: a message that says what to do
 * instead of libav's "Invalid data found when processing input". */
static int explain_unopenable(const char *path, const char *averr) {
  FILE *f = fopen(path, "rb");
  if (!f) return err_set("cannot open: %s", strerror(errno));
  unsigned char b[512];
  size_t n = fread(b, 1, sizeof b, f);
  fseeko(f, 0, SEEK_END);
  long long size = (long long)ftello(f);
  fclose(f);
  if (size == 0) return err_set("empty file (0 bytes)");
  if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return err_set("a PNG image, not a video");
  if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return err_set("a JPEG image, not a video");
  if (n >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0))
    return err_set("a GIF image, not a video");
  if (n >= 8 && memcmp(b + 4, "ftyp", 4) == 0)
    return err_set("MP4/MOV file without a readable index (no 'moov' box: cut short while being "
                   "written or copied; %lld bytes)", size);
  size_t text = 0;
  for (size_t i = 0; i < n; i++)
    text += (b[i] >= 0x20 && b[i] < 0x7F) || b[i] == '\n' || b[i] == '\r' || b[i] == '\t' || b[i] >= 0x80;
  if (n > 0 && text == n) return err_set("a text file, not a video (%lld bytes)", size);
  return err_set("not a video container libav can read (%lld bytes; first bytes %02x %02x %02x %02x; "
                 "libav: %s)", size, n > 0 ? b[0] : 0, n > 1 ? b[1] : 0, n > 2 ? b[2] : 0,
                 n > 3 ? b[3] : 0, averr);
}

/* Counter-clockwise rotation (0, 90, 180, 270) of the stream's display matrix. */
static int stream_rotation(const AVStream *st) {
  const uint8_t *m = NULL;
#if LIBAVFORMAT_VERSION_INT >= AV_VERSION_INT(60, 15, 100)
  const AVPacketSideData *sd = av_packet_side_data_get(st->codecpar->coded_side_data,
                                                       st->codecpar->nb_coded_side_data,
                                                       AV_PKT_DATA_DISPLAYMATRIX);
  if (sd && sd->size >= 9 * 4) m = sd->data;
#else
  size_t sz = 0;
  m = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &sz);
  if (sz < 9 * 4) m = NULL;
#endif
  if (!m) return 0;
  double a = av_display_rotation_get((const int32_t *)m);
  if (!isfinite(a)) return 0;
  int r = (int)lround(a / 90.0) * 90;
  return ((r % 360) + 360) % 360;
}

static int dec_open(const char *path, dec_ctx *d, video_probe_info *info) {
  char eb[128];
  memset(d, 0, sizeof *d);
  memset(info, 0, sizeof *info);
  int rc = avformat_open_input(&d->fmt, path, NULL, NULL);
  if (rc < 0) {
    errbuf_av(rc, eb, sizeof eb);
    d->fmt = NULL;
    return explain_unopenable(path, eb);
  }
  /* Still images open as one-frame "videos" through the image demuxers. */
  const char *fmtname = d->fmt->iformat->name;
  if (strstr(fmtname, "_pipe") || strcmp(fmtname, "image2") == 0) {
    int r2 = err_set("a still image (%s), not a video", fmtname);
    dec_close(d);
    return r2;
  }
  rc = avformat_find_stream_info(d->fmt, NULL);
  if (rc < 0) {
    errbuf_av(rc, eb, sizeof eb);
    dec_close(d);
    return err_set("cannot read stream info: %s", eb);
  }
  const AVCodec *codec = NULL;
  rc = av_find_best_stream(d->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  if (rc < 0) {
    dec_close(d);
    return err_set("no video stream (a %s file with %u stream%s of other kinds)", fmtname,
                   d->fmt ? d->fmt->nb_streams : 0u, d->fmt && d->fmt->nb_streams == 1 ? "" : "s");
  }
  d->stream = rc;
  AVStream *st = d->fmt->streams[d->stream];
  if (!codec) {
    dec_close(d);
    return err_set("no decoder for codec id %d", (int)st->codecpar->codec_id);
  }
  d->dec = avcodec_alloc_context3(codec);
  if (!d->dec) {
    dec_close(d);
    return err_set("out of memory allocating the decoder");
  }
  rc = avcodec_parameters_to_context(d->dec, st->codecpar);
  if (rc >= 0) {
    d->dec->thread_count = 1; /* parallelism comes from curate's workers */
    /* Report damage instead of hiding it (the frames are still output). */
    d->dec->err_recognition |= AV_EF_CRCCHECK | AV_EF_BITSTREAM | AV_EF_BUFFER;
    rc = avcodec_open2(d->dec, codec, NULL);
  }
  if (rc < 0) {
    errbuf_av(rc, eb, sizeof eb);
    dec_close(d);
    return err_set("cannot open decoder %s: %s", codec->name, eb);
  }
  info->width = st->codecpar->width;
  info->height = st->codecpar->height;
  info->rotation = stream_rotation(st);
  info->display_w = info->rotation % 180 ? info->height : info->width;
  info->display_h = info->rotation % 180 ? info->width : info->height;
  AVRational fr = st->avg_frame_rate.num ? st->avg_frame_rate : st->r_frame_rate;
  info->fps = fr.den ? av_q2d(fr) : 0.0;
  if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
    info->duration = st->duration * av_q2d(st->time_base);
  else if (d->fmt->duration != AV_NOPTS_VALUE && d->fmt->duration > 0)
    info->duration = d->fmt->duration / (double)AV_TIME_BASE;
  info->nb_frames = st->nb_frames;
  info->bit_rate = st->codecpar->bit_rate ? st->codecpar->bit_rate : d->fmt->bit_rate;
  snprintf(info->codec, sizeof info->codec, "%s", codec->name);
  snprintf(info->format, sizeof info->format, "%s", d->fmt->iformat->name);
  const char *pf = av_get_pix_fmt_name((enum AVPixelFormat)st->codecpar->format);
  snprintf(info->pix_fmt, sizeof info->pix_fmt, "%s", pf ? pf : "unknown");
  if (d->fmt->pb) {
    int64_t fsz = avio_size(d->fmt->pb);
    info->file_size = fsz > 0 ? fsz : 0;
  }
  int nidx = avformat_index_get_entries_count(st);
  for (int i = 0; i < nidx; i++) {
    const AVIndexEntry *e = avformat_index_get_entry(st, i);
    if (e && e->pos >= 0 && e->pos + e->size > info->index_end) info->index_end = e->pos + e->size;
  }
  info->index_truncated = info->file_size > 0 && info->index_end > info->file_size;
  if (info->width <= 0 || info->height <= 0) {
    dec_close(d);
    return err_set("video stream has no picture size");
  }
  return TB_OK;
}

int video_probe(const char *path, video_probe_info *info) {
  dec_ctx d;
  if (dec_open(path, &d, info) != TB_OK) return TB_ERR;
  dec_close(&d);
  return TB_OK;
}

/* State of one decode: the held source frame (a reference, converted only when it becomes an
 * output frame), its converted pictures, and the growing outputs. */
typedef struct {
  const video_dec_opts *o;
  video_frames *out;
  int cap;                    /* frames allocated in out->rgb */
  int rot;                    /* display rotation, degrees counter-clockwise */
  struct SwsContext *to_rgb;  /* cropped source -> RGB24 output size (coded orientation) */
  struct SwsContext *to_luma; /* whole source -> GRAY8 analysis size (coded orientation) */
  AVFrame *held;              /* reference to the held source frame */
  int held_valid, held_conv;  /* a frame is held; its pictures below are up to date */
  uint8_t *rgb;               /* (H, W, 3) output picture of the held frame, display orientation */
  uint8_t *luma;              /* (LH, LW) analysis luma of the held frame, display orientation */
  uint8_t *tmp;               /* coded-orientation picture before turning */
  double held_t;              /* timestamp of the held frame (s) */
  double period;              /* source frame period (s) */
  double t0;                  /* first timestamp (s) */
  int have_t0;
} dec_state;

static int state_grow(dec_state *s) {
  video_frames *f = s->out;
  if (f->n < s->cap) return TB_OK;
  int ncap = s->cap ? s->cap * 2 : 16;
  size_t fb = (size_t)f->w * f->h * 3;
  f->rgb = xrealloc(f->rgb, fb * ncap);
  f->pts = xrealloc(f->pts, sizeof(double) * ncap);
  if (s->o->keep_luma) f->luma = xrealloc(f->luma, (size_t)f->lw * f->lh * ncap);
  s->cap = ncap;
  return TB_OK;
}

/* Turns a (h, w, c) picture counter-clockwise by rot degrees into dst (display orientation:
 * (w, h, c) at 90 and 270). */
static void turn(const uint8_t *src, int w, int h, int c, int rot, uint8_t *dst) {
  int dw = rot % 180 ? h : w, dh = rot % 180 ? w : h;
  for (int y = 0; y < dh; y++)
    for (int x = 0; x < dw; x++) {
      int sx, sy;
      if (rot == 90) {
        sx = dh - 1 - y;
        sy = x;
      } else if (rot == 180) {
        sx = w - 1 - x;
        sy = h - 1 - y;
      } else if (rot == 270) {
        sx = y;
        sy = dw - 1 - x;
      } else {
        sx = x;
        sy = y;
      }
      memcpy(dst + ((size_t)y * dw + x) * c, src + ((size_t)sy * w + sx) * c, (size_t)c);
    }
}

/* Scales (part of) frame fr into dst (dw x dh, coded orientation) with ctx. */
static int scale_into(struct SwsContext **ctx, const AVFrame *fr, int x, int y, int w, int h,
                      enum AVPixelFormat dfmt, int dw, int dh, int flags, uint8_t *dst, int dstride) {
  const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get((enum AVPixelFormat)fr->format);
  if (!desc || (desc->flags & (AV_PIX_FMT_FLAG_HWACCEL | AV_PIX_FMT_FLAG_BITSTREAM)))
    return err_set("pixel format %d cannot be converted here", fr->format);
  /* The crop: move each plane's pointer (chroma planes by the subsampled offsets; x and y are
   * even, see video_crop_centre). */
  const uint8_t *src[4] = {0};
  int ls[4] = {0};
  for (int p = 0; p < 4 && fr->data[p]; p++) {
    int sx = x, sy = y;
    if ((p == 1 || p == 2) && !(desc->flags & AV_PIX_FMT_FLAG_RGB)) {
      sx >>= desc->log2_chroma_w;
      sy >>= desc->log2_chroma_h;
    }
    int step = desc->comp[0].step; /* bytes per pixel of a packed format's plane */
    for (int c = 0; c < desc->nb_components; c++)
      if (desc->comp[c].plane == p) step = desc->comp[c].step;
    if ((desc->flags & AV_PIX_FMT_FLAG_PAL) && p == 1) {
      src[p] = fr->data[p]; /* the palette */
      ls[p] = fr->linesize[p];
      continue;
    }
    if (desc->flags & AV_PIX_FMT_FLAG_PAL) step = 1;
    src[p] = fr->data[p] + (ptrdiff_t)sy * fr->linesize[p] + (ptrdiff_t)sx * step;
    ls[p] = fr->linesize[p];
  }
  *ctx = sws_getCachedContext(*ctx, w, h, (enum AVPixelFormat)fr->format, dw, dh, dfmt, flags,
                              NULL, NULL, NULL);
  if (!*ctx) return err_set("swscale cannot convert %dx%d (format %d) to %dx%d", w, h, fr->format, dw, dh);
  uint8_t *d[4] = {dst, NULL, NULL, NULL};
  int dls[4] = {dstride, 0, 0, 0};
  sws_scale(*ctx, src, ls, 0, h, d, dls);
  return TB_OK;
}

/* The output picture and analysis luma of the held frame, in display orientation. */
static int state_convert(dec_state *s) {
  video_frames *f = s->out;
  const AVFrame *fr = s->held;
  if (fr->width <= 0 || fr->height <= 0) return err_set("decoded frame has no size");
  int turned = s->rot % 180 != 0;
  int ow = turned ? f->h : f->w, oh = turned ? f->w : f->h; /* output size, coded orientation */
  int cx, cy, cw, ch;
  video_crop_centre(fr->width, fr->height, ow, oh, &cx, &cy, &cw, &ch);
  if (cx + cw > fr->width) cw = fr->width - cx;
  if (cy + ch > fr->height) ch = fr->height - cy;
  int stride = ow * 3 + 64; /* swscale's vector paths may store a little past a row */
  if (scale_into(&s->to_rgb, fr, cx, cy, cw, ch, AV_PIX_FMT_RGB24, ow, oh, RGB_FLAGS, s->tmp,
                 stride) != TB_OK)
    return TB_ERR;
  if (s->rot == 0) {
    for (int y = 0; y < oh; y++) memcpy(s->rgb + (size_t)y * ow * 3, s->tmp + (size_t)y * stride, (size_t)ow * 3);
  } else {
    for (int y = 0; y < oh; y++) memmove(s->tmp + (size_t)y * ow * 3, s->tmp + (size_t)y * stride, (size_t)ow * 3);
    turn(s->tmp, ow, oh, 3, s->rot, s->rgb);
  }
  if (s->o->keep_luma) {
    int lw = turned ? f->lh : f->lw, lh = turned ? f->lw : f->lh;
    int ls = lw + 64;
    if (scale_into(&s->to_luma, fr, 0, 0, fr->width, fr->height, AV_PIX_FMT_GRAY8, lw, lh,
                   LUMA_FLAGS, s->tmp, ls) != TB_OK)
      return TB_ERR;
    for (int y = 0; y < lh; y++) memmove(s->tmp + (size_t)y * lw, s->tmp + (size_t)y * ls, (size_t)lw);
    if (s->rot == 0) memcpy(s->luma, s->tmp, (size_t)lw * lh);
    else turn(s->tmp, lw, lh, 1, s->rot, s->luma);
  }
  s->held_conv = 1;
  return TB_OK;
}

/* Holds a decoded frame (a new reference; nothing is converted yet). */
static int state_hold(dec_state *s, AVFrame *fr, double t) {
  if (fr->width <= 0 || fr->height <= 0) return err_set("decoded frame has no size");
  av_frame_unref(s->held);
  if (av_frame_ref(s->held, fr) < 0) return err_set("out of memory holding a frame");
  s->held_valid = 1;
  s->held_conv = 0;
  s->held_t = t;
  return TB_OK;
}

/* Appends the held frame as the next output frame. */
static int state_emit(dec_state *s) {
  video_frames *f = s->out;
  if (!s->held_conv && state_convert(s) != TB_OK) return TB_ERR;
  state_grow(s);
  memcpy(f->rgb + (size_t)f->n * f->w * f->h * 3, s->rgb, (size_t)f->w * f->h * 3);
  if (s->o->keep_luma) memcpy(f->luma + (size_t)f->n * f->lw * f->lh, s->luma, (size_t)f->lw * f->lh);
  f->pts[f->n] = s->held_t;
  f->n++;
  return TB_OK;
}

static int state_done(const dec_state *s) {
  return s->o->max_frames > 0 && s->out->n >= s->o->max_frames;
}

/* A new source frame at time t: emits every output time that the held frame covers. */
static int state_frame(dec_state *s, AVFrame *fr, double t) {
  if (s->o->fps <= 0) {
    if (state_hold(s, fr, t) != TB_OK) return TB_ERR;
    return state_emit(s);
  }
  double tol = 0.25 * s->period;
  while (s->held_valid && !state_done(s)) {
    double tk = s->out->n / s->o->fps;
    if (tk + tol >= t) break;    /* the new frame is the better choice for output k */
    if (state_emit(s) != TB_OK) return TB_ERR;
  }
  if (state_done(s)) return TB_OK;
  return state_hold(s, fr, t);
}

static int state_flush(dec_state *s) {
  if (!s->held_valid || s->o->fps <= 0) return TB_OK;
  double tol = 0.25 * s->period;
  while (!state_done(s)) {
    double tk = s->out->n / s->o->fps;
    if (tk + tol >= s->held_t + s->period) break; /* past the end of the last frame */
    if (state_emit(s) != TB_OK) return TB_ERR;
  }
  return TB_OK;
}

static int receive_all(dec_state *s, dec_ctx *d, AVFrame *fr, int *errors) {
  AVStream *st = d->fmt->streams[d->stream];
  for (;;) {
    int rc = avcodec_receive_frame(d->dec, fr);
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return TB_OK;
    if (rc < 0) {
      (*errors)++;
      return TB_OK;
    }
    s->out->decoded++;
    if (fr->decode_error_flags || (fr->flags & AV_FRAME_FLAG_CORRUPT)) (*errors)++;
    int64_t ts = fr->best_effort_timestamp;
    double t;
    if (ts == AV_NOPTS_VALUE) {
      t = (s->out->decoded - 1) * s->period;
    } else {
      t = ts * av_q2d(st->time_base);
    }
    if (!s->have_t0) {
      s->t0 = t;
      s->have_t0 = 1;
    }
    t -= s->t0;
    int r = state_done(s) ? TB_OK : state_frame(s, fr, t);
    av_frame_unref(fr);
    if (r != TB_OK) return TB_ERR;
  }
}

int video_decode_rgb(const char *path, const video_dec_opts *opts, video_frames *out) {
  memset(out, 0, sizeof *out);
  if (opts->width <= 0 || opts->height <= 0) return err_set("output size must be positive");
  dec_ctx d;
  video_probe_info info;
  if (dec_open(path, &d, &info) != TB_OK) return TB_ERR;
  out->info = info;
  out->w = opts->width;
  out->h = opts->height;
  int short_side = info.display_w < info.display_h ? info.display_w : info.display_h;
  int min_side = opts->min_side > 2 ? opts->min_side : 2;
  if (short_side < min_side) {
    int r = err_set("picture %dx%d is below the %d-pixel minimum on its shorter side",
                    info.display_w, info.display_h, min_side);
    dec_close(&d);
    memset(out, 0, sizeof *out);
    return r == TB_ERR ? VIDEO_DEC_TOO_SMALL : r;
  }
  if (opts->keep_luma) {
    /* The analysis size: the shorter side at min(analysis_short, the source's), the aspect kept
     * up to VIDEO_ANALYSIS_ASPECT_MAX. */
    int a = opts->analysis_short > 0 && opts->analysis_short < short_side ? opts->analysis_short : short_side;
    int dw = info.display_w, dh = info.display_h;
    double sc = (double)a / short_side;
    int lw = (int)lround(dw * sc), lh = (int)lround(dh * sc);
    if (lw < 1) lw = 1;
    if (lh < 1) lh = 1;
    if (lw > VIDEO_ANALYSIS_ASPECT_MAX * a) lw = VIDEO_ANALYSIS_ASPECT_MAX * a;
    if (lh > VIDEO_ANALYSIS_ASPECT_MAX * a) lh = VIDEO_ANALYSIS_ASPECT_MAX * a;
    out->lw = lw;
    out->lh = lh;
  }
  dec_state s;
  memset(&s, 0, sizeof s);
  s.o = opts;
  s.out = out;
  s.rot = info.rotation;
  s.held = av_frame_alloc();
  TB_CHECK(s.held);
  {
    size_t ob = (size_t)(opts->width + 64) * 3 * (opts->height + 2) + (size_t)(opts->height + 64) * 3 * (opts->width + 2);
    size_t lb = (size_t)(out->lw + 64) * (out->lh + 2) + (size_t)(out->lh + 64) * (out->lw + 2);
    s.tmp = xmalloc(ob > lb ? ob : lb);
    s.rgb = xmalloc((size_t)opts->width * opts->height * 3);
    s.luma = xmalloc((size_t)(out->lw > 0 ? out->lw : 1) * (out->lh > 0 ? out->lh : 1));
  }
  s.period = info.fps > 0 ? 1.0 / info.fps : 1.0 / 25.0;
  AVPacket *pkt = av_packet_alloc();
  AVFrame *fr = av_frame_alloc();
  TB_CHECK(pkt && fr);
  int rc = TB_OK, errors = 0;
  for (;;) {
    if (state_done(&s) && !opts->full_check) break;
    int r = av_read_frame(d.fmt, pkt);
    if (r < 0) {
      if (r != AVERROR_EOF) out->truncated = 1;
      else out->reached_end = 1;
      break;
    }
    if (pkt->stream_index == d.stream) {
      r = avcodec_send_packet(d.dec, pkt);
      if (r < 0 && r != AVERROR(EAGAIN)) errors++;
      if (receive_all(&s, &d, fr, &errors) != TB_OK) rc = TB_ERR;
    }
    av_packet_unref(pkt);
    if (rc != TB_OK) break;
  }
  if (info.index_truncated) out->truncated = 1;
  if (rc == TB_OK && (!state_done(&s) || opts->full_check)) {
    avcodec_send_packet(d.dec, NULL); /* drain */
    if (receive_all(&s, &d, fr, &errors) != TB_OK) rc = TB_ERR;
  }
  if (rc == TB_OK) rc = state_flush(&s);
  out->decode_errors = errors;
  if (rc == TB_OK && out->n == 0) rc = err_set("no frame could be decoded (%d decoder errors)", errors);
  av_packet_free(&pkt);
  av_frame_free(&fr);
  sws_freeContext(s.to_rgb);
  sws_freeContext(s.to_luma);
  av_frame_free(&s.held);
  free(s.tmp);
  free(s.rgb);
  free(s.luma);
  dec_close(&d);
  if (rc != TB_OK) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", err_get());
    video_frames_free(out);
    return err_set("%s", msg);
  }
  return TB_OK;
}

void video_frames_free(video_frames *f) {
  if (!f) return;
  free(f->rgb);
  free(f->pts);
  free(f->luma);
  memset(f, 0, sizeof *f);
}

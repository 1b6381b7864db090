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
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
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

/* Colour conversion without scaling. SWS_ACCURATE_RND keeps swscale off its fast YUV->RGB
 * path, which leaves the last columns black when the width is not a multiple of 8 (seen with
 * 148- and 84-pixel-wide H.264); full chroma interpolation gives the exact colours back. */
#define RGB_FLAGS (SWS_POINT | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP)

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

static int dec_open(const char *path, dec_ctx *d, video_probe_info *info) {
  char eb[128];
  memset(d, 0, sizeof *d);
  memset(info, 0, sizeof *info);
  int rc = avformat_open_input(&d->fmt, path, NULL, NULL);
  if (rc < 0) {
    errbuf_av(rc, eb, sizeof eb);
    d->fmt = NULL;
    return err_set("cannot open container: %s", eb);
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
    return err_set("no video stream");
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

/* State of one decode: converters, the held frame and the growing outputs. */
typedef struct {
  const video_dec_opts *o;
  video_frames *out;
  int cap;                    /* frames allocated in out->rgb */
  struct SwsContext *to_rgb;  /* source format -> RGB24, native size */
  struct SwsContext *resize;  /* RGB24 crop -> RGB24 output size */
  uint8_t *native;            /* RGB24 of the held frame, native size */
  int nw, nh, nstride;
  int held_valid;
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
  /* One spare frame: swscale's vector paths may store a few bytes past the last row. */
  f->rgb = xrealloc(f->rgb, fb * (ncap + 1));
  f->pts = xrealloc(f->pts, sizeof(double) * ncap);
  if (s->o->keep_luma) f->luma = xrealloc(f->luma, (size_t)f->lw * f->lh * ncap);
  s->cap = ncap;
  return TB_OK;
}

/* Converts a decoded frame into s->native (RGB24 at the frame's own size). */
static int state_hold(dec_state *s, const AVFrame *fr, double t) {
  if (fr->width <= 0 || fr->height <= 0) return err_set("decoded frame has no size");
  if (fr->width != s->nw || fr->height != s->nh) {
    free(s->native);
    s->nw = fr->width;
    s->nh = fr->height;
    s->nstride = (s->nw * 3 + 63) & ~63;
    /* Two spare rows: swscale's vector paths may read or write a little past the last row. */
    s->native = xmalloc((size_t)s->nstride * (s->nh + 2));
  }
  s->to_rgb = sws_getCachedContext(s->to_rgb, fr->width, fr->height, (enum AVPixelFormat)fr->format,
                                   s->nw, s->nh, AV_PIX_FMT_RGB24, RGB_FLAGS, NULL, NULL, NULL);
  if (!s->to_rgb) return err_set("swscale cannot convert from pixel format %d", fr->format);
  uint8_t *dst[4] = {s->native, NULL, NULL, NULL};
  int dls[4] = {s->nstride, 0, 0, 0};
  sws_scale(s->to_rgb, (const uint8_t *const *)fr->data, fr->linesize, 0, fr->height, dst, dls);
  s->held_valid = 1;
  s->held_t = t;
  return TB_OK;
}

/* Appends the held frame as the next output frame. */
static int state_emit(dec_state *s) {
  video_frames *f = s->out;
  state_grow(s);
  int cx, cy, cw, ch;
  video_crop_centre(s->nw, s->nh, f->w, f->h, &cx, &cy, &cw, &ch);
  s->resize = sws_getCachedContext(s->resize, cw, ch, AV_PIX_FMT_RGB24, f->w, f->h,
                                   AV_PIX_FMT_RGB24, SWS_AREA | SWS_ACCURATE_RND, NULL, NULL, NULL);
  if (!s->resize) return err_set("swscale cannot resize %dx%d to %dx%d", cw, ch, f->w, f->h);
  const uint8_t *src[4] = {s->native + (size_t)cy * s->nstride + (size_t)cx * 3, NULL, NULL, NULL};
  int sls[4] = {s->nstride, 0, 0, 0};
  uint8_t *dst[4] = {f->rgb + (size_t)f->n * f->w * f->h * 3, NULL, NULL, NULL};
  int dls[4] = {f->w * 3, 0, 0, 0};
  sws_scale(s->resize, src, sls, 0, ch, dst, dls);
  if (s->o->keep_luma) {
    /* Full-frame luma at the first frame's size (nearest neighbour if the size changed). */
    uint8_t *L = f->luma + (size_t)f->n * f->lw * f->lh;
    for (int y = 0; y < f->lh; y++) {
      int sy = (int)((int64_t)y * s->nh / f->lh);
      const uint8_t *row = s->native + (size_t)sy * s->nstride;
      for (int x = 0; x < f->lw; x++) {
        int sx = (int)((int64_t)x * s->nw / f->lw);
        const uint8_t *p = row + sx * 3;
        L[(size_t)y * f->lw + x] = (uint8_t)((77 * p[0] + 150 * p[1] + 29 * p[2] + 128) >> 8);
      }
    }
  }
  f->pts[f->n] = s->held_t;
  f->n++;
  return TB_OK;
}

static int state_done(const dec_state *s) {
  return s->o->max_frames > 0 && s->out->n >= s->o->max_frames;
}

/* A new source frame at time t: emits every output time that the held frame covers. */
static int state_frame(dec_state *s, const AVFrame *fr, double t) {
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
  if (opts->keep_luma) {
    out->lw = info.width;
    out->lh = info.height;
  }
  dec_state s;
  memset(&s, 0, sizeof s);
  s.o = opts;
  s.out = out;
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
  sws_freeContext(s.resize);
  free(s.native);
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

/* common/video_enc.c — see video_enc.h. */
#include "common/video_enc.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
#include <limits.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

struct video_enc {
  AVFormatContext *oc;
  AVCodecContext *cc;
  AVStream *st;
  AVFrame *frame;
  AVPacket *pkt;
  struct SwsContext *sws;
  uint8_t *rgb;         /* padded copy of the input: swscale's vector code reads past row ends */
  int rgb_stride;
  int width, height;
  int64_t frames;
  char path[PATH_MAX];
  char codec[32];
  int file_open;
};

/* Software encoders tried in order when the caller names none. */
static const char *const FALLBACK_CODECS[] = {"libx264", "libopenh264", "mpeg4"};

video_enc_opts video_enc_opts_default(void) {
  video_enc_opts o;
  memset(&o, 0, sizeof o);
  o.crf = 18;
  o.preset = "fast";
  o.threads = 1;
  return o;
}

int video_enc_reproducible_heap(void) {
#if defined(__GLIBC__) && defined(M_PERTURB)
  /* any non-zero byte: new blocks are filled with its complement, freed ones with it */
  if (mallopt(M_PERTURB, 0x5a) == 1) return TB_OK;
  return err_set("mallopt(M_PERTURB) failed");
#else
  return err_set("this C library cannot fill new heap blocks; encoder output may vary by run");
#endif
}

const char *video_enc_default_codec(void) {
  for (size_t i = 0; i < sizeof FALLBACK_CODECS / sizeof *FALLBACK_CODECS; i++)
    if (avcodec_find_encoder_by_name(FALLBACK_CODECS[i])) return FALLBACK_CODECS[i];
  return NULL;
}

static const char *av_errstr(int rc, char *buf, size_t n) {
  if (av_strerror(rc, buf, n) < 0) snprintf(buf, n, "libav error %d", rc);
  return buf;
}

static void enc_free(video_enc *e) {
  if (!e) return;
  if (e->oc) {
    if (e->file_open && !(e->oc->oformat->flags & AVFMT_NOFILE)) avio_closep(&e->oc->pb);
    avformat_free_context(e->oc);
  }
  avcodec_free_context(&e->cc);
  av_frame_free(&e->frame);
  av_packet_free(&e->pkt);
  sws_freeContext(e->sws);
  av_free(e->rgb);
  free(e);
}

/* Allocates and opens a codec context for encoder `name`; NULL + err when it is missing or will
 * not open with these settings. */
static AVCodecContext *codec_open(const char *name, int w, int h, int fps, int global_header,
                                  const video_enc_opts *o) {
  const AVCodec *codec = avcodec_find_encoder_by_name(name);
  if (!codec) {
    err_set("video encoder '%s' is not in this libavcodec (ffmpeg -encoders lists them)", name);
    return NULL;
  }
  if (codec->type != AVMEDIA_TYPE_VIDEO) {
    err_set("encoder '%s' is not a video encoder", name);
    return NULL;
  }
  AVCodecContext *cc = avcodec_alloc_context3(codec);
  if (!cc) {
    err_set("avcodec_alloc_context3 failed");
    return NULL;
  }
  cc->width = w;
  cc->height = h;
  cc->time_base = (AVRational){1, fps};
  cc->framerate = (AVRational){fps, 1};
  cc->pix_fmt = AV_PIX_FMT_YUV420P;
  cc->gop_size = o->gop > 0 ? o->gop : 2 * fps;
  cc->thread_count = o->threads > 0 ? o->threads : 1;
  cc->sample_aspect_ratio = (AVRational){1, 1};
  /* sRGB primaries and transfer, BT.601 matrix, limited range: what the conversion below does */
  cc->color_range = AVCOL_RANGE_MPEG;
  cc->colorspace = AVCOL_SPC_SMPTE170M;
  cc->color_primaries = AVCOL_PRI_BT709;
  cc->color_trc = AVCOL_TRC_IEC61966_2_1;
  cc->flags |= AV_CODEC_FLAG_BITEXACT;
  if (global_header) cc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  AVDictionary *d = NULL;
  char num[32];
  if (strcmp(codec->name, "libx264") == 0) {
    snprintf(num, sizeof num, "%d", o->crf > 0 ? o->crf : 18);
    av_dict_set(&d, "crf", num, 0);
    if (o->preset) av_dict_set(&d, "preset", o->preset, 0);
  } else if (codec->id == AV_CODEC_ID_MPEG4 || codec->id == AV_CODEC_ID_MPEG2VIDEO) {
    cc->flags |= AV_CODEC_FLAG_QSCALE;
    cc->global_quality = FF_QP2LAMBDA * 2; /* qscale 2: near the best these codecs give */
  } else {
    /* bitrate-driven encoders: about 1 bit per pixel, plenty for flat synthetic pictures */
    cc->bit_rate = (int64_t)w * h * fps;
  }
  int rc = avcodec_open2(cc, codec, &d);
  av_dict_free(&d);
  if (rc < 0) {
    char eb[128];
    err_set("cannot open encoder '%s' for %dx%d at %d fps: %s", name, w, h, fps,
            av_errstr(rc, eb, sizeof eb));
    avcodec_free_context(&cc);
    return NULL;
  }
  return cc;
}

video_enc *video_enc_open(const char *path, int width, int height, int fps,
                          const video_enc_opts *opts) {
  video_enc_opts o = opts ? *opts : video_enc_opts_default();
  if (width <= 0 || height <= 0 || (width & 1) || (height & 1)) {
    err_set("video_enc_open %s: size %dx%d must be positive and even (yuv420p)", path, width,
            height);
    return NULL;
  }
  if (fps <= 0) {
    err_set("video_enc_open %s: fps %d must be positive", path, fps);
    return NULL;
  }
  video_enc *e = calloc(1, sizeof *e);
  if (!e) {
    err_set("out of memory");
    return NULL;
  }
  e->width = width;
  e->height = height;
  snprintf(e->path, sizeof e->path, "%s", path);
  char eb[128];
  int rc = avformat_alloc_output_context2(&e->oc, NULL, o.format, path);
  if (rc < 0 || !e->oc) {
    if (o.format) {
      err_set("video_enc_open %s: container '%s': %s", path, o.format, av_errstr(rc, eb, sizeof eb));
      enc_free(e);
      return NULL;
    }
    rc = avformat_alloc_output_context2(&e->oc, NULL, "mp4", path);
    if (rc < 0 || !e->oc) {
      err_set("video_enc_open %s: no mp4 muxer: %s", path, av_errstr(rc, eb, sizeof eb));
      enc_free(e);
      return NULL;
    }
  }
  e->oc->flags |= AVFMT_FLAG_BITEXACT; /* no library version strings: reproducible bytes */
  int global_header = (e->oc->oformat->flags & AVFMT_GLOBALHEADER) != 0;
  if (o.codec) {
    e->cc = codec_open(o.codec, width, height, fps, global_header, &o);
  } else {
    for (size_t i = 0; i < sizeof FALLBACK_CODECS / sizeof *FALLBACK_CODECS && !e->cc; i++) {
      e->cc = codec_open(FALLBACK_CODECS[i], width, height, fps, global_header, &o);
      if (e->cc && i > 0 && !o.quiet)
        log_warn("video_enc: libx264 is not available; writing %s instead (lower quality)",
                 FALLBACK_CODECS[i]);
    }
  }
  if (!e->cc) {
    err_wrap("video_enc_open %s: ", path);
    enc_free(e);
    return NULL;
  }
  snprintf(e->codec, sizeof e->codec, "%s", e->cc->codec->name);
  e->st = avformat_new_stream(e->oc, NULL);
  if (!e->st) {
    err_set("video_enc_open %s: avformat_new_stream failed", path);
    enc_free(e);
    return NULL;
  }
  e->st->time_base = e->cc->time_base;
  e->st->avg_frame_rate = e->cc->framerate;
  e->st->sample_aspect_ratio = e->cc->sample_aspect_ratio;
  rc = avcodec_parameters_from_context(e->st->codecpar, e->cc);
  if (rc < 0) {
    err_set("video_enc_open %s: codec parameters: %s", path, av_errstr(rc, eb, sizeof eb));
    enc_free(e);
    return NULL;
  }
  e->frame = av_frame_alloc();
  e->pkt = av_packet_alloc();
  if (!e->frame || !e->pkt) {
    err_set("video_enc_open %s: out of memory", path);
    enc_free(e);
    return NULL;
  }
  e->frame->format = AV_PIX_FMT_YUV420P;
  e->frame->width = width;
  e->frame->height = height;
  e->frame->color_range = e->cc->color_range;
  e->frame->colorspace = e->cc->colorspace;
  e->frame->color_primaries = e->cc->color_primaries;
  e->frame->color_trc = e->cc->color_trc;
  rc = av_frame_get_buffer(e->frame, 0);
  if (rc < 0) {
    err_set("video_enc_open %s: frame buffer: %s", path, av_errstr(rc, eb, sizeof eb));
    enc_free(e);
    return NULL;
  }
  /* Zero the planes with their padding: encoders' vector code reads past the picture's right
   * edge, and stale heap bytes there would make the output depend on earlier allocations. */
  for (int p = 0; p < 3; p++) {
    int rows = p == 0 ? height : (height + 1) / 2;
    memset(e->frame->data[p], 0, (size_t)e->frame->linesize[p] * rows);
  }
  /* Full chroma input and accurate rounding keep flat colours within a few levels. */
  e->sws = sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_YUV420P,
                          SWS_BILINEAR | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, NULL, NULL, NULL);
  if (!e->sws) {
    err_set("video_enc_open %s: swscale cannot convert RGB24 to yuv420p", path);
    enc_free(e);
    return NULL;
  }
  /* Rows padded to 64 bytes plus a spare row, zero-filled once: what swscale reads beyond the
   * picture is always zero, so the output is reproducible (and valgrind-clean). */
  e->rgb_stride = (3 * width + 63) & ~63;
  e->rgb = av_mallocz((size_t)e->rgb_stride * (height + 1) + 64);
  if (!e->rgb) {
    err_set("video_enc_open %s: out of memory", path);
    enc_free(e);
    return NULL;
  }
  const int *coef = sws_getCoefficients(SWS_CS_ITU601);
  sws_setColorspaceDetails(e->sws, coef, 1, coef, 0, 0, 1 << 16, 1 << 16);
  if (!(e->oc->oformat->flags & AVFMT_NOFILE)) {
    rc = avio_open(&e->oc->pb, path, AVIO_FLAG_WRITE);
    if (rc < 0) {
      err_set("video_enc_open: cannot create %s: %s", path, av_errstr(rc, eb, sizeof eb));
      enc_free(e);
      return NULL;
    }
    e->file_open = 1;
  }
  rc = avformat_write_header(e->oc, NULL);
  if (rc < 0) {
    err_set("video_enc_open %s: writing the header: %s", path, av_errstr(rc, eb, sizeof eb));
    enc_free(e);
    unlink(path);
    return NULL;
  }
  return e;
}

/* Moves every packet the encoder has ready into the muxer. */
static int enc_drain(video_enc *e) {
  char eb[128];
  for (;;) {
    int rc = avcodec_receive_packet(e->cc, e->pkt);
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return TB_OK;
    if (rc < 0) return err_set("%s: encoder: %s", e->path, av_errstr(rc, eb, sizeof eb));
    av_packet_rescale_ts(e->pkt, e->cc->time_base, e->st->time_base);
    e->pkt->stream_index = e->st->index;
    rc = av_interleaved_write_frame(e->oc, e->pkt); /* takes the packet's reference */
    if (rc < 0) return err_set("%s: writing a packet: %s", e->path, av_errstr(rc, eb, sizeof eb));
  }
}

int video_enc_write_rgb(video_enc *e, const uint8_t *rgb, int stride) {
  char eb[128];
  int rc = av_frame_make_writable(e->frame);
  if (rc < 0) return err_set("%s: frame not writable: %s", e->path, av_errstr(rc, eb, sizeof eb));
  for (int y = 0; y < e->height; y++)
    memcpy(e->rgb + (size_t)e->rgb_stride * y, rgb + (size_t)stride * y, (size_t)3 * e->width);
  const uint8_t *src[1] = {e->rgb};
  int src_stride[1] = {e->rgb_stride};
  sws_scale(e->sws, src, src_stride, 0, e->height, e->frame->data, e->frame->linesize);
  e->frame->pts = e->frames++;
  rc = avcodec_send_frame(e->cc, e->frame);
  if (rc < 0) return err_set("%s: sending a frame: %s", e->path, av_errstr(rc, eb, sizeof eb));
  return enc_drain(e);
}

int video_enc_close(video_enc *e) {
  if (!e) return TB_OK;
  char eb[128];
  int ok = TB_OK;
  int rc = avcodec_send_frame(e->cc, NULL);
  if (rc < 0 && rc != AVERROR_EOF)
    ok = err_set("%s: flushing the encoder: %s", e->path, av_errstr(rc, eb, sizeof eb));
  if (ok == TB_OK) ok = enc_drain(e);
  if (ok == TB_OK) {
    rc = av_write_trailer(e->oc);
    if (rc < 0) ok = err_set("%s: writing the trailer: %s", e->path, av_errstr(rc, eb, sizeof eb));
  }
  if (e->file_open) {
    rc = avio_closep(&e->oc->pb);
    e->file_open = 0;
    if (rc < 0 && ok == TB_OK)
      ok = err_set("%s: closing: %s", e->path, av_errstr(rc, eb, sizeof eb));
  }
  enc_free(e);
  return ok;
}

void video_enc_abort(video_enc *e) {
  if (!e) return;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s", e->path);
  enc_free(e);
  unlink(path);
}

const char *video_enc_codec_name(const video_enc *e) { return e->codec; }

int64_t video_enc_frames(const video_enc *e) { return e->frames; }

int video_write_rgb(const char *path, const uint8_t *rgb, int T, int width, int height, int fps,
                    const video_enc_opts *opts) {
  video_enc *e = video_enc_open(path, width, height, fps, opts);
  if (!e) return TB_ERR;
  size_t frame = (size_t)3 * width * height;
  for (int t = 0; t < T; t++) {
    if (video_enc_write_rgb(e, rgb + frame * t, 3 * width) != TB_OK) {
      video_enc_abort(e);
      return TB_ERR;
    }
  }
  if (video_enc_close(e) != TB_OK) {
    unlink(path);
    return TB_ERR;
  }
  return TB_OK;
}

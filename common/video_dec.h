/* common/video_dec.h — reading videos with libav: probe, then decode to RGB frames resampled to
 * a target frame rate, centre-cropped to the target aspect and resized with swscale.
 *
 *   video_probe_info pi;
 *   if (video_probe("clip.mp4", &pi) != TB_OK) log_warn("%s", err_get());
 *   video_dec_opts o = video_dec_opts_default();  // 8 fps, 64x64, 16 frames
 *   video_frames f;
 *   if (video_decode_rgb("clip.mp4", &o, &f) == TB_OK) { ... f.rgb ... video_frames_free(&f); }
 *
 * Frame layout: f.rgb is u8 (T, H, W, 3), row-major, sRGB as the decoder's colour conversion
 * gives it (BT.601 limited range unless the stream says otherwise). Resampling takes, for output
 * time t_k = k / fps (k = 0, 1, …, counted from the first frame), the last source frame whose
 * timestamp is <= t_k + half a source frame (nearest-previous, "sample and hold").
 * Thread-safe: every call has its own libav contexts.
 */
#ifndef TURBO_VIDEO_DEC_H
#define TURBO_VIDEO_DEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int width, height;   /* coded picture size */
  double fps;          /* average frame rate (0 when unknown) */
  double duration;     /* seconds, from the container (0 when unknown) */
  int64_t nb_frames;   /* frames the container declares (0 when unknown) */
  int64_t bit_rate;    /* bits/s (0 when unknown) */
  char codec[32];      /* "h264" … */
  char format[32];     /* "mov,mp4,m4a,3gp,3g2,mj2" is cut to fit */
  char pix_fmt[32];
  int rotation;        /* degrees counter-clockwise (0, 90, 180, 270) the display matrix turns
                          the coded picture by to show it; frames are returned turned */
  int display_w, display_h; /* the picture as shown (width and height swapped at 90/270) */
  int64_t file_size;   /* bytes (0 when the input is not a regular file) */
  int64_t index_end;   /* end of the last video sample the container's index points at */
  int index_truncated; /* 1 when index_end > file_size: the file was cut short */
} video_probe_info;

typedef struct {
  double fps;          /* output frame rate; <= 0 keeps every source frame */
  int width, height;   /* output size: centre crop to this aspect, then resize */
  int max_frames;      /* stop after this many output frames; 0 = to the end */
  int keep_luma;       /* also return full-frame (uncropped) luma per output frame, resized to
                          the analysis size (see analysis_short) */
  int analysis_short;  /* the luma's shorter side: min(this, the source's); 0 = the source's.
                          Statistics on a fixed analysis size do not depend on the source's
                          resolution, and cost the same for a 4K and a 360p source */
  int min_side;        /* refuse sources whose shorter side is below this (0 = 2 pixels) with
                          VIDEO_DEC_TOO_SMALL */
  int full_check;      /* after the last output frame, go on decoding (without converting) to
                          the end of the stream, counting damaged packets */
} video_dec_opts;

typedef struct {
  int n;               /* output frames (T) */
  int w, h;            /* output size */
  uint8_t *rgb;        /* (T, H, W, 3) */
  double *pts;         /* (T) source timestamp (s, from the first frame) of each output frame */
  int lw, lh;          /* luma size (the analysis size), when keep_luma */
  uint8_t *luma;       /* (T, LH, LW) full-frame luma (full-range Y'), or NULL */
  int64_t decoded;     /* source frames decoded */
  int decode_errors;   /* packets the decoder refused (damaged data); decoding went on */
  int truncated;       /* 1 when the demuxer stopped on an error, or the index points past the
                          end of the file */
  int reached_end;     /* 1 when the whole stream was read */
  video_probe_info info;
} video_frames;

#define VIDEO_DEC_TOO_SMALL (-2) /* video_decode_rgb: the picture is below opts->min_side */
#define VIDEO_ANALYSIS_ASPECT_MAX 4 /* the analysis luma's long side is at most 4x its short one */

video_dec_opts video_dec_opts_default(void);

/* Opens the container, finds the best video stream and fills *info. TB_ERR + err_get() when
 * the file cannot be opened, has no video stream or no decoder; *info is zeroed then. */
int video_probe(const char *path, video_probe_info *info);

/* Decodes as described above, in display orientation (the display matrix applied). On TB_OK
 * *out owns its buffers (free with video_frames_free); on TB_ERR (unreadable, no video, not one
 * frame decodable) or VIDEO_DEC_TOO_SMALL *out is zeroed and err_get() says why. A stream that
 * ends early still returns the frames it had, with truncated set. Only source frames that
 * become output frames are converted (a 30 fps source sampled at 8 fps converts 8 a second),
 * each in one swscale pass from the decoder's format straight to the output size. */
int video_decode_rgb(const char *path, const video_dec_opts *opts, video_frames *out);
void video_frames_free(video_frames *f);

/* The centre crop of a src_w x src_h picture that has the aspect of dst_w x dst_h: writes the
 * offset and size (offsets rounded down to even numbers so chroma planes stay aligned). */
void video_crop_centre(int src_w, int src_h, int dst_w, int dst_h, int *x, int *y, int *w,
                       int *h);

#ifdef __cplusplus
}
#endif
#endif

/* common/video_enc.h — writing RGB frames as a video file with libav: H.264 (libx264) in MP4 by
 * default, yuv420p, BT.601 limited-range matrix (tagged in the stream, the matrix
 * common/video_dec.h assumes), constant-quality (CRF) rate control.
 *
 *   video_enc_opts o = video_enc_opts_default();        // libx264, crf 18, preset fast
 *   video_enc *e = video_enc_open("out.mp4", 64, 64, 8, &o);
 *   if (!e) { log_error("%s", err_get()); ... }
 *   for (t = 0; t < T; t++) if (video_enc_write_rgb(e, frame[t], 3 * 64) != TB_OK) ...;
 *   if (video_enc_close(e) != TB_OK) ...;               // writes the trailer, frees e
 *
 * Encoder choice: opts.codec names an encoder ("libx264", "mpeg4" …); NULL asks for libx264,
 * then any other H.264 encoder that opens, then mpeg4 (MPEG-4 part 2) with a warning.
 * Width and height must be even (yuv420p). The file is written in place at `path` (callers that
 * need crash safety write to a temporary name and rename; opts.format then names the container,
 * since it cannot be guessed from a temporary name). One encoder per thread; the encoder itself
 * runs single-threaded by default so that several processes share the cores and the output is
 * bit-for-bit reproducible.
 */
#ifndef TURBO_VIDEO_ENC_H
#define TURBO_VIDEO_ENC_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  const char *codec;   /* encoder name, or NULL for libx264 → other H.264 → mpeg4 */
  const char *format;  /* container short name ("mp4"); NULL = guess from path, else mp4 */
  int crf;             /* H.264 constant rate factor (0 lossless … 51); 18 keeps colours close */
  const char *preset;  /* x264 preset ("fast"); NULL for the encoder's default */
  int gop;             /* key frame interval in frames; 0 = 2 seconds */
  int threads;         /* encoder threads; 1 keeps output reproducible (default) */
  int quiet;           /* 1: no warning when falling back to another encoder */
} video_enc_opts;

typedef struct video_enc video_enc;

video_enc_opts video_enc_opts_default(void);

/* Opens the encoder and the output file and writes the container header. Returns NULL and sets
 * err_get() when the size is odd or not positive, fps <= 0, no usable encoder exists or the file
 * cannot be created (a partial file may then remain). */
video_enc *video_enc_open(const char *path, int width, int height, int fps,
                          const video_enc_opts *opts);
/* Encodes one frame of packed RGB24 (H rows of `stride` bytes, 3 W used). TB_ERR + err_get() on
 * an encoder or write error; the encoder stays open and must still be closed or aborted. */
int video_enc_write_rgb(video_enc *e, const uint8_t *rgb, int stride);
/* Flushes the encoder, writes the trailer, closes the file and frees e (also on error).
 * TB_OK, or TB_ERR + err_get() when the file could not be completed. */
int video_enc_close(video_enc *e);
/* Closes without finishing, frees e, and removes the file. Ignores NULL. */
void video_enc_abort(video_enc *e);
/* Name of the encoder in use ("libx264", "mpeg4" …). Valid until close. */
const char *video_enc_codec_name(const video_enc *e);
/* Frames written so far. */
int64_t video_enc_frames(const video_enc *e);

/* Makes libx264's output a function of its input alone, for bit-for-bit reproducible files across
 * runs and worker counts: libx264 (as linked through libavcodec 59) reads heap bytes it has not
 * written, so its output depends on what earlier allocations left behind. This fills every new
 * malloc block with a constant (glibc's M_PERTURB), process-wide; call it once from main()
 * before encoding. Costs a memset per allocation. Returns TB_OK, or TB_ERR + err_get() where the
 * C library offers no such switch (then outputs may differ between runs in a few bytes). */
int video_enc_reproducible_heap(void);

/* Name of the encoder video_enc_open would pick for opts->codec == NULL without opening a file
 * ("libx264", another H.264 encoder, "mpeg4"), or NULL when none is available. */
const char *video_enc_default_codec(void);

/* One call: writes T frames of rgb (T, H, W, 3) u8 to path. TB_OK or TB_ERR + err_get(); on
 * error no file remains. */
int video_write_rgb(const char *path, const uint8_t *rgb, int T, int width, int height, int fps,
                    const video_enc_opts *opts);

#ifdef __cplusplus
}
#endif
#endif

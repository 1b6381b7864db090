/* tests/test_curate_decode.c — common/video_dec: fps resampling, centre crop, colours.
 *
 * Clips with known content are made with the ffmpeg command-line tool (lavfi sources):
 * - "time": 96x48 at 24 fps, frame N has red = 5 N, green 255 in the outer quarter columns
 *   (x < 24 or x >= 72) and 0 in the centre square. Decoding at 8 fps must give source frames
 *   0, 3, 6, … (red 0, 15, 30, … within ±6 after H.264 + YUV 4:2:0), and the centre crop to 64x64
 *   must remove the green bands entirely.
 * - "slow": 8 fps, decoded at 24 fps: each source frame is held for three output frames.
 * - "palette": one solid colour from the built-in palette (sand, 200,180,140) must come back
 *   within ±8 per channel.
 * Skips (exit 77) when the ffmpeg tool is missing.
 */
#include "common/log.h"
#include "common/video_dec.h"
#include "tests/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int make_clip(const char *path, const char *lavfi, const char *extra) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "ffmpeg -nostdin -loglevel error -y -f lavfi -i \"%s\" %s -c:v libx264 -pix_fmt yuv420p "
           "-crf 12 \"%s\" 2>&1",
           lavfi, extra, path);
  return system(cmd);
}

static int px(const video_frames *f, int t, int y, int x, int c) {
  return f->rgb[(((size_t)t * f->h + y) * f->w + x) * 3 + c];
}

int main(void) {
  test_begin("test_curate_decode");
  if (system("ffmpeg -version >/dev/null 2>&1") != 0) return test_skip("ffmpeg tool not found");
  const char *dir = test_outdir();
  char timep[1024], slowp[1024], palp[1024];
  snprintf(timep, sizeof timep, "%s/time.mp4", dir);
  snprintf(slowp, sizeof slowp, "%s/slow.mp4", dir);
  snprintf(palp, sizeof palp, "%s/palette.mp4", dir);
  CHECK(make_clip(timep,
                  "nullsrc=s=96x48:r=24:d=3,geq=r='5*N':g='if(lt(X,24)+gte(X,72),255,0)':b='128'",
                  "-frames:v 72") == 0);
  CHECK(make_clip(slowp, "nullsrc=s=64x64:r=8:d=2,geq=r='16*N':g='0':b='0'", "-frames:v 16") == 0);
  CHECK(make_clip(palp, "color=c=0xC8B48C:s=80x60:r=12:d=1", "") == 0);

  /* Probe. */
  video_probe_info pi;
  CHECK(video_probe(timep, &pi) == TB_OK);
  CHECK(pi.width == 96 && pi.height == 48);
  CHECKF(pi.fps > 23.9 && pi.fps < 24.1, "fps %g", pi.fps);
  CHECKF(strcmp(pi.codec, "h264") == 0, "codec %s", pi.codec);
  CHECK(pi.index_truncated == 0);

  /* 24 fps -> 8 fps: source frames 0, 3, 6, …; crop removes the bands. */
  video_dec_opts o = video_dec_opts_default();
  o.keep_luma = 1;
  video_frames f;
  CHECK(video_decode_rgb(timep, &o, &f) == TB_OK);
  CHECKF(f.n == 16, "frames %d", f.n);
  CHECK(f.w == 64 && f.h == 64);
  CHECK(f.lw == 96 && f.lh == 48);
  for (int t = 0; t < f.n; t++) {
    int want = 5 * 3 * t;
    int r = px(&f, t, 32, 32, 0);
    CHECKF(abs(r - want) <= 6, "frame %d: red %d, want %d (source frame %d)", t, r, want, 3 * t);
    CHECKF(f.pts[t] > t / 8.0 - 0.01 && f.pts[t] < t / 8.0 + 0.01, "frame %d pts %g", t, f.pts[t]);
    int gmax = 0;
    for (int y = 0; y < f.h; y++)
      for (int x = 0; x < f.w; x++) gmax = px(&f, t, y, x, 1) > gmax ? px(&f, t, y, x, 1) : gmax;
    CHECKF(gmax <= 12, "frame %d: green %d inside the crop (the bands must be cut off)", t, gmax);
  }
  /* The luma keeps the full frame: bands (green 255) are brighter than the centre. */
  CHECK(f.luma[10 * 96 + 5] > f.luma[10 * 96 + 48] + 60);
  video_frames_free(&f);

  /* Crop geometry helper. */
  int cx, cy, cw, ch;
  video_crop_centre(96, 48, 64, 64, &cx, &cy, &cw, &ch);
  CHECK(cx == 24 && cy == 0 && cw == 48 && ch == 48);
  video_crop_centre(160, 90, 64, 64, &cx, &cy, &cw, &ch);
  CHECK(cw == 90 && ch == 90 && cx == 34 && cy == 0);
  video_crop_centre(60, 80, 64, 64, &cx, &cy, &cw, &ch);
  CHECK(cw == 60 && ch == 60 && cx == 0 && cy == 10);

  /* 8 fps -> 24 fps: each frame held three times. */
  o = video_dec_opts_default();
  o.fps = 24;
  o.max_frames = 30;
  CHECK(video_decode_rgb(slowp, &o, &f) == TB_OK);
  CHECKF(f.n == 30, "frames %d", f.n);
  for (int t = 0; t < f.n; t++) {
    int want = 16 * (t / 3), r = px(&f, t, 20, 20, 0);
    CHECKF(abs(r - want) <= 6, "upsampled frame %d: red %d, want %d", t, r, want);
  }
  video_frames_free(&f);

  /* All frames at the source rate, then a clip too short for the request. */
  o = video_dec_opts_default();
  o.fps = 0;
  o.max_frames = 0;
  CHECK(video_decode_rgb(slowp, &o, &f) == TB_OK);
  CHECKF(f.n == 16, "native frames %d", f.n);
  video_frames_free(&f);

  /* Palette colour within ±8. */
  o = video_dec_opts_default();
  CHECK(video_decode_rgb(palp, &o, &f) == TB_OK);
  CHECKF(f.n == 8, "1 s at 8 fps gives %d frames", f.n);
  const int sand[3] = {200, 180, 140};
  for (int c = 0; c < 3; c++)
    CHECKF(abs(px(&f, 3, 30, 30, c) - sand[c]) <= 8, "channel %d: %d vs %d", c, px(&f, 3, 30, 30, c),
           sand[c]);
  video_frames_free(&f);

  /* Widths that are not a multiple of 8 or 16: every column decoded, the last ones included. */
  const int widths[] = {148, 84, 66};
  for (int i = 0; i < 3; i++) {
    char p[1024], src[128];
    snprintf(p, sizeof p, "%s/w%d.mp4", dir, widths[i]);
    snprintf(src, sizeof src, "color=c=0x6E6E6E:s=%dx%d:r=8:d=2", widths[i], widths[i]);
    CHECK(make_clip(p, src, "") == 0);
    o = video_dec_opts_default();
    o.keep_luma = 1;
    CHECK(video_decode_rgb(p, &o, &f) == TB_OK);
    int lo = 255, rmin = 255;
    for (int y = 0; y < f.lh; y++)
      for (int x = 0; x < f.lw; x++) lo = f.luma[(size_t)y * f.lw + x] < lo ? f.luma[(size_t)y * f.lw + x] : lo;
    for (int y = 0; y < f.h; y++) rmin = px(&f, 0, y, f.w - 1, 0) < rmin ? px(&f, 0, y, f.w - 1, 0) : rmin;
    CHECKF(lo >= 100, "width %d: darkest luma %d (gray 110 everywhere)", widths[i], lo);
    CHECKF(rmin >= 100, "width %d: last output column red %d", widths[i], rmin);
    video_frames_free(&f);
  }

  /* Damage: a cut-off file and garbage are refused or flagged, never crash. */
  char cut[1024], junk[1024], cmd[4096];
  snprintf(cut, sizeof cut, "%s/cut.mp4", dir);
  snprintf(junk, sizeof junk, "%s/junk.mp4", dir);
  snprintf(cmd, sizeof cmd, "head -c 3000 '%s' > '%s' && head -c 5000 /dev/urandom > '%s'", timep, cut, junk);
  CHECK(system(cmd) == 0);
  int rc = video_decode_rgb(cut, &o, &f);
  CHECKF(rc == TB_ERR || f.truncated, "truncated file: rc %d truncated %d", rc, f.truncated);
  if (rc == TB_OK) video_frames_free(&f);
  CHECK(video_decode_rgb(junk, &o, &f) == TB_ERR);
  CHECK(strlen(err_get()) > 0);
  CHECK(video_decode_rgb("/nonexistent/x.mp4", &o, &f) == TB_ERR);

  /* Real footage (tests/fixtures/real/footage): a phone clip stored portrait with a display matrix
   * decodes as its landscape twin; the analysis luma has the fixed size whatever the source's. */
  {
    const char *rot = "tests/fixtures/real/footage/videos/coffee-rotated.mp4",
               *pan = "tests/fixtures/real/footage/videos/coffee-pan.mp4";
    video_frames a, b;
    o = video_dec_opts_default();
    o.keep_luma = 1;
    o.analysis_short = 160;
    CHECK(video_decode_rgb(rot, &o, &a) == TB_OK);
    CHECK(video_decode_rgb(pan, &o, &b) == TB_OK);
    CHECKF(a.info.rotation == 90 && a.info.display_w == 320 && a.info.display_h == 180,
           "rotation %d, display %dx%d", a.info.rotation, a.info.display_w, a.info.display_h);
    CHECKF(a.lw == 284 && a.lh == 160 && b.lw == 284 && b.lh == 160, "analysis %dx%d and %dx%d",
           a.lw, a.lh, b.lw, b.lh);
    double d = 0, dl = 0;
    int n = a.n < b.n ? a.n : b.n;
    for (size_t i = 0; i < (size_t)n * a.w * a.h * 3; i++) d += abs(a.rgb[i] - b.rgb[i]);
    for (size_t i = 0; i < (size_t)n * a.lw * a.lh; i++) dl += abs(a.luma[i] - b.luma[i]);
    d /= (double)n * a.w * a.h * 3;
    dl /= (double)n * a.lw * a.lh;
    CHECKF(n == 16 && d < 6 && dl < 6, "rotated vs landscape: %d frames, mean |diff| %.1f (rgb), "
           "%.1f (luma)", n, d, dl);
    video_frames_free(&a);
    video_frames_free(&b);
    const char *big = "tests/fixtures/real/footage/videos/res-wm-1080.mp4";
    CHECK(video_decode_rgb(big, &o, &a) == TB_OK);
    CHECKF(a.lw == 284 && a.lh == 160, "1080p analysed at %dx%d", a.lw, a.lh);
    video_frames_free(&a);
    o.min_side = 400;
    CHECK(video_decode_rgb(pan, &o, &a) == VIDEO_DEC_TOO_SMALL);
    CHECK(strstr(err_get(), "minimum") != NULL);
  }
  return test_finish();
}

/* stages/curate/stats.h — per-clip statistics computed from decoded frames and the caption.
 *
 * Every statistic is a named double, stored in the catalogue as a (clip, name, value) row. Units:
 * intensities are on the 0..255 scale, motion in output pixels per output frame, angles in
 * degrees (0 = right, 90 = up). The list and the meaning of each name is the table at the top
 * of stats.c; flaw detectors (flaws.h) are thresholds on these numbers only.
 */
#ifndef TURBO_CURATE_STATS_H
#define TURBO_CURATE_STATS_H

#include "common/video_dec.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CLIP_STATS_MAX 96
#define PHASH_CHUNKS 16 /* the perceptual hash: 256 bits as 16 statistics of 16 bits */

typedef struct {
  int n;
  char name[CLIP_STATS_MAX][32];
  double value[CLIP_STATS_MAX];
} clip_stats;

void clip_stats_set(clip_stats *s, const char *name, double v); /* adds or replaces */
/* Value of `name`, or `dflt` when absent. */
double clip_stats_get(const clip_stats *s, const char *name, double dflt);
int clip_stats_has(const clip_stats *s, const char *name);

/* Statistics of the frames (f->rgb (T, H, W, 3) at the output size; f->luma full-frame native
 * luma, required). Needs T >= 2. */
void clip_stats_video(const video_frames *f, clip_stats *out);

/* caption_words, caption_distinct, caption_chars, caption_motion (1 when a motion verb or
 * phrase appears and no "still"-only description), caption_still. */
void clip_stats_caption(const char *caption, clip_stats *out);

#ifdef __cplusplus
}
#endif
#endif

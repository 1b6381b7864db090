/* stages/curate/flaws.h — flaw detectors: documented thresholds on clip statistics (stats.h).
 *
 * They read nothing but the statistics, so they work the same on any corpus. Each detector adds
 * a 0/1 statistic to the clip:
 *   flaw_static     the caption names motion (caption_motion = 1) but nothing moves:
 *                   motion_extent < FLAW_STATIC_EXTENT and flow_mean < FLAW_STATIC_FLOW
 *   flaw_flicker    flicker > FLAW_FLICKER (mean |log| gain between consecutive frames)
 *   flaw_watermark  watermark > FLAW_WATERMARK (persistent corner structure)
 *   flaw_lowq       noise > FLAW_NOISE or edge_width > FLAW_EDGE_WIDTH (heavy noise or blur)
 *   flaw_cut        cut_hist > FLAW_CUT_HIST or cut_block > FLAW_CUT_BLOCK
 *   flaw_any        any of the above
 * A wrong caption (a caption describing another video) cannot be judged from these numbers: it
 * needs a learned video-text score (recipe: `learned text_video_score >= X`).
 */
#ifndef TURBO_CURATE_FLAWS_H
#define TURBO_CURATE_FLAWS_H

#include "stages/curate/stats.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FLAW_STATIC_EXTENT 1.0   /* 0..255 luma: mean block change vs the first frame */
#define FLAW_STATIC_FLOW 0.15    /* pixels per frame */
#define FLAW_FLICKER 0.04        /* mean |log gain|: about 4% brightness change per frame */
#define FLAW_WATERMARK 0.12      /* excess density of persistent edges in one corner */
#define FLAW_NOISE 6.0           /* noise sigma, 0..255 */
#define FLAW_EDGE_WIDTH 1.6      /* pixels at the source resolution */
#define FLAW_CUT_HIST 0.25       /* histogram jump above the clip's median, 0..1 */
#define FLAW_CUT_BLOCK 30.0      /* block-mean jump above the median, 0..255 */

/* Names of the flags, NULL-terminated: "flaw_static", …, "flaw_cut" (not flaw_any). */
extern const char *const flaw_names[];

/* Adds the flaw_* statistics computed from the ones already in s. */
void flaws_detect(clip_stats *s);

#ifdef __cplusplus
}
#endif
#endif

/* stages/curate/flaws.h — flaw detectors: documented thresholds on clip statistics (stats.h).
 *
 * They read nothing but the statistics, so they work the same on any corpus. Each detector adds
 * a 0/1 statistic to the clip:
 *   flaw_static     the caption names motion (caption_motion = 1), not only motion that
 *                   follows the camera's pan (caption_pan_follow = 0: such a subject stands
 *                   still on screen), but nothing moves: static_score and static_score_full
 *                   (crop and full frame) < FLAW_STATIC_SCORE + FLAW_STATIC_NOISE_K * noise +
 *                   FLAW_STATIC_FLICKER_K * flicker, and flow_mean < FLAW_STATIC_FLOW unless
 *                   the clip is too noisy or flickers too much for flow, or has a cut
 *   flaw_flicker    flicker > FLAW_FLICKER (mean |log| gain between consecutive frames)
 *   flaw_watermark  watermark > FLAW_WATERMARK (persistent corner structure)
 *   flaw_lowq       noise > FLAW_NOISE or edge_width > FLAW_EDGE_WIDTH (heavy noise or blur)
 *   flaw_cut        cut_hist > FLAW_CUT_HIST or cut_block > FLAW_CUT_BLOCK (on a flickering
 *                   clip also cut_block > FLAW_CUT_BLOCK_FLICKER)
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

#define FLAW_STATIC_SCORE 6.0   /* 0..255: largest 4x4-block change over 4 frames (median) */
#define FLAW_STATIC_NOISE_K 2.0 /* the block threshold grows by this times the noise sigma */
#define FLAW_STATIC_FLICKER_K 100.0 /* … and by this times the flicker */
#define FLAW_STATIC_FLOW 0.4    /* pixels per frame */
#define FLAW_STATIC_EXTENT 1.0  /* (report only) */
#define FLAW_FLICKER 0.05        /* median |log gain|: 5% brightness change per frame */
#define FLAW_WATERMARK 0.4       /* excess persistent thin-stroke pixels in one corner, per pixel
                                    of frame height */
#define FLAW_NOISE 5.0           /* noise sigma, 0..255 */
#define FLAW_EDGE_WIDTH 1.12     /* sqrt(sum g^2 / sum L^2) on the strongest edges, pixels of the
                                    analysis size (sharp footage: 0.7-1.1 there) */
#define FLAW_CUT_HIST 0.09       /* histogram jump above the clip's median, 0..1 */
#define FLAW_CUT_BLOCK 8.0       /* block-mean jump above the median, 0..255 */
#define FLAW_CUT_BLOCK_FLICKER 2.0 /* on flickering clips the block jump must exceed this too */

/* Names of the flags, NULL-terminated: "flaw_static", …, "flaw_cut" (not flaw_any). */
extern const char *const flaw_names[];

/* Adds the flaw_* statistics computed from the ones already in s. */
void flaws_detect(clip_stats *s);

#ifdef __cplusplus
}
#endif
#endif

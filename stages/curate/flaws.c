/* stages/curate/flaws.c — see flaws.h. */
#include "stages/curate/flaws.h"

#include <stddef.h>

const char *const flaw_names[] = {"flaw_static", "flaw_flicker", "flaw_watermark", "flaw_lowq",
                                  "flaw_cut", NULL};

void flaws_detect(clip_stats *s) {
  double cap_motion = clip_stats_get(s, "caption_motion", 0);
  double extent = clip_stats_get(s, "motion_extent", 0);
  double flow = clip_stats_get(s, "flow_mean", 0);
  double noise = clip_stats_get(s, "noise", 0);
  (void)extent;
  /* Flow on heavy noise is noise: then only the block test counts, with a margin for it. */
  double thr = FLAW_STATIC_SCORE + FLAW_STATIC_NOISE_K * noise +
               FLAW_STATIC_FLICKER_K * clip_stats_get(s, "flicker", 0);
  int fl = clip_stats_get(s, "flicker", 0) > FLAW_FLICKER;
  /* Flicker shakes the colour histograms: then the block jump must confirm a cut. */
  int cut = (clip_stats_get(s, "cut_hist", 0) > FLAW_CUT_HIST ||
             clip_stats_get(s, "cut_block", 0) > FLAW_CUT_BLOCK) &&
            (!fl || clip_stats_get(s, "cut_block", 0) > FLAW_CUT_BLOCK_FLICKER);
  int st = cap_motion > 0.5 && clip_stats_get(s, "caption_pan_follow", 0) < 0.5 &&
           clip_stats_get(s, "static_score", 1e9) < thr &&
           clip_stats_get(s, "static_score_full", 0) < thr &&
           (noise > FLAW_NOISE || cut || fl || flow < FLAW_STATIC_FLOW);
  int wm = clip_stats_get(s, "watermark", 0) > FLAW_WATERMARK;
  int lq = clip_stats_get(s, "noise", 0) > FLAW_NOISE ||
           clip_stats_get(s, "edge_width", 0) > FLAW_EDGE_WIDTH;
  clip_stats_set(s, "flaw_static", st);
  clip_stats_set(s, "flaw_flicker", fl);
  clip_stats_set(s, "flaw_watermark", wm);
  clip_stats_set(s, "flaw_lowq", lq);
  clip_stats_set(s, "flaw_cut", cut);
  clip_stats_set(s, "flaw_any", st || fl || wm || lq || cut);
}

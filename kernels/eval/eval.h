/* kernels/eval/eval.h — VBench's 16 dimensions and T2V-CompBench's 7 categories on any video
 * (METHOD.md §6–7, DESIGN.md "Evaluation"): the quality dimensions from pixels (flow from
 * kernels/vision/flow.h), the semantic ones from the world's pixel reader
 * (kernels/world/reader.h) against a structured prompt (world_spec), VBench's normalisation,
 * weights and Quality / Semantic / Total.
 *
 *   eval_ctx *c = eval_ctx_new();                       // one per thread
 *   eval_quality q;  eval_quality_video(c, rgb, F, H, W, fps, &q);
 *   world_read r;    world_read_video_u8(rgb, F, H, W, fps, NULL, &r);
 *   eval_semantic s; eval_semantic_video(&r, &spec, &s);
 *   ... accumulate per dimension: Σ value·weight / Σ weight over videos (eval_acc) ...
 *   eval_totals t;   eval_vbench_totals(dim_value, dim_have, &t);
 *
 * Per-video values and how a dimension pools them: every dimension is the weighted mean of its
 * per-video values, with weight 1 except subject and background consistency, which VBench pools
 * frame-weighted (weight = number of frame terms c_i = F − 1). eval_acc does exactly this.
 *
 * Quality dimensions (u8 RGB (F, H, W, 3) as VBench reads them):
 *  - temporal flickering: (255 − mean_i MAE(f_i, f_{i+1})) / 255, MAE over pixels and channels.
 *  - dynamic degree: frames at interval round(fps / 8); per consecutive pair the mean of the top
 *    int(0.05·H·W) flow magnitudes; dynamic (1) when at least round(4·n/16) pairs exceed
 *    6·min(H, W)/256 pixels, n the subsampled frame count; else 0.
 *  - motion smoothness: the even frames 0, 2, 4, …; the midpoint of each consecutive pair by
 *    flow_midpoint (in place of AMT), rounded to u8, against the true odd frame:
 *    (255 − mean |mid − f_odd|) / 255.
 *  - subject / background consistency: VBench's formula c_i = (max(0, cos(f_{i−1}, f_i)) +
 *    max(0, cos(f_0, f_i))) / 2 over a fixed model-free frame descriptor (no learned encoder):
 *    subject = the mean-removed 16x16 colour thumbnail (layout: where things are) with a 4x4-cell
 *    gradient-orientation histogram (8 bins), L2-normalised; background = the frame's border ring
 *    (outer 1/8 on each side) as a mean-removed 8x8 colour thumbnail with 8-bin per-channel colour
 *    histograms, L2-normalised.
 *  - imaging quality (no-reference, in [0, 1]): sharpness × noise factor. Sharpness = the 99th
 *    percentile of the luma gradient magnitude over (half the luma range between the 1st and 99th
 *    percentiles), clamped to 1 (a one-pixel anti-aliased edge gives ~1, a blur of σ pixels about
 *    0.8/σ); noise factor = exp(−σ_n / 10) with σ_n Immerkær's noise estimate in levels.
 *  - aesthetic quality (no-reference, in [0, 1]): palette fidelity of a clean render of the world:
 *    the fraction of pixels that are within 24 levels (L2, after the reader's drift estimate) of a
 *    blend of one palette colour with one background colour, times exp(−σ_n / 20) for noise.
 *    Meant for the world's videos; on real videos it measures only how "flat-coloured" they are.
 *
 * Semantic dimensions (the reader against a world_spec; a per-video value in [0, 1]; each is
 * WORLD_NA — not applicable — when the spec does not state what it needs, and a categories the
 * world cannot express, dynamic attribute binding and object interactions, is always NA):
 *  - object_class: each spec object's shape is matched (mean over objects);
 *  - multiple_objects (2-object specs only): 1 when both objects are there with their colour and
 *    shape;
 *  - human_action: each object's motion direction (background-relative) matches;
 *  - color: each object's colour matches;
 *  - spatial_relationship (2-object specs): the first-frame relation matches;
 *  - scene: the background matches;
 *  - appearance_style: each object's size matches;
 *  - temporal_style: camera pan and each moving object's speed match (mean of the checks);
 *  - overall_consistency: 1 when every specified attribute matches at once, else 0;
 *  CompBench (score maps of METHOD.md §7, detectors replaced by the reader):
 *  - consistent_attribute_binding: per object a grade A (colour, shape, size as specified and
 *    seen in ≥ 80% of frames), B (as specified, seen in fewer), C (present with a wrong
 *    attribute), D (absent); the pair's map AA 5 … DD 1 (one object: its grade twice), (s−1)/4;
 *  - spatial_relationships: CompBench's per-frame map on the first frame: both missing 0, one
 *    missing 0.2, wrong relation 0.4, right 0.4 + 0.6·(1 − IoU of the two boxes);
 *  - motion_binding: per moving object the background-relative net displacement over the video
 *    (last visible − first, unwrapped) along the asked direction, |net| / W (or / H): the value
 *    when the direction is right, 0 when wrong, −1 when not found; two objects: the mean when both
 *    are right, half the right one's otherwise; video = 0 if s < 0 else 0.2 + 0.8·s. NA when no
 *    object of the spec moves;
 *  - action_binding: rubric on presence and action (motion and speed): two objects (2,2) 5,
 *    (2,1) 4, (2,0) 3, (1,1) 2, (1,0) 1, none 0; one object (1,1) 5, (1,0) 3, none 0; /5;
 *  - generative_numeracy: per frame, per spec object 1/n when exactly one object of its colour and
 *    shape is visible; mean over frames.
 * Matching spec objects to read objects: the assignment (over all injective maps) with the most
 * agreeing specified attributes; unmatched spec objects fail every check. On a plain background
 * where several pan hypotheses fit (reader.h step 6), the hypothesis most favourable to the spec
 * is used, because those scenes render identical pixels.
 *
 * VBench normalisation (scripts/constant.py): n = (x − min)/(max − min) · weight; Quality =
 * Σ n over the 7 quality dimensions / 6.5, Semantic = Σ n over the 9 semantic ones / 9, Total =
 * (4·Quality + Semantic)/5. The world's exact semantic scores live in [0, 1] while VBench's
 * scene, appearance style, temporal style and overall consistency maxima are 0.8222, 0.2855,
 * 0.364 and 0.364, so n can exceed 1 there: eval_vbench_totals takes `clamp` to cap each n at its
 * weight (turbo's reports clamp and say so; clamp = 0 gives VBench's arithmetic unchanged).
 */
#ifndef TURBO_EVAL_EVAL_H
#define TURBO_EVAL_EVAL_H

#include <stdint.h>

#include "kernels/vision/flow.h"
#include "kernels/world/reader.h"

#ifdef __cplusplus
extern "C" {
#endif

/* VBench's 16 dimensions (the 7 quality ones first) then CompBench's 7 categories. */
typedef enum {
  EVAL_SUBJECT_CONSISTENCY = 0,
  EVAL_BACKGROUND_CONSISTENCY,
  EVAL_TEMPORAL_FLICKERING,
  EVAL_MOTION_SMOOTHNESS,
  EVAL_DYNAMIC_DEGREE,
  EVAL_AESTHETIC_QUALITY,
  EVAL_IMAGING_QUALITY,
  EVAL_OBJECT_CLASS,          /* first semantic dimension */
  EVAL_MULTIPLE_OBJECTS,
  EVAL_HUMAN_ACTION,
  EVAL_COLOR,
  EVAL_SPATIAL_RELATIONSHIP,
  EVAL_SCENE,
  EVAL_TEMPORAL_STYLE,
  EVAL_APPEARANCE_STYLE,
  EVAL_OVERALL_CONSISTENCY,
  EVAL_CB_CONSISTENT_ATTR,    /* first CompBench category */
  EVAL_CB_DYNAMIC_ATTR,
  EVAL_CB_SPATIAL,
  EVAL_CB_MOTION,
  EVAL_CB_ACTION,
  EVAL_CB_INTERACTION,
  EVAL_CB_NUMERACY,
  EVAL_DIM_COUNT
} eval_dim;

#define EVAL_QUALITY_FIRST EVAL_SUBJECT_CONSISTENCY
#define EVAL_QUALITY_COUNT 7
#define EVAL_SEMANTIC_FIRST EVAL_OBJECT_CLASS
#define EVAL_SEMANTIC_COUNT 9
#define EVAL_VBENCH_COUNT 16
#define EVAL_CB_FIRST EVAL_CB_CONSISTENT_ATTR
#define EVAL_CB_COUNT 7

/* VBench / CompBench key ("subject_consistency", …, "consistent_attribute_binding", …,
 * "generative_numeracy"); "?" for values out of range. */
const char *eval_dim_name(eval_dim d);
/* Human title ("Subject consistency", …). */
const char *eval_dim_title(eval_dim d);
/* The dimension named by its key, or -1. */
int eval_dim_from_name(const char *name);
/* 1 when turbo computes d exactly on the world (semantic dims and CompBench categories except
 * the two not expressible), 0 for quality dims, -1 for never-applicable categories. */
int eval_dim_is_exact(eval_dim d);
/* Why a category is never applicable in the world (dynamic attribute binding, object
 * interactions), else NULL. */
const char *eval_dim_na_reason(eval_dim d);
/* VBench's (min, max) and weight of a VBench dimension (d < EVAL_VBENCH_COUNT). */
void eval_vbench_constants(eval_dim d, double *min, double *max, double *weight);
/* (x − min)/(max − min) · weight for a VBench dimension; x itself for CompBench categories. */
double eval_vbench_normalise(eval_dim d, double x);

/* ---- quality dimensions ------------------------------------------------------------------- */

/* Per-thread scratch (flow workspace, frame buffers). */
typedef struct eval_ctx eval_ctx;
eval_ctx *eval_ctx_new(void);
void eval_ctx_free(eval_ctx *c); /* ignores NULL */
/* Flow options used by dynamic degree and motion smoothness (defaults: flow_opts_default with
 * alpha for [0,1] frames). */
flow_opts *eval_ctx_flow_opts(eval_ctx *c);

typedef struct {
  double value[EVAL_QUALITY_COUNT];  /* per-video value, indexed by eval_dim (0..6) */
  double weight[EVAL_QUALITY_COUNT]; /* pooling weight (0 when the video is too short for it) */
  /* Details for reports: */
  double flow_top[256];  /* dynamic degree: top-5% mean flow per subsampled pair (first 256) */
  int n_pairs;           /* subsampled pairs */
  double dyn_thres;      /* 6·min(H,W)/256 */
  int dyn_count_num;     /* pairs needed */
  double sharpness, noise_sigma, palette_fit;
} eval_quality;

/* All seven quality dimensions of one video, u8 (F, H, W, 3) at fps. TB_ERR + err_get() for
 * F < 2, H or W < 8 or fps <= 0. A video of 2 frames has motion smoothness weight 0 (it needs
 * 3). */
int eval_quality_video(eval_ctx *c, const uint8_t *rgb, int F, int H, int W, double fps,
                       eval_quality *out);

/* The single dimensions (u8 (F, H, W, 3)), for tests and other stages. */
double eval_temporal_flickering(const uint8_t *rgb, int F, int H, int W);
/* 0 or 1; detail (may be NULL) gets flow_top, n_pairs, dyn_thres and dyn_count_num. */
int eval_dynamic_degree(eval_ctx *c, const uint8_t *rgb, int F, int H, int W, double fps,
                        eval_quality *detail);
double eval_motion_smoothness(eval_ctx *c, const uint8_t *rgb, int F, int H, int W);
/* Σ c_i over i = 1..F−1 (returned) for subject (which = 0) or background (1) consistency; the
 * per-video value is the sum / (F − 1). */
double eval_consistency_sum(eval_ctx *c, const uint8_t *rgb, int F, int H, int W, int which);
/* The model-free frame descriptor (which: 0 subject, 1 background) of one frame (H, W, 3) u8
 * into d (eval_descriptor_len(which) floats, L2-normalised). */
int eval_descriptor_len(int which);
void eval_descriptor(const uint8_t *frame, int H, int W, int which, float *d);
double eval_imaging_quality(const uint8_t *rgb, int F, int H, int W, double *sharpness,
                            double *noise_sigma);
double eval_aesthetic_quality(const uint8_t *rgb, int F, int H, int W, double *palette_fit);
/* Immerkær's noise σ (levels) of one luma frame (H, W) in [0, 255]. */
double eval_noise_sigma(const float *luma, int H, int W);

/* ---- semantic dimensions (the world's exact ones) ---------------------------------------- */

typedef struct {
  double value[EVAL_DIM_COUNT];       /* per-video value of the semantic dims and CompBench
                                         categories (quality entries unused, 0) */
  world_status status[EVAL_DIM_COUNT];/* WORLD_OK: scored; WORLD_NA: not applicable to this
                                         spec (or never, see eval_dim_na_reason) */
  char reason[EVAL_DIM_COUNT][WORLD_REASON_MAX]; /* for a low score: the first attribute that
                                         failed and why ("obj 0 shape: read square, asked
                                         circle", "obj 1 motion: ambiguous: …"); NA: why */
  int match[SCENE_MAX_OBJECTS];       /* read object matched to each spec object, -1 none */
  int pan_hyp;                        /* pan hypothesis used (scene_pan) */
} eval_semantic;

/* Scores read r against spec s. TB_ERR + err_get() when the spec is malformed (n_objects not 1
 * or 2, enum values out of range). */
int eval_semantic_video(const world_read *r, const world_spec *s, eval_semantic *out);

/* ---- pooling and totals ------------------------------------------------------------------- */

/* Running pooled value per dimension: sum of value·weight and of weight, and the count. */
typedef struct {
  double sum[EVAL_DIM_COUNT], wsum[EVAL_DIM_COUNT];
  int64_t n[EVAL_DIM_COUNT];
} eval_acc;
void eval_acc_init(eval_acc *a);
void eval_acc_add_quality(eval_acc *a, const eval_quality *q);
void eval_acc_add_semantic(eval_acc *a, const eval_semantic *s); /* NA entries are skipped */
/* The pooled value of d (NAN when nothing was added). */
double eval_acc_value(const eval_acc *a, eval_dim d);

typedef struct {
  double norm[EVAL_VBENCH_COUNT]; /* normalised and weighted (NAN where have[d] == 0) */
  double quality, semantic, total;/* NAN when a needed dimension is missing */
  int quality_dims, semantic_dims;/* how many went in */
} eval_totals;
/* VBench's Quality / Semantic / Total from raw dimension values (raw[d], d < 16; have[d] != 0
 * where present). Missing dimensions are left out of their sum and denominator is kept, as
 * VBench does only for complete runs: quality/semantic are NAN unless all of their dims are
 * present. clamp != 0 caps each normalised value to [0, weight]. */
void eval_vbench_totals(const double *raw, const int *have, int clamp, eval_totals *out);

#ifdef __cplusplus
}
#endif
#endif

/* stages/pretrain/reward_train.h — what the three reward-model trainers of bin/pretrain (clip.c,
 * quality.c, video.c) share: the curated clips they learn from, one training driver (options,
 * catalogue records, resume, AdamW, checkpoints, evaluation on the val split), degradations and
 * caption negatives.
 *
 * Data: the members of a curated dataset (default "tailored"): their u8 frame shards
 * (T, H, W, 3), checked against the catalogue's checksums, and their long and short captions.
 * Never the world's truth sidecar.
 */
#ifndef TURBO_PRETRAIN_REWARD_TRAIN_H
#define TURBO_PRETRAIN_REWARD_TRAIN_H

#include <stdint.h>

#include "common/catalogue.h"
#include "common/safetensors.h"
#include "kernels/nn.h"
#include "kernels/nn/reward.h"

typedef struct {
  int64_t n;               /* clips */
  int64_t *clip_id;        /* (n) */
  const uint8_t **frames;  /* (n) each (T, H, W, 3) sRGB u8, views into the mapped shards */
  char **cap_long, **cap_short;
  int T, H, W;
  int nfiles;
  safetensors_file **files;
} reward_clips;

/* The members of dataset `name` in `split` (CATALOGUE_SPLIT_TRAIN / _VAL): frames and captions.
 * *dataset_id gets the dataset's id. TB_ERR when the dataset is missing or not ready, a shard is
 * missing or its bytes disagree with the catalogue. */
int reward_clips_load(catalogue *cat, const char *workspace, const char *name, int split,
                      reward_clips *out, int64_t *dataset_id);
void reward_clips_free(reward_clips *d);
/* Frame t of clip i as floats in [0, 1], (3, H, W) (channel-major), into out. */
void reward_clips_frame(const reward_clips *d, int64_t i, int t, float *out);

/* Training augmentation that the captions can follow: a horizontal mirror (the caption then
 * goes through caption_mirror) and a shift by (dx, dy) pixels with the edge pixels repeated
 * (small shifts keep every relation). */
typedef struct {
  int flip, dx, dy;
} reward_aug;
/* A random augmentation: mirror half the time, shifts in [-max_shift, max_shift]. */
reward_aug reward_aug_draw(uint64_t *rng, int max_shift);
/* reward_clips_frame through an augmentation. */
void reward_clips_frame_aug(const reward_clips *d, int64_t i, int t, const reward_aug *a, float *out);
/* The caption for an augmented clip (mirrored when a->flip) into out. */
void reward_aug_caption(const reward_aug *a, const char *caption, char *out, size_t n);

/* The run's random numbers: one splitmix64 state drives batches, frames, negatives and
 * degradations, so a resumed run draws exactly what the uninterrupted one would. */
uint64_t rt_u64(uint64_t *s);
double rt_uniform(uint64_t *s);                 /* [0, 1) */
int rt_int(uint64_t *s, int n);                 /* [0, n) */
double rt_normal(uint64_t *s);

/* A hard-negative caption: `caption` with one random edit of one of the kinds in `kinds`
 * (CAPTION_EDIT_* bits) that changes it, into out. 1 when one was made, 0 when the caption has
 * no such site. */
int rt_negative(uint64_t *rng, const char *caption, unsigned kinds, char *out, size_t n);

/* ---- the driver ----------------------------------------------------------------------------- */

typedef struct {
  reward_model *m;
  nn_ctx *c;
  const reward_clips *train;
  int B;            /* clips in this step */
  uint64_t *rng;
  int64_t step;
} reward_step;

#define REWARD_MAX_METRICS 48

typedef struct {
  int n;
  char name[REWARD_MAX_METRICS][48];
  double value[REWARD_MAX_METRICS];
} reward_metrics;
void reward_metrics_add(reward_metrics *m, const char *name, double v);

typedef struct {
  reward_kind kind;
  const char *family;   /* catalogue model family */
  int steps, batch;     /* defaults (--steps, --batch) */
  float lr;
  /* Records one step's loss on s->c (the driver resets it first) and returns the scalar loss
   * var; TB_ERR means the step could not be built. */
  int (*step)(const reward_step *s, nn_var *loss);
  /* Measures the model on the val clips (and the train clips where it needs a gallery). */
  int (*evaluate)(reward_model *m, nn_ctx *c, const reward_clips *val, uint64_t seed,
                  reward_metrics *out);
} reward_recipe;

/* The whole of `bin/pretrain --model NAME`: options, data, resume, training, checkpoint,
 * catalogue rows, evaluation. Returns the exit code. */
int reward_train_main(const reward_recipe *r, int argc, char **argv);

/* The clip model's and the video model's evaluation helpers, shared: the score of every
 * caption variant of one sample (reward_score over a batch of the same frames). */
int reward_rank_variants(reward_model *m, nn_ctx *c, const float *frames, int F,
                         const char *const *variants, int nv, float *scores);
/* Unit embeddings without gradients, in chunks: frames x (N, F, 3, S, S) → (N, embed) (clip:
 * F = 1 frame each; video: F = cfg.frames), texts (N) → (N, embed). Host arrays. */
int reward_embed_frames(reward_model *m, nn_ctx *c, const float *x, int64_t N, float *out);
int reward_embed_texts(reward_model *m, nn_ctx *c, const char *const *texts, int64_t N, float *out);
/* Text→frame retrieval over a gallery: img (N, E) and txt (N, E) row i of each the same
 * clip; same (N) a class per row (rows with one class describe the same thing: their captions
 * are equal). Adds name_r1, name_r5 (the clip itself in the top 1/5) and name_r1_caption (a
 * clip with the same caption first) to out. */
void reward_retrieval(const float *img, const float *txt, const int *same, int64_t N, int E,
                      const char *name, reward_metrics *out);
/* The index of the largest of n values (the first on ties). */
int reward_argmax(const float *v, int n);

/* Fills the model input of clip i (F frames (F, 3, S, S)). */
typedef void (*reward_input_fn)(const reward_clips *d, int64_t i, int F, float *out);
/* Caption-variant accuracy: for every clip whose caption (long or short) has a site of `kind`
 * (for DIRECTION a moving object: the variants are the four directions), scores the caption
 * with that site set to each value it can express and counts how often the caption's own
 * value scores highest. one_object: only clips with one object. Adds name (accuracy), name_n
 * (clips), name_chance (the mean 1/variants) and name_prior (the baseline that always answers
 * the value most frequent among these clips' captions, never looking at the frames) to out. */
int reward_variant_accuracy(reward_model *m, nn_ctx *c, const reward_clips *d, reward_input_fn in,
                            int F, int kind, int long_caption, int one_object, const char *name,
                            reward_metrics *out);

#endif

/* kernels/nn/reward.h — the reward models of the built-in world, the three kinds T2V-Turbo-v2
 * mixes (METHOD.md §3.5):
 *   clip     image-text: a frame encoder and the text encoder (kernels/nn/text.h) in one joint
 *            space, trained contrastively; score = cosine(frame, text) (CLIPScore without its
 *            scale), averaged over the frames given.
 *   quality  image quality: a frame scorer trained to prefer clean frames over degraded ones
 *            (HPS-like); score = its scalar, averaged over the frames given; texts are ignored.
 *   video    video-text: a video encoder over a stack of frames (per-frame convolutions with
 *            temporal convolutions between frames) and a text encoder; score = cosine(video,
 *            text) on exactly `frames` frames (4 strided frames, as InternVideo2 reads them).
 * Frames are RGB in [0, 1], (B, F, 3, H, W) with H = W = size: the decoded VAE outputs the
 * student sends.
 *
 * Frame towers: an optional stride-1 3x3 convolution with SiLU at full resolution (the stem;
 * the video tower follows it with a temporal convolution, so a motion of a pixel or two between
 * frames is seen before any down-sampling), then `levels` stride-2 3x3 convolutions with SiLU
 * (no normalisation, so absolute colour and brightness survive: colour names, flicker-like
 * brightness changes), the feature map flattened (positions matter: "to the left of") into a linear head. The video tower adds a
 * temporal convolution (kernel 3 over frames, residual) after each of its first
 * temporal_levels levels and flattens frames too, so frame order (motion direction) reaches the
 * head.
 *
 * Checkpoints are safetensors files: the parameters under their names ("image.*", "video.*",
 * "quality.*", "text.*") and metadata "format" = "turbo.reward.v1", "reward.kind",
 * "reward.config" (JSON, the text config included), "text.config" and "text.vocab" (clip and
 * video, so text_encoder_load reads their text tower), plus whatever the trainer adds (the
 * dataset it learned from).
 *
 * Errors: TB_OK / TB_ERR with err_get(). Shape misuse by the caller aborts.
 */
#ifndef TURBO_NN_REWARD_H
#define TURBO_NN_REWARD_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/nn.h"
#include "kernels/nn/text.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { REWARD_CLIP = 0, REWARD_QUALITY, REWARD_VIDEO, REWARD_KINDS } reward_kind;

/* "clip", "quality", "video"; "?" for others. */
const char *reward_kind_name(reward_kind k);
/* TB_ERR naming the choices for an unknown name. */
int reward_kind_parse(const char *name, reward_kind *out);

#define REWARD_MAX_LEVELS 6

typedef struct {
  reward_kind kind;
  int size;             /* H = W of the frames */
  int frames;           /* video: frames per clip; 0 for the image models (any count) */
  int stem;             /* width of a stride-1 3x3 convolution before the levels (0: none) */
  int levels;           /* stride-2 convolutions: size / 2^levels is the last map's side */
  int widths[REWARD_MAX_LEVELS]; /* channels after each level */
  int temporal_levels;  /* video: levels followed by a temporal convolution */
  int hidden;           /* quality: width of the head's hidden layer */
  int embed;            /* clip, video: joint embedding width (= text.dim) */
  text_config text;     /* clip, video */
} reward_config;

/* The built-in sizes: 64x64 frames, a 16-wide stem (quality), widths 16-32-64-128 over 4
 * levels, text_config_default() with one transformer block and an MLP of 2 x dim (embed 128); video 4 frames with temporal
 * convolutions after the first 2 levels. */
reward_config reward_config_default(reward_kind k);
int reward_config_check(const reward_config *c);
/* JSON: {"kind":"clip","size":64,"frames":0,"stem":0,"levels":4,"widths":[32,64,128,128],
 * "temporal_levels":0,"hidden":0,"embed":128,"text":{...}}; returns buf (always terminated). */
char *reward_config_format(const reward_config *c, char *buf, size_t n);
int reward_config_parse(reward_config *c, const char *json);

typedef struct {
  int w, b; /* weight, bias */
} reward_lin;

typedef struct {
  reward_config cfg;
  nn_params params;
  int has_text;
  text_tower text;                       /* clip, video */
  reward_lin stem;                       /* (stem, 3, 3, 3) when cfg.stem > 0 */
  reward_lin tstem;                      /* video with a stem: (stem, stem, 3) */
  reward_lin conv[REWARD_MAX_LEVELS];    /* (w_l, w_{l-1}, 3, 3) */
  reward_lin tconv[REWARD_MAX_LEVELS];   /* video: (w_l, w_l, 3) */
  reward_lin head;                       /* flattened map → embed (clip, video) or hidden */
  reward_lin head2;                      /* quality: hidden → 1 */
} reward_model;

/* Registers and allocates the parameters (not initialised). vocab: the text tower's
 * vocabulary (clip, video; ignored for quality). TB_ERR on a bad config. */
int reward_model_create(reward_model *m, const reward_config *cfg, const text_vocab *vocab);
void reward_model_init(reward_model *m, uint64_t seed);
void reward_model_free(reward_model *m);
/* Writes the checkpoint (atomically). meta: nmeta (key, value) pairs added to the metadata. */
int reward_model_save(const reward_model *m, const char *path, int nmeta,
                      const char *const *meta);
/* The metadata pairs that describe the model (kind, config, text config and vocabulary; not
 * "format"), for a training state (nn_train_save) that must be loadable as a model too: fills
 * keys/values (values are heap strings: free each), returns how many (at most 4). */
int reward_model_meta(const reward_model *m, const char **keys, char **values);
/* Creates m from a checkpoint (or a training state written with reward_model_meta): the config
 * and vocabulary from its metadata, the parameters by name. frozen = 1: no gradient block is
 * ever allocated (a served model: its memory is the parameters alone). */
int reward_model_load(reward_model *m, const char *path, int frozen);

/* ---- on the tape ----------------------------------------------------------------------------
 * frozen = 1: no parameter gradients (the frames may still get theirs). */

/* clip: x (N, 3, H, W) → unit-norm embeddings (N, embed). quality: → scores (N). */
nn_var reward_frame_forward(reward_model *m, nn_ctx *c, nn_var x, int64_t N, int frozen);
/* video: x (B, frames, 3, H, W) → unit-norm embeddings (B, embed). */
nn_var reward_video_forward(reward_model *m, nn_ctx *c, nn_var x, int64_t B, int frozen);
/* clip, video: the pooled text embedding of a batch, unit norm (B, embed). */
nn_var reward_text_forward(reward_model *m, nn_ctx *c, const text_batch *b, int frozen);

/* ---- scoring: the one definition of each score --------------------------------------------- */

/* Scores B samples of F frames each: frames (B, F, 3, H, W) host floats in [0, 1] (F must be
 * cfg.frames for video), texts (B) captions (ignored by quality; may then be NULL). score (B)
 * gets the rewards; grad (B, F, 3, H, W), when not NULL, gets d score_b / d frames_b (from one
 * backward through the frozen model; the context must then allow gradients). c is reset
 * first. TB_ERR (err_get) for a frame count, size or caption the model cannot take (captions
 * longer than text.max_len tokens are refused, not cut). */
int reward_score(reward_model *m, nn_ctx *c, const float *frames, int B, int F,
                 const char *const *texts, float *score, float *grad);
/* The same with the captions as a tokenized batch (text_batch_make / text_batch_from_ids of
 * the model's text tower; NULL for quality). */
int reward_score_batch(reward_model *m, nn_ctx *c, const float *frames, int B, int F,
                       const text_batch *tb, float *score, float *grad);

/* Similarities without gradients (clip, video): sim (K, nt) = cosine of sample k's frames
 * (K, F, 3, H, W) host (clip: the mean over its F frames of each frame's cosine; video: F =
 * cfg.frames) with caption j of texts (nt). For ranking captions per clip or scoring a clip
 * against several captions at once. Captions longer than the model reads are cut. */
int reward_similarity(reward_model *m, nn_ctx *c, const float *frames, int K, int F,
                      const char *const *texts, int nt, float *sim);

#ifdef __cplusplus
}
#endif
#endif

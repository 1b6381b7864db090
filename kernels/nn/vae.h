/* kernels/nn/vae.h — the frame VAE of the latent diffusion teacher: LDM's AutoencoderKL shape at
 * the built-in world's size (per-frame 2-D encoder and decoder with ResBlocks and a middle
 * attention, (n_levels - 1) stride-2 down-samplings with LDM's asymmetric (0, 1, 0, 1) padding,
 * a diagonal-Gaussian posterior (mean, log-variance) of z_ch channels), and the latent scale
 * factor measured from data (scale_by_std: 1 / std of the encoder's latents).
 *
 * Layouts. Frames (N, 3, H, W) in [-1, 1] (a video is N = B·T frames, VideoCrafter2's
 * decode_first_stage_2DAE); latents (N, z_ch, H/f, W/f) with f = 2^(n_levels-1) (f = 4: 64×64
 * frames give 16×16×4 latents). "Unscaled" latents are what the encoder's posterior gives;
 * the diffusion model works on scaled latents z = scale · unscaled (LDM's scale_factor, 0.18215
 * for the real SD VAE; measured for turbo's own).
 *
 * Checkpoints: safetensors with every parameter under LDM's names (encoder.conv_in, encoder.down.
 * L.block.J.…, encoder.mid.attn_1.…, quant_conv, post_quant_conv, decoder.…) and the config and
 * scale in the metadata ("vae.config"), so a checkpoint is self-describing.
 *
 * Errors: TB_OK / TB_ERR with err_get(); shape misuse by a caller aborts (TB_CHECK), but the host
 * helpers check the sizes they are given and return TB_ERR first.
 */
#ifndef TURBO_NN_VAE_H
#define TURBO_NN_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VAE_MAX_LEVELS 4

typedef struct {
  int in_ch;                   /* image channels (3) */
  int z_ch;                    /* latent channels (4) */
  int ch;                      /* channels of level 0 */
  int n_levels;                /* resolution levels (3: f = 4) */
  int ch_mult[VAE_MAX_LEVELS]; /* channel multiplier per level */
  int n_res;                   /* ResBlocks per level in the encoder (n_res + 1 in the decoder) */
  int groups;                  /* GroupNorm groups (32 in LDM; fewer for small widths) */
  int mid_attn;                /* 1: single-head attention in the middle of both halves */
  float scale;                 /* latent scale factor; 1 until measured */
} vae_config;

/* The built-in world's VAE (64×64 frames → 16×16×4 latents). */
vae_config vae_config_default(void);

typedef struct vae_impl vae_impl; /* private */

typedef struct {
  vae_config cfg;
  nn_params params;
  int frozen; /* 1: no gradient block (vae_freeze); gradients still reach the inputs */
  vae_impl *impl;
} vae;

/* Registers and allocates the parameters (not initialised). TB_ERR on a config that does not
 * add up. */
int vae_create(vae *v, const vae_config *cfg);
void vae_init_weights(vae *v, uint64_t seed);
void vae_freeze(vae *v);
void vae_free(vae *v);
/* Spatial down-sampling factor f. */
int vae_factor(const vae *v);
/* Parameters + config (with scale) in metadata, atomically. */
int vae_save(const vae *v, const char *path);
/* Creates v from a checkpoint written by vae_save (config from its metadata). */
int vae_load(vae *v, const char *path);

/* On the tape. x (N, in_ch, H, W) → the posterior's mean and log-variance (N, z_ch, H/f, W/f),
 * unscaled (H, W multiples of f). */
void vae_encode(vae *v, nn_ctx *c, nn_var x, int N, int H, int W, nn_var *mean, nn_var *logvar);
/* z (N, z_ch, h, w) unscaled → frames (N, in_ch, h·f, w·f), about [-1, 1] (not clamped). */
nn_var vae_decode(vae *v, nn_ctx *c, nn_var z, int N, int h, int w);

/* Host helpers, without gradients (the context is reset and left empty):
 * rgb (N, H, W, 3) u8 frames → scaled latents z (N, z_ch, H/f, W/f) = scale · (mean + std ·
 * noise), noise drawn from seed (seed 0: the mean, no noise). */
int vae_encode_frames(vae *v, nn_ctx *c, const uint8_t *rgb, int N, int H, int W, uint64_t seed,
                      float *z);
/* Scaled latents z (N, z_ch, h, w) → frames (N, 3, h·f, w·f) in [0, 1] (x/2 + 1/2, clamped). */
int vae_decode_latents(vae *v, nn_ctx *c, const float *z, int N, int h, int w, float *rgb01);

/* Additions to the interface above (everything above is unchanged):
 *
 * vae_measure_scale: LDM's scale_by_std on N frames rgb (N, H, W, 3) u8: encodes them with
 * posterior draws from seed (seed 0: the means), *scale = 1 / std of all the unscaled latents
 * (the caller stores it in v->cfg.scale). TB_ERR when the std is 0 or not finite. */
int vae_measure_scale(vae *v, nn_ctx *c, const uint8_t *rgb, int N, int H, int W, uint64_t seed,
                      float *scale);
/* The standard normals vae_encode_frames draws for seed (n values, Box-Muller over splitmix64),
 * for callers that sample the posterior on the tape (nn_gauss_sample). */
void vae_noise(uint64_t seed, float *out, int64_t n);
/* The config as JSON (what "vae.config" holds; malloc'd, the caller frees) and back (checked:
 * TB_ERR names the bad field). */
char *vae_config_format(const vae_config *c);
int vae_config_parse(vae_config *c, const char *json);
/* vae_save with nmeta extra (key, value) metadata pairs (the dataset, the training steps). */
int vae_save_meta(const vae *v, const char *path, int nmeta, const char *const *meta);

/* Checkpoint families whose names vae_tensor_map translates to turbo's (LDM's). */
typedef enum {
  VAE_FAMILY_LDM = 0,  /* LDM / VideoCrafter2 first_stage_model names: the identity (strip the
                        * "first_stage_model." prefix of a full LDM checkpoint first) */
  VAE_FAMILY_DIFFUSERS, /* diffusers' AutoencoderKL (ModelScope T2V's vae/) */
} vae_family;
/* The checkpoint tensor of every parameter of v under a family's names, for
 * nn_params_load_map. Free with nn_tensor_map_free. */
int vae_tensor_map(const vae *v, vae_family fam, nn_tensor_map *m);
/* A turbo config from diffusers' AutoencoderKL config.json text (block_out_channels,
 * layers_per_block, latent_channels, norm_num_groups, scaling_factor (0.18215 when absent),
 * mid_block_add_attention). TB_ERR on a layout turbo's VAE cannot express. */
int vae_config_from_diffusers(const char *json, vae_config *out);

#ifdef __cplusplus
}
#endif
#endif

/* kernels/motion.h — motion guidance: MotionClone's energy on temporal-attention maps, as
 * T2V-Turbo-v2 uses it inside the teacher's ODE step (METHOD.md §3.3, §5).
 *
 * A reference is what the energy needs of a reference clip's maps, never the whole maps: for
 * every kept temporal layer l and every query row r (the maps are (G, heads, Nq, Nk) with
 * G = B·S: one row per sample, spatial position, head and query frame), the index of the row's
 * top-1 key and its probability. The energy of a generation's maps P against it is, per sample b,
 *   E_b = scale · mean_l L_lb,   L_lb = mean over the rows r of sample b of (P_l[r, idx] - val)^2
 * (the top-1-masked MSE of MotionClone with rank 1; scale = 1e4 in T2V-Turbo-v2: temp_loss_scale
 * 100 times the loss's own 100). Its gradient d(Σ_b E_b)/dz reaches the noisy latent z through
 * the whole teacher, so each sample's score is the same as it would be alone in a batch.
 *
 * Memory: on the device (kernels/device.h), like every tensor of the models. Errors: TB_OK /
 * TB_ERR with err_get() naming the layer or shape that disagrees.
 */
#ifndef TURBO_MOTION_H
#define TURBO_MOTION_H

#include <stdint.h>

#include "kernels/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MOTION_MAX_LAYERS 32

typedef struct {
  int n;                                    /* layers */
  int B;                                    /* samples */
  char name[MOTION_MAX_LAYERS][NN_NAME_MAX]; /* layer names (nn_attn_name) */
  int64_t rows[MOTION_MAX_LAYERS];          /* query rows per sample: S·heads·Nq */
  int nk[MOTION_MAX_LAYERS];                /* keys per row (frames) */
  int32_t *idx[MOTION_MAX_LAYERS];          /* (B·rows) device: top-1 key per row */
  float *val[MOTION_MAX_LAYERS];            /* (B·rows) device: its probability */
} motion_ref;

/* The reference of every map kept in c's last pass (nn_ctx_keep_attn / _only), for B samples
 * (each map's G must be a multiple of B). r is overwritten (free it with motion_ref_free). */
int motion_ref_from_ctx(motion_ref *r, const nn_ctx *c, int B);
void motion_ref_free(motion_ref *r);
/* Total rows of all layers for all samples: the length of the flat host form. */
int64_t motion_ref_total_rows(const motion_ref *r);
/* Flat host form (caches, messages): idx and val of every layer in order, each (B, rows). */
void motion_ref_export(const motion_ref *r, int32_t *idx, float *val);
/* The inverse: a reference of n layers (names, rows and keys per layer) for B samples from the
 * flat host arrays; TB_ERR on a key index outside [0, nk) or a value outside [0, 1]. */
int motion_ref_import(motion_ref *r, int n, int B, const char *const *names, const int64_t *rows,
                      const int *nk, const int32_t *idx, const float *val);
/* One sample's reference out of a batch's (b < r->B) into out (B = 1). */
int motion_ref_take(motion_ref *out, const motion_ref *r, int b);

/* The energy of the maps kept in c's last pass against r: E (B floats, host) per sample. With
 * want_grad, dE_b/dP is added to each layer's extra gradient (nn_attn_extra_grad) so that the
 * next nn_backward carries it into the model; c must then run with gradients. Every layer of r
 * must be kept in c with the same rows; extra kept layers are ignored. */
int motion_energy(nn_ctx *c, const motion_ref *r, float scale, int want_grad, float *E);

/* The teacher's side in one call: eps = unet(z, t, context) with gradient to z through the
 * frozen UNet (unet_freeze), keeping the reference's layers; E per sample and dE/dz (host, the
 * size of z). z, t, context are host arrays (B, T, C, H, W), (B), (B, L, text_dim); w and motion
 * may be NULL (models without those embeddings). eps and dEdz may be NULL. The context is reset
 * first and holds the pass afterwards. */
int motion_score(unet *u, nn_ctx *c, const motion_ref *r, float scale, int B, int T, int H, int W,
                 int L, const float *z, const float *t, const float *w, const float *motion,
                 const float *context, float *eps, float *dEdz, float *E);

/* The reference of a clip's own (inverted) latent z_ref at t: a no-gradient pass keeping the
 * named layers (n names; e.g. unet_temporal_layers(u, 1, ...)). */
int motion_ref_extract(unet *u, nn_ctx *c, int n, const char *const *layers, int B, int T, int H,
                       int W, int L, const float *z_ref, const float *t, const float *w,
                       const float *motion, const float *context, motion_ref *r);

/* The guided direction of T2V-Turbo-v2 (METHOD.md §3.3, DESIGN.md "Decisions"):
 * eps_aug = eps - m · factor · score over n values, with factor sqrt(1 - abar_t) (MotionClone,
 * turbo's default) or, with tt_factor, sqrt(1 - sqrt(abar_t)) (the released T2V-Turbo-v2 code).
 * The DDIM step then uses x0 from the unguided eps and eps_aug for the direction term only. */
float motion_factor(float abar_t, int tt_factor);

#ifdef __cplusplus
}
#endif
#endif

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

#include "kernels/diffusion.h"
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

/* ---- the guided solver step (T2V-Turbo-v2's energy term, METHOD.md §3.3) ----------------- */

/* What a guided step needs besides the batch. */
typedef struct {
  const motion_ref *ref; /* B samples' references (motion_ref_take gives sample b's) */
  float m;               /* guidance strength (0.05 in T2V-Turbo-v2); 0: no term */
  float scale;           /* energy scale on the mean per-layer MSE (1e4) */
  int tt_factor;         /* 0: sqrt(1 - abar_t) (MotionClone, default); 1: sqrt(1 - sqrt(abar_t)) */
  float tau;             /* fraction of the noisiest solver indices guided (0.5) */
} motion_guide;

/* The first guided solver index: n >= ceil((1 - tau) n_ddim) is guided (100 of 200 for 0.5). */
int motion_guide_first_index(const diff_schedule *s, float tau);
/* 1 when a sample at solver index n gets the term (m != 0 and n in the noisy tau of the grid). */
int motion_guide_active(const diff_schedule *s, const motion_guide *g, int n);

/* The energy term on the direction of a DDIM step, in place: for each sample b whose index
 * idx[b] is guided, dE_b/dz_t through the frozen UNet (one B = 1 pass with gradient each, so
 * memory is that of one sample), then eps_b -= m · factor(abar_t) · dE_b/dz_t. Samples outside
 * the guided half are left as they are. x0 is not touched: the caller's DDIM step takes the
 * unguided x0 and this eps (diff_ddim_step). Host arrays: z (B, T, C, H, W) at the grid
 * timesteps of idx, ctx (B, L, D) captions (the conditional branch), eps (B, T, C, H, W) the CFG
 * estimate; dEdz (may be NULL) gets the scores (zero for unguided samples), E (B, may be NULL)
 * the energies (0 there). TB_ERR (err_get) on a reference that does not fit the model. */
int motion_guide_eps(unet *u, nn_ctx *c, const diff_schedule *s, const motion_guide *g, int B,
                     int T, int H, int W, int L, const float *z, const int *idx, const float *ctx,
                     float *eps, float *dEdz, float *E);
/* The same at DDPM timesteps t (B) rather than solver indices, for samplers whose steps are
 * not all on the solver grid: guided where t[b] >= ddim_t[motion_guide_first_index]. */
int motion_guide_eps_t(unet *u, nn_ctx *c, const diff_schedule *s, const motion_guide *g, int B,
                       int T, int H, int W, int L, const float *z, const int *t, const float *ctx,
                       float *eps, float *dEdz, float *E);
/* The same correction from scores already computed (a cache): eps_b -= m · factor · score_b
 * on guided samples; n values per sample. */
void motion_guide_apply_score(const diff_schedule *s, const motion_guide *g, int B, int64_t n,
                              const int *idx, const float *score, float *eps);

/* ---- the per-clip precompute of bin/motion (METHOD.md §2) --------------------------------- */

/* One clip's record: everything the student's teacher step needs at the clip's index. Arrays
 * are host, caller-allocated, n = T·C·H·W floats each. */
typedef struct {
  int index;                   /* solver index */
  float *z_t;                  /* (n) a_t z0 + s_t noise */
  float *eps_c, *eps_u;        /* (n) teacher eps with the caption / the empty caption */
  float *score;                /* (n) dE/dz_t against the clip's own inverted reference */
  float *z_example;            /* (n, may be NULL) the inverted clean latent at t */
  motion_ref ref;              /* the reference of z_example (free with motion_ref_free) */
  float E;                     /* the energy of z_t against it */
  int forwards;                /* UNet forwards spent (a backward counted as two) */
} motion_record;

/* The precompute of one clip: DDIM inversion of z0 (T, C, H, W) with its caption ctx (L, D) up
 * to ddim_t[index] in inv_steps steps on a coarse grid (timesteps index·k/inv_steps, the
 * conditional eps evaluated at each step's target timestep), the reference of the inverted
 * latent on the n named layers, z_t from `noise`, eps_u with null_ctx (L, D), and eps_c, E and
 * dE/dz_t from one pass with gradient. Costs inv_steps + 5 forward-equivalents (4 steps: 9).
 * TB_ERR on an index outside the grid, inv_steps < 1 or layers the model does not keep. */
int motion_precompute(unet *u, nn_ctx *c, const diff_schedule *s, int T, int H, int W, int L,
                      const float *z0, const float *ctx, const float *null_ctx,
                      const float *noise, int index, int inv_steps, int n,
                      const char *const *layers, float scale, motion_record *out);

#ifdef __cplusplus
}
#endif
#endif

/* kernels/nn/teacher.h — the teacher as an ODE solver: one frozen latent video UNet (kernels/nn.h)
 * on the diffusion schedule of kernels/diffusion.h, run without gradients. What bin/teacher,
 * bin/sample, bin/motion and the student share:
 *
 *   teacher_predict  z_t, timesteps, w, text → eps_c, eps_u (one batched forward of 2B
 *                    samples), the CFG estimate eps = eps_c + w (eps_c - eps_u) (the LCM form
 *                    of DESIGN.md "Decisions") and x0 = (z_t - s_t eps) / a_t
 *   teacher_step     the same at a solver index n, plus x_prev = DDIM step to abar_prev[n]
 *                    (METHOD.md §1): the service's answer to teacher.step
 *   teacher_sample   N-step DDIM with CFG from seeded noise (deterministic per seed)
 *   teacher_invert   DDIM inversion of a clean latent up to a solver index (METHOD.md §2:
 *                    conditional eps evaluated at the target timestep)
 *
 * The motion-guidance term (T2V-Turbo-v2's energy function, METHOD.md §3.3) is not computed
 * here: a caller passes a teacher_guidance, whose function receives the batch after the CFG
 * estimate and subtracts its term from eps in place; x0 stays the CFG x0 (the solver takes x0
 * as given, which the motion term relies on). NULL: no term.
 *
 * Arrays. Every array argument is a HOST array; latents are (B, T, C, H, W) with C = the UNet's
 * in_ch, text tokens (B, L, D) with D = its text_dim; the null (empty-caption) context is one
 * (L, D) array shared by the batch. The work runs on the current device and ops backend.
 * Errors: TB_OK / TB_ERR with err_get(); every size, timestep and index is checked (these come
 * from service requests), never asserted.
 */
#ifndef TURBO_NN_TEACHER_H
#define TURBO_NN_TEACHER_H

#include <stdint.h>

#include "kernels/diffusion.h"
#include "kernels/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct teacher_batch teacher_batch;

/* An energy-guidance term applied inside the solver step (the motion branch supplies one). fn
 * gets the batch (z_t, timesteps, text), eps_c and eps_u, and the CFG estimate eps (B, T, C, H,
 * W) to change in place; it may run the UNet with gradients on its own context. TB_ERR stops the
 * step with its message. */
typedef struct {
  int (*fn)(void *user, unet *u, const teacher_batch *b, const float *eps_c, const float *eps_u,
            float *eps);
  void *user;
} teacher_guidance;

/* One batch of a solver call. */
struct teacher_batch {
  int B, T, H, W, L;
  const float *z;        /* (B, T, C, H, W) latents at the batch's timesteps */
  const int *t;          /* (B) DDPM timesteps in [0, 1000) */
  const float *w;        /* (B) CFG scales; NULL: conditional only (eps = eps_c, no null pass) */
  const float *ctx;      /* (B, L, D) caption tokens */
  const float *null_ctx; /* (L, D) empty-caption tokens; required when w is given */
  const teacher_guidance *guide; /* NULL: no energy term */
};

/* Outputs, each (B, T, C, H, W) host floats, any of them NULL when not wanted. */
typedef struct {
  float *eps_c, *eps_u, *eps, *x0, *x_prev;
} teacher_out;

/* Checks a batch against the UNet: geometry, value counts are the caller's (host arrays of the
 * stated sizes), timesteps and finite w in [0, 100]. TB_ERR names what does not fit. */
int teacher_batch_check(const unet *u, const teacher_batch *b);

/* eps_c, eps_u, eps (CFG, then the guidance term) and x0 of the batch. c is reset and left
 * empty, in no-gradient mode. x_prev is not touched. */
int teacher_predict(unet *u, nn_ctx *c, const diff_schedule *s, const teacher_batch *b,
                    teacher_out *out);

/* One solver step at solver indices idx (B) (0 <= idx < n_ddim): b->t is ignored and taken as
 * the grid timesteps of idx; out->x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps. */
int teacher_step(unet *u, nn_ctx *c, const diff_schedule *s, teacher_batch *b, const int *idx,
                 teacher_out *out);

typedef struct {
  int steps;     /* N DDIM steps on the solver grid (diff_ddim_timesteps), 1..n_ddim */
  float w;       /* CFG scale (LCM form); 0: conditional only */
  float x0_clip; /* > 0: predicted x0 clamped to [-x0_clip, x0_clip] each step; 0: none */
  const teacher_guidance *guide; /* NULL: none */
} teacher_sample_opts;

/* Gaussian noise (T·C·H·W floats per sample) from one seed per sample: sample b's noise depends
 * on seeds[b] alone, so a sample is the same in any batch. */
void teacher_noise(const uint64_t *seeds, int B, int64_t per, float *z);
/* N-step DDIM from the latents in z (B, T, C, H, W) (noise at t = 999: teacher_noise) to clean
 * latents, in place. ctx (B, L, D), null_ctx (L, D) (needed when o->w != 0). */
int teacher_sample(unet *u, nn_ctx *c, const diff_schedule *s, int B, int T, int H, int W, int L,
                   const float *ctx, const float *null_ctx, const teacher_sample_opts *o, float *z);
/* DDIM inversion of clean latents z (B, T, C, H, W) in place, up through solver index `index`
 * (index + 1 steps, ending at the timestep ddim_t[index]); w as in teacher_batch (NULL:
 * conditional, as MotionClone inverts). prev (may be NULL) gets the latent before the last
 * step (z itself for index 0). */
int teacher_invert(unet *u, nn_ctx *c, const diff_schedule *s, int B, int T, int H, int W, int L,
                   const float *ctx, const float *null_ctx, const float *w, int index, float *z,
                   float *prev);


/* The same step to any target timesteps t_to (B) (< t; -1: to x0): x_prev = a_to x0 + s_to eps.
 * A solver step at index n is t = ddim_t[n], t_to = ddim_t[n-1] (0 for n = 0). */
int teacher_step_to(unet *u, nn_ctx *c, const diff_schedule *s, const teacher_batch *b,
                    const int *t_to, teacher_out *out);

/* ---- a teacher checkpoint -------------------------------------------------------------------
 * The UNet's parameters under their own names, "teacher.null_ctx" (L, D) (the empty-caption
 * tokens it learned with, the CFG null context) and metadata "teacher.config": the UNet config
 * and the latent geometry {"T","H","W","L"} it was trained on, as JSON. */
typedef struct {
  unet net;
  int T, H, W, L; /* latent frames and size, text tokens */
  float *null_ctx; /* (L, D) host */
} teacher_model;

/* {"unet":{...},"T":..,"H":..,"W":..,"L":..} into a malloc'd string. */
char *teacher_config_format(const teacher_model *m);
/* extra: nextra (key, value) metadata pairs. Atomic (temp + rename). */
int teacher_model_save(const teacher_model *m, const char *path, int nextra,
                       const char *const *extra);
/* Creates m from a checkpoint (frozen = 1: no gradient block). NULL-safe on failure. */
int teacher_model_load(teacher_model *m, const char *path, int frozen);
void teacher_model_free(teacher_model *m);

#ifdef __cplusplus
}
#endif
#endif

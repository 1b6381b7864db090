/* kernels/nn/student.h — the few-step student of consistency distillation (METHOD.md §3.1–3.4,
 * §4): the teacher's UNet with the CFG-scale and motion-scale condition embeddings added
 * (cond_embeds = 2, zero-initialised last layers, so a fresh student computes the teacher's
 * conditional eps), its boundary-scaled one-step prediction on the tape, the latent consistency
 * distillation loss, and the multistep consistency sampler.
 *
 *   f(z_t, t) = c_skip(t) z_t + c_out(t) x0(z_t, eps_s),  x0 = (z_t - s_t eps_s) / a_t
 *             = (c_skip + c_out / a_t) z_t - (c_out s_t / a_t) eps_s
 *
 * Arrays are HOST arrays; latents (B, T, C, H, W) with C the UNet's in_ch, text tokens
 * (B, L, D). Errors: TB_OK / TB_ERR with err_get(); sizes, timesteps and scales from the
 * outside are checked, never asserted.
 */
#ifndef TURBO_NN_STUDENT_H
#define TURBO_NN_STUDENT_H

#include <stdint.h>

#include "kernels/diffusion.h"
#include "kernels/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STUDENT_HUBER_C 0.001f   /* METHOD.md §3.4 */
#define STUDENT_W_MIN 5.0f       /* w ~ U[5, 15] (§3.2) */
#define STUDENT_W_MAX 15.0f
#define STUDENT_MOTION_INDEX 100 /* m is non-zero only at solver indices >= 100 (τ = 0.5) */

/* The student's configuration: the teacher's with both condition embeddings. */
unet_config student_config(const unet_config *teacher);
/* Creates s as student_config(&teacher->cfg), initialises its new embeddings (zero last
 * layers, seed) and copies every teacher parameter into it by name. TB_ERR when the teacher
 * already has condition embeddings that do not fit or a parameter's shape differs. */
int student_from_teacher(unet *s, const unet *teacher, uint64_t seed);

/* One batch of student predictions. */
typedef struct {
  int B, T, H, W, L;
  const float *z;   /* (B, T, C, H, W) latents at t */
  const int *t;     /* (B) DDPM timesteps in [0, 1000) */
  const float *w;   /* (B) CFG-scale condition */
  const float *m;   /* (B) motion-scale condition */
  const float *ctx; /* (B, L, D) caption tokens */
} student_batch;

int student_batch_check(const unet *s, const student_batch *b);

/* f(z_t, t) of the batch recorded on c (gradients to the student's parameters when c has
 * gradients on): a (B, T, C, H, W) var. TB_ERR on a batch that does not fit (*f untouched). */
int student_predict(unet *s, nn_ctx *c, const diff_schedule *sch, const student_batch *b,
                    nn_var *f);

/* The same without gradients into a host array f (B, T, C, H, W); c is reset and left empty
 * and its gradient mode restored. */
int student_predict_host(unet *s, nn_ctx *c, const diff_schedule *sch, const student_batch *b,
                         float *f);

/* The multistep consistency sampler (METHOD.md §4): N timesteps of diff_lcm_timesteps; each
 * step predicts f at t_i, and between steps re-injects fresh noise to the next timestep. z
 * (B, T, C, H, W) holds the starting noise (teacher_noise-style, from the caller) and gets the
 * clean latents. Noise for re-injection comes from per-sample seeds (sample b's result depends on
 * seeds[b] alone). m is applied only at timesteps >= 1000 · (1 - motion_pct) (0.5 in training);
 * pass m = 0 for none. */
typedef struct {
  int steps;         /* 1..DIFF_DDIM_STEPS */
  float w, m;        /* conditions */
  float motion_pct;  /* fraction of the noisiest timesteps that see m (0.5) */
} student_sample_opts;
int student_sample(unet *s, nn_ctx *c, const diff_schedule *sch, int B, int T, int H, int W,
                   int L, const float *ctx, const uint64_t *seeds, const student_sample_opts *o,
                   float *z);

#ifdef __cplusplus
}
#endif
#endif

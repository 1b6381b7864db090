/* kernels/diffusion.h — the diffusion mathematics every stage shares (METHOD.md §1, §3.1, §4):
 * the scaled-linear DDPM schedule of the teacher, q_sample, eps ↔ x0, the DDIM solver on its
 * 200-point grid (step and inversion), classifier-free guidance in the one LCM form, the
 * consistency boundary scalings c_skip / c_out, and the timesteps of the multistep consistency
 * sampler and of N-step DDIM sampling.
 *
 * Numbers. The schedule is computed in double on the host (the reference builds it in float32,
 * which differs by up to ~1e-5 relative in abar near t = 999); every coefficient handed to a
 * kernel is that double rounded once to float. Tensor
 * arithmetic goes through kernels/ops.h (op_scale_fwd, op_axpy), so the array functions run on
 * the current backend and take device pointers. Per-sample coefficients: arrays are (B, n), one
 * timestep or solver index per sample.
 *
 * Conventions: t is a DDPM timestep in [0, T); a solver index n in [0, 200) names the grid point
 * t_n = ddim_t[n] = 5 (n + 1) - 1 (4, 9, …, 999); one solver step goes from t_n to
 * abar_prev[n] = abar[t_{n-1}] (abar[0] for n = 0, not 1: the reference's convention).
 * Errors: the init functions return TB_OK / TB_ERR (err_get) for bad sizes; a timestep or
 * index out of range in the array functions is a caller's broken invariant (TB_CHECK aborts);
 * callers that take them from the outside check them first (diff_index_valid).
 */
#ifndef TURBO_DIFFUSION_H
#define TURBO_DIFFUSION_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DIFF_T_MAX 1000      /* training timesteps of the teacher (VideoCrafter2) */
#define DIFF_BETA_START 0.00085
#define DIFF_BETA_END 0.012
#define DIFF_DDIM_STEPS 200  /* solver grid (--num_ddim_timesteps 200) */
#define DIFF_SIGMA_DATA 0.5  /* consistency boundary scalings (METHOD.md §3.1) */
#define DIFF_TIMESTEP_SCALING 10.0
#define DIFF_MAX_SAMPLER_STEPS 1000

typedef struct {
  int T;                            /* training timesteps */
  int n_ddim;                       /* solver grid points */
  int skip;                         /* T / n_ddim: the solver's step in timesteps (k = 5) */
  double beta[DIFF_T_MAX];          /* (T) */
  double abar[DIFF_T_MAX];          /* (T) alphas_cumprod */
  int ddim_t[DIFF_T_MAX];           /* (n_ddim) grid timesteps skip (n + 1) - 1 */
  double ddim_abar[DIFF_T_MAX];     /* (n_ddim) abar[ddim_t[n]] */
  double ddim_abar_prev[DIFF_T_MAX];/* (n_ddim) abar[ddim_t[n-1]], abar[0] for n = 0 */
} diff_schedule;

/* The teacher's schedule: scaled-linear betas 0.00085–0.012 over 1000 steps, 200-point grid. */
void diff_schedule_default(diff_schedule *s);
/* Any scaled-linear schedule: T steps (<= DIFF_T_MAX), beta from beta_start to beta_end on a
 * square-root scale, n_ddim grid points (T % n_ddim == 0). TB_ERR on sizes that do not fit. */
int diff_schedule_init(diff_schedule *s, int T, double beta_start, double beta_end, int n_ddim);

/* sqrt(abar[t]) and sqrt(1 - abar[t]) (a_t, s_t); t in [0, T). */
double diff_alpha(const diff_schedule *s, int t);
double diff_sigma(const diff_schedule *s, int t);
/* 1 when n is a solver index of s (0 <= n < n_ddim). */
int diff_index_valid(const diff_schedule *s, int64_t n);
/* The grid timestep of solver index n, and the solver index of a grid timestep (-1 when t is
 * not on the grid). */
int diff_index_timestep(const diff_schedule *s, int n);
int diff_timestep_index(const diff_schedule *s, int t);

/* ---- arrays (device pointers; B samples of n floats each; out may alias an input) --------- */

/* z_t = a_t z0 + s_t noise, t = t[b] per sample. */
void diff_q_sample(const diff_schedule *s, float *zt, const float *z0, const float *noise,
                   const int *t, int B, int64_t n);
/* x0 = (z_t - s_t eps) / a_t. */
void diff_eps_to_x0(const diff_schedule *s, float *x0, const float *zt, const float *eps,
                    const int *t, int B, int64_t n);
/* eps = (z_t - a_t x0) / s_t. */
void diff_x0_to_eps(const diff_schedule *s, float *eps, const float *zt, const float *x0,
                    const int *t, int B, int64_t n);
/* The DDIM step of the solver (eta = 0) at index idx[b]: x_prev = sqrt(abar_prev) x0 +
 * sqrt(1 - abar_prev) eps. x0 is taken as given (not re-derived from eps), as the motion term
 * needs (METHOD.md §1, §3.3). */
void diff_ddim_step(const diff_schedule *s, float *x_prev, const float *x0, const float *eps,
                    const int *idx, int B, int64_t n);
/* The same step to any timestep: x_to = a_to x0 + s_to eps with abar_to = abar[t_to[b]];
 * t_to[b] < 0 gives x0 itself (the last step of N-step sampling). */
void diff_ddim_step_to(const diff_schedule *s, float *x_to, const float *x0, const float *eps,
                       const int *t_to, int B, int64_t n);
/* DDIM inversion, one step up from t - skip to t (METHOD.md §1 ddim_reverse_step):
 * t_prev = max(t - skip, 0), x_t = (x - sqrt(1 - abar[t_prev]) eps) sqrt(abar[t] / abar[t_prev])
 * + sqrt(1 - abar[t]) eps, with eps evaluated at the target timestep t. */
void diff_ddim_reverse_step(const diff_schedule *s, float *x_t, const float *x, const float *eps,
                            const int *t, int B, int64_t n);

/* Classifier-free guidance, the LCM form used everywhere in turbo (DESIGN.md "Decisions"):
 * eps = eps_c + w (eps_c - eps_u), w[b] per sample (Imagen's scale 1 + w). out may alias
 * either input. */
void diff_cfg(float *eps, const float *eps_c, const float *eps_u, const float *w, int B,
              int64_t n);

/* ---- scalars ---------------------------------------------------------------------------- */

/* Consistency boundary scalings with sigma_data 0.5 and timestep scaling 10 on the integer t:
 * c_skip = σ² / ((10 t)² + σ²), c_out = 10 t / sqrt((10 t)² + σ²); c_skip(0) = 1, c_out(0) = 0. */
double diff_c_skip(int t);
double diff_c_out(int t);

/* The multistep consistency sampler's N timesteps (METHOD.md §4): origin grid skip (1..n_ddim)
 * - 1, step = n_ddim / N (integer division), timesteps = origin[::-step][:N]; N = 4 gives 999,
 * 749, 499, 249. Writes N values into out; TB_ERR when N < 1 or N > n_ddim. */
int diff_lcm_timesteps(const diff_schedule *s, int N, int *out);
/* N-step DDIM sampling on the solver grid: the same N timesteps (from 999 down; N = 50 gives
 * 999, 979, …, 19), each step going to the next listed timestep and the last one to x0.
 * Writes N values into t_out and N targets into t_next (the next timestep, -1 after the last).
 * TB_ERR as diff_lcm_timesteps. */
int diff_ddim_timesteps(const diff_schedule *s, int N, int *t_out, int *t_next);

#ifdef __cplusplus
}
#endif
#endif

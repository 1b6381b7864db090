/* kernels/nn/diffusion.c — see kernels/diffusion.h. Every array function is a per-sample linear
 * combination out = a x + b y, done with two ops (scale, axpy) on the current backend. */
#include "kernels/diffusion.h"

#include <math.h>
#include <string.h>

#include "common/log.h"
#include "kernels/ops.h"

int diff_schedule_init(diff_schedule *s, int T, double beta_start, double beta_end, int n_ddim) {
  if (T < 2 || T > DIFF_T_MAX || n_ddim < 1 || n_ddim > T || T % n_ddim)
    return err_set("diffusion: %d timesteps with a %d-point grid do not fit (T <= %d, T %% n == 0)",
                   T, n_ddim, DIFF_T_MAX);
  if (!(beta_start > 0 && beta_end >= beta_start && beta_end < 1))
    return err_set("diffusion: betas %g..%g out of (0, 1)", beta_start, beta_end);
  memset(s, 0, sizeof *s);
  s->T = T;
  s->n_ddim = n_ddim;
  s->skip = T / n_ddim;
  double r0 = sqrt(beta_start), r1 = sqrt(beta_end), ab = 1.0;
  for (int i = 0; i < T; i++) {
    double r = r0 + (r1 - r0) * (double)i / (double)(T - 1);
    s->beta[i] = r * r;
    ab *= 1.0 - s->beta[i];
    s->abar[i] = ab;
  }
  for (int n = 0; n < n_ddim; n++) {
    s->ddim_t[n] = s->skip * (n + 1) - 1;
    s->ddim_abar[n] = s->abar[s->ddim_t[n]];
    s->ddim_abar_prev[n] = n == 0 ? s->abar[0] : s->abar[s->ddim_t[n - 1]];
  }
  return TB_OK;
}

void diff_schedule_default(diff_schedule *s) {
  TB_CHECK(diff_schedule_init(s, DIFF_T_MAX, DIFF_BETA_START, DIFF_BETA_END, DIFF_DDIM_STEPS) ==
           TB_OK);
}

static void check_t(const diff_schedule *s, int t) {
  TB_CHECKF(t >= 0 && t < s->T, "diffusion: timestep %d outside [0, %d)", t, s->T);
}

double diff_alpha(const diff_schedule *s, int t) {
  check_t(s, t);
  return sqrt(s->abar[t]);
}
double diff_sigma(const diff_schedule *s, int t) {
  check_t(s, t);
  return sqrt(1.0 - s->abar[t]);
}

int diff_index_valid(const diff_schedule *s, int64_t n) { return n >= 0 && n < s->n_ddim; }

int diff_index_timestep(const diff_schedule *s, int n) {
  TB_CHECKF(diff_index_valid(s, n), "diffusion: solver index %d outside [0, %d)", n, s->n_ddim);
  return s->ddim_t[n];
}

int diff_timestep_index(const diff_schedule *s, int t) {
  if (t < 0 || t >= s->T || (t + 1) % s->skip) return -1;
  return (t + 1) / s->skip - 1;
}

/* out (n) = a x + b y on the current backend; out may alias x or y. */
static void lin2(float *out, double a, const float *x, double b, const float *y, int64_t n) {
  if (out == y && out != x) {
    op_scale_fwd(out, y, (float)b, n);
    op_axpy(out, (float)a, x, n);
  } else if (x == y) {
    op_scale_fwd(out, x, (float)(a + b), n);
  } else {
    op_scale_fwd(out, x, (float)a, n);
    op_axpy(out, (float)b, y, n);
  }
}

void diff_q_sample(const diff_schedule *s, float *zt, const float *z0, const float *noise,
                   const int *t, int B, int64_t n) {
  for (int b = 0; b < B; b++)
    lin2(zt + b * n, diff_alpha(s, t[b]), z0 + b * n, diff_sigma(s, t[b]), noise + b * n, n);
}

void diff_eps_to_x0(const diff_schedule *s, float *x0, const float *zt, const float *eps,
                    const int *t, int B, int64_t n) {
  for (int b = 0; b < B; b++) {
    double a = diff_alpha(s, t[b]), sg = diff_sigma(s, t[b]);
    lin2(x0 + b * n, 1.0 / a, zt + b * n, -sg / a, eps + b * n, n);
  }
}

void diff_x0_to_eps(const diff_schedule *s, float *eps, const float *zt, const float *x0,
                    const int *t, int B, int64_t n) {
  for (int b = 0; b < B; b++) {
    double a = diff_alpha(s, t[b]), sg = diff_sigma(s, t[b]);
    lin2(eps + b * n, 1.0 / sg, zt + b * n, -a / sg, x0 + b * n, n);
  }
}

void diff_ddim_step(const diff_schedule *s, float *x_prev, const float *x0, const float *eps,
                    const int *idx, int B, int64_t n) {
  for (int b = 0; b < B; b++) {
    TB_CHECKF(diff_index_valid(s, idx[b]), "diffusion: solver index %d outside [0, %d)", idx[b],
              s->n_ddim);
    double ap = s->ddim_abar_prev[idx[b]];
    lin2(x_prev + b * n, sqrt(ap), x0 + b * n, sqrt(1.0 - ap), eps + b * n, n);
  }
}

void diff_ddim_step_to(const diff_schedule *s, float *x_to, const float *x0, const float *eps,
                       const int *t_to, int B, int64_t n) {
  for (int b = 0; b < B; b++) {
    double ab = 1.0; /* t_to < 0: x0 itself */
    if (t_to[b] >= 0) {
      check_t(s, t_to[b]);
      ab = s->abar[t_to[b]];
    }
    lin2(x_to + b * n, sqrt(ab), x0 + b * n, sqrt(1.0 - ab), eps + b * n, n);
  }
}

void diff_ddim_reverse_step(const diff_schedule *s, float *x_t, const float *x, const float *eps,
                            const int *t, int B, int64_t n) {
  for (int b = 0; b < B; b++) {
    check_t(s, t[b]);
    int tp = t[b] - s->skip < 0 ? 0 : t[b] - s->skip;
    double r = sqrt(s->abar[t[b]] / s->abar[tp]);
    double c = sqrt(1.0 - s->abar[t[b]]) - r * sqrt(1.0 - s->abar[tp]);
    lin2(x_t + b * n, r, x + b * n, c, eps + b * n, n);
  }
}

void diff_cfg(float *eps, const float *eps_c, const float *eps_u, const float *w, int B,
              int64_t n) {
  for (int b = 0; b < B; b++)
    lin2(eps + b * n, 1.0 + (double)w[b], eps_c + b * n, -(double)w[b], eps_u + b * n, n);
}

double diff_c_skip(int t) {
  double ts = DIFF_TIMESTEP_SCALING * t, sd2 = DIFF_SIGMA_DATA * DIFF_SIGMA_DATA;
  return sd2 / (ts * ts + sd2);
}

double diff_c_out(int t) {
  double ts = DIFF_TIMESTEP_SCALING * t, sd2 = DIFF_SIGMA_DATA * DIFF_SIGMA_DATA;
  return ts / sqrt(ts * ts + sd2);
}

int diff_lcm_timesteps(const diff_schedule *s, int N, int *out) {
  if (N < 1 || N > s->n_ddim)
    return err_set("diffusion: %d sampler steps (1 to %d allowed)", N, s->n_ddim);
  int step = s->n_ddim / N;
  /* origin[::-step] starts at the last grid point and walks down by `step` points */
  for (int k = 0; k < N; k++) out[k] = s->ddim_t[s->n_ddim - 1 - k * step];
  return TB_OK;
}

int diff_ddim_timesteps(const diff_schedule *s, int N, int *t_out, int *t_next) {
  if (diff_lcm_timesteps(s, N, t_out) != TB_OK) return TB_ERR;
  for (int k = 0; k < N; k++) t_next[k] = k + 1 < N ? t_out[k + 1] : -1;
  return TB_OK;
}

/* tests/test_diffusion.c — the diffusion module (kernels/diffusion.h) against values numpy
 * computed from the reference formulas (tests/golden/make_diffusion_golden.py wrote
 * tests/golden/diffusion_v1.txt): betas and alphas_cumprod of the scaled-linear schedule, the
 * 200-point DDIM grid and its abar_prev (abar[0] at index 0), c_skip / c_out, the multistep
 * consistency sampler's timesteps, q_sample, eps -> x0, one DDIM step, one inversion step and
 * CFG. Then DDIM inversion followed by DDIM sampling with the exact denoiser of Gaussian data
 * returns to the start latent, from the middle and from the top of the grid; on the reference
 * backend and the fast one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "kernels/diffusion.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

#define GOLDEN "tests/golden/diffusion_v1.txt"

typedef struct {
  char name[32];
  int n;
  double *v;
} gvec;
static gvec g_v[128];
static int g_nv;

static int golden_load(void) {
  char *text = NULL;
  if (fs_read_all(GOLDEN, &text, NULL) != TB_OK)
    return err_set("%s: cannot read (run from the repository root)", GOLDEN);
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (line[0] == '#') continue;
    if (g_nv == (int)(sizeof g_v / sizeof g_v[0])) break;
    gvec *g = &g_v[g_nv];
    int used = 0;
    if (sscanf(line, "%31s %d%n", g->name, &g->n, &used) != 2 || g->n < 1) {
      free(text);
      return err_set("%s: bad line '%.40s'", GOLDEN, line);
    }
    g->v = xmalloc(sizeof(double) * (size_t)g->n);
    char *p = line + used;
    for (int i = 0; i < g->n; i++) g->v[i] = strtod(p, &p);
    g_nv++;
  }
  free(text);
  return TB_OK;
}

static const gvec *golden(const char *name) {
  for (int i = 0; i < g_nv; i++)
    if (strcmp(g_v[i].name, name) == 0) return &g_v[i];
  TB_CHECKF(0, "golden value %s missing from %s", name, GOLDEN);
  return NULL;
}

static void check_vec(const char *what, const double *got, const char *gname, int n, double rtol) {
  const gvec *g = golden(gname);
  CHECKF(g->n == n, "%s: %d golden values, %d computed", what, g->n, n);
  if (g->n != n) return;
  check_close_f64(what, got, g->v, n, 1e-12, rtol);
}

static void check_f32(const char *what, const float *got, const char *gname, double atol) {
  const gvec *g = golden(gname);
  double *d = xmalloc(sizeof(double) * (size_t)g->n);
  for (int i = 0; i < g->n; i++) d[i] = got[i];
  check_close_f64(what, d, g->v, g->n, atol, 1e-5);
  free(d);
}

static void check_schedule(const diff_schedule *s) {
  check_vec("beta", s->beta, "beta", s->T, 1e-12);
  check_vec("abar", s->abar, "abar", s->T, 1e-12);
  double t[DIFF_T_MAX];
  for (int i = 0; i < s->n_ddim; i++) t[i] = s->ddim_t[i];
  check_vec("ddim_t", t, "ddim_t", s->n_ddim, 0);
  check_vec("ddim_abar", s->ddim_abar, "ddim_abar", s->n_ddim, 1e-12);
  check_vec("ddim_abar_prev", s->ddim_abar_prev, "ddim_abar_prev", s->n_ddim, 1e-12);
  CHECK(s->ddim_abar_prev[0] == s->abar[0]);
  CHECK(diff_timestep_index(s, 999) == 199 && diff_timestep_index(s, 4) == 0);
  CHECK(diff_timestep_index(s, 5) == -1 && diff_timestep_index(s, 1000) == -1);
  CHECK(diff_index_timestep(s, 37) == 189);
  CHECK(diff_index_valid(s, 0) && diff_index_valid(s, 199) && !diff_index_valid(s, 200) &&
        !diff_index_valid(s, -1));

  const gvec *ts = golden("cs_t");
  double cs[16], co[16];
  for (int i = 0; i < ts->n; i++) {
    cs[i] = diff_c_skip((int)ts->v[i]);
    co[i] = diff_c_out((int)ts->v[i]);
  }
  check_vec("c_skip", cs, "c_skip", ts->n, 1e-12);
  check_vec("c_out", co, "c_out", ts->n, 1e-12);
  CHECK(diff_c_skip(0) == 1.0 && diff_c_out(0) == 0.0);

  static const int Ns[] = {1, 2, 4, 8, 16, 25, 50, 200};
  for (size_t k = 0; k < sizeof Ns / sizeof Ns[0]; k++) {
    int N = Ns[k], out[DIFF_DDIM_STEPS], nxt[DIFF_DDIM_STEPS];
    char name[32];
    snprintf(name, sizeof name, "lcm_%d", N);
    CHECK(diff_lcm_timesteps(s, N, out) == TB_OK);
    double d[DIFF_DDIM_STEPS];
    for (int i = 0; i < N; i++) d[i] = out[i];
    check_vec(name, d, name, N, 0);
    CHECK(diff_ddim_timesteps(s, N, out, nxt) == TB_OK);
    CHECK(nxt[N - 1] == -1 && (N == 1 || nxt[0] == out[1]));
  }
  int o[4];
  CHECK(diff_lcm_timesteps(s, 0, o) == TB_ERR && diff_lcm_timesteps(s, 201, o) == TB_ERR);
  diff_schedule bad;
  CHECK(diff_schedule_init(&bad, 1000, 0.00085, 0.012, 300) == TB_ERR);
  CHECK(diff_schedule_init(&bad, 2000, 0.00085, 0.012, 200) == TB_ERR);
}

/* The array functions against the golden vectors (f32 arithmetic: 1e-5 absolute). */
static void check_arrays(const diff_schedule *s) {
  const gvec *gz = golden("vec_z0"), *gn = golden("vec_noise");
  int n = gz->n;
  float *z0 = xmalloc(sizeof(float) * n), *noise = xmalloc(sizeof(float) * n);
  float *out = xmalloc(sizeof(float) * n), *back = xmalloc(sizeof(float) * n);
  for (int i = 0; i < n; i++) z0[i] = (float)gz->v[i], noise[i] = (float)gn->v[i];
  char name[32], what[64];
  static const int qt[] = {0, 4, 499, 999};
  for (int k = 0; k < 4; k++) {
    int t = qt[k];
    snprintf(name, sizeof name, "q_%d", t);
    diff_q_sample(s, out, z0, noise, &t, 1, n);
    snprintf(what, sizeof what, "q_sample t=%d", t);
    check_f32(what, out, name, 1e-5);
    /* eps -> x0 recovers z0 (at t = 999, a_t = 0.068: 1/a_t amplifies rounding) */
    diff_eps_to_x0(s, back, out, noise, &t, 1, n);
    snprintf(name, sizeof name, "x0_%d", t);
    snprintf(what, sizeof what, "eps_to_x0 t=%d", t);
    check_f32(what, back, name, t == 999 ? 2e-4 : 1e-5);
    /* x0 -> eps recovers the noise */
    diff_x0_to_eps(s, back, out, z0, &t, 1, n);
    if (t > 0) {
      snprintf(what, sizeof what, "x0_to_eps t=%d", t);
      check_close_f32(what, back, noise, n, t < 10 ? 2e-3 : 1e-5, 1e-4);
    }
  }
  static const int idx[] = {0, 1, 57, 199};
  for (int k = 0; k < 4; k++) {
    snprintf(name, sizeof name, "ddim_%d", idx[k]);
    diff_ddim_step(s, out, z0, noise, &idx[k], 1, n);
    check_f32(name, out, name, 1e-5);
  }
  static const int rt[] = {4, 9, 504, 999};
  for (int k = 0; k < 4; k++) {
    snprintf(name, sizeof name, "rev_%d", rt[k]);
    diff_ddim_reverse_step(s, out, z0, noise, &rt[k], 1, n);
    check_f32(name, out, name, 1e-5);
  }
  float w = 7.5f;
  diff_cfg(out, z0, noise, &w, 1, n);
  check_f32("cfg", out, "cfg_7.5", 1e-5);
  /* aliasing: out = eps_c and out = eps_u give the same */
  memcpy(back, z0, sizeof(float) * n);
  diff_cfg(back, back, noise, &w, 1, n);
  check_close_f32("cfg out=eps_c", back, out, n, 0, 0);
  memcpy(back, noise, sizeof(float) * n);
  diff_cfg(back, z0, back, &w, 1, n);
  check_close_f32("cfg out=eps_u", back, out, n, 0, 0);
  /* per-sample coefficients: two samples at two timesteps */
  float *z2 = xmalloc(sizeof(float) * 2 * n), *n2 = xmalloc(sizeof(float) * 2 * n),
        *o2 = xmalloc(sizeof(float) * 2 * n);
  memcpy(z2, z0, sizeof(float) * n), memcpy(z2 + n, z0, sizeof(float) * n);
  memcpy(n2, noise, sizeof(float) * n), memcpy(n2 + n, noise, sizeof(float) * n);
  int t2[2] = {999, 4};
  diff_q_sample(s, o2, z2, n2, t2, 2, n);
  check_f32("q_sample batch[0]", o2, "q_999", 1e-5);
  check_f32("q_sample batch[1]", o2 + n, "q_4", 1e-5);
  free(z2), free(n2), free(o2);
  free(z0), free(noise), free(out), free(back);
}

/* The exact denoiser of data x0 ~ N(0, sd² I): E[eps | x_t] = s_t x_t / (a_t² sd² + s_t²). */
static void gauss_eps(const diff_schedule *s, float *eps, const float *x, int t, int64_t n,
                      double sd) {
  double a2 = s->abar[t], s2 = 1 - a2, k = sqrt(s2) / (a2 * sd * sd + s2);
  for (int64_t i = 0; i < n; i++) eps[i] = (float)(k * x[i]);
}

/* DDIM inversion (TT reverse_ddim_loop: eps at the target timestep) from z0 up to solver index
 * `top`, then DDIM sampling back down to abar_prev[0]; returns ||back - z0|| / ||z0||. */
static double invert_and_sample(const diff_schedule *s, const float *z0, int64_t n, int top,
                                double sd) {
  float *x = xmalloc(sizeof(float) * n), *eps = xmalloc(sizeof(float) * n),
        *x0 = xmalloc(sizeof(float) * n);
  memcpy(x, z0, sizeof(float) * n);
  for (int i = 0; i <= top; i++) {
    int t = s->ddim_t[i];
    gauss_eps(s, eps, x, t, n, sd);
    diff_ddim_reverse_step(s, x, x, eps, &t, 1, n);
  }
  for (int i = top; i >= 0; i--) {
    int t = s->ddim_t[i];
    gauss_eps(s, eps, x, t, n, sd);
    diff_eps_to_x0(s, x0, x, eps, &t, 1, n);
    diff_ddim_step(s, x, x0, eps, &i, 1, n);
  }
  double e = 0, z = 0;
  for (int64_t i = 0; i < n; i++) {
    e += (double)(x[i] - z0[i]) * (x[i] - z0[i]);
    z += (double)z0[i] * z0[i];
  }
  free(x), free(eps), free(x0);
  return sqrt(e / z);
}

static void check_inversion(const diff_schedule *s) {
  int64_t n = 4 * 16 * 16 * 16; /* one latent clip */
  float *z0 = xmalloc(sizeof(float) * n);
  uint64_t st = 99;
  double sd = 0.8;
  for (int64_t i = 0; i < n; i++) {
    double u1 = test_rand_uniform(&st, 1e-7f, 1), u2 = test_rand_uniform(&st, 0, 1);
    z0[i] = (float)(sd * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
  }
  static const int tops[] = {0, 99, 199};
  for (int k = 0; k < 3; k++) {
    double e = invert_and_sample(s, z0, n, tops[k], sd);
    printf("inversion to index %3d and back: relative error %.2e\n", tops[k], e);
    CHECKF(e < 1e-2, "DDIM inversion to index %d then sampling: relative error %.3g (>= 1e-2)",
           tops[k], e);
  }
  free(z0);
}

int main(void) {
  test_begin("test_diffusion");
  if (golden_load() != TB_OK) {
    CHECKF(0, "%s", err_get());
    return test_finish();
  }
  diff_schedule *s = xmalloc(sizeof *s);
  diff_schedule_default(s);
  printf("abar[0] %.9f abar[999] %.9f, grid %d..%d\n", s->abar[0], s->abar[999], s->ddim_t[0],
         s->ddim_t[199]);
  check_schedule(s);
  for (int be = OPS_CPU_REF; be <= OPS_CPU_FAST; be++) {
    CHECK(ops_backend_set((ops_backend_id)be) == TB_OK);
    printf("-- backend %s\n", ops_backend_name((ops_backend_id)be));
    check_arrays(s);
    check_inversion(s);
  }
  free(s);
  for (int i = 0; i < g_nv; i++) free(g_v[i].v);
  return test_finish();
}

/* Motion guidance (kernels/motion.h): the top-1 and masked-MSE ops (reference, fast path, FD
 * backward), references extracted from kept temporal maps, the energy (zero when the reference
 * is the sample itself), dE/dz through a whole UNet against central finite differences, each
 * sample's score in a batch equal to its score alone, the flat host form (round trip and
 * refusals), and only the chosen layers kept. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/diffusion.h"
#include "kernels/motion.h"
#include "kernels/nn.h"
#include "kernels/nn/teacher_motion.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

enum { T = 4, H = 8, W = 8, L = 3, TD = 6 };

static unet_config tiny_config(void) {
  unet_config c = unet_config_default();
  c.model_ch = 8;
  c.n_levels = 2;
  c.ch_mult[0] = 1, c.ch_mult[1] = 2;
  c.n_res = 1;
  c.attn_levels = 0x3;
  c.head_ch = 4;
  c.text_dim = TD;
  c.max_frames = T;
  c.groups = 4;
  return c;
}

static void test_ops(void) {
  enum { R = 37, N = 7 };
  float p[R * N], val[R], val2[R];
  int32_t idx[R], idx2[R];
  test_fill_uniform(p, R * N, 1, 0, 1);
  p[5 * N + 2] = p[5 * N + 4] = 2.0f; /* ties: the first wins */
  const ops_backend *ref = ops_backend_get(OPS_CPU_REF), *fast = ops_backend_get(OPS_CPU_FAST);
  ref->attn_top1(idx, val, p, R, N);
  fast->attn_top1(idx2, val2, p, R, N);
  CHECK(memcmp(idx, idx2, sizeof idx) == 0 && memcmp(val, val2, sizeof val) == 0);
  int ok = 1;
  for (int r = 0; r < R; r++)
    for (int j = 0; j < N; j++) ok &= p[r * N + j] <= val[r] && p[r * N + idx[r]] == val[r];
  CHECKF(ok, "attn_top1 did not find the row maxima");
  CHECK(idx[5] == 2);
  /* masked MSE against shifted values: by hand, FD of the backward, fast = reference */
  float v[R];
  for (int r = 0; r < R; r++) v[r] = val[r] * 0.5f + 0.1f;
  double want = 0;
  for (int r = 0; r < R; r++) want += pow((double)p[r * N + idx[r]] - v[r], 2);
  want /= R;
  float l1, l2;
  ref->masked_mse_fwd(&l1, p, idx, v, R, N);
  fast->masked_mse_fwd(&l2, p, idx, v, R, N);
  CHECKF(fabs(l1 - want) < 1e-6 * want && l1 == l2, "masked mse %g %g want %g", l1, l2, want);
  float dp[R * N], dp2[R * N], fd[R * N];
  for (int i = 0; i < R * N; i++) dp[i] = dp2[i] = 0.25f; /* backward accumulates */
  ref->masked_mse_bwd(dp, 1.5f, p, idx, v, R, N);
  fast->masked_mse_bwd(dp2, 1.5f, p, idx, v, R, N);
  CHECK(memcmp(dp, dp2, sizeof dp) == 0);
  for (int i = 0; i < R * N; i++) {
    float q[R * N];
    memcpy(q, p, sizeof q);
    const double h = 1e-3;
    float lp, lm;
    q[i] = (float)(p[i] + h);
    ref->masked_mse_fwd(&lp, q, idx, v, R, N);
    q[i] = (float)(p[i] - h);
    ref->masked_mse_fwd(&lm, q, idx, v, R, N);
    fd[i] = (float)(0.25 + 1.5 * ((double)lp - lm) / (2 * h));
  }
  check_close_f32("masked_mse_bwd vs FD", dp, fd, R * N, 2e-4, 1e-2);
}

typedef struct {
  float *z, *t, *ctx;
} inputs;

static void make_inputs(inputs *in, int B, uint64_t seed) {
  int64_t nz = (int64_t)B * T * 4 * H * W;
  in->z = xmalloc((size_t)nz * 4);
  in->t = xmalloc((size_t)B * 4);
  in->ctx = xmalloc((size_t)B * L * TD * 4);
  test_fill_uniform(in->z, nz, seed, -1.5f, 1.5f);
  test_fill_uniform(in->ctx, (int64_t)B * L * TD, seed + 1, -1, 1);
  for (int b = 0; b < B; b++) in->t[b] = 600.0f + 37.0f * (float)b;
}

static void free_inputs(inputs *in) { free(in->z), free(in->t), free(in->ctx); }

/* The guided step: the term only on the noisy half, the score of each sample alone, both
 * factors, x0 untouched (only the direction of the DDIM step moves), nothing from a reference
 * that is the sample itself. */
static void test_guided_step(unet *u, nn_ctx *c, const char *const *layers, int nl,
                             const motion_ref *other, const inputs *a) {
  diff_schedule s;
  diff_schedule_default(&s);
  CHECK(motion_guide_first_index(&s, 0.5f) == 100);
  CHECK(motion_guide_first_index(&s, 0.3f) == 140);
  int64_t nz = (int64_t)T * 4 * H * W;
  /* sample 0 at a noisy index against another clip's motion, sample 1 at a clean index */
  inputs b;
  make_inputs(&b, 2, 40);
  memcpy(b.z, a->z, (size_t)nz * 4);
  memcpy(b.ctx, a->ctx, (size_t)L * TD * 4);
  int idx[2] = {150, 40};
  motion_ref two;
  CHECK(motion_ref_extract(u, c, nl, layers, 2, T, H, W, L, b.z, b.t, NULL, NULL, b.ctx, &two) ==
        TB_OK);
  int64_t tot = motion_ref_total_rows(&two), t1 = motion_ref_total_rows(other);
  int32_t *ib = xmalloc((size_t)tot * 4), *i1 = xmalloc((size_t)t1 * 4);
  float *vb = xmalloc((size_t)tot * 4), *v1 = xmalloc((size_t)t1 * 4);
  motion_ref_export(&two, ib, vb);
  motion_ref_export(other, i1, v1);
  int64_t at = 0, at1 = 0;
  for (int l = 0; l < two.n; l++) {
    memcpy(ib + at, i1 + at1, (size_t)other->rows[l] * 4);
    memcpy(vb + at, v1 + at1, (size_t)other->rows[l] * 4);
    at += 2 * two.rows[l], at1 += other->rows[l];
  }
  const char *names[MOTION_MAX_LAYERS];
  for (int l = 0; l < two.n; l++) names[l] = two.name[l];
  motion_ref mixed;
  CHECK(motion_ref_import(&mixed, two.n, 2, names, two.rows, two.nk, ib, vb) == TB_OK);
  float *eps0 = xmalloc((size_t)2 * nz * 4), *eps = xmalloc((size_t)2 * nz * 4);
  float *g = xmalloc((size_t)2 * nz * 4), *ga = xmalloc((size_t)nz * 4);
  test_fill_uniform(eps0, 2 * nz, 41, -1, 1);
  memcpy(eps, eps0, (size_t)2 * nz * 4);
  motion_guide mg = {.ref = &mixed, .m = 0.05f, .scale = 1e4f, .tt_factor = 0, .tau = 0.5f};
  float E[2];
  CHECKF(motion_guide_eps(u, c, &s, &mg, 2, T, H, W, L, b.z, idx, b.ctx, eps, g, E) == TB_OK,
         "%s", err_get());
  /* the score of sample 0 is its score alone at its grid timestep */
  float t150 = (float)s.ddim_t[150], Ea;
  CHECK(motion_score(u, c, other, 1e4f, 1, T, H, W, L, a->z, &t150, NULL, NULL, a->ctx, NULL, ga,
                     &Ea) == TB_OK);
  CHECKF(Ea > 0 && fabsf(E[0] - Ea) <= 1e-5f * Ea && E[1] == 0.0f, "E (%g, %g), alone %g", E[0],
         E[1], Ea);
  check_nerr_f32("guided score of sample 0 vs alone", g, ga, nz, 1e-5);
  float k0 = 0.05f * sqrtf(1.0f - (float)s.abar[s.ddim_t[150]]);
  double dmax = 0, gmax = 0;
  for (int64_t i = 0; i < nz; i++) {
    dmax = fmax(dmax, fabs((double)eps[i] - (eps0[i] - k0 * g[i])));
    gmax = fmax(gmax, fabs((double)g[i]));
  }
  CHECKF(gmax > 0 && dmax <= 1e-6 * (1 + gmax), "eps - m sqrt(1-abar) score off by %g", dmax);
  CHECKF(memcmp(eps + nz, eps0 + nz, (size_t)nz * 4) == 0,
         "a sample on the clean half was changed");
  int zero = 1;
  for (int64_t i = 0; i < nz; i++) zero &= g[nz + i] == 0.0f;
  CHECK(zero);
  /* the released code's factor: the same score times m sqrt(1 - sqrt(abar)) */
  {
    float *e2 = xmalloc((size_t)2 * nz * 4);
    memcpy(e2, eps0, (size_t)2 * nz * 4);
    motion_guide tt = mg;
    tt.tt_factor = 1;
    motion_guide_apply_score(&s, &tt, 2, nz, idx, g, e2);
    float k1 = 0.05f * sqrtf(1.0f - sqrtf((float)s.abar[s.ddim_t[150]]));
    double d = 0;
    for (int64_t i = 0; i < nz; i++) d = fmax(d, fabs((double)e2[i] - (eps0[i] - k1 * g[i])));
    CHECKF(fabsf(k1 - k0) > 0.05f * k0 && d <= 1e-6 * (1 + gmax), "tt factor off by %g", d);
    free(e2);
  }
  /* x0 untouched: the DDIM step moves by -sqrt(1 - abar_prev) m factor score, nothing else */
  {
    float *x0 = xmalloc((size_t)nz * 4), *xp = xmalloc((size_t)nz * 4),
          *xu = xmalloc((size_t)nz * 4);
    int i150 = 150, tt = s.ddim_t[150];
    diff_eps_to_x0(&s, x0, b.z, eps0, &tt, 1, nz); /* the unguided x0 */
    diff_ddim_step(&s, xp, x0, eps, &i150, 1, nz);
    diff_ddim_step(&s, xu, x0, eps0, &i150, 1, nz);
    double sp = sqrt(1.0 - s.ddim_abar_prev[150]), d = 0;
    for (int64_t i = 0; i < nz; i++) d = fmax(d, fabs((double)(xp[i] - xu[i]) + sp * k0 * g[i]));
    CHECKF(d <= 1e-5 * (1 + gmax), "guided x_prev is not the unguided one shifted: %g", d);
    free(x0), free(xp), free(xu);
  }
  /* a reference that is the sample itself: E = 0, score 0, eps unchanged */
  {
    motion_ref self;
    float tf = t150;
    CHECK(motion_ref_extract(u, c, nl, layers, 1, T, H, W, L, a->z, &tf, NULL, NULL, a->ctx,
                             &self) == TB_OK);
    motion_guide ms = mg;
    ms.ref = &self;
    memcpy(eps, eps0, (size_t)nz * 4);
    float Es;
    CHECK(motion_guide_eps(u, c, &s, &ms, 1, T, H, W, L, a->z, idx, a->ctx, eps, g, &Es) == TB_OK);
    CHECKF(Es == 0.0f && memcmp(eps, eps0, (size_t)nz * 4) == 0,
           "self reference: E %g, eps changed", Es);
    motion_ref_free(&self);
  }
  /* m = 0 and no reference: nothing to do; m != 0 on a guided index without one: refused */
  {
    motion_guide off = {.ref = NULL, .m = 0.0f, .scale = 1e4f, .tau = 0.5f};
    memcpy(eps, eps0, (size_t)nz * 4);
    CHECK(motion_guide_eps(u, c, &s, &off, 1, T, H, W, L, a->z, idx, a->ctx, eps, NULL, NULL) ==
              TB_OK && memcmp(eps, eps0, (size_t)nz * 4) == 0);
    off.m = 0.05f;
    CHECK(motion_guide_eps(u, c, &s, &off, 1, T, H, W, L, a->z, idx, a->ctx, eps, NULL, NULL) ==
          TB_ERR);
  }
  motion_ref_free(&mixed);
  motion_ref_free(&two);
  free(ib), free(i1), free(vb), free(v1), free(eps0), free(eps), free(g), free(ga);
  free_inputs(&b);
}

/* The per-clip precompute: at most 10 forwards with 4 inversion steps, z_t from the noise, the
 * eps of plain forwards, the score of motion_score against the inverted reference, and the
 * inversion itself against a step-by-step reimplementation. */
static void test_precompute(unet *u, nn_ctx *c, const char *const *layers, int nl,
                            const inputs *a) {
  diff_schedule s;
  diff_schedule_default(&s);
  int64_t nz = (int64_t)T * 4 * H * W;
  float *z0 = xmalloc((size_t)nz * 4), *noise = xmalloc((size_t)nz * 4), *nul = xcalloc(L * TD, 4);
  test_fill_uniform(z0, nz, 50, -1, 1);
  test_fill_uniform(noise, nz, 51, -1.7f, 1.7f);
  float *buf = xmalloc((size_t)6 * nz * 4);
  motion_record r = {.z_t = buf, .eps_c = buf + nz, .eps_u = buf + 2 * nz,
                     .score = buf + 3 * nz, .z_example = buf + 4 * nz};
  const int index = 137;
  CHECKF(motion_precompute(u, c, &s, T, H, W, L, z0, a->ctx, nul, noise, index, 4, nl, layers,
                           1e4f, &r) == TB_OK, "%s", err_get());
  printf("precompute: %d forward-equivalents, E %g\n", r.forwards, r.E);
  CHECK(r.index == index && r.forwards <= 10 && r.E >= 0 && r.ref.n == nl);
  int t = s.ddim_t[index];
  double a_t = sqrt(s.abar[t]), s_t = sqrt(1 - s.abar[t]), d = 0;
  for (int64_t i = 0; i < nz; i++) d = fmax(d, fabs(r.z_t[i] - (a_t * z0[i] + s_t * noise[i])));
  CHECK(d < 1e-5);
  /* eps_c, eps_u: plain forwards at z_t */
  float tf = (float)t, *e = buf + 5 * nz;
  for (int br = 0; br < 2; br++) {
    nn_ctx_reset(c);
    nn_ctx_set_grad(c, 0);
    nn_var x = nn_input(c, r.z_t, nz, 0), cx = nn_input(c, br ? nul : a->ctx, L * TD, 0);
    unet_input in = {.B = 1, .T = T, .H = H, .W = W, .t = &tf, .context = cx, .L = L};
    nn_var y = unet_forward(u, c, x, &in);
    memcpy(e, nn_data(c, y), (size_t)nz * 4);
    nn_ctx_reset(c);
    nn_ctx_set_grad(c, 1);
    check_nerr_f32(br ? "eps_u vs forward" : "eps_c vs forward", br ? r.eps_u : r.eps_c, e, nz,
                   1e-6);
  }
  /* the inversion: 4 steps 0 -> t/4 -> t/2 -> 3t/4 -> t, eps at each target timestep */
  {
    float *x = xmalloc((size_t)nz * 4);
    memcpy(x, z0, (size_t)nz * 4);
    int tp = 0;
    for (int k = 1; k <= 4; k++) {
      int tk = (int)lround(t * k / 4.0);
      float tkf = (float)tk;
      nn_ctx_reset(c);
      nn_ctx_set_grad(c, 0);
      nn_var xv = nn_input(c, x, nz, 0), cx = nn_input(c, a->ctx, L * TD, 0);
      unet_input in = {.B = 1, .T = T, .H = H, .W = W, .t = &tkf, .context = cx, .L = L};
      nn_var y = unet_forward(u, c, xv, &in);
      const float *ev = nn_data(c, y);
      for (int64_t i = 0; i < nz; i++) {
        double x0 = (x[i] - sqrt(1 - s.abar[tp]) * ev[i]) / sqrt(s.abar[tp]);
        x[i] = (float)(sqrt(s.abar[tk]) * x0 + sqrt(1 - s.abar[tk]) * ev[i]);
      }
      nn_ctx_reset(c);
      nn_ctx_set_grad(c, 1);
      tp = tk;
    }
    check_nerr_f32("inverted latent vs step by step", r.z_example, x, nz, 1e-5);
    free(x);
  }
  /* the score is motion_score's against the record's own reference */
  float Eb, *g = xmalloc((size_t)nz * 4);
  CHECK(motion_score(u, c, &r.ref, 1e4f, 1, T, H, W, L, r.z_t, &tf, NULL, NULL, a->ctx, NULL, g,
                     &Eb) == TB_OK);
  CHECK(Eb == r.E);
  check_nerr_f32("record score vs motion_score", r.score, g, nz, 1e-6);
  /* refusals */
  motion_record bad = r;
  CHECK(motion_precompute(u, c, &s, T, H, W, L, z0, a->ctx, nul, noise, 200, 4, nl, layers, 1e4f,
                          &bad) == TB_ERR);
  CHECK(motion_precompute(u, c, &s, T, H, W, L, z0, a->ctx, nul, noise, 150, 0, nl, layers, 1e4f,
                          &bad) == TB_ERR);
  motion_ref_free(&r.ref);
  free(z0), free(noise), free(nul), free(buf), free(g);
}

/* The term inside the teacher's own step (teacher_step with the hook): x0 is the unguided CFG
 * x0, x_prev moves by -sqrt(1 - abar_prev) m factor dE/dz_t, and a clean index is untouched. */
static void test_teacher_hook(unet *u, nn_ctx *c, const motion_ref *other, const inputs *a) {
  diff_schedule s;
  diff_schedule_default(&s);
  int64_t nz = (int64_t)T * 4 * H * W;
  float *nul = xcalloc(L * TD, 4), w = 7.5f;
  float *x0u = xmalloc((size_t)nz * 4), *xpu = xmalloc((size_t)nz * 4);
  float *x0g = xmalloc((size_t)nz * 4), *xpg = xmalloc((size_t)nz * 4), *g = xmalloc((size_t)nz * 4);
  nn_ctx *gc = nn_ctx_new();
  teacher_motion tm = {.g = {.ref = other, .m = 0.05f, .scale = 1e4f, .tau = 0.5f}, .s = &s, .c = gc};
  teacher_guidance hook;
  teacher_motion_hook(&tm, &hook);
  for (int k = 0; k < 2; k++) {
    int idx = k ? 40 : 150;
    teacher_batch b = {.B = 1, .T = T, .H = H, .W = W, .L = L, .z = a->z, .w = &w, .ctx = a->ctx,
                       .null_ctx = nul};
    teacher_out ou = {.x0 = x0u, .x_prev = xpu}, og = {.x0 = x0g, .x_prev = xpg};
    CHECKF(teacher_step(u, c, &s, &b, &idx, &ou) == TB_OK, "%s", err_get());
    b.guide = &hook;
    CHECKF(teacher_step(u, c, &s, &b, &idx, &og) == TB_OK, "%s", err_get());
    CHECK(memcmp(x0u, x0g, (size_t)nz * 4) == 0);
    if (k) {
      CHECKF(memcmp(xpu, xpg, (size_t)nz * 4) == 0, "the hook moved a clean-half step");
      continue;
    }
    float tf = (float)s.ddim_t[idx], E;
    CHECK(motion_score(u, c, other, 1e4f, 1, T, H, W, L, a->z, &tf, NULL, NULL, a->ctx, NULL, g,
                       &E) == TB_OK);
    CHECK(tm.calls == 1 && tm.E[0] == E && E > 0);
    double k0 = 0.05 * sqrt(1 - s.abar[s.ddim_t[idx]]) * sqrt(1 - s.ddim_abar_prev[idx]), d = 0,
           gm = 0;
    for (int64_t i = 0; i < nz; i++) {
      d = fmax(d, fabs((double)xpg[i] - xpu[i] + k0 * g[i]));
      gm = fmax(gm, fabs(k0 * g[i]));
    }
    CHECKF(gm > 0 && d <= 1e-4 * (1 + gm), "guided teacher step off by %g (shift up to %g)", d, gm);
  }
  nn_ctx_free(gc);
  free(nul), free(x0u), free(xpu), free(x0g), free(xpg), free(g);
}

int main(void) {
  test_begin("test_motion");
  ops_set_num_threads(1);
  test_ops();

  unet_config cfg = tiny_config();
  unet u;
  CHECK(unet_create(&u, &cfg) == TB_OK);
  unet_init_weights(&u, 3, 0);
  unet_freeze(&u);
  const char *layers[8];
  int nl = unet_temporal_layers(&u, 1, layers, 8);
  const char *all[8];
  int na = unet_temporal_layers(&u, 0, all, 8);
  printf("temporal layers: %d, decoder %d (%s ... %s)\n", na, nl, layers[0], layers[nl - 1]);
  CHECK(nl >= 2 && na > nl);
  nn_ctx *c = nn_ctx_new();
  const float scale = 1e4f;

  /* a reference keeps only the chosen layers, with one row per (position, head, frame) */
  inputs a, r;
  make_inputs(&a, 1, 10);
  make_inputs(&r, 1, 20);
  memcpy(r.ctx, a.ctx, (size_t)L * TD * 4); /* the clip's own caption */
  motion_ref ref;
  CHECKF(motion_ref_extract(&u, c, nl, layers, 1, T, H, W, L, r.z, r.t, NULL, NULL, r.ctx,
                            &ref) == TB_OK, "%s", err_get());
  CHECK(ref.n == nl && ref.B == 1);
  for (int l = 0; l < ref.n; l++) CHECK(strcmp(ref.name[l], layers[l]) == 0 && ref.nk[l] == T);

  /* E = 0 when the reference is the sample itself */
  {
    motion_ref self;
    CHECK(motion_ref_extract(&u, c, nl, layers, 1, T, H, W, L, a.z, a.t, NULL, NULL, a.ctx,
                             &self) == TB_OK);
    float E = -1;
    CHECK(motion_score(&u, c, &self, scale, 1, T, H, W, L, a.z, a.t, NULL, NULL, a.ctx, NULL,
                       NULL, &E) == TB_OK);
    CHECKF(E == 0.0f, "E of a sample against its own reference is %g", E);
    motion_ref_free(&self);
  }

  /* dE/dz against central finite differences on a few latent entries */
  int64_t nz = (int64_t)T * 4 * H * W;
  float *g = xmalloc((size_t)nz * 4), *eps = xmalloc((size_t)nz * 4);
  float E0 = 0;
  CHECK(motion_score(&u, c, &ref, scale, 1, T, H, W, L, a.z, a.t, NULL, NULL, a.ctx, eps, g,
                     &E0) == TB_OK);
  printf("E against another clip's motion: %g\n", E0);
  CHECK(E0 > 0);
  /* the eps of the scoring pass is the plain forward's */
  {
    nn_ctx_reset(c);
    nn_ctx_set_grad(c, 0);
    nn_var x = nn_input(c, a.z, nz, 0), cx = nn_input(c, a.ctx, L * TD, 0);
    unet_input in = {.B = 1, .T = T, .H = H, .W = W, .t = a.t, .context = cx, .L = L};
    nn_var y = unet_forward(&u, c, x, &in);
    CHECK(memcmp(nn_data(c, y), eps, (size_t)nz * 4) == 0);
    nn_ctx_reset(c);
    nn_ctx_set_grad(c, 1);
  }
  {
    ops_backend_set(OPS_CPU_REF); /* double accumulations: a clean finite difference */
    float Eg = 0;
    CHECK(motion_score(&u, c, &ref, scale, 1, T, H, W, L, a.z, a.t, NULL, NULL, a.ctx, NULL, g,
                       &Eg) == TB_OK);
    int probes[6] = {0, 77, 300, 511, 777, (int)nz - 1};
    float got[6], want[6];
    for (int k = 0; k < 6; k++) {
      int i = probes[k];
      float keep = a.z[i], Ep, Em;
      const float h = 2e-2f;
      a.z[i] = keep + h;
      motion_score(&u, c, &ref, scale, 1, T, H, W, L, a.z, a.t, NULL, NULL, a.ctx, NULL, NULL,
                   &Ep);
      a.z[i] = keep - h;
      motion_score(&u, c, &ref, scale, 1, T, H, W, L, a.z, a.t, NULL, NULL, a.ctx, NULL, NULL,
                   &Em);
      a.z[i] = keep;
      got[k] = g[i];
      want[k] = (Ep - Em) / (2 * h);
      printf("  dE/dz[%d] = %.6g, finite difference %.6g\n", i, got[k], want[k]);
    }
    double gmax = 0;
    for (int k = 0; k < 6; k++) gmax = fmax(gmax, fabs(want[k]));
    check_close_f32("dE/dz vs finite differences", got, want, 6, 0.02 * gmax, 0.03);
    ops_backend_set(OPS_CPU_FAST);
  }

  /* a batch of two: each sample's E and score equal its own alone */
  {
    inputs b2;
    make_inputs(&b2, 2, 30);
    memcpy(b2.z, a.z, (size_t)nz * 4); /* sample 0 = a */
    memcpy(b2.ctx, a.ctx, (size_t)L * TD * 4);
    b2.t[0] = a.t[0];
    motion_ref refs;
    CHECK(motion_ref_extract(&u, c, nl, layers, 2, T, H, W, L, b2.z, b2.t, NULL, NULL, b2.ctx,
                             &refs) == TB_OK);
    /* sample 0's reference := the other clip's (import from the flat form) */
    int64_t tot = motion_ref_total_rows(&refs), t1 = motion_ref_total_rows(&ref);
    CHECK(tot == 2 * t1);
    int32_t *ib = xmalloc((size_t)tot * 4), *i1 = xmalloc((size_t)t1 * 4);
    float *vb = xmalloc((size_t)tot * 4), *v1 = xmalloc((size_t)t1 * 4);
    motion_ref_export(&refs, ib, vb);
    motion_ref_export(&ref, i1, v1);
    int64_t at = 0, at1 = 0;
    for (int l = 0; l < refs.n; l++) {
      memcpy(ib + at, i1 + at1, (size_t)ref.rows[l] * 4);
      memcpy(vb + at, v1 + at1, (size_t)ref.rows[l] * 4);
      at += 2 * refs.rows[l], at1 += ref.rows[l];
    }
    const char *names[MOTION_MAX_LAYERS];
    for (int l = 0; l < refs.n; l++) names[l] = refs.name[l];
    motion_ref mixed;
    CHECKF(motion_ref_import(&mixed, refs.n, 2, names, refs.rows, refs.nk, ib, vb) == TB_OK,
           "%s", err_get());
    float E2[2], *g2 = xmalloc((size_t)2 * nz * 4), *ga = xmalloc((size_t)nz * 4);
    CHECK(motion_score(&u, c, &mixed, scale, 2, T, H, W, L, b2.z, b2.t, NULL, NULL, b2.ctx, NULL,
                       g2, E2) == TB_OK);
    float Ea;
    CHECK(motion_score(&u, c, &ref, scale, 1, T, H, W, L, a.z, a.t, NULL, NULL, a.ctx, NULL, ga,
                       &Ea) == TB_OK);
    CHECKF(fabsf(E2[0] - Ea) <= 1e-5f * Ea && fabsf(E2[1]) < 1e-6f,
           "batched E (%g, %g), alone %g and 0", E2[0], E2[1], Ea);
    check_nerr_f32("batched score of sample 0 vs alone", g2, ga, nz, 1e-4);
    /* take() gives back a single sample's reference */
    motion_ref one;
    CHECK(motion_ref_take(&one, &mixed, 0) == TB_OK);
    float Et;
    CHECK(motion_score(&u, c, &one, scale, 1, T, H, W, L, a.z, a.t, NULL, NULL, a.ctx, NULL,
                       NULL, &Et) == TB_OK && Et == Ea);
    /* refusals: a key index out of range, a probability above 1, a reference of another
     * model's layers */
    ib[3] = T;
    CHECK(motion_ref_import(&one, refs.n, 2, names, refs.rows, refs.nk, ib, vb) == TB_ERR);
    printf("refused: %s\n", err_get());
    ib[3] = 0;
    vb[4] = 1.5f;
    CHECK(motion_ref_import(&one, refs.n, 2, names, refs.rows, refs.nk, ib, vb) == TB_ERR);
    vb[4] = 0.5f;
    motion_ref bad;
    const char *wrong[1] = {"output_blocks.99.2"};
    int64_t rw[1] = {ref.rows[0]};
    int nkw[1] = {T};
    CHECK(motion_ref_import(&bad, 1, 1, wrong, rw, nkw, i1, v1) == TB_OK);
    CHECK(motion_score(&u, c, &bad, scale, 1, T, H, W, L, a.z, a.t, NULL, NULL, a.ctx, NULL, NULL,
                       &Et) == TB_ERR && strstr(err_get(), "output_blocks.99.2"));
    motion_ref_free(&bad);
    motion_ref_free(&one);
    motion_ref_free(&mixed);
    motion_ref_free(&refs);
    free(ib), free(i1), free(vb), free(v1), free(g2), free(ga);
    free_inputs(&b2);
  }

  /* only the chosen layers are kept */
  {
    nn_ctx_reset(c);
    nn_ctx_keep_attn_only(c, 1, layers);
    nn_var x = nn_input(c, a.z, nz, 0), cx = nn_input(c, a.ctx, L * TD, 0);
    unet_input in = {.B = 1, .T = T, .H = H, .W = W, .t = a.t, .context = cx, .L = L};
    unet_forward(&u, c, x, &in);
    CHECK(nn_attn_count(c) == 1 && strcmp(nn_attn_name(c, 0), layers[0]) == 0);
    nn_ctx_reset(c);
    nn_ctx_keep_attn_only(c, 0, NULL);
    x = nn_input(c, a.z, nz, 0), cx = nn_input(c, a.ctx, L * TD, 0);
    in.context = cx;
    unet_forward(&u, c, x, &in);
    CHECK(nn_attn_count(c) == na);
  }
  test_guided_step(&u, c, layers, nl, &ref, &a);
  test_precompute(&u, c, layers, nl, &a);
  test_teacher_hook(&u, c, &ref, &a);
  CHECK(fabsf(motion_factor(0.36f, 0) - 0.8f) < 1e-6f);
  CHECK(fabsf(motion_factor(0.36f, 1) - sqrtf(0.4f)) < 1e-6f);

  free(g), free(eps);
  free_inputs(&a), free_inputs(&r);
  motion_ref_free(&ref);
  nn_ctx_free(c);
  unet_free(&u);
  return test_finish();
}

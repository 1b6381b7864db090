/* The (2+1)-D UNet on a tiny config (T = 3, 8×8, channels 8–16):
 *  - gradients w.r.t. samples of every parameter tensor (so every block), the input latent and
 *    the text context, against central finite differences (loss = Σ eps·R in double);
 *  - recompute mode gives the same gradients as stored activations;
 *  - the attention-probability path: a loss on the temporal attention maps, differentiated
 *    w.r.t. the input latent through nn_attn_extra_grad, against finite differences (both modes);
 *  - deterministic reruns; safetensors save → load gives identical outputs; the loader rejects
 *    a shape mismatch and a missing tensor; zero-initialised outputs start at exactly zero. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/nn.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

enum { B = 2, T = 3, H = 8, W = 8, L = 3 };

typedef struct {
  unet u;
  float *x, *ctxt, *R, *t, *w, *m, *Rattn;
  int64_t nx, nctx, nout;
  int attn_loss; /* 1: loss = Σ probs·Rattn over temporal layers (instead of Σ eps·R) */
} fixture;

static unet_config tiny_config(void) {
  unet_config c = unet_config_default();
  c.model_ch = 8;
  c.n_levels = 2;
  c.ch_mult[0] = 1, c.ch_mult[1] = 2;
  c.n_res = 1;
  c.attn_levels = 0x3;
  c.head_ch = 4;
  c.text_dim = 6;
  c.max_frames = 4;
  c.cond_embeds = 2;
  c.groups = 4;
  return c;
}

/* Runs forward (and backward when grads != NULL); returns the loss. */
static double run(fixture *f, nn_ctx *c, int recompute, float *gx, float *gctx, float *out) {
  nn_ctx_reset(c);
  nn_ctx_set_mode(c, recompute, 0, 1);
  nn_ctx_keep_attn(c, 1);
  nn_var x = nn_input(c, f->x, f->nx, gx != NULL);
  nn_var cx = nn_input(c, f->ctxt, f->nctx, gctx != NULL);
  unet_input in = {.B = B, .T = T, .H = H, .W = W, .t = f->t, .w = f->w, .motion = f->m,
                   .context = cx, .L = L};
  nn_var y = unet_forward(&f->u, c, x, &in);
  const float *yd = nn_data(c, y);
  if (out) memcpy(out, yd, f->nout * sizeof(float));
  double loss = 0;
  float *dy = f->R;
  float *zeros = NULL;
  if (!f->attn_loss) {
    for (int64_t i = 0; i < f->nout; i++) loss += (double)yd[i] * f->R[i];
  } else {
    int64_t off = 0;
    for (int a = 0; a < nn_attn_count(c); a++) {
      int64_t sh[4];
      const float *P = nn_attn_probs(c, a, sh);
      int64_t n = sh[0] * sh[1] * sh[2] * sh[3];
      for (int64_t i = 0; i < n; i++) loss += (double)P[i] * f->Rattn[(off + i) % 4096];
      if (gx || gctx) {
        float *e = nn_attn_extra_grad(c, a);
        for (int64_t i = 0; i < n; i++) e[i] += f->Rattn[(off + i) % 4096];
      }
      off += n;
    }
    zeros = xcalloc((size_t)f->nout, sizeof(float));
    dy = zeros;
  }
  if (gx || gctx) {
    nn_backward(c, y, dy);
    if (gx) memcpy(gx, nn_grad(c, x), f->nx * sizeof(float));
    if (gctx) memcpy(gctx, nn_grad(c, cx), f->nctx * sizeof(float));
  }
  free(zeros);
  return loss;
}

static int fd_check(const char *what, double an, double lp, double lm, double e, double scale) {
  double fd = (lp - lm) / (2 * e);
  double err = fabs(fd - an) / (fabs(fd) + 1e-2 * scale + 1e-6);
  if (err > 3e-2) {
    if (what) fprintf(stderr, "%s: analytic %.6g fd %.6g\n", what, an, fd);
    return 0;
  }
  return 1;
}

/* Central difference of the loss in one float; when it disagrees with the analytic value at
 * step 1e-2 (curvature), retries at 2.5e-3. */
static int probe(fixture *f, nn_ctx *c, float *ptr, double an, double scale, const char *what) {
  double steps[2] = {1e-2, 2.5e-3};
  for (int k = 0; k < 2; k++) {
    double e = steps[k];
    float keep = *ptr;
    *ptr = keep + (float)e;
    double lp = run(f, c, 0, NULL, NULL, NULL);
    *ptr = keep - (float)e;
    double lm = run(f, c, 0, NULL, NULL, NULL);
    *ptr = keep;
    if (fd_check(k == 1 ? what : NULL, an, lp, lm, e, scale)) return 1;
  }
  return 0;
}

static double max_abs(const float *a, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
  return m;
}

int main(void) {
  test_begin("test_unet");
  /* tiny shapes: threads only add overhead (and the machine is shared) */
  ops_set_num_threads(1);
  fixture f;
  memset(&f, 0, sizeof f);
  unet_config cfg = tiny_config();
  CHECK(unet_create(&f.u, &cfg) == TB_OK);
  unet_init_weights(&f.u, 42, 0);
  nn_params *P = &f.u.params;
  printf("tiny unet: %d tensors, %lld parameters\n", P->n, (long long)P->total);
  f.nx = (int64_t)B * T * 4 * H * W;
  f.nctx = (int64_t)B * L * cfg.text_dim;
  f.nout = f.nx;
  f.x = xmalloc(f.nx * sizeof(float));
  f.ctxt = xmalloc(f.nctx * sizeof(float));
  f.R = xmalloc(f.nout * sizeof(float));
  f.Rattn = xmalloc(4096 * sizeof(float));
  test_fill_uniform(f.x, f.nx, 1, -1, 1);
  test_fill_uniform(f.ctxt, f.nctx, 2, -1, 1);
  test_fill_uniform(f.R, f.nout, 3, -1, 1);
  test_fill_uniform(f.Rattn, 4096, 4, -1, 1);
  float tt[B] = {10.0f, 700.0f}, ww[B] = {7.5f, 12.0f}, mm[B] = {0.5f, 0.0f};
  f.t = tt, f.w = ww, f.m = mm;
  nn_ctx *c = nn_ctx_new();

  /* ---- gradients: analytic (stored activations) ---- */
  float *gx = xmalloc(f.nx * sizeof(float)), *gc = xmalloc(f.nctx * sizeof(float));
  float *gp = xmalloc(P->total * sizeof(float));
  nn_params_zero_grad(P);
  run(&f, c, 0, gx, gc, NULL);
  memcpy(gp, P->grad, P->total * sizeof(float));
  double sp = max_abs(gp, P->total), sx = max_abs(gx, f.nx), sc = max_abs(gc, f.nctx);

  /* recompute mode: same gradients */
  float *gx2 = xmalloc(f.nx * sizeof(float)), *gc2 = xmalloc(f.nctx * sizeof(float));
  nn_params_zero_grad(P);
  run(&f, c, 1, gx2, gc2, NULL);
  CHECK(check_close_f32("recompute dparams", P->grad, gp, P->total, 1e-6 * sp, 1e-4));
  CHECK(check_close_f32("recompute dx", gx2, gx, f.nx, 1e-6 * sx, 1e-4));
  CHECK(check_close_f32("recompute dcontext", gc2, gc, f.nctx, 1e-6 * sc, 1e-4));
  /* gradients accumulate: a second backward doubles them */
  run(&f, c, 0, gx2, NULL, NULL);
  int acc_ok = 1;
  for (int64_t i = 0; i < P->total; i += 97)
    if (fabs(P->grad[i] - 2 * gp[i]) > 1e-5 * sp + 1e-4 * fabs(gp[i])) acc_ok = 0;
  CHECK(acc_ok);

  /* FD: one element of every parameter tensor (so every block), the input and the context */
  int bad = 0, probes = 0;
  for (int i = 0; i < P->n; i++) {
    int64_t j = P->info[i].offset + (P->info[i].numel * 7) / 11;
    char what[160];
    snprintf(what, sizeof what, "d/d %s[%lld]", P->info[i].name, (long long)(j - P->info[i].offset));
    bad += !probe(&f, c, &P->data[j], gp[j], sp, what);
    probes++;
  }
  for (int64_t j = 0; j < f.nx; j += f.nx / 24, probes++) bad += !probe(&f, c, &f.x[j], gx[j], sx, "d/dx");
  for (int64_t j = 0; j < f.nctx; j += 5, probes++) bad += !probe(&f, c, &f.ctxt[j], gc[j], sc, "d/dcontext");
  printf("finite differences: %d probes, %d mismatches\n", probes, bad);
  CHECKF(bad == 0, "%d of %d finite-difference probes disagree", bad, probes);

  /* a variant: sinusoidal frame positions, no temporal convs, no extra conditions, two
   * ResBlocks per level; input gradients and a sample of parameters, stored and recomputed */
  {
    unet_config cv = cfg;
    cv.temporal_pos = 1, cv.temporal_conv = 0, cv.cond_embeds = 0, cv.n_res = 2;
    unet alt, save = f.u;
    CHECK(unet_create(&alt, &cv) == TB_OK);
    unet_init_weights(&alt, 9, 0);
    f.u = alt;
    float *ga = xmalloc(f.nx * sizeof(float)), *gb = xmalloc(f.nx * sizeof(float));
    nn_params_zero_grad(&f.u.params);
    run(&f, c, 1, gb, NULL, NULL);
    nn_params_zero_grad(&f.u.params);
    run(&f, c, 0, ga, NULL, NULL);
    CHECK(check_close_f32("variant recompute dx", gb, ga, f.nx, 1e-6 * max_abs(ga, f.nx), 1e-4));
    double sa = max_abs(ga, f.nx), spa = max_abs(f.u.params.grad, f.u.params.total);
    float *gpa = xmalloc(f.u.params.total * sizeof(float));
    memcpy(gpa, f.u.params.grad, f.u.params.total * sizeof(float));
    int badv = 0;
    for (int64_t j = 1; j < f.nx; j += f.nx / 12) badv += !probe(&f, c, &f.x[j], ga[j], sa, "variant d/dx");
    for (int i = 0; i < f.u.params.n; i += 9) {
      int64_t j = f.u.params.info[i].offset + f.u.params.info[i].numel / 3;
      badv += !probe(&f, c, &f.u.params.data[j], gpa[j], spa, f.u.params.info[i].name);
    }
    CHECKF(badv == 0, "variant: %d finite-difference mismatches", badv);
    f.u = save;
    unet_free(&alt);
    free(ga), free(gb), free(gpa);
  }

  /* classifier-free condition dropping */
  {
    float cbuf[3 * 4], nul[4] = {9, 9, 9, 9};
    uint64_t r = 1;
    for (int i = 0; i < 12; i++) cbuf[i] = 1;
    CHECK(unet_drop_context(cbuf, nul, 3, 4, 0.0f, &r) == 0 && cbuf[5] == 1);
    CHECK(unet_drop_context(cbuf, nul, 3, 4, 1.0f, &r) == 3 && cbuf[5] == 9);
    CHECK(unet_drop_context(cbuf, NULL, 3, 4, 1.0f, &r) == 3 && cbuf[11] == 0);
  }

  /* ---- attention-probability gradient path ---- */
  f.attn_loss = 1;
  for (int mode = 0; mode < 2; mode++) {
    nn_params_zero_grad(P);
    run(&f, c, mode, gx, NULL, NULL);
    double s = max_abs(gx, f.nx);
    CHECK(s > 0);
    int bad2 = 0;
    for (int64_t j = 3; j < f.nx; j += f.nx / 16)
      bad2 += !probe(&f, c, &f.x[j], gx[j], s, mode ? "attn-loss d/dx (recompute)" : "attn-loss d/dx");
    CHECKF(bad2 == 0, "attention-map loss: %d mismatches (recompute %d)", bad2, mode);
  }
  f.attn_loss = 0;
  nn_ctx_reset(c);
  {
    /* the layers registered, with the names motion guidance selects by */
    nn_ctx_set_mode(c, 0, 0, 1);
    nn_ctx_keep_attn(c, 1);
    nn_var x = nn_input(c, f.x, f.nx, 0), cx = nn_input(c, f.ctxt, f.nctx, 0);
    unet_input in = {.B = B, .T = T, .H = H, .W = W, .t = tt, .w = ww, .motion = mm, .context = cx, .L = L};
    unet_forward(&f.u, c, x, &in);
    int n = nn_attn_count(c);
    CHECK(n == 7); /* one per attention level on the way down (2), middle (1), up (2 × 2) */
    int has_out = 0;
    for (int a = 0; a < n; a++) {
      int64_t sh[4];
      const float *Pr = nn_attn_probs(c, a, sh);
      CHECK(sh[2] == T && sh[3] == T);
      double rs = 0;
      for (int j = 0; j < T; j++) rs += Pr[j];
      CHECK(fabs(rs - 1.0) < 1e-5);
      if (strncmp(nn_attn_name(c, a), "output_blocks.", 14) == 0) has_out = 1;
    }
    CHECK(has_out);
  }

  /* ---- determinism, save → load ---- */
  float *o1 = xmalloc(f.nout * sizeof(float)), *o2 = xmalloc(f.nout * sizeof(float));
  run(&f, c, 0, NULL, NULL, o1);
  run(&f, c, 0, NULL, NULL, o2);
  CHECK(memcmp(o1, o2, f.nout * sizeof(float)) == 0);
  char path[1024];
  snprintf(path, sizeof path, "%s/tiny.safetensors", test_outdir());
  CHECK(nn_params_save(P, path) == TB_OK);
  unet v;
  CHECK(unet_create(&v, &cfg) == TB_OK);
  unet_init_weights(&v, 7, 1);
  CHECK(nn_params_load(&v.params, path, NULL, 0) == TB_OK);
  CHECK(memcmp(v.params.data, P->data, P->total * sizeof(float)) == 0);
  unet keep = f.u;
  f.u = v;
  run(&f, c, 0, NULL, NULL, o2);
  f.u = keep;
  CHECK(memcmp(o1, o2, f.nout * sizeof(float)) == 0);
  unet_free(&v);
  /* a model with a different width must be rejected, and so must one with extra parameters */
  unet_config c2 = cfg;
  c2.text_dim = 5;
  CHECK(unet_create(&v, &c2) == TB_OK);
  CHECK(nn_params_load(&v.params, path, NULL, 0) == TB_ERR);
  printf("shape mismatch: %s\n", err_get());
  CHECK(strstr(err_get(), "shape") != NULL);
  unet_free(&v);
  /* a student (two extra conditions) loads a teacher file only with its conditions missing:
   * refused, naming the tensor; the teacher loads the student's file logging the unknowns */
  unet_config c4 = cfg;
  c4.cond_embeds = 0;
  CHECK(unet_create(&v, &c4) == TB_OK);
  CHECK(nn_params_load(&v.params, path, NULL, 0) == TB_OK);
  char path2[1024];
  snprintf(path2, sizeof path2, "%s/teacher.safetensors", test_outdir());
  CHECK(nn_params_save(&v.params, path2) == TB_OK);
  unet_free(&v);
  float *before = xmalloc(P->total * sizeof(float));
  memcpy(before, P->data, P->total * sizeof(float));
  CHECK(nn_params_load(P, path2, NULL, 0) == TB_ERR);
  printf("missing: %s\n", err_get());
  CHECK(strstr(err_get(), "missing") != NULL);
  CHECK(memcmp(P->data, before, P->total * sizeof(float)) == 0); /* nothing changed */
  free(before);
  /* zero-initialised output projections: the output starts at exactly zero */
  unet_init_weights(&f.u, 42, 1);
  run(&f, c, 0, NULL, NULL, o1);
  CHECK(max_abs(o1, f.nout) == 0.0);

  free(o1), free(o2), free(gx), free(gc), free(gx2), free(gc2), free(gp);
  free(f.x), free(f.ctxt), free(f.R), free(f.Rattn);
  unet_free(&f.u);
  nn_ctx_free(c);
  return test_finish();
}

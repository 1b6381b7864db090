/* The consistency student (kernels/nn/student.h): created from a teacher it computes the
 * teacher's conditional eps whatever w and m are (zero-initialised condition embeddings), its
 * boundary-scaled prediction f is z itself at t = 0 and c_skip z + c_out x0(eps) elsewhere, the
 * gradient of a loss on f reaches the parameters as central finite differences say (the new
 * condition embeddings included), bad batches are refused, and the multistep sampler is
 * deterministic per seed and batch-invariant. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/device.h"
#include "kernels/nn.h"
#include "kernels/nn/student.h"
#include "tests/testutil.h"

enum { B = 2, T = 4, H = 8, W = 8, L = 3, TD = 6, C = 4 };
#define PER ((int64_t)T * C * H * W)

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
  c.cond_embeds = 0;
  return c;
}

static void teacher_eps(unet *u, nn_ctx *c, const float *z, const int *t, const float *ctx,
                        float *eps) {
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, 0);
  float tf[B];
  for (int i = 0; i < B; i++) tf[i] = (float)t[i];
  nn_var zv = nn_input(c, z, B * PER, 0);
  nn_var cx = nn_input(c, ctx, B * L * TD, 0);
  unet_input in = {.B = B, .T = T, .H = H, .W = W, .t = tf, .context = cx, .L = L};
  nn_var y = unet_forward(u, c, zv, &in);
  device_memcpy_d2h(eps, nn_data(c, y), (size_t)(B * PER) * sizeof(float));
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, 1);
}

/* loss = sum f · g */
static double loss_of(unet *s, nn_ctx *c, const diff_schedule *sch, const student_batch *b,
                      const float *g) {
  float *f = xmalloc((size_t)(B * PER) * sizeof(float));
  CHECK(student_predict_host(s, c, sch, b, f) == TB_OK);
  double l = 0;
  for (int64_t i = 0; i < B * PER; i++) l += (double)f[i] * g[i];
  free(f);
  return l;
}

int main(void) {
  test_begin("test_student");
  diff_schedule sch;
  diff_schedule_default(&sch);
  unet_config tc = tiny_config();
  unet teacher;
  CHECK(unet_create(&teacher, &tc) == TB_OK);
  unet_init_weights(&teacher, 11, 0);
  unet s;
  CHECK(student_from_teacher(&s, &teacher, 5) == TB_OK);
  CHECK(s.cfg.cond_embeds == 2);
  CHECK(s.params.n > teacher.params.n);
  nn_ctx *c = nn_ctx_new();

  float *z = xmalloc((size_t)(B * PER) * sizeof(float));
  float ctx[B * L * TD];
  test_fill_uniform(z, B * PER, 1, -1.5f, 1.5f);
  test_fill_uniform(ctx, B * L * TD, 2, -1, 1);
  int t[B] = {749, 0};
  float w[B] = {7.5f, 12.0f}, m[B] = {0.05f, 0.0f};
  student_batch b = {.B = B, .T = T, .H = H, .W = W, .L = L, .z = z, .t = t, .w = w, .m = m,
                     .ctx = ctx};

  /* a fresh student is the teacher: f from the teacher's conditional eps */
  float *eps = xmalloc((size_t)(B * PER) * sizeof(float));
  float *f = xmalloc((size_t)(B * PER) * sizeof(float));
  float *ref = xmalloc((size_t)(B * PER) * sizeof(float));
  teacher_eps(&teacher, c, z, t, ctx, eps);
  CHECK(student_predict_host(&s, c, &sch, &b, f) == TB_OK);
  for (int i = 0; i < B; i++) {
    double at = diff_alpha(&sch, t[i]), st = diff_sigma(&sch, t[i]);
    double cs = diff_c_skip(t[i]), co = diff_c_out(t[i]);
    for (int64_t k = 0; k < PER; k++) {
      double zz = z[i * PER + k], x0 = (zz - st * eps[i * PER + k]) / at;
      ref[i * PER + k] = (float)(cs * zz + co * x0);
    }
  }
  check_close_f32("fresh student = teacher", f, ref, B * PER, 1e-5, 1e-4);
  /* t = 0: the boundary condition f = z */
  check_close_f32("f(z, 0) = z", f + PER, z + PER, PER, 1e-6, 0);

  /* the conditions matter once the embeddings are trained: perturb them and f changes with w */
  {
    int j = nn_params_find(&s.params, "w_embed.2.weight");
    CHECKF(j >= 0, "the student has a w embedding");
    if (j >= 0) {
      const nn_param_info *pi = &s.params.info[j];
      float *p = xmalloc((size_t)pi->numel * sizeof(float));
      test_fill_uniform(p, pi->numel, 9, -0.3f, 0.3f);
      device_memcpy_h2d(s.params.data + pi->offset, p, (size_t)pi->numel * sizeof(float));
      free(p);
      float *f2 = xmalloc((size_t)(B * PER) * sizeof(float));
      float w2[B] = {14.0f, 12.0f};
      student_batch b2 = b;
      b2.w = w2;
      CHECK(student_predict_host(&s, c, &sch, &b, f) == TB_OK);
      CHECK(student_predict_host(&s, c, &sch, &b2, f2) == TB_OK);
      double d = 0;
      for (int64_t k = 0; k < PER; k++) d += fabs(f[k] - f2[k]);
      CHECKF(d > 1e-3, "w changes the prediction (|df| = %g)", d);
      free(f2);
    }
  }

  /* gradients of sum f·g against central differences on a few parameters */
  {
    float *g = xmalloc((size_t)(B * PER) * sizeof(float));
    test_fill_uniform(g, B * PER, 4, -1, 1);
    nn_ctx_reset(c);
    nn_ctx_set_grad(c, 1);
    nn_params_zero_grad(&s.params);
    nn_var fv;
    CHECK(student_predict(&s, c, &sch, &b, &fv) == TB_OK);
    nn_backward(c, fv, g);
    float *grad = xmalloc((size_t)s.params.total * sizeof(float));
    device_memcpy_d2h(grad, s.params.grad, (size_t)s.params.total * sizeof(float));
    nn_ctx_reset(c);
    const char *names[] = {"w_embed.2.weight", "motion_embed.2.bias", "out.2.weight",
                           "input_blocks.0.0.weight"};
    int probed = 0;
    for (size_t q = 0; q < sizeof names / sizeof *names; q++) {
      int j = nn_params_find(&s.params, names[q]);
      if (j < 0) continue;
      const nn_param_info *pi = &s.params.info[j];
      for (int r = 0; r < 2; r++) {
        int64_t k = pi->offset + (r * 7919) % pi->numel;
        float v0;
        device_memcpy_d2h(&v0, s.params.data + k, sizeof v0);
        const float h = 1e-2f;
        float v = v0 + h;
        device_memcpy_h2d(s.params.data + k, &v, sizeof v);
        double lp = loss_of(&s, c, &sch, &b, g);
        v = v0 - h;
        device_memcpy_h2d(s.params.data + k, &v, sizeof v);
        double lm = loss_of(&s, c, &sch, &b, g);
        device_memcpy_h2d(s.params.data + k, &v0, sizeof v0);
        double fd = (lp - lm) / (2 * h);
        double err = fabs(fd - grad[k]) / fmax(1e-2, fabs(fd) + fabs(grad[k]));
        CHECKF(err < 2e-2, "%s[%lld]: analytic %g, finite differences %g", names[q],
               (long long)(k - pi->offset), (double)grad[k], fd);
        probed++;
      }
    }
    CHECKF(probed >= 6, "probed %d parameters", probed);
    free(grad);
    free(g);
  }

  /* refusals */
  {
    int bad_t[B] = {1000, 3};
    student_batch bb = b;
    bb.t = bad_t;
    nn_var fv;
    CHECK(student_predict(&s, c, &sch, &bb, &fv) == TB_ERR);
    CHECK(strstr(err_get(), "timestep 1000") != NULL);
    float bad_w[B] = {NAN, 1};
    bb = b;
    bb.w = bad_w;
    CHECK(student_predict(&s, c, &sch, &bb, &fv) == TB_ERR);
    bb = b;
    bb.H = 7;
    CHECK(student_predict(&s, c, &sch, &bb, &fv) == TB_ERR);
    nn_ctx_reset(c);
  }

  /* the sampler: deterministic per seed, each sample independent of its batch */
  {
    student_sample_opts o = {.steps = 4, .w = 7.5f, .m = 0.05f, .motion_pct = 0.5f};
    uint64_t seeds[B] = {42, 43};
    float *z1 = xmalloc((size_t)(B * PER) * sizeof(float));
    float *z2 = xmalloc((size_t)(B * PER) * sizeof(float));
    test_fill_uniform(z1, B * PER, 77, -1, 1);
    memcpy(z2, z1, (size_t)(B * PER) * sizeof(float));
    CHECK(student_sample(&s, c, &sch, B, T, H, W, L, ctx, seeds, &o, z1) == TB_OK);
    CHECK(student_sample(&s, c, &sch, B, T, H, W, L, ctx, seeds, &o, z2) == TB_OK);
    CHECK(memcmp(z1, z2, (size_t)(B * PER) * sizeof(float)) == 0);
    float *z3 = xmalloc((size_t)PER * sizeof(float));
    test_fill_uniform(z2, B * PER, 77, -1, 1);
    memcpy(z3, z2 + PER, (size_t)PER * sizeof(float));
    CHECK(student_sample(&s, c, &sch, 1, T, H, W, L, ctx + L * TD, seeds + 1, &o, z3) == TB_OK);
    check_close_f32("sample alone = in its batch", z3, z1 + PER, PER, 1e-5, 1e-4);
    int finite = 1;
    for (int64_t k = 0; k < B * PER; k++) finite &= isfinite(z1[k]) != 0;
    CHECK(finite);
    o.steps = 0;
    CHECK(student_sample(&s, c, &sch, B, T, H, W, L, ctx, seeds, &o, z1) == TB_ERR);
    free(z1);
    free(z2);
    free(z3);
  }

  free(z);
  free(eps);
  free(f);
  free(ref);
  nn_ctx_free(c);
  unet_free(&s);
  unet_free(&teacher);
  return test_finish();
}

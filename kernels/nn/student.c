/* kernels/nn/student.c — the consistency student: created from a teacher, its boundary-scaled
 * one-step prediction, and the multistep consistency sampler (see student.h). */
#include "kernels/nn/student.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/tensor.h"
#include "kernels/device.h"

unet_config student_config(const unet_config *teacher) {
  unet_config c = *teacher;
  c.cond_embeds = 2;
  return c;
}

int student_from_teacher(unet *s, const unet *teacher, uint64_t seed) {
  unet_config cfg = student_config(&teacher->cfg);
  if (unet_create(s, &cfg) != TB_OK) return TB_ERR;
  unet_init_weights(s, seed, 1);
  const nn_params *tp = &teacher->params;
  /* every teacher parameter must exist in the student with its shape: check first */
  for (int i = 0; i < tp->n; i++) {
    const nn_param_info *ti = &tp->info[i];
    int j = nn_params_find(&s->params, ti->name);
    if (j < 0 || s->params.info[j].numel != ti->numel) {
      unet_free(s);
      return err_set("student from teacher: parameter %s %s", ti->name,
                     j < 0 ? "has no place in the student" : "differs in size");
    }
  }
  for (int i = 0; i < tp->n; i++) {
    const nn_param_info *ti = &tp->info[i];
    int j = nn_params_find(&s->params, ti->name);
    device_memcpy_d2d(s->params.data + s->params.info[j].offset, tp->data + ti->offset,
                      (size_t)ti->numel * sizeof(float));
  }
  return TB_OK;
}

int student_batch_check(const unet *s, const student_batch *b) {
  const unet_config *u = &s->cfg;
  if (b->B < 1 || b->T < 1 || b->H < 1 || b->W < 1 || b->L < 1)
    return err_set("student batch: sizes B=%d T=%d H=%d W=%d L=%d must be positive", b->B, b->T,
                   b->H, b->W, b->L);
  if (b->T > u->max_frames)
    return err_set("student batch: %d frames, the model has positions for %d", b->T,
                   u->max_frames);
  int f = 1 << (u->n_levels - 1);
  if (b->H % f || b->W % f)
    return err_set("student batch: latent %dx%d is not a multiple of %d", b->H, b->W, f);
  if (!b->z || !b->t || !b->w || !b->m || !b->ctx) return err_set("student batch: missing array");
  for (int i = 0; i < b->B; i++) {
    if (b->t[i] < 0 || b->t[i] >= DIFF_T_MAX)
      return err_set("student batch: sample %d: timestep %d outside [0, %d)", i, b->t[i],
                     DIFF_T_MAX);
    if (!isfinite(b->w[i]) || !isfinite(b->m[i]) || b->w[i] < 0 || b->m[i] < 0)
      return err_set("student batch: sample %d: w %g and m %g must be finite and >= 0", i,
                     (double)b->w[i], (double)b->m[i]);
  }
  return TB_OK;
}

int student_predict(unet *s, nn_ctx *c, const diff_schedule *sch, const student_batch *b,
                    nn_var *f) {
  if (student_batch_check(s, b) != TB_OK) return TB_ERR;
  const int B = b->B;
  const int64_t per = (int64_t)b->T * s->cfg.in_ch * b->H * b->W;
  float *tf = xmalloc((size_t)B * sizeof(float));
  float *a = xmalloc((size_t)B * sizeof(float));  /* coefficient of z_t */
  float *e = xmalloc((size_t)B * sizeof(float));  /* coefficient of eps */
  for (int i = 0; i < B; i++) {
    int t = b->t[i];
    double at = diff_alpha(sch, t), st = diff_sigma(sch, t);
    double cs = diff_c_skip(t), co = diff_c_out(t);
    tf[i] = (float)t;
    a[i] = (float)(cs + co / at);
    e[i] = (float)(-co * st / at);
  }
  float *az = xmalloc((size_t)(B * per) * sizeof(float));
  for (int i = 0; i < B; i++)
    for (int64_t k = 0; k < per; k++) az[i * per + k] = a[i] * b->z[i * per + k];
  nn_var zv = nn_input(c, b->z, B * per, 0);
  nn_var cx = nn_input(c, b->ctx, (int64_t)B * b->L * s->cfg.text_dim, 0);
  unet_input in = {.B = B, .T = b->T, .H = b->H, .W = b->W, .t = tf, .w = b->w, .motion = b->m,
                   .context = cx, .L = b->L};
  nn_var eps = unet_forward(s, c, zv, &in);
  nn_var ze = nn_token_pool(c, eps, e, B, 1, per); /* e[b] · eps[b] */
  *f = nn_add(c, nn_input(c, az, B * per, 0), ze);
  free(az);
  free(tf);
  free(a);
  free(e);
  return TB_OK;
}

int student_predict_host(unet *s, nn_ctx *c, const diff_schedule *sch, const student_batch *b,
                         float *out) {
  int was = nn_ctx_grad_enabled(c);
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, 0);
  nn_var f;
  int rc = student_predict(s, c, sch, b, &f);
  if (rc == TB_OK) device_memcpy_d2h(out, nn_data(c, f), (size_t)nn_numel(c, f) * sizeof(float));
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, was);
  return rc;
}

/* Standard normals from (seed, stream): Box–Muller over splitmix64. */
static void normals(uint64_t seed, uint64_t stream, float *out, int64_t n) {
  uint64_t st = hash_mix64(seed ^ hash_mix64(stream + 0x9e3779b97f4a7c15ull));
  for (int64_t i = 0; i < n; i += 2) {
    st += 0x9e3779b97f4a7c15ull;
    uint64_t r1 = hash_mix64(st);
    st += 0x9e3779b97f4a7c15ull;
    uint64_t r2 = hash_mix64(st);
    double u1 = ((double)(r1 >> 11) + 1.0) / 9007199254740993.0; /* (0, 1] */
    double u2 = (double)(r2 >> 11) / 9007199254740992.0;
    double rad = sqrt(-2.0 * log(u1));
    out[i] = (float)(rad * cos(2.0 * M_PI * u2));
    if (i + 1 < n) out[i + 1] = (float)(rad * sin(2.0 * M_PI * u2));
  }
}

int student_sample(unet *s, nn_ctx *c, const diff_schedule *sch, int B, int T, int H, int W,
                   int L, const float *ctx, const uint64_t *seeds, const student_sample_opts *o,
                   float *z) {
  int ts[DIFF_DDIM_STEPS];
  if (o->steps < 1 || o->steps > sch->n_ddim)
    return err_set("student sample: %d steps outside 1..%d", o->steps, sch->n_ddim);
  if (!isfinite(o->w) || !isfinite(o->m) || o->w < 0 || o->m < 0 || o->motion_pct < 0 ||
      o->motion_pct > 1)
    return err_set("student sample: w %g, m %g, motion fraction %g out of range", (double)o->w,
                   (double)o->m, (double)o->motion_pct);
  if (diff_lcm_timesteps(sch, o->steps, ts) != TB_OK) return TB_ERR;
  const int64_t per = (int64_t)T * s->cfg.in_ch * H * W;
  float *w = xmalloc((size_t)B * sizeof(float)), *m = xmalloc((size_t)B * sizeof(float));
  int *t = xmalloc((size_t)B * sizeof(int));
  float *f = xmalloc((size_t)(B * per) * sizeof(float));
  float *noise = xmalloc((size_t)per * sizeof(float));
  int rc = TB_OK;
  for (int k = 0; k < o->steps && rc == TB_OK; k++) {
    int mot = ts[k] >= (int)lround(DIFF_T_MAX * (1.0 - o->motion_pct));
    for (int i = 0; i < B; i++) t[i] = ts[k], w[i] = o->w, m[i] = mot ? o->m : 0.0f;
    student_batch b = {.B = B, .T = T, .H = H, .W = W, .L = L, .z = z, .t = t, .w = w, .m = m,
                       .ctx = ctx};
    rc = student_predict_host(s, c, sch, &b, f);
    if (rc != TB_OK) break;
    if (k + 1 == o->steps) {
      memcpy(z, f, (size_t)(B * per) * sizeof(float));
      break;
    }
    double an = diff_alpha(sch, ts[k + 1]), sn = diff_sigma(sch, ts[k + 1]);
    for (int i = 0; i < B; i++) {
      normals(seeds[i], (uint64_t)k + 1, noise, per);
      for (int64_t j = 0; j < per; j++)
        z[i * per + j] = (float)(an * f[i * per + j] + sn * noise[j]);
    }
  }
  free(w);
  free(m);
  free(t);
  free(f);
  free(noise);
  return rc;
}

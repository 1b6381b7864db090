/* kernels/nn/teacher.c — see teacher.h.
 *
 * One forward per call: the B conditional rows and (with CFG) the B null-context rows go through
 * the UNet as one batch of 2B, in a no-gradient context. The solver arithmetic runs on device
 * buffers through kernels/diffusion.h; host arrays cross at the edges only.
 */
#include "kernels/nn/teacher.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "common/tensor.h"
#include "kernels/device.h"
#include "kernels/ops.h"

int teacher_batch_check(const unet *u, const teacher_batch *b) {
  if (!b->z || !b->ctx) return err_set("teacher: no latents or no text tokens");
  if (b->w && !b->null_ctx) return err_set("teacher: CFG needs the null (empty-caption) context");
  for (int i = 0; i < b->B && b->w; i++)
    if (!(b->w[i] >= 0.0f && b->w[i] <= 100.0f))
      return err_set("teacher: w of sample %d is %g, not in [0, 100]", i, (double)b->w[i]);
  float *tf = xmalloc(sizeof(float) * (size_t)(b->B > 0 ? b->B : 1));
  for (int i = 0; i < b->B; i++) tf[i] = b->t ? (float)b->t[i] : -1.0f;
  unet_input in = {.B = b->B, .T = b->T, .H = b->H, .W = b->W, .t = tf, .L = b->L};
  int64_t n = (int64_t)b->B * b->T * u->cfg.in_ch * b->H * b->W;
  int64_t nc = (int64_t)b->B * b->L * u->cfg.text_dim;
  int rc = unet_input_check(u, n, nc, &in);
  free(tf);
  if (rc == TB_OK && u->cfg.in_ch != u->cfg.out_ch)
    rc = err_set("teacher: the UNet predicts %d channels of %d: not an eps model", u->cfg.out_ch,
                 u->cfg.in_ch);
  return rc;
}

/* Device buffers of one call: n floats each. */
typedef struct {
  float *z, *ec, *eu, *e, *x0, *xp;
} bufs;

static void bufs_alloc(bufs *d, int64_t n) {
  size_t by = sizeof(float) * (size_t)n;
  d->z = device_malloc(by), d->ec = device_malloc(by), d->eu = device_malloc(by);
  d->e = device_malloc(by), d->x0 = device_malloc(by), d->xp = device_malloc(by);
}

static void bufs_free(bufs *d) {
  device_free(d->z), device_free(d->ec), device_free(d->eu);
  device_free(d->e), device_free(d->x0), device_free(d->xp);
}

/* eps_c, eps_u (when b->w) into d->ec, d->eu; d->z holds the latents. */
static int run_unet(unet *u, nn_ctx *c, const teacher_batch *b, bufs *d) {
  int cfgp = b->w != NULL, B = b->B, R = cfgp ? 2 * B : B;
  int64_t per = (int64_t)b->T * u->cfg.in_ch * b->H * b->W, D = u->cfg.text_dim;
  int64_t LD = (int64_t)b->L * D;
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, 0);
  float *tf = xmalloc(sizeof(float) * (size_t)R);
  for (int i = 0; i < R; i++) tf[i] = (float)b->t[i % B];
  nn_var x = nn_input(c, NULL, (int64_t)R * per, 0);
  device_memcpy_d2d(nn_data(c, x), d->z, sizeof(float) * (size_t)(B * per));
  if (cfgp) device_memcpy_d2d(nn_data(c, x) + B * per, d->z, sizeof(float) * (size_t)(B * per));
  nn_var cx = nn_input(c, NULL, (int64_t)R * LD, 0);
  device_memcpy_h2d(nn_data(c, cx), b->ctx, sizeof(float) * (size_t)(B * LD));
  for (int i = 0; cfgp && i < B; i++)
    device_memcpy_h2d(nn_data(c, cx) + (B + i) * LD, b->null_ctx, sizeof(float) * (size_t)LD);
  unet_input in = {.B = R, .T = b->T, .H = b->H, .W = b->W, .t = tf, .context = cx, .L = b->L};
  nn_var y;
  int rc = unet_forward_checked(u, c, x, &in, &y);
  free(tf);
  if (rc == TB_OK) {
    device_memcpy_d2d(d->ec, nn_data(c, y), sizeof(float) * (size_t)(B * per));
    if (cfgp) device_memcpy_d2d(d->eu, nn_data(c, y) + B * per, sizeof(float) * (size_t)(B * per));
  }
  nn_ctx_reset(c);
  return rc;
}

/* CFG, the guidance term, x0: d->e and d->x0 from d->ec, d->eu. */
static int combine(unet *u, const diff_schedule *s, const teacher_batch *b, bufs *d, int64_t per) {
  int B = b->B;
  if (b->w)
    diff_cfg(d->e, d->ec, d->eu, b->w, B, per);
  else
    device_memcpy_d2d(d->e, d->ec, sizeof(float) * (size_t)(B * per));
  diff_eps_to_x0(s, d->x0, d->z, d->e, b->t, B, per);
  if (b->guide) {
    /* the term works on host arrays (it runs its own passes); on the CPU these are the buffers */
    int64_t n = (int64_t)B * per;
    float *hz = xmalloc(sizeof(float) * (size_t)n * 4);
    float *hec = hz + n, *heu = hz + 2 * n, *he = hz + 3 * n;
    device_memcpy_d2h(hz, d->z, sizeof(float) * (size_t)n);
    device_memcpy_d2h(hec, d->ec, sizeof(float) * (size_t)n);
    device_memcpy_d2h(heu, b->w ? d->eu : d->ec, sizeof(float) * (size_t)n);
    device_memcpy_d2h(he, d->e, sizeof(float) * (size_t)n);
    teacher_batch hb = *b;
    hb.z = hz;
    int rc = b->guide->fn(b->guide->user, u, &hb, hec, heu, he);
    if (rc == TB_OK) device_memcpy_h2d(d->e, he, sizeof(float) * (size_t)n);
    free(hz);
    if (rc != TB_OK) return TB_ERR;
  }
  return TB_OK;
}

static void copy_out(float *dst, const float *src, int64_t n) {
  if (dst) device_memcpy_d2h(dst, src, sizeof(float) * (size_t)n);
}

int teacher_predict(unet *u, nn_ctx *c, const diff_schedule *s, const teacher_batch *b,
                    teacher_out *out) {
  if (teacher_batch_check(u, b) != TB_OK) return TB_ERR;
  int64_t per = (int64_t)b->T * u->cfg.in_ch * b->H * b->W, n = b->B * per;
  bufs d;
  bufs_alloc(&d, n);
  device_memcpy_h2d(d.z, b->z, sizeof(float) * (size_t)n);
  int rc = run_unet(u, c, b, &d);
  if (rc == TB_OK) rc = combine(u, s, b, &d, per);
  if (rc == TB_OK) {
    copy_out(out->eps_c, d.ec, n);
    copy_out(out->eps_u, b->w ? d.eu : d.ec, n);
    copy_out(out->eps, d.e, n);
    copy_out(out->x0, d.x0, n);
  }
  bufs_free(&d);
  return rc;
}

int teacher_step(unet *u, nn_ctx *c, const diff_schedule *s, teacher_batch *b, const int *idx,
                 teacher_out *out) {
  if (b->B < 1) return err_set("teacher: empty batch");
  int *t = xmalloc(sizeof(int) * (size_t)b->B);
  for (int i = 0; i < b->B; i++) {
    if (!diff_index_valid(s, idx[i])) {
      free(t);
      return err_set("teacher: solver index %d of sample %d is outside [0, %d)", idx[i], i,
                     s->n_ddim);
    }
    t[i] = diff_index_timestep(s, idx[i]);
  }
  const int *t_given = b->t;
  b->t = t;
  int rc = teacher_batch_check(u, b);
  int64_t per = (int64_t)b->T * u->cfg.in_ch * b->H * b->W, n = b->B * per;
  if (rc == TB_OK) {
    bufs d;
    bufs_alloc(&d, n);
    device_memcpy_h2d(d.z, b->z, sizeof(float) * (size_t)n);
    rc = run_unet(u, c, b, &d);
    if (rc == TB_OK) rc = combine(u, s, b, &d, per);
    if (rc == TB_OK) {
      diff_ddim_step(s, d.xp, d.x0, d.e, idx, b->B, per);
      copy_out(out->eps_c, d.ec, n);
      copy_out(out->eps_u, b->w ? d.eu : d.ec, n);
      copy_out(out->eps, d.e, n);
      copy_out(out->x0, d.x0, n);
      copy_out(out->x_prev, d.xp, n);
    }
    bufs_free(&d);
  }
  b->t = t_given;
  free(t);
  return rc;
}

void teacher_noise(const uint64_t *seeds, int B, int64_t per, float *z) {
  for (int b = 0; b < B; b++) {
    uint64_t st = hash_mix64(seeds[b] ^ 0x7EAC4E5ull);
    float *o = z + (int64_t)b * per;
    for (int64_t i = 0; i < per; i += 2) {
      /* Box-Muller on two 53-bit uniforms from a splitmix64 stream */
      st += 0x9E3779B97F4A7C15ull;
      double u1 = ((double)(hash_mix64(st) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
      st += 0x9E3779B97F4A7C15ull;
      double u2 = (double)(hash_mix64(st) >> 11) * (1.0 / 9007199254740992.0);
      double r = sqrt(-2.0 * log(u1)), a = 6.283185307179586 * u2;
      o[i] = (float)(r * cos(a));
      if (i + 1 < per) o[i + 1] = (float)(r * sin(a));
    }
  }
}

/* Clamps n device floats to [-m, m] (host round trip: once per sampling step). */
static void clamp_dev(float *x, int64_t n, float m) {
  float *h = xmalloc(sizeof(float) * (size_t)n);
  device_memcpy_d2h(h, x, sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) h[i] = h[i] < -m ? -m : h[i] > m ? m : h[i];
  device_memcpy_h2d(x, h, sizeof(float) * (size_t)n);
  free(h);
}

int teacher_sample(unet *u, nn_ctx *c, const diff_schedule *s, int B, int T, int H, int W, int L,
                   const float *ctx, const float *null_ctx, const teacher_sample_opts *o, float *z) {
  if (o->steps < 1 || o->steps > s->n_ddim)
    return err_set("teacher: %d sampling steps, 1..%d allowed", o->steps, s->n_ddim);
  int *ts = xmalloc(sizeof(int) * (size_t)o->steps * 2), *tn = ts + o->steps;
  if (diff_ddim_timesteps(s, o->steps, ts, tn) != TB_OK) {
    free(ts);
    return TB_ERR;
  }
  float *wv = xmalloc(sizeof(float) * (size_t)(B > 0 ? B : 1));
  int *tb = xmalloc(sizeof(int) * (size_t)(B > 0 ? B : 1) * 2), *tnb = tb + (B > 0 ? B : 1);
  for (int i = 0; i < B; i++) wv[i] = o->w;
  teacher_batch b = {.B = B, .T = T, .H = H, .W = W, .L = L, .z = z, .t = tb,
                     .w = o->w != 0.0f ? wv : NULL, .ctx = ctx, .null_ctx = null_ctx,
                     .guide = o->guide};
  for (int i = 0; i < B; i++) tb[i] = ts[0];
  int rc = teacher_batch_check(u, &b);
  int64_t per = (int64_t)T * u->cfg.in_ch * H * W, n = (int64_t)B * per;
  if (rc == TB_OK) {
    bufs d;
    bufs_alloc(&d, n);
    device_memcpy_h2d(d.z, z, sizeof(float) * (size_t)n);
    for (int k = 0; k < o->steps && rc == TB_OK; k++) {
      for (int i = 0; i < B; i++) tb[i] = ts[k], tnb[i] = tn[k];
      rc = run_unet(u, c, &b, &d);
      if (rc == TB_OK) rc = combine(u, s, &b, &d, per);
      if (rc != TB_OK) break;
      if (o->x0_clip > 0) {
        clamp_dev(d.x0, n, o->x0_clip);
        diff_x0_to_eps(s, d.e, d.z, d.x0, tb, B, per); /* the eps the clamped x0 implies */
      }
      diff_ddim_step_to(s, d.z, d.x0, d.e, tnb, B, per);
    }
    if (rc == TB_OK) device_memcpy_d2h(z, d.z, sizeof(float) * (size_t)n);
    bufs_free(&d);
  }
  free(ts), free(wv), free(tb);
  return rc;
}

int teacher_invert(unet *u, nn_ctx *c, const diff_schedule *s, int B, int T, int H, int W, int L,
                   const float *ctx, const float *null_ctx, const float *w, int index, float *z,
                   float *prev) {
  if (!diff_index_valid(s, index))
    return err_set("teacher: inversion to solver index %d, outside [0, %d)", index, s->n_ddim);
  int *tb = xmalloc(sizeof(int) * (size_t)(B > 0 ? B : 1));
  teacher_batch b = {.B = B, .T = T, .H = H, .W = W, .L = L, .z = z, .t = tb, .w = w,
                     .ctx = ctx, .null_ctx = null_ctx};
  for (int i = 0; i < B; i++) tb[i] = diff_index_timestep(s, 0);
  int rc = teacher_batch_check(u, &b);
  int64_t per = (int64_t)T * u->cfg.in_ch * H * W, n = (int64_t)B * per;
  if (rc == TB_OK) {
    bufs d;
    bufs_alloc(&d, n);
    device_memcpy_h2d(d.z, z, sizeof(float) * (size_t)n);
    for (int k = 0; k <= index && rc == TB_OK; k++) {
      for (int i = 0; i < B; i++) tb[i] = diff_index_timestep(s, k);
      if (k == index && prev) device_memcpy_d2h(prev, d.z, sizeof(float) * (size_t)n);
      /* eps at the target timestep, evaluated on the latent one grid step below it */
      rc = run_unet(u, c, &b, &d);
      if (rc != TB_OK) break;
      if (w)
        diff_cfg(d.e, d.ec, d.eu, w, B, per);
      else
        device_memcpy_d2d(d.e, d.ec, sizeof(float) * (size_t)n);
      diff_ddim_reverse_step(s, d.xp, d.z, d.e, tb, B, per);
      device_memcpy_d2d(d.z, d.xp, sizeof(float) * (size_t)n);
    }
    if (rc == TB_OK) device_memcpy_d2h(z, d.z, sizeof(float) * (size_t)n);
    bufs_free(&d);
  }
  free(tb);
  return rc;
}

int teacher_step_to(unet *u, nn_ctx *c, const diff_schedule *s, const teacher_batch *b,
                    const int *t_to, teacher_out *out) {
  if (teacher_batch_check(u, b) != TB_OK) return TB_ERR;
  for (int i = 0; i < b->B; i++)
    if (t_to[i] < -1 || t_to[i] >= b->t[i])
      return err_set("teacher: target timestep %d of sample %d is not in [-1, %d)", t_to[i], i,
                     b->t[i]);
  int64_t per = (int64_t)b->T * u->cfg.in_ch * b->H * b->W, n = b->B * per;
  bufs d;
  bufs_alloc(&d, n);
  device_memcpy_h2d(d.z, b->z, sizeof(float) * (size_t)n);
  int rc = run_unet(u, c, b, &d);
  if (rc == TB_OK) rc = combine(u, s, b, &d, per);
  if (rc == TB_OK) {
    diff_ddim_step_to(s, d.xp, d.x0, d.e, t_to, b->B, per);
    copy_out(out->eps_c, d.ec, n);
    copy_out(out->eps_u, b->w ? d.eu : d.ec, n);
    copy_out(out->eps, d.e, n);
    copy_out(out->x0, d.x0, n);
    copy_out(out->x_prev, d.xp, n);
  }
  bufs_free(&d);
  return rc;
}

/* ---- checkpoints ------------------------------------------------------------------------------ */

#define CFG_INTS(X)                                                                              \
  X(in_ch) X(out_ch) X(model_ch) X(n_levels) X(n_res) X(attn_levels) X(head_ch) X(text_dim)     \
  X(max_frames) X(temporal_conv) X(temporal_pos) X(cond_embeds) X(groups)                       \
  X(temporal_conv_layers) X(temporal_attn) X(init_temporal) X(init_heads) X(spatial_only)       \
  X(fps_embed)

char *teacher_config_format(const teacher_model *m) {
  const unet_config *c = &m->net.cfg;
  json_buf b = {0};
  json_buf_puts(&b, "{\"unet\":{");
#define X(f) json_buf_printf(&b, "\"" #f "\":%d,", c->f);
  CFG_INTS(X)
#undef X
  json_buf_printf(&b, "\"ch_mult\":[%d,%d,%d,%d],\"dropout\":", c->ch_mult[0], c->ch_mult[1],
                  c->ch_mult[2], c->ch_mult[3]);
  json_buf_put_number(&b, c->dropout);
  json_buf_printf(&b, "},\"T\":%d,\"H\":%d,\"W\":%d,\"L\":%d}", m->T, m->H, m->W, m->L);
  return b.data;
}

static int parse_config(const char *js, const char *path, teacher_model *m, unet_config *c) {
  json_value *v = json_parse(js, strlen(js), NULL);
  if (!v) return err_wrap("%s: teacher.config: ", path);
  const json_value *u = json_get(v, "unet");
  int rc = u ? TB_OK : err_set("%s: teacher.config has no \"unet\"", path);
  *c = unet_config_default();
  int64_t x;
#define X(f)                                                                                     \
  if (rc == TB_OK) {                                                                             \
    if (json_get_int64(u, #f, &x) != TB_OK)                                                      \
      rc = err_set("%s: teacher.config: unet." #f " is missing or not an integer", path);         \
    else                                                                                         \
      c->f = (int)x;                                                                             \
  }
  CFG_INTS(X)
#undef X
  const json_value *cm = rc == TB_OK ? json_get(u, "ch_mult") : NULL;
  for (int i = 0; i < UNET_MAX_LEVELS && rc == TB_OK; i++) {
    const json_value *e = cm ? json_at(cm, (size_t)i) : NULL;
    if (!e || e->type != JSON_NUMBER) rc = err_set("%s: teacher.config: unet.ch_mult[%d]", path, i);
    else c->ch_mult[i] = (int)e->number;
  }
  int64_t g[4];
  const char *gk[4] = {"T", "H", "W", "L"};
  for (int i = 0; i < 4 && rc == TB_OK; i++)
    if (json_get_int64(v, gk[i], &g[i]) != TB_OK || g[i] < 1 || g[i] > 4096)
      rc = err_set("%s: teacher.config: \"%s\" is missing or out of range", path, gk[i]);
  if (rc == TB_OK) m->T = (int)g[0], m->H = (int)g[1], m->W = (int)g[2], m->L = (int)g[3];
  json_free(v);
  return rc;
}

int teacher_model_save(const teacher_model *m, const char *path, int nextra,
                       const char *const *extra) {
  const nn_params *p = &m->net.params;
  float *host = xmalloc(sizeof(float) * (size_t)p->total);
  device_memcpy_d2h(host, p->data, sizeof(float) * (size_t)p->total);
  safetensors_writer *w = safetensors_writer_new();
  int rc = TB_OK;
  for (int i = 0; i < p->n && rc == TB_OK; i++) {
    tensor t = tensor_view(DTYPE_F32, p->info[i].ndim, p->info[i].shape, host + p->info[i].offset);
    rc = safetensors_writer_add_ref(w, p->info[i].name, &t);
  }
  int64_t ns[2] = {m->L, m->net.cfg.text_dim};
  tensor nt = tensor_view(DTYPE_F32, 2, ns, m->null_ctx);
  if (rc == TB_OK) rc = safetensors_writer_add_ref(w, "teacher.null_ctx", &nt);
  char *cj = teacher_config_format(m);
  if (rc == TB_OK) rc = safetensors_writer_set_meta(w, "format", "turbo.teacher.v1");
  if (rc == TB_OK) rc = safetensors_writer_set_meta(w, "teacher.config", cj);
  for (int i = 0; i < nextra && rc == TB_OK; i++)
    rc = safetensors_writer_set_meta(w, extra[2 * i], extra[2 * i + 1]);
  if (rc == TB_OK) rc = safetensors_writer_save(w, path);
  safetensors_writer_free(w);
  free(cj);
  free(host);
  return rc == TB_OK ? TB_OK : err_wrap("saving the teacher to %s: ", path);
}

int teacher_model_load(teacher_model *m, const char *path, int frozen) {
  memset(m, 0, sizeof *m);
  safetensors_file *f = NULL;
  if (safetensors_open(path, &f) != TB_OK) return TB_ERR;
  const char *js = safetensors_meta_get(f, "teacher.config");
  unet_config cfg;
  int rc = js ? parse_config(js, path, m, &cfg)
              : err_set("%s: no teacher.config metadata: not a teacher checkpoint (bin/pretrain "
                        "--model teacher writes one)", path);
  int created = 0;
  if (rc == TB_OK) rc = unet_create(&m->net, &cfg), created = rc == TB_OK;
  if (rc == TB_OK) {
    int64_t shape[2] = {m->L, cfg.text_dim};
    tensor t;
    rc = safetensors_read_f32(f, "teacher.null_ctx", 2, shape, &t);
    if (rc == TB_OK) {
      m->null_ctx = xmalloc(sizeof(float) * (size_t)m->L * cfg.text_dim);
      memcpy(m->null_ctx, t.data, sizeof(float) * (size_t)m->L * cfg.text_dim);
      tensor_free(&t);
    }
  }
  safetensors_close(f);
  if (rc == TB_OK) rc = nn_params_load_registered(&m->net.params, path);
  if (rc == TB_OK && frozen) unet_freeze(&m->net);
  if (rc != TB_OK) {
    if (created) unet_free(&m->net);
    free(m->null_ctx);
    memset(m, 0, sizeof *m);
    return err_wrap("%s: ", path);
  }
  return TB_OK;
}

void teacher_model_free(teacher_model *m) {
  if (!m) return;
  if (m->null_ctx) unet_free(&m->net);
  free(m->null_ctx);
  memset(m, 0, sizeof *m);
}

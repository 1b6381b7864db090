/* stages/teacher/main.c — bin/teacher: the teacher's ODE solver as a service.
 *
 *   bin/teacher [--checkpoint FILE] [--workspace DIR] [--endpoint EP] [--threads N]
 *               [--device auto|cpu|cuda]
 *
 * Answers teacher.step (schemas/teacher.step.schema): latents z (B, T, C, H, W) at timesteps t,
 * targets t_prev, CFG scales w and caption tokens text_emb (B, L, D) (null_emb optional: the
 * teacher's own empty-caption context otherwise) in; eps_c, eps_u, x0 and x_prev of one DDIM
 * step with eps = eps_c + w (eps_c - eps_u) out (kernels/nn/teacher.h teacher_step_to: one
 * batched no-gradient forward of 2B samples). Without --checkpoint the model is
 * WORKSPACE/models/teacher.safetensors (bin/pretrain --model teacher).
 *
 * Every request is checked against the model before it runs — channels, frames (against its
 * frame-position table), latent size (the size it was trained at), text width, timesteps
 * (t_prev < t) — and anything that does not fit gets an error reply naming it; the service
 * goes on. motion_scale > 0 is refused until the motion term is served.
 *
 * Exit status: 0 after SIGINT/SIGTERM, 1 when the model or socket cannot be set up, 2 bad usage.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/catalogue.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/service.h"
#include "common/tensor.h"
#include "kernels/device.h"
#include "kernels/diffusion.h"
#include "kernels/nn/teacher.h"
#include "kernels/ops.h"

typedef struct {
  teacher_model m;
  nn_ctx *c;
  diff_schedule s;
} served;

static int bad(msg **reply, const msg *req, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(msg **reply, const msg *req, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  *reply = msg_error_new(MSG_ERR_BAD_REQUEST, buf, msg_schema(req), msg_id(req));
  return TB_OK;
}

/* A tensor of the request as f32 host floats (malloc'd). */
static float *as_f32(const tensor *t) {
  int64_t n = tensor_numel(t);
  float *x = xmalloc(sizeof(float) * (size_t)(n ? n : 1));
  if (t->dtype == DTYPE_BF16) convert_bf16_to_f32(t->data, x, n);
  else memcpy(x, t->data, sizeof(float) * (size_t)n);
  return x;
}

static int step_handler(service *sv_, const msg *req, msg **reply, void *user) {
  (void)sv_;
  served *sv = user;
  const unet_config *cfg = &sv->m.net.cfg;
  const tensor *z = msg_tensor_get(req, "z"), *te = msg_tensor_get(req, "text_emb");
  const tensor *ne = msg_tensor_get(req, "null_emb");
  int B = (int)z->shape[0], T = (int)z->shape[1], C = (int)z->shape[2];
  int H = (int)z->shape[3], W = (int)z->shape[4], L = (int)te->shape[1], D = (int)te->shape[2];
  if (C != cfg->in_ch) return bad(reply, req, "z has %d channels; the teacher's latents have %d", C, cfg->in_ch);
  if (T > cfg->max_frames && cfg->temporal_pos == 0)
    return bad(reply, req, "z has %d frames; the teacher reads at most %d", T, cfg->max_frames);
  if (H != sv->m.H || W != sv->m.W)
    return bad(reply, req, "z is %dx%d; the teacher was trained on %dx%d latents", H, W, sv->m.H, sv->m.W);
  if (D != cfg->text_dim)
    return bad(reply, req, "text_emb is %d wide; the teacher's text tokens are %d wide", D, cfg->text_dim);
  if (!ne && L != sv->m.L)
    return bad(reply, req, "text_emb has %d tokens; without null_emb it must have the teacher's %d "
               "(its own null context)", L, sv->m.L);
  double ms = msg_float_or(req, "motion_scale", 0.0);
  if (ms > 0)
    return bad(reply, req, "motion_scale %g: the motion-guidance term is not served by this "
               "teacher yet", ms);
  const int64_t *tv, *tpv;
  const double *wv;
  int nt, ntp, nw;
  msg_get_ints(req, "t", &tv, &nt);
  msg_get_ints(req, "t_prev", &tpv, &ntp);
  msg_get_floats(req, "w", &wv, &nw);
  int *t = xmalloc(sizeof(int) * (size_t)B * 2), *tp = t + B;
  float *w = xmalloc(sizeof(float) * (size_t)B);
  for (int b = 0; b < B; b++) {
    t[b] = (int)tv[b], tp[b] = (int)tpv[b], w[b] = (float)wv[b];
    if (tp[b] >= t[b]) {
      free(t), free(w);
      return bad(reply, req, "t_prev of sample %d is %d, not below its t %d", b, tp[b], t[b]);
    }
  }
  float *zh = as_f32(z), *ctx = as_f32(te), *nctx = ne ? as_f32(ne) : NULL;
  int64_t n = tensor_numel(z);
  int64_t shape[5] = {B, T, C, H, W};
  tensor o[4];
  for (int i = 0; i < 4; i++) o[i] = tensor_new(DTYPE_F32, 5, shape);
  teacher_out out = {.eps_c = o[0].data, .eps_u = o[1].data, .x0 = o[2].data, .x_prev = o[3].data};
  int want_eps = 0;
  if (msg_has(req, "want_eps")) msg_get_bool(req, "want_eps", &want_eps);
  tensor oe = want_eps ? tensor_new(DTYPE_F32, 5, shape) : (tensor){0};
  if (want_eps) out.eps = oe.data;
  double t0 = time_now();
  int rc = TB_OK;
  if (nctx) {
    /* per-sample null contexts: one step per distinct row would cost more; the batch is run
     * with each sample's own null row by stepping samples whose rows differ separately */
    int64_t LD = (int64_t)L * D, per = n / B;
    for (int b = 0; b < B && rc == TB_OK; b++) {
      teacher_batch tb = {.B = 1, .T = T, .H = H, .W = W, .L = L, .z = zh + b * per, .t = t + b,
                          .w = w + b, .ctx = ctx + b * LD, .null_ctx = nctx + b * LD};
      teacher_out ob = {.eps_c = out.eps_c + b * per, .eps_u = out.eps_u + b * per,
                        .x0 = out.x0 + b * per, .x_prev = out.x_prev + b * per,
                        .eps = out.eps ? out.eps + b * per : NULL};
      rc = teacher_step_to(&sv->m.net, sv->c, &sv->s, &tb, tp + b, &ob);
    }
  } else {
    teacher_batch tb = {.B = B, .T = T, .H = H, .W = W, .L = L, .z = zh, .t = t, .w = w,
                        .ctx = ctx, .null_ctx = sv->m.null_ctx};
    rc = teacher_step_to(&sv->m.net, sv->c, &sv->s, &tb, tp, &out);
  }
  double dt = time_now() - t0;
  free(zh), free(ctx), free(nctx), free(w);
  if (rc != TB_OK) {
    free(t);
    for (int i = 0; i < 4; i++) tensor_free(&o[i]);
    if (want_eps) tensor_free(&oe);
    return bad(reply, req, "%s", err_get());
  }
  msg *r = msg_new("teacher.step.reply", 1, msg_id(req));
  int64_t *tpo = xmalloc(sizeof(int64_t) * (size_t)B);
  for (int b = 0; b < B; b++) tpo[b] = tp[b];
  msg_set_ints(r, "t_prev", tpo, B);
  free(tpo), free(t);
  msg_set_float(r, "compute_s", dt);
  const char *names[4] = {"eps_c", "eps_u", "x0", "x_prev"};
  for (int i = 0; i < 4 && rc == TB_OK; i++) rc = msg_add_tensor_owned(r, names[i], &o[i]);
  if (rc == TB_OK && want_eps) rc = msg_add_tensor_owned(r, "eps", &oe);
  if (rc != TB_OK) {
    msg_free(r);
    return TB_ERR;
  }
  *reply = r;
  return TB_OK;
}

int main(int argc, char **argv) {
  log_init("teacher");
  char *checkpoint = NULL, *workspace = NULL, *endpoint = NULL, *devspec = "cpu";
  int threads = 0;
  arg_opt opts[] = {
      {"checkpoint", ARG_STR, &checkpoint, "FILE", "the teacher (default WORKSPACE/models/teacher.safetensors)"},
      {"workspace", ARG_STR, &workspace, "DIR", "workspace (default $TURBO_WORKSPACE or runs/default)"},
      {"endpoint", ARG_STR, &endpoint, "EP", "ipc://PATH or tcp://HOST:PORT (default ipc://DIR/sock/teacher.ipc)"},
      {"threads", ARG_INT, &threads, "N", "op threads (default: all cores)"},
      {"device", ARG_STR, &devspec, "DEV", "auto, cpu or cuda[:N] (default cpu)"},
      {0}};
  int pos = args_parse(argc, argv, "teacher [options]", "Serves the teacher's DDIM step on teacher.step.", opts);
  if (pos < 0) return 2;
  if (pos < argc) {
    log_error("unexpected argument '%s'", argv[pos]);
    return 2;
  }
  const char *ws = catalogue_workspace_dir(workspace);
  if (device_init(devspec) != TB_OK) {
    log_error("%s", err_get());
    return 1;
  }
  ops_set_num_threads(threads);
  char ck[4096];
  if (checkpoint) snprintf(ck, sizeof ck, "%s", checkpoint);
  else fs_join(ck, sizeof ck, ws, "models/teacher.safetensors");
  served sv;
  memset(&sv, 0, sizeof sv);
  if (teacher_model_load(&sv.m, ck, 1) != TB_OK) {
    log_error("%s (train it with bin/pretrain --model teacher, or give --checkpoint)", err_get());
    return 1;
  }
  diff_schedule_default(&sv.s);
  sv.c = nn_ctx_new();
  service_signals_install();
  service_opts so = service_opts_default("teacher");
  so.workspace = ws;
  so.endpoint = endpoint;
  service *s = service_new(&so);
  if (!s || service_register(s, "teacher.step", step_handler, &sv) != TB_OK) {
    log_error("%s", err_get());
    service_free(s);
    nn_ctx_free(sv.c);
    teacher_model_free(&sv.m);
    return 1;
  }
  log_info("teacher: %s (%lld parameters, %d frames of %dx%dx%d latents, %d text tokens of %d) on "
           "%s, %d op threads, device %s", ck, (long long)sv.m.net.params.total, sv.m.T,
           sv.m.net.cfg.in_ch, sv.m.H, sv.m.W, sv.m.L, sv.m.net.cfg.text_dim, service_endpoint(s),
           ops_get_num_threads(), device_describe());
  int rc = service_run(s);
  service_free(s);
  nn_ctx_free(sv.c);
  teacher_model_free(&sv.m);
  return rc == TB_OK ? 0 : 1;
}

/* tests/test_teacher_service.c — bin/teacher on a tiny random teacher checkpoint:
 *  - a teacher.step answer equals the in-process solver (kernels/nn/teacher.h): eps_c, eps_u,
 *    x0 and x_prev, with the CFG form eps = eps_c + w (eps_c - eps_u) checked from the reply's
 *    own eps_c / eps_u, and x_prev the DDIM step to t_prev;
 *  - bad requests get an error reply naming the problem and the service lives on: a malformed
 *    request (a required field missing), wrong channels, latent size, frames, text width,
 *    t_prev not below t, motion_scale (not served);
 *  - concurrent clients (4 processes, several requests each) all get their own, correct answers.
 * Also a checkpoint round trip (teacher_model_save / _load). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/client.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/tensor.h"
#include "kernels/diffusion.h"
#include "kernels/nn.h"
#include "kernels/nn/teacher.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

enum { T = 4, C = 4, H = 8, W = 8, D = 8, L = 3 };
#define PER (T * C * H * W)
static char g_bin[4096];

static void make_teacher(teacher_model *m, const char *path) {
  memset(m, 0, sizeof *m);
  unet_config c = unet_config_default();
  c.model_ch = 8, c.n_levels = 2, c.ch_mult[0] = 1, c.ch_mult[1] = 2, c.n_res = 1;
  c.attn_levels = 0x2, c.head_ch = 8, c.text_dim = D, c.max_frames = T, c.groups = 4;
  TB_CHECK(unet_create(&m->net, &c) == TB_OK);
  unet_init_weights(&m->net, 3, 0); /* every path live */
  m->T = T, m->H = H, m->W = W, m->L = L;
  m->null_ctx = xmalloc(sizeof(float) * L * D);
  test_fill_uniform(m->null_ctx, L * D, 9, -0.5f, 0.5f);
  TB_CHECK(teacher_model_save(m, path, 0, NULL) == TB_OK);
}

static msg *request(int B, int t, int tp, float w, const float *z, const float *ctx, int c_, int h,
                    int frames, int d) {
  msg *m = msg_new("teacher.step", 1, 0);
  int64_t tv[8], tpv[8];
  double wv[8];
  for (int b = 0; b < B; b++) tv[b] = t, tpv[b] = tp, wv[b] = w;
  msg_set_ints(m, "t", tv, B);
  msg_set_ints(m, "t_prev", tpv, B);
  msg_set_floats(m, "w", wv, B);
  int64_t zs[5] = {B, frames, c_, h, h}, cs[3] = {B, L, d};
  tensor zt = tensor_new(DTYPE_F32, 5, zs), ct = tensor_new(DTYPE_F32, 3, cs);
  for (int64_t i = 0; i < tensor_numel(&zt); i++) ((float *)zt.data)[i] = z[i % (B * PER)];
  for (int64_t i = 0; i < tensor_numel(&ct); i++) ((float *)ct.data)[i] = ctx[i % (B * L * D)];
  TB_CHECK(msg_add_tensor_owned(m, "z", &zt) == TB_OK);
  TB_CHECK(msg_add_tensor_owned(m, "text_emb", &ct) == TB_OK);
  return m;
}

static void expect_bad(client *c, msg *m, const char *want) {
  msg *rep = NULL;
  int rc = client_call(c, m, &rep);
  CHECKF(rc == TB_ERR && strstr(err_get(), want), "expected an error with \"%s\", got rc %d: %s",
         want, rc, rc == TB_ERR ? err_get() : "a reply");
  if (rep) msg_free(rep);
  msg_free(m);
}

/* The reply's tensors against the in-process solver. Returns 1 when they agree. */
static int check_reply(const msg *rep, teacher_model *m, nn_ctx *nc, const diff_schedule *s, int B,
                       int t, int tp, float w, const float *z, const float *ctx, int quiet) {
  int *tt = xmalloc(sizeof(int) * B * 2), *tpp = tt + B;
  float *wv = xmalloc(sizeof(float) * B);
  for (int b = 0; b < B; b++) tt[b] = t, tpp[b] = tp, wv[b] = w;
  int64_t n = (int64_t)B * PER;
  float *o = xmalloc(sizeof(float) * n * 5);
  teacher_out out = {.eps_c = o, .eps_u = o + n, .x0 = o + 2 * n, .x_prev = o + 3 * n, .eps = o + 4 * n};
  teacher_batch tb = {.B = B, .T = T, .H = H, .W = W, .L = L, .z = z, .t = tt, .w = wv, .ctx = ctx,
                      .null_ctx = m->null_ctx};
  TB_CHECK(teacher_step_to(&m->net, nc, s, &tb, tpp, &out) == TB_OK);
  const char *names[4] = {"eps_c", "eps_u", "x0", "x_prev"};
  int ok = 1;
  for (int i = 0; i < 4; i++) {
    const tensor *r = msg_tensor_get(rep, names[i]);
    if (!r || tensor_numel(r) != n) {
      if (!quiet) CHECKF(0, "reply has no %s of %lld values", names[i], (long long)n);
      ok = 0;
      continue;
    }
    int64_t bad = 0;
    for (int64_t k = 0; k < n; k++) bad += fabsf(((const float *)r->data)[k] - o[i * n + k]) > 1e-5f;
    if (bad) {
      if (!quiet) CHECKF(0, "%s: %lld values differ from the in-process step", names[i], (long long)bad);
      ok = 0;
    }
  }
  /* the CFG form and the DDIM step from the reply's own numbers */
  const tensor *ec = msg_tensor_get(rep, "eps_c"), *eu = msg_tensor_get(rep, "eps_u");
  const tensor *x0 = msg_tensor_get(rep, "x0"), *xp = msg_tensor_get(rep, "x_prev");
  if (ok && !quiet) {
    double a = sqrt(s->abar[t]), sg = sqrt(1 - s->abar[t]);
    double ap = tp >= 0 ? sqrt(s->abar[tp]) : 1.0, sp = tp >= 0 ? sqrt(1 - s->abar[tp]) : 0.0;
    double e1 = 0, e2 = 0;
    for (int64_t k = 0; k < n; k++) {
      double e = ((const float *)ec->data)[k] + w * (((const float *)ec->data)[k] - ((const float *)eu->data)[k]);
      double x = (z[k] - sg * e) / a;
      e1 = fmax(e1, fabs(x - ((const float *)x0->data)[k]) / (1 + fabs(x)));
      e2 = fmax(e2, fabs(ap * x + sp * e - ((const float *)xp->data)[k]) / (1 + fabs(x)));
    }
    CHECKF(e1 < 1e-3 && e2 < 1e-3, "x0 / x_prev do not follow eps = eps_c + w (eps_c - eps_u): "
           "%.2e, %.2e", e1, e2);
  }
  free(tt), free(wv), free(o);
  return ok;
}

int main(int argc, char **argv) {
  test_begin("test_teacher_service");
  (void)argc;
  ops_set_num_threads(1);
  const char *bindir = getenv("BIN") ? getenv("BIN") : "bin";
  snprintf(g_bin, sizeof g_bin, "%s/teacher", bindir);
  if (access(g_bin, X_OK) != 0) {
    /* run from build/tests: the binaries sit in ../../bin */
    snprintf(g_bin, sizeof g_bin, "%.4000s/../../bin/teacher", argv[0]);
  }
  char ckpt[4096], ep[4096];
  snprintf(ckpt, sizeof ckpt, "%s/teacher.safetensors", test_outdir());
  snprintf(ep, sizeof ep, "ipc://%s/teacher.ipc", test_outdir());
  teacher_model m;
  make_teacher(&m, ckpt);
  {
    teacher_model m2;
    CHECK(teacher_model_load(&m2, ckpt, 1) == TB_OK);
    CHECK(m2.T == T && m2.H == H && m2.L == L && m2.net.params.total == m.net.params.total);
    CHECK(m2.net.params.total > 0 &&
          memcmp(m2.net.params.data, m.net.params.data, sizeof(float) * m.net.params.total) == 0);
    CHECK(memcmp(m2.null_ctx, m.null_ctx, sizeof(float) * L * D) == 0);
    teacher_model_free(&m2);
    char junk[4096];
    snprintf(junk, sizeof junk, "%s/junk.safetensors", test_outdir());
    FILE *f = fopen(junk, "w");
    fputs("not a checkpoint", f);
    fclose(f);
    CHECK(teacher_model_load(&m2, junk, 1) == TB_ERR);
  }
  unet_freeze(&m.net);
  diff_schedule s;
  diff_schedule_default(&s);
  nn_ctx *nc = nn_ctx_new();

  fflush(NULL);
  pid_t pid = fork();
  TB_CHECK(pid >= 0);
  if (pid == 0) {
    char log[4096];
    snprintf(log, sizeof log, "%s/service.log", test_outdir());
    FILE *f = freopen(log, "a", stderr);
    (void)f;
    execl(g_bin, g_bin, "--checkpoint", ckpt, "--endpoint", ep, "--threads", "1", (char *)NULL);
    _exit(127);
  }
  CHECKF(client_wait_ready(ep, 20.0, NULL) == TB_OK, "bin/teacher did not come up: %s", err_get());

  float z[2 * PER], ctx[2 * L * D];
  test_fill_uniform(z, 2 * PER, 1, -1.5f, 1.5f);
  test_fill_uniform(ctx, 2 * L * D, 2, -1.0f, 1.0f);
  client *c = client_new(ep, NULL);
  /* a good request: a solver step at index 120 (t = 604 → 599), and one to x0 */
  msg *rep = NULL;
  msg *rq = request(2, 604, 599, 7.5f, z, ctx, C, H, T, D);
  CHECKF(client_call(c, rq, &rep) == TB_OK, "teacher.step: %s", err_get());
  if (rep) check_reply(rep, &m, nc, &s, 2, 604, 599, 7.5f, z, ctx, 0), msg_free(rep);
  msg_free(rq);
  rq = request(1, 999, -1, 0.0f, z, ctx, C, H, T, D);
  rep = NULL;
  CHECKF(client_call(c, rq, &rep) == TB_OK, "teacher.step to x0: %s", err_get());
  if (rep) check_reply(rep, &m, nc, &s, 1, 999, -1, 0.0f, z, ctx, 0), msg_free(rep);
  msg_free(rq);

  /* malformed and ill-fitting requests */
  msg *bad = msg_new("teacher.step", 1, 0);
  int64_t one = 5;
  msg_set_ints(bad, "t", &one, 1);
  expect_bad(c, bad, "required field");
  expect_bad(c, request(1, 604, 599, 7.5f, z, ctx, 3, H, T, D), "channels");
  expect_bad(c, request(1, 604, 599, 7.5f, z, ctx, C, 16, T, D), "trained on 8x8");
  expect_bad(c, request(1, 604, 599, 7.5f, z, ctx, C, H, T + 2, D), "frames");
  expect_bad(c, request(1, 604, 599, 7.5f, z, ctx, C, H, T, D + 1), "wide");
  expect_bad(c, request(1, 604, 604, 7.5f, z, ctx, C, H, T, D), "not below");
  msg *ms = request(1, 604, 599, 7.5f, z, ctx, C, H, T, D);
  msg_set_float(ms, "motion_scale", 500.0);
  expect_bad(c, ms, "motion");
  /* still alive and still right */
  rq = request(1, 304, 299, 5.0f, z, ctx, C, H, T, D);
  rep = NULL;
  CHECKF(client_call(c, rq, &rep) == TB_OK, "after the bad requests: %s", err_get());
  if (rep) check_reply(rep, &m, nc, &s, 1, 304, 299, 5.0f, z, ctx, 0), msg_free(rep);
  msg_free(rq);
  client_free(c);

  /* concurrent clients: 4 processes, 3 requests each at different timesteps */
  pid_t kids[4];
  for (int k = 0; k < 4; k++) {
    fflush(NULL);
    kids[k] = fork();
    if (kids[k] == 0) {
      client *cc = client_new(ep, NULL);
      int ok = 1;
      for (int r = 0; r < 3; r++) {
        int t = 99 + 100 * (k * 3 + r) % 900, tp = t - 5;
        msg *q = request(1, t, tp, (float)(k + 1), z + k % 2 * PER, ctx, C, H, T, D), *a = NULL;
        if (client_call(cc, q, &a) != TB_OK) ok = 0;
        else ok &= check_reply(a, &m, nc, &s, 1, t, tp, (float)(k + 1), z + k % 2 * PER, ctx, 1);
        if (a) msg_free(a);
        msg_free(q);
      }
      client_free(cc);
      _exit(ok ? 0 : 1);
    }
  }
  for (int k = 0; k < 4; k++) {
    int st;
    waitpid(kids[k], &st, 0);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "concurrent client %d got a wrong or no answer", k);
  }
  kill(pid, SIGTERM);
  int st;
  waitpid(pid, &st, 0);
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "bin/teacher did not exit cleanly on SIGTERM");
  nn_ctx_free(nc);
  teacher_model_free(&m);
  return test_finish();
}

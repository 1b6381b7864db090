/* tests/test_reward_service.c — bin/reward as a service, on tiny random models:
 *  1. scores and gradients over ZeroMQ equal the in-process reward_score (same threads, same
 *     bits), and the gradient returned matches central finite differences of the score through
 *     the service, on pixels of both samples (clip on 2 frames, video on 4);
 *  2. malformed requests (frame size, frame count, a value outside [0, 1], NaN, a caption that
 *     is not UTF-8 or too long, bad token ids, no caption, the wrong model) each get an error
 *     reply naming the problem, and the service keeps serving (bf16 frames and token ids are
 *     fine);
 *  3. the --threads count reaches the worker thread (each reply says what its ops ran with);
 *  4. the service killed with SIGKILL in the middle of a request: the client gets a clear
 *     error when nothing comes back, or the answer from a service restarted meanwhile. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/client.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/scene.h"
#include "common/tensor.h"
#include "kernels/nn.h"
#include "kernels/nn/reward.h"
#include "kernels/nn/text.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

#define SIZE 16

static char g_bin[4096];

static reward_config tiny(reward_kind k) {
  reward_config c = reward_config_default(k);
  c.size = SIZE;
  c.levels = 2;
  memset(c.widths, 0, sizeof c.widths);
  c.widths[0] = 4, c.widths[1] = 6;
  c.text.dim = 8, c.text.heads = 2, c.text.layers = 1, c.text.max_len = 16;
  c.embed = k == REWARD_QUALITY ? 0 : 8;
  if (k == REWARD_QUALITY) c.hidden = 5;
  return c;
}

static void make_model(reward_kind k, const char *path, reward_model *m) {
  int n;
  const char *const *w = scene_caption_vocabulary(&n);
  text_vocab v;
  TB_CHECK(text_vocab_init(&v, w, n) == TB_OK);
  reward_config cfg = tiny(k);
  TB_CHECK(reward_model_create(m, &cfg, &v) == TB_OK);
  reward_model_init(m, 5 + k);
  for (int64_t i = 0; i < m->params.total; i++) m->params.data[i] += 0.02f * sinf(0.3f * (float)i);
  TB_CHECK(reward_model_save(m, path, 0, NULL) == TB_OK);
  text_vocab_free(&v);
}

/* Starts bin/reward with --threads `threads`; env "K=V" pairs (or NULL) are set in the child. */
static pid_t start_service_threads(const char *model, const char *ckpt, const char *ep,
                                   const char *env, const char *threads) {
  fflush(NULL);
  pid_t pid = fork();
  TB_CHECK(pid >= 0);
  if (pid == 0) {
    if (env) {
      char e[256];
      snprintf(e, sizeof e, "%s", env);
      char *eq = strchr(e, '=');
      *eq = 0;
      setenv(e, eq + 1, 1);
    }
    char log[4096];
    snprintf(log, sizeof log, "%s/service-%s.log", test_outdir(), model);
    FILE *f = freopen(log, "a", stderr);
    (void)f;
    execl(g_bin, g_bin, "--model", model, "--checkpoint", ckpt, "--endpoint", ep, "--threads",
          threads, (char *)NULL);
    _exit(127);
  }
  CHECKF(client_wait_ready(ep, 20.0, NULL) == TB_OK, "bin/reward did not come up: %s", err_get());
  return pid;
}
static pid_t start_service(const char *model, const char *ckpt, const char *ep, const char *env) {
  return start_service_threads(model, ckpt, ep, env, "1");
}

static void stop_service(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  int st;
  waitpid(pid, &st, 0);
}

typedef struct {
  int B, T;
  float *frames; /* (B, T, 3, S, S) */
  const char *texts[4];
  int want_grad;
  int dtype;     /* DTYPE_F32 or DTYPE_BF16 */
} request;

static msg *build(const request *r, const char *model) {
  msg *m = msg_new("reward.score", 1, 0);
  if (r->want_grad) msg_set_bool(m, "want_grad", 1);
  if (model) msg_set_str(m, "model", model);
  int64_t fs[5] = {r->B, r->T, 3, SIZE, SIZE};
  tensor t = tensor_new((dtype_t)r->dtype, 5, fs);
  int64_t n = tensor_numel(&t);
  if (r->dtype == DTYPE_BF16) convert_f32_to_bf16(r->frames, t.data, n);
  else memcpy(t.data, r->frames, sizeof(float) * (size_t)n);
  TB_CHECK(msg_add_tensor_owned(m, "frames", &t) == TB_OK);
  if (r->texts[0]) {
    int64_t S = 1;
    for (int b = 0; b < r->B; b++) S = (int64_t)strlen(r->texts[b]) + 1 > S ? (int64_t)strlen(r->texts[b]) + 1 : S;
    int64_t ts[2] = {r->B, S};
    tensor tx = tensor_new(DTYPE_U8, 2, ts);
    memset(tx.data, 0, (size_t)(r->B * S));
    for (int b = 0; b < r->B; b++) memcpy((char *)tx.data + b * S, r->texts[b], strlen(r->texts[b]));
    TB_CHECK(msg_add_tensor_owned(m, "text", &tx) == TB_OK);
  }
  return m;
}

static int64_t g_reply_threads; /* the last reply's op threads (0: none reported) */

/* One call; returns the scores (and grad) or TB_ERR with err_get(). */
static int call(client *c, const request *r, float *score, float *grad) {
  msg *req = build(r, NULL), *rep = NULL;
  int rc = client_call(c, req, &rep);
  if (rc == TB_OK) {
    g_reply_threads = msg_int_or(rep, "threads", 0);
    const tensor *s = msg_tensor_get(rep, "reward"), *g = msg_tensor_get(rep, "grad");
    TB_CHECK(s && s->shape[0] == r->B);
    memcpy(score, s->data, sizeof(float) * (size_t)r->B);
    if (grad) {
      TB_CHECK(g != NULL);
      memcpy(grad, g->data, (size_t)tensor_nbytes(g));
    }
  }
  msg_free(rep);
  msg_free(req);
  return rc;
}

static void check_scores(const char *model, reward_model *m, const char *ep, int T) {
  client *c = client_new(ep, NULL);
  request r = {.B = 2, .T = T, .want_grad = 1, .dtype = DTYPE_F32};
  int64_t n = (int64_t)r.B * T * 3 * SIZE * SIZE, per = n / r.B;
  r.frames = xmalloc(sizeof(float) * n);
  test_fill_uniform(r.frames, n, 3, 0.1f, 0.9f);
  r.texts[0] = "a red circle moving left";
  r.texts[1] = "a small blue square staying still";
  float s[2], sp[2], sm[2], s_in[2], *g = xmalloc(sizeof(float) * n), *g_in = xmalloc(sizeof(float) * n);
  CHECKF(call(c, &r, s, g) == TB_OK, "%s: %s", model, err_get());
  nn_ctx *ctx = nn_ctx_new();
  TB_CHECK(reward_score(m, ctx, r.frames, 2, T, r.texts, s_in, g_in) == TB_OK);
  CHECKF(memcmp(s, s_in, sizeof s) == 0 && memcmp(g, g_in, sizeof(float) * n) == 0,
         "%s: the service's scores/gradient differ from reward_score in process", model);
  nn_ctx_free(ctx);
  /* central finite differences of the score through the service */
  r.want_grad = 0;
  double gmax = 0, maxerr = 0;
  for (int64_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
  int bad = 0, npix = 0;
  for (int b = 0; b < 2; b++)
    for (int k = 0; k < 5; k++) {
      int64_t j = b * per + (per * (2 * k + 1)) / 10;
      float keep = r.frames[j], e = 4e-3f;
      r.frames[j] = keep + e;
      TB_CHECK(call(c, &r, sp, NULL) == TB_OK);
      r.frames[j] = keep - e;
      TB_CHECK(call(c, &r, sm, NULL) == TB_OK);
      r.frames[j] = keep;
      double fd = (sp[b] - sm[b]) / (2.0 * e), err = fabs(fd - g[j]) / (0.05 * gmax + fabs(fd));
      maxerr = fmax(maxerr, err);
      npix++;
      if (err > 3e-2 && bad++ < 4) fprintf(stderr, "%s pixel %lld: grad %.6g, fd %.6g\n", model, (long long)j, g[j], fd);
    }
  printf("%-5s over ZeroMQ: scores %.5f %.5f; gradient vs finite differences on %d pixels: max rel err %.2e\n",
         model, s[0], s[1], npix, maxerr);
  CHECKF(bad == 0, "%s: %d gradient mismatches through the service", model, bad);
  free(r.frames);
  free(g);
  free(g_in);
  client_free(c);
}

/* A request that must be refused with `want` in the message; then a good one must work. */
static void expect_bad(client *c, msg *req, const char *want, const request *good) {
  msg *rep = NULL;
  int rc = client_call(c, req, &rep);
  CHECKF(rc == TB_ERR && client_error_code(c) == MSG_ERR_BAD_REQUEST && strstr(err_get(), want),
         "expected a bad_request naming \"%s\", got rc %d: %s", want, rc, rc ? err_get() : "ok");
  if (rc == TB_ERR) printf("  refused: %s\n", err_get());
  msg_free(rep);
  msg_free(req);
  float s[4];
  CHECKF(call(c, good, s, NULL) == TB_OK, "the service stopped serving after a bad request: %s", err_get());
}

static void check_malformed(const char *ep_clip, const char *ep_video) {
  client *c = client_new(ep_clip, NULL);
  request good = {.B = 2, .T = 2, .dtype = DTYPE_F32};
  int64_t n = 2 * 2 * 3 * SIZE * SIZE;
  good.frames = xmalloc(sizeof(float) * n);
  test_fill_uniform(good.frames, n, 4, 0, 1);
  good.texts[0] = "a red circle";
  good.texts[1] = "a blue ring";
  request r = good;
  r.dtype = DTYPE_BF16; /* bf16 frames are fine */
  float s[2];
  CHECKF(call(c, &r, s, NULL) == TB_OK, "bf16 frames: %s", err_get());
  /* frame size */
  msg *m = msg_new("reward.score", 1, 0);
  int64_t fs[5] = {2, 2, 3, SIZE * 2, SIZE * 2}, ts[2] = {2, 8};
  tensor t = tensor_new(DTYPE_F32, 5, fs);
  memset(t.data, 0, (size_t)tensor_nbytes(&t));
  msg_add_tensor_owned(m, "frames", &t);
  tensor tx = tensor_new(DTYPE_U8, 2, ts);
  memset(tx.data, 'a', 16);
  ((char *)tx.data)[7] = ((char *)tx.data)[15] = 0;
  msg_add_tensor_owned(m, "text", &tx);
  expect_bad(c, m, "frames are 32x32; the clip model reads 16x16", &good);
  /* a value outside [0, 1] */
  r = good;
  r.frames = xmalloc(sizeof(float) * n);
  memcpy(r.frames, good.frames, sizeof(float) * n);
  r.frames[n - 5] = 1.5f;
  expect_bad(c, build(&r, NULL), "value 1.5 in sample 1 frame 1 is outside [0, 1]", &good);
  r.frames[n - 5] = NAN;
  expect_bad(c, build(&r, NULL), "NaN", &good);
  free(r.frames);
  /* captions */
  r = good;
  r.texts[1] = "a caption \xff\xfe that is not UTF-8";
  expect_bad(c, build(&r, NULL), "text row 1: not UTF-8", &good);
  r.texts[1] = "red red red red red red red red red red red red red red red";
  expect_bad(c, build(&r, NULL), "text row 1 has 17 tokens; the clip model reads at most 16", &good);
  r.texts[0] = NULL;
  expect_bad(c, build(&r, NULL), "exactly one of text, tokens", &good);
  /* token ids: good ones work, bad ones are refused */
  m = build(&good, NULL);
  msg *m2 = msg_new("reward.score", 1, 0);
  msg_add_tensor_shared(m2, "frames", m, 0);
  int64_t ks[2] = {2, 5};
  tensor tk = tensor_new(DTYPE_I32, 2, ks);
  int32_t ids[10] = {TEXT_TOKEN_BOS, 10, 11, TEXT_TOKEN_EOS, 0, TEXT_TOKEN_BOS, 12, TEXT_TOKEN_EOS, 0, 0};
  memcpy(tk.data, ids, sizeof ids);
  msg_add_tensor_owned(m2, "tokens", &tk);
  msg *rep = NULL;
  CHECKF(client_call(c, m2, &rep) == TB_OK, "token ids: %s", err_get());
  msg_free(rep);
  msg_free(m2);
  m2 = msg_new("reward.score", 1, 0);
  msg_add_tensor_shared(m2, "frames", m, 0);
  ids[2] = 5000;
  tk = tensor_new(DTYPE_I32, 2, ks);
  memcpy(tk.data, ids, sizeof ids);
  msg_add_tensor_owned(m2, "tokens", &tk);
  expect_bad(c, m2, "row 0 position 2 holds 5000, outside the vocabulary", &good);
  msg_free(m);
  /* the wrong model */
  expect_bad(c, build(&good, "video"), "serves the clip model, not video", &good);
  client_free(c);
  /* the video model reads exactly 4 frames */
  c = client_new(ep_video, NULL);
  request vg = good;
  int64_t nv = 2 * 4 * 3 * SIZE * SIZE;
  vg.T = 4;
  vg.frames = xmalloc(sizeof(float) * nv);
  test_fill_uniform(vg.frames, nv, 5, 0, 1);
  expect_bad(c, build(&good, NULL), "2 frames per sample; the video model reads exactly 4", &vg);
  free(vg.frames);
  client_free(c);
  free(good.frames);
}

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* SIGKILL while a request is being worked on (the service holds it TURBO_SERVICE_DELAY_MS). */
static void check_kill(const char *ckpt, const char *ep) {
  request r = {.B = 1, .T = 2, .dtype = DTYPE_F32, .want_grad = 1};
  int64_t n = 2 * 3 * SIZE * SIZE;
  r.frames = xmalloc(sizeof(float) * n);
  test_fill_uniform(r.frames, n, 8, 0, 1);
  r.texts[0] = "a yellow triangle moving up";
  float s[1], *g = xmalloc(sizeof(float) * n);
  client_opts o = client_opts_default();
  o.timeout_s = 1.0;
  o.tries = 2;
  for (int restart = 0; restart < 2; restart++) {
    pid_t svc = start_service("clip", ckpt, ep, "TURBO_SERVICE_DELAY_MS=1500");
    pid_t helper = fork();
    TB_CHECK(helper >= 0);
    if (helper == 0) { /* kill -9 once the request is in, then (maybe) a fresh service */
      sleep_s(0.5);
      kill(svc, SIGKILL);
      if (restart) {
        execl(g_bin, g_bin, "--model", "clip", "--checkpoint", ckpt, "--endpoint", ep, "--threads",
              "1", (char *)NULL);
        _exit(127);
      }
      _exit(0);
    }
    client *c = client_new(ep, &o);
    double t0 = time_now();
    int rc = call(c, &r, s, g);
    double dt = time_now() - t0;
    if (!restart) {
      CHECKF(rc == TB_ERR && client_error_code(c) == MSG_ERR_TIMEOUT && strstr(err_get(), "did not answer"),
             "killed service: expected a clear no-answer error, got rc %d (%s)", rc, rc ? err_get() : "an answer");
      printf("killed mid-request, no restart: error after %.1f s: %s\n", dt, err_get());
    } else {
      CHECKF(rc == TB_OK, "killed service restarted: expected the answer on a later try, got %s", err_get());
      printf("killed mid-request, restarted: answer %.5f after %.1f s (%lld tries timed out)\n", s[0],
             dt, (long long)client_timeouts(c));
    }
    client_free(c);
    int st;
    waitpid(svc, &st, 0);
    CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the service was not killed by SIGKILL");
    if (restart) stop_service(helper); /* the restarted service */
    else waitpid(helper, &st, 0);
  }
  free(r.frames);
  free(g);
}

/* The --threads count reaches the worker thread that runs the model: each service reports the
 * OpenMP count its ops ran with, and a fresh thread's default (all cores) differs from 1 or 2
 * on any machine. */
static void check_threads(const char *ckpt, const char *ep) {
  request r = {.B = 1, .T = 2, .dtype = DTYPE_F32};
  int64_t n = 2 * 3 * SIZE * SIZE;
  r.frames = xmalloc(sizeof(float) * n);
  test_fill_uniform(r.frames, n, 9, 0, 1);
  r.texts[0] = "a red circle";
  for (int want = 1; want <= 2; want++) {
    char th[8];
    snprintf(th, sizeof th, "%d", want);
    pid_t pid = start_service_threads("clip", ckpt, ep, NULL, th);
    client *c = client_new(ep, NULL);
    float s[1];
    g_reply_threads = 0;
    CHECKF(call(c, &r, s, NULL) == TB_OK, "--threads %d: %s", want, err_get());
    CHECKF(g_reply_threads == want, "bin/reward --threads %d: the worker ran its ops with %lld threads",
           want, (long long)g_reply_threads);
    printf("--threads %d: the worker's ops ran with %lld threads\n", want, (long long)g_reply_threads);
    client_free(c);
    stop_service(pid);
  }
  free(r.frames);
}

int main(void) {
  test_begin("test_reward_service");
  const char *bin = getenv("BIN");
  snprintf(g_bin, sizeof g_bin, "%s/reward", bin && bin[0] ? bin : "bin");
  if (access(g_bin, X_OK) != 0) {
    CHECKF(0, "%s not built", g_bin);
    return test_finish();
  }
  ops_set_num_threads(1); /* the services run with --threads 1: the same bits */
  char clip[4096], video[4096], ep_clip[4200], ep_video[4200];
  fs_join(clip, sizeof clip, test_outdir(), "clip.safetensors");
  fs_join(video, sizeof video, test_outdir(), "video.safetensors");
  snprintf(ep_clip, sizeof ep_clip, "ipc://%s/clip.ipc", test_outdir());
  snprintf(ep_video, sizeof ep_video, "ipc://%s/video.ipc", test_outdir());
  reward_model mc, mv;
  make_model(REWARD_CLIP, clip, &mc);
  make_model(REWARD_VIDEO, video, &mv);
  pid_t pc = start_service("clip", clip, ep_clip, NULL);
  pid_t pv = start_service("video", video, ep_video, NULL);
  check_scores("clip", &mc, ep_clip, 2);
  check_scores("video", &mv, ep_video, 4);
  check_malformed(ep_clip, ep_video);
  stop_service(pc);
  stop_service(pv);
  check_threads(clip, ep_clip);
  check_kill(clip, ep_clip);
  reward_model_free(&mc);
  reward_model_free(&mv);
  return test_finish();
}

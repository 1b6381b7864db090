/* bench/bench_reward.c — reward requests with gradient through bin/reward, as the student makes
 * them: one 64x64 sample of 2 and of 4 frames (the image models, clip and quality) and of 4
 * frames (the video model), want_grad on, over ipc://.
 *
 *   build/bench/bench_reward [--quick]     (make bench runs it through bench/run.sh)
 *
 * Models: the default configurations with seeded random weights (the cost does not depend on
 * the values), or the trained checkpoints of a workspace when TURBO_BENCH_WORKSPACE=DIR names
 * one (DIR/models/reward-NAME.safetensors). Threads: TURBO_BENCH_THREADS (default 2), the same
 * for the service and the in-process reference.
 *
 * Columns: requests/s (median round trip), the model's own time per request as the service
 * reports it (compute_s: forward + backward), the same reward_score in this process, and the
 * messaging share = (round trip - compute) / round trip: everything that is not the model
 * (encode, ipc, validation, the worker hand-off, decode). Target: under 5%.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void bench_model(reward_kind k, int F, int iters, const char *dir, const char *bin,
                        const char *threads, const char *ws) {
  const char *name = reward_kind_name(k);
  char ckpt[4096], ep[4200];
  reward_model m;
  int trained = 0;
  if (ws) {
    char rel[128];
    snprintf(rel, sizeof rel, "models/reward-%s.safetensors", name);
    fs_join(ckpt, sizeof ckpt, ws, rel);
    trained = access(ckpt, R_OK) == 0 && reward_model_load(&m, ckpt, 1) == TB_OK;
  }
  if (!trained) {
    int n;
    const char *const *w = scene_caption_vocabulary(&n);
    text_vocab v;
    TB_CHECK(text_vocab_init(&v, w, n) == TB_OK);
    reward_config cfg = reward_config_default(k);
    TB_CHECK(reward_model_create(&m, &cfg, &v) == TB_OK);
    reward_model_init(&m, 1);
    text_vocab_free(&v);
    snprintf(ckpt, sizeof ckpt, "%s/%s.safetensors", dir, name);
    TB_CHECK(reward_model_save(&m, ckpt, 0, NULL) == TB_OK);
  }
  snprintf(ep, sizeof ep, "ipc://%s/%s.ipc", dir, name);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    FILE *f = freopen("/dev/null", "w", stderr);
    (void)f;
    execl(bin, bin, "--model", name, "--checkpoint", ckpt, "--endpoint", ep, "--threads", threads,
          (char *)NULL);
    _exit(127);
  }
  if (client_wait_ready(ep, 30.0, NULL) != TB_OK) {
    fprintf(stderr, "bench_reward: %s\n", err_get());
    kill(pid, SIGTERM);
    return;
  }
  int S = m.cfg.size;
  int64_t fs[5] = {1, F, 3, S, S}, n = (int64_t)F * 3 * S * S;
  float *x = xmalloc(sizeof(float) * (size_t)n), score, *g = xmalloc(sizeof(float) * (size_t)n);
  test_fill_uniform(x, n, 7, 0, 1);
  const char *cap = "a small red circle to the left of a blue square, the red circle moving up";
  msg *req = msg_new("reward.score", 1, 0);
  msg_set_bool(req, "want_grad", 1);
  tensor t = tensor_new(DTYPE_F32, 5, fs);
  memcpy(t.data, x, sizeof(float) * (size_t)n);
  msg_add_tensor_owned(req, "frames", &t);
  int64_t ts[2] = {1, (int64_t)strlen(cap) + 1};
  tensor tx = tensor_new(DTYPE_U8, 2, ts);
  memcpy(tx.data, cap, strlen(cap) + 1);
  msg_add_tensor_owned(req, "text", &tx);
  client *c = client_new(ep, NULL);
  double *rt = xmalloc(sizeof(double) * (size_t)iters), *cs = xmalloc(sizeof(double) * (size_t)iters);
  for (int i = -3; i < iters; i++) { /* 3 warm-up requests */
    msg *rep = NULL;
    double t0 = time_now();
    if (client_call(c, req, &rep) != TB_OK) {
      fprintf(stderr, "bench_reward: %s\n", err_get());
      break;
    }
    double dt = time_now() - t0;
    if (i >= 0) rt[i] = dt, cs[i] = msg_float_or(rep, "compute_s", 0);
    msg_free(rep);
  }
  /* the same in this process */
  nn_ctx *ctx = nn_ctx_new();
  double *ip = xmalloc(sizeof(double) * (size_t)iters);
  for (int i = -3; i < iters; i++) {
    double t0 = time_now();
    reward_score(&m, ctx, x, 1, F, &cap, &score, g);
    if (i >= 0) ip[i] = time_now() - t0;
  }
  double mr = median(rt, iters), mc = median(cs, iters), mi = median(ip, iters);
  printf("%-8s %6d %8s %10.1f %12.2f %12.2f %12.2f %9.1f%%\n", name, F, trained ? "trained" : "random",
         1.0 / mr, mr * 1e3, mc * 1e3, mi * 1e3, 100.0 * (mr - mc) / mr);
  fflush(stdout);
  nn_ctx_free(ctx);
  client_free(c);
  msg_free(req);
  kill(pid, SIGTERM);
  int st;
  waitpid(pid, &st, 0);
  free(x), free(g), free(rt), free(cs), free(ip);
  reward_model_free(&m);
}

int main(int argc, char **argv) {
  log_init("bench_reward");
  int quick = argc > 1 && strcmp(argv[1], "--quick") == 0, iters = quick ? 10 : 60;
  const char *bin_dir = getenv("BIN");
  char bin[4096], dir[] = "/tmp/bench_reward_XXXXXX";
  snprintf(bin, sizeof bin, "%s/reward", bin_dir && *bin_dir ? bin_dir : "bin");
  if (access(bin, X_OK) != 0) {
    fprintf(stderr, "bench_reward: %s not built\n", bin);
    return 1;
  }
  if (!mkdtemp(dir)) return 1;
  const char *th = getenv("TURBO_BENCH_THREADS");
  const char *threads = th && *th ? th : "2";
  ops_set_num_threads(atoi(threads));
  const char *ws = getenv("TURBO_BENCH_WORKSPACE");
  printf("reward requests with gradient, one 64x64 sample, ipc://, %s op threads, median of %d\n",
         threads, iters);
  printf("%-8s %6s %8s %10s %12s %12s %12s %10s\n", "model", "frames", "weights", "req/s",
         "round ms", "compute ms", "in-proc ms", "messaging");
  bench_model(REWARD_CLIP, 2, iters, dir, bin, threads, ws);
  bench_model(REWARD_CLIP, 4, iters, dir, bin, threads, ws);
  bench_model(REWARD_QUALITY, 2, iters, dir, bin, threads, ws);
  bench_model(REWARD_QUALITY, 4, iters, dir, bin, threads, ws);
  bench_model(REWARD_VIDEO, 4, iters, dir, bin, threads, ws);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) return 1;
  return 0;
}

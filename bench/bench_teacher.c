/* The teacher as an ODE solver at the default size (unet_config_default: 16 frames of 16×16×4
 * latents, 128-wide text, 16 text tokens), random weights (the cost does not depend on them):
 *   - one teacher_step (kernels/nn/teacher.h) of B = 1 and B = 4: the cond + null forward of 2B
 *     samples without gradients, CFG, x0, the DDIM step — steps/s and samples/s;
 *   - the wall-clock of one 50-step DDIM sample with CFG (w = 7.5): the figure a 4-step student
 *     must beat by >= 20×.
 *   build/bench/bench_teacher [threads]   (default 2) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/diffusion.h"
#include "kernels/nn.h"
#include "kernels/nn/teacher.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  ops_set_num_threads(threads);
  unet u;
  unet_config cfg = unet_config_default();
  if (unet_create(&u, &cfg) != TB_OK) return 1;
  unet_init_weights(&u, 1, 0);
  unet_freeze(&u);
  diff_schedule s;
  diff_schedule_default(&s);
  nn_ctx *c = nn_ctx_new();
  enum { T = 16, C = 4, H = 16, W = 16, L = 16, D = 128, BMAX = 4 };
  int64_t per = T * C * H * W;
  float *z = xmalloc(sizeof(float) * BMAX * per), *ctx = xmalloc(sizeof(float) * BMAX * L * D);
  float *nul = xmalloc(sizeof(float) * L * D), *o = xmalloc(sizeof(float) * BMAX * per * 4);
  test_fill_uniform(z, BMAX * per, 1, -1, 1);
  test_fill_uniform(ctx, BMAX * L * D, 2, -1, 1);
  memset(nul, 0, sizeof(float) * L * D);
  printf("teacher: %lld parameters, %d frames of %dx%dx%d, %d text tokens, %d op threads\n",
         (long long)u.params.total, T, C, H, W, L, ops_get_num_threads());
  printf("%-28s %10s %10s %12s\n", "", "ms", "steps/s", "samples/s");
  for (int B = 1; B <= BMAX; B *= 4) {
    int idx[BMAX];
    float w[BMAX];
    for (int b = 0; b < B; b++) idx[b] = 120, w[b] = 7.5f;
    teacher_batch tb = {.B = B, .T = T, .H = H, .W = W, .L = L, .z = z, .w = w, .ctx = ctx, .null_ctx = nul};
    teacher_out out = {.eps_c = o, .eps_u = o + B * per, .x0 = o + 2 * B * per, .x_prev = o + 3 * B * per};
    teacher_step(&u, c, &s, &tb, idx, &out); /* warm-up: the arena reaches its size */
    int reps = 3;
    double best = 1e9;
    for (int r = 0; r < reps; r++) {
      double t0 = time_now();
      if (teacher_step(&u, c, &s, &tb, idx, &out) != TB_OK) return 1;
      double dt = time_now() - t0;
      if (dt < best) best = dt;
    }
    char name[64];
    snprintf(name, sizeof name, "teacher_step B=%d (CFG)", B);
    printf("%-28s %10.1f %10.2f %12.2f\n", name, best * 1e3, 1.0 / best, B / best);
  }
  uint64_t seed = 7;
  teacher_noise(&seed, 1, per, z);
  teacher_sample_opts so = {.steps = 50, .w = 7.5f};
  double t0 = time_now();
  if (teacher_sample(&u, c, &s, 1, T, H, W, L, ctx, nul, &so, z) != TB_OK) return 1;
  printf("one 50-step DDIM sample with CFG w = 7.5: %.2f s\n", time_now() - t0);
  free(z), free(ctx), free(nul), free(o);
  nn_ctx_free(c);
  unet_free(&u);
  return 0;
}

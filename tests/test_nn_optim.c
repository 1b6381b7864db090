/* Optimisation against hand-computed values: AdamW (decoupled decay, bias correction) over
 * three steps, global-norm clipping, EMA, warm-up + constant / cosine learning rates; and the
 * parameter registry (one allocation, 64-byte aligned offsets, seeded and repeatable init,
 * duplicate-free names, zero-init outputs). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "kernels/nn.h"
#include "tests/testutil.h"

int main(void) {
  test_begin("test_nn_optim");

  /* AdamW, one parameter, by hand: p0 = 1, g = 0.5, 0.5, -1; lr 0.1, wd 0.01, β (0.9, 0.999), eps 1e-8 */
  {
    nn_adamw o;
    nn_adamw_init(&o, 1, 0.9f, 0.999f, 1e-8f, 0.01f);
    float p = 1.0f, gs[3] = {0.5f, 0.5f, -1.0f};
    double P = 1.0, m = 0, v = 0;
    for (int s = 1; s <= 3; s++) {
      float g = gs[s - 1];
      nn_adamw_step(&o, &p, &g, 0.1f);
      m = 0.9 * m + 0.1 * g;
      v = 0.999 * v + 0.001 * (double)g * g;
      double mh = m / (1 - pow(0.9, s)), vh = v / (1 - pow(0.999, s));
      P = P - 0.1 * 0.01 * P;
      P = P - 0.1 * mh / (sqrt(vh) + 1e-8);
      CHECKF(fabs(p - P) < 1e-6, "adamw step %d: %.8f vs %.8f", s, p, P);
    }
    /* step 1 by hand: p = 1 - 0.001 - 0.1·(0.05/0.1)/(sqrt(0.00025/0.001)) = 0.999 - 0.1 = 0.899 */
    nn_adamw o2;
    nn_adamw_init(&o2, 1, 0.9f, 0.999f, 1e-8f, 0.01f);
    float q = 1.0f, g = 0.5f;
    nn_adamw_step(&o2, &q, &g, 0.1f);
    CHECKF(fabs(q - 0.899f) < 1e-6, "adamw first step %.8f (0.899 expected)", q);
    nn_adamw_free(&o);
    nn_adamw_free(&o2);
  }
  /* clipping: (3, 4) has norm 5; clip to 1 → (0.6, 0.8); clip to 10 leaves it */
  {
    float g[2] = {3, 4};
    CHECK(fabsf(nn_grad_clip(g, 2, 10.0f) - 5.0f) < 1e-6f && g[0] == 3 && g[1] == 4);
    CHECK(fabsf(nn_grad_clip(g, 2, 1.0f) - 5.0f) < 1e-6f);
    CHECK(fabsf(g[0] - 0.6f) < 1e-6f && fabsf(g[1] - 0.8f) < 1e-6f);
  }
  /* EMA: 0.9·2 + 0.1·12 = 3 */
  {
    float e = 2, p = 12;
    nn_ema_update(&e, &p, 1, 0.9f);
    CHECK(fabsf(e - 3.0f) < 1e-6f);
  }
  /* LR: warm-up 10 → step 4 gives base·5/10; cosine over 110 steps: middle is (base+min)/2 */
  {
    CHECK(fabsf(nn_lr_at(NN_LR_CONSTANT, 4, 1e-3f, 10, 100, 0) - 5e-4f) < 1e-9f);
    CHECK(nn_lr_at(NN_LR_CONSTANT, 50, 1e-3f, 10, 100, 0) == 1e-3f);
    CHECK(fabsf(nn_lr_at(NN_LR_COSINE, 10, 1e-3f, 10, 110, 1e-4f) - 1e-3f) < 1e-9f);
    CHECK(fabsf(nn_lr_at(NN_LR_COSINE, 60, 1e-3f, 10, 110, 1e-4f) - 5.5e-4f) < 1e-8f);
    CHECK(fabsf(nn_lr_at(NN_LR_COSINE, 110, 1e-3f, 10, 110, 1e-4f) - 1e-4f) < 1e-9f);
    CHECK(fabsf(nn_lr_at(NN_LR_COSINE, 500, 1e-3f, 10, 110, 1e-4f) - 1e-4f) < 1e-9f);
  }
  /* registry */
  {
    nn_params p;
    nn_params_init_empty(&p);
    int64_t s1[2] = {3, 5}, s2[1] = {3}, s3[4] = {2, 3, 3, 3};
    int a = nn_params_add(&p, "blk.0.lin.weight", 2, s1, NN_INIT_KAIMING, 5, 3);
    int b = nn_params_add(&p, "blk.0.lin.bias", 1, s2, NN_INIT_ZERO, 1, 1);
    int cc = nn_params_add(&p, "blk.0.out.weight", 4, s3, NN_INIT_ZERO_OUT, 27, 18);
    int d = nn_params_add(&p, "blk.0.norm.weight", 1, s2, NN_INIT_ONE, 1, 1);
    nn_params_alloc(&p);
    CHECK(p.n == 4 && nn_params_find(&p, "blk.0.lin.bias") == b && nn_params_find(&p, "x") == -1);
    for (int i = 0; i < p.n; i++) CHECK(p.info[i].offset % 16 == 0);
    CHECK(p.total >= 15 + 3 + 54 + 3);
    nn_params_init(&p, 5, 1);
    float *w = nn_params_ptr(&p, a);
    int in_bound = 1, nonzero = 0;
    for (int i = 0; i < 15; i++) {
      if (fabsf(w[i]) > 1.0f / sqrtf(5.0f)) in_bound = 0;
      if (w[i] != 0) nonzero++;
    }
    CHECK(in_bound && nonzero == 15);
    CHECK(nn_params_ptr(&p, b)[0] == 0 && nn_params_ptr(&p, d)[2] == 1.0f);
    CHECK(nn_params_ptr(&p, cc)[7] == 0);
    float keep = w[3];
    nn_params_init(&p, 5, 0);
    CHECK(w[3] == keep && nn_params_ptr(&p, cc)[7] != 0);
    nn_params_init(&p, 6, 0);
    CHECK(w[3] != keep);
    nn_params_free(&p);
  }
  return test_finish();
}

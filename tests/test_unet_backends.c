/* The whole UNet on every backend: a small config (B = 2, T = 3, 8×8×4 latents, channels 16/32,
 * transformers at the 4×4 level and in the middle, a text context, CFG and motion conditions,
 * dropout in training mode) runs forward and backward on OPS_CPU_REF (the ground truth) and on
 * OPS_CPU_FAST, and must agree by normalised error ≤ 1e-4 in:
 *   - the output and the loss (MSE against a fixed target + Σ probs·R over the temporal
 *     attention maps, whose gradient enters through nn_attn_extra_grad),
 *   - the temporal attention probabilities,
 *   - the gradients w.r.t. every parameter tensor, the input latent and the text context,
 *   - the input-latent gradient of the attention-map loss alone (the dprobs path by itself).
 * A rerun on the fast backend with the same thread count must be bit-identical. When a GPU is
 * present (device_init "auto"), the same model runs on OPS_CUDA in f32 mode against the
 * reference (≤ 1e-3, GEMMs accumulate in another order); otherwise that part is skipped. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/tensor.h"
#include "kernels/device.h"
#include "kernels/nn.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

enum { B = 2, T = 3, H = 8, W = 8, L = 4, CIN = 4 };
#define NERR_TOL 1e-4
#define FAST_THREADS 2

static unet_config small_config(void) {
  unet_config c = unet_config_default();
  c.model_ch = 16;
  c.n_levels = 2;
  c.ch_mult[0] = 1, c.ch_mult[1] = 2; /* 16 and 32 channels */
  c.n_res = 1;
  c.attn_levels = 0x2; /* the 4×4 level (and the middle) */
  c.head_ch = 16;      /* 2 heads at 32 channels: the head split/merge path */
  c.text_dim = 8;
  c.max_frames = 4;
  c.cond_embeds = 2;
  c.groups = 8;
  c.dropout = 0.1f;
  return c;
}

/* Everything one run produces, in host memory. */
typedef struct {
  double loss, attn_loss;
  float *out, *probs, *gparams, *gx, *gctx, *gx_attn;
  int64_t nprobs;
} result;

typedef struct {
  float *x, *ctx, *target, *R; /* inputs; R weighs the attention maps */
  float t[B], w[B], m[B];
  int64_t nx, nctx, nR;
} inputs;

static void result_free(result *r) {
  free(r->out), free(r->probs), free(r->gparams), free(r->gx), free(r->gctx), free(r->gx_attn);
  memset(r, 0, sizeof *r);
}

static float *fetch(const float *dev, int64_t n) {
  float *h = xmalloc((size_t)(n ? n : 1) * sizeof(float));
  device_memcpy_d2h(h, dev, (size_t)n * sizeof(float));
  return h;
}

/* One forward + backward. attn_only: the loss is the attention-map term alone (dy = 0). */
static void run(unet *u, nn_ctx *c, const inputs *in, int attn_only, result *r) {
  nn_ctx_reset(c);
  nn_ctx_set_mode(c, 0, 1, 77); /* training mode: dropout active, same draws on every backend */
  nn_ctx_keep_attn(c, 1);
  nn_params_zero_grad(&u->params);
  nn_var x = nn_input(c, in->x, in->nx, 1);
  nn_var cx = nn_input(c, in->ctx, in->nctx, 1);
  unet_input ui = {.B = B, .T = T, .H = H, .W = W, .t = in->t, .w = in->w, .motion = in->m,
                   .context = cx, .L = L};
  nn_var y = unet_forward(u, c, x, &ui);
  nn_var tg = nn_input(c, in->target, in->nx, 0);
  nn_var loss = nn_mse(c, y, tg);
  /* the attention-map term: Σ probs·R over the temporal layers, R cycled */
  double al = 0;
  int64_t off = 0;
  for (int a = 0; a < nn_attn_count(c); a++) {
    int64_t sh[4];
    const float *Pd = nn_attn_probs(c, a, sh);
    int64_t n = sh[0] * sh[1] * sh[2] * sh[3];
    float *P = fetch(Pd, n), *e = xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
      e[i] = in->R[(off + i) % in->nR];
      al += (double)P[i] * e[i];
    }
    device_memcpy_h2d(nn_attn_extra_grad(c, a), e, (size_t)n * sizeof(float));
    if (!attn_only) {
      r->probs = xrealloc(r->probs, (size_t)(off + n) * sizeof(float));
      memcpy(r->probs + off, P, (size_t)n * sizeof(float));
    }
    free(P), free(e);
    off += n;
  }
  if (attn_only) {
    float zero = 0.0f;
    nn_backward(c, loss, &zero);
    r->gx_attn = fetch(nn_grad(c, x), in->nx);
    return;
  }
  r->nprobs = off;
  r->attn_loss = al;
  float lv, one = 1.0f;
  device_memcpy_d2h(&lv, nn_data(c, loss), sizeof lv);
  r->loss = lv;
  r->out = fetch(nn_data(c, y), in->nx);
  nn_backward(c, loss, &one);
  r->gparams = fetch(u->params.grad, u->params.total);
  r->gx = fetch(nn_grad(c, x), in->nx);
  r->gctx = fetch(nn_grad(c, cx), in->nctx);
}

static void run_all(unet *u, const inputs *in, result *r, double *secs) {
  nn_ctx *c = nn_ctx_new();
  double t0 = time_now();
  run(u, c, in, 0, r);
  run(u, c, in, 1, r);
  *secs = time_now() - t0;
  nn_ctx_free(c);
}

/* Compares b against the reference a; per parameter tensor for the parameter gradients. */
static void compare(const char *label, const unet *u, const inputs *in, const result *a,
                    const result *b, double tol) {
  char what[200];
  CHECKF(fabs(a->loss - b->loss) <= tol * fabs(a->loss), "%s: loss %.9g vs %.9g", label,
         b->loss, a->loss);
  CHECKF(fabs(a->attn_loss - b->attn_loss) <= tol * (fabs(a->attn_loss) + 1.0),
         "%s: attention-map loss %.9g vs %.9g", label, b->attn_loss, a->attn_loss);
  snprintf(what, sizeof what, "%s output", label);
  CHECK(check_nerr_f32(what, b->out, a->out, in->nx, tol));
  CHECK(a->nprobs == b->nprobs && a->nprobs > 0);
  snprintf(what, sizeof what, "%s temporal attention probs", label);
  CHECK(check_nerr_f32(what, b->probs, a->probs, a->nprobs, tol));
  snprintf(what, sizeof what, "%s d/dx", label);
  CHECK(check_nerr_f32(what, b->gx, a->gx, in->nx, tol));
  snprintf(what, sizeof what, "%s d/dcontext", label);
  CHECK(check_nerr_f32(what, b->gctx, a->gctx, in->nctx, tol));
  snprintf(what, sizeof what, "%s d(attention-map loss)/dx", label);
  CHECK(check_nerr_f32(what, b->gx_attn, a->gx_attn, in->nx, tol));
  snprintf(what, sizeof what, "%s d/dparams (all)", label);
  CHECK(check_nerr_f32(what, b->gparams, a->gparams, u->params.total, tol));
  int bad = 0;
  double worst = 0;
  const char *worst_name = "";
  for (int i = 0; i < u->params.n; i++) {
    const nn_param_info *pi = &u->params.info[i];
    const float *ga = a->gparams + pi->offset, *gb = b->gparams + pi->offset;
    double num = 0, den = 0;
    for (int64_t j = 0; j < pi->numel; j++) {
      num += ((double)gb[j] - ga[j]) * ((double)gb[j] - ga[j]);
      den += (double)ga[j] * ga[j];
    }
    double e = sqrt(num) / (sqrt(den) > 1e-30 ? sqrt(den) : 1e-30);
    if (den == 0 && num == 0) e = 0;
    if (e > worst) worst = e, worst_name = pi->name;
    if (e > tol && bad++ < 5)
      fprintf(stderr, "%s: d/d %s normalised error %.3g\n", label, pi->name, e);
  }
  printf("%-10s worst parameter tensor: %s (%.2e)\n", label, worst_name, worst);
  CHECKF(bad == 0, "%s: %d parameter tensors differ beyond %.0e", label, bad, tol);
}

int main(int argc, char **argv) {
  (void)argc, (void)argv;
  test_begin("test_unet_backends");
  unet_config cfg = small_config();
  unet u;
  CHECK(unet_create(&u, &cfg) == TB_OK);
  unet_init_weights(&u, 11, 0); /* zero_out = 0: every path carries gradient */
  printf("small unet: %d tensors, %lld parameters\n", u.params.n, (long long)u.params.total);

  inputs in;
  memset(&in, 0, sizeof in);
  in.nx = (int64_t)B * T * CIN * H * W;
  in.nctx = (int64_t)B * L * cfg.text_dim;
  in.nR = 4093; /* prime: the cycled weights do not line up with the map shapes */
  in.x = xmalloc(in.nx * sizeof(float));
  in.target = xmalloc(in.nx * sizeof(float));
  in.ctx = xmalloc(in.nctx * sizeof(float));
  in.R = xmalloc(in.nR * sizeof(float));
  test_fill_uniform(in.x, in.nx, 1, -1, 1);
  test_fill_uniform(in.target, in.nx, 2, -1, 1);
  test_fill_uniform(in.ctx, in.nctx, 3, -1, 1);
  test_fill_uniform(in.R, in.nR, 4, -1, 1);
  float tt[B] = {25.0f, 810.0f}, ww[B] = {7.5f, 3.0f}, mm[B] = {0.4f, 1.5f};
  memcpy(in.t, tt, sizeof tt), memcpy(in.w, ww, sizeof ww), memcpy(in.m, mm, sizeof mm);

  result ref, fast, again;
  memset(&ref, 0, sizeof ref), memset(&fast, 0, sizeof fast), memset(&again, 0, sizeof again);
  double s_ref, s_fast, s_again;
  CHECK(ops_backend_set(OPS_CPU_REF) == TB_OK);
  run_all(&u, &in, &ref, &s_ref);
  CHECK(ops_backend_set(OPS_CPU_FAST) == TB_OK);
  ops_set_num_threads(FAST_THREADS);
  run_all(&u, &in, &fast, &s_fast);
  run_all(&u, &in, &again, &s_again);
  printf("cpu-ref %.2f s, cpu-fast (%d threads) %.2f s, rerun %.2f s; loss %.6f + maps %.6f\n",
         s_ref, FAST_THREADS, s_fast, s_again, ref.loss, ref.attn_loss);
  compare("cpu-fast", &u, &in, &ref, &fast, NERR_TOL);
  /* the two runs really took different code: the reference accumulates in double */
  CHECK(memcmp(ref.gparams, fast.gparams, u.params.total * sizeof(float)) != 0);

  /* determinism: the same bits on a rerun with the same thread count */
  CHECK(fast.loss == again.loss && fast.attn_loss == again.attn_loss);
  CHECK(memcmp(fast.out, again.out, in.nx * sizeof(float)) == 0);
  CHECK(memcmp(fast.probs, again.probs, fast.nprobs * sizeof(float)) == 0);
  CHECK(memcmp(fast.gparams, again.gparams, u.params.total * sizeof(float)) == 0);
  CHECK(memcmp(fast.gx, again.gx, in.nx * sizeof(float)) == 0);
  CHECK(memcmp(fast.gctx, again.gctx, in.nctx * sizeof(float)) == 0);
  CHECK(memcmp(fast.gx_attn, again.gx_attn, in.nx * sizeof(float)) == 0);

  /* the GPU, when there is one: a second model created on the device with the same init */
  if (device_cuda_built() && device_init("auto") == TB_OK && device_is_cuda()) {
    device_set_compute(DEVICE_F32);
    unet g;
    CHECK(unet_create(&g, &cfg) == TB_OK);
    unet_init_weights(&g, 11, 0);
    result cu;
    memset(&cu, 0, sizeof cu);
    double s_cu;
    run_all(&g, &in, &cu, &s_cu);
    printf("cuda (%s) %.2f s\n", device_describe(), s_cu);
    compare("cuda", &g, &in, &ref, &cu, 1e-3);
    result_free(&cu);
    unet_free(&g);
    device_shutdown();
  } else {
    printf("cuda: skipped (no GPU in this build or on this machine)\n");
  }

  result_free(&ref), result_free(&fast), result_free(&again);
  free(in.x), free(in.target), free(in.ctx), free(in.R);
  unet_free(&u);
  return test_finish();
}

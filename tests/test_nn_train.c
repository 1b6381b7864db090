/* The training infrastructure every trainer uses: inference without gradients (same outputs,
 * far fewer bytes held, no backward), frozen parameter blocks (no gradient memory, gradients
 * still reach the inputs), the once-per-pass backward and its multi-output form, and training
 * states that resume a run bit-identically (parameters, AdamW moments, EMA, step, data position,
 * RNG), refusing a state of another configuration without changing anything. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/tensor.h"
#include "kernels/nn.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

enum { B = 2, T = 4, H = 8, W = 8, L = 3 };

static unet_config tiny_config(void) {
  unet_config c = unet_config_default();
  c.model_ch = 8;
  c.n_levels = 2;
  c.ch_mult[0] = 1, c.ch_mult[1] = 2;
  c.n_res = 1;
  c.attn_levels = 0x3;
  c.head_ch = 4;
  c.text_dim = 6;
  c.max_frames = 4;
  c.groups = 4;
  return c;
}

typedef struct {
  float x[B * T * 4 * H * W], ctx[B * L * 6], t[B];
} batch;

static void make_batch(batch *b, uint64_t seed) {
  test_fill_uniform(b->x, B * T * 4 * H * W, seed, -1, 1);
  test_fill_uniform(b->ctx, B * L * 6, seed + 1, -1, 1);
  for (int i = 0; i < B; i++) b->t[i] = (float)((seed * 37 + (uint64_t)i * 101) % 1000);
}

/* eps = unet(x); returns the var; x_grad asks for dL/dx */
static nn_var forward(unet *u, nn_ctx *c, const batch *b, int x_grad, nn_var *xv) {
  nn_var x = nn_input(c, b->x, B * T * 4 * H * W, x_grad);
  nn_var cx = nn_input(c, b->ctx, B * L * 6, 0);
  unet_input in = {.B = B, .T = T, .H = H, .W = W, .t = b->t, .context = cx, .L = L};
  if (xv) *xv = x;
  return unet_forward(u, c, x, &in);
}

/* Runs fn in a child and reports whether it aborted (a refused misuse). */
static int aborts(void (*fn)(void *), void *arg) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "w", stderr);
    fn(arg);
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

typedef struct {
  unet *u;
  const batch *b;
} misuse;

static void backward_twice(void *arg) {
  misuse *m = arg;
  nn_ctx *c = nn_ctx_new();
  nn_var y = forward(m->u, c, m->b, 1, NULL);
  nn_var loss = nn_mse(c, y, nn_input(c, NULL, nn_numel(c, y), 0));
  float one = 1;
  nn_backward(c, loss, &one);
  nn_backward(c, loss, &one); /* must abort */
}

static void backward_nograd(void *arg) {
  misuse *m = arg;
  nn_ctx *c = nn_ctx_new();
  nn_ctx_set_grad(c, 0);
  nn_var y = forward(m->u, c, m->b, 1, NULL);
  float *dy = xcalloc((size_t)nn_numel(c, y), sizeof(float));
  nn_backward(c, y, dy); /* must abort */
}

static void grad_of_frozen(void *arg) {
  misuse *m = arg;
  nn_ctx *c = nn_ctx_new();
  nn_params *p = &m->u->params;
  nn_param_var(c, p, 0, 0); /* asks for a gradient the frozen block does not have */
}

/* One AdamW step on the MSE of eps against a target; returns the loss. */
static float train_step(unet *u, nn_ctx *c, nn_adamw *o, float *ema, uint64_t seed) {
  batch b;
  make_batch(&b, seed);
  nn_ctx_reset(c);
  nn_params_zero_grad(&u->params);
  nn_var y = forward(u, c, &b, 0, NULL);
  float *tgt = xmalloc((size_t)nn_numel(c, y) * sizeof(float));
  test_fill_uniform(tgt, nn_numel(c, y), seed + 7, -1, 1);
  nn_var loss = nn_mse(c, y, nn_input(c, tgt, nn_numel(c, y), 0));
  float lv = nn_data(c, loss)[0], one = 1;
  nn_backward(c, loss, &one);
  nn_grad_clip(u->params.grad, u->params.total, 1.0f);
  nn_adamw_step(o, u->params.data, u->params.grad, 1e-3f);
  nn_ema_update(ema, u->params.data, u->params.total, 0.9f);
  free(tgt);
  return lv;
}

int main(void) {
  test_begin("test_nn_train");
  ops_set_num_threads(1);
  unet_config cfg = tiny_config();
  unet u;
  CHECK(unet_create(&u, &cfg) == TB_OK);
  unet_init_weights(&u, 5, 0);
  batch b;
  make_batch(&b, 11);

  /* inference without gradients: identical output, fewer bytes, no tape */
  {
    nn_ctx *g = nn_ctx_new(), *n = nn_ctx_new();
    nn_var yg = forward(&u, g, &b, 0, NULL);
    nn_ctx_set_grad(n, 0);
    CHECK(!nn_ctx_grad_enabled(n));
    nn_var yn = forward(&u, n, &b, 0, NULL);
    int64_t ny = nn_numel(g, yg);
    CHECK(ny == nn_numel(n, yn));
    CHECKF(memcmp(nn_data(g, yg), nn_data(n, yn), (size_t)ny * sizeof(float)) == 0,
           "no-grad output differs from the recorded pass");
    size_t bg = nn_ctx_bytes(g), bn = nn_ctx_bytes(n);
    printf("activation bytes: recorded %zu, without gradients %zu (%.1f%%)\n", bg, bn,
           100.0 * (double)bn / (double)bg);
    CHECKF(bn * 2 < bg, "no-grad pass holds %zu bytes, the recorded one %zu", bn, bg);
    misuse m = {&u, &b};
    CHECKF(aborts(backward_nograd, &m), "nn_backward in a no-grad context was not refused");
    CHECKF(aborts(backward_twice, &m), "a second nn_backward of one pass was not refused");
    nn_ctx_free(g);
    nn_ctx_free(n);
  }

  /* nn_backward_many == the sum of two separately recorded backwards */
  {
    nn_ctx *c = nn_ctx_new();
    int64_t nx = B * T * 4 * H * W;
    float *r1 = xmalloc((size_t)nx * 4), *r2 = xmalloc((size_t)nx * 4);
    test_fill_uniform(r1, nx, 3, -1, 1);
    test_fill_uniform(r2, nx, 4, -1, 1);
    float *sep = xcalloc((size_t)nx, 4), *sepp = xcalloc((size_t)u.params.total, 4);
    for (int k = 0; k < 2; k++) {
      nn_ctx_reset(c);
      nn_var xv;
      nn_var y = forward(&u, c, &b, 1, &xv);
      nn_backward(c, y, k ? r2 : r1);
      for (int64_t i = 0; i < nx; i++) sep[i] += nn_grad(c, xv)[i];
    }
    memcpy(sepp, u.params.grad, (size_t)u.params.total * 4);
    nn_params_zero_grad(&u.params);
    nn_ctx_reset(c);
    nn_var xv;
    nn_var y1 = forward(&u, c, &b, 1, &xv);
    /* a second output of the same pass: y2 = y1 + y1 (so its seed doubles) */
    nn_var y2 = nn_add(c, y1, y1);
    float *half = xmalloc((size_t)nx * 4);
    for (int64_t i = 0; i < nx; i++) half[i] = 0.5f * r2[i];
    nn_var ys[2] = {y1, y2};
    const float *dys[2] = {r1, half};
    nn_backward_many(c, 2, ys, dys);
    /* one sweep with summed seeds rounds differently from two sweeps summed afterwards */
    check_nerr_f32("backward_many dx", nn_grad(c, xv), sep, nx, 1e-5);
    check_nerr_f32("backward_many dparams", u.params.grad, sepp, u.params.total, 1e-5);
    nn_params_zero_grad(&u.params);
    free(r1), free(r2), free(sep), free(sepp), free(half);
    nn_ctx_free(c);
  }

  /* frozen: no gradient block, input gradient unchanged */
  {
    unet f;
    CHECK(unet_create(&f, &cfg) == TB_OK);
    unet_init_weights(&f, 5, 0);
    nn_ctx *c = nn_ctx_new();
    int64_t nx = B * T * 4 * H * W;
    float *r = xmalloc((size_t)nx * 4), *dx = xmalloc((size_t)nx * 4);
    test_fill_uniform(r, nx, 9, -1, 1);
    nn_var xv;
    nn_var y = forward(&f, c, &b, 1, &xv);
    nn_backward(c, y, r);
    memcpy(dx, nn_grad(c, xv), (size_t)nx * 4);
    unet_freeze(&f);
    CHECK(f.params.grad == NULL && f.frozen);
    nn_ctx_reset(c);
    y = forward(&f, c, &b, 1, &xv);
    nn_backward(c, y, r);
    CHECKF(memcmp(dx, nn_grad(c, xv), (size_t)nx * 4) == 0,
           "the input gradient through a frozen UNet changed");
    misuse m = {&f, &b};
    CHECKF(aborts(grad_of_frozen, &m), "a gradient of frozen parameters was not refused");
    free(r), free(dx);
    nn_ctx_free(c);
    unet_free(&f);
  }

  /* resume: 6 steps straight == 3 steps, save, fresh model, load, 3 steps (bit for bit) */
  {
    char path[512];
    snprintf(path, sizeof path, "%s/state.safetensors", test_outdir());
    unet a;
    CHECK(unet_create(&a, &cfg) == TB_OK);
    unet_init_weights(&a, 21, 1);
    nn_adamw oa;
    nn_adamw_init(&oa, a.params.total, 0.9f, 0.999f, 1e-8f, 0.01f);
    float *ea = xmalloc((size_t)a.params.total * 4);
    memcpy(ea, a.params.data, (size_t)a.params.total * 4);
    nn_ctx *c = nn_ctx_new();
    float la[6], lb[6];
    for (int s = 0; s < 6; s++) la[s] = train_step(&a, c, &oa, ea, 100 + (uint64_t)s);

    unet bm;
    CHECK(unet_create(&bm, &cfg) == TB_OK);
    unet_init_weights(&bm, 21, 1);
    nn_adamw ob;
    nn_adamw_init(&ob, bm.params.total, 0.9f, 0.999f, 1e-8f, 0.01f);
    float *eb = xmalloc((size_t)bm.params.total * 4);
    memcpy(eb, bm.params.data, (size_t)bm.params.total * 4);
    for (int s = 0; s < 3; s++) lb[s] = train_step(&bm, c, &ob, eb, 100 + (uint64_t)s);
    nn_train_pos pos = {.step = 3, .data_pos = 3 * B, .rng = 0xFEEDFACECAFEBEEFull};
    const char *meta[2] = {"model", "tiny-unet"};
    CHECK(nn_train_save(path, &bm.params, &ob, eb, &pos, 1, meta) == TB_OK);
    nn_train_pos peek;
    CHECK(nn_train_read_pos(path, &peek) == TB_OK && peek.step == 3 && peek.data_pos == 3 * B &&
          peek.rng == 0xFEEDFACECAFEBEEFull);

    unet r;
    CHECK(unet_create(&r, &cfg) == TB_OK);
    unet_init_weights(&r, 999, 1);
    nn_adamw orr;
    nn_adamw_init(&orr, r.params.total, 0.9f, 0.999f, 1e-8f, 0.01f);
    float *er = xcalloc((size_t)r.params.total, 4);
    nn_train_pos got;
    CHECKF(nn_train_load(path, &r.params, &orr, er, &got) == TB_OK, "load: %s", err_get());
    CHECK(got.step == 3 && got.data_pos == 3 * B && got.rng == pos.rng && orr.step == 3);
    for (int s = 3; s < 6; s++) lb[s] = train_step(&r, c, &orr, er, 100 + (uint64_t)s);
    CHECKF(memcmp(la, lb, sizeof la) == 0, "loss curves differ after resume");
    CHECKF(memcmp(a.params.data, r.params.data, (size_t)a.params.total * 4) == 0,
           "parameters differ after resume");
    CHECKF(memcmp(ea, er, (size_t)a.params.total * 4) == 0, "EMA differs after resume");
    CHECKF(memcmp(oa.m, orr.m, (size_t)a.params.total * 4) == 0 &&
               memcmp(oa.v, orr.v, (size_t)a.params.total * 4) == 0,
           "optimiser moments differ after resume");
    /* the file also reads as a plain checkpoint */
    unet plain;
    CHECK(unet_create(&plain, &cfg) == TB_OK);
    CHECKF(nn_params_load(&plain.params, path, NULL, 0) == TB_OK, "%s", err_get());
    CHECK(memcmp(plain.params.data, bm.params.data, (size_t)bm.params.total * 4) == 0);

    /* another configuration is refused, naming the difference, and nothing changes */
    unet_config c2 = cfg;
    c2.model_ch = 12;
    unet o2;
    CHECK(unet_create(&o2, &c2) == TB_OK);
    unet_init_weights(&o2, 1, 1);
    nn_adamw oo;
    nn_adamw_init(&oo, o2.params.total, 0.9f, 0.999f, 1e-8f, 0.0f);
    float *before = xmalloc((size_t)o2.params.total * 4);
    memcpy(before, o2.params.data, (size_t)o2.params.total * 4);
    CHECK(nn_train_load(path, &o2.params, &oo, NULL, &got) == TB_ERR);
    printf("refused: %s\n", err_get());
    CHECK(strstr(err_get(), path) != NULL);
    CHECK(memcmp(before, o2.params.data, (size_t)o2.params.total * 4) == 0 && oo.step == 0);
    /* a plain parameter file is not a training state */
    char plainp[512];
    snprintf(plainp, sizeof plainp, "%s/plain.safetensors", test_outdir());
    CHECK(nn_params_save(&a.params, plainp) == TB_OK);
    CHECK(nn_train_read_pos(plainp, &got) == TB_ERR && strstr(err_get(), "not a training state"));

    free(before), free(ea), free(eb), free(er);
    nn_adamw_free(&oa), nn_adamw_free(&ob), nn_adamw_free(&orr), nn_adamw_free(&oo);
    unet_free(&a), unet_free(&bm), unet_free(&r), unet_free(&plain), unet_free(&o2);
    nn_ctx_free(c);
  }
  unet_free(&u);
  return test_finish();
}

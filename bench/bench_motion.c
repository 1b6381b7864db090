/* Motion guidance at the world's default size (unet_config_default: 16 frames of 16×16×4
 * latents, randomly initialised, 8 text tokens), fast CPU backend, 1 ops thread: one teacher
 * step (CFG, B = 1) unguided and guided through the teacher's hook, the peak activation memory
 * of each (nn_ctx_bytes) for the layers read (all decoder temporal layers, the last two, every
 * temporal layer), and bin/motion's per-clip precompute (4 inversion steps) against 10 plain
 * forwards.   build/bench/bench_motion [iterations]
 * build/bench/bench_motion --workspace DIR N writes a workspace instead: dataset "bench" of N
 * motion clips at this size (random latents and captions) and this teacher as model "teacher",
 * for timing bin/motion (`bin/motion --workspace DIR --dataset bench --workers 2`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/catalogue.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "common/tensor.h"
#include "kernels/diffusion.h"
#include "kernels/motion.h"
#include "kernels/nn.h"
#include "kernels/nn/teacher.h"
#include "kernels/nn/teacher_motion.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

static int put(catalogue *cat, const char *ws, const char *rel, const char *kind, int64_t clip,
               int64_t model, const char *variant, int ndim, const int64_t *shape, uint64_t sd) {
  int64_t n = shape_numel(ndim, shape);
  float *x = xmalloc((size_t)n * 4);
  test_fill_uniform(x, n, sd, -1, 1);
  tensor t = tensor_view(DTYPE_F32, ndim, shape, x);
  safetensors_writer *w = safetensors_writer_new();
  safetensors_writer_add(w, "x", &t);
  char path[4096];
  fs_join(path, sizeof path, ws, rel);
  int rc = safetensors_writer_save(w, path);
  safetensors_writer_free(w);
  free(x);
  safetensors_file *f;
  if (rc != TB_OK || safetensors_open(path, &f) != TB_OK) return TB_ERR;
  catalogue_tensor ct = {.kind = kind, .clip_id = clip, .model_id = model, .variant = variant,
                         .path = rel,
                         .offset = (int64_t)(safetensors_data_offset(f) + safetensors_find(f, "x")->begin),
                         .nbytes = n * 4, .dtype = DTYPE_F32, .ndim = ndim};
  memcpy(ct.shape, shape, (size_t)ndim * sizeof *shape);
  safetensors_close(f);
  return catalogue_tensor_insert(cat, &ct, NULL);
}

static int make_workspace(const char *ws, int nclips) {
  unet_config cfg = unet_config_default();
  unet u;
  if (unet_create(&u, &cfg) != TB_OK) return 1;
  unet_init_weights(&u, 1, 0);
  char p[4096], cj[512];
  fs_join(p, sizeof p, ws, "models");
  fs_mkdir_p(p);
  fs_join(p, sizeof p, ws, "latents");
  fs_mkdir_p(p);
  snprintf(cj, sizeof cj,
           "{\"in_ch\":%d,\"out_ch\":%d,\"model_ch\":%d,\"n_levels\":%d,\"ch_mult\":[%d,%d,%d,%d],"
           "\"n_res\":%d,\"attn_levels\":%d,\"head_ch\":%d,\"text_dim\":%d,\"groups\":%d,"
           "\"max_frames\":%d}",
           cfg.in_ch, cfg.out_ch, cfg.model_ch, cfg.n_levels, cfg.ch_mult[0], cfg.ch_mult[1],
           cfg.ch_mult[2], cfg.ch_mult[3], cfg.n_res, cfg.attn_levels, cfg.head_ch, cfg.text_dim,
           cfg.groups, cfg.max_frames);
  fs_join(p, sizeof p, ws, "models/teacher.safetensors");
  nn_train_pos pos = {0};
  const char *meta[2] = {"unet.config", cj};
  if (nn_train_save(p, &u.params, NULL, NULL, &pos, 1, meta) != TB_OK) return 1;
  catalogue *cat = catalogue_open_workspace(ws, 0);
  if (!cat) return log_error("%s", err_get()), 1;
  catalogue_source src = {.path = "bench.mp4", .size = 1, .mtime = 1, .checksum = "00"};
  int64_t sid, did, mid, tid;
  int rc = catalogue_source_upsert(cat, &src, &sid, NULL);
  if (rc == TB_OK) rc = catalogue_dataset_create(cat, "bench", "bench", 1, 0, &did);
  if (rc == TB_OK) rc = catalogue_model_upsert(cat, "teacher", "unet", cj, 0, &tid);
  if (rc == TB_OK) rc = catalogue_model_upsert(cat, "bench-encoder", "vae", NULL, 0, &mid);
  if (rc == TB_OK) rc = catalogue_checkpoint_insert(cat, tid, 0, "models/teacher.safetensors", NULL, 0, NULL);
  int64_t zs[4] = {cfg.max_frames, cfg.in_ch, 16, 16}, cs[2] = {8, cfg.text_dim};
  for (int i = 0; i < nclips && rc == TB_OK; i++) {
    catalogue_clip cl = {.source_id = sid, .start = i, .end = i + 1, .fps = 8, .width = 64,
                         .height = 64, .frames = 16};
    int64_t id;
    char rel[256];
    rc = catalogue_clip_insert(cat, &cl, &id);
    if (rc == TB_OK) rc = catalogue_member_add(cat, did, id, CATALOGUE_SPLIT_TRAIN, "motion");
    snprintf(rel, sizeof rel, "latents/z%d.safetensors", i);
    if (rc == TB_OK) rc = put(cat, ws, rel, "latent", id, mid, "mean", 4, zs, 100 + i);
    snprintf(rel, sizeof rel, "latents/c%d.safetensors", i);
    if (rc == TB_OK) rc = put(cat, ws, rel, "text_tokens", id, mid, "long", 2, cs, 200 + i);
  }
  if (rc != TB_OK) log_error("%s", err_get());
  catalogue_close(cat);
  unet_free(&u);
  return rc == TB_OK ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc > 3 && strcmp(argv[1], "--workspace") == 0) return make_workspace(argv[2], atoi(argv[3]));
  int iters = argc > 1 ? atoi(argv[1]) : 2;
  ops_set_num_threads(1);
  unet_config cfg = unet_config_default();
  unet u;
  if (unet_create(&u, &cfg) != TB_OK) return 1;
  unet_init_weights(&u, 1, 0);
  unet_freeze(&u);
  const int T = cfg.max_frames, H = 16, W = 16, L = 8, D = cfg.text_dim;
  int64_t n = (int64_t)T * cfg.in_ch * H * W;
  float *z = xmalloc((size_t)n * 4), *ctx = xmalloc((size_t)L * D * 4), *nul = xcalloc((size_t)L * D, 4);
  float *zr = xmalloc((size_t)n * 4);
  test_fill_uniform(z, n, 2, -1.5f, 1.5f);
  test_fill_uniform(zr, n, 3, -1.5f, 1.5f);
  test_fill_uniform(ctx, L * D, 4, -1, 1);
  diff_schedule s;
  diff_schedule_default(&s);
  nn_ctx *c = nn_ctx_new(), *gc = nn_ctx_new();
  const char *dec[32], *all[32];
  int nd = unet_temporal_layers(&u, 1, dec, 32), na = unet_temporal_layers(&u, 0, all, 32);
  printf("UNet %lld parameters, %d temporal layers (%d decoder), latent %dx%dx%dx%d\n",
         (long long)u.params.total, na, nd, T, cfg.in_ch, H, W);
  float w = 7.5f, *xp = xmalloc((size_t)n * 4);
  int idx = 150;
  teacher_out out = {.x_prev = xp};
  /* a plain forward */
  double best_f = 1e9;
  for (int i = 0; i < iters; i++) {
    double t0 = time_now();
    nn_ctx_reset(c);
    nn_ctx_set_grad(c, 0);
    nn_var x = nn_input(c, z, n, 0), cx = nn_input(c, ctx, L * D, 0);
    float tf = 754;
    unet_input in = {.B = 1, .T = T, .H = H, .W = W, .t = &tf, .context = cx, .L = L};
    unet_forward(&u, c, x, &in);
    double dt = time_now() - t0;
    if (dt < best_f) best_f = dt;
  }
  nn_ctx_reset(c);
  printf("forward (no gradient): %.1f ms\n", 1e3 * best_f);
  double best_u = 1e9;
  for (int i = 0; i < iters; i++) {
    teacher_batch b = {.B = 1, .T = T, .H = H, .W = W, .L = L, .z = z, .w = &w, .ctx = ctx,
                       .null_ctx = nul};
    double t0 = time_now();
    if (teacher_step(&u, c, &s, &b, &idx, &out) != TB_OK) return log_error("%s", err_get()), 1;
    double dt = time_now() - t0;
    if (dt < best_u) best_u = dt;
  }
  printf("teacher step unguided (CFG, 2 forwards): %.1f ms, activations %.1f MiB\n", 1e3 * best_u,
         nn_ctx_bytes(c) / 1048576.0);
  struct {
    const char *name;
    int n;
    const char **l;
  } sel[3] = {{"decoder (all)", nd, dec}, {"decoder (last 2)", 2, dec + nd - 2}, {"every temporal", na, all}};
  for (int k = 0; k < 3; k++) {
    motion_ref ref;
    float tf = (float)s.ddim_t[idx];
    if (motion_ref_extract(&u, gc, sel[k].n, sel[k].l, 1, T, H, W, L, zr, &tf, NULL, NULL, ctx,
                           &ref) != TB_OK)
      return log_error("%s", err_get()), 1;
    nn_ctx_free(gc);
    gc = nn_ctx_new(); /* a fresh peak for this selection */
    teacher_motion tm = {.g = {.ref = &ref, .m = 0.05f, .scale = 1e4f, .tau = 0.5f}, .s = &s, .c = gc};
    teacher_guidance hook;
    teacher_motion_hook(&tm, &hook);
    double best_g = 1e9;
    for (int i = 0; i < iters; i++) {
      teacher_batch b = {.B = 1, .T = T, .H = H, .W = W, .L = L, .z = z, .w = &w, .ctx = ctx,
                         .null_ctx = nul, .guide = &hook};
      double t0 = time_now();
      if (teacher_step(&u, c, &s, &b, &idx, &out) != TB_OK) return log_error("%s", err_get()), 1;
      double dt = time_now() - t0;
      if (dt < best_g) best_g = dt;
    }
    int64_t rows = motion_ref_total_rows(&ref);
    printf("teacher step guided, %s (%d layers, %lld reference rows): %.1f ms (%.2fx unguided), "
           "guidance activations %.1f MiB, E %.4g\n",
           sel[k].name, sel[k].n, (long long)rows, 1e3 * best_g, best_g / best_u,
           nn_ctx_bytes(gc) / 1048576.0, (double)tm.E[0]);
    motion_ref_free(&ref);
  }
  /* the per-clip precompute against 10 forwards */
  float *buf = xmalloc((size_t)5 * n * 4);
  test_fill_uniform(buf + 4 * n, n, 9, -1.7f, 1.7f);
  double best_p = 1e9;
  int fw = 0;
  for (int i = 0; i < iters; i++) {
    motion_record r = {.z_t = buf, .eps_c = buf + n, .eps_u = buf + 2 * n, .score = buf + 3 * n};
    double t0 = time_now();
    if (motion_precompute(&u, gc, &s, T, H, W, L, z, ctx, nul, buf + 4 * n, idx, 4, nd, dec, 1e4f,
                          &r) != TB_OK)
      return log_error("%s", err_get()), 1;
    double dt = time_now() - t0;
    if (dt < best_p) best_p = dt;
    fw = r.forwards;
    motion_ref_free(&r.ref);
  }
  printf("precompute per clip (4 inversion steps, %d forward-equivalents): %.1f ms = %.2f of 10 "
         "forwards (%.1f ms); one worker %.2f clips/s\n",
         fw, 1e3 * best_p, best_p / (10 * best_f), 1e4 * best_f, 1.0 / best_p);
  free(z), free(zr), free(ctx), free(nul), free(xp), free(buf);
  nn_ctx_free(c), nn_ctx_free(gc);
  unet_free(&u);
  return 0;
}

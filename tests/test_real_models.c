/* Real model families against their reference libraries: the fixtures of
 * tests/fixtures/real/ (made by make_real_fixtures.py with diffusers, a transcription of
 * VideoCrafter2's lvdm code, transformers and open_clip) are loaded through the families'
 * tensor maps and run on the CPU reference and fast backends. Each must match:
 *   forward outputs: normalised error ||a - ref|| / ||ref|| <= 1e-4,
 *   d loss / d input and d loss / d (chosen parameters): <= 1e-3,
 * with loss = sum(out * r) for the fixture's r. Then each family's checkpoint is broken three
 * ways (a renamed tensor, a wrong shape, a truncated file) and every load must be refused with
 * a message naming the tensor.
 * Prints one table row per (family, backend, quantity): the measured error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/safetensors.h"
#include "common/tensor.h"
#include "kernels/device.h"
#include "kernels/nn.h"
#include "common/fsutil.h"
#include "kernels/nn/text.h"
#include "kernels/nn/vae.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

#define FIX "tests/fixtures/real/"
#define TOL_FWD 1e-4
#define TOL_GRAD 1e-3

static double g_worst[2][3]; /* [backend][fwd, input grad, param grads] over all families */

static double nerr(const float *a, const float *ref, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)a[i] - ref[i];
    num += d * d;
    den += (double)ref[i] * ref[i];
  }
  return sqrt(num) / (sqrt(den) > 1e-30 ? sqrt(den) : 1e-30);
}

/* Compares a (n) with the io file's tensor `name`; kind 0 forward, 1 input grad, 2 param. */
static void compare(const char *fam, int be, int kind, const char *what, const float *a,
                    safetensors_file *io, const char *name) {
  tensor ref;
  if (safetensors_read_f32(io, name, -1, NULL, &ref) != TB_OK) {
    CHECKF(0, "%s: %s", fam, err_get());
    return;
  }
  double e = nerr(a, ref.data, tensor_numel(&ref));
  double tol = kind == 0 ? TOL_FWD : TOL_GRAD;
  printf("  %-16s %-4s %-52s nerr %.2e %s\n", fam, be ? "fast" : "ref", what, e,
         e <= tol ? "ok" : "FAIL");
  CHECKF(e <= tol, "%s (%s): %s error %.3e > %.0e", fam, be ? "fast" : "ref", what, e, tol);
  if (e > g_worst[be][kind]) g_worst[be][kind] = e;
  tensor_free(&ref);
}

static float *read_all(safetensors_file *io, const char *name, int64_t *n) {
  tensor t;
  TB_CHECKF(safetensors_read_f32(io, name, -1, NULL, &t) == TB_OK, "%s", err_get());
  float *d = xmalloc((size_t)tensor_numel(&t) * sizeof(float));
  memcpy(d, t.data, (size_t)tensor_numel(&t) * sizeof(float));
  if (n) *n = tensor_numel(&t);
  tensor_free(&t);
  return d;
}

/* The registered parameter a checkpoint tensor feeds (via the map). */
static int param_of(const nn_params *p, const nn_tensor_map *m, const char *from) {
  for (int i = 0; i < m->n; i++)
    if (strcmp(m->from[i], from) == 0) return nn_params_find(p, m->to[i]);
  return nn_params_find(p, from);
}

/* ---- UNets ---------------------------------------------------------------------------- */

static unet_config diffusers_tiny(void) {
  /* the fixture's UNet3DConditionModel: block_out_channels (16, 32), layers_per_block 1,
   * (CrossAttnDownBlock3D, DownBlock3D), norm_num_groups 8, cross_attention_dim 24,
   * attention_head_dim 8 */
  unet_config c = unet_config_modelscope();
  c.model_ch = 16;
  c.n_levels = 2;
  c.ch_mult[0] = 1, c.ch_mult[1] = 2;
  c.n_res = 1;
  c.attn_levels = 0x1;
  c.head_ch = 8;
  c.text_dim = 24;
  c.groups = 8;
  return c;
}

static unet_config vc2_tiny(void) {
  /* the fixture's VideoCrafter2 UNet: 16 × (1, 2, 2), 1 ResBlock a level, attention at ds 1
   * and 2, 8-channel heads, 24-wide context, 8 GroupNorm groups */
  unet_config c = unet_config_videocrafter2();
  c.model_ch = 16;
  c.n_levels = 3;
  c.ch_mult[0] = 1, c.ch_mult[1] = 2, c.ch_mult[2] = 2;
  c.n_res = 1;
  c.attn_levels = 0x3;
  c.head_ch = 8;
  c.text_dim = 24;
  c.groups = 8;
  return c;
}

static void unet_fixture(const char *fam, const unet_config *cfg, unet_family family,
                         const char *weights, const char *iofile) {
  unet u;
  CHECK(unet_create(&u, cfg) == TB_OK);
  nn_tensor_map m;
  CHECKF(unet_tensor_map(&u, family, &m) == TB_OK, "%s: %s", fam, err_get());
  int unused = -1;
  int rc = nn_params_load_map(&u.params, weights, &m, &unused);
  CHECKF(rc == TB_OK, "%s: %s", fam, err_get());
  if (rc != TB_OK) {
    nn_tensor_map_free(&m);
    unet_free(&u);
    return;
  }
  printf("%s: %lld parameters in %d tensors loaded, %d file tensors unused\n", fam,
         (long long)u.params.total, u.params.n, unused);
  safetensors_file *io = NULL;
  TB_CHECKF(safetensors_open(iofile, &io) == TB_OK, "%s", err_get());
  int64_t nx, nt, nc, nr;
  float *x = read_all(io, "in.x", &nx), *t = read_all(io, "in.t", &nt);
  float *ctx = read_all(io, "in.context", &nc), *r = read_all(io, "r.y", &nr);
  float *fps = safetensors_find(io, "in.fps") ? read_all(io, "in.fps", NULL) : NULL;
  const safetensors_entry *ex = safetensors_find(io, "in.x");
  int B = (int)ex->shape[0], T = (int)ex->shape[1], H = (int)ex->shape[3], W = (int)ex->shape[4];
  int L = (int)safetensors_find(io, "in.context")->shape[1];
  for (int be = 0; be < 2; be++) {
    ops_backend_set(be ? OPS_CPU_FAST : OPS_CPU_REF);
    nn_ctx *c = nn_ctx_new();
    nn_params_zero_grad(&u.params);
    nn_var xv = nn_input(c, x, nx, 1);
    nn_var cv = nn_input(c, ctx, nc, 0);
    unet_input in = {.B = B, .T = T, .H = H, .W = W, .t = t, .context = cv, .L = L, .fps = fps};
    nn_var y = unet_forward(&u, c, xv, &in);
    CHECK(nn_numel(c, y) == nr);
    compare(fam, be, 0, "forward eps", nn_data(c, y), io, "out.y");
    nn_backward(c, y, r);
    compare(fam, be, 1, "d loss / d x", nn_grad(c, xv), io, "grad.x");
    for (size_t e = 0; e < safetensors_count(io); e++) {
      const char *nm = safetensors_entry_at(io, e)->name;
      if (strncmp(nm, "grad.param.", 11) != 0) continue;
      int idx = param_of(&u.params, &m, nm + 11);
      CHECKF(idx >= 0, "%s: no parameter for %s", fam, nm + 11);
      if (idx < 0) continue;
      char what[160];
      snprintf(what, sizeof what, "d/d %s", nm + 11);
      compare(fam, be, 2, what, nn_params_grad_ptr(&u.params, idx), io, nm);
    }
    nn_ctx_free(c);
  }
  ops_backend_set(OPS_CPU_FAST);
  free(x), free(t), free(ctx), free(r), free(fps);
  safetensors_close(io);
  nn_tensor_map_free(&m);
  unet_free(&u);
}

/* ---- CLIP text towers ----------------------------------------------------------------- */

static text_config clip_tiny(text_family fam) {
  /* the fixtures' towers: 12 positions, 32 wide, 3 blocks of 4 heads, MLP 64, 64 tokens */
  text_config c = {.max_len = 12, .dim = 32, .layers = 3, .heads = 4, .mlp_mult = 2, .causal = 1,
                   .attend_padding = 1, .pool = TEXT_POOL_EOT, .vocab_size = 64};
  if (fam == TEXT_FAMILY_HF_CLIP) c.act = TEXT_ACT_QUICK_GELU, c.proj = TEXT_PROJ_NONE;
  else c.act = TEXT_ACT_GELU, c.proj = TEXT_PROJ_NOBIAS, c.proj_dim = 20;
  return c;
}

typedef struct {
  text_tower t;
  nn_params p;
  nn_tensor_map m;
} tower;

static int tower_make(tower *w, text_family fam, const char *prefix) {
  text_config cfg = clip_tiny(fam);
  text_vocab none;
  TB_CHECK(text_vocab_init(&none, NULL, 0) == TB_OK);
  nn_params_init_empty(&w->p);
  int rc = text_tower_register(&w->t, &w->p, "", &cfg, &none);
  text_vocab_free(&none);
  TB_CHECKF(rc == TB_OK, "%s", err_get());
  nn_params_alloc(&w->p);
  return text_tensor_map(&w->t, &w->p, fam, prefix, &w->m);
}
static void tower_free(tower *w) {
  nn_tensor_map_free(&w->m);
  text_tower_free(&w->t);
  nn_params_free(&w->p);
}

/* HF: tokens = last_hidden_state, pooled = pooler_output (EOT); OpenCLIP: tokens = the
 * penultimate block + ln_final (VideoCrafter2's conditioning), pooled = encode_text (every
 * block, EOT, @ text_projection). loss = sum(tokens r1) + sum(pooled r2). */
static void text_fixture(const char *fam, text_family family, const char *prefix,
                         const char *weights, const char *iofile) {
  tower w;
  CHECKF(tower_make(&w, family, prefix) == TB_OK, "%s: %s", fam, err_get());
  int rc = nn_params_load_map(&w.p, weights, &w.m, NULL);
  CHECKF(rc == TB_OK, "%s: %s", fam, err_get());
  if (rc != TB_OK) {
    tower_free(&w);
    return;
  }
  int hf = family == TEXT_FAMILY_HF_CLIP;
  safetensors_file *io = NULL;
  TB_CHECKF(safetensors_open(iofile, &io) == TB_OK, "%s", err_get());
  const safetensors_entry *ie = safetensors_find(io, "in.ids");
  int B = (int)ie->shape[0], L = (int)ie->shape[1];
  float *idf = read_all(io, "in.ids", NULL);
  int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)B * L);
  for (int i = 0; i < B * L; i++) ids[i] = (int32_t)idf[i];
  const char *tok_name = hf ? "out.tokens" : "out.penultimate";
  float *r1 = read_all(io, hf ? "r.tokens" : "r.penultimate", NULL), *r2 = read_all(io, "r.pooled", NULL);
  text_batch b;
  CHECK(text_batch_from_eot_ids(&w.t, ids, B, L, 63, &b) == TB_OK);
  for (int be = 0; be < 2; be++) {
    ops_backend_set(be ? OPS_CPU_FAST : OPS_CPU_REF);
    nn_ctx *c = nn_ctx_new();
    nn_params_zero_grad(&w.p);
    nn_var tok, pooled;
    if (hf) {
      tok = text_tower_forward(&w.t, &w.p, c, &b, 0, &pooled);
    } else {
      w.t.cfg.skip_layers = 1;
      tok = text_tower_forward(&w.t, &w.p, c, &b, 0, NULL);
      w.t.cfg.skip_layers = 0;
      text_tower_forward(&w.t, &w.p, c, &b, 0, &pooled);
    }
    compare(fam, be, 0, hf ? "forward tokens (last_hidden_state)" : "forward penultimate tokens",
            nn_data(c, tok), io, tok_name);
    compare(fam, be, 0, "forward pooled", nn_data(c, pooled), io, "out.pooled");
    nn_var ys[2] = {tok, pooled};
    const float *dys[2] = {r1, r2};
    nn_backward_many(c, 2, ys, dys);
    for (size_t e = 0; e < safetensors_count(io); e++) {
      const char *nm = safetensors_entry_at(io, e)->name;
      if (strncmp(nm, "grad.param.", 11) != 0) continue;
      int idx = param_of(&w.p, &w.m, nm + 11);
      CHECKF(idx >= 0, "%s: no parameter for %s", fam, nm + 11);
      if (idx < 0) continue;
      /* the token table's gradient is the input gradient of a text tower */
      int kind = strstr(nm, "token_embedding") ? 1 : 2;
      char what[160];
      snprintf(what, sizeof what, "d/d %s", nm + 11);
      const nn_param_info *in = &w.p.info[idx];
      float *g = nn_params_grad_ptr(&w.p, idx);
      float *gt = NULL;
      const safetensors_entry *ge = safetensors_find(io, nm);
      if (ge->ndim == 2 && in->ndim == 2 && ge->shape[0] == in->shape[1] && ge->shape[0] != ge->shape[1]) {
        /* OpenCLIP's projection is stored transposed */
        gt = xmalloc(sizeof(float) * (size_t)in->numel);
        for (int64_t i = 0; i < in->shape[0]; i++)
          for (int64_t j = 0; j < in->shape[1]; j++) gt[j * in->shape[0] + i] = g[i * in->shape[1] + j];
        g = gt;
      }
      if (ge->shape[0] != in->shape[0] && !gt) {
        /* q, k, v parts of a fused in_proj: gather the three parameters' gradients */
        gt = xmalloc(sizeof(float) * (size_t)ge->numel);
        int64_t off = 0;
        for (int k = 0; k < w.m.n; k++)
          if (strcmp(w.m.from[k], nm + 11) == 0) {
            int pi = nn_params_find(&w.p, w.m.to[k]);
            int64_t n = w.p.info[pi].numel;
            memcpy(gt + w.m.row0[k] * (n / w.p.info[pi].shape[0]), nn_params_grad_ptr(&w.p, pi),
                   sizeof(float) * (size_t)n);
            off += n;
          }
        CHECK(off == ge->numel);
        g = gt;
      }
      compare(fam, be, kind, what, g, io, nm);
      free(gt);
    }
    nn_ctx_free(c);
  }
  ops_backend_set(OPS_CPU_FAST);
  text_batch_free(&b);
  free(idf), free(ids), free(r1), free(r2);
  safetensors_close(io);
  tower_free(&w);
}

/* ---- the LDM VAE (diffusers AutoencoderKL) -------------------------------------------------
 * The fixture's config.json becomes turbo's config; the encoder's posterior (mean, clamped
 * log-variance, after quant_conv) of in.x and the decoder's frames of in.z (post_quant_conv
 * first) must match, and so must the gradients of loss = sum(mean r.mean) + sum(logvar r.logvar)
 * + sum(decoded r.decoded) w.r.t. x, z and the chosen parameters. */
static int vae_fixture_config(vae_config *cfg) {
  char *txt;
  size_t len;
  if (fs_read_all(FIX "diffusers_vae_config.json", &txt, &len) != TB_OK) return TB_ERR;
  int rc = vae_config_from_diffusers(txt, cfg);
  free(txt);
  return rc;
}

static void vae_fixture(const char *fam, const char *weights, const char *iofile) {
  vae_config cfg;
  CHECKF(vae_fixture_config(&cfg) == TB_OK, "%s: %s", fam, err_get());
  CHECKF(cfg.ch == 16 && cfg.n_levels == 3 && cfg.ch_mult[2] == 2 && cfg.groups == 8 &&
             fabsf(cfg.scale - 0.18215f) < 1e-7f,
         "%s: config read as ch %d, levels %d, groups %d, scale %g", fam, cfg.ch, cfg.n_levels,
         cfg.groups, (double)cfg.scale);
  vae v;
  CHECK(vae_create(&v, &cfg) == TB_OK);
  nn_tensor_map m;
  CHECKF(vae_tensor_map(&v, VAE_FAMILY_DIFFUSERS, &m) == TB_OK, "%s: %s", fam, err_get());
  int unused = -1;
  int rc = nn_params_load_map(&v.params, weights, &m, &unused);
  CHECKF(rc == TB_OK, "%s: %s", fam, err_get());
  if (rc != TB_OK) {
    nn_tensor_map_free(&m);
    vae_free(&v);
    return;
  }
  CHECKF(unused == 0, "%s: %d checkpoint tensors unused", fam, unused);
  printf("%s: %lld parameters in %d tensors loaded, %d file tensors unused\n", fam,
         (long long)v.params.total, v.params.n, unused);
  safetensors_file *io = NULL;
  TB_CHECKF(safetensors_open(iofile, &io) == TB_OK, "%s", err_get());
  int64_t nx, nz;
  float *x = read_all(io, "in.x", &nx), *z = read_all(io, "in.z", &nz);
  float *r1 = read_all(io, "r.mean", NULL), *r2 = read_all(io, "r.logvar", NULL);
  float *r3 = read_all(io, "r.decoded", NULL);
  const safetensors_entry *ex = safetensors_find(io, "in.x"), *ez = safetensors_find(io, "in.z");
  int N = (int)ex->shape[0], H = (int)ex->shape[2], W = (int)ex->shape[3];
  int h = (int)ez->shape[2], w = (int)ez->shape[3];
  for (int be = 0; be < 2; be++) {
    ops_backend_set(be ? OPS_CPU_FAST : OPS_CPU_REF);
    nn_ctx *c = nn_ctx_new();
    nn_params_zero_grad(&v.params);
    nn_var xv = nn_input(c, x, nx, 1), zv = nn_input(c, z, nz, 1), mean, logvar;
    vae_encode(&v, c, xv, N, H, W, &mean, &logvar);
    nn_var y = vae_decode(&v, c, zv, N, h, w);
    compare(fam, be, 0, "posterior mean", nn_data(c, mean), io, "out.mean");
    compare(fam, be, 0, "posterior logvar", nn_data(c, logvar), io, "out.logvar");
    compare(fam, be, 0, "decoded", nn_data(c, y), io, "out.decoded");
    nn_var ys[3] = {mean, logvar, y};
    const float *dys[3] = {r1, r2, r3};
    nn_backward_many(c, 3, ys, dys);
    compare(fam, be, 1, "d loss / d x", nn_grad(c, xv), io, "grad.x");
    compare(fam, be, 1, "d loss / d z", nn_grad(c, zv), io, "grad.z");
    for (size_t e = 0; e < safetensors_count(io); e++) {
      const char *nm = safetensors_entry_at(io, e)->name;
      if (strncmp(nm, "grad.param.", 11) != 0) continue;
      int idx = param_of(&v.params, &m, nm + 11);
      CHECKF(idx >= 0, "%s: no parameter for %s", fam, nm + 11);
      if (idx < 0) continue;
      char what[160];
      snprintf(what, sizeof what, "d/d %s", nm + 11);
      compare(fam, be, 2, what, nn_params_grad_ptr(&v.params, idx), io, nm);
    }
    nn_ctx_free(c);
  }
  ops_backend_set(OPS_CPU_FAST);
  free(x), free(z), free(r1), free(r2), free(r3);
  safetensors_close(io);
  nn_tensor_map_free(&m);
  vae_free(&v);
}

static int load_vae(const char *path, void *ctx) {
  (void)ctx;
  vae_config cfg;
  TB_CHECK(vae_fixture_config(&cfg) == TB_OK);
  vae v;
  TB_CHECK(vae_create(&v, &cfg) == TB_OK);
  nn_tensor_map m;
  TB_CHECK(vae_tensor_map(&v, VAE_FAMILY_DIFFUSERS, &m) == TB_OK);
  int rc = nn_params_load_map(&v.params, path, &m, NULL);
  nn_tensor_map_free(&m);
  vae_free(&v);
  return rc;
}

/* ---- broken checkpoints ---------------------------------------------------------------- */

/* Rewrites `src` into dst with tensor `victim` renamed (mode 0), given another shape (1), or
 * the file cut short in the middle of the victim's bytes (2). */
static void break_file(const char *src, const char *dst, const char *victim, int mode) {
  safetensors_file *f = NULL;
  TB_CHECKF(safetensors_open(src, &f) == TB_OK, "%s", err_get());
  if (mode == 2) {
    const safetensors_entry *v = safetensors_find(f, victim);
    TB_CHECK(v != NULL);
    size_t cut = (size_t)(safetensors_data_offset(f) + v->begin + (v->end - v->begin) / 2);
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    TB_CHECK(in && out);
    char *buf = xmalloc(cut);
    TB_CHECK(fread(buf, 1, cut, in) == cut && fwrite(buf, 1, cut, out) == cut);
    free(buf);
    fclose(in), fclose(out);
    safetensors_close(f);
    return;
  }
  safetensors_writer *w = safetensors_writer_new();
  for (size_t e = 0; e < safetensors_count(f); e++) {
    const safetensors_entry *en = safetensors_entry_at(f, e);
    tensor t = en->view;
    char name[256];
    snprintf(name, sizeof name, "%s", en->name);
    if (strcmp(en->name, victim) == 0) {
      if (mode == 0) snprintf(name, sizeof name, "%s_renamed", en->name);
      else { /* the same bytes seen as one flat dimension */
        t.ndim = 1;
        t.shape[0] = en->numel;
      }
    }
    TB_CHECK(safetensors_writer_add(w, name, &t) == TB_OK);
  }
  TB_CHECK(safetensors_writer_save(w, dst) == TB_OK);
  safetensors_writer_free(w);
  safetensors_close(f);
}

typedef int (*load_fn)(const char *path, void *ctx);

static void broken_files(const char *fam, const char *weights, const char *victim, load_fn load,
                         void *ctx) {
  static const char *const what[3] = {"renamed tensor", "wrong shape", "truncated file"};
  for (int mode = 0; mode < 3; mode++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s-broken%d.safetensors", test_outdir(), fam, mode);
    break_file(weights, path, victim, mode);
    int rc = load(path, ctx);
    const char *msg = rc == TB_OK ? "(loaded)" : err_get();
    printf("  %-16s %-15s refused: %s\n", fam, what[mode], msg);
    CHECKF(rc != TB_OK, "%s: a checkpoint with a %s loaded", fam, what[mode]);
    CHECKF(rc != TB_OK && strstr(msg, victim) != NULL, "%s: the %s message does not name %s: %s",
           fam, what[mode], victim, msg);
  }
}

typedef struct {
  unet_config cfg;
  unet_family fam;
} unet_loader;

static int load_unet(const char *path, void *ctx) {
  unet_loader *l = ctx;
  unet u;
  TB_CHECK(unet_create(&u, &l->cfg) == TB_OK);
  nn_tensor_map m;
  TB_CHECK(unet_tensor_map(&u, l->fam, &m) == TB_OK);
  int rc = nn_params_load_map(&u.params, path, &m, NULL);
  nn_tensor_map_free(&m);
  unet_free(&u);
  return rc;
}

typedef struct {
  text_family fam;
  const char *prefix;
} text_loader;

static int load_text(const char *path, void *ctx) {
  text_loader *l = ctx;
  tower w;
  TB_CHECK(tower_make(&w, l->fam, l->prefix) == TB_OK);
  int rc = nn_params_load_map(&w.p, path, &w.m, NULL);
  tower_free(&w);
  return rc;
}

int main(void) {
  test_begin("test_real_models");
  ops_set_num_threads(2);
  unet_config dc = diffusers_tiny(), vc = vc2_tiny();
  unet_fixture("diffusers-unet3d", &dc, UNET_FAMILY_DIFFUSERS, FIX "diffusers_unet3d.safetensors",
               FIX "diffusers_unet3d-io.safetensors");
  unet_fixture("vc2-unet", &vc, UNET_FAMILY_VC2, FIX "vc2_unet.safetensors",
               FIX "vc2_unet-io.safetensors");
  text_fixture("hf-clip-text", TEXT_FAMILY_HF_CLIP, "text_model.", FIX "hf_clip_text.safetensors",
               FIX "hf_clip_text-io.safetensors");
  text_fixture("open-clip-text", TEXT_FAMILY_OPEN_CLIP, "cond_stage_model.model.",
               FIX "open_clip_text.safetensors", FIX "open_clip_text-io.safetensors");

  vae_fixture("diffusers-vae", FIX "diffusers_vae.safetensors", FIX "diffusers_vae-io.safetensors");

  printf("broken checkpoints:\n");
  broken_files("diffusers-vae", FIX "diffusers_vae.safetensors",
               "decoder.up_blocks.1.resnets.0.conv1.weight", load_vae, NULL);
  unet_loader ld = {dc, UNET_FAMILY_DIFFUSERS}, lv = {vc, UNET_FAMILY_VC2};
  broken_files("diffusers-unet3d", FIX "diffusers_unet3d.safetensors",
               "down_blocks.0.temp_convs.0.conv3.3.weight", load_unet, &ld);
  broken_files("vc2-unet", FIX "vc2_unet.safetensors",
               "model.diffusion_model.input_blocks.1.0.temopral_conv.conv2.3.weight", load_unet, &lv);
  text_loader th = {TEXT_FAMILY_HF_CLIP, "text_model."}, to = {TEXT_FAMILY_OPEN_CLIP, "cond_stage_model.model."};
  broken_files("hf-clip-text", FIX "hf_clip_text.safetensors",
               "text_model.encoder.layers.1.self_attn.v_proj.weight", load_text, &th);
  broken_files("open-clip-text", FIX "open_clip_text.safetensors",
               "cond_stage_model.model.transformer.resblocks.1.attn.in_proj_weight", load_text, &to);

  printf("worst normalised error: ref fwd %.2e, dx %.2e, dparams %.2e; fast fwd %.2e, dx %.2e, "
         "dparams %.2e\n", g_worst[0][0], g_worst[0][1], g_worst[0][2], g_worst[1][0],
         g_worst[1][1], g_worst[1][2]);
  return test_finish();
}

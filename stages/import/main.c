/* stages/import/main.c — bin/import: a real checkpoint in, turbo checkpoints and catalogue
 * model rows out.
 *
 *   bin/import --family vc2 --from FILE.safetensors [--name NAME] [--tokenizer DIR]
 *       VideoCrafter2: model.ckpt's state_dict saved as safetensors (the UNet under
 *       "model.diffusion_model.", the OpenCLIP-H text tower under "cond_stage_model.model.").
 *       The UNet's layout is read from the tensor shapes; the text tower when present.
 *   bin/import --family diffusers --from DIR [--name NAME]
 *       ModelScope T2V in diffusers' layout: DIR/unet/{config.json,
 *       diffusion_pytorch_model.safetensors}, and when present DIR/text_encoder/{config.json,
 *       model.safetensors} with DIR/tokenizer/{vocab.json, merges.txt}.
 *
 * Writes WORKSPACE/models/NAME-unet.safetensors (every UNet parameter under turbo's names, F32,
 * metadata "unet.config" = the configuration as JSON) and, with a text tower,
 * WORKSPACE/models/NAME-text.safetensors ("text.*" tensors, metadata "text.config" and the
 * tokenizer's "text.bpe.vocab" / "text.bpe.merges"), each re-read and compared value for value
 * after writing; then catalogue models NAME-unet (family "unet") and NAME-text (family
 * "text-encoder") with a checkpoint at step 0 each.
 * Refuses (exit 1, the message naming the file and tensor) a checkpoint with a missing, renamed
 * or mis-shaped tensor, or one that does not parse. Exit codes: 0 done, 1 failed, 2 bad usage.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/catalogue.h"
#include "common/fsutil.h"
#include "common/json.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "kernels/nn.h"
#include "kernels/nn/text.h"

#define VC2_UNET "model.diffusion_model."
#define VC2_TEXT "cond_stage_model.model."

static const safetensors_entry *find(safetensors_file *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const safetensors_entry *find(safetensors_file *f, const char *fmt, ...) {
  char name[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  return safetensors_find(f, name);
}

/* VideoCrafter2's UNet layout from the shapes of its state dict. */
static int vc2_config(safetensors_file *f, const char *path, int groups, unet_config *c) {
  *c = unet_config_videocrafter2();
  const safetensors_entry *e = find(f, VC2_UNET "input_blocks.0.0.weight");
  if (!e || e->ndim != 4)
    return err_set("%s: tensor " VC2_UNET "input_blocks.0.0.weight is missing: not a "
                   "VideoCrafter2 checkpoint", path);
  c->model_ch = (int)e->shape[0];
  c->in_ch = (int)e->shape[1];
  if ((e = find(f, VC2_UNET "out.2.weight"))) c->out_ch = (int)e->shape[0];
  int level = 0, nres = 0, attn = 0, prev_res = 0;
  c->n_res = 0;
  for (int i = 1; i < 64; i++) {
    if (find(f, VC2_UNET "input_blocks.%d.0.op.weight", i)) {
      if (!c->n_res) c->n_res = nres;
      if (nres != c->n_res) return err_set("%s: %d ResBlocks at level %d, %d at level 0", path, nres, level, c->n_res);
      level++, nres = 0;
      continue;
    }
    e = find(f, VC2_UNET "input_blocks.%d.0.in_layers.2.weight", i);
    if (!e) break;
    if (level >= UNET_MAX_LEVELS) return err_set("%s: more than %d levels", path, UNET_MAX_LEVELS);
    c->ch_mult[level] = (int)(e->shape[0] / c->model_ch);
    if (find(f, VC2_UNET "input_blocks.%d.1.norm.weight", i)) attn |= 1 << level;
    nres++, prev_res = i;
  }
  if (!prev_res) return err_set("%s: no ResBlocks under " VC2_UNET "input_blocks", path);
  if (!c->n_res) c->n_res = nres;
  c->n_levels = level + 1;
  c->attn_levels = attn;
  e = find(f, VC2_UNET "init_attn.0.proj_in.weight");
  if (!e) return err_set("%s: tensor " VC2_UNET "init_attn.0.proj_in.weight is missing", path);
  c->head_ch = (int)(e->shape[0] / c->init_heads); /* init_attn: 8 heads of the head width */
  for (int i = 1; i < 64; i++)
    if ((e = find(f, VC2_UNET "input_blocks.%d.1.transformer_blocks.0.attn2.to_k.weight", i))) {
      c->text_dim = (int)e->shape[1];
      break;
    }
  c->fps_embed = find(f, VC2_UNET "fps_embedding.0.weight") != NULL;
  c->groups = groups;
  return TB_OK;
}

/* diffusers' unet/config.json (UNet3DConditionModel) as a unet_config. */
static int diffusers_config(const char *path, int *groups_out, unet_config *c) {
  char *txt = NULL;
  size_t n = 0;
  if (fs_read_all(path, &txt, &n) != TB_OK) return TB_ERR;
  json_value *v = json_parse(txt, n, NULL);
  free(txt);
  if (!v) return err_wrap("%s: ", path);
  *c = unet_config_modelscope();
  int rc = TB_OK;
  const json_value *boc = json_get(v, "block_out_channels"), *down = json_get(v, "down_block_types");
  int64_t x;
  c->attn_levels = 0;
  if (!boc || boc->type != JSON_ARRAY || boc->count < 1 || boc->count > UNET_MAX_LEVELS || !down ||
      down->type != JSON_ARRAY || down->count != boc->count)
    rc = err_set("%s: block_out_channels / down_block_types missing or of different lengths", path);
  for (size_t i = 0; rc == TB_OK && i < boc->count; i++) {
    int64_t ch = boc->items[i].integer, c0 = boc->items[0].integer;
    if (!boc->items[i].is_int || ch < 1 || ch % c0) {
      rc = err_set("%s: block_out_channels[%zu] = %lld is not a multiple of %lld", path, i,
                   (long long)ch, (long long)c0);
      break;
    }
    c->ch_mult[i] = (int)(ch / c0);
    const char *t = down->items[i].type == JSON_STRING ? down->items[i].string : "";
    if (strcmp(t, "CrossAttnDownBlock3D") == 0) c->attn_levels |= 1 << i;
    else if (strcmp(t, "DownBlock3D") != 0) rc = err_set("%s: down block type \"%s\" unknown", path, t);
  }
  if (rc == TB_OK) {
    c->model_ch = (int)boc->items[0].integer;
    c->n_levels = (int)boc->count;
  }
  struct { const char *key; int *dst; } ints[] = {
      {"layers_per_block", &c->n_res}, {"in_channels", &c->in_ch}, {"out_channels", &c->out_ch},
      {"attention_head_dim", &c->head_ch}, {"cross_attention_dim", &c->text_dim},
      {"norm_num_groups", &c->groups}};
  for (size_t i = 0; rc == TB_OK && i < sizeof ints / sizeof ints[0]; i++) {
    if (json_get_int64(v, ints[i].key, &x) != TB_OK || x < 1 || x > 1 << 16)
      rc = err_set("%s: \"%s\" must be a positive integer (a list of per-block values is not "
                   "supported)", path, ints[i].key);
    else *ints[i].dst = (int)x;
  }
  double eps = 1e-5;
  if (rc == TB_OK && json_get(v, "norm_eps") && (json_get_number(v, "norm_eps", &eps) != TB_OK || fabs(eps - 1e-5) > 1e-9))
    rc = err_set("%s: norm_eps %g (turbo's UNet uses 1e-5)", path, eps);
  *groups_out = c->groups;
  json_free(v);
  return rc;
}

/* Saves p, re-reads the file and compares every value. */
static int save_checked(const nn_params *p, const char *path, const char *meta_key, const char *meta,
                        const char *k2, const char *v2, const char *k3, const char *v3) {
  safetensors_writer *w = safetensors_writer_new();
  int rc = TB_OK;
  for (int i = 0; i < p->n && rc == TB_OK; i++) {
    tensor t = tensor_view(DTYPE_F32, p->info[i].ndim, p->info[i].shape, p->data + p->info[i].offset);
    rc = safetensors_writer_add_ref(w, p->info[i].name, &t);
  }
  if (rc == TB_OK) rc = safetensors_writer_set_meta(w, "format", "turbo.nn_params.v1");
  if (rc == TB_OK) rc = safetensors_writer_set_meta(w, meta_key, meta);
  if (rc == TB_OK && k2) rc = safetensors_writer_set_meta(w, k2, v2);
  if (rc == TB_OK && k3) rc = safetensors_writer_set_meta(w, k3, v3);
  if (rc == TB_OK) rc = safetensors_writer_save(w, path);
  safetensors_writer_free(w);
  if (rc != TB_OK) return err_wrap("%s: ", path);
  safetensors_file *f = NULL;
  if (safetensors_open(path, &f) != TB_OK) return TB_ERR;
  for (int i = 0; i < p->n && rc == TB_OK; i++) {
    const safetensors_entry *e = safetensors_find(f, p->info[i].name);
    if (!e || e->numel != p->info[i].numel ||
        memcmp(e->data, p->data + p->info[i].offset, (size_t)e->numel * sizeof(float)) != 0)
      rc = err_set("%s: tensor %s reads back different", path, p->info[i].name);
  }
  safetensors_close(f);
  return rc;
}

static char *unet_config_json(const unet_config *c) {
  json_buf b = {0};
  json_buf_printf(&b, "{\"in_ch\":%d,\"out_ch\":%d,\"model_ch\":%d,\"n_levels\":%d,\"ch_mult\":[",
                  c->in_ch, c->out_ch, c->model_ch, c->n_levels);
  for (int l = 0; l < c->n_levels; l++) json_buf_printf(&b, "%s%d", l ? "," : "", c->ch_mult[l]);
  json_buf_printf(&b, "],\"n_res\":%d,\"attn_levels\":%d,\"head_ch\":%d,\"text_dim\":%d,"
                      "\"groups\":%d,\"temporal_conv\":%d,\"temporal_conv_layers\":%d,"
                      "\"temporal_attn\":%d,\"init_temporal\":%d,\"init_heads\":%d,\"fps_embed\":%d}",
                  c->n_res, c->attn_levels, c->head_ch, c->text_dim, c->groups, c->temporal_conv,
                  c->temporal_conv_layers, c->temporal_attn, c->init_temporal, c->init_heads,
                  c->fps_embed);
  return b.data;
}

static int record(catalogue *cat, const char *ws, const char *name, const char *family,
                  const char *config, const char *file) {
  int64_t id = 0;
  char rel[512];
  snprintf(rel, sizeof rel, "models/%s", file);
  (void)ws;
  if (catalogue_model_upsert(cat, name, family, config, 0, &id) != TB_OK) return TB_ERR;
  return catalogue_checkpoint_insert(cat, id, 0, rel, NULL, 0, NULL);
}

/* The text tower of a checkpoint: registered, loaded through its family's map, saved. */
static int import_text(const char *weights, text_family fam, const char *prefix, text_config cfg,
                       const char *tok_dir, const char *out, char **cfg_json) {
  text_vocab none;
  text_vocab_init(&none, NULL, 0);
  text_tower t;
  nn_params p;
  nn_params_init_empty(&p);
  int rc = text_tower_register(&t, &p, "text.", &cfg, &none);
  text_vocab_free(&none);
  if (rc != TB_OK) return TB_ERR;
  nn_params_alloc(&p);
  nn_tensor_map m;
  rc = text_tensor_map(&t, &p, fam, prefix, &m);
  if (rc == TB_OK) rc = nn_params_load_map(&p, weights, &m, NULL);
  char *voc = NULL, *mer = NULL;
  size_t n;
  char vp[4096], mp[4096];
  if (rc == TB_OK && tok_dir) {
    fs_join(vp, sizeof vp, tok_dir, "vocab.json");
    fs_join(mp, sizeof mp, tok_dir, "merges.txt");
    if (fs_read_all(vp, &voc, &n) != TB_OK || fs_read_all(mp, &mer, &n) != TB_OK) rc = TB_ERR;
  }
  char cj[512];
  text_config_format(&cfg, cj, sizeof cj);
  if (rc == TB_OK)
    rc = save_checked(&p, out, "text.config", cj, voc ? "text.bpe.vocab" : NULL, voc,
                      mer ? "text.bpe.merges" : NULL, mer);
  if (rc == TB_OK) *cfg_json = xstrdup(cj);
  free(voc), free(mer);
  if (m.n) nn_tensor_map_free(&m);
  text_tower_free(&t);
  nn_params_free(&p);
  return rc;
}

/* transformers' text_encoder/config.json as a text_config (CLIP's text transformer). */
static int hf_text_config(const char *path, text_config *c) {
  char *txt = NULL;
  size_t n = 0;
  if (fs_read_all(path, &txt, &n) != TB_OK) return TB_ERR;
  json_value *v = json_parse(txt, n, NULL);
  free(txt);
  if (!v) return err_wrap("%s: ", path);
  memset(c, 0, sizeof *c);
  int64_t d = 0, ff = 0, L = 0, h = 0, P = 0, V = 0;
  const char *act = "quick_gelu";
  int rc = TB_OK;
  if (json_get_int64(v, "hidden_size", &d) != TB_OK || json_get_int64(v, "intermediate_size", &ff) != TB_OK ||
      json_get_int64(v, "num_hidden_layers", &L) != TB_OK || json_get_int64(v, "num_attention_heads", &h) != TB_OK ||
      json_get_int64(v, "max_position_embeddings", &P) != TB_OK || json_get_int64(v, "vocab_size", &V) != TB_OK)
    rc = err_set("%s: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, "
                 "max_position_embeddings and vocab_size are required", path);
  json_get_string(v, "hidden_act", &act);
  if (rc == TB_OK && (d < 1 || ff % d))
    rc = err_set("%s: intermediate_size %lld is not a multiple of hidden_size %lld", path, (long long)ff, (long long)d);
  if (rc == TB_OK && strcmp(act, "quick_gelu") && strcmp(act, "gelu"))
    rc = err_set("%s: hidden_act \"%s\" (quick_gelu or gelu)", path, act);
  if (rc == TB_OK) {
    *c = (text_config){.max_len = (int)P, .dim = (int)d, .layers = (int)L, .heads = (int)h,
                       .mlp_mult = (int)(ff / d), .causal = 1, .attend_padding = 1,
                       .act = strcmp(act, "gelu") ? TEXT_ACT_QUICK_GELU : TEXT_ACT_GELU,
                       .pool = TEXT_POOL_EOT, .proj = TEXT_PROJ_NONE, .vocab_size = (int)V};
    rc = text_config_check(c);
  }
  json_free(v);
  return rc;
}

int main(int argc, char **argv) {
  log_init("import");
  char *family = NULL, *from = NULL, *name = NULL, *workspace = NULL, *tok = NULL;
  int groups = 32;
  arg_opt opts[] = {
      {"family", ARG_STR, &family, "F", "vc2 (a VideoCrafter2 state dict) or diffusers (a ModelScope T2V folder)"},
      {"from", ARG_STR, &from, "PATH", "the checkpoint file (vc2) or folder (diffusers)"},
      {"name", ARG_STR, &name, "NAME", "catalogue name prefix (default: the family)"},
      {"tokenizer", ARG_STR, &tok, "DIR", "vc2: a folder with CLIP's vocab.json and merges.txt for the text tower"},
      {"groups", ARG_INT, &groups, "N", "vc2: GroupNorm groups (32, as VideoCrafter2 has)"},
      {"workspace", ARG_STR, &workspace, "DIR", "workspace (default $TURBO_WORKSPACE or runs/default)"},
      {0}};
  int pos = args_parse(argc, argv, "import --family F --from PATH [options]",
                       "Imports a real checkpoint: turbo checkpoints and catalogue models out.", opts);
  if (pos < 0) return 2;
  if (!family || !from || (strcmp(family, "vc2") && strcmp(family, "diffusers"))) {
    fprintf(stderr, "import: --family vc2|diffusers and --from PATH are required\n");
    return 2;
  }
  if (!name) name = family;
  const char *ws = catalogue_workspace_dir(workspace);
  char mdir[4096], unet_out[4096], text_out[4096], fname[600];
  fs_join(mdir, sizeof mdir, ws, "models");
  if (fs_mkdir_p(mdir) != TB_OK) {
    log_error("%s", err_get());
    return 1;
  }
  int vc2 = strcmp(family, "vc2") == 0;
  char weights[4096], cfgpath[4096], tdir[4096], tweights[4096];
  unet_config cfg;
  int rc;
  if (vc2) {
    snprintf(weights, sizeof weights, "%s", from);
    safetensors_file *f = NULL;
    rc = safetensors_open(weights, &f);
    if (rc == TB_OK) rc = vc2_config(f, weights, groups, &cfg);
    safetensors_close(f);
  } else {
    snprintf(cfgpath, sizeof cfgpath, "%s/unet/config.json", from);
    snprintf(weights, sizeof weights, "%s/unet/diffusion_pytorch_model.safetensors", from);
    rc = diffusers_config(cfgpath, &groups, &cfg);
  }
  unet u;
  memset(&u, 0, sizeof u);
  if (rc == TB_OK) rc = unet_create(&u, &cfg);
  nn_tensor_map m = {0};
  if (rc == TB_OK) rc = unet_tensor_map(&u, vc2 ? UNET_FAMILY_VC2 : UNET_FAMILY_DIFFUSERS, &m);
  if (rc == TB_OK) rc = nn_params_load_map(&u.params, weights, &m, NULL);
  char *cj = rc == TB_OK ? unet_config_json(&cfg) : NULL;
  snprintf(fname, sizeof fname, "%s-unet.safetensors", name);
  fs_join(unet_out, sizeof unet_out, mdir, fname);
  if (rc == TB_OK) rc = save_checked(&u.params, unet_out, "unet.config", cj, NULL, NULL, NULL, NULL);
  if (rc != TB_OK) {
    log_error("%s", err_get());
    free(cj);
    nn_tensor_map_free(&m);
    unet_free(&u);
    return 1;
  }
  log_info("UNet: %lld parameters (%d tensors) -> %s", (long long)u.params.total, u.params.n, unet_out);
  nn_tensor_map_free(&m);
  unet_free(&u);

  /* the text tower, when the checkpoint has one */
  char *tj = NULL;
  int have_text = 0;
  snprintf(fname, sizeof fname, "%s-text.safetensors", name);
  fs_join(text_out, sizeof text_out, mdir, fname);
  if (vc2) {
    safetensors_file *f = NULL;
    rc = safetensors_open(weights, &f);
    const safetensors_entry *te = rc == TB_OK ? find(f, VC2_TEXT "token_embedding.weight") : NULL;
    const safetensors_entry *pe = te ? find(f, VC2_TEXT "positional_embedding") : NULL;
    const safetensors_entry *pr = te ? find(f, VC2_TEXT "text_projection") : NULL;
    text_config tc = text_config_openclip_h();
    if (te && pe && pr) {
      int layers = 0;
      while (find(f, VC2_TEXT "transformer.resblocks.%d.ln_1.weight", layers)) layers++;
      tc.vocab_size = (int)te->shape[0], tc.dim = (int)te->shape[1], tc.max_len = (int)pe->shape[0];
      tc.layers = layers, tc.heads = tc.dim / 64 > 0 ? tc.dim / 64 : 1, tc.proj_dim = (int)pr->shape[1];
      const safetensors_entry *fc = find(f, VC2_TEXT "transformer.resblocks.0.mlp.c_fc.weight");
      if (fc) tc.mlp_mult = (int)(fc->shape[0] / tc.dim);
      have_text = 1;
    }
    safetensors_close(f);
    if (have_text) rc = import_text(weights, TEXT_FAMILY_OPEN_CLIP, VC2_TEXT, tc, tok, text_out, &tj);
  } else {
    snprintf(cfgpath, sizeof cfgpath, "%s/text_encoder/config.json", from);
    snprintf(tweights, sizeof tweights, "%s/text_encoder/model.safetensors", from);
    snprintf(tdir, sizeof tdir, "%s/tokenizer", from);
    if (fs_exists(cfgpath)) {
      text_config tc;
      have_text = 1;
      rc = hf_text_config(cfgpath, &tc);
      if (rc == TB_OK)
        rc = import_text(tweights, TEXT_FAMILY_HF_CLIP, "text_model.", tc,
                         fs_exists(tdir) ? tdir : NULL, text_out, &tj);
    }
  }
  if (rc != TB_OK) {
    log_error("%s", err_get());
    free(cj);
    return 1;
  }
  if (have_text) log_info("text encoder -> %s", text_out);

  catalogue *cat = catalogue_open_workspace(ws, 0);
  char mname[600];
  snprintf(mname, sizeof mname, "%s-unet", name);
  snprintf(fname, sizeof fname, "%s-unet.safetensors", name);
  rc = cat ? record(cat, ws, mname, "unet", cj, fname) : TB_ERR;
  if (rc == TB_OK && have_text) {
    snprintf(mname, sizeof mname, "%s-text", name);
    snprintf(fname, sizeof fname, "%s-text.safetensors", name);
    rc = record(cat, ws, mname, "text-encoder", tj, fname);
  }
  catalogue_close(cat);
  free(cj), free(tj);
  if (rc != TB_OK) {
    log_error("%s", err_get());
    return 1;
  }
  printf("imported %s: %s-unet%s\n", from, name, have_text ? " and the text encoder" : "");
  return 0;
}

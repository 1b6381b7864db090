/* kernels/nn/reward.c — see reward.h. */
#include "kernels/nn/reward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "common/tensor.h"
#include "kernels/device.h"

#define REWARD_FORMAT "turbo.reward.v1"

static const char *const KIND_NAMES[REWARD_KINDS] = {"clip", "quality", "video"};
/* the parameter prefix of each kind's frame tower */
static const char *const TOWER_PREFIX[REWARD_KINDS] = {"image.", "quality.", "video."};

const char *reward_kind_name(reward_kind k) {
  return k >= 0 && k < REWARD_KINDS ? KIND_NAMES[k] : "?";
}

int reward_kind_parse(const char *name, reward_kind *out) {
  for (int k = 0; k < REWARD_KINDS; k++)
    if (name && strcmp(name, KIND_NAMES[k]) == 0) {
      *out = (reward_kind)k;
      return TB_OK;
    }
  return err_set("unknown reward model '%s' (clip, quality or video)", name ? name : "");
}

/* ---- config ---------------------------------------------------------------------------------- */

reward_config reward_config_default(reward_kind k) {
  reward_config c;
  memset(&c, 0, sizeof c);
  c.kind = k;
  c.size = 64;
  c.levels = 4;
  static const int w[4] = {16, 32, 64, 128};
  memcpy(c.widths, w, sizeof w);
  c.text = text_config_default();
  c.text.layers = 1; /* the world's captions are short and regular: one block binds the words */
  c.text.mlp_mult = 2;
  c.embed = c.text.dim;
  if (k == REWARD_VIDEO) c.frames = 4, c.temporal_levels = 2;
  if (k == REWARD_QUALITY) c.hidden = 64, c.embed = 0, c.stem = 16;
  return c;
}

int reward_config_check(const reward_config *c) {
  if (c->kind < 0 || c->kind >= REWARD_KINDS) return err_set("reward config: bad kind %d", (int)c->kind);
  if (c->levels < 1 || c->levels > REWARD_MAX_LEVELS)
    return err_set("reward config: levels %d not in [1, %d]", c->levels, REWARD_MAX_LEVELS);
  if (c->size < 2 || c->size > 1024 || c->size % (1 << c->levels) != 0)
    return err_set("reward config: size %d must be a multiple of 2^levels = %d", c->size, 1 << c->levels);
  for (int l = 0; l < c->levels; l++)
    if (c->widths[l] < 1 || c->widths[l] > 4096) return err_set("reward config: width %d of level %d", c->widths[l], l);
  if (c->stem < 0 || c->stem > 4096) return err_set("reward config: stem width %d", c->stem);
  if (c->kind == REWARD_VIDEO) {
    if (c->frames < 1 || c->frames > 64) return err_set("reward config: video frames %d not in [1, 64]", c->frames);
    if (c->temporal_levels < 0 || c->temporal_levels > c->levels)
      return err_set("reward config: temporal_levels %d not in [0, levels]", c->temporal_levels);
  } else if (c->frames != 0 || c->temporal_levels != 0) {
    return err_set("reward config: frames and temporal_levels are for the video model");
  }
  if (c->kind == REWARD_QUALITY) {
    if (c->hidden < 1 || c->hidden > 4096) return err_set("reward config: quality hidden %d", c->hidden);
    return TB_OK;
  }
  if (text_config_check(&c->text) != TB_OK) return TB_ERR;
  if (c->embed != c->text.dim)
    return err_set("reward config: embed %d must equal the text width %d", c->embed, c->text.dim);
  return TB_OK;
}

char *reward_config_format(const reward_config *c, char *buf, size_t n) {
  char tb[256], wb[128] = "";
  size_t l = 0;
  for (int i = 0; i < c->levels; i++)
    l += (size_t)snprintf(wb + l, sizeof wb - l, "%s%d", i ? "," : "", c->widths[i]);
  snprintf(buf, n,
           "{\"kind\":\"%s\",\"size\":%d,\"frames\":%d,\"stem\":%d,\"levels\":%d,\"widths\":[%s],"
           "\"temporal_levels\":%d,\"hidden\":%d,\"embed\":%d,\"text\":%s}",
           reward_kind_name(c->kind), c->size, c->frames, c->stem, c->levels, wb, c->temporal_levels,
           c->hidden, c->embed, text_config_format(&c->text, tb, sizeof tb));
  return buf;
}

static int get_small_int(const json_value *v, const char *key, int *out) {
  if (v->type != JSON_NUMBER || !v->is_int || v->integer < 0 || v->integer > 1 << 20)
    return err_set("reward config: '%s' must be a small non-negative integer", key);
  *out = (int)v->integer;
  return TB_OK;
}

int reward_config_parse(reward_config *c, const char *json) {
  json_value *v = json_parse(json, strlen(json), NULL);
  if (!v) return err_wrap("reward config: ");
  int rc = TB_OK;
  const char *kind;
  if (v->type != JSON_OBJECT || json_get_string(v, "kind", &kind) != TB_OK) {
    rc = err_set("reward config: a JSON object with a \"kind\" is expected");
  } else {
    reward_kind k;
    rc = reward_kind_parse(kind, &k);
    if (rc == TB_OK) {
      *c = reward_config_default(k);
      c->stem = 0; /* a config without "stem" predates it: no stem */
    }
  }
  for (size_t i = 0; rc == TB_OK && i < v->count; i++) {
    const char *key = v->keys[i];
    const json_value *x = &v->items[i];
    if (strcmp(key, "kind") == 0) continue;
    if (strcmp(key, "size") == 0) rc = get_small_int(x, key, &c->size);
    else if (strcmp(key, "frames") == 0) rc = get_small_int(x, key, &c->frames);
    else if (strcmp(key, "levels") == 0) rc = get_small_int(x, key, &c->levels);
    else if (strcmp(key, "stem") == 0) rc = get_small_int(x, key, &c->stem);
    else if (strcmp(key, "temporal_levels") == 0) rc = get_small_int(x, key, &c->temporal_levels);
    else if (strcmp(key, "hidden") == 0) rc = get_small_int(x, key, &c->hidden);
    else if (strcmp(key, "embed") == 0) rc = get_small_int(x, key, &c->embed);
    else if (strcmp(key, "widths") == 0) {
      if (x->type != JSON_ARRAY || x->count > REWARD_MAX_LEVELS) {
        rc = err_set("reward config: 'widths' must be an array of at most %d", REWARD_MAX_LEVELS);
      } else {
        memset(c->widths, 0, sizeof c->widths);
        for (size_t j = 0; j < x->count && rc == TB_OK; j++) rc = get_small_int(&x->items[j], key, &c->widths[j]);
      }
    } else if (strcmp(key, "text") == 0) {
      json_buf b = {0};
      json_buf_put_value(&b, x);
      rc = text_config_parse(&c->text, b.data);
      json_buf_free(&b);
    } else {
      rc = err_set("reward config: unknown key '%s'", key);
    }
  }
  json_free(v);
  return rc == TB_OK ? reward_config_check(c) : rc;
}

/* ---- the model ------------------------------------------------------------------------------- */

/* Weights He-uniform, +-sqrt(6 / fan_in) (XAVIER's bound with no fan-out): the towers have no
 * normalisation, so each SiLU layer must keep its activations' scale. */
static reward_lin add_lin(nn_params *p, const char *prefix, const char *name, int ndim,
                          const int64_t *shape, int64_t fan_in) {
  char n[NN_NAME_MAX];
  reward_lin r;
  snprintf(n, sizeof n, "%s%s.weight", prefix, name);
  r.w = nn_params_add(p, n, ndim, shape, NN_INIT_XAVIER, fan_in, 0);
  snprintf(n, sizeof n, "%s%s.bias", prefix, name);
  r.b = nn_params_add(p, n, 1, shape, NN_INIT_ZERO, 0, 0);
  return r;
}

/* frozen = 1: the parameters get no gradient block at all (a served model). */
static int model_build(reward_model *m, const reward_config *cfg, const text_vocab *vocab,
                       int frozen) {
  memset(m, 0, sizeof *m);
  nn_params_init_empty(&m->params);
  if (reward_config_check(cfg) != TB_OK) return TB_ERR;
  m->cfg = *cfg;
  const char *pre = TOWER_PREFIX[cfg->kind];
  int64_t cin = 3, side = cfg->size;
  if (cfg->stem > 0) {
    int64_t sh[4] = {cfg->stem, 3, 3, 3};
    m->stem = add_lin(&m->params, pre, "stem", 4, sh, 27);
    if (cfg->kind == REWARD_VIDEO && cfg->temporal_levels > 0) {
      int64_t st[3] = {cfg->stem, cfg->stem, 3};
      m->tstem = add_lin(&m->params, pre, "tstem", 3, st, cfg->stem * 3);
    }
    cin = cfg->stem;
  }
  for (int l = 0; l < cfg->levels; l++) {
    char n[32];
    int64_t co = cfg->widths[l], sh[4] = {co, cin, 3, 3};
    snprintf(n, sizeof n, "conv%d", l);
    m->conv[l] = add_lin(&m->params, pre, n, 4, sh, cin * 9);
    side /= 2;
    if (l < cfg->temporal_levels) {
      int64_t st[3] = {co, co, 3};
      snprintf(n, sizeof n, "tconv%d", l);
      m->tconv[l] = add_lin(&m->params, pre, n, 3, st, co * 3);
    }
    cin = co;
  }
  /* the head reads each frame's map flattened and its spatial mean (see head_input) */
  int64_t flat = (cin * side * side + cin) * (cfg->kind == REWARD_VIDEO ? cfg->frames : 1);
  int64_t out = cfg->kind == REWARD_QUALITY ? cfg->hidden : cfg->embed, sh[2] = {out, flat};
  m->head = add_lin(&m->params, pre, "head", 2, sh, flat);
  if (cfg->kind == REWARD_QUALITY) {
    int64_t s2[2] = {1, cfg->hidden};
    m->head2 = add_lin(&m->params, pre, "head2", 2, s2, cfg->hidden);
  } else {
    if (!vocab) return err_set("reward model %s: a text vocabulary is needed", reward_kind_name(cfg->kind));
    if (text_tower_register(&m->text, &m->params, "text.", &cfg->text, vocab) != TB_OK) return TB_ERR;
    m->has_text = 1;
  }
  if (frozen) nn_params_alloc_frozen(&m->params);
  else nn_params_alloc(&m->params);
  return TB_OK;
}

int reward_model_create(reward_model *m, const reward_config *cfg, const text_vocab *vocab) {
  return model_build(m, cfg, vocab, 0);
}

void reward_model_init(reward_model *m, uint64_t seed) { nn_params_init(&m->params, seed, 1); }

void reward_model_free(reward_model *m) {
  if (!m) return;
  if (m->has_text) text_tower_free(&m->text);
  nn_params_free(&m->params);
  memset(m, 0, sizeof *m);
}

int reward_model_meta(const reward_model *m, const char **keys, char **values) {
  char buf[1024];
  int n = 0;
  keys[n] = "reward.kind", values[n++] = xstrdup(reward_kind_name(m->cfg.kind));
  keys[n] = "reward.config", values[n++] = xstrdup(reward_config_format(&m->cfg, buf, sizeof buf));
  if (m->has_text) {
    keys[n] = "text.config", values[n++] = xstrdup(text_config_format(&m->cfg.text, buf, sizeof buf));
    keys[n] = "text.vocab", values[n++] = text_vocab_format(&m->text.vocab);
  }
  return n;
}

int reward_model_save(const reward_model *m, const char *path, int nmeta,
                      const char *const *meta) {
  const nn_params *p = &m->params;
  float *host = xmalloc(sizeof(float) * (size_t)(p->total ? p->total : 1));
  device_memcpy_d2h(host, p->data, sizeof(float) * (size_t)p->total);
  safetensors_writer *w = safetensors_writer_new();
  int rc = TB_OK;
  for (int i = 0; i < p->n && rc == TB_OK; i++) {
    tensor t = tensor_view(DTYPE_F32, p->info[i].ndim, p->info[i].shape, host + p->info[i].offset);
    rc = safetensors_writer_add_ref(w, p->info[i].name, &t);
  }
  const char *keys[8];
  char *vals[8];
  int nm = reward_model_meta(m, keys, vals);
  safetensors_writer_set_meta(w, "format", REWARD_FORMAT);
  for (int i = 0; i < nm; i++) safetensors_writer_set_meta(w, keys[i], vals[i]);
  for (int i = 0; i + 1 < 2 * nmeta; i += 2) safetensors_writer_set_meta(w, meta[i], meta[i + 1]);
  if (rc == TB_OK) rc = safetensors_writer_save(w, path);
  for (int i = 0; i < nm; i++) free(vals[i]);
  safetensors_writer_free(w);
  free(host);
  return rc == TB_OK ? TB_OK : err_wrap("saving reward model to %s: ", path);
}

int reward_model_load(reward_model *m, const char *path, int frozen) {
  memset(m, 0, sizeof *m);
  safetensors_file *f = NULL;
  if (safetensors_open(path, &f) != TB_OK) return TB_ERR;
  const char *fmt = safetensors_meta_get(f, "format"), *cj = safetensors_meta_get(f, "reward.config");
  const char *vt = safetensors_meta_get(f, "text.vocab");
  reward_config cfg;
  text_vocab v;
  memset(&v, 0, sizeof v);
  int rc = TB_OK;
  if (!cj || !fmt || (strcmp(fmt, REWARD_FORMAT) != 0 && strncmp(fmt, "turbo.train", 11) != 0))
    rc = err_set("%s: not a reward model checkpoint (metadata format %s, reward.config %s)", path,
                 fmt ? fmt : "missing", cj ? "present" : "missing");
  if (rc == TB_OK) rc = reward_config_parse(&cfg, cj);
  if (rc == TB_OK && cfg.kind != REWARD_QUALITY) {
    if (!vt) rc = err_set("%s: the %s model has no text.vocab", path, reward_kind_name(cfg.kind));
    else rc = text_vocab_parse(&v, vt);
  }
  safetensors_close(f);
  if (rc == TB_OK) rc = model_build(m, &cfg, &v, frozen);
  text_vocab_free(&v);
  if (rc == TB_OK) rc = nn_params_load_registered(&m->params, path);
  if (rc != TB_OK) {
    reward_model_free(m);
    return err_wrap("%s: ", path);
  }
  return TB_OK;
}

/* ---- on the tape ------------------------------------------------------------------------------ */

static nn_var PV(reward_model *m, nn_ctx *c, int idx, int frozen) {
  return nn_param_var(c, &m->params, idx, frozen);
}

/* The convolution levels on N = B·T images (T = 1 for single frames); returns the last map,
 * (N, C, s, s), with *C and *s. */
static nn_var conv_levels(reward_model *m, nn_ctx *c, nn_var x, int64_t B, int64_t T,
                          int frozen, int64_t *Cout, int64_t *sout) {
  const reward_config *cfg = &m->cfg;
  int64_t N = B * T, C = 3, s = cfg->size;
  if (cfg->stem > 0) { /* full resolution: fine detail (edges, noise, a 2-pixel step) */
    x = nn_silu(c, nn_conv2d(c, x, PV(m, c, m->stem.w, frozen), PV(m, c, m->stem.b, frozen), N,
                             3, s, s, cfg->stem, 3, 1, 1));
    C = cfg->stem;
    if (cfg->kind == REWARD_VIDEO && cfg->temporal_levels > 0) {
      nn_var t = nn_tconv3(c, x, PV(m, c, m->tstem.w, frozen), PV(m, c, m->tstem.b, frozen), B, T,
                           C, C, s * s);
      x = nn_add(c, x, nn_silu(c, t));
    }
  }
  for (int l = 0; l < cfg->levels; l++) {
    int64_t co = cfg->widths[l];
    x = nn_conv2d(c, x, PV(m, c, m->conv[l].w, frozen), PV(m, c, m->conv[l].b, frozen), N, C, s,
                  s, co, 3, 2, 1);
    x = nn_silu(c, x);
    s /= 2, C = co;
    if (l < cfg->temporal_levels) {
      nn_var t = nn_tconv3(c, x, PV(m, c, m->tconv[l].w, frozen), PV(m, c, m->tconv[l].b, frozen),
                           B, T, C, C, s * s);
      x = nn_add(c, x, nn_silu(c, t));
    }
  }
  *Cout = C, *sout = s;
  return x;
}

/* The head's input per frame: [the spatial mean of the last map (C) | the map flattened
 * (C·s·s)]. The mean is translation invariant (what is there: colour, shape, motion), the
 * flattened map keeps where (relations). h (N, C, s, s) → (N, C + C·s·s). */
static nn_var head_input(nn_ctx *c, nn_var h, int64_t N, int64_t C, int64_t s) {
  int64_t S = s * s, dims[4] = {N, C, S, 1};
  int perm[4] = {0, 2, 1, 3};
  float *w = xmalloc(sizeof(float) * (size_t)(N * S));
  for (int64_t i = 0; i < N * S; i++) w[i] = 1.0f / (float)S;
  nn_var mean = nn_token_pool(c, nn_permute4(c, h, dims, perm), w, N, S, C);
  free(w);
  return nn_concat_chan(c, mean, h, N, C, C * S, 1);
}

nn_var reward_frame_forward(reward_model *m, nn_ctx *c, nn_var x, int64_t N, int frozen) {
  TB_CHECKF(m->cfg.kind != REWARD_VIDEO, "reward_frame_forward: the video model reads clips");
  int64_t C, s;
  nn_var h = conv_levels(m, c, x, N, 1, frozen, &C, &s);
  h = head_input(c, h, N, C, s);
  int64_t flat = C * s * s + C;
  if (m->cfg.kind == REWARD_QUALITY) {
    h = nn_linear(c, h, PV(m, c, m->head.w, frozen), PV(m, c, m->head.b, frozen), N, flat,
                  m->cfg.hidden);
    h = nn_silu(c, h);
    return nn_linear(c, h, PV(m, c, m->head2.w, frozen), PV(m, c, m->head2.b, frozen), N,
                     m->cfg.hidden, 1);
  }
  h = nn_linear(c, h, PV(m, c, m->head.w, frozen), PV(m, c, m->head.b, frozen), N, flat,
                m->cfg.embed);
  return nn_l2norm(c, h, N, m->cfg.embed);
}

nn_var reward_video_forward(reward_model *m, nn_ctx *c, nn_var x, int64_t B, int frozen) {
  TB_CHECKF(m->cfg.kind == REWARD_VIDEO, "reward_video_forward: not a video model");
  int64_t T = m->cfg.frames, C, s;
  nn_var h = conv_levels(m, c, x, B, T, frozen, &C, &s);
  h = head_input(c, h, B * T, C, s);
  int64_t flat = T * (C * s * s + C); /* (B, T, ...): frame order reaches the head */
  h = nn_linear(c, h, PV(m, c, m->head.w, frozen), PV(m, c, m->head.b, frozen), B, flat,
                m->cfg.embed);
  return nn_l2norm(c, h, B, m->cfg.embed);
}

nn_var reward_text_forward(reward_model *m, nn_ctx *c, const text_batch *b, int frozen) {
  TB_CHECKF(m->has_text, "reward_text_forward: the %s model has no text tower",
            reward_kind_name(m->cfg.kind));
  nn_var pooled;
  text_tower_forward(&m->text, &m->params, c, b, frozen, &pooled);
  return nn_l2norm(c, pooled, b->B, m->cfg.embed);
}

/* ---- scoring ----------------------------------------------------------------------------------- */

int reward_score(reward_model *m, nn_ctx *c, const float *frames, int B, int F,
                 const char *const *texts, float *score, float *grad) {
  const reward_config *cfg = &m->cfg;
  text_batch tb;
  memset(&tb, 0, sizeof tb);
  if (m->has_text && B >= 1) {
    if (!texts) return err_set("reward %s: captions are required", reward_kind_name(cfg->kind));
    int32_t *tmp = xmalloc(sizeof(int32_t) * (size_t)cfg->text.max_len);
    for (int b = 0; b < B; b++) {
      int full;
      text_tokenize(&m->text.vocab, texts[b], cfg->text.max_len, tmp, &full, NULL);
      if (full > cfg->text.max_len) {
        free(tmp);
        return err_set("reward %s: caption %d has %d tokens, the model reads at most %d",
                       reward_kind_name(cfg->kind), b, full, cfg->text.max_len);
      }
    }
    free(tmp);
    if (text_batch_make(&m->text, texts, B, 0, &tb) != TB_OK) return TB_ERR;
  }
  int rc = reward_score_batch(m, c, frames, B, F, m->has_text ? &tb : NULL, score, grad);
  text_batch_free(&tb);
  return rc;
}

int reward_score_batch(reward_model *m, nn_ctx *c, const float *frames, int B, int F,
                       const text_batch *tb, float *score, float *grad) {
  const reward_config *cfg = &m->cfg;
  if (B < 1) return err_set("reward %s: no samples", reward_kind_name(cfg->kind));
  if (cfg->kind == REWARD_VIDEO && F != cfg->frames)
    return err_set("reward video: %d frames per sample, the model reads exactly %d", F, cfg->frames);
  if (F < 1) return err_set("reward %s: no frames", reward_kind_name(cfg->kind));
  if (m->has_text && (!tb || tb->B != B))
    return err_set("reward %s: %d captions for %d samples", reward_kind_name(cfg->kind),
                   tb ? tb->B : 0, B);
  int64_t S = cfg->size, per = 3 * S * S, N = (int64_t)B * F;
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, grad != NULL);
  nn_var x = nn_input(c, frames, N * per, grad != NULL);
  nn_var y;
  int64_t ny;
  float *dy = NULL;
  if (cfg->kind == REWARD_QUALITY) {
    y = reward_frame_forward(m, c, x, N, 1); /* (N) */
    ny = N;
  } else {
    nn_var e = cfg->kind == REWARD_CLIP ? reward_frame_forward(m, c, x, N, 1)
                                        : reward_video_forward(m, c, x, B, 1);
    int64_t ne = cfg->kind == REWARD_CLIP ? N : B;
    nn_var t = reward_text_forward(m, c, tb, 1);
    y = nn_linear(c, e, t, -1, ne, cfg->embed, B); /* (ne, B) cosines */
    ny = ne * B;
  }
  float *yh = xmalloc(sizeof(float) * (size_t)ny);
  device_memcpy_d2h(yh, nn_data(c, y), sizeof(float) * (size_t)ny);
  if (grad) dy = xcalloc((size_t)ny, sizeof(float));
  for (int b = 0; b < B; b++) {
    double s = 0;
    if (cfg->kind == REWARD_VIDEO) {
      s = yh[(int64_t)b * B + b];
      if (dy) dy[(int64_t)b * B + b] = 1.0f;
    } else {
      for (int f = 0; f < F; f++) {
        int64_t i = cfg->kind == REWARD_QUALITY ? (int64_t)b * F + f : ((int64_t)b * F + f) * B + b;
        s += yh[i];
        if (dy) dy[i] = 1.0f / (float)F;
      }
      s /= F;
    }
    score[b] = (float)s;
  }
  if (grad) {
    nn_backward(c, y, dy);
    const float *g = nn_grad(c, x);
    if (g) device_memcpy_d2h(grad, g, sizeof(float) * (size_t)(N * per));
    else memset(grad, 0, sizeof(float) * (size_t)(N * per));
  }
  free(yh);
  free(dy);
  return TB_OK;
}

int reward_similarity(reward_model *m, nn_ctx *c, const float *frames, int K, int F,
                      const char *const *texts, int nt, float *sim) {
  const reward_config *cfg = &m->cfg;
  if (!m->has_text) return err_set("reward %s: no text tower", reward_kind_name(cfg->kind));
  if (cfg->kind == REWARD_VIDEO && F != cfg->frames)
    return err_set("reward video: %d frames per sample, the model reads exactly %d", F, cfg->frames);
  if (K < 1 || F < 1 || nt < 1) return err_set("reward_similarity: empty input");
  int E = cfg->embed;
  int64_t S = cfg->size, per = 3 * S * S, ne = cfg->kind == REWARD_VIDEO ? K : (int64_t)K * F;
  text_batch tb;
  if (text_batch_make(&m->text, texts, nt, 0, &tb) != TB_OK) return TB_ERR;
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, 0);
  nn_var x = nn_input(c, frames, (int64_t)K * F * per, 0);
  nn_var e = cfg->kind == REWARD_VIDEO ? reward_video_forward(m, c, x, K, 1)
                                       : reward_frame_forward(m, c, x, ne, 1);
  nn_var t = reward_text_forward(m, c, &tb, 1);
  nn_var y = nn_linear(c, e, t, -1, ne, E, nt); /* (ne, nt) */
  float *yh = xmalloc(sizeof(float) * (size_t)(ne * nt));
  device_memcpy_d2h(yh, nn_data(c, y), sizeof(float) * (size_t)(ne * nt));
  int per_k = cfg->kind == REWARD_VIDEO ? 1 : F;
  for (int k = 0; k < K; k++)
    for (int j = 0; j < nt; j++) {
      double a = 0;
      for (int f = 0; f < per_k; f++) a += yh[((int64_t)k * per_k + f) * nt + j];
      sim[(int64_t)k * nt + j] = (float)(a / per_k);
    }
  free(yh);
  text_batch_free(&tb);
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, 1);
  return TB_OK;
}

/* kernels/nn/text.c — see text.h.
 *
 * The transformer is the pre-norm CLIP text block: x += out(attn(ln_1(x))), x += fc2(gelu(
 * fc1(ln_2(x)))), with separate q, k, v projections and a key-padding mask in every attention,
 * then ln_final. Nothing is causal: every position sees the whole caption (and only it).
 * The CLIP options (text_config) add the causal mask, quick GELU, no padding mask, the
 * penultimate-block output, EOT pooling and CLIP's projection without bias.
 */
#include "kernels/nn/text.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "common/tensor.h"
#include "kernels/device.h"

/* ---- vocabulary ---------------------------------------------------------------------------- */

static const char *const SPECIALS[TEXT_SPECIAL_TOKENS] = {"<pad>", "<unk>", "<bos>", "<eos>"};

static int is_word_byte(unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '\'' ||
         ch >= 0x80;
}
static int is_punct(unsigned char ch) { return ch && strchr(",;.:!?", ch) != NULL; }

static const text_vocab *g_sort_vocab; /* qsort has no context argument */
static int cmp_ids(const void *a, const void *b) {
  return strcmp(g_sort_vocab->word[*(const int *)a], g_sort_vocab->word[*(const int *)b]);
}

void text_vocab_free(text_vocab *v) {
  if (!v) return;
  for (int i = 0; i < v->n; i++) free(v->word[i]);
  free(v->word);
  free(v->sorted);
  memset(v, 0, sizeof *v);
}

int text_vocab_init(text_vocab *v, const char *const *words, int n) {
  memset(v, 0, sizeof *v);
  if (n < 0 || n > TEXT_VOCAB_MAX - TEXT_SPECIAL_TOKENS)
    return err_set("text vocabulary: %d words (at most %d)", n, TEXT_VOCAB_MAX - TEXT_SPECIAL_TOKENS);
  v->word = xcalloc((size_t)(n + TEXT_SPECIAL_TOKENS), sizeof *v->word);
  v->sorted = xcalloc((size_t)(n > 0 ? n : 1), sizeof *v->sorted);
  for (int i = 0; i < TEXT_SPECIAL_TOKENS; i++) v->word[v->n++] = xstrdup(SPECIALS[i]);
  for (int i = 0; i < n; i++) {
    const char *w = words[i];
    size_t l = w ? strlen(w) : 0;
    if (l == 0 || l >= TEXT_WORD_MAX)
      return err_set("text vocabulary: word %d is empty or longer than %d bytes", i, TEXT_WORD_MAX - 1);
    int ok = l == 1 && is_punct((unsigned char)w[0]);
    if (!ok) {
      ok = 1;
      for (size_t j = 0; j < l; j++) ok &= is_word_byte((unsigned char)w[j]);
    }
    if (!ok)
      return err_set("text vocabulary: '%s' is not a token the tokenizer can produce (lower case "
                     "letters, digits, - and ', or one of , ; . : ! ?)", w);
    v->word[v->n++] = xstrdup(w);
  }
  for (int i = 0; i < n; i++) v->sorted[i] = TEXT_SPECIAL_TOKENS + i;
  g_sort_vocab = v;
  qsort(v->sorted, (size_t)n, sizeof *v->sorted, cmp_ids);
  for (int i = 1; i < n; i++)
    if (strcmp(v->word[v->sorted[i]], v->word[v->sorted[i - 1]]) == 0)
      return err_set("text vocabulary: '%s' appears twice", v->word[v->sorted[i]]);
  return TB_OK;
}

int text_vocab_parse(text_vocab *v, const char *text) {
  memset(v, 0, sizeof *v);
  char *copy = xstrdup(text ? text : "");
  int cap = 256, n = 0;
  const char **w = xmalloc(sizeof *w * (size_t)cap);
  char *save = NULL;
  for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    size_t l = strlen(line);
    if (l && line[l - 1] == '\r') line[--l] = 0;
    if (l == 0) continue;
    if (n == cap) w = xrealloc(w, sizeof *w * (size_t)(cap *= 2));
    w[n++] = line;
  }
  int rc = text_vocab_init(v, w, n);
  free(w);
  free(copy);
  return rc;
}

char *text_vocab_format(const text_vocab *v) {
  json_buf b = {0};
  for (int i = TEXT_SPECIAL_TOKENS; i < v->n; i++) json_buf_printf(&b, "%s\n", v->word[i]);
  if (!b.data) json_buf_puts(&b, "");
  return b.data;
}

int text_vocab_id(const text_vocab *v, const char *word) {
  int lo = 0, hi = v->n - TEXT_SPECIAL_TOKENS - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2, c = strcmp(word, v->word[v->sorted[mid]]);
    if (c == 0) return v->sorted[mid];
    if (c < 0) hi = mid - 1;
    else lo = mid + 1;
  }
  return TEXT_TOKEN_UNK;
}

int text_tokenize(const text_vocab *v, const char *s, int max_len, int32_t *ids, int *n_full,
                  int *n_unknown) {
  TB_CHECKF(max_len >= 2, "text_tokenize: max_len %d < 2", max_len);
  int n = 0, full = 1, unk = 0;
  ids[n++] = TEXT_TOKEN_BOS;
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  char w[TEXT_WORD_MAX];
  while (*p) {
    int id;
    if (is_punct(*p)) {
      w[0] = (char)*p++, w[1] = 0;
      id = text_vocab_id(v, w);
    } else if (is_word_byte((unsigned char)tolower(*p))) {
      size_t l = 0, whole = 0;
      while (*p && is_word_byte((unsigned char)tolower(*p))) {
        if (l < TEXT_WORD_MAX - 1) w[l++] = (char)tolower(*p);
        whole++, p++;
      }
      w[l] = 0;
      id = whole < TEXT_WORD_MAX ? text_vocab_id(v, w) : TEXT_TOKEN_UNK;
    } else {
      p++;
      continue;
    }
    full++;
    if (n < max_len - 1) {
      ids[n++] = id;
      unk += id == TEXT_TOKEN_UNK;
    }
  }
  ids[n++] = TEXT_TOKEN_EOS;
  full++;
  if (n_full) *n_full = full;
  if (n_unknown) *n_unknown = unk;
  return n;
}

/* ---- config ------------------------------------------------------------------------------ */

text_config text_config_default(void) {
  text_config c = {.max_len = 64, .dim = 128, .layers = 2, .heads = 4, .mlp_mult = 4};
  return c;
}

text_config text_config_openclip_h(void) {
  text_config c = {.max_len = 77, .dim = 1024, .layers = 24, .heads = 16, .mlp_mult = 4,
                   .causal = 1, .attend_padding = 1, .act = TEXT_ACT_GELU, .skip_layers = 1,
                   .pool = TEXT_POOL_EOT, .proj = TEXT_PROJ_NOBIAS, .proj_dim = 1024,
                   .vocab_size = 49408};
  return c;
}

int text_config_check(const text_config *c) {
  if (c->max_len < 2 || c->max_len > 1024) return err_set("text config: max_len %d not in [2, 1024]", c->max_len);
  if (c->dim < 1 || c->dim > 4096) return err_set("text config: dim %d not in [1, 4096]", c->dim);
  if (c->layers < 0 || c->layers > TEXT_MAX_LAYERS)
    return err_set("text config: layers %d not in [0, %d]", c->layers, TEXT_MAX_LAYERS);
  if (c->heads < 1 || c->dim % c->heads != 0)
    return err_set("text config: heads %d must divide dim %d", c->heads, c->dim);
  if (c->mlp_mult < 1 || c->mlp_mult > 16) return err_set("text config: mlp_mult %d not in [1, 16]", c->mlp_mult);
  if (c->causal < 0 || c->causal > 1 || c->attend_padding < 0 || c->attend_padding > 1)
    return err_set("text config: causal and attend_padding are 0 or 1");
  if (c->act < 0 || c->act > 1) return err_set("text config: act %d is not 0 (gelu) or 1 (quick_gelu)", c->act);
  if (c->skip_layers < 0 || c->skip_layers >= (c->layers > 0 ? c->layers : 1))
    return err_set("text config: skip_layers %d must be below layers %d", c->skip_layers, c->layers);
  if (c->pool < 0 || c->pool > 1) return err_set("text config: pool %d is not 0 (mean) or 1 (eot)", c->pool);
  if (c->proj < 0 || c->proj > 2 || c->proj_dim < 0 || c->proj_dim > 8192)
    return err_set("text config: proj %d / proj_dim %d", c->proj, c->proj_dim);
  if (c->vocab_size < 0 || c->vocab_size > 1 << 20)
    return err_set("text config: vocab_size %d not in [0, 2^20]", c->vocab_size);
  return TB_OK;
}

char *text_config_format(const text_config *c, char *buf, size_t n) {
  int k = snprintf(buf, n, "{\"max_len\":%d,\"dim\":%d,\"layers\":%d,\"heads\":%d,\"mlp_mult\":%d",
                   c->max_len, c->dim, c->layers, c->heads, c->mlp_mult);
  /* the CLIP options only when set, so the built-in encoder's form stays as it was */
  const struct { const char *key; int v; } opt[] = {
      {"causal", c->causal}, {"attend_padding", c->attend_padding}, {"act", c->act},
      {"skip_layers", c->skip_layers}, {"pool", c->pool}, {"proj", c->proj},
      {"proj_dim", c->proj_dim}, {"vocab_size", c->vocab_size}};
  for (size_t i = 0; i < sizeof opt / sizeof opt[0]; i++)
    if (opt[i].v && k > 0 && (size_t)k < n) k += snprintf(buf + k, n - (size_t)k, ",\"%s\":%d", opt[i].key, opt[i].v);
  if (k > 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, "}");
  return buf;
}

int text_config_parse(text_config *c, const char *json) {
  *c = text_config_default();
  json_value *v = json_parse(json, strlen(json), NULL);
  if (!v) return err_wrap("text config: ");
  int rc = TB_OK;
  if (v->type != JSON_OBJECT) rc = err_set("text config: not a JSON object");
  for (size_t i = 0; rc == TB_OK && i < v->count; i++) {
    const json_value *x = &v->items[i];
    const char *k = v->keys[i];
    int *dst = strcmp(k, "max_len") == 0  ? &c->max_len
               : strcmp(k, "dim") == 0    ? &c->dim
               : strcmp(k, "layers") == 0 ? &c->layers
               : strcmp(k, "heads") == 0  ? &c->heads
               : strcmp(k, "mlp_mult") == 0 ? &c->mlp_mult
               : strcmp(k, "causal") == 0 ? &c->causal
               : strcmp(k, "attend_padding") == 0 ? &c->attend_padding
               : strcmp(k, "act") == 0 ? &c->act
               : strcmp(k, "skip_layers") == 0 ? &c->skip_layers
               : strcmp(k, "pool") == 0 ? &c->pool
               : strcmp(k, "proj") == 0 ? &c->proj
               : strcmp(k, "proj_dim") == 0 ? &c->proj_dim
               : strcmp(k, "vocab_size") == 0 ? &c->vocab_size
                                            : NULL;
    if (!dst) rc = err_set("text config: unknown key '%s'", k);
    else if (x->type != JSON_NUMBER || !x->is_int || x->integer < 0 || x->integer > 1 << 20)
      rc = err_set("text config: '%s' must be a small non-negative integer", k);
    else *dst = (int)x->integer;
  }
  json_free(v);
  return rc == TB_OK ? text_config_check(c) : rc;
}

/* ---- the tower ----------------------------------------------------------------------------- */

static int add_param(nn_params *p, const char *prefix, const char *name, int ndim, int64_t a,
                     int64_t b, nn_init_kind init, int64_t fan_in, int64_t fan_out) {
  char full[NN_NAME_MAX];
  snprintf(full, sizeof full, "%s%s", prefix, name);
  int64_t shape[2] = {a, b};
  return nn_params_add(p, full, ndim, shape, init, fan_in, fan_out);
}
/* a linear layer (out, in) and its bias */
static void add_linear(nn_params *p, const char *prefix, const char *name, int64_t out,
                       int64_t in, int ids[2]) {
  char n[NN_NAME_MAX];
  snprintf(n, sizeof n, "%s.weight", name);
  ids[0] = add_param(p, prefix, n, 2, out, in, NN_INIT_XAVIER, in, out);
  snprintf(n, sizeof n, "%s.bias", name);
  ids[1] = add_param(p, prefix, n, 1, out, 0, NN_INIT_ZERO, 0, 0);
}
static void add_norm(nn_params *p, const char *prefix, const char *name, int64_t d, int ids[2]) {
  char n[NN_NAME_MAX];
  snprintf(n, sizeof n, "%s.weight", name);
  ids[0] = add_param(p, prefix, n, 1, d, 0, NN_INIT_ONE, 0, 0);
  snprintf(n, sizeof n, "%s.bias", name);
  ids[1] = add_param(p, prefix, n, 1, d, 0, NN_INIT_ZERO, 0, 0);
}

static int vocab_copy(text_vocab *dst, const text_vocab *src) {
  const char **w = xmalloc(sizeof *w * (size_t)(src->n > TEXT_SPECIAL_TOKENS ? src->n : 1));
  for (int i = TEXT_SPECIAL_TOKENS; i < src->n; i++) w[i - TEXT_SPECIAL_TOKENS] = src->word[i];
  int rc = text_vocab_init(dst, w, src->n - TEXT_SPECIAL_TOKENS);
  free(w);
  return rc;
}

int text_tower_register(text_tower *t, nn_params *p, const char *prefix, const text_config *cfg,
                        const text_vocab *vocab) {
  memset(t, 0, sizeof *t);
  if (text_config_check(cfg) != TB_OK) return TB_ERR;
  if (strlen(prefix) >= sizeof t->prefix) return err_set("text tower: prefix too long");
  if (vocab_copy(&t->vocab, vocab) != TB_OK) return TB_ERR;
  t->cfg = *cfg;
  snprintf(t->prefix, sizeof t->prefix, "%s", prefix);
  int64_t D = cfg->dim, V = cfg->vocab_size > 0 ? cfg->vocab_size : t->vocab.n,
          F = (int64_t)cfg->mlp_mult * cfg->dim;
  t->n_vocab = (int)V;
  t->p_tok = add_param(p, prefix, "token_embedding.weight", 2, V, D, NN_INIT_NORMAL, 0, 0);
  t->p_pos = add_param(p, prefix, "positional_embedding", 2, cfg->max_len, D, NN_INIT_NORMAL, 0, 0);
  for (int l = 0; l < cfg->layers; l++) {
    text_block_params *b = &t->blk[l];
    char n[64];
#define NAME(s) (snprintf(n, sizeof n, "blocks.%d.%s", l, s), n)
    add_norm(p, prefix, NAME("ln_1"), D, b->ln1);
    add_linear(p, prefix, NAME("attn.q"), D, D, b->q);
    add_linear(p, prefix, NAME("attn.k"), D, D, b->k);
    add_linear(p, prefix, NAME("attn.v"), D, D, b->v);
    add_linear(p, prefix, NAME("attn.out"), D, D, b->o);
    add_norm(p, prefix, NAME("ln_2"), D, b->ln2);
    add_linear(p, prefix, NAME("mlp.fc1"), F, D, b->fc1);
    add_linear(p, prefix, NAME("mlp.fc2"), D, F, b->fc2);
#undef NAME
  }
  add_norm(p, prefix, "ln_final", D, t->p_lnf);
  t->p_proj[0] = t->p_proj[1] = -1;
  if (cfg->proj == TEXT_PROJ_LINEAR) add_linear(p, prefix, "text_projection", D, D, t->p_proj);
  else if (cfg->proj == TEXT_PROJ_NOBIAS) {
    int64_t E = cfg->proj_dim > 0 ? cfg->proj_dim : D;
    t->p_proj[0] = add_param(p, prefix, "text_projection.weight", 2, E, D, NN_INIT_XAVIER, D, E);
  }
  return TB_OK;
}

void text_tower_free(text_tower *t) {
  if (!t) return;
  text_vocab_free(&t->vocab);
  memset(t, 0, sizeof *t);
}

int64_t text_tower_numel(const text_tower *t, const nn_params *p) {
  int64_t n = 0;
  for (int i = 0; i < p->n; i++)
    if (strncmp(p->info[i].name, t->prefix, strlen(t->prefix)) == 0) n += p->info[i].numel;
  return n;
}

int text_batch_make(const text_tower *t, const char *const *texts, int B, int L, text_batch *out) {
  memset(out, 0, sizeof *out);
  int maxl = t->cfg.max_len;
  if (B < 1) return err_set("text batch: B = %d", B);
  if (L != 0 && (L < 2 || L > maxl)) return err_set("text batch: L = %d not in [2, %d]", L, maxl);
  int32_t *tmp = xmalloc(sizeof(int32_t) * (size_t)B * maxl);
  int *len = xmalloc(sizeof(int) * (size_t)B), longest = 2;
  for (int b = 0; b < B; b++) {
    int full, unk;
    len[b] = text_tokenize(&t->vocab, texts[b], L ? L : maxl, tmp + (size_t)b * maxl, &full, &unk);
    out->cut += full > len[b];
    out->unknown += unk;
    if (len[b] > longest) longest = len[b];
  }
  if (!L) L = longest;
  out->B = B, out->L = L, out->len = len;
  out->ids = xmalloc(sizeof(int32_t) * (size_t)B * L);
  out->valid = xmalloc((size_t)B * L);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < L; j++) {
      int ok = j < len[b];
      out->ids[(size_t)b * L + j] = ok ? tmp[(size_t)b * maxl + j] : TEXT_TOKEN_PAD;
      out->valid[(size_t)b * L + j] = (uint8_t)ok;
    }
  free(tmp);
  return TB_OK;
}

int text_batch_from_ids(const text_tower *t, const int32_t *ids, int B, int L, text_batch *out) {
  memset(out, 0, sizeof *out);
  if (B < 1 || L < 2 || L > t->cfg.max_len)
    return err_set("token ids: (B, L) = (%d, %d); L must be in [2, %d]", B, L, t->cfg.max_len);
  int V = t->n_vocab;
  int *len = xmalloc(sizeof(int) * (size_t)B);
  for (int b = 0; b < B; b++) {
    const int32_t *r = ids + (size_t)b * L;
    int eos = -1;
    if (r[0] != TEXT_TOKEN_BOS) {
      free(len);
      return err_set("token ids: row %d starts with %d, not BOS (%d)", b, r[0], TEXT_TOKEN_BOS);
    }
    for (int j = 1; j < L; j++) {
      if (r[j] < 0 || r[j] >= V) {
        free(len);
        return err_set("token ids: row %d position %d holds %d, outside the vocabulary [0, %d)", b, j, r[j], V);
      }
      if (eos < 0 && r[j] == TEXT_TOKEN_EOS) eos = j;
      else if (eos >= 0 && r[j] != TEXT_TOKEN_PAD) {
        free(len);
        return err_set("token ids: row %d position %d holds %d after EOS (PAD expected)", b, j, r[j]);
      } else if (eos < 0 && (r[j] == TEXT_TOKEN_PAD || r[j] == TEXT_TOKEN_BOS)) {
        free(len);
        return err_set("token ids: row %d position %d holds %s before EOS", b, j, r[j] ? "BOS" : "PAD");
      }
    }
    if (eos < 0) {
      free(len);
      return err_set("token ids: row %d has no EOS (%d)", b, TEXT_TOKEN_EOS);
    }
    len[b] = eos + 1;
  }
  out->B = B, out->L = L, out->len = len;
  out->ids = xmalloc(sizeof(int32_t) * (size_t)B * L);
  out->valid = xmalloc((size_t)B * L);
  memcpy(out->ids, ids, sizeof(int32_t) * (size_t)B * L);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < L; j++) out->valid[(size_t)b * L + j] = (uint8_t)(j < len[b]);
  return TB_OK;
}

int text_batch_from_eot_ids(const text_tower *t, const int32_t *ids, int B, int L, int32_t eot,
                            text_batch *out) {
  memset(out, 0, sizeof *out);
  if (B < 1 || L < 1 || L > t->cfg.max_len)
    return err_set("token ids: (B, L) = (%d, %d); L must be in [1, %d]", B, L, t->cfg.max_len);
  int *len = xmalloc(sizeof(int) * (size_t)B);
  for (int b = 0; b < B; b++) {
    const int32_t *r = ids + (size_t)b * L;
    len[b] = 0;
    for (int j = 0; j < L; j++) {
      if (r[j] < 0 || r[j] >= t->n_vocab) {
        free(len);
        return err_set("token ids: row %d position %d holds %d, outside the vocabulary [0, %d)", b,
                       j, r[j], t->n_vocab);
      }
      if (!len[b] && r[j] == eot) len[b] = j + 1;
    }
    if (!len[b]) {
      free(len);
      return err_set("token ids: row %d has no end-of-text id %d", b, eot);
    }
  }
  out->B = B, out->L = L, out->len = len;
  out->ids = xmalloc(sizeof(int32_t) * (size_t)B * L);
  out->valid = xmalloc((size_t)B * L);
  memcpy(out->ids, ids, sizeof(int32_t) * (size_t)B * L);
  for (int b = 0; b < B; b++)
    for (int j = 0; j < L; j++) out->valid[(size_t)b * L + j] = (uint8_t)(j < len[b]);
  return TB_OK;
}

void text_batch_free(text_batch *b) {
  if (!b) return;
  free(b->ids);
  free(b->valid);
  free(b->len);
  memset(b, 0, sizeof *b);
}

static nn_var P(nn_ctx *c, nn_params *p, int idx, int frozen) { return nn_param_var(c, p, idx, frozen); }
static nn_var lin(nn_ctx *c, nn_params *p, nn_var x, const int w[2], int64_t M, int64_t K,
                  int64_t N, int frozen) {
  return nn_linear(c, x, P(c, p, w[0], frozen), P(c, p, w[1], frozen), M, K, N);
}
static nn_var norm(nn_ctx *c, nn_params *p, nn_var x, const int g[2], int64_t M, int64_t D,
                   int frozen) {
  return nn_layer_norm(c, x, P(c, p, g[0], frozen), P(c, p, g[1], frozen), M, D, 1e-5f);
}

nn_var text_tower_forward(const text_tower *t, nn_params *p, nn_ctx *c, const text_batch *b,
                          int frozen, nn_var *pooled) {
  const text_config *cfg = &t->cfg;
  int64_t B = b->B, L = b->L, D = cfg->dim, M = B * L, F = (int64_t)cfg->mlp_mult * D;
  TB_CHECKF(L >= 1 && L <= cfg->max_len, "text tower: L %lld > max_len %d", (long long)L,
            cfg->max_len);
  nn_var x = nn_embedding(c, P(c, p, t->p_tok, frozen), b->ids, M, t->n_vocab, D);
  x = nn_add_bcast_first(c, x, P(c, p, t->p_pos, frozen), B, L * D);
  const uint8_t *keep = cfg->attend_padding ? NULL : b->valid;
  for (int l = 0; l < cfg->layers - cfg->skip_layers; l++) {
    const text_block_params *k = &t->blk[l];
    nn_var h = norm(c, p, x, k->ln1, M, D, frozen);
    nn_var q = lin(c, p, h, k->q, M, D, D, frozen), kk = lin(c, p, h, k->k, M, D, D, frozen),
           v = lin(c, p, h, k->v, M, D, D, frozen);
    nn_var a = cfg->causal
                   ? nn_attention_ex(c, q, kk, v, B, L, L, D, cfg->heads, keep, 1, NULL)
                   : nn_attention_masked(c, q, kk, v, B, L, L, D, cfg->heads, keep, NULL);
    x = nn_add(c, x, lin(c, p, a, k->o, M, D, D, frozen));
    h = norm(c, p, x, k->ln2, M, D, frozen);
    h = lin(c, p, h, k->fc1, M, D, F, frozen);
    h = cfg->act == TEXT_ACT_QUICK_GELU ? nn_quick_gelu(c, h) : nn_gelu(c, h);
    x = nn_add(c, x, lin(c, p, h, k->fc2, M, F, D, frozen));
  }
  x = norm(c, p, x, t->p_lnf, M, D, frozen);
  if (pooled) {
    float *w = xmalloc(sizeof(float) * (size_t)M);
    for (int64_t i = 0; i < B; i++) {
      int64_t n = b->len[i] < L ? b->len[i] : L;
      for (int64_t j = 0; j < L; j++)
        w[i * L + j] = cfg->pool == TEXT_POOL_EOT ? (j == n - 1 ? 1.0f : 0.0f)
                       : b->valid[i * L + j]      ? 1.0f / (float)n
                                                  : 0.0f;
    }
    nn_var m = nn_token_pool(c, x, w, B, L, D);
    free(w);
    if (cfg->proj == TEXT_PROJ_LINEAR) *pooled = lin(c, p, m, t->p_proj, B, D, D, frozen);
    else if (cfg->proj == TEXT_PROJ_NOBIAS)
      *pooled = nn_linear(c, m, P(c, p, t->p_proj[0], frozen), -1, B, D,
                          cfg->proj_dim > 0 ? cfg->proj_dim : D);
    else *pooled = m;
  }
  return x;
}

/* ---- standalone ---------------------------------------------------------------------------- */

struct text_encoder {
  text_tower tower;
  nn_params params;
  nn_ctx *ctx;
};

text_encoder *text_encoder_load(const char *path) {
  safetensors_file *f = NULL;
  if (safetensors_open(path, &f) != TB_OK) return NULL;
  const char *vt = safetensors_meta_get(f, "text.vocab"), *ct = safetensors_meta_get(f, "text.config");
  if (!vt || !ct) {
    err_set("%s: no text encoder in this file (metadata text.vocab and text.config missing)", path);
    safetensors_close(f);
    return NULL;
  }
  text_config cfg;
  text_vocab v;
  text_encoder *e = xcalloc(1, sizeof *e);
  nn_params_init_empty(&e->params);
  int rc = text_config_parse(&cfg, ct);
  if (rc == TB_OK) rc = text_vocab_parse(&v, vt);
  if (rc == TB_OK) {
    rc = text_tower_register(&e->tower, &e->params, "text.", &cfg, &v);
    text_vocab_free(&v);
  }
  safetensors_close(f);
  if (rc == TB_OK) {
    nn_params_alloc_frozen(&e->params); /* frozen: no gradient block */
    rc = nn_params_load_registered(&e->params, path);
  }
  if (rc != TB_OK) {
    err_wrap("%s: text encoder: ", path);
    text_encoder_free(e);
    return NULL;
  }
  e->ctx = nn_ctx_new();
  nn_ctx_set_grad(e->ctx, 0); /* inference: nothing kept for a backward */
  return e;
}

void text_encoder_free(text_encoder *e) {
  if (!e) return;
  nn_ctx_free(e->ctx);
  text_tower_free(&e->tower);
  nn_params_free(&e->params);
  free(e);
}

const text_config *text_encoder_config(const text_encoder *e) { return &e->tower.cfg; }
const text_vocab *text_encoder_vocab(const text_encoder *e) { return &e->tower.vocab; }

int text_encoder_encode(text_encoder *e, const char *const *texts, int B, int L, float *tokens,
                        float *pooled, uint8_t *valid) {
  if (L < 2 || L > e->tower.cfg.max_len)
    return err_set("text encoder: L = %d not in [2, %d]", L, e->tower.cfg.max_len);
  text_batch b;
  if (text_batch_make(&e->tower, texts, B, L, &b) != TB_OK) return TB_ERR;
  nn_ctx_reset(e->ctx);
  nn_var pv = -1;
  nn_var tv = text_tower_forward(&e->tower, &e->params, e->ctx, &b, 1, pooled ? &pv : NULL);
  size_t D = (size_t)e->tower.cfg.dim;
  if (tokens) device_memcpy_d2h(tokens, nn_data(e->ctx, tv), (size_t)B * L * D * sizeof(float));
  if (pooled) device_memcpy_d2h(pooled, nn_data(e->ctx, pv), (size_t)B * D * sizeof(float));
  if (valid) memcpy(valid, b.valid, (size_t)B * L);
  text_batch_free(&b);
  nn_ctx_reset(e->ctx);
  return TB_OK;
}

int text_encoder_null(text_encoder *e, int L, float *tokens, float *pooled) {
  const char *empty = "";
  return text_encoder_encode(e, &empty, 1, L, tokens, pooled, NULL);
}

/* ---- names of CLIP checkpoints ------------------------------------------------------------ */

int text_tensor_map(const text_tower *t, const nn_params *p, text_family fam, const char *prefix,
                    nn_tensor_map *m) {
  nn_tensor_map_init(m);
  const text_config *cfg = &t->cfg;
  int64_t D = cfg->dim;
  char to[NN_NAME_MAX], from[2 * NN_NAME_MAX];
#define TO(...) (snprintf(to, sizeof to, "%s", t->prefix), \
                 snprintf(to + strlen(to), sizeof to - strlen(to), __VA_ARGS__), to)
#define FROM(...) (snprintf(from, sizeof from, "%s", prefix), \
                   snprintf(from + strlen(from), sizeof from - strlen(from), __VA_ARGS__), from)
  int hf = fam == TEXT_FAMILY_HF_CLIP;
  if (fam != TEXT_FAMILY_HF_CLIP && fam != TEXT_FAMILY_OPEN_CLIP)
    return err_set("text tensor map: unknown family %d", (int)fam);
  nn_tensor_map_add(m, FROM(hf ? "embeddings.token_embedding.weight" : "token_embedding.weight"),
                    TO("token_embedding.weight"), NN_SRC_SAME, 0);
  nn_tensor_map_add(m, FROM(hf ? "embeddings.position_embedding.weight" : "positional_embedding"),
                    TO("positional_embedding"), NN_SRC_SAME, 0);
  static const char *const wb[2] = {"weight", "bias"};
  for (int l = 0; l < cfg->layers; l++)
    for (int k = 0; k < 2; k++) {
      const char *s = wb[k];
      if (hf) {
        static const char *const pair[][2] = {
            {"ln_1", "layer_norm1"},        {"attn.q", "self_attn.q_proj"},
            {"attn.k", "self_attn.k_proj"}, {"attn.v", "self_attn.v_proj"},
            {"attn.out", "self_attn.out_proj"}, {"ln_2", "layer_norm2"},
            {"mlp.fc1", "mlp.fc1"},         {"mlp.fc2", "mlp.fc2"}};
        for (size_t i = 0; i < sizeof pair / sizeof pair[0]; i++)
          nn_tensor_map_add(m, FROM("encoder.layers.%d.%s.%s", l, pair[i][1], s),
                            TO("blocks.%d.%s.%s", l, pair[i][0], s), NN_SRC_SAME, 0);
      } else {
        static const char *const pair[][2] = {{"ln_1", "ln_1"},
                                              {"attn.out", "attn.out_proj"},
                                              {"ln_2", "ln_2"},
                                              {"mlp.fc1", "mlp.c_fc"},
                                              {"mlp.fc2", "mlp.c_proj"}};
        for (size_t i = 0; i < sizeof pair / sizeof pair[0]; i++)
          nn_tensor_map_add(m, FROM("transformer.resblocks.%d.%s.%s", l, pair[i][1], s),
                            TO("blocks.%d.%s.%s", l, pair[i][0], s), NN_SRC_SAME, 0);
        static const char *const qkv[3] = {"attn.q", "attn.k", "attn.v"};
        for (int j = 0; j < 3; j++)
          nn_tensor_map_add(m, FROM("transformer.resblocks.%d.attn.in_proj_%s", l, s),
                            TO("blocks.%d.%s.%s", l, qkv[j], s), NN_SRC_ROWS, j * D);
      }
    }
  nn_tensor_map_add(m, FROM(hf ? "final_layer_norm.weight" : "ln_final.weight"),
                    TO("ln_final.weight"), NN_SRC_SAME, 0);
  nn_tensor_map_add(m, FROM(hf ? "final_layer_norm.bias" : "ln_final.bias"), TO("ln_final.bias"),
                    NN_SRC_SAME, 0);
  if (cfg->proj == TEXT_PROJ_NOBIAS) {
    if (hf) nn_tensor_map_add(m, "text_projection.weight", TO("text_projection.weight"), NN_SRC_SAME, 0);
    else nn_tensor_map_add(m, FROM("text_projection"), TO("text_projection.weight"), NN_SRC_T, 0);
  } else if (cfg->proj == TEXT_PROJ_LINEAR) {
    nn_tensor_map_free(m);
    return err_set("text tensor map: CLIP's projection has no bias (use TEXT_PROJ_NOBIAS or "
                   "TEXT_PROJ_NONE)");
  }
#undef TO
#undef FROM
  for (int i = 0; i < m->n; i++)
    if (nn_params_find(p, m->to[i]) < 0) {
      int rc = err_set("text tensor map: %s is not a parameter of the tower", m->to[i]);
      nn_tensor_map_free(m);
      return rc;
    }
  return TB_OK;
}

/* tests/test_text.c — the text encoder of kernels/nn/text.h:
 *  1. the tokenizer over the world's vocabulary: captions have no unknown words, specials,
 *     case, punctuation, unknown words, cutting at the length limit (EOS stays last);
 *  2. vocabulary and config text forms round trip;
 *  3. the tower's parameter gradients against central finite differences (a tiny config);
 *  4. padding does not change anything: tokens at the caption's positions, the padding rows and
 *     the pooled embedding are the same for L = len and L = len + 6 (breaks if the attention
 *     ignored its key mask);
 *  5. text_encoder_load reads a tower from a checkpoint with other tensors in it and encodes
 *     exactly what the tower computes; the null context is the empty caption. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "common/scene.h"
#include "kernels/nn.h"
#include "kernels/nn/text.h"
#include "tests/testutil.h"

static void world_vocab(text_vocab *v) {
  int n;
  const char *const *w = scene_caption_vocabulary(&n);
  TB_CHECK(text_vocab_init(v, w, n) == TB_OK);
}

static void check_tokenizer(void) {
  text_vocab v;
  world_vocab(&v);
  int32_t ids[64];
  int full, unk;
  int n = text_tokenize(&v, "A Red circle, moving LEFT; fast!", 64, ids, &full, &unk);
  /* BOS a red circle , moving left ; fast ! EOS: '!' is not a world word */
  CHECKF(n == 11 && full == 11 && unk == 1, "n %d full %d unk %d", n, full, unk);
  CHECK(ids[0] == TEXT_TOKEN_BOS && ids[n - 1] == TEXT_TOKEN_EOS);
  CHECK(ids[1] == text_vocab_id(&v, "a") && ids[2] == text_vocab_id(&v, "red"));
  CHECK(ids[4] == text_vocab_id(&v, ",") && ids[9] == TEXT_TOKEN_UNK);
  CHECK(text_vocab_id(&v, "dog") == TEXT_TOKEN_UNK && text_vocab_id(&v, "zips") >= TEXT_SPECIAL_TOKENS);
  n = text_tokenize(&v, "", 64, ids, &full, &unk);
  CHECK(n == 2 && ids[0] == TEXT_TOKEN_BOS && ids[1] == TEXT_TOKEN_EOS && full == 2);
  n = text_tokenize(&v, "red red red red red red red red", 5, ids, &full, &unk);
  CHECKF(n == 5 && full == 10 && ids[4] == TEXT_TOKEN_EOS && ids[3] == text_vocab_id(&v, "red"),
         "cut: n %d full %d", n, full);
  n = text_tokenize(&v, "supercalifragilisticexpialidocious-and-more red", 8, ids, &full, &unk);
  CHECK(n == 4 && ids[1] == TEXT_TOKEN_UNK && ids[2] == text_vocab_id(&v, "red"));
  /* every caption the world writes tokenizes without unknown words, within 64 ids */
  int longest = 0;
  for (int k = 0; k < 2000; k++) {
    scene_rng r;
    scene_rng_seed(&r, 5, (uint64_t)k, SCENE_STREAM_SCENE);
    scene s;
    TB_CHECK(scene_sample(&r, 64, 64, 8, NULL, &s) == TB_OK);
    char lc[512], sc[512];
    scene_caption_long(&s, &r, lc, sizeof lc);
    scene_caption_short(&s, &r, sc, sizeof sc);
    int32_t big[128];
    text_tokenize(&v, lc, 128, big, &full, &unk);
    CHECKF(unk == 0, "\"%s\": %d unknown words", lc, unk);
    if (full > longest) longest = full;
    text_tokenize(&v, sc, 128, big, &full, &unk);
    CHECKF(unk == 0, "\"%s\": %d unknown words", sc, unk);
  }
  CHECKF(longest <= text_config_default().max_len, "the longest caption needs %d ids", longest);
  printf("tokenizer: longest world caption %d ids (limit %d)\n", longest, text_config_default().max_len);
  /* text forms */
  char *t = text_vocab_format(&v);
  text_vocab v2;
  CHECK(text_vocab_parse(&v2, t) == TB_OK && v2.n == v.n);
  for (int i = 0; i < v.n && i < v2.n; i++) CHECK(strcmp(v.word[i], v2.word[i]) == 0);
  free(t);
  text_vocab_free(&v2);
  const char *bad[2] = {"ok", "Not"};
  CHECK(text_vocab_init(&v2, bad, 2) == TB_ERR);
  text_vocab_free(&v2);
  const char *dup[2] = {"x", "x"};
  CHECK(text_vocab_init(&v2, dup, 2) == TB_ERR);
  text_vocab_free(&v2);
  text_config c = {.max_len = 9, .dim = 12, .layers = 3, .heads = 3, .mlp_mult = 2}, c2;
  char buf[256];
  CHECK(text_config_parse(&c2, text_config_format(&c, buf, sizeof buf)) == TB_OK);
  CHECK(memcmp(&c, &c2, sizeof c) == 0);
  CHECK(text_config_parse(&c2, "{\"dim\":10,\"heads\":3}") == TB_ERR); /* heads must divide dim */
  CHECK(text_config_parse(&c2, "{\"width\":10}") == TB_ERR);
  text_vocab_free(&v);
}

typedef struct {
  text_tower t;
  nn_params p;
  nn_ctx *c;
  text_batch b;
  float *R; /* random projection of [tokens, pooled] */
  int64_t nout;
} rig;

static double rig_loss(rig *g, int grad) {
  nn_ctx_reset(g->c);
  nn_var pooled;
  nn_var tok = text_tower_forward(&g->t, &g->p, g->c, &g->b, 0, &pooled);
  int64_t nt = nn_numel(g->c, tok), np = nn_numel(g->c, pooled);
  const float *a = nn_data(g->c, tok), *b = nn_data(g->c, pooled);
  double L = 0;
  for (int64_t i = 0; i < nt; i++) L += (double)a[i] * g->R[i];
  for (int64_t i = 0; i < np; i++) L += (double)b[i] * g->R[nt + i];
  if (grad) {
    nn_params_zero_grad(&g->p);
    nn_var both = nn_concat_chan(g->c, tok, pooled, 1, nt, np, 1);
    nn_backward(g->c, both, g->R);
  }
  return L;
}

static void check_grad(void) {
  text_vocab v;
  world_vocab(&v);
  rig g;
  memset(&g, 0, sizeof g);
  nn_params_init_empty(&g.p);
  text_config cfg = {.max_len = 10, .dim = 8, .layers = 2, .heads = 2, .mlp_mult = 2};
  TB_CHECK(text_tower_register(&g.t, &g.p, "text.", &cfg, &v) == TB_OK);
  nn_params_alloc(&g.p);
  nn_params_init(&g.p, 3, 0);
  /* the layer norms and biases away from their 1/0 start so every path is live */
  for (int64_t i = 0; i < g.p.total; i++) g.p.data[i] += 0.05f * sinf((float)i);
  const char *texts[3] = {"a red circle moving left", "a blue ring", "the green square, fast"};
  TB_CHECK(text_batch_make(&g.t, texts, 3, 0, &g.b) == TB_OK);
  CHECK(g.b.L == 7 && g.b.len[1] == 5 && g.b.valid[1 * 7 + 5] == 0);
  g.c = nn_ctx_new();
  g.nout = (int64_t)3 * g.b.L * 8 + 3 * 8;
  g.R = xmalloc(sizeof(float) * (size_t)g.nout);
  test_fill_uniform(g.R, g.nout, 9, -1, 1);
  rig_loss(&g, 1);
  float *an = xmalloc(sizeof(float) * (size_t)g.p.total);
  memcpy(an, g.p.grad, sizeof(float) * (size_t)g.p.total);
  int bad = 0, checked = 0;
  double maxerr = 0;
  for (int i = 0; i < g.p.n; i++) {
    const nn_param_info *in = &g.p.info[i];
    for (int s = 0; s < 3; s++) {
      int64_t j = in->offset + (in->numel * (2 * s + 1)) / 6;
      float keep = g.p.data[j], e = 3e-3f;
      g.p.data[j] = keep + e;
      double lp = rig_loss(&g, 0);
      g.p.data[j] = keep - e;
      double lm = rig_loss(&g, 0);
      g.p.data[j] = keep;
      double fd = (lp - lm) / (2.0 * e), err = fabs(fd - an[j]) / (2e-2 + fabs(fd));
      if (err > maxerr) maxerr = err;
      checked++;
      if (err > 3e-2 && bad++ < 6) fprintf(stderr, "%s[%lld]: analytic %.6g fd %.6g\n", in->name, (long long)(j - in->offset), an[j], fd);
    }
  }
  /* the rows of unused vocabulary words get no gradient */
  int zid = text_vocab_id(&v, "zips");
  const float *tg = an + g.p.info[g.t.p_tok].offset + (int64_t)zid * 8;
  CHECK(tg[0] == 0.0f && tg[7] == 0.0f);
  printf("text tower gradients: %d parameter entries, max rel err %.2e\n", checked, maxerr);
  CHECKF(bad == 0, "%d text tower gradient mismatches", bad);
  free(an);
  free(g.R);
  text_batch_free(&g.b);
  nn_ctx_free(g.c);
  text_tower_free(&g.t);
  nn_params_free(&g.p);
  text_vocab_free(&v);
}

/* Encodes with a given L through the tower; host copies out. */
static void encode_L(text_tower *t, nn_params *p, nn_ctx *c, const char *const *texts, int B,
                     int L, float *tok, float *pool) {
  text_batch b;
  TB_CHECK(text_batch_make(t, texts, B, L, &b) == TB_OK);
  nn_ctx_reset(c);
  nn_var pv;
  nn_var tv = text_tower_forward(t, p, c, &b, 1, &pv);
  memcpy(tok, nn_data(c, tv), sizeof(float) * (size_t)B * L * t->cfg.dim);
  memcpy(pool, nn_data(c, pv), sizeof(float) * (size_t)B * t->cfg.dim);
  text_batch_free(&b);
}

static void check_padding_and_load(void) {
  text_vocab v;
  world_vocab(&v);
  text_tower t;
  nn_params p;
  nn_params_init_empty(&p);
  text_config cfg = text_config_default();
  cfg.dim = 32;
  cfg.heads = 4;
  TB_CHECK(text_tower_register(&t, &p, "text.", &cfg, &v) == TB_OK);
  /* another tower's tensors in the same file, which the encoder must ignore */
  int64_t shp[2] = {5, 7};
  nn_params_add(&p, "image.stem.weight", 2, shp, NN_INIT_KAIMING, 7, 5);
  nn_params_alloc(&p);
  nn_params_init(&p, 11, 0);
  nn_ctx *c = nn_ctx_new();
  const char *texts[2] = {"a small red circle drifts slowly to the left across a navy background",
                          "a cyan ring staying still"};
  int D = cfg.dim, L1 = 16, L2 = 22;
  float *t1 = xmalloc(sizeof(float) * 2 * L2 * D), *t2 = xmalloc(sizeof(float) * 2 * L2 * D);
  float p1[2 * 64], p2[2 * 64];
  encode_L(&t, &p, c, texts, 2, L1, t1, p1);
  encode_L(&t, &p, c, texts, 2, L2, t2, p2);
  double md = 0;
  for (int b = 0; b < 2; b++)
    for (int j = 0; j < L1; j++)
      for (int d = 0; d < D; d++)
        md = fmax(md, fabs(t1[((size_t)b * L1 + j) * D + d] - t2[((size_t)b * L2 + j) * D + d]));
  for (int i = 0; i < 2 * D; i++) md = fmax(md, fabs(p1[i] - p2[i]));
  CHECKF(md < 1e-5, "padding changes the encoding by %.3g", md);
  printf("padding L %d vs %d: max difference %.2e\n", L1, L2, md);
  /* ... and the two captions differ (the comparison is not vacuous) */
  double dd = 0;
  for (int d = 0; d < D; d++) dd += fabs(p1[d] - p1[D + d]);
  CHECK(dd > 1e-3);

  /* a checkpoint: every tensor plus the text metadata */
  char path[4096];
  fs_join(path, sizeof path, test_outdir(), "text.safetensors");
  safetensors_writer *w = safetensors_writer_new();
  for (int i = 0; i < p.n; i++) {
    tensor tt = tensor_view(DTYPE_F32, p.info[i].ndim, p.info[i].shape, p.data + p.info[i].offset);
    TB_CHECK(safetensors_writer_add_ref(w, p.info[i].name, &tt) == TB_OK);
  }
  char cbuf[256], *vt = text_vocab_format(&v);
  safetensors_writer_set_meta(w, "text.config", text_config_format(&cfg, cbuf, sizeof cbuf));
  safetensors_writer_set_meta(w, "text.vocab", vt);
  TB_CHECK(safetensors_writer_save(w, path) == TB_OK);
  safetensors_writer_free(w);
  free(vt);
  text_encoder *e = text_encoder_load(path);
  CHECKF(e != NULL, "text_encoder_load: %s", err_get());
  if (e) {
    CHECK(text_encoder_config(e)->dim == D && text_encoder_vocab(e)->n == v.n);
    float *et = xmalloc(sizeof(float) * 2 * L1 * D), ep[2 * 64];
    uint8_t valid[2 * 16];
    CHECK(text_encoder_encode(e, texts, 2, L1, et, ep, valid) == TB_OK);
    CHECK(memcmp(et, t1, sizeof(float) * 2 * L1 * D) == 0 && memcmp(ep, p1, sizeof(float) * 2 * D) == 0);
    CHECK(valid[16 + 6] == 1 && valid[16 + 7] == 0); /* BOS a cyan ring staying still EOS */
    const char *empty = "";
    float nt[16 * 64], np[64], et2[16 * 64], ep2[64];
    CHECK(text_encoder_null(e, L1, nt, np) == TB_OK);
    encode_L(&t, &p, c, &empty, 1, L1, et2, ep2);
    CHECK(memcmp(nt, et2, sizeof(float) * L1 * D) == 0 && memcmp(np, ep2, sizeof(float) * D) == 0);
    CHECK(text_encoder_encode(e, texts, 2, 1, et, ep, NULL) == TB_ERR);
    free(et);
    text_encoder_free(e);
  }
  /* a file without the text tower, and one with a tensor of the wrong shape */
  fs_join(path, sizeof path, test_outdir(), "other.safetensors");
  w = safetensors_writer_new();
  tensor tt = tensor_view(DTYPE_F32, 2, shp, p.data);
  safetensors_writer_add_ref(w, "image.stem.weight", &tt);
  TB_CHECK(safetensors_writer_save(w, path) == TB_OK);
  safetensors_writer_free(w);
  CHECK(text_encoder_load(path) == NULL);
  printf("no tower: %s\n", err_get());
  free(t1);
  free(t2);
  nn_ctx_free(c);
  text_tower_free(&t);
  nn_params_free(&p);
  text_vocab_free(&v);
}

int main(void) {
  test_begin("test_text");
  check_tokenizer();
  check_grad();
  check_padding_and_load();
  return test_finish();
}

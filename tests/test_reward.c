/* tests/test_reward.c — the reward models of kernels/nn/reward.h on tiny configs:
 *  1. configs round trip through their JSON form; bad ones are refused;
 *  2. reward_score's d score / d frames against central finite differences of the score, for
 *     clip (2 frames), quality (2 frames) and video (4 frames), on pixels of every sample;
 *     samples are independent (the gradient of sample b lives in sample b's frames only);
 *  3. a checkpoint round trips (same scores after reward_model_load, frozen: no gradient
 *     block), and the clip checkpoint's text tower loads with text_encoder_load;
 *  4. wrong frame counts and over-long captions are refused with a message;
 *  5. scoring without a gradient records no tape and holds fewer bytes than with one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "common/scene.h"
#include "kernels/nn.h"
#include "kernels/nn/reward.h"
#include "kernels/nn/text.h"
#include "tests/testutil.h"

static reward_config tiny(reward_kind k) {
  reward_config c = reward_config_default(k);
  c.size = 16;
  c.levels = 2;
  memset(c.widths, 0, sizeof c.widths);
  c.widths[0] = 4, c.widths[1] = 6;
  c.text.dim = 8, c.text.heads = 2, c.text.layers = 1, c.text.max_len = 12;
  c.embed = k == REWARD_QUALITY ? 0 : 8;
  if (k == REWARD_QUALITY) c.hidden = 5;
  if (k == REWARD_VIDEO) c.frames = 4, c.temporal_levels = 2;
  return c;
}

static void world_vocab(text_vocab *v) {
  int n;
  const char *const *w = scene_caption_vocabulary(&n);
  TB_CHECK(text_vocab_init(v, w, n) == TB_OK);
}

static void check_configs(void) {
  char buf[1024];
  for (int k = 0; k < REWARD_KINDS; k++) {
    reward_config c = reward_config_default((reward_kind)k), d;
    CHECKF(reward_config_check(&c) == TB_OK, "default %s: %s", reward_kind_name(k), err_get());
    CHECKF(reward_config_parse(&d, reward_config_format(&c, buf, sizeof buf)) == TB_OK, "%s", err_get());
    CHECK(memcmp(&c, &d, sizeof c) == 0);
    c = tiny((reward_kind)k);
    CHECK(reward_config_parse(&d, reward_config_format(&c, buf, sizeof buf)) == TB_OK);
    CHECK(memcmp(&c, &d, sizeof c) == 0);
  }
  reward_config d;
  CHECK(reward_config_parse(&d, "{\"kind\":\"clip\",\"size\":60}") == TB_ERR); /* not /16 */
  CHECK(reward_config_parse(&d, "{\"kind\":\"clip\",\"frames\":4}") == TB_ERR);
  CHECK(reward_config_parse(&d, "{\"kind\":\"tv\"}") == TB_ERR);
  CHECK(reward_config_parse(&d, "{\"kind\":\"video\",\"embed\":64}") == TB_ERR);
  reward_kind k;
  CHECK(reward_kind_parse("video", &k) == TB_OK && k == REWARD_VIDEO);
  CHECK(reward_kind_parse("hps", &k) == TB_ERR);
}

static const char *k_texts[3] = {"a red circle moving left", "a blue square staying still",
                                 "a green ring to the left of a white triangle"};

static void check_gradient(reward_kind kind, int F) {
  text_vocab v;
  world_vocab(&v);
  reward_model m;
  reward_config cfg = tiny(kind);
  TB_CHECK(reward_model_create(&m, &cfg, &v) == TB_OK);
  reward_model_init(&m, 7);
  /* biases off zero so every unit is live */
  for (int64_t i = 0; i < m.params.total; i++) m.params.data[i] += 0.02f * sinf(0.7f * (float)i);
  nn_ctx *c = nn_ctx_new();
  int B = 3;
  int64_t per = (int64_t)F * 3 * cfg.size * cfg.size, n = B * per;
  float *x = xmalloc(sizeof(float) * n), *g = xmalloc(sizeof(float) * n), s[3], sp[3], sm[3];
  test_fill_uniform(x, n, 21 + kind, 0.05f, 0.95f);
  CHECKF(reward_score(&m, c, x, B, F, k_texts, s, g) == TB_OK, "%s", err_get());
  int bad = 0, checked = 0;
  double maxerr = 0, gmax = 0;
  for (int64_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
  for (int b = 0; b < B; b++)
    for (int k = 0; k < 12; k++) {
      int64_t j = b * per + (per * (2 * k + 1)) / 24;
      float keep = x[j], e = 5e-3f;
      x[j] = keep + e;
      reward_score(&m, c, x, B, F, k_texts, sp, NULL);
      x[j] = keep - e;
      reward_score(&m, c, x, B, F, k_texts, sm, NULL);
      x[j] = keep;
      double fd = (sp[b] - sm[b]) / (2.0 * e), err = fabs(fd - g[j]) / (0.05 * gmax + fabs(fd));
      maxerr = fmax(maxerr, err);
      checked++;
      if (err > 3e-2 && bad++ < 5) fprintf(stderr, "%s sample %d pixel %lld: analytic %.6g fd %.6g\n", reward_kind_name(kind), b, (long long)(j - b * per), g[j], fd);
      /* the other samples' scores do not move */
      for (int o = 0; o < B; o++)
        if (o != b) CHECKF(sp[o] == sm[o], "%s: sample %d moved with sample %d's pixel", reward_kind_name(kind), o, b);
    }
  /* scoring without a gradient runs without a tape: no activation kept for a backward, no
   * gradient memory (a fresh context for each, so the peaks compare the two passes) */
  {
    nn_ctx *cg = nn_ctx_new(), *cn = nn_ctx_new();
    float s_g[3], s_n[3];
    CHECK(reward_score(&m, cg, x, B, F, k_texts, s_g, g) == TB_OK);
    CHECK(reward_score(&m, cn, x, B, F, k_texts, s_n, NULL) == TB_OK);
    CHECKF(!nn_ctx_grad_enabled(cn), "%s: a score without gradient recorded a tape", reward_kind_name(kind));
    CHECKF(memcmp(s_g, s_n, sizeof s_g) == 0, "%s: scores differ with and without the gradient", reward_kind_name(kind));
    size_t bg = nn_ctx_bytes(cg), bn = nn_ctx_bytes(cn);
    printf("%-8s activation bytes with gradient %zu, without %zu\n", reward_kind_name(kind), bg, bn);
    CHECKF(bn < bg, "%s: the no-gradient pass holds %zu bytes, the gradient pass %zu", reward_kind_name(kind), bn, bg);
    nn_ctx_free(cg);
    nn_ctx_free(cn);
  }
  printf("%-8s F=%d: scores %.4f %.4f %.4f, %d pixels, max rel err %.2e\n", reward_kind_name(kind), F,
         s[0], s[1], s[2], checked, maxerr);
  CHECKF(bad == 0, "%s: %d gradient mismatches", reward_kind_name(kind), bad);
  CHECKF(gmax > 0, "%s: zero gradient", reward_kind_name(kind));

  /* checkpoint round trip */
  char path[4096];
  fs_join(path, sizeof path, test_outdir(), reward_kind_name(kind));
  strcat(path, ".safetensors");
  const char *meta[2] = {"dataset", "tiny"};
  CHECK(reward_model_save(&m, path, 1, meta) == TB_OK);
  reward_model m2;
  CHECKF(reward_model_load(&m2, path, 1) == TB_OK, "%s", err_get());
  CHECK(m2.params.grad == NULL && m2.cfg.kind == kind);
  float s2[3], *g2 = xmalloc(sizeof(float) * n);
  nn_ctx *c2 = nn_ctx_new();
  CHECK(reward_score(&m2, c2, x, B, F, k_texts, s2, g2) == TB_OK);
  CHECK(memcmp(s, s2, sizeof s) == 0 && memcmp(g, g2, sizeof(float) * n) == 0);
  if (kind != REWARD_QUALITY) {
    text_encoder *e = text_encoder_load(path);
    CHECKF(e != NULL, "text_encoder_load(%s): %s", path, err_get());
    text_encoder_free(e);
    /* an over-long caption is refused, not cut */
    const char *lt[3] = {"red red red red red red red red red red red red red", k_texts[1], k_texts[2]};
    CHECK(reward_score(&m2, c2, x, B, F, lt, s2, NULL) == TB_ERR);
    printf("  long caption: %s\n", err_get());
  }
  if (kind == REWARD_VIDEO) {
    CHECK(reward_score(&m2, c2, x, 1, 3, k_texts, s2, NULL) == TB_ERR);
    printf("  3 frames: %s\n", err_get());
  }
  nn_ctx_free(c2);
  reward_model_free(&m2);
  free(g2);
  free(x);
  free(g);
  nn_ctx_free(c);
  reward_model_free(&m);
  text_vocab_free(&v);
}

int main(void) {
  test_begin("test_reward");
  check_configs();
  check_gradient(REWARD_CLIP, 2);
  check_gradient(REWARD_QUALITY, 2);
  check_gradient(REWARD_VIDEO, 4);
  return test_finish();
}

/* test_eval: VBench quality dimensions and the world's exact semantic scores.
 *  - temporal flickering equals a direct numpy computation of VBench's formula to 1e-6
 *    (tests/golden/eval_tf_v1.txt from tests/golden/make_eval_tf_golden.py);
 *  - flicker clips score lower on temporal flickering than clean ones; static clips have dynamic
 *    degree 0, a texture moving 3 px per frame has 1;
 *  - clean clips scored against their own scenes: every exact semantic dimension >= 0.97;
 *    against another clip's scene: near chance; noise videos: near 0;
 *  - VBench normalisation and totals on known numbers; bad specs are refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/eval/eval.h"
#include "tests/testutil.h"
#include "tests/world_acc.h"

static uint8_t *formula_video(int F, int H, int W, int flicker) {
  uint8_t *v = xmalloc((size_t)F * H * W * 3);
  for (int f = 0; f < F; f++) {
    double g = 1 + 0.25 * (((f * 37) % 11) / 10.0 * 2 - 1);
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        for (int c = 0; c < 3; c++) {
          int val = (x * 7 + y * 13 + c * 51 + f * 29 + ((x * y + f * c) % 17) * 3) % 256;
          double o = flicker ? floor(val * g + 0.5) : val;
          if (o > 255) o = 255;
          v[(((size_t)f * H + y) * W + x) * 3 + c] = (uint8_t)o;
        }
  }
  return v;
}

static void test_tf_golden(void) {
  FILE *fp = fopen("tests/golden/eval_tf_v1.txt", "r");
  CHECKF(fp != NULL, "tests/golden/eval_tf_v1.txt missing (run from the repository root)");
  if (!fp) return;
  char line[256];
  int n = 0;
  while (fgets(line, sizeof line, fp)) {
    if (line[0] == '#') continue;
    char name[64];
    int F, H, W;
    double want;
    if (sscanf(line, "%63s %d %d %d %lf", name, &F, &H, &W, &want) != 5) continue;
    uint8_t *v = formula_video(F, H, W, strstr(name, "flicker") != NULL);
    double got = eval_temporal_flickering(v, F, H, W);
    CHECKF(fabs(got - want) <= 1e-6, "temporal flickering %s: %.9f, numpy %.9f", name, got, want);
    free(v);
    n++;
  }
  fclose(fp);
  CHECK(n == 4);
}

static uint8_t *render(const scene *s, int F) {
  uint8_t *v = xmalloc((size_t)F * s->width * s->height * 3);
  wa_render(s, F, v);
  return v;
}

static void test_flicker_dynamic(eval_ctx *c) {
  int W = 64, H = 64, F = 16;
  double tf_clean = 0, tf_flick = 0;
  int dd_static = 0, nst = 0;
  for (int k = 0; k < 20; k++) {
    scene_rng r;
    scene_rng_seed(&r, 77, (uint64_t)k, SCENE_STREAM_SCENE);
    scene s;
    scene_sample(&r, W, H, 8, NULL, &s);
    uint8_t *v = render(&s, F);
    tf_clean += eval_temporal_flickering(v, F, H, W);
    uint8_t *fl = xmalloc((size_t)F * H * W * 3);
    memcpy(fl, v, (size_t)F * H * W * 3);
    degrade_flicker(fl, F, H, W, 0.25, (uint64_t)k);
    tf_flick += eval_temporal_flickering(fl, F, H, W);
    /* static: the first frame throughout */
    for (int f = 1; f < F; f++) memcpy(v + (size_t)f * H * W * 3, v, (size_t)H * W * 3);
    dd_static += eval_dynamic_degree(c, v, F, H, W, 8, NULL);
    nst++;
    free(v);
    free(fl);
  }
  printf("temporal flickering: clean %.4f, flicker %.4f; dynamic degree of static clips %d/%d\n",
         tf_clean / 20, tf_flick / 20, dd_static, nst);
  CHECKF(tf_flick < tf_clean - 0.01 * 20, "flicker clips %.4f not below clean %.4f", tf_flick / 20, tf_clean / 20);
  CHECKF(dd_static == 0, "static clips: dynamic degree %d of %d", dd_static, nst);
  /* a texture moving 3 px per frame is dynamic; its flow is 3 px */
  uint8_t *m = xmalloc((size_t)F * H * W * 3);
  for (int f = 0; f < F; f++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        double u = x - 3.0 * f;
        uint8_t val = (uint8_t)(128 + 100 * sin(u * 0.4) * cos(y * 0.3));
        memset(m + (((size_t)f * H + y) * W + x) * 3, val, 3);
      }
  eval_quality q;
  CHECK(eval_dynamic_degree(c, m, F, H, W, 8, &q) == 1);
  CHECKF(fabs(q.flow_top[0] - 3.0) < 0.6, "flow of a 3 px shift: top-5%% mean %.3f", q.flow_top[0]);
  double ms = eval_motion_smoothness(c, m, F, H, W);
  CHECKF(ms > 0.95, "motion smoothness of a uniform translation %.4f", ms);
  free(m);
}

static void spec_of(const scene *s, world_spec *sp) { world_spec_from_scene(s, sp); }

static void test_semantic(eval_ctx *c) {
  const int fmts[3][3] = {{64, 64, 8}, {96, 72, 12}, {48, 48, 24}};
  eval_acc own, shuf, noise;
  eval_acc_init(&own);
  eval_acc_init(&shuf);
  eval_acc_init(&noise);
  int N = 90;
  scene prev = {0};
  for (int k = 0; k < N; k++) {
    const int *fm = fmts[k % 3];
    scene_rng r;
    scene_rng_seed(&r, 991, (uint64_t)k, SCENE_STREAM_SCENE);
    scene s;
    scene_sample(&r, fm[0], fm[1], fm[2], NULL, &s);
    int F = 2 * fm[2];
    uint8_t *v = render(&s, F);
    world_read rd;
    CHECK(world_read_video_u8(v, F, fm[1], fm[0], fm[2], NULL, &rd) == TB_OK);
    world_spec sp;
    spec_of(&s, &sp);
    eval_semantic es;
    CHECK(eval_semantic_video(&rd, &sp, &es) == TB_OK);
    eval_acc_add_semantic(&own, &es);
    if (getenv("EVAL_VERBOSE"))
      for (int d = EVAL_SEMANTIC_FIRST; d < EVAL_DIM_COUNT; d++)
        if (es.status[d] == WORLD_OK && es.value[d] < 0.99 && eval_dim_is_exact(d) == 1 && d < EVAL_CB_FIRST)
          fprintf(stderr, "clip %d %s %.2f: %s\n", k, eval_dim_name(d), es.value[d], es.reason[d]);
    if (k > 0) {
      world_spec sp2;
      spec_of(&prev, &sp2);
      CHECK(eval_semantic_video(&rd, &sp2, &es) == TB_OK);
      eval_acc_add_semantic(&shuf, &es);
    }
    world_read_free(&rd);
    /* noise video of the same size */
    uint64_t st = (uint64_t)k + 1;
    for (size_t i = 0; i < (size_t)F * fm[0] * fm[1] * 3; i++) v[i] = (uint8_t)(test_rand_u64(&st) >> 56);
    CHECK(world_read_video_u8(v, F, fm[1], fm[0], fm[2], NULL, &rd) == TB_OK);
    CHECK(eval_semantic_video(&rd, &sp, &es) == TB_OK);
    eval_acc_add_semantic(&noise, &es);
    world_read_free(&rd);
    free(v);
    prev = s;
  }
  printf("%-30s %8s %8s %8s\n", "dimension", "own", "shuffled", "noise");
  for (int d = EVAL_SEMANTIC_FIRST; d < EVAL_DIM_COUNT; d++) {
    printf("%-30s %8.3f %8.3f %8.3f\n", eval_dim_name(d), eval_acc_value(&own, d), eval_acc_value(&shuf, d), eval_acc_value(&noise, d));
    if (eval_dim_is_exact(d) != 1) {
      CHECKF(own.n[d] == 0, "%s scored although not applicable", eval_dim_name(d));
      continue;
    }
    /* VBench semantic dims are exact on clean clips; CompBench's maps have their own scale
     * (motion binding is a displacement fraction, spatial 1 − IoU) */
    if (d < EVAL_CB_FIRST) CHECKF(eval_acc_value(&own, d) >= 0.97, "%s own captions %.3f < 0.97", eval_dim_name(d), eval_acc_value(&own, d));
    if (d == EVAL_CB_CONSISTENT_ATTR || d == EVAL_CB_ACTION || d == EVAL_CB_NUMERACY || d == EVAL_CB_SPATIAL)
      CHECKF(eval_acc_value(&own, d) >= 0.9, "%s own captions %.3f < 0.9", eval_dim_name(d), eval_acc_value(&own, d));
    CHECKF(eval_acc_value(&shuf, d) < eval_acc_value(&own, d) - 0.1 || eval_acc_value(&own, d) < 0.5,
           "%s shuffled %.3f not below own %.3f", eval_dim_name(d), eval_acc_value(&shuf, d), eval_acc_value(&own, d));
    if (d < EVAL_CB_FIRST) CHECKF(eval_acc_value(&noise, d) <= 0.1, "%s on noise %.3f > 0.1", eval_dim_name(d), eval_acc_value(&noise, d));
  }
}

static void test_totals(void) {
  double raw[EVAL_VBENCH_COUNT];
  int have[EVAL_VBENCH_COUNT];
  for (int d = 0; d < EVAL_VBENCH_COUNT; d++) {
    double mn, mx, w;
    eval_vbench_constants((eval_dim)d, &mn, &mx, &w);
    raw[d] = mx; /* every dimension at its max: n = weight, Quality = Semantic = Total = 1 */
    have[d] = 1;
  }
  eval_totals t;
  eval_vbench_totals(raw, have, 0, &t);
  CHECKF(fabs(t.quality - 1) < 1e-12 && fabs(t.semantic - 1) < 1e-12 && fabs(t.total - 1) < 1e-12,
         "totals at max: %g %g %g", t.quality, t.semantic, t.total);
  raw[EVAL_SCENE] = 1.0; /* above VBench's max 0.8222 */
  eval_vbench_totals(raw, have, 0, &t);
  CHECK(t.norm[EVAL_SCENE] > 1.2);
  eval_vbench_totals(raw, have, 1, &t);
  CHECK(fabs(t.norm[EVAL_SCENE] - 1) < 1e-12);
  CHECK(fabs(eval_vbench_normalise(EVAL_SUBJECT_CONSISTENCY, 0.1462)) < 1e-12);
  CHECK(fabs(eval_vbench_normalise(EVAL_DYNAMIC_DEGREE, 1.0) - 0.5) < 1e-12);
  have[EVAL_COLOR] = 0;
  eval_vbench_totals(raw, have, 1, &t);
  CHECK(isnan(t.semantic) && isnan(t.total) && !isnan(t.quality));
  CHECK(eval_dim_from_name("temporal_flickering") == EVAL_TEMPORAL_FLICKERING);
  CHECK(eval_dim_from_name("generative_numeracy") == EVAL_CB_NUMERACY);
  CHECK(eval_dim_na_reason(EVAL_CB_INTERACTION) != NULL);
  /* bad spec */
  world_read r;
  memset(&r, 0, sizeof r);
  world_spec sp = {.n_objects = 3};
  eval_semantic es;
  CHECK(eval_semantic_video(&r, &sp, &es) == TB_ERR);
  const char *js = "{\"background\":\"navy\",\"objects\":[{\"colour\":\"mauve\"}]}";
  json_value *v = json_parse(js, strlen(js), NULL);
  CHECK(v && world_spec_json_get(v, &sp) == TB_ERR && strstr(err_get(), "mauve"));
  json_free(v);
  js = "{\"background\":\"navy\",\"pan\":\"left\",\"objects\":[{\"colour\":\"red\",\"shape\":\"ring\"}]}";
  v = json_parse(js, strlen(js), NULL);
  CHECK(v && world_spec_json_get(v, &sp) == TB_OK && sp.bg == SCENE_BG_NAVY && sp.pan == SCENE_PAN_LEFT &&
        sp.obj[0].shape == SCENE_SHAPE_RING && sp.obj[0].motion == -1);
  json_free(v);
}

int main(void) {
  test_begin("test_eval");
  eval_ctx *c = eval_ctx_new();
  test_tf_golden();
  test_flicker_dynamic(c);
  test_semantic(c);
  test_totals();
  eval_ctx_free(c);
  return test_finish();
}

/* test_world_reader: the world's pixel reader against the scenes it renders, at several sizes
 * and fps, clean and degraded (blur, noise, colour shift by 30 levels, objects cut by the frame
 * edge), with accuracy thresholds per attribute; wrap-around tracks; reasons for what cannot be
 * read; bad arguments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "tests/testutil.h"
#include "tests/world_acc.h"

typedef struct { int W, H, fps; double secs; } fmt;
static const fmt FMTS[] = {{64, 64, 8, 2.0}, {48, 36, 12, 2.0}, {96, 54, 24, 1.5}, {160, 120, 30, 1.0}};

static int run_corpus(world_degradation d, int clips, world_acc *acc, int verbose) {
  memset(acc, 0, sizeof *acc);
  for (int c = 0; c < clips; c++) {
    const fmt *fm = &FMTS[c % 4];
    scene_rng r;
    scene_rng_seed(&r, 1234, (uint64_t)c, SCENE_STREAM_SCENE);
    scene s;
    if (scene_sample(&r, fm->W, fm->H, fm->fps, NULL, &s) != TB_OK) return TB_ERR;
    int F = (int)lrint(fm->secs * fm->fps);
    uint8_t *rgb = xmalloc((size_t)F * fm->W * fm->H * 3);
    wa_render(&s, F, rgb);
    wd_apply(d, rgb, F, fm->H, fm->W, (uint64_t)c);
    world_read rd;
    if (world_read_video_u8(rgb, F, fm->H, fm->W, fm->fps, NULL, &rd) != TB_OK) {
      free(rgb);
      return TB_ERR;
    }
    if (verbose) fprintf(stderr, "clip %d (%dx%d@%d bg %d pan %d n %d):\n", c, fm->W, fm->H, fm->fps, s.bg, s.pan, s.n_objects);
    wa_compare(acc, &s, &rd, d == WD_CUT, verbose);
    world_read_free(&rd);
    free(rgb);
  }
  return TB_OK;
}

/* An object crossing the right edge re-enters on the left: the track must stay one object
 * moving right at its speed (wrap-around), at every size. */
static void test_wraparound(void) {
  for (int k = 0; k < 4; k++) {
    const fmt *fm = &FMTS[k];
    scene s = {.width = fm->W, .height = fm->H, .fps = fm->fps, .bg = SCENE_BG_NAVY, .n_objects = 1};
    s.obj[0] = (scene_object){SCENE_COLOUR_YELLOW, SCENE_SHAPE_SQUARE, SCENE_SIZE_SMALL,
                              SCENE_MOTION_RIGHT, SCENE_SPEED_FAST, 0.8, 0.5};
    int F = (int)lrint(2.0 * fm->fps);
    uint8_t *rgb = xmalloc((size_t)F * fm->W * fm->H * 3);
    wa_render(&s, F, rgb);
    world_read r;
    CHECK(world_read_video_u8(rgb, F, fm->H, fm->W, fm->fps, NULL, &r) == TB_OK);
    CHECKF(r.n_objects == 1, "wrap %dx%d: %d objects (one object crossing the edge)", fm->W, fm->H, r.n_objects);
    if (r.n_objects >= 1) {
      CHECKF(fabs(r.obj[0].vx - SCENE_WPS_FAST) < 0.01, "wrap %dx%d: vx %.4f W/s, want 0.2", fm->W, fm->H, r.obj[0].vx);
      CHECKF(r.obj[0].value[WORLD_ATTR_SHAPE] == SCENE_SHAPE_SQUARE && r.obj[0].st[WORLD_ATTR_SHAPE].status == WORLD_OK,
             "wrap %dx%d: shape not read as square", fm->W, fm->H);
    }
    world_read_free(&r);
    free(rgb);
  }
}

/* What cannot be read says why; bad arguments are refused. */
static void test_reasons(void) {
  int W = 64, H = 64;
  uint8_t *rgb = xcalloc((size_t)W * H * 3, 1);
  world_read r;
  /* one frame: no motion */
  scene s = {.width = W, .height = H, .fps = 8, .bg = SCENE_BG_GRAY, .n_objects = 1};
  s.obj[0] = (scene_object){SCENE_COLOUR_RED, SCENE_SHAPE_CIRCLE, SCENE_SIZE_LARGE, SCENE_MOTION_UP, SCENE_SPEED_SLOW, 0.5, 0.5};
  scene_render(&s, 0, rgb);
  CHECK(world_read_video_u8(rgb, 1, H, W, 8, NULL, &r) == TB_OK);
  CHECK(r.n_objects == 1);
  if (r.n_objects == 1) {
    CHECK(r.obj[0].st[WORLD_ATTR_SHAPE].status == WORLD_OK && r.obj[0].value[WORLD_ATTR_SHAPE] == SCENE_SHAPE_CIRCLE);
    CHECK(r.obj[0].st[WORLD_ATTR_MOTION].status == WORLD_FAIL && strstr(r.obj[0].st[WORLD_ATTR_MOTION].reason, "one frame"));
  }
  world_read_free(&r);
  /* an object cut by the frame edge in every frame: shape not read, with the reason */
  s.obj[0].x = 0.02;
  s.obj[0].motion = SCENE_MOTION_STILL;
  uint8_t *v = xmalloc((size_t)4 * W * H * 3);
  for (int f = 0; f < 4; f++) scene_render(&s, f / 8.0, v + (size_t)f * W * H * 3);
  /* keep only the right half of the wrapped object: blank the left 20 columns to background */
  for (int f = 0; f < 4; f++)
    for (int y = 0; y < H; y++)
      for (int x = W - 16; x < W; x++) memset(v + (((size_t)f * H + y) * W + x) * 3, 110, 3);
  CHECK(world_read_video_u8(v, 4, H, W, 8, NULL, &r) == TB_OK);
  CHECKF(r.n_objects == 1, "cut: %d objects", r.n_objects);
  if (r.n_objects == 1)
    CHECKF(r.obj[0].st[WORLD_ATTR_SHAPE].status == WORLD_FAIL && strstr(r.obj[0].st[WORLD_ATTR_SHAPE].reason, "cut"),
           "cut object: shape status %d reason '%s'", r.obj[0].st[WORLD_ATTR_SHAPE].status, r.obj[0].st[WORLD_ATTR_SHAPE].reason);
  world_read_free(&r);
  /* nothing but noise: no background, no objects, and the read says so */
  uint64_t st = 5;
  for (int i = 0; i < 4 * W * H * 3; i++) v[i] = (uint8_t)(test_rand_u64(&st) & 255);
  CHECK(world_read_video_u8(v, 4, H, W, 8, NULL, &r) == TB_OK);
  CHECKF(r.st[WORLD_ATTR_BACKGROUND].status == WORLD_FAIL, "noise video: background read as %d", r.value[WORLD_ATTR_BACKGROUND]);
  world_read_free(&r);
  /* bad arguments */
  CHECK(world_read_video_u8(NULL, 4, H, W, 8, NULL, &r) == TB_ERR);
  CHECK(world_read_video_u8(v, 0, H, W, 8, NULL, &r) == TB_ERR);
  CHECK(world_read_video_u8(v, 4, 4, W, 8, NULL, &r) == TB_ERR);
  CHECK(world_read_video_u8(v, 4, H, W, 0, NULL, &r) == TB_ERR && strstr(err_get(), "fps"));
  free(v);
  free(rgb);
}

int main(void) {
  test_begin("test_world_reader");
  const char *v = getenv("WORLD_VERBOSE");
  int clips = getenv("WORLD_CLIPS") ? atoi(getenv("WORLD_CLIPS")) : 120;
  wa_print_header();
  /* Thresholds: right reads per attribute; "unread" (ambiguous pan on plain backgrounds) is
   * allowed, wrong reads are bounded. */
  static const double MIN_RIGHT[WD_COUNT][WA_N] = {
      /* colour shape size motion speed count bg pan rel */
      {0.99, 0.97, 0.98, 0.60, 0.60, 0.98, 0.99, 0.15, 0.95},
      {0.99, 0.93, 0.95, 0.60, 0.60, 0.97, 0.99, 0.15, 0.95},
      {0.97, 0.90, 0.95, 0.60, 0.60, 0.93, 0.95, 0.15, 0.95},
      {0.95, 0.93, 0.95, 0.60, 0.60, 0.95, 0.85, 0.15, 0.90},
      {0.90, 0.60, 0.60, 0.50, 0.50, 0.00, 0.95, 0.10, 0.00},
  };
  for (int d = 0; d < WD_COUNT; d++) {
    world_acc a;
    CHECK(run_corpus((world_degradation)d, clips, &a, v && atoi(v) == d + 1) == TB_OK);
    wa_print(WD_NAMES[d], &a);
    for (int k = 0; k < WA_N; k++) {
      if (!a.n[k]) continue;
      CHECKF(wa_rate(&a, k) >= MIN_RIGHT[d][k], "%s %s: %.3f right < %.2f (%d wrong, %d unread of %d)",
             WD_NAMES[d], WA_NAMES[k], wa_rate(&a, k), MIN_RIGHT[d][k], a.wrong[k], a.unread[k], a.n[k]);
      /* the reader may decline, but it must rarely be wrong */
      /* an unread motion on a plain background must be one the pixels cannot tell apart */
      if (d == WD_CLEAN && (k == WA_MOTION || k == WA_SPEED || k == WA_PAN))
        CHECKF(a.unread[k] == a.ambiguous_ok[k], "clean %s: %d unread, only %d of them ambiguous",
               WA_NAMES[k], a.unread[k], a.ambiguous_ok[k]);
      double maxwrong = d == WD_CLEAN ? 0.02 : d == WD_CUT ? 0.15 : 0.06;
      CHECKF(wa_wrong_rate(&a, k) <= maxwrong, "%s %s: %.3f wrong > %.2f", WD_NAMES[d], WA_NAMES[k],
             wa_wrong_rate(&a, k), maxwrong);
    }
  }
  test_wraparound();
  test_reasons();
  return test_finish();
}

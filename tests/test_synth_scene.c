/* The built-in world's scene module (common/scene.h) against SYNTHETIC_WORLD.md: palette and
 * anti-aliasing, motion speeds per second at any fps, wrap-around drawn on both sides, camera
 * pan, the checkerboard, the exclusion list, the sampler's distribution and placement, captions,
 * and the JSON round trip (a scene read back renders the same bytes). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "common/scene.h"
#include "tests/testutil.h"

static scene one_object(int W, int H, int fps, scene_bg bg, scene_object o) {
  scene s;
  memset(&s, 0, sizeof s);
  s.width = W;
  s.height = H;
  s.fps = fps;
  s.bg = bg;
  s.n_objects = 1;
  s.obj[0] = o;
  return s;
}

static const uint8_t *px(const uint8_t *rgb, int W, int x, int y) { return rgb + 3 * ((size_t)W * y + x); }

static int same_rgb(const uint8_t *a, const uint8_t *b) { return a[0] == b[0] && a[1] == b[1] && a[2] == b[2]; }

/* Centroid (pixels) of the pixels closer to colour c than 40 levels per channel. */
static int centroid(const uint8_t *rgb, int W, int H, const uint8_t c[3], double *cx, double *cy) {
  double sx = 0, sy = 0;
  int n = 0;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      const uint8_t *p = px(rgb, W, x, y);
      if (abs(p[0] - c[0]) < 40 && abs(p[1] - c[1]) < 40 && abs(p[2] - c[2]) < 40) {
        sx += x + 0.5;
        sy += y + 0.5;
        n++;
      }
    }
  if (n) {
    *cx = sx / n;
    *cy = sy / n;
  }
  return n;
}

/* Independent statement of the default held-out list. */
static int held_out(const scene_object *o, scene_bg bg) {
  return (o->colour == SCENE_COLOUR_GREEN && o->shape == SCENE_SHAPE_TRIANGLE) ||
         (o->colour == SCENE_COLOUR_YELLOW && o->shape == SCENE_SHAPE_SQUARE) ||
         (o->colour == SCENE_COLOUR_PURPLE && o->shape == SCENE_SHAPE_CIRCLE &&
          o->motion == SCENE_MOTION_UP) ||
         (o->shape == SCENE_SHAPE_RING && bg == SCENE_BG_SAND);
}

static void test_palette_and_edges(void) {
  int W = 64, H = 64;
  uint8_t *rgb = xmalloc(3 * W * H);
  for (int c = 0; c < SCENE_COLOUR_COUNT; c++)
    for (int sh = 0; sh < SCENE_SHAPE_COUNT; sh++) {
      scene s = one_object(W, H, 8, (scene_bg)(c % 5),
                           (scene_object){(scene_colour)c, (scene_shape)sh, SCENE_SIZE_LARGE,
                                          SCENE_MOTION_STILL, SCENE_SPEED_SLOW, 0.5, 0.5});
      scene_render(&s, 0, rgb);
      uint8_t col[3], bg[3];
      scene_colour_rgb((scene_colour)c, col);
      scene_bg_rgb(s.bg, bg);
      /* a pixel well inside: centre for filled shapes, on the stroke for the ring */
      int ix = sh == SCENE_SHAPE_RING ? 32 + (int)(0.17 * W) - 1 : 32;
      int iy = sh == SCENE_SHAPE_TRIANGLE ? 36 : 32;
      CHECKF(same_rgb(px(rgb, W, ix, iy), col), "%s %s: inside pixel (%d,%d) is %d,%d,%d",
             scene_colour_name((scene_colour)c), scene_shape_name((scene_shape)sh), ix, iy,
             px(rgb, W, ix, iy)[0], px(rgb, W, ix, iy)[1], px(rgb, W, ix, iy)[2]);
      CHECK(same_rgb(px(rgb, W, 2, 2), bg));
      if (sh == SCENE_SHAPE_RING) CHECK(same_rgb(px(rgb, W, 32, 32), bg)); /* hollow */
      if (sh == SCENE_SHAPE_TRIANGLE) CHECK(same_rgb(px(rgb, W, 23, 23), bg)); /* apex up */
      if (sh == SCENE_SHAPE_SQUARE) CHECK(same_rgb(px(rgb, W, 23, 23), col)); /* corners filled */
    }
  /* anti-aliasing: a circle of radius 10.88 px has pixels of partial coverage on its edge */
  scene s = one_object(W, H, 8, SCENE_BG_BLACK,
                       (scene_object){SCENE_COLOUR_WHITE, SCENE_SHAPE_CIRCLE, SCENE_SIZE_LARGE,
                                      SCENE_MOTION_STILL, SCENE_SPEED_SLOW, 0.5, 0.5});
  scene_render(&s, 0, rgb);
  int partial = 0;
  for (int x = 0; x < W; x++) {
    int v = px(rgb, W, x, 32)[0];
    if (v > 15 && v < 240) partial++;
  }
  CHECKF(partial >= 2, "no anti-aliased pixels on a circle's edge (%d)", partial);
  double cov = scene_object_coverage(&s, 0, 0, 32 + 10, 31);
  CHECKF(cov > 0 && cov < 1, "edge coverage %g", cov);
  /* small size: radius 0.09 W */
  s.obj[0].size = SCENE_SIZE_SMALL;
  scene_render(&s, 0, rgb);
  double covered = 0; /* white over black: coverage = (v - 15) / 225 */
  for (int i = 0; i < W * H; i++) covered += (rgb[3 * i] - 15) / 225.0;
  double area = M_PI * pow(0.09 * W, 2);
  CHECKF(fabs(covered - area) < 0.02 * area, "small circle covers %.1f px, expected %.1f", covered,
         area);
  free(rgb);
}

static void test_motion(void) {
  /* a fast object moves 0.2 W per second whatever the fps (0.025 W per frame at 8 fps) */
  int W = 96, H = 72;
  static const int FPS[4] = {8, 12, 24, 30};
  for (int fps_i = 0; fps_i < 4; fps_i++) {
    int fps = FPS[fps_i];
    scene s = one_object(W, H, fps, SCENE_BG_NAVY,
                         (scene_object){SCENE_COLOUR_RED, SCENE_SHAPE_SQUARE, SCENE_SIZE_SMALL,
                                        SCENE_MOTION_RIGHT, SCENE_SPEED_FAST, 0.25, 0.5});
    double x0, y0, x1, y1;
    scene_object_position(&s, 0, 0, &x0, &y0);
    scene_object_position(&s, 0, (double)fps / fps, &x1, &y1); /* after fps frames = 1 s */
    CHECKF(fabs((x1 - x0) - 0.2 * W) < 1e-9 && fabs(y1 - y0) < 1e-12, "fps %d: moved %g px", fps,
           x1 - x0);
    scene_object_position(&s, 0, 1.0 / fps, &x1, &y1);
    if (fps == 8) CHECK(fabs((x1 - x0) - 0.025 * W) < 1e-9);
  }
  /* directions and slow speed, measured on rendered centroids */
  uint8_t *rgb = xmalloc(3 * W * H);
  const int dx[5] = {0, -1, 1, 0, 0}, dy[5] = {0, 0, 0, -1, 1};
  for (int m = 0; m < SCENE_MOTION_COUNT; m++) {
    scene s = one_object(W, H, 8, SCENE_BG_BLACK,
                         (scene_object){SCENE_COLOUR_GREEN, SCENE_SHAPE_CIRCLE, SCENE_SIZE_LARGE,
                                        (scene_motion)m, SCENE_SPEED_SLOW, 0.5, 0.5});
    uint8_t g[3];
    scene_colour_rgb(SCENE_COLOUR_GREEN, g);
    double ax, ay, bx, by;
    scene_render(&s, 0, rgb);
    centroid(rgb, W, H, g, &ax, &ay);
    scene_render(&s, 2.0, rgb);
    centroid(rgb, W, H, g, &bx, &by);
    double want = 2.0 * 0.064 * W;
    CHECKF(fabs((bx - ax) - dx[m] * want) < 0.3 && fabs((by - ay) - dy[m] * want) < 0.3,
           "motion %s: centroid moved (%.2f, %.2f), expected (%.2f, %.2f)",
           scene_motion_name((scene_motion)m), bx - ax, by - ay, dx[m] * want, dy[m] * want);
  }
  /* wrap-around: an object crossing the right edge shows on both sides */
  scene s = one_object(W, H, 8, SCENE_BG_BLACK,
                       (scene_object){SCENE_COLOUR_WHITE, SCENE_SHAPE_SQUARE, SCENE_SIZE_LARGE,
                                      SCENE_MOTION_RIGHT, SCENE_SPEED_FAST, 0.83, 0.5});
  double t = (1.0 - 0.83) / 0.2; /* centre on the edge */
  scene_render(&s, t, rgb);
  CHECK(px(rgb, W, 0, 36)[0] == 240 && px(rgb, W, W - 1, 36)[0] == 240);
  CHECK(px(rgb, W, W / 2, 36)[0] == 15);
  double x, y;
  scene_object_position(&s, 0, 10.0, &x, &y);
  CHECK(x >= 0 && x < W && y >= 0 && y < H);
  /* vertical wrap */
  s.obj[0].motion = SCENE_MOTION_UP;
  s.obj[0].x = 0.5;
  s.obj[0].y = 0.2;
  scene_render(&s, 0.2 * H / (0.2 * W), rgb);
  CHECK(px(rgb, W, 48, 0)[0] == 240 && px(rgb, W, 48, H - 1)[0] == 240);
  /* camera pan left: a still object drifts right at the slow speed */
  s.obj[0] = (scene_object){SCENE_COLOUR_WHITE, SCENE_SHAPE_CIRCLE, SCENE_SIZE_SMALL,
                            SCENE_MOTION_STILL, SCENE_SPEED_FAST, 0.3, 0.5};
  s.pan = SCENE_PAN_LEFT;
  double px0, px1, py;
  scene_object_position(&s, 0, 0, &px0, &py);
  scene_object_position(&s, 0, 1.0, &px1, &py);
  CHECK(fabs((px1 - px0) - 0.064 * W) < 1e-9);
  s.pan = SCENE_PAN_RIGHT;
  scene_object_position(&s, 0, 1.0, &px1, &py);
  CHECK(fabs((px1 - px0) + 0.064 * W) < 1e-9);
  free(rgb);
}

static void test_checkered(void) {
  int W = 64, H = 48;
  uint8_t *a = xmalloc(3 * W * H), *b = xmalloc(3 * W * H);
  scene s = one_object(W, H, 8, SCENE_BG_CHECKERED,
                       (scene_object){SCENE_COLOUR_RED, SCENE_SHAPE_CIRCLE, SCENE_SIZE_SMALL,
                                      SCENE_MOTION_STILL, SCENE_SPEED_SLOW, 0.1, 0.15});
  scene_render(&s, 0, a);
  /* squares of W/8 = 8 px, levels 90 and 130 */
  int v0 = px(a, W, 40, 20)[0], v1 = px(a, W, 48, 20)[0], v2 = px(a, W, 40, 28)[0];
  CHECKF((v0 == 90 || v0 == 130) && v0 + v1 == 220 && v0 + v2 == 220, "checker %d %d %d", v0,
         v1, v2);
  /* a pan by two squares (one period) gives the same background */
  s.pan = SCENE_PAN_RIGHT;
  s.obj[0].x = 0.5; /* keep the object out of the compared rows */
  s.obj[0].y = 0.2; /* rows 4-15, clear of the top edge (it would wrap to the bottom) */
  double period_t = 2.0 * (W / 8.0) / (0.064 * W);
  scene_render(&s, period_t, b);
  int maxd = 0;
  for (int y = 16; y < H; y++)
    for (int x = 0; x < W; x++) {
      int d = abs(px(a, W, x, y)[0] - px(b, W, x, y)[0]);
      if (d > maxd) maxd = d;
    }
  CHECKF(maxd <= 1, "checkerboard after one pan period differs by %d", maxd);
  /* half a pixel: every vertical checker edge becomes a pixel of the mean level */
  scene_render(&s, 0.5 / (0.064 * W), b);
  int mids = 0;
  for (int x = 0; x < W; x++) mids += px(b, W, x, 40)[0] == 110;
  CHECKF(mids == 8, "half-pixel pan: %d pixels of level 110 in a row, expected 8", mids);
  free(a);
  free(b);
}

static void test_exclusions(void) {
  scene_exclusions *e = scene_exclusions_parse(SCENE_EXCLUSIONS_DEFAULT_TEXT);
  CHECKF(e && scene_exclusions_count(e) == 4, "default text: %s", err_get());
  char buf[128];
  CHECK(strcmp(scene_exclusions_rule_text(e, 2, buf, sizeof buf), "purple circle up") == 0);
  scene_exclusions_free(e);
  CHECK(scene_exclusions_count(scene_exclusions_default()) == 4);
  CHECK(scene_exclusions_parse("green hexagon\n") == NULL);
  CHECK(strstr(err_get(), "hexagon") != NULL && strstr(err_get(), "line 1") != NULL);
  CHECK(scene_exclusions_parse("red blue\n") == NULL);
  e = scene_exclusions_parse("# comment\n\nany ring on a sand background\na purple circle moving up\n");
  CHECK(e && scene_exclusions_count(e) == 2);
  scene_object o = {SCENE_COLOUR_RED, SCENE_SHAPE_RING, SCENE_SIZE_SMALL, SCENE_MOTION_LEFT,
                    SCENE_SPEED_FAST, 0.5, 0.5};
  CHECK(scene_object_is_excluded(&o, SCENE_BG_SAND, e));
  CHECK(!scene_object_is_excluded(&o, SCENE_BG_NAVY, e));
  o.shape = SCENE_SHAPE_CIRCLE;
  o.colour = SCENE_COLOUR_PURPLE;
  CHECK(!scene_object_is_excluded(&o, SCENE_BG_NAVY, e));
  o.motion = SCENE_MOTION_UP;
  CHECK(scene_object_is_excluded(&o, SCENE_BG_NAVY, e));
  scene_exclusions_free(e);
}

static void test_sampler(void) {
  const int N = 20000;
  int two = 0, pans = 0, colours[SCENE_COLOUR_COUNT] = {0}, shapes[SCENE_SHAPE_COUNT] = {0};
  int motions[SCENE_MOTION_COUNT] = {0}, bgs[SCENE_BG_COUNT] = {0}, rels[SCENE_REL_COUNT] = {0};
  int bad_held = 0, bad_place = 0, bad_rel = 0, same_colour = 0, objects = 0;
  for (int i = 0; i < N; i++) {
    scene_rng r;
    scene_rng_seed(&r, 11, (uint64_t)i, SCENE_STREAM_SCENE);
    int W = 48 + 2 * (i % 57), H = (i % 3 == 0) ? W : (i % 3 == 1) ? 2 * (W * 3 / 8) : 2 * (W * 9 / 32);
    scene s;
    if (scene_sample(&r, W, H, 8, scene_exclusions_default(), &s) != TB_OK) {
      CHECKF(0, "sample %d: %s", i, err_get());
      continue;
    }
    two += s.n_objects == 2;
    pans += s.pan != SCENE_PAN_NONE;
    bgs[s.bg]++;
    for (int k = 0; k < s.n_objects; k++) {
      const scene_object *o = &s.obj[k];
      objects++;
      colours[o->colour]++;
      shapes[o->shape]++;
      motions[o->motion]++;
      bad_held += held_out(o, s.bg);
      double rad = scene_size_radius(o->size) * W;
      double x = o->x * W, y = o->y * H;
      if (x < rad - 0.2 || x > W - rad + 0.2 || y < rad - 0.2 || y > H - rad + 0.2) bad_place++;
    }
    if (s.n_objects == 2) {
      rels[s.relation]++;
      same_colour += s.obj[0].colour == s.obj[1].colour;
      double dx = (s.obj[1].x - s.obj[0].x) * W, dy = (s.obj[1].y - s.obj[0].y) * H;
      double gap = scene_size_radius(s.obj[0].size) * W + scene_size_radius(s.obj[1].size) * W;
      int ok = 0;
      switch (s.relation) {
      case SCENE_REL_LEFT_OF: ok = dx >= gap && fabs(dy) <= 0.5 * dx + 0.5; break;
      case SCENE_REL_RIGHT_OF: ok = -dx >= gap && fabs(dy) <= -0.5 * dx + 0.5; break;
      case SCENE_REL_ABOVE: ok = dy >= gap && fabs(dx) <= 0.5 * dy + 0.5; break;
      case SCENE_REL_BELOW: ok = -dy >= gap && fabs(dx) <= -0.5 * dy + 0.5; break;
      default: break;
      }
      bad_rel += !ok;
    } else {
      CHECK(s.relation == SCENE_REL_NONE);
    }
  }
  printf("sampler: %d scenes, two objects %.3f, pan %.3f\n", N, (double)two / N, (double)pans / N);
  CHECKF(fabs((double)two / N - 0.3) < 0.02, "two-object fraction %.3f", (double)two / N);
  CHECKF(fabs((double)pans / N - 0.2) < 0.02, "pan fraction %.3f", (double)pans / N);
  CHECKF(bad_held == 0, "%d held-out objects sampled", bad_held);
  CHECKF(bad_place == 0, "%d objects not inside the first frame", bad_place);
  CHECKF(bad_rel == 0, "%d relations that disagree with positions", bad_rel);
  CHECKF(same_colour == 0, "%d two-object scenes with one colour", same_colour);
  for (int k = 0; k < SCENE_COLOUR_COUNT; k++) CHECKF(colours[k] > objects / 16, "colour %d: %d", k, colours[k]);
  for (int k = 0; k < SCENE_SHAPE_COUNT; k++) CHECKF(shapes[k] > objects / 8, "shape %d: %d", k, shapes[k]);
  for (int k = 0; k < SCENE_MOTION_COUNT; k++) CHECKF(motions[k] > objects / 8, "motion %d", k);
  for (int k = 0; k < SCENE_BG_COUNT; k++) CHECKF(bgs[k] > N / 10, "background %d", k);
  for (int k = 1; k < SCENE_REL_COUNT; k++) CHECKF(rels[k] > two / 10, "relation %d: %d", k, rels[k]);
  /* reproducible: same (seed, index, stream) → same scene */
  scene a, b;
  scene_rng r1, r2;
  scene_rng_seed(&r1, 5, 9, SCENE_STREAM_SCENE);
  scene_rng_seed(&r2, 5, 9, SCENE_STREAM_SCENE);
  scene_sample(&r1, 64, 64, 8, NULL, &a);
  scene_sample(&r2, 64, 64, 8, NULL, &b);
  CHECK(memcmp(&a, &b, sizeof a) == 0);
  /* an exclusion list that leaves nothing fails cleanly */
  scene_exclusions *all = scene_exclusions_parse("black\ngray\nnavy\nforest\nsand\ncheckered\n");
  CHECK(all && scene_sample(&r1, 64, 64, 8, all, &a) == TB_ERR);
  scene_exclusions_free(all);
}

static void test_captions_and_json(void) {
  int pan_named = 0, pans = 0;
  for (int i = 0; i < 3000; i++) {
    scene_rng r;
    scene_rng_seed(&r, 3, (uint64_t)i, SCENE_STREAM_SCENE);
    scene s;
    scene_sample(&r, 80, 60, 12, scene_exclusions_default(), &s);
    char lc[512], sc[256];
    scene_rng_seed(&r, 3, (uint64_t)i, SCENE_STREAM_CAPTION);
    scene_caption_long(&s, &r, lc, sizeof lc);
    scene_caption_short(&s, &r, sc, sizeof sc);
    for (int k = 0; k < s.n_objects; k++) {
      const scene_object *o = &s.obj[k];
      CHECKF(strstr(lc, scene_colour_name(o->colour)) && strstr(sc, scene_colour_name(o->colour)),
             "colour missing: '%s' / '%s'", lc, sc);
      CHECKF(strstr(sc, scene_shape_name(o->shape)), "shape missing from '%s'", sc);
      if (o->motion != SCENE_MOTION_STILL) {
        CHECKF(strstr(sc, scene_motion_name(o->motion)) != NULL, "motion missing from '%s'", sc);
        const char *fast[] = {"quickly", "rapidly", "fast", "high speed"};
        const char *slow[] = {"slowly", "gently", "slow pace"};
        int found = 0;
        for (int w = 0; w < (o->speed == SCENE_SPEED_FAST ? 4 : 3); w++)
          found |= strstr(lc, o->speed == SCENE_SPEED_FAST ? fast[w] : slow[w]) != NULL;
        CHECKF(found, "speed missing from '%s'", lc);
      }
    }
    if (s.n_objects == 2) {
      CHECKF(strstr(sc, scene_relation_name(s.relation)) != NULL, "relation missing from '%s'", sc);
      int rel_named = strstr(lc, scene_relation_name(s.relation)) != NULL ||
                      strstr(lc, "on the left") || strstr(lc, "at the top");
      CHECKF(rel_named, "relation missing from '%s'", lc);
    }
    if (s.pan != SCENE_PAN_NONE) {
      pans++;
      pan_named += strstr(lc, "camera") && strstr(lc, scene_pan_name(s.pan)) && strstr(sc, "camera");
    }
    CHECKF(strlen(lc) < 400 && strlen(sc) < 200, "caption too long: '%s'", lc);
    /* JSON round trip renders the same bytes */
    json_buf b = {0};
    scene_json_put(&b, &s);
    json_value *v = json_parse(b.data, b.len, NULL);
    scene back;
    CHECKF(v && scene_json_get(v, &back) == TB_OK, "scene JSON: %s (%s)", err_get(), b.data);
    if (v && i % 10 == 0) {
      uint8_t *p1 = xmalloc(3 * 80 * 60), *p2 = xmalloc(3 * 80 * 60);
      scene_render(&s, 0.75, p1);
      scene_render(&back, 0.75, p2);
      CHECKF(memcmp(p1, p2, 3 * 80 * 60) == 0, "scene from JSON renders differently: %s", b.data);
      free(p1);
      free(p2);
    }
    if (i == 0) printf("example: %s\n  long:  %s\n  short: %s\n", b.data, lc, sc);
    json_free(v);
    json_buf_free(&b);
  }
  CHECKF(pan_named == pans, "pan named in %d of %d captions", pan_named, pans);
}

int main(void) {
  test_begin("test_synth_scene");
  test_palette_and_edges();
  test_motion();
  test_checkered();
  test_exclusions();
  test_sampler();
  test_captions_and_json();
  return test_finish();
}

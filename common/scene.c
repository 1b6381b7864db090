/* common/scene.c — see scene.h. Constants follow SYNTHETIC_WORLD.md. */
#include "common/scene.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "common/tensor.h"

/* ---- names and palette -------------------------------------------------------------------- */

static const char *const COLOUR_NAMES[SCENE_COLOUR_COUNT] = {
    "red", "green", "blue", "yellow", "purple", "orange", "cyan", "white"};
static const uint8_t COLOUR_RGB[SCENE_COLOUR_COUNT][3] = {
    {220, 40, 40}, {40, 180, 60}, {40, 80, 220},  {240, 210, 40},
    {150, 60, 190}, {245, 140, 30}, {40, 200, 210}, {240, 240, 240}};
static const char *const SHAPE_NAMES[SCENE_SHAPE_COUNT] = {"circle", "square", "triangle", "ring"};
static const char *const SIZE_NAMES[SCENE_SIZE_COUNT] = {"small", "large"};
static const char *const MOTION_NAMES[SCENE_MOTION_COUNT] = {"still", "left", "right", "up",
                                                             "down"};
static const char *const SPEED_NAMES[SCENE_SPEED_COUNT] = {"slow", "fast"};
static const char *const BG_NAMES[SCENE_BG_COUNT] = {"black", "gray",  "navy",
                                                     "forest", "sand", "checkered"};
static const uint8_t BG_RGB[SCENE_BG_COUNT][3] = {{15, 15, 15},   {110, 110, 110}, {20, 30, 80},
                                                  {20, 60, 30},   {200, 180, 140}, {110, 110, 110}};
static const char *const PAN_NAMES[SCENE_PAN_COUNT] = {"none", "left", "right"};
static const char *const REL_NAMES[SCENE_REL_COUNT] = {"none", "to the left of", "to the right of",
                                                       "above", "below"};
#define CHECKER_DARK 90.0
#define CHECKER_LIGHT 130.0

#define NAME_OF(table, count, v) (((int)(v) >= 0 && (int)(v) < (count)) ? (table)[(v)] : "?")
const char *scene_colour_name(scene_colour c) { return NAME_OF(COLOUR_NAMES, SCENE_COLOUR_COUNT, c); }
const char *scene_shape_name(scene_shape s) { return NAME_OF(SHAPE_NAMES, SCENE_SHAPE_COUNT, s); }
const char *scene_size_name(scene_size s) { return NAME_OF(SIZE_NAMES, SCENE_SIZE_COUNT, s); }
const char *scene_motion_name(scene_motion m) { return NAME_OF(MOTION_NAMES, SCENE_MOTION_COUNT, m); }
const char *scene_speed_name(scene_speed s) { return NAME_OF(SPEED_NAMES, SCENE_SPEED_COUNT, s); }
const char *scene_bg_name(scene_bg b) { return NAME_OF(BG_NAMES, SCENE_BG_COUNT, b); }
const char *scene_pan_name(scene_pan p) { return NAME_OF(PAN_NAMES, SCENE_PAN_COUNT, p); }
const char *scene_relation_name(scene_relation r) { return NAME_OF(REL_NAMES, SCENE_REL_COUNT, r); }

void scene_colour_rgb(scene_colour c, uint8_t rgb[3]) {
  int i = ((int)c >= 0 && (int)c < SCENE_COLOUR_COUNT) ? (int)c : 0;
  memcpy(rgb, COLOUR_RGB[i], 3);
}

void scene_bg_rgb(scene_bg b, uint8_t rgb[3]) {
  int i = ((int)b >= 0 && (int)b < SCENE_BG_COUNT) ? (int)b : 0;
  memcpy(rgb, BG_RGB[i], 3);
}

double scene_size_radius(scene_size s) {
  return s == SCENE_SIZE_LARGE ? SCENE_RADIUS_LARGE : SCENE_RADIUS_SMALL;
}

double scene_speed_wps(scene_speed s) { return s == SCENE_SPEED_FAST ? SCENE_WPS_FAST : SCENE_WPS_SLOW; }

/* ---- rendering ---------------------------------------------------------------------------- */

/* Screen velocity of the camera pan, pixels per second (a pan to the left moves content right). */
static double pan_vx(const scene *s) {
  double v = SCENE_WPS_SLOW * s->width;
  return s->pan == SCENE_PAN_LEFT ? v : s->pan == SCENE_PAN_RIGHT ? -v : 0.0;
}

static void object_velocity(const scene *s, const scene_object *o, double *vx, double *vy) {
  double v = scene_speed_wps(o->speed) * s->width;
  *vx = 0;
  *vy = 0;
  switch (o->motion) {
  case SCENE_MOTION_LEFT: *vx = -v; break;
  case SCENE_MOTION_RIGHT: *vx = v; break;
  case SCENE_MOTION_UP: *vy = -v; break;
  case SCENE_MOTION_DOWN: *vy = v; break;
  default: break;
  }
}

static double wrap(double v, double period) {
  double r = fmod(v, period);
  if (r < 0) r += period;
  if (r >= period) r = 0; /* fmod of a tiny negative can round up to period */
  return r;
}

void scene_object_position(const scene *s, int i, double t, double *x, double *y) {
  const scene_object *o = &s->obj[i];
  double vx, vy;
  object_velocity(s, o, &vx, &vy);
  *x = wrap(o->x * s->width + (vx + pan_vx(s)) * t, s->width);
  *y = wrap(o->y * s->height + vy * t, s->height);
}

/* Signed distance (pixels, negative inside) from (dx, dy), relative to the centre, to the
 * outline of shape `shape` of radius r; `stroke` is the ring's stroke width. */
static double shape_distance(scene_shape shape, double r, double stroke, double dx, double dy) {
  switch (shape) {
  case SCENE_SHAPE_CIRCLE: return sqrt(dx * dx + dy * dy) - r;
  case SCENE_SHAPE_RING: {
    double d = sqrt(dx * dx + dy * dy);
    return fmax(d - r, (r - stroke) - d);
  }
  case SCENE_SHAPE_SQUARE: {
    double qx = fabs(dx) - r, qy = fabs(dy) - r;
    double ox = fmax(qx, 0), oy = fmax(qy, 0);
    return sqrt(ox * ox + oy * oy) + fmin(fmax(qx, qy), 0);
  }
  case SCENE_SHAPE_TRIANGLE: {
    /* apex (0,-r), base corners (±r, r): the three edge lines, outward normals */
    const double k = 1.0 / sqrt(5.0);
    double base = dy - r;
    double right = (2 * dx - dy - r) * k;
    double left = (-2 * dx - dy - r) * k;
    return fmax(base, fmax(right, left));
  }
  default: return 1e9;
  }
}

static double coverage_at(const scene *s, const scene_object *o, double cx, double cy, int px,
                          int py) {
  double r = scene_size_radius(o->size) * s->width;
  double stroke = SCENE_RING_STROKE * s->width;
  double d = shape_distance(o->shape, r, stroke, px + 0.5 - cx, py + 0.5 - cy);
  double a = 0.5 - d;
  return a <= 0 ? 0 : a >= 1 ? 1 : a;
}

double scene_object_coverage(const scene *s, int i, double t, int px, int py) {
  double cx, cy, best = 0;
  scene_object_position(s, i, t, &cx, &cy);
  for (int oy = -1; oy <= 1; oy++)
    for (int ox = -1; ox <= 1; ox++) {
      double a = coverage_at(s, &s->obj[i], cx + ox * s->width, cy + oy * s->height, px, py);
      if (a > best) best = a;
    }
  return best;
}

/* Length of the part of [u, u+1) that falls in even checker cells of side `sq`. */
static double checker_even_cum(double x, double sq) {
  double p = 2 * sq, m = x - p * floor(x / p);
  return floor(x / p) * sq + fmin(m, sq);
}

static void render_background(const scene *s, double t, uint8_t *rgb) {
  int W = s->width, H = s->height;
  if (s->bg != SCENE_BG_CHECKERED) {
    const uint8_t *c = BG_RGB[(int)s->bg < SCENE_BG_COUNT ? (int)s->bg : 0];
    for (int i = 0; i < W * H; i++) memcpy(rgb + 3 * i, c, 3);
    return;
  }
  /* Checker = product of two ±1 square waves, so its pixel box average is the product of the
   * two one-dimensional averages: exact anti-aliasing, also at fractional pan offsets. */
  double sq = (double)W / SCENE_CHECKER_SQUARES, off = pan_vx(s) * t;
  double *col = xmalloc(sizeof(double) * (size_t)W);
  for (int x = 0; x < W; x++) {
    double u = x - off;
    double even = checker_even_cum(u + 1, sq) - checker_even_cum(u, sq);
    col[x] = 2 * even - 1;
  }
  for (int y = 0; y < H; y++) {
    double even = checker_even_cum(y + 1.0, sq) - checker_even_cum(y, sq);
    double row = 2 * even - 1;
    uint8_t *p = rgb + (size_t)3 * W * y;
    for (int x = 0; x < W; x++) {
      double v = 0.5 * (CHECKER_LIGHT + CHECKER_DARK) + 0.5 * (CHECKER_LIGHT - CHECKER_DARK) * col[x] * row;
      uint8_t g = (uint8_t)(v + 0.5);
      p[3 * x] = p[3 * x + 1] = p[3 * x + 2] = g;
    }
  }
  free(col);
}

static void render_object(const scene *s, int i, double t, uint8_t *rgb) {
  const scene_object *o = &s->obj[i];
  int W = s->width, H = s->height;
  double r = scene_size_radius(o->size) * W;
  const uint8_t *c = COLOUR_RGB[(int)o->colour < SCENE_COLOUR_COUNT ? (int)o->colour : 0];
  double cx0, cy0;
  scene_object_position(s, i, t, &cx0, &cy0);
  /* The object is smaller than the canvas, so its copies never overlap: blend each alone. */
  for (int oy = -1; oy <= 1; oy++)
    for (int ox = -1; ox <= 1; ox++) {
      double cx = cx0 + ox * W, cy = cy0 + oy * H;
      int x0 = (int)floor(cx - r - 1), x1 = (int)ceil(cx + r + 1);
      int y0 = (int)floor(cy - r - 1), y1 = (int)ceil(cy + r + 1);
      if (x0 < 0) x0 = 0;
      if (y0 < 0) y0 = 0;
      if (x1 > W) x1 = W;
      if (y1 > H) y1 = H;
      for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
          double a = coverage_at(s, o, cx, cy, x, y);
          if (a <= 0) continue;
          uint8_t *p = rgb + (size_t)3 * ((size_t)W * y + x);
          for (int k = 0; k < 3; k++) p[k] = (uint8_t)(p[k] * (1 - a) + c[k] * a + 0.5);
        }
    }
}

void scene_render(const scene *s, double t, uint8_t *rgb) {
  render_background(s, t, rgb);
  for (int i = 0; i < s->n_objects && i < SCENE_MAX_OBJECTS; i++) render_object(s, i, t, rgb);
}

/* ---- random numbers ----------------------------------------------------------------------- */


void scene_rng_seed(scene_rng *r, uint64_t seed, uint64_t index, uint64_t stream) {
  uint64_t x = hash_mix64(seed + 0x9E3779B97F4A7C15ULL) ^ hash_mix64(index * 0xD1B54A32D192ED03ULL + 1) ^
               hash_mix64(stream * 0x8CB92BA72F3D8DD7ULL + 2);
  for (int k = 0; k < 4; k++) {
    x += 0x9E3779B97F4A7C15ULL;
    r->s[k] = hash_mix64(x);
  }
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t scene_rng_u64(scene_rng *r) {
  uint64_t *s = r->s;
  uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return out;
}

double scene_rng_uniform(scene_rng *r) { return (double)(scene_rng_u64(r) >> 11) * 0x1.0p-53; }

int scene_rng_int(scene_rng *r, int n) {
  if (n <= 1) return 0;
  return (int)(((scene_rng_u64(r) >> 32) * (uint64_t)n) >> 32);
}

double scene_rng_normal(scene_rng *r) {
  double u1 = scene_rng_uniform(r), u2 = scene_rng_uniform(r);
  return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}

static double rng_range(scene_rng *r, double lo, double hi) {
  return hi <= lo ? lo : lo + (hi - lo) * scene_rng_uniform(r);
}

/* ---- held-out compositions ---------------------------------------------------------------- */

typedef struct {
  int colour, shape, size, motion, speed, bg; /* -1 = any */
} excl_rule;

struct scene_exclusions {
  int n;
  excl_rule *rules;
  int constant; /* the shared default list */
};

const char *const SCENE_EXCLUSIONS_DEFAULT_TEXT =
    "# held-out compositions (SYNTHETIC_WORLD.md)\n"
    "green triangle\n"
    "yellow square\n"
    "purple circle up\n"
    "ring sand\n";

static excl_rule DEFAULT_RULES[] = {
    {SCENE_COLOUR_GREEN, SCENE_SHAPE_TRIANGLE, -1, -1, -1, -1},
    {SCENE_COLOUR_YELLOW, SCENE_SHAPE_SQUARE, -1, -1, -1, -1},
    {SCENE_COLOUR_PURPLE, SCENE_SHAPE_CIRCLE, -1, SCENE_MOTION_UP, -1, -1},
    {-1, SCENE_SHAPE_RING, -1, -1, -1, SCENE_BG_SAND},
};
static scene_exclusions DEFAULT_EXCLUSIONS = {4, DEFAULT_RULES, 1};

const scene_exclusions *scene_exclusions_default(void) { return &DEFAULT_EXCLUSIONS; }

static int lookup(const char *const *names, int n, const char *w) {
  for (int i = 0; i < n; i++)
    if (strcmp(names[i], w) == 0) return i;
  return -1;
}

/* Sets the rule field the word names. 0 ok, 1 ignorable filler word, -1 unknown, -2 repeated. */
static int rule_add_word(excl_rule *r, const char *w) {
  static const char *const filler[] = {"a", "an", "any", "on", "moving", "background"};
  for (size_t i = 0; i < sizeof filler / sizeof *filler; i++)
    if (strcmp(w, filler[i]) == 0) return 1;
  struct {
    const char *const *names;
    int n;
    int *field;
  } cats[] = {{COLOUR_NAMES, SCENE_COLOUR_COUNT, &r->colour}, {SHAPE_NAMES, SCENE_SHAPE_COUNT, &r->shape},
              {SIZE_NAMES, SCENE_SIZE_COUNT, &r->size},       {MOTION_NAMES, SCENE_MOTION_COUNT, &r->motion},
              {SPEED_NAMES, SCENE_SPEED_COUNT, &r->speed},    {BG_NAMES, SCENE_BG_COUNT, &r->bg}};
  const char *word = strcmp(w, "grey") == 0 ? "gray" : w;
  for (size_t c = 0; c < sizeof cats / sizeof *cats; c++) {
    int v = lookup(cats[c].names, cats[c].n, word);
    if (v < 0) continue;
    if (*cats[c].field >= 0) return -2;
    *cats[c].field = v;
    return 0;
  }
  return -1;
}

scene_exclusions *scene_exclusions_parse(const char *text) {
  scene_exclusions *e = xcalloc(1, sizeof *e);
  int cap = 0, lineno = 0;
  const char *p = text ? text : "";
  while (*p) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    char line[512];
    lineno++;
    if (len >= sizeof line) {
      scene_exclusions_free(e);
      err_set("exclusion list line %d: longer than %zu characters", lineno, sizeof line - 1);
      return NULL;
    }
    memcpy(line, p, len);
    line[len] = 0;
    p = eol ? eol + 1 : p + len;
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    excl_rule r = {-1, -1, -1, -1, -1, -1};
    int words = 0;
    char *save = NULL;
    for (char *w = strtok_r(line, " \t\r,", &save); w; w = strtok_r(NULL, " \t\r,", &save)) {
      for (char *q = w; *q; q++) *q = (char)tolower((unsigned char)*q);
      int rc = rule_add_word(&r, w);
      if (rc < 0) {
        scene_exclusions_free(e);
        if (rc == -1)
          err_set("exclusion list line %d: unknown word '%s' (use colour, shape, size, motion, "
                  "speed or background names of SYNTHETIC_WORLD.md)", lineno, w);
        else
          err_set("exclusion list line %d: two words of the same kind ('%s')", lineno, w);
        return NULL;
      }
      if (rc == 0) words++;
    }
    if (words == 0) continue;
    if (e->n == cap) {
      cap = cap ? 2 * cap : 8;
      e->rules = xrealloc(e->rules, sizeof *e->rules * (size_t)cap);
    }
    e->rules[e->n++] = r;
  }
  return e;
}

scene_exclusions *scene_exclusions_load(const char *path) {
  if (strcmp(path, "none") == 0) return xcalloc(1, sizeof(scene_exclusions));
  char *text = NULL;
  if (fs_read_all(path, &text, NULL) != TB_OK) {
    err_wrap("exclusion list: ");
    return NULL;
  }
  scene_exclusions *e = scene_exclusions_parse(text);
  free(text);
  if (!e) err_wrap("%s: ", path);
  return e;
}

void scene_exclusions_free(scene_exclusions *e) {
  if (!e || e->constant) return;
  free(e->rules);
  free(e);
}

int scene_exclusions_count(const scene_exclusions *e) { return e ? e->n : 0; }

char *scene_exclusions_rule_text(const scene_exclusions *e, int i, char *buf, size_t n) {
  if (n) buf[0] = 0;
  if (!e || i < 0 || i >= e->n || n == 0) return buf;
  const excl_rule *r = &e->rules[i];
  const char *w[6] = {r->size >= 0 ? SIZE_NAMES[r->size] : NULL,
                      r->colour >= 0 ? COLOUR_NAMES[r->colour] : NULL,
                      r->shape >= 0 ? SHAPE_NAMES[r->shape] : NULL,
                      r->motion >= 0 ? MOTION_NAMES[r->motion] : NULL,
                      r->speed >= 0 ? SPEED_NAMES[r->speed] : NULL,
                      r->bg >= 0 ? BG_NAMES[r->bg] : NULL};
  size_t len = 0;
  for (int k = 0; k < 6; k++) {
    if (!w[k]) continue;
    int m = snprintf(buf + len, n - len, "%s%s", len ? " " : "", w[k]);
    if (m < 0 || (size_t)m >= n - len) break;
    len += (size_t)m;
  }
  return buf;
}

int scene_object_is_excluded(const scene_object *o, scene_bg bg, const scene_exclusions *e) {
  if (!e) return 0;
  for (int i = 0; i < e->n; i++) {
    const excl_rule *r = &e->rules[i];
    if (r->colour >= 0 && r->colour != (int)o->colour) continue;
    if (r->shape >= 0 && r->shape != (int)o->shape) continue;
    if (r->size >= 0 && r->size != (int)o->size) continue;
    if (r->motion >= 0 && r->motion != (int)o->motion) continue;
    if (r->speed >= 0 && (o->motion == SCENE_MOTION_STILL || r->speed != (int)o->speed)) continue;
    if (r->bg >= 0 && r->bg != (int)bg) continue;
    return 1;
  }
  return 0;
}

int scene_is_excluded(const scene *s, const scene_exclusions *e) {
  if (!e) return 0;
  for (int i = 0; i < s->n_objects; i++)
    if (scene_object_is_excluded(&s->obj[i], s->bg, e)) return 1;
  /* a background-only rule excludes the background even without objects */
  for (int i = 0; i < e->n; i++) {
    const excl_rule *r = &e->rules[i];
    if (r->bg == (int)s->bg && r->colour < 0 && r->shape < 0 && r->size < 0 && r->motion < 0 &&
        r->speed < 0)
      return 1;
  }
  return 0;
}

/* ---- random scenes ------------------------------------------------------------------------ */

#define PLACE_GAP 0.05 /* fraction of W between two objects' bounding boxes along the relation */

static void object_draw(scene_rng *r, scene_object *o) {
  o->colour = (scene_colour)scene_rng_int(r, SCENE_COLOUR_COUNT);
  o->shape = (scene_shape)scene_rng_int(r, SCENE_SHAPE_COUNT);
  o->size = (scene_size)scene_rng_int(r, SCENE_SIZE_COUNT);
  o->motion = (scene_motion)scene_rng_int(r, SCENE_MOTION_COUNT);
  o->speed = (scene_speed)scene_rng_int(r, SCENE_SPEED_COUNT);
}

static double quantise(double v) { return round(v * 1000.0) / 1000.0; }

static void place_objects(scene_rng *r, scene *s) {
  double W = s->width, H = s->height;
  if (s->n_objects == 1) {
    double rad = scene_size_radius(s->obj[0].size) * W;
    s->obj[0].x = quantise(rng_range(r, rad, W - rad) / W);
    s->obj[0].y = quantise(rng_range(r, rad, H - rad) / H);
    s->relation = SCENE_REL_NONE;
    return;
  }
  double r0 = scene_size_radius(s->obj[0].size) * W, r1 = scene_size_radius(s->obj[1].size) * W;
  double gap = PLACE_GAP * W;
  scene_relation cand[4];
  int nc = 0;
  if (2 * (r0 + r1) + gap <= W) {
    cand[nc++] = SCENE_REL_LEFT_OF;
    cand[nc++] = SCENE_REL_RIGHT_OF;
  }
  if (2 * (r0 + r1) + gap <= H) {
    cand[nc++] = SCENE_REL_ABOVE;
    cand[nc++] = SCENE_REL_BELOW;
  }
  TB_CHECK(nc > 0); /* two large objects need 0.73 W along x: always fits */
  scene_relation rel = cand[scene_rng_int(r, nc)];
  int horizontal = rel == SCENE_REL_LEFT_OF || rel == SCENE_REL_RIGHT_OF;
  /* "first" is the object on the left (or top) */
  int first = (rel == SCENE_REL_LEFT_OF || rel == SCENE_REL_ABOVE) ? 0 : 1, second = 1 - first;
  double ra = first == 0 ? r0 : r1, rb = first == 0 ? r1 : r0;
  double L = horizontal ? W : H, P = horizontal ? H : W;
  double sep = rng_range(r, ra + rb + gap, L - ra - rb);
  double a = rng_range(r, ra, L - rb - sep), b = a + sep;
  double pa = rng_range(r, ra, P - ra);
  double pb = pa + rng_range(r, -0.5, 0.5) * sep;
  if (pb < rb) pb = rb;
  if (pb > P - rb) pb = P - rb;
  double ax = horizontal ? a : pa, ay = horizontal ? pa : a;
  double bx = horizontal ? b : pb, by = horizontal ? pb : b;
  s->obj[first].x = quantise(ax / W);
  s->obj[first].y = quantise(ay / H);
  s->obj[second].x = quantise(bx / W);
  s->obj[second].y = quantise(by / H);
  s->relation = rel;
}

int scene_sample(scene_rng *r, int width, int height, int fps, const scene_exclusions *e,
                 scene *out) {
  memset(out, 0, sizeof *out);
  if (width < 8 || height < 8 || fps <= 0)
    return err_set("scene_sample: bad canvas %dx%d at %d fps", width, height, fps);
  for (int attempt = 0; attempt < 200; attempt++) {
    scene s;
    memset(&s, 0, sizeof s);
    s.width = width;
    s.height = height;
    s.fps = fps;
    s.bg = (scene_bg)scene_rng_int(r, SCENE_BG_COUNT);
    double u = scene_rng_uniform(r);
    s.pan = u < 0.8 ? SCENE_PAN_NONE : u < 0.9 ? SCENE_PAN_LEFT : SCENE_PAN_RIGHT;
    s.n_objects = scene_rng_uniform(r) < 0.7 ? 1 : 2;
    int ok = 1;
    for (int i = 0; i < s.n_objects && ok; i++) {
      int tries = 0;
      for (; tries < 200; tries++) {
        object_draw(r, &s.obj[i]);
        if (i == 1 && s.obj[1].colour == s.obj[0].colour) continue;
        if (scene_object_is_excluded(&s.obj[i], s.bg, e)) continue;
        break;
      }
      if (tries == 200) ok = 0;
    }
    if (!ok || scene_is_excluded(&s, e)) continue;
    place_objects(r, &s);
    *out = s;
    return TB_OK;
  }
  return err_set("scene_sample: the exclusion list leaves no scene (200 draws rejected)");
}

int scene_has_motion(const scene *s) {
  if (s->pan != SCENE_PAN_NONE) return 1;
  for (int i = 0; i < s->n_objects; i++)
    if (s->obj[i].motion != SCENE_MOTION_STILL) return 1;
  return 0;
}

/* ---- captions ----------------------------------------------------------------------------- */

typedef struct {
  char *buf;
  size_t n, len;
} strbuf;

static void sb_add(strbuf *b, const char *fmt, ...) TB_PRINTF(2, 3);
static void sb_add(strbuf *b, const char *fmt, ...) {
  if (b->len + 1 >= b->n) return;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(b->buf + b->len, b->n - b->len, fmt, ap);
  va_end(ap);
  if (m < 0) return;
  b->len += (size_t)m;
  if (b->len >= b->n) b->len = b->n - 1;
}

#define PICK(r, arr) ((arr)[scene_rng_int((r), (int)(sizeof(arr) / sizeof *(arr)))])

static const char *article(const char *next_word) {
  return strchr("aeiou", next_word[0]) ? "an" : "a";
}

static const char *size_word(scene_rng *r, scene_size s) {
  static const char *const small[] = {"small", "little", "tiny"};
  static const char *const large[] = {"large", "big"};
  return s == SCENE_SIZE_LARGE ? PICK(r, large) : PICK(r, small);
}

static const char *shape_word(scene_rng *r, scene_shape s) {
  static const char *const circle[] = {"circle", "circle", "disc"};
  static const char *const square[] = {"square", "square", "block"};
  static const char *const ring[] = {"ring", "ring", "hoop"};
  switch (s) {
  case SCENE_SHAPE_CIRCLE: return PICK(r, circle);
  case SCENE_SHAPE_SQUARE: return PICK(r, square);
  case SCENE_SHAPE_RING: return PICK(r, ring);
  default: return "triangle";
  }
}

static const char *bg_word(scene_rng *r, scene_bg b) {
  static const char *const gray[] = {"gray", "grey"};
  static const char *const navy[] = {"navy", "dark blue"};
  static const char *const forest[] = {"forest green", "dark green"};
  static const char *const sand[] = {"sand", "sandy", "beige"};
  static const char *const checkered[] = {"checkered", "checkerboard"};
  switch (b) {
  case SCENE_BG_GRAY: return PICK(r, gray);
  case SCENE_BG_NAVY: return PICK(r, navy);
  case SCENE_BG_FOREST: return PICK(r, forest);
  case SCENE_BG_SAND: return PICK(r, sand);
  case SCENE_BG_CHECKERED: return PICK(r, checkered);
  default: return "black";
  }
}

static const char *dir_word(scene_rng *r, scene_motion m) {
  static const char *const left[] = {"to the left", "leftward", "left"};
  static const char *const right[] = {"to the right", "rightward", "right"};
  static const char *const up[] = {"upward", "up", "toward the top"};
  static const char *const down[] = {"downward", "down", "toward the bottom"};
  switch (m) {
  case SCENE_MOTION_LEFT: return PICK(r, left);
  case SCENE_MOTION_RIGHT: return PICK(r, right);
  case SCENE_MOTION_UP: return PICK(r, up);
  default: return PICK(r, down);
  }
}

/* "glides slowly to the left" / "stays still" (third person, present tense). */
static void motion_phrase(strbuf *b, scene_rng *r, const scene_object *o) {
  static const char *const still[] = {"stays still", "sits still", "rests in place",
                                      "remains motionless", "does not move"};
  static const char *const verb_any[] = {"moves", "glides", "slides", "travels"};
  static const char *const verb_slow[] = {"drifts", "creeps"};
  static const char *const verb_fast[] = {"races", "darts", "zips"};
  static const char *const adv_slow[] = {"slowly", "gently", "at a slow pace"};
  static const char *const adv_fast[] = {"quickly", "rapidly", "fast", "at high speed"};
  if (o->motion == SCENE_MOTION_STILL) {
    sb_add(b, "%s", PICK(r, still));
    return;
  }
  int fast = o->speed == SCENE_SPEED_FAST;
  const char *verb = scene_rng_uniform(r) < 0.6 ? PICK(r, verb_any)
                     : fast                     ? PICK(r, verb_fast)
                                                : PICK(r, verb_slow);
  const char *adv = fast ? PICK(r, adv_fast) : PICK(r, adv_slow);
  const char *dir = dir_word(r, o->motion);
  if (scene_rng_uniform(r) < 0.5)
    sb_add(b, "%s %s %s", verb, adv, dir);
  else
    sb_add(b, "%s %s %s", verb, dir, adv);
}

static void pan_phrase(strbuf *b, scene_rng *r, scene_pan p) {
  if (p == SCENE_PAN_NONE) return;
  const char *d = PAN_NAMES[p];
  switch (scene_rng_int(r, 3)) {
  case 0: sb_add(b, ", while the camera pans %s", d); break;
  case 1: sb_add(b, " as the camera pans slowly to the %s", d); break;
  default: sb_add(b, ", with the camera panning %s", d); break;
  }
}

/* "a large red circle" with synonyms. */
static void object_phrase(strbuf *b, scene_rng *r, const scene_object *o) {
  const char *sz = size_word(r, o->size);
  sb_add(b, "%s %s %s %s", article(sz), sz, COLOUR_NAMES[o->colour], shape_word(r, o->shape));
}

char *scene_caption_long(const scene *s, scene_rng *r, char *buf, size_t n) {
  strbuf b = {buf, n, 0};
  if (n) buf[0] = 0;
  if (n == 0) return buf;
  if (s->n_objects <= 1) {
    const scene_object *o = &s->obj[0];
    object_phrase(&b, r, o);
    sb_add(&b, " ");
    motion_phrase(&b, r, o);
    static const char *const moving_bg[] = {" across %s %s background", " over %s %s background",
                                            " against %s %s backdrop", " on %s %s background"};
    static const char *const still_bg[] = {" on %s %s background", " against %s %s backdrop",
                                           " in front of %s %s background"};
    const char *fmt = o->motion == SCENE_MOTION_STILL ? PICK(r, still_bg) : PICK(r, moving_bg);
    const char *bw = bg_word(r, s->bg);
    sb_add(&b, fmt, article(bw), bw);
    pan_phrase(&b, r, s->pan);
    return buf;
  }
  const scene_object *a = &s->obj[0], *c = &s->obj[1];
  const char *bw = bg_word(r, s->bg);
  if (scene_rng_uniform(r) < 0.5) {
    /* "a small green square on the left moves up while a large yellow ring on the right stays
     * still, on a navy background" */
    int horizontal = s->relation == SCENE_REL_LEFT_OF || s->relation == SCENE_REL_RIGHT_OF;
    int a_first = s->relation == SCENE_REL_LEFT_OF || s->relation == SCENE_REL_ABOVE;
    const char *lo = horizontal ? "on the left" : "at the top";
    const char *hi = horizontal ? "on the right" : "at the bottom";
    object_phrase(&b, r, a);
    sb_add(&b, " %s ", a_first ? lo : hi);
    motion_phrase(&b, r, a);
    sb_add(&b, " while ");
    object_phrase(&b, r, c);
    sb_add(&b, " %s ", a_first ? hi : lo);
    motion_phrase(&b, r, c);
    if (scene_rng_uniform(r) < 0.5)
      sb_add(&b, ", on %s %s background", article(bw), bw);
    else
      sb_add(&b, ", against %s %s backdrop", article(bw), bw);
  } else {
    /* "a small green square to the left of a large yellow ring on a navy background; the green
     * square moves up and the yellow ring stays still" */
    object_phrase(&b, r, a);
    sb_add(&b, " %s ", REL_NAMES[s->relation]);
    object_phrase(&b, r, c);
    sb_add(&b, " on %s %s background; the %s %s ", article(bw), bw, COLOUR_NAMES[a->colour],
           SHAPE_NAMES[a->shape]);
    motion_phrase(&b, r, a);
    sb_add(&b, " and the %s %s ", COLOUR_NAMES[c->colour], SHAPE_NAMES[c->shape]);
    motion_phrase(&b, r, c);
  }
  pan_phrase(&b, r, s->pan);
  return buf;
}

char *scene_caption_short(const scene *s, scene_rng *r, char *buf, size_t n) {
  (void)r; /* canonical words only: short captions do not vary */
  strbuf b = {buf, n, 0};
  if (n) buf[0] = 0;
  if (n == 0) return buf;
  const scene_object *a = &s->obj[0];
  const char *ca = COLOUR_NAMES[a->colour];
  if (s->n_objects <= 1) {
    sb_add(&b, "%s %s %s", article(ca), ca, SHAPE_NAMES[a->shape]);
    if (a->motion == SCENE_MOTION_STILL)
      sb_add(&b, " staying still");
    else
      sb_add(&b, " moving %s", MOTION_NAMES[a->motion]);
  } else {
    const scene_object *c = &s->obj[1];
    const char *cc = COLOUR_NAMES[c->colour];
    sb_add(&b, "%s %s %s %s %s %s %s", article(ca), ca, SHAPE_NAMES[a->shape],
           REL_NAMES[s->relation], article(cc), cc, SHAPE_NAMES[c->shape]);
    int first = 1;
    for (int i = 0; i < 2; i++) {
      const scene_object *o = &s->obj[i];
      if (o->motion == SCENE_MOTION_STILL) continue;
      sb_add(&b, "%s the %s %s moving %s", first ? "," : " and", COLOUR_NAMES[o->colour],
             SHAPE_NAMES[o->shape], MOTION_NAMES[o->motion]);
      first = 0;
    }
  }
  if (s->pan != SCENE_PAN_NONE) sb_add(&b, ", camera panning %s", PAN_NAMES[s->pan]);
  return buf;
}

/* The words of the templates above: articles, sizes, colours, shapes and their synonyms,
 * backgrounds, motion verbs, adverbs and directions, still phrases, relations, positions, the
 * pan phrases, and the two punctuation tokens. Sorted (strcmp). */
static const char *const CAPTION_WORDS[] = {
    ",", ";", "a", "above", "across", "against", "an", "and", "as", "at", "backdrop",
    "background", "beige", "below", "big", "black", "block", "blue", "bottom", "camera",
    "checkerboard", "checkered", "circle", "creeps", "cyan", "dark", "darts", "disc", "does",
    "down", "downward", "drifts", "fast", "forest", "front", "gently", "glides", "gray", "green",
    "grey", "high", "hoop", "in", "large", "left", "leftward", "little", "motionless", "move",
    "moves", "moving", "navy", "not", "of", "on", "orange", "over", "pace", "panning", "pans",
    "place", "purple", "quickly", "races", "rapidly", "red", "remains", "rests", "right",
    "rightward", "ring", "sand", "sandy", "sits", "slides", "slow", "slowly", "small", "speed",
    "square", "staying", "stays", "still", "the", "tiny", "to", "top", "toward", "travels",
    "triangle", "up", "upward", "while", "white", "with", "yellow", "zips"};

const char *const *scene_caption_vocabulary(int *n) {
  *n = (int)(sizeof CAPTION_WORDS / sizeof *CAPTION_WORDS);
  return CAPTION_WORDS;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

void scene_json_put(json_buf *b, const scene *s) {
  uint8_t bg[3];
  scene_bg_rgb(s->bg, bg);
  json_buf_printf(b, "{\"width\":%d,\"height\":%d,\"fps\":%d,\"background\":\"%s\",", s->width,
                  s->height, s->fps, scene_bg_name(s->bg));
  json_buf_printf(b, "\"background_rgb\":[%d,%d,%d],\"pan\":\"%s\",\"pan_speed_wps\":%g,\"objects\":[",
                  bg[0], bg[1], bg[2], scene_pan_name(s->pan),
                  s->pan == SCENE_PAN_NONE ? 0.0 : SCENE_WPS_SLOW);
  for (int i = 0; i < s->n_objects; i++) {
    const scene_object *o = &s->obj[i];
    uint8_t c[3];
    scene_colour_rgb(o->colour, c);
    json_buf_printf(b,
                    "%s{\"colour\":\"%s\",\"rgb\":[%d,%d,%d],\"shape\":\"%s\",\"size\":\"%s\","
                    "\"radius\":%g,\"motion\":\"%s\",\"speed\":\"%s\",\"speed_wps\":%g,"
                    "\"x\":%.3f,\"y\":%.3f}",
                    i ? "," : "", scene_colour_name(o->colour), c[0], c[1], c[2],
                    scene_shape_name(o->shape), scene_size_name(o->size),
                    scene_size_radius(o->size), scene_motion_name(o->motion),
                    scene_speed_name(o->speed),
                    o->motion == SCENE_MOTION_STILL ? 0.0 : scene_speed_wps(o->speed), o->x, o->y);
  }
  json_buf_printf(b, "],\"relation\":\"%s\"}", scene_relation_name(s->relation));
}

static int get_name(const json_value *v, const char *key, const char *const *names, int n,
                    int *out) {
  const char *str;
  if (json_get_string(v, key, &str) != TB_OK) return TB_ERR;
  int i = lookup(names, n, str);
  if (i < 0) return err_set("scene: field '%s' has unknown value '%s'", key, str);
  *out = i;
  return TB_OK;
}

int scene_json_get(const json_value *v, scene *out) {
  memset(out, 0, sizeof *out);
  int64_t w, h, fps;
  int bg, pan, rel;
  if (json_get_int64(v, "width", &w) || json_get_int64(v, "height", &h) ||
      json_get_int64(v, "fps", &fps) || get_name(v, "background", BG_NAMES, SCENE_BG_COUNT, &bg) ||
      get_name(v, "pan", PAN_NAMES, SCENE_PAN_COUNT, &pan) ||
      get_name(v, "relation", REL_NAMES, SCENE_REL_COUNT, &rel))
    return err_wrap("scene: ");
  if (w < 8 || h < 8 || w > 1 << 14 || h > 1 << 14 || fps <= 0 || fps > 1000)
    return err_set("scene: bad canvas %lldx%lld at %lld fps", (long long)w, (long long)h,
                   (long long)fps);
  out->width = (int)w;
  out->height = (int)h;
  out->fps = (int)fps;
  out->bg = (scene_bg)bg;
  out->pan = (scene_pan)pan;
  out->relation = (scene_relation)rel;
  const json_value *objs = json_get(v, "objects");
  if (!objs || objs->type != JSON_ARRAY || objs->count < 1 || objs->count > SCENE_MAX_OBJECTS)
    return err_set("scene: 'objects' must be an array of 1 to %d objects", SCENE_MAX_OBJECTS);
  out->n_objects = (int)objs->count;
  for (int i = 0; i < out->n_objects; i++) {
    const json_value *o = json_at(objs, (size_t)i);
    int colour, shape, size, motion, speed;
    if (get_name(o, "colour", COLOUR_NAMES, SCENE_COLOUR_COUNT, &colour) ||
        get_name(o, "shape", SHAPE_NAMES, SCENE_SHAPE_COUNT, &shape) ||
        get_name(o, "size", SIZE_NAMES, SCENE_SIZE_COUNT, &size) ||
        get_name(o, "motion", MOTION_NAMES, SCENE_MOTION_COUNT, &motion) ||
        get_name(o, "speed", SPEED_NAMES, SCENE_SPEED_COUNT, &speed) ||
        json_get_number(o, "x", &out->obj[i].x) || json_get_number(o, "y", &out->obj[i].y))
      return err_wrap("scene object %d: ", i);
    out->obj[i].colour = (scene_colour)colour;
    out->obj[i].shape = (scene_shape)shape;
    out->obj[i].size = (scene_size)size;
    out->obj[i].motion = (scene_motion)motion;
    out->obj[i].speed = (scene_speed)speed;
  }
  return TB_OK;
}

/* common/scene.h — the built-in world (docs: SYNTHETIC_WORLD.md): scene descriptions, the
 * renderer (scene → RGB frame at time t), random scenes under an exclusion list, captions, and
 * the JSON form of a scene that truth files carry.
 *
 *   scene_rng r; scene_rng_seed(&r, seed, clip_index, SCENE_STREAM_SCENE);
 *   scene s;
 *   if (scene_sample(&r, 96, 72, 24, scene_exclusions_default(), &s) != TB_OK) ...;
 *   uint8_t *rgb = xmalloc(3 * 96 * 72);
 *   scene_render(&s, 0.5, rgb);                       // the frame at t = 0.5 s
 *
 * Geometry (pixels, origin top-left, y down): an object's position is the centre of its
 * bounding box; circle/square/ring of "radius" r are the disc, the square of half-side r and the
 * hollow disc of outer radius r with a stroke of W/32; the triangle (apex up) has its apex at
 * (cx, cy - r) and its base corners at (cx ± r, cy + r). r = 0.09 W (small) or 0.17 W (large).
 * Motion: an object moves at speed·W pixels per second (slow 0.064 W/s = 0.008 W per frame at
 * 8 fps, fast 0.2 W/s = 0.025 W per frame at 8 fps). The camera pans at the slow speed; a pan to
 * the left moves the whole picture (background and objects) to the right on screen, and the
 * reverse. Screen positions wrap modulo W (x) and H (y); an object crossing an edge is drawn on
 * both sides. Edges are anti-aliased by exact box coverage for the checkerboard and by a
 * signed-distance ramp of one pixel for the shapes. Colours are blended in sRGB values.
 *
 * Thread-safe: no globals beyond constant tables.
 */
#ifndef TURBO_SCENE_H
#define TURBO_SCENE_H

#include <stddef.h>
#include <stdint.h>

#include "common/json.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SCENE_MAX_OBJECTS 2
#define SCENE_RADIUS_SMALL 0.09   /* fraction of W */
#define SCENE_RADIUS_LARGE 0.17   /* fraction of W */
#define SCENE_RING_STROKE (1.0 / 32.0) /* fraction of W */
#define SCENE_WPS_SLOW 0.064    /* W per second (0.008 W per frame at 8 fps) */
#define SCENE_WPS_FAST 0.2      /* W per second (0.025 W per frame at 8 fps) */
#define SCENE_CHECKER_SQUARES 8   /* checker square side = W / 8 */

typedef enum {
  SCENE_BG_BLACK = 0, SCENE_BG_GRAY, SCENE_BG_NAVY, SCENE_BG_FOREST, SCENE_BG_SAND,
  SCENE_BG_CHECKERED, SCENE_BG_COUNT
} scene_bg;
typedef enum {
  SCENE_SHAPE_CIRCLE = 0, SCENE_SHAPE_SQUARE, SCENE_SHAPE_TRIANGLE, SCENE_SHAPE_RING,
  SCENE_SHAPE_COUNT
} scene_shape;
typedef enum {
  SCENE_COLOUR_RED = 0, SCENE_COLOUR_GREEN, SCENE_COLOUR_BLUE, SCENE_COLOUR_YELLOW,
  SCENE_COLOUR_PURPLE, SCENE_COLOUR_ORANGE, SCENE_COLOUR_CYAN, SCENE_COLOUR_WHITE,
  SCENE_COLOUR_COUNT
} scene_colour;
typedef enum { SCENE_SIZE_SMALL = 0, SCENE_SIZE_LARGE, SCENE_SIZE_COUNT } scene_size;
typedef enum {
  SCENE_MOTION_STILL = 0, SCENE_MOTION_LEFT, SCENE_MOTION_RIGHT, SCENE_MOTION_UP,
  SCENE_MOTION_DOWN, SCENE_MOTION_COUNT
} scene_motion;
typedef enum { SCENE_SPEED_SLOW = 0, SCENE_SPEED_FAST, SCENE_SPEED_COUNT } scene_speed;
typedef enum { SCENE_PAN_NONE = 0, SCENE_PAN_LEFT, SCENE_PAN_RIGHT, SCENE_PAN_COUNT } scene_pan;
/* obj[0] RELATION obj[1], judged on first-frame centres. */
typedef enum {
  SCENE_REL_NONE = 0, SCENE_REL_LEFT_OF, SCENE_REL_RIGHT_OF, SCENE_REL_ABOVE, SCENE_REL_BELOW,
  SCENE_REL_COUNT
} scene_relation;

typedef struct {
  scene_colour colour;
  scene_shape shape;
  scene_size size;
  scene_motion motion;
  scene_speed speed;  /* meaningless (but set) when motion is still */
  double x, y;        /* first-frame centre: x as a fraction of W, y as a fraction of H */
} scene_object;

typedef struct {
  int width, height;  /* pixels, even */
  int fps;            /* frames per second; speeds are per second so fps only sets sampling */
  scene_bg bg;
  scene_pan pan;
  int n_objects;      /* 1 or 2 */
  scene_object obj[SCENE_MAX_OBJECTS];
  scene_relation relation; /* SCENE_REL_NONE for one object */
} scene;

/* ---- names and palette -------------------------------------------------------------------- */

/* Canonical names ("red", "triangle", "large", "left", "fast", "checkered", "to the left of"
 * …); "none" for SCENE_PAN_NONE / SCENE_REL_NONE. Never NULL for valid values, "?" otherwise. */
const char *scene_colour_name(scene_colour c);
const char *scene_shape_name(scene_shape s);
const char *scene_size_name(scene_size s);
const char *scene_motion_name(scene_motion m);
const char *scene_speed_name(scene_speed s);
const char *scene_bg_name(scene_bg b);
const char *scene_pan_name(scene_pan p);
const char *scene_relation_name(scene_relation r);
/* sRGB of a colour / a solid background (checkered gives its mean, 110 gray). */
void scene_colour_rgb(scene_colour c, uint8_t rgb[3]);
void scene_bg_rgb(scene_bg b, uint8_t rgb[3]);
double scene_size_radius(scene_size s); /* fraction of W */
double scene_speed_wps(scene_speed s);  /* W per second */

/* ---- rendering ---------------------------------------------------------------------------- */

/* Screen centre (pixels) of object i at time t seconds, after motion, pan and wrap-around:
 * x in [0, W), y in [0, H). */
void scene_object_position(const scene *s, int i, double t, double *x, double *y);
/* Draws the scene at time t seconds into rgb (H, W, 3) u8, row stride 3 W. */
void scene_render(const scene *s, double t, uint8_t *rgb);
/* Coverage in [0,1] of object i at pixel (px, py) at time t (the alpha scene_render uses). */
double scene_object_coverage(const scene *s, int i, double t, int px, int py);

/* ---- random numbers ----------------------------------------------------------------------- */

/* xoshiro256** seeded through splitmix64 from (seed, index, stream): the same triple always gives
 * the same sequence, and different triples give independent-looking ones. Streams let a clip's
 * scene stay the same when, e.g., flaw rates change. */
typedef struct { uint64_t s[4]; } scene_rng;
enum {
  SCENE_STREAM_SCENE = 1, SCENE_STREAM_CAPTION, SCENE_STREAM_FLAWS, SCENE_STREAM_FLAW_PARAMS,
  SCENE_STREAM_PIXELS, SCENE_STREAM_SOURCE, SCENE_STREAM_CUT
};
void scene_rng_seed(scene_rng *r, uint64_t seed, uint64_t index, uint64_t stream);
uint64_t scene_rng_u64(scene_rng *r);
double scene_rng_uniform(scene_rng *r);          /* [0, 1) with 53 random bits */
int scene_rng_int(scene_rng *r, int n);           /* uniform in [0, n) (n >= 1) */
double scene_rng_normal(scene_rng *r);           /* standard normal (Box–Muller) */

/* ---- held-out compositions ---------------------------------------------------------------- */

/* An exclusion list: each rule is a set of canonical words, at most one per category (colour,
 * shape, size, motion, speed, background). A scene is excluded when some rule matches: every
 * object word of the rule matches one and the same object and the background word (if any) the
 * background. Text form: one rule per line, words separated by blanks or commas, '#' starts a
 * comment, e.g. "green triangle", "purple circle up", "ring sand". */
typedef struct scene_exclusions scene_exclusions;

/* The default list of SYNTHETIC_WORLD.md: green triangle / yellow square / purple circle up /
 * ring sand. Returns a shared constant object: never free it. */
const scene_exclusions *scene_exclusions_default(void);
extern const char *const SCENE_EXCLUSIONS_DEFAULT_TEXT;
/* Parses the text form. NULL + err_get() naming the line and the unknown word on bad input.
 * The caller frees with scene_exclusions_free. */
scene_exclusions *scene_exclusions_parse(const char *text);
/* Reads a file of the text form; "none" gives an empty list. NULL + err_get() on error. */
scene_exclusions *scene_exclusions_load(const char *path);
void scene_exclusions_free(scene_exclusions *e); /* ignores NULL and the default list */
int scene_exclusions_count(const scene_exclusions *e);
/* Rule i as text ("purple circle up"), into buf; returns buf. */
char *scene_exclusions_rule_text(const scene_exclusions *e, int i, char *buf, size_t n);
/* 1 when scene s matches a rule of e (NULL e excludes nothing). */
int scene_is_excluded(const scene *s, const scene_exclusions *e);
/* 1 when object o on background bg matches a rule. */
int scene_object_is_excluded(const scene_object *o, scene_bg bg, const scene_exclusions *e);

/* ---- random scenes ------------------------------------------------------------------------ */

/* Draws a scene of the given size and fps: background uniform over the 6; pan none 80%, left
 * 10%, right 10%; one object (70%) or two (30%) of different colours; each object's colour,
 * shape, size and speed uniform, motion still 20% and each direction 20%; objects placed fully
 * inside the first frame; two objects placed apart (gap >= 0.05 W) along the axis of a relation
 * drawn uniformly among those that fit, with the other offset at most half the separation, so the
 * relation is unambiguous. Rejects draws that e excludes. TB_ERR (+ err) only when the list
 * leaves no possible scene in many tries. */
int scene_sample(scene_rng *r, int width, int height, int fps, const scene_exclusions *e,
                 scene *out);
/* 1 when some object moves or the camera pans. */
int scene_has_motion(const scene *s);

/* ---- captions ----------------------------------------------------------------------------- */

/* Long caption with synonyms drawn from r: names size, colour, shape, motion and speed of every
 * object, the background, the relation of two objects and the camera pan, e.g. "a large red
 * circle glides slowly to the left across a navy background". Written into buf (n bytes, 512 is
 * always enough); returns buf. */
char *scene_caption_long(const scene *s, scene_rng *r, char *buf, size_t n);
/* Short caption (canonical words, <= 40 words), e.g. "a red circle moving left",
 * "a red circle to the left of a blue square, the red circle moving up". Same buffer rules. */
char *scene_caption_short(const scene *s, scene_rng *r, char *buf, size_t n);

/* Every word (and punctuation token) the two caption generators can write, sorted, each once:
 * the built-in world's caption vocabulary, from which text encoders build their token tables.
 * *n gets the count. Kept beside the templates; tests check that captions use no other word. */
const char *const *scene_caption_vocabulary(int *n);

/* ---- JSON ---------------------------------------------------------------------------------- */

/* Appends the scene as one JSON object (no newline) to b (common/json.h):
 * {"width":W,"height":H,"fps":F,"background":"navy","background_rgb":[20,30,80],
 *  "pan":"none|left|right","pan_speed_wps":0|0.064,
 *  "objects":[{"colour":"red","rgb":[220,40,40],"shape":"circle","size":"large",
 *              "radius":0.17,"motion":"left","speed":"slow","speed_wps":0.064,
 *              "x":0.312,"y":0.5}, ...],
 *  "relation":"none|to the left of|to the right of|above|below"}
 * speed_wps is 0 for a still object; x, y as in scene_object (multiples of 0.001, printed
 * exactly, so a scene read back from JSON renders the same pixels). */
void scene_json_put(json_buf *b, const scene *s);
/* Reads the object scene_json_put writes back into *out. TB_ERR + err_get() naming the field
 * that is missing or has an unknown value. */
int scene_json_get(const json_value *v, scene *out);

#ifdef __cplusplus
}
#endif
#endif

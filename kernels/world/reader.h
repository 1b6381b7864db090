/* kernels/world/reader.h — the pixel reader of the built-in world (SYNTHETIC_WORLD.md,
 * common/scene.h): what a video of the world shows, read from its pixels alone, at any
 * resolution and fps, with each attribute's status and, when it cannot be read, why.
 *
 *   world_read r;
 *   if (world_read_video_u8(rgb, F, H, W, fps, NULL, &r) != TB_OK) ... err_get() ...;
 *   for (int i = 0; i < r.n_objects; i++)
 *     if (r.obj[i].st[WORLD_ATTR_SHAPE].status == WORLD_OK)
 *       printf("%s\n", scene_shape_name(r.obj[i].value[WORLD_ATTR_SHAPE]));
 *   world_read_free(&r);
 *
 * How it reads (each step documented at its definition in reader.c):
 *  1. Background and colour drift: the dominant colour(s) of the first frame give the background
 *     (checkered: two grays in a W/8 grid) and a per-channel drift d (observed − palette), chosen
 *     jointly with the objects' colours; |d| up to ~40 levels per channel is absorbed.
 *  2. Palette segmentation: every pixel p (3x3-smoothed when the frame is noisy) is modelled as a
 *     blend p − d = α·c + (1 − α)·bg of one palette colour c with the background; the colour with
 *     the smallest residual labels the pixel when α ≥ ½ (so anti-aliased and blurred edges split
 *     where the true edge is). Pixels that fit no colour are left unlabelled.
 *  3. Connected components (4-connected) per colour and frame; pieces of one colour that touch
 *     opposite edges at overlapping rows (columns) are one object crossing the edge (the world
 *     wraps) and are joined with unwrapped coordinates. Components smaller than a quarter of the
 *     smallest object's area are stray blobs (counted, ignored).
 *  4. Tracks: components are linked frame to frame by colour and nearest wrap-aware centroid.
 *     Tracks seen in fewer than a quarter of the frames are dropped (as strays).
 *  5. Per object: shape from the frames where it is whole (not cut by the frame edge): a hole at
 *     the centre → ring; top-half / bottom-half area < 0.6 → triangle (apex up); filled bounding
 *     box corners → square; else circle. The majority over whole frames is the shape; under 60%
 *     agreement the shape is not read. Size from the radius (bounding box half-extent) in W:
 *     small (0.09) or large (0.17), split at 0.124. Centroid track unwrapped across edges; the
 *     least-squares velocity (W per second on both axes: the world's unit) gives direction and
 *     speed relative to the background's motion (step 6): still under 0.02 W/s; dominant axis;
 *     slow/fast split at 0.113 W/s (the geometric mean of 0.064 and 0.2).
 *  6. Camera pan: on a textured background (checkered) the background's own translation
 *     (flow_translation over background pixels) is the pan. On a plain background the pan cannot
 *     be seen; the reader then keeps every pan hypothesis (none, left, right) under which each
 *     object's own motion (screen motion minus the pan) is one the world can make, with each
 *     hypothesis' motions and speeds (`hyp`). One hypothesis left: pan and motions are read;
 *     several: pan, motion and speed are WORLD_FAIL with reason "ambiguous: …", and the scorer
 *     (kernels/eval/eval.h) accepts a prompt exactly when it agrees with one of the hypotheses,
 *     since the pixels of those scenes are identical.
 *  7. Relation: from the first-frame centres of the first two objects present in frame 0, along
 *     the dominant axis of their offset (CompBench's rule); not read when one is missing or the
 *     axes are within 20% of each other. world_relation() gives it for any pair.
 *  8. Count: objects (tracks) read; background: the class of step 1.
 *
 * Thread-safety: no globals; the reader allocates per call. Errors: TB_ERR + err_get() only for
 * bad arguments (sizes, fps, NULL); a video that shows nothing readable is a TB_OK read with the
 * attributes' statuses saying so.
 */
#ifndef TURBO_WORLD_READER_H
#define TURBO_WORLD_READER_H

#include <stdint.h>

#include "common/json.h"
#include "common/scene.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WORLD_READ_MAX_OBJECTS 8   /* objects kept in a read (the world draws at most 2) */
#define WORLD_REASON_MAX 96

/* Status of one read attribute. */
typedef enum {
  WORLD_OK = 0,   /* read; value is valid */
  WORLD_FAIL,     /* could not be read; reason says why (the attribute then fails any check) */
  WORLD_NA        /* does not apply (relation of a one-object video, speed of a still object) */
} world_status;

typedef struct {
  world_status status;
  char reason[WORLD_REASON_MAX]; /* "" when WORLD_OK */
} world_attr_status;

/* Attributes of one object; values are the scene.h enums as int. */
typedef enum {
  WORLD_ATTR_COLOUR = 0, /* scene_colour */
  WORLD_ATTR_SHAPE,      /* scene_shape */
  WORLD_ATTR_SIZE,       /* scene_size */
  WORLD_ATTR_MOTION,     /* scene_motion, relative to the background */
  WORLD_ATTR_SPEED,      /* scene_speed (WORLD_NA when still) */
  WORLD_OBJ_ATTR_COUNT
} world_obj_attr;

/* Attributes of the scene. */
typedef enum {
  WORLD_ATTR_COUNT_OBJECTS = 0, /* n_objects */
  WORLD_ATTR_BACKGROUND,        /* scene_bg */
  WORLD_ATTR_PAN,               /* scene_pan */
  WORLD_ATTR_RELATION,          /* scene_relation of obj[0] to obj[1] */
  WORLD_SCENE_ATTR_COUNT
} world_scene_attr;

/* Per-frame state of one tracked object. */
typedef struct {
  uint8_t visible;  /* a component of this track is in the frame */
  uint8_t whole;    /* not cut by the frame edge (a wrapped object joined across edges counts
                       as whole) */
  float x, y;       /* centroid, pixels, unwrapped: continuous across edge crossings */
  float x0, y0, x1, y1; /* bounding box in frame pixels (x1, y1 exclusive; wrapped objects: the
                           larger piece) */
  float area;       /* pixels */
} world_track_frame;

typedef struct {
  int value[WORLD_OBJ_ATTR_COUNT];              /* valid where st[k].status == WORLD_OK */
  world_attr_status st[WORLD_OBJ_ATTR_COUNT];
  double x, y;          /* centre in the first frame it is seen, fractions of W and H */
  int first_frame;      /* first frame it is seen */
  int frames_seen;      /* frames with a component of it */
  double radius;        /* estimated radius, fraction of W (0 when unknown) */
  double vx, vy;        /* screen velocity, W per second (both axes in W, the world's unit) */
  double fill;          /* area / bounding box area in its best whole frame */
  world_track_frame *track; /* (frames) per-frame states; owned by the read */
} world_object_read;

/* One pan hypothesis on a plain background: the objects' own motions under it. */
typedef struct {
  int motion[WORLD_READ_MAX_OBJECTS]; /* scene_motion */
  int speed[WORLD_READ_MAX_OBJECTS];  /* scene_speed (-1 for still) */
  double residual;                    /* largest distance (W/s) of an object's own velocity to
                                         the nearest velocity the world makes */
} world_pan_hyp;

typedef struct {
  int width, height, frames;
  double fps;
  int value[WORLD_SCENE_ATTR_COUNT];          /* valid where st[k].status == WORLD_OK */
  world_attr_status st[WORLD_SCENE_ATTR_COUNT];
  int n_objects;                              /* tracked objects kept (also value[COUNT]) */
  world_object_read obj[WORLD_READ_MAX_OBJECTS]; /* ordered by first frame seen, then x */
  int n_stray;                                /* stray blobs ignored (summed over frames) */
  double drift[3];                            /* colour drift estimate, levels per channel */
  double noise;                               /* noise estimate, levels (σ) */
  int bg_textured;                            /* 1 when the background shows its motion */
  double bg_vx, bg_vy;                        /* background screen velocity, W/s (0 if plain) */
  unsigned pan_hyps;                          /* bit p: pan p fits what is seen */
  world_pan_hyp hyp[SCENE_PAN_COUNT];         /* valid where bit p of pan_hyps is set */
} world_read;

typedef struct {
  int noise_smooth;      /* 1 = always 3x3-smooth before labelling, 0 = never, -1 = when the
                            noise estimate exceeds 6 levels (default) */
  double min_area_frac;  /* stray threshold, fraction of the small circle's area (default 0.25) */
  double max_drift;      /* largest per-channel colour drift accepted, levels (default 45) */
} world_read_opts;

void world_read_opts_default(world_read_opts *o);

/* Reads a video of F frames of H x W RGB at fps: u8 (F, H, W, 3) or float (F, H, W, 3) in [0, 1]
 * (values outside are clamped). opts may be NULL (defaults). On TB_OK *out owns its tracks (free
 * with world_read_free); TB_ERR + err_get() for F < 1, H or W < 8, fps <= 0 or NULL frames (then
 * *out is zeroed and needs no free). */
int world_read_video_u8(const uint8_t *rgb, int F, int H, int W, double fps,
                        const world_read_opts *opts, world_read *out);
int world_read_video_f32(const float *rgb, int F, int H, int W, double fps,
                         const world_read_opts *opts, world_read *out);
void world_read_free(world_read *r); /* ignores NULL and zeroed reads */

/* The relation of object i to object j from their first-frame-seen centres (CompBench's
 * dominant-axis rule, y down): SCENE_REL_* or SCENE_REL_NONE when the two axes are within 20%. */
scene_relation world_relation(const world_read *r, int i, int j);

/* Appends the read as one JSON object (no newline): scene attributes, then "objects":[…], each
 * attribute as its canonical name (common/scene.h) or null with "<attr>_reason". */
void world_read_json_put(json_buf *b, const world_read *r);

/* ---- structured truth / prompt specs -------------------------------------------------------- */

/* What a prompt asks for (or what a truth sidecar says): every field a scene.h enum value, or -1
 * when the prompt does not say (an unspecified attribute is never checked). */
typedef struct {
  int colour, shape, size, motion, speed;
} world_spec_object;

typedef struct {
  int n_objects;                          /* 1 or 2 */
  world_spec_object obj[SCENE_MAX_OBJECTS];
  int relation;                           /* obj[0] to obj[1]; -1 unspecified */
  int bg, pan;                            /* -1 unspecified */
} world_spec;

/* Every attribute of a scene (a rendered clip's truth); speed is -1 for still objects. */
void world_spec_from_scene(const scene *s, world_spec *out);
/* Reads a spec from JSON: the scene form of common/scene.h (scene_json_put, truth.jsonl's
 * "scene"), where any field may be missing (unspecified) — {"background":"navy","pan":"none",
 * "objects":[{"colour":"red","shape":"circle","motion":"left","speed":"slow"}],
 * "relation":"none"}. TB_ERR + err_get() naming the field with an unknown value. */
int world_spec_json_get(const json_value *v, world_spec *out);

#ifdef __cplusplus
}
#endif
#endif

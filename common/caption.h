/* common/caption.h — word-level edits of captions in the built-in world's caption language
 * (the templates of common/scene.c): the hard negatives of the reward models' contrastive
 * training ("the same caption with the motion direction changed") and the caption variants
 * their evaluation ranks.
 *
 * A caption is split into words at blanks, with ',' and ';' as tokens of their own. Sites are
 * found by phrase patterns, each kind with its values (enums of common/scene.h):
 *   CAPTION_EDIT_DIRECTION  an object's motion: "moving left" / "staying still" in short
 *                           captions; "to the left", "leftward", "left", "toward the top",
 *                           "upward", "up" … in long ones — never a relation ("to the left of"),
 *                           a position ("on the left") or the camera ("pans left"). Values
 *                           scene_motion; SCENE_MOTION_STILL only at a short caption's site.
 *   CAPTION_EDIT_SPEED      a speed adverb ("slowly", "at high speed", …) and the
 *                           speed-specific verb of its phrase ("drifts", "races"); scene_speed.
 *   CAPTION_EDIT_RELATION   "to the left of", "above" …, or the position pair "on the left …
 *                           on the right" (one site); scene_relation (not NONE).
 *   CAPTION_EDIT_COLOUR     an object's colour, every mention; scene_colour.
 *   CAPTION_EDIT_SHAPE      the shape word after an object's colour, every mention;
 *                           scene_shape (written with its canonical name).
 *   CAPTION_EDIT_PAN        the camera's pan direction; SCENE_PAN_LEFT or SCENE_PAN_RIGHT.
 * Sites are numbered in caption order (colours and shapes: by the object's first mention).
 * Captions from elsewhere edit the same way where the patterns match and have no sites where
 * they do not.
 *
 * Thread-safe; no allocation beyond the stack.
 */
#ifndef TURBO_CAPTION_H
#define TURBO_CAPTION_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  CAPTION_EDIT_DIRECTION = 0,
  CAPTION_EDIT_SPEED,
  CAPTION_EDIT_RELATION,
  CAPTION_EDIT_COLOUR,
  CAPTION_EDIT_SHAPE,
  CAPTION_EDIT_PAN,
  CAPTION_EDIT_COUNT
} caption_edit_kind;

#define CAPTION_MAX_WORDS 128 /* words of a caption that can be edited (longer: no sites) */
#define CAPTION_MAX_SITES 8

/* "direction", "speed", …; "?" for other values. */
const char *caption_edit_name(caption_edit_kind kind);

/* Number of sites of `kind` in caption (0 when none, or the caption is too long to edit). */
int caption_sites(const char *caption, caption_edit_kind kind);
/* The value at site `site` (an enum of common/scene.h), or -1 when there is no such site. */
int caption_site_value(const char *caption, caption_edit_kind kind, int site);
/* Writes into out (n bytes) the caption with site `site` set to `value`. Returns 1 when the
 * caption changed, 0 when it did not (value already there, a value the site cannot express, a
 * colour the other object has), TB_ERR (err_get()) for a missing site, a bad value or an out
 * buffer too small. out may not alias caption. */
int caption_edit(const char *caption, caption_edit_kind kind, int site, int value, char *out,
                 size_t n);

/* The caption of the mirror image (left and right swapped): every left/right direction,
 * relation, position and pan swapped. Returns 1 when it changed, 0 when the caption names no
 * left or right (out is then a copy), TB_ERR when out is too small. */
int caption_mirror(const char *caption, char *out, size_t n);
/* The caption of the clip played backwards: every motion direction reversed (left and right,
 * up and down swapped) and the camera's pan reversed; still objects, speeds and relations stay
 * (a relation is the first frame's, which playing backwards changes only when the objects
 * cross: callers that need it exact use one-object captions). Returns 1 when it changed, 0
 * when nothing moves (out is then a copy), TB_ERR when out is too small. */
int caption_reverse(const char *caption, char *out, size_t n);

#ifdef __cplusplus
}
#endif
#endif

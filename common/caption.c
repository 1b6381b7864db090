/* common/caption.c — see caption.h. The patterns follow the templates of common/scene.c. */
#include "common/caption.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/scene.h"

#define WORD_MAX 32

typedef struct {
  char w[CAPTION_MAX_WORDS][WORD_MAX];
  int n;
} words;

typedef struct {
  int start, len; /* the words the site covers */
  int value;      /* its current value */
  int style;      /* how the replacement is written (direction, speed) */
  int other;      /* a second word or phrase: the speed verb, the second position; -1 none */
  int other_len;
} site;

const char *caption_edit_name(caption_edit_kind kind) {
  static const char *names[CAPTION_EDIT_COUNT] = {"direction", "speed",  "relation",
                                                  "colour",    "shape",  "pan"};
  return kind >= 0 && kind < CAPTION_EDIT_COUNT ? names[kind] : "?";
}

/* Words at blanks; ',' and ';' become tokens of their own. TB_ERR when a word or the caption
 * is too long to edit. */
static int split(const char *s, words *out) {
  out->n = 0;
  const char *p = s;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == '\n') p++;
    if (!*p) break;
    if (out->n == CAPTION_MAX_WORDS) return TB_ERR;
    char *w = out->w[out->n];
    int l = 0;
    if (*p == ',' || *p == ';') {
      w[l++] = *p++;
    } else {
      while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != ',' && *p != ';') {
        if (l == WORD_MAX - 1) return TB_ERR;
        w[l++] = *p++;
      }
    }
    w[l] = 0;
    out->n++;
  }
  return TB_OK;
}

/* Words joined by blanks, with no blank before ',' and ';'. */
static int join(const words *ws, char *out, size_t n) {
  size_t len = 0;
  if (n == 0) return err_set("caption: empty output buffer");
  out[0] = 0;
  for (int i = 0; i < ws->n; i++) {
    int punct = strcmp(ws->w[i], ",") == 0 || strcmp(ws->w[i], ";") == 0;
    int m = snprintf(out + len, n - len, "%s%s", i > 0 && !punct ? " " : "", ws->w[i]);
    if (m < 0 || (size_t)m >= n - len) return err_set("caption: the edited caption needs more than %zu bytes", n);
    len += (size_t)m;
  }
  return TB_OK;
}

static int is(const words *ws, int i, const char *w) {
  return i >= 0 && i < ws->n && strcmp(ws->w[i], w) == 0;
}
static int index_of(const char *w, const char *const *list, int n) {
  for (int i = 0; i < n; i++)
    if (strcmp(w, list[i]) == 0) return i;
  return -1;
}

static const char *const DIR4[4] = {"left", "right", "up", "down"}; /* scene_motion - 1 */
enum { STYLE_SHORT = 0, STYLE_PHRASE, STYLE_WARD, STYLE_BARE };

/* A relation phrase "to the left of" / "to the right of" at i: its relation, or 0. */
static int relation_at(const words *ws, int i) {
  if (is(ws, i, "to") && is(ws, i + 1, "the") && is(ws, i + 3, "of")) {
    if (is(ws, i + 2, "left")) return SCENE_REL_LEFT_OF;
    if (is(ws, i + 2, "right")) return SCENE_REL_RIGHT_OF;
  }
  return 0;
}
/* A position phrase "on the left" / "on the right" / "at the top" / "at the bottom" at i: the
 * relation its object has to the other, or 0. */
static int position_at(const words *ws, int i) {
  if (is(ws, i, "on") && is(ws, i + 1, "the")) {
    if (is(ws, i + 2, "left")) return SCENE_REL_LEFT_OF;
    if (is(ws, i + 2, "right")) return SCENE_REL_RIGHT_OF;
  }
  if (is(ws, i, "at") && is(ws, i + 1, "the")) {
    if (is(ws, i + 2, "top")) return SCENE_REL_ABOVE;
    if (is(ws, i + 2, "bottom")) return SCENE_REL_BELOW;
  }
  return 0;
}
/* A pan phrase at i ("pans left", "panning right", "pans slowly to the left"): its length, the
 * pan value in *v; 0 when none. */
static int pan_at(const words *ws, int i, int *v) {
  if (!is(ws, i, "pans") && !is(ws, i, "panning")) return 0;
  int j = i + 1;
  if (is(ws, j, "slowly")) j++;
  if (is(ws, j, "to") && is(ws, j + 1, "the")) j += 2;
  if (is(ws, j, "left")) *v = SCENE_PAN_LEFT;
  else if (is(ws, j, "right")) *v = SCENE_PAN_RIGHT;
  else return 0;
  return j - i + 1;
}

static int find_direction(const words *ws, site *out) {
  int n = 0;
  for (int i = 0; i < ws->n && n < CAPTION_MAX_SITES;) {
    int v = 0, l;
    if (relation_at(ws, i)) { i += 4; continue; }
    if (position_at(ws, i)) { i += 3; continue; }
    if ((l = pan_at(ws, i, &v)) > 0) { i += l; continue; }
    site s = {i, 0, -1, 0, -1, 0};
    const char *w = ws->w[i];
    int d;
    if (strcmp(w, "moving") == 0 && i + 1 < ws->n && (d = index_of(ws->w[i + 1], DIR4, 4)) >= 0) {
      s.len = 2, s.value = SCENE_MOTION_LEFT + d, s.style = STYLE_SHORT;
    } else if (strcmp(w, "staying") == 0 && is(ws, i + 1, "still")) {
      s.len = 2, s.value = SCENE_MOTION_STILL, s.style = STYLE_SHORT;
    } else if (strcmp(w, "to") == 0 && is(ws, i + 1, "the") && i + 2 < ws->n &&
               (is(ws, i + 2, "left") || is(ws, i + 2, "right"))) {
      s.len = 3, s.value = is(ws, i + 2, "left") ? SCENE_MOTION_LEFT : SCENE_MOTION_RIGHT;
      s.style = STYLE_PHRASE;
    } else if (strcmp(w, "toward") == 0 && is(ws, i + 1, "the") &&
               (is(ws, i + 2, "top") || is(ws, i + 2, "bottom"))) {
      s.len = 3, s.value = is(ws, i + 2, "top") ? SCENE_MOTION_UP : SCENE_MOTION_DOWN;
      s.style = STYLE_PHRASE;
    } else if (strlen(w) > 4 && strcmp(w + strlen(w) - 4, "ward") == 0) {
      char stem[WORD_MAX];
      snprintf(stem, sizeof stem, "%.*s", (int)strlen(w) - 4, w);
      if ((d = index_of(stem, DIR4, 4)) < 0) { i++; continue; }
      s.len = 1, s.value = SCENE_MOTION_LEFT + d, s.style = STYLE_WARD;
    } else if ((d = index_of(w, DIR4, 4)) >= 0) {
      s.len = 1, s.value = SCENE_MOTION_LEFT + d, s.style = STYLE_BARE;
    } else {
      i++;
      continue;
    }
    out[n++] = s;
    i += s.len;
  }
  return n;
}

static const char *const SLOW_ADV[] = {"slowly", "gently"};
static const char *const FAST_ADV[] = {"quickly", "rapidly", "fast"};
static const char *const SLOW_VERB[] = {"drifts", "creeps"};
static const char *const FAST_VERB[] = {"races", "darts", "zips"};

static int find_speed(const words *ws, site *out) {
  int n = 0;
  for (int i = 0; i < ws->n && n < CAPTION_MAX_SITES; i++) {
    site s = {i, 1, -1, 0, -1, 0};
    int k;
    if (is(ws, i, "at") && is(ws, i + 1, "a") && is(ws, i + 2, "slow") && is(ws, i + 3, "pace")) {
      s.len = 4, s.value = SCENE_SPEED_SLOW, s.style = 2;
    } else if (is(ws, i, "at") && is(ws, i + 1, "high") && is(ws, i + 2, "speed")) {
      s.len = 3, s.value = SCENE_SPEED_FAST, s.style = 2;
    } else if ((k = index_of(ws->w[i], SLOW_ADV, 2)) >= 0) {
      if (is(ws, i - 1, "pans")) continue; /* the camera's "pans slowly to the left" */
      s.value = SCENE_SPEED_SLOW, s.style = k;
    } else if ((k = index_of(ws->w[i], FAST_ADV, 3)) >= 0) {
      s.value = SCENE_SPEED_FAST, s.style = k > 1 ? 0 : k;
    } else {
      continue;
    }
    /* the verb of the same phrase: back to the clause's start */
    for (int j = i - 1; j >= 0 && j >= i - 6; j--) {
      if (is(ws, j, ",") || is(ws, j, ";") || is(ws, j, "while") || is(ws, j, "and")) break;
      if (index_of(ws->w[j], SLOW_VERB, 2) >= 0 || index_of(ws->w[j], FAST_VERB, 3) >= 0) {
        s.other = j, s.other_len = 1;
        break;
      }
    }
    out[n++] = s;
    i += s.len - 1;
  }
  return n;
}

static int find_relation(const words *ws, site *out) {
  int n = 0, first_pos = -1;
  for (int i = 0; i < ws->n && n < CAPTION_MAX_SITES; i++) {
    int r;
    if ((r = relation_at(ws, i))) {
      out[n++] = (site){i, 4, r, 0, -1, 0};
      i += 3;
    } else if (is(ws, i, "above") || is(ws, i, "below")) {
      out[n++] = (site){i, 1, is(ws, i, "above") ? SCENE_REL_ABOVE : SCENE_REL_BELOW, 0, -1, 0};
    } else if ((r = position_at(ws, i))) {
      if (first_pos < 0) {
        first_pos = n;
        out[n++] = (site){i, 3, r, 1, -1, 0};
      } else if (out[first_pos].other < 0) {
        out[first_pos].other = i, out[first_pos].other_len = 3;
      }
      i += 2;
    }
  }
  if (first_pos >= 0 && out[first_pos].other < 0) {
    /* a lone position phrase is no relation: drop it */
    for (int k = first_pos; k + 1 < n; k++) out[k] = out[k + 1];
    n--;
  }
  return n;
}

static const char *const COLOURS[SCENE_COLOUR_COUNT] = {"red",    "green",  "blue", "yellow",
                                                        "purple", "orange", "cyan", "white"};
/* An object colour word at i (not the backgrounds "dark blue", "forest green", "dark green"). */
static int colour_at(const words *ws, int i) {
  int c = index_of(ws->w[i], COLOURS, SCENE_COLOUR_COUNT);
  if (c < 0 || is(ws, i - 1, "dark") || is(ws, i - 1, "forest")) return -1;
  return c;
}
static int find_colour(const words *ws, site *out) {
  int n = 0;
  for (int i = 0; i < ws->n; i++) {
    int c = colour_at(ws, i), seen = 0;
    if (c < 0) continue;
    for (int k = 0; k < n; k++) seen |= out[k].value == c;
    if (!seen && n < CAPTION_MAX_SITES) out[n++] = (site){i, 1, c, 0, -1, 0};
  }
  return n;
}

static int shape_of(const char *w) {
  static const char *const names[] = {"circle", "disc", "square", "block", "triangle", "ring",
                                      "hoop"};
  static const int shape[] = {SCENE_SHAPE_CIRCLE, SCENE_SHAPE_CIRCLE, SCENE_SHAPE_SQUARE,
                              SCENE_SHAPE_SQUARE, SCENE_SHAPE_TRIANGLE, SCENE_SHAPE_RING,
                              SCENE_SHAPE_RING};
  int k = index_of(w, names, 7);
  return k < 0 ? -1 : shape[k];
}
/* One site per object colour that a shape word follows; value the shape, style the colour. */
static int find_shape(const words *ws, site *out) {
  site col[CAPTION_MAX_SITES];
  int nc = find_colour(ws, col), n = 0;
  for (int k = 0; k < nc; k++)
    for (int i = 0; i + 1 < ws->n; i++)
      if (colour_at(ws, i) == col[k].value && shape_of(ws->w[i + 1]) >= 0) {
        out[n++] = (site){i + 1, 1, shape_of(ws->w[i + 1]), col[k].value, -1, 0};
        break;
      }
  return n;
}

static int find_pan(const words *ws, site *out) {
  int n = 0;
  for (int i = 0; i < ws->n && n < CAPTION_MAX_SITES; i++) {
    int v, l = pan_at(ws, i, &v);
    if (l > 0) {
      out[n++] = (site){i + l - 1, 1, v, 0, -1, 0}; /* the direction word itself */
      i += l - 1;
    }
  }
  return n;
}

static int find_sites(const words *ws, caption_edit_kind kind, site *out) {
  switch (kind) {
  case CAPTION_EDIT_DIRECTION: return find_direction(ws, out);
  case CAPTION_EDIT_SPEED: return find_speed(ws, out);
  case CAPTION_EDIT_RELATION: return find_relation(ws, out);
  case CAPTION_EDIT_COLOUR: return find_colour(ws, out);
  case CAPTION_EDIT_SHAPE: return find_shape(ws, out);
  case CAPTION_EDIT_PAN: return find_pan(ws, out);
  default: return 0;
  }
}

int caption_sites(const char *caption, caption_edit_kind kind) {
  words ws;
  site s[CAPTION_MAX_SITES];
  if (!caption || split(caption, &ws) != TB_OK) return 0;
  return find_sites(&ws, kind, s);
}

int caption_site_value(const char *caption, caption_edit_kind kind, int k) {
  words ws;
  site s[CAPTION_MAX_SITES];
  if (!caption || split(caption, &ws) != TB_OK) return -1;
  int n = find_sites(&ws, kind, s);
  return k >= 0 && k < n ? s[k].value : -1;
}

/* out = ws with words [start, start+len) replaced by the blank-separated words of `with`. */
static int splice(const words *ws, int start, int len, const char *with, words *out) {
  words rep;
  if (split(with, &rep) != TB_OK) return TB_ERR;
  if (ws->n - len + rep.n > CAPTION_MAX_WORDS) return err_set("caption: too many words");
  out->n = 0;
  for (int i = 0; i < start; i++) memcpy(out->w[out->n++], ws->w[i], WORD_MAX);
  for (int i = 0; i < rep.n; i++) memcpy(out->w[out->n++], rep.w[i], WORD_MAX);
  for (int i = start + len; i < ws->n; i++) memcpy(out->w[out->n++], ws->w[i], WORD_MAX);
  return TB_OK;
}

static const char *position_words(int rel) {
  switch (rel) {
  case SCENE_REL_LEFT_OF: return "on the left";
  case SCENE_REL_RIGHT_OF: return "on the right";
  case SCENE_REL_ABOVE: return "at the top";
  default: return "at the bottom";
  }
}
static int relation_opposite(int rel) {
  switch (rel) {
  case SCENE_REL_LEFT_OF: return SCENE_REL_RIGHT_OF;
  case SCENE_REL_RIGHT_OF: return SCENE_REL_LEFT_OF;
  case SCENE_REL_ABOVE: return SCENE_REL_BELOW;
  default: return SCENE_REL_ABOVE;
  }
}

static int value_ok(caption_edit_kind kind, int v) {
  switch (kind) {
  case CAPTION_EDIT_DIRECTION: return v >= 0 && v < SCENE_MOTION_COUNT;
  case CAPTION_EDIT_SPEED: return v >= 0 && v < SCENE_SPEED_COUNT;
  case CAPTION_EDIT_RELATION: return v > SCENE_REL_NONE && v < SCENE_REL_COUNT;
  case CAPTION_EDIT_COLOUR: return v >= 0 && v < SCENE_COLOUR_COUNT;
  case CAPTION_EDIT_SHAPE: return v >= 0 && v < SCENE_SHAPE_COUNT;
  case CAPTION_EDIT_PAN: return v == SCENE_PAN_LEFT || v == SCENE_PAN_RIGHT;
  default: return 0;
  }
}

int caption_edit(const char *caption, caption_edit_kind kind, int k, int value, char *out,
                 size_t n) {
  if (!caption || !out) return err_set("caption_edit: NULL argument");
  if (!value_ok(kind, value))
    return err_set("caption_edit: value %d is not a %s", value, caption_edit_name(kind));
  words ws, res;
  site s[CAPTION_MAX_SITES];
  if (split(caption, &ws) != TB_OK) return err_set("caption_edit: caption too long to edit");
  int ns = find_sites(&ws, kind, s);
  if (k < 0 || k >= ns)
    return err_set("caption_edit: no %s site %d (the caption has %d)", caption_edit_name(kind), k,
                   ns);
  site st = s[k];
  if (st.value == value) {
    snprintf(out, n, "%s", caption);
    return 0;
  }
  char rep[64];
  int rc = TB_OK;
  res = ws;
  switch (kind) {
  case CAPTION_EDIT_DIRECTION: {
    const char *d = value == SCENE_MOTION_STILL ? NULL : DIR4[value - SCENE_MOTION_LEFT];
    if (st.style == STYLE_SHORT) {
      if (d) snprintf(rep, sizeof rep, "moving %s", d);
      else snprintf(rep, sizeof rep, "staying still");
    } else if (!d) {
      return 0; /* a long caption's phrase cannot say "still" in place */
    } else if (st.style == STYLE_PHRASE) {
      snprintf(rep, sizeof rep, "%s",
               value == SCENE_MOTION_UP     ? "toward the top"
               : value == SCENE_MOTION_DOWN ? "toward the bottom"
               : value == SCENE_MOTION_LEFT ? "to the left"
                                            : "to the right");
    } else if (st.style == STYLE_WARD) {
      snprintf(rep, sizeof rep, "%sward", d);
    } else {
      snprintf(rep, sizeof rep, "%s", d);
    }
    rc = splice(&ws, st.start, st.len, rep, &res);
    break;
  }
  case CAPTION_EDIT_SPEED: {
    static const char *const to_slow[3] = {"slowly", "gently", "at a slow pace"};
    static const char *const to_fast[3] = {"quickly", "rapidly", "at high speed"};
    snprintf(rep, sizeof rep, "%s", value == SCENE_SPEED_SLOW ? to_slow[st.style] : to_fast[st.style]);
    words tmp = ws;
    if (st.other >= 0) { /* the verb first: it comes before the adverb */
      int v = index_of(ws.w[st.other], SLOW_VERB, 2), f = index_of(ws.w[st.other], FAST_VERB, 3);
      if (value == SCENE_SPEED_FAST && v >= 0) snprintf(tmp.w[st.other], WORD_MAX, "%s", FAST_VERB[v]);
      if (value == SCENE_SPEED_SLOW && f >= 0) snprintf(tmp.w[st.other], WORD_MAX, "%s", SLOW_VERB[f > 1 ? 1 : f]);
    }
    rc = splice(&tmp, st.start, st.len, rep, &res);
    break;
  }
  case CAPTION_EDIT_RELATION:
    if (st.style == 1) { /* the position pair, second phrase first (indices stay valid) */
      words tmp;
      rc = splice(&ws, st.other, st.other_len, position_words(relation_opposite(value)), &tmp);
      if (rc == TB_OK) rc = splice(&tmp, st.start, st.len, position_words(value), &res);
    } else {
      rc = splice(&ws, st.start, st.len, scene_relation_name((scene_relation)value), &res);
    }
    break;
  case CAPTION_EDIT_COLOUR:
    for (int j = 0; j < ns; j++)
      if (j != k && s[j].value == value) return 0; /* two objects never share a colour */
    for (int i = 0; i < ws.n; i++)
      if (colour_at(&ws, i) == st.value) snprintf(res.w[i], WORD_MAX, "%s", COLOURS[value]);
    break;
  case CAPTION_EDIT_SHAPE:
    for (int i = 0; i + 1 < ws.n; i++)
      if (colour_at(&ws, i) == st.style && shape_of(ws.w[i + 1]) >= 0)
        snprintf(res.w[i + 1], WORD_MAX, "%s", scene_shape_name((scene_shape)value));
    break;
  case CAPTION_EDIT_PAN:
    snprintf(res.w[st.start], WORD_MAX, "%s", value == SCENE_PAN_LEFT ? "left" : "right");
    break;
  default:
    return err_set("caption_edit: unknown kind %d", (int)kind);
  }
  if (rc != TB_OK) return TB_ERR;
  if (join(&res, out, n) != TB_OK) return TB_ERR;
  return strcmp(out, caption) != 0;
}

int caption_mirror(const char *caption, char *out, size_t n) {
  char a[1024], b[1024];
  if (snprintf(a, sizeof a, "%s", caption) >= (int)sizeof a) return err_set("caption_mirror: caption too long");
  int changed = 0;
  /* each site separately; left/right phrases have the same length both ways, so the site
   * numbers stay valid between edits */
  static const caption_edit_kind kinds[3] = {CAPTION_EDIT_DIRECTION, CAPTION_EDIT_RELATION, CAPTION_EDIT_PAN};
  for (int k = 0; k < 3; k++) {
    int ns = caption_sites(a, kinds[k]);
    for (int i = 0; i < ns; i++) {
      int v = caption_site_value(a, kinds[k], i), w = -1;
      if (kinds[k] == CAPTION_EDIT_DIRECTION)
        w = v == SCENE_MOTION_LEFT ? SCENE_MOTION_RIGHT : v == SCENE_MOTION_RIGHT ? SCENE_MOTION_LEFT : -1;
      else if (kinds[k] == CAPTION_EDIT_RELATION)
        w = v == SCENE_REL_LEFT_OF ? SCENE_REL_RIGHT_OF : v == SCENE_REL_RIGHT_OF ? SCENE_REL_LEFT_OF : -1;
      else
        w = v == SCENE_PAN_LEFT ? SCENE_PAN_RIGHT : v == SCENE_PAN_RIGHT ? SCENE_PAN_LEFT : -1;
      if (w < 0) continue;
      int rc = caption_edit(a, kinds[k], i, w, b, sizeof b);
      if (rc == TB_ERR) return TB_ERR;
      if (rc == 1) {
        memcpy(a, b, sizeof a);
        changed = 1;
      }
    }
  }
  if (snprintf(out, n, "%s", a) >= (int)n) return err_set("caption_mirror: output buffer too small");
  return changed;
}

int caption_reverse(const char *caption, char *out, size_t n) {
  char a[1024], b[1024];
  if (snprintf(a, sizeof a, "%s", caption) >= (int)sizeof a) return err_set("caption_reverse: caption too long");
  int changed = 0;
  static const caption_edit_kind kinds[2] = {CAPTION_EDIT_DIRECTION, CAPTION_EDIT_PAN};
  for (int k = 0; k < 2; k++) {
    int ns = caption_sites(a, kinds[k]);
    for (int i = 0; i < ns; i++) {
      int v = caption_site_value(a, kinds[k], i), w = -1;
      if (kinds[k] == CAPTION_EDIT_DIRECTION)
        w = v == SCENE_MOTION_LEFT ? SCENE_MOTION_RIGHT : v == SCENE_MOTION_RIGHT ? SCENE_MOTION_LEFT
          : v == SCENE_MOTION_UP ? SCENE_MOTION_DOWN : v == SCENE_MOTION_DOWN ? SCENE_MOTION_UP : -1;
      else
        w = v == SCENE_PAN_LEFT ? SCENE_PAN_RIGHT : v == SCENE_PAN_RIGHT ? SCENE_PAN_LEFT : -1;
      if (w < 0) continue;
      int rc = caption_edit(a, kinds[k], i, w, b, sizeof b);
      if (rc == TB_ERR) return TB_ERR;
      if (rc == 1) {
        memcpy(a, b, sizeof a);
        changed = 1;
      }
    }
  }
  if (snprintf(out, n, "%s", a) >= (int)n) return err_set("caption_reverse: output buffer too small");
  return changed;
}

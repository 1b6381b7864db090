/* stages/eval/prompts.c — the dimension table, prompt suites (generator and loader).
 *
 * The generator draws scenes with common/scene.c's sampler and keeps the draws that fit a
 * group's requirement (the colour group cycles through the 8 colours, the spatial group through
 * the 4 relations, …), so every prompt is a scene the world can render and the captions are the
 * world's own templates. Public suites exclude the held-out compositions; the held-out suite
 * keeps only scenes that contain one. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "stages/eval/eval.h"

uint32_t eval_dims_applicable(void) {
  uint32_t m = 0;
  for (int d = 0; d < EVAL_DIM_COUNT; d++)
    if (eval_dim_is_exact((eval_dim)d) >= 0) m |= EVAL_BIT(d);
  return m;
}

double eval_dim_chance(int d) {
  switch (d) {
  case EVAL_OBJECT_CLASS: return 1.0 / SCENE_SHAPE_COUNT;
  case EVAL_COLOR: return 1.0 / SCENE_COLOUR_COUNT;
  case EVAL_HUMAN_ACTION: return 1.0 / SCENE_MOTION_COUNT;
  case EVAL_SCENE: return 1.0 / SCENE_BG_COUNT;
  case EVAL_APPEARANCE_STYLE: return 1.0 / SCENE_SIZE_COUNT;
  default: return -1;
  }
}

static int scene_moving_objects(const scene *s) {
  int n = 0;
  for (int i = 0; i < s->n_objects; i++) n += s->obj[i].motion != SCENE_MOTION_STILL;
  return n;
}

/* ---- the generator ------------------------------------------------------------------------ */

typedef enum { SUITE_VBENCH = 0, SUITE_COMPBENCH, SUITE_HELDOUT, SUITE_COUNT } suite_id;
static const char *const SUITE_NAMES[SUITE_COUNT] = {"vbench", "compbench", "heldout"};

typedef struct {
  const char *name;   /* group name, prefix of prompt ids */
  int compbench;      /* which public suite it belongs to */
  uint32_t dims;      /* dimensions its prompts are scored on */
  /* 1 when scene s fits prompt number k of the group */
  int (*fits)(const scene *s, int k);
  int need_long;      /* 1: its attribute (size, speed, background) is only in long captions */
  const char *what;   /* for not_applicable.json / README: what the group asks for */
} group_def;

#define BIT(d) EVAL_BIT(d)

static int fit_subject(const scene *s, int k) {
  (void)k;
  return s->n_objects == 1 && s->pan == SCENE_PAN_NONE && s->obj[0].motion != SCENE_MOTION_STILL;
}
static int fit_background(const scene *s, int k) {
  return (k % 2 == 0) == (s->pan == SCENE_PAN_NONE);
}
static int fit_static(const scene *s, int k) {
  (void)k;
  return s->pan == SCENE_PAN_NONE && scene_moving_objects(s) == 0;
}
static int fit_object_class(const scene *s, int k) {
  return s->n_objects == 1 && (int)s->obj[0].shape == k % SCENE_SHAPE_COUNT;
}
static int fit_multiple(const scene *s, int k) {
  (void)k;
  return s->n_objects == 2;
}
static int fit_action(const scene *s, int k) {
  return s->n_objects == 1 && s->pan == SCENE_PAN_NONE &&
         (int)s->obj[0].motion == 1 + k % (SCENE_MOTION_COUNT - 1);
}
static int fit_color(const scene *s, int k) {
  return s->n_objects == 1 && (int)s->obj[0].colour == k % SCENE_COLOUR_COUNT;
}
static int fit_spatial(const scene *s, int k) {
  return s->n_objects == 2 && (int)s->relation == 1 + k % (SCENE_REL_COUNT - 1);
}
static int fit_scene(const scene *s, int k) {
  return s->n_objects == 1 && (int)s->bg == k % SCENE_BG_COUNT;
}
static int fit_temporal_style(const scene *s, int k) {
  return (int)s->pan == 1 + k % 2;
}
static int fit_appearance(const scene *s, int k) {
  return s->n_objects == 1 && (int)s->obj[0].size == k % 2;
}
static int fit_any(const scene *s, int k) {
  (void)s, (void)k;
  return 1;
}
static int fit_consistent_attr(const scene *s, int k) {
  (void)k;
  return s->n_objects == 2 && s->obj[0].shape != s->obj[1].shape;
}
static int fit_motion_binding(const scene *s, int k) {
  if (s->n_objects != 1 + k % 2) return 0;
  if (scene_moving_objects(s) != s->n_objects) return 0;
  return s->n_objects == 1 || s->obj[0].motion != s->obj[1].motion;
}
static int fit_action_binding(const scene *s, int k) {
  if (s->n_objects != 2) return 0;
  int m0 = s->obj[0].motion != SCENE_MOTION_STILL, m1 = s->obj[1].motion != SCENE_MOTION_STILL;
  if (k % 2 == 0) return m0 != m1; /* one moves, one stays still */
  return m0 && m1 && s->obj[0].speed != s->obj[1].speed; /* one slow, one fast */
}
static int fit_numeracy(const scene *s, int k) {
  return s->n_objects == 1 + k % 2;
}

#define QUALITY_ALL                                                                          \
  (BIT(EVAL_SUBJECT_CONSISTENCY) | BIT(EVAL_MOTION_SMOOTHNESS) |                     \
   BIT(EVAL_DYNAMIC_DEGREE))

/* VBench's prompt lists, mapped onto the world: subject consistency, motion smoothness and
 * dynamic degree share the moving-subject prompts; temporal flickering takes static scenes;
 * aesthetic and imaging quality take the overall-consistency prompts, as VBench does. */
static const group_def GROUPS[] = {
    {"subject", 0, QUALITY_ALL, fit_subject, 0, "one moving object, no camera pan"},
    {"background", 0, BIT(EVAL_BACKGROUND_CONSISTENCY), fit_background, 0,
     "any scene, half of them with a camera pan"},
    {"static", 0, BIT(EVAL_TEMPORAL_FLICKERING), fit_static, 0,
     "nothing moves and the camera stays still"},
    {"object_class", 0, BIT(EVAL_OBJECT_CLASS), fit_object_class, 0,
     "one object, the 4 shapes in turn"},
    {"multiple_objects", 0, BIT(EVAL_MULTIPLE_OBJECTS), fit_multiple, 0, "two objects"},
    {"human_action", 0, BIT(EVAL_HUMAN_ACTION), fit_action, 0,
     "one object moving in each of the 4 directions in turn, no pan"},
    {"color", 0, BIT(EVAL_COLOR), fit_color, 0, "one object, the 8 colours in turn"},
    {"spatial_relationship", 0, BIT(EVAL_SPATIAL_RELATIONSHIP), fit_spatial, 0,
     "two objects, the 4 relations in turn"},
    {"scene", 0, BIT(EVAL_SCENE), fit_scene, 1, "one object, the 6 backgrounds in turn"},
    {"temporal_style", 0, BIT(EVAL_TEMPORAL_STYLE), fit_temporal_style, 1,
     "the camera pans left or right"},
    {"appearance_style", 0, BIT(EVAL_APPEARANCE_STYLE), fit_appearance, 1,
     "one object, small and large in turn"},
    {"overall_consistency", 0,
     BIT(EVAL_OVERALL_CONSISTENCY) | BIT(EVAL_AESTHETIC_QUALITY) |
         BIT(EVAL_IMAGING_QUALITY),
     fit_any, 0, "any scene: every attribute the phrasing names, at once"},
    {"consistent_attr", 1, BIT(EVAL_CB_CONSISTENT_ATTR), fit_consistent_attr, 0,
     "two objects of different shapes: each colour bound to its shape"},
    {"spatial_relationships", 1, BIT(EVAL_CB_SPATIAL), fit_spatial, 0,
     "two objects, the 4 relations in turn"},
    {"motion_binding", 1, BIT(EVAL_CB_MOTION), fit_motion_binding, 0,
     "one or two moving objects (different directions), any pan"},
    {"action_binding", 1, BIT(EVAL_CB_ACTION), fit_action_binding, 1,
     "two objects: one moving and one still, or one slow and one fast"},
    {"generative_numeracy", 1, BIT(EVAL_CB_NUMERACY), fit_numeracy, 0, "one or two objects"},
};
#define NGROUPS ((int)(sizeof GROUPS / sizeof GROUPS[0]))

/* The prompt canvas: the curated size (positions are fractions, so any size renders it). */
#define PROMPT_W 64
#define PROMPT_H 64
#define PROMPT_FPS 8
#define MAX_TRIES 200000

static int draw_scene(uint64_t seed, uint64_t index, const group_def *g, int k, int heldout,
                      scene *out) {
  const scene_exclusions *ex = scene_exclusions_default();
  for (int t = 0; t < MAX_TRIES; t++) {
    scene_rng r;
    scene_rng_seed(&r, seed, index * MAX_TRIES + (uint64_t)t, SCENE_STREAM_SCENE);
    scene s;
    if (scene_sample(&r, PROMPT_W, PROMPT_H, PROMPT_FPS, heldout ? NULL : ex, &s) != TB_OK)
      return TB_ERR;
    if (heldout && !scene_is_excluded(&s, ex)) continue;
    if (!g->fits(&s, k)) continue;
    *out = s;
    return TB_OK;
  }
  return err_set("prompts: no scene fits group %s (prompt %d%s) in %d draws", g->name, k,
                 heldout ? ", held-out" : "", MAX_TRIES);
}

/* What a phrasing asks for, in the scene form world_spec_json_get reads: short captions name
 * colour, shape, motion direction, the relation and the pan; long ones also size, speed and the
 * background (common/scene.c's templates). */
static void put_truth(json_buf *b, const scene *s, int use_long) {
  json_buf_puts(b, "{");
  if (use_long) json_buf_printf(b, "\"background\":\"%s\",", scene_bg_name(s->bg));
  json_buf_printf(b, "\"pan\":\"%s\",\"objects\":[", scene_pan_name(s->pan));
  for (int i = 0; i < s->n_objects; i++) {
    const scene_object *o = &s->obj[i];
    json_buf_printf(b, "%s{\"colour\":\"%s\",\"shape\":\"%s\",", i ? "," : "",
                    scene_colour_name(o->colour), scene_shape_name(o->shape));
    if (use_long) json_buf_printf(b, "\"size\":\"%s\",", scene_size_name(o->size));
    json_buf_printf(b, "\"motion\":\"%s\"", scene_motion_name(o->motion));
    if (use_long && o->motion != SCENE_MOTION_STILL)
      json_buf_printf(b, ",\"speed\":\"%s\"", scene_speed_name(o->speed));
    json_buf_puts(b, "}");
  }
  json_buf_printf(b, "],\"relation\":\"%s\"}", scene_relation_name(s->relation));
}

static void put_dims(json_buf *b, uint32_t dims) {
  json_buf_puts(b, "[");
  int first = 1;
  for (int d = 0; d < EVAL_DIM_COUNT; d++) {
    if (!(dims & BIT(d))) continue;
    json_buf_printf(b, "%s\"%s\"", first ? "" : ",", eval_dim_name((eval_dim)d));
    first = 0;
  }
  json_buf_puts(b, "]");
}

static int write_file(const char *dir, const char *name, const json_buf *b) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return fs_write_atomic(path, b->data ? b->data : "", b->len);
}

int eval_prompts_generate(const char *dir, uint64_t seed, int per_group, int heldout_per_group,
                          int samples) {
  if (per_group < 1 || heldout_per_group < 0 || samples < 1 || samples > EVAL_MAX_SEEDS)
    return err_set("prompts: per group %d, held-out %d, samples %d (1..%d) out of range",
                   per_group, heldout_per_group, samples, EVAL_MAX_SEEDS);
  if (fs_mkdir_p(dir) != TB_OK) return TB_ERR;
  json_buf files[SUITE_COUNT] = {{0}};
  int counts[SUITE_COUNT] = {0};
  for (int gi = 0; gi < NGROUPS; gi++) {
    const group_def *g = &GROUPS[gi];
    for (int pass = 0; pass < 2; pass++) {
      int heldout = pass == 1;
      int n = heldout ? heldout_per_group : per_group;
      suite_id su = heldout ? SUITE_HELDOUT : g->compbench ? SUITE_COMPBENCH : SUITE_VBENCH;
      for (int k = 0; k < n; k++) {
        uint64_t index = (uint64_t)(gi * 2 + pass) * 10000 + (uint64_t)k;
        scene s;
        if (draw_scene(seed, index, g, k, heldout, &s) != TB_OK) goto fail;
        scene_rng cr;
        scene_rng_seed(&cr, seed, index, SCENE_STREAM_CAPTION);
        char lng[512], shrt[512];
        scene_caption_long(&s, &cr, lng, sizeof lng);
        scene_caption_short(&s, &cr, shrt, sizeof shrt);
        /* both phrasings are measured: even prompts sample the short caption, odd the long */
        int use_long = g->need_long || k % 2 == 1;
        json_buf *b = &files[su];
        json_buf_printf(b, "{\"id\":\"%s%s-%03d\",\"suite\":\"%s\",\"group\":\"%s\",",
                        heldout ? "heldout-" : "", g->name, k, SUITE_NAMES[su], g->name);
        json_buf_puts(b, "\"prompt\":");
        json_buf_put_string(b, use_long ? lng : shrt, strlen(use_long ? lng : shrt));
        json_buf_printf(b, ",\"phrasing\":\"%s\",\"prompt_short\":", use_long ? "long" : "short");
        json_buf_put_string(b, shrt, strlen(shrt));
        json_buf_puts(b, ",\"prompt_long\":");
        json_buf_put_string(b, lng, strlen(lng));
        json_buf_puts(b, ",\"dimensions\":");
        put_dims(b, g->dims);
        json_buf_printf(b, ",\"heldout\":%s", heldout ? "true" : "false");
        if (heldout) {
          const scene_exclusions *ex = scene_exclusions_default();
          json_buf_puts(b, ",\"heldout_rules\":[");
          int first = 1;
          for (int ri = 0; ri < scene_exclusions_count(ex); ri++) {
            /* which rules this scene matches: test each rule alone */
            char rule[128];
            scene_exclusions_rule_text(ex, ri, rule, sizeof rule);
            scene_exclusions *one = scene_exclusions_parse(rule);
            if (!one) goto fail;
            if (scene_is_excluded(&s, one)) {
              if (!first) json_buf_puts(b, ",");
              json_buf_put_string(b, rule, strlen(rule));
              first = 0;
            }
            scene_exclusions_free(one);
          }
          json_buf_puts(b, "]");
        }
        json_buf_puts(b, ",\"samples\":[");
        for (int j = 0; j < samples; j++)
          json_buf_printf(b, "%s{\"seed\":%llu}", j ? "," : "",
                          (unsigned long long)(seed * 1000000 + index * 16 + (uint64_t)j));
        json_buf_puts(b, "],\"truth\":");
        put_truth(b, &s, use_long);
        json_buf_puts(b, ",\"scene\":");
        scene_json_put(b, &s);
        json_buf_puts(b, "}\n");
        counts[su]++;
      }
    }
  }
  for (int su = 0; su < SUITE_COUNT; su++) {
    char name[64];
    snprintf(name, sizeof name, "%s.jsonl", SUITE_NAMES[su]);
    if (write_file(dir, name, &files[su]) != TB_OK) goto fail;
    log_info("prompts: %s/%s: %d prompts x %d samples", dir, name, counts[su], samples);
  }
  {
    json_buf na = {0};
    json_buf_puts(&na, "{\"format\":\"turbo.eval.not_applicable\",\"v\":1,\"categories\":[\n");
    int first = 1;
    for (int d = 0; d < EVAL_DIM_COUNT; d++) {
      const char *why = eval_dim_na_reason((eval_dim)d);
      if (!why) continue;
      json_buf_printf(&na, "%s {\"dimension\":\"%s\",\"benchmark\":\"%s\",\"reason\":",
                      first ? "" : ",\n", eval_dim_name((eval_dim)d),
                      d >= EVAL_CB_FIRST ? "compbench" : "vbench");
      json_buf_put_string(&na, why, strlen(why));
      json_buf_puts(&na, "}");
      first = 0;
    }
    json_buf_puts(&na, "\n]}\n");
    int rc = write_file(dir, "not_applicable.json", &na);
    json_buf_free(&na);
    if (rc != TB_OK) goto fail;
  }
  for (int su = 0; su < SUITE_COUNT; su++) json_buf_free(&files[su]);
  return TB_OK;
fail:
  for (int su = 0; su < SUITE_COUNT; su++) json_buf_free(&files[su]);
  return TB_ERR;
}

/* ---- the loader --------------------------------------------------------------------------- */

static char *dup_field(const json_value *o, const char *key, const char *path, int line,
                       int required) {
  const json_value *v = json_get(o, key);
  if (!v) {
    if (required) log_error("%s:%d: field '%s' is missing", path, line, key);
    return NULL;
  }
  if (v->type != JSON_STRING || v->len == 0 || strlen(v->string) != v->len) {
    log_error("%s:%d: field '%s' must be a non-empty string", path, line, key);
    return NULL;
  }
  return xstrdup(v->string);
}

/* Parses one line into *p; TB_ERR after logging the first problem (file:line: field …). */
static int parse_line(const char *path, int line, const char *text, size_t len, eval_prompt *p,
                      char **suite) {
  memset(p, 0, sizeof *p);
  p->line = line;
  json_value *o = json_parse(text, len, NULL);
  if (!o) {
    log_error("%s:%d: not JSON: %s", path, line, err_get());
    return TB_ERR;
  }
  int rc = TB_ERR;
  if (o->type != JSON_OBJECT) {
    log_error("%s:%d: a prompt line must be a JSON object", path, line);
    goto out;
  }
  char *id = dup_field(o, "id", path, line, 1);
  if (!id) goto out;
  if (strlen(id) >= EVAL_PROMPT_ID_MAX || strpbrk(id, " \t/\\\"',")) {
    log_error("%s:%d: field 'id' \"%s\": at most %d characters, no blanks, slashes, quotes or "
              "commas", path, line, id, EVAL_PROMPT_ID_MAX - 1);
    free(id);
    goto out;
  }
  snprintf(p->id, sizeof p->id, "%s", id);
  free(id);
  char *su = dup_field(o, "suite", path, line, 0);
  if (su) {
    if (*suite && strcmp(*suite, su) != 0) {
      log_error("%s:%d: field 'suite' is \"%s\" but earlier lines say \"%s\"", path, line, su,
                *suite);
      free(su);
      goto out;
    }
    if (!*suite) *suite = su; else free(su);
  }
  char *grp = dup_field(o, "group", path, line, 0);
  snprintf(p->group, sizeof p->group, "%s", grp ? grp : "");
  free(grp);
  p->prompt = dup_field(o, "prompt", path, line, 1);
  if (!p->prompt) goto out;
  p->prompt_short = dup_field(o, "prompt_short", path, line, 0);
  p->prompt_long = dup_field(o, "prompt_long", path, line, 0);
  const json_value *tv = json_get(o, "truth");
  if (!tv || tv->type != JSON_OBJECT) {
    log_error("%s:%d: field 'truth' is %s, expected what the prompt asks for in the scene form "
              "(pipelines/prompts/README.md)", path, line,
              tv ? json_type_name(tv->type) : "missing");
    goto out;
  }
  if (world_spec_json_get(tv, &p->truth) != TB_OK) {
    log_error("%s:%d: field 'truth': %s", path, line, err_get());
    goto out;
  }
  if (p->truth.n_objects < 1 || p->truth.n_objects > SCENE_MAX_OBJECTS) {
    log_error("%s:%d: field 'truth'.objects: %d objects (the world has 1 or 2)", path, line,
              p->truth.n_objects);
    goto out;
  }
  const json_value *scv = json_get(o, "scene");
  if (scv) {
    if (scv->type != JSON_OBJECT || scene_json_get(scv, &p->scene) != TB_OK) {
      log_error("%s:%d: field 'scene': %s", path, line,
                scv->type != JSON_OBJECT ? "not an object" : err_get());
      goto out;
    }
    p->have_scene = 1;
  }
  const json_value *dv = json_get(o, "dimensions");
  if (!dv) {
    p->dims = eval_dims_applicable(); /* every dimension the truth states what it needs for */
  } else {
    if (dv->type != JSON_ARRAY || dv->count == 0) {
      log_error("%s:%d: field 'dimensions' must be a non-empty array of names", path, line);
      goto out;
    }
    for (size_t i = 0; i < dv->count; i++) {
      const json_value *e = &dv->items[i];
      int d = e->type == JSON_STRING ? eval_dim_from_name(e->string) : -1;
      if (d < 0) {
        log_error("%s:%d: field 'dimensions'[%zu]: unknown dimension %s%s%s (see %s)", path,
                  line, i, e->type == JSON_STRING ? "\"" : "",
                  e->type == JSON_STRING ? e->string : json_type_name(e->type),
                  e->type == JSON_STRING ? "\"" : "", "pipelines/prompts/README.md");
        goto out;
      }
      if (eval_dim_na_reason((eval_dim)d)) {
        log_error("%s:%d: field 'dimensions'[%zu]: %s is not applicable to the built-in world "
                  "(%s)", path, line, i, eval_dim_name((eval_dim)d),
                  eval_dim_na_reason((eval_dim)d));
        goto out;
      }
      p->dims |= BIT(d);
    }
  }
  const json_value *hv = json_get(o, "heldout");
  if (hv && hv->type != JSON_BOOL) {
    log_error("%s:%d: field 'heldout' must be true or false", path, line);
    goto out;
  }
  p->heldout = hv ? hv->boolean : 0;
  const json_value *sv = json_get(o, "samples");
  if (!sv || sv->type != JSON_ARRAY || sv->count == 0 || sv->count > EVAL_MAX_SEEDS) {
    log_error("%s:%d: field 'samples' must be an array of 1..%d {\"seed\":N} objects", path, line,
              EVAL_MAX_SEEDS);
    goto out;
  }
  for (size_t i = 0; i < sv->count; i++) {
    int64_t seed;
    if (json_get_int64(&sv->items[i], "seed", &seed) != TB_OK || seed < 0) {
      log_error("%s:%d: field 'samples'[%zu].seed must be an integer >= 0", path, line, i);
      goto out;
    }
    for (int j = 0; j < p->nseeds; j++)
      if (p->seeds[j] == seed) {
        log_error("%s:%d: field 'samples'[%zu].seed %lld repeats", path, line, i,
                  (long long)seed);
        goto out;
      }
    p->seeds[p->nseeds++] = seed;
  }
  rc = TB_OK;
out:
  json_free(o);
  if (rc != TB_OK) {
    free(p->prompt);
    free(p->prompt_short);
    free(p->prompt_long);
    p->prompt = p->prompt_short = p->prompt_long = NULL;
  }
  return rc;
}

int eval_prompts_load(const char *path, eval_prompts *out, int *bad) {
  memset(out, 0, sizeof *out);
  if (bad) *bad = 0;
  size_t len = 0;
  char *text = NULL;
  if (fs_read_all(path, &text, &len) != TB_OK) return err_set("prompts %s: %s", path, err_get());
  int nbad = 0, cap = 0, line = 0;
  out->path = xstrdup(path);
  for (size_t pos = 0; pos < len;) {
    size_t end = pos;
    while (end < len && text[end] != '\n') end++;
    line++;
    size_t a = pos, b = end;
    while (a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
    while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r')) b--;
    pos = end + 1;
    if (a == b || text[a] == '#') continue; /* blank lines and comments */
    eval_prompt p;
    if (parse_line(path, line, text + a, b - a, &p, &out->suite) != TB_OK) {
      nbad++;
      continue;
    }
    if (eval_prompts_find(out, p.id) >= 0) {
      log_error("%s:%d: field 'id' \"%s\" repeats line %d", path, line, p.id,
                out->p[eval_prompts_find(out, p.id)].line);
      free(p.prompt), free(p.prompt_short), free(p.prompt_long);
      nbad++;
      continue;
    }
    if (out->n == cap) {
      cap = cap ? 2 * cap : 64;
      out->p = xrealloc(out->p, (size_t)cap * sizeof *out->p);
    }
    out->p[out->n++] = p;
  }
  free(text);
  if (bad) *bad = nbad;
  if (!out->suite) {
    /* the suite defaults to the file's base name without extension */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    out->suite = xstrdup(base);
    char *dot = strrchr(out->suite, '.');
    if (dot && dot != out->suite) *dot = 0;
  }
  if (nbad) {
    int n = nbad;
    eval_prompts_free(out);
    return err_set("prompts %s: %d bad line%s (each named above)", path, n, n == 1 ? "" : "s");
  }
  if (out->n == 0) {
    eval_prompts_free(out);
    return err_set("prompts %s: no prompts", path);
  }
  return TB_OK;
}

void eval_prompts_free(eval_prompts *ps) {
  if (!ps) return;
  for (int i = 0; i < ps->n; i++) {
    free(ps->p[i].prompt);
    free(ps->p[i].prompt_short);
    free(ps->p[i].prompt_long);
  }
  free(ps->p);
  free(ps->path);
  free(ps->suite);
  memset(ps, 0, sizeof *ps);
}

int eval_prompts_find(const eval_prompts *ps, const char *id) {
  for (int i = 0; i < ps->n; i++)
    if (strcmp(ps->p[i].id, id) == 0) return i;
  return -1;
}

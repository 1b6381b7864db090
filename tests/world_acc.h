/* tests/world_acc.h — rendering clips of the world in process and tallying the pixel reader's
 * answers against their scenes, per attribute; shared by test_world_reader and
 * test_long_world_reader. Static functions only (each test is one translation unit). */
#ifndef TURBO_TESTS_WORLD_ACC_H
#define TURBO_TESTS_WORLD_ACC_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/scene.h"
#include "kernels/world/degrade.h"
#include "kernels/world/reader.h"

enum { WA_COLOUR = 0, WA_SHAPE, WA_SIZE, WA_MOTION, WA_SPEED, WA_COUNT, WA_BG, WA_PAN, WA_REL, WA_N };
static const char *const WA_NAMES[WA_N] = {"colour", "shape", "size", "motion", "speed",
                                           "count", "background", "pan", "relation"};

/* Per attribute: cases, right (read and equal), wrong (read and different), unread (FAIL),
 * and of the unread, those whose truth is among the reader's pan hypotheses (ambiguous by the
 * pixels themselves). */
typedef struct {
  int n[WA_N], right[WA_N], wrong[WA_N], unread[WA_N], ambiguous_ok[WA_N];
} world_acc;

typedef enum { WD_CLEAN = 0, WD_BLUR, WD_NOISE, WD_SHIFT, WD_CUT, WD_COUNT } world_degradation;
static const char *const WD_NAMES[WD_COUNT] = {"clean", "blur", "noise", "colour shift 30", "cut by edge"};

static __attribute__((unused)) void wd_apply(world_degradation d, uint8_t *rgb, int F, int H, int W, uint64_t seed) {
  switch (d) {
  case WD_CLEAN: break;
  case WD_BLUR: degrade_blur(rgb, F, H, W, 0.012 * W); break;   /* σ 0.8 px at 64 */
  case WD_NOISE: degrade_noise(rgb, F, H, W, 20, seed); break;  /* σ 20 levels */
  case WD_SHIFT: degrade_colour_shift_random(rgb, F, H, W, 30, seed, NULL); break;
  case WD_CUT: degrade_zoom_crop(rgb, F, H, W, 0.8, (seed & 1) ? 0.0 : 1.0, (seed & 2) ? 0.0 : 1.0); break;
  default: break;
  }
}

static __attribute__((unused)) void wa_tally(world_acc *a, int k, int outcome /* 0 right 1 wrong 2 unread */) {
  a->n[k]++;
  if (outcome == 0) a->right[k]++;
  else if (outcome == 1) a->wrong[k]++;
  else a->unread[k]++;
}

/* Compares read r against scene s (as rendered: zoom = 1 for cut clips' sizes, which the cut
 * keeps classifiable). cut: objects may have left the frame, so a missing object of a cut clip
 * is not counted against colour and the count is not checked. */
static __attribute__((unused)) void wa_compare(world_acc *a, const scene *s, const world_read *r, int cut, int verbose) {
  int matched[SCENE_MAX_OBJECTS];
  for (int i = 0; i < s->n_objects; i++) {
    const scene_object *o = &s->obj[i];
    int m = -1;
    for (int j = 0; j < r->n_objects; j++)
      if (r->obj[j].value[WORLD_ATTR_COLOUR] == (int)o->colour) { m = j; break; }
    matched[i] = m;
    if (m < 0) {
      if (cut) continue;
      for (int k = WA_COLOUR; k <= WA_SPEED; k++) {
        if (k == WA_SPEED && o->motion == SCENE_MOTION_STILL) continue;
        wa_tally(a, k, 1);
      }
      if (verbose) fprintf(stderr, "  missing object %s %s\n", scene_colour_name(o->colour), scene_shape_name(o->shape));
      continue;
    }
    const world_object_read *ro = &r->obj[m];
    wa_tally(a, WA_COLOUR, 0);
    int truth[WORLD_OBJ_ATTR_COUNT] = {o->colour, o->shape, o->size, o->motion, o->speed};
    for (int k = WORLD_ATTR_SHAPE; k <= WORLD_ATTR_SPEED; k++) {
      if (k == WORLD_ATTR_SPEED && o->motion == SCENE_MOTION_STILL) continue;
      int out;
      if (ro->st[k].status == WORLD_OK) out = ro->value[k] == truth[k] ? 0 : 1;
      else out = 2;
      wa_tally(a, k, out);
      if (out == 2 && (k == WORLD_ATTR_MOTION || k == WORLD_ATTR_SPEED) &&
          (r->pan_hyps >> s->pan & 1)) {
        int hv = k == WORLD_ATTR_MOTION ? r->hyp[s->pan].motion[m] : r->hyp[s->pan].speed[m];
        if (hv == truth[k]) a->ambiguous_ok[k]++;
      }
      if (verbose && out != 0)
        fprintf(stderr, "  obj %d attr %d: read %d (%s) truth %d\n", i, k, ro->value[k], ro->st[k].reason, truth[k]);
    }
  }
  if (!cut) wa_tally(a, WA_COUNT, r->n_objects == s->n_objects ? 0 : 1);
  if (verbose && !cut && r->n_objects != s->n_objects)
    fprintf(stderr, "  count read %d truth %d\n", r->n_objects, s->n_objects);
  const world_attr_status *bs = &r->st[WORLD_ATTR_BACKGROUND];
  wa_tally(a, WA_BG, bs->status == WORLD_OK ? (r->value[WORLD_ATTR_BACKGROUND] == (int)s->bg ? 0 : 1) : 2);
  if (verbose && !(bs->status == WORLD_OK && r->value[WORLD_ATTR_BACKGROUND] == (int)s->bg))
    fprintf(stderr, "  bg read %d (%s) truth %d\n", r->value[WORLD_ATTR_BACKGROUND], bs->reason, s->bg);
  const world_attr_status *ps = &r->st[WORLD_ATTR_PAN];
  int pout = ps->status == WORLD_OK ? (r->value[WORLD_ATTR_PAN] == (int)s->pan ? 0 : 1) : 2;
  wa_tally(a, WA_PAN, pout);
  if (pout == 2 && (r->pan_hyps >> s->pan & 1)) a->ambiguous_ok[WA_PAN]++;
  if (s->n_objects == 2 && !cut) {
    const world_attr_status *rs = &r->st[WORLD_ATTR_RELATION];
    int out = 1;
    if (matched[0] >= 0 && matched[1] >= 0) {
      scene_relation rel = world_relation(r, matched[0], matched[1]);
      out = rel == SCENE_REL_NONE ? 2 : rel == s->relation ? 0 : 1;
    } else if (rs->status != WORLD_OK) out = 2;
    wa_tally(a, WA_REL, out);
    if (verbose && out) fprintf(stderr, "  relation wrong/unread (truth %d)\n", s->relation);
  }
}

static __attribute__((unused)) void wa_print(const char *title, const world_acc *a) {
  printf("%-18s", title);
  for (int k = 0; k < WA_N; k++) {
    if (!a->n[k]) { printf(" %10s", "-"); continue; }
    printf(" %9.1f%%", 100.0 * a->right[k] / a->n[k]);
  }
  printf("\n");
}

static __attribute__((unused)) void wa_print_header(void) {
  printf("%-18s", "accuracy");
  for (int k = 0; k < WA_N; k++) printf(" %10s", WA_NAMES[k]);
  printf("\n");
}

static __attribute__((unused)) double wa_rate(const world_acc *a, int k) { return a->n[k] ? (double)a->right[k] / a->n[k] : 1.0; }
static __attribute__((unused)) double wa_wrong_rate(const world_acc *a, int k) { return a->n[k] ? (double)a->wrong[k] / a->n[k] : 0.0; }

/* Renders F frames of scene s at its fps into rgb (F, H, W, 3). */
static __attribute__((unused)) void wa_render(const scene *s, int F, uint8_t *rgb) {
  size_t fs = (size_t)s->width * s->height * 3;
  for (int f = 0; f < F; f++) scene_render(s, (double)f / s->fps, rgb + f * fs);
}

#endif

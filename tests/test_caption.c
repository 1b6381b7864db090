/* tests/test_caption.c — the caption vocabulary and the caption edits of common/caption.h on
 * captions the world's generators write: every word is in scene_caption_vocabulary; each edit
 * kind finds one site per thing the scene has (moving objects, speeds, the relation, colours,
 * shapes, the pan) with the scene's value; an edit reads back as the value written, changes
 * nothing else of the other kinds, and on a short caption equals the caption of the scene with
 * that attribute changed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/caption.h"
#include "common/log.h"
#include "common/scene.h"
#include "tests/testutil.h"

static int in_vocab(const char *w, const char *const *v, int n) {
  int lo = 0, hi = n - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2, c = strcmp(w, v[mid]);
    if (c == 0) return 1;
    if (c < 0) hi = mid - 1;
    else lo = mid + 1;
  }
  return 0;
}

/* every word of s (split as caption.h does) is in the vocabulary */
static int check_words(const char *s, const char *const *v, int n) {
  char w[64];
  int l = 0, ok = 1;
  for (const char *p = s;; p++) {
    int sep = *p == 0 || *p == ' ' || *p == ',' || *p == ';';
    if (sep && l > 0) {
      w[l] = 0;
      if (!in_vocab(w, v, n)) {
        CHECKF(0, "word '%s' of \"%s\" is not in the caption vocabulary", w, s);
        ok = 0;
      }
      l = 0;
    }
    if ((*p == ',' || *p == ';') && !in_vocab(*p == ',' ? "," : ";", v, n)) ok = 0;
    if (*p == 0) break;
    if (!sep && l < 63) w[l++] = *p;
  }
  return ok;
}

static int moving(const scene *s) {
  int m = 0;
  for (int i = 0; i < s->n_objects; i++) m += s->obj[i].motion != SCENE_MOTION_STILL;
  return m;
}

int main(void) {
  test_begin("test_caption");
  int nv;
  const char *const *vocab = scene_caption_vocabulary(&nv);
  for (int i = 1; i < nv; i++) CHECKF(strcmp(vocab[i - 1], vocab[i]) < 0, "vocabulary not sorted at %s", vocab[i]);
  int direction_edits = 0, long_checked = 0;
  for (int k = 0; k < 3000; k++) {
    scene_rng r;
    scene_rng_seed(&r, 77, (uint64_t)k, SCENE_STREAM_SCENE);
    scene s;
    TB_CHECK(scene_sample(&r, 64, 64, 8, NULL, &s) == TB_OK);
    char lc[512], sc[512], out[512], want[512];
    scene_rng cr;
    scene_rng_seed(&cr, 77, (uint64_t)k, SCENE_STREAM_CAPTION);
    scene_caption_long(&s, &cr, lc, sizeof lc);
    scene_caption_short(&s, &cr, sc, sizeof sc);
    if (!check_words(lc, vocab, nv) || !check_words(sc, vocab, nv)) break;
    const scene_object *a = &s.obj[0];
    /* direction: the short caption has one site per mentioned object motion */
    int nd = caption_sites(sc, CAPTION_EDIT_DIRECTION);
    int want_nd = s.n_objects == 1 ? 1 : moving(&s);
    CHECKF(nd == want_nd, "\"%s\": %d direction sites, want %d", sc, nd, want_nd);
    CHECKF(caption_sites(lc, CAPTION_EDIT_DIRECTION) == moving(&s), "\"%s\": %d direction sites, want %d", lc,
           caption_sites(lc, CAPTION_EDIT_DIRECTION), moving(&s));
    if (s.n_objects == 1) {
      CHECKF(caption_site_value(sc, CAPTION_EDIT_DIRECTION, 0) == (int)a->motion, "\"%s\": direction", sc);
      if (a->motion != SCENE_MOTION_STILL) {
        CHECKF(caption_site_value(lc, CAPTION_EDIT_DIRECTION, 0) == (int)a->motion, "\"%s\": direction", lc);
        CHECKF(caption_site_value(lc, CAPTION_EDIT_SPEED, 0) == (int)a->speed, "\"%s\": speed", lc);
        CHECK(caption_sites(lc, CAPTION_EDIT_SPEED) == 1);
      }
      /* every direction variant of the short caption is the caption of that scene */
      for (int m = 0; m < SCENE_MOTION_COUNT; m++) {
        int rc = caption_edit(sc, CAPTION_EDIT_DIRECTION, 0, m, out, sizeof out);
        CHECK(rc == (m != (int)a->motion));
        scene t = s;
        t.obj[0].motion = (scene_motion)m;
        scene_caption_short(&t, &cr, want, sizeof want);
        CHECKF(strcmp(out, want) == 0, "direction %d of \"%s\": \"%s\", want \"%s\"", m, sc, out, want);
        direction_edits++;
        if (a->motion != SCENE_MOTION_STILL && m != SCENE_MOTION_STILL) {
          rc = caption_edit(lc, CAPTION_EDIT_DIRECTION, 0, m, out, sizeof out);
          CHECK(rc == (m != (int)a->motion));
          CHECKF(caption_site_value(out, CAPTION_EDIT_DIRECTION, 0) == m, "\"%s\" -> \"%s\"", lc, out);
          CHECKF(caption_site_value(out, CAPTION_EDIT_SPEED, 0) == (int)a->speed, "\"%s\"", out);
          CHECKF(caption_site_value(out, CAPTION_EDIT_PAN, 0) == (s.pan ? (int)s.pan : -1), "\"%s\"", out);
          check_words(out, vocab, nv);
          long_checked++;
        }
      }
      if (a->motion != SCENE_MOTION_STILL) {
        int to = a->speed == SCENE_SPEED_FAST ? SCENE_SPEED_SLOW : SCENE_SPEED_FAST;
        CHECK(caption_edit(lc, CAPTION_EDIT_SPEED, 0, to, out, sizeof out) == 1);
        CHECKF(caption_site_value(out, CAPTION_EDIT_SPEED, 0) == to, "\"%s\" -> \"%s\"", lc, out);
        CHECKF(caption_site_value(out, CAPTION_EDIT_DIRECTION, 0) == (int)a->motion, "\"%s\"", out);
        check_words(out, vocab, nv);
      }
    } else {
      CHECKF(caption_site_value(sc, CAPTION_EDIT_RELATION, 0) == (int)s.relation, "\"%s\": relation", sc);
      CHECKF(caption_site_value(lc, CAPTION_EDIT_RELATION, 0) == (int)s.relation, "\"%s\": relation", lc);
      for (int rel = 1; rel < SCENE_REL_COUNT; rel++) {
        CHECK(caption_edit(lc, CAPTION_EDIT_RELATION, 0, rel, out, sizeof out) == (rel != (int)s.relation));
        CHECKF(caption_site_value(out, CAPTION_EDIT_RELATION, 0) == rel, "\"%s\" -> \"%s\"", lc, out);
        CHECK(caption_sites(out, CAPTION_EDIT_DIRECTION) == moving(&s));
        check_words(out, vocab, nv);
        CHECK(caption_edit(sc, CAPTION_EDIT_RELATION, 0, rel, out, sizeof out) == (rel != (int)s.relation));
        scene t = s;
        t.relation = (scene_relation)rel;
        scene_caption_short(&t, &cr, want, sizeof want);
        CHECKF(strcmp(out, want) == 0, "relation of \"%s\": \"%s\", want \"%s\"", sc, out, want);
      }
    }
    /* colours and shapes: one site per object, in order */
    for (int pass = 0; pass < 2; pass++) {
      const char *c = pass ? lc : sc;
      CHECKF(caption_sites(c, CAPTION_EDIT_COLOUR) == s.n_objects, "\"%s\": colours", c);
      CHECKF(caption_sites(c, CAPTION_EDIT_SHAPE) == s.n_objects, "\"%s\": shapes", c);
      for (int i = 0; i < s.n_objects; i++) {
        CHECK(caption_site_value(c, CAPTION_EDIT_COLOUR, i) == (int)s.obj[i].colour);
        CHECK(caption_site_value(c, CAPTION_EDIT_SHAPE, i) == (int)s.obj[i].shape);
      }
      int other = (s.obj[0].colour + 3) % SCENE_COLOUR_COUNT;
      int rc = caption_edit(c, CAPTION_EDIT_COLOUR, 0, other, out, sizeof out);
      if (s.n_objects == 2 && (int)s.obj[1].colour == other) CHECK(rc == 0);
      else {
        CHECK(rc == 1 && caption_site_value(out, CAPTION_EDIT_COLOUR, 0) == other);
        if (s.n_objects == 2) CHECK(caption_site_value(out, CAPTION_EDIT_COLOUR, 1) == (int)s.obj[1].colour);
      }
      int sh = (s.obj[0].shape + 1) % SCENE_SHAPE_COUNT;
      CHECK(caption_edit(c, CAPTION_EDIT_SHAPE, 0, sh, out, sizeof out) == 1);
      CHECK(caption_site_value(out, CAPTION_EDIT_SHAPE, 0) == sh);
      if (s.n_objects == 2) CHECK(caption_site_value(out, CAPTION_EDIT_SHAPE, 1) == (int)s.obj[1].shape);
      CHECKF(caption_site_value(c, CAPTION_EDIT_PAN, 0) == (s.pan ? (int)s.pan : -1), "\"%s\": pan", c);
    }
    if (s.pan) {
      int to = s.pan == SCENE_PAN_LEFT ? SCENE_PAN_RIGHT : SCENE_PAN_LEFT;
      CHECK(caption_edit(lc, CAPTION_EDIT_PAN, 0, to, out, sizeof out) == 1);
      CHECK(caption_site_value(out, CAPTION_EDIT_PAN, 0) == to);
      CHECK(caption_sites(out, CAPTION_EDIT_DIRECTION) == moving(&s));
    }
    /* the mirror image: left and right swapped everywhere, the scene's mirror's caption */
    {
      scene t = s;
      for (int i = 0; i < t.n_objects; i++)
        if (t.obj[i].motion == SCENE_MOTION_LEFT || t.obj[i].motion == SCENE_MOTION_RIGHT)
          t.obj[i].motion = t.obj[i].motion == SCENE_MOTION_LEFT ? SCENE_MOTION_RIGHT : SCENE_MOTION_LEFT;
      if (t.relation == SCENE_REL_LEFT_OF || t.relation == SCENE_REL_RIGHT_OF)
        t.relation = t.relation == SCENE_REL_LEFT_OF ? SCENE_REL_RIGHT_OF : SCENE_REL_LEFT_OF;
      if (t.pan) t.pan = t.pan == SCENE_PAN_LEFT ? SCENE_PAN_RIGHT : SCENE_PAN_LEFT;
      scene_caption_short(&t, &cr, want, sizeof want);
      int rc = caption_mirror(sc, out, sizeof out);
      CHECKF(strcmp(out, want) == 0 && rc == (strcmp(sc, want) != 0), "mirror of \"%s\": \"%s\", want \"%s\"", sc, out, want);
      CHECK(caption_mirror(lc, out, sizeof out) >= 0);
      CHECK(caption_mirror(out, want, sizeof want) >= 0 && strcmp(want, lc) == 0); /* twice: itself */
    }
    /* played backwards: every direction and the pan reversed, the reversed scene's caption */
    {
      static const int rev[SCENE_MOTION_COUNT] = {SCENE_MOTION_STILL, SCENE_MOTION_RIGHT, SCENE_MOTION_LEFT,
                                                  SCENE_MOTION_DOWN, SCENE_MOTION_UP};
      scene t = s;
      for (int i = 0; i < t.n_objects; i++) t.obj[i].motion = rev[t.obj[i].motion];
      if (t.pan) t.pan = t.pan == SCENE_PAN_LEFT ? SCENE_PAN_RIGHT : SCENE_PAN_LEFT;
      scene_caption_short(&t, &cr, want, sizeof want);
      int rc = caption_reverse(sc, out, sizeof out);
      CHECKF(strcmp(out, want) == 0 && rc == (strcmp(sc, want) != 0), "reverse of \"%s\": \"%s\", want \"%s\"", sc, out, want);
      CHECK(caption_reverse(lc, out, sizeof out) >= 0);
      CHECK(caption_reverse(out, want, sizeof want) >= 0 && strcmp(want, lc) == 0); /* twice: itself */
    }
    if (g_test_failures > 20) break;
  }
  /* errors and captions from elsewhere */
  char out[64];
  CHECK(caption_edit("a red circle moving left", CAPTION_EDIT_DIRECTION, 1, 2, out, sizeof out) == TB_ERR);
  CHECK(caption_edit("a red circle moving left", CAPTION_EDIT_DIRECTION, 0, 9, out, sizeof out) == TB_ERR);
  CHECK(caption_edit("a red circle moving left", CAPTION_EDIT_DIRECTION, 0, 2, out, 8) == TB_ERR);
  CHECK(caption_sites("a dog runs in a park", CAPTION_EDIT_DIRECTION) == 0);
  CHECK(caption_sites("", CAPTION_EDIT_COLOUR) == 0);
  printf("%d short direction variants, %d long ones checked\n", direction_edits, long_checked);
  return test_finish();
}

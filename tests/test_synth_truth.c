/* bin/synth's plans, read back from its files (--plan-only: manifest and truth without videos):
 * flaw rates within a binomial band of the requested ones (defaults and options), held-out
 * compositions never present (default list, a custom list, and present with 'none'), manifests
 * (CSV and JSONL) agreeing with the truth, wrong captions taken from another clip, static clips
 * captioned with motion, shot cuts to a different scene, source formats as specified, and the
 * same seed giving the same files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/json.h"
#include "common/log.h"
#include "common/scene.h"
#include "tests/testutil.h"

#define N_CLIPS 3000
enum { F_STATIC, F_FLICKER, F_WATERMARK, F_LOWQ, F_WRONG, F_CUT, F_BROKEN, F_COUNT };
static const char *const FLAWS[F_COUNT] = {"static", "flicker", "watermark", "low_quality",
                                           "wrong_caption", "shot_cut", "broken"};
static const double DEFAULTS[F_COUNT] = {0.08, 0.06, 0.08, 0.06, 0.05, 0.04, 0.01};

static const char *g_bin, *g_dir;

static int run_synth(const char *out, const char *extra) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s/synth --plan-only --force --clips %d --out %s/%s %s > %s/%s.log 2>&1",
           g_bin, N_CLIPS, g_dir, out, extra, g_dir, out);
  int rc = system(cmd);
  CHECKF(rc == 0, "%s failed (log %s/%s.log)", cmd, g_dir, out);
  return rc;
}

/* Splits a file into lines (the array and lines are malloc'ed). */
static int read_lines(const char *dir, const char *name, char ***lines) {
  char path[1024], *text = NULL;
  snprintf(path, sizeof path, "%s/%s/%s", g_dir, dir, name);
  *lines = NULL;
  if (fs_read_all(path, &text, NULL) != TB_OK) return 0;
  int n = 0, cap = 0;
  for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    if (n == cap) *lines = realloc(*lines, sizeof **lines * (size_t)(cap = cap ? 2 * cap : 256));
    (*lines)[n++] = xstrdup(l);
  }
  free(text);
  return n;
}

static void free_lines(char **lines, int n) {
  for (int i = 0; i < n; i++) free(lines[i]);
  free(lines);
}

typedef struct {
  json_value **v;
  int n;
} truth_set;

static truth_set load_truth(const char *dir) {
  truth_set t = {NULL, 0};
  char **lines;
  int n = read_lines(dir, "truth.jsonl", &lines);
  t.v = xcalloc((size_t)n + 1, sizeof *t.v);
  for (int i = 0; i < n; i++) {
    t.v[i] = json_parse(lines[i], strlen(lines[i]), NULL);
    CHECKF(t.v[i] != NULL, "%s truth line %d: %s", dir, i, err_get());
  }
  t.n = n;
  free_lines(lines, n);
  return t;
}

static void free_truth(truth_set *t) {
  for (int i = 0; i < t->n; i++) json_free(t->v[i]);
  free(t->v);
}

static int has_flaw(const json_value *v, const char *type, const json_value **entry) {
  const json_value *fl = json_get(v, "flaws");
  for (size_t i = 0; fl && i < fl->count; i++) {
    const char *t = NULL;
    if (json_get_string(json_at(fl, i), "type", &t) == TB_OK && strcmp(t, type) == 0) {
      if (entry) *entry = json_at(fl, i);
      return 1;
    }
  }
  return 0;
}

/* |count - n p| <= 4.5 sqrt(n p (1-p)) + 1: fails by chance about once in 150,000 per check. */
static void check_rates(truth_set *t, const double *rates, const char *what) {
  for (int k = 0; k < F_COUNT; k++) {
    int c = 0;
    for (int i = 0; i < t->n; i++) c += has_flaw(t->v[i], FLAWS[k], NULL);
    double mean = t->n * rates[k], sd = sqrt(t->n * rates[k] * (1 - rates[k]));
    printf("%s: %-13s %4d of %d = %.4f (requested %.3f, band ±%.0f)\n", what, FLAWS[k], c, t->n,
           (double)c / t->n, rates[k], 4.5 * sd + 1);
    CHECKF(fabs(c - mean) <= 4.5 * sd + 1, "%s: %s rate %d/%d outside the band around %.3f", what,
           FLAWS[k], c, t->n, rates[k]);
  }
}

static int scene_of(const json_value *v, scene *s) {
  if (!v || scene_json_get(v, s) != TB_OK) {
    CHECKF(0, "scene: %s", err_get());
    return 0;
  }
  return 1;
}

/* Independent statement of the default held-out list. */
static int held_out(const scene *s) {
  for (int i = 0; i < s->n_objects; i++) {
    const scene_object *o = &s->obj[i];
    if ((o->colour == SCENE_COLOUR_GREEN && o->shape == SCENE_SHAPE_TRIANGLE) ||
        (o->colour == SCENE_COLOUR_YELLOW && o->shape == SCENE_SHAPE_SQUARE) ||
        (o->colour == SCENE_COLOUR_PURPLE && o->shape == SCENE_SHAPE_CIRCLE &&
         o->motion == SCENE_MOTION_UP) ||
        (o->shape == SCENE_SHAPE_RING && s->bg == SCENE_BG_SAND))
      return 1;
  }
  return 0;
}

/* Every scene of the corpus (the captioned one and shot cuts' second ones) through fn; returns
 * how many fn counted. */
static int count_scenes(truth_set *t, int (*fn)(const scene *)) {
  int c = 0;
  for (int i = 0; i < t->n; i++) {
    scene s;
    if (scene_of(json_get(t->v[i], "scene"), &s)) c += fn(&s);
    const json_value *cut = NULL;
    if (has_flaw(t->v[i], "shot_cut", &cut) && scene_of(json_get(cut, "scene"), &s)) c += fn(&s);
  }
  return c;
}

static int has_red_or_square(const scene *s) {
  for (int i = 0; i < s->n_objects; i++)
    if (s->obj[i].colour == SCENE_COLOUR_RED || s->obj[i].shape == SCENE_SHAPE_SQUARE) return 1;
  return 0;
}

/* RFC 4180 fields of one CSV line (no embedded line breaks in this corpus). */
static int csv_split(const char *line, char fields[][512], int max) {
  int n = 0;
  const char *p = line;
  while (n < max) {
    char *o = fields[n];
    size_t k = 0;
    if (*p == '"') {
      p++;
      for (; *p; p++) {
        if (*p == '"' && p[1] == '"') {
          if (k < 511) o[k++] = '"';
          p++;
        } else if (*p == '"') {
          p++;
          break;
        } else if (k < 511) {
          o[k++] = *p;
        }
      }
    } else {
      for (; *p && *p != ','; p++)
        if (k < 511) o[k++] = *p;
    }
    o[k] = 0;
    n++;
    if (*p != ',') break;
    p++;
  }
  return n;
}

static void check_default_corpus(void) {
  if (run_synth("default", "--seed 11") != 0) return;
  truth_set t = load_truth("default");
  CHECKF(t.n == N_CLIPS, "truth has %d lines", t.n);
  check_rates(&t, DEFAULTS, "default rates");
  CHECKF(count_scenes(&t, held_out) == 0, "held-out compositions in the default corpus");

  char **jl, **csv;
  int nj = read_lines("default", "manifest.jsonl", &jl), nc = read_lines("default", "manifest.csv", &csv);
  CHECKF(nj == N_CLIPS && nc == N_CLIPS + 1, "manifest lines: jsonl %d, csv %d", nj, nc);
  CHECK(nc > 0 && strcmp(csv[0], "videoid,contentUrl,duration,page_dir,name,short_caption") == 0);
  int fps_seen[31] = {0}, aspects[3] = {0}, bad_src = 0, bad_static = 0, bad_cut = 0, wrong = 0;
  int min_w = 1 << 30, max_w = 0;
  double min_d = 1e9, max_d = 0;
  for (int i = 0; i < t.n && i < nj && i + 1 < nc; i++) {
    const json_value *v = t.v[i];
    if (!v) continue;
    const char *cap, *scap, *mcap, *mscap, *path;
    int64_t id, fps, w, h, frames;
    double dur;
    if (json_get_string(v, "caption", &cap) || json_get_string(v, "short_caption", &scap) ||
        json_get_string(v, "manifest_caption", &mcap) ||
        json_get_string(v, "manifest_short_caption", &mscap) || json_get_string(v, "path", &path) ||
        json_get_int64(v, "videoid", &id) || json_get_int64(v, "fps", &fps) ||
        json_get_int64(v, "width", &w) || json_get_int64(v, "height", &h) ||
        json_get_int64(v, "frames", &frames) || json_get_number(v, "duration", &dur)) {
      CHECKF(0, "truth line %d: %s", i, err_get());
      continue;
    }
    CHECK(id == i);
    /* source formats */
    if (fps >= 0 && fps <= 30) fps_seen[fps]++;
    if (w < min_w) min_w = (int)w;
    if (w > max_w) max_w = (int)w;
    if (dur < min_d) min_d = dur;
    if (dur > max_d) max_d = dur;
    int asp = w == h ? 0 : llabs(h - llround(w * 3.0 / 4)) <= 1 ? 1 : llabs(h - llround(w * 9.0 / 16)) <= 1 ? 2 : -1;
    if (asp >= 0) aspects[asp]++;
    bad_src += asp < 0 || (w & 1) || (h & 1) || fabs(dur - (double)frames / fps) > 1e-6;
    /* manifests agree with the truth */
    json_value *m = json_parse(jl[i], strlen(jl[i]), NULL);
    const char *mp = "", *mc = "", *ms = "";
    CHECKF(m && !json_get_string(m, "path", &mp) && !json_get_string(m, "caption", &mc) &&
               !json_get_string(m, "short_caption", &ms),
           "manifest.jsonl line %d: %s", i, err_get());
    CHECKF(strcmp(mp, path) == 0 && strcmp(mc, mcap) == 0 && strcmp(ms, mscap) == 0,
           "manifest.jsonl line %d disagrees with truth", i);
    json_free(m);
    char f[8][512];
    int nf = csv_split(csv[i + 1], f, 8);
    CHECKF(nf == 6 && atoll(f[0]) == id && strcmp(f[1], path) == 0 && strcmp(f[4], mcap) == 0 &&
               strcmp(f[5], mscap) == 0 && fabs(atof(f[2]) - dur) < 0.001,
           "manifest.csv line %d disagrees with truth: %s", i + 1, csv[i + 1]);
    char want[64];
    snprintf(want, sizeof want, "videos/%06d.mp4", i);
    CHECK(strcmp(path, want) == 0);
    /* wrong captions come from another clip; the others are the clip's own */
    const json_value *e = NULL;
    if (has_flaw(v, "wrong_caption", &e)) {
      int64_t from = -1;
      json_get_int64(e, "from", &from);
      const char *other = "";
      if (from >= 0 && from < t.n && from != i && t.v[from]) json_get_string(t.v[from], "caption", &other);
      CHECKF(from != i && strcmp(mcap, other) == 0 && strcmp(mscap, scap) != 0,
             "clip %d: wrong caption not from clip %lld", i, (long long)from);
      wrong++;
    } else {
      CHECKF(strcmp(cap, mcap) == 0 && strcmp(scap, mscap) == 0, "clip %d: caption changed", i);
    }
    scene s;
    if (!scene_of(json_get(v, "scene"), &s)) continue;
    CHECK(s.width == w && s.height == h && s.fps == fps);
    if (has_flaw(v, "static", NULL)) bad_static += !scene_has_motion(&s);
    if (has_flaw(v, "shot_cut", &e)) {
      scene c;
      int64_t fr = 0;
      json_get_int64(e, "frame", &fr);
      if (scene_of(json_get(e, "scene"), &c))
        bad_cut += c.bg == s.bg || fr != frames / 2 || c.width != s.width;
    }
    const json_value *flick = NULL;
    if (has_flaw(v, "flicker", &flick)) {
      const json_value *g = json_get(flick, "gains");
      int ok = g && g->type == JSON_ARRAY && (int64_t)g->count == frames;
      for (size_t k = 0; ok && k < g->count; k++)
        ok = json_at(g, k)->number >= 0.75 && json_at(g, k)->number <= 1.25;
      CHECKF(ok, "clip %d: flicker gains", i);
    }
  }
  printf("sources: widths %d..%d, durations %.2f..%.2f s, fps 8/12/24/30: %d/%d/%d/%d, "
         "aspects 1:1/4:3/16:9: %d/%d/%d\n",
         min_w, max_w, min_d, max_d, fps_seen[8], fps_seen[12], fps_seen[24], fps_seen[30],
         aspects[0], aspects[1], aspects[2]);
  CHECKF(min_w == 48 && max_w == 160, "widths %d..%d, expected 48..160", min_w, max_w);
  CHECKF(min_d >= 1.0 - 1e-9 && max_d <= 4.0 + 0.05 && min_d < 1.2 && max_d > 3.8,
         "durations %.3f..%.3f", min_d, max_d);
  static const int FPS[4] = {8, 12, 24, 30};
  for (int k = 0; k < 4; k++) CHECK(fps_seen[FPS[k]] > N_CLIPS / 6);
  for (int k = 0; k < 3; k++) CHECK(aspects[k] > N_CLIPS / 5);
  CHECKF(bad_src == 0, "%d clips with odd sizes, other aspects or wrong durations", bad_src);
  CHECKF(bad_static == 0, "%d static clips whose scene claims no motion", bad_static);
  CHECKF(bad_cut == 0, "%d shot cuts that are not a change of scene half-way", bad_cut);
  CHECK(wrong > 0);
  free_lines(jl, nj);
  free_lines(csv, nc);
  free_truth(&t);

  /* same seed, same files */
  run_synth("again", "--seed 11");
  char **a, **b;
  int na = read_lines("default", "truth.jsonl", &a), nb = read_lines("again", "truth.jsonl", &b);
  int same = na == nb;
  for (int i = 0; same && i < na; i++) same = strcmp(a[i], b[i]) == 0;
  CHECKF(same, "same seed, different truth");
  free_lines(a, na);
  free_lines(b, nb);
}

static void check_options(void) {
  /* rates as options */
  if (run_synth("rates", "--seed 12 --rate-static 0 --rate-flicker 0.3 --rate-watermark 0.5 "
                         "--rate-low-quality 0.2 --rate-wrong-caption 0.1 --rate-shot-cut 0.15 "
                         "--rate-broken 0.25") == 0) {
    truth_set t = load_truth("rates");
    const double r[F_COUNT] = {0, 0.3, 0.5, 0.2, 0.1, 0.15, 0.25};
    check_rates(&t, r, "option rates");
    free_truth(&t);
  }
  if (run_synth("clean", "--seed 13 --clean") == 0) {
    truth_set t = load_truth("clean");
    int dirty = 0;
    for (int i = 0; i < t.n; i++) {
      int clean = 0;
      if (t.v[i]) json_get_bool(t.v[i], "clean", &clean);
      dirty += !clean || json_get(t.v[i], "flaws")->count != 0;
    }
    CHECKF(dirty == 0, "--clean: %d clips with flaws", dirty);
    free_truth(&t);
  }
  /* a custom exclusion list, and none */
  char path[1024];
  snprintf(path, sizeof path, "%s/excl.txt", g_dir);
  const char *rules = "# test list\nred\nsquare\n";
  CHECK(fs_write_atomic(path, rules, strlen(rules)) == TB_OK);
  char extra[1200];
  snprintf(extra, sizeof extra, "--seed 14 --exclude %s", path);
  if (run_synth("custom", extra) == 0) {
    truth_set t = load_truth("custom");
    CHECKF(count_scenes(&t, has_red_or_square) == 0, "custom exclusions violated");
    int h = count_scenes(&t, held_out);
    printf("custom list: %d scenes with a default held-out composition (allowed now)\n", h);
    CHECK(h > 0);
    free_truth(&t);
  }
  if (run_synth("none", "--seed 14 --exclude none") == 0) {
    truth_set t = load_truth("none");
    CHECK(count_scenes(&t, held_out) > 0 && count_scenes(&t, has_red_or_square) > 0);
    free_truth(&t);
  }
  /* bad options fail with exit status 2 */
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "%s/synth --plan-only --rate-static 1.5 --out %s/bad > /dev/null 2>&1", g_bin, g_dir);
  int rc = system(cmd);
  CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "--rate-static 1.5 accepted");
  snprintf(cmd, sizeof cmd, "%s/synth --plan-only --exclude %s/missing.txt --out %s/bad > /dev/null 2>&1",
           g_bin, g_dir, g_dir);
  rc = system(cmd);
  CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "missing exclusion file accepted");
}

int main(void) {
  test_begin("test_synth_truth");
  g_bin = getenv("BIN") ? getenv("BIN") : "bin";
  g_dir = test_outdir();
  check_default_corpus();
  check_options();
  return test_finish();
}

/* stages/synth/plan.c — what each clip will be: source format, scene, flaws with their
 * parameters, captions; and the text lines of the manifest and truth files.
 *
 * Every random choice comes from a stream seeded by (seed, clip index, stream), so a clip does
 * not depend on the worker count, on the other clips, or (its scene and captions) on the flaw
 * rates. Only the wrong-caption partner depends on the corpus size. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "stages/synth/synth.h"

const char *const FLAW_NAMES[FLAW_COUNT] = {"static",        "flicker",  "watermark", "low_quality",
                                            "wrong_caption", "shot_cut", "broken"};
const char *const FLAW_OPTIONS[FLAW_COUNT] = {"rate-static",        "rate-flicker",
                                              "rate-watermark",     "rate-low-quality",
                                              "rate-wrong-caption", "rate-shot-cut",
                                              "rate-broken"};
const double FLAW_DEFAULT_RATES[FLAW_COUNT] = {0.08, 0.06, 0.08, 0.06, 0.05, 0.04, 0.01};
const synth_aspect SYNTH_ASPECTS[3] = {{1, 1, "1:1"}, {4, 3, "4:3"}, {16, 9, "16:9"}};

static const int SOURCE_FPS[4] = {8, 12, 24, 30};
/* Flaw parameters come from streams of their own (after the scene library's streams). */
#define STREAM_FLAW_PARAMS_BASE 100

static double range(scene_rng *r, double lo, double hi) { return lo + (hi - lo) * scene_rng_uniform(r); }

static void plan_source(const synth_cfg *cfg, int index, clip_plan *p) {
  scene_rng r;
  scene_rng_seed(&r, cfg->seed, (uint64_t)index, SCENE_STREAM_SOURCE);
  /* draw everything even when overridden, so overriding one field leaves the others alone */
  int fps = SOURCE_FPS[scene_rng_int(&r, 4)];
  int aspect = scene_rng_int(&r, 3);
  int max_half = cfg->quick ? 48 : 80; /* widths 48..96 or 48..160, even */
  int width = 2 * (24 + scene_rng_int(&r, max_half - 24 + 1));
  /* quick clips are 2-3 s: long enough for the curated 16 frames at 8 fps */
  double secs = cfg->quick ? range(&r, 2.0, 3.0) : range(&r, 1.0, 4.0);
  if (cfg->fps > 0) fps = cfg->fps;
  if (cfg->aspect >= 0) aspect = cfg->aspect;
  if (cfg->width > 0) width = cfg->width & ~1;
  if (cfg->seconds > 0) secs = cfg->seconds;
  const synth_aspect *a = &SYNTH_ASPECTS[aspect];
  int height = 2 * (int)lround((double)width * a->den / a->num / 2.0);
  int frames = (int)lround(secs * fps);
  if (frames < 2) frames = 2;
  p->width = width;
  p->height = height;
  p->fps = fps;
  p->frames = frames;
  p->duration = (double)frames / fps;
}

/* Gives object 0 a motion the exclusions allow (a static flaw needs a caption that claims one). */
static void force_motion(const synth_cfg *cfg, scene_rng *r, scene *s) {
  scene_object *o = &s->obj[0];
  int start = scene_rng_int(r, 4);
  scene_speed speed = (scene_speed)scene_rng_int(r, SCENE_SPEED_COUNT);
  for (int k = 0; k < 4; k++) {
    scene_object t = *o;
    t.motion = (scene_motion)(SCENE_MOTION_LEFT + (start + k) % 4);
    t.speed = speed;
    if (!scene_object_is_excluded(&t, s->bg, cfg->excl)) {
      *o = t;
      return;
    }
  }
  s->pan = scene_rng_uniform(r) < 0.5 ? SCENE_PAN_LEFT : SCENE_PAN_RIGHT; /* all 4 excluded */
}

int synth_plan_clip(const synth_cfg *cfg, int index, clip_plan *p) {
  memset(p, 0, sizeof *p);
  p->index = index;
  p->caption_from = -1;
  plan_source(cfg, index, p);

  scene_rng r;
  scene_rng_seed(&r, cfg->seed, (uint64_t)index, SCENE_STREAM_SCENE);
  if (scene_sample(&r, p->width, p->height, p->fps, cfg->excl, &p->sc) != TB_OK)
    return err_wrap("clip %d: ", index);

  /* one draw per flaw, always, so that each flaw's rate leaves the others' draws unchanged */
  scene_rng_seed(&r, cfg->seed, (uint64_t)index, SCENE_STREAM_FLAWS);
  for (int k = 0; k < FLAW_COUNT; k++)
    if (scene_rng_uniform(&r) < cfg->rates[k]) p->flaws |= 1u << k;
  if (cfg->clips < 2) p->flaws &= ~(1u << FLAW_WRONG_CAPTION);

  scene_rng fr[FLAW_COUNT];
  for (int k = 0; k < FLAW_COUNT; k++)
    scene_rng_seed(&fr[k], cfg->seed, (uint64_t)index, STREAM_FLAW_PARAMS_BASE + (uint64_t)k);

  if ((p->flaws & (1u << FLAW_STATIC)) && !scene_has_motion(&p->sc)) {
    force_motion(cfg, &fr[FLAW_STATIC], &p->sc);
    p->static_forced = 1;
  }
  if (p->flaws & (1u << FLAW_FLICKER)) {
    p->gains = xmalloc(sizeof(float) * (size_t)p->frames);
    for (int f = 0; f < p->frames; f++) {
      double g = 1.0 + FLICKER_AMPLITUDE * (2.0 * scene_rng_uniform(&fr[FLAW_FLICKER]) - 1.0);
      p->gains[f] = (float)(round(g * 1e4) / 1e4);
    }
  }
  if (p->flaws & (1u << FLAW_WATERMARK)) {
    scene_rng *w = &fr[FLAW_WATERMARK];
    p->wm.corner = (wm_corner)scene_rng_int(w, 4);
    p->wm.w = (int)lround(range(w, 0.30, 0.42) * p->width);
    p->wm.h = (int)lround(range(w, 0.12, 0.18) * p->height);
    if (p->wm.h < 7) p->wm.h = 7;
    p->wm.alpha = round(range(w, 0.35, 0.55) * 1000) / 1000;
    p->wm.glyphs = 3 + scene_rng_int(w, 3);
    p->wm.glyph_seed = scene_rng_u64(w);
    {
      /* Fewer glyphs on a small block, so that every watermark carries text-like strokes (the
       * renderer's cells need 2 strokes and a gap: 2*th + 1 + pad pixels; see render.c). */
      int pad = p->wm.h / 5 > 1 ? p->wm.h / 5 : 1, th = p->wm.h / 8 > 1 ? p->wm.h / 8 : 1;
      int fit = (p->wm.w - pad) / (2 * th + 1 + pad);
      if (fit < 1) fit = 1;
      if (p->wm.glyphs > fit) p->wm.glyphs = fit;
    }
    int margin = (int)lround(0.03 * p->width);
    int right = p->wm.corner == WM_TOP_RIGHT || p->wm.corner == WM_BOTTOM_RIGHT;
    int bottom = p->wm.corner == WM_BOTTOM_LEFT || p->wm.corner == WM_BOTTOM_RIGHT;
    p->wm.x = right ? p->width - margin - p->wm.w : margin;
    p->wm.y = bottom ? p->height - margin - p->wm.h : margin;
  }
  if (p->flaws & (1u << FLAW_LOW_QUALITY)) {
    scene_rng *q = &fr[FLAW_LOW_QUALITY];
    p->lowq_blur = scene_rng_int(q, 2);
    double sigma = p->lowq_blur ? range(q, 0.025, 0.045) * p->width : range(q, 18.0, 32.0);
    p->lowq_sigma = round(sigma * 1000) / 1000;
  }
  if (p->flaws & (1u << FLAW_SHOT_CUT)) {
    scene_rng c;
    scene_rng_seed(&c, cfg->seed, (uint64_t)index, SCENE_STREAM_CUT);
    p->cut_frame = p->frames / 2;
    int tries = 0;
    do {
      if (scene_sample(&c, p->width, p->height, p->fps, cfg->excl, &p->cut) != TB_OK)
        return err_wrap("clip %d shot cut: ", index);
    } while (++tries < 100 &&
             (p->cut.bg == p->sc.bg || p->cut.obj[0].colour == p->sc.obj[0].colour));
  }
  if (p->flaws & (1u << FLAW_BROKEN)) {
    scene_rng *b = &fr[FLAW_BROKEN];
    p->broken_corrupt = scene_rng_int(b, 2);
    p->broken_fraction = round(range(b, 0.2, 0.8) * 1000) / 1000;
  }

  scene_rng_seed(&r, cfg->seed, (uint64_t)index, SCENE_STREAM_CAPTION);
  scene_caption_long(&p->sc, &r, p->caption, sizeof p->caption);
  scene_caption_short(&p->sc, &r, p->short_caption, sizeof p->short_caption);
  return TB_OK;
}

void synth_plan_partners(const synth_cfg *cfg, clip_plan *plans, int n) {
  for (int i = 0; i < n; i++) {
    clip_plan *p = &plans[i];
    if (!(p->flaws & (1u << FLAW_WRONG_CAPTION)) || n < 2) continue;
    scene_rng r;
    scene_rng_seed(&r, cfg->seed, (uint64_t)i, STREAM_FLAW_PARAMS_BASE + FLAW_WRONG_CAPTION);
    int j = scene_rng_int(&r, n - 1);
    if (j >= i) j++;
    /* the partner's caption must say something else; walk on until one does */
    for (int k = 0; k < n && strcmp(plans[j].short_caption, p->short_caption) == 0; k++)
      j = (j + 1) % n == i ? (j + 2) % n : (j + 1) % n;
    p->caption_from = j;
  }
}

void synth_plan_free(clip_plan *p) {
  free(p->gains);
  p->gains = NULL;
}

void synth_clip_relpath(int index, char *buf, size_t n) { snprintf(buf, n, "videos/%06d.mp4", index); }

/* ---- manifest and truth lines --------------------------------------------------------------- */

static const char *manifest_caption(const clip_plan *p, const clip_plan *plans) {
  return p->caption_from >= 0 ? plans[p->caption_from].caption : p->caption;
}

static const char *manifest_short(const clip_plan *p, const clip_plan *plans) {
  return p->caption_from >= 0 ? plans[p->caption_from].short_caption : p->short_caption;
}

static void put_str(json_buf *b, const char *s) { json_buf_put_string(b, s, strlen(s)); }

static const char *const WM_CORNERS[4] = {"top-left", "top-right", "bottom-left", "bottom-right"};

void synth_truth_line(json_buf *b, const clip_plan *p, const clip_plan *plans, int64_t bytes) {
  char rel[64];
  synth_clip_relpath(p->index, rel, sizeof rel);
  json_buf_printf(b, "{\"videoid\":%d,\"path\":\"%s\",\"fps\":%d,\"width\":%d,\"height\":%d,"
                     "\"frames\":%d,\"duration\":%.6f,",
                  p->index, rel, p->fps, p->width, p->height, p->frames, p->duration);
  if (bytes >= 0) json_buf_printf(b, "\"bytes\":%lld,", (long long)bytes);
  json_buf_puts(b, "\"scene\":");
  scene_json_put(b, &p->sc);
  json_buf_puts(b, ",\"caption\":");
  put_str(b, p->caption);
  json_buf_puts(b, ",\"short_caption\":");
  put_str(b, p->short_caption);
  json_buf_puts(b, ",\"manifest_caption\":");
  put_str(b, manifest_caption(p, plans));
  json_buf_puts(b, ",\"manifest_short_caption\":");
  put_str(b, manifest_short(p, plans));
  json_buf_printf(b, ",\"clean\":%s,\"flaws\":[", p->flaws ? "false" : "true");
  int first = 1;
  for (int k = 0; k < FLAW_COUNT; k++) {
    if (!(p->flaws & (1u << k))) continue;
    json_buf_printf(b, "%s{\"type\":\"%s\"", first ? "" : ",", FLAW_NAMES[k]);
    first = 0;
    switch ((flaw_kind)k) {
    case FLAW_STATIC:
      json_buf_printf(b, ",\"forced_motion\":%s", p->static_forced ? "true" : "false");
      break;
    case FLAW_FLICKER:
      json_buf_printf(b, ",\"amplitude\":%g,\"gains\":[", FLICKER_AMPLITUDE);
      for (int f = 0; f < p->frames; f++) json_buf_printf(b, "%s%.4f", f ? "," : "", p->gains[f]);
      json_buf_puts(b, "]");
      break;
    case FLAW_WATERMARK:
      json_buf_printf(b, ",\"corner\":\"%s\",\"x\":%d,\"y\":%d,\"w\":%d,\"h\":%d,\"alpha\":%.3f,"
                         "\"glyphs\":%d",
                      WM_CORNERS[p->wm.corner], p->wm.x, p->wm.y, p->wm.w, p->wm.h, p->wm.alpha,
                      p->wm.glyphs);
      break;
    case FLAW_LOW_QUALITY:
      json_buf_printf(b, ",\"kind\":\"%s\",\"sigma\":%.3f,\"sigma_unit\":\"%s\"",
                      p->lowq_blur ? "blur" : "noise", p->lowq_sigma,
                      p->lowq_blur ? "pixels" : "levels");
      break;
    case FLAW_WRONG_CAPTION: json_buf_printf(b, ",\"from\":%d", p->caption_from); break;
    case FLAW_SHOT_CUT:
      json_buf_printf(b, ",\"frame\":%d,\"scene\":", p->cut_frame);
      scene_json_put(b, &p->cut);
      break;
    case FLAW_BROKEN:
      if (p->broken_corrupt)
        json_buf_puts(b, ",\"kind\":\"corrupt\"");
      else
        json_buf_printf(b, ",\"kind\":\"truncated\",\"keep_fraction\":%.3f", p->broken_fraction);
      break;
    default: break;
    }
    json_buf_puts(b, "}");
  }
  json_buf_puts(b, "]}");
}

void synth_manifest_jsonl_line(json_buf *b, const clip_plan *p, const clip_plan *plans) {
  char rel[64];
  synth_clip_relpath(p->index, rel, sizeof rel);
  json_buf_printf(b, "{\"path\":\"%s\",\"caption\":", rel);
  put_str(b, manifest_caption(p, plans));
  json_buf_puts(b, ",\"short_caption\":");
  put_str(b, manifest_short(p, plans));
  json_buf_printf(b, ",\"videoid\":%d,\"duration\":%.3f}", p->index, p->duration);
}

/* RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled. */
static void csv_field(json_buf *b, const char *s) {
  if (!strpbrk(s, ",\"\r\n")) {
    json_buf_puts(b, s);
    return;
  }
  json_buf_puts(b, "\"");
  for (const char *q = s; *q; q++) {
    if (*q == '"') json_buf_puts(b, "\"");
    json_buf_append(b, q, 1);
  }
  json_buf_puts(b, "\"");
}

void synth_manifest_csv_line(json_buf *b, const clip_plan *p, const clip_plan *plans) {
  char rel[64];
  synth_clip_relpath(p->index, rel, sizeof rel);
  json_buf_printf(b, "%d,%s,%.3f,synth/%03d,", p->index, rel, p->duration, p->index / 1000);
  csv_field(b, manifest_caption(p, plans));
  json_buf_puts(b, ",");
  csv_field(b, manifest_short(p, plans));
}

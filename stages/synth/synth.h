/* stages/synth/synth.h — the parts of bin/synth: planning a clip (source format, scene, flaws,
 * captions; cheap, deterministic from (seed, clip index)), rendering and encoding a planned clip,
 * and writing the manifest and truth files. Internal to this stage. */
#ifndef TURBO_SYNTH_H
#define TURBO_SYNTH_H

#include <stdint.h>
#include <stdio.h>

#include "common/json.h"
#include "common/scene.h"
#include "common/video_enc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  FLAW_STATIC = 0,   /* caption claims motion, the video shows the first frame throughout */
  FLAW_FLICKER,      /* per-frame brightness gain uniform in [0.75, 1.25] */
  FLAW_WATERMARK,    /* semi-transparent light block with dark text-like strokes in a corner */
  FLAW_LOW_QUALITY,  /* heavy Gaussian noise or heavy Gaussian blur */
  FLAW_WRONG_CAPTION,/* the manifest carries another clip's captions */
  FLAW_SHOT_CUT,     /* a different scene from frames/2 on */
  FLAW_BROKEN,       /* truncated or corrupt container: does not open */
  FLAW_COUNT
} flaw_kind;

extern const char *const FLAW_NAMES[FLAW_COUNT];    /* "static", "flicker", … (truth "type") */
extern const char *const FLAW_OPTIONS[FLAW_COUNT];  /* "rate-static", … */
extern const double FLAW_DEFAULT_RATES[FLAW_COUNT]; /* SYNTHETIC_WORLD.md defaults */

#define FLICKER_AMPLITUDE 0.25

typedef struct {
  uint64_t seed;
  int clips;
  double rates[FLAW_COUNT];
  const scene_exclusions *excl;
  int quick;            /* widths 48–96, 2–3 s */
  int fps, width;       /* overrides when > 0 */
  int aspect;           /* -1 random, else index into SYNTH_ASPECTS */
  double seconds;       /* duration override when > 0 */
  video_enc_opts enc;
} synth_cfg;

typedef struct { int num, den; const char *name; } synth_aspect;
extern const synth_aspect SYNTH_ASPECTS[3]; /* 1:1, 4:3, 16:9 */

typedef enum { WM_TOP_LEFT = 0, WM_TOP_RIGHT, WM_BOTTOM_LEFT, WM_BOTTOM_RIGHT } wm_corner;

typedef struct {
  int index;
  int width, height, fps, frames;
  double duration;         /* frames / fps seconds */
  scene sc;                /* the scene the captions describe */
  char caption[512];       /* true long caption */
  char short_caption[256]; /* true short caption */
  unsigned flaws;          /* bit (1 << flaw_kind) */
  int caption_from;        /* wrong caption: the clip whose captions the manifest carries */
  int static_forced;       /* static: motion was given to object 0 so the caption claims it */
  float *gains;            /* flicker: (frames) brightness gains, multiples of 1e-4 */
  struct {
    wm_corner corner;
    int x, y, w, h;        /* block, pixels */
    double alpha;          /* block opacity; strokes use the same */
    int glyphs;
    uint64_t glyph_seed;
  } wm;
  int lowq_blur;           /* low quality: 0 noise (sigma in levels), 1 blur (sigma in pixels) */
  double lowq_sigma;
  scene cut;               /* shot cut: scene from cut_frame on (its own time starts there) */
  int cut_frame;
  int broken_corrupt;      /* broken: 0 truncated (moov cut off), 1 corrupt (moov box destroyed) */
  double broken_fraction;  /* truncated: fraction of the bytes before the moov box kept */
} clip_plan;

/* Plans clip `index` of cfg into *p (captions are the clip's own; the wrong-caption partner is
 * chosen by synth_plan_partners). TB_ERR + err when the exclusions leave no scene. Free the
 * plan's buffers with synth_plan_free. */
int synth_plan_clip(const synth_cfg *cfg, int index, clip_plan *p);
/* Picks, for every clip with a wrong caption, another clip whose short caption differs. */
void synth_plan_partners(const synth_cfg *cfg, clip_plan *plans, int n);
void synth_plan_free(clip_plan *p);

/* Renders, encodes and (for broken clips) damages clip p into tmp_path, then renames it to
 * final_path. TB_ERR + err on failure (tmp_path removed). */
int synth_render_clip(const synth_cfg *cfg, const clip_plan *p, const char *tmp_path,
                      const char *final_path);
/* The frame pixels of clip p before encoding: rgb (H, W, 3) for frame f. `work` is scratch the
 * caller keeps between calls (initialise to NULL, free with synth_work_free). */
typedef struct synth_work synth_work;
void synth_render_frame(const synth_cfg *cfg, const clip_plan *p, int f, uint8_t *rgb,
                        synth_work **work);
void synth_work_free(synth_work *w);

/* Damages a finished MP4 file as plan p says. TB_ERR + err on I/O failure. */
int synth_break_file(const clip_plan *p, const char *path);

/* One line (no newline) of truth.jsonl / manifest.jsonl / manifest.csv for clip p; `bytes` is
 * the file size on disk or -1 when unknown. */
void synth_truth_line(json_buf *b, const clip_plan *p, const clip_plan *plans, int64_t bytes);
void synth_manifest_jsonl_line(json_buf *b, const clip_plan *p, const clip_plan *plans);
void synth_manifest_csv_line(json_buf *b, const clip_plan *p, const clip_plan *plans);
#define SYNTH_CSV_HEADER "videoid,contentUrl,duration,page_dir,name,short_caption"

/* "videos/000123.mp4" */
void synth_clip_relpath(int index, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif

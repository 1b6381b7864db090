/* stages/curate/curate.h — what the parts of bin/curate share: settings, the scan (manifest →
 * sources, clips, statistics), the dataset build (recipe → members + frame shards) and the
 * reports. main.c parses options and calls these in order.
 */
#ifndef TURBO_CURATE_CURATE_H
#define TURBO_CURATE_CURATE_H

#include <stddef.h>
#include <stdint.h>

#include "common/catalogue.h"
#include "stages/curate/manifest.h"
#include "stages/curate/recipe.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CURATE_EXIT_WORKER_DIED 3 /* exit status: a worker was killed, some files are unjudged */

/* Limits of the options (bin/curate refuses values outside them before it starts). */
#define CURATE_FPS_MIN 0.1
#define CURATE_FPS_MAX 240.0
#define CURATE_FRAMES_MAX 1024
#define CURATE_SIZE_MIN 8
#define CURATE_SIZE_MAX 1024
#define CURATE_WORKERS_MAX 64
#define CURATE_ANALYSIS_FRAMES 80 /* statistics look at up to 10 s at 8 fps of each source */
#define CURATE_WORKER_BYTES_MAX (1LL << 30) /* decoded frames one worker may hold */
#define CURATE_MIN_SOURCE 24 /* pixels, shorter side: below it a source has no detail to curate
                                (the built-in world's smallest is 48x28) */

typedef struct {
  const char *workspace;  /* folder of catalogue.db, datasets/, reports/ */
  const char *root;       /* data root: manifest paths are relative to it */
  const char *manifest;   /* CSV or JSONL */
  int workers;            /* worker processes */
  double fps;             /* target frame rate */
  int width, height;      /* target size */
  int frames;             /* target frames per clip (T) */
  int force;              /* decode again even when a source is unchanged */
  int full_check;         /* decode every packet of each file to find damage */
  int min_side;           /* sources with a shorter side below this are rejected (pixels) */
  int64_t run_id;
} curate_cfg;

/* Totals of one scan (also what the HTML report shows). */
typedef struct {
  int64_t rows, issues, sources_ok, rejected, skipped, clips, decoded_frames, output_frames;
  int64_t opened; /* files handed to the decoder */
  int workers_killed; /* workers killed from outside (their files were left for a rerun) */
  double seconds;
} curate_totals;

/* Scans the manifest: every row becomes a source (ok or rejected with a reason) and every usable
 * one a clip with statistics. Unchanged sources are skipped without decoding. `m` must already
 * be read. Returns TB_ERR only when the work could not be done at all (catalogue unavailable). */
int curate_scan(catalogue *cat, const curate_cfg *cfg, const manifest *m, curate_totals *tot);

/* Re-derives the flaw_* statistics of every clip from its stored statistics (no decoding). */
int curate_reflag(catalogue *cat, int64_t *nclips);

/* Builds dataset `name` from a recipe file: members with subsets and splits, frames in
 * safetensors shards under WORKSPACE/datasets/NAME/ (u8, (T, H, W, 3) per clip, named
 * "clip_<id>"), catalogue tensors of kind "frames". Writes the contact sheet and preview into
 * WORKSPACE/reports/. */
int curate_dataset_build(catalogue *cat, const curate_cfg *cfg, const char *recipe_path,
                         const char *name, char *name_out, size_t name_n);

/* Learned statistics a recipe's `learned` filters name (stages/curate/learned.c): for
 * text_video_score, every usable clip of the recipe's geometry is scored with the catalogue's
 * video reward model when there is one (and nothing happens when there is none). */
int curate_learned_scores(catalogue *cat, const curate_cfg *cfg, const recipe *r);

/* The one-page HTML summary WORKSPACE/reports/curate.html (and curate-run-ID.html). `m` and
 * `tot` may be NULL (report of the catalogue only). */
int curate_report_write(catalogue *cat, const curate_cfg *cfg, const manifest *m,
                        const curate_totals *tot);

/* Contact sheet (PNG) and animated preview (GIF) of a dataset's frames into WORKSPACE/reports/
 * NAME-sheet.png and NAME-preview.gif. */
int curate_dataset_visuals(catalogue *cat, const curate_cfg *cfg, const char *name);

/* The source path of a clip (heap string the caller frees), or NULL + err. */
char *curate_clip_source_path(catalogue *cat, int64_t clip_id);

#ifdef __cplusplus
}
#endif
#endif

/* stages/curate/main.c — bin/curate: videos + captions → catalogue sources, clips and
 * statistics; recipes → named datasets with frame shards; reports.
 *
 *   curate --manifest DIR/manifest.csv --root DIR --workspace WS [--workers 2]
 *   curate --workspace WS --recipe pipelines/recipes/tailored.recipe [--dataset NAME]
 *   curate --workspace WS --report
 *
 * Steps run in this order when their options are given: scan (--manifest), re-flag
 * (--reflag), dataset build (--recipe), report (always after a scan or build; --report alone
 * writes it from the catalogue). Exit status: 0 ok, 1 failure, 2 bad usage (every option is
 * checked before work starts), 3 a scan worker was killed from outside (its file is not judged:
 * rerun to finish).
 */
#include "stages/curate/curate.h"

#include "common/args.h"
#include "common/catalogue.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <libavutil/log.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROOT_FILE "curate.root" /* WORKSPACE/curate.root: the data root of the last scan */

int main(int argc, char **argv) {
  log_init("curate");
  /* libav's own messages ("moov atom not found") would interleave with the log; every problem
   * is reported through the rejection reasons instead. TURBO_LOG=debug shows them. */
  const char *lv = getenv("TURBO_LOG");
  av_log_set_level(lv && strcmp(lv, "debug") == 0 ? AV_LOG_WARNING : AV_LOG_QUIET);
  char *manifest_path = NULL, *root = NULL, *workspace = NULL, *recipe_path = NULL,
       *dataset = NULL;
  int workers = 2, size = 64, width = 0, height = 0, frames = 16, force = 0, reflag = 0,
      report = 0, no_full_check = 0, min_source = CURATE_MIN_SOURCE;
  double fps = 8.0;
  arg_opt opts[] = {
      {"manifest", ARG_STR, &manifest_path, "PATH", "CSV or JSONL manifest of videos and captions"},
      {"root", ARG_STR, &root, "DIR", "data root the manifest's paths are relative to (default: "
                                      "the manifest's folder)"},
      {"workspace", ARG_STR, &workspace, "DIR", "workspace folder (default $TURBO_WORKSPACE or runs/default)"},
      {"workers", ARG_INT, &workers, "N", "worker processes"},
      {"fps", ARG_F64, &fps, "F", "target frame rate"},
      {"size", ARG_INT, &size, "N", "target width and height"},
      {"width", ARG_INT, &width, "N", "target width (overrides --size)"},
      {"height", ARG_INT, &height, "N", "target height (overrides --size)"},
      {"frames", ARG_INT, &frames, "N", "frames per clip"},
      {"min-source", ARG_INT, &min_source, "N", "reject sources whose shorter side is below N pixels"},
      {"force", ARG_FLAG, &force, NULL, "decode every source again, even unchanged ones"},
      {"no-full-check", ARG_FLAG, &no_full_check, NULL,
       "stop decoding a file after the clip's frames (faster; damage later in the file is missed)"},
      {"reflag", ARG_FLAG, &reflag, NULL, "recompute flaw flags from stored statistics"},
      {"recipe", ARG_STR, &recipe_path, "FILE", "build a dataset from this recipe"},
      {"dataset", ARG_STR, &dataset, "NAME", "dataset name (default: the recipe's name)"},
      {"report", ARG_FLAG, &report, NULL, "write WORKSPACE/reports/curate.html"},
      {0}};
  int pos = args_parse(argc, argv, "curate [options]",
                       "Curates videos into the catalogue and builds tailored datasets.", opts);
  if (pos < 0) return 2;
  if (pos < argc) {
    log_error("unexpected argument '%s' (see --help)", argv[pos]);
    return 2;
  }
  if (!manifest_path && !recipe_path && !report && !reflag) {
    log_error("nothing to do: give --manifest, --recipe, --reflag or --report (see --help)");
    return 2;
  }
  /* Every limit before any work: a value out of range is a usage error (exit 2), never a
   * database constraint, an allocation failure or a crash recorded against a good video. */
  int tw = width > 0 ? width : size, th = height > 0 ? height : size;
  if (!isfinite(fps) || fps < CURATE_FPS_MIN || fps > CURATE_FPS_MAX) {
    log_error("--fps %g: give a frame rate from %g to %g", fps, CURATE_FPS_MIN, CURATE_FPS_MAX);
    return 2;
  }
  if (frames < 2 || frames > CURATE_FRAMES_MAX) {
    log_error("--frames %d: give 2 to %d frames per clip", frames, CURATE_FRAMES_MAX);
    return 2;
  }
  if (size < CURATE_SIZE_MIN || size > CURATE_SIZE_MAX || (width && (width < CURATE_SIZE_MIN || width > CURATE_SIZE_MAX)) ||
      (height && (height < CURATE_SIZE_MIN || height > CURATE_SIZE_MAX))) {
    log_error("--size/--width/--height: give %d to %d pixels (got %dx%d)", CURATE_SIZE_MIN,
              CURATE_SIZE_MAX, tw, th);
    return 2;
  }
  if (workers < 1 || workers > CURATE_WORKERS_MAX) {
    log_error("--workers %d: give 1 to %d", workers, CURATE_WORKERS_MAX);
    return 2;
  }
  if (min_source < 2 || min_source > CURATE_SIZE_MAX) {
    log_error("--min-source %d: give 2 to %d pixels", min_source, CURATE_SIZE_MAX);
    return 2;
  }
  {
    /* What one worker holds: the decoded frames of a clip (at least the analysis window). */
    int64_t t = frames > CURATE_ANALYSIS_FRAMES ? frames : CURATE_ANALYSIS_FRAMES;
    int64_t bytes = t * tw * th * 3;
    if (bytes > CURATE_WORKER_BYTES_MAX) {
      log_error("--frames %d at %dx%d needs %lld MiB of frames per worker, above the %lld MiB "
                "limit: fewer frames or a smaller size", frames, tw, th,
                (long long)(bytes >> 20), (long long)(CURATE_WORKER_BYTES_MAX >> 20));
      return 2;
    }
  }
  curate_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.workspace = catalogue_workspace_dir(workspace);
  cfg.workers = workers;
  cfg.fps = fps;
  cfg.width = width > 0 ? width : size;
  cfg.height = height > 0 ? height : size;
  cfg.frames = frames;
  cfg.force = force;
  cfg.full_check = !no_full_check;
  cfg.min_side = min_source;
  cfg.manifest = manifest_path;

  /* The data root: --root, else the manifest's folder, else what the last scan used. */
  char rootbuf[PATH_MAX], rootfile[PATH_MAX];
  fs_join(rootfile, sizeof rootfile, cfg.workspace, ROOT_FILE);
  if (root) {
    snprintf(rootbuf, sizeof rootbuf, "%s", root);
  } else if (manifest_path) {
    fs_dirname(rootbuf, sizeof rootbuf, manifest_path);
  } else {
    char *txt;
    size_t len;
    rootbuf[0] = 0;
    if (fs_read_all(rootfile, &txt, &len) == TB_OK) {
      snprintf(rootbuf, sizeof rootbuf, "%s", txt);
      free(txt);
    }
  }
  cfg.root = rootbuf;
  if (!fs_is_dir(cfg.root) && (manifest_path || recipe_path)) {
    log_error("data root '%s' is not a folder (give --root)", cfg.root);
    return 2;
  }

  catalogue *cat = catalogue_open_workspace(cfg.workspace, 0);
  if (!cat) {
    log_error("%s", err_get());
    return 1;
  }
  int64_t run = 0;
  if (catalogue_run_begin(cat, "curate", argc, argv, &run) != TB_OK) {
    log_error("%s", err_get());
    catalogue_close(cat);
    return 1;
  }
  cfg.run_id = run;
  int rc = TB_OK;
  manifest m;
  memset(&m, 0, sizeof m);
  curate_totals tot;
  memset(&tot, 0, sizeof tot);
  int scanned = 0;
  if (manifest_path) {
    rc = manifest_read(manifest_path, &m);
    if (rc == TB_OK) manifest_dedupe_files(&m, cfg.root);
    if (rc == TB_OK) {
      char abs[PATH_MAX];
      if (realpath(cfg.root, abs)) fs_write_atomic(rootfile, abs, strlen(abs));
      rc = curate_scan(cat, &cfg, &m, &tot);
      scanned = 1;
    }
  }
  if (rc == TB_OK && reflag) {
    int64_t n;
    rc = curate_reflag(cat, &n);
    if (rc == TB_OK) log_info("re-flagged %lld clips from stored statistics", (long long)n);
  }
  if (rc == TB_OK && recipe_path) {
    char name[128];
    rc = curate_dataset_build(cat, &cfg, recipe_path, dataset, name, sizeof name);
    if (rc == TB_OK && curate_dataset_visuals(cat, &cfg, name) != TB_OK)
      log_warn("previews of %s: %s", name, err_get());
  }
  if (rc == TB_OK && (scanned || recipe_path || report)) {
    if (curate_report_write(cat, &cfg, scanned ? &m : NULL, scanned ? &tot : NULL) != TB_OK)
      log_warn("report: %s", err_get());
  }
  if (rc != TB_OK) log_error("%s", err_get());
  catalogue_run_end(cat, run, rc == TB_OK ? CATALOGUE_RUN_OK : CATALOGUE_RUN_FAILED,
                    rc == TB_OK ? NULL : err_get());
  catalogue_close(cat);
  manifest_free(&m);
  if (rc == TB_OK && tot.workers_killed > 0) {
    log_error("%d worker(s) were killed during the scan: their files are not judged; rerun to "
              "finish", tot.workers_killed);
    return CURATE_EXIT_WORKER_DIED;
  }
  return rc == TB_OK ? 0 : 1;
}

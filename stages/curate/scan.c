/* stages/curate/scan.c — manifest rows → sources, clips and statistics, in worker processes.
 *
 * The parent reads the manifest, records rows that cannot even name a file, then forks
 * --workers processes. Worker k takes rows k, k+N, k+2N, …; each opens its own catalogue handle
 * (handles never cross fork) and commits one transaction per source, so a crash loses at most
 * the row in progress. Counters live in a shared anonymous mapping; the parent turns them into
 * the progress display. When a worker dies on a signal (a decoder crash on hostile input), the
 * parent records that row as rejected and starts a new worker for the rest of its rows.
 */
#include "stages/curate/curate.h"

#include "common/fsutil.h"
#include "common/log.h"
#include "common/tensor.h"
#include "common/video_dec.h"
#include "stages/curate/flaws.h"
#include "stages/curate/stats.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SCAN_MAX_WORKERS 64
#define ANALYSIS_FRAMES CURATE_ANALYSIS_FRAMES /* flaws outside the clip's window (a cut
                                                 half-way through) are seen too */
#define MANIFEST_ISSUES_LOGGED 20 /* more would drown the log: the report lists them all */
#define ANALYSIS_SHORT 160 /* pixels: statistics see every source with its shorter side resized
                            to this (smaller sources as they are), so a verdict does not depend
                            on the resolution and a 4K clip costs what a 160p one does; 160 is
                            the largest the built-in world renders (48-160 px) */
#define CHECKSUM_WHOLE_MAX (256LL << 20) /* bytes: larger files hash head + tail + size */

typedef struct {
  atomic_llong done, skipped, rejected, clips, decoded, output, opened;
  atomic_int current[SCAN_MAX_WORKERS]; /* row index in progress, -1 idle */
} scan_shared;

/* Hex checksum of a file's bytes (checksum64). */
static int file_checksum(const char *path, int64_t size, char out[17]) {
  FILE *f = fopen(path, "rb");
  if (!f) return err_set("cannot open: %s", strerror(errno));
  uint64_t h;
  if (size <= CHECKSUM_WHOLE_MAX) {
    uint8_t *buf = xmalloc(size > 0 ? (size_t)size : 1);
    size_t n = fread(buf, 1, (size_t)size, f);
    h = checksum64(buf, n);
    free(buf);
  } else {
    size_t part = 64u << 20;
    uint8_t *buf = xmalloc(part);
    size_t n = fread(buf, 1, part, f);
    uint64_t a = checksum64(buf, n);
    fseeko(f, size - (off_t)part, SEEK_SET);
    n = fread(buf, 1, part, f);
    uint64_t b = checksum64(buf, n);
    free(buf);
    uint64_t parts[3] = {a, b, (uint64_t)size};
    h = checksum64(parts, sizeof parts);
  }
  fclose(f);
  snprintf(out, 17, "%016llx", (unsigned long long)h);
  return TB_OK;
}

/* Records `path` as rejected with `reason` (creating the source row when needed). */
static int record_reject(catalogue *cat, const catalogue_source *src, const char *reason) {
  int64_t id;
  int changed;
  if (catalogue_begin(cat) != TB_OK) return TB_ERR;
  if (catalogue_source_upsert(cat, src, &id, &changed) != TB_OK ||
      (changed && catalogue_source_clips_delete(cat, id, NULL) != TB_OK) ||
      catalogue_source_reject(cat, id, reason) != TB_OK) {
    catalogue_rollback(cat);
    return TB_ERR;
  }
  return catalogue_commit(cat);
}

/* 1 when the stored source has a clip of this geometry. */
static int has_clip(catalogue *cat, int64_t source_id, const curate_cfg *cfg) {
  int64_t *ids = NULL, n = 0;
  int found = 0;
  if (catalogue_source_clips(cat, source_id, &ids, &n) != TB_OK) return 0;
  for (int64_t i = 0; i < n && !found; i++) {
    catalogue_clip c;
    if (catalogue_clip_get(cat, ids[i], &c) == 1) {
      found = c.width == cfg->width && c.height == cfg->height && c.fps == cfg->fps;
      if (found) {
        double fr;
        /* Only a clip that was curated for this many frames counts. */
        if (catalogue_stat_get(cat, ids[i], "target_frames", &fr) != 1 || fr != cfg->frames)
          found = 0;
      }
      catalogue_clip_clear(&c);
    }
  }
  free(ids);
  return found;
}

/* Caption statistics again for every clip of a source whose caption changed. */
static int update_caption(catalogue *cat, int64_t source_id, const char *caption) {
  int64_t *ids = NULL, n = 0;
  if (catalogue_source_clips(cat, source_id, &ids, &n) != TB_OK) return TB_ERR;
  clip_stats cs;
  memset(&cs, 0, sizeof cs);
  clip_stats_caption(caption, &cs);
  int rc = TB_OK;
  for (int64_t i = 0; i < n && rc == TB_OK; i++) {
    clip_stats all;
    memset(&all, 0, sizeof all);
    const char *names[] = {"motion_extent", "static_score", "static_score_full", "flow_mean", "flicker", "watermark",
                           "noise", "edge_width", "cut_hist", "cut_block"};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
      double v;
      if (catalogue_stat_get(cat, ids[i], names[k], &v) == 1) clip_stats_set(&all, names[k], v);
    }
    for (int k = 0; k < cs.n; k++) clip_stats_set(&all, cs.name[k], cs.value[k]);
    flaws_detect(&all);
    const char *nm[CLIP_STATS_MAX];
    for (int k = 0; k < all.n; k++) nm[k] = all.name[k];
    rc = catalogue_stats_set(cat, ids[i], all.n, nm, all.value);
  }
  free(ids);
  return rc;
}

/* One manifest row, start to end. Returns TB_ERR only for catalogue failures. */
static int scan_row(catalogue *cat, const curate_cfg *cfg, const manifest_row *row,
                    scan_shared *sh) {
  char full[4096];
  catalogue_source src;
  memset(&src, 0, sizeof src);
  src.path = row->path;
  src.caption_long = row->caption;
  src.caption_short = row->short_caption;
  char where[64];
  snprintf(where, sizeof where, "manifest line %d", row->line);
  src.manifest_line = where;
  char reason[768];

  if (fs_path_inside(cfg->root, row->path, full, sizeof full) != TB_OK) {
    snprintf(reason, sizeof reason, "bad path (line %d): %s", row->line, err_get());
    atomic_fetch_add(&sh->rejected, 1);
    return record_reject(cat, &src, reason);
  }
  struct stat st;
  if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(reason, sizeof reason, "unreadable: %s", stat(full, &st) != 0 ? strerror(errno) : "not a regular file");
    atomic_fetch_add(&sh->rejected, 1);
    return record_reject(cat, &src, reason);
  }
  char sum[17];
  if (file_checksum(full, st.st_size, sum) != TB_OK) {
    snprintf(reason, sizeof reason, "unreadable: %s", err_get());
    atomic_fetch_add(&sh->rejected, 1);
    return record_reject(cat, &src, reason);
  }
  src.size = st.st_size;
  src.mtime = st.st_mtime;
  src.checksum = sum;

  /* Unchanged since the last run: nothing to decode. */
  if (!cfg->force) {
    catalogue_source old;
    int f = catalogue_source_lookup(cat, row->path, &old);
    if (f == TB_ERR) return TB_ERR;
    if (f == 1) {
      int same = old.size == src.size && old.mtime == src.mtime && old.checksum &&
                 strcmp(old.checksum, sum) == 0;
      int skip = same && (old.status == CATALOGUE_SOURCE_REJECTED || has_clip(cat, old.id, cfg));
      int cap_changed = skip && old.status == CATALOGUE_SOURCE_OK &&
                        strcmp(old.caption_long ? old.caption_long : "", row->caption) != 0;
      int64_t oid = old.id;
      catalogue_source_clear(&old);
      if (skip) {
        if (cap_changed) {
          /* Only the caption moved: keep the pixels' statistics, redo the caption's. */
          catalogue_source s2;
          if (catalogue_source_lookup(cat, row->path, &s2) == 1) {
            catalogue_source up = s2;
            up.caption_long = row->caption;
            int64_t id;
            int ch;
            int rc = catalogue_begin(cat);
            if (rc == TB_OK) rc = catalogue_source_upsert(cat, &up, &id, &ch);
            if (rc == TB_OK) rc = update_caption(cat, oid, row->caption);
            if (rc == TB_OK) rc = catalogue_commit(cat);
            else catalogue_rollback(cat);
            catalogue_source_clear(&s2);
            if (rc != TB_OK) return TB_ERR;
          }
        }
        atomic_fetch_add(&sh->skipped, 1);
        return TB_OK;
      }
    }
  }

  video_dec_opts o = video_dec_opts_default();
  o.fps = cfg->fps;
  o.width = cfg->width;
  o.height = cfg->height;
  o.max_frames = cfg->frames > ANALYSIS_FRAMES ? cfg->frames : ANALYSIS_FRAMES;
  o.keep_luma = 1;
  o.analysis_short = ANALYSIS_SHORT;
  o.min_side = cfg->min_side;
  o.full_check = cfg->full_check;
  video_frames fr;
  atomic_fetch_add(&sh->opened, 1);
  int drc = video_decode_rgb(full, &o, &fr);
  if (drc != TB_OK) {
    snprintf(reason, sizeof reason, "%s: %s", drc == VIDEO_DEC_TOO_SMALL ? "too small" : "undecodable", err_get());
    atomic_fetch_add(&sh->rejected, 1);
    return record_reject(cat, &src, reason);
  }
  atomic_fetch_add(&sh->decoded, fr.decoded);
  atomic_fetch_add(&sh->output, fr.n);
  src.container = fr.info.format;
  src.codec = fr.info.codec;
  src.width = fr.info.display_w; /* as shown: the display matrix applied */
  src.height = fr.info.display_h;
  src.fps = fr.info.fps;
  src.frames = fr.info.nb_frames;
  src.duration = fr.info.duration;

  reason[0] = 0;
  int clip_frames = fr.n < cfg->frames ? fr.n : cfg->frames;
  if (fr.truncated && fr.info.index_truncated)
    snprintf(reason, sizeof reason, "truncated file: the index points %lld bytes past its end (%lld bytes)",
             (long long)(fr.info.index_end - fr.info.file_size), (long long)fr.info.file_size);
  else if (fr.truncated)
    snprintf(reason, sizeof reason, "damaged container: reading stopped on an error after %lld frames",
             (long long)fr.decoded);
  else if (fr.decode_errors > 0)
    snprintf(reason, sizeof reason, "damaged stream: %d undecodable packets or corrupt frames",
             fr.decode_errors);
  else if (fr.n < cfg->frames)
    snprintf(reason, sizeof reason, "too short: %.2f s gives %d of %d frames at %g fps",
             fr.info.duration, fr.n, cfg->frames, cfg->fps);

  /* Statistics before taking the write lock: other workers keep committing meanwhile. */
  clip_stats cs;
  memset(&cs, 0, sizeof cs);
  if (fr.n >= 2) {
    clip_stats_video(&fr, &cs);
    clip_stats_set(&cs, "analysis_frames", fr.n);
    clip_stats_set(&cs, "frames", clip_frames);
    clip_stats_caption(row->caption, &cs);
    if (row->short_caption) {
      clip_stats sc;
      memset(&sc, 0, sizeof sc);
      clip_stats_caption(row->short_caption, &sc);
      clip_stats_set(&cs, "caption_short_words", clip_stats_get(&sc, "caption_words", 0));
    }
    flaws_detect(&cs);
    clip_stats_set(&cs, "analysis_width", fr.lw);
    clip_stats_set(&cs, "analysis_height", fr.lh);
    clip_stats_set(&cs, "src_rotation", fr.info.rotation);
    clip_stats_set(&cs, "src_width", fr.info.width);
    clip_stats_set(&cs, "src_height", fr.info.height);
    clip_stats_set(&cs, "src_fps", fr.info.fps);
    clip_stats_set(&cs, "src_duration", fr.info.duration);
    clip_stats_set(&cs, "decode_errors", fr.decode_errors);
    clip_stats_set(&cs, "target_frames", cfg->frames);
    clip_stats_set(&cs, "target_width", cfg->width);
    clip_stats_set(&cs, "target_height", cfg->height);
    clip_stats_set(&cs, "target_fps", cfg->fps);
    clip_stats_set(&cs, "usable", reason[0] ? 0 : 1);
  }
  int rc = catalogue_begin(cat);
  int64_t sid = 0, cid = 0;
  int changed = 0;
  if (rc == TB_OK) rc = catalogue_source_upsert(cat, &src, &sid, &changed);
  if (rc == TB_OK && changed) rc = catalogue_source_clips_delete(cat, sid, NULL);
  if (rc == TB_OK && fr.n >= 2) {
    /* Statistics are kept for short and damaged clips too (the report and the checker use
     * them); `usable` says whether a dataset may take the clip. */
    catalogue_clip c;
    memset(&c, 0, sizeof c);
    c.source_id = sid;
    c.start = 0;
    c.end = clip_frames / cfg->fps;
    c.fps = cfg->fps;
    c.width = cfg->width;
    c.height = cfg->height;
    c.frames = clip_frames;
    rc = catalogue_clip_insert(cat, &c, &cid);
    if (rc == TB_OK) {
      const char *nm[CLIP_STATS_MAX];
      for (int k = 0; k < cs.n; k++) nm[k] = cs.name[k];
      rc = catalogue_stats_set(cat, cid, cs.n, nm, cs.value);
    }
  }
  if (rc == TB_OK && reason[0]) rc = catalogue_source_reject(cat, sid, reason);
  if (rc == TB_OK) rc = catalogue_commit(cat);
  else catalogue_rollback(cat);
  if (rc == TB_OK) {
    if (reason[0]) atomic_fetch_add(&sh->rejected, 1);
    if (cid > 0) atomic_fetch_add(&sh->clips, 1);
  }
  video_frames_free(&fr);
  return rc;
}

static void worker_main(const curate_cfg *cfg, const manifest *m, int k, int nworkers,
                        int start_row, scan_shared *sh) {
  catalogue *cat = catalogue_open_workspace(cfg->workspace, 0);
  if (!cat) {
    log_error("worker %d: %s", k, err_get());
    _exit(3);
  }
  int failures = 0;
  /* Tests make a worker die on a named row: TURBO_CURATE_TEST_SIGNAL="SIG:PATH" (SIG a
   * number) raises SIG in the worker when it reaches PATH. */
  const char *hook = getenv("TURBO_CURATE_TEST_SIGNAL");
  int hook_sig = hook ? atoi(hook) : 0;
  const char *hook_path = hook && strchr(hook, ':') ? strchr(hook, ':') + 1 : NULL;
  for (int i = start_row; i < m->n; i += nworkers) {
    atomic_store(&sh->current[k], i);
    if (hook_sig > 0 && hook_path && strcmp(hook_path, m->rows[i].path) == 0) raise(hook_sig);
    if (scan_row(cat, cfg, &m->rows[i], sh) != TB_OK) {
      log_error("line %d (%s): catalogue: %s", m->rows[i].line, m->rows[i].path, err_get());
      failures++;
    }
    atomic_fetch_add(&sh->done, 1);
  }
  atomic_store(&sh->current[k], -1);
  catalogue_close(cat);
  _exit(failures ? 4 : 0);
}

static pid_t spawn_worker(const curate_cfg *cfg, const manifest *m, int k, int n, int start,
                          scan_shared *sh) {
  fflush(NULL);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    /* A worker ends with its parent (kill -9 of the run must not leave workers decoding beside
     * the next run); the getppid check closes the window before prctl took effect. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(5);
    log_init("curate");
    worker_main(cfg, m, k, n, start, sh);
  }
  return pid;
}

int curate_scan(catalogue *cat, const curate_cfg *cfg, const manifest *m, curate_totals *tot) {
  memset(tot, 0, sizeof *tot);
  double t0 = time_now();
  tot->rows = m->n;
  tot->issues = m->nissues;
  /* Rows the manifest reader refused are problems of the manifest's lines, never verdicts on
   * the files they name: another line may name the same file correctly, and a source row made
   * from a broken line (no checksum) would count as changed on every rerun, deleting the clips
   * of a good file. They are logged (the first MANIFEST_ISSUES_LOGGED, then a count) and listed
   * by line in the report. */
  for (int i = 0; i < m->nissues && i < MANIFEST_ISSUES_LOGGED; i++) log_warn("manifest: %s", m->issues[i].reason);
  if (m->nissues > MANIFEST_ISSUES_LOGGED)
    log_warn("manifest: %d more problems (every one is listed in the report)",
             m->nissues - MANIFEST_ISSUES_LOGGED);
  int nw = cfg->workers < 1 ? 1 : (cfg->workers > SCAN_MAX_WORKERS ? SCAN_MAX_WORKERS : cfg->workers);
  if (nw > m->n) nw = m->n > 0 ? m->n : 1;
  scan_shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED) return err_set("mmap: %s", strerror(errno));
  memset(sh, 0, sizeof *sh);
  for (int k = 0; k < SCAN_MAX_WORKERS; k++) atomic_store(&sh->current[k], -1);
  pid_t pids[SCAN_MAX_WORKERS];
  int live = 0, failed_workers = 0, killed_workers = 0;
  for (int k = 0; k < nw && m->n > 0; k++) {
    pids[k] = spawn_worker(cfg, m, k, nw, k, sh);
    if (pids[k] < 0) {
      munmap(sh, sizeof *sh);
      return err_set("fork: %s", strerror(errno));
    }
    live++;
  }
  log_info("scanning %d manifest rows with %d worker%s", m->n, nw, nw == 1 ? "" : "s");
  progress *pg = progress_new("curate", m->n, "videos");
  long long shown = 0;
  while (live > 0) {
    int status;
    pid_t p = waitpid(-1, &status, WNOHANG);
    if (p == 0) {
      long long d = atomic_load(&sh->done);
      if (d > shown) {
        progress_add(pg, d - shown);
        shown = d;
      }
      struct timespec ts = {0, 100 * 1000 * 1000};
      nanosleep(&ts, NULL);
      continue;
    }
    if (p < 0) {
      if (errno == EINTR) continue;
      break;
    }
    int k = -1;
    for (int j = 0; j < nw; j++)
      if (pids[j] == p) k = j;
    if (k < 0) continue;
    live--;
    pids[k] = -1;
    if (WIFSIGNALED(status)) {
      int row = atomic_load(&sh->current[k]);
      int sig = WTERMSIG(status);
      /* A fault (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) on a file is the file's doing: a
       * decoder crash. A kill from outside (SIGKILL from the OOM killer or a user, SIGTERM,
       * SIGINT) says nothing about the file: it stays unrecorded for the next run, and the run
       * fails with CURATE_EXIT_WORKER_DIED. */
      int fault = sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGABRT;
      if (row >= 0 && !fault) {
        killed_workers++;
        log_error("worker %d was killed (signal %d: %s) while on %s; the file is not judged, "
                  "rerun to finish", k, sig, strsignal(sig), m->rows[row].path);
        atomic_fetch_add(&sh->done, 1);
      }
      if (row >= 0 && fault) {
        const manifest_row *r = &m->rows[row];
        char reason[256];
        snprintf(reason, sizeof reason, "decoder crashed (signal %d: %s) on this file", sig, strsignal(sig));
        log_warn("%s: %s", r->path, reason);
        catalogue_source s;
        memset(&s, 0, sizeof s);
        s.path = r->path;
        s.caption_long = r->caption;
        record_reject(cat, &s, reason);
        atomic_fetch_add(&sh->rejected, 1);
        atomic_fetch_add(&sh->done, 1);
      }
      if (row >= 0) {
        if (row + nw < m->n) {
          pids[k] = spawn_worker(cfg, m, k, nw, row + nw, sh);
          if (pids[k] > 0) live++;
        }
      }
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
      failed_workers++;
      log_error("worker %d exited with status %d", k, WEXITSTATUS(status));
    }
  }
  long long d = atomic_load(&sh->done);
  if (d > shown) progress_add(pg, d - shown);
  progress_free(pg);
  tot->skipped = atomic_load(&sh->skipped);
  tot->rejected = atomic_load(&sh->rejected); /* files; manifest problems are tot->issues */
  tot->clips = atomic_load(&sh->clips);
  tot->decoded_frames = atomic_load(&sh->decoded);
  tot->output_frames = atomic_load(&sh->output);
  tot->sources_ok = m->n - atomic_load(&sh->rejected);
  tot->seconds = time_now() - t0;
  tot->opened = atomic_load(&sh->opened);
  munmap(sh, sizeof *sh);
  long long decoded_rows = tot->opened;
  log_info("scan: %lld rows, %lld skipped (unchanged, not decoded), %lld decoded, %lld clips "
           "written, %lld files rejected, %lld manifest problems; %.1f s, %.1f clips/s, %.0f "
           "decoded frames/s",
           (long long)m->n, (long long)tot->skipped, decoded_rows, (long long)tot->clips,
           (long long)tot->rejected, (long long)m->nissues, tot->seconds,
           tot->seconds > 0 ? decoded_rows / tot->seconds : 0.0,
           tot->seconds > 0 ? tot->decoded_frames / tot->seconds : 0.0);
  tot->workers_killed = killed_workers;
  if (failed_workers) return err_set("%d worker(s) failed (see the log); rerun to finish", failed_workers);
  return TB_OK;
}

int curate_reflag(catalogue *cat, int64_t *nclips) {
  int64_t *ids = NULL, n = 0;
  double *vals = NULL;
  *nclips = 0;
  if (catalogue_stat_all(cat, "usable", &ids, &vals, &n) != TB_OK) return TB_ERR;
  const char *names[] = {"caption_motion", "caption_pan_follow", "motion_extent", "static_score", "static_score_full",
                         "flow_mean", "flicker", "watermark", "noise", "edge_width", "cut_hist",
                         "cut_block"};
  int rc = catalogue_begin(cat);
  for (int64_t i = 0; i < n && rc == TB_OK; i++) {
    clip_stats cs;
    memset(&cs, 0, sizeof cs);
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
      double v;
      if (catalogue_stat_get(cat, ids[i], names[k], &v) == 1) clip_stats_set(&cs, names[k], v);
    }
    flaws_detect(&cs);
    const char *nm[8];
    double v[8];
    int c = 0;
    for (int k = 0; k < cs.n; k++)
      if (strncmp(cs.name[k], "flaw_", 5) == 0) {
        nm[c] = cs.name[k];
        v[c++] = cs.value[k];
      }
    rc = catalogue_stats_set(cat, ids[i], c, nm, v);
  }
  if (rc == TB_OK) rc = catalogue_commit(cat);
  else catalogue_rollback(cat);
  free(ids);
  free(vals);
  *nclips = n;
  return rc;
}

char *curate_clip_source_path(catalogue *cat, int64_t clip_id);

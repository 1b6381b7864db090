/* bin/synth — writes the built-in world's raw corpus (SYNTHETIC_WORLD.md): H.264/MP4 clips
 * with captions and flaws, a manifest (CSV and JSONL) and the ground-truth sidecar.
 *
 *   bin/synth [--out DIR] [--clips N] [--seed S] [--workers N] [--rate-static P …] [--clean]
 *
 * Output (paths in the manifests are relative to DIR):
 *   DIR/videos/NNNNNN.mp4   one file per clip (NNNNNN = videoid, from 000000)
 *   DIR/manifest.csv        videoid,contentUrl,duration,page_dir,name,short_caption
 *   DIR/manifest.jsonl      {"path","caption","short_caption","videoid","duration"}
 *   DIR/truth.jsonl         one line per clip: scene, flaws, true captions (tests, evaluators)
 *   DIR/synth.json          the settings; a rerun with the same settings makes missing clips only
 *
 * Work is shared by --workers processes that take clip indices from a shared counter; every clip
 * is a function of (seed, index) alone, so the output does not depend on the worker count.
 * Exit status: 0 done, 1 failure (message on stderr), 2 bad options.
 */
#include <errno.h>
#include <libavutil/log.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/args.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "stages/synth/synth.h"

/* Bump whenever the same settings would give different files: a rerun then remakes the corpus
 * (with --force) instead of keeping clips made by the older generator. */
#define SYNTH_FORMAT_VERSION 2
#define QUICK_CLIPS 40
#define DEFAULT_CLIPS 2000

typedef struct {
  int64_t next;   /* next clip index to take */
  int failed;     /* set by a worker that failed: the others stop */
} shared_state;

static int aspect_index(const char *name) {
  for (int i = 0; i < 3; i++)
    if (strcmp(SYNTH_ASPECTS[i].name, name) == 0) return i;
  return -2;
}

/* The settings that decide the corpus's content (not how fast it is made). */
static void settings_json(json_buf *b, const synth_cfg *cfg, const char *codec) {
  json_buf_printf(b, "{\"format\":\"turbo.synth\",\"v\":%d,\"seed\":%llu,\"clips\":%d,",
                  SYNTH_FORMAT_VERSION, (unsigned long long)cfg->seed, cfg->clips);
  json_buf_puts(b, "\"rates\":{");
  for (int k = 0; k < FLAW_COUNT; k++)
    json_buf_printf(b, "%s\"%s\":%.6g", k ? "," : "", FLAW_NAMES[k], cfg->rates[k]);
  json_buf_puts(b, "},\"exclusions\":[");
  for (int i = 0; i < scene_exclusions_count(cfg->excl); i++) {
    char rule[128];
    scene_exclusions_rule_text(cfg->excl, i, rule, sizeof rule);
    if (i) json_buf_puts(b, ",");
    json_buf_put_string(b, rule, strlen(rule));
  }
  json_buf_printf(b, "],\"quick\":%s,\"fps\":%d,\"width\":%d,\"aspect\":\"%s\",\"seconds\":%g,",
                  cfg->quick ? "true" : "false", cfg->fps, cfg->width,
                  cfg->aspect >= 0 ? SYNTH_ASPECTS[cfg->aspect].name : "random", cfg->seconds);
  json_buf_printf(b, "\"codec\":\"%s\",\"crf\":%d,\"preset\":\"%s\"}\n", codec ? codec : "none",
                  cfg->enc.crf, cfg->enc.preset ? cfg->enc.preset : "");
}

static int write_text_file(const char *dir, const char *name, const json_buf *b) {
  char path[PATH_MAX];
  if (!fs_join(path, sizeof path, dir, name)) return err_set("path too long: %s/%s", dir, name);
  return fs_write_atomic(path, b->data ? b->data : "", b->len);
}

/* Renders the clips marked in todo, taking indices from st. Returns TB_OK or TB_ERR. `progress_fd`
 * gets one byte per finished clip (-1: report to prog directly). */
static int work_loop(const synth_cfg *cfg, const clip_plan *plans, const char *out,
                     const unsigned char *todo, shared_state *st, int progress_fd, progress *prog) {
  for (;;) {
    if (__atomic_load_n(&st->failed, __ATOMIC_SEQ_CST)) return TB_ERR;
    int64_t i = __atomic_fetch_add(&st->next, 1, __ATOMIC_SEQ_CST);
    if (i >= cfg->clips) return TB_OK;
    if (!todo[i]) continue;
    char rel[64], final_path[PATH_MAX], tmp[PATH_MAX + 16];
    synth_clip_relpath((int)i, rel, sizeof rel);
    if (!fs_join(final_path, sizeof final_path, out, rel)) {
      __atomic_store_n(&st->failed, 1, __ATOMIC_SEQ_CST);
      return err_set("path too long: %s/%s", out, rel);
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", final_path);
    if (synth_render_clip(cfg, &plans[i], tmp, final_path) != TB_OK) {
      __atomic_store_n(&st->failed, 1, __ATOMIC_SEQ_CST);
      return TB_ERR;
    }
    if (progress_fd >= 0) {
      char c = 1;
      while (write(progress_fd, &c, 1) < 0 && errno == EINTR) {
      }
    } else {
      progress_add(prog, 1);
    }
  }
}

/* Forks `workers` processes over the todo list; returns TB_OK when all of them succeed. */
static int run_workers(const synth_cfg *cfg, const clip_plan *plans, const char *out,
                       const unsigned char *todo, int ntodo, int workers) {
  shared_state *st = mmap(NULL, sizeof *st, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (st == MAP_FAILED) return err_set("mmap: %s", strerror(errno));
  memset(st, 0, sizeof *st);
  progress *prog = progress_new("synth", ntodo, "clips");
  int rc = TB_OK;
  if (workers <= 1) {
    rc = work_loop(cfg, plans, out, todo, st, -1, prog);
    progress_free(prog);
    munmap(st, sizeof *st);
    return rc;
  }
  int fds[2];
  if (pipe(fds) != 0) {
    progress_free(prog);
    munmap(st, sizeof *st);
    return err_set("pipe: %s", strerror(errno));
  }
  pid_t *pids = xcalloc((size_t)workers, sizeof *pids);
  int started = 0;
  fflush(NULL);
  for (int w = 0; w < workers; w++) {
    pid_t pid = fork();
    if (pid < 0) {
      rc = err_set("fork: %s", strerror(errno));
      st->failed = 1;
      break;
    }
    if (pid == 0) {
      close(fds[0]);
      int r = work_loop(cfg, plans, out, todo, st, fds[1], NULL);
      if (r != TB_OK && err_get()[0]) log_error("%s", err_get());
      close(fds[1]);
      fflush(NULL);
      _exit(r == TB_OK ? 0 : 1);
    }
    pids[started++] = pid;
  }
  close(fds[1]);
  char buf[256];
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n > 0) {
      progress_add(prog, n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  close(fds[0]);
  for (int w = 0; w < started; w++) {
    int status = 0;
    while (waitpid(pids[w], &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      if (rc == TB_OK) {
        if (WIFSIGNALED(status))
          rc = err_set("worker %d died of signal %d", (int)pids[w], WTERMSIG(status));
        else
          rc = err_set("worker %d failed (its message is above)", (int)pids[w]);
      }
    }
  }
  free(pids);
  progress_free(prog);
  munmap(st, sizeof *st);
  return rc;
}

int main(int argc, char **argv) {
  log_init("synth");
  char *out = NULL, *workspace = NULL, *exclude = NULL, *aspect = NULL, *codec = NULL;
  char *preset = "fast";
  int clips = -1, workers = (int)sysconf(_SC_NPROCESSORS_ONLN), quick = 0, clean = 0, fps = 0,
      width = 0, crf = 18, plan_only = 0, force = 0;
  long long seed = 1;
  double seconds = 0, rates[FLAW_COUNT];
  memcpy(rates, FLAW_DEFAULT_RATES, sizeof rates);
  if (workers < 1) workers = 1;
  arg_opt opts[] = {
      {"out", ARG_STR, &out, "DIR", "corpus folder (default WORKSPACE/corpus)"},
      {"workspace", ARG_STR, &workspace, "DIR", "workspace (default $TURBO_WORKSPACE or runs/default)"},
      {"clips", ARG_INT, &clips, "N", "number of clips (default 2000; 40 with --quick)"},
      {"seed", ARG_I64, &seed, "S", "random seed: same seed, same corpus"},
      {"workers", ARG_INT, &workers, "N", "worker processes"},
      {FLAW_OPTIONS[FLAW_STATIC], ARG_F64, &rates[FLAW_STATIC], "P", "static clip with a motion caption"},
      {FLAW_OPTIONS[FLAW_FLICKER], ARG_F64, &rates[FLAW_FLICKER], "P", "flicker (±25% brightness per frame)"},
      {FLAW_OPTIONS[FLAW_WATERMARK], ARG_F64, &rates[FLAW_WATERMARK], "P", "corner watermark"},
      {FLAW_OPTIONS[FLAW_LOW_QUALITY], ARG_F64, &rates[FLAW_LOW_QUALITY], "P", "heavy noise or blur"},
      {FLAW_OPTIONS[FLAW_WRONG_CAPTION], ARG_F64, &rates[FLAW_WRONG_CAPTION], "P", "another clip's caption"},
      {FLAW_OPTIONS[FLAW_SHOT_CUT], ARG_F64, &rates[FLAW_SHOT_CUT], "P", "scene change half-way"},
      {FLAW_OPTIONS[FLAW_BROKEN], ARG_F64, &rates[FLAW_BROKEN], "P", "truncated or corrupt file"},
      {"clean", ARG_FLAG, &clean, NULL, "no flaws at all (every rate 0)"},
      {"exclude", ARG_STR, &exclude, "FILE", "held-out compositions, one per line, or 'none' (default: SYNTHETIC_WORLD.md list)"},
      {"quick", ARG_FLAG, &quick, NULL, "small corpus for tests (40 clips, 48-96 px, 2-3 s)"},
      {"fps", ARG_INT, &fps, "N", "every clip at this fps (default: 8/12/24/30 at random)"},
      {"width", ARG_INT, &width, "N", "every clip this wide (even; default 48-160 at random)"},
      {"aspect", ARG_STR, &aspect, "A", "every clip 1:1, 4:3 or 16:9 (default: at random)"},
      {"seconds", ARG_F64, &seconds, "S", "every clip this long (default 1-4 s at random)"},
      {"codec", ARG_STR, &codec, "NAME", "encoder (default libx264, else another H.264, else mpeg4)"},
      {"crf", ARG_INT, &crf, "N", "x264 constant rate factor"},
      {"preset", ARG_STR, &preset, "NAME", "x264 preset"},
      {"plan-only", ARG_FLAG, &plan_only, NULL, "write manifest and truth only, no videos"},
      {"force", ARG_FLAG, &force, NULL, "overwrite a corpus made with other settings"},
      {0}};
  int pos = args_parse(argc, argv, "synth [options]",
                       "Writes the built-in world's raw corpus: videos, manifest, truth.", opts);
  if (pos < 0) return 2;
  if (pos < argc) {
    log_error("unexpected argument '%s' (see --help)", argv[pos]);
    return 2;
  }

  synth_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.seed = (uint64_t)seed;
  cfg.clips = clips >= 0 ? clips : quick ? QUICK_CLIPS : DEFAULT_CLIPS;
  cfg.quick = quick;
  cfg.fps = fps;
  cfg.width = width;
  cfg.seconds = seconds;
  cfg.aspect = aspect ? aspect_index(aspect) : -1;
  for (int k = 0; k < FLAW_COUNT; k++) {
    cfg.rates[k] = clean ? 0.0 : rates[k];
    if (!(cfg.rates[k] >= 0 && cfg.rates[k] <= 1)) {
      log_error("--%s %g: a rate is a probability in [0, 1]", FLAW_OPTIONS[k], rates[k]);
      return 2;
    }
  }
  if (cfg.aspect == -2) {
    log_error("--aspect %s: use 1:1, 4:3 or 16:9", aspect);
    return 2;
  }
  if (cfg.clips <= 0 || cfg.clips > 9999999) {
    log_error("--clips %d: must be 1 to 9999999", cfg.clips);
    return 2;
  }
  if ((fps && (fps < 1 || fps > 240)) || (width && (width < 16 || width > 4096 || (width & 1))) ||
      seconds < 0 || seconds > 600) {
    log_error("--fps must be 1-240, --width even and 16-4096, --seconds 0-600");
    return 2;
  }
  if (workers < 1) workers = 1;
  if (workers > 256) workers = 256;

  char outbuf[PATH_MAX];
  if (!out) {
    const char *ws = workspace ? workspace : getenv("TURBO_WORKSPACE");
    if (!ws || !ws[0]) ws = "runs/default";
    if (!fs_join(outbuf, sizeof outbuf, ws, "corpus")) {
      log_error("workspace path too long");
      return 2;
    }
    out = outbuf;
  }

  scene_exclusions *owned = NULL;
  if (exclude) {
    owned = scene_exclusions_load(exclude);
    if (!owned) {
      log_error("%s", err_get());
      return 2;
    }
    cfg.excl = owned;
  } else {
    cfg.excl = scene_exclusions_default();
  }

  if (!getenv("TURBO_LOG") || strcmp(getenv("TURBO_LOG"), "debug") != 0)
    av_log_set_level(AV_LOG_ERROR); /* x264 prints statistics for every file at info level */
  cfg.enc = video_enc_opts_default();
  cfg.enc.codec = codec;
  cfg.enc.crf = crf;
  cfg.enc.preset = preset;
  const char *codec_used = codec ? codec : video_enc_default_codec();
  if (!plan_only && !codec_used) {
    log_error("no video encoder: install libavcodec with libx264 (Debian: libavcodec59)");
    return 1;
  }
  if (!plan_only && !codec && strcmp(codec_used, "libx264") != 0)
    log_warn("libx264 is missing from libavcodec: clips will be %s (check colour tolerances)",
             codec_used);
  cfg.enc.quiet = 1;
  if (!plan_only && video_enc_reproducible_heap() != TB_OK)
    log_warn("%s: clips may differ in a few bytes between runs", err_get());

  double t0 = time_now();
  char videos[PATH_MAX];
  if (!fs_join(videos, sizeof videos, out, "videos") || fs_mkdir_p(videos) != TB_OK) {
    log_error("cannot create %s/videos: %s", out, err_get());
    return 1;
  }

  /* plan every clip (cheap), then pick wrong-caption partners */
  clip_plan *plans = xcalloc((size_t)cfg.clips, sizeof *plans);
  for (int i = 0; i < cfg.clips; i++) {
    if (synth_plan_clip(&cfg, i, &plans[i]) != TB_OK) {
      log_error("%s", err_get());
      return 1;
    }
  }
  synth_plan_partners(&cfg, plans, cfg.clips);

  /* settings: a rerun with the same ones only fills in missing clips */
  json_buf settings = {0};
  settings_json(&settings, &cfg, plan_only ? "none" : codec_used);
  char spath[PATH_MAX];
  fs_join(spath, sizeof spath, out, "synth.json");
  int resume = 0;
  if (fs_exists(spath)) {
    char *old = NULL;
    size_t oldlen = 0;
    if (fs_read_all(spath, &old, &oldlen) == TB_OK) {
      if (oldlen == settings.len && memcmp(old, settings.data, oldlen) == 0) {
        resume = 1;
      } else if (!force) {
        log_error("%s holds a corpus made with other settings; use --force to overwrite it or "
                  "another --out", out);
        free(old);
        return 1;
      }
    }
    free(old);
  }
  if (write_text_file(out, "synth.json", &settings) != TB_OK) {
    log_error("%s", err_get());
    return 1;
  }

  unsigned char *todo = xcalloc((size_t)cfg.clips, 1);
  int ntodo = 0;
  if (!plan_only) {
    for (int i = 0; i < cfg.clips; i++) {
      char rel[64], path[PATH_MAX];
      synth_clip_relpath(i, rel, sizeof rel);
      fs_join(path, sizeof path, out, rel);
      todo[i] = !(resume && fs_exists(path));
      ntodo += todo[i];
    }
    if (resume && ntodo < cfg.clips)
      log_info("%s: %d of %d clips already made with these settings", out, cfg.clips - ntodo,
               cfg.clips);
    if (workers > ntodo) workers = ntodo > 0 ? ntodo : 1;
    log_info("writing %d clips into %s with %d worker%s (%s, crf %d)", ntodo, out, workers,
             workers == 1 ? "" : "s", codec_used, crf);
    if (ntodo > 0 && run_workers(&cfg, plans, out, todo, ntodo, workers) != TB_OK) {
      log_error("%s", err_get());
      return 1;
    }
  }
  double t_video = time_now() - t0;

  /* manifest and truth, once every clip exists */
  json_buf csv = {0}, jsonl = {0}, truth = {0};
  json_buf_puts(&csv, SYNTH_CSV_HEADER "\n");
  int64_t total_bytes = 0;
  int counts[FLAW_COUNT] = {0}, nclean = 0;
  for (int i = 0; i < cfg.clips; i++) {
    const clip_plan *p = &plans[i];
    int64_t bytes = -1;
    if (!plan_only) {
      char rel[64], path[PATH_MAX];
      synth_clip_relpath(i, rel, sizeof rel);
      fs_join(path, sizeof path, out, rel);
      bytes = fs_size(path);
      if (bytes < 0) {
        log_error("clip %d is missing after synthesis: %s", i, err_get());
        return 1;
      }
      total_bytes += bytes;
    }
    synth_manifest_csv_line(&csv, p, plans);
    json_buf_puts(&csv, "\n");
    synth_manifest_jsonl_line(&jsonl, p, plans);
    json_buf_puts(&jsonl, "\n");
    synth_truth_line(&truth, p, plans, bytes);
    json_buf_puts(&truth, "\n");
    for (int k = 0; k < FLAW_COUNT; k++) counts[k] += (p->flaws >> k) & 1;
    nclean += p->flaws == 0;
  }
  if (write_text_file(out, "manifest.csv", &csv) != TB_OK ||
      write_text_file(out, "manifest.jsonl", &jsonl) != TB_OK ||
      write_text_file(out, "truth.jsonl", &truth) != TB_OK) {
    log_error("%s", err_get());
    return 1;
  }
  char summary[512];
  int len = snprintf(summary, sizeof summary, "%d clean", nclean);
  for (int k = 0; k < FLAW_COUNT && len < (int)sizeof summary; k++)
    len += snprintf(summary + len, sizeof summary - (size_t)len, ", %d %s", counts[k], FLAW_NAMES[k]);
  double el = time_now() - t0;
  if (plan_only)
    log_info("planned %d clips in %.2f s (%s); no videos written", cfg.clips, el, summary);
  else
    log_info("corpus %s: %d clips, %.1f MiB of video, %d made in %.1f s (%.2f clips/s); %s", out,
             cfg.clips, (double)total_bytes / (1 << 20), ntodo, t_video,
             t_video > 0 ? ntodo / t_video : 0.0, summary);

  json_buf_free(&csv);
  json_buf_free(&jsonl);
  json_buf_free(&truth);
  json_buf_free(&settings);
  for (int i = 0; i < cfg.clips; i++) synth_plan_free(&plans[i]);
  free(plans);
  free(todo);
  scene_exclusions_free(owned);
  return 0;
}

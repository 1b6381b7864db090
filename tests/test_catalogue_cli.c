/* bin/catalogue, the read-only query tool: every command on a small workspace written through
 * the API, CSV output, refusal of writes in `sql` (the rows stay), clear errors for a missing
 * workspace and bad usage, and answers while a stage holds an open write transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/catalogue.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "tests/testutil.h"

static char g_ws[1024];
static char g_bin[1024];

/* Runs bin/catalogue with `args` (shell words), stdout+stderr into *out (caller frees);
 * returns the exit status (-1 when it did not exit normally). */
static int run_cli(const char *args, char **out) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s --workspace '%s' %s 2>&1", g_bin, g_ws, args);
  FILE *p = popen(cmd, "r");
  TB_CHECK(p != NULL);
  size_t cap = 4096, len = 0;
  char *buf = xmalloc(cap);
  size_t n;
  while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
    len += n;
    if (cap - len < 1024) buf = xrealloc(buf, cap *= 2);
  }
  buf[len] = 0;
  int st = pclose(p);
  *out = buf;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs the CLI and checks its exit status and that every needle occurs in its output. */
#define EXPECT(args, status, ...)                                                          \
  do {                                                                                     \
    char *o_ = NULL;                                                                       \
    int rc_ = run_cli(args, &o_);                                                          \
    CHECKF(rc_ == (status), "'%s' exited %d (want %d):\n%s", args, rc_, status, o_);       \
    const char *needles_[] = {__VA_ARGS__, NULL};                                          \
    for (int i_ = 0; needles_[i_]; i_++)                                                   \
      CHECKF(strstr(o_, needles_[i_]) != NULL, "'%s': no '%s' in:\n%s", args,            \
             needles_[i_], o_);                                                            \
    free(o_);                                                                              \
  } while (0)

static void populate(void) {
  char db[1200];
  fs_join(db, sizeof db, g_ws, CATALOGUE_FILE_NAME);
  unlink(db);
  catalogue *cat = catalogue_open_workspace(g_ws, 0);
  TB_CHECKF(cat != NULL, "%s", err_get());
  char *argv[] = {"bin/curate", "--manifest", "m.csv", NULL};
  int64_t run = 0, src = 0, bad = 0, clip = 0, ds = 0, model = 0;
  TB_CHECK(catalogue_run_begin(cat, "curate", 3, argv, &run) == TB_OK);
  TB_CHECK(catalogue_begin(cat) == TB_OK);
  catalogue_source s = {.path = "raw/good.mp4", .size = 1, .mtime = 1, .codec = "h264",
                        .width = 64, .height = 64, .fps = 8, .frames = 32, .duration = 4};
  TB_CHECK(catalogue_source_upsert(cat, &s, &src, NULL) == TB_OK);
  s.path = "raw/bad, file.mp4";
  TB_CHECK(catalogue_source_upsert(cat, &s, &bad, NULL) == TB_OK);
  TB_CHECK(catalogue_source_reject(cat, bad, "probe: moov atom not found") == TB_OK);
  catalogue_clip c = {.source_id = src, .start = 0, .end = 2, .fps = 8, .width = 64,
                      .height = 64, .frames = 16};
  TB_CHECK(catalogue_clip_insert(cat, &c, &clip) == TB_OK);
  const char *names[2] = {"motion_mag", "flicker"};
  double vals[2] = {0.125, 0.03};
  TB_CHECK(catalogue_stats_set(cat, clip, 2, names, vals) == TB_OK);
  TB_CHECK(catalogue_dataset_create(cat, "tailored-v1", "motion_mag > 0.1", 0, run, &ds) ==
           TB_OK);
  TB_CHECK(catalogue_member_add(cat, ds, clip, CATALOGUE_SPLIT_TRAIN, "distill") == TB_OK);
  TB_CHECK(catalogue_member_add(cat, ds, clip, CATALOGUE_SPLIT_TRAIN, "reward") == TB_OK);
  TB_CHECK(catalogue_dataset_status_set(cat, ds, "ready") == TB_OK);
  TB_CHECK(catalogue_model_upsert(cat, "vae-64", "vae", NULL, run, &model) == TB_OK);
  TB_CHECK(catalogue_checkpoint_insert(cat, model, 500, "models/vae-500.st", NULL, run, NULL) ==
           TB_OK);
  catalogue_tensor t = {.kind = "latent", .clip_id = clip, .model_id = model,
                        .path = "cache/lat.bin", .nbytes = 16384, .dtype = DTYPE_F32,
                        .ndim = 4, .shape = {16, 4, 16, 16}};
  TB_CHECK(catalogue_tensor_insert(cat, &t, NULL) == TB_OK);
  TB_CHECK(catalogue_commit(cat) == TB_OK);
  TB_CHECK(catalogue_run_end(cat, run, CATALOGUE_RUN_OK, NULL) == TB_OK);
  catalogue_close(cat);
}

int main(void) {
  test_begin("test_catalogue_cli");
  const char *bin = getenv("BIN");
  snprintf(g_bin, sizeof g_bin, "%s/catalogue", bin && *bin ? bin : "bin");
  if (!fs_exists(g_bin)) {
    CHECKF(0, "%s missing: build it first (make stages)", g_bin);
    return test_finish();
  }
  snprintf(g_ws, sizeof g_ws, "%s/ws", test_outdir());
  populate();

  char version[32];
  snprintf(version, sizeof version, "schema version %d", CATALOGUE_SCHEMA_VERSION);
  EXPECT("tables", 0, "sources", "clip_stats", version);
  EXPECT("--csv tables", 0, "table,rows\n", "sources,2\n", "clips,1\n", "clip_stats,2\n");
  EXPECT("runs", 0, "curate", "ok", "bin/curate --manifest m.csv");
  EXPECT("runs --stage nothing", 0, "(no rows)");
  EXPECT("datasets", 0, "tailored-v1", "ready", "distill:1 reward:1");
  EXPECT("sources", 0, "raw/good.mp4", "64x64", "rejected");
  EXPECT("sources --rejected", 0, "raw/bad, file.mp4", "probe: moov atom not found");
  EXPECT("--csv sources --rejected", 0, "path,reason\n",
         "\"raw/bad, file.mp4\",probe: moov atom not found\n");
  EXPECT("stats 1", 0, "motion_mag", "0.125", "flicker");
  EXPECT("models", 0, "vae-64", "500", "models/vae-500.st");
  EXPECT("tensors", 0, "latent", "vae-64", "16384");
  EXPECT("--csv sql 'SELECT count(*) AS n FROM clips'", 0, "n\n1\n");
  EXPECT("sql \"SELECT path FROM sources WHERE status = 'ok'\"", 0, "raw/good.mp4");
  EXPECT("schema", 0, "-- @migration 1:", "CREATE TABLE sources");

  /* writes are refused and change nothing */
  EXPECT("sql 'DELETE FROM sources'", 1, "refused");
  EXPECT("sql 'PRAGMA user_version = 7'", 1, "refused");
  EXPECT("sql \"INSERT INTO runs (stage, host, pid, started) VALUES ('x', 'h', 1, 0)\"", 1,
         "refused");
  EXPECT("sql 'SELECT 1; DROP TABLE clips'", 1, "one statement");
  EXPECT("--csv sql 'SELECT (SELECT count(*) FROM sources) || (SELECT count(*) FROM runs)'",
         0, "\n21\n");

  /* bad usage and a missing workspace */
  EXPECT("frobnicate", 2, "unknown command");
  EXPECT("stats", 2, "clip id");
  EXPECT("stats x1", 2, "not a clip id");
  EXPECT("", 2, "usage");
  {
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", g_ws);
    snprintf(g_ws, sizeof g_ws, "%s/no-such-workspace", test_outdir());
    EXPECT("tables", 1, "no catalogue at");
    CHECK(!fs_exists(g_ws)); /* a read-only tool creates nothing */
    snprintf(g_ws, sizeof g_ws, "%s", saved);
  }

  /* a stage holding the write lock does not block readers; they see the last commit */
  catalogue *cat = catalogue_open_workspace(g_ws, 0);
  CHECK(cat != NULL);
  if (cat) {
    CHECK(catalogue_begin(cat) == TB_OK);
    catalogue_source s = {.path = "raw/uncommitted.mp4"};
    CHECK(catalogue_source_upsert(cat, &s, NULL, NULL) == TB_OK);
    double t0 = time_now();
    EXPECT("--csv sql 'SELECT count(*) AS n FROM sources'", 0, "n\n2\n");
    CHECKF(time_now() - t0 < 5.0, "reader waited %.1f s for a writer", time_now() - t0);
    CHECK(catalogue_commit(cat) == TB_OK);
    EXPECT("--csv sql 'SELECT count(*) AS n FROM sources'", 0, "n\n3\n");
    catalogue_close(cat);
  }
  return test_finish();
}

/* The catalogue, in one process: create, migrate and reopen (user_version); the migration
 * mechanism with extra versions (applied in order, all or nothing, a newer database refused);
 * every typed insert and lookup; foreign keys and ON DELETE behaviour; nested transactions;
 * the read-only query runner refusing writes; the compiled-in schema matching the file. */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/catalogue.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "tests/testutil.h"

static char g_db[1024];

static void remove_db(const char *path) {
  char p[1100];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}

/* Counts rows of a read-only query through the public runner. */
static int64_t count_rows(catalogue *cat, const char *sql) {
  int64_t n = -1;
  if (catalogue_query(cat, sql, 0, NULL, NULL, NULL, &n) != TB_OK) {
    test_fail_msg(__FILE__, __LINE__, "query %s: %s", sql, err_get());
    g_test_failures++;
    return -1;
  }
  return n;
}

static int first_text(void *ctx, int ncol, const char *const *names, const char *const *v) {
  (void)ncol, (void)names;
  snprintf((char *)ctx, 256, "%s", v[0] ? v[0] : "NULL");
  return 1;
}

static void query_text(catalogue *cat, const char *sql, char out[256]) {
  out[0] = 0;
  if (catalogue_query(cat, sql, 0, NULL, first_text, out, NULL) != TB_OK)
    snprintf(out, 256, "ERR %s", err_get());
}

static void test_open_and_migrate(void) {
  remove_db(g_db);
  catalogue *cat = catalogue_open(g_db, 0);
  CHECKF(cat != NULL, "open: %s", err_get());
  if (!cat) return;
  CHECK(catalogue_schema_version(cat) == CATALOGUE_SCHEMA_VERSION);
  char t[256];
  sqlite3_stmt *st = NULL;
  CHECK(sqlite3_prepare_v2(catalogue_db(cat), "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK);
  CHECK(sqlite3_step(st) == SQLITE_ROW);
  CHECKF(strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0, "journal_mode %s",
         (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  query_text(cat, "PRAGMA foreign_keys", t);
  CHECKF(strcmp(t, "1") == 0, "foreign_keys %s", t);
  query_text(cat, "PRAGMA synchronous", t);
  CHECKF(strcmp(t, "1") == 0, "synchronous %s (1 = NORMAL)", t);
  query_text(cat, "PRAGMA busy_timeout", t);
  CHECKF(atoi(t) >= 1000, "busy_timeout %s", t);
  CHECK(count_rows(cat, "SELECT name FROM sqlite_schema WHERE type = 'table'") >= 11);
  int from = -1, to = -1;
  CHECK(catalogue_migrate(cat, NULL, &from, &to) == TB_OK);
  CHECK(from == CATALOGUE_SCHEMA_VERSION && to == CATALOGUE_SCHEMA_VERSION);
  catalogue_close(cat);

  /* reopen: nothing to do, same version; FULL sync option */
  cat = catalogue_open(g_db, CATALOGUE_OPEN_SYNC_FULL);
  CHECK(cat != NULL);
  if (!cat) return;
  CHECK(catalogue_schema_version(cat) == CATALOGUE_SCHEMA_VERSION);
  query_text(cat, "PRAGMA synchronous", t);
  CHECKF(strcmp(t, "2") == 0, "synchronous %s (2 = FULL)", t);

  /* the migration mechanism: versions V+1 and V+2 (V = this build's) applied in order in one go */
  const int V = CATALOGUE_SCHEMA_VERSION;
  const char *base = catalogue_schema_text();
  size_t bl = strlen(base);
  char extra2[256], extra3[128], bad4[128], skip[64], newer[32];
  snprintf(extra2, sizeof extra2,
           "\n-- @migration %d: notes\nCREATE TABLE notes (id INTEGER PRIMARY KEY,"
           " clip_id INTEGER REFERENCES clips(id) ON DELETE CASCADE, text TEXT);\n", V + 1);
  snprintf(extra3, sizeof extra3,
           "-- @migration %d: index\nCREATE INDEX notes_clip ON notes(clip_id);\n", V + 2);
  snprintf(bad4, sizeof bad4,
           "-- @migration %d: broken\nCREATE TABLE n4 (a);\nCREATE TABLE notes (x);\n", V + 3);
  snprintf(skip, sizeof skip, "-- @migration %d: skip\nSELECT 1;\n", V + 1);
  snprintf(newer, sizeof newer, "version %d", V + 2);
  char mig4[32];
  snprintf(mig4, sizeof mig4, "migration %d", V + 3);
  char *v3 = xmalloc(bl + strlen(extra2) + strlen(extra3) + strlen(bad4) + 1);
  strcpy(v3, base);
  strcat(v3, extra2);
  strcat(v3, extra3);
  CHECKF(catalogue_migrate(cat, v3, &from, &to) == TB_OK, "migrate: %s", err_get());
  CHECK(from == V && to == V + 2);
  CHECK(catalogue_schema_version(cat) == V + 2);
  CHECK(count_rows(cat, "SELECT 1 FROM sqlite_schema WHERE name = 'notes_clip'") == 1);
  /* a failing step rolls back the whole migration: no n4 table, version stays V + 2 */
  strcat(v3, bad4);
  CHECK(catalogue_migrate(cat, v3, &from, &to) == TB_ERR);
  CHECKF(strstr(err_get(), mig4) != NULL, "error: %s", err_get());
  CHECK(catalogue_schema_version(cat) == V + 2);
  CHECK(count_rows(cat, "SELECT 1 FROM sqlite_schema WHERE name = 'n4'") == 0);
  /* malformed texts */
  CHECK(catalogue_migrate(cat, skip, NULL, NULL) == TB_ERR);
  CHECK(catalogue_migrate(cat, "CREATE TABLE x (a);\n", NULL, NULL) == TB_ERR);
  catalogue_close(cat);
  free(v3);

  /* this build refuses to write a newer database, but a read-only view still opens */
  cat = catalogue_open(g_db, 0);
  CHECK(cat == NULL);
  CHECKF(strstr(err_get(), newer) != NULL, "error: %s", err_get());
  cat = catalogue_open(g_db, CATALOGUE_OPEN_READONLY);
  CHECKF(cat != NULL, "readonly open of newer db: %s", err_get());
  catalogue_close(cat);

  /* read-only open of a missing file says what to do */
  remove_db(g_db);
  cat = catalogue_open(g_db, CATALOGUE_OPEN_READONLY);
  CHECK(cat == NULL && strstr(err_get(), "no catalogue") != NULL);
  CHECK(!fs_exists(g_db));

  /* two handles opening a fresh file at once: the second sees the migrated schema */
  catalogue *a = catalogue_open(g_db, 0), *b = catalogue_open(g_db, 0);
  CHECK(a && b);
  if (a && b) CHECK(catalogue_schema_version(b) == CATALOGUE_SCHEMA_VERSION);
  catalogue_close(a);
  catalogue_close(b);
}

static void test_schema_file(void) {
  char *text = NULL;
  size_t len = 0;
  if (fs_read_all("schemas/catalogue.sql", &text, &len) != TB_OK) {
    CHECKF(0, "read schemas/catalogue.sql (run from the repository root): %s", err_get());
    return;
  }
  CHECKF(strcmp(text, catalogue_schema_text()) == 0,
         "the compiled-in schema differs from schemas/catalogue.sql: rebuild common/catalogue.o "
         "(touch common/catalogue.c)");
  free(text);
}

static void test_inserts(void) {
  remove_db(g_db);
  catalogue *cat = catalogue_open(g_db, 0);
  CHECK(cat != NULL);
  if (!cat) return;
  char buf[256];

  /* runs */
  char *argv[] = {"bin/curate", "--manifest", "a b.csv", "--note", "it's", NULL};
  int64_t run = 0;
  CHECK(catalogue_run_begin(cat, "curate", 5, argv, &run) == TB_OK && run > 0);
  query_text(cat, "SELECT args FROM runs", buf);
  CHECKF(strcmp(buf, "bin/curate --manifest 'a b.csv' --note 'it'\\''s'") == 0, "args %s", buf);
  query_text(cat, "SELECT status || ' ' || (pid > 0) || ' ' || (host <> '') FROM runs", buf);
  CHECKF(strcmp(buf, "running 1 1") == 0, "run row %s", buf);

  /* sources */
  catalogue_source s = {.path = "raw/v1.mp4", .size = 1000, .mtime = 1700000000,
                        .checksum = "00aa", .container = "mov,mp4", .codec = "h264",
                        .width = 64, .height = 48, .fps = 8, .frames = 32, .duration = 4.0,
                        .manifest_line = "raw/v1.mp4,\"a red circle\"",
                        .caption_long = "a large red circle glides left",
                        .caption_short = "a red circle moving left"};
  int64_t src = 0, src2 = 0;
  int changed = -1;
  CHECK(catalogue_source_upsert(cat, &s, &src, &changed) == TB_OK && src > 0 && changed == 1);
  CHECK(catalogue_source_upsert(cat, &s, &src2, &changed) == TB_OK && src2 == src &&
        changed == 0);
  s.checksum = "00bb";
  CHECK(catalogue_source_upsert(cat, &s, &src2, &changed) == TB_OK && src2 == src &&
        changed == 1);
  catalogue_source bad = {.path = "raw/broken.mp4", .size = 10, .mtime = 1};
  int64_t badid = 0;
  CHECK(catalogue_source_upsert(cat, &bad, &badid, NULL) == TB_OK);
  CHECK(catalogue_source_reject(cat, badid, "probe: moov atom not found") == TB_OK);
  CHECK(catalogue_source_reject(cat, 9999, "x") == TB_ERR);
  CHECK(catalogue_source_reject(cat, badid, "") == TB_ERR);
  catalogue_source got;
  CHECK(catalogue_source_lookup(cat, "raw/v1.mp4", &got) == 1);
  CHECK(got.id == src && got.width == 64 && got.height == 48 && got.fps == 8 &&
        got.frames == 32 && got.duration == 4.0 && got.status == CATALOGUE_SOURCE_OK);
  CHECK(got.checksum && strcmp(got.checksum, "00bb") == 0);
  CHECK(got.codec && strcmp(got.codec, "h264") == 0 && got.reason == NULL);
  CHECK(got.caption_short && strcmp(got.caption_short, "a red circle moving left") == 0);
  catalogue_source_clear(&got);
  CHECK(catalogue_source_lookup(cat, "raw/broken.mp4", &got) == 1);
  CHECK(got.status == CATALOGUE_SOURCE_REJECTED && got.reason &&
        strstr(got.reason, "moov") != NULL && got.codec == NULL && got.width == 0);
  catalogue_source_clear(&got);
  CHECK(catalogue_source_lookup(cat, "raw/none.mp4", &got) == 0);
  /* re-upserting a rejected source makes it ok again */
  CHECK(catalogue_source_upsert(cat, &bad, &badid, &changed) == TB_OK && changed == 0);
  CHECK(count_rows(cat, "SELECT 1 FROM sources WHERE status = 'rejected'") == 0);
  CHECK(catalogue_source_reject(cat, badid, "duration 0.4 s < 1 s") == TB_OK);

  /* clips and statistics */
  catalogue_clip c = {.source_id = src, .start = 0, .end = 2, .fps = 8, .width = 64,
                      .height = 64, .frames = 16};
  int64_t clip1 = 0, clip2 = 0, again = 0;
  CHECK(catalogue_clip_insert(cat, &c, &clip1) == TB_OK && clip1 > 0);
  c.frames = 17;
  CHECK(catalogue_clip_insert(cat, &c, &again) == TB_OK && again == clip1);
  c.start = 2, c.end = 4, c.caption_short = "override";
  CHECK(catalogue_clip_insert(cat, &c, &clip2) == TB_OK && clip2 != clip1);
  catalogue_clip cg;
  CHECK(catalogue_clip_get(cat, clip1, &cg) == 1);
  CHECK(cg.frames == 17 && cg.source_id == src && cg.end == 2 && cg.caption_short &&
        strcmp(cg.caption_short, "a red circle moving left") == 0);
  catalogue_clip_clear(&cg);
  CHECK(catalogue_clip_get(cat, clip2, &cg) == 1);
  CHECK(cg.caption_short && strcmp(cg.caption_short, "override") == 0 && cg.caption_long &&
        strstr(cg.caption_long, "glides") != NULL);
  catalogue_clip_clear(&cg);
  CHECK(catalogue_clip_get(cat, 12345, &cg) == 0);
  int64_t *ids = NULL, nids = 0;
  CHECK(catalogue_source_clips(cat, src, &ids, &nids) == TB_OK && nids == 2 &&
        ids[0] == clip1 && ids[1] == clip2);
  free(ids);
  catalogue_clip nosrc = {.source_id = 777, .start = 0, .end = 1, .fps = 8, .width = 8,
                          .height = 8, .frames = 8};
  CHECK(catalogue_clip_insert(cat, &nosrc, NULL) == TB_ERR); /* foreign key */
  CHECKF(strstr(err_get(), "FOREIGN KEY") != NULL, "error %s", err_get());
  catalogue_clip badclip = c;
  badclip.start = 5, badclip.end = 1;
  CHECK(catalogue_clip_insert(cat, &badclip, NULL) == TB_ERR); /* CHECK constraint */

  CHECK(catalogue_stat_set(cat, clip1, "motion_mag", 0.25) == TB_OK);
  CHECK(catalogue_stat_set(cat, clip1, "motion_mag", 0.5) == TB_OK); /* replaces */
  const char *names[3] = {"flicker", "black_frac", "aesthetic"};
  double vals[3] = {0.01, 0.0, 5.5};
  CHECK(catalogue_stats_set(cat, clip2, 3, names, vals) == TB_OK);
  CHECK(catalogue_stat_set(cat, clip2, "motion_mag", 1.5) == TB_OK);
  double v = -1;
  CHECK(catalogue_stat_get(cat, clip1, "motion_mag", &v) == 1 && v == 0.5);
  CHECK(catalogue_stat_get(cat, clip2, "aesthetic", &v) == 1 && v == 5.5);
  CHECK(catalogue_stat_get(cat, clip1, "aesthetic", &v) == 0);
  CHECK(catalogue_stat_set(cat, 4242, "x", 1) == TB_ERR);
  /* a bulk set with one bad name leaves nothing behind */
  const char *names_bad[2] = {"ok_one", ""};
  CHECK(catalogue_stats_set(cat, clip1, 2, names_bad, vals) == TB_ERR);
  CHECK(catalogue_stat_get(cat, clip1, "ok_one", &v) == 0);
  int64_t *sc = NULL, ns = 0;
  double *sv = NULL;
  CHECK(catalogue_stat_all(cat, "motion_mag", &sc, &sv, &ns) == TB_OK && ns == 2 &&
        sc[0] == clip1 && sv[0] == 0.5 && sc[1] == clip2 && sv[1] == 1.5);
  free(sc);
  free(sv);
  CHECK(catalogue_stat_all(cat, "nothing", &sc, &sv, &ns) == TB_OK && ns == 0);
  free(sc);
  free(sv);

  /* datasets and members */
  int64_t ds = 0, ds2 = 0;
  CHECK(catalogue_dataset_create(cat, "tailored-v1", "motion_mag > 0.2", 0, run, &ds) ==
        TB_OK);
  CHECK(catalogue_dataset_create(cat, "tailored-v1", "x", 0, 0, &ds2) == TB_ERR);
  CHECK(strstr(err_get(), "exists") != NULL);
  CHECK(catalogue_member_add(cat, ds, clip1, CATALOGUE_SPLIT_TRAIN, "distill") == TB_OK);
  catalogue_member mem[3] = {{clip2, CATALOGUE_SPLIT_TRAIN, "distill"},
                             {clip2, CATALOGUE_SPLIT_TRAIN, "reward"},
                             {clip1, CATALOGUE_SPLIT_VAL, NULL}};
  CHECK(catalogue_members_add(cat, ds, 3, mem) == TB_OK);
  CHECK(catalogue_member_add(cat, ds, 9999, CATALOGUE_SPLIT_TRAIN, "distill") == TB_ERR);
  CHECK(catalogue_member_add(cat, ds, clip1, (catalogue_split)7, "distill") == TB_ERR);
  CHECK(catalogue_dataset_clips(cat, ds, -1, NULL, &ids, &nids) == TB_OK && nids == 2);
  free(ids);
  CHECK(catalogue_dataset_clips(cat, ds, CATALOGUE_SPLIT_TRAIN, "reward", &ids, &nids) ==
            TB_OK &&
        nids == 1 && ids[0] == clip2);
  free(ids);
  CHECK(catalogue_dataset_clips(cat, ds, CATALOGUE_SPLIT_VAL, NULL, &ids, &nids) == TB_OK &&
        nids == 1 && ids[0] == clip1);
  free(ids);
  CHECK(catalogue_dataset_status_set(cat, ds, "ready") == TB_OK);
  CHECK(catalogue_dataset_status_set(cat, ds, "done") == TB_ERR);
  catalogue_dataset d;
  CHECK(catalogue_dataset_lookup(cat, "tailored-v1", &d) == 1);
  CHECK(d.id == ds && d.members == 4 && d.run_id == run && strcmp(d.status, "ready") == 0 &&
        strcmp(d.recipe, "motion_mag > 0.2") == 0);
  catalogue_dataset_clear(&d);
  CHECK(catalogue_dataset_lookup(cat, "nope", &d) == 0);

  /* models, checkpoints */
  int64_t vae = 0, vae2 = 0, ck = 0;
  CHECK(catalogue_model_upsert(cat, "vae-64", "vae", "{\"z\":4}", run, &vae) == TB_OK);
  CHECK(catalogue_model_upsert(cat, "vae-64", "vae", "{\"z\":8}", 0, &vae2) == TB_OK &&
        vae2 == vae);
  catalogue_model m;
  CHECK(catalogue_model_lookup(cat, "vae-64", &m) == 1 && m.id == vae &&
        strcmp(m.config, "{\"z\":8}") == 0 && m.run_id == run);
  catalogue_model_clear(&m);
  CHECK(catalogue_model_upsert(cat, "x", NULL, NULL, 0, NULL) == TB_ERR);
  CHECK(catalogue_checkpoint_insert(cat, vae, 100, "models/vae-100.st", "c1", run, &ck) ==
        TB_OK);
  CHECK(catalogue_checkpoint_insert(cat, vae, 300, "models/vae-300.st", "c3", run, NULL) ==
        TB_OK);
  CHECK(catalogue_checkpoint_insert(cat, vae, 200, "models/vae-200.st", "c2", 0, NULL) == TB_OK);
  CHECK(catalogue_checkpoint_insert(cat, 999, 1, "x", NULL, 0, NULL) == TB_ERR);
  catalogue_checkpoint cp;
  CHECK(catalogue_checkpoint_latest(cat, vae, &cp) == 1 && cp.step == 300 &&
        strcmp(cp.path, "models/vae-300.st") == 0 && cp.run_id == run);
  catalogue_checkpoint_clear(&cp);

  /* cached tensors */
  catalogue_tensor t = {.kind = "latent", .clip_id = clip1, .model_id = vae,
                        .path = "cache/latents-000.bin", .offset = 4096, .nbytes = 16384,
                        .dtype = DTYPE_F32, .ndim = 4, .shape = {16, 4, 16, 16},
                        .checksum = "1234abcd"};
  int64_t tid = 0, tid2 = 0;
  CHECK(catalogue_tensor_insert(cat, &t, &tid) == TB_OK && tid > 0);
  t.offset = 8192; /* same key: replaces */
  CHECK(catalogue_tensor_insert(cat, &t, &tid2) == TB_OK && tid2 == tid);
  catalogue_tensor te = {.kind = "text_emb", .clip_id = clip1, .model_id = vae,
                         .variant = "short", .path = "cache/text.bin", .nbytes = 1024,
                         .dtype = DTYPE_BF16, .ndim = 2, .shape = {8, 64}};
  CHECK(catalogue_tensor_insert(cat, &te, NULL) == TB_OK);
  te.variant = "long";
  CHECK(catalogue_tensor_insert(cat, &te, NULL) == TB_OK);
  catalogue_tensor fr = {.kind = "frames", .clip_id = clip1, .path = "shards/frames-000.bin",
                         .nbytes = 16 * 64 * 64 * 3, .dtype = DTYPE_U8, .ndim = 4,
                         .shape = {16, 64, 64, 3}};
  CHECK(catalogue_tensor_insert(cat, &fr, NULL) == TB_OK);
  CHECK(catalogue_tensor_insert(cat, &fr, NULL) == TB_OK); /* NULL model: still one key */
  catalogue_tensor dsg = {.kind = "guidance_score", .dataset_id = ds, .path = "g.bin",
                          .nbytes = 4, .dtype = DTYPE_F32, .ndim = 0};
  CHECK(catalogue_tensor_insert(cat, &dsg, NULL) == TB_OK);
  CHECK(count_rows(cat, "SELECT 1 FROM tensors") == 5);
  catalogue_tensor badt = t;
  badt.ndim = 6;
  CHECK(catalogue_tensor_insert(cat, &badt, NULL) == TB_ERR);
  badt = t;
  badt.model_id = 5555;
  CHECK(catalogue_tensor_insert(cat, &badt, NULL) == TB_ERR);
  catalogue_tensor out;
  CHECK(catalogue_tensor_find(cat, "latent", clip1, 0, vae, NULL, &out) == 1);
  CHECK(out.id == tid && out.offset == 8192 && out.nbytes == 16384 && out.dtype == DTYPE_F32 &&
        out.ndim == 4 && out.shape[0] == 16 && out.shape[3] == 16 && out.model_id == vae &&
        strcmp(out.checksum, "1234abcd") == 0 && strcmp(out.path, "cache/latents-000.bin") == 0);
  catalogue_tensor_clear(&out);
  CHECK(catalogue_tensor_find(cat, "latent", clip1, 0, -1, NULL, &out) == 1 && out.id == tid);
  catalogue_tensor_clear(&out);
  CHECK(catalogue_tensor_find(cat, "latent", clip2, 0, vae, NULL, &out) == 0);
  CHECK(catalogue_tensor_find(cat, "latent", clip1, 0, 0, NULL, &out) == 0);
  CHECK(catalogue_tensor_find(cat, "text_emb", clip1, 0, vae, "long", &out) == 1 &&
        out.dtype == DTYPE_BF16 && out.ndim == 2 && out.shape[1] == 64 &&
        strcmp(out.variant, "long") == 0);
  catalogue_tensor_clear(&out);
  CHECK(catalogue_tensor_find(cat, "frames", clip1, 0, 0, NULL, &out) == 1 &&
        out.dtype == DTYPE_U8 && out.model_id == 0 && out.checksum == NULL);
  catalogue_tensor_clear(&out);
  CHECK(catalogue_tensor_find(cat, "guidance_score", 0, ds, 0, "", &out) == 1 && out.ndim == 0);
  catalogue_tensor_clear(&out);

  /* metrics and scores */
  CHECK(catalogue_metric_insert(cat, run, 10, "loss", 0.5) == TB_OK);
  CHECK(catalogue_metric_insert(cat, run, 10, "loss", 0.4) == TB_OK); /* replaces */
  const char *mn[2] = {"loss", "lr"};
  double mv[2] = {0.3, 1e-5};
  CHECK(catalogue_metrics_insert(cat, run, 20, 2, mn, mv) == TB_OK);
  CHECK(count_rows(cat, "SELECT 1 FROM metrics") == 3);
  CHECK(catalogue_metric_insert(cat, 999, 1, "loss", 1) == TB_ERR);
  catalogue_score scs[2] = {
      {.run_id = run, .model_id = vae, .checkpoint_id = ck, .suite = "vbench",
       .dimension = "subject_consistency", .prompt = "a red circle moving left", .value = 0.9},
      {.run_id = run, .model_id = vae, .suite = "vbench", .dimension = "total", .value = 0.8}};
  int64_t scid = 0;
  CHECK(catalogue_score_insert(cat, &scs[0], &scid) == TB_OK && scid > 0);
  CHECK(catalogue_scores_insert(cat, 2, scs) == TB_OK);
  catalogue_score clipscore = {.run_id = run, .suite = "compbench", .dimension = "numeracy",
                               .clip_id = clip2, .value = 1};
  CHECK(catalogue_score_insert(cat, &clipscore, NULL) == TB_OK);
  CHECK(count_rows(cat, "SELECT 1 FROM scores") == 4);
  /* migration 2: count, normalised value and sample of a score row */
  catalogue_score agg = {.run_id = run, .suite = "vbench", .dimension = "color", .value = 0.5,
                         .count = 40, .has_normalised = 1, .normalised = 0.25};
  CHECK(catalogue_score_insert(cat, &agg, NULL) == TB_OK);
  query_text(cat, "SELECT count || ' ' || normalised FROM scores WHERE dimension = 'color'", buf);
  CHECKF(strcmp(buf, "40 0.25") == 0, "score count/normalised %s", buf);
  query_text(cat, "SELECT ifnull(count, 'NULL') || ifnull(normalised, 'NULL') FROM scores"
                  " WHERE dimension = 'total'", buf);
  CHECKF(strcmp(buf, "NULLNULL") == 0, "unset count/normalised store NULL: %s", buf);

  /* migration 2: samples (a sampling stage's records), listed by model, checkpoint, suite */
  catalogue_sample smp = {.model_id = vae, .checkpoint_id = ck, .suite = "vbench",
                          .prompt_id = "color-001", .seed = 11, .steps = 4, .guidance = 7.5,
                          .motion_scale = 0.5, .path = "samples/a.mp4", .run_id = run};
  int64_t sid1 = 0, sid2 = 0, sid3 = 0;
  CHECK(catalogue_sample_insert(cat, &smp, &sid1) == TB_OK && sid1 > 0);
  smp.path = "samples/a2.mp4"; /* same key: replaces the path, keeps the id */
  CHECK(catalogue_sample_insert(cat, &smp, &sid2) == TB_OK && sid2 == sid1);
  smp.seed = 12;
  smp.path = "samples/b.mp4";
  CHECK(catalogue_sample_insert(cat, &smp, &sid3) == TB_OK && sid3 != sid1);
  catalogue_sample other = {.suite = "compbench", .prompt_id = "spatial-001", .seed = 1,
                            .path = "samples/c.mp4"};
  CHECK(catalogue_sample_insert(cat, &other, NULL) == TB_OK);
  catalogue_sample badsmp = {.suite = "vbench", .prompt_id = "", .seed = 1, .path = "x.mp4"};
  CHECK(catalogue_sample_insert(cat, &badsmp, NULL) == TB_ERR);
  badsmp.prompt_id = "p";
  badsmp.model_id = 99999; /* unknown model */
  CHECK(catalogue_sample_insert(cat, &badsmp, NULL) == TB_ERR);
  catalogue_sample *sl = NULL;
  int64_t nsmp = 0;
  CHECK(catalogue_samples_list(cat, vae, ck, "vbench", &sl, &nsmp) == TB_OK && nsmp == 2);
  if (nsmp == 2) {
    CHECK(sl[0].seed == 11 && strcmp(sl[0].path, "samples/a2.mp4") == 0 && sl[0].steps == 4);
    CHECK(sl[1].seed == 12 && fabs(sl[1].guidance - 7.5) < 1e-12 && sl[1].run_id == run);
  }
  catalogue_samples_free(sl, nsmp);
  CHECK(catalogue_samples_list(cat, -1, -1, NULL, &sl, &nsmp) == TB_OK && nsmp == 3);
  catalogue_samples_free(sl, nsmp);
  CHECK(catalogue_samples_list(cat, 0, -1, NULL, &sl, &nsmp) == TB_OK && nsmp == 1 &&
        strcmp(sl[0].suite, "compbench") == 0);
  catalogue_samples_free(sl, nsmp);
  catalogue_score per = {.run_id = run, .suite = "vbench", .dimension = "color",
                         .prompt = "color-001", .value = 1, .sample_id = sid1};
  CHECK(catalogue_score_insert(cat, &per, NULL) == TB_OK);

  /* migration 2: eval runs by label or id, per-video results */
  catalogue_eval_run er = {.run_id = run, .label = "teacher-50", .input = "samples",
                           .suite = "vbench", .model_id = vae, .videos = 10,
                           .results = "eval/teacher-50/results.json"};
  CHECK(catalogue_eval_run_set(cat, &er) == TB_OK);
  er.videos = 12;
  CHECK(catalogue_eval_run_set(cat, &er) == TB_OK); /* replaces */
  catalogue_eval_run eo;
  CHECK(catalogue_eval_run_find(cat, "teacher-50", &eo) == 1 && eo.videos == 12 &&
        eo.run_id == run && strcmp(eo.input, "samples") == 0);
  catalogue_eval_run_clear(&eo);
  char idtxt[32];
  snprintf(idtxt, sizeof idtxt, "%lld", (long long)run);
  CHECK(catalogue_eval_run_find(cat, idtxt, &eo) == 1 && eo.run_id == run);
  catalogue_eval_run_clear(&eo);
  CHECK(catalogue_eval_run_find(cat, "nobody", &eo) == 0);
  er.input = "stdin"; /* not one of the three */
  CHECK(catalogue_eval_run_set(cat, &er) == TB_ERR);
  char *res = NULL;
  CHECK(catalogue_eval_video_get(cat, "k1", &res) == 0 && res == NULL);
  CHECK(catalogue_eval_video_put(cat, "k1", "videos/a.mp4", "{\"color\":1}") == TB_OK);
  CHECK(catalogue_eval_video_put(cat, "k1", "videos/a.mp4", "{\"color\":0}") == TB_OK);
  CHECK(catalogue_eval_video_get(cat, "k1", &res) == 1 && res && strcmp(res, "{\"color\":0}") == 0);
  free(res);

  /* run end */
  CHECK(catalogue_run_end(cat, run, CATALOGUE_RUN_OK, NULL) == TB_OK);
  CHECK(catalogue_run_end(cat, run, CATALOGUE_RUN_RUNNING, NULL) == TB_ERR);
  CHECK(catalogue_run_end(cat, 9999, CATALOGUE_RUN_FAILED, "x") == TB_ERR);
  query_text(cat, "SELECT status || ' ' || (ended >= started) FROM runs", buf);
  CHECKF(strcmp(buf, "ok 1") == 0, "run %s", buf);

  /* ON DELETE: a source's clips go with their stats, members, tensors; the dataset turns
   * stale; scores of a deleted clip keep their row with clip_id NULL */
  int64_t deleted = 0;
  CHECK(catalogue_source_clips_delete(cat, src, &deleted) == TB_OK && deleted == 2);
  CHECK(count_rows(cat, "SELECT 1 FROM clip_stats") == 0);
  CHECK(count_rows(cat, "SELECT 1 FROM dataset_members") == 0);
  CHECK(count_rows(cat, "SELECT 1 FROM tensors") == 1); /* the dataset's guidance score */
  CHECK(count_rows(cat, "SELECT 1 FROM scores WHERE clip_id IS NULL") == 6);
  query_text(cat, "SELECT status FROM datasets", buf);
  CHECKF(strcmp(buf, "stale") == 0, "dataset status %s", buf);
  /* replacing a dataset drops its members and tensors, keeps the name */
  CHECK(catalogue_clip_insert(cat, &c, &clip2) == TB_OK);
  CHECK(catalogue_member_add(cat, ds, clip2, CATALOGUE_SPLIT_TRAIN, "distill") == TB_OK);
  CHECK(catalogue_dataset_create(cat, "tailored-v1", "v2 recipe", 1, 0, &ds2) == TB_OK &&
        ds2 != ds);
  CHECK(count_rows(cat, "SELECT 1 FROM dataset_members") == 0);
  CHECK(count_rows(cat, "SELECT 1 FROM tensors") == 0);
  CHECK(catalogue_dataset_lookup(cat, "tailored-v1", &d) == 1 && d.id == ds2 &&
        strcmp(d.status, "building") == 0 && d.run_id == 0);
  catalogue_dataset_clear(&d);
  /* deleting a model drops its checkpoints; the run's artefacts survive the run */
  sqlite3 *db = catalogue_db(cat);
  CHECK(sqlite3_exec(db, "DELETE FROM runs", NULL, NULL, NULL) == SQLITE_OK);
  CHECK(count_rows(cat, "SELECT 1 FROM models WHERE run_id IS NULL") == 1);
  CHECK(count_rows(cat, "SELECT 1 FROM checkpoints WHERE run_id IS NULL") == 3);
  CHECK(count_rows(cat, "SELECT 1 FROM metrics") == 0);
  CHECK(count_rows(cat, "SELECT 1 FROM scores") == 0);
  CHECK(sqlite3_exec(db, "DELETE FROM models", NULL, NULL, NULL) == SQLITE_OK);
  CHECK(count_rows(cat, "SELECT 1 FROM checkpoints") == 0);
  /* a source cannot be deleted out from under... it can: its clips go with it */
  CHECK(sqlite3_exec(db, "DELETE FROM sources", NULL, NULL, NULL) == SQLITE_OK);
  CHECK(count_rows(cat, "SELECT 1 FROM clips") == 0);
  query_text(cat, "PRAGMA foreign_key_check", buf);
  CHECKF(buf[0] == 0, "foreign_key_check: %s", buf);
  catalogue_close(cat);
}

static void test_transactions(void) {
  remove_db(g_db);
  catalogue *cat = catalogue_open(g_db, 0);
  CHECK(cat != NULL);
  if (!cat) return;
  catalogue_source s = {.path = "a.mp4"};
  int64_t id = 0;
  CHECK(catalogue_begin(cat) == TB_OK && catalogue_txn_depth(cat) == 1);
  CHECK(catalogue_source_upsert(cat, &s, &id, NULL) == TB_OK);
  CHECK(catalogue_begin(cat) == TB_OK && catalogue_txn_depth(cat) == 2);
  s.path = "b.mp4";
  CHECK(catalogue_source_upsert(cat, &s, &id, NULL) == TB_OK);
  CHECK(catalogue_rollback(cat) == TB_OK && catalogue_txn_depth(cat) == 1); /* drops b only */
  CHECK(catalogue_begin(cat) == TB_OK);
  s.path = "c.mp4";
  CHECK(catalogue_source_upsert(cat, &s, &id, NULL) == TB_OK);
  CHECK(catalogue_commit(cat) == TB_OK);
  CHECK(catalogue_begin_durable(cat) == TB_ERR); /* durable must be outermost */
  CHECK(catalogue_commit(cat) == TB_OK && catalogue_txn_depth(cat) == 0);
  CHECK(count_rows(cat, "SELECT 1 FROM sources") == 2);
  CHECK(count_rows(cat, "SELECT 1 FROM sources WHERE path = 'b.mp4'") == 0);
  /* a failing helper inside the caller's transaction leaves it open and usable */
  CHECK(catalogue_begin(cat) == TB_OK);
  catalogue_clip bad = {.source_id = 999, .start = 0, .end = 1, .fps = 8, .width = 8,
                        .height = 8, .frames = 8};
  CHECK(catalogue_clip_insert(cat, &bad, NULL) == TB_ERR);
  CHECK(catalogue_txn_depth(cat) == 1);
  s.path = "d.mp4";
  CHECK(catalogue_source_upsert(cat, &s, &id, NULL) == TB_OK);
  CHECK(catalogue_commit(cat) == TB_OK);
  CHECK(count_rows(cat, "SELECT 1 FROM sources") == 3);
  /* durable transaction: FULL for its commit, NORMAL again after */
  char buf[256];
  CHECK(catalogue_begin_durable(cat) == TB_OK);
  s.path = "e.mp4";
  CHECK(catalogue_source_upsert(cat, &s, &id, NULL) == TB_OK);
  CHECK(catalogue_commit(cat) == TB_OK);
  query_text(cat, "PRAGMA synchronous", buf);
  CHECKF(strcmp(buf, "1") == 0, "synchronous after durable commit: %s", buf);
  CHECK(catalogue_commit(cat) == TB_ERR && catalogue_rollback(cat) == TB_ERR);
  /* closing with an open transaction rolls it back */
  CHECK(catalogue_begin(cat) == TB_OK);
  s.path = "f.mp4";
  CHECK(catalogue_source_upsert(cat, &s, &id, NULL) == TB_OK);
  catalogue_close(cat);
  cat = catalogue_open(g_db, 0);
  CHECK(cat && count_rows(cat, "SELECT 1 FROM sources") == 4);
  catalogue_close(cat);
}

static void test_query(void) {
  catalogue *cat = catalogue_open(g_db, 0);
  CHECK(cat != NULL);
  if (!cat) return;
  static const char *const writes[] = {
      "DELETE FROM sources",
      "INSERT INTO runs (stage, host, pid, started) VALUES ('x', 'h', 1, 0)",
      "UPDATE sources SET size = 1",
      "DROP TABLE clips",
      "CREATE TABLE t (a)",
      "PRAGMA user_version = 9",
      "ATTACH DATABASE 'other.db' AS o",
      "BEGIN",
      "SELECT 1; DELETE FROM sources",
      "",
  };
  for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
    int rc = catalogue_query(cat, writes[i], 0, NULL, NULL, NULL, NULL);
    CHECKF(rc == TB_ERR, "query allowed: %s", writes[i]);
  }
  CHECK(count_rows(cat, "SELECT 1 FROM sources") == 4);
  CHECK(catalogue_schema_version(cat) == CATALOGUE_SCHEMA_VERSION);
  const char *p[1] = {"c.mp4"};
  int64_t n = 0;
  CHECK(catalogue_query(cat, "SELECT id FROM sources WHERE path = ?1", 1, p, NULL, NULL, &n) ==
            TB_OK &&
        n == 1);
  CHECK(catalogue_query(cat, "SELECT id FROM sources", 1, p, NULL, NULL, &n) == TB_ERR);
  CHECK(catalogue_query(cat, "SELECT nonsense FROM", 0, NULL, NULL, NULL, &n) == TB_ERR);
  catalogue_close(cat);
}

/* A run left 'running' by a process that died shows as 'interrupted' on the next open. */
static void test_reap(void) {
  catalogue *cat = catalogue_open(g_db, 0);
  CHECK(cat != NULL);
  if (!cat) return;
  int64_t mine = 0;
  char *argv[] = {"test", NULL};
  CHECK(catalogue_run_begin(cat, "self", 1, argv, &mine) == TB_OK);
  /* a fake row for a pid that does not exist, and one for a reused pid (ours, wrong start) */
  sqlite3 *db = catalogue_db(cat);
  sqlite3_stmt *s = NULL;
  CHECK(sqlite3_prepare_v2(db,
                           "INSERT INTO runs (stage, host, pid, pid_start, started, status)"
                           " SELECT 'ghost', host, ?1, ?2, started, 'running' FROM runs"
                           " WHERE id = ?3",
                           -1, &s, NULL) == SQLITE_OK);
  sqlite3_bind_int64(s, 1, 4194303 + 7); /* above pid_max: never a live process */
  sqlite3_bind_null(s, 2);
  sqlite3_bind_int64(s, 3, mine);
  CHECK(sqlite3_step(s) == SQLITE_DONE);
  sqlite3_reset(s);
  sqlite3_bind_int64(s, 1, (sqlite3_int64)getpid());
  sqlite3_bind_int64(s, 2, 1); /* started one tick after boot: not us */
  sqlite3_bind_int64(s, 3, mine);
  CHECK(sqlite3_step(s) == SQLITE_DONE);
  sqlite3_finalize(s);
  catalogue_close(cat);
  cat = catalogue_open(g_db, 0); /* reaps */
  CHECK(cat != NULL);
  if (!cat) return;
  CHECK(count_rows(cat, "SELECT 1 FROM runs WHERE stage = 'ghost' AND status = 'interrupted'"
                        " AND ended IS NOT NULL") == 2);
  CHECK(count_rows(cat, "SELECT 1 FROM runs WHERE stage = 'self' AND status = 'running'") == 1);
  int64_t n = -1;
  CHECK(catalogue_runs_reap(cat, &n) == TB_OK && n == 0);
  CHECK(catalogue_run_end(cat, mine, CATALOGUE_RUN_FAILED, "test error") == TB_OK);
  catalogue_close(cat);
}

static void test_workspace(void) {
  char ws[1100];
  snprintf(ws, sizeof ws, "%s/ws/nested", test_outdir());
  remove_db(fs_join((char[1200]){0}, 1200, ws, CATALOGUE_FILE_NAME));
  CHECK(strcmp(catalogue_workspace_dir("x"), "x") == 0);
  setenv("TURBO_WORKSPACE", ws, 1);
  CHECK(strcmp(catalogue_workspace_dir(NULL), ws) == 0);
  CHECK(strcmp(catalogue_workspace_dir(""), ws) == 0);
  catalogue *cat = catalogue_open_workspace(NULL, 0);
  CHECKF(cat != NULL, "open workspace: %s", err_get());
  if (cat) CHECK(strstr(catalogue_path(cat), "ws/nested/catalogue.db") != NULL);
  catalogue_close(cat);
  unsetenv("TURBO_WORKSPACE");
  CHECK(strcmp(catalogue_workspace_dir(NULL), "runs/default") == 0);
}

int main(void) {
  test_begin("test_catalogue");
  snprintf(g_db, sizeof g_db, "%s/catalogue.db", test_outdir());
  double t0 = time_now();
  test_schema_file();
  test_open_and_migrate();
  test_inserts();
  test_transactions();
  test_query();
  test_reap();
  test_workspace();
  log_info("test_catalogue: %.2f s", time_now() - t0);
  return test_finish();
}

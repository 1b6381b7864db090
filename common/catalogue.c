/* common/catalogue.c — see catalogue.h. */
#include "common/catalogue.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/log.h"

/* schemas/catalogue.sql, compiled in as a NUL-terminated string so that the file stays the one
 * source of the schema. The path is relative to the repository root, where make runs the
 * compiler. ELF assemblers (GNU as, clang's integrated one). A build that predates an edit of
 * the .sql file is caught by tests/test_catalogue (it compares this text with the file). */
__asm__(".pushsection .rodata\n"
        ".globl tb_catalogue_schema_sql\n"
        ".hidden tb_catalogue_schema_sql\n"
        ".type tb_catalogue_schema_sql, @object\n"
        "tb_catalogue_schema_sql:\n"
        ".incbin \"schemas/catalogue.sql\"\n"
        ".byte 0\n"
        ".popsection\n");
extern const char tb_catalogue_schema_sql[];

#define MIGRATION_MARK "-- @migration "

/* Prepared statements, prepared once per handle on first use. */
enum {
  ST_SOURCE_GET,
  ST_SOURCE_UPSERT,
  ST_SOURCE_REJECT,
  ST_SOURCE_LOOKUP,
  ST_SOURCE_CLIPS_DELETE,
  ST_SOURCE_CLIPS,
  ST_CLIP_UPSERT,
  ST_CLIP_GET,
  ST_STAT_SET,
  ST_STAT_GET,
  ST_STAT_ALL,
  ST_DATASET_ID,
  ST_DATASET_DELETE,
  ST_DATASET_INSERT,
  ST_DATASET_STATUS,
  ST_DATASET_LOOKUP,
  ST_MEMBER_ADD,
  ST_DATASET_CLIPS,
  ST_TENSOR_UPSERT,
  ST_TENSOR_FIND,
  ST_MODEL_UPSERT,
  ST_MODEL_LOOKUP,
  ST_CHECKPOINT_UPSERT,
  ST_CHECKPOINT_LATEST,
  ST_RUN_INSERT,
  ST_RUN_END,
  ST_RUN_RUNNING,
  ST_RUN_INTERRUPT,
  ST_METRIC_SET,
  ST_SCORE_INSERT,
  ST_SAMPLE_UPSERT,
  ST_SAMPLES_LIST,
  ST_EVAL_RUN_SET,
  ST_EVAL_RUN_FIND,
  ST_EVAL_VIDEO_PUT,
  ST_EVAL_VIDEO_GET,
  ST_SAVEPOINT,
  ST_RELEASE,
  ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_SOURCE_GET] = "SELECT id, size, mtime, checksum FROM sources WHERE path = ?1",
    [ST_SOURCE_UPSERT] =
        "INSERT INTO sources (path, size, mtime, checksum, container, codec, width, height, fps,"
        " frames, duration, status, reason, manifest_line, caption_long, caption_short, updated)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'ok', NULL, ?12, ?13, ?14, ?15)"
        " ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime = excluded.mtime,"
        " checksum = excluded.checksum, container = excluded.container, codec = excluded.codec,"
        " width = excluded.width, height = excluded.height, fps = excluded.fps,"
        " frames = excluded.frames, duration = excluded.duration, status = 'ok', reason = NULL,"
        " manifest_line = excluded.manifest_line, caption_long = excluded.caption_long,"
        " caption_short = excluded.caption_short, updated = excluded.updated"
        " RETURNING id",
    [ST_SOURCE_REJECT] =
        "UPDATE sources SET status = 'rejected', reason = ?2, updated = ?3 WHERE id = ?1",
    [ST_SOURCE_LOOKUP] =
        "SELECT id, path, size, mtime, checksum, container, codec, width, height, fps, frames,"
        " duration, manifest_line, caption_long, caption_short, status, reason"
        " FROM sources WHERE path = ?1",
    [ST_SOURCE_CLIPS_DELETE] = "DELETE FROM clips WHERE source_id = ?1",
    [ST_SOURCE_CLIPS] = "SELECT id FROM clips WHERE source_id = ?1 ORDER BY start_s, id",
    [ST_CLIP_UPSERT] =
        "INSERT INTO clips (source_id, start_s, end_s, fps, width, height, frames, caption_long,"
        " caption_short, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        " ON CONFLICT (source_id, start_s, end_s, fps, width, height) DO UPDATE SET"
        " frames = excluded.frames, caption_long = excluded.caption_long,"
        " caption_short = excluded.caption_short RETURNING id",
    [ST_CLIP_GET] =
        "SELECT c.id, c.source_id, c.start_s, c.end_s, c.fps, c.width, c.height, c.frames,"
        " coalesce(c.caption_long, s.caption_long), coalesce(c.caption_short, s.caption_short)"
        " FROM clips c JOIN sources s ON s.id = c.source_id WHERE c.id = ?1",
    [ST_STAT_SET] = "INSERT INTO clip_stats (clip_id, name, value) VALUES (?1, ?2, ?3)"
                    " ON CONFLICT (clip_id, name) DO UPDATE SET value = excluded.value",
    [ST_STAT_GET] = "SELECT value FROM clip_stats WHERE clip_id = ?1 AND name = ?2",
    [ST_STAT_ALL] = "SELECT clip_id, value FROM clip_stats WHERE name = ?1 ORDER BY clip_id",
    [ST_DATASET_ID] = "SELECT id FROM datasets WHERE name = ?1",
    [ST_DATASET_DELETE] = "DELETE FROM datasets WHERE id = ?1",
    [ST_DATASET_INSERT] = "INSERT INTO datasets (name, recipe, created, status, run_id)"
                          " VALUES (?1, ?2, ?3, 'building', ?4)",
    [ST_DATASET_STATUS] = "UPDATE datasets SET status = ?2 WHERE id = ?1",
    [ST_DATASET_LOOKUP] =
        "SELECT id, name, recipe, created, status, run_id,"
        " (SELECT count(*) FROM dataset_members m WHERE m.dataset_id = d.id)"
        " FROM datasets d WHERE name = ?1",
    [ST_MEMBER_ADD] = "INSERT INTO dataset_members (dataset_id, clip_id, subset, split)"
                      " VALUES (?1, ?2, ?3, ?4)"
                      " ON CONFLICT (dataset_id, clip_id, subset) DO UPDATE SET split = excluded.split",
    [ST_DATASET_CLIPS] = "SELECT DISTINCT clip_id FROM dataset_members WHERE dataset_id = ?1"
                         " AND (?2 IS NULL OR split = ?2) AND (?3 IS NULL OR subset = ?3)"
                         " ORDER BY clip_id",
    [ST_TENSOR_UPSERT] =
        "INSERT INTO tensors (kind, clip_id, dataset_id, model_id, variant, path, offset, nbytes,"
        " dtype, shape, checksum, created)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        " ON CONFLICT (kind, ifnull(clip_id, 0), ifnull(dataset_id, 0), ifnull(model_id, 0),"
        " variant) DO UPDATE SET path = excluded.path, offset = excluded.offset,"
        " nbytes = excluded.nbytes, dtype = excluded.dtype, shape = excluded.shape,"
        " checksum = excluded.checksum, created = excluded.created RETURNING id",
    [ST_TENSOR_FIND] =
        "SELECT id, kind, ifnull(clip_id, 0), ifnull(dataset_id, 0), ifnull(model_id, 0), variant,"
        " path, offset, nbytes, dtype, shape, checksum FROM tensors"
        " WHERE kind = ?1 AND ifnull(clip_id, 0) = ?2 AND ifnull(dataset_id, 0) = ?3"
        " AND (?4 < 0 OR ifnull(model_id, 0) = ?4) AND variant = ?5"
        " ORDER BY created DESC, id DESC LIMIT 1",
    [ST_MODEL_UPSERT] =
        "INSERT INTO models (name, family, config, run_id, created) VALUES (?1, ?2, ?3, ?4, ?5)"
        " ON CONFLICT (name) DO UPDATE SET family = excluded.family, config = excluded.config,"
        " run_id = coalesce(excluded.run_id, run_id) RETURNING id",
    [ST_MODEL_LOOKUP] = "SELECT id, name, family, config, run_id, created FROM models"
                        " WHERE name = ?1",
    [ST_CHECKPOINT_UPSERT] =
        "INSERT INTO checkpoints (model_id, step, path, checksum, run_id, created)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (model_id, step) DO UPDATE SET"
        " path = excluded.path, checksum = excluded.checksum, run_id = excluded.run_id,"
        " created = excluded.created RETURNING id",
    [ST_CHECKPOINT_LATEST] =
        "SELECT id, model_id, step, path, checksum, run_id, created FROM checkpoints"
        " WHERE model_id = ?1 ORDER BY step DESC LIMIT 1",
    [ST_RUN_INSERT] = "INSERT INTO runs (stage, args, host, pid, pid_start, started, status)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running')",
    [ST_RUN_END] = "UPDATE runs SET status = ?2, message = ?3, ended = ?4 WHERE id = ?1",
    [ST_RUN_RUNNING] = "SELECT id, pid, pid_start FROM runs WHERE status = 'running' AND host = ?1",
    [ST_RUN_INTERRUPT] = "UPDATE runs SET status = 'interrupted', ended = ?2,"
                         " message = 'process ended without recording an end'"
                         " WHERE id = ?1 AND status = 'running'",
    [ST_METRIC_SET] = "INSERT INTO metrics (run_id, step, name, value) VALUES (?1, ?2, ?3, ?4)"
                      " ON CONFLICT (run_id, name, step) DO UPDATE SET value = excluded.value",
    [ST_SCORE_INSERT] =
        "INSERT INTO scores (run_id, model_id, checkpoint_id, suite, dimension, prompt, clip_id,"
        " value, created, count, normalised, sample_id)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [ST_SAMPLE_UPSERT] =
        "INSERT INTO samples (model_id, checkpoint_id, suite, prompt_id, seed, steps, guidance,"
        " motion_scale, path, run_id, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        " ON CONFLICT (ifnull(model_id, 0), ifnull(checkpoint_id, 0), suite, prompt_id, seed,"
        " steps, guidance, motion_scale) DO UPDATE SET path = excluded.path,"
        " run_id = excluded.run_id, created = excluded.created RETURNING id",
    [ST_SAMPLES_LIST] =
        "SELECT id, ifnull(model_id, 0), ifnull(checkpoint_id, 0), suite, prompt_id, seed, steps,"
        " guidance, motion_scale, path, ifnull(run_id, 0), created FROM samples"
        " WHERE (?1 < 0 OR ifnull(model_id, 0) = ?1) AND (?2 < 0 OR ifnull(checkpoint_id, 0) = ?2)"
        " AND (?3 IS NULL OR suite = ?3) ORDER BY suite, prompt_id, seed, id",
    [ST_EVAL_RUN_SET] =
        "INSERT INTO eval_runs (run_id, label, input, suite, model_id, checkpoint_id, videos,"
        " results, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        " ON CONFLICT (run_id) DO UPDATE SET label = excluded.label, input = excluded.input,"
        " suite = excluded.suite, model_id = excluded.model_id,"
        " checkpoint_id = excluded.checkpoint_id, videos = excluded.videos,"
        " results = excluded.results, created = excluded.created",
    [ST_EVAL_RUN_FIND] =
        "SELECT run_id, label, input, suite, ifnull(model_id, 0), ifnull(checkpoint_id, 0),"
        " videos, results, created FROM eval_runs WHERE label = ?1 OR CAST(run_id AS TEXT) = ?1"
        " ORDER BY (label = ?1) DESC, created DESC, run_id DESC LIMIT 1",
    [ST_EVAL_VIDEO_PUT] =
        "INSERT INTO eval_videos (key, path, result, created) VALUES (?1, ?2, ?3, ?4)"
        " ON CONFLICT (key) DO UPDATE SET path = excluded.path, result = excluded.result,"
        " created = excluded.created",
    [ST_EVAL_VIDEO_GET] = "SELECT result FROM eval_videos WHERE key = ?1",
    /* nested transactions: prepared once, as helpers open one per call */
    [ST_SAVEPOINT] = "SAVEPOINT tb",
    [ST_RELEASE] = "RELEASE tb",
};

struct catalogue {
  sqlite3 *db;
  char *path;
  unsigned flags;
  int depth;   /* open catalogue_begin()s */
  int durable; /* the outermost transaction runs with synchronous=FULL */
  int in_query; /* catalogue_query is preparing: the authorizer applies its limits */
  sqlite3_stmt *st[ST_COUNT];
};

/* ---- small helpers --------------------------------------------------------------------------- */

static double now_epoch(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

static int db_err(catalogue *cat, const char *what) {
  return err_set("catalogue %s: %s: %s", cat->path, what, sqlite3_errmsg(cat->db));
}

/* Runs static SQL (no values). */
static int exec_sql(catalogue *cat, const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(cat->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    err_set("catalogue %s: %s: %s", cat->path, sql, msg ? msg : sqlite3_errmsg(cat->db));
    sqlite3_free(msg);
    return TB_ERR;
  }
  return TB_OK;
}

/* The prepared statement `id`, reset with its bindings cleared; NULL + err on failure. */
static sqlite3_stmt *stmt(catalogue *cat, int id) {
  sqlite3_stmt *s = cat->st[id];
  if (!s) {
    if (sqlite3_prepare_v3(cat->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) !=
        SQLITE_OK) {
      db_err(cat, "prepare");
      return NULL;
    }
    cat->st[id] = s;
  } else {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
  }
  return s;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v) {
  if (v)
    sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null(s, i);
}

/* An optional reference: 0 (or less) binds NULL. */
static void bind_ref(sqlite3_stmt *s, int i, int64_t id) {
  if (id > 0)
    sqlite3_bind_int64(s, i, id);
  else
    sqlite3_bind_null(s, i);
}

/* A probe value where 0 means unknown. */
static void bind_i64_or_null(sqlite3_stmt *s, int i, int64_t v) {
  if (v != 0)
    sqlite3_bind_int64(s, i, v);
  else
    sqlite3_bind_null(s, i);
}

static void bind_f64_or_null(sqlite3_stmt *s, int i, double v) {
  if (v != 0.0)
    sqlite3_bind_double(s, i, v);
  else
    sqlite3_bind_null(s, i);
}

static char *col_strdup(sqlite3_stmt *s, int i) {
  const unsigned char *t = sqlite3_column_text(s, i);
  return t ? xstrdup((const char *)t) : NULL;
}

/* Steps a statement that returns no rows (or whose rows are ignored). */
static int step_done(catalogue *cat, sqlite3_stmt *s, const char *what) {
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) {
    db_err(cat, what);
    sqlite3_reset(s);
    return TB_ERR;
  }
  sqlite3_reset(s);
  return TB_OK;
}

/* Steps a lookup that returns at most one row: 1 with the row ready to read (the caller then
 * resets the statement), 0 when there is none, TB_ERR on failure (both reset). */
static int step_row(catalogue *cat, sqlite3_stmt *s, const char *what) {
  int r = sqlite3_step(s);
  if (r == SQLITE_ROW) return 1;
  if (r != SQLITE_DONE) db_err(cat, what); /* before the reset, while the message is current */
  sqlite3_reset(s);
  return r == SQLITE_DONE ? 0 : TB_ERR;
}

/* Steps a statement that returns one integer (RETURNING id); *out gets it. */
static int step_id(catalogue *cat, sqlite3_stmt *s, const char *what, int64_t *out) {
  int rc = sqlite3_step(s);
  if (rc != SQLITE_ROW) {
    db_err(cat, what);
    sqlite3_reset(s);
    return TB_ERR;
  }
  int64_t id = sqlite3_column_int64(s, 0);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) {
    db_err(cat, what);
    sqlite3_reset(s);
    return TB_ERR;
  }
  sqlite3_reset(s);
  if (out) *out = id;
  return TB_OK;
}

/* Ends a write helper's own transaction: commit when rc is TB_OK, else roll back keeping the
 * first error message. Returns TB_OK only when committed. */
static int txn_end(catalogue *cat, int rc) {
  if (rc == TB_OK) return catalogue_commit(cat);
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", err_get());
  catalogue_rollback(cat);
  return err_set("%s", msg);
}

/* ---- schema and migrations ------------------------------------------------------------------- */

const char *catalogue_schema_text(void) { return tb_catalogue_schema_sql; }

typedef struct {
  int version;
  const char *start; /* the marker line */
  size_t len;
} migration;

/* Splits schema text into migrations at "-- @migration N:" lines. Returns the count (>= 1) or
 * TB_ERR when the numbers are not 1, 2, 3, … or none is found. */
static int migrations_parse(const char *text, migration *out, int cap) {
  int n = 0;
  const char *p = text;
  while (p && *p) {
    const char *line = p;
    const char *nl = strchr(p, '\n');
    p = nl ? nl + 1 : NULL;
    if (strncmp(line, MIGRATION_MARK, strlen(MIGRATION_MARK)) != 0) continue;
    char *end = NULL;
    long v = strtol(line + strlen(MIGRATION_MARK), &end, 10);
    if (end == line + strlen(MIGRATION_MARK) || *end != ':')
      return err_set("schema: bad migration line '%.60s' (want '-- @migration N: what')", line);
    if (n >= cap) return err_set("schema: more than %d migrations", cap);
    if (v != n + 1)
      return err_set("schema: migration %ld follows %d (numbers must be 1, 2, 3, ...)", v, n);
    if (n > 0) out[n - 1].len = (size_t)(line - out[n - 1].start);
    out[n].version = (int)v;
    out[n].start = line;
    out[n].len = strlen(line);
    n++;
  }
  if (n == 0) return err_set("schema: no '-- @migration 1:' line");
  return n;
}

static int user_version_get(catalogue *cat, int *v) {
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(cat->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
    return db_err(cat, "reading user_version");
  int rc = sqlite3_step(s);
  if (rc != SQLITE_ROW) {
    db_err(cat, "reading user_version");
    sqlite3_finalize(s);
    return TB_ERR;
  }
  *v = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  return TB_OK;
}

int catalogue_schema_version(catalogue *cat) {
  int v = 0;
  return user_version_get(cat, &v) == TB_OK ? v : TB_ERR;
}

#define MIGRATIONS_MAX 256

int catalogue_migrate(catalogue *cat, const char *schema_text, int *from, int *to) {
  int builtin = schema_text == NULL;
  if (builtin) schema_text = catalogue_schema_text();
  migration list[MIGRATIONS_MAX];
  int n = migrations_parse(schema_text, list, MIGRATIONS_MAX);
  if (n < 0) return TB_ERR;
  int latest = list[n - 1].version;
  TB_CHECKF(!builtin || latest == CATALOGUE_SCHEMA_VERSION,
            "schemas/catalogue.sql ends at migration %d but CATALOGUE_SCHEMA_VERSION is %d",
            latest, CATALOGUE_SCHEMA_VERSION);
  int v = 0;
  if (user_version_get(cat, &v) != TB_OK) return TB_ERR;
  if (from) *from = v;
  if (to) *to = v;
  if (v == latest) return TB_OK; /* the common case: no write lock taken */
  if (v > latest)
    return err_set("catalogue %s has schema version %d, this build knows up to %d: rebuild "
                   "turbo from a newer tree (or use another workspace)",
                   cat->path, v, latest);
  if (cat->flags & CATALOGUE_OPEN_READONLY)
    return err_set("catalogue %s has schema version %d < %d and is open read-only: run any "
                   "stage on this workspace once to migrate it",
                   cat->path, v, latest);
  if (cat->depth > 0) return err_set("catalogue_migrate: called inside a transaction");
  if (catalogue_begin(cat) != TB_OK) return TB_ERR;
  /* Another process may have migrated while we waited for the write lock. */
  if (user_version_get(cat, &v) != TB_OK) return txn_end(cat, TB_ERR);
  if (from) *from = v;
  int rc = TB_OK;
  for (int i = 0; i < n && rc == TB_OK; i++) {
    if (list[i].version <= v) continue;
    char *sql = xmalloc(list[i].len + 1);
    memcpy(sql, list[i].start, list[i].len);
    sql[list[i].len] = 0;
    char *msg = NULL;
    if (sqlite3_exec(cat->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
      rc = err_set("catalogue %s: migration %d failed: %s", cat->path, list[i].version,
                   msg ? msg : sqlite3_errmsg(cat->db));
      sqlite3_free(msg);
    }
    free(sql);
    if (rc == TB_OK) {
      /* PRAGMA takes no bound parameters; the value is a parsed integer, not outside text. */
      char pragma[64];
      snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", list[i].version);
      rc = exec_sql(cat, pragma);
    }
  }
  if (rc == TB_OK) {
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(cat->db, "PRAGMA foreign_key_check", -1, &s, NULL) != SQLITE_OK) {
      rc = db_err(cat, "foreign_key_check");
    } else {
      int r = sqlite3_step(s);
      if (r == SQLITE_ROW)
        rc = err_set("catalogue %s: after migration, table %s row %lld breaks a foreign key",
                     cat->path, (const char *)sqlite3_column_text(s, 0),
                     (long long)sqlite3_column_int64(s, 1));
      else if (r != SQLITE_DONE)
        rc = db_err(cat, "foreign_key_check");
      sqlite3_finalize(s);
    }
  }
  if (txn_end(cat, rc) != TB_OK) return TB_ERR;
  if (to) *to = latest;
  if (v < latest) log_debug("catalogue %s: migrated schema %d -> %d", cat->path, v, latest);
  return TB_OK;
}

static int query_authorizer(void *ctx, int action, const char *a, const char *b, const char *c,
                            const char *d);

/* ---- open / close ------------------------------------------------------------------------------ */

static int busy_ms(void) {
  const char *e = getenv("TURBO_CATALOGUE_BUSY_MS");
  if (e && *e) {
    long v = strtol(e, NULL, 10);
    if (v > 0 && v < INT_MAX) return (int)v;
  }
  return CATALOGUE_BUSY_MS_DEFAULT;
}

catalogue *catalogue_open(const char *path, unsigned flags) {
  if (!path || !*path) {
    err_set("catalogue_open: empty path");
    return NULL;
  }
  int ro = (flags & CATALOGUE_OPEN_READONLY) != 0;
  if (ro && !fs_exists(path)) {
    err_set("no catalogue at %s: run a stage (e.g. bin/curate) on this workspace first, or "
            "pass --workspace DIR",
            path);
    return NULL;
  }
  catalogue *cat = xcalloc(1, sizeof *cat);
  cat->path = xstrdup(path);
  cat->flags = flags;
  int oflags = (ro ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
               SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path, &cat->db, oflags, NULL) != SQLITE_OK) {
    if (cat->db)
      db_err(cat, "open");
    else
      err_set("catalogue %s: cannot open (out of memory)", path);
    catalogue_close(cat);
    return NULL;
  }
  sqlite3_extended_result_codes(cat->db, 1);
  sqlite3_busy_timeout(cat->db, busy_ms());
  /* Installed once: setting an authorizer expires every prepared statement. */
  sqlite3_set_authorizer(cat->db, query_authorizer, cat);
  if (exec_sql(cat, "PRAGMA foreign_keys = ON") != TB_OK) goto fail;
  if (ro) {
    if (exec_sql(cat, "PRAGMA query_only = ON") != TB_OK) goto fail;
  } else {
    /* journal_mode answers the mode in force: anything but "wal" (a file system without
     * shared memory, say) is an error rather than a silent fallback. */
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(cat->db, "PRAGMA journal_mode = WAL", -1, &s, NULL) != SQLITE_OK) {
      db_err(cat, "journal_mode");
      goto fail;
    }
    int rc = sqlite3_step(s);
    const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
    int is_wal = mode && strcmp(mode, "wal") == 0;
    if (!is_wal) {
      if (rc == SQLITE_ROW)
        err_set("catalogue %s: journal_mode is '%s', WAL needed (a local file system)", path,
                mode ? mode : "?");
      else
        db_err(cat, "journal_mode = WAL");
    }
    sqlite3_finalize(s);
    if (!is_wal) goto fail;
    if (exec_sql(cat, (flags & CATALOGUE_OPEN_SYNC_FULL) ? "PRAGMA synchronous = FULL"
                                                         : "PRAGMA synchronous = NORMAL") != TB_OK)
      goto fail;
  }
  if (catalogue_migrate(cat, NULL, NULL, NULL) != TB_OK) {
    /* A read-only view of a newer database still works for queries. */
    int v = 0;
    if (!(ro && user_version_get(cat, &v) == TB_OK && v > CATALOGUE_SCHEMA_VERSION)) goto fail;
    log_warn("%s", err_get());
    err_clear();
  }
  if (!ro && !(flags & CATALOGUE_OPEN_NO_REAP)) {
    int64_t n = 0;
    if (catalogue_runs_reap(cat, &n) != TB_OK) goto fail;
    if (n > 0) log_info("catalogue: %lld run(s) left 'running' by dead processes marked 'interrupted'",
                        (long long)n);
  }
  return cat;
fail: {
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", err_get());
  catalogue_close(cat);
  err_set("%s", msg);
  return NULL;
}
}

const char *catalogue_workspace_dir(const char *dir) {
  if (dir && *dir) return dir;
  const char *e = getenv("TURBO_WORKSPACE");
  if (e && *e) return e;
  return "runs/default";
}

catalogue *catalogue_open_workspace(const char *dir, unsigned flags) {
  const char *ws = catalogue_workspace_dir(dir);
  if (!(flags & CATALOGUE_OPEN_READONLY) && fs_mkdir_p(ws) != TB_OK) {
    err_wrap("workspace %s: ", ws);
    return NULL;
  }
  char path[4096];
  if (!fs_join(path, sizeof path, ws, CATALOGUE_FILE_NAME)) {
    err_set("workspace path too long: %s", ws);
    return NULL;
  }
  return catalogue_open(path, flags);
}

void catalogue_close(catalogue *cat) {
  if (!cat) return;
  if (cat->db && cat->depth > 0) {
    log_warn("catalogue %s: closed with an open transaction; rolled back", cat->path);
    if (!sqlite3_get_autocommit(cat->db)) sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
  }
  for (int i = 0; i < ST_COUNT; i++) sqlite3_finalize(cat->st[i]);
  if (cat->db) sqlite3_close(cat->db);
  free(cat->path);
  free(cat);
}

const char *catalogue_path(const catalogue *cat) { return cat->path; }
struct sqlite3 *catalogue_db(catalogue *cat) { return cat->db; }

/* ---- transactions ------------------------------------------------------------------------------ */

/* SQLite rolls a whole transaction back by itself after some errors (disk full, I/O); then
 * depth > 0 while the connection is in autocommit. */
static int txn_lost(catalogue *cat) { return cat->depth > 0 && sqlite3_get_autocommit(cat->db); }

static void sync_restore(catalogue *cat) {
  if (!cat->durable) return;
  cat->durable = 0;
  if (!(cat->flags & CATALOGUE_OPEN_SYNC_FULL))
    sqlite3_exec(cat->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
}

int catalogue_begin(catalogue *cat) {
  if (cat->depth == 0) {
    double t0 = time_now();
    if (exec_sql(cat, "BEGIN IMMEDIATE") != TB_OK) {
      int code = sqlite3_extended_errcode(cat->db) & 0xff;
      if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
        return err_wrap("waited %.1f s for another process's write transaction (raise "
                        "$TURBO_CATALOGUE_BUSY_MS, or look for a stuck stage with "
                        "'bin/catalogue runs'): ",
                        time_now() - t0);
      return TB_ERR;
    }
  } else {
    if (txn_lost(cat)) return err_set("catalogue %s: transaction was rolled back by an earlier "
                                      "error; roll back and start again",
                                      cat->path);
    sqlite3_stmt *s = stmt(cat, ST_SAVEPOINT);
    if (!s || step_done(cat, s, "SAVEPOINT") != TB_OK) return TB_ERR;
  }
  cat->depth++;
  return TB_OK;
}

int catalogue_begin_durable(catalogue *cat) {
  if (cat->depth > 0)
    return err_set("catalogue_begin_durable: a transaction is already open (durable ones must "
                   "be outermost)");
  if (exec_sql(cat, "PRAGMA synchronous = FULL") != TB_OK) return TB_ERR;
  cat->durable = 1;
  if (catalogue_begin(cat) != TB_OK) {
    sync_restore(cat);
    return TB_ERR;
  }
  return TB_OK;
}

int catalogue_commit(catalogue *cat) {
  if (cat->depth <= 0) return err_set("catalogue_commit: no open transaction");
  if (txn_lost(cat)) {
    cat->depth--;
    if (cat->depth == 0) sync_restore(cat);
    return err_set("catalogue %s: transaction was rolled back by an earlier error", cat->path);
  }
  if (cat->depth > 1) {
    sqlite3_stmt *s = stmt(cat, ST_RELEASE);
    if (!s || step_done(cat, s, "RELEASE") != TB_OK) {
      char msg[1024];
      snprintf(msg, sizeof msg, "%s", err_get());
      catalogue_rollback(cat);
      return err_set("%s", msg);
    }
    cat->depth--;
    return TB_OK;
  }
  int rc = exec_sql(cat, "COMMIT");
  if (rc != TB_OK && !sqlite3_get_autocommit(cat->db)) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", err_get());
    sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
    err_set("%s (rolled back)", msg);
  }
  cat->depth = 0;
  sync_restore(cat);
  return rc;
}

int catalogue_rollback(catalogue *cat) {
  if (cat->depth <= 0) return err_set("catalogue_rollback: no open transaction");
  if (txn_lost(cat)) {
    cat->depth--;
  } else if (cat->depth > 1) {
    /* ROLLBACK TO keeps the savepoint open; RELEASE closes it. */
    sqlite3_exec(cat->db, "ROLLBACK TO tb", NULL, NULL, NULL);
    sqlite3_exec(cat->db, "RELEASE tb", NULL, NULL, NULL);
    cat->depth--;
  } else {
    sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
    cat->depth = 0;
  }
  if (cat->depth == 0) sync_restore(cat);
  return TB_OK;
}

int catalogue_txn_depth(const catalogue *cat) { return cat->depth; }

/* ---- sources ------------------------------------------------------------------------------------ */

static int str_eq_null(const char *a, const char *b) {
  if (!a || !b) return a == b;
  return strcmp(a, b) == 0;
}

int catalogue_source_upsert(catalogue *cat, const catalogue_source *src, int64_t *id,
                            int *changed) {
  if (!src || !src->path || !*src->path) return err_set("catalogue_source_upsert: no path");
  if (catalogue_begin(cat) != TB_OK) return TB_ERR;
  int rc = TB_OK, is_changed = 1;
  sqlite3_stmt *s = stmt(cat, ST_SOURCE_GET);
  if (!s) return txn_end(cat, TB_ERR);
  bind_text(s, 1, src->path);
  int r = sqlite3_step(s);
  if (r == SQLITE_ROW) {
    const char *ck = (const char *)sqlite3_column_text(s, 3);
    is_changed = !(sqlite3_column_int64(s, 1) == src->size &&
                   sqlite3_column_int64(s, 2) == src->mtime && str_eq_null(ck, src->checksum));
  } else if (r != SQLITE_DONE) {
    rc = db_err(cat, "source lookup");
  }
  sqlite3_reset(s);
  if (rc == TB_OK) {
    s = stmt(cat, ST_SOURCE_UPSERT);
    if (!s) return txn_end(cat, TB_ERR);
    bind_text(s, 1, src->path);
    sqlite3_bind_int64(s, 2, src->size);
    sqlite3_bind_int64(s, 3, src->mtime);
    bind_text(s, 4, src->checksum);
    bind_text(s, 5, src->container);
    bind_text(s, 6, src->codec);
    bind_i64_or_null(s, 7, src->width);
    bind_i64_or_null(s, 8, src->height);
    bind_f64_or_null(s, 9, src->fps);
    bind_i64_or_null(s, 10, src->frames);
    bind_f64_or_null(s, 11, src->duration);
    bind_text(s, 12, src->manifest_line);
    bind_text(s, 13, src->caption_long);
    bind_text(s, 14, src->caption_short);
    sqlite3_bind_double(s, 15, now_epoch());
    rc = step_id(cat, s, "source upsert", id);
  }
  if (txn_end(cat, rc) != TB_OK) return TB_ERR;
  if (changed) *changed = is_changed;
  return TB_OK;
}

int catalogue_source_reject(catalogue *cat, int64_t source_id, const char *reason) {
  if (!reason || !*reason) return err_set("catalogue_source_reject: a reason is required");
  sqlite3_stmt *s = stmt(cat, ST_SOURCE_REJECT);
  if (!s) return TB_ERR;
  sqlite3_bind_int64(s, 1, source_id);
  bind_text(s, 2, reason);
  sqlite3_bind_double(s, 3, now_epoch());
  if (step_done(cat, s, "source reject") != TB_OK) return TB_ERR;
  if (sqlite3_changes(cat->db) != 1)
    return err_set("catalogue_source_reject: no source with id %lld", (long long)source_id);
  return TB_OK;
}

int catalogue_source_lookup(catalogue *cat, const char *path, catalogue_source *out) {
  sqlite3_stmt *s = stmt(cat, ST_SOURCE_LOOKUP);
  if (!s) return TB_ERR;
  bind_text(s, 1, path);
  int r = step_row(cat, s, "source lookup");
  if (r != 1) return r;
  memset(out, 0, sizeof *out);
  out->id = sqlite3_column_int64(s, 0);
  out->path = col_strdup(s, 1);
  out->size = sqlite3_column_int64(s, 2);
  out->mtime = sqlite3_column_int64(s, 3);
  out->checksum = col_strdup(s, 4);
  out->container = col_strdup(s, 5);
  out->codec = col_strdup(s, 6);
  out->width = sqlite3_column_int(s, 7);
  out->height = sqlite3_column_int(s, 8);
  out->fps = sqlite3_column_double(s, 9);
  out->frames = sqlite3_column_int64(s, 10);
  out->duration = sqlite3_column_double(s, 11);
  out->manifest_line = col_strdup(s, 12);
  out->caption_long = col_strdup(s, 13);
  out->caption_short = col_strdup(s, 14);
  const char *st = (const char *)sqlite3_column_text(s, 15);
  out->status = st && strcmp(st, "rejected") == 0 ? CATALOGUE_SOURCE_REJECTED : CATALOGUE_SOURCE_OK;
  out->reason = col_strdup(s, 16);
  sqlite3_reset(s);
  return 1;
}

int catalogue_source_clips_delete(catalogue *cat, int64_t source_id, int64_t *n) {
  if (catalogue_begin(cat) != TB_OK) return TB_ERR;
  sqlite3_stmt *s = stmt(cat, ST_SOURCE_CLIPS_DELETE);
  if (!s) return txn_end(cat, TB_ERR);
  sqlite3_bind_int64(s, 1, source_id);
  int rc = step_done(cat, s, "delete clips");
  int64_t count = sqlite3_changes64(cat->db);
  if (txn_end(cat, rc) != TB_OK) return TB_ERR;
  if (n) *n = count;
  return TB_OK;
}

void catalogue_source_clear(catalogue_source *s) {
  if (!s) return;
  free((char *)s->path);
  free((char *)s->checksum);
  free((char *)s->container);
  free((char *)s->codec);
  free((char *)s->manifest_line);
  free((char *)s->caption_long);
  free((char *)s->caption_short);
  free((char *)s->reason);
  memset(s, 0, sizeof *s);
}

/* ---- clips and statistics ------------------------------------------------------------------------ */

/* Collects the first column of every row as int64 into a growing array. */
static int collect_ids(catalogue *cat, sqlite3_stmt *s, int64_t **ids, int64_t *n) {
  int64_t cap = 0, len = 0;
  int64_t *a = NULL;
  int r;
  while ((r = sqlite3_step(s)) == SQLITE_ROW) {
    if (len == cap) {
      cap = cap ? 2 * cap : 64;
      a = xrealloc(a, (size_t)cap * sizeof *a);
    }
    a[len++] = sqlite3_column_int64(s, 0);
  }
  sqlite3_reset(s);
  if (r != SQLITE_DONE) {
    free(a);
    return db_err(cat, "query");
  }
  *ids = a;
  *n = len;
  return TB_OK;
}

int catalogue_clip_insert(catalogue *cat, const catalogue_clip *c, int64_t *id) {
  sqlite3_stmt *s = stmt(cat, ST_CLIP_UPSERT);
  if (!s) return TB_ERR;
  sqlite3_bind_int64(s, 1, c->source_id);
  sqlite3_bind_double(s, 2, c->start);
  sqlite3_bind_double(s, 3, c->end);
  sqlite3_bind_double(s, 4, c->fps);
  sqlite3_bind_int(s, 5, c->width);
  sqlite3_bind_int(s, 6, c->height);
  sqlite3_bind_int64(s, 7, c->frames);
  bind_text(s, 8, c->caption_long);
  bind_text(s, 9, c->caption_short);
  sqlite3_bind_double(s, 10, now_epoch());
  return step_id(cat, s, "clip insert", id);
}

int catalogue_clip_get(catalogue *cat, int64_t clip_id, catalogue_clip *out) {
  sqlite3_stmt *s = stmt(cat, ST_CLIP_GET);
  if (!s) return TB_ERR;
  sqlite3_bind_int64(s, 1, clip_id);
  int r = step_row(cat, s, "clip get");
  if (r != 1) return r;
  memset(out, 0, sizeof *out);
  out->id = sqlite3_column_int64(s, 0);
  out->source_id = sqlite3_column_int64(s, 1);
  out->start = sqlite3_column_double(s, 2);
  out->end = sqlite3_column_double(s, 3);
  out->fps = sqlite3_column_double(s, 4);
  out->width = sqlite3_column_int(s, 5);
  out->height = sqlite3_column_int(s, 6);
  out->frames = sqlite3_column_int64(s, 7);
  out->caption_long = col_strdup(s, 8);
  out->caption_short = col_strdup(s, 9);
  sqlite3_reset(s);
  return 1;
}

int catalogue_source_clips(catalogue *cat, int64_t source_id, int64_t **ids, int64_t *n) {
  sqlite3_stmt *s = stmt(cat, ST_SOURCE_CLIPS);
  if (!s) return TB_ERR;
  sqlite3_bind_int64(s, 1, source_id);
  return collect_ids(cat, s, ids, n);
}

void catalogue_clip_clear(catalogue_clip *c) {
  if (!c) return;
  free((char *)c->caption_long);
  free((char *)c->caption_short);
  memset(c, 0, sizeof *c);
}

static int stat_set_one(catalogue *cat, int64_t clip_id, const char *name, double value) {
  if (!name || !*name) return err_set("catalogue stat: empty name");
  sqlite3_stmt *s = stmt(cat, ST_STAT_SET);
  if (!s) return TB_ERR;
  sqlite3_bind_int64(s, 1, clip_id);
  bind_text(s, 2, name);
  sqlite3_bind_double(s, 3, value); /* NaN binds as NULL */
  return step_done(cat, s, "stat set");
}

int catalogue_stat_set(catalogue *cat, int64_t clip_id, const char *name, double value) {
  return stat_set_one(cat, clip_id, name, value);
}

int catalogue_stats_set(catalogue *cat, int64_t clip_id, int n, const char *const *names,
                        const double *values) {
  if (catalogue_begin(cat) != TB_OK) return TB_ERR;
  int rc = TB_OK;
  for (int i = 0; i < n && rc == TB_OK; i++) rc = stat_set_one(cat, clip_id, names[i], values[i]);
  return txn_end(cat, rc);
}

int catalogue_stat_get(catalogue *cat, int64_t clip_id, const char *name, double *value) {
  sqlite3_stmt *s = stmt(cat, ST_STAT_GET);
  if (!s) return TB_ERR;
  sqlite3_bind_int64(s, 1, clip_id);
  bind_text(s, 2, name);
  int r = sqlite3_step(s);
  if (r == SQLITE_ROW) {
    if (value) *value = sqlite3_column_double(s, 0);
    sqlite3_reset(s);
    return 1;
  }
  sqlite3_reset(s);
  if (r == SQLITE_DONE) return 0;
  return db_err(cat, "stat get");
}

int catalogue_stat_all(catalogue *cat, const char *name, int64_t **clip_ids, double **values,
                       int64_t *n) {
  sqlite3_stmt *s = stmt(cat, ST_STAT_ALL);
  if (!s) return TB_ERR;
  bind_text(s, 1, name);
  int64_t cap = 0, len = 0;
  int64_t *ids = NULL;
  double *vals = NULL;
  int r;
  while ((r = sqlite3_step(s)) == SQLITE_ROW) {
    if (len == cap) {
      cap = cap ? 2 * cap : 256;
      ids = xrealloc(ids, (size_t)cap * sizeof *ids);
      vals = xrealloc(vals, (size_t)cap * sizeof *vals);
    }
    ids[len] = sqlite3_column_int64(s, 0);
    vals[len] = sqlite3_column_double(s, 1);
    len++;
  }
  sqlite3_reset(s);
  if (r != SQLITE_DONE) {
    free(ids);
    free(vals);
    return db_err(cat, "stat all");
  }
  *clip_ids = ids;
  *values = vals;
  *n = len;
  return TB_OK;
}

/* ---- datasets -------------------------------------------------------------------------------------- */

int catalogue_dataset_create(catalogue *cat, const char *name, const char *recipe, int replace,
                             int64_t run_id, int64_t *id) {
  if (!name || !*name) return err_set("catalogue_dataset_create: empty name");
  if (catalogue_begin(cat) != TB_OK) return TB_ERR;
  int rc = TB_OK;
  sqlite3_stmt *s = stmt(cat, ST_DATASET_ID);
  if (!s) return txn_end(cat, TB_ERR);
  bind_text(s, 1, name);
  int r = sqlite3_step(s);
  int64_t old = r == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
  sqlite3_reset(s);
  if (r != SQLITE_ROW && r != SQLITE_DONE) rc = db_err(cat, "dataset lookup");
  if (rc == TB_OK && old > 0) {
    if (!replace) {
      rc = err_set("dataset '%s' exists (id %lld): choose another name or replace it", name,
                   (long long)old);
    } else {
      s = stmt(cat, ST_DATASET_DELETE);
      if (!s) return txn_end(cat, TB_ERR);
      sqlite3_bind_int64(s, 1, old);
      rc = step_done(cat, s, "dataset delete");
    }
  }
  if (rc == TB_OK) {
    s = stmt(cat, ST_DATASET_INSERT);
    if (!s) return txn_end(cat, TB_ERR);
    bind_text(s, 1, name);
    bind_text(s, 2, recipe);
    sqlite3_bind_double(s, 3, now_epoch());
    bind_ref(s, 4, run_id);
    rc = step_done(cat, s, "dataset insert");
    if (rc == TB_OK && id) *id = sqlite3_last_insert_rowid(cat->db);
  }
  return txn_end(cat, rc);
}

int catalogue_dataset_status_set(catalogue *cat, int64_t dataset_id, const char *status) {
  static const char *const ok[] = {"building", "ready", "failed", "stale"};
  int valid = 0;
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (status && strcmp(status, ok[i]) == 0) valid = 1;
  if (!valid)
    return err_set("dataset status '%s': want building, ready, failed or stale",
                   status ? status : "(null)");
  sqlite3_stmt *s = stmt(cat, ST_DATASET_STATUS);
  if (!s) return TB_ERR;
  sqlite3_bind_int64(s, 1, dataset_id);
  bind_text(s, 2, status);
  if (step_done(cat, s, "dataset status") != TB_OK) return TB_ERR;
  if (sqlite3_changes(cat->db) != 1)
    return err_set("catalogue_dataset_status_set: no dataset with id %lld", (long long)dataset_id);
  return TB_OK;
}

int catalogue_dataset_lookup(catalogue *cat, const char *name, catalogue_dataset *out) {
  sqlite3_stmt *s = stmt(cat, ST_DATASET_LOOKUP);
  if (!s) return TB_ERR;
  bind_text(s, 1, name);
  int r = step_row(cat, s, "dataset lookup");
  if (r != 1) return r;
  memset(out, 0, sizeof *out);
  out->id = sqlite3_column_int64(s, 0);
  out->name = col_strdup(s, 1);
  out->recipe = col_strdup(s, 2);
  out->created = sqlite3_column_double(s, 3);
  out->status = col_strdup(s, 4);
  out->run_id = sqlite3_column_int64(s, 5);
  out->members = sqlite3_column_int64(s, 6);
  sqlite3_reset(s);
  return 1;
}

void catalogue_dataset_clear(catalogue_dataset *d) {
  if (!d) return;
  free((char *)d->name);
  free((char *)d->recipe);
  free((char *)d->status);
  memset(d, 0, sizeof *d);
}

static const char *split_name(int split) {
  return split == CATALOGUE_SPLIT_TRAIN ? "train" : split == CATALOGUE_SPLIT_VAL ? "val" : NULL;
}

static int member_add_one(catalogue *cat, int64_t dataset_id, int64_t clip_id,
                          catalogue_split split, const char *subset) {
  const char *sp = split_name((int)split);
  if (!sp) return err_set("dataset member: split %d is neither train nor val", (int)split);
  sqlite3_stmt *s = stmt(cat, ST_MEMBER_ADD);
  if (!s) return TB_ERR;
  sqlite3_bind_int64(s, 1, dataset_id);
  sqlite3_bind_int64(s, 2, clip_id);
  bind_text(s, 3, subset ? subset : "");
  bind_text(s, 4, sp);
  return step_done(cat, s, "member add");
}

int catalogue_member_add(catalogue *cat, int64_t dataset_id, int64_t clip_id,
                         catalogue_split split, const char *subset) {
  return member_add_one(cat, dataset_id, clip_id, split, subset);
}

int catalogue_members_add(catalogue *cat, int64_t dataset_id, int64_t n,
                          const catalogue_member *m) {
  if (catalogue_begin(cat) != TB_OK) return TB_ERR;
  int rc = TB_OK;
  for (int64_t i = 0; i < n && rc == TB_OK; i++)
    rc = member_add_one(cat, dataset_id, m[i].clip_id, m[i].split, m[i].subset);
  return txn_end(cat, rc);
}

int catalogue_dataset_clips(catalogue *cat, int64_t dataset_id, int split, const char *subset,
                            int64_t **ids, int64_t *n) {
  sqlite3_stmt *s = stmt(cat, ST_DATASET_CLIPS);
  if (!s) return TB_ERR;
  sqlite3_bind_int64(s, 1, dataset_id);
  if (split >= 0) {
    const char *sp = split_name(split);
    if (!sp) return err_set("catalogue_dataset_clips: split %d is neither train nor val", split);
    bind_text(s, 2, sp);
  }
  if (subset) bind_text(s, 3, subset);
  return collect_ids(cat, s, ids, n);
}

/* ---- cached tensors ---------------------------------------------------------------------------- */

static char *shape_to_text(char *buf, size_t n, int ndim, const int64_t *shape) {
  size_t off = 0;
  off += (size_t)snprintf(buf + off, n - off, "[");
  for (int i = 0; i < ndim && off < n; i++)
    off += (size_t)snprintf(buf + off, n - off, "%s%lld", i ? "," : "", (long long)shape[i]);
  if (off < n) snprintf(buf + off, n - off, "]");
  return buf;
}

/* Parses "[a,b,c]" (spaces allowed); TB_ERR when malformed. */
static int shape_from_text(const char *t, int *ndim, int64_t *shape) {
  const char *p = t;
  int n = 0;
  if (!p) return err_set("tensor shape: NULL");
  while (isspace((unsigned char)*p)) p++;
  if (*p++ != '[') return err_set("tensor shape '%s': want [d0,d1,...]", t);
  while (isspace((unsigned char)*p)) p++;
  if (*p == ']') {
    *ndim = 0;
    return TB_OK;
  }
  for (;;) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || errno || v < 0 || n >= TENSOR_MAX_DIMS)
      return err_set("tensor shape '%s': want up to %d non-negative dims", t, TENSOR_MAX_DIMS);
    shape[n++] = v;
    p = end;
    while (isspace((unsigned char)*p)) p++;
    if (*p == ',') {
      p++;
      continue;
    }
    if (*p == ']') break;
    return err_set("tensor shape '%s': want [d0,d1,...]", t);
  }
  *ndim = n;
  return TB_OK;
}

int catalogue_tensor_insert(catalogue *cat, const catalogue_tensor *t, int64_t *id) {
  if (!t->kind || !*t->kind) return err_set("catalogue_tensor_insert: empty kind");
  if (!t->path || !*t->path) return err_set("catalogue_tensor_insert: empty path");
  if ((int)t->dtype < 0 || t->dtype >= DTYPE_COUNT)
    return err_set("catalogue_tensor_insert: bad dtype %d", (int)t->dtype);
  if (t->ndim < 0 || t->ndim > TENSOR_MAX_DIMS)
    return err_set("catalogue_tensor_insert: ndim %d outside 0..%d", t->ndim, TENSOR_MAX_DIMS);
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] < 0) return err_set("catalogue_tensor_insert: negative dim %d", i);
  if (t->offset < 0 || t->nbytes < 0)
    return err_set("catalogue_tensor_insert: negative offset or size");
  char shape[8 * (TENSOR_MAX_DIMS + 1) * 3];
  shape_to_text(shape, sizeof shape, t->ndim, t->shape);
  sqlite3_stmt *s = stmt(cat, ST_TENSOR_UPSERT);
  if (!s) return TB_ERR;
  bind_text(s, 1, t->kind);
  bind_ref(s, 2, t->clip_id);
  bind_ref(s, 3, t->dataset_id);
  bind_ref(s, 4, t->model_id);
  bind_text(s, 5, t->variant ? t->variant : "");
  bind_text(s, 6, t->path);
  sqlite3_bind_int64(s, 7, t->offset);
  sqlite3_bind_int64(s, 8, t->nbytes);
  bind_text(s, 9, dtype_name(t->dtype));
  bind_text(s, 10, shape);
  bind_text(s, 11, t->checksum);
  sqlite3_bind_double(s, 12, now_epoch());
  return step_id(cat, s, "tensor insert", id);
}

int catalogue_tensor_find(catalogue *cat, const char *kind, int64_t clip_id, int64_t dataset_id,
                          int64_t model_id, const char *variant, catalogue_tensor *out) {
  sqlite3_stmt *s = stmt(cat, ST_TENSOR_FIND);
  if (!s) return TB_ERR;
  bind_text(s, 1, kind);
  sqlite3_bind_int64(s, 2, clip_id > 0 ? clip_id : 0);
  sqlite3_bind_int64(s, 3, dataset_id > 0 ? dataset_id : 0);
  sqlite3_bind_int64(s, 4, model_id);
  bind_text(s, 5, variant ? variant : "");
  int r = step_row(cat, s, "tensor find");
  if (r != 1) return r;
  catalogue_tensor t;
  memset(&t, 0, sizeof t);
  t.id = sqlite3_column_int64(s, 0);
  t.clip_id = sqlite3_column_int64(s, 2);
  t.dataset_id = sqlite3_column_int64(s, 3);
  t.model_id = sqlite3_column_int64(s, 4);
  t.offset = sqlite3_column_int64(s, 7);
  t.nbytes = sqlite3_column_int64(s, 8);
  const char *dt = (const char *)sqlite3_column_text(s, 9);
  int dtv = dt ? dtype_from_name(dt) : -1;
  int rc = TB_OK;
  if (dtv < 0)
    rc = err_set("cached tensor %lld: unknown dtype '%s'", (long long)t.id, dt ? dt : "");
  else
    t.dtype = (dtype_t)dtv;
  if (rc == TB_OK && shape_from_text((const char *)sqlite3_column_text(s, 10), &t.ndim,
                                     t.shape) != TB_OK)
    rc = err_wrap("cached tensor %lld: ", (long long)t.id);
  if (rc == TB_OK) {
    t.kind = col_strdup(s, 1);
    t.variant = col_strdup(s, 5);
    t.path = col_strdup(s, 6);
    t.checksum = col_strdup(s, 11);
    *out = t;
  }
  sqlite3_reset(s);
  return rc == TB_OK ? 1 : TB_ERR;
}

void catalogue_tensor_clear(catalogue_tensor *t) {
  if (!t) return;
  free((char *)t->kind);
  free((char *)t->variant);
  free((char *)t->path);
  free((char *)t->checksum);
  memset(t, 0, sizeof *t);
}

/* ---- models and checkpoints ---------------------------------------------------------------------- */

int catalogue_model_upsert(catalogue *cat, const char *name, const char *family,
                           const char *config, int64_t run_id, int64_t *id) {
  if (!name || !*name || !family || !*family)
    return err_set("catalogue_model_upsert: name and family are required");
  sqlite3_stmt *s = stmt(cat, ST_MODEL_UPSERT);
  if (!s) return TB_ERR;
  bind_text(s, 1, name);
  bind_text(s, 2, family);
  bind_text(s, 3, config);
  bind_ref(s, 4, run_id);
  sqlite3_bind_double(s, 5, now_epoch());
  return step_id(cat, s, "model upsert", id);
}

int catalogue_model_lookup(catalogue *cat, const char *name, catalogue_model *out) {
  sqlite3_stmt *s = stmt(cat, ST_MODEL_LOOKUP);
  if (!s) return TB_ERR;
  bind_text(s, 1, name);
  int r = step_row(cat, s, "model lookup");
  if (r != 1) return r;
  memset(out, 0, sizeof *out);
  out->id = sqlite3_column_int64(s, 0);
  out->name = col_strdup(s, 1);
  out->family = col_strdup(s, 2);
  out->config = col_strdup(s, 3);
  out->run_id = sqlite3_column_int64(s, 4);
  out->created = sqlite3_column_double(s, 5);
  sqlite3_reset(s);
  return 1;
}

void catalogue_model_clear(catalogue_model *m) {
  if (!m) return;
  free((char *)m->name);
  free((char *)m->family);
  free((char *)m->config);
  memset(m, 0, sizeof *m);
}

int catalogue_checkpoint_insert(catalogue *cat, int64_t model_id, int64_t step,
                                const char *path, const char *checksum, int64_t run_id,
                                int64_t *id) {
  if (!path || !*path) return err_set("catalogue_checkpoint_insert: empty path");
  sqlite3_stmt *s = stmt(cat, ST_CHECKPOINT_UPSERT);
  if (!s) return TB_ERR;
  sqlite3_bind_int64(s, 1, model_id);
  sqlite3_bind_int64(s, 2, step);
  bind_text(s, 3, path);
  bind_text(s, 4, checksum);
  bind_ref(s, 5, run_id);
  sqlite3_bind_double(s, 6, now_epoch());
  return step_id(cat, s, "checkpoint insert", id);
}

int catalogue_checkpoint_latest(catalogue *cat, int64_t model_id, catalogue_checkpoint *out) {
  sqlite3_stmt *s = stmt(cat, ST_CHECKPOINT_LATEST);
  if (!s) return TB_ERR;
  sqlite3_bind_int64(s, 1, model_id);
  int r = step_row(cat, s, "checkpoint latest");
  if (r != 1) return r;
  memset(out, 0, sizeof *out);
  out->id = sqlite3_column_int64(s, 0);
  out->model_id = sqlite3_column_int64(s, 1);
  out->step = sqlite3_column_int64(s, 2);
  out->path = col_strdup(s, 3);
  out->checksum = col_strdup(s, 4);
  out->run_id = sqlite3_column_int64(s, 5);
  out->created = sqlite3_column_double(s, 6);
  sqlite3_reset(s);
  return 1;
}

void catalogue_checkpoint_clear(catalogue_checkpoint *c) {
  if (!c) return;
  free((char *)c->path);
  free((char *)c->checksum);
  memset(c, 0, sizeof *c);
}

/* ---- runs ------------------------------------------------------------------------------------------ */

const char *catalogue_run_status_name(catalogue_run_status s) {
  switch (s) {
  case CATALOGUE_RUN_RUNNING: return "running";
  case CATALOGUE_RUN_OK: return "ok";
  case CATALOGUE_RUN_FAILED: return "failed";
  case CATALOGUE_RUN_INTERRUPTED: return "interrupted";
  }
  return NULL;
}

/* Start time of a process in clock ticks after boot (field 22 of /proc/PID/stat) and its
 * state letter; TB_ERR when the process does not exist (or /proc is absent). */
static int proc_start_time(long pid, long long *start, char *state) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return TB_ERR;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  /* The command name (field 2) may hold spaces and ')'; fields resume after the last ')'. */
  char *p = strrchr(buf, ')');
  if (!p) return TB_ERR;
  p++;
  char st = 0;
  long long v = 0;
  /* after ')': state(3) ppid(4) … starttime(22): skip 18 numbers after the state */
  if (sscanf(p, " %c", &st) != 1) return TB_ERR;
  p += 2;
  for (int field = 4; field <= 22; field++) {
    while (*p == ' ') p++;
    char *end = NULL;
    v = strtoll(p, &end, 10);
    if (end == p) return TB_ERR;
    p = end;
  }
  if (start) *start = v;
  if (state) *state = st;
  return TB_OK;
}

static void host_name(char *buf, size_t n) {
  if (gethostname(buf, n) != 0) snprintf(buf, n, "unknown");
  buf[n - 1] = 0;
}

/* Appends argument `a`, single-quoted when it holds anything but safe characters. */
static void args_append(char **buf, size_t *len, size_t *cap, const char *a) {
  int plain = *a != 0;
  for (const char *p = a; *p; p++)
    if (!(isalnum((unsigned char)*p) || strchr("-_./=:,+@%", *p))) plain = 0;
  size_t need = *len + 4 * strlen(a) + 4;
  if (need > *cap) {
    *cap = need * 2;
    *buf = xrealloc(*buf, *cap);
  }
  char *o = *buf + *len;
  if (*len) *o++ = ' ';
  if (plain) {
    o += sprintf(o, "%s", a);
  } else {
    *o++ = '\'';
    for (const char *p = a; *p; p++) {
      if (*p == '\'') {
        memcpy(o, "'\\''", 4);
        o += 4;
      } else {
        *o++ = *p;
      }
    }
    *o++ = '\'';
    *o = 0;
  }
  *len = (size_t)(o - *buf);
}

int catalogue_run_begin(catalogue *cat, const char *stage, int argc, char **argv,
                        int64_t *run_id) {
  if (!stage || !*stage) return err_set("catalogue_run_begin: empty stage name");
  size_t len = 0, cap = 256;
  char *args = xmalloc(cap);
  args[0] = 0;
  for (int i = 0; i < argc; i++)
    if (argv[i]) args_append(&args, &len, &cap, argv[i]);
  char host[256];
  host_name(host, sizeof host);
  long long start = 0;
  int have_start = proc_start_time((long)getpid(), &start, NULL) == TB_OK;
  sqlite3_stmt *s = stmt(cat, ST_RUN_INSERT);
  if (!s) {
    free(args);
    return TB_ERR;
  }
  bind_text(s, 1, stage);
  bind_text(s, 2, args);
  bind_text(s, 3, host);
  sqlite3_bind_int64(s, 4, (int64_t)getpid());
  if (have_start) sqlite3_bind_int64(s, 5, start);
  sqlite3_bind_double(s, 6, now_epoch());
  int rc = step_done(cat, s, "run begin");
  free(args);
  if (rc == TB_OK && run_id) *run_id = sqlite3_last_insert_rowid(cat->db);
  return rc;
}

int catalogue_run_end(catalogue *cat, int64_t run_id, catalogue_run_status status,
                      const char *message) {
  const char *name = catalogue_run_status_name(status);
  if (!name || status == CATALOGUE_RUN_RUNNING)
    return err_set("catalogue_run_end: status %d is not an end status", (int)status);
  sqlite3_stmt *s = stmt(cat, ST_RUN_END);
  if (!s) return TB_ERR;
  sqlite3_bind_int64(s, 1, run_id);
  bind_text(s, 2, name);
  bind_text(s, 3, message);
  sqlite3_bind_double(s, 4, now_epoch());
  if (step_done(cat, s, "run end") != TB_OK) return TB_ERR;
  if (sqlite3_changes(cat->db) != 1)
    return err_set("catalogue_run_end: no run with id %lld", (long long)run_id);
  return TB_OK;
}

/* 1 when the process that recorded (pid, pid_start) is still alive. */
static int run_process_alive(long pid, int have_start, long long pid_start) {
  long long start = 0;
  char state = 0;
  if (proc_start_time(pid, &start, &state) == TB_OK) {
    if (state == 'Z' || state == 'X') return 0; /* exited, not yet reaped by its parent */
    if (have_start && start != pid_start) return 0; /* the pid was reused */
    return 1;
  }
  if (fs_is_dir("/proc/self")) return 0; /* /proc works and has no such process */
  return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

int catalogue_runs_reap(catalogue *cat, int64_t *n) {
  char host[256];
  host_name(host, sizeof host);
  sqlite3_stmt *s = stmt(cat, ST_RUN_RUNNING);
  if (!s) return TB_ERR;
  bind_text(s, 1, host);
  int64_t cap = 0, len = 0;
  int64_t *dead = NULL;
  int r;
  while ((r = sqlite3_step(s)) == SQLITE_ROW) {
    long pid = (long)sqlite3_column_int64(s, 1);
    int have_start = sqlite3_column_type(s, 2) != SQLITE_NULL;
    long long pid_start = sqlite3_column_int64(s, 2);
    if (run_process_alive(pid, have_start, pid_start)) continue;
    if (len == cap) {
      cap = cap ? cap * 2 : 16;
      dead = xrealloc(dead, (size_t)cap * sizeof *dead);
    }
    dead[len++] = sqlite3_column_int64(s, 0);
  }
  sqlite3_reset(s);
  if (r != SQLITE_DONE) {
    free(dead);
    return db_err(cat, "runs reap");
  }
  int64_t marked = 0;
  int rc = TB_OK;
  if (len > 0) {
    if (catalogue_begin(cat) != TB_OK) {
      free(dead);
      return TB_ERR;
    }
    for (int64_t i = 0; i < len && rc == TB_OK; i++) {
      s = stmt(cat, ST_RUN_INTERRUPT);
      if (!s) {
        rc = TB_ERR;
        break;
      }
      sqlite3_bind_int64(s, 1, dead[i]);
      sqlite3_bind_double(s, 2, now_epoch());
      rc = step_done(cat, s, "run interrupt");
      if (rc == TB_OK) marked += sqlite3_changes(cat->db);
    }
    rc = txn_end(cat, rc);
  }
  free(dead);
  if (rc == TB_OK && n) *n = marked;
  return rc;
}

/* ---- metrics and scores ------------------------------------------------------------------------- */

int catalogue_metric_insert(catalogue *cat, int64_t run_id, int64_t step, const char *name,
                            double value) {
  if (!name || !*name) return err_set("catalogue_metric_insert: empty name");
  sqlite3_stmt *s = stmt(cat, ST_METRIC_SET);
  if (!s) return TB_ERR;
  sqlite3_bind_int64(s, 1, run_id);
  sqlite3_bind_int64(s, 2, step);
  bind_text(s, 3, name);
  sqlite3_bind_double(s, 4, value);
  return step_done(cat, s, "metric insert");
}

int catalogue_metrics_insert(catalogue *cat, int64_t run_id, int64_t step, int n,
                             const char *const *names, const double *values) {
  if (catalogue_begin(cat) != TB_OK) return TB_ERR;
  int rc = TB_OK;
  for (int i = 0; i < n && rc == TB_OK; i++)
    rc = catalogue_metric_insert(cat, run_id, step, names[i], values[i]);
  return txn_end(cat, rc);
}

int catalogue_score_insert(catalogue *cat, const catalogue_score *sc, int64_t *id) {
  if (!sc->suite || !*sc->suite || !sc->dimension || !*sc->dimension)
    return err_set("catalogue_score_insert: suite and dimension are required");
  sqlite3_stmt *s = stmt(cat, ST_SCORE_INSERT);
  if (!s) return TB_ERR;
  bind_ref(s, 1, sc->run_id);
  bind_ref(s, 2, sc->model_id);
  bind_ref(s, 3, sc->checkpoint_id);
  bind_text(s, 4, sc->suite);
  bind_text(s, 5, sc->dimension);
  bind_text(s, 6, sc->prompt);
  bind_ref(s, 7, sc->clip_id);
  sqlite3_bind_double(s, 8, sc->value);
  sqlite3_bind_double(s, 9, now_epoch());
  bind_i64_or_null(s, 10, sc->count);
  if (sc->has_normalised)
    sqlite3_bind_double(s, 11, sc->normalised);
  else
    sqlite3_bind_null(s, 11);
  bind_ref(s, 12, sc->sample_id);
  if (step_done(cat, s, "score insert") != TB_OK) return TB_ERR;
  if (id) *id = sqlite3_last_insert_rowid(cat->db);
  return TB_OK;
}

int catalogue_scores_insert(catalogue *cat, int64_t n, const catalogue_score *sc) {
  if (catalogue_begin(cat) != TB_OK) return TB_ERR;
  int rc = TB_OK;
  for (int64_t i = 0; i < n && rc == TB_OK; i++) rc = catalogue_score_insert(cat, &sc[i], NULL);
  return txn_end(cat, rc);
}

/* ---- samples ------------------------------------------------------------------------------------ */

int catalogue_sample_insert(catalogue *cat, const catalogue_sample *smp, int64_t *id) {
  if (!smp->suite || !*smp->suite || !smp->prompt_id || !*smp->prompt_id || !smp->path ||
      !*smp->path)
    return err_set("catalogue_sample_insert: suite, prompt_id and path are required");
  sqlite3_stmt *s = stmt(cat, ST_SAMPLE_UPSERT);
  if (!s) return TB_ERR;
  bind_ref(s, 1, smp->model_id);
  bind_ref(s, 2, smp->checkpoint_id);
  bind_text(s, 3, smp->suite);
  bind_text(s, 4, smp->prompt_id);
  sqlite3_bind_int64(s, 5, smp->seed);
  sqlite3_bind_int64(s, 6, smp->steps);
  sqlite3_bind_double(s, 7, smp->guidance);
  sqlite3_bind_double(s, 8, smp->motion_scale);
  bind_text(s, 9, smp->path);
  bind_ref(s, 10, smp->run_id);
  sqlite3_bind_double(s, 11, now_epoch());
  return step_id(cat, s, "sample insert", id);
}

int catalogue_samples_list(catalogue *cat, int64_t model_id, int64_t checkpoint_id,
                           const char *suite, catalogue_sample **out, int64_t *n) {
  *out = NULL;
  *n = 0;
  sqlite3_stmt *s = stmt(cat, ST_SAMPLES_LIST);
  if (!s) return TB_ERR;
  sqlite3_bind_int64(s, 1, model_id);
  sqlite3_bind_int64(s, 2, checkpoint_id);
  bind_text(s, 3, suite);
  catalogue_sample *v = NULL;
  int64_t len = 0, cap = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (len == cap) {
      cap = cap ? 2 * cap : 64;
      v = xrealloc(v, (size_t)cap * sizeof *v);
    }
    catalogue_sample *e = &v[len++];
    memset(e, 0, sizeof *e);
    e->id = sqlite3_column_int64(s, 0);
    e->model_id = sqlite3_column_int64(s, 1);
    e->checkpoint_id = sqlite3_column_int64(s, 2);
    e->suite = col_strdup(s, 3);
    e->prompt_id = col_strdup(s, 4);
    e->seed = sqlite3_column_int64(s, 5);
    e->steps = sqlite3_column_int64(s, 6);
    e->guidance = sqlite3_column_double(s, 7);
    e->motion_scale = sqlite3_column_double(s, 8);
    e->path = col_strdup(s, 9);
    e->run_id = sqlite3_column_int64(s, 10);
    e->created = sqlite3_column_double(s, 11);
  }
  if (rc != SQLITE_DONE) {
    db_err(cat, "samples list");
    sqlite3_reset(s);
    catalogue_samples_free(v, len);
    return TB_ERR;
  }
  sqlite3_reset(s);
  *out = v;
  *n = len;
  return TB_OK;
}

void catalogue_samples_free(catalogue_sample *v, int64_t n) {
  if (!v) return;
  for (int64_t i = 0; i < n; i++) {
    free((char *)v[i].suite);
    free((char *)v[i].prompt_id);
    free((char *)v[i].path);
  }
  free(v);
}

/* ---- evaluation runs and per-video results ------------------------------------------------------- */

int catalogue_eval_run_set(catalogue *cat, const catalogue_eval_run *r) {
  if (r->run_id <= 0 || !r->label || !*r->label || !r->input)
    return err_set("catalogue_eval_run_set: run_id, label and input are required");
  sqlite3_stmt *s = stmt(cat, ST_EVAL_RUN_SET);
  if (!s) return TB_ERR;
  sqlite3_bind_int64(s, 1, r->run_id);
  bind_text(s, 2, r->label);
  bind_text(s, 3, r->input);
  bind_text(s, 4, r->suite);
  bind_ref(s, 5, r->model_id);
  bind_ref(s, 6, r->checkpoint_id);
  sqlite3_bind_int64(s, 7, r->videos);
  bind_text(s, 8, r->results);
  sqlite3_bind_double(s, 9, now_epoch());
  return step_done(cat, s, "eval run set");
}

int catalogue_eval_run_find(catalogue *cat, const char *label, catalogue_eval_run *out) {
  sqlite3_stmt *s = stmt(cat, ST_EVAL_RUN_FIND);
  if (!s) return TB_ERR;
  bind_text(s, 1, label);
  int r = step_row(cat, s, "eval run find");
  if (r != 1) return r;
  memset(out, 0, sizeof *out);
  out->run_id = sqlite3_column_int64(s, 0);
  out->label = col_strdup(s, 1);
  out->input = col_strdup(s, 2);
  out->suite = col_strdup(s, 3);
  out->model_id = sqlite3_column_int64(s, 4);
  out->checkpoint_id = sqlite3_column_int64(s, 5);
  out->videos = sqlite3_column_int64(s, 6);
  out->results = col_strdup(s, 7);
  out->created = sqlite3_column_double(s, 8);
  sqlite3_reset(s);
  return 1;
}

void catalogue_eval_run_clear(catalogue_eval_run *r) {
  if (!r) return;
  free((char *)r->label);
  free((char *)r->input);
  free((char *)r->suite);
  free((char *)r->results);
  memset(r, 0, sizeof *r);
}

int catalogue_eval_video_put(catalogue *cat, const char *key, const char *path,
                             const char *result) {
  if (!key || !*key || !path || !result)
    return err_set("catalogue_eval_video_put: key, path and result are required");
  sqlite3_stmt *s = stmt(cat, ST_EVAL_VIDEO_PUT);
  if (!s) return TB_ERR;
  bind_text(s, 1, key);
  bind_text(s, 2, path);
  bind_text(s, 3, result);
  sqlite3_bind_double(s, 4, now_epoch());
  return step_done(cat, s, "eval video put");
}

int catalogue_eval_video_get(catalogue *cat, const char *key, char **result) {
  *result = NULL;
  sqlite3_stmt *s = stmt(cat, ST_EVAL_VIDEO_GET);
  if (!s) return TB_ERR;
  bind_text(s, 1, key);
  int r = step_row(cat, s, "eval video get");
  if (r != 1) return r;
  *result = col_strdup(s, 0);
  sqlite3_reset(s);
  return *result ? 1 : 0;
}

/* ---- read-only queries ---------------------------------------------------------------------------- */

/* Refuses what sqlite3_stmt_readonly lets through but should not run from a query:
 * ATTACH/DETACH (they could create files) and transaction control. */
static int query_authorizer(void *ctx, int action, const char *a, const char *b, const char *c,
                            const char *d) {
  (void)a, (void)b, (void)c, (void)d;
  if (!((catalogue *)ctx)->in_query) return SQLITE_OK;
  switch (action) {
  case SQLITE_ATTACH:
  case SQLITE_DETACH:
  case SQLITE_TRANSACTION:
  case SQLITE_SAVEPOINT: return SQLITE_DENY;
  default: return SQLITE_OK;
  }
}

int catalogue_query(catalogue *cat, const char *sql, int nparams, const char *const *params,
                    catalogue_row_fn fn, void *ctx, int64_t *nrows) {
  if (!sql) return err_set("catalogue_query: no SQL");
  sqlite3_stmt *s = NULL;
  const char *tail = NULL;
  cat->in_query = 1;
  int prc = sqlite3_prepare_v2(cat->db, sql, -1, &s, &tail);
  cat->in_query = 0;
  if (prc != SQLITE_OK) return err_set("query: %s", sqlite3_errmsg(cat->db));
  if (!s) return err_set("query: empty SQL");
  while (tail && (isspace((unsigned char)*tail) || *tail == ';')) tail++;
  if (tail && *tail) {
    sqlite3_finalize(s);
    return err_set("query: only one statement at a time (extra text: '%.40s')", tail);
  }
  if (!sqlite3_stmt_readonly(s)) {
    sqlite3_finalize(s);
    return err_set("query: refused, the statement could change the catalogue (queries are "
                   "read-only; stages write through their own functions)");
  }
  int want = sqlite3_bind_parameter_count(s);
  if (nparams > want) {
    sqlite3_finalize(s);
    return err_set("query: %d parameters given, the statement has %d", nparams, want);
  }
  for (int i = 0; i < nparams; i++) bind_text(s, i + 1, params[i]);
  int ncol = sqlite3_column_count(s);
  const char **names = xcalloc((size_t)ncol + 1, sizeof *names);
  const char **vals = xcalloc((size_t)ncol + 1, sizeof *vals);
  for (int i = 0; i < ncol; i++) names[i] = sqlite3_column_name(s, i);
  int64_t rows = 0;
  int r, rc = TB_OK;
  while ((r = sqlite3_step(s)) == SQLITE_ROW) {
    rows++;
    if (!fn) continue;
    for (int i = 0; i < ncol; i++) vals[i] = (const char *)sqlite3_column_text(s, i);
    if (fn(ctx, ncol, names, vals) != 0) {
      r = SQLITE_DONE;
      break;
    }
  }
  if (r != SQLITE_DONE) rc = err_set("query: %s", sqlite3_errmsg(cat->db));
  free(names);
  free(vals);
  sqlite3_finalize(s);
  if (nrows) *nrows = rows;
  return rc;
}

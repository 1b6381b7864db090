/* common/catalogue.h — the workspace catalogue: one SQLite database per workspace
 * (DIR/catalogue.db) that tracks source videos, clips and their statistics, datasets and their
 * members, cached tensors, models and checkpoints, stage runs, training metrics and evaluation
 * scores. The tables are defined in schemas/catalogue.sql (compiled into this module).
 *
 *   catalogue *cat = catalogue_open_workspace(ws, 0);      // creates and migrates when needed
 *   if (!cat) { log_error("%s", err_get()); return 1; }
 *   int64_t run; catalogue_run_begin(cat, "curate", argc, argv, &run);
 *   catalogue_begin(cat);                                   // BEGIN IMMEDIATE
 *   ... catalogue_clip_insert(cat, &clip, &clip_id); catalogue_stats_set(...) ...
 *   if (catalogue_commit(cat) != TB_OK) ...                 // rolled back on failure
 *   catalogue_run_end(cat, run, CATALOGUE_RUN_OK, NULL);
 *   catalogue_close(cat);
 *
 * Conventions
 * - Every function returns TB_OK (0) or TB_ERR (-1) with a message in err_get(), unless said
 *   otherwise. Lookups return 1 (found), 0 (not found, *out untouched) or TB_ERR.
 * - Ids are SQLite rowids (> 0). An optional reference is passed as 0 ("none"; NULL in SQL).
 * - Strings passed in are copied; the caller keeps ownership. Strings filled into an output
 *   struct by a lookup are heap copies owned by that struct: release them with the struct's
 *   _clear function (which also zeroes it). A NULL string in an input struct stores SQL NULL.
 * - Connection settings: WAL journal, busy_timeout (10 s; $TURBO_CATALOGUE_BUSY_MS overrides),
 *   foreign_keys=ON, synchronous=NORMAL (a commit survives a process crash, and a power loss
 *   may lose the last commits but never corrupts). CATALOGUE_OPEN_SYNC_FULL or
 *   catalogue_begin_durable() make commits survive power loss too.
 * - Writes: every function that changes rows runs inside a transaction. Outside one, it opens
 *   its own (BEGIN IMMEDIATE, so waiting writers queue on the busy timeout instead of failing
 *   with SQLITE_BUSY); inside the caller's catalogue_begin() it joins that transaction as a
 *   savepoint. Wrap loops of inserts in catalogue_begin/commit: one commit per batch is several
 *   times faster than one per row (about 6x for curate-like rows), and all-or-nothing.
 * - Processes: a handle belongs to one thread of one process. Never use a handle across
 *   fork(): open one per worker process after the fork. Many processes may write at once.
 */
#ifndef TURBO_CATALOGUE_H
#define TURBO_CATALOGUE_H

#include <stddef.h>
#include <stdint.h>

#include "common/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The schema version this build writes (PRAGMA user_version after migration). */
#define CATALOGUE_SCHEMA_VERSION 2
/* File name inside a workspace folder. */
#define CATALOGUE_FILE_NAME "catalogue.db"
/* Default busy timeout in milliseconds: how long a writer waits for another's commit. */
#define CATALOGUE_BUSY_MS_DEFAULT 10000

typedef struct catalogue catalogue;

/* ---- open / close ------------------------------------------------------------------------ */

enum {
  CATALOGUE_OPEN_READONLY = 1 << 0,  /* SQLITE_OPEN_READONLY; no create, no migration, no reap */
  CATALOGUE_OPEN_SYNC_FULL = 1 << 1, /* synchronous=FULL for every commit */
  CATALOGUE_OPEN_NO_REAP = 1 << 2,   /* do not mark dead 'running' runs as 'interrupted' */
};

/* Opens (creating when missing, unless READONLY) the catalogue at `path`, applies pending
 * migrations in one transaction, and (writable opens) marks runs left 'running' by a dead
 * process of this host as 'interrupted'. Returns NULL with err_get() set on failure, e.g. a
 * missing file in READONLY mode or a database newer than this build (writable opens only).
 * Free with catalogue_close. */
catalogue *catalogue_open(const char *path, unsigned flags);
/* The workspace folder: `dir` when non-NULL and non-empty, else $TURBO_WORKSPACE, else
 * "runs/default". Returns a static or caller-owned string; never NULL. */
const char *catalogue_workspace_dir(const char *dir);
/* Opens DIR/catalogue.db where DIR = catalogue_workspace_dir(dir); creates DIR when writable.
 * NULL + err_get() on failure. */
catalogue *catalogue_open_workspace(const char *dir, unsigned flags);
/* Closes the handle; rolls back an open transaction (with a warning). NULL is a no-op. */
void catalogue_close(catalogue *cat);

/* The file path the handle was opened with (owned by the handle). */
const char *catalogue_path(const catalogue *cat);
/* PRAGMA user_version of the open database, or TB_ERR. */
int catalogue_schema_version(catalogue *cat);
/* The schema text compiled into this build (schemas/catalogue.sql); static, NUL-terminated. */
const char *catalogue_schema_text(void);
/* Applies the migrations of `schema_text` (NULL = catalogue_schema_text()) whose number is
 * above the database's user_version, in order, in one BEGIN IMMEDIATE transaction that also
 * runs PRAGMA foreign_key_check; any failure rolls all of them back. catalogue_open calls it;
 * tests pass a text with extra migrations. *from / *to (may be NULL) get the versions before
 * and after. TB_ERR for a malformed text (numbers not 1, 2, 3, …), a failing step, or a
 * database whose version is above the text's last migration. */
int catalogue_migrate(catalogue *cat, const char *schema_text, int *from, int *to);
/* The underlying connection, for what this API lacks. Use prepared statements with bound
 * values only, and catalogue_begin/commit for transactions. Owned by the handle. */
struct sqlite3 *catalogue_db(catalogue *cat);

/* ---- transactions -------------------------------------------------------------------------- */

/* Outermost call: BEGIN IMMEDIATE (takes the write lock now, waiting up to the busy timeout);
 * nested calls open a savepoint. Every begin is matched by one commit or rollback. */
int catalogue_begin(catalogue *cat);
/* As catalogue_begin, but this transaction's COMMIT is synced to disk (synchronous=FULL) so it
 * survives power loss. Only as the outermost transaction: TB_ERR when one is already open. */
int catalogue_begin_durable(catalogue *cat);
/* Outermost: COMMIT (on failure the transaction is rolled back and TB_ERR returned); nested:
 * releases the savepoint into the enclosing transaction. */
int catalogue_commit(catalogue *cat);
/* Outermost: ROLLBACK; nested: undoes the changes since the matching begin (the enclosing
 * transaction stays open). Returns TB_ERR only when no transaction is open. */
int catalogue_rollback(catalogue *cat);
/* Depth of open begins (0 = autocommit). */
int catalogue_txn_depth(const catalogue *cat);

/* ---- source videos -------------------------------------------------------------------------- */

typedef enum { CATALOGUE_SOURCE_OK = 0, CATALOGUE_SOURCE_REJECTED = 1 } catalogue_source_status;

typedef struct {
  int64_t id;                /* out */
  const char *path;          /* key: as given in the manifest (unique) */
  int64_t size;              /* bytes */
  int64_t mtime;             /* seconds since the epoch */
  const char *checksum;      /* content checksum as hex text (e.g. checksum64 as %016llx) */
  /* probe results; 0 / NULL when unknown (e.g. the probe failed) */
  const char *container;     /* "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", … */
  const char *codec;         /* "h264", … */
  int width, height;         /* pixels */
  double fps;                /* frames per second */
  int64_t frames;            /* frame count */
  double duration;           /* seconds */
  /* where it came from */
  const char *manifest_line; /* the raw manifest line (CSV row or JSON object) */
  const char *caption_long;
  const char *caption_short;
  /* out: status and the reason a source was rejected (NULL when ok) */
  catalogue_source_status status;
  const char *reason;
} catalogue_source;

/* Inserts or updates the source with s->path. *id gets its id. *changed (may be NULL) is 1 when
 * the row is new or its size, mtime or checksum differ from the stored ones — the clips made
 * from the old content are then stale (see catalogue_source_clips_delete) — and 0 when the
 * stored row already describes this file. Every upsert sets status ok and clears the reason;
 * probe and caption fields are overwritten with what s holds. */
int catalogue_source_upsert(catalogue *cat, const catalogue_source *s, int64_t *id,
                            int *changed);
/* Marks a source rejected with a reason such as "probe: moov atom not found" or
 * "duration 0.4 s < 1 s". TB_ERR when the id does not exist. */
int catalogue_source_reject(catalogue *cat, int64_t source_id, const char *reason);
/* Looks a source up by path. 1 found (out filled; free with catalogue_source_clear), 0 not. */
int catalogue_source_lookup(catalogue *cat, const char *path, catalogue_source *out);
/* Deletes every clip of the source (cascading to their statistics, dataset memberships and
 * cached tensors; datasets that lose members become 'stale'). *n (may be NULL) gets the count. */
int catalogue_source_clips_delete(catalogue *cat, int64_t source_id, int64_t *n);
void catalogue_source_clear(catalogue_source *s);

/* ---- clips and their statistics ------------------------------------------------------------ */

typedef struct {
  int64_t id;                /* out */
  int64_t source_id;
  double start, end;         /* seconds in the source */
  double fps;                /* target frame rate */
  int width, height;         /* target size in pixels */
  int64_t frames;            /* frames in the clip at the target fps */
  /* captions; NULL stores NULL, and lookups then return the source's captions */
  const char *caption_long;
  const char *caption_short;
} catalogue_clip;

/* Inserts a clip; the key is (source_id, start, end, fps, width, height): inserting the same
 * key again updates frames/captions and returns the existing id (reruns are idempotent). */
int catalogue_clip_insert(catalogue *cat, const catalogue_clip *clip, int64_t *id);
/* Looks a clip up by id, captions resolved against its source. 1 found, 0 not, TB_ERR. Free
 * with catalogue_clip_clear. */
int catalogue_clip_get(catalogue *cat, int64_t clip_id, catalogue_clip *out);
/* Ids of the source's clips in start order; *ids is malloc'd (caller frees), *n its length. */
int catalogue_source_clips(catalogue *cat, int64_t source_id, int64_t **ids, int64_t *n);
void catalogue_clip_clear(catalogue_clip *clip);

/* Statistics are (clip, name, value) rows, so curation adds new ones without a migration.
 * Names are short identifiers: "motion_mag", "flicker", "black_frac", "aesthetic", … */
int catalogue_stat_set(catalogue *cat, int64_t clip_id, const char *name, double value);
/* Sets n statistics of one clip in one transaction (inserting or replacing). */
int catalogue_stats_set(catalogue *cat, int64_t clip_id, int n, const char *const *names,
                        const double *values);
/* 1 found (*value set), 0 not found, TB_ERR. */
int catalogue_stat_get(catalogue *cat, int64_t clip_id, const char *name, double *value);
/* Every clip's value of one statistic, ordered by clip id: *clip_ids and *values are malloc'd
 * (caller frees both; NULL when *n is 0). For thresholds and percentiles over a corpus. */
int catalogue_stat_all(catalogue *cat, const char *name, int64_t **clip_ids, double **values,
                       int64_t *n);

/* ---- datasets and membership --------------------------------------------------------------- */

typedef enum { CATALOGUE_SPLIT_TRAIN = 0, CATALOGUE_SPLIT_VAL = 1 } catalogue_split;

typedef struct {
  int64_t id;
  const char *name;
  const char *recipe;        /* the recipe text that selected the clips (filters, mixture) */
  double created;            /* seconds since the epoch */
  const char *status;        /* "building", "ready", "failed", "stale" */
  int64_t run_id;            /* the run that built it, 0 when unknown */
  int64_t members;           /* number of member rows */
} catalogue_dataset;

/* Creates dataset `name` with status 'building'. When it exists: replace=0 returns TB_ERR
 * ("dataset NAME exists"); replace=1 deletes it with its members and cached tensors and
 * creates it anew, in one transaction. run_id may be 0. *id gets the new id. */
int catalogue_dataset_create(catalogue *cat, const char *name, const char *recipe, int replace,
                             int64_t run_id, int64_t *id);
/* Sets the status: "building", "ready", "failed" or "stale" (others: TB_ERR). */
int catalogue_dataset_status_set(catalogue *cat, int64_t dataset_id, const char *status);
/* 1 found (free with catalogue_dataset_clear), 0 not, TB_ERR. */
int catalogue_dataset_lookup(catalogue *cat, const char *name, catalogue_dataset *out);
void catalogue_dataset_clear(catalogue_dataset *d);

typedef struct {
  int64_t clip_id;
  catalogue_split split;
  const char *subset;        /* "distill", "reward", …; NULL or "" for none */
} catalogue_member;

/* Adds a clip to a dataset. The key is (dataset, clip, subset): one clip may be in several
 * subsets; adding the same key again updates the split. */
int catalogue_member_add(catalogue *cat, int64_t dataset_id, int64_t clip_id,
                         catalogue_split split, const char *subset);
/* Adds n members in one transaction. */
int catalogue_members_add(catalogue *cat, int64_t dataset_id, int64_t n,
                          const catalogue_member *members);
/* Clip ids of a dataset, ascending, filtered by split (-1 = any) and subset (NULL = any).
 * *ids is malloc'd (caller frees; NULL when *n is 0). */
int catalogue_dataset_clips(catalogue *cat, int64_t dataset_id, int split, const char *subset,
                            int64_t **ids, int64_t *n);

/* ---- cached tensors ------------------------------------------------------------------------ */

/* Kinds in use: "frames" (decoded clip, U8), "latent", "text_emb", "motion_ref",
 * "guidance_score", "teacher_out". Any short identifier is accepted. */
typedef struct {
  int64_t id;                /* out */
  const char *kind;
  int64_t clip_id;           /* the clip it belongs to, or 0 */
  int64_t dataset_id;        /* or the dataset, or 0 */
  int64_t model_id;          /* the model that made it, 0 when none (e.g. decoded frames) */
  const char *variant;       /* distinguishes several of one kind: "long"/"short" caption,
                                "n=37" solver index; NULL or "" for none */
  const char *path;          /* file, relative to the workspace folder */
  int64_t offset;            /* byte offset of the tensor in the file */
  int64_t nbytes;            /* byte length */
  dtype_t dtype;
  int ndim;
  int64_t shape[TENSOR_MAX_DIMS]; /* stored as text "[1,16,4,16,16]" */
  const char *checksum;      /* hex text of the bytes' checksum */
} catalogue_tensor;

/* Records a cached tensor. The key is (kind, clip, dataset, model, variant): a second insert
 * with the same key replaces the first (the newer file wins). TB_ERR on a bad ndim/dtype or an
 * unknown clip/dataset/model id. *id (may be NULL) gets the id. */
int catalogue_tensor_insert(catalogue *cat, const catalogue_tensor *t, int64_t *id);
/* Finds the cached tensor of `kind` for clip_id / dataset_id (0 = none) made by model_id
 * (0 = none; -1 = any model, newest first) with `variant` (NULL = ""). 1 found (free with
 * catalogue_tensor_clear), 0 not, TB_ERR (also for a stored shape that does not parse). */
int catalogue_tensor_find(catalogue *cat, const char *kind, int64_t clip_id, int64_t dataset_id,
                          int64_t model_id, const char *variant, catalogue_tensor *out);
void catalogue_tensor_clear(catalogue_tensor *t);

/* ---- models and checkpoints ---------------------------------------------------------------- */

typedef struct {
  int64_t id;
  const char *name;          /* unique: "vae-64", "teacher-unet", "student-v2", "reward-clip" */
  const char *family;        /* "vae", "unet", "student", "reward-image-text", … */
  const char *config;        /* JSON or key=value text; NULL allowed */
  int64_t run_id;            /* the run that made it, 0 when unknown */
  double created;
} catalogue_model;

/* Inserts the model or, when the name exists, updates family/config (and run_id when non-zero)
 * and returns the existing id. */
int catalogue_model_upsert(catalogue *cat, const char *name, const char *family,
                           const char *config, int64_t run_id, int64_t *id);
/* 1 found (free with catalogue_model_clear), 0 not, TB_ERR. */
int catalogue_model_lookup(catalogue *cat, const char *name, catalogue_model *out);
void catalogue_model_clear(catalogue_model *m);

typedef struct {
  int64_t id;
  int64_t model_id;
  int64_t step;              /* training step */
  const char *path;          /* safetensors file, relative to the workspace folder */
  const char *checksum;
  int64_t run_id;            /* 0 when unknown */
  double created;
} catalogue_checkpoint;

/* Records a checkpoint; the key is (model, step): the same key again replaces path/checksum.
 * *id (may be NULL) gets the id. */
int catalogue_checkpoint_insert(catalogue *cat, int64_t model_id, int64_t step,
                                const char *path, const char *checksum, int64_t run_id,
                                int64_t *id);
/* The model's checkpoint with the highest step. 1 found (free with
 * catalogue_checkpoint_clear), 0 none, TB_ERR. */
int catalogue_checkpoint_latest(catalogue *cat, int64_t model_id, catalogue_checkpoint *out);
void catalogue_checkpoint_clear(catalogue_checkpoint *c);

/* ---- stage runs ------------------------------------------------------------------------------ */

typedef enum {
  CATALOGUE_RUN_RUNNING = 0,
  CATALOGUE_RUN_OK,
  CATALOGUE_RUN_FAILED,
  CATALOGUE_RUN_INTERRUPTED,
} catalogue_run_status;

/* "running", "ok", "failed", "interrupted"; NULL for an out-of-range value. */
const char *catalogue_run_status_name(catalogue_run_status s);

/* Records the start of a run: stage name, argv joined with spaces (arguments holding spaces
 * or quotes are single-quoted), host name, pid, start time; status 'running'. */
int catalogue_run_begin(catalogue *cat, const char *stage, int argc, char **argv,
                        int64_t *run_id);
/* Records the end: status (not RUNNING) and an optional message (the error for 'failed'). */
int catalogue_run_end(catalogue *cat, int64_t run_id, catalogue_run_status status,
                      const char *message);
/* Marks every 'running' run of this host whose process is gone (or whose pid now belongs to a
 * newer process) as 'interrupted'. catalogue_open does this on writable opens. *n (may be
 * NULL) gets the number of runs marked. */
int catalogue_runs_reap(catalogue *cat, int64_t *n);

/* ---- training metrics and evaluation scores ------------------------------------------------- */

/* One (run, step, name, value) row; the same (run, step, name) again replaces the value. */
int catalogue_metric_insert(catalogue *cat, int64_t run_id, int64_t step, const char *name,
                            double value);
/* n metrics of one step in one transaction. */
int catalogue_metrics_insert(catalogue *cat, int64_t run_id, int64_t step, int n,
                             const char *const *names, const double *values);

typedef struct {
  int64_t run_id;            /* the eval run, 0 when unknown */
  int64_t model_id;          /* the model scored, 0 when unknown */
  int64_t checkpoint_id;     /* 0 when unknown */
  const char *suite;         /* "vbench", "compbench" */
  const char *dimension;     /* "subject_consistency", "total", "numeracy", … */
  const char *prompt;        /* the prompt scored, NULL for a suite-level aggregate */
  int64_t clip_id;           /* or the clip scored, 0 when none */
  double value;              /* the raw value (VBench's dimension value, CompBench's score) */
  int64_t count;             /* videos (or frames) behind the value; 0 stores NULL */
  int has_normalised;        /* 1: `normalised` is stored (else NULL) */
  double normalised;         /* VBench (x - min) / (max - min), times the dimension's weight */
  int64_t sample_id;         /* the sample a per-video row scores, 0 when none */
} catalogue_score;

int catalogue_score_insert(catalogue *cat, const catalogue_score *s, int64_t *id);
/* n scores in one transaction; ids not returned. */
int catalogue_scores_insert(catalogue *cat, int64_t n, const catalogue_score *s);

/* ---- generated samples ------------------------------------------------------------------------ */

/* A sampling stage records each video it generates for a prompt suite (pipelines/prompts/):
 *
 *   catalogue_sample smp = {.model_id = m, .checkpoint_id = ck, .suite = "vbench",
 *                           .prompt_id = "color-003", .seed = 1003, .steps = 4,
 *                           .guidance = 7.5, .motion_scale = 0.5,
 *                           .path = "samples/student/color-003-1003.mp4", .run_id = run};
 *   catalogue_sample_insert(cat, &smp, &id);
 *
 * and `bin/eval --model NAME [--checkpoint STEP] --suite vbench` scores them. The seed and
 * prompt id come from the suite file's line ("samples":[{"seed":…}]); the path is the video
 * file (MP4 or anything libav reads), relative to the workspace folder. */
typedef struct {
  int64_t id;                /* out */
  int64_t model_id;          /* 0 when none */
  int64_t checkpoint_id;     /* 0 when none */
  const char *suite;         /* the suite's name, e.g. "vbench" for pipelines/prompts/vbench.jsonl */
  const char *prompt_id;     /* the prompt line's "id" */
  int64_t seed;
  int64_t steps;             /* sampler steps; 0 = not recorded */
  double guidance;           /* CFG scale w; 0 = none */
  double motion_scale;       /* motion-guidance scale m; 0 = none */
  const char *path;          /* relative to the workspace folder */
  int64_t run_id;            /* the sampling run, 0 when unknown */
  double created;            /* out */
} catalogue_sample;

/* Records a sample. The key is (model, checkpoint, suite, prompt_id, seed, steps, guidance,
 * motion_scale): the same key again replaces path and run (a regenerated video). TB_ERR for
 * an empty suite, prompt id or path, or unknown model/checkpoint/run ids. *id may be NULL. */
int catalogue_sample_insert(catalogue *cat, const catalogue_sample *s, int64_t *id);
/* The samples of model_id (-1: any; 0: none recorded) and checkpoint_id (-1: any; 0: none)
 * in suite (NULL: any), ordered by prompt id, seed and id. *out is a malloc'd array of *n
 * entries (NULL when none); free with catalogue_samples_free. */
int catalogue_samples_list(catalogue *cat, int64_t model_id, int64_t checkpoint_id,
                           const char *suite, catalogue_sample **out, int64_t *n);
void catalogue_samples_free(catalogue_sample *s, int64_t n);

/* ---- evaluation runs and cached per-video results -------------------------------------------- */

typedef struct {
  int64_t run_id;            /* the bin/eval run (runs.id) */
  const char *label;         /* the name --compare uses; the run id as text when not given */
  const char *input;         /* "folder", "dataset" or "samples" */
  const char *suite;         /* prompt suite or dataset name; NULL allowed */
  int64_t model_id, checkpoint_id; /* 0 when none */
  int64_t videos;            /* videos scored */
  const char *results;       /* results JSON, relative to the workspace; NULL allowed */
  double created;            /* out */
} catalogue_eval_run;

/* Records (or, for the same run, replaces) an evaluation run. */
int catalogue_eval_run_set(catalogue *cat, const catalogue_eval_run *r);
/* The newest evaluation run whose label is `label`, or whose run id is `label` as a number.
 * 1 found (free with catalogue_eval_run_clear), 0 not, TB_ERR. */
int catalogue_eval_run_find(catalogue *cat, const char *label, catalogue_eval_run *out);
void catalogue_eval_run_clear(catalogue_eval_run *r);

/* The cached result of scoring one video (a JSON text the evaluator defines), under a key that
 * names the scorer version, the video's content and its truth. put replaces; get returns 1 with
 * *result a malloc'd copy (caller frees), 0 when absent, TB_ERR. */
int catalogue_eval_video_put(catalogue *cat, const char *key, const char *path,
                             const char *result);
int catalogue_eval_video_get(catalogue *cat, const char *key, char **result);

/* ---- read-only queries ----------------------------------------------------------------------- */

/* Called once per result row: ncol columns, their names, their values as text (NULL for SQL
 * NULL). Strings are valid during the call only. Return 0 to go on, non-zero to stop (the
 * query then returns TB_OK). */
typedef int (*catalogue_row_fn)(void *ctx, int ncol, const char *const *names,
                                const char *const *values);

/* Runs one read-only SQL statement with `nparams` text parameters bound to ?1..?N (NULL binds
 * SQL NULL) and calls fn for each row (fn may be NULL to only count). Refuses (TB_ERR) a
 * statement that could write (sqlite3_stmt_readonly) and text after the first statement.
 * *nrows (may be NULL) gets the number of rows seen. */
int catalogue_query(catalogue *cat, const char *sql, int nparams, const char *const *params,
                    catalogue_row_fn fn, void *ctx, int64_t *nrows);

#ifdef __cplusplus
}
#endif
#endif

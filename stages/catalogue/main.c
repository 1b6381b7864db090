/* stages/catalogue/main.c — bin/catalogue: read-only questions to a workspace's catalogue.
 *
 *   bin/catalogue [--workspace DIR] [--csv] COMMAND [ARGS]
 *     tables               row count of every table, and the schema version
 *     runs                 stage runs, newest first (--stage NAME, --limit N)
 *     datasets             datasets with member counts per split and subset
 *     sources [--rejected] source videos (with --rejected: path and reason only)
 *     stats CLIP           the statistics of one clip
 *     models               models with their latest checkpoint
 *     tensors              cached tensors per kind and model
 *     sql "SELECT …"      any read-only statement (writes are refused)
 *     schema               the schema compiled into this build
 *
 * The database is opened with SQLITE_OPEN_READONLY and every statement is checked with
 * sqlite3_stmt_readonly, so this tool can run beside stages that are writing.
 * Exit status: 0 ok, 1 error (message on stderr), 2 bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/catalogue.h"
#include "common/log.h"

#include <sqlite3.h>

#define NULL_TEXT "NULL"

/* Rows collected for aligned printing (or streamed as CSV). */
typedef struct {
  int csv;
  int max_width; /* aligned mode: cells longer than this are cut (0 = never) */
  int ncol;
  char **names;  /* (ncol) */
  char **cells;  /* (rows * ncol); NULL for SQL NULL */
  int64_t rows, cap;
} table;

static void csv_cell(const char *v) {
  if (!v) return;
  if (!strpbrk(v, ",\"\n\r")) {
    fputs(v, stdout);
    return;
  }
  putchar('"');
  for (const char *p = v; *p; p++) {
    if (*p == '"') putchar('"');
    putchar(*p);
  }
  putchar('"');
}

static int table_row(void *ctx, int ncol, const char *const *names, const char *const *vals) {
  table *t = ctx;
  if (!t->names) {
    t->ncol = ncol;
    t->names = xcalloc((size_t)ncol, sizeof *t->names);
    for (int i = 0; i < ncol; i++) t->names[i] = xstrdup(names[i] ? names[i] : "?");
    if (t->csv) {
      for (int i = 0; i < ncol; i++) {
        if (i) putchar(',');
        csv_cell(t->names[i]);
      }
      putchar('\n');
    }
  }
  if (t->csv) {
    for (int i = 0; i < ncol; i++) {
      if (i) putchar(',');
      csv_cell(vals[i]);
    }
    putchar('\n');
    t->rows++;
    return 0;
  }
  if (t->rows == t->cap) {
    t->cap = t->cap ? 2 * t->cap : 64;
    t->cells = xrealloc(t->cells, (size_t)(t->cap * ncol) * sizeof *t->cells);
  }
  for (int i = 0; i < ncol; i++)
    t->cells[t->rows * ncol + i] = vals[i] ? xstrdup(vals[i]) : NULL;
  t->rows++;
  return 0;
}

/* Display width of UTF-8 text: counts code points, not bytes. */
static int text_width(const char *s) {
  int w = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) w++;
  return w;
}

/* 1 when s is a whole number in C syntax (such columns are right-aligned). */
static int is_number(const char *s) {
  char *end = NULL;
  if (!*s) return 0;
  strtod(s, &end);
  return *end == 0;
}

/* Prints s cut to at most `width` code points (with "..." when cut), padded to `pad` on the
 * right, or on the left when `right` is set. */
static void print_cell(const char *s, int width, int pad, int last, int right) {
  int w = text_width(s);
  int shown = 0;
  if (right)
    for (int i = w; i < pad; i++) putchar(' ');
  if (width > 0 && w > width) {
    int keep = width > 3 ? width - 3 : width;
    for (const char *p = s; *p; p++) {
      if (((unsigned char)*p & 0xC0) != 0x80) {
        if (shown == keep) break;
        shown++;
      }
      putchar(*p);
    }
    if (width > 3) fputs("...", stdout), shown += 3;
  } else {
    for (const char *p = s; *p; p++) putchar(*p == '\n' || *p == '\t' ? ' ' : *p);
    shown = w;
  }
  if (right) shown = w > pad ? w : pad;
  if (!last)
    for (int i = shown; i < pad + 2; i++) putchar(' ');
}

static void table_print(table *t) {
  if (t->csv || !t->names) return;
  int *wid = xcalloc((size_t)t->ncol, sizeof *wid);
  int *num = xcalloc((size_t)t->ncol, sizeof *num);
  for (int c = 0; c < t->ncol; c++) {
    wid[c] = text_width(t->names[c]);
    num[c] = t->rows > 0;
    for (int64_t r = 0; r < t->rows && num[c]; r++) {
      const char *v = t->cells[r * t->ncol + c];
      if (v && !is_number(v)) num[c] = 0;
    }
  }
  for (int64_t r = 0; r < t->rows; r++)
    for (int c = 0; c < t->ncol; c++) {
      const char *v = t->cells[r * t->ncol + c];
      int w = text_width(v ? v : NULL_TEXT);
      if (t->max_width > 0 && w > t->max_width) w = t->max_width;
      if (w > wid[c]) wid[c] = w;
    }
  for (int c = 0; c < t->ncol; c++)
    print_cell(t->names[c], t->max_width, wid[c], c == t->ncol - 1, num[c]);
  putchar('\n');
  for (int c = 0; c < t->ncol; c++) {
    for (int i = 0; i < wid[c]; i++) putchar('-');
    if (c < t->ncol - 1) fputs("  ", stdout);
  }
  putchar('\n');
  for (int64_t r = 0; r < t->rows; r++) {
    for (int c = 0; c < t->ncol; c++) {
      const char *v = t->cells[r * t->ncol + c];
      print_cell(v ? v : NULL_TEXT, t->max_width, wid[c], c == t->ncol - 1, num[c]);
    }
    putchar('\n');
  }
  free(wid);
  free(num);
}

static void table_free(table *t) {
  if (t->cells) /* CSV rows were streamed, not kept */
    for (int64_t i = 0; i < t->rows * t->ncol; i++) free(t->cells[i]);
  for (int i = 0; i < t->ncol; i++) free(t->names[i]);
  free(t->cells);
  free(t->names);
  memset(t, 0, sizeof *t);
}

#define SQL_TIME_LIMIT_S 30.0 /* default limit of one `sql` statement */
static double sql_deadline; /* time_now() when the running statement must stop; 0 = never */

static int sql_over_time(void *ctx) {
  (void)ctx;
  return sql_deadline > 0 && time_now() >= sql_deadline; /* non-zero interrupts sqlite */
}

/* Runs one query and prints its rows. When nothing matched, says so on stderr in aligned
 * mode (CSV output stays machine-readable). */
static int run_query(catalogue *cat, int csv, int max_width, const char *sql, int nparams,
                     const char *const *params) {
  table t = {.csv = csv, .max_width = max_width};
  int64_t n = 0;
  int rc = catalogue_query(cat, sql, nparams, params, table_row, &t, &n);
  if (rc == TB_OK) {
    table_print(&t);
    if (n == 0 && !csv) fprintf(stderr, "(no rows)\n");
  }
  table_free(&t);
  if (rc != TB_OK) log_error("%s", err_get());
  return rc == TB_OK ? 0 : 1;
}

/* Collects table names (ascending) of the catalogue. */
typedef struct {
  char **names;
  int n;
} name_list;

static int collect_name(void *ctx, int ncol, const char *const *names, const char *const *v) {
  (void)ncol, (void)names;
  name_list *l = ctx;
  l->names = xrealloc(l->names, (size_t)(l->n + 1) * sizeof *l->names);
  l->names[l->n++] = xstrdup(v[0] ? v[0] : "");
  return 0;
}

static int first_value(void *ctx, int ncol, const char *const *names, const char *const *v) {
  (void)ncol, (void)names;
  snprintf((char *)ctx, 64, "%s", v[0] ? v[0] : "0");
  return 1;
}

/* `tables`: every table's row count. Table names come from sqlite_schema and are quoted as
 * identifiers; no value is ever spliced into SQL. */
static int cmd_tables(catalogue *cat, int csv, int max_width) {
  name_list l = {0};
  if (catalogue_query(cat,
                      "SELECT name FROM sqlite_schema WHERE type = 'table'"
                      " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
                      0, NULL, collect_name, &l, NULL) != TB_OK) {
    log_error("%s", err_get());
    return 1;
  }
  table t = {.csv = csv, .max_width = max_width};
  int rc = 0;
  for (int i = 0; i < l.n && rc == 0; i++) {
    size_t qn = 2 * strlen(l.names[i]) + 64;
    char *q = xmalloc(qn);
    char *o = q + sprintf(q, "SELECT count(*) FROM \"");
    for (const char *p = l.names[i]; *p; p++) {
      if (*p == '"') *o++ = '"';
      *o++ = *p;
    }
    strcpy(o, "\"");
    char count[64] = "0";
    if (catalogue_query(cat, q, 0, NULL, first_value, count, NULL) != TB_OK) {
      log_error("%s", err_get());
      rc = 1;
    } else {
      const char *names[2] = {"table", "rows"};
      const char *vals[2] = {l.names[i], count};
      table_row(&t, 2, names, vals);
    }
    free(q);
  }
  if (rc == 0) {
    table_print(&t);
    if (!csv)
      printf("\nschema version %d (this build: %d), %s\n", catalogue_schema_version(cat),
             CATALOGUE_SCHEMA_VERSION, catalogue_path(cat));
  }
  table_free(&t);
  for (int i = 0; i < l.n; i++) free(l.names[i]);
  free(l.names);
  return rc;
}

int main(int argc, char **argv) {
  log_init("catalogue");
  char *workspace = NULL, *stage = NULL;
  int csv = 0, rejected = 0, limit = 50, width = 60;
  double time_limit = SQL_TIME_LIMIT_S;
  arg_opt opts[] = {
      {"workspace", ARG_STR, &workspace, "DIR", "workspace ($TURBO_WORKSPACE, else runs/default)"},
      {"csv", ARG_FLAG, &csv, NULL, "comma-separated output with a header line"},
      {"rejected", ARG_FLAG, &rejected, NULL, "sources: only rejected ones, with the reason"},
      {"stage", ARG_STR, &stage, "NAME", "runs: only this stage"},
      {"limit", ARG_INT, &limit, "N", "runs: at most N rows (0 = all)"},
      {"width", ARG_INT, &width, "N", "cut cells longer than N characters (0 = never)"},
      {"time-limit", ARG_F64, &time_limit, "S", "sql: stop a statement after S seconds (0 = never)"},
      {0}};
  const char *usage = "catalogue [options] tables | runs | datasets | sources | stats CLIP | "
                      "models | tensors | sql \"SELECT ...\" | schema";
  int pos = args_parse(argc, argv, usage,
                       "Read-only queries on the workspace catalogue (DIR/catalogue.db).", opts);
  if (pos < 0) return 2;
  if (pos >= argc) {
    fprintf(stderr, "usage: %s\n(see --help)\n", usage);
    return 2;
  }
  const char *cmd = argv[pos];
  int nargs = argc - pos - 1;
  char **args = argv + pos + 1;

  if (strcmp(cmd, "schema") == 0) {
    fputs(catalogue_schema_text(), stdout);
    return 0;
  }
  static const char *const known[] = {"tables", "runs", "datasets", "sources", "stats",
                                      "models", "tensors", "sql"};
  int ok = 0;
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) ok |= strcmp(cmd, known[i]) == 0;
  if (!ok) {
    log_error("unknown command '%s' (see --help)", cmd);
    return 2;
  }
  int want_args = (strcmp(cmd, "stats") == 0 || strcmp(cmd, "sql") == 0) ? 1 : 0;
  if (nargs != want_args) {
    log_error("'%s' takes %s", cmd,
              want_args ? (strcmp(cmd, "sql") == 0 ? "one quoted statement" : "one clip id")
                        : "no arguments");
    return 2;
  }

  catalogue *cat = catalogue_open_workspace(workspace, CATALOGUE_OPEN_READONLY);
  if (!cat) {
    log_error("%s", err_get());
    return 1;
  }
  int rc = 0;
  if (strcmp(cmd, "tables") == 0) {
    rc = cmd_tables(cat, csv, width);
  } else if (strcmp(cmd, "runs") == 0) {
    char lim[32];
    snprintf(lim, sizeof lim, "%d", limit > 0 ? limit : -1);
    const char *params[2] = {stage, lim};
    rc = run_query(cat, csv, width,
                   "SELECT id, stage, status, datetime(started, 'unixepoch') AS started,"
                   " printf('%.1f', coalesce(ended, (julianday('now') - 2440587.5) * 86400.0) - started) AS secs,"
                   " host, pid, args, message FROM runs"
                   " WHERE ?1 IS NULL OR stage = ?1 ORDER BY id DESC LIMIT ?2",
                   2, params);
  } else if (strcmp(cmd, "datasets") == 0) {
    rc = run_query(cat, csv, width,
                   "SELECT d.id, d.name, d.status,"
                   " (SELECT count(DISTINCT clip_id) FROM dataset_members m"
                   "   WHERE m.dataset_id = d.id) AS clips,"
                   " (SELECT count(DISTINCT clip_id) FROM dataset_members m"
                   "   WHERE m.dataset_id = d.id AND split = 'train') AS train,"
                   " (SELECT count(DISTINCT clip_id) FROM dataset_members m"
                   "   WHERE m.dataset_id = d.id AND split = 'val') AS val,"
                   " (SELECT group_concat(subset || ':' || n, ' ') FROM"
                   "   (SELECT subset, count(*) AS n FROM dataset_members m"
                   "    WHERE m.dataset_id = d.id AND subset <> '' GROUP BY subset"
                   "    ORDER BY subset)) AS subsets,"
                   " datetime(d.created, 'unixepoch') AS created, d.run_id, d.recipe"
                   " FROM datasets d ORDER BY d.id",
                   0, NULL);
  } else if (strcmp(cmd, "sources") == 0) {
    if (rejected)
      rc = run_query(cat, csv, width,
                     "SELECT path, reason FROM sources WHERE status = 'rejected' ORDER BY path",
                     0, NULL);
    else
      rc = run_query(cat, csv, width,
                     "SELECT s.id, s.path, s.status, s.codec, s.width || 'x' || s.height AS size,"
                     " s.fps, s.frames, round(s.duration, 3) AS duration,"
                     " (SELECT count(*) FROM clips c WHERE c.source_id = s.id) AS clips,"
                     " s.reason FROM sources s ORDER BY s.path",
                     0, NULL);
  } else if (strcmp(cmd, "stats") == 0) {
    char *end = NULL;
    long long id = strtoll(args[0], &end, 10);
    if (!*args[0] || *end || id <= 0) {
      log_error("stats: '%s' is not a clip id (a positive integer)", args[0]);
      rc = 2;
    } else {
      const char *params[1] = {args[0]};
      rc = run_query(cat, csv, width,
                     "SELECT name, value FROM clip_stats WHERE clip_id = CAST(?1 AS INTEGER)"
                     " ORDER BY name",
                     1, params);
    }
  } else if (strcmp(cmd, "models") == 0) {
    rc = run_query(cat, csv, width,
                   "SELECT m.id, m.name, m.family, m.run_id,"
                   " (SELECT count(*) FROM checkpoints c WHERE c.model_id = m.id) AS checkpoints,"
                   " (SELECT max(step) FROM checkpoints c WHERE c.model_id = m.id) AS last_step,"
                   " (SELECT path FROM checkpoints c WHERE c.model_id = m.id"
                   "   ORDER BY step DESC LIMIT 1) AS last_path"
                   " FROM models m ORDER BY m.id",
                   0, NULL);
  } else if (strcmp(cmd, "tensors") == 0) {
    rc = run_query(cat, csv, width,
                   "SELECT t.kind, m.name AS model, t.variant, count(*) AS tensors,"
                   " count(DISTINCT t.path) AS files, sum(t.nbytes) AS bytes"
                   " FROM tensors t LEFT JOIN models m ON m.id = t.model_id"
                   " GROUP BY t.kind, t.model_id, t.variant ORDER BY t.kind, m.name, t.variant",
                   0, NULL);
  } else if (strcmp(cmd, "sql") == 0) {
    /* A runaway statement (a recursive CTE without an end) is interrupted at the limit. */
    sql_deadline = time_limit > 0 ? time_now() + time_limit : 0;
    if (sql_deadline > 0) sqlite3_progress_handler(catalogue_db(cat), 10000, sql_over_time, NULL);
    rc = run_query(cat, csv, width, args[0], 0, NULL);
    if (rc != 0 && sql_deadline > 0 && time_now() >= sql_deadline)
      log_error("the statement ran past the %g s time limit and was stopped (--time-limit S "
                "raises it)", time_limit);
  }
  catalogue_close(cat);
  return rc;
}

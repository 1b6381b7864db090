/* The catalogue across processes.
 * 1. Concurrent writers: 4 worker processes (as one stage's workers would) write sources,
 *    clips, statistics, metrics and runs for about a second each while a reader counts; no
 *    SQLITE_BUSY reaches a caller, and every row each worker reports committing is present.
 * 2. Crash safety: a child killed with SIGKILL in the middle of a BEGIN IMMEDIATE transaction
 *    (its uncommitted pages already spilled into the WAL), and a child killed right after its
 *    commit. The parent reopens: integrity_check is ok, the killed transaction left no row,
 *    the committed one is complete, both runs show as 'interrupted', and writing works.
 * 3. A writer kept waiting past the busy timeout gets a clear error, not a hang.
 */
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/catalogue.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "tests/testutil.h"

#define WORKERS 4
#define WORK_SECONDS 1.0
#define CRASH_ROWS_BEFORE_KILL 3000 /* rows written (uncommitted) before the parent kills */
#define COMMIT_ROWS 2000            /* rows of the transaction committed before the kill */

static char g_db[1024];

static void remove_db(const char *path) {
  char p[1100];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}

static int64_t count_where(catalogue *cat, const char *sql, const char *param) {
  int64_t n = -1;
  const char *p[1] = {param};
  if (catalogue_query(cat, sql, param ? 1 : 0, p, NULL, NULL, &n) != TB_OK) {
    test_fail_msg(__FILE__, __LINE__, "%s: %s", sql, err_get());
    g_test_failures++;
  }
  return n;
}

static int first_text(void *ctx, int ncol, const char *const *names, const char *const *v) {
  (void)ncol, (void)names;
  snprintf((char *)ctx, 256, "%s", v[0] ? v[0] : "NULL");
  return 1;
}

/* One source with one clip and three statistics: the unit of work of a curate worker. */
static int write_item(catalogue *cat, const char *tag, int64_t i) {
  char path[64];
  snprintf(path, sizeof path, "%s/%06lld.mp4", tag, (long long)i);
  catalogue_source s = {.path = path, .size = i, .mtime = 1, .checksum = "ab", .width = 64,
                        .height = 64, .fps = 8, .frames = 16, .duration = 2};
  int64_t src = 0, clip = 0;
  if (catalogue_source_upsert(cat, &s, &src, NULL) != TB_OK) return TB_ERR;
  catalogue_clip c = {.source_id = src, .start = 0, .end = 2, .fps = 8, .width = 64,
                      .height = 64, .frames = 16};
  if (catalogue_clip_insert(cat, &c, &clip) != TB_OK) return TB_ERR;
  const char *names[3] = {"motion_mag", "flicker", "aesthetic"};
  double vals[3] = {(double)i, 0.5, 1.0};
  return catalogue_stats_set(cat, clip, 3, names, vals);
}

/* Worker: batches of 1–4 items per transaction, plus autocommit metric writes. Reports the
 * committed item count on fd; exits 1 on any error. */
static void worker(int k, int fd) {
  char tag[32], stage[32];
  snprintf(tag, sizeof tag, "w%d", k);
  snprintf(stage, sizeof stage, "worker%d", k);
  catalogue *cat = catalogue_open(g_db, 0);
  if (!cat) {
    log_error("worker %d open: %s", k, err_get());
    _exit(1);
  }
  char *argv[] = {stage, NULL};
  int64_t run = 0;
  if (catalogue_run_begin(cat, stage, 1, argv, &run) != TB_OK) goto fail;
  int64_t done = 0, step = 0;
  double t0 = time_now();
  while (time_now() - t0 < WORK_SECONDS) {
    int batch = 1 + (int)(step % 4);
    if (catalogue_begin(cat) != TB_OK) goto fail;
    for (int b = 0; b < batch; b++)
      if (write_item(cat, tag, done + b) != TB_OK) {
        catalogue_rollback(cat);
        goto fail;
      }
    if (catalogue_commit(cat) != TB_OK) goto fail;
    done += batch;
    if (catalogue_metric_insert(cat, run, step, "items", (double)done) != TB_OK) goto fail;
    step++;
  }
  if (catalogue_run_end(cat, run, CATALOGUE_RUN_OK, NULL) != TB_OK) goto fail;
  catalogue_close(cat);
  if (write(fd, &done, sizeof done) != (ssize_t)sizeof done) _exit(1);
  _exit(0);
fail:
  log_error("worker %d: %s", k, err_get());
  _exit(1);
}

/* Reader: counts rows while the workers write; exits 1 on any error. */
static void reader(void) {
  catalogue *cat = catalogue_open(g_db, CATALOGUE_OPEN_READONLY);
  if (!cat) {
    log_error("reader open: %s", err_get());
    _exit(1);
  }
  double t0 = time_now();
  int64_t last = 0, polls = 0;
  while (time_now() - t0 < WORK_SECONDS) {
    int64_t n = 0;
    if (catalogue_query(cat, "SELECT 1 FROM clips", 0, NULL, NULL, NULL, &n) != TB_OK) {
      log_error("reader: %s", err_get());
      _exit(1);
    }
    if (n < last) {
      log_error("reader: clip count went down %lld -> %lld", (long long)last, (long long)n);
      _exit(1);
    }
    last = n;
    polls++;
    usleep(20000);
  }
  log_info("reader: %lld polls, last count %lld", (long long)polls, (long long)last);
  catalogue_close(cat);
  _exit(0);
}

static void test_concurrent_writers(void) {
  remove_db(g_db);
  catalogue *cat = catalogue_open(g_db, 0); /* create before the race (also tested racing) */
  CHECK(cat != NULL);
  catalogue_close(cat);
  int fds[WORKERS][2];
  pid_t pids[WORKERS + 1];
  double t0 = time_now();
  for (int k = 0; k < WORKERS; k++) {
    TB_CHECK(pipe(fds[k]) == 0);
    pid_t p = fork();
    TB_CHECK(p >= 0);
    if (p == 0) {
      close(fds[k][0]);
      worker(k, fds[k][1]);
    }
    close(fds[k][1]);
    pids[k] = p;
  }
  pids[WORKERS] = fork();
  TB_CHECK(pids[WORKERS] >= 0);
  if (pids[WORKERS] == 0) reader();
  int64_t done[WORKERS] = {0}, total = 0;
  for (int k = 0; k <= WORKERS; k++) {
    int st = 0;
    waitpid(pids[k], &st, 0);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "process %d exited with status %d", k, st);
    if (k < WORKERS) {
      CHECK(read(fds[k][0], &done[k], sizeof done[k]) == (ssize_t)sizeof done[k]);
      close(fds[k][0]);
      total += done[k];
    }
  }
  double secs = time_now() - t0;
  cat = catalogue_open(g_db, 0);
  CHECK(cat != NULL);
  if (!cat) return;
  for (int k = 0; k < WORKERS; k++) {
    char like[32];
    snprintf(like, sizeof like, "w%d/%%", k);
    CHECKF(done[k] > 0, "worker %d committed nothing", k);
    int64_t ns = count_where(cat, "SELECT 1 FROM sources WHERE path LIKE ?1", like);
    int64_t nc = count_where(cat, "SELECT 1 FROM clips c JOIN sources s ON s.id = c.source_id"
                                  " WHERE s.path LIKE ?1", like);
    int64_t nst = count_where(cat, "SELECT 1 FROM clip_stats t JOIN clips c ON c.id = t.clip_id"
                                   " JOIN sources s ON s.id = c.source_id WHERE s.path LIKE ?1",
                              like);
    CHECKF(ns == done[k] && nc == done[k] && nst == 3 * done[k],
           "worker %d: reported %lld items, found %lld sources %lld clips %lld stats", k,
           (long long)done[k], (long long)ns, (long long)nc, (long long)nst);
  }
  CHECK(count_where(cat, "SELECT 1 FROM runs WHERE status = 'ok'", NULL) == WORKERS);
  CHECK(count_where(cat, "SELECT 1 FROM metrics", NULL) > 0);
  log_info("concurrent: %d writers committed %lld items (%lld rows) in %.2f s: %.0f items/s",
           WORKERS, (long long)total, (long long)(5 * total), secs, (double)total / secs);
  catalogue_close(cat);
}

/* Child of the crash test: opens its run, then a transaction of `rows` items. With commit=0 it
 * reports after CRASH_ROWS_BEFORE_KILL items and goes on writing until killed; with commit=1
 * it commits, reports, and waits to be killed. */
static void crash_child(const char *tag, int commit, int fd) {
  catalogue *cat = catalogue_open(g_db, 0);
  if (!cat) _exit(1);
  /* a small page cache makes the transaction spill its pages into the WAL before commit */
  sqlite3_exec(catalogue_db(cat), "PRAGMA cache_size = 8", NULL, NULL, NULL);
  char *argv[] = {(char *)tag, NULL};
  int64_t run = 0;
  if (catalogue_run_begin(cat, tag, 1, argv, &run) != TB_OK) _exit(1);
  if (catalogue_begin(cat) != TB_OK) _exit(1);
  char ok = 1;
  for (int64_t i = 0;; i++) {
    if (write_item(cat, tag, i) != TB_OK) {
      log_error("crash child %s: %s", tag, err_get());
      _exit(1);
    }
    if (!commit && i + 1 == CRASH_ROWS_BEFORE_KILL && write(fd, &ok, 1) != 1) _exit(1);
    if (commit && i + 1 == COMMIT_ROWS) break;
  }
  if (catalogue_commit(cat) != TB_OK) _exit(1);
  if (write(fd, &ok, 1) != 1) _exit(1);
  for (;;) pause();
}

static pid_t crash_start(const char *tag, int commit) {
  int fd[2];
  TB_CHECK(pipe(fd) == 0);
  pid_t p = fork();
  TB_CHECK(p >= 0);
  if (p == 0) {
    close(fd[0]);
    crash_child(tag, commit, fd[1]);
  }
  close(fd[1]);
  char c = 0;
  ssize_t n = read(fd[0], &c, 1); /* 0 bytes: the child failed before its mark */
  close(fd[0]);
  CHECKF(n == 1, "crash child %s did not reach its kill point", tag);
  kill(p, SIGKILL);
  /* wait until it is dead but leave it a zombie (not reaped): its pid still exists */
  siginfo_t si;
  TB_CHECK(waitid(P_PID, (id_t)p, &si, WEXITED | WNOWAIT) == 0);
  return p;
}

static void test_crash(void) {
  remove_db(g_db);
  catalogue *cat = catalogue_open(g_db, 0);
  CHECK(cat != NULL);
  catalogue_close(cat);
  char wal[1100];
  snprintf(wal, sizeof wal, "%s-wal", g_db);

  int64_t wal0 = fs_size(wal);
  pid_t mid = crash_start("torn", 0);
  int64_t wal1 = fs_size(wal);
  log_info("crash: WAL %lld -> %lld bytes while the killed transaction was open",
           (long long)wal0, (long long)wal1);
  CHECKF(wal1 > wal0 + 65536, "the killed transaction did not reach the WAL (%lld -> %lld)",
         (long long)wal0, (long long)wal1);
  /* dead, its locks dropped by the kernel, a zombie until waited for */
  pid_t after = crash_start("committed", 1);
  cat = catalogue_open(g_db, 0); /* reaps both runs (zombies count as dead) */
  CHECKF(cat != NULL, "reopen: %s", err_get());
  int st = 0;
  waitpid(mid, &st, 0);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  waitpid(after, &st, 0);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  if (!cat) return;
  char buf[256] = "";
  catalogue_query(cat, "PRAGMA integrity_check", 0, NULL, first_text, buf, NULL);
  CHECKF(strcmp(buf, "ok") == 0, "integrity_check: %s", buf);
  buf[0] = 0;
  catalogue_query(cat, "PRAGMA foreign_key_check", 0, NULL, first_text, buf, NULL);
  CHECKF(buf[0] == 0, "foreign_key_check: %s", buf);
  int64_t torn = count_where(cat, "SELECT 1 FROM sources WHERE path LIKE 'torn/%'", NULL);
  int64_t torn_stats = count_where(cat, "SELECT 1 FROM clip_stats", NULL) -
                       3 * count_where(cat, "SELECT 1 FROM clips", NULL);
  CHECKF(torn == 0, "killed transaction left %lld sources", (long long)torn);
  CHECK(torn_stats == 0);
  int64_t done = count_where(cat, "SELECT 1 FROM sources WHERE path LIKE 'committed/%'", NULL);
  CHECKF(done == COMMIT_ROWS, "committed transaction: %lld of %d sources", (long long)done,
         COMMIT_ROWS);
  CHECK(count_where(cat, "SELECT 1 FROM clips", NULL) == COMMIT_ROWS);
  CHECK(count_where(cat, "SELECT 1 FROM clip_stats", NULL) == 3 * COMMIT_ROWS);
  CHECK(count_where(cat, "SELECT 1 FROM runs WHERE status = 'interrupted'", NULL) == 2);
  /* the catalogue takes writes again at once */
  double t0 = time_now();
  CHECK(catalogue_begin(cat) == TB_OK);
  CHECK(write_item(cat, "after", 0) == TB_OK);
  CHECK(catalogue_commit(cat) == TB_OK);
  CHECKF(time_now() - t0 < 2.0, "write after crash took %.2f s", time_now() - t0);
  catalogue_close(cat);
}

/* A writer that cannot get the write lock within the busy timeout gets TB_ERR with a message
 * that says what to do, after about that long; it never hangs and never corrupts. */
/* Not static: the forked child exits while the parent's handle is open, and a global the
 * compiler must keep is what leaves it reachable for leak checkers. */
catalogue *g_test_holder;

static void test_busy_timeout(void) {
  remove_db(g_db);
  catalogue *holder = g_test_holder = catalogue_open(g_db, 0);
  CHECK(holder != NULL);
  if (!holder) return;
  CHECK(catalogue_begin(holder) == TB_OK);
  CHECK(write_item(holder, "held", 0) == TB_OK);
  pid_t p = fork();
  TB_CHECK(p >= 0);
  if (p == 0) {
    setenv("TURBO_CATALOGUE_BUSY_MS", "300", 1);
    catalogue *cat = catalogue_open(g_db, CATALOGUE_OPEN_NO_REAP);
    if (!cat) _exit(2);
    double t0 = time_now();
    int rc = catalogue_begin(cat);
    double waited = time_now() - t0;
    int ok = rc == TB_ERR && strstr(err_get(), "TURBO_CATALOGUE_BUSY_MS") != NULL &&
             waited > 0.2 && waited < 3.0;
    if (!ok) log_error("busy child: rc %d after %.2f s: %s", rc, waited, err_get());
    /* reads still work while another process writes */
    int64_t n = -1;
    if (catalogue_query(cat, "SELECT 1 FROM sources", 0, NULL, NULL, NULL, &n) != TB_OK || n != 0)
      ok = 0;
    catalogue_close(cat);
    _exit(ok ? 0 : 1);
  }
  int st = 0;
  waitpid(p, &st, 0);
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "busy child status %d", st);
  CHECK(catalogue_commit(holder) == TB_OK);
  catalogue_close(holder);
}

int main(void) {
  test_begin("test_catalogue_procs");
  snprintf(g_db, sizeof g_db, "%s/catalogue.db", test_outdir());
  test_concurrent_writers();
  test_crash();
  test_busy_timeout();
  return test_finish();
}

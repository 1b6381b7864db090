/* common/log.c — see log.h. */
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char g_stage[64] = "turbo";
static int g_debug = -1;
static _Thread_local char t_err[1024];

void log_init(const char *stage_name) {
  snprintf(g_stage, sizeof g_stage, "%s", stage_name ? stage_name : "turbo");
  const char *lvl = getenv("TURBO_LOG");
  g_debug = lvl && strcmp(lvl, "debug") == 0;
}

const char *log_stage_name(void) { return g_stage; }

static void log_v(char level, const char *fmt, va_list ap) {
  char line[4096];
  int n = snprintf(line, sizeof line, "%c: %s[%d] ", level, g_stage, (int)getpid());
  if (n < 0) return;
  if ((size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  size_t len = strlen(line);
  if (len + 1 < sizeof line && (len == 0 || line[len - 1] != '\n')) {
    line[len++] = '\n';
    line[len] = 0;
  }
  /* One write per line so lines from concurrent processes do not interleave. */
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w;
}

#define LOG_FN(name, ch)                                                                   \
  void name(const char *fmt, ...) {                                                        \
    va_list ap;                                                                            \
    va_start(ap, fmt);                                                                     \
    log_v(ch, fmt, ap);                                                                    \
    va_end(ap);                                                                            \
  }
LOG_FN(log_info, 'I')
LOG_FN(log_warn, 'W')
LOG_FN(log_error, 'E')

void log_debug(const char *fmt, ...) {
  if (g_debug < 0) {
    const char *lvl = getenv("TURBO_LOG");
    g_debug = lvl && strcmp(lvl, "debug") == 0;
  }
  if (!g_debug) return;
  va_list ap;
  va_start(ap, fmt);
  log_v('D', fmt, ap);
  va_end(ap);
}

int err_set(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t_err, sizeof t_err, fmt, ap);
  va_end(ap);
  return TB_ERR;
}

int err_wrap(const char *fmt, ...) {
  char prefix[512], old[sizeof t_err];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, t_err, sizeof old);
  size_t np = strlen(prefix);
  if (np > sizeof t_err - 3) np = sizeof t_err - 3;
  memcpy(t_err, prefix, np);
  memcpy(t_err + np, ": ", 2);
  size_t room = sizeof t_err - np - 3, no = strnlen(old, room);
  memcpy(t_err + np + 2, old, no);
  t_err[np + 2 + no] = 0;
  return TB_ERR;
}

const char *err_get(void) { return t_err; }
void err_clear(void) { t_err[0] = 0; }

void tb_check_failed(const char *expr, const char *file, int line, const char *fmt, ...) {
  char msg[1024] = "";
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
  }
  fprintf(stderr, "E: %s[%d] check failed at %s:%d: %s%s%s\n", g_stage, (int)getpid(), file, line,
          expr, msg[0] ? " — " : "", msg);
  fflush(stderr);
  abort();
}

void *tb_xmalloc(size_t n, const char *file, int line) {
  void *p = malloc(n ? n : 1);
  if (!p) tb_check_failed("malloc", file, line, "out of memory allocating %zu bytes", n);
  return p;
}
void *tb_xcalloc(size_t n, size_t size, const char *file, int line) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) tb_check_failed("calloc", file, line, "out of memory allocating %zu x %zu bytes", n, size);
  return p;
}
void *tb_xrealloc(void *p, size_t n, const char *file, int line) {
  void *q = realloc(p, n ? n : 1);
  if (!q) tb_check_failed("realloc", file, line, "out of memory allocating %zu bytes", n);
  return q;
}
char *tb_xstrdup(const char *s, const char *file, int line) {
  size_t n = strlen(s) + 1;
  char *p = tb_xmalloc(n, file, line);
  memcpy(p, s, n);
  return p;
}

double time_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- progress ------------------------------------------------------------------------- */

struct progress {
  pthread_mutex_t mu;
  char what[64], unit[16], note[64];
  int64_t total, done;
  double t0, last_print;
  double interval; /* seconds between lines when not a terminal */
  int tty;
};

progress *progress_new(const char *what, int64_t total, const char *unit) {
  progress *p = xcalloc(1, sizeof *p);
  pthread_mutex_init(&p->mu, NULL);
  snprintf(p->what, sizeof p->what, "%s", what);
  snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "items");
  p->total = total;
  p->t0 = p->last_print = time_now();
  p->tty = isatty(STDERR_FILENO) && !getenv("TURBO_NO_TTY");
  const char *iv = getenv("TURBO_PROGRESS_SECS");
  p->interval = iv ? atof(iv) : 10.0;
  if (p->interval <= 0) p->interval = 10.0;
  return p;
}

static void fmt_secs(char *buf, size_t n, double s) {
  if (s < 0 || s > 1e7) {
    snprintf(buf, n, "--:--");
    return;
  }
  int t = (int)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, n, "%d:%02d:%02d", t / 3600, (t / 60) % 60, t % 60);
  else
    snprintf(buf, n, "%02d:%02d", t / 60, t % 60);
}

static void progress_print(progress *p, int final) {
  double now = time_now(), el = now - p->t0;
  double rate = el > 0 ? (double)p->done / el : 0;
  double eta = (rate > 0 && p->total > 0) ? (double)(p->total - p->done) / rate : -1;
  char e1[16], e2[16];
  fmt_secs(e1, sizeof e1, el);
  fmt_secs(e2, sizeof e2, eta);
  if (p->tty) {
    char bar[31];
    int w = 30, fill = p->total > 0 ? (int)(w * (double)p->done / (double)p->total) : 0;
    if (fill > w) fill = w;
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    fprintf(stderr, "\r%s [%s] %lld/%lld %s  %.1f %s/s  %s eta %s %s\033[K%s", p->what, bar,
            (long long)p->done, (long long)p->total, p->unit, rate, p->unit, e1, e2, p->note,
            final ? "\n" : "");
    fflush(stderr);
  } else {
    log_info("%s: %lld/%lld %s (%.0f%%), %.2f %s/s, elapsed %s%s%s%s%s", p->what,
             (long long)p->done, (long long)p->total, p->unit,
             p->total > 0 ? 100.0 * (double)p->done / (double)p->total : 100.0, rate, p->unit, e1,
             final ? "" : ", eta ", final ? "" : e2, p->note[0] ? " " : "", p->note);
  }
  p->last_print = now;
}

void progress_add(progress *p, int64_t n) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->done += n;
  double now = time_now();
  if (p->tty ? now - p->last_print > 0.2 : now - p->last_print >= p->interval)
    progress_print(p, 0);
  pthread_mutex_unlock(&p->mu);
}

void progress_set_note(progress *p, const char *note) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  snprintf(p->note, sizeof p->note, "%s", note ? note : "");
  pthread_mutex_unlock(&p->mu);
}

void progress_free(progress *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  progress_print(p, 1);
  pthread_mutex_unlock(&p->mu);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

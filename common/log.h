/* common/log.h — leveled logs, the last-error channel, progress display, check macros.
 *
 * Logs go to stderr as "I: stage[pid] message" (W: warnings, E: errors, D: debug when
 * TURBO_LOG=debug). Recoverable failures return -1 (TB_ERR) and leave a message in a
 * thread-local buffer that the caller reads with err_get(); what cannot be recovered (allocation
 * at start-up, a broken invariant) goes through TB_CHECK, which prints file:line and aborts.
 */
#ifndef TURBO_LOG_H
#define TURBO_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TB_OK 0
#define TB_ERR (-1)

#if defined(__GNUC__)
#define TB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TB_PRINTF(a, b)
#endif

/* Names this process in every log line ("curate", "teacher", …). Call once from main(). */
void log_init(const char *stage_name);
const char *log_stage_name(void);

void log_info(const char *fmt, ...) TB_PRINTF(1, 2);
void log_warn(const char *fmt, ...) TB_PRINTF(1, 2);
void log_error(const char *fmt, ...) TB_PRINTF(1, 2);
void log_debug(const char *fmt, ...) TB_PRINTF(1, 2);

/* Sets this thread's last error message and returns TB_ERR, so callers write
 * `return err_set("file %s: bad header", path);`. */
int err_set(const char *fmt, ...) TB_PRINTF(1, 2);
/* Prepends context to the current message: "reading x.st: " + old message. Returns TB_ERR. */
int err_wrap(const char *fmt, ...) TB_PRINTF(1, 2);
/* The last error message of this thread ("" when none). Valid until the next err_set. */
const char *err_get(void);
void err_clear(void);

/* Unrecoverable: print the expression, file and line, then abort(). */
#define TB_CHECK(cond)                                                                     \
  do {                                                                                     \
    if (!(cond)) tb_check_failed(#cond, __FILE__, __LINE__, NULL);                         \
  } while (0)
#define TB_CHECKF(cond, ...)                                                               \
  do {                                                                                     \
    if (!(cond)) tb_check_failed(#cond, __FILE__, __LINE__, __VA_ARGS__);                  \
  } while (0)
void tb_check_failed(const char *expr, const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn));

/* Allocation that cannot fail (aborts with file:line on out-of-memory). Free with free(). */
#define xmalloc(n) tb_xmalloc((n), __FILE__, __LINE__)
#define xcalloc(n, s) tb_xcalloc((n), (s), __FILE__, __LINE__)
#define xrealloc(p, n) tb_xrealloc((p), (n), __FILE__, __LINE__)
#define xstrdup(s) tb_xstrdup((s), __FILE__, __LINE__)
void *tb_xmalloc(size_t n, const char *file, int line);
void *tb_xcalloc(size_t n, size_t size, const char *file, int line);
void *tb_xrealloc(void *p, size_t n, const char *file, int line);
char *tb_xstrdup(const char *s, const char *file, int line);

/* Monotonic seconds. */
double time_now(void);

/* Progress of long work. On a terminal: one redrawn bar with rate and ETA; otherwise a line
 * every `TURBO_PROGRESS_SECS` seconds (default 10) and one at the end. Thread-safe updates. */
typedef struct progress progress;
progress *progress_new(const char *what, int64_t total, const char *unit);
void progress_add(progress *p, int64_t n);
void progress_set_note(progress *p, const char *note); /* short text shown beside the bar */
void progress_free(progress *p); /* prints the final line */

#ifdef __cplusplus
}
#endif
#endif

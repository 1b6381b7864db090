/* common/service.c — see service.h.
 *
 * Jobs move through three lists under one mutex: `pending` (I/O thread → worker), the one
 * `running` job, and `done` (worker → I/O thread, which sends the reply). The worker wakes the
 * I/O thread through an eventfd that zmq_poll watches beside the socket and the signal pipe.
 */
#include "common/service.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/client.h"
#include "common/endpoint.h"
#include "common/fsutil.h"
#include "common/log.h"

#define SERVICE_HANDLERS_MAX 64 /* schemas one service can handle, built-ins included */
#define SERVICE_RECV_BATCH 64   /* messages read per wake-up before timers are looked at */
#define SERVICE_REJECT_LOG_PER_S 10 /* rejected requests logged per second; the rest counted */

/* Built-in schemas, added to the registry when it lacks them (schemas/ may carry the same). */
static const char *k_builtin_schemas[] = {
    "schema ping 1\n"
    "field from str optional maxlen=128\n",
    "schema pong 1\n"
    "field service str required maxlen=63\n"
    "field pid int required min=1\n"
    "field uptime float required min=0 finite\n"
    "field schemas str required maxlen=4095\n"
    "field protocol str optional maxlen=63\n"
    "field device str optional maxlen=63\n",
    "schema heartbeat 1\n"
    "field busy_s float optional min=0 finite\n",
    "schema echo 1\n"
    "field tag str optional maxlen=256\n"
    "field delay_ms int optional min=0 max=10000\n"
    "field fail bool optional\n"
    "tensor * f32,bf16,f16,u8,i32,i64 shape=any optional\n",
};

typedef struct job {
  struct job *next;
  msg *req;
  msg *reply;
  msg_envelope env;
  uint64_t id;
  int64_t bytes; /* the request's tensor bytes */
  double t_arrived;
  service_handler_fn fn;
  void *user;
  int rc;
  char err[512];
} job;

typedef struct {
  char schema[MSG_NAME_MAX];
  service_handler_fn fn;
  void *user;
} handler_entry;

struct service {
  char name[64];
  char endpoint[ENDPOINT_MAX];
  char ipc_path[ENDPOINT_MAX]; /* "" for tcp */
  ino_t ipc_ino;               /* inode of the socket file we bound, to remove only ours */
  dev_t ipc_dev;
  void *ctx, *sock;
  schema_registry *reg;
  int own_reg;
  handler_entry handlers[SERVICE_HANDLERS_MAX];
  int nhandlers;
  int queue_max, heartbeat_ms;
  double t_start;
  int wake_fd; /* eventfd: worker finished a job, or service_stop */
  atomic_int stop;
  atomic_int running_loop;
  atomic_llong served;
  /* rejection log rate limit: a flood of bad requests must not flood the log */
  double reject_window_t;
  int reject_logged;
  long reject_quiet;
  /* test knobs */
  long crash_after, delay_ms, handler_requests;
  /* job lists (mutex) */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  job *pending_head, *pending_tail;
  int npending;
  int64_t pending_bytes; /* tensor bytes of the pending jobs */
  job *running;
  job *done_head, *done_tail;
  int worker_quit;
  pthread_t worker;
  int worker_started;
};

/* --- signals: a self-pipe the poll loop watches ----------------------------------------------- */

static int g_sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t g_sig_caught;
static pthread_once_t g_sig_once = PTHREAD_ONCE_INIT;

static void service_on_signal(int sig) {
  int saved = errno;
  g_sig_caught = sig;
  /* A second SIGINT/SIGTERM ends the process the default way, even while a handler runs. */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigaction(sig, &dfl, NULL);
  char b = (char)sig;
  ssize_t w = write(g_sig_pipe[1], &b, 1); /* non-blocking: a full pipe already says enough */
  (void)w;
  errno = saved;
}

static void service_signals_setup(void) {
  if (pipe2(g_sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
    log_error("service: pipe2 for signals failed: %s", strerror(errno));
    return;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = service_on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: a blocking call returns EINTR and the loop looks */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

void service_signals_install(void) { pthread_once(&g_sig_once, service_signals_setup); }

/* --- small helpers -------------------------------------------------------------------------- */

static long env_long(const char *name) {
  const char *v = getenv(name);
  return v && v[0] ? strtol(v, NULL, 10) : 0;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void wake(service *s) {
  uint64_t one = 1;
  ssize_t w = write(s->wake_fd, &one, sizeof one);
  (void)w;
}

static const handler_entry *handler_find(const service *s, const char *schema) {
  for (int i = 0; i < s->nhandlers; i++)
    if (strcmp(s->handlers[i].schema, schema) == 0) return &s->handlers[i];
  return NULL;
}

/* Sends m to the peer in env. Failures are the peer's problem (gone, not reading): logged,
 * never fatal. Returns TB_OK or TB_ERR. */
static int send_to(service *s, msg *m, const msg_envelope *env, int flags, const char *what) {
  if (msg_send(m, s->sock, env, flags) == TB_OK) return TB_OK;
  log_warn("%s: %s for id %llu dropped: %s", s->name, what, (unsigned long long)msg_id(m),
           err_get());
  return TB_ERR;
}

static void send_error(service *s, const msg_envelope *env, int code, const char *text,
                       const char *schema, uint64_t id) {
  msg *e = msg_error_new(code, text, schema, id);
  send_to(s, e, env, 0, "error reply");
  msg_free(e);
}

/* --- built-in handlers ---------------------------------------------------------------------- */

static int copy_fields(msg *dst, const msg *src) {
  for (int i = 0; i < msg_field_count(src); i++) {
    const msg_field *f = msg_field_at(src, i);
    int rc = TB_OK;
    switch (f->type) {
    case MSG_FIELD_INT: rc = msg_set_int(dst, f->name, f->i); break;
    case MSG_FIELD_FLOAT: rc = msg_set_float(dst, f->name, f->f); break;
    case MSG_FIELD_STR: rc = msg_set_str(dst, f->name, f->s); break;
    case MSG_FIELD_BOOL: rc = msg_set_bool(dst, f->name, (int)f->i); break;
    case MSG_FIELD_INTS: rc = msg_set_ints(dst, f->name, f->ints, f->n); break;
    case MSG_FIELD_FLOATS: rc = msg_set_floats(dst, f->name, f->floats, f->n); break;
    default: rc = err_set("field %s has unknown type %d", f->name, (int)f->type);
    }
    if (rc != TB_OK) return TB_ERR;
  }
  return TB_OK;
}

/* echo: the same fields and tensors back; tensors shared, not copied. Fields of echo/1:
 * delay_ms (wait first), fail (answer with an internal error), tag (just echoed). */
static int handle_echo(service *s, const msg *req, msg **reply, void *user) {
  int64_t delay = msg_int_or(req, "delay_ms", 0);
  if (delay > 0) sleep_ms((long)delay);
  int fail = 0;
  if (msg_get_bool(req, "fail", &fail) == TB_OK && fail)
    return err_set("echo: the request asked to fail (fail=true)");
  msg *r = msg_new(SERVICE_SCHEMA_ECHO, 1, msg_id(req));
  if (copy_fields(r, req) != TB_OK) goto fail;
  for (int i = 0; i < msg_tensor_count(req); i++)
    if (msg_add_tensor_shared(r, msg_tensor_name(req, i), req, i) != TB_OK) goto fail;
  *reply = r;
  return TB_OK;
fail:
  msg_free(r);
  return err_wrap("echo");
}

static msg *make_pong(service *s, uint64_t id) {
  msg *r = msg_new(SERVICE_SCHEMA_PONG, 1, id);
  char list[MSG_STR_MAX];
  schema_registry_list(s->reg, list, sizeof list);
  msg_set_str(r, "service", s->name);
  msg_set_int(r, "pid", (int64_t)getpid());
  msg_set_float(r, "uptime", time_now() - s->t_start);
  msg_set_str(r, "schemas", list);
  msg_set_str(r, "protocol", MSG_PROTOCOL_VERSION "," SERVICE_PROTOCOL_VERSION);
  return r;
}

/* --- worker thread -------------------------------------------------------------------------- */

static void *worker_main(void *arg) {
  service *s = arg;
  char tname[16];
  snprintf(tname, sizeof tname, "%.10s-work", s->name);
  pthread_setname_np(pthread_self(), tname);
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->pending_head && !s->worker_quit) pthread_cond_wait(&s->cv, &s->mu);
    if (!s->pending_head) break; /* quit with nothing left to do */
    job *j = s->pending_head;
    s->pending_head = j->next;
    if (!s->pending_head) s->pending_tail = NULL;
    s->npending--;
    s->pending_bytes -= j->bytes;
    j->next = NULL;
    s->running = j;
    pthread_mutex_unlock(&s->mu);

    if (s->delay_ms > 0) sleep_ms(s->delay_ms);
    err_clear();
    j->reply = NULL;
    j->rc = j->fn(s, j->req, &j->reply, j->user);
    if (j->rc != TB_OK || !j->reply) {
      snprintf(j->err, sizeof j->err, "%s",
               err_get()[0] ? err_get() : "handler returned no reply");
      if (j->reply) msg_free(j->reply);
      j->reply = NULL;
      j->rc = TB_ERR;
    }

    pthread_mutex_lock(&s->mu);
    s->running = NULL;
    if (s->done_tail)
      s->done_tail->next = j;
    else
      s->done_head = j;
    s->done_tail = j;
    wake(s);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* --- I/O thread ------------------------------------------------------------------------------ */

static void send_done(service *s) {
  pthread_mutex_lock(&s->mu);
  job *j = s->done_head;
  s->done_head = s->done_tail = NULL;
  pthread_mutex_unlock(&s->mu);
  while (j) {
    job *next = j->next;
    if (j->rc == TB_OK) {
      msg_set_id(j->reply, j->id);
      if (send_to(s, j->reply, &j->env, 0, "reply") == TB_OK) atomic_fetch_add(&s->served, 1);
    } else {
      log_warn("%s: handler for %s (id %llu) failed: %s", s->name, msg_schema(j->req),
               (unsigned long long)j->id, j->err);
      send_error(s, &j->env, MSG_ERR_INTERNAL, j->err, msg_schema(j->req), j->id);
    }
    log_debug("%s: %s id %llu answered in %.3f ms", s->name, msg_schema(j->req),
              (unsigned long long)j->id, (time_now() - j->t_arrived) * 1e3);
    msg_free(j->reply);
    msg_free(j->req);
    free(j);
    j = next;
  }
}

/* Removes the queued request with this id: its client is gone (it gave the try up and its
 * socket closed), so nobody would read the answer. A running request is left to finish. */
static void drop_pending(service *s, uint64_t id) {
  pthread_mutex_lock(&s->mu);
  job *prev = NULL, *j = s->pending_head;
  while (j && j->id != id) {
    prev = j;
    j = j->next;
  }
  if (j) {
    if (prev)
      prev->next = j->next;
    else
      s->pending_head = j->next;
    if (s->pending_tail == j) s->pending_tail = prev;
    s->npending--;
    s->pending_bytes -= j->bytes;
  }
  pthread_mutex_unlock(&s->mu);
  if (!j) return;
  log_info("%s: dropped queued %s id %llu: its client is gone", s->name, msg_schema(j->req),
           (unsigned long long)id);
  msg_free(j->req);
  free(j);
}

/* Heartbeats to every client with a queued or running request. */
static void send_heartbeats(service *s) {
  pthread_mutex_lock(&s->mu);
  int n = s->npending + (s->running ? 1 : 0);
  if (n == 0) {
    pthread_mutex_unlock(&s->mu);
    return;
  }
  /* copy what is needed out of the lock: envelopes are plain values */
  typedef struct {
    msg_envelope env;
    uint64_t id;
    double t;
  } hb;
  hb *list = xmalloc((size_t)n * sizeof *list);
  int k = 0;
  if (s->running) list[k++] = (hb){s->running->env, s->running->id, s->running->t_arrived};
  for (job *j = s->pending_head; j && k < n; j = j->next) list[k++] = (hb){j->env, j->id, j->t_arrived};
  pthread_mutex_unlock(&s->mu);
  double now = time_now();
  for (int i = 0; i < k; i++) {
    msg *m = msg_new(SERVICE_SCHEMA_HEARTBEAT, 1, list[i].id);
    msg_set_float(m, "busy_s", now - list[i].t);
    if (msg_send(m, s->sock, &list[i].env, ZMQ_DONTWAIT) != TB_OK) {
      int gone = zmq_errno() == EHOSTUNREACH;
      log_debug("%s: heartbeat for id %llu not sent: %s", s->name,
                (unsigned long long)list[i].id, err_get());
      if (gone) drop_pending(s, list[i].id);
    }
    msg_free(m);
  }
  free(list);
}

/* Handles one received, validated message. Takes ownership of m. */
static void dispatch(service *s, msg *m, const msg_envelope *env) {
  const char *schema = msg_schema(m);
  uint64_t id = msg_id(m);
  if (strcmp(schema, SERVICE_SCHEMA_PING) == 0) {
    msg *p = make_pong(s, id);
    send_to(s, p, env, 0, "pong");
    msg_free(p);
    msg_free(m);
    return;
  }
  const handler_entry *h = handler_find(s, schema);
  if (!h) {
    char text[512];
    snprintf(text, sizeof text, "service %s does not handle schema '%s'; ping it for the list",
             s->name, schema);
    send_error(s, env, MSG_ERR_UNSUPPORTED, text, schema, id);
    msg_free(m);
    return;
  }
  if (atomic_load(&s->stop)) {
    send_error(s, env, MSG_ERR_BUSY, "service stopping", schema, id);
    msg_free(m);
    return;
  }
  s->handler_requests++;
  if (s->crash_after > 0 && s->handler_requests >= s->crash_after) {
    log_warn("%s: TURBO_SERVICE_CRASH_AFTER=%ld reached: killing myself mid-request", s->name,
             s->crash_after);
    raise(SIGKILL);
  }
  int64_t bytes = msg_payload_bytes(m);
  pthread_mutex_lock(&s->mu);
  if (s->npending >= s->queue_max ||
      (s->npending > 0 && s->pending_bytes + bytes > SERVICE_QUEUE_BYTES_MAX)) {
    int n = s->npending;
    long long mb = (long long)(s->pending_bytes >> 20);
    pthread_mutex_unlock(&s->mu);
    char text[256];
    snprintf(text, sizeof text, "service %s has %d requests (%lld MiB) waiting; retry later",
             s->name, n, mb);
    send_error(s, env, MSG_ERR_BUSY, text, schema, id);
    msg_free(m);
    return;
  }
  job *j = xcalloc(1, sizeof *j);
  j->req = m;
  j->env = *env;
  j->id = id;
  j->bytes = bytes;
  j->t_arrived = time_now();
  j->fn = h->fn;
  j->user = h->user;
  if (s->pending_tail)
    s->pending_tail->next = j;
  else
    s->pending_head = j;
  s->pending_tail = j;
  s->npending++;
  s->pending_bytes += bytes;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* Starts a new one-second window of rejection logs once the last one is over, first saying
 * how many rejections the last window did not log. */
static void reject_log_window(service *s) {
  double now = time_now();
  if (now - s->reject_window_t < 1.0) return;
  if (s->reject_quiet > 0)
    log_warn("%s: … and %ld more rejected requests not logged", s->name, s->reject_quiet);
  s->reject_window_t = now;
  s->reject_logged = 0;
  s->reject_quiet = 0;
}

/* Reads what the socket holds (up to a batch). TB_ERR only when the socket itself fails. */
static int receive_batch(service *s) {
  for (int i = 0; i < SERVICE_RECV_BATCH; i++) {
    msg *m = NULL;
    msg_envelope env;
    memset(&env, 0, sizeof env);
    msg_recv_status st = msg_recv(s->sock, s->reg, &m, &env, ZMQ_DONTWAIT);
    if (st == MSG_RECV_AGAIN) return TB_OK;
    if (st == MSG_RECV_ERR) return err_wrap("%s: receiving", s->name);
    if (st == MSG_RECV_INVALID) {
      reject_log_window(s);
      if (s->reject_logged < SERVICE_REJECT_LOG_PER_S) {
        s->reject_logged++;
        log_warn("%s: rejected a request: %s", s->name, err_get());
      } else {
        s->reject_quiet++;
      }
      if (m) {
        if (env.n > 0) send_to(s, m, &env, 0, "error reply");
        msg_free(m);
      }
      continue;
    }
    dispatch(s, m, &env);
  }
  return TB_OK;
}

/* --- lifecycle ------------------------------------------------------------------------------- */

service_opts service_opts_default(const char *name) {
  service_opts o;
  memset(&o, 0, sizeof o);
  o.name = name;
  return o;
}

static int registry_add_builtins(schema_registry *r) {
  for (size_t i = 0; i < sizeof k_builtin_schemas / sizeof *k_builtin_schemas; i++) {
    char name[MSG_NAME_MAX];
    int v = 0;
    if (sscanf(k_builtin_schemas[i], "schema %63s %d", name, &v) != 2) continue;
    if (schema_registry_has(r, name, v)) continue;
    if (schema_registry_add_text(r, k_builtin_schemas[i], "common/service.c") != TB_OK)
      return err_wrap("built-in schema %s", name);
  }
  return TB_OK;
}

static int bind_socket(service *s) {
  endpoint_kind kind;
  if (endpoint_check(s->endpoint, &kind) != TB_OK) return TB_ERR;
  if (endpoint_is_wildcard(s->endpoint))
    log_warn("%s: listening on every interface (%s), as asked", s->name, s->endpoint);
  if (kind == ENDPOINT_IPC) {
    snprintf(s->ipc_path, sizeof s->ipc_path, "%s", endpoint_ipc_path(s->endpoint));
    char dir[ENDPOINT_MAX];
    fs_dirname(dir, sizeof dir, s->ipc_path);
    if (fs_mkdir_p(dir) != TB_OK) return err_wrap("%s: socket folder", s->name);
    if (fs_exists(s->ipc_path)) {
      msg *pong = NULL;
      if (client_ping(s->endpoint, SERVICE_PROBE_MS / 1000.0, &pong) == TB_OK) {
        int64_t pid = msg_int_or(pong, "pid", 0);
        char other[64];
        snprintf(other, sizeof other, "%s", msg_str_or(pong, "service", "?"));
        msg_free(pong);
        return err_set("%s is already served by '%s' (pid %lld); stop it or choose another "
                       "--endpoint",
                       s->endpoint, other, (long long)pid);
      }
      log_info("%s: replacing stale socket file %s", s->name, s->ipc_path);
    }
  }
  s->sock = zmq_socket(s->ctx, ZMQ_ROUTER);
  if (!s->sock) return err_set("zmq_socket: %s", zmq_strerror(zmq_errno()));
  msg_socket_opts so = msg_socket_opts_default();
  so.sndhwm = so.rcvhwm = SERVICE_HWM;
  so.linger_ms = 0;
  so.sndtimeo_ms = SERVICE_SNDTIMEO_MS;
  so.router_mandatory = 1;
  if (msg_socket_configure(s->sock, &so) != TB_OK) return err_wrap("%s: socket options", s->name);
  if (zmq_bind(s->sock, s->endpoint) != 0)
    return err_set("%s: bind %s: %s", s->name, s->endpoint, zmq_strerror(zmq_errno()));
  if (s->ipc_path[0]) {
    struct stat st;
    if (stat(s->ipc_path, &st) == 0) {
      s->ipc_ino = st.st_ino;
      s->ipc_dev = st.st_dev;
    }
  }
  return TB_OK;
}

service *service_new(const service_opts *o) {
  if (!o || !o->name || !o->name[0]) {
    err_set("service_new: a service needs a name");
    return NULL;
  }
  service_signals_install();
  service *s = xcalloc(1, sizeof *s);
  snprintf(s->name, sizeof s->name, "%s", o->name);
  s->queue_max = o->queue_max > 0 ? o->queue_max : SERVICE_QUEUE_MAX;
  s->heartbeat_ms = o->heartbeat_ms > 0 ? o->heartbeat_ms : SERVICE_HEARTBEAT_MS;
  s->crash_after = env_long("TURBO_SERVICE_CRASH_AFTER");
  s->delay_ms = env_long("TURBO_SERVICE_DELAY_MS");
  s->t_start = time_now();
  s->wake_fd = -1;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  atomic_init(&s->stop, 0);
  atomic_init(&s->running_loop, 0);
  atomic_init(&s->served, 0);

  if (o->endpoint && o->endpoint[0]) {
    if (strlen(o->endpoint) >= sizeof s->endpoint) {
      err_set("endpoint too long");
      goto fail;
    }
    snprintf(s->endpoint, sizeof s->endpoint, "%s", o->endpoint);
  } else if (endpoint_default(s->endpoint, sizeof s->endpoint, o->workspace, s->name) != TB_OK) {
    goto fail;
  }

  if (o->registry) {
    s->reg = o->registry;
  } else {
    char dir[1024];
    if (schema_dir_default(dir, sizeof dir)) {
      if (schema_registry_load(dir, &s->reg) != TB_OK) {
        err_wrap("%s: loading schemas", s->name);
        goto fail;
      }
    } else {
      s->reg = schema_registry_new();
    }
    s->own_reg = 1;
  }
  if (registry_add_builtins(s->reg) != TB_OK) goto fail;
  if (service_register(s, SERVICE_SCHEMA_ECHO, handle_echo, NULL) != TB_OK) goto fail;

  s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->wake_fd < 0) {
    err_set("eventfd: %s", strerror(errno));
    goto fail;
  }
  s->ctx = zmq_ctx_new();
  if (!s->ctx) {
    err_set("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
    goto fail;
  }
  if (bind_socket(s) != TB_OK) goto fail;
  if (pthread_create(&s->worker, NULL, worker_main, s) != 0) {
    err_set("%s: cannot start the worker thread", s->name);
    goto fail;
  }
  s->worker_started = 1;
  if (s->crash_after > 0 || s->delay_ms > 0)
    log_info("%s: test knobs: crash after %ld requests, delay %ld ms", s->name, s->crash_after,
             s->delay_ms);
  log_info("%s: serving on %s (%s, %s)", s->name, s->endpoint, SERVICE_PROTOCOL_VERSION,
           MSG_PROTOCOL_VERSION);
  return s;
fail:
  service_free(s);
  return NULL;
}

int service_register(service *s, const char *schema, service_handler_fn fn, void *user) {
  if (atomic_load(&s->running_loop))
    return err_set("service_register(%s): register handlers before service_run", schema);
  if (!schema || !fn) return err_set("service_register: schema and handler are required");
  if (strcmp(schema, SERVICE_SCHEMA_PING) == 0)
    return err_set("service_register: ping is answered by the service itself");
  int found = 0;
  for (int i = 0; i < schema_registry_count(s->reg) && !found; i++) {
    int v;
    const char *n = schema_registry_name_at(s->reg, i, &v);
    found = n && strcmp(n, schema) == 0;
  }
  if (!found)
    return err_set("service_register: no schema '%s' in the registry (add schemas/%s.schema)",
                   schema, schema);
  for (int i = 0; i < s->nhandlers; i++)
    if (strcmp(s->handlers[i].schema, schema) == 0) {
      s->handlers[i].fn = fn;
      s->handlers[i].user = user;
      return TB_OK;
    }
  if (s->nhandlers >= SERVICE_HANDLERS_MAX)
    return err_set("service_register: more than %d handlers", SERVICE_HANDLERS_MAX);
  handler_entry *h = &s->handlers[s->nhandlers++];
  snprintf(h->schema, sizeof h->schema, "%s", schema);
  h->fn = fn;
  h->user = user;
  return TB_OK;
}

static void drain_fd(int fd) {
  char buf[64];
  while (read(fd, buf, sizeof buf) > 0) {
  }
}

/* Stops the worker: queued requests get "service stopping"; the running one finishes and its
 * client keeps getting heartbeats meanwhile, then gets its reply. */
static void shutdown_worker(service *s) {
  if (!s->worker_started) return;
  pthread_mutex_lock(&s->mu);
  job *p = s->pending_head;
  s->pending_head = s->pending_tail = NULL;
  s->npending = 0;
  s->pending_bytes = 0;
  s->worker_quit = 1;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  while (p) {
    job *next = p->next;
    if (s->sock) send_error(s, &p->env, MSG_ERR_BUSY, "service stopping", msg_schema(p->req), p->id);
    msg_free(p->req);
    free(p);
    p = next;
  }
  if (s->sock) {
    double next_hb = time_now(); /* one heartbeat at once: "still alive, finishing" */
    int logged = 0;
    for (;;) {
      pthread_mutex_lock(&s->mu);
      int busy = s->running != NULL;
      pthread_mutex_unlock(&s->mu);
      if (!busy) break;
      if (!logged++) log_info("%s: waiting for the running request to finish", s->name);
      zmq_pollitem_t it = {NULL, s->wake_fd, ZMQ_POLLIN, 0};
      long timeout = (long)((next_hb - time_now()) * 1000) + 1;
      zmq_poll(&it, 1, timeout < 0 ? 0 : timeout);
      if (it.revents & ZMQ_POLLIN) drain_fd(s->wake_fd);
      send_done(s);
      if (time_now() >= next_hb) {
        send_heartbeats(s);
        next_hb = time_now() + s->heartbeat_ms / 1000.0;
      }
    }
  }
  pthread_join(s->worker, NULL);
  s->worker_started = 0;
  if (s->sock) send_done(s);
}

int service_run(service *s) {
  atomic_store(&s->running_loop, 1);
  int rc = TB_OK;
  double next_hb = time_now() + s->heartbeat_ms / 1000.0;
  while (!atomic_load(&s->stop) && !g_sig_caught) {
    zmq_pollitem_t items[3] = {
        {s->sock, 0, ZMQ_POLLIN, 0},
        {NULL, s->wake_fd, ZMQ_POLLIN, 0},
        {NULL, g_sig_pipe[0], ZMQ_POLLIN, 0},
    };
    int nitems = g_sig_pipe[0] >= 0 ? 3 : 2;
    long timeout = (long)((next_hb - time_now()) * 1000) + 1;
    if (timeout < 0) timeout = 0;
    int n = zmq_poll(items, nitems, timeout);
    if (n < 0) {
      if (zmq_errno() == EINTR) continue;
      rc = err_set("%s: zmq_poll: %s", s->name, zmq_strerror(zmq_errno()));
      break;
    }
    if (nitems == 3 && (items[2].revents & ZMQ_POLLIN)) drain_fd(g_sig_pipe[0]);
    if (items[1].revents & ZMQ_POLLIN) {
      drain_fd(s->wake_fd);
      send_done(s);
    }
    if ((items[0].revents & ZMQ_POLLIN) && receive_batch(s) != TB_OK) {
      rc = TB_ERR;
      log_error("%s", err_get());
      break;
    }
    if (time_now() >= next_hb) {
      send_heartbeats(s);
      if (s->reject_quiet > 0) reject_log_window(s);
      next_hb = time_now() + s->heartbeat_ms / 1000.0;
    }
  }
  if (s->reject_quiet > 0) {
    s->reject_window_t = 0;
    reject_log_window(s);
  }
  if (g_sig_caught)
    log_info("%s: caught signal %d, stopping", s->name, (int)g_sig_caught);
  atomic_store(&s->stop, 1);
  shutdown_worker(s);
  if (s->sock) {
    zmq_close(s->sock);
    s->sock = NULL;
  }
  atomic_store(&s->running_loop, 0);
  log_info("%s: stopped after %lld requests", s->name, (long long)atomic_load(&s->served));
  return rc;
}

void service_stop(service *s) {
  atomic_store(&s->stop, 1);
  if (s->wake_fd >= 0) wake(s);
}

int service_stopping(const service *s) {
  return atomic_load(&((service *)s)->stop) || g_sig_caught;
}

static void remove_ipc_file(service *s) {
  if (!s->ipc_path[0] || !s->ipc_ino) return;
  struct stat st;
  /* only the file we bound: a successor may have replaced it */
  if (stat(s->ipc_path, &st) == 0 && st.st_ino == s->ipc_ino && st.st_dev == s->ipc_dev)
    unlink(s->ipc_path);
}

void service_free(service *s) {
  if (!s) return;
  atomic_store(&s->stop, 1);
  shutdown_worker(s);
  if (s->sock) zmq_close(s->sock);
  s->sock = NULL;
  if (s->ctx) zmq_ctx_term(s->ctx);
  remove_ipc_file(s);
  if (s->own_reg) schema_registry_free(s->reg);
  if (s->wake_fd >= 0) close(s->wake_fd);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s);
}

const char *service_name(const service *s) { return s->name; }
const char *service_endpoint(const service *s) { return s->endpoint; }
const schema_registry *service_registry(const service *s) { return s->reg; }
int64_t service_served(const service *s) { return (int64_t)atomic_load(&((service *)s)->served); }

/* tests/test_service.c — services and clients across processes: ping, echo, a 256 MiB tensor
 * round trip, bad requests answered with errors, a service killed mid-request (with and without
 * a restart inside the client's retry window), heartbeats during a slow request, SIGTERM.
 *
 * The service under test is this same program started as `test_service --serve EP NAME` (fork +
 * exec of /proc/self/exe), so the test needs no other binary and no ZeroMQ context is shared
 * across fork.
 */
#include <errno.h>
#include <msgpack.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "common/client.h"
#include "common/endpoint.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/service.h"
#include "common/tensor.h"
#include "tests/testutil.h"

/* --- the service side ------------------------------------------------------------------------ */

static int serve(const char *ep, const char *name) {
  log_init(name);
  service_opts o = service_opts_default(name);
  o.endpoint = ep;
  schema_registry *reg = schema_registry_new(); /* the built-in schemas only */
  o.registry = reg;
  service *s = service_new(&o);
  if (!s) {
    log_error("%s", err_get());
    schema_registry_free(reg);
    return 1;
  }
  int rc = service_run(s);
  service_free(s);
  schema_registry_free(reg);
  return rc == TB_OK ? 0 : 1;
}

/* This program's path, read once in main: exec'ing "/proc/self/exe" itself would start the
 * wrong program under valgrind, which answers readlink with the client's path. */
static char g_exe[4096] = "/proc/self/exe";

/* Starts a service process; crash_after/delay_ms set the test knobs (0: off). */
static pid_t spawn_service(const char *ep, const char *name, int crash_after, int delay_ms) {
  pid_t pid = fork();
  TB_CHECK(pid >= 0);
  if (pid == 0) {
    char v[32];
    snprintf(v, sizeof v, "%d", crash_after);
    setenv("TURBO_SERVICE_CRASH_AFTER", v, 1);
    snprintf(v, sizeof v, "%d", delay_ms);
    setenv("TURBO_SERVICE_DELAY_MS", v, 1);
    execl(g_exe, "test_service", "--serve", ep, name, (char *)NULL);
    _exit(127);
  }
  return pid;
}

static int wait_exit(pid_t pid, double timeout_s, int *status) {
  double t0 = time_now();
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return TB_OK;
    if (time_now() - t0 > timeout_s) return TB_ERR;
    usleep(10000);
  }
}

static void stop_service(pid_t pid) {
  int st;
  kill(pid, SIGTERM);
  if (wait_exit(pid, 5, &st) != TB_OK) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
  }
}

/* --- helpers --------------------------------------------------------------------------------- */

static char g_dir[256];

static void make_ep(char *buf, size_t n, const char *name) {
  snprintf(buf, n, "ipc://%s/sock/%s.ipc", g_dir, name);
}

static msg *echo_request(int64_t nbytes, uint64_t *sum) {
  int64_t shape[1] = {nbytes};
  tensor t = tensor_new(DTYPE_U8, 1, shape);
  uint8_t *p = t.data;
  for (int64_t i = 0; i < nbytes; i++) p[i] = (uint8_t)(i * 7 + (i >> 10));
  *sum = checksum64(t.data, (size_t)nbytes);
  msg *m = msg_new(SERVICE_SCHEMA_ECHO, 1, 0);
  msg_set_str(m, "tag", "hello");
  TB_CHECK(msg_add_tensor_owned(m, "x", &t) == TB_OK);
  return m;
}

/* One echo call; returns 1 when the reply carries the same bytes and fields. */
static int echo_ok(client *c, int64_t nbytes) {
  uint64_t sum;
  msg *req = echo_request(nbytes, &sum);
  msg *rep = NULL;
  int ok = 0;
  if (client_call(c, req, &rep) == TB_OK) {
    const tensor *x = msg_tensor_get(rep, "x");
    ok = x && tensor_nbytes(x) == nbytes && checksum64(x->data, (size_t)nbytes) == sum &&
         strcmp(msg_str_or(rep, "tag", ""), "hello") == 0;
    if (!ok) fprintf(stderr, "echo of %lld bytes came back different\n", (long long)nbytes);
  } else {
    fprintf(stderr, "echo of %lld bytes failed: %s\n", (long long)nbytes, err_get());
  }
  msg_free(rep);
  msg_free(req);
  return ok;
}

/* A msgpack header by hand, so that it can be wrong on purpose. dtype NULL: no tensors. */
static void pack_header(msgpack_sbuffer *sb, const char *schema, int v, uint64_t id,
                        const char *dtype, int64_t dim) {
  msgpack_sbuffer_init(sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, dtype ? 4 : 3);
  msgpack_pack_str_with_body(&pk, "schema", 6);
  msgpack_pack_str_with_body(&pk, schema, strlen(schema));
  msgpack_pack_str_with_body(&pk, "v", 1);
  msgpack_pack_int(&pk, v);
  msgpack_pack_str_with_body(&pk, "id", 2);
  msgpack_pack_uint64(&pk, id);
  if (dtype) {
    msgpack_pack_str_with_body(&pk, "tensors", 7);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "name", 4);
    msgpack_pack_str_with_body(&pk, "x", 1);
    msgpack_pack_str_with_body(&pk, "dtype", 5);
    msgpack_pack_str_with_body(&pk, dtype, strlen(dtype));
    msgpack_pack_str_with_body(&pk, "shape", 5);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_int64(&pk, dim);
  }
}

/* Sends raw frames from a DEALER (with_delim: the empty frame first) and returns the error
 * code of the reply, 0 for a non-error reply, -1 for no reply within 2 s. */
static int raw_request(void *ctx, const char *ep, int with_delim, const void *const *frames,
                       const size_t *lens, int n, char *text, size_t ntext) {
  void *s = zmq_socket(ctx, ZMQ_DEALER);
  int zero = 0;
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  zmq_connect(s, ep);
  if (with_delim) zmq_send(s, "", 0, ZMQ_SNDMORE);
  for (int i = 0; i < n; i++) zmq_send(s, frames[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0);
  int code = -1;
  zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
  if (zmq_poll(&it, 1, 2000) == 1) {
    msg *m = NULL;
    msg_envelope env;
    if (msg_recv(s, NULL, &m, &env, 0) == MSG_RECV_OK) {
      const char *t = NULL;
      if (!msg_is_error(m, &code, &t)) code = 0;
      snprintf(text, ntext, "%s", t ? t : "");
    }
    msg_free(m);
  }
  zmq_close(s);
  return code;
}

/* --- the tests ------------------------------------------------------------------------------- */

static void test_endpoints(void) {
  char buf[ENDPOINT_MAX];
  CHECK(endpoint_check("ipc:///tmp/x.ipc", NULL) == TB_OK);
  CHECK(endpoint_check("tcp://127.0.0.1:5555", NULL) == TB_OK);
  CHECK(endpoint_check("tcp://127.0.0.1", NULL) == TB_ERR);
  CHECK(endpoint_check("tcp://127.0.0.1:0", NULL) == TB_ERR);
  CHECK(endpoint_check("udp://x", NULL) == TB_ERR);
  CHECK(endpoint_is_wildcard("tcp://0.0.0.0:5555") && !endpoint_is_wildcard("tcp://127.0.0.1:1"));
  char lng[300] = "ipc:///";
  memset(lng + 7, 'a', 120);
  lng[127] = 0;
  CHECK(endpoint_check(lng, NULL) == TB_ERR);
  CHECKF(strstr(err_get(), "Unix socket") != NULL, "long ipc path error: %s", err_get());
  CHECK(endpoint_default(buf, sizeof buf, g_dir, "teacher") == TB_OK);
  char want[ENDPOINT_MAX];
  make_ep(want, sizeof want, "teacher");
  CHECKF(strcmp(buf, want) == 0, "default endpoint %s, want %s", buf, want);
  char sockdir[600];
  snprintf(sockdir, sizeof sockdir, "%s/sock", g_dir);
  struct stat st;
  CHECK(stat(sockdir, &st) == 0 && S_ISDIR(st.st_mode));
}

static void test_ping_echo_bad(void) {
  char ep[ENDPOINT_MAX];
  make_ep(ep, sizeof ep, "main");
  pid_t pid = spawn_service(ep, "svc-main", 0, 0);
  msg *pong = NULL;
  CHECKF(client_wait_ready(ep, 10, &pong) == TB_OK, "wait_ready: %s", err_get());
  if (!pong) {
    stop_service(pid);
    return;
  }
  CHECK(strcmp(msg_str_or(pong, "service", ""), "svc-main") == 0);
  CHECK(msg_int_or(pong, "pid", 0) == pid);
  CHECK(strstr(msg_str_or(pong, "schemas", ""), "echo/1") != NULL);
  msg_free(pong);

  client *c = client_new(ep, NULL);
  CHECK(c != NULL);
  CHECK(echo_ok(c, 0));
  CHECK(echo_ok(c, 4096));
  CHECK(echo_ok(c, 1 << 20));

  /* A schema nobody registered, through the client: an error, not a retry. */
  msg *bad = msg_new("no.such.schema", 1, 0);
  msg *rep = NULL;
  double t0 = time_now();
  CHECK(client_call(c, bad, &rep) == TB_ERR && rep == NULL);
  CHECKF(client_error_code(c) == MSG_ERR_UNKNOWN_SCHEMA, "code %d: %s", client_error_code(c),
         err_get());
  CHECKF(time_now() - t0 < 1.0, "an error reply must not wait for retries");
  msg_free(bad);
  /* Known schema, no handler: heartbeat is a reply-only schema. */
  bad = msg_new(SERVICE_SCHEMA_HEARTBEAT, 1, 0);
  CHECK(client_call(c, bad, &rep) == TB_ERR);
  CHECKF(client_error_code(c) == MSG_ERR_UNSUPPORTED, "code %d: %s", client_error_code(c),
         err_get());
  msg_free(bad);

  /* Broken requests on the wire. */
  void *ctx = zmq_ctx_new();
  char text[4096];
  msgpack_sbuffer sb;
  uint8_t payload[16] = {0};
  {
    const void *f[] = {"not msgpack at all"};
    size_t l[] = {18};
    int code = raw_request(ctx, ep, 1, f, l, 1, text, sizeof text);
    CHECKF(code == MSG_ERR_BAD_REQUEST, "garbage header: code %d (%s)", code, text);
  }
  {
    pack_header(&sb, SERVICE_SCHEMA_ECHO, 1, 7, "F33", 16);
    const void *f[] = {sb.data, payload};
    size_t l[] = {sb.size, 16};
    int code = raw_request(ctx, ep, 1, f, l, 2, text, sizeof text);
    CHECKF(code == MSG_ERR_BAD_REQUEST, "bad dtype: code %d (%s)", code, text);
    msgpack_sbuffer_destroy(&sb);
  }
  {
    pack_header(&sb, SERVICE_SCHEMA_ECHO, 1, 8, "U8", 16);
    const void *f[] = {sb.data, payload};
    size_t l[] = {sb.size, 5}; /* 5 bytes where the shape says 16 */
    int code = raw_request(ctx, ep, 1, f, l, 2, text, sizeof text);
    CHECKF(code == MSG_ERR_BAD_REQUEST, "short frame: code %d (%s)", code, text);
    msgpack_sbuffer_destroy(&sb);
  }
  {
    pack_header(&sb, SERVICE_SCHEMA_ECHO, 1, 9, "F32", 4);
    float nan4[4] = {1, 2, 3, 4};
    const void *f[] = {sb.data, nan4};
    size_t l[] = {sb.size, sizeof nan4};
    int code = raw_request(ctx, ep, 1, f, l, 2, text, sizeof text);
    CHECKF(code == 0, "good raw echo: code %d (%s)", code, text);
    msgpack_sbuffer_destroy(&sb);
  }
  {
    pack_header(&sb, SERVICE_SCHEMA_ECHO, 9, 10, NULL, 0); /* unknown version */
    const void *f[] = {sb.data};
    size_t l[] = {sb.size};
    int code = raw_request(ctx, ep, 1, f, l, 1, text, sizeof text);
    CHECKF(code == MSG_ERR_UNKNOWN_SCHEMA, "unknown version: code %d (%s)", code, text);
    msgpack_sbuffer_destroy(&sb);
  }
  {
    pack_header(&sb, SERVICE_SCHEMA_PING, 1, 11, NULL, 0);
    const void *f[] = {sb.data};
    size_t l[] = {sb.size};
    int code = raw_request(ctx, ep, 0, f, l, 1, text, sizeof text); /* no delimiter */
    CHECKF(code == MSG_ERR_BAD_REQUEST, "no delimiter: code %d (%s)", code, text);
    msgpack_sbuffer_destroy(&sb);
  }
  {
    /* A client that leaves before its (slow) reply: the reply cannot be routed (ROUTER_MANDATORY
     * reports it in the service log) and the service carries on. */
    msg *slow = msg_new(SERVICE_SCHEMA_ECHO, 1, 12);
    msg_set_int(slow, "delay_ms", 300);
    void *hdr;
    size_t hlen;
    CHECK(msg_header_encode(slow, &hdr, &hlen) == TB_OK);
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(s, ep);
    zmq_send(s, "", 0, ZMQ_SNDMORE);
    zmq_send(s, hdr, hlen, 0);
    usleep(100000);
    zmq_close(s);
    free(hdr);
    msg_free(slow);
    usleep(400000);
  }
  {
    /* Random junk: 300 messages of 0..40 frames of random bytes, some with a valid header
     * prefix, sent without waiting; replies are drained. The service must keep answering. */
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(s, ep);
    uint64_t rs = 12345;
    uint8_t junk[512];
    pack_header(&sb, SERVICE_SCHEMA_ECHO, 1, 13, "U8", 64);
    for (int k = 0; k < 300; k++) {
      int nf = (int)(test_rand_u64(&rs) % 41);
      if (test_rand_u64(&rs) % 2) zmq_send(s, "", 0, nf ? ZMQ_SNDMORE : 0);
      for (int f = 0; f < nf; f++) {
        size_t len = (size_t)(test_rand_u64(&rs) % sizeof junk);
        for (size_t b = 0; b < len; b++) junk[b] = (uint8_t)test_rand_u64(&rs);
        if (f == 0 && k % 3 == 0) {
          len = sb.size - (size_t)(test_rand_u64(&rs) % 4); /* a header, maybe truncated */
          memcpy(junk, sb.data, len);
        }
        zmq_send(s, junk, len, f + 1 < nf ? ZMQ_SNDMORE : 0);
      }
      if (nf == 0) zmq_send(s, "", 0, 0);
    }
    msgpack_sbuffer_destroy(&sb);
    usleep(300000);
    zmq_close(s);
  }
  CHECKF(client_ping(ep, 5, NULL) == TB_OK, "ping after junk: %s", err_get());
  {
    /* A runs 1.5 s; B queues behind it and leaves at once; C queues behind B. B's heartbeat
     * finds no route, so B is dropped and C is answered right after A (not 1.5 s later). */
    msg *slow = msg_new(SERVICE_SCHEMA_ECHO, 1, 21);
    msg_set_int(slow, "delay_ms", 1500);
    void *hdr;
    size_t hlen;
    CHECK(msg_header_encode(slow, &hdr, &hlen) == TB_OK);
    void *sa = zmq_socket(ctx, ZMQ_DEALER), *sb2 = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sa, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sb2, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(sa, ep);
    zmq_connect(sb2, ep);
    double t0 = time_now();
    zmq_send(sa, "", 0, ZMQ_SNDMORE);
    zmq_send(sa, hdr, hlen, 0);
    usleep(50000);
    zmq_send(sb2, "", 0, ZMQ_SNDMORE);
    zmq_send(sb2, hdr, hlen, 0);
    usleep(50000);
    zmq_close(sb2);
    client_opts co = client_opts_default();
    co.timeout_s = 5;
    co.tries = 1;
    client *cc = client_new(ep, &co);
    CHECK(echo_ok(cc, 100));
    double dt = time_now() - t0;
    CHECKF(dt < 2.6, "C answered after %.2f s: the abandoned request B was not dropped", dt);
    client_free(cc);
    zmq_close(sa);
    free(hdr);
    msg_free(slow);
  }
  zmq_ctx_term(ctx);

  /* A handler that fails: an internal error reply, not a crash. */
  bad = msg_new(SERVICE_SCHEMA_ECHO, 1, 0);
  msg_set_bool(bad, "fail", 1);
  CHECK(client_call(c, bad, &rep) == TB_ERR);
  CHECKF(client_error_code(c) == MSG_ERR_INTERNAL, "code %d: %s", client_error_code(c),
         err_get());
  CHECKF(strstr(err_get(), "asked to fail") != NULL, "%s", err_get());
  msg_free(bad);

  /* Still serving after all that. */
  CHECK(echo_ok(c, 64 << 10));
  CHECKF(client_ping(ep, 2, NULL) == TB_OK, "ping after bad requests: %s", err_get());

  /* A second service on a live endpoint is refused. */
  service_opts o = service_opts_default("intruder");
  o.endpoint = ep;
  service *s2 = service_new(&o);
  CHECK(s2 == NULL);
  CHECKF(strstr(err_get(), "already served") != NULL, "second bind: %s", err_get());
  service_free(s2);

  client_free(c);
  stop_service(pid);
}

static void test_big_tensor(void) {
  char ep[ENDPOINT_MAX];
  make_ep(ep, sizeof ep, "big");
  pid_t pid = spawn_service(ep, "svc-big", 0, 0);
  CHECKF(client_wait_ready(ep, 10, NULL) == TB_OK, "wait_ready: %s", err_get());
  client_opts o = client_opts_default();
  o.timeout_s = 60; /* 256 MiB both ways on a busy machine */
  o.tries = 1;
  client *c = client_new(ep, &o);
  /* 256 MiB; 32 MiB under valgrind, where memcheck makes every byte the client touches slow */
  int64_t n = getenv("TURBO_VALGRIND") ? (int64_t)32 << 20 : (int64_t)256 << 20;
  int64_t shape[1] = {n / 4};
  tensor t = tensor_new(DTYPE_F32, 1, shape);
  float *p = t.data;
  for (int64_t i = 0; i < n / 4; i++) p[i] = (float)(i % 1000003) * 0.5f;
  uint64_t sum = checksum64(t.data, (size_t)n);
  msg *req = msg_new(SERVICE_SCHEMA_ECHO, 1, 0);
  CHECK(msg_add_tensor_owned(req, "x", &t) == TB_OK);
  msg *rep = NULL;
  double t0 = time_now();
  int rc = client_call(c, req, &rep);
  double dt = time_now() - t0;
  CHECKF(rc == TB_OK, "%lld MiB echo: %s", (long long)(n >> 20), err_get());
  if (rc == TB_OK) {
    const tensor *x = msg_tensor_get(rep, "x");
    CHECK(x && x->dtype == DTYPE_F32 && tensor_nbytes(x) == n);
    CHECKF(x && checksum64(x->data, (size_t)n) == sum, "%lld MiB checksum differs", (long long)(n >> 20));
    CHECK(x && x->data != p); /* it did travel */
    printf("256 MiB round trip over ipc in %.3f s (%.2f GB/s both ways)\n", dt, 2.0 * n / dt / 1e9);
  }
  msg_free(rep);
  msg_free(req);
  client_free(c);
  stop_service(pid);
}

static void test_killed_no_restart(void) {
  char ep[ENDPOINT_MAX];
  make_ep(ep, sizeof ep, "dies");
  pid_t pid = spawn_service(ep, "svc-dies", 1, 0);
  CHECKF(client_wait_ready(ep, 10, NULL) == TB_OK, "wait_ready: %s", err_get());
  client_opts o = client_opts_default();
  o.timeout_s = 0.4;
  o.tries = 3;
  client *c = client_new(ep, &o);
  uint64_t sum;
  msg *req = echo_request(1000, &sum);
  msg *rep = NULL;
  double t0 = time_now();
  CHECK(client_call(c, req, &rep) == TB_ERR && rep == NULL);
  double dt = time_now() - t0;
  CHECKF(client_error_code(c) == MSG_ERR_TIMEOUT, "code %d", client_error_code(c));
  CHECKF(strstr(err_get(), "did not answer after 3 tries of 0.4 s") != NULL, "message: %s",
         err_get());
  CHECKF(strstr(err_get(), ep) != NULL, "message names the endpoint: %s", err_get());
  CHECKF(dt > 1.1 && dt < 4.0, "gave up after %.2f s (3 tries of 0.4 s)", dt);
  CHECK(client_timeouts(c) == 3);
  printf("killed service: \"%s\" after %.2f s\n", err_get(), dt);
  int st;
  CHECK(wait_exit(pid, 2, &st) == TB_OK && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  msg_free(req);
  client_free(c);
}

typedef struct {
  client *c;
  msg *req;
  int rc;
  int ok;
  uint64_t sum;
  char err[1024];
} call_arg;

static void *call_thread(void *p) {
  call_arg *a = p;
  msg *rep = NULL;
  a->rc = client_call(a->c, a->req, &rep);
  if (a->rc == TB_OK) {
    const tensor *x = msg_tensor_get(rep, "x");
    a->ok = x && checksum64(x->data, (size_t)tensor_nbytes(x)) == a->sum;
  } else {
    snprintf(a->err, sizeof a->err, "%s", err_get());
  }
  msg_free(rep);
  return NULL;
}

static void test_killed_then_restarted(void) {
  char ep[ENDPOINT_MAX];
  make_ep(ep, sizeof ep, "phoenix");
  pid_t pid = spawn_service(ep, "svc-phoenix", 1, 0);
  CHECKF(client_wait_ready(ep, 10, NULL) == TB_OK, "wait_ready: %s", err_get());
  client_opts o = client_opts_default();
  o.timeout_s = 1.0;
  o.tries = 5;
  call_arg a;
  memset(&a, 0, sizeof a);
  a.c = client_new(ep, &o);
  a.req = echo_request(100000, &a.sum);
  pthread_t th;
  pthread_create(&th, NULL, call_thread, &a);
  int st;
  CHECK(wait_exit(pid, 5, &st) == TB_OK && WIFSIGNALED(st)); /* died on the request */
  pid_t pid2 = spawn_service(ep, "svc-phoenix", 0, 0);     /* restarted on the same socket */
  pthread_join(th, NULL);
  CHECKF(a.rc == TB_OK && a.ok, "call across a restart: %s", a.err);
  CHECKF(client_timeouts(a.c) >= 1, "the first try should have timed out");
  msg_free(a.req);
  client_free(a.c);
  stop_service(pid2);
}

static void test_heartbeat_slow_handler(void) {
  char ep[ENDPOINT_MAX];
  make_ep(ep, sizeof ep, "slow");
  pid_t pid = spawn_service(ep, "svc-slow", 0, 3000);
  CHECKF(client_wait_ready(ep, 10, NULL) == TB_OK, "wait_ready: %s", err_get());
  client_opts o = client_opts_default();
  o.timeout_s = 1.5; /* shorter than the handler: only heartbeats keep the try alive */
  o.tries = 1;
  client *c = client_new(ep, &o);
  double t0 = time_now();
  CHECKF(echo_ok(c, 1000), "slow echo with heartbeats");
  CHECKF(client_timeouts(c) == 0, "no try may time out while heartbeats arrive");
  CHECK(time_now() - t0 >= 2.9);
  /* SIGTERM while a request runs: the reply still arrives, the exit is clean. */
  call_arg a;
  memset(&a, 0, sizeof a);
  a.c = c;
  a.req = echo_request(1000, &a.sum);
  pthread_t th;
  pthread_create(&th, NULL, call_thread, &a);
  usleep(200000); /* SIGTERM before the first heartbeat of this request is due */
  kill(pid, SIGTERM);
  pthread_join(th, NULL);
  CHECKF(a.rc == TB_OK && a.ok, "request running at SIGTERM: %s", a.err);
  int st = 0;
  CHECK(wait_exit(pid, 5, &st) == TB_OK);
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
  CHECKF(!fs_exists(endpoint_ipc_path(ep)), "socket file %s left behind",
         endpoint_ipc_path(ep));
  msg_free(a.req);
  client_free(c);
}

static void test_sigterm_idle_and_tcp(void) {
  char ep[64];
  snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", 20000 + (int)(getpid() % 20000));
  pid_t pid = spawn_service(ep, "svc-tcp", 0, 0);
  CHECKF(client_wait_ready(ep, 10, NULL) == TB_OK, "wait_ready tcp: %s", err_get());
  client *c = client_new(ep, NULL);
  CHECK(echo_ok(c, 1 << 20));
  client_free(c);
  kill(pid, SIGTERM);
  int st = 0;
  CHECK(wait_exit(pid, 5, &st) == TB_OK && WIFEXITED(st) && WEXITSTATUS(st) == 0);

  char ipc[ENDPOINT_MAX];
  make_ep(ipc, sizeof ipc, "term");
  pid = spawn_service(ipc, "svc-term", 0, 0);
  CHECKF(client_wait_ready(ipc, 10, NULL) == TB_OK, "wait_ready: %s", err_get());
  CHECK(fs_exists(endpoint_ipc_path(ipc)));
  kill(pid, SIGINT);
  CHECK(wait_exit(pid, 5, &st) == TB_OK && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK(!fs_exists(endpoint_ipc_path(ipc)));
  /* nothing listens now: readiness fails with a clear message within its timeout */
  double t0 = time_now();
  CHECK(client_wait_ready(ipc, 0.6, NULL) == TB_ERR);
  CHECKF(strstr(err_get(), "no service answered ping") != NULL, "%s", err_get());
  CHECK(time_now() - t0 < 2.0);
}

int main(int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[1], "--serve") == 0) return serve(argv[2], argv[3]);
  ssize_t nexe = readlink("/proc/self/exe", g_exe, sizeof g_exe - 1);
  if (nexe > 0) g_exe[nexe] = 0;
  test_begin("test_service");
  snprintf(g_dir, sizeof g_dir, "%.200s", test_outdir());
  double t0 = time_now();
  test_endpoints();
  test_ping_echo_bad();
  test_big_tensor();
  test_killed_no_restart();
  test_killed_then_restarted();
  test_heartbeat_slow_handler();
  test_sigterm_idle_and_tcp();
  printf("test_service: %.1f s\n", time_now() - t0);
  return test_finish();
}

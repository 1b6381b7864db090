/* common/client.c — see client.h. */
#include "common/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/endpoint.h"
#include "common/log.h"
#include "common/service.h"

struct client {
  char endpoint[ENDPOINT_MAX];
  client_opts o;
  void *ctx;
  void *sock;       /* NULL between a timed-out try and the next one */
  uint64_t next_id; /* request ids: pid in the high bits, so two clients rarely collide */
  int last_code;
  int64_t timeouts;
};

client_opts client_opts_default(void) {
  client_opts o = {CLIENT_TIMEOUT_S, CLIENT_TRIES, SERVICE_HWM};
  return o;
}

static void sleep_s(double s) {
  if (s <= 0) return;
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void client_close_socket(client *c) {
  if (c->sock) zmq_close(c->sock);
  c->sock = NULL;
}

static int client_open_socket(client *c) {
  c->sock = zmq_socket(c->ctx, ZMQ_DEALER);
  if (!c->sock) return err_set("client: zmq_socket: %s", zmq_strerror(zmq_errno()));
  msg_socket_opts so = msg_socket_opts_default();
  so.sndhwm = so.rcvhwm = c->o.hwm;
  so.linger_ms = 0;
  so.sndtimeo_ms = (int)(c->o.timeout_s * 1000);
  if (msg_socket_configure(c->sock, &so) != TB_OK) {
    client_close_socket(c);
    return err_wrap("client for %s", c->endpoint);
  }
  /* While the service is away, reconnect attempts back off exponentially from 100 ms to
   * CLIENT_RECONNECT_MAX_MS instead of hammering a missing socket file every 100 ms. */
  int ivl = 100, ivl_max = CLIENT_RECONNECT_MAX_MS;
  zmq_setsockopt(c->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
  zmq_setsockopt(c->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
  if (zmq_connect(c->sock, c->endpoint) != 0) {
    int e = zmq_errno();
    client_close_socket(c);
    return err_set("client: connect to %s: %s", c->endpoint, zmq_strerror(e));
  }
  return TB_OK;
}

client *client_new(const char *endpoint, const client_opts *opts) {
  if (endpoint_check(endpoint, NULL) != TB_OK) return NULL;
  client *c = xcalloc(1, sizeof *c);
  snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
  c->o = opts ? *opts : client_opts_default();
  if (c->o.timeout_s <= 0) c->o.timeout_s = CLIENT_TIMEOUT_S;
  if (c->o.tries <= 0) c->o.tries = CLIENT_TRIES;
  if (c->o.hwm <= 0) c->o.hwm = SERVICE_HWM;
  c->next_id = ((uint64_t)(uint32_t)getpid() << 32) | ((uint64_t)(time_now() * 1e3) & 0xffff) << 16;
  c->ctx = zmq_ctx_new();
  if (!c->ctx) {
    err_set("client: zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
    free(c);
    return NULL;
  }
  if (client_open_socket(c) != TB_OK) {
    zmq_ctx_term(c->ctx);
    free(c);
    return NULL;
  }
  return c;
}

void client_free(client *c) {
  if (!c) return;
  client_close_socket(c);
  zmq_ctx_term(c->ctx);
  free(c);
}

int client_error_code(const client *c) { return c->last_code; }
const char *client_endpoint(const client *c) { return c->endpoint; }
int64_t client_timeouts(const client *c) { return c->timeouts; }

/* Sends the empty delimiter and the request. TB_ERR when it cannot be queued in time. */
static int client_send(client *c, msg *req) {
  if (zmq_send(c->sock, "", 0, ZMQ_SNDMORE) != 0)
    return err_set("sending to %s: %s", c->endpoint, zmq_strerror(zmq_errno()));
  return msg_send(req, c->sock, NULL, 0);
}

/* Outcome of waiting within one try. */
enum { TRY_REPLY, TRY_TIMEOUT, TRY_FAILED };

/* Waits for the reply with id; heartbeats with that id restart the clock. */
static int client_wait_reply(client *c, uint64_t id, int64_t payload, msg **reply) {
  double patience = c->o.timeout_s + 2.0 * (double)payload / CLIENT_SLOW_LINK_BPS;
  /* after a heartbeat: wait LIVENESS intervals, but never less than the try timeout */
  double hb_patience = SERVICE_HEARTBEAT_LIVENESS * SERVICE_HEARTBEAT_MS / 1000.0;
  if (hb_patience < patience) hb_patience = patience;
  double deadline = time_now() + patience;
  for (;;) {
    double left = deadline - time_now();
    if (left <= 0) return TRY_TIMEOUT;
    zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
    int rc = zmq_poll(&it, 1, (long)(left * 1000) + 1);
    if (rc < 0) {
      if (zmq_errno() == EINTR) continue;
      err_set("polling %s: %s", c->endpoint, zmq_strerror(zmq_errno()));
      return TRY_FAILED;
    }
    if (rc == 0) continue;
    for (;;) {
      msg *m = NULL;
      msg_envelope env;
      msg_recv_status st = msg_recv(c->sock, NULL, &m, &env, ZMQ_DONTWAIT);
      if (st == MSG_RECV_AGAIN) break;
      if (st == MSG_RECV_ERR) {
        err_wrap("receiving from %s", c->endpoint);
        return TRY_FAILED;
      }
      if (st == MSG_RECV_INVALID) {
        /* m is the error reply we would send back; the service spoke something we cannot read. */
        msg_free(m);
        c->last_code = MSG_ERR_BAD_REQUEST;
        err_wrap("service at %s sent a reply that does not decode", c->endpoint);
        return TRY_FAILED;
      }
      if (msg_id(m) != id) {
        log_debug("client: discarding %s id %llu from %s (waiting for %llu)", msg_schema(m),
                  (unsigned long long)msg_id(m), c->endpoint, (unsigned long long)id);
        msg_free(m);
        continue;
      }
      if (strcmp(msg_schema(m), SERVICE_SCHEMA_HEARTBEAT) == 0) {
        double d = time_now() + hb_patience;
        if (d > deadline) deadline = d;
        msg_free(m);
        continue;
      }
      *reply = m;
      return TRY_REPLY;
    }
  }
}

int client_call(client *c, msg *req, msg **reply) {
  *reply = NULL;
  c->last_code = 0;
  double backoff = CLIENT_BUSY_BACKOFF_S;
  char last_err[2048] = "";
  for (int t = 1; t <= c->o.tries; t++) {
    if (!c->sock && client_open_socket(c) != TB_OK) return TB_ERR;
    uint64_t id = ++c->next_id;
    msg_set_id(req, id);
    if (client_send(c, req) != TB_OK) {
      /* Queue full or send timeout: treat like a silent service and reopen. */
      snprintf(last_err, sizeof last_err, "%s", err_get());
      log_warn("client: %s (try %d of %d)", last_err, t, c->o.tries);
      client_close_socket(c);
      c->timeouts++;
      continue;
    }
    msg *m = NULL;
    int r = client_wait_reply(c, id, msg_payload_bytes(req), &m);
    if (r == TRY_FAILED) {
      if (!c->last_code) c->last_code = MSG_ERR_INTERNAL;
      client_close_socket(c);
      return TB_ERR;
    }
    if (r == TRY_TIMEOUT) {
      c->timeouts++;
      if (t < c->o.tries)
        log_warn("client: no reply from %s in %.1f s (try %d of %d), reconnecting", c->endpoint,
                 c->o.timeout_s, t, c->o.tries);
      client_close_socket(c); /* Lazy Pirate: a fresh socket, nothing late can arrive */
      last_err[0] = 0;
      continue;
    }
    int code = 0;
    const char *text = NULL;
    if (msg_is_error(m, &code, &text)) {
      c->last_code = code ? code : MSG_ERR_INTERNAL;
      snprintf(last_err, sizeof last_err, "service at %s answered %s: %.1200s", c->endpoint,
               msg_error_code_name(code), text ? text : "(no message)");
      msg_free(m);
      if (code == MSG_ERR_BUSY && t < c->o.tries) {
        sleep_s(backoff);
        backoff *= 2;
        continue;
      }
      return err_set("%s", last_err);
    }
    *reply = m;
    return TB_OK;
  }
  if (last_err[0] && c->last_code) return err_set("%s", last_err);
  c->last_code = MSG_ERR_TIMEOUT;
  if (last_err[0])
    return err_set("service at %s did not answer after %d tries of %.1f s (last: %s)",
                   c->endpoint, c->o.tries, c->o.timeout_s, last_err);
  return err_set("service at %s did not answer after %d %s of %.1f s; is it running? "
                 "(bin/echo --ping %s)",
                 c->endpoint, c->o.tries, c->o.tries == 1 ? "try" : "tries", c->o.timeout_s,
                 c->endpoint);
}

int client_ping(const char *endpoint, double timeout_s, msg **pong) {
  if (pong) *pong = NULL;
  client_opts o = client_opts_default();
  o.timeout_s = timeout_s > 0 ? timeout_s : CLIENT_TIMEOUT_S;
  o.tries = 1;
  client *c = client_new(endpoint, &o);
  if (!c) return TB_ERR;
  msg *req = msg_new(SERVICE_SCHEMA_PING, 1, 0);
  msg *rep = NULL;
  int rc = client_call(c, req, &rep);
  msg_free(req);
  client_free(c);
  if (rc != TB_OK) return TB_ERR;
  if (strcmp(msg_schema(rep), SERVICE_SCHEMA_PONG) != 0) {
    err_set("ping to %s answered with '%s', not '%s'", endpoint, msg_schema(rep),
            SERVICE_SCHEMA_PONG);
    msg_free(rep);
    return TB_ERR;
  }
  if (pong)
    *pong = rep;
  else
    msg_free(rep);
  return TB_OK;
}

int client_wait_ready(const char *endpoint, double timeout_s, msg **pong) {
  if (endpoint_check(endpoint, NULL) != TB_OK) return TB_ERR;
  double t0 = time_now();
  for (;;) {
    double left = timeout_s - (time_now() - t0);
    double step = left < CLIENT_READY_POLL_S ? left : CLIENT_READY_POLL_S;
    if (step < 0.01) step = 0.01;
    double ts = time_now();
    if (client_ping(endpoint, step, pong) == TB_OK) return TB_OK;
    if (time_now() - t0 >= timeout_s)
      return err_set("no service answered ping at %s within %.1f s", endpoint, timeout_s);
    /* ping fails fast when it cannot even send; do not spin */
    double spent = time_now() - ts;
    if (spent < step) sleep_s(step - spent);
  }
}

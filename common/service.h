/* common/service.h — a turbo service: a ROUTER socket that answers requests (common/msg.h
 * messages) with one handler per schema, plus the protocol constants its clients share.
 *
 *   service_opts o = service_opts_default("teacher");
 *   o.workspace = ws;                       // or o.endpoint = "tcp://127.0.0.1:5555"
 *   service *s = service_new(&o);           // binds; NULL + err_get() on failure
 *   service_register(s, "teacher.step", teacher_step, model);
 *   int rc = service_run(s);                // until SIGINT/SIGTERM or service_stop()
 *   service_free(s);                        // closes and removes the ipc socket file
 *
 * Every service answers `ping` (a `pong` with its name, pid, uptime and schemas) and `echo` (the
 * request's fields and tensors sent back, tensors without copies). Every request is decoded and
 * validated against the schema registry before its handler sees it; anything wrong is answered
 * with an `error` reply (msg_error_new) and the service keeps serving. It never exits on a
 * peer's input.
 *
 * Threads: one I/O thread (the caller of service_run) owns the socket: it receives, validates,
 * answers ping, sends heartbeats and replies. Handlers run one at a time on a worker thread, in
 * arrival order, from a bounded queue (a full queue is answered with MSG_ERR_BUSY). So a slow
 * handler never stops pings or heartbeats.
 *
 * Heartbeats (the Paranoid Pirate idea, turned towards request-reply): while a client's request
 * is queued or running, the service sends it a `heartbeat` message (same id as the request)
 * every SERVICE_HEARTBEAT_MS. A client treats each one as proof of life and waits on; after
 * SERVICE_HEARTBEAT_LIVENESS silent intervals (or its own try timeout, whichever is longer) it
 * gives the try up. Idle clients are not heartbeated: they learn a service is alive by `ping`.
 * A heartbeat that cannot be routed (ZMQ_ROUTER_MANDATORY: the client's socket is gone, e.g. it
 * gave the try up) removes that client's queued request, so abandoned work is not done.
 *
 * Wire envelope: a client (DEALER) sends an empty delimiter frame, then the message; the service
 * (ROUTER) sees identity, delimiter, message, and answers with the same envelope. A REQ socket
 * therefore also works as a client.
 *
 * Test knobs (environment, read by service_new):
 *   TURBO_SERVICE_CRASH_AFTER=N  the service kills itself (SIGKILL) when its N-th handler
 *                                request arrives, before answering: a worker dying mid-request.
 *   TURBO_SERVICE_DELAY_MS=MS    every handler request waits MS milliseconds before its handler
 *                                runs (a slow worker; heartbeats keep flowing meanwhile).
 */
#ifndef TURBO_SERVICE_H
#define TURBO_SERVICE_H

#include <stdint.h>

#include "common/msg.h"
#include "common/schema.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --- protocol constants (shared by common/client.c) ------------------------------------------ */
#define SERVICE_PROTOCOL_VERSION "turbo-service/1" /* envelope + ping/pong/echo/heartbeat */
#define SERVICE_HEARTBEAT_MS 1000    /* ms between heartbeats for a queued or running request */
#define SERVICE_HEARTBEAT_LIVENESS 3 /* silent heartbeat intervals before a client gives up; 3-5
                                        is reasonable (fewer: false alarms under load) */
#define SERVICE_QUEUE_MAX 64         /* requests waiting for the worker; more: MSG_ERR_BUSY */
#define SERVICE_QUEUE_BYTES_MAX ((int64_t)2 << 30) /* tensor bytes waiting (2 GiB); a request
                                        that would pass it gets MSG_ERR_BUSY, unless the queue is
                                        empty (one request of any allowed size is always taken) */
#define SERVICE_SNDTIMEO_MS 2000     /* a reply that cannot be queued in 2 s (client not reading,
                                        high-water mark reached) is dropped and logged */
#define SERVICE_HWM 64               /* messages queued per peer, each way; set, never default */
#define SERVICE_PROBE_MS 300         /* ms to wait for a pong from an existing ipc socket before
                                        taking it over as stale */

/* Schema names of the built-in messages. */
#define SERVICE_SCHEMA_PING "ping"
#define SERVICE_SCHEMA_PONG "pong"
#define SERVICE_SCHEMA_ECHO "echo"
#define SERVICE_SCHEMA_HEARTBEAT "heartbeat"
#define SERVICE_SCHEMA_ERROR "error"

typedef struct service service;

/* A handler answers one validated request. It returns TB_OK with *reply set to a new msg (the
 * service sets its id to the request's, sends it, and frees it), or TB_ERR with err_get() set:
 * the client then gets an MSG_ERR_INTERNAL error reply with that text. A handler may also put
 * its own msg_error_new() reply in *reply and return TB_OK. The request stays owned by the
 * service and is freed after the reply is sent; share its tensors with msg_add_tensor_shared.
 * Runs on the worker thread. */
typedef int (*service_handler_fn)(service *s, const msg *req, msg **reply, void *user);

typedef struct {
  const char *name;      /* service name, for logs, pong and the default endpoint */
  const char *endpoint;  /* ipc://… or tcp://HOST:PORT; NULL: endpoint_default(workspace, name) */
  const char *workspace; /* NULL: runs/default */
  /* Schemas to validate against. NULL: the service loads schema_registry_load_default() (or
   * starts empty when there is no schema folder) and owns it. Given: borrowed, must outlive
   * the service. Either way the built-in ping/pong/echo/heartbeat schemas are added to it when
   * it lacks them. */
  schema_registry *registry;
  int queue_max;         /* 0: SERVICE_QUEUE_MAX */
  int heartbeat_ms;      /* 0: SERVICE_HEARTBEAT_MS */
} service_opts;

/* Defaults for a service called name (the string is not copied: keep it alive). */
service_opts service_opts_default(const char *name);

/* Creates the socket and binds it. For an ipc endpoint whose socket file exists, it first pings
 * it (SERVICE_PROBE_MS): a live service there is an error ("already served by pid N"), a stale
 * file is replaced. Returns NULL with err_get() on a bad endpoint, a bind failure or a registry
 * that cannot be loaded. Free with service_free. */
service *service_new(const service_opts *o);

/* Adds (or replaces) the handler for schema name. The schema must be in the registry.
 * TB_ERR when it is not, or when called while service_run is running. */
int service_register(service *s, const char *schema, service_handler_fn fn, void *user);

/* Serves until SIGINT or SIGTERM arrives (caught through a self-pipe, so the poll loop ends
 * cleanly) or service_stop is called. On the way out: queued requests are answered with
 * MSG_ERR_BUSY ("service stopping"), the running handler is allowed to finish (its client still
 * gets heartbeats, then the reply), the socket is closed. A second SIGINT/SIGTERM ends the
 * process at once (the default action), for a handler that will not finish. Returns TB_OK on such a stop, TB_ERR (err_get()) when the socket
 * fails. */
int service_run(service *s);

/* Asks service_run to return; safe from handlers, other threads and signal handlers. */
void service_stop(service *s);
/* 1 once a stop was asked (handlers doing long work may check it and give up early). */
int service_stopping(const service *s);

/* Closes the socket (if service_run did not), removes this service's ipc socket file, frees s.
 * NULL is fine. */
void service_free(service *s);

const char *service_name(const service *s);
const char *service_endpoint(const service *s); /* the bound endpoint string */
const schema_registry *service_registry(const service *s);
/* Requests answered by handlers so far (ping, heartbeats and error replies not counted). */
int64_t service_served(const service *s);

/* Installs the SIGINT/SIGTERM handlers that feed the self-pipe (service_new does this; call it
 * earlier to catch a signal during start-up). Idempotent. */
void service_signals_install(void);

#ifdef __cplusplus
}
#endif
#endif

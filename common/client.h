/* common/client.h — reliable request-reply to a turbo service (common/service.h).
 *
 *   client *c = client_new("ipc://runs/default/sock/teacher.ipc", NULL);
 *   msg *req = msg_new("teacher.step", 1, 0); … add fields and tensors …
 *   msg *rep = NULL;
 *   if (client_call(c, req, &rep) != TB_OK) log_error("%s", err_get());
 *   msg_free(rep); msg_free(req); client_free(c);
 *
 * Lazy Pirate: each try sends the request and waits up to timeout_s (plus the transfer
 * allowance, CLIENT_SLOW_LINK_BPS) for the reply; a try that
 * times out closes the socket and opens a fresh one (so nothing of the abandoned try can arrive
 * later), then resends, up to `tries` tries. Each try carries a new request id; replies and
 * heartbeats with another id are discarded. While the service works on the request it sends
 * heartbeats (SERVICE_HEARTBEAT_MS); each one restarts the try's clock, so long handlers do not
 * time out while the service is alive, and a dead one is noticed within
 * max(timeout_s, SERVICE_HEARTBEAT_LIVENESS heartbeat intervals).
 *
 * A client is used by one thread at a time. Each client has its own ZeroMQ context.
 */
#ifndef TURBO_CLIENT_H
#define TURBO_CLIENT_H

#include "common/msg.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CLIENT_TIMEOUT_S 2.5  /* s per try before the socket is reopened and the request resent */
#define CLIENT_TRIES 3        /* tries before client_call gives up */
#define CLIENT_BUSY_BACKOFF_S 0.05 /* first wait after an MSG_ERR_BUSY reply; doubles per try */
#define CLIENT_READY_POLL_S 0.25   /* ping timeout per attempt in client_wait_ready */
#define CLIENT_RECONNECT_MAX_MS 800 /* ceiling of ZeroMQ's reconnect back-off within one try */
#define CLIENT_SLOW_LINK_BPS 100e6 /* bytes/s: a try also waits 2 x payload / this (request up,
                                      a reply of like size down) before calling a service silent,
                                      so big tensors on a busy host are not resent in a loop */

typedef struct client client;

typedef struct {
  double timeout_s; /* per try; <= 0: CLIENT_TIMEOUT_S */
  int tries;        /* >= 1; 0: CLIENT_TRIES */
  int hwm;          /* ZMQ_SNDHWM / ZMQ_RCVHWM in messages; 0: SERVICE_HWM */
} client_opts;

client_opts client_opts_default(void);

/* A client of the service at endpoint (ipc://…, tcp://HOST:PORT). Connects lazily: a service
 * that is not up yet is not an error here. opts NULL: defaults. Returns NULL with err_get() on a
 * bad endpoint or a ZeroMQ failure. Free with client_free. */
client *client_new(const char *endpoint, const client_opts *opts);
void client_free(client *c); /* NULL is fine; drops anything unsent */

/* Sends req and waits for its reply (see the top of this file). req is not consumed (its id is
 * overwritten per try); on TB_OK *reply is a new msg the caller frees with msg_free, whose
 * tensors are views into its frames. On TB_ERR, *reply is NULL and err_get() says why:
 *   - an "error" reply from the service: "service at EP answered bad_request: <its message>"
 *     (not retried, except MSG_ERR_BUSY which is retried with back-off while tries are left);
 *   - no answer: "service at EP did not answer after 3 tries of 2.5 s";
 *   - a reply that fails to decode. client_error_code() tells them apart. */
int client_call(client *c, msg *req, msg **reply);

/* The msg_error_code of the last failed call (MSG_ERR_TIMEOUT when no answer came), 0 after a
 * success. */
int client_error_code(const client *c);
const char *client_endpoint(const client *c);
/* Tries that timed out over this client's life (for tests and logs). */
int64_t client_timeouts(const client *c);

/* One ping of one try: TB_OK when a pong arrives within timeout_s (then *pong, if not NULL,
 * gets it: fields service, pid, uptime, schemas, protocol; caller frees).
 * TB_ERR with err_get() otherwise. */
int client_ping(const char *endpoint, double timeout_s, msg **pong);

/* Pings every CLIENT_READY_POLL_S until a pong arrives or timeout_s has passed. TB_OK when
 * ready (*pong as client_ping), TB_ERR "no service answered ping at EP within N s" otherwise.
 * For run.sh (through bin/echo --ping) and tests. */
int client_wait_ready(const char *endpoint, double timeout_s, msg **pong);

#ifdef __cplusplus
}
#endif
#endif

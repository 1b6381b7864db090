/* common/endpoint.h — where services listen: ZeroMQ endpoint strings, checked before use.
 *
 * A service listens on `ipc://<workspace>/sock/<service>.ipc` unless it is given an address.
 * `tcp://` is used only when an address is given explicitly (`tcp://127.0.0.1:5555`); nothing
 * binds to every interface unless the caller names a wildcard host (0.0.0.0, ::, or a star).
 * An ipc path must fit a Unix socket address (sun_path: 108 bytes with the terminating NUL),
 * so endpoint_check rejects longer paths with a message that says what to do.
 */
#ifndef TURBO_ENDPOINT_H
#define TURBO_ENDPOINT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ENDPOINT_MAX 512         /* bytes, enough for any endpoint string turbo writes */
#define ENDPOINT_IPC_PATH_MAX 107 /* bytes: sizeof(sun_path) on Linux (108) minus the NUL */
#define ENDPOINT_SOCK_DIR "sock" /* folder under the workspace that holds ipc sockets */

typedef enum { ENDPOINT_IPC = 0, ENDPOINT_TCP, ENDPOINT_INPROC } endpoint_kind;

/* Writes the default endpoint of `service` into buf: "ipc://<workspace>/sock/<service>.ipc",
 * and creates <workspace>/sock. Returns TB_OK, or TB_ERR + err_get() when the folder cannot be
 * made or the path is too long for a Unix socket. */
int endpoint_default(char *buf, size_t n, const char *workspace, const char *service);

/* Checks an endpoint string: "ipc://PATH" (non-empty, at most ENDPOINT_IPC_PATH_MAX bytes),
 * "tcp://HOST:PORT" (explicit host, numeric port; port 0 or "*" is refused because clients
 * could not find it), or "inproc://NAME". Writes the kind to *kind when kind is not NULL.
 * Returns TB_OK or TB_ERR + err_get() naming the problem. */
int endpoint_check(const char *ep, endpoint_kind *kind);

/* The file path of an ipc endpoint (a pointer into ep), or NULL for other transports. */
const char *endpoint_ipc_path(const char *ep);

/* 1 when a tcp endpoint listens on every interface (0.0.0.0, :: or a star), else 0. */
int endpoint_is_wildcard(const char *ep);

#ifdef __cplusplus
}
#endif
#endif

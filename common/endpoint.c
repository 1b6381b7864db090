/* common/endpoint.c — see endpoint.h. */
#include "common/endpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/log.h"

const char *endpoint_ipc_path(const char *ep) {
  if (!ep || strncmp(ep, "ipc://", 6) != 0) return NULL;
  return ep + 6;
}

int endpoint_is_wildcard(const char *ep) {
  if (!ep || strncmp(ep, "tcp://", 6) != 0) return 0;
  const char *h = ep + 6;
  return strncmp(h, "*:", 2) == 0 || strncmp(h, "0.0.0.0:", 8) == 0 ||
         strncmp(h, "[::]:", 5) == 0;
}

int endpoint_check(const char *ep, endpoint_kind *kind) {
  if (!ep || !ep[0]) return err_set("empty endpoint (expected ipc://PATH or tcp://HOST:PORT)");
  if (strlen(ep) >= ENDPOINT_MAX)
    return err_set("endpoint of %zu bytes is longer than %d", strlen(ep), ENDPOINT_MAX - 1);
  const char *path = endpoint_ipc_path(ep);
  if (path) {
    size_t len = strlen(path);
    if (len == 0) return err_set("endpoint '%s' has no path", ep);
    if (len > ENDPOINT_IPC_PATH_MAX)
      return err_set("ipc path '%s' is %zu bytes, longer than the %d a Unix socket allows; "
                     "use a shorter workspace path or a tcp:// endpoint",
                     path, len, ENDPOINT_IPC_PATH_MAX);
    if (kind) *kind = ENDPOINT_IPC;
    return TB_OK;
  }
  if (strncmp(ep, "tcp://", 6) == 0) {
    const char *host = ep + 6;
    const char *colon = strrchr(host, ':');
    if (!colon || colon == host)
      return err_set("endpoint '%s' needs a host and a port (tcp://127.0.0.1:5555)", ep);
    const char *port = colon + 1;
    char *end = NULL;
    long p = strtol(port, &end, 10);
    if (!port[0] || *end || p <= 0 || p > 65535)
      return err_set("endpoint '%s' needs a numeric port in 1..65535 (an ephemeral port "
                     "could not be found by clients)", ep);
    if (kind) *kind = ENDPOINT_TCP;
    return TB_OK;
  }
  if (strncmp(ep, "inproc://", 9) == 0) {
    if (!ep[9]) return err_set("endpoint '%s' has no name", ep);
    if (kind) *kind = ENDPOINT_INPROC;
    return TB_OK;
  }
  return err_set("endpoint '%s' has an unknown transport (expected ipc://PATH or "
                 "tcp://HOST:PORT)", ep);
}

int endpoint_default(char *buf, size_t n, const char *workspace, const char *service) {
  if (!workspace || !workspace[0]) workspace = "runs/default";
  if (!service || !service[0]) return err_set("endpoint_default: no service name");
  char dir[ENDPOINT_MAX];
  if (!fs_join(dir, sizeof dir, workspace, ENDPOINT_SOCK_DIR))
    return err_set("workspace path '%s' is too long", workspace);
  int w = snprintf(buf, n, "ipc://%s/%s.ipc", dir, service);
  if (w < 0 || (size_t)w >= n) return err_set("endpoint for '%s' does not fit %zu bytes", service, n);
  if (endpoint_check(buf, NULL) != TB_OK) return TB_ERR;
  if (fs_mkdir_p(dir) != TB_OK) return err_wrap("making socket folder %s", dir);
  return TB_OK;
}

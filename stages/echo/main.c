/* stages/echo/main.c — a service that answers ping and echo, and a client to check services.
 *
 *   bin/echo [--workspace DIR] [--endpoint EP] [--name NAME]   serve until SIGINT/SIGTERM
 *   bin/echo --ping EP [--timeout S]       wait until EP answers ping; print the pong; exit 0/1
 *   bin/echo --call EP --bytes N           one echo round trip of an N-byte tensor, checked
 *   bin/echo ... --ignore-term             serve, but ignore SIGTERM (tests run.sh's KILL escalation)
 *
 * run.sh uses --ping to wait for every service it starts (pipelines/lib.sh).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/client.h"
#include "common/endpoint.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/service.h"
#include "common/tensor.h"

static int do_ping(const char *ep, double timeout_s) {
  msg *pong = NULL;
  if (client_wait_ready(ep, timeout_s, &pong) != TB_OK) {
    log_error("%s", err_get());
    return 1;
  }
  printf("service=%s pid=%lld uptime=%.3f protocol=%s schemas=%s\n",
         msg_str_or(pong, "service", "?"), (long long)msg_int_or(pong, "pid", 0),
         msg_float_or(pong, "uptime", 0), msg_str_or(pong, "protocol", "?"),
         msg_str_or(pong, "schemas", ""));
  msg_free(pong);
  return 0;
}

static int do_call(const char *ep, long long nbytes, double timeout_s, int tries) {
  if (nbytes < 0) nbytes = 0;
  int64_t shape[1] = {nbytes};
  tensor t = tensor_new(DTYPE_U8, 1, shape);
  uint8_t *p = t.data;
  for (long long i = 0; i < nbytes; i++) p[i] = (uint8_t)(i * 131 + (i >> 12));
  uint64_t sum = checksum64(t.data, (size_t)nbytes);
  client_opts o = client_opts_default();
  if (timeout_s > 0) o.timeout_s = timeout_s;
  if (tries > 0) o.tries = tries;
  client *c = client_new(ep, &o);
  if (!c) {
    log_error("%s", err_get());
    tensor_free(&t);
    return 1;
  }
  msg *req = msg_new(SERVICE_SCHEMA_ECHO, 1, 0);
  msg_set_str(req, "tag", "bin/echo --call");
  if (msg_add_tensor_owned(req, "x", &t) != TB_OK) {
    log_error("%s", err_get());
    msg_free(req);
    client_free(c);
    return 1;
  }
  double t0 = time_now();
  msg *rep = NULL;
  int rc = client_call(c, req, &rep);
  double dt = time_now() - t0;
  int ok = 0;
  if (rc != TB_OK) {
    log_error("%s", err_get());
  } else {
    const tensor *x = msg_tensor_get(rep, "x");
    int64_t got = x ? tensor_nbytes(x) : -1;
    uint64_t s2 = x ? checksum64(x->data, (size_t)got) : 0;
    ok = x && got == nbytes && s2 == sum;
    printf("echo %lld bytes: %s in %.3f ms (checksum %016llx)\n", nbytes,
           ok ? "ok" : "MISMATCH", dt * 1e3, (unsigned long long)s2);
  }
  msg_free(rep);
  msg_free(req);
  client_free(c);
  return ok ? 0 : 1;
}

int main(int argc, char **argv) {
  log_init("echo");
  char *workspace = "runs/default", *endpoint = NULL, *name = "echo";
  char *ping = NULL, *call = NULL, *schemas = NULL;
  double timeout_s = 0;
  long long nbytes = 4096;
  int tries = 0, ignore_term = 0;
  arg_opt opts[] = {
      {"workspace", ARG_STR, &workspace, "DIR", "run folder (socket under DIR/sock/)"},
      {"endpoint", ARG_STR, &endpoint, "EP", "ipc://PATH or tcp://HOST:PORT to serve on"},
      {"name", ARG_STR, &name, "NAME", "service name (pong, logs, default socket name)"},
      {"schemas", ARG_STR, &schemas, "DIR",
       "load the schemas of DIR too (default: only the built-in ping/echo ones)"},
      {"ping", ARG_STR, &ping, "EP", "client: wait until EP answers ping, print the pong"},
      {"call", ARG_STR, &call, "EP", "client: one echo round trip with a --bytes tensor"},
      {"bytes", ARG_I64, &nbytes, "N", "tensor size for --call"},
      {"timeout", ARG_F64, &timeout_s, "S",
       "client: seconds to wait (--ping: total, default 10; --call: per try, default 2.5)"},
      {"tries", ARG_INT, &tries, "N", "client: tries for --call (default 3)"},
      {"ignore-term", ARG_FLAG, &ignore_term, NULL,
       "serve but ignore SIGTERM (a stuck service, for testing run.sh's stop)"},
      {0}};
  int pos = args_parse(argc, argv, "echo [options]",
                       "Serves ping and echo; or, with --ping/--call, checks a service.", opts);
  if (pos < 0) return 2;
  if (ping) return do_ping(ping, timeout_s > 0 ? timeout_s : 10.0);
  if (call) return do_call(call, nbytes, timeout_s, tries);

  service_signals_install();
  if (ignore_term) signal(SIGTERM, SIG_IGN);
  service_opts so = service_opts_default(name);
  so.workspace = workspace;
  so.endpoint = endpoint;
  /* Built-in schemas unless asked: a broken file elsewhere in schemas/ must not stop the
   * service run.sh uses to check readiness. */
  schema_registry *reg = NULL;
  if (schemas ? schema_registry_load(schemas, &reg) != TB_OK : !(reg = schema_registry_new())) {
    log_error("%s", err_get());
    return 1;
  }
  so.registry = reg;
  service *s = service_new(&so);
  if (!s) {
    log_error("%s", err_get());
    schema_registry_free(reg);
    return 1;
  }
  int rc = service_run(s);
  if (rc != TB_OK) log_error("%s", err_get());
  service_free(s);
  schema_registry_free(reg);
  return rc == TB_OK ? 0 : 1;
}

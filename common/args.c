/* common/args.c — see args.h. */
#include "common/args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

void args_print_help(const char *usage, const char *summary, const arg_opt *opts) {
  printf("usage: %s\n", usage);
  if (summary && summary[0]) printf("\n%s\n", summary);
  printf("\noptions:\n");
  for (const arg_opt *o = opts; o && o->name; o++) {
    char left[64], def[96] = "";
    snprintf(left, sizeof left, "--%s%s%s", o->name, o->meta ? " " : "", o->meta ? o->meta : "");
    switch (o->kind) {
    case ARG_STR:
      if (*(char **)o->dst) snprintf(def, sizeof def, " (default: %s)", *(char **)o->dst);
      break;
    case ARG_INT: snprintf(def, sizeof def, " (default: %d)", *(int *)o->dst); break;
    case ARG_I64: snprintf(def, sizeof def, " (default: %lld)", *(long long *)o->dst); break;
    case ARG_F64: snprintf(def, sizeof def, " (default: %g)", *(double *)o->dst); break;
    case ARG_FLAG: break;
    }
    printf("  %-26s %s%s\n", left, o->help ? o->help : "", def);
  }
  printf("  %-26s %s\n", "--help", "show this help");
}

static int set_value(const arg_opt *o, const char *val) {
  char *end = NULL;
  errno = 0;
  switch (o->kind) {
  case ARG_STR: *(char **)o->dst = (char *)val; return 0;
  case ARG_INT: {
    long v = strtol(val, &end, 0);
    if (errno || !*val || *end || v < -2147483647L || v > 2147483647L) break;
    *(int *)o->dst = (int)v;
    return 0;
  }
  case ARG_I64: {
    long long v = strtoll(val, &end, 0);
    if (errno || !*val || *end) break;
    *(long long *)o->dst = v;
    return 0;
  }
  case ARG_F64: {
    double v = strtod(val, &end);
    if (errno || !*val || *end) break;
    *(double *)o->dst = v;
    return 0;
  }
  case ARG_FLAG: *(int *)o->dst = 1; return 0;
  }
  log_error("option --%s: '%s' is not a valid %s", o->name, val,
            o->kind == ARG_F64 ? "number" : "integer");
  return -1;
}

int args_parse(int argc, char **argv, const char *usage, const char *summary, arg_opt *opts) {
  char **pos = xcalloc((size_t)argc + 1, sizeof *pos);
  int npos = 0, nopt = 1, rc = 0;
  char **optv = xcalloc((size_t)argc + 1, sizeof *optv);
  optv[0] = argv[0];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      for (int j = i + 1; j < argc; j++) pos[npos++] = argv[j];
      break;
    }
    if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
      pos[npos++] = argv[i];
      continue;
    }
    optv[nopt++] = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      args_print_help(usage, summary, opts);
      exit(0);
    }
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    const arg_opt *o = NULL;
    for (const arg_opt *p = opts; p && p->name; p++)
      if (strlen(p->name) == nlen && strncmp(p->name, name, nlen) == 0) o = p;
    if (!o) {
      log_error("unknown option '%.*s' (see --help)", (int)(nlen + 2), a);
      rc = -1;
      break;
    }
    const char *val;
    if (o->kind == ARG_FLAG) {
      if (eq) {
        log_error("option --%s takes no value", o->name);
        rc = -1;
        break;
      }
      val = "1";
    } else if (eq) {
      val = eq + 1;
    } else if (i + 1 < argc) {
      val = argv[++i];
      optv[nopt++] = argv[i];
    } else {
      log_error("option --%s needs a value (%s)", o->name, o->meta ? o->meta : "value");
      rc = -1;
      break;
    }
    if (set_value(o, val) != 0) {
      rc = -1;
      break;
    }
  }
  if (rc == 0) {
    for (int i = 1; i < nopt; i++) argv[i] = optv[i];
    for (int i = 0; i < npos; i++) argv[nopt + i] = pos[i];
    rc = nopt;
  }
  free(pos);
  free(optv);
  return rc;
}

/* common/schema.c — schema files and the validator; see schema.h for the format. */
#include "common/schema.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/log.h"

#define SCHEMA_MAX_DIMNAMES 16 /* distinct named dimensions per schema */
#define SCHEMA_MAX_ONEOF 4     /* oneof groups per schema */
#define SCHEMA_ONEOF_MAX 8     /* names per oneof group */
#define LINE_TOKENS_MAX 24

typedef struct {
  char name[MSG_NAME_MAX];
  msg_field_type type;
  int required;
  int has_min, has_max;
  double min, max;
  int finite;
  int64_t maxlen; /* str bytes; -1: MSG_STR_MAX */
  int maxn;       /* array elements; -1: MSG_ARRAY_MAX */
  int lendim;     /* arrays: length must equal this named dim (len=B); -1: none */
} sfield;

enum { DIM_FIXED = 0, DIM_NAMED, DIM_ANY };

typedef struct {
  int kind;
  int64_t value; /* DIM_FIXED */
  int name;      /* DIM_NAMED: index into schema.dimnames */
} sdim;

typedef struct {
  char name[MSG_NAME_MAX]; /* "*": any tensor not declared by name */
  uint32_t dtypes;         /* bit per dtype_t */
  int any_shape;           /* shape=any */
  int ndim;
  sdim dims[TENSOR_MAX_DIMS];
  int finite;
  int required;
} stensor;

typedef struct {
  char name[MSG_NAME_MAX];
  int64_t min, max;
} sdimname;

typedef struct {
  char name[MSG_NAME_MAX];
  int version;
  char origin[256];
  int nfields;
  sfield fields[MSG_MAX_FIELDS];
  int ntensors;
  stensor tensors[MSG_MAX_TENSORS];
  int ndimnames;
  sdimname dimnames[SCHEMA_MAX_DIMNAMES];
  int noneof;
  int oneof_n[SCHEMA_MAX_ONEOF];
  char oneof[SCHEMA_MAX_ONEOF][SCHEMA_ONEOF_MAX][MSG_NAME_MAX];
  int64_t payload_max;
  int extra_allow;
} schema;

struct schema_registry {
  int n, cap;
  schema **s;
};

/* --- registry -------------------------------------------------------------------------------*/

schema_registry *schema_registry_new(void) { return xcalloc(1, sizeof(schema_registry)); }

void schema_registry_free(schema_registry *r) {
  if (!r) return;
  for (int i = 0; i < r->n; i++) free(r->s[i]);
  free(r->s);
  free(r);
}

static const schema *find(const schema_registry *r, const char *name, int version) {
  for (int i = 0; i < r->n; i++)
    if (r->s[i]->version == version && !strcmp(r->s[i]->name, name)) return r->s[i];
  return NULL;
}

int schema_registry_has(const schema_registry *r, const char *name, int version) {
  return find(r, name, version) != NULL;
}

int schema_registry_count(const schema_registry *r) { return r->n; }

const char *schema_registry_name_at(const schema_registry *r, int i, int *version) {
  if (i < 0 || i >= r->n) return NULL;
  if (version) *version = r->s[i]->version;
  return r->s[i]->name;
}

size_t schema_registry_list(const schema_registry *r, char *buf, size_t n) {
  size_t need = 0;
  if (n) buf[0] = 0;
  for (int i = 0; i < r->n; i++) {
    char item[MSG_NAME_MAX + 16];
    int k = snprintf(item, sizeof item, "%s%s/%d", i ? "," : "", r->s[i]->name, r->s[i]->version);
    if (n && need + (size_t)k < n) memcpy(buf + need, item, (size_t)k + 1);
    else if (n && need < n) buf[need] = 0;
    need += (size_t)k;
  }
  return need;
}

static int cmp_schema(const void *a, const void *b) {
  const schema *x = *(schema *const *)a, *y = *(schema *const *)b;
  int c = strcmp(x->name, y->name);
  return c ? c : (x->version > y->version) - (x->version < y->version);
}

/* --- parsing --------------------------------------------------------------------------------*/

typedef struct {
  const char *origin;
  int line;
} where;

#define PERR(w, ...) perr_at((w), __VA_ARGS__)
static int perr_at(const where *w, const char *fmt, ...) TB_PRINTF(2, 3);
static int perr_at(const where *w, const char *fmt, ...) {
  char msg_[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg_, sizeof msg_, fmt, ap);
  va_end(ap);
  return err_set("%s:%d: %s", w->origin, w->line, msg_);
}

static int parse_name(const where *w, const char *tok, char *dst, const char *what) {
  size_t n = strlen(tok);
  if (n == 0 || n >= MSG_NAME_MAX)
    return PERR(w, "%s name '%s' must be 1..%d bytes", what, tok, MSG_NAME_MAX - 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)tok[i];
    if (!(isalnum(c) || c == '_' || c == '.' || c == '-'))
      return PERR(w, "%s name '%s': only letters, digits, '_', '.', '-'", what, tok);
  }
  memcpy(dst, tok, n + 1);
  return TB_OK;
}

static int parse_double(const where *w, const char *s, double *out, const char *what) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || isnan(v)) return PERR(w, "%s '%s' is not a number", what, s);
  *out = v;
  return TB_OK;
}

static int parse_i64(const where *w, const char *s, int64_t *out, const char *what) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (end == s || *end || errno) return PERR(w, "%s '%s' is not an integer", what, s);
  *out = v;
  return TB_OK;
}

/* "512MiB", "64KiB", "4G", "1000": binary multiples. */
static int parse_size(const where *w, const char *s, int64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s || errno || s[0] == '-') return PERR(w, "size '%s' is not a byte count", s);
  int shift = 0;
  if (*end == 'K' || *end == 'k') shift = 10;
  else if (*end == 'M') shift = 20;
  else if (*end == 'G') shift = 30;
  else if (*end) return PERR(w, "size '%s': unit must be K, M or G (binary)", s);
  if (shift) {
    end++;
    if (*end == 'i') end++;
    if (*end == 'B') end++;
    if (*end) return PERR(w, "size '%s': unit must be K, M or G (binary)", s);
  }
  if (v > ((unsigned long long)INT64_MAX >> shift)) return PERR(w, "size '%s' too large", s);
  *out = (int64_t)(v << shift);
  return TB_OK;
}

static int type_from_name(const char *s) {
  for (int t = 0; t < MSG_FIELD_COUNT; t++)
    if (!strcmp(s, msg_field_type_name((msg_field_type)t))) return t;
  return -1;
}

static int dimname_index(schema *sc, const char *name, int create) {
  for (int i = 0; i < sc->ndimnames; i++)
    if (!strcmp(sc->dimnames[i].name, name)) return i;
  if (!create || sc->ndimnames >= SCHEMA_MAX_DIMNAMES) return -1;
  sdimname *d = &sc->dimnames[sc->ndimnames];
  snprintf(d->name, sizeof d->name, "%s", name);
  d->min = 0;
  d->max = INT64_MAX;
  return sc->ndimnames++;
}

/* "key=value" → value when tok starts with key=, else NULL. */
static const char *opt_val(const char *tok, const char *key) {
  size_t n = strlen(key);
  return !strncmp(tok, key, n) && tok[n] == '=' ? tok + n + 1 : NULL;
}

static int parse_field(const where *w, schema *sc, char **tok, int nt) {
  if (nt < 3) return PERR(w, "expected: field NAME TYPE [required|optional] [options]");
  if (sc->nfields >= MSG_MAX_FIELDS) return PERR(w, "more than %d fields", MSG_MAX_FIELDS);
  sfield *f = &sc->fields[sc->nfields];
  memset(f, 0, sizeof *f);
  if (parse_name(w, tok[1], f->name, "field") != TB_OK) return TB_ERR;
  if (!strcmp(f->name, MSG_KEY_SCHEMA) || !strcmp(f->name, MSG_KEY_VERSION) ||
      !strcmp(f->name, MSG_KEY_ID) || !strcmp(f->name, MSG_KEY_TENSORS))
    return PERR(w, "field name '%s' is reserved for the header", f->name);
  for (int i = 0; i < sc->nfields; i++)
    if (!strcmp(sc->fields[i].name, f->name)) return PERR(w, "field '%s' declared twice", f->name);
  int t = type_from_name(tok[2]);
  if (t < 0) return PERR(w, "field '%s': type '%s' (int float str bool ints floats)", f->name, tok[2]);
  f->type = (msg_field_type)t;
  f->required = 1;
  f->maxlen = -1;
  f->maxn = -1;
  f->lendim = -1;
  for (int i = 3; i < nt; i++) {
    const char *v;
    if (!strcmp(tok[i], "required")) f->required = 1;
    else if (!strcmp(tok[i], "optional")) f->required = 0;
    else if (!strcmp(tok[i], "finite")) f->finite = 1;
    else if ((v = opt_val(tok[i], "min"))) {
      if (parse_double(w, v, &f->min, "min") != TB_OK) return TB_ERR;
      f->has_min = 1;
    } else if ((v = opt_val(tok[i], "max"))) {
      if (parse_double(w, v, &f->max, "max") != TB_OK) return TB_ERR;
      f->has_max = 1;
    } else if ((v = opt_val(tok[i], "maxlen"))) {
      if (parse_i64(w, v, &f->maxlen, "maxlen") != TB_OK) return TB_ERR;
      if (f->maxlen < 0 || f->maxlen >= MSG_STR_MAX)
        return PERR(w, "maxlen must be 0..%d", MSG_STR_MAX - 1);
    } else if ((v = opt_val(tok[i], "maxn"))) {
      int64_t n;
      if (parse_i64(w, v, &n, "maxn") != TB_OK) return TB_ERR;
      if (n < 0 || n > MSG_ARRAY_MAX) return PERR(w, "maxn must be 0..%d", MSG_ARRAY_MAX);
      f->maxn = (int)n;
    } else if ((v = opt_val(tok[i], "len"))) {
      char nm[MSG_NAME_MAX];
      if (f->type != MSG_FIELD_INTS && f->type != MSG_FIELD_FLOATS)
        return PERR(w, "field '%s': len= applies to ints and floats", f->name);
      if (parse_name(w, v, nm, "dimension") != TB_OK) return TB_ERR;
      f->lendim = dimname_index(sc, nm, 1);
      if (f->lendim < 0) return PERR(w, "more than %d dimension names", SCHEMA_MAX_DIMNAMES);
    } else {
      return PERR(w, "field '%s': unknown option '%s'", f->name, tok[i]);
    }
  }
  sc->nfields++;
  return TB_OK;
}

static int parse_dtypes(const where *w, const char *s, uint32_t *mask) {
  char buf[128];
  snprintf(buf, sizeof buf, "%s", s);
  *mask = 0;
  char *save = NULL;
  for (char *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
    int dt = dtype_from_name(p);
    if (dt < 0) return PERR(w, "dtype '%s' (f32 bf16 f16 u8 i32 i64)", p);
    *mask |= 1u << dt;
  }
  if (!*mask) return PERR(w, "empty dtype list");
  return TB_OK;
}

static int parse_shape(const where *w, schema *sc, stensor *t, const char *s) {
  if (!strcmp(s, "any")) {
    t->any_shape = 1;
    return TB_OK;
  }
  char buf[256];
  snprintf(buf, sizeof buf, "%s", s);
  t->ndim = 0;
  if (!buf[0]) return TB_OK; /* shape= : a scalar */
  char *save = NULL;
  for (char *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
    if (t->ndim >= TENSOR_MAX_DIMS) return PERR(w, "shape '%s' has more than %d dims", s, TENSOR_MAX_DIMS);
    sdim *d = &t->dims[t->ndim++];
    if (!strcmp(p, "*")) {
      d->kind = DIM_ANY;
    } else if (isdigit((unsigned char)p[0])) {
      d->kind = DIM_FIXED;
      if (parse_i64(w, p, &d->value, "dimension") != TB_OK) return TB_ERR;
    } else {
      char nm[MSG_NAME_MAX];
      if (parse_name(w, p, nm, "dimension") != TB_OK) return TB_ERR;
      d->kind = DIM_NAMED;
      d->name = dimname_index(sc, nm, 1);
      if (d->name < 0) return PERR(w, "more than %d dimension names", SCHEMA_MAX_DIMNAMES);
    }
  }
  return TB_OK;
}

static int parse_tensor(const where *w, schema *sc, char **tok, int nt) {
  if (nt < 4) return PERR(w, "expected: tensor NAME DTYPES shape=DIMS [finite] [optional]");
  if (sc->ntensors >= MSG_MAX_TENSORS) return PERR(w, "more than %d tensors", MSG_MAX_TENSORS);
  stensor *t = &sc->tensors[sc->ntensors];
  memset(t, 0, sizeof *t);
  if (!strcmp(tok[1], "*")) strcpy(t->name, "*");
  else if (parse_name(w, tok[1], t->name, "tensor") != TB_OK) return TB_ERR;
  for (int i = 0; i < sc->ntensors; i++)
    if (!strcmp(sc->tensors[i].name, t->name))
      return PERR(w, "tensor '%s' declared twice", t->name);
  if (parse_dtypes(w, tok[2], &t->dtypes) != TB_OK) return TB_ERR;
  t->required = strcmp(t->name, "*") != 0;
  int have_shape = 0;
  for (int i = 3; i < nt; i++) {
    const char *v;
    if (!strcmp(tok[i], "required")) t->required = 1;
    else if (!strcmp(tok[i], "optional")) t->required = 0;
    else if (!strcmp(tok[i], "finite")) t->finite = 1;
    else if ((v = opt_val(tok[i], "shape"))) {
      if (parse_shape(w, sc, t, v) != TB_OK) return TB_ERR;
      have_shape = 1;
    } else {
      return PERR(w, "tensor '%s': unknown option '%s'", t->name, tok[i]);
    }
  }
  if (!have_shape) return PERR(w, "tensor '%s' lacks shape= (dims, or shape=any)", t->name);
  if (t->required && !strcmp(t->name, "*")) return PERR(w, "tensor '*' cannot be required");
  sc->ntensors++;
  return TB_OK;
}

static int parse_dim(const where *w, schema *sc, char **tok, int nt) {
  if (nt < 2) return PERR(w, "expected: dim NAME [min=N] [max=N]");
  char nm[MSG_NAME_MAX];
  if (parse_name(w, tok[1], nm, "dimension") != TB_OK) return TB_ERR;
  int k = dimname_index(sc, nm, 1);
  if (k < 0) return PERR(w, "more than %d dimension names", SCHEMA_MAX_DIMNAMES);
  for (int i = 2; i < nt; i++) {
    const char *v;
    if ((v = opt_val(tok[i], "min"))) {
      if (parse_i64(w, v, &sc->dimnames[k].min, "min") != TB_OK) return TB_ERR;
    } else if ((v = opt_val(tok[i], "max"))) {
      if (parse_i64(w, v, &sc->dimnames[k].max, "max") != TB_OK) return TB_ERR;
    } else {
      return PERR(w, "dim '%s': unknown option '%s'", nm, tok[i]);
    }
  }
  return TB_OK;
}

/* Checks after the block is complete. */
static int schema_finish(const where *w, schema *sc) {
  for (int d = 0; d < sc->ndimnames; d++) {
    int used = 0;
    for (int t = 0; t < sc->ntensors; t++)
      for (int a = 0; a < sc->tensors[t].ndim; a++)
        used |= sc->tensors[t].dims[a].kind == DIM_NAMED && sc->tensors[t].dims[a].name == d;
    if (!used) return PERR(w, "schema %s: dim '%s' is used by no tensor", sc->name, sc->dimnames[d].name);
  }
  for (int g = 0; g < sc->noneof; g++)
    for (int k = 0; k < sc->oneof_n[g]; k++) {
      const char *nm = sc->oneof[g][k];
      int found = 0;
      for (int t = 0; t < sc->ntensors; t++) found |= !strcmp(sc->tensors[t].name, nm) && !sc->tensors[t].required;
      for (int f = 0; f < sc->nfields; f++) found |= !strcmp(sc->fields[f].name, nm) && !sc->fields[f].required;
      if (!found)
        return PERR(w, "schema %s: oneof names '%s', which is no optional field or tensor", sc->name, nm);
    }
  return TB_OK;
}

int schema_registry_add_text(schema_registry *r, const char *text, const char *origin) {
  where w = {origin ? origin : "(text)", 0};
  schema *cur = NULL;
  schema **made = NULL;
  int nmade = 0, rc = TB_OK;
  const char *p = text;
  while (*p && rc == TB_OK) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    w.line++;
    char line[1024];
    if (len >= sizeof line) {
      rc = PERR(&w, "line longer than %zu bytes", sizeof line - 1);
      break;
    }
    memcpy(line, p, len);
    line[len] = 0;
    p += len + (eol ? 1 : 0);
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    char *tok[LINE_TOKENS_MAX];
    int nt = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
      if (nt >= LINE_TOKENS_MAX) {
        rc = PERR(&w, "more than %d words on a line", LINE_TOKENS_MAX);
        break;
      }
      tok[nt++] = t;
    }
    if (rc != TB_OK || nt == 0) continue;
    if (!strcmp(tok[0], "schema")) {
      if (cur && (rc = schema_finish(&w, cur)) != TB_OK) break;
      int64_t v;
      if (nt != 3) { rc = PERR(&w, "expected: schema NAME VERSION"); break; }
      cur = xcalloc(1, sizeof *cur);
      made = xrealloc(made, sizeof *made * (size_t)(nmade + 1));
      made[nmade++] = cur;
      cur->payload_max = MSG_PAYLOAD_MAX;
      snprintf(cur->origin, sizeof cur->origin, "%s", w.origin);
      if ((rc = parse_name(&w, tok[1], cur->name, "schema")) != TB_OK) break;
      if ((rc = parse_i64(&w, tok[2], &v, "version")) != TB_OK) break;
      if (v < 1 || v > 1000000) { rc = PERR(&w, "version must be 1..1000000"); break; }
      cur->version = (int)v;
      if (find(r, cur->name, cur->version)) {
        rc = PERR(&w, "schema %s v%d is already registered", cur->name, cur->version);
        break;
      }
      for (int i = 0; i + 1 < nmade; i++)
        if (made[i]->version == cur->version && !strcmp(made[i]->name, cur->name))
          rc = PERR(&w, "schema %s v%d declared twice", cur->name, cur->version);
      continue;
    }
    if (!cur) { rc = PERR(&w, "'%s' before the 'schema NAME VERSION' line", tok[0]); break; }
    if (!strcmp(tok[0], "field")) rc = parse_field(&w, cur, tok, nt);
    else if (!strcmp(tok[0], "tensor")) rc = parse_tensor(&w, cur, tok, nt);
    else if (!strcmp(tok[0], "dim")) rc = parse_dim(&w, cur, tok, nt);
    else if (!strcmp(tok[0], "limit")) {
      if (nt != 3 || strcmp(tok[1], "payload")) rc = PERR(&w, "expected: limit payload SIZE");
      else rc = parse_size(&w, tok[2], &cur->payload_max);
    } else if (!strcmp(tok[0], "extra")) {
      if (nt != 2 || (strcmp(tok[1], "allow") && strcmp(tok[1], "reject")))
        rc = PERR(&w, "expected: extra allow|reject");
      else cur->extra_allow = !strcmp(tok[1], "allow");
    } else if (!strcmp(tok[0], "oneof")) {
      if (nt < 3 || nt - 1 > SCHEMA_ONEOF_MAX) rc = PERR(&w, "expected: oneof NAME NAME [...] (2..%d names)", SCHEMA_ONEOF_MAX);
      else if (cur->noneof >= SCHEMA_MAX_ONEOF) rc = PERR(&w, "more than %d oneof lines", SCHEMA_MAX_ONEOF);
      else {
        int g = cur->noneof++;
        cur->oneof_n[g] = nt - 1;
        for (int k = 1; k < nt && rc == TB_OK; k++)
          rc = parse_name(&w, tok[k], cur->oneof[g][k - 1], "oneof");
      }
    } else {
      rc = PERR(&w, "unknown keyword '%s' (schema field tensor dim limit extra oneof)", tok[0]);
    }
  }
  if (rc == TB_OK && !cur) rc = err_set("%s: no 'schema NAME VERSION' line", w.origin);
  if (rc == TB_OK) rc = schema_finish(&w, cur);
  if (rc != TB_OK) {
    for (int i = 0; i < nmade; i++) free(made[i]);
    free(made);
    return TB_ERR;
  }
  if (r->n + nmade > r->cap) {
    r->cap = (r->n + nmade) * 2;
    r->s = xrealloc(r->s, sizeof *r->s * (size_t)r->cap);
  }
  for (int i = 0; i < nmade; i++) r->s[r->n++] = made[i];
  free(made);
  qsort(r->s, (size_t)r->n, sizeof *r->s, cmp_schema);
  return TB_OK;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int schema_registry_load(const char *dir, schema_registry **out) {
  *out = NULL;
  DIR *d = opendir(dir);
  if (!d) return err_set("schemas: cannot open folder %s: %s", dir, strerror(errno));
  char **names = NULL;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l > 7 && !strcmp(e->d_name + l - 7, ".schema") && e->d_name[0] != '.') {
      names = xrealloc(names, sizeof *names * (size_t)(n + 1));
      names[n++] = xstrdup(e->d_name);
    }
  }
  closedir(d);
  if (n == 0) {
    free(names);
    return err_set("schemas: no *.schema file in %s", dir);
  }
  qsort(names, (size_t)n, sizeof *names, cmp_str);
  schema_registry *r = schema_registry_new();
  int rc = TB_OK;
  for (int i = 0; i < n; i++) {
    char path[4096];
    if (rc == TB_OK) {
      char *text = NULL;
      size_t len = 0;
      if (!fs_join(path, sizeof path, dir, names[i])) rc = err_set("schemas: path too long");
      else if (fs_read_all(path, &text, &len) != TB_OK) rc = TB_ERR;
      else if (strlen(text) != len) rc = err_set("%s: contains a NUL byte", path);
      else rc = schema_registry_add_text(r, text, path);
      free(text);
    }
    free(names[i]);
  }
  free(names);
  if (rc != TB_OK) {
    schema_registry_free(r);
    return TB_ERR;
  }
  *out = r;
  return TB_OK;
}

const char *schema_dir_default(char *buf, size_t n) {
  const char *env = getenv("TURBO_SCHEMAS");
  if (env && env[0]) {
    if (!fs_is_dir(env)) {
      err_set("TURBO_SCHEMAS=%s is not a folder", env);
      return NULL;
    }
    snprintf(buf, n, "%s", env);
    return buf;
  }
  if (fs_is_dir("schemas")) {
    snprintf(buf, n, "schemas");
    return buf;
  }
  char exe[4096];
  ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (l > 0) {
    exe[l] = 0;
    char dir[4096];
    fs_dirname(dir, sizeof dir, exe);
    const char *ups[] = {"/../schemas", "/../../schemas", "/../../../schemas"};
    for (size_t i = 0; i < sizeof ups / sizeof ups[0]; i++) {
      char cand[4200];
      snprintf(cand, sizeof cand, "%s%s", dir, ups[i]);
      if (fs_is_dir(cand)) {
        snprintf(buf, n, "%s", cand);
        return buf;
      }
    }
  }
  err_set("no schemas folder: set TURBO_SCHEMAS or run from the repository root");
  return NULL;
}

int schema_registry_load_default(schema_registry **out) {
  char dir[4200];
  *out = NULL;
  if (!schema_dir_default(dir, sizeof dir)) return TB_ERR;
  return schema_registry_load(dir, out);
}

/* --- validation ---------------------------------------------------------------------------- */

/* Offset of the first byte that is not part of valid UTF-8 (no overlongs, no surrogates,
 * <= U+10FFFF), or n when all of s is valid. */
static size_t utf8_first_invalid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    int len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (!len || i + (size_t)len > n) return i;
    unsigned cp = c & (0x7F >> len);
    for (int k = 1; k < len; k++) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += (size_t)len;
  }
  return n;
}

static int fail(int *code, int c, const char *fmt, ...) TB_PRINTF(3, 4);
static int fail(int *code, int c, const char *fmt, ...) {
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (code) *code = c;
  return err_set("%s", text);
}

static void list_fields(const schema *sc, char *buf, size_t n) {
  size_t k = 0;
  buf[0] = 0;
  for (int i = 0; i < sc->nfields && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? ", " : "", sc->fields[i].name);
  if (!sc->nfields) snprintf(buf, n, "none");
}

static void list_tensors(const schema *sc, char *buf, size_t n) {
  size_t k = 0;
  buf[0] = 0;
  for (int i = 0; i < sc->ntensors && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? ", " : "", sc->tensors[i].name);
  if (!sc->ntensors) snprintf(buf, n, "none");
}

static void dtypes_str(uint32_t mask, char *buf, size_t n) {
  size_t k = 0;
  buf[0] = 0;
  for (int d = 0; d < DTYPE_COUNT && k < n; d++)
    if (mask & (1u << d)) k += (size_t)snprintf(buf + k, n - k, "%s%s", k ? "," : "", dtype_name((dtype_t)d));
}

static void spec_shape_str(const schema *sc, const stensor *t, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "(");
  for (int a = 0; a < t->ndim && k < n; a++) {
    const sdim *d = &t->dims[a];
    const char *sep = a ? ", " : "";
    if (d->kind == DIM_FIXED) k += (size_t)snprintf(buf + k, n - k, "%s%lld", sep, (long long)d->value);
    else if (d->kind == DIM_ANY) k += (size_t)snprintf(buf + k, n - k, "%s*", sep);
    else k += (size_t)snprintf(buf + k, n - k, "%s%s", sep, sc->dimnames[d->name].name);
  }
  if (k < n) snprintf(buf + k, n - k, ")");
}

static int check_number(const schema *sc, const sfield *sf, double v, const char *where_, int *code) {
  if (sf->finite && !isfinite(v))
    return fail(code, MSG_ERR_BAD_REQUEST, "%s v%d: field '%s'%s is %g, must be finite", sc->name,
                sc->version, sf->name, where_, v);
  if (isnan(v) && (sf->has_min || sf->has_max))
    return fail(code, MSG_ERR_BAD_REQUEST, "%s v%d: field '%s'%s is NaN, expected %g..%g", sc->name,
                sc->version, sf->name, where_, sf->has_min ? sf->min : -INFINITY,
                sf->has_max ? sf->max : INFINITY);
  if ((sf->has_min && v < sf->min) || (sf->has_max && v > sf->max))
    return fail(code, MSG_ERR_BAD_REQUEST, "%s v%d: field '%s'%s is %.17g, expected %g..%g",
                sc->name, sc->version, sf->name, where_, v, sf->has_min ? sf->min : -INFINITY,
                sf->has_max ? sf->max : INFINITY);
  return TB_OK;
}

static int check_field(const schema *sc, const sfield *sf, const msg_field *f, int *code) {
  int ok_type = f->type == sf->type || (sf->type == MSG_FIELD_FLOAT && f->type == MSG_FIELD_INT) ||
                (sf->type == MSG_FIELD_FLOATS && f->type == MSG_FIELD_INTS);
  if (!ok_type)
    return fail(code, MSG_ERR_BAD_REQUEST, "%s v%d: field '%s' is %s, expected %s", sc->name,
                sc->version, sf->name, msg_field_type_name(f->type), msg_field_type_name(sf->type));
  switch (sf->type) {
    case MSG_FIELD_INT:
    case MSG_FIELD_FLOAT: return check_number(sc, sf, f->type == MSG_FIELD_INT ? (double)f->i : f->f, "", code);
    case MSG_FIELD_STR: {
      size_t len = strlen(f->s);
      size_t bad = utf8_first_invalid(f->s, len);
      if (bad < len)
        return fail(code, MSG_ERR_BAD_REQUEST, "%s v%d: field '%s' is not valid UTF-8 (byte %zu)",
                    sc->name, sc->version, sf->name, bad);
      if (sf->maxlen >= 0 && (int64_t)len > sf->maxlen)
        return fail(code, MSG_ERR_BAD_REQUEST, "%s v%d: field '%s' is %zu bytes, at most %lld",
                    sc->name, sc->version, sf->name, len, (long long)sf->maxlen);
      return TB_OK;
    }
    case MSG_FIELD_BOOL: return TB_OK;
    case MSG_FIELD_INTS:
    case MSG_FIELD_FLOATS: {
      if (sf->maxn >= 0 && f->n > sf->maxn)
        return fail(code, MSG_ERR_BAD_REQUEST, "%s v%d: field '%s' has %d elements, at most %d",
                    sc->name, sc->version, sf->name, f->n, sf->maxn);
      for (int k = 0; k < f->n; k++) {
        char at[32];
        snprintf(at, sizeof at, "[%d]", k);
        double v = f->type == MSG_FIELD_INTS ? (double)f->ints[k] : f->floats[k];
        if (check_number(sc, sf, v, at, code) != TB_OK) return TB_ERR;
      }
      return TB_OK;
    }
    default: return fail(code, MSG_ERR_BAD_REQUEST, "field '%s': bad type", sf->name);
  }
}

/* Index of the first NaN/Inf element of a floating tensor, or -1. Scans in branch-free blocks
 * (the compiler vectorises them) and looks for the element only in a block that has one. */
#define SCAN_BLOCK 4096
static int64_t first_nonfinite(const tensor *t, int *is_nan) {
  int64_t n = tensor_numel(t);
  if (t->dtype == DTYPE_F32) {
    const uint32_t *p = (const uint32_t *)t->data;
    for (int64_t b = 0; b < n; b += SCAN_BLOCK) {
      int64_t e = b + SCAN_BLOCK < n ? b + SCAN_BLOCK : n;
      uint32_t bad = 0;
      for (int64_t i = b; i < e; i++) bad |= (p[i] & 0x7f800000u) == 0x7f800000u;
      if (!bad) continue;
      for (int64_t i = b; i < e; i++)
        if ((p[i] & 0x7f800000u) == 0x7f800000u) {
          *is_nan = (p[i] & 0x007fffffu) != 0;
          return i;
        }
    }
  } else if (t->dtype == DTYPE_BF16 || t->dtype == DTYPE_F16) {
    uint16_t em = t->dtype == DTYPE_BF16 ? 0x7f80u : 0x7c00u;
    uint16_t mm = t->dtype == DTYPE_BF16 ? 0x007fu : 0x03ffu;
    const uint16_t *p = (const uint16_t *)t->data;
    for (int64_t b = 0; b < n; b += SCAN_BLOCK) {
      int64_t e = b + SCAN_BLOCK < n ? b + SCAN_BLOCK : n;
      uint16_t bad = 0;
      for (int64_t i = b; i < e; i++) bad |= (uint16_t)((p[i] & em) == em);
      if (!bad) continue;
      for (int64_t i = b; i < e; i++)
        if ((p[i] & em) == em) {
          *is_nan = (p[i] & mm) != 0;
          return i;
        }
    }
  }
  return -1;
}

static const stensor *spec_for(const schema *sc, const char *name) {
  const stensor *wild = NULL;
  for (int i = 0; i < sc->ntensors; i++) {
    if (!strcmp(sc->tensors[i].name, name)) return &sc->tensors[i];
    if (!strcmp(sc->tensors[i].name, "*")) wild = &sc->tensors[i];
  }
  return wild;
}

int schema_validate(const schema_registry *r, const msg *m, int *code) {
  if (code) *code = 0;
  const char *name = msg_schema(m);
  int version = msg_version(m);
  const schema *sc = find(r, name, version);
  if (!sc) {
    char vs[128] = "";
    size_t k = 0;
    for (int i = 0; i < r->n && k < sizeof vs; i++)
      if (!strcmp(r->s[i]->name, name))
        k += (size_t)snprintf(vs + k, sizeof vs - k, "%s%d", k ? "," : "", r->s[i]->version);
    if (vs[0])
      return fail(code, MSG_ERR_UNKNOWN_SCHEMA,
                  "schema '%s' version %d is not supported here (versions: %s)", name, version, vs);
    char all[768];
    schema_registry_list(r, all, sizeof all);
    return fail(code, MSG_ERR_UNKNOWN_SCHEMA, "unknown schema '%s' (this service knows: %s)",
                name, all);
  }

  /* Fields: declared, typed, in range; then the required ones present. */
  for (int i = 0; i < msg_field_count(m); i++) {
    const msg_field *f = msg_field_at(m, i);
    const sfield *sf = NULL;
    for (int k = 0; k < sc->nfields; k++)
      if (!strcmp(sc->fields[k].name, f->name)) sf = &sc->fields[k];
    if (!sf) {
      if (sc->extra_allow) continue;
      char fl[512];
      list_fields(sc, fl, sizeof fl);
      return fail(code, MSG_ERR_BAD_REQUEST, "%s v%d: field '%s' is not in the schema (fields: %s)",
                  sc->name, sc->version, f->name, fl);
    }
    if (check_field(sc, sf, f, code) != TB_OK) return TB_ERR;
  }
  for (int k = 0; k < sc->nfields; k++)
    if (sc->fields[k].required && !msg_has(m, sc->fields[k].name))
      return fail(code, MSG_ERR_BAD_REQUEST, "%s v%d: required field '%s' (%s) is missing",
                  sc->name, sc->version, sc->fields[k].name,
                  msg_field_type_name(sc->fields[k].type));

  /* Tensors: declared, dtype, rank, fixed dims, named dims bounded and agreeing. */
  int64_t dimval[SCHEMA_MAX_DIMNAMES];
  const char *dimfrom[SCHEMA_MAX_DIMNAMES];
  int dimaxis[SCHEMA_MAX_DIMNAMES];
  for (int d = 0; d < SCHEMA_MAX_DIMNAMES; d++) dimfrom[d] = NULL;
  int64_t payload = 0;
  for (int i = 0; i < msg_tensor_count(m); i++) {
    const tensor *t = msg_tensor_at(m, i);
    const char *tn = msg_tensor_name(m, i);
    const stensor *st = spec_for(sc, tn);
    char sh[96], want[128];
    if (!st) {
      list_tensors(sc, want, sizeof want);
      return fail(code, MSG_ERR_BAD_REQUEST, "%s v%d: tensor '%s' (frame %d) is not in the schema (tensors: %s)",
                  sc->name, sc->version, tn, i + 1, want);
    }
    if (!(st->dtypes & (1u << t->dtype))) {
      dtypes_str(st->dtypes, want, sizeof want);
      return fail(code, MSG_ERR_BAD_REQUEST, "%s v%d: tensor '%s' is %s, expected %s", sc->name,
                  sc->version, tn, dtype_name(t->dtype), want);
    }
    payload += tensor_nbytes(t);
    if (st->any_shape) continue;
    spec_shape_str(sc, st, want, sizeof want);
    shape_str(t->ndim, t->shape, sh, sizeof sh);
    if (t->ndim != st->ndim)
      return fail(code, MSG_ERR_BAD_REQUEST, "%s v%d: tensor '%s' has shape %s (rank %d), expected %s (rank %d)",
                  sc->name, sc->version, tn, sh, t->ndim, want, st->ndim);
    for (int a = 0; a < st->ndim; a++) {
      const sdim *d = &st->dims[a];
      if (d->kind == DIM_FIXED && t->shape[a] != d->value)
        return fail(code, MSG_ERR_BAD_REQUEST, "%s v%d: tensor '%s' has shape %s, dim %d must be %lld (expected %s)",
                    sc->name, sc->version, tn, sh, a, (long long)d->value, want);
      if (d->kind != DIM_NAMED) continue;
      const sdimname *dn = &sc->dimnames[d->name];
      if (t->shape[a] < dn->min || t->shape[a] > dn->max)
        return fail(code, MSG_ERR_BAD_REQUEST, "%s v%d: tensor '%s' dim %d (%s) is %lld, expected %lld..%lld",
                    sc->name, sc->version, tn, a, dn->name, (long long)t->shape[a], (long long)dn->min,
                    (long long)dn->max);
      if (!dimfrom[d->name]) {
        dimfrom[d->name] = tn;
        dimval[d->name] = t->shape[a];
        dimaxis[d->name] = a;
      } else if (dimval[d->name] != t->shape[a]) {
        return fail(code, MSG_ERR_BAD_REQUEST,
                    "%s v%d: tensor '%s' dim %d (%s) is %lld but tensor '%s' dim %d has %s=%lld",
                    sc->name, sc->version, tn, a, dn->name, (long long)t->shape[a], dimfrom[d->name],
                    dimaxis[d->name], dn->name, (long long)dimval[d->name]);
      }
    }
  }
  for (int k = 0; k < sc->ntensors; k++)
    if (sc->tensors[k].required && msg_tensor_index(m, sc->tensors[k].name) < 0) {
      char want[128], dts[64];
      spec_shape_str(sc, &sc->tensors[k], want, sizeof want);
      dtypes_str(sc->tensors[k].dtypes, dts, sizeof dts);
      return fail(code, MSG_ERR_BAD_REQUEST, "%s v%d: required tensor '%s' (%s %s) is missing",
                  sc->name, sc->version, sc->tensors[k].name, dts, want);
    }
  for (int k = 0; k < sc->nfields; k++) {
    const sfield *sf = &sc->fields[k];
    const msg_field *f = msg_field_find(m, sf->name);
    if (sf->lendim < 0 || !f || !dimfrom[sf->lendim]) continue;
    if (f->n != dimval[sf->lendim])
      return fail(code, MSG_ERR_BAD_REQUEST,
                  "%s v%d: field '%s' has %d elements but tensor '%s' has %s=%lld", sc->name,
                  sc->version, sf->name, f->n, dimfrom[sf->lendim],
                  sc->dimnames[sf->lendim].name, (long long)dimval[sf->lendim]);
  }
  for (int g = 0; g < sc->noneof; g++) {
    int present = 0;
    char names[512];
    size_t k = 0;
    names[0] = 0;
    for (int j = 0; j < sc->oneof_n[g]; j++) {
      const char *nm = sc->oneof[g][j];
      present += msg_tensor_index(m, nm) >= 0 || msg_has(m, nm);
      if (k < sizeof names) k += (size_t)snprintf(names + k, sizeof names - k, "%s%s", j ? ", " : "", nm);
    }
    if (present != 1)
      return fail(code, MSG_ERR_BAD_REQUEST, "%s v%d: exactly one of %s must be present, found %d",
                  sc->name, sc->version, names, present);
  }
  if (payload > sc->payload_max)
    return fail(code, MSG_ERR_TOO_LARGE, "%s v%d: tensors total %lld bytes, limit %lld", sc->name,
                sc->version, (long long)payload, (long long)sc->payload_max);

  /* NaN/Inf last: it reads every byte. */
  for (int i = 0; i < msg_tensor_count(m); i++) {
    const tensor *t = msg_tensor_at(m, i);
    const stensor *st = spec_for(sc, msg_tensor_name(m, i));
    if (!st->finite) continue;
    int is_nan = 0;
    int64_t at = first_nonfinite(t, &is_nan);
    if (at >= 0)
      return fail(code, MSG_ERR_BAD_REQUEST, "%s v%d: tensor '%s' element %lld is %s; it must be finite",
                  sc->name, sc->version, msg_tensor_name(m, i), (long long)at, is_nan ? "NaN" : "Inf");
  }
  return TB_OK;
}

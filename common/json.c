/* common/json.c — see json.h. A recursive-descent parser over a byte range; recursion depth is
 * bounded by max_depth, allocations that depend on the input fail softly (TB_ERR) instead of
 * aborting, because a hostile document may ask for many nodes. */
#include "common/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

typedef struct {
  const unsigned char *s;
  size_t n, pos;
  int depth, max_depth;
  int allow_duplicates;
} parser;

static int parse_value(parser *p, json_value *out);

static int perr(const parser *p, size_t at, const char *what) {
  if (at < p->n) {
    unsigned char c = p->s[at];
    if (c >= 0x20 && c < 0x7f)
      return err_set("json: %s at byte %zu (found '%c')", what, at, c);
    return err_set("json: %s at byte %zu (found byte 0x%02x)", what, at, c);
  }
  return err_set("json: %s at byte %zu (end of input)", what, at);
}

static void skip_ws(parser *p) {
  while (p->pos < p->n) {
    unsigned char c = p->s[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    p->pos++;
  }
}

static void value_clear(json_value *v) {
  if (!v) return;
  switch (v->type) {
  case JSON_STRING:
    free(v->string);
    break;
  case JSON_ARRAY:
  case JSON_OBJECT:
    for (size_t i = 0; i < v->count; i++) {
      value_clear(&v->items[i]);
      if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->key_lens);
    break;
  default:
    break;
  }
  memset(v, 0, sizeof *v);
}

void json_free(json_value *v) {
  if (!v) return;
  value_clear(v);
  free(v);
}

/* ---- strings ---------------------------------------------------------------------------- */

static int hex4(parser *p, size_t at, unsigned *out) {
  if (p->n - at < 4) return perr(p, p->n, "truncated \\u escape");
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned char c = p->s[at + (size_t)i];
    unsigned d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return perr(p, at + (size_t)i, "bad hex digit in \\u escape");
    v = v * 16 + d;
  }
  *out = v;
  return TB_OK;
}

static size_t put_utf8(unsigned char *o, unsigned cp) {
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xc0 | (cp >> 6));
    o[1] = (unsigned char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xe0 | (cp >> 12));
    o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[2] = (unsigned char)(0x80 | (cp & 0x3f));
    return 3;
  }
  o[0] = (unsigned char)(0xf0 | (cp >> 18));
  o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
  o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
  o[3] = (unsigned char)(0x80 | (cp & 0x3f));
  return 4;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when invalid (overlong forms, UTF-16
 * surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_valid_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned cp, min;
  if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f, min = 0x80;
  else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f, min = 0x800;
  else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07, min = 0x10000;
  else return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

/* Parses a string starting at the opening quote; returns a malloc'd NUL-terminated copy. */
static int parse_string(parser *p, char **out, size_t *out_len) {
  size_t start = p->pos;
  p->pos++; /* opening quote */
  /* First pass: find the closing quote to size the buffer (escapes only shrink). */
  size_t end = p->pos;
  while (end < p->n && p->s[end] != '"') end += (p->s[end] == '\\') ? 2 : 1;
  if (end >= p->n) return perr(p, start, "unterminated string starting");
  unsigned char *buf = malloc(end - p->pos + 1);
  if (!buf) return err_set("json: out of memory for a %zu-byte string at byte %zu", end - p->pos, start);
  size_t o = 0;
  while (p->pos < end) {
    unsigned char c = p->s[p->pos];
    if (c < 0x20) {
      free(buf);
      return perr(p, p->pos, "unescaped control character in string");
    }
    if (c != '\\') {
      size_t l = utf8_valid_len(p->s + p->pos, end - p->pos);
      if (!l) {
        free(buf);
        return perr(p, p->pos, "invalid UTF-8 in string");
      }
      memcpy(buf + o, p->s + p->pos, l);
      o += l;
      p->pos += l;
      continue;
    }
    size_t esc = p->pos;
    char e = (char)p->s[p->pos + 1];
    p->pos += 2;
    switch (e) {
    case '"': buf[o++] = '"'; break;
    case '\\': buf[o++] = '\\'; break;
    case '/': buf[o++] = '/'; break;
    case 'b': buf[o++] = '\b'; break;
    case 'f': buf[o++] = '\f'; break;
    case 'n': buf[o++] = '\n'; break;
    case 'r': buf[o++] = '\r'; break;
    case 't': buf[o++] = '\t'; break;
    case 'u': {
      unsigned cp;
      if (hex4(p, p->pos, &cp)) goto fail;
      p->pos += 4;
      if (cp >= 0xdc00 && cp <= 0xdfff) {
        perr(p, esc, "lone low surrogate in \\u escape");
        goto fail;
      }
      if (cp >= 0xd800 && cp <= 0xdbff) {
        unsigned lo;
        if (p->pos + 6 > end || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
          perr(p, esc, "high surrogate not followed by a \\u low surrogate");
          goto fail;
        }
        if (hex4(p, p->pos + 2, &lo)) goto fail;
        if (lo < 0xdc00 || lo > 0xdfff) {
          perr(p, p->pos, "high surrogate not followed by a low surrogate");
          goto fail;
        }
        p->pos += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      }
      /* A \u escape is 6 input bytes (12 for a pair) and yields at most 3 (4) bytes. */
      o += put_utf8(buf + o, cp);
      break;
    }
    default:
      perr(p, esc, "invalid escape in string");
      goto fail;
    }
  }
  p->pos = end + 1;
  buf[o] = 0;
  *out = (char *)buf;
  *out_len = o;
  return TB_OK;
fail:
  free(buf);
  return TB_ERR;
}

/* ---- numbers ---------------------------------------------------------------------------- */

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int parse_number(parser *p, json_value *out) {
  size_t start = p->pos, i = p->pos;
  int neg = 0, integral = 1;
  if (i < p->n && p->s[i] == '-') neg = 1, i++;
  if (i >= p->n || !is_digit(p->s[i])) return perr(p, i, "expected a digit");
  if (p->s[i] == '0') {
    i++;
    if (i < p->n && is_digit(p->s[i])) return perr(p, start, "leading zero in number");
  } else {
    while (i < p->n && is_digit(p->s[i])) i++;
  }
  if (i < p->n && p->s[i] == '.') {
    integral = 0;
    i++;
    if (i >= p->n || !is_digit(p->s[i])) return perr(p, i, "expected a digit after '.'");
    while (i < p->n && is_digit(p->s[i])) i++;
  }
  if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
    integral = 0;
    i++;
    if (i < p->n && (p->s[i] == '+' || p->s[i] == '-')) i++;
    if (i >= p->n || !is_digit(p->s[i])) return perr(p, i, "expected a digit in exponent");
    while (i < p->n && is_digit(p->s[i])) i++;
  }
  size_t len = i - start;
  char small[64], *tmp = small;
  if (len >= sizeof small) {
    tmp = malloc(len + 1);
    if (!tmp) return err_set("json: out of memory for a number at byte %zu", start);
  }
  memcpy(tmp, p->s + start, len);
  tmp[len] = 0;
  out->type = JSON_NUMBER;
  out->number = strtod(tmp, NULL);
  if (tmp != small) free(tmp);
  if (isinf(out->number)) return perr(p, start, "number out of range");
  out->is_int = 0;
  if (integral) {
    /* Exact int64 from the digits; beyond int64 keep only the double. */
    uint64_t mag = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    int ok = 1;
    for (size_t k = start + (size_t)neg; k < i; k++) {
      unsigned d = p->s[k] - '0';
      if (mag > (lim - d) / 10) {
        ok = 0;
        break;
      }
      mag = mag * 10 + d;
    }
    if (ok) {
      out->is_int = 1;
      out->integer = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    }
  } else if (out->number == floor(out->number) && fabs(out->number) < 9007199254740992.0) {
    out->is_int = 1;
    out->integer = (int64_t)out->number;
  }
  p->pos = i;
  return TB_OK;
}

/* ---- containers ------------------------------------------------------------------------- */

static int grow(void **ptr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return TB_OK;
  size_t nc = *cap ? *cap * 2 : 4;
  while (nc < need) nc *= 2;
  void *np = realloc(*ptr, nc * elem);
  if (!np) return TB_ERR;
  *ptr = np;
  *cap = nc;
  return TB_OK;
}

typedef struct {
  const char *key;
  size_t len;
} key_ref;

static int key_cmp(const void *a, const void *b) {
  const key_ref *x = a, *y = b;
  size_t m = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->key, y->key, m);
  if (c) return c;
  return (x->len > y->len) - (x->len < y->len);
}

/* Duplicate keys: sort references to the names, then compare neighbours (n log n, so headers
 * with thousands of tensors stay cheap). */
static int check_duplicates(parser *p, const json_value *obj) {
  if (obj->count < 2) return TB_OK;
  if (obj->count <= 8) { /* small objects: pairwise, no allocation */
    for (size_t i = 1; i < obj->count; i++)
      for (size_t j = 0; j < i; j++)
        if (obj->key_lens[i] == obj->key_lens[j] && memcmp(obj->keys[i], obj->keys[j], obj->key_lens[i]) == 0)
          return err_set("json: duplicate key \"%.200s\" in the object at byte %zu", obj->keys[i], obj->offset);
    return TB_OK;
  }
  key_ref *refs = malloc(obj->count * sizeof *refs);
  if (!refs) return err_set("json: out of memory checking keys of the object at byte %zu", obj->offset);
  for (size_t i = 0; i < obj->count; i++) refs[i] = (key_ref){obj->keys[i], obj->key_lens[i]};
  qsort(refs, obj->count, sizeof *refs, key_cmp);
  for (size_t i = 1; i < obj->count; i++) {
    if (key_cmp(&refs[i - 1], &refs[i]) == 0) {
      int r = err_set("json: duplicate key \"%.200s\" in the object at byte %zu", refs[i].key,
                      obj->offset);
      free(refs);
      return r;
    }
  }
  free(refs);
  (void)p;
  return TB_OK;
}

static int parse_container(parser *p, json_value *out, int is_obj) {
  size_t start = p->pos;
  if (++p->depth > p->max_depth) {
    return err_set("json: nesting deeper than %d at byte %zu", p->max_depth, start);
  }
  out->type = is_obj ? JSON_OBJECT : JSON_ARRAY;
  p->pos++;
  size_t cap = 0, kcap = 0, lcap = 0;
  unsigned char close = is_obj ? '}' : ']';
  skip_ws(p);
  if (p->pos < p->n && p->s[p->pos] == close) {
    p->pos++;
    p->depth--;
    return TB_OK;
  }
  for (;;) {
    skip_ws(p);
    if (grow((void **)&out->items, &cap, out->count + 1, sizeof *out->items))
      return err_set("json: out of memory at byte %zu", p->pos);
    json_value *item = &out->items[out->count];
    memset(item, 0, sizeof *item);
    if (is_obj) {
      if (grow((void **)&out->keys, &kcap, out->count + 1, sizeof *out->keys) ||
          grow((void **)&out->key_lens, &lcap, out->count + 1, sizeof *out->key_lens))
        return err_set("json: out of memory at byte %zu", p->pos);
      if (p->pos >= p->n || p->s[p->pos] != '"') return perr(p, p->pos, "expected a string key");
      char *key;
      size_t klen;
      if (parse_string(p, &key, &klen)) return TB_ERR;
      out->keys[out->count] = key;
      out->key_lens[out->count] = klen;
      out->count++; /* counted now so that value_clear frees the key on a later error */
      skip_ws(p);
      if (p->pos >= p->n || p->s[p->pos] != ':') return perr(p, p->pos, "expected ':' after key");
      p->pos++;
      skip_ws(p);
      if (parse_value(p, item)) return TB_ERR;
    } else {
      out->count++;
      if (parse_value(p, item)) return TB_ERR;
    }
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == ',') {
      p->pos++;
      skip_ws(p);
      if (p->pos < p->n && p->s[p->pos] == close)
        return perr(p, p->pos, is_obj ? "trailing comma in object" : "trailing comma in array");
      continue;
    }
    if (p->pos < p->n && p->s[p->pos] == close) {
      p->pos++;
      break;
    }
    return perr(p, p->pos, is_obj ? "expected ',' or '}' in object" : "expected ',' or ']' in array");
  }
  p->depth--;
  if (is_obj && !p->allow_duplicates) return check_duplicates(p, out);
  return TB_OK;
}

static int match_word(parser *p, const char *w) {
  size_t l = strlen(w);
  if (p->n - p->pos < l || memcmp(p->s + p->pos, w, l) != 0) return 0;
  p->pos += l;
  return 1;
}

static int parse_value(parser *p, json_value *out) {
  skip_ws(p);
  out->offset = p->pos;
  if (p->pos >= p->n) return perr(p, p->pos, "expected a value");
  unsigned char c = p->s[p->pos];
  switch (c) {
  case '{': return parse_container(p, out, 1);
  case '[': return parse_container(p, out, 0);
  case '"':
    if (parse_string(p, &out->string, &out->len)) return TB_ERR;
    out->type = JSON_STRING;
    return TB_OK;
  case 't':
  case 'f':
  case 'n':
    if (match_word(p, "true")) out->type = JSON_BOOL, out->boolean = 1;
    else if (match_word(p, "false")) out->type = JSON_BOOL, out->boolean = 0;
    else if (match_word(p, "null")) out->type = JSON_NULL;
    else return perr(p, p->pos, "invalid literal");
    return TB_OK;
  default:
    if (c == '-' || is_digit(c)) return parse_number(p, out);
    return perr(p, p->pos, "expected a value");
  }
}

json_value *json_parse(const char *text, size_t len, const json_options *opts) {
  json_options o = {0};
  if (opts) o = *opts;
  if (o.max_depth <= 0) o.max_depth = JSON_DEFAULT_MAX_DEPTH;
  if (o.max_bytes == 0) o.max_bytes = JSON_DEFAULT_MAX_BYTES;
  if (!text && len) {
    err_set("json: NULL input");
    return NULL;
  }
  if (len > o.max_bytes) {
    err_set("json: input of %zu bytes exceeds the limit of %zu bytes", len, o.max_bytes);
    return NULL;
  }
  parser p = {(const unsigned char *)text, len, 0, 0, o.max_depth, o.allow_duplicates};
  json_value *v = calloc(1, sizeof *v);
  if (!v) {
    err_set("json: out of memory");
    return NULL;
  }
  if (parse_value(&p, v)) {
    json_free(v);
    return NULL;
  }
  skip_ws(&p);
  if (p.pos != p.n) {
    perr(&p, p.pos, "unexpected data after the value");
    json_free(v);
    return NULL;
  }
  return v;
}

/* ---- access ----------------------------------------------------------------------------- */

const json_value *json_get(const json_value *obj, const char *key) {
  if (!obj || obj->type != JSON_OBJECT || !key) return NULL;
  size_t kl = strlen(key);
  for (size_t i = 0; i < obj->count; i++)
    if (obj->key_lens[i] == kl && memcmp(obj->keys[i], key, kl) == 0) return &obj->items[i];
  return NULL;
}

const json_value *json_at(const json_value *arr, size_t i) {
  if (!arr || arr->type != JSON_ARRAY || i >= arr->count) return NULL;
  return &arr->items[i];
}

const char *json_type_name(json_type t) {
  static const char *names[] = {"null", "bool", "number", "string", "array", "object"};
  return (unsigned)t <= JSON_OBJECT ? names[t] : "?";
}

static const json_value *get_typed(const json_value *obj, const char *key, json_type t,
                                   const char *expected) {
  if (!obj || obj->type != JSON_OBJECT) {
    err_set("looking up field '%s': not an object", key);
    return NULL;
  }
  const json_value *v = json_get(obj, key);
  if (!v) {
    err_set("missing field '%s'", key);
    return NULL;
  }
  if (v->type != t) {
    err_set("field '%s' is %s %s, expected %s", key, v->type == JSON_ARRAY || v->type == JSON_OBJECT ? "an" : "a",
            json_type_name(v->type), expected);
    return NULL;
  }
  return v;
}

int json_get_string(const json_value *obj, const char *key, const char **out) {
  const json_value *v = get_typed(obj, key, JSON_STRING, "a string");
  if (!v) return TB_ERR;
  *out = v->string;
  return TB_OK;
}

int json_get_int64(const json_value *obj, const char *key, int64_t *out) {
  const json_value *v = get_typed(obj, key, JSON_NUMBER, "an integer");
  if (!v) return TB_ERR;
  if (!v->is_int) return err_set("field '%s' is %g, expected an integer", key, v->number);
  *out = v->integer;
  return TB_OK;
}

int json_get_number(const json_value *obj, const char *key, double *out) {
  const json_value *v = get_typed(obj, key, JSON_NUMBER, "a number");
  if (!v) return TB_ERR;
  *out = v->number;
  return TB_OK;
}

int json_get_bool(const json_value *obj, const char *key, int *out) {
  const json_value *v = get_typed(obj, key, JSON_BOOL, "true or false");
  if (!v) return TB_ERR;
  *out = v->boolean;
  return TB_OK;
}

/* ---- writing ---------------------------------------------------------------------------- */

static void buf_reserve(json_buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return;
  size_t nc = b->cap ? b->cap : 64;
  while (nc < b->len + extra + 1) nc *= 2;
  b->data = xrealloc(b->data, nc);
  b->cap = nc;
}

void json_buf_append(json_buf *b, const void *data, size_t n) {
  buf_reserve(b, n);
  if (n) memcpy(b->data + b->len, data, n);
  b->len += n;
  b->data[b->len] = 0;
}

void json_buf_puts(json_buf *b, const char *s) { json_buf_append(b, s, strlen(s)); }

void json_buf_printf(json_buf *b, const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n > 0) {
    buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    b->len += (size_t)n;
  } else {
    buf_reserve(b, 0);
    b->data[b->len] = 0;
  }
  va_end(ap2);
}

void json_buf_put_string(json_buf *b, const char *s, size_t n) {
  buf_reserve(b, n + 2);
  b->data[b->len++] = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    switch (c) {
    case '"': esc = "\\\""; break;
    case '\\': esc = "\\\\"; break;
    case '\n': esc = "\\n"; break;
    case '\r': esc = "\\r"; break;
    case '\t': esc = "\\t"; break;
    case '\b': esc = "\\b"; break;
    case '\f': esc = "\\f"; break;
    default: break;
    }
    if (esc) json_buf_puts(b, esc);
    else if (c < 0x20) json_buf_printf(b, "\\u%04x", c);
    else json_buf_append(b, &s[i], 1);
  }
  json_buf_append(b, "\"", 1);
}

void json_buf_put_number(json_buf *b, double x) {
  if (!isfinite(x)) json_buf_puts(b, "null");
  else if (x == floor(x) && fabs(x) < 9007199254740992.0) json_buf_printf(b, "%lld", (long long)x);
  else json_buf_printf(b, "%.17g", x);
}

void json_buf_put_value(json_buf *b, const json_value *v) {
  switch (v->type) {
  case JSON_NULL: json_buf_puts(b, "null"); break;
  case JSON_BOOL: json_buf_puts(b, v->boolean ? "true" : "false"); break;
  case JSON_NUMBER:
    if (v->is_int) json_buf_printf(b, "%lld", (long long)v->integer);
    else json_buf_put_number(b, v->number);
    break;
  case JSON_STRING: json_buf_put_string(b, v->string, v->len); break;
  case JSON_ARRAY:
  case JSON_OBJECT:
    json_buf_append(b, v->type == JSON_ARRAY ? "[" : "{", 1);
    for (size_t i = 0; i < v->count; i++) {
      if (i) json_buf_append(b, ",", 1);
      if (v->type == JSON_OBJECT) {
        json_buf_put_string(b, v->keys[i], v->key_lens[i]);
        json_buf_append(b, ":", 1);
      }
      json_buf_put_value(b, &v->items[i]);
    }
    json_buf_append(b, v->type == JSON_ARRAY ? "]" : "}", 1);
    break;
  }
}

void json_buf_free(json_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

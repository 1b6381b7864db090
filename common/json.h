/* common/json.h — a small strict JSON parser (RFC 8259) and a writer buffer.
 *
 * Parsing builds a tree of json_value nodes. It is strict: no comments, no trailing commas, no
 * leading zeros, no NaN/Infinity, no control characters or invalid UTF-8 inside strings, no lone
 * surrogates, no duplicate object keys (by default), nothing but whitespace after the value.
 * \uXXXX escapes (surrogate pairs included) become UTF-8. Every error message names the byte
 * offset in the input where the problem was found. Depth and input size are bounded so that
 * hostile input (a peer's message, a file header) cannot exhaust the stack or memory.
 *
 * Used for schemas, JSONL manifests and safetensors headers.
 */
#ifndef TURBO_JSON_H
#define TURBO_JSON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define JSON_DEFAULT_MAX_DEPTH 128         /* nesting of arrays/objects */
#define JSON_DEFAULT_MAX_BYTES (256u << 20) /* 256 MiB of input */

typedef enum {
  JSON_NULL = 0,
  JSON_BOOL,
  JSON_NUMBER,
  JSON_STRING,
  JSON_ARRAY,
  JSON_OBJECT
} json_type;

typedef struct json_value json_value;
struct json_value {
  json_type type;
  int boolean;      /* JSON_BOOL: 0 or 1 */
  int is_int;       /* JSON_NUMBER: 1 when `integer` holds the value exactly */
  size_t offset;    /* byte offset of the value's first character in the input */
  double number;    /* JSON_NUMBER (nearest double) */
  int64_t integer;  /* JSON_NUMBER with is_int: exact value (integral literal within int64,
                       or an integral double of magnitude below 2^53) */
  char *string;     /* JSON_STRING: UTF-8, NUL-terminated; may hold \0 (see len) */
  size_t len;       /* JSON_STRING: bytes, excluding the terminating NUL */
  size_t count;     /* JSON_ARRAY elements / JSON_OBJECT members */
  json_value *items; /* JSON_ARRAY elements, JSON_OBJECT member values (in input order) */
  char **keys;       /* JSON_OBJECT member names, parallel to items; NUL-terminated */
  size_t *key_lens;  /* JSON_OBJECT name lengths in bytes */
};

typedef struct {
  int max_depth;        /* 0: JSON_DEFAULT_MAX_DEPTH */
  size_t max_bytes;     /* 0: JSON_DEFAULT_MAX_BYTES */
  int allow_duplicates; /* 1: keep duplicate keys (json_get finds the first) */
} json_options;

/* Parses `len` bytes of `text` (need not be NUL-terminated) into a tree the caller frees with
 * json_free. Returns NULL on error with err_get() saying what and at which byte offset. `opts`
 * may be NULL for the defaults. */
json_value *json_parse(const char *text, size_t len, const json_options *opts);
/* Frees a tree from json_parse (NULL is fine). */
void json_free(json_value *v);

/* Member `key` of an object; NULL when v is not an object or has no such member. */
const json_value *json_get(const json_value *obj, const char *key);
/* Element i of an array; NULL when v is not an array or i is out of range. */
const json_value *json_at(const json_value *arr, size_t i);
/* "null", "bool", "number", "string", "array", "object". */
const char *json_type_name(json_type t);

/* Typed lookups for fixed-layout documents. Each returns TB_OK, or TB_ERR with a message
 * naming the key and what was found instead ("field 'steps' is a string, expected an
 * integer"). The returned string points into the tree. */
int json_get_string(const json_value *obj, const char *key, const char **out);
int json_get_int64(const json_value *obj, const char *key, int64_t *out);
int json_get_number(const json_value *obj, const char *key, double *out);
int json_get_bool(const json_value *obj, const char *key, int *out);

/* A growable byte buffer for writing JSON (or anything). Start with `json_buf b = {0};`; the
 * data is always NUL-terminated; release with json_buf_free. Appends abort on out-of-memory. */
typedef struct {
  char *data;
  size_t len, cap;
} json_buf;

void json_buf_append(json_buf *b, const void *data, size_t n);
void json_buf_puts(json_buf *b, const char *s);
void json_buf_printf(json_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s (n bytes) as a quoted JSON string: ", \, control characters escaped (\n, \t, …,
 * \u00XX otherwise); other bytes copied as they are (the caller passes UTF-8). */
void json_buf_put_string(json_buf *b, const char *s, size_t n);
/* Appends a number: integers exactly, other doubles with 17 significant digits; NaN and Inf
 * (which JSON cannot hold) as null. */
void json_buf_put_number(json_buf *b, double x);
/* Appends a compact serialisation of a tree (parse(write(v)) gives v back). */
void json_buf_put_value(json_buf *b, const json_value *v);
void json_buf_free(json_buf *b);

#ifdef __cplusplus
}
#endif
#endif

/* common/schema.h — the message schemas (schemas/NAME.schema) and the one validator every
 * received header goes through.
 *
 * A schema file is a list of lines; '#' starts a comment, blank lines are ignored:
 *
 *   schema teacher.step 1                      name and version (one per file, first line)
 *   field  w     float  required min=0 max=100 finite
 *   field  note  str    optional maxlen=256
 *   field  ks    ints   optional maxn=8 min=0     (arrays: maxn bounds the element count,
 *                                                  min/max each element)
 *   field  t     ints   required len=B            (array length must equal tensor dim B)
 *   tensor z     f32    shape=B,4,T,H,W finite   (dims: a number, a name that must agree across
 *   tensor emb   f32,bf16 shape=B,L,D optional    the tensors of one message, or * for any)
 *   limit  payload 512MiB                         (bytes of all tensor frames; K/M/GiB suffixes)
 *   extra  allow                                  (accept undeclared fields; default: reject)
 *   oneof  text_emb tokens                        (exactly one of these optional fields or
 *                                                  tensors must be present)
 *   tensor *     f32,u8 shape=any optional        (any tensor not declared by name)
 *
 * Field types: int float str bool ints floats. Tensor dtypes: f32 bf16 f16 u8 i32 i64 (a
 * comma-separated set). Options: required|optional, min=, max=, finite (float fields and
 * floating tensors: NaN/Inf rejected), maxlen= (str bytes), maxn= (array elements),
 * dim bounds for named dims with `dim NAME min=1 max=64`.
 *
 * Errors: TB_OK / TB_ERR with err_get() naming the file, line and token.
 */
#ifndef TURBO_SCHEMA_H
#define TURBO_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "common/msg.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct schema_registry schema_registry;

/* An empty registry; free with schema_registry_free. */
schema_registry *schema_registry_new(void);
void schema_registry_free(schema_registry *r); /* NULL is fine */

/* Parses one schema's text and adds it. origin names it in errors ("schemas/echo.schema").
 * TB_ERR on a syntax error or a duplicate name+version; the registry is unchanged then. */
int schema_registry_add_text(schema_registry *r, const char *text, const char *origin);

/* Loads every *.schema file of dir into a new registry (*out, caller frees). TB_ERR (and *out
 * NULL) when the folder cannot be read, holds no schema, or any file fails to parse. */
int schema_registry_load(const char *dir, schema_registry **out);

/* The folder turbo loads schemas from: $TURBO_SCHEMAS, else ./schemas, else schemas/ beside
 * or above the executable (bin/../schemas, build/bin/../../schemas). Writes it into buf and
 * returns buf, or NULL (with err) when none exists. */
const char *schema_dir_default(char *buf, size_t n);
/* schema_registry_load(schema_dir_default()). */
int schema_registry_load_default(schema_registry **out);

/* Number of schemas, and the i-th name and version (sorted by name, then version). */
int schema_registry_count(const schema_registry *r);
const char *schema_registry_name_at(const schema_registry *r, int i, int *version);
/* 1 when name+version is registered. */
int schema_registry_has(const schema_registry *r, const char *name, int version);
/* "echo/1,error/1,ping/1,…" into buf (truncated to fit, always NUL-terminated); returns the
 * length it needed (like snprintf). Used by the pong reply. */
size_t schema_registry_list(const schema_registry *r, char *buf, size_t n);

/* Checks a decoded message against its schema: unknown name or version, missing, extra or
 * mistyped fields, out-of-range values, string and array lengths, tensor names (missing,
 * unexpected), dtypes, ranks, fixed dims, named dims that disagree between tensors, dim
 * bounds, the payload limit and NaN/Inf in fields or tensors marked finite. Byte counts and
 * the frame count are checked by msg_decode_frames before this is called.
 * TB_OK, or TB_ERR with err_get() naming the field/tensor/dim and what was expected;
 * *code (may be NULL) gets MSG_ERR_UNKNOWN_SCHEMA, MSG_ERR_TOO_LARGE or MSG_ERR_BAD_REQUEST. */
int schema_validate(const schema_registry *r, const msg *m, int *code);

#ifdef __cplusplus
}
#endif
#endif

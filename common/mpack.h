/* common/mpack.h — a bounded msgpack reader for untrusted bytes (message headers).
 *
 * msgpack-c's unpacker sizes its allocations from the counts a peer declares; this reader
 * allocates nothing. It walks the buffer item by item: every string, binary and ext length is
 * checked against the bytes that remain, every array count against the bytes that remain (each
 * element needs at least one byte) and every map count against twice that, and mpack_skip
 * bounds its recursion. Encoding is done with msgpack-c's packer (see common/msg.c).
 *
 * Errors: TB_ERR with err_get() giving the byte offset and what was found.
 */
#ifndef TURBO_MPACK_H
#define TURBO_MPACK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MPACK_DEPTH_MAX 8 /* nesting that mpack_skip follows; headers need 4 */

typedef enum {
  MPACK_NIL = 0,
  MPACK_BOOL,
  MPACK_INT,   /* fits int64_t (negative or small positive) */
  MPACK_UINT,  /* positive, may exceed INT64_MAX */
  MPACK_FLOAT, /* float32 or float64, widened */
  MPACK_STR,
  MPACK_BIN,
  MPACK_EXT,
  MPACK_ARRAY, /* n elements follow */
  MPACK_MAP    /* n key/value pairs follow */
} mpack_type;

typedef struct {
  mpack_type type;
  int b;           /* MPACK_BOOL */
  int64_t i;       /* MPACK_INT; also MPACK_UINT when it fits */
  uint64_t u;      /* MPACK_UINT; also MPACK_INT when >= 0 */
  double f;        /* MPACK_FLOAT */
  const char *s;   /* MPACK_STR / MPACK_BIN / MPACK_EXT bytes (not NUL-terminated) */
  uint32_t len;    /* byte length of s */
  uint32_t n;      /* MPACK_ARRAY elements / MPACK_MAP pairs */
} mpack_item;

typedef struct {
  const uint8_t *start, *p, *end;
} mpack_reader;

void mpack_reader_init(mpack_reader *r, const void *buf, size_t len);
/* Reads the next item. For arrays and maps only the header is consumed; the caller reads the
 * n (or 2n) items that follow. TB_ERR on truncation, an unused type byte (0xc1) or a count that
 * the remaining bytes cannot hold. */
int mpack_read(mpack_reader *r, mpack_item *it);
/* Skips one whole value including nested items, at most MPACK_DEPTH_MAX deep. */
int mpack_skip(mpack_reader *r);
/* Bytes consumed so far, and bytes left. */
size_t mpack_offset(const mpack_reader *r);
size_t mpack_remaining(const mpack_reader *r);
/* "nil", "bool", "int", "uint", "float", "str", "bin", "ext", "array", "map". */
const char *mpack_type_name(mpack_type t);

#ifdef __cplusplus
}
#endif
#endif

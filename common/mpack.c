/* common/mpack.c — bounded msgpack reader; see mpack.h. Format: github.com/msgpack/msgpack
 * spec.md (big-endian lengths and numbers after a one-byte type marker). */
#include "common/mpack.h"

#include <string.h>

#include "common/log.h"

void mpack_reader_init(mpack_reader *r, const void *buf, size_t len) {
  r->start = (const uint8_t *)buf;
  r->p = r->start;
  r->end = r->start + len;
}

size_t mpack_offset(const mpack_reader *r) { return (size_t)(r->p - r->start); }
size_t mpack_remaining(const mpack_reader *r) { return (size_t)(r->end - r->p); }

const char *mpack_type_name(mpack_type t) {
  static const char *names[] = {"nil", "bool", "int", "uint", "float",
                                "str", "bin",  "ext", "array", "map"};
  return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

/* Big-endian unsigned of n bytes at r->p; the caller checked that n bytes remain. */
static uint64_t be_read(mpack_reader *r, int n) {
  uint64_t v = 0;
  for (int k = 0; k < n; k++) v = (v << 8) | r->p[k];
  r->p += n;
  return v;
}

static int need(mpack_reader *r, size_t n, const char *what) {
  if (mpack_remaining(r) < n)
    return err_set("msgpack: truncated %s at byte %zu (needs %zu bytes, %zu left)", what,
                   mpack_offset(r), n, mpack_remaining(r));
  return TB_OK;
}

static void set_uint(mpack_item *it, uint64_t u) {
  it->u = u;
  if (u <= (uint64_t)INT64_MAX) {
    it->type = MPACK_INT;
    it->i = (int64_t)u;
  } else {
    it->type = MPACK_UINT;
    it->i = 0;
  }
}

static void set_int(mpack_item *it, int64_t i) {
  it->type = MPACK_INT;
  it->i = i;
  it->u = i >= 0 ? (uint64_t)i : 0;
}

/* Bytes of a string/bin/ext body; checked against what remains. */
static int read_body(mpack_reader *r, mpack_item *it, mpack_type t, uint64_t len, size_t at) {
  if (len > mpack_remaining(r))
    return err_set("msgpack: %s at byte %zu declares %llu bytes but only %zu remain",
                   mpack_type_name(t), at, (unsigned long long)len, mpack_remaining(r));
  it->type = t;
  it->s = (const char *)r->p;
  it->len = (uint32_t)len;
  r->p += len;
  return TB_OK;
}

static int check_count(mpack_reader *r, mpack_item *it, mpack_type t, uint64_t n, size_t at) {
  uint64_t min_bytes = t == MPACK_MAP ? 2 * n : n; /* every item is at least one byte */
  if (min_bytes > mpack_remaining(r))
    return err_set("msgpack: %s at byte %zu declares %llu %s but only %zu bytes remain",
                   mpack_type_name(t), at, (unsigned long long)n,
                   t == MPACK_MAP ? "pairs" : "elements", mpack_remaining(r));
  it->type = t;
  it->n = (uint32_t)n;
  return TB_OK;
}

int mpack_read(mpack_reader *r, mpack_item *it) {
  memset(it, 0, sizeof *it);
  size_t at = mpack_offset(r);
  if (need(r, 1, "item") != TB_OK) return TB_ERR;
  uint8_t c = *r->p++;
  if (c <= 0x7f) { set_int(it, c); return TB_OK; }
  if (c >= 0xe0) { set_int(it, (int8_t)c); return TB_OK; }
  if ((c & 0xf0) == 0x80) return check_count(r, it, MPACK_MAP, c & 0x0f, at);
  if ((c & 0xf0) == 0x90) return check_count(r, it, MPACK_ARRAY, c & 0x0f, at);
  if ((c & 0xe0) == 0xa0) return read_body(r, it, MPACK_STR, c & 0x1f, at);
  switch (c) {
    case 0xc0: it->type = MPACK_NIL; return TB_OK;
    case 0xc2: it->type = MPACK_BOOL; it->b = 0; return TB_OK;
    case 0xc3: it->type = MPACK_BOOL; it->b = 1; return TB_OK;
    case 0xc4: case 0xc5: case 0xc6: {
      int n = 1 << (c - 0xc4);
      if (need(r, (size_t)n, "bin length") != TB_OK) return TB_ERR;
      return read_body(r, it, MPACK_BIN, be_read(r, n), at);
    }
    case 0xc7: case 0xc8: case 0xc9: {
      int n = 1 << (c - 0xc7);
      if (need(r, (size_t)n + 1, "ext length") != TB_OK) return TB_ERR;
      uint64_t len = be_read(r, n);
      r->p++; /* ext type byte */
      return read_body(r, it, MPACK_EXT, len, at);
    }
    case 0xca: {
      if (need(r, 4, "float32") != TB_OK) return TB_ERR;
      uint32_t b = (uint32_t)be_read(r, 4);
      float f;
      memcpy(&f, &b, 4);
      it->type = MPACK_FLOAT;
      it->f = f;
      return TB_OK;
    }
    case 0xcb: {
      if (need(r, 8, "float64") != TB_OK) return TB_ERR;
      uint64_t b = be_read(r, 8);
      memcpy(&it->f, &b, 8);
      it->type = MPACK_FLOAT;
      return TB_OK;
    }
    case 0xcc: case 0xcd: case 0xce: case 0xcf: {
      int n = 1 << (c - 0xcc);
      if (need(r, (size_t)n, "uint") != TB_OK) return TB_ERR;
      set_uint(it, be_read(r, n));
      return TB_OK;
    }
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
      int n = 1 << (c - 0xd0);
      if (need(r, (size_t)n, "int") != TB_OK) return TB_ERR;
      uint64_t u = be_read(r, n);
      int64_t v;
      if (n == 1) v = (int8_t)u;
      else if (n == 2) v = (int16_t)u;
      else if (n == 4) v = (int32_t)u;
      else memcpy(&v, &u, 8);
      set_int(it, v);
      return TB_OK;
    }
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: {
      if (need(r, 1, "fixext type") != TB_OK) return TB_ERR;
      r->p++;
      return read_body(r, it, MPACK_EXT, (uint64_t)1 << (c - 0xd4), at);
    }
    case 0xd9: case 0xda: case 0xdb: {
      int n = 1 << (c - 0xd9);
      if (need(r, (size_t)n, "str length") != TB_OK) return TB_ERR;
      return read_body(r, it, MPACK_STR, be_read(r, n), at);
    }
    case 0xdc: case 0xdd: {
      int n = c == 0xdc ? 2 : 4;
      if (need(r, (size_t)n, "array length") != TB_OK) return TB_ERR;
      return check_count(r, it, MPACK_ARRAY, be_read(r, n), at);
    }
    case 0xde: case 0xdf: {
      int n = c == 0xde ? 2 : 4;
      if (need(r, (size_t)n, "map length") != TB_OK) return TB_ERR;
      return check_count(r, it, MPACK_MAP, be_read(r, n), at);
    }
    default: /* 0xc1 is never used */
      return err_set("msgpack: invalid type byte 0x%02x at byte %zu", c, at);
  }
}

static int skip_depth(mpack_reader *r, int depth) {
  if (depth > MPACK_DEPTH_MAX)
    return err_set("msgpack: nesting deeper than %d at byte %zu", MPACK_DEPTH_MAX,
                   mpack_offset(r));
  mpack_item it;
  if (mpack_read(r, &it) != TB_OK) return TB_ERR;
  uint64_t items = it.type == MPACK_ARRAY ? it.n : it.type == MPACK_MAP ? 2 * (uint64_t)it.n : 0;
  for (uint64_t k = 0; k < items; k++)
    if (skip_depth(r, depth + 1) != TB_OK) return TB_ERR;
  return TB_OK;
}

int mpack_skip(mpack_reader *r) { return skip_depth(r, 1); }

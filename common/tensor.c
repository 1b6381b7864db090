/* common/tensor.c — see tensor.h. */
#include "common/tensor.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"

static const struct {
  const char *name;
  size_t size;
} g_dtypes[DTYPE_COUNT] = {
    [DTYPE_F32] = {"F32", 4}, [DTYPE_BF16] = {"BF16", 2}, [DTYPE_F16] = {"F16", 2},
    [DTYPE_U8] = {"U8", 1},   [DTYPE_I32] = {"I32", 4},   [DTYPE_I64] = {"I64", 8},
};

size_t dtype_size(dtype_t dt) { return (unsigned)dt < DTYPE_COUNT ? g_dtypes[dt].size : 0; }
const char *dtype_name(dtype_t dt) { return (unsigned)dt < DTYPE_COUNT ? g_dtypes[dt].name : "?"; }

int dtype_from_name(const char *name) {
  if (!name) return -1;
  for (int i = 0; i < DTYPE_COUNT; i++)
    if (strcasecmp(name, g_dtypes[i].name) == 0) return i;
  return -1;
}

int64_t shape_numel(int ndim, const int64_t *shape) {
  if (ndim < 0 || ndim > TENSOR_MAX_DIMS) return -1;
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) return -1;
    if (shape[i] != 0 && n > INT64_MAX / shape[i]) return -1;
    n *= shape[i];
  }
  return n;
}

int64_t tensor_numel(const tensor *t) { return shape_numel(t->ndim, t->shape); }

int64_t tensor_nbytes(const tensor *t) {
  int64_t n = tensor_numel(t);
  size_t s = dtype_size(t->dtype);
  if (n < 0 || s == 0 || n > INT64_MAX / (int64_t)s) return -1;
  return n * (int64_t)s;
}

char *shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
  size_t off = 0;
  off += (size_t)snprintf(buf + off, n - off, "(");
  for (int i = 0; i < ndim && off < n; i++)
    off += (size_t)snprintf(buf + off, n - off, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (off < n) snprintf(buf + off, n - off, ")");
  return buf;
}

void *aligned_alloc_zero(size_t nbytes) {
  size_t sz = (nbytes + TENSOR_ALIGN - 1) / TENSOR_ALIGN * TENSOR_ALIGN;
  if (sz == 0) sz = TENSOR_ALIGN;
  void *p = aligned_alloc(TENSOR_ALIGN, sz);
  if (p) memset(p, 0, sz);
  return p;
}

void aligned_free(void *p) { free(p); }

int tensor_new_try(tensor *out, dtype_t dt, int ndim, const int64_t *shape) {
  memset(out, 0, sizeof *out);
  if (ndim < 0 || ndim > TENSOR_MAX_DIMS) return err_set("tensor: %d dimensions (max %d)", ndim, TENSOR_MAX_DIMS);
  if ((unsigned)dt >= DTYPE_COUNT) return err_set("tensor: unknown dtype %d", (int)dt);
  out->dtype = dt;
  out->ndim = ndim;
  for (int i = 0; i < ndim; i++) out->shape[i] = shape[i];
  int64_t nb = tensor_nbytes(out);
  if (nb < 0) return err_set("tensor: shape overflows or is negative");
  out->data = aligned_alloc_zero((size_t)nb);
  if (!out->data) return err_set("tensor: out of memory allocating %lld bytes", (long long)nb);
  return TB_OK;
}

tensor tensor_new(dtype_t dt, int ndim, const int64_t *shape) {
  tensor t;
  if (tensor_new_try(&t, dt, ndim, shape) != TB_OK) TB_CHECKF(0, "%s", err_get());
  return t;
}

tensor tensor_new_f32(int ndim, const int64_t *shape) { return tensor_new(DTYPE_F32, ndim, shape); }

tensor tensor_view(dtype_t dt, int ndim, const int64_t *shape, void *data) {
  tensor t;
  memset(&t, 0, sizeof t);
  TB_CHECK(ndim >= 0 && ndim <= TENSOR_MAX_DIMS);
  t.dtype = dt;
  t.ndim = ndim;
  for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
  t.data = data;
  t.flags = TENSOR_VIEW;
  return t;
}

void tensor_free(tensor *t) {
  if (!t) return;
  if (!(t->flags & TENSOR_VIEW) && t->device == DEVICE_CPU) aligned_free(t->data);
  t->data = NULL;
}

int tensor_same_shape(const tensor *a, const tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

/* ---- half-precision conversions -------------------------------------------------------- */

uint16_t f32_to_bf16(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
  return (uint16_t)(u >> 16);
}

float bf16_to_f32(uint16_t x) {
  uint32_t u = (uint32_t)x << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);         /* NaN */
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);        /* overflow → Inf */
  if (a < 0x38800000u) {                                          /* subnormal or zero */
    if (a < 0x33000000u) return (uint16_t)sign;                   /* below half the min subnormal */
    uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    int shift = 126 - (int)(a >> 23); /* 14..24 */
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t r = a - 0x38000000u; /* rebias exponent 127 → 15 */
  r += 0xfffu + ((r >> 13) & 1u);
  return (uint16_t)(sign | (r >> 13));
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else { /* subnormal: normalise */
      int e = -1;
      do {
        e++;
        mant <<= 1;
      } while (!(mant & 0x400u));
      u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | ((exp + 112u) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}

void convert_f32_to_bf16(const float *src, uint16_t *dst, int64_t n) {
  for (int64_t i = 0; i < n; i++) dst[i] = f32_to_bf16(src[i]);
}
void convert_bf16_to_f32(const uint16_t *src, float *dst, int64_t n) {
  for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(src[i]);
}
void convert_f32_to_f16(const float *src, uint16_t *dst, int64_t n) {
  for (int64_t i = 0; i < n; i++) dst[i] = f32_to_f16(src[i]);
}
void convert_f16_to_f32(const uint16_t *src, float *dst, int64_t n) {
  for (int64_t i = 0; i < n; i++) dst[i] = f16_to_f32(src[i]);
}

tensor tensor_to_f32(const tensor *t) {
  tensor o = tensor_new(DTYPE_F32, t->ndim, t->shape);
  int64_t n = tensor_numel(t);
  float *d = o.data;
  switch (t->dtype) {
  case DTYPE_F32: memcpy(d, t->data, (size_t)n * 4); break;
  case DTYPE_BF16: convert_bf16_to_f32(t->data, d, n); break;
  case DTYPE_F16: convert_f16_to_f32(t->data, d, n); break;
  case DTYPE_U8: for (int64_t i = 0; i < n; i++) d[i] = ((const uint8_t *)t->data)[i]; break;
  case DTYPE_I32: for (int64_t i = 0; i < n; i++) d[i] = (float)((const int32_t *)t->data)[i]; break;
  case DTYPE_I64: for (int64_t i = 0; i < n; i++) d[i] = (float)((const int64_t *)t->data)[i]; break;
  default: TB_CHECKF(0, "unknown dtype %d", (int)t->dtype);
  }
  return o;
}

/* ---- checksums --------------------------------------------------------------------------- */

uint64_t checksum64(const void *data, size_t n) {
  /* FNV-1a over 8-byte words then the tail: fast enough for cached tensors (GB/s), stable. */
  const uint8_t *p = data;
  uint64_t h = 0xcbf29ce484222325ull;
  const uint64_t prime = 0x100000001b3ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * prime;
    h ^= h >> 29;
  }
  for (; i < n; i++) h = (h ^ p[i]) * prime;
  h ^= (uint64_t)n;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

static uint32_t g_crc_table[256];
static pthread_once_t g_crc_once = PTHREAD_ONCE_INIT;
static void crc_table_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    g_crc_table[i] = c;
  }
}

uint64_t hash_mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint32_t crc32_ieee(uint32_t crc, const void *data, size_t n) {
  pthread_once(&g_crc_once, crc_table_init);
  const uint32_t *table = g_crc_table;
  const uint8_t *p = data;
  crc = ~crc;
  for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

int tensor_has_nonfinite(const tensor *t) {
  int64_t n = tensor_numel(t);
  switch (t->dtype) {
  case DTYPE_F32: {
    const float *d = t->data;
    for (int64_t i = 0; i < n; i++)
      if (!isfinite(d[i])) return 1;
    return 0;
  }
  case DTYPE_BF16:
  case DTYPE_F16: {
    const uint16_t *d = t->data;
    uint16_t expmask = t->dtype == DTYPE_BF16 ? 0x7f80u : 0x7c00u;
    for (int64_t i = 0; i < n; i++)
      if ((d[i] & expmask) == expmask) return 1;
    return 0;
  }
  default: return 0;
  }
}

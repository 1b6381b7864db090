/* common/safetensors.c — see safetensors.h. */
#include "common/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/json.h"
#include "common/log.h"

/* The safetensors dtypes in the reference implementation's order, which is increasing
 * alignment; the writer sorts by this rank (descending) before the name. */
static const struct {
  const char *name;
  size_t size;
  int turbo; /* dtype_t or -1 */
} g_st_dtypes[] = {
    {"BOOL", 1, -1},    {"U8", 1, DTYPE_U8},     {"I8", 1, -1},         {"F8_E5M2", 1, -1},
    {"F8_E4M3", 1, -1}, {"I16", 2, -1},          {"U16", 2, -1},        {"F16", 2, DTYPE_F16},
    {"BF16", 2, DTYPE_BF16}, {"I32", 4, DTYPE_I32}, {"U32", 4, -1},     {"F32", 4, DTYPE_F32},
    {"F64", 8, -1},     {"I64", 8, DTYPE_I64},   {"U64", 8, -1},
};
#define N_ST_DTYPES ((int)(sizeof g_st_dtypes / sizeof g_st_dtypes[0]))

static int st_dtype_lookup(const char *name) {
  for (int i = 0; i < N_ST_DTYPES; i++)
    if (strcmp(name, g_st_dtypes[i].name) == 0) return i;
  return -1;
}

static int st_rank_of_turbo(dtype_t dt) {
  for (int i = 0; i < N_ST_DTYPES; i++)
    if (g_st_dtypes[i].turbo == (int)dt) return i;
  return -1;
}

struct safetensors_file {
  const uint8_t *base;
  size_t size;
  int mapped;
  json_value *header;
  safetensors_entry *entries; /* by data offset */
  size_t n;
  const safetensors_entry **by_name; /* entries sorted by name */
  const char **meta_keys, **meta_vals;
  size_t n_meta;
  uint64_t data_off, data_size;
};

void safetensors_close(safetensors_file *f) {
  if (!f) return;
  if (f->mapped && f->base) munmap((void *)f->base, f->size);
  json_free(f->header);
  free(f->entries);
  free((void *)f->by_name);
  free(f->meta_keys);
  free(f->meta_vals);
  free(f);
}

static int entry_cmp_offset(const void *a, const void *b) {
  const safetensors_entry *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return strcmp(x->name, y->name);
}

static int entry_ptr_cmp_name(const void *a, const void *b) {
  return strcmp((*(const safetensors_entry *const *)a)->name, (*(const safetensors_entry *const *)b)->name);
}

typedef struct {
  const char *k, *v;
} kv;
static int kv_cmp(const void *a, const void *b) { return strcmp(((const kv *)a)->k, ((const kv *)b)->k); }

static int parse_metadata(safetensors_file *f, const json_value *m) {
  if (m->type != JSON_OBJECT)
    return err_set("__metadata__ is %s, expected an object of strings", json_type_name(m->type));
  kv *pairs = m->count ? xmalloc(m->count * sizeof *pairs) : NULL;
  for (size_t i = 0; i < m->count; i++) {
    if (m->items[i].type != JSON_STRING) {
      int r = err_set("__metadata__ value of \"%.200s\" is %s, metadata values must be strings",
                      m->keys[i], json_type_name(m->items[i].type));
      free(pairs);
      return r;
    }
    pairs[i] = (kv){m->keys[i], m->items[i].string};
  }
  if (m->count) qsort(pairs, m->count, sizeof *pairs, kv_cmp);
  f->n_meta = m->count;
  f->meta_keys = xmalloc((m->count + 1) * sizeof *f->meta_keys);
  f->meta_vals = xmalloc((m->count + 1) * sizeof *f->meta_vals);
  for (size_t i = 0; i < m->count; i++) f->meta_keys[i] = pairs[i].k, f->meta_vals[i] = pairs[i].v;
  free(pairs);
  return TB_OK;
}

static int parse_offset_pair(const json_value *v, const char *name, uint64_t *b, uint64_t *e) {
  if (!v) return err_set("tensor \"%.200s\": missing \"data_offsets\"", name);
  if (v->type != JSON_ARRAY || v->count != 2)
    return err_set("tensor \"%.200s\": \"data_offsets\" must be an array of 2 integers", name);
  for (int i = 0; i < 2; i++) {
    const json_value *x = &v->items[i];
    if (x->type != JSON_NUMBER || !x->is_int || x->integer < 0)
      return err_set("tensor \"%.200s\": data_offsets[%d] is not a non-negative integer", name, i);
  }
  *b = (uint64_t)v->items[0].integer;
  *e = (uint64_t)v->items[1].integer;
  if (*e < *b)
    return err_set("tensor \"%.200s\": data_offsets [%llu, %llu] end before begin", name,
                   (unsigned long long)*b, (unsigned long long)*e);
  return TB_OK;
}

static int parse_entry(safetensors_file *f, const char *name, size_t name_len, const json_value *v,
                       safetensors_entry *e) {
  memset(e, 0, sizeof *e);
  e->name = name;
  if (strlen(name) != name_len) return err_set("tensor name \"%.200s…\" contains a NUL byte", name);
  if (v->type != JSON_OBJECT)
    return err_set("tensor \"%.200s\": entry is %s, expected an object", name, json_type_name(v->type));
  const json_value *dt = json_get(v, "dtype"), *sh = json_get(v, "shape");
  if (!dt || dt->type != JSON_STRING)
    return err_set("tensor \"%.200s\": missing or non-string \"dtype\"", name);
  int k = st_dtype_lookup(dt->string);
  if (k < 0)
    return err_set("tensor \"%.200s\": unknown dtype \"%.40s\" (known: BOOL U8 I8 F8_E5M2 F8_E4M3 "
                   "I16 U16 F16 BF16 I32 U32 F32 F64 I64 U64)", name, dt->string);
  e->dtype_name = g_st_dtypes[k].name;
  e->dtype = g_st_dtypes[k].turbo;
  e->elem_size = g_st_dtypes[k].size;
  if (!sh || sh->type != JSON_ARRAY)
    return err_set("tensor \"%.200s\": missing \"shape\" array", name);
  if (sh->count > TENSOR_MAX_DIMS)
    return err_set("tensor \"%.200s\": %zu dims, turbo handles at most %d", name, sh->count,
                   TENSOR_MAX_DIMS);
  e->ndim = (int)sh->count;
  for (size_t i = 0; i < sh->count; i++) {
    const json_value *d = &sh->items[i];
    if (d->type != JSON_NUMBER || !d->is_int || d->integer < 0)
      return err_set("tensor \"%.200s\": shape[%zu] is not a non-negative integer", name, i);
    e->shape[i] = d->integer;
  }
  e->numel = shape_numel(e->ndim, e->shape);
  if (e->numel < 0) return err_set("tensor \"%.200s\": shape overflows", name);
  if (parse_offset_pair(json_get(v, "data_offsets"), name, &e->begin, &e->end)) return TB_ERR;
  if (e->numel > 0 && (uint64_t)e->numel > UINT64_MAX / e->elem_size)
    return err_set("tensor \"%.200s\": byte size overflows", name);
  uint64_t want = (uint64_t)e->numel * e->elem_size;
  char sbuf[128];
  if (e->end - e->begin != want)
    return err_set("tensor \"%.200s\": %s %s needs %llu bytes but data_offsets [%llu, %llu] hold %llu",
                   name, e->dtype_name, shape_str(e->ndim, e->shape, sbuf, sizeof sbuf),
                   (unsigned long long)want, (unsigned long long)e->begin,
                   (unsigned long long)e->end, (unsigned long long)(e->end - e->begin));
  if (e->end > f->data_size)
    return err_set("tensor \"%.200s\": data_offsets [%llu, %llu] outside the data section of %llu bytes",
                   name, (unsigned long long)e->begin, (unsigned long long)e->end,
                   (unsigned long long)f->data_size);
  e->data = f->base + f->data_off + e->begin;
  e->aligned = ((uintptr_t)e->data % e->elem_size) == 0;
  if (e->dtype >= 0) e->view = tensor_view((dtype_t)e->dtype, e->ndim, e->shape, (void *)e->data);
  return TB_OK;
}

static int parse_image(safetensors_file *f) {
  if (f->size < 8)
    return err_set("file is %zu bytes, shorter than the 8-byte header length", f->size);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | f->base[i];
  if (n > SAFETENSORS_MAX_HEADER)
    return err_set("header length %llu (bytes 0-7) exceeds the %u-byte cap; not a safetensors file?",
                   (unsigned long long)n, SAFETENSORS_MAX_HEADER);
  if (n > f->size - 8)
    return err_set("header length %llu (bytes 0-7) is larger than the %zu bytes after it; truncated file?",
                   (unsigned long long)n, f->size - 8);
  if (n < 2) return err_set("header length %llu is too small for a JSON object", (unsigned long long)n);
  const char *hdr = (const char *)f->base + 8;
  if (hdr[0] != '{') return err_set("header does not start with '{' (file byte 8)");
  f->data_off = 8 + n;
  f->data_size = f->size - f->data_off;
  json_options jo = {.max_depth = 8, .max_bytes = SAFETENSORS_MAX_HEADER};
  f->header = json_parse(hdr, (size_t)n, &jo);
  if (!f->header) return err_wrap("header (JSON byte offsets count from file byte 8)");
  const json_value *h = f->header;
  if (h->type != JSON_OBJECT) return err_set("header is not a JSON object");
  f->entries = h->count ? xmalloc(h->count * sizeof *f->entries) : NULL;
  for (size_t i = 0; i < h->count; i++) {
    if (strcmp(h->keys[i], "__metadata__") == 0) {
      if (parse_metadata(f, &h->items[i])) return TB_ERR;
      continue;
    }
    if (parse_entry(f, h->keys[i], h->key_lens[i], &h->items[i], &f->entries[f->n])) return TB_ERR;
    f->n++;
  }
  /* The tensors must tile [0, data_size) exactly: sorted by offset, each begins where the
   * previous ended. Empty tensors (begin == end) may sit anywhere on that chain. */
  if (f->n) qsort(f->entries, f->n, sizeof *f->entries, entry_cmp_offset);
  uint64_t at = 0;
  const char *prev = NULL;
  for (size_t i = 0; i < f->n; i++) {
    const safetensors_entry *e = &f->entries[i];
    if (e->begin < at)
      return err_set("tensors \"%.200s\" and \"%.200s\" overlap (data bytes %llu-%llu)", prev, e->name,
                     (unsigned long long)e->begin, (unsigned long long)at);
    if (e->begin > at)
      return err_set("hole in the data section: bytes %llu-%llu belong to no tensor (before \"%.200s\")",
                     (unsigned long long)at, (unsigned long long)e->begin, e->name);
    at = e->end;
    if (e->end > e->begin || !prev) prev = e->name;
  }
  if (at != f->data_size)
    return err_set("hole in the data section: bytes %llu-%llu at its end belong to no tensor",
                   (unsigned long long)at, (unsigned long long)f->data_size);
  f->by_name = xmalloc((f->n + 1) * sizeof *f->by_name);
  for (size_t i = 0; i < f->n; i++) f->by_name[i] = &f->entries[i];
  if (f->n) qsort(f->by_name, f->n, sizeof *f->by_name, entry_ptr_cmp_name);
  return TB_OK;
}

int safetensors_parse(const void *buf, size_t len, safetensors_file **out) {
  *out = NULL;
  if (!buf && len) return err_set("safetensors: NULL buffer");
  safetensors_file *f = xcalloc(1, sizeof *f);
  f->base = buf;
  f->size = len;
  if (parse_image(f)) {
    safetensors_close(f);
    return TB_ERR;
  }
  *out = f;
  return TB_OK;
}

int safetensors_open(const char *path, safetensors_file **out) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return err_set("%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return err_set("%s: cannot stat: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return err_set("%s: not a regular file", path);
  }
  safetensors_file *f = xcalloc(1, sizeof *f);
  f->size = (size_t)st.st_size;
  if (f->size >= 8) {
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      int e = errno;
      close(fd);
      free(f);
      return err_set("%s: cannot map %zu bytes: %s", path, (size_t)st.st_size, strerror(e));
    }
    f->base = m;
    f->mapped = 1;
  } else {
    static const uint8_t empty[8];
    f->base = empty;
  }
  close(fd);
  if (parse_image(f)) {
    safetensors_close(f);
    return err_wrap("%s", path);
  }
  *out = f;
  return TB_OK;
}

size_t safetensors_count(const safetensors_file *f) { return f->n; }

const safetensors_entry *safetensors_entry_at(const safetensors_file *f, size_t i) {
  return i < f->n ? &f->entries[i] : NULL;
}

const safetensors_entry *safetensors_find(const safetensors_file *f, const char *name) {
  size_t lo = 0, hi = f->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const safetensors_entry *e = f->by_name[mid];
    int c = strcmp(name, e->name);
    if (c == 0) return e;
    if (c < 0) hi = mid;
    else lo = mid + 1;
  }
  return NULL;
}

uint64_t safetensors_data_offset(const safetensors_file *f) { return f->data_off; }
uint64_t safetensors_data_size(const safetensors_file *f) { return f->data_size; }

size_t safetensors_meta_count(const safetensors_file *f) { return f->n_meta; }

void safetensors_meta_at(const safetensors_file *f, size_t i, const char **key, const char **value) {
  *key = i < f->n_meta ? f->meta_keys[i] : NULL;
  *value = i < f->n_meta ? f->meta_vals[i] : NULL;
}

const char *safetensors_meta_get(const safetensors_file *f, const char *key) {
  size_t lo = 0, hi = f->n_meta;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(key, f->meta_keys[mid]);
    if (c == 0) return f->meta_vals[mid];
    if (c < 0) hi = mid;
    else lo = mid + 1;
  }
  return NULL;
}

/* One element at byte pointer p (possibly unaligned) as a float; k indexes g_st_dtypes. */
static int elem_to_f32(int k, const uint8_t *p, float *out) {
  union {
    uint8_t b[8];
    uint16_t u16;
    int16_t i16;
    uint32_t u32;
    int32_t i32;
    float f32;
    uint64_t u64;
    int64_t i64;
    double f64;
  } u;
  const char *n = g_st_dtypes[k].name;
  memcpy(u.b, p, g_st_dtypes[k].size);
  switch (n[0]) {
  case 'B': *out = n[1] == 'O' ? (u.b[0] ? 1.0f : 0.0f) : bf16_to_f32(u.u16); return TB_OK; /* BOOL, BF16 */
  case 'U':
    *out = n[1] == '8' ? u.b[0] : n[1] == '1' ? u.u16 : n[1] == '3' ? (float)u.u32 : (float)u.u64;
    return TB_OK;
  case 'I':
    *out = n[1] == '8' ? (int8_t)u.b[0] : n[1] == '1' ? u.i16 : n[1] == '3' ? (float)u.i32 : (float)u.i64;
    return TB_OK;
  case 'F':
    if (!strcmp(n, "F32")) *out = u.f32;
    else if (!strcmp(n, "F16")) *out = f16_to_f32(u.u16);
    else if (!strcmp(n, "F64")) *out = (float)u.f64;
    else return TB_ERR; /* the F8 types */
    return TB_OK;
  default:
    return TB_ERR;
  }
}

int safetensors_read_f32(const safetensors_file *f, const char *name, int ndim,
                         const int64_t *shape, tensor *out) {
  memset(out, 0, sizeof *out);
  const safetensors_entry *e = safetensors_find(f, name);
  if (!e) return err_set("tensor \"%s\" not found", name);
  if (ndim >= 0) {
    int same = ndim == e->ndim;
    for (int i = 0; same && i < ndim; i++) same = shape[i] == e->shape[i];
    if (!same) {
      char a[128], b[128];
      return err_set("tensor \"%s\": file has shape %s, expected %s", name,
                     shape_str(e->ndim, e->shape, a, sizeof a), shape_str(ndim, shape, b, sizeof b));
    }
  }
  int k = st_dtype_lookup(e->dtype_name);
  float probe;
  uint8_t zero[8] = {0};
  if (k < 0 || elem_to_f32(k, zero, &probe))
    return err_set("tensor \"%s\": cannot convert dtype %s to F32", name, e->dtype_name);
  if (tensor_new_try(out, DTYPE_F32, e->ndim, e->shape)) return err_wrap("tensor \"%s\"", name);
  float *dst = out->data;
  const uint8_t *src = e->data;
  if (e->dtype == DTYPE_F32) memcpy(dst, src, (size_t)e->numel * 4);
  else if (e->dtype == DTYPE_BF16 && e->aligned) convert_bf16_to_f32((const uint16_t *)src, dst, e->numel);
  else if (e->dtype == DTYPE_F16 && e->aligned) convert_f16_to_f32((const uint16_t *)src, dst, e->numel);
  else
    for (int64_t i = 0; i < e->numel; i++) elem_to_f32(k, src + (size_t)i * e->elem_size, &dst[i]);
  return TB_OK;
}

/* ---- writer ----------------------------------------------------------------------------- */

typedef struct {
  char *name;
  dtype_t dtype;
  int ndim;
  int64_t shape[TENSOR_MAX_DIMS];
  const void *data;
  void *owned;
  size_t nbytes;
  uint64_t begin;
} w_entry;

struct safetensors_writer {
  w_entry *e;
  size_t n, cap;
  kv *meta; /* owned strings */
  size_t n_meta;
};

safetensors_writer *safetensors_writer_new(void) { return xcalloc(1, sizeof(safetensors_writer)); }

void safetensors_writer_free(safetensors_writer *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n; i++) {
    free(w->e[i].name);
    aligned_free(w->e[i].owned);
  }
  for (size_t i = 0; i < w->n_meta; i++) {
    free((char *)w->meta[i].k);
    free((char *)w->meta[i].v);
  }
  free(w->meta);
  free(w->e);
  free(w);
}

static int writer_add(safetensors_writer *w, const char *name, const tensor *t, int copy) {
  if (!name || !name[0]) return err_set("safetensors writer: empty tensor name");
  if (!strcmp(name, "__metadata__")) return err_set("safetensors writer: \"__metadata__\" is not a tensor name");
  if (t->device != DEVICE_CPU) return err_set("safetensors writer: tensor \"%s\" is not in CPU memory", name);
  if ((unsigned)t->dtype >= DTYPE_COUNT) return err_set("safetensors writer: tensor \"%s\": bad dtype", name);
  if (t->ndim < 0 || t->ndim > TENSOR_MAX_DIMS)
    return err_set("safetensors writer: tensor \"%s\": %d dims", name, t->ndim);
  int64_t nb = tensor_nbytes(t);
  if (nb < 0) return err_set("safetensors writer: tensor \"%s\": bad shape", name);
  if (nb > 0 && !t->data) return err_set("safetensors writer: tensor \"%s\": no data", name);
  if (w->n == w->cap) {
    w->cap = w->cap ? w->cap * 2 : 16;
    w->e = xrealloc(w->e, w->cap * sizeof *w->e);
  }
  w_entry *e = &w->e[w->n];
  memset(e, 0, sizeof *e);
  e->name = xstrdup(name);
  e->dtype = t->dtype;
  e->ndim = t->ndim;
  memcpy(e->shape, t->shape, sizeof e->shape);
  e->nbytes = (size_t)nb;
  if (copy && nb > 0) {
    e->owned = aligned_alloc_zero((size_t)nb);
    memcpy(e->owned, t->data, (size_t)nb);
    e->data = e->owned;
  } else {
    e->data = t->data;
  }
  w->n++;
  return TB_OK;
}

int safetensors_writer_add(safetensors_writer *w, const char *name, const tensor *t) {
  return writer_add(w, name, t, 1);
}
int safetensors_writer_add_ref(safetensors_writer *w, const char *name, const tensor *t) {
  return writer_add(w, name, t, 0);
}

int safetensors_writer_set_meta(safetensors_writer *w, const char *key, const char *value) {
  if (!key || !value) return err_set("safetensors writer: NULL metadata key or value");
  for (size_t i = 0; i < w->n_meta; i++) {
    if (!strcmp(w->meta[i].k, key)) {
      free((char *)w->meta[i].v);
      w->meta[i].v = xstrdup(value);
      return TB_OK;
    }
  }
  w->meta = xrealloc(w->meta, (w->n_meta + 1) * sizeof *w->meta);
  w->meta[w->n_meta++] = (kv){xstrdup(key), xstrdup(value)};
  return TB_OK;
}

static int w_entry_cmp(const void *a, const void *b) {
  const w_entry *x = a, *y = b;
  int rx = st_rank_of_turbo(x->dtype), ry = st_rank_of_turbo(y->dtype);
  if (rx != ry) return ry - rx; /* larger alignment first */
  return strcmp(x->name, y->name);
}

static int str_ptr_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Orders the entries, assigns offsets, and builds the header: 8-byte length, then the JSON
 * padded with spaces so that the data section starts at a multiple of 8. */
static int writer_layout(safetensors_writer *w, json_buf *hdr, uint64_t *data_size) {
  if (w->n > 1) {
    const char **names = xmalloc(w->n * sizeof *names);
    for (size_t i = 0; i < w->n; i++) names[i] = w->e[i].name;
    qsort(names, w->n, sizeof *names, str_ptr_cmp);
    for (size_t i = 1; i < w->n; i++) {
      if (!strcmp(names[i - 1], names[i])) {
        int r = err_set("safetensors writer: tensor \"%.200s\" added twice", names[i]);
        free(names);
        return r;
      }
    }
    free(names);
    qsort(w->e, w->n, sizeof *w->e, w_entry_cmp);
  }
  if (w->n_meta > 1) qsort(w->meta, w->n_meta, sizeof *w->meta, kv_cmp);
  json_buf j = {0};
  json_buf_append(&j, "{", 1);
  int first = 1;
  if (w->n_meta) {
    json_buf_puts(&j, "\"__metadata__\":{");
    for (size_t i = 0; i < w->n_meta; i++) {
      if (i) json_buf_append(&j, ",", 1);
      json_buf_put_string(&j, w->meta[i].k, strlen(w->meta[i].k));
      json_buf_append(&j, ":", 1);
      json_buf_put_string(&j, w->meta[i].v, strlen(w->meta[i].v));
    }
    json_buf_append(&j, "}", 1);
    first = 0;
  }
  uint64_t off = 0;
  for (size_t i = 0; i < w->n; i++) {
    w_entry *e = &w->e[i];
    e->begin = off;
    if (!first) json_buf_append(&j, ",", 1);
    first = 0;
    json_buf_put_string(&j, e->name, strlen(e->name));
    json_buf_printf(&j, ":{\"dtype\":\"%s\",\"shape\":[", dtype_name(e->dtype));
    for (int d = 0; d < e->ndim; d++) json_buf_printf(&j, "%s%lld", d ? "," : "", (long long)e->shape[d]);
    json_buf_printf(&j, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                    (unsigned long long)(off + e->nbytes));
    off += e->nbytes;
  }
  json_buf_append(&j, "}", 1);
  while (j.len % 8) json_buf_append(&j, " ", 1);
  if (j.len > SAFETENSORS_MAX_HEADER) {
    size_t l = j.len;
    json_buf_free(&j);
    return err_set("safetensors writer: header of %zu bytes exceeds the %u-byte cap", l,
                   SAFETENSORS_MAX_HEADER);
  }
  uint8_t len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)j.len >> (8 * i));
  json_buf_append(hdr, len8, 8);
  json_buf_append(hdr, j.data, j.len);
  json_buf_free(&j);
  *data_size = off;
  return TB_OK;
}

int safetensors_writer_to_buffer(safetensors_writer *w, uint8_t **buf, size_t *len) {
  *buf = NULL;
  *len = 0;
  json_buf hdr = {0};
  uint64_t data_size;
  if (writer_layout(w, &hdr, &data_size)) return TB_ERR;
  size_t total = hdr.len + (size_t)data_size;
  uint8_t *out = malloc(total ? total : 1);
  if (!out) {
    json_buf_free(&hdr);
    return err_set("safetensors writer: out of memory for %zu bytes", total);
  }
  memcpy(out, hdr.data, hdr.len);
  for (size_t i = 0; i < w->n; i++)
    if (w->e[i].nbytes) memcpy(out + hdr.len + w->e[i].begin, w->e[i].data, w->e[i].nbytes);
  json_buf_free(&hdr);
  *buf = out;
  *len = total;
  return TB_OK;
}

int safetensors_writer_save(safetensors_writer *w, const char *path) {
  json_buf hdr = {0};
  uint64_t data_size;
  if (writer_layout(w, &hdr, &data_size)) return err_wrap("%s", path);
  fs_atomic *a = fs_atomic_open(path);
  if (!a) {
    json_buf_free(&hdr);
    return TB_ERR;
  }
  FILE *fp = fs_atomic_file(a);
  int ok = fwrite(hdr.data, 1, hdr.len, fp) == hdr.len;
  for (size_t i = 0; ok && i < w->n; i++)
    if (w->e[i].nbytes) ok = fwrite(w->e[i].data, 1, w->e[i].nbytes, fp) == w->e[i].nbytes;
  json_buf_free(&hdr);
  if (!ok) {
    int e = errno;
    fs_atomic_abort(a);
    return err_set("%s: write failed: %s", path, strerror(e));
  }
  return fs_atomic_commit(a);
}

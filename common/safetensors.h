/* common/safetensors.h — read and write the safetensors format (the one real checkpoints use).
 *
 * Layout: an 8-byte little-endian header length N; N bytes of UTF-8 JSON, starting with '{' and
 * possibly padded with trailing spaces:
 *   {"__metadata__": {"key": "value", ...},
 *    "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
 * then the data section; offsets are relative to its first byte, tensors are row-major and
 * little-endian. The reader checks everything before trusting it: header length against the file
 * and a 100 MB cap, well-formed JSON, known dtypes, non-negative shapes of at most 5 dims,
 * end - begin == numel * dtype size, offsets inside the data section, no overlaps and no holes
 * (the tensors must tile the data section exactly, as the reference implementation requires),
 * string-only metadata. The writer orders tensors as the reference does (larger dtype alignment
 * first, then by name), pads the header with spaces to a multiple of 8 bytes, and writes
 * atomically.
 *
 * All functions returning int give TB_OK, or TB_ERR with err_get() naming the file, tensor,
 * field or byte offset.
 */
#ifndef TURBO_SAFETENSORS_H
#define TURBO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "common/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SAFETENSORS_MAX_HEADER (100u * 1000u * 1000u) /* bytes: the reference's 100 MB cap */

/* One tensor of an open file. Everything points into the file and stays valid until
 * safetensors_close. */
typedef struct {
  const char *name;
  const char *dtype_name; /* safetensors spelling: "F32", "BF16", "F64", "BOOL", … */
  int dtype;              /* a dtype_t, or -1 for a type turbo has no tensor for (F64, I8, …) */
  size_t elem_size;       /* bytes per element (1 for BOOL and the F8 types) */
  int ndim;
  int64_t shape[TENSOR_MAX_DIMS];
  int64_t numel;
  uint64_t begin, end;   /* byte range within the data section */
  const void *data;      /* first byte of the tensor (NULL-free even for empty tensors) */
  int aligned;           /* 1 when data is a multiple of elem_size: safe to read in place */
  tensor view;           /* when dtype >= 0: a TENSOR_VIEW onto data (read-only!) */
} safetensors_entry;

typedef struct safetensors_file safetensors_file;

/* Maps `path` read-only and validates it. On success *out is owned by the caller (close with
 * safetensors_close); on TB_ERR *out is NULL and the message starts with the path. */
int safetensors_open(const char *path, safetensors_file **out);
/* Validates an in-memory file image of `len` bytes. The buffer is not copied: it must outlive
 * the returned handle. */
int safetensors_parse(const void *buf, size_t len, safetensors_file **out);
/* Unmaps and frees (NULL is fine). */
void safetensors_close(safetensors_file *f);

/* Tensors in the order their data lies in the file. */
size_t safetensors_count(const safetensors_file *f);
const safetensors_entry *safetensors_entry_at(const safetensors_file *f, size_t i);
/* Binary search by name over a sorted index; NULL when absent. */
const safetensors_entry *safetensors_find(const safetensors_file *f, const char *name);
/* The data section: where it starts in the file and its size in bytes. */
uint64_t safetensors_data_offset(const safetensors_file *f);
uint64_t safetensors_data_size(const safetensors_file *f);

/* __metadata__: number of pairs, pair i (sorted by key), value of `key` (NULL when absent). */
size_t safetensors_meta_count(const safetensors_file *f);
void safetensors_meta_at(const safetensors_file *f, size_t i, const char **key, const char **value);
const char *safetensors_meta_get(const safetensors_file *f, const char *key);

/* Copies tensor `name` into a new F32 tensor (F32/BF16/F16/U8/I32/I64/F64/I8/I16/U16/U32/
 * U64/BOOL by value), checking the shape when `ndim` >= 0 (shape may be NULL when ndim < 0).
 * The caller frees *out with tensor_free. TB_ERR names a missing tensor, an unconvertible dtype
 * or the two shapes that disagree. */
int safetensors_read_f32(const safetensors_file *f, const char *name, int ndim,
                         const int64_t *shape, tensor *out);

/* ---- writing ---- */
typedef struct safetensors_writer safetensors_writer;

safetensors_writer *safetensors_writer_new(void);
void safetensors_writer_free(safetensors_writer *w);
/* Adds a tensor (CPU memory). _add copies the bytes now; _add_ref only remembers the pointer,
 * which must stay valid until the file is saved. TB_ERR for an empty or duplicate name,
 * "__metadata__", a device tensor, more than 5 dims or a negative dim. */
int safetensors_writer_add(safetensors_writer *w, const char *name, const tensor *t);
int safetensors_writer_add_ref(safetensors_writer *w, const char *name, const tensor *t);
/* Sets a metadata pair (a later value for the same key replaces the earlier). */
int safetensors_writer_set_meta(safetensors_writer *w, const char *key, const char *value);
/* Writes the file atomically (temporary, fsync, rename, fsync directory). */
int safetensors_writer_save(safetensors_writer *w, const char *path);
/* The same bytes into a malloc'd buffer the caller frees. */
int safetensors_writer_to_buffer(safetensors_writer *w, uint8_t **buf, size_t *len);

#ifdef __cplusplus
}
#endif
#endif

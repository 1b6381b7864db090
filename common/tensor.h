/* common/tensor.h — tensors (dtype, shape up to 5-D, device), aligned allocation, dtype
 * conversion and checksums. The ground every other module stores and sends numbers with.
 *
 * A tensor owns its data unless TENSOR_VIEW is set (then `data` belongs to someone else: a
 * mapped file, a message frame, a parameter block). Shapes are row-major, outermost first,
 * as in PyTorch and safetensors; video activations are (B, T, C, H, W) throughout turbo.
 */
#ifndef TURBO_TENSOR_H
#define TURBO_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TENSOR_MAX_DIMS 5
#define TENSOR_ALIGN 64 /* bytes: one cache line, enough for AVX-512 loads */

typedef enum {
  DTYPE_F32 = 0,
  DTYPE_BF16,
  DTYPE_F16,
  DTYPE_U8,
  DTYPE_I32,
  DTYPE_I64,
  DTYPE_COUNT
} dtype_t;

typedef enum { DEVICE_CPU = 0, DEVICE_CUDA = 1 } device_t;

enum { TENSOR_VIEW = 1 << 0 };

typedef struct {
  dtype_t dtype;
  device_t device;
  int ndim;
  int64_t shape[TENSOR_MAX_DIMS];
  void *data;
  uint32_t flags;
} tensor;

/* dtype facts. dtype_name gives the safetensors spelling ("F32", "BF16", "F16", "U8", "I32",
 * "I64"); dtype_from_name accepts those (and lower case) and returns -1 for anything else. */
size_t dtype_size(dtype_t dt);
const char *dtype_name(dtype_t dt);
int dtype_from_name(const char *name);

/* Elements and bytes of a shape; -1 when a dimension is negative or the product overflows. */
int64_t shape_numel(int ndim, const int64_t *shape);
int64_t tensor_numel(const tensor *t);
int64_t tensor_nbytes(const tensor *t);
/* "(2, 3, 4)" into buf; returns buf. */
char *shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

/* Allocation: 64-byte aligned, zero-filled. Aborts on out-of-memory (start-up sized
 * allocations); tensor_new_try returns NULL-data tensor and sets err for data-driven sizes. */
void *aligned_alloc_zero(size_t nbytes);
void aligned_free(void *p);
tensor tensor_new(dtype_t dt, int ndim, const int64_t *shape);
int tensor_new_try(tensor *out, dtype_t dt, int ndim, const int64_t *shape);
tensor tensor_new_f32(int ndim, const int64_t *shape);
tensor tensor_view(dtype_t dt, int ndim, const int64_t *shape, void *data);
void tensor_free(tensor *t); /* frees owned data; a view just forgets it */
int tensor_same_shape(const tensor *a, const tensor *b);

/* Conversions (round-to-nearest-even for bf16/f16; NaN stays NaN; f16 handles subnormals). */
uint16_t f32_to_bf16(float x);
float bf16_to_f32(uint16_t x);
uint16_t f32_to_f16(float x);
float f16_to_f32(uint16_t x);
void convert_f32_to_bf16(const float *src, uint16_t *dst, int64_t n);
void convert_bf16_to_f32(const uint16_t *src, float *dst, int64_t n);
void convert_f32_to_f16(const float *src, uint16_t *dst, int64_t n);
void convert_f16_to_f32(const uint16_t *src, float *dst, int64_t n);
/* Any dtype to a new f32 tensor (u8/i32/i64 by value). */
tensor tensor_to_f32(const tensor *t);

/* Checksums: 64-bit FNV-1a-style over bytes, stable across runs and hosts; used by the
 * catalogue for cached tensors and by tests. crc32 (IEEE) for file formats. */
uint64_t checksum64(const void *data, size_t n);
uint32_t crc32_ieee(uint32_t crc, const void *data, size_t n);

/* The splitmix64 finaliser: a bijective 64-bit mix, the one every seeded draw and hash key in
 * turbo goes through (so the CPU and the CUDA copy in kernels/cuda/misc_ops.cu agree). */
uint64_t hash_mix64(uint64_t z);

/* 1 if any element is NaN or ±Inf (floating dtypes only; integers never). */
int tensor_has_nonfinite(const tensor *t);

#ifdef __cplusplus
}
#endif
#endif

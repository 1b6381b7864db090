/* Tensors: dtype facts, shapes, half conversions (exhaustive over all 65536 bf16/f16 bit
 * patterns: f16→f32→f16 and bf16→f32→bf16 are the identity for non-NaN values), checksums. */
#include <math.h>
#include <string.h>

#include "common/log.h"
#include "common/tensor.h"
#include "tests/testutil.h"

int main(void) {
  test_begin("test_tensor");
  CHECK(dtype_size(DTYPE_BF16) == 2 && dtype_size(DTYPE_I64) == 8);
  CHECK(dtype_from_name("BF16") == DTYPE_BF16 && dtype_from_name("f32") == DTYPE_F32);
  CHECK(dtype_from_name("F64") == -1);
  int64_t sh[3] = {2, 3, 4};
  tensor t = tensor_new(DTYPE_F32, 3, sh);
  CHECK(tensor_numel(&t) == 24 && tensor_nbytes(&t) == 96);
  CHECK(((uintptr_t)t.data % TENSOR_ALIGN) == 0);
  char buf[64];
  CHECK(strcmp(shape_str(3, sh, buf, sizeof buf), "(2, 3, 4)") == 0);
  tensor_free(&t);
  int64_t huge[2] = {INT64_MAX / 2, 3};
  CHECK(shape_numel(2, huge) == -1);
  tensor bad;
  CHECK(tensor_new_try(&bad, DTYPE_F32, 2, huge) == TB_ERR);

  int f16_bad = 0, bf16_bad = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    float f = f16_to_f32((uint16_t)h);
    if (!isnan(f) && f32_to_f16(f) != h) f16_bad++;
    float g = bf16_to_f32((uint16_t)h);
    if (!isnan(g) && f32_to_bf16(g) != h) bf16_bad++;
    if (isnan(f) && !isnan(f16_to_f32(f32_to_f16(f)))) f16_bad++;
  }
  CHECKF(f16_bad == 0, "f16 round trip: %d patterns", f16_bad);
  CHECKF(bf16_bad == 0, "bf16 round trip: %d patterns", bf16_bad);
  /* Rounding: 1 + 2^-9 is half-way between bf16 neighbours 1 and 1+2^-7? no: bf16 has 7
   * mantissa bits, so 1+2^-8 is the tie between 1 and 1+2^-7 and rounds to even (1). */
  CHECK(bf16_to_f32(f32_to_bf16(1.0f + 0x1p-8f)) == 1.0f);
  CHECK(bf16_to_f32(f32_to_bf16(1.0f + 0x1p-8f + 0x1p-12f)) == 1.0f + 0x1p-7f);
  CHECK(f16_to_f32(f32_to_f16(65504.0f)) == 65504.0f);
  CHECK(isinf(f16_to_f32(f32_to_f16(70000.0f))));
  CHECK(f16_to_f32(f32_to_f16(0x1p-24f)) == 0x1p-24f); /* smallest subnormal */

  uint8_t bytes[100];
  for (int i = 0; i < 100; i++) bytes[i] = (uint8_t)i;
  uint64_t c1 = checksum64(bytes, 100);
  bytes[57] ^= 1;
  CHECK(checksum64(bytes, 100) != c1);
  CHECK(crc32_ieee(0, "123456789", 9) == 0xCBF43926u); /* the standard check value */

  float v[3] = {1, NAN, 2};
  tensor tv = tensor_view(DTYPE_F32, 1, (int64_t[]){3}, v);
  CHECK(tensor_has_nonfinite(&tv));
  v[1] = 0;
  CHECK(!tensor_has_nonfinite(&tv));
  return test_finish();
}

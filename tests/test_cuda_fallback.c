/* tests/test_cuda_fallback.c — device selection without a usable GPU, which runs everywhere:
 * the GPUs are hidden (CUDA_VISIBLE_DEVICES="" before the CUDA runtime starts), then
 *  - device_init("auto") picks the CPU, says so, and leaves the CPU ops backend current;
 *  - device_init("cuda") and ("cuda:0") fail with a clear message, and so do bad specs;
 *  - TURBO_DEVICE is read when the spec is NULL;
 *  - the device memory, stream, event and arena API works on the CPU (host memory, no-ops);
 *  - dp: world size 1 is a no-op, world size 2 on the CPU fails clearly, bad ranks fail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/device.h"
#include "kernels/dp.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

int main(void) {
  test_begin("test_cuda_fallback");
  setenv("CUDA_VISIBLE_DEVICES", "", 1); /* no GPU for this process, present or not */
  unsetenv("TURBO_DEVICE");
  unsetenv("TURBO_COMPUTE");
  unsetenv("TURBO_WORLD_SIZE");
  unsetenv("TURBO_RANK");
  unsetenv("TURBO_LOCAL_RANK");
  printf("built with CUDA: %s\n", device_cuda_built() ? "yes" : "no");

  /* auto falls back to the CPU */
  CHECK(device_init("auto") == TB_OK);
  CHECK(device_current() == DEVICE_CPU);
  CHECK(!device_is_cuda());
  CHECK(device_index() == -1);
  CHECK(ops_backend_current() != OPS_CUDA);
  printf("auto -> %s\n", device_describe());

  /* an explicit GPU request fails with a message that names the problem */
  err_clear();
  CHECK(device_init("cuda") == TB_ERR);
  printf("cuda -> error: %s\n", err_get());
  CHECK(strstr(err_get(), "cuda") != NULL);
  CHECK(strstr(err_get(), device_cuda_built() ? "no CUDA device" : "without CUDA") != NULL ||
        strstr(err_get(), "asked for") != NULL);
  CHECK(device_current() == DEVICE_CPU);
  err_clear();
  CHECK(device_init("cuda:0") == TB_ERR);
  printf("cuda:0 -> error: %s\n", err_get());
  CHECK(device_init("gpu") == TB_ERR);
  CHECK(strstr(err_get(), "unknown device") != NULL);
  CHECK(device_init("cuda:x") == TB_ERR);
  CHECK(device_init("cpu") == TB_OK);
  CHECK(device_current() == DEVICE_CPU);

  /* the environment is read when no spec is given */
  setenv("TURBO_DEVICE", "cpu", 1);
  CHECK(device_init(NULL) == TB_OK && device_current() == DEVICE_CPU);
  setenv("TURBO_DEVICE", "cuda", 1);
  CHECK(device_init("") == TB_ERR);
  setenv("TURBO_DEVICE", "auto", 1);
  CHECK(device_init(NULL) == TB_OK && device_current() == DEVICE_CPU);
  unsetenv("TURBO_DEVICE");
  setenv("TURBO_COMPUTE", "fp8", 1);
  CHECK(device_init("cpu") == TB_ERR);
  unsetenv("TURBO_COMPUTE");
  CHECK(device_init("cpu") == TB_OK);

  /* memory and copies on the CPU */
  float h[5] = {1, 2, 3, 4, 5}, back[5] = {0};
  float *d = device_malloc(sizeof h), *d2 = device_malloc(sizeof h);
  device_memcpy_h2d(d, h, sizeof h);
  device_memcpy_d2d(d2, d, sizeof h);
  device_memcpy_d2h(back, d2, sizeof h);
  CHECK(memcmp(back, h, sizeof h) == 0);
  device_memset(d2, 0, sizeof h);
  device_memcpy_d2h(back, d2, sizeof h);
  CHECK(back[0] == 0.0f && back[4] == 0.0f);
  device_stream cs = device_stream_copy();
  device_event ev = device_event_new();
  float *pin = device_host_alloc(sizeof h);
  memcpy(pin, h, sizeof h);
  device_memcpy_h2d_async(d2, pin, sizeof h, cs);
  device_event_record(ev, cs);
  device_stream_wait(device_stream_compute(), ev);
  device_event_sync(ev);
  device_stream_sync(cs);
  device_memcpy_d2h(back, d2, sizeof h);
  CHECK(memcmp(back, h, sizeof h) == 0);
  CHECK(device_event_ms(ev, ev) == 0.0f);
  device_event_free(ev);
  device_host_free(pin);
  device_free(d);
  device_free(d2);
  device_sync();
  size_t fr = 1, tot = 1;
  device_mem_info(&fr, &tot);
  CHECK(fr == 0 && tot == 0);
  uint16_t bf[2];
  CHECK(device_f32_to_bf16(bf, h, 2) == TB_ERR);

  /* arena: bump allocation, alignment, full, reset, high-water */
  device_arena *a = NULL;
  CHECK(device_arena_new(&a, 4096) == TB_OK);
  void *p1 = device_arena_alloc(a, 100), *p2 = device_arena_alloc(a, 100);
  CHECK(p1 && p2 && (char *)p2 - (char *)p1 == 256);
  CHECK(((uintptr_t)p2 & 255) == ((uintptr_t)p1 & 255));
  CHECK(device_arena_alloc(a, 8192) == NULL);
  CHECK(strstr(err_get(), "arena full") != NULL);
  CHECK(device_arena_used(a) == 356);
  device_arena_reset(a);
  CHECK(device_arena_used(a) == 0 && device_arena_high_water(a) == 356);
  CHECK(device_arena_alloc(a, 4096) == p1);
  CHECK(device_arena_capacity(a) == 4096);
  device_arena_free(a);

  /* data parallelism */
  CHECK(dp_init() == TB_OK && dp_world() == 1 && dp_rank() == 0);
  CHECK(dp_allreduce_mean(h, 5) == TB_OK && h[0] == 1.0f);
  CHECK(dp_broadcast(h, 5, 0) == TB_OK);
  setenv("TURBO_WORLD_SIZE", "2", 1);
  setenv("TURBO_RANK", "1", 1);
  CHECK(dp_init() == TB_ERR);
  printf("world 2 on the cpu -> error: %s\n", err_get());
  CHECK(strstr(err_get(), "CPU") != NULL);
  setenv("TURBO_RANK", "2", 1);
  CHECK(dp_init() == TB_ERR);
  setenv("TURBO_WORLD_SIZE", "two", 1);
  CHECK(dp_init() == TB_ERR);
  unsetenv("TURBO_WORLD_SIZE");
  unsetenv("TURBO_RANK");
  dp_shutdown();
  device_shutdown();
  return test_finish();
}

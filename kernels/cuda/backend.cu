/* kernels/cuda/backend.cu — the OPS_CUDA table: every entry of ops_backend, all pointers device
 * pointers, all work on the compute stream. */
#include <string.h>

#include "kernels/cuda/cuda_internal.cuh"

static ops_backend make_table(void) {
  ops_backend t;
  memset(&t, 0, sizeof t);
  t.name = "cuda";
  t.set_num_threads = NULL;
#define OP(name, params, args) t.name = cu_##name;
#include "kernels/ops_list.h"
#undef OP
  return t;
}

static ops_backend g_table;

extern "C" int cuda_backend_init(void) {
  if (!g_cu.open) return err_set("cuda: open a device (device_init) before registering the ops");
  g_table = make_table();
  return ops_backend_register(OPS_CUDA, &g_table);
}

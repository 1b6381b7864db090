/* kernels/cuda/dp.cu — data parallelism over GPUs with NCCL: one process per GPU, the gradient
 * block averaged in place with one all-reduce. Rank 0 creates the NCCL id and publishes it in a
 * file (written to a temporary name, then renamed, so a reader never sees half of it); the
 * other ranks wait for the file. Built without NCCL, cuda_dp_init explains and fails. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kernels/cuda/cuda_internal.cuh"

#ifdef TURBO_HAVE_NCCL
#include <nccl.h>

static ncclComm_t g_comm;
static int g_dp_open;

extern "C" int cuda_dp_available(void) { return 1; }

static int write_id(const char *path, const ncclUniqueId *id) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) return err_set("dp: cannot write the NCCL id to %s", tmp);
  size_t w = fwrite(id, sizeof *id, 1, f);
  if (fclose(f) != 0 || w != 1) return err_set("dp: cannot write the NCCL id to %s", tmp);
  if (rename(tmp, path) != 0) return err_set("dp: cannot rename %s to %s", tmp, path);
  return TB_OK;
}

static int read_id(const char *path, ncclUniqueId *id, double timeout_s) {
  double t0 = time_now();
  for (;;) {
    FILE *f = fopen(path, "rb");
    if (f) {
      size_t r = fread(id, sizeof *id, 1, f);
      fclose(f);
      if (r == 1) return TB_OK;
    }
    if (time_now() - t0 > timeout_s)
      return err_set("dp: no NCCL id in %s after %.0f s (is rank 0 running with the same "
                     "TURBO_NCCL_ID_FILE?)", path, timeout_s);
    usleep(50 * 1000);
  }
}

extern "C" int cuda_dp_init(int rank, int world, const char *id_file, double timeout_s) {
  if (g_dp_open) return TB_OK;
  if (!g_cu.open) return err_set("dp: open the CUDA device before data parallelism");
  if (!id_file || !*id_file)
    return err_set("dp: world size %d needs TURBO_NCCL_ID_FILE (a path every rank can read)",
                   world);
  ncclUniqueId id;
  if (rank == 0) {
    if (ncclGetUniqueId(&id) != ncclSuccess) return err_set("dp: ncclGetUniqueId failed");
    if (write_id(id_file, &id)) return TB_ERR;
  } else if (read_id(id_file, &id, timeout_s)) {
    return TB_ERR;
  }
  ncclResult_t r = ncclCommInitRank(&g_comm, world, id, rank);
  if (r != ncclSuccess)
    return err_set("dp: ncclCommInitRank (rank %d of %d) failed: %s", rank, world,
                   ncclGetErrorString(r));
  g_dp_open = 1;
  return TB_OK;
}

extern "C" int cuda_dp_allreduce_mean(float *x, int64_t n) {
  if (!g_dp_open) return err_set("dp: not initialised");
  ncclResult_t r = ncclAllReduce(x, x, (size_t)n, ncclFloat, ncclAvg, g_comm, g_cu.compute);
  if (r != ncclSuccess) return err_set("dp: all-reduce failed: %s", ncclGetErrorString(r));
  return TB_OK;
}

extern "C" int cuda_dp_broadcast(float *x, int64_t n, int root) {
  if (!g_dp_open) return err_set("dp: not initialised");
  ncclResult_t r = ncclBroadcast(x, x, (size_t)n, ncclFloat, root, g_comm, g_cu.compute);
  if (r != ncclSuccess) return err_set("dp: broadcast failed: %s", ncclGetErrorString(r));
  return TB_OK;
}

extern "C" void cuda_dp_shutdown(void) {
  if (!g_dp_open) return;
  ncclCommDestroy(g_comm);
  g_dp_open = 0;
}

#else /* no NCCL */

extern "C" int cuda_dp_available(void) { return 0; }
extern "C" int cuda_dp_init(int rank, int world, const char *id_file, double timeout_s) {
  return err_set("dp: world size %d needs NCCL, and this build has none (install NCCL and "
                 "rebuild)", world);
}
extern "C" int cuda_dp_allreduce_mean(float *x, int64_t n) {
  return err_set("dp: this build has no NCCL");
}
extern "C" int cuda_dp_broadcast(float *x, int64_t n, int root) {
  return err_set("dp: this build has no NCCL");
}
extern "C" void cuda_dp_shutdown(void) {}

#endif

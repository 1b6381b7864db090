/* kernels/dp.h — data-parallel training: one process per GPU, gradients averaged over ranks.
 *
 * Rank and world come from the environment: TURBO_RANK (0..world-1), TURBO_WORLD_SIZE
 * (default 1), TURBO_LOCAL_RANK (GPU index on this host; default TURBO_RANK), and
 * TURBO_NCCL_ID_FILE (a path every rank can read: rank 0 writes the NCCL id there, the others
 * wait for it, TURBO_NCCL_TIMEOUT seconds, default 120). With world size 1 every call is a
 * no-op, so one code path serves one GPU, several GPUs, and the CPU.
 * Call after device_init (the GPU must be chosen first). Errors: TB_ERR with err_get(); world
 * size > 1 on a build without NCCL, or on the CPU, fails with a message saying so.
 */
#ifndef TURBO_DP_H
#define TURBO_DP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Reads the environment. Returns TB_OK or TB_ERR. */
int dp_init(void);
int dp_rank(void);
int dp_world(void);
/* In-place average over all ranks of the gradient block g (n floats, on the current device).
 * A no-op when world == 1. */
int dp_allreduce_mean(float *g, int64_t n);
/* Copies rank root's x (n floats) to every rank (initial weights). No-op when world == 1. */
int dp_broadcast(float *x, int64_t n, int root);
void dp_shutdown(void);
/* Parses rank/world/local rank from the environment without initialising anything: TB_ERR on
 * malformed values (e.g. rank >= world). */
int dp_env(int *rank, int *world, int *local_rank);

#ifdef __cplusplus
}
#endif
#endif

/* kernels/ops.h — every numerical operation a model needs, forward and backward, behind a
 * backend table (CPU reference, CPU fast, CUDA).
 *
 * Conventions (the contract between the backends and their callers):
 * - f32 data, row-major, raw pointers with explicit dimensions; each signature names its shapes.
 *   On the CUDA backend every float pointer is a device pointer.
 * - Video activations are (B, T, C, H, W). A 2-D spatial op sees N = B*T images (N, C, H, W);
 *   temporal ops work across T for each (b, c, h, w).
 * - Forward functions overwrite their outputs. Backward functions ACCUMULATE (+=) into every
 *   gradient they write (input and parameter gradients alike; callers zero them first), and any
 *   gradient pointer may be NULL to skip that gradient.
 * - Backward functions take what the forward saved (mean/rstd, attention probabilities, masks).
 * - Results are deterministic for a fixed thread count: no reduction depends on thread timing.
 *
 * Dispatch: op_xxx(...) calls the current backend (ops_backend_set; the default is
 * OPS_CPU_FAST). Tests reach a backend directly through ops_backend_get(id)->xxx. A NULL entry
 * in a table means "unsupported on this backend": callers fail (op_xxx aborts with the op's
 * name), tests report "skipped". The CPU reference is plain C (no BLAS, no OpenMP, double
 * accumulation for reductions); it is the ground truth every other backend is tested against.
 *
 * Memory: on a device backend every float pointer and the mask pointers are device pointers;
 * the only host-side arguments are scalars, shapes, and the cond-drop keep flags.
 *
 * Dimension letters: B batch, T frames, C channels, H/W height/width, S = H*W (or any trailing
 * spatial extent), N rows / images / tokens, G groups, D head dim, L text tokens.
 */
#ifndef TURBO_OPS_H
#define TURBO_OPS_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { OPS_CPU_REF = 0, OPS_CPU_FAST = 1, OPS_CUDA = 2, OPS_NBACKENDS = 3 } ops_backend_id;

/* Attention mask, broadcast over heads; batch entry b of the op uses mask b % mb, so mb == 1
 * shares one mask, mb == B gives each entry its own, and any mb dividing B repeats a per-group
 * mask over a batch laid out (heads, groups) (the tape's head-major batches: entry h·G + g
 * takes mask g with mb = G). Either part may be NULL. `add` is added to the scaled scores
 * before the softmax (e.g. -inf or -1e4 for padding); `keep` is boolean: 0 removes the key
 * (probability exactly 0). A query row with every key removed gets all-zero probabilities and a
 * zero output. */
typedef struct {
  const float *add;    /* (mb, Nq, Nk) or NULL */
  const uint8_t *keep; /* (mb, Nq, Nk) or NULL; 1 = attend, 0 = masked */
  int mb;              /* >= 1, dividing the op's batch B */
} op_attn_mask;

/* ---- the backend table --------------------------------------------------------------------
 * Field names match the public op_ functions below (op_linear_fwd -> linear_fwd). */
typedef struct ops_backend {
  const char *name;
  /* threads: called by ops_set_num_threads; may be NULL */
  void (*set_num_threads)(int n);
  /* memory of this backend: all four NULL on the CPU backends, whose pointers are host pointers.
   * A device backend (CUDA) fills them; tests use them to mirror inputs and fetch results.
   * mem_alloc returns zeroed memory. */
  void *(*mem_alloc)(size_t nbytes);
  void (*mem_free)(void *p);
  void (*mem_to_device)(void *dst, const void *src_host, size_t nbytes);
  void (*mem_to_host)(void *dst_host, const void *src, size_t nbytes);

  /* every operation of kernels/ops_list.h, in its order */
#define OP(name, params, args) void(*name) params;
#include "kernels/ops_list.h"
#undef OP
} ops_backend;

/* ---- backend selection -------------------------------------------------------------------- */

/* The table of a backend, or NULL when it is not present (CUDA before registration). */
const ops_backend *ops_backend_get(ops_backend_id id);
/* Selects the backend op_xxx calls use (process-wide). TB_ERR (err_get says why) when that
 * backend is not present. */
int ops_backend_set(ops_backend_id id);
ops_backend_id ops_backend_current(void);
const char *ops_backend_name(ops_backend_id id);
/* The CUDA code registers its table here at its initialisation. TB_ERR on a bad id. */
int ops_backend_register(ops_backend_id id, const ops_backend *table);
/* Threads for the fast CPU backend (n <= 0: all cores). The backend has one thread pool,
 * OpenMP's: OpenBLAS is kept on the calling thread and large GEMMs are split over the OpenMP
 * threads by the backend itself, so two pools never spin against each other. Leave
 * OMP_WAIT_POLICY unset (libgomp spins briefly, then sleeps): "passive" makes every parallel
 * region wake its threads through the kernel, 50-90 us a region on a 2-core VM against ~1.5 us.
 * The count is process-wide: op calls on any thread (a service's worker, say) run with the
 * count last set, whichever thread set it. */
void ops_set_num_threads(int n);
int ops_get_num_threads(void);
/* The OpenMP thread count the calling thread's ops ran with at its last op call (what a
 * parallel region there gets), 1 without OpenMP: a service's worker reports it, so a test can
 * see that the count it was started with reached the thread that answers requests. */
int ops_threads_here(void);

/* Op profile: with TURBO_OPS_PROFILE=1 in the environment (or ops_profile_enable(1)), every
 * op_ call is timed (wall clock around the backend entry; on a device backend the device is
 * synchronised before and after, so the figure is the op's own time) and the totals per op are
 * printed to stderr at exit, largest first, with calls and share. ops_profile_report writes the
 * table now; ops_profile_reset clears it. Off, the cost is one branch per call. */
void ops_profile_enable(int on);
int ops_profile_enabled(void);
void ops_profile_reset(void);
void ops_profile_report(FILE *f);

/* ---- the operations ---------------------------------------------------------------------
 * op_name(...) for every entry of kernels/ops_list.h (documented there) runs the current
 * backend's entry. */
#define OP(name, params, args) void op_##name params;
#include "kernels/ops_list.h"
#undef OP

/* ---- token and head views of video activations (permutes, on every backend) --------------- */
/* Spatial self-attention tokens: inp (B, T, C, H, W) -> out (B*T, H*W, C): one sequence of S
 * tokens per frame. _bwd: dinp (B, T, C, H, W) += dout (B*T, H*W, C). */
void op_video_to_spatial_tokens(float *out, const float *inp, int B, int T, int C, int S);
void op_video_to_spatial_tokens_bwd(float *dinp, const float *dout, int B, int T, int C, int S);
/* ... and back: inp (B*T, S, C) -> out (B, T, C, S); _bwd: dinp (B*T, S, C) += dout. */
void op_spatial_tokens_to_video(float *out, const float *inp, int B, int T, int C, int S);
void op_spatial_tokens_to_video_bwd(float *dinp, const float *dout, int B, int T, int C, int S);
/* Temporal attention tokens: inp (B, T, C, S) -> out (B*S, T, C): one sequence of T tokens per
 * (b, spatial position). _bwd: dinp (B, T, C, S) += dout (B*S, T, C). */
void op_video_to_temporal_tokens(float *out, const float *inp, int B, int T, int C, int S);
void op_video_to_temporal_tokens_bwd(float *dinp, const float *dout, int B, int T, int C, int S);
/* ... and back: inp (B*S, T, C) -> out (B, T, C, S); _bwd: dinp (B*S, T, C) += dout. */
void op_temporal_tokens_to_video(float *out, const float *inp, int B, int T, int C, int S);
void op_temporal_tokens_to_video_bwd(float *dinp, const float *dout, int B, int T, int C, int S);
/* Cross-attention keys: the text context (B, L, C) repeated for each of the T frames of its
 * clip -> out (B*T, L, C). _bwd: dinp (B, L, C) += sum over frames of dout (B*T, L, C). */
void op_context_repeat(float *out, const float *inp, int B, int T, int L, int C);
void op_context_repeat_bwd(float *dinp, const float *dout, int B, int T, int L, int C);
/* Heads: inp (B, N, H*D) -> out (B, H, N, D) (split) and back (merge), with backwards. */
void op_heads_split(float *out, const float *inp, int B, int N, int H, int D);
void op_heads_split_bwd(float *dinp, const float *dout, int B, int N, int H, int D);
void op_heads_merge(float *out, const float *inp, int B, int N, int H, int D);
void op_heads_merge_bwd(float *dinp, const float *dout, int B, int N, int H, int D);


/* ---- host-side draws ------------------------------------------------------------------------
 * op_cond_drop_mask draws the keep flags (B) of op_cond_drop_fwd on the host: keep[b] = 0 with
 * probability p (hash(seed, b)), deterministic. op_rand_uniform is the uniform number in [0, 1)
 * the dropout ops draw for (seed, index): splitmix64-based. */
void op_cond_drop_mask(uint8_t *keep, int B, float p, uint64_t seed);
float op_rand_uniform(uint64_t seed, uint64_t index);

#ifdef __cplusplus
}
#endif
#endif

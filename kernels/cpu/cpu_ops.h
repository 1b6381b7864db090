/* kernels/cpu/cpu_ops.h — internal to the CPU backends: the two tables, and the per-row /
 * per-group kernels the reference and the fast backend share (the reference loops over them
 * serially, the fast backend in OpenMP loops), so both compute each row the same way. */
#ifndef TURBO_CPU_OPS_H
#define TURBO_CPU_OPS_H

#include "kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const ops_backend ops_cpu_ref_table;
extern const ops_backend ops_cpu_fast_table;
/* Threads the fast backend uses (set through its set_num_threads entry). */
int cpu_fast_threads(void);
/* omp_get_max_threads() of the calling thread (1 without OpenMP). */
int cpu_fast_threads_here(void);

void cpu_softmax_row(float *out, const float *inp, int C);
void cpu_softmax_row_bwd(float *dinp, const float *dout, const float *out, int C);
/* One attention query row's probabilities from its raw scores (already scaled): applies the
 * mask row (add, keep may be NULL) and the softmax; an all-masked row becomes zeros. */
void cpu_attn_probs_row(float *p, const float *scores, const float *add, const uint8_t *keep,
                        int Nk);
/* Permute of the index range [o0, o1) of out's first dimension; out dim d is inp dim perm[d].
 * mode 0: out = inp; 1: inp += out (a backward into inp); 2: out += inp. */
void cpu_permute_range(float *out, const float *inp, int ndim, const int *shape, const int *perm,
                       int mode, int64_t o0, int64_t o1);

/* Element-wise scalar kernels shared by both backends. */
float cpu_silu_d(float x);
float cpu_gelu_tanh(float x);
float cpu_gelu_tanh_d(float x);
float cpu_gelu_erf(float x);
float cpu_gelu_erf_d(float x);
float cpu_quick_gelu(float x);
float cpu_quick_gelu_d(float x);

/* Every reference entry (the fast table falls back to these where it has none of its own). */
#define OP(name, params, args) void ref_##name params;
#include "kernels/ops_list.h"
#undef OP

#ifdef __cplusplus
}
#endif
#endif

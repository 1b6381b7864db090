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

/* Every reference entry (the fast table reuses those that are already the fast way). */
void ref_matmul(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                const float *Bm, float beta, float *Cm);
void ref_linear_fwd(float *out, const float *inp, const float *weight, const float *bias, int N,
                    int Cin, int Cout);
void ref_linear_bwd(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                    const float *weight, int N, int Cin, int Cout);
void ref_conv3d_fwd(float *out, const float *inp, const float *weight, const float *bias, int B,
                    int T, int Cin, int H, int W, int Cout, int kt, int k, int stride_t, int stride,
                    int pad_t, int pad);
void ref_conv3d_bwd(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                    const float *weight, int B, int T, int Cin, int H, int W, int Cout, int kt,
                    int k, int stride_t, int stride, int pad_t, int pad);
void ref_conv2d_fwd(float *out, const float *inp, const float *weight, const float *bias, int N,
                    int Cin, int H, int W, int Cout, int k, int stride, int pad);
void ref_conv2d_bwd(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                    const float *weight, int N, int Cin, int H, int W, int Cout, int k, int stride,
                    int pad);
void ref_tconv_fwd(float *out, const float *inp, const float *weight, const float *bias, int B,
                   int T, int Cin, int S, int Cout, int kt);
void ref_tconv_bwd(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                   const float *weight, int B, int T, int Cin, int S, int Cout, int kt);
void ref_groupnorm_silu_fwd(float *out, float *mean, float *rstd, const float *inp,
                            const float *weight, const float *bias, int N, int T, int C, int S,
                            int G, float eps);
void ref_groupnorm_silu_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *mean, const float *rstd,
                            const float *weight, const float *bias, int N, int T, int C, int S,
                            int G);
void ref_groupnorm_fwd(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int T, int C, int S, int G, float eps);
void ref_groupnorm_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                       const float *inp, const float *mean, const float *rstd, const float *weight,
                       int N, int T, int C, int S, int G);
void ref_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C, float eps);
void ref_layernorm_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                       const float *inp, const float *mean, const float *rstd, const float *weight,
                       int N, int C);
void ref_silu_fwd(float *out, const float *inp, int64_t n);
void ref_silu_bwd(float *dinp, const float *dout, const float *inp, int64_t n);
void ref_gelu_tanh_fwd(float *out, const float *inp, int64_t n);
void ref_gelu_tanh_bwd(float *dinp, const float *dout, const float *inp, int64_t n);
void ref_gelu_erf_fwd(float *out, const float *inp, int64_t n);
void ref_gelu_erf_bwd(float *dinp, const float *dout, const float *inp, int64_t n);
void ref_geglu_fwd(float *out, const float *inp, int M, int F);
void ref_geglu_bwd(float *dinp, const float *dout, const float *inp, int M, int F);
void ref_softmax_fwd(float *out, const float *inp, int N, int C);
void ref_softmax_bwd(float *dinp, const float *dout, const float *out, int N, int C);
void ref_attention_fwd(float *out, float *probs, const float *q, const float *k, const float *v,
                       const op_attn_mask *mask, int B, int H, int Nq, int Nk, int D, float scale);
void ref_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *dprobs,
                       const float *q, const float *k, const float *v, const float *probs, int B,
                       int H, int Nq, int Nk, int D, float scale);
void ref_permute_fwd(float *out, const float *inp, int ndim, const int *shape, const int *perm);
void ref_permute_bwd(float *dinp, const float *dout, int ndim, const int *shape, const int *perm);
void ref_upsample2x_fwd(float *out, const float *inp, int N, int C, int H, int W);
void ref_upsample2x_bwd(float *dinp, const float *dout, int N, int C, int H, int W);
void ref_avgpool2x_fwd(float *out, const float *inp, int N, int C, int H, int W);
void ref_avgpool2x_bwd(float *dinp, const float *dout, int N, int C, int H, int W);
void ref_concat_fwd(float *out, const float *a, const float *b, int M, int Ca, int Cb, int S);
void ref_concat_bwd(float *da, float *db, const float *dout, int M, int Ca, int Cb, int S);
void ref_split_fwd(float *a, float *b, const float *inp, int M, int Ca, int Cb, int S);
void ref_repeat_fwd(float *out, const float *inp, int B, int T, int64_t E);
void ref_repeat_bwd(float *dinp, const float *dout, int B, int T, int64_t E);
void ref_add_fwd(float *out, const float *a, const float *b, int64_t n);
void ref_axpy(float *y, float alpha, const float *x, int64_t n);
void ref_scale_fwd(float *out, const float *inp, float s, int64_t n);
void ref_mul_fwd(float *out, const float *a, const float *b, int64_t n);
void ref_mul_bwd(float *da, float *db, const float *dout, const float *a, const float *b,
                 int64_t n);
void ref_bias_add_fwd(float *out, const float *inp, const float *bias, int B, int T, int C, int S);
void ref_bias_add_bwd(float *dinp, float *dbias, const float *dout, int B, int T, int C, int S);
void ref_l2norm_fwd(float *out, float *rnorm, const float *inp, int N, int C, float eps);
void ref_l2norm_bwd(float *dinp, const float *dout, const float *out, const float *rnorm, int N,
                    int C);
void ref_timestep_embedding(float *out, const float *t, int N, int dim, float max_period);
void ref_guidance_embedding(float *out, const float *w, int N, int dim);
void ref_dropout_fwd(float *out, uint8_t *keep, const float *inp, int64_t n, float p,
                     uint64_t seed);
void ref_dropout_bwd(float *dinp, const float *dout, const uint8_t *keep, int64_t n, float p);
void ref_cond_drop_fwd(float *out, const float *inp, const float *null_emb, const uint8_t *keep,
                       int B, int64_t E);
void ref_cond_drop_bwd(float *dinp, float *dnull, const float *dout, const uint8_t *keep, int B,
                       int64_t E);
void ref_mse_fwd(float *loss, const float *pred, const float *target, int64_t n);
void ref_mse_bwd(float *dpred, float *dtarget, float dloss, const float *pred, const float *target,
                 int64_t n);
void ref_huber_fwd(float *loss, const float *pred, const float *target, int64_t n, float c);
void ref_huber_bwd(float *dpred, float *dtarget, float dloss, const float *pred,
                   const float *target, int64_t n, float c);
void ref_infonce_fwd(float *loss, float *probs_ab, float *probs_ba, const float *a, const float *b,
                     int N, int D, float temperature);
void ref_infonce_bwd(float *da, float *db, float dloss, const float *a, const float *b,
                     const float *probs_ab, const float *probs_ba, int N, int D, float temperature);
void ref_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n, float lr,
                    float beta1, float beta2, float eps, float weight_decay, int64_t step);
void ref_sumsq(float *out, const float *x, int64_t n);
void ref_ema_update(float *ema, const float *param, float decay, int64_t n);

#ifdef __cplusplus
}
#endif
#endif

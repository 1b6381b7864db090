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

/* Attention mask, broadcast over heads (and over the batch when mb == 1). Either part may be
 * NULL. `add` is added to the scaled scores before the softmax (e.g. -inf or -1e4 for padding);
 * `keep` is boolean: 0 removes the key (probability exactly 0). A query row with every key
 * removed gets all-zero probabilities and a zero output. */
typedef struct {
  const float *add;    /* (mb, Nq, Nk) or NULL */
  const uint8_t *keep; /* (mb, Nq, Nk) or NULL; 1 = attend, 0 = masked */
  int mb;              /* 1 (same mask for every batch entry) or B */
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

  /* GEMM */
  void (*matmul)(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                 const float *Bm, float beta, float *Cm);
  void (*linear_fwd)(float *out, const float *inp, const float *weight, const float *bias, int N,
                     int Cin, int Cout);
  void (*linear_bwd)(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int Cin, int Cout);
  /* convolutions */
  void (*conv2d_fwd)(float *out, const float *inp, const float *weight, const float *bias, int N,
                     int Cin, int H, int W, int Cout, int k, int stride, int pad);
  void (*conv2d_bwd)(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int Cin, int H, int W, int Cout, int k, int stride,
                     int pad);
  void (*tconv_fwd)(float *out, const float *inp, const float *weight, const float *bias, int B,
                    int T, int Cin, int S, int Cout, int kt);
  void (*tconv_bwd)(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                    const float *weight, int B, int T, int Cin, int S, int Cout, int kt);
  void (*conv3d_fwd)(float *out, const float *inp, const float *weight, const float *bias, int B,
                     int T, int Cin, int H, int W, int Cout, int kt, int k, int stride_t,
                     int stride, int pad_t, int pad);
  void (*conv3d_bwd)(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int B, int T, int Cin, int H, int W, int Cout, int kt,
                     int k, int stride_t, int stride, int pad_t, int pad);
  /* normalisation */
  void (*groupnorm_fwd)(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                        const float *bias, int N, int T, int C, int S, int G, float eps);
  void (*groupnorm_bwd)(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *mean, const float *rstd, const float *weight,
                        int N, int T, int C, int S, int G);
  void (*groupnorm_silu_fwd)(float *out, float *mean, float *rstd, const float *inp,
                             const float *weight, const float *bias, int N, int T, int C, int S,
                             int G, float eps);
  void (*groupnorm_silu_bwd)(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *mean, const float *rstd,
                             const float *weight, const float *bias, int N, int T, int C, int S,
                             int G);
  void (*layernorm_fwd)(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                        const float *bias, int N, int C, float eps);
  void (*layernorm_bwd)(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *mean, const float *rstd, const float *weight,
                        int N, int C);
  /* activations */
  void (*silu_fwd)(float *out, const float *inp, int64_t n);
  void (*silu_bwd)(float *dinp, const float *dout, const float *inp, int64_t n);
  void (*gelu_tanh_fwd)(float *out, const float *inp, int64_t n);
  void (*gelu_tanh_bwd)(float *dinp, const float *dout, const float *inp, int64_t n);
  void (*gelu_erf_fwd)(float *out, const float *inp, int64_t n);
  void (*gelu_erf_bwd)(float *dinp, const float *dout, const float *inp, int64_t n);
  void (*geglu_fwd)(float *out, const float *inp, int M, int F);
  void (*geglu_bwd)(float *dinp, const float *dout, const float *inp, int M, int F);
  void (*softmax_fwd)(float *out, const float *inp, int N, int C);
  void (*softmax_bwd)(float *dinp, const float *dout, const float *out, int N, int C);
  /* attention */
  void (*attention_fwd)(float *out, float *probs, const float *q, const float *k, const float *v,
                        const op_attn_mask *mask, int B, int H, int Nq, int Nk, int D, float scale);
  void (*attention_bwd)(float *dq, float *dk, float *dv, const float *dout, const float *dprobs,
                        const float *q, const float *k, const float *v, const float *probs, int B,
                        int H, int Nq, int Nk, int D, float scale);
  /* layout */
  void (*permute_fwd)(float *out, const float *inp, int ndim, const int *shape, const int *perm);
  void (*permute_bwd)(float *dinp, const float *dout, int ndim, const int *shape, const int *perm);
  void (*upsample2x_fwd)(float *out, const float *inp, int N, int C, int H, int W);
  void (*upsample2x_bwd)(float *dinp, const float *dout, int N, int C, int H, int W);
  void (*avgpool2x_fwd)(float *out, const float *inp, int N, int C, int H, int W);
  void (*avgpool2x_bwd)(float *dinp, const float *dout, int N, int C, int H, int W);
  void (*concat_fwd)(float *out, const float *a, const float *b, int M, int Ca, int Cb, int S);
  void (*concat_bwd)(float *da, float *db, const float *dout, int M, int Ca, int Cb, int S);
  void (*split_fwd)(float *a, float *b, const float *inp, int M, int Ca, int Cb, int S);
  void (*repeat_fwd)(float *out, const float *inp, int B, int T, int64_t E);
  void (*repeat_bwd)(float *dinp, const float *dout, int B, int T, int64_t E);
  /* element-wise */
  void (*add_fwd)(float *out, const float *a, const float *b, int64_t n);
  void (*axpy)(float *y, float alpha, const float *x, int64_t n);
  void (*scale_fwd)(float *out, const float *inp, float s, int64_t n);
  void (*mul_fwd)(float *out, const float *a, const float *b, int64_t n);
  void (*mul_bwd)(float *da, float *db, const float *dout, const float *a, const float *b,
                  int64_t n);
  void (*bias_add_fwd)(float *out, const float *inp, const float *bias, int B, int T, int C, int S);
  void (*bias_add_bwd)(float *dinp, float *dbias, const float *dout, int B, int T, int C, int S);
  void (*l2norm_fwd)(float *out, float *rnorm, const float *inp, int N, int C, float eps);
  void (*l2norm_bwd)(float *dinp, const float *dout, const float *out, const float *rnorm, int N,
                     int C);
  /* embeddings, dropout */
  void (*timestep_embedding)(float *out, const float *t, int N, int dim, float max_period);
  void (*guidance_embedding)(float *out, const float *w, int N, int dim);
  void (*dropout_fwd)(float *out, uint8_t *keep, const float *inp, int64_t n, float p,
                      uint64_t seed);
  void (*dropout_bwd)(float *dinp, const float *dout, const uint8_t *keep, int64_t n, float p);
  void (*cond_drop_fwd)(float *out, const float *inp, const float *null_emb, const uint8_t *keep,
                        int B, int64_t E);
  void (*cond_drop_bwd)(float *dinp, float *dnull, const float *dout, const uint8_t *keep, int B,
                        int64_t E);
  /* losses: the scalar goes to *loss (one float, device memory on CUDA) */
  void (*mse_fwd)(float *loss, const float *pred, const float *target, int64_t n);
  void (*mse_bwd)(float *dpred, float *dtarget, float dloss, const float *pred, const float *target,
                  int64_t n);
  void (*huber_fwd)(float *loss, const float *pred, const float *target, int64_t n, float c);
  void (*huber_bwd)(float *dpred, float *dtarget, float dloss, const float *pred,
                    const float *target, int64_t n, float c);
  void (*infonce_fwd)(float *loss, float *probs_ab, float *probs_ba, const float *a, const float *b,
                      int N, int D, float temperature);
  void (*infonce_bwd)(float *da, float *db, float dloss, const float *a, const float *b,
                      const float *probs_ab, const float *probs_ba, int N, int D,
                      float temperature);
  /* optimisation */
  void (*adamw_step)(float *param, const float *grad, float *m, float *v, int64_t n, float lr,
                     float beta1, float beta2, float eps, float weight_decay, int64_t step);
  void (*sumsq)(float *out, const float *x, int64_t n);
  void (*ema_update)(float *ema, const float *param, float decay, int64_t n);
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
 * region wake its threads through the kernel, 50-90 us a region on a 2-core VM against ~1.5 us. */
void ops_set_num_threads(int n);
int ops_get_num_threads(void);

/* Op profile: with TURBO_OPS_PROFILE=1 in the environment (or ops_profile_enable(1)), every
 * op_ call is timed (wall clock around the backend entry; on a device backend the device is
 * synchronised before and after, so the figure is the op's own time) and the totals per op are
 * printed to stderr at exit, largest first, with calls and share. ops_profile_report writes the
 * table now; ops_profile_reset clears it. Off, the cost is one branch per call. */
void ops_profile_enable(int on);
int ops_profile_enabled(void);
void ops_profile_reset(void);
void ops_profile_report(FILE *f);

/* ---- GEMM ----------------------------------------------------------------------------------
 * Cm (M, N) = alpha * op(A) · op(Bm) + beta * Cm, row-major. op(A) is (M, K): A is stored (M, K)
 * when transA == 0, (K, M) when transA == 1; op(Bm) is (K, N): Bm stored (K, N) or (N, K).
 * beta == 0 overwrites Cm (NaNs in Cm do not propagate). */
void op_matmul(int transA, int transB, int M, int N, int K, float alpha, const float *A,
               const float *Bm, float beta, float *Cm);

/* out (N, Cout) = inp (N, Cin) · weight (Cout, Cin)^T + bias (Cout); bias may be NULL. */
void op_linear_fwd(float *out, const float *inp, const float *weight, const float *bias, int N,
                   int Cin, int Cout);
/* dinp (N, Cin), dweight (Cout, Cin), dbias (Cout) += from dout (N, Cout). */
void op_linear_bwd(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                   const float *weight, int N, int Cin, int Cout);

/* ---- convolutions --------------------------------------------------------------------------
 * conv2d: out (N, Cout, Ho, Wo) from inp (N, Cin, H, W), weight (Cout, Cin, k, k), bias (Cout)
 * or NULL; zero padding `pad` on every side; Ho = (H + 2*pad - k) / stride + 1 (same for Wo).
 * Used with k = 1 or 3, stride 1 or 2 (stride 2, k 3, pad 1 is the UNet down-sampler). */
void op_conv2d_fwd(float *out, const float *inp, const float *weight, const float *bias, int N,
                   int Cin, int H, int W, int Cout, int k, int stride, int pad);
void op_conv2d_bwd(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                   const float *weight, int N, int Cin, int H, int W, int Cout, int k, int stride,
                   int pad);

/* Temporal convolution of (2+1)-D blocks: a 1-D convolution across frames for every spatial
 * position, kernel kt (odd, 3 in the UNet), stride 1, zero padding kt/2 in time so T is kept.
 * out (B, T, Cout, S) from inp (B, T, Cin, S), weight (Cout, Cin, kt), bias (Cout) or NULL;
 * S = H*W. (PyTorch's Conv3d with kernel (kt, 1, 1) on (B, C, T, H, W) computes the same.) */
void op_tconv_fwd(float *out, const float *inp, const float *weight, const float *bias, int B,
                  int T, int Cin, int S, int Cout, int kt);
void op_tconv_bwd(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                  const float *weight, int B, int T, int Cin, int S, int Cout, int kt);

/* Full 3-D convolution on the video layout: out (B, To, Cout, Ho, Wo) from inp (B, T, Cin, H, W),
 * weight (Cout, Cin, kt, k, k) as PyTorch's Conv3d stores it, bias (Cout) or NULL.
 * To = (T + 2*pad_t - kt) / stride_t + 1; Ho = (H + 2*pad - k) / stride + 1. */
void op_conv3d_fwd(float *out, const float *inp, const float *weight, const float *bias, int B,
                   int T, int Cin, int H, int W, int Cout, int kt, int k, int stride_t, int stride,
                   int pad_t, int pad);
void op_conv3d_bwd(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                   const float *weight, int B, int T, int Cin, int H, int W, int Cout, int kt,
                   int k, int stride_t, int stride, int pad_t, int pad);

/* ---- normalisation ------------------------------------------------------------------------
 * Group norm over inp (N, T, C, S): G groups of C/G channels (C % G == 0); the statistics of
 * group g of sample n span T * (C/G) * S values. T = 1 is the usual per-image GroupNorm on
 * (N, C, H, W) (the (2+1)-D UNet's spatial blocks, N = B*T); T > 1 normalises a whole clip
 * (B, T, C, H, W) per group, as GroupNorm on (B, C, T, H, W) does in the temporal blocks.
 * out like inp; weight, bias (C) or NULL (no affine); mean, rstd (N, G) saved (biased variance,
 * rstd = 1/sqrt(var + eps)). */
void op_groupnorm_fwd(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                      const float *bias, int N, int T, int C, int S, int G, float eps);
void op_groupnorm_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                      const float *inp, const float *mean, const float *rstd, const float *weight,
                      int N, int T, int C, int S, int G);
/* Group norm followed by SiLU (the GN-SiLU pair that opens every ResBlock half), in one op:
 * out = silu(groupnorm(inp)); the normalised values are not kept. The backward recomputes them
 * from inp, mean and rstd, so it also takes the bias. Shapes as op_groupnorm_fwd/bwd. */
void op_groupnorm_silu_fwd(float *out, float *mean, float *rstd, const float *inp,
                           const float *weight, const float *bias, int N, int T, int C, int S,
                           int G, float eps);
void op_groupnorm_silu_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *mean, const float *rstd,
                           const float *weight, const float *bias, int N, int T, int C, int S,
                           int G);
/* Layer norm over the last dim: out, inp (N, C); weight, bias (C) or NULL; mean, rstd (N). */
void op_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                      const float *bias, int N, int C, float eps);
void op_layernorm_bwd(float *dinp, float *dweight, float *dbias, const float *dout,
                      const float *inp, const float *mean, const float *rstd, const float *weight,
                      int N, int C);

/* ---- activations (element-wise over n values; out may equal inp in forward) ---------------
 * GELU: the exact form x * Phi(x) (erf) is what VideoCrafter/LDM's GEGLU feed-forward
 * (F.gelu), OpenCLIP/HPSv2 (nn.GELU) and InternVideo2 use; the tanh approximation
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) is GPT-2's (and the fast choice). */
void op_silu_fwd(float *out, const float *inp, int64_t n);
void op_silu_bwd(float *dinp, const float *dout, const float *inp, int64_t n);
void op_gelu_tanh_fwd(float *out, const float *inp, int64_t n);
void op_gelu_tanh_bwd(float *dinp, const float *dout, const float *inp, int64_t n);
void op_gelu_erf_fwd(float *out, const float *inp, int64_t n);
void op_gelu_erf_bwd(float *dinp, const float *dout, const float *inp, int64_t n);
/* GEGLU, the gated feed-forward of LDM/VideoCrafter transformers, in one pass: inp (M, 2F) holds
 * [a | g] per row; out (M, F) = a * gelu_erf(g). Backward: dinp (M, 2F) += [dout gelu(g) |
 * dout a gelu'(g)]. */
void op_geglu_fwd(float *out, const float *inp, int M, int F);
void op_geglu_bwd(float *dinp, const float *dout, const float *inp, int M, int F);
/* Softmax over the last dim: out, inp (N, C). Backward takes the forward's output. */
void op_softmax_fwd(float *out, const float *inp, int N, int C);
void op_softmax_bwd(float *dinp, const float *dout, const float *out, int N, int C);

/* ---- attention -----------------------------------------------------------------------------
 * Multi-head scaled dot-product attention:
 *   probs = softmax(scale * q k^T + mask.add, masked by mask.keep) ; out = probs v
 * q (B, H, Nq, D), k, v (B, H, Nk, D), out (B, H, Nq, D), probs (B, H, Nq, Nk) — probs is
 * required: it is saved for the backward and exposed to callers (motion guidance reads the
 * temporal attention maps). mask may be NULL. scale is usually 1/sqrt(D).
 * Backward: dq, dk, dv += from dout (B, H, Nq, D) and, when not NULL, an extra incoming gradient
 * on the probabilities dprobs (B, H, Nq, Nk) (a loss on the attention maps). Masked entries have
 * probability 0 and so receive no gradient; the mask is not needed again. */
void op_attention_fwd(float *out, float *probs, const float *q, const float *k, const float *v,
                      const op_attn_mask *mask, int B, int H, int Nq, int Nk, int D, float scale);
void op_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *dprobs,
                      const float *q, const float *k, const float *v, const float *probs, int B,
                      int H, int Nq, int Nk, int D, float scale);

/* ---- layout: permutes and the token views of video activations ----------------------------
 * Generic permute (like torch.permute(...).contiguous()): inp has shape shape[0..ndim-1];
 * out has shape (shape[perm[0]], ..., shape[perm[ndim-1]]). ndim <= 6. Backward permutes dout
 * back and accumulates into dinp (same shape as inp). */
void op_permute_fwd(float *out, const float *inp, int ndim, const int *shape, const int *perm);
void op_permute_bwd(float *dinp, const float *dout, int ndim, const int *shape, const int *perm);

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
/* The general form: out (B, T, E) = inp (B, E) repeated T times; _bwd sums over T. */
void op_repeat_fwd(float *out, const float *inp, int B, int T, int64_t E);
void op_repeat_bwd(float *dinp, const float *dout, int B, int T, int64_t E);
/* Heads: inp (B, N, H*D) -> out (B, H, N, D) (split) and back (merge), with backwards. */
void op_heads_split(float *out, const float *inp, int B, int N, int H, int D);
void op_heads_split_bwd(float *dinp, const float *dout, int B, int N, int H, int D);
void op_heads_merge(float *out, const float *inp, int B, int N, int H, int D);
void op_heads_merge_bwd(float *dinp, const float *dout, int B, int N, int H, int D);

/* Nearest-neighbour x2 up-sampling: out (N, C, 2H, 2W) from inp (N, C, H, W). */
void op_upsample2x_fwd(float *out, const float *inp, int N, int C, int H, int W);
void op_upsample2x_bwd(float *dinp, const float *dout, int N, int C, int H, int W);
/* 2x2 average pooling, stride 2: out (N, C, H/2, W/2) from inp (N, C, H, W), H and W even.
 * (The UNet's learned down-sampler is op_conv2d with k 3, stride 2, pad 1.) */
void op_avgpool2x_fwd(float *out, const float *inp, int N, int C, int H, int W);
void op_avgpool2x_bwd(float *dinp, const float *dout, int N, int C, int H, int W);
/* Channel concat: out (M, Ca+Cb, S) from a (M, Ca, S), b (M, Cb, S) (for video skip connections
 * M = B*T, S = H*W). Backward = split: da, db += the two parts of dout. */
void op_concat_fwd(float *out, const float *a, const float *b, int M, int Ca, int Cb, int S);
void op_concat_bwd(float *da, float *db, const float *dout, int M, int Ca, int Cb, int S);
/* Split is the concat backward with overwrite: a, b = the parts of inp (M, Ca+Cb, S). */
void op_split_fwd(float *a, float *b, const float *inp, int M, int Ca, int Cb, int S);

/* ---- element-wise ---------------------------------------------------------------------------
 * Residual add out = a + b (its backward is op_axpy(da, 1, dout) and op_axpy(db, 1, dout));
 * axpy y += alpha x; scale out = s * inp (in place allowed; also the grad-clip multiply);
 * mul out = a * b with backward da += dout * b, db += dout * a (GEGLU's gate). */
void op_add_fwd(float *out, const float *a, const float *b, int64_t n);
void op_axpy(float *y, float alpha, const float *x, int64_t n);
void op_scale_fwd(float *out, const float *inp, float s, int64_t n);
void op_mul_fwd(float *out, const float *a, const float *b, int64_t n);
void op_mul_bwd(float *da, float *db, const float *dout, const float *a, const float *b, int64_t n);
/* Per-(sample, channel) bias broadcast over frames and space (the ResBlock's embedding add):
 * out (B, T, C, S) = inp (B, T, C, S) + bias (B, C). Backward: dinp += dout, dbias (B, C) +=
 * sum over T and S. */
void op_bias_add_fwd(float *out, const float *inp, const float *bias, int B, int T, int C, int S);
void op_bias_add_bwd(float *dinp, float *dbias, const float *dout, int B, int T, int C, int S);
/* Row L2 normalisation (reward-model embeddings): out (N, C) = inp / max(||inp||, eps);
 * rnorm (N) saved = 1 / max(||inp||, eps). Backward takes the forward's out and rnorm. */
void op_l2norm_fwd(float *out, float *rnorm, const float *inp, int N, int C, float eps);
void op_l2norm_bwd(float *dinp, const float *dout, const float *out, const float *rnorm, int N,
                   int C);

/* ---- embeddings, dropout -------------------------------------------------------------------
 * Sinusoidal timestep embedding, the DDPM/LDM convention VideoCrafter uses
 * (ldm timestep_embedding): half = dim/2, freq_i = exp(-ln(max_period) * i / half),
 * out (N, dim) = [cos(t freq_0..half-1), sin(t freq_0..half-1)] (cos first), a zero in the last
 * column when dim is odd. t (N) are (possibly fractional) timesteps; max_period is 10000. */
void op_timestep_embedding(float *out, const float *t, int N, int dim, float max_period);
/* Guidance-scale embedding of latent consistency models (LCM/T2V-Turbo
 * guidance_scale_embedding): w' = 1000 w, half = dim/2, freq_i = exp(-ln(10000) * i / (half-1)),
 * out (N, dim) = [sin(w' freq), cos(w' freq)] (sin first, note the half-1), zero pad when dim is
 * odd. T2V-Turbo-v2 uses dim 256 for the CFG scale and for the motion-guidance scale. */
void op_guidance_embedding(float *out, const float *w, int N, int dim);
/* Dropout with a counter-based RNG: element i is kept when hash(seed, i) >= p (uniform in
 * [0,1)), independent of threads and backends. out = keep ? inp / (1-p) : 0; keep (n) saved.
 * p == 0 keeps everything. Backward: dinp += dout * keep / (1-p). */
void op_dropout_fwd(float *out, uint8_t *keep, const float *inp, int64_t n, float p, uint64_t seed);
void op_dropout_bwd(float *dinp, const float *dout, const uint8_t *keep, int64_t n, float p);
/* Per-sample condition drop for classifier-free guidance training. op_cond_drop_mask draws
 * keep (B) on the host: keep[b] = 0 with probability p (hash(seed, b)), deterministic.
 * op_cond_drop_fwd: out (B, E) = keep[b] ? inp[b] : null_emb (E) (the empty-prompt embedding;
 * E = L*C for a text context). Backward: dinp += dout where kept; dnull += dout summed over the
 * dropped samples. keep always lives in host memory. */
void op_cond_drop_mask(uint8_t *keep, int B, float p, uint64_t seed);
void op_cond_drop_fwd(float *out, const float *inp, const float *null_emb, const uint8_t *keep,
                      int B, int64_t E);
void op_cond_drop_bwd(float *dinp, float *dnull, const float *dout, const uint8_t *keep, int B,
                      int64_t E);
/* The uniform number in [0, 1) the dropout ops draw for (seed, index): splitmix64-based. */
float op_rand_uniform(uint64_t seed, uint64_t index);

/* ---- losses -----------------------------------------------------------------------------------
 * Each forward writes one float to *loss; each backward scales by dloss (the incoming gradient
 * of the scalar, 1 for a plain loss) and accumulates. dtarget may be NULL (usual).
 * MSE: mean over n of (pred - target)^2.
 * Pseudo-Huber (LCM, T2V-Turbo): mean over n of sqrt((pred - target)^2 + c^2) - c (c = 0.001). */
void op_mse_fwd(float *loss, const float *pred, const float *target, int64_t n);
void op_mse_bwd(float *dpred, float *dtarget, float dloss, const float *pred, const float *target,
                int64_t n);
void op_huber_fwd(float *loss, const float *pred, const float *target, int64_t n, float c);
void op_huber_bwd(float *dpred, float *dtarget, float dloss, const float *pred, const float *target,
                  int64_t n, float c);
/* Symmetric InfoNCE (CLIP-style) between paired rows a (N, D), b (N, D) (normalise them first
 * with op_l2norm for cosine logits): logits (N, N) = a b^T / temperature;
 * loss = (CE(logits, diag) + CE(logits^T, diag)) / 2, each CE averaged over the N rows.
 * probs_ab = softmax of logits rows, probs_ba = softmax of logits^T rows, both (N, N), saved. */
void op_infonce_fwd(float *loss, float *probs_ab, float *probs_ba, const float *a, const float *b,
                    int N, int D, float temperature);
void op_infonce_bwd(float *da, float *db, float dloss, const float *a, const float *b,
                    const float *probs_ab, const float *probs_ba, int N, int D, float temperature);

/* ---- optimisation kernels ---------------------------------------------------------------------
 * AdamW (PyTorch semantics): param *= 1 - lr*weight_decay; m = b1 m + (1-b1) g;
 * v = b2 v + (1-b2) g^2; param -= lr * (m / (1-b1^step)) / (sqrt(v / (1-b2^step)) + eps).
 * step counts from 1. param, grad, m, v (n). */
void op_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n, float lr,
                   float beta1, float beta2, float eps, float weight_decay, int64_t step);
/* *out = sum of x^2 over n (double accumulation; fixed chunking, so the same bits for any
 * thread count). The global gradient norm is sqrt of this over the one gradient block; clip
 * with op_scale_fwd(g, g, min(1, max_norm / (norm + 1e-6)), n). */
void op_sumsq(float *out, const float *x, int64_t n);
/* ema = decay * ema + (1 - decay) * param, over n. */
void op_ema_update(float *ema, const float *param, float decay, int64_t n);

#ifdef __cplusplus
}
#endif
#endif

/* kernels/nn.h — models: a parameter registry, a recording context (forward on a tape,
 * backward in reverse, optional per-block recomputation), optimisation (AdamW, clipping, EMA,
 * learning-rate schedules) and the (2+1)-D video UNet of the VideoCrafter / ModelScope family.
 *
 * Layouts. Video activations are (B, T, C, H, W), which is ((B·T), C, H, W) for the spatial
 * layers; token sequences are (G, N, C) (G groups of N tokens of width C). Weights use the
 * PyTorch layouts: linear (out, in), conv2d (out, in, kh, kw), temporal conv (out, in, 3, 1, 1).
 *
 * Numbers. Every computation is an op_xxx of kernels/ops.h on the current ops backend
 * (ops_backend_set: the CPU reference, the fast CPU backend, or CUDA).
 * Memory. Parameters, gradients, optimiser moments and every activation live on the current
 * device (kernels/device.h): host memory on the CPU, GPU memory after device_init picked a GPU.
 * Pointers returned by nn_data, nn_grad, nn_attn_probs, nn_attn_extra_grad and the data/grad
 * fields of nn_params are device pointers (read them with device_memcpy_d2h on a GPU); arguments
 * documented as host arrays (nn_input's data, nn_backward's dy, unet_input's t/w/motion) are
 * copied to the device by the call. Choose the device before creating models and contexts.
 *
 * Ownership. A nn_params owns one block of parameters and one block of gradients; a nn_ctx owns
 * every activation and activation gradient of the passes recorded into it until nn_ctx_reset.
 * Parameter gradients accumulate (+=) across backward passes until nn_params_zero_grad.
 * Errors: functions returning int give TB_OK / TB_ERR with err_get() explaining; shape misuse
 * by the caller (a broken invariant) aborts through TB_CHECK.
 */
#ifndef TURBO_NN_H
#define TURBO_NN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------
 * Parameters
 * ------------------------------------------------------------------------------------- */

typedef enum {
  NN_INIT_ZERO = 0, /* biases, norm shifts */
  NN_INIT_ONE,      /* norm scales */
  NN_INIT_KAIMING,  /* uniform ±1/sqrt(fan_in) (PyTorch's default for linear/conv) */
  NN_INIT_XAVIER,   /* uniform ±sqrt(6/(fan_in+fan_out)) (attention projections) */
  NN_INIT_NORMAL,   /* N(0, 0.02²) (position embeddings) */
  NN_INIT_ZERO_OUT, /* zero, as diffusion UNets do for output projections; see nn_params_init */
} nn_init_kind;

#define NN_NAME_MAX 112
#define NN_MAX_DIMS 5

typedef struct {
  char name[NN_NAME_MAX]; /* hierarchical: "input_blocks.1.0.in_layers.2.weight" */
  int ndim;
  int64_t shape[NN_MAX_DIMS];
  int64_t numel;
  int64_t offset; /* floats from the start of data / grad */
  nn_init_kind init;
  int64_t fan_in, fan_out;
} nn_param_info;

typedef struct {
  int n, cap;
  nn_param_info *info;
  int64_t total; /* floats in data (and in grad) */
  float *data;   /* (total) all parameters, one allocation */
  float *grad;   /* (total) all gradients, one allocation */
} nn_params;

void nn_params_init_empty(nn_params *p);
/* Registers a parameter before nn_params_alloc; returns its index. A duplicate name aborts. */
int nn_params_add(nn_params *p, const char *name, int ndim, const int64_t *shape,
                  nn_init_kind init, int64_t fan_in, int64_t fan_out);
/* One device allocation for all data and one for all gradients (zeroed). Call once. */
void nn_params_alloc(nn_params *p);
/* The data block only (zeroed): a frozen model that never had a gradient block, as
 * nn_params_freeze leaves one. Call once, instead of nn_params_alloc. */
void nn_params_alloc_frozen(nn_params *p);
/* Seeded initialisation (drawn on the host, copied to the device). With zero_out = 0 the
 * NN_INIT_ZERO_OUT parameters are drawn like NN_INIT_KAIMING instead (gradient tests need every
 * path live). */
void nn_params_init(nn_params *p, uint64_t seed, int zero_out);
void nn_params_zero_grad(nn_params *p); /* nothing to do for frozen parameters */
/* Frees the gradient block: the parameters of a frozen model (a teacher, a reward model, the
 * text encoder) take no gradient memory. nn_param_var of them must then pass frozen = 1 (or
 * the context run without gradients); asking for a gradient aborts with the parameter's name. */
void nn_params_freeze(nn_params *p);
int nn_params_find(const nn_params *p, const char *name); /* index or -1 */
float *nn_params_ptr(const nn_params *p, int idx);
float *nn_params_grad_ptr(const nn_params *p, int idx);
void nn_params_free(nn_params *p);

/* A name map: checkpoint name → registered name (applied before matching). */
typedef struct {
  const char *from, *to;
} nn_name_map;

/* A tensor map: where each registered parameter comes from in a checkpoint of another family
 * (stage 2 of loading, built by code that knows both layouts: unet_tensor_map,
 * text_tensor_map). Entry i: parameter to[i] is read from tensor from[i] of the file as kind[i]
 * says. A parameter with no entry is read from the tensor of its own name. */
typedef enum {
  NN_SRC_SAME = 0, /* the same shape; trailing 1-dims may differ (a Conv1d / 1×1 Conv2d kernel
                    * (O, I, 1[, 1]) stored for a linear layer (O, I), and back) */
  NN_SRC_ROWS,     /* rows [row0, row0 + rows) of a 2-D or 1-D tensor with more rows (one of
                    * the q, k, v parts of a fused in_proj) */
  NN_SRC_T,        /* the transpose of a 2-D tensor (OpenCLIP's text_projection, used as
                    * x @ P, is (in, out); a linear weight is (out, in)) */
} nn_src_kind;

typedef struct {
  int n, cap;
  char **from, **to;
  int *kind;
  int64_t *row0;
} nn_tensor_map;

void nn_tensor_map_init(nn_tensor_map *m);
void nn_tensor_map_add(nn_tensor_map *m, const char *from, const char *to, nn_src_kind kind,
                       int64_t row0);
void nn_tensor_map_free(nn_tensor_map *m);
/* Loads every registered parameter through map (NULL: every parameter under its own name).
 * Checks everything before changing anything: a parameter whose tensor is missing, of another
 * shape or of a dtype other than F32/BF16/F16 fails with a message that names the tensor and
 * the parameter; a file that does not parse (truncated: the tensor whose bytes are cut) fails
 * as safetensors_open says. Tensors no parameter uses are counted in *n_unused (may be NULL)
 * and the first few logged. */
int nn_params_load_map(nn_params *p, const char *path, const nn_tensor_map *map, int *n_unused);

/* Saves every parameter as F32 to a safetensors file (written atomically: temp + rename). */
int nn_params_save(const nn_params *p, const char *path);
/* Loads a safetensors file: names pass through `map` (may be NULL), then are matched against
 * the registered parameters. A shape mismatch or a missing parameter fails (nothing is
 * changed then); unknown tensors are logged and skipped. F32, BF16 and F16 are accepted. */
int nn_params_load(nn_params *p, const char *path, const nn_name_map *map, int nmap);
/* Loads every registered parameter from the tensor of the same name in a safetensors file and
 * ignores the file's other tensors (one tower of a larger checkpoint: the text encoder of a
 * reward model). A missing tensor, a shape or dtype mismatch fails with nothing changed. */
int nn_params_load_registered(nn_params *p, const char *path);

/* ---------------------------------------------------------------------------------------
 * Optimisation (all over flat device arrays, so one call covers a whole nn_params)
 * ------------------------------------------------------------------------------------- */

typedef struct {
  float beta1, beta2, eps, weight_decay;
  int64_t step; /* steps taken (bias correction uses step after increment) */
  int64_t n;
  float *m, *v; /* (n) moments, on the device */
} nn_adamw;

void nn_adamw_init(nn_adamw *o, int64_t n, float beta1, float beta2, float eps, float wd);
/* One step: decoupled decay p -= lr·wd·p, then p -= lr·m̂/(sqrt(v̂)+eps). */
void nn_adamw_step(nn_adamw *o, float *param, const float *grad, float lr);
void nn_adamw_free(nn_adamw *o);
/* Global L2 norm of grad (op_sumsq: double accumulation, the same bits for any thread count);
 * scales grad by max_norm/norm when the norm exceeds max_norm (> 0). Returns the norm before
 * clipping. */
float nn_grad_clip(float *grad, int64_t n, float max_norm);
/* ema = decay·ema + (1-decay)·param */
void nn_ema_update(float *ema, const float *param, int64_t n, float decay);

typedef enum { NN_LR_CONSTANT = 0, NN_LR_COSINE } nn_lr_kind;
/* Learning rate at `step` (0-based): linear warm-up from 0 over `warmup` steps to base, then
 * constant or cosine decay to min_lr at `total` steps. */
float nn_lr_at(nn_lr_kind kind, int64_t step, float base, int64_t warmup, int64_t total,
               float min_lr);

/* Training state: what a killed run needs to continue exactly (parameters, AdamW moments, an
 * EMA copy, the step, the data position and the run's RNG), in one safetensors file written
 * atomically. The parameters are stored under their own names, so nn_params_load reads the file
 * as a plain checkpoint; the rest sits under the reserved prefix "train.". */
typedef struct {
  int64_t step;     /* optimiser steps taken */
  int64_t data_pos; /* samples consumed, in the run's data order */
  uint64_t rng;     /* the run's random state after `step` steps */
} nn_train_pos;

/* opt and ema may be NULL (not saved). meta: nmeta (key, value) string pairs the caller adds
 * (the model config, the dataset); keys "format" and "train.*" are reserved. */
int nn_train_save(const char *path, const nn_params *p, const nn_adamw *opt, const float *ema,
                  const nn_train_pos *pos, int nmeta, const char *const *meta);
/* Restores what was saved into p, opt (initialised by the caller with the same n; its moments
 * and step are replaced) and ema (p->total device floats), which may be NULL to skip. Checks
 * everything first: on TB_ERR (a missing tensor, a different configuration) nothing changed. */
int nn_train_load(const char *path, nn_params *p, nn_adamw *opt, float *ema, nn_train_pos *pos);
/* The position of a training state without loading it (TB_ERR: not a training state). */
int nn_train_read_pos(const char *path, nn_train_pos *pos);

/* ---------------------------------------------------------------------------------------
 * Recording context
 * ------------------------------------------------------------------------------------- */

typedef int nn_var; /* a tensor recorded in a context; -1 for none */
typedef struct nn_ctx nn_ctx;

nn_ctx *nn_ctx_new(void);
void nn_ctx_free(nn_ctx *c);
/* Forgets every recorded pass; the activation arena is resized to the peak it reached, so
 * after the first pass of a given input shape no further allocation happens. */
void nn_ctx_reset(nn_ctx *c);
/* Gradients on (the default) or off. Off is inference: nothing is recorded for a backward, no
 * var needs a gradient, and every block run through nn_checkpoint frees its insides as soon as
 * its output is copied out, so a pass holds one activation per block rather than all of them.
 * Set it on an empty context (after nn_ctx_new or nn_ctx_reset). nn_backward then aborts. */
void nn_ctx_set_grad(nn_ctx *c, int enabled);
int nn_ctx_grad_enabled(const nn_ctx *c);
/* recompute = 1: blocks run through nn_checkpoint keep only their inputs and outputs and
 * recompute their insides in the backward. train = 1 activates dropout. seed drives dropout. */
void nn_ctx_set_mode(nn_ctx *c, int recompute, int train, uint64_t seed);
/* Bytes of activations held now / at most. */
size_t nn_ctx_bytes(const nn_ctx *c);

/* A leaf holding a copy of data (n floats); requires_grad asks for dL/d(data) in nn_grad. */
nn_var nn_input(nn_ctx *c, const float *data, int64_t n, int requires_grad);
/* A leaf aliasing parameter idx; its gradient is the parameter gradient (accumulates).
 * frozen = 1 gives no gradient (a teacher). */
nn_var nn_param_var(nn_ctx *c, nn_params *p, int idx, int frozen);
float *nn_data(nn_ctx *c, nn_var v);
float *nn_grad(nn_ctx *c, nn_var v); /* NULL when no gradient reached v */
int64_t nn_numel(nn_ctx *c, nn_var v);
/* Backpropagates from y with upstream gradient dy (host, numel(y) floats). Once per recorded
 * pass: a second call on the same pass aborts (it would add every gradient twice). */
void nn_backward(nn_ctx *c, nn_var y, const float *dy);
/* One backward from several outputs at once: ys[i] gets the upstream gradient dys[i] (host,
 * numel(ys[i]) floats each), then one reverse sweep (a distillation loss and a reward gradient
 * on decoded frames in one backward). The same once-per-pass rule. */
void nn_backward_many(nn_ctx *c, int n, const nn_var *ys, const float *const *dys);

/* Runs fn(c, blk, in) as one unit. In recompute mode its insides are freed after the forward
 * and recomputed in the backward (dropout draws are replayed identically). */
typedef nn_var (*nn_block_fn)(nn_ctx *c, void *blk, const nn_var in[3]);
nn_var nn_checkpoint(nn_ctx *c, nn_block_fn fn, void *blk, const nn_var in[3]);

/* Attention probabilities kept for reading (temporal attention layers register here when
 * nn_ctx_keep_attn(c, 1)). probs: (G, heads, N, N) for layer i in the order run. extra_grad
 * is a zeroed buffer of the same shape: whatever the caller adds to it before nn_backward is
 * added to dL/dprobs of that layer (motion guidance differentiates a loss on the maps). */
void nn_ctx_keep_attn(nn_ctx *c, int on);
/* Keeps only the layers named (n names; n = 0 keeps every named layer again) and turns keeping
 * on: motion guidance reads a few temporal layers, and each kept map costs G·heads·Nq·Nk floats
 * (twice with gradients, for the extra gradient). */
void nn_ctx_keep_attn_only(nn_ctx *c, int n, const char *const *names);
int nn_attn_count(const nn_ctx *c);
const char *nn_attn_name(const nn_ctx *c, int i);
const float *nn_attn_probs(const nn_ctx *c, int i, int64_t shape[4]);
float *nn_attn_extra_grad(nn_ctx *c, int i); /* NULL in a context without gradients */

/* ---------------------------------------------------------------------------------------
 * Operations on the tape (forward overwrites its output; backward accumulates)
 * ------------------------------------------------------------------------------------- */

/* y (M, N) = x (M, K) · W (N, K)^T + b (N); b may be -1. */
nn_var nn_linear(nn_ctx *c, nn_var x, nn_var W, nn_var b, int64_t M, int64_t K, int64_t N);
/* y (Nb, Co, Ho, Wo) = conv2d(x (Nb, Ci, H, W), W (Co, Ci, k, k)) + b, stride s, padding pad. */
nn_var nn_conv2d(nn_ctx *c, nn_var x, nn_var W, nn_var b, int64_t Nb, int64_t Ci, int64_t H,
                 int64_t Wd, int64_t Co, int k, int s, int pad);
/* y (B, T, Co, S) = Σ_k W[:, :, k] · x (B, T, Ci, S)[t+k-1] + b, zero-padded in time
 * (a Conv3d of kernel (3, 1, 1) in (B, C, T, H, W) terms). */
nn_var nn_tconv3(nn_ctx *c, nn_var x, nn_var W, nn_var b, int64_t B, int64_t T, int64_t Ci,
                 int64_t Co, int64_t S);
/* Group norm of x (B, T, C, S): statistics per (b, group) over (T, C/G, S); affine per C
 * (g, b may be -1: none). Per-frame norm is B·T batches with T = 1. silu = 1 applies SiLU after
 * the affine (the backward recomputes the normalised values rather than keeping them). */
nn_var nn_group_norm(nn_ctx *c, nn_var x, nn_var g, nn_var b, int64_t B, int64_t T, int64_t C,
                     int64_t S, int G, float eps, int silu);
/* Layer norm over the last dim of x (M, C); g, b may be -1. */
nn_var nn_layer_norm(nn_ctx *c, nn_var x, nn_var g, nn_var b, int64_t M, int64_t C, float eps);
nn_var nn_silu(nn_ctx *c, nn_var x);
/* x (M, 2F) → (M, F): x[:, :F] · gelu(x[:, F:]) (exact erf GELU). */
nn_var nn_geglu(nn_ctx *c, nn_var x, int64_t M, int64_t F);
nn_var nn_add(nn_ctx *c, nn_var a, nn_var b);
/* x (B, T, C, S) + e (B, C) broadcast over T and S (the ResBlock's embedding add). */
nn_var nn_bias_add(nn_ctx *c, nn_var x, nn_var e, int64_t B, int64_t T, int64_t C, int64_t S);
/* x (A, R, S) + e (A, R) broadcast over S; S = 1 is a plain add. */
nn_var nn_add_bcast_last(nn_ctx *c, nn_var x, nn_var e, int64_t A, int64_t R, int64_t S);
/* x (A, R) + p[0:R] broadcast over A (p may be longer: the first rows of a position table). */
nn_var nn_add_bcast_first(nn_ctx *c, nn_var x, nn_var p, int64_t A, int64_t R);
/* (N, Ca, S) ++ (N, Cb, S) → (N, Ca+Cb, S) */
nn_var nn_concat_chan(nn_ctx *c, nn_var a, nn_var b, int64_t N, int64_t Ca, int64_t Cb, int64_t S);
/* nearest ×2: (N, C, H, W) → (N, C, 2H, 2W) */
nn_var nn_upsample2(nn_ctx *c, nn_var x, int64_t N, int64_t C, int64_t H, int64_t W);
/* 4-D permutation: out dim i is input dim perm[i]. */
nn_var nn_permute4(nn_ctx *c, nn_var x, const int64_t dims[4], const int perm[4]);
/* e (B, E) → (B·T, E), each row repeated T times in place. */
nn_var nn_repeat_rows(nn_ctx *c, nn_var e, int64_t B, int64_t T, int64_t E);
/* Dropout (train mode only; otherwise returns x): counter-based draws per op, replayed
 * identically when a block is recomputed. */
nn_var nn_dropout(nn_ctx *c, nn_var x, float p);
/* Condition drop for classifier-free guidance: y (B, E) = keep[b] ? x[b] : null_emb (E).
 * keep (B) is a host array (op_cond_drop_mask draws one); null_emb gets the gradient of the
 * dropped rows (a learned empty-prompt embedding). */
nn_var nn_cond_drop(nn_ctx *c, nn_var x, nn_var null_emb, int64_t B, int64_t E,
                    const uint8_t *keep);
/* Multi-head attention: q (G, Nq, C), k, v (G, Nk, C), heads | C (head h is channels
 * [h·d, (h+1)·d)); softmax(q kᵀ/sqrt(d)) v. When name != NULL and the context keeps attention,
 * the probabilities are registered as (G, heads, Nq, Nk). */
nn_var nn_attention(nn_ctx *c, nn_var q, nn_var k, nn_var v, int64_t G, int64_t Nq, int64_t Nk,
                    int64_t C, int heads, const char *name);

/* As nn_attention, with a key-padding mask: key_keep (G, Nk) host flags, 1 = attend, 0 = the key
 * is padding (probability exactly 0). NULL is nn_attention. A query whose keys are all masked
 * gets a zero output. */
nn_var nn_attention_masked(nn_ctx *c, nn_var q, nn_var k, nn_var v, int64_t G, int64_t Nq,
                           int64_t Nk, int64_t C, int heads, const uint8_t *key_keep,
                           const char *name);
/* As nn_attention_masked, and causal = 1 also removes every key after the query's position
 * (query i sees keys 0..i: CLIP's text transformer). */
nn_var nn_attention_ex(nn_ctx *c, nn_var q, nn_var k, nn_var v, int64_t G, int64_t Nq,
                       int64_t Nk, int64_t C, int heads, const uint8_t *key_keep, int causal,
                       const char *name);
/* Exact (erf) GELU. */
nn_var nn_gelu(nn_ctx *c, nn_var x);
/* CLIP's quick GELU x · sigmoid(1.702 x) (op_quick_gelu). */
nn_var nn_quick_gelu(nn_ctx *c, nn_var x);
/* Rows of x (M, C) scaled to unit L2 norm (norm clamped at 1e-6). */
nn_var nn_l2norm(nn_ctx *c, nn_var x, int64_t M, int64_t C);
/* Token embedding lookup: y (N, D) = table (V, D)[ids[n]]; ids (N) a host array (copied). An id
 * outside [0, V) gives a zero row. The table gets the gradient. */
nn_var nn_embedding(nn_ctx *c, nn_var table, const int32_t *ids, int64_t N, int64_t V,
                    int64_t D);
/* Weighted pooling over tokens: y (B, C) = sum_n w[b, n] x (B, N, C)[b, n]; w (B, N) a host
 * array (copied; a constant), e.g. 1/count on valid tokens for a masked mean. */
nn_var nn_token_pool(nn_ctx *c, nn_var x, const float *w, int64_t B, int64_t N, int64_t C);
/* Softmax cross-entropy, a one-value var: mean over the N rows of -log softmax(scale ·
 * logits (N, C))[target[n]]; target (N) a host array (copied) of classes in [0, C) (a row with
 * another value counts nothing). Contrastive losses with hard negatives and pairwise
 * preferences (logits [s_preferred, s_other], target 0, is the Bradley-Terry loss). */
nn_var nn_xent(nn_ctx *c, nn_var logits, const int32_t *target, int64_t N, int64_t C,
               float scale);

/* Losses: a one-value var. mean (pred - target)^2, and the pseudo-Huber of LCM / T2V-Turbo
 * mean sqrt((pred - target)^2 + c^2) - c. Backpropagate with nn_backward(c, loss, &one). */
nn_var nn_mse(nn_ctx *c, nn_var pred, nn_var target);
nn_var nn_huber(nn_ctx *c, nn_var pred, nn_var target, float hc);

/* The frame VAE's operations. Zero padding of x (N, C, H, W) by (top, bottom, left, right)
 * (LDM's down-sampler pads (0, 1, 0, 1)); channels [c0, c0 + k) of x (N, C, S) as (N, k, S) (the
 * posterior's mean and log-variance halves); a clamp to [lo, hi] (gradient where lo <= x <= hi);
 * a posterior draw mean + exp(logvar / 2) · noise with noise (numel) a host array (copied; a
 * constant); and one-value losses: the KL of N(mean, exp(logvar)) from N(0, 1), averaged over
 * elements, and the mean absolute error. */
nn_var nn_pad2d(nn_ctx *c, nn_var x, int64_t N, int64_t C, int64_t H, int64_t W, int top,
                int bottom, int left, int right);
nn_var nn_chan_slice(nn_ctx *c, nn_var x, int64_t N, int64_t C, int64_t S, int64_t c0,
                     int64_t k);
nn_var nn_clamp(nn_ctx *c, nn_var x, float lo, float hi);
nn_var nn_gauss_sample(nn_ctx *c, nn_var mean, nn_var logvar, const float *noise);
nn_var nn_kl_gauss(nn_ctx *c, nn_var mean, nn_var logvar);
nn_var nn_l1(nn_ctx *c, nn_var pred, nn_var target);

/* Embedding leaves (no gradient) of N per-sample scalars given in a host array:
 * LDM's sinusoidal timestep embedding (N, dim) = [cos(t·f_i), sin(t·f_i)], f_i = 10000^(-i/half)
 * (op_timestep_embedding), and the guidance-scale embedding of LCM / T2V-Turbo of 1000·w
 * (op_guidance_embedding: sin first, frequencies 10000^(-i/(half-1))). */
nn_var nn_timestep_embedding(nn_ctx *c, const float *t, int64_t N, int dim);
nn_var nn_guidance_embedding(nn_ctx *c, const float *w, int64_t N, int dim);

/* ---------------------------------------------------------------------------------------
 * (2+1)-D video UNet
 * ------------------------------------------------------------------------------------- */

#define UNET_MAX_LEVELS 4

typedef struct {
  int in_ch, out_ch;      /* latent channels (4) */
  int model_ch;           /* channels of level 0 */
  int n_levels;           /* resolution levels */
  int ch_mult[UNET_MAX_LEVELS];
  int n_res;              /* ResBlocks per level on the way down (n_res + 1 on the way up) */
  int attn_levels;        /* bit l set: transformers at level l (the middle always has them) */
  int head_ch;            /* channels per attention head */
  int text_dim;           /* width of the text tokens (context) */
  int max_frames;         /* rows of the learned frame-position table */
  int temporal_conv;      /* 1: (2+1)-D ResBlocks with a temporal conv sub-block */
  int temporal_pos;       /* 0: learned frame positions, 1: sinusoidal (no parameters) */
  int cond_embeds;        /* extra conditioning embeddings: 0, 1 (CFG scale w), 2 (+ motion) */
  int groups;             /* GroupNorm groups (32 in LDM; fewer for tiny widths) */
  float dropout;
  /* Options of the real model families (all 0 in unet_config_default, which they leave as
   * it is: the same parameters, names and computation). */
  int temporal_conv_layers; /* 0 or 2: turbo's two-conv temporal block; 4: the four-conv block
                             * of ModelScope (diffusers TemporalConvLayer) and VideoCrafter2
                             * (TemporalConvBlock): conv1.{0,2}, conv{2,3,4}.{0,3}, conv4
                             * zero-initialised */
  int temporal_attn;        /* UNET_TATTN_TURBO: attn1 + feed-forward with frame positions;
                             * UNET_TATTN_PAIR: attn1 and attn2 both self-attention over the
                             * frames, then the feed-forward, no positions (diffusers'
                             * TransformerTemporalModel, VideoCrafter2's TemporalTransformer) */
  int init_temporal;        /* 1: a temporal transformer (UNET_TATTN_PAIR) right after conv_in,
                             * "init_attn.0" (VideoCrafter2's init_attn, diffusers'
                             * transformer_in), init_heads heads of head_ch channels, so its
                             * width init_heads·head_ch may differ from model_ch */
  int init_heads;           /* 8 in both families */
  int spatial_only;         /* 1: no temporal layer at all (no temporal conv sub-blocks, no
                             * temporal transformers, no init_attn): an image model run on each
                             * frame alone, the ablation that shows what the temporal layers
                             * learn (tests/test_teacher_learns.c) */
  int fps_embed;            /* 1: fps_embedding.{0,2}: an MLP of the sinusoidal embedding of the
                             * clip's fps (model_ch wide) added to the time embedding
                             * (VideoCrafter2's fps_cond) */
} unet_config;

enum { UNET_TATTN_TURBO = 0, UNET_TATTN_PAIR = 1 };

/* The small default of the built-in world: 16×16×4 latents, 16 frames, about 5M parameters. */
unet_config unet_config_default(void);
/* VideoCrafter2's UNet (METHOD.md §8): 320 channels × (1, 2, 4, 4), 2 ResBlocks a level,
 * transformers at the first three levels, 64-channel heads, 1024-wide text, four-conv temporal
 * blocks, paired temporal self-attention, init_attn, fps embedding; about 1.4G parameters. */
unet_config unet_config_videocrafter2(void);
/* ModelScope T2V in diffusers' UNet3DConditionModel layout (its unet/config.json): 320 ×
 * (1, 2, 4, 4), 2 ResBlocks, cross-attention in the first three down blocks, 64-channel heads,
 * 1024-wide text, four-conv temporal blocks, paired temporal attention, transformer_in. */
unet_config unet_config_modelscope(void);

typedef struct unet_block unet_block; /* private */

typedef struct {
  unet_config cfg;
  nn_params params;
  int time_embed_ch; /* 4·model_ch */
  int n_blocks;      /* input blocks + middle + output blocks + out */
  unet_block *blocks;
  int p_time[4], p_cond[2][4]; /* time_embed.{0,2}.{weight,bias}, w/motion embeds */
  int frozen;        /* 1: parameters get no gradients (a teacher) */
  int p_fps[4];      /* fps_embedding.{0,2}.{weight,bias} (cfg.fps_embed) */
} unet;

/* Registers all parameters and allocates them (not initialised: call unet_init_weights or
 * nn_params_load). Returns TB_ERR on a config that does not add up. */
int unet_create(unet *u, const unet_config *cfg);
void unet_init_weights(unet *u, uint64_t seed, int zero_out);
void unet_free(unet *u);
/* A frozen UNet (a teacher): its gradient block is freed and its parameters never take a
 * gradient; gradients still flow through it to its inputs (motion guidance's dE/dz_t). */
void unet_freeze(unet *u);

typedef struct {
  int B, T, H, W;
  const float *t;      /* (B) diffusion timesteps (0..999) */
  const float *w;      /* (B) CFG scale, NULL when unused (cond_embeds >= 1 adds its embedding) */
  const float *motion; /* (B) motion-guidance scale, NULL when unused (cond_embeds == 2) */
  nn_var context;      /* (B, L, text_dim) text tokens */
  int L;
  const float *fps;    /* (B) frames per second of the clips (cfg.fps_embed); NULL: 8, the
                        * rate T2V-Turbo-v2 trains and samples at */
} unet_input;

/* eps (B, T, out_ch, H, W) = unet(x (B, T, in_ch, H, W)). */
nn_var unet_forward(unet *u, nn_ctx *c, nn_var x, const unet_input *in);
/* The same contract checked instead of asserted, for inputs that come from outside (a service
 * request, a file): batch, frames (against the frame-position table), latent size (divisible by
 * 2^(levels-1)), the latent's and the context's value counts, timesteps in [0, 1000), finite w /
 * motion. TB_ERR (err_get names what disagrees) and nothing recorded; TB_OK and *out the eps. */
int unet_forward_checked(unet *u, nn_ctx *c, nn_var x, const unet_input *in, nn_var *out);
/* The check alone: x_numel / ctx_numel are the value counts of the latent and the context. */
int unet_input_check(const unet *u, int64_t x_numel, int64_t ctx_numel, const unet_input *in);
/* Names of the temporal-attention layers (the names nn_attn_name reports), in the order a
 * forward runs them: all of them, or (decoder_only) those of the output blocks, the layers
 * T2V-Turbo-v2's motion guidance reads. Writes up to max pointers (owned by u); returns the
 * count. */
int unet_temporal_layers(const unet *u, int decoder_only, const char **names, int max);
/* Checkpoint families whose names unet_tensor_map translates to turbo's. */
typedef enum {
  UNET_FAMILY_TURBO = 0,   /* turbo's own names (the identity) */
  UNET_FAMILY_VC2,         /* VideoCrafter2's model.ckpt state_dict: "model.diffusion_model."
                            * + LDM names, `temopral_conv` as the checkpoint spells it */
  UNET_FAMILY_DIFFUSERS,   /* diffusers' UNet3DConditionModel (ModelScope T2V): down_blocks,
                            * mid_block, up_blocks, resnets / temp_convs / attentions /
                            * temp_attentions, transformer_in, conv_in/out, time_embedding */
} unet_family;
/* The checkpoint tensor of every parameter of u under a family's names (for
 * nn_params_load_map). TB_ERR when the family cannot express u (e.g. student conditions in
 * diffusers' layout). Free with nn_tensor_map_free. */
int unet_tensor_map(const unet *u, unet_family fam, nn_tensor_map *m);

/* Analytic FLOPs of one forward at these sizes (multiply-add = 2); backward is about twice. */
double unet_flops_forward(const unet *u, int B, int T, int H, int W, int L);
/* Classifier-free condition dropping on host arrays, before the context is uploaded: each of
 * the B contexts (L·D floats) is replaced by null_ctx (or zeros when NULL) with probability p
 * (op_cond_drop_mask keyed on *rng, which advances); returns how many were dropped. In-graph
 * dropping with a learned null embedding is nn_cond_drop. */
int unet_drop_context(float *context, const float *null_ctx, int B, int64_t LD, float p,
                      uint64_t *rng);

#ifdef __cplusplus
}
#endif
#endif

/* kernels/ops_list.h — the one list of backend operations, as an X-macro. Each entry
 *   OP(name, (parameters), (arguments))
 * becomes a field `name` of ops_backend and the public op_name (kernels/ops.h, dispatched in
 * kernels/ops.c), and names the functions each backend provides: ref_name (the CPU reference,
 * kernels/cpu/; required, its table is generated from this list), cu_name (kernels/cuda/;
 * required when CUDA is built, its table is generated too) and, where the fast CPU backend has
 * its own, fast_name (kernels/cpu/fast.c, one line in its table; otherwise the reference runs).
 * Adding an op: an entry here with its contract, ref_name, cu_name, and fast_name if faster.
 *
 * No include guard: an includer defines OP(name, params, args), includes this file, and
 * undefines OP. The conventions of every entry are at the top of kernels/ops.h.
 */

/* ---- GEMM ----------------------------------------------------------------------------------
 * Cm (M, N) = alpha * op(A) · op(Bm) + beta * Cm, row-major. op(A) is (M, K): A is stored (M, K)
 * when transA == 0, (K, M) when transA == 1; op(Bm) is (K, N): Bm stored (K, N) or (N, K).
 * beta == 0 overwrites Cm (NaNs in Cm do not propagate). */
OP(matmul, (int transA, int transB, int M, int N, int K, float alpha, const float *A,
   const float *Bm, float beta, float *Cm),
   (transA, transB, M, N, K, alpha, A, Bm, beta, Cm))

/* out (N, Cout) = inp (N, Cin) · weight (Cout, Cin)^T + bias (Cout); bias may be NULL. */
OP(linear_fwd, (float *out, const float *inp, const float *weight, const float *bias, int N,
   int Cin, int Cout),
   (out, inp, weight, bias, N, Cin, Cout))
/* dinp (N, Cin), dweight (Cout, Cin), dbias (Cout) += from dout (N, Cout). */
OP(linear_bwd, (float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
   const float *weight, int N, int Cin, int Cout),
   (dinp, dweight, dbias, dout, inp, weight, N, Cin, Cout))

/* ---- convolutions --------------------------------------------------------------------------
 * conv2d: out (N, Cout, Ho, Wo) from inp (N, Cin, H, W), weight (Cout, Cin, k, k), bias (Cout)
 * or NULL; zero padding `pad` on every side; Ho = (H + 2*pad - k) / stride + 1 (same for Wo).
 * Used with k = 1 or 3, stride 1 or 2 (stride 2, k 3, pad 1 is the UNet down-sampler). */
OP(conv2d_fwd, (float *out, const float *inp, const float *weight, const float *bias, int N,
   int Cin, int H, int W, int Cout, int k, int stride, int pad),
   (out, inp, weight, bias, N, Cin, H, W, Cout, k, stride, pad))
OP(conv2d_bwd, (float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
   const float *weight, int N, int Cin, int H, int W, int Cout, int k, int stride, int pad),
   (dinp, dweight, dbias, dout, inp, weight, N, Cin, H, W, Cout, k, stride, pad))

/* Temporal convolution of (2+1)-D blocks: a 1-D convolution across frames for every spatial
 * position, kernel kt (odd, 3 in the UNet), stride 1, zero padding kt/2 in time so T is kept.
 * out (B, T, Cout, S) from inp (B, T, Cin, S), weight (Cout, Cin, kt), bias (Cout) or NULL;
 * S = H*W. (PyTorch's Conv3d with kernel (kt, 1, 1) on (B, C, T, H, W) computes the same.) */
OP(tconv_fwd, (float *out, const float *inp, const float *weight, const float *bias, int B, int T,
   int Cin, int S, int Cout, int kt),
   (out, inp, weight, bias, B, T, Cin, S, Cout, kt))
OP(tconv_bwd, (float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
   const float *weight, int B, int T, int Cin, int S, int Cout, int kt),
   (dinp, dweight, dbias, dout, inp, weight, B, T, Cin, S, Cout, kt))

/* Full 3-D convolution on the video layout: out (B, To, Cout, Ho, Wo) from inp (B, T, Cin, H, W),
 * weight (Cout, Cin, kt, k, k) as PyTorch's Conv3d stores it, bias (Cout) or NULL.
 * To = (T + 2*pad_t - kt) / stride_t + 1; Ho = (H + 2*pad - k) / stride + 1. */
OP(conv3d_fwd, (float *out, const float *inp, const float *weight, const float *bias, int B,
   int T, int Cin, int H, int W, int Cout, int kt, int k, int stride_t, int stride, int pad_t,
   int pad),
   (out, inp, weight, bias, B, T, Cin, H, W, Cout, kt, k, stride_t, stride, pad_t, pad))
OP(conv3d_bwd, (float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
   const float *weight, int B, int T, int Cin, int H, int W, int Cout, int kt, int k,
   int stride_t, int stride, int pad_t, int pad),
   (dinp, dweight, dbias, dout, inp, weight, B, T, Cin, H, W, Cout, kt, k, stride_t, stride,
    pad_t, pad))

/* ---- normalisation ------------------------------------------------------------------------
 * Group norm over inp (N, T, C, S): G groups of C/G channels (C % G == 0); the statistics of
 * group g of sample n span T * (C/G) * S values. T = 1 is the usual per-image GroupNorm on
 * (N, C, H, W) (the (2+1)-D UNet's spatial blocks, N = B*T); T > 1 normalises a whole clip
 * (B, T, C, H, W) per group, as GroupNorm on (B, C, T, H, W) does in the temporal blocks.
 * out like inp; weight, bias (C) or NULL (no affine); mean, rstd (N, G) saved (biased variance,
 * rstd = 1/sqrt(var + eps)). */
OP(groupnorm_fwd, (float *out, float *mean, float *rstd, const float *inp, const float *weight,
   const float *bias, int N, int T, int C, int S, int G, float eps),
   (out, mean, rstd, inp, weight, bias, N, T, C, S, G, eps))
OP(groupnorm_bwd, (float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
   const float *mean, const float *rstd, const float *weight, int N, int T, int C, int S, int G),
   (dinp, dweight, dbias, dout, inp, mean, rstd, weight, N, T, C, S, G))
/* Group norm followed by SiLU (the GN-SiLU pair that opens every ResBlock half), in one op:
 * out = silu(groupnorm(inp)); the normalised values are not kept. The backward recomputes them
 * from inp, mean and rstd, so it also takes the bias. Shapes as op_groupnorm_fwd/bwd. */
OP(groupnorm_silu_fwd, (float *out, float *mean, float *rstd, const float *inp,
   const float *weight, const float *bias, int N, int T, int C, int S, int G, float eps),
   (out, mean, rstd, inp, weight, bias, N, T, C, S, G, eps))
OP(groupnorm_silu_bwd, (float *dinp, float *dweight, float *dbias, const float *dout,
   const float *inp, const float *mean, const float *rstd, const float *weight, const float *bias,
   int N, int T, int C, int S, int G),
   (dinp, dweight, dbias, dout, inp, mean, rstd, weight, bias, N, T, C, S, G))
/* Layer norm over the last dim: out, inp (N, C); weight, bias (C) or NULL; mean, rstd (N). */
OP(layernorm_fwd, (float *out, float *mean, float *rstd, const float *inp, const float *weight,
   const float *bias, int N, int C, float eps),
   (out, mean, rstd, inp, weight, bias, N, C, eps))
OP(layernorm_bwd, (float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
   const float *mean, const float *rstd, const float *weight, int N, int C),
   (dinp, dweight, dbias, dout, inp, mean, rstd, weight, N, C))

/* ---- activations (element-wise over n values; out may equal inp in forward) ---------------
 * GELU: the exact form x * Phi(x) (erf) is what VideoCrafter/LDM's GEGLU feed-forward
 * (F.gelu), OpenCLIP/HPSv2 (nn.GELU) and InternVideo2 use; the tanh approximation
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) is GPT-2's (and the fast choice). */
OP(silu_fwd, (float *out, const float *inp, int64_t n),
   (out, inp, n))
OP(silu_bwd, (float *dinp, const float *dout, const float *inp, int64_t n),
   (dinp, dout, inp, n))
OP(gelu_tanh_fwd, (float *out, const float *inp, int64_t n),
   (out, inp, n))
OP(gelu_tanh_bwd, (float *dinp, const float *dout, const float *inp, int64_t n),
   (dinp, dout, inp, n))
OP(gelu_erf_fwd, (float *out, const float *inp, int64_t n),
   (out, inp, n))
OP(gelu_erf_bwd, (float *dinp, const float *dout, const float *inp, int64_t n),
   (dinp, dout, inp, n))
/* Quick GELU of OpenAI's CLIP (transformers' hidden_act "quick_gelu"): x * sigmoid(1.702 x). */
OP(quick_gelu_fwd, (float *out, const float *inp, int64_t n),
   (out, inp, n))
OP(quick_gelu_bwd, (float *dinp, const float *dout, const float *inp, int64_t n),
   (dinp, dout, inp, n))
/* GEGLU, the gated feed-forward of LDM/VideoCrafter transformers, in one pass: inp (M, 2F) holds
 * [a | g] per row; out (M, F) = a * gelu_erf(g). Backward: dinp (M, 2F) += [dout gelu(g) |
 * dout a gelu'(g)]. */
OP(geglu_fwd, (float *out, const float *inp, int M, int F),
   (out, inp, M, F))
OP(geglu_bwd, (float *dinp, const float *dout, const float *inp, int M, int F),
   (dinp, dout, inp, M, F))
/* Softmax over the last dim: out, inp (N, C). Backward takes the forward's output. */
OP(softmax_fwd, (float *out, const float *inp, int N, int C),
   (out, inp, N, C))
OP(softmax_bwd, (float *dinp, const float *dout, const float *out, int N, int C),
   (dinp, dout, out, N, C))

/* ---- attention -----------------------------------------------------------------------------
 * Multi-head scaled dot-product attention:
 *   probs = softmax(scale * q k^T + mask.add, masked by mask.keep) ; out = probs v
 * q (B, H, Nq, D), k, v (B, H, Nk, D), out (B, H, Nq, D), probs (B, H, Nq, Nk) — probs is
 * required: it is saved for the backward and exposed to callers (motion guidance reads the
 * temporal attention maps). mask may be NULL. scale is usually 1/sqrt(D).
 * Backward: dq, dk, dv += from dout (B, H, Nq, D) and, when not NULL, an extra incoming gradient
 * on the probabilities dprobs (B, H, Nq, Nk) (a loss on the attention maps). Masked entries have
 * probability 0 and so receive no gradient; the mask is not needed again. */
OP(attention_fwd, (float *out, float *probs, const float *q, const float *k, const float *v,
   const op_attn_mask *mask, int B, int H, int Nq, int Nk, int D, float scale),
   (out, probs, q, k, v, mask, B, H, Nq, Nk, D, scale))
OP(attention_bwd, (float *dq, float *dk, float *dv, const float *dout, const float *dprobs,
   const float *q, const float *k, const float *v, const float *probs, int B, int H, int Nq,
   int Nk, int D, float scale),
   (dq, dk, dv, dout, dprobs, q, k, v, probs, B, H, Nq, Nk, D, scale))

/* ---- layout: permutes and the token views of video activations ----------------------------
 * Generic permute (like torch.permute(...).contiguous()): inp has shape shape[0..ndim-1];
 * out has shape (shape[perm[0]], ..., shape[perm[ndim-1]]). ndim <= 6. Backward permutes dout
 * back and accumulates into dinp (same shape as inp). */
OP(permute_fwd, (float *out, const float *inp, int ndim, const int *shape, const int *perm),
   (out, inp, ndim, shape, perm))
OP(permute_bwd, (float *dinp, const float *dout, int ndim, const int *shape, const int *perm),
   (dinp, dout, ndim, shape, perm))

/* The general form: out (B, T, E) = inp (B, E) repeated T times; _bwd sums over T. */
OP(repeat_fwd, (float *out, const float *inp, int B, int T, int64_t E),
   (out, inp, B, T, E))
OP(repeat_bwd, (float *dinp, const float *dout, int B, int T, int64_t E),
   (dinp, dout, B, T, E))
/* Nearest-neighbour x2 up-sampling: out (N, C, 2H, 2W) from inp (N, C, H, W). */
OP(upsample2x_fwd, (float *out, const float *inp, int N, int C, int H, int W),
   (out, inp, N, C, H, W))
OP(upsample2x_bwd, (float *dinp, const float *dout, int N, int C, int H, int W),
   (dinp, dout, N, C, H, W))
/* 2x2 average pooling, stride 2: out (N, C, H/2, W/2) from inp (N, C, H, W), H and W even.
 * (The UNet's learned down-sampler is op_conv2d with k 3, stride 2, pad 1.) */
OP(avgpool2x_fwd, (float *out, const float *inp, int N, int C, int H, int W),
   (out, inp, N, C, H, W))
OP(avgpool2x_bwd, (float *dinp, const float *dout, int N, int C, int H, int W),
   (dinp, dout, N, C, H, W))
/* Channel concat: out (M, Ca+Cb, S) from a (M, Ca, S), b (M, Cb, S) (for video skip connections
 * M = B*T, S = H*W). Backward = split: da, db += the two parts of dout. */
OP(concat_fwd, (float *out, const float *a, const float *b, int M, int Ca, int Cb, int S),
   (out, a, b, M, Ca, Cb, S))
OP(concat_bwd, (float *da, float *db, const float *dout, int M, int Ca, int Cb, int S),
   (da, db, dout, M, Ca, Cb, S))
/* Split is the concat backward with overwrite: a, b = the parts of inp (M, Ca+Cb, S). */
OP(split_fwd, (float *a, float *b, const float *inp, int M, int Ca, int Cb, int S),
   (a, b, inp, M, Ca, Cb, S))

/* ---- token sequences: embedding lookup and weighted pooling ---------------------------------
 * Embedding lookup (text encoders): out (N, D) = table (V, D)[ids[n]]; ids (N) int32 (a device
 * pointer on a device backend). An id outside [0, V) gives a zero row and no gradient.
 * Backward: dtable (V, D) += each dout row at its id; rows sharing an id are summed in n order,
 * so the result does not depend on threads. */
OP(embedding_fwd, (float *out, const float *table, const int32_t *ids, int N, int V, int D),
   (out, table, ids, N, V, D))
OP(embedding_bwd, (float *dtable, const float *dout, const int32_t *ids, int N, int V, int D),
   (dtable, dout, ids, N, V, D))
/* Weighted sum over the tokens of each sequence: out (B, C) = sum_n w (B, N)[b, n] *
 * inp (B, N, C)[b, n]; a masked mean when w is 1/count on the valid tokens and 0 on padding.
 * w is a constant (no gradient). Backward: dinp[b, n] += w[b, n] * dout[b]. */
OP(token_pool_fwd, (float *out, const float *inp, const float *w, int B, int N, int C),
   (out, inp, w, B, N, C))
OP(token_pool_bwd, (float *dinp, const float *dout, const float *w, int B, int N, int C),
   (dinp, dout, w, B, N, C))

/* ---- element-wise ---------------------------------------------------------------------------
 * Residual add out = a + b (its backward is op_axpy(da, 1, dout) and op_axpy(db, 1, dout));
 * axpy y += alpha x; scale out = s * inp (in place allowed; also the grad-clip multiply);
 * mul out = a * b with backward da += dout * b, db += dout * a (GEGLU's gate). */
OP(add_fwd, (float *out, const float *a, const float *b, int64_t n),
   (out, a, b, n))
OP(axpy, (float *y, float alpha, const float *x, int64_t n),
   (y, alpha, x, n))
OP(scale_fwd, (float *out, const float *inp, float s, int64_t n),
   (out, inp, s, n))
OP(mul_fwd, (float *out, const float *a, const float *b, int64_t n),
   (out, a, b, n))
OP(mul_bwd, (float *da, float *db, const float *dout, const float *a, const float *b, int64_t n),
   (da, db, dout, a, b, n))
/* Per-(sample, channel) bias broadcast over frames and space (the ResBlock's embedding add):
 * out (B, T, C, S) = inp (B, T, C, S) + bias (B, C). Backward: dinp += dout, dbias (B, C) +=
 * sum over T and S. */
OP(bias_add_fwd, (float *out, const float *inp, const float *bias, int B, int T, int C, int S),
   (out, inp, bias, B, T, C, S))
OP(bias_add_bwd, (float *dinp, float *dbias, const float *dout, int B, int T, int C, int S),
   (dinp, dbias, dout, B, T, C, S))
/* Row L2 normalisation (reward-model embeddings): out (N, C) = inp / max(||inp||, eps);
 * rnorm (N) saved = 1 / max(||inp||, eps). Backward takes the forward's out and rnorm. */
OP(l2norm_fwd, (float *out, float *rnorm, const float *inp, int N, int C, float eps),
   (out, rnorm, inp, N, C, eps))
OP(l2norm_bwd, (float *dinp, const float *dout, const float *out, const float *rnorm, int N,
   int C),
   (dinp, dout, out, rnorm, N, C))

/* ---- embeddings, dropout -------------------------------------------------------------------
 * Sinusoidal timestep embedding, the DDPM/LDM convention VideoCrafter uses
 * (ldm timestep_embedding): half = dim/2, freq_i = exp(-ln(max_period) * i / half),
 * out (N, dim) = [cos(t freq_0..half-1), sin(t freq_0..half-1)] (cos first), a zero in the last
 * column when dim is odd. t (N) are (possibly fractional) timesteps; max_period is 10000. */
OP(timestep_embedding, (float *out, const float *t, int N, int dim, float max_period),
   (out, t, N, dim, max_period))
/* Guidance-scale embedding of latent consistency models (LCM/T2V-Turbo
 * guidance_scale_embedding): w' = 1000 w, half = dim/2, freq_i = exp(-ln(10000) * i / (half-1)),
 * out (N, dim) = [sin(w' freq), cos(w' freq)] (sin first, note the half-1), zero pad when dim is
 * odd. T2V-Turbo-v2 uses dim 256 for the CFG scale and for the motion-guidance scale. */
OP(guidance_embedding, (float *out, const float *w, int N, int dim),
   (out, w, N, dim))
/* Dropout with a counter-based RNG: element i is kept when hash(seed, i) >= p (uniform in
 * [0,1)), independent of threads and backends. out = keep ? inp / (1-p) : 0; keep (n) saved.
 * p == 0 keeps everything. Backward: dinp += dout * keep / (1-p). */
OP(dropout_fwd, (float *out, uint8_t *keep, const float *inp, int64_t n, float p, uint64_t seed),
   (out, keep, inp, n, p, seed))
OP(dropout_bwd, (float *dinp, const float *dout, const uint8_t *keep, int64_t n, float p),
   (dinp, dout, keep, n, p))
/* Per-sample condition drop for classifier-free guidance training. op_cond_drop_mask draws
 * keep (B) on the host: keep[b] = 0 with probability p (hash(seed, b)), deterministic.
 * op_cond_drop_fwd: out (B, E) = keep[b] ? inp[b] : null_emb (E) (the empty-prompt embedding;
 * E = L*C for a text context). Backward: dinp += dout where kept; dnull += dout summed over the
 * dropped samples. keep always lives in host memory. */
OP(cond_drop_fwd, (float *out, const float *inp, const float *null_emb, const uint8_t *keep,
   int B, int64_t E),
   (out, inp, null_emb, keep, B, E))
OP(cond_drop_bwd, (float *dinp, float *dnull, const float *dout, const uint8_t *keep, int B,
   int64_t E),
   (dinp, dnull, dout, keep, B, E))

/* ---- losses -----------------------------------------------------------------------------------
 * Each forward writes one float to *loss; each backward scales by dloss (the incoming gradient
 * of the scalar, 1 for a plain loss) and accumulates. dtarget may be NULL (usual).
 * MSE: mean over n of (pred - target)^2.
 * Pseudo-Huber (LCM, T2V-Turbo): mean over n of sqrt((pred - target)^2 + c^2) - c (c = 0.001). */
OP(mse_fwd, (float *loss, const float *pred, const float *target, int64_t n),
   (loss, pred, target, n))
OP(mse_bwd, (float *dpred, float *dtarget, float dloss, const float *pred, const float *target,
   int64_t n),
   (dpred, dtarget, dloss, pred, target, n))
OP(huber_fwd, (float *loss, const float *pred, const float *target, int64_t n, float c),
   (loss, pred, target, n, c))
OP(huber_bwd, (float *dpred, float *dtarget, float dloss, const float *pred, const float *target,
   int64_t n, float c),
   (dpred, dtarget, dloss, pred, target, n, c))
/* Symmetric InfoNCE (CLIP-style) between paired rows a (N, D), b (N, D) (normalise them first
 * with op_l2norm for cosine logits): logits (N, N) = a b^T / temperature;
 * loss = (CE(logits, diag) + CE(logits^T, diag)) / 2, each CE averaged over the N rows.
 * probs_ab = softmax of logits rows, probs_ba = softmax of logits^T rows, both (N, N), saved. */
OP(infonce_fwd, (float *loss, float *probs_ab, float *probs_ba, const float *a, const float *b,
   int N, int D, float temperature),
   (loss, probs_ab, probs_ba, a, b, N, D, temperature))
OP(infonce_bwd, (float *da, float *db, float dloss, const float *a, const float *b,
   const float *probs_ab, const float *probs_ba, int N, int D, float temperature),
   (da, db, dloss, a, b, probs_ab, probs_ba, N, D, temperature))

/* Softmax cross-entropy over rows of scaled logits (contrastive losses with hard negatives,
 * pairwise preferences): probs (N, C) = softmax(scale * logits (N, C)) per row, saved;
 * *loss = (1/N) sum_n -log probs[n, target[n]]; target (N) int32 (a device pointer on a device
 * backend). A row whose target is outside [0, C) adds nothing (and gets no gradient).
 * Backward: dlogits += dloss * scale / N * (probs - onehot(target)). */
OP(xent_fwd, (float *loss, float *probs, const float *logits, const int32_t *target, int N, int C,
   float scale),
   (loss, probs, logits, target, N, C, scale))
OP(xent_bwd, (float *dlogits, float dloss, const float *probs, const int32_t *target, int N,
   int C, float scale),
   (dlogits, dloss, probs, target, N, C, scale))

/* ---- the frame VAE (LDM AutoencoderKL) -------------------------------------------------------
 * Zero padding with a different width per side (LDM's down-sampler pads (0, 1, 0, 1) before its
 * stride-2, pad-0 convolution): out (N, C, H + top + bottom, W + left + right) from inp
 * (N, C, H, W). Backward: dinp += the interior of dout. */
OP(pad2d_fwd, (float *out, const float *inp, int N, int C, int H, int W, int top, int bottom,
   int left, int right),
   (out, inp, N, C, H, W, top, bottom, left, right))
OP(pad2d_bwd, (float *dinp, const float *dout, int N, int C, int H, int W, int top, int bottom,
   int left, int right),
   (dinp, dout, N, C, H, W, top, bottom, left, right))
/* Clamp to [lo, hi] (the posterior's log-variance, clamped to [-30, 20] as LDM does); the
 * backward passes dout where lo <= inp <= hi (PyTorch's clamp) and adds: dinp += dout there. */
OP(clamp_fwd, (float *out, const float *inp, float lo, float hi, int64_t n),
   (out, inp, lo, hi, n))
OP(clamp_bwd, (float *dinp, const float *dout, const float *inp, float lo, float hi, int64_t n),
   (dinp, dout, inp, lo, hi, n))
/* A draw of the diagonal Gaussian posterior (the reparameterisation): z = mean + exp(logvar / 2)
 * * noise, all (n). Backward: dmean += dz; dlogvar += dz * noise * exp(logvar / 2) / 2. */
OP(gauss_sample_fwd, (float *z, const float *mean, const float *logvar, const float *noise,
   int64_t n),
   (z, mean, logvar, noise, n))
OP(gauss_sample_bwd, (float *dmean, float *dlogvar, const float *dz, const float *logvar,
   const float *noise, int64_t n),
   (dmean, dlogvar, dz, logvar, noise, n))
/* KL divergence of N(mean, exp(logvar)) from N(0, 1), one float: *loss = (1/n) sum over n of
 * (mean^2 + exp(logvar) - 1 - logvar) / 2 (the per-element mean; LDM sums over a sample's
 * latent, which is n_per_sample times this). Backward: dmean += dloss mean / n,
 * dlogvar += dloss (exp(logvar) - 1) / (2 n). */
OP(kl_gauss_fwd, (float *loss, const float *mean, const float *logvar, int64_t n),
   (loss, mean, logvar, n))
OP(kl_gauss_bwd, (float *dmean, float *dlogvar, float dloss, const float *mean,
   const float *logvar, int64_t n),
   (dmean, dlogvar, dloss, mean, logvar, n))
/* L1: *loss = mean over n of |pred - target|; backward dpred += dloss sign(pred - target) / n
 * (0 where they are equal), dtarget -= the same (either may be NULL). */
OP(l1_fwd, (float *loss, const float *pred, const float *target, int64_t n),
   (loss, pred, target, n))
OP(l1_bwd, (float *dpred, float *dtarget, float dloss, const float *pred, const float *target,
   int64_t n),
   (dpred, dtarget, dloss, pred, target, n))

/* ---- motion guidance: MotionClone's rank-1 temporal-attention loss --------------------------
 * Attention maps seen as R rows of N keys (probabilities (G, heads, Nq, Nk) are R = G·heads·Nq
 * rows of N = Nk). attn_top1: idx (R) = the first argmax of each row of p (R, N), val (R) its
 * probability — the reference's one-hot mask and its values. masked_mse_fwd: *loss (one float)
 * = mean over the R rows of (p[r, idx[r]] - val[r])^2, the per-layer loss of the energy;
 * masked_mse_bwd: dp[r, idx[r]] += dloss · 2 (p[r, idx[r]] - val[r]) / R (every other entry of
 * dp untouched). idx is device memory on a device backend, like p. */
OP(attn_top1, (int32_t *idx, float *val, const float *p, int64_t R, int N),
   (idx, val, p, R, N))
OP(masked_mse_fwd, (float *loss, const float *p, const int32_t *idx, const float *val, int64_t R,
   int N),
   (loss, p, idx, val, R, N))
OP(masked_mse_bwd, (float *dp, float dloss, const float *p, const int32_t *idx, const float *val,
   int64_t R, int N),
   (dp, dloss, p, idx, val, R, N))

/* ---- optimisation kernels ---------------------------------------------------------------------
 * AdamW (PyTorch semantics): param *= 1 - lr*weight_decay; m = b1 m + (1-b1) g;
 * v = b2 v + (1-b2) g^2; param -= lr * (m / (1-b1^step)) / (sqrt(v / (1-b2^step)) + eps).
 * step counts from 1. param, grad, m, v (n). */
OP(adamw_step, (float *param, const float *grad, float *m, float *v, int64_t n, float lr,
   float beta1, float beta2, float eps, float weight_decay, int64_t step),
   (param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, step))
/* *out = sum of x^2 over n (double accumulation; fixed chunking, so the same bits for any
 * thread count). The global gradient norm is sqrt of this over the one gradient block; clip
 * with op_scale_fwd(g, g, min(1, max_norm / (norm + 1e-6)), n). */
OP(sumsq, (float *out, const float *x, int64_t n),
   (out, x, n))
/* ema = decay * ema + (1 - decay) * param, over n. */
OP(ema_update, (float *ema, const float *param, float decay, int64_t n),
   (ema, param, decay, n))

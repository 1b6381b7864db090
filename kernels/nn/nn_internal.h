/* kernels/nn/nn_internal.h — the numeric primitives behind the tape operations (private to
 * kernels/nn/). Forward functions overwrite their outputs; backward functions accumulate into
 * every non-NULL gradient. Shapes as in kernels/nn.h. */
#ifndef TURBO_NN_INTERNAL_H
#define TURBO_NN_INTERNAL_H

#include <stdint.h>

#include "kernels/nn.h"

/* A reusable scratch buffer of at least n floats owned by the context (contents undefined). */
float *nn_scratch(nn_ctx *c, size_t nfloats);
/* Zeroed bytes on level 0 of the context, valid until nn_ctx_reset (per-call block records). */
void *nn_ctx_alloc(nn_ctx *c, size_t bytes);

void prim_linear_fwd(const float *x, const float *W, const float *b, float *y, int64_t M,
                     int64_t K, int64_t N);
void prim_linear_bwd(const float *x, const float *W, const float *dy, float *dx, float *dW,
                     float *db, int64_t M, int64_t K, int64_t N);
void prim_conv2d_fwd(nn_ctx *c, const float *x, const float *W, const float *b, float *y,
                     int64_t Nb, int64_t Ci, int64_t H, int64_t Wd, int64_t Co, int k, int s,
                     int pad);
void prim_conv2d_bwd(nn_ctx *c, const float *x, const float *W, const float *dy, float *dx,
                     float *dW, float *db, int64_t Nb, int64_t Ci, int64_t H, int64_t Wd,
                     int64_t Co, int k, int s, int pad);
void prim_tconv3_fwd(nn_ctx *c, const float *x, const float *W, const float *b, float *y,
                     int64_t B, int64_t T, int64_t Ci, int64_t Co, int64_t S);
void prim_tconv3_bwd(nn_ctx *c, const float *x, const float *W, const float *dy, float *dx,
                     float *dW, float *db, int64_t B, int64_t T, int64_t Ci, int64_t Co,
                     int64_t S);
/* stats: (B·G·2) mean then rstd per (b, g) */
void prim_gnorm_fwd(const float *x, const float *g, const float *b, float *y, float *stats,
                    int64_t B, int64_t T, int64_t C, int64_t S, int G, float eps, int silu);
void prim_gnorm_bwd(const float *x, const float *g, const float *b, const float *dy,
                    const float *stats, float *dx, float *dg, float *db, int64_t B, int64_t T,
                    int64_t C, int64_t S, int G, int silu);
void prim_lnorm_fwd(const float *x, const float *g, const float *b, float *y, float *stats,
                    int64_t M, int64_t C, float eps);
void prim_lnorm_bwd(const float *x, const float *g, const float *dy, const float *stats,
                    float *dx, float *dg, float *db, int64_t M, int64_t C);
/* P: (G, heads, Nq, Nk) probabilities, saved for the backward */
void prim_attn_fwd(const float *q, const float *k, const float *v, float *o, float *P, int64_t G,
                   int64_t Nq, int64_t Nk, int64_t C, int heads);
/* extra: optional additional dL/dP (same shape as P) */
void prim_attn_bwd(nn_ctx *c, const float *q, const float *k, const float *v, const float *P,
                   const float *dO, const float *extra, float *dq, float *dk, float *dv,
                   int64_t G, int64_t Nq, int64_t Nk, int64_t C, int heads);

#endif

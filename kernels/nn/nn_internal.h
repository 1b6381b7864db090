/* kernels/nn/nn_internal.h — what the UNet (and other models in kernels/nn/) need from the
 * recording context beyond kernels/nn.h. Every numerical operation goes through kernels/ops.h;
 * nothing here computes. */
#ifndef TURBO_NN_INTERNAL_H
#define TURBO_NN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/nn.h"

/* A reusable scratch buffer of at least nfloats floats on the current device, owned by the
 * context (contents undefined). One buffer: a caller carves it up and must not call nn_scratch
 * again while it uses the pointer. */
float *nn_scratch(nn_ctx *c, size_t nfloats);
/* Zeroed HOST bytes, valid until nn_ctx_reset (per-call block records, host-side flags). */
void *nn_ctx_alloc(nn_ctx *c, size_t bytes);

#endif

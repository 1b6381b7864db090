/* kernels/nn/optim.c — AdamW with decoupled weight decay and bias correction, global
 * gradient-norm clipping, EMA of parameters, warm-up + constant/cosine learning rates.
 * Everything works on flat device arrays through kernels/ops.h, so one call covers an nn_params
 * block on whichever backend is current. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/device.h"
#include "kernels/nn.h"
#include "kernels/ops.h"

void nn_adamw_init(nn_adamw *o, int64_t n, float beta1, float beta2, float eps, float wd) {
  memset(o, 0, sizeof *o);
  o->beta1 = beta1;
  o->beta2 = beta2;
  o->eps = eps;
  o->weight_decay = wd;
  o->n = n;
  size_t bytes = (size_t)(n ? n : 1) * sizeof(float);
  o->m = device_malloc(bytes);
  o->v = device_malloc(bytes);
  device_memset(o->m, 0, bytes);
  device_memset(o->v, 0, bytes);
}

void nn_adamw_step(nn_adamw *o, float *param, const float *grad, float lr) {
  o->step++;
  op_adamw_step(param, grad, o->m, o->v, o->n, lr, o->beta1, o->beta2, o->eps, o->weight_decay,
                o->step);
}

void nn_adamw_free(nn_adamw *o) {
  device_free(o->m);
  device_free(o->v);
  memset(o, 0, sizeof *o);
}

float nn_grad_clip(float *grad, int64_t n, float max_norm) {
  float *dsum = device_malloc(sizeof(float)), sum;
  op_sumsq(dsum, grad, n);
  device_memcpy_d2h(&sum, dsum, sizeof sum);
  device_free(dsum);
  float norm = (float)sqrt((double)sum);
  if (max_norm > 0 && norm > max_norm) op_scale_fwd(grad, grad, max_norm / norm, n);
  return norm;
}

void nn_ema_update(float *ema, const float *param, int64_t n, float decay) {
  op_ema_update(ema, param, decay, n);
}

float nn_lr_at(nn_lr_kind kind, int64_t step, float base, int64_t warmup, int64_t total,
               float min_lr) {
  if (warmup > 0 && step < warmup) return base * (float)(step + 1) / (float)warmup;
  if (kind == NN_LR_CONSTANT) return base;
  int64_t span = total - warmup;
  if (span <= 0) return base;
  double prog = (double)(step - warmup) / (double)span;
  if (prog > 1) prog = 1;
  return min_lr + (base - min_lr) * (float)(0.5 * (1.0 + cos(3.14159265358979323846 * prog)));
}

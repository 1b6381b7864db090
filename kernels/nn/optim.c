/* kernels/nn/optim.c — AdamW with decoupled weight decay and bias correction, global
 * gradient-norm clipping, EMA of parameters, warm-up + constant/cosine learning rates.
 * Everything works on flat arrays, so one call covers an nn_params block. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/tensor.h"
#include "kernels/nn.h"

void nn_adamw_init(nn_adamw *o, int64_t n, float beta1, float beta2, float eps, float wd) {
  memset(o, 0, sizeof *o);
  o->beta1 = beta1;
  o->beta2 = beta2;
  o->eps = eps;
  o->weight_decay = wd;
  o->n = n;
  o->m = aligned_alloc_zero((size_t)(n ? n : 1) * sizeof(float));
  o->v = aligned_alloc_zero((size_t)(n ? n : 1) * sizeof(float));
  TB_CHECKF(o->m && o->v, "out of memory for AdamW moments of %lld floats", (long long)n);
}

void nn_adamw_step(nn_adamw *o, float *param, const float *grad, float lr) {
  o->step++;
  double bc1 = 1.0 - pow(o->beta1, (double)o->step), bc2 = 1.0 - pow(o->beta2, (double)o->step);
  float b1 = o->beta1, b2 = o->beta2, eps = o->eps, decay = lr * o->weight_decay;
  float step_size = (float)(lr / bc1), rbc2 = (float)(1.0 / sqrt(bc2));
  float *m = o->m, *v = o->v;
  int64_t n = o->n;
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    float g = grad[i];
    m[i] = b1 * m[i] + (1.0f - b1) * g;
    v[i] = b2 * v[i] + (1.0f - b2) * g * g;
    param[i] -= decay * param[i];
    param[i] -= step_size * m[i] / (sqrtf(v[i]) * rbc2 + eps);
  }
}

void nn_adamw_free(nn_adamw *o) {
  aligned_free(o->m);
  aligned_free(o->v);
  memset(o, 0, sizeof *o);
}

float nn_grad_clip(float *grad, int64_t n, float max_norm) {
  double s = 0;
#pragma omp parallel for reduction(+ : s) if (n > 65536)
  for (int64_t i = 0; i < n; i++) s += (double)grad[i] * grad[i];
  float norm = (float)sqrt(s);
  if (max_norm > 0 && norm > max_norm) {
    float k = max_norm / norm;
    for (int64_t i = 0; i < n; i++) grad[i] *= k;
  }
  return norm;
}

void nn_ema_update(float *ema, const float *param, int64_t n, float decay) {
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; i++) ema[i] = decay * ema[i] + (1.0f - decay) * param[i];
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

void nn_sinusoidal(const float *x, int64_t B, int dim, float *out) {
  int half = dim / 2;
  for (int64_t b = 0; b < B; b++) {
    for (int i = 0; i < half; i++) {
      double f = exp(-log(10000.0) * i / half);
      out[b * dim + i] = (float)cos(x[b] * f);
      out[b * dim + half + i] = (float)sin(x[b] * f);
    }
    if (dim % 2) out[b * dim + dim - 1] = 0.0f;
  }
}

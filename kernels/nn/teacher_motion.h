/* kernels/nn/teacher_motion.h — the motion-guidance term as the teacher's guidance hook
 * (teacher_guidance of kernels/nn/teacher.h): teacher_predict / teacher_step / teacher_sample
 * compute the CFG estimate and x0, and this term then subtracts m · factor · dE/dz_t from eps
 * on the noisy tau of the solver grid (motion_guide_eps_t, kernels/motion.h), so the DDIM step
 * moves only its direction term. The term runs its passes on its own context (with gradients),
 * one sample at a time, so the peak memory of a guided step is that of one B = 1 pass with
 * gradient plus the kept maps. */
#ifndef TURBO_NN_TEACHER_MOTION_H
#define TURBO_NN_TEACHER_MOTION_H

#include "kernels/motion.h"
#include "kernels/nn/teacher.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  motion_guide g;            /* reference (B samples), m, scale, factor, tau */
  const diff_schedule *s;
  nn_ctx *c;                 /* the term's own context (not the teacher's) */
  float E[64];               /* out: the energies of the last call (first 64 samples) */
  int calls;                 /* out: calls with a nonzero energy in the batch */
} teacher_motion;

/* Fills out with the hook of tm (which must outlive every step that uses it). */
void teacher_motion_hook(teacher_motion *tm, teacher_guidance *out);

#ifdef __cplusplus
}
#endif
#endif

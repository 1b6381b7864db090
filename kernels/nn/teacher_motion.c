/* kernels/nn/teacher_motion.c — the motion term behind the teacher's guidance hook. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/nn/teacher_motion.h"

static int hook(void *user, unet *u, const teacher_batch *b, const float *eps_c,
                const float *eps_u, float *eps) {
  (void)eps_c, (void)eps_u;
  teacher_motion *tm = user;
  float *E = xcalloc((size_t)b->B, sizeof(float));
  int rc = motion_guide_eps_t(u, tm->c, tm->s, &tm->g, b->B, b->T, b->H, b->W, b->L, b->z, b->t,
                              b->ctx, eps, NULL, E);
  int any = 0;
  for (int i = 0; i < b->B; i++) {
    if (i < 64) tm->E[i] = E[i];
    any |= E[i] != 0.0f;
  }
  tm->calls += any;
  free(E);
  return rc;
}

void teacher_motion_hook(teacher_motion *tm, teacher_guidance *out) {
  out->fn = hook;
  out->user = tm;
}

/* stages/pretrain/clip.c — bin/pretrain --model clip: the image-text reward model (CLIP-like).
 *
 * A step: B clips of the train split, one random frame each and its short caption (no two
 * equal captions in a batch), each clip mirrored half the time (its caption mirrored too) and
 * shifted by up to 6 pixels, so that attributes rather than clips are learnt, plus one hard negative per caption that differs only in a colour,
 * a shape or the relation of two objects (common/caption.h). Symmetric InfoNCE at a fixed logit
 * scale: each frame against every caption of the step (negatives included), each caption
 * against every frame.
 *
 * Evaluation on val (middle frame of each clip): text→frame retrieval R@1/R@5 (and R@1 counting
 * any clip with the same caption), colour and shape accuracy from the scores of caption variants
 * (one-object clips), relation accuracy (two objects), and motion-direction accuracy from a
 * single frame, which a single frame cannot show (near chance: the video model's contrast).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/caption.h"
#include "common/log.h"
#include "kernels/nn/reward.h"
#include "stages/pretrain/pretrain.h"
#include "stages/pretrain/reward_train.h"

#define CLIP_LOGIT_SCALE 14.3f /* 1 / 0.07, CLIP's initial temperature */
#define CAP_MAX 512

static int clip_step(const reward_step *s, nn_var *loss) {
  reward_model *m = s->m;
  nn_ctx *c = s->c;
  const reward_clips *d = s->train;
  int B = s->B, E = m->cfg.embed;
  int64_t per = 3 * (int64_t)m->cfg.size * m->cfg.size;
  float *x = xmalloc(sizeof(float) * (size_t)(B * per));
  const char **pos = xmalloc(sizeof(char *) * (size_t)B), **neg = xmalloc(sizeof(char *) * (size_t)B);
  char (*nb)[CAP_MAX] = xmalloc(sizeof *nb * (size_t)B), (*pb)[CAP_MAX] = xmalloc(sizeof *pb * (size_t)B);
  int nn = 0;
  /* B clips with distinct captions, each mirrored or shifted at random (the caption follows) */
  for (int b = 0; b < B; b++) {
    int64_t i = 0;
    reward_aug a;
    for (int tries = 0; tries < 20; tries++) {
      i = rt_int(s->rng, (int)d->n);
      a = reward_aug_draw(s->rng, 6);
      reward_aug_caption(&a, d->cap_short[i], pb[b], CAP_MAX);
      int dup = 0;
      for (int j = 0; j < b && !dup; j++) dup = strcmp(pb[b], pb[j]) == 0;
      if (!dup) break;
    }
    reward_clips_frame_aug(d, i, rt_int(s->rng, d->T), &a, x + b * per);
    pos[b] = pb[b];
  }
  unsigned kinds = 1u << CAPTION_EDIT_COLOUR | 1u << CAPTION_EDIT_SHAPE | 1u << CAPTION_EDIT_RELATION;
  for (int b = 0; b < B; b++) {
    if (!rt_negative(s->rng, pos[b], kinds, nb[nn], CAP_MAX)) continue;
    int clash = 0; /* a negative that is another clip's caption is no negative */
    for (int j = 0; j < B && !clash; j++) clash = strcmp(nb[nn], pos[j]) == 0;
    if (!clash) neg[nn] = nb[nn], nn++;
  }
  text_batch tp, tn;
  memset(&tn, 0, sizeof tn);
  int rc = text_batch_make(&m->text, pos, B, 0, &tp);
  if (rc == TB_OK && nn) rc = text_batch_make(&m->text, neg, nn, 0, &tn);
  if (rc == TB_OK) {
    nn_var img = reward_frame_forward(m, c, nn_input(c, x, B * per, 0), B, 0);
    nn_var ep = reward_text_forward(m, c, &tp, 0), all = ep;
    if (nn) all = nn_concat_chan(c, ep, reward_text_forward(m, c, &tn, 0), 1, (int64_t)B * E, (int64_t)nn * E, 1);
    int32_t *target = xmalloc(sizeof(int32_t) * (size_t)B);
    for (int b = 0; b < B; b++) target[b] = b;
    nn_var l1 = nn_xent(c, nn_linear(c, img, all, -1, B, E, B + nn), target, B, B + nn, CLIP_LOGIT_SCALE);
    nn_var l2 = nn_xent(c, nn_linear(c, ep, img, -1, B, E, B), target, B, B, CLIP_LOGIT_SCALE);
    *loss = nn_add(c, l1, l2);
    free(target);
  }
  text_batch_free(&tp);
  text_batch_free(&tn);
  free(x);
  free(pos);
  free(neg);
  free(nb);
  free(pb);
  return rc;
}

static void middle_frame(const reward_clips *d, int64_t i, int F, float *out) {
  (void)F;
  reward_clips_frame(d, i, d->T / 2, out);
}

static int clip_evaluate(reward_model *m, nn_ctx *c, const reward_clips *val, uint64_t seed,
                         reward_metrics *out) {
  (void)seed;
  int64_t N = val->n, per = 3 * (int64_t)m->cfg.size * m->cfg.size;
  int E = m->cfg.embed;
  float *x = xmalloc(sizeof(float) * (size_t)(N * per)), *img = xmalloc(sizeof(float) * (size_t)(N * E)),
        *txt = xmalloc(sizeof(float) * (size_t)(N * E));
  int *same = xmalloc(sizeof(int) * (size_t)N);
  for (int64_t i = 0; i < N; i++) {
    middle_frame(val, i, 1, x + i * per);
    same[i] = (int)i;
    for (int64_t j = 0; j < i; j++)
      if (strcmp(val->cap_short[j], val->cap_short[i]) == 0) {
        same[i] = same[j];
        break;
      }
  }
  int rc = reward_embed_frames(m, c, x, N, img);
  if (rc == TB_OK) rc = reward_embed_texts(m, c, (const char *const *)val->cap_short, N, txt);
  if (rc == TB_OK) reward_retrieval(img, txt, same, N, E, "retrieval", out);
  if (rc == TB_OK)
    rc = reward_variant_accuracy(m, c, val, middle_frame, 1, CAPTION_EDIT_COLOUR, 0, 1, "colour_acc", out);
  if (rc == TB_OK)
    rc = reward_variant_accuracy(m, c, val, middle_frame, 1, CAPTION_EDIT_SHAPE, 0, 1, "shape_acc", out);
  if (rc == TB_OK)
    rc = reward_variant_accuracy(m, c, val, middle_frame, 1, CAPTION_EDIT_RELATION, 0, 0, "relation_acc", out);
  if (rc == TB_OK)
    rc = reward_variant_accuracy(m, c, val, middle_frame, 1, CAPTION_EDIT_DIRECTION, 0, 1,
                                 "direction_acc_single_frame", out);
  free(x);
  free(img);
  free(txt);
  free(same);
  return rc;
}

static const reward_recipe k_clip = {
    .kind = REWARD_CLIP,
    .family = "reward-image-text",
    .steps = 400,
    .batch = 48,
    .lr = 1e-3f,
    .step = clip_step,
    .evaluate = clip_evaluate,
};

int pretrain_clip(int argc, char **argv) { return reward_train_main(&k_clip, argc, argv); }

/* stages/pretrain/main.c — bin/pretrain: trains one model of the built-in world.
 *
 *   bin/pretrain --model NAME [the model's options]    train (or resume) NAME
 *   bin/pretrain --model NAME --help                   the model's options
 *   bin/pretrain --help                                the models
 *
 * Exit codes: 0 done, 1 failed, 2 bad usage (an unknown model, a bad option).
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "stages/pretrain/pretrain.h"

/* The models, in the order the default pipeline trains them. */
static const pretrain_model k_models[] = {
    {"vae", "frame VAE: LDM AutoencoderKL, 64x64x3 -> 16x16x4 latents, L1 + L2 + small KL", pretrain_vae},
    {"clip", "image-text reward: frame and text encoders, contrastive (CLIPScore-like)", pretrain_clip},
    {"quality", "image-quality reward: prefers clean frames over degraded ones (HPS-like)", pretrain_quality},
    {"video", "video-text reward: 4 strided frames and text, contrastive with motion negatives", pretrain_video},
    {NULL, NULL, NULL},
};

static void usage(FILE *f) {
  fprintf(f, "usage: pretrain --model NAME [options]   (pretrain --model NAME --help for its options)\n\n"
             "Trains one model of the built-in world from a curated dataset in the workspace.\n\n"
             "models:\n");
  int n = 0;
  for (const pretrain_model *m = k_models; m->name; m++, n++)
    fprintf(f, "  %-10s %s\n", m->name, m->summary);
  if (n == 0) fprintf(f, "  (none built in)\n");
}

int main(int argc, char **argv) {
  log_init("pretrain");
  const char *name = NULL;
  int at = -1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
      name = argv[i + 1], at = i;
      break;
    }
    if (strncmp(argv[i], "--model=", 8) == 0) {
      name = argv[i] + 8, at = i;
      break;
    }
  }
  if (!name) {
    int help = argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    usage(help ? stdout : stderr);
    if (!help) fprintf(stderr, "\npretrain: --model NAME is required\n");
    return help ? 0 : 2;
  }
  for (const pretrain_model *m = k_models; m->name; m++) {
    if (strcmp(m->name, name) != 0) continue;
    /* argv without "--model NAME" / "--model=NAME"; argv[0] names the model */
    int drop = strncmp(argv[at], "--model=", 8) == 0 ? 1 : 2;
    char prog[64];
    snprintf(prog, sizeof prog, "pretrain %s", m->name);
    argv[0] = prog;
    for (int i = at; i + drop <= argc; i++) argv[i] = i + drop < argc ? argv[i + drop] : NULL;
    return m->run(argc - drop, argv);
  }
  usage(stderr);
  fprintf(stderr, "\npretrain: unknown model \"%s\"\n", name);
  return 2;
}

/* stages/pretrain/pretrain.h — bin/pretrain trains every model the built-in world has to make
 * for itself (a real deployment gets them from elsewhere): the VAE, the reward models and the
 * teacher. One file per model; each defines its entry point and is listed in main.c's table.
 *
 * An entry receives argv with `--model NAME` removed (argv[0] is "pretrain NAME") and returns
 * the process exit code: 0 done, 1 failed (the message logged), 2 bad usage. Every trainer
 * takes --workspace DIR, records its run, model and checkpoints in the catalogue, writes its
 * training state (kernels/nn.h nn_train_save) so that a killed run resumes where it stopped when
 * rerun, and shows progress with the loss and an ETA. */
#ifndef TURBO_PRETRAIN_H
#define TURBO_PRETRAIN_H

typedef struct {
  const char *name;    /* --model NAME */
  const char *summary; /* one line for --help */
  int (*run)(int argc, char **argv);
} pretrain_model;

/* The reward models (clip.c, quality.c, video.c; their shared driver is reward_train.c). */
int pretrain_clip(int argc, char **argv);
int pretrain_quality(int argc, char **argv);
int pretrain_video(int argc, char **argv);
/* The frame VAE (vae.c). */
int pretrain_vae(int argc, char **argv);

#endif

/* bench_eval: videos per second of the world's pixel reader plus the seven quality dimensions on
 * 16-frame 64x64 clips (the stage target: 1,000 videos in under a minute on 2 cores), with 1 and
 * 2 worker threads. BENCH_EVAL_VIDEOS sets the count (default 400). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/scene.h"
#include "kernels/eval/eval.h"

#define W 64
#define H 64
#define F 16

static uint8_t *g_videos;
static world_spec *g_specs;
static int g_n;

typedef struct { int t, nt; } job;

static void *work(void *arg) {
  job *j = arg;
  eval_ctx *c = eval_ctx_new();
  for (int i = j->t; i < g_n; i += j->nt) {
    const uint8_t *v = g_videos + (size_t)i * F * H * W * 3;
    eval_quality q;
    eval_quality_video(c, v, F, H, W, 8, &q);
    world_read r;
    world_read_video_u8(v, F, H, W, 8, NULL, &r);
    eval_semantic s;
    eval_semantic_video(&r, &g_specs[i], &s);
    world_read_free(&r);
  }
  eval_ctx_free(c);
  return NULL;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(void) {
  g_n = getenv("BENCH_EVAL_VIDEOS") ? atoi(getenv("BENCH_EVAL_VIDEOS")) : 400;
  g_videos = xmalloc((size_t)g_n * F * H * W * 3);
  g_specs = xcalloc((size_t)g_n, sizeof *g_specs);
  for (int i = 0; i < g_n; i++) {
    scene_rng r;
    scene_rng_seed(&r, 5, (uint64_t)i, SCENE_STREAM_SCENE);
    scene s;
    scene_sample(&r, W, H, 8, NULL, &s);
    for (int f = 0; f < F; f++) scene_render(&s, f / 8.0, g_videos + ((size_t)i * F + f) * H * W * 3);
    world_spec_from_scene(&s, &g_specs[i]);
  }
  /* wall time and process CPU time: on a shared machine the CPU time says what the code costs */
  printf("%-10s %8s %10s %12s %10s %16s\n", "threads", "videos", "seconds", "videos/s", "cpu s", "videos/cpu-s");
  for (int nt = 1; nt <= 2; nt++) {
    pthread_t th[2];
    job jb[2];
    double t0 = now();
    clock_t c0 = clock();
    for (int t = 0; t < nt; t++) { jb[t] = (job){t, nt}; pthread_create(&th[t], NULL, work, &jb[t]); }
    for (int t = 0; t < nt; t++) pthread_join(th[t], NULL);
    double el = now() - t0, cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
    printf("%-10d %8d %10.2f %12.1f %10.2f %16.1f\n", nt, g_n, el, g_n / el, cpu, g_n / cpu);
  }
  free(g_videos);
  free(g_specs);
  return 0;
}

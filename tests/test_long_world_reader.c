/* test_long_world_reader: the pixel reader on 2,000 clips of the world across the corpus'
 * formats (widths 48–160, aspect 1:1, 4:3, 16:9, fps 8/12/24/30, 1–4 s), clean and degraded
 * (blur, noise, colour shift by 30 levels, cut by the frame edge): the accuracy table per
 * attribute (right / wrong / unread, and the unread that the pixels cannot decide). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "tests/testutil.h"
#include "tests/world_acc.h"

int main(void) {
  test_begin("test_long_world_reader");
  int clips = getenv("WORLD_CLIPS") ? atoi(getenv("WORLD_CLIPS")) : 2000;
  static const int FPS[4] = {8, 12, 24, 30};
  static const int ASP[3][2] = {{1, 1}, {4, 3}, {16, 9}};
  world_acc acc[WD_COUNT];
  memset(acc, 0, sizeof acc);
  for (int c = 0; c < clips; c++) {
    scene_rng fr;
    scene_rng_seed(&fr, 4242, (uint64_t)c, SCENE_STREAM_SOURCE);
    int W = 48 + 2 * scene_rng_int(&fr, 57); /* 48..160, even */
    const int *a = ASP[scene_rng_int(&fr, 3)];
    int H = (W * a[1] / a[0]) & ~1;
    int fps = FPS[scene_rng_int(&fr, 4)];
    int F = fps * (1 + scene_rng_int(&fr, 4));
    scene_rng r;
    scene_rng_seed(&r, 4242, (uint64_t)c, SCENE_STREAM_SCENE);
    scene s;
    if (scene_sample(&r, W, H, fps, scene_exclusions_default(), &s) != TB_OK) { CHECK(0); break; }
    uint8_t *clean = xmalloc((size_t)F * W * H * 3), *v = xmalloc((size_t)F * W * H * 3);
    wa_render(&s, F, clean);
    for (int d = 0; d < WD_COUNT; d++) {
      memcpy(v, clean, (size_t)F * W * H * 3);
      wd_apply((world_degradation)d, v, F, H, W, (uint64_t)c);
      world_read rd;
      CHECK(world_read_video_u8(v, F, H, W, fps, NULL, &rd) == TB_OK);
      wa_compare(&acc[d], &s, &rd, d == WD_CUT, 0);
      world_read_free(&rd);
    }
    free(clean);
    free(v);
  }
  printf("%d clips\n", clips);
  wa_print_header();
  for (int d = 0; d < WD_COUNT; d++) wa_print(WD_NAMES[d], &acc[d]);
  printf("\n%-18s %-10s %6s %6s %6s %6s %10s\n", "degradation", "attribute", "n", "right", "wrong", "unread", "ambiguous");
  for (int d = 0; d < WD_COUNT; d++)
    for (int k = 0; k < WA_N; k++)
      if (acc[d].n[k])
        printf("%-18s %-10s %6d %6d %6d %6d %10d\n", WD_NAMES[d], WA_NAMES[k], acc[d].n[k], acc[d].right[k],
               acc[d].wrong[k], acc[d].unread[k], acc[d].ambiguous_ok[k]);
  /* the same bars as the default test, on the larger corpus */
  for (int k = 0; k < WA_N; k++) {
    if (k == WA_MOTION || k == WA_SPEED || k == WA_PAN) continue;
    CHECKF(wa_rate(&acc[WD_CLEAN], k) >= 0.97, "clean %s %.3f", WA_NAMES[k], wa_rate(&acc[WD_CLEAN], k));
  }
  for (int d = 0; d < WD_COUNT; d++)
    for (int k = 0; k < WA_N; k++)
      CHECKF(wa_wrong_rate(&acc[d], k) <= (d == WD_CLEAN ? 0.02 : 0.15), "%s %s wrong %.3f", WD_NAMES[d], WA_NAMES[k], wa_wrong_rate(&acc[d], k));
  return test_finish();
}

/* stages/curate/learned.c — learned statistics for recipe filters: `learned text_video_score
 * >= X` scores clips with the video-text reward model.
 *
 * When a recipe names text_video_score and the catalogue has a checkpoint of model
 * "reward-video" (bin/pretrain --model video), every usable clip of the recipe's geometry that
 * has no score from that checkpoint is decoded again (as the dataset shards are) and scored:
 * text_video_score = the mean cosine between the clip's video (4 strided frames, offsets 0 and
 * 2) and its captions (short and long), i.e. the reward the student would get for this clip and
 * caption. text_video_ckpt records the checkpoint id, so a retrained model rescores. Worker
 * processes share the clips; each loads the model in-process. Without a video model nothing is
 * scored and the dataset build skips the filter with a warning, as before.
 */
#include "stages/curate/curate.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "common/tensor.h"
#include "common/video_dec.h"
#include "kernels/nn.h"
#include "kernels/nn/reward.h"
#include "kernels/ops.h"
#include "stages/curate/recipe.h"

#define LEARNED_STAT "text_video_score"
#define LEARNED_CKPT_STAT "text_video_ckpt"
#define LEARNED_MODEL "reward-video"
#define LEARNED_COMMIT 32 /* clips per catalogue transaction */

/* Value of clip `id` in a sorted column, or NAN. */
static double col_get(const int64_t *ids, const double *vals, int64_t n, int64_t id) {
  int64_t lo = 0, hi = n - 1;
  while (lo <= hi) {
    int64_t mid = (lo + hi) / 2;
    if (ids[mid] == id) return vals[mid];
    if (ids[mid] < id) lo = mid + 1;
    else hi = mid - 1;
  }
  return NAN;
}

/* Scores clips ids[k], ids[k+n], …; exits the process. */
static void score_worker(const curate_cfg *cfg, const recipe *r, const char *ckpt, int64_t ckpt_id,
                         const int64_t *ids, int64_t nids, int k, int n) {
  log_init("curate");
  ops_set_num_threads(1);
  catalogue *cat = catalogue_open_workspace(cfg->workspace, 0);
  reward_model m;
  if (!cat || reward_model_load(&m, ckpt, 1) != TB_OK) {
    log_error("%s", err_get());
    _exit(3);
  }
  nn_ctx *c = nn_ctx_new();
  int F = m.cfg.frames, S = m.cfg.size, failures = 0, pending = 0;
  int64_t per = (int64_t)F * 3 * S * S;
  float *x = xmalloc(sizeof(float) * (size_t)(2 * per)), sim[4];
  catalogue_begin(cat);
  for (int64_t i = k; i < nids; i += n) {
    char *src = curate_clip_source_path(cat, ids[i]), full[4096];
    video_frames fr;
    memset(&fr, 0, sizeof fr);
    video_dec_opts o = video_dec_opts_default();
    o.fps = r->fps, o.width = r->width, o.height = r->height, o.max_frames = r->frames;
    catalogue_clip cl;
    memset(&cl, 0, sizeof cl);
    int ok = src && fs_path_inside(cfg->root, src, full, sizeof full) == TB_OK &&
             video_decode_rgb(full, &o, &fr) == TB_OK && fr.n == r->frames && fr.w == S &&
             fr.h == S && catalogue_clip_get(cat, ids[i], &cl) == 1;
    if (ok) {
      int stride = r->frames / F;
      for (int v = 0; v < 2; v++) /* offsets 0 and stride / 2 */
        for (int f = 0; f < F; f++) {
          const uint8_t *px = fr.rgb + (size_t)(v * (stride / 2) + f * stride) * S * S * 3;
          float *dst = x + v * per + (int64_t)f * 3 * S * S;
          for (int p = 0; p < S * S; p++)
            for (int ch = 0; ch < 3; ch++) dst[ch * S * S + p] = px[p * 3 + ch] * (1.0f / 255.0f);
        }
      const char *caps[2] = {cl.caption_short && cl.caption_short[0] ? cl.caption_short : cl.caption_long,
                             cl.caption_long ? cl.caption_long : cl.caption_short};
      ok = caps[0] && caps[1] && reward_similarity(&m, c, x, 2, F, caps, 2, sim) == TB_OK;
    }
    if (ok) {
      const char *names[2] = {LEARNED_STAT, LEARNED_CKPT_STAT};
      double vals[2] = {(sim[0] + sim[1] + sim[2] + sim[3]) / 4.0, (double)ckpt_id};
      if (catalogue_stats_set(cat, ids[i], 2, names, vals) != TB_OK) ok = 0;
      else if (++pending == LEARNED_COMMIT) {
        catalogue_commit(cat);
        catalogue_begin(cat);
        pending = 0;
      }
    }
    if (!ok) {
      log_warn("clip %lld (%s): not scored: %s", (long long)ids[i], src ? src : "?", err_get());
      failures++;
    }
    catalogue_clip_clear(&cl);
    video_frames_free(&fr);
    free(src);
  }
  if (catalogue_commit(cat) != TB_OK) failures++;
  free(x);
  nn_ctx_free(c);
  reward_model_free(&m);
  catalogue_close(cat);
  _exit(failures ? 4 : 0);
}

int curate_learned_scores(catalogue *cat, const curate_cfg *cfg, const recipe *r) {
  int need = 0;
  for (int j = 0; j < r->ncond; j++) need |= r->cond[j].learned && strcmp(r->cond[j].stat, LEARNED_STAT) == 0;
  if (!need) return TB_OK;
  catalogue_model mo;
  catalogue_checkpoint ck;
  int f = catalogue_model_lookup(cat, LEARNED_MODEL, &mo);
  if (f != 1) return f == TB_ERR ? TB_ERR : TB_OK; /* no video model yet: the filter is skipped */
  f = catalogue_checkpoint_latest(cat, mo.id, &ck);
  catalogue_model_clear(&mo);
  if (f != 1) return f == TB_ERR ? TB_ERR : TB_OK;
  char ckpt[4096];
  fs_join(ckpt, sizeof ckpt, cfg->workspace, ck.path);
  int64_t ckpt_id = ck.id;
  catalogue_checkpoint_clear(&ck);
  /* the usable clips of the recipe's geometry that this checkpoint has not scored */
  const char *names[6] = {"usable", "frames", "target_width", "target_height", "target_fps", LEARNED_CKPT_STAT};
  int64_t *ids[6] = {0}, n[6] = {0};
  double *vals[6] = {0};
  int rc = TB_OK;
  for (int i = 0; i < 6 && rc == TB_OK; i++) rc = catalogue_stat_all(cat, names[i], &ids[i], &vals[i], &n[i]);
  int64_t *todo = xmalloc(sizeof(int64_t) * (size_t)(n[0] ? n[0] : 1)), nt = 0, have = 0;
  for (int64_t i = 0; rc == TB_OK && i < n[0]; i++) {
    int64_t id = ids[0][i];
    if (vals[0][i] < 0.5 || col_get(ids[1], vals[1], n[1], id) != r->frames) continue;
    double w = col_get(ids[2], vals[2], n[2], id), h = col_get(ids[3], vals[3], n[3], id),
           fps = col_get(ids[4], vals[4], n[4], id);
    if ((!isnan(w) && w != r->width) || (!isnan(h) && h != r->height) ||
        (!isnan(fps) && fabs(fps - r->fps) > 1e-9))
      continue;
    if (col_get(ids[5], vals[5], n[5], id) == (double)ckpt_id) {
      have++;
      continue;
    }
    todo[nt++] = id;
  }
  for (int i = 0; i < 6; i++) free(ids[i]), free(vals[i]);
  if (rc != TB_OK || nt == 0) {
    if (rc == TB_OK && have) log_info("%s: %lld clips already scored by %s", LEARNED_STAT, (long long)have, ckpt);
    free(todo);
    return rc;
  }
  double t0 = time_now();
  log_info("%s: scoring %lld clips with the video model %s (%lld already scored)", LEARNED_STAT,
           (long long)nt, ckpt, (long long)have);
  int nw = cfg->workers < 1 ? 1 : cfg->workers > 64 ? 64 : cfg->workers;
  if (nw > nt) nw = (int)nt;
  pid_t pids[64];
  fflush(NULL);
  for (int j = 0; j < nw; j++) {
    pids[j] = fork();
    if (pids[j] == 0) score_worker(cfg, r, ckpt, ckpt_id, todo, nt, j, nw);
    if (pids[j] < 0) rc = err_set("fork: %s", strerror(errno));
  }
  int bad = 0;
  for (int j = 0; j < nw; j++) {
    int st;
    if (pids[j] > 0 && (waitpid(pids[j], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)) bad++;
  }
  free(todo);
  if (bad) log_warn("%s: %d scoring worker(s) reported clips they could not score (see above)", LEARNED_STAT, bad);
  log_info("%s: scored in %.1f s", LEARNED_STAT, time_now() - t0);
  return rc;
}

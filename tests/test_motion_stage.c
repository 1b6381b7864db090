/* bin/motion end to end on a tiny randomly initialised teacher: a workspace with a dataset's
 * motion subset, cached latents and captions; workers killed (kill -9) after their first clip
 * leave those clips finished, and the rerun makes only the missing ones; a new teacher
 * checkpoint makes every record stale, and the next run recomputes them all and drops the old
 * rows; each record holds an index on the noisy half and a score. */
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/catalogue.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "common/tensor.h"
#include "kernels/nn.h"
#include "kernels/nn/teacher.h"
#include "tests/testutil.h"

enum { T = 4, C = 4, H = 8, W = 8, L = 3, TD = 6, NCLIPS = 6 };

static const char *CFG_JSON =
    "{\"in_ch\":4,\"out_ch\":4,\"model_ch\":8,\"n_levels\":2,\"ch_mult\":[1,2],\"n_res\":1,"
    "\"attn_levels\":3,\"head_ch\":4,\"text_dim\":6,\"groups\":4,\"max_frames\":4}";

/* the same UNet in bin/pretrain's teacher format (teacher.config, teacher.null_ctx) */
static void save_teacher_model(const char *ws, const char *rel, uint64_t s) {
  unet_config c = unet_config_default();
  c.model_ch = 8, c.n_levels = 2, c.ch_mult[0] = 1, c.ch_mult[1] = 2, c.n_res = 1;
  c.attn_levels = 3, c.head_ch = 4, c.text_dim = TD, c.groups = 4, c.max_frames = T;
  teacher_model m = {.T = T, .H = H, .W = W, .L = L};
  CHECK(unet_create(&m.net, &c) == TB_OK);
  unet_init_weights(&m.net, s, 0);
  m.null_ctx = xmalloc(L * TD * 4);
  test_fill_uniform(m.null_ctx, L * TD, s + 1, -1, 1);
  char path[4096];
  fs_join(path, sizeof path, ws, rel);
  CHECKF(teacher_model_save(&m, path, 0, NULL) == TB_OK, "%s", err_get());
  unet_free(&m.net);
  free(m.null_ctx);
}

static void save_teacher(const char *ws, const char *rel, uint64_t s) {
  unet_config c = unet_config_default();
  c.model_ch = 8, c.n_levels = 2, c.ch_mult[0] = 1, c.ch_mult[1] = 2, c.n_res = 1;
  c.attn_levels = 3, c.head_ch = 4, c.text_dim = TD, c.groups = 4, c.max_frames = T;
  unet u;
  CHECK(unet_create(&u, &c) == TB_OK);
  unet_init_weights(&u, s, 0);
  char path[4096];
  fs_join(path, sizeof path, ws, rel);
  nn_train_pos pos = {0};
  const char *meta[2] = {"unet.config", CFG_JSON};
  CHECKF(nn_train_save(path, &u.params, NULL, NULL, &pos, 1, meta) == TB_OK, "%s", err_get());
  unet_free(&u);
}

static void put_tensor(catalogue *cat, const char *ws, const char *rel, const char *kind,
                       int64_t clip, int64_t model, const char *variant, int ndim,
                       const int64_t *shape, uint64_t s) {
  int64_t n = shape_numel(ndim, shape);
  float *x = xmalloc((size_t)n * 4);
  test_fill_uniform(x, n, s, -1, 1);
  tensor t = tensor_view(DTYPE_F32, ndim, shape, x);
  safetensors_writer *w = safetensors_writer_new();
  safetensors_writer_add(w, "x", &t);
  char path[4096];
  fs_join(path, sizeof path, ws, rel);
  CHECK(safetensors_writer_save(w, path) == TB_OK);
  safetensors_writer_free(w);
  safetensors_file *f;
  CHECK(safetensors_open(path, &f) == TB_OK);
  const safetensors_entry *e = safetensors_find(f, "x");
  catalogue_tensor ct = {.kind = kind, .clip_id = clip, .model_id = model, .variant = variant,
                         .path = rel, .offset = (int64_t)(safetensors_data_offset(f) + e->begin),
                         .nbytes = n * 4, .dtype = DTYPE_F32, .ndim = ndim};
  memcpy(ct.shape, shape, (size_t)ndim * sizeof *shape);
  CHECKF(catalogue_tensor_insert(cat, &ct, NULL) == TB_OK, "%s", err_get());
  safetensors_close(f);
  free(x);
}

static int run_motion(const char *ws, const char *crash, const char *log) {
  const char *bin = getenv("BIN");
  char exe[4096], cmd[8192];
  snprintf(exe, sizeof exe, "%s/motion", bin ? bin : "bin");
  snprintf(cmd, sizeof cmd, "%s%s %s --workspace %s --dataset mix --workers 2 > %s 2>&1",
           crash ? "TURBO_MOTION_CRASH_AFTER=" : "", crash ? crash : "", exe, ws, log);
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* count of guidance_score rows with this variant; ids and created times into the arrays */
static int rows_of(catalogue *cat, const char *variant, int64_t *ids, double *created) {
  sqlite3_stmt *st;
  sqlite3_prepare_v2(catalogue_db(cat),
                     "SELECT id, created, variant FROM tensors WHERE kind = 'guidance_score' "
                     "AND (?1 IS NULL OR variant = ?1) ORDER BY clip_id", -1, &st, NULL);
  if (variant) sqlite3_bind_text(st, 1, variant, -1, SQLITE_STATIC);
  int n = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    if (ids) ids[n] = sqlite3_column_int64(st, 0);
    if (created) created[n] = sqlite3_column_double(st, 1);
    n++;
  }
  sqlite3_finalize(st);
  return n;
}

static int count_kind_rows(catalogue *cat) {
  sqlite3_stmt *st;
  sqlite3_prepare_v2(catalogue_db(cat),
                     "SELECT count(*) FROM tensors WHERE kind IN ('motion_index', 'motion_z_t', "
                     "'teacher_eps_c', 'teacher_eps_u', 'guidance_score', 'motion_ref_idx', "
                     "'motion_ref_val')", -1, &st, NULL);
  sqlite3_step(st);
  int n = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return n;
}

int main(void) {
  test_begin("test_motion_stage");
  char ws[4096], p[4096], rm[8200];
  fs_join(ws, sizeof ws, test_outdir(), "ws");
  snprintf(rm, sizeof rm, "rm -rf '%s'", ws); /* a fresh workspace every run */
  CHECK(system(rm) == 0);
  fs_join(p, sizeof p, ws, "models");
  fs_mkdir_p(p);
  fs_join(p, sizeof p, ws, "latents");
  fs_mkdir_p(p);
  catalogue *cat = catalogue_open_workspace(ws, 0);
  CHECKF(cat != NULL, "%s", err_get());
  catalogue_source src = {.path = "a.mp4", .size = 1, .mtime = 1, .checksum = "00"};
  int64_t sid, did, vae, teacher, ck0, clips[NCLIPS];
  CHECK(catalogue_source_upsert(cat, &src, &sid, NULL) == TB_OK);
  CHECK(catalogue_dataset_create(cat, "mix", "test", 1, 0, &did) == TB_OK);
  CHECK(catalogue_model_upsert(cat, "vae-test", "vae", NULL, 0, &vae) == TB_OK);
  CHECK(catalogue_model_upsert(cat, "text-test", "text", NULL, 0, &teacher) == TB_OK);
  int64_t text_model = teacher;
  int64_t zs[4] = {T, C, H, W}, cs[2] = {L, TD};
  for (int i = 0; i < NCLIPS + 2; i++) {
    catalogue_clip cl = {.source_id = sid, .start = i, .end = i + 1, .fps = 8, .width = 32,
                         .height = 32, .frames = 8};
    int64_t id;
    CHECK(catalogue_clip_insert(cat, &cl, &id) == TB_OK);
    /* six in the motion subset, two in another one (not cached) */
    CHECK(catalogue_member_add(cat, did, id, CATALOGUE_SPLIT_TRAIN,
                               i < NCLIPS ? "motion" : "webvid") == TB_OK);
    if (i < NCLIPS) clips[i] = id;
    char rel[256];
    snprintf(rel, sizeof rel, "latents/z%d.safetensors", i);
    put_tensor(cat, ws, rel, "latent", id, vae, "mean", 4, zs, 100 + i);
    snprintf(rel, sizeof rel, "latents/c%d.safetensors", i);
    put_tensor(cat, ws, rel, "text_tokens", id, text_model, "long", 2, cs, 200 + i);
  }
  CHECK(catalogue_model_upsert(cat, "teacher", "unet", CFG_JSON, 0, &teacher) == TB_OK);
  save_teacher(ws, "models/teacher-0.safetensors", 7);
  CHECK(catalogue_checkpoint_insert(cat, teacher, 0, "models/teacher-0.safetensors", NULL, 0,
                                    &ck0) == TB_OK);
  char v0[64];
  snprintf(v0, sizeof v0, "ckpt=%lld", (long long)ck0);

  /* both workers die (SIGKILL) right after their first clip */
  char log[4096];
  fs_join(log, sizeof log, ws, "run1.log");
  int rc = run_motion(ws, "1", log);
  int64_t id1[NCLIPS], id2[NCLIPS];
  double cr1[NCLIPS], cr2[NCLIPS];
  int n1 = rows_of(cat, v0, id1, cr1);
  printf("killed run: exit %d, %d clips finished\n", rc, n1);
  CHECKF(rc != 0 && n1 == 2, "killed run: exit %d, %d clips finished (want 2)", rc, n1);
  /* the rerun makes the four others and leaves the two finished ones as they were */
  fs_join(log, sizeof log, ws, "run2.log");
  rc = run_motion(ws, NULL, log);
  CHECKF(rc == 0, "rerun exit %d (log %s)", rc, log);
  int n2 = rows_of(cat, v0, id2, cr2);
  CHECKF(n2 == NCLIPS, "%d of %d clips after the rerun", n2, NCLIPS);
  int kept = 0;
  for (int i = 0; i < n1; i++)
    for (int j = 0; j < n2; j++) kept += id1[i] == id2[j] && cr1[i] == cr2[j];
  CHECKF(kept == n1, "%d of %d finished clips redone by the rerun", n1 - kept, n1);
  CHECK(count_kind_rows(cat) == 7 * NCLIPS);
  /* a record: an index on the noisy half, E and a score */
  {
    catalogue_tensor t;
    CHECK(catalogue_tensor_find(cat, "guidance_score", clips[0], 0, teacher, v0, &t) == 1);
    fs_join(p, sizeof p, ws, t.path);
    safetensors_file *f;
    CHECK(safetensors_open(p, &f) == TB_OK);
    tensor ti, ts, tE;
    CHECK(safetensors_read_f32(f, "index", -1, NULL, &ti) == TB_OK);
    CHECK(safetensors_read_f32(f, "score", 4, zs, &ts) == TB_OK);
    CHECK(safetensors_read_f32(f, "E", -1, NULL, &tE) == TB_OK);
    float idx = ((float *)ti.data)[0], E = ((float *)tE.data)[0];
    double ss = 0;
    for (int64_t i = 0; i < T * C * H * W; i++) ss += fabs(((float *)ts.data)[i]);
    printf("clip %lld: index %g, E %g, |score|_1 %g\n", (long long)clips[0], idx, E, ss);
    CHECK(idx >= 100 && idx < 200 && E >= 0 && ss > 0);
    CHECK(strcmp(safetensors_meta_get(f, "teacher_checkpoint"), v0 + 5) == 0);
    tensor_free(&ti), tensor_free(&ts), tensor_free(&tE);
    safetensors_close(f);
    catalogue_tensor_clear(&t);
  }
  /* a third run has nothing to do */
  fs_join(log, sizeof log, ws, "run3.log");
  CHECK(run_motion(ws, NULL, log) == 0);
  n2 = rows_of(cat, v0, id2, cr2);
  int same = 0;
  for (int i = 0; i < n2; i++) same += rows_of(cat, v0, NULL, NULL) == NCLIPS;
  CHECK(n2 == NCLIPS && same == NCLIPS);

  /* a newer teacher checkpoint: every record is stale, recomputed, the old rows gone */
  int64_t ck1;
  save_teacher_model(ws, "models/teacher-1.safetensors", 8);
  CHECK(catalogue_checkpoint_insert(cat, teacher, 1, "models/teacher-1.safetensors", NULL, 0,
                                    &ck1) == TB_OK);
  char v1[64];
  snprintf(v1, sizeof v1, "ckpt=%lld", (long long)ck1);
  fs_join(log, sizeof log, ws, "run4.log");
  CHECK(run_motion(ws, NULL, log) == 0);
  int new_rows = rows_of(cat, v1, NULL, NULL), old_rows = rows_of(cat, v0, NULL, NULL);
  printf("after the checkpoint change: %d records of the new teacher, %d of the old\n", new_rows,
         old_rows);
  CHECKF(new_rows == NCLIPS && old_rows == 0 && count_kind_rows(cat) == 7 * NCLIPS,
         "new %d, old %d rows", new_rows, old_rows);
  {
    catalogue_tensor t;
    CHECK(catalogue_tensor_find(cat, "guidance_score", clips[1], 0, teacher, v1, &t) == 1);
    fs_join(p, sizeof p, ws, t.path);
    safetensors_file *f;
    CHECK(safetensors_open(p, &f) == TB_OK);
    const char *nc = safetensors_meta_get(f, "null_context");
    CHECKF(nc && strcmp(nc, "teacher.null_ctx") == 0, "null context %s", nc ? nc : "(none)");
    safetensors_close(f);
    catalogue_tensor_clear(&t);
  }
  /* a clip whose latent has the wrong channel count fails by name; the others are untouched */
  {
    int64_t bad[4] = {T, 3, H, W};
    put_tensor(cat, ws, "latents/z0.safetensors", "latent", clips[0], vae, "mean", 4, bad, 9);
    sqlite3_exec(catalogue_db(cat), "DELETE FROM tensors WHERE kind = 'guidance_score' AND "
                                    "clip_id = (SELECT min(clip_id) FROM tensors WHERE kind = "
                                    "'guidance_score')", NULL, NULL, NULL);
    fs_join(log, sizeof log, ws, "run5.log");
    CHECK(run_motion(ws, NULL, log) == 1);
    char *txt = NULL;
    size_t len;
    CHECK(fs_read_all(log, &txt, &len) == TB_OK);
    char want[64];
    snprintf(want, sizeof want, "clip %lld latent", (long long)clips[0]);
    CHECKF(txt && strstr(txt, want), "the log does not name '%s'", want);
    free(txt);
    CHECK(rows_of(cat, v1, NULL, NULL) == NCLIPS - 1);
  }
  catalogue_close(cat);
  return test_finish();
}

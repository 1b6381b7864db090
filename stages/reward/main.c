/* stages/reward/main.c — bin/reward: one reward model as a service.
 *
 *   bin/reward --model clip|quality|video [--checkpoint FILE] [--workspace DIR]
 *              [--endpoint EP] [--threads N] [--device auto|cpu|cuda]
 *
 * Answers reward.score (schemas/reward.score.schema): frames (B, T, 3, H, W) in [0, 1] and their
 * captions in; the reward per sample and, with want_grad, d reward / d frames out (one backward
 * through the frozen model). Without --checkpoint the model is the catalogue's "reward-NAME"
 * (its latest checkpoint, trained by bin/pretrain --model NAME). The endpoint defaults to
 * ipc://DIR/sock/reward-NAME.ipc.
 *
 * Every request is checked against the model before it runs: frame size and count, dtype (F32,
 * or BF16 converted), values in [0, 1], captions that are UTF-8, at most the model's length,
 * token ids of its vocabulary; a bad one gets an error reply naming what is wrong and the
 * service goes on. The model's parameters have no gradient block (frozen); a request without
 * want_grad runs without a tape. Ops run with --threads threads (default: all cores) on the
 * worker thread that answers requests.
 *
 * Exit status: 0 after SIGINT/SIGTERM, 1 when the model or socket cannot be set up, 2 bad usage.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/args.h"
#include "common/catalogue.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/service.h"
#include "common/tensor.h"
#include "kernels/device.h"
#include "kernels/nn.h"
#include "kernels/nn/reward.h"
#include "kernels/nn/text.h"
#include "kernels/ops.h"

typedef struct {
  reward_model m;
  nn_ctx *c;
  const char *name;
} served;

/* A bad request: an error reply the client gets as "bad_request: <text>". */
static int bad(msg **reply, const msg *req, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(msg **reply, const msg *req, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  *reply = msg_error_new(MSG_ERR_BAD_REQUEST, buf, msg_schema(req), msg_id(req));
  return TB_OK;
}

/* 1 when s[0..n) is valid UTF-8 without control characters (tab excepted). */
static int caption_ok(const uint8_t *s, size_t n) {
  for (size_t i = 0; i < n;) {
    uint8_t ch = s[i];
    if (ch < 0x80) {
      if (ch < 0x20 && ch != '\t') return 0;
      i++;
      continue;
    }
    int extra = (ch & 0xE0) == 0xC0 ? 1 : (ch & 0xF0) == 0xE0 ? 2 : (ch & 0xF8) == 0xF0 ? 3 : -1;
    /* overlong 2-byte leads (C0, C1), leads past U+10FFFF, a sequence cut by the end */
    if (extra < 0 || ch == 0xC0 || ch == 0xC1 || ch > 0xF4 || i + (size_t)extra >= n) return 0;
    for (int k = 1; k <= extra; k++)
      if ((s[i + (size_t)k] & 0xC0) != 0x80) return 0;
    i += (size_t)extra + 1;
  }
  return 1;
}

static int score_handler(service *s, const msg *req, msg **reply, void *user) {
  (void)s;
  served *sv = user;
  const reward_config *cfg = &sv->m.cfg;
  const char *want_model = msg_str_or(req, "model", NULL);
  if (want_model && strcmp(want_model, sv->name) != 0)
    return bad(reply, req, "this service serves the %s model, not %s", sv->name, want_model);
  int want_grad = 0;
  if (msg_has(req, "want_grad")) msg_get_bool(req, "want_grad", &want_grad);
  const tensor *fr = msg_tensor_get(req, "frames");
  int B = (int)fr->shape[0], T = (int)fr->shape[1], H = (int)fr->shape[3], W = (int)fr->shape[4];
  if (H != cfg->size || W != cfg->size)
    return bad(reply, req, "frames are %dx%d; the %s model reads %dx%d", H, W, sv->name,
               cfg->size, cfg->size);
  if (cfg->kind == REWARD_VIDEO && T != cfg->frames)
    return bad(reply, req, "%d frames per sample; the video model reads exactly %d", T, cfg->frames);
  int64_t n = tensor_numel(fr);
  float *x = xmalloc(sizeof(float) * (size_t)n);
  if (fr->dtype == DTYPE_BF16) convert_bf16_to_f32(fr->data, x, n);
  else memcpy(x, fr->data, sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++)
    if (!(x[i] >= 0.0f && x[i] <= 1.0f)) {
      int64_t per = (int64_t)T * 3 * H * W;
      int b = (int)(i / per), t = (int)(i % per / (3 * H * W));
      float v = x[i];
      free(x);
      return bad(reply, req, "frames: value %g in sample %d frame %d is outside [0, 1]", v, b, t);
    }
  /* captions */
  text_batch tb;
  memset(&tb, 0, sizeof tb);
  const tensor *tt = msg_tensor_get(req, "text"), *tk = msg_tensor_get(req, "tokens");
  if (sv->m.has_text) {
    if (tt) {
      int S = (int)tt->shape[1];
      const uint8_t *bytes = tt->data;
      char **texts = xcalloc((size_t)B, sizeof *texts);
      char *err = NULL;
      int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)cfg->text.max_len);
      for (int b = 0; b < B && !err; b++) {
        const uint8_t *row = bytes + (size_t)b * S;
        size_t len = 0;
        while (len < (size_t)S && row[len]) len++;
        for (size_t j = len; j < (size_t)S && !err; j++)
          if (row[j]) err = xstrdup("bytes after the NUL that ends the caption");
        if (!err && !caption_ok(row, len)) err = xstrdup("not UTF-8 text (or control characters)");
        if (err) {
          char buf[128];
          snprintf(buf, sizeof buf, "text row %d: %s", b, err);
          free(err);
          err = xstrdup(buf);
          break;
        }
        texts[b] = xmalloc(len + 1);
        memcpy(texts[b], row, len);
        texts[b][len] = 0;
        int full;
        text_tokenize(&sv->m.text.vocab, texts[b], cfg->text.max_len, ids, &full, NULL);
        if (full > cfg->text.max_len) {
          char buf[160];
          snprintf(buf, sizeof buf, "text row %d has %d tokens; the %s model reads at most %d", b,
                   full, sv->name, cfg->text.max_len);
          err = xstrdup(buf);
        }
      }
      free(ids);
      int rc = err ? TB_ERR : text_batch_make(&sv->m.text, (const char *const *)texts, B, 0, &tb);
      for (int b = 0; b < B; b++) free(texts[b]);
      free(texts);
      if (err || rc != TB_OK) {
        free(x);
        int r = bad(reply, req, "%s", err ? err : err_get());
        free(err);
        return r;
      }
    } else {
      int L = (int)tk->shape[1];
      int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)B * L);
      for (int64_t i = 0; i < (int64_t)B * L; i++) {
        int64_t v = tk->dtype == DTYPE_I64 ? ((const int64_t *)tk->data)[i] : ((const int32_t *)tk->data)[i];
        ids[i] = v < INT32_MIN || v > INT32_MAX ? -1 : (int32_t)v;
      }
      int rc = text_batch_from_ids(&sv->m.text, ids, B, L, &tb);
      free(ids);
      if (rc != TB_OK) {
        free(x);
        return bad(reply, req, "%s", err_get());
      }
    }
  }
  float *score = xmalloc(sizeof(float) * (size_t)B);
  int64_t gshape[5] = {B, T, 3, H, W}, bshape[1] = {B};
  tensor g = want_grad ? tensor_new(DTYPE_F32, 5, gshape) : (tensor){0};
  double t0 = time_now();
  int rc = reward_score_batch(&sv->m, sv->c, x, B, T, sv->m.has_text ? &tb : NULL, score,
                              want_grad ? (float *)g.data : NULL);
  double dt = time_now() - t0;
  text_batch_free(&tb);
  free(x);
  if (rc != TB_OK) {
    free(score);
    if (want_grad) tensor_free(&g);
    return bad(reply, req, "%s", err_get());
  }
  msg *r = msg_new("reward.score.reply", 1, msg_id(req));
  msg_set_str(r, "model", sv->name);
  msg_set_float(r, "compute_s", dt);
  msg_set_int(r, "threads", ops_threads_here());
  tensor rt = tensor_new(DTYPE_F32, 1, bshape);
  memcpy(rt.data, score, sizeof(float) * (size_t)B);
  free(score);
  rc = msg_add_tensor_owned(r, "reward", &rt);
  if (rc == TB_OK && want_grad) rc = msg_add_tensor_owned(r, "grad", &g);
  else if (want_grad) tensor_free(&g);
  if (rc != TB_OK) {
    msg_free(r);
    return TB_ERR;
  }
  *reply = r;
  return TB_OK;
}

/* The catalogue's latest checkpoint of model "reward-NAME", as a path (caller frees). */
static char *latest_checkpoint(const char *workspace, const char *name) {
  catalogue *cat = catalogue_open_workspace(workspace, CATALOGUE_OPEN_READONLY);
  if (!cat) return NULL;
  char mname[64];
  snprintf(mname, sizeof mname, "reward-%s", name);
  catalogue_model mo;
  catalogue_checkpoint ck;
  char *path = NULL;
  int found = catalogue_model_lookup(cat, mname, &mo);
  if (found == 1) {
    found = catalogue_checkpoint_latest(cat, mo.id, &ck);
    if (found == 1) {
      char full[4096];
      fs_join(full, sizeof full, workspace, ck.path);
      path = xstrdup(full);
      catalogue_checkpoint_clear(&ck);
    }
    catalogue_model_clear(&mo);
  }
  if (!path && found != TB_ERR)
    err_set("the catalogue of %s has no checkpoint of model %s: train it with bin/pretrain "
            "--model %s, or give --checkpoint", workspace, mname, name);
  catalogue_close(cat);
  return path;
}

int main(int argc, char **argv) {
  log_init("reward");
  char *model = NULL, *checkpoint = NULL, *workspace = NULL, *endpoint = NULL, *devspec = "cpu";
  int threads = 0;
  arg_opt opts[] = {
      {"model", ARG_STR, &model, "NAME", "clip, quality or video"},
      {"checkpoint", ARG_STR, &checkpoint, "FILE", "the model (default: the catalogue's reward-NAME)"},
      {"workspace", ARG_STR, &workspace, "DIR", "workspace (default $TURBO_WORKSPACE or runs/default)"},
      {"endpoint", ARG_STR, &endpoint, "EP", "ipc://PATH or tcp://HOST:PORT (default ipc://DIR/sock/reward-NAME.ipc)"},
      {"threads", ARG_INT, &threads, "N", "op threads (default: all cores)"},
      {"device", ARG_STR, &devspec, "DEV", "auto, cpu or cuda[:N] (default cpu)"},
      {0}};
  int pos = args_parse(argc, argv, "reward --model NAME [options]",
                       "Serves one reward model on reward.score.", opts);
  if (pos < 0) return 2;
  reward_kind kind;
  if (!model || reward_kind_parse(model, &kind) != TB_OK) {
    log_error("--model clip|quality|video is required%s%s", model ? ": " : "", model ? err_get() : "");
    return 2;
  }
  const char *ws = catalogue_workspace_dir(workspace);
  if (device_init(devspec) != TB_OK) {
    log_error("%s", err_get());
    return 1;
  }
  ops_set_num_threads(threads);
  char *ck = checkpoint ? xstrdup(checkpoint) : latest_checkpoint(ws, model);
  if (!ck) {
    log_error("%s", err_get());
    return 1;
  }
  served sv;
  memset(&sv, 0, sizeof sv);
  if (reward_model_load(&sv.m, ck, 1) != TB_OK) {
    log_error("%s", err_get());
    free(ck);
    return 1;
  }
  if (sv.m.cfg.kind != kind) {
    log_error("%s holds a %s model, not %s", ck, reward_kind_name(sv.m.cfg.kind), model);
    reward_model_free(&sv.m);
    free(ck);
    return 1;
  }
  sv.name = reward_kind_name(kind);
  sv.c = nn_ctx_new();
  char sname[64];
  snprintf(sname, sizeof sname, "reward-%s", sv.name);
  service_signals_install();
  service_opts so = service_opts_default(sname);
  so.workspace = ws;
  so.endpoint = endpoint;
  service *s = service_new(&so);
  if (!s || service_register(s, "reward.score", score_handler, &sv) != TB_OK) {
    log_error("%s", err_get());
    service_free(s);
    nn_ctx_free(sv.c);
    reward_model_free(&sv.m);
    free(ck);
    return 1;
  }
  log_info("%s: %s (%lld parameters, %dx%d frames, %s) on %s, %d op threads, device %s",
           sname, ck, (long long)sv.m.params.total, sv.m.cfg.size, sv.m.cfg.size,
           kind == REWARD_VIDEO ? "a fixed frame count per clip" : "any frame count",
           service_endpoint(s), ops_get_num_threads(), device_describe());
  int rc = service_run(s);
  service_free(s);
  nn_ctx_free(sv.c);
  reward_model_free(&sv.m);
  free(ck);
  return rc == TB_OK ? 0 : 1;
}

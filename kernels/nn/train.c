/* kernels/nn/train.c — training-state checkpoints: everything a killed training run needs to
 * continue exactly where it stopped, in one safetensors file.
 *
 * File contents: every parameter under its registered name (so nn_params_load reads the file as a
 * plain checkpoint too), and under the reserved prefix "train." the flat AdamW moments
 * ("train.adamw_m", "train.adamw_v": the layout of the parameter block, padding included) and the
 * flat EMA copy ("train.ema"); metadata "format" = "turbo.train_state.v1", "train.step",
 * "train.data_pos", "train.rng" (decimal, exact), "train.adamw_step", the optimiser's
 * hyper-parameters (for reference; the command line sets them), and the caller's pairs. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/safetensors.h"
#include "common/tensor.h"
#include "kernels/device.h"
#include "kernels/nn.h"

#define TRAIN_FORMAT "turbo.train_state.v1"

/* A host copy of n device floats (the block itself on the CPU). Release with host_done. */
static float *host_copy(const float *d, int64_t n) {
  if (!device_is_cuda()) return (float *)d;
  float *h = xmalloc((size_t)n * sizeof(float));
  device_memcpy_d2h(h, d, (size_t)n * sizeof(float));
  return h;
}
static void host_done(const float *d, float *h) {
  if (h != d) free(h);
}

static int add_flat(safetensors_writer *w, const char *name, const float *host, int64_t n) {
  int64_t shape[1] = {n};
  tensor t = tensor_view(DTYPE_F32, 1, shape, (void *)host);
  return safetensors_writer_add_ref(w, name, &t);
}

int nn_train_save(const char *path, const nn_params *p, const nn_adamw *opt, const float *ema,
                  const nn_train_pos *pos, int nmeta, const char *const *meta) {
  safetensors_writer *w = safetensors_writer_new();
  float *hp = host_copy(p->data, p->total);
  float *hm = opt ? host_copy(opt->m, opt->n) : NULL;
  float *hv = opt ? host_copy(opt->v, opt->n) : NULL;
  float *he = ema ? host_copy(ema, p->total) : NULL;
  int rc = TB_OK;
  for (int i = 0; i < p->n && rc == TB_OK; i++) {
    tensor t = tensor_view(DTYPE_F32, p->info[i].ndim, p->info[i].shape, hp + p->info[i].offset);
    rc = safetensors_writer_add_ref(w, p->info[i].name, &t);
  }
  if (rc == TB_OK && opt) {
    TB_CHECKF(opt->n == p->total, "nn_train_save: optimiser of %lld values, parameters %lld",
              (long long)opt->n, (long long)p->total);
    rc = add_flat(w, "train.adamw_m", hm, opt->n);
    if (rc == TB_OK) rc = add_flat(w, "train.adamw_v", hv, opt->n);
  }
  if (rc == TB_OK && ema) rc = add_flat(w, "train.ema", he, p->total);
  char buf[64];
  if (rc == TB_OK) {
    safetensors_writer_set_meta(w, "format", TRAIN_FORMAT);
    snprintf(buf, sizeof buf, "%" PRId64, pos->step);
    safetensors_writer_set_meta(w, "train.step", buf);
    snprintf(buf, sizeof buf, "%" PRId64, pos->data_pos);
    safetensors_writer_set_meta(w, "train.data_pos", buf);
    snprintf(buf, sizeof buf, "%" PRIu64, pos->rng);
    safetensors_writer_set_meta(w, "train.rng", buf);
    if (opt) {
      snprintf(buf, sizeof buf, "%" PRId64, opt->step);
      safetensors_writer_set_meta(w, "train.adamw_step", buf);
      snprintf(buf, sizeof buf, "%.9g %.9g %.9g %.9g", opt->beta1, opt->beta2, opt->eps,
               opt->weight_decay);
      safetensors_writer_set_meta(w, "train.adamw_betas_eps_wd", buf);
    }
    for (int i = 0; i + 1 < 2 * nmeta && rc == TB_OK; i += 2) {
      if (strncmp(meta[i], "train.", 6) == 0 || strcmp(meta[i], "format") == 0)
        rc = err_set("nn_train_save: metadata key %s is reserved", meta[i]);
      else
        rc = safetensors_writer_set_meta(w, meta[i], meta[i + 1]);
    }
  }
  if (rc == TB_OK) rc = safetensors_writer_save(w, path);
  safetensors_writer_free(w);
  host_done(p->data, hp);
  if (opt) host_done(opt->m, hm), host_done(opt->v, hv);
  if (ema) host_done(ema, he);
  if (rc != TB_OK) return err_wrap("saving the training state to %s: ", path);
  return TB_OK;
}

/* An integer metadata value, checked. */
static int meta_int(const safetensors_file *f, const char *path, const char *key, int is_unsigned,
                    uint64_t *out) {
  const char *v = safetensors_meta_get(f, key);
  if (!v) return err_set("%s: metadata %s missing (not a complete training state)", path, key);
  char *end = NULL;
  errno = 0;
  unsigned long long u = 0;
  if (is_unsigned) {
    u = strtoull(v, &end, 10);
  } else {
    long long s = strtoll(v, &end, 10);
    if (s < 0) return err_set("%s: metadata %s = %s is negative", path, key, v);
    u = (unsigned long long)s;
  }
  if (errno || end == v || *end)
    return err_set("%s: metadata %s = \"%s\" is not an integer", path, key, v);
  *out = u;
  return TB_OK;
}

int nn_train_read_pos(const char *path, nn_train_pos *pos) {
  safetensors_file *f = NULL;
  if (safetensors_open(path, &f) != TB_OK) return TB_ERR;
  const char *fmt = safetensors_meta_get(f, "format");
  int rc = TB_OK;
  if (!fmt || strcmp(fmt, TRAIN_FORMAT) != 0)
    rc = err_set("%s: not a training state (format %s, expected %s)", path, fmt ? fmt : "absent",
                 TRAIN_FORMAT);
  uint64_t step = 0, data_pos = 0, rng = 0;
  if (rc == TB_OK) rc = meta_int(f, path, "train.step", 0, &step);
  if (rc == TB_OK) rc = meta_int(f, path, "train.data_pos", 0, &data_pos);
  if (rc == TB_OK) rc = meta_int(f, path, "train.rng", 1, &rng);
  safetensors_close(f);
  if (rc != TB_OK) return rc;
  pos->step = (int64_t)step;
  pos->data_pos = (int64_t)data_pos;
  pos->rng = rng;
  return TB_OK;
}

/* Copies the flat tensor `name` (n F32 values) to the device array dst. */
static int load_flat(const safetensors_file *f, const char *path, const char *name, int64_t n,
                     float *dst) {
  const safetensors_entry *e = safetensors_find(f, name);
  if (!e) return err_set("%s: tensor %s missing (saved without it?)", path, name);
  if (e->dtype != DTYPE_F32 || e->ndim != 1 || e->numel != n)
    return err_set("%s: tensor %s is %s with %lld values; this model needs F32 with %lld", path,
                   name, e->dtype_name, (long long)e->numel, (long long)n);
  if (e->aligned) {
    device_memcpy_h2d(dst, e->data, (size_t)n * sizeof(float));
  } else {
    float *tmp = xmalloc((size_t)n * sizeof(float));
    memcpy(tmp, e->data, (size_t)n * sizeof(float));
    device_memcpy_h2d(dst, tmp, (size_t)n * sizeof(float));
    free(tmp);
  }
  return TB_OK;
}

int nn_train_load(const char *path, nn_params *p, nn_adamw *opt, float *ema, nn_train_pos *pos) {
  nn_train_pos got;
  if (nn_train_read_pos(path, &got) != TB_OK) return TB_ERR;
  safetensors_file *f = NULL;
  if (safetensors_open(path, &f) != TB_OK) return TB_ERR;
  int rc = TB_OK;
  uint64_t astep = 0;
  /* everything checked before anything is changed */
  if (opt) {
    const safetensors_entry *m = safetensors_find(f, "train.adamw_m");
    const safetensors_entry *v = safetensors_find(f, "train.adamw_v");
    if (!m || !v) rc = err_set("%s: no optimiser moments in this training state", path);
    else if (m->numel != opt->n || v->numel != opt->n)
      rc = err_set("%s: optimiser moments of %lld values; this model has %lld parameters "
                   "(a different configuration?)", path, (long long)m->numel, (long long)opt->n);
    if (rc == TB_OK) rc = meta_int(f, path, "train.adamw_step", 0, &astep);
  }
  if (rc == TB_OK && ema && !safetensors_find(f, "train.ema"))
    rc = err_set("%s: no EMA weights in this training state", path);
  if (rc == TB_OK) rc = nn_params_load(p, path, NULL, 0);
  if (rc == TB_OK && opt) rc = load_flat(f, path, "train.adamw_m", opt->n, opt->m);
  if (rc == TB_OK && opt) rc = load_flat(f, path, "train.adamw_v", opt->n, opt->v);
  if (rc == TB_OK && ema) rc = load_flat(f, path, "train.ema", p->total, ema);
  safetensors_close(f);
  if (rc != TB_OK) return rc;
  if (opt) opt->step = (int64_t)astep;
  *pos = got;
  return TB_OK;
}

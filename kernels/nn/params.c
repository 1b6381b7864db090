/* kernels/nn/params.c — the parameter registry: hierarchical names, shapes, one allocation for
 * all values and one for all gradients (on the current device), seeded initialisation,
 * safetensors save and staged load (reader → name map → match against the registry). Values
 * are drawn, read and written on the host and cross to the device in one copy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/safetensors.h"
#include "common/tensor.h"
#include "kernels/device.h"
#include "kernels/nn.h"

void nn_params_init_empty(nn_params *p) { memset(p, 0, sizeof *p); }

int nn_params_add(nn_params *p, const char *name, int ndim, const int64_t *shape,
                  nn_init_kind init, int64_t fan_in, int64_t fan_out) {
  TB_CHECKF(p->data == NULL, "nn_params_add(%s) after nn_params_alloc", name);
  TB_CHECKF(strlen(name) < NN_NAME_MAX && ndim >= 1 && ndim <= NN_MAX_DIMS, "param %s", name);
  TB_CHECKF(nn_params_find(p, name) < 0, "duplicate parameter name %s", name);
  if (p->n == p->cap) {
    p->cap = p->cap ? 2 * p->cap : 64;
    p->info = xrealloc(p->info, p->cap * sizeof *p->info);
  }
  nn_param_info *in = &p->info[p->n];
  memset(in, 0, sizeof *in);
  snprintf(in->name, sizeof in->name, "%s", name);
  in->ndim = ndim;
  in->numel = 1;
  for (int i = 0; i < ndim; i++) {
    in->shape[i] = shape[i];
    in->numel *= shape[i];
  }
  /* each parameter starts on a 16-float (64-byte) boundary */
  in->offset = (p->total + 15) & ~(int64_t)15;
  p->total = in->offset + in->numel;
  in->init = init;
  in->fan_in = fan_in;
  in->fan_out = fan_out;
  return p->n++;
}

static size_t params_bytes(const nn_params *p) {
  return (size_t)(p->total ? p->total : 1) * sizeof(float);
}

void nn_params_alloc(nn_params *p) {
  TB_CHECK(p->data == NULL);
  p->data = device_malloc(params_bytes(p));
  p->grad = device_malloc(params_bytes(p));
  device_memset(p->data, 0, params_bytes(p));
  device_memset(p->grad, 0, params_bytes(p));
}

void nn_params_alloc_frozen(nn_params *p) {
  TB_CHECK(p->data == NULL);
  p->data = device_malloc(params_bytes(p));
  p->grad = NULL;
  device_memset(p->data, 0, params_bytes(p));
}

/* A host view of the parameter values: the block itself on the CPU, a copy on a GPU
 * (fetched from the device when `fetch`). Hand it to host_view_done. */
static float *host_view(const nn_params *p, int fetch) {
  if (!device_is_cuda()) return p->data;
  float *h = xmalloc(params_bytes(p));
  if (fetch) device_memcpy_d2h(h, p->data, params_bytes(p));
  return h;
}
/* Releases a host view; `store` copies it to the device first. */
static void host_view_done(const nn_params *p, float *h, int store) {
  if (h == p->data) return;
  if (store) device_memcpy_h2d(p->data, h, params_bytes(p));
  free(h);
}

static double rng_uniform(uint64_t *s) {
  /* splitmix64 → [0, 1) with 53 bits */
  uint64_t z = hash_mix64(*s += 0x9E3779B97F4A7C15ull);
  return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

void nn_params_init(nn_params *p, uint64_t seed, int zero_out) {
  float *host = host_view(p, 0);
  for (int i = 0; i < p->n; i++) {
    nn_param_info *in = &p->info[i];
    float *d = host + in->offset;
    /* a stream per parameter, so adding a parameter does not shift the others' draws */
    uint64_t s = seed ^ checksum64(in->name, strlen(in->name));
    nn_init_kind k = in->init;
    if (k == NN_INIT_ZERO_OUT && !zero_out) k = NN_INIT_KAIMING;
    double bound = 0;
    switch (k) {
    case NN_INIT_ZERO:
    case NN_INIT_ZERO_OUT:
      memset(d, 0, in->numel * sizeof(float));
      continue;
    case NN_INIT_ONE:
      for (int64_t j = 0; j < in->numel; j++) d[j] = 1.0f;
      continue;
    case NN_INIT_KAIMING:
      bound = 1.0 / sqrt((double)(in->fan_in > 0 ? in->fan_in : 1));
      break;
    case NN_INIT_XAVIER:
      bound = sqrt(6.0 / (double)(in->fan_in + in->fan_out > 0 ? in->fan_in + in->fan_out : 1));
      break;
    case NN_INIT_NORMAL:
      for (int64_t j = 0; j < in->numel; j++) {
        double u1 = rng_uniform(&s), u2 = rng_uniform(&s);
        d[j] = (float)(0.02 * sqrt(-2.0 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2));
      }
      continue;
    }
    for (int64_t j = 0; j < in->numel; j++) d[j] = (float)((2.0 * rng_uniform(&s) - 1.0) * bound);
  }
  host_view_done(p, host, 1);
}

void nn_params_zero_grad(nn_params *p) {
  if (p->grad) device_memset(p->grad, 0, (size_t)p->total * sizeof(float));
}

void nn_params_freeze(nn_params *p) {
  device_free(p->grad);
  p->grad = NULL;
}

int nn_params_find(const nn_params *p, const char *name) {
  for (int i = 0; i < p->n; i++)
    if (strcmp(p->info[i].name, name) == 0) return i;
  return -1;
}

float *nn_params_ptr(const nn_params *p, int idx) { return p->data + p->info[idx].offset; }
float *nn_params_grad_ptr(const nn_params *p, int idx) { return p->grad + p->info[idx].offset; }

void nn_params_free(nn_params *p) {
  device_free(p->data);
  device_free(p->grad);
  free(p->info);
  memset(p, 0, sizeof *p);
}

int nn_params_save(const nn_params *p, const char *path) {
  safetensors_writer *w = safetensors_writer_new();
  float *host = host_view(p, 1);
  int rc = TB_OK;
  for (int i = 0; i < p->n && rc == TB_OK; i++) {
    tensor t = tensor_view(DTYPE_F32, p->info[i].ndim, p->info[i].shape,
                           host + p->info[i].offset);
    rc = safetensors_writer_add_ref(w, p->info[i].name, &t);
  }
  if (rc == TB_OK) safetensors_writer_set_meta(w, "format", "turbo.nn_params.v1");
  if (rc == TB_OK) rc = safetensors_writer_save(w, path);
  safetensors_writer_free(w);
  host_view_done(p, host, 0);
  if (rc != TB_OK) return err_wrap("saving parameters to %s: ", path);
  return TB_OK;
}

int nn_params_load(nn_params *p, const char *path, const nn_name_map *map, int nmap) {
  safetensors_file *f = NULL;
  if (safetensors_open(path, &f) != TB_OK) return TB_ERR;
  size_t n = safetensors_count(f);
  int *src = xmalloc((size_t)p->n * sizeof(int)); /* registry index → file entry */
  for (int i = 0; i < p->n; i++) src[i] = -1;
  int unknown = 0, rc = TB_OK;
  /* stage 2 and 3: map names, match against the registry, check shapes */
  for (size_t e = 0; e < n && rc == TB_OK; e++) {
    const safetensors_entry *en = safetensors_entry_at(f, e);
    const char *name = en->name;
    for (int m = 0; m < nmap; m++)
      if (strcmp(map[m].from, name) == 0) {
        name = map[m].to;
        break;
      }
    int idx = nn_params_find(p, name);
    if (idx < 0 && strncmp(name, "train.", 6) == 0) continue; /* training state (train.c) */
    if (idx < 0) {
      if (unknown++ < 20) log_warn("%s: unknown tensor %s (skipped)", path, en->name);
      continue;
    }
    const nn_param_info *in = &p->info[idx];
    int same = en->ndim == in->ndim;
    for (int d = 0; same && d < in->ndim; d++) same = en->shape[d] == in->shape[d];
    if (!same) {
      char a[96], b[96];
      rc = err_set("%s: tensor %s has shape %s, the model expects %s for %s", path, en->name,
                   shape_str(en->ndim, en->shape, a, sizeof a), shape_str(in->ndim, in->shape, b, sizeof b),
                   in->name);
      break;
    }
    if (en->dtype != DTYPE_F32 && en->dtype != DTYPE_BF16 && en->dtype != DTYPE_F16) {
      rc = err_set("%s: tensor %s has dtype %s (F32, BF16 or F16 expected)", path, en->name,
                   en->dtype_name);
      break;
    }
    if (src[idx] >= 0) {
      rc = err_set("%s: two tensors map to parameter %s", path, in->name);
      break;
    }
    src[idx] = (int)e;
  }
  if (unknown > 20) log_warn("%s: %d unknown tensors in all", path, unknown);
  for (int i = 0; i < p->n && rc == TB_OK; i++)
    if (src[i] < 0)
      rc = err_set("%s: parameter %s missing from the file (a name map may be needed)", path,
                   p->info[i].name);
  /* all checked: copy */
  float *host = rc == TB_OK ? host_view(p, 1) : NULL;
  for (int i = 0; i < p->n && rc == TB_OK; i++) {
    const safetensors_entry *en = safetensors_entry_at(f, (size_t)src[i]);
    float *d = host + p->info[i].offset;
    int64_t k = p->info[i].numel;
    if (en->dtype == DTYPE_F32) {
      memcpy(d, en->data, (size_t)k * sizeof(float));
    } else {
      const uint8_t *b = en->data;
      for (int64_t j = 0; j < k; j++) {
        uint16_t h = (uint16_t)(b[2 * j] | (b[2 * j + 1] << 8));
        d[j] = en->dtype == DTYPE_BF16 ? bf16_to_f32(h) : f16_to_f32(h);
      }
    }
  }
  if (host) host_view_done(p, host, 1);
  free(src);
  safetensors_close(f);
  return rc;
}

int nn_params_load_registered(nn_params *p, const char *path) {
  safetensors_file *f = NULL;
  if (safetensors_open(path, &f) != TB_OK) return TB_ERR;
  int rc = TB_OK;
  /* check every registered parameter first, so a failure changes nothing */
  for (int i = 0; i < p->n && rc == TB_OK; i++) {
    const nn_param_info *in = &p->info[i];
    const safetensors_entry *en = safetensors_find(f, in->name);
    if (!en) {
      rc = err_set("%s: parameter %s missing from the file", path, in->name);
      break;
    }
    int same = en->ndim == in->ndim;
    for (int d = 0; same && d < in->ndim; d++) same = en->shape[d] == in->shape[d];
    if (!same) {
      char a[96], b[96];
      rc = err_set("%s: tensor %s has shape %s, the model expects %s", path, en->name,
                   shape_str(en->ndim, en->shape, a, sizeof a),
                   shape_str(in->ndim, in->shape, b, sizeof b));
    } else if (en->dtype != DTYPE_F32 && en->dtype != DTYPE_BF16 && en->dtype != DTYPE_F16) {
      rc = err_set("%s: tensor %s has dtype %s (F32, BF16 or F16 expected)", path, en->name,
                   en->dtype_name);
    }
  }
  float *host = rc == TB_OK ? host_view(p, 1) : NULL;
  for (int i = 0; i < p->n && rc == TB_OK; i++) {
    tensor t;
    rc = safetensors_read_f32(f, p->info[i].name, p->info[i].ndim, p->info[i].shape, &t);
    if (rc != TB_OK) break;
    memcpy(host + p->info[i].offset, t.data, (size_t)p->info[i].numel * sizeof(float));
    tensor_free(&t);
  }
  if (host) host_view_done(p, host, rc == TB_OK);
  safetensors_close(f);
  return rc;
}

/* ---- loading through a tensor map (checkpoints of other families) --------------------- */

void nn_tensor_map_init(nn_tensor_map *m) { memset(m, 0, sizeof *m); }

void nn_tensor_map_add(nn_tensor_map *m, const char *from, const char *to, nn_src_kind kind,
                       int64_t row0) {
  if (m->n == m->cap) {
    m->cap = m->cap ? 2 * m->cap : 256;
    m->from = xrealloc(m->from, (size_t)m->cap * sizeof *m->from);
    m->to = xrealloc(m->to, (size_t)m->cap * sizeof *m->to);
    m->kind = xrealloc(m->kind, (size_t)m->cap * sizeof *m->kind);
    m->row0 = xrealloc(m->row0, (size_t)m->cap * sizeof *m->row0);
  }
  m->from[m->n] = xstrdup(from);
  m->to[m->n] = xstrdup(to);
  m->kind[m->n] = (int)kind;
  m->row0[m->n] = row0;
  m->n++;
}

void nn_tensor_map_free(nn_tensor_map *m) {
  for (int i = 0; i < m->n; i++) free(m->from[i]), free(m->to[i]);
  free(m->from), free(m->to), free(m->kind), free(m->row0);
  memset(m, 0, sizeof *m);
}

/* The shape without trailing 1-dims (a scalar keeps one dim). */
static int squeeze_tail(int ndim, const int64_t *shape) {
  while (ndim > 1 && shape[ndim - 1] == 1) ndim--;
  return ndim;
}

/* Checks tensor en as the source of parameter in (kind, row0). TB_ERR names both. */
static int src_check(const char *path, const safetensors_entry *en, const nn_param_info *in,
                     int kind, int64_t row0) {
  char a[96], b[96];
  shape_str(en->ndim, en->shape, a, sizeof a);
  shape_str(in->ndim, in->shape, b, sizeof b);
  if (en->dtype != DTYPE_F32 && en->dtype != DTYPE_BF16 && en->dtype != DTYPE_F16)
    return err_set("%s: tensor %s has dtype %s (F32, BF16 or F16 expected) for parameter %s", path,
                   en->name, en->dtype_name, in->name);
  int ok = 0;
  if (kind == NN_SRC_SAME) {
    int ne = squeeze_tail(en->ndim, en->shape), np = squeeze_tail(in->ndim, in->shape);
    ok = ne == np;
    for (int d = 0; ok && d < np; d++) ok = en->shape[d] == in->shape[d];
  } else if (kind == NN_SRC_ROWS) {
    ok = en->ndim == in->ndim && row0 >= 0 && row0 + in->shape[0] <= en->shape[0];
    for (int d = 1; ok && d < in->ndim; d++) ok = en->shape[d] == in->shape[d];
    if (!ok)
      return err_set("%s: tensor %s has shape %s; parameter %s needs rows %lld..%lld of it with "
                     "shape %s", path, en->name, a, in->name, (long long)row0,
                     (long long)(row0 + in->shape[0] - 1), b);
  } else if (kind == NN_SRC_T) {
    ok = en->ndim == 2 && in->ndim == 2 && en->shape[0] == in->shape[1] &&
         en->shape[1] == in->shape[0];
    if (!ok)
      return err_set("%s: tensor %s has shape %s; parameter %s is its transpose %s", path,
                     en->name, a, in->name, b);
  }
  if (!ok)
    return err_set("%s: tensor %s has shape %s, parameter %s expects %s", path, en->name, a,
                   in->name, b);
  return TB_OK;
}

static float src_value(const safetensors_entry *en, int64_t j) {
  const uint8_t *b = en->data;
  if (en->dtype == DTYPE_F32) {
    float v;
    memcpy(&v, b + 4 * j, sizeof v);
    return v;
  }
  uint16_t h = (uint16_t)(b[2 * j] | (b[2 * j + 1] << 8));
  return en->dtype == DTYPE_BF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

int nn_params_load_map(nn_params *p, const char *path, const nn_tensor_map *map, int *n_unused) {
  safetensors_file *f = NULL;
  if (safetensors_open(path, &f) != TB_OK) return TB_ERR;
  size_t nf = safetensors_count(f);
  const safetensors_entry **src = xcalloc((size_t)(p->n ? p->n : 1), sizeof *src);
  int *kind = xcalloc((size_t)(p->n ? p->n : 1), sizeof *kind);
  int64_t *row0 = xcalloc((size_t)(p->n ? p->n : 1), sizeof *row0);
  uint8_t *used = xcalloc(nf ? nf : 1, 1);
  int rc = TB_OK;
  /* the map's entries by parameter */
  int *entry = xmalloc((size_t)(p->n ? p->n : 1) * sizeof *entry);
  for (int i = 0; i < p->n; i++) entry[i] = -1;
  for (int e = 0; map && e < map->n && rc == TB_OK; e++) {
    int idx = nn_params_find(p, map->to[e]);
    if (idx < 0) rc = err_set("tensor map: %s names no parameter of this model", map->to[e]);
    else if (entry[idx] >= 0) rc = err_set("tensor map: parameter %s mapped twice", map->to[e]);
    else entry[idx] = e;
  }
  for (int i = 0; i < p->n && rc == TB_OK; i++) {
    const nn_param_info *in = &p->info[i];
    const char *from = entry[i] >= 0 ? map->from[entry[i]] : in->name;
    kind[i] = entry[i] >= 0 ? map->kind[entry[i]] : NN_SRC_SAME;
    row0[i] = entry[i] >= 0 ? map->row0[entry[i]] : 0;
    const safetensors_entry *en = safetensors_find(f, from);
    if (!en) {
      rc = err_set("%s: tensor %s is missing (parameter %s); the file is not this model, or a "
                   "tensor was renamed", path, from, in->name);
      break;
    }
    rc = src_check(path, en, in, kind[i], row0[i]);
    src[i] = en;
  }
  for (size_t e = 0; e < nf; e++) {
    const safetensors_entry *en = safetensors_entry_at(f, e);
    for (int i = 0; i < p->n && !used[e]; i++) used[e] = src[i] == en;
  }
  int unused = 0;
  for (size_t e = 0; e < nf; e++)
    if (!used[e] && unused++ < 8 && rc == TB_OK)
      log_info("%s: tensor %s is not used by this model", path, safetensors_entry_at(f, e)->name);
  if (n_unused) *n_unused = unused;
  /* all checked: copy */
  float *host = rc == TB_OK ? host_view(p, 1) : NULL;
  for (int i = 0; i < p->n && rc == TB_OK; i++) {
    const nn_param_info *in = &p->info[i];
    const safetensors_entry *en = src[i];
    float *d = host + in->offset;
    if (kind[i] == NN_SRC_T) {
      int64_t R = en->shape[0], C = en->shape[1]; /* d (C, R) = en^T */
      for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) d[c * R + r] = src_value(en, r * C + c);
    } else {
      int64_t off = kind[i] == NN_SRC_ROWS ? row0[i] * (in->numel / in->shape[0]) : 0;
      for (int64_t j = 0; j < in->numel; j++) d[j] = src_value(en, off + j);
    }
  }
  if (host) host_view_done(p, host, 1);
  free(entry), free(src), free(kind), free(row0), free(used);
  safetensors_close(f);
  return rc;
}

/* kernels/nn/motion.c — motion guidance (kernels/motion.h): references from kept temporal
 * attention maps, the top-1-masked energy and its gradient into the maps, and the teacher-side
 * pass that turns it into dE/dz. The arithmetic is op_attn_top1 / op_masked_mse_* on the
 * current backend; host code here only walks layers and samples. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/device.h"
#include "kernels/motion.h"
#include "kernels/ops.h"

void motion_ref_free(motion_ref *r) {
  for (int l = 0; l < r->n; l++) {
    device_free(r->idx[l]);
    device_free(r->val[l]);
  }
  memset(r, 0, sizeof *r);
}

static void ref_alloc_layer(motion_ref *r, int l) {
  size_t n = (size_t)(r->B * r->rows[l]);
  r->idx[l] = device_malloc((n ? n : 1) * sizeof(int32_t));
  r->val[l] = device_malloc((n ? n : 1) * sizeof(float));
}

int motion_ref_from_ctx(motion_ref *r, const nn_ctx *c, int B) {
  memset(r, 0, sizeof *r);
  int n = nn_attn_count(c);
  if (n == 0) return err_set("motion reference: the pass kept no attention maps");
  if (n > MOTION_MAX_LAYERS)
    return err_set("motion reference: %d kept layers, at most %d", n, MOTION_MAX_LAYERS);
  r->B = B;
  for (int l = 0; l < n; l++) {
    int64_t sh[4];
    const float *p = nn_attn_probs(c, l, sh);
    if (B < 1 || sh[0] % B != 0) {
      motion_ref_free(r);
      return err_set("motion reference: layer %s has %lld groups, not a multiple of %d samples",
                     nn_attn_name(c, l), (long long)sh[0], B);
    }
    snprintf(r->name[l], NN_NAME_MAX, "%s", nn_attn_name(c, l));
    r->rows[l] = sh[0] / B * sh[1] * sh[2];
    r->nk[l] = (int)sh[3];
    r->n = l + 1;
    ref_alloc_layer(r, l);
    op_attn_top1(r->idx[l], r->val[l], p, B * r->rows[l], r->nk[l]);
  }
  return TB_OK;
}

int64_t motion_ref_total_rows(const motion_ref *r) {
  int64_t s = 0;
  for (int l = 0; l < r->n; l++) s += r->B * r->rows[l];
  return s;
}

void motion_ref_export(const motion_ref *r, int32_t *idx, float *val) {
  int64_t at = 0;
  for (int l = 0; l < r->n; l++) {
    size_t m = (size_t)(r->B * r->rows[l]);
    device_memcpy_d2h(idx + at, r->idx[l], m * sizeof(int32_t));
    device_memcpy_d2h(val + at, r->val[l], m * sizeof(float));
    at += (int64_t)m;
  }
}

int motion_ref_import(motion_ref *r, int n, int B, const char *const *names, const int64_t *rows,
                      const int *nk, const int32_t *idx, const float *val) {
  memset(r, 0, sizeof *r);
  if (n < 1 || n > MOTION_MAX_LAYERS || B < 1)
    return err_set("motion reference: %d layers for %d samples (1..%d layers, B >= 1)", n, B,
                   MOTION_MAX_LAYERS);
  int64_t at = 0;
  for (int l = 0; l < n; l++) {
    if (rows[l] < 1 || nk[l] < 1)
      return err_set("motion reference: layer %s has %lld rows of %d keys", names[l],
                     (long long)rows[l], nk[l]);
    int64_t m = B * rows[l];
    for (int64_t i = 0; i < m; i++) {
      if (idx[at + i] < 0 || idx[at + i] >= nk[l])
        return err_set("motion reference: layer %s row %lld names key %d of %d", names[l],
                       (long long)i, (int)idx[at + i], nk[l]);
      if (!(val[at + i] >= 0.0f && val[at + i] <= 1.0f))
        return err_set("motion reference: layer %s row %lld has probability %g", names[l],
                       (long long)i, (double)val[at + i]);
    }
    at += m;
  }
  r->n = n;
  r->B = B;
  at = 0;
  for (int l = 0; l < n; l++) {
    snprintf(r->name[l], NN_NAME_MAX, "%s", names[l]);
    r->rows[l] = rows[l];
    r->nk[l] = nk[l];
    ref_alloc_layer(r, l);
    size_t m = (size_t)(B * rows[l]);
    device_memcpy_h2d(r->idx[l], idx + at, m * sizeof(int32_t));
    device_memcpy_h2d(r->val[l], val + at, m * sizeof(float));
    at += (int64_t)m;
  }
  return TB_OK;
}

int motion_ref_take(motion_ref *out, const motion_ref *r, int b) {
  memset(out, 0, sizeof *out);
  if (b < 0 || b >= r->B) return err_set("motion reference: sample %d of %d", b, r->B);
  out->n = r->n;
  out->B = 1;
  for (int l = 0; l < r->n; l++) {
    memcpy(out->name[l], r->name[l], NN_NAME_MAX);
    out->rows[l] = r->rows[l];
    out->nk[l] = r->nk[l];
    ref_alloc_layer(out, l);
    size_t m = (size_t)r->rows[l];
    device_memcpy_d2d(out->idx[l], r->idx[l] + b * m, m * sizeof(int32_t));
    device_memcpy_d2d(out->val[l], r->val[l] + b * m, m * sizeof(float));
  }
  return TB_OK;
}

/* the kept layer of c named `name`, or -1 */
static int kept_layer(const nn_ctx *c, const char *name) {
  for (int i = 0; i < nn_attn_count(c); i++)
    if (strcmp(nn_attn_name(c, i), name) == 0) return i;
  return -1;
}

int motion_energy(nn_ctx *c, const motion_ref *r, float scale, int want_grad, float *E) {
  if (want_grad && !nn_ctx_grad_enabled(c))
    return err_set("motion energy: a gradient was asked of a pass without gradients");
  int at[MOTION_MAX_LAYERS];
  for (int l = 0; l < r->n; l++) {
    at[l] = kept_layer(c, r->name[l]);
    if (at[l] < 0) return err_set("motion energy: layer %s of the reference was not kept", r->name[l]);
    int64_t sh[4];
    nn_attn_probs(c, at[l], sh);
    int64_t rows = sh[0] * sh[1] * sh[2];
    if (rows != r->B * r->rows[l] || sh[3] != r->nk[l])
      return err_set("motion energy: layer %s has %lld rows of %lld keys, the reference %lld of %d",
                     r->name[l], (long long)rows, (long long)sh[3],
                     (long long)(r->B * r->rows[l]), r->nk[l]);
  }
  float *dl = device_malloc(sizeof(float));
  float k = scale / (float)r->n; /* E_b = scale · mean over layers */
  for (int b = 0; b < r->B; b++) E[b] = 0.0f;
  for (int l = 0; l < r->n; l++) {
    const float *p = nn_attn_probs(c, at[l], NULL);
    float *extra = want_grad ? nn_attn_extra_grad(c, at[l]) : NULL;
    int64_t m = r->rows[l];
    int nk = r->nk[l];
    for (int b = 0; b < r->B; b++) {
      const float *pb = p + b * m * nk;
      const int32_t *ib = r->idx[l] + b * m;
      const float *vb = r->val[l] + b * m;
      op_masked_mse_fwd(dl, pb, ib, vb, m, nk);
      float lv;
      device_memcpy_d2h(&lv, dl, sizeof lv);
      E[b] += k * lv;
      if (extra) op_masked_mse_bwd(extra + b * m * nk, k, pb, ib, vb, m, nk);
    }
  }
  device_free(dl);
  return TB_OK;
}

/* The UNet on host inputs; z as a leaf (with gradient when zv_grad). */
static nn_var unet_pass(unet *u, nn_ctx *c, int B, int T, int H, int W, int L, const float *z,
                        const float *t, const float *w, const float *motion, const float *context,
                        int z_grad, nn_var *zv) {
  const unet_config *cfg = &u->cfg;
  int64_t nz = (int64_t)B * T * cfg->in_ch * H * W;
  *zv = nn_input(c, z, nz, z_grad);
  nn_var cx = nn_input(c, context, (int64_t)B * L * cfg->text_dim, 0);
  unet_input in = {.B = B, .T = T, .H = H, .W = W, .t = t, .w = w, .motion = motion,
                   .context = cx, .L = L};
  return unet_forward(u, c, *zv, &in);
}

static int names_of(const motion_ref *r, const char **names) {
  for (int l = 0; l < r->n; l++) names[l] = r->name[l];
  return r->n;
}

int motion_score(unet *u, nn_ctx *c, const motion_ref *r, float scale, int B, int T, int H, int W,
                 int L, const float *z, const float *t, const float *w, const float *motion,
                 const float *context, float *eps, float *dEdz, float *E) {
  if (r->B != B) return err_set("motion score: a reference of %d samples for %d", r->B, B);
  const char *names[MOTION_MAX_LAYERS];
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, 1);
  nn_ctx_keep_attn_only(c, names_of(r, names), names);
  nn_var zv;
  nn_var y = unet_pass(u, c, B, T, H, W, L, z, t, w, motion, context, 1, &zv);
  int64_t ny = nn_numel(c, y);
  if (eps) device_memcpy_d2h(eps, nn_data(c, y), (size_t)ny * sizeof(float));
  if (motion_energy(c, r, scale, dEdz != NULL, E) != TB_OK) return TB_ERR;
  if (!dEdz) return TB_OK;
  float *zero = xcalloc((size_t)ny, sizeof(float)); /* eps itself carries no loss */
  nn_backward(c, y, zero);
  free(zero);
  const float *g = nn_grad(c, zv);
  if (g) device_memcpy_d2h(dEdz, g, (size_t)nn_numel(c, zv) * sizeof(float));
  else memset(dEdz, 0, (size_t)nn_numel(c, zv) * sizeof(float));
  return TB_OK;
}

int motion_ref_extract(unet *u, nn_ctx *c, int n, const char *const *layers, int B, int T, int H,
                       int W, int L, const float *z_ref, const float *t, const float *w,
                       const float *motion, const float *context, motion_ref *r) {
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, 0);
  nn_ctx_keep_attn_only(c, n, layers);
  nn_var zv;
  unet_pass(u, c, B, T, H, W, L, z_ref, t, w, motion, context, 0, &zv);
  int rc = motion_ref_from_ctx(r, c, B);
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, 1);
  return rc;
}

float motion_factor(float abar_t, int tt_factor) {
  return tt_factor ? sqrtf(1.0f - sqrtf(abar_t)) : sqrtf(1.0f - abar_t);
}

/* ---- the guided solver step ------------------------------------------------------------- */

int motion_guide_first_index(const diff_schedule *s, float tau) {
  double f = (1.0 - (double)tau) * s->n_ddim;
  int n0 = (int)ceil(f - 1e-9);
  return n0 < 0 ? 0 : n0;
}

int motion_guide_active(const diff_schedule *s, const motion_guide *g, int n) {
  return g && g->m != 0.0f && g->tau > 0.0f && n >= motion_guide_first_index(s, g->tau) &&
         n < s->n_ddim;
}

/* The term on the samples with active[b], each at DDPM timestep t[b]. */
static int guide_core(unet *u, nn_ctx *c, const diff_schedule *s, const motion_guide *g, int B,
                      int T, int H, int W, int L, const float *z, const int *t,
                      const uint8_t *active, const float *ctx, float *eps, float *dEdz, float *E) {
  int64_t n = (int64_t)T * u->cfg.in_ch * H * W, nc = (int64_t)L * u->cfg.text_dim;
  if (g->ref && g->ref->B != B)
    return err_set("motion guidance: a reference of %d samples for a batch of %d", g->ref->B, B);
  float *score = dEdz ? NULL : xmalloc((size_t)n * sizeof(float));
  int rc = TB_OK;
  for (int b = 0; b < B && rc == TB_OK; b++) {
    float *sb = dEdz ? dEdz + b * n : score;
    if (E) E[b] = 0.0f;
    if (!active[b]) {
      if (dEdz) memset(sb, 0, (size_t)n * sizeof(float));
      continue;
    }
    if (!g->ref) {
      rc = err_set("motion guidance: m = %g without a reference", (double)g->m);
      break;
    }
    motion_ref rb;
    if (motion_ref_take(&rb, g->ref, b) != TB_OK) {
      rc = TB_ERR;
      break;
    }
    float tf = (float)t[b], Eb = 0.0f;
    rc = motion_score(u, c, &rb, g->scale, 1, T, H, W, L, z + b * n, &tf, NULL, NULL,
                      ctx + b * nc, NULL, sb, &Eb);
    motion_ref_free(&rb);
    if (rc != TB_OK) break;
    if (E) E[b] = Eb;
    float k = g->m * motion_factor((float)s->abar[t[b]], g->tt_factor);
    float *eb = eps + b * n;
    for (int64_t i = 0; i < n; i++) eb[i] -= k * sb[i];
  }
  free(score);
  nn_ctx_reset(c);
  return rc;
}

int motion_guide_eps(unet *u, nn_ctx *c, const diff_schedule *s, const motion_guide *g, int B,
                     int T, int H, int W, int L, const float *z, const int *idx, const float *ctx,
                     float *eps, float *dEdz, float *E) {
  int *t = xmalloc((size_t)B * sizeof(int));
  uint8_t *act = xmalloc((size_t)B);
  for (int b = 0; b < B; b++) {
    act[b] = (uint8_t)motion_guide_active(s, g, idx[b]);
    t[b] = diff_index_valid(s, idx[b]) ? s->ddim_t[idx[b]] : 0;
  }
  int rc = guide_core(u, c, s, g, B, T, H, W, L, z, t, act, ctx, eps, dEdz, E);
  free(t), free(act);
  return rc;
}

int motion_guide_eps_t(unet *u, nn_ctx *c, const diff_schedule *s, const motion_guide *g, int B,
                       int T, int H, int W, int L, const float *z, const int *t, const float *ctx,
                       float *eps, float *dEdz, float *E) {
  uint8_t *act = xmalloc((size_t)B);
  int first = motion_guide_first_index(s, g->tau);
  int t0 = first < s->n_ddim ? s->ddim_t[first] : s->T;
  for (int b = 0; b < B; b++) {
    if (t[b] < 0 || t[b] >= s->T) {
      free(act);
      return err_set("motion guidance: timestep %d outside [0, %d)", t[b], s->T);
    }
    act[b] = (uint8_t)(g->m != 0.0f && g->tau > 0.0f && t[b] >= t0);
  }
  int rc = guide_core(u, c, s, g, B, T, H, W, L, z, t, act, ctx, eps, dEdz, E);
  free(act);
  return rc;
}

void motion_guide_apply_score(const diff_schedule *s, const motion_guide *g, int B, int64_t n,
                              const int *idx, const float *score, float *eps) {
  for (int b = 0; b < B; b++) {
    if (!motion_guide_active(s, g, idx[b])) continue;
    float k = g->m * motion_factor((float)s->abar[s->ddim_t[idx[b]]], g->tt_factor);
    for (int64_t i = 0; i < n; i++) eps[b * n + i] -= k * score[b * n + i];
  }
}

/* ---- the per-clip precompute ------------------------------------------------------------- */

/* eps = unet(z, t, ctx) for one sample, no gradient, into host out. */
static void forward_nograd(unet *u, nn_ctx *c, int T, int H, int W, int L, const float *z, int t,
                           const float *ctx, float *out) {
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, 0);
  nn_ctx_keep_attn(c, 0);
  float tf = (float)t;
  nn_var zv;
  nn_var y = unet_pass(u, c, 1, T, H, W, L, z, &tf, NULL, NULL, ctx, 0, &zv);
  device_memcpy_d2h(out, nn_data(c, y), (size_t)nn_numel(c, y) * sizeof(float));
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, 1);
}

int motion_precompute(unet *u, nn_ctx *c, const diff_schedule *s, int T, int H, int W, int L,
                      const float *z0, const float *ctx, const float *null_ctx,
                      const float *noise, int index, int inv_steps, int n,
                      const char *const *layers, float scale, motion_record *out) {
  if (!diff_index_valid(s, index))
    return err_set("motion precompute: solver index %d outside [0, %d)", index, s->n_ddim);
  if (inv_steps < 1) return err_set("motion precompute: %d inversion steps (>= 1)", inv_steps);
  if (n < 1) return err_set("motion precompute: no layers to read");
  int64_t nz = (int64_t)T * u->cfg.in_ch * H * W;
  int t = s->ddim_t[index];
  if (inv_steps > t) inv_steps = t; /* a step per timestep at most */
  out->index = index;
  out->forwards = 0;
  memset(&out->ref, 0, sizeof out->ref);
  /* DDIM inversion on the coarse grid 0 = t_0 < t_1 < ... < t_K = t (ddim_reverse_step's
   * formula with the previous point t_{k-1}; abar[0] stands for the clean latent) */
  float *x = xmalloc((size_t)nz * sizeof(float)), *e = xmalloc((size_t)nz * sizeof(float));
  memcpy(x, z0, (size_t)nz * sizeof(float));
  int tp = 0;
  for (int k = 1; k <= inv_steps; k++) {
    int tk = (int)lround((double)t * k / inv_steps);
    if (tk <= tp) continue;
    forward_nograd(u, c, T, H, W, L, x, tk, ctx, e);
    out->forwards++;
    double ap = sqrt(s->abar[tp]), sp = sqrt(1.0 - s->abar[tp]);
    double ak = sqrt(s->abar[tk]), sk = sqrt(1.0 - s->abar[tk]);
    for (int64_t i = 0; i < nz; i++)
      x[i] = (float)((x[i] - sp * e[i]) * (ak / ap) + sk * e[i]);
    tp = tk;
  }
  if (out->z_example) memcpy(out->z_example, x, (size_t)nz * sizeof(float));
  float tf = (float)t;
  int rc = motion_ref_extract(u, c, n, layers, 1, T, H, W, L, x, &tf, NULL, NULL, ctx, &out->ref);
  out->forwards++;
  /* z_t from one noise draw, the unconditional eps, then eps_c and the score in one pass */
  double a = sqrt(s->abar[t]), sg = sqrt(1.0 - s->abar[t]);
  for (int64_t i = 0; i < nz; i++) out->z_t[i] = (float)(a * z0[i] + sg * noise[i]);
  if (rc == TB_OK) {
    forward_nograd(u, c, T, H, W, L, out->z_t, t, null_ctx, out->eps_u);
    out->forwards++;
    rc = motion_score(u, c, &out->ref, scale, 1, T, H, W, L, out->z_t, &tf, NULL, NULL, ctx,
                      out->eps_c, out->score, &out->E);
    out->forwards += 3;
  }
  nn_ctx_reset(c);
  free(x), free(e);
  if (rc != TB_OK) motion_ref_free(&out->ref);
  return rc;
}

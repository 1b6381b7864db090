/* kernels/nn/vae.c — the frame VAE (kernels/nn/vae.h): LDM's AutoencoderKL built from tape ops.
 *
 * Parameters, under LDM's names (ldm/modules/diffusionmodules/model.py), L = n_levels,
 * C_l = ch · ch_mult[l]:
 *   encoder.conv_in                              3×3, in_ch → C_0
 *   encoder.down.l.block.j.{norm1, conv1, norm2, conv2, nin_shortcut}
 *                                                ResBlock (j < n_res); nin_shortcut (1×1) when
 *                                                the channels change
 *   encoder.down.l.downsample.conv               3×3 stride 2 after padding (0, 1, 0, 1), l < L-1
 *   encoder.mid.{block_1, attn_1, block_2}       attn_1.{norm, q, k, v, proj_out}: single-head
 *                                                self-attention over the h·w positions, q/k/v/
 *                                                proj_out stored as 1×1 convs (C, C, 1, 1)
 *   encoder.norm_out, encoder.conv_out           GN, SiLU, 3×3 → 2·z_ch (mean, log-variance)
 *   quant_conv (2z, 2z, 1, 1), post_quant_conv (z, z, 1, 1)
 *   decoder.conv_in                              3×3, z_ch → C_{L-1}
 *   decoder.mid.{block_1, attn_1, block_2}
 *   decoder.up.l.block.j                         n_res + 1 ResBlocks at level l (run from
 *                                                l = L-1 down to 0)
 *   decoder.up.l.upsample.conv                   nearest ×2 then 3×3, l > 0
 *   decoder.norm_out, decoder.conv_out           GN, SiLU, 3×3 → in_ch
 * GroupNorm eps 1e-6 everywhere, as LDM's Normalize; the log-variance is clamped to [-30, 20]
 * as DiagonalGaussianDistribution does.
 *
 * vae_tensor_map translates diffusers' AutoencoderKL names (down_blocks / up_blocks (reversed
 * levels) / mid_block / resnets / attentions.0.{group_norm, to_q, to_k, to_v, to_out.0} /
 * conv_shortcut / downsamplers.0.conv / upsamplers.0.conv / conv_norm_out) to these.
 */
#include "kernels/nn/vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "common/tensor.h"
#include "kernels/device.h"
#include "kernels/nn/nn_internal.h"
#include "kernels/ops.h"

#define VAE_GN_EPS 1e-6f
#define VAE_LOGVAR_MIN -30.0f /* DiagonalGaussianDistribution's clamp */
#define VAE_LOGVAR_MAX 20.0f
#define VAE_FORMAT "turbo.vae.v1"
#define VAE_CHUNK 4 /* frames per pass in the host helpers (bounds activation memory) */

/* parameter indexes of a ResBlock and an attention block */
enum { RB_N1W, RB_N1B, RB_C1W, RB_C1B, RB_N2W, RB_N2B, RB_C2W, RB_C2B, RB_SKW, RB_SKB, RB_N };
enum { AT_NW, AT_NB, AT_QW, AT_QB, AT_KW, AT_KB, AT_VW, AT_VB, AT_OW, AT_OB, AT_N };

typedef struct {
  int cin, cout;
  int p[RB_N];
} vae_res;

typedef struct {
  int C;
  int p[AT_N];
} vae_attn;

#define VAE_MAX_RES 8 /* ResBlocks per level */

struct vae_impl {
  /* encoder */
  int e_conv_in[2];
  vae_res e_res[VAE_MAX_LEVELS][VAE_MAX_RES];
  int e_down[VAE_MAX_LEVELS][2];
  vae_res e_mid1, e_mid2;
  vae_attn e_attn;
  int e_norm[2], e_conv_out[2];
  int quant[2], post_quant[2];
  /* decoder */
  int d_conv_in[2];
  vae_res d_mid1, d_mid2;
  vae_attn d_attn;
  vae_res d_res[VAE_MAX_LEVELS][VAE_MAX_RES + 1];
  int d_up[VAE_MAX_LEVELS][2];
  int d_norm[2], d_conv_out[2];
};

vae_config vae_config_default(void) {
  vae_config c;
  memset(&c, 0, sizeof c);
  c.in_ch = 3;
  c.z_ch = 4;
  c.ch = 16;
  c.n_levels = 3;
  c.ch_mult[0] = 1, c.ch_mult[1] = 2, c.ch_mult[2] = 4;
  c.n_res = 1;
  c.groups = 8;
  c.mid_attn = 1;
  c.scale = 1.0f;
  return c;
}

static int cfg_check(const vae_config *c) {
  if (c->in_ch < 1 || c->z_ch < 1 || c->ch < 1 || c->groups < 1)
    return err_set("vae config: in_ch %d, z_ch %d, ch %d, groups %d must all be >= 1", c->in_ch,
                   c->z_ch, c->ch, c->groups);
  if (c->n_levels < 1 || c->n_levels > VAE_MAX_LEVELS)
    return err_set("vae config: n_levels %d outside [1, %d]", c->n_levels, VAE_MAX_LEVELS);
  if (c->n_res < 1 || c->n_res > VAE_MAX_RES)
    return err_set("vae config: n_res %d outside [1, %d]", c->n_res, VAE_MAX_RES);
  for (int l = 0; l < c->n_levels; l++) {
    if (c->ch_mult[l] < 1) return err_set("vae config: ch_mult[%d] = %d", l, c->ch_mult[l]);
    if ((c->ch * c->ch_mult[l]) % c->groups)
      return err_set("vae config: level %d has %d channels, not a multiple of groups %d", l,
                     c->ch * c->ch_mult[l], c->groups);
  }
  if (!(c->scale > 0.0f) || !isfinite(c->scale))
    return err_set("vae config: scale %g must be positive and finite", (double)c->scale);
  return TB_OK;
}

int vae_factor(const vae *v) { return 1 << (v->cfg.n_levels - 1); }

/* ---- registration ---------------------------------------------------------------------------- */

static int reg(vae *v, const char *prefix, const char *name, int ndim, int64_t a, int64_t b,
               int64_t k, nn_init_kind init, int64_t fan_in, int64_t fan_out) {
  char full[2 * NN_NAME_MAX];
  int len = snprintf(full, sizeof full, "%s.%s", prefix, name);
  TB_CHECKF(len > 0 && len < NN_NAME_MAX, "parameter name too long: %s", full);
  int64_t sh[4] = {a, b, k, k};
  return nn_params_add(&v->params, full, ndim, sh, init, fan_in, fan_out);
}
static int reg_vec(vae *v, const char *pfx, const char *nm, int64_t n, nn_init_kind init) {
  return reg(v, pfx, nm, 1, n, 0, 0, init, 1, 1);
}
static void reg_conv(vae *v, const char *pfx, int cout, int cin, int k, int *w, int *b) {
  *w = reg(v, pfx, "weight", 4, cout, cin, k, NN_INIT_KAIMING, (int64_t)cin * k * k,
           (int64_t)cout * k * k);
  *b = reg(v, pfx, "bias", 1, cout, 0, 0, NN_INIT_ZERO, 1, 1);
}
static void reg_norm(vae *v, const char *pfx, int C, int *w, int *b) {
  *w = reg_vec(v, pfx, "weight", C, NN_INIT_ONE);
  *b = reg_vec(v, pfx, "bias", C, NN_INIT_ZERO);
}

static void reg_res(vae *v, const char *pfx, int cin, int cout, vae_res *r) {
  char p[NN_NAME_MAX];
  r->cin = cin, r->cout = cout;
  snprintf(p, sizeof p, "%s.norm1", pfx);
  reg_norm(v, p, cin, &r->p[RB_N1W], &r->p[RB_N1B]);
  snprintf(p, sizeof p, "%s.conv1", pfx);
  reg_conv(v, p, cout, cin, 3, &r->p[RB_C1W], &r->p[RB_C1B]);
  snprintf(p, sizeof p, "%s.norm2", pfx);
  reg_norm(v, p, cout, &r->p[RB_N2W], &r->p[RB_N2B]);
  snprintf(p, sizeof p, "%s.conv2", pfx);
  reg_conv(v, p, cout, cout, 3, &r->p[RB_C2W], &r->p[RB_C2B]);
  r->p[RB_SKW] = r->p[RB_SKB] = -1;
  if (cin != cout) {
    snprintf(p, sizeof p, "%s.nin_shortcut", pfx);
    reg_conv(v, p, cout, cin, 1, &r->p[RB_SKW], &r->p[RB_SKB]);
  }
}

static void reg_attn(vae *v, const char *pfx, int C, vae_attn *a) {
  static const char *nm[4] = {"q", "k", "v", "proj_out"};
  char p[NN_NAME_MAX];
  a->C = C;
  snprintf(p, sizeof p, "%s.norm", pfx);
  reg_norm(v, p, C, &a->p[AT_NW], &a->p[AT_NB]);
  for (int i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s.%s", pfx, nm[i]);
    /* 1×1 convs in LDM's checkpoints; used as linear maps over the positions' channels */
    a->p[AT_QW + 2 * i] = reg(v, p, "weight", 4, C, C, 1, NN_INIT_KAIMING, C, C);
    a->p[AT_QB + 2 * i] = reg(v, p, "bias", 1, C, 0, 0, NN_INIT_ZERO, 1, 1);
  }
}

int vae_create(vae *v, const vae_config *cfg) {
  memset(v, 0, sizeof *v);
  if (cfg_check(cfg) != TB_OK) return TB_ERR;
  v->cfg = *cfg;
  nn_params_init_empty(&v->params);
  vae_impl *m = xcalloc(1, sizeof *m);
  v->impl = m;
  const vae_config *c = cfg;
  int L = c->n_levels, top = c->ch * c->ch_mult[L - 1];
  char p[NN_NAME_MAX];
  /* encoder */
  reg_conv(v, "encoder.conv_in", c->ch, c->in_ch, 3, &m->e_conv_in[0], &m->e_conv_in[1]);
  int cin = c->ch;
  for (int l = 0; l < L; l++) {
    int cout = c->ch * c->ch_mult[l];
    for (int j = 0; j < c->n_res; j++) {
      snprintf(p, sizeof p, "encoder.down.%d.block.%d", l, j);
      reg_res(v, p, cin, cout, &m->e_res[l][j]);
      cin = cout;
    }
    if (l < L - 1) {
      snprintf(p, sizeof p, "encoder.down.%d.downsample.conv", l);
      reg_conv(v, p, cin, cin, 3, &m->e_down[l][0], &m->e_down[l][1]);
    }
  }
  reg_res(v, "encoder.mid.block_1", top, top, &m->e_mid1);
  if (c->mid_attn) reg_attn(v, "encoder.mid.attn_1", top, &m->e_attn);
  reg_res(v, "encoder.mid.block_2", top, top, &m->e_mid2);
  reg_norm(v, "encoder.norm_out", top, &m->e_norm[0], &m->e_norm[1]);
  reg_conv(v, "encoder.conv_out", 2 * c->z_ch, top, 3, &m->e_conv_out[0], &m->e_conv_out[1]);
  reg_conv(v, "quant_conv", 2 * c->z_ch, 2 * c->z_ch, 1, &m->quant[0], &m->quant[1]);
  reg_conv(v, "post_quant_conv", c->z_ch, c->z_ch, 1, &m->post_quant[0], &m->post_quant[1]);
  /* decoder */
  reg_conv(v, "decoder.conv_in", top, c->z_ch, 3, &m->d_conv_in[0], &m->d_conv_in[1]);
  reg_res(v, "decoder.mid.block_1", top, top, &m->d_mid1);
  if (c->mid_attn) reg_attn(v, "decoder.mid.attn_1", top, &m->d_attn);
  reg_res(v, "decoder.mid.block_2", top, top, &m->d_mid2);
  cin = top;
  for (int l = L - 1; l >= 0; l--) {
    int cout = c->ch * c->ch_mult[l];
    for (int j = 0; j <= c->n_res; j++) {
      snprintf(p, sizeof p, "decoder.up.%d.block.%d", l, j);
      reg_res(v, p, cin, cout, &m->d_res[l][j]);
      cin = cout;
    }
    if (l > 0) {
      snprintf(p, sizeof p, "decoder.up.%d.upsample.conv", l);
      reg_conv(v, p, cin, cin, 3, &m->d_up[l][0], &m->d_up[l][1]);
    }
  }
  reg_norm(v, "decoder.norm_out", c->ch, &m->d_norm[0], &m->d_norm[1]);
  reg_conv(v, "decoder.conv_out", c->in_ch, c->ch, 3, &m->d_conv_out[0], &m->d_conv_out[1]);
  nn_params_alloc(&v->params);
  return TB_OK;
}

void vae_init_weights(vae *v, uint64_t seed) { nn_params_init(&v->params, seed, 1); }

void vae_freeze(vae *v) {
  nn_params_freeze(&v->params);
  v->frozen = 1;
}

void vae_free(vae *v) {
  if (!v) return;
  nn_params_free(&v->params);
  free(v->impl);
  memset(v, 0, sizeof *v);
}

/* ---- forward ----------------------------------------------------------------------------------- */

static nn_var P(vae *v, nn_ctx *c, int idx) { return nn_param_var(c, &v->params, idx, v->frozen); }

static nn_var conv(vae *v, nn_ctx *c, nn_var x, const int *wb, int64_t N, int64_t Ci, int64_t H,
                   int64_t W, int64_t Co, int k, int s, int pad) {
  return nn_conv2d(c, x, P(v, c, wb[0]), P(v, c, wb[1]), N, Ci, H, W, Co, k, s, pad);
}

static nn_var gn(vae *v, nn_ctx *c, nn_var x, int w, int b, int64_t N, int64_t C, int64_t S,
                 int silu) {
  return nn_group_norm(c, x, P(v, c, w), P(v, c, b), N, 1, C, S, v->cfg.groups, VAE_GN_EPS, silu);
}

/* LDM's ResnetBlock: h = conv2(silu(gn2(conv1(silu(gn1(x)))))); out = shortcut(x) + h */
static nn_var res_fwd(vae *v, nn_ctx *c, const vae_res *r, nn_var x, int64_t N, int64_t H,
                      int64_t W) {
  const int *p = r->p;
  int64_t S = H * W;
  nn_var h = gn(v, c, x, p[RB_N1W], p[RB_N1B], N, r->cin, S, 1);
  h = conv(v, c, h, &p[RB_C1W], N, r->cin, H, W, r->cout, 3, 1, 1);
  h = gn(v, c, h, p[RB_N2W], p[RB_N2B], N, r->cout, S, 1);
  h = conv(v, c, h, &p[RB_C2W], N, r->cout, H, W, r->cout, 3, 1, 1);
  nn_var sk = x;
  if (p[RB_SKW] >= 0) sk = conv(v, c, x, &p[RB_SKW], N, r->cin, H, W, r->cout, 1, 1, 0);
  return nn_add(c, sk, h);
}

/* LDM's AttnBlock: single-head attention over the H·W positions, x + proj_out(attn(norm(x))) */
static nn_var attn_fwd(vae *v, nn_ctx *c, const vae_attn *a, nn_var x, int64_t N, int64_t H,
                       int64_t W) {
  const int *p = a->p;
  int64_t C = a->C, S = H * W;
  nn_var h = gn(v, c, x, p[AT_NW], p[AT_NB], N, C, S, 0);
  int64_t d1[4] = {N, C, S, 1};
  int to_tokens[4] = {0, 2, 1, 3};
  nn_var t = nn_permute4(c, h, d1, to_tokens); /* (N, S, C) */
  nn_var q = nn_linear(c, t, P(v, c, p[AT_QW]), P(v, c, p[AT_QB]), N * S, C, C);
  nn_var k = nn_linear(c, t, P(v, c, p[AT_KW]), P(v, c, p[AT_KB]), N * S, C, C);
  nn_var vv = nn_linear(c, t, P(v, c, p[AT_VW]), P(v, c, p[AT_VB]), N * S, C, C);
  nn_var o = nn_attention(c, q, k, vv, N, S, S, C, 1, NULL);
  o = nn_linear(c, o, P(v, c, p[AT_OW]), P(v, c, p[AT_OB]), N * S, C, C);
  int64_t d2[4] = {N, S, C, 1};
  nn_var back = nn_permute4(c, o, d2, to_tokens); /* (N, C, S) */
  return nn_add(c, x, back);
}

void vae_encode(vae *v, nn_ctx *c, nn_var x, int N, int H, int W, nn_var *mean, nn_var *logvar) {
  const vae_config *cf = &v->cfg;
  const vae_impl *m = v->impl;
  int f = vae_factor(v);
  TB_CHECKF(H % f == 0 && W % f == 0 && N >= 1, "vae_encode: %dx%d frames are not a multiple of "
            "the factor %d", H, W, f);
  TB_CHECKF(nn_numel(c, x) == (int64_t)N * cf->in_ch * H * W, "vae_encode: x has %lld values, "
            "not N x %d x %d x %d", (long long)nn_numel(c, x), cf->in_ch, H, W);
  int64_t h = H, w = W;
  nn_var y = conv(v, c, x, m->e_conv_in, N, cf->in_ch, h, w, cf->ch, 3, 1, 1);
  int C = cf->ch;
  for (int l = 0; l < cf->n_levels; l++) {
    for (int j = 0; j < cf->n_res; j++) {
      y = res_fwd(v, c, &m->e_res[l][j], y, N, h, w);
      C = m->e_res[l][j].cout;
    }
    if (l < cf->n_levels - 1) { /* pad right and bottom by one, 3×3 stride 2 without padding */
      y = nn_pad2d(c, y, N, C, h, w, 0, 1, 0, 1);
      y = conv(v, c, y, m->e_down[l], N, C, h + 1, w + 1, C, 3, 2, 0);
      h /= 2, w /= 2;
    }
  }
  y = res_fwd(v, c, &m->e_mid1, y, N, h, w);
  if (cf->mid_attn) y = attn_fwd(v, c, &m->e_attn, y, N, h, w);
  y = res_fwd(v, c, &m->e_mid2, y, N, h, w);
  y = gn(v, c, y, m->e_norm[0], m->e_norm[1], N, C, h * w, 1);
  int Z = cf->z_ch;
  y = conv(v, c, y, m->e_conv_out, N, C, h, w, 2 * Z, 3, 1, 1);
  y = conv(v, c, y, m->quant, N, 2 * Z, h, w, 2 * Z, 1, 1, 0);
  *mean = nn_chan_slice(c, y, N, 2 * Z, h * w, 0, Z);
  nn_var lv = nn_chan_slice(c, y, N, 2 * Z, h * w, Z, Z);
  *logvar = nn_clamp(c, lv, VAE_LOGVAR_MIN, VAE_LOGVAR_MAX);
}

nn_var vae_decode(vae *v, nn_ctx *c, nn_var z, int N, int h, int w) {
  const vae_config *cf = &v->cfg;
  const vae_impl *m = v->impl;
  int L = cf->n_levels, Z = cf->z_ch, top = cf->ch * cf->ch_mult[L - 1];
  TB_CHECKF(nn_numel(c, z) == (int64_t)N * Z * h * w, "vae_decode: z has %lld values, not N x %d "
            "x %d x %d", (long long)nn_numel(c, z), Z, h, w);
  int64_t H = h, W = w;
  nn_var y = conv(v, c, z, m->post_quant, N, Z, H, W, Z, 1, 1, 0);
  y = conv(v, c, y, m->d_conv_in, N, Z, H, W, top, 3, 1, 1);
  y = res_fwd(v, c, &m->d_mid1, y, N, H, W);
  if (cf->mid_attn) y = attn_fwd(v, c, &m->d_attn, y, N, H, W);
  y = res_fwd(v, c, &m->d_mid2, y, N, H, W);
  int C = top;
  for (int l = L - 1; l >= 0; l--) {
    for (int j = 0; j <= cf->n_res; j++) {
      y = res_fwd(v, c, &m->d_res[l][j], y, N, H, W);
      C = m->d_res[l][j].cout;
    }
    if (l > 0) {
      y = nn_upsample2(c, y, N, C, H, W);
      H *= 2, W *= 2;
      y = conv(v, c, y, m->d_up[l], N, C, H, W, C, 3, 1, 1);
    }
  }
  y = gn(v, c, y, m->d_norm[0], m->d_norm[1], N, C, H * W, 1);
  return conv(v, c, y, m->d_conv_out, N, C, H, W, cf->in_ch, 3, 1, 1);
}

/* ---- host helpers ---------------------------------------------------------------------------- */

/* splitmix64-driven standard normals (Box-Muller), the same stream on every backend */
static uint64_t sm64(uint64_t *s) { return hash_mix64(*s += 0x9E3779B97F4A7C15ull); }
static void normals(uint64_t *s, float *out, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    double u1 = ((double)(sm64(s) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(sm64(s) >> 11) * (1.0 / 9007199254740992.0);
    out[i] = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
  }
}

void vae_noise(uint64_t seed, float *out, int64_t n) {
  uint64_t s = seed;
  normals(&s, out, n);
}

int vae_encode_frames(vae *v, nn_ctx *c, const uint8_t *rgb, int N, int H, int W, uint64_t seed,
                      float *z) {
  int f = vae_factor(v), Z = v->cfg.z_ch;
  if (N < 1 || H < f || W < f || H % f || W % f)
    return err_set("vae_encode_frames: %d frames of %dx%d (need N >= 1 and sides that are "
                   "multiples of %d)", N, H, W, f);
  if (v->cfg.in_ch != 3) return err_set("vae_encode_frames: the VAE reads %d channels, not RGB",
                                        v->cfg.in_ch);
  int h = H / f, w = W / f;
  int64_t per = (int64_t)3 * H * W, zper = (int64_t)Z * h * w;
  float *x = xmalloc(sizeof(float) * (size_t)(per * VAE_CHUNK));
  float *mean = xmalloc(sizeof(float) * (size_t)(zper * VAE_CHUNK));
  float *lv = xmalloc(sizeof(float) * (size_t)(zper * VAE_CHUNK));
  float *eps = seed ? xmalloc(sizeof(float) * (size_t)(zper * N)) : NULL;
  if (eps) vae_noise(seed, eps, zper * N); /* one stream for the whole call: chunking-free */
  int grad = nn_ctx_grad_enabled(c);
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, 0);
  for (int n0 = 0; n0 < N; n0 += VAE_CHUNK) {
    int nb = N - n0 < VAE_CHUNK ? N - n0 : VAE_CHUNK;
    /* (nb, H, W, 3) u8 → (nb, 3, H, W) in [-1, 1] */
    for (int i = 0; i < nb; i++)
      for (int ch = 0; ch < 3; ch++)
        for (int64_t p = 0; p < (int64_t)H * W; p++)
          x[(size_t)i * per + (size_t)ch * H * W + p] =
              rgb[((size_t)(n0 + i) * H * W + p) * 3 + ch] * (2.0f / 255.0f) - 1.0f;
    nn_ctx_reset(c);
    nn_var xin = nn_input(c, x, per * nb, 0), mv, lvv;
    vae_encode(v, c, xin, nb, H, W, &mv, &lvv);
    device_memcpy_d2h(mean, nn_data(c, mv), sizeof(float) * (size_t)(zper * nb));
    device_memcpy_d2h(lv, nn_data(c, lvv), sizeof(float) * (size_t)(zper * nb));
    for (int64_t i = 0; i < zper * nb; i++) {
      float u = mean[i];
      if (eps) u += expf(0.5f * lv[i]) * eps[zper * n0 + i];
      z[zper * n0 + i] = v->cfg.scale * u;
    }
  }
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, grad);
  free(x);
  free(mean);
  free(lv);
  free(eps);
  return TB_OK;
}

int vae_decode_latents(vae *v, nn_ctx *c, const float *z, int N, int h, int w, float *rgb01) {
  int f = vae_factor(v), Z = v->cfg.z_ch, C = v->cfg.in_ch;
  if (N < 1 || h < 1 || w < 1)
    return err_set("vae_decode_latents: %d latents of %dx%d", N, h, w);
  int64_t zper = (int64_t)Z * h * w, per = (int64_t)C * h * f * w * f;
  float *zs = xmalloc(sizeof(float) * (size_t)(zper * VAE_CHUNK));
  int grad = nn_ctx_grad_enabled(c);
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, 0);
  for (int n0 = 0; n0 < N; n0 += VAE_CHUNK) {
    int nb = N - n0 < VAE_CHUNK ? N - n0 : VAE_CHUNK;
    for (int64_t i = 0; i < zper * nb; i++) zs[i] = z[zper * n0 + i] / v->cfg.scale;
    nn_ctx_reset(c);
    nn_var y = vae_decode(v, c, nn_input(c, zs, zper * nb, 0), nb, h, w);
    float *out = rgb01 + per * n0;
    device_memcpy_d2h(out, nn_data(c, y), sizeof(float) * (size_t)(per * nb));
    for (int64_t i = 0; i < per * nb; i++) {
      float u = out[i] * 0.5f + 0.5f;
      out[i] = u < 0.0f ? 0.0f : u > 1.0f ? 1.0f : u;
    }
  }
  nn_ctx_reset(c);
  nn_ctx_set_grad(c, grad);
  free(zs);
  return TB_OK;
}

int vae_measure_scale(vae *v, nn_ctx *c, const uint8_t *rgb, int N, int H, int W, uint64_t seed,
                      float *scale) {
  int f = vae_factor(v);
  int64_t n = (int64_t)N * v->cfg.z_ch * (H / f) * (W / f);
  float *z = xmalloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
  float keep = v->cfg.scale;
  v->cfg.scale = 1.0f;
  int rc = vae_encode_frames(v, c, rgb, N, H, W, seed, z);
  v->cfg.scale = keep;
  if (rc == TB_OK) {
    /* LDM's scale_by_std: 1 / std of the flattened latents (torch's unbiased std) */
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) s += z[i];
    double mu = s / (double)n;
    for (int64_t i = 0; i < n; i++) ss += ((double)z[i] - mu) * ((double)z[i] - mu);
    double sd = n > 1 ? sqrt(ss / (double)(n - 1)) : 0.0;
    if (!(sd > 1e-12) || !isfinite(sd))
      rc = err_set("vae_measure_scale: the latents' std is %g: nothing to scale by", sd);
    else *scale = (float)(1.0 / sd);
  }
  free(z);
  return rc;
}

/* ---- checkpoints ----------------------------------------------------------------------------- */

char *vae_config_format(const vae_config *c) {
  json_buf b;
  memset(&b, 0, sizeof b);
  json_buf_printf(&b, "{\"in_ch\":%d,\"z_ch\":%d,\"ch\":%d,\"n_levels\":%d,\"ch_mult\":[", c->in_ch,
                  c->z_ch, c->ch, c->n_levels);
  for (int l = 0; l < c->n_levels; l++) json_buf_printf(&b, "%s%d", l ? "," : "", c->ch_mult[l]);
  json_buf_printf(&b, "],\"n_res\":%d,\"groups\":%d,\"mid_attn\":%d,\"scale\":%.9g}", c->n_res,
                  c->groups, c->mid_attn, (double)c->scale);
  json_buf_append(&b, "", 1);
  return b.data;
}

int vae_config_parse(vae_config *c, const char *text) {
  memset(c, 0, sizeof *c);
  json_value *j = json_parse(text, strlen(text), NULL);
  if (!j) return err_wrap("vae.config: ");
  int64_t in_ch, z_ch, ch, nl, nres, groups, attn;
  double scale;
  int rc = TB_OK;
  if (json_get_int64(j, "in_ch", &in_ch) != TB_OK || json_get_int64(j, "z_ch", &z_ch) != TB_OK ||
      json_get_int64(j, "ch", &ch) != TB_OK || json_get_int64(j, "n_levels", &nl) != TB_OK ||
      json_get_int64(j, "n_res", &nres) != TB_OK || json_get_int64(j, "groups", &groups) != TB_OK ||
      json_get_int64(j, "mid_attn", &attn) != TB_OK || json_get_number(j, "scale", &scale) != TB_OK)
    rc = err_wrap("vae.config: ");
  const json_value *mult = rc == TB_OK ? json_get(j, "ch_mult") : NULL;
  if (rc == TB_OK && (nl < 1 || nl > VAE_MAX_LEVELS))
    rc = err_set("vae.config: n_levels %lld outside [1, %d]", (long long)nl, VAE_MAX_LEVELS);
  if (rc == TB_OK) {
    for (int l = 0; l < nl && rc == TB_OK; l++) {
      const json_value *e = mult ? json_at(mult, (size_t)l) : NULL;
      if (!e || e->type != JSON_NUMBER)
        rc = err_set("vae.config: ch_mult needs %lld numbers", (long long)nl);
      else c->ch_mult[l] = (int)e->number;
    }
  }
  json_free(j);
  if (rc != TB_OK) return rc;
  c->in_ch = (int)in_ch, c->z_ch = (int)z_ch, c->ch = (int)ch, c->n_levels = (int)nl;
  c->n_res = (int)nres, c->groups = (int)groups, c->mid_attn = (int)attn, c->scale = (float)scale;
  return cfg_check(c) == TB_OK ? TB_OK : err_wrap("vae.config: ");
}

int vae_save_meta(const vae *v, const char *path, int nmeta, const char *const *meta) {
  const nn_params *p = &v->params;
  float *host = xmalloc(sizeof(float) * (size_t)(p->total ? p->total : 1));
  device_memcpy_d2h(host, p->data, sizeof(float) * (size_t)p->total);
  safetensors_writer *w = safetensors_writer_new();
  int rc = TB_OK;
  for (int i = 0; i < p->n && rc == TB_OK; i++) {
    tensor t = tensor_view(DTYPE_F32, p->info[i].ndim, p->info[i].shape, host + p->info[i].offset);
    rc = safetensors_writer_add_ref(w, p->info[i].name, &t);
  }
  char *cj = vae_config_format(&v->cfg);
  safetensors_writer_set_meta(w, "format", VAE_FORMAT);
  safetensors_writer_set_meta(w, "vae.config", cj);
  for (int i = 0; i + 1 < 2 * nmeta; i += 2) safetensors_writer_set_meta(w, meta[i], meta[i + 1]);
  if (rc == TB_OK) rc = safetensors_writer_save(w, path);
  free(cj);
  safetensors_writer_free(w);
  free(host);
  return rc == TB_OK ? TB_OK : err_wrap("saving the VAE to %s: ", path);
}

int vae_save(const vae *v, const char *path) { return vae_save_meta(v, path, 0, NULL); }

int vae_load(vae *v, const char *path) {
  memset(v, 0, sizeof *v);
  safetensors_file *f = NULL;
  if (safetensors_open(path, &f) != TB_OK) return TB_ERR;
  const char *cj = safetensors_meta_get(f, "vae.config");
  vae_config cfg;
  int rc = cj ? vae_config_parse(&cfg, cj)
              : err_set("%s: not a turbo VAE checkpoint (no vae.config metadata; a diffusers or "
                        "LDM file loads through vae_tensor_map)", path);
  safetensors_close(f);
  if (rc == TB_OK) rc = vae_create(v, &cfg);
  if (rc == TB_OK) rc = nn_params_load_registered(&v->params, path);
  if (rc != TB_OK) {
    vae_free(v);
    return err_wrap("%s: ", path);
  }
  return TB_OK;
}

/* ---- other families' names --------------------------------------------------------------------- */

/* a checkpoint name into a buffer; names never come near its size */
#define NAMEF(buf, ...) TB_CHECK(snprintf(buf, sizeof buf, __VA_ARGS__) < (int)sizeof buf)

static void map_res(nn_tensor_map *m, const char *from, const char *to, int shortcut) {
  static const char *k[][2] = {{"norm1", "norm1"}, {"conv1", "conv1"}, {"norm2", "norm2"},
                               {"conv2", "conv2"}, {"conv_shortcut", "nin_shortcut"}};
  char a[3 * NN_NAME_MAX], b[3 * NN_NAME_MAX];
  for (int i = 0; i < (shortcut ? 5 : 4); i++)
    for (int wb = 0; wb < 2; wb++) {
      const char *s = wb ? "bias" : "weight";
      NAMEF(a, "%s.%s.%s", from, k[i][0], s);
      NAMEF(b, "%s.%s.%s", to, k[i][1], s);
      nn_tensor_map_add(m, a, b, NN_SRC_SAME, 0);
    }
}
static void map_pair(nn_tensor_map *m, const char *from, const char *to) {
  char a[3 * NN_NAME_MAX], b[3 * NN_NAME_MAX];
  for (int wb = 0; wb < 2; wb++) {
    const char *s = wb ? "bias" : "weight";
    NAMEF(a, "%s.%s", from, s);
    NAMEF(b, "%s.%s", to, s);
    nn_tensor_map_add(m, a, b, NN_SRC_SAME, 0);
  }
}
static void map_attn(nn_tensor_map *m, const char *from, const char *to) {
  static const char *k[][2] = {{"group_norm", "norm"}, {"to_q", "q"}, {"to_k", "k"},
                               {"to_v", "v"}, {"to_out.0", "proj_out"}};
  char a[3 * NN_NAME_MAX], b[3 * NN_NAME_MAX];
  for (int i = 0; i < 5; i++) {
    NAMEF(a, "%s.%s", from, k[i][0]);
    NAMEF(b, "%s.%s", to, k[i][1]);
    map_pair(m, a, b); /* to_q (C, C) fills q (C, C, 1, 1): trailing 1-dims may differ */
  }
}

int vae_tensor_map(const vae *v, vae_family fam, nn_tensor_map *m) {
  nn_tensor_map_init(m);
  if (fam == VAE_FAMILY_LDM) return TB_OK; /* turbo's names are LDM's */
  if (fam != VAE_FAMILY_DIFFUSERS) return err_set("vae_tensor_map: unknown family %d", (int)fam);
  const vae_config *c = &v->cfg;
  const vae_impl *im = v->impl;
  int L = c->n_levels;
  char a[3 * NN_NAME_MAX], b[3 * NN_NAME_MAX];
  map_pair(m, "encoder.conv_in", "encoder.conv_in");
  for (int l = 0; l < L; l++) {
    for (int j = 0; j < c->n_res; j++) {
      NAMEF(a, "encoder.down_blocks.%d.resnets.%d", l, j);
      NAMEF(b, "encoder.down.%d.block.%d", l, j);
      map_res(m, a, b, im->e_res[l][j].p[RB_SKW] >= 0);
    }
    if (l < L - 1) {
      NAMEF(a, "encoder.down_blocks.%d.downsamplers.0.conv", l);
      NAMEF(b, "encoder.down.%d.downsample.conv", l);
      map_pair(m, a, b);
    }
  }
  for (int half = 0; half < 2; half++) {
    const char *h = half ? "decoder" : "encoder";
    NAMEF(a, "%s.mid_block.resnets.0", h);
    NAMEF(b, "%s.mid.block_1", h);
    map_res(m, a, b, 0);
    NAMEF(a, "%s.mid_block.resnets.1", h);
    NAMEF(b, "%s.mid.block_2", h);
    map_res(m, a, b, 0);
    if (c->mid_attn) {
      NAMEF(a, "%s.mid_block.attentions.0", h);
      NAMEF(b, "%s.mid.attn_1", h);
      map_attn(m, a, b);
    }
    NAMEF(a, "%s.conv_norm_out", h);
    NAMEF(b, "%s.norm_out", h);
    map_pair(m, a, b);
    NAMEF(a, "%s.conv_out", h);
    map_pair(m, a, a);
  }
  map_pair(m, "quant_conv", "quant_conv");
  map_pair(m, "post_quant_conv", "post_quant_conv");
  map_pair(m, "decoder.conv_in", "decoder.conv_in");
  /* diffusers' up_blocks.k is LDM's level L-1-k */
  for (int l = L - 1; l >= 0; l--) {
    int k = L - 1 - l;
    for (int j = 0; j <= c->n_res; j++) {
      NAMEF(a, "decoder.up_blocks.%d.resnets.%d", k, j);
      NAMEF(b, "decoder.up.%d.block.%d", l, j);
      map_res(m, a, b, im->d_res[l][j].p[RB_SKW] >= 0);
    }
    if (l > 0) {
      NAMEF(a, "decoder.up_blocks.%d.upsamplers.0.conv", k);
      NAMEF(b, "decoder.up.%d.upsample.conv", l);
      map_pair(m, a, b);
    }
  }
  return TB_OK;
}

int vae_config_from_diffusers(const char *json_text, vae_config *out) {
  json_value *j = json_parse(json_text, strlen(json_text), NULL);
  if (!j) return err_wrap("diffusers VAE config: ");
  vae_config c = vae_config_default();
  int rc = TB_OK;
  int64_t v64;
  const json_value *boc = json_get(j, "block_out_channels");
  if (!boc || boc->type != JSON_ARRAY || boc->count < 1 || boc->count > VAE_MAX_LEVELS)
    rc = err_set("diffusers VAE config: block_out_channels must list 1 to %d widths",
                 VAE_MAX_LEVELS);
  if (rc == TB_OK) {
    c.n_levels = (int)boc->count;
    int base = (int)json_at(boc, 0)->number;
    c.ch = base;
    for (int l = 0; l < c.n_levels && rc == TB_OK; l++) {
      int wl = (int)json_at(boc, (size_t)l)->number;
      if (base < 1 || wl % base)
        rc = err_set("diffusers VAE config: block_out_channels[%d] = %d is not a multiple of %d",
                     l, wl, base);
      else c.ch_mult[l] = wl / base;
    }
  }
  if (rc == TB_OK && json_get_int64(j, "in_channels", &v64) == TB_OK) c.in_ch = (int)v64;
  if (rc == TB_OK && json_get_int64(j, "latent_channels", &v64) == TB_OK) c.z_ch = (int)v64;
  if (rc == TB_OK && json_get_int64(j, "layers_per_block", &v64) == TB_OK) c.n_res = (int)v64;
  if (rc == TB_OK && json_get_int64(j, "norm_num_groups", &v64) == TB_OK) c.groups = (int)v64;
  double sf;
  c.scale = 0.18215f; /* diffusers' default scaling_factor */
  if (rc == TB_OK && json_get_number(j, "scaling_factor", &sf) == TB_OK) c.scale = (float)sf;
  int attn = 1;
  if (rc == TB_OK && json_get_bool(j, "mid_block_add_attention", &attn) == TB_OK) c.mid_attn = attn;
  const json_value *oc = json_get(j, "out_channels");
  if (rc == TB_OK && oc && oc->type == JSON_NUMBER && (int)oc->number != c.in_ch)
    rc = err_set("diffusers VAE config: out_channels %d differs from in_channels %d (turbo's VAE "
                 "decodes to its input's channels)", (int)oc->number, c.in_ch);
  json_free(j);
  if (rc == TB_OK) rc = cfg_check(&c);
  if (rc == TB_OK) *out = c;
  return rc;
}

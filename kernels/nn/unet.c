/* kernels/nn/unet.c — the (2+1)-D video UNet of the VideoCrafter / ModelScope family, built
 * from tape operations.
 *
 * Parameter names follow the LDM / VideoCrafter checkpoints so real weights can be mapped in:
 *   time_embed.{0,2}.{weight,bias}               sinusoidal(t) → linear → SiLU → linear
 *   w_embed.{0,2}.*, motion_embed.{0,2}.*        student conditions (T2V-Turbo-v2): the 256-d
 *                                                guidance-scale embedding of w / m
 *                                                (op_guidance_embedding) → MLP, the last
 *                                                linear zero-initialised
 *   input_blocks.0.0.{weight,bias}               conv_in
 *   input_blocks.N.0.*                           ResBlock: in_layers.{0 GN, 2 conv},
 *                                                emb_layers.1, out_layers.{0 GN, 3 conv},
 *                                                skip_connection (1×1 when channels change),
 *                                                temporal_conv.conv{1,2}.{0 GN, 2|3 conv}
 *                                                (VideoCrafter spells it "temopral_conv" and
 *                                                has four convs; a name map bridges that)
 *   input_blocks.N.1.*                           SpatialTransformer: norm, proj_in,
 *                                                transformer_blocks.0.{norm1, attn1, norm2,
 *                                                attn2, norm3, ff.net.0.proj, ff.net.2},
 *                                                proj_out (linear projections, use_linear)
 *   input_blocks.N.2.*                           TemporalTransformer: the same minus the
 *                                                cross-attention, plus pos_embed (T_max, C)
 *   input_blocks.N.0.op.*                        stride-2 down-sampling conv
 *   middle_block.{0,1,2,3}                       Res, Spatial, Temporal, Res
 *   output_blocks.N.{0,1,2}, ….conv              as above; up-sampling conv last
 *   out.{0 GN, 2 conv}
 * Zero-initialised as LDM does: out_layers.3, temporal_conv.conv2.3, proj_out, out.2.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/nn.h"
#include "kernels/nn/nn_internal.h"
#include "kernels/ops.h"

#define GN_EPS 1e-5f   /* GroupNorm32 in ResBlocks and the output */
#define TGN_EPS 1e-6f  /* the transformers' Normalize */
#define LN_EPS 1e-5f
#define FF_MULT 4      /* feed-forward inner width = FF_MULT·C, GEGLU projects to 2× that */
#define COND_DIM 256   /* sinusoidal width of the w and motion conditions */

/* UB_TT2: the families' temporal transformer (UNET_TATTN_PAIR; also init_attn) */
typedef enum { UB_CONV_IN, UB_RES, UB_ST, UB_TT, UB_DOWN, UB_UP, UB_OUT, UB_TT2 } ub_kind;

/* parameter roles */
enum {
  R_GN1W, R_GN1B, R_C1W, R_C1B, R_EMBW, R_EMBB, R_GN2W, R_GN2B, R_C2W, R_C2B, R_SKW, R_SKB,
  R_TG1W, R_TG1B, R_TC1W, R_TC1B, R_TG2W, R_TG2B, R_TC2W, R_TC2B,
  R_TG3W, R_TG3B, R_TC3W, R_TC3B, R_TG4W, R_TG4B, R_TC4W, R_TC4B, /* temporal_conv_layers 4 */
  R_RES_END
};
enum {
  R_NW, R_NB, R_PIW, R_PIB, R_N1W, R_N1B, R_Q1, R_K1, R_V1, R_O1W, R_O1B, R_N2W, R_N2B, R_Q2,
  R_K2, R_V2, R_O2W, R_O2B, R_N3W, R_N3B, R_F1W, R_F1B, R_F2W, R_F2B, R_POW, R_POB, R_POS,
  R_TR_END
};

struct unet_block {
  ub_kind kind;
  char prefix[64];
  int cin, cout;
  int level;   /* resolution level (input size >> level) */
  int push;    /* input blocks: push the output on the skip stack */
  int pop_ch;  /* output blocks: channels popped and concatenated before this layer (0: none) */
  int p[32];
  unet *u;
  /* where the block sits, for the name maps of other families: stage 0 encoder, 1 middle,
   * 2 decoder, 3 the rest; idx: the ResBlock's index within its level (stage 0/2) or its
   * position in the middle (0, 1) */
  int stage, idx;
  int inner;   /* UB_TT2: transformer width (heads · head_ch) */
  int heads;   /* UB_TT2 */
};

typedef struct {
  unet_block *b;
  int B, T, H, W, L;
} block_call;

static int groups_for(int want, int C) {
  int g = want < C ? want : C;
  while (C % g) g--;
  return g;
}

/* ---- registration -------------------------------------------------------------------- */

static int reg(unet *u, const char *prefix, const char *name, int ndim, int64_t a, int64_t b,
               int64_t c, int64_t d, int64_t e, nn_init_kind init, int64_t fan_in, int64_t fan_out) {
  char full[2 * NN_NAME_MAX];
  int len = snprintf(full, sizeof full, "%s%s%s", prefix, prefix[0] ? "." : "", name);
  TB_CHECKF(len > 0 && len < NN_NAME_MAX, "parameter name too long: %s", full);
  int64_t sh[5] = {a, b, c, d, e};
  return nn_params_add(&u->params, full, ndim, sh, init, fan_in, fan_out);
}
#define REG_VEC(pfx, nm, n, init) reg(u, pfx, nm, 1, n, 0, 0, 0, 0, init, 1, 1)
#define REG_LIN(pfx, nm, o, i, init) reg(u, pfx, nm, 2, o, i, 0, 0, 0, init, i, o)
#define REG_CONV(pfx, nm, o, i, k, init) reg(u, pfx, nm, 4, o, i, k, k, 0, init, (i) * (k) * (k), (o) * (k) * (k))

static unet_block *new_block(unet *u, ub_kind kind, const char *prefix, int cin, int cout,
                             int level) {
  u->blocks = xrealloc(u->blocks, (size_t)(u->n_blocks + 1) * sizeof *u->blocks);
  unet_block *b = &u->blocks[u->n_blocks++];
  memset(b, 0, sizeof *b);
  b->kind = kind;
  snprintf(b->prefix, sizeof b->prefix, "%s", prefix);
  b->cin = cin;
  b->cout = cout;
  b->level = level;
  return b;
}

/* conv3 and conv4 of the four-conv temporal block: GN, SiLU, dropout, Conv3d (3, 1, 1) */
static void add_tconv34(unet *u, const char *pfx, int C, int *p) {
  char nm[64];
  for (int k = 0; k < 2; k++) {
    int base = k ? R_TG4W : R_TG3W;
    snprintf(nm, sizeof nm, "temporal_conv.conv%d.0.weight", 3 + k);
    p[base + 0] = REG_VEC(pfx, nm, C, NN_INIT_ONE);
    snprintf(nm, sizeof nm, "temporal_conv.conv%d.0.bias", 3 + k);
    p[base + 1] = REG_VEC(pfx, nm, C, NN_INIT_ZERO);
    snprintf(nm, sizeof nm, "temporal_conv.conv%d.3.weight", 3 + k);
    p[base + 2] = reg(u, pfx, nm, 5, C, C, 3, 1, 1, k ? NN_INIT_ZERO_OUT : NN_INIT_KAIMING,
                      3 * C, 3 * C);
    snprintf(nm, sizeof nm, "temporal_conv.conv%d.3.bias", 3 + k);
    p[base + 3] = REG_VEC(pfx, nm, C, NN_INIT_ZERO);
  }
}

static void add_res(unet *u, const char *pfx, int cin, int cout, int level, int pop_ch) {
  int E = u->time_embed_ch;
  unet_block *b = new_block(u, UB_RES, pfx, cin, cout, level);
  b->pop_ch = pop_ch;
  int ci = cin + pop_ch;
  b->cin = ci;
  int *p = b->p;
  p[R_GN1W] = REG_VEC(pfx, "in_layers.0.weight", ci, NN_INIT_ONE);
  p[R_GN1B] = REG_VEC(pfx, "in_layers.0.bias", ci, NN_INIT_ZERO);
  p[R_C1W] = REG_CONV(pfx, "in_layers.2.weight", cout, ci, 3, NN_INIT_KAIMING);
  p[R_C1B] = REG_VEC(pfx, "in_layers.2.bias", cout, NN_INIT_ZERO);
  p[R_EMBW] = REG_LIN(pfx, "emb_layers.1.weight", cout, E, NN_INIT_KAIMING);
  p[R_EMBB] = REG_VEC(pfx, "emb_layers.1.bias", cout, NN_INIT_ZERO);
  p[R_GN2W] = REG_VEC(pfx, "out_layers.0.weight", cout, NN_INIT_ONE);
  p[R_GN2B] = REG_VEC(pfx, "out_layers.0.bias", cout, NN_INIT_ZERO);
  p[R_C2W] = REG_CONV(pfx, "out_layers.3.weight", cout, cout, 3, NN_INIT_ZERO_OUT);
  p[R_C2B] = REG_VEC(pfx, "out_layers.3.bias", cout, NN_INIT_ZERO);
  p[R_SKW] = p[R_SKB] = -1;
  if (ci != cout) {
    p[R_SKW] = REG_CONV(pfx, "skip_connection.weight", cout, ci, 1, NN_INIT_KAIMING);
    p[R_SKB] = REG_VEC(pfx, "skip_connection.bias", cout, NN_INIT_ZERO);
  }
  p[R_TG1W] = -1;
  if (u->cfg.temporal_conv) {
    p[R_TG1W] = REG_VEC(pfx, "temporal_conv.conv1.0.weight", cout, NN_INIT_ONE);
    p[R_TG1B] = REG_VEC(pfx, "temporal_conv.conv1.0.bias", cout, NN_INIT_ZERO);
    p[R_TC1W] = reg(u, pfx, "temporal_conv.conv1.2.weight", 5, cout, cout, 3, 1, 1,
                    NN_INIT_KAIMING, 3 * cout, 3 * cout);
    p[R_TC1B] = REG_VEC(pfx, "temporal_conv.conv1.2.bias", cout, NN_INIT_ZERO);
    int four = u->cfg.temporal_conv_layers == 4; /* then conv4, not conv2, starts at zero */
    p[R_TG2W] = REG_VEC(pfx, "temporal_conv.conv2.0.weight", cout, NN_INIT_ONE);
    p[R_TG2B] = REG_VEC(pfx, "temporal_conv.conv2.0.bias", cout, NN_INIT_ZERO);
    p[R_TC2W] = reg(u, pfx, "temporal_conv.conv2.3.weight", 5, cout, cout, 3, 1, 1,
                    four ? NN_INIT_KAIMING : NN_INIT_ZERO_OUT, 3 * cout, 3 * cout);
    p[R_TC2B] = REG_VEC(pfx, "temporal_conv.conv2.3.bias", cout, NN_INIT_ZERO);
    p[R_TG3W] = -1;
    if (four) add_tconv34(u, pfx, cout, p);
  }
}

static void add_transformer(unet *u, const char *pfx, int C, int level, int temporal) {
  unet_block *b = new_block(u, temporal ? UB_TT : UB_ST, pfx, C, C, level);
  int *p = b->p, D = u->cfg.text_dim, F = FF_MULT * C;
  char tb[96];
  snprintf(tb, sizeof tb, "%s.transformer_blocks.0", pfx);
  p[R_NW] = REG_VEC(pfx, "norm.weight", C, NN_INIT_ONE);
  p[R_NB] = REG_VEC(pfx, "norm.bias", C, NN_INIT_ZERO);
  p[R_PIW] = REG_LIN(pfx, "proj_in.weight", C, C, NN_INIT_KAIMING);
  p[R_PIB] = REG_VEC(pfx, "proj_in.bias", C, NN_INIT_ZERO);
  p[R_N1W] = REG_VEC(tb, "norm1.weight", C, NN_INIT_ONE);
  p[R_N1B] = REG_VEC(tb, "norm1.bias", C, NN_INIT_ZERO);
  p[R_Q1] = REG_LIN(tb, "attn1.to_q.weight", C, C, NN_INIT_XAVIER);
  p[R_K1] = REG_LIN(tb, "attn1.to_k.weight", C, C, NN_INIT_XAVIER);
  p[R_V1] = REG_LIN(tb, "attn1.to_v.weight", C, C, NN_INIT_XAVIER);
  p[R_O1W] = REG_LIN(tb, "attn1.to_out.0.weight", C, C, NN_INIT_XAVIER);
  p[R_O1B] = REG_VEC(tb, "attn1.to_out.0.bias", C, NN_INIT_ZERO);
  p[R_N2W] = -1;
  if (!temporal) {
    p[R_N2W] = REG_VEC(tb, "norm2.weight", C, NN_INIT_ONE);
    p[R_N2B] = REG_VEC(tb, "norm2.bias", C, NN_INIT_ZERO);
    p[R_Q2] = REG_LIN(tb, "attn2.to_q.weight", C, C, NN_INIT_XAVIER);
    p[R_K2] = REG_LIN(tb, "attn2.to_k.weight", C, D, NN_INIT_XAVIER);
    p[R_V2] = REG_LIN(tb, "attn2.to_v.weight", C, D, NN_INIT_XAVIER);
    p[R_O2W] = REG_LIN(tb, "attn2.to_out.0.weight", C, C, NN_INIT_XAVIER);
    p[R_O2B] = REG_VEC(tb, "attn2.to_out.0.bias", C, NN_INIT_ZERO);
  }
  p[R_N3W] = REG_VEC(tb, "norm3.weight", C, NN_INIT_ONE);
  p[R_N3B] = REG_VEC(tb, "norm3.bias", C, NN_INIT_ZERO);
  p[R_F1W] = REG_LIN(tb, "ff.net.0.proj.weight", 2 * F, C, NN_INIT_KAIMING);
  p[R_F1B] = REG_VEC(tb, "ff.net.0.proj.bias", 2 * F, NN_INIT_ZERO);
  p[R_F2W] = REG_LIN(tb, "ff.net.2.weight", C, F, NN_INIT_KAIMING);
  p[R_F2B] = REG_VEC(tb, "ff.net.2.bias", C, NN_INIT_ZERO);
  p[R_POW] = REG_LIN(pfx, "proj_out.weight", C, C, NN_INIT_ZERO_OUT);
  p[R_POB] = REG_VEC(pfx, "proj_out.bias", C, NN_INIT_ZERO);
  p[R_POS] = -1;
  if (temporal && u->cfg.temporal_pos == 0)
    p[R_POS] = reg(u, pfx, "pos_embed", 2, u->cfg.max_frames, C, 0, 0, 0, NN_INIT_NORMAL, C, C);
}

/* The families' temporal transformer on C channels with `heads` heads of head_ch: norm (GN),
 * proj_in (C → inner), transformer_blocks.0.{norm1, attn1, norm2, attn2, norm3, ff}, both
 * attentions self-attention over the frames, proj_out (inner → C); no frame positions. */
static unet_block *add_tt2(unet *u, const char *pfx, int C, int level, int heads) {
  unet_block *b = new_block(u, UB_TT2, pfx, C, C, level);
  int *p = b->p, I = heads * u->cfg.head_ch, F = FF_MULT * I;
  b->inner = I;
  b->heads = heads;
  char tb[96];
  snprintf(tb, sizeof tb, "%s.transformer_blocks.0", pfx);
  p[R_NW] = REG_VEC(pfx, "norm.weight", C, NN_INIT_ONE);
  p[R_NB] = REG_VEC(pfx, "norm.bias", C, NN_INIT_ZERO);
  p[R_PIW] = REG_LIN(pfx, "proj_in.weight", I, C, NN_INIT_KAIMING);
  p[R_PIB] = REG_VEC(pfx, "proj_in.bias", I, NN_INIT_ZERO);
  const char *nm[2][7] = {
      {"norm1.weight", "norm1.bias", "attn1.to_q.weight", "attn1.to_k.weight", "attn1.to_v.weight",
       "attn1.to_out.0.weight", "attn1.to_out.0.bias"},
      {"norm2.weight", "norm2.bias", "attn2.to_q.weight", "attn2.to_k.weight", "attn2.to_v.weight",
       "attn2.to_out.0.weight", "attn2.to_out.0.bias"}};
  const int role[2][7] = {{R_N1W, R_N1B, R_Q1, R_K1, R_V1, R_O1W, R_O1B},
                          {R_N2W, R_N2B, R_Q2, R_K2, R_V2, R_O2W, R_O2B}};
  for (int a = 0; a < 2; a++) {
    p[role[a][0]] = REG_VEC(tb, nm[a][0], I, NN_INIT_ONE);
    p[role[a][1]] = REG_VEC(tb, nm[a][1], I, NN_INIT_ZERO);
    for (int k = 2; k < 6; k++) p[role[a][k]] = REG_LIN(tb, nm[a][k], I, I, NN_INIT_XAVIER);
    p[role[a][6]] = REG_VEC(tb, nm[a][6], I, NN_INIT_ZERO);
  }
  p[R_N3W] = REG_VEC(tb, "norm3.weight", I, NN_INIT_ONE);
  p[R_N3B] = REG_VEC(tb, "norm3.bias", I, NN_INIT_ZERO);
  p[R_F1W] = REG_LIN(tb, "ff.net.0.proj.weight", 2 * F, I, NN_INIT_KAIMING);
  p[R_F1B] = REG_VEC(tb, "ff.net.0.proj.bias", 2 * F, NN_INIT_ZERO);
  p[R_F2W] = REG_LIN(tb, "ff.net.2.weight", I, F, NN_INIT_KAIMING);
  p[R_F2B] = REG_VEC(tb, "ff.net.2.bias", I, NN_INIT_ZERO);
  p[R_POW] = REG_LIN(pfx, "proj_out.weight", C, I, NN_INIT_ZERO_OUT);
  p[R_POB] = REG_VEC(pfx, "proj_out.bias", C, NN_INIT_ZERO);
  p[R_POS] = -1;
  return b;
}

/* The temporal transformer of a level: turbo's or the families' form. */
static void add_temporal(unet *u, const char *pfx, int C, int level) {
  if (u->cfg.spatial_only) return;
  if (u->cfg.temporal_attn == UNET_TATTN_PAIR) add_tt2(u, pfx, C, level, C / u->cfg.head_ch);
  else add_transformer(u, pfx, C, level, 1);
}

static void add_mlp(unet *u, const char *pfx, int din, int E, int *p, nn_init_kind last) {
  char a[64], b[64];
  snprintf(a, sizeof a, "%s.0", pfx);
  snprintf(b, sizeof b, "%s.2", pfx);
  p[0] = REG_LIN(a, "weight", E, din, NN_INIT_KAIMING);
  p[1] = REG_VEC(a, "bias", E, NN_INIT_ZERO);
  p[2] = REG_LIN(b, "weight", E, E, last);
  p[3] = REG_VEC(b, "bias", E, NN_INIT_ZERO);
}

unet_config unet_config_default(void) {
  unet_config c;
  memset(&c, 0, sizeof c);
  c.in_ch = c.out_ch = 4;
  c.model_ch = 48;
  c.n_levels = 3;
  c.ch_mult[0] = 1, c.ch_mult[1] = 2, c.ch_mult[2] = 2;
  c.n_res = 1;
  c.attn_levels = 0x6; /* 8×8 and 4×4 of a 16×16 latent */
  c.head_ch = 24;
  c.text_dim = 128;
  c.max_frames = 16;
  c.temporal_conv = 1;
  c.temporal_pos = 0;
  c.cond_embeds = 0;
  c.groups = 32;
  c.dropout = 0.0f;
  return c;
}

unet_config unet_config_videocrafter2(void) {
  unet_config c = unet_config_default();
  c.model_ch = 320;
  c.n_levels = 4;
  c.ch_mult[0] = 1, c.ch_mult[1] = 2, c.ch_mult[2] = 4, c.ch_mult[3] = 4;
  c.n_res = 2;
  c.attn_levels = 0x7; /* attention_resolutions [4, 2, 1] */
  c.head_ch = 64;
  c.text_dim = 1024;
  c.groups = 32;
  c.temporal_conv_layers = 4;
  c.temporal_attn = UNET_TATTN_PAIR;
  c.init_temporal = 1;
  c.init_heads = 8;
  c.fps_embed = 1;
  return c;
}

unet_config unet_config_modelscope(void) {
  unet_config c = unet_config_videocrafter2();
  c.fps_embed = 0;
  return c;
}

int unet_create(unet *u, const unet_config *cfg) {
  memset(u, 0, sizeof *u);
  u->cfg = *cfg;
  const unet_config *c = cfg;
  if (c->n_levels < 1 || c->n_levels > UNET_MAX_LEVELS || c->model_ch < 1 || c->n_res < 1 ||
      c->in_ch < 1 || c->out_ch < 1 || c->head_ch < 1 || c->text_dim < 1 || c->max_frames < 1 ||
      c->cond_embeds < 0 || c->cond_embeds > 2 || c->groups < 1)
    return err_set("unet: invalid config (levels %d, model_ch %d, n_res %d)", c->n_levels,
                   c->model_ch, c->n_res);
  if ((c->temporal_conv_layers != 0 && c->temporal_conv_layers != 2 &&
       c->temporal_conv_layers != 4) ||
      (c->temporal_attn != UNET_TATTN_TURBO && c->temporal_attn != UNET_TATTN_PAIR) ||
      (c->init_temporal && c->init_heads < 1) || c->fps_embed < 0 || c->fps_embed > 1)
    return err_set("unet: invalid family options (temporal_conv_layers %d, temporal_attn %d, "
                   "init_heads %d)", c->temporal_conv_layers, c->temporal_attn, c->init_heads);
  for (int l = 0; l < c->n_levels; l++)
    if (c->ch_mult[l] < 1 || (c->ch_mult[l] * c->model_ch) % c->head_ch)
      return err_set("unet: level %d width %d is not a multiple of head_ch %d", l,
                     c->ch_mult[l] * c->model_ch, c->head_ch);
  if (c->spatial_only) u->cfg.temporal_conv = 0, u->cfg.init_temporal = 0;
  c = &u->cfg;
  nn_params_init_empty(&u->params);
  int mc = c->model_ch, E = 4 * mc;
  u->time_embed_ch = E;
  add_mlp(u, "time_embed", mc, E, u->p_time, NN_INIT_KAIMING);
  if (c->cond_embeds >= 1) add_mlp(u, "w_embed", COND_DIM, E, u->p_cond[0], NN_INIT_ZERO_OUT);
  if (c->cond_embeds >= 2) add_mlp(u, "motion_embed", COND_DIM, E, u->p_cond[1], NN_INIT_ZERO_OUT);
  if (c->fps_embed) add_mlp(u, "fps_embedding", mc, E, u->p_fps, NN_INIT_KAIMING);

  char pfx[64];
  int skip[64], ns = 0, ch = mc, ib = 0;
  unet_block *b = new_block(u, UB_CONV_IN, "input_blocks.0.0", c->in_ch, mc, 0);
  b->p[0] = REG_CONV("input_blocks.0.0", "weight", mc, c->in_ch, 3, NN_INIT_KAIMING);
  b->p[1] = REG_VEC("input_blocks.0.0", "bias", mc, NN_INIT_ZERO);
  b->stage = 3;
  if (c->init_temporal) {
    /* the skip of input_blocks.0 is taken after it, as both families do */
    unet_block *t = add_tt2(u, "init_attn.0", mc, 0, c->init_heads);
    t->stage = 3;
    b = t;
  }
  b->push = 1;
  skip[ns++] = ch;
  ib = 1;
  for (int l = 0; l < c->n_levels; l++) {
    int attn = (c->attn_levels >> l) & 1;
    for (int j = 0; j < c->n_res; j++, ib++) {
      int co = c->ch_mult[l] * mc;
      snprintf(pfx, sizeof pfx, "input_blocks.%d.0", ib);
      int first = u->n_blocks;
      add_res(u, pfx, ch, co, l, 0);
      ch = co;
      if (attn) {
        snprintf(pfx, sizeof pfx, "input_blocks.%d.1", ib);
        add_transformer(u, pfx, ch, l, 0);
        snprintf(pfx, sizeof pfx, "input_blocks.%d.2", ib);
        add_temporal(u, pfx, ch, l);
      }
      for (int k = first; k < u->n_blocks; k++) u->blocks[k].stage = 0, u->blocks[k].idx = j;
      u->blocks[u->n_blocks - 1].push = 1;
      skip[ns++] = ch;
    }
    if (l != c->n_levels - 1) {
      snprintf(pfx, sizeof pfx, "input_blocks.%d.0", ib++);
      b = new_block(u, UB_DOWN, pfx, ch, ch, l);
      b->p[0] = REG_CONV(pfx, "op.weight", ch, ch, 3, NN_INIT_KAIMING);
      b->p[1] = REG_VEC(pfx, "op.bias", ch, NN_INIT_ZERO);
      b->stage = 0;
      b->push = 1;
      skip[ns++] = ch;
    }
  }
  int L = c->n_levels - 1, mid0 = u->n_blocks;
  add_res(u, "middle_block.0", ch, ch, L, 0);
  add_transformer(u, "middle_block.1", ch, L, 0);
  add_temporal(u, "middle_block.2", ch, L);
  add_res(u, "middle_block.3", ch, ch, L, 0);
  for (int k = mid0; k < u->n_blocks; k++) u->blocks[k].stage = 1;
  u->blocks[u->n_blocks - 1].idx = 1;
  int ob = 0;
  for (int l = c->n_levels - 1; l >= 0; l--) {
    int attn = (c->attn_levels >> l) & 1;
    for (int j = 0; j <= c->n_res; j++, ob++) {
      int co = c->ch_mult[l] * mc;
      snprintf(pfx, sizeof pfx, "output_blocks.%d.0", ob);
      TB_CHECK(ns > 0);
      int first = u->n_blocks;
      add_res(u, pfx, ch, co, l, skip[--ns]);
      ch = co;
      int sub = 1;
      if (attn) {
        snprintf(pfx, sizeof pfx, "output_blocks.%d.1", ob);
        add_transformer(u, pfx, ch, l, 0);
        snprintf(pfx, sizeof pfx, "output_blocks.%d.2", ob);
        add_temporal(u, pfx, ch, l);
        sub = 3;
      }
      for (int k = first; k < u->n_blocks; k++) u->blocks[k].stage = 2, u->blocks[k].idx = j;
      if (l > 0 && j == c->n_res) {
        snprintf(pfx, sizeof pfx, "output_blocks.%d.%d", ob, sub);
        b = new_block(u, UB_UP, pfx, ch, ch, l);
        b->p[0] = REG_CONV(pfx, "conv.weight", ch, ch, 3, NN_INIT_KAIMING);
        b->p[1] = REG_VEC(pfx, "conv.bias", ch, NN_INIT_ZERO);
        b->stage = 2;
      }
    }
  }
  TB_CHECK(ns == 0);
  b = new_block(u, UB_OUT, "out", ch, c->out_ch, 0);
  b->stage = 3;
  b->p[0] = REG_VEC("out.0", "weight", ch, NN_INIT_ONE);
  b->p[1] = REG_VEC("out.0", "bias", ch, NN_INIT_ZERO);
  b->p[2] = REG_CONV("out.2", "weight", c->out_ch, ch, 3, NN_INIT_ZERO_OUT);
  b->p[3] = REG_VEC("out.2", "bias", c->out_ch, NN_INIT_ZERO);
  for (int i = 0; i < u->n_blocks; i++) u->blocks[i].u = u;
  nn_params_alloc(&u->params);
  return TB_OK;
}

void unet_init_weights(unet *u, uint64_t seed, int zero_out) {
  nn_params_init(&u->params, seed, zero_out);
}

void unet_freeze(unet *u) {
  nn_params_freeze(&u->params);
  u->frozen = 1;
}

void unet_free(unet *u) {
  nn_params_free(&u->params);
  free(u->blocks);
  memset(u, 0, sizeof *u);
}

/* ---- forward ---------------------------------------------------------------------------
 * Host code here only builds the graph; every number is computed by a tape op (kernels/ops.h). */

static nn_var P(nn_ctx *c, unet_block *b, int role) {
  if (b->p[role] < 0) return -1;
  return nn_param_var(c, &b->u->params, b->p[role], b->u->frozen);
}

/* ResBlock on x (B·T, Cin, S); in[1] = SiLU(emb) (B, E) */
static nn_var res_run(nn_ctx *c, void *arg, const nn_var in[3]) {
  block_call *k = arg;
  unet_block *b = k->b;
  const unet_config *cfg = &b->u->cfg;
  int64_t B = k->B, T = k->T, N = B * T, H = k->H >> b->level, W = k->W >> b->level, S = H * W;
  int ci = b->cin, co = b->cout, E = b->u->time_embed_ch;
  nn_var x = in[0];
  nn_var h = nn_group_norm(c, x, P(c, b, R_GN1W), P(c, b, R_GN1B), N, 1, ci, S,
                           groups_for(cfg->groups, ci), GN_EPS, 1);
  h = nn_conv2d(c, h, P(c, b, R_C1W), P(c, b, R_C1B), N, ci, H, W, co, 3, 1, 1);
  nn_var e = nn_linear(c, in[1], P(c, b, R_EMBW), P(c, b, R_EMBB), B, E, co);
  h = nn_bias_add(c, h, e, B, T, co, S); /* (B, co) over the T frames and S positions */
  h = nn_group_norm(c, h, P(c, b, R_GN2W), P(c, b, R_GN2B), N, 1, co, S,
                    groups_for(cfg->groups, co), GN_EPS, 1);
  h = nn_dropout(c, h, cfg->dropout);
  h = nn_conv2d(c, h, P(c, b, R_C2W), P(c, b, R_C2B), N, co, H, W, co, 3, 1, 1);
  nn_var sk = x;
  if (b->p[R_SKW] >= 0) sk = nn_conv2d(c, x, P(c, b, R_SKW), P(c, b, R_SKB), N, ci, H, W, co, 1, 1, 0);
  h = nn_add(c, sk, h);
  if (b->p[R_TG1W] >= 0) {
    /* temporal sub-block: norms take statistics over (T, C/G, H, W) as a 5-D GroupNorm does */
    int G = groups_for(cfg->groups, co);
    nn_var t = nn_group_norm(c, h, P(c, b, R_TG1W), P(c, b, R_TG1B), B, T, co, S, G, GN_EPS, 1);
    t = nn_tconv3(c, t, P(c, b, R_TC1W), P(c, b, R_TC1B), B, T, co, co, S);
    t = nn_group_norm(c, t, P(c, b, R_TG2W), P(c, b, R_TG2B), B, T, co, S, G, GN_EPS, 1);
    t = nn_dropout(c, t, cfg->dropout);
    t = nn_tconv3(c, t, P(c, b, R_TC2W), P(c, b, R_TC2B), B, T, co, co, S);
    for (int k = 0; k < 2 && b->p[R_TG3W] >= 0; k++) { /* conv3, conv4 of the four-conv block */
      int r = k ? R_TG4W : R_TG3W;
      t = nn_group_norm(c, t, P(c, b, r), P(c, b, r + 1), B, T, co, S, G, GN_EPS, 1);
      t = nn_dropout(c, t, cfg->dropout);
      t = nn_tconv3(c, t, P(c, b, r + 2), P(c, b, r + 3), B, T, co, co, S);
    }
    h = nn_add(c, h, t);
  }
  return h;
}

/* attention sub-layer: h + to_out(attn(q(n), k(ctx), v(ctx))) with n = LN(h) */
static nn_var ff_run(nn_ctx *c, unet_block *b, nn_var h, int64_t M, int64_t C) {
  int64_t F = FF_MULT * C;
  nn_var n = nn_layer_norm(c, h, P(c, b, R_N3W), P(c, b, R_N3B), M, C, LN_EPS);
  nn_var f = nn_linear(c, n, P(c, b, R_F1W), P(c, b, R_F1B), M, C, 2 * F);
  f = nn_geglu(c, f, M, F);
  f = nn_linear(c, f, P(c, b, R_F2W), P(c, b, R_F2B), M, F, C);
  return nn_add(c, h, f);
}

/* Spatial transformer on x (B·T, C, S): self-attention over the S = H·W positions of each
 * frame, cross-attention to the B×L text tokens (shared by the T frames of a clip). */
static nn_var st_run(nn_ctx *c, void *arg, const nn_var in[3]) {
  block_call *k = arg;
  unet_block *b = k->b;
  const unet_config *cfg = &b->u->cfg;
  int64_t B = k->B, T = k->T, N = B * T, S = (int64_t)(k->H >> b->level) * (k->W >> b->level);
  int64_t C = b->cout, L = k->L, D = cfg->text_dim, M = N * S;
  int heads = (int)(C / cfg->head_ch);
  nn_var x = in[0];
  nn_var h = nn_group_norm(c, x, P(c, b, R_NW), P(c, b, R_NB), N, 1, C, S,
                           groups_for(cfg->groups, (int)C), TGN_EPS, 0);
  int64_t d1[4] = {N, C, S, 1};
  int perm[4] = {0, 2, 1, 3};
  h = nn_permute4(c, h, d1, perm); /* (N, S, C) */
  h = nn_linear(c, h, P(c, b, R_PIW), P(c, b, R_PIB), M, C, C);
  /* self-attention */
  nn_var n = nn_layer_norm(c, h, P(c, b, R_N1W), P(c, b, R_N1B), M, C, LN_EPS);
  nn_var q = nn_linear(c, n, P(c, b, R_Q1), -1, M, C, C);
  nn_var kk = nn_linear(c, n, P(c, b, R_K1), -1, M, C, C);
  nn_var v = nn_linear(c, n, P(c, b, R_V1), -1, M, C, C);
  nn_var a = nn_attention(c, q, kk, v, N, S, S, C, heads, NULL);
  a = nn_linear(c, a, P(c, b, R_O1W), P(c, b, R_O1B), M, C, C);
  h = nn_add(c, h, a);
  /* cross-attention: keys and values per clip, repeated over its frames */
  n = nn_layer_norm(c, h, P(c, b, R_N2W), P(c, b, R_N2B), M, C, LN_EPS);
  q = nn_linear(c, n, P(c, b, R_Q2), -1, M, C, C);
  kk = nn_linear(c, in[2], P(c, b, R_K2), -1, B * L, D, C);
  v = nn_linear(c, in[2], P(c, b, R_V2), -1, B * L, D, C);
  kk = nn_repeat_rows(c, kk, B, T, L * C);
  v = nn_repeat_rows(c, v, B, T, L * C);
  a = nn_attention(c, q, kk, v, N, S, L, C, heads, NULL);
  a = nn_linear(c, a, P(c, b, R_O2W), P(c, b, R_O2B), M, C, C);
  h = nn_add(c, h, a);
  h = ff_run(c, b, h, M, C);
  h = nn_linear(c, h, P(c, b, R_POW), P(c, b, R_POB), M, C, C);
  int64_t d2[4] = {N, S, C, 1};
  h = nn_permute4(c, h, d2, perm); /* (N, C, S) */
  return nn_add(c, x, h);
}

/* Temporal transformer on x (B, T, C, S): self-attention across the T frames at each of the
 * S positions, with a frame-position encoding added after proj_in. Its attention
 * probabilities (B·S, heads, T, T) are registered under the block's name. */
static nn_var tt_run(nn_ctx *c, void *arg, const nn_var in[3]) {
  block_call *k = arg;
  unet_block *b = k->b;
  const unet_config *cfg = &b->u->cfg;
  int64_t B = k->B, T = k->T, S = (int64_t)(k->H >> b->level) * (k->W >> b->level);
  int64_t C = b->cout, M = B * S * T;
  int heads = (int)(C / cfg->head_ch);
  nn_var x = in[0];
  nn_var h = nn_group_norm(c, x, P(c, b, R_NW), P(c, b, R_NB), B, T, C, S,
                           groups_for(cfg->groups, (int)C), TGN_EPS, 0);
  int64_t d1[4] = {B, T, C, S};
  int p1[4] = {0, 3, 1, 2};
  h = nn_permute4(c, h, d1, p1); /* (B, S, T, C) */
  h = nn_linear(c, h, P(c, b, R_PIW), P(c, b, R_PIB), M, C, C);
  nn_var pos;
  if (b->p[R_POS] >= 0) {
    TB_CHECKF(T <= cfg->max_frames, "unet: %lld frames, the position table has %d",
              (long long)T, cfg->max_frames);
    pos = P(c, b, R_POS);
  } else {
    float *frame = xmalloc((size_t)T * sizeof(float));
    for (int64_t t = 0; t < T; t++) frame[t] = (float)t;
    pos = nn_timestep_embedding(c, frame, T, (int)C); /* (T, C) */
    free(frame);
  }
  h = nn_add_bcast_first(c, h, pos, B * S, T * C);
  nn_var n = nn_layer_norm(c, h, P(c, b, R_N1W), P(c, b, R_N1B), M, C, LN_EPS);
  nn_var q = nn_linear(c, n, P(c, b, R_Q1), -1, M, C, C);
  nn_var kk = nn_linear(c, n, P(c, b, R_K1), -1, M, C, C);
  nn_var v = nn_linear(c, n, P(c, b, R_V1), -1, M, C, C);
  nn_var a = nn_attention(c, q, kk, v, B * S, T, T, C, heads, b->prefix);
  a = nn_linear(c, a, P(c, b, R_O1W), P(c, b, R_O1B), M, C, C);
  h = nn_add(c, h, a);
  h = ff_run(c, b, h, M, C);
  h = nn_linear(c, h, P(c, b, R_POW), P(c, b, R_POB), M, C, C);
  int64_t d2[4] = {B, S, T, C};
  int p2[4] = {0, 2, 3, 1};
  h = nn_permute4(c, h, d2, p2); /* (B, T, C, S) */
  return nn_add(c, x, h);
}

/* The families' temporal transformer on x (B, T, C, S): GN over (T, C/G, S), proj_in to the
 * inner width I, attn1 and attn2 (self-attention across the T frames of each of the B·S
 * positions, heads of head_ch), the GEGLU feed-forward, proj_out back to C, the residual.
 * attn1's probabilities are registered under the block's name (motion guidance reads them). */
static nn_var tt2_run(nn_ctx *c, void *arg, const nn_var in[3]) {
  block_call *k = arg;
  unet_block *b = k->b;
  const unet_config *cfg = &b->u->cfg;
  int64_t B = k->B, T = k->T, S = (int64_t)(k->H >> b->level) * (k->W >> b->level);
  int64_t C = b->cout, I = b->inner, M = B * S * T, F = FF_MULT * I;
  int heads = b->heads;
  nn_var x = in[0];
  nn_var h = nn_group_norm(c, x, P(c, b, R_NW), P(c, b, R_NB), B, T, C, S,
                           groups_for(cfg->groups, (int)C), TGN_EPS, 0);
  int64_t d1[4] = {B, T, C, S};
  int p1[4] = {0, 3, 1, 2};
  h = nn_permute4(c, h, d1, p1); /* (B, S, T, C) */
  h = nn_linear(c, h, P(c, b, R_PIW), P(c, b, R_PIB), M, C, I);
  const int role[2][7] = {{R_N1W, R_N1B, R_Q1, R_K1, R_V1, R_O1W, R_O1B},
                          {R_N2W, R_N2B, R_Q2, R_K2, R_V2, R_O2W, R_O2B}};
  for (int a = 0; a < 2; a++) {
    const int *r = role[a];
    nn_var n = nn_layer_norm(c, h, P(c, b, r[0]), P(c, b, r[1]), M, I, LN_EPS);
    nn_var q = nn_linear(c, n, P(c, b, r[2]), -1, M, I, I);
    nn_var kk = nn_linear(c, n, P(c, b, r[3]), -1, M, I, I);
    nn_var v = nn_linear(c, n, P(c, b, r[4]), -1, M, I, I);
    nn_var at = nn_attention(c, q, kk, v, B * S, T, T, I, heads, a == 0 ? b->prefix : NULL);
    at = nn_linear(c, at, P(c, b, r[5]), P(c, b, r[6]), M, I, I);
    h = nn_add(c, h, at);
  }
  nn_var n = nn_layer_norm(c, h, P(c, b, R_N3W), P(c, b, R_N3B), M, I, LN_EPS);
  nn_var f = nn_linear(c, n, P(c, b, R_F1W), P(c, b, R_F1B), M, I, 2 * F);
  f = nn_geglu(c, f, M, F);
  f = nn_linear(c, f, P(c, b, R_F2W), P(c, b, R_F2B), M, F, I);
  h = nn_add(c, h, f);
  h = nn_linear(c, h, P(c, b, R_POW), P(c, b, R_POB), M, I, C);
  int64_t d2[4] = {B, S, T, C};
  int p2[4] = {0, 2, 3, 1};
  h = nn_permute4(c, h, d2, p2); /* (B, T, C, S) */
  return nn_add(c, x, h);
}

static nn_var simple_run(nn_ctx *c, void *arg, const nn_var in[3]) {
  block_call *k = arg;
  unet_block *b = k->b;
  int64_t N = (int64_t)k->B * k->T, H = k->H >> b->level, W = k->W >> b->level;
  switch (b->kind) {
  case UB_CONV_IN:
    return nn_conv2d(c, in[0], P(c, b, 0), P(c, b, 1), N, b->cin, H, W, b->cout, 3, 1, 1);
  case UB_DOWN:
    return nn_conv2d(c, in[0], P(c, b, 0), P(c, b, 1), N, b->cin, H, W, b->cout, 3, 2, 1);
  case UB_UP: {
    nn_var h = nn_upsample2(c, in[0], N, b->cin, H, W);
    return nn_conv2d(c, h, P(c, b, 0), P(c, b, 1), N, b->cin, 2 * H, 2 * W, b->cout, 3, 1, 1);
  }
  case UB_OUT: {
    nn_var h = nn_group_norm(c, in[0], P(c, b, 0), P(c, b, 1), N, 1, b->cin, H * W,
                             groups_for(b->u->cfg.groups, b->cin), GN_EPS, 1);
    return nn_conv2d(c, h, P(c, b, 2), P(c, b, 3), N, b->cin, H, W, b->cout, 3, 1, 1);
  }
  default:
    TB_CHECK(0);
  }
  return -1;
}

static nn_var mlp_embed(nn_ctx *c, unet *u, const int *p, nn_var s, int64_t B, int din) {
  int E = u->time_embed_ch;
  nn_var h = nn_linear(c, s, nn_param_var(c, &u->params, p[0], u->frozen),
                       nn_param_var(c, &u->params, p[1], u->frozen), B, din, E);
  h = nn_silu(c, h);
  return nn_linear(c, h, nn_param_var(c, &u->params, p[2], u->frozen),
                   nn_param_var(c, &u->params, p[3], u->frozen), B, E, E);
}

nn_var unet_forward(unet *u, nn_ctx *c, nn_var x, const unet_input *in) {
  const unet_config *cfg = &u->cfg;
  int B = in->B, T = in->T, H = in->H, W = in->W;
  int down = 1 << (cfg->n_levels - 1);
  TB_CHECKF(H % down == 0 && W % down == 0, "unet: %d×%d is not divisible by %d", H, W, down);
  TB_CHECKF(nn_numel(c, x) == (int64_t)B * T * cfg->in_ch * H * W, "unet: input size");
  TB_CHECKF(nn_numel(c, in->context) == (int64_t)B * in->L * cfg->text_dim, "unet: context size");
  int mc = cfg->model_ch;
  nn_var emb = mlp_embed(c, u, u->p_time, nn_timestep_embedding(c, in->t, B, mc), B, mc);
  for (int k = 0; k < cfg->cond_embeds; k++) {
    const float *val = k == 0 ? in->w : in->motion;
    if (!val) continue;
    nn_var s = nn_guidance_embedding(c, val, B, COND_DIM);
    emb = nn_add(c, emb, mlp_embed(c, u, u->p_cond[k], s, B, COND_DIM));
  }
  if (cfg->fps_embed) {
    float *fps = xmalloc((size_t)B * sizeof(float));
    for (int i = 0; i < B; i++) fps[i] = in->fps ? in->fps[i] : 8.0f;
    nn_var s = nn_timestep_embedding(c, fps, B, mc);
    free(fps);
    emb = nn_add(c, emb, mlp_embed(c, u, u->p_fps, s, B, mc));
  }
  nn_var semb = nn_silu(c, emb); /* emb_layers.0 of every ResBlock, computed once */

  nn_var stack[64];
  int ns = 0;
  nn_var h = x;
  for (int i = 0; i < u->n_blocks; i++) {
    unet_block *b = &u->blocks[i];
    block_call *k = nn_ctx_alloc(c, sizeof *k);
    k->b = b;
    k->B = B, k->T = T, k->H = H, k->W = W, k->L = in->L;
    if (b->pop_ch) {
      TB_CHECK(ns > 0);
      int64_t S = (int64_t)(H >> b->level) * (W >> b->level);
      h = nn_concat_chan(c, h, stack[--ns], (int64_t)B * T, b->cin - b->pop_ch, b->pop_ch, S);
    }
    nn_var args[3] = {h, semb, in->context};
    nn_block_fn fn = b->kind == UB_RES ? res_run : b->kind == UB_ST ? st_run
                     : b->kind == UB_TT ? tt_run : b->kind == UB_TT2 ? tt2_run : simple_run;
    h = nn_checkpoint(c, fn, k, args);
    if (b->push) {
      TB_CHECK(ns < 64);
      stack[ns++] = h;
    }
  }
  TB_CHECK(ns == 0);
  return h;
}

int unet_input_check(const unet *u, int64_t x_numel, int64_t ctx_numel, const unet_input *in) {
  const unet_config *cfg = &u->cfg;
  int down = 1 << (cfg->n_levels - 1);
  if (in->B < 1 || in->T < 1 || in->H < 1 || in->W < 1 || in->L < 1)
    return err_set("unet: batch %d, frames %d, latent %dx%d and %d text tokens must all be >= 1",
                   in->B, in->T, in->H, in->W, in->L);
  if (in->H % down || in->W % down)
    return err_set("unet: latent %dx%d is not divisible by %d (%d resolution levels)", in->H,
                   in->W, down, cfg->n_levels);
  if (cfg->temporal_pos == 0 && in->T > cfg->max_frames)
    return err_set("unet: %d frames, the model's frame-position table has %d", in->T,
                   cfg->max_frames);
  int64_t want = (int64_t)in->B * in->T * cfg->in_ch * in->H * in->W;
  if (x_numel != want)
    return err_set("unet: the latent has %lld values, (B %d, T %d, C %d, H %d, W %d) needs %lld",
                   (long long)x_numel, in->B, in->T, cfg->in_ch, in->H, in->W, (long long)want);
  int64_t wc = (int64_t)in->B * in->L * cfg->text_dim;
  if (ctx_numel != wc)
    return err_set("unet: the text context has %lld values, (B %d, L %d, D %d) needs %lld",
                   (long long)ctx_numel, in->B, in->L, cfg->text_dim, (long long)wc);
  for (int b = 0; b < in->B; b++) {
    if (!in->t || !(in->t[b] >= 0.0f && in->t[b] < 1000.0f))
      return err_set("unet: timestep of sample %d is %g, not in [0, 1000)", b,
                     in->t ? (double)in->t[b] : NAN);
    if (in->w && !isfinite(in->w[b])) return err_set("unet: w of sample %d is not finite", b);
    if (in->motion && !isfinite(in->motion[b]))
      return err_set("unet: motion scale of sample %d is not finite", b);
  }
  return TB_OK;
}

int unet_forward_checked(unet *u, nn_ctx *c, nn_var x, const unet_input *in, nn_var *out) {
  *out = -1;
  if (x < 0 || in->context < 0) return err_set("unet: no latent or no text context given");
  if (unet_input_check(u, nn_numel(c, x), nn_numel(c, in->context), in) != TB_OK) return TB_ERR;
  *out = unet_forward(u, c, x, in);
  return TB_OK;
}

int unet_temporal_layers(const unet *u, int decoder_only, const char **names, int max) {
  int n = 0;
  for (int i = 0; i < u->n_blocks; i++) {
    const unet_block *b = &u->blocks[i];
    if (b->kind != UB_TT && b->kind != UB_TT2) continue;
    if (decoder_only && strncmp(b->prefix, "output_blocks.", 14) != 0) continue;
    if (n < max) names[n] = b->prefix;
    n++;
  }
  return n < max ? n : max;
}

/* ---- FLOPs ------------------------------------------------------------------------------- */

double unet_flops_forward(const unet *u, int B, int T, int H, int W, int L) {
  const unet_config *cfg = &u->cfg;
  double f = 0, N = (double)B * T, E = u->time_embed_ch;
  f += 2.0 * B * (cfg->model_ch * E + E * E) * (1 + cfg->cond_embeds);
  for (int i = 0; i < u->n_blocks; i++) {
    const unet_block *b = &u->blocks[i];
    double Hl = H >> b->level, Wl = W >> b->level, S = Hl * Wl, ci = b->cin, co = b->cout;
    switch (b->kind) {
    case UB_CONV_IN:
    case UB_OUT:
      f += 2.0 * N * S * co * ci * 9;
      break;
    case UB_DOWN:
      f += 2.0 * N * (S / 4) * co * ci * 9;
      break;
    case UB_UP:
      f += 2.0 * N * (4 * S) * co * ci * 9;
      break;
    case UB_RES:
      f += 2.0 * N * S * (co * ci * 9 + co * co * 9) + 2.0 * B * E * co;
      if (ci != co) f += 2.0 * N * S * co * ci;
      if (cfg->temporal_conv) f += 2.0 * (cfg->temporal_conv_layers == 4 ? 4 : 2) * N * S * co * co * 3;
      break;
    case UB_ST: {
      double C = co, M = N * S;
      f += 2.0 * M * C * C * 6;                     /* proj_in, q k v, out, proj_out */
      f += 2.0 * 2 * N * S * S * C;                 /* scores and weighted sum */
      f += 2.0 * M * C * C * 2 + 2.0 * B * L * cfg->text_dim * C * 2; /* q2, out2, k2 v2 */
      f += 2.0 * 2 * N * S * L * C;
      f += 2.0 * M * C * (2 * FF_MULT * C) + 2.0 * M * FF_MULT * C * C;
      break;
    }
    case UB_TT2: {
      double C = co, I = b->inner, M = N * S;
      f += 2.0 * M * C * I * 2 + 2.0 * M * I * I * 8; /* proj_in/out; q k v out, twice */
      f += 2.0 * 2 * 2 * B * S * T * T * I;
      f += 2.0 * M * I * (2 * FF_MULT * I) + 2.0 * M * FF_MULT * I * I;
      break;
    }
    case UB_TT: {
      double C = co, M = N * S;
      f += 2.0 * M * C * C * 6;
      f += 2.0 * 2 * B * S * T * T * C;
      f += 2.0 * M * C * (2 * FF_MULT * C) + 2.0 * M * FF_MULT * C * C;
      break;
    }
    }
  }
  return f;
}

int unet_drop_context(float *context, const float *null_ctx, int B, int64_t LD, float p,
                      uint64_t *rng) {
  uint8_t *keep = xmalloc((size_t)(B > 0 ? B : 1));
  op_cond_drop_mask(keep, B, p, *rng);
  *rng += 0x9E3779B97F4A7C15ull; /* the next call draws a fresh mask */
  int dropped = 0;
  for (int b = 0; b < B; b++) {
    if (keep[b]) continue;
    if (null_ctx) memcpy(context + b * LD, null_ctx, (size_t)LD * sizeof(float));
    else memset(context + b * LD, 0, (size_t)LD * sizeof(float));
    dropped++;
  }
  free(keep);
  return dropped;
}

/* ---- names of other families ------------------------------------------------------------ */

/* A ResBlock's sub-names in diffusers' ResnetBlock2D (the temporal conv lives apart, in
 * temp_convs, under the same sub-names as turbo's). */
static const char *diffusers_res_name(const char *sub) {
  static const char *const tab[][2] = {
      {"in_layers.0.", "norm1."},       {"in_layers.2.", "conv1."},
      {"emb_layers.1.", "time_emb_proj."}, {"out_layers.0.", "norm2."},
      {"out_layers.3.", "conv2."},      {"skip_connection.", "conv_shortcut."}};
  for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
    if (strncmp(sub, tab[i][0], strlen(tab[i][0])) == 0) return tab[i][1];
  return NULL;
}

/* The diffusers name of parameter `name` of block b (sub = name after the block prefix). */
static int diffusers_name(const unet *u, const unet_block *b, const char *name, char *out,
                          size_t n) {
  const char *sub = name + strlen(b->prefix) + 1;
  int top = u->cfg.n_levels - 1, lvl = b->level;
  char base[96];
  switch (b->stage) {
  case 0: /* encoder: down_blocks.<level> */
  case 2: /* decoder: up_blocks.<n_levels - 1 - level> */
    snprintf(base, sizeof base, "%s.%d", b->stage == 0 ? "down_blocks" : "up_blocks",
             b->stage == 0 ? lvl : top - lvl);
    break;
  case 1:
    snprintf(base, sizeof base, "mid_block");
    break;
  default:
    base[0] = 0;
  }
  int idx = b->stage == 1 ? 0 : b->idx;
  switch (b->kind) {
  case UB_CONV_IN:
    return snprintf(out, n, "conv_in.%s", sub) < (int)n ? TB_OK : TB_ERR;
  case UB_OUT:
    if (strncmp(sub, "0.", 2) == 0) return snprintf(out, n, "conv_norm_out.%s", sub + 2) < (int)n ? TB_OK : TB_ERR;
    return snprintf(out, n, "conv_out.%s", sub + 2) < (int)n ? TB_OK : TB_ERR;
  case UB_TT2:
    if (b->stage == 3) return snprintf(out, n, "transformer_in.%s", sub) < (int)n ? TB_OK : TB_ERR;
    return snprintf(out, n, "%s.temp_attentions.%d.%s", base, idx, sub) < (int)n ? TB_OK : TB_ERR;
  case UB_ST:
    return snprintf(out, n, "%s.attentions.%d.%s", base, idx, sub) < (int)n ? TB_OK : TB_ERR;
  case UB_DOWN: /* sub "op.weight" */
    return snprintf(out, n, "%s.downsamplers.0.conv.%s", base, sub + 3) < (int)n ? TB_OK : TB_ERR;
  case UB_UP: /* sub "conv.weight" */
    return snprintf(out, n, "%s.upsamplers.0.%s", base, sub) < (int)n ? TB_OK : TB_ERR;
  case UB_RES: {
    if (b->stage == 1) idx = strcmp(b->prefix, "middle_block.0") == 0 ? 0 : 1;
    if (strncmp(sub, "temporal_conv.", 14) == 0)
      return snprintf(out, n, "%s.temp_convs.%d.%s", base, idx, sub + 14) < (int)n ? TB_OK : TB_ERR;
    const char *r = diffusers_res_name(sub);
    if (!r) return err_set("unet: no diffusers name for %s", name);
    const char *rest = strchr(strchr(sub, '.') + 1, '.');
    if (strncmp(sub, "skip_connection.", 16) == 0) rest = sub + 15;
    return snprintf(out, n, "%s.resnets.%d.%s%s", base, idx, r, rest + 1) < (int)n ? TB_OK : TB_ERR;
  }
  case UB_TT:
    return err_set("unet: diffusers' layout has no turbo-form temporal transformer (%s); use "
                   "temporal_attn UNET_TATTN_PAIR", b->prefix);
  }
  return err_set("unet: no diffusers name for %s", name);
}

int unet_tensor_map(const unet *u, unet_family fam, nn_tensor_map *m) {
  nn_tensor_map_init(m);
  const nn_params *p = &u->params;
  char from[2 * NN_NAME_MAX];
  for (int i = 0; i < p->n; i++) {
    const char *name = p->info[i].name;
    if (fam == UNET_FAMILY_TURBO) {
      nn_tensor_map_add(m, name, name, NN_SRC_SAME, 0);
      continue;
    }
    if (fam == UNET_FAMILY_VC2) {
      const char *tc = strstr(name, ".temporal_conv.");
      if (strncmp(name, "w_embed.", 8) == 0 || strncmp(name, "motion_embed.", 13) == 0) {
        /* T2V-Turbo-v2's own students use time_cond_proj / motion_cond_proj / combine_proj */
        nn_tensor_map_free(m);
        return err_set("unet: VideoCrafter2's checkpoint has no %s (a turbo student condition)", name);
      }
      if (tc)
        snprintf(from, sizeof from, "model.diffusion_model.%.*s.temopral_conv.%s",
                 (int)(tc - name), name, tc + 15);
      else snprintf(from, sizeof from, "model.diffusion_model.%s", name);
      nn_tensor_map_add(m, from, name, NN_SRC_SAME, 0);
      continue;
    }
    /* diffusers */
    if (strncmp(name, "time_embed.", 11) == 0) {
      snprintf(from, sizeof from, "time_embedding.linear_%c.%s", name[11] == '0' ? '1' : '2',
               name + 13);
      nn_tensor_map_add(m, from, name, NN_SRC_SAME, 0);
      continue;
    }
    const unet_block *b = NULL;
    size_t best = 0;
    for (int k = 0; k < u->n_blocks; k++) {
      size_t l = strlen(u->blocks[k].prefix);
      if (l > best && strncmp(name, u->blocks[k].prefix, l) == 0 && name[l] == '.')
        b = &u->blocks[k], best = l;
    }
    if (!b || diffusers_name(u, b, name, from, sizeof from) != TB_OK) {
      nn_tensor_map_free(m);
      return b ? TB_ERR : err_set("unet: no diffusers name for %s", name);
    }
    nn_tensor_map_add(m, from, name, NN_SRC_SAME, 0);
  }
  return TB_OK;
}

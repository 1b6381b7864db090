/* kernels/nn/graph.c — the recording context: activation arenas, the tape of operations,
 * backward, per-block recomputation, kept attention maps, and every tape operation's forward
 * and backward. All arithmetic is an op_xxx call of kernels/ops.h on the current backend, and
 * all activation memory comes from kernels/device.h, so the same tape runs on the CPU reference,
 * the fast CPU backend, or a GPU once device_init has picked one.
 *
 * Levels. Vars live on level 0 (kept until nn_ctx_reset) or level 1 (the insides of a block in
 * recompute mode, freed once the block is done). Each level has an activation arena and an
 * activation-gradient arena on the device; both are bump allocators over chunks that coalesce
 * into one chunk of the peak size at reset, so steady-state passes allocate nothing. A host
 * arena holds per-pass records (block calls) that host code reads.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/tensor.h"
#include "kernels/device.h"
#include "kernels/nn.h"
#include "kernels/nn/nn_internal.h"
#include "kernels/ops.h"

/* ---- arenas -------------------------------------------------------------------------- */

#define ARENA_MIN_CHUNK ((size_t)16 << 20) /* bytes; first chunk before the peak is known */
#define ARENA_ALIGN 256                    /* bytes; what device_arena and cuBLAS like */

typedef struct {
  char **chunk;
  size_t *cap;
  int n, ncap;
  int host;     /* 1: plain host memory (records), 0: device memory (tensors) */
  size_t used;  /* in the last chunk */
  size_t total; /* bytes handed out since reset */
  size_t peak;
} arena;

static void *chunk_alloc(int host, size_t bytes) {
  return host ? aligned_alloc_zero(bytes) : device_malloc(bytes);
}
static void chunk_free(int host, void *p) {
  if (host) aligned_free(p);
  else device_free(p);
}

static void *arena_alloc(arena *a, size_t bytes, int zero) {
  bytes = (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
  if (bytes == 0) bytes = ARENA_ALIGN;
  if (a->n == 0 || a->used + bytes > a->cap[a->n - 1]) {
    size_t cap = bytes > ARENA_MIN_CHUNK ? bytes : ARENA_MIN_CHUNK;
    if (a->n == 0 && a->peak > cap) cap = a->peak;
    if (a->n == a->ncap) {
      a->ncap = a->ncap ? 2 * a->ncap : 8;
      a->chunk = xrealloc(a->chunk, a->ncap * sizeof *a->chunk);
      a->cap = xrealloc(a->cap, a->ncap * sizeof *a->cap);
    }
    a->chunk[a->n] = chunk_alloc(a->host, cap);
    TB_CHECKF(a->chunk[a->n] != NULL, "out of memory: activation chunk of %zu bytes", cap);
    a->cap[a->n] = cap;
    a->n++;
    a->used = 0;
  }
  void *p = a->chunk[a->n - 1] + a->used;
  a->used += bytes;
  a->total += bytes;
  if (a->total > a->peak) a->peak = a->total;
  if (zero) {
    if (a->host) memset(p, 0, bytes);
    else device_memset(p, 0, bytes);
  }
  return p;
}

/* Frees everything handed out; several chunks become one chunk of the peak size. */
static void arena_reset(arena *a) {
  if (a->n > 1) {
    for (int i = 0; i < a->n; i++) chunk_free(a->host, a->chunk[i]);
    a->n = 0;
  }
  a->used = 0;
  a->total = 0;
}

static void arena_free(arena *a) {
  for (int i = 0; i < a->n; i++) chunk_free(a->host, a->chunk[i]);
  free(a->chunk);
  free(a->cap);
  memset(a, 0, sizeof *a);
}

/* ---- tape ---------------------------------------------------------------------------- */

typedef enum {
  NOP_LEAF = 0,
  NOP_LINEAR,
  NOP_CONV2D,
  NOP_TCONV3,
  NOP_GNORM,
  NOP_LNORM,
  NOP_SILU,
  NOP_GEGLU,
  NOP_ADD,
  NOP_BIAS,
  NOP_CONCAT,
  NOP_UP2,
  NOP_PERMUTE,
  NOP_REPEAT,
  NOP_DROPOUT,
  NOP_COND_DROP,
  NOP_ATTN,
  NOP_GELU,
  NOP_L2NORM,
  NOP_EMBED,
  NOP_POOL,
  NOP_XENT,
  NOP_MSE,
  NOP_HUBER,
  NOP_CKPT,
  NOP_QGELU,
  NOP_PAD2D,
  NOP_SLICE,
  NOP_CLAMP,
  NOP_GAUSS,
  NOP_KL,
  NOP_L1,
} nop_kind;

typedef struct {
  float *data, *grad;
  int64_t n;
  uint8_t rg;    /* requires grad */
  uint8_t level; /* arena level of data and grad */
  uint8_t param; /* grad is a parameter gradient (not arena) */
} var_t;

typedef struct {
  nop_kind op;
  nn_var in[4];
  nn_var out;
  int64_t i[10];
  float f[2];
  float *sv[2];       /* saved tensors on the device (statistics, probabilities) */
  uint8_t *mask;      /* saved dropout mask on the device */
  int32_t *ids;       /* saved token ids / targets on the device */
  const uint8_t *hkeep; /* host flags (cond-drop keep), in the record arena */
  nn_block_fn fn;
  void *blk;
} node_t;

typedef struct {
  char name[NN_NAME_MAX];
  int64_t shape[4];
  float *probs, *extra; /* level-0 copies on the device */
} attn_rec;

struct nn_ctx {
  arena act[2], grd[2];
  arena rec; /* host records */
  var_t *v;
  int nv, vcap;
  node_t *nd;
  int nn, ncap;
  int level;
  int recompute, train, recomputing;
  int nograd;        /* 1: inference — no tape, block insides freed as each block ends */
  int backward_done; /* 1: nn_backward ran on the recorded pass (a second one is refused) */
  node_t scratch_node; /* nograd: the record a builder fills and nobody reads */
  uint64_t seed, rng_ctr;
  int keep_attn;
  char (*keep_names)[NN_NAME_MAX]; /* NULL: keep every named layer; else only these */
  int nkeep;
  attn_rec *attn;
  int nattn, attncap;
  float *scratch; /* device scratch, grown as needed, not part of the arenas */
  size_t scratch_cap;
};

nn_ctx *nn_ctx_new(void) {
  nn_ctx *c = xcalloc(1, sizeof *c);
  c->rec.host = 1;
  return c;
}

void nn_ctx_free(nn_ctx *c) {
  if (!c) return;
  for (int l = 0; l < 2; l++) {
    arena_free(&c->act[l]);
    arena_free(&c->grd[l]);
  }
  arena_free(&c->rec);
  free(c->v);
  free(c->nd);
  free(c->attn);
  free(c->keep_names);
  device_free(c->scratch);
  free(c);
}

void nn_ctx_reset(nn_ctx *c) {
  for (int l = 0; l < 2; l++) {
    arena_reset(&c->act[l]);
    arena_reset(&c->grd[l]);
  }
  arena_reset(&c->rec);
  c->nv = c->nn = c->nattn = 0;
  c->level = 0;
  c->rng_ctr = 0;
  c->backward_done = 0;
}

void nn_ctx_set_mode(nn_ctx *c, int recompute, int train, uint64_t seed) {
  c->recompute = recompute;
  c->train = train;
  c->seed = seed;
}

void nn_ctx_set_grad(nn_ctx *c, int enabled) {
  TB_CHECKF(c->nv == 0, "nn_ctx_set_grad: the context holds a pass; nn_ctx_reset it first");
  c->nograd = !enabled;
}

int nn_ctx_grad_enabled(const nn_ctx *c) { return !c->nograd; }

size_t nn_ctx_bytes(const nn_ctx *c) {
  return c->act[0].peak + c->act[1].peak + c->grd[0].peak + c->grd[1].peak;
}

void nn_ctx_keep_attn(nn_ctx *c, int on) { c->keep_attn = on; }

void nn_ctx_keep_attn_only(nn_ctx *c, int n, const char *const *names) {
  free(c->keep_names);
  c->keep_names = NULL;
  c->nkeep = 0;
  c->keep_attn = 1;
  if (n <= 0 || !names) return;
  c->keep_names = xmalloc((size_t)n * sizeof *c->keep_names);
  for (int i = 0; i < n; i++) snprintf(c->keep_names[i], NN_NAME_MAX, "%s", names[i]);
  c->nkeep = n;
}

static int keep_wanted(const nn_ctx *c, const char *name) {
  if (!c->keep_names) return 1;
  for (int i = 0; i < c->nkeep; i++)
    if (strcmp(c->keep_names[i], name) == 0) return 1;
  return 0;
}
int nn_attn_count(const nn_ctx *c) { return c->nattn; }
const char *nn_attn_name(const nn_ctx *c, int i) { return c->attn[i].name; }
const float *nn_attn_probs(const nn_ctx *c, int i, int64_t shape[4]) {
  TB_CHECK(i >= 0 && i < c->nattn);
  if (shape) memcpy(shape, c->attn[i].shape, 4 * sizeof(int64_t));
  return c->attn[i].probs;
}
float *nn_attn_extra_grad(nn_ctx *c, int i) {
  TB_CHECK(i >= 0 && i < c->nattn);
  return c->attn[i].extra;
}

void *nn_ctx_alloc(nn_ctx *c, size_t bytes) { return arena_alloc(&c->rec, bytes, 1); }

float *nn_scratch(nn_ctx *c, size_t nfloats) {
  if (nfloats > c->scratch_cap) {
    device_free(c->scratch);
    c->scratch = device_malloc(nfloats * sizeof(float));
    c->scratch_cap = nfloats;
  }
  return c->scratch;
}

/* A dimension handed to an op (the ops take int extents; products are formed inside). */
static int dim32(int64_t v) {
  TB_CHECKF(v >= 0 && v <= 0x7fffffff, "nn: extent %lld does not fit an op argument", (long long)v);
  return (int)v;
}

static void dzero(float *p, int64_t n) { device_memset(p, 0, (size_t)n * sizeof(float)); }

static nn_var var_new(nn_ctx *c, int64_t n, int rg) {
  if (c->nv == c->vcap) {
    c->vcap = c->vcap ? 2 * c->vcap : 1024;
    c->v = xrealloc(c->v, c->vcap * sizeof *c->v);
  }
  var_t *v = &c->v[c->nv];
  memset(v, 0, sizeof *v);
  v->n = n;
  v->rg = (uint8_t)(rg && !c->nograd);
  v->level = (uint8_t)c->level;
  v->data = arena_alloc(&c->act[c->level], (size_t)n * sizeof(float), 0);
  return c->nv++;
}

/* The tape record of a new operation. Without gradients nothing is recorded: the builder fills
 * a scratch record that the next builder overwrites. */
static node_t *node_new(nn_ctx *c, nop_kind op, nn_var out) {
  if (c->nograd) {
    memset(&c->scratch_node, 0, sizeof c->scratch_node);
    return &c->scratch_node;
  }
  if (c->nn == c->ncap) {
    c->ncap = c->ncap ? 2 * c->ncap : 1024;
    c->nd = xrealloc(c->nd, c->ncap * sizeof *c->nd);
  }
  node_t *d = &c->nd[c->nn++];
  memset(d, 0, sizeof *d);
  d->op = op;
  d->out = out;
  d->in[0] = d->in[1] = d->in[2] = d->in[3] = -1;
  return d;
}

static void *saved_alloc(nn_ctx *c, size_t bytes) {
  return arena_alloc(&c->act[c->level], bytes, 0);
}

nn_var nn_input(nn_ctx *c, const float *data, int64_t n, int requires_grad) {
  nn_var v = var_new(c, n, requires_grad);
  if (data) device_memcpy_h2d(c->v[v].data, data, (size_t)n * sizeof(float));
  else dzero(c->v[v].data, n);
  return v;
}

nn_var nn_param_var(nn_ctx *c, nn_params *p, int idx, int frozen) {
  TB_CHECK(idx >= 0 && idx < p->n);
  if (c->nv == c->vcap) {
    c->vcap = c->vcap ? 2 * c->vcap : 1024;
    c->v = xrealloc(c->v, c->vcap * sizeof *c->v);
  }
  var_t *v = &c->v[c->nv];
  memset(v, 0, sizeof *v);
  v->n = p->info[idx].numel;
  v->data = p->data + p->info[idx].offset;
  TB_CHECKF(frozen || c->nograd || p->grad,
            "nn_param_var(%s): the parameters have no gradient block (nn_params_freeze); pass "
            "frozen = 1 or run without gradients", p->info[idx].name);
  int rg = !frozen && !c->nograd && p->grad;
  v->rg = (uint8_t)rg;
  v->param = 1;
  v->grad = rg ? p->grad + p->info[idx].offset : NULL;
  v->level = (uint8_t)c->level;
  return c->nv++;
}

float *nn_data(nn_ctx *c, nn_var v) {
  TB_CHECK(v >= 0 && v < c->nv);
  return c->v[v].data;
}
float *nn_grad(nn_ctx *c, nn_var v) {
  TB_CHECK(v >= 0 && v < c->nv);
  return c->v[v].grad;
}
int64_t nn_numel(nn_ctx *c, nn_var v) {
  TB_CHECK(v >= 0 && v < c->nv);
  return c->v[v].n;
}

/* The gradient buffer of v, allocated (zeroed) on first use; NULL when v needs none. */
static float *gbuf(nn_ctx *c, nn_var v) {
  if (v < 0) return NULL;
  var_t *x = &c->v[v];
  if (!x->rg) return NULL;
  if (!x->grad) x->grad = arena_alloc(&c->grd[x->level], (size_t)x->n * sizeof(float), 1);
  return x->grad;
}

static int rg_any(nn_ctx *c, nn_var a, nn_var b, nn_var d) {
  return (a >= 0 && c->v[a].rg) || (b >= 0 && c->v[b].rg) || (d >= 0 && c->v[d].rg);
}

#define D(i_) (c->v[(i_)].data)
#define DN(i_) ((i_) >= 0 ? c->v[(i_)].data : NULL) /* optional input (bias, norm affine) */
#define N_(i_) (c->v[(i_)].n)

/* ---- operations ---------------------------------------------------------------------- */

nn_var nn_linear(nn_ctx *c, nn_var x, nn_var W, nn_var b, int64_t M, int64_t K, int64_t N) {
  TB_CHECKF(N_(x) == M * K && N_(W) == N * K && (b < 0 || N_(b) == N), "linear: shapes");
  nn_var y = var_new(c, M * N, rg_any(c, x, W, b));
  op_linear_fwd(D(y), D(x), D(W), DN(b), dim32(M), dim32(K), dim32(N));
  node_t *d = node_new(c, NOP_LINEAR, y);
  d->in[0] = x, d->in[1] = W, d->in[2] = b;
  d->i[0] = M, d->i[1] = K, d->i[2] = N;
  return y;
}

nn_var nn_conv2d(nn_ctx *c, nn_var x, nn_var W, nn_var b, int64_t Nb, int64_t Ci, int64_t H,
                 int64_t Wd, int64_t Co, int k, int s, int pad) {
  int64_t Ho = (H + 2 * pad - k) / s + 1, Wo = (Wd + 2 * pad - k) / s + 1;
  TB_CHECKF(N_(x) == Nb * Ci * H * Wd && N_(W) == Co * Ci * k * k && (b < 0 || N_(b) == Co),
            "conv2d: shapes");
  nn_var y = var_new(c, Nb * Co * Ho * Wo, rg_any(c, x, W, b));
  op_conv2d_fwd(D(y), D(x), D(W), DN(b), dim32(Nb), dim32(Ci), dim32(H), dim32(Wd), dim32(Co), k,
                s, pad);
  node_t *d = node_new(c, NOP_CONV2D, y);
  d->in[0] = x, d->in[1] = W, d->in[2] = b;
  d->i[0] = Nb, d->i[1] = Ci, d->i[2] = H, d->i[3] = Wd, d->i[4] = Co, d->i[5] = k;
  d->i[6] = s, d->i[7] = pad;
  return y;
}

nn_var nn_tconv3(nn_ctx *c, nn_var x, nn_var W, nn_var b, int64_t B, int64_t T, int64_t Ci,
                 int64_t Co, int64_t S) {
  TB_CHECKF(N_(x) == B * T * Ci * S && N_(W) == Co * Ci * 3 && (b < 0 || N_(b) == Co),
            "tconv3: shapes");
  nn_var y = var_new(c, B * T * Co * S, rg_any(c, x, W, b));
  op_tconv_fwd(D(y), D(x), D(W), DN(b), dim32(B), dim32(T), dim32(Ci), dim32(S), dim32(Co), 3);
  node_t *d = node_new(c, NOP_TCONV3, y);
  d->in[0] = x, d->in[1] = W, d->in[2] = b;
  d->i[0] = B, d->i[1] = T, d->i[2] = Ci, d->i[3] = Co, d->i[4] = S;
  return y;
}

/* With silu the forward applies SiLU in place after the norm; the backward recomputes the
 * normalised values (one more group-norm forward) instead of keeping a second activation. */
nn_var nn_group_norm(nn_ctx *c, nn_var x, nn_var g, nn_var b, int64_t B, int64_t T, int64_t C,
                     int64_t S, int G, float eps, int silu) {
  TB_CHECKF(N_(x) == B * T * C * S && C % G == 0 && (g < 0 || N_(g) == C) &&
                (b < 0 || N_(b) == C),
            "group_norm: shapes");
  nn_var y = var_new(c, N_(x), rg_any(c, x, g, b));
  node_t *d = node_new(c, NOP_GNORM, y);
  d->sv[0] = saved_alloc(c, (size_t)(2 * B * G) * sizeof(float)); /* mean (B, G), rstd (B, G) */
  d->sv[1] = d->sv[0] + B * G;
  if (silu)
    op_groupnorm_silu_fwd(D(y), d->sv[0], d->sv[1], D(x), DN(g), DN(b), dim32(B), dim32(T),
                          dim32(C), dim32(S), G, eps);
  else
    op_groupnorm_fwd(D(y), d->sv[0], d->sv[1], D(x), DN(g), DN(b), dim32(B), dim32(T), dim32(C),
                     dim32(S), G, eps);
  d->in[0] = x, d->in[1] = g, d->in[2] = b;
  d->i[0] = B, d->i[1] = T, d->i[2] = C, d->i[3] = S, d->i[4] = G, d->i[5] = silu;
  d->f[0] = eps;
  return y;
}

nn_var nn_layer_norm(nn_ctx *c, nn_var x, nn_var g, nn_var b, int64_t M, int64_t C, float eps) {
  TB_CHECKF(N_(x) == M * C && (g < 0 || N_(g) == C) && (b < 0 || N_(b) == C), "layer_norm");
  nn_var y = var_new(c, N_(x), rg_any(c, x, g, b));
  node_t *d = node_new(c, NOP_LNORM, y);
  d->sv[0] = saved_alloc(c, (size_t)(2 * M) * sizeof(float)); /* mean (M), rstd (M) */
  d->sv[1] = d->sv[0] + M;
  op_layernorm_fwd(D(y), d->sv[0], d->sv[1], D(x), DN(g), DN(b), dim32(M), dim32(C), eps);
  d->in[0] = x, d->in[1] = g, d->in[2] = b;
  d->i[0] = M, d->i[1] = C;
  return y;
}

nn_var nn_silu(nn_ctx *c, nn_var x) {
  nn_var y = var_new(c, N_(x), c->v[x].rg);
  op_silu_fwd(D(y), D(x), N_(x));
  node_t *d = node_new(c, NOP_SILU, y);
  d->in[0] = x;
  return y;
}

/* x (M, 2F) = [a | g] per row; y = a * gelu(g), one fused op each way */
nn_var nn_geglu(nn_ctx *c, nn_var x, int64_t M, int64_t F) {
  TB_CHECK(N_(x) == M * 2 * F);
  nn_var y = var_new(c, M * F, c->v[x].rg);
  op_geglu_fwd(D(y), D(x), dim32(M), dim32(F));
  node_t *d = node_new(c, NOP_GEGLU, y);
  d->in[0] = x;
  d->i[0] = M, d->i[1] = F;
  return y;
}

nn_var nn_add(nn_ctx *c, nn_var a, nn_var b) {
  TB_CHECK(N_(a) == N_(b));
  nn_var y = var_new(c, N_(a), rg_any(c, a, b, -1));
  op_add_fwd(D(y), D(a), D(b), N_(a));
  node_t *d = node_new(c, NOP_ADD, y);
  d->in[0] = a, d->in[1] = b;
  return y;
}

/* The one broadcast add: y (B, T, C, S) = x + e (B, C) (op_bias_add). */
static nn_var bias_add(nn_ctx *c, nn_var x, nn_var e, int64_t B, int64_t T, int64_t C, int64_t S) {
  nn_var y = var_new(c, N_(x), rg_any(c, x, e, -1));
  op_bias_add_fwd(D(y), D(x), D(e), dim32(B), dim32(T), dim32(C), dim32(S));
  node_t *d = node_new(c, NOP_BIAS, y);
  d->in[0] = x, d->in[1] = e;
  d->i[0] = B, d->i[1] = T, d->i[2] = C, d->i[3] = S;
  return y;
}

nn_var nn_bias_add(nn_ctx *c, nn_var x, nn_var e, int64_t B, int64_t T, int64_t C, int64_t S) {
  TB_CHECK(N_(x) == B * T * C * S && N_(e) == B * C);
  return bias_add(c, x, e, B, T, C, S);
}

nn_var nn_add_bcast_last(nn_ctx *c, nn_var x, nn_var e, int64_t A, int64_t R, int64_t S) {
  TB_CHECK(N_(x) == A * R * S && N_(e) == A * R);
  return bias_add(c, x, e, A, 1, R, S);
}

nn_var nn_add_bcast_first(nn_ctx *c, nn_var x, nn_var p, int64_t A, int64_t R) {
  TB_CHECK(N_(x) == A * R && N_(p) >= R); /* a longer p (a position table) uses its first R */
  return bias_add(c, x, p, 1, A, R, 1);
}

nn_var nn_concat_chan(nn_ctx *c, nn_var a, nn_var b, int64_t N, int64_t Ca, int64_t Cb, int64_t S) {
  TB_CHECK(N_(a) == N * Ca * S && N_(b) == N * Cb * S);
  nn_var y = var_new(c, N * (Ca + Cb) * S, rg_any(c, a, b, -1));
  op_concat_fwd(D(y), D(a), D(b), dim32(N), dim32(Ca), dim32(Cb), dim32(S));
  node_t *d = node_new(c, NOP_CONCAT, y);
  d->in[0] = a, d->in[1] = b;
  d->i[0] = N, d->i[1] = Ca, d->i[2] = Cb, d->i[3] = S;
  return y;
}

nn_var nn_upsample2(nn_ctx *c, nn_var x, int64_t N, int64_t C, int64_t H, int64_t W) {
  TB_CHECK(N_(x) == N * C * H * W);
  nn_var y = var_new(c, N * C * 4 * H * W, c->v[x].rg);
  op_upsample2x_fwd(D(y), D(x), dim32(N), dim32(C), dim32(H), dim32(W));
  node_t *d = node_new(c, NOP_UP2, y);
  d->in[0] = x;
  d->i[0] = N, d->i[1] = C, d->i[2] = H, d->i[3] = W;
  return y;
}

nn_var nn_permute4(nn_ctx *c, nn_var x, const int64_t dims[4], const int perm[4]) {
  TB_CHECK(N_(x) == dims[0] * dims[1] * dims[2] * dims[3]);
  nn_var y = var_new(c, N_(x), c->v[x].rg);
  int shape[4] = {dim32(dims[0]), dim32(dims[1]), dim32(dims[2]), dim32(dims[3])};
  op_permute_fwd(D(y), D(x), 4, shape, perm);
  node_t *d = node_new(c, NOP_PERMUTE, y);
  d->in[0] = x;
  for (int i = 0; i < 4; i++) d->i[i] = dims[i], d->i[4 + i] = perm[i];
  return y;
}

nn_var nn_repeat_rows(nn_ctx *c, nn_var e, int64_t B, int64_t T, int64_t E) {
  TB_CHECK(N_(e) == B * E);
  nn_var y = var_new(c, B * T * E, c->v[e].rg);
  op_repeat_fwd(D(y), D(e), dim32(B), dim32(T), E);
  node_t *d = node_new(c, NOP_REPEAT, y);
  d->in[0] = e;
  d->i[0] = B, d->i[1] = T, d->i[2] = E;
  return y;
}

/* Each dropout draws from its own stream: the context seed mixed with the op's counter, so a
 * recomputed block (same counter) replays its masks. */
static uint64_t dropout_seed(uint64_t seed, uint64_t ctr) {
  return hash_mix64(seed ^ (ctr * 0x9E3779B97F4A7C15ull));
}

nn_var nn_dropout(nn_ctx *c, nn_var x, float p) {
  if (!c->train || p <= 0.0f) return x;
  int64_t n = N_(x);
  nn_var y = var_new(c, n, c->v[x].rg);
  node_t *d = node_new(c, NOP_DROPOUT, y);
  d->in[0] = x;
  d->mask = saved_alloc(c, (size_t)n);
  d->f[0] = p;
  op_dropout_fwd(D(y), d->mask, D(x), n, p, dropout_seed(c->seed, c->rng_ctr++));
  return y;
}

nn_var nn_cond_drop(nn_ctx *c, nn_var x, nn_var null_emb, int64_t B, int64_t E,
                    const uint8_t *keep) {
  TB_CHECK(N_(x) == B * E && N_(null_emb) == E);
  nn_var y = var_new(c, B * E, rg_any(c, x, null_emb, -1));
  uint8_t *k = nn_ctx_alloc(c, (size_t)B);
  memcpy(k, keep, (size_t)B);
  op_cond_drop_fwd(D(y), D(x), D(null_emb), k, dim32(B), E);
  node_t *d = node_new(c, NOP_COND_DROP, y);
  d->in[0] = x, d->in[1] = null_emb;
  d->hkeep = k;
  d->i[0] = B, d->i[1] = E;
  return y;
}

/* Head layouts. The model packs heads inside channels: x (M, H·D) with M = G·N tokens. The
 * attention op runs on head-major copies (H, M, D) = (H, G, N, D), taking the H·G (head, group)
 * pairs as its batch (the order of the batch does not matter to it): op_heads_split with one
 * batch, a transpose of (M, H) blocks of D floats. */
/* Probabilities between the op's (H, G, Nq·Nk) order and the documented (G, H, Nq·Nk). */
static void probs_swap(float *out, const float *in, int64_t A, int64_t Bd, int64_t R) {
  int shape[3] = {dim32(A), dim32(Bd), dim32(R)}, perm[3] = {1, 0, 2};
  op_permute_fwd(out, in, 3, shape, perm);
}

/* The key-padding mask (G, Nk) becomes the op's boolean mask (G, Nq, Nk) on the device; the
 * op's batch (heads, G) takes mask g for entry h·G + g (mb = G). Masked keys get probability 0,
 * so the backward needs nothing more. */
static op_attn_mask *key_mask(nn_ctx *c, op_attn_mask *m, const uint8_t *key_keep, int64_t G,
                              int64_t Nq, int64_t Nk, int causal) {
  if (!key_keep && !causal) return NULL;
  if (!key_keep) G = 1; /* one causal mask shared by every group */
  size_t n = (size_t)(G * Nq * Nk);
  uint8_t *h = xmalloc(n ? n : 1);
  for (int64_t g = 0; g < G; g++)
    for (int64_t i = 0; i < Nq; i++) {
      uint8_t *row = h + (g * Nq + i) * Nk;
      if (key_keep) memcpy(row, key_keep + g * Nk, (size_t)Nk);
      else memset(row, 1, (size_t)Nk);
      /* causal: query i sees keys 0..i (+ Nk - Nq when the keys run ahead) */
      for (int64_t j = i + (Nk - Nq) + 1; causal && j < Nk; j++) row[j] = 0;
    }
  uint8_t *dm = saved_alloc(c, n);
  device_memcpy_h2d(dm, h, n);
  free(h);
  m->add = NULL;
  m->keep = dm;
  m->mb = dim32(G);
  return m;
}

nn_var nn_attention(nn_ctx *c, nn_var q, nn_var k, nn_var v, int64_t G, int64_t Nq, int64_t Nk,
                    int64_t C, int heads, const char *name) {
  return nn_attention_masked(c, q, k, v, G, Nq, Nk, C, heads, NULL, name);
}

nn_var nn_attention_masked(nn_ctx *c, nn_var q, nn_var k, nn_var v, int64_t G, int64_t Nq,
                           int64_t Nk, int64_t C, int heads, const uint8_t *key_keep,
                           const char *name) {
  return nn_attention_ex(c, q, k, v, G, Nq, Nk, C, heads, key_keep, 0, name);
}

nn_var nn_attention_ex(nn_ctx *c, nn_var q, nn_var k, nn_var v, int64_t G, int64_t Nq,
                       int64_t Nk, int64_t C, int heads, const uint8_t *key_keep, int causal,
                       const char *name) {
  TB_CHECKF(N_(q) == G * Nq * C && N_(k) == G * Nk * C && N_(v) == G * Nk * C && C % heads == 0,
            "attention: shapes");
  nn_var y = var_new(c, G * Nq * C, rg_any(c, q, k, v));
  node_t *d = node_new(c, NOP_ATTN, y);
  int64_t np = G * heads * Nq * Nk;
  d->sv[0] = saved_alloc(c, (size_t)np * sizeof(float)); /* (heads, G, Nq, Nk) */
  int hd = (int)(C / heads), gh = dim32(G * heads), nq = dim32(Nq), nk = dim32(Nk);
  float scale = 1.0f / sqrtf((float)hd);
  op_attn_mask mstore;
  const op_attn_mask *mask = key_mask(c, &mstore, key_keep, G, Nq, Nk, causal);
  if (heads == 1) {
    op_attention_fwd(D(y), d->sv[0], D(q), D(k), D(v), mask, gh, 1, nq, nk, hd, scale);
  } else {
    int64_t nqc = G * Nq * C, nkc = G * Nk * C;
    int mq = dim32(G * Nq), mk = dim32(G * Nk);
    float *qs = nn_scratch(c, (size_t)(2 * nqc + 2 * nkc));
    float *ks = qs + nqc, *vs = ks + nkc, *os = vs + nkc;
    op_heads_split(qs, D(q), 1, mq, heads, hd);
    op_heads_split(ks, D(k), 1, mk, heads, hd);
    op_heads_split(vs, D(v), 1, mk, heads, hd);
    op_attention_fwd(os, d->sv[0], qs, ks, vs, mask, gh, 1, nq, nk, hd, scale);
    op_heads_merge(D(y), os, 1, mq, heads, hd);
  }
  d->in[0] = q, d->in[1] = k, d->in[2] = v;
  d->i[0] = G, d->i[1] = Nq, d->i[2] = Nk, d->i[3] = C, d->i[4] = heads, d->i[5] = -1;
  if (name && c->keep_attn && keep_wanted(c, name)) {
    int slot = c->nattn;
    if (c->recomputing) {
      c->nattn++; /* the same layers run in the same order: reuse the slot */
    } else {
      if (c->nattn == c->attncap) {
        c->attncap = c->attncap ? 2 * c->attncap : 16;
        c->attn = xrealloc(c->attn, c->attncap * sizeof *c->attn);
      }
      attn_rec *r = &c->attn[c->nattn++];
      snprintf(r->name, sizeof r->name, "%s", name);
      r->shape[0] = G, r->shape[1] = heads, r->shape[2] = Nq, r->shape[3] = Nk;
      if (c->level == 0 && heads == 1) {
        r->probs = d->sv[0];
      } else {
        r->probs = arena_alloc(&c->act[0], (size_t)np * sizeof(float), 0);
        if (heads == 1) device_memcpy_d2d(r->probs, d->sv[0], (size_t)np * sizeof(float));
        else probs_swap(r->probs, d->sv[0], heads, G, Nq * Nk);
      }
      /* the extra gradient of the maps only exists where a backward can use it */
      r->extra = c->nograd ? NULL : arena_alloc(&c->act[0], (size_t)np * sizeof(float), 1);
    }
    d->i[5] = slot;
  }
  return y;
}

/* ---- element-wise GELU, row L2 norm, token embeddings, pooling, cross-entropy -------------
 * Each builder is followed by its backward, which backward_node calls. */

nn_var nn_gelu(nn_ctx *c, nn_var x) {
  nn_var y = var_new(c, N_(x), c->v[x].rg);
  op_gelu_erf_fwd(D(y), D(x), N_(x));
  node_new(c, NOP_GELU, y)->in[0] = x;
  return y;
}
static void gelu_bwd(nn_ctx *c, const node_t *d, const float *dy) {
  op_gelu_erf_bwd(gbuf(c, d->in[0]), dy, D(d->in[0]), N_(d->out));
}

nn_var nn_quick_gelu(nn_ctx *c, nn_var x) {
  nn_var y = var_new(c, N_(x), c->v[x].rg);
  op_quick_gelu_fwd(D(y), D(x), N_(x));
  node_new(c, NOP_QGELU, y)->in[0] = x;
  return y;
}
static void quick_gelu_bwd(nn_ctx *c, const node_t *d, const float *dy) {
  op_quick_gelu_bwd(gbuf(c, d->in[0]), dy, D(d->in[0]), N_(d->out));
}

nn_var nn_l2norm(nn_ctx *c, nn_var x, int64_t M, int64_t C) {
  TB_CHECKF(N_(x) == M * C, "l2norm: shapes");
  nn_var y = var_new(c, M * C, c->v[x].rg);
  node_t *d = node_new(c, NOP_L2NORM, y);
  d->sv[0] = saved_alloc(c, (size_t)M * sizeof(float)); /* rnorm (M) */
  op_l2norm_fwd(D(y), d->sv[0], D(x), dim32(M), dim32(C), 1e-6f);
  d->in[0] = x;
  d->i[0] = M, d->i[1] = C;
  return y;
}
static void l2norm_bwd(nn_ctx *c, const node_t *d, const float *dy) {
  op_l2norm_bwd(gbuf(c, d->in[0]), dy, D(d->out), d->sv[0], (int)d->i[0], (int)d->i[1]);
}

/* Host int32 values uploaded into the activation arena (ids, targets). */
static int32_t *upload_i32(nn_ctx *c, const int32_t *h, int64_t n) {
  int32_t *dv = saved_alloc(c, (size_t)(n > 0 ? n : 1) * sizeof(int32_t));
  if (n > 0) device_memcpy_h2d(dv, h, (size_t)n * sizeof(int32_t));
  return dv;
}

nn_var nn_embedding(nn_ctx *c, nn_var table, const int32_t *ids, int64_t N, int64_t V,
                    int64_t Dm) {
  TB_CHECKF(N_(table) == V * Dm, "embedding: the table has %lld values, not V x D = %lld",
            (long long)N_(table), (long long)(V * Dm));
  nn_var y = var_new(c, N * Dm, c->v[table].rg);
  node_t *d = node_new(c, NOP_EMBED, y);
  d->ids = upload_i32(c, ids, N);
  op_embedding_fwd(D(y), D(table), d->ids, dim32(N), dim32(V), dim32(Dm));
  d->in[0] = table;
  d->i[0] = N, d->i[1] = V, d->i[2] = Dm;
  return y;
}
static void embedding_bwd(nn_ctx *c, const node_t *d, const float *dy) {
  op_embedding_bwd(gbuf(c, d->in[0]), dy, d->ids, (int)d->i[0], (int)d->i[1], (int)d->i[2]);
}

nn_var nn_token_pool(nn_ctx *c, nn_var x, const float *w, int64_t B, int64_t N, int64_t C) {
  TB_CHECKF(N_(x) == B * N * C, "token_pool: shapes");
  nn_var y = var_new(c, B * C, c->v[x].rg);
  node_t *d = node_new(c, NOP_POOL, y);
  d->sv[0] = saved_alloc(c, (size_t)(B * N) * sizeof(float)); /* the weights (B, N) */
  device_memcpy_h2d(d->sv[0], w, (size_t)(B * N) * sizeof(float));
  op_token_pool_fwd(D(y), D(x), d->sv[0], dim32(B), dim32(N), dim32(C));
  d->in[0] = x;
  d->i[0] = B, d->i[1] = N, d->i[2] = C;
  return y;
}
static void token_pool_bwd(nn_ctx *c, const node_t *d, const float *dy) {
  op_token_pool_bwd(gbuf(c, d->in[0]), dy, d->sv[0], (int)d->i[0], (int)d->i[1], (int)d->i[2]);
}

nn_var nn_xent(nn_ctx *c, nn_var logits, const int32_t *target, int64_t N, int64_t C,
               float scale) {
  TB_CHECKF(N_(logits) == N * C, "xent: logits have %lld values, not N x C = %lld",
            (long long)N_(logits), (long long)(N * C));
  nn_var y = var_new(c, 1, c->v[logits].rg);
  node_t *d = node_new(c, NOP_XENT, y);
  d->sv[0] = saved_alloc(c, (size_t)(N * C) * sizeof(float)); /* probs (N, C) */
  d->ids = upload_i32(c, target, N);
  op_xent_fwd(D(y), d->sv[0], D(logits), d->ids, dim32(N), dim32(C), scale);
  d->in[0] = logits;
  d->i[0] = N, d->i[1] = C;
  d->f[0] = scale;
  return y;
}
static void xent_bwd(nn_ctx *c, const node_t *d, const float *dy) {
  float dl; /* the scalar's incoming gradient, read back from the device */
  device_memcpy_d2h(&dl, dy, sizeof dl);
  op_xent_bwd(gbuf(c, d->in[0]), dl, d->sv[0], d->ids, (int)d->i[0], (int)d->i[1], d->f[0]);
}

static nn_var loss_node(nn_ctx *c, nop_kind op, nn_var pred, nn_var target, float huber_c) {
  TB_CHECKF(N_(pred) == N_(target), "loss: pred has %lld values, target %lld",
            (long long)N_(pred), (long long)N_(target));
  nn_var y = var_new(c, 1, rg_any(c, pred, target, -1));
  if (op == NOP_MSE) op_mse_fwd(D(y), D(pred), D(target), N_(pred));
  else op_huber_fwd(D(y), D(pred), D(target), N_(pred), huber_c);
  node_t *d = node_new(c, op, y);
  d->in[0] = pred, d->in[1] = target;
  d->f[0] = huber_c;
  return y;
}

nn_var nn_mse(nn_ctx *c, nn_var pred, nn_var target) {
  return loss_node(c, NOP_MSE, pred, target, 0.0f);
}
nn_var nn_huber(nn_ctx *c, nn_var pred, nn_var target, float hc) {
  return loss_node(c, NOP_HUBER, pred, target, hc);
}

/* ---- the frame VAE's ops: asymmetric padding, channel slices, clamp, posterior draw, KL, L1 --
 * Each builder is followed by its backward, which backward_node calls. */

nn_var nn_pad2d(nn_ctx *c, nn_var x, int64_t N, int64_t C, int64_t H, int64_t W, int top,
                int bottom, int left, int right) {
  TB_CHECKF(N_(x) == N * C * H * W && top >= 0 && bottom >= 0 && left >= 0 && right >= 0,
            "pad2d: shapes");
  nn_var y = var_new(c, N * C * (H + top + bottom) * (W + left + right), c->v[x].rg);
  op_pad2d_fwd(D(y), D(x), dim32(N), dim32(C), dim32(H), dim32(W), top, bottom, left, right);
  node_t *d = node_new(c, NOP_PAD2D, y);
  d->in[0] = x;
  d->i[0] = N, d->i[1] = C, d->i[2] = H, d->i[3] = W;
  d->i[4] = top, d->i[5] = bottom, d->i[6] = left, d->i[7] = right;
  return y;
}
static void pad2d_bwd(nn_ctx *c, const node_t *d, const float *dy) {
  const int64_t *I = d->i;
  op_pad2d_bwd(gbuf(c, d->in[0]), dy, (int)I[0], (int)I[1], (int)I[2], (int)I[3], (int)I[4],
               (int)I[5], (int)I[6], (int)I[7]);
}

/* A channel slice is a crop of x seen as N images of C rows by S columns: the forward is the
 * padding's backward into a zeroed output, the backward pads dy into scratch and adds it. */
nn_var nn_chan_slice(nn_ctx *c, nn_var x, int64_t N, int64_t C, int64_t S, int64_t c0,
                     int64_t k) {
  TB_CHECKF(N_(x) == N * C * S && c0 >= 0 && k >= 1 && c0 + k <= C, "chan_slice: shapes");
  nn_var y = var_new(c, N * k * S, c->v[x].rg);
  dzero(D(y), N * k * S);
  op_pad2d_bwd(D(y), D(x), dim32(N), 1, dim32(k), dim32(S), dim32(c0), dim32(C - c0 - k), 0, 0);
  node_t *d = node_new(c, NOP_SLICE, y);
  d->in[0] = x;
  d->i[0] = N, d->i[1] = C, d->i[2] = S, d->i[3] = c0, d->i[4] = k;
  return y;
}
static void chan_slice_bwd(nn_ctx *c, const node_t *d, const float *dy) {
  float *dx = gbuf(c, d->in[0]);
  if (!dx) return;
  int64_t N = d->i[0], C = d->i[1], S = d->i[2], c0 = d->i[3], k = d->i[4];
  float *full = nn_scratch(c, (size_t)(N * C * S));
  op_pad2d_fwd(full, dy, dim32(N), 1, dim32(k), dim32(S), dim32(c0), dim32(C - c0 - k), 0, 0);
  op_axpy(dx, 1.0f, full, N * C * S);
}

nn_var nn_clamp(nn_ctx *c, nn_var x, float lo, float hi) {
  nn_var y = var_new(c, N_(x), c->v[x].rg);
  op_clamp_fwd(D(y), D(x), lo, hi, N_(x));
  node_t *d = node_new(c, NOP_CLAMP, y);
  d->in[0] = x;
  d->f[0] = lo, d->f[1] = hi;
  return y;
}
static void clamp_bwd(nn_ctx *c, const node_t *d, const float *dy) {
  op_clamp_bwd(gbuf(c, d->in[0]), dy, D(d->in[0]), d->f[0], d->f[1], N_(d->out));
}

nn_var nn_gauss_sample(nn_ctx *c, nn_var mean, nn_var logvar, const float *noise) {
  TB_CHECKF(N_(mean) == N_(logvar), "gauss_sample: mean has %lld values, logvar %lld",
            (long long)N_(mean), (long long)N_(logvar));
  int64_t n = N_(mean);
  nn_var y = var_new(c, n, rg_any(c, mean, logvar, -1));
  node_t *d = node_new(c, NOP_GAUSS, y);
  d->sv[0] = saved_alloc(c, (size_t)n * sizeof(float)); /* the noise (n) */
  device_memcpy_h2d(d->sv[0], noise, (size_t)n * sizeof(float));
  op_gauss_sample_fwd(D(y), D(mean), D(logvar), d->sv[0], n);
  d->in[0] = mean, d->in[1] = logvar;
  return y;
}
static void gauss_sample_bwd(nn_ctx *c, const node_t *d, const float *dy) {
  op_gauss_sample_bwd(gbuf(c, d->in[0]), gbuf(c, d->in[1]), dy, D(d->in[1]), d->sv[0],
                      N_(d->out));
}

nn_var nn_kl_gauss(nn_ctx *c, nn_var mean, nn_var logvar) {
  TB_CHECKF(N_(mean) == N_(logvar), "kl_gauss: mean has %lld values, logvar %lld",
            (long long)N_(mean), (long long)N_(logvar));
  nn_var y = var_new(c, 1, rg_any(c, mean, logvar, -1));
  op_kl_gauss_fwd(D(y), D(mean), D(logvar), N_(mean));
  node_t *d = node_new(c, NOP_KL, y);
  d->in[0] = mean, d->in[1] = logvar;
  return y;
}
static void kl_gauss_bwd(nn_ctx *c, const node_t *d, const float *dy) {
  float dl; /* the scalar's incoming gradient, read back from the device */
  device_memcpy_d2h(&dl, dy, sizeof dl);
  op_kl_gauss_bwd(gbuf(c, d->in[0]), gbuf(c, d->in[1]), dl, D(d->in[0]), D(d->in[1]),
                  N_(d->in[0]));
}

nn_var nn_l1(nn_ctx *c, nn_var pred, nn_var target) {
  TB_CHECKF(N_(pred) == N_(target), "l1: pred has %lld values, target %lld",
            (long long)N_(pred), (long long)N_(target));
  nn_var y = var_new(c, 1, rg_any(c, pred, target, -1));
  op_l1_fwd(D(y), D(pred), D(target), N_(pred));
  node_t *d = node_new(c, NOP_L1, y);
  d->in[0] = pred, d->in[1] = target;
  return y;
}
static void l1_bwd(nn_ctx *c, const node_t *d, const float *dy) {
  float dl;
  device_memcpy_d2h(&dl, dy, sizeof dl);
  op_l1_bwd(gbuf(c, d->in[0]), gbuf(c, d->in[1]), dl, D(d->in[0]), D(d->in[1]), N_(d->in[0]));
}

/* Embeddings of per-sample scalars (host arrays): uploaded as a leaf, embedded on the device. */
static nn_var embed(nn_ctx *c, const float *x, int64_t N, int dim, int guidance) {
  nn_var s = nn_input(c, x, N, 0);
  nn_var y = var_new(c, N * dim, 0);
  if (guidance) op_guidance_embedding(D(y), D(s), dim32(N), dim);
  else op_timestep_embedding(D(y), D(s), dim32(N), dim, 10000.0f);
  return y;
}
nn_var nn_timestep_embedding(nn_ctx *c, const float *t, int64_t N, int dim) {
  return embed(c, t, N, dim, 0);
}
nn_var nn_guidance_embedding(nn_ctx *c, const float *w, int64_t N, int dim) {
  return embed(c, w, N, dim, 1);
}

/* While recomputing, attention slots are reused in order: the ckpt node remembers where its
 * block's slots began. */
nn_var nn_checkpoint(nn_ctx *c, nn_block_fn fn, void *blk, const nn_var in[3]) {
  if (c->nograd && c->level == 0) {
    /* inference: the block's insides live on level 1 and go as soon as its output is copied */
    int nv0 = c->nv;
    c->level = 1;
    nn_var inner = fn(c, blk, in);
    c->level = 0;
    int64_t n = c->v[inner].n;
    float *keep = arena_alloc(&c->act[0], (size_t)n * sizeof(float), 0);
    device_memcpy_d2d(keep, c->v[inner].data, (size_t)n * sizeof(float));
    c->nv = nv0;
    arena_reset(&c->act[1]);
    nn_var y = var_new(c, 0, 0);
    c->v[y].data = keep;
    c->v[y].n = n;
    return y;
  }
  if (!c->recompute || c->level != 0) return fn(c, blk, in);
  int nv0 = c->nv, nn0 = c->nn;
  uint64_t ctr0 = c->rng_ctr;
  int attn0 = c->nattn;
  c->level = 1;
  nn_var inner = fn(c, blk, in);
  c->level = 0;
  int64_t n = c->v[inner].n;
  int rg = c->v[inner].rg;
  float *keep = arena_alloc(&c->act[0], (size_t)n * sizeof(float), 0);
  device_memcpy_d2d(keep, c->v[inner].data, (size_t)n * sizeof(float));
  /* drop the insides */
  c->nv = nv0;
  c->nn = nn0;
  arena_reset(&c->act[1]);
  arena_reset(&c->grd[1]);
  nn_var y = var_new(c, 0, rg);
  c->v[y].data = keep;
  c->v[y].n = n;
  node_t *d = node_new(c, NOP_CKPT, y);
  d->fn = fn;
  d->blk = blk;
  for (int i = 0; i < 3; i++) d->in[i] = in[i];
  d->i[0] = (int64_t)ctr0;
  d->i[1] = attn0;
  d->i[2] = c->rng_ctr - ctr0;
  return y;
}

/* ---- backward ------------------------------------------------------------------------ */

static void backward_range(nn_ctx *c, int lo, int hi);

static void attention_bwd(nn_ctx *c, const node_t *d, const float *dy) {
  const int64_t *I = d->i;
  int64_t G = I[0], Nq = I[1], Nk = I[2], C = I[3];
  int heads = (int)I[4], hd = (int)(C / heads), gh = dim32(G * heads), nq = dim32(Nq),
      nk = dim32(Nk);
  float scale = 1.0f / sqrtf((float)hd);
  const float *extra = I[5] >= 0 ? c->attn[I[5]].extra : NULL; /* (G, heads, Nq, Nk) */
  float *dq = gbuf(c, d->in[0]), *dk = gbuf(c, d->in[1]), *dv = gbuf(c, d->in[2]);
  const float *q = D(d->in[0]), *k = D(d->in[1]), *v = D(d->in[2]);
  if (heads == 1) {
    op_attention_bwd(dq, dk, dv, dy, extra, q, k, v, d->sv[0], gh, 1, nq, nk, hd, scale);
    return;
  }
  int64_t nqc = G * Nq * C, nkc = G * Nk * C, np = G * heads * Nq * Nk;
  float *qs = nn_scratch(c, (size_t)(4 * nqc + 4 * nkc + (extra ? np : 0)));
  float *ks = qs + nqc, *vs = ks + nkc, *dos = vs + nkc, *dqs = dos + nqc, *dks = dqs + nqc,
        *dvs = dks + nkc, *exs = NULL;
  int mq = dim32(G * Nq), mk = dim32(G * Nk);
  op_heads_split(qs, q, 1, mq, heads, hd);
  op_heads_split(ks, k, 1, mk, heads, hd);
  op_heads_split(vs, v, 1, mk, heads, hd);
  op_heads_split(dos, dy, 1, mq, heads, hd);
  if (extra) {
    exs = dvs + nkc;
    probs_swap(exs, extra, G, heads, Nq * Nk);
  }
  if (dq) dzero(dqs, nqc);
  if (dk) dzero(dks, nkc);
  if (dv) dzero(dvs, nkc);
  op_attention_bwd(dq ? dqs : NULL, dk ? dks : NULL, dv ? dvs : NULL, dos, exs, qs, ks, vs,
                   d->sv[0], gh, 1, nq, nk, hd, scale);
  /* each head-major gradient back to the slot its input used, accumulated */
  if (dq) op_heads_split_bwd(dq, dqs, 1, mq, heads, hd);
  if (dk) op_heads_split_bwd(dk, dks, 1, mk, heads, hd);
  if (dv) op_heads_split_bwd(dv, dvs, 1, mk, heads, hd);
}

static void backward_node(nn_ctx *c, node_t *d) {
  float *dy = c->v[d->out].grad;
  if (!dy) return;
  const int64_t *I = d->i;
  switch (d->op) {
  case NOP_LEAF:
    break;
  case NOP_LINEAR:
    op_linear_bwd(gbuf(c, d->in[0]), gbuf(c, d->in[1]), gbuf(c, d->in[2]), dy, D(d->in[0]),
                  D(d->in[1]), (int)I[0], (int)I[1], (int)I[2]);
    break;
  case NOP_CONV2D:
    op_conv2d_bwd(gbuf(c, d->in[0]), gbuf(c, d->in[1]), gbuf(c, d->in[2]), dy, D(d->in[0]),
                  D(d->in[1]), (int)I[0], (int)I[1], (int)I[2], (int)I[3], (int)I[4], (int)I[5],
                  (int)I[6], (int)I[7]);
    break;
  case NOP_TCONV3:
    op_tconv_bwd(gbuf(c, d->in[0]), gbuf(c, d->in[1]), gbuf(c, d->in[2]), dy, D(d->in[0]),
                 D(d->in[1]), (int)I[0], (int)I[1], (int)I[2], (int)I[4], (int)I[3], 3);
    break;
  case NOP_GNORM: {
    int B = (int)I[0], T = (int)I[1], C = (int)I[2], S = (int)I[3], G = (int)I[4];
    if (I[5]) /* with SiLU: the op recomputes the normalised values */
      op_groupnorm_silu_bwd(gbuf(c, d->in[0]), gbuf(c, d->in[1]), gbuf(c, d->in[2]), dy,
                            D(d->in[0]), d->sv[0], d->sv[1], DN(d->in[1]), DN(d->in[2]), B, T, C,
                            S, G);
    else
      op_groupnorm_bwd(gbuf(c, d->in[0]), gbuf(c, d->in[1]), gbuf(c, d->in[2]), dy, D(d->in[0]),
                       d->sv[0], d->sv[1], DN(d->in[1]), B, T, C, S, G);
    break;
  }
  case NOP_LNORM:
    op_layernorm_bwd(gbuf(c, d->in[0]), gbuf(c, d->in[1]), gbuf(c, d->in[2]), dy, D(d->in[0]),
                     d->sv[0], d->sv[1], DN(d->in[1]), (int)I[0], (int)I[1]);
    break;
  case NOP_SILU:
    op_silu_bwd(gbuf(c, d->in[0]), dy, D(d->in[0]), N_(d->out));
    break;
  case NOP_GEGLU:
    op_geglu_bwd(gbuf(c, d->in[0]), dy, D(d->in[0]), (int)I[0], (int)I[1]);
    break;
  case NOP_ADD:
    for (int k = 0; k < 2; k++) {
      float *dx = gbuf(c, d->in[k]);
      if (dx) op_axpy(dx, 1.0f, dy, N_(d->out));
    }
    break;
  case NOP_BIAS:
    op_bias_add_bwd(gbuf(c, d->in[0]), gbuf(c, d->in[1]), dy, (int)I[0], (int)I[1], (int)I[2],
                    (int)I[3]);
    break;
  case NOP_CONCAT:
    op_concat_bwd(gbuf(c, d->in[0]), gbuf(c, d->in[1]), dy, (int)I[0], (int)I[1], (int)I[2],
                  (int)I[3]);
    break;
  case NOP_UP2:
    op_upsample2x_bwd(gbuf(c, d->in[0]), dy, (int)I[0], (int)I[1], (int)I[2], (int)I[3]);
    break;
  case NOP_PERMUTE: {
    int shape[4] = {(int)I[0], (int)I[1], (int)I[2], (int)I[3]};
    int perm[4] = {(int)I[4], (int)I[5], (int)I[6], (int)I[7]};
    op_permute_bwd(gbuf(c, d->in[0]), dy, 4, shape, perm);
    break;
  }
  case NOP_REPEAT:
    op_repeat_bwd(gbuf(c, d->in[0]), dy, (int)I[0], (int)I[1], I[2]);
    break;
  case NOP_DROPOUT:
    op_dropout_bwd(gbuf(c, d->in[0]), dy, d->mask, N_(d->out), d->f[0]);
    break;
  case NOP_COND_DROP:
    op_cond_drop_bwd(gbuf(c, d->in[0]), gbuf(c, d->in[1]), dy, d->hkeep, (int)I[0], I[1]);
    break;
  case NOP_ATTN:
    attention_bwd(c, d, dy);
    break;
  case NOP_GELU:
    gelu_bwd(c, d, dy);
    break;
  case NOP_QGELU:
    quick_gelu_bwd(c, d, dy);
    break;
  case NOP_L2NORM:
    l2norm_bwd(c, d, dy);
    break;
  case NOP_EMBED:
    embedding_bwd(c, d, dy);
    break;
  case NOP_POOL:
    token_pool_bwd(c, d, dy);
    break;
  case NOP_XENT:
    xent_bwd(c, d, dy);
    break;
  case NOP_PAD2D:
    pad2d_bwd(c, d, dy);
    break;
  case NOP_SLICE:
    chan_slice_bwd(c, d, dy);
    break;
  case NOP_CLAMP:
    clamp_bwd(c, d, dy);
    break;
  case NOP_GAUSS:
    gauss_sample_bwd(c, d, dy);
    break;
  case NOP_KL:
    kl_gauss_bwd(c, d, dy);
    break;
  case NOP_L1:
    l1_bwd(c, d, dy);
    break;
  case NOP_MSE:
  case NOP_HUBER: {
    float dl; /* the scalar's incoming gradient, read back from the device */
    device_memcpy_d2h(&dl, dy, sizeof dl);
    int64_t n = N_(d->in[0]);
    if (d->op == NOP_MSE)
      op_mse_bwd(gbuf(c, d->in[0]), gbuf(c, d->in[1]), dl, D(d->in[0]), D(d->in[1]), n);
    else
      op_huber_bwd(gbuf(c, d->in[0]), gbuf(c, d->in[1]), dl, D(d->in[0]), D(d->in[1]), n,
                   d->f[0]);
    break;
  }
  case NOP_CKPT: {
    /* recompute the block on level 1, seed its output gradient, run its backward */
    uint64_t ctr_save = c->rng_ctr;
    int nv0 = c->nv, nn0 = c->nn;
    c->rng_ctr = (uint64_t)I[0];
    int attn_save = c->nattn;
    c->nattn = (int)I[1];
    c->recomputing = 1;
    c->level = 1;
    nn_var inner = d->fn(c, d->blk, d->in);
    c->level = 0;
    c->recomputing = 0;
    c->nattn = attn_save;
    c->rng_ctr = ctr_save;
    float *gi = gbuf(c, inner);
    TB_CHECK(gi != NULL);
    device_memcpy_d2d(gi, dy, (size_t)N_(inner) * sizeof(float));
    /* d->in and dy stay valid: level-0 arenas and node array pointers are not reused here,
     * but c->nd may move when the recompute grows it, so work from indexes only. */
    backward_range(c, nn0, c->nn);
    c->nv = nv0;
    c->nn = nn0;
    arena_reset(&c->act[1]);
    arena_reset(&c->grd[1]);
    break;
  }
  }
}

static void backward_range(nn_ctx *c, int lo, int hi) {
  for (int i = hi - 1; i >= lo; i--) {
    node_t d = c->nd[i]; /* copy: a recompute may grow (move) the node array */
    backward_node(c, &d);
  }
}

void nn_backward_many(nn_ctx *c, int n, const nn_var *ys, const float *const *dys) {
  TB_CHECKF(!c->nograd, "nn_backward: the context runs without gradients (nn_ctx_set_grad)");
  TB_CHECKF(!c->backward_done,
            "nn_backward: this pass was already backpropagated; seed every output in one "
            "nn_backward_many call, or nn_ctx_reset and record the pass again");
  TB_CHECK(n >= 1);
  for (int i = 0; i < n; i++) {
    float *g = gbuf(c, ys[i]);
    TB_CHECKF(g != NULL,
              "nn_backward: output %d does not depend on anything that needs a gradient", i);
    int64_t m = N_(ys[i]);
    float *up = nn_scratch(c, (size_t)m);
    device_memcpy_h2d(up, dys[i], (size_t)m * sizeof(float));
    op_axpy(g, 1.0f, up, m);
  }
  c->backward_done = 1;
  backward_range(c, 0, c->nn);
}

void nn_backward(nn_ctx *c, nn_var y, const float *dy) { nn_backward_many(c, 1, &y, &dy); }

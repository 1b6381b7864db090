/* kernels/nn/graph.c — the recording context: activation arenas, the tape of operations,
 * backward, per-block recomputation, kept attention maps, and every tape operation's forward
 * and backward (plain C loops; matrix products through cblas_sgemm).
 *
 * Levels. Vars live on level 0 (kept until nn_ctx_reset) or level 1 (the insides of a block in
 * recompute mode, freed once the block is done). Each level has an activation arena and an
 * activation-gradient arena; both are bump allocators over chunks that coalesce into one chunk
 * of the peak size at reset, so steady-state passes allocate nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/tensor.h"
#include "kernels/nn.h"
#include "kernels/nn/nn_internal.h"

/* ---- arenas -------------------------------------------------------------------------- */

#define ARENA_MIN_CHUNK ((size_t)16 << 20) /* bytes; first chunk before the peak is known */

typedef struct {
  char **chunk;
  size_t *cap;
  int n, ncap;
  size_t used;  /* in the last chunk */
  size_t total; /* bytes handed out since reset */
  size_t peak;
} arena;

static void *arena_alloc(arena *a, size_t bytes, int zero) {
  bytes = (bytes + 63) & ~(size_t)63;
  if (bytes == 0) bytes = 64;
  if (a->n == 0 || a->used + bytes > a->cap[a->n - 1]) {
    size_t cap = bytes > ARENA_MIN_CHUNK ? bytes : ARENA_MIN_CHUNK;
    if (a->n == 0 && a->peak > cap) cap = a->peak;
    if (a->n == a->ncap) {
      a->ncap = a->ncap ? 2 * a->ncap : 8;
      a->chunk = xrealloc(a->chunk, a->ncap * sizeof *a->chunk);
      a->cap = xrealloc(a->cap, a->ncap * sizeof *a->cap);
    }
    a->chunk[a->n] = aligned_alloc_zero(cap);
    TB_CHECKF(a->chunk[a->n] != NULL, "out of memory: activation chunk of %zu bytes", cap);
    a->cap[a->n] = cap;
    a->n++;
    a->used = 0;
  }
  void *p = a->chunk[a->n - 1] + a->used;
  a->used += bytes;
  a->total += bytes;
  if (a->total > a->peak) a->peak = a->total;
  if (zero) memset(p, 0, bytes);
  return p;
}

/* Frees everything handed out; several chunks become one chunk of the peak size. */
static void arena_reset(arena *a) {
  if (a->n > 1) {
    for (int i = 0; i < a->n; i++) aligned_free(a->chunk[i]);
    a->n = 0;
  }
  a->used = 0;
  a->total = 0;
}

static void arena_free(arena *a) {
  for (int i = 0; i < a->n; i++) aligned_free(a->chunk[i]);
  free(a->chunk);
  free(a->cap);
  memset(a, 0, sizeof *a);
}

/* ---- tape ---------------------------------------------------------------------------- */

typedef enum {
  OP_LEAF = 0,
  OP_LINEAR,
  OP_CONV2D,
  OP_TCONV3,
  OP_GNORM,
  OP_LNORM,
  OP_SILU,
  OP_GEGLU,
  OP_ADD,
  OP_ADD_BLAST,
  OP_ADD_BFIRST,
  OP_CONCAT,
  OP_UP2,
  OP_PERMUTE,
  OP_REPEAT,
  OP_DROPOUT,
  OP_ATTN,
  OP_CKPT,
} op_kind;

typedef struct {
  float *data, *grad;
  int64_t n;
  uint8_t rg;    /* requires grad */
  uint8_t level; /* arena level of data and grad */
  uint8_t param; /* grad is a parameter gradient (not arena) */
} var_t;

typedef struct {
  op_kind op;
  nn_var in[4];
  nn_var out;
  int64_t i[10];
  float f[2];
  float *sv[2]; /* saved tensors (statistics, probabilities, masks) */
  nn_block_fn fn;
  void *blk;
} node_t;

typedef struct {
  char name[NN_NAME_MAX];
  int64_t shape[4];
  float *probs, *extra; /* level-0 copies */
} attn_rec;

struct nn_ctx {
  arena act[2], grd[2];
  var_t *v;
  int nv, vcap;
  node_t *nd;
  int nn, ncap;
  int level;
  int recompute, train, recomputing;
  uint64_t seed, rng_ctr;
  int keep_attn;
  attn_rec *attn;
  int nattn, attncap;
  float *scratch; /* im2col etc., grown as needed, not part of the arenas */
  size_t scratch_cap;
};

nn_ctx *nn_ctx_new(void) {
  nn_ctx *c = xcalloc(1, sizeof *c);
  return c;
}

void nn_ctx_free(nn_ctx *c) {
  if (!c) return;
  for (int l = 0; l < 2; l++) {
    arena_free(&c->act[l]);
    arena_free(&c->grd[l]);
  }
  free(c->v);
  free(c->nd);
  free(c->attn);
  aligned_free(c->scratch);
  free(c);
}

void nn_ctx_reset(nn_ctx *c) {
  for (int l = 0; l < 2; l++) {
    arena_reset(&c->act[l]);
    arena_reset(&c->grd[l]);
  }
  c->nv = c->nn = c->nattn = 0;
  c->level = 0;
  c->rng_ctr = 0;
}

void nn_ctx_set_mode(nn_ctx *c, int recompute, int train, uint64_t seed) {
  c->recompute = recompute;
  c->train = train;
  c->seed = seed;
}

size_t nn_ctx_bytes(const nn_ctx *c) {
  return c->act[0].peak + c->act[1].peak + c->grd[0].peak + c->grd[1].peak;
}

void nn_ctx_keep_attn(nn_ctx *c, int on) { c->keep_attn = on; }
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

void *nn_ctx_alloc(nn_ctx *c, size_t bytes) { return arena_alloc(&c->act[0], bytes, 1); }

float *nn_scratch(nn_ctx *c, size_t nfloats) {
  if (nfloats > c->scratch_cap) {
    aligned_free(c->scratch);
    c->scratch = aligned_alloc_zero(nfloats * sizeof(float));
    TB_CHECKF(c->scratch != NULL, "out of memory: scratch of %zu floats", nfloats);
    c->scratch_cap = nfloats;
  }
  return c->scratch;
}

static nn_var var_new(nn_ctx *c, int64_t n, int rg) {
  if (c->nv == c->vcap) {
    c->vcap = c->vcap ? 2 * c->vcap : 1024;
    c->v = xrealloc(c->v, c->vcap * sizeof *c->v);
  }
  var_t *v = &c->v[c->nv];
  memset(v, 0, sizeof *v);
  v->n = n;
  v->rg = (uint8_t)rg;
  v->level = (uint8_t)c->level;
  v->data = arena_alloc(&c->act[c->level], (size_t)n * sizeof(float), 0);
  return c->nv++;
}

static node_t *node_new(nn_ctx *c, op_kind op, nn_var out) {
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

static float *saved_alloc(nn_ctx *c, int64_t n) {
  return arena_alloc(&c->act[c->level], (size_t)n * sizeof(float), 0);
}

nn_var nn_input(nn_ctx *c, const float *data, int64_t n, int requires_grad) {
  nn_var v = var_new(c, n, requires_grad);
  if (data) memcpy(c->v[v].data, data, n * sizeof(float));
  else memset(c->v[v].data, 0, n * sizeof(float));
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
  v->rg = !frozen;
  v->param = 1;
  v->grad = frozen ? NULL : p->grad + p->info[idx].offset;
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
#define N_(i_) (c->v[(i_)].n)

/* ---- operations ---------------------------------------------------------------------- */

nn_var nn_linear(nn_ctx *c, nn_var x, nn_var W, nn_var b, int64_t M, int64_t K, int64_t N) {
  TB_CHECKF(N_(x) == M * K && N_(W) == N * K && (b < 0 || N_(b) == N), "linear: shapes");
  nn_var y = var_new(c, M * N, rg_any(c, x, W, b));
  prim_linear_fwd(D(x), D(W), b >= 0 ? D(b) : NULL, D(y), M, K, N);
  node_t *d = node_new(c, OP_LINEAR, y);
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
  prim_conv2d_fwd(c, D(x), D(W), b >= 0 ? D(b) : NULL, D(y), Nb, Ci, H, Wd, Co, k, s, pad);
  node_t *d = node_new(c, OP_CONV2D, y);
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
  prim_tconv3_fwd(c, D(x), D(W), b >= 0 ? D(b) : NULL, D(y), B, T, Ci, Co, S);
  node_t *d = node_new(c, OP_TCONV3, y);
  d->in[0] = x, d->in[1] = W, d->in[2] = b;
  d->i[0] = B, d->i[1] = T, d->i[2] = Ci, d->i[3] = Co, d->i[4] = S;
  return y;
}

nn_var nn_group_norm(nn_ctx *c, nn_var x, nn_var g, nn_var b, int64_t B, int64_t T, int64_t C,
                     int64_t S, int G, float eps, int silu) {
  TB_CHECKF(N_(x) == B * T * C * S && C % G == 0 && N_(g) == C && N_(b) == C, "group_norm");
  nn_var y = var_new(c, N_(x), rg_any(c, x, g, b));
  node_t *d = node_new(c, OP_GNORM, y);
  d->sv[0] = saved_alloc(c, 2 * B * G); /* mean, rstd */
  prim_gnorm_fwd(D(x), D(g), D(b), D(y), d->sv[0], B, T, C, S, G, eps, silu);
  d->in[0] = x, d->in[1] = g, d->in[2] = b;
  d->i[0] = B, d->i[1] = T, d->i[2] = C, d->i[3] = S, d->i[4] = G, d->i[5] = silu;
  d->f[0] = eps;
  return y;
}

nn_var nn_layer_norm(nn_ctx *c, nn_var x, nn_var g, nn_var b, int64_t M, int64_t C, float eps) {
  TB_CHECKF(N_(x) == M * C && N_(g) == C && N_(b) == C, "layer_norm");
  nn_var y = var_new(c, N_(x), rg_any(c, x, g, b));
  node_t *d = node_new(c, OP_LNORM, y);
  d->sv[0] = saved_alloc(c, 2 * M);
  prim_lnorm_fwd(D(x), D(g), D(b), D(y), d->sv[0], M, C, eps);
  d->in[0] = x, d->in[1] = g, d->in[2] = b;
  d->i[0] = M, d->i[1] = C;
  return y;
}

nn_var nn_silu(nn_ctx *c, nn_var x) {
  int64_t n = N_(x);
  nn_var y = var_new(c, n, c->v[x].rg);
  const float *a = D(x);
  float *o = D(y);
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; i++) o[i] = a[i] / (1.0f + expf(-a[i]));
  node_t *d = node_new(c, OP_SILU, y);
  d->in[0] = x;
  return y;
}

static inline float gelu_f(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678f)); }
static inline float gelu_d(float x) {
  return 0.5f * (1.0f + erff(x * 0.70710678f)) + x * 0.39894228f * expf(-0.5f * x * x);
}

nn_var nn_geglu(nn_ctx *c, nn_var x, int64_t M, int64_t F) {
  TB_CHECK(N_(x) == M * 2 * F);
  nn_var y = var_new(c, M * F, c->v[x].rg);
  const float *a = D(x);
  float *o = D(y);
#pragma omp parallel for if (M * F > 65536)
  for (int64_t m = 0; m < M; m++)
    for (int64_t j = 0; j < F; j++) o[m * F + j] = a[m * 2 * F + j] * gelu_f(a[m * 2 * F + F + j]);
  node_t *d = node_new(c, OP_GEGLU, y);
  d->in[0] = x;
  d->i[0] = M, d->i[1] = F;
  return y;
}

nn_var nn_add(nn_ctx *c, nn_var a, nn_var b) {
  TB_CHECK(N_(a) == N_(b));
  int64_t n = N_(a);
  nn_var y = var_new(c, n, rg_any(c, a, b, -1));
  const float *p = D(a), *q = D(b);
  float *o = D(y);
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; i++) o[i] = p[i] + q[i];
  node_t *d = node_new(c, OP_ADD, y);
  d->in[0] = a, d->in[1] = b;
  return y;
}

nn_var nn_add_bcast_last(nn_ctx *c, nn_var x, nn_var e, int64_t A, int64_t R, int64_t S) {
  TB_CHECK(N_(x) == A * R * S && N_(e) == A * R);
  nn_var y = var_new(c, N_(x), rg_any(c, x, e, -1));
  const float *p = D(x), *q = D(e);
  float *o = D(y);
  for (int64_t ar = 0; ar < A * R; ar++)
    for (int64_t s = 0; s < S; s++) o[ar * S + s] = p[ar * S + s] + q[ar];
  node_t *d = node_new(c, OP_ADD_BLAST, y);
  d->in[0] = x, d->in[1] = e;
  d->i[0] = A, d->i[1] = R, d->i[2] = S;
  return y;
}

nn_var nn_add_bcast_first(nn_ctx *c, nn_var x, nn_var p, int64_t A, int64_t R) {
  TB_CHECK(N_(x) == A * R && N_(p) >= R); /* a longer p (a position table) uses its first R */
  nn_var y = var_new(c, N_(x), rg_any(c, x, p, -1));
  const float *a = D(x), *q = D(p);
  float *o = D(y);
  for (int64_t i = 0; i < A; i++)
    for (int64_t r = 0; r < R; r++) o[i * R + r] = a[i * R + r] + q[r];
  node_t *d = node_new(c, OP_ADD_BFIRST, y);
  d->in[0] = x, d->in[1] = p;
  d->i[0] = A, d->i[1] = R;
  return y;
}

nn_var nn_concat_chan(nn_ctx *c, nn_var a, nn_var b, int64_t N, int64_t Ca, int64_t Cb, int64_t S) {
  TB_CHECK(N_(a) == N * Ca * S && N_(b) == N * Cb * S);
  nn_var y = var_new(c, N * (Ca + Cb) * S, rg_any(c, a, b, -1));
  for (int64_t n = 0; n < N; n++) {
    memcpy(D(y) + n * (Ca + Cb) * S, D(a) + n * Ca * S, Ca * S * sizeof(float));
    memcpy(D(y) + n * (Ca + Cb) * S + Ca * S, D(b) + n * Cb * S, Cb * S * sizeof(float));
  }
  node_t *d = node_new(c, OP_CONCAT, y);
  d->in[0] = a, d->in[1] = b;
  d->i[0] = N, d->i[1] = Ca, d->i[2] = Cb, d->i[3] = S;
  return y;
}

nn_var nn_upsample2(nn_ctx *c, nn_var x, int64_t N, int64_t C, int64_t H, int64_t W) {
  TB_CHECK(N_(x) == N * C * H * W);
  nn_var y = var_new(c, N * C * 4 * H * W, c->v[x].rg);
  const float *a = D(x);
  float *o = D(y);
  for (int64_t nc = 0; nc < N * C; nc++)
    for (int64_t h = 0; h < 2 * H; h++)
      for (int64_t w = 0; w < 2 * W; w++)
        o[(nc * 2 * H + h) * 2 * W + w] = a[(nc * H + h / 2) * W + w / 2];
  node_t *d = node_new(c, OP_UP2, y);
  d->in[0] = x;
  d->i[0] = N, d->i[1] = C, d->i[2] = H, d->i[3] = W;
  return y;
}

/* out[o0,o1,o2,o3] = in[...] with out dim i = in dim perm[i]; inverse = 0 scatters instead. */
static void permute4(const float *in, float *out, const int64_t dims[4], const int perm[4],
                     int accumulate_back) {
  int64_t od[4], istr[4], st = 1;
  for (int i = 3; i >= 0; i--) {
    istr[i] = st;
    st *= dims[i];
  }
  for (int i = 0; i < 4; i++) od[i] = dims[perm[i]];
  int64_t s0 = istr[perm[0]], s1 = istr[perm[1]], s2 = istr[perm[2]], s3 = istr[perm[3]];
  for (int64_t a = 0; a < od[0]; a++)
    for (int64_t b = 0; b < od[1]; b++)
      for (int64_t e = 0; e < od[2]; e++) {
        int64_t base = a * s0 + b * s1 + e * s2;
        int64_t ob = ((a * od[1] + b) * od[2] + e) * od[3];
        if (!accumulate_back)
          for (int64_t f = 0; f < od[3]; f++) out[ob + f] = in[base + f * s3];
        else /* here `in` is d(out) and `out` is d(in) */
          for (int64_t f = 0; f < od[3]; f++) out[base + f * s3] += in[ob + f];
      }
}

nn_var nn_permute4(nn_ctx *c, nn_var x, const int64_t dims[4], const int perm[4]) {
  TB_CHECK(N_(x) == dims[0] * dims[1] * dims[2] * dims[3]);
  nn_var y = var_new(c, N_(x), c->v[x].rg);
  permute4(D(x), D(y), dims, perm, 0);
  node_t *d = node_new(c, OP_PERMUTE, y);
  d->in[0] = x;
  for (int i = 0; i < 4; i++) d->i[i] = dims[i], d->i[4 + i] = perm[i];
  return y;
}

nn_var nn_repeat_rows(nn_ctx *c, nn_var e, int64_t B, int64_t T, int64_t E) {
  TB_CHECK(N_(e) == B * E);
  nn_var y = var_new(c, B * T * E, c->v[e].rg);
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++) memcpy(D(y) + (b * T + t) * E, D(e) + b * E, E * sizeof(float));
  node_t *d = node_new(c, OP_REPEAT, y);
  d->in[0] = e;
  d->i[0] = B, d->i[1] = T, d->i[2] = E;
  return y;
}

/* Counter-based uniform in [0, 1): the same (seed, op, index) gives the same draw, so a
 * recomputed block replays its dropout masks. */
static inline float hash_uniform(uint64_t seed, uint64_t ctr, uint64_t i) {
  uint64_t z = seed ^ (ctr * 0x9E3779B97F4A7C15ull) ^ (i * 0xBF58476D1CE4E5B9ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (float)(z >> 40) * (1.0f / 16777216.0f);
}

nn_var nn_dropout(nn_ctx *c, nn_var x, float p) {
  if (!c->train || p <= 0.0f) return x;
  int64_t n = N_(x);
  nn_var y = var_new(c, n, c->v[x].rg);
  node_t *d = node_new(c, OP_DROPOUT, y);
  d->in[0] = x;
  d->sv[0] = saved_alloc(c, n);
  uint64_t ctr = c->rng_ctr++;
  float keep = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < n; i++) {
    float m = hash_uniform(c->seed, ctr, (uint64_t)i) < p ? 0.0f : keep;
    d->sv[0][i] = m;
    D(y)[i] = D(x)[i] * m;
  }
  return y;
}

nn_var nn_attention(nn_ctx *c, nn_var q, nn_var k, nn_var v, int64_t G, int64_t Nq, int64_t Nk,
                    int64_t C, int heads, const char *name) {
  TB_CHECKF(N_(q) == G * Nq * C && N_(k) == G * Nk * C && N_(v) == G * Nk * C && C % heads == 0,
            "attention: shapes");
  nn_var y = var_new(c, G * Nq * C, rg_any(c, q, k, v));
  node_t *d = node_new(c, OP_ATTN, y);
  d->sv[0] = saved_alloc(c, G * heads * Nq * Nk);
  prim_attn_fwd(D(q), D(k), D(v), D(y), d->sv[0], G, Nq, Nk, C, heads);
  d->in[0] = q, d->in[1] = k, d->in[2] = v;
  d->i[0] = G, d->i[1] = Nq, d->i[2] = Nk, d->i[3] = C, d->i[4] = heads, d->i[5] = -1;
  if (name && c->keep_attn) {
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
      int64_t n = G * heads * Nq * Nk;
      if (c->level == 0) {
        r->probs = d->sv[0];
      } else {
        r->probs = arena_alloc(&c->act[0], n * sizeof(float), 0);
        memcpy(r->probs, d->sv[0], n * sizeof(float));
      }
      r->extra = arena_alloc(&c->act[0], n * sizeof(float), 1);
    }
    d->i[5] = slot;
  }
  return y;
}

/* While recomputing, attention slots are reused in order: the ckpt node remembers where its
 * block's slots began. */
nn_var nn_checkpoint(nn_ctx *c, nn_block_fn fn, void *blk, const nn_var in[3]) {
  if (!c->recompute || c->level != 0) return fn(c, blk, in);
  int nv0 = c->nv, nn0 = c->nn;
  uint64_t ctr0 = c->rng_ctr;
  int attn0 = c->nattn;
  c->level = 1;
  nn_var inner = fn(c, blk, in);
  c->level = 0;
  int64_t n = c->v[inner].n;
  int rg = c->v[inner].rg;
  float *keep = arena_alloc(&c->act[0], n * sizeof(float), 0);
  memcpy(keep, c->v[inner].data, n * sizeof(float));
  /* drop the insides */
  c->nv = nv0;
  c->nn = nn0;
  arena_reset(&c->act[1]);
  arena_reset(&c->grd[1]);
  nn_var y = var_new(c, 0, rg);
  c->v[y].data = keep;
  c->v[y].n = n;
  node_t *d = node_new(c, OP_CKPT, y);
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

static void backward_node(nn_ctx *c, node_t *d) {
  float *dy = c->v[d->out].grad;
  if (!dy) return;
  const int64_t *I = d->i;
  switch (d->op) {
  case OP_LEAF:
    break;
  case OP_LINEAR:
    prim_linear_bwd(D(d->in[0]), D(d->in[1]), dy, gbuf(c, d->in[0]), gbuf(c, d->in[1]),
                    gbuf(c, d->in[2]), I[0], I[1], I[2]);
    break;
  case OP_CONV2D:
    prim_conv2d_bwd(c, D(d->in[0]), D(d->in[1]), dy, gbuf(c, d->in[0]), gbuf(c, d->in[1]),
                    gbuf(c, d->in[2]), I[0], I[1], I[2], I[3], I[4], (int)I[5], (int)I[6],
                    (int)I[7]);
    break;
  case OP_TCONV3:
    prim_tconv3_bwd(c, D(d->in[0]), D(d->in[1]), dy, gbuf(c, d->in[0]), gbuf(c, d->in[1]),
                    gbuf(c, d->in[2]), I[0], I[1], I[2], I[3], I[4]);
    break;
  case OP_GNORM:
    prim_gnorm_bwd(D(d->in[0]), D(d->in[1]), D(d->in[2]), dy, d->sv[0], gbuf(c, d->in[0]),
                   gbuf(c, d->in[1]), gbuf(c, d->in[2]), I[0], I[1], I[2], I[3], (int)I[4],
                   (int)I[5]);
    break;
  case OP_LNORM:
    prim_lnorm_bwd(D(d->in[0]), D(d->in[1]), dy, d->sv[0], gbuf(c, d->in[0]), gbuf(c, d->in[1]),
                   gbuf(c, d->in[2]), I[0], I[1]);
    break;
  case OP_SILU: {
    float *dx = gbuf(c, d->in[0]);
    const float *x = D(d->in[0]);
    int64_t n = N_(d->out);
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
      float s = 1.0f / (1.0f + expf(-x[i]));
      dx[i] += dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
    break;
  }
  case OP_GEGLU: {
    float *dx = gbuf(c, d->in[0]);
    const float *x = D(d->in[0]);
    int64_t M = I[0], F = I[1];
#pragma omp parallel for if (M * F > 65536)
    for (int64_t m = 0; m < M; m++)
      for (int64_t j = 0; j < F; j++) {
        float a = x[m * 2 * F + j], g = x[m * 2 * F + F + j], go = dy[m * F + j];
        dx[m * 2 * F + j] += go * gelu_f(g);
        dx[m * 2 * F + F + j] += go * a * gelu_d(g);
      }
    break;
  }
  case OP_ADD: {
    int64_t n = N_(d->out);
    for (int k = 0; k < 2; k++) {
      float *dx = gbuf(c, d->in[k]);
      if (dx)
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i];
    }
    break;
  }
  case OP_ADD_BLAST: {
    float *dx = gbuf(c, d->in[0]), *de = gbuf(c, d->in[1]);
    int64_t AR = I[0] * I[1], S = I[2];
    for (int64_t ar = 0; ar < AR; ar++) {
      double s = 0;
      for (int64_t j = 0; j < S; j++) {
        if (dx) dx[ar * S + j] += dy[ar * S + j];
        s += dy[ar * S + j];
      }
      if (de) de[ar] += (float)s;
    }
    break;
  }
  case OP_ADD_BFIRST: {
    float *dx = gbuf(c, d->in[0]), *dp = gbuf(c, d->in[1]);
    int64_t A = I[0], R = I[1];
    for (int64_t i = 0; i < A; i++)
      for (int64_t r = 0; r < R; r++) {
        if (dx) dx[i * R + r] += dy[i * R + r];
        if (dp) dp[r] += dy[i * R + r];
      }
    break;
  }
  case OP_CONCAT: {
    float *da = gbuf(c, d->in[0]), *db = gbuf(c, d->in[1]);
    int64_t N = I[0], Ca = I[1], Cb = I[2], S = I[3];
    for (int64_t n = 0; n < N; n++) {
      const float *g = dy + n * (Ca + Cb) * S;
      if (da)
        for (int64_t i = 0; i < Ca * S; i++) da[n * Ca * S + i] += g[i];
      if (db)
        for (int64_t i = 0; i < Cb * S; i++) db[n * Cb * S + i] += g[Ca * S + i];
    }
    break;
  }
  case OP_UP2: {
    float *dx = gbuf(c, d->in[0]);
    int64_t NC = I[0] * I[1], H = I[2], W = I[3];
    for (int64_t nc = 0; nc < NC; nc++)
      for (int64_t h = 0; h < 2 * H; h++)
        for (int64_t w = 0; w < 2 * W; w++)
          dx[(nc * H + h / 2) * W + w / 2] += dy[(nc * 2 * H + h) * 2 * W + w];
    break;
  }
  case OP_PERMUTE: {
    int64_t dims[4] = {I[0], I[1], I[2], I[3]};
    int perm[4] = {(int)I[4], (int)I[5], (int)I[6], (int)I[7]};
    permute4(dy, gbuf(c, d->in[0]), dims, perm, 1);
    break;
  }
  case OP_REPEAT: {
    float *de = gbuf(c, d->in[0]);
    int64_t B = I[0], T = I[1], E = I[2];
    for (int64_t b = 0; b < B; b++)
      for (int64_t t = 0; t < T; t++)
        for (int64_t e = 0; e < E; e++) de[b * E + e] += dy[(b * T + t) * E + e];
    break;
  }
  case OP_DROPOUT: {
    float *dx = gbuf(c, d->in[0]);
    for (int64_t i = 0; i < N_(d->out); i++) dx[i] += dy[i] * d->sv[0][i];
    break;
  }
  case OP_ATTN: {
    const float *extra = d->i[5] >= 0 ? c->attn[d->i[5]].extra : NULL;
    prim_attn_bwd(c, D(d->in[0]), D(d->in[1]), D(d->in[2]), d->sv[0], dy, extra,
                  gbuf(c, d->in[0]), gbuf(c, d->in[1]), gbuf(c, d->in[2]), I[0], I[1], I[2],
                  I[3], (int)I[4]);
    break;
  }
  case OP_CKPT: {
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
    memcpy(gi, dy, N_(inner) * sizeof(float));
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

void nn_backward(nn_ctx *c, nn_var y, const float *dy) {
  float *g = gbuf(c, y);
  TB_CHECKF(g != NULL, "nn_backward: the output does not depend on anything that needs a gradient");
  for (int64_t i = 0; i < N_(y); i++) g[i] += dy[i];
  backward_range(c, 0, c->nn);
}

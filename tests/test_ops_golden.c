/* tests/test_ops_golden.c — every backend present against values computed by an independent
 * implementation (numpy, float64; tests/golden/make_golden.py wrote tests/golden/ops_v1.bin):
 * conv2d, the temporal conv, group norm, attention (with the probabilities' gradient path),
 * MSE / pseudo-Huber / InfoNCE losses and both sinusoidal embeddings, forward and backward. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

#define GOLDEN_PATH "tests/golden/ops_v1.bin"
#define GOLDEN_MAGIC "TBGOLDEN"
#define GOLDEN_VERSION 1

typedef struct {
  char name[64];
  int ndim, dims[6];
  int64_t n;
  float *data;
} gtensor;

static gtensor *g_t;
static int g_nt;

/* Reads the whole file; TB_ERR with a message on a bad magic, version or truncation. */
static int golden_load(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return err_set("%s: cannot open (run from the repository root)", path);
  char magic[8];
  uint32_t hdr[2];
  if (fread(magic, 1, 8, f) != 8 || memcmp(magic, GOLDEN_MAGIC, 8) || fread(hdr, 4, 2, f) != 2) {
    fclose(f);
    return err_set("%s: not a golden file", path);
  }
  if (hdr[0] != GOLDEN_VERSION) {
    fclose(f);
    return err_set("%s: version %u, this test reads %d (re-run make_golden.py)", path, hdr[0],
                   GOLDEN_VERSION);
  }
  g_nt = (int)hdr[1];
  g_t = xcalloc((size_t)g_nt, sizeof(gtensor));
  for (int i = 0; i < g_nt; i++) {
    gtensor *t = &g_t[i];
    uint16_t len;
    uint8_t nd;
    if (fread(&len, 2, 1, f) != 1 || len >= sizeof t->name || fread(t->name, 1, len, f) != len ||
        fread(&nd, 1, 1, f) != 1 || nd > 6 || fread(t->dims, 4, nd, f) != nd)
      goto trunc;
    t->ndim = nd;
    t->n = 1;
    for (int d = 0; d < nd; d++) t->n *= t->dims[d];
    t->data = xmalloc(sizeof(float) * (size_t)(t->n ? t->n : 1));
    if (fread(t->data, 4, (size_t)t->n, f) != (size_t)t->n) goto trunc;
  }
  fclose(f);
  return TB_OK;
trunc:
  fclose(f);
  return err_set("%s: truncated", path);
}

static const float *G(const char *op, int i, const char *what) {
  char name[64];
  snprintf(name, sizeof name, "%s.%d.%s", op, i, what);
  for (int k = 0; k < g_nt; k++)
    if (!strcmp(g_t[k].name, name)) return g_t[k].data;
  TB_CHECKF(0, "golden tensor %s missing", name);
  return NULL;
}
static int64_t GN(const char *op, int i, const char *what) {
  char name[64];
  snprintf(name, sizeof name, "%s.%d.%s", op, i, what);
  for (int k = 0; k < g_nt; k++)
    if (!strcmp(g_t[k].name, name)) return g_t[k].n;
  return -1;
}
static int has(const char *op, int i) {
  return GN(op, i, "params") > 0 || GN(op, i, "loss") > 0 || GN(op, i, "out") > 0;
}

static float *zeros(int64_t n) { return xcalloc((size_t)(n ? n : 1), sizeof(float)); }

#define ATOL 2e-5
#define RTOL 2e-4

static void skip_note(const ops_backend *be, const char *op) {
  printf("  %-10s %-9s skipped (not supported)\n", op, be->name);
}

static void check(const char *op, int i, const ops_backend *be, const char *what,
                  const float *got) {
  char label[128];
  snprintf(label, sizeof label, "%s.%d %s %s", op, i, be->name, what);
  check_close_f32(label, got, G(op, i, what), GN(op, i, what), ATOL, RTOL);
}

static void golden_conv2d(const ops_backend *be) {
  if (!be->conv2d_fwd || !be->conv2d_bwd) return skip_note(be, "conv2d");
  for (int i = 0; has("conv2d", i); i++) {
    const float *p = G("conv2d", i, "params");
    int N = p[0], C = p[1], H = p[2], W = p[3], Co = p[4], k = p[5], s = p[6], pad = p[7];
    float *out = zeros(GN("conv2d", i, "out")), *dx = zeros(GN("conv2d", i, "dx")),
          *dw = zeros(GN("conv2d", i, "dw")), *db = zeros(Co);
    be->conv2d_fwd(out, G("conv2d", i, "x"), G("conv2d", i, "w"), G("conv2d", i, "b"), N, C, H, W,
                   Co, k, s, pad);
    be->conv2d_bwd(dx, dw, db, G("conv2d", i, "gout"), G("conv2d", i, "x"), G("conv2d", i, "w"), N,
                   C, H, W, Co, k, s, pad);
    check("conv2d", i, be, "out", out);
    check("conv2d", i, be, "dx", dx);
    check("conv2d", i, be, "dw", dw);
    check("conv2d", i, be, "db", db);
    free(out), free(dx), free(dw), free(db);
  }
}

static void golden_tconv(const ops_backend *be) {
  if (!be->tconv_fwd || !be->tconv_bwd) return skip_note(be, "tconv");
  for (int i = 0; has("tconv", i); i++) {
    const float *p = G("tconv", i, "params");
    int B = p[0], T = p[1], C = p[2], S = p[3], Co = p[4], kt = p[5];
    float *out = zeros(GN("tconv", i, "out")), *dx = zeros(GN("tconv", i, "dx")),
          *dw = zeros(GN("tconv", i, "dw")), *db = zeros(Co);
    be->tconv_fwd(out, G("tconv", i, "x"), G("tconv", i, "w"), G("tconv", i, "b"), B, T, C, S, Co,
                  kt);
    be->tconv_bwd(dx, dw, db, G("tconv", i, "gout"), G("tconv", i, "x"), G("tconv", i, "w"), B, T,
                  C, S, Co, kt);
    check("tconv", i, be, "out", out);
    check("tconv", i, be, "dx", dx);
    check("tconv", i, be, "dw", dw);
    check("tconv", i, be, "db", db);
    free(out), free(dx), free(dw), free(db);
  }
}

static void golden_groupnorm(const ops_backend *be) {
  if (!be->groupnorm_fwd || !be->groupnorm_bwd) return skip_note(be, "groupnorm");
  for (int i = 0; has("groupnorm", i); i++) {
    const float *p = G("groupnorm", i, "params");
    int N = p[0], T = p[1], C = p[2], S = p[3], Gr = p[4];
    float eps = p[5];
    int64_t n = GN("groupnorm", i, "x");
    float *out = zeros(n), *mean = zeros(N * Gr), *rstd = zeros(N * Gr), *dx = zeros(n),
          *dw = zeros(C), *db = zeros(C);
    be->groupnorm_fwd(out, mean, rstd, G("groupnorm", i, "x"), G("groupnorm", i, "w"),
                      G("groupnorm", i, "b"), N, T, C, S, Gr, eps);
    be->groupnorm_bwd(dx, dw, db, G("groupnorm", i, "gout"), G("groupnorm", i, "x"), mean, rstd,
                      G("groupnorm", i, "w"), N, T, C, S, Gr);
    check("groupnorm", i, be, "out", out);
    check("groupnorm", i, be, "mean", mean);
    check("groupnorm", i, be, "rstd", rstd);
    check("groupnorm", i, be, "dx", dx);
    check("groupnorm", i, be, "dw", dw);
    check("groupnorm", i, be, "db", db);
    free(out), free(mean), free(rstd), free(dx), free(dw), free(db);
  }
}

static void golden_attention(const ops_backend *be) {
  if (!be->attention_fwd || !be->attention_bwd) return skip_note(be, "attention");
  for (int i = 0; has("attention", i); i++) {
    const float *p = G("attention", i, "params");
    int B = p[0], H = p[1], Nq = p[2], Nk = p[3], D = p[4], masked = p[5];
    op_attn_mask m = {.add = masked ? G("attention", i, "mask") : NULL, .keep = NULL, .mb = B};
    float *out = zeros(GN("attention", i, "out")), *probs = zeros(GN("attention", i, "probs"));
    float *dq = zeros(GN("attention", i, "dq")), *dk = zeros(GN("attention", i, "dk")),
          *dv = zeros(GN("attention", i, "dv"));
    float scale = 1.0f / sqrtf((float)D);
    be->attention_fwd(out, probs, G("attention", i, "q"), G("attention", i, "k"),
                      G("attention", i, "v"), masked ? &m : NULL, B, H, Nq, Nk, D, scale);
    be->attention_bwd(dq, dk, dv, G("attention", i, "gout"), G("attention", i, "gprobs"),
                      G("attention", i, "q"), G("attention", i, "k"), G("attention", i, "v"), probs,
                      B, H, Nq, Nk, D, scale);
    check("attention", i, be, "out", out);
    check("attention", i, be, "probs", probs);
    check("attention", i, be, "dq", dq);
    check("attention", i, be, "dk", dk);
    check("attention", i, be, "dv", dv);
    free(out), free(probs), free(dq), free(dk), free(dv);
  }
}

static void golden_losses(const ops_backend *be) {
  if (!be->mse_fwd || !be->huber_fwd || !be->infonce_fwd) return skip_note(be, "losses");
  float loss;
  int64_t n = GN("mse", 0, "pred");
  float *dp = zeros(n);
  be->mse_fwd(&loss, G("mse", 0, "pred"), G("mse", 0, "target"), n);
  be->mse_bwd(dp, NULL, 1.0f, G("mse", 0, "pred"), G("mse", 0, "target"), n);
  check("mse", 0, be, "loss", &loss);
  check("mse", 0, be, "dpred", dp);
  for (int i = 0; has("huber", i); i++) {
    float c = G("huber", i, "params")[0];
    memset(dp, 0, sizeof(float) * n);
    be->huber_fwd(&loss, G("huber", i, "pred"), G("huber", i, "target"), n, c);
    be->huber_bwd(dp, NULL, 1.0f, G("huber", i, "pred"), G("huber", i, "target"), n, c);
    check("huber", i, be, "loss", &loss);
    check("huber", i, be, "dpred", dp);
  }
  const float *p = G("infonce", 0, "params");
  int N = p[0], D = p[1];
  float *pab = zeros(N * N), *pba = zeros(N * N), *da = zeros(N * D), *db = zeros(N * D);
  be->infonce_fwd(&loss, pab, pba, G("infonce", 0, "a"), G("infonce", 0, "b"), N, D, p[2]);
  be->infonce_bwd(da, db, 1.0f, G("infonce", 0, "a"), G("infonce", 0, "b"), pab, pba, N, D, p[2]);
  check("infonce", 0, be, "loss", &loss);
  check("infonce", 0, be, "da", da);
  check("infonce", 0, be, "db", db);
  free(dp), free(pab), free(pba), free(da), free(db);
}

static void golden_embeddings(const ops_backend *be) {
  if (!be->timestep_embedding || !be->guidance_embedding) return skip_note(be, "embeddings");
  float out[4 * 320], g[3 * 256];
  be->timestep_embedding(out, G("timestep", 0, "t"), 4, 320, 10000.0f);
  // arguments reach 999 rad: compare with an absolute tolerance for the f32 phase
  char label[64];
  snprintf(label, sizeof label, "timestep %s", be->name);
  check_close_f32(label, out, G("timestep", 0, "out"), 4 * 320, 2e-4, 0);
  be->guidance_embedding(g, G("guidance", 0, "w"), 3, 256);
  snprintf(label, sizeof label, "guidance %s", be->name);
  check_close_f32(label, g, G("guidance", 0, "out"), 3 * 256, 2e-3, 0);
}

int main(void) {
  test_begin("test_ops_golden");
  if (golden_load(GOLDEN_PATH) != TB_OK) {
    CHECKF(0, "%s", err_get());
    return test_finish();
  }
  printf("%s: %d tensors\n", GOLDEN_PATH, g_nt);
  for (int b = 0; b < OPS_NBACKENDS; b++) {
    const ops_backend *be = ops_backend_get((ops_backend_id)b);
    if (!be) {
      printf("backend %s: not present, skipped\n", ops_backend_name(b));
      continue;
    }
    if (be->mem_alloc) {  // device memory: test_ops compares this backend with the reference
      printf("backend %s: device memory, skipped here (covered by test_ops)\n", be->name);
      continue;
    }
    int before = g_test_failures;
    golden_conv2d(be);
    golden_tconv(be);
    golden_groupnorm(be);
    golden_attention(be);
    golden_losses(be);
    golden_embeddings(be);
    printf("backend %s: %s\n", be->name, g_test_failures == before ? "ok" : "FAILED");
  }
  for (int i = 0; i < g_nt; i++) free(g_t[i].data);
  free(g_t);
  return test_finish();
}

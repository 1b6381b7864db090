/* bench/bench_cuda.c — the CUDA backend's throughput:
 *  1. the bf16 GEMM ceiling (cublasGemmEx, bf16 inputs, f32 accumulation) at large square
 *     sizes, beside f32 and TF32 through op_matmul;
 *  2. a UNet training step's op mix at two sizes — the default world (16 frames, 16×16×4
 *     latents, 48–96 channels) and a GPU size (16 frames, 32×32×4 latents, 128–512 channels):
 *     every layer of a (2+1)-D UNet of that config (ResBlocks with temporal convs, spatial
 *     self/cross-attention transformers, temporal-attention transformers, down/up-sampling),
 *     forward and backward, issued through the op table on random device buffers, in f32,
 *     TF32 and bf16. Step time, achieved TFLOP/s (analytic count of the GEMM/conv/attention
 *     FLOPs) and its fraction of the bf16 ceiling, peak device memory.
 * The op mix is the nn UNet's layer list replayed op by op (the nn layer does not yet run on
 * device memory); the figures measure the kernels, not the tape bookkeeping.
 * Without a GPU: exit 77 with a message. Timings use CUDA events on the compute stream. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kernels/device.h"
#include "kernels/ops.h"
#include "tests/testutil.h"

#define REPS 10 /* timed repeats after one warm-up */

static double g_ceiling_tflops = 0.0;

static float *dev_rand(int64_t n, uint64_t seed) {
  float *h = xmalloc(sizeof(float) * (size_t)n), *d = device_malloc(sizeof(float) * (size_t)n);
  test_fill_uniform(h, n, seed, -1, 1);
  device_memcpy_h2d(d, h, sizeof(float) * (size_t)n);
  free(h);
  return d;
}

/* ---- 1. GEMM ceiling --------------------------------------------------------------------- */

static void bench_gemm(void) {
  printf("\nGEMM (M = N = K)          f32 TFLOP/s   tf32 TFLOP/s   bf16 TFLOP/s\n");
  int sizes[] = {2048, 4096, 8192};
  device_event e0 = device_event_new(), e1 = device_event_new();
  for (int si = 0; si < 3; si++) {
    int n = sizes[si];
    int64_t nn = (int64_t)n * n;
    float *A = dev_rand(nn, 1), *B = dev_rand(nn, 2), *C = device_malloc(sizeof(float) * nn);
    uint16_t *Ah = device_malloc(2 * nn), *Bh = device_malloc(2 * nn);
    device_f32_to_bf16(Ah, A, nn);
    device_f32_to_bf16(Bh, B, nn);
    double flop = 2.0 * n * (double)n * n, tf[3];
    for (int mode = 0; mode < 3; mode++) {
      device_set_compute(mode == 1 ? DEVICE_TF32 : DEVICE_F32);
      for (int r = 0; r <= REPS; r++) {
        if (r == 1) device_event_record(e0, device_stream_compute());
        if (mode == 2) device_gemm_bf16(0, 0, n, n, n, 1.0f, Ah, Bh, 0.0f, C);
        else op_matmul(0, 0, n, n, n, 1.0f, A, B, 0.0f, C);
      }
      device_event_record(e1, device_stream_compute());
      device_event_sync(e1);
      double s = device_event_ms(e0, e1) / 1000.0 / REPS;
      tf[mode] = flop / s / 1e12;
    }
    device_set_compute(DEVICE_F32);
    printf("  %5d                   %8.1f       %8.1f       %8.1f\n", n, tf[0], tf[1], tf[2]);
    if (tf[2] > g_ceiling_tflops) g_ceiling_tflops = tf[2];
    device_free(A), device_free(B), device_free(C), device_free(Ah), device_free(Bh);
  }
  printf("  bf16 ceiling: %.1f TFLOP/s\n", g_ceiling_tflops);
  device_event_free(e0);
  device_event_free(e1);
}

/* ---- 2. UNet op mix ------------------------------------------------------------------------- */

typedef struct {
  const char *name;
  int B, T, H, W;   /* batch, frames, latent size */
  int in_ch, model_ch, n_levels, ch_mult[4], n_res, attn_levels, head_ch, text_dim, L;
} mix_cfg;

/* a pool of large device buffers the ops read and write (contents are random; the work per op
 * does not depend on the values) */
#define NPOOL 8
static float *g_pool[NPOOL];
static int64_t g_pool_n;
static double g_flops;

#define P(i) g_pool[i]

static int groups_for(int C) {
  for (int g = 32; g > 1; g /= 2)
    if (C % g == 0) return g;
  return 1;
}

static void need(int64_t n) { TB_CHECKF(n <= g_pool_n, "bench pool too small: %lld > %lld", (long long)n, (long long)g_pool_n); }

static void x_conv(int N, int Cin, int H, int W, int Cout, int k, int s) {
  int pad = k / 2, Ho = (H + 2 * pad - k) / s + 1, Wo = (W + 2 * pad - k) / s + 1;
  need((int64_t)N * Cin * H * W), need((int64_t)N * Cout * Ho * Wo), need((int64_t)Cout * Cin * k * k);
  op_conv2d_fwd(P(1), P(0), P(6), P(7), N, Cin, H, W, Cout, k, s, pad);
  op_conv2d_bwd(P(2), P(5), P(7), P(1), P(0), P(6), N, Cin, H, W, Cout, k, s, pad);
  g_flops += 3 * 2.0 * N * Cout * (double)Ho * Wo * Cin * k * k;
}
static void x_tconv(int B, int T, int C, int S) {
  need((int64_t)B * T * C * S);
  op_tconv_fwd(P(1), P(0), P(6), P(7), B, T, C, S, C, 3);
  op_tconv_bwd(P(2), P(5), P(7), P(1), P(0), P(6), B, T, C, S, C, 3);
  g_flops += 3 * 2.0 * B * T * (double)S * C * C * 3;
}
static void x_gn(int B, int T, int C, int S, int temporal) {
  int G = groups_for(C);
  int N = temporal ? B : B * T, Tn = temporal ? T : 1;
  op_groupnorm_fwd(P(1), P(3), P(4), P(0), P(6), P(7), N, Tn, C, S, G, 1e-5f);
  op_groupnorm_bwd(P(2), P(5), P(7), P(1), P(0), P(3), P(4), P(6), N, Tn, C, S, G);
}
static void x_silu(int64_t n) {
  op_silu_fwd(P(1), P(0), n);
  op_silu_bwd(P(2), P(1), P(0), n);
}
static void x_add(int64_t n) {
  op_add_fwd(P(1), P(0), P(2), n);
  op_axpy(P(2), 1.0f, P(1), n);
}
static void x_linear(int N, int Cin, int Cout) {
  need((int64_t)N * Cin), need((int64_t)N * Cout), need((int64_t)Cin * Cout);
  op_linear_fwd(P(1), P(0), P(6), P(7), N, Cin, Cout);
  op_linear_bwd(P(2), P(5), P(7), P(1), P(0), P(6), N, Cin, Cout);
  g_flops += 3 * 2.0 * N * (double)Cin * Cout;
}
static void x_ln(int N, int C) {
  op_layernorm_fwd(P(1), P(3), P(4), P(0), P(6), P(7), N, C, 1e-5f);
  op_layernorm_bwd(P(2), P(5), P(7), P(1), P(0), P(3), P(4), P(6), N, C);
}
static void x_attn(int G, int heads, int Nq, int Nk, int D) {
  int64_t np = (int64_t)G * heads * Nq * Nk;
  need(np), need((int64_t)G * heads * Nq * D);
  op_attention_fwd(P(1), P(3), P(0), P(2), P(4), NULL, G, heads, Nq, Nk, D, 1.0f / sqrtf((float)D));
  op_attention_bwd(P(5), P(6), P(7), P(1), NULL, P(0), P(2), P(4), P(3), G, heads, Nq, Nk, D,
                   1.0f / sqrtf((float)D));
  g_flops += 12.0 * G * heads * (double)Nq * Nk * D;
}
static void x_permute(int B, int T, int C, int S) {
  op_video_to_spatial_tokens(P(1), P(0), B, T, C, S);
  op_video_to_spatial_tokens_bwd(P(2), P(1), B, T, C, S);
}

/* one (2+1)-D ResBlock: Cin -> C at (H, W), with the temporal conv sub-block */
static void x_resblock(const mix_cfg *m, int Cin, int C, int H, int W) {
  int B = m->B, T = m->T, S = H * W;
  int64_t ni = (int64_t)B * T * Cin * S, n = (int64_t)B * T * C * S;
  x_gn(B, T, Cin, S, 0);
  x_silu(ni);
  x_conv(B * T, Cin, H, W, C, 3, 1);
  op_bias_add_fwd(P(1), P(0), P(7), B, T, C, S);
  op_bias_add_bwd(P(2), P(5), P(1), B, T, C, S);
  x_gn(B, T, C, S, 0);
  x_silu(n);
  x_conv(B * T, C, H, W, C, 3, 1);
  if (Cin != C) x_conv(B * T, Cin, H, W, C, 1, 1);
  x_add(n);
  x_gn(B, T, C, S, 1);
  x_silu(n);
  x_tconv(B, T, C, S);
  x_add(n);
}

/* spatial transformer (self + cross + GEGLU FF) and temporal transformer at (C, H, W) */
static void x_transformers(const mix_cfg *m, int C, int H, int W) {
  int B = m->B, T = m->T, S = H * W, heads = C / m->head_ch, D = m->head_ch;
  int N = B * T * S; /* tokens */
  x_gn(B, T, C, S, 0);
  x_permute(B, T, C, S);
  x_linear(N, C, C); /* proj_in */
  x_ln(N, C);
  x_linear(N, C, 3 * C); /* q, k, v */
  x_attn(B * T, heads, S, S, D);
  x_linear(N, C, C);
  x_add((int64_t)N * C);
  x_ln(N, C);
  x_linear(N, C, C);                    /* q */
  x_linear(B * m->L, m->text_dim, 2 * C); /* k, v of the text (once per clip) */
  op_context_repeat(P(1), P(0), B, T, m->L, C);
  op_context_repeat_bwd(P(2), P(1), B, T, m->L, C);
  x_attn(B * T, heads, S, m->L, D);
  x_linear(N, C, C);
  x_add((int64_t)N * C);
  x_ln(N, C);
  x_linear(N, C, 8 * C); /* GEGLU: 2 x 4C */
  op_gelu_erf_fwd(P(1), P(0), (int64_t)N * 4 * C);
  op_gelu_erf_bwd(P(2), P(1), P(0), (int64_t)N * 4 * C);
  op_mul_fwd(P(1), P(0), P(2), (int64_t)N * 4 * C);
  op_mul_bwd(P(3), P(4), P(1), P(0), P(2), (int64_t)N * 4 * C);
  x_linear(N, 4 * C, C);
  x_add((int64_t)N * C);
  x_linear(N, C, C); /* proj_out */
  x_permute(B, T, C, S);
  /* temporal transformer: B*S sequences of T tokens */
  x_gn(B, T, C, S, 1);
  op_video_to_temporal_tokens(P(1), P(0), B, T, C, S);
  op_video_to_temporal_tokens_bwd(P(2), P(1), B, T, C, S);
  x_ln(N, C);
  x_linear(N, C, 3 * C);
  x_attn(B * S, heads, T, T, D);
  x_linear(N, C, C);
  x_add((int64_t)N * C);
  x_ln(N, C);
  x_linear(N, C, 8 * C);
  x_linear(N, 4 * C, C);
  x_add((int64_t)N * C);
}

static void unet_mix(const mix_cfg *m) {
  int H = m->H, W = m->W, skip_ch[16], ns = 0;
  int ch = m->model_ch;
  x_conv(m->B * m->T, m->in_ch, H, W, ch, 3, 1);
  skip_ch[ns++] = ch;
  for (int l = 0; l < m->n_levels; l++) {
    int C = m->model_ch * m->ch_mult[l];
    for (int r = 0; r < m->n_res; r++) {
      x_resblock(m, ch, C, H, W);
      ch = C;
      if (m->attn_levels >> l & 1) x_transformers(m, C, H, W);
      skip_ch[ns++] = ch;
    }
    if (l + 1 < m->n_levels) {
      x_conv(m->B * m->T, ch, H, W, ch, 3, 2);
      H /= 2, W /= 2;
      skip_ch[ns++] = ch;
    }
  }
  x_resblock(m, ch, ch, H, W);
  x_transformers(m, ch, H, W);
  x_resblock(m, ch, ch, H, W);
  for (int l = m->n_levels - 1; l >= 0; l--) {
    int C = m->model_ch * m->ch_mult[l];
    for (int r = 0; r <= m->n_res; r++) {
      int sk = skip_ch[--ns];
      int64_t n = (int64_t)m->B * m->T * (ch + sk) * H * W;
      need(n);
      op_concat_fwd(P(1), P(0), P(2), m->B * m->T, ch, sk, H * W);
      op_concat_bwd(P(3), P(4), P(1), m->B * m->T, ch, sk, H * W);
      x_resblock(m, ch + sk, C, H, W);
      ch = C;
      if (m->attn_levels >> l & 1) x_transformers(m, C, H, W);
    }
    if (l > 0) {
      op_upsample2x_fwd(P(1), P(0), m->B * m->T, ch, H, W);
      op_upsample2x_bwd(P(2), P(1), m->B * m->T, ch, H, W);
      H *= 2, W *= 2;
      x_conv(m->B * m->T, ch, H, W, ch, 3, 1);
    }
  }
  x_gn(m->B, m->T, ch, H * W, 0);
  x_silu((int64_t)m->B * m->T * ch * H * W);
  x_conv(m->B * m->T, ch, H, W, m->in_ch, 3, 1);
  float *loss = P(3);
  op_mse_fwd(loss, P(1), P(0), (int64_t)m->B * m->T * m->in_ch * H * W);
}

/* the largest buffer any op of this config touches */
static int64_t pool_floats(const mix_cfg *m) {
  int64_t mx = 0;
  int H = m->H, W = m->W;
  for (int l = 0; l < m->n_levels; l++, H /= 2, W /= 2) {
    int C = m->model_ch * m->ch_mult[l], S = H * W, heads = C / m->head_ch;
    int64_t act = (int64_t)m->B * m->T * S * C * 8; /* GEGLU hidden (2 x 4C) */
    int64_t cat = (int64_t)m->B * m->T * S * C * 3;
    int64_t probs = (m->attn_levels >> l & 1) || l == m->n_levels - 1
                        ? (int64_t)m->B * m->T * heads * S * S
                        : 0;
    int64_t w = (int64_t)C * 2 * C * 9;
    int64_t v = act > cat ? act : cat;
    v = v > probs ? v : probs;
    v = v > w ? v : w;
    mx = v > mx ? v : mx;
  }
  return mx;
}

static void bench_mix(const mix_cfg *m) {
  g_pool_n = pool_floats(m);
  size_t free0 = 0, total = 0;
  device_sync();
  device_mem_info(&free0, &total);
  for (int i = 0; i < NPOOL; i++) g_pool[i] = dev_rand(g_pool_n, 100 + i);
  printf("\n%s: B %d, T %d, latents %dx%dx%d, channels %d", m->name, m->B, m->T, m->H, m->W,
         m->in_ch, m->model_ch);
  for (int l = 1; l < m->n_levels; l++) printf("/%d", m->model_ch * m->ch_mult[l]);
  printf(", attention levels 0x%x, head %d, text %dx%d\n", m->attn_levels, m->head_ch, m->L,
         m->text_dim);
  printf("  mode   step ms    TFLOP/s   of bf16 ceiling   analytic GFLOP/step\n");
  device_event e0 = device_event_new(), e1 = device_event_new();
  static const char *mn[] = {"f32 ", "tf32", "bf16"};
  for (int mode = 0; mode < 3; mode++) {
    device_set_compute((device_compute_mode)mode);
    g_flops = 0.0;
    unet_mix(m); /* warm-up (and the FLOP count) */
    double flops = g_flops;
    device_event_record(e0, device_stream_compute());
    for (int r = 0; r < REPS; r++) unet_mix(m);
    device_event_record(e1, device_stream_compute());
    device_event_sync(e1);
    double s = device_event_ms(e0, e1) / 1000.0 / REPS;
    double tf = flops / s / 1e12;
    printf("  %s  %8.2f   %8.2f   %8.1f%%          %10.1f\n", mn[mode], s * 1e3, tf,
           g_ceiling_tflops > 0 ? 100.0 * tf / g_ceiling_tflops : 0.0, flops / 1e9);
  }
  device_set_compute(DEVICE_F32);
  size_t free1 = 0;
  device_mem_info(&free1, &total);
  printf("  device memory in use: %.2f GiB of %.1f (op buffers %.2f GiB; op scratch included in "
         "the start-up figure)\n", (double)(total - free1) / (1u << 30), (double)total / (1u << 30),
         (double)NPOOL * g_pool_n * 4 / (1u << 30));
  (void)free0;
  device_event_free(e0);
  device_event_free(e1);
  for (int i = 0; i < NPOOL; i++) device_free(g_pool[i]);
}

int main(int argc, char **argv) {
  log_init("bench_cuda");
  if (!device_cuda_built()) {
    printf("bench_cuda: skipped: built without CUDA\n");
    return 77;
  }
  if (device_init(argc > 1 ? argv[1] : "auto") != TB_OK || !device_is_cuda()) {
    printf("bench_cuda: skipped: no CUDA device\n");
    return 77;
  }
  printf("bench_cuda on %s\n", device_describe());
  bench_gemm();
  mix_cfg def = {"default world", 1, 16, 16, 16, 4, 48, 3, {1, 2, 2, 0}, 1, 0x6, 24, 128, 16};
  mix_cfg gpu = {"GPU size", 3, 16, 32, 32, 4, 128, 3, {1, 2, 4, 0}, 2, 0x7, 64, 1024, 77};
  bench_mix(&def);
  bench_mix(&gpu);
  device_shutdown();
  return 0;
}

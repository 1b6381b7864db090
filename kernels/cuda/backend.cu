/* kernels/cuda/backend.cu — the OPS_CUDA table: every entry of ops_backend, all pointers device
 * pointers, all work on the compute stream. */
#include <string.h>

#include "kernels/cuda/cuda_internal.cuh"

static ops_backend make_table(void) {
  ops_backend t;
  memset(&t, 0, sizeof t);
  t.name = "cuda";
  t.set_num_threads = NULL;
  t.matmul = cu_matmul;
  t.linear_fwd = cu_linear_fwd;
  t.linear_bwd = cu_linear_bwd;
  t.conv2d_fwd = cu_conv2d_fwd;
  t.conv2d_bwd = cu_conv2d_bwd;
  t.tconv_fwd = cu_tconv_fwd;
  t.tconv_bwd = cu_tconv_bwd;
  t.conv3d_fwd = cu_conv3d_fwd;
  t.conv3d_bwd = cu_conv3d_bwd;
  t.groupnorm_fwd = cu_groupnorm_fwd;
  t.groupnorm_bwd = cu_groupnorm_bwd;
  t.layernorm_fwd = cu_layernorm_fwd;
  t.layernorm_bwd = cu_layernorm_bwd;
  t.silu_fwd = cu_silu_fwd;
  t.silu_bwd = cu_silu_bwd;
  t.gelu_tanh_fwd = cu_gelu_tanh_fwd;
  t.gelu_tanh_bwd = cu_gelu_tanh_bwd;
  t.gelu_erf_fwd = cu_gelu_erf_fwd;
  t.gelu_erf_bwd = cu_gelu_erf_bwd;
  t.groupnorm_silu_fwd = cu_groupnorm_silu_fwd;
  t.groupnorm_silu_bwd = cu_groupnorm_silu_bwd;
  t.geglu_fwd = cu_geglu_fwd;
  t.geglu_bwd = cu_geglu_bwd;
  t.softmax_fwd = cu_softmax_fwd;
  t.softmax_bwd = cu_softmax_bwd;
  t.attention_fwd = cu_attention_fwd;
  t.attention_bwd = cu_attention_bwd;
  t.permute_fwd = cu_permute_fwd;
  t.permute_bwd = cu_permute_bwd;
  t.upsample2x_fwd = cu_upsample2x_fwd;
  t.upsample2x_bwd = cu_upsample2x_bwd;
  t.avgpool2x_fwd = cu_avgpool2x_fwd;
  t.avgpool2x_bwd = cu_avgpool2x_bwd;
  t.concat_fwd = cu_concat_fwd;
  t.concat_bwd = cu_concat_bwd;
  t.split_fwd = cu_split_fwd;
  t.repeat_fwd = cu_repeat_fwd;
  t.repeat_bwd = cu_repeat_bwd;
  t.add_fwd = cu_add_fwd;
  t.axpy = cu_axpy;
  t.scale_fwd = cu_scale_fwd;
  t.mul_fwd = cu_mul_fwd;
  t.mul_bwd = cu_mul_bwd;
  t.bias_add_fwd = cu_bias_add_fwd;
  t.bias_add_bwd = cu_bias_add_bwd;
  t.l2norm_fwd = cu_l2norm_fwd;
  t.l2norm_bwd = cu_l2norm_bwd;
  t.timestep_embedding = cu_timestep_embedding;
  t.guidance_embedding = cu_guidance_embedding;
  t.dropout_fwd = cu_dropout_fwd;
  t.dropout_bwd = cu_dropout_bwd;
  t.cond_drop_fwd = cu_cond_drop_fwd;
  t.cond_drop_bwd = cu_cond_drop_bwd;
  t.mse_fwd = cu_mse_fwd;
  t.mse_bwd = cu_mse_bwd;
  t.huber_fwd = cu_huber_fwd;
  t.huber_bwd = cu_huber_bwd;
  t.infonce_fwd = cu_infonce_fwd;
  t.infonce_bwd = cu_infonce_bwd;
  t.adamw_step = cu_adamw_step;
  t.sumsq = cu_sumsq;
  t.ema_update = cu_ema_update;
  return t;
}

static ops_backend g_table;

extern "C" int cuda_backend_init(void) {
  if (!g_cu.open) return err_set("cuda: open a device (device_init) before registering the ops");
  g_table = make_table();
  return ops_backend_register(OPS_CUDA, &g_table);
}

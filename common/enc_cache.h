/* common/enc_cache.h — the per-clip encodings bin/encode caches, read back: VAE latents and
 * caption embeddings, found through the catalogue's `tensors` table and checked against the
 * checksum recorded there.
 *
 * What bin/encode writes (kinds and variants of catalogue_tensor rows; model_id is the model
 * that made the tensor):
 *   kind "latent",      variant "mean" or "sample"  F32 (T, z_ch, h, w), SCALED latents
 *                       (scale · posterior mean, or scale · a posterior draw) of the clip's T
 *                       frames; model = the catalogue model "vae"
 *   kind "text_tokens", variant "long" or "short"   F32 (L, D): the text encoder's output
 *                       tokens of the clip's long or short caption (the UNet's context)
 *   kind "text_pooled", variant "long" or "short"   F32 (D): its pooled embedding
 *                       model = the catalogue model of the text encoder ("reward-clip")
 * Each row names a shard file under WORKSPACE/cache/ (a safetensors file; the row's offset is
 * the absolute byte offset of the tensor in it) whose metadata "model_checksum.<kind>" is the
 * checksum of the checkpoint that made the tensors: a newer checkpoint makes them stale.
 *
 * Typical use (teacher pretraining, the student):
 *   tensor z;                                    // (T, 4, 16, 16) F32
 *   if (enc_cache_get(cat, ws, "latent", clip_id, "vae", "mean", &z) != 1) ...;
 *   tensor tok, pool;
 *   enc_cache_get(cat, ws, "text_tokens", clip_id, "reward-clip", "short", &tok);
 *   enc_cache_get(cat, ws, "text_pooled", clip_id, "reward-clip", "short", &pool);
 *   ... tensor_free(&z); ...
 * Errors: 1 found (*out owns its data), 0 not cached, TB_ERR (a missing model, a shard that is
 * gone or short, bytes whose checksum disagrees with the catalogue: the message says which).
 */
#ifndef TURBO_ENC_CACHE_H
#define TURBO_ENC_CACHE_H

#include <stdint.h>

#include "common/catalogue.h"
#include "common/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ENC_CACHE_DIR "cache"

/* The cached tensor of `kind` / `variant` for clip_id made by the catalogue model named
 * model_name, read from its shard into *out (a new tensor). */
int enc_cache_get(catalogue *cat, const char *workspace, const char *kind, int64_t clip_id,
                  const char *model_name, const char *variant, tensor *out);
/* The same for a known model id (0: any model, the newest row). */
int enc_cache_get_id(catalogue *cat, const char *workspace, const char *kind, int64_t clip_id,
                     int64_t model_id, const char *variant, tensor *out);

#ifdef __cplusplus
}
#endif
#endif

/* kernels/nn/text.h — the text encoder: a word-level tokenizer over a vocabulary (with an
 * unknown-word token and a length limit), token and position embeddings, a small pre-norm
 * transformer whose attention masks the padding, output tokens (B, L, D) for cross-attention
 * and a pooled embedding (B, D).
 *
 * Two ways in:
 *  - Inside a model that trains it (the reward models of kernels/nn/reward.h):
 *    text_tower_register adds its parameters to the model's nn_params under a prefix
 *    ("text."), text_batch_make tokenizes a batch, text_tower_forward records the encoder on a
 *    tape.
 *  - Standalone and frozen (the teacher's text encoder: bin/encode caches caption embeddings,
 *    bin/teacher and bin/sample encode prompts):
 *
 *      text_encoder *e = text_encoder_load("runs/default/models/reward-clip.safetensors");
 *      if (!e) { log_error("%s", err_get()); ... }
 *      const text_config *tc = text_encoder_config(e);    // tc->dim = D (the UNet's text_dim)
 *      int L = tc->max_len;                                 // or any 2 <= L <= max_len
 *      float *tok = xmalloc(sizeof(float) * B * L * tc->dim), *pool = xmalloc(...B * dim);
 *      text_encoder_encode(e, captions, B, L, tok, pool, NULL);   // host arrays out
 *      text_encoder_null(e, L, null_tok, null_pool);              // "" : the CFG null context
 *      text_encoder_free(e);
 *
 *    The checkpoint carries the vocabulary and the config in its metadata ("text.vocab",
 *    "text.config"), so the encoder is exactly the one the model was trained with.
 *
 * Tokens. ids[0] = BOS, then one id per word, then EOS; positions after EOS are PAD. Every
 * output position (padding too) attends only to the caption's positions, so the tokens at the
 * caption's positions, the pooled embedding, and the padding rows at a given position do not
 * depend on how much padding follows: encoding with L = 20 or L = 64 gives the same first 20
 * rows. The pooled embedding is a linear projection of the mean of the caption's output tokens
 * (BOS to EOS).
 *
 * Errors: TB_OK / TB_ERR with err_get(); NULL from the constructors. Shape misuse aborts.
 */
#ifndef TURBO_NN_TEXT_H
#define TURBO_NN_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- vocabulary and tokenizer ------------------------------------------------------------ */

enum { TEXT_TOKEN_PAD = 0, TEXT_TOKEN_UNK = 1, TEXT_TOKEN_BOS = 2, TEXT_TOKEN_EOS = 3,
       TEXT_SPECIAL_TOKENS = 4 };
#define TEXT_WORD_MAX 32     /* bytes of a vocabulary word, NUL included */
#define TEXT_VOCAB_MAX 65536 /* tokens, specials included */

typedef struct {
  int n;         /* tokens, the 4 specials included: ids 0..n-1 */
  char **word;   /* (n) the word of each id; "<pad>", "<unk>", "<bos>", "<eos>" for the specials */
  int *sorted;   /* (n - 4) ids of the words in strcmp order, for lookups */
} text_vocab;

/* A vocabulary of the specials followed by `words` (ids 4, 5, … in the order given). TB_ERR on
 * an empty, too long or repeated word, or a word the tokenizer could never produce (upper case,
 * blanks). Free with text_vocab_free (also after TB_ERR). */
int text_vocab_init(text_vocab *v, const char *const *words, int n);
/* The same from text: one word per line (the form text_vocab_format writes, specials omitted). */
int text_vocab_parse(text_vocab *v, const char *text);
/* One word per line, the specials omitted; malloc'd, the caller frees. */
char *text_vocab_format(const text_vocab *v);
void text_vocab_free(text_vocab *v);
/* The id of a word, TEXT_TOKEN_UNK when it is not in the vocabulary. */
int text_vocab_id(const text_vocab *v, const char *word);

/* Tokenizes s (UTF-8): ASCII letters are lower-cased; a word is a run of letters, digits, '-',
 * '\'' and bytes >= 0x80; each of , ; . : ! ? is a token of its own; anything else separates.
 * Writes BOS, the words' ids (UNK for unknown words), EOS into ids: at most max_len ids
 * (>= 2), a longer text is cut and still ends with EOS. Returns the number of ids written.
 * *n_full (may be NULL) gets the ids the whole text needs (> max_len when it was cut);
 * *n_unknown (may be NULL) the number of UNK ids written. */
int text_tokenize(const text_vocab *v, const char *s, int max_len, int32_t *ids, int *n_full,
                  int *n_unknown);

/* ---- the encoder ------------------------------------------------------------------------- */

#define TEXT_MAX_LAYERS 32

/* Options of CLIP's text transformers (transformers' CLIPTextModel, OpenCLIP's text tower as
 * VideoCrafter2 uses it); all 0 is the built-in encoder described above. */
enum { TEXT_ACT_GELU = 0, TEXT_ACT_QUICK_GELU = 1 };                 /* act */
enum { TEXT_POOL_MEAN = 0, TEXT_POOL_EOT = 1 };                      /* pool */
enum { TEXT_PROJ_LINEAR = 0, TEXT_PROJ_NONE = 1, TEXT_PROJ_NOBIAS = 2 }; /* proj */

typedef struct {
  int max_len;  /* positions (BOS and EOS included): the longest caption read */
  int dim;      /* D: width of the tokens and the pooled embedding (the UNet's text_dim) */
  int layers;   /* transformer blocks */
  int heads;    /* attention heads (dim % heads == 0) */
  int mlp_mult; /* MLP hidden width = mlp_mult · dim */
  int causal;         /* 1: position i attends to positions 0..i only (CLIP) */
  int attend_padding; /* 1: no key-padding mask: every position attends to every allowed one,
                       * padding included, as CLIP's towers do (with causal, the positions up
                       * to EOT are unaffected by padding either way) */
  int act;            /* TEXT_ACT_GELU (exact erf) or TEXT_ACT_QUICK_GELU (OpenAI CLIP) */
  int skip_layers;    /* the tokens come from block layers - skip_layers, then ln_final
                       * (VideoCrafter2's "penultimate" OpenCLIP-H output: 1); every block
                       * stays registered */
  int pool;           /* TEXT_POOL_MEAN over the caption's tokens, or TEXT_POOL_EOT: the
                       * token at the caption's last position (CLIP's EOT pooling) */
  int proj;           /* pooled projection: TEXT_PROJ_LINEAR (D → D with bias), TEXT_PROJ_NONE,
                       * TEXT_PROJ_NOBIAS (D → proj_dim, no bias: CLIP's text_projection) */
  int proj_dim;       /* width of the TEXT_PROJ_NOBIAS projection (0: dim) */
  int vocab_size;     /* > 0: a token table of that many rows for ids from a subword
                       * tokenizer (kernels/nn/bpe.h); 0: the word vocabulary's size */
} text_config;

/* max_len 64, dim 128 (unet_config_default's text_dim), 2 layers, 4 heads, mlp 4. */
text_config text_config_default(void);
/* OpenCLIP ViT-H-14's text tower as VideoCrafter2 conditions on it: 77 positions, 1024 wide,
 * 24 blocks of 16 heads, GELU, causal, penultimate block + ln_final, EOT pooling into a
 * 1024-wide projection without bias, a 49408-token BPE table. */
text_config text_config_openclip_h(void);
/* TB_ERR (err_get) naming the field when a config does not add up. */
int text_config_check(const text_config *c);
/* {"max_len":64,"dim":128,"layers":2,"heads":4,"mlp_mult":4} into buf; returns buf. */
char *text_config_format(const text_config *c, char *buf, size_t n);
/* Reads the JSON form; missing keys keep the defaults; TB_ERR names a bad key or value. */
int text_config_parse(text_config *c, const char *json);

/* The parameters' indices in their nn_params, per block. */
typedef struct {
  int ln1[2], q[2], k[2], v[2], o[2], ln2[2], fc1[2], fc2[2]; /* {weight, bias} */
} text_block_params;

typedef struct {
  text_config cfg;
  text_vocab vocab;                /* owned copy */
  char prefix[48];                 /* of the parameter names, e.g. "text." */
  int p_tok;                       /* token_embedding.weight (V, D) */
  int p_pos;                       /* positional_embedding (max_len, D) */
  text_block_params blk[TEXT_MAX_LAYERS];
  int p_lnf[2];                    /* ln_final.{weight,bias} (D) */
  int p_proj[2];                   /* text_projection.{weight (D, D), bias (D)}; -1: none */
  int n_vocab;                     /* rows of the token table */
} text_tower;

/* Registers the tower's parameters in p (before nn_params_alloc) under prefix, with a copy of
 * vocab (its size fixes the token table). TB_ERR on a bad config. */
int text_tower_register(text_tower *t, nn_params *p, const char *prefix, const text_config *cfg,
                        const text_vocab *vocab);
void text_tower_free(text_tower *t);
/* Parameter count of the tower alone. */
int64_t text_tower_numel(const text_tower *t, const nn_params *p);

/* A tokenized batch: ids (B, L) and valid (B, L) (1 from BOS to EOS, 0 on padding). */
typedef struct {
  int B, L;
  int32_t *ids;
  uint8_t *valid;
  int *len;       /* (B) ids per caption */
  int cut;        /* captions longer than max_len (cut) */
  int unknown;    /* UNK ids in all */
} text_batch;

/* Tokenizes B texts. L > 0: every row padded (or cut) to L (2 <= L <= max_len); L == 0: L is
 * the longest caption's id count (at most max_len). Free with text_batch_free. */
int text_batch_make(const text_tower *t, const char *const *texts, int B, int L, text_batch *out);
/* A batch from token ids (B, L) (host): each row BOS, ids in [0, V), EOS, then PAD to the end.
 * TB_ERR naming the row and position of anything else, or L > max_len. */
int text_batch_from_ids(const text_tower *t, const int32_t *ids, int B, int L, text_batch *out);
void text_batch_free(text_batch *b);
/* A batch of a subword tokenizer's ids (B, L) (host): each row's caption runs up to and
 * including its first `eot` id; anything after it is padding (any id in [0, V)). TB_ERR naming
 * the row when it has no eot or an id outside [0, V). */
int text_batch_from_eot_ids(const text_tower *t, const int32_t *ids, int B, int L, int32_t eot,
                            text_batch *out);

/* Checkpoint families of CLIP text towers whose names text_tensor_map translates. */
typedef enum {
  TEXT_FAMILY_HF_CLIP = 1,   /* transformers' CLIPTextModel(WithProjection): embeddings.*,
                              * encoder.layers.N.{layer_norm1, self_attn.{q,k,v,out}_proj,
                              * layer_norm2, mlp.fc1, mlp.fc2}, final_layer_norm; projection
                              * "text_projection.weight" at the top level */
  TEXT_FAMILY_OPEN_CLIP = 2, /* OpenCLIP: token_embedding, positional_embedding,
                              * transformer.resblocks.N.{ln_1, attn.in_proj_{weight,bias} (q, k,
                              * v stacked), attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj},
                              * ln_final, text_projection (D, E) used as x @ P */
} text_family;
/* The checkpoint tensor of every parameter of tower t (registered in p) in a family's names,
 * each under `prefix` ("text_model." for a transformers checkpoint, "cond_stage_model.model."
 * inside VideoCrafter2's). */
int text_tensor_map(const text_tower *t, const nn_params *p, text_family fam, const char *prefix,
                    nn_tensor_map *m);

/* Records the encoder on the tape: returns the output tokens (B·L, D) (after the final layer
 * norm) and, when pooled != NULL, the pooled embedding (B, D). frozen = 1: the parameters get
 * no gradients. */
nn_var text_tower_forward(const text_tower *t, nn_params *p, nn_ctx *c, const text_batch *b,
                          int frozen, nn_var *pooled);

/* ---- standalone, frozen -------------------------------------------------------------------- */

typedef struct text_encoder text_encoder;

/* Loads the text tower (tensors "text.*", metadata "text.config" and "text.vocab") from a
 * checkpoint: a reward model's (clip or video) or any safetensors file with those. NULL +
 * err_get() when the file, a tensor or the metadata is missing or does not match. */
text_encoder *text_encoder_load(const char *path);
void text_encoder_free(text_encoder *e);
const text_config *text_encoder_config(const text_encoder *e);
const text_vocab *text_encoder_vocab(const text_encoder *e);

/* Encodes B texts to host arrays: tokens (B, L, D) and pooled (B, D) (either may be NULL),
 * valid (B, L) (may be NULL). 2 <= L <= max_len; longer captions are cut (count them with
 * text_tokenize first to refuse them instead). No gradients, no activations kept. */
int text_encoder_encode(text_encoder *e, const char *const *texts, int B, int L, float *tokens,
                        float *pooled, uint8_t *valid);
/* The empty caption "" (BOS, EOS, padding): the classifier-free-guidance null context,
 * tokens (L, D) and pooled (D) (either may be NULL). */
int text_encoder_null(text_encoder *e, int L, float *tokens, float *pooled);

#ifdef __cplusplus
}
#endif
#endif

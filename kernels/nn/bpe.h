/* kernels/nn/bpe.h — CLIP's byte-level BPE tokenizer (OpenAI CLIP, OpenCLIP, the CLIP text
 * encoders of ModelScope T2V and VideoCrafter2), read from the vocab.json and merges.txt that
 * ship with a checkpoint (diffusers' tokenizer/ folder), giving the ids transformers'
 * CLIPTokenizer gives:
 *   1. the special tokens <|startoftext|> and <|endoftext|> written in the text are taken as
 *      they are (their ids), the text between them is tokenized on its own;
 *   2. each whitespace run becomes one space, then everything is lower-cased (full Unicode
 *      mapping);
 *   3. pieces: the special strings, the contractions 's 't 're 've 'm 'll 'd, runs of letters
 *      (\p{L}), single digits (\p{N}), runs of anything else but whitespace;
 *   4. each piece's UTF-8 bytes become CLIP's byte symbols, "</w>" is added to the last, and
 *      the merges are applied lowest rank first;
 *   5. BOS, the ids, EOS, at most max_len ids in all (a longer text is cut, EOS kept).
 * Input is taken as NFC (what a keyboard or a caption file gives; transformers composes
 * decomposed accents first, this tokenizer does not). Bytes that are not UTF-8 are tokenized as
 * symbols of their own.
 * Errors: TB_OK / TB_ERR with err_get() naming the file, line or symbol.
 */
#ifndef TURBO_NN_BPE_H
#define TURBO_NN_BPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct clip_bpe clip_bpe;

/* Reads vocab.json (a JSON object symbol → id) and merges.txt ("#version" line, then one "a b"
 * merge a line, highest priority first). Every merge's two symbols and their concatenation must
 * be in the vocabulary, as must the 256 byte symbols with and without "</w>" and the two
 * specials. NULL + err_get() otherwise. */
clip_bpe *clip_bpe_load(const char *vocab_json_path, const char *merges_path);
/* The same from the files' contents in memory (NUL-terminated). */
clip_bpe *clip_bpe_parse(const char *vocab_json, const char *merges_txt);
void clip_bpe_free(clip_bpe *t);

int clip_bpe_vocab_size(const clip_bpe *t); /* the largest id + 1 */
int32_t clip_bpe_bos(const clip_bpe *t);    /* <|startoftext|> */
int32_t clip_bpe_eos(const clip_bpe *t);    /* <|endoftext|> */

/* Tokenizes s (UTF-8) into ids (at most max_len >= 2): BOS, tokens, EOS. Returns the number of
 * ids written; *n_full (may be NULL) gets the number the whole text needs. */
int clip_bpe_encode(clip_bpe *t, const char *s, int max_len, int32_t *ids, int *n_full);

#ifdef __cplusplus
}
#endif
#endif

/* CLIP's BPE tokenizer (kernels/nn/bpe.h) against transformers' CLIPTokenizer: the vocabulary
 * of tests/fixtures/real/clip_tokenizer/ (trained with `tokenizers`, saved in CLIP's format)
 * and golden.jsonl, prompts with the ids CLIPTokenizer gives them (max_length 77, truncation):
 * every prompt's ids must be identical. Also: broken vocabulary / merges files are refused
 * with a message naming the line or symbol. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/json.h"
#include "common/log.h"
#include "kernels/nn/bpe.h"
#include "tests/testutil.h"

#define DIR "tests/fixtures/real/clip_tokenizer/"

int main(void) {
  test_begin("test_clip_bpe");
  clip_bpe *t = clip_bpe_load(DIR "vocab.json", DIR "merges.txt");
  CHECKF(t != NULL, "%s", err_get());
  if (!t) return test_finish();
  printf("vocabulary: %d symbols, bos %d, eos %d\n", clip_bpe_vocab_size(t), clip_bpe_bos(t),
         clip_bpe_eos(t));
  char *gold = NULL;
  size_t len = 0;
  int prompts = 0, same = 0, cut = 0;
  CHECK(fs_read_all(DIR "golden.jsonl", &gold, &len) == TB_OK);
  for (char *line = gold, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = 0;
    if (!*line) continue;
    json_value *v = json_parse(line, strlen(line), NULL);
    TB_CHECKF(v && v->type == JSON_OBJECT, "golden line %d", prompts + 1);
    const json_value *tx = json_get(v, "text"), *ids = json_get(v, "ids");
    TB_CHECK(tx && ids && ids->type == JSON_ARRAY);
    int32_t got[80];
    int full = 0, n = clip_bpe_encode(t, tx->string, 77, got, &full);
    int ok = n == (int)ids->count;
    for (int i = 0; ok && i < n; i++) ok = got[i] == ids->items[i].integer;
    prompts++;
    same += ok;
    cut += full > 77;
    if (!ok) {
      printf("MISMATCH \"%s\"\n  want", tx->string);
      for (size_t i = 0; i < ids->count; i++) printf(" %lld", (long long)ids->items[i].integer);
      printf("\n  got ");
      for (int i = 0; i < n; i++) printf(" %d", got[i]);
      printf("\n");
    }
    CHECKF(ok, "ids differ for \"%.80s\"", tx->string);
    json_free(v);
  }
  printf("golden prompts: %d, identical ids: %d (%d cut at 77 ids)\n", prompts, same, cut);
  CHECK(prompts >= 300);
  free(gold);
  clip_bpe_free(t);

  /* broken files */
  const char *vocab_ok = "{\"a\": 0}";
  clip_bpe *b = clip_bpe_parse(vocab_ok, "#version: 0.2\n");
  CHECK(b == NULL && strstr(err_get(), "byte 0x00"));
  printf("refused: %s\n", err_get());
  char *v = NULL;
  CHECK(fs_read_all(DIR "vocab.json", &v, &len) == TB_OK);
  b = clip_bpe_parse(v, "#version: 0.2\ni n\nzz qq\n");
  CHECK(b == NULL && strstr(err_get(), "line 3") && strstr(err_get(), "zz"));
  printf("refused: %s\n", err_get());
  b = clip_bpe_parse(v, "#version: 0.2\nin\n");
  CHECK(b == NULL && strstr(err_get(), "line 2"));
  printf("refused: %s\n", err_get());
  b = clip_bpe_parse("[1, 2]", "");
  CHECK(b == NULL);
  free(v);
  return test_finish();
}

/* The cache reader (common/enc_cache.h) on a workspace bin/encode filled: run by
 * tests/test_encode.sh with the workspace in TURBO_ENC_CACHE_WS (skipped alone). Every clip's
 * mean latent and short-caption tokens read back with the shapes the catalogue records and
 * finite values; then one byte of a latent in its shard is flipped and the reader must refuse
 * that clip with a message naming it, while other clips still read. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/catalogue.h"
#include "common/enc_cache.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "tests/testutil.h"

int main(void) {
  const char *ws = getenv("TURBO_ENC_CACHE_WS");
  if (!ws) return test_skip("needs a workspace filled by bin/encode (tests/test_encode.sh runs it)");
  test_begin("test_enc_cache");
  catalogue *cat = catalogue_open_workspace(ws, 0);
  TB_CHECKF(cat != NULL, "%s", err_get());
  catalogue_dataset ds;
  TB_CHECK(catalogue_dataset_lookup(cat, "rewards", &ds) == 1);
  int64_t *ids = NULL, n = 0;
  TB_CHECK(catalogue_dataset_clips(cat, ds.id, -1, NULL, &ids, &n) == TB_OK);
  catalogue_dataset_clear(&ds);
  CHECK(n > 1);
  for (int64_t i = 0; i < n; i++) {
    tensor z, tok, pool;
    CHECKF(enc_cache_get(cat, ws, "latent", ids[i], "vae", "mean", &z) == 1, "clip %lld: %s",
           (long long)ids[i], err_get());
    CHECK(z.ndim == 4 && z.shape[1] == 4 && z.shape[2] == 16 && z.shape[3] == 16);
    float *d = z.data;
    for (int64_t k = 0; k < tensor_numel(&z); k++) CHECK(isfinite(d[k]));
    CHECK(enc_cache_get(cat, ws, "text_tokens", ids[i], "reward-clip", "short", &tok) == 1);
    CHECK(enc_cache_get(cat, ws, "text_pooled", ids[i], "reward-clip", "short", &pool) == 1);
    CHECK(tok.ndim == 2 && pool.ndim == 1 && tok.shape[1] == pool.shape[0]);
    tensor_free(&z), tensor_free(&tok), tensor_free(&pool);
  }
  tensor none;
  CHECK(enc_cache_get(cat, ws, "latent", ids[0], "vae", "no-such-variant", &none) == 0);
  /* damage clip 0's latent */
  catalogue_tensor t;
  TB_CHECK(catalogue_tensor_find(cat, "latent", ids[0], 0, -1, "mean", &t) == 1);
  char path[4096];
  fs_join(path, sizeof path, ws, t.path);
  FILE *fp = fopen(path, "r+b");
  TB_CHECK(fp != NULL);
  fseek(fp, (long)t.offset + 5, SEEK_SET);
  int ch = fgetc(fp);
  fseek(fp, (long)t.offset + 5, SEEK_SET);
  fputc(ch ^ 0x40, fp);
  fclose(fp);
  catalogue_tensor_clear(&t);
  tensor z;
  CHECK(enc_cache_get(cat, ws, "latent", ids[0], "vae", "mean", &z) == TB_ERR);
  char want[64];
  snprintf(want, sizeof want, "clip %lld", (long long)ids[0]);
  printf("damaged shard refused: %s\n", err_get());
  CHECKF(strstr(err_get(), want) && strstr(err_get(), "checksum"), "message: %s", err_get());
  CHECK(enc_cache_get(cat, ws, "latent", ids[1], "vae", "mean", &z) == 1);
  tensor_free(&z);
  printf("%lld clips read back\n", (long long)n);
  free(ids);
  catalogue_close(cat);
  return test_finish();
}

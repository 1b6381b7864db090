/* common/enc_cache.c — see enc_cache.h. */
#include "common/enc_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/log.h"

int enc_cache_get_id(catalogue *cat, const char *workspace, const char *kind, int64_t clip_id,
                     int64_t model_id, const char *variant, tensor *out) {
  memset(out, 0, sizeof *out);
  catalogue_tensor t;
  int f = catalogue_tensor_find(cat, kind, clip_id, 0, model_id ? model_id : -1, variant, &t);
  if (f != 1) return f;
  char path[4096];
  fs_join(path, sizeof path, workspace, t.path);
  int rc = TB_OK;
  tensor r;
  memset(&r, 0, sizeof r);
  if (tensor_new_try(&r, t.dtype, t.ndim, t.shape) != TB_OK) {
    rc = err_wrap("%s %s of clip %lld: ", kind, variant ? variant : "", (long long)clip_id);
  } else if (tensor_nbytes(&r) != t.nbytes) {
    rc = err_set("%s: the catalogue's %s of clip %lld has %lld bytes for shape of %lld bytes",
                 t.path, kind, (long long)clip_id, (long long)t.nbytes,
                 (long long)tensor_nbytes(&r));
  } else {
    FILE *fp = fopen(path, "rb");
    if (!fp) rc = err_set("%s: cannot open the cache shard (rerun bin/encode)", path);
    else {
      if (fseeko(fp, (off_t)t.offset, SEEK_SET) != 0 ||
          fread(r.data, 1, (size_t)t.nbytes, fp) != (size_t)t.nbytes)
        rc = err_set("%s: %s of clip %lld: %lld bytes at offset %lld cannot be read (the shard is "
                     "short; rerun bin/encode)", path, kind, (long long)clip_id,
                     (long long)t.nbytes, (long long)t.offset);
      fclose(fp);
    }
    if (rc == TB_OK && t.checksum) {
      char hex[17];
      snprintf(hex, sizeof hex, "%016llx", (unsigned long long)checksum64(r.data, (size_t)t.nbytes));
      if (strcmp(hex, t.checksum) != 0)
        rc = err_set("%s: %s of clip %lld at offset %lld has checksum %s, the catalogue says %s "
                     "(the shard changed; rerun bin/encode)", path, kind, (long long)clip_id,
                     (long long)t.offset, hex, t.checksum);
    }
  }
  catalogue_tensor_clear(&t);
  if (rc != TB_OK) {
    tensor_free(&r);
    return TB_ERR;
  }
  *out = r;
  return 1;
}

int enc_cache_get(catalogue *cat, const char *workspace, const char *kind, int64_t clip_id,
                  const char *model_name, const char *variant, tensor *out) {
  catalogue_model m;
  int f = catalogue_model_lookup(cat, model_name, &m);
  if (f != 1) {
    memset(out, 0, sizeof *out);
    return f == TB_ERR ? TB_ERR : err_set("no model '%s' in the catalogue: train it and run "
                                          "bin/encode first", model_name);
  }
  int64_t id = m.id;
  catalogue_model_clear(&m);
  return enc_cache_get_id(cat, workspace, kind, clip_id, id, variant, out);
}

/* tests/fuzz/fuzz_msg.c — libFuzzer target for the message decoder and validator.
 *
 * Input layout (tests/fuzz/make_seeds.c writes valid ones):
 *   byte 0        bit 7 set: the rest is schema text for schema_registry_add_text;
 *                 else the frame count n (mod 1 + MSG_MAX_TENSORS + 2, so one too many occurs)
 *   per frame     2-byte little-endian length, then that many bytes (cut at the input's end)
 * The frames go through msg_decode_frames against the real schemas/ folder. A message that
 * decodes must re-encode and decode again to the same schema, id, fields and tensors.
 *
 *   make BUILD=build fuzz FUZZ_SECONDS=60
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/msg.h"
#include "common/schema.h"

static schema_registry *g_reg;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (schema_registry_load_default(&g_reg) != TB_OK) {
    fprintf(stderr, "fuzz_msg: %s\n", err_get());
    abort();
  }
  return 0;
}

static void recheck(const msg *m, const void *const *frames, const size_t *lens, int n) {
  void *hdr;
  size_t hlen;
  if (msg_header_encode(m, &hdr, &hlen) != TB_OK) {
    fprintf(stderr, "re-encode failed: %s\n", err_get());
    abort();
  }
  const void *fr[1 + MSG_MAX_TENSORS];
  size_t ln[1 + MSG_MAX_TENSORS];
  fr[0] = hdr;
  ln[0] = hlen;
  for (int i = 1; i < n; i++) {
    fr[i] = msg_tensor_at(m, i - 1)->data;
    ln[i] = lens[i];
  }
  (void)frames;
  msg *d = NULL;
  if (msg_decode_frames(fr, ln, n, g_reg, &d, NULL) != TB_OK) {
    fprintf(stderr, "re-decode failed: %s\n", err_get());
    abort();
  }
  if (strcmp(msg_schema(d), msg_schema(m)) || msg_id(d) != msg_id(m) ||
      msg_version(d) != msg_version(m) || msg_field_count(d) != msg_field_count(m) ||
      msg_tensor_count(d) != msg_tensor_count(m))
    abort();
  for (int i = 0; i < msg_tensor_count(m); i++) {
    const tensor *a = msg_tensor_at(m, i), *b = msg_tensor_at(d, i);
    size_t nb = (size_t)tensor_nbytes(a);
    if (!tensor_same_shape(a, b) || a->dtype != b->dtype ||
        (nb && memcmp(a->data, b->data, nb)))
      abort();
  }
  msg_free(d);
  free(hdr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  if (data[0] & 0x80) {
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    schema_registry *r = schema_registry_new();
    schema_registry_add_text(r, text, "fuzz");
    char list[256];
    schema_registry_list(r, list, sizeof list);
    schema_registry_free(r);
    free(text);
    return 0;
  }
  int n = data[0] % (MSG_MAX_TENSORS + 3);
  const void *frames[MSG_MAX_TENSORS + 3];
  size_t lens[MSG_MAX_TENSORS + 3];
  size_t off = 1;
  for (int i = 0; i < n; i++) {
    size_t len = 0;
    if (off + 2 <= size) len = (size_t)data[off] | (size_t)data[off + 1] << 8;
    off = off + 2 < size ? off + 2 : size;
    if (len > size - off) len = size - off;
    /* each frame in its own allocation, so ASan sees reads past a frame's end */
    void *copy = malloc(len ? len : 1);
    memcpy(copy, data + off, len);
    frames[i] = copy;
    lens[i] = len;
    off += len;
  }
  msg *m = NULL;
  msg_info info;
  if (msg_decode_frames(frames, lens, n, g_reg, &m, &info) == TB_OK) {
    recheck(m, frames, lens, n);
    msg_free(m);
  } else {
    if (m || info.code == 0 || !err_get()[0]) abort(); /* a rejection always says why */
    msg *e = msg_error_new(info.code, err_get(), info.schema, info.id);
    msg_free(e);
  }
  for (int i = 0; i < n; i++) free((void *)frames[i]);
  return 0;
}

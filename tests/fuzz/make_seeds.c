/* tests/fuzz/make_seeds.c — writes the fuzzer's seed inputs (valid messages in fuzz_msg.c's
 * input layout) into tests/fuzz/seeds/. Not built by default; from the repository root:
 *   cc -std=c11 -D_GNU_SOURCE -I. tests/fuzz/make_seeds.c BUILD/libturbo_common.a \
 *      $(pkg-config --libs libzmq msgpack sqlite3 libavformat libavcodec libavutil libswscale) \
 *      -lm -lpthread -o /tmp/make_seeds && /tmp/make_seeds tests/fuzz/seeds
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "common/msg.h"

static void put_frame(FILE *f, const void *p, size_t n) {
  if (n > 0xffff) n = 0xffff;
  fputc((int)(n & 0xff), f);
  fputc((int)(n >> 8), f);
  fwrite(p, 1, n, f);
}

static void write_seed(const char *dir, const char *name, msg *m) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    exit(1);
  }
  void *hdr;
  size_t hlen;
  if (msg_header_encode(m, &hdr, &hlen) != TB_OK) {
    fprintf(stderr, "%s: %s\n", name, err_get());
    exit(1);
  }
  fputc(1 + msg_tensor_count(m), f);
  put_frame(f, hdr, hlen);
  for (int i = 0; i < msg_tensor_count(m); i++)
    put_frame(f, msg_tensor_at(m, i)->data, (size_t)tensor_nbytes(msg_tensor_at(m, i)));
  fclose(f);
  free(hdr);
  msg_free(m);
}

static void add(msg *m, const char *name, dtype_t dt, int ndim, const int64_t *shape, float v) {
  tensor t = tensor_new(dt, ndim, shape);
  for (int64_t i = 0; i < tensor_numel(&t); i++) {
    if (dt == DTYPE_F32) ((float *)t.data)[i] = v;
    else if (dt == DTYPE_BF16) ((uint16_t *)t.data)[i] = f32_to_bf16(v);
    else if (dt == DTYPE_F16) ((uint16_t *)t.data)[i] = f32_to_f16(v);
  }
  msg_add_tensor_owned(m, name, &t);
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "tests/fuzz/seeds";
  fs_mkdir_p(dir);
  msg *m = msg_new("ping", 1, 1);
  msg_set_str(m, "from", "seed");
  write_seed(dir, "ping", m);

  m = msg_new("pong", 1, 1);
  msg_set_str(m, "service", "teacher");
  msg_set_int(m, "pid", 42);
  msg_set_float(m, "uptime_s", 3.5);
  msg_set_str(m, "schemas", "echo/1,ping/1");
  write_seed(dir, "pong", m);

  m = msg_error_new(MSG_ERR_BAD_REQUEST, "field 'w' is missing", "teacher.step", 9);
  write_seed(dir, "error", m);

  m = msg_new("echo", 1, 2);
  msg_set_str(m, "tag", "all dtypes");
  for (int dt = 0; dt < DTYPE_COUNT; dt++) {
    int64_t sh[2] = {2, 3};
    char name[16];
    snprintf(name, sizeof name, "t%d", dt);
    add(m, name, (dtype_t)dt, 2, sh, 1.5f);
  }
  write_seed(dir, "echo_dtypes", m);

  m = msg_new("teacher.step", 1, 3);
  int64_t t[2] = {500, 400}, tp[2] = {495, 395};
  double w[2] = {7.5, 12};
  msg_set_ints(m, "t", t, 2);
  msg_set_ints(m, "t_prev", tp, 2);
  msg_set_floats(m, "w", w, 2);
  msg_set_float(m, "motion_scale", 500);
  int64_t zs[5] = {2, 2, 4, 2, 2}, es[3] = {2, 3, 4};
  add(m, "z", DTYPE_F32, 5, zs, 0.25f);
  add(m, "text_emb", DTYPE_BF16, 3, es, 0.5f);
  write_seed(dir, "teacher_step", m);

  m = msg_new("reward.score", 1, 4);
  msg_set_bool(m, "want_grad", 1);
  int64_t fs[5] = {1, 2, 3, 8, 8}, tk[2] = {1, 5}; /* H, W >= 8 as the schema asks */
  add(m, "frames", DTYPE_F32, 5, fs, -0.5f);
  add(m, "tokens", DTYPE_I32, 2, tk, 0);
  write_seed(dir, "reward_score", m);

  m = msg_new("reward.score.reply", 1, 4);
  int64_t b[1] = {1};
  add(m, "reward", DTYPE_F32, 1, b, 0.7f);
  add(m, "grad", DTYPE_F32, 5, fs, 0.01f);
  write_seed(dir, "reward_reply", m);

  /* a schema text seed (bit 7 of byte 0) */
  char path[1024];
  snprintf(path, sizeof path, "%s/schema_text", dir);
  FILE *f = fopen(path, "wb");
  const char *text = "schema s 1\nfield a ints required len=B min=0 max=9\ndim B min=1 max=4\n"
                     "tensor x f32,bf16 shape=B,3,* finite\ntensor y i32 shape=B optional\n"
                     "tensor * u8 shape=any optional\noneof y a\nlimit payload 1MiB\nextra allow\n";
  fputc(0x80, f);
  fwrite(text, 1, strlen(text), f);
  fclose(f);
  return 0;
}

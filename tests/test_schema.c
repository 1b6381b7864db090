/* tests/test_schema.c — the schema files and the validator: every shipped schema parses, a
 * valid message of each pipeline schema passes, and each kind of rejection names the field,
 * tensor or dimension at fault. Messages go through the real header codec (encode, then
 * msg_decode_frames), as a service would see them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/msg.h"
#include "common/schema.h"
#include "tests/testutil.h"

static schema_registry *g_reg;

/* Encode m, decode with validation; returns rc, and *code the error code. */
static int validate(const msg *m, int *code) {
  void *hdr;
  size_t hlen;
  if (msg_header_encode(m, &hdr, &hlen) != TB_OK) {
    *code = -1;
    return TB_ERR;
  }
  const void *fr[1 + MSG_MAX_TENSORS];
  size_t ln[1 + MSG_MAX_TENSORS];
  fr[0] = hdr;
  ln[0] = hlen;
  int n = msg_tensor_count(m);
  for (int i = 0; i < n; i++) {
    fr[i + 1] = msg_tensor_at(m, i)->data;
    ln[i + 1] = (size_t)tensor_nbytes(msg_tensor_at(m, i));
  }
  msg *d = NULL;
  msg_info info;
  int rc = msg_decode_frames(fr, ln, n + 1, g_reg, &d, &info);
  *code = info.code;
  msg_free(d);
  free(hdr);
  return rc;
}

#define EXPECT_OK(m)                                                                        \
  do {                                                                                      \
    int code_;                                                                              \
    CHECKF(validate((m), &code_) == TB_OK, "expected valid, got: %s", err_get());          \
  } while (0)

#define EXPECT_REJECT(m, needle, want_code)                                                 \
  do {                                                                                      \
    int code_ = 0;                                                                          \
    int rc_ = validate((m), &code_);                                                        \
    CHECKF(rc_ == TB_ERR, "expected rejection containing \"%s\"", (needle));               \
    CHECKF(rc_ == TB_ERR && strstr(err_get(), (needle)), "error \"%s\" lacks \"%s\"",       \
           err_get(), (needle));                                                            \
    CHECKF(rc_ == TB_ERR && code_ == (want_code), "code %d, expected %d (%s)", code_,       \
           (want_code), err_get());                                                         \
  } while (0)

static void add_f32(msg *m, const char *name, int ndim, const int64_t *shape, float v) {
  tensor t = tensor_new(DTYPE_F32, ndim, shape);
  for (int64_t i = 0; i < tensor_numel(&t); i++) ((float *)t.data)[i] = v;
  CHECKF(msg_add_tensor_owned(m, name, &t) == TB_OK, "add %s: %s", name, err_get());
}

static void add_dt(msg *m, const char *name, dtype_t dt, int ndim, const int64_t *shape) {
  tensor t = tensor_new(dt, ndim, shape);
  CHECKF(msg_add_tensor_owned(m, name, &t) == TB_OK, "add %s: %s", name, err_get());
}

/* A valid teacher.step for B=2: tweak one thing per case. */
typedef struct {
  int B, T, C, H, W, L, D;
} dims;
static msg *teacher_step(dims d, int skip_field, int skip_tensor) {
  msg *m = msg_new("teacher.step", 1, 11);
  int64_t t[128], tp[128];
  double w[128];
  for (int i = 0; i < d.B; i++) {
    t[i] = 500;
    tp[i] = 495;
    w[i] = 7.5;
  }
  if (skip_field != 1) msg_set_ints(m, "t", t, d.B);
  if (skip_field != 2) msg_set_ints(m, "t_prev", tp, d.B);
  if (skip_field != 3) msg_set_floats(m, "w", w, d.B);
  int64_t zs[5] = {d.B, d.T, d.C, d.H, d.W}, es[3] = {d.B, d.L, d.D};
  if (skip_tensor != 1) add_f32(m, "z", 5, zs, 0.5f);
  if (skip_tensor != 2) add_f32(m, "text_emb", 3, es, 0.1f);
  return m;
}

static const dims D0 = {2, 4, 4, 8, 8, 7, 16};

static void test_registry(void) {
  CHECK(schema_registry_count(g_reg) >= 11);
  const char *need[] = {"ping", "pong", "echo", "error", "heartbeat", "teacher.step",
                        "teacher.step.reply", "reward.score", "reward.score.reply",
                        "motion.extract", "motion.extract.reply"};
  for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
    CHECKF(schema_registry_has(g_reg, need[i], 1), "schema %s v1 not loaded", need[i]);
  char list[1024];
  size_t n = schema_registry_list(g_reg, list, sizeof list);
  CHECK(n == strlen(list) && strstr(list, "echo/1,error/1,"));
  char tiny[8];
  CHECK(schema_registry_list(g_reg, tiny, sizeof tiny) == n && strlen(tiny) < 8);
  int v = 0;
  CHECK(schema_registry_name_at(g_reg, 0, &v) && v == 1);
  char dir[4096];
  CHECK(schema_dir_default(dir, sizeof dir) != NULL);
}

static void test_valid_messages(void) {
  msg *m = teacher_step(D0, 0, 0);
  msg_set_float(m, "motion_scale", 500);
  msg_set_bool(m, "want_eps", 1);
  EXPECT_OK(m);
  msg_free(m);

  msg *r = msg_new("reward.score", 1, 1);
  int64_t fs[5] = {2, 4, 3, 16, 16}, tk[2] = {2, 77};
  add_f32(r, "frames", 5, fs, 0.0f);
  add_dt(r, "tokens", DTYPE_I64, 2, tk);
  msg_set_bool(r, "want_grad", 1);
  EXPECT_OK(r);
  msg_free(r);

  msg *rr = msg_new("reward.score.reply", 1, 1);
  int64_t bs[1] = {2};
  add_f32(rr, "reward", 1, bs, 0.3f);
  add_f32(rr, "grad", 5, fs, 0.0f);
  EXPECT_OK(rr);
  msg_free(rr);

  msg *p = msg_new("pong", 1, 1);
  msg_set_str(p, "service", "teacher");
  msg_set_int(p, "pid", 1234);
  msg_set_float(p, "uptime_s", 1.5);
  msg_set_str(p, "schemas", "echo/1");
  EXPECT_OK(p);
  msg_free(p);

  msg *e = msg_new("echo", 1, 1);
  int64_t any[4] = {1, 2, 3, 4};
  add_dt(e, "a", DTYPE_U8, 4, any);
  add_dt(e, "b", DTYPE_BF16, 1, any);
  EXPECT_OK(e);
  msg_free(e);
}

static void test_rejections(void) {
  msg *m;
  /* unknown schema, unknown version */
  m = msg_new("nope", 1, 1);
  EXPECT_REJECT(m, "unknown schema 'nope' (this service knows: echo/1,", MSG_ERR_UNKNOWN_SCHEMA);
  msg_free(m);
  m = msg_new("teacher.step", 9, 1);
  EXPECT_REJECT(m, "schema 'teacher.step' version 9 is not supported here (versions: 1)",
                MSG_ERR_UNKNOWN_SCHEMA);
  msg_free(m);
  /* missing / extra / mistyped fields */
  m = teacher_step(D0, 3, 0);
  EXPECT_REJECT(m, "teacher.step v1: required field 'w' (floats) is missing", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  m = teacher_step(D0, 0, 0);
  msg_set_int(m, "bogus", 1);
  EXPECT_REJECT(m, "field 'bogus' is not in the schema (fields: t, t_prev, w,", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  m = teacher_step(D0, 0, 0);
  msg_set_str(m, "w", "seven");
  EXPECT_REJECT(m, "field 'w' is str, expected floats", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  m = teacher_step(D0, 0, 0);
  msg_set_float(m, "want_eps", 1.0);
  EXPECT_REJECT(m, "field 'want_eps' is float, expected bool", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  /* out of range, element of an array, NaN/Inf in a finite field */
  m = teacher_step(D0, 0, 0);
  int64_t tbad[2] = {500, 1000};
  msg_set_ints(m, "t", tbad, 2);
  EXPECT_REJECT(m, "field 't'[1] is 1000, expected 0..999", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  m = teacher_step(D0, 0, 0);
  msg_set_float(m, "motion_scale", -1);
  EXPECT_REJECT(m, "field 'motion_scale' is -1, expected 0..100000", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  m = teacher_step(D0, 0, 0);
  double wn[2] = {7.0, NAN};
  msg_set_floats(m, "w", wn, 2);
  EXPECT_REJECT(m, "field 'w'[1] is nan, must be finite", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  m = teacher_step(D0, 0, 0);
  msg_set_float(m, "motion_scale", INFINITY);
  EXPECT_REJECT(m, "field 'motion_scale' is inf, must be finite", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  /* array length tied to a dim */
  m = teacher_step(D0, 0, 0);
  int64_t t1[1] = {500};
  msg_set_ints(m, "t", t1, 1);
  EXPECT_REJECT(m, "field 't' has 1 elements but tensor 'z' has B=2", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  /* string length */
  m = msg_new("echo", 1, 1);
  char s[300];
  memset(s, 'x', 299);
  s[299] = 0;
  msg_set_str(m, "tag", s);
  EXPECT_REJECT(m, "echo v1: field 'tag' is 299 bytes, at most 256", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  /* strings must be UTF-8 (a peer's Latin-1 or random bytes are refused, naming the byte) */
  m = msg_new("echo", 1, 1);
  msg_set_str(m, "tag", "caf\xe9 au lait");
  EXPECT_REJECT(m, "echo v1: field 'tag' is not valid UTF-8 (byte 3)", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  /* tensors: missing, extra, dtype, rank, fixed dim, disagreeing named dims, dim bounds */
  m = teacher_step(D0, 0, 2);
  EXPECT_REJECT(m, "required tensor 'text_emb' (F32,BF16 (B, L, D)) is missing",
                MSG_ERR_BAD_REQUEST);
  msg_free(m);
  m = teacher_step(D0, 0, 0);
  int64_t js[1] = {3};
  add_f32(m, "junk", 1, js, 0);
  EXPECT_REJECT(m, "tensor 'junk' (frame 3) is not in the schema (tensors: z, text_emb,",
                MSG_ERR_BAD_REQUEST);
  msg_free(m);
  m = msg_new("reward.score", 1, 1);
  int64_t fs[5] = {2, 4, 3, 16, 16}, tk[2] = {2, 77};
  add_f32(m, "frames", 5, fs, 0);
  add_dt(m, "tokens", DTYPE_F32, 2, tk);
  EXPECT_REJECT(m, "tensor 'tokens' is F32, expected I32,I64", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  m = msg_new("reward.score", 1, 1);
  int64_t f4[4] = {2, 4, 3, 16};
  add_f32(m, "frames", 4, f4, 0);
  add_dt(m, "tokens", DTYPE_I32, 2, tk);
  EXPECT_REJECT(m, "tensor 'frames' has shape (2, 4, 3, 16) (rank 4), expected (B, T, 3, H, W) (rank 5)",
                MSG_ERR_BAD_REQUEST);
  msg_free(m);
  m = msg_new("reward.score", 1, 1);
  int64_t f5[5] = {2, 4, 4, 16, 16};
  add_f32(m, "frames", 5, f5, 0);
  add_dt(m, "tokens", DTYPE_I32, 2, tk);
  EXPECT_REJECT(m, "tensor 'frames' has shape (2, 4, 4, 16, 16), dim 2 must be 3", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  m = msg_new("reward.score", 1, 1);
  int64_t tk3[2] = {3, 77};
  add_f32(m, "frames", 5, fs, 0);
  add_dt(m, "tokens", DTYPE_I32, 2, tk3);
  EXPECT_REJECT(m, "tensor 'tokens' dim 0 (B) is 3 but tensor 'frames' dim 0 has B=2",
                MSG_ERR_BAD_REQUEST);
  msg_free(m);
  dims big = D0;
  big.B = 65;
  m = teacher_step(big, 0, 0);
  EXPECT_REJECT(m, "tensor 'z' dim 0 (B) is 65, expected 1..64", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  m = msg_new("reward.score.reply", 1, 1);
  int64_t b65[1] = {65};
  add_f32(m, "reward", 1, b65, 0);
  EXPECT_REJECT(m, "tensor 'reward' dim 0 (B) is 65, expected 1..64", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  /* oneof: neither, both */
  m = msg_new("reward.score", 1, 1);
  add_f32(m, "frames", 5, fs, 0);
  EXPECT_REJECT(m, "exactly one of text, tokens must be present, found 0", MSG_ERR_BAD_REQUEST);
  int64_t es[2] = {2, 77};
  add_dt(m, "text", DTYPE_U8, 2, es);
  add_dt(m, "tokens", DTYPE_I32, 2, tk);
  EXPECT_REJECT(m, "exactly one of text, tokens must be present, found 2", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  /* NaN / Inf in tensors marked finite (f32, bf16, f16), allowed where not marked */
  m = teacher_step(D0, 0, 0);
  ((float *)msg_tensor_get(m, "z")->data)[17] = NAN;
  EXPECT_REJECT(m, "tensor 'z' element 17 is NaN; it must be finite", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  m = msg_new("reward.score", 1, 1);
  {
    tensor f = tensor_new(DTYPE_BF16, 5, fs);
    ((uint16_t *)f.data)[3] = f32_to_bf16(-INFINITY);
    msg_add_tensor_owned(m, "frames", &f);
  }
  add_dt(m, "tokens", DTYPE_I32, 2, tk);
  EXPECT_REJECT(m, "tensor 'frames' element 3 is Inf", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  m = msg_new("echo", 1, 1); /* echo does not ask for finite values */
  {
    int64_t s4[1] = {4};
    tensor f = tensor_new(DTYPE_F16, 1, s4);
    ((uint16_t *)f.data)[0] = f32_to_f16(NAN);
    msg_add_tensor_owned(m, "h", &f);
  }
  EXPECT_OK(m);
  msg_free(m);
}

static void test_payload_limit_and_parser(void) {
  schema_registry *r = schema_registry_new();
  const char *ok =
      "# a test schema\n"
      "schema tiny 2\n"
      "field  n  int optional min=0 max=10\n"
      "field  xs floats optional maxn=3 min=-1 max=1\n"
      "dim    N  min=1 max=100\n"
      "tensor a  u8 shape=N\n"
      "tensor b  i32 shape= optional\n"
      "limit  payload 1KiB\n"
      "schema tiny.open 1\n"
      "extra  allow\n"
      "tensor * f32 shape=any optional\n";
  CHECKF(schema_registry_add_text(r, ok, "inline") == TB_OK, "%s", err_get());
  CHECK(schema_registry_count(r) == 2);
  CHECK(schema_registry_add_text(r, "schema tiny 2\n", "again") == TB_ERR &&
        strstr(err_get(), "already registered"));
  schema_registry *save = g_reg;
  g_reg = r;
  msg *m = msg_new("tiny", 2, 1);
  int64_t s[1] = {100};
  add_dt(m, "a", DTYPE_U8, 1, s);
  EXPECT_OK(m);
  msg_free(m);
  m = msg_new("tiny", 2, 1);
  int64_t s2[1] = {2000};
  add_dt(m, "a", DTYPE_U8, 1, s2);
  EXPECT_REJECT(m, "tensor 'a' dim 0 (N) is 2000, expected 1..100", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  m = msg_new("tiny", 2, 1);
  add_dt(m, "a", DTYPE_U8, 1, s);
  int64_t big[1] = {300};
  add_dt(m, "b", DTYPE_I32, 0, NULL);
  msg_free(m);
  m = msg_new("tiny", 2, 1);
  add_dt(m, "a", DTYPE_U8, 1, s);
  CHECK(msg_add_tensor_owned(m, "b", &(tensor){0}) == TB_ERR); /* a view, not owned */
  msg_free(m);
  /* payload: a is 100 bytes; use the open schema's wildcard for a big one */
  m = msg_new("tiny.open", 1, 1);
  add_dt(m, "whatever", DTYPE_F32, 1, big);
  msg_set_str(m, "anything", "goes");
  EXPECT_OK(m);
  msg_free(m);
  double xs[4] = {0, 0.5, 2, 0};
  m = msg_new("tiny", 2, 1);
  add_dt(m, "a", DTYPE_U8, 1, s);
  msg_set_floats(m, "xs", xs, 4);
  EXPECT_REJECT(m, "field 'xs' has 4 elements, at most 3", MSG_ERR_BAD_REQUEST);
  msg_set_floats(m, "xs", xs, 3);
  EXPECT_REJECT(m, "field 'xs'[2] is 2, expected -1..1", MSG_ERR_BAD_REQUEST);
  msg_free(m);
  g_reg = save;
  schema_registry_free(r);

  /* payload over a schema's limit */
  r = schema_registry_new();
  CHECK(schema_registry_add_text(r, "schema cap 1\ntensor x f32 shape=*\nlimit payload 1K\n",
                                 "cap") == TB_OK);
  g_reg = r;
  m = msg_new("cap", 1, 1);
  int64_t n300[1] = {300};
  add_dt(m, "x", DTYPE_F32, 1, n300);
  EXPECT_REJECT(m, "cap v1: tensors total 1200 bytes, limit 1024", MSG_ERR_TOO_LARGE);
  msg_free(m);
  g_reg = save;
  schema_registry_free(r);

  /* parse errors name file:line and the token */
  struct {
    const char *text, *needle;
  } bad[] = {
      {"field x int\n", "t.schema:1: 'field' before the 'schema NAME VERSION' line"},
      {"schema a 1\nfield x integer\n", "t.schema:2: field 'x': type 'integer'"},
      {"schema a 1\nfield id int\n", "t.schema:2: field name 'id' is reserved"},
      {"schema a 1\nfield x int wobbly\n", "t.schema:2: field 'x': unknown option 'wobbly'"},
      {"schema a 1\nfield x int min=abc\n", "t.schema:2: min 'abc' is not a number"},
      {"schema a 1\ntensor z f64 shape=B\n", "t.schema:2: dtype 'f64'"},
      {"schema a 1\ntensor z f32 finite\n", "t.schema:2: tensor 'z' lacks shape="},
      {"schema a 1\ntensor z f32 shape=1,2,3,4,5,6\n", "more than 5 dims"},
      {"schema a 1\nlimit payload 5XB\n", "t.schema:2: size '5XB'"},
      {"schema a 1\nfrobnicate\n", "t.schema:2: unknown keyword 'frobnicate'"},
      {"schema a 0\n", "version must be 1..1000000"},
      {"schema a 1\ndim Q min=1\n", "dim 'Q' is used by no tensor"},
      {"schema a 1\ntensor x f32 shape=B\noneof x y\n", "oneof names 'x'"},
      {"# nothing\n", "no 'schema NAME VERSION' line"},
      {"schema a 1\nfield x int\nfield x float\n", "field 'x' declared twice"},
      {"schema a 1\nfield x int len=B\n", "len= applies to ints and floats"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    r = schema_registry_new();
    int rc = schema_registry_add_text(r, bad[i].text, "t.schema");
    CHECKF(rc == TB_ERR && strstr(err_get(), bad[i].needle), "case %zu: rc %d, error '%s' lacks '%s'",
           i, rc, err_get(), bad[i].needle);
    CHECK(schema_registry_count(r) == 0);
    schema_registry_free(r);
  }
  schema_registry *none = NULL;
  CHECK(schema_registry_load("/nonexistent-dir", &none) == TB_ERR && !none &&
        strstr(err_get(), "/nonexistent-dir"));
}

int main(void) {
  test_begin("schema");
  if (schema_registry_load("schemas", &g_reg) != TB_OK) {
    CHECKF(0, "loading schemas/: %s", err_get());
    return test_finish();
  }
  test_registry();
  test_valid_messages();
  test_rejections();
  test_payload_limit_and_parser();
  schema_registry_free(g_reg);
  return test_finish();
}

/* safetensors: round trip of every turbo dtype and of 0-d, 5-d and empty tensors with metadata;
 * a file made by the reference implementation (tests/fixtures/reference.safetensors, see
 * make_safetensors_fixture.py) read value by value; malformed files each rejected with a message
 * naming the problem; truncations and byte flips never accepted wrongly or crashing; lookup
 * among thousands of tensors. The file written here (c_written.safetensors in the test's output
 * folder) is what `make_safetensors_fixture.py --check` loads with the reference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "tests/testutil.h"

#define FIXTURE "tests/fixtures/reference.safetensors"

/* The values both this test and the fixture script compute: element i of each tensor. */
static double want_value(const char *name, int64_t i) {
  if (!strcmp(name, "f32_arange")) return (double)i * 0.5 - 3;
  if (!strcmp(name, "f16_vals")) return (double)i * 0.25 - 0.5;
  if (!strcmp(name, "bf16_vals")) return (double)i - 2.5;
  if (!strcmp(name, "u8_vals")) return (double)i * 20;
  if (!strcmp(name, "i32_vals")) return (double)i * 1000 - 1500;
  if (!strcmp(name, "i64_vals")) {
    static const double v[3] = {-1099511627776.0, 0, 1099511627783.0};
    return v[i];
  }
  if (!strcmp(name, "f64_vals")) return i == 0 ? 1.5 : -2.25;
  if (!strcmp(name, "i8_vals")) {
    static const double v[4] = {-128, -1, 0, 127};
    return v[i];
  }
  if (!strcmp(name, "bool_vals")) return i == 1 ? 0 : 1;
  if (!strcmp(name, "scalar")) return 7.25;
  if (!strcmp(name, "five_d")) return (double)i;
  return 0;
}

typedef struct {
  const char *name;
  dtype_t dt;
  int ndim;
  int64_t shape[5];
} spec;

static const spec g_specs[] = {
    {"f32_arange", DTYPE_F32, 3, {2, 3, 4}}, {"f16_vals", DTYPE_F16, 1, {5}},
    {"bf16_vals", DTYPE_BF16, 2, {2, 3}},    {"u8_vals", DTYPE_U8, 2, {3, 4}},
    {"i32_vals", DTYPE_I32, 2, {2, 2}},      {"i64_vals", DTYPE_I64, 1, {3}},
    {"scalar", DTYPE_F32, 0, {0}},           {"empty", DTYPE_F32, 2, {0, 3}},
    {"five_d", DTYPE_F32, 5, {1, 2, 1, 2, 3}},
};
#define N_SPECS (int)(sizeof g_specs / sizeof g_specs[0])

static tensor make_tensor(const spec *s) {
  tensor t = tensor_new(s->dt, s->ndim, s->shape);
  int64_t n = tensor_numel(&t);
  for (int64_t i = 0; i < n; i++) {
    double v = want_value(s->name, i);
    switch (s->dt) {
    case DTYPE_F32: ((float *)t.data)[i] = (float)v; break;
    case DTYPE_F16: ((uint16_t *)t.data)[i] = f32_to_f16((float)v); break;
    case DTYPE_BF16: ((uint16_t *)t.data)[i] = f32_to_bf16((float)v); break;
    case DTYPE_U8: ((uint8_t *)t.data)[i] = (uint8_t)v; break;
    case DTYPE_I32: ((int32_t *)t.data)[i] = (int32_t)v; break;
    case DTYPE_I64: ((int64_t *)t.data)[i] = (int64_t)v; break;
    default: break;
    }
  }
  return t;
}

/* Checks every element of entry e (by its f32 conversion; I64 exactly). */
static void check_entry_values(const safetensors_file *f, const char *name) {
  const safetensors_entry *e = safetensors_find(f, name);
  CHECKF(e != NULL, "tensor %s missing", name);
  if (!e) return;
  tensor t;
  CHECKF(safetensors_read_f32(f, name, -1, NULL, &t) == TB_OK, "%s: %s", name, err_get());
  int bad = 0;
  for (int64_t i = 0; i < e->numel; i++)
    if (((float *)t.data)[i] != (float)want_value(name, i)) bad++;
  CHECKF(bad == 0, "%s: %d values differ", name, bad);
  if (!strcmp(e->dtype_name, "I64")) {
    int64_t v2;
    memcpy(&v2, (const uint8_t *)e->data + 16, 8);
    CHECK(v2 == (1LL << 40) + 7);
  }
  tensor_free(&t);
}

static void test_round_trip(const char *dir) {
  safetensors_writer *w = safetensors_writer_new();
  tensor ts[N_SPECS];
  for (int i = 0; i < N_SPECS; i++) {
    ts[i] = make_tensor(&g_specs[i]);
    /* half copied, half referenced */
    int r = (i % 2) ? safetensors_writer_add_ref(w, g_specs[i].name, &ts[i])
                    : safetensors_writer_add(w, g_specs[i].name, &ts[i]);
    CHECK(r == TB_OK);
  }
  safetensors_writer_set_meta(w, "format", "pt");
  safetensors_writer_set_meta(w, "turbo", "replaced below");
  safetensors_writer_set_meta(w, "turbo", "test_safetensors \"quoted\" caf\xc3\xa9");
  tensor bad = ts[0];
  CHECK(safetensors_writer_add(w, "__metadata__", &bad) == TB_ERR);
  CHECK(safetensors_writer_add(w, "", &bad) == TB_ERR);

  char path[1024];
  fs_join(path, sizeof path, dir, "c_written.safetensors");
  CHECKF(safetensors_writer_save(w, path) == TB_OK, "save: %s", err_get());
  uint8_t *buf;
  size_t len;
  CHECK(safetensors_writer_to_buffer(w, &buf, &len) == TB_OK);
  char *disk;
  size_t dlen;
  CHECK(fs_read_all(path, &disk, &dlen) == TB_OK);
  CHECK(dlen == len && memcmp(disk, buf, len) == 0);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
  CHECKF(hlen % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)hlen);
  /* Order: I64 first (largest alignment), then F32 by name, I32, BF16, F16, U8. */
  const char *order[] = {"i64_vals", "empty", "f32_arange", "five_d", "scalar",
                         "i32_vals", "bf16_vals", "f16_vals", "u8_vals"};
  free(disk);

  safetensors_file *f;
  CHECKF(safetensors_open(path, &f) == TB_OK, "open: %s", err_get());
  if (f) {
    CHECK(safetensors_count(f) == (size_t)N_SPECS);
    for (int i = 0; i < N_SPECS && i < (int)safetensors_count(f); i++)
      CHECKF(!strcmp(safetensors_entry_at(f, i)->name, order[i]), "order %d: %s, want %s", i,
             safetensors_entry_at(f, i)->name, order[i]);
    for (int i = 0; i < N_SPECS; i++) {
      const safetensors_entry *e = safetensors_find(f, g_specs[i].name);
      CHECK(e && e->dtype == (int)g_specs[i].dt && e->ndim == g_specs[i].ndim);
      if (!e) continue;
      CHECK(memcmp(e->shape, g_specs[i].shape, sizeof(int64_t) * (size_t)e->ndim) == 0);
      CHECK(e->aligned && e->view.flags == TENSOR_VIEW);
      int64_t nb = tensor_nbytes(&ts[i]);
      CHECKF(e->end - e->begin == (uint64_t)nb && memcmp(e->view.data, ts[i].data, (size_t)nb) == 0,
             "%s bytes differ", e->name);
      check_entry_values(f, g_specs[i].name);
    }
    CHECK(safetensors_find(f, "nope") == NULL);
    CHECK(safetensors_meta_count(f) == 2);
    CHECK(safetensors_meta_get(f, "format") && !strcmp(safetensors_meta_get(f, "format"), "pt"));
    CHECK(!strcmp(safetensors_meta_get(f, "turbo"), "test_safetensors \"quoted\" caf\xc3\xa9"));
    int64_t want_shape[3] = {2, 3, 4}, wrong[3] = {2, 4, 3};
    tensor t;
    CHECK(safetensors_read_f32(f, "f32_arange", 3, want_shape, &t) == TB_OK);
    tensor_free(&t);
    CHECK(safetensors_read_f32(f, "f32_arange", 3, wrong, &t) == TB_ERR &&
          strstr(err_get(), "file has shape (2, 3, 4), expected (2, 4, 3)"));
    CHECK(safetensors_read_f32(f, "nope", -1, NULL, &t) == TB_ERR && strstr(err_get(), "\"nope\" not found"));
    safetensors_close(f);
  }

  /* Truncations: every shorter prefix is rejected. */
  int accepted = 0;
  for (size_t l = 0; l < len; l++) {
    safetensors_file *g;
    if (safetensors_parse(buf, l, &g) == TB_OK) accepted++, safetensors_close(g);
  }
  CHECKF(accepted == 0, "%d truncated prefixes accepted", accepted);
  /* Byte flips in the header: may be accepted (a digit that stays consistent is rare), must
   * never crash; the sanitizer build checks memory safety. */
  uint64_t rng = 12345;
  uint8_t *mut = malloc(len);
  int ok_after_flip = 0;
  for (int it = 0; it < 3000; it++) {
    memcpy(mut, buf, len);
    int flips = 1 + (int)(test_rand_u64(&rng) % 3);
    for (int k = 0; k < flips; k++) mut[test_rand_u64(&rng) % (8 + hlen)] ^= (uint8_t)(1u << (test_rand_u64(&rng) % 8));
    safetensors_file *g;
    if (safetensors_parse(mut, len, &g) == TB_OK) ok_after_flip++, safetensors_close(g);
  }
  log_info("byte flips: %d of 3000 mutated files still valid (name/metadata changes)", ok_after_flip);
  free(mut);

  tensor dup = ts[0];
  safetensors_writer_add(w, "f32_arange", &dup);
  CHECK(safetensors_writer_save(w, path) == TB_ERR && strstr(err_get(), "\"f32_arange\" added twice"));
  free(buf);
  safetensors_writer_free(w);
  for (int i = 0; i < N_SPECS; i++) tensor_free(&ts[i]);

  /* A file with no tensors at all. */
  safetensors_writer *w0 = safetensors_writer_new();
  CHECK(safetensors_writer_to_buffer(w0, &buf, &len) == TB_OK && len == 16);
  safetensors_file *f0;
  CHECK(safetensors_parse(buf, len, &f0) == TB_OK && safetensors_count(f0) == 0);
  safetensors_close(f0);
  free(buf);
  safetensors_writer_free(w0);
}

static void test_reference_fixture(void) {
  safetensors_file *f;
  if (safetensors_open(FIXTURE, &f) != TB_OK) {
    CHECKF(0, "cannot read the reference fixture: %s (run from the repository root)", err_get());
    return;
  }
  CHECK(safetensors_count(f) == 12);
  const char *names[] = {"f32_arange", "f16_vals", "bf16_vals", "u8_vals", "i32_vals", "i64_vals",
                         "f64_vals", "i8_vals", "bool_vals", "scalar", "empty", "five_d"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) check_entry_values(f, names[i]);
  const safetensors_entry *e = safetensors_find(f, "f64_vals");
  CHECK(e && e->dtype == -1 && !strcmp(e->dtype_name, "F64") && e->elem_size == 8);
  e = safetensors_find(f, "five_d");
  CHECK(e && e->ndim == 5 && e->shape[4] == 3 && e->numel == 12);
  e = safetensors_find(f, "scalar");
  CHECK(e && e->ndim == 0 && e->numel == 1 && ((const float *)e->view.data)[0] == 7.25f);
  e = safetensors_find(f, "empty");
  CHECK(e && e->numel == 0 && e->begin == e->end);
  CHECK(safetensors_meta_count(f) == 3);
  CHECK(!strcmp(safetensors_meta_get(f, "note"), "caf\xc3\xa9 \xe2\x9c\x93"));
  CHECK(!strcmp(safetensors_meta_get(f, "producer"), "make_safetensors_fixture.py"));
  const char *k, *v;
  safetensors_meta_at(f, 0, &k, &v);
  CHECK(!strcmp(k, "format") && !strcmp(v, "pt"));
  safetensors_close(f);
}

/* A file image: 8-byte length, header text, `data` bytes of 0xab. */
static uint8_t *image_of(const char *hdr, uint64_t claimed, size_t data, size_t *len) {
  size_t h = strlen(hdr);
  *len = 8 + h + data;
  uint8_t *b = malloc(*len);
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)(claimed >> (8 * i));
  memcpy(b + 8, hdr, h);
  memset(b + 8 + h, 0xab, data);
  return b;
}

static void expect_reject(const char *what, const uint8_t *b, size_t len, const char *want) {
  safetensors_file *f = NULL;
  err_clear();
  int r = safetensors_parse(b, len, &f);
  CHECKF(r == TB_ERR && f == NULL, "%s: accepted", what);
  CHECKF(strstr(err_get(), want) != NULL, "%s: error \"%s\", expected \"%s\"", what, err_get(), want);
  safetensors_close(f);
}

static void reject_hdr(const char *what, const char *hdr, size_t data, const char *want) {
  size_t len;
  uint8_t *b = image_of(hdr, strlen(hdr), data, &len);
  expect_reject(what, b, len, want);
  free(b);
}

#define T(name, off) "\"" name "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" off "}"

static void test_malformed(void) {
  size_t len;
  uint8_t *b = image_of("{}", 2, 0, &len);
  expect_reject("truncated length", b, 5, "file is 5 bytes, shorter than the 8-byte header length");
  free(b);
  b = image_of("{}", 1000, 10, &len);
  expect_reject("header length > file", b, len, "header length 1000 (bytes 0-7) is larger than the 12 bytes after it");
  free(b);
  b = image_of("{}", 200000000, 10, &len);
  expect_reject("header length > cap", b, len, "exceeds the 100000000-byte cap");
  free(b);
  reject_hdr("bad json", "{\"a\":{\"dtype\":\"F32\",}}", 0, "trailing comma in object at byte 20");
  reject_hdr("bad json offset", "{\"a\" 1}", 0, "header (JSON byte offsets count from file byte 8): json: expected ':' after key at byte 5");
  reject_hdr("not an object", "[1,2]   ", 0, "does not start with '{'");
  reject_hdr("unknown dtype", "{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
             "tensor \"w\": unknown dtype \"Q4\"");
  reject_hdr("size mismatch", "{" T("w", "[0,12]") "}", 12, "tensor \"w\": F32 (2) needs 8 bytes but data_offsets [0, 12] hold 12");
  reject_hdr("out of bounds", "{" T("w", "[8,16]") "}", 12, "tensor \"w\": data_offsets [8, 16] outside the data section of 12 bytes");
  reject_hdr("overlap", "{" T("a", "[0,8]") "," T("b", "[4,12]") "}", 12, "tensors \"a\" and \"b\" overlap (data bytes 4-8)");
  reject_hdr("hole", "{" T("a", "[0,8]") "," T("b", "[12,20]") "}", 20, "hole in the data section: bytes 8-12 belong to no tensor (before \"b\")");
  reject_hdr("hole at start", "{" T("a", "[4,12]") "}", 12, "hole in the data section: bytes 0-4");
  reject_hdr("hole at end", "{" T("a", "[0,8]") "}", 12, "bytes 8-12 at its end belong to no tensor");
  reject_hdr("metadata not string", "{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ value of \"k\" is number, metadata values must be strings");
  reject_hdr("metadata not object", "{\"__metadata__\":[]}", 0, "__metadata__ is array");
  reject_hdr("negative dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, "shape[0] is not a non-negative integer");
  reject_hdr("fractional dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,0]}}", 0, "shape[0] is not a non-negative integer");
  reject_hdr("six dims", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, "6 dims, turbo handles at most 5");
  reject_hdr("end before begin", "{" T("w", "[8,0]") "}", 8, "end before begin");
  reject_hdr("offsets shape", "{" T("w", "[0]") "}", 8, "\"data_offsets\" must be an array of 2 integers");
  reject_hdr("missing dtype", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "missing or non-string \"dtype\"");
  reject_hdr("missing shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "missing \"shape\" array");
  reject_hdr("duplicate tensor", "{" T("a", "[0,8]") "," T("a", "[8,16]") "}", 16, "duplicate key \"a\"");
  reject_hdr("entry not object", "{\"w\":3}", 0, "tensor \"w\": entry is number");
  reject_hdr("shape overflow", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}", 8, "overflows");

  /* Accepted: header padded with spaces, a zero-size tensor between two others, no metadata. */
  const char *padded = "{" T("a", "[0,8]") ",\"z\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[8,8]},"
                       T("b", "[8,16]") "}      ";
  size_t l2;
  uint8_t *ok2 = image_of(padded, strlen(padded), 16, &l2);
  uint64_t hl = strlen(padded);
  safetensors_file *f;
  CHECKF(safetensors_parse(ok2, l2, &f) == TB_OK, "padded header: %s", err_get());
  if (f) {
    CHECK(safetensors_count(f) == 3 && safetensors_data_size(f) == 16 && safetensors_meta_count(f) == 0);
    CHECK(safetensors_data_offset(f) == 8 + hl);
    safetensors_close(f);
  }
  free(ok2);

  CHECK(safetensors_open("/nonexistent/x.safetensors", &f) == TB_ERR &&
        strstr(err_get(), "/nonexistent/x.safetensors: cannot open"));
}

/* Thousands of tensors: layout, parse and lookup stay fast (sorted index + binary search). */
static void test_many(void) {
  enum { N = 5000 };
  safetensors_writer *w = safetensors_writer_new();
  int64_t sh[1] = {4};
  float vals[4];
  char name[64];
  for (int i = 0; i < N; i++) {
    for (int k = 0; k < 4; k++) vals[k] = (float)(i * 4 + k);
    tensor t = tensor_view(DTYPE_F32, 1, sh, vals);
    snprintf(name, sizeof name, "model.blocks.%d.attn.weight", i);
    safetensors_writer_add(w, name, &t);
  }
  uint8_t *buf;
  size_t len;
  double t0 = time_now();
  CHECK(safetensors_writer_to_buffer(w, &buf, &len) == TB_OK);
  double t1 = time_now();
  safetensors_file *f;
  CHECK(safetensors_parse(buf, len, &f) == TB_OK);
  double t2 = time_now();
  int bad = 0;
  for (int i = 0; i < N && f; i++) {
    snprintf(name, sizeof name, "model.blocks.%d.attn.weight", i);
    const safetensors_entry *e = safetensors_find(f, name);
    if (!e || ((const float *)e->data)[3] != (float)(i * 4 + 3)) bad++;
  }
  double t3 = time_now();
  CHECKF(bad == 0, "%d lookups failed", bad);
  log_info("%d tensors: write %.1f ms, parse %.1f ms, %d lookups %.1f ms (%zu-byte file)", N,
           (t1 - t0) * 1e3, (t2 - t1) * 1e3, N, (t3 - t2) * 1e3, len);
  safetensors_close(f);
  free(buf);
  safetensors_writer_free(w);
}

int main(void) {
  test_begin("test_safetensors");
  test_round_trip(test_outdir());
  test_reference_fixture();
  test_malformed();
  test_many();
  return test_finish();
}

/* JSON: every value kind, all escapes (surrogate pairs to UTF-8), exact int64, typed lookups,
 * writer round trip, and a table of malformed documents each rejected with a message that
 * names the expected problem and byte offset. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "tests/testutil.h"

static json_value *parse_str(const char *s) { return json_parse(s, strlen(s), NULL); }

static void test_values(void) {
  const char *doc =
      " {\"a\": [1, -2.5, 3e2, 0, -0, 9223372036854775807, -9223372036854775808, 18446744073709551616],"
      " \"s\": \"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t \\u00e9 \\u20AC \\ud83d\\ude00 \\u0000x\","
      " \"t\": true, \"f\": false, \"n\": null, \"o\": {}, \"e\": [], \"u\": \"\xc3\xa9\xe2\x82\xac\"} \n";
  json_value *v = parse_str(doc);
  CHECKF(v != NULL, "parse failed: %s", err_get());
  if (!v) return;
  CHECK(v->type == JSON_OBJECT && v->count == 8);
  const json_value *a = json_get(v, "a");
  CHECK(a && a->type == JSON_ARRAY && a->count == 8);
  CHECK(json_at(a, 0)->is_int && json_at(a, 0)->integer == 1);
  CHECK(!json_at(a, 1)->is_int && json_at(a, 1)->number == -2.5);
  CHECK(json_at(a, 2)->is_int && json_at(a, 2)->integer == 300); /* integral double */
  CHECK(json_at(a, 4)->is_int && json_at(a, 4)->integer == 0);
  CHECK(json_at(a, 5)->is_int && json_at(a, 5)->integer == INT64_MAX);
  CHECK(json_at(a, 6)->is_int && json_at(a, 6)->integer == INT64_MIN);
  CHECK(!json_at(a, 7)->is_int && json_at(a, 7)->number == 18446744073709551616.0);
  CHECK(json_at(a, 8) == NULL);
  const json_value *s = json_get(v, "s");
  const char want[] = "q\"b\\s/\b\f\n\r\t \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \0x";
  CHECK(s && s->type == JSON_STRING && s->len == sizeof want - 1 && memcmp(s->string, want, s->len) == 0);
  CHECK(json_get(v, "t")->type == JSON_BOOL && json_get(v, "t")->boolean == 1);
  CHECK(json_get(v, "f")->boolean == 0 && json_get(v, "n")->type == JSON_NULL);
  CHECK(json_get(v, "o")->type == JSON_OBJECT && json_get(v, "o")->count == 0);
  CHECK(json_get(v, "e")->type == JSON_ARRAY && json_get(v, "e")->count == 0);
  CHECK(strcmp(json_get(v, "u")->string, "\xc3\xa9\xe2\x82\xac") == 0);
  CHECK(json_get(v, "missing") == NULL && json_get(a, "x") == NULL);
  CHECK(json_get(v, "o")->offset == (size_t)(strstr(doc, "{}") - doc));

  const char *str;
  int64_t i64;
  double d;
  int b;
  CHECK(json_get_string(v, "u", &str) == TB_OK);
  CHECK(json_get_bool(v, "t", &b) == TB_OK && b == 1);
  CHECK(json_get_int64(v, "s", &i64) == TB_ERR && strstr(err_get(), "'s'") && strstr(err_get(), "string"));
  CHECK(json_get_number(v, "zz", &d) == TB_ERR && strstr(err_get(), "missing field 'zz'"));

  /* Writer round trip: write, parse, write again gives the same text. */
  json_buf b1 = {0}, b2 = {0};
  json_buf_put_value(&b1, v);
  json_value *v2 = json_parse(b1.data, b1.len, NULL);
  CHECKF(v2 != NULL, "reparse: %s", err_get());
  if (v2) {
    json_buf_put_value(&b2, v2);
    CHECKF(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0, "round trip: %s vs %s", b1.data, b2.data);
    CHECK(json_get(v2, "s")->len == s->len && memcmp(json_get(v2, "s")->string, want, s->len) == 0);
  }
  json_free(v2);
  json_buf_free(&b1);
  json_buf_free(&b2);
  json_free(v);

  json_buf w = {0};
  json_buf_put_string(&w, "a\"\\\n\x01z", 6);
  CHECKF(strcmp(w.data, "\"a\\\"\\\\\\n\\u0001z\"") == 0, "escape: %s", w.data);
  w.len = 0;
  json_buf_put_number(&w, 0.1);
  json_buf_puts(&w, " ");
  json_buf_put_number(&w, -42);
  json_buf_puts(&w, " ");
  json_buf_put_number(&w, NAN);
  CHECKF(strcmp(w.data, "0.10000000000000001 -42 null") == 0, "numbers: %s", w.data);
  json_buf_printf(&w, "%d", 7);
  CHECK(w.data[w.len - 1] == '7');
  json_buf_free(&w);

  /* Scalars at the top level, duplicates allowed on request. */
  json_value *sc = parse_str("  42 ");
  CHECK(sc && sc->is_int && sc->integer == 42);
  json_free(sc);
  json_options dup = {.allow_duplicates = 1};
  json_value *dv = json_parse("{\"k\":1,\"k\":2}", 13, &dup);
  CHECK(dv && json_get(dv, "k")->integer == 1);
  json_free(dv);
  /* Not NUL-terminated input: only len bytes are read. */
  json_value *nv = json_parse("[1,2]garbage", 5, NULL);
  CHECK(nv && nv->count == 2);
  json_free(nv);
}

static void test_malformed(void) {
  static const struct {
    const char *doc, *want; /* want: substring of the error */
  } cases[] = {
      {"", "expected a value at byte 0"},
      {"   ", "expected a value at byte 3"},
      {"{\"a\":1,}", "trailing comma in object at byte 7"},
      {"[1,2,]", "trailing comma in array at byte 5"},
      {"[1 2]", "expected ',' or ']' in array at byte 3"},
      {"{\"a\" 1}", "expected ':' after key at byte 5"},
      {"{a:1}", "expected a string key at byte 1"},
      {"[01]", "leading zero in number at byte 1"},
      {"[1.]", "expected a digit after '.' at byte 3"},
      {"[1e]", "expected a digit in exponent at byte 3"},
      {"[-]", "expected a digit at byte 2"},
      {"[+1]", "expected a value at byte 1"},
      {"[NaN]", "expected a value at byte 1"},
      {"[1e999]", "number out of range at byte 1"},
      {"[tru]", "invalid literal at byte 1"},
      {"\"abc", "unterminated string starting at byte 0"},
      {"\"a\tb\"", "unescaped control character in string at byte 2"},
      {"\"\\x\"", "invalid escape in string at byte 1"},
      {"\"\\u12g4\"", "bad hex digit in \\u escape at byte 5"},
      {"\"\\ud800\"", "high surrogate not followed by a \\u low surrogate at byte 1"},
      {"\"\\ud800\\u0041\"", "high surrogate not followed by a low surrogate at byte 7"},
      {"\"\\udc00\"", "lone low surrogate in \\u escape at byte 1"},
      {"\"\xc3\"", "invalid UTF-8 in string at byte 1"},
      {"\"\xc0\xaf\"", "invalid UTF-8 in string at byte 1"},       /* overlong '/' */
      {"\"\xed\xa0\x80\"", "invalid UTF-8 in string at byte 1"},   /* encoded surrogate */
      {"\"\xf4\x90\x80\x80\"", "invalid UTF-8 in string at byte 1"}, /* above U+10FFFF */
      {"{\"a\":1,\"b\":2,\"a\":3}", "duplicate key \"a\" in the object at byte 0"},
      {"[1] [2]", "unexpected data after the value at byte 4"},
      {"[1] x", "unexpected data after the value at byte 4"},
      {"// c\n1", "expected a value at byte 0"},
      {"[", "expected a value at byte 1"},
      {"{\"a\":", "expected a value at byte 5"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    err_clear();
    json_value *v = parse_str(cases[i].doc);
    CHECKF(v == NULL, "case %zu (%s) should fail", i, cases[i].doc);
    CHECKF(strstr(err_get(), cases[i].want) != NULL, "case %zu: error \"%s\", expected \"%s\"", i,
           err_get(), cases[i].want);
    json_free(v);
  }
  /* Depth limit: 200 nested arrays against the default 128, and a custom limit of 3. */
  char deep[402];
  for (int i = 0; i < 200; i++) deep[i] = '[', deep[200 + i] = ']';
  json_value *v = json_parse(deep, 400, NULL);
  CHECK(v == NULL && strstr(err_get(), "nesting deeper than 128 at byte 128"));
  json_options o3 = {.max_depth = 3};
  v = json_parse("[[[1]]]", 7, &o3);
  CHECK(v != NULL);
  json_free(v);
  v = json_parse("[[[[1]]]]", 9, &o3);
  CHECK(v == NULL && strstr(err_get(), "nesting deeper than 3"));
  json_options small = {.max_bytes = 4};
  v = json_parse("[1,2]", 5, &small);
  CHECK(v == NULL && strstr(err_get(), "exceeds the limit of 4 bytes"));
}

/* A document with thousands of keys parses quickly and duplicate detection stays n log n. */
static void test_large(void) {
  json_buf b = {0};
  json_buf_puts(&b, "{");
  for (int i = 0; i < 20000; i++) json_buf_printf(&b, "%s\"tensor.%d.weight\":[%d,%d]", i ? "," : "", i, i, i + 1);
  json_buf_puts(&b, "}");
  double t0 = time_now();
  json_value *v = json_parse(b.data, b.len, NULL);
  double dt = time_now() - t0;
  CHECK(v && v->count == 20000);
  CHECK(v && json_at(json_get(v, "tensor.19999.weight"), 1)->integer == 20000);
  log_info("20000-key object (%zu bytes) parsed in %.1f ms", b.len, dt * 1e3);
  json_free(v);
  /* The same document with one key repeated far from its twin (the sorted-key path). */
  b.len -= 1;
  json_buf_puts(&b, ",\"tensor.77.weight\":0}");
  v = json_parse(b.data, b.len, NULL);
  CHECK(v == NULL && strstr(err_get(), "duplicate key \"tensor.77.weight\" in the object at byte 0"));
  json_buf_free(&b);
}

int main(void) {
  test_begin("test_json");
  test_values();
  test_malformed();
  test_large();
  return test_finish();
}

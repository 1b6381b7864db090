/* tests/test_msg.c — messages: header codec, zero-copy tensors of every dtype through real
 * ZeroMQ sockets (inproc PAIR, ipc ROUTER/DEALER with envelopes), error replies, socket options,
 * and the bounded decoder's rejections of malformed headers and frames. Schema rejections are
 * in tests/test_schema.c. */
#include <math.h>
#include <msgpack.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "common/mpack.h"
#include "common/msg.h"
#include "common/schema.h"
#include "tests/testutil.h"

static schema_registry *g_reg;

static void fill_dtype(tensor *t, uint64_t seed) {
  uint8_t *p = (uint8_t *)t->data;
  int64_t nb = tensor_nbytes(t);
  uint64_t s = seed;
  for (int64_t i = 0; i < nb; i++) p[i] = (uint8_t)test_rand_u64(&s);
  /* keep floating tensors finite: write real values */
  int64_t n = tensor_numel(t);
  for (int64_t i = 0; i < n; i++) {
    float v = (float)(i % 97) * 0.25f - 7.0f;
    if (t->dtype == DTYPE_F32) ((float *)t->data)[i] = v;
    if (t->dtype == DTYPE_BF16) ((uint16_t *)t->data)[i] = f32_to_bf16(v);
    if (t->dtype == DTYPE_F16) ((uint16_t *)t->data)[i] = f32_to_f16(v);
  }
}

static atomic_int g_freed;
static void count_free(void *data, void *hint) {
  (void)hint;
  aligned_free(data);
  atomic_fetch_add(&g_freed, 1);
}

/* Encodes m and decodes it again through msg_decode_frames (no sockets). */
static int roundtrip(const msg *m, const schema_registry *reg, msg **out, msg_info *info) {
  void *hdr;
  size_t hlen;
  if (msg_header_encode(m, &hdr, &hlen) != TB_OK) return TB_ERR;
  const void *fr[1 + MSG_MAX_TENSORS];
  size_t ln[1 + MSG_MAX_TENSORS];
  fr[0] = hdr;
  ln[0] = hlen;
  int n = msg_tensor_count(m);
  for (int i = 0; i < n; i++) {
    fr[i + 1] = msg_tensor_at(m, i)->data;
    ln[i + 1] = (size_t)tensor_nbytes(msg_tensor_at(m, i));
  }
  int rc = msg_decode_frames(fr, ln, n + 1, reg, out, info);
  free(hdr); /* fields are copied; tensors point into m's buffers, which outlive *out here */
  return rc;
}

static void test_fields_codec(void) {
  msg *m = msg_new("fields.test", 3, 0xfedcba9876543210ull);
  int64_t iv[3] = {-5, 0, 1LL << 40};
  double fv[2] = {0.5, -1e300};
  CHECK(msg_set_int(m, "i", -123456789012345LL) == TB_OK);
  CHECK(msg_set_float(m, "f", 3.25) == TB_OK);
  CHECK(msg_set_str(m, "s", "héllo") == TB_OK);
  CHECK(msg_set_bool(m, "b", 1) == TB_OK);
  CHECK(msg_set_ints(m, "iv", iv, 3) == TB_OK);
  CHECK(msg_set_floats(m, "fv", fv, 2) == TB_OK);
  CHECK(msg_set_ints(m, "empty", iv, 0) == TB_OK);
  CHECK(msg_set_int(m, "i", -123456789012345LL) == TB_OK); /* replace keeps one field */
  CHECK(msg_field_count(m) == 7);
  CHECK(msg_set_int(m, "schema", 1) == TB_ERR && strstr(err_get(), "reserved"));
  CHECK(msg_set_int(m, "", 1) == TB_ERR && strstr(err_get(), "empty"));
  char longname[100];
  memset(longname, 'a', 99);
  longname[99] = 0;
  CHECK(msg_set_int(m, longname, 1) == TB_ERR && strstr(err_get(), "at most 63"));

  msg *d = NULL;
  msg_info info;
  CHECK(roundtrip(m, NULL, &d, &info) == TB_OK);
  if (!d) {
    CHECKF(0, "decode failed: %s", err_get());
    msg_free(m);
    return;
  }
  CHECK(!strcmp(msg_schema(d), "fields.test") && msg_version(d) == 3);
  CHECK(msg_id(d) == 0xfedcba9876543210ull && info.id == msg_id(d));
  int64_t i;
  double f;
  int b;
  const char *s;
  const int64_t *ia;
  const double *fa;
  int n;
  CHECK(msg_get_int(d, "i", &i) == TB_OK && i == -123456789012345LL);
  CHECK(msg_get_float(d, "f", &f) == TB_OK && f == 3.25);
  CHECK(msg_get_float(d, "i", &f) == TB_OK && f == -123456789012345.0); /* int as float */
  CHECK(msg_get_str(d, "s", &s) == TB_OK && !strcmp(s, "héllo"));
  CHECK(msg_get_bool(d, "b", &b) == TB_OK && b == 1);
  CHECK(msg_get_ints(d, "iv", &ia, &n) == TB_OK && n == 3 && ia[0] == -5 && ia[2] == 1LL << 40);
  CHECK(msg_get_floats(d, "iv", &fa, &n) == TB_OK && n == 3 && fa[1] == 0.0);
  CHECK(msg_get_floats(d, "fv", &fa, &n) == TB_OK && n == 2 && fa[0] == 0.5 && fa[1] == -1e300);
  CHECK(msg_get_ints(d, "empty", &ia, &n) == TB_OK && n == 0);
  CHECK(msg_get_int(d, "f", &i) == TB_ERR && strstr(err_get(), "'f' is float, expected int"));
  CHECK(msg_get_int(d, "nope", &i) == TB_ERR && strstr(err_get(), "'nope' is missing"));
  CHECK(msg_int_or(d, "nope", 7) == 7 && msg_float_or(d, "f", 0) == 3.25);
  CHECK(!strcmp(msg_str_or(d, "i", "dflt"), "dflt"));
  msg_free(d);
  msg_free(m);
}

/* Every dtype (and a 0-d and an empty tensor) through a PAIR over inproc: same bytes, and
 * zero-copy (inproc passes the very buffer), free callbacks once each, resend works. */
static void test_inproc_every_dtype(void *ctx) {
  void *a = zmq_socket(ctx, ZMQ_PAIR), *b = zmq_socket(ctx, ZMQ_PAIR);
  CHECK(msg_socket_configure(a, NULL) == TB_OK && msg_socket_configure(b, NULL) == TB_OK);
  CHECK(zmq_bind(a, "inproc://msg-test") == 0 && zmq_connect(b, "inproc://msg-test") == 0);
  atomic_store(&g_freed, 0);
  msg *m = msg_new("echo", 1, 42);
  msg_set_str(m, "tag", "dtypes");
  const void *sent_ptr[DTYPE_COUNT];
  for (int dt = 0; dt < DTYPE_COUNT; dt++) {
    int64_t shape[4] = {2, 3, 1 + dt, 5};
    tensor t = tensor_new((dtype_t)dt, 4, shape);
    fill_dtype(&t, 100 + (uint64_t)dt);
    char name[16];
    snprintf(name, sizeof name, "t_%s", dtype_name((dtype_t)dt));
    sent_ptr[dt] = t.data;
    CHECK(msg_add_tensor(m, name, &t, count_free, NULL) == TB_OK);
  }
  tensor scalar = tensor_new(DTYPE_F32, 0, NULL);
  ((float *)scalar.data)[0] = 2.5f;
  CHECK(msg_add_tensor_owned(m, "scalar", &scalar) == TB_OK);
  CHECK(scalar.data == NULL);
  int64_t zshape[2] = {0, 7};
  tensor empty = tensor_view(DTYPE_I32, 2, zshape, NULL);
  CHECK(msg_add_tensor(m, "empty", &empty, NULL, NULL) == TB_OK);
  CHECK(msg_add_tensor(m, "empty", &empty, NULL, NULL) == TB_ERR && strstr(err_get(), "twice"));

  for (int round = 0; round < 2; round++) { /* the same msg twice: a client's retry */
    CHECK(msg_send(m, a, NULL, 0) == TB_OK);
    msg *r = NULL;
    CHECK(msg_recv(b, g_reg, &r, NULL, 0) == MSG_RECV_OK);
    if (!r) {
      CHECKF(0, "recv: %s", err_get());
      break;
    }
    CHECK(msg_id(r) == 42 && msg_tensor_count(r) == DTYPE_COUNT + 2);
    for (int dt = 0; dt < DTYPE_COUNT; dt++) {
      const tensor *x = msg_tensor_at(m, dt), *y = msg_tensor_at(r, dt);
      CHECK(y && y->dtype == x->dtype && tensor_same_shape(x, y));
      CHECK(!strcmp(msg_tensor_name(r, dt), msg_tensor_name(m, dt)));
      CHECKF(!memcmp(x->data, y->data, (size_t)tensor_nbytes(x)), "dtype %s bytes differ",
             dtype_name((dtype_t)dt));
      CHECKF(y->data == sent_ptr[dt], "dtype %s: inproc frame was copied", dtype_name((dtype_t)dt));
      CHECK(((uintptr_t)y->data % dtype_size(y->dtype)) == 0);
    }
    const tensor *sc = msg_tensor_get(r, "scalar");
    CHECK(sc && sc->ndim == 0 && ((float *)sc->data)[0] == 2.5f);
    const tensor *em = msg_tensor_get(r, "empty");
    CHECK(em && em->ndim == 2 && em->shape[0] == 0 && em->shape[1] == 7);
    CHECK(!strcmp(msg_str_or(r, "tag", ""), "dtypes"));
    CHECK(atomic_load(&g_freed) == 0); /* the receiver still holds the buffers */
    msg_free(r);
  }
  CHECK(atomic_load(&g_freed) == 0); /* m still holds them */
  msg_free(m);
  CHECKF(atomic_load(&g_freed) == DTYPE_COUNT, "free callbacks: %d, expected %d",
         atomic_load(&g_freed), DTYPE_COUNT);
  zmq_close(a);
  zmq_close(b);
}

/* ROUTER/DEALER over ipc: envelopes, shared tensors in the reply, a copied tensor, the error
 * reply to a malformed request (with the request's schema and id), a missing delimiter. */
static void test_ipc_router_dealer(void *ctx) {
  char ep[600];
  snprintf(ep, sizeof ep, "ipc://%s/msg.sock", test_outdir());
  void *srv = zmq_socket(ctx, ZMQ_ROUTER), *cli = zmq_socket(ctx, ZMQ_DEALER);
  CHECK(msg_socket_configure(srv, NULL) == TB_OK && msg_socket_configure(cli, NULL) == TB_OK);
  int to = 5000;
  zmq_setsockopt(srv, ZMQ_RCVTIMEO, &to, sizeof to);
  zmq_setsockopt(cli, ZMQ_RCVTIMEO, &to, sizeof to);
  CHECKF(zmq_bind(srv, ep) == 0, "bind %s: %s", ep, zmq_strerror(zmq_errno()));
  CHECK(zmq_connect(cli, ep) == 0);

  /* request with one copied and one zero-copy tensor */
  int64_t shape[3] = {4, 1000, 3};
  tensor big = tensor_new(DTYPE_F32, 3, shape);
  fill_dtype(&big, 7);
  uint8_t small_bytes[5] = {1, 2, 3, 4, 5};
  int64_t sshape[1] = {5};
  tensor small = tensor_view(DTYPE_U8, 1, sshape, small_bytes);
  msg *req = msg_new("echo", 1, 9001);
  CHECK(msg_add_tensor_copy(req, "small", &small) == TB_OK);
  CHECK(msg_add_tensor(req, "big", &big, NULL, NULL) == TB_OK);
  msg_envelope none = {0};
  CHECK(msg_send(req, cli, &none, 0) == TB_OK);
  small_bytes[0] = 99; /* copied at add time: the wire must still carry 1 */

  msg *got = NULL;
  msg_envelope env;
  CHECK(msg_recv(srv, g_reg, &got, &env, 0) == MSG_RECV_OK);
  CHECK(env.n == 1 && env.len[0] > 0);
  if (got) {
    CHECK(msg_id(got) == 9001);
    const tensor *s = msg_tensor_get(got, "small");
    CHECK(s && ((uint8_t *)s->data)[0] == 1 && ((uint8_t *)s->data)[4] == 5);
    const tensor *bg = msg_tensor_get(got, "big");
    CHECK(bg && !memcmp(bg->data, big.data, (size_t)tensor_nbytes(&big)));
    CHECK(bg && ((uintptr_t)bg->data % 4) == 0);
    /* echo back, sharing the received frames; free the request before sending */
    msg *rep = msg_new("echo", 1, msg_id(got));
    for (int i = 0; i < msg_tensor_count(got); i++)
      CHECK(msg_add_tensor_shared(rep, msg_tensor_name(got, i), got, i) == TB_OK);
    msg_free(got);
    CHECK(msg_send(rep, srv, &env, 0) == TB_OK);
    msg_free(rep);
    msg *back = NULL;
    msg_envelope cenv;
    CHECK(msg_recv(cli, g_reg, &back, &cenv, 0) == MSG_RECV_OK);
    CHECK(cenv.n == 0);
    if (back) {
      const tensor *b2 = msg_tensor_get(back, "big");
      CHECK(b2 && !memcmp(b2->data, big.data, (size_t)tensor_nbytes(&big)));
      CHECK(msg_id(back) == 9001);
      msg_free(back);
    }
  }
  msg_free(req);

  /* a request the validator rejects: answered with an error naming the field */
  msg *bad = msg_new("teacher.step", 1, 77);
  msg_set_str(bad, "bogus", "x");
  CHECK(msg_send(bad, cli, &none, 0) == TB_OK);
  msg_free(bad);
  msg *e = NULL;
  CHECK(msg_recv(srv, g_reg, &e, &env, 0) == MSG_RECV_INVALID);
  int code = 0;
  const char *text = NULL;
  CHECK(e && msg_is_error(e, &code, &text));
  if (e) {
    CHECK(code == MSG_ERR_BAD_REQUEST && strstr(text, "'bogus'"));
    CHECK(msg_id(e) == 77 && !strcmp(msg_str_or(e, "req_schema", ""), "teacher.step"));
    CHECK(msg_send(e, srv, &env, 0) == TB_OK);
    msg_free(e);
    msg *ce = NULL;
    CHECK(msg_recv(cli, g_reg, &ce, &none, 0) == MSG_RECV_OK); /* the error itself validates */
    CHECK(ce && msg_is_error(ce, &code, &text) && code == MSG_ERR_BAD_REQUEST && msg_id(ce) == 77);
    msg_free(ce);
  }

  /* malformed header bytes: id still recovered for the reply */
  {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str_with_body(&pk, "schema", 6);
    msgpack_pack_str_with_body(&pk, "echo", 4);
    msgpack_pack_str_with_body(&pk, "id", 2);
    msgpack_pack_uint64(&pk, 555);
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_str_with_body(&pk, "tensors", 7);
    msgpack_pack_array(&pk, 1); /* declares a tensor; no frame follows */
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "name", 4);
    msgpack_pack_str_with_body(&pk, "x", 1);
    msgpack_pack_str_with_body(&pk, "dtype", 5);
    msgpack_pack_str_with_body(&pk, "F32", 3);
    msgpack_pack_str_with_body(&pk, "shape", 5);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_int(&pk, 2);
    const void *fr[1] = {sb.data};
    size_t ln[1] = {sb.size};
    CHECK(msg_send_raw(cli, &none, fr, ln, 1, 0) == TB_OK);
    msgpack_sbuffer_destroy(&sb);
    e = NULL;
    CHECK(msg_recv(srv, g_reg, &e, &env, 0) == MSG_RECV_INVALID);
    CHECK(e && msg_is_error(e, &code, &text) && msg_id(e) == 555);
    CHECKF(e && strstr(text, "header lists 1 tensor but 0 tensor frames arrived"), "got: %s",
           text ? text : "(none)");
    msg_free(e);
  }

  /* a DEALER that forgets the delimiter: the ROUTER still can route the error back */
  {
    const char junk[] = "\x81\xa1x\x01";
    const void *fr[1] = {junk};
    size_t ln[1] = {4};
    CHECK(msg_send_raw(cli, NULL, fr, ln, 1, 0) == TB_OK);
    e = NULL;
    CHECK(msg_recv(srv, g_reg, &e, &env, 0) == MSG_RECV_INVALID);
    CHECK(env.n == 1);
    CHECKF(strstr(err_get(), "no empty delimiter"), "got: %s", err_get());
    msg_free(e);
  }

  /* too many frames: drained whole, rejected, and the socket stays in step */
  {
    const void *fr[50];
    size_t ln[50];
    for (int i = 0; i < 50; i++) {
      fr[i] = "abcd";
      ln[i] = 4;
    }
    CHECK(msg_send_raw(cli, &none, fr, ln, 50, 0) == TB_OK);
    msg *p = msg_new("ping", 1, 3);
    CHECK(msg_send(p, cli, &none, 0) == TB_OK);
    msg_free(p);
    e = NULL;
    CHECK(msg_recv(srv, g_reg, &e, &env, 0) == MSG_RECV_INVALID);
    CHECK(e && msg_is_error(e, &code, NULL) && code == MSG_ERR_TOO_LARGE);
    CHECKF(strstr(err_get(), "50 frames"), "got: %s", err_get());
    msg_free(e);
    msg *ok = NULL;
    CHECK(msg_recv(srv, g_reg, &ok, &env, 0) == MSG_RECV_OK);
    CHECK(ok && !strcmp(msg_schema(ok), "ping") && msg_id(ok) == 3);
    msg_free(ok);
  }

  /* nothing pending: AGAIN */
  msg *none_msg = NULL;
  CHECK(msg_recv(srv, g_reg, &none_msg, &env, ZMQ_DONTWAIT) == MSG_RECV_AGAIN && !none_msg);
  tensor_free(&big);
  zmq_close(srv);
  zmq_close(cli);
}

static void test_socket_options(void *ctx) {
  void *s = zmq_socket(ctx, ZMQ_ROUTER);
  msg_socket_opts o = msg_socket_opts_default();
  o.sndhwm = 7;
  o.rcvhwm = 9;
  o.max_msg_size = 12345;
  CHECK(msg_socket_configure(s, &o) == TB_OK);
  int v;
  int64_t v64;
  size_t sz = sizeof v;
  zmq_getsockopt(s, ZMQ_SNDHWM, &v, &sz);
  CHECK(v == 7);
  sz = sizeof v;
  zmq_getsockopt(s, ZMQ_RCVHWM, &v, &sz);
  CHECK(v == 9);
  sz = sizeof v;
  zmq_getsockopt(s, ZMQ_LINGER, &v, &sz);
  CHECK(v == 0);
  sz = sizeof v64;
  zmq_getsockopt(s, ZMQ_MAXMSGSIZE, &v64, &sz);
  CHECK(v64 == 12345);
  zmq_close(s);
}

/* Decoder rejections on hand-made frames; each names what is wrong. */
typedef struct {
  msgpack_sbuffer sb;
  msgpack_packer pk;
} hb;
static void hb_init(hb *h) {
  msgpack_sbuffer_init(&h->sb);
  msgpack_packer_init(&h->pk, &h->sb, msgpack_sbuffer_write);
}
static void hs(hb *h, const char *s) { msgpack_pack_str_with_body(&h->pk, s, strlen(s)); }
/* Starts a map of n entries with schema echo, v 1, id 1 (3 of the n). */
static void hb_head(hb *h, int n) {
  msgpack_pack_map(&h->pk, (size_t)n);
  hs(h, "schema");
  hs(h, "echo");
  hs(h, "v");
  msgpack_pack_int(&h->pk, 1);
  hs(h, "id");
  msgpack_pack_int(&h->pk, 1);
}
static void hb_tensor(hb *h, const char *name, const char *dtype, int ndim, const int64_t *shape) {
  msgpack_pack_map(&h->pk, 3);
  hs(h, "name");
  hs(h, name);
  hs(h, "dtype");
  hs(h, dtype);
  hs(h, "shape");
  msgpack_pack_array(&h->pk, (size_t)ndim);
  for (int i = 0; i < ndim; i++) msgpack_pack_int64(&h->pk, shape[i]);
}

/* Decodes header h (+ tensor frames) and checks rejection text and code. */
static void expect_reject(const char *what, const void *hdr, size_t hlen, int nt,
                          const size_t *tlens, const char *needle, int code) {
  static uint8_t payload[4096] __attribute__((aligned(64)));
  const void *fr[64];
  size_t ln[64];
  fr[0] = hdr;
  ln[0] = hlen;
  for (int i = 0; i < nt && i < 63; i++) {
    fr[i + 1] = payload;
    ln[i + 1] = tlens[i];
  }
  msg *m = NULL;
  msg_info info;
  int rc = msg_decode_frames(fr, ln, 1 + nt, g_reg, &m, &info);
  CHECKF(rc == TB_ERR && !m, "%s: accepted", what);
  CHECKF(rc == TB_ERR && strstr(err_get(), needle), "%s: error '%s' lacks '%s'", what,
         err_get(), needle);
  CHECKF(rc == TB_ERR && info.code == code, "%s: code %d, expected %d", what, info.code, code);
  msg_free(m);
}

static void expect_reject_hb(const char *what, hb *h, int nt, const size_t *tlens,
                             const char *needle, int code) {
  expect_reject(what, h->sb.data, h->sb.size, nt, tlens, needle, code);
  msgpack_sbuffer_destroy(&h->sb);
}

static void test_decoder_rejections(void) {
  hb h;
  int64_t sh[2] = {2, 3};
  size_t t24[1] = {24};
  /* not a map */
  hb_init(&h);
  msgpack_pack_array(&h.pk, 0);
  expect_reject_hb("array header", &h, 0, NULL, "expected a map", MSG_ERR_BAD_REQUEST);
  /* empty header frame */
  expect_reject("empty header", "", 0, 0, NULL, "header frame is empty", MSG_ERR_BAD_REQUEST);
  /* truncated: map declares 3 pairs, 2 bytes follow */
  expect_reject("truncated", "\x83\xa1x", 3, 0, NULL, "declares 3 pairs", MSG_ERR_BAD_REQUEST);
  /* huge declared counts are refused before anything is allocated */
  expect_reject("array32 count", "\x81\xa1x\xdd\xff\xff\xff\xff", 8, 0, NULL,
                "declares 4294967295 elements", MSG_ERR_BAD_REQUEST);
  expect_reject("str32 length", "\x81\xdb\x7f\xff\xff\xff", 6, 0, NULL, "declares 2147483647 bytes",
                MSG_ERR_BAD_REQUEST);
  expect_reject("reserved byte", "\x81\xa1x\xc1", 4, 0, NULL, "invalid type byte 0xc1",
                MSG_ERR_BAD_REQUEST);
  /* oversized header */
  {
    size_t n = MSG_HEADER_MAX + 1;
    char *big = calloc(1, n);
    expect_reject("oversized header", big, n, 0, NULL, "header frame is 65537 bytes",
                  MSG_ERR_TOO_LARGE);
    free(big);
  }
  /* missing keys */
  hb_init(&h);
  msgpack_pack_map(&h.pk, 2);
  hs(&h, "schema");
  hs(&h, "echo");
  hs(&h, "v");
  msgpack_pack_int(&h.pk, 1);
  expect_reject_hb("no id", &h, 0, NULL, "lacks 'id'", MSG_ERR_BAD_REQUEST);
  /* id negative */
  hb_init(&h);
  msgpack_pack_map(&h.pk, 3);
  hs(&h, "schema");
  hs(&h, "echo");
  hs(&h, "v");
  msgpack_pack_int(&h.pk, 1);
  hs(&h, "id");
  msgpack_pack_int(&h.pk, -4);
  expect_reject_hb("negative id", &h, 0, NULL, "'id' is int, expected an unsigned int",
                   MSG_ERR_BAD_REQUEST);
  /* duplicate field */
  hb_init(&h);
  hb_head(&h, 5);
  hs(&h, "tag");
  hs(&h, "a");
  hs(&h, "tag");
  hs(&h, "b");
  expect_reject_hb("duplicate field", &h, 0, NULL, "field 'tag' appears twice",
                   MSG_ERR_BAD_REQUEST);
  /* nil field, map field */
  hb_init(&h);
  hb_head(&h, 4);
  hs(&h, "tag");
  msgpack_pack_nil(&h.pk);
  expect_reject_hb("nil field", &h, 0, NULL, "field 'tag' is nil", MSG_ERR_BAD_REQUEST);
  hb_init(&h);
  hb_head(&h, 4);
  hs(&h, "tag");
  msgpack_pack_array(&h.pk, 2);
  msgpack_pack_int(&h.pk, 1);
  hs(&h, "two");
  expect_reject_hb("mixed array", &h, 0, NULL, "field 'tag' element 1 is str, expected a number",
                   MSG_ERR_BAD_REQUEST);
  /* trailing bytes */
  hb_init(&h);
  hb_head(&h, 3);
  msgpack_pack_int(&h.pk, 0);
  expect_reject_hb("trailing", &h, 0, NULL, "1 trailing bytes", MSG_ERR_BAD_REQUEST);
  /* tensors: count vs frames, bytes vs shape, unknown dtype, negative dim, unknown key, dup */
  hb_init(&h);
  hb_head(&h, 4);
  hs(&h, "tensors");
  msgpack_pack_array(&h.pk, 1);
  hb_tensor(&h, "x", "F32", 2, sh);
  expect_reject_hb("frame count", &h, 0, NULL, "header lists 1 tensor but 0 tensor frames arrived",
                   MSG_ERR_BAD_REQUEST);
  hb_init(&h);
  hb_head(&h, 4);
  hs(&h, "tensors");
  msgpack_pack_array(&h.pk, 0);
  expect_reject_hb("extra frame", &h, 1, t24, "header lists 0 tensors but 1 tensor frame arrived",
                   MSG_ERR_BAD_REQUEST);
  size_t t20[1] = {20};
  hb_init(&h);
  hb_head(&h, 4);
  hs(&h, "tensors");
  msgpack_pack_array(&h.pk, 1);
  hb_tensor(&h, "x", "F32", 2, sh);
  expect_reject_hb("byte count", &h, 1, t20,
                   "tensor 'x' (frame 1): 20 bytes, but F32 (2, 3) needs 24", MSG_ERR_BAD_REQUEST);
  hb_init(&h);
  hb_head(&h, 4);
  hs(&h, "tensors");
  msgpack_pack_array(&h.pk, 1);
  hb_tensor(&h, "x", "F64", 2, sh);
  expect_reject_hb("dtype name", &h, 1, t24, "tensors[0].dtype 'F64' is unknown",
                   MSG_ERR_BAD_REQUEST);
  int64_t neg[2] = {2, -3};
  hb_init(&h);
  hb_head(&h, 4);
  hs(&h, "tensors");
  msgpack_pack_array(&h.pk, 1);
  hb_tensor(&h, "x", "F32", 2, neg);
  expect_reject_hb("negative dim", &h, 1, t24, "tensors[0].shape[1] is not a non-negative int",
                   MSG_ERR_BAD_REQUEST);
  int64_t huge[5] = {1 << 20, 1 << 20, 1 << 20, 1 << 20, 1 << 20};
  hb_init(&h);
  hb_head(&h, 4);
  hs(&h, "tensors");
  msgpack_pack_array(&h.pk, 1);
  hb_tensor(&h, "x", "F32", 5, huge);
  expect_reject_hb("overflowing shape", &h, 1, t24, "tensor 'x' (frame 1): shape is larger",
                   MSG_ERR_TOO_LARGE);
  hb_init(&h);
  hb_head(&h, 4);
  hs(&h, "tensors");
  msgpack_pack_array(&h.pk, 2);
  hb_tensor(&h, "x", "F32", 2, sh);
  hb_tensor(&h, "x", "F32", 2, sh);
  size_t t2[2] = {24, 24};
  expect_reject_hb("dup tensor", &h, 2, t2, "tensors[1]: name 'x' already used by tensors[0]",
                   MSG_ERR_BAD_REQUEST);
  hb_init(&h);
  hb_head(&h, 4);
  hs(&h, "tensors");
  msgpack_pack_array(&h.pk, 1);
  msgpack_pack_map(&h.pk, 1);
  hs(&h, "strides");
  msgpack_pack_int(&h.pk, 1);
  expect_reject_hb("tensor key", &h, 1, t24, "tensors[0]: unknown key 'strides'",
                   MSG_ERR_BAD_REQUEST);
  hb_init(&h);
  hb_head(&h, 4);
  hs(&h, "tensors");
  msgpack_pack_array(&h.pk, 1);
  msgpack_pack_map(&h.pk, 2);
  hs(&h, "name");
  hs(&h, "x");
  hs(&h, "dtype");
  hs(&h, "F32");
  expect_reject_hb("tensor no shape", &h, 1, t24, "tensors[0] lacks 'shape'", MSG_ERR_BAD_REQUEST);
  /* a string field over MSG_STR_MAX */
  {
    char *s = malloc(MSG_STR_MAX + 10);
    memset(s, 'q', MSG_STR_MAX + 9);
    s[MSG_STR_MAX + 9] = 0;
    hb_init(&h);
    hb_head(&h, 4);
    hs(&h, "tag");
    hs(&h, s);
    expect_reject_hb("long str", &h, 0, NULL, "field 'tag': string is 4105 bytes",
                     MSG_ERR_BAD_REQUEST);
    free(s);
  }
  /* msg_info recovers schema/v/id even when decoding fails later */
  {
    hb_init(&h);
    hb_head(&h, 4);
    hs(&h, "tensors");
    msgpack_pack_int(&h.pk, 5);
    const void *fr[1] = {h.sb.data};
    size_t ln[1] = {h.sb.size};
    msg *m = NULL;
    msg_info info;
    CHECK(msg_decode_frames(fr, ln, 1, g_reg, &m, &info) == TB_ERR);
    CHECK(!strcmp(info.schema, "echo") && info.version == 1 && info.id == 1 && info.has_id);
    CHECK(strstr(err_get(), "'tensors' is int, expected an array"));
    msgpack_sbuffer_destroy(&h.sb);
  }
}

/* Misaligned frames are copied into aligned memory; the view is still right. */
static void test_misaligned_frame(void) {
  msg *m = msg_new("echo", 1, 5);
  float vals[6] = {1, 2, 3, 4, 5, 6};
  int64_t sh[1] = {6};
  tensor t = tensor_view(DTYPE_F32, 1, sh, vals);
  msg_add_tensor(m, "v", &t, NULL, NULL);
  void *hdr;
  size_t hlen;
  CHECK(msg_header_encode(m, &hdr, &hlen) == TB_OK);
  char *buf = aligned_alloc_zero(64);
  memcpy(buf + 1, vals, sizeof vals); /* odd address */
  const void *fr[2] = {hdr, buf + 1};
  size_t ln[2] = {hlen, sizeof vals};
  msg *d = NULL;
  CHECK(msg_decode_frames(fr, ln, 2, g_reg, &d, NULL) == TB_OK);
  const tensor *v = d ? msg_tensor_at(d, 0) : NULL;
  CHECK(v && ((uintptr_t)v->data % 4) == 0 && ((float *)v->data)[5] == 6.0f);
  msg_free(d);
  aligned_free(buf);
  free(hdr);
  msg_free(m);
}

static void test_encode_limits(void) {
  char longname[80];
  memset(longname, 's', 79);
  longname[79] = 0;
  msg *m = msg_new(longname, 1, 1);
  void *h = NULL;
  size_t hl;
  CHECK(msg_header_encode(m, &h, &hl) == TB_ERR && strstr(err_get(), "no schema name") && !h);
  msg_free(m);
  m = msg_new("echo", 0, 1);
  CHECK(msg_header_encode(m, &h, &hl) == TB_ERR && strstr(err_get(), "version 0"));
  msg_free(m);
  /* a header over MSG_HEADER_MAX: 20 strings of 4000 bytes */
  m = msg_new("echo", 1, 1);
  char big[4001];
  memset(big, 'b', 4000);
  big[4000] = 0;
  for (int i = 0; i < 20; i++) {
    char nm[16];
    snprintf(nm, sizeof nm, "f%d", i);
    CHECK(msg_set_str(m, nm, big) == TB_OK);
  }
  CHECK(msg_header_encode(m, &h, &hl) == TB_ERR && strstr(err_get(), "at most 65536"));
  msg_free(m);
  /* too many tensors */
  m = msg_new("echo", 1, 1);
  int64_t one[1] = {1};
  float v = 0;
  tensor t = tensor_view(DTYPE_F32, 1, one, &v);
  for (int i = 0; i < MSG_MAX_TENSORS; i++) {
    char nm[16];
    snprintf(nm, sizeof nm, "t%d", i);
    CHECK(msg_add_tensor(m, nm, &t, NULL, NULL) == TB_OK);
  }
  CHECK(msg_add_tensor(m, "over", &t, NULL, NULL) == TB_ERR && strstr(err_get(), "32 tensors"));
  CHECK(msg_tensor_count(m) == MSG_MAX_TENSORS && msg_payload_bytes(m) == 4 * MSG_MAX_TENSORS);
  msg_free(m);
}

static void test_error_msg(void) {
  msg *e = msg_error_new(MSG_ERR_UNKNOWN_SCHEMA, "unknown schema 'x'", "x", 12);
  int code;
  const char *text;
  CHECK(msg_is_error(e, &code, &text) && code == 2 && !strcmp(text, "unknown schema 'x'"));
  CHECK(!strcmp(msg_error_code_name(code), "unknown_schema"));
  msg *d = NULL;
  CHECK(roundtrip(e, g_reg, &d, NULL) == TB_OK);
  CHECK(d && msg_is_error(d, &code, NULL) && msg_id(d) == 12);
  msg_free(d);
  msg_free(e);
  msg *p = msg_new("ping", 1, 1);
  CHECK(!msg_is_error(p, NULL, NULL));
  msg_free(p);
}

/* The fuzzer's seeds (tests/fuzz/seeds, written by tests/fuzz/make_seeds.c) must be valid
 * messages, or the fuzzer starts from rejections only. */
static void test_fuzz_seeds_valid(void) {
  const char *names[] = {"ping", "pong", "error", "echo_dtypes", "teacher_step", "reward_score",
                         "reward_reply"};
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    char path[256], *data = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "tests/fuzz/seeds/%s", names[k]);
    if (fs_read_all(path, &data, &len) != TB_OK) {
      CHECKF(0, "%s", err_get());
      continue;
    }
    const void *fr[40];
    size_t ln[40];
    int n = (uint8_t)data[0], ok = n >= 1 && n < 40;
    size_t off = 1;
    for (int i = 0; ok && i < n; i++) {
      if (off + 2 > len) { ok = 0; break; }
      ln[i] = (uint8_t)data[off] | (size_t)(uint8_t)data[off + 1] << 8;
      off += 2;
      if (ln[i] > len - off) { ok = 0; break; }
      /* copy each frame to aligned memory, as a receive would give */
      void *c = aligned_alloc_zero(ln[i] ? ln[i] : 1);
      memcpy(c, data + off, ln[i]);
      fr[i] = c;
      off += ln[i];
    }
    msg *m = NULL;
    CHECKF(ok && msg_decode_frames(fr, ln, n, g_reg, &m, NULL) == TB_OK, "seed %s: %s", names[k],
           ok ? err_get() : "bad layout");
    msg_free(m);
    for (int i = 0; ok && i < n; i++) aligned_free((void *)fr[i]);
    free(data);
  }
}

int main(void) {
  test_begin("msg");
  if (schema_registry_load("schemas", &g_reg) != TB_OK) {
    CHECKF(0, "loading schemas/: %s", err_get());
    return test_finish();
  }
  void *ctx = zmq_ctx_new();
  test_fields_codec();
  test_inproc_every_dtype(ctx);
  test_ipc_router_dealer(ctx);
  test_socket_options(ctx);
  test_decoder_rejections();
  test_misaligned_frame();
  test_error_msg();
  test_encode_limits();
  test_fuzz_seeds_valid();
  zmq_ctx_term(ctx);
  schema_registry_free(g_reg);
  return test_finish();
}

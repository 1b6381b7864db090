/* common/msg.c — message objects, header codec, zero-copy multipart send and receive.
 * See msg.h for the wire format and the ownership rules. */
#include "common/msg.h"

#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/log.h"
#include "common/mpack.h"
#include "common/schema.h"

/* Frames msg_recv keeps: envelope + delimiter + header + tensors; more are drained, rejected. */
#define RECV_FRAMES_MAX (MSG_ENVELOPE_MAX + 2 + MSG_MAX_TENSORS)

/* The bytes of one tensor, shared by reference between msgs and in-flight ZeroMQ frames. The
 * last release runs free_fn (caller memory) or closes the received frame. */
typedef struct tbuf {
  atomic_int refs;
  void *data;
  size_t nbytes;
  msg_free_fn free_fn;
  void *hint;
  int has_frame;   /* data lives in `frame` (received) */
  zmq_msg_t frame;
} tbuf;

typedef struct {
  char name[MSG_NAME_MAX];
  tensor t; /* a view of buf->data */
  tbuf *buf;
} msg_tensor;

struct msg {
  char schema[MSG_NAME_MAX];
  int version;
  uint64_t id;
  int nfields;
  msg_field fields[MSG_MAX_FIELDS];
  int ntensors;
  msg_tensor tensors[MSG_MAX_TENSORS];
};

/* --- tensor buffers ------------------------------------------------------------------------ */

static tbuf *tbuf_new(void *data, size_t nbytes, msg_free_fn free_fn, void *hint) {
  tbuf *b = xcalloc(1, sizeof *b);
  atomic_init(&b->refs, 1);
  b->data = data;
  b->nbytes = nbytes;
  b->free_fn = free_fn;
  b->hint = hint;
  return b;
}

static void tbuf_ref(tbuf *b) { atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed); }

static void tbuf_unref(tbuf *b) {
  if (!b) return;
  if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) return;
  if (b->has_frame) zmq_msg_close(&b->frame);
  else if (b->free_fn) b->free_fn(b->data, b->hint);
  free(b);
}

/* ZeroMQ's free callback for a sent frame: drops the reference the send took. */
static void tbuf_zmq_release(void *data, void *hint) {
  (void)data;
  tbuf_unref((tbuf *)hint);
}

static void free_aligned_cb(void *data, void *hint) {
  (void)hint;
  aligned_free(data);
}

/* --- names and fields --------------------------------------------------------------------- */

const char *msg_field_type_name(msg_field_type t) {
  static const char *names[] = {"int", "float", "str", "bool", "ints", "floats"};
  return (unsigned)t < MSG_FIELD_COUNT ? names[t] : "?";
}

static int name_is_reserved(const char *name) {
  return !strcmp(name, MSG_KEY_SCHEMA) || !strcmp(name, MSG_KEY_VERSION) ||
         !strcmp(name, MSG_KEY_ID) || !strcmp(name, MSG_KEY_TENSORS);
}

static int check_name(const char *what, const char *name) {
  if (!name || !name[0]) return err_set("%s name is empty", what);
  size_t n = strlen(name);
  if (n >= MSG_NAME_MAX)
    return err_set("%s name '%.32s…' is %zu bytes (at most %d)", what, name, n, MSG_NAME_MAX - 1);
  return TB_OK;
}

static void field_clear(msg_field *f) {
  free(f->s);
  free(f->ints);
  free(f->floats);
  memset(f, 0, sizeof *f);
}

msg *msg_new(const char *schema, int version, uint64_t id) {
  msg *m = xcalloc(1, sizeof *m);
  /* A name that does not fit stays empty, so msg_header_encode refuses the message rather
   * than sending a truncated name. */
  if (schema && strlen(schema) < sizeof m->schema) snprintf(m->schema, sizeof m->schema, "%s", schema);
  m->version = version;
  m->id = id;
  return m;
}

void msg_free(msg *m) {
  if (!m) return;
  for (int i = 0; i < m->nfields; i++) field_clear(&m->fields[i]);
  for (int i = 0; i < m->ntensors; i++) tbuf_unref(m->tensors[i].buf);
  free(m);
}

const char *msg_schema(const msg *m) { return m->schema; }
int msg_version(const msg *m) { return m->version; }
uint64_t msg_id(const msg *m) { return m->id; }
void msg_set_id(msg *m, uint64_t id) { m->id = id; }

const msg_field *msg_field_find(const msg *m, const char *name) {
  for (int i = 0; i < m->nfields; i++)
    if (!strcmp(m->fields[i].name, name)) return &m->fields[i];
  return NULL;
}

/* The slot for `name`: the existing field (cleared) or a new one. NULL + err when full. */
static msg_field *field_slot(msg *m, const char *name) {
  if (check_name("field", name) != TB_OK) return NULL;
  if (name_is_reserved(name)) {
    err_set("field name '%s' is reserved for the header", name);
    return NULL;
  }
  msg_field *f = (msg_field *)msg_field_find(m, name);
  if (f) {
    field_clear(f);
  } else {
    if (m->nfields >= MSG_MAX_FIELDS) {
      err_set("field '%s': message already has %d fields (the limit)", name, MSG_MAX_FIELDS);
      return NULL;
    }
    f = &m->fields[m->nfields++];
  }
  snprintf(f->name, sizeof f->name, "%s", name);
  return f;
}

int msg_set_int(msg *m, const char *name, int64_t v) {
  msg_field *f = field_slot(m, name);
  if (!f) return TB_ERR;
  f->type = MSG_FIELD_INT;
  f->i = v;
  f->f = (double)v;
  return TB_OK;
}

int msg_set_float(msg *m, const char *name, double v) {
  msg_field *f = field_slot(m, name);
  if (!f) return TB_ERR;
  f->type = MSG_FIELD_FLOAT;
  f->f = v;
  return TB_OK;
}

int msg_set_bool(msg *m, const char *name, int v) {
  msg_field *f = field_slot(m, name);
  if (!f) return TB_ERR;
  f->type = MSG_FIELD_BOOL;
  f->i = v != 0;
  return TB_OK;
}

/* A string field from len bytes (not necessarily NUL-terminated). */
static int set_str_n(msg *m, const char *name, const char *v, size_t len) {
  if (len >= MSG_STR_MAX)
    return err_set("field '%s': string is %zu bytes (at most %d)", name, len, MSG_STR_MAX - 1);
  if (memchr(v, 0, len)) return err_set("field '%s': string contains a NUL byte", name);
  msg_field *f = field_slot(m, name);
  if (!f) return TB_ERR;
  f->type = MSG_FIELD_STR;
  f->s = xmalloc(len + 1);
  memcpy(f->s, v, len);
  f->s[len] = 0;
  return TB_OK;
}

int msg_set_str(msg *m, const char *name, const char *v) {
  if (!v) return err_set("field '%s': NULL string", name ? name : "?");
  return set_str_n(m, name, v, strlen(v));
}

int msg_set_ints(msg *m, const char *name, const int64_t *v, int n) {
  if (n < 0 || n > MSG_ARRAY_MAX)
    return err_set("field '%s': %d elements (at most %d)", name ? name : "?", n, MSG_ARRAY_MAX);
  msg_field *f = field_slot(m, name);
  if (!f) return TB_ERR;
  f->type = MSG_FIELD_INTS;
  f->n = n;
  f->ints = xmalloc(sizeof(int64_t) * (size_t)(n ? n : 1));
  f->floats = xmalloc(sizeof(double) * (size_t)(n ? n : 1));
  for (int k = 0; k < n; k++) {
    f->ints[k] = v[k];
    f->floats[k] = (double)v[k];
  }
  return TB_OK;
}

int msg_set_floats(msg *m, const char *name, const double *v, int n) {
  if (n < 0 || n > MSG_ARRAY_MAX)
    return err_set("field '%s': %d elements (at most %d)", name ? name : "?", n, MSG_ARRAY_MAX);
  msg_field *f = field_slot(m, name);
  if (!f) return TB_ERR;
  f->type = MSG_FIELD_FLOATS;
  f->n = n;
  f->floats = xmalloc(sizeof(double) * (size_t)(n ? n : 1));
  if (n) memcpy(f->floats, v, sizeof(double) * (size_t)n);
  return TB_OK;
}

int msg_has(const msg *m, const char *name) { return msg_field_find(m, name) != NULL; }

/* The named field if its type is t (or t2 when t2 >= 0); else NULL + err naming it. */
static const msg_field *field_typed(const msg *m, const char *name, int t, int t2) {
  const msg_field *f = msg_field_find(m, name);
  if (!f) {
    err_set("%s: field '%s' is missing", m->schema, name);
    return NULL;
  }
  if ((int)f->type != t && (int)f->type != t2) {
    err_set("%s: field '%s' is %s, expected %s", m->schema, name, msg_field_type_name(f->type),
            msg_field_type_name((msg_field_type)t));
    return NULL;
  }
  return f;
}

int msg_get_int(const msg *m, const char *name, int64_t *out) {
  const msg_field *f = field_typed(m, name, MSG_FIELD_INT, -1);
  if (!f) return TB_ERR;
  *out = f->i;
  return TB_OK;
}

int msg_get_float(const msg *m, const char *name, double *out) {
  const msg_field *f = field_typed(m, name, MSG_FIELD_FLOAT, MSG_FIELD_INT);
  if (!f) return TB_ERR;
  *out = f->f;
  return TB_OK;
}

int msg_get_bool(const msg *m, const char *name, int *out) {
  const msg_field *f = field_typed(m, name, MSG_FIELD_BOOL, -1);
  if (!f) return TB_ERR;
  *out = (int)f->i;
  return TB_OK;
}

int msg_get_str(const msg *m, const char *name, const char **out) {
  const msg_field *f = field_typed(m, name, MSG_FIELD_STR, -1);
  if (!f) return TB_ERR;
  *out = f->s;
  return TB_OK;
}

int msg_get_ints(const msg *m, const char *name, const int64_t **v, int *n) {
  const msg_field *f = field_typed(m, name, MSG_FIELD_INTS, -1);
  if (!f) return TB_ERR;
  *v = f->ints;
  *n = f->n;
  return TB_OK;
}

int msg_get_floats(const msg *m, const char *name, const double **v, int *n) {
  const msg_field *f = field_typed(m, name, MSG_FIELD_FLOATS, MSG_FIELD_INTS);
  if (!f) return TB_ERR;
  *v = f->floats;
  *n = f->n;
  return TB_OK;
}

int64_t msg_int_or(const msg *m, const char *name, int64_t def) {
  const msg_field *f = msg_field_find(m, name);
  return f && f->type == MSG_FIELD_INT ? f->i : def;
}

double msg_float_or(const msg *m, const char *name, double def) {
  const msg_field *f = msg_field_find(m, name);
  return f && (f->type == MSG_FIELD_FLOAT || f->type == MSG_FIELD_INT) ? f->f : def;
}

const char *msg_str_or(const msg *m, const char *name, const char *def) {
  const msg_field *f = msg_field_find(m, name);
  return f && f->type == MSG_FIELD_STR ? f->s : def;
}

int msg_field_count(const msg *m) { return m->nfields; }

const msg_field *msg_field_at(const msg *m, int i) {
  return i >= 0 && i < m->nfields ? &m->fields[i] : NULL;
}

/* --- tensors ------------------------------------------------------------------------------- */

/* Checks name and slot for a new tensor of shape (ndim, shape); *nbytes gets its size. */
static int tensor_slot_check(msg *m, const char *name, dtype_t dt, int ndim, const int64_t *shape,
                             size_t *nbytes) {
  if (check_name("tensor", name) != TB_OK) return TB_ERR;
  if (msg_tensor_index(m, name) >= 0) return err_set("tensor '%s' is attached twice", name);
  if (m->ntensors >= MSG_MAX_TENSORS)
    return err_set("tensor '%s': message already has %d tensors (the limit)", name,
                   MSG_MAX_TENSORS);
  if ((unsigned)dt >= DTYPE_COUNT) return err_set("tensor '%s': bad dtype %d", name, (int)dt);
  if (ndim < 0 || ndim > TENSOR_MAX_DIMS)
    return err_set("tensor '%s': rank %d (0..%d)", name, ndim, TENSOR_MAX_DIMS);
  int64_t numel = shape_numel(ndim, shape);
  if (numel < 0 || (uint64_t)numel > (uint64_t)INT64_MAX / dtype_size(dt))
    return err_set("tensor '%s': shape has a negative dimension or its size overflows", name);
  *nbytes = (size_t)numel * dtype_size(dt);
  return TB_OK;
}

static void tensor_push(msg *m, const char *name, const tensor *like, tbuf *b) {
  msg_tensor *mt = &m->tensors[m->ntensors++];
  snprintf(mt->name, sizeof mt->name, "%s", name);
  mt->t = tensor_view(like->dtype, like->ndim, like->shape, b->data);
  mt->buf = b;
}

int msg_add_tensor(msg *m, const char *name, const tensor *t, msg_free_fn free_fn, void *hint) {
  size_t nbytes = 0;
  int rc = TB_OK;
  if (!t) rc = err_set("tensor '%s': NULL tensor", name ? name : "?");
  else if (t->device != DEVICE_CPU)
    rc = err_set("tensor '%s': only CPU tensors can be sent (copy it to the host first)",
                 name ? name : "?");
  else rc = tensor_slot_check(m, name, t->dtype, t->ndim, t->shape, &nbytes);
  if (rc == TB_OK && nbytes > 0 && !t->data) rc = err_set("tensor '%s': NULL data", name);
  if (rc != TB_OK) {
    if (free_fn && t) free_fn(t->data, hint);
    return TB_ERR;
  }
  tensor_push(m, name, t, tbuf_new(t->data, nbytes, free_fn, hint));
  return TB_OK;
}

int msg_add_tensor_copy(msg *m, const char *name, const tensor *t) {
  size_t nbytes = 0;
  if (!t) return err_set("tensor '%s': NULL tensor", name ? name : "?");
  if (t->device != DEVICE_CPU)
    return err_set("tensor '%s': only CPU tensors can be sent (copy it to the host first)",
                   name ? name : "?");
  if (tensor_slot_check(m, name, t->dtype, t->ndim, t->shape, &nbytes) != TB_OK) return TB_ERR;
  void *copy = aligned_alloc_zero(nbytes ? nbytes : 1);
  if (nbytes) memcpy(copy, t->data, nbytes);
  tensor_push(m, name, t, tbuf_new(copy, nbytes, free_aligned_cb, NULL));
  return TB_OK;
}

int msg_add_tensor_owned(msg *m, const char *name, tensor *t) {
  if (!t) return err_set("tensor '%s': NULL tensor", name ? name : "?");
  if (t->flags & TENSOR_VIEW) {
    return err_set("tensor '%s': msg_add_tensor_owned needs an owning tensor, got a view",
                   name ? name : "?");
  }
  tensor copy = *t;
  t->flags |= TENSOR_VIEW;
  t->data = NULL;
  return msg_add_tensor(m, name, &copy, free_aligned_cb, NULL);
}

int msg_add_tensor_shared(msg *dst, const char *name, const msg *src, int i) {
  if (i < 0 || i >= src->ntensors)
    return err_set("tensor %d of %s: out of range (it has %d)", i, src->schema, src->ntensors);
  const msg_tensor *st = &src->tensors[i];
  size_t nbytes = 0;
  if (tensor_slot_check(dst, name, st->t.dtype, st->t.ndim, st->t.shape, &nbytes) != TB_OK)
    return TB_ERR;
  tbuf_ref(st->buf);
  tensor_push(dst, name, &st->t, st->buf);
  return TB_OK;
}

int msg_tensor_count(const msg *m) { return m->ntensors; }

const tensor *msg_tensor_at(const msg *m, int i) {
  return i >= 0 && i < m->ntensors ? &m->tensors[i].t : NULL;
}

const char *msg_tensor_name(const msg *m, int i) {
  return i >= 0 && i < m->ntensors ? m->tensors[i].name : NULL;
}

int msg_tensor_index(const msg *m, const char *name) {
  for (int i = 0; i < m->ntensors; i++)
    if (!strcmp(m->tensors[i].name, name)) return i;
  return -1;
}

const tensor *msg_tensor_get(const msg *m, const char *name) {
  int i = msg_tensor_index(m, name);
  return i >= 0 ? &m->tensors[i].t : NULL;
}

int64_t msg_payload_bytes(const msg *m) {
  int64_t n = 0;
  for (int i = 0; i < m->ntensors; i++) n += (int64_t)m->tensors[i].buf->nbytes;
  return n;
}

/* --- header encoding (msgpack-c packer) ---------------------------------------------------- */

static void pack_cstr(msgpack_packer *pk, const char *s) {
  size_t n = strlen(s);
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

int msg_header_encode(const msg *m, void **buf, size_t *len) {
  *buf = NULL;
  *len = 0;
  if (!m->schema[0])
    return err_set("message has no schema name (empty, or longer than %d bytes at msg_new)",
                   MSG_NAME_MAX - 1);
  if (m->version < 1) return err_set("%s: version %d (must be >= 1)", m->schema, m->version);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, (size_t)(4 + m->nfields));
  pack_cstr(&pk, MSG_KEY_SCHEMA);
  pack_cstr(&pk, m->schema);
  pack_cstr(&pk, MSG_KEY_VERSION);
  msgpack_pack_int(&pk, m->version);
  pack_cstr(&pk, MSG_KEY_ID);
  msgpack_pack_uint64(&pk, m->id);
  for (int i = 0; i < m->nfields; i++) {
    const msg_field *f = &m->fields[i];
    pack_cstr(&pk, f->name);
    switch (f->type) {
      case MSG_FIELD_INT: msgpack_pack_int64(&pk, f->i); break;
      case MSG_FIELD_FLOAT: msgpack_pack_double(&pk, f->f); break;
      case MSG_FIELD_STR: pack_cstr(&pk, f->s); break;
      case MSG_FIELD_BOOL:
        if (f->i) msgpack_pack_true(&pk);
        else msgpack_pack_false(&pk);
        break;
      case MSG_FIELD_INTS:
        msgpack_pack_array(&pk, (size_t)f->n);
        for (int k = 0; k < f->n; k++) msgpack_pack_int64(&pk, f->ints[k]);
        break;
      case MSG_FIELD_FLOATS:
        msgpack_pack_array(&pk, (size_t)f->n);
        for (int k = 0; k < f->n; k++) msgpack_pack_double(&pk, f->floats[k]);
        break;
      default: msgpack_pack_nil(&pk); break;
    }
  }
  pack_cstr(&pk, MSG_KEY_TENSORS);
  msgpack_pack_array(&pk, (size_t)m->ntensors);
  for (int i = 0; i < m->ntensors; i++) {
    const msg_tensor *mt = &m->tensors[i];
    msgpack_pack_map(&pk, 3);
    pack_cstr(&pk, "name");
    pack_cstr(&pk, mt->name);
    pack_cstr(&pk, "dtype");
    pack_cstr(&pk, dtype_name(mt->t.dtype));
    pack_cstr(&pk, "shape");
    msgpack_pack_array(&pk, (size_t)mt->t.ndim);
    for (int d = 0; d < mt->t.ndim; d++) msgpack_pack_int64(&pk, mt->t.shape[d]);
  }
  if (sb.size > MSG_HEADER_MAX) {
    size_t n = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return err_set("%s: header is %zu bytes (at most %d): send large data as tensors", m->schema,
                   n, MSG_HEADER_MAX);
  }
  *len = sb.size;
  *buf = msgpack_sbuffer_release(&sb);
  msgpack_sbuffer_destroy(&sb);
  return TB_OK;
}

/* --- header decoding (bounded reader) ------------------------------------------------------ */

/* A NUL-terminated copy of a msgpack str into dst (size n); TB_ERR when it does not fit. */
static int str_copy(char *dst, size_t n, const mpack_item *it, const char *what) {
  if (it->len >= n) return err_set("%s is %u bytes (at most %zu)", what, it->len, n - 1);
  if (memchr(it->s, 0, it->len)) return err_set("%s contains a NUL byte", what);
  memcpy(dst, it->s, it->len);
  dst[it->len] = 0;
  return TB_OK;
}

static int key_is(const mpack_item *k, const char *s) {
  size_t n = strlen(s);
  return k->type == MPACK_STR && k->len == n && !memcmp(k->s, s, n);
}

/* Reads schema, v and id leniently for an error reply to a message that fails later. */
static void header_peek(const void *buf, size_t len, msg_info *info) {
  mpack_reader r;
  mpack_item it, k;
  mpack_reader_init(&r, buf, len);
  if (mpack_read(&r, &it) != TB_OK || it.type != MPACK_MAP) return;
  for (uint32_t p = 0; p < it.n; p++) {
    if (mpack_read(&r, &k) != TB_OK) return;
    if (k.type != MPACK_STR) {
      if (mpack_skip(&r) != TB_OK) return;
      continue;
    }
    if (key_is(&k, MSG_KEY_SCHEMA) || key_is(&k, MSG_KEY_VERSION) || key_is(&k, MSG_KEY_ID)) {
      mpack_item v;
      if (mpack_read(&r, &v) != TB_OK) return;
      if (key_is(&k, MSG_KEY_SCHEMA) && v.type == MPACK_STR) {
        if (str_copy(info->schema, sizeof info->schema, &v, "schema") != TB_OK) info->schema[0] = 0;
      } else if (key_is(&k, MSG_KEY_VERSION) && v.type == MPACK_INT && v.i > 0 && v.i < 1 << 30) {
        info->version = (int)v.i;
      } else if (key_is(&k, MSG_KEY_ID) && (v.type == MPACK_INT || v.type == MPACK_UINT) &&
                 (v.type == MPACK_UINT || v.i >= 0)) {
        info->id = v.u;
        info->has_id = 1;
      } else if (v.type == MPACK_ARRAY || v.type == MPACK_MAP) {
        return;
      }
    } else if (mpack_skip(&r) != TB_OK) {
      return;
    }
  }
}

/* One scalar field value. */
static int decode_field(mpack_reader *r, msg *m, const char *name) {
  mpack_item v;
  if (mpack_read(r, &v) != TB_OK) return err_wrap("field '%s': ", name);
  switch (v.type) {
    case MPACK_INT: return msg_set_int(m, name, v.i);
    case MPACK_UINT:
      return err_set("field '%s': integer %llu does not fit int64", name,
                     (unsigned long long)v.u);
    case MPACK_FLOAT: return msg_set_float(m, name, v.f);
    case MPACK_BOOL: return msg_set_bool(m, name, v.b);
    case MPACK_STR: return set_str_n(m, name, v.s, v.len);
    case MPACK_ARRAY: {
      if (v.n > MSG_ARRAY_MAX)
        return err_set("field '%s': array of %u elements (at most %d)", name, v.n, MSG_ARRAY_MAX);
      int64_t *ints = xmalloc(sizeof(int64_t) * (v.n ? v.n : 1));
      double *fl = xmalloc(sizeof(double) * (v.n ? v.n : 1));
      int any_float = 0, rc = TB_OK;
      for (uint32_t k = 0; k < v.n && rc == TB_OK; k++) {
        mpack_item e;
        if (mpack_read(r, &e) != TB_OK) {
          rc = err_wrap("field '%s' element %u: ", name, k);
        } else if (e.type == MPACK_INT) {
          ints[k] = e.i;
          fl[k] = (double)e.i;
        } else if (e.type == MPACK_UINT) {
          rc = err_set("field '%s' element %u: integer %llu does not fit int64", name, k,
                       (unsigned long long)e.u);
        } else if (e.type == MPACK_FLOAT) {
          any_float = 1;
          ints[k] = 0;
          fl[k] = e.f;
        } else {
          rc = err_set("field '%s' element %u is %s, expected a number", name, k,
                       mpack_type_name(e.type));
        }
      }
      if (rc == TB_OK)
        rc = any_float ? msg_set_floats(m, name, fl, (int)v.n)
                       : msg_set_ints(m, name, ints, (int)v.n);
      free(ints);
      free(fl);
      return rc;
    }
    default:
      return err_set("field '%s' is %s; fields are int, float, str, bool or arrays of numbers",
                     name, mpack_type_name(v.type));
  }
}

typedef struct {
  char name[MSG_NAME_MAX];
  dtype_t dtype;
  int ndim;
  int64_t shape[TENSOR_MAX_DIMS];
} tdesc;

static int decode_tdesc(mpack_reader *r, int i, tdesc *d) {
  mpack_item it, k, v;
  if (mpack_read(r, &it) != TB_OK) return err_wrap("tensors[%d]: ", i);
  if (it.type != MPACK_MAP)
    return err_set("tensors[%d] is %s, expected a map {name, dtype, shape}", i,
                   mpack_type_name(it.type));
  int seen = 0; /* bits: name, dtype, shape */
  for (uint32_t p = 0; p < it.n; p++) {
    if (mpack_read(r, &k) != TB_OK) return err_wrap("tensors[%d]: ", i);
    int bit = key_is(&k, "name") ? 1 : key_is(&k, "dtype") ? 2 : key_is(&k, "shape") ? 4 : 0;
    if (!bit) {
      if (k.type == MPACK_STR)
        return err_set("tensors[%d]: unknown key '%.*s' (expected name, dtype, shape)", i,
                       (int)(k.len < 40 ? k.len : 40), k.s);
      return err_set("tensors[%d]: key is %s, expected a str", i, mpack_type_name(k.type));
    }
    if (seen & bit) return err_set("tensors[%d]: key '%s' appears twice", i,
                                   bit == 1 ? "name" : bit == 2 ? "dtype" : "shape");
    seen |= bit;
    if (mpack_read(r, &v) != TB_OK) return err_wrap("tensors[%d]: ", i);
    if (bit == 1) {
      if (v.type != MPACK_STR)
        return err_set("tensors[%d].name is %s, expected str", i, mpack_type_name(v.type));
      char what[48];
      snprintf(what, sizeof what, "tensors[%d].name", i);
      if (str_copy(d->name, sizeof d->name, &v, what) != TB_OK) return TB_ERR;
      if (!d->name[0]) return err_set("tensors[%d].name is empty", i);
    } else if (bit == 2) {
      char dn[16];
      if (v.type != MPACK_STR)
        return err_set("tensors[%d].dtype is %s, expected str", i, mpack_type_name(v.type));
      if (v.len >= sizeof dn || memchr(v.s, 0, v.len))
        return err_set("tensors[%d].dtype is not a dtype name (F32 BF16 F16 U8 I32 I64)", i);
      memcpy(dn, v.s, v.len);
      dn[v.len] = 0;
      int dt = dtype_from_name(dn);
      if (dt < 0)
        return err_set("tensors[%d].dtype '%s' is unknown (F32 BF16 F16 U8 I32 I64)", i, dn);
      d->dtype = (dtype_t)dt;
    } else {
      if (v.type != MPACK_ARRAY)
        return err_set("tensors[%d].shape is %s, expected an array of ints", i,
                       mpack_type_name(v.type));
      if (v.n > TENSOR_MAX_DIMS)
        return err_set("tensors[%d].shape has rank %u (at most %d)", i, v.n, TENSOR_MAX_DIMS);
      d->ndim = (int)v.n;
      for (int a = 0; a < d->ndim; a++) {
        mpack_item e;
        if (mpack_read(r, &e) != TB_OK) return err_wrap("tensors[%d].shape: ", i);
        if (e.type != MPACK_INT || e.i < 0)
          return err_set("tensors[%d].shape[%d] is not a non-negative int", i, a);
        d->shape[a] = e.i;
      }
    }
  }
  if (seen != 7)
    return err_set("tensors[%d] lacks '%s'", i,
                   !(seen & 1) ? "name" : !(seen & 2) ? "dtype" : "shape");
  return TB_OK;
}

/* Parses the header into m and the descriptors into d (*nd of them). */
static int decode_header(const void *buf, size_t len, msg *m, tdesc *d, int *nd, int *code) {
  *code = MSG_ERR_BAD_REQUEST;
  *nd = 0;
  if (len > MSG_HEADER_MAX) {
    *code = MSG_ERR_TOO_LARGE;
    return err_set("header frame is %zu bytes (at most %d)", len, MSG_HEADER_MAX);
  }
  if (len == 0) return err_set("header frame is empty (expected a msgpack map)");
  mpack_reader r;
  mpack_item it, k;
  mpack_reader_init(&r, buf, len);
  if (mpack_read(&r, &it) != TB_OK) return err_wrap("header: ");
  if (it.type != MPACK_MAP)
    return err_set("header is a msgpack %s, expected a map", mpack_type_name(it.type));
  if (it.n > MSG_MAX_FIELDS + 4)
    return err_set("header has %u keys (at most %d fields + schema, v, id, tensors)", it.n,
                   MSG_MAX_FIELDS);
  int have_schema = 0, have_v = 0, have_id = 0, have_tensors = 0;
  for (uint32_t p = 0; p < it.n; p++) {
    if (mpack_read(&r, &k) != TB_OK) return err_wrap("header key %u: ", p);
    if (k.type != MPACK_STR)
      return err_set("header key %u is %s, expected str", p, mpack_type_name(k.type));
    char key[MSG_NAME_MAX];
    char what[32];
    snprintf(what, sizeof what, "header key %u", p);
    if (str_copy(key, sizeof key, &k, what) != TB_OK) return TB_ERR;
    if (!key[0]) return err_set("header key %u is empty", p);
    if (!strcmp(key, MSG_KEY_SCHEMA)) {
      mpack_item v;
      if (have_schema++) return err_set("header key 'schema' appears twice");
      if (mpack_read(&r, &v) != TB_OK) return err_wrap("schema: ");
      if (v.type != MPACK_STR)
        return err_set("'schema' is %s, expected str", mpack_type_name(v.type));
      if (str_copy(m->schema, sizeof m->schema, &v, "'schema'") != TB_OK) return TB_ERR;
      if (!m->schema[0]) return err_set("'schema' is empty");
    } else if (!strcmp(key, MSG_KEY_VERSION)) {
      mpack_item v;
      if (have_v++) return err_set("header key 'v' appears twice");
      if (mpack_read(&r, &v) != TB_OK) return err_wrap("v: ");
      if (v.type != MPACK_INT || v.i < 1 || v.i > 1000000)
        return err_set("'v' must be an int in 1..1000000");
      m->version = (int)v.i;
    } else if (!strcmp(key, MSG_KEY_ID)) {
      mpack_item v;
      if (have_id++) return err_set("header key 'id' appears twice");
      if (mpack_read(&r, &v) != TB_OK) return err_wrap("id: ");
      if (!(v.type == MPACK_UINT || (v.type == MPACK_INT && v.i >= 0)))
        return err_set("'id' is %s, expected an unsigned int", mpack_type_name(v.type));
      m->id = v.u;
    } else if (!strcmp(key, MSG_KEY_TENSORS)) {
      mpack_item v;
      if (have_tensors++) return err_set("header key 'tensors' appears twice");
      if (mpack_read(&r, &v) != TB_OK) return err_wrap("tensors: ");
      if (v.type != MPACK_ARRAY)
        return err_set("'tensors' is %s, expected an array", mpack_type_name(v.type));
      if (v.n > MSG_MAX_TENSORS)
        return err_set("'tensors' lists %u tensors (at most %d)", v.n, MSG_MAX_TENSORS);
      for (uint32_t i = 0; i < v.n; i++) {
        memset(&d[i], 0, sizeof d[i]);
        if (decode_tdesc(&r, (int)i, &d[i]) != TB_OK) return TB_ERR;
        for (uint32_t j = 0; j < i; j++)
          if (!strcmp(d[j].name, d[i].name))
            return err_set("tensors[%u]: name '%s' already used by tensors[%u]", i, d[i].name, j);
      }
      *nd = (int)v.n;
    } else {
      if (msg_has(m, key)) return err_set("field '%s' appears twice", key);
      if (decode_field(&r, m, key) != TB_OK) return TB_ERR;
    }
  }
  if (mpack_remaining(&r))
    return err_set("header has %zu trailing bytes after the map", mpack_remaining(&r));
  if (!have_schema) return err_set("header lacks 'schema'");
  if (!have_v) return err_set("header lacks 'v' (the schema version)");
  if (!have_id) return err_set("header lacks 'id'");
  return TB_OK;
}

/* Builds the tensors of m from the descriptors and frames[1..]. zframes (may be NULL): the
 * received zmq frames, moved into the tensor buffers. */
static int attach_frames(msg *m, const tdesc *d, int nd, const void *const *frames,
                         const size_t *lens, int nframes, zmq_msg_t *zframes, int *code) {
  if (nframes - 1 != nd)
    return err_set("header lists %d tensor%s but %d tensor frame%s arrived", nd,
                   nd == 1 ? "" : "s", nframes - 1, nframes - 1 == 1 ? "" : "s");
  int64_t total = 0;
  for (int i = 0; i < nd; i++) {
    int64_t numel = shape_numel(d[i].ndim, d[i].shape);
    size_t es = dtype_size(d[i].dtype);
    if (numel < 0 || (uint64_t)numel > (uint64_t)MSG_PAYLOAD_MAX / es) {
      *code = MSG_ERR_TOO_LARGE;
      return err_set("tensor '%s' (frame %d): shape is larger than %lld bytes", d[i].name, i + 1,
                     (long long)MSG_PAYLOAD_MAX);
    }
    if ((uint64_t)numel * es != lens[i + 1]) {
      char sh[96];
      return err_set("tensor '%s' (frame %d): %zu bytes, but %s %s needs %lld", d[i].name, i + 1,
                     lens[i + 1], dtype_name(d[i].dtype), shape_str(d[i].ndim, d[i].shape, sh,
                     sizeof sh), (long long)(numel * (int64_t)es));
    }
    total += numel * (int64_t)es;
    if (total > MSG_PAYLOAD_MAX) {
      *code = MSG_ERR_TOO_LARGE;
      return err_set("payload exceeds %lld bytes at tensor '%s'", (long long)MSG_PAYLOAD_MAX,
                     d[i].name);
    }
  }
  for (int i = 0; i < nd; i++) {
    size_t nbytes = lens[i + 1];
    size_t es = dtype_size(d[i].dtype);
    tbuf *b;
    if (zframes) {
      b = tbuf_new(NULL, nbytes, NULL, NULL);
      zmq_msg_init(&b->frame);
      zmq_msg_move(&b->frame, &zframes[i + 1]);
      b->has_frame = 1;
      b->data = zmq_msg_data(&b->frame); /* after the move: small frames live inside it */
    } else {
      b = tbuf_new((void *)frames[i + 1], nbytes, NULL, NULL);
    }
    if (nbytes && ((uintptr_t)b->data % es) != 0) {
      /* Transports may hand back frames at any byte offset; a view must be aligned for its
       * dtype, so copy this one (rare: counted in the debug log). */
      void *copy = aligned_alloc_zero(nbytes);
      memcpy(copy, b->data, nbytes);
      log_debug("tensor '%s': frame misaligned for %s, copied %zu bytes", d[i].name,
                dtype_name(d[i].dtype), nbytes);
      tbuf_unref(b);
      b = tbuf_new(copy, nbytes, free_aligned_cb, NULL);
    }
    tensor like = tensor_view(d[i].dtype, d[i].ndim, d[i].shape, NULL);
    tensor_push(m, d[i].name, &like, b);
  }
  return TB_OK;
}

static int decode_all(const void *const *frames, const size_t *lens, int nframes,
                      zmq_msg_t *zframes, const struct schema_registry *reg, msg **out,
                      msg_info *info) {
  msg_info scratch;
  if (!info) info = &scratch;
  memset(info, 0, sizeof *info);
  *out = NULL;
  if (nframes < 1) {
    info->code = MSG_ERR_BAD_REQUEST;
    return err_set("message has no frames (expected a header frame)");
  }
  if (nframes > 1 + MSG_MAX_TENSORS) {
    info->code = MSG_ERR_TOO_LARGE;
    header_peek(frames[0], lens[0] <= MSG_HEADER_MAX ? lens[0] : 0, info);
    return err_set("message has %d frames (at most 1 header + %d tensors)", nframes,
                   MSG_MAX_TENSORS);
  }
  if (lens[0] <= MSG_HEADER_MAX) header_peek(frames[0], lens[0], info);
  msg *m = msg_new("", 0, 0);
  tdesc *d = xcalloc(MSG_MAX_TENSORS, sizeof *d);
  int nd = 0, code = MSG_ERR_BAD_REQUEST;
  int rc = decode_header(frames[0], lens[0], m, d, &nd, &code);
  if (rc == TB_OK) rc = attach_frames(m, d, nd, frames, lens, nframes, zframes, &code);
  free(d);
  if (rc == TB_OK && reg) rc = schema_validate(reg, m, &code);
  if (rc != TB_OK) {
    info->code = code;
    msg_free(m);
    return TB_ERR;
  }
  snprintf(info->schema, sizeof info->schema, "%s", m->schema);
  info->version = m->version;
  info->id = m->id;
  info->has_id = 1;
  info->code = 0;
  *out = m;
  return TB_OK;
}

int msg_decode_frames(const void *const *frames, const size_t *lens, int nframes,
                      const struct schema_registry *reg, msg **out, msg_info *info) {
  return decode_all(frames, lens, nframes, NULL, reg, out, info);
}

/* --- errors -------------------------------------------------------------------------------- */

const char *msg_error_code_name(int code) {
  switch (code) {
    case MSG_ERR_BAD_REQUEST: return "bad_request";
    case MSG_ERR_UNKNOWN_SCHEMA: return "unknown_schema";
    case MSG_ERR_TOO_LARGE: return "too_large";
    case MSG_ERR_UNSUPPORTED: return "unsupported";
    case MSG_ERR_INTERNAL: return "internal";
    case MSG_ERR_BUSY: return "busy";
    case MSG_ERR_TIMEOUT: return "timeout";
    default: return "unknown";
  }
}

msg *msg_error_new(int code, const char *message, const char *req_schema, uint64_t req_id) {
  msg *m = msg_new("error", 1, req_id);
  msg_set_int(m, "code", code);
  char text[MSG_STR_MAX];
  snprintf(text, sizeof text, "%s", message ? message : "");
  msg_set_str(m, "message", text);
  char sch[MSG_NAME_MAX];
  snprintf(sch, sizeof sch, "%s", req_schema ? req_schema : "");
  msg_set_str(m, "req_schema", sch);
  return m;
}

int msg_is_error(const msg *m, int *code, const char **message) {
  if (strcmp(m->schema, "error")) return 0;
  if (code) *code = (int)msg_int_or(m, "code", MSG_ERR_INTERNAL);
  if (message) *message = msg_str_or(m, "message", "");
  return 1;
}

/* --- sockets ------------------------------------------------------------------------------- */

static int zerr(const char *what) {
  int e = zmq_errno();
  return err_set("%s: %s (errno %d)", what, zmq_strerror(e), e);
}

/* Sends the envelope (identities + delimiter) as the first parts. */
static int send_envelope(void *sock, const msg_envelope *env, int flags) {
  if (!env) return TB_OK;
  if (env->n < 0 || env->n > MSG_ENVELOPE_MAX)
    return err_set("envelope has %d frames (0..%d)", env->n, MSG_ENVELOPE_MAX);
  for (int i = 0; i < env->n; i++)
    if (zmq_send(sock, env->id[i], env->len[i], flags | ZMQ_SNDMORE) < 0)
      return zerr("sending the routing envelope");
  if (zmq_send(sock, "", 0, flags | ZMQ_SNDMORE) < 0) return zerr("sending the delimiter");
  return TB_OK;
}

int msg_send(msg *m, void *sock, const msg_envelope *env, int flags) {
  void *hdr;
  size_t hlen;
  if (msg_header_encode(m, &hdr, &hlen) != TB_OK) return TB_ERR;
  /* The header goes first; if it cannot be queued, nothing was sent. A ROUTER with an envelope
   * sends the identity first, which fails with EHOSTUNREACH for a gone peer. */
  if (send_envelope(sock, env, flags) != TB_OK) {
    free(hdr);
    return TB_ERR;
  }
  zmq_msg_t z;
  zmq_msg_init_size(&z, hlen);
  memcpy(zmq_msg_data(&z), hdr, hlen);
  free(hdr);
  int more = m->ntensors > 0 ? ZMQ_SNDMORE : 0;
  if (zmq_msg_send(&z, sock, flags | more) < 0) {
    zmq_msg_close(&z);
    return zerr("sending the header");
  }
  for (int i = 0; i < m->ntensors; i++) {
    tbuf *b = m->tensors[i].buf;
    more = i + 1 < m->ntensors ? ZMQ_SNDMORE : 0;
    if (b->nbytes == 0) {
      zmq_msg_init(&z);
    } else {
      tbuf_ref(b);
      if (zmq_msg_init_data(&z, b->data, b->nbytes, tbuf_zmq_release, b) != 0) {
        tbuf_unref(b);
        return zerr("framing a tensor");
      }
    }
    /* Later parts of a multipart message are queued with the first; they do not wait. */
    if (zmq_msg_send(&z, sock, flags | more) < 0) {
      zmq_msg_close(&z); /* runs tbuf_zmq_release */
      return zerr("sending a tensor frame");
    }
  }
  return TB_OK;
}

int msg_send_raw(void *sock, const msg_envelope *env, const void *const *frames,
                 const size_t *lens, int nframes, int flags) {
  if (nframes < 1) return err_set("msg_send_raw: no frames");
  if (send_envelope(sock, env, flags) != TB_OK) return TB_ERR;
  for (int i = 0; i < nframes; i++)
    if (zmq_send(sock, frames[i], lens[i], flags | (i + 1 < nframes ? ZMQ_SNDMORE : 0)) < 0)
      return zerr("sending a raw frame");
  return TB_OK;
}

static int sock_more(void *sock) {
  int more = 0;
  size_t sz = sizeof more;
  if (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) != 0) return 0;
  return more;
}

msg_recv_status msg_recv(void *sock, const struct schema_registry *reg, msg **out,
                         msg_envelope *env, int flags) {
  *out = NULL;
  if (env) env->n = 0;
  zmq_msg_t *zf = xcalloc(RECV_FRAMES_MAX, sizeof *zf);
  int nz = 0, extra = 0;
  zmq_msg_init(&zf[0]);
  if (zmq_msg_recv(&zf[0], sock, flags) < 0) {
    int e = zmq_errno();
    zmq_msg_close(&zf[0]);
    free(zf);
    if (e == EAGAIN || e == EINTR) return MSG_RECV_AGAIN;
    zerr("receiving a message");
    return MSG_RECV_ERR;
  }
  nz = 1;
  /* The rest of a multipart message has already arrived with its first part. */
  while (sock_more(sock)) {
    zmq_msg_t *dst = nz < RECV_FRAMES_MAX ? &zf[nz] : NULL;
    zmq_msg_t drain;
    if (!dst) dst = &drain;
    zmq_msg_init(dst);
    if (zmq_msg_recv(dst, sock, 0) < 0) {
      zmq_msg_close(dst);
      for (int i = 0; i < nz; i++) zmq_msg_close(&zf[i]);
      free(zf);
      zerr("receiving a message part");
      return MSG_RECV_ERR;
    }
    if (dst == &drain) {
      zmq_msg_close(&drain);
      extra++;
    } else {
      nz++;
    }
  }

  /* Envelope: identities up to the first empty frame. */
  int first = 0;
  int rc = TB_OK, code = MSG_ERR_BAD_REQUEST;
  if (env) {
    int delim = -1;
    for (int i = 0; i < nz && i <= MSG_ENVELOPE_MAX; i++)
      if (zmq_msg_size(&zf[i]) == 0) {
        delim = i;
        break;
      }
    if (delim < 0) {
      int type = 0;
      size_t tsz = sizeof type;
      zmq_getsockopt(sock, ZMQ_TYPE, &type, &tsz);
      if (type == ZMQ_ROUTER && zmq_msg_size(&zf[0]) <= MSG_IDENTITY_MAX) {
        env->n = 1; /* the identity the ROUTER added, so the error can go back */
        env->len[0] = (uint8_t)zmq_msg_size(&zf[0]);
        memcpy(env->id[0], zmq_msg_data(&zf[0]), env->len[0]);
      }
      rc = err_set("message has no empty delimiter frame after its routing identities "
                   "(a DEALER must send an empty frame first)");
    } else {
      for (int i = 0; i < delim; i++) {
        size_t l = zmq_msg_size(&zf[i]);
        if (l > MSG_IDENTITY_MAX) {
          env->n = 0;
          rc = err_set("routing identity frame %d is %zu bytes (at most %d)", i, l,
                       MSG_IDENTITY_MAX);
          break;
        }
        env->len[i] = (uint8_t)l;
        memcpy(env->id[i], zmq_msg_data(&zf[i]), l);
        env->n = i + 1;
      }
      first = delim + 1;
    }
  }

  msg_info info;
  memset(&info, 0, sizeof info);
  int nmsg = nz - first;
  if (rc == TB_OK && extra > 0) {
    code = MSG_ERR_TOO_LARGE;
    if (nmsg > 0 && zmq_msg_size(&zf[first]) <= MSG_HEADER_MAX)
      header_peek(zmq_msg_data(&zf[first]), zmq_msg_size(&zf[first]), &info);
    rc = err_set("message has %d frames (at most 1 header + %d tensors)", nmsg + extra,
                 MSG_MAX_TENSORS);
  } else if (rc == TB_OK && nmsg < 1) {
    rc = err_set("message has no header frame after the delimiter");
  } else if (rc == TB_OK) {
    const void **ptrs = xcalloc((size_t)nmsg, sizeof *ptrs);
    size_t *lens = xcalloc((size_t)nmsg, sizeof *lens);
    for (int i = 0; i < nmsg; i++) {
      ptrs[i] = zmq_msg_data(&zf[first + i]);
      lens[i] = zmq_msg_size(&zf[first + i]);
    }
    rc = decode_all(ptrs, lens, nmsg, &zf[first], reg, out, &info);
    code = info.code;
    free(ptrs);
    free(lens);
  }
  for (int i = 0; i < nz; i++) zmq_msg_close(&zf[i]); /* moved frames are empty now */
  free(zf);
  if (rc == TB_OK) return MSG_RECV_OK;
  *out = msg_error_new(code ? code : MSG_ERR_BAD_REQUEST, err_get(), info.schema, info.id);
  return MSG_RECV_INVALID;
}

/* --- socket options ------------------------------------------------------------------------ */

msg_socket_opts msg_socket_opts_default(void) {
  msg_socket_opts o;
  o.max_msg_size = MSG_PAYLOAD_MAX + MSG_HEADER_MAX;
  o.sndhwm = 64; /* messages: enough to pipeline, small enough to push back early */
  o.rcvhwm = 64;
  o.linger_ms = 0; /* a stopping service drops what it could not deliver; clients retry */
  o.sndtimeo_ms = -1;
  o.rcvtimeo_ms = -1;
  o.router_mandatory = 1; /* a reply to a gone peer fails loudly instead of vanishing */
  return o;
}

int msg_socket_configure(void *sock, const msg_socket_opts *o) {
  msg_socket_opts d = msg_socket_opts_default();
  if (!o) o = &d;
  if (zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &o->max_msg_size, sizeof o->max_msg_size) != 0)
    return zerr("setting ZMQ_MAXMSGSIZE");
  if (zmq_setsockopt(sock, ZMQ_SNDHWM, &o->sndhwm, sizeof o->sndhwm) != 0)
    return zerr("setting ZMQ_SNDHWM");
  if (zmq_setsockopt(sock, ZMQ_RCVHWM, &o->rcvhwm, sizeof o->rcvhwm) != 0)
    return zerr("setting ZMQ_RCVHWM");
  if (zmq_setsockopt(sock, ZMQ_LINGER, &o->linger_ms, sizeof o->linger_ms) != 0)
    return zerr("setting ZMQ_LINGER");
  if (zmq_setsockopt(sock, ZMQ_SNDTIMEO, &o->sndtimeo_ms, sizeof o->sndtimeo_ms) != 0)
    return zerr("setting ZMQ_SNDTIMEO");
  if (zmq_setsockopt(sock, ZMQ_RCVTIMEO, &o->rcvtimeo_ms, sizeof o->rcvtimeo_ms) != 0)
    return zerr("setting ZMQ_RCVTIMEO");
  int type = 0;
  size_t tsz = sizeof type;
  if (zmq_getsockopt(sock, ZMQ_TYPE, &type, &tsz) != 0) return zerr("reading ZMQ_TYPE");
  if (type == ZMQ_ROUTER &&
      zmq_setsockopt(sock, ZMQ_ROUTER_MANDATORY, &o->router_mandatory,
                     sizeof o->router_mandatory) != 0)
    return zerr("setting ZMQ_ROUTER_MANDATORY");
  return TB_OK;
}

/* common/msg.h — turbo's wire messages: one request or reply = one multipart ZeroMQ message.
 *
 *   frame 0      msgpack map, the header (at most MSG_HEADER_MAX bytes):
 *                  "schema": str, "v": int, "id": uint64,
 *                  scalar fields at the top level (int, float, str, bool, arrays of numbers),
 *                  "tensors": [ {"name": str, "dtype": "F32"|"BF16"|…, "shape": [int…]} … ]
 *   frame 1..n   the raw little-endian bytes of tensor i-1, exactly numel × dtype size bytes.
 *
 * Before frame 0 a ROUTER socket sees (and must send back) a routing envelope: one or more
 * identity frames and an empty delimiter; msg_recv/msg_send carry it in a msg_envelope.
 *
 * Tensors travel without copies. On send, each frame references the tensor's bytes
 * (zmq_msg_init_data); a reference count per tensor keeps them alive until every send that used
 * them has released them and the msg is freed; only then the caller's free callback runs, maybe
 * on a ZeroMQ I/O thread. A msg can therefore be sent again (client retries). On receive, the
 * frames are kept as zmq_msg_t and the tensors are views into them (copied only when a frame's
 * data is not aligned for its dtype).
 *
 * Received headers are decoded by a bounded reader (common/mpack.h: every count is checked
 * against the bytes left, depth and lengths are capped) and validated against the schema
 * registry (common/schema.h); a rejection yields a ready "error" reply whose message names the
 * field, tensor or frame at fault.
 *
 * Errors: functions returning int give TB_OK or TB_ERR with err_get() set (common/log.h).
 * A msg is used by one thread at a time; tensor release callbacks may run on any thread.
 */
#ifndef TURBO_MSG_H
#define TURBO_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "common/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --- limits (wire protocol version 1) ----------------------------------------------------- */
#define MSG_PROTOCOL_VERSION "turbo-msg/1"
#define MSG_HEADER_MAX (64 * 1024)     /* bytes of frame 0; headers are small maps */
#define MSG_NAME_MAX 64                /* bytes of a schema, field or tensor name incl. NUL */
#define MSG_STR_MAX 4096               /* bytes of a str field value */
#define MSG_ARRAY_MAX 1024             /* elements of an array field */
#define MSG_MAX_FIELDS 64              /* scalar fields per message */
#define MSG_MAX_TENSORS 32             /* tensor frames per message */
#define MSG_ENVELOPE_MAX 8             /* routing identity frames (one per ROUTER hop) */
#define MSG_IDENTITY_MAX 255           /* bytes of one identity frame (ZeroMQ's own bound) */
#define MSG_PAYLOAD_MAX ((int64_t)4 << 30) /* bytes of all tensor frames, unless a schema says less */

/* Reserved header keys; schemas may not declare fields with these names. */
#define MSG_KEY_SCHEMA "schema"
#define MSG_KEY_VERSION "v"
#define MSG_KEY_ID "id"
#define MSG_KEY_TENSORS "tensors"

typedef struct msg msg;
struct schema_registry; /* common/schema.h */

/* --- scalar fields ------------------------------------------------------------------------ */
typedef enum {
  MSG_FIELD_INT = 0,  /* int64_t (wire: any msgpack int that fits; uint64 above INT64_MAX is rejected) */
  MSG_FIELD_FLOAT,    /* double (wire: float32 or float64) */
  MSG_FIELD_STR,      /* NUL-terminated UTF-8 bytes, < MSG_STR_MAX, no embedded NUL */
  MSG_FIELD_BOOL,
  MSG_FIELD_INTS,     /* array of int64_t, up to MSG_ARRAY_MAX */
  MSG_FIELD_FLOATS,   /* array of double (wire elements may be ints or floats) */
  MSG_FIELD_COUNT
} msg_field_type;

typedef struct {
  char name[MSG_NAME_MAX];
  msg_field_type type;
  int64_t i;        /* MSG_FIELD_INT; MSG_FIELD_BOOL (0/1) */
  double f;         /* MSG_FIELD_FLOAT */
  char *s;          /* MSG_FIELD_STR (owned by the msg) */
  int n;            /* element count of MSG_FIELD_INTS / MSG_FIELD_FLOATS */
  int64_t *ints;    /* owned by the msg */
  double *floats;   /* owned by the msg */
} msg_field;

/* "int", "float", "str", "bool", "ints", "floats". */
const char *msg_field_type_name(msg_field_type t);

/* --- lifecycle ---------------------------------------------------------------------------- */

/* A new, empty message. schema: a registered schema name (< MSG_NAME_MAX bytes); version >= 1.
 * Aborts on out-of-memory only; an empty or too long name or a version < 1 makes
 * msg_header_encode (and so msg_send) fail with a message saying so. Free with msg_free. */
msg *msg_new(const char *schema, int version, uint64_t id);
/* Frees the fields, releases this msg's reference to every tensor (running the free callbacks
 * of tensors no send still holds) and closes received frames. NULL is fine. */
void msg_free(msg *m);

const char *msg_schema(const msg *m);
int msg_version(const msg *m);
uint64_t msg_id(const msg *m);
void msg_set_id(msg *m, uint64_t id);

/* --- setting fields (replace a field of the same name) -------------------------------------
 * TB_ERR when the name is empty, too long or reserved, the string too long, the array too long,
 * or the message already has MSG_MAX_FIELDS fields. Values are copied. */
int msg_set_int(msg *m, const char *name, int64_t v);
int msg_set_float(msg *m, const char *name, double v);
int msg_set_str(msg *m, const char *name, const char *v);
int msg_set_bool(msg *m, const char *name, int v);
int msg_set_ints(msg *m, const char *name, const int64_t *v, int n);
int msg_set_floats(msg *m, const char *name, const double *v, int n);

/* --- reading fields ------------------------------------------------------------------------
 * msg_get_*: TB_ERR (err names the field) when absent or of another type; msg_get_float also
 * accepts an int field. Returned pointers stay valid until the field is set again or the msg
 * is freed. The *_or forms return `def` when the field is absent or of another type. */
int msg_has(const msg *m, const char *name);
int msg_get_int(const msg *m, const char *name, int64_t *out);
int msg_get_float(const msg *m, const char *name, double *out);
int msg_get_bool(const msg *m, const char *name, int *out);
int msg_get_str(const msg *m, const char *name, const char **out);
int msg_get_ints(const msg *m, const char *name, const int64_t **v, int *n);
int msg_get_floats(const msg *m, const char *name, const double **v, int *n);
int64_t msg_int_or(const msg *m, const char *name, int64_t def);
double msg_float_or(const msg *m, const char *name, double def);
const char *msg_str_or(const msg *m, const char *name, const char *def);

/* Iteration in insertion (or wire) order; msg_field_at returns NULL when i is out of range. */
int msg_field_count(const msg *m);
const msg_field *msg_field_at(const msg *m, int i);
const msg_field *msg_field_find(const msg *m, const char *name); /* NULL when absent */

/* --- tensors --------------------------------------------------------------------------------*/

/* Called once when nobody needs a tensor's bytes any more: after msg_free and after ZeroMQ has
 * released every frame that referenced them. May run on a ZeroMQ I/O thread: it must be
 * thread-safe and must not call back into this msg. */
typedef void (*msg_free_fn)(void *data, void *hint);

/* Attaches t's bytes as the next tensor frame, without copying. t must be a contiguous CPU
 * tensor (ndim 0..TENSOR_MAX_DIMS); its struct is copied (as a view), its data is referenced.
 *   free_fn != NULL: ownership of the bytes passes to the msg — free_fn(t->data, hint) runs
 *                    exactly once, when the last reference goes (also on TB_ERR from this call).
 *   free_fn == NULL: the caller keeps the bytes alive and unchanged for as long as the context
 *                    may still deliver them (model weights, static buffers), since ZeroMQ may
 *                    read them after msg_send returns — prefer msg_add_tensor_copy otherwise.
 * TB_ERR on a bad name (empty, too long, duplicate), too many tensors, a non-CPU tensor or a
 * byte size that overflows. */
int msg_add_tensor(msg *m, const char *name, const tensor *t, msg_free_fn free_fn, void *hint);
/* Copies t's bytes into a buffer owned by the msg (for short-lived caller memory). */
int msg_add_tensor_copy(msg *m, const char *name, const tensor *t);
/* Takes an owning tensor (aligned_alloc_zero data, not a view): the msg frees it with
 * aligned_free when the last reference goes; *t becomes an empty view either way. */
int msg_add_tensor_owned(msg *m, const char *name, tensor *t);
/* Attaches tensor i of src to dst, sharing its bytes by reference (an echo or forward): src
 * may be freed before or after dst. TB_ERR when i is out of range or as msg_add_tensor. */
int msg_add_tensor_shared(msg *dst, const char *name, const msg *src, int i);

int msg_tensor_count(const msg *m);
/* A view of tensor i (NULL when out of range); valid while the msg lives. Received data is
 * aligned to at least its dtype size. Do not write through it unless you built the msg. */
const tensor *msg_tensor_at(const msg *m, int i);
const char *msg_tensor_name(const msg *m, int i); /* NULL when out of range */
const tensor *msg_tensor_get(const msg *m, const char *name); /* NULL when absent */
/* Index of the named tensor, or -1. */
int msg_tensor_index(const msg *m, const char *name);
/* Sum of the tensor frames' bytes. */
int64_t msg_payload_bytes(const msg *m);

/* --- header codec (no sockets) ---------------------------------------------------------------*/

/* Encodes the header (schema, v, id, fields, tensor descriptors) as msgpack into a malloc'd
 * buffer the caller frees with free(). TB_ERR if it would exceed MSG_HEADER_MAX. */
int msg_header_encode(const msg *m, void **buf, size_t *len);

/* Decodes frames into a new msg (*out, free with msg_free): frames[0] is the header,
 * frames[1..n-1] the tensor bytes. Checks: header size and well-formedness, reserved keys and
 * their types, the descriptor list against the frame count, each frame's byte count against
 * numel × dtype size, and the payload cap; then, when reg != NULL, the schema (schema_validate).
 * Tensors are views into the caller's frames (copied only when misaligned for their dtype):
 * the frames must outlive *out. On TB_ERR, *out is NULL and err_get() names what is wrong;
 * `info` (may be NULL) receives whatever of schema/v/id could be read, for the error reply. */
typedef struct {
  char schema[MSG_NAME_MAX]; /* "" when not readable */
  int version;               /* 0 when not readable */
  uint64_t id;               /* 0 when not readable */
  int has_id;
  int code;                  /* msg_error_code for the error reply; 0 on success */
} msg_info;
int msg_decode_frames(const void *const *frames, const size_t *lens, int nframes,
                      const struct schema_registry *reg, msg **out, msg_info *info);

/* --- error replies ---------------------------------------------------------------------------*/
typedef enum {
  MSG_ERR_BAD_REQUEST = 1,    /* malformed header, wrong types, shapes, byte counts, NaN/Inf */
  MSG_ERR_UNKNOWN_SCHEMA = 2, /* no such schema or version in the service's registry */
  MSG_ERR_TOO_LARGE = 3,      /* header or payload over a limit */
  MSG_ERR_UNSUPPORTED = 4,    /* valid message this service does not handle */
  MSG_ERR_INTERNAL = 5,       /* the handler failed; the service keeps running */
  MSG_ERR_BUSY = 6,           /* overloaded; retry later */
  MSG_ERR_TIMEOUT = 7,        /* set by clients when the bound on retries ran out */
} msg_error_code;
/* "bad_request", "unknown_schema", …; "unknown" for other values. */
const char *msg_error_code_name(int code);

/* A reply of schema "error" v1 with header id = req_id and fields code (int), message (str,
 * truncated to MSG_STR_MAX-1 bytes) and req_schema (the request's schema name, "" when
 * unknown). Aborts on out-of-memory only. */
msg *msg_error_new(int code, const char *message, const char *req_schema, uint64_t req_id);
/* 1 when m is an "error" message; then *code and *message (may be NULL) are filled. */
int msg_is_error(const msg *m, int *code, const char **message);

/* --- sockets ---------------------------------------------------------------------------------*/

/* The routing frames that precede a message on ROUTER sockets (identities, then an empty
 * delimiter on the wire). A plain value: copy it, no cleanup. n == 0: no envelope. */
typedef struct {
  int n;
  uint8_t len[MSG_ENVELOPE_MAX];
  uint8_t id[MSG_ENVELOPE_MAX][MSG_IDENTITY_MAX];
} msg_envelope;

/* Sends m as one multipart message on sock (any ZeroMQ socket type). env != NULL: first
 * env->n identity frames, then an empty delimiter (a ROUTER replying; or a DEALER talking to a
 * ROUTER, with env->n == 0); env == NULL: no envelope (PAIR, PUSH, REQ, REP). flags: 0 (block, up
 * to ZMQ_SNDTIMEO) or ZMQ_DONTWAIT. The msg is not consumed: it may be sent again.
 * TB_ERR with the zmq error text (EAGAIN when a high-water mark or timeout stops it: nothing
 * was sent; EHOSTUNREACH on a ROUTER with ZMQ_ROUTER_MANDATORY for a gone peer). */
int msg_send(msg *m, void *sock, const msg_envelope *env, int flags);

/* Sends raw frames (frames[0] a header already encoded, or anything, for tests) with an
 * optional envelope. Copies the bytes. TB_ERR as msg_send. */
int msg_send_raw(void *sock, const msg_envelope *env, const void *const *frames,
                 const size_t *lens, int nframes, int flags);

/* What msg_recv returns. */
typedef enum {
  MSG_RECV_OK = 0,       /* *out is the received, validated message */
  MSG_RECV_AGAIN = 1,    /* nothing (ZMQ_DONTWAIT/ZMQ_RCVTIMEO ran out, or EINTR): *out NULL */
  MSG_RECV_INVALID = 2,  /* a message arrived but was rejected: *out is the "error" reply to
                            send back (with *env), err_get() the same text */
  MSG_RECV_ERR = -1      /* the socket failed (ETERM, ENOTSOCK…): *out NULL, err_get() says */
} msg_recv_status;

/* Receives one multipart message. env (may be NULL, then envelope frames are not expected):
 * when env is given, leading frames up to the first empty frame are taken as the envelope
 * (ROUTER: identities + delimiter; DEALER from a ROUTER: delimiter only, env->n = 0); a
 * message without a delimiter is rejected as INVALID (on a ROUTER env then holds the one
 * identity frame, so the error reply still reaches the peer).
 * The frames stay inside the returned msg; tensors are views into them. reg: validate against
 * the registry (NULL: structure only). flags: 0 or ZMQ_DONTWAIT. Oversized messages are
 * drained whole before rejecting them, so the socket stays in step. */
msg_recv_status msg_recv(void *sock, const struct schema_registry *reg, msg **out,
                         msg_envelope *env, int flags);

/* Socket options set in one place for every turbo socket. */
typedef struct {
  int64_t max_msg_size; /* ZMQ_MAXMSGSIZE, bytes per frame; -1 no limit */
  int sndhwm, rcvhwm;   /* ZMQ_SNDHWM / ZMQ_RCVHWM, messages; 0 = no limit (never default) */
  int linger_ms;        /* ZMQ_LINGER; 0 drops unsent messages at close */
  int sndtimeo_ms;      /* ZMQ_SNDTIMEO; -1 blocks */
  int rcvtimeo_ms;      /* ZMQ_RCVTIMEO; -1 blocks */
  int router_mandatory; /* ZMQ_ROUTER_MANDATORY on ROUTER sockets (ignored on others) */
} msg_socket_opts;
/* max_msg_size = MSG_PAYLOAD_MAX + MSG_HEADER_MAX, sndhwm = rcvhwm = 64, linger 0,
 * timeouts -1, router_mandatory 1. */
msg_socket_opts msg_socket_opts_default(void);
/* Applies o (NULL: the defaults) to sock. TB_ERR names the option zmq refused. */
int msg_socket_configure(void *sock, const msg_socket_opts *o);

#ifdef __cplusplus
}
#endif
#endif

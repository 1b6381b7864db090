/* kernels/nn/bpe.c — see bpe.h. */
#include "kernels/nn/bpe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/json.h"
#include "common/log.h"

#include "kernels/nn/bpe_unicode.inc"

#define EOW "</w>"

/* ---- Unicode classes ----------------------------------------------------------------------- */

static int in_ranges(const uint32_t (*r)[2], int n, uint32_t cp) {
  int lo = 0, hi = n - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (cp < r[mid][0]) hi = mid - 1;
    else if (cp > r[mid][1]) lo = mid + 1;
    else return 1;
  }
  return 0;
}
#define NRANGE(t) ((int)(sizeof t / sizeof t[0]))
static int is_letter(uint32_t cp) { return in_ranges(BPE_LETTER, NRANGE(BPE_LETTER), cp); }
static int is_number(uint32_t cp) { return in_ranges(BPE_NUMBER, NRANGE(BPE_NUMBER), cp); }
/* Unicode White_Space (what the regex engines' \s means) */
static int is_space(uint32_t cp) {
  return (cp >= 0x9 && cp <= 0xD) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}
/* The lower case of cp into out (1-3 code points); returns the count. */
static int lower(uint32_t cp, uint32_t out[3]) {
  if (cp < 0x80) {
    out[0] = cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    return 1;
  }
  int lo = 0, hi = NRANGE(BPE_LOWER) - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (cp < BPE_LOWER[mid][0]) hi = mid - 1;
    else if (cp > BPE_LOWER[mid][0]) lo = mid + 1;
    else {
      int n = 0;
      for (int k = 1; k < 4 && BPE_LOWER[mid][k]; k++) out[n++] = BPE_LOWER[mid][k];
      return n;
    }
  }
  out[0] = cp;
  return 1;
}

/* Decodes one UTF-8 sequence at s (n bytes left): the code point, or 0x110000 + byte for a byte
 * that starts no valid sequence (consumed alone). *len gets the bytes used. */
static uint32_t utf8_next(const unsigned char *s, size_t n, int *len) {
  unsigned c = s[0];
  int need = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
  if (need == 0) {
    *len = 1;
    return c;
  }
  if (need < 0 || (size_t)need >= n) goto bad;
  uint32_t cp = c & (0x3F >> need);
  for (int i = 1; i <= need; i++) {
    if ((s[i] & 0xC0) != 0x80) goto bad;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
  if (cp < min[need] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto bad;
  *len = need + 1;
  return cp;
bad:
  *len = 1;
  return 0x110000 + c;
}
static int utf8_put(uint32_t cp, char *o) {
  if (cp >= 0x110000) { /* an undecodable byte: kept as it was */
    o[0] = (char)(cp - 0x110000);
    return 1;
  }
  if (cp < 0x80) return o[0] = (char)cp, 1;
  if (cp < 0x800) return o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), 2;
  if (cp < 0x10000)
    return o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
           o[2] = (char)(0x80 | (cp & 0x3F)), 3;
  return o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
         o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F)), 4;
}

/* ---- tables ------------------------------------------------------------------------------ */

typedef struct {
  char *key;
  int32_t id;
} str_slot;
typedef struct {
  uint64_t key; /* (a << 32 | b) + 1; 0 = empty */
  int32_t rank, merged;
} pair_slot;

struct clip_bpe {
  str_slot *str;
  size_t str_cap;
  pair_slot *pair;
  size_t pair_cap;
  int32_t byte_sym[256][2]; /* id of byte b's symbol, without and with </w> */
  char byte_utf8[256][4];    /* the symbol's UTF-8 */
  int byte_len[256];
  int32_t bos, eos;
  int vocab_size;
  int32_t *work;             /* scratch symbols of one piece */
  size_t work_cap;
};

static uint64_t fnv(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}
static int32_t str_find(const clip_bpe *t, const char *s, size_t n) {
  for (size_t i = fnv(s, n) & (t->str_cap - 1);; i = (i + 1) & (t->str_cap - 1)) {
    if (!t->str[i].key) return -1;
    if (strlen(t->str[i].key) == n && memcmp(t->str[i].key, s, n) == 0) return t->str[i].id;
  }
}
static void str_put(clip_bpe *t, const char *s, int32_t id) {
  size_t n = strlen(s);
  for (size_t i = fnv(s, n) & (t->str_cap - 1);; i = (i + 1) & (t->str_cap - 1))
    if (!t->str[i].key) {
      t->str[i].key = xstrdup(s);
      t->str[i].id = id;
      return;
    }
}
static pair_slot *pair_at(const clip_bpe *t, int32_t a, int32_t b) {
  uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
  for (size_t i = (key * 0x9E3779B97F4A7C15ull >> 17) & (t->pair_cap - 1);;
       i = (i + 1) & (t->pair_cap - 1))
    if (t->pair[i].key == key || t->pair[i].key == 0) return &t->pair[i];
}
static size_t pow2_above(size_t n) {
  size_t c = 64;
  while (c < 2 * n) c *= 2;
  return c;
}

void clip_bpe_free(clip_bpe *t) {
  if (!t) return;
  for (size_t i = 0; i < t->str_cap; i++) free(t->str[i].key);
  free(t->str);
  free(t->pair);
  free(t->work);
  free(t);
}

/* GPT-2's / CLIP's printable stand-ins for the 256 byte values */
static void byte_symbols(clip_bpe *t) {
  int n = 0;
  for (int b = 0; b < 256; b++) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    uint32_t cp = printable ? (uint32_t)b : (uint32_t)(256 + n++);
    t->byte_len[b] = utf8_put(cp, t->byte_utf8[b]);
  }
}

clip_bpe *clip_bpe_parse(const char *vocab_json, const char *merges_txt) {
  json_value *v = json_parse(vocab_json, strlen(vocab_json), NULL);
  if (!v) {
    err_wrap("vocab.json: ");
    return NULL;
  }
  if (v->type != JSON_OBJECT || v->count == 0) {
    json_free(v);
    err_set("vocab.json: not a JSON object of symbol -> id");
    return NULL;
  }
  clip_bpe *t = xcalloc(1, sizeof *t);
  t->str_cap = pow2_above(v->count);
  t->str = xcalloc(t->str_cap, sizeof *t->str);
  int ok = 1;
  for (size_t i = 0; i < v->count && ok; i++) {
    const json_value *x = &v->items[i];
    if (x->type != JSON_NUMBER || !x->is_int || x->integer < 0 || x->integer >= 1 << 24) {
      err_set("vocab.json: symbol \"%.60s\" has no valid id", v->keys[i]);
      ok = 0;
    } else if (str_find(t, v->keys[i], strlen(v->keys[i])) >= 0) {
      err_set("vocab.json: symbol \"%.60s\" appears twice", v->keys[i]);
      ok = 0;
    } else {
      str_put(t, v->keys[i], (int32_t)x->integer);
      if ((int)x->integer + 1 > t->vocab_size) t->vocab_size = (int)x->integer + 1;
    }
  }
  json_free(v);
  byte_symbols(t);
  for (int b = 0; b < 256 && ok; b++) {
    char s[16];
    memcpy(s, t->byte_utf8[b], (size_t)t->byte_len[b]);
    s[t->byte_len[b]] = 0;
    t->byte_sym[b][0] = str_find(t, s, strlen(s));
    strcat(s, EOW);
    t->byte_sym[b][1] = str_find(t, s, strlen(s));
    if (t->byte_sym[b][0] < 0 || t->byte_sym[b][1] < 0) {
      err_set("vocab.json: the symbol of byte 0x%02X (\"%s\") is missing: not a CLIP vocabulary", b, s);
      ok = 0;
    }
  }
  t->bos = str_find(t, "<|startoftext|>", 15);
  t->eos = str_find(t, "<|endoftext|>", 13);
  if (ok && (t->bos < 0 || t->eos < 0)) {
    err_set("vocab.json: <|startoftext|> or <|endoftext|> is missing");
    ok = 0;
  }
  /* merges: rank = line order after the #version line */
  size_t lines = 1;
  for (const char *p = merges_txt; *p; p++) lines += *p == '\n';
  t->pair_cap = pow2_above(lines);
  t->pair = xcalloc(t->pair_cap, sizeof *t->pair);
  const char *p = merges_txt;
  int lineno = 0, rank = 0;
  char buf[512];
  while (ok && *p) {
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    lineno++;
    if (n && p[n - 1] == '\r') n--;
    if (n >= sizeof buf) {
      err_set("merges.txt line %d: longer than %zu bytes", lineno, sizeof buf - 1);
      ok = 0;
      break;
    }
    memcpy(buf, p, n);
    buf[n] = 0;
    p = e ? e + 1 : p + strlen(p);
    if (n == 0 || (lineno == 1 && strncmp(buf, "#version", 8) == 0)) continue;
    char *sp = strchr(buf, ' ');
    if (!sp || strchr(sp + 1, ' ') || sp == buf || !sp[1]) {
      err_set("merges.txt line %d: \"%.60s\" is not two symbols separated by one space", lineno, buf);
      ok = 0;
      break;
    }
    *sp = 0;
    int32_t a = str_find(t, buf, strlen(buf)), b = str_find(t, sp + 1, strlen(sp + 1));
    char cat[2 * sizeof buf];
    snprintf(cat, sizeof cat, "%s%s", buf, sp + 1);
    int32_t m = str_find(t, cat, strlen(cat));
    if (a < 0 || b < 0 || m < 0) {
      err_set("merges.txt line %d: symbol \"%.60s\" is not in vocab.json", lineno,
              a < 0 ? buf : b < 0 ? sp + 1 : cat);
      ok = 0;
      break;
    }
    pair_slot *s = pair_at(t, a, b);
    if (s->key) continue; /* a repeated merge keeps its first (higher) priority */
    s->key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    s->rank = rank++;
    s->merged = m;
  }
  if (!ok) {
    clip_bpe_free(t);
    return NULL;
  }
  return t;
}

clip_bpe *clip_bpe_load(const char *vocab_json_path, const char *merges_path) {
  size_t nv = 0, nm = 0;
  char *v = NULL, *m = NULL;
  clip_bpe *t = NULL;
  if (fs_read_all(vocab_json_path, &v, &nv) == TB_OK && fs_read_all(merges_path, &m, &nm) == TB_OK) {
    t = clip_bpe_parse(v, m);
    if (!t) err_wrap("%s / %s: ", vocab_json_path, merges_path);
  }
  free(v);
  free(m);
  return t;
}

int clip_bpe_vocab_size(const clip_bpe *t) { return t->vocab_size; }
int32_t clip_bpe_bos(const clip_bpe *t) { return t->bos; }
int32_t clip_bpe_eos(const clip_bpe *t) { return t->eos; }

/* ---- encoding ---------------------------------------------------------------------------- */

typedef struct {
  int32_t *ids;
  int n, max, full;
} out_ids;
static void emit(out_ids *o, int32_t id) {
  if (o->n < o->max) o->ids[o->n++] = id;
  o->full++;
}

/* BPE over one piece (its UTF-8 bytes p[0..n)). */
static void bpe_piece(clip_bpe *t, const unsigned char *p, size_t n, out_ids *o) {
  if (n > t->work_cap) {
    t->work_cap = 2 * n;
    t->work = xrealloc(t->work, t->work_cap * sizeof *t->work);
  }
  int32_t *w = t->work;
  size_t k = n;
  for (size_t i = 0; i < n; i++) w[i] = t->byte_sym[p[i]][i == n - 1];
  for (;;) {
    int32_t best = -1;
    size_t at = 0;
    for (size_t i = 0; i + 1 < k; i++) {
      pair_slot *s = pair_at(t, w[i], w[i + 1]);
      if (s->key && (best < 0 || s->rank < best)) best = s->rank, at = i;
    }
    if (best < 0) break;
    /* merge every occurrence of that pair, left to right */
    int32_t a = w[at], b = w[at + 1], m = pair_at(t, a, b)->merged;
    size_t j = 0;
    for (size_t i = 0; i < k; i++) {
      if (i + 1 < k && w[i] == a && w[i + 1] == b) {
        w[j++] = m;
        i++;
      } else {
        w[j++] = w[i];
      }
    }
    k = j;
  }
  for (size_t i = 0; i < k; i++) emit(o, w[i]);
}

static int starts(const char *s, size_t n, const char *lit) {
  size_t l = strlen(lit);
  return n >= l && memcmp(s, lit, l) == 0;
}

/* A segment of text without special tokens: normalise, cut into pieces, BPE each. */
static void encode_segment(clip_bpe *t, const char *s, size_t n, out_ids *o) {
  /* normalise: whitespace runs -> " ", lower case; code points kept for the classes */
  uint32_t *cp = xmalloc((3 * n + 1) * sizeof *cp);
  size_t m = 0;
  for (size_t i = 0; i < n;) {
    int len;
    uint32_t c = utf8_next((const unsigned char *)s + i, n - i, &len);
    i += (size_t)len;
    if (c < 0x110000 && is_space(c)) {
      if (!m || cp[m - 1] != ' ') cp[m++] = ' ';
      continue;
    }
    if (c >= 0x110000) {
      cp[m++] = c;
      continue;
    }
    uint32_t l[3];
    int k = lower(c, l);
    for (int j = 0; j < k; j++) cp[m++] = l[j];
  }
  char *u = xmalloc(4 * m + 1);
  size_t *off = xmalloc((m + 1) * sizeof *off); /* byte offset of each code point in u */
  size_t nb = 0;
  for (size_t i = 0; i < m; i++) {
    off[i] = nb;
    nb += (size_t)utf8_put(cp[i], u + nb);
  }
  off[m] = nb;
  static const char *const contr[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  for (size_t i = 0; i < m;) {
    uint32_t c = cp[i];
    size_t j = i + 1;
    const char *at = u + off[i];
    size_t rest = nb - off[i];
    if (starts(at, rest, "<|startoftext|>")) j = i + 15;
    else if (starts(at, rest, "<|endoftext|>")) j = i + 13;
    else {
      int hit = 0;
      for (size_t q = 0; q < sizeof contr / sizeof contr[0] && !hit; q++)
        if (starts(at, rest, contr[q])) j = i + strlen(contr[q]), hit = 1;
      if (!hit) {
        int cls = c >= 0x110000 ? 3 : is_space(c) ? 0 : is_letter(c) ? 1 : is_number(c) ? 2 : 3;
        if (cls == 0) {
          i++;
          continue;
        }
        if (cls == 1)
          while (j < m && cp[j] < 0x110000 && is_letter(cp[j])) j++;
        if (cls == 3)
          while (j < m && (cp[j] >= 0x110000 || (!is_space(cp[j]) && !is_letter(cp[j]) && !is_number(cp[j]))))
            j++;
      }
    }
    bpe_piece(t, (const unsigned char *)u + off[i], off[j] - off[i], o);
    i = j;
  }
  free(cp), free(u), free(off);
}

int clip_bpe_encode(clip_bpe *t, const char *s, int max_len, int32_t *ids, int *n_full) {
  TB_CHECKF(max_len >= 2, "clip_bpe_encode: max_len %d < 2", max_len);
  out_ids o = {.ids = ids + 1, .max = max_len - 2};
  s = s ? s : "";
  size_t n = strlen(s), seg = 0;
  for (size_t i = 0; i <= n;) {
    int sot = starts(s + i, n - i, "<|startoftext|>"), eot = !sot && starts(s + i, n - i, "<|endoftext|>");
    if (i == n || sot || eot) {
      if (i > seg) encode_segment(t, s + seg, i - seg, &o);
      if (i == n) break;
      emit(&o, sot ? t->bos : t->eos);
      i += sot ? 15 : 13;
      seg = i;
    } else {
      i++;
    }
  }
  ids[0] = t->bos;
  ids[1 + o.n] = t->eos;
  if (n_full) *n_full = o.full + 2;
  return o.n + 2;
}

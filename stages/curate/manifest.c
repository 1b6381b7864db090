/* stages/curate/manifest.c — see manifest.h. */
#include "stages/curate/manifest.h"

#include "common/fsutil.h"
#include "common/json.h"
#include "common/log.h"
#include "common/tensor.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *k_path_keys[] = {"path", "video", "video_path", "file", "filename",
                                    "contentUrl", "url", NULL};
static const char *k_caption_keys[] = {"caption", "name", "text", "title", "prompt", NULL};
static const char *k_id_keys[] = {"videoid", "video_id", "id", "clip_id", NULL};
static const char *k_short_keys[] = {"short_caption", "caption_short", NULL};

int utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    int len;
    unsigned cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (i + (size_t)len > n) return 0;
    for (int k = 1; k < len; k++) {
      if ((p[i + k] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
      return 0;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += (size_t)len;
  }
  return 1;
}

static void add_issue(manifest *m, int line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add_issue(manifest *m, int line, const char *path, const char *fmt, ...) {
  if (m->nissues == m->icap) {
    m->icap = m->icap ? m->icap * 2 : 16;
    m->issues = xrealloc(m->issues, sizeof(manifest_issue) * m->icap);
  }
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  manifest_issue *is = &m->issues[m->nissues++];
  is->line = line;
  is->path = path ? xstrdup(path) : NULL;
  is->reason = xstrdup(buf);
}

/* Validates and appends one row; bad rows become issues. */
static void add_row(manifest *m, int line, const char *id, const char *path, const char *caption,
                    const char *short_caption) {
  if (!path || !path[0]) {
    add_issue(m, line, NULL, "line %d: empty video path", line);
    return;
  }
  if (!utf8_valid(path, strlen(path))) {
    add_issue(m, line, NULL, "line %d: video path is not valid UTF-8", line);
    return;
  }
  if (!caption) caption = "";
  if (!utf8_valid(caption, strlen(caption)) ||
      (short_caption && !utf8_valid(short_caption, strlen(short_caption)))) {
    add_issue(m, line, path, "line %d: caption is not valid UTF-8", line);
    return;
  }
  if (m->n == m->cap) {
    m->cap = m->cap ? m->cap * 2 : 64;
    m->rows = xrealloc(m->rows, sizeof(manifest_row) * m->cap);
  }
  manifest_row *r = &m->rows[m->n++];
  r->line = line;
  r->path = xstrdup(path);
  r->caption = xstrdup(caption);
  r->id = xstrdup(id && id[0] ? id : path);
  r->short_caption = short_caption && short_caption[0] ? xstrdup(short_caption) : NULL;
}

static int find_key(const char **keys, char **names, int n) {
  for (int k = 0; keys[k]; k++)
    for (int i = 0; i < n; i++)
      if (strcasecmp(names[i], keys[k]) == 0) return i;
  return -1;
}

/* ---- CSV ---------------------------------------------------------------------------- */

typedef struct {
  char **f;
  int n, cap;
} fields;

static void fields_clear(fields *fs) {
  for (int i = 0; i < fs->n; i++) free(fs->f[i]);
  fs->n = 0;
}

static void fields_push(fields *fs, const char *s, size_t len) {
  if (fs->n == fs->cap) {
    fs->cap = fs->cap ? fs->cap * 2 : 8;
    fs->f = xrealloc(fs->f, sizeof(char *) * fs->cap);
  }
  char *c = xmalloc(len + 1);
  memcpy(c, s, len);
  c[len] = 0;
  fs->f[fs->n++] = c;
}

/* Parses one CSV record starting at *pos. Fills fs; advances *pos and *line past the record.
 * Returns TB_OK, or TB_ERR with a message (the record is then skipped to the end of its first
 * physical line, so one broken quote does not swallow the rest of the file). */
static int csv_record(const char *t, size_t len, size_t *pos, int *line, fields *fs) {
  size_t i = *pos;
  int start_line = *line;
  fields_clear(fs);
  char *buf = xmalloc(len - i + 1);
  size_t bn = 0;
  for (;;) {
    bn = 0;
    if (i < len && t[i] == '"') {
      i++;
      int closed = 0;
      while (i < len) {
        if (t[i] == '"') {
          if (i + 1 < len && t[i + 1] == '"') {
            buf[bn++] = '"';
            i += 2;
            continue;
          }
          i++;
          closed = 1;
          break;
        }
        if (t[i] == '\n') (*line)++;
        if (t[i] == 0) goto broken_nul;
        buf[bn++] = t[i++];
      }
      if (!closed) goto broken_unterminated;
      if (i < len && t[i] == '\r') i++;
      if (i < len && t[i] != ',' && t[i] != '\n') goto broken_after;
    } else {
      while (i < len && t[i] != ',' && t[i] != '\n') {
        if (t[i] == '"') goto broken_stray;
        if (t[i] == 0) goto broken_nul;
        buf[bn++] = t[i++];
      }
      if (bn > 0 && buf[bn - 1] == '\r') bn--;
    }
    fields_push(fs, buf, bn);
    if (i >= len) break;
    if (t[i] == ',') {
      i++;
      continue;
    }
    /* newline ends the record */
    i++;
    (*line)++;
    break;
  }
  free(buf);
  *pos = i;
  return TB_OK;

broken_unterminated:
  free(buf);
  err_set("line %d: unterminated quoted field", start_line);
  goto skip;
broken_after:
  free(buf);
  err_set("line %d: text after a closing quote (broken quoting)", start_line);
  goto skip;
broken_stray:
  free(buf);
  err_set("line %d: stray quote inside an unquoted field (broken quoting)", start_line);
  goto skip;
broken_nul:
  free(buf);
  err_set("line %d: NUL byte inside field %d (a binary file, or a caption cut by a NUL)",
          start_line, fs->n + 1);
skip:
  /* Resume after the first physical line of the record. */
  i = *pos;
  while (i < len && t[i] != '\n') i++;
  if (i < len) i++;
  *pos = i;
  *line = start_line + 1;
  return TB_ERR;
}

static int is_blank(const fields *fs) {
  return fs->n == 0 || (fs->n == 1 && fs->f[0][0] == 0);
}

static int parse_csv(const char *t, size_t len, manifest *m) {
  size_t pos = 0;
  int line = 1;
  fields hdr = {0}, row = {0};
  if (len >= 3 && (unsigned char)t[0] == 0xEF && (unsigned char)t[1] == 0xBB &&
      (unsigned char)t[2] == 0xBF)
    pos = 3; /* UTF-8 byte order mark */
  /* Header: the first non-blank record. */
  for (;;) {
    if (pos >= len) {
      free(hdr.f);
      return err_set("manifest is empty (no header line)");
    }
    if (csv_record(t, len, &pos, &line, &hdr) != TB_OK) {
      fields_clear(&hdr);
      free(hdr.f);
      return err_wrap("manifest header: ");
    }
    if (!is_blank(&hdr)) break;
  }
  int cp = find_key(k_path_keys, hdr.f, hdr.n), cc = find_key(k_caption_keys, hdr.f, hdr.n),
      ci = find_key(k_id_keys, hdr.f, hdr.n), cs = find_key(k_short_keys, hdr.f, hdr.n);
  if (cp < 0 || cc < 0) {
    int rc = err_set("manifest header lacks a %s column (want one of: path, video, file, "
                     "contentUrl … and caption, name, text …)",
                     cp < 0 ? "video path" : "caption");
    fields_clear(&hdr);
    free(hdr.f);
    return rc;
  }
  while (pos < len) {
    int rline = line;
    if (csv_record(t, len, &pos, &line, &row) != TB_OK) {
      add_issue(m, rline, NULL, "%s", err_get());
      continue;
    }
    if (is_blank(&row)) continue;
    if (row.n != hdr.n) {
      add_issue(m, rline, row.n > cp ? row.f[cp] : NULL,
                "line %d: %d fields, the header has %d", rline, row.n, hdr.n);
      continue;
    }
    add_row(m, rline, ci >= 0 ? row.f[ci] : NULL, row.f[cp], row.f[cc], cs >= 0 ? row.f[cs] : NULL);
  }
  fields_clear(&hdr);
  fields_clear(&row);
  free(hdr.f);
  free(row.f);
  return TB_OK;
}

/* ---- JSONL -------------------------------------------------------------------------- */

static const json_value *jget_any(const json_value *o, const char **keys) {
  for (int k = 0; keys[k]; k++)
    for (size_t i = 0; i < o->count; i++)
      if (strcasecmp(o->keys[i], keys[k]) == 0) return &o->items[i];
  return NULL;
}

static int parse_jsonl(const char *t, size_t len, manifest *m) {
  size_t pos = 0;
  int line = 0;
  while (pos < len) {
    line++;
    size_t e = pos;
    while (e < len && t[e] != '\n') e++;
    size_t s = pos, n = e - pos;
    pos = e < len ? e + 1 : e;
    while (n > 0 && (t[s + n - 1] == '\r' || t[s + n - 1] == ' ' || t[s + n - 1] == '\t')) n--;
    while (n > 0 && (t[s] == ' ' || t[s] == '\t')) {
      s++;
      n--;
    }
    if (n == 0) continue;
    if (!utf8_valid(t + s, n)) {
      add_issue(m, line, NULL, "line %d: not valid UTF-8", line);
      continue;
    }
    json_value *v = json_parse(t + s, n, NULL);
    if (!v) {
      add_issue(m, line, NULL, "line %d: bad JSON: %s", line, err_get());
      continue;
    }
    if (v->type != JSON_OBJECT) {
      add_issue(m, line, NULL, "line %d: expected a JSON object, got %s", line,
                json_type_name(v->type));
      json_free(v);
      continue;
    }
    const json_value *p = jget_any(v, k_path_keys), *c = jget_any(v, k_caption_keys),
                     *id = jget_any(v, k_id_keys), *sc = jget_any(v, k_short_keys);
    char idbuf[64];
    const char *ids = NULL;
    if (id && id->type == JSON_STRING) ids = id->string;
    if (id && id->type == JSON_NUMBER) {
      snprintf(idbuf, sizeof idbuf, "%lld", (long long)id->integer);
      ids = idbuf;
    }
    if (!p || p->type != JSON_STRING) {
      add_issue(m, line, NULL, "line %d: missing string field 'path' (or video, file …)", line);
    } else if (!c || c->type != JSON_STRING) {
      add_issue(m, line, p->string, "line %d: missing string field 'caption' (or text, name …)",
                line);
    } else if (strlen(c->string) != c->len || strlen(p->string) != p->len) {
      add_issue(m, line, p->string, "line %d: NUL character inside a string", line);
    } else {
      add_row(m, line, ids, p->string, c->string,
              sc && sc->type == JSON_STRING && strlen(sc->string) == sc->len ? sc->string : NULL);
    }
    json_free(v);
  }
  return TB_OK;
}

/* Rows whose keys repeat: the first row wins, later ones become issues naming the first row's
 * line (`what` says how they are the same). One pass over the rows in file order with a hash
 * set of the keys seen (open addressing, at most half full): linear in the number of rows,
 * however many repeat. keys[i] belongs to rows[i]; NULL keys never repeat. */
static void drop_repeated(manifest *m, char **keys, const char *what) {
  if (m->n < 2) return;
  size_t cap = 16;
  while (cap < 2 * (size_t)m->n) cap <<= 1;
  int *slot = xmalloc(sizeof(int) * cap); /* row index, -1 empty */
  for (size_t i = 0; i < cap; i++) slot[i] = -1;
  int w = 0;
  for (int i = 0; i < m->n; i++) {
    manifest_row *r = &m->rows[i];
    char *key = keys[i];
    int first = -1;
    size_t h = 0;
    if (key) {
      h = (size_t)checksum64(key, strlen(key)) & (cap - 1);
      while (slot[h] >= 0) {
        if (strcmp(keys[slot[h]], key) == 0) {
          first = slot[h];
          break;
        }
        h = (h + 1) & (cap - 1);
      }
    }
    if (first < 0) {
      m->rows[w] = *r; /* kept rows move down in order; w <= i */
      keys[w] = key;
      if (key) slot[h] = w;
      w++;
      continue;
    }
    if (strcmp(m->rows[first].path, r->path) == 0)
      add_issue(m, r->line, NULL, "line %d: duplicate of line %d (%s); ignored", r->line,
                m->rows[first].line, r->path);
    else
      add_issue(m, r->line, NULL, "line %d: %s as line %d ('%s' and '%s'); ignored", r->line,
                what, m->rows[first].line, r->path, m->rows[first].path);
    free(key);
    free(r->id);
    free(r->path);
    free(r->caption);
    free(r->short_caption);
  }
  m->n = w;
  free(slot);
}

static void drop_duplicates(manifest *m) {
  char **keys = xmalloc(sizeof(char *) * (size_t)(m->n + 1));
  for (int i = 0; i < m->n; i++) keys[i] = xstrdup(m->rows[i].path);
  drop_repeated(m, keys, "the same path");
  for (int i = 0; i < m->n; i++) free(keys[i]);
  free(keys);
}

/* The file a relative path names, as one string per file: the real path (symlinks and "./"
 * resolved) when it exists, else the lexically normalised path ("./a//b" -> "a/b"). */
static char *file_key(const char *root, const char *rel) {
  char full[PATH_MAX], real[PATH_MAX];
  if (rel[0] != '/' && fs_join(full, sizeof full, root, rel) && realpath(full, real))
    return xstrdup(real);
  size_t n = strlen(rel);
  char *k = xmalloc(n + 2), *o = k;
  const char *p = rel;
  while (*p) {
    while (*p == '/') p++;
    const char *e = p;
    while (*e && *e != '/') e++;
    size_t len = (size_t)(e - p);
    if (len == 1 && p[0] == '.') {
      p = e;
      continue;
    }
    if (len == 0) break;
    if (o != k) *o++ = '/';
    memcpy(o, p, len);
    o += len;
    p = e;
  }
  *o = 0;
  return k;
}

void manifest_dedupe_files(manifest *m, const char *root) {
  char **keys = xmalloc(sizeof(char *) * (size_t)(m->n + 1));
  for (int i = 0; i < m->n; i++) keys[i] = file_key(root, m->rows[i].path);
  drop_repeated(m, keys, "the same file");
  for (int i = 0; i < m->n; i++) free(keys[i]);
  free(keys);
}

int manifest_parse(const char *text, size_t len, int is_jsonl, manifest *m) {
  memset(m, 0, sizeof *m);
  int rc = is_jsonl ? parse_jsonl(text, len, m) : parse_csv(text, len, m);
  if (rc == TB_OK) drop_duplicates(m);
  return rc;
}

int manifest_read(const char *path, manifest *m) {
  memset(m, 0, sizeof *m);
  char *data;
  size_t len;
  if (fs_read_all(path, &data, &len) != TB_OK) return err_wrap("manifest %s: ", path);
  size_t pl = strlen(path);
  int jsonl = (pl > 6 && strcmp(path + pl - 6, ".jsonl") == 0) ||
              (pl > 5 && strcmp(path + pl - 5, ".json") == 0);
  int rc = manifest_parse(data, len, jsonl, m);
  free(data);
  if (rc != TB_OK) return err_wrap("manifest %s: ", path);
  return TB_OK;
}

void manifest_free(manifest *m) {
  for (int i = 0; i < m->n; i++) {
    free(m->rows[i].id);
    free(m->rows[i].path);
    free(m->rows[i].caption);
    free(m->rows[i].short_caption);
  }
  for (int i = 0; i < m->nissues; i++) {
    free(m->issues[i].path);
    free(m->issues[i].reason);
  }
  free(m->rows);
  free(m->issues);
  memset(m, 0, sizeof *m);
}

/* stages/curate/manifest.h — reading a corpus manifest: CSV (RFC 4180, WebVid-like columns) or
 * JSON Lines (one object per line). Format by extension (.jsonl/.json → JSONL, else CSV).
 *
 * Columns/keys, first match wins (case-insensitive):
 *   path:    path, video, video_path, file, filename, contentUrl, url
 *   caption: caption, name, text, title, prompt
 *   id:      videoid, video_id, id, clip_id   (optional; the path when absent)
 *   short caption: short_caption, caption_short (optional)
 * Extra columns are ignored. Paths are relative to the data root.
 *
 * A bad row never stops the read: it becomes a manifest_issue naming the line (1-based, the
 * first line of the record) and the problem — wrong field count, broken quoting, empty path,
 * caption that is not valid UTF-8, JSON that does not parse, a path named a second time — and
 * the other rows are kept.
 * Only a manifest without a usable header (no path or caption column) fails as a whole.
 */
#ifndef TURBO_CURATE_MANIFEST_H
#define TURBO_CURATE_MANIFEST_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int line;
  char *id;
  char *path;
  char *caption;
  char *short_caption; /* NULL when the manifest has none */
} manifest_row;

typedef struct {
  int line;
  char *path;    /* the row's path when one could be read, else NULL */
  char *reason;
} manifest_issue;

typedef struct {
  manifest_row *rows;
  int n, cap;
  manifest_issue *issues;
  int nissues, icap;
} manifest;

/* Reads `path` into *m (caller frees with manifest_free, also on TB_ERR). TB_ERR + err_get()
 * when the file cannot be read or has no usable header. */
int manifest_read(const char *path, manifest *m);
/* Parses text already in memory; `is_jsonl` picks the format. Same contract. */
int manifest_parse(const char *text, size_t len, int is_jsonl, manifest *m);
void manifest_free(manifest *m);

/* Rows that name one file under two paths ("./a.mp4" and "a.mp4", a symlink inside the root
 * and its target) keep the first row; the others become issues "line N: the same file as line
 * M". Paths are resolved against `root` (files that do not exist compare lexically). */
void manifest_dedupe_files(manifest *m, const char *root);

/* 1 when the n bytes at s are valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int utf8_valid(const char *s, size_t n);

#ifdef __cplusplus
}
#endif
#endif

/* common/fsutil.h — files and folders the crash-safe way.
 *
 * Files that must survive a crash (checkpoints, shards, manifests) are written with
 * fs_write_atomic or an fs_atomic handle: write to "PATH.tmp.PID", fsync, rename over PATH,
 * fsync the directory. A reader never sees half a file. All return TB_OK or TB_ERR + err_get().
 */
#ifndef TURBO_FSUTIL_H
#define TURBO_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

int fs_mkdir_p(const char *path);                 /* like mkdir -p; ok if it exists */
int fs_exists(const char *path);                  /* 1 if path exists (any type) */
int fs_is_dir(const char *path);
int64_t fs_size(const char *path);                /* -1 (and err) if it cannot be stat'ed */
/* Reads a whole file into a NUL-terminated buffer (caller frees); *len gets the size. */
int fs_read_all(const char *path, char **data, size_t *len);
int fs_write_atomic(const char *path, const void *data, size_t len);
int fs_fsync_dir(const char *dir);

/* Streaming atomic write: open → fwrite(fs_atomic_file(a)) … → commit (or abort). */
typedef struct fs_atomic fs_atomic;
fs_atomic *fs_atomic_open(const char *path); /* NULL + err on failure */
FILE *fs_atomic_file(fs_atomic *a);
int fs_atomic_commit(fs_atomic *a);  /* flush, fsync, rename, fsync dir; frees a */
void fs_atomic_abort(fs_atomic *a);  /* removes the temporary; frees a */

/* Joins a and b with one '/' into buf (size n); returns buf, or NULL when it does not fit. */
char *fs_join(char *buf, size_t n, const char *a, const char *b);
/* Directory part of path into buf ("." when none). */
char *fs_dirname(char *buf, size_t n, const char *path);
/* Resolves `rel` against `root` and checks the result stays inside root (no "..", no symlink
 * escape when the file exists). Writes the joined path into buf. TB_ERR names the problem. */
int fs_path_inside(const char *root, const char *rel, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif

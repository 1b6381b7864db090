/* common/fsutil.c — see fsutil.h. */
#include "common/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

int fs_mkdir_p(const char *path) {
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) return err_set("path too long: %s", path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return err_set("mkdir %s: %s", tmp, strerror(errno));
    *p = '/';
  }
  if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return err_set("mkdir %s: %s", tmp, strerror(errno));
  if (!fs_is_dir(tmp)) return err_set("%s exists and is not a directory", tmp);
  return TB_OK;
}

int fs_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

int fs_is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int64_t fs_size(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    err_set("%s: %s", path, strerror(errno));
    return -1;
  }
  return (int64_t)st.st_size;
}

int fs_read_all(const char *path, char **data, size_t *len) {
  *data = NULL;
  if (len) *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return err_set("%s: %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  char *buf = xmalloc(cap + 1);
  for (;;) {
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (n < cap) break;
    cap *= 2;
    buf = xrealloc(buf, cap + 1);
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return err_set("%s: read error", path);
  }
  buf[n] = 0;
  *data = buf;
  if (len) *len = n;
  return TB_OK;
}

char *fs_dirname(char *buf, size_t n, const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash)
    snprintf(buf, n, ".");
  else if (slash == path)
    snprintf(buf, n, "/");
  else
    snprintf(buf, n, "%.*s", (int)(slash - path), path);
  return buf;
}

int fs_fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return err_set("open dir %s: %s", dir, strerror(errno));
  int rc = fsync(fd);
  close(fd);
  return rc == 0 ? TB_OK : err_set("fsync dir %s: %s", dir, strerror(errno));
}

struct fs_atomic {
  FILE *f;
  char path[PATH_MAX], tmp[PATH_MAX + 32];
};

fs_atomic *fs_atomic_open(const char *path) {
  fs_atomic *a = xcalloc(1, sizeof *a);
  snprintf(a->path, sizeof a->path, "%s", path);
  snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%d", path, (int)getpid());
  a->f = fopen(a->tmp, "wb");
  if (!a->f) {
    err_set("create %s: %s", a->tmp, strerror(errno));
    free(a);
    return NULL;
  }
  return a;
}

FILE *fs_atomic_file(fs_atomic *a) { return a->f; }

int fs_atomic_commit(fs_atomic *a) {
  int rc = TB_OK;
  if (fflush(a->f) != 0 || ferror(a->f)) rc = err_set("write %s: %s", a->tmp, strerror(errno));
  if (rc == TB_OK && fsync(fileno(a->f)) != 0) rc = err_set("fsync %s: %s", a->tmp, strerror(errno));
  if (fclose(a->f) != 0 && rc == TB_OK) rc = err_set("close %s: %s", a->tmp, strerror(errno));
  if (rc == TB_OK && rename(a->tmp, a->path) != 0)
    rc = err_set("rename %s -> %s: %s", a->tmp, a->path, strerror(errno));
  if (rc != TB_OK) {
    unlink(a->tmp);
  } else {
    char dir[PATH_MAX];
    rc = fs_fsync_dir(fs_dirname(dir, sizeof dir, a->path));
  }
  free(a);
  return rc;
}

void fs_atomic_abort(fs_atomic *a) {
  if (!a) return;
  fclose(a->f);
  unlink(a->tmp);
  free(a);
}

int fs_write_atomic(const char *path, const void *data, size_t len) {
  fs_atomic *a = fs_atomic_open(path);
  if (!a) return TB_ERR;
  if (len && fwrite(data, 1, len, a->f) != len) {
    err_set("write %s: %s", path, strerror(errno));
    fs_atomic_abort(a);
    return TB_ERR;
  }
  return fs_atomic_commit(a);
}

char *fs_join(char *buf, size_t n, const char *a, const char *b) {
  size_t la = strlen(a);
  int w;
  if (la == 0 || b[0] == '/')
    w = snprintf(buf, n, "%s", b);
  else
    w = snprintf(buf, n, "%s%s%s", a, a[la - 1] == '/' ? "" : "/", b);
  return (w < 0 || (size_t)w >= n) ? NULL : buf;
}

int fs_path_inside(const char *root, const char *rel, char *buf, size_t n) {
  if (!rel || !rel[0]) return err_set("empty path");
  if (rel[0] == '/') return err_set("absolute path '%s' is not allowed (paths are relative to %s)", rel, root);
  /* Lexical check: no component may be "..". */
  const char *p = rel;
  while (*p) {
    const char *e = strchr(p, '/');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == 2 && p[0] == '.' && p[1] == '.')
      return err_set("path '%s' leaves the data root %s ('..')", rel, root);
    if (!e) break;
    p = e + 1;
  }
  if (!fs_join(buf, n, root, rel)) return err_set("path too long: %s/%s", root, rel);
  /* Symlink check when the file exists: its real path must start with the root's. */
  char rroot[PATH_MAX], rfile[PATH_MAX];
  if (realpath(buf, rfile) && realpath(root, rroot)) {
    size_t lr = strlen(rroot);
    if (strncmp(rfile, rroot, lr) != 0 || (rfile[lr] != '/' && rfile[lr] != 0))
      return err_set("path '%s' resolves to %s, outside the data root %s", rel, rfile, rroot);
  }
  return TB_OK;
}

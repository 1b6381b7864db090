/* stages/eval/score.c — scoring videos: frames in, one result JSON per video out, by worker
 * processes, with the results kept in the catalogue (eval_videos) so that a rerun scores only
 * what is new.
 *
 * Workers: fork()ed after the item list is built; each takes the next item index from a shared
 * counter (mmap), scores it and writes a frame [u32 index][u32 length][JSON] to its own pipe.
 * Only the parent touches the catalogue and the progress display. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include "common/catalogue.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/tensor.h"
#include "common/video_dec.h"
#include "stages/eval/eval.h"

/* Bump when the scoring of an unchanged video would change (reader, measures, result form):
 * cached results under the old version are then not reused. */
#define EVAL_SCORER_VERSION 1
#define CACHE_BATCH 256 /* results per catalogue transaction */

eval_item *eval_items_add(eval_items *it) {
  if (it->n == it->cap) {
    it->cap = it->cap ? 2 * it->cap : 256;
    it->v = xrealloc(it->v, (size_t)it->cap * sizeof *it->v);
  }
  eval_item *e = &it->v[it->n++];
  memset(e, 0, sizeof *e);
  return e;
}

void eval_items_free(eval_items *it) {
  for (int i = 0; i < it->n; i++) {
    eval_item *e = &it->v[i];
    free(e->path), free(e->name), free(e->prompt_key), free(e->prompt_text);
    free(e->found), free(e->reasons), free(e->error);
  }
  free(it->v);
  memset(it, 0, sizeof *it);
}

/* ---- frames ---------------------------------------------------------------------------------- */

static int read_span(const char *path, int64_t off, int64_t n, uint8_t *buf) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return err_set("%s: %s", path, strerror(errno));
  int64_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, buf + got, (size_t)(n - got), (off_t)(off + got));
    if (r <= 0) {
      close(fd);
      return err_set("%s: short read at byte %lld (%s)", path, (long long)(off + got),
                     r < 0 ? strerror(errno) : "end of file");
    }
    got += r;
  }
  close(fd);
  return TB_OK;
}

int eval_item_frames(const eval_item *e, int max_frames, uint8_t **rgb, int *T, int *H, int *W,
                     double *fps) {
  *rgb = NULL;
  if (e->nbytes > 0) {
    int t = e->T;
    if (max_frames > 0 && t > max_frames) t = max_frames;
    int64_t need = (int64_t)t * e->H * e->W * 3;
    if ((int64_t)e->T * e->H * e->W * 3 != e->nbytes)
      return err_set("%s: tensor of %lld bytes does not hold (%d, %d, %d, 3) u8", e->name,
                     (long long)e->nbytes, e->T, e->H, e->W);
    uint8_t *b = xmalloc((size_t)need);
    if (read_span(e->path, e->offset, need, b) != TB_OK) {
      free(b);
      return TB_ERR;
    }
    *rgb = b, *T = t, *H = e->H, *W = e->W, *fps = e->fps;
    return TB_OK;
  }
  video_probe_info pi;
  if (video_probe(e->path, &pi) != TB_OK) return err_set("%s: %s", e->name, err_get());
  video_dec_opts o = video_dec_opts_default();
  o.fps = 0; /* every frame, at the video's own rate and size, as VBench reads them */
  o.width = pi.width & ~1;
  o.height = pi.height & ~1;
  o.max_frames = max_frames;
  if (o.width < 8 || o.height < 8)
    return err_set("%s: %dx%d is too small to score (8x8 at least)", e->name, pi.width,
                   pi.height);
  video_frames f;
  if (video_decode_rgb(e->path, &o, &f) != TB_OK) return err_set("%s: %s", e->name, err_get());
  double r = pi.fps > 0 ? pi.fps : 8;
  if (f.n < 2) {
    video_frames_free(&f);
    return err_set("%s: %d frame(s) decoded; scoring needs at least 2", e->name, f.n);
  }
  *rgb = f.rgb;
  f.rgb = NULL;
  *T = f.n, *H = f.h, *W = f.w, *fps = r;
  video_frames_free(&f);
  return TB_OK;
}

/* ---- one video ----------------------------------------------------------------------------- */

/* One line on what the reader found: "navy, pan none; large red circle moving left (fast)". */
static void describe_read(const world_read *r, json_buf *b) {
  const world_attr_status *st = r->st;
  json_buf_printf(b, "%s",
                  st[WORLD_ATTR_BACKGROUND].status == WORLD_OK
                      ? scene_bg_name((scene_bg)r->value[WORLD_ATTR_BACKGROUND])
                      : "background ?");
  if (st[WORLD_ATTR_PAN].status == WORLD_OK && r->value[WORLD_ATTR_PAN] != SCENE_PAN_NONE)
    json_buf_printf(b, ", pan %s", scene_pan_name((scene_pan)r->value[WORLD_ATTR_PAN]));
  else if (st[WORLD_ATTR_PAN].status == WORLD_FAIL)
    json_buf_puts(b, ", pan ?");
  if (r->n_objects == 0) json_buf_puts(b, "; no object");
  for (int i = 0; i < r->n_objects && i < 3; i++) {
    const world_object_read *o = &r->obj[i];
    json_buf_puts(b, i ? "; " : "; ");
    if (o->st[WORLD_ATTR_SIZE].status == WORLD_OK)
      json_buf_printf(b, "%s ", scene_size_name((scene_size)o->value[WORLD_ATTR_SIZE]));
    json_buf_printf(b, "%s %s",
                    o->st[WORLD_ATTR_COLOUR].status == WORLD_OK
                        ? scene_colour_name((scene_colour)o->value[WORLD_ATTR_COLOUR])
                        : "?",
                    o->st[WORLD_ATTR_SHAPE].status == WORLD_OK
                        ? scene_shape_name((scene_shape)o->value[WORLD_ATTR_SHAPE])
                        : "shape?");
    if (o->st[WORLD_ATTR_MOTION].status == WORLD_OK) {
      int m = o->value[WORLD_ATTR_MOTION];
      if (m == SCENE_MOTION_STILL)
        json_buf_puts(b, " still");
      else
        json_buf_printf(b, " %s%s%s", scene_motion_name((scene_motion)m),
                        o->st[WORLD_ATTR_SPEED].status == WORLD_OK ? " " : "",
                        o->st[WORLD_ATTR_SPEED].status == WORLD_OK
                            ? scene_speed_name((scene_speed)o->value[WORLD_ATTR_SPEED])
                            : "");
    } else {
      json_buf_puts(b, " motion?");
    }
  }
  if (r->n_objects > 3) json_buf_printf(b, "; +%d more", r->n_objects - 3);
  if (st[WORLD_ATTR_RELATION].status == WORLD_OK)
    json_buf_printf(b, "; first %s second",
                    scene_relation_name((scene_relation)r->value[WORLD_ATTR_RELATION]));
}

int eval_score_frames(eval_ctx *c, const uint8_t *rgb, int T, int H, int W, double fps,
                      const world_spec *truth, uint32_t dims, json_buf *out) {
  double value[EVAL_DIM_COUNT] = {0}, weight[EVAL_DIM_COUNT] = {0};
  const char *reason[EVAL_DIM_COUNT] = {0};
  uint32_t qmask = 0;
  for (int d = 0; d < EVAL_QUALITY_COUNT; d++) qmask |= EVAL_BIT(d);
  eval_quality q;
  if (dims & qmask) {
    if (eval_quality_video(c, rgb, T, H, W, fps, &q) != TB_OK) return TB_ERR;
    for (int d = 0; d < EVAL_QUALITY_COUNT; d++)
      if (dims & EVAL_BIT(d)) value[d] = q.value[d], weight[d] = q.weight[d];
  }
  world_read r;
  int have_read = 0;
  eval_semantic sem;
  if (truth && (dims & ~qmask)) {
    if (world_read_video_u8(rgb, T, H, W, fps, NULL, &r) != TB_OK) return TB_ERR;
    have_read = 1;
    if (eval_semantic_video(&r, truth, &sem) != TB_OK) {
      world_read_free(&r);
      return TB_ERR;
    }
    for (int d = EVAL_QUALITY_COUNT; d < EVAL_DIM_COUNT; d++) {
      if (!(dims & EVAL_BIT(d))) continue;
      if (sem.status[d] == WORLD_OK) value[d] = sem.value[d], weight[d] = 1;
      if (sem.reason[d][0]) reason[d] = sem.reason[d];
    }
  }
  json_buf_printf(out, "{\"v\":%d,\"frames\":%d,\"width\":%d,\"height\":%d,\"fps\":",
                  EVAL_SCORER_VERSION, T, W, H);
  json_buf_put_number(out, fps);
  json_buf_puts(out, ",\"values\":{");
  int first = 1;
  for (int d = 0; d < EVAL_DIM_COUNT; d++) {
    if (weight[d] <= 0) continue;
    json_buf_printf(out, "%s\"%s\":", first ? "" : ",", eval_dim_name((eval_dim)d));
    json_buf_put_number(out, value[d]);
    first = 0;
  }
  json_buf_puts(out, "},\"weights\":{");
  first = 1;
  for (int d = 0; d < EVAL_DIM_COUNT; d++) {
    if (weight[d] <= 0) continue;
    json_buf_printf(out, "%s\"%s\":", first ? "" : ",", eval_dim_name((eval_dim)d));
    json_buf_put_number(out, weight[d]);
    first = 0;
  }
  json_buf_puts(out, "},\"reasons\":{");
  first = 1;
  for (int d = 0; d < EVAL_DIM_COUNT; d++) {
    if (!reason[d]) continue;
    json_buf_printf(out, "%s\"%s\":", first ? "" : ",", eval_dim_name((eval_dim)d));
    json_buf_put_string(out, reason[d], strlen(reason[d]));
    first = 0;
  }
  json_buf_puts(out, "}");
  if (dims & qmask)
    json_buf_printf(out, ",\"sharpness\":%.4f,\"noise_sigma\":%.3f,\"palette_fit\":%.4f",
                    q.sharpness, q.noise_sigma, q.palette_fit);
  if (have_read) {
    json_buf found = {0};
    describe_read(&r, &found);
    json_buf_puts(out, ",\"found\":");
    json_buf_put_string(out, found.data, found.len);
    json_buf_free(&found);
    json_buf_puts(out, ",\"read\":");
    world_read_json_put(out, &r);
    world_read_free(&r);
  }
  json_buf_puts(out, "}");
  return TB_OK;
}

int eval_item_set_result(eval_item *e, const char *json, size_t len) {
  json_value *v = json_parse(json, len, NULL);
  if (!v) return TB_ERR;
  int rc = TB_ERR;
  const json_value *err = json_get(v, "error");
  if (err && err->type == JSON_STRING) {
    free(e->error);
    e->error = xstrdup(err->string);
    e->state = 2;
    rc = TB_OK;
    goto out;
  }
  const json_value *vals = json_get(v, "values"), *ws = json_get(v, "weights");
  if (!vals || vals->type != JSON_OBJECT || !ws || ws->type != JSON_OBJECT) {
    err_set("result without values/weights");
    goto out;
  }
  for (int d = 0; d < EVAL_DIM_COUNT; d++) e->value[d] = 0, e->weight[d] = 0;
  for (size_t i = 0; i < vals->count; i++) {
    int d = eval_dim_from_name(vals->keys[i]);
    const json_value *w = json_get(ws, vals->keys[i]);
    if (d < 0 || vals->items[i].type != JSON_NUMBER || !w || w->type != JSON_NUMBER) continue;
    e->value[d] = vals->items[i].number;
    e->weight[d] = w->number;
  }
  int64_t x;
  if (json_get_int64(v, "frames", &x) == TB_OK) e->frames = (int)x;
  if (json_get_int64(v, "width", &x) == TB_OK) e->width = (int)x;
  if (json_get_int64(v, "height", &x) == TB_OK) e->height = (int)x;
  double f;
  if (json_get_number(v, "fps", &f) == TB_OK) e->vfps = f;
  const json_value *fo = json_get(v, "found");
  free(e->found);
  e->found = fo && fo->type == JSON_STRING ? xstrdup(fo->string) : NULL;
  const json_value *rs = json_get(v, "reasons");
  free(e->reasons);
  e->reasons = NULL;
  if (rs && rs->type == JSON_OBJECT && rs->count) {
    json_buf b = {0};
    json_buf_put_value(&b, rs);
    e->reasons = b.data;
  }
  e->state = 1;
  rc = TB_OK;
out:
  json_free(v);
  return rc;
}

void eval_items_keys(eval_items *it) {
  for (int i = 0; i < it->n; i++) {
    eval_item *e = &it->v[i];
    uint64_t content = 0;
    if (e->nbytes > 0) {
      uint8_t *b = xmalloc((size_t)e->nbytes);
      content = read_span(e->path, e->offset, e->nbytes, b) == TB_OK
                    ? checksum64(b, (size_t)e->nbytes)
                    : checksum64(e->name, strlen(e->name));
      free(b);
    } else {
      char *data = NULL;
      size_t len = 0;
      content = fs_read_all(e->path, &data, &len) == TB_OK ? checksum64(data, len)
                                                            : checksum64(e->name, strlen(e->name));
      free(data);
    }
    uint64_t th = e->have_truth ? checksum64(&e->truth, sizeof e->truth) : 0;
    snprintf(e->key, sizeof e->key, "v%d-%016llx-%016llx-%08x", EVAL_SCORER_VERSION,
             (unsigned long long)content, (unsigned long long)th, (unsigned)e->dims);
  }
}

/* ---- workers -------------------------------------------------------------------------------- */

/* Scores item e into out (the result JSON, or {"error": …} for an unreadable video). */
static void score_one(eval_ctx *c, const eval_item *e, int max_frames, json_buf *out) {
  uint8_t *rgb = NULL;
  int T = 0, H = 0, W = 0;
  double fps = 0;
  if (eval_item_frames(e, max_frames, &rgb, &T, &H, &W, &fps) != TB_OK ||
      eval_score_frames(c, rgb, T, H, W, fps, e->have_truth ? &e->truth : NULL, e->dims, out) !=
          TB_OK) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", err_get());
    out->len = 0;
    if (out->data) out->data[0] = 0;
    json_buf_puts(out, "{\"error\":");
    json_buf_put_string(out, msg, strlen(msg));
    json_buf_puts(out, "}");
  }
  free(rgb);
}

static int write_full(int fd, const void *p, size_t n) {
  const char *b = p;
  while (n) {
    ssize_t w = write(fd, b, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return TB_ERR;
    b += w, n -= (size_t)w;
  }
  return TB_OK;
}

typedef struct {
  int fd;
  pid_t pid;
  char *buf;
  size_t len, cap;
  int open;
} worker_pipe;

/* Takes a result (index, JSON) into the item, the cache batch and the progress. */
static void take_result(eval_items *it, catalogue *cat, int idx, const char *json, size_t len,
                        int *batch, progress *prog, int *n_failed) {
  eval_item *e = &it->v[idx];
  if (eval_item_set_result(e, json, len) != TB_OK) {
    e->state = 2;
    free(e->error);
    e->error = xstrdup("scorer returned a malformed result");
  }
  if (e->state == 2) {
    log_warn("eval: %s: not scored: %s", e->name, e->error);
    (*n_failed)++;
  } else if (cat) {
    if (*batch == 0) catalogue_begin(cat);
    if (catalogue_eval_video_put(cat, e->key, e->name, json) != TB_OK)
      log_warn("eval: cache %s: %s", e->name, err_get());
    if (++*batch >= CACHE_BATCH) {
      if (catalogue_commit(cat) != TB_OK) log_warn("eval: cache commit: %s", err_get());
      *batch = 0;
    }
  }
  progress_add(prog, 1);
}

int eval_score_items(eval_items *it, catalogue *cat, const eval_score_opts *o, int *n_new,
                     int *n_cached, int *n_failed) {
  int cached = 0, failed = 0;
  int *todo = xmalloc(sizeof(int) * (size_t)(it->n + 1));
  int ntodo = 0;
  for (int i = 0; i < it->n; i++) {
    eval_item *e = &it->v[i];
    char *res = NULL;
    if (cat && !o->rescore && catalogue_eval_video_get(cat, e->key, &res) == 1 &&
        eval_item_set_result(e, res, strlen(res)) == TB_OK && e->state == 1) {
      e->cached = 1;
      cached++;
      free(res);
      continue;
    }
    free(res);
    e->state = 0;
    todo[ntodo++] = i;
  }
  log_info("eval: %d video(s): %d cached, %d to score with %d worker(s)", it->n, cached, ntodo,
           o->workers);
  progress *prog = progress_new("eval", ntodo, "videos");
  int batch = 0, rc = TB_OK;
  int workers = o->workers < 1 ? 1 : o->workers;
  if (workers > ntodo) workers = ntodo > 0 ? ntodo : 1;
  if (ntodo == 0) {
    /* nothing to do */
  } else if (workers == 1) {
    eval_ctx *c = eval_ctx_new();
    json_buf b = {0};
    for (int k = 0; k < ntodo; k++) {
      b.len = 0;
      score_one(c, &it->v[todo[k]], o->max_frames, &b);
      take_result(it, cat, todo[k], b.data, b.len, &batch, prog, &failed);
    }
    json_buf_free(&b);
    eval_ctx_free(c);
  } else {
    int64_t *next = mmap(NULL, sizeof(int64_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                         -1, 0);
    if (next == MAP_FAILED) {
      free(todo);
      progress_free(prog);
      return err_set("eval: mmap: %s", strerror(errno));
    }
    *next = 0;
    worker_pipe *wp = xcalloc((size_t)workers, sizeof *wp);
    fflush(NULL);
    for (int w = 0; w < workers; w++) {
      int fds[2];
      if (pipe(fds) != 0) {
        rc = err_set("eval: pipe: %s", strerror(errno));
        break;
      }
      pid_t pid = fork();
      if (pid < 0) {
        close(fds[0]), close(fds[1]);
        rc = err_set("eval: fork: %s", strerror(errno));
        break;
      }
      if (pid == 0) {
        close(fds[0]);
        for (int j = 0; j < w; j++) close(wp[j].fd);
        eval_ctx *c = eval_ctx_new();
        json_buf b = {0};
        for (;;) {
          int64_t k = __atomic_fetch_add(next, 1, __ATOMIC_SEQ_CST);
          if (k >= ntodo) break;
          b.len = 0;
          score_one(c, &it->v[todo[k]], o->max_frames, &b);
          uint32_t hdr[2] = {(uint32_t)todo[k], (uint32_t)b.len};
          if (write_full(fds[1], hdr, sizeof hdr) != TB_OK ||
              write_full(fds[1], b.data, b.len) != TB_OK)
            _exit(1);
        }
        json_buf_free(&b);
        eval_ctx_free(c);
        close(fds[1]);
        _exit(0);
      }
      close(fds[1]);
      wp[w].fd = fds[0];
      wp[w].pid = pid;
      wp[w].open = 1;
    }
    /* read frames from every open pipe until all close */
    int open_n = 0;
    for (int w = 0; w < workers; w++) open_n += wp[w].open;
    struct pollfd *pf = xcalloc((size_t)workers, sizeof *pf);
    while (open_n > 0) {
      int np = 0;
      int map[64];
      for (int w = 0; w < workers && np < 64; w++)
        if (wp[w].open) pf[np].fd = wp[w].fd, pf[np].events = POLLIN, map[np++] = w;
      if (poll(pf, (nfds_t)np, -1) < 0) {
        if (errno == EINTR) continue;
        rc = err_set("eval: poll: %s", strerror(errno));
        break;
      }
      for (int k = 0; k < np; k++) {
        if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        worker_pipe *p = &wp[map[k]];
        if (p->cap - p->len < 65536) {
          p->cap = p->cap ? 2 * p->cap : 1 << 20;
          p->buf = xrealloc(p->buf, p->cap);
        }
        ssize_t r = read(p->fd, p->buf + p->len, p->cap - p->len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
          close(p->fd);
          p->open = 0;
          open_n--;
          continue;
        }
        p->len += (size_t)r;
        size_t off = 0;
        while (p->len - off >= 8) {
          uint32_t hdr[2];
          memcpy(hdr, p->buf + off, 8);
          if (p->len - off - 8 < hdr[1]) break;
          if (hdr[0] < (uint32_t)it->n) {
            /* NUL-terminate in place for the parser (the byte after is the next header) */
            char save = 0;
            int has_next = off + 8 + hdr[1] < p->len;
            if (has_next) save = p->buf[off + 8 + hdr[1]];
            if (!has_next && p->len + 1 > p->cap) {
              p->cap *= 2;
              p->buf = xrealloc(p->buf, p->cap);
            }
            p->buf[off + 8 + hdr[1]] = 0;
            take_result(it, cat, (int)hdr[0], p->buf + off + 8, hdr[1], &batch, prog, &failed);
            if (has_next) p->buf[off + 8 + hdr[1]] = save;
          }
          off += 8 + hdr[1];
        }
        memmove(p->buf, p->buf + off, p->len - off);
        p->len -= off;
      }
    }
    free(pf);
    for (int w = 0; w < workers; w++) {
      if (wp[w].pid <= 0) continue;
      int st = 0;
      waitpid(wp[w].pid, &st, 0);
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        log_warn("eval: worker %d ended with status %d", w, st);
      free(wp[w].buf);
    }
    free(wp);
    munmap(next, sizeof(int64_t));
    /* items a dead worker never returned */
    for (int k = 0; k < ntodo; k++) {
      eval_item *e = &it->v[todo[k]];
      if (e->state != 0) continue;
      e->state = 2;
      free(e->error);
      e->error = xstrdup("its worker ended before returning a result");
      log_warn("eval: %s: not scored: %s", e->name, e->error);
      failed++;
    }
  }
  if (cat && batch > 0 && catalogue_commit(cat) != TB_OK)
    log_warn("eval: cache commit: %s", err_get());
  progress_free(prog);
  free(todo);
  if (n_new) *n_new = ntodo - failed;
  if (n_cached) *n_cached = cached;
  if (n_failed) *n_failed = failed;
  return rc;
}

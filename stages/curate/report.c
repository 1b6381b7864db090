/* stages/curate/report.c — the HTML summary of curation and the dataset previews.
 *
 * WORKSPACE/reports/curate.html (and curate-run-ID.html): totals and throughput of the scan,
 * manifest problems by line, rejected sources with their reasons, flaw flag counts, histograms
 * of the main statistics (inline SVG), and every dataset with its subsets, splits and preview
 * images. WORKSPACE/reports/NAME-sheet.png: rows of clips, 4 frames each; NAME-preview.gif: a
 * 4 x 3 grid of clips playing at the dataset's frame rate.
 */
#include "stages/curate/curate.h"

#include "common/fsutil.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "stages/curate/flaws.h"
#include "common/image.h"
#include "stages/curate/recipe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_ISSUES_MAX 200 /* rows of the manifest-problem table */

static void html_text(FILE *f, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
      case '<': fputs("&lt;", f); break;
      case '>': fputs("&gt;", f); break;
      case '&': fputs("&amp;", f); break;
      case '"': fputs("&quot;", f); break;
      default: fputc(*s, f);
    }
  }
}

typedef struct {
  FILE *f;
  int rows;
  int limit;
} table_ctx;

/* Prints each result row as an HTML table row. */
static int table_row(void *ctx, int ncol, const char *const *names, const char *const *values) {
  table_ctx *t = ctx;
  if (t->rows == 0) {
    fputs("<table><tr>", t->f);
    for (int i = 0; i < ncol; i++) {
      fputs("<th>", t->f);
      html_text(t->f, names[i]);
      fputs("</th>", t->f);
    }
    fputs("</tr>\n", t->f);
  }
  if (t->limit > 0 && t->rows >= t->limit) {
    t->rows++;
    return 0;
  }
  fputs("<tr>", t->f);
  for (int i = 0; i < ncol; i++) {
    fputs("<td>", t->f);
    html_text(t->f, values[i] ? values[i] : "");
    fputs("</td>", t->f);
  }
  fputs("</tr>\n", t->f);
  t->rows++;
  return 0;
}

static void query_table(catalogue *cat, FILE *f, const char *sql, int limit) {
  table_ctx t = {f, 0, limit};
  if (catalogue_query(cat, sql, 0, NULL, table_row, &t, NULL) != TB_OK) {
    fputs("<p>(query failed: ", f);
    html_text(f, err_get());
    fputs(")</p>\n", f);
    return;
  }
  if (t.rows == 0) fputs("<p>none</p>\n", f);
  else fputs("</table>\n", f);
  if (limit > 0 && t.rows > limit) fprintf(f, "<p>… and %d more</p>\n", t.rows - limit);
}

/* A 20-bin histogram of one statistic as an inline SVG. */
static void histogram(catalogue *cat, FILE *f, const char *name) {
  int64_t *ids = NULL, n = 0;
  double *v = NULL;
  if (catalogue_stat_all(cat, name, &ids, &v, &n) != TB_OK || n == 0) {
    free(ids);
    free(v);
    return;
  }
  double lo = INFINITY, hi = -INFINITY;
  for (int64_t i = 0; i < n; i++) {
    if (!isfinite(v[i])) continue;
    lo = fmin(lo, v[i]);
    hi = fmax(hi, v[i]);
  }
  enum { NB = 20 };
  int64_t bins[NB] = {0}, mx = 1;
  double span = hi > lo ? hi - lo : 1;
  for (int64_t i = 0; i < n; i++) {
    if (!isfinite(v[i])) continue;
    int b = (int)((v[i] - lo) / span * NB);
    if (b >= NB) b = NB - 1;
    if (b < 0) b = 0;
    if (++bins[b] > mx) mx = bins[b];
  }
  fprintf(f, "<div class=h><b>%s</b> (%lld clips, %.3g … %.3g)<br><svg width=%d height=60>", name,
          (long long)n, lo, hi, NB * 12);
  for (int b = 0; b < NB; b++) {
    int hh = (int)(56.0 * (double)bins[b] / (double)mx + 0.5);
    fprintf(f, "<rect x=%d y=%d width=10 height=%d fill='#4a7'><title>%.3g: %lld</title></rect>",
            b * 12, 58 - hh, hh, lo + span * b / NB, (long long)bins[b]);
  }
  fputs("</svg></div>\n", f);
  free(ids);
  free(v);
}

typedef struct {
  char names[32][128];
  int n;
} name_list;

/* How many clips each condition of a dataset's recipe removes (over clips with usable = 1). */
static void recipe_filter_table(catalogue *cat, FILE *f, const char *recipe_text) {
  recipe r;
  if (!recipe_text || recipe_parse(recipe_text, "recipe", &r) != TB_OK) {
    recipe_free(&r);
    return;
  }
  int64_t *uid = NULL, nu = 0;
  double *uv = NULL;
  if (catalogue_stat_all(cat, "usable", &uid, &uv, &nu) != TB_OK) {
    recipe_free(&r);
    return;
  }
  int64_t usable = 0;
  for (int64_t i = 0; i < nu; i++) usable += uv[i] > 0.5;
  fprintf(f, "<table><tr><th>condition</th><th>scope</th><th>usable clips failing it (of %lld)</th></tr>\n",
          (long long)usable);
  for (int s = -1; s < r.nsubset; s++) {
    int nc = s < 0 ? r.ncond : r.subset[s].ncond;
    const recipe_cond *cc = s < 0 ? r.cond : r.subset[s].cond;
    for (int j = 0; j < nc; j++) {
      int64_t *ids = NULL, n = 0, k = 0, failing = 0;
      double *v = NULL;
      catalogue_stat_all(cat, cc[j].stat, &ids, &v, &n);
      for (int64_t i = 0; i < nu; i++) {
        if (uv[i] <= 0.5) continue;
        while (k < n && ids[k] < uid[i]) k++;
        if (!(k < n && ids[k] == uid[i] && recipe_cond_test(&cc[j], v[k]))) failing++;
      }
      char b[96];
      fprintf(f, "<tr><td>%s%s</td><td>%s</td><td>", recipe_cond_str(&cc[j], b, sizeof b),
              cc[j].learned ? " (learned)" : "", s < 0 ? "all" : r.subset[s].name);
      if (cc[j].learned && n == 0) fputs("skipped: not computed yet", f);
      else fprintf(f, "%lld", (long long)failing);
      fputs("</td></tr>\n", f);
      free(ids);
      free(v);
    }
  }
  fputs("</table>\n", f);
  free(uid);
  free(uv);
  recipe_free(&r);
}

static int collect_name(void *ctx, int ncol, const char *const *names, const char *const *values) {
  (void)names;
  name_list *l = ctx;
  if (ncol >= 1 && values[0] && l->n < 32) snprintf(l->names[l->n++], 128, "%s", values[0]);
  return 0;
}

int curate_report_write(catalogue *cat, const curate_cfg *cfg, const manifest *m,
                        const curate_totals *tot) {
  char dir[4096], path[4096], name[64];
  fs_join(dir, sizeof dir, cfg->workspace, "reports");
  if (fs_mkdir_p(dir) != TB_OK) return TB_ERR;
  snprintf(name, sizeof name, "curate-run-%lld.html", (long long)cfg->run_id);
  fs_join(path, sizeof path, dir, name);
  fs_atomic *at = fs_atomic_open(path);
  if (!at) return TB_ERR;
  FILE *f = fs_atomic_file(at);
  fputs("<!doctype html><html><head><meta charset=utf-8><title>turbo curation</title><style>"
        "body{font:14px sans-serif;margin:2em}table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}th{background:#eee}"
        ".h{display:inline-block;margin:6px 12px}img{image-rendering:pixelated}"
        "</style></head><body>\n<h1>Curation</h1>\n",
        f);
  fprintf(f, "<p>workspace <code>");
  html_text(f, cfg->workspace);
  fprintf(f, "</code>, run %lld, target %dx%d, %d frames at %g fps</p>\n", (long long)cfg->run_id,
          cfg->width, cfg->height, cfg->frames, cfg->fps);
  if (tot) {
    int64_t dec = tot->opened;
    fprintf(f,
            "<h2>This scan</h2><table><tr><th>manifest rows</th><th>manifest problems</th>"
            "<th>skipped (unchanged)</th><th>decoded</th><th>clips written</th><th>rejected</th>"
            "<th>seconds</th><th>clips/s</th><th>decoded frames/s</th><th>workers</th></tr>"
            "<tr><td>%lld</td><td>%lld</td><td>%lld</td><td>%lld</td><td>%lld</td><td>%lld</td>"
            "<td>%.1f</td><td>%.1f</td><td>%.0f</td><td>%d</td></tr></table>\n",
            (long long)tot->rows, (long long)tot->issues, (long long)tot->skipped, (long long)dec,
            (long long)tot->clips, (long long)tot->rejected, tot->seconds,
            tot->seconds > 0 ? dec / tot->seconds : 0.0,
            tot->seconds > 0 ? tot->decoded_frames / tot->seconds : 0.0, cfg->workers);
  }
  if (m && m->nissues) {
    fputs("<h2>Manifest problems</h2><table><tr><th>line</th><th>problem</th></tr>\n", f);
    int shown = m->nissues < REPORT_ISSUES_MAX ? m->nissues : REPORT_ISSUES_MAX;
    for (int i = 0; i < shown; i++) {
      fprintf(f, "<tr><td>%d</td><td>", m->issues[i].line);
      html_text(f, m->issues[i].reason);
      fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
    if (shown < m->nissues)
      fprintf(f, "<p>… and %d more problems (lines %d to %d); the log names the first ones.</p>\n",
              m->nissues - shown, m->issues[shown].line, m->issues[m->nissues - 1].line);
  }
  fputs("<h2>Catalogue</h2>\n", f);
  query_table(cat, f,
              "SELECT (SELECT count(*) FROM sources) AS sources, (SELECT count(*) FROM sources "
              "WHERE status='ok') AS ok, (SELECT count(*) FROM sources WHERE status='rejected') "
              "AS rejected, (SELECT count(*) FROM clips) AS clips, (SELECT count(*) FROM "
              "clip_stats WHERE name='usable' AND value=1) AS usable_clips",
              0);
  fputs("<h2>Rejections by reason</h2>\n", f);
  query_table(cat, f,
              "SELECT CASE WHEN instr(reason, ':') > 0 THEN substr(reason, 1, instr(reason, ':') - 1)"
              " ELSE reason END AS reason, count(*) AS files FROM sources WHERE status='rejected' "
              "GROUP BY 1 ORDER BY 2 DESC",
              0);
  fputs("<h2>Rejected files</h2>\n", f);
  query_table(cat, f, "SELECT path, reason FROM sources WHERE status='rejected' ORDER BY path", 200);
  fputs("<h2>Flaw detectors (clips flagged)</h2>\n<p>Thresholds: ", f);
  fprintf(f,
          "static: caption names motion (not only motion that follows a pan), static_score and "
          "static_score_full &lt; %g + %g &times; noise + %g &times; flicker, and flow_mean &lt; "
          "%g (or the clip is noisy, flickers or has a cut); flicker &gt; %g; watermark &gt; %g; "
          "noise &gt; %g or edge_width &gt; %g (analysis pixels); cut_hist &gt; %g or cut_block "
          "&gt; %g (on a flickering clip cut_block &gt; %g too). Wrong captions need a learned "
          "video-text score.</p>\n",
          FLAW_STATIC_SCORE, FLAW_STATIC_NOISE_K, FLAW_STATIC_FLICKER_K, FLAW_STATIC_FLOW,
          FLAW_FLICKER, FLAW_WATERMARK, FLAW_NOISE, FLAW_EDGE_WIDTH, FLAW_CUT_HIST,
          FLAW_CUT_BLOCK, FLAW_CUT_BLOCK_FLICKER);
  query_table(cat, f,
              "SELECT name AS flag, CAST(sum(value) AS INTEGER) AS clips FROM clip_stats WHERE name "
              "LIKE 'flaw\\_%' ESCAPE '\\' GROUP BY name ORDER BY name",
              0);
  fputs("<h2>Statistics</h2>\n", f);
  const char *hist[] = {"motion_mag", "motion_extent", "flicker", "noise", "edge_width",
                        "watermark", "cut_hist", "caption_words", "brightness", "src_fps", NULL};
  for (int i = 0; hist[i]; i++) histogram(cat, f, hist[i]);
  fputs("<h2>Datasets</h2>\n", f);
  query_table(cat, f,
              "SELECT d.name, d.status, m.subset, m.split, count(*) AS clips FROM datasets d "
              "JOIN dataset_members m ON m.dataset_id = d.id GROUP BY d.name, m.subset, m.split "
              "ORDER BY d.name, m.subset, m.split",
              0);
  name_list dl;
  memset(&dl, 0, sizeof dl);
  catalogue_query(cat, "SELECT name FROM datasets ORDER BY name", 0, NULL, collect_name, &dl, NULL);
  for (int i = 0; i < dl.n; i++) {
    fputs("<h3>", f);
    html_text(f, dl.names[i]);
    fputs("</h3>\n", f);
    catalogue_dataset d;
    if (catalogue_dataset_lookup(cat, dl.names[i], &d) == 1) {
      recipe_filter_table(cat, f, d.recipe);
      catalogue_dataset_clear(&d);
    }
    fputs("<p>", f);
    char p[4096], fn[256];
    snprintf(fn, sizeof fn, "%s-sheet.png", dl.names[i]);
    if (fs_exists(fs_join(p, sizeof p, dir, fn))) {
      fputs("<img src=\"", f);
      html_text(f, fn);
      fputs("\" width=512> ", f);
    }
    snprintf(fn, sizeof fn, "%s-preview.gif", dl.names[i]);
    if (fs_exists(fs_join(p, sizeof p, dir, fn))) {
      fputs("<img src=\"", f);
      html_text(f, fn);
      fputs("\" width=512>", f);
    }
    fputs("</p>\n", f);
  }
  fputs("</body></html>\n", f);
  if (fs_atomic_commit(at) != TB_OK) return TB_ERR;
  char latest[4096], *data;
  size_t len;
  fs_join(latest, sizeof latest, dir, "curate.html");
  if (fs_read_all(path, &data, &len) == TB_OK) {
    fs_write_atomic(latest, data, len);
    free(data);
  }
  log_info("report: %s", latest);
  return TB_OK;
}

/* ---- previews ---------------------------------------------------------------------------- */

#define SHEET_ROWS 8
#define SHEET_COLS 4
#define GIF_GRID_W 4
#define GIF_GRID_H 3
#define GAP 2 /* pixels between tiles */

typedef struct {
  int64_t ids[SHEET_ROWS > GIF_GRID_W * GIF_GRID_H ? SHEET_ROWS : GIF_GRID_W * GIF_GRID_H];
  int n, max;
} id_list;

static int collect_id(void *ctx, int ncol, const char *const *names, const char *const *values) {
  (void)names;
  id_list *l = ctx;
  if (ncol >= 1 && values[0] && l->n < l->max) l->ids[l->n++] = strtoll(values[0], NULL, 10);
  return l->n >= l->max;
}

/* Loads the frames tensor of one clip of a dataset into *out (malloc'd (T, H, W, 3)). */
static int load_frames(catalogue *cat, const curate_cfg *cfg, int64_t clip, int64_t ds,
                       uint8_t **out, int64_t shape[4]) {
  catalogue_tensor t;
  int r = catalogue_tensor_find(cat, "frames", clip, ds, 0, NULL, &t);
  if (r != 1) return r == 0 ? err_set("clip %lld has no frames tensor", (long long)clip) : TB_ERR;
  char full[4096];
  fs_join(full, sizeof full, cfg->workspace, t.path);
  safetensors_file *sf;
  int rc = safetensors_open(full, &sf);
  if (rc == TB_OK) {
    char nm[32];
    snprintf(nm, sizeof nm, "clip_%lld", (long long)clip);
    const safetensors_entry *e = safetensors_find(sf, nm);
    if (!e || e->ndim != 4 || e->dtype != DTYPE_U8) {
      rc = err_set("%s: no u8 (T, H, W, 3) tensor %s", t.path, nm);
    } else {
      memcpy(shape, e->shape, sizeof(int64_t) * 4);
      *out = xmalloc((size_t)e->numel);
      memcpy(*out, e->data, (size_t)e->numel);
    }
    safetensors_close(sf);
  }
  catalogue_tensor_clear(&t);
  return rc;
}


int curate_dataset_visuals(catalogue *cat, const curate_cfg *cfg, const char *name) {
  catalogue_dataset d;
  int r = catalogue_dataset_lookup(cat, name, &d);
  if (r != 1) return r == 0 ? err_set("no dataset %s", name) : TB_ERR;
  int64_t ds = d.id;
  catalogue_dataset_clear(&d);
  char dsbuf[32];
  snprintf(dsbuf, sizeof dsbuf, "%lld", (long long)ds);
  const char *params[1] = {dsbuf};
  id_list l;
  memset(&l, 0, sizeof l);
  l.max = GIF_GRID_W * GIF_GRID_H;
  /* A spread of members: every subset shows up (ordered by subset, then a hash of the id). */
  if (catalogue_query(cat,
                      "SELECT clip_id FROM (SELECT clip_id, subset, min(clip_id * 2654435761 % 1000003) "
                      "AS k FROM dataset_members WHERE dataset_id = ?1 GROUP BY clip_id) "
                      "ORDER BY k",
                      1, params, collect_id, &l, NULL) != TB_OK)
    return TB_ERR;
  if (l.n == 0) return err_set("dataset %s has no members", name);
  uint8_t *fr[GIF_GRID_W * GIF_GRID_H] = {0};
  int64_t shape[4] = {0};
  int n = 0;
  for (int i = 0; i < l.n; i++) {
    int64_t sh[4];
    uint8_t *p = NULL;
    if (load_frames(cat, cfg, l.ids[i], ds, &p, sh) != TB_OK) {
      log_warn("preview: %s", err_get());
      continue;
    }
    if (n == 0) memcpy(shape, sh, sizeof sh);
    if (memcmp(sh, shape, sizeof sh) != 0) {
      free(p);
      continue;
    }
    l.ids[n] = l.ids[i];
    fr[n++] = p;
  }
  if (n == 0) return err_set("dataset %s: no frames could be read", name);
  const int T = (int)shape[0], H = (int)shape[1], W = (int)shape[2];
  char dir[4096], path[4096], fn[256];
  fs_join(dir, sizeof dir, cfg->workspace, "reports");
  fs_mkdir_p(dir);
  char *caps[GIF_GRID_W * GIF_GRID_H] = {0};
  for (int i = 0; i < n; i++) {
    catalogue_clip c;
    if (catalogue_clip_get(cat, l.ids[i], &c) == 1) {
      char buf[600];
      snprintf(buf, sizeof buf, "#%lld %s", (long long)l.ids[i], c.caption_long ? c.caption_long : "");
      caps[i] = xstrdup(buf);
      catalogue_clip_clear(&c);
    }
  }
  /* Contact sheet: one strip of SHEET_COLS evenly spaced frames per clip, caption below. */
  int rows = n < SHEET_ROWS ? n : SHEET_ROWS;
  image_grid g = {.cols = 2, .rows = (rows + 1) / 2, .cell_w = 2 * (SHEET_COLS * (W + GAP) - GAP),
                  .cell_h = 2 * H, .pad = 8, .caption_h = 2 * IMAGE_GLYPH_H + 2, .scale = 1,
                  .bg = {255, 255, 255}, .fg = {20, 20, 20}};
  image sheet = {0}, strip = {0};
  int rc = image_grid_init(&sheet, &g);
  if (rc == TB_OK) rc = image_init(&strip, SHEET_COLS * (W + GAP) - GAP, H);
  for (int r = 0; r < rows && rc == TB_OK; r++) {
    image_fill(&strip, (rgb8){255, 255, 255});
    for (int c = 0; c < SHEET_COLS; c++) {
      int t = SHEET_COLS > 1 ? c * (T - 1) / (SHEET_COLS - 1) : 0;
      image fr1 = {.w = W, .h = H, .px = fr[r] + (size_t)t * H * W * 3};
      image_blit(&strip, &fr1, c * (W + GAP), 0);
    }
    rc = image_grid_put(&sheet, &g, r, &strip, caps[r]);
  }
  snprintf(fn, sizeof fn, "%s-sheet.png", name);
  if (rc == TB_OK) rc = image_save_png(&sheet, fs_join(path, sizeof path, dir, fn));
  if (sheet.px) image_destroy(&sheet);
  if (strip.px) image_destroy(&strip);
  /* Animated grid, frames at twice their size. */
  if (rc == TB_OK) {
    image_grid ga = {.cols = GIF_GRID_W, .rows = GIF_GRID_H, .cell_w = 2 * W, .cell_h = 2 * H,
                     .pad = GAP, .caption_h = 0, .scale = 1, .bg = {255, 255, 255}, .fg = {0, 0, 0}};
    image *frames = xcalloc((size_t)T, sizeof(image));
    for (int t = 0; t < T && rc == TB_OK; t++) {
      rc = image_grid_init(&frames[t], &ga);
      for (int i = 0; i < n && rc == TB_OK; i++) {
        image fr1 = {.w = W, .h = H, .px = fr[i] + (size_t)t * H * W * 3};
        rc = image_grid_put(&frames[t], &ga, i, &fr1, NULL);
      }
    }
    snprintf(fn, sizeof fn, "%s-preview.gif", name);
    if (rc == TB_OK)
      rc = image_save_gif(fs_join(path, sizeof path, dir, fn), frames, T, (int)(100.0 / cfg->fps + 0.5), 0);
    for (int t = 0; t < T; t++)
      if (frames[t].px) image_destroy(&frames[t]);
    free(frames);
  }
  for (int i = 0; i < n; i++) free(caps[i]);
  for (int i = 0; i < n; i++) free(fr[i]);
  if (rc == TB_OK) log_info("previews: %s/%s-sheet.png, %s-preview.gif", dir, name, name);
  return rc;
}

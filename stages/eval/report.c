/* stages/eval/report.c — pooling per-video values into dimension scores, and the run's files:
 * results.json (VBench's shape), summary.json, scores.csv, videos.csv, bars.png, the worst and
 * best videos of each dimension as GIF grids, and report.html. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/image.h"
#include "common/log.h"
#include "stages/eval/eval.h"

#define GRID_N 4        /* videos in a worst / best grid */
#define TILE 128        /* tile side in pixels */
#define GIF_MAX_FRAMES 32

void eval_summarise(const eval_items *it, eval_summary *s) {
  memset(s, 0, sizeof *s);
  double sum[EVAL_DIM_COUNT] = {0}, wsum[EVAL_DIM_COUNT] = {0};
  for (int i = 0; i < it->n; i++) {
    const eval_item *e = &it->v[i];
    if (e->state != 1) continue;
    for (int d = 0; d < EVAL_DIM_COUNT; d++) {
      if (e->weight[d] <= 0) continue;
      sum[d] += e->value[d] * e->weight[d];
      wsum[d] += e->weight[d];
      s->count[d]++;
    }
  }
  int have[EVAL_DIM_COUNT] = {0};
  double cbs = 0;
  int cbn = 0;
  for (int d = 0; d < EVAL_DIM_COUNT; d++) {
    s->raw[d] = wsum[d] > 0 ? sum[d] / wsum[d] : NAN;
    have[d] = wsum[d] > 0;
    if (d >= EVAL_CB_FIRST && have[d]) cbs += s->raw[d], cbn++;
  }
  eval_vbench_totals(s->raw, have, 1, &s->totals);
  s->cb_mean = cbn ? cbs / cbn : NAN;
}

static void put_num_or_null(json_buf *b, double x) {
  if (isnan(x)) json_buf_puts(b, "null");
  else json_buf_put_number(b, x);
}

static int save(const char *dir, const char *name, const json_buf *b) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return fs_write_atomic(path, b->data ? b->data : "", b->len);
}

/* CSV field: quoted when it holds a comma, quote or line break. */
static void csv_field(json_buf *b, const char *s) {
  if (!s) return;
  if (!strpbrk(s, ",\"\n\r")) {
    json_buf_puts(b, s);
    return;
  }
  json_buf_puts(b, "\"");
  for (const char *p = s; *p; p++) {
    if (*p == '"') json_buf_puts(b, "\"\"");
    else json_buf_append(b, p, 1);
  }
  json_buf_puts(b, "\"");
}

static void html_text(json_buf *b, const char *s) {
  for (const char *p = s ? s : ""; *p; p++) {
    switch (*p) {
    case '<': json_buf_puts(b, "&lt;"); break;
    case '>': json_buf_puts(b, "&gt;"); break;
    case '&': json_buf_puts(b, "&amp;"); break;
    case '"': json_buf_puts(b, "&quot;"); break;
    default: json_buf_append(b, p, 1);
    }
  }
}

/* ---- bar chart ------------------------------------------------------------------------------ */

static const rgb8 C_BG = {255, 255, 255}, C_FG = {30, 30, 30}, C_GRID = {220, 220, 220},
                  C_QUAL = {70, 110, 190}, C_SEM = {220, 120, 40}, C_CB = {60, 150, 90},
                  C_NA = {170, 170, 170};

/* One horizontal bar per dimension: VBench's normalised value (CompBench: the raw score), 0..1. */
static int write_bars(const eval_summary *s, const char *path) {
  const int scale = 2, row = 26, label_w = 360, bar_w = 520, top = 40, left = 10;
  int h = top + EVAL_DIM_COUNT * row + 50, w = left + label_w + bar_w + 90;
  image im;
  if (image_init(&im, w, h) != TB_OK) return TB_ERR;
  image_fill(&im, C_BG);
  image_draw_text(&im, left, 8, "normalised score (VBench: (x-min)/(max-min), capped at 1)", C_FG,
                  scale);
  int x0 = left + label_w;
  for (int k = 0; k <= 10; k++) {
    int x = x0 + bar_w * k / 10;
    image_fill_rect(&im, x, top - 4, 1, EVAL_DIM_COUNT * row + 4, C_GRID);
    if (k % 2 == 0) {
      char t[8];
      snprintf(t, sizeof t, "%.1f", k / 10.0);
      image_draw_text(&im, x - 10, top + EVAL_DIM_COUNT * row + 6, t, C_FG, scale);
    }
  }
  for (int d = 0; d < EVAL_DIM_COUNT; d++) {
    int y = top + d * row;
    image_draw_text(&im, left, y + 5, eval_dim_name((eval_dim)d), C_FG, scale);
    double v;
    if (d < EVAL_VBENCH_COUNT) {
      double mn, mx, wt;
      eval_vbench_constants((eval_dim)d, &mn, &mx, &wt);
      v = isnan(s->totals.norm[d]) ? NAN : s->totals.norm[d] / (wt > 0 ? wt : 1);
    } else {
      v = s->raw[d];
    }
    rgb8 c = d < EVAL_QUALITY_COUNT ? C_QUAL : d < EVAL_VBENCH_COUNT ? C_SEM : C_CB;
    char t[32];
    if (isnan(v)) {
      image_draw_text(&im, x0 + 6, y + 5,
                      eval_dim_na_reason((eval_dim)d) ? "not applicable" : "not scored", C_NA,
                      scale);
      continue;
    }
    if (v < 0) v = 0;
    if (v > 1) v = 1;
    image_fill_rect(&im, x0, y + 3, (int)lround(v * bar_w), row - 6, c);
    snprintf(t, sizeof t, "%.3f", v);
    image_draw_text(&im, x0 + (int)lround(v * bar_w) + 6, y + 5, t, C_FG, scale);
  }
  /* legend */
  int ly = top + EVAL_DIM_COUNT * row + 28;
  image_fill_rect(&im, left, ly, 14, 14, C_QUAL);
  image_draw_text(&im, left + 20, ly, "VBench quality", C_FG, scale);
  image_fill_rect(&im, left + 230, ly, 14, 14, C_SEM);
  image_draw_text(&im, left + 250, ly, "VBench semantic", C_FG, scale);
  image_fill_rect(&im, left + 470, ly, 14, 14, C_CB);
  image_draw_text(&im, left + 490, ly, "CompBench", C_FG, scale);
  int rc = image_save_png(&im, path);
  image_destroy(&im);
  return rc;
}

/* ---- worst / best grids ------------------------------------------------------------------- */

typedef struct {
  int idx;
  double v;
} ranked;

static int cmp_ranked(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->v != y->v) return x->v < y->v ? -1 : 1;
  return x->idx - y->idx;
}

/* A GIF of up to GRID_N videos side by side, each with its value, prompt and what was found. */
static int write_grid_gif(const eval_items *it, const int *idx, int n, int d, const char *path,
                          int max_frames) {
  image_grid g = {.cols = n, .rows = 1, .cell_w = TILE, .cell_h = TILE, .pad = 6,
                  .caption_h = 110, .scale = 1, .bg = {245, 245, 245}, .fg = {20, 20, 20}};
  uint8_t *rgb[GRID_N] = {0};
  int T[GRID_N] = {0}, H[GRID_N] = {0}, W[GRID_N] = {0};
  char *cap[GRID_N] = {0};
  int frames = GIF_MAX_FRAMES;
  for (int k = 0; k < n; k++) {
    const eval_item *e = &it->v[idx[k]];
    double fps;
    if (eval_item_frames(e, max_frames, &rgb[k], &T[k], &H[k], &W[k], &fps) != TB_OK) T[k] = 0;
    if (T[k] > 0 && T[k] < frames) frames = T[k];
    json_buf c = {0};
    json_buf_printf(&c, "%.3f %s\nasked: %s\nfound: %s", e->value[d], e->name,
                    e->prompt_text ? e->prompt_text : "-", e->found ? e->found : "-");
    cap[k] = c.data;
  }
  image frame;
  int rc = image_grid_init(&frame, &g);
  image_gif *gif = rc == TB_OK ? image_gif_open(path, frame.w, frame.h, 12, 0, 0) : NULL;
  if (!gif) rc = TB_ERR;
  for (int f = 0; f < frames && rc == TB_OK; f++) {
    image_fill(&frame, g.bg);
    for (int k = 0; k < n; k++) {
      image tile;
      if (T[k] > 0) {
        image_init(&tile, W[k], H[k]);
        memcpy(tile.px, rgb[k] + (size_t)f * H[k] * W[k] * 3, (size_t)H[k] * W[k] * 3);
      } else {
        image_init(&tile, 8, 8);
        image_fill(&tile, (rgb8){128, 0, 0});
      }
      image_grid_put(&frame, &g, k, &tile, cap[k]);
      image_destroy(&tile);
    }
    rc = image_gif_add(gif, &frame);
  }
  if (gif) {
    if (rc == TB_OK) rc = image_gif_close(gif);
    else image_gif_abort(gif);
  }
  image_destroy(&frame);
  for (int k = 0; k < n; k++) free(rgb[k]), free(cap[k]);
  return rc;
}

/* ---- the files ------------------------------------------------------------------------------ */

int eval_write_outputs(const eval_items *it, const eval_summary *s, const eval_run_info *ri,
                       int max_frames) {
  if (fs_mkdir_p(ri->out_dir) != TB_OK) return TB_ERR;
  /* results.json: VBench's eval_results.json shape */
  json_buf b = {0};
  json_buf_puts(&b, "{");
  int first = 1;
  for (int d = 0; d < EVAL_DIM_COUNT; d++) {
    if (s->count[d] == 0) continue;
    json_buf_printf(&b, "%s\n\"%s\":[", first ? "" : ",", eval_dim_name((eval_dim)d));
    json_buf_put_number(&b, s->raw[d]);
    json_buf_puts(&b, ",[");
    int f2 = 1;
    for (int i = 0; i < it->n; i++) {
      const eval_item *e = &it->v[i];
      if (e->state != 1 || e->weight[d] <= 0) continue;
      json_buf_printf(&b, "%s{\"video_path\":", f2 ? "" : ",");
      json_buf_put_string(&b, e->name, strlen(e->name));
      json_buf_puts(&b, ",\"video_results\":");
      json_buf_put_number(&b, e->value[d]);
      json_buf_puts(&b, ",\"prompt_id\":");
      json_buf_put_string(&b, e->prompt_key, strlen(e->prompt_key));
      if (e->seed >= 0) json_buf_printf(&b, ",\"seed\":%lld", (long long)e->seed);
      if (e->weight[d] != 1) {
        json_buf_puts(&b, ",\"weight\":");
        json_buf_put_number(&b, e->weight[d]);
      }
      json_buf_puts(&b, "}");
      f2 = 0;
    }
    json_buf_puts(&b, "]]");
    first = 0;
  }
  json_buf_puts(&b, "\n}\n");
  int rc = save(ri->out_dir, "results.json", &b);
  json_buf_free(&b);
  if (rc != TB_OK) return TB_ERR;

  /* summary.json and scores.csv */
  json_buf sj = {0}, sc = {0};
  json_buf_puts(&sj, "{\"format\":\"turbo.eval.summary\",\"v\":1,\"label\":");
  json_buf_put_string(&sj, ri->label, strlen(ri->label));
  json_buf_printf(&sj, ",\"input\":\"%s\",\"suite\":", ri->input);
  json_buf_put_string(&sj, ri->suite ? ri->suite : "", ri->suite ? strlen(ri->suite) : 0);
  json_buf_printf(&sj, ",\"run_id\":%lld,\"videos\":%d,\"new\":%d,\"cached\":%d,"
                       "\"unreadable\":%d,\"shuffled_truth\":%s,\"seconds\":%.3f,",
                  (long long)ri->run_id, it->n, ri->n_new, ri->n_cached, ri->n_failed,
                  ri->shuffled ? "true" : "false", ri->seconds);
  json_buf_puts(&sj, "\"quality\":");
  put_num_or_null(&sj, s->totals.quality);
  json_buf_puts(&sj, ",\"semantic\":");
  put_num_or_null(&sj, s->totals.semantic);
  json_buf_puts(&sj, ",\"total\":");
  put_num_or_null(&sj, s->totals.total);
  json_buf_puts(&sj, ",\"compbench_mean\":");
  put_num_or_null(&sj, s->cb_mean);
  json_buf_puts(&sj, ",\"normalisation\":\"VBench (x-min)/(max-min)*weight, capped at weight\","
                     "\"dimensions\":{");
  json_buf_puts(&sc, "dimension,benchmark,raw,normalised,videos,chance,exact\n");
  for (int d = 0; d < EVAL_DIM_COUNT; d++) {
    const char *nm = eval_dim_name((eval_dim)d);
    double norm = d < EVAL_VBENCH_COUNT ? s->totals.norm[d] : s->raw[d];
    json_buf_printf(&sj, "%s\"%s\":{\"raw\":", d ? "," : "", nm);
    put_num_or_null(&sj, s->raw[d]);
    json_buf_puts(&sj, ",\"normalised\":");
    put_num_or_null(&sj, norm);
    json_buf_printf(&sj, ",\"videos\":%lld,\"chance\":", (long long)s->count[d]);
    put_num_or_null(&sj, eval_dim_chance(d) >= 0 ? eval_dim_chance(d) : NAN);
    const char *na = eval_dim_na_reason((eval_dim)d);
    if (na) {
      json_buf_puts(&sj, ",\"not_applicable\":");
      json_buf_put_string(&sj, na, strlen(na));
    }
    json_buf_puts(&sj, "}");
    json_buf_printf(&sc, "%s,%s,", nm, d >= EVAL_CB_FIRST ? "compbench" : "vbench");
    if (!isnan(s->raw[d])) json_buf_printf(&sc, "%.6f", s->raw[d]);
    json_buf_puts(&sc, ",");
    if (!isnan(norm)) json_buf_printf(&sc, "%.6f", norm);
    json_buf_printf(&sc, ",%lld,", (long long)s->count[d]);
    if (eval_dim_chance(d) >= 0) json_buf_printf(&sc, "%.4f", eval_dim_chance(d));
    json_buf_printf(&sc, ",%s\n", eval_dim_is_exact((eval_dim)d) > 0 ? "yes" : na ? "n/a" : "no");
  }
  json_buf_puts(&sj, "}}\n");
  const char *tn[3] = {"quality", "semantic", "total"};
  double tv[3] = {s->totals.quality, s->totals.semantic, s->totals.total};
  for (int k = 0; k < 3; k++) {
    json_buf_printf(&sc, "%s,vbench,", tn[k]);
    if (!isnan(tv[k])) json_buf_printf(&sc, "%.6f,%.6f", tv[k], tv[k]);
    else json_buf_puts(&sc, ",");
    json_buf_puts(&sc, ",,,\n");
  }
  rc = save(ri->out_dir, "summary.json", &sj);
  if (rc == TB_OK) rc = save(ri->out_dir, "scores.csv", &sc);
  json_buf_free(&sj);
  json_buf_free(&sc);
  if (rc != TB_OK) return TB_ERR;

  /* videos.csv */
  json_buf vc = {0};
  json_buf_puts(&vc, "video,prompt_id,seed,status");
  for (int d = 0; d < EVAL_DIM_COUNT; d++) json_buf_printf(&vc, ",%s", eval_dim_name((eval_dim)d));
  json_buf_puts(&vc, ",found,error\n");
  for (int i = 0; i < it->n; i++) {
    const eval_item *e = &it->v[i];
    csv_field(&vc, e->name);
    json_buf_puts(&vc, ",");
    csv_field(&vc, e->prompt_key);
    if (e->seed >= 0) json_buf_printf(&vc, ",%lld", (long long)e->seed);
    else json_buf_puts(&vc, ",");
    json_buf_printf(&vc, ",%s", e->state == 1 ? (e->cached ? "cached" : "scored") : "unreadable");
    for (int d = 0; d < EVAL_DIM_COUNT; d++) {
      json_buf_puts(&vc, ",");
      if (e->state == 1 && e->weight[d] > 0) json_buf_printf(&vc, "%.6f", e->value[d]);
    }
    json_buf_puts(&vc, ",");
    csv_field(&vc, e->found);
    json_buf_puts(&vc, ",");
    csv_field(&vc, e->error);
    json_buf_puts(&vc, "\n");
  }
  rc = save(ri->out_dir, "videos.csv", &vc);
  json_buf_free(&vc);
  if (rc != TB_OK) return TB_ERR;

  char path[4096];
  snprintf(path, sizeof path, "%s/bars.png", ri->out_dir);
  if (write_bars(s, path) != TB_OK) return TB_ERR;

  /* report.html */
  json_buf h = {0};
  json_buf_puts(&h, "<!doctype html><html><head><meta charset=\"utf-8\"><title>eval ");
  html_text(&h, ri->label);
  json_buf_puts(&h,
      "</title><style>body{font-family:sans-serif;max-width:1100px;margin:1.5em auto;"
      "color:#222;line-height:1.4}table{border-collapse:collapse;margin:0.5em 0}"
      "td,th{border:1px solid #ccc;padding:3px 9px;text-align:right}"
      "th{background:#f0f0f0}td.l,th.l{text-align:left}td{white-space:nowrap}"
      "td.w{white-space:normal}tr.na td{color:#888}"
      ".big{font-size:1.3em}.note{color:#555;font-size:0.9em}img{max-width:100%}"
      "img.grid{image-rendering:pixelated;zoom:1.6}"
      "h3{margin-bottom:0.2em}</style></head><body>\n<h1>eval: ");
  html_text(&h, ri->label);
  json_buf_puts(&h, "</h1>\n<p>");
  json_buf_printf(&h, "Input <b>%s</b> ", ri->input);
  html_text(&h, ri->source);
  json_buf_printf(&h, " &middot; run %lld &middot; %d videos: %d scored now, %d from the cache, "
                      "%d unreadable &middot; %.1f s",
                  (long long)ri->run_id, it->n, ri->n_new, ri->n_cached, ri->n_failed,
                  ri->seconds);
  if (ri->shuffled)
    json_buf_puts(&h, " &middot; <b>truth shuffled among videos</b> (chance control)");
  json_buf_puts(&h, "</p>\n<p class=\"big\">");
  json_buf_puts(&h, "VBench Total <b>");
  if (isnan(s->totals.total)) json_buf_puts(&h, "&ndash;");
  else json_buf_printf(&h, "%.2f%%", 100 * s->totals.total);
  json_buf_puts(&h, "</b> &middot; Quality <b>");
  if (isnan(s->totals.quality)) json_buf_puts(&h, "&ndash;");
  else json_buf_printf(&h, "%.2f%%", 100 * s->totals.quality);
  json_buf_puts(&h, "</b> &middot; Semantic <b>");
  if (isnan(s->totals.semantic)) json_buf_puts(&h, "&ndash;");
  else json_buf_printf(&h, "%.2f%%", 100 * s->totals.semantic);
  json_buf_puts(&h, "</b> &middot; CompBench mean <b>");
  if (isnan(s->cb_mean)) json_buf_puts(&h, "&ndash;");
  else json_buf_printf(&h, "%.4f", s->cb_mean);
  json_buf_puts(&h, "</b></p>\n<p class=\"note\">Total = (4 Quality + Semantic) / 5; Quality "
                    "and Semantic need every one of their dimensions (&ndash; otherwise). "
                    "Normalised = (raw &minus; min) / (max &minus; min) &times; weight with "
                    "VBench's constants, capped at the weight: the world's exact semantic "
                    "scores reach 1 where VBench's maxima are lower.</p>\n");
  json_buf_puts(&h, "<h2>Dimensions</h2>\n<table><tr><th class=\"l\">dimension</th>"
                    "<th class=\"l\">benchmark</th><th>raw</th><th>normalised</th><th>videos</th>"
                    "<th>chance</th><th class=\"l\">how</th></tr>\n");
  for (int d = 0; d < EVAL_DIM_COUNT; d++) {
    const char *na = eval_dim_na_reason((eval_dim)d);
    json_buf_printf(&h, "<tr%s><td class=\"l\">%s</td><td class=\"l\">%s</td>",
                    na ? " class=\"na\"" : "", eval_dim_title((eval_dim)d),
                    d >= EVAL_CB_FIRST ? "CompBench" : d < EVAL_QUALITY_COUNT ? "VBench quality"
                                                                              : "VBench semantic");
    if (isnan(s->raw[d])) json_buf_puts(&h, "<td>&ndash;</td>");
    else json_buf_printf(&h, "<td>%.4f</td>", s->raw[d]);
    /* CompBench's score maps are already in [0, 1]: its "normalised" value is the raw one */
    double norm = d < EVAL_VBENCH_COUNT ? s->totals.norm[d] : s->raw[d];
    if (isnan(norm)) json_buf_puts(&h, "<td>&ndash;</td>");
    else json_buf_printf(&h, "<td>%.4f</td>", norm);
    json_buf_printf(&h, "<td>%lld</td>", (long long)s->count[d]);
    if (eval_dim_chance(d) >= 0) json_buf_printf(&h, "<td>%.3f</td>", eval_dim_chance(d));
    else json_buf_puts(&h, "<td>&ndash;</td>");
    json_buf_puts(&h, "<td class=\"l w\">");
    if (na) {
      json_buf_puts(&h, "not applicable: ");
      html_text(&h, na);
    } else {
      json_buf_puts(&h, eval_dim_is_exact((eval_dim)d) > 0 ? "exact (pixel reader)"
                                                           : "measured from pixels");
    }
    json_buf_puts(&h, "</td></tr>\n");
  }
  json_buf_puts(&h, "</table>\n<p><img src=\"bars.png\" alt=\"bar chart\"></p>\n");

  /* worst and best per dimension */
  json_buf_puts(&h, "<h2>Worst and best videos</h2>\n<p class=\"note\">Each tile: the value, the "
                    "video, what it was asked and what the pixel reader found.</p>\n");
  ranked *rk = xmalloc(sizeof *rk * (size_t)(it->n + 1));
  for (int d = 0; d < EVAL_DIM_COUNT; d++) {
    int n = 0;
    for (int i = 0; i < it->n; i++)
      if (it->v[i].state == 1 && it->v[i].weight[d] > 0) rk[n].idx = i, rk[n].v = it->v[i].value[d], n++;
    if (n == 0) continue;
    qsort(rk, (size_t)n, sizeof *rk, cmp_ranked);
    int k = n < GRID_N ? n : GRID_N;
    int worst[GRID_N], best[GRID_N];
    for (int j = 0; j < k; j++) worst[j] = rk[j].idx, best[j] = rk[n - 1 - j].idx;
    const char *nm = eval_dim_name((eval_dim)d);
    char fw[256], fb[256];
    snprintf(fw, sizeof fw, "%s-worst.gif", nm);
    snprintf(fb, sizeof fb, "%s-best.gif", nm);
    snprintf(path, sizeof path, "%s/%s", ri->out_dir, fw);
    if (write_grid_gif(it, worst, k, d, path, max_frames) != TB_OK)
      log_warn("eval: %s: %s", path, err_get());
    snprintf(path, sizeof path, "%s/%s", ri->out_dir, fb);
    if (write_grid_gif(it, best, k, d, path, max_frames) != TB_OK)
      log_warn("eval: %s: %s", path, err_get());
    json_buf_printf(&h, "<h3>%s &mdash; %.4f over %d videos</h3>\n", eval_dim_title((eval_dim)d),
                    s->raw[d], n);
    json_buf_printf(&h, "<p>worst<br><img class=\"grid\" src=\"%s\" alt=\"worst %s\"><br>best<br>"
                        "<img class=\"grid\" src=\"%s\" alt=\"best %s\"></p>\n", fw, nm, fb, nm);
    /* the worst videos' reasons, as text */
    json_buf_puts(&h, "<table><tr><th>value</th><th class=\"l\">video</th><th class=\"l\">asked"
                      "</th><th class=\"l\">found</th><th class=\"l\">why</th></tr>\n");
    for (int j = 0; j < k; j++) {
      const eval_item *e = &it->v[worst[j]];
      json_buf_printf(&h, "<tr><td>%.3f</td><td class=\"l w\">", e->value[d]);
      html_text(&h, e->name);
      json_buf_puts(&h, "</td><td class=\"l w\">");
      html_text(&h, e->prompt_text);
      json_buf_puts(&h, "</td><td class=\"l w\">");
      html_text(&h, e->found);
      json_buf_puts(&h, "</td><td class=\"l w\">");
      if (e->reasons) {
        json_value *rv = json_parse(e->reasons, strlen(e->reasons), NULL);
        const json_value *r = rv ? json_get(rv, nm) : NULL;
        if (r && r->type == JSON_STRING) html_text(&h, r->string);
        json_free(rv);
      }
      json_buf_puts(&h, "</td></tr>\n");
    }
    json_buf_puts(&h, "</table>\n");
  }
  free(rk);
  if (ri->n_failed) {
    json_buf_puts(&h, "<h2>Unreadable videos</h2>\n<table><tr><th class=\"l\">video</th>"
                      "<th class=\"l\">why</th></tr>\n");
    for (int i = 0; i < it->n; i++) {
      if (it->v[i].state != 2) continue;
      json_buf_puts(&h, "<tr><td class=\"l\">");
      html_text(&h, it->v[i].name);
      json_buf_puts(&h, "</td><td class=\"l\">");
      html_text(&h, it->v[i].error);
      json_buf_puts(&h, "</td></tr>\n");
    }
    json_buf_puts(&h, "</table>\n");
  }
  json_buf_puts(&h, "<p class=\"note\">Files: <a href=\"results.json\">results.json</a> (VBench's "
                    "shape), <a href=\"summary.json\">summary.json</a>, <a href=\"scores.csv\">"
                    "scores.csv</a>, <a href=\"videos.csv\">videos.csv</a>.</p></body></html>\n");
  rc = save(ri->out_dir, "report.html", &h);
  json_buf_free(&h);
  return rc;
}

/* stages/eval/compare.c — `bin/eval --compare A B …`: evaluation runs side by side.
 *
 * Each run's per-prompt values (catalogue scores rows with a prompt: the mean over that prompt's
 * samples) are paired with the first run's by prompt id. Per dimension: both runs' means over the
 * shared prompts, the difference (run − first) and its 95% interval from a paired bootstrap over
 * prompts (percentiles 2.5 and 97.5 of `resamples` resampled mean differences, fixed seed). The
 * runs' pooled values (prompt NULL rows) are shown beside them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/catalogue.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "stages/eval/eval.h"

typedef struct {
  char *prompt;
  double value;
} pval;

typedef struct {
  catalogue_eval_run er;
  int n[EVAL_DIM_COUNT];
  pval *pv[EVAL_DIM_COUNT];
  double pooled[EVAL_DIM_COUNT];
  double totals[3];
} run_vals;

typedef struct {
  run_vals *r;
} row_ctx;

static int row_cb(void *ctx, int ncol, const char *const *names, const char *const *v) {
  (void)ncol, (void)names;
  run_vals *r = ((row_ctx *)ctx)->r;
  if (!v[0] || !v[2]) return 0;
  double val = strtod(v[2], NULL);
  const char *tn[3] = {"quality", "semantic", "total"};
  for (int k = 0; k < 3; k++)
    if (!v[1] && strcmp(v[0], tn[k]) == 0) r->totals[k] = val;
  int d = eval_dim_from_name(v[0]);
  if (d < 0) return 0;
  if (!v[1]) {
    r->pooled[d] = val;
    return 0;
  }
  r->pv[d] = xrealloc(r->pv[d], sizeof(pval) * (size_t)(r->n[d] + 1));
  r->pv[d][r->n[d]].prompt = xstrdup(v[1]);
  r->pv[d][r->n[d]].value = val;
  r->n[d]++;
  return 0;
}

static int cmp_pval(const void *a, const void *b) {
  return strcmp(((const pval *)a)->prompt, ((const pval *)b)->prompt);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void run_vals_free(run_vals *r) {
  for (int d = 0; d < EVAL_DIM_COUNT; d++) {
    for (int i = 0; i < r->n[d]; i++) free(r->pv[d][i].prompt);
    free(r->pv[d]);
  }
  catalogue_eval_run_clear(&r->er);
}

static int load_run(catalogue *cat, const char *label, run_vals *r) {
  memset(r, 0, sizeof *r);
  for (int d = 0; d < EVAL_DIM_COUNT; d++) r->pooled[d] = NAN;
  for (int k = 0; k < 3; k++) r->totals[k] = NAN;
  int f = catalogue_eval_run_find(cat, label, &r->er);
  if (f != 1)
    return f == 0 ? err_set("no evaluation run named \"%s\" (labels: ./run.sh catalogue sql "
                            "\"SELECT label, run_id FROM eval_runs\")", label)
                  : TB_ERR;
  char id[32];
  snprintf(id, sizeof id, "%lld", (long long)r->er.run_id);
  const char *params[1] = {id};
  row_ctx ctx = {r};
  if (catalogue_query(cat, "SELECT dimension, prompt, value FROM scores WHERE run_id = "
                           "CAST(?1 AS INTEGER)", 1, params, row_cb, &ctx, NULL) != TB_OK)
    return TB_ERR;
  for (int d = 0; d < EVAL_DIM_COUNT; d++)
    if (r->n[d]) qsort(r->pv[d], (size_t)r->n[d], sizeof(pval), cmp_pval);
  return TB_OK;
}

/* Pairs a's and b's prompts of dimension d: xa, xb get the values (malloc'd), returns the count. */
static int pair(const run_vals *a, const run_vals *b, int d, double **xa, double **xb) {
  int n = 0, i = 0, j = 0;
  int cap = a->n[d] < b->n[d] ? a->n[d] : b->n[d];
  *xa = xmalloc(sizeof(double) * (size_t)(cap + 1));
  *xb = xmalloc(sizeof(double) * (size_t)(cap + 1));
  while (i < a->n[d] && j < b->n[d]) {
    int c = strcmp(a->pv[d][i].prompt, b->pv[d][j].prompt);
    if (c == 0) (*xa)[n] = a->pv[d][i].value, (*xb)[n] = b->pv[d][j].value, n++, i++, j++;
    else if (c < 0) i++;
    else j++;
  }
  return n;
}

typedef struct {
  int n;
  double ma, mb, diff, lo, hi;
} cmp_row;

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static cmp_row compare_dim(const run_vals *a, const run_vals *b, int d, int resamples,
                           uint64_t seed) {
  cmp_row r = {0, NAN, NAN, NAN, NAN, NAN};
  double *xa, *xb;
  int n = pair(a, b, d, &xa, &xb);
  r.n = n;
  if (n > 0) {
    double sa = 0, sb = 0;
    for (int i = 0; i < n; i++) sa += xa[i], sb += xb[i];
    r.ma = sa / n, r.mb = sb / n, r.diff = r.mb - r.ma;
    double *boot = xmalloc(sizeof(double) * (size_t)resamples);
    uint64_t s = seed * 1000003u + (uint64_t)d;
    for (int k = 0; k < resamples; k++) {
      double acc = 0;
      for (int i = 0; i < n; i++) {
        int j = (int)(splitmix(&s) % (uint64_t)n);
        acc += xb[j] - xa[j];
      }
      boot[k] = acc / n;
    }
    qsort(boot, (size_t)resamples, sizeof(double), cmp_double);
    r.lo = boot[(int)floor(0.025 * (resamples - 1))];
    r.hi = boot[(int)ceil(0.975 * (resamples - 1))];
    free(boot);
  }
  free(xa), free(xb);
  return r;
}

int eval_compare(catalogue *cat, int n, char **labels, const char *out_dir, int resamples,
                 uint64_t seed) {
  if (resamples < 100) resamples = 100;
  run_vals *rv = xcalloc((size_t)n, sizeof *rv);
  int rc = TB_OK;
  for (int i = 0; i < n && rc == TB_OK; i++) rc = load_run(cat, labels[i], &rv[i]);
  if (rc != TB_OK) goto out;
  if (fs_mkdir_p(out_dir) != TB_OK) {
    rc = TB_ERR;
    goto out;
  }
  json_buf js = {0}, csv = {0}, h = {0};
  json_buf_puts(&js, "{\"format\":\"turbo.eval.compare\",\"v\":1,\"interval\":\"95% paired "
                     "bootstrap over prompts\",");
  json_buf_printf(&js, "\"resamples\":%d,\"runs\":[", resamples);
  for (int i = 0; i < n; i++) {
    json_buf_printf(&js, "%s{\"label\":", i ? "," : "");
    json_buf_put_string(&js, rv[i].er.label, strlen(rv[i].er.label));
    json_buf_printf(&js, ",\"run_id\":%lld}", (long long)rv[i].er.run_id);
  }
  json_buf_puts(&js, "],\"differences\":[");
  json_buf_puts(&csv, "dimension,base,run,prompts,base_mean,run_mean,difference,ci_low,ci_high\n");
  json_buf_puts(&h, "<!doctype html><html><head><meta charset=\"utf-8\"><title>eval compare"
                    "</title><style>body{font-family:sans-serif;max-width:1200px;margin:1.5em auto;"
                    "color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
                    "padding:3px 9px;text-align:right}th{background:#f0f0f0}td.l{text-align:left}"
                    ".up{background:#dff3e0}.down{background:#fbe0dd}.note{color:#555}"
                    "</style></head><body><h1>eval: comparison</h1>\n<p class=\"note\">Each run "
                    "against the first (");
  json_buf_puts(&h, rv[0].er.label);
  json_buf_printf(&h, "): the difference of per-prompt means over the prompts both scored, and "
                      "its 95%% paired bootstrap interval (%d resamples over prompts). Green: the "
                      "interval is above 0; red: below.</p>\n",
                  resamples);
  json_buf_puts(&h, "<table><tr><th class=\"l\">dimension</th><th>prompts</th>");
  for (int i = 0; i < n; i++) {
    json_buf_puts(&h, "<th>");
    json_buf_puts(&h, rv[i].er.label);
    json_buf_puts(&h, "</th>");
  }
  for (int i = 1; i < n; i++) {
    json_buf_puts(&h, "<th>");
    json_buf_puts(&h, rv[i].er.label);
    json_buf_puts(&h, " &minus; first [95%]</th>");
  }
  json_buf_puts(&h, "</tr>\n");
  printf("%-30s %7s", "dimension", "prompts");
  for (int i = 0; i < n; i++) printf(" %12.12s", rv[i].er.label);
  for (int i = 1; i < n; i++) printf("   diff %-22.22s", rv[i].er.label);
  printf("\n");
  int firstj = 1;
  for (int d = 0; d < EVAL_DIM_COUNT; d++) {
    cmp_row rows[16];
    int any = 0, np = 0;
    for (int i = 1; i < n && i < 17; i++) {
      rows[i - 1] = compare_dim(&rv[0], &rv[i], d, resamples, seed);
      if (rows[i - 1].n > 0) any = 1, np = rows[i - 1].n;
    }
    if (!any) continue;
    const char *nm = eval_dim_name((eval_dim)d);
    printf("%-30s %7d", nm, np);
    json_buf_printf(&h, "<tr><td class=\"l\">%s</td><td>%d</td>", eval_dim_title((eval_dim)d), np);
    for (int i = 0; i < n; i++) {
      double m = i == 0 ? rows[0].ma : rows[i - 1].mb;
      printf(" %12.4f", m);
      json_buf_printf(&h, "<td>%.4f</td>", m);
    }
    for (int i = 1; i < n && i < 17; i++) {
      cmp_row *r = &rows[i - 1];
      printf("   %+.4f [%+.4f, %+.4f]", r->diff, r->lo, r->hi);
      const char *cls = r->lo > 0 ? " class=\"up\"" : r->hi < 0 ? " class=\"down\"" : "";
      json_buf_printf(&h, "<td%s>%+.4f [%+.4f, %+.4f]</td>", cls, r->diff, r->lo, r->hi);
      json_buf_printf(&js, "%s\n{\"dimension\":\"%s\",\"base\":", firstj ? "" : ",", nm);
      json_buf_put_string(&js, rv[0].er.label, strlen(rv[0].er.label));
      json_buf_puts(&js, ",\"run\":");
      json_buf_put_string(&js, rv[i].er.label, strlen(rv[i].er.label));
      json_buf_printf(&js, ",\"prompts\":%d,\"base_mean\":%.6f,\"run_mean\":%.6f,"
                           "\"difference\":%.6f,\"ci95\":[%.6f,%.6f]}",
                      r->n, r->ma, r->mb, r->diff, r->lo, r->hi);
      firstj = 0;
      json_buf_printf(&csv, "%s,%s,%s,%d,%.6f,%.6f,%.6f,%.6f,%.6f\n", nm, rv[0].er.label,
                      rv[i].er.label, r->n, r->ma, r->mb, r->diff, r->lo, r->hi);
    }
    printf("\n");
    json_buf_puts(&h, "</tr>\n");
  }
  json_buf_puts(&h, "</table>\n<h2>Totals (pooled over videos)</h2><table><tr><th class=\"l\">"
                    "run</th><th>Quality</th><th>Semantic</th><th>Total</th></tr>\n");
  for (int i = 0; i < n; i++) {
    json_buf_puts(&h, "<tr><td class=\"l\">");
    json_buf_puts(&h, rv[i].er.label);
    json_buf_puts(&h, "</td>");
    for (int k = 0; k < 3; k++) {
      if (isnan(rv[i].totals[k])) json_buf_puts(&h, "<td>&ndash;</td>");
      else json_buf_printf(&h, "<td>%.4f</td>", rv[i].totals[k]);
    }
    json_buf_puts(&h, "</tr>\n");
  }
  json_buf_puts(&h, "</table></body></html>\n");
  json_buf_puts(&js, "\n]}\n");
  char path[4096];
  snprintf(path, sizeof path, "%s/compare.json", out_dir);
  rc = fs_write_atomic(path, js.data, js.len);
  snprintf(path, sizeof path, "%s/compare.csv", out_dir);
  if (rc == TB_OK) rc = fs_write_atomic(path, csv.data, csv.len);
  snprintf(path, sizeof path, "%s/compare.html", out_dir);
  if (rc == TB_OK) rc = fs_write_atomic(path, h.data, h.len);
  if (rc == TB_OK) log_info("eval --compare: %s/compare.html", out_dir);
  json_buf_free(&js), json_buf_free(&csv), json_buf_free(&h);
out:
  for (int i = 0; i < n; i++) run_vals_free(&rv[i]);
  free(rv);
  return rc;
}

/* stages/curate/recipe.c — see recipe.h. */
#include "stages/curate/recipe.h"

#include "common/fsutil.h"
#include "common/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *k_ops[] = {"<", "<=", ">", ">=", "==", "!="};

int recipe_cond_test(const recipe_cond *c, double v) {
  switch (c->op) {
    case RECIPE_LT: return v < c->value;
    case RECIPE_LE: return v <= c->value;
    case RECIPE_GT: return v > c->value;
    case RECIPE_GE: return v >= c->value;
    case RECIPE_EQ: return v == c->value;
    case RECIPE_NE: return v != c->value;
  }
  return 0;
}

const char *recipe_cond_str(const recipe_cond *c, char *buf, int n) {
  snprintf(buf, (size_t)n, "%s %s %g", c->stat, k_ops[c->op], c->value);
  return buf;
}

/* Splits a line into at most 8 whitespace-separated tokens (in place). */
static int tokens(char *s, char **tok, int max) {
  int n = 0;
  while (*s) {
    while (*s && isspace((unsigned char)*s)) s++;
    if (!*s) break;
    if (n == max) return max + 1;
    tok[n++] = s;
    while (*s && !isspace((unsigned char)*s)) s++;
    if (*s) *s++ = 0;
  }
  return n;
}

static int parse_num(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end) return TB_ERR;
  *out = v;
  return TB_OK;
}

static int ident_ok(const char *s, size_t max) {
  if (!*s || strlen(s) >= max) return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.') return 0;
  return 1;
}

static int parse_cond(char **tok, int n, const char *what, int line, recipe_cond *c) {
  if (n != 4) return err_set("%s:%d: expected '%s STAT OP VALUE'", what, line, tok[0]);
  if (!ident_ok(tok[1], sizeof c->stat))
    return err_set("%s:%d: bad statistic name '%s'", what, line, tok[1]);
  int op = -1;
  for (int i = 0; i < 6; i++)
    if (strcmp(tok[2], k_ops[i]) == 0) op = i;
  if (op < 0) return err_set("%s:%d: unknown operator '%s' (use < <= > >= == !=)", what, line, tok[2]);
  double v;
  if (parse_num(tok[3], &v) != TB_OK) return err_set("%s:%d: '%s' is not a number", what, line, tok[3]);
  memset(c, 0, sizeof *c);
  snprintf(c->stat, sizeof c->stat, "%s", tok[1]);
  c->op = (recipe_op)op;
  c->value = v;
  c->line = line;
  c->learned = strcmp(tok[0], "learned") == 0;
  return TB_OK;
}

int recipe_parse(const char *text, const char *what, recipe *r) {
  memset(r, 0, sizeof *r);
  r->text = xstrdup(text);
  r->seed = 1;
  r->val_fraction = 0.1;
  r->frames = 16;
  r->width = r->height = 64;
  r->fps = 8.0;
  snprintf(r->name, sizeof r->name, "dataset");
  char *copy = xstrdup(text), *save = NULL;
  int line = 0, rc = TB_OK;
  char *p = copy;
  while (p && rc == TB_OK) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = 0;
    line++;
    char *hash = strchr(p, '#');
    if (hash) *hash = 0;
    char *tok[8];
    int n = tokens(p, tok, 8);
    p = nl ? nl + 1 : NULL;
    if (n == 0) continue;
    if (n > 8) {
      rc = err_set("%s:%d: too many words", what, line);
      break;
    }
    double v;
    const char *k = tok[0];
    if (strcmp(k, "name") == 0) {
      if (n != 2 || !ident_ok(tok[1], sizeof r->name))
        rc = err_set("%s:%d: expected 'name NAME' (letters, digits, _ - .)", what, line);
      else
        snprintf(r->name, sizeof r->name, "%s", tok[1]);
    } else if (strcmp(k, "seed") == 0 || strcmp(k, "size") == 0 || strcmp(k, "frames") == 0 ||
               strcmp(k, "width") == 0 || strcmp(k, "height") == 0) {
      if (n != 2 || parse_num(tok[1], &v) != TB_OK || v < 0 || v != (long long)v) {
        rc = err_set("%s:%d: expected '%s N' with a whole number N >= 0", what, line, k);
      } else if (k[1] == 'e') {
        r->seed = (unsigned long long)v;
      } else if (k[1] == 'i' && k[0] == 's') {
        r->size = (long long)v;
      } else if (k[0] == 'f') {
        r->frames = (int)v;
      } else if (k[0] == 'w') {
        r->width = (int)v;
      } else {
        r->height = (int)v;
      }
      if (rc == TB_OK && (r->frames < 2 || r->width < 8 || r->height < 8))
        rc = err_set("%s:%d: frames must be >= 2 and width/height >= 8", what, line);
    } else if (strcmp(k, "fps") == 0) {
      if (n != 2 || parse_num(tok[1], &v) != TB_OK || v <= 0 || v > 240)
        rc = err_set("%s:%d: expected 'fps F' with 0 < F <= 240", what, line);
      else
        r->fps = v;
    } else if (strcmp(k, "val_fraction") == 0) {
      if (n != 2 || parse_num(tok[1], &v) != TB_OK || v < 0 || v > 1)
        rc = err_set("%s:%d: expected 'val_fraction F' with 0 <= F <= 1", what, line);
      else
        r->val_fraction = v;
    } else if (strcmp(k, "filter") == 0 || strcmp(k, "learned") == 0) {
      if (r->ncond == RECIPE_MAX_CONDS)
        rc = err_set("%s:%d: more than %d filters", what, line, RECIPE_MAX_CONDS);
      else
        rc = parse_cond(tok, n, what, line, &r->cond[r->ncond++]);
    } else if (strcmp(k, "subset") == 0) {
      if (n != 4 || strcmp(tok[2], "weight") != 0 || parse_num(tok[3], &v) != TB_OK || v <= 0 ||
          !ident_ok(tok[1], sizeof r->subset[0].name)) {
        rc = err_set("%s:%d: expected 'subset NAME weight W' with W > 0", what, line);
      } else if (r->nsubset == RECIPE_MAX_SUBSETS) {
        rc = err_set("%s:%d: more than %d subsets", what, line, RECIPE_MAX_SUBSETS);
      } else {
        for (int i = 0; i < r->nsubset; i++)
          if (strcmp(r->subset[i].name, tok[1]) == 0)
            rc = err_set("%s:%d: subset '%s' defined twice", what, line, tok[1]);
        recipe_subset *s = &r->subset[r->nsubset++];
        snprintf(s->name, sizeof s->name, "%s", tok[1]);
        s->weight = v;
      }
    } else if (strcmp(k, "where") == 0) {
      if (r->nsubset == 0) {
        rc = err_set("%s:%d: 'where' before any 'subset'", what, line);
      } else {
        recipe_subset *s = &r->subset[r->nsubset - 1];
        if (s->ncond == RECIPE_MAX_CONDS)
          rc = err_set("%s:%d: too many conditions in subset %s", what, line, s->name);
        else
          rc = parse_cond(tok, n, what, line, &s->cond[s->ncond++]);
      }
    } else {
      rc = err_set("%s:%d: unknown directive '%s' (name, seed, val_fraction, size, frames, fps, "
                   "width, height, filter, learned, subset, where)",
                   what, line, k);
    }
  }
  (void)save;
  free(copy);
  if (rc == TB_OK && r->nsubset == 0) {
    r->nsubset = 1;
    snprintf(r->subset[0].name, sizeof r->subset[0].name, "all");
    r->subset[0].weight = 1.0;
  }
  return rc;
}

int recipe_load(const char *path, recipe *r) {
  memset(r, 0, sizeof *r);
  char *text;
  size_t len;
  if (fs_read_all(path, &text, &len) != TB_OK) return err_wrap("recipe: ");
  if (strlen(text) != len) {
    free(text);
    return err_set("recipe %s: contains a NUL byte", path);
  }
  int rc = recipe_parse(text, path, r);
  free(text);
  return rc;
}

void recipe_free(recipe *r) {
  free(r->text);
  memset(r, 0, sizeof *r);
}

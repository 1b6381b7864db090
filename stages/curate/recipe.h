/* stages/curate/recipe.h — recipe files: which clips make a dataset.
 *
 * A recipe is a text file of one directive per line; '#' starts a comment. Directives:
 *
 *   name NAME                 default dataset name (bin/curate --dataset overrides)
 *   seed N                    shuffling and split seed (default 1)
 *   val_fraction F            share of clips in the validation split, 0..1 (default 0.1)
 *   size N                    total members over all subsets; 0 = as many as the mixture
 *                             weights allow from the clips that pass (default 0)
 *   frames N / fps F / width N / height N    the clip geometry to use (default 16, 8, 64, 64)
 *   filter STAT OP VALUE      a condition every member passes (OP: < <= > >= == !=)
 *   learned STAT OP VALUE     a condition on a learned score (e.g. text_video_score >= 0.3):
 *                             applied when clips have that statistic, otherwise skipped with
 *                             a warning (the score is filled in by a later stage)
 *   subset NAME weight W      starts a named subset with mixture weight W (> 0)
 *   where STAT OP VALUE       a condition of the current subset
 *
 * A clip lacking a statistic named by filter/where fails that condition. A recipe without a
 * subset has one subset "all" of weight 1. Subsets may overlap; a clip is in the same split in
 * every subset (the split is a hash of seed and clip id).
 */
#ifndef TURBO_CURATE_RECIPE_H
#define TURBO_CURATE_RECIPE_H

#ifdef __cplusplus
extern "C" {
#endif

#define RECIPE_MAX_CONDS 32
#define RECIPE_MAX_SUBSETS 8

typedef enum { RECIPE_LT = 0, RECIPE_LE, RECIPE_GT, RECIPE_GE, RECIPE_EQ, RECIPE_NE } recipe_op;

typedef struct {
  char stat[32];
  recipe_op op;
  double value;
  int learned; /* 1: skipped with a warning when no clip has the statistic */
  int line;
} recipe_cond;

typedef struct {
  char name[32];
  double weight;
  int ncond;
  recipe_cond cond[RECIPE_MAX_CONDS];
} recipe_subset;

typedef struct {
  char name[64];
  unsigned long long seed;
  double val_fraction;
  long long size;
  int frames, width, height;
  double fps;
  int ncond;                 /* global conditions (filter, learned) */
  recipe_cond cond[RECIPE_MAX_CONDS];
  int nsubset;
  recipe_subset subset[RECIPE_MAX_SUBSETS];
  char *text;                /* the file's text (stored with the dataset); owned */
} recipe;

/* Parses a recipe file. TB_ERR + err_get() naming the file and line on any error. Free with
 * recipe_free (also after TB_ERR). */
int recipe_load(const char *path, recipe *r);
int recipe_parse(const char *text, const char *what, recipe *r);
void recipe_free(recipe *r);

/* 1 when `value` passes the condition. */
int recipe_cond_test(const recipe_cond *c, double value);
/* "motion_mag >= 0.5" into buf. */
const char *recipe_cond_str(const recipe_cond *c, char *buf, int n);

#ifdef __cplusplus
}
#endif
#endif

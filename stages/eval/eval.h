/* stages/eval/eval.h — bin/eval's parts: prompt suites (prompts.c), the list of videos to score
 * and their truth (inputs.c), scoring with workers and the per-video cache (score.c),
 * aggregation into VBench / CompBench numbers and the outputs (results.c, report.c), and run
 * comparison (compare.c).
 *
 * Dimensions are the 16 of VBench and the 7 categories of T2V-CompBench, in one table with
 * the official names (EVAL_DIM_*). The pixel reader and the formulas that turn a read into a
 * value per video live below the stages (eval-reader's module); this stage decides which video
 * is scored on which dimension, runs the scoring, and aggregates, stores and shows the values.
 */
#ifndef TURBO_STAGE_EVAL_H
#define TURBO_STAGE_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/json.h"
#include "common/scene.h"
#include "kernels/eval/eval.h"
#include "kernels/world/reader.h"

/* Dimensions are kernels/eval/eval.h's eval_dim (VBench's 16, then CompBench's 7); a set of
 * them is a bit mask (bit d). */
#define EVAL_BIT(d) (1u << (d))
#define EVAL_ALL_DIMS ((1u << EVAL_DIM_COUNT) - 1)
/* Every dimension the world can score (not the two never-applicable categories). */
uint32_t eval_dims_applicable(void);
/* Chance: the expected per-video value when a clip is scored against the truth of another clip
 * drawn from the world's sampler (the shuffled-caption control), for the dimensions where it
 * follows from the sampler alone: 1/k for an attribute drawn uniformly from k values. -1 where
 * it depends on the mix of one- and two-object scenes and on the score maps. */
double eval_dim_chance(int d);

/* ---- prompts ------------------------------------------------------------------------------- */

#define EVAL_MAX_SEEDS 16
#define EVAL_PROMPT_ID_MAX 64

typedef struct {
  char id[EVAL_PROMPT_ID_MAX];   /* unique in its file, e.g. "color-003" */
  char group[48];                /* the generator's group, e.g. "color" */
  char *prompt;                  /* the text to sample from (one of the two phrasings) */
  char *prompt_short, *prompt_long;
  world_spec truth;              /* what the sampled phrasing asks for ("truth"; unspecified
                                    attributes -1) */
  int have_scene;
  scene scene;                   /* the scene the captions were made from ("scene") */
  uint32_t dims;                 /* bit d: scored on dimension d */
  int heldout;                   /* 1: a held-out composition (SYNTHETIC_WORLD.md) */
  int nseeds;
  int64_t seeds[EVAL_MAX_SEEDS]; /* one sample per seed */
  int line;                      /* 1-based line in its file */
} eval_prompt;

typedef struct {
  char *path;                    /* the file */
  char *suite;                   /* its "suite" (every line's) */
  int n;
  eval_prompt *p;
} eval_prompts;

/* Reads a prompts file (JSONL; format in pipelines/prompts/README.md). A bad line is an error
 * naming file:line and the field; every bad line is reported (log_error) and the count kept in
 * *bad (may be NULL); the call fails (TB_ERR) when any line is bad or ids repeat. */
int eval_prompts_load(const char *path, eval_prompts *out, int *bad);
void eval_prompts_free(eval_prompts *ps);
/* Index of the prompt with id, or -1. */
int eval_prompts_find(const eval_prompts *ps, const char *id);


/* Writes the suites into dir: vbench.jsonl, compbench.jsonl, heldout.jsonl,
 * not_applicable.json. `per_group` prompts per group in the public suites, `heldout_per_group`
 * in the held-out one, `samples` seeds per prompt. Deterministic in (seed, counts). */
int eval_prompts_generate(const char *dir, uint64_t seed, int per_group, int heldout_per_group,
                          int samples);

#endif

/* ---- the videos of one run ------------------------------------------------------------------ */

/* Where a video's frames are: a file libav reads, or a u8 (T, H, W, 3) tensor at a byte offset
 * of a frame shard (curated datasets). */
typedef struct {
  char *path;          /* file to read (as opened: absolute or relative to the cwd) */
  char *name;          /* shown in reports and results ("videos/000012.mp4", "clip 42") */
  int64_t offset;      /* shard tensor: byte offset; nbytes > 0 marks a shard tensor */
  int64_t nbytes;
  int T, H, W;         /* shard tensor shape */
  double fps;          /* shard tensor frame rate */
  char *prompt_key;    /* the prompt this video answers: prompt id, or the video's own name */
  char *prompt_text;   /* what it was asked (caption), may be NULL */
  int have_truth;
  world_spec truth;
  uint32_t dims;       /* dimensions to score */
  int64_t sample_id, clip_id, seed;
  char key[96];        /* cache key: scorer version, content checksum, truth, dimensions */
  /* results */
  int state;           /* 0 to do, 1 scored, 2 unreadable */
  int cached;          /* 1 when the result came from the catalogue */
  double value[EVAL_DIM_COUNT];
  double weight[EVAL_DIM_COUNT]; /* 0: not scored on this dimension */
  char *found;         /* what the reader found, one line */
  char *reasons;       /* JSON object of reasons per dimension, for reports */
  char *error;         /* why it could not be read (state 2) */
  int frames, width, height;
  double vfps;
} eval_item;

typedef struct {
  int n, cap;
  eval_item *v;
} eval_items;

eval_item *eval_items_add(eval_items *it);
void eval_items_free(eval_items *it);

/* Decodes an item's frames, u8 (T, H, W, 3): *rgb malloc'd (caller frees). max_frames 0: all.
 * TB_ERR + err_get() naming the file when unreadable. */
int eval_item_frames(const eval_item *e, int max_frames, uint8_t **rgb, int *T, int *H, int *W,
                     double *fps);

/* Scores one video's frames on `dims` (truth may be NULL: quality only) into a result JSON
 * object appended to out (the cached form: values, weights, reasons, what was found, the
 * read). TB_ERR only for frames the measures refuse (too small, too short). */
int eval_score_frames(eval_ctx *c, const uint8_t *rgb, int T, int H, int W, double fps,
                      const world_spec *truth, uint32_t dims, json_buf *out);
/* Fills an item's results from a result JSON (the form above). TB_ERR when malformed. */
int eval_item_set_result(eval_item *e, const char *json, size_t len);
/* Computes every item's cache key (reads each file once for its checksum). Unreadable files
 * get a key from their name, so they fail in scoring with the decoder's message. */
void eval_items_keys(eval_items *it);

typedef struct {
  int workers;         /* processes (1: in this process) */
  int max_frames;      /* 0: every frame */
  int rescore;         /* 1: ignore cached results */
} eval_score_opts;

struct catalogue;
/* Scores every item not already in the catalogue's cache (cat may be NULL: no cache), with
 * workers, progress and ETA; stores new results in the cache. Unreadable videos are logged with
 * their name and the reason, and the run goes on. *n_new / *n_cached / *n_failed (may be NULL)
 * get the counts. TB_ERR only when the work could not be done (fork, pipes, catalogue). */
int eval_score_items(eval_items *it, struct catalogue *cat, const eval_score_opts *o,
                     int *n_new, int *n_cached, int *n_failed);

/* ---- aggregation and outputs ------------------------------------------------------------------ */

typedef struct {
  double raw[EVAL_DIM_COUNT];     /* pooled value (NAN where nothing scored) */
  int64_t count[EVAL_DIM_COUNT];  /* videos scored on it */
  eval_totals totals;             /* VBench Quality / Semantic / Total (normalised clamped) */
  double cb_mean;                 /* mean of the CompBench categories scored (NAN if none) */
} eval_summary;

void eval_summarise(const eval_items *it, eval_summary *s);

typedef struct {
  const char *label, *input, *suite, *source; /* source: prompts file, dataset, folder */
  const char *out_dir;
  int64_t run_id;
  int n_new, n_cached, n_failed;
  double seconds;
  int shuffled;                   /* the truth was shuffled among videos (control) */
} eval_run_info;

/* results.json (VBench's shape: {dim: [score, [{"video_path", "video_results"}…]]}),
 * summary.json, scores.csv, videos.csv, bars.png, GIF grids and report.html in out_dir. */
int eval_write_outputs(const eval_items *it, const eval_summary *s, const eval_run_info *ri,
                       int max_frames);

/* `bin/eval --compare A B …`: runs named by label or run id in the catalogue, each against the
 * first: per dimension the difference of per-prompt means over the prompts both scored, with a
 * 95% paired bootstrap interval; writes compare.json / compare.csv / compare.html into out_dir
 * and prints the table. */
int eval_compare(struct catalogue *cat, int n, char **labels, const char *out_dir,
                 int resamples, uint64_t seed);

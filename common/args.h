/* common/args.h — command-line options for every stage, from one declarative table.
 *
 *   static char *manifest = NULL; static int workers = 2; static int quick = 0;
 *   arg_opt opts[] = {
 *     {"manifest", ARG_STR, &manifest, "PATH", "CSV or JSONL manifest"},
 *     {"workers",  ARG_INT, &workers,  "N",    "worker processes"},
 *     {"quick",    ARG_FLAG, &quick,   NULL,   "small sizes for tests"},
 *     {0}};
 *   int pos = args_parse(argc, argv, "curate [options]", "Curates a corpus into a dataset.", opts);
 *   if (pos < 0) return 2;       // message already printed
 *
 * Accepts --name VALUE and --name=VALUE; --help prints the table with defaults and exits 0.
 * Unknown options and bad numbers print an error naming the option and return -1.
 * Returns the index of the first positional argument (argv is permuted so they come last).
 */
#ifndef TURBO_ARGS_H
#define TURBO_ARGS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { ARG_STR, ARG_INT, ARG_I64, ARG_F64, ARG_FLAG } arg_kind;

typedef struct {
  const char *name;  /* long option without dashes; NULL ends the table */
  arg_kind kind;
  void *dst;         /* char** / int* / long long* / double* / int* (flag set to 1) */
  const char *meta;  /* placeholder shown in help ("PATH"), NULL for flags */
  const char *help;
} arg_opt;

int args_parse(int argc, char **argv, const char *usage, const char *summary, arg_opt *opts);
void args_print_help(const char *usage, const char *summary, const arg_opt *opts);

#ifdef __cplusplus
}
#endif
#endif

/* cli/cli.h - shared plumbing of the `sd` command-line tool: the subcommand table entry and
 * small helpers every subcommand uses (errors to stderr, number and thread-count parsing,
 * opening a context and a model).  Each subcommand
 * lives in its own file cli/cmd_<name>.c and is listed in main.c. */
#ifndef SD_CLI_H
#define SD_CLI_H

#include "sd.h"

#include <stdbool.h>

typedef struct sd_cli_cmd {
    const char *name;
    const char *usage;    /* one line: arguments */
    const char *help;     /* one line: what it does */
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} sd_cli_cmd;

/* Print "sd <cmd>: <message>" to stderr and return 1 (the exit status for failures). */
int sd_cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the error of a failed engine call ("sd <cmd>: <err.msg>") and return 1. */
int sd_cli_fail_err(const char *cmd, const sd_error *err);
/* Strict number parsing: the whole string must be a number within [lo, hi]. */
bool sd_cli_parse_int(const char *s, long lo, long hi, long *out);
bool sd_cli_parse_float(const char *s, double lo, double hi, double *out);
/* The value s of the thread-count option `opt` (e.g. "--threads"): 0 (every core) to 1024.
 * Returns 0, or 1 after printing "sd <cmd>: <opt> takes a thread count ...". */
int sd_cli_parse_threads(const char *cmd, const char *opt, const char *s, long *out);
/* A context with `threads` worker threads (0: every core; use_ref: the scalar reference
 * kernels; precision as sd_ctx_params) and the model at `path` loaded on it.  Returns 0, or
 * 1 after printing the error, with *ctx and *m NULL.  The caller frees both (sd_model_free,
 * then sd_ctx_free). */
int sd_cli_open_model(const char *cmd, const char *path, long threads, bool use_ref,
                      sd_precision precision, sd_ctx **ctx, sd_model **m);

#endif

/* args.h — small helpers for parsing subcommand arguments.
 *
 * Every subcommand walks argv itself; these helpers take a flag's value and
 * validate it, printing one clear line on a usage error. */
#ifndef RUSTY_CLI_ARGS_H
#define RUSTY_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct cli_args {
    const char *cmd; /* subcommand name, for messages */
    int argc;
    char **argv;
    int i; /* index of the current argument */
} cli_args;

/* Prints "rusty CMD: <message>" and a hint to stderr; returns 1 (the exit code). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True when arg equals either spelling (either may be NULL). */
bool cli_is(const char *arg, const char *short_flag, const char *long_flag);
/* True when argv has --help or -h anywhere. */
bool cli_wants_help(int argc, char **argv);

/* Takes the value after flag argv[a->i]; advances a->i. Each returns false
 * after printing a usage error (missing value, not a number, out of range). */
bool cli_take_str(cli_args *a, const char **out);
bool cli_take_int(cli_args *a, int64_t min, int64_t max, int64_t *out);
bool cli_take_float(cli_args *a, double min, double max, double *out);

#endif

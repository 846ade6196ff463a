/* args.c — argument helpers (see args.h). */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    fprintf(stderr, "rusty %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'rusty %s --help'.\n", cmd);
    return 1;
}

bool cli_is(const char *arg, const char *short_flag, const char *long_flag) {
    return (short_flag && strcmp(arg, short_flag) == 0) ||
           (long_flag && strcmp(arg, long_flag) == 0);
}

bool cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (cli_is(argv[i], "-h", "--help")) return true;
    return false;
}

bool cli_take_str(cli_args *a, const char **out) {
    const char *flag = a->argv[a->i];
    if (a->i + 1 >= a->argc) {
        cli_usage_error(a->cmd, "option %s needs a value", flag);
        return false;
    }
    *out = a->argv[++a->i];
    return true;
}

bool cli_take_int(cli_args *a, int64_t min, int64_t max, int64_t *out) {
    const char *flag = a->argv[a->i], *s;
    if (!cli_take_str(a, &s)) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) {
        cli_usage_error(a->cmd, "option %s expects an integer, got '%s'", flag, s);
        return false;
    }
    if (v < min || v > max) {
        cli_usage_error(a->cmd, "option %s must be in [%lld, %lld], got %lld", flag, (long long)min,
                        (long long)max, v);
        return false;
    }
    *out = v;
    return true;
}

bool cli_take_float(cli_args *a, double min, double max, double *out) {
    const char *flag = a->argv[a->i], *s;
    if (!cli_take_str(a, &s)) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) {
        cli_usage_error(a->cmd, "option %s expects a number, got '%s'", flag, s);
        return false;
    }
    if (v < min || v > max) {
        cli_usage_error(a->cmd, "option %s must be in [%g, %g], got %g", flag, min, max, v);
        return false;
    }
    *out = v;
    return true;
}

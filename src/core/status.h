/* status.h — the library's error convention.
 *
 * Every fallible library function returns an rs_status and, on failure, fills
 * the caller's rs_error with one human-readable line (what went wrong and where).
 * The library never exits or aborts on bad input; only the CLI decides to die. */
#ifndef RUSTY_STATUS_H
#define RUSTY_STATUS_H

#include <stdarg.h>

typedef enum rs_status {
    RS_OK = 0,
    RS_ERR_IO,          /* open/read/write/mmap failed */
    RS_ERR_FORMAT,      /* malformed or hostile file content */
    RS_ERR_UNSUPPORTED, /* valid, but a feature/type we do not implement */
    RS_ERR_NOMEM,       /* allocation failed or a size would not fit in memory */
    RS_ERR_ARG,         /* bad argument from the caller or the user */
    RS_ERR_NOT_FOUND,   /* a named key / tensor / file does not exist */
    RS_ERR_RANGE,       /* a value out of its allowed range (context full, id too big) */
    RS_ERR_DEVICE,      /* accelerator error (CUDA) */
} rs_status;

enum { RS_ERROR_MSG_MAX = 512 };

typedef struct rs_error {
    rs_status code;
    char msg[RS_ERROR_MSG_MAX];
} rs_error;

/* Records `code` and a printf-formatted message in *err (err may be NULL) and
 * returns `code`, so call sites read: return rs_error_set(err, RS_ERR_FORMAT, "...");
 * An already-recorded message is overwritten. */
rs_status rs_error_set(rs_error *err, rs_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#ifdef __clang_analyzer__
/* The static analyzer never inlines variadic functions, so it cannot see that
 * rs_error_set returns `code` and would follow impossible "error path returned
 * RS_OK" paths. This model states the contract above; compiled code is unaffected. */
#define rs_error_set(err, code, ...) ((void)rs_error_set((err), (code), __VA_ARGS__), (code))
#endif

/* Prepends "prefix: " to the message already in *err (for adding context such as
 * a file name as an error travels up). Returns err->code (RS_OK when err is NULL). */
rs_status rs_error_prefix(rs_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A short name for a status code ("format error", "I/O error", ...). */
const char *rs_status_str(rs_status code);

#endif

/* status.c — error recording helpers (see status.h). */
#include "core/status.h"

#include <stdio.h>
#include <string.h>

#undef rs_error_set /* status.h's model of it for the static analyzer is for callers */

rs_status rs_error_set(rs_error *err, rs_status code, const char *fmt, ...) {
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

rs_status rs_error_prefix(rs_error *err, const char *fmt, ...) {
    if (!err) return RS_OK;
    char prefix[RS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof prefix - 2, fmt, ap);
    va_end(ap);
    if (n < 0) return err->code;
    size_t plen = strlen(prefix);
    memcpy(prefix + plen, ": ", 3);
    plen += 2;
    /* shift the old message right (truncating its tail) and put the prefix in front */
    size_t mlen = strnlen(err->msg, sizeof err->msg - 1);
    if (plen + mlen > sizeof err->msg - 1) mlen = sizeof err->msg - 1 - plen;
    memmove(err->msg + plen, err->msg, mlen);
    memcpy(err->msg, prefix, plen);
    err->msg[plen + mlen] = '\0';
    return err->code;
}

const char *rs_status_str(rs_status code) {
    switch (code) {
    case RS_OK:
        return "ok";
    case RS_ERR_IO:
        return "I/O error";
    case RS_ERR_FORMAT:
        return "format error";
    case RS_ERR_UNSUPPORTED:
        return "unsupported";
    case RS_ERR_NOMEM:
        return "out of memory";
    case RS_ERR_ARG:
        return "invalid argument";
    case RS_ERR_NOT_FOUND:
        return "not found";
    case RS_ERR_RANGE:
        return "out of range";
    case RS_ERR_DEVICE:
        return "device error";
    }
    return "unknown error";
}

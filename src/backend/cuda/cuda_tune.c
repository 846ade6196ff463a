/* cuda_tune.c — the CUDA backend's tuning switches by name, so that one
 * binary can be measured both ways: RUSTY_CUDA_TUNE="chain=0,fz_roll=0"
 * (read when a CUDA backend is made) or the kernel lab's own settings.
 * Plain C: the unit tests check it on machines without a GPU. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"

#define FIELD(n)                                                                                   \
    { #n, offsetof(rs_cuda_tuning, n) }
static const struct {
    const char *name;
    size_t offset;
} fields[] = {
    FIELD(pdl),         FIELD(fuse_q8),         FIELD(mv_max_tokens),
    FIELD(attn_chunk),  FIELD(attn_decode_max), FIELD(reuse_q8),
    FIELD(mv_rows),     FIELD(gemm_chunk),      FIELD(attn_mma),
    FIELD(fuse),        FIELD(fz_split),        FIELD(prep),
    FIELD(attn_gb),     FIELD(attn_short),      FIELD(attn_pack),
    FIELD(stream),      FIELD(stream_depth),    FIELD(stream_blocks),
    FIELD(prep_prio),   FIELD(attn_zig),        FIELD(swiglu_h),
    FIELD(attn_h16),    FIELD(chain),           FIELD(fz_roll),
    FIELD(roll_grid),   FIELD(roll_fit),        FIELD(chain_q8),
    FIELD(chain_q4k),   FIELD(chain_coop),      FIELD(chain_ring),
    FIELD(chain_warps), FIELD(chain_stage),     FIELD(chain_deal),
    FIELD(chain_min),   FIELD(chain_min_in),    FIELD(chain_handoff),
};
#undef FIELD
/* every int switch before chain_trace is named above (one slot of slack: the
 * pointer's alignment may pad after the last int) */
_Static_assert(offsetof(rs_cuda_tuning, chain_trace) / sizeof(int) -
                       sizeof fields / sizeof *fields <=
                   1,
               "a tuning switch is missing from cuda_tune.c's table");

/* The field called name[0..len), or NULL. */
static int *field(rs_cuda_tuning *t, const char *name, size_t len) {
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if (strlen(fields[i].name) == len && memcmp(fields[i].name, name, len) == 0)
            return (int *)((char *)t + fields[i].offset);
    return NULL;
}

rs_status rs_cuda_tuning_parse(const char *spec, rs_cuda_tuning *t, rs_error *err) {
    rs_cuda_tuning out = *t; /* t changes only if the whole spec is valid */
    for (const char *p = spec; *p;) {
        const char *end = strchr(p, ',');
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq || eq == p)
            return rs_error_set(err, RS_ERR_ARG,
                                "CUDA tuning \"%.*s\": expected name=integer (in \"%s\")", (int)len,
                                p, spec);
        int *f = field(&out, p, (size_t)(eq - p));
        if (!f)
            return rs_error_set(err, RS_ERR_ARG, "CUDA tuning: unknown switch \"%.*s\" (in \"%s\")",
                                (int)(eq - p), p, spec);
        char num[24];
        const size_t nlen = len - (size_t)(eq + 1 - p);
        char *stop = NULL;
        errno = 0;
        long v = 0;
        if (nlen > 0 && nlen < sizeof num) {
            memcpy(num, eq + 1, nlen);
            num[nlen] = '\0';
            v = strtol(num, &stop, 10);
        }
        if (!stop || *stop || errno || v < INT_MIN || v > INT_MAX)
            return rs_error_set(err, RS_ERR_ARG,
                                "CUDA tuning \"%.*s\": the value is not an integer (in \"%s\")",
                                (int)len, p, spec);
        *f = (int)v;
        p += len;
        if (*p == ',' && !*++p)
            return rs_error_set(err, RS_ERR_ARG, "CUDA tuning \"%s\": ends with a comma", spec);
    }
    *t = out;
    return RS_OK;
}

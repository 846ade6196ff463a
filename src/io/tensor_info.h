/* tensor_info.h — where a stored tensor lives and what it is.
 *
 * Shapes use GGUF/GGML order: ne[0] is the innermost, contiguous dimension
 * (a PyTorch [rows, cols] weight has ne[0] = cols, ne[1] = rows). Unused
 * trailing dimensions are 1. */
#ifndef RUSTY_TENSOR_INFO_H
#define RUSTY_TENSOR_INFO_H

#include <stdint.h>

#include "dtype/dtype.h"

#define RS_MAX_DIMS 4

typedef struct rs_tensor_info {
    const char *name; /* NUL-terminated (names holding NUL bytes are rejected) */
    rs_dtype type;
    uint32_t n_dims;
    int64_t ne[RS_MAX_DIMS];
    uint64_t offset;  /* byte offset inside the file's data section */
    uint64_t nbytes;  /* exact byte size (validated against type and shape) */
    const void *data; /* start of the bytes in the mapping; NULL if not mapped */
} rs_tensor_info;

/* Element count (product of ne); the readers guarantee it does not overflow. */
static inline int64_t rs_tensor_nelements(const rs_tensor_info *t) {
    int64_t n = 1;
    for (uint32_t i = 0; i < t->n_dims; i++) n *= t->ne[i];
    return n;
}

#endif

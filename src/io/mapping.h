/* mapping.h — read-only file mappings (mmap), the zero-copy path for weights. */
#ifndef RUSTY_MAPPING_H
#define RUSTY_MAPPING_H

#include <stddef.h>

#include "core/status.h"

typedef struct rs_mapping {
    const unsigned char *data; /* NULL for an empty file */
    size_t size;
    int owned; /* 1 when data came from mmap and must be unmapped */
} rs_mapping;

/* Maps a whole file read-only. An empty file maps to {NULL, 0}. */
rs_status rs_mapping_open(rs_mapping *map, const char *path, rs_error *err);
/* Wraps caller-owned memory (fuzzers, tests); nothing is freed on close. */
void rs_mapping_wrap(rs_mapping *map, const void *data, size_t size);
void rs_mapping_close(rs_mapping *map);

#endif

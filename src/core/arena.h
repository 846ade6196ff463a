/* arena.h — bump allocator for many small objects that die together
 * (parsed metadata, tensor names, token strings).
 *
 * An arena hands out aligned pieces from chunks it mallocs; everything is freed
 * at once by rs_arena_free. Allocation returns NULL on overflow or OOM, never aborts. */
#ifndef RUSTY_ARENA_H
#define RUSTY_ARENA_H

#include <stddef.h>

typedef struct rs_arena_chunk rs_arena_chunk;

typedef struct rs_arena {
    rs_arena_chunk *head; /* newest chunk first */
    size_t chunk_size;    /* default size for new chunks; 0 means 64 KiB */
    size_t total;         /* bytes handed out, for reporting */
} rs_arena;

/* An all-zero rs_arena is a valid empty arena. */
void *rs_arena_alloc(rs_arena *a, size_t size, size_t align);
void *rs_arena_calloc(rs_arena *a, size_t n, size_t size); /* zeroed, overflow-checked */
/* Copies len bytes and appends a NUL terminator. */
char *rs_arena_strndup(rs_arena *a, const char *s, size_t len);
char *rs_arena_strdup(rs_arena *a, const char *s);
void rs_arena_free(rs_arena *a);

/* Overflow-checked malloc/calloc/realloc for arrays (return NULL on overflow/OOM). */
void *rs_malloc_array(size_t n, size_t size);
void *rs_realloc_array(void *p, size_t n, size_t size);

#endif

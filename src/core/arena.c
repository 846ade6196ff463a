/* arena.c — chunked bump allocator (see arena.h). */
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct rs_arena_chunk {
    rs_arena_chunk *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    max_align_t data[]; /* aligned start of the usable bytes */
};

/* Bytes to add to p to reach a multiple of align (a power of two). Pointer
 * arithmetic on the result keeps the pointer's provenance. */
static size_t pad_to(const unsigned char *p, size_t align) {
    return (size_t)(-(uintptr_t)p & (uintptr_t)(align - 1));
}

void *rs_arena_alloc(rs_arena *a, size_t size, size_t align) {
    if (align == 0 || (align & (align - 1)) != 0 || align > 4096) return NULL;
    if (size == 0) size = 1;
    rs_arena_chunk *c = a->head;
    if (c) {
        unsigned char *base = (unsigned char *)c->data;
        size_t off = c->used + pad_to(base + c->used, align);
        if (off <= c->size && size <= c->size - off) {
            c->used = off + size;
            a->total += size;
            return base + off;
        }
    }
    size_t want = a->chunk_size ? a->chunk_size : 64 * 1024;
    if (size > SIZE_MAX / 2 - align - sizeof(rs_arena_chunk)) return NULL;
    if (want < size + align) want = size + align;
    rs_arena_chunk *n = malloc(sizeof(rs_arena_chunk) + want);
    if (!n) return NULL;
    n->size = want;
    n->used = 0;
    n->next = a->head;
    a->head = n;
    unsigned char *base = (unsigned char *)n->data;
    size_t off = pad_to(base, align);
    n->used = off + size;
    a->total += size;
    return base + off;
}

void *rs_arena_calloc(rs_arena *a, size_t n, size_t size) {
    if (size != 0 && n > SIZE_MAX / size) return NULL;
    void *p = rs_arena_alloc(a, n * size, _Alignof(max_align_t));
    if (p) memset(p, 0, n * size);
    return p;
}

char *rs_arena_strndup(rs_arena *a, const char *s, size_t len) {
    if (len == SIZE_MAX) return NULL;
    char *p = rs_arena_alloc(a, len + 1, 1);
    if (!p) return NULL;
    if (len) memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *rs_arena_strdup(rs_arena *a, const char *s) {
    return rs_arena_strndup(a, s, strlen(s));
}

void rs_arena_free(rs_arena *a) {
    rs_arena_chunk *c = a->head;
    while (c) {
        rs_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->total = 0;
}

void *rs_malloc_array(size_t n, size_t size) {
    if (size != 0 && n > SIZE_MAX / size) return NULL;
    return malloc(n * size != 0 ? n * size : 1);
}

void *rs_realloc_array(void *p, size_t n, size_t size) {
    if (size != 0 && n > SIZE_MAX / size) return NULL;
    return realloc(p, n * size != 0 ? n * size : 1);
}

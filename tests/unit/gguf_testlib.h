/* gguf_testlib.h — helpers for the GGUF tests and fuzz target (header-only).
 *
 * gb_*: a byte builder for handcrafting GGUF images in memory, independent of
 * the library's writer, so tests can state the exact bytes a file holds.
 * gguf_walk(): touches every metadata value and every tensor's first and last
 * data byte, so a parse that hands out bad pointers or lengths shows up under
 * ASan. */
#ifndef RUSTY_GGUF_TESTLIB_H
#define RUSTY_GGUF_TESTLIB_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"

typedef struct gb {
    unsigned char *p;
    size_t n, cap;
} gb;

static inline void gb_raw(gb *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        unsigned char *np = realloc(b->p, cap);
        if (!np) abort(); /* test helper: out of memory is fatal */
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
}

static inline void gb_le(gb *b, uint64_t v, unsigned w) {
    unsigned char t[8];
    for (unsigned i = 0; i < w; i++) t[i] = (unsigned char)(v >> (8 * i));
    gb_raw(b, t, w);
}

static inline void gb_u8(gb *b, uint8_t v) {
    gb_le(b, v, 1);
}
static inline void gb_u32(gb *b, uint32_t v) {
    gb_le(b, v, 4);
}
static inline void gb_u64(gb *b, uint64_t v) {
    gb_le(b, v, 8);
}
/* A GGUF string with a u64 length (v2/v3). */
static inline void gb_str(gb *b, const char *s) {
    gb_u64(b, strlen(s));
    gb_raw(b, s, strlen(s));
}
static inline void gb_pad(gb *b, size_t align) {
    while (b->n % align) gb_u8(b, 0);
}
static inline void gb_free(gb *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}
/* An exact-size heap copy, so ASan flags any read past the end. */
static inline unsigned char *gb_exact(const void *p, size_t n) {
    unsigned char *c = malloc(n ? n : 1);
    if (!c) abort();
    if (n) memcpy(c, p, n);
    return c;
}

static inline uint64_t gguf_walk_value(const rs_value *v);

static inline uint64_t gguf_walk_array(const rs_array *a) {
    uint64_t h = a->n;
    for (uint64_t i = 0; i < a->n; i++) {
        if (a->type == RS_V_STR) {
            rs_str s = rs_array_get_str(a, i);
            for (uint64_t j = 0; j < s.len; j++) h = h * 31 + (unsigned char)s.ptr[j];
        } else if (a->type == RS_V_ARR) {
            h += gguf_walk_value(&((const rs_value *)a->data)[i]);
        } else {
            h = h * 31 + (uint64_t)rs_array_get_i64(a, i) + (uint64_t)rs_array_get_u64(a, i);
            double d = rs_array_get_f64(a, i);
            h += d == d; /* NaN-safe touch */
        }
    }
    return h;
}

static inline uint64_t gguf_walk_value(const rs_value *v) {
    switch (v->type) {
    case RS_V_STR: {
        uint64_t h = v->str.len;
        for (uint64_t j = 0; j < v->str.len; j++) h = h * 31 + (unsigned char)v->str.ptr[j];
        return h;
    }
    case RS_V_ARR:
        return gguf_walk_array(&v->arr);
    default:
        return v->u; /* any scalar: the union's bits */
    }
}

static inline uint64_t gguf_walk(const rs_gguf *g) {
    uint64_t h = 0;
    for (size_t i = 0; i < g->meta.n; i++) {
        h += strlen(g->meta.kv[i].key);
        h += gguf_walk_value(&g->meta.kv[i].value);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const rs_tensor_info *t = &g->tensors[i];
        h += strlen(t->name) + (uint64_t)rs_tensor_nelements(t) + t->nbytes;
        if (t->nbytes) {
            const unsigned char *d = t->data;
            h += d[0] + d[t->nbytes - 1];
        }
        if (rs_gguf_find_tensor(g, t->name) != t) abort(); /* names are unique */
    }
    return h;
}

#endif

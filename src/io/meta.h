/* meta.h — typed key/value metadata, with GGUF's value model.
 *
 * One representation for every model format: GGUF metadata is read into it
 * as-is; a Hugging Face folder's config.json / tokenizer.json are translated
 * into the same GGUF key names ("llama.embedding_length", "tokenizer.ggml.tokens").
 * The rest of the engine reads only this.
 *
 * Ownership: an rs_meta owns an arena holding every array of keys, values,
 * string tables and nested arrays it created. Values read from a file may point
 * into that file's mapping (strings and packed scalar arrays are zero-copy), so
 * such an rs_meta is only valid while its file is open. */
#ifndef RUSTY_META_H
#define RUSTY_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/status.h"

/* Value types, numbered exactly as GGUF's gguf_type. */
typedef enum rs_vtype {
    RS_V_U8 = 0,
    RS_V_I8 = 1,
    RS_V_U16 = 2,
    RS_V_I16 = 3,
    RS_V_U32 = 4,
    RS_V_I32 = 5,
    RS_V_F32 = 6,
    RS_V_BOOL = 7,
    RS_V_STR = 8,
    RS_V_ARR = 9,
    RS_V_U64 = 10,
    RS_V_I64 = 11,
    RS_V_F64 = 12,
    RS_V_COUNT = 13,
} rs_vtype;

/* A byte string; not NUL-terminated, may contain any bytes. */
typedef struct rs_str {
    const char *ptr;
    uint64_t len;
} rs_str;

typedef struct rs_value rs_value;

typedef struct rs_array {
    rs_vtype type; /* element type */
    uint64_t n;    /* element count */
    /* RS_V_STR: rs_str[n]; RS_V_ARR: rs_value[n] (each of type RS_V_ARR);
     * scalar types: n packed little-endian elements of the GGUF width, possibly
     * unaligned: read them with rs_array_get_*(). */
    const void *data;
} rs_array;

struct rs_value {
    rs_vtype type;
    union {
        uint64_t u;   /* RS_V_U8/U16/U32/U64 */
        int64_t i;    /* RS_V_I8/I16/I32/I64 */
        double f;     /* RS_V_F32/F64 (an F32 widened exactly) */
        bool b;       /* RS_V_BOOL */
        rs_str str;   /* RS_V_STR */
        rs_array arr; /* RS_V_ARR */
    };
};

typedef struct rs_meta_kv {
    const char *key; /* NUL-terminated copy in the arena (GGUF keys hold no NUL) */
    rs_value value;
} rs_meta_kv;

typedef struct rs_meta {
    rs_meta_kv *kv; /* in insertion (file) order */
    size_t n;
    size_t cap;
    rs_arena arena;
} rs_meta;

/* Bytes of one element of a scalar type (0 for STR/ARR/invalid). */
size_t rs_vtype_size(rs_vtype t);
const char *rs_vtype_name(rs_vtype t); /* "u32", "str", "arr", ... */

void rs_meta_init(rs_meta *m);
void rs_meta_free(rs_meta *m);

/* Lookup (linear in key count; metadata has tens of keys). NULL if absent. */
const rs_value *rs_meta_find(const rs_meta *m, const char *key);

/* Typed getters. Return RS_ERR_NOT_FOUND if absent, RS_ERR_FORMAT (with the key
 * in the message) if present with an incompatible type or a value out of range.
 * Integers accept any integer type; floats accept F32/F64 and integers. */
rs_status rs_meta_get_u64(const rs_meta *m, const char *key, uint64_t *out, rs_error *err);
rs_status rs_meta_get_i64(const rs_meta *m, const char *key, int64_t *out, rs_error *err);
rs_status rs_meta_get_u32(const rs_meta *m, const char *key, uint32_t *out, rs_error *err);
rs_status rs_meta_get_f64(const rs_meta *m, const char *key, double *out, rs_error *err);
rs_status rs_meta_get_bool(const rs_meta *m, const char *key, bool *out, rs_error *err);
rs_status rs_meta_get_str(const rs_meta *m, const char *key, rs_str *out, rs_error *err);
/* Array of any element type; check arr->type yourself. */
rs_status rs_meta_get_arr(const rs_meta *m, const char *key, rs_array *out, rs_error *err);

/* Element access for scalar arrays (i < a->n is the caller's job). */
uint64_t rs_array_get_u64(const rs_array *a, uint64_t i); /* unsigned and bool element types */
int64_t rs_array_get_i64(const rs_array *a, uint64_t i);  /* any integer element type */
double rs_array_get_f64(const rs_array *a, uint64_t i);   /* any numeric element type */
rs_str rs_array_get_str(const rs_array *a, uint64_t i);   /* RS_V_STR arrays */

/* Setters: copy key and value into the arena, replacing an existing key in place
 * (keeping its position). `t` must be a scalar type matching the setter's family. */
rs_status rs_meta_set_uint(rs_meta *m, const char *key, rs_vtype t, uint64_t v);
rs_status rs_meta_set_int(rs_meta *m, const char *key, rs_vtype t, int64_t v);
rs_status rs_meta_set_float(rs_meta *m, const char *key, rs_vtype t, double v);
rs_status rs_meta_set_bool(rs_meta *m, const char *key, bool v);
rs_status rs_meta_set_str(rs_meta *m, const char *key, const char *s, size_t len);
/* Array of scalars: `data` holds n packed little-endian elements of `elem`'s width. */
rs_status rs_meta_set_arr(rs_meta *m, const char *key, rs_vtype elem, const void *data, uint64_t n);
rs_status rs_meta_set_str_arr(rs_meta *m, const char *key, const rs_str *strs, uint64_t n);
/* Deep-copies an arbitrary value (nested arrays included) into the arena. */
rs_status rs_meta_set_value(rs_meta *m, const char *key, const rs_value *v);
/* Removes a key if present. */
void rs_meta_remove(rs_meta *m, const char *key);

/* Deep structural equality of two values (for round-trip tests). */
bool rs_value_equal(const rs_value *a, const rs_value *b);

#endif

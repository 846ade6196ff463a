/* meta.c — typed key/value metadata (see meta.h). */
#include "io/meta.h"

#include <string.h>

static const char *const vtype_names[RS_V_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
};

size_t rs_vtype_size(rs_vtype t) {
    switch (t) {
    case RS_V_U8:
    case RS_V_I8:
    case RS_V_BOOL:
        return 1;
    case RS_V_U16:
    case RS_V_I16:
        return 2;
    case RS_V_U32:
    case RS_V_I32:
    case RS_V_F32:
        return 4;
    case RS_V_U64:
    case RS_V_I64:
    case RS_V_F64:
        return 8;
    default:
        return 0;
    }
}

const char *rs_vtype_name(rs_vtype t) {
    return ((unsigned)t < RS_V_COUNT) ? vtype_names[t] : "?";
}

static bool is_unsigned(rs_vtype t) {
    return t == RS_V_U8 || t == RS_V_U16 || t == RS_V_U32 || t == RS_V_U64;
}
static bool is_signed(rs_vtype t) {
    return t == RS_V_I8 || t == RS_V_I16 || t == RS_V_I32 || t == RS_V_I64;
}
static bool is_float(rs_vtype t) {
    return t == RS_V_F32 || t == RS_V_F64;
}

void rs_meta_init(rs_meta *m) {
    memset(m, 0, sizeof *m);
}

void rs_meta_free(rs_meta *m) {
    rs_arena_free(&m->arena);
    memset(m, 0, sizeof *m);
}

static rs_meta_kv *find_kv(const rs_meta *m, const char *key) {
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->kv[i].key, key) == 0) return &m->kv[i];
    return NULL;
}

const rs_value *rs_meta_find(const rs_meta *m, const char *key) {
    rs_meta_kv *kv = find_kv(m, key);
    return kv ? &kv->value : NULL;
}

static rs_status lookup(const rs_meta *m, const char *key, const rs_value **v, rs_error *err) {
    *v = rs_meta_find(m, key);
    if (!*v) return rs_error_set(err, RS_ERR_NOT_FOUND, "metadata key '%s' is missing", key);
    return RS_OK;
}

static rs_status wrong_type(const char *key, const rs_value *v, const char *want, rs_error *err) {
    return rs_error_set(err, RS_ERR_FORMAT, "metadata key '%s': expected %s, found %s", key, want,
                        rs_vtype_name(v->type));
}

rs_status rs_meta_get_u64(const rs_meta *m, const char *key, uint64_t *out, rs_error *err) {
    const rs_value *v;
    rs_status st = lookup(m, key, &v, err);
    if (st) return st;
    if (is_unsigned(v->type)) {
        *out = v->u;
        return RS_OK;
    }
    if (is_signed(v->type)) {
        if (v->i < 0)
            return rs_error_set(err, RS_ERR_FORMAT, "metadata key '%s': negative value %lld", key,
                                (long long)v->i);
        *out = (uint64_t)v->i;
        return RS_OK;
    }
    return wrong_type(key, v, "an integer", err);
}

rs_status rs_meta_get_i64(const rs_meta *m, const char *key, int64_t *out, rs_error *err) {
    const rs_value *v;
    rs_status st = lookup(m, key, &v, err);
    if (st) return st;
    if (is_signed(v->type)) {
        *out = v->i;
        return RS_OK;
    }
    if (is_unsigned(v->type)) {
        if (v->u > (uint64_t)INT64_MAX)
            return rs_error_set(err, RS_ERR_FORMAT, "metadata key '%s': value too large", key);
        *out = (int64_t)v->u;
        return RS_OK;
    }
    return wrong_type(key, v, "an integer", err);
}

rs_status rs_meta_get_u32(const rs_meta *m, const char *key, uint32_t *out, rs_error *err) {
    uint64_t u;
    rs_status st = rs_meta_get_u64(m, key, &u, err);
    if (st) return st;
    if (u > UINT32_MAX)
        return rs_error_set(err, RS_ERR_FORMAT,
                            "metadata key '%s': value %llu does not fit 32 bits", key,
                            (unsigned long long)u);
    *out = (uint32_t)u;
    return RS_OK;
}

rs_status rs_meta_get_f64(const rs_meta *m, const char *key, double *out, rs_error *err) {
    const rs_value *v;
    rs_status st = lookup(m, key, &v, err);
    if (st) return st;
    if (is_float(v->type))
        *out = v->f;
    else if (is_unsigned(v->type))
        *out = (double)v->u;
    else if (is_signed(v->type))
        *out = (double)v->i;
    else
        return wrong_type(key, v, "a number", err);
    return RS_OK;
}

rs_status rs_meta_get_bool(const rs_meta *m, const char *key, bool *out, rs_error *err) {
    const rs_value *v;
    rs_status st = lookup(m, key, &v, err);
    if (st) return st;
    if (v->type != RS_V_BOOL) return wrong_type(key, v, "bool", err);
    *out = v->b;
    return RS_OK;
}

rs_status rs_meta_get_str(const rs_meta *m, const char *key, rs_str *out, rs_error *err) {
    const rs_value *v;
    rs_status st = lookup(m, key, &v, err);
    if (st) return st;
    if (v->type != RS_V_STR) return wrong_type(key, v, "str", err);
    *out = v->str;
    return RS_OK;
}

rs_status rs_meta_get_arr(const rs_meta *m, const char *key, rs_array *out, rs_error *err) {
    const rs_value *v;
    rs_status st = lookup(m, key, &v, err);
    if (st) return st;
    if (v->type != RS_V_ARR) return wrong_type(key, v, "arr", err);
    *out = v->arr;
    return RS_OK;
}

/* Reads element i of a packed little-endian scalar array as raw bits. */
static uint64_t raw_elem(const rs_array *a, uint64_t i) {
    size_t w = rs_vtype_size(a->type);
    uint64_t bits = 0;
    memcpy(&bits, (const unsigned char *)a->data + i * w, w); /* little-endian host */
    return bits;
}

static int64_t sign_extend(uint64_t bits, size_t w) {
    if (w >= 8) return (int64_t)bits;
    unsigned shift = (unsigned)(64 - 8 * w);
    return (int64_t)(bits << shift) >> shift;
}

uint64_t rs_array_get_u64(const rs_array *a, uint64_t i) {
    return raw_elem(a, i);
}

int64_t rs_array_get_i64(const rs_array *a, uint64_t i) {
    uint64_t bits = raw_elem(a, i);
    return is_signed(a->type) ? sign_extend(bits, rs_vtype_size(a->type)) : (int64_t)bits;
}

double rs_array_get_f64(const rs_array *a, uint64_t i) {
    uint64_t bits = raw_elem(a, i);
    if (a->type == RS_V_F32) {
        float f;
        uint32_t b32 = (uint32_t)bits;
        memcpy(&f, &b32, sizeof f);
        return f;
    }
    if (a->type == RS_V_F64) {
        double d;
        memcpy(&d, &bits, sizeof d);
        return d;
    }
    if (is_signed(a->type)) return (double)sign_extend(bits, rs_vtype_size(a->type));
    return (double)bits;
}

rs_str rs_array_get_str(const rs_array *a, uint64_t i) {
    return ((const rs_str *)a->data)[i];
}

/* ---- setters ---------------------------------------------------------------- */

/* Returns the slot for key (existing or appended, key copied); NULL on OOM. */
static rs_meta_kv *slot_for(rs_meta *m, const char *key) {
    rs_meta_kv *kv = find_kv(m, key);
    if (kv) return kv;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 32;
        rs_meta_kv *grown = rs_arena_calloc(&m->arena, cap, sizeof *grown);
        if (!grown) return NULL;
        if (m->n) memcpy(grown, m->kv, m->n * sizeof *grown);
        m->kv = grown; /* the old array stays in the arena until rs_meta_free */
        m->cap = cap;
    }
    const char *k = rs_arena_strdup(&m->arena, key);
    if (!k) return NULL;
    kv = &m->kv[m->n++];
    kv->key = k;
    memset(&kv->value, 0, sizeof kv->value);
    return kv;
}

rs_status rs_meta_set_uint(rs_meta *m, const char *key, rs_vtype t, uint64_t v) {
    if (!is_unsigned(t)) return RS_ERR_ARG;
    rs_meta_kv *kv = slot_for(m, key);
    if (!kv) return RS_ERR_NOMEM;
    kv->value.type = t;
    kv->value.u = v;
    return RS_OK;
}

rs_status rs_meta_set_int(rs_meta *m, const char *key, rs_vtype t, int64_t v) {
    if (!is_signed(t)) return RS_ERR_ARG;
    rs_meta_kv *kv = slot_for(m, key);
    if (!kv) return RS_ERR_NOMEM;
    kv->value.type = t;
    kv->value.i = v;
    return RS_OK;
}

rs_status rs_meta_set_float(rs_meta *m, const char *key, rs_vtype t, double v) {
    if (!is_float(t)) return RS_ERR_ARG;
    rs_meta_kv *kv = slot_for(m, key);
    if (!kv) return RS_ERR_NOMEM;
    kv->value.type = t;
    kv->value.f = (t == RS_V_F32) ? (double)(float)v : v;
    return RS_OK;
}

rs_status rs_meta_set_bool(rs_meta *m, const char *key, bool v) {
    rs_meta_kv *kv = slot_for(m, key);
    if (!kv) return RS_ERR_NOMEM;
    kv->value.type = RS_V_BOOL;
    kv->value.b = v;
    return RS_OK;
}

static bool copy_str(rs_arena *a, rs_str *dst, const char *s, uint64_t len) {
    if (len > SIZE_MAX - 1) return false;
    char *p = rs_arena_strndup(a, s, (size_t)len);
    if (!p) return false;
    dst->ptr = p;
    dst->len = len;
    return true;
}

rs_status rs_meta_set_str(rs_meta *m, const char *key, const char *s, size_t len) {
    rs_str copy;
    if (!copy_str(&m->arena, &copy, s, len)) return RS_ERR_NOMEM;
    rs_meta_kv *kv = slot_for(m, key);
    if (!kv) return RS_ERR_NOMEM;
    kv->value.type = RS_V_STR;
    kv->value.str = copy;
    return RS_OK;
}

/* Deep-copies an array value's payload into the arena. */
static bool copy_array(rs_arena *a, rs_array *dst, const rs_array *src) {
    dst->type = src->type;
    dst->n = src->n;
    dst->data = NULL;
    if (src->type == RS_V_STR) {
        rs_str *strs = rs_arena_calloc(a, src->n ? src->n : 1, sizeof *strs);
        if (!strs) return false;
        const rs_str *in = src->data;
        for (uint64_t i = 0; i < src->n; i++)
            if (!copy_str(a, &strs[i], in[i].ptr, in[i].len)) return false;
        dst->data = strs;
    } else if (src->type == RS_V_ARR) {
        rs_value *vals = rs_arena_calloc(a, src->n ? src->n : 1, sizeof *vals);
        if (!vals) return false;
        const rs_value *in = src->data;
        for (uint64_t i = 0; i < src->n; i++) {
            vals[i].type = RS_V_ARR;
            if (!copy_array(a, &vals[i].arr, &in[i].arr)) return false;
        }
        dst->data = vals;
    } else {
        size_t w = rs_vtype_size(src->type);
        if (w == 0 || (src->n && src->n > SIZE_MAX / w)) return false;
        void *p = rs_arena_alloc(a, src->n * w, 8);
        if (!p) return false;
        if (src->n) memcpy(p, src->data, src->n * w);
        dst->data = p;
    }
    return true;
}

rs_status rs_meta_set_arr(rs_meta *m, const char *key, rs_vtype elem, const void *data,
                          uint64_t n) {
    if (rs_vtype_size(elem) == 0) return RS_ERR_ARG;
    rs_array src = {elem, n, data}, copy;
    if (!copy_array(&m->arena, &copy, &src)) return RS_ERR_NOMEM;
    rs_meta_kv *kv = slot_for(m, key);
    if (!kv) return RS_ERR_NOMEM;
    kv->value.type = RS_V_ARR;
    kv->value.arr = copy;
    return RS_OK;
}

rs_status rs_meta_set_str_arr(rs_meta *m, const char *key, const rs_str *strs, uint64_t n) {
    rs_array src = {RS_V_STR, n, strs}, copy;
    if (!copy_array(&m->arena, &copy, &src)) return RS_ERR_NOMEM;
    rs_meta_kv *kv = slot_for(m, key);
    if (!kv) return RS_ERR_NOMEM;
    kv->value.type = RS_V_ARR;
    kv->value.arr = copy;
    return RS_OK;
}

rs_status rs_meta_set_value(rs_meta *m, const char *key, const rs_value *v) {
    rs_value copy = *v;
    if (v->type == RS_V_STR) {
        if (!copy_str(&m->arena, &copy.str, v->str.ptr, v->str.len)) return RS_ERR_NOMEM;
    } else if (v->type == RS_V_ARR) {
        if (!copy_array(&m->arena, &copy.arr, &v->arr)) return RS_ERR_NOMEM;
    } else if ((unsigned)v->type >= RS_V_COUNT) {
        return RS_ERR_ARG;
    }
    rs_meta_kv *kv = slot_for(m, key);
    if (!kv) return RS_ERR_NOMEM;
    kv->value = copy;
    return RS_OK;
}

void rs_meta_remove(rs_meta *m, const char *key) {
    rs_meta_kv *kv = find_kv(m, key);
    if (!kv) return;
    size_t i = (size_t)(kv - m->kv);
    memmove(&m->kv[i], &m->kv[i + 1], (m->n - i - 1) * sizeof *kv);
    m->n--;
}

static bool str_equal(rs_str a, rs_str b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool array_equal(const rs_array *a, const rs_array *b) {
    if (a->type != b->type || a->n != b->n) return false;
    if (a->type == RS_V_STR) {
        for (uint64_t i = 0; i < a->n; i++)
            if (!str_equal(rs_array_get_str(a, i), rs_array_get_str(b, i))) return false;
        return true;
    }
    if (a->type == RS_V_ARR) {
        const rs_value *va = a->data, *vb = b->data;
        for (uint64_t i = 0; i < a->n; i++)
            if (!rs_value_equal(&va[i], &vb[i])) return false;
        return true;
    }
    size_t w = rs_vtype_size(a->type);
    return a->n == 0 || memcmp(a->data, b->data, a->n * w) == 0;
}

bool rs_value_equal(const rs_value *a, const rs_value *b) {
    if (a->type != b->type) return false;
    if (is_unsigned(a->type)) return a->u == b->u;
    if (is_signed(a->type)) return a->i == b->i;
    /* bitwise: NaN-safe (a double has no padding bits) */
    // NOLINTNEXTLINE(bugprone-suspicious-memory-comparison): deliberate bitwise equality
    if (is_float(a->type)) return memcmp(&a->f, &b->f, sizeof a->f) == 0;
    switch (a->type) {
    case RS_V_BOOL:
        return a->b == b->b;
    case RS_V_STR:
        return str_equal(a->str, b->str);
    case RS_V_ARR:
        return array_equal(&a->arr, &b->arr);
    default:
        return false;
    }
}

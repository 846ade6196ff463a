/* gguf_read.c — GGUF reader for versions 1, 2 and 3 (see gguf.h).
 *
 * Layout: "GGUF", u32 version, tensor count, kv count, the key/value pairs,
 * the tensor infos, padding to the alignment, then the data section. Version 1
 * uses u32 for counts, string and array lengths and dimensions; versions 2 and 3
 * use 64 bits. Everything is little-endian.
 *
 * The file is hostile until proven otherwise: every read is bounds-checked,
 * every count is bounded by the bytes left before anything is allocated, and
 * the tensor layout must be exactly what ggml's gguf.cpp requires (tensors in
 * file order, each starting where the previous one's padded data ends), so
 * tensors can neither overlap nor leave holes. Strings and packed scalar arrays
 * point into the mapping; only key names, tensor names, string-array indexes and
 * nested arrays are built in the metadata arena (a few allocations in total, no
 * per-string malloc). */
#include "io/gguf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Smallest encodings, used to bound counts by the bytes left: a key/value is a
 * length-prefixed non-empty key, a u32 type and at least one value byte; a tensor
 * info is a length-prefixed non-empty name, u32 n_dims, u32 type and u64 offset. */
#define KV_MIN_BYTES(lw) ((lw) + 1 + 4 + 1)
#define TI_MIN_BYTES(lw) ((lw) + 1 + 4 + 4 + 8)

typedef struct reader {
    const unsigned char *base;
    uint64_t size;
    uint64_t pos;
    unsigned lw;      /* width of counts and lengths: 4 (v1) or 8 */
    const char *file; /* for messages */
    char where[160];  /* "key #3 'general.name'" or "tensor #0 'x'", or "" */
    rs_arena *arena;
    rs_error *err;
} reader;

/* ---- messages --------------------------------------------------------------- */

/* Records "<file>: <where>: <message> (at byte <at>)". */
__attribute__((format(printf, 4, 5))) static void fail(reader *r, rs_status code, uint64_t at,
                                                       const char *fmt, ...) {
    char msg[RS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rs_error_set(r->err, code, "%s: %s%s%s (at byte %" PRIu64 ")", r->file, r->where,
                 r->where[0] ? ": " : "", msg, at);
}

/* Record the error and evaluate to its code (spelled here, not returned by the
 * variadic fail(), so that the static analyzer sees it is never RS_OK). */
#define FAIL(r, at, ...) (fail((r), RS_ERR_FORMAT, (at), __VA_ARGS__), RS_ERR_FORMAT)
#define OOM(r, at)       (fail((r), RS_ERR_NOMEM, (at), "out of memory"), RS_ERR_NOMEM)

/* Copies up to `max` bytes of a file string for a message, non-printables as '?'. */
static void printable(char *dst, size_t cap, const char *s, uint64_t len) {
    size_t max = cap - 4, n = 0;
    for (uint64_t i = 0; i < len && n < max; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (len > max) {
        memcpy(dst + n, "...", 3);
        n += 3;
    }
    dst[n] = '\0';
}

static void set_where(reader *r, const char *kind, uint64_t idx, const char *name, uint64_t len) {
    if (!kind) {
        r->where[0] = '\0';
        return;
    }
    if (!name) {
        snprintf(r->where, sizeof r->where, "%s #%" PRIu64, kind, idx);
        return;
    }
    char shown[100];
    printable(shown, sizeof shown, name, len);
    snprintf(r->where, sizeof r->where, "%s #%" PRIu64 " '%s'", kind, idx, shown);
}

/* ---- primitive reads ---------------------------------------------------------- */

static uint64_t remain(const reader *r) {
    return r->size - r->pos;
}

static uint64_t load_le(const unsigned char *p, unsigned w) {
    uint64_t v = 0;
    for (unsigned i = 0; i < w; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Reads a w-byte little-endian unsigned integer named `what`. */
static rs_status rd_uint(reader *r, unsigned w, const char *what, uint64_t *out) {
    if (remain(r) < w)
        return FAIL(r, r->pos, "file ends inside %s (needs %u bytes, %" PRIu64 " left)", what, w,
                    remain(r));
    *out = load_le(r->base + r->pos, w);
    r->pos += w;
    return RS_OK;
}

static rs_status rd_u32(reader *r, const char *what, uint32_t *out) {
    uint64_t v = 0;
    rs_status st = rd_uint(r, 4, what, &v);
    *out = (uint32_t)v;
    return st;
}

/* A count or length: u32 in version 1, u64 after. */
static rs_status rd_len(reader *r, const char *what, uint64_t *out) {
    return rd_uint(r, r->lw, what, out);
}

/* A length-prefixed byte string, pointing into the file. */
static rs_status rd_str(reader *r, const char *what, rs_str *out) {
    uint64_t at = r->pos, len;
    rs_status st = rd_len(r, what, &len);
    if (st) return st;
    if (len > remain(r))
        return FAIL(r, at, "%s length %" PRIu64 " exceeds remaining %" PRIu64 " bytes", what, len,
                    remain(r));
    out->ptr = (const char *)r->base + r->pos;
    out->len = len;
    r->pos += len;
    return RS_OK;
}

/* ---- values -------------------------------------------------------------------- */

static int64_t sign_extend(uint64_t bits, unsigned w) {
    if (w >= 8) return (int64_t)bits;
    unsigned shift = 64 - 8 * w;
    return (int64_t)(bits << shift) >> shift;
}

static rs_status rd_scalar(reader *r, rs_vtype t, rs_value *v) {
    uint64_t at = r->pos, bits;
    unsigned w = (unsigned)rs_vtype_size(t);
    rs_status st = rd_uint(r, w, rs_vtype_name(t), &bits);
    if (st) return st;
    v->type = t;
    switch (t) {
    case RS_V_U8:
    case RS_V_U16:
    case RS_V_U32:
    case RS_V_U64:
        v->u = bits;
        break;
    case RS_V_I8:
    case RS_V_I16:
    case RS_V_I32:
    case RS_V_I64:
        v->i = sign_extend(bits, w);
        break;
    case RS_V_F32: {
        uint32_t b32 = (uint32_t)bits;
        float f;
        memcpy(&f, &b32, sizeof f);
        v->f = f;
        break;
    }
    case RS_V_F64:
        memcpy(&v->f, &bits, sizeof v->f);
        break;
    case RS_V_BOOL:
        if (bits > 1) return FAIL(r, at, "bool value %" PRIu64 " is neither 0 nor 1", bits);
        v->b = bits != 0;
        break;
    default:
        return FAIL(r, at, "internal: not a scalar type %d", (int)t);
    }
    return RS_OK;
}

static rs_status rd_array(reader *r, unsigned depth, rs_array *arr);

static rs_status rd_value(reader *r, rs_vtype t, unsigned depth, rs_value *v) {
    v->type = t;
    if (t == RS_V_STR) return rd_str(r, "string", &v->str);
    if (t == RS_V_ARR) return rd_array(r, depth, &v->arr);
    return rd_scalar(r, t, v);
}

static rs_status rd_vtype(reader *r, const char *what, rs_vtype *t) {
    uint64_t at = r->pos;
    uint32_t id;
    rs_status st = rd_u32(r, what, &id);
    if (st) return st;
    if (id >= RS_V_COUNT)
        return FAIL(r, at, "invalid %s %" PRIu32 " (valid: 0..%d)", what, id, RS_V_COUNT - 1);
    *t = (rs_vtype)id;
    return RS_OK;
}

static rs_status rd_str_elems(reader *r, rs_array *arr) {
    /* every entry is written below, so no zeroing (this table can be megabytes) */
    rs_str *strs =
        rs_arena_alloc(r->arena, (size_t)(arr->n ? arr->n : 1) * sizeof *strs, _Alignof(rs_str));
    if (!strs) return OOM(r, r->pos);
    for (uint64_t i = 0; i < arr->n; i++) {
        uint64_t at = r->pos, len;
        if (remain(r) < r->lw)
            return FAIL(r, at, "file ends inside the length of string element #%" PRIu64, i);
        len = load_le(r->base + r->pos, r->lw);
        r->pos += r->lw;
        if (len > remain(r))
            return FAIL(r, at,
                        "string element #%" PRIu64 ": length %" PRIu64 " exceeds remaining %" PRIu64
                        " bytes",
                        i, len, remain(r));
        strs[i].ptr = (const char *)r->base + r->pos;
        strs[i].len = len;
        r->pos += len;
    }
    arr->data = strs;
    return RS_OK;
}

/* An array value: element type, length, elements. `depth` is 1 for a key's value. */
static rs_status rd_array(reader *r, unsigned depth, rs_array *arr) {
    uint64_t at = r->pos;
    if (depth > RS_GGUF_MAX_ARRAY_DEPTH)
        return FAIL(r, at, "arrays nested deeper than %d levels", RS_GGUF_MAX_ARRAY_DEPTH);
    rs_status st = rd_vtype(r, "array element type", &arr->type);
    if (st) return st;
    uint64_t at_len = r->pos;
    if ((st = rd_len(r, "array length", &arr->n))) return st;
    /* each element takes at least this many bytes, so the length is bounded by what is left */
    uint64_t min = arr->type == RS_V_STR   ? r->lw
                   : arr->type == RS_V_ARR ? 4 + r->lw
                                           : rs_vtype_size(arr->type);
    if (arr->n > remain(r) / min)
        return FAIL(r, at_len,
                    "array length %" PRIu64 " exceeds remaining %" PRIu64
                    " bytes (%s elements take at least %" PRIu64 " bytes each)",
                    arr->n, remain(r), rs_vtype_name(arr->type), min);
    if (arr->type == RS_V_STR) return rd_str_elems(r, arr);
    if (arr->type == RS_V_ARR) {
        rs_value *vals = rs_arena_calloc(r->arena, arr->n ? arr->n : 1, sizeof *vals);
        if (!vals) return OOM(r, at);
        for (uint64_t i = 0; i < arr->n; i++) {
            vals[i].type = RS_V_ARR;
            if ((st = rd_array(r, depth + 1, &vals[i].arr))) return st;
        }
        arr->data = vals;
        return RS_OK;
    }
    /* packed scalars stay in the file */
    const unsigned char *p = r->base + r->pos;
    if (arr->type == RS_V_BOOL) {
        for (uint64_t i = 0; i < arr->n; i++)
            if (p[i] > 1)
                return FAIL(r, r->pos + i, "bool element #%" PRIu64 " is %u, neither 0 nor 1", i,
                            p[i]);
    }
    arr->data = p;
    r->pos += arr->n * min;
    return RS_OK;
}

/* ---- name sets: duplicate detection and tensor lookup ---------------------------- */

static uint64_t hash_name(const char *s, uint64_t len) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (uint64_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

typedef const char *(*name_at_fn)(const void *items, uint64_t i);

static const char *kv_name(const void *items, uint64_t i) {
    return ((const rs_meta_kv *)items)[i].key;
}
static const char *tensor_name(const void *items, uint64_t i) {
    return ((const rs_tensor_info *)items)[i].name;
}

/* Returns the slot holding `s` (its value is index + 1) or the empty slot where it goes. */
static uint64_t *probe(uint64_t *slots, uint64_t mask, const char *s, uint64_t len,
                       name_at_fn name_at, const void *items) {
    for (uint64_t h = hash_name(s, len) & mask;; h = (h + 1) & mask) {
        if (slots[h] == 0) return &slots[h];
        const char *name = name_at(items, slots[h] - 1);
        if (strncmp(name, s, len) == 0 && name[len] == '\0') return &slots[h];
    }
}

/* Capacity: a power of two at least twice n (n is bounded by the file size). */
static uint64_t set_capacity(uint64_t n) {
    uint64_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    return cap;
}

/* ---- key/value section ---------------------------------------------------------- */

static rs_status check_name(reader *r, uint64_t at, rs_str s, const char *what) {
    if (s.len == 0) return FAIL(r, at, "empty %s", what);
    if (memchr(s.ptr, 0, s.len)) return FAIL(r, at, "%s contains a NUL byte", what);
    return RS_OK;
}

static rs_status rd_kvs(reader *r, rs_meta *m, uint64_t n_kv, uint64_t *align_at) {
    rs_status st = RS_OK;
    m->kv = rs_arena_calloc(&m->arena, n_kv ? n_kv : 1, sizeof *m->kv);
    uint64_t mask = set_capacity(n_kv) - 1;
    uint64_t *slots = calloc(mask + 1, sizeof *slots);
    if (!m->kv || !slots) {
        free(slots);
        return OOM(r, r->pos);
    }
    m->cap = n_kv;
    for (uint64_t i = 0; i < n_kv && !st; i++) {
        set_where(r, "key", i, NULL, 0);
        uint64_t at = r->pos;
        rs_str k;
        if ((st = rd_str(r, "key", &k)) || (st = check_name(r, at, k, "key"))) break;
        set_where(r, "key", i, k.ptr, k.len);
        uint64_t *slot = probe(slots, mask, k.ptr, k.len, kv_name, m->kv);
        if (*slot) {
            st = FAIL(r, at, "duplicate key (first defined as key #%" PRIu64 ")", *slot - 1);
            break;
        }
        rs_meta_kv *kv = &m->kv[m->n];
        kv->key = rs_arena_strndup(&m->arena, k.ptr, (size_t)k.len);
        if (!kv->key) {
            st = OOM(r, at);
            break;
        }
        if (strcmp(kv->key, "general.alignment") == 0) *align_at = at;
        rs_vtype t;
        if ((st = rd_vtype(r, "value type", &t)) || (st = rd_value(r, t, 1, &kv->value))) break;
        *slot = ++m->n; /* index + 1 */
    }
    free(slots);
    return st;
}

/* general.alignment: optional; if present a u32 power of two (as ggml requires). */
static rs_status rd_alignment(reader *r, const rs_meta *m, uint64_t at, uint64_t *alignment) {
    *alignment = RS_GGUF_DEFAULT_ALIGNMENT;
    const rs_value *v = rs_meta_find(m, "general.alignment");
    if (!v) return RS_OK;
    snprintf(r->where, sizeof r->where, "key 'general.alignment'");
    if (v->type != RS_V_U32) return FAIL(r, at, "must be u32, found %s", rs_vtype_name(v->type));
    if (v->u == 0 || (v->u & (v->u - 1)) != 0)
        return FAIL(r, at, "alignment %" PRIu64 " is not a power of two", v->u);
    *alignment = v->u;
    return RS_OK;
}

/* ---- tensor infos ----------------------------------------------------------------- */

static uint64_t align_up(uint64_t x, uint64_t a) {
    return (x + a - 1) & ~(a - 1);
}

/* Shape: n_dims (<= 4) and the dims, each >= 0 with a product that fits int64. */
static rs_status rd_shape(reader *r, rs_tensor_info *t) {
    uint64_t at = r->pos;
    rs_status st = rd_u32(r, "n_dims", &t->n_dims);
    if (st) return st;
    if (t->n_dims > RS_MAX_DIMS)
        return FAIL(r, at, "%" PRIu32 " dimensions (at most %d)", t->n_dims, RS_MAX_DIMS);
    uint64_t at_dims = r->pos;
    for (uint32_t j = 0; j < RS_MAX_DIMS; j++) {
        t->ne[j] = 1;
        if (j >= t->n_dims) continue;
        uint64_t d, at_d = r->pos;
        if ((st = rd_len(r, "dimension", &d))) return st;
        if (d > (uint64_t)INT64_MAX)
            return FAIL(r, at_d, "dimension %" PRIu32 " is negative (%" PRId64 ")", j, (int64_t)d);
        t->ne[j] = (int64_t)d;
    }
    int64_t n = 1;
    bool zero = false;
    for (uint32_t j = 0; j < RS_MAX_DIMS; j++) zero |= t->ne[j] == 0;
    for (uint32_t j = 0; j < RS_MAX_DIMS && !zero; j++) {
        if (__builtin_mul_overflow(n, t->ne[j], &n))
            return FAIL(r, at_dims,
                        "shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
                        "] has more than 2^63-1 elements",
                        t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
    }
    return RS_OK;
}

/* Type id and exact byte size. */
static rs_status rd_type(reader *r, rs_tensor_info *t) {
    uint64_t at = r->pos;
    uint32_t id;
    rs_status st = rd_u32(r, "tensor type", &id);
    if (st) return st;
    const rs_dtype_traits *tr = id < RS_DTYPE_GGML_COUNT ? rs_dtype_get((int)id) : NULL;
    if (!tr) return FAIL(r, at, "unknown tensor type id %" PRIu32, id);
    t->type = (rs_dtype)id;
    if (t->ne[0] % tr->block_size != 0)
        return FAIL(r, at, "ne[0] = %" PRId64 " is not a multiple of the %s block size %" PRId64,
                    t->ne[0], tr->name, tr->block_size);
    int64_t n = rs_tensor_nelements(t);
    size_t row;
    if (n == 0) {
        t->nbytes = 0;
    } else if (!rs_dtype_row_size(t->type, t->ne[0], &row) ||
               __builtin_mul_overflow((uint64_t)row, (uint64_t)(n / t->ne[0]), &t->nbytes) ||
               t->nbytes > SIZE_MAX) {
        return FAIL(r, at, "%s tensor of %" PRId64 " elements: byte size overflows", tr->name, n);
    }
    return RS_OK;
}

/* Reads tensor infos; checks each offset against the running layout (`expected`). */
static rs_status rd_tensor_infos(reader *r, rs_gguf *g) {
    rs_status st = RS_OK;
    uint64_t expected = 0, n = g->n_tensors;
    g->tensors = rs_arena_calloc(&g->meta.arena, n ? n : 1, sizeof *g->tensors);
    g->name_mask = set_capacity(n) - 1;
    g->name_slots = rs_arena_calloc(&g->meta.arena, g->name_mask + 1, sizeof *g->name_slots);
    if (!g->tensors || !g->name_slots) return OOM(r, r->pos);
    for (uint64_t i = 0; i < n; i++) {
        rs_tensor_info *t = &g->tensors[i];
        set_where(r, "tensor", i, NULL, 0);
        uint64_t at = r->pos;
        rs_str s;
        if ((st = rd_str(r, "tensor name", &s)) || (st = check_name(r, at, s, "tensor name")))
            return st;
        set_where(r, "tensor", i, s.ptr, s.len);
        uint64_t *slot = probe(g->name_slots, g->name_mask, s.ptr, s.len, tensor_name, g->tensors);
        if (*slot)
            return FAIL(r, at, "duplicate tensor name (first used by tensor #%" PRIu64 ")",
                        *slot - 1);
        if (!(t->name = rs_arena_strndup(&g->meta.arena, s.ptr, (size_t)s.len))) return OOM(r, at);
        *slot = i + 1;
        if ((st = rd_shape(r, t)) || (st = rd_type(r, t))) return st;
        at = r->pos;
        if ((st = rd_uint(r, 8, "tensor data offset", &t->offset))) return st;
        if (t->offset % g->alignment != 0)
            return FAIL(r, at,
                        "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu64,
                        t->offset, g->alignment);
        if (t->offset < expected)
            return FAIL(r, at,
                        "data offset %" PRIu64 " overlaps tensor '%s', which ends at %" PRIu64
                        " (tensors must be stored in file order)",
                        t->offset, g->tensors[i - 1].name, expected);
        if (t->offset > expected)
            return FAIL(r, at,
                        "data offset %" PRIu64
                        " leaves a gap after the previous tensor: expected %" PRIu64
                        " (tensors must be packed in file order, each padded to %" PRIu64 " bytes)",
                        t->offset, expected, g->alignment);
        uint64_t padded = align_up(t->nbytes, g->alignment);
        if (padded < t->nbytes || __builtin_add_overflow(expected, padded, &expected))
            return FAIL(r, at, "data section size overflows");
    }
    return RS_OK;
}

/* Data section: starts at the aligned end of the infos; every tensor lies inside the file. */
static rs_status place_data(reader *r, rs_gguf *g) {
    set_where(r, NULL, 0, NULL, 0);
    uint64_t infos_end = r->pos;
    g->data_offset = align_up(infos_end, g->alignment);
    if (g->n_tensors == 0) return RS_OK; /* vocab-only files may stop before the padding */
    if (g->data_offset > r->size)
        return FAIL(r, infos_end,
                    "data section would start at byte %" PRIu64 " (aligned to %" PRIu64
                    "), past the end of the file (size %" PRIu64 ")",
                    g->data_offset, g->alignment, r->size);
    uint64_t room = r->size - g->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        rs_tensor_info *t = &g->tensors[i];
        if (t->offset > room || t->nbytes > room - t->offset) {
            char shown[100];
            printable(shown, sizeof shown, t->name, strlen(t->name));
            return rs_error_set(r->err, RS_ERR_FORMAT,
                                "%s: tensor '%s': data [offset %" PRIu64 ", %" PRIu64
                                " bytes] at file bytes %" PRIu64 "..%" PRIu64
                                " extends past end of file (size %" PRIu64 ")",
                                r->file, shown, t->offset, t->nbytes, g->data_offset + t->offset,
                                g->data_offset + t->offset + t->nbytes, r->size);
        }
        t->data = r->base + g->data_offset + t->offset;
    }
    return RS_OK;
}

/* ---- header and driver ------------------------------------------------------------ */

static rs_status rd_header(reader *r, rs_gguf *g, uint64_t *n_kv) {
    if (r->size < 4)
        return FAIL(r, 0, "file is %" PRIu64 " bytes, too short for a GGUF header", r->size);
    if (memcmp(r->base, RS_GGUF_MAGIC, 4) != 0) {
        char shown[16];
        printable(shown, sizeof shown, (const char *)r->base, 4);
        return FAIL(r, 0, "bad magic '%s' (expected 'GGUF')", shown);
    }
    r->pos = 4;
    rs_status st = rd_u32(r, "version", &g->version);
    if (st) return st;
    if (g->version < 1 || g->version > 3)
        return FAIL(r, 4, "unsupported GGUF version %" PRIu32 " (supported: 1, 2, 3)%s", g->version,
                    (g->version & 0xffff) == 0 ? "; a big-endian file?" : "");
    r->lw = g->version == 1 ? 4 : 8;
    uint64_t at = r->pos;
    if ((st = rd_len(r, "tensor count", &g->n_tensors)) ||
        (st = rd_len(r, "key/value count", n_kv)))
        return st;
    /* bound both counts by the bytes left before allocating anything */
    uint64_t left = remain(r), kv_min = KV_MIN_BYTES(r->lw), ti_min = TI_MIN_BYTES(r->lw);
    if (*n_kv > left / kv_min)
        return FAIL(r, at + r->lw,
                    "key/value count %" PRIu64 " exceeds what the remaining %" PRIu64
                    " bytes can hold (at least %" PRIu64 " bytes each)",
                    *n_kv, left, kv_min);
    if (g->n_tensors > (left - *n_kv * kv_min) / ti_min)
        return FAIL(r, at,
                    "tensor count %" PRIu64 " exceeds what the remaining %" PRIu64
                    " bytes can hold (at least %" PRIu64 " bytes each after the keys)",
                    g->n_tensors, left, ti_min);
    return RS_OK;
}

static rs_status parse(rs_gguf *g, const char *file, rs_error *err) {
    reader r = {.base = g->map.data, .size = g->map.size, .file = file, .err = err};
    r.arena = &g->meta.arena;
    uint64_t n_kv, align_at = 0;
    rs_status st = rd_header(&r, g, &n_kv);
    if (!st) st = rd_kvs(&r, &g->meta, n_kv, &align_at);
    if (!st) st = rd_alignment(&r, &g->meta, align_at, &g->alignment);
    if (!st) st = rd_tensor_infos(&r, g);
    if (!st) st = place_data(&r, g);
    return st;
}

static void gguf_init(rs_gguf *g) {
    memset(g, 0, sizeof *g);
    rs_meta_init(&g->meta);
    g->alignment = RS_GGUF_DEFAULT_ALIGNMENT;
}

rs_status rs_gguf_open(rs_gguf *g, const char *path, rs_error *err) {
    gguf_init(g);
    rs_status st = rs_mapping_open(&g->map, path, err);
    if (!st) st = parse(g, path, err);
    if (st) rs_gguf_close(g);
    return st;
}

rs_status rs_gguf_open_memory(rs_gguf *g, const void *data, size_t size, rs_error *err) {
    gguf_init(g);
    rs_mapping_wrap(&g->map, data, size);
    rs_status st = parse(g, "<memory>", err);
    if (st) rs_gguf_close(g);
    return st;
}

void rs_gguf_close(rs_gguf *g) {
    rs_meta_free(&g->meta);
    rs_mapping_close(&g->map);
    memset(g, 0, sizeof *g);
}

const rs_tensor_info *rs_gguf_find_tensor(const rs_gguf *g, const char *name) {
    if (!g->name_slots) return NULL;
    uint64_t *slot =
        probe(g->name_slots, g->name_mask, name, strlen(name), tensor_name, g->tensors);
    return *slot ? &g->tensors[*slot - 1] : NULL;
}

/* safetensors_read.c — validating safetensors reader (see safetensors.h for the rules). */
#include "io/safetensors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json_util.h"

/* ---- types ------------------------------------------------------------------ */

// NOLINTNEXTLINE(clang-analyzer-optin.performance.Padding): one small static table
typedef struct st_dtype {
    const char *name;
    rs_dtype type; /* meaningful only when supported */
    size_t size;
    bool supported;
} st_dtype;

/* Every type the safetensors format defines; the unsupported ones are listed so
 * that a valid file using them gets "unsupported", not "malformed". */
static const st_dtype st_dtypes[] = {
    {"F64", RS_DTYPE_F64, 8, true},      {"F32", RS_DTYPE_F32, 4, true},
    {"F16", RS_DTYPE_F16, 2, true},      {"BF16", RS_DTYPE_BF16, 2, true},
    {"I64", RS_DTYPE_I64, 8, true},      {"I32", RS_DTYPE_I32, 4, true},
    {"I16", RS_DTYPE_I16, 2, true},      {"I8", RS_DTYPE_I8, 1, true},
    {"U8", RS_DTYPE_U8, 1, true},        {"BOOL", RS_DTYPE_BOOL, 1, true},
    {"U16", RS_DTYPE_F32, 2, false},     {"U32", RS_DTYPE_F32, 4, false},
    {"U64", RS_DTYPE_F32, 8, false},     {"F8_E4M3", RS_DTYPE_F32, 1, false},
    {"F8_E5M2", RS_DTYPE_F32, 1, false}, {"F8_E8M0", RS_DTYPE_F32, 1, false},
    {"F4", RS_DTYPE_F32, 1, false},      {"F6_E2M3", RS_DTYPE_F32, 1, false},
    {"F6_E3M2", RS_DTYPE_F32, 1, false}, {"C64", RS_DTYPE_F32, 8, false},
};
#define N_ST_DTYPES (sizeof st_dtypes / sizeof st_dtypes[0])

const char *rs_safetensors_dtype_name(rs_dtype t) {
    for (size_t i = 0; i < N_ST_DTYPES; i++)
        if (st_dtypes[i].supported && st_dtypes[i].type == t) return st_dtypes[i].name;
    return NULL;
}

size_t rs_safetensors_dtype_size(rs_dtype t) {
    for (size_t i = 0; i < N_ST_DTYPES; i++)
        if (st_dtypes[i].supported && st_dtypes[i].type == t) return st_dtypes[i].size;
    return 0;
}

static const st_dtype *find_dtype(const char *name) {
    for (size_t i = 0; i < N_ST_DTYPES; i++)
        if (strcmp(st_dtypes[i].name, name) == 0) return &st_dtypes[i];
    return NULL;
}

/* ---- name index (shared with the set) ---------------------------------------- */

static int cmp_info_name(const void *a, const void *b) {
    const rs_tensor_info *x = *(const rs_tensor_info *const *)a;
    const rs_tensor_info *y = *(const rs_tensor_info *const *)b;
    return strcmp(x->name, y->name);
}

void rs_tensor_sort_by_name(const rs_tensor_info **by, uint64_t n, const char **dup) {
    *dup = NULL;
    // NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers
    if (n > 1) qsort(by, (size_t)n, sizeof *by, cmp_info_name);
    for (uint64_t i = 1; i < n; i++) {
        if (strcmp(by[i - 1]->name, by[i]->name) == 0) {
            *dup = by[i]->name;
            return;
        }
    }
}

const rs_tensor_info *rs_tensor_bsearch(const rs_tensor_info *const *by, uint64_t n,
                                        const char *name) {
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(by[mid]->name, name);
        if (c == 0) return by[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const rs_tensor_info *rs_safetensors_find(const rs_safetensors *st, const char *name) {
    return rs_tensor_bsearch(st->by_name, st->n_tensors, name);
}

/* ---- lexical checks cJSON does not make ---------------------------------------- */

/* Rejects numbers not spelled as plain non-negative decimal integers: the
 * reference reads shapes and offsets as usize and refuses "1.0", "1e3", "-0" and
 * leading zeros, which cJSON would accept. Strings are skipped (rs_json_parse
 * has already checked them). */
static rs_status header_number_check(const char *h, size_t n, rs_error *err) {
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (in_str) {
            if (c == '"')
                in_str = false;
            else if (c == '\\')
                i++; /* skip the escaped character */
        } else if (c == '"') {
            in_str = true;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t j = i;
            bool plain = true;
            while (j < n && h[j] && strchr("0123456789+-.eE", h[j])) {
                if (h[j] < '0' || h[j] > '9') plain = false;
                j++;
            }
            if (h[i] == '0' && j - i > 1) plain = false;
            if (!plain)
                return rs_error_set(err, RS_ERR_FORMAT,
                                    "header byte %zu: number '%.*s' is not a plain non-negative "
                                    "integer",
                                    i, (int)(j - i > 40 ? 40 : j - i), h + i);
            i = j - 1;
        }
    }
    return RS_OK;
}

/* ---- one tensor entry ------------------------------------------------------------ */

/* "[2, 3, 4]" (outermost first, as in the file) into buf. */
static const char *shape_str(char *buf, size_t cap, const uint64_t *dims, size_t n) {
    size_t at = 0;
    at += (size_t)snprintf(buf + at, cap - at, "[");
    for (size_t i = 0; i < n && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%llu", i ? ", " : "",
                               (unsigned long long)dims[i]);
    if (at < cap) snprintf(buf + at, cap - at, "]");
    return buf;
}

/* Sets "tensor '<name>': <message>". */
static void terr(rs_error *err, const char *name, rs_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void terr(rs_error *err, const char *name, rs_status code, const char *fmt, ...) {
    char msg[RS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rs_error_set(err, code, "tensor '%.200s': %s", name, msg);
}
/* Sets the message and evaluates to `code` (spelled here, not returned by the
 * variadic terr(), so that the static analyzer sees it is never RS_OK). */
#define TERR(code, ...) (terr(err, name, code, __VA_ARGS__), (code))

typedef struct entry_fields {
    const cJSON *dtype, *shape, *offsets;
} entry_fields;

static rs_status get_fields(const cJSON *e, const char *name, entry_fields *f, rs_error *err) {
    memset(f, 0, sizeof *f);
    if (!cJSON_IsObject(e))
        return TERR(RS_ERR_FORMAT, "entry is JSON %s, expected an object", rs_json_type_name(e));
    for (const cJSON *c = e->child; c; c = c->next) {
        const cJSON **slot = NULL;
        if (strcmp(c->string, "dtype") == 0)
            slot = &f->dtype;
        else if (strcmp(c->string, "shape") == 0)
            slot = &f->shape;
        else if (strcmp(c->string, "data_offsets") == 0)
            slot = &f->offsets;
        else
            return TERR(RS_ERR_FORMAT,
                        "unknown field '%.100s' (expected dtype, shape, data_offsets)", c->string);
        if (*slot) return TERR(RS_ERR_FORMAT, "field '%s' given twice", c->string);
        *slot = c;
    }
    if (!f->dtype) return TERR(RS_ERR_FORMAT, "missing field 'dtype'");
    if (!f->shape) return TERR(RS_ERR_FORMAT, "missing field 'shape'");
    if (!f->offsets) return TERR(RS_ERR_FORMAT, "missing field 'data_offsets'");
    if (!cJSON_IsString(f->dtype))
        return TERR(RS_ERR_FORMAT, "dtype is a %s, expected a string", rs_json_type_name(f->dtype));
    if (!cJSON_IsArray(f->shape))
        return TERR(RS_ERR_FORMAT, "shape is a %s, expected an array", rs_json_type_name(f->shape));
    if (!cJSON_IsArray(f->offsets))
        return TERR(RS_ERR_FORMAT, "data_offsets is a %s, expected an array of 2 integers",
                    rs_json_type_name(f->offsets));
    return RS_OK;
}

/* Validates one entry and fills *t (except the name). data/data_size: the data buffer. */
static rs_status parse_entry(const cJSON *e, const char *name, const unsigned char *data,
                             uint64_t data_size, rs_tensor_info *t, rs_error *err) {
    entry_fields f;
    rs_status s = get_fields(e, name, &f, err);
    if (s) return s;

    const st_dtype *dt = find_dtype(f.dtype->valuestring);
    if (!dt) return TERR(RS_ERR_FORMAT, "unknown dtype '%.40s'", f.dtype->valuestring);
    if (!dt->supported)
        return TERR(
            RS_ERR_UNSUPPORTED,
            "dtype %s is not supported (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)",
            dt->name);

    uint64_t dims[RS_MAX_DIMS];
    size_t nd = 0;
    uint64_t nel = 1;
    bool overflow = false;
    for (const cJSON *d = f.shape->child; d; d = d->next, nd++) {
        uint64_t v;
        const char *why = rs_json_get_uint(d, RS_JSON_MAX_EXACT_INT, &v);
        if (why) return TERR(RS_ERR_FORMAT, "shape[%zu] %s", nd, why);
        if (nd < RS_MAX_DIMS) dims[nd] = v;
        if (__builtin_mul_overflow(nel, v, &nel) || nel > (uint64_t)INT64_MAX) overflow = true;
    }
    if (nd > RS_MAX_DIMS)
        return TERR(RS_ERR_UNSUPPORTED, "%zu dimensions; at most %d are supported", nd,
                    RS_MAX_DIMS);
    char sbuf[128];
    uint64_t nbytes = 0;
    if (overflow || __builtin_mul_overflow(nel, (uint64_t)dt->size, &nbytes))
        return TERR(RS_ERR_FORMAT, "shape %s: element count overflows",
                    shape_str(sbuf, sizeof sbuf, dims, nd));

    if (rs_json_count(f.offsets) != 2)
        return TERR(RS_ERR_FORMAT, "data_offsets has %zu elements, expected 2",
                    rs_json_count(f.offsets));
    uint64_t begin, end;
    const char *why = rs_json_get_uint(f.offsets->child, RS_JSON_MAX_EXACT_INT, &begin);
    if (why) return TERR(RS_ERR_FORMAT, "data_offsets[0] %s", why);
    why = rs_json_get_uint(f.offsets->child->next, RS_JSON_MAX_EXACT_INT, &end);
    if (why) return TERR(RS_ERR_FORMAT, "data_offsets[1] %s", why);
    if (end < begin)
        return TERR(RS_ERR_FORMAT, "data_offsets [%llu, %llu]: end is before begin",
                    (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return TERR(
            RS_ERR_FORMAT, "data_offsets [%llu, %llu]: past the end of the %llu-byte data buffer",
            (unsigned long long)begin, (unsigned long long)end, (unsigned long long)data_size);
    if (end - begin != nbytes)
        return TERR(RS_ERR_FORMAT, "data_offsets [%llu, %llu] span %llu bytes but %s %s needs %llu",
                    (unsigned long long)begin, (unsigned long long)end,
                    (unsigned long long)(end - begin), dt->name,
                    shape_str(sbuf, sizeof sbuf, dims, nd), (unsigned long long)nbytes);
    t->type = dt->type;
    t->n_dims = (uint32_t)nd;
    for (size_t i = 0; i < RS_MAX_DIMS; i++) t->ne[i] = i < nd ? (int64_t)dims[nd - 1 - i] : 1;
    t->offset = begin;
    t->nbytes = nbytes;
    t->data = data + begin;
    return RS_OK;
}

/* ---- whole header ----------------------------------------------------------------- */

static int cmp_info_offset(const void *a, const void *b) {
    const rs_tensor_info *x = *(const rs_tensor_info *const *)a;
    const rs_tensor_info *y = *(const rs_tensor_info *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return 0;
}

/* The tensors must tile the data buffer: no hole, no overlap, nothing left over. */
static rs_status check_coverage(rs_safetensors *st, rs_error *err) {
    const rs_tensor_info **by = (const rs_tensor_info **)st->by_name; /* scratch here */
    for (uint64_t i = 0; i < st->n_stored; i++) by[i] = &st->tensors[i];
    // NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers
    if (st->n_stored > 1) qsort(by, (size_t)st->n_stored, sizeof *by, cmp_info_offset);
    uint64_t at = 0;
    const rs_tensor_info *prev = NULL;
    for (uint64_t i = 0; i < st->n_stored; i++) {
        const rs_tensor_info *t = by[i];
        if (t->offset < at)
            return rs_error_set(
                err, RS_ERR_FORMAT,
                "tensor '%.200s': data_offsets [%llu, %llu] overlap tensor '%.200s'", t->name,
                (unsigned long long)t->offset, (unsigned long long)t->offset + t->nbytes,
                prev->name);
        if (t->offset > at)
            return rs_error_set(err, RS_ERR_FORMAT,
                                "data bytes [%llu, %llu) belong to no tensor (hole before tensor "
                                "'%.200s')",
                                (unsigned long long)at, (unsigned long long)t->offset, t->name);
        at = t->offset + t->nbytes;
        prev = t;
    }
    if (at != st->data_size)
        return rs_error_set(err, RS_ERR_FORMAT,
                            "the tensors cover %llu bytes but the data buffer holds %llu "
                            "(trailing bytes after the last tensor)",
                            (unsigned long long)at, (unsigned long long)st->data_size);
    return RS_OK;
}

static rs_status parse_metadata(rs_safetensors *st, const cJSON *m, rs_error *err) {
    if (cJSON_IsNull(m)) return RS_OK;
    if (!cJSON_IsObject(m))
        return rs_error_set(err, RS_ERR_FORMAT, "__metadata__ is a %s, expected an object",
                            rs_json_type_name(m));
    const char *dup;
    if (rs_json_find_duplicate_key(m, &dup))
        return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    if (dup)
        return rs_error_set(err, RS_ERR_FORMAT, "__metadata__ key '%.200s' appears twice", dup);
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return rs_error_set(err, RS_ERR_FORMAT,
                                "__metadata__ key '%.200s': value is a %s, expected a string",
                                c->string, rs_json_type_name(c));
        if (rs_meta_set_str(&st->meta, c->string, c->valuestring, strlen(c->valuestring)))
            return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    }
    return RS_OK;
}

static bool looks_like_weight(const char *s) {
    size_t n = strlen(s);
    return (n > 7 && strcmp(s + n - 7, ".weight") == 0) ||
           (n > 5 && strcmp(s + n - 5, ".bias") == 0);
}

/* Adds the torch shared-tensor aliases recorded in __metadata__ (see safetensors.h).
 * An entry from a weight name to a weight name whose target is not stored is an
 * error rather than ordinary metadata: the model would silently lose a tensor. */
static rs_status add_aliases(rs_safetensors *st, rs_error *err) {
    for (size_t i = 0; i < st->meta.n; i++) {
        const rs_meta_kv *kv = &st->meta.kv[i];
        const char *to = kv->value.str.ptr; /* NUL-terminated copy in the arena */
        if (rs_tensor_bsearch(st->by_name, st->n_stored, kv->key)) continue;
        const rs_tensor_info *target = rs_tensor_bsearch(st->by_name, st->n_stored, to);
        if (!target) {
            if (looks_like_weight(kv->key) && looks_like_weight(to))
                return rs_error_set(
                    err, RS_ERR_FORMAT,
                    "__metadata__ aliases '%.200s' to '%.200s', but '%.200s' is not "
                    "stored",
                    kv->key, to, to);
            continue;
        }
        rs_tensor_info *a = &st->tensors[st->n_tensors++];
        *a = *target;
        a->name = kv->key; /* NUL-terminated, in the same arena */
    }
    return RS_OK;
}

static rs_status parse_header(rs_safetensors *st, const cJSON *root, rs_error *err) {
    if (!cJSON_IsObject(root))
        return rs_error_set(err, RS_ERR_FORMAT, "header is a JSON %s, expected an object",
                            rs_json_type_name(root));
    const char *dup;
    if (rs_json_find_duplicate_key(root, &dup))
        return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    if (dup)
        return rs_error_set(err, RS_ERR_FORMAT, "tensor '%.200s' appears twice in the header", dup);

    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    rs_status s = meta ? parse_metadata(st, meta, err) : RS_OK;
    if (s) return s;
    size_t n_entries = rs_json_count(root) - (meta ? 1 : 0);
    size_t cap = n_entries + st->meta.n; /* every metadata entry could be an alias */
    st->tensors = rs_arena_calloc(&st->meta.arena, cap ? cap : 1, sizeof *st->tensors);
    // NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers
    st->by_name = rs_arena_calloc(&st->meta.arena, cap ? cap : 1, sizeof *st->by_name);
    if (!st->tensors || !st->by_name) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");

    const unsigned char *data = st->map.data + st->data_offset;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (c == meta) continue;
        rs_tensor_info *t = &st->tensors[st->n_stored];
        s = parse_entry(c, c->string, data, st->data_size, t, err);
        if (s) return s;
        t->name = rs_arena_strdup(&st->meta.arena, c->string);
        if (!t->name) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
        st->n_stored++;
    }
    st->n_tensors = st->n_stored;
    s = check_coverage(st, err);
    if (s) return s;

    for (uint64_t i = 0; i < st->n_stored; i++) st->by_name[i] = &st->tensors[i];
    rs_tensor_sort_by_name(st->by_name, st->n_stored, &dup);
    if (dup) return rs_error_set(err, RS_ERR_FORMAT, "tensor '%.200s' appears twice", dup);
    s = add_aliases(st, err);
    if (s) return s;
    for (uint64_t i = 0; i < st->n_tensors; i++) st->by_name[i] = &st->tensors[i];
    rs_tensor_sort_by_name(st->by_name, st->n_tensors, &dup);
    if (dup) return rs_error_set(err, RS_ERR_FORMAT, "tensor '%.200s' appears twice", dup);
    return RS_OK;
}

static rs_status parse_image(rs_safetensors *st, rs_error *err) {
    const unsigned char *p = st->map.data;
    size_t size = st->map.size;
    if (size < 8)
        return rs_error_set(err, RS_ERR_FORMAT,
                            "file is %zu bytes, too short for the 8-byte header length", size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | p[i];
    if (n > RS_SAFETENSORS_MAX_HEADER)
        return rs_error_set(err, RS_ERR_FORMAT, "header length %llu exceeds the %llu-byte limit",
                            (unsigned long long)n, RS_SAFETENSORS_MAX_HEADER);
    if (n > size - 8)
        return rs_error_set(err, RS_ERR_FORMAT,
                            "header length %llu runs past the end of the file (%zu bytes)",
                            (unsigned long long)n, size);
    if (n == 0 || p[8] != '{')
        return rs_error_set(err, RS_ERR_FORMAT, "header does not start with '{'");
    st->header_len = n;
    st->data_offset = 8 + n;
    st->data_size = size - 8 - n;

    const char *h = (const char *)p + 8;
    cJSON *root;
    rs_status s = rs_json_parse(&root, h, (size_t)n, "header", err);
    if (s) return s;
    s = parse_header(st, root, err);
    cJSON_Delete(root);
    if (s) return s;
    return header_number_check(h, (size_t)n, err);
}

static rs_status open_mapped(rs_safetensors *st, const char *label, rs_error *err) {
    rs_status s = parse_image(st, err);
    if (s) {
        rs_error_one_line(err);
        rs_error_prefix(err, "%s", label);
        rs_safetensors_close(st);
    }
    return s;
}

rs_status rs_safetensors_open(rs_safetensors *st, const char *path, rs_error *err) {
    memset(st, 0, sizeof *st);
    rs_status s = rs_mapping_open(&st->map, path, err);
    if (s) return s;
    return open_mapped(st, path, err);
}

rs_status rs_safetensors_open_memory(rs_safetensors *st, const void *data, size_t size,
                                     rs_error *err) {
    memset(st, 0, sizeof *st);
    rs_mapping_wrap(&st->map, data, size);
    return open_mapped(st, "<memory>", err);
}

void rs_safetensors_close(rs_safetensors *st) {
    rs_meta_free(&st->meta);
    rs_mapping_close(&st->map);
    memset(st, 0, sizeof *st);
}

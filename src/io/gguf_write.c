/* gguf_write.c — streaming GGUF version 3 writer (see gguf.h).
 *
 * The header, every key/value and every tensor info are written at open, after
 * the whole input has been validated (so a bad argument never leaves a file
 * behind). Tensor bytes follow one tensor at a time, so a model larger than
 * memory can be written. The layout is the one ggml's gguf.cpp writes and
 * requires: zero padding to the alignment after the tensor infos, then each
 * tensor's data at the next aligned offset, each followed by zero padding
 * (the last one too). The file is written as "<path>.tmp" and renamed over
 * `path` only when complete. */
#include "io/gguf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ggml keeps tensor names in char[64] and rejects longer ones. */
#define GGML_NAME_MAX 64

struct rs_gguf_writer {
    FILE *f;
    char *path; /* final name */
    char *tmp;  /* "<path>.tmp", removed on failure */
    uint64_t n_tensors;
    uint64_t next;    /* index of the next tensor to put */
    uint64_t *nbytes; /* per tensor */
    uint64_t alignment;
    uint64_t pos; /* bytes written so far */
    int io_errno; /* first write error, 0 if none */
};

/* ---- validation --------------------------------------------------------------- */

static bool fits_uint(uint64_t v, size_t w) {
    return w >= 8 || v < (1ull << (8 * w));
}
static bool fits_int(int64_t v, size_t w) {
    if (w >= 8) return true;
    int64_t lim = (int64_t)1 << (8 * w - 1);
    return v >= -lim && v < lim;
}

/* Checks a value can be written; on failure writes the reason into why[cap]. */
static bool check_value(const rs_value *v, unsigned depth, char *why, size_t cap);

static bool check_array(const rs_array *a, unsigned depth, char *why, size_t cap) {
    if (depth > RS_GGUF_MAX_ARRAY_DEPTH) {
        snprintf(why, cap, "arrays nested deeper than %d levels", RS_GGUF_MAX_ARRAY_DEPTH);
        return false;
    }
    if ((unsigned)a->type >= RS_V_COUNT) {
        snprintf(why, cap, "invalid array element type %d", (int)a->type);
        return false;
    }
    if (a->n && !a->data) {
        snprintf(why, cap, "array of %" PRIu64 " elements has no data", a->n);
        return false;
    }
    if (a->type == RS_V_STR) {
        const rs_str *s = a->data;
        for (uint64_t i = 0; i < a->n; i++) {
            if (s[i].len && !s[i].ptr) {
                snprintf(why, cap, "string element #%" PRIu64 " has no data", i);
                return false;
            }
        }
    } else if (a->type == RS_V_ARR) {
        const rs_value *e = a->data;
        for (uint64_t i = 0; i < a->n; i++) {
            if (e[i].type != RS_V_ARR) {
                snprintf(why, cap, "element #%" PRIu64 " of an array of arrays is %s", i,
                         rs_vtype_name(e[i].type));
                return false;
            }
            if (!check_array(&e[i].arr, depth + 1, why, cap)) return false;
        }
    } else if (a->type == RS_V_BOOL) {
        const unsigned char *b = a->data;
        for (uint64_t i = 0; i < a->n; i++) {
            if (b[i] > 1) {
                snprintf(why, cap, "bool element #%" PRIu64 " is %u, neither 0 nor 1", i, b[i]);
                return false;
            }
        }
    }
    return true;
}

static bool check_value(const rs_value *v, unsigned depth, char *why, size_t cap) {
    size_t w = rs_vtype_size(v->type);
    switch (v->type) {
    case RS_V_U8:
    case RS_V_U16:
    case RS_V_U32:
    case RS_V_U64:
        if (fits_uint(v->u, w)) return true;
        snprintf(why, cap, "value %" PRIu64 " does not fit %s", v->u, rs_vtype_name(v->type));
        return false;
    case RS_V_I8:
    case RS_V_I16:
    case RS_V_I32:
    case RS_V_I64:
        if (fits_int(v->i, w)) return true;
        snprintf(why, cap, "value %" PRId64 " does not fit %s", v->i, rs_vtype_name(v->type));
        return false;
    case RS_V_F32:
    case RS_V_F64:
    case RS_V_BOOL:
        return true;
    case RS_V_STR:
        if (!v->str.len || v->str.ptr) return true;
        snprintf(why, cap, "string has no data");
        return false;
    case RS_V_ARR:
        return check_array(&v->arr, depth, why, cap);
    default:
        snprintf(why, cap, "invalid value type %d", (int)v->type);
        return false;
    }
}

static rs_status check_meta(const char *path, const rs_meta *meta, uint64_t *alignment,
                            rs_error *err) {
    char why[200];
    *alignment = RS_GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < meta->n; i++) {
        const rs_meta_kv *kv = &meta->kv[i];
        if (!kv->key || !kv->key[0])
            return rs_error_set(err, RS_ERR_ARG, "%s: key #%zu is empty", path, i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(meta->kv[j].key, kv->key) == 0)
                return rs_error_set(err, RS_ERR_ARG, "%s: key #%zu '%s' duplicates key #%zu", path,
                                    i, kv->key, j);
        if (!check_value(&kv->value, 1, why, sizeof why))
            return rs_error_set(err, RS_ERR_ARG, "%s: key #%zu '%s': %s", path, i, kv->key, why);
        if (strcmp(kv->key, "general.alignment") == 0) {
            const rs_value *v = &kv->value;
            if (v->type != RS_V_U32 || v->u == 0 || (v->u & (v->u - 1)) != 0)
                return rs_error_set(err, RS_ERR_ARG,
                                    "%s: key 'general.alignment' must be a u32 power of two", path);
            *alignment = v->u;
        }
    }
    return RS_OK;
}

static rs_status check_tensor(const char *path, const rs_tensor_info *t, uint64_t i,
                              rs_error *err) {
    if (!t->name || !t->name[0])
        return rs_error_set(err, RS_ERR_ARG, "%s: tensor #%" PRIu64 " has no name", path, i);
    size_t len = strlen(t->name);
    if (len >= GGML_NAME_MAX)
        return rs_error_set(err, RS_ERR_ARG,
                            "%s: tensor #%" PRIu64 " '%s': name is %zu bytes, GGUF readers "
                            "(ggml) accept at most %d",
                            path, i, t->name, len, GGML_NAME_MAX - 1);
    const rs_dtype_traits *tr =
        (unsigned)t->type < RS_DTYPE_GGML_COUNT ? rs_dtype_get((int)t->type) : NULL;
    if (!tr)
        return rs_error_set(err, RS_ERR_ARG, "%s: tensor '%s': type %d cannot be stored in GGUF",
                            path, t->name, (int)t->type);
    if (t->n_dims > RS_MAX_DIMS)
        return rs_error_set(err, RS_ERR_ARG, "%s: tensor '%s': %" PRIu32 " dimensions (at most %d)",
                            path, t->name, t->n_dims, RS_MAX_DIMS);
    int64_t n = 1;
    bool zero = false;
    for (uint32_t j = 0; j < t->n_dims; j++) {
        if (t->ne[j] < 0)
            return rs_error_set(err, RS_ERR_ARG,
                                "%s: tensor '%s': dimension %" PRIu32 " is negative", path, t->name,
                                j);
        zero |= t->ne[j] == 0;
    }
    for (uint32_t j = 0; j < t->n_dims && !zero; j++)
        if (__builtin_mul_overflow(n, t->ne[j], &n))
            return rs_error_set(err, RS_ERR_ARG, "%s: tensor '%s': element count overflows", path,
                                t->name);
    int64_t ne0 = t->n_dims ? t->ne[0] : 1;
    uint64_t want = 0;
    size_t row;
    if (ne0 % tr->block_size != 0)
        return rs_error_set(err, RS_ERR_ARG,
                            "%s: tensor '%s': ne[0] = %" PRId64 " is not a multiple of the %s "
                            "block size %" PRId64,
                            path, t->name, ne0, tr->name, tr->block_size);
    if (!zero && (!rs_dtype_row_size(t->type, ne0, &row) ||
                  __builtin_mul_overflow((uint64_t)row, (uint64_t)(n / ne0), &want)))
        return rs_error_set(err, RS_ERR_ARG, "%s: tensor '%s': byte size overflows", path, t->name);
    if (t->nbytes != want)
        return rs_error_set(err, RS_ERR_ARG,
                            "%s: tensor '%s': nbytes %" PRIu64
                            " does not match its %s shape (%" PRIu64 " bytes)",
                            path, t->name, t->nbytes, tr->name, want);
    return RS_OK;
}

/* Names must be unique; an O(n log n) check via a sorted copy of the pointers. */
static int cmp_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static rs_status check_tensors(const char *path, const rs_tensor_info *t, uint64_t n,
                               uint64_t alignment, rs_error *err) {
    uint64_t end = 0;
    if (n && !t)
        return rs_error_set(err, RS_ERR_ARG, "%s: %" PRIu64 " tensors but no infos", path, n);
    for (uint64_t i = 0; i < n; i++) {
        rs_status st = check_tensor(path, &t[i], i, err);
        if (st) return st;
        uint64_t padded = (t[i].nbytes + alignment - 1) / alignment * alignment;
        if (padded < t[i].nbytes || __builtin_add_overflow(end, padded, &end))
            return rs_error_set(err, RS_ERR_ARG, "%s: data section size overflows at tensor '%s'",
                                path, t[i].name);
    }
    if (n < 2) return RS_OK;
    const char **names = rs_malloc_array((size_t)n, sizeof *names);
    if (!names) return rs_error_set(err, RS_ERR_NOMEM, "%s: out of memory", path);
    for (uint64_t i = 0; i < n; i++) names[i] = t[i].name;
    qsort(names, (size_t)n, sizeof *names, cmp_name);
    for (uint64_t i = 1; i < n; i++) {
        if (strcmp(names[i - 1], names[i]) == 0) {
            rs_status st =
                rs_error_set(err, RS_ERR_ARG, "%s: duplicate tensor name '%s'", path, names[i]);
            free(names);
            return st;
        }
    }
    free(names);
    return RS_OK;
}

/* ---- output --------------------------------------------------------------------- */

static void put_bytes(rs_gguf_writer *w, const void *p, uint64_t n) {
    if (w->io_errno || n == 0) return;
    errno = 0;
    if (fwrite(p, 1, (size_t)n, w->f) != n) w->io_errno = errno ? errno : EIO;
    w->pos += n;
}

static void put_le(rs_gguf_writer *w, uint64_t v, unsigned width) {
    unsigned char b[8];
    for (unsigned i = 0; i < width; i++) b[i] = (unsigned char)(v >> (8 * i));
    put_bytes(w, b, width);
}

static void put_str(rs_gguf_writer *w, const char *p, uint64_t len) {
    put_le(w, len, 8);
    put_bytes(w, p, len);
}

static void put_pad(rs_gguf_writer *w) {
    static const unsigned char zeros[256];
    uint64_t pad = (w->alignment - w->pos % w->alignment) % w->alignment;
    while (pad) {
        uint64_t k = pad < sizeof zeros ? pad : sizeof zeros;
        put_bytes(w, zeros, k);
        pad -= k;
    }
}

static void put_array(rs_gguf_writer *w, const rs_array *a);

/* A value's payload (its type id is written by the caller). */
static void put_payload(rs_gguf_writer *w, const rs_value *v) {
    unsigned width = (unsigned)rs_vtype_size(v->type);
    switch (v->type) {
    case RS_V_U8:
    case RS_V_U16:
    case RS_V_U32:
    case RS_V_U64:
        put_le(w, v->u, width);
        break;
    case RS_V_I8:
    case RS_V_I16:
    case RS_V_I32:
    case RS_V_I64:
        put_le(w, (uint64_t)v->i, width);
        break;
    case RS_V_F32: {
        float f = (float)v->f;
        uint32_t bits;
        memcpy(&bits, &f, sizeof bits);
        put_le(w, bits, 4);
        break;
    }
    case RS_V_F64: {
        uint64_t bits;
        memcpy(&bits, &v->f, sizeof bits);
        put_le(w, bits, 8);
        break;
    }
    case RS_V_BOOL:
        put_le(w, v->b ? 1 : 0, 1);
        break;
    case RS_V_STR:
        put_str(w, v->str.ptr, v->str.len);
        break;
    case RS_V_ARR:
        put_array(w, &v->arr);
        break;
    default:
        break; /* excluded by check_value */
    }
}

static void put_array(rs_gguf_writer *w, const rs_array *a) {
    put_le(w, (uint32_t)a->type, 4);
    put_le(w, a->n, 8);
    if (a->type == RS_V_STR) {
        const rs_str *s = a->data;
        for (uint64_t i = 0; i < a->n; i++) put_str(w, s[i].ptr, s[i].len);
    } else if (a->type == RS_V_ARR) {
        const rs_value *e = a->data;
        for (uint64_t i = 0; i < a->n; i++) put_array(w, &e[i].arr);
    } else {
        put_bytes(w, a->data, a->n * rs_vtype_size(a->type)); /* already packed little-endian */
    }
}

static rs_status io_fail(rs_gguf_writer *w, int e, const char *what, rs_error *err) {
    return rs_error_set(err, RS_ERR_IO, "%s: %s: %s", w->tmp, what, strerror(e));
}

/* ---- public API ------------------------------------------------------------------ */

static void writer_free(rs_gguf_writer *w) {
    free(w->nbytes);
    free(w->path);
    free(w->tmp);
    free(w);
}

void rs_gguf_writer_abort(rs_gguf_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    unlink(w->tmp);
    writer_free(w);
}

static void put_header(rs_gguf_writer *w, const rs_meta *meta, const rs_tensor_info *tensors) {
    put_bytes(w, RS_GGUF_MAGIC, 4);
    put_le(w, 3, 4);
    put_le(w, w->n_tensors, 8);
    put_le(w, meta->n, 8);
    for (size_t i = 0; i < meta->n; i++) {
        const rs_meta_kv *kv = &meta->kv[i];
        put_str(w, kv->key, strlen(kv->key));
        put_le(w, (uint32_t)kv->value.type, 4);
        put_payload(w, &kv->value);
    }
    uint64_t offset = 0;
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        const rs_tensor_info *t = &tensors[i];
        put_str(w, t->name, strlen(t->name));
        put_le(w, t->n_dims, 4);
        for (uint32_t j = 0; j < t->n_dims; j++) put_le(w, (uint64_t)t->ne[j], 8);
        put_le(w, (uint32_t)t->type, 4);
        put_le(w, offset, 8);
        w->nbytes[i] = t->nbytes;
        offset += (t->nbytes + w->alignment - 1) / w->alignment * w->alignment;
    }
    put_pad(w);
}

rs_status rs_gguf_writer_open(rs_gguf_writer **out, const char *path, const rs_meta *meta,
                              const rs_tensor_info *tensors, uint64_t n_tensors, rs_error *err) {
    *out = NULL;
    uint64_t alignment;
    rs_status st = check_meta(path, meta, &alignment, err);
    if (!st) st = check_tensors(path, tensors, n_tensors, alignment, err);
    if (st) return st;
    rs_gguf_writer *w = calloc(1, sizeof *w);
    size_t plen = strlen(path);
    if (w) {
        w->path = strdup(path);
        w->tmp = malloc(plen + 5);
        w->nbytes = rs_malloc_array((size_t)(n_tensors ? n_tensors : 1), sizeof *w->nbytes);
    }
    if (!w || !w->path || !w->tmp || !w->nbytes) {
        if (w) writer_free(w);
        return rs_error_set(err, RS_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(w->tmp, plen + 5, "%s.tmp", path);
    w->n_tensors = n_tensors;
    w->alignment = alignment;
    w->f = fopen(w->tmp, "wbe");
    if (!w->f) {
        st = rs_error_set(err, RS_ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
        writer_free(w);
        return st;
    }
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    put_header(w, meta, tensors);
    if (w->io_errno) {
        st = io_fail(w, w->io_errno, "write failed", err);
        rs_gguf_writer_abort(w);
        return st;
    }
    *out = w;
    return RS_OK;
}

rs_status rs_gguf_writer_put(rs_gguf_writer *w, uint64_t i, const void *data, uint64_t nbytes,
                             rs_error *err) {
    if (i != w->next || i >= w->n_tensors)
        return rs_error_set(err, RS_ERR_ARG,
                            "%s: tensor #%" PRIu64 " put out of order (next is #%" PRIu64
                            " of %" PRIu64 ")",
                            w->path, i, w->next, w->n_tensors);
    if (nbytes != w->nbytes[i] || (nbytes && !data))
        return rs_error_set(err, RS_ERR_ARG,
                            "%s: tensor #%" PRIu64 ": got %" PRIu64 " bytes, expected %" PRIu64,
                            w->path, i, nbytes, w->nbytes[i]);
    put_bytes(w, data, nbytes);
    put_pad(w);
    if (w->io_errno) return io_fail(w, w->io_errno, "write failed", err);
    w->next++;
    return RS_OK;
}

rs_status rs_gguf_writer_close(rs_gguf_writer *w, rs_error *err) {
    rs_status st = RS_OK;
    if (w->next != w->n_tensors) {
        st = rs_error_set(err, RS_ERR_ARG, "%s: closed after %" PRIu64 " of %" PRIu64 " tensors",
                          w->path, w->next, w->n_tensors);
    } else if (w->io_errno) {
        st = io_fail(w, w->io_errno, "write failed", err);
    } else if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0) {
        st = io_fail(w, errno, "flush failed", err);
    } else {
        FILE *f = w->f;
        w->f = NULL;
        if (fclose(f) != 0)
            st = io_fail(w, errno, "close failed", err);
        else if (rename(w->tmp, w->path) != 0)
            st = rs_error_set(err, RS_ERR_IO, "%s: cannot rename to %s: %s", w->tmp, w->path,
                              strerror(errno));
    }
    if (st) {
        rs_gguf_writer_abort(w);
        return st;
    }
    writer_free(w);
    return RS_OK;
}

rs_status rs_gguf_write(const char *path, const rs_meta *meta, const rs_tensor_info *tensors,
                        uint64_t n_tensors, rs_error *err) {
    rs_gguf_writer *w;
    rs_status st = rs_gguf_writer_open(&w, path, meta, tensors, n_tensors, err);
    if (st) return st;
    for (uint64_t i = 0; i < n_tensors; i++) {
        if ((st = rs_gguf_writer_put(w, i, tensors[i].data, tensors[i].nbytes, err))) {
            rs_gguf_writer_abort(w);
            return st;
        }
    }
    return rs_gguf_writer_close(w, err);
}

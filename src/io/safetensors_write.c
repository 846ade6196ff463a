/* safetensors_write.c — safetensors writer (see safetensors.h).
 *
 * Builds the header with cJSON, pads it with spaces to a multiple of 8 (so every
 * tensor starts 8-aligned when the previous sizes are multiples of 8, as the
 * reference writer does), writes everything to a temporary file next to the
 * target and renames it into place, so a failed write never leaves a truncated
 * file under the final name. */
#include "io/safetensors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/json_util.h"

static bool valid_utf8(const char *s, size_t n) {
    return rs_utf8_check((const unsigned char *)s, n) == n;
}

/* Checks names (present, UTF-8, unique), types, shapes and sizes of the caller's tensors. */
static rs_status check_tensors(const rs_tensor_info *tensors, uint64_t n, rs_error *err) {
    // NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers
    const rs_tensor_info **by = rs_malloc_array(n ? n : 1, sizeof *by);
    if (!by) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    uint64_t total = 0;
    rs_status s = RS_OK;
    for (uint64_t i = 0; i < n && !s; i++) {
        const rs_tensor_info *t = &tensors[i];
        by[i] = t;
        size_t es = rs_safetensors_dtype_size(t->type);
        uint64_t nel = 1;
        bool bad_shape = t->n_dims > RS_MAX_DIMS;
        for (uint32_t d = 0; d < t->n_dims && !bad_shape; d++)
            if (t->ne[d] < 0 || __builtin_mul_overflow(nel, (uint64_t)t->ne[d], &nel))
                bad_shape = true;
        uint64_t want;
        if (!t->name || !valid_utf8(t->name, strlen(t->name)) ||
            strcmp(t->name, "__metadata__") == 0)
            s = rs_error_set(err, RS_ERR_ARG, "tensor %llu: name missing, not UTF-8 or reserved",
                             (unsigned long long)i);
        else if (es == 0)
            s = rs_error_set(err, RS_ERR_ARG,
                             "tensor '%.200s': type %d cannot be stored in safetensors", t->name,
                             (int)t->type);
        else if (bad_shape || __builtin_mul_overflow(nel, (uint64_t)es, &want))
            s = rs_error_set(err, RS_ERR_ARG, "tensor '%.200s': invalid shape", t->name);
        else if (want != t->nbytes)
            s = rs_error_set(err, RS_ERR_ARG,
                             "tensor '%.200s': nbytes %llu, shape and type need %llu", t->name,
                             (unsigned long long)t->nbytes, (unsigned long long)want);
        else if (t->nbytes && !t->data)
            s = rs_error_set(err, RS_ERR_ARG, "tensor '%.200s': no data", t->name);
        else if (__builtin_add_overflow(total, t->nbytes, &total) || total > RS_JSON_MAX_EXACT_INT)
            s = rs_error_set(err, RS_ERR_ARG, "tensors too large for safetensors offsets");
    }
    if (!s) {
        const char *dup;
        rs_tensor_sort_by_name(by, n, &dup);
        if (dup) s = rs_error_set(err, RS_ERR_ARG, "tensor name '%.200s' given twice", dup);
    }
    free(by);
    return s;
}

static cJSON *raw_uint(uint64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return cJSON_CreateRaw(buf);
}

static rs_status add_metadata(cJSON *root, const rs_meta *m, rs_error *err) {
    if (!m || m->n == 0) return RS_OK;
    cJSON *obj = cJSON_AddObjectToObject(root, "__metadata__");
    if (!obj) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < m->n; i++) {
        const rs_meta_kv *kv = &m->kv[i];
        if (kv->value.type != RS_V_STR)
            return rs_error_set(
                err, RS_ERR_ARG,
                "metadata key '%.200s' is %s; safetensors metadata holds only strings", kv->key,
                rs_vtype_name(kv->value.type));
        rs_str v = kv->value.str;
        if (v.len > SIZE_MAX - 1 || memchr(v.ptr, 0, (size_t)v.len) ||
            !valid_utf8(v.ptr, (size_t)v.len) || !valid_utf8(kv->key, strlen(kv->key)))
            return rs_error_set(err, RS_ERR_ARG,
                                "metadata key '%.200s': key or value holds NUL or invalid UTF-8",
                                kv->key);
        char *copy = malloc((size_t)v.len + 1);
        if (!copy) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
        if (v.len) memcpy(copy, v.ptr, (size_t)v.len);
        copy[v.len] = '\0';
        cJSON *item = cJSON_AddStringToObject(obj, kv->key, copy);
        free(copy);
        if (!item) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    }
    return RS_OK;
}

static bool add_tensor(cJSON *root, const rs_tensor_info *t, uint64_t begin) {
    cJSON *obj = cJSON_AddObjectToObject(root, t->name);
    if (!obj || !cJSON_AddStringToObject(obj, "dtype", rs_safetensors_dtype_name(t->type)))
        return false;
    cJSON *shape = cJSON_AddArrayToObject(obj, "shape");
    if (!shape) return false;
    for (uint32_t d = t->n_dims; d-- > 0;) { /* outermost first */
        cJSON *v = raw_uint((uint64_t)t->ne[d]);
        if (!v || !cJSON_AddItemToArray(shape, v)) return false;
    }
    cJSON *off = cJSON_AddArrayToObject(obj, "data_offsets");
    if (!off) return false;
    cJSON *b = raw_uint(begin), *e = raw_uint(begin + t->nbytes);
    if (!b || !e) {
        cJSON_Delete(b);
        cJSON_Delete(e);
        return false;
    }
    cJSON_AddItemToArray(off, b); /* cannot fail for non-NULL distinct items */
    cJSON_AddItemToArray(off, e);
    return true;
}

/* The padded header text (malloc'd) and its length. */
static rs_status build_header(const rs_meta *metadata, const rs_tensor_info *tensors, uint64_t n,
                              char **out, size_t *out_len, rs_error *err) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    rs_status s = add_metadata(root, metadata, err);
    uint64_t at = 0;
    for (uint64_t i = 0; i < n && !s; i++) {
        if (!add_tensor(root, &tensors[i], at))
            s = rs_error_set(err, RS_ERR_NOMEM, "out of memory");
        at += tensors[i].nbytes;
    }
    char *json = s ? NULL : cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (s) return s;
    if (!json) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    size_t len = strlen(json), padded = (len + 7) & ~(size_t)7;
    char *buf = realloc(json, padded + 1);
    if (!buf) {
        free(json);
        return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    }
    memset(buf + len, ' ', padded - len);
    buf[padded] = '\0';
    if (padded > RS_SAFETENSORS_MAX_HEADER) {
        free(buf);
        return rs_error_set(err, RS_ERR_ARG, "header of %zu bytes exceeds the safetensors limit",
                            padded);
    }
    *out = buf;
    *out_len = padded;
    return RS_OK;
}

static rs_status write_all(FILE *f, const char *tmp, const char *header, size_t hlen,
                           const rs_tensor_info *tensors, uint64_t n, rs_error *err) {
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(header, 1, hlen, f) == hlen;
    for (uint64_t i = 0; i < n && ok; i++)
        if (tensors[i].nbytes)
            ok = fwrite(tensors[i].data, 1, (size_t)tensors[i].nbytes, f) == tensors[i].nbytes;
    if (ok) ok = fflush(f) == 0;
    if (!ok) return rs_error_set(err, RS_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    return RS_OK;
}

rs_status rs_safetensors_write(const char *path, const rs_meta *metadata,
                               const rs_tensor_info *tensors, uint64_t n, rs_error *err) {
    rs_status s = check_tensors(tensors, n, err);
    if (s) return s;
    char *header = NULL;
    size_t hlen = 0;
    s = build_header(metadata, tensors, n, &header, &hlen, err);
    if (s) return s;

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) {
        free(header);
        return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        s = rs_error_set(err, RS_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
    } else {
        s = write_all(f, tmp, header, hlen, tensors, n, err);
        if (fclose(f) != 0 && !s)
            s = rs_error_set(err, RS_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
        if (!s && rename(tmp, path) != 0)
            s = rs_error_set(err, RS_ERR_IO, "%s: cannot rename to %s: %s", tmp, path,
                             strerror(errno));
        if (s) unlink(tmp);
    }
    free(tmp);
    free(header);
    return s;
}

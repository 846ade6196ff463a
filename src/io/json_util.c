/* json_util.c — checked helpers over cJSON (see json_util.h). */
#include "io/json_util.h"

#include "core/arena.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t rs_utf8_check(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return i; /* stray continuation byte or 0xf8..0xff */
        }
        if (len > n - i) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += len;
    }
    return n;
}

static bool is_json_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Rejects what cJSON accepts but JSON forbids or C strings cannot hold: raw
 * control bytes inside strings, NUL bytes anywhere, and \u0000 escapes. */
static rs_status check_strings(const char *h, size_t n, const char *what, rs_error *err) {
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (in_str) {
            if (c == '"') {
                in_str = false;
            } else if (c == '\\') {
                if (i + 5 < n && h[i + 1] == 'u' && memcmp(h + i + 2, "0000", 4) == 0)
                    return rs_error_set(err, RS_ERR_FORMAT,
                                        "%s: byte %zu: \\u0000 (a NUL character) in a string", what,
                                        i);
                i++; /* skip the escaped character */
            } else if (c < 0x20) {
                return rs_error_set(err, RS_ERR_FORMAT,
                                    "%s: byte %zu: raw control byte 0x%02x inside a string", what,
                                    i, c);
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == 0) {
            return rs_error_set(err, RS_ERR_FORMAT, "%s: byte %zu: NUL byte", what, i);
        }
    }
    return RS_OK;
}

rs_status rs_json_parse(cJSON **out, const char *text, size_t len, const char *what,
                        rs_error *err) {
    *out = NULL;
    size_t bad = rs_utf8_check((const unsigned char *)text, len);
    if (bad != len)
        return rs_error_set(err, RS_ERR_FORMAT, "%s: invalid UTF-8 at byte %zu", what, bad);
    rs_status s = check_strings(text, len, what, err);
    if (s) return s;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t at = (end && end >= text && end <= text + len) ? (size_t)(end - text) : 0;
        return rs_error_set(err, RS_ERR_FORMAT, "%s: invalid JSON near byte %zu", what, at);
    }
    size_t at = (size_t)(end - text);
    while (at < len && is_json_space(text[at])) at++;
    if (at != len) {
        cJSON_Delete(root);
        return rs_error_set(err, RS_ERR_FORMAT,
                            "%s: unexpected data after the JSON value at byte %zu", what, at);
    }
    *out = root;
    return RS_OK;
}

const char *rs_json_type_name(const cJSON *v) {
    if (!v) return "missing";
    if (cJSON_IsString(v)) return "string";
    if (cJSON_IsNumber(v)) return "number";
    if (cJSON_IsObject(v)) return "object";
    if (cJSON_IsArray(v)) return "array";
    if (cJSON_IsBool(v)) return "bool";
    if (cJSON_IsNull(v)) return "null";
    return "raw";
}

const char *rs_json_get_uint(const cJSON *v, uint64_t max, uint64_t *out) {
    if (!cJSON_IsNumber(v)) {
        if (cJSON_IsString(v)) return "is a string, not an integer";
        if (cJSON_IsBool(v)) return "is a bool, not an integer";
        if (cJSON_IsNull(v)) return "is null, not an integer";
        if (cJSON_IsArray(v)) return "is an array, not an integer";
        if (cJSON_IsObject(v)) return "is an object, not an integer";
        return "is not an integer";
    }
    double d = v->valuedouble;
    if (!isfinite(d)) return "is not a finite number";
    if (d < 0) return "is negative";
    if (d != floor(d)) return "is not an integer";
    if (max > RS_JSON_MAX_EXACT_INT) max = RS_JSON_MAX_EXACT_INT;
    if (d > (double)max) return "is too large";
    *out = (uint64_t)d;
    return NULL;
}

static int cmp_key(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

rs_status rs_json_find_duplicate_key(const cJSON *obj, const char **dup) {
    *dup = NULL;
    size_t n = rs_json_count(obj);
    if (n < 2) return RS_OK;
    const char **keys = rs_malloc_array(n, sizeof *keys);
    if (!keys) return RS_ERR_NOMEM;
    size_t k = 0;
    for (const cJSON *c = obj->child; c; c = c->next) keys[k++] = c->string ? c->string : "";
    qsort(keys, n, sizeof *keys, cmp_key);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(keys[i - 1], keys[i]) == 0) {
            *dup = keys[i]; /* points into obj, which outlives this call */
            break;
        }
    }
    free(keys);
    return RS_OK;
}

size_t rs_json_count(const cJSON *v) {
    size_t n = 0;
    if (!v) return 0;
    for (const cJSON *c = v->child; c; c = c->next) n++;
    return n;
}

void rs_error_one_line(rs_error *err) {
    if (!err) return;
    for (char *p = err->msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
}

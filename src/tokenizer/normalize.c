/* normalize.c — normaliser steps applied to each text fragment before
 * pre-tokenization: SentencePiece's ' ' → "▁" and "▁" prefix, and the Hugging
 * Face normalizers (NFC/NFD/NFKC/NFKD, Lowercase, StripAccents, Strip,
 * Prepend, Replace) in the order the vocabulary lists them.
 *
 * Unicode work is done by utf8proc. Bytes that are not valid UTF-8 pass through
 * unchanged (a Unicode normal form of such a fragment is left as it is). */
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "tokenizer/tok_internal.h"

static bool unicode_form(rs_norm_kind k, const char *s, size_t n, rs_bytes *out) {
    if (!rs_utf8_valid(s, n)) return !rs_bytes_append(out, s, n);
    int opt = UTF8PROC_STABLE;
    switch (k) {
    case RS_NORM_NFC:
        opt |= UTF8PROC_COMPOSE;
        break;
    case RS_NORM_NFD:
        opt |= UTF8PROC_DECOMPOSE;
        break;
    case RS_NORM_NFKC:
        opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
        break;
    default:
        opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
        break;
    }
    utf8proc_uint8_t *res = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &res,
                                      (utf8proc_option_t)opt);
    if (r < 0) return !rs_bytes_append(out, s, n); /* cannot normalise: keep */
    bool ok = !rs_bytes_append(out, res, (size_t)r);
    free(res);
    return ok;
}

/* Lower-cases, or drops combining marks, code point by code point; invalid
 * bytes are copied. */
static bool map_cps(rs_norm_kind k, const char *s, size_t n, rs_bytes *out) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = rs_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (!l) {
            if (rs_bytes_append(out, s + i, 1)) return false;
            i++;
            continue;
        }
        i += l;
        if (k == RS_NORM_STRIP_ACCENTS) {
            if (rs_uc_is_mark(cp)) continue;
        } else {
            cp = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
        }
        char b[4];
        if (rs_bytes_append(out, b, rs_utf8_encode(cp, b))) return false;
    }
    return true;
}

static bool replace_literal(rs_str pat, rs_str rep, const char *s, size_t n, rs_bytes *out) {
    size_t i = 0;
    while (i < n) {
        const char *hit = pat.len <= n - i ? memmem(s + i, n - i, pat.ptr, (size_t)pat.len) : NULL;
        size_t upto = hit ? (size_t)(hit - s) : n;
        if (rs_bytes_append(out, s + i, upto - i)) return false;
        if (!hit) break;
        if (rs_bytes_append(out, rep.ptr, (size_t)rep.len)) return false;
        i = upto + (size_t)pat.len;
    }
    return true;
}

static rs_status replace_regex(const rs_norm_op *op, const char *s, size_t n, rs_bytes *out,
                               rs_error *err) {
    if (!rs_utf8_valid(s, n)) return rs_bytes_append(out, s, n);
    pcre2_match_data *md = pcre2_match_data_create(32, NULL);
    if (!md) return RS_ERR_NOMEM;
    size_t start = 0, copied = 0;
    rs_status st = RS_OK;
    while (start <= n) {
        int rc = pcre2_match(op->re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            st = rs_error_set(err, RS_ERR_RANGE, "tokenizer: normalizer regex failed (%d)", rc);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[0] == ov[1]) { /* empty matches replace nothing */
            if (ov[1] >= n) break;
            start = ov[1] + rs_utf8_lead_len((uint8_t)s[ov[1]]);
            continue;
        }
        if (rs_bytes_append(out, s + copied, ov[0] - copied) ||
            rs_bytes_append(out, op->s2.ptr, (size_t)op->s2.len)) {
            st = RS_ERR_NOMEM;
            break;
        }
        copied = start = ov[1];
    }
    if (!st && rs_bytes_append(out, s + copied, n - copied)) st = RS_ERR_NOMEM;
    pcre2_match_data_free(md);
    return st;
}

static void strip_ws(const char *s, size_t n, bool left, bool right, size_t *a, size_t *b) {
    size_t i = 0, j = n;
    uint32_t cp;
    while (left && i < j) {
        size_t l = rs_utf8_decode((const unsigned char *)s + i, j - i, &cp);
        if (!l || !rs_uc_is_whitespace(cp)) break;
        i += l;
    }
    while (right && j > i) {
        size_t k = j - 1;
        while (k > i && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
        size_t l = rs_utf8_decode((const unsigned char *)s + k, j - k, &cp);
        if (l != j - k || !rs_uc_is_whitespace(cp)) break;
        j = k;
    }
    *a = i;
    *b = j;
}

static rs_status apply(const rs_norm_op *op, const char *s, size_t n, rs_bytes *out,
                       rs_error *err) {
    size_t a, b;
    switch (op->kind) {
    case RS_NORM_NFC:
    case RS_NORM_NFD:
    case RS_NORM_NFKC:
    case RS_NORM_NFKD:
        return unicode_form(op->kind, s, n, out) ? RS_OK : RS_ERR_NOMEM;
    case RS_NORM_LOWERCASE:
    case RS_NORM_STRIP_ACCENTS:
        return map_cps(op->kind, s, n, out) ? RS_OK : RS_ERR_NOMEM;
    case RS_NORM_STRIP:
        strip_ws(s, n, op->left, op->right, &a, &b);
        return rs_bytes_append(out, s + a, b - a);
    case RS_NORM_PREPEND:
        if (n && rs_bytes_append(out, op->s1.ptr, (size_t)op->s1.len)) return RS_ERR_NOMEM;
        return rs_bytes_append(out, s, n);
    case RS_NORM_REPLACE:
        return replace_literal(op->s1, op->s2, s, n, out) ? RS_OK : RS_ERR_NOMEM;
    case RS_NORM_REPLACE_RE:
        return replace_regex(op, s, n, out, err);
    }
    return RS_OK;
}

rs_status rs_normalize(const rs_tokenizer *t, const char *s, size_t n, rs_bytes *out,
                       rs_error *err) {
    rs_bytes tmp = {0};
    out->len = 0;
    rs_status st = rs_bytes_append(out, s, n);
    for (size_t i = 0; i < t->n_norm && !st; i++) {
        tmp.len = 0;
        st = apply(&t->norm[i], out->data ? out->data : "", out->len, &tmp, err);
        rs_bytes x = *out;
        *out = tmp;
        tmp = x;
    }
    rs_bytes_free(&tmp);
    if (st == RS_ERR_NOMEM) return rs_error_set(err, st, "tokenizer: out of memory");
    return st;
}

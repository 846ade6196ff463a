/* pretok_run.c — runs the pre-tokenizer steps on one text fragment and hands
 * every resulting word to the model.
 *
 * Steps work on spans of the fragment. A split step turns each span into
 * pieces (regex matches, or single characters of a class, and the gaps between
 * them) and keeps or merges them per Hugging Face's split behaviours.
 *
 * PCRE2 in UTF mode needs valid UTF-8, but callers may pass any bytes. An
 * invalid fragment is matched through a copy in which each invalid byte is
 * U+FFFD (llama.cpp's choice), and piece boundaries are mapped back, so the
 * model still sees — and byte-level BPE still round-trips — the original bytes. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

typedef struct piece {
    uint32_t off, len;
    bool match;
} piece;

typedef struct pvec {
    piece *v;
    size_t n, cap;
} pvec;

static bool pv_push(pvec *p, size_t off, size_t len, bool match) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        piece *g = rs_realloc_array(p->v, cap, sizeof *g);
        if (!g) return false;
        p->v = g, p->cap = cap;
    }
    p->v[p->n++] = (piece){(uint32_t)off, (uint32_t)len, match};
    return true;
}

/* ---- matching -------------------------------------------------------------------- */

static rs_status ensure_matcher(rs_enc *e) {
    if (e->md) return RS_OK;
    e->md = pcre2_match_data_create(32, NULL);
    e->mctx = pcre2_match_context_create(NULL);
    if (!e->md || !e->mctx) return rs_error_set(e->err, RS_ERR_NOMEM, "tokenizer: out of memory");
    /* deep backtracking on long inputs needs more than the default 32 KiB */
    e->jit = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, NULL);
    if (e->jit) pcre2_jit_stack_assign(e->mctx, NULL, e->jit);
    return RS_OK;
}

/* Regex matches and gaps of s[off, off+len) (s valid UTF-8), appended to out. */
static rs_status regex_pieces(rs_enc *e, pcre2_code *re, const char *s, size_t off, size_t len,
                              pvec *out) {
    rs_status st = ensure_matcher(e);
    if (st) return st;
    const PCRE2_SPTR subj = (PCRE2_SPTR)(s + off);
    size_t start = 0, prev = 0;
    while (start < len) {
        int rc = pcre2_match(re, subj, len, start, PCRE2_NO_UTF_CHECK, e->md, e->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[120];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return rs_error_set(e->err, RS_ERR_RANGE, "tokenizer: pre-tokenizer regex failed: %s",
                                (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
        size_t a = ov[0], b = ov[1];
        if (a == b) { /* empty match: step over one character */
            size_t cl = rs_utf8_lead_len((uint8_t)s[off + a]);
            start = a + (cl > len - a ? len - a : cl);
            continue;
        }
        if (a > prev && !pv_push(out, off + prev, a - prev, false)) goto oom;
        if (!pv_push(out, off + a, b - a, true)) goto oom;
        prev = start = b;
    }
    if (prev < len && !pv_push(out, off + prev, len - prev, false)) goto oom;
    return RS_OK;
oom:
    return rs_error_set(e->err, RS_ERR_NOMEM, "tokenizer: out of memory");
}

static bool is_bert_punct(uint32_t c) {
    return (c < 0x80 && ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
                         (c >= 123 && c <= 126))) ||
           rs_uc_is_punct(c);
}

/* Each character satisfying the class is its own match piece. */
static rs_status class_pieces(rs_enc *e, int cls, rs_str mark, const char *s, size_t off,
                              size_t len, pvec *out) {
    size_t gap = off, end = off + len;
    for (size_t i = off; i < end;) {
        uint32_t cp = 0xFFFD;
        size_t cl = rs_utf8_decode((const unsigned char *)s + i, end - i, &cp);
        if (!cl) cl = 1;
        bool hit;
        switch (cls) {
        case RS_PRE_METASPACE:
            hit = mark.len <= end - i && memcmp(s + i, mark.ptr, (size_t)mark.len) == 0;
            if (hit) cl = (size_t)mark.len;
            break;
        case RS_PRE_WS_SPLIT:
            hit = rs_uc_is_whitespace(cp);
            break;
        case RS_PRE_PUNCT:
            hit = is_bert_punct(cp);
            break;
        default:
            hit = rs_uc_is_digit(cp);
            break; /* RS_PRE_DIGITS */
        }
        if (hit) {
            if (i > gap && !pv_push(out, gap, i - gap, false)) goto oom;
            if (!pv_push(out, i, cl, true)) goto oom;
            gap = i + cl;
        }
        i += cl;
    }
    if (end > gap && !pv_push(out, gap, end - gap, false)) goto oom;
    return RS_OK;
oom:
    return rs_error_set(e->err, RS_ERR_NOMEM, "tokenizer: out of memory");
}

/* Hugging Face's SplitDelimiterBehavior over one span's pieces p[0..n). */
static bool apply_behavior(piece *p, size_t n, rs_split_behavior b, bool invert, pvec *out) {
    if (invert)
        for (size_t i = 0; i < n; i++) p[i].match = !p[i].match;
    bool prev = false;
    size_t first = out->n;
    switch (b) {
    case RS_SPLIT_ISOLATED:
        for (size_t i = 0; i < n; i++)
            if (!pv_push(out, p[i].off, p[i].len, false)) return false;
        return true;
    case RS_SPLIT_REMOVED:
        for (size_t i = 0; i < n; i++)
            if (!p[i].match && !pv_push(out, p[i].off, p[i].len, false)) return false;
        return true;
    case RS_SPLIT_MERGED_PREV:
        for (size_t i = 0; i < n; i++) {
            if (p[i].match && !prev && out->n > first)
                out->v[out->n - 1].len = p[i].off + p[i].len - out->v[out->n - 1].off;
            else if (!pv_push(out, p[i].off, p[i].len, false))
                return false;
            prev = p[i].match;
        }
        return true;
    case RS_SPLIT_MERGED_NEXT:
        /* fold from the right, then restore the order */
        for (size_t k = n; k-- > 0;) {
            if (p[k].match && !prev && out->n > first) {
                piece *l = &out->v[out->n - 1];
                l->len = l->off + l->len - p[k].off;
                l->off = p[k].off;
            } else if (!pv_push(out, p[k].off, p[k].len, false)) {
                return false;
            }
            prev = p[k].match;
        }
        for (size_t i = first, j = out->n; i + 1 < j; i++, j--) {
            piece tmp = out->v[i];
            out->v[i] = out->v[j - 1];
            out->v[j - 1] = tmp;
        }
        return true;
    case RS_SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < n; i++) {
            if (p[i].match == prev && out->n > first)
                out->v[out->n - 1].len = p[i].off + p[i].len - out->v[out->n - 1].off;
            else if (!pv_push(out, p[i].off, p[i].len, false))
                return false;
            prev = p[i].match;
        }
        return true;
    }
    return true;
}

/* One step over all spans: in → out. */
static rs_status run_step(rs_enc *e, const rs_pre_op *op, const char *s, pvec *in, pvec *out,
                          pvec *tmp) {
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        tmp->n = 0;
        rs_status st;
        rs_split_behavior b = op->behavior;
        bool invert = op->invert;
        switch (op->kind) {
        case RS_PRE_SPLIT:
            st = regex_pieces(e, op->re, s, in->v[i].off, in->v[i].len, tmp);
            break;
        case RS_PRE_METASPACE:
            st = class_pieces(e, RS_PRE_METASPACE, op->s1, s, in->v[i].off, in->v[i].len, tmp);
            b = RS_SPLIT_MERGED_NEXT, invert = false;
            break;
        case RS_PRE_BERT:
        case RS_PRE_WS_SPLIT:
            st = class_pieces(e, RS_PRE_WS_SPLIT, op->s1, s, in->v[i].off, in->v[i].len, tmp);
            b = RS_SPLIT_REMOVED, invert = false;
            break;
        case RS_PRE_PUNCT:
            st = class_pieces(e, RS_PRE_PUNCT, op->s1, s, in->v[i].off, in->v[i].len, tmp);
            break;
        case RS_PRE_DIGITS:
        default:
            st = class_pieces(e, RS_PRE_DIGITS, op->s1, s, in->v[i].off, in->v[i].len, tmp);
            b = op->flag ? RS_SPLIT_ISOLATED : RS_SPLIT_CONTIGUOUS, invert = false;
            break;
        }
        if (st) return st;
        if (!apply_behavior(tmp->v, tmp->n, b, invert, out))
            return rs_error_set(e->err, RS_ERR_NOMEM, "tokenizer: out of memory");
    }
    if (op->kind == RS_PRE_BERT) { /* then punctuation, isolated */
        rs_pre_op punct = {.kind = RS_PRE_PUNCT, .behavior = RS_SPLIT_ISOLATED};
        pvec t2 = *in;
        *in = *out;
        *out = t2;
        return run_step(e, &punct, s, in, out, tmp);
    }
    return RS_OK;
}

/* ---- driver ---------------------------------------------------------------------------- */

typedef struct sanitized {
    rs_bytes buf;
    uint32_t *map; /* sanitized offset → original offset (len + 1 entries) */
} sanitized;

static bool sanitize(const char *s, size_t n, sanitized *o) {
    o->map = rs_malloc_array(3 * n + 1, sizeof *o->map);
    if (!o->map) return false;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = rs_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        const char *src = s + i;
        if (!l) src = "\xEF\xBF\xBD", l = 0;
        size_t w = l ? l : 3;
        for (size_t k = 0; k < w; k++) o->map[o->buf.len + k] = (uint32_t)i;
        if (rs_bytes_append(&o->buf, src, w)) return false;
        i += l ? l : 1;
    }
    o->map[o->buf.len] = (uint32_t)n;
    return true;
}

rs_status rs_pretok_run(rs_enc *e, const char *s, size_t n, bool is_first, rs_word_fn fn) {
    const rs_tokenizer *t = e->t;
    size_t first_op = 0;
    rs_bytes rewritten = {0};
    sanitized san = {{0}, NULL};
    pvec a = {0}, b = {0}, tmp = {0};
    rs_status st = RS_OK;

    if (t->n_pre && t->pre[0].kind == RS_PRE_METASPACE) {
        /* Metaspace: ' ' → mark, and the mark in front per its prepend scheme */
        const rs_pre_op *op = &t->pre[0];
        bool pre = op->scheme == RS_PREPEND_ALWAYS || (op->scheme == RS_PREPEND_FIRST && is_first);
        /* the mark is not doubled when the text already starts with a space */
        if (pre && n > 0 && s[0] != ' ' &&
            !(n >= op->s1.len && memcmp(s, op->s1.ptr, (size_t)op->s1.len) == 0))
            if (rs_bytes_append(&rewritten, op->s1.ptr, (size_t)op->s1.len)) goto oom;
        for (size_t i = 0; i < n; i++) {
            bool sp = s[i] == ' ';
            if (rs_bytes_append(&rewritten, sp ? op->s1.ptr : s + i, sp ? (size_t)op->s1.len : 1))
                goto oom;
        }
        s = rewritten.data ? rewritten.data : "";
        n = rewritten.len;
        first_op = op->flag ? 0 : 1; /* a splitting Metaspace stays as a step */
    } else if (t->bl_add_prefix && (n == 0 || s[0] != ' ')) {
        if (rs_bytes_append(&rewritten, " ", 1) || rs_bytes_append(&rewritten, s, n)) goto oom;
        s = rewritten.data;
        n = rewritten.len;
    }
    if (n == 0) goto done;

    const char *text = s;
    size_t len = n;
    if (!rs_utf8_valid(s, n)) {
        if (!sanitize(s, n, &san)) goto oom;
        text = san.buf.data;
        len = san.buf.len;
    }
    if (first_op >= t->n_pre) {
        st = fn(e, s, n);
        goto done;
    }
    if (!pv_push(&a, 0, len, false)) goto oom;
    for (size_t k = first_op; k < t->n_pre; k++) {
        st = run_step(e, &t->pre[k], text, &a, &b, &tmp);
        if (st) goto done;
        pvec x = a;
        a = b;
        b = x;
    }
    for (size_t i = 0; i < a.n && !st; i++) {
        size_t lo = a.v[i].off, hi = lo + a.v[i].len;
        if (san.map) lo = san.map[lo], hi = san.map[hi];
        if (hi > lo) st = fn(e, s + lo, hi - lo);
    }
    goto done;
oom:
    st = rs_error_set(e->err, RS_ERR_NOMEM, "tokenizer: out of memory");
done:
    rs_bytes_free(&rewritten);
    rs_bytes_free(&san.buf);
    free(san.map);
    free(a.v);
    free(b.v);
    free(tmp.v);
    return st;
}

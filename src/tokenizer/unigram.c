/* unigram.c — Unigram language-model tokenizer (tokenizer.ggml.model "t5").
 *
 * Follows SentencePiece's optimised Viterbi as llama.cpp implements it:
 *  1. normalise: user-defined pieces pass through; otherwise the longest
 *     match in the precompiled charsmap (an XOR-compressed double array,
 *     tokenizer.ggml.precompiled_charsmap) is replaced by its string; invalid
 *     UTF-8 becomes U+FFFD; spaces become "▁", with the dummy prefix and
 *     whitespace collapsing the vocabulary asks for;
 *  2. Viterbi over code points: at each position every piece in the trie that
 *     starts there extends the best path (double-precision sums of piece
 *     scores, user-defined pieces scoring 0); a code point no piece covers
 *     costs the unknown score (lowest piece score − 10);
 *  3. backtrack, fusing runs of unknown tokens into one. */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

/* ---- charsmap (XCDA) ------------------------------------------------------------- */

static bool xcda_node(const rs_tokenizer *t, size_t i, uint32_t *v) {
    if (i >= t->xcda_n) return false;
    *v = t->xcda[i];
    return true;
}

/* Longest charsmap match at s[0..n): its length and replacement, or 0. */
static size_t charsmap_match(const rs_tokenizer *t, const char *s, size_t n, const char **rep,
                             size_t *rep_n) {
    uint32_t node;
    if (!t->xcda_n || !xcda_node(t, 0, &node)) return 0;
    size_t idx = (node >> 10) << ((node & (1u << 9)) >> 6); /* BASE of the root */
    size_t best = 0, best_off = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        if (c == 0) break;
        idx ^= c;
        if (!xcda_node(t, idx, &node) || (node & ((1u << 31) | 0xFF)) != c) break; /* LCHECK */
        bool leaf = (node >> 8) & 1;
        idx ^= (node >> 10) << ((node & (1u << 9)) >> 6); /* BASE */
        if (leaf) {
            uint32_t val;
            if (!xcda_node(t, idx, &val)) break;
            best = k + 1;
            best_off = val & ((1u << 31) - 1);
        }
    }
    if (!best || best_off >= t->charsmap_repl_n) return 0;
    const char *r = t->charsmap_repl + best_off;
    size_t max = t->charsmap_repl_n - best_off, l = 0;
    while (l < max && r[l]) l++;
    if (l == max) return 0; /* unterminated replacement */
    *rep = r;
    *rep_n = l;
    return best;
}

/* Longest user-defined piece at s[0..n). */
static size_t user_match(const rs_tokenizer *t, const char *s, size_t n) {
    size_t best = 0;
    int32_t node = -1;
    for (size_t k = 0; k < n; k++) {
        node = rs_trie_step(&t->piece_trie, node, (uint8_t)s[k]);
        if (node < 0) break;
        int32_t id = t->piece_trie.nodes[node].value;
        if (id >= 0 && (t->attr[id] & RS_TOKEN_USER_DEFINED)) best = k + 1;
    }
    return best;
}

static rs_status normalize(const rs_tokenizer *t, const char *s, size_t n, rs_bytes *out) {
    const char *space = t->escape_ws ? RS_SPACE_MARK : " ";
    size_t space_n = t->escape_ws ? RS_SPACE_MARK_LEN : 1;
    bool prepend = !t->ws_suffix && t->add_space_prefix;
    bool append = t->ws_suffix && t->add_space_prefix;
    bool merge = t->remove_extra_ws, prepended = false, in_word = false;
    for (size_t i = 0; i < n;) {
        const char *rep = s + i;
        size_t rep_n, used = user_match(t, s + i, n - i);
        if (used) {
            rep_n = used;
        } else if ((used = charsmap_match(t, s + i, n - i, &rep, &rep_n))) {
        } else {
            uint32_t cp;
            used = rep_n = rs_utf8_decode((const unsigned char *)s + i, n - i, &cp);
            if (!used) rep = "\xEF\xBF\xBD", rep_n = 3, used = 1;
        }
        for (size_t k = 0; k < rep_n; k++) {
            char c = rep[k];
            if (c != ' ') {
                if (!in_word) {
                    in_word = true;
                    if (((prepend && !prepended) || merge) && rs_bytes_append(out, space, space_n))
                        return RS_ERR_NOMEM;
                    prepended = true;
                }
                if (rs_bytes_append(out, &c, 1)) return RS_ERR_NOMEM;
            } else {
                in_word = false;
                if (!merge && rs_bytes_append(out, space, space_n)) return RS_ERR_NOMEM;
            }
        }
        i += used;
    }
    if (append && rs_bytes_append(out, space, space_n)) return RS_ERR_NOMEM;
    return RS_OK;
}

/* ---- setup ------------------------------------------------------------------------- */

static rs_status load_charsmap(rs_tokenizer *t, const rs_meta *m, rs_error *err) {
    const rs_value *v = rs_meta_find(m, "tokenizer.ggml.precompiled_charsmap");
    if (!v) return RS_OK;
    if (v->type != RS_V_ARR || (v->arr.type != RS_V_U8 && v->arr.type != RS_V_I8))
        return rs_error_set(err, RS_ERR_FORMAT,
                            "tokenizer.ggml.precompiled_charsmap: expected bytes");
    size_t n = (size_t)v->arr.n;
    const unsigned char *p = v->arr.data;
    uint32_t blob = 0;
    if (n >= 4) memcpy(&blob, p, 4);
    if (n < 4 || (size_t)blob + 4 >= n || blob % 4)
        return rs_error_set(err, RS_ERR_FORMAT,
                            "tokenizer.ggml.precompiled_charsmap: bad header (%zu bytes, blob %u)",
                            n, blob);
    uint32_t *x = rs_arena_alloc(&t->arena, blob ? blob : 4, 8); /* aligned copy */
    char *r = rs_arena_alloc(&t->arena, n - 4 - blob, 1);
    if (!x || !r) return RS_ERR_NOMEM;
    memcpy(x, p + 4, blob);
    memcpy(r, p + 4 + blob, n - 4 - blob);
    t->xcda = x;
    t->xcda_n = blob / 4;
    t->charsmap_repl = r;
    t->charsmap_repl_n = n - 4 - blob;
    return RS_OK;
}

rs_status rs_ugm_build(rs_tokenizer *t, const rs_meta *m, rs_error *err) {
    t->escape_ws = true;
    const rs_value *v;
    if ((v = rs_meta_find(m, "tokenizer.ggml.remove_extra_whitespaces")) && v->type == RS_V_BOOL)
        t->remove_extra_ws = v->b;
    if ((v = rs_meta_find(m, "tokenizer.rusty.escape_whitespaces")) && v->type == RS_V_BOOL)
        t->escape_ws = v->b;
    if ((v = rs_meta_find(m, "tokenizer.rusty.treat_whitespace_as_suffix")) && v->type == RS_V_BOOL)
        t->ws_suffix = v->b;
    float min_score = FLT_MAX;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        unsigned a = t->attr[id];
        if ((a & RS_TOKEN_NORMAL) && t->score[id] < min_score) min_score = t->score[id];
        if ((a & (RS_TOKEN_NORMAL | RS_TOKEN_USER_DEFINED | RS_TOKEN_UNUSED)) &&
            !rs_trie_insert(&t->piece_trie, t->text[id].ptr, (size_t)t->text[id].len, id))
            return RS_ERR_NOMEM;
    }
    t->ugm_unk_score = (min_score == FLT_MAX ? 0.0f : min_score) - 10.0f;
    return load_charsmap(t, m, err);
}

/* ---- Viterbi ------------------------------------------------------------------------ */

typedef struct best {
    int32_t id;
    uint32_t from;
    double score;
} best;

rs_status rs_ugm_encode(rs_enc *e, const char *s, size_t n) {
    const rs_tokenizer *t = e->t;
    rs_bytes norm = {0};
    rs_status st = normalize(t, s, n, &norm);
    best *b = NULL;
    if (st || norm.len == 0) goto done;
    size_t len = norm.len;
    const char *x = norm.data;
    b = rs_malloc_array(len + 1, sizeof *b);
    if (!b) {
        st = RS_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i <= len; i++) b[i] = (best){t->unk, 0, -DBL_MAX};
    b[0].score = 0;
    for (size_t i = 0; i < len;) {
        size_t cl = rs_utf8_lead_len((uint8_t)x[i]);
        if (cl > len - i) cl = len - i;
        bool single = false;
        int32_t node = -1;
        for (size_t k = i; k < len; k++) {
            node = rs_trie_step(&t->piece_trie, node, (uint8_t)x[k]);
            if (node < 0) break;
            int32_t id = t->piece_trie.nodes[node].value;
            if (id < 0) continue;
            if (k + 1 - i == cl) single = true;
            double sc = b[i].score + ((t->attr[id] & RS_TOKEN_USER_DEFINED) ? 0.0 : t->score[id]);
            if (sc > b[k + 1].score) b[k + 1] = (best){id, (uint32_t)i, sc};
        }
        if (!single) {
            double sc = b[i].score + t->ugm_unk_score;
            if (sc > b[i + cl].score) b[i + cl] = (best){t->unk, (uint32_t)i, sc};
        }
        i += cl;
    }
    /* backtrack, then reverse into the output */
    size_t first = e->out->n;
    bool prev_unk = false;
    for (size_t at = len;;) {
        bool unk = b[at].id == t->unk;
        if (!(prev_unk && unk) && b[at].id >= 0 && rs_tok_emit(e, b[at].id)) {
            st = RS_ERR_NOMEM;
            goto done;
        }
        prev_unk = unk;
        if (b[at].from == 0) break;
        at = b[at].from;
    }
    for (size_t i = first, j = e->out->n; i + 1 < j; i++, j--) {
        int32_t tmp = e->out->ids[i];
        e->out->ids[i] = e->out->ids[j - 1];
        e->out->ids[j - 1] = tmp;
    }
done:
    rs_bytes_free(&norm);
    free(b);
    if (st == RS_ERR_NOMEM) return rs_error_set(e->err, st, "tokenizer: out of memory");
    return st;
}

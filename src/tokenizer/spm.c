/* spm.c — SentencePiece BPE setup (tokenizer.ggml.model "llama").
 *
 * SentencePiece merges two adjacent symbols whenever their concatenation is a
 * vocabulary entry, best score first (llama.cpp's llm_tokenizer_spm). Here that
 * rule is compiled at load time into the pair table used by merge.c: for every
 * entry and every split point between its characters, (left part, right part)
 * → entry, with the entry's score as priority. A left or right part is either an
 * entry itself or a single character; characters that are no entry get
 * "pseudo units" numbered from n_vocab, so merging works on integers only.
 * Symbols that end up as no entry are emitted as <0xNN> byte tokens. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static int cmp_str(const void *a, const void *b) {
    const rs_str *x = a, *y = b;
    size_t n = x->len < y->len ? (size_t)x->len : (size_t)y->len;
    int c = n ? memcmp(x->ptr, y->ptr, n) : 0;
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

static size_t char_len_at(const char *p, size_t i, size_t n) {
    size_t cl = rs_utf8_lead_len((uint8_t)p[i]);
    return cl > n - i ? n - i : cl;
}

/* Characters occurring inside multi-character entries that are no entry. */
static rs_status collect_pseudo_units(rs_tokenizer *t, size_t *n_pairs) {
    size_t cap = 0, n = 0;
    rs_str *v = NULL;
    *n_pairs = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *p = t->text[id].ptr;
        size_t len = (size_t)t->text[id].len, chars = 0;
        for (size_t i = 0; i < len; chars++) {
            size_t cl = char_len_at(p, i, len);
            if (cl < len && rs_strmap_get(&t->map, p + i, cl) < 0) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 256;
                    rs_str *g = rs_realloc_array(v, cap, sizeof *g);
                    if (!g) {
                        free(v);
                        return RS_ERR_NOMEM;
                    }
                    v = g;
                }
                v[n++] = (rs_str){p + i, cl};
            }
            i += cl;
        }
        if (chars > 1) *n_pairs += chars - 1;
    }
    if (n) qsort(v, n, sizeof *v, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || cmp_str(&v[u - 1], &v[i]) != 0) v[u++] = v[i];
    t->units = rs_arena_calloc(&t->arena, u ? u : 1, sizeof *t->units);
    if (!t->units) {
        free(v);
        return RS_ERR_NOMEM;
    }
    if (u) memcpy(t->units, v, u * sizeof *v);
    free(v);
    t->n_units = u;
    return rs_strmap_build(&t->unit_map, t->units, u, &t->arena, NULL, NULL);
}

/* Unit of a piece of an entry: the entry it equals, or a pseudo unit for a
 * single character, else -1. */
static int32_t piece_unit(const rs_tokenizer *t, const char *p, size_t n, bool single_char) {
    int32_t id = rs_strmap_get(&t->map, p, n);
    if (id >= 0 || !single_char) return id;
    int32_t u = rs_strmap_get(&t->unit_map, p, n);
    return u >= 0 ? t->n_vocab + u : -1;
}

rs_status rs_spm_build(rs_tokenizer *t, rs_error *err) {
    t->ranked = false;
    size_t n_pairs;
    rs_status st = collect_pseudo_units(t, &n_pairs);
    if (st) return st == RS_ERR_NOMEM ? st : rs_error_set(err, st, "tokenizer: bad unit table");
    if (t->n_units > (size_t)INT32_MAX - (size_t)t->n_vocab)
        return rs_error_set(err, RS_ERR_FORMAT, "tokenizer: too many distinct characters");
    if (!rs_pairmap_init(&t->pairs, n_pairs, &t->arena)) return RS_ERR_NOMEM;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *p = t->text[id].ptr;
        size_t len = (size_t)t->text[id].len;
        size_t first = len ? char_len_at(p, 0, len) : len;
        for (size_t k = first; k < len; k += char_len_at(p, k, len)) {
            bool left_single = k == first;
            bool right_single = char_len_at(p, k, len) == len - k;
            int32_t l = piece_unit(t, p, k, left_single);
            int32_t r = l < 0 ? -1 : piece_unit(t, p + k, len - k, right_single);
            if (l >= 0 && r >= 0) rs_pairmap_put(&t->pairs, l, r, id, t->score[id]);
        }
    }
    rs_merge_check_chunking(t);
    return RS_OK;
}

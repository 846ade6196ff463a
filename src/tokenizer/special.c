/* special.c — cuts the input at special-token text before normal tokenization.
 *
 * Semantics follow llama.cpp's tokenizer_st_partition: special tokens are tried
 * one at a time, longest text first; each splits every remaining raw fragment at
 * its leftmost non-overlapping occurrences. Control and unknown tokens take part
 * only when the caller parses special text; user-defined tokens always do (as in
 * Hugging Face, where added non-special tokens are always matched). LSTRIP/RSTRIP
 * tokens also swallow the whitespace beside them.
 *
 * Instead of rescanning the text once per special token, one trie pass collects
 * every occurrence of every special token; they are then accepted in (priority,
 * position) order, an occurrence being taken only when all its bytes are still
 * unclaimed — which yields the same fragments. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

typedef struct len_id {
    uint64_t len;
    int32_t id;
} len_id;

static int cmp_special(const void *a, const void *b) {
    const len_id *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bool is_special(const rs_tokenizer *t, int32_t id) {
    return (t->attr[id] & (RS_TOKEN_CONTROL | RS_TOKEN_USER_DEFINED | RS_TOKEN_UNKNOWN)) &&
           t->text[id].len;
}

rs_status rs_special_build(rs_tokenizer *t, rs_error *err) {
    (void)err;
    size_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) n += is_special(t, id);
    t->special_rank = rs_arena_alloc(&t->arena, (size_t)t->n_vocab * sizeof *t->special_rank, 8);
    t->special = rs_arena_calloc(&t->arena, n ? n : 1, sizeof *t->special);
    len_id *order = rs_malloc_array(n ? n : 1, sizeof *order);
    if (!t->special_rank || !t->special || !order) {
        free(order);
        return RS_ERR_NOMEM;
    }
    memset(t->special_rank, 0xff, (size_t)t->n_vocab * sizeof *t->special_rank);
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (is_special(t, id)) order[t->n_special++] = (len_id){t->text[id].len, id};
    qsort(order, t->n_special, sizeof *order, cmp_special);
    rs_status st = RS_OK;
    for (size_t i = 0; i < t->n_special; i++) {
        int32_t id = order[i].id;
        t->special[i] = id;
        t->special_rank[id] = (uint32_t)i;
        if (!rs_trie_insert(&t->special_trie, t->text[id].ptr, (size_t)t->text[id].len, id)) {
            st = RS_ERR_NOMEM;
            break;
        }
    }
    free(order);
    return st;
}

typedef struct occ {
    uint32_t rank;
    uint32_t pos;
} occ;

static int cmp_occ(const void *a, const void *b) {
    const occ *x = a, *y = b;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static bool eligible(const rs_tokenizer *t, int32_t id, bool parse_special) {
    return parse_special || (t->attr[id] & RS_TOKEN_USER_DEFINED);
}

/* Collects every eligible occurrence; returns false on OOM. */
static bool find_all(const rs_tokenizer *t, const char *text, size_t len, bool parse_special,
                     occ **out, size_t *n_out) {
    occ *v = NULL;
    size_t n = 0, cap = 0;
    for (size_t p = 0; p < len; p++) {
        int32_t node = t->special_trie.root[(uint8_t)text[p]];
        for (size_t q = p; node >= 0;) {
            int32_t id = t->special_trie.nodes[node].value;
            if (id >= 0 && eligible(t, id, parse_special)) {
                if (n == cap) {
                    size_t nc = cap ? cap * 2 : 64;
                    occ *g = rs_realloc_array(v, nc, sizeof *g);
                    if (!g) {
                        free(v);
                        return false;
                    }
                    v = g, cap = nc;
                }
                v[n++] = (occ){t->special_rank[id], (uint32_t)p};
            }
            if (++q >= len) break;
            node = rs_trie_step(&t->special_trie, node, (uint8_t)text[q]);
        }
    }
    *out = v;
    *n_out = n;
    return true;
}

rs_status rs_special_partition(const rs_tokenizer *t, const char *text, size_t len,
                               bool parse_special, rs_frag **frags, size_t *n_frags,
                               rs_error *err) {
    *frags = NULL;
    *n_frags = 0;
    if (len == 0) return RS_OK;
    if (len > UINT32_MAX)
        return rs_error_set(err, RS_ERR_RANGE, "tokenizer: input of %zu bytes is too large", len);
    occ *oc = NULL;
    size_t n_oc = 0;
    if (t->n_special && !find_all(t, text, len, parse_special, &oc, &n_oc))
        return rs_error_set(err, RS_ERR_NOMEM, "tokenizer: out of memory");

    if (n_oc == 0) {
        free(oc);
        *frags = malloc(sizeof **frags);
        if (!*frags) return rs_error_set(err, RS_ERR_NOMEM, "tokenizer: out of memory");
        (*frags)[0] = (rs_frag){0, len, -1};
        *n_frags = 1;
        return RS_OK;
    }

    qsort(oc, n_oc, sizeof *oc, cmp_occ);
    /* owner[i]: 0 free, 1 swallowed whitespace, id + 2 at a token's first byte,
     * UINT32_MAX inside a token */
    uint32_t *owner = calloc(len, sizeof *owner);
    if (!owner) {
        free(oc);
        return rs_error_set(err, RS_ERR_NOMEM, "tokenizer: out of memory");
    }
    size_t n_tok = 0;
    for (size_t i = 0; i < n_oc;) {
        uint32_t rank = oc[i].rank;
        int32_t id = t->special[rank];
        size_t L = (size_t)t->text[id].len, last_end = 0;
        for (; i < n_oc && oc[i].rank == rank; i++) {
            size_t p = oc[i].pos;
            if (p < last_end) continue;
            bool free_span = true;
            for (size_t k = p; k < p + L && free_span; k++) free_span = owner[k] == 0;
            if (!free_span) continue;
            owner[p] = (uint32_t)id + 2;
            for (size_t k = p + 1; k < p + L; k++) owner[k] = UINT32_MAX;
            last_end = p + L;
            n_tok++;
            if (t->attr[id] & RS_TOKEN_LSTRIP)
                for (size_t k = p;
                     k > 0 && owner[k - 1] == 0 && isspace((unsigned char)text[k - 1]); k--)
                    owner[k - 1] = 1;
            if (t->attr[id] & RS_TOKEN_RSTRIP) {
                for (size_t k = p + L; k < len && owner[k] == 0 && isspace((unsigned char)text[k]);
                     k++)
                    owner[k] = 1;
                /* the search for this token resumes after the swallowed space */
                while (last_end < len && owner[last_end] == 1) last_end++;
            }
        }
    }
    free(oc);

    rs_frag *f = rs_malloc_array(2 * n_tok + 1, sizeof *f);
    if (!f) {
        free(owner);
        return rs_error_set(err, RS_ERR_NOMEM, "tokenizer: out of memory");
    }
    size_t nf = 0;
    for (size_t i = 0; i < len;) {
        if (owner[i] == 0) {
            size_t j = i;
            while (j < len && owner[j] == 0) j++;
            f[nf++] = (rs_frag){i, j - i, -1};
            i = j;
        } else if (owner[i] == 1) {
            i++;
        } else {
            int32_t id = (int32_t)(owner[i] - 2);
            f[nf++] = (rs_frag){i, (size_t)t->text[id].len, id};
            i += (size_t)t->text[id].len;
        }
    }
    free(owner);
    *frags = f;
    *n_frags = nf;
    return RS_OK;
}

/* merge.c — the merge loop shared by SentencePiece BPE (scores) and BPE (ranks).
 *
 * A word is cut into symbols (bytes for byte-level BPE, UTF-8 characters
 * otherwise), every adjacent pair that forms a known merge is queued, and the
 * best pair is merged until none is left: highest priority first, leftmost on
 * ties — llama.cpp's and Hugging Face's order. Priorities come from rs_pairmap:
 * the piece score for SPM, minus the merge rank for BPE. A queued pair is stale
 * once either side has changed, which the summed length detects exactly.
 *
 * Speed: words repeat, so results are cached per encode call; and whole-text
 * SentencePiece input is cut before each "▁" that follows another character
 * when no vocabulary entry spans such a point, which leaves the result unchanged
 * (no merge can cross the cut) while keeping the queues small and cacheable. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

enum { CACHE_MAX_WORD = 256 };

/* ---- scratch ----------------------------------------------------------------- */

rs_status rs_enc_reserve_syms(rs_enc *e, size_t n) {
    if (n <= e->syms_cap) return RS_OK;
    size_t cap = e->syms_cap ? e->syms_cap : 256;
    while (cap < n) cap *= 2;
    rs_sym *s = rs_realloc_array(e->syms, cap, sizeof *s);
    /* at most n-1 initial pairs plus 2 per merge */
    rs_bigram *h = rs_realloc_array(e->heap, 3 * cap + 1, sizeof *h);
    if (s) e->syms = s;
    if (h) e->heap = h;
    if (!s || !h) return rs_error_set(e->err, RS_ERR_NOMEM, "tokenizer: out of memory");
    e->syms_cap = cap;
    e->heap_cap = 3 * cap + 1;
    return RS_OK;
}

void rs_enc_free(rs_enc *e) {
    free(e->syms);
    free(e->heap);
    free(e->cache.slots);
    rs_bytes_free(&e->cache.keys);
    rs_tokens_free(&e->cache.ids);
    if (e->md) pcre2_match_data_free(e->md);
    if (e->mctx) pcre2_match_context_free(e->mctx);
    if (e->jit) pcre2_jit_stack_free(e->jit);
    memset(e, 0, sizeof *e);
}

/* ---- priority queue ----------------------------------------------------------- */

static inline bool before(const rs_bigram *a, const rs_bigram *b) {
    return a->prio > b->prio || (a->prio == b->prio && a->left < b->left);
}

static void heap_push(rs_bigram *h, size_t *n, rs_bigram b) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&b, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = b;
}

static rs_bigram heap_pop(rs_bigram *h, size_t *n) {
    rs_bigram top = h[0], last = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && before(&h[c + 1], &h[c])) c++;
        if (!before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

static inline void try_pair(const rs_tokenizer *t, rs_sym *s, rs_bigram *h, size_t *hn, int32_t l,
                            int32_t r) {
    if (l < 0 || r < 0) return;
    const rs_pair_slot *p = rs_pairmap_get(&t->pairs, s[l].unit, s[r].unit);
    if (!p) return;
    heap_push(h, hn, (rs_bigram){p->prio, l, r, s[l].len + s[r].len, p->id});
}

/* Merges syms[0..n) (chained in order) as far as the pair table allows. */
static void merge_run(rs_enc *e, size_t n) {
    const rs_tokenizer *t = e->t;
    rs_sym *s = e->syms;
    rs_bigram *h = e->heap;
    size_t hn = 0;
    for (size_t i = 1; i < n; i++) try_pair(t, s, h, &hn, (int32_t)i - 1, (int32_t)i);
    while (hn) {
        rs_bigram b = heap_pop(h, &hn);
        rs_sym *L = &s[b.left], *R = &s[b.right];
        if (L->len == 0 || R->len == 0 || L->len + R->len != b.len) continue;
        L->len += R->len;
        L->unit = b.unit;
        R->len = 0;
        L->next = R->next;
        if (R->next >= 0) s[R->next].prev = b.left;
        try_pair(t, s, h, &hn, L->prev, b.left);
        try_pair(t, s, h, &hn, b.left, L->next);
    }
}

/* ---- symbols -------------------------------------------------------------------- */

static void push_sym(rs_sym *s, size_t *n, int32_t unit, size_t off, size_t len) {
    size_t i = (*n)++;
    s[i] = (rs_sym){unit, (uint32_t)off, (uint32_t)len, (int32_t)i - 1, -1};
    if (i) s[i - 1].next = (int32_t)i;
}

/* The unit of one character: its token, else (SPM) a pseudo unit, else -1. */
static int32_t char_unit_slow(const rs_tokenizer *t, const char *c, size_t len) {
    int32_t id = rs_strmap_get(&t->map, c, len);
    if (id >= 0 || t->ranked || !t->n_units) return id;
    int32_t u = rs_strmap_get(&t->unit_map, c, len);
    return u >= 0 ? t->n_vocab + u : -1;
}

static inline int32_t char_unit(const rs_tokenizer *t, const char *c, size_t len) {
    if (len == 1 && (unsigned char)c[0] < 128) return t->ascii_unit[(unsigned char)c[0]];
    return char_unit_slow(t, c, len);
}

static void init_units(rs_tokenizer *t) {
    for (int c = 0; c < 128; c++) {
        char ch = (char)c;
        t->ascii_unit[c] = char_unit_slow(t, &ch, 1);
    }
}

static size_t symbolize(rs_enc *e, const char *w, size_t n) {
    const rs_tokenizer *t = e->t;
    rs_sym *s = e->syms;
    size_t ns = 0;
    if (t->byte_level) {
        for (size_t i = 0; i < n; i++) push_sym(s, &ns, t->byte_char[(uint8_t)w[i]], i, 1);
        return ns;
    }
    bool pending_unk = false; /* HF fuse_unk: a run of unknown characters is one <unk> */
    for (size_t i = 0; i < n;) {
        size_t cl = rs_utf8_lead_len((uint8_t)w[i]);
        if (cl > n - i) cl = n - i;
        int32_t u = char_unit(t, w + i, cl);
        if (u >= 0 || !t->ranked) {
            push_sym(s, &ns, u, i, cl);
            pending_unk = false;
            i += cl;
            continue;
        }
        /* HF BPE: an unknown character falls back to <0xNN> tokens, else <unk> */
        bool bytes_ok = t->byte_fallback;
        for (size_t k = 0; k < cl && bytes_ok; k++) bytes_ok = t->byte_tok[(uint8_t)w[i + k]] >= 0;
        if (bytes_ok) {
            for (size_t k = 0; k < cl; k++)
                push_sym(s, &ns, t->byte_tok[(uint8_t)w[i + k]], i + k, 1);
            pending_unk = false;
        } else if (t->unk >= 0) {
            if (pending_unk && t->fuse_unk) {
                s[ns - 1].len += (uint32_t)cl;
            } else {
                push_sym(s, &ns, t->unk, i, cl);
            }
            pending_unk = true;
        }
        i += cl;
    }
    return ns;
}

/* Emits a finished symbol: its token, or its bytes through byte fallback. */
static rs_status emit_sym(rs_enc *e, const rs_sym *s, const char *w, rs_tokens *dst) {
    const rs_tokenizer *t = e->t;
    if (s->unit >= 0 && s->unit < t->n_vocab) return rs_tokens_push(dst, s->unit);
    for (uint32_t k = 0; k < s->len; k++) {
        int32_t id = rs_tok_byte_token(t, (uint8_t)w[s->off + k]);
        if (id < 0) id = t->unk;
        if (id >= 0 && rs_tokens_push(dst, id)) return RS_ERR_NOMEM;
    }
    return RS_OK;
}

/* Llama-3 style: a pre-token that is itself a token skips the merges. */
static int32_t whole_word_token(const rs_tokenizer *t, const char *w, size_t n) {
    if (!t->byte_level) return rs_strmap_get(&t->map, w, n);
    if (n > 512) return -1;
    char buf[2 * 512];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) m += rs_utf8_encode(rs_bytelevel_cp((uint8_t)w[i]), buf + m);
    return rs_strmap_get(&t->map, buf, m);
}

/* Tokenizes one word into dst (no cache). */
static rs_status encode_uncached(rs_enc *e, const char *w, size_t n, rs_tokens *dst) {
    const rs_tokenizer *t = e->t;
    if (t->ignore_merges) {
        int32_t id = whole_word_token(t, w, n);
        if (id >= 0) return rs_tokens_push(dst, id) ? RS_ERR_NOMEM : RS_OK;
    }
    rs_status st = rs_enc_reserve_syms(e, n);
    if (st) return st;
    size_t ns = symbolize(e, w, n);
    merge_run(e, ns);
    for (int32_t i = ns ? 0 : -1; i >= 0; i = e->syms[i].next)
        if (e->syms[i].len && emit_sym(e, &e->syms[i], w, dst)) return RS_ERR_NOMEM;
    return RS_OK;
}

/* ---- word cache ----------------------------------------------------------------------- */

static bool cache_grow(rs_word_cache *c) {
    size_t cap = c->slots ? (c->mask + 1) * 2 : 1024;
    rs_cache_slot *s = rs_malloc_array(cap, sizeof *s);
    if (!s) return false;
    for (size_t i = 0; i < cap; i++) s[i].ids_n = UINT32_MAX;
    if (c->slots) {
        for (size_t i = 0; i <= c->mask; i++) {
            if (c->slots[i].ids_n == UINT32_MAX) continue;
            size_t j = c->slots[i].hash & (cap - 1);
            while (s[j].ids_n != UINT32_MAX) j = (j + 1) & (cap - 1);
            s[j] = c->slots[i];
        }
        free(c->slots);
    }
    c->slots = s;
    c->mask = cap - 1;
    return true;
}

rs_status rs_merge_encode_word(rs_enc *e, const char *w, size_t n) {
    if (n == 0) return RS_OK;
    if (n > CACHE_MAX_WORD) {
        rs_status st = encode_uncached(e, w, n, e->out);
        return st == RS_ERR_NOMEM ? rs_error_set(e->err, st, "tokenizer: out of memory") : st;
    }
    rs_word_cache *c = &e->cache;
    if ((!c->slots || c->used + 1 > (c->mask + 1) / 2) && !cache_grow(c))
        return rs_error_set(e->err, RS_ERR_NOMEM, "tokenizer: out of memory");
    uint64_t h = rs_tok_hash(w, n);
    size_t j = h & c->mask;
    for (; c->slots[j].ids_n != UINT32_MAX; j = (j + 1) & c->mask) {
        rs_cache_slot *s = &c->slots[j];
        if (s->hash == h && s->key_len == n && memcmp(c->keys.data + s->key_off, w, n) == 0) {
            for (uint32_t k = 0; k < s->ids_n; k++)
                if (rs_tok_emit(e, c->ids.ids[s->ids_off + k])) return RS_ERR_NOMEM;
            return RS_OK;
        }
    }
    if (c->keys.len + n > UINT32_MAX || c->ids.n > UINT32_MAX - n * 4) {
        rs_status st = encode_uncached(e, w, n, e->out); /* cache full: just encode */
        return st == RS_ERR_NOMEM ? rs_error_set(e->err, st, "tokenizer: out of memory") : st;
    }
    size_t key_off = c->keys.len, ids_off = c->ids.n;
    if (rs_bytes_append(&c->keys, w, n) || encode_uncached(e, w, n, &c->ids))
        return rs_error_set(e->err, RS_ERR_NOMEM, "tokenizer: out of memory");
    c->slots[j] = (rs_cache_slot){h, (uint32_t)key_off, (uint32_t)n, (uint32_t)ids_off,
                                  (uint32_t)(c->ids.n - ids_off)};
    c->used++;
    for (size_t k = ids_off; k < c->ids.n; k++)
        if (rs_tok_emit(e, c->ids.ids[k])) return RS_ERR_NOMEM;
    return RS_OK;
}

/* ---- whole-text input (no pre-tokenizer) ---------------------------------------------- */

static bool is_mark(const char *s, size_t n) {
    return n >= RS_SPACE_MARK_LEN && memcmp(s, RS_SPACE_MARK, RS_SPACE_MARK_LEN) == 0;
}

void rs_merge_check_chunking(rs_tokenizer *t) {
    init_units(t);
    t->chunk_at_mark = false;
    if (t->byte_level) return;
    if (char_unit(t, RS_SPACE_MARK, RS_SPACE_MARK_LEN) < 0) return;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *p = t->text[id].ptr;
        size_t n = (size_t)t->text[id].len;
        for (size_t k = 1; k + RS_SPACE_MARK_LEN <= n; k++) {
            if (!is_mark(p + k, n - k)) continue;
            if (k < RS_SPACE_MARK_LEN || !is_mark(p + k - RS_SPACE_MARK_LEN, RS_SPACE_MARK_LEN))
                return; /* an entry spans "x▁": cutting there could change merges */
        }
    }
    t->chunk_at_mark = true;
}

rs_status rs_merge_encode_text(rs_enc *e, const char *s, size_t n) {
    if (!e->t->chunk_at_mark) {
        rs_status st = encode_uncached(e, s, n, e->out);
        return st == RS_ERR_NOMEM ? rs_error_set(e->err, st, "tokenizer: out of memory") : st;
    }
    size_t start = 0;
    bool prev_mark = false;
    for (size_t i = 0; i < n;) {
        size_t cl = rs_utf8_lead_len((uint8_t)s[i]);
        if (cl > n - i) cl = n - i;
        bool mark = cl == RS_SPACE_MARK_LEN && is_mark(s + i, cl);
        if (mark && !prev_mark && i > start) {
            rs_status st = rs_merge_encode_word(e, s + start, i - start);
            if (st) return st;
            start = i;
        }
        prev_mark = mark;
        i += cl;
    }
    return rs_merge_encode_word(e, s + start, n - start);
}

/* tok_util.c — small containers for the tokenizer: id and byte arrays, hash
 * maps over token texts and token pairs, a byte trie, UTF-8 helpers and the
 * GPT-2 byte-to-character table. */
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "tokenizer/tok_internal.h"

/* ---- rs_tokens / rs_bytes ----------------------------------------------------- */

void rs_tokens_free(rs_tokens *t) {
    free(t->ids);
    memset(t, 0, sizeof *t);
}

rs_status rs_tokens_push(rs_tokens *t, int32_t id) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        int32_t *p = rs_realloc_array(t->ids, cap, sizeof *p);
        if (!p) return RS_ERR_NOMEM;
        t->ids = p;
        t->cap = cap;
    }
    t->ids[t->n++] = id;
    return RS_OK;
}

void rs_bytes_free(rs_bytes *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

rs_status rs_bytes_append(rs_bytes *b, const void *p, size_t n) {
    if (n > SIZE_MAX - b->len - 1) return RS_ERR_NOMEM;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap = cap > SIZE_MAX / 2 ? b->len + n + 1 : cap * 2;
        char *d = realloc(b->data, cap);
        if (!d) return RS_ERR_NOMEM;
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return RS_OK;
}

/* ---- hashing -------------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ull;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ull;
    x ^= x >> 32;
    return x;
}

uint64_t rs_tok_hash(const void *p, size_t n) {
    /* one multiply per 8 bytes, a full mix at the end: words are short */
    const unsigned char *s = p;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0x9fb21c651e98df25ull;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * 0x9fb21c651e98df25ull;
    }
    return mix64(h);
}

/* ---- string map ------------------------------------------------------------------ */

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c *= 2;
    return c;
}

rs_status rs_strmap_build(rs_strmap *m, const rs_str *keys, size_t n, rs_arena *a,
                          int32_t *dup_first, int32_t *dup_second) {
    memset(m, 0, sizeof *m);
    if (n > (SIZE_MAX / 4) / sizeof(int32_t)) return RS_ERR_NOMEM;
    size_t cap = pow2_at_least(n * 2 + 1);
    m->hash = rs_arena_calloc(a, cap, sizeof *m->hash);
    m->id = rs_arena_alloc(a, cap * sizeof *m->id, 8);
    if (!m->hash || !m->id) return RS_ERR_NOMEM;
    memset(m->id, 0xff, cap * sizeof *m->id);
    m->mask = cap - 1;
    m->keys = keys;
    for (size_t i = 0; i < n; i++) {
        if (keys[i].len == 0) continue;
        uint64_t h = rs_tok_hash(keys[i].ptr, keys[i].len);
        size_t s = h & m->mask;
        while (m->id[s] >= 0) {
            const rs_str *k = &keys[m->id[s]];
            if (m->hash[s] == (uint32_t)h && k->len == keys[i].len &&
                memcmp(k->ptr, keys[i].ptr, k->len) == 0) {
                if (dup_first) *dup_first = m->id[s];
                if (dup_second) *dup_second = (int32_t)i;
                return RS_ERR_FORMAT;
            }
            s = (s + 1) & m->mask;
        }
        m->id[s] = (int32_t)i;
        m->hash[s] = (uint32_t)h;
    }
    return RS_OK;
}

int32_t rs_strmap_get(const rs_strmap *m, const char *str, size_t n) {
    if (!m->id || n == 0) return -1;
    uint64_t h = rs_tok_hash(str, n);
    size_t s = h & m->mask;
    for (;;) {
        int32_t id = m->id[s];
        if (id < 0) return -1;
        if (m->hash[s] == (uint32_t)h && m->keys[id].len == n &&
            memcmp(m->keys[id].ptr, str, n) == 0)
            return id;
        s = (s + 1) & m->mask;
    }
}

/* ---- pair map --------------------------------------------------------------------- */

static inline uint64_t pair_key(int32_t l, int32_t r) {
    return ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
}

bool rs_pairmap_init(rs_pairmap *m, size_t capacity, rs_arena *a) {
    memset(m, 0, sizeof *m);
    if (capacity > SIZE_MAX / 4 / sizeof(rs_pair_slot)) return false;
    size_t cap = pow2_at_least(capacity * 2 + 1);
    m->slots = rs_arena_alloc(a, cap * sizeof *m->slots, 8);
    if (!m->slots) return false;
    for (size_t i = 0; i < cap; i++) m->slots[i].key = UINT64_MAX;
    m->mask = cap - 1;
    return true;
}

void rs_pairmap_put(rs_pairmap *m, int32_t l, int32_t r, int32_t id, float prio) {
    uint64_t k = pair_key(l, r);
    size_t s = mix64(k) & m->mask;
    while (m->slots[s].key != UINT64_MAX) {
        if (m->slots[s].key == k) {
            if (prio > m->slots[s].prio) {
                m->slots[s].prio = prio;
                m->slots[s].id = id;
            }
            return;
        }
        s = (s + 1) & m->mask;
    }
    if (m->n + 1 > m->mask / 2 + 1) return; /* never happens: sized by the caller */
    m->slots[s].key = k;
    m->slots[s].id = id;
    m->slots[s].prio = prio;
    m->n++;
}

const rs_pair_slot *rs_pairmap_get(const rs_pairmap *m, int32_t l, int32_t r) {
    if (!m->slots || l < 0 || r < 0) return NULL;
    uint64_t k = pair_key(l, r);
    size_t s = mix64(k) & m->mask;
    for (;;) {
        const rs_pair_slot *p = &m->slots[s];
        if (p->key == k) return p;
        if (p->key == UINT64_MAX) return NULL;
        s = (s + 1) & m->mask;
    }
}

/* ---- trie ------------------------------------------------------------------------ */

bool rs_trie_init(rs_trie *t) {
    memset(t, 0, sizeof *t);
    for (int i = 0; i < 256; i++) t->root[i] = -1;
    t->cap = 256;
    t->nodes = malloc(t->cap * sizeof *t->nodes);
    if (!t->nodes) return false;
    t->nodes[0] = (rs_trie_node){-1, -1, -1, 0};
    t->n = 1;
    return true;
}

void rs_trie_free(rs_trie *t) {
    free(t->nodes);
    t->nodes = NULL;
    t->n = t->cap = 0;
}

static int32_t trie_new(rs_trie *t, uint8_t b) {
    if (t->n == t->cap) {
        if (t->cap > (size_t)INT32_MAX / 2) return -1;
        rs_trie_node *p = rs_realloc_array(t->nodes, t->cap * 2, sizeof *p);
        if (!p) return -1;
        t->nodes = p;
        t->cap *= 2;
    }
    t->nodes[t->n] = (rs_trie_node){-1, -1, -1, b};
    return (int32_t)t->n++;
}

int32_t rs_trie_step(const rs_trie *t, int32_t node, uint8_t b) {
    if (node < 0) return t->root[b];
    for (int32_t c = t->nodes[node].child; c >= 0; c = t->nodes[c].sibling)
        if (t->nodes[c].byte == b) return c;
    return -1;
}

bool rs_trie_insert(rs_trie *t, const char *s, size_t n, int32_t value) {
    if (n == 0) return true;
    int32_t node = -1;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)s[i];
        int32_t next = rs_trie_step(t, node, b);
        if (next < 0) {
            next = trie_new(t, b);
            if (next < 0) return false;
            if (node < 0) {
                t->root[b] = next;
            } else {
                t->nodes[next].sibling = t->nodes[node].child;
                t->nodes[node].child = next;
            }
        }
        node = next;
    }
    t->nodes[node].value = value;
    return true;
}

/* ---- UTF-8 -------------------------------------------------------------------------- */

size_t rs_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

size_t rs_utf8_encode(uint32_t cp, char *buf) {
    unsigned char *b = (unsigned char *)buf;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (unsigned char)(0xF0 | (cp >> 18));
    b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

bool rs_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = rs_utf8_decode(p + i, n - i, &cp);
        if (!l) return false;
        i += l;
    }
    return true;
}

/* ---- GPT-2 byte characters -------------------------------------------------------------
 * Printable bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the other
 * 68 bytes map, in increasing order, to U+0100, U+0101, ... */
static bool byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t rs_bytelevel_cp(uint8_t b) {
    if (byte_is_printable(b)) return b;
    /* rank of b among the non-printable bytes */
    unsigned n = 0;
    for (unsigned c = 0; c < b; c++)
        if (!byte_is_printable(c)) n++;
    return 256 + n;
}

int rs_bytelevel_byte(uint32_t cp) {
    if (cp < 256) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    unsigned want = cp - 256, n = 0;
    for (unsigned c = 0; c < 256; c++) {
        if (byte_is_printable(c)) continue;
        if (n == want) return (int)c;
        n++;
    }
    return -1;
}

/* ---- Unicode classes (utf8proc) ---------------------------------------------------------- */

bool rs_uc_is_whitespace(uint32_t c) {
    /* the White_Space property */
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

bool rs_uc_is_punct(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

bool rs_uc_is_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CS ||
           k == UTF8PROC_CATEGORY_CO || k == UTF8PROC_CATEGORY_CN;
}

bool rs_uc_is_cjk(uint32_t c) {
    /* BERT's "Chinese character" blocks (as in the HF and llama.cpp code) */
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool rs_uc_is_mark(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_MN && k <= UTF8PROC_CATEGORY_ME;
}

bool rs_uc_is_digit(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

bool rs_uc_is_alnum(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_MN && k <= UTF8PROC_CATEGORY_ME) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO) || k == UTF8PROC_CATEGORY_PC;
}

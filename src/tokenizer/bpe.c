/* bpe.c — BPE setup from a merges list (tokenizer.ggml.merges).
 *
 * Each merge "a b" (rank i) becomes a pair-table entry (id(a), id(b)) → id(ab)
 * with priority −i, so merge.c applies the lowest rank first. Both sides and
 * their concatenation must be vocabulary entries (Hugging Face rejects such
 * files too). For byte-level vocabularies (GPT-2 style) every byte maps to the
 * token of its printable stand-in character. */
#include <string.h>

#include "tokenizer/tok_internal.h"

static rs_status merge_error(rs_error *err, uint64_t i, rs_str m, const char *what, const char *p,
                             size_t n) {
    return rs_error_set(err, RS_ERR_FORMAT,
                        "tokenizer.ggml.merges[%llu] '%.*s': %s '%.*s' is not in the vocabulary",
                        (unsigned long long)i, (int)(m.len > 64 ? 64 : m.len), m.ptr, what,
                        (int)(n > 64 ? 64 : n), p);
}

static rs_status add_merges(rs_tokenizer *t, const rs_array *merges, rs_error *err) {
    if (merges->n > (uint64_t)(1u << 24))
        return rs_error_set(err, RS_ERR_FORMAT, "tokenizer.ggml.merges: %llu merges is too many",
                            (unsigned long long)merges->n);
    if (!rs_pairmap_init(&t->pairs, (size_t)merges->n, &t->arena)) return RS_ERR_NOMEM;
    char *buf = NULL;
    size_t buf_cap = 0;
    rs_status st = RS_OK;
    for (uint64_t i = 0; i < merges->n && !st; i++) {
        rs_str m = rs_array_get_str(merges, i);
        /* split at the first space after the first byte, as llama.cpp does */
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', (size_t)m.len - 1) : NULL;
        if (!sp) {
            st = rs_error_set(err, RS_ERR_FORMAT,
                              "tokenizer.ggml.merges[%llu] '%.*s' is not of the form 'left right'",
                              (unsigned long long)i, (int)(m.len > 64 ? 64 : m.len), m.ptr);
            break;
        }
        size_t ln = (size_t)(sp - m.ptr), rn = (size_t)m.len - ln - 1;
        int32_t l = rs_strmap_get(&t->map, m.ptr, ln);
        int32_t r = rs_strmap_get(&t->map, sp + 1, rn);
        if (l < 0) {
            st = merge_error(err, i, m, "left side", m.ptr, ln);
            break;
        }
        if (r < 0) {
            st = merge_error(err, i, m, "right side", sp + 1, rn);
            break;
        }
        if (!buf || ln + rn > buf_cap) { /* ln >= 1: the first merge allocates */
            buf_cap = (ln + rn) * 2;
            char *g = realloc(buf, buf_cap);
            if (!g) {
                st = RS_ERR_NOMEM;
                break;
            }
            buf = g;
        }
        memcpy(buf, m.ptr, ln);
        memcpy(buf + ln, sp + 1, rn);
        int32_t id = rs_strmap_get(&t->map, buf, ln + rn);
        if (id < 0) {
            st = merge_error(err, i, m, "the merged token", buf, ln + rn);
            break;
        }
        rs_pairmap_put(&t->pairs, l, r, id, -(float)i); /* an earlier rank wins */
    }
    free(buf);
    return st;
}

static rs_status setup_byte_level(rs_tokenizer *t, rs_error *err) {
    for (int b = 0; b < 256; b++) {
        char c[4];
        size_t n = rs_utf8_encode(rs_bytelevel_cp((uint8_t)b), c);
        t->byte_char[b] = rs_strmap_get(&t->map, c, n);
    }
    /* normal entries are strings of byte characters: they must be valid UTF-8 */
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!(t->attr[id] & RS_TOKEN_NORMAL)) continue;
        if (!rs_utf8_valid(t->text[id].ptr, (size_t)t->text[id].len))
            return rs_error_set(err, RS_ERR_FORMAT,
                                "token %d of a byte-level vocabulary is not valid UTF-8", id);
    }
    return RS_OK;
}

rs_status rs_bpe_build(rs_tokenizer *t, const rs_array *merges, rs_error *err) {
    t->ranked = true;
    rs_status st = add_merges(t, merges, err);
    if (st) return st;
    if (t->byte_level) return setup_byte_level(t, err);
    rs_merge_check_chunking(t);
    return RS_OK;
}

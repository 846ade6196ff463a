/* wordpiece.c — WordPiece (tokenizer.ggml.model "bert").
 *
 * Normalisation and word splitting follow Hugging Face's BertNormalizer and
 * BertPreTokenizer: control characters, NUL and U+FFFD are dropped, whitespace
 * separates words, CJK ideographs are words of their own, accents are stripped
 * (NFD, then marks removed) and text lower-cased when the vocabulary says so,
 * and punctuation characters become one-character words.
 *
 * Words are then matched greedily, longest piece first. GGUF stores the
 * vocabulary in "phantom space" form, as llama.cpp's converter writes it: a
 * word-initial piece "hello" is "▁hello" and a continuation "##lo" is "lo", so
 * matching runs over "▁" + word. A word with an unmatchable position, or longer
 * than 100 characters, becomes the unknown token. */
#include <string.h>

#include <utf8proc.h>

#include "tokenizer/tok_internal.h"

enum { MAX_WORD_CHARS = 100 };

static bool is_bert_punct(uint32_t c) {
    return (c < 0x80 && ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
                         (c >= 123 && c <= 126))) ||
           rs_uc_is_punct(c);
}

/* Greedy longest-match of one word (given without its "▁"). */
static rs_status match_word(rs_enc *e, rs_bytes *w, size_t n_chars) {
    const rs_tokenizer *t = e->t;
    size_t mark = e->out->n;
    if (n_chars > MAX_WORD_CHARS) goto unknown;
    const char *s = w->data;
    size_t n = w->len;
    for (size_t i = 0; i < n;) {
        size_t j = n - i > t->max_token_len ? i + t->max_token_len : n;
        int32_t id = -1;
        for (; j > i; j--)
            if ((id = rs_strmap_get(&t->map, s + i, j - i)) >= 0) break;
        if (id < 0) goto unknown;
        if (rs_tok_emit(e, id)) return RS_ERR_NOMEM;
        i = j;
    }
    return RS_OK;
unknown:
    e->out->n = mark;
    return t->unk >= 0 ? rs_tok_emit(e, t->unk) : RS_OK;
}

/* Ends the current word (w holds "▁" + its bytes). */
static rs_status flush_word(rs_enc *e, rs_bytes *w, size_t *n_chars) {
    rs_status st = RS_OK;
    if (w->len > RS_SPACE_MARK_LEN) st = match_word(e, w, *n_chars);
    w->len = 0;
    *n_chars = 0;
    if (!st && rs_bytes_append(w, RS_SPACE_MARK, RS_SPACE_MARK_LEN)) st = RS_ERR_NOMEM;
    return st;
}

static rs_status add_char(rs_enc *e, rs_bytes *w, size_t *n_chars, uint32_t cp) {
    const rs_tokenizer *t = e->t;
    if (rs_uc_is_whitespace(cp)) return flush_word(e, w, n_chars);
    if (t->lowercase) cp = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
    char b[4];
    size_t l = rs_utf8_encode(cp, b);
    if (is_bert_punct(cp) || rs_uc_is_cjk(cp)) {
        rs_status st = flush_word(e, w, n_chars);
        if (st || rs_bytes_append(w, b, l)) return st ? st : RS_ERR_NOMEM;
        *n_chars = 1;
        return flush_word(e, w, n_chars);
    }
    (*n_chars)++;
    return rs_bytes_append(w, b, l);
}

rs_status rs_wpm_encode(rs_enc *e, const char *s, size_t n) {
    const rs_tokenizer *t = e->t;
    rs_bytes w = {0};
    size_t n_chars = 0;
    rs_status st = rs_bytes_append(&w, RS_SPACE_MARK, RS_SPACE_MARK_LEN);
    for (size_t i = 0; i < n && !st;) {
        uint32_t cp;
        size_t l = rs_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (!l) { /* invalid byte: U+FFFD, which BERT drops */
            i++;
            continue;
        }
        i += l;
        /* HF's clean_text: \t \n \r are whitespace, other controls vanish */
        if (cp == 0 || cp == 0xFFFD || rs_uc_is_control(cp)) continue;
        if (!t->strip_accents) {
            st = add_char(e, &w, &n_chars, cp);
            continue;
        }
        utf8proc_int32_t d[32];
        int last = 0;
        utf8proc_ssize_t nd =
            utf8proc_decompose_char((utf8proc_int32_t)cp, d, 32, UTF8PROC_DECOMPOSE, &last);
        if (nd < 0 || nd > 32) d[0] = (utf8proc_int32_t)cp, nd = 1;
        for (utf8proc_ssize_t k = 0; k < nd && !st; k++)
            if (!rs_uc_is_mark((uint32_t)d[k])) st = add_char(e, &w, &n_chars, (uint32_t)d[k]);
    }
    if (!st) st = flush_word(e, &w, &n_chars);
    rs_bytes_free(&w);
    if (st == RS_ERR_NOMEM) return rs_error_set(e->err, st, "tokenizer: out of memory");
    return st;
}

/* decode.c — token ids back to text.
 *
 * Every token's piece is computed once at load time: control and user-defined
 * tokens are their text, byte tokens (<0xNN>) their byte, byte-level BPE
 * characters the bytes they stand for, and SentencePiece/WordPiece pieces have
 * "▁" turned into a space. Control and unknown tokens decode to nothing unless
 * RS_DECODE_SPECIAL asks for their text.
 *
 * The stream decoder holds back the tail of an incomplete UTF-8 sequence until
 * the token that completes it arrives. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static bool is_special_attr(unsigned a) {
    return a & (RS_TOKEN_CONTROL | RS_TOKEN_UNKNOWN);
}

/* Appends the decoded piece of token id to b. */
static bool piece_of(const rs_tokenizer *t, int32_t id, rs_bytes *b) {
    unsigned a = t->attr[id];
    const char *s = t->text[id].ptr;
    size_t n = (size_t)t->text[id].len;
    if (a & (RS_TOKEN_CONTROL | RS_TOKEN_UNKNOWN | RS_TOKEN_USER_DEFINED))
        return !rs_bytes_append(b, s, n);
    if (a & RS_TOKEN_BYTE) {
        char c = 0;
        for (int v = 0; v < 256; v++)
            if (t->byte_tok[v] == id) c = (char)v;
        return !rs_bytes_append(b, &c, 1);
    }
    if (!(a & RS_TOKEN_NORMAL)) return true; /* unused / undefined: nothing */
    if (t->byte_level) {
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            size_t l = rs_utf8_decode((const unsigned char *)s + i, n - i, &cp);
            int byte = l ? rs_bytelevel_byte(cp) : -1;
            if (!l) l = 1;
            if (byte >= 0) {
                char c = (char)byte;
                if (rs_bytes_append(b, &c, 1)) return false;
            } else if (rs_bytes_append(b, s + i, l)) { /* not a byte character: as is */
                return false;
            }
            i += l;
        }
        return true;
    }
    /* "▁" → ' ' */
    for (size_t i = 0; i < n;) {
        const char *hit = memmem(s + i, n - i, RS_SPACE_MARK, RS_SPACE_MARK_LEN);
        size_t upto = hit ? (size_t)(hit - s) : n;
        if (rs_bytes_append(b, s + i, upto - i)) return false;
        if (!hit) break;
        if (rs_bytes_append(b, " ", 1)) return false;
        i = upto + RS_SPACE_MARK_LEN;
    }
    return true;
}

rs_status rs_pieces_build(rs_tokenizer *t, rs_error *err) {
    (void)err;
    rs_bytes blob = {0};
    t->piece_off = rs_malloc_array((size_t)t->n_vocab + 1, sizeof *t->piece_off);
    if (!t->piece_off) return RS_ERR_NOMEM;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        t->piece_off[id] = (uint32_t)blob.len;
        if (!piece_of(t, id, &blob) || blob.len > UINT32_MAX) {
            rs_bytes_free(&blob);
            return RS_ERR_NOMEM;
        }
    }
    t->piece_off[t->n_vocab] = (uint32_t)blob.len;
    if (!blob.data && rs_bytes_append(&blob, "", 0)) return RS_ERR_NOMEM;
    t->piece_blob = blob.data;
    return RS_OK;
}

/* The piece of id under flags (without the leading-space rule). */
static const char *piece_ptr(const rs_tokenizer *t, int32_t id, unsigned flags, size_t *n) {
    if (!(flags & RS_DECODE_SPECIAL) && is_special_attr(t->attr[id])) {
        *n = 0;
        return t->piece_blob;
    }
    *n = t->piece_off[id + 1] - t->piece_off[id];
    return t->piece_blob + t->piece_off[id];
}

size_t rs_tokenizer_piece(const rs_tokenizer *t, int32_t id, unsigned flags, char *buf,
                          size_t cap) {
    if (id < 0 || id >= t->n_vocab) return 0;
    size_t n;
    const char *p = piece_ptr(t, id, flags, &n);
    if (n && (flags & RS_DECODE_STRIP_SPACE) && p[0] == ' ') p++, n--;
    if (buf && cap) memcpy(buf, p, n < cap ? n : cap);
    return n;
}

static rs_status bad_id(rs_error *err, int32_t id, const rs_tokenizer *t) {
    return rs_error_set(err, RS_ERR_RANGE, "token id %d is out of range (vocabulary of %d)", id,
                        t->n_vocab);
}

rs_status rs_tokenizer_decode(const rs_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                              rs_bytes *out, rs_error *err) {
    bool strip = flags & RS_DECODE_STRIP_SPACE;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) return bad_id(err, ids[i], t);
        size_t len;
        const char *p = piece_ptr(t, ids[i], flags, &len);
        if (!len) continue;
        if (strip && p[0] == ' ') p++, len--;
        strip = false;
        if (rs_bytes_append(out, p, len))
            return rs_error_set(err, RS_ERR_NOMEM, "tokenizer: out of memory while decoding");
    }
    if (!out->data && rs_bytes_append(out, "", 0))
        return rs_error_set(err, RS_ERR_NOMEM, "tokenizer: out of memory while decoding");
    return RS_OK;
}

/* ---- streaming ------------------------------------------------------------------------------ */

void rs_stream_decoder_init(rs_stream_decoder *d, const rs_tokenizer *t, unsigned flags) {
    memset(d, 0, sizeof *d);
    d->t = t;
    d->flags = flags;
}

/* Number of bytes at the end of s[0..n) that begin a UTF-8 sequence still
 * waiting for continuation bytes (0 when the text ends on a boundary, or when
 * the tail can never become valid). */
static size_t incomplete_tail(const unsigned char *s, size_t n) {
    for (size_t back = 1; back <= 4 && back <= n; back++) {
        unsigned char c = s[n - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation: keep looking for the lead */
        size_t need = c >= 0xC2 && c <= 0xDF   ? 2
                      : c >= 0xE0 && c <= 0xEF ? 3
                      : c >= 0xF0 && c <= 0xF4 ? 4
                                               : 0;
        if (need <= back) return 0; /* ASCII, an invalid lead, or a complete sequence */
        /* a prefix of a valid sequence? (E0/ED/F0/F4 restrict the 2nd byte) */
        if (back >= 2) {
            unsigned char c1 = s[n - back + 1];
            if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
                (c == 0xF4 && c1 > 0x8F))
                return 0;
        }
        return back;
    }
    return 0;
}

rs_status rs_stream_decoder_push(rs_stream_decoder *d, int32_t id, rs_bytes *out, rs_error *err) {
    const rs_tokenizer *t = d->t;
    if (id < 0 || id >= t->n_vocab) return bad_id(err, id, t);
    size_t len;
    const char *p = piece_ptr(t, id, d->flags, &len);
    if (!len) return RS_OK;
    if (!d->started && (d->flags & RS_DECODE_STRIP_SPACE) && p[0] == ' ') p++, len--;
    d->started = true;
    size_t base = out->len;
    if (rs_bytes_append(out, d->pending, d->n_pending) || rs_bytes_append(out, p, len))
        return rs_error_set(err, RS_ERR_NOMEM, "tokenizer: out of memory while decoding");
    size_t hold = incomplete_tail((const unsigned char *)out->data + base, out->len - base);
    memcpy(d->pending, out->data + out->len - hold, hold);
    d->n_pending = hold;
    out->len -= hold;
    out->data[out->len] = '\0';
    return RS_OK;
}

rs_status rs_stream_decoder_flush(rs_stream_decoder *d, rs_bytes *out, rs_error *err) {
    if (rs_bytes_append(out, d->pending, d->n_pending))
        return rs_error_set(err, RS_ERR_NOMEM, "tokenizer: out of memory while decoding");
    d->n_pending = 0;
    return RS_OK;
}

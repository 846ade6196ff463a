/* encode.c — the encode driver: special-token partition, BOS/EOS, and for each
 * raw fragment normalisation → pre-tokenization → the vocabulary's model.
 *
 * All scratch state lives in an rs_enc on this call's stack, so a tokenizer can
 * be shared by concurrent callers. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static rs_status encode_fragment(rs_enc *e, const char *s, size_t n, bool is_first,
                                 rs_bytes *norm) {
    const rs_tokenizer *t = e->t;
    switch (t->type) {
    case RS_VOCAB_WPM:
        return rs_wpm_encode(e, s, n);
    case RS_VOCAB_UGM:
        return rs_ugm_encode(e, s, n);
    case RS_VOCAB_SPM:
    case RS_VOCAB_BPE:
        break;
    }
    if (t->n_norm) {
        rs_status st = rs_normalize(t, s, n, norm, e->err);
        if (st) return st;
        s = norm->data ? norm->data : "";
        n = norm->len;
    }
    if (t->n_pre == 0) return rs_merge_encode_text(e, s, n);
    return rs_pretok_run(e, s, n, is_first, rs_merge_encode_word);
}

rs_status rs_tokenizer_encode(const rs_tokenizer *t, const char *text, size_t len, bool add_special,
                              bool parse_special, rs_tokens *out, rs_error *err) {
    if (!text && len) return rs_error_set(err, RS_ERR_ARG, "tokenizer: NULL text");
    rs_enc e = {.t = t, .out = out, .err = err};
    rs_frag *frags = NULL;
    size_t n_frags = 0;
    rs_bytes norm = {0};
    rs_status st = rs_special_partition(t, text, len, parse_special, &frags, &n_frags, err);
    if (st) return st;

    if (add_special && t->add_bos) st = rs_tok_emit(&e, t->bos);
    for (size_t i = 0; i < n_frags && !st; i++) {
        if (frags[i].id >= 0)
            st = rs_tok_emit(&e, frags[i].id);
        else
            st = encode_fragment(&e, text + frags[i].off, frags[i].len, frags[i].off == 0, &norm);
    }
    if (!st && add_special && t->add_eos) st = rs_tok_emit(&e, t->eos);
    if (!st && add_special && t->add_sep) st = rs_tok_emit(&e, t->sep);

    free(frags);
    rs_bytes_free(&norm);
    rs_enc_free(&e);
    return st;
}

/* unigram.c — Unigram (tokenizer.ggml.model "t5"). */
#include "tokenizer/tok_internal.h"

rs_status rs_ugm_build(rs_tokenizer *t, const rs_meta *meta, rs_error *err) {
    (void)t, (void)meta;
    return rs_error_set(err, RS_ERR_UNSUPPORTED, "unigram: not yet");
}

rs_status rs_ugm_encode(rs_enc *e, const char *s, size_t n) {
    (void)s, (void)n;
    return rs_error_set(e->err, RS_ERR_UNSUPPORTED, "unigram: not yet");
}

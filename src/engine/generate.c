/* generate.c — the autoregressive loop with streaming and stop strings (see generate.h). */
#include "engine/generate.h"

#include <string.h>
#include <time.h>

double rs_time_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Text produced but not yet delivered, because it may begin a stop string. */
typedef struct stop_filter {
    const rs_gen_params *p;
    rs_bytes held;
} stop_filter;

/* Length of the longest suffix of s[0..n) that is a proper prefix of a stop string. */
static size_t partial_stop_len(const rs_gen_params *p, const char *s, size_t n) {
    size_t best = 0;
    for (int k = 0; k < p->n_stop; k++) {
        size_t len = strlen(p->stop[k]);
        if (len == 0) continue;
        for (size_t m = len - 1 < n ? len - 1 : n; m > best; m--)
            if (memcmp(s + n - m, p->stop[k], m) == 0) {
                best = m;
                break;
            }
    }
    return best;
}

/* Finds the earliest complete stop string in s[0..n); returns its offset or n. */
static size_t find_stop(const rs_gen_params *p, const char *s, size_t n) {
    size_t first = n;
    for (int k = 0; k < p->n_stop; k++) {
        size_t len = strlen(p->stop[k]);
        if (len == 0 || len > n) continue;
        for (size_t i = 0; i + len <= n && i < first; i++)
            if (memcmp(s + i, p->stop[k], len) == 0) {
                first = i;
                break;
            }
    }
    return first;
}

/* Adds text; delivers what is safe. Returns the stop reason (NONE to continue). */
static rs_gen_stop filter_push(stop_filter *f, const rs_gen_callbacks *cb, const char *text,
                               size_t len, bool final, rs_error *err) {
    if (len && rs_bytes_append(&f->held, text, len) != RS_OK) {
        rs_error_set(err, RS_ERR_NOMEM, "out of memory");
        return RS_GEN_STOP_CALLER;
    }
    size_t n = f->held.len;
    if (n == 0) return RS_GEN_STOP_NONE;
    size_t stop_at = find_stop(f->p, f->held.data, n);
    size_t deliver =
        stop_at < n ? stop_at : (final ? n : n - partial_stop_len(f->p, f->held.data, n));
    bool keep_going = true;
    if (deliver && cb->on_text) keep_going = cb->on_text(cb->user, f->held.data, deliver);
    memmove(f->held.data, f->held.data + deliver, n - deliver);
    f->held.len = n - deliver;
    if (f->held.data) f->held.data[f->held.len] = '\0';
    if (stop_at < n) return RS_GEN_STOP_STRING;
    return keep_going ? RS_GEN_STOP_NONE : RS_GEN_STOP_CALLER;
}

static rs_status eval_prompt(rs_session *s, rs_sampler *sm, const int32_t *prompt, int n,
                             int cached, rs_gen_stats *st, rs_error *err) {
    rs_session_truncate(s, cached);
    double t0 = rs_time_ms();
    rs_status rc = rs_session_eval(s, prompt + cached, n - cached, RS_LOGITS_LAST, err);
    st->t_prompt_ms = rs_time_ms() - t0;
    st->n_prompt = n - cached;
    if (rc) return rc;
    int from = n - sm->params.repeat_last_n > cached ? n - sm->params.repeat_last_n : cached;
    for (int i = from; i < n; i++)
        if ((rc = rs_sampler_accept(sm, prompt[i], err))) return rc;
    return RS_OK;
}

rs_status rs_generate(rs_session *s, const rs_tokenizer *tok, rs_sampler *sm, const int32_t *prompt,
                      int n, int n_past_cached, const rs_gen_params *p, const rs_gen_callbacks *cb,
                      rs_gen_stats *stats, rs_error *err) {
    rs_gen_stats local = {0}; /* when the caller wants no stats */
    rs_gen_stats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    if (n <= 0 || n_past_cached < 0 || n_past_cached >= n)
        return rs_error_set(err, RS_ERR_ARG,
                            "generation needs at least one prompt token to evaluate");
    rs_status rc = eval_prompt(s, sm, prompt, n, n_past_cached, st, err);
    if (rc) return rc;

    stop_filter filter = {p, {0}};
    rs_stream_decoder dec;
    rs_stream_decoder_init(&dec, tok, 0);
    rs_bytes piece = {0};
    double t0 = rs_time_ms();
    rs_gen_stop why = RS_GEN_STOP_NONE;
    while (why == RS_GEN_STOP_NONE) {
        if (p->n_predict >= 0 && st->n_gen >= p->n_predict) {
            why = RS_GEN_STOP_LENGTH;
            break;
        }
        int32_t id = rs_sampler_sample(sm, rs_session_logits(s, 0));
        if ((rc = rs_sampler_accept(sm, id, err))) break;
        st->n_gen++;
        if (cb->on_token) cb->on_token(cb->user, id);
        if (!p->ignore_eos && rs_tokenizer_is_eog(tok, id)) {
            why = RS_GEN_STOP_EOG;
            break;
        }
        piece.len = 0;
        if ((rc = rs_stream_decoder_push(&dec, id, &piece, err))) break;
        why = filter_push(&filter, cb, piece.data, piece.len, false, err);
        if (why != RS_GEN_STOP_NONE) break;
        if (rs_session_n_past(s) >= rs_session_n_ctx(s)) {
            why = RS_GEN_STOP_CONTEXT;
            break;
        }
        if ((rc = rs_session_eval(s, &id, 1, RS_LOGITS_LAST, err))) break;
    }
    if (rc == RS_OK && why != RS_GEN_STOP_STRING && why != RS_GEN_STOP_CALLER) {
        piece.len = 0;
        if ((rc = rs_stream_decoder_flush(&dec, &piece, err)) == RS_OK)
            filter_push(&filter, cb, piece.data, piece.len, true, err);
    }
    st->t_gen_ms = rs_time_ms() - t0;
    st->stop = why;
    rs_bytes_free(&piece);
    rs_bytes_free(&filter.held);
    return rc;
}

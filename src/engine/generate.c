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

/* The loop's state between tokens. */
typedef struct gen_loop {
    rs_session *s;
    const rs_tokenizer *tok;
    rs_sampler *sm;
    const rs_gen_params *p;
    const rs_gen_callbacks *cb;
    rs_gen_stats *st;
    stop_filter filter;
    rs_stream_decoder dec;
    rs_bytes piece;
} gen_loop;

/* A generated token: recorded, checked for the end of generation, turned into text.
 * Returns why generation stops here (NONE: id is to be evaluated next, or *rc failed). */
static rs_gen_stop take_token(gen_loop *g, int32_t id, rs_status *rc, rs_error *err) {
    if ((*rc = rs_sampler_accept(g->sm, id, err))) return RS_GEN_STOP_NONE;
    g->st->n_gen++;
    if (g->cb->on_token) g->cb->on_token(g->cb->user, id);
    if (!g->p->ignore_eos && rs_tokenizer_is_eog(g->tok, id)) return RS_GEN_STOP_EOG;
    g->piece.len = 0;
    if ((*rc = rs_stream_decoder_push(&g->dec, id, &g->piece, err))) return RS_GEN_STOP_NONE;
    return filter_push(&g->filter, g->cb, g->piece.data, g->piece.len, false, err);
}

static bool length_reached(const gen_loop *g) {
    return g->p->n_predict >= 0 && g->st->n_gen >= g->p->n_predict;
}

static bool context_full(const gen_loop *g) {
    return rs_session_n_past(g->s) >= rs_session_n_ctx(g->s);
}

/* Samples on the host from each step's logits, evaluates the token, repeats. Both loops
 * return why generation stopped, or NONE with *rc set. */
static rs_gen_stop sampled_loop(gen_loop *g, rs_status *rc, rs_error *err) {
    for (;;) {
        if (length_reached(g)) return RS_GEN_STOP_LENGTH;
        int32_t id = rs_sampler_sample(g->sm, rs_session_logits(g->s, 0));
        rs_gen_stop why = take_token(g, id, rc, err);
        if (why != RS_GEN_STOP_NONE || *rc) return why;
        if (context_full(g)) return RS_GEN_STOP_CONTEXT;
        if ((*rc = rs_session_eval(g->s, &id, 1, RS_LOGITS_LAST, err))) return RS_GEN_STOP_NONE;
    }
}

/* Each step picks the next token itself (greedy, or drawn by the sampler's chain from its
 * RNG stream) and `ahead` more steps are queued before a pick is read, so a GPU never
 * waits for the host (ahead_opt: gen_params.greedy_ahead). Steps queued past a token that
 * ends generation evaluated tokens nobody took: they are rolled back, and the sampler's
 * RNG is the one after the last pick taken. */
static rs_gen_stop chained_loop(gen_loop *g, int ahead_opt, rs_status *rc, rs_error *err) {
    rs_session *s = g->s;
    int queued = 0; /* steps whose picks are unread; each evaluated a token not yet taken */
    rs_gen_stop why = RS_GEN_STOP_NONE;
    if (length_reached(g)) return RS_GEN_STOP_LENGTH;
    int32_t id = rs_sampler_sample(g->sm, rs_session_logits(s, 0)); /* the prompt's logits */
    why = take_token(g, id, rc, err);
    if (why == RS_GEN_STOP_NONE && !*rc && context_full(g)) why = RS_GEN_STOP_CONTEXT;
    if (why == RS_GEN_STOP_NONE && !*rc) *rc = rs_session_chain_sampler(s, g->sm, err);
    const int ahead = ahead_opt < 0 ? 0 : ahead_opt == 0 ? rs_session_greedy_ahead(s) : ahead_opt;
    if (why == RS_GEN_STOP_NONE && !*rc && !(*rc = rs_session_greedy_step(s, id, err))) queued = 1;
    while (why == RS_GEN_STOP_NONE && !*rc) {
        if (length_reached(g)) {
            why = RS_GEN_STOP_LENGTH;
            queued--; /* the first queued step evaluated the last token taken */
            break;
        }
        while (queued < 1 + ahead && !context_full(g) &&
               !(*rc = rs_session_greedy_step(s, RS_GREEDY_PREV, err)))
            queued++;
        /* a sampled pick hands the sampler the RNG state after its draw */
        if (*rc || (*rc = rs_session_chain_pick(s, &id, g->sm->rng, err))) break;
        queued--;
        why = take_token(g, id, rc, err);
        if (why != RS_GEN_STOP_NONE || *rc) break;
        if (queued > 0) continue;
        if (context_full(g))
            why = RS_GEN_STOP_CONTEXT;
        else if (!(*rc = rs_session_greedy_step(s, RS_GREEDY_PREV, err)))
            queued = 1;
    }
    rs_error drain_err = {0};
    rs_status drained = rs_session_greedy_end(s, &drain_err);
    if (!*rc && drained) *rc = drained, *err = drain_err;
    if (!*rc && queued > 0) rs_session_truncate(s, rs_session_n_past(s) - queued);
    return *rc ? RS_GEN_STOP_NONE : why;
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
    if (p->greedy_ahead >= RS_GREEDY_MAX_QUEUED)
        return rs_error_set(err, RS_ERR_ARG,
                            "greedy_ahead %d: at most %d steps can be queued ahead",
                            p->greedy_ahead, RS_GREEDY_MAX_QUEUED - 1);
    rs_status rc = eval_prompt(s, sm, prompt, n, n_past_cached, st, err);
    if (rc) return rc;

    gen_loop g = {s, tok, sm, p, cb, st, {p, {0}}, {0}, {0}};
    rs_stream_decoder_init(&g.dec, tok, 0);
    double t0 = rs_time_ms();
    const bool chained = !p->host_sampling && rs_session_chain_supports(s, &sm->params);
    rs_gen_stop why =
        chained ? chained_loop(&g, p->greedy_ahead, &rc, err) : sampled_loop(&g, &rc, err);
    if (rc == RS_OK && why != RS_GEN_STOP_STRING && why != RS_GEN_STOP_CALLER) {
        g.piece.len = 0;
        if ((rc = rs_stream_decoder_flush(&g.dec, &g.piece, err)) == RS_OK)
            filter_push(&g.filter, cb, g.piece.data, g.piece.len, true, err);
    }
    st->t_gen_ms = rs_time_ms() - t0;
    st->stop = why;
    rs_bytes_free(&g.piece);
    rs_bytes_free(&g.filter.held);
    return rc;
}

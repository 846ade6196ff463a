/* session_greedy.c — steps chained on the backend (session.h, rs_session_greedy_* and
 * rs_session_chain_*): each step picks the token the next one evaluates.
 *
 * On a GPU holding the whole model a step is a captured graph that ends in greedy_pick
 * (or sample_pick, for a sampled chain): the pick goes into the device's ids[0] for the
 * next step and into greedy_host for the host, and the position moves on, so step t+1
 * can be queued before the host has read step t's pick and the GPU never waits for the
 * host. Steps and their picks are told apart by position % RS_GREEDY_RING, which is why
 * at most RS_GREEDY_MAX_QUEUED (less than the ring) may be unread. Elsewhere a step is
 * rs_forward plus rs_logits_argmax (or rs_sampler_sample) on the host, complete when it
 * returns: the same picks, nothing to overlap.
 *
 * A sampled chain's RNG runs ahead of the picks read: each step leaves the state after
 * its draw in chain_rng_host at its slot, and the pick hands that state to the caller,
 * so steps rolled back never move the caller's sampler. */

#include <stddef.h>
#include <string.h>

#include "model/session_impl.h"
#include "sampler/sampler.h"

_Static_assert((int)RS_GREEDY_MAX_QUEUED < (int)RS_GREEDY_RING,
               "a queued step's slot must be free");

static int32_t *picks(rs_session *s) {
    return s->greedy_host;
}

static bool sampled(const rs_session *s) {
    return s->chain_sm != NULL;
}

/* A rule the plain greedy chain follows: argmax of the raw logits. */
static bool chain_greedy(const rs_sampler_params *p) {
    return p->temp <= 0.0f && !rs_sampler_params_penalized(p);
}

static rs_chain_kind kind_of(const rs_sampler_params *p) {
    if (!p || chain_greedy(p)) return RS_CHAIN_GREEDY;
    if (p->temp <= 0.0f) return RS_CHAIN_GREEDY_PEN;
    return rs_sampler_params_penalized(p) ? RS_CHAIN_SAMPLE_PEN : RS_CHAIN_SAMPLE;
}

static bool on_device(const rs_session *s) {
    return rs_forward_chain_on_device(s, kind_of(s->chain_sm ? &s->chain_sm->params : NULL));
}

int rs_session_greedy_ahead(const rs_session *s) {
    return on_device(s) ? 1 : 0;
}

bool rs_session_chain_supports(const rs_session *s, const rs_sampler_params *p) {
    if (chain_greedy(p)) return true;
    /* penalties only where the device keeps the window: a host's step queued ahead would
     * sample before the caller's sampler has taken the pick before it */
    if (rs_sampler_params_penalized(p) &&
        (p->repeat_last_n > RS_SAMPLE_LAST_N_MAX || !rs_forward_chain_on_device(s, kind_of(p))))
        return false;
    const int32_t n_vocab = s->m->hp.n_vocab;
    const bool top_k_off = p->top_k <= 0 || p->top_k >= n_vocab;
    return p->temp <= 0.0f || (p->top_k >= 1 && p->top_k <= RS_SAMPLE_TOP_K_MAX && !top_k_off) ||
           (top_k_off &&
            n_vocab <= (p->top_p >= 1.0f ? RS_SAMPLE_ALL_VOCAB_MAX : RS_SAMPLE_NUCLEUS_VOCAB_MAX));
}

rs_status rs_session_chain_sampler(rs_session *s, rs_sampler *sm, rs_error *err) {
    if (s->greedy_live || s->greedy_queued)
        return rs_error_set(err, RS_ERR_ARG,
                            "a chain's rule is set before its first step: end the chain first");
    if (sm && !rs_session_chain_supports(s, &sm->params))
        return rs_error_set(err, RS_ERR_ARG,
                            "chained steps cannot sample with these parameters (top_k outside "
                            "1..%d and below the vocabulary, top-p without top-k over more "
                            "than %d tokens, or penalties off the GPU or over more than %d "
                            "tokens)",
                            RS_SAMPLE_TOP_K_MAX, RS_SAMPLE_NUCLEUS_VOCAB_MAX, RS_SAMPLE_LAST_N_MAX);
    if (sm && sm->n_vocab != s->m->hp.n_vocab)
        return rs_error_set(err, RS_ERR_ARG,
                            "the sampler's vocabulary (%d) is not the model's (%d)", sm->n_vocab,
                            s->m->hp.n_vocab);
    s->chain_sm = sm && !chain_greedy(&sm->params) ? sm : NULL;
    if (s->chain_sm) memcpy(s->chain_rng, sm->rng, sizeof s->chain_rng);
    return RS_OK;
}

/* Queues the device step at position n_past; a chain's first step uploads its token and
 * position from slots no queued step still reads (their copies run in queue order). */
static rs_status device_step(rs_session *s, int32_t id, rs_error *err) {
    rs_place *g = &s->place[RS_PLACE_GPU];
    rs_backend *be = g->be;
    const int slot = s->n_past % RS_GREEDY_RING;
    rs_status st;
    if (id != RS_GREEDY_PREV) {
        int32_t *ids = s->greedy_host + RS_GREEDY_RING, *pos = ids + RS_GREEDY_RING;
        ids[slot] = id;
        pos[slot] = s->n_past;
        if ((st = be->ops->upload(be, g->a.ids, &ids[slot], sizeof *ids, err)) ||
            (st = be->ops->upload(be, g->a.pos, &pos[slot], sizeof *pos, err)))
            return st;
    }
    const rs_chain_kind kind = kind_of(sampled(s) ? &s->chain_sm->params : NULL);
    if (sampled(s) && !s->greedy_live) { /* the chain's first step: its rule goes up */
        const rs_sampler *sm = s->chain_sm;
        const rs_sampler_params *p = &sm->params;
        rs_sample_rule *r = &s->rule_host[slot];
        memcpy(r->rng, s->chain_rng, sizeof r->rng);
        r->top_k = p->top_k, r->top_p = p->top_p, r->min_p = p->min_p, r->temp = p->temp;
        /* the window as the caller's sampler holds it now; the device's picks join it */
        rs_sample_window *w = &r->pen;
        const bool pen = rs_sampler_params_penalized(p);
        w->repeat_penalty = p->repeat_penalty, w->frequency_penalty = p->frequency_penalty;
        w->presence_penalty = p->presence_penalty;
        w->last_n = pen ? p->repeat_last_n : 0;
        w->len = pen ? sm->hist_len : 0, w->next = pen ? sm->hist_next : 0;
        if (w->len) memcpy(w->tok, sm->hist, (size_t)w->len * sizeof *w->tok);
        const size_t bytes = offsetof(rs_sample_rule, pen.tok) + (size_t)w->len * sizeof *w->tok;
        if ((st = be->ops->upload(be, g->a.rule, r, bytes, err))) return st;
    }
    if ((st = rs_forward_chained(s, kind, err))) return st;
    return be->ops->fence_mark(be, slot, err);
}

static rs_status host_step(rs_session *s, int32_t id, rs_error *err) {
    const int n_vocab = s->m->hp.n_vocab;
    if (id == RS_GREEDY_PREV) id = picks(s)[(s->n_past - 1) % RS_GREEDY_RING];
    rs_status st = rs_forward(s, &id, 1, 1, err);
    if (st) return st;
    const int slot = s->n_past % RS_GREEDY_RING;
    if (!sampled(s)) {
        picks(s)[slot] = rs_logits_argmax(s->logits_host, n_vocab);
        return RS_OK;
    }
    /* the caller's sampler draws from the chain's state, and is left as it was */
    rs_sampler *sm = s->chain_sm;
    uint64_t saved[4];
    memcpy(saved, sm->rng, sizeof saved);
    memcpy(sm->rng, s->chain_rng, sizeof sm->rng);
    picks(s)[slot] = rs_sampler_sample(sm, s->logits_host);
    memcpy(s->chain_rng, sm->rng, sizeof s->chain_rng);
    memcpy(&s->chain_rng_host[4 * slot], sm->rng, sizeof s->chain_rng);
    memcpy(sm->rng, saved, sizeof saved);
    return RS_OK;
}

rs_status rs_session_greedy_step(rs_session *s, int32_t id, rs_error *err) {
    if (s->greedy_status) return rs_greedy_settle(s, err);
    if (s->greedy_queued >= RS_GREEDY_MAX_QUEUED)
        return rs_error_set(err, RS_ERR_ARG,
                            "%d greedy steps are queued unread: read a pick before queueing more",
                            s->greedy_queued);
    if (s->n_past >= s->n_ctx)
        return rs_error_set(err, RS_ERR_RANGE, "context full: %d tokens in a context of %d",
                            s->n_past, s->n_ctx);
    if (id == RS_GREEDY_PREV && !s->greedy_live)
        return rs_error_set(err, RS_ERR_ARG,
                            "no greedy step before this one to take the token from");
    if (id != RS_GREEDY_PREV && (id < 0 || id >= s->m->hp.n_vocab))
        return rs_error_set(err, RS_ERR_RANGE, "token id %d out of range [0, %d)", id,
                            s->m->hp.n_vocab);
    rs_status st = on_device(s) ? device_step(s, id, err) : host_step(s, id, err);
    if (st) {
        rs_error ignored = {0};
        rs_greedy_settle(s, &ignored); /* what was queued before still completes */
        return st;
    }
    if (s->greedy_queued++ == 0) s->greedy_read = s->n_past;
    s->n_past++;
    s->n_logits = 0; /* a greedy step's logits stay where they were made */
    s->greedy_live = true;
    return RS_OK;
}

rs_status rs_session_chain_pick(rs_session *s, int32_t *id, uint64_t rng[4], rs_error *err) {
    *id = -1;
    if (s->greedy_queued == 0)
        return rs_error_set(err, RS_ERR_ARG, "no greedy step is queued with an unread pick");
    const int slot = s->greedy_read % RS_GREEDY_RING;
    if (on_device(s)) {
        rs_backend *be = s->place[RS_PLACE_GPU].be;
        rs_status st = be->ops->fence_wait(be, slot, err);
        if (st) {
            rs_error ignored = {0};
            rs_greedy_settle(s, &ignored);
            return st;
        }
    }
    const int32_t pick = ((volatile const int32_t *)picks(s))[slot];
    s->greedy_read++;
    s->greedy_queued--;
    if (pick < 0 || pick >= s->m->hp.n_vocab)
        return rs_error_set(err, RS_ERR_DEVICE, "the backend picked token %d, outside [0, %d)",
                            pick, s->m->hp.n_vocab);
    if (rng && sampled(s))
        for (int j = 0; j < 4; j++)
            rng[j] = ((volatile const uint64_t *)s->chain_rng_host)[4 * slot + j];
    *id = pick;
    return RS_OK;
}

rs_status rs_session_greedy_pick(rs_session *s, int32_t *id, rs_error *err) {
    return rs_session_chain_pick(s, id, NULL, err);
}

rs_status rs_greedy_settle(rs_session *s, rs_error *err) {
    rs_status st = s->greedy_status;
    if (st && err) *err = s->greedy_err;
    s->greedy_status = RS_OK;
    s->chain_sm = NULL; /* the next chain is greedy unless told otherwise */
    if (!s->greedy_live && s->greedy_queued == 0) return st;
    s->greedy_live = false;
    s->greedy_queued = 0;
    for (int k = 0; k < s->n_place; k++) {
        rs_error e = {0};
        rs_status sk = s->place[k].be->ops->sync(s->place[k].be, &e);
        if (sk && !st) {
            st = sk;
            if (err) *err = e;
        }
    }
    return st;
}

rs_status rs_session_greedy_end(rs_session *s, rs_error *err) {
    return rs_greedy_settle(s, err);
}

/* session_greedy.c — greedy steps chained on the backend (session.h, rs_session_greedy_*).
 *
 * On a GPU holding the whole model a step is a captured graph that ends in greedy_pick:
 * the pick goes into the device's ids[0] for the next step and into greedy_host for the
 * host, and the position moves on, so step t+1 can be queued before the host has read
 * step t's pick and the GPU never waits for the host. Steps and their picks are told
 * apart by position % RS_GREEDY_RING, which is why at most RS_GREEDY_MAX_QUEUED (less than
 * the ring) may be unread. Elsewhere a step is rs_forward plus rs_logits_argmax on the
 * host, complete when it returns: the same picks, nothing to overlap. */

#include "model/session_impl.h"
#include "sampler/sampler.h"

_Static_assert((int)RS_GREEDY_MAX_QUEUED < (int)RS_GREEDY_RING,
               "a queued step's slot must be free");

static int32_t *picks(rs_session *s) {
    return s->greedy_host;
}

int rs_session_greedy_ahead(const rs_session *s) {
    return rs_forward_greedy_on_device(s) ? 1 : 0;
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
    if ((st = rs_forward_greedy(s, err))) return st;
    return be->ops->fence_mark(be, slot, err);
}

static rs_status host_step(rs_session *s, int32_t id, rs_error *err) {
    const int n_vocab = s->m->hp.n_vocab;
    if (id == RS_GREEDY_PREV) id = picks(s)[(s->n_past - 1) % RS_GREEDY_RING];
    rs_status st = rs_forward(s, &id, 1, 1, err);
    if (st) return st;
    picks(s)[s->n_past % RS_GREEDY_RING] = rs_logits_argmax(s->logits_host, n_vocab);
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
    const bool device = rs_forward_greedy_on_device(s);
    rs_status st = device ? device_step(s, id, err) : host_step(s, id, err);
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

rs_status rs_session_greedy_pick(rs_session *s, int32_t *id, rs_error *err) {
    *id = -1;
    if (s->greedy_queued == 0)
        return rs_error_set(err, RS_ERR_ARG, "no greedy step is queued with an unread pick");
    const int slot = s->greedy_read % RS_GREEDY_RING;
    if (rs_forward_greedy_on_device(s)) {
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
    *id = pick;
    return RS_OK;
}

rs_status rs_greedy_settle(rs_session *s, rs_error *err) {
    rs_status st = s->greedy_status;
    if (st && err) *err = s->greedy_err;
    s->greedy_status = RS_OK;
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

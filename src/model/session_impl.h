/* session_impl.h — the session's internals, shared by session.c (setup) and
 * forward.c (the forward pass). Not part of the public interface. */
#ifndef RUSTY_SESSION_IMPL_H
#define RUSTY_SESSION_IMPL_H

#include "model/session.h"
#include "sampler/sampler.h"

/* Activation buffers on one backend, each sized for n_batch tokens. */
typedef struct rs_acts {
    float *x;             /* [n][n_embd] residual stream */
    float *xn;            /* [n][n_embd] normed input of the current block */
    float *q;             /* [n][n_head * head_dim] */
    float *k;             /* [n][n_head_kv * head_dim] */
    float *v;             /* [n][n_head_kv * head_dim] */
    float *att;           /* [n][n_head * head_dim] attention output */
    float *tmp;           /* [n][n_embd] block output before the residual add */
    float *g;             /* [n][n_ff] gate, then silu(gate) * up */
    float *u;             /* [n][n_ff] up */
    float *logits;        /* [n_batch][n_vocab] on the output backend only */
    int32_t *pos;         /* [n_batch] */
    int32_t *ids;         /* [n_batch] token ids, where the place embeds them */
    float *inv_freq;      /* [n_rot / 2] rope frequencies */
    rs_sample_rule *rule; /* a sampled chain's rule and RNG state, where it picks (GPU) */
} rs_acts;

/* One backend's contiguous share of the layers. */
typedef struct rs_place {
    rs_backend *be;
    int first_layer;
    int n_layers;
    rs_kv *kv;
    rs_acts a;
    void *a_base; /* the one allocation the buffers of `a` live in */
    rs_rope rope;
    /* a device place running layer 0 keeps its own copy of the token
     * embeddings (loaded when its backend supports the type): the lookup
     * then runs there and only token ids cross the bus */
    rs_weight tok_embd;
} rs_place;

enum { RS_PLACE_CPU = 0, RS_PLACE_GPU = 1, RS_MAX_PLACES = 2 };

/* Greedy steps in flight are told apart by their position modulo this: it sizes the
 * pick ring, the staged inputs and the backend's fence slots. */
enum { RS_GREEDY_RING = RS_FENCES };

struct rs_session {
    const rs_model *m;
    int n_ctx;
    int n_batch;
    int n_past;
    int n_threads;
    int n_gpu_layers;
    /* why the layers are not where the options asked (rs_session_info.note) */
    char note[RS_ERROR_MSG_MAX + 64];
    rs_kv_type kv_type;

    rs_place place[RS_MAX_PLACES]; /* CPU always (it embeds tokens); GPU when used */
    int n_place;
    rs_place *out_place;           /* runs the final norm and the output head */
    rs_layer_weights *lw;          /* per layer, loaded on the layer's backend */
    rs_weight output_norm, output; /* loaded on out_place's backend */
    rs_attn attn;

    /* host ends of the per-step copies, in one allocation (host_base): from
     * the GPU backend's host_alloc (page-locked) when it has one, else malloc */
    void *host_base;
    rs_backend *host_owner; /* the backend that allocated host_base, or NULL */
    float *logits_host;     /* [n_batch][n_vocab] */
    int32_t *pos_host;      /* [n_batch] positions of the tokens being evaluated */
    int32_t *ids_host;      /* [n_batch] their ids, staged for a device that embeds them */
    int n_logits;           /* rows valid after the last eval */
    /* [3][RS_GREEDY_RING] in host_base: each greedy step's pick, then the token and
     * position a step that starts a chain uploads, all at position % RS_GREEDY_RING */
    int32_t *greedy_host;
    /* [RS_GREEDY_RING][4] in host_base: the RNG state after each sampled step's draw */
    uint64_t *chain_rng_host;
    /* [RS_GREEDY_RING] in host_base: the rule a sampled chain's first step uploads */
    rs_sample_rule *rule_host;

    /* greedy steps chained on the backend (session_greedy.c) */
    int greedy_queued;       /* steps queued whose picks are unread */
    int greedy_read;         /* position of the oldest of them */
    bool greedy_live;        /* the last eval was a greedy step: its pick feeds the next */
    rs_status greedy_status; /* a failure met while draining for truncate, reported next */
    rs_error greedy_err;
    /* the chain's pick rule (rs_session_chain_sampler): NULL for greedy, else the caller's
     * sampler (borrowed until the chain ends), and its RNG state after the last step
     * queued (the host's steps draw from it; a device's rule moves on there) */
    rs_sampler *chain_sm;
    uint64_t chain_rng[4];
};

/* forward.c: evaluates n <= n_batch tokens at positions n_past.. (no bounds checks),
 * keeping the logits of the last n_out of them (0, 1 or n). */
rs_status rs_forward(rs_session *s, const int32_t *ids, int n, int n_out, rs_error *err);

/* How a chain's steps pick: greedy_pick, or sample_pick by the GPU's rule, either after
 * the rule's penalties (penalize) or not. */
typedef enum rs_chain_kind {
    RS_CHAIN_GREEDY,
    RS_CHAIN_SAMPLE,
    RS_CHAIN_GREEDY_PEN,
    RS_CHAIN_SAMPLE_PEN,
} rs_chain_kind;

/* forward.c: whether chained steps of kind k run on the device: the GPU holds every
 * layer, the embeddings and the head, has the kind's ops, and writes into the page-locked
 * greedy_host. */
bool rs_forward_chain_on_device(const rs_session *s, rs_chain_kind k);
/* forward.c: queues one chained step (a captured graph): evaluates the GPU's ids[0] at
 * its pos[0], then picks as kind k does. */
rs_status rs_forward_chained(rs_session *s, rs_chain_kind k, rs_error *err);

/* session_greedy.c: waits for queued greedy steps and ends the chain (eval and truncate
 * call it first). */
rs_status rs_greedy_settle(rs_session *s, rs_error *err);

#endif

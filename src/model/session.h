/* session.h — running a model: layer placement, KV cache, activations, logits.
 *
 * A session evaluates one sequence: tokens are appended at positions
 * n_past, n_past + 1, ... until the context (n_ctx) is full, which is an
 * RS_ERR_RANGE error (never memory corruption). Prompts are evaluated in
 * batches of up to n_batch tokens as matrix-matrix work; decode is the n = 1
 * case of the same forward pass (forward.c).
 *
 * Placement: with a GPU, the last n_gpu_layers layers (and the output head) run
 * there and the rest on the CPU, as llama.cpp's -ngl does. */
#ifndef RUSTY_SESSION_H
#define RUSTY_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/status.h"
#include "model/model.h"

typedef enum rs_device {
    RS_DEVICE_AUTO = 0, /* CUDA when a GPU is present, else CPU */
    RS_DEVICE_CPU = 1,
    RS_DEVICE_CUDA = 2,
} rs_device;

typedef struct rs_session_opts {
    int n_ctx;     /* 0: the model's context, capped so the KV cache fits in memory */
    int n_batch;   /* tokens per forward call (prompt chunk); 0: 512 */
    int n_threads; /* CPU threads; 0: physical cores */
    rs_device device;
    int n_gpu_layers; /* layers on the GPU; -1: all (the default) */
    rs_kv_type kv_type;
} rs_session_opts;

typedef struct rs_session rs_session;

/* Which logits an eval call keeps. */
typedef enum rs_logits_mode {
    RS_LOGITS_LAST = 0, /* only the last token's (generation) */
    RS_LOGITS_ALL = 1,  /* every token's (perplexity); n must be <= n_batch */
} rs_logits_mode;

void rs_session_opts_default(rs_session_opts *o);
rs_status rs_session_create(rs_session **out, const rs_model *m, const rs_session_opts *o,
                            rs_error *err);
void rs_session_free(rs_session *s);

/* Appends n tokens and runs them through the model. */
rs_status rs_session_eval(rs_session *s, const int32_t *ids, int n, rs_logits_mode mode,
                          rs_error *err);
/* Logits of token i of the last eval (RS_LOGITS_ALL), or of the last token (i = 0,
 * RS_LOGITS_LAST). [n_vocab] floats, valid until the next eval. */
const float *rs_session_logits(const rs_session *s, int i);

/* ---- greedy steps chained on the backend ---------------------------------------------
 * A greedy step evaluates one token at position n_past (n_past += 1) and picks the next
 * token as rs_logits_argmax of its logits (sampler.h). The token is the caller's
 * (id >= 0) or the previous greedy step's pick (RS_GREEDY_PREV). When the GPU holds the
 * whole model, the pick stays on the device: a step is a captured graph queued on it, the
 * next step can be queued before the host has read this one's pick, and no host round
 * trip sits between two steps. Elsewhere a step completes when it is queued. Picks are
 * read in queue order; at most RS_GREEDY_MAX_QUEUED may be unread. A greedy step leaves no
 * logits (rs_session_logits returns NULL). eval and truncate first wait for queued steps
 * and drop their unread picks: roll back speculative steps with truncate. */
enum { RS_GREEDY_PREV = -1, RS_GREEDY_MAX_QUEUED = 3 };

/* Steps worth queueing beyond the one whose pick is read next: 1 where steps (by the
 * rule set for the next chain, rs_session_chain_sampler) run on the device, 0 where each
 * completes as it is queued. */
int rs_session_greedy_ahead(const rs_session *s);
rs_status rs_session_greedy_step(rs_session *s, int32_t id, rs_error *err);
/* Waits for the oldest queued step whose pick is unread and returns that pick. */
rs_status rs_session_greedy_pick(rs_session *s, int32_t *id, rs_error *err);
/* Waits for every queued step and drops the unread picks. */
rs_status rs_session_greedy_end(rs_session *s, rs_error *err);

/* Chained steps can also draw their tokens as rs_sampler_sample would (temperature,
 * top-k, top-p, min-p: the same token for the same logits and RNG state; on a GPU the
 * draw runs there). rs_session_chain_sampler sets the rule of the chain the next step
 * starts: sm's parameters and its RNG state as it is now (sm is borrowed, not changed,
 * until the chain ends at rs_session_greedy_end, eval or truncate; the rule is then
 * greedy again). NULL, or greedy parameters, is the argmax. RS_ERR_ARG while a chain
 * runs, or for parameters rs_session_chain_supports refuses. */
typedef struct rs_sampler rs_sampler;
typedef struct rs_sampler_params rs_sampler_params;
/* True for greedy parameters, for sampling with 1 <= top_k <= 256 (RS_SAMPLE_TOP_K_MAX)
 * below the vocabulary size, and for sampling with top-k off (the whole vocabulary, at most
 * RS_SAMPLE_ALL_VOCAB_MAX tokens, or RS_SAMPLE_NUCLEUS_VOCAB_MAX with top-p); with penalties
 * (rs_sampler_params_penalized) only where the steps run on a GPU and the window is at most
 * RS_SAMPLE_LAST_N_MAX tokens. Such a chain starts from sm's penalty window as it is at its
 * first step and adds its own picks to it there; accept each pick into sm as usual, so the
 * next chain starts from the right one. */
bool rs_session_chain_supports(const rs_session *s, const rs_sampler_params *p);
rs_status rs_session_chain_sampler(rs_session *s, rs_sampler *sm, rs_error *err);
/* rs_session_greedy_pick, and for a sampled chain the RNG state after the pick's draw in
 * rng[4] (where the sampler continues from once the pick is taken: pass its rng). rng is
 * untouched by a greedy chain or a failed pick, and may be NULL. */
rs_status rs_session_chain_pick(rs_session *s, int32_t *id, uint64_t rng[4], rs_error *err);

int rs_session_n_past(const rs_session *s);
int rs_session_n_ctx(const rs_session *s);
/* Forgets positions >= n (n <= n_past): the next eval continues at n. */
void rs_session_truncate(rs_session *s, int n);

/* What the session runs on, for logs and benchmarks. */
typedef struct rs_session_info {
    const char *backend; /* "cpu", "cuda", "cuda+cpu" */
    int n_threads;
    int n_gpu_layers;
    int n_ctx;
    int n_batch;
    uint64_t kv_bytes; /* whole KV cache */
    uint64_t kv_bytes_per_pos;
    const char *note; /* why it runs elsewhere than asked (the GPU lacks a kernel), or NULL */
} rs_session_info;

void rs_session_get_info(const rs_session *s, rs_session_info *info);

/* Measures, now, the memory bandwidth (GB/s) of the backend that streams most of
 * the weights (the GPU when layers run there), for roofline figures. */
rs_status rs_session_bandwidth(rs_session *s, double *gbps, rs_error *err);

#endif

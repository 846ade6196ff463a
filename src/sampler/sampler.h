/* sampler.h — picks the next token from a logits vector, the way llama.cpp users expect.
 *
 * The chain, in llama.cpp's default order (common/common.h `samplers`: penalties, dry,
 * top_n_sigma, top_k, typ_p, top_p, min_p, xtc, temperature; the ones we lack are off
 * by default there):
 *   1. penalties  for each token seen c > 0 times in the last repeat_last_n accepted tokens:
 *                 logit = logit > 0 ? logit / repeat_penalty : logit * repeat_penalty, then
 *                 logit -= c * frequency_penalty + presence_penalty (counts are over the
 *                 window, as in llama.cpp, not over the whole history as in OpenAI's API)
 *   2. greedy     when temp <= 0: the argmax of the penalised logits (ties: lowest id), done
 *   3. top-k      keep the k highest logits (ties broken by lower id)
 *   4. top-p      softmax (at temperature 1) over the survivors, keep the shortest
 *                 highest-first prefix whose probability mass reaches top_p; over the
 *                 whole vocabulary (top-k off) the masses are integers (nucleus.h), so
 *                 that the GPU finds the same prefix
 *   5. min-p      keep tokens with p >= min_p * p_max, i.e. logit >= max + log(min_p)
 *   6. temperature  p_i = softmax(logit_i / temp) over the survivors (float64)
 *   7. draw       one uniform double u = (next >> 11) * 2^-53 from the sampler's
 *                 xoshiro256** stream; the first candidate whose cumulative probability
 *                 exceeds u. No number is drawn when one candidate is left (as llama.cpp).
 *                 When top-k is off, the candidates are drawn in id order (the ids top-p
 *                 and min-p drop have no mass) and the cumulative sums go up and down a
 *                 tree of partial sums (mass_tree.h), an order a GPU can take in parallel.
 * Filters 3-5 therefore see temperature-1 probabilities, exactly as in llama.cpp.
 *
 * NaN logits count as -inf and +inf as FLT_MAX, so hostile logits cannot poison the
 * softmax; if every candidate is -inf the draw is uniform over them.
 *
 * Reproducibility: the RNG (xoshiro256**, seeded through splitmix64) is bit-exact on every
 * platform, and so is the token sequence wherever libm's exp/log return the same values;
 * a libm differing in the last bit can only flip a draw landing within ~1e-16 of a
 * cumulative boundary (or a filter cut within ~1e-16 of its threshold).
 * All buffers are allocated by rs_sampler_init; sampling never allocates. */
#ifndef RUSTY_SAMPLER_H
#define RUSTY_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"

/* params.seed value meaning "draw a seed from getrandom()/the clock"; the seed actually
 * used is in rs_sampler.seed afterwards so it can be printed and replayed. */
#define RS_SAMPLER_SEED_RANDOM UINT64_MAX

enum {
    RS_SAMPLER_VOCAB_MAX = 1 << 24,  /* bound on n_vocab (work buffers are 16 B per token) */
    RS_SAMPLER_LAST_N_MAX = 1 << 24, /* bound on repeat_last_n */
    RS_SAMPLER_BUCKETS = 2048,       /* logit histogram for top-p over the whole vocabulary */
};

typedef struct rs_sampler_params {
    float temp;              /* 0.8; <= 0 means greedy; must be finite */
    int32_t top_k;           /* 40; <= 0 (or >= n_vocab) means off */
    float top_p;             /* 0.95; in (0, 1]; 1 means off */
    float min_p;             /* 0.05; in [0, 1]; 0 means off */
    float repeat_penalty;    /* 1.0 (off); finite, > 0 */
    int32_t repeat_last_n;   /* 64; window of accepted tokens the penalties look at; 0 = off */
    float frequency_penalty; /* 0; finite (may be negative) */
    float presence_penalty;  /* 0; finite (may be negative) */
    uint64_t seed;           /* RS_SAMPLER_SEED_RANDOM */
} rs_sampler_params;

typedef struct rs_sampler {
    rs_sampler_params params;
    int32_t n_vocab;
    uint64_t seed;         /* the seed in use (resolved when params.seed was RANDOM) */
    uint64_t rng[4];       /* xoshiro256** state */
    float *logit;          /* [n_vocab] the last logits, cleaned and penalised */
    int32_t *cand;         /* [n_vocab] candidate ids of the last chain run */
    double *prob;          /* [n_vocab] their final probabilities */
    int32_t n_cand;        /* candidates after the last chain run */
    int32_t *count;        /* [n_vocab] occurrences of each token in the history window */
    int32_t *hist;         /* [repeat_last_n] ring of accepted tokens */
    int32_t hist_len;      /* tokens in the ring */
    int32_t hist_next;     /* ring slot the next token goes to */
    uint64_t *bucket_mass; /* [RS_SAMPLER_BUCKETS] top-p histogram: mass (nucleus.h units) */
    int32_t *bucket_n;     /* [RS_SAMPLER_BUCKETS] top-p histogram: ids */
    double *tree;          /* the mass tree's levels above the ids (mass_tree.h) */
    float cut_logit;       /* top-p over the whole vocabulary kept the ids ranked at or above */
    int32_t cut_id;        /* this logit and id (nucleus.h); -inf and n_vocab - 1: all of them */
} rs_sampler;

/* llama.cpp's defaults, as documented on each field above. */
rs_sampler_params rs_sampler_params_default(void);

/* Checks *p (one clear line in *err naming the bad field) without allocating. */
rs_status rs_sampler_params_check(const rs_sampler_params *p, rs_error *err);

/* Validates the params and n_vocab (1..RS_SAMPLER_VOCAB_MAX), allocates all buffers and
 * seeds the RNG. On failure *s holds nothing to free (rs_sampler_free is still safe). */
rs_status rs_sampler_init(rs_sampler *s, const rs_sampler_params *p, int32_t n_vocab,
                          rs_error *err);
void rs_sampler_free(rs_sampler *s);

/* Runs the chain on logits[n_vocab] (not modified) and draws a token. Does not record
 * the token: call rs_sampler_accept with whatever token is actually used. */
int32_t rs_sampler_sample(rs_sampler *s, const float *logits);

/* Runs the chain without drawing (the RNG does not move) and returns the number of
 * final candidates (>= 1); *ids and *probs (either may be NULL) point at them, sorted by
 * descending probability, ties by ascending id, valid until the next call on s. With
 * temp <= 0 it is the one greedy token with probability 1. Probabilities are float64 and
 * sum to 1. Without top-k the survivors are heap-sorted here, O(n log n) in their count. */
int32_t rs_sampler_probs(rs_sampler *s, const float *logits, const int32_t **ids,
                         const double **probs);

/* Appends a token to the penalty history (dropping the oldest beyond repeat_last_n).
 * RS_ERR_RANGE if token is not in [0, n_vocab). */
rs_status rs_sampler_accept(rs_sampler *s, int32_t token, rs_error *err);

/* The greedy rule on its own: the id of the largest logit after stage 1's cleaning (NaN as
 * -inf, +inf as FLT_MAX), the lowest id among equals; 0 when every logit is -inf or NaN.
 * rs_sampler_sample returns exactly this when temp <= 0 and no penalty is set. */
int32_t rs_logits_argmax(const float *logits, int32_t n);

/* True when sampling with p is rs_logits_argmax of the raw logits (temp <= 0, no penalty):
 * a backend may then pick tokens itself (rs_session_chain_step). */
bool rs_sampler_params_greedy(const rs_sampler_params *p);

/* True when stage 1 changes anything: a window (repeat_last_n > 0) and a penalty that is
 * not neutral (repeat_penalty != 1, or a frequency or presence penalty). */
bool rs_sampler_params_penalized(const rs_sampler_params *p);

/* Clears the penalty history and restarts the RNG stream from s->seed. */
void rs_sampler_reset(rs_sampler *s);

/* Restarts the RNG stream from a new seed (RS_SAMPLER_SEED_RANDOM draws one). */
void rs_sampler_set_seed(rs_sampler *s, uint64_t seed);

#endif

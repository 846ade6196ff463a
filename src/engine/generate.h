/* generate.h — the autoregressive loop: prompt -> tokens -> text, streamed.
 *
 * Shared by `rusty run`, `rusty chat` and (later) the server: evaluates the
 * prompt in batches, then samples, decodes and streams one token at a time
 * until EOS/EOT, a stop string, n_predict tokens or a full context. Text is
 * delivered through a callback in valid UTF-8 pieces; text that might be the
 * start of a stop string is held back until it is known not to be. */
#ifndef RUSTY_GENERATE_H
#define RUSTY_GENERATE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "model/session.h"
#include "sampler/sampler.h"
#include "tokenizer/tokenizer.h"

enum { RS_GEN_MAX_STOPS = 16 };

typedef struct rs_gen_params {
    int n_predict;   /* tokens to generate; < 0: until end of generation or full context */
    bool ignore_eos; /* keep going past end-of-generation tokens */
    const char *stop[RS_GEN_MAX_STOPS]; /* stop strings (not emitted) */
    int n_stop;
    /* Greedy decoding, and sampling the session can chain (rs_session_chain_supports:
     * top_k set, or top-k and top-p off; penalties on a GPU), chain their steps on the
     * session (rs_session_greedy_step): tokens are picked where the logits are, and on a
     * GPU the next step is queued before the host reads the last pick. These two change
     * how, not what: the tokens, text, cache and the sampler's RNG afterwards are the
     * same. */
    bool host_sampling; /* sample every token on the host instead (for comparisons) */
    int greedy_ahead;   /* steps queued ahead: 0 the session's choice, < 0 none, at most
                          RS_GREEDY_MAX_QUEUED - 1 */
} rs_gen_params;

typedef enum rs_gen_stop {
    RS_GEN_STOP_NONE = 0,
    RS_GEN_STOP_EOG,     /* the model produced an end-of-generation token */
    RS_GEN_STOP_STRING,  /* a stop string appeared */
    RS_GEN_STOP_LENGTH,  /* n_predict reached */
    RS_GEN_STOP_CONTEXT, /* the context is full */
    RS_GEN_STOP_CALLER,  /* the callback asked to stop */
} rs_gen_stop;

typedef struct rs_gen_stats {
    int n_prompt;       /* prompt tokens evaluated (those not already in the cache) */
    int n_gen;          /* tokens sampled */
    double t_prompt_ms; /* prompt evaluation time */
    double t_gen_ms;    /* sampling + decode time of generated tokens */
    rs_gen_stop stop;
} rs_gen_stats;

/* Receives generated text; return false to stop generation. */
typedef bool (*rs_gen_text_fn)(void *user, const char *text, size_t len);
/* Optional: sees each token as it is accepted (e.g. to keep a chat history). */
typedef void (*rs_gen_token_fn)(void *user, int32_t token);

typedef struct rs_gen_callbacks {
    rs_gen_text_fn on_text;
    rs_gen_token_fn on_token;
    void *user;
} rs_gen_callbacks;

/* Evaluates prompt[n_past_cached..n) and generates. prompt[0..n_past_cached) must
 * already be in the session's cache at the same positions (the session is
 * truncated to that length first); n_past_cached < n, since the last prompt
 * token's logits seed the first sample. Newly evaluated prompt tokens enter the
 * sampler's penalty history, as in llama.cpp. */
rs_status rs_generate(rs_session *s, const rs_tokenizer *tok, rs_sampler *sm, const int32_t *prompt,
                      int n, int n_past_cached, const rs_gen_params *p, const rs_gen_callbacks *cb,
                      rs_gen_stats *stats, rs_error *err);

/* Monotonic clock in milliseconds. */
double rs_time_ms(void);

#endif

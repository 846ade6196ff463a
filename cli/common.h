/* common.h — options and set-up shared by the model-running subcommands
 * (run, chat, bench, perplexity). */
#ifndef RUSTY_CLI_COMMON_H
#define RUSTY_CLI_COMMON_H

#include <stdbool.h>

#include "args.h"
#include "engine/generate.h"
#include "model/model.h"
#include "model/session.h"
#include "sampler/sampler.h"

typedef struct cli_model_opts {
    const char *model; /* NULL: the built-in demo model */
    rs_session_opts session;
    bool kv_type_seen; /* -ctk/-ctv given: a second one must agree */
} cli_model_opts;

typedef struct cli_gen_opts {
    rs_sampler_params sampling;
    rs_gen_params gen;
    const char *prompt;
    const char *prompt_file;
} cli_gen_opts;

extern const char cli_model_help[]; /* help text for the model/session flags */
extern const char cli_gen_help[];   /* help text for the sampling/generation flags */

void cli_model_opts_init(cli_model_opts *o);
void cli_gen_opts_init(cli_gen_opts *o, int n_predict);

/* Consumes argv[a->i] (and its value) if it is a model/session option.
 * Returns 1 if consumed, 0 if not ours, -1 after printing a usage error. */
int cli_parse_model_opt(cli_args *a, cli_model_opts *o);
/* The -ctk name of a KV cache type ("f16", "q8_0", ...). */
const char *cli_kv_type_name(rs_kv_type t);
/* The same for a sampler option (--temp, --top-k, --top-p, --min-p, the penalties,
 * --repeat-last-n, -s/--seed). */
int cli_parse_sampler_opt(cli_args *a, rs_sampler_params *sp);
/* The same for a generation option: -p/--prompt, -f/--file, -n/--n-predict, --stop,
 * --ignore-eos and the sampler's. */
int cli_parse_gen_opt(cli_args *a, cli_gen_opts *o);

/* Loads the model (or the demo) and creates a session; logs to stderr. With
 * needs_tokenizer, a model without a vocabulary is an error.
 * Returns 0, or 1 after printing the error. */
int cli_load(const char *cmd, const cli_model_opts *o, bool needs_tokenizer, rs_model **m,
             rs_session **s);

/* The prompt from -p or -f (malloc'd copy, NUL-terminated; *len set), or the
 * default when neither was given. NULL after printing an error. */
char *cli_read_prompt(const char *cmd, const cli_gen_opts *o, const char *fallback, size_t *len);

/* Tokenizes text for generation: BOS when the vocabulary adds one, special-token
 * text parsed. Returns 0, or 1 after printing the error. */
int cli_tokenize_prompt(const char *cmd, const rs_tokenizer *tok, const char *text, size_t len,
                        rs_tokens *out);

#endif

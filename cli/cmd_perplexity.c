/* cmd_perplexity.c — `rusty perplexity`: perplexity computed exactly as
 * llama.cpp's llama-perplexity does, so the numbers are comparable.
 *
 * The whole text is tokenized (with BOS when the model adds one) and cut into
 * floor(n / c) chunks of c tokens. Each chunk starts from an empty cache, its
 * first token replaced by BOS (when the model adds one), and only the
 * predictions of tokens c/2+1 .. c-1 are scored (the first half only gives
 * them context). The estimate's error is the standard error of the mean
 * negative log-likelihood, propagated through exp(). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "tokenizer/tokenizer.h"

static const char ppl_usage[] =
    "usage: rusty perplexity -m MODEL -f TEXT [-c 512] [options]\n"
    "\n"
    "Perplexity of a text file, computed like llama.cpp's llama-perplexity: chunks of\n"
    "-c tokens, each scored on its second half. Prints running values per chunk and a\n"
    "last line 'Final estimate: PPL = X +/- Y'.\n"
    "\n";

/* log p(target | logits) in double, via a stable log-sum-exp. */
static double log_prob(const float *logits, int n_vocab, int target) {
    float mx = logits[0];
    for (int i = 1; i < n_vocab; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - mx);
    // cppcheck-suppress invalidFunctionArg ; sum >= 1: the max logit adds exp(0)
    return (double)logits[target] - mx - log(sum);
}

typedef struct ppl_acc {
    double nll, nll2;
    long count;
} ppl_acc;

/* Evaluates one chunk (tokens[0..c)) and adds its scored predictions to acc. */
static int score_chunk(rs_session *s, const rs_model *m, int32_t *tokens, int c, ppl_acc *acc) {
    rs_error err = {0};
    int n_batch = rs_session_n_ctx(s) < 512 ? rs_session_n_ctx(s) : 512;
    int first = c / 2, n_vocab = m->hp.n_vocab;
    rs_session_truncate(s, 0);
    for (int start = 0; start < c; start += n_batch) {
        int n = c - start < n_batch ? c - start : n_batch;
        if (rs_session_eval(s, tokens + start, n, RS_LOGITS_ALL, &err) != RS_OK) {
            fprintf(stderr, "rusty perplexity: %s\n", err.msg);
            return 1;
        }
        for (int i = 0; i < n; i++) {
            int pos = start + i; /* logits at pos predict token pos + 1 */
            if (pos < first || pos + 1 >= c) continue;
            double lp = log_prob(rs_session_logits(s, i), n_vocab, tokens[pos + 1]);
            acc->nll -= lp;
            acc->nll2 += lp * lp;
            acc->count++;
        }
    }
    return 0;
}

static int run_perplexity(rs_session *s, const rs_model *m, rs_tokens *toks, int c) {
    long n_chunk = (long)toks->n / c;
    int32_t bos = rs_tokenizer_bos(m->tok);
    bool add_bos = rs_tokenizer_add_bos(m->tok) && bos != RS_TOKEN_NONE;
    fprintf(stderr, "rusty: %zu tokens, %ld chunks of %d, scoring tokens %d..%d of each\n", toks->n,
            n_chunk, c, c / 2 + 1, c - 1);
    ppl_acc acc = {0, 0, 0};
    double t0 = rs_time_ms();
    for (long k = 0; k < n_chunk; k++) {
        int32_t *chunk = toks->ids + k * c;
        int32_t saved = chunk[0];
        if (add_bos) chunk[0] = bos;
        int rc = score_chunk(s, m, chunk, c, &acc);
        chunk[0] = saved;
        if (rc) return 1;
        printf("[%ld]%.4f,", k + 1, exp(acc.nll / acc.count));
        fflush(stdout);
        if (k == 0)
            fprintf(stderr, "\nrusty: %.2f s per chunk, about %.0f s in all\n",
                    (rs_time_ms() - t0) / 1e3, (rs_time_ms() - t0) / 1e3 * n_chunk);
    }
    double nll = acc.nll / acc.count, nll2 = acc.nll2 / acc.count - nll * nll;
    double ppl = exp(nll);
    printf("\n");
    if (nll2 > 0 && acc.count > 1)
        printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, sqrt(nll2 / (acc.count - 1)) * ppl);
    else
        printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, 0.0);
    return 0;
}

int cmd_perplexity(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("%s%s", ppl_usage, cli_model_help);
        return 0;
    }
    cli_model_opts mo;
    cli_gen_opts go;
    cli_model_opts_init(&mo);
    cli_gen_opts_init(&go, 0);
    mo.session.n_ctx = 512;
    cli_args a = {"perplexity", argc, argv, 1};
    for (; a.i < argc; a.i++) {
        int r = cli_parse_model_opt(&a, &mo);
        if (r == 0 && cli_is(argv[a.i], "-f", "--file"))
            r = cli_take_str(&a, &go.prompt_file) ? 1 : -1;
        if (r < 0) return 1;
        if (r == 0) return cli_usage_error("perplexity", "unknown option '%s'", argv[a.i]);
    }
    if (!mo.model) return cli_usage_error("perplexity", "no model given (-m)");
    if (!go.prompt_file) return cli_usage_error("perplexity", "no text file given (-f)");
    int c = mo.session.n_ctx;
    if (c < 4) return cli_usage_error("perplexity", "-c must be at least 4");
    size_t len;
    char *text = cli_read_prompt("perplexity", &go, "", &len);
    if (!text) return 1;
    rs_model *m = NULL;
    rs_session *s = NULL;
    rs_tokens toks = {0};
    rs_error err = {0};
    int rc = 1;
    if (cli_load("perplexity", &mo, true, &m, &s)) goto done;
    if (rs_tokenizer_encode(m->tok, text, len, rs_tokenizer_add_bos(m->tok), false, &toks, &err) !=
        RS_OK) {
        fprintf(stderr, "rusty perplexity: %s\n", err.msg);
        goto done;
    }
    if (toks.n < 2 * (size_t)c) {
        fprintf(stderr,
                "rusty perplexity: the text has %zu tokens; at least %d (2 x -c %d) are needed\n",
                toks.n, 2 * c, c);
        goto done;
    }
    rc = run_perplexity(s, m, &toks, c);
done:
    rs_tokens_free(&toks);
    rs_session_free(s);
    rs_model_free(m);
    free(text);
    return rc;
}

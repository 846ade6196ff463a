/* cmd_run.c — `rusty run`: complete a prompt, streaming to stdout.
 *
 * stdout carries exactly the prompt text followed by the generated text (no
 * special-token text, no logs); everything else goes to stderr. Without -m it
 * runs the built-in demo model (random weights). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "commands.h"
#include "common.h"

static const char run_usage[] =
    "usage: rusty run [-m MODEL] [-p PROMPT | -f FILE] [options]\n"
    "\n"
    "Completes the prompt and streams the text to stdout: the prompt itself, then the\n"
    "generated text. Model information and speed go to stderr. Without -m, runs the\n"
    "built-in demo: a tiny Llama with random weights made in memory (its text is random).\n"
    "\n";

static bool print_text(void *user, const char *text, size_t len) {
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return !ferror(stdout);
}

/* Speed, and peak memory next to what it should be: the mapped weights plus the KV cache. */
static void print_speed(const rs_gen_stats *st, const rs_model *m, const rs_session *s) {
    double pp = st->t_prompt_ms > 0 ? st->n_prompt * 1e3 / st->t_prompt_ms : 0;
    double tg = st->t_gen_ms > 0 ? st->n_gen * 1e3 / st->t_gen_ms : 0;
    fprintf(
        stderr,
        "\nrusty: prompt %d tokens, %.1f tok/s | generation %d tokens, %.1f tok/s, %.2f ms/token\n",
        st->n_prompt, pp, st->n_gen, tg, st->n_gen ? st->t_gen_ms / st->n_gen : 0.0);
    struct rusage ru;
    rs_session_info info;
    rs_session_get_info(s, &info);
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        fprintf(stderr, "rusty: peak RSS %.1f MiB (weights %.1f MiB mapped, KV cache %.1f MiB)\n",
                ru.ru_maxrss / 1024.0, (double)m->weight_bytes / (1 << 20),
                (double)info.kv_bytes / (1 << 20));
}

static int parse(int argc, char **argv, cli_model_opts *mo, cli_gen_opts *go) {
    cli_model_opts_init(mo);
    cli_gen_opts_init(go, 128);
    cli_args a = {"run", argc, argv, 1};
    for (; a.i < argc; a.i++) {
        int r = cli_parse_model_opt(&a, mo);
        if (r == 0) r = cli_parse_gen_opt(&a, go);
        if (r < 0) return 1;
        if (r == 0) return cli_usage_error("run", "unknown option '%s'", argv[a.i]);
    }
    return 0;
}

int cmd_run(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("%s%s\n%s", run_usage, cli_model_help, cli_gen_help);
        return 0;
    }
    cli_model_opts mo;
    cli_gen_opts go;
    if (parse(argc, argv, &mo, &go)) return 1;
    rs_error err = {0};
    if (rs_sampler_params_check(&go.sampling, &err) != RS_OK)
        return cli_usage_error("run", "%s", err.msg);
    if (!mo.model)
        fprintf(
            stderr,
            "rusty: no model given (-m): running the built-in demo, a tiny Llama with RANDOM "
            "weights.\nrusty: its text is random words; pass -m MODEL.gguf for a real model.\n");
    size_t len;
    char *prompt = cli_read_prompt("run", &go, mo.model ? "" : "Once upon a time", &len);
    if (!prompt) return 1;
    rs_model *m = NULL;
    rs_session *s = NULL;
    rs_tokens ids = {0};
    rs_sampler sm = {0};
    int rc = 1;
    if (cli_load("run", &mo, true, &m, &s) || cli_tokenize_prompt("run", m->tok, prompt, len, &ids))
        goto done;
    if (rs_sampler_init(&sm, &go.sampling, m->hp.n_vocab, &err) != RS_OK) {
        fprintf(stderr, "rusty run: %s\n", err.msg);
        goto done;
    }
    const int n_ctx = rs_session_n_ctx(s);
    if (ids.n > (size_t)n_ctx) { /* before the prompt is echoed: nothing would follow it */
        fprintf(stderr,
                "rusty run: the prompt is %zu tokens, longer than the context of %d: raise -c "
                "(the model was trained on %d) or shorten the prompt\n",
                ids.n, n_ctx, m->hp.n_ctx_train);
        goto done;
    }
    fprintf(stderr, "rusty: seed %llu, prompt %zu tokens\n", (unsigned long long)sm.seed, ids.n);
    fwrite(prompt, 1, len, stdout);
    fflush(stdout);
    rs_gen_callbacks cb = {print_text, NULL, NULL};
    rs_gen_stats st;
    if (rs_generate(s, m->tok, &sm, ids.ids, (int)ids.n, 0, &go.gen, &cb, &st, &err) != RS_OK) {
        fprintf(stderr, "\nrusty run: %s\n", err.msg);
        goto done;
    }
    print_speed(&st, m, s);
    if (st.stop == RS_GEN_STOP_CONTEXT) /* not asked for: say why the text ends here */
        fprintf(stderr,
                "rusty: generation stopped after %d tokens: the context of %d is full (-c)\n",
                st.n_gen, n_ctx);
    rc = 0;
done:
    rs_sampler_free(&sm);
    rs_tokens_free(&ids);
    rs_session_free(s);
    rs_model_free(m);
    free(prompt);
    return rc;
}

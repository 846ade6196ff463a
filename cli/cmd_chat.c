/* cmd_chat.c — `rusty chat`: interactive multi-turn chat with the model's template.
 *
 * Each turn re-formats the whole conversation with the chat template and
 * tokenizes it; the tokens the KV cache already holds (the common prefix) are
 * not evaluated again, so a turn costs only its new tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "tokenizer/tokenizer.h"

static const char chat_usage[] =
    "usage: rusty chat [-m MODEL] [-sys PROMPT] [options]\n"
    "\n"
    "Interactive chat using the model's chat template (from tokenizer.chat_template).\n"
    "Type a message and press Enter; an empty line or Ctrl-D ends the chat, /reset\n"
    "starts over. Replies stream to stdout; model information goes to stderr.\n"
    "\n"
    "  -sys, --system-prompt TEXT   system message for the conversation\n"
    "\n";

enum { MAX_TURNS = 4096 };

typedef struct chat_state {
    rs_chat_msg msgs[MAX_TURNS];
    char *owned[MAX_TURNS]; /* contents to free */
    size_t n;
    rs_tokens cache; /* tokens the session holds, position by position */
    rs_bytes reply;  /* the assistant's text of the current turn */
} chat_state;

static bool on_text(void *user, const char *text, size_t len) {
    chat_state *c = user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return rs_bytes_append(&c->reply, text, len) == RS_OK;
}

static void on_token(void *user, int32_t id) {
    rs_tokens_push(&((chat_state *)user)->cache, id);
}

static bool add_msg(chat_state *c, const char *role, const char *text, size_t len) {
    if (c->n == MAX_TURNS) return false;
    char *copy = malloc(len + 1);
    if (!copy) return false;
    memcpy(copy, text, len);
    copy[len] = '\0';
    c->owned[c->n] = copy;
    c->msgs[c->n++] = (rs_chat_msg){role, copy};
    /* owned[] keeps copy and reset_chat frees it; the analyzer loses track of a store
     * at a symbolic index once the next one is made. */
    return true; // NOLINT(clang-analyzer-unix.Malloc)
}

static void drop_msgs(chat_state *c, size_t keep) {
    while (c->n > keep) free(c->owned[--c->n]);
}

static void reset_chat(chat_state *c, size_t keep) {
    drop_msgs(c, keep);
    c->cache.n = 0;
}

enum { TURN_OK, TURN_FAILED, TURN_NO_ROOM };

/* Runs one assistant turn for the conversation so far: TURN_NO_ROOM (said on stderr) when
 * the conversation leaves the context no room for a reply. */
static int chat_turn(chat_state *c, rs_session *s, const rs_model *m, rs_sampler *sm,
                     const cli_gen_opts *go) {
    rs_error err = {0};
    rs_bytes text = {0};
    rs_tokens ids = {0};
    int rc = TURN_FAILED;
    if (rs_tokenizer_chat_format(m->tok, c->msgs, c->n, true, &text, NULL, &err) != RS_OK ||
        cli_tokenize_prompt("chat", m->tok, text.data ? text.data : "", text.len, &ids)) {
        if (err.msg[0]) fprintf(stderr, "rusty chat: %s\n", err.msg);
        goto done;
    }
    const int n_ctx = rs_session_n_ctx(s);
    if (ids.n >= (size_t)n_ctx) {
        fprintf(stderr,
                "rusty chat: the conversation would be %zu tokens, the context is %d: /reset "
                "starts over (or run with a larger -c)\n",
                ids.n, n_ctx);
        rc = TURN_NO_ROOM;
        goto done;
    }
    size_t common = 0, held = (size_t)rs_session_n_past(s);
    while (common < held && common < c->cache.n && common + 1 < ids.n &&
           c->cache.ids[common] == ids.ids[common])
        common++;
    c->cache.n = 0;
    for (size_t i = 0; i < ids.n; i++) rs_tokens_push(&c->cache, ids.ids[i]);
    c->reply.len = 0;
    rs_gen_callbacks cb = {on_text, on_token, c};
    rs_gen_stats st;
    if (rs_generate(s, m->tok, sm, ids.ids, (int)ids.n, (int)common, &go->gen, &cb, &st, &err) !=
        RS_OK) {
        fprintf(stderr, "\nrusty chat: %s\n", err.msg);
        goto done;
    }
    c->cache.n = (size_t)rs_session_n_past(s); /* the last sampled token was never evaluated */
    if (!add_msg(c, "assistant", c->reply.data ? c->reply.data : "", c->reply.len)) goto done;
    fprintf(stderr, "\n[%d new prompt tokens, %.1f tok/s generation%s]\n", st.n_prompt,
            st.t_gen_ms > 0 ? st.n_gen * 1e3 / st.t_gen_ms : 0.0,
            st.stop == RS_GEN_STOP_CONTEXT ? "; the context is full: /reset starts over" : "");
    rc = TURN_OK;
done:
    rs_bytes_free(&text);
    rs_tokens_free(&ids);
    return rc;
}

static int chat_loop(rs_session *s, const rs_model *m, rs_sampler *sm, const cli_gen_opts *go,
                     const char *sys) {
    chat_state c;
    memset(&c, 0, sizeof c);
    if (sys) add_msg(&c, "system", sys, strlen(sys));
    size_t base = c.n;
    bool fell_back = false;
    rs_bytes probe = {0};
    rs_tokenizer_chat_format(m->tok, c.msgs, c.n, true, &probe, &fell_back, NULL);
    rs_bytes_free(&probe);
    if (fell_back)
        fprintf(stderr, "rusty chat: warning: no recognised chat template; using a plain format\n");
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    for (;;) {
        fputs("> ", stdout);
        fflush(stdout);
        ssize_t got = getline(&line, &cap, stdin);
        if (got <= 0) break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (got == 0) break;
        if (strcmp(line, "/reset") == 0) {
            reset_chat(&c, base);
            rs_session_truncate(s, 0);
            continue;
        }
        if (!add_msg(&c, "user", line, (size_t)got)) {
            rc = 1;
            break;
        }
        const int turn = chat_turn(&c, s, m, sm, go);
        if (turn == TURN_NO_ROOM) {
            drop_msgs(&c, c.n - 1); /* the message is dropped (the cache is kept); go on */
            continue;
        }
        if (turn != TURN_OK) {
            rc = 1;
            break;
        }
        fputc('\n', stdout);
    }
    free(line);
    reset_chat(&c, 0);
    rs_tokens_free(&c.cache);
    rs_bytes_free(&c.reply);
    return rc;
}

int cmd_chat(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("%s%s\n%s", chat_usage, cli_model_help, cli_gen_help);
        return 0;
    }
    cli_model_opts mo;
    cli_gen_opts go;
    cli_model_opts_init(&mo);
    cli_gen_opts_init(&go, -1);
    const char *sys = NULL;
    cli_args a = {"chat", argc, argv, 1};
    for (; a.i < argc; a.i++) {
        int r = cli_parse_model_opt(&a, &mo);
        if (r == 0) r = cli_parse_gen_opt(&a, &go);
        if (r == 0 && cli_is(argv[a.i], "-sys", "--system-prompt"))
            r = cli_take_str(&a, &sys) ? 1 : -1;
        if (r < 0) return 1;
        if (r == 0) return cli_usage_error("chat", "unknown option '%s'", argv[a.i]);
    }
    rs_error err = {0};
    if (rs_sampler_params_check(&go.sampling, &err) != RS_OK)
        return cli_usage_error("chat", "%s", err.msg);
    rs_model *m = NULL;
    rs_session *s = NULL;
    rs_sampler sm = {0};
    int rc = 1;
    if (cli_load("chat", &mo, true, &m, &s)) goto done;
    if (rs_sampler_init(&sm, &go.sampling, m->hp.n_vocab, &err) != RS_OK) {
        fprintf(stderr, "rusty chat: %s\n", err.msg);
        goto done;
    }
    rc = chat_loop(s, m, &sm, &go, sys);
done:
    rs_sampler_free(&sm);
    rs_session_free(s);
    rs_model_free(m);
    return rc;
}

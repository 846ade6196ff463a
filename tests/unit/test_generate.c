/* test_generate.c — generation chained on the session (rs_session_greedy_* and
 * rs_session_chain_*) against the loop that samples every token on the host: the same
 * tokens, text, stop reason, cache and sampler RNG state, for every way generation can
 * stop, greedy and sampled, with 0, 1 and 2 steps queued ahead (on the CPU a step queued
 * ahead runs at once; the rollback of steps past the stop is the same code a GPU runs).
 * Also the chain's session calls and their misuse. Needs
 * ../shared/models/TinyStories-656K.f16.gguf (greedy text that ends with an EOS). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/generate.h"
#include "model/model.h"
#include "model/session.h"
#include "sampler/sampler.h"
#include "tokenizer/tokenizer.h"

enum { MAX_TOK = 600 };

static rs_model *g_model;

typedef struct outcome {
    int32_t tok[MAX_TOK];
    int n_tok;
    char text[8192];
    size_t text_len;
    int n_text_calls;
    int stop_after; /* the text callback returns false on this call (0: never) */
    rs_gen_stop stop;
    int n_gen;
    int n_past;
    float next_logits[4]; /* a few logits of one more token evaluated after generation */
    uint64_t rng[4];      /* the sampler's RNG state after generation */
} outcome;

static bool on_text(void *user, const char *text, size_t len) {
    outcome *o = user;
    if (o->text_len + len < sizeof o->text) {
        memcpy(o->text + o->text_len, text, len);
        o->text_len += len;
    }
    return ++o->n_text_calls != o->stop_after;
}

static void on_token(void *user, int32_t token) {
    outcome *o = user;
    if (o->n_tok < MAX_TOK) o->tok[o->n_tok++] = token;
}

typedef struct gen_case {
    const char *prompt;
    int n_predict;
    int n_ctx;
    const char *stop;
    int stop_after;
} gen_case;

/* A CPU session of n_ctx positions on the model. */
static rs_session *cpu_session(int n_ctx) {
    rs_session_opts so;
    rs_session_opts_default(&so);
    so.n_ctx = n_ctx;
    so.device = RS_DEVICE_CPU;
    rs_session *s = NULL;
    rs_error err = {0};
    assert_int_equal(rs_session_create(&s, g_model, &so, &err), RS_OK);
    return s;
}

static rs_sampler_params greedy_params(void) {
    rs_sampler_params sp = rs_sampler_params_default();
    sp.temp = 0.0f;
    sp.seed = 1; /* greedy never draws: the RNG must come out as it went in */
    return sp;
}

/* The default chain (temp 0.8, top-k 40, top-p 0.95, min-p 0.05) from a fixed seed. */
static rs_sampler_params sampled_params(void) {
    rs_sampler_params sp = rs_sampler_params_default();
    sp.seed = 1234;
    return sp;
}

static void init_sampler(rs_sampler *sm, const rs_sampler_params *sp) {
    rs_error err = {0};
    assert_int_equal(rs_sampler_init(sm, sp, g_model->hp.n_vocab, &err), RS_OK);
}

/* A sampler with temperature 0 and no penalties: greedy. */
static void greedy_sampler(rs_sampler *sm) {
    const rs_sampler_params sp = greedy_params();
    init_sampler(sm, &sp);
}

/* Generates case c with sampler parameters sp, then evaluates one more token to see the
 * cache it left. */
static void generate(const gen_case *c, const rs_sampler_params *sp, bool host_sampling, int ahead,
                     outcome *o) {
    memset(o, 0, sizeof *o);
    o->stop_after = c->stop_after;
    rs_session *s = cpu_session(c->n_ctx);
    rs_sampler sm;
    init_sampler(&sm, sp);
    rs_error err = {0};
    rs_tokens ids = {0};
    assert_int_equal(
        rs_tokenizer_encode(g_model->tok, c->prompt, strlen(c->prompt), true, false, &ids, &err),
        RS_OK);
    rs_gen_params gp = {
        .n_predict = c->n_predict, .host_sampling = host_sampling, .greedy_ahead = ahead};
    if (c->stop) gp.stop[gp.n_stop++] = c->stop;
    rs_gen_callbacks cb = {on_text, on_token, o};
    rs_gen_stats st;
    assert_int_equal(rs_generate(s, g_model->tok, &sm, ids.ids, (int)ids.n, 0, &gp, &cb, &st, &err),
                     RS_OK);
    rs_tokens_free(&ids);
    o->stop = st.stop;
    o->n_gen = st.n_gen;
    o->n_past = rs_session_n_past(s);
    memcpy(o->rng, sm.rng, sizeof o->rng);
    if (o->n_past < rs_session_n_ctx(s)) {
        const int32_t next = 42;
        assert_int_equal(rs_session_eval(s, &next, 1, RS_LOGITS_LAST, &err), RS_OK);
        memcpy(o->next_logits, rs_session_logits(s, 0), sizeof o->next_logits);
    }
    rs_sampler_free(&sm);
    rs_session_free(s);
}

/* Case c chained with every number of steps ahead against the host loop; want is the
 * host loop's stop reason (RS_GEN_STOP_NONE: not checked). */
static void check_case_with(const gen_case *c, const rs_sampler_params *sp, rs_gen_stop want) {
    outcome *ref = calloc(1, sizeof *ref), *got = calloc(1, sizeof *got);
    assert_non_null(ref);
    assert_non_null(got);
    generate(c, sp, true, 0, ref);
    if (want != RS_GEN_STOP_NONE) assert_int_equal(ref->stop, want);
    for (int ahead = -1; ahead <= 2; ahead++) {
        generate(c, sp, false, ahead, got);
        assert_int_equal(got->stop, ref->stop);
        assert_int_equal(got->n_gen, ref->n_gen);
        assert_int_equal(got->n_tok, ref->n_tok);
        assert_memory_equal(got->tok, ref->tok, sizeof(int32_t) * (size_t)ref->n_tok);
        assert_int_equal(got->text_len, ref->text_len);
        assert_memory_equal(got->text, ref->text, ref->text_len);
        assert_int_equal(got->n_past, ref->n_past); /* steps past the stop rolled back */
        assert_memory_equal(got->next_logits, ref->next_logits, sizeof ref->next_logits);
        assert_memory_equal(got->rng, ref->rng, sizeof ref->rng); /* no rolled-back draw */
    }
    free(ref);
    free(got);
}

static void check_case(const gen_case *c, rs_gen_stop want) {
    const rs_sampler_params sp = greedy_params();
    check_case_with(c, &sp, want);
}

static void test_stops(void **state) {
    (void)state;
    const gen_case length = {"Once upon a time", 40, 256, NULL, 0};
    check_case(&length, RS_GEN_STOP_LENGTH);
    const gen_case eog = {"Once upon a time", -1, 512, NULL, 0};
    check_case(&eog, RS_GEN_STOP_EOG);
    const gen_case string = {"Once upon a time", 100, 256, "girl", 0};
    check_case(&string, RS_GEN_STOP_STRING);
    const gen_case context = {"Once upon a time", 100, 24, NULL, 0};
    check_case(&context, RS_GEN_STOP_CONTEXT);
    const gen_case caller = {"Once upon a time", 100, 256, NULL, 7};
    check_case(&caller, RS_GEN_STOP_CALLER);
    const gen_case one = {"Once upon a time", 1, 256, NULL, 0};
    check_case(&one, RS_GEN_STOP_LENGTH);
}

/* Sampled chains: the default chain, one with many candidates and a high temperature
 * (a draw every step), top-k 1 (never a draw), and the whole vocabulary (top-k off), with
 * top-p off and on; stopped by length, context, a stop string and the caller, so steps past
 * the stop are rolled back with their draws. */
static void test_sampled_stops(void **state) {
    (void)state;
    rs_sampler_params def = sampled_params(), hot = sampled_params(), one = sampled_params(),
                      all = sampled_params(), nucleus = sampled_params();
    hot.temp = 1.7f, hot.top_k = 200, hot.top_p = 1.0f, hot.min_p = 0.0f, hot.seed = 99;
    one.top_k = 1;
    all.top_k = 0, all.top_p = 1.0f, all.seed = 5;
    nucleus.top_k = 0, nucleus.top_p = 0.8f, nucleus.temp = 1.2f, nucleus.seed = 6;
    const rs_sampler_params *params[5] = {&def, &hot, &one, &all, &nucleus};
    const gen_case length = {"Once upon a time", 40, 256, NULL, 0};
    const gen_case context = {"Once upon a time", 100, 24, NULL, 0};
    const gen_case string = {"Once upon a time", 100, 256, " the", 0};
    const gen_case caller = {"Once upon a time", 100, 256, NULL, 5};
    for (int i = 0; i < 5; i++) {
        check_case_with(&length, params[i], RS_GEN_STOP_LENGTH);
        check_case_with(&context, params[i], RS_GEN_STOP_CONTEXT);
        check_case_with(&string, params[i], RS_GEN_STOP_NONE);
        check_case_with(&caller, params[i], RS_GEN_STOP_CALLER);
    }
}

/* Sampled steps through the session calls: each pick is the host sampler's draw from the
 * same step's logits, its RNG state is the sampler's after that draw, and the sampler
 * handed to the chain is left alone. Rules the chain cannot follow are refused. */
static void test_session_sampled(void **state) {
    (void)state;
    rs_session *s = cpu_session(16), *ref = cpu_session(16);
    rs_error err = {0};
    rs_sampler_params sp = sampled_params();
    sp.temp = 1.5f, sp.top_k = 100, sp.top_p = 0.99f;
    rs_sampler sm, host;
    init_sampler(&sm, &sp);
    init_sampler(&host, &sp);
    const uint64_t before = sm.rng[0];

    assert_int_equal(rs_session_chain_sampler(s, &sm, &err), RS_OK);
    int32_t tok = 1, id = -1;
    uint64_t rng[4];
    assert_int_equal(rs_session_greedy_step(s, tok, &err), RS_OK);
    assert_int_equal(rs_session_chain_sampler(s, NULL, &err), RS_ERR_ARG); /* chain running */
    for (int i = 0; i < RS_GREEDY_MAX_QUEUED - 1; i++)
        assert_int_equal(rs_session_greedy_step(s, RS_GREEDY_PREV, &err), RS_OK);
    for (int i = 0; i < RS_GREEDY_MAX_QUEUED; i++) {
        assert_int_equal(rs_session_eval(ref, &tok, 1, RS_LOGITS_LAST, &err), RS_OK);
        const int32_t want = rs_sampler_sample(&host, rs_session_logits(ref, 0));
        assert_int_equal(rs_session_chain_pick(s, &id, rng, &err), RS_OK);
        assert_int_equal(id, want);
        assert_memory_equal(rng, host.rng, sizeof rng);
        tok = id;
    }
    assert_true(sm.rng[0] == before); /* the chain drew from its own copy */
    assert_int_equal(rs_session_greedy_end(s, &err), RS_OK);

    /* the rule ended with the chain: the next chain is greedy */
    assert_int_equal(rs_session_greedy_step(s, tok, &err), RS_OK);
    assert_int_equal(rs_session_eval(ref, &tok, 1, RS_LOGITS_LAST, &err), RS_OK);
    assert_int_equal(rs_session_greedy_pick(s, &id, &err), RS_OK);
    assert_int_equal(id, rs_logits_argmax(rs_session_logits(ref, 0), g_model->hp.n_vocab));
    assert_int_equal(rs_session_greedy_end(s, &err), RS_OK);

    /* rules the chain cannot follow: penalties off a GPU, top-k above what the device
     * selects */
    rs_sampler_params bad[2] = {sp, sp};
    bad[0].repeat_penalty = 1.1f;
    bad[1].top_k = RS_SAMPLE_TOP_K_MAX + 1;
    for (int i = 0; i < 2; i++) {
        assert_false(rs_session_chain_supports(s, &bad[i]));
        rs_sampler b;
        init_sampler(&b, &bad[i]);
        assert_int_equal(rs_session_chain_sampler(s, &b, &err), RS_ERR_ARG);
        rs_sampler_free(&b);
    }
    assert_true(rs_session_chain_supports(s, &sp));
    rs_sampler_params all = sp; /* the whole vocabulary: top-k and top-p off */
    all.top_k = 0, all.top_p = 1.0f;
    assert_true(rs_session_chain_supports(s, &all));
    all.top_k = g_model->hp.n_vocab;
    assert_true(rs_session_chain_supports(s, &all));
    all.top_p = 0.9f; /* top-p over the whole vocabulary (nucleus.h) */
    assert_true(rs_session_chain_supports(s, &all));
    all.top_k = 0;
    assert_true(rs_session_chain_supports(s, &all));
    const rs_sampler_params greedy = greedy_params();
    assert_true(rs_session_chain_supports(s, &greedy));
    rs_sampler_free(&sm);
    rs_sampler_free(&host);
    rs_session_free(s);
    rs_session_free(ref);
}

/* The session calls: picks equal the argmax of the same step's logits, and misuse is an
 * error, never a crash. */
static void test_session_chain(void **state) {
    (void)state;
    rs_session *s = cpu_session(16), *ref = cpu_session(16);
    rs_error err = {0};
    assert_int_equal(rs_session_greedy_ahead(s), 0); /* the CPU completes each step */

    int32_t id = 0;
    assert_int_equal(rs_session_greedy_pick(s, &id, &err), RS_ERR_ARG);
    assert_int_equal(rs_session_greedy_step(s, RS_GREEDY_PREV, &err), RS_ERR_ARG);
    assert_int_equal(rs_session_greedy_step(s, g_model->hp.n_vocab, &err), RS_ERR_RANGE);
    assert_int_equal(rs_session_greedy_step(s, -7, &err), RS_ERR_RANGE);
    assert_int_equal(rs_session_n_past(s), 0);

    /* three queued, the fourth refused; the picks follow the reference's argmax */
    int32_t tok = 1;
    assert_int_equal(rs_session_greedy_step(s, tok, &err), RS_OK);
    for (int i = 0; i < RS_GREEDY_MAX_QUEUED - 1; i++)
        assert_int_equal(rs_session_greedy_step(s, RS_GREEDY_PREV, &err), RS_OK);
    assert_int_equal(rs_session_greedy_step(s, RS_GREEDY_PREV, &err), RS_ERR_ARG);
    assert_null(rs_session_logits(s, 0)); /* a chain step leaves no logits */
    for (int i = 0; i < RS_GREEDY_MAX_QUEUED; i++) {
        assert_int_equal(rs_session_eval(ref, &tok, 1, RS_LOGITS_LAST, &err), RS_OK);
        const int32_t want = rs_logits_argmax(rs_session_logits(ref, 0), g_model->hp.n_vocab);
        assert_int_equal(rs_session_greedy_pick(s, &id, &err), RS_OK);
        assert_int_equal(id, want);
        tok = id;
    }
    assert_int_equal(rs_session_greedy_pick(s, &id, &err), RS_ERR_ARG);

    /* truncate ends the chain: a picked token now has no step to come from */
    rs_session_truncate(s, 2);
    assert_int_equal(rs_session_greedy_step(s, RS_GREEDY_PREV, &err), RS_ERR_ARG);
    /* eval continues from there as if the chain had been evaluated token by token */
    rs_session_truncate(ref, 2);
    const int32_t next = 5;
    assert_int_equal(rs_session_eval(s, &next, 1, RS_LOGITS_LAST, &err), RS_OK);
    assert_int_equal(rs_session_eval(ref, &next, 1, RS_LOGITS_LAST, &err), RS_OK);
    assert_memory_equal(rs_session_logits(s, 0), rs_session_logits(ref, 0),
                        sizeof(float) * (size_t)g_model->hp.n_vocab);

    /* the context's end is an error, not a write past the cache */
    while (rs_session_n_past(s) < rs_session_n_ctx(s)) {
        assert_int_equal(rs_session_greedy_step(s, 3, &err), RS_OK);
        assert_int_equal(rs_session_greedy_pick(s, &id, &err), RS_OK);
    }
    assert_int_equal(rs_session_greedy_step(s, 3, &err), RS_ERR_RANGE);
    assert_int_equal(rs_session_greedy_end(s, &err), RS_OK);
    rs_session_free(s);
    rs_session_free(ref);
}

static void test_bad_ahead(void **state) {
    (void)state;
    rs_session *s = cpu_session(32);
    rs_sampler sm;
    greedy_sampler(&sm);
    rs_error err = {0};
    const int32_t prompt[2] = {1, 2};
    rs_gen_params gp = {.n_predict = 4, .greedy_ahead = RS_GREEDY_MAX_QUEUED};
    rs_gen_callbacks cb = {0};
    assert_int_equal(rs_generate(s, g_model->tok, &sm, prompt, 2, 0, &gp, &cb, NULL, &err),
                     RS_ERR_ARG);
    rs_sampler_free(&sm);
    rs_session_free(s);
}

int main(void) {
    const char *path = tu_shared_or_skip("models/TinyStories-656K.f16.gguf");
    rs_error err = {0};
    if (rs_model_load(&g_model, path, &err)) {
        fprintf(stderr, "cannot load %s: %s\n", path, err.msg);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stops),         cmocka_unit_test(test_sampled_stops),
        cmocka_unit_test(test_session_chain), cmocka_unit_test(test_session_sampled),
        cmocka_unit_test(test_bad_ahead),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rs_model_free(g_model);
    return rc;
}

/* test_tokenizer_load.c — one vocabulary, several sources:
 *  - Llama 2's SentencePiece tokenizer.model tokenizes exactly like
 *    ggml-vocab-llama-spm.gguf (same pieces and scores, llama.cpp vectors);
 *  - a Hugging Face folder loads the same through rs_tokenizer_load_hf and
 *    through rs_tokenizer_hf_to_meta + rs_tokenizer_load_meta;
 *  - ids equal the reference libraries' (Hugging Face tokenizers and
 *    sentencepiece), read from the .ids files in tests/data/tokenizer written by
 *    tests/ref/make_tokenizer_ref.py; those tests skip, visibly, while the
 *    files are absent. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

#define SEP "\n__ggml_vocab_test__\n"
enum { MAX_CASES = 512 };

typedef struct cases {
    char *buf; /* owns the texts */
    const char *ptr[MAX_CASES];
    size_t len[MAX_CASES];
    size_t n;
} cases;

static void split_sep(cases *c, size_t n) {
    size_t pos = 0, sl = strlen(SEP);
    while (pos < n && c->n < MAX_CASES) {
        const char *nx = memmem(c->buf + pos, n - pos, SEP, sl);
        size_t l = nx ? (size_t)(nx - c->buf) - pos : n - pos;
        c->ptr[c->n] = c->buf + pos;
        c->len[c->n++] = l;
        if (!nx) break;
        pos += l + sl;
    }
}

/* The input sets of make_tokenizer_ref.py. */
static void load_set(cases *c, const char *set) {
    size_t n;
    memset(c, 0, sizeof *c);
    if (!strcmp(set, "shakespeare")) {
        c->buf = tu_read_file(tu_shared_or_skip("data/tinyshakespeare.txt"), &n);
        assert_non_null(c->buf);
        size_t line = 0;
        for (char *p = c->buf, *e; (e = memchr(p, '\n', n - (size_t)(p - c->buf)));
             p = e + 1, line++) {
            if (line >= 1000 && line < 1300) {
                c->ptr[c->n] = p;
                c->len[c->n++] = (size_t)(e - p);
            }
        }
        assert_int_equal(c->n, 300);
        return;
    }
    const char *path = !strcmp(set, "multilingual")
                           ? tu_tests("data/tokenizer/multilingual.txt")
                           : tu_shared_or_skip("tokenizer-tests/ggml-vocab-llama-spm.gguf.inp");
    c->buf = tu_read_file(path, &n);
    assert_non_null(c->buf);
    split_sep(c, n);
}

static rs_tokenizer *load_gguf(const char *rel) {
    rs_gguf g;
    rs_error err = {0};
    rs_tokenizer *t;
    assert_int_equal(rs_gguf_open(&g, tu_shared_or_skip(rel), &err), RS_OK);
    if (rs_tokenizer_load_meta(&t, &g.meta, &err)) fail_msg("%s", err.msg);
    rs_gguf_close(&g);
    return t;
}

static rs_tokenizer *load_spm_model(void) {
    rs_meta m;
    rs_error err = {0};
    rs_tokenizer *t;
    rs_meta_init(&m);
    if (rs_tokenizer_spm_model_to_meta(tu_shared_or_skip("models/vocab/llama2-tokenizer.model"), &m,
                                       &err))
        fail_msg("%s", err.msg);
    if (rs_tokenizer_load_meta(&t, &m, &err)) fail_msg("%s", err.msg);
    rs_meta_free(&m);
    return t;
}

static void assert_same_ids(const rs_tokenizer *a, const rs_tokenizer *b, const char *s, size_t n,
                            bool add_special) {
    rs_tokens x = {0}, y = {0};
    rs_error err = {0};
    assert_int_equal(rs_tokenizer_encode(a, s, n, add_special, false, &x, &err), RS_OK);
    assert_int_equal(rs_tokenizer_encode(b, s, n, add_special, false, &y, &err), RS_OK);
    if (x.n != y.n || (x.n && memcmp(x.ids, y.ids, x.n * sizeof *x.ids) != 0))
        fail_msg("ids differ for '%.*s'", (int)(n > 60 ? 60 : n), s);
    rs_tokens_free(&x);
    rs_tokens_free(&y);
}

static void test_spm_model_equals_gguf(void **s) {
    (void)s;
    rs_tokenizer *g = load_gguf("tokenizer-tests/ggml-vocab-llama-spm.gguf");
    rs_tokenizer *m = load_spm_model();
    assert_int_equal(rs_tokenizer_n_vocab(g), 32000);
    assert_int_equal(rs_tokenizer_n_vocab(m), 32000);
    for (int32_t id = 0; id < 32000; id++) {
        size_t la, lb;
        const char *ta = rs_tokenizer_token_text(g, id, &la),
                   *tb = rs_tokenizer_token_text(m, id, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(ta, tb, la);
        assert_true(rs_tokenizer_token_score(g, id) == rs_tokenizer_token_score(m, id));
        assert_int_equal(rs_tokenizer_token_attr(g, id), rs_tokenizer_token_attr(m, id));
    }
    assert_int_equal(rs_tokenizer_bos(m), 1);
    assert_int_equal(rs_tokenizer_eos(m), 2);
    assert_int_equal(rs_tokenizer_unk(m), 0);
    const char *sets[] = {"inp", "multilingual", "shakespeare"};
    for (int k = 0; k < 3; k++) {
        cases c;
        load_set(&c, sets[k]);
        for (size_t i = 0; i < c.n; i++) assert_same_ids(g, m, c.ptr[i], c.len[i], true);
        free(c.buf);
    }
    size_t n;
    char *all = tu_read_file(tu_shared_or_skip("data/tinyshakespeare.txt"), &n);
    assert_same_ids(g, m, all, n, true);
    free(all);
    rs_tokenizer_free(g);
    rs_tokenizer_free(m);
}

static void test_hf_two_ways(void **s) {
    (void)s;
    const char *dir = tu_shared_or_skip("models/TinyStories-656K-hf");
    rs_error err = {0};
    rs_tokenizer *a, *b;
    if (rs_tokenizer_load_hf(&a, dir, &err)) fail_msg("%s", err.msg);
    rs_meta m;
    rs_meta_init(&m);
    assert_int_equal(rs_tokenizer_hf_to_meta(dir, &m, &err), RS_OK);
    /* what a GGUF conversion carries */
    rs_str model;
    assert_int_equal(rs_meta_get_str(&m, "tokenizer.ggml.model", &model, &err), RS_OK);
    assert_int_equal(model.len, 5);
    assert_memory_equal(model.ptr, "llama", 5);
    rs_array arr;
    assert_int_equal(rs_meta_get_arr(&m, "tokenizer.ggml.tokens", &arr, &err), RS_OK);
    assert_int_equal(arr.n, 2048);
    assert_int_equal(rs_meta_get_arr(&m, "tokenizer.ggml.merges", &arr, &err), RS_OK);
    assert_int_equal(arr.n, 1967);
    uint32_t id;
    assert_int_equal(rs_meta_get_u32(&m, "tokenizer.ggml.bos_token_id", &id, &err), RS_OK);
    assert_int_equal(id, 1); /* <|start_story|> */
    assert_int_equal(rs_meta_get_u32(&m, "tokenizer.ggml.eos_token_id", &id, &err), RS_OK);
    assert_int_equal(id, 2);
    bool add_bos;
    assert_int_equal(rs_meta_get_bool(&m, "tokenizer.ggml.add_bos_token", &add_bos, &err), RS_OK);
    assert_true(add_bos);
    if (rs_tokenizer_load_meta(&b, &m, &err)) fail_msg("%s", err.msg);
    rs_meta_free(&m);
    const char *sets[] = {"inp", "multilingual", "shakespeare"};
    for (int k = 0; k < 3; k++) {
        cases c;
        load_set(&c, sets[k]);
        for (size_t i = 0; i < c.n; i++) assert_same_ids(a, b, c.ptr[i], c.len[i], true);
        free(c.buf);
    }
    /* BOS from the post-processor template; special text parsed on request */
    rs_tokens t = {0};
    assert_int_equal(rs_tokenizer_encode(a, "<|end_story|>", 13, true, true, &t, &err), RS_OK);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.ids[0], 1);
    assert_int_equal(t.ids[1], 2);
    rs_tokens_free(&t);
    rs_tokenizer_free(a);
    rs_tokenizer_free(b);
}

/* Compares against a reference file; returns false (skip) when it is absent. */
static bool check_reference(const rs_tokenizer *t, const char *file, const char *set) {
    char rel[256];
    snprintf(rel, sizeof rel, "data/tokenizer/%s.%s.ids", file, set);
    size_t n;
    char *ref = tu_read_file(tu_tests(rel), &n);
    if (!ref) {
        printf("SKIP: tests/%s absent (run tests/ref/make_tokenizer_ref.py)\n", rel);
        return false;
    }
    cases c;
    load_set(&c, set);
    const char *line = ref;
    size_t bad = 0;
    for (size_t i = 0; i < c.n; i++) {
        assert_non_null(line);
        rs_tokens got = {0};
        rs_error err = {0};
        assert_int_equal(rs_tokenizer_encode(t, c.ptr[i], c.len[i], false, false, &got, &err),
                         RS_OK);
        size_t k = 0;
        bool same = true;
        char *end;
        for (const char *p = line; *p && *p != '\n';) {
            if (*p == ' ') {
                p++;
                continue;
            }
            long v = strtol(p, &end, 10);
            same &= k < got.n && got.ids[k] == v;
            k++;
            p = end;
        }
        if (!same || k != got.n) {
            bad++;
            printf("%s/%s case %zu differs: '%.*s'\n", file, set, i,
                   (int)(c.len[i] > 60 ? 60 : c.len[i]), c.ptr[i]);
        }
        rs_tokens_free(&got);
        line = strchr(line, '\n');
        if (line) line++;
    }
    printf("%s.%s: %zu/%zu cases equal the reference\n", file, set, c.n - bad, c.n);
    assert_int_equal(bad, 0);
    free(c.buf);
    free(ref);
    return true;
}

static void test_reference_ids(void **s) {
    (void)s;
    rs_error err = {0};
    rs_tokenizer *hf, *spm = load_spm_model();
    if (rs_tokenizer_load_hf(&hf, tu_shared_or_skip("models/TinyStories-656K-hf"), &err))
        fail_msg("%s", err.msg);
    const char *sets[] = {"inp", "multilingual", "shakespeare"};
    int done = 0;
    for (int k = 0; k < 3; k++) {
        done += check_reference(hf, "tinystories_hf", sets[k]);
        done += check_reference(spm, "llama2_spm", sets[k]);
    }
    rs_tokenizer_free(hf);
    rs_tokenizer_free(spm);
    if (!done) skip();
}

int main(void) {
    tu_shared_or_skip("models/vocab/llama2-tokenizer.model");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spm_model_equals_gguf),
        cmocka_unit_test(test_hf_two_ways),
        cmocka_unit_test(test_reference_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

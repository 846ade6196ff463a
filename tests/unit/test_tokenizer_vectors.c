/* test_tokenizer_vectors.c — llama.cpp's tokenizer test vectors
 * (../shared/tokenizer-tests/ggml-vocab-*.gguf with .inp/.out, ids produced
 * by the reference tokenizers), plus round trips and the stream decoder on
 * tinyshakespeare and the multilingual sample, and concurrent encoding. */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

#define SEP "\n__ggml_vocab_test__\n"

typedef struct loaded {
    rs_gguf g;
    rs_tokenizer *t;
} loaded;

static void load_vocab(loaded *l, const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer-tests/ggml-vocab-%s.gguf", name);
    const char *path = tu_shared_or_skip(rel);
    rs_error err = {0};
    assert_int_equal(rs_gguf_open(&l->g, path, &err), RS_OK);
    if (rs_tokenizer_load_meta(&l->t, &l->g.meta, &err)) fail_msg("%s: %s", name, err.msg);
    rs_gguf_close(&l->g); /* the tokenizer keeps its own copies */
}

/* Splits like test-tokenizer-0.cpp: on SEP; a trailing SEP ends the list. */
static size_t split_cases(const char *raw, size_t n, const char **ptr, size_t *len, size_t max) {
    size_t k = 0, pos = 0, sl = strlen(SEP);
    while (pos < n && k < max) {
        const char *nx = memmem(raw + pos, n - pos, SEP, sl);
        size_t l = nx ? (size_t)(nx - raw) - pos : n - pos;
        ptr[k] = raw + pos;
        len[k++] = l;
        if (!nx) break;
        pos += l + sl;
    }
    return k;
}

/* Parses one line of ids; returns the count. */
static size_t parse_ids(const char *line, int32_t *ids, size_t max) {
    size_t n = 0;
    char *end;
    for (const char *s = line; *s && *s != '\n' && n < max;) {
        if (*s == ' ') {
            s++;
            continue;
        }
        ids[n++] = (int32_t)strtol(s, &end, 10);
        s = end;
    }
    return n;
}

static void run_vectors(const char *name) {
    loaded l;
    load_vocab(&l, name);
    char rel[256];
    size_t ni, no;
    snprintf(rel, sizeof rel, "tokenizer-tests/ggml-vocab-%s.gguf.inp", name);
    char *inp = tu_read_file(tu_shared_or_skip(rel), &ni);
    snprintf(rel, sizeof rel, "tokenizer-tests/ggml-vocab-%s.gguf.out", name);
    char *out = tu_read_file(tu_shared_or_skip(rel), &no);
    assert_non_null(inp);
    assert_non_null(out);
    const char *cp[128];
    size_t cl[128];
    size_t nc = split_cases(inp, ni, cp, cl, 128);
    assert_int_equal(nc, 46);
    const char *line = out;
    int32_t want[1024];
    size_t failed = 0;
    for (size_t c = 0; c < nc; c++) {
        size_t nw = parse_ids(line, want, 1024);
        rs_tokens got = {0};
        rs_error err = {0};
        assert_int_equal(rs_tokenizer_encode(l.t, cp[c], cl[c], false, false, &got, &err), RS_OK);
        if (got.n != nw || (nw && memcmp(got.ids, want, nw * sizeof *want) != 0)) {
            printf("%s case %zu '%.*s': got %zu ids, want %zu\n", name, c, (int)cl[c], cp[c], got.n,
                   nw);
            failed++;
        }
        rs_tokens_free(&got);
        line = strchr(line, '\n');
        assert_non_null(line);
        line++;
    }
    printf("%s: %zu/%zu cases exact\n", name, nc - failed, nc);
    assert_int_equal(failed, 0);
    free(inp);
    free(out);
    rs_tokenizer_free(l.t);
}

static void test_llama_spm(void **s) {
    (void)s, run_vectors("llama-spm");
}
static void test_gpt2(void **s) {
    (void)s, run_vectors("gpt-2");
}
static void test_deepseek_llm(void **s) {
    (void)s, run_vectors("deepseek-llm");
}
static void test_bert_bge(void **s) {
    (void)s, run_vectors("bert-bge");
}

/* decode(encode(x)) == x, and the stream decoder emits the same bytes, each
 * chunk valid UTF-8 (x is valid UTF-8). */
static bool valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t l = c < 0x80                 ? 1
                   : c >= 0xC2 && c <= 0xDF ? 2
                   : c >= 0xE0 && c <= 0xEF ? 3
                   : c >= 0xF0 && c <= 0xF4 ? 4
                                            : 0;
        if (!l || i + l > n) return false;
        for (size_t k = 1; k < l; k++)
            if (((unsigned char)s[i + k] & 0xC0) != 0x80) return false;
        i += l;
    }
    return true;
}

static void roundtrip(const rs_tokenizer *t, const char *text, size_t n, const char *what) {
    unsigned flags = rs_tokenizer_adds_space_prefix(t) ? RS_DECODE_STRIP_SPACE : 0;
    rs_tokens ids = {0};
    rs_error err = {0};
    assert_int_equal(rs_tokenizer_encode(t, text, n, false, false, &ids, &err), RS_OK);
    rs_bytes whole = {0}, streamed = {0};
    assert_int_equal(rs_tokenizer_decode(t, ids.ids, ids.n, flags, &whole, &err), RS_OK);
    if (whole.len != n || memcmp(whole.data, text, n) != 0)
        fail_msg("%s: decode(encode(x)) != x (%zu vs %zu bytes)", what, whole.len, n);
    rs_stream_decoder d;
    rs_stream_decoder_init(&d, t, flags);
    for (size_t i = 0; i < ids.n; i++) {
        size_t before = streamed.len;
        assert_int_equal(rs_stream_decoder_push(&d, ids.ids[i], &streamed, &err), RS_OK);
        if (!valid_utf8(streamed.data + before, streamed.len - before))
            fail_msg("%s: stream chunk %zu is not valid UTF-8", what, i);
    }
    assert_int_equal(rs_stream_decoder_flush(&d, &streamed, &err), RS_OK);
    assert_int_equal(streamed.len, whole.len);
    assert_memory_equal(streamed.data, whole.data, whole.len);
    rs_bytes_free(&whole);
    rs_bytes_free(&streamed);
    rs_tokens_free(&ids);
}

static void roundtrip_vocab(const char *name) {
    loaded l;
    load_vocab(&l, name);
    size_t n;
    char *shakespeare = tu_read_file(tu_shared_or_skip("data/tinyshakespeare.txt"), &n);
    assert_non_null(shakespeare);
    roundtrip(l.t, shakespeare, n, "tinyshakespeare");
    free(shakespeare);
    char *ml = tu_read_file(tu_tests("data/tokenizer/multilingual.txt"), &n);
    assert_non_null(ml);
    const char *cp[64];
    size_t cl[64];
    size_t nc = split_cases(ml, n, cp, cl, 64);
    assert_true(nc >= 30);
    for (size_t c = 0; c < nc; c++) roundtrip(l.t, cp[c], cl[c], "multilingual case");
    roundtrip(l.t, ml, n, "multilingual file");
    free(ml);
    rs_tokenizer_free(l.t);
}

static void test_roundtrip_spm(void **s) {
    (void)s, roundtrip_vocab("llama-spm");
}
static void test_roundtrip_bpe(void **s) {
    (void)s, roundtrip_vocab("gpt-2");
}
static void test_roundtrip_deepseek(void **s) {
    (void)s, roundtrip_vocab("deepseek-llm");
}

/* Several threads share one tokenizer: each must get the single-thread ids. */
typedef struct job {
    const rs_tokenizer *t;
    const char *text;
    size_t n;
    rs_tokens ids;
    rs_status st;
} job;

static void *encode_job(void *p) {
    job *j = p;
    rs_error err = {0};
    for (int r = 0; r < 3 && !j->st; r++) {
        j->ids.n = 0;
        j->st = rs_tokenizer_encode(j->t, j->text, j->n, true, true, &j->ids, &err);
    }
    return NULL;
}

static void test_threads(void **s) {
    (void)s;
    loaded l;
    load_vocab(&l, "gpt-2");
    size_t n;
    char *text = tu_read_file(tu_shared_or_skip("data/tinyshakespeare.txt"), &n);
    n = n > 200000 ? 200000 : n;
    rs_tokens ref = {0};
    rs_error err = {0};
    assert_int_equal(rs_tokenizer_encode(l.t, text, n, true, true, &ref, &err), RS_OK);
    job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (job){l.t, text, n, {0}, RS_OK};
        assert_int_equal(pthread_create(&th[i], NULL, encode_job, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].st, RS_OK);
        assert_int_equal(jobs[i].ids.n, ref.n);
        assert_memory_equal(jobs[i].ids.ids, ref.ids, ref.n * sizeof *ref.ids);
        rs_tokens_free(&jobs[i].ids);
    }
    rs_tokens_free(&ref);
    free(text);
    rs_tokenizer_free(l.t);
}

int main(void) {
    tu_shared_or_skip("tokenizer-tests/ggml-vocab-llama-spm.gguf");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_spm),          cmocka_unit_test(test_gpt2),
        cmocka_unit_test(test_deepseek_llm),       cmocka_unit_test(test_bert_bge),
        cmocka_unit_test(test_roundtrip_spm),      cmocka_unit_test(test_roundtrip_bpe),
        cmocka_unit_test(test_roundtrip_deepseek), cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_gguf_read.c — the GGUF reader on every shared real file.
 *
 * Expected facts come from ../shared/models/README.md (written from an
 * independent parser and the models' published configs), not from this reader:
 * versions, KV and tensor counts, tensor types, parameter counts (recomputed
 * from the architecture by hand in the comments), and that the v1 and v3
 * stories260K files hold byte-identical tensors. */
#include "testutil.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include "gguf_testlib.h"
#include "io/gguf.h"

/* Shared files are optional: a test needing an absent one is skipped, the
 * others still run, and the program exits 77 (ctest "skipped") at the end. */
static int shared_missing;
static const char *shared_or_skip(const char *rel) {
    const char *p = tu_shared(rel);
    if (!p) {
        printf("SKIP: %s not found (shared models absent)\n", rel);
        shared_missing = 1;
        skip();
    }
    return p;
}

static void open_shared(rs_gguf *g, const char *rel) {
    rs_error err = {0};
    const char *path = shared_or_skip(rel);
    rs_status st = rs_gguf_open(g, path, &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, RS_OK);
}

static uint64_t get_u64(const rs_gguf *g, const char *key) {
    uint64_t v = 0;
    rs_error err = {0};
    assert_int_equal(rs_meta_get_u64(&g->meta, key, &v, &err), RS_OK);
    return v;
}

static void assert_str(const rs_gguf *g, const char *key, const char *want) {
    rs_str s;
    rs_error err = {0};
    assert_int_equal(rs_meta_get_str(&g->meta, key, &s, &err), RS_OK);
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.ptr, want, s.len);
}

static uint64_t count_type(const rs_gguf *g, rs_dtype t) {
    uint64_t n = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) n += g->tensors[i].type == t;
    return n;
}

/* Invariants every valid file must satisfy, with sizes recomputed from the
 * block geometry table in the brief (not from the library's traits). */
static int64_t check_layout(const rs_gguf *g) {
    int64_t params = 0;
    uint64_t expect_off = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const rs_tensor_info *t = &g->tensors[i];
        int64_t n = rs_tensor_nelements(t);
        uint64_t want = 0;
        switch (t->type) {
        case RS_DTYPE_F32:
            want = (uint64_t)n * 4;
            break;
        case RS_DTYPE_F16:
            want = (uint64_t)n * 2;
            break;
        case RS_DTYPE_Q8_0:
            want = (uint64_t)n / 32 * 34;
            break;
        case RS_DTYPE_IQ4_NL:
            want = (uint64_t)n / 32 * 18;
            break;
        default:
            fail_msg("unexpected type %d in %s", (int)t->type, t->name);
        }
        assert_int_equal(t->nbytes, want);
        assert_int_equal(t->offset, expect_off); /* packed in file order */
        expect_off += (want + g->alignment - 1) / g->alignment * g->alignment;
        assert_ptr_equal(t->data, g->map.data + g->data_offset + t->offset);
        assert_true(g->data_offset + t->offset + t->nbytes <= g->map.size);
        assert_ptr_equal(rs_gguf_find_tensor(g, t->name), t);
        params += n;
    }
    assert_int_equal(g->data_offset % g->alignment, 0);
    assert_null(rs_gguf_find_tensor(g, "no.such.tensor"));
    gguf_walk(g);
    return params;
}

static void test_stories260k_v3(void **state) {
    (void)state;
    rs_gguf g;
    open_shared(&g, "models/stories260K.gguf");
    assert_int_equal(g.version, 3);
    assert_int_equal(g.meta.n, 19);
    assert_int_equal(g.n_tensors, 48);
    assert_int_equal(count_type(&g, RS_DTYPE_F32), 48);
    assert_int_equal(g.alignment, 32);
    /* 292,800 = 2 * 512*64 (embd, output) + 5 * (64*64*2 + 64*32*2 + 3*64*172 + 2*64) + 64 */
    assert_int_equal(check_layout(&g), 292800);
    assert_str(&g, "general.architecture", "llama");
    assert_int_equal(get_u64(&g, "llama.embedding_length"), 64);
    assert_int_equal(get_u64(&g, "llama.feed_forward_length"), 172);
    assert_int_equal(get_u64(&g, "llama.block_count"), 5);
    assert_int_equal(get_u64(&g, "llama.attention.head_count"), 8);
    assert_int_equal(get_u64(&g, "llama.attention.head_count_kv"), 4);
    assert_int_equal(get_u64(&g, "llama.context_length"), 2048);
    assert_int_equal(get_u64(&g, "tokenizer.ggml.seperator_token_id"), 4294967295u);
    assert_null(rs_meta_find(&g.meta, "llama.rope.freq_base"));
    double eps;
    assert_int_equal(rs_meta_get_f64(&g.meta, "llama.attention.layer_norm_rms_epsilon", &eps, NULL),
                     RS_OK);
    assert_true(eps == (double)1e-5f); /* stored as f32 */
    rs_array toks;
    assert_int_equal(rs_meta_get_arr(&g.meta, "tokenizer.ggml.tokens", &toks, NULL), RS_OK);
    assert_int_equal(toks.type, RS_V_STR);
    assert_int_equal(toks.n, 512);
    const rs_tensor_info *e = rs_gguf_find_tensor(&g, "token_embd.weight");
    assert_non_null(e);
    assert_int_equal(e->n_dims, 2);
    assert_int_equal(e->ne[0], 64);
    assert_int_equal(e->ne[1], 512);
    assert_non_null(rs_gguf_find_tensor(&g, "output.weight"));
    rs_gguf_close(&g);
}

/* The v1 file: u32 widths, same tensors byte for byte. */
static void test_stories260k_v1_matches_v3(void **state) {
    (void)state;
    rs_gguf g1, g3;
    open_shared(&g1, "models/tinyllamas-stories-260k-f32.v1.gguf");
    open_shared(&g3, "models/stories260K.gguf");
    assert_int_equal(g1.version, 1);
    assert_int_equal(g1.meta.n, 18);
    assert_int_equal(g1.n_tensors, 48);
    assert_int_equal(check_layout(&g1), 292800);
    assert_int_equal(get_u64(&g1, "llama.context_length"), 512);
    assert_int_equal(get_u64(&g1, "tokenizer.ggml.padding_token_id"), 0);
    assert_str(&g1, "llama.tensor_data_layout", "Meta AI original pth");
    for (uint64_t i = 0; i < g1.n_tensors; i++) {
        const rs_tensor_info *a = &g1.tensors[i];
        const rs_tensor_info *b = rs_gguf_find_tensor(&g3, a->name);
        assert_non_null(b);
        assert_int_equal(a->type, b->type);
        assert_int_equal(rs_tensor_nelements(a), rs_tensor_nelements(b));
        for (int j = 0; j < RS_MAX_DIMS; j++) assert_int_equal(a->ne[j], b->ne[j]);
        assert_int_equal(a->nbytes, b->nbytes);
        assert_memory_equal(a->data, b->data, a->nbytes);
    }
    /* the vocabularies agree too */
    rs_array t1, t3;
    assert_int_equal(rs_meta_get_arr(&g1.meta, "tokenizer.ggml.tokens", &t1, NULL), RS_OK);
    assert_int_equal(rs_meta_get_arr(&g3.meta, "tokenizer.ggml.tokens", &t3, NULL), RS_OK);
    rs_value v1 = {.type = RS_V_ARR, .arr = t1}, v3 = {.type = RS_V_ARR, .arr = t3};
    assert_true(rs_value_equal(&v1, &v3));
    rs_gguf_close(&g1);
    rs_gguf_close(&g3);
}

/* TinyStories-656K: 2048*128 + 2 * (128*128*2 + 128*64*2 + 3*128*384 + 2*128) + 128 = 656,000 */
static void test_tinystories_f16(void **state) {
    (void)state;
    rs_gguf g;
    open_shared(&g, "models/TinyStories-656K.f16.gguf");
    assert_int_equal(g.version, 3);
    assert_int_equal(g.meta.n, 32);
    assert_int_equal(g.n_tensors, 20);
    assert_int_equal(count_type(&g, RS_DTYPE_F16), 15);
    assert_int_equal(count_type(&g, RS_DTYPE_F32), 5);
    assert_int_equal(check_layout(&g), 656000);
    assert_null(rs_gguf_find_tensor(&g, "output.weight")); /* tied embeddings */
    rs_array scores;
    assert_int_equal(rs_meta_get_arr(&g.meta, "tokenizer.ggml.scores", &scores, NULL), RS_OK);
    assert_int_equal(scores.type, RS_V_F32);
    assert_int_equal(scores.n, 2048);
    for (uint64_t i = 0; i < scores.n; i++) assert_true(rs_array_get_f64(&scores, i) == -1000.0);
    bool add_bos = false;
    assert_int_equal(rs_meta_get_bool(&g.meta, "tokenizer.ggml.add_bos_token", &add_bos, NULL),
                     RS_OK);
    assert_true(add_bos);
    assert_int_equal(get_u64(&g, "tokenizer.ggml.bos_token_id"), 1);
    assert_int_equal(get_u64(&g, "tokenizer.ggml.eos_token_id"), 2);
    assert_int_equal(get_u64(&g, "llama.embedding_length"), 128);
    assert_int_equal(get_u64(&g, "llama.feed_forward_length"), 384);
    rs_gguf_close(&g);
}

static void test_tinystories_q8_0(void **state) {
    (void)state;
    rs_gguf g;
    open_shared(&g, "models/tinystories-656k-q8_0.gguf");
    assert_int_equal(g.version, 3);
    assert_int_equal(g.meta.n, 25);
    assert_int_equal(g.n_tensors, 20);
    assert_int_equal(count_type(&g, RS_DTYPE_Q8_0), 15);
    assert_int_equal(count_type(&g, RS_DTYPE_F32), 5);
    assert_int_equal(check_layout(&g), 656000);
    assert_int_equal(get_u64(&g, "general.file_type"), 7);
    rs_gguf_close(&g);
}

static void test_tinystories_iq4_nl(void **state) {
    (void)state;
    rs_gguf g;
    open_shared(&g, "models/TinyStories-656K-Q2_K.gguf");
    assert_int_equal(g.version, 3);
    assert_int_equal(g.meta.n, 34);
    assert_int_equal(g.n_tensors, 20);
    assert_int_equal(count_type(&g, RS_DTYPE_IQ4_NL), 14);
    assert_int_equal(count_type(&g, RS_DTYPE_Q8_0), 1);
    assert_int_equal(count_type(&g, RS_DTYPE_F32), 5);
    assert_int_equal(count_type(&g, RS_DTYPE_Q2_K), 0);
    assert_int_equal(check_layout(&g), 656000);
    assert_int_equal(get_u64(&g, "general.file_type"), 10);
    assert_string_equal(g.tensors[0].name, "output_norm.weight");
    assert_int_equal(rs_gguf_find_tensor(&g, "token_embd.weight")->type, RS_DTYPE_Q8_0);
    assert_str(&g, "general.license", "apache-2.0");
    assert_non_null(rs_meta_find(&g.meta, "general.languages"));
    rs_gguf_close(&g);
}

/* llama.cpp's vocab-only files: 0 tensors, and they end before the aligned data offset. */
static void test_vocab_files(void **state) {
    (void)state;
    static const struct {
        const char *file, *model;
        uint64_t n_tokens;
    } cases[] = {
        {"tokenizer-tests/ggml-vocab-llama-spm.gguf", "llama", 32000},
        {"tokenizer-tests/ggml-vocab-bert-bge.gguf", "bert", 30522},
        {"tokenizer-tests/ggml-vocab-gpt-2.gguf", "gpt2", 50257},
        {"tokenizer-tests/ggml-vocab-deepseek-llm.gguf", "gpt2", 102400},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        rs_gguf g;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        open_shared(&g, cases[c].file);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        printf("  %s: %llu tokens, opened in %.2f ms\n", cases[c].file,
               (unsigned long long)cases[c].n_tokens, ms);
        assert_int_equal(g.version, 3);
        assert_int_equal(g.n_tensors, 0);
        assert_true(g.data_offset > g.map.size); /* the unpadded tail is accepted */
        assert_str(&g, "tokenizer.ggml.model", cases[c].model);
        rs_array toks;
        assert_int_equal(rs_meta_get_arr(&g.meta, "tokenizer.ggml.tokens", &toks, NULL), RS_OK);
        assert_int_equal(toks.type, RS_V_STR);
        assert_int_equal(toks.n, cases[c].n_tokens);
        /* every token string lies inside the mapping (zero copy) */
        for (uint64_t i = 0; i < toks.n; i++) {
            rs_str s = rs_array_get_str(&toks, i);
            assert_true((const unsigned char *)s.ptr >= g.map.data &&
                        (const unsigned char *)s.ptr + s.len <= g.map.data + g.map.size);
        }
        gguf_walk(&g);
        assert_true(ms < 2000.0); /* generous: sanitizers and 2 shared cores */
        rs_gguf_close(&g);
    }
}

static void test_open_errors(void **state) {
    (void)state;
    rs_gguf g;
    rs_error err = {0};
    assert_int_equal(rs_gguf_open(&g, "/nonexistent/x.gguf", &err), RS_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.gguf"));
    rs_gguf_close(&g); /* closing a failed open is safe */
    assert_int_equal(rs_gguf_open(&g, "/", &err), RS_ERR_IO);
    const char *empty = tu_tmp("empty.gguf");
    assert_int_equal(tu_write_file(empty, "", 0), 0);
    assert_int_equal(rs_gguf_open(&g, empty, &err), RS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "too short"));
    assert_non_null(strstr(err.msg, "empty.gguf"));
    remove(empty);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories260k_v3),     cmocka_unit_test(test_stories260k_v1_matches_v3),
        cmocka_unit_test(test_tinystories_f16),    cmocka_unit_test(test_tinystories_q8_0),
        cmocka_unit_test(test_tinystories_iq4_nl), cmocka_unit_test(test_vocab_files),
        cmocka_unit_test(test_open_errors),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed ? failed : shared_missing ? 77 : 0;
}

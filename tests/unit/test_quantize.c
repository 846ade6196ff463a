/* test_quantize.c — rs_quantize_model against llama.cpp's own files.
 *
 * The shared TinyStories-656K weights exist as an HF folder, a llama.cpp F16
 * GGUF and a llama.cpp Q8_0 GGUF. Converting the HF folder to F16 must give the
 * F16 file's tensors byte for byte (names, types, shapes, q/k rows permuted back
 * to GGUF's layout); quantizing the F16 file to Q8_0 must give the Q8_0 file's
 * bytes. A Q4_0 conversion must load and run. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "convert/quantize.h"
#include "io/gguf.h"
#include "model/model.h"
#include "model/session.h"

/* Every tensor of `want` exists in `got` with the same type, shape and bytes. */
static void assert_same_tensors(const char *got_path, const char *want_path) {
    rs_gguf got, want;
    rs_error err = {0};
    if (rs_gguf_open(&got, got_path, &err) || rs_gguf_open(&want, want_path, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(got.n_tensors, want.n_tensors);
    for (uint64_t i = 0; i < want.n_tensors; i++) {
        const rs_tensor_info *w = &want.tensors[i], *g = rs_gguf_find_tensor(&got, w->name);
        if (!g) fail_msg("tensor '%s' missing", w->name);
        if (g->type != w->type)
            fail_msg("'%s': type %s, want %s", w->name, rs_dtype_name(g->type),
                     rs_dtype_name(w->type));
        assert_int_equal(g->n_dims, w->n_dims);
        assert_memory_equal(g->ne, w->ne, sizeof g->ne);
        assert_int_equal(g->nbytes, w->nbytes);
        if (memcmp(g->data, w->data, w->nbytes) != 0) fail_msg("'%s': bytes differ", w->name);
    }
    rs_gguf_close(&got);
    rs_gguf_close(&want);
}

static void quantize(const char *in, const char *out, rs_ftype t) {
    rs_quantize_params p = {.ftype = t, .n_threads = 2};
    rs_error err = {0};
    if (rs_quantize_model(in, out, &p, &err) != RS_OK) fail_msg("quantize: %s", err.msg);
}

static void test_hf_to_f16_equals_llama_cpp(void **st) {
    (void)st;
    const char *out = tu_tmp("hf-f16.gguf");
    quantize(tu_shared_or_skip("models/TinyStories-656K-hf"), out, RS_FTYPE_F16);
    assert_same_tensors(out, tu_shared_or_skip("models/TinyStories-656K.f16.gguf"));
    /* the converted file is a standard GGUF: no HF-layout marker, a tokenizer */
    rs_gguf g;
    rs_error err = {0};
    assert_int_equal(rs_gguf_open(&g, out, &err), RS_OK);
    assert_null(rs_meta_find(&g.meta, "rusty.rope_neox"));
    assert_non_null(rs_meta_find(&g.meta, "tokenizer.ggml.tokens"));
    rs_gguf_close(&g);
    remove(out);
}

static void test_f16_to_q8_0_equals_llama_cpp(void **st) {
    (void)st;
    const char *out = tu_tmp("q8.gguf");
    quantize(tu_shared_or_skip("models/TinyStories-656K.f16.gguf"), out, RS_FTYPE_Q8_0);
    assert_same_tensors(out, tu_shared_or_skip("models/tinystories-656k-q8_0.gguf"));
    remove(out);
}

static void test_q4_0_runs(void **st) {
    (void)st;
    const char *out = tu_tmp("q4.gguf");
    quantize(tu_shared_or_skip("models/TinyStories-656K.f16.gguf"), out, RS_FTYPE_Q4_0);
    rs_model *m = NULL;
    rs_session *s = NULL;
    rs_error err = {0};
    if (rs_model_load(&m, out, &err)) fail_msg("%s", err.msg);
    assert_string_equal(m->type_desc, "Q4_0");
    rs_session_opts o;
    rs_session_opts_default(&o);
    o.n_ctx = 32;
    o.n_threads = 2;
    o.device = RS_DEVICE_CPU;
    if (rs_session_create(&s, m, &o, &err)) fail_msg("%s", err.msg);
    int32_t ids[4] = {1, 80, 147, 201};
    assert_int_equal(rs_session_eval(s, ids, 4, RS_LOGITS_LAST, &err), RS_OK);
    const float *lg = rs_session_logits(s, 0);
    for (int i = 0; i < m->hp.n_vocab; i++) assert_true(lg[i] == lg[i]); /* no NaN */
    rs_session_free(s);
    rs_model_free(m);
    remove(out);
}

static void test_errors(void **st) {
    (void)st;
    rs_quantize_params p = {.ftype = RS_FTYPE_Q4_0};
    rs_error err = {0};
    assert_int_not_equal(rs_quantize_model("/nonexistent.gguf", tu_tmp("x.gguf"), &p, &err), RS_OK);
    assert_non_null(strstr(err.msg, "nonexistent"));
    p.ftype = (rs_ftype)99;
    assert_int_equal(rs_quantize_model("/nonexistent.gguf", tu_tmp("x.gguf"), &p, &err),
                     RS_ERR_ARG);
    rs_ftype t;
    assert_true(rs_ftype_from_name("q4_k_m", &t));
    assert_int_equal(t, RS_FTYPE_Q4_K_M);
    assert_false(rs_ftype_from_name("Q9_9", &t));
}

/* Q4_K_M's per-tensor types for a 32-layer 7B: llama.cpp's use_more_bits layers,
 * listed here by hand (the first and last four, and 6, 9, ..., 27), get Q6_K for
 * attn_v and ffn_down; the rest stays Q4_K, the head is Q6_K, norms keep F32. */
static void test_k_mix_types(void **st) {
    (void)st;
    static const int more[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
    rs_quantize_params p = {.ftype = RS_FTYPE_Q4_K_M};
    rs_tensor_info t = {.type = RS_DTYPE_F16, .n_dims = 2, .ne = {4096, 4096, 1, 1}};
    char name[64];
    for (int l = 0; l < 32; l++) {
        bool want6 = false;
        for (size_t i = 0; i < sizeof more / sizeof *more; i++) want6 |= more[i] == l;
        const rs_dtype big = want6 ? RS_DTYPE_Q6_K : RS_DTYPE_Q4_K;
        t.name = name;
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", l);
        assert_int_equal(rs_quantize_target_type(&t, &p, 32, 1), big);
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
        assert_int_equal(rs_quantize_target_type(&t, &p, 32, 1), big);
        snprintf(name, sizeof name, "blk.%d.attn_q.weight", l);
        assert_int_equal(rs_quantize_target_type(&t, &p, 32, 1), RS_DTYPE_Q4_K);
    }
    t.name = "output.weight";
    assert_int_equal(rs_quantize_target_type(&t, &p, 32, 1), RS_DTYPE_Q6_K);
    p.ftype = RS_FTYPE_Q4_K_S; /* no mix: v and down stay in the base type */
    t.name = "blk.0.attn_v.weight";
    assert_int_equal(rs_quantize_target_type(&t, &p, 32, 1), RS_DTYPE_Q4_K);
    p.ftype = (rs_ftype)99; /* an unknown preset changes nothing */
    assert_int_equal(rs_quantize_target_type(&t, &p, 32, 1), RS_DTYPE_F16);
    rs_tensor_info norm = {.name = "blk.0.attn_norm.weight", .type = RS_DTYPE_F32, .n_dims = 1};
    p.ftype = RS_FTYPE_Q4_K_M;
    assert_int_equal(rs_quantize_target_type(&norm, &p, 32, 1), RS_DTYPE_F32);
}

/* The type of one 4096x4096 tensor under preset ft. */
static rs_dtype type_of(rs_ftype ft, const char *name, int n_layer, int n_gqa) {
    rs_quantize_params p = {.ftype = ft};
    rs_tensor_info t = {.name = name, .type = RS_DTYPE_F16, .n_dims = 2, .ne = {4096, 4096, 1, 1}};
    return rs_quantize_target_type(&t, &p, n_layer, n_gqa);
}

/* The 2- and 3-bit mixes, as llama.cpp's llama_tensor_get_type assigns them
 * to a dense Llama (listed by hand from its rules). Q2_K: v, down and wo in
 * Q3_K (v in Q4_K with 4 or more query heads per KV head). Q3_K_M: v of the
 * first 2 layers and down of the first n_layer/16 in Q5_K, the rest of v, down
 * and wo in Q4_K. Q3_K_L: all three in Q5_K. The head is Q6_K throughout. */
static void test_low_bit_mixes(void **st) {
    (void)st;
    assert_int_equal(type_of(RS_FTYPE_Q2_K, "blk.5.attn_q.weight", 32, 1), RS_DTYPE_Q2_K);
    assert_int_equal(type_of(RS_FTYPE_Q2_K, "blk.5.ffn_up.weight", 32, 1), RS_DTYPE_Q2_K);
    assert_int_equal(type_of(RS_FTYPE_Q2_K, "blk.5.attn_v.weight", 32, 1), RS_DTYPE_Q3_K);
    assert_int_equal(type_of(RS_FTYPE_Q2_K, "blk.5.attn_v.weight", 32, 4), RS_DTYPE_Q4_K);
    assert_int_equal(type_of(RS_FTYPE_Q2_K, "blk.5.ffn_down.weight", 32, 1), RS_DTYPE_Q3_K);
    assert_int_equal(type_of(RS_FTYPE_Q2_K, "blk.5.attn_output.weight", 32, 1), RS_DTYPE_Q3_K);
    assert_int_equal(type_of(RS_FTYPE_Q2_K, "output.weight", 32, 1), RS_DTYPE_Q6_K);
    assert_int_equal(type_of(RS_FTYPE_Q2_K, "token_embd.weight", 32, 1), RS_DTYPE_Q2_K);
    for (int l = 0; l < 32; l++) {
        char v[64], down[64], wo[64], gate[64];
        snprintf(v, sizeof v, "blk.%d.attn_v.weight", l);
        snprintf(down, sizeof down, "blk.%d.ffn_down.weight", l);
        snprintf(wo, sizeof wo, "blk.%d.attn_output.weight", l);
        snprintf(gate, sizeof gate, "blk.%d.ffn_gate.weight", l);
        const rs_dtype early = l < 2 ? RS_DTYPE_Q5_K : RS_DTYPE_Q4_K;
        assert_int_equal(type_of(RS_FTYPE_Q3_K_M, v, 32, 1), early);
        assert_int_equal(type_of(RS_FTYPE_Q3_K_M, down, 32, 1), early);
        assert_int_equal(type_of(RS_FTYPE_Q3_K_M, wo, 32, 1), RS_DTYPE_Q4_K);
        assert_int_equal(type_of(RS_FTYPE_Q3_K_M, gate, 32, 1), RS_DTYPE_Q3_K);
        assert_int_equal(type_of(RS_FTYPE_Q3_K_L, v, 32, 1), RS_DTYPE_Q5_K);
        assert_int_equal(type_of(RS_FTYPE_Q3_K_L, down, 32, 1), RS_DTYPE_Q5_K);
        assert_int_equal(type_of(RS_FTYPE_Q3_K_L, wo, 32, 1), RS_DTYPE_Q5_K);
        assert_int_equal(type_of(RS_FTYPE_Q3_K_S, down, 32, 1), RS_DTYPE_Q3_K);
    }
    /* a 64-layer model: down's Q5_K layers are the first 4 */
    assert_int_equal(type_of(RS_FTYPE_Q3_K_M, "blk.3.ffn_down.weight", 64, 8), RS_DTYPE_Q5_K);
    assert_int_equal(type_of(RS_FTYPE_Q3_K_M, "blk.4.ffn_down.weight", 64, 8), RS_DTYPE_Q4_K);
    /* names: the bare K name is the pure (_S) preset, as Q4_K and Q5_K are */
    rs_ftype ft;
    assert_true(rs_ftype_from_name("Q3_K", &ft));
    assert_int_equal(ft, RS_FTYPE_Q3_K_S);
    assert_true(rs_ftype_from_name("q3_k_m", &ft));
    assert_int_equal(ft, RS_FTYPE_Q3_K_M);
    assert_true(rs_ftype_from_name("Q4_K_S", &ft));
    assert_int_equal(ft, RS_FTYPE_Q4_K_S);
    assert_string_equal(rs_ftype_name(RS_FTYPE_Q3_K_L), "Q3_K_L");
    assert_string_equal(rs_ftype_name(RS_FTYPE_Q3_K_S), "Q3_K");
}

/* IQ4_NL and IQ4_XS as llama.cpp assigns them without an importance matrix: attn_v
 * in Q5_K with 4 or more query heads per KV head, ffn_down of the first n_layer/8
 * layers in Q5_K, the head in Q6_K; IQ4_XS rows that 256 does not divide fall back
 * to IQ4_NL. */
static void test_iq4_mixes(void **st) {
    (void)st;
    const rs_ftype fts[] = {RS_FTYPE_IQ4_NL, RS_FTYPE_IQ4_XS};
    const rs_dtype base[] = {RS_DTYPE_IQ4_NL, RS_DTYPE_IQ4_XS};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(type_of(fts[i], "blk.0.attn_q.weight", 32, 4), base[i]);
        assert_int_equal(type_of(fts[i], "blk.9.attn_v.weight", 32, 1), base[i]);
        assert_int_equal(type_of(fts[i], "blk.9.attn_v.weight", 32, 4), RS_DTYPE_Q5_K);
        assert_int_equal(type_of(fts[i], "blk.3.ffn_down.weight", 32, 1), RS_DTYPE_Q5_K);
        assert_int_equal(type_of(fts[i], "blk.4.ffn_down.weight", 32, 1), base[i]);
        assert_int_equal(type_of(fts[i], "blk.4.attn_output.weight", 32, 1), base[i]);
        assert_int_equal(type_of(fts[i], "output.weight", 32, 1), RS_DTYPE_Q6_K);
        assert_int_equal(type_of(fts[i], "token_embd.weight", 32, 1), base[i]);
    }
    rs_quantize_params p = {.ftype = RS_FTYPE_IQ4_XS};
    rs_tensor_info t = {
        .name = "blk.0.ffn_up.weight", .type = RS_DTYPE_F16, .n_dims = 2, .ne = {4160, 64, 1, 1}};
    assert_int_equal(rs_quantize_target_type(&t, &p, 32, 1), RS_DTYPE_IQ4_NL);
    rs_ftype ft;
    assert_true(rs_ftype_from_name("iq4_xs", &ft));
    assert_int_equal(ft, RS_FTYPE_IQ4_XS);
    assert_string_equal(rs_ftype_name(RS_FTYPE_IQ4_XS), "IQ4_XS");
}

/* The model's type description is the file's preset, not its dominant type. */
static void test_k_mix_label(void **st) {
    (void)st;
    const char *out = tu_tmp("q4km.gguf");
    quantize(tu_shared_or_skip("models/TinyStories-656K.f16.gguf"), out, RS_FTYPE_Q4_K_M);
    rs_model *m = NULL;
    rs_error err = {0};
    if (rs_model_load(&m, out, &err)) fail_msg("%s", err.msg);
    assert_string_equal(m->type_desc, "Q4_K_M");
    rs_model_free(m);
    remove(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_hf_to_f16_equals_llama_cpp),
        cmocka_unit_test(test_f16_to_q8_0_equals_llama_cpp),
        cmocka_unit_test(test_q4_0_runs),
        cmocka_unit_test(test_k_mix_types),
        cmocka_unit_test(test_k_mix_label),
        cmocka_unit_test(test_low_bit_mixes),
        cmocka_unit_test(test_iq4_mixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

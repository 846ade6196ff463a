/* test_hf_config.c — config.json parsing: the real TinyStories config, defaults,
 * rope scaling variants, and one clear error (naming the key) per bad input.
 * Expected values are read off the JSON texts by hand. */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/hf_config.h"

static int shared_missing;

static rs_hf_config parse_ok(const char *json) {
    rs_hf_config c;
    rs_error err = {0};
    rs_status s = rs_hf_config_parse(&c, json, strlen(json), NULL, &err);
    if (s) fail_msg("%s\n  -> %s", json, err.msg);
    return c;
}

/* A minimal valid config; fields are appended with the EXTRA argument. */
#define BASE(extra)                                                                                \
    "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":172,"      \
    "\"num_hidden_layers\":5,\"num_attention_heads\":8,\"vocab_size\":512,"                        \
    "\"max_position_embeddings\":2048" extra "}"

static void test_tinystories(void **state) {
    (void)state;
    const char *path = tu_shared("models/TinyStories-656K-hf/config.json");
    if (!path) {
        shared_missing = 1;
        skip();
    }
    rs_hf_config c;
    rs_error err = {0};
    assert_int_equal(rs_hf_config_load(&c, path, &err), RS_OK);
    assert_string_equal(c.architecture, "LlamaForCausalLM");
    assert_string_equal(c.model_type, "llama");
    assert_int_equal(c.hidden_size, 128);
    assert_int_equal(c.intermediate_size, 384);
    assert_int_equal(c.num_hidden_layers, 2);
    assert_int_equal(c.num_attention_heads, 8);
    assert_int_equal(c.num_key_value_heads, 4);
    assert_int_equal(c.head_dim, 16);
    assert_false(c.head_dim_given);
    assert_true(c.rms_norm_eps == 1e-6);
    assert_true(c.rope_theta == 10000.0);
    assert_int_equal(c.rope_scaling.type, RS_ROPE_SCALING_NONE); /* "rope_scaling": null */
    assert_int_equal(c.vocab_size, 2048);
    assert_int_equal(c.max_position_embeddings, 512);
    assert_true(c.tie_word_embeddings);
    assert_false(c.attention_bias);
    assert_false(c.mlp_bias);
    assert_int_equal(c.torch_dtype, RS_DTYPE_F32);
    assert_int_equal(c.bos_token_id, 1);
    assert_int_equal(c.n_eos, 1);
    assert_int_equal(c.eos_token_ids[0], 2);
    assert_int_equal(c.sliding_window, 0);
}

static void test_defaults_and_variants(void **state) {
    (void)state;
    rs_hf_config c = parse_ok(BASE(""));
    assert_int_equal(c.num_key_value_heads, 8); /* = heads */
    assert_int_equal(c.head_dim, 8);            /* 64 / 8 */
    assert_true(c.rms_norm_eps == 1e-6);
    assert_true(c.rope_theta == 10000.0);
    assert_false(c.tie_word_embeddings);
    assert_int_equal(c.torch_dtype, RS_DTYPE_COUNT);
    assert_int_equal(c.bos_token_id, -1);
    assert_int_equal(c.n_eos, 0);

    /* nulls count as absent; head_dim given; eos list; Qwen2 sliding window; dtype key */
    c = parse_ok("{\"model_type\":\"qwen2\",\"hidden_size\":64,\"intermediate_size\":1,"
                 "\"num_hidden_layers\":1,\"num_attention_heads\":4,\"num_key_value_heads\":null,"
                 "\"head_dim\":32,\"vocab_size\":100,\"max_position_embeddings\":8,"
                 "\"eos_token_id\":[7,99,0],\"bos_token_id\":null,\"sliding_window\":4096,"
                 "\"use_sliding_window\":false,\"dtype\":\"bfloat16\",\"rope_theta\":1000000.0,"
                 "\"rms_norm_eps\":1e-5,\"attention_bias\":true}");
    assert_string_equal(c.architecture, "");
    assert_string_equal(c.model_type, "qwen2");
    assert_int_equal(c.num_key_value_heads, 4);
    assert_int_equal(c.head_dim, 32);
    assert_true(c.head_dim_given);
    assert_int_equal(c.n_eos, 3);
    assert_int_equal(c.eos_token_ids[1], 99);
    assert_int_equal(c.bos_token_id, -1);
    assert_int_equal(c.sliding_window, 4096);
    assert_int_equal(c.torch_dtype, RS_DTYPE_BF16);
    assert_true(c.rope_theta == 1e6);
    assert_true(c.rms_norm_eps == 1e-5);
    assert_true(c.attention_bias);
    /* head_dim need not come from hidden / heads when given */
    c = parse_ok("{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":1,"
                 "\"num_hidden_layers\":1,\"num_attention_heads\":3,\"head_dim\":10,"
                 "\"vocab_size\":100,\"max_position_embeddings\":8}");
    assert_int_equal(c.head_dim, 10);
}

static void test_rope_scaling(void **state) {
    (void)state;
    /* Llama 3.1's block */
    rs_hf_config c = parse_ok(BASE(",\"rope_theta\":500000.0,\"rope_scaling\":{\"factor\":8.0,"
                                   "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
                                   "\"original_max_position_embeddings\":8192,"
                                   "\"rope_type\":\"llama3\"}"));
    assert_int_equal(c.rope_scaling.type, RS_ROPE_SCALING_LLAMA3);
    assert_true(c.rope_scaling.factor == 8.0);
    assert_true(c.rope_scaling.low_freq_factor == 1.0);
    assert_true(c.rope_scaling.high_freq_factor == 4.0);
    assert_int_equal(c.rope_scaling.original_max_position, 8192);
    assert_true(c.rope_theta == 500000.0);
    /* older "type" spelling */
    c = parse_ok(BASE(",\"rope_scaling\":{\"type\":\"linear\",\"factor\":2.0}"));
    assert_int_equal(c.rope_scaling.type, RS_ROPE_SCALING_LINEAR);
    assert_true(c.rope_scaling.factor == 2.0);
    /* rope_type wins over type (as in transformers) */
    c = parse_ok(BASE(",\"rope_scaling\":{\"type\":\"linear\",\"rope_type\":\"dynamic\","
                      "\"factor\":2.0}"));
    assert_int_equal(c.rope_scaling.type, RS_ROPE_SCALING_DYNAMIC);
    /* Qwen2 yarn */
    c = parse_ok(BASE(",\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4.0,"
                      "\"original_max_position_embeddings\":32768,\"beta_fast\":32,"
                      "\"beta_slow\":1}"));
    assert_int_equal(c.rope_scaling.type, RS_ROPE_SCALING_YARN);
    assert_int_equal(c.rope_scaling.original_max_position, 32768);
    assert_true(c.rope_scaling.beta_fast == 32.0 && c.rope_scaling.beta_slow == 1.0);
    c = parse_ok(BASE(",\"rope_scaling\":{\"rope_type\":\"default\"}"));
    assert_int_equal(c.rope_scaling.type, RS_ROPE_SCALING_NONE);
    /* transformers 5 layout */
    c = parse_ok(BASE(",\"rope_parameters\":{\"rope_theta\":250000.0,\"rope_type\":\"default\"}"));
    assert_true(c.rope_theta == 250000.0);
    assert_int_equal(c.rope_scaling.type, RS_ROPE_SCALING_NONE);
    c = parse_ok(BASE(",\"rope_parameters\":{\"rope_theta\":5e5,\"rope_type\":\"linear\","
                      "\"factor\":3}"));
    assert_int_equal(c.rope_scaling.type, RS_ROPE_SCALING_LINEAR);
    assert_true(c.rope_scaling.factor == 3.0);
}

typedef struct bad_case {
    const char *json;
    rs_status want;
    const char *n1, *n2;
} bad_case;

static void test_errors(void **state) {
    (void)state;
    static const bad_case cases[] = {
        {"", RS_ERR_FORMAT, "invalid JSON", NULL},
        {"{\"a\":", RS_ERR_FORMAT, "invalid JSON", NULL},
        {"[]", RS_ERR_FORMAT, "top level is a array", NULL},
        {BASE("") "x", RS_ERR_FORMAT, "after the JSON value", NULL},
        {"{\"hidden_size\":\"\xff\"}", RS_ERR_FORMAT, "invalid UTF-8", NULL},
        {BASE(",\"hidden_size\":1"), RS_ERR_FORMAT, "'hidden_size' appears twice", NULL},
        {"{\"hidden_size\":64}", RS_ERR_FORMAT, "neither 'architectures' nor 'model_type'", NULL},
        {BASE(",\"architectures\":[]"), RS_ERR_FORMAT, "appears twice", NULL},
        {"{\"architectures\":[],\"hidden_size\":1}", RS_ERR_FORMAT, "'architectures' is empty",
         NULL},
        {"{\"architectures\":\"Llama\"}", RS_ERR_FORMAT, "'architectures' is string", NULL},
        {"{\"architectures\":[5]}", RS_ERR_FORMAT, "'architectures[0]' is a number", NULL},
        {"{\"model_type\":\"llama\",\"intermediate_size\":1}", RS_ERR_FORMAT,
         "required key 'hidden_size' is missing", NULL},
        {"{\"model_type\":\"llama\",\"hidden_size\":\"64\"}", RS_ERR_FORMAT,
         "'hidden_size' is a string, expected an integer", NULL},
        {"{\"model_type\":\"llama\",\"hidden_size\":0}", RS_ERR_RANGE,
         "'hidden_size' = 0 is out of range", NULL},
        {"{\"model_type\":\"llama\",\"hidden_size\":64.5}", RS_ERR_FORMAT,
         "'hidden_size' = 64.5 is not an integer", NULL},
        {"{\"model_type\":\"llama\",\"hidden_size\":1e12}", RS_ERR_RANGE, "'hidden_size'",
         "out of range"},
        {"{\"model_type\":\"llama\",\"hidden_size\":-64}", RS_ERR_RANGE, "'hidden_size'",
         "out of range"},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":true}", RS_ERR_FORMAT,
         "'intermediate_size' is a bool", NULL},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":1,\"num_hidden_"
         "layers\":9999}",
         RS_ERR_RANGE, "'num_hidden_layers'", NULL},
        {BASE(",\"num_key_value_heads\":3"), RS_ERR_FORMAT,
         "'num_key_value_heads' = 3 does not divide 'num_attention_heads' = 8", NULL},
        {BASE(",\"num_key_value_heads\":0"), RS_ERR_RANGE, "'num_key_value_heads' = 0", NULL},
        {"{\"model_type\":\"llama\",\"hidden_size\":60,\"intermediate_size\":1,\"num_hidden_"
         "layers\":1,"
         "\"num_attention_heads\":8,\"vocab_size\":5,\"max_position_embeddings\":5}",
         RS_ERR_FORMAT, "'hidden_size' = 60 is not divisible by 'num_attention_heads' = 8", NULL},
        {BASE(",\"head_dim\":7"), RS_ERR_FORMAT, "'head_dim' = 7 is odd", NULL},
        {BASE(",\"head_dim\":\"8\""), RS_ERR_FORMAT, "'head_dim' is a string", NULL},
        {BASE(",\"vocab_size\":0"), RS_ERR_FORMAT, "appears twice", NULL},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":1,\"num_hidden_"
         "layers\":1,"
         "\"num_attention_heads\":8,\"max_position_embeddings\":5}",
         RS_ERR_FORMAT, "required key 'vocab_size' is missing", NULL},
        {BASE(",\"rms_norm_eps\":0"), RS_ERR_RANGE, "'rms_norm_eps' = 0 is out of range", NULL},
        {BASE(",\"rms_norm_eps\":-1e-6"), RS_ERR_RANGE, "'rms_norm_eps'", NULL},
        {BASE(",\"rms_norm_eps\":\"1e-6\""), RS_ERR_FORMAT,
         "'rms_norm_eps' is a string, expected a number", NULL},
        {BASE(",\"rope_theta\":-10000"), RS_ERR_RANGE, "'rope_theta'", NULL},
        {BASE(",\"rope_theta\":1e400"), RS_ERR_RANGE, "'rope_theta'", NULL},
        {BASE(",\"tie_word_embeddings\":\"yes\""), RS_ERR_FORMAT,
         "'tie_word_embeddings' is a string, expected true or false", NULL},
        {BASE(",\"attention_bias\":1"), RS_ERR_FORMAT, "'attention_bias' is a number", NULL},
        {BASE(",\"torch_dtype\":\"int8\""), RS_ERR_UNSUPPORTED, "'torch_dtype' = 'int8'", NULL},
        {BASE(",\"torch_dtype\":\"b\\nf16\""), RS_ERR_UNSUPPORTED, "'b?f16'", NULL},
        {BASE(",\"torch_dtype\":\"b\nf16\""), RS_ERR_FORMAT, "raw control byte 0x0a", NULL},
        {BASE(",\"torch_dtype\":16"), RS_ERR_FORMAT, "'torch_dtype' is a number", NULL},
        {BASE(",\"bos_token_id\":512"), RS_ERR_RANGE,
         "'bos_token_id' = 512 is out of range [0, 511]", NULL},
        {BASE(",\"eos_token_id\":-1"), RS_ERR_RANGE, "'eos_token_id'", NULL},
        {BASE(",\"eos_token_id\":[1,\"x\"]"), RS_ERR_FORMAT, "'eos_token_id[1]' is a string", NULL},
        {BASE(",\"eos_token_id\":[1,600]"), RS_ERR_RANGE, "'eos_token_id[1]' is too large", NULL},
        {BASE(",\"eos_token_id\":[]"), RS_ERR_FORMAT, "'eos_token_id' lists 0 ids", NULL},
        {BASE(",\"sliding_window\":-5"), RS_ERR_RANGE, "'sliding_window'", NULL},
        {BASE(",\"rope_scaling\":\"linear\""), RS_ERR_FORMAT, "'rope_scaling' is a string", NULL},
        {BASE(",\"rope_scaling\":{\"factor\":2}"), RS_ERR_FORMAT,
         "'rope_scaling' has neither 'rope_type' nor 'type'", NULL},
        {BASE(",\"rope_scaling\":{\"type\":2}"), RS_ERR_FORMAT, "'rope_scaling.type' is a number",
         NULL},
        {BASE(",\"rope_scaling\":{\"rope_type\":\"longrope\",\"factor\":2}"), RS_ERR_UNSUPPORTED,
         "'rope_scaling.rope_type' = 'longrope' is not supported", NULL},
        {BASE(",\"rope_scaling\":{\"type\":\"linear\"}"), RS_ERR_FORMAT,
         "'rope_scaling.factor' is missing", NULL},
        {BASE(",\"rope_scaling\":{\"type\":\"linear\",\"factor\":0}"), RS_ERR_RANGE,
         "'rope_scaling.factor' = 0", NULL},
        {BASE(",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8,\"high_freq_factor\":4,"
              "\"original_max_position_embeddings\":8192}"),
         RS_ERR_FORMAT, "'rope_scaling.low_freq_factor' is missing", NULL},
        {BASE(",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8,\"low_freq_factor\":4,"
              "\"high_freq_factor\":4,\"original_max_position_embeddings\":8192}"),
         RS_ERR_RANGE, "'rope_scaling.high_freq_factor' = 4 must exceed", NULL},
        {BASE(",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8,\"low_freq_factor\":1,"
              "\"high_freq_factor\":4}"),
         RS_ERR_FORMAT, "'rope_scaling.original_max_position_embeddings' is missing", NULL},
        {BASE(",\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4,\"beta_fast\":\"32\"}"),
         RS_ERR_FORMAT, "'rope_scaling.beta_fast' is a string", NULL},
        {BASE(",\"rope_parameters\":[]"), RS_ERR_FORMAT, "'rope_parameters' is a array", NULL},
        {BASE(",\"rope_parameters\":{\"rope_theta\":0,\"rope_type\":\"default\"}"), RS_ERR_RANGE,
         "'rope_parameters.rope_theta' = 0", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rs_hf_config c;
        rs_error err = {0};
        const bad_case *b = &cases[i];
        rs_status s = rs_hf_config_parse(&c, b->json, strlen(b->json), NULL, &err);
        if (s != b->want || !strstr(err.msg, b->n1) || (b->n2 && !strstr(err.msg, b->n2)))
            fail_msg("%s\n  got %d: %s\n  want %d '%s' '%s'", b->json, (int)s, err.msg,
                     (int)b->want, b->n1, b->n2 ? b->n2 : "");
        assert_non_null(strstr(err.msg, "config.json: "));
        assert_null(strchr(err.msg, '\n'));
    }
    /* a file: messages name the path */
    rs_hf_config c;
    rs_error err = {0};
    const char *path = tu_tmp("bad_config.json");
    const char *text = BASE(",\"mlp_bias\":null,\"num_key_value_heads\":5");
    assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
    assert_int_equal(rs_hf_config_load(&c, path, &err), RS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(rs_hf_config_load(&c, "/nonexistent/config.json", &err), RS_ERR_IO);
}

/* Replays the committed fuzz seeds and regressions: clean success or clean error. */
static void test_fuzz_regressions(void **state) {
    (void)state;
    const char *sub[] = {"fuzz/seeds/hf_config", "fuzz/regress/hf_config"};
    for (int k = 0; k < 2; k++) {
        char d[4096];
        snprintf(d, sizeof d, "%s", tu_tests(sub[k]));
        DIR *dir = opendir(d);
        if (!dir) continue;
        struct dirent *e;
        while ((e = readdir(dir))) {
            if (e->d_name[0] == '.' || strstr(e->d_name, ".md")) continue;
            char p[8192];
            snprintf(p, sizeof p, "%s/%s", d, e->d_name);
            size_t n;
            char *text = tu_read_file(p, &n);
            assert_non_null(text);
            char *copy = malloc(n ? n : 1); /* exact size: ASan sees over-reads */
            assert_non_null(copy);
            memcpy(copy, text, n);
            rs_hf_config c;
            rs_error err = {0};
            rs_status s = rs_hf_config_parse(&c, copy, n, p, &err);
            if (k == 0 && s != RS_OK) fail_msg("seed %s: %s", e->d_name, err.msg);
            if (s != RS_OK) assert_null(strchr(err.msg, '\n')); /* one line */
            assert_true(s == RS_OK || s == RS_ERR_FORMAT || s == RS_ERR_RANGE ||
                        s == RS_ERR_UNSUPPORTED);
            free(copy);
            free(text);
        }
        closedir(dir);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tinystories),      cmocka_unit_test(test_defaults_and_variants),
        cmocka_unit_test(test_rope_scaling),     cmocka_unit_test(test_errors),
        cmocka_unit_test(test_fuzz_regressions),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed ? failed : shared_missing ? 77 : 0;
}

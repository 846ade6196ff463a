/* test_hf_model.c — the HF folder -> GGUF-named view.
 *
 * References: tensor names, shapes and metadata of TinyStories-656K.f16.gguf
 * (written by llama.cpp's converter from the same weights; values listed by a
 * standalone Python GGUF dump when this test was written) and, when the GGUF
 * reader is available, that file's F16 tensors bit for bit. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtype/fp16.h"
#include "io/gguf.h"
#include "io/hf_model.h"

#define TS_DIR "models/TinyStories-656K-hf"

static int shared_missing;

static const char *shared_or_skip(const char *rel) {
    const char *p = tu_shared(rel);
    if (!p) {
        shared_missing = 1;
        skip();
    }
    return p;
}

/* ---- names ------------------------------------------------------------------------- */

static void test_name_mapping(void **state) {
    (void)state;
    static const struct {
        const char *hf, *gguf;
        long layer;
    } ok[] = {
        {"model.embed_tokens.weight", "token_embd.weight", -1},
        {"model.norm.weight", "output_norm.weight", -1},
        {"lm_head.weight", "output.weight", -1},
        {"model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight", 0},
        {"model.layers.3.self_attn.q_proj.weight", "blk.3.attn_q.weight", 3},
        {"model.layers.3.self_attn.q_proj.bias", "blk.3.attn_q.bias", 3},
        {"model.layers.10.self_attn.k_proj.weight", "blk.10.attn_k.weight", 10},
        {"model.layers.10.self_attn.k_proj.bias", "blk.10.attn_k.bias", 10},
        {"model.layers.2.self_attn.v_proj.weight", "blk.2.attn_v.weight", 2},
        {"model.layers.2.self_attn.v_proj.bias", "blk.2.attn_v.bias", 2},
        {"model.layers.2.self_attn.o_proj.weight", "blk.2.attn_output.weight", 2},
        {"model.layers.79.post_attention_layernorm.weight", "blk.79.ffn_norm.weight", 79},
        {"model.layers.1.mlp.gate_proj.weight", "blk.1.ffn_gate.weight", 1},
        {"model.layers.1.mlp.up_proj.weight", "blk.1.ffn_up.weight", 1},
        {"model.layers.1.mlp.down_proj.weight", "blk.1.ffn_down.weight", 1},
        {"model.layers.999999.mlp.down_proj.bias", "blk.999999.ffn_down.bias", 999999},
    };
    char out[128];
    long layer;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (!rs_hf_tensor_name_to_gguf(ok[i].hf, out, sizeof out, &layer)) fail_msg("%s", ok[i].hf);
        assert_string_equal(out, ok[i].gguf);
        assert_int_equal(layer, ok[i].layer);
    }
    static const char *const bad[] = {
        "model.layers.01.mlp.up_proj.weight",
        "model.layers.-1.mlp.up_proj.weight",
        "model.layers..mlp.up_proj.weight",
        "model.layers.1234567.mlp.up_proj.weight",
        "model.layers.1.mlp.fc1.weight",
        "model.layers.1.input_layernorm.bias",
        "model.layers.1.self_attn.rotary_emb.inv_freq",
        "model.embed_tokens.bias",
        "lm_head.weight.x",
        "vision_tower.blocks.0.weight",
        "model.layers.1",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (rs_hf_tensor_name_to_gguf(bad[i], out, sizeof out, &layer))
            fail_msg("mapped %s", bad[i]);
    /* output too small */
    assert_false(rs_hf_tensor_name_to_gguf("model.layers.1.mlp.up_proj.weight", out, 8, &layer));
}

/* ---- the TinyStories folder ----------------------------------------------------------- */

typedef struct gguf_fact {
    const char *name;
    int64_t ne0, ne1;
} gguf_fact;

/* The 20 tensors of TinyStories-656K.f16.gguf (ne in GGUF order); no output.weight. */
static const gguf_fact ts_gguf[] = {
    {"token_embd.weight", 128, 2048},       {"output_norm.weight", 128, 1},
    {"blk.0.attn_norm.weight", 128, 1},     {"blk.0.ffn_down.weight", 384, 128},
    {"blk.0.ffn_gate.weight", 128, 384},    {"blk.0.ffn_up.weight", 128, 384},
    {"blk.0.ffn_norm.weight", 128, 1},      {"blk.0.attn_k.weight", 128, 64},
    {"blk.0.attn_output.weight", 128, 128}, {"blk.0.attn_q.weight", 128, 128},
    {"blk.0.attn_v.weight", 128, 64},       {"blk.1.attn_norm.weight", 128, 1},
    {"blk.1.ffn_down.weight", 384, 128},    {"blk.1.ffn_gate.weight", 128, 384},
    {"blk.1.ffn_up.weight", 128, 384},      {"blk.1.ffn_norm.weight", 128, 1},
    {"blk.1.attn_k.weight", 128, 64},       {"blk.1.attn_output.weight", 128, 128},
    {"blk.1.attn_q.weight", 128, 128},      {"blk.1.attn_v.weight", 128, 64},
};

static void expect_u32(const rs_meta *m, const char *key, uint64_t want) {
    const rs_value *v = rs_meta_find(m, key);
    if (!v) fail_msg("missing %s", key);
    assert_int_equal(v->type, RS_V_U32); /* the type llama.cpp's converter writes */
    assert_int_equal(v->u, want);
}

static void expect_f32(const rs_meta *m, const char *key, float want) {
    const rs_value *v = rs_meta_find(m, key);
    if (!v) fail_msg("missing %s", key);
    assert_int_equal(v->type, RS_V_F32);
    assert_true(v->f == (double)want);
}

static void expect_str(const rs_meta *m, const char *key, const char *want) {
    rs_str s;
    rs_error err;
    if (rs_meta_get_str(m, key, &s, &err)) fail_msg("%s", err.msg);
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.ptr, want, s.len);
}

static void check_ts_view(const rs_model_file *mf) {
    const rs_meta *m = mf->meta;
    assert_int_equal(mf->format, RS_FORMAT_HF);
    assert_int_equal(mf->gguf_version, 0);
    /* values as in the GGUF, except general.name (the folder) and file_type (F32 here) */
    expect_str(m, "general.architecture", "llama");
    expect_u32(m, "llama.block_count", 2);
    expect_u32(m, "llama.context_length", 512);
    expect_u32(m, "llama.embedding_length", 128);
    expect_u32(m, "llama.feed_forward_length", 384);
    expect_u32(m, "llama.attention.head_count", 8);
    expect_u32(m, "llama.attention.head_count_kv", 4);
    expect_f32(m, "llama.rope.freq_base", 10000.0f);
    expect_f32(m, "llama.attention.layer_norm_rms_epsilon", 9.999999974752427e-07f);
    expect_u32(m, "general.file_type", 0);
    expect_u32(m, "llama.vocab_size", 2048);
    expect_u32(m, "llama.rope.dimension_count", 16);
    assert_null(rs_meta_find(m, "llama.attention.key_length")); /* no head_dim in config */
    assert_null(rs_meta_find(m, "llama.rope.scaling.type"));
    bool neox;
    rs_error err;
    assert_int_equal(rs_meta_get_bool(m, "rusty.rope_neox", &neox, &err), RS_OK);
    assert_true(neox);

    assert_int_equal(mf->n_tensors, 20);
    for (size_t i = 0; i < sizeof ts_gguf / sizeof ts_gguf[0]; i++) {
        const rs_tensor_info *t = rs_hf_model_find(mf, ts_gguf[i].name);
        if (!t) fail_msg("missing %s", ts_gguf[i].name);
        assert_int_equal(t->type, RS_DTYPE_F32);
        assert_int_equal(t->ne[0], ts_gguf[i].ne0);
        assert_int_equal(t->ne[1], ts_gguf[i].ne1);
        assert_int_equal(t->n_dims, ts_gguf[i].ne1 == 1 ? 1 : 2);
    }
    assert_null(rs_hf_model_find(mf, "output.weight")); /* tied, like the GGUF */
    assert_null(rs_hf_model_find(mf, "lm_head.weight"));
    const rs_hf_model *hm = mf->impl;
    assert_int_equal(hm->n_unmapped, 0);
    /* the embedding is the stored lm_head, zero-copy */
    assert_ptr_equal(rs_hf_model_find(mf, "token_embd.weight")->data,
                     rs_safetensors_set_find(&hm->weights, "lm_head.weight")->data);
}

static void test_tinystories_view(void **state) {
    (void)state;
    const char *dir = shared_or_skip(TS_DIR);
    rs_model_file mf;
    rs_error err = {0};
    if (rs_hf_model_open(&mf, dir, &err)) fail_msg("%s", err.msg);
    check_ts_view(&mf);
    expect_str(mf.meta, "general.name", "TinyStories-656K-hf");
    assert_int_equal(mf.file_bytes, 2626168);
    rs_hf_model_close(&mf);
    rs_hf_model_close(&mf); /* idempotent */
}

/* HF row h*hd + j*(hd/2) + i holds GGUF row h*hd + 2*i + j (models README, "q/k layout"). */
static int64_t gguf_row_to_hf(int64_t r, int64_t hd) {
    int64_t h = r / hd, k = r % hd, i = k / 2, j = k % 2;
    return h * hd + j * (hd / 2) + i;
}

/* Every tensor of the GGUF F16 file equals the HF view's F32 tensor of the same name:
 * F16 tensors after rounding to F16 (q/k rows un-permuted), F32 ones bit for bit. */
static void test_vs_gguf(void **state) {
    (void)state;
    const char *dir = shared_or_skip(TS_DIR);
    char dirbuf[4096];
    snprintf(dirbuf, sizeof dirbuf, "%s", dir);
    const char *gpath = shared_or_skip("models/TinyStories-656K.f16.gguf");
    rs_gguf g;
    rs_model_file mf;
    rs_error err = {0};
    if (rs_gguf_open(&g, gpath, &err)) fail_msg("%s", err.msg);
    if (rs_hf_model_open(&mf, dirbuf, &err)) fail_msg("%s", err.msg);
    assert_int_equal(g.n_tensors, mf.n_tensors);
    const int64_t hd = 16;
    int n_f16 = 0, n_perm = 0;
    for (uint64_t k = 0; k < g.n_tensors; k++) {
        const rs_tensor_info *gt = &g.tensors[k];
        const rs_tensor_info *ht = rs_hf_model_find(&mf, gt->name);
        if (!ht) fail_msg("HF view lacks %s", gt->name);
        assert_int_equal(gt->n_dims, ht->n_dims);
        assert_memory_equal(gt->ne, ht->ne, sizeof gt->ne);
        assert_int_equal(ht->type, RS_DTYPE_F32);
        int64_t cols = gt->ne[0], rows = rs_tensor_nelements(gt) / cols;
        bool perm = strstr(gt->name, "attn_q.") || strstr(gt->name, "attn_k.");
        n_perm += perm;
        for (int64_t r = 0; r < rows; r++) {
            int64_t hr = perm ? gguf_row_to_hf(r, hd) : r;
            for (int64_t c = 0; c < cols; c++) {
                float x;
                memcpy(&x, (const char *)ht->data + 4 * (hr * cols + c), 4);
                if (gt->type == RS_DTYPE_F16) {
                    rs_fp16 h;
                    memcpy(&h, (const char *)gt->data + 2 * (r * cols + c), 2);
                    if (h != rs_f32_to_fp16(x))
                        fail_msg("%s row %lld col %lld: gguf %04x, hf %g", gt->name, (long long)r,
                                 (long long)c, h, (double)x);
                } else {
                    assert_int_equal(gt->type, RS_DTYPE_F32);
                    assert_memory_equal((const char *)gt->data + 4 * (r * cols + c), &x, 4);
                }
            }
        }
        n_f16 += gt->type == RS_DTYPE_F16;
    }
    assert_int_equal(n_f16, 15);
    assert_int_equal(n_perm, 4);
    rs_hf_model_close(&mf);
    rs_gguf_close(&g);
}

/* ---- synthetic folders ------------------------------------------------------------------- */

static void write_text(const char *path, const char *text) {
    assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
}

static char *folder(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s", tu_tmp(name));
    mkdir(buf, 0755);
    return buf;
}

/* Writes dir/config.json and dir/model.safetensors holding `names` (F32, shape [2, 4]). */
static void make_folder(const char *dir, const char *config, const char *const *names, size_t n) {
    char p[4200];
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, config);
    static float data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    rs_tensor_info t[32];
    assert_true(n <= 32);
    for (size_t i = 0; i < n; i++)
        t[i] = (rs_tensor_info){.name = names[i],
                                .type = RS_DTYPE_F32,
                                .n_dims = 2,
                                .ne = {4, 2, 1, 1},
                                .nbytes = 32,
                                .data = data};
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    rs_error err = {0};
    if (rs_safetensors_write(p, NULL, t, n, &err)) fail_msg("%s", err.msg);
}

#define QWEN_CONFIG(extra)                                                                         \
    "{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":128,"      \
    "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"                 \
    "\"head_dim\":16,\"vocab_size\":100,\"max_position_embeddings\":4096,"                         \
    "\"rope_theta\":1000000.0,\"rms_norm_eps\":1e-6,\"torch_dtype\":\"bfloat16\","                 \
    "\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4.0,\"original_max_position_embeddings\":"     \
    "32768}" extra "}"

static void test_qwen2_folder(void **state) {
    (void)state;
    const char *names[] = {
        "model.embed_tokens.weight",
        "lm_head.weight",
        "model.norm.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.q_proj.bias",
        "model.layers.1.self_attn.rotary_emb.inv_freq",
        "visual.merger.weight",
    };
    char *dir = folder("qwen2");
    make_folder(dir, QWEN_CONFIG(""), names, 7);
    rs_model_file mf;
    rs_error err = {0};
    if (rs_hf_model_open(&mf, dir, &err)) fail_msg("%s", err.msg);
    const rs_meta *m = mf.meta;
    expect_str(m, "general.architecture", "qwen2");
    expect_str(m, "general.name", strrchr(dir, '/') + 1); /* the folder name */
    expect_u32(m, "qwen2.block_count", 2);
    expect_u32(m, "qwen2.attention.head_count_kv", 2);
    expect_u32(m, "qwen2.attention.key_length", 16);
    expect_u32(m, "qwen2.attention.value_length", 16);
    expect_u32(m, "qwen2.rope.dimension_count", 16);
    expect_f32(m, "qwen2.rope.freq_base", 1e6f);
    expect_u32(m, "general.file_type", 32); /* LLAMA_FTYPE_MOSTLY_BF16 */
    expect_str(m, "qwen2.rope.scaling.type", "yarn");
    expect_f32(m, "qwen2.rope.scaling.factor", 4.0f);
    expect_u32(m, "qwen2.rope.scaling.original_context_length", 32768);
    assert_null(rs_meta_find(m, "rusty.rope_neox")); /* NeoX by architecture */
    /* untied: both; inv_freq dropped; the unknown one kept under its HF name */
    assert_int_equal(mf.n_tensors, 6);
    static const char *const want[] = {"token_embd.weight",  "output.weight",
                                       "output_norm.weight", "blk.0.attn_q.weight",
                                       "blk.0.attn_q.bias",  "visual.merger.weight"};
    for (size_t i = 0; i < 6; i++) {
        const rs_tensor_info *t = rs_hf_model_find(&mf, want[i]);
        if (!t) fail_msg("missing %s", want[i]);
        assert_int_equal(t->ne[0], 4);
        assert_int_equal(t->ne[1], 2);
    }
    const rs_hf_model *hm = mf.impl;
    assert_int_equal(hm->n_unmapped, 1);
    assert_string_equal(hm->unmapped[0], "visual.merger.weight");
    rs_hf_model_close(&mf);

    /* tied with both stored: token_embd from embed_tokens, no output.weight */
    make_folder(dir, QWEN_CONFIG(",\"tie_word_embeddings\":true"), names, 5);
    if (rs_hf_model_open(&mf, dir, &err)) fail_msg("%s", err.msg);
    assert_null(rs_hf_model_find(&mf, "output.weight"));
    assert_non_null(rs_hf_model_find(&mf, "token_embd.weight"));
    assert_int_equal(mf.n_tensors, 4);
    rs_hf_model_close(&mf);
    /* tied with only lm_head stored (no alias entry): it becomes token_embd */
    make_folder(dir, QWEN_CONFIG(",\"tie_word_embeddings\":true"), names + 1, 2);
    if (rs_hf_model_open(&mf, dir, &err)) fail_msg("%s", err.msg);
    assert_non_null(rs_hf_model_find(&mf, "token_embd.weight"));
    assert_null(rs_hf_model_find(&mf, "output.weight"));
    rs_hf_model_close(&mf);
}

static void test_llama3_meta(void **state) {
    (void)state;
    const char *cfg =
        "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":2048,\"intermediate_size\":8192,"
        "\"num_hidden_layers\":16,\"num_attention_heads\":32,\"num_key_value_heads\":8,"
        "\"head_dim\":64,\"vocab_size\":128256,\"max_position_embeddings\":131072,"
        "\"rope_theta\":500000.0,\"rms_norm_eps\":1e-05,\"torch_dtype\":\"bfloat16\","
        "\"rope_scaling\":{\"factor\":32.0,\"high_freq_factor\":4.0,\"low_freq_factor\":1.0,"
        "\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"},"
        "\"tie_word_embeddings\":true,\"eos_token_id\":[128001,128008,128009]}";
    rs_hf_config c;
    rs_error err = {0};
    assert_int_equal(rs_hf_config_parse(&c, cfg, strlen(cfg), NULL, &err), RS_OK);
    rs_meta m;
    rs_meta_init(&m);
    assert_int_equal(rs_hf_config_to_meta(&c, "Llama-3.2-1B", &m, &err), RS_OK);
    expect_str(&m, "general.name", "Llama-3.2-1B");
    expect_u32(&m, "llama.context_length", 131072);
    expect_u32(&m, "llama.attention.key_length", 64); /* given in config */
    expect_f32(&m, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    expect_str(&m, "llama.rope.scaling.type", "llama3");
    expect_f32(&m, "llama.rope.scaling.factor", 32.0f);
    expect_f32(&m, "llama.rope.scaling.low_freq_factor", 1.0f);
    expect_f32(&m, "llama.rope.scaling.high_freq_factor", 4.0f);
    expect_u32(&m, "llama.rope.scaling.original_context_length", 8192);
    bool neox;
    assert_int_equal(rs_meta_get_bool(&m, "rusty.rope_neox", &neox, &err), RS_OK);
    assert_true(neox);
    rs_meta_free(&m);

    /* Mistral maps to llama; an unknown architecture is refused by name */
    snprintf(c.architecture, sizeof c.architecture, "MistralForCausalLM");
    assert_string_equal(rs_hf_gguf_arch(&c), "llama");
    snprintf(c.architecture, sizeof c.architecture, "GPT2LMHeadModel");
    rs_meta_init(&m);
    assert_int_equal(rs_hf_config_to_meta(&c, "x", &m, &err), RS_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "'GPT2LMHeadModel'"));
    rs_meta_free(&m);
}

static void test_sharded_view(void **state) {
    (void)state;
    const char *src = shared_or_skip(TS_DIR);
    char srcdir[4096], p[4400];
    snprintf(srcdir, sizeof srcdir, "%s", src);
    rs_safetensors one;
    rs_error err = {0};
    snprintf(p, sizeof p, "%s/model.safetensors", srcdir);
    assert_int_equal(rs_safetensors_open(&one, p, &err), RS_OK);
    char *dir = folder("TinyStories-sharded");
    /* config copied; shard 1 = lm_head + aliasing metadata, shard 2 = the rest */
    snprintf(p, sizeof p, "%s/config.json", srcdir);
    size_t n;
    char *cfg = tu_read_file(p, &n);
    assert_non_null(cfg);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, cfg);
    free(cfg);
    snprintf(p, sizeof p, "%s/a.safetensors", dir);
    assert_int_equal(rs_safetensors_write(p, &one.meta, one.tensors, 1, &err), RS_OK);
    snprintf(p, sizeof p, "%s/b.safetensors", dir);
    assert_int_equal(rs_safetensors_write(p, NULL, one.tensors + 1, one.n_stored - 1, &err), RS_OK);
    char idx[8192];
    size_t at = (size_t)snprintf(idx, sizeof idx, "{\"metadata\":{},\"weight_map\":{");
    for (uint64_t i = 0; i < one.n_stored; i++)
        at += (size_t)snprintf(idx + at, sizeof idx - at, "%s\"%s\":\"%s.safetensors\"",
                               i ? "," : "", one.tensors[i].name, i ? "b" : "a");
    snprintf(idx + at, sizeof idx - at, "}}");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_text(p, idx);

    rs_model_file mf;
    if (rs_hf_model_open(&mf, dir, &err)) fail_msg("%s", err.msg);
    check_ts_view(&mf);
    const rs_hf_model *hm = mf.impl;
    assert_int_equal(hm->weights.n_shards, 2);
    assert_int_equal(mf.file_bytes,
                     hm->weights.shards[0].map.size + hm->weights.shards[1].map.size);
    /* same bytes as the single-file tensors */
    for (uint64_t i = 0; i < mf.n_tensors; i++) {
        const rs_tensor_info *t = &mf.tensors[i];
        assert_true(t->nbytes > 0);
    }
    const rs_tensor_info *q = rs_hf_model_find(&mf, "blk.1.attn_q.weight");
    assert_memory_equal(q->data,
                        rs_safetensors_find(&one, "model.layers.1.self_attn.q_proj.weight")->data,
                        q->nbytes);
    rs_hf_model_close(&mf);
    rs_safetensors_close(&one);
}

static void test_errors(void **state) {
    (void)state;
    rs_model_file mf;
    rs_error err = {0};
    char *dir = folder("hf_errors");
    /* no config.json */
    assert_int_equal(rs_hf_model_open(&mf, dir, &err), RS_ERR_IO);
    assert_non_null(strstr(err.msg, "config.json"));
    assert_null(mf.impl);
    /* unsupported architecture */
    const char *names[] = {"model.layers.5.mlp.up_proj.weight", "token_embd.weight",
                           "model.embed_tokens.weight"};
    make_folder(dir, "{\"architectures\":[\"GPT2LMHeadModel\"]}", names, 1);
    assert_int_equal(rs_hf_model_open(&mf, dir, &err), RS_ERR_FORMAT); /* config lacks sizes */
    make_folder(
        dir,
        "{\"architectures\":[\"GPT2LMHeadModel\"],\"hidden_size\":8,\"intermediate_size\":8,"
        "\"num_hidden_layers\":2,\"num_attention_heads\":2,\"vocab_size\":8,"
        "\"max_position_embeddings\":8}",
        names, 1);
    assert_int_equal(rs_hf_model_open(&mf, dir, &err), RS_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "GPT2LMHeadModel"));
    /* a block index beyond num_hidden_layers */
    const char *cfg = "{\"model_type\":\"llama\",\"hidden_size\":8,\"intermediate_size\":8,"
                      "\"num_hidden_layers\":2,\"num_attention_heads\":2,\"vocab_size\":8,"
                      "\"max_position_embeddings\":8}";
    make_folder(dir, cfg, names, 1);
    assert_int_equal(rs_hf_model_open(&mf, dir, &err), RS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "'model.layers.5.mlp.up_proj.weight' belongs to block 5"));
    assert_non_null(strstr(err.msg, "2 layers"));
    /* two HF names for one GGUF name */
    make_folder(dir, cfg, names + 1, 2);
    assert_int_equal(rs_hf_model_open(&mf, dir, &err), RS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "two tensors map to the GGUF name 'token_embd.weight'"));
    /* config but no weights */
    char p[4200];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    assert_int_equal(rs_hf_model_open(&mf, dir, &err), RS_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "holds neither"));
    /* a corrupt weights file: the safetensors error comes through with its path */
    assert_int_equal(tu_write_file(p, "\x02\0\0\0\0\0\0\0{}", 10), 0);
    assert_int_equal(rs_hf_model_open(&mf, dir, &err), RS_OK); /* empty but valid */
    assert_int_equal(mf.n_tensors, 0);
    rs_hf_model_close(&mf);
    assert_int_equal(tu_write_file(p, "\x09\0\0\0\0\0\0\0{}", 10), 0);
    assert_int_equal(rs_hf_model_open(&mf, dir, &err), RS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "model.safetensors: header length 9 runs past the end"));
    assert_null(mf.impl);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_mapping),     cmocka_unit_test(test_qwen2_folder),
        cmocka_unit_test(test_llama3_meta),      cmocka_unit_test(test_errors),
        cmocka_unit_test(test_tinystories_view), cmocka_unit_test(test_sharded_view),
        cmocka_unit_test(test_vs_gguf),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed ? failed : shared_missing ? 77 : 0;
}

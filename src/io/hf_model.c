/* hf_model.c — Hugging Face model folder -> GGUF-named model view (see hf_model.h). */
#include "io/hf_model.h"

#include "tokenizer/tokenizer.h"

#include "io/json_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- tensor names -------------------------------------------------------------------- */

typedef struct name_pair {
    const char *hf, *gguf;
} name_pair;

static const name_pair top_names[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};

/* Suffixes after "model.layers.N." */
static const name_pair layer_names[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.o_proj.bias", "attn_output.bias"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.gate_proj.bias", "ffn_gate.bias"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.up_proj.bias", "ffn_up.bias"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    {"mlp.down_proj.bias", "ffn_down.bias"},
};

#define N_OF(a)      (sizeof(a) / sizeof((a)[0]))
#define LAYER_PREFIX "model.layers."

/* Parses the decimal block index at *s (no sign, no leading zero, at most 6 digits)
 * followed by '.'; returns the index and advances *s past the '.', or -1. */
static long parse_layer(const char **s) {
    const char *p = *s;
    long v = 0;
    int nd = 0;
    while (*p >= '0' && *p <= '9' && nd < 7) v = v * 10 + (*p++ - '0'), nd++;
    if (nd == 0 || nd > 6 || *p != '.' || ((*s)[0] == '0' && nd > 1)) return -1;
    *s = p + 1;
    return v;
}

bool rs_hf_tensor_name_to_gguf(const char *hf, char *out, size_t cap, long *layer) {
    *layer = -1;
    for (size_t i = 0; i < N_OF(top_names); i++) {
        if (strcmp(hf, top_names[i].hf) == 0) {
            if (strlen(top_names[i].gguf) >= cap) return false;
            memcpy(out, top_names[i].gguf, strlen(top_names[i].gguf) + 1);
            return true;
        }
    }
    if (strncmp(hf, LAYER_PREFIX, strlen(LAYER_PREFIX)) != 0) return false;
    const char *rest = hf + strlen(LAYER_PREFIX);
    long n = parse_layer(&rest);
    if (n < 0) return false;
    for (size_t i = 0; i < N_OF(layer_names); i++) {
        if (strcmp(rest, layer_names[i].hf) == 0) {
            int w = snprintf(out, cap, "blk.%ld.%s", n, layer_names[i].gguf);
            if (w < 0 || (size_t)w >= cap) return false;
            *layer = n;
            return true;
        }
    }
    return false;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* ---- metadata -------------------------------------------------------------------------- */

const char *rs_hf_gguf_arch(const rs_hf_config *c) {
    static const name_pair archs[] = {
        {"LlamaForCausalLM", "llama"},
        {"LLaMAForCausalLM", "llama"}, /* early checkpoints' spelling */
        {"MistralForCausalLM", "llama"},
        {"Qwen2ForCausalLM", "qwen2"},
    };
    static const name_pair types[] = {{"llama", "llama"}, {"mistral", "llama"}, {"qwen2", "qwen2"}};
    if (c->architecture[0]) {
        for (size_t i = 0; i < N_OF(archs); i++)
            if (strcmp(c->architecture, archs[i].hf) == 0) return archs[i].gguf;
        return NULL;
    }
    for (size_t i = 0; i < N_OF(types); i++)
        if (strcmp(c->model_type, types[i].hf) == 0) return types[i].gguf;
    return NULL;
}

/* Small writer over rs_meta: keys "<arch>.<suffix>", first failure kept. */
typedef struct meta_out {
    rs_meta *m;
    const char *arch;
    rs_status st;
} meta_out;

static const char *akey(meta_out *o, char *buf, size_t cap, const char *suffix) {
    snprintf(buf, cap, "%s.%s", o->arch, suffix);
    return buf;
}

static void put_u32(meta_out *o, const char *suffix, int64_t v) {
    char k[128];
    if (!o->st) o->st = rs_meta_set_uint(o->m, akey(o, k, sizeof k, suffix), RS_V_U32, (uint64_t)v);
}

static void put_f32(meta_out *o, const char *suffix, double v) {
    char k[128];
    if (!o->st) o->st = rs_meta_set_float(o->m, akey(o, k, sizeof k, suffix), RS_V_F32, v);
}

static void put_str(meta_out *o, const char *key, const char *s) {
    if (!o->st) o->st = rs_meta_set_str(o->m, key, s, strlen(s));
}

/* <arch>.rope.scaling.* as convert_hf_to_gguf writes them for linear and yarn;
 * llama3 and dynamic (which llama.cpp handles differently: llama3 through a
 * generated rope_freqs.weight tensor, dynamic not at all) keep their HF parameters. */
static void put_scaling(meta_out *o, const rs_rope_scaling *r) {
    char k[128];
    static const char *const type_names[] = {"none", "linear", "dynamic", "llama3", "yarn"};
    if (r->type == RS_ROPE_SCALING_NONE) return;
    put_str(o, akey(o, k, sizeof k, "rope.scaling.type"), type_names[r->type]);
    put_f32(o, "rope.scaling.factor", r->factor);
    if (r->original_max_position)
        put_u32(o, "rope.scaling.original_context_length", r->original_max_position);
    if (r->type == RS_ROPE_SCALING_LLAMA3) {
        put_f32(o, "rope.scaling.low_freq_factor", r->low_freq_factor);
        put_f32(o, "rope.scaling.high_freq_factor", r->high_freq_factor);
    }
    if (r->type == RS_ROPE_SCALING_YARN) {
        if (r->beta_fast > 0) put_f32(o, "rope.scaling.yarn_beta_fast", r->beta_fast);
        if (r->beta_slow > 0) put_f32(o, "rope.scaling.yarn_beta_slow", r->beta_slow);
    }
}

rs_status rs_hf_config_to_meta(const rs_hf_config *c, const char *name, rs_meta *meta,
                               rs_error *err) {
    const char *arch = rs_hf_gguf_arch(c);
    if (!arch)
        return rs_error_set(err, RS_ERR_UNSUPPORTED,
                            "architecture '%s' (model_type '%s') is not supported "
                            "(LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)",
                            c->architecture, c->model_type);
    meta_out o = {meta, arch, RS_OK};
    put_str(&o, "general.architecture", arch);
    put_str(&o, "general.name", name);
    put_u32(&o, "block_count", c->num_hidden_layers);
    put_u32(&o, "context_length", c->max_position_embeddings);
    put_u32(&o, "embedding_length", c->hidden_size);
    put_u32(&o, "feed_forward_length", c->intermediate_size);
    put_u32(&o, "attention.head_count", c->num_attention_heads);
    put_u32(&o, "attention.head_count_kv", c->num_key_value_heads);
    put_f32(&o, "rope.freq_base", c->rope_theta);
    put_f32(&o, "attention.layer_norm_rms_epsilon", c->rms_norm_eps);
    if (c->head_dim_given) { /* convert_hf_to_gguf writes these whenever config has head_dim */
        put_u32(&o, "attention.key_length", c->head_dim);
        put_u32(&o, "attention.value_length", c->head_dim);
    }
    int64_t ftype = c->torch_dtype == RS_DTYPE_F32    ? 0  /* LLAMA_FTYPE_ALL_F32 */
                    : c->torch_dtype == RS_DTYPE_F16  ? 1  /* LLAMA_FTYPE_MOSTLY_F16 */
                    : c->torch_dtype == RS_DTYPE_BF16 ? 32 /* LLAMA_FTYPE_MOSTLY_BF16 */
                                                      : -1;
    if (ftype >= 0 && !o.st)
        o.st = rs_meta_set_uint(meta, "general.file_type", RS_V_U32, (uint64_t)ftype);
    put_u32(&o, "vocab_size", c->vocab_size);
    put_u32(&o, "rope.dimension_count", c->head_dim);
    put_scaling(&o, &c->rope_scaling);
    /* HF q/k rows are laid out for rotate-half RoPE; qwen2 is NeoX by architecture */
    if (strcmp(arch, "llama") == 0 && !o.st) o.st = rs_meta_set_bool(meta, "rusty.rope_neox", true);
    if (o.st) return rs_error_set(err, o.st, "out of memory building metadata");
    return RS_OK;
}

/* The tokenizer (tokenizer.json + tokenizer_config.json, or tokenizer.model) as
 * tokenizer.ggml.* keys, exactly what a GGUF conversion carries. A folder with
 * neither file is still a valid weights folder: the view then has no tokenizer. */
static rs_status hf_tokenizer_to_meta(const char *dir, const rs_hf_config *c, rs_meta *meta,
                                      rs_error *err) {
    (void)c;
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    bool have = stat(path, &st) == 0;
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    have = have || stat(path, &st) == 0;
    return have ? rs_tokenizer_hf_to_meta(dir, meta, err) : RS_OK;
}

/* ---- tensors ---------------------------------------------------------------------------- */

static rs_status map_tensors(rs_hf_model *m, rs_error *err) {
    const rs_safetensors_set *w = &m->weights;
    rs_arena *a = &m->meta.arena;
    uint64_t n = w->n_tensors ? w->n_tensors : 1;
    m->tensors = rs_arena_calloc(a, n, sizeof *m->tensors);
    // NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers
    m->by_name = rs_arena_calloc(a, n, sizeof *m->by_name);
    m->unmapped = rs_arena_calloc(a, n, sizeof *m->unmapped);
    if (!m->tensors || !m->by_name || !m->unmapped)
        return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    bool tie = m->config.tie_word_embeddings;
    bool have_embd = rs_safetensors_set_find(w, "model.embed_tokens.weight") != NULL;
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        const rs_tensor_info *t = &w->tensors[i];
        bool is_head = strcmp(t->name, "lm_head.weight") == 0;
        if (ends_with(t->name, ".rotary_emb.inv_freq")) continue;
        if (tie && is_head && have_embd) continue; /* tied: lm_head is embed_tokens */
        char g[256];
        long layer;
        const char *name = t->name;
        if (tie && is_head) {
            name = "token_embd.weight"; /* only lm_head stored: it is the embedding */
        } else if (rs_hf_tensor_name_to_gguf(t->name, g, sizeof g, &layer)) {
            if (layer >= m->config.num_hidden_layers)
                return rs_error_set(err, RS_ERR_FORMAT,
                                    "tensor '%.200s' belongs to block %ld but config.json has %lld "
                                    "layers",
                                    t->name, layer, (long long)m->config.num_hidden_layers);
            name = rs_arena_strdup(a, g);
            if (!name) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
        } else {
            m->unmapped[m->n_unmapped++] = t->name;
        }
        m->tensors[m->n_tensors] = *t;
        m->tensors[m->n_tensors++].name = name;
    }
    for (uint64_t i = 0; i < m->n_tensors; i++) m->by_name[i] = &m->tensors[i];
    const char *dup;
    rs_tensor_sort_by_name(m->by_name, m->n_tensors, &dup);
    if (dup)
        return rs_error_set(err, RS_ERR_FORMAT, "two tensors map to the GGUF name '%.200s'", dup);
    return RS_OK;
}

/* Last path component without trailing slashes, into buf. */
static const char *folder_name(const char *dir, char *buf, size_t cap) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/') b--;
    size_t len = n - b < cap - 1 ? n - b : cap - 1;
    memcpy(buf, dir + b, len);
    buf[len] = '\0';
    return buf;
}

static void free_model(rs_hf_model *m) {
    rs_safetensors_set_close(&m->weights);
    rs_meta_free(&m->meta);
    free(m);
}

rs_status rs_hf_model_open(rs_model_file *mf, const char *dir, rs_error *err) {
    memset(mf, 0, sizeof *mf);
    rs_hf_model *m = calloc(1, sizeof *m);
    size_t plen = strlen(dir) + sizeof "/config.json";
    char *cfg_path = malloc(plen);
    if (!m || !cfg_path) {
        free(m);
        free(cfg_path);
        return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    }
    snprintf(cfg_path, plen, "%s/config.json", dir);
    rs_status s = rs_hf_config_load(&m->config, cfg_path, err);
    free(cfg_path);
    char name[256];
    if (!s && (s = rs_hf_config_to_meta(&m->config, folder_name(dir, name, sizeof name), &m->meta,
                                        err)) != RS_OK)
        rs_error_prefix(err, "%s/config.json", dir);
    if (!s) s = rs_safetensors_set_open(&m->weights, dir, err);
    if (!s) s = hf_tokenizer_to_meta(dir, &m->config, &m->meta, err);
    if (!s && (s = map_tensors(m, err)) != RS_OK) rs_error_prefix(err, "%s", dir);
    if (s) {
        rs_error_one_line(err);
        free_model(m);
        return s;
    }
    mf->format = RS_FORMAT_HF;
    mf->meta = &m->meta;
    mf->tensors = m->tensors;
    mf->n_tensors = m->n_tensors;
    mf->file_bytes = m->weights.file_bytes;
    mf->gguf_version = 0;
    mf->impl = m;
    return RS_OK;
}

void rs_hf_model_close(rs_model_file *mf) {
    if (mf->impl) free_model(mf->impl);
    memset(mf, 0, sizeof *mf);
}

const rs_tensor_info *rs_hf_model_find(const rs_model_file *mf, const char *name) {
    const rs_hf_model *m = mf->impl;
    return m ? rs_tensor_bsearch(m->by_name, m->n_tensors, name) : NULL;
}

/* hf_config.h — a Hugging Face config.json for Llama-family models, parsed and checked.
 *
 * Reads the keys transformers' LlamaConfig / MistralConfig / Qwen2Config define.
 * Required: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
 * vocab_size, max_position_embeddings, and architectures[0] or model_type.
 * Optional, with transformers' defaults: num_key_value_heads (= heads),
 * head_dim (= hidden / heads), rms_norm_eps (1e-6), rope_theta (10000),
 * rope_scaling (none), tie_word_embeddings / attention_bias / mlp_bias (false),
 * torch_dtype or dtype (absent: RS_DTYPE_COUNT), bos/eos_token_id (absent),
 * sliding_window (none). A key whose value is null counts as absent. Newer
 * configs' "rope_parameters" object (rope_theta + the scaling fields) is read
 * too when rope_theta / rope_scaling are absent. Unknown keys are ignored.
 *
 * Every value is type- and range-checked (positive sizes with sane upper bounds,
 * heads divisible by kv heads, hidden divisible by heads when head_dim is
 * absent, even head_dim for RoPE, token ids below vocab_size); a failure is one
 * line naming the key, e.g. "config.json: num_key_value_heads = 3 does not divide
 * num_attention_heads = 8". */
#ifndef RUSTY_HF_CONFIG_H
#define RUSTY_HF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "dtype/dtype.h"

#define RS_HF_MAX_EOS 16

typedef enum rs_rope_scaling_type {
    RS_ROPE_SCALING_NONE = 0, /* absent, null, or rope_type "default" */
    RS_ROPE_SCALING_LINEAR,
    RS_ROPE_SCALING_DYNAMIC, /* dynamic NTK */
    RS_ROPE_SCALING_LLAMA3,
    RS_ROPE_SCALING_YARN,
} rs_rope_scaling_type;

typedef struct rs_rope_scaling {
    rs_rope_scaling_type type;
    double factor;                 /* all types but NONE */
    double low_freq_factor;        /* llama3 */
    double high_freq_factor;       /* llama3 */
    int64_t original_max_position; /* llama3 (required), yarn/dynamic (0 if absent) */
    double beta_fast, beta_slow;   /* yarn; 0 if absent */
    double attention_factor;       /* yarn; 0 if absent */
} rs_rope_scaling;

typedef struct rs_hf_config {
    char architecture[128]; /* architectures[0], "" if absent */
    char model_type[64];    /* "" if absent */
    int64_t hidden_size;
    int64_t intermediate_size;
    int64_t num_hidden_layers;
    int64_t num_attention_heads;
    int64_t num_key_value_heads;
    int64_t head_dim;
    bool head_dim_given; /* config.json had head_dim */
    double rms_norm_eps;
    double rope_theta;
    rs_rope_scaling rope_scaling;
    int64_t vocab_size;
    int64_t max_position_embeddings;
    bool tie_word_embeddings;
    bool attention_bias;
    bool mlp_bias;
    rs_dtype torch_dtype; /* F32 / F16 / BF16 / F64; RS_DTYPE_COUNT when absent */
    int64_t bos_token_id; /* -1 when absent */
    int64_t eos_token_ids[RS_HF_MAX_EOS];
    size_t n_eos;            /* 0 when absent */
    int64_t sliding_window;  /* 0 when absent or null */
    bool use_sliding_window; /* Qwen2's switch; false when absent */
} rs_hf_config;

/* Parses config.json text of len bytes. `what` names the source in messages
 * (e.g. the file path; NULL means "config.json"). */
rs_status rs_hf_config_parse(rs_hf_config *c, const char *json, size_t len, const char *what,
                             rs_error *err);
/* Reads and parses a config.json file. */
rs_status rs_hf_config_load(rs_hf_config *c, const char *path, rs_error *err);

#endif

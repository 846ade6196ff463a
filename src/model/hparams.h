/* hparams.h — a Llama-family model's hyper-parameters, read from GGUF-named metadata.
 *
 * Works for .gguf files and HF folders alike (the HF view translates config.json
 * into the same keys, see io/model_file.h). Everything is validated here, once,
 * so the forward pass can trust the numbers. */
#ifndef RUSTY_HPARAMS_H
#define RUSTY_HPARAMS_H

#include <stdbool.h>

#include "backend/backend.h"
#include "core/status.h"
#include "io/meta.h"

typedef enum rs_arch {
    RS_ARCH_LLAMA = 1, /* Llama 1/2/3, TinyLlama, Mistral, SmolLM, ... */
    RS_ARCH_QWEN2 = 2, /* Llama + q/k/v bias, NeoX RoPE */
} rs_arch;

typedef enum rs_rope_scaling {
    RS_ROPE_SCALING_NONE = 0,
    RS_ROPE_SCALING_LINEAR = 1, /* positions divided by factor */
    RS_ROPE_SCALING_LLAMA3 = 2, /* Llama 3.1 frequency-dependent scaling */
} rs_rope_scaling;

typedef struct rs_hparams {
    rs_arch arch;
    char arch_name[32]; /* general.architecture */
    int n_vocab;        /* from the embedding tensor (set when binding weights) */
    int n_embd;
    int n_ff;
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;    /* attention.key_length, default n_embd / n_head */
    int n_ctx_train; /* context_length */
    float rms_eps;

    bool rope_neox;   /* rotate-half pairing (qwen2, or HF-layout llama weights) */
    int n_rot;        /* rope.dimension_count, default head_dim */
    double rope_base; /* rope.freq_base, default 10000 */
    rs_rope_scaling rope_scaling;
    double rope_factor;           /* linear / llama3 factor */
    double rope_low_freq_factor;  /* llama3 */
    double rope_high_freq_factor; /* llama3 */
    int rope_orig_ctx;            /* llama3: original context length */
} rs_hparams;

rs_status rs_hparams_from_meta(rs_hparams *hp, const rs_meta *meta, rs_error *err);

/* Per-pair inverse frequencies inv_freq[n_rot/2] with scaling folded in.
 * freq_factors (a GGUF rope_freqs.weight, [n_rot/2]) divides them when given. */
void rs_hparams_rope_freqs(const rs_hparams *hp, const float *freq_factors, float *inv_freq);

#endif

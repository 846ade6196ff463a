/* hf_model.h — a Hugging Face model folder shown with GGUF names (see model_file.h).
 *
 * Opening a folder reads config.json (hf_config.h) and the safetensors weights
 * (model.safetensors, or the shards of model.safetensors.index.json) and builds:
 *   - metadata under the keys llama.cpp's convert_hf_to_gguf.py writes for
 *     llama / qwen2 (general.architecture, <arch>.block_count, ...), see
 *     rs_hf_config_to_meta;
 *   - the tensors under GGUF names, shapes in GGUF order, data still zero-copy
 *     in the shard mappings, see rs_hf_tensor_name_to_gguf.
 * Architectures: LlamaForCausalLM / MistralForCausalLM -> "llama" (with
 * "rusty.rope_neox" = true, because HF stores q/k rows permuted for rotate-half
 * RoPE), Qwen2ForCausalLM -> "qwen2" (NeoX RoPE by architecture, as in GGUF).
 *
 * Tied embeddings (tie_word_embeddings = true): like a converted GGUF, the view
 * has token_embd.weight (from model.embed_tokens.weight, or from lm_head.weight
 * when only that is stored) and no output.weight.
 * Tensors with no GGUF name keep their HF name and are listed in `unmapped`;
 * model.layers.N.self_attn.rotary_emb.inv_freq buffers (recomputed from
 * rope_theta) are the only tensors left out. */
#ifndef RUSTY_HF_MODEL_H
#define RUSTY_HF_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"
#include "io/hf_config.h"
#include "io/meta.h"
#include "io/model_file.h"
#include "io/safetensors.h"

typedef struct rs_hf_model {
    rs_hf_config config;
    rs_safetensors_set weights;
    rs_meta meta;            /* GGUF-named metadata; its arena also holds the arrays below */
    rs_tensor_info *tensors; /* GGUF-named views of weights' tensors */
    uint64_t n_tensors;
    const rs_tensor_info **by_name;
    const char **unmapped; /* HF names that have no GGUF name (kept as they are) */
    size_t n_unmapped;
} rs_hf_model;

/* Opens an HF model folder into *mf (format RS_FORMAT_HF, impl = rs_hf_model).
 * On failure *mf is left zeroed. */
rs_status rs_hf_model_open(rs_model_file *mf, const char *dir, rs_error *err);
void rs_hf_model_close(rs_model_file *mf);
const rs_tensor_info *rs_hf_model_find(const rs_model_file *mf, const char *name);

/* GGUF name of an HF tensor name ("model.layers.3.mlp.up_proj.weight" ->
 * "blk.3.ffn_up.weight"). Returns false when the name has no GGUF counterpart
 * (or does not fit cap). *layer is set to the block index, or -1. */
bool rs_hf_tensor_name_to_gguf(const char *hf, char *out, size_t cap, long *layer);

/* GGUF architecture name for a config ("llama", "qwen2"); NULL if unsupported. */
const char *rs_hf_gguf_arch(const rs_hf_config *c);

/* Writes the GGUF-named hyperparameters of `c` into meta. `name` becomes
 * general.name. */
rs_status rs_hf_config_to_meta(const rs_hf_config *c, const char *name, rs_meta *meta,
                               rs_error *err);

#endif

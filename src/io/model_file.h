/* model_file.h — one view of a model on disk, whatever its format.
 *
 * A `.gguf` file is shown as it is. A Hugging Face folder (config.json +
 * model.safetensors or sharded model-*.safetensors with an index, plus
 * tokenizer.json / tokenizer.model) is translated on open:
 *   - config.json becomes GGUF-named metadata ("general.architecture",
 *     "llama.block_count", "llama.rope.freq_base", ...);
 *   - tensor names become GGUF names ("model.layers.3.mlp.up_proj.weight" ->
 *     "blk.3.ffn_up.weight"), shapes in GGUF order, data still zero-copy;
 *   - HF stores q/k projection rows permuted for rotate-half RoPE; instead of
 *     copying to un-permute them, the view sets "rusty.rope_neox" = true so the
 *     model applies rotate-half (NeoX) RoPE, which is the same function.
 * So everything above this layer reads one vocabulary of names. */
#ifndef RUSTY_MODEL_FILE_H
#define RUSTY_MODEL_FILE_H

#include <stdint.h>

#include "core/status.h"
#include "io/meta.h"
#include "io/tensor_info.h"

typedef enum rs_model_format {
    RS_FORMAT_GGUF = 1,
    RS_FORMAT_HF = 2,
} rs_model_format;

typedef struct rs_model_file {
    rs_model_format format;
    const rs_meta *meta;           /* GGUF-named metadata */
    const rs_tensor_info *tensors; /* GGUF-named tensors, data mapped */
    uint64_t n_tensors;
    uint64_t file_bytes;   /* bytes on disk: the .gguf, or all shards of an HF folder */
    uint32_t gguf_version; /* 0 for HF folders */
    void *impl;            /* format-specific state (owned) */
} rs_model_file;

/* Opens a .gguf file or an HF model folder (path is a directory). */
rs_status rs_model_file_open(rs_model_file *mf, const char *path, rs_error *err);
void rs_model_file_close(rs_model_file *mf);
const rs_tensor_info *rs_model_file_find(const rs_model_file *mf, const char *name);

#endif

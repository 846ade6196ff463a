/* model.h — a loaded Llama-family model: hyper-parameters, weights, tokenizer.
 *
 * The model is immutable after load and holds host-side weights only (pointers
 * into the file mapping, zero copy). Backends get their own copies of the
 * rs_weight descriptors when a session places layers on them (session.h).
 * Weights are bound by GGUF name with the expected shape: a missing or
 * mis-shaped tensor is a clear error naming the tensor. */
#ifndef RUSTY_MODEL_H
#define RUSTY_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/arena.h"
#include "core/status.h"
#include "io/model_file.h"
#include "model/hparams.h"

typedef struct rs_tokenizer rs_tokenizer;

typedef struct rs_layer_weights {
    rs_weight attn_norm, wq, wk, wv, wo;
    rs_weight bq, bk, bv; /* q/k/v bias; present only when has_bias */
    rs_weight ffn_norm, gate, up, down;
    bool has_bias;
} rs_layer_weights;

typedef struct rs_model {
    rs_hparams hp;
    rs_weight tok_embd;    /* [n_vocab][n_embd] */
    rs_weight output_norm; /* [n_embd], F32 */
    rs_weight output;      /* [n_vocab][n_embd]; the embedding table when tied */
    bool tied_output;
    rs_layer_weights *layers; /* n_layer */
    float *rope_freq_factors; /* rope_freqs.weight as f32 [n_rot/2], or NULL */
    rs_tokenizer *tok;        /* owned */
    char name[128];           /* general.name or the file name */
    char type_desc[32];       /* dominant weight type, e.g. "Q4_0" or "F16" */
    uint64_t n_params;        /* elements of all weights */
    uint64_t weight_bytes;    /* bytes of all weights */
    bool is_demo;             /* random weights made in memory */

    rs_model_file file; /* the source (closed on free); unused for the demo */
    bool has_file;
    rs_arena arena; /* converted norm vectors, demo weights, names */
} rs_model;

/* Opens a .gguf file or HF folder and binds every weight. */
rs_status rs_model_load(rs_model **out, const char *path, rs_error *err);

/* The built-in demo: a small Llama with random weights (seeded) and a made-up
 * word vocabulary, entirely in memory. Its output is random text. */
rs_status rs_model_create_demo(rs_model **out, uint64_t seed, rs_error *err);

void rs_model_free(rs_model *m);

#endif

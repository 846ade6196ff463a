/* quantize.h — writing a model as GGUF with its weights in another type.
 *
 * The source is anything rs_model_file_open reads (a .gguf file or an HF
 * folder). 2-D weight matrices are converted to the target type (rows that
 * are not a multiple of the type's block fall back the way llama.cpp's
 * quantizer does); norms, biases and other 1-D tensors stay as they are.
 * An HF folder's q/k projection rows are permuted back to GGUF's layout and
 * its tokenizer metadata is carried over, so the result is a standard GGUF
 * that llama.cpp loads too. Work is split across threads by rows; output is
 * streamed tensor by tensor, so memory use stays near one tensor. */
#ifndef RUSTY_QUANTIZE_H
#define RUSTY_QUANTIZE_H

#include <stdbool.h>

#include "core/status.h"
#include "dtype/dtype.h"
#include "io/tensor_info.h"

/* llama.cpp's file-type numbers (general.file_type), for the presets we make. */
typedef enum rs_ftype {
    RS_FTYPE_F32 = 0,
    RS_FTYPE_F16 = 1,
    RS_FTYPE_Q4_0 = 2,
    RS_FTYPE_Q4_1 = 3,
    RS_FTYPE_Q8_0 = 7,
    RS_FTYPE_Q5_0 = 8,
    RS_FTYPE_Q5_1 = 9,
    RS_FTYPE_Q2_K = 10,
    RS_FTYPE_Q3_K_S = 11,
    RS_FTYPE_Q3_K_M = 12,
    RS_FTYPE_Q3_K_L = 13,
    RS_FTYPE_Q4_K_S = 14,
    RS_FTYPE_Q4_K_M = 15,
    RS_FTYPE_Q5_K_S = 16,
    RS_FTYPE_Q5_K_M = 17,
    RS_FTYPE_Q6_K = 18,
    RS_FTYPE_IQ4_NL = 25,
    RS_FTYPE_IQ4_XS = 30,
    RS_FTYPE_BF16 = 32,
} rs_ftype;

typedef struct rs_quantize_params {
    rs_ftype ftype;
    bool pure;     /* every matrix in the base type (no Q6_K output head, no K-mix) */
    int n_threads; /* 0: all cores */
    /* progress: called after each tensor (may be NULL) */
    void (*progress)(void *user, const char *name, rs_dtype from, rs_dtype to, int i, int n);
    void *user;
} rs_quantize_params;

/* Parses a preset name ("Q4_0", "q4_k_m", "F16", ...); false if unknown. */
bool rs_ftype_from_name(const char *name, rs_ftype *out);
const char *rs_ftype_name(rs_ftype t);

/* The type tensor t (as the source file describes it) is written in, in a
 * model of n_layer layers and n_gqa query heads per KV head: the preset's
 * base type, Q6_K for the output head and, in the mixes (Q2_K, Q3_K_M,
 * Q3_K_L, Q4_K_M, Q5_K_M), llama.cpp's types for attn_v, attn_output and
 * ffn_down; 1-D tensors (and any tensor, for an unknown preset) keep theirs. */
rs_dtype rs_quantize_target_type(const rs_tensor_info *t, const rs_quantize_params *p, int n_layer,
                                 int n_gqa);

rs_status rs_quantize_model(const char *in_path, const char *out_path, const rs_quantize_params *p,
                            rs_error *err);

#endif

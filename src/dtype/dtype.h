/* dtype.h — tensor element types, declared once.
 *
 * Ids equal GGML's type ids (append-only; removed ids stay unused), so a GGUF
 * type field maps straight onto rs_dtype. Types beyond GGML's range exist only
 * for safetensors (U8, BOOL) and can never be written to GGUF.
 * Every type GGUF knows has its block geometry here so sizes can be validated
 * and reported even when we cannot compute with it (to_f32 == NULL). */
#ifndef RUSTY_DTYPE_H
#define RUSTY_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum rs_dtype {
    RS_DTYPE_F32 = 0,
    RS_DTYPE_F16 = 1,
    RS_DTYPE_Q4_0 = 2,
    RS_DTYPE_Q4_1 = 3,
    /* 4, 5: removed Q4_2, Q4_3 */
    RS_DTYPE_Q5_0 = 6,
    RS_DTYPE_Q5_1 = 7,
    RS_DTYPE_Q8_0 = 8,
    RS_DTYPE_Q8_1 = 9,
    RS_DTYPE_Q2_K = 10,
    RS_DTYPE_Q3_K = 11,
    RS_DTYPE_Q4_K = 12,
    RS_DTYPE_Q5_K = 13,
    RS_DTYPE_Q6_K = 14,
    RS_DTYPE_Q8_K = 15,
    RS_DTYPE_IQ2_XXS = 16,
    RS_DTYPE_IQ2_XS = 17,
    RS_DTYPE_IQ3_XXS = 18,
    RS_DTYPE_IQ1_S = 19,
    RS_DTYPE_IQ4_NL = 20,
    RS_DTYPE_IQ3_S = 21,
    RS_DTYPE_IQ2_S = 22,
    RS_DTYPE_IQ4_XS = 23,
    RS_DTYPE_I8 = 24,
    RS_DTYPE_I16 = 25,
    RS_DTYPE_I32 = 26,
    RS_DTYPE_I64 = 27,
    RS_DTYPE_F64 = 28,
    RS_DTYPE_IQ1_M = 29,
    RS_DTYPE_BF16 = 30,
    /* 31-33: removed Q4_0_4_4, Q4_0_4_8, Q4_0_8_8 */
    RS_DTYPE_TQ1_0 = 34,
    RS_DTYPE_TQ2_0 = 35,
    /* 36-38: removed IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8 */
    RS_DTYPE_MXFP4 = 39,
    RS_DTYPE_GGML_COUNT = 40, /* ids below this may appear in GGUF files */
    RS_DTYPE_U8 = 64,         /* safetensors only */
    RS_DTYPE_BOOL = 65,       /* safetensors only */
    RS_DTYPE_COUNT = 66,
} rs_dtype;

/* Converts n elements (n a multiple of block_size) of this type to/from f32. */
typedef void (*rs_to_f32_fn)(const void *src, float *dst, int64_t n);
typedef void (*rs_from_f32_fn)(const float *src, void *dst, int64_t n);

typedef struct rs_dtype_traits {
    const char *name;        /* GGML spelling: "F32", "Q4_K", "IQ4_NL"; NULL for unused ids */
    int64_t block_size;      /* elements per block (1 for plain types) */
    size_t type_size;        /* bytes per block */
    bool is_quantized;       /* block-quantized (not a plain scalar) */
    rs_to_f32_fn to_f32;     /* NULL when we cannot read this type */
    rs_from_f32_fn from_f32; /* reference quantizer; NULL when we cannot write it */
} rs_dtype_traits;

/* Traits for an id; NULL for ids that are unknown or unused (out of range too). */
const rs_dtype_traits *rs_dtype_get(int id);
/* Name of a type, "?" for unknown ids. */
const char *rs_dtype_name(int id);
/* Looks a type up by its GGML name (case-insensitive); returns false if unknown. */
bool rs_dtype_from_name(const char *name, rs_dtype *out);
/* Bytes for a row of n elements; returns false when n is not a multiple of the
 * block size or the result overflows. */
bool rs_dtype_row_size(rs_dtype t, int64_t n, size_t *bytes);
/* True when tensors of this id can be read (converted to f32). Whether we can
 * also write it is rs_dtype_get(id)->from_f32 != NULL. */
bool rs_dtype_supports(int id);

#endif

/* dtype.c — the one table of tensor element types: GGML name, block geometry,
 * and the scalar converters to and from f32.
 *
 * Geometry is listed for every id GGUF can carry, including the types we
 * cannot compute with (their converters are NULL), so readers can validate
 * tensor sizes and name the type in errors. Sizes follow ggml-common.h. */
#include "dtype/dtype.h"

#include <strings.h>

#include "dtype/quant_internal.h"

#define PLAIN(nm, size, to, from)                                                                  \
    { nm, 1, size, false, to, from }
#define QUANT(nm, bs, size, to, from)                                                              \
    { nm, bs, size, true, to, from }

static const rs_dtype_traits k_traits[RS_DTYPE_COUNT] = {
    [RS_DTYPE_F32] = PLAIN("F32", 4, rs_dtype_f32_to_f32, rs_dtype_f32_from_f32),
    [RS_DTYPE_F16] = PLAIN("F16", 2, rs_dtype_f16_to_f32, rs_dtype_f16_from_f32),
    [RS_DTYPE_Q4_0] =
        QUANT("Q4_0", QK4_0, sizeof(block_q4_0), rs_dtype_q4_0_to_f32, rs_dtype_q4_0_from_f32),
    [RS_DTYPE_Q4_1] =
        QUANT("Q4_1", QK4_1, sizeof(block_q4_1), rs_dtype_q4_1_to_f32, rs_dtype_q4_1_from_f32),
    [RS_DTYPE_Q5_0] =
        QUANT("Q5_0", QK5_0, sizeof(block_q5_0), rs_dtype_q5_0_to_f32, rs_dtype_q5_0_from_f32),
    [RS_DTYPE_Q5_1] =
        QUANT("Q5_1", QK5_1, sizeof(block_q5_1), rs_dtype_q5_1_to_f32, rs_dtype_q5_1_from_f32),
    [RS_DTYPE_Q8_0] =
        QUANT("Q8_0", QK8_0, sizeof(block_q8_0), rs_dtype_q8_0_to_f32, rs_dtype_q8_0_from_f32),
    [RS_DTYPE_Q8_1] =
        QUANT("Q8_1", QK8_1, sizeof(block_q8_1), rs_dtype_q8_1_to_f32, rs_dtype_q8_1_from_f32),
    [RS_DTYPE_Q2_K] =
        QUANT("Q2_K", QK_K, sizeof(block_q2_K), rs_dtype_q2_k_to_f32, rs_dtype_q2_k_from_f32),
    [RS_DTYPE_Q3_K] =
        QUANT("Q3_K", QK_K, sizeof(block_q3_K), rs_dtype_q3_k_to_f32, rs_dtype_q3_k_from_f32),
    [RS_DTYPE_Q4_K] =
        QUANT("Q4_K", QK_K, sizeof(block_q4_K), rs_dtype_q4_k_to_f32, rs_dtype_q4_k_from_f32),
    [RS_DTYPE_Q5_K] =
        QUANT("Q5_K", QK_K, sizeof(block_q5_K), rs_dtype_q5_k_to_f32, rs_dtype_q5_k_from_f32),
    [RS_DTYPE_Q6_K] =
        QUANT("Q6_K", QK_K, sizeof(block_q6_K), rs_dtype_q6_k_to_f32, rs_dtype_q6_k_from_f32),
    [RS_DTYPE_Q8_K] =
        QUANT("Q8_K", QK_K, sizeof(block_q8_K), rs_dtype_q8_k_to_f32, rs_dtype_q8_k_from_f32),
    /* i-quants with code-book grids: geometry only */
    [RS_DTYPE_IQ2_XXS] = QUANT("IQ2_XXS", QK_K, 66, NULL, NULL), /* d + u16 qs[32] */
    [RS_DTYPE_IQ2_XS] = QUANT("IQ2_XS", QK_K, 74, NULL, NULL),   /* d + u16 qs[32] + scales[8] */
    [RS_DTYPE_IQ3_XXS] = QUANT("IQ3_XXS", QK_K, 98, NULL, NULL), /* d + qs[96] */
    [RS_DTYPE_IQ1_S] = QUANT("IQ1_S", QK_K, 50, NULL, NULL),     /* d + qs[32] + u16 qh[8] */
    [RS_DTYPE_IQ4_NL] = QUANT("IQ4_NL", QK4_NL, sizeof(block_iq4_nl), rs_dtype_iq4_nl_to_f32,
                              rs_dtype_iq4_nl_from_f32),
    [RS_DTYPE_IQ3_S] = QUANT("IQ3_S", QK_K, 110, NULL, NULL), /* d+qs[64]+qh[8]+signs[32]+sc[4] */
    [RS_DTYPE_IQ2_S] = QUANT("IQ2_S", QK_K, 82, NULL, NULL),  /* d + qs[64] + qh[8] + scales[8] */
    [RS_DTYPE_IQ4_XS] = QUANT("IQ4_XS", QK_K, sizeof(block_iq4_xs), rs_dtype_iq4_xs_to_f32,
                              rs_dtype_iq4_xs_from_f32),
    [RS_DTYPE_I8] = PLAIN("I8", 1, rs_dtype_i8_to_f32, NULL),
    [RS_DTYPE_I16] = PLAIN("I16", 2, rs_dtype_i16_to_f32, NULL),
    [RS_DTYPE_I32] = PLAIN("I32", 4, rs_dtype_i32_to_f32, NULL),
    [RS_DTYPE_I64] = PLAIN("I64", 8, rs_dtype_i64_to_f32, NULL),
    [RS_DTYPE_F64] = PLAIN("F64", 8, rs_dtype_f64_to_f32, rs_dtype_f64_from_f32),
    [RS_DTYPE_IQ1_M] = QUANT("IQ1_M", QK_K, 56, NULL, NULL), /* qs[32] + qh[16] + scales[8] */
    [RS_DTYPE_BF16] = PLAIN("BF16", 2, rs_dtype_bf16_to_f32, rs_dtype_bf16_from_f32),
    [RS_DTYPE_TQ1_0] = QUANT("TQ1_0", QK_K, 54, NULL, NULL), /* qs[48] + qh[4] + d */
    [RS_DTYPE_TQ2_0] = QUANT("TQ2_0", QK_K, 66, NULL, NULL), /* qs[64] + d */
    [RS_DTYPE_MXFP4] = QUANT("MXFP4", 32, 17, NULL, NULL),   /* e8m0 exponent + qs[16] */
    [RS_DTYPE_U8] = PLAIN("U8", 1, rs_dtype_u8_to_f32, NULL),
    [RS_DTYPE_BOOL] = PLAIN("BOOL", 1, rs_dtype_bool_to_f32, NULL),
};

const rs_dtype_traits *rs_dtype_get(int id) {
    if (id < 0 || id >= RS_DTYPE_COUNT || k_traits[id].name == NULL) return NULL;
    return &k_traits[id];
}

const char *rs_dtype_name(int id) {
    const rs_dtype_traits *t = rs_dtype_get(id);
    return t ? t->name : "?";
}

bool rs_dtype_from_name(const char *name, rs_dtype *out) {
    if (name == NULL) return false;
    for (int id = 0; id < RS_DTYPE_COUNT; id++) {
        if (k_traits[id].name && strcasecmp(k_traits[id].name, name) == 0) {
            if (out) *out = (rs_dtype)id;
            return true;
        }
    }
    return false;
}

bool rs_dtype_row_size(rs_dtype t, int64_t n, size_t *bytes) {
    const rs_dtype_traits *tr = rs_dtype_get((int)t);
    if (tr == NULL || n < 0 || n % tr->block_size != 0) return false;
    uint64_t blocks = (uint64_t)(n / tr->block_size);
    if (blocks > SIZE_MAX / tr->type_size) return false;
    if (bytes) *bytes = (size_t)blocks * tr->type_size;
    return true;
}

bool rs_dtype_supports(int id) {
    const rs_dtype_traits *t = rs_dtype_get(id);
    return t != NULL && t->to_f32 != NULL;
}

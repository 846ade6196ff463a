/* dtype.c — PLACEHOLDER block-geometry table for the gguf branch.
 *
 * The real traits table (with converters) is written on the `dtype` branch;
 * this copy exists only so the GGUF reader can validate tensor sizes before
 * that lands. It implements rs_dtype_get / rs_dtype_name / rs_dtype_row_size
 * (and rs_dtype_from_name) with to_f32 / from_f32 = NULL. On merge, take the
 * dtype branch's version of this file. */
#include "dtype/dtype.h"

#include <stdint.h>
#include <strings.h>

#define GEOM(id, nm, bs, ts, q) [id] = {nm, bs, ts, q, NULL, NULL}

static const rs_dtype_traits traits[RS_DTYPE_COUNT] = {
    GEOM(RS_DTYPE_F32, "F32", 1, 4, false),
    GEOM(RS_DTYPE_F16, "F16", 1, 2, false),
    GEOM(RS_DTYPE_Q4_0, "Q4_0", 32, 18, true),
    GEOM(RS_DTYPE_Q4_1, "Q4_1", 32, 20, true),
    GEOM(RS_DTYPE_Q5_0, "Q5_0", 32, 22, true),
    GEOM(RS_DTYPE_Q5_1, "Q5_1", 32, 24, true),
    GEOM(RS_DTYPE_Q8_0, "Q8_0", 32, 34, true),
    GEOM(RS_DTYPE_Q8_1, "Q8_1", 32, 36, true),
    GEOM(RS_DTYPE_Q2_K, "Q2_K", 256, 84, true),
    GEOM(RS_DTYPE_Q3_K, "Q3_K", 256, 110, true),
    GEOM(RS_DTYPE_Q4_K, "Q4_K", 256, 144, true),
    GEOM(RS_DTYPE_Q5_K, "Q5_K", 256, 176, true),
    GEOM(RS_DTYPE_Q6_K, "Q6_K", 256, 210, true),
    GEOM(RS_DTYPE_Q8_K, "Q8_K", 256, 292, true),
    GEOM(RS_DTYPE_IQ2_XXS, "IQ2_XXS", 256, 66, true),
    GEOM(RS_DTYPE_IQ2_XS, "IQ2_XS", 256, 74, true),
    GEOM(RS_DTYPE_IQ3_XXS, "IQ3_XXS", 256, 98, true),
    GEOM(RS_DTYPE_IQ1_S, "IQ1_S", 256, 50, true),
    GEOM(RS_DTYPE_IQ4_NL, "IQ4_NL", 32, 18, true),
    GEOM(RS_DTYPE_IQ3_S, "IQ3_S", 256, 110, true),
    GEOM(RS_DTYPE_IQ2_S, "IQ2_S", 256, 82, true),
    GEOM(RS_DTYPE_IQ4_XS, "IQ4_XS", 256, 136, true),
    GEOM(RS_DTYPE_I8, "I8", 1, 1, false),
    GEOM(RS_DTYPE_I16, "I16", 1, 2, false),
    GEOM(RS_DTYPE_I32, "I32", 1, 4, false),
    GEOM(RS_DTYPE_I64, "I64", 1, 8, false),
    GEOM(RS_DTYPE_F64, "F64", 1, 8, false),
    GEOM(RS_DTYPE_IQ1_M, "IQ1_M", 256, 56, true),
    GEOM(RS_DTYPE_BF16, "BF16", 1, 2, false),
    GEOM(RS_DTYPE_TQ1_0, "TQ1_0", 256, 54, true),
    GEOM(RS_DTYPE_TQ2_0, "TQ2_0", 256, 66, true),
    GEOM(RS_DTYPE_MXFP4, "MXFP4", 32, 17, true),
    GEOM(RS_DTYPE_U8, "U8", 1, 1, false),
    GEOM(RS_DTYPE_BOOL, "BOOL", 1, 1, false),
};

const rs_dtype_traits *rs_dtype_get(int id) {
    if (id < 0 || id >= RS_DTYPE_COUNT || !traits[id].name) return NULL;
    return &traits[id];
}

const char *rs_dtype_name(int id) {
    const rs_dtype_traits *t = rs_dtype_get(id);
    return t ? t->name : "?";
}

bool rs_dtype_from_name(const char *name, rs_dtype *out) {
    for (int id = 0; id < RS_DTYPE_COUNT; id++) {
        if (traits[id].name && strcasecmp(traits[id].name, name) == 0) {
            *out = (rs_dtype)id;
            return true;
        }
    }
    return false;
}

bool rs_dtype_row_size(rs_dtype t, int64_t n, size_t *bytes) {
    const rs_dtype_traits *tr = rs_dtype_get((int)t);
    if (!tr || n < 0 || n % tr->block_size != 0) return false;
    uint64_t blocks = (uint64_t)(n / tr->block_size);
    if (blocks != 0 && tr->type_size > SIZE_MAX / blocks) return false;
    *bytes = (size_t)blocks * tr->type_size;
    return true;
}

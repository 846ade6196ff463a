/* kernels.c — the (weight type, SIMD level) -> kernel table (see kernels.h). */
#include "backend/cpu/kernels.h"

#include "dtype/blocks.h"

RS_STATIC_ASSERT(sizeof(rs_block_q8_0p) == 48, "rs_block_q8_0p size");

// NOLINTNEXTLINE(clang-analyzer-optin.performance.Padding): 15 rows; fields in reading order
typedef struct {
    rs_dtype type;
    rs_cpu_act act;
    int64_t block;             /* elements per block */
    size_t block_bytes;        /* bytes per block */
    const rs_cpu_kernel *k[3]; /* indexed by rs_simd_level; NULL: fall back */
} kernel_row;

/* One row per weight type: id, companion format, block geometry, kernels. */
#define ROW(T, ACT, BLOCK, BYTES, name)                                                            \
    {                                                                                              \
        RS_DTYPE_##T, RS_CPU_ACT_##ACT, BLOCK, BYTES, {                                            \
            &rs_cpu_kernel_##name##_ref, &rs_cpu_kernel_##name##_avx2,                             \
                &rs_cpu_kernel_##name##_avx512                                                     \
        }                                                                                          \
    }

static const kernel_row k_table[] = {
    ROW(F32, F32, 1, sizeof(float), f32),
    ROW(F16, F32, 1, sizeof(uint16_t), f16),
    ROW(BF16, F32, 1, sizeof(uint16_t), bf16),
    ROW(Q8_0, Q8_0, QK8_0, sizeof(block_q8_0), q8_0),
    ROW(Q4_0, Q8_0, QK4_0, sizeof(block_q4_0), q4_0),
    ROW(Q4_1, Q8_1, QK4_1, sizeof(block_q4_1), q4_1),
    ROW(Q5_0, Q8_0, QK5_0, sizeof(block_q5_0), q5_0),
    ROW(Q5_1, Q8_1, QK5_1, sizeof(block_q5_1), q5_1),
    ROW(IQ4_NL, Q8_0, QK4_NL, sizeof(block_iq4_nl), iq4_nl),
    ROW(Q2_K, Q8_K, QK_K, sizeof(block_q2_K), q2_K),
    ROW(Q3_K, Q8_K, QK_K, sizeof(block_q3_K), q3_K),
    ROW(Q4_K, Q8_K, QK_K, sizeof(block_q4_K), q4_K),
    ROW(Q5_K, Q8_K, QK_K, sizeof(block_q5_K), q5_K),
    ROW(Q6_K, Q8_K, QK_K, sizeof(block_q6_K), q6_K),
    ROW(IQ4_XS, Q8_K, QK_K, sizeof(block_iq4_xs), iq4_xs),
};

static const rs_cpu_quant_fn q_table[RS_CPU_ACT_COUNT][3] = {
    [RS_CPU_ACT_Q8_0] = {rs_cpu_quant_q8_0_ref, rs_cpu_quant_q8_0_avx2, rs_cpu_quant_q8_0_avx512},
    [RS_CPU_ACT_Q8_1] = {rs_cpu_quant_q8_1_ref, rs_cpu_quant_q8_1_avx2, rs_cpu_quant_q8_1_avx512},
    [RS_CPU_ACT_Q8_K] = {rs_cpu_quant_q8_K_ref, rs_cpu_quant_q8_K_avx2, rs_cpu_quant_q8_K_avx512},
    [RS_CPU_ACT_Q8_0P] = {rs_cpu_quant_q8_0p_ref, rs_cpu_quant_q8_0p_avx2,
                          rs_cpu_quant_q8_0p_avx512},
};

/* Packed-layout kernels (packed.h), indexed by level up to AMX; AVX2 falls
 * back to the scalar reference. Q5_K, Q6_K and IQ4_XS have no AMX tile: their
 * AVX-512 kernels serve that level as their own (the pack pays there too). */
static const struct {
    rs_dtype type;
    const rs_cpu_kernel *k[4];
} k_packed[] = {
    {RS_DTYPE_Q8_0,
     {&rs_cpu_kernel_q8_0_x16_ref, NULL, &rs_cpu_kernel_q8_0_x16_avx512,
      &rs_cpu_kernel_q8_0_x16_amx}},
    {RS_DTYPE_Q4_0,
     {&rs_cpu_kernel_q4_0_x16_ref, NULL, &rs_cpu_kernel_q4_0_x16_avx512,
      &rs_cpu_kernel_q4_0_x16_amx}},
    {RS_DTYPE_IQ4_NL,
     {&rs_cpu_kernel_iq4_nl_x16_ref, NULL, &rs_cpu_kernel_iq4_nl_x16_avx512,
      &rs_cpu_kernel_iq4_nl_x16_amx}},
    {RS_DTYPE_Q4_K,
     {&rs_cpu_kernel_q4_K_x16_ref, NULL, &rs_cpu_kernel_q4_K_x16_avx512,
      &rs_cpu_kernel_q4_K_x16_amx}},
    {RS_DTYPE_Q5_K,
     {&rs_cpu_kernel_q5_K_x16_ref, NULL, &rs_cpu_kernel_q5_K_x16_avx512,
      &rs_cpu_kernel_q5_K_x16_avx512}},
    {RS_DTYPE_Q6_K,
     {&rs_cpu_kernel_q6_K_x16_ref, NULL, &rs_cpu_kernel_q6_K_x16_avx512,
      &rs_cpu_kernel_q6_K_x16_avx512}},
    {RS_DTYPE_IQ4_XS,
     {&rs_cpu_kernel_iq4_xs_x16_ref, NULL, &rs_cpu_kernel_iq4_xs_x16_avx512,
      &rs_cpu_kernel_iq4_xs_x16_avx512}},
};

static const kernel_row *find_row(rs_dtype t) {
    for (size_t i = 0; i < sizeof k_table / sizeof k_table[0]; i++)
        if (k_table[i].type == t) return &k_table[i];
    return NULL;
}

bool rs_cpu_weight_info(rs_dtype wtype, int64_t *block, size_t *block_bytes, rs_cpu_act *act) {
    const kernel_row *row = find_row(wtype);
    if (!row) return false;
    *block = row->block;
    *block_bytes = row->block_bytes;
    *act = row->act;
    return true;
}

int64_t rs_cpu_act_block(rs_cpu_act act) {
    switch (act) {
    case RS_CPU_ACT_Q8_0:
        return QK8_0;
    case RS_CPU_ACT_Q8_1:
        return QK8_1;
    case RS_CPU_ACT_Q8_K:
        return QK_K;
    case RS_CPU_ACT_Q8_0P:
        return 32;
    default:
        return 1;
    }
}

size_t rs_cpu_act_block_bytes(rs_cpu_act act) {
    switch (act) {
    case RS_CPU_ACT_Q8_0:
        return sizeof(block_q8_0);
    case RS_CPU_ACT_Q8_1:
        return sizeof(block_q8_1);
    case RS_CPU_ACT_Q8_K:
        return sizeof(block_q8_K);
    case RS_CPU_ACT_Q8_0P:
        return sizeof(rs_block_q8_0p);
    default:
        return sizeof(float);
    }
}

const rs_cpu_kernel *rs_cpu_kernel_get(rs_dtype wtype, rs_simd_level level) {
    const kernel_row *row = find_row(wtype);
    if (!row || level < RS_SIMD_SCALAR || level > RS_SIMD_AMX) return NULL;
    if (level > RS_SIMD_AVX512) level = RS_SIMD_AVX512; /* AMX only has packed kernels */
    for (int l = (int)level; l >= 0; l--)
        if (row->k[l]) return row->k[l];
    return NULL;
}

const rs_cpu_kernel *rs_cpu_packed_kernel_get(rs_dtype wtype, rs_simd_level level, bool *native) {
    if (native) *native = false;
    if (level < RS_SIMD_SCALAR || level > RS_SIMD_AMX) return NULL;
    for (size_t i = 0; i < sizeof k_packed / sizeof k_packed[0]; i++) {
        if (k_packed[i].type != wtype) continue;
        for (int l = (int)level; l >= 0; l--)
            if (k_packed[i].k[l]) {
                if (native) *native = l == (int)level;
                return k_packed[i].k[l];
            }
    }
    return NULL;
}

rs_cpu_quant_fn rs_cpu_quant_get(rs_cpu_act act, rs_simd_level level) {
    if ((int)act <= RS_CPU_ACT_F32 || act >= RS_CPU_ACT_COUNT || level < RS_SIMD_SCALAR ||
        level > RS_SIMD_AMX)
        return NULL;
    if (level > RS_SIMD_AVX512) level = RS_SIMD_AVX512;
    for (int l = (int)level; l >= 0; l--)
        if (q_table[act][l]) return q_table[act][l];
    return NULL;
}

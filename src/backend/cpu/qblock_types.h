/* qblock_types.h — the 32-element block types the SIMD tile kernels
 * (dot_q_avx2.c, dot_q_avx512.c) specialise on, and their geometry
 * (header-only, for compile-time constant T). */
#ifndef RUSTY_BACKEND_CPU_QBLOCK_TYPES_H
#define RUSTY_BACKEND_CPU_QBLOCK_TYPES_H

#include <stdbool.h>
#include <stddef.h>

#include "dtype/blocks.h"

enum { W_Q8_0, W_Q4_0, W_Q5_0, W_IQ4_NL, W_Q4_1, W_Q5_1 };

static inline __attribute__((always_inline)) size_t rs_qb_block_bytes(const int T) {
    switch (T) {
    case W_Q8_0:
        return sizeof(block_q8_0);
    case W_Q4_0:
        return sizeof(block_q4_0);
    case W_Q5_0:
        return sizeof(block_q5_0);
    case W_IQ4_NL:
        return sizeof(block_iq4_nl);
    case W_Q4_1:
        return sizeof(block_q4_1);
    default:
        return sizeof(block_q5_1);
    }
}

/* Types with a min term, taken against Q8_1 activations (which carry d * sum q). */
static inline __attribute__((always_inline)) bool rs_qb_uses_q8_1(const int T) {
    return T == W_Q4_1 || T == W_Q5_1;
}

#endif

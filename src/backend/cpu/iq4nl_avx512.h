/* iq4nl_avx512.h — IQ4_NL's code book as a vpshufb table, shared by the AVX-512
 * and AMX kernels (dot_q_avx512.c, dot_x16_avx512.c, dot_x16_amx.c); include it
 * only from files built for AVX-512. */
#ifndef RUSTY_BACKEND_CPU_IQ4NL_AVX512_H
#define RUSTY_BACKEND_CPU_IQ4NL_AVX512_H

#include <immintrin.h>

/* RS_IQ4NL_VALUES + 128 in every 128-bit lane: a nibble shuffled through it
 * becomes its value as an unsigned byte, the operand vpdpbusd / tdpbsud take
 * (the kernels subtract 128 * sum(x) to undo the offset). */
static inline __attribute__((always_inline)) __m512i rs_iq4nl_u8_table(void) {
    return _mm512_broadcast_i32x4(_mm_setr_epi8(1, 24, 45, 63, 79, 93, 106, 118, (char)129,
                                                (char)141, (char)153, (char)166, (char)181,
                                                (char)197, (char)217, (char)241));
}

#endif

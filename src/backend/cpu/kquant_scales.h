/* kquant_scales.h — unpacking of the packed 6-bit K-quant scales, and the
 * K-quant type geometry the SIMD kernels specialise on (header-only).
 *
 * Shared by the scalar reference and the SIMD kernels so that every level
 * reads the scale bytes the same way. */
#ifndef RUSTY_BACKEND_CPU_KQUANT_SCALES_H
#define RUSTY_BACKEND_CPU_KQUANT_SCALES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dtype/blocks.h"

/* The K-quant a SIMD tile is compiled for (a compile-time constant there). */
enum { RS_KQ_Q2, RS_KQ_Q3, RS_KQ_Q4, RS_KQ_Q5, RS_KQ_Q6 };

static inline __attribute__((always_inline)) size_t rs_kq_block_bytes(const int T) {
    switch (T) {
    case RS_KQ_Q2:
        return sizeof(block_q2_K);
    case RS_KQ_Q3:
        return sizeof(block_q3_K);
    case RS_KQ_Q4:
        return sizeof(block_q4_K);
    case RS_KQ_Q5:
        return sizeof(block_q5_K);
    default:
        return sizeof(block_q6_K);
    }
}

/* Types whose min term has its own float scale dmin (else offset * scale,
 * subtracted in integers). */
static inline __attribute__((always_inline)) bool rs_kq_has_dmin(const int T) {
    return T == RS_KQ_Q2 || T == RS_KQ_Q4 || T == RS_KQ_Q5;
}

/* Q4_K / Q5_K: 12 bytes hold eight 6-bit scales and eight 6-bit mins. Sub-blocks
 * 0-3 keep theirs in the low 6 bits of bytes 0-3 (scales) and 4-7 (mins);
 * sub-blocks 4-7 keep the low 4 bits in the nibbles of bytes 8-11 and the top
 * 2 bits in the spare high bits of bytes 0-3 (scales) and 4-7 (mins). */
static inline void rs_kq_unpack_q4k_scales(const uint8_t s[12], uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s[j + 8] & 0x0f) | ((s[j] >> 6) << 4));
        mn[j + 4] = (uint8_t)((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
    }
}

/* Q3_K: 12 bytes hold sixteen 6-bit scales stored with an offset of 32. The
 * low 4 bits of scale i are the low (i < 8) or high (i >= 8) nibble of byte
 * i % 8; the top 2 bits are bits 2*(i/4)..+1 of byte 8 + i % 4. */
static inline void rs_kq_unpack_q3k_scales(const uint8_t s[12], int8_t sc[16]) {
    for (int i = 0; i < 16; i++) {
        int lo = i < 8 ? (s[i] & 0x0f) : (s[i - 8] >> 4);
        int hi = (s[8 + (i & 3)] >> (2 * (i / 4))) & 3;
        sc[i] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

/* The same unpacking with 32-bit word operations (for the SIMD kernels):
 * returns the eight scales (bytes 0-7) and eight mins (bytes 8-15) of Q4_K. */
static inline void rs_kq_unpack_q4k_words(const uint8_t s[12], uint64_t *sc, uint64_t *mn) {
    uint32_t a, b, c;
    memcpy(&a, s, 4);
    memcpy(&b, s + 4, 4);
    memcpy(&c, s + 8, 4);
    uint32_t sc_lo = a & 0x3f3f3f3fu, mn_lo = b & 0x3f3f3f3fu;
    uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 6) & 0x03030303u) << 4;
    uint32_t mn_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 6) & 0x03030303u) << 4;
    *sc = (uint64_t)sc_lo | (uint64_t)sc_hi << 32;
    *mn = (uint64_t)mn_lo | (uint64_t)mn_hi << 32;
}

/* Q3_K's sixteen scales with word operations, still offset by 32 (0..63):
 * out[0] holds scales 0-7, out[1] scales 8-15, one per byte. */
static inline void rs_kq_unpack_q3k_words(const uint8_t s[12], uint64_t out[2]) {
    uint32_t a, b, c;
    memcpy(&a, s, 4);
    memcpy(&b, s + 4, 4);
    memcpy(&c, s + 8, 4);
    const uint32_t m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
    uint32_t w0 = (a & m4) | (c & m2) << 4;               /* scales 0-3 */
    uint32_t w1 = (b & m4) | ((c >> 2) & m2) << 4;        /* 4-7 */
    uint32_t w2 = ((a >> 4) & m4) | ((c >> 4) & m2) << 4; /* 8-11 */
    uint32_t w3 = ((b >> 4) & m4) | ((c >> 6) & m2) << 4; /* 12-15 */
    out[0] = (uint64_t)w0 | (uint64_t)w1 << 32;
    out[1] = (uint64_t)w2 | (uint64_t)w3 << 32;
}

#endif

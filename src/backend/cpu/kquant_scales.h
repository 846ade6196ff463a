/* kquant_scales.h — unpacking of the packed 6-bit K-quant scales (header-only).
 *
 * Shared by the scalar reference and the SIMD kernels so that every level
 * reads the scale bytes the same way. */
#ifndef RUSTY_BACKEND_CPU_KQUANT_SCALES_H
#define RUSTY_BACKEND_CPU_KQUANT_SCALES_H

#include <stdint.h>

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

#endif

/* iq4xs_scales.h — IQ4_XS's eight 6-bit sub-block scales unpacked with word
 * operations, for the SIMD kernels (header-only; the scalar reference reads
 * them one at a time with rs_iq4_xs_scale, so the two stay independent). */
#ifndef RUSTY_BACKEND_CPU_IQ4XS_SCALES_H
#define RUSTY_BACKEND_CPU_IQ4XS_SCALES_H

#include <stdint.h>
#include <string.h>

#include "dtype/blocks.h"

/* Sub-block k's scale ls (0..63, before the -32) in byte k. Its low 4 bits
 * are nibble k of scales_l, its top 2 bits field k of scales_h: both are
 * spread one field per byte by halving shifts (no pdep, which is slow on
 * the Zen 2 AVX2 machines). */
static inline uint64_t rs_iq4xs_scales_word(const block_iq4_xs *b) {
    uint32_t l;
    memcpy(&l, b->scales_l, 4);
    uint64_t lo = l;
    lo = (lo | lo << 16) & 0x0000ffff0000ffffull;
    lo = (lo | lo << 8) & 0x00ff00ff00ff00ffull;
    lo = (lo | lo << 4) & 0x0f0f0f0f0f0f0f0full;
    uint64_t hi = b->scales_h;
    hi = (hi | hi << 24) & 0x000000ff000000ffull;
    hi = (hi | hi << 12) & 0x000f000f000f000full;
    hi = (hi | hi << 6) & 0x0303030303030303ull;
    return lo | hi << 4;
}

#endif

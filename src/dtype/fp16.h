/* fp16.h — IEEE half and bfloat16 conversions (scalar, exact, header-only).
 *
 * fp16 -> f32 is exact; f32 -> fp16 rounds to nearest even with correct
 * handling of subnormals, overflow to inf and NaN (matching hardware F16C).
 * bf16 <- f32 rounds to nearest even and keeps NaNs quiet (matching PyTorch/ggml). */
#ifndef RUSTY_FP16_H
#define RUSTY_FP16_H

#include <stdint.h>
#include <string.h>

typedef uint16_t rs_fp16; /* IEEE 754 binary16 bits */
typedef uint16_t rs_bf16; /* bfloat16 bits */

static inline float rs_bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t rs_f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float rs_fp16_to_f32(rs_fp16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) return rs_bits_to_f32(sign | 0x7f800000u | (man << 13)); /* inf / nan */
    if (exp == 0) {
        if (man == 0) return rs_bits_to_f32(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return rs_bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}

static inline rs_fp16 rs_f32_to_fp16(float f) {
    uint32_t x = rs_f32_to_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t abs = x & 0x7fffffff;
    if (abs > 0x7f800000u)
        return (rs_fp16)(sign | 0x7e00 | ((abs >> 13) & 0x3ff)); /* nan, keep quiet */
    if (abs >= 0x477ff000u) return (rs_fp16)(sign | 0x7c00);     /* rounds to >= 65520: inf */
    if (abs < 0x38800000u) {                                     /* below fp16 normal range */
        if (abs < 0x33000000u) return (rs_fp16)sign;             /* < 2^-25: rounds to 0 */
        uint32_t e = abs >> 23;
        uint32_t m = (abs & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (rs_fp16)(sign | q);
    }
    /* rebias exponent 127 -> 15 and drop 13 mantissa bits, rounding to nearest
     * even without a branch: adding 0xfff plus the kept lsb carries exactly
     * when the dropped bits exceed half, or equal half with an odd lsb */
    uint32_t q = (abs - 0x38000000u + 0x0fffu + ((abs >> 13) & 1u)) >> 13;
    return (rs_fp16)(sign | q);
}

static inline float rs_bf16_to_f32(rs_bf16 b) {
    return rs_bits_to_f32((uint32_t)b << 16);
}

static inline rs_bf16 rs_f32_to_bf16(float f) {
    uint32_t x = rs_f32_to_bits(f);
    if ((x & 0x7fffffff) > 0x7f800000u) return (rs_bf16)((x >> 16) | 64); /* quiet nan */
    return (rs_bf16)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

#endif

/* blocks.h — quantized block layouts, bit-for-bit equal to GGUF/GGML.
 *
 * Shared by C and CUDA code: plain structs of fixed-width integers, with half
 * precision fields stored as raw IEEE binary16 bits (uint16_t). Every struct's
 * size is pinned by a static assertion so a layout drift fails the build. */
#ifndef RUSTY_BLOCKS_H
#define RUSTY_BLOCKS_H

#include <stdint.h>

#ifdef __cplusplus
#define RS_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define RS_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#define QK4_0        32
#define QK4_1        32
#define QK5_0        32
#define QK5_1        32
#define QK8_0        32
#define QK8_1        32
#define QK4_NL       32
#define QK_K         256
#define K_SCALE_SIZE 12

/* Q4_0: x = d * (q - 8), q in 0..15; qs[j] holds element j (low nibble) and j+16 (high). */
typedef struct {
    uint16_t d;
    uint8_t qs[QK4_0 / 2];
} block_q4_0;
RS_STATIC_ASSERT(sizeof(block_q4_0) == 18, "block_q4_0 size");

/* Q4_1: x = d * q + m. */
typedef struct {
    uint16_t d;
    uint16_t m;
    uint8_t qs[QK4_1 / 2];
} block_q4_1;
RS_STATIC_ASSERT(sizeof(block_q4_1) == 20, "block_q4_1 size");

/* Q5_0: x = d * (q - 16); the 5th bit of element j is bit j of qh (little-endian u32). */
typedef struct {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
} block_q5_0;
RS_STATIC_ASSERT(sizeof(block_q5_0) == 22, "block_q5_0 size");

/* Q5_1: x = d * q + m. */
typedef struct {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
} block_q5_1;
RS_STATIC_ASSERT(sizeof(block_q5_1) == 24, "block_q5_1 size");

/* Q8_0: x = d * q. */
typedef struct {
    uint16_t d;
    int8_t qs[QK8_0];
} block_q8_0;
RS_STATIC_ASSERT(sizeof(block_q8_0) == 34, "block_q8_0 size");

/* Q8_1: x = d * q; s = d * sum(q) (precomputed for dot products with Q4_1/Q5_1). */
typedef struct {
    uint16_t d;
    uint16_t s;
    int8_t qs[QK8_1];
} block_q8_1;
RS_STATIC_ASSERT(sizeof(block_q8_1) == 36, "block_q8_1 size");

/* Q2_K: 16 sub-blocks of 16; scales[i] = (min scale << 4) | scale, 4 bits each. */
typedef struct {
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4];
    uint16_t d;
    uint16_t dmin;
} block_q2_K;
RS_STATIC_ASSERT(sizeof(block_q2_K) == 84, "block_q2_K size");

/* Q3_K: 16 sub-blocks of 16, 6-bit scales packed into 12 bytes, high bit in hmask. */
typedef struct {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
} block_q3_K;
RS_STATIC_ASSERT(sizeof(block_q3_K) == 110, "block_q3_K size");

/* Q4_K: 8 sub-blocks of 32, 6-bit scales and mins packed into 12 bytes. */
typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];
} block_q4_K;
RS_STATIC_ASSERT(sizeof(block_q4_K) == 144, "block_q4_K size");

/* The 6-bit scale and min of sub-block j (0..7) of Q4_K/Q5_K: j < 4 keep them
 * in the low 6 bits of bytes j and j+4; j >= 4 split them into the nibbles of
 * byte j+4 plus the top two bits of bytes j-4 (scale) and j (min). */
static inline void rs_k4_get_scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* The inverse, for j = 0..7 in order (j >= 4 adds bits to bytes j < 4 wrote). */
static inline void rs_k4_put_scale_min(int j, uint8_t *q, int sc, int m) {
    if (j < 4) {
        q[j] = (uint8_t)sc;
        q[j + 4] = (uint8_t)m;
    } else {
        q[j + 4] = (uint8_t)((sc & 0x0f) | ((m & 0x0f) << 4));
        q[j - 4] |= (uint8_t)((sc >> 4) << 6);
        q[j] |= (uint8_t)((m >> 4) << 6);
    }
}

/* Q5_K: as Q4_K plus one high bit per element. */
typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} block_q5_K;
RS_STATIC_ASSERT(sizeof(block_q5_K) == 176, "block_q5_K size");

/* Q6_K: x = d * scale * (q - 32), q 6 bits (4 low in ql, 2 high in qh), 16 int8 scales. */
typedef struct {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
} block_q6_K;
RS_STATIC_ASSERT(sizeof(block_q6_K) == 210, "block_q6_K size");

/* Q8_K: intermediate type for K-quant dot products; d is f32, bsums = sums of 16 qs. */
typedef struct {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
} block_q8_K;
RS_STATIC_ASSERT(sizeof(block_q8_K) == 292, "block_q8_K size");

/* IQ4_NL: x = d * kvalues_iq4nl[q]; nibble order as Q4_0. */
typedef struct {
    uint16_t d;
    uint8_t qs[QK4_NL / 2];
} block_iq4_nl;
RS_STATIC_ASSERT(sizeof(block_iq4_nl) == 18, "block_iq4_nl size");

/* IQ4_XS: 8 sub-blocks of 32 with IQ4_NL's code book and 6-bit scales:
 * x = d * (ls - 32) * kvalues_iq4nl[q], ls = low nibble (scales_l, sub-block
 * 2i in the low half of byte i) | 2 high bits (scales_h, 2 bits a sub-block);
 * each sub-block's 16 bytes of qs hold elements j (low) and 16 + j (high). */
typedef struct {
    uint16_t d;
    uint16_t scales_h;
    uint8_t scales_l[QK_K / 64];
    uint8_t qs[QK_K / 2];
} block_iq4_xs;
RS_STATIC_ASSERT(sizeof(block_iq4_xs) == 136, "block_iq4_xs size");

/* IQ4_XS sub-block b's 6-bit scale, 0..63 (its multiplier of d is ls - 32). */
static inline int rs_iq4_xs_scale(const block_iq4_xs *blk, int b) {
    return ((blk->scales_l[b / 2] >> (4 * (b % 2))) & 0x0f) |
           (((blk->scales_h >> (2 * b)) & 3) << 4);
}

/* The IQ4_NL non-linear code book (same values as GGML's kvalues_iq4nl). */
#define RS_IQ4NL_VALUES                                                                            \
    { -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113 }

#endif

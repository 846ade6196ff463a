/* dot_q_avx512.c — AVX-512 VNNI tile kernels for the 32-element block types:
 * Q8_0, Q4_0, Q5_0, IQ4_NL (against Q8_0 activations), Q4_1, Q5_1 (Q8_1).
 *
 * The weights are decoded to unsigned bytes so that vpdpbusd (u8 x s8 -> s32)
 * can multiply them with the activation bytes directly: the nibble types four
 * blocks per register pair (see "nibble types" below), Q8_0 and the last 1-3
 * blocks of a row two blocks per register in element order. Signed weight types are
 * decoded with an offset (q + 8 for Q4_0, q + 16 for Q5_0, q + 128 for Q8_0 and
 * IQ4_NL), and the offset times sum(x) is subtracted up front: the dot
 * accumulator starts at -offset * sum(x), computed once per activation pair
 * with one more vpdpbusd and shared by all rows of the tile. Each block's
 * partial sums occupy a fixed group of 32-bit lanes; they are converted to
 * f32, scaled by d_w * d_x per lane and accumulated in f32. A tile computes MR
 * weight rows x NC tokens; edge tiles repeat their last row / token so every
 * tile runs the full register-blocked loop. */
#include <immintrin.h>
#include <string.h>

#include "backend/cpu/iq4nl_avx512.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/qblock_types.h"
#include "dtype/blocks.h"

#define INLINE static inline __attribute__((always_inline))

/* Tile arrays have this constant size (MR, NC <= it) and are indexed only with
 * compile-time constants after inlining, so the compiler keeps them in
 * registers (a variable-length array would live on the stack). */
enum { TILE_MAX = 4 };

static inline uint16_t ld16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static inline uint32_t ld32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* [f(h0) x 8 | f(h1) x 8] from two fp16 values. */
INLINE __m512 half_pair(uint16_t h0, uint16_t h1) {
    __m256i hh = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)h0)),
                                         _mm_set1_epi16((short)h1), 1);
    return _mm512_cvtph_ps(hh);
}

/* Offset added to the weights to make them unsigned. */
INLINE int offset_of(const int T) {
    switch (T) {
    case W_Q4_0:
        return 8;
    case W_Q5_0:
        return 16;
    case W_Q8_0:
    case W_IQ4_NL:
        return 128;
    default:
        return 0;
    }
}

/* 16 bytes of packed nibbles of two blocks -> 64 nibble values in element
 * order: [lo(b0) hi(b0) lo(b1) hi(b1)], one 128-bit lane each. */
INLINE __m512i nibbles_pair(const uint8_t *q0, const uint8_t *q1) {
    const long long s4 = 0x0004000400040004ll; /* 16-bit shift counts */
    const __m512i shift = _mm512_set_epi64(s4, s4, 0, 0, s4, s4, 0, 0);
    __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)q0));
    v = _mm512_mask_broadcast_i32x4(v, 0xff00, _mm_loadu_si128((const __m128i *)q1));
    return _mm512_and_si512(_mm512_srlv_epi16(v, shift), _mm512_set1_epi8(0x0f));
}

/* The 5th bits of two Q5 blocks (qh words) added to their nibbles. */
INLINE __m512i add_high_bits(__m512i v, const uint8_t *qh0, const uint8_t *qh1) {
    __mmask64 m = (__mmask64)ld32(qh0) | (__mmask64)ld32(qh1) << 32;
    return _mm512_mask_add_epi8(v, m, v, _mm512_set1_epi8(0x10));
}

/* Two weight blocks at p as 64 unsigned bytes; the second is only read when
 * `two` (a lone last block decodes the first one twice and is masked later). */
INLINE __m512i decode_pair(const int T, const uint8_t *p, bool two) {
    const size_t B = rs_qb_block_bytes(T);
    const uint8_t *p1 = two ? p + B : p;
    switch (T) {
    case W_Q8_0: {
        __m512i v = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p + 2)));
        v = _mm512_inserti64x4(v, _mm256_loadu_si256((const __m256i *)(p1 + 2)), 1);
        return _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80));
    }
    case W_Q4_0:
        return nibbles_pair(p + 2, p1 + 2);
    case W_IQ4_NL:
        return _mm512_shuffle_epi8(rs_iq4nl_u8_table(), nibbles_pair(p + 2, p1 + 2));
    case W_Q5_0:
        return add_high_bits(nibbles_pair(p + 6, p1 + 6), p + 2, p1 + 2);
    case W_Q4_1:
        return nibbles_pair(p + 4, p1 + 4);
    default:
        return add_high_bits(nibbles_pair(p + 8, p1 + 8), p + 4, p1 + 4);
    }
}

/* Activation pair: 64 signed bytes, scales [d0 x8 | d1 x8] (0 for a missing
 * second block), and for Q8_1 the s terms [s0/8 x8 | s1/8 x8] (8 lanes add up
 * to s). */
typedef struct {
    __m512i q;
    __m512 d;
    __m512 s;
    __m512i off; /* -offset * sum(x) per lane group */
} act_pair;

INLINE act_pair load_act(const int T, const uint8_t *p, bool two) {
    const size_t B = rs_qb_uses_q8_1(T) ? sizeof(block_q8_1) : sizeof(block_q8_0);
    const size_t qo = rs_qb_uses_q8_1(T) ? 4 : 2;
    act_pair a;
    __m256i q0 = _mm256_loadu_si256((const __m256i *)(p + qo));
    __m256i q1 = two ? _mm256_loadu_si256((const __m256i *)(p + B + qo)) : _mm256_setzero_si256();
    a.q = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
    a.d = half_pair(ld16(p), two ? ld16(p + B) : 0);
    if (rs_qb_uses_q8_1(T))
        a.s = _mm512_mul_ps(half_pair(ld16(p + 2), two ? ld16(p + B + 2) : 0),
                            _mm512_set1_ps(0.125f));
    else
        a.s = _mm512_setzero_ps();
    if (offset_of(T) != 0) {
        __m512i o = _mm512_set1_epi8((char)offset_of(T));
        a.off = _mm512_sub_epi32(_mm512_setzero_si512(),
                                 _mm512_dpbusd_epi32(_mm512_setzero_si512(), o, a.q));
    } else {
        a.off = _mm512_setzero_si512();
    }
    return a;
}

/* One step (a pair of blocks, or a lone last block) for the whole tile. */
typedef struct {
    __m512 v[TILE_MAX][TILE_MAX];
} acc_tile; /* passed by value so that it stays in registers */

INLINE acc_tile tile_step(const int T, const int MR, const int NC, const uint8_t *const *wr,
                          const uint8_t *const *xr, int64_t b, bool two, acc_tile acc) {
    const size_t WB = rs_qb_block_bytes(T);
    const size_t XB = rs_qb_uses_q8_1(T) ? sizeof(block_q8_1) : sizeof(block_q8_0);
    act_pair a[TILE_MAX];
    RS_UNROLL for (int c = 0; c < NC; c++) a[c] = load_act(T, xr[c] + (size_t)b * XB, two);
    RS_UNROLL for (int r = 0; r < MR; r++) {
        const uint8_t *p = wr[r] + (size_t)b * WB;
        __m512i wv = decode_pair(T, p, two);
        __m512 wd = half_pair(ld16(p), ld16(two ? p + WB : p));
        __m512 wm = rs_qb_uses_q8_1(T) ? half_pair(ld16(p + 2), ld16(two ? p + WB + 2 : p + 2))
                                       : _mm512_setzero_ps();
        RS_UNROLL for (int c = 0; c < NC; c++) {
            __m512i isum = _mm512_dpbusd_epi32(a[c].off, wv, a[c].q);
            acc.v[r][c] =
                _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(wd, a[c].d), acc.v[r][c]);
            if (rs_qb_uses_q8_1(T)) acc.v[r][c] = _mm512_fmadd_ps(wm, a[c].s, acc.v[r][c]);
        }
    }
    return acc;
}

INLINE void tile_full(const int T, const int MR, const int NC, int64_t n, const uint8_t *w,
                      size_t ws, int nr, const uint8_t *x, size_t xs, int nc, float *y, size_t ys) {
    const uint8_t *wr[TILE_MAX], *xr[TILE_MAX];
    RS_UNROLL for (int r = 0; r < MR; r++) wr[r] = w + (size_t)(r < nr ? r : nr - 1) * ws;
    RS_UNROLL for (int c = 0; c < NC; c++) xr[c] = x + (size_t)(c < nc ? c : nc - 1) * xs;
    acc_tile acc;
    RS_UNROLL for (int r = 0; r < MR; r++) RS_UNROLL for (int c = 0; c < NC; c++) acc.v[r][c] =
        _mm512_setzero_ps();
    int64_t nb = n / 32, b = 0;
    /* decode: prefetch the next tile's rows (see rs_cpu_prefetch) */
    const uint8_t *pf = w + (size_t)MR * ws;
    const size_t pf_step = (size_t)MR * 2 * rs_qb_block_bytes(T);
    for (; b + 2 <= nb; b += 2) {
        if (NC == 1) pf = rs_cpu_prefetch(pf, pf_step);
        acc = tile_step(T, MR, NC, wr, xr, b, true, acc);
    }
    if (b < nb) acc = tile_step(T, MR, NC, wr, xr, b, false, acc);
    RS_UNROLL for (int c = 0; c < NC; c++)
        RS_UNROLL for (int r = 0; r < MR; r++) if (c < nc && r < nr) y[(size_t)c * ys + (size_t)r] =
            _mm512_reduce_add_ps(acc.v[r][c]);
}

/* ---- nibble types: four blocks per register pair ---------------------------
 * The 16 packed bytes of four blocks fill one register, one block per 128-bit
 * lane; masking gives elements 0-15 of every block ("lo"), shifting elements
 * 16-31 ("hi"). The activations are gathered the same way once per token.
 * Two vpdpbusd leave block k's sum in lanes 4k..4k+3, so one f32 scale vector
 * [s0 x4, s1 x4, s2 x4, s3 x4] covers all four blocks. The four weight scales
 * (and mins, and the Q5 high-bit words) are picked out of the block bytes with
 * a single word permute; the min terms m * s (Q4_1, Q5_1) ride along in lanes
 * 4-7 of the same scale product. This needs about a third fewer instructions
 * per block than the pair layout above, which serves Q8_0 and the last 1-3
 * blocks of a row. */

INLINE int qs_offset(const int T) {
    switch (T) {
    case W_Q5_0:
        return 6;
    case W_Q4_1:
        return 4;
    case W_Q5_1:
        return 8;
    default:
        return 2;
    }
}

/* Word offset of qh in a block (Q5 types), else -1. */
INLINE int qh_word(const int T) {
    return T == W_Q5_0 ? 1 : T == W_Q5_1 ? 2 : -1;
}

/* 16 words of 4 blocks starting at p (block size WB): lanes 0-3 the first
 * words (d), 4-7 the second (m for Q4_1/Q5_1, s for Q8_1), 8-11 / 12-15 the
 * low / high halves of qh when qh >= 0. */
INLINE __m256i quad_words(const uint8_t *p, const int WB, const int qh) {
    const int H = WB / 2, q = qh < 0 ? 0 : qh;
    const __m512i idx = _mm512_zextsi256_si512(
        _mm256_setr_epi16(0, H, 2 * H, 3 * H, 1, H + 1, 2 * H + 1, 3 * H + 1, q, H + q, 2 * H + q,
                          3 * H + q, q + 1, H + q + 1, 2 * H + q + 1, 3 * H + q + 1));
    const int need = 2 * (3 * H + (qh < 0 ? 1 : q + 1)) + 2; /* bytes up to the last word */
    __m512i words;
    if (need <= 64) {
        words = _mm512_permutexvar_epi16(idx, _mm512_maskz_loadu_epi8(~0ull >> (64 - need), p));
    } else {
        __m512i hi = _mm512_maskz_loadu_epi8(~0ull >> (128 - need), p + 64);
        words = _mm512_permutex2var_epi16(_mm512_loadu_si512(p), idx, hi);
    }
    return _mm512_castsi512_si256(words);
}

/* 16 bytes at p + off of four blocks (stride B), one per 128-bit lane. */
INLINE __m512i gather4x16(const uint8_t *p, size_t B, int off) {
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p + off)));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + B + off)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 2 * B + off)), 2);
    return _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 3 * B + off)), 3);
}

typedef struct {
    __m512i lo, hi; /* activation bytes 0-15 / 16-31 of each block */
    __m512i off;    /* -offset * sum(x) per block lane group */
    __m256 sc;      /* d of the 4 blocks, then s / 4 (Q8_1) or 0 */
} act_quad;

INLINE act_quad load_act_quad(const int T, const uint8_t *p) {
    const int XB = rs_qb_uses_q8_1(T) ? (int)sizeof(block_q8_1) : (int)sizeof(block_q8_0);
    const int qo = rs_qb_uses_q8_1(T) ? 4 : 2;
    act_quad a;
    a.lo = gather4x16(p, (size_t)XB, qo);
    a.hi = gather4x16(p, (size_t)XB, qo + 16);
    __m256 w = _mm256_cvtph_ps(_mm256_castsi256_si128(quad_words(p, XB, -1)));
    /* lanes 4-7: s / 4, so that four lanes of a block add up to m * s */
    a.sc = rs_qb_uses_q8_1(T)
               ? _mm256_mul_ps(w, _mm256_setr_ps(1, 1, 1, 1, 0.25f, 0.25f, 0.25f, 0.25f))
               : _mm256_blend_ps(w, _mm256_setzero_ps(), 0xf0);
    if (offset_of(T) != 0) {
        const __m512i o = _mm512_set1_epi8((char)offset_of(T));
        __m512i t = _mm512_dpbusd_epi32(_mm512_setzero_si512(), o, a.lo);
        a.off = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(t, o, a.hi));
    } else {
        a.off = _mm512_setzero_si512();
    }
    return a;
}

/* Four weight blocks as lo / hi unsigned bytes; `words` from quad_words. */
INLINE void decode_quad(const int T, const uint8_t *p, __m256i words, __m512i *lo, __m512i *hi) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512i v = gather4x16(p, rs_qb_block_bytes(T), qs_offset(T));
    *lo = _mm512_and_si512(v, m4);
    *hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    if (qh_word(T) >= 0) { /* bit j of qh -> element j: lo takes bits 0-15, hi 16-31 */
        __m128i h = _mm256_extracti128_si256(words, 1);
        const __m512i sixteen = _mm512_set1_epi8(16);
        *lo = _mm512_mask_add_epi8(*lo, (__mmask64)_mm_cvtsi128_si64(h), *lo, sixteen);
        *hi = _mm512_mask_add_epi8(*hi, (__mmask64)_mm_extract_epi64(h, 1), *hi, sixteen);
    }
    if (T == W_IQ4_NL) {
        *lo = _mm512_shuffle_epi8(rs_iq4nl_u8_table(), *lo);
        *hi = _mm512_shuffle_epi8(rs_iq4nl_u8_table(), *hi);
    }
}

INLINE acc_tile quad_step(const int T, const int MR, const int NC, const uint8_t *const *wr,
                          const uint8_t *const *xr, int64_t b, acc_tile acc) {
    const size_t WB = rs_qb_block_bytes(T);
    const size_t XB = rs_qb_uses_q8_1(T) ? sizeof(block_q8_1) : sizeof(block_q8_0);
    const __m512i lanes_d = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    const __m512i lanes_m = _mm512_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7);
    act_quad a[TILE_MAX];
    RS_UNROLL for (int c = 0; c < NC; c++) a[c] = load_act_quad(T, xr[c] + (size_t)b * XB);
    RS_UNROLL for (int r = 0; r < MR; r++) {
        const uint8_t *p = wr[r] + (size_t)b * WB;
        __m256i words = quad_words(p, (int)WB, qh_word(T));
        __m256 wsc = _mm256_cvtph_ps(_mm256_castsi256_si128(words));
        __m512i lo, hi;
        decode_quad(T, p, words, &lo, &hi);
        RS_UNROLL for (int c = 0; c < NC; c++) {
            __m512 s = _mm512_castps256_ps512(_mm256_mul_ps(wsc, a[c].sc));
            __m512i isum =
                _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a[c].off, lo, a[c].lo), hi, a[c].hi);
            acc.v[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum),
                                          _mm512_permutexvar_ps(lanes_d, s), acc.v[r][c]);
            if (rs_qb_uses_q8_1(T))
                acc.v[r][c] = _mm512_add_ps(acc.v[r][c], _mm512_permutexvar_ps(lanes_m, s));
        }
    }
    return acc;
}

INLINE void quad_tile(const int T, const int MR, const int NC, int64_t n, const uint8_t *w,
                      size_t ws, int nr, const uint8_t *x, size_t xs, int nc, float *y, size_t ys) {
    const uint8_t *wr[TILE_MAX], *xr[TILE_MAX];
    RS_UNROLL for (int r = 0; r < MR; r++) wr[r] = w + (size_t)(r < nr ? r : nr - 1) * ws;
    RS_UNROLL for (int c = 0; c < NC; c++) xr[c] = x + (size_t)(c < nc ? c : nc - 1) * xs;
    acc_tile acc;
    RS_UNROLL for (int r = 0; r < MR; r++) RS_UNROLL for (int c = 0; c < NC; c++) acc.v[r][c] =
        _mm512_setzero_ps();
    int64_t nb = n / 32, b = 0;
    /* decode: prefetch the next tile's rows (see rs_cpu_prefetch) */
    const uint8_t *pf = w + (size_t)MR * ws;
    for (; b + 4 <= nb; b += 4) {
        if (NC == 1) pf = rs_cpu_prefetch(pf, (size_t)MR * 4 * rs_qb_block_bytes(T));
        acc = quad_step(T, MR, NC, wr, xr, b, acc);
    }
    for (; b + 2 <= nb; b += 2) acc = tile_step(T, MR, NC, wr, xr, b, true, acc);
    if (b < nb) acc = tile_step(T, MR, NC, wr, xr, b, false, acc);
    RS_UNROLL for (int c = 0; c < NC; c++)
        RS_UNROLL for (int r = 0; r < MR; r++) if (c < nc && r < nr) y[(size_t)c * ys + (size_t)r] =
            _mm512_reduce_add_ps(acc.v[r][c]);
}

enum { MR = 4, NC = 4, MR1 = 4 };

RS_CPU_DEFINE_KERNEL(q8_0_avx512, tile_full, W_Q8_0, MR, NC, MR1, RS_SIMD_AVX512);
RS_CPU_DEFINE_KERNEL(q4_0_avx512, quad_tile, W_Q4_0, MR, NC, MR1, RS_SIMD_AVX512);
RS_CPU_DEFINE_KERNEL(q5_0_avx512, quad_tile, W_Q5_0, MR, NC, MR1, RS_SIMD_AVX512);
RS_CPU_DEFINE_KERNEL(iq4_nl_avx512, quad_tile, W_IQ4_NL, MR, NC, MR1, RS_SIMD_AVX512);
RS_CPU_DEFINE_KERNEL(q4_1_avx512, quad_tile, W_Q4_1, MR, NC, MR1, RS_SIMD_AVX512);
RS_CPU_DEFINE_KERNEL(q5_1_avx512, quad_tile, W_Q5_1, MR, NC, MR1, RS_SIMD_AVX512);

/* dot_q_avx2.c — AVX2 tile kernels for the 32-element block types: Q8_0, Q4_0,
 * Q5_0, IQ4_NL (against Q8_0 activations), Q4_1, Q5_1 (against Q8_1).
 *
 * One block per 256-bit register. vpmaddubsw multiplies unsigned weight bytes
 * with signed activation bytes into 16-bit pair sums, vpmaddwd with ones adds
 * pairs to 32 bits. Small unsigned weights (Q4_0, Q5_0 as q + 8 / q + 16;
 * Q4_1, Q5_1) go in directly and the offset times sum(x) is subtracted via an
 * accumulator start computed once per activation block and shared by all
 * rows of the tile. Full-range signed weights (Q8_0, IQ4_NL) would saturate
 * the 16-bit sums as unsigned bytes, so they use the sign trick: |w| times
 * x with w's sign. Block sums are converted to f32 and scaled by d_w * d_x. */
#include <immintrin.h>
#include <string.h>

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

INLINE __m256 h2f8(const uint8_t *p) {
    return _mm256_set1_ps(_cvtsh_ss(ld16(p)));
}

INLINE bool sign_trick(const int T) {
    return T == W_Q8_0 || T == W_IQ4_NL;
}
INLINE int offset_of(const int T) {
    return T == W_Q4_0 ? 8 : T == W_Q5_0 ? 16 : 0;
}

/* 16 bytes of packed nibbles -> 32 values in element order. */
INLINE __m256i nibbles(const uint8_t *q) {
    __m128i v = _mm_loadu_si128((const __m128i *)q);
    __m256i t = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
    return _mm256_and_si256(t, _mm256_set1_epi8(0x0f));
}

/* The 32 bits of qh as 32 bytes: 0x10 where the bit is set. */
INLINE __m256i high_bits(const uint8_t *qh) {
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                            2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201ll);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)ld32(qh)), spread);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* A weight block as 32 bytes: unsigned (offset) or signed (sign-trick types). */
INLINE __m256i decode(const int T, const uint8_t *p) {
    switch (T) {
    case W_Q8_0:
        return _mm256_loadu_si256((const __m256i *)(p + 2));
    case W_Q4_0:
        return nibbles(p + 2);
    case W_IQ4_NL: {
        const __m256i table = _mm256_broadcastsi128_si256(_mm_setr_epi8(
            -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113));
        return _mm256_shuffle_epi8(table, nibbles(p + 2));
    }
    case W_Q5_0:
        return _mm256_or_si256(nibbles(p + 6), high_bits(p + 2));
    case W_Q4_1:
        return nibbles(p + 4);
    default:
        return _mm256_or_si256(nibbles(p + 8), high_bits(p + 4));
    }
}

typedef struct {
    __m256i q;
    __m256 d;
    __m256 s;    /* Q8_1: s / 8 per lane (8 lanes add up to s) */
    __m256i off; /* -offset * sum(x), spread over the lanes */
} act_blk;

INLINE act_blk load_act(const int T, const uint8_t *p) {
    act_blk a;
    a.q = _mm256_loadu_si256((const __m256i *)(p + (rs_qb_uses_q8_1(T) ? 4 : 2)));
    a.d = h2f8(p);
    a.s = rs_qb_uses_q8_1(T) ? _mm256_mul_ps(h2f8(p + 2), _mm256_set1_ps(0.125f))
                             : _mm256_setzero_ps();
    if (offset_of(T))
        a.off = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8((char)offset_of(T)), a.q),
                                  _mm256_set1_epi16(-1));
    else
        a.off = _mm256_setzero_si256();
    return a;
}

INLINE void tile_full(const int T, const int MR, const int NC, int64_t n, const uint8_t *w,
                      size_t ws, int nr, const uint8_t *x, size_t xs, int nc, float *y, size_t ys) {
    const size_t WB = rs_qb_block_bytes(T),
                 XB = rs_qb_uses_q8_1(T) ? sizeof(block_q8_1) : sizeof(block_q8_0);
    const uint8_t *wr[TILE_MAX], *xr[TILE_MAX];
    RS_UNROLL for (int r = 0; r < MR; r++) wr[r] = w + (size_t)(r < nr ? r : nr - 1) * ws;
    RS_UNROLL for (int c = 0; c < NC; c++) xr[c] = x + (size_t)(c < nc ? c : nc - 1) * xs;
    __m256 acc[TILE_MAX][TILE_MAX];
    RS_UNROLL for (int r = 0; r < MR; r++) RS_UNROLL for (int c = 0; c < NC; c++) acc[r][c] =
        _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    /* decode: prefetch the next tile's rows (see rs_cpu_prefetch) */
    const uint8_t *pf = w + (size_t)MR * ws;
    for (int64_t b = 0; b < n / 32; b++) {
        if (NC == 1) pf = rs_cpu_prefetch(pf, (size_t)MR * WB);
        act_blk a[TILE_MAX];
        RS_UNROLL for (int c = 0; c < NC; c++) a[c] = load_act(T, xr[c] + (size_t)b * XB);
        RS_UNROLL for (int r = 0; r < MR; r++) {
            const uint8_t *p = wr[r] + (size_t)b * WB;
            __m256i wv = decode(T, p);
            __m256 wd = h2f8(p);
            __m256i wabs = sign_trick(T) ? _mm256_sign_epi8(wv, wv) : wv;
            RS_UNROLL for (int c = 0; c < NC; c++) {
                __m256i xq = sign_trick(T) ? _mm256_sign_epi8(a[c].q, wv) : a[c].q;
                __m256i isum = _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, xq), ones);
                if (offset_of(T)) isum = _mm256_add_epi32(isum, a[c].off);
                acc[r][c] =
                    _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(wd, a[c].d), acc[r][c]);
                if (rs_qb_uses_q8_1(T)) acc[r][c] = _mm256_fmadd_ps(h2f8(p + 2), a[c].s, acc[r][c]);
            }
        }
    }
    RS_UNROLL for (int c = 0; c < NC; c++)
        RS_UNROLL for (int r = 0; r < MR; r++) if (c < nc && r < nr) {
        __m128 s =
            _mm_add_ps(_mm256_castps256_ps128(acc[r][c]), _mm256_extractf128_ps(acc[r][c], 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        y[(size_t)c * ys + (size_t)r] = _mm_cvtss_f32(s);
    }
}

enum { MR = 2, NC = 3, MR1 = 4 };

RS_CPU_DEFINE_KERNEL(q8_0_avx2, tile_full, W_Q8_0, MR, NC, MR1, RS_SIMD_AVX2);
RS_CPU_DEFINE_KERNEL(q4_0_avx2, tile_full, W_Q4_0, MR, NC, MR1, RS_SIMD_AVX2);
RS_CPU_DEFINE_KERNEL(q5_0_avx2, tile_full, W_Q5_0, MR, NC, MR1, RS_SIMD_AVX2);
RS_CPU_DEFINE_KERNEL(iq4_nl_avx2, tile_full, W_IQ4_NL, MR, NC, MR1, RS_SIMD_AVX2);
RS_CPU_DEFINE_KERNEL(q4_1_avx2, tile_full, W_Q4_1, MR, NC, MR1, RS_SIMD_AVX2);
RS_CPU_DEFINE_KERNEL(q5_1_avx2, tile_full, W_Q5_1, MR, NC, MR1, RS_SIMD_AVX2);

/* dot_k_avx512.c — AVX-512 tile kernels for the K-quants (Q2_K, Q3_K, Q4_K,
 * Q5_K, Q6_K) against Q8_K activations.
 *
 * Per 256-element super-block the weights are decoded to four registers of
 * 64 unsigned bytes (Q3_K and Q6_K with an offset: q + 4, q + 32). vpmaddubsw
 * multiplies them with the activation bytes into 16-bit pair sums (no
 * saturation: at most 2 * 63 * 127), and vpdpwssd multiplies those with the
 * sub-block scales, replicated per 16-bit lane, into 32-bit sums — so the whole
 * super-block stays in exact integers. The min terms (and the offsets times
 * the scales) come from the Q8_K bsums with one vpmaddwd. Two f32 FMAs per
 * super-block apply d * d_x and dmin * d_x. Q4_K/Q5_K nibbles hold sub-blocks
 * (2j, 2j+1) in the low/high halves of 32 bytes, so their activations are
 * regrouped (64 bytes = elements [0,32) + [64,96), then [32,64) + [96,128))
 * once per token and shared by the rows of the tile. */
#include <immintrin.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "backend/cpu/kquant_scales.h"
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

static inline float h2f(uint16_t h) {
    return _cvtsh_ss(h);
}

/* Lane pattern helpers: 32 bytes of a, then 32 of b. */
INLINE __m512i bytes2(int a, int b) {
    return _mm512_inserti64x4(_mm512_set1_epi8((char)a), _mm256_set1_epi8((char)b), 1);
}
INLINE __m512i words2(int a, int b) {
    return _mm512_inserti64x4(_mm512_set1_epi16((short)a), _mm256_set1_epi16((short)b), 1);
}

/* The 16-bit lane scale vectors: the 32 pair-sums of a 64-byte register
 * cover sub-blocks of 16 (4 per register) or 32 elements (2 per register). */
INLINE __m512i scales16x4(__m512i s16, int first) {
    /* lanes 8k..8k+7 <- scale first + k */
    const __m512i idx = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1,
                                         1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_epi16(_mm512_add_epi16(idx, _mm512_set1_epi16((short)first)), s16);
}
INLINE __m512i scales32x2(__m512i s16, int a, int b) {
    /* lanes 0-15 <- scale a, 16-31 <- scale b */
    return _mm512_permutexvar_epi16(words2(a, b), s16);
}

typedef struct {
    __m512i q[4];  /* activation bytes in the order the weights decode to */
    __m256i bsums; /* 16 sums of 16 */
    float d;
} kact;

INLINE kact load_kact(const int T, const block_q8_K *x) {
    kact a;
    const uint8_t *q = (const uint8_t *)x->qs;
    if (T == RS_KQ_Q4 || T == RS_KQ_Q5) {
        RS_UNROLL for (int h = 0; h < 2; h++) {
            const uint8_t *p = q + 128 * h;
            a.q[2 * h] =
                _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p)),
                                   _mm256_loadu_si256((const __m256i *)(p + 64)), 1);
            a.q[2 * h + 1] = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p + 32))),
                _mm256_loadu_si256((const __m256i *)(p + 96)), 1);
        }
    } else {
        RS_UNROLL for (int k = 0; k < 4; k++) a.q[k] = _mm512_loadu_si512(q + 64 * k);
    }
    a.bsums = _mm256_loadu_si256((const __m256i *)x->bsums);
    a.d = x->d;
    return a;
}

/* A decoded weight super-block: bytes, lane scales, min multipliers per
 * group of 16 (for vpmaddwd with the bsums) and the float scales. */
typedef struct {
    __m512i q[4];
    __m512i sc[4];
    __m256i mins;
    float d, dmin;
} kweights;

INLINE void decode_q4_q5(const int T, const uint8_t *p, kweights *w) {
    const block_q4_K *b4 = (const block_q4_K *)p;
    const uint8_t *qs = T == RS_KQ_Q4 ? b4->qs : ((const block_q5_K *)p)->qs;
    const uint8_t *scales = b4->scales;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    RS_UNROLL for (int h = 0; h < 2; h++) {
        __m512i v = _mm512_loadu_si512(qs + 64 * h);
        w->q[2 * h] = _mm512_and_si512(v, m4);
        w->q[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
    if (T == RS_KQ_Q5) {
        const __m512i qh = _mm512_broadcast_i64x4(
            _mm256_loadu_si256((const __m256i *)((const block_q5_K *)p)->qh));
        const __m512i sixteen = _mm512_set1_epi8(16);
        /* register k holds sub-blocks (a, b); their 5th bits are bits a, b of qh */
        static const int subs[4][2] = {{0, 2}, {1, 3}, {4, 6}, {5, 7}};
        RS_UNROLL for (int k = 0; k < 4; k++) {
            __mmask64 m = _mm512_test_epi8_mask(qh, bytes2(1 << subs[k][0], 1 << subs[k][1]));
            w->q[k] = _mm512_mask_add_epi8(w->q[k], m, w->q[k], sixteen);
        }
    }
    uint64_t sc, mn;
    rs_kq_unpack_q4k_words(scales, &sc, &mn);
    __m512i s16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));
    w->sc[0] = scales32x2(s16, 0, 2);
    w->sc[1] = scales32x2(s16, 1, 3);
    w->sc[2] = scales32x2(s16, 4, 6);
    w->sc[3] = scales32x2(s16, 5, 7);
    /* each min covers two groups of 16 */
    __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn));
    w->mins =
        _mm256_permutexvar_epi16(_mm256_setr_epi16(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7),
                                 _mm256_castsi128_si256(m16));
    w->d = h2f(b4->d);
    w->dmin = h2f(b4->dmin);
}

INLINE void decode_q6(const uint8_t *p, kweights *w) {
    const block_q6_K *b = (const block_q6_K *)p;
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    RS_UNROLL for (int h = 0; h < 2; h++) {
        __m512i ql = _mm512_loadu_si512(b->ql + 64 * h);
        __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b->qh + 32 * h)));
        /* elements [0,32) take qh bits 0-1, [32,64) bits 2-3, [64,96) 4-5, [96,128) 6-7 */
        __m512i h_lo = _mm512_and_si512(_mm512_sllv_epi16(qh, words2(4, 2)), m30);
        __m512i h_hi = _mm512_and_si512(_mm512_srlv_epi16(qh, words2(0, 2)), m30);
        w->q[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), h_lo);
        w->q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), h_hi);
    }
    __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
    __m512i s = _mm512_castsi256_si512(s16);
    RS_UNROLL for (int k = 0; k < 4; k++) w->sc[k] = scales16x4(s, 4 * k);
    w->mins = _mm256_slli_epi16(s16, 5); /* offset 32 times the scales */
    w->d = h2f(b->d);
    w->dmin = 0;
}

INLINE void decode_q2_q3(const int T, const uint8_t *p, kweights *w) {
    const uint8_t *qs = T == RS_KQ_Q2 ? ((const block_q2_K *)p)->qs : ((const block_q3_K *)p)->qs;
    const __m512i m3 = _mm512_set1_epi8(3);
    RS_UNROLL for (int h = 0; h < 2; h++) {
        __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(qs + 32 * h)));
        w->q[2 * h] = _mm512_and_si512(_mm512_srlv_epi16(v, words2(0, 2)), m3);
        w->q[2 * h + 1] = _mm512_and_si512(_mm512_srlv_epi16(v, words2(4, 6)), m3);
    }
    __m256i s16;
    if (T == RS_KQ_Q2) {
        const block_q2_K *b = (const block_q2_K *)p;
        __m128i raw = _mm_loadu_si128((const __m128i *)b->scales);
        s16 = _mm256_cvtepu8_epi16(_mm_and_si128(raw, _mm_set1_epi8(0x0f)));
        w->mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0f)));
        w->d = h2f(b->d);
        w->dmin = h2f(b->dmin);
    } else {
        const block_q3_K *b = (const block_q3_K *)p;
        const __m512i hm = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)b->hmask));
        const __m512i four = _mm512_set1_epi8(4);
        /* register k = 2h + j2 holds elements 128h + 64 j2 + [0, 64): bits 4h + 2 j2 (+1) */
        RS_UNROLL for (int k = 0; k < 4; k++) {
            int bit = 4 * (k / 2) + 2 * (k % 2);
            __mmask64 m = _mm512_test_epi8_mask(hm, bytes2(1 << bit, 1 << (bit + 1)));
            w->q[k] = _mm512_mask_add_epi8(w->q[k], m, w->q[k], four);
        }
        uint64_t sc[2];
        rs_kq_unpack_q3k_words(b->scales, sc);
        __m128i raw = _mm_set_epi64x((long long)sc[1], (long long)sc[0]);
        s16 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(raw), _mm256_set1_epi16(32));
        w->mins = _mm256_slli_epi16(s16, 2); /* offset 4 times the scales */
        w->d = h2f(b->d);
        w->dmin = 0;
    }
    __m512i s = _mm512_castsi256_si512(s16);
    RS_UNROLL for (int k = 0; k < 4; k++) w->sc[k] = scales16x4(s, 4 * k);
}

INLINE void decode_k(const int T, const uint8_t *p, kweights *w) {
    if (T == RS_KQ_Q4 || T == RS_KQ_Q5)
        decode_q4_q5(T, p, w);
    else if (T == RS_KQ_Q6)
        decode_q6(p, w);
    else
        decode_q2_q3(T, p, w);
}

INLINE void ktile_full(const int T, const int MR, const int NC, int64_t n, const uint8_t *w,
                       size_t ws, int nr, const uint8_t *x, size_t xs, int nc, float *y,
                       size_t ys) {
    const size_t WB = rs_kq_block_bytes(T);
    const uint8_t *wr[TILE_MAX], *xr[TILE_MAX];
    RS_UNROLL for (int r = 0; r < MR; r++) wr[r] = w + (size_t)(r < nr ? r : nr - 1) * ws;
    RS_UNROLL for (int c = 0; c < NC; c++) xr[c] = x + (size_t)(c < nc ? c : nc - 1) * xs;
    __m512 acc[TILE_MAX][TILE_MAX];
    RS_UNROLL for (int r = 0; r < MR; r++) RS_UNROLL for (int c = 0; c < NC; c++) acc[r][c] =
        _mm512_setzero_ps();
    /* decode: prefetch the next tile's rows (see rs_cpu_prefetch) */
    const uint8_t *pf = w + (size_t)MR * ws;
    for (int64_t b = 0; b < n / QK_K; b++) {
        if (NC == 1) pf = rs_cpu_prefetch(pf, (size_t)MR * WB);
        kact a[TILE_MAX];
        RS_UNROLL for (int c = 0; c < NC; c++) a[c] = load_kact(T, (const block_q8_K *)xr[c] + b);
        RS_UNROLL for (int r = 0; r < MR; r++) {
            kweights kw;
            decode_k(T, wr[r] + (size_t)b * WB, &kw);
            RS_UNROLL for (int c = 0; c < NC; c++) {
                __m512i isum = _mm512_setzero_si512();
                RS_UNROLL for (int k = 0; k < 4; k++) isum =
                    _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(kw.q[k], a[c].q[k]), kw.sc[k]);
                __m512i mins = _mm512_zextsi256_si512(_mm256_madd_epi16(a[c].bsums, kw.mins));
                if (rs_kq_has_dmin(T)) {
                    acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum),
                                                _mm512_set1_ps(kw.d * a[c].d), acc[r][c]);
                    acc[r][c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mins),
                                                 _mm512_set1_ps(kw.dmin * a[c].d), acc[r][c]);
                } else {
                    isum = _mm512_sub_epi32(isum, mins);
                    acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum),
                                                _mm512_set1_ps(kw.d * a[c].d), acc[r][c]);
                }
            }
        }
    }
    RS_UNROLL for (int c = 0; c < NC; c++)
        RS_UNROLL for (int r = 0; r < MR; r++) if (c < nc && r < nr) y[(size_t)c * ys + (size_t)r] =
            _mm512_reduce_add_ps(acc[r][c]);
}

enum { MR = 4, NC = 3, MR1 = 4 };

RS_CPU_DEFINE_KERNEL(q2_K_avx512, ktile_full, RS_KQ_Q2, MR, NC, MR1, RS_SIMD_AVX512);
RS_CPU_DEFINE_KERNEL(q3_K_avx512, ktile_full, RS_KQ_Q3, MR, NC, MR1, RS_SIMD_AVX512);
RS_CPU_DEFINE_KERNEL(q4_K_avx512, ktile_full, RS_KQ_Q4, MR, NC, MR1, RS_SIMD_AVX512);
RS_CPU_DEFINE_KERNEL(q5_K_avx512, ktile_full, RS_KQ_Q5, MR, NC, MR1, RS_SIMD_AVX512);
RS_CPU_DEFINE_KERNEL(q6_K_avx512, ktile_full, RS_KQ_Q6, MR, NC, MR1, RS_SIMD_AVX512);

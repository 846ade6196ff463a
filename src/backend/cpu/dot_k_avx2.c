/* dot_k_avx2.c — AVX2 tile kernels for the K-quants (Q2_K, Q3_K, Q4_K, Q5_K,
 * Q6_K) against Q8_K activations.
 *
 * A super-block is decoded into eight registers of 32 unsigned bytes in
 * element order (Q3_K and Q6_K with an offset: q + 4, q + 32). vpmaddubsw
 * makes 16-bit pair sums with the activation bytes (at most 2 * 63 * 127, no
 * saturation), vpmaddwd multiplies them by the sub-block scale replicated per
 * 16-bit lane and adds pairs into exact 32-bit sums. The min terms (and the
 * offsets times the scales) come from the Q8_K bsums with one vpmaddwd, and
 * two f32 FMAs per super-block apply d * d_x and dmin * d_x. */
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

static inline float h2f(uint16_t h) {
    return _cvtsh_ss(h);
}

/* Lane scales for register k: 16 words of scale k (sub-blocks of 32) or 8 of
 * scale 2k then 8 of 2k + 1 (sub-blocks of 16); s16 holds the scales as
 * 16-bit words in both 128-bit halves (8 scales) or is a full vector (16). */
INLINE __m256i scale_of32(__m256i s16x2, int k) {
    /* words k of the 8 in each half */
    return _mm256_shuffle_epi8(s16x2, _mm256_set1_epi16((short)(0x0100 * (2 * k + 1) + 2 * k)));
}
INLINE __m256i scale_of16(__m256i s16, int k) {
    /* words 2k (low half) and 2k+1 (high half) of 16 */
    __m256i pair = _mm256_permutevar8x32_epi32(s16, _mm256_set1_epi32(k)); /* words 2k, 2k+1 */
    __m256i lo = _mm256_shufflelo_epi16(pair, 0x00), hi = _mm256_shufflelo_epi16(pair, 0x55);
    lo = _mm256_unpacklo_epi64(lo, lo);
    hi = _mm256_unpacklo_epi64(hi, hi);
    return _mm256_permute2x128_si256(lo, hi, 0x20);
}

typedef struct {
    __m256i q[8];
    __m256i sc[8];
    __m256i mins; /* multipliers of the 16 bsums */
    float d, dmin;
} kweights;

INLINE void decode_q4_q5(const int T, const uint8_t *p, kweights *w) {
    const block_q4_K *b4 = (const block_q4_K *)p;
    const uint8_t *qs = T == RS_KQ_Q4 ? b4->qs : ((const block_q5_K *)p)->qs;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    RS_UNROLL for (int j = 0; j < 4; j++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
        w->q[2 * j] = _mm256_and_si256(v, m4);
        w->q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    }
    if (T == RS_KQ_Q5) {
        const __m256i qh = _mm256_loadu_si256((const __m256i *)((const block_q5_K *)p)->qh);
        const __m256i sixteen = _mm256_set1_epi8(16);
        RS_UNROLL for (int k = 0; k < 8; k++) {
            __m256i bit = _mm256_set1_epi8((char)(1 << k)); /* sub-block k: bit k of qh */
            __m256i m = _mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit);
            w->q[k] = _mm256_add_epi8(w->q[k], _mm256_and_si256(m, sixteen));
        }
    }
    uint64_t sc, mn;
    rs_kq_unpack_q4k_words(b4->scales, &sc, &mn);
    __m128i s16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc));
    __m256i s2 = _mm256_broadcastsi128_si256(s16);
    RS_UNROLL for (int k = 0; k < 8; k++) w->sc[k] = scale_of32(s2, k);
    __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)mn));
    /* each min covers two groups of 16 */
    w->mins = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi16(m16, m16)),
                                      _mm_unpackhi_epi16(m16, m16), 1);
    w->d = h2f(b4->d);
    w->dmin = h2f(b4->dmin);
}

INLINE void decode_q6(const uint8_t *p, kweights *w) {
    const block_q6_K *b = (const block_q6_K *)p;
    const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(0x03);
    RS_UNROLL for (int h = 0; h < 2; h++) {
        __m256i l0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
        __m256i l1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
        __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
        __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4);
        __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4);
        __m256i h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4);
        __m256i h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4);
        w->q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(l0, m4), h0);
        w->q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, m4), h1);
        w->q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), h2);
        w->q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), h3);
    }
    __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
    RS_UNROLL for (int k = 0; k < 8; k++) w->sc[k] = scale_of16(s16, k);
    w->mins = _mm256_slli_epi16(s16, 5); /* offset 32 times the scales */
    w->d = h2f(b->d);
    w->dmin = 0;
}

INLINE void decode_q2_q3(const int T, const uint8_t *p, kweights *w) {
    const uint8_t *qs = T == RS_KQ_Q2 ? ((const block_q2_K *)p)->qs : ((const block_q3_K *)p)->qs;
    const __m256i m3 = _mm256_set1_epi8(3);
    RS_UNROLL for (int h = 0; h < 2; h++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * h));
        RS_UNROLL for (int j = 0; j < 4; j++) w->q[4 * h + j] =
            _mm256_and_si256(_mm256_srli_epi16(v, 2 * j), m3);
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
        const __m256i hm = _mm256_loadu_si256((const __m256i *)b->hmask);
        const __m256i four = _mm256_set1_epi8(4);
        RS_UNROLL for (int k = 0; k < 8; k++) { /* register k = 4h + j: bit 4h + j of hmask */
            __m256i bit = _mm256_set1_epi8((char)(1 << k));
            __m256i m = _mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit);
            w->q[k] = _mm256_add_epi8(w->q[k], _mm256_and_si256(m, four));
        }
        uint64_t sc[2];
        rs_kq_unpack_q3k_words(b->scales, sc);
        __m128i raw = _mm_set_epi64x((long long)sc[1], (long long)sc[0]);
        s16 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(raw), _mm256_set1_epi16(32));
        w->mins = _mm256_slli_epi16(s16, 2); /* offset 4 times the scales */
        w->d = h2f(b->d);
        w->dmin = 0;
    }
    RS_UNROLL for (int k = 0; k < 8; k++) w->sc[k] = scale_of16(s16, k);
}

INLINE void decode_k(const int T, const uint8_t *p, kweights *w) {
    if (T == RS_KQ_Q4 || T == RS_KQ_Q5)
        decode_q4_q5(T, p, w);
    else if (T == RS_KQ_Q6)
        decode_q6(p, w);
    else
        decode_q2_q3(T, p, w);
}

INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE void ktile_full(const int T, const int MR, const int NC, int64_t n, const uint8_t *w,
                       size_t ws, int nr, const uint8_t *x, size_t xs, int nc, float *y,
                       size_t ys) {
    const size_t WB = rs_kq_block_bytes(T);
    const uint8_t *wr[TILE_MAX], *xr[TILE_MAX];
    RS_UNROLL for (int r = 0; r < MR; r++) wr[r] = w + (size_t)(r < nr ? r : nr - 1) * ws;
    RS_UNROLL for (int c = 0; c < NC; c++) xr[c] = x + (size_t)(c < nc ? c : nc - 1) * xs;
    __m256 acc[TILE_MAX][TILE_MAX];
    RS_UNROLL for (int r = 0; r < MR; r++) RS_UNROLL for (int c = 0; c < NC; c++) acc[r][c] =
        _mm256_setzero_ps();
    /* decode: prefetch the next tile's rows (see rs_cpu_prefetch) */
    const uint8_t *pf = w + (size_t)MR * ws;
    for (int64_t b = 0; b < n / QK_K; b++) {
        if (NC == 1) pf = rs_cpu_prefetch(pf, (size_t)MR * WB);
        RS_UNROLL for (int r = 0; r < MR; r++) {
            kweights kw;
            decode_k(T, wr[r] + (size_t)b * WB, &kw);
            RS_UNROLL for (int c = 0; c < NC; c++) {
                const block_q8_K *a = (const block_q8_K *)xr[c] + b;
                __m256i isum = _mm256_setzero_si256();
                RS_UNROLL for (int k = 0; k < 8; k++) {
                    __m256i xq = _mm256_loadu_si256((const __m256i *)(a->qs + 32 * k));
                    __m256i p16 = _mm256_maddubs_epi16(kw.q[k], xq);
                    isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p16, kw.sc[k]));
                }
                __m256i bs = _mm256_loadu_si256((const __m256i *)a->bsums);
                __m256i mins = _mm256_madd_epi16(bs, kw.mins);
                if (rs_kq_has_dmin(T)) {
                    acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum),
                                                _mm256_set1_ps(kw.d * a->d), acc[r][c]);
                    acc[r][c] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins),
                                                 _mm256_set1_ps(kw.dmin * a->d), acc[r][c]);
                } else {
                    isum = _mm256_sub_epi32(isum, mins);
                    acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum),
                                                _mm256_set1_ps(kw.d * a->d), acc[r][c]);
                }
            }
        }
    }
    RS_UNROLL for (int c = 0; c < NC; c++)
        RS_UNROLL for (int r = 0; r < MR; r++) if (c < nc && r < nr) y[(size_t)c * ys + (size_t)r] =
            hsum8(acc[r][c]);
}

enum { MR = 2, NC = 3, MR1 = 2 };

RS_CPU_DEFINE_KERNEL(q2_K_avx2, ktile_full, RS_KQ_Q2, MR, NC, MR1, RS_SIMD_AVX2);
RS_CPU_DEFINE_KERNEL(q3_K_avx2, ktile_full, RS_KQ_Q3, MR, NC, MR1, RS_SIMD_AVX2);
RS_CPU_DEFINE_KERNEL(q4_K_avx2, ktile_full, RS_KQ_Q4, MR, NC, MR1, RS_SIMD_AVX2);
RS_CPU_DEFINE_KERNEL(q5_K_avx2, ktile_full, RS_KQ_Q5, MR, NC, MR1, RS_SIMD_AVX2);
RS_CPU_DEFINE_KERNEL(q6_K_avx2, ktile_full, RS_KQ_Q6, MR, NC, MR1, RS_SIMD_AVX2);

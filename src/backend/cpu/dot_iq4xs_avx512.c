/* dot_iq4xs_avx512.c — AVX-512 VNNI tile kernel for IQ4_XS against Q8_K
 * activations.
 *
 * A super-block's 128 qs bytes are two registers with one sub-block per
 * 128-bit lane; masking gives each sub-block's elements 0-15, shifting its
 * elements 16-31, and vpshufb maps the nibbles to the code book's values
 * + 128 (rs_iq4nl_u8_table, as the IQ4_NL kernels do): the unsigned operand
 * of vpdpbusd. The activation bytes are regrouped the same way once per token
 * and shared by the rows of the tile, and so is the offset start: each 32-bit
 * lane begins at -128 times the 8 activation bytes it will multiply, so after
 * two vpdpbusd every lane holds an exact partial dot of the values themselves
 * (at most 8 * 127 * 127). One vpmulld by the scales ls - 32 (constant per
 * 128-bit lane, i.e. per sub-block) per four sub-blocks, and the super-block
 * stays in exact int32 (below 2^24 per lane, so the convert is exact too) up
 * to one FMA with d * d_x. vpmaddubsw could not take the values + 128: its
 * 16-bit pair sums would saturate (2 * 241 * 127). Tiles as the K-quants':
 * 4 rows x 3 tokens, 4 rows for decode. */
#include <immintrin.h>

#include "backend/cpu/iq4nl_avx512.h"
#include "backend/cpu/iq4xs_scales.h"
#include "backend/cpu/kernels.h"
#include "dtype/blocks.h"

#define INLINE static inline __attribute__((always_inline))

/* Tile arrays have this constant size (MR, NC <= it) and are indexed only with
 * compile-time constants after inlining, so the compiler keeps them in
 * registers (a variable-length array would live on the stack). */
enum { TILE_MAX = 4 };

/* A token's super-block: q[2h] / q[2h + 1] hold elements 0-15 / 16-31 of
 * sub-blocks 4h..4h+3, one per 128-bit lane, as the weights decode. */
typedef struct {
    __m512i q[4];
    __m512i off[2]; /* the lanes' start: -128 * their activation bytes */
    float d;
} xact;

INLINE xact load_xact(const block_q8_K *x) {
    /* 64-bit words of 128 bytes: sub-block k's elements 0-15 are words 4k, 4k + 1 */
    const __m512i lo = _mm512_setr_epi64(0, 1, 4, 5, 8, 9, 12, 13);
    const __m512i hi = _mm512_setr_epi64(2, 3, 6, 7, 10, 11, 14, 15);
    const __m512i u128 = _mm512_set1_epi8((char)0x80);
    xact a;
    RS_UNROLL for (int h = 0; h < 2; h++) {
        const int8_t *q = x->qs + 128 * h;
        __m512i v0 = _mm512_loadu_si512(q), v1 = _mm512_loadu_si512(q + 64);
        a.q[2 * h] = _mm512_permutex2var_epi64(v0, lo, v1);
        a.q[2 * h + 1] = _mm512_permutex2var_epi64(v0, hi, v1);
        __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u128, a.q[2 * h]);
        s = _mm512_dpbusd_epi32(s, u128, a.q[2 * h + 1]);
        a.off[h] = _mm512_sub_epi32(_mm512_setzero_si512(), s);
    }
    a.d = x->d;
    return a;
}

/* A weight super-block: values + 128 in xact's order, the scales ls - 32
 * per 32-bit lane (sub-blocks 0-3, then 4-7), and d. */
typedef struct {
    __m512i q[4];
    __m512i sc[2];
    float d;
} xweights;

INLINE void decode_w(const block_iq4_xs *b, xweights *w) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), table = rs_iq4nl_u8_table();
    RS_UNROLL for (int h = 0; h < 2; h++) {
        __m512i v = _mm512_loadu_si512(b->qs + 64 * h);
        w->q[2 * h] = _mm512_shuffle_epi8(table, _mm512_and_si512(v, m4));
        w->q[2 * h + 1] = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
    }
    __m128i s8 =
        _mm_sub_epi8(_mm_cvtsi64_si128((long long)rs_iq4xs_scales_word(b)), _mm_set1_epi8(32));
    w->sc[0] = _mm512_cvtepi8_epi32(
        _mm_shuffle_epi8(s8, _mm_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)));
    w->sc[1] = _mm512_cvtepi8_epi32(
        _mm_shuffle_epi8(s8, _mm_setr_epi8(4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7)));
    w->d = _cvtsh_ss(b->d);
}

/* T is unused (one weight type); the table macro passes it. */
INLINE void tile_iq4xs(const int T, const int MR, const int NC, int64_t n, const uint8_t *w,
                       size_t ws, int nr, const uint8_t *x, size_t xs, int nc, float *y,
                       size_t ys) {
    const uint8_t *wr[TILE_MAX], *xr[TILE_MAX];
    RS_UNROLL for (int r = 0; r < MR; r++) wr[r] = w + (size_t)(r < nr ? r : nr - 1) * ws;
    RS_UNROLL for (int c = 0; c < NC; c++) xr[c] = x + (size_t)(c < nc ? c : nc - 1) * xs;
    __m512 acc[TILE_MAX][TILE_MAX];
    RS_UNROLL for (int r = 0; r < MR; r++) RS_UNROLL for (int c = 0; c < NC; c++) acc[r][c] =
        _mm512_setzero_ps();
    /* decode: prefetch the next tile's rows (see rs_cpu_prefetch) */
    const uint8_t *pf = w + (size_t)MR * ws;
    for (int64_t b = 0; b < n / QK_K; b++) {
        if (NC == 1) pf = rs_cpu_prefetch(pf, (size_t)MR * sizeof(block_iq4_xs));
        xact a[TILE_MAX];
        RS_UNROLL for (int c = 0; c < NC; c++) a[c] = load_xact((const block_q8_K *)xr[c] + b);
        RS_UNROLL for (int r = 0; r < MR; r++) {
            xweights kw;
            decode_w((const block_iq4_xs *)wr[r] + b, &kw);
            RS_UNROLL for (int c = 0; c < NC; c++) {
                __m512i s0 = _mm512_dpbusd_epi32(a[c].off[0], kw.q[0], a[c].q[0]);
                __m512i s1 = _mm512_dpbusd_epi32(a[c].off[1], kw.q[2], a[c].q[2]);
                s0 = _mm512_dpbusd_epi32(s0, kw.q[1], a[c].q[1]);
                s1 = _mm512_dpbusd_epi32(s1, kw.q[3], a[c].q[3]);
                __m512i isum = _mm512_add_epi32(_mm512_mullo_epi32(s0, kw.sc[0]),
                                                _mm512_mullo_epi32(s1, kw.sc[1]));
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(kw.d * a[c].d),
                                            acc[r][c]);
            }
        }
    }
    RS_UNROLL for (int c = 0; c < NC; c++)
        RS_UNROLL for (int r = 0; r < MR; r++) if (c < nc && r < nr) y[(size_t)c * ys + (size_t)r] =
            _mm512_reduce_add_ps(acc[r][c]);
}

enum { MR = 4, NC = 3, MR1 = 4 };

RS_CPU_DEFINE_KERNEL(iq4_xs_avx512, tile_iq4xs, 0, MR, NC, MR1, RS_SIMD_AVX512);

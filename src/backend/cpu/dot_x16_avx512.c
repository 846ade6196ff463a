/* dot_x16_avx512.c — AVX-512 VNNI tiles for Q8_0 / Q4_0 / IQ4_NL, the K-quants
 * Q4_K / Q5_K / Q6_K and IQ4_XS in the packed x16 layout (packed.h) against
 * rs_block_q8_0p activations.
 *
 * One 64-byte load of a block payload holds 4 elements of each of 16 rows
 * (Q4_0: after masking or shifting the nibbles), which is exactly the
 * unsigned operand of vpdpbusd; the 4 matching activation bytes of a token
 * are broadcast from memory as the signed operand. So one vpdpbusd does 4
 * elements x 16 rows of one token with no shuffling, and each block of 32
 * elements takes 8 of them per (16 rows, token) into an int32 accumulator
 * that starts at the offset correction (-8 or -128 times the activation sum,
 * precomputed; IQ4_NL's nibbles become its values + 128 through a vpshufb).
 * Then the block's 16 sums are converted to f32 and added with one FMA scaled
 * by d_w (16 lanes, converted once per block and group) times d_x (broadcast).
 * A tile is MG groups (16 rows each) x NC tokens; edge tiles repeat their last
 * group / token, and rows past nr are computed but not stored (the padding
 * rows of the last group have scale 0). Q4_K's sub-blocks take the same
 * integer sums (its q need no offset), then two FMAs: the sums times
 * d sc_j d_x, less dmin m_j times d_x sum(x), with d and dmin converted once
 * per super-block and sc_j, m_j once per sub-block and group; Q5_K ORs its
 * fifth bits in first. Q6_K sums each 16-element scale group apart, its high
 * two bits moved beside the nibbles, from -32 times that half's activations.
 * IQ4_XS's sub-blocks take IQ4_NL's sums, then one FMA with d sc_j d_x. */
#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "backend/cpu/iq4nl_avx512.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/packed.h"

#define INLINE static inline __attribute__((always_inline))

enum { P_Q8_0, P_Q4_0, P_IQ4_NL, P_Q4_K, P_Q5_K, P_Q6_K, P_IQ4_XS };
/* Tile arrays have these constant sizes and are indexed only by compile-time
 * constants after unrolling, so they live in registers. */
enum { G_MAX = 4, C_MAX = 16 };

static inline int32_t ld32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Scale bytes per block of 32 in a group (packed.h). */
INLINE size_t scale_step(const int T) {
    return T == P_Q4_K || T == P_Q5_K ? 40 : T == P_Q6_K ? 36 : T == P_IQ4_XS ? 20 : 32;
}

INLINE size_t payload(const int T) {
    return T == P_Q8_0 ? 512 : T == P_Q6_K ? 384 : T == P_Q5_K ? 320 : 256;
}

typedef struct {
    __m512 v[G_MAX][C_MAX];
} acc_tile;

typedef struct {
    __m512i v[G_MAX][C_MAX];
} int_tile;

/* p with bit `from` of each byte moved to bit 4 (other bits garbage: mask with 0x10);
 * 16-bit shifts, whose bits crossing a byte land outside bit 4. */
INLINE __m512i bit_to4(__m512i p, const int from) {
    return from <= 4 ? _mm512_sll_epi16(p, _mm_cvtsi32_si128(4 - from))
                     : _mm512_srl_epi16(p, _mm_cvtsi32_si128(from - 4));
}

/* Integer sums of block b for the tile: sum of (w + offset) * x, starting at
 * the offset correction, so the result is the exact signed dot product. */
INLINE int_tile block_sums(const int T, const int MG, const int NC, const uint8_t *const *wg,
                           const rs_block_q8_0p *const *xr, int64_t b) {
    int_tile s;
    RS_UNROLL for (int c = 0; c < NC; c++) {
        __m512i o = _mm512_set1_epi32(T == P_Q4_0                  ? xr[c][b].off4
                                      : T == P_Q4_K || T == P_Q5_K ? 0
                                                                   : xr[c][b].off8);
        RS_UNROLL for (int g = 0; g < MG; g++) s.v[g][c] = o;
    }
    if (T == P_Q8_0) {
        RS_UNROLL for (int j = 0; j < 8; j++) {
            RS_UNROLL for (int g = 0; g < MG; g++) {
                __m512i w = _mm512_loadu_si512(wg[g] + (size_t)b * 512 + 64 * j);
                RS_UNROLL for (int c = 0; c < NC; c++) s.v[g][c] =
                    _mm512_dpbusd_epi32(s.v[g][c], w, _mm512_set1_epi32(ld32(xr[c][b].qs + 4 * j)));
            }
        }
    } else {
        const __m512i m4 = _mm512_set1_epi8(0x0f), m10 = _mm512_set1_epi8(0x10);
        __m512i pv[G_MAX]; /* Q5_K's plane of fifth bits, one load per block and group */
        RS_UNROLL for (int g = 0; g < MG; g++) pv[g] =
            T == P_Q5_K ? _mm512_loadu_si512(wg[g] + (size_t)b * 320 + 256) : m4;
        RS_UNROLL for (int k = 0; k < 4; k++) {
            RS_UNROLL for (int g = 0; g < MG; g++) {
                __m512i v = _mm512_loadu_si512(wg[g] + (size_t)b * payload(T) + 64 * k);
                __m512i lo = _mm512_and_si512(v, m4);
                __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                if (T == P_Q5_K) { /* the fifth bits: plane bits 2 k and 2 k + 1 to bit 4 */
                    lo = _mm512_or_si512(lo, _mm512_and_si512(bit_to4(pv[g], 2 * k), m10));
                    hi = _mm512_or_si512(hi, _mm512_and_si512(bit_to4(pv[g], 2 * k + 1), m10));
                }
                if (T == P_IQ4_NL || T == P_IQ4_XS) {
                    lo = _mm512_shuffle_epi8(rs_iq4nl_u8_table(), lo);
                    hi = _mm512_shuffle_epi8(rs_iq4nl_u8_table(), hi);
                }
                RS_UNROLL for (int c = 0; c < NC; c++) {
                    s.v[g][c] = _mm512_dpbusd_epi32(s.v[g][c], lo,
                                                    _mm512_set1_epi32(ld32(xr[c][b].qs + 4 * k)));
                    s.v[g][c] = _mm512_dpbusd_epi32(
                        s.v[g][c], hi, _mm512_set1_epi32(ld32(xr[c][b].qs + 16 + 4 * k)));
                }
            }
        }
    }
    return s;
}

#ifndef X16_PF_AHEAD
/* Decode prefetch: each tile prefetches its own groups this many bytes ahead
 * of the block it reads (past its end, the next tile's), so every tile and
 * work unit streams prefetched from its start; 0: prefetch the next tile's
 * groups at the offset being read (one tile ahead, beyond L1). With two
 * threads on the dev VM this is worth 63 -> 74 tok/s (1B Q4_0); with 16 on
 * the Xeon it costs 20% against the hardware prefetchers alone (tile1_hw). */
#define X16_PF_AHEAD 8192
#endif

INLINE void decode_prefetch(const int T, const int MG, const uint8_t *w, size_t gs, int64_t nb,
                            int64_t b) {
    const size_t pay = payload(T);
    const int64_t ahead = X16_PF_AHEAD / (int64_t)(MG * pay);
    int64_t pb = X16_PF_AHEAD > 0 ? b + (ahead > 1 ? ahead : 1) : b + nb;
    const uint8_t *base = w;
    if (pb >= nb) { /* the next tile's first blocks */
        pb -= nb;
        base = w + (size_t)MG * gs;
    }
    RS_UNROLL for (int g = 0; g < MG; g++) {
        rs_cpu_prefetch(base + (size_t)g * gs + (size_t)pb * pay, pay);
        if ((pb & 1) == 0) /* the scales (scale_step bytes per block) */
            __builtin_prefetch(base + (size_t)g * gs + (size_t)nb * pay +
                               scale_step(T) * (size_t)pb);
    }
}

/* Stores the tile's rows below nr and tokens below nc. */
INLINE void store_tile(const int MG, const int NC, const acc_tile *acc, int nr, int nc, float *y,
                       size_t ys) {
    RS_UNROLL for (int g = 0; g < MG; g++) {
        int rows = nr - 16 * g;
        if (rows <= 0) break;
        __mmask16 m = rows >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rows) - 1);
        RS_UNROLL for (int c = 0; c < NC; c++) if (c < nc)
            _mm512_mask_storeu_ps(y + (size_t)c * ys + 16 * (size_t)g, m, acc->v[g][c]);
    }
}

/* A tile's start: its MG groups' weights (the last group repeated past nr) and
 * scale regions (after the groups' nb payloads), its NC tokens' activations (the
 * last token repeated past nc), and zeroed sums. */
INLINE void tile_begin(const int T, const int MG, const int NC, int64_t n, const uint8_t *w,
                       size_t gs, int nr, const uint8_t *x, size_t xs, int nc, const uint8_t **wg,
                       const uint8_t **scl, const rs_block_q8_0p **xr, acc_tile *acc) {
    const int ng = (nr + 15) / 16;
    RS_UNROLL for (int g = 0; g < MG; g++) {
        wg[g] = w + (size_t)(g < ng ? g : ng - 1) * gs;
        scl[g] = wg[g] + (size_t)(n / 32) * payload(T);
    }
    RS_UNROLL for (int c = 0; c < NC; c++) xr[c] =
        (const rs_block_q8_0p *)(x + (size_t)(c < nc ? c : nc - 1) * xs);
    RS_UNROLL for (int g = 0; g < MG; g++) RS_UNROLL for (int c = 0; c < NC; c++) acc->v[g][c] =
        _mm512_setzero_ps();
}

/* Q4_K / Q5_K (T): the sub-blocks' sums scaled per sub-block (see the top of the file). */
INLINE void k4_tile(const int T, const bool PF, const int MR, const int NC, int64_t n,
                    const uint8_t *w, size_t gs, int nr, const uint8_t *x, size_t xs, int nc,
                    float *y, size_t ys) {
    const int MG = MR / 16;
    const int64_t nb = n / 32, nsb = n / 256;
    const uint8_t *wg[G_MAX], *rec[G_MAX];
    const rs_block_q8_0p *xr[C_MAX];
    acc_tile acc;
    tile_begin(T, MG, NC, n, w, gs, nr, x, xs, nc, wg, rec, xr, &acc);
    for (int64_t s = 0; s < nsb; s++) {
        __m512 d[G_MAX], dm[G_MAX];
        RS_UNROLL for (int g = 0; g < MG; g++) {
            const uint8_t *rs = rec[g] + (size_t)s * RS_CPU_PACK_K4_SCALES;
            d[g] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)rs));
            dm[g] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(rs + 32)));
        }
        for (int j = 0; j < 8; j++) {
            const int64_t b = 8 * s + j;
            if (PF && NC == 1) decode_prefetch(T, MG, w, gs, nb, b);
            int_tile sm = block_sums(T, MG, NC, wg, xr, b);
            RS_UNROLL for (int g = 0; g < MG; g++) {
                const uint8_t *rs = rec[g] + (size_t)s * RS_CPU_PACK_K4_SCALES;
                const __m512 sc =
                    _mm512_mul_ps(d[g], _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                            _mm_loadu_si128((const __m128i *)(rs + 64 + 16 * j)))));
                const __m512 mn =
                    _mm512_mul_ps(dm[g], _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                                             (const __m128i *)(rs + 192 + 16 * j)))));
                RS_UNROLL for (int c = 0; c < NC; c++) {
                    const float dx = xr[c][b].d;
                    const int32_t xsum = -xr[c][b].off4 / 8; /* exact: off4 = -8 sum(qs) */
                    acc.v[g][c] =
                        _mm512_fmadd_ps(_mm512_cvtepi32_ps(sm.v[g][c]),
                                        _mm512_mul_ps(sc, _mm512_set1_ps(dx)), acc.v[g][c]);
                    acc.v[g][c] =
                        _mm512_fnmadd_ps(mn, _mm512_set1_ps(dx * (float)xsum), acc.v[g][c]);
                }
            }
        }
    }
    store_tile(MG, NC, &acc, nr, nc, y, ys);
}

/* Q6_K: block b's sums of (q - 32) x over its two 16-element halves, for the tile. */
INLINE void k6_sums(const int MG, const int NC, const uint8_t *const *wg,
                    const rs_block_q8_0p *const *xr, int64_t b, int_tile *sa, int_tile *sb) {
    RS_UNROLL for (int c = 0; c < NC; c++) {
        const int32_t s16 = xr[c][b].sum16, s32 = -xr[c][b].off4 / 8;
        const __m512i oa = _mm512_set1_epi32(-32 * s16), ob = _mm512_set1_epi32(-32 * (s32 - s16));
        RS_UNROLL for (int g = 0; g < MG; g++) {
            sa->v[g][c] = oa;
            sb->v[g][c] = ob;
        }
    }
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    RS_UNROLL for (int w = 0; w < 4; w++) {
        RS_UNROLL for (int g = 0; g < MG; g++) {
            const uint8_t *pl = wg[g] + (size_t)b * 384;
            const __m512i v = _mm512_loadu_si512(pl + 64 * w);
            const __m512i p = _mm512_loadu_si512(pl + 256 + 64 * (w & 1));
            /* the high bits of this word's elements sit at bits 4 (w >> 1) (low half)
             * and 4 (w >> 1) + 2 (high half) of each plane byte: to bits 4..5 */
            const __m512i ha = w >> 1 ? p : _mm512_slli_epi16(p, 4);
            const __m512i hb = w >> 1 ? _mm512_srli_epi16(p, 2) : _mm512_slli_epi16(p, 2);
            const __m512i qa = _mm512_or_si512(_mm512_and_si512(v, m4), _mm512_and_si512(ha, m30));
            const __m512i qb = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4),
                                               _mm512_and_si512(hb, m30));
            RS_UNROLL for (int c = 0; c < NC; c++) {
                sa->v[g][c] = _mm512_dpbusd_epi32(sa->v[g][c], qa,
                                                  _mm512_set1_epi32(ld32(xr[c][b].qs + 4 * w)));
                sb->v[g][c] = _mm512_dpbusd_epi32(
                    sb->v[g][c], qb, _mm512_set1_epi32(ld32(xr[c][b].qs + 16 + 4 * w)));
            }
        }
    }
}

/* Q6_K: per 16 elements, acc += sums * (d sc d_x) (see packed.h for the layout). */
INLINE void k6_tile(const bool PF, const int MR, const int NC, int64_t n, const uint8_t *w,
                    size_t gs, int nr, const uint8_t *x, size_t xs, int nc, float *y, size_t ys) {
    const int MG = MR / 16;
    const int64_t nb = n / 32, nsb = n / 256;
    const uint8_t *wg[G_MAX], *rec[G_MAX];
    const rs_block_q8_0p *xr[C_MAX];
    acc_tile acc;
    tile_begin(P_Q6_K, MG, NC, n, w, gs, nr, x, xs, nc, wg, rec, xr, &acc);
    for (int64_t s = 0; s < nsb; s++) {
        __m512 d[G_MAX];
        RS_UNROLL for (int g = 0; g < MG; g++) d[g] = _mm512_cvtph_ps(
            _mm256_loadu_si256((const __m256i *)(rec[g] + (size_t)s * RS_CPU_PACK_K6_SCALES)));
        for (int j = 0; j < 8; j++) {
            const int64_t b = 8 * s + j;
            if (PF && NC == 1) decode_prefetch(P_Q6_K, MG, w, gs, nb, b);
            int_tile sa, sb;
            k6_sums(MG, NC, wg, xr, b, &sa, &sb);
            RS_UNROLL for (int g = 0; g < MG; g++) {
                const uint8_t *sc = rec[g] + (size_t)s * RS_CPU_PACK_K6_SCALES + 32 + 32 * j;
                const __m512 ca = _mm512_mul_ps(d[g], _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                                          _mm_loadu_si128((const __m128i *)sc))));
                const __m512 cb =
                    _mm512_mul_ps(d[g], _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                            _mm_loadu_si128((const __m128i *)(sc + 16)))));
                RS_UNROLL for (int c = 0; c < NC; c++) {
                    const __m512 dx = _mm512_set1_ps(xr[c][b].d);
                    acc.v[g][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sa.v[g][c]),
                                                  _mm512_mul_ps(ca, dx), acc.v[g][c]);
                    acc.v[g][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sb.v[g][c]),
                                                  _mm512_mul_ps(cb, dx), acc.v[g][c]);
                }
            }
        }
    }
    store_tile(MG, NC, &acc, nr, nc, y, ys);
}

/* IQ4_XS: per sub-block, acc += sums * (d sc_j d_x) (see packed.h for the record). */
INLINE void xs_tile(const bool PF, const int MR, const int NC, int64_t n, const uint8_t *w,
                    size_t gs, int nr, const uint8_t *x, size_t xs, int nc, float *y, size_t ys) {
    const int MG = MR / 16;
    const int64_t nb = n / 32, nsb = n / 256;
    const uint8_t *wg[G_MAX], *rec[G_MAX];
    const rs_block_q8_0p *xr[C_MAX];
    acc_tile acc;
    tile_begin(P_IQ4_XS, MG, NC, n, w, gs, nr, x, xs, nc, wg, rec, xr, &acc);
    for (int64_t s = 0; s < nsb; s++) {
        __m512 d[G_MAX];
        RS_UNROLL for (int g = 0; g < MG; g++) d[g] = _mm512_cvtph_ps(
            _mm256_loadu_si256((const __m256i *)(rec[g] + (size_t)s * RS_CPU_PACK_XS_SCALES)));
        for (int j = 0; j < 8; j++) {
            const int64_t b = 8 * s + j;
            if (PF && NC == 1) decode_prefetch(P_IQ4_XS, MG, w, gs, nb, b);
            int_tile sm = block_sums(P_IQ4_XS, MG, NC, wg, xr, b);
            RS_UNROLL for (int g = 0; g < MG; g++) {
                const uint8_t *sc = rec[g] + (size_t)s * RS_CPU_PACK_XS_SCALES + 32 + 16 * j;
                const __m512 cs = _mm512_mul_ps(d[g], _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                                          _mm_loadu_si128((const __m128i *)sc))));
                RS_UNROLL for (int c = 0; c < NC; c++) acc.v[g][c] =
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(sm.v[g][c]),
                                    _mm512_mul_ps(cs, _mm512_set1_ps(xr[c][b].d)), acc.v[g][c]);
            }
        }
    }
    store_tile(MG, NC, &acc, nr, nc, y, ys);
}

/* PF: software prefetches in decode tiles (NC = 1). */
INLINE void x16_tile(const int T, const bool PF, const int MR, const int NC, int64_t n,
                     const uint8_t *w, size_t gs, int nr, const uint8_t *x, size_t xs, int nc,
                     float *y, size_t ys) {
    if (T == P_Q4_K || T == P_Q5_K) {
        k4_tile(T, PF, MR, NC, n, w, gs, nr, x, xs, nc, y, ys);
        return;
    }
    if (T == P_Q6_K) {
        k6_tile(PF, MR, NC, n, w, gs, nr, x, xs, nc, y, ys);
        return;
    }
    if (T == P_IQ4_XS) {
        xs_tile(PF, MR, NC, n, w, gs, nr, x, xs, nc, y, ys);
        return;
    }
    const int MG = MR / 16;
    const int64_t nb = n / 32;
    const uint8_t *wg[G_MAX], *sc[G_MAX];
    const rs_block_q8_0p *xr[C_MAX];
    acc_tile acc;
    tile_begin(T, MG, NC, n, w, gs, nr, x, xs, nc, wg, sc, xr, &acc);
    for (int64_t b = 0; b < nb; b++) {
        if (PF && NC == 1) decode_prefetch(T, MG, w, gs, nb, b);
        int_tile s = block_sums(T, MG, NC, wg, xr, b);
        RS_UNROLL for (int g = 0; g < MG; g++) {
            __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(sc[g] + 32 * b)));
            RS_UNROLL for (int c = 0; c < NC; c++) acc.v[g][c] =
                _mm512_fmadd_ps(_mm512_cvtepi32_ps(s.v[g][c]),
                                _mm512_mul_ps(dw, _mm512_set1_ps(xr[c][b].d)), acc.v[g][c]);
        }
    }
    store_tile(MG, NC, &acc, nr, nc, y, ys);
}

#ifndef X16_MR
#define X16_MR  16
#define X16_NC  8
#define X16_MR1 RS_CPU_X16_MR1
#endif
enum { MR = X16_MR, NC = X16_NC, MR1 = X16_MR1 };

/* The table entries: tiles with software prefetch, plus the decode tile without. */
#define DEFINE_X16(name, T)                                                                        \
    static void tile_##name(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, \
                            int nc, float *y, size_t ys) {                                         \
        if (nc == 1)                                                                               \
            x16_tile(T, true, MR1, 1, n, w, ws, nr, x, xs, 1, y, ys);                              \
        else                                                                                       \
            x16_tile(T, true, MR, NC, n, w, ws, nr, x, xs, nc, y, ys);                             \
    }                                                                                              \
    static void tile1_hw_##name(int64_t n, const void *w, size_t ws, int nr, const void *x,        \
                                size_t xs, int nc, float *y, size_t ys) {                          \
        x16_tile(T, false, MR1, 1, n, w, ws, nr, x, xs, 1, y, ys);                                 \
    }                                                                                              \
    const rs_cpu_kernel rs_cpu_kernel_##name = {tile_##name,    MR, NC, MR1, RS_SIMD_AVX512,       \
                                                tile1_hw_##name}

DEFINE_X16(q8_0_x16_avx512, P_Q8_0);
DEFINE_X16(q4_0_x16_avx512, P_Q4_0);
DEFINE_X16(iq4_nl_x16_avx512, P_IQ4_NL);
DEFINE_X16(q4_K_x16_avx512, P_Q4_K);
DEFINE_X16(q5_K_x16_avx512, P_Q5_K);
DEFINE_X16(q6_K_x16_avx512, P_Q6_K);
DEFINE_X16(iq4_xs_x16_avx512, P_IQ4_XS);

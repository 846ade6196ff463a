/* dot_x16_amx.c — AMX-INT8 tiles for Q8_0 / Q4_0 weights in the packed x16
 * layout (packed.h) against rs_block_q8_0p activations; used only at level
 * RS_SIMD_AMX (CPUID, XCR0 and the Linux permission checked by core/cpu.c).
 *
 * One tdpbsud per block of 32 elements computes C[token][row] for up to 16
 * tokens x 16 rows: A = the tokens' 32 activation bytes (signed; one tile row
 * per token, straight from the activation rows), B = the block payload of the
 * group (unsigned, 8 rows of 4 elements x 16 weight rows — exactly the Q8_0
 * payload; Q4_0's nibbles are first split into a 512-byte buffer). C plus the
 * offset correction (-8 or -128 times the activation sum) is then the exact
 * block dot product, converted and scaled per token row with AVX-512 as in
 * dot_x16_avx512.c: acc = fma(float(sum), d_w * d_x, acc), blocks in order.
 * Both kernels thus give bit-identical results. Blocks are processed in
 * pairs with separate tiles so that one block's tile product overlaps the
 * other's conversion. Single tokens (decode) use the AVX-512 kernel. */
#include <immintrin.h>
#include <stdalign.h>
#include <string.h>

#include "backend/cpu/kernels.h"

#define INLINE static inline __attribute__((always_inline))

enum { P_Q8_0, P_Q4_0 };
enum { TOK = 16, ROWS = 16 };
/* tile registers (macros: the intrinsics paste the number into the instruction) */
#define TA0 0
#define TA1 1
#define TB0 2
#define TB1 3
#define TC0 4
#define TC1 5

typedef struct {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

typedef struct {
    __m512 v[TOK];
} acc16;

INLINE size_t payload(const int T) {
    return T == P_Q8_0 ? 512 : 256;
}

/* Tiles for nc tokens: A nc x 32 bytes, B 8 x 64, C nc x 64. */
static void configure(int nc) {
    alignas(64) tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    static const int a[2] = {TA0, TA1}, b[2] = {TB0, TB1}, c[2] = {TC0, TC1};
    for (int i = 0; i < 2; i++) {
        cfg.rows[a[i]] = (uint8_t)nc;
        cfg.colsb[a[i]] = 32;
        cfg.rows[b[i]] = 8;
        cfg.colsb[b[i]] = 64;
        cfg.rows[c[i]] = (uint8_t)nc;
        cfg.colsb[c[i]] = 64;
    }
    _tile_loadconfig(&cfg);
}

/* Q4_0 payload -> the B tile: rows 0-3 the low nibbles (elements 4j..4j+3),
 * rows 4-7 the high ones (elements 16+4j..). */
INLINE void split_nibbles(const uint8_t *pl, uint8_t *dst) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int k = 0; k < 4; k++) {
        __m512i v = _mm512_loadu_si512(pl + 64 * k);
        _mm512_store_si512(dst + 64 * k, _mm512_and_si512(v, m4));
        _mm512_store_si512(dst + 256 + 64 * k, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
    }
}

/* acc[t] += float(C[t] + offset) * d_w * d_x for block b. */
INLINE acc16 convert(const int T, acc16 acc, const int32_t *c, const rs_block_q8_0p *const *xr,
                     int64_t b, __m512 dw) {
    RS_UNROLL for (int t = 0; t < TOK; t++) {
        __m512i v =
            _mm512_add_epi32(_mm512_load_si512(c + 16 * t),
                             _mm512_set1_epi32(T == P_Q8_0 ? xr[t][b].off8 : xr[t][b].off4));
        acc.v[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v),
                                   _mm512_mul_ps(dw, _mm512_set1_ps(xr[t][b].d)), acc.v[t]);
    }
    return acc;
}

INLINE __m512 scales(const uint16_t *sc, int64_t b) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(sc + 16 * b)));
}

INLINE void amx_tile(const int T, int64_t n, const uint8_t *w, int nr, const uint8_t *x, size_t xs,
                     int nc, float *y, size_t ys) {
    const int64_t nb = n / 32;
    const uint16_t *sc = (const uint16_t *)(w + (size_t)nb * payload(T));
    const rs_block_q8_0p *xr[TOK];
    RS_UNROLL for (int t = 0; t < TOK; t++) xr[t] =
        (const rs_block_q8_0p *)(x + (size_t)(t < nc ? t : nc - 1) * xs);
    alignas(64) uint8_t bbuf[2][512];
    alignas(64) int32_t cbuf[2][TOK * 16];
    if (nc < TOK) memset(cbuf, 0, sizeof cbuf); /* rows past nc are converted, never stored */
    acc16 acc;
    RS_UNROLL for (int t = 0; t < TOK; t++) acc.v[t] = _mm512_setzero_ps();
    configure(nc);
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const uint8_t *a0 = x + (size_t)b * sizeof(rs_block_q8_0p);
        _tile_loadd(TA0, a0, xs);
        _tile_loadd(TA1, a0 + sizeof(rs_block_q8_0p), xs);
        if (T == P_Q8_0) {
            _tile_loadd(TB0, w + (size_t)b * 512, 64);
            _tile_loadd(TB1, w + (size_t)b * 512 + 512, 64);
        } else {
            split_nibbles(w + (size_t)b * 256, bbuf[0]);
            split_nibbles(w + (size_t)b * 256 + 256, bbuf[1]);
            _tile_loadd(TB0, bbuf[0], 64);
            _tile_loadd(TB1, bbuf[1], 64);
        }
        _tile_zero(TC0);
        _tile_zero(TC1);
        _tile_dpbsud(TC0, TA0, TB0);
        _tile_dpbsud(TC1, TA1, TB1);
        _tile_stored(TC0, cbuf[0], 64);
        acc = convert(T, acc, cbuf[0], xr, b, scales(sc, b));
        _tile_stored(TC1, cbuf[1], 64);
        acc = convert(T, acc, cbuf[1], xr, b + 1, scales(sc, b + 1));
    }
    if (b < nb) {
        _tile_loadd(TA0, x + (size_t)b * sizeof(rs_block_q8_0p), xs);
        if (T == P_Q8_0) {
            _tile_loadd(TB0, w + (size_t)b * 512, 64);
        } else {
            split_nibbles(w + (size_t)b * 256, bbuf[0]);
            _tile_loadd(TB0, bbuf[0], 64);
        }
        _tile_zero(TC0);
        _tile_dpbsud(TC0, TA0, TB0);
        _tile_stored(TC0, cbuf[0], 64);
        acc = convert(T, acc, cbuf[0], xr, b, scales(sc, b));
    }
    _tile_release();
    __mmask16 m = nr >= ROWS ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1);
    RS_UNROLL for (int t = 0; t < TOK; t++) if (t < nc)
        _mm512_mask_storeu_ps(y + (size_t)t * ys, m, acc.v[t]);
}

/* The table entry: tiles of 16 rows x 16 tokens; one token goes to the
 * AVX-512 kernel (whose decode tile height mr1 this entry shares). */
#define DEFINE_AMX(name, T, vnni)                                                                  \
    static void tile_##name(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, \
                            int nc, float *y, size_t ys) {                                         \
        if (nc == 1)                                                                               \
            vnni.tile(n, w, ws, nr, x, xs, nc, y, ys);                                             \
        else                                                                                       \
            amx_tile(T, n, w, nr, x, xs, nc, y, ys);                                               \
    }                                                                                              \
    const rs_cpu_kernel rs_cpu_kernel_##name = {tile_##name, ROWS, TOK, RS_CPU_X16_MR1, RS_SIMD_AMX}

DEFINE_AMX(q8_0_x16_amx, P_Q8_0, rs_cpu_kernel_q8_0_x16_avx512);
DEFINE_AMX(q4_0_x16_amx, P_Q4_0, rs_cpu_kernel_q4_0_x16_avx512);

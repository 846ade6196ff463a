/* dot_x16_amx.c — AMX-INT8 tiles for Q8_0 / Q4_0 / IQ4_NL / Q4_K weights in the packed
 * x16 layout (packed.h) against rs_block_q8_0p activations; used only at level
 * RS_SIMD_AMX (CPUID, XCR0 and the Linux permission checked by core/cpu.c).
 *
 * One tdpbsud per block of 32 elements computes C[token][row] for up to 16
 * tokens x 16 rows: A = the tokens' 32 activation bytes (signed; one tile row
 * per token, straight from the activation rows), B = the block payload of the
 * group (unsigned, 8 rows of 4 elements x 16 weight rows — exactly the Q8_0
 * payload; Q4_0's nibbles are first split into a 512-byte buffer, IQ4_NL's also
 * mapped to its values + 128). C plus the offset correction (-8 or -128 times
 * the activation sum) is then the exact
 * block dot product, converted and scaled per token row with AVX-512 as in
 * dot_x16_avx512.c: acc = fma(float(sum), d_w * d_x, acc), blocks in order.
 * Q4_K's sub-blocks are split as Q4_0's nibbles (no offset: its q are 0..15)
 * and converted as its AVX-512 kernel does: acc = fma(float(sum), d sc_j d_x,
 * acc), then acc -= dmin m_j times d_x sum(x).
 * Both kernels thus give bit-identical results. The tile product of one block
 * overlaps the conversion of the previous one (two C tiles and buffers in
 * turn). Tiles of fewer than 16 tokens (decode, the end of a batch) use the
 * AVX-512 kernel. */
#include <immintrin.h>
#include <stdalign.h>
#include <stddef.h>
#include <string.h>

#include "backend/cpu/iq4nl_avx512.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/packed.h"

#define INLINE static inline __attribute__((always_inline))

enum { P_Q8_0, P_Q4_0, P_IQ4_NL, P_Q4_K };
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

/* Tiles of 16 tokens: A 16 x 32 bytes, B 8 x 64, C 16 x 64. */
static void configure(void) {
    alignas(64) tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    static const int a[2] = {TA0, TA1}, b[2] = {TB0, TB1}, c[2] = {TC0, TC1};
    for (int i = 0; i < 2; i++) {
        cfg.rows[a[i]] = TOK;
        cfg.colsb[a[i]] = 32;
        cfg.rows[b[i]] = 8;
        cfg.colsb[b[i]] = 64;
        cfg.rows[c[i]] = TOK;
        cfg.colsb[c[i]] = 64;
    }
    _tile_loadconfig(&cfg);
}

/* Q4_0 / IQ4_NL payload -> the B tile: rows 0-3 the low nibbles (elements
 * 4j..4j+3), rows 4-7 the high ones (elements 16+4j..); IQ4_NL's as its values
 * + 128 (unsigned), as in dot_x16_avx512.c. */
INLINE void split_nibbles(const int T, const uint8_t *pl, uint8_t *dst) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int k = 0; k < 4; k++) {
        __m512i v = _mm512_loadu_si512(pl + 64 * k);
        __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        if (T == P_IQ4_NL) {
            lo = _mm512_shuffle_epi8(rs_iq4nl_u8_table(), lo);
            hi = _mm512_shuffle_epi8(rs_iq4nl_u8_table(), hi);
        }
        _mm512_store_si512(dst + 64 * k, lo);
        _mm512_store_si512(dst + 256 + 64 * k, hi);
    }
}

static inline int32_t ld_i32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline float ld_f32(const uint8_t *p) {
    float v;
    memcpy(&v, p, 4);
    return v;
}

/* A block's weight scales for its 16 rows: d_w, and for Q4_K d sc_j and dmin m_j
 * (computed as dot_x16_avx512.c does). */
typedef struct {
    __m512 dw, mn;
} wscale;

/* acc[t] += float(C[t] + offset_t) * d_w * d_x,t for one block (Q4_K: no offset,
 * then acc[t] -= mn * d_x,t sum(x_t)); xb points at the block of token 0, token
 * t's at xb + t * xs. */
INLINE acc16 convert(const int T, acc16 acc, const int32_t *c, const uint8_t *xb, size_t xs,
                     wscale ws) {
    const size_t off = T == P_Q4_0 || T == P_Q4_K ? offsetof(rs_block_q8_0p, off4)
                                                  : offsetof(rs_block_q8_0p, off8);
    const uint8_t *p = xb;
    RS_UNROLL for (int t = 0; t < TOK; t++, p += xs) {
        const float dx = ld_f32(p + offsetof(rs_block_q8_0p, d));
        __m512i v = _mm512_load_si512(c + 16 * t);
        if (T != P_Q4_K) v = _mm512_add_epi32(v, _mm512_set1_epi32(ld_i32(p + off)));
        acc.v[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), _mm512_mul_ps(ws.dw, _mm512_set1_ps(dx)),
                                   acc.v[t]);
        if (T == P_Q4_K) {
            const int32_t xsum = -ld_i32(p + off) / 8; /* exact: off4 = -8 sum(qs) */
            acc.v[t] = _mm512_fnmadd_ps(ws.mn, _mm512_set1_ps(dx * (float)xsum), acc.v[t]);
        }
    }
    return acc;
}

/* Block b's scales; sc is the group's scale region (after its nb payloads). */
INLINE wscale scales(const int T, const uint8_t *sc, int64_t b) {
    wscale s;
    if (T != P_Q4_K) {
        s.dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(sc + 32 * b)));
        s.mn = s.dw;
        return s;
    }
    const uint8_t *rec = sc + (size_t)(b / 8) * RS_CPU_PACK_K4_SCALES;
    const int j = (int)(b % 8);
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)rec)),
                 dmin = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(rec + 32)));
    s.dw = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                _mm_loadu_si128((const __m128i *)(rec + 64 + 16 * j)))));
    s.mn = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                   _mm_loadu_si128((const __m128i *)(rec + 192 + 16 * j)))));
    return s;
}

/* The weights of block b (payload, and the scales every other block): the
 * first token tile of a unit reads them from memory. */
INLINE void prefetch_block(const int T, const uint8_t *w, int64_t nb, int64_t b) {
    if (b >= nb) return;
    rs_cpu_prefetch(w + (size_t)b * payload(T), payload(T));
    if ((b & 1) == 0) /* the scales: 32 bytes per block, Q4_K 40 */
        __builtin_prefetch(w + (size_t)nb * payload(T) + (T == P_Q4_K ? 40 : 32) * (size_t)b);
}

enum { PF_BLOCKS = 4 }; /* prefetch distance */

/* One block's tile product into C (tiles named by the macro arguments); for
 * the 4-bit types the B tile comes from the nibbles split one block earlier. */
#define TILE_PRODUCT(TA, TB, TC, b, bsplit)                                                        \
    do {                                                                                           \
        _tile_loadd(TA, x + (size_t)(b) * sizeof(rs_block_q8_0p), xs);                             \
        if (T == P_Q8_0)                                                                           \
            _tile_loadd(TB, w + (size_t)(b)*512, 64);                                              \
        else                                                                                       \
            _tile_loadd(TB, bsplit, 64);                                                           \
        _tile_zero(TC);                                                                            \
        _tile_dpbsud(TC, TA, TB);                                                                  \
    } while (0)

/* A full tile of 16 tokens x (nr <= 16) rows. Software-pipelined: while the
 * tile unit multiplies block b, the vector units convert block b - 1 (stored
 * one iteration earlier, so its loads never wait for the tile store); the
 * 4-bit nibbles of block b + 1 are split after that. */
INLINE void amx_tile(const int T, int64_t n, const uint8_t *w, int nr, const uint8_t *x, size_t xs,
                     float *y, size_t ys) {
    const int64_t nb = n / 32;
    const uint8_t *sc = w + (size_t)nb * payload(T);
    alignas(64) uint8_t bbuf[2][512];
    alignas(64) int32_t cbuf[2][TOK * 16];
    acc16 acc;
    RS_UNROLL for (int t = 0; t < TOK; t++) acc.v[t] = _mm512_setzero_ps();
    configure();
    if (T != P_Q8_0) split_nibbles(T, w, bbuf[0]);
    TILE_PRODUCT(TA0, TB0, TC0, 0, bbuf[0]);
    if (T != P_Q8_0 && nb > 1) split_nibbles(T, w + 256, bbuf[1]);
    _tile_stored(TC0, cbuf[0], 64);
    int64_t b = 1;
    for (; b + 2 <= nb; b += 2) {
        prefetch_block(T, w, nb, b + PF_BLOCKS);
        prefetch_block(T, w, nb, b + 1 + PF_BLOCKS);
        TILE_PRODUCT(TA1, TB1, TC1, b, bbuf[1]);
        acc = convert(T, acc, cbuf[0], x + (size_t)(b - 1) * sizeof(rs_block_q8_0p), xs,
                      scales(T, sc, b - 1));
        if (T != P_Q8_0) split_nibbles(T, w + (size_t)(b + 1) * 256, bbuf[0]);
        _tile_stored(TC1, cbuf[1], 64);
        TILE_PRODUCT(TA0, TB0, TC0, b + 1, bbuf[0]);
        acc =
            convert(T, acc, cbuf[1], x + (size_t)b * sizeof(rs_block_q8_0p), xs, scales(T, sc, b));
        if (T != P_Q8_0 && b + 2 < nb) split_nibbles(T, w + (size_t)(b + 2) * 256, bbuf[1]);
        _tile_stored(TC0, cbuf[0], 64);
    }
    /* here block b - 1 is in cbuf[0]; b < nb means one more (odd count left) */
    if (b < nb) {
        TILE_PRODUCT(TA1, TB1, TC1, b, bbuf[1]);
        acc = convert(T, acc, cbuf[0], x + (size_t)(b - 1) * sizeof(rs_block_q8_0p), xs,
                      scales(T, sc, b - 1));
        _tile_stored(TC1, cbuf[1], 64);
        acc =
            convert(T, acc, cbuf[1], x + (size_t)b * sizeof(rs_block_q8_0p), xs, scales(T, sc, b));
    } else {
        acc = convert(T, acc, cbuf[0], x + (size_t)(b - 1) * sizeof(rs_block_q8_0p), xs,
                      scales(T, sc, b - 1));
    }
    _tile_release();
    __mmask16 m = nr >= ROWS ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1);
    RS_UNROLL for (int t = 0; t < TOK; t++) _mm512_mask_storeu_ps(y + (size_t)t * ys, m, acc.v[t]);
}

/* The table entry: tiles of 16 rows x 16 tokens. Narrower tiles (decode, the
 * last tokens of a batch) go to the AVX-512 kernel, whose decode tile height
 * mr1 this entry shares and whose results are the same bits. */
#define DEFINE_AMX(name, T, vnni)                                                                  \
    static void tile_##name(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, \
                            int nc, float *y, size_t ys) {                                         \
        if (nc == TOK) {                                                                           \
            amx_tile(T, n, (const uint8_t *)w, nr, (const uint8_t *)x, xs, y, ys);                 \
            return;                                                                                \
        }                                                                                          \
        const int step = nc == 1 ? 1 : vnni.nc;                                                    \
        for (int c = 0; c < nc; c += step)                                                         \
            vnni.tile(n, w, ws, nr, (const uint8_t *)x + (size_t)c * xs, xs,                       \
                      nc - c < step ? nc - c : step, y + (size_t)c * ys, ys);                      \
    }                                                                                              \
    const rs_cpu_kernel rs_cpu_kernel_##name = {tile_##name,    ROWS,        TOK,                  \
                                                RS_CPU_X16_MR1, RS_SIMD_AMX, NULL}

DEFINE_AMX(q8_0_x16_amx, P_Q8_0, rs_cpu_kernel_q8_0_x16_avx512);
DEFINE_AMX(q4_0_x16_amx, P_Q4_0, rs_cpu_kernel_q4_0_x16_avx512);
DEFINE_AMX(iq4_nl_x16_amx, P_IQ4_NL, rs_cpu_kernel_iq4_nl_x16_avx512);
DEFINE_AMX(q4_K_x16_amx, P_Q4_K, rs_cpu_kernel_q4_K_x16_avx512);

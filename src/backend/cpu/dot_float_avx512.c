/* dot_float_avx512.c — AVX-512 tile kernels for F32, F16 and BF16 weights
 * against f32 activations. The weights are widened to f32 as they are loaded
 * (vcvtph2ps; bf16 is a 16-bit shift), so the products are exact f32 FMAs of
 * the stored values — no activation rounding. A remainder below 16 elements
 * uses masked loads. */
#include <immintrin.h>

#include "backend/cpu/kernels.h"

#define INLINE static inline __attribute__((always_inline))

/* Tile arrays have this constant size (MR, NC <= it) and are indexed only with
 * compile-time constants after inlining, so the compiler keeps them in
 * registers (a variable-length array would live on the stack). */
enum { TILE_MAX = 4 };

enum { F_F32, F_F16, F_BF16 };

INLINE size_t elem_bytes(const int T) {
    return T == F_F32 ? 4 : 2;
}

INLINE __m512 load_w(const int T, const void *p, int64_t i, __mmask16 m) {
    switch (T) {
    case F_F32:
        return _mm512_maskz_loadu_ps(m, (const float *)p + i);
    case F_F16:
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i));
    default: {
        __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    }
    }
}

typedef struct {
    __m512 v[TILE_MAX][TILE_MAX];
} acc_tile; /* passed by value so that it stays in registers */

INLINE acc_tile step(const int T, const int MR, const int NC, const void *const *wr,
                     const float *const *xr, int64_t i, __mmask16 m, acc_tile acc) {
    __m512 xv[TILE_MAX];
    RS_UNROLL for (int c = 0; c < NC; c++) xv[c] = _mm512_maskz_loadu_ps(m, xr[c] + i);
    RS_UNROLL for (int r = 0; r < MR; r++) {
        __m512 wv = load_w(T, wr[r], i, m);
        RS_UNROLL for (int c = 0; c < NC; c++) acc.v[r][c] =
            _mm512_fmadd_ps(wv, xv[c], acc.v[r][c]);
    }
    return acc;
}

INLINE void ftile(const int T, const int MR, const int NC, int64_t n, const uint8_t *w, size_t ws,
                  int nr, const uint8_t *x, size_t xs, int nc, float *y, size_t ys) {
    const void *wr[TILE_MAX];
    const float *xr[TILE_MAX];
    RS_UNROLL for (int r = 0; r < MR; r++) wr[r] = w + (size_t)(r < nr ? r : nr - 1) * ws;
    RS_UNROLL for (int c = 0; c < NC; c++) xr[c] =
        // cppcheck-suppress invalidPointerCast ; x is the byte view of f32 activations
        (const float *)(x + (size_t)(c < nc ? c : nc - 1) * xs);
    acc_tile acc;
    RS_UNROLL for (int r = 0; r < MR; r++) RS_UNROLL for (int c = 0; c < NC; c++) acc.v[r][c] =
        _mm512_setzero_ps();
    int64_t i = 0;
    /* decode: prefetch the next tile's rows (see rs_cpu_prefetch) */
    const uint8_t *pf = w + (size_t)MR * ws;
    for (; i + 16 <= n; i += 16) {
        if (NC == 1) pf = rs_cpu_prefetch(pf, (size_t)MR * 16 * elem_bytes(T));
        acc = step(T, MR, NC, wr, xr, i, (__mmask16)0xffff, acc);
    }
    if (i < n) acc = step(T, MR, NC, wr, xr, i, (__mmask16)((1u << (n - i)) - 1), acc);
    RS_UNROLL for (int c = 0; c < NC; c++)
        RS_UNROLL for (int r = 0; r < MR; r++) if (c < nc && r < nr) y[(size_t)c * ys + (size_t)r] =
            _mm512_reduce_add_ps(acc.v[r][c]);
}

enum { MR = 4, NC = 3, MR1 = 4 };

RS_CPU_DEFINE_KERNEL(f32_avx512, ftile, F_F32, MR, NC, MR1, RS_SIMD_AVX512);
RS_CPU_DEFINE_KERNEL(f16_avx512, ftile, F_F16, MR, NC, MR1, RS_SIMD_AVX512);
RS_CPU_DEFINE_KERNEL(bf16_avx512, ftile, F_BF16, MR, NC, MR1, RS_SIMD_AVX512);

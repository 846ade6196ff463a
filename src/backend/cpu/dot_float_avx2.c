/* dot_float_avx2.c — AVX2 tile kernels for F32, F16 and BF16 weights against
 * f32 activations. The weights are widened to f32 as they are loaded (F16C
 * vcvtph2ps; bf16 is a 16-bit shift), so the products are exact f32 FMAs of
 * the stored values. The last n % 8 elements go through zero-padded copies. */
#include <immintrin.h>
#include <string.h>

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

INLINE __m256 load_w(const int T, const uint8_t *p) {
    switch (T) {
    case F_F32:
        // cppcheck-suppress invalidPointerCast ; f32 weights, loaded by an unaligned intrinsic
        return _mm256_loadu_ps((const float *)p);
    case F_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    default: {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
        return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    }
    }
}

typedef struct {
    __m256 v[TILE_MAX][TILE_MAX];
} acc_tile; /* passed by value so that it stays in registers */

INLINE acc_tile step(const int T, const int MR, const int NC, const uint8_t *const *wr,
                     const float *const *xr, int64_t i, acc_tile acc) {
    __m256 xv[TILE_MAX];
    RS_UNROLL for (int c = 0; c < NC; c++) xv[c] = _mm256_loadu_ps(xr[c] + i);
    RS_UNROLL for (int r = 0; r < MR; r++) {
        __m256 wv = load_w(T, wr[r] + (size_t)i * elem_bytes(T));
        RS_UNROLL for (int c = 0; c < NC; c++) acc.v[r][c] =
            _mm256_fmadd_ps(wv, xv[c], acc.v[r][c]);
    }
    return acc;
}

INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE void ftile(const int T, const int MR, const int NC, int64_t n, const uint8_t *w, size_t ws,
                  int nr, const uint8_t *x, size_t xs, int nc, float *y, size_t ys) {
    const uint8_t *wr[TILE_MAX];
    const float *xr[TILE_MAX];
    RS_UNROLL for (int r = 0; r < MR; r++) wr[r] = w + (size_t)(r < nr ? r : nr - 1) * ws;
    RS_UNROLL for (int c = 0; c < NC; c++) xr[c] =
        // cppcheck-suppress invalidPointerCast ; x is the byte view of f32 activations
        (const float *)(x + (size_t)(c < nc ? c : nc - 1) * xs);
    acc_tile acc;
    RS_UNROLL for (int r = 0; r < MR; r++) RS_UNROLL for (int c = 0; c < NC; c++) acc.v[r][c] =
        _mm256_setzero_ps();
    int64_t i = 0;
    /* decode: prefetch the next tile's rows (see rs_cpu_prefetch) */
    const uint8_t *pf = w + (size_t)MR * ws;
    for (; i + 8 <= n; i += 8) {
        if (NC == 1) pf = rs_cpu_prefetch(pf, (size_t)MR * 8 * elem_bytes(T));
        acc = step(T, MR, NC, wr, xr, i, acc);
    }
    if (i < n) { /* tail: zero-padded copies of the last n - i elements */
        uint8_t wt[TILE_MAX][32];
        float xt[TILE_MAX][8];
        const uint8_t *wp[TILE_MAX];
        const float *xp[TILE_MAX];
        size_t rest = (size_t)(n - i);
        RS_UNROLL for (int r = 0; r < MR; r++) {
            memset(wt[r], 0, sizeof wt[r]);
            memcpy(wt[r], wr[r] + (size_t)i * elem_bytes(T), rest * elem_bytes(T));
            wp[r] = wt[r];
        }
        RS_UNROLL for (int c = 0; c < NC; c++) {
            memset(xt[c], 0, sizeof xt[c]);
            memcpy(xt[c], xr[c] + i, rest * sizeof(float));
            xp[c] = xt[c];
        }
        acc = step(T, MR, NC, wp, xp, 0, acc);
    }
    RS_UNROLL for (int c = 0; c < NC; c++)
        RS_UNROLL for (int r = 0; r < MR; r++) if (c < nc && r < nr) y[(size_t)c * ys + (size_t)r] =
            hsum8(acc.v[r][c]);
}

enum { MR = 3, NC = 3, MR1 = 4 };

RS_CPU_DEFINE_KERNEL(f32_avx2, ftile, F_F32, MR, NC, MR1, RS_SIMD_AVX2);
RS_CPU_DEFINE_KERNEL(f16_avx2, ftile, F_F16, MR, NC, MR1, RS_SIMD_AVX2);
RS_CPU_DEFINE_KERNEL(bf16_avx2, ftile, F_BF16, MR, NC, MR1, RS_SIMD_AVX2);

/* act_quant_avx2.c — AVX2 activation quantizers, bit-identical to the scalar
 * ones in act_quant_ref.c for finite inputs (same scale arithmetic, vcvtps2dq
 * rounds half to even like rintf, max/min clamp NaN the same way). */
#include <immintrin.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "dtype/blocks.h"

static inline __m256 absf(__m256 v) {
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

static inline float hmax(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static inline int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline __m256i q8_round8(__m256 v, __m256 id) {
    __m256 t = _mm256_max_ps(_mm256_mul_ps(v, id), _mm256_set1_ps(-127.0f));
    t = _mm256_min_ps(t, _mm256_set1_ps(127.0f));
    return _mm256_cvtps_epi32(t);
}

/* Four vectors of 8 int32 (elements 0-31 in order) -> 32 int8 in order. */
static inline __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i ab = _mm256_packs_epi32(a, b); /* a0-3 b0-3 | a4-7 b4-7 */
    __m256i cd = _mm256_packs_epi32(c, d);
    __m256i v = _mm256_packs_epi16(ab, cd); /* a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7 */
    return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline float fp16_scale(float amax, uint16_t *d16) {
    *d16 = _cvtss_sh(amax / 127.0f, _MM_FROUND_TO_NEAREST_INT);
    float d = _cvtsh_ss(*d16);
    return d > 0 ? 1.0f / d : 0.0f;
}

/* Quantizes 32 values with inverse scale id into qs; returns their sum. */
static inline int q8_32(const float *x, __m256 id, int8_t *qs) {
    __m256i q[4];
    __m256i s = _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
        q[k] = q8_round8(_mm256_loadu_ps(x + 8 * k), id);
        s = _mm256_add_epi32(s, q[k]);
    }
    _mm256_storeu_si256((__m256i *)qs, pack32(q[0], q[1], q[2], q[3]));
    return hsum_i32(s);
}

static inline float amax32(const float *x) {
    __m256 m = _mm256_max_ps(absf(_mm256_loadu_ps(x)), absf(_mm256_loadu_ps(x + 8)));
    m = _mm256_max_ps(m,
                      _mm256_max_ps(absf(_mm256_loadu_ps(x + 16)), absf(_mm256_loadu_ps(x + 24))));
    return hmax(m);
}

void rs_cpu_quant_q8_0_avx2(const float *x, void *dst, int64_t n) {
    block_q8_0 *y = dst;
    for (int64_t b = 0; b < n / QK8_0; b++, x += QK8_0) {
        __m256 id = _mm256_set1_ps(fp16_scale(amax32(x), &y[b].d));
        q8_32(x, id, y[b].qs);
    }
}

void rs_cpu_quant_q8_1_avx2(const float *x, void *dst, int64_t n) {
    block_q8_1 *y = dst;
    for (int64_t b = 0; b < n / QK8_1; b++, x += QK8_1) {
        __m256 id = _mm256_set1_ps(fp16_scale(amax32(x), &y[b].d));
        int sum = q8_32(x, id, y[b].qs);
        y[b].s = _cvtss_sh(_cvtsh_ss(y[b].d) * (float)sum, _MM_FROUND_TO_NEAREST_INT);
    }
}

void rs_cpu_quant_q8_K_avx2(const float *x, void *dst, int64_t n) {
    block_q8_K *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        float amax = 0;
        for (int k = 0; k < QK_K / 32; k++) {
            float a = amax32(x + 32 * k);
            amax = a > amax ? a : amax;
        }
        float d = amax / 127.0f;
        float idf = d >= 1e-30f ? 1.0f / d : 0.0f;
        y[b].d = idf > 0 ? d : 0.0f;
        __m256 id = _mm256_set1_ps(idf);
        for (int k = 0; k < QK_K / 32; k++) {
            __m256i q[4];
            for (int j = 0; j < 4; j++) q[j] = q8_round8(_mm256_loadu_ps(x + 32 * k + 8 * j), id);
            _mm256_storeu_si256((__m256i *)(y[b].qs + 32 * k), pack32(q[0], q[1], q[2], q[3]));
            y[b].bsums[2 * k] = (int16_t)hsum_i32(_mm256_add_epi32(q[0], q[1]));
            y[b].bsums[2 * k + 1] = (int16_t)hsum_i32(_mm256_add_epi32(q[2], q[3]));
        }
    }
}

void rs_cpu_quant_q8_0p_avx2(const float *x, void *dst, int64_t n) {
    rs_block_q8_0p *y = dst;
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        uint16_t d16;
        __m256 id = _mm256_set1_ps(fp16_scale(amax32(x), &d16));
        int32_t sum = q8_32(x, id, y[b].qs);
        y[b].d = _cvtsh_ss(d16);
        y[b].off4 = -8 * sum;
        y[b].off8 = -128 * sum;
        y[b].sum16 = rs_q8_sum16(y[b].qs);
    }
}

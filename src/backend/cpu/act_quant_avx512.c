/* act_quant_avx512.c — AVX-512 activation quantizers, bit-identical to the
 * scalar ones in act_quant_ref.c for finite inputs (same scale arithmetic,
 * vcvtps2dq rounds half to even like rintf, max/min clamp NaN the same way). */
#include <immintrin.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "dtype/blocks.h"

static inline __m512 absf(__m512 v) {
    return _mm512_abs_ps(v);
}

/* round(clamp(v * id, -127, 127)) as 16 int32 */
static inline __m512i q8_round16(__m512 v, __m512 id) {
    __m512 t = _mm512_max_ps(_mm512_mul_ps(v, id), _mm512_set1_ps(-127.0f));
    t = _mm512_min_ps(t, _mm512_set1_ps(127.0f));
    return _mm512_cvtps_epi32(t);
}

static inline float fp16_scale(float amax, uint16_t *d16) {
    *d16 = _cvtss_sh(amax / 127.0f, _MM_FROUND_TO_NEAREST_INT);
    float d = _cvtsh_ss(*d16);
    return d > 0 ? 1.0f / d : 0.0f;
}

/* One 32-element block: 32 int8 in qs, returns sum(q). */
static inline int q8_block32(const float *x, int8_t *qs, uint16_t *d16) {
    __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(absf(v0), absf(v1)));
    __m512 id = _mm512_set1_ps(fp16_scale(amax, d16));
    __m512i q0 = q8_round16(v0, id), q1 = q8_round16(v1, id);
    _mm_storeu_si128((__m128i *)qs, _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128((__m128i *)(qs + 16), _mm512_cvtsepi32_epi8(q1));
    return _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
}

void rs_cpu_quant_q8_0_avx512(const float *x, void *dst, int64_t n) {
    block_q8_0 *y = dst;
    for (int64_t b = 0; b < n / QK8_0; b++) q8_block32(x + b * QK8_0, y[b].qs, &y[b].d);
}

void rs_cpu_quant_q8_1_avx512(const float *x, void *dst, int64_t n) {
    block_q8_1 *y = dst;
    for (int64_t b = 0; b < n / QK8_1; b++) {
        int sum = q8_block32(x + b * QK8_1, y[b].qs, &y[b].d);
        y[b].s = _cvtss_sh(_cvtsh_ss(y[b].d) * (float)sum, _MM_FROUND_TO_NEAREST_INT);
    }
}

void rs_cpu_quant_q8_K_avx512(const float *x, void *dst, int64_t n) {
    block_q8_K *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        __m512 m = _mm512_setzero_ps();
        for (int k = 0; k < QK_K / 16; k++) m = _mm512_max_ps(m, absf(_mm512_loadu_ps(x + 16 * k)));
        float d = _mm512_reduce_max_ps(m) / 127.0f;
        float idf = d >= 1e-30f ? 1.0f / d : 0.0f;
        y[b].d = idf > 0 ? d : 0.0f;
        __m512 id = _mm512_set1_ps(idf);
        for (int k = 0; k < QK_K / 16; k++) {
            __m512i q = q8_round16(_mm512_loadu_ps(x + 16 * k), id);
            _mm_storeu_si128((__m128i *)(y[b].qs + 16 * k), _mm512_cvtsepi32_epi8(q));
            y[b].bsums[k] = (int16_t)_mm512_reduce_add_epi32(q);
        }
    }
}

void rs_cpu_quant_q8_0p_avx512(const float *x, void *dst, int64_t n) {
    rs_block_q8_0p *y = dst;
    for (int64_t b = 0; b < n / 32; b++) {
        uint16_t d16;
        int32_t sum = q8_block32(x + b * 32, y[b].qs, &d16);
        y[b].d = _cvtsh_ss(d16);
        y[b].off4 = -8 * sum;
        y[b].off8 = -128 * sum;
        y[b].sum16 = rs_q8_sum16(y[b].qs);
    }
}

/* act_quant_ref.c — scalar activation quantizers: f32 rows -> Q8_0 / Q8_1 / Q8_K.
 *
 * These define the companion formats' numerics; the SIMD versions produce
 * bit-identical blocks for finite inputs. Per block: amax = max |x|,
 * d = amax / 127, and for the fp16-scaled formats d is rounded to fp16 first
 * and the values are quantized with the scale actually stored (so that the
 * only error left is the rounding of x / d). q = round-half-even(x / d),
 * clamped to [-127, 127] (never -128: the AVX2 sign trick needs |q| <= 127). */
#include <math.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "dtype/blocks.h"
#include "dtype/fp16.h"

static inline int8_t q8_round(float v) {
    v = fmaxf(v, -127.0f); /* also maps NaN to -127 (no UB in the conversion) */
    v = fminf(v, 127.0f);
    return (int8_t)rintf(v);
}

static float amax_of(const float *x, int n) {
    float m = 0;
    for (int i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

/* Inverse of the fp16 scale that will be stored for amax (0 when it is 0). */
static float fp16_scale(float amax, uint16_t *d16) {
    *d16 = rs_f32_to_fp16(amax / 127.0f);
    float d = rs_fp16_to_f32(*d16);
    return d > 0 ? 1.0f / d : 0.0f;
}

void rs_cpu_quant_q8_0_ref(const float *x, void *dst, int64_t n) {
    block_q8_0 *y = dst;
    for (int64_t b = 0; b < n / QK8_0; b++, x += QK8_0) {
        float id = fp16_scale(amax_of(x, QK8_0), &y[b].d);
        for (int j = 0; j < QK8_0; j++) y[b].qs[j] = q8_round(x[j] * id);
    }
}

void rs_cpu_quant_q8_1_ref(const float *x, void *dst, int64_t n) {
    block_q8_1 *y = dst;
    for (int64_t b = 0; b < n / QK8_1; b++, x += QK8_1) {
        float id = fp16_scale(amax_of(x, QK8_1), &y[b].d);
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            y[b].qs[j] = q8_round(x[j] * id);
            sum += y[b].qs[j];
        }
        y[b].s = rs_f32_to_fp16(rs_fp16_to_f32(y[b].d) * (float)sum);
    }
}

/* Q8_K keeps d in f32, so no fp16 rounding; a subnormal d would overflow 1/d. */
void rs_cpu_quant_q8_K_ref(const float *x, void *dst, int64_t n) {
    block_q8_K *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        float d = amax_of(x, QK_K) / 127.0f;
        float id = d >= 1e-30f ? 1.0f / d : 0.0f;
        y[b].d = id > 0 ? d : 0.0f;
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) {
                int8_t q = q8_round(x[16 * g + j] * id);
                y[b].qs[16 * g + j] = q;
                sum += q;
            }
            y[b].bsums[g] = (int16_t)sum;
        }
    }
}

/* Q8_0 values and scale (identical to rs_cpu_quant_q8_0_ref), scale as f32,
 * with the offset sums of the packed kernels. */
void rs_cpu_quant_q8_0p_ref(const float *x, void *dst, int64_t n) {
    rs_block_q8_0p *y = dst;
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        uint16_t d16;
        float id = fp16_scale(amax_of(x, 32), &d16);
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            y[b].qs[j] = q8_round(x[j] * id);
            sum += y[b].qs[j];
        }
        y[b].d = rs_fp16_to_f32(d16);
        y[b].off4 = -8 * sum;
        y[b].off8 = -128 * sum;
        y[b].sum16 = rs_q8_sum16(y[b].qs);
    }
}

/* quant_legacy.c — the 32-element block types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.
 *
 * Dequantization follows the GGUF definitions in blocks.h. Quantization is
 * ggml's reference (quantize_row_*_ref) operation for operation in f32, so the
 * same input gives the same bytes: the scale from the block's extreme value,
 * the reciprocal used unrounded while d itself is stored as fp16, and the
 * exact rounding each type uses (truncation of x + 8.5 for Q4_0, roundf, i.e.
 * ties away from zero, for Q8_0). Elements j and j + 16 share byte j of qs
 * (low and high nibble); the fifth bit of element j is bit j of qh. */
#include "dtype/quant_internal.h"

#include <float.h>

/* Value of the element with the largest magnitude (the first one wins on
 * ties, as ggml's strict comparison does); 0 for an all-zero block. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, int n, float *min_out, float *max_out) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    *min_out = min;
    *max_out = max;
}

static uint32_t load_qh(const uint8_t qh[4]) {
    uint32_t v;
    memcpy(&v, qh, sizeof v);
    return v;
}

/* ---- Q4_0: x = d * (q - 8) ---- */

void rs_dtype_q4_0_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK4_0; b++, p += sizeof(block_q4_0), dst += QK4_0) {
        block_q4_0 blk;
        memcpy(&blk, p, sizeof blk);
        const float d = rs_fp16_to_f32(blk.d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            dst[j] = (float)((blk.qs[j] & 0x0f) - 8) * d;
            dst[j + QK4_0 / 2] = (float)((blk.qs[j] >> 4) - 8) * d;
        }
    }
}

void rs_dtype_q4_0_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t b = 0; b < n / QK4_0; b++, src += QK4_0, out += sizeof(block_q4_0)) {
        /* the signed extreme maps to q = 0 exactly: d = max / -8 */
        const float d = signed_absmax(src, QK4_0) / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        block_q4_0 blk;
        blk.d = rs_f32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const int q0 = rs_clamp_int(rs_trunc_int(src[j] * id + 8.5f), 0, 15);
            const int q1 = rs_clamp_int(rs_trunc_int(src[j + QK4_0 / 2] * id + 8.5f), 0, 15);
            blk.qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
        memcpy(out, &blk, sizeof blk);
    }
}

/* ---- Q4_1: x = d * q + m ---- */

void rs_dtype_q4_1_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK4_1; b++, p += sizeof(block_q4_1), dst += QK4_1) {
        block_q4_1 blk;
        memcpy(&blk, p, sizeof blk);
        const float d = rs_fp16_to_f32(blk.d);
        const float m = rs_fp16_to_f32(blk.m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            dst[j] = (float)(blk.qs[j] & 0x0f) * d + m;
            dst[j + QK4_1 / 2] = (float)(blk.qs[j] >> 4) * d + m;
        }
    }
}

void rs_dtype_q4_1_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t b = 0; b < n / QK4_1; b++, src += QK4_1, out += sizeof(block_q4_1)) {
        float min, max;
        min_max(src, QK4_1, &min, &max);
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        block_q4_1 blk;
        blk.d = rs_f32_to_fp16(d);
        blk.m = rs_f32_to_fp16(min);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const int q0 = rs_clamp_int(rs_trunc_int((src[j] - min) * id + 0.5f), 0, 15);
            const int q1 = rs_clamp_int(rs_trunc_int((src[j + 16] - min) * id + 0.5f), 0, 15);
            blk.qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
        memcpy(out, &blk, sizeof blk);
    }
}

/* ---- Q5_0: x = d * (q - 16) ---- */

void rs_dtype_q5_0_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK5_0; b++, p += sizeof(block_q5_0), dst += QK5_0) {
        block_q5_0 blk;
        memcpy(&blk, p, sizeof blk);
        const float d = rs_fp16_to_f32(blk.d);
        const uint32_t qh = load_qh(blk.qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int q0 = (blk.qs[j] & 0x0f) | (int)(((qh >> j) & 1) << 4);
            const int q1 = (blk.qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            dst[j] = (float)(q0 - 16) * d;
            dst[j + QK5_0 / 2] = (float)(q1 - 16) * d;
        }
    }
}

void rs_dtype_q5_0_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t b = 0; b < n / QK5_0; b++, src += QK5_0, out += sizeof(block_q5_0)) {
        const float d = signed_absmax(src, QK5_0) / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        block_q5_0 blk;
        blk.d = rs_f32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int q0 = rs_clamp_int(rs_trunc_int(src[j] * id + 16.5f), 0, 31);
            const int q1 = rs_clamp_int(rs_trunc_int(src[j + 16] * id + 16.5f), 0, 31);
            blk.qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + 16);
        }
        memcpy(blk.qh, &qh, sizeof qh);
        memcpy(out, &blk, sizeof blk);
    }
}

/* ---- Q5_1: x = d * q + m ---- */

void rs_dtype_q5_1_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK5_1; b++, p += sizeof(block_q5_1), dst += QK5_1) {
        block_q5_1 blk;
        memcpy(&blk, p, sizeof blk);
        const float d = rs_fp16_to_f32(blk.d);
        const float m = rs_fp16_to_f32(blk.m);
        const uint32_t qh = load_qh(blk.qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int q0 = (blk.qs[j] & 0x0f) | (int)(((qh >> j) & 1) << 4);
            const int q1 = (blk.qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            dst[j] = (float)q0 * d + m;
            dst[j + QK5_1 / 2] = (float)q1 * d + m;
        }
    }
}

void rs_dtype_q5_1_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t b = 0; b < n / QK5_1; b++, src += QK5_1, out += sizeof(block_q5_1)) {
        float min, max;
        min_max(src, QK5_1, &min, &max);
        const float d = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        block_q5_1 blk;
        blk.d = rs_f32_to_fp16(d);
        blk.m = rs_f32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            /* ggml does not clamp here: (x - min) * id + 0.5 stays below 32 */
            const int q0 = rs_clamp_int(rs_trunc_int((src[j] - min) * id + 0.5f), 0, 31);
            const int q1 = rs_clamp_int(rs_trunc_int((src[j + 16] - min) * id + 0.5f), 0, 31);
            blk.qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + 16);
        }
        memcpy(blk.qh, &qh, sizeof qh);
        memcpy(out, &blk, sizeof blk);
    }
}

/* ---- Q8_0 and Q8_1: x = d * q, q = roundf(x / d), d = amax / 127 ---- */

static float block_amax(const float *x, int n) {
    float amax = 0.0f;
    for (int j = 0; j < n; j++) {
        const float a = fabsf(x[j]);
        amax = amax > a ? amax : a;
    }
    return amax;
}

void rs_dtype_q8_0_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK8_0; b++, p += sizeof(block_q8_0), dst += QK8_0) {
        block_q8_0 blk;
        memcpy(&blk, p, sizeof blk);
        const float d = rs_fp16_to_f32(blk.d);
        for (int j = 0; j < QK8_0; j++) dst[j] = (float)blk.qs[j] * d;
    }
}

void rs_dtype_q8_0_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t b = 0; b < n / QK8_0; b++, src += QK8_0, out += sizeof(block_q8_0)) {
        const float d = block_amax(src, QK8_0) / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        block_q8_0 blk;
        blk.d = rs_f32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++)
            blk.qs[j] = (int8_t)rs_clamp_int(rs_round_int(src[j] * id), -127, 127);
        memcpy(out, &blk, sizeof blk);
    }
}

void rs_dtype_q8_1_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK8_1; b++, p += sizeof(block_q8_1), dst += QK8_1) {
        block_q8_1 blk;
        memcpy(&blk, p, sizeof blk);
        const float d = rs_fp16_to_f32(blk.d);
        for (int j = 0; j < QK8_1; j++) dst[j] = (float)blk.qs[j] * d;
    }
}

void rs_dtype_q8_1_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t b = 0; b < n / QK8_1; b++, src += QK8_1, out += sizeof(block_q8_1)) {
        const float d = block_amax(src, QK8_1) / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        block_q8_1 blk;
        blk.d = rs_f32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            blk.qs[j] = (int8_t)rs_clamp_int(rs_round_int(src[j] * id), -127, 127);
            sum += blk.qs[j];
        }
        /* s uses the unrounded f32 d, as ggml does */
        blk.s = rs_f32_to_fp16((float)sum * d);
        memcpy(out, &blk, sizeof blk);
    }
}

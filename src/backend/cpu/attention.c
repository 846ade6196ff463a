/* attention.c — portable attention kernels and kernel selection (see attention.h). */
#include "backend/cpu/attention.h"

#include <math.h>

#include "dtype/blocks.h"
#include "dtype/dtype.h"
#include "dtype/fp16.h"

/* scores[p] = exp(s_p - max) from raw scores; returns their sum. */
static float softmax_inplace(float *scores, int n_pos) {
    float mx = -INFINITY;
    for (int p = 0; p < n_pos; p++) mx = scores[p] > mx ? scores[p] : mx;
    float sum = 0;
    for (int p = 0; p < n_pos; p++) sum += (scores[p] = expf(scores[p] - mx));
    return sum;
}

void rs_attn_head_f32_scalar(const float *q, const void *kv, const void *vv, int n_pos, int hd,
                             float scale, float *scores, float *out) {
    const float *k = kv, *v = vv;
    for (int p = 0; p < n_pos; p++) {
        float s = 0;
        for (int i = 0; i < hd; i++) s += q[i] * k[(size_t)p * hd + i];
        scores[p] = s * scale;
    }
    float inv = 1.0f / softmax_inplace(scores, n_pos);
    for (int i = 0; i < hd; i++) out[i] = 0;
    for (int p = 0; p < n_pos; p++) {
        float w = scores[p] * inv;
        for (int i = 0; i < hd; i++) out[i] += w * v[(size_t)p * hd + i];
    }
}

void rs_attn_head_f16_scalar(const float *q, const void *kv, const void *vv, int n_pos, int hd,
                             float scale, float *scores, float *out) {
    const rs_fp16 *k = kv, *v = vv;
    for (int p = 0; p < n_pos; p++) {
        float s = 0;
        for (int i = 0; i < hd; i++) s += q[i] * rs_fp16_to_f32(k[(size_t)p * hd + i]);
        scores[p] = s * scale;
    }
    float inv = 1.0f / softmax_inplace(scores, n_pos);
    for (int i = 0; i < hd; i++) out[i] = 0;
    for (int p = 0; p < n_pos; p++) {
        float w = scores[p] * inv;
        for (int i = 0; i < hd; i++) out[i] += w * rs_fp16_to_f32(v[(size_t)p * hd + i]);
    }
}

/* Q8_0 rows (ceil(hd / 32) blocks each), dequantized one row at a time. */
void rs_attn_head_q8_0_scalar(const float *q, const void *kv, const void *vv, int n_pos, int hd,
                              float scale, float *scores, float *out) {
    const rs_to_f32_fn deq = rs_dtype_get(RS_DTYPE_Q8_0)->to_f32;
    const int padded = (hd + QK8_0 - 1) / QK8_0 * QK8_0;
    const size_t row = (size_t)padded / QK8_0 * sizeof(block_q8_0);
    const unsigned char *k = kv, *v = vv;
    float tmp[RS_MAX_HEAD_DIM + QK8_0];
    for (int p = 0; p < n_pos; p++) {
        deq(k + (size_t)p * row, tmp, padded);
        float s = 0;
        for (int i = 0; i < hd; i++) s += q[i] * tmp[i];
        scores[p] = s * scale;
    }
    float inv = 1.0f / softmax_inplace(scores, n_pos);
    for (int i = 0; i < hd; i++) out[i] = 0;
    for (int p = 0; p < n_pos; p++) {
        deq(v + (size_t)p * row, tmp, padded);
        float w = scores[p] * inv;
        for (int i = 0; i < hd; i++) out[i] += w * tmp[i];
    }
}

rs_attn_head_fn rs_attn_head_select(rs_kv_type type, rs_simd_level level) {
    if (type == RS_KV_Q8_0)
        return level >= RS_SIMD_AVX2 ? rs_attn_head_q8_0_avx2 : rs_attn_head_q8_0_scalar;
    if (level >= RS_SIMD_AVX2)
        return type == RS_KV_F16 ? rs_attn_head_f16_avx2 : rs_attn_head_f32_avx2;
    return type == RS_KV_F16 ? rs_attn_head_f16_scalar : rs_attn_head_f32_scalar;
}

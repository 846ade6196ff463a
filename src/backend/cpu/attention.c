/* attention.c — portable attention kernels and kernel selection (see attention.h). */
#include "backend/cpu/attention.h"

#include <math.h>

#include "backend/cpu/kernels.h"

#include "dtype/blocks.h"
#include "dtype/dtype.h"
#include "dtype/fp16.h"

/* scores[p] = exp(s_p - max) from raw scores; returns their sum. */
float rs_attn_softmax_inplace(float *scores, int n_pos) {
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
    float inv = 1.0f / rs_attn_softmax_inplace(scores, n_pos);
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
    float inv = 1.0f / rs_attn_softmax_inplace(scores, n_pos);
    for (int i = 0; i < hd; i++) out[i] = 0;
    for (int p = 0; p < n_pos; p++) {
        float w = scores[p] * inv;
        for (int i = 0; i < hd; i++) out[i] += w * rs_fp16_to_f32(v[(size_t)p * hd + i]);
    }
}

void rs_attn_scores_q8(rs_kv_type type, rs_simd_level level, const float *q, const void *k,
                       int n_pos, int hd, float scale, float *scores) {
    const rs_dtype wt = type == RS_KV_Q4_0 ? RS_DTYPE_Q4_0 : RS_DTYPE_Q8_0;
    const rs_cpu_kernel *kern = rs_cpu_kernel_get(wt, level);
    const rs_cpu_quant_fn quant = rs_cpu_quant_get(RS_CPU_ACT_Q8_0, level);
    const size_t row = (size_t)hd / 32 * rs_dtype_get(wt)->type_size;
    block_q8_0 xq[RS_MAX_HEAD_DIM / 32];
    quant(q, xq, hd);
    const unsigned char *kb = k;
    for (int p = 0; p < n_pos; p += kern->mr1) {
        const int nr = n_pos - p < kern->mr1 ? n_pos - p : kern->mr1;
        kern->tile(hd, kb + (size_t)p * row, row, nr, xq, 0, 1, scores + p, 1);
    }
    for (int p = 0; p < n_pos; p++) scores[p] *= scale;
}

/* Rows of ceil(hd / 32) blocks of a 32-value type: keys scored in integers where the head is
 * whole blocks (rs_attn_scores_q8), else dequantized as the values are, one row at a time. */
static void attn_head_blocks(rs_kv_type type, const float *q, const void *kv, const void *vv,
                             int n_pos, int hd, float scale, float *scores, float *out) {
    const rs_dtype_traits *tr = rs_dtype_get(type == RS_KV_Q4_0 ? RS_DTYPE_Q4_0 : RS_DTYPE_Q8_0);
    const int padded = (hd + 31) / 32 * 32;
    const size_t row = (size_t)padded / 32 * tr->type_size;
    const unsigned char *k = kv, *v = vv;
    float tmp[RS_MAX_HEAD_DIM + 32];
    if (hd % 32 == 0) {
        rs_attn_scores_q8(type, RS_SIMD_SCALAR, q, kv, n_pos, hd, scale, scores);
    } else {
        for (int p = 0; p < n_pos; p++) {
            tr->to_f32(k + (size_t)p * row, tmp, padded);
            float s = 0;
            for (int i = 0; i < hd; i++) s += q[i] * tmp[i];
            scores[p] = s * scale;
        }
    }
    float inv = 1.0f / rs_attn_softmax_inplace(scores, n_pos);
    for (int i = 0; i < hd; i++) out[i] = 0;
    for (int p = 0; p < n_pos; p++) {
        tr->to_f32(v + (size_t)p * row, tmp, padded);
        float w = scores[p] * inv;
        for (int i = 0; i < hd; i++) out[i] += w * tmp[i];
    }
}

void rs_attn_head_q8_0_scalar(const float *q, const void *k, const void *v, int n_pos, int hd,
                              float scale, float *scores, float *out) {
    attn_head_blocks(RS_KV_Q8_0, q, k, v, n_pos, hd, scale, scores, out);
}

void rs_attn_head_q4_0_scalar(const float *q, const void *k, const void *v, int n_pos, int hd,
                              float scale, float *scores, float *out) {
    attn_head_blocks(RS_KV_Q4_0, q, k, v, n_pos, hd, scale, scores, out);
}

rs_attn_head_fn rs_attn_head_select(rs_kv_type type, rs_simd_level level) {
    if (type == RS_KV_Q8_0)
        return level >= RS_SIMD_AVX512 ? rs_attn_head_q8_0_avx512
               : level >= RS_SIMD_AVX2 ? rs_attn_head_q8_0_avx2
                                       : rs_attn_head_q8_0_scalar;
    if (type == RS_KV_Q4_0)
        return level >= RS_SIMD_AVX512 ? rs_attn_head_q4_0_avx512
               : level >= RS_SIMD_AVX2 ? rs_attn_head_q4_0_avx2
                                       : rs_attn_head_q4_0_scalar;
    if (level >= RS_SIMD_AVX2)
        return type == RS_KV_F16 ? rs_attn_head_f16_avx2 : rs_attn_head_f32_avx2;
    return type == RS_KV_F16 ? rs_attn_head_f16_scalar : rs_attn_head_f32_scalar;
}

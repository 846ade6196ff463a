/* quant_k.c — the K-quant super-block types Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K
 * (256 elements per block): dequantization exact to the GGUF layouts and
 * ggml's reference quantizers (quantize_row_*_ref, no importance weights).
 *
 * Shared layout facts, for element e of a block:
 *   Q2_K/Q3_K  qs byte 32*(e/128) + e%32, bits 2*((e%128)/32); sub-block e/16.
 *   Q3_K       high bit: hmask byte e%32, bit e/32 (set means "do not subtract 4").
 *   Q4_K/Q5_K  qs byte 32*(e/64) + e%32, low nibble when (e%64) < 32; sub-block
 *              e/32; Q5_K's fifth bit is qh byte e%32, bit e/32.
 *   Q6_K       low 4 bits: ql byte 64*(e/128) + e%64, high nibble when (e%128) >= 64;
 *              high 2 bits: qh byte 32*(e/128) + e%32, bits 2*((e%128)/32).
 * The scale searches live in quant_k_search.c. */
#include "dtype/quant_internal.h"

/* ---- shared packing helpers ---- */

/* 2-bit levels of 256 elements into 64 bytes (Q2_K and Q3_K's low bits). */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                      (L[j + l + 96] << 6));
}

static int level_2bit(const uint8_t *qs, int e) {
    return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
}

/* Q3_K's 16 6-bit scales (stored +32): low nibbles in bytes 0..7 (sub-blocks
 * 0..7 low nibble, 8..15 high nibble), top two bits in bytes 8..11. */
static int get_q3_scale(int j, const uint8_t *s) {
    const int lo = j < 8 ? (s[j] & 0x0f) : (s[j - 8] >> 4);
    const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

/* ---- Q2_K: x = d * sc * q - dmin * m, q in 0..3, 4-bit sc and m per 16 ---- */

void rs_dtype_q2_k_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK_K; b++, p += sizeof(block_q2_K), dst += QK_K) {
        block_q2_K blk;
        memcpy(&blk, p, sizeof blk);
        const float d = rs_fp16_to_f32(blk.d);
        const float dmin = rs_fp16_to_f32(blk.dmin);
        for (int s = 0; s < QK_K / 16; s++) {
            const float dl = d * (float)(blk.scales[s] & 0x0f);
            const float ml = dmin * (float)(blk.scales[s] >> 4);
            for (int e = 16 * s; e < 16 * s + 16; e++)
                dst[e] = dl * (float)level_2bit(blk.qs, e) - ml;
        }
    }
}

void rs_dtype_q2_k_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K, out += sizeof(block_q2_K)) {
        const float *x = src;
        uint8_t L[QK_K], Laux[16];
        float weights[16], mins[QK_K / 16], scales[QK_K / 16];
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            for (int l = 0; l < 16; l++) weights[l] = fabsf(x[16 * j + l]);
            scales[j] = rs_quant_search_affine(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j],
                                               Laux, -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        block_q2_K blk;
        /* sub-block scales and mins as 4-bit multiples of max / 15 */
        if (max_scale > 0) {
            const float iscale = 15.0f / max_scale;
            for (int j = 0; j < QK_K / 16; j++)
                blk.scales[j] = (uint8_t)rs_nearest_int(iscale * scales[j]);
            blk.d = rs_f32_to_fp16(max_scale / 15.0f);
        } else {
            memset(blk.scales, 0, sizeof blk.scales);
            blk.d = rs_f32_to_fp16(0.0f);
        }
        if (max_min > 0) {
            const float iscale = 15.0f / max_min;
            for (int j = 0; j < QK_K / 16; j++)
                blk.scales[j] |= (uint8_t)((unsigned)rs_nearest_int(iscale * mins[j]) << 4);
            blk.dmin = rs_f32_to_fp16(max_min / 15.0f);
        } else {
            blk.dmin = rs_f32_to_fp16(0.0f);
        }
        /* requantize against the scales actually stored */
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = rs_fp16_to_f32(blk.d) * (float)(blk.scales[j] & 0x0f);
            if (d == 0.0f) continue;
            const float dm = rs_fp16_to_f32(blk.dmin) * (float)(blk.scales[j] >> 4);
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] =
                    (uint8_t)rs_clamp_int(rs_nearest_int((x[16 * j + ii] + dm) / d), 0, 3);
        }
        pack_2bit(L, blk.qs);
        memcpy(out, &blk, sizeof blk);
    }
}

/* ---- Q3_K: x = d * sc * (q - 4), q in 0..7 (2 low bits + hmask bit) ---- */

void rs_dtype_q3_k_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK_K; b++, p += sizeof(block_q3_K), dst += QK_K) {
        block_q3_K blk;
        memcpy(&blk, p, sizeof blk);
        const float d_all = rs_fp16_to_f32(blk.d);
        for (int s = 0; s < QK_K / 16; s++) {
            const float dl = d_all * (float)get_q3_scale(s, blk.scales);
            for (int e = 16 * s; e < 16 * s + 16; e++) {
                const int high = (blk.hmask[e % 32] >> (e / 32)) & 1;
                dst[e] = dl * (float)(level_2bit(blk.qs, e) - (high ? 0 : 4));
            }
        }
    }
}

void rs_dtype_q3_k_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K, out += sizeof(block_q3_K)) {
        const float *x = src;
        int8_t L[QK_K];
        float scales[QK_K / 16];
        float max_scale = 0, amax = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            scales[j] = rs_quant_search_sym_refine(16, 4, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        block_q3_K blk;
        memset(blk.scales, 0, sizeof blk.scales);
        if (max_scale != 0.0f) {
            /* 6-bit signed sub-block scales; the extreme one maps to -32 */
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < QK_K / 16; j++) {
                const int l = rs_clamp_int(rs_nearest_int(iscale * scales[j]), -32, 31) + 32;
                if (j < 8)
                    blk.scales[j] = (uint8_t)(l & 0x0f);
                else
                    blk.scales[j - 8] |= (uint8_t)((l & 0x0f) << 4);
                blk.scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            blk.d = rs_f32_to_fp16(1 / iscale);
        } else {
            blk.d = rs_f32_to_fp16(0.0f);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = rs_fp16_to_f32(blk.d) * (float)get_q3_scale(j, blk.scales);
            if (d == 0.0f) continue;
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] =
                    (int8_t)(rs_clamp_int(rs_nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
        }
        /* high bit of element e goes to hmask byte e % 32, bit e / 32 */
        uint8_t low[QK_K];
        memset(blk.hmask, 0, sizeof blk.hmask);
        for (int e = 0; e < QK_K; e++) {
            int l = L[e];
            if (l > 3) {
                blk.hmask[e % 32] |= (uint8_t)(1u << (e / 32));
                l -= 4;
            }
            low[e] = (uint8_t)l;
        }
        pack_2bit(low, blk.qs);
        memcpy(out, &blk, sizeof blk);
    }
}

/* ---- Q4_K / Q5_K: x = d * sc * q - dmin * m, 6-bit sc and m per 32 ---- */

void rs_dtype_q4_k_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK_K; b++, p += sizeof(block_q4_K), dst += QK_K) {
        block_q4_K blk;
        memcpy(&blk, p, sizeof blk);
        const float d = rs_fp16_to_f32(blk.d);
        const float dmin = rs_fp16_to_f32(blk.dmin);
        for (int s = 0; s < QK_K / 32; s++) {
            int sc, m;
            rs_k4_get_scale_min(s, blk.scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            const uint8_t *q = blk.qs + 32 * (s / 2);
            const int shift = (s % 2) * 4;
            for (int l = 0; l < 32; l++)
                dst[32 * s + l] = d1 * (float)((q[l] >> shift) & 0x0f) - m1;
        }
    }
}

void rs_dtype_q5_k_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK_K; b++, p += sizeof(block_q5_K), dst += QK_K) {
        block_q5_K blk;
        memcpy(&blk, p, sizeof blk);
        const float d = rs_fp16_to_f32(blk.d);
        const float dmin = rs_fp16_to_f32(blk.dmin);
        for (int s = 0; s < QK_K / 32; s++) {
            int sc, m;
            rs_k4_get_scale_min(s, blk.scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            const uint8_t *q = blk.qs + 32 * (s / 2);
            const int shift = (s % 2) * 4;
            for (int l = 0; l < 32; l++) {
                const int q5 = ((q[l] >> shift) & 0x0f) | (((blk.qh[l] >> s) & 1) << 4);
                dst[32 * s + l] = d1 * (float)q5 - m1;
            }
        }
    }
}

/* Everything Q4_K and Q5_K share up to the final levels: per-32 affine
 * searches, 6-bit scales/mins against the block maxima, then requantization
 * against the stored values. Fills d, dmin, scales and L (0..nmax). */
static void quantize_k_affine(const float *x, int nmax, float rmin, int nstep, uint16_t *d_out,
                              uint16_t *dmin_out, uint8_t scales_out[K_SCALE_SIZE], uint8_t *L) {
    uint8_t Laux[32];
    float weights[32], mins[QK_K / 32], scales[QK_K / 32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 32; j++) {
        /* weight each element by the group's RMS plus its own magnitude */
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = rs_quant_search_affine(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j],
                                           Laux, rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    for (int j = 0; j < QK_K / 32; j++) {
        /* ggml stores these into uint8_t before clamping to 63 */
        const int ls = rs_min_int(63, (uint8_t)rs_nearest_int(inv_scale * scales[j]));
        const int lm = rs_min_int(63, (uint8_t)rs_nearest_int(inv_min * mins[j]));
        rs_k4_put_scale_min(j, scales_out, ls, lm);
    }
    *d_out = rs_f32_to_fp16(max_scale / 63.0f);
    *dmin_out = rs_f32_to_fp16(max_min / 63.0f);
    for (int j = 0; j < QK_K / 32; j++) {
        int sc, m;
        rs_k4_get_scale_min(j, scales_out, &sc, &m);
        const float d = rs_fp16_to_f32(*d_out) * (float)sc;
        if (d == 0.0f) continue;
        const float dm = rs_fp16_to_f32(*dmin_out) * (float)m;
        for (int ii = 0; ii < 32; ii++)
            L[32 * j + ii] =
                (uint8_t)rs_clamp_int(rs_nearest_int((x[32 * j + ii] + dm) / d), 0, nmax);
    }
}

void rs_dtype_q4_k_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K, out += sizeof(block_q4_K)) {
        block_q4_K blk;
        uint8_t L[QK_K];
        quantize_k_affine(src, 15, -1.0f, 20, &blk.d, &blk.dmin, blk.scales, L);
        for (int j = 0; j < QK_K; j += 64)
            for (int l = 0; l < 32; l++)
                blk.qs[j / 2 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        memcpy(out, &blk, sizeof blk);
    }
}

void rs_dtype_q5_k_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K, out += sizeof(block_q5_K)) {
        block_q5_K blk;
        uint8_t L[QK_K];
        quantize_k_affine(src, 31, -0.5f, 15, &blk.d, &blk.dmin, blk.scales, L);
        memset(blk.qh, 0, sizeof blk.qh);
        for (int j = 0; j < QK_K; j += 64) {
            for (int l = 0; l < 32; l++) {
                const int l1 = L[j + l], l2 = L[j + l + 32];
                /* fifth bits: element e -> qh byte e % 32, bit e / 32 */
                blk.qh[l] |= (uint8_t)(((l1 >> 4) << (j / 32)) | ((l2 >> 4) << (j / 32 + 1)));
                blk.qs[j / 2 + l] = (uint8_t)((l1 & 0x0f) | ((l2 & 0x0f) << 4));
            }
        }
        memcpy(out, &blk, sizeof blk);
    }
}

/* ---- Q6_K: x = d * sc * (q - 32), q 6 bits, int8 sc per 16 ---- */

void rs_dtype_q6_k_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK_K; b++, p += sizeof(block_q6_K), dst += QK_K) {
        block_q6_K blk;
        memcpy(&blk, p, sizeof blk);
        const float d = rs_fp16_to_f32(blk.d);
        for (int e = 0; e < QK_K; e++) {
            const int h = e / 128, r = e % 128, sub = e / 16;
            const int lo = (blk.ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0f;
            const int hi = (blk.qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
            dst[e] = d * (float)blk.scales[sub] * (float)((lo | (hi << 4)) - 32);
        }
    }
}

void rs_dtype_q6_k_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K, out += sizeof(block_q6_K)) {
        const float *x = src;
        int8_t L[QK_K];
        float scales[QK_K / 16];
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < QK_K / 16; ib++) {
            scales[ib] = rs_quant_search_sym(16, 32, x + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        block_q6_K blk;
        if (max_abs_scale < RS_GROUP_MAX_EPS) {
            memset(&blk, 0, sizeof blk);
            memcpy(out, &blk, sizeof blk);
            continue;
        }
        const float iscale = -128.0f / max_scale;
        blk.d = rs_f32_to_fp16(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ib++)
            blk.scales[ib] = (int8_t)rs_min_int(127, rs_nearest_int(iscale * scales[ib]));
        for (int j = 0; j < QK_K / 16; j++) {
            const float d = rs_fp16_to_f32(blk.d) * (float)blk.scales[j];
            if (d == 0.0f) continue;
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] =
                    (int8_t)(rs_clamp_int(rs_nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
        }
        for (int j = 0; j < QK_K; j += 128) {
            uint8_t *ql = blk.ql + j / 2, *qh = blk.qh + j / 4;
            for (int l = 0; l < 32; l++) {
                const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
                ql[l] = (uint8_t)((q1 & 0x0f) | ((q3 & 0x0f) << 4));
                ql[l + 32] = (uint8_t)((q2 & 0x0f) | ((q4 & 0x0f) << 4));
                qh[l] =
                    (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
        }
        memcpy(out, &blk, sizeof blk);
    }
}

/* ---- Q8_K: x = d * q with f32 d; bsums = sums of 16 consecutive q ---- */

void rs_dtype_q8_k_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK_K; b++, p += sizeof(block_q8_K), dst += QK_K) {
        block_q8_K blk;
        memcpy(&blk, p, sizeof blk);
        for (int j = 0; j < QK_K; j++) dst[j] = blk.d * (float)blk.qs[j];
    }
}

void rs_dtype_q8_k_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K, out += sizeof(block_q8_K)) {
        block_q8_K blk;
        memset(&blk, 0, sizeof blk);
        float amax = 0, max = 0;
        for (int j = 0; j < QK_K; j++) {
            if (fabsf(src[j]) > amax) {
                amax = fabsf(src[j]);
                max = src[j];
            }
        }
        if (amax != 0.0f) {
            /* -127 (not -128) keeps every q symmetric in [-127, 127] */
            const float iscale = -127.0f / max;
            for (int j = 0; j < QK_K; j++)
                blk.qs[j] = (int8_t)rs_clamp_int(rs_nearest_int(iscale * src[j]), -128, 127);
            for (int j = 0; j < QK_K / 16; j++) {
                int sum = 0;
                for (int ii = 0; ii < 16; ii++) sum += blk.qs[16 * j + ii];
                blk.bsums[j] = (int16_t)sum;
            }
            blk.d = 1 / iscale;
        }
        memcpy(out, &blk, sizeof blk);
    }
}

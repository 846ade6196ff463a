/* quant_iq4nl.c — IQ4_NL: 32 elements, x = d * v[q] with the fixed
 * non-linear code book v (RS_IQ4NL_VALUES, -127..113) and an fp16 d; and
 * IQ4_XS, the same code book over super-blocks of 256 whose eight 32-element
 * sub-blocks carry 6-bit scales of one fp16 d (4.25 bits a weight, not 4.5).
 *
 * The quantizer is the one llama-quantize runs for IQ4_NL without an
 * importance matrix (ggml's quantize_iq4_nl, 7 trial scales each way,
 * element weights x^2): start from d = max / 127, take the weighted
 * least-squares d for the resulting codes, try the 15 scales
 * (itry - 127) / max, keep the best fit, then re-pick every code for the
 * final d. (ggml's quantize_row_iq4_nl_ref is a cheaper variant with no
 * search; files in the wild come from the searching one.) */
#include "dtype/quant_internal.h"

static const int8_t k_values[16] = RS_IQ4NL_VALUES;

/* Index of the code-book value nearest to x; ties go to the larger value.
 * Binary search on midpoints, compared exactly as 2x >= v[i-1] + v[i]. */
static int best_index(float x) {
    const float x2 = x + x;
    int idx = 0;
    for (int step = 8; step > 0; step >>= 1) {
        const int j = idx + step;
        if (x2 >= (float)(k_values[j - 1] + k_values[j])) idx = j;
    }
    return idx;
}

void rs_dtype_iq4_nl_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK4_NL; b++, p += sizeof(block_iq4_nl), dst += QK4_NL) {
        block_iq4_nl blk;
        memcpy(&blk, p, sizeof blk);
        const float d = rs_fp16_to_f32(blk.d);
        for (int j = 0; j < QK4_NL / 2; j++) {
            dst[j] = d * (float)k_values[blk.qs[j] & 0x0f];
            dst[j + QK4_NL / 2] = d * (float)k_values[blk.qs[j] >> 4];
        }
    }
}

/* Weighted fit of the codes chosen with inverse scale id: sum w*v*x and sum w*v^2. */
static void fit_sums(const float *x, const float *w, float id, float *sumqx, float *sumq2) {
    float sqx = 0, sq2 = 0;
    for (int j = 0; j < QK4_NL; j++) {
        const float q = (float)k_values[best_index(id * x[j])];
        sqx += w[j] * q * x[j];
        sq2 += w[j] * q * q;
    }
    *sumqx = sqx;
    *sumq2 = sq2;
}

/* Best scale for one block (0 for an all-zero block). */
static float iq4nl_scale(const float *x) {
    float weight[QK4_NL];
    float amax = 0, max = 0;
    for (int j = 0; j < QK4_NL; j++) {
        weight[j] = x[j] * x[j];
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    if (amax < RS_GROUP_MAX_EPS) return 0.0f;
    float sumqx, sumq2;
    fit_sums(x, weight, 1 / (-max / (float)k_values[0]), &sumqx, &sumq2);
    float d = sumq2 > 0 ? sumqx / sumq2 : 0.0f;
    float best = d * sumqx;
    for (int itry = -7; itry <= 7; itry++) {
        /* negative inverse scales: the code book is asymmetric, so mapping the
         * extreme onto -127 can fit better than onto +113 */
        fit_sums(x, weight, (float)(itry + k_values[0]) / max, &sumqx, &sumq2);
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

void rs_dtype_iq4_nl_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t b = 0; b < n / QK4_NL; b++, src += QK4_NL, out += sizeof(block_iq4_nl)) {
        const float d = iq4nl_scale(src);
        /* codes are picked with the f32 d, which is then stored as fp16 */
        const float id = d != 0.0f ? 1 / d : 0.0f;
        block_iq4_nl blk;
        blk.d = rs_f32_to_fp16(d);
        for (int j = 0; j < QK4_NL / 2; j++) {
            const int q0 = best_index(id * src[j]);
            const int q1 = best_index(id * src[j + QK4_NL / 2]);
            blk.qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
        memcpy(out, &blk, sizeof blk);
    }
}

void rs_dtype_iq4_xs_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / QK_K; b++, p += sizeof(block_iq4_xs)) {
        block_iq4_xs blk;
        memcpy(&blk, p, sizeof blk);
        const float d = rs_fp16_to_f32(blk.d);
        for (int ib = 0; ib < QK_K / 32; ib++, dst += 32) {
            /* exact: an fp16 times a 6-bit integer fits a float's mantissa */
            const float dl = d * (float)(rs_iq4_xs_scale(&blk, ib) - 32);
            const uint8_t *qs = blk.qs + 16 * ib;
            for (int j = 0; j < 16; j++) {
                dst[j] = dl * (float)k_values[qs[j] & 0x0f];
                dst[j + 16] = dl * (float)k_values[qs[j] >> 4];
            }
        }
    }
}

/* ggml's quantize_iq4_xs without an importance matrix: each sub-block's scale
 * found as IQ4_NL's, the super-block's d = -(the scale of largest magnitude) / 32,
 * each sub-block's scale rounded to a multiple of it in [-32, 31], and every code
 * re-picked for that rounded scale (f32 products, before d is stored as fp16). */
void rs_dtype_iq4_xs_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K, out += sizeof(block_iq4_xs)) {
        float scales[QK_K / 32];
        float max_scale = 0, amax_scale = 0;
        for (int ib = 0; ib < QK_K / 32; ib++) {
            scales[ib] = iq4nl_scale(src + 32 * ib);
            if (fabsf(scales[ib]) > amax_scale) {
                amax_scale = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        const float d = -max_scale / 32; /* -0.0 for an all-zero block, as ggml stores it */
        const float id = d != 0.0f ? 1 / d : 0.0f;
        block_iq4_xs blk;
        memset(&blk, 0, sizeof blk);
        blk.d = rs_f32_to_fp16(d);
        for (int ib = 0; ib < QK_K / 32; ib++) {
            int l = rs_nearest_int(id * scales[ib]);
            l = l < -32 ? -32 : l > 31 ? 31 : l;
            const float dl = d * (float)l;
            const float idl = dl != 0.0f ? 1 / dl : 0.0f;
            const float *xb = src + 32 * ib;
            for (int j = 0; j < 16; j++) {
                const int q0 = best_index(idl * xb[j]);
                const int q1 = best_index(idl * xb[j + 16]);
                blk.qs[16 * ib + j] = (uint8_t)(q0 | (q1 << 4));
            }
            const int ls = l + 32;
            blk.scales_l[ib / 2] |= (uint8_t)((ls & 0x0f) << (4 * (ib % 2)));
            blk.scales_h |= (uint16_t)((ls >> 4) << (2 * ib));
        }
        memcpy(out, &blk, sizeof blk);
    }
}

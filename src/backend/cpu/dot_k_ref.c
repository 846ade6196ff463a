/* dot_k_ref.c — scalar reference dot products of the K-quants (256-element
 * super-blocks) against Q8_K activations.
 *
 * Each super-block is first decoded into its integer values q[256] and
 * per-sub-block integer scales, then
 *   dot = d_x * (d * sum_s sc_s * sum_{i in s} q_i x_i  -  dmin * sum_s m_s * sum_{i in s} x_i)
 * where the x sums of 16 come precomputed (Q8_K bsums). All sums are exact
 * integers; only the final per-super-block scaling is floating point. */
#include "backend/cpu/dot_ref.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/kquant_scales.h"
#include "dtype/blocks.h"
#include "dtype/fp16.h"

static inline float h2f(uint16_t h) {
    return rs_fp16_to_f32(h);
}

/* sum_s scale[s] * dot(q, x) over sub-blocks of `sub` elements. */
static int32_t scaled_isum(const int8_t q[QK_K], const int8_t x[QK_K], const int scale[], int sub) {
    int32_t total = 0;
    for (int s = 0; s < QK_K / sub; s++) {
        int32_t t = 0;
        for (int i = s * sub; i < (s + 1) * sub; i++) t += q[i] * x[i];
        total += scale[s] * t;
    }
    return total;
}

/* sum_s mins[s] * (sum of x over sub-block s), from the bsums of 16. */
static int32_t min_isum(const int16_t bsums[16], const int mins[], int sub) {
    int32_t total = 0;
    for (int g = 0; g < 16; g++) total += mins[g / (sub / 16)] * bsums[g];
    return total;
}

static float dot_q2_K(int64_t n, const void *w, const void *x) {
    const block_q2_K *a = w;
    const block_q8_K *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        int sc[16], mn[16];
        for (int e = 0; e < QK_K; e++) {
            int half = e / 128, j = (e % 128) / 32, l = e % 32;
            q[e] = (int8_t)((a[i].qs[32 * half + l] >> (2 * j)) & 3);
        }
        for (int k = 0; k < 16; k++) {
            sc[k] = a[i].scales[k] & 0x0f;
            mn[k] = a[i].scales[k] >> 4;
        }
        int32_t sumi = scaled_isum(q, b[i].qs, sc, 16);
        int32_t summ = min_isum(b[i].bsums, mn, 16);
        s += b[i].d * (h2f(a[i].d) * (float)sumi - h2f(a[i].dmin) * (float)summ);
    }
    return s;
}

static float dot_q3_K(int64_t n, const void *w, const void *x) {
    const block_q3_K *a = w;
    const block_q8_K *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K], sc8[16];
        int sc[16];
        for (int e = 0; e < QK_K; e++) {
            int half = e / 128, j = (e % 128) / 32, l = e % 32;
            int low = (a[i].qs[32 * half + l] >> (2 * j)) & 3;
            int high = (a[i].hmask[l] >> (4 * half + j)) & 1;
            q[e] = (int8_t)(low - (high ? 0 : 4));
        }
        rs_kq_unpack_q3k_scales(a[i].scales, sc8);
        for (int k = 0; k < 16; k++) sc[k] = sc8[k];
        int32_t sumi = scaled_isum(q, b[i].qs, sc, 16);
        s += b[i].d * h2f(a[i].d) * (float)sumi;
    }
    return s;
}

/* Shared by Q4_K and Q5_K: q already decoded, scales packed as in Q4_K. */
static float kq_q45(const int8_t q[QK_K], const uint8_t packed[12], uint16_t d, uint16_t dmin,
                    const block_q8_K *b) {
    uint8_t sc8[8], mn8[8];
    int sc[8], mn[8];
    rs_kq_unpack_q4k_scales(packed, sc8, mn8);
    for (int k = 0; k < 8; k++) {
        sc[k] = sc8[k];
        mn[k] = mn8[k];
    }
    int32_t sumi = scaled_isum(q, b->qs, sc, 32);
    int32_t summ = min_isum(b->bsums, mn, 32);
    return b->d * (h2f(d) * (float)sumi - h2f(dmin) * (float)summ);
}

static float dot_q4_K(int64_t n, const void *w, const void *x) {
    const block_q4_K *a = w;
    const block_q8_K *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        for (int e = 0; e < QK_K; e++) {
            uint8_t byte = a[i].qs[32 * (e / 64) + e % 32];
            q[e] = (int8_t)((e % 64) < 32 ? (byte & 0x0f) : (byte >> 4));
        }
        s += kq_q45(q, a[i].scales, a[i].d, a[i].dmin, &b[i]);
    }
    return s;
}

static float dot_q5_K(int64_t n, const void *w, const void *x) {
    const block_q5_K *a = w;
    const block_q8_K *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        for (int e = 0; e < QK_K; e++) {
            int j = e / 64, hi = (e % 64) >= 32, l = e % 32;
            uint8_t byte = a[i].qs[32 * j + l];
            int nib = hi ? (byte >> 4) : (byte & 0x0f);
            int bit = (a[i].qh[l] >> (2 * j + hi)) & 1;
            q[e] = (int8_t)(nib | bit << 4);
        }
        s += kq_q45(q, a[i].scales, a[i].d, a[i].dmin, &b[i]);
    }
    return s;
}

static float dot_q6_K(int64_t n, const void *w, const void *x) {
    const block_q6_K *a = w;
    const block_q8_K *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        int sc[16];
        for (int e = 0; e < QK_K; e++) {
            int half = e / 128, k = (e % 128) / 32, l = e % 32;
            uint8_t lo = a[i].ql[64 * half + 32 * (k & 1) + l];
            int nib = k < 2 ? (lo & 0x0f) : (lo >> 4);
            int two = (a[i].qh[32 * half + l] >> (2 * k)) & 3;
            q[e] = (int8_t)((nib | two << 4) - 32);
        }
        for (int k = 0; k < 16; k++) sc[k] = a[i].scales[k];
        int32_t sumi = scaled_isum(q, b[i].qs, sc, 16);
        s += b[i].d * h2f(a[i].d) * (float)sumi;
    }
    return s;
}

RS_CPU_REF_TILE(q2_K, dot_q2_K);
RS_CPU_REF_TILE(q3_K, dot_q3_K);
RS_CPU_REF_TILE(q4_K, dot_q4_K);
RS_CPU_REF_TILE(q5_K, dot_q5_K);
RS_CPU_REF_TILE(q6_K, dot_q6_K);

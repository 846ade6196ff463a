/* dot_x16_ref.c — scalar reference tiles for Q8_0 / Q4_0 / IQ4_NL, the K-quants
 * Q4_K / Q5_K / Q6_K and IQ4_XS in the packed x16 layout (packed.h) against
 * rs_block_q8_0p activations.
 *
 * For the 32-element types the arithmetic is exactly that of the GGUF-layout
 * references in dot_q_ref.c (exact int32 per block, then s += d_w * d_x * sum
 * in f32, blocks in order), so both layouts give bit-identical results at the
 * scalar level. The K-quants' GGUF kernels take Q8_K activations (one scale per
 * 256), these Q8_0's (one per 32): per sub-block j of Q4_K/Q5_K, s += (d sc_j
 * d_x) sum(q x) - (dmin m_j) (d_x sum(x)); per 16 elements of Q6_K, s += (d sc
 * d_x) sum((q - 32) x); per sub-block j of IQ4_XS, s += (d sc_j d_x) sum(value x);
 * in the order the AVX-512 kernels keep, so that they match bit for bit. */
#include <math.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "backend/cpu/packed.h"
#include "dtype/blocks.h"
#include "dtype/fp16.h"

typedef enum {
    X16_Q8_0,
    X16_Q4_0,
    X16_IQ4_NL,
    X16_Q4_K,
    X16_Q5_K,
    X16_Q6_K,
    X16_IQ4_XS,
} x16_type;

/* Weight value (signed) of element i of row r (0..15) in a block payload. */
static inline int x16_value(x16_type t, const uint8_t *pl, int r, int i) {
    static const int8_t iq4nl[16] = RS_IQ4NL_VALUES;
    if (t == X16_Q8_0) return (int)pl[64 * (i / 4) + 4 * r + i % 4] - 128;
    int k = (i % 16) / 4, m = i % 4;
    uint8_t v = pl[64 * k + 4 * r + m];
    int q = i < 16 ? (v & 0x0f) : (v >> 4);
    return t == X16_IQ4_NL ? iq4nl[q] : q - 8;
}

static float dot_x16(x16_type t, int64_t n, const uint8_t *group, int r, const rs_block_q8_0p *x) {
    const int64_t nb = n / 32;
    const size_t pay = t == X16_Q8_0 ? 512 : 256;
    const uint8_t *scales = group + (size_t)nb * pay;
    float s = 0;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *pl = group + (size_t)b * pay;
        int sum = 0;
        for (int i = 0; i < 32; i++) sum += x16_value(t, pl, r, i) * x[b].qs[i];
        uint16_t d;
        memcpy(&d, scales + 32 * (size_t)b + 2 * (size_t)r, 2);
        s += rs_fp16_to_f32(d) * x[b].d * (float)sum;
    }
    return s;
}

/* Row r of a packed Q4_K (pay 256) or Q5_K (pay 320: the fifth bits in the plane
 * after the nibbles) group against one token. */
static float dot_k45(size_t pay, int64_t n, const uint8_t *group, int r, const rs_block_q8_0p *x) {
    const int64_t nsb = n / 256;
    const uint8_t *rec0 = group + (size_t)nsb * 8 * pay;
    float s = 0;
    for (int64_t sb = 0; sb < nsb; sb++) {
        const uint8_t *rec = rec0 + (size_t)sb * RS_CPU_PACK_K4_SCALES;
        uint16_t d16, m16;
        memcpy(&d16, rec + 2 * r, 2);
        memcpy(&m16, rec + 32 + 2 * r, 2);
        const float d = rs_fp16_to_f32(d16), dmin = rs_fp16_to_f32(m16);
        for (int j = 0; j < 8; j++) {
            const int64_t b = 8 * sb + j;
            const uint8_t *pl = group + (size_t)b * pay + 4 * (size_t)r;
            int sum = 0;
            for (int i = 0; i < 32; i++) {
                const int w = (i % 16) / 4, m = i % 4, h = i / 16;
                int q = (pl[64 * w + m] >> (4 * h)) & 0x0f;
                if (pay == 320) q |= ((pl[256 + m] >> (2 * w + h)) & 1) << 4;
                sum += q * x[b].qs[i];
            }
            const float sc = d * (float)rec[64 + 16 * j + r],
                        mn = dmin * (float)rec[192 + 16 * j + r];
            const int32_t xsum = -x[b].off4 / 8; /* exact: off4 = -8 sum(qs) */
            s = fmaf((float)sum, sc * x[b].d, s);
            s = fmaf(-mn, x[b].d * (float)xsum, s);
        }
    }
    return s;
}

/* Row r of a packed Q6_K group against one token: per 16 elements, the exact
 * sum of (q - 32) x, then s += sum * (d sc d_x), in the AVX-512 kernel's order. */
static float dot_k6(int64_t n, const uint8_t *group, int r, const rs_block_q8_0p *x) {
    const int64_t nsb = n / 256;
    const uint8_t *rec0 = group + (size_t)nsb * 8 * 384;
    float s = 0;
    for (int64_t sb = 0; sb < nsb; sb++) {
        const uint8_t *rec = rec0 + (size_t)sb * RS_CPU_PACK_K6_SCALES;
        uint16_t d16;
        memcpy(&d16, rec + 2 * r, 2);
        const float d = rs_fp16_to_f32(d16);
        for (int j = 0; j < 8; j++) {
            const int64_t b = 8 * sb + j;
            const uint8_t *pl = group + (size_t)b * 384 + 4 * (size_t)r;
            int sum[2] = {0, 0};
            for (int i = 0; i < 32; i++) {
                const int w = (i % 16) / 4, m = i % 4, half = i / 16;
                const int lo = (pl[64 * w + m] >> (4 * half)) & 0x0f;
                const int hi = (pl[256 + 64 * (w & 1) + m] >> (4 * (w >> 1) + 2 * half)) & 3;
                sum[half] += ((lo | hi << 4) - 32) * x[b].qs[i];
            }
            for (int half = 0; half < 2; half++) {
                const float sc = d * (float)(int8_t)rec[32 + 16 * (2 * j + half) + r];
                s = fmaf((float)sum[half], sc * x[b].d, s);
            }
        }
    }
    return s;
}

/* Row r of a packed IQ4_XS group against one token: per sub-block the exact sum
 * of value * x (IQ4_NL's payload), then s += sum * (d sc_j d_x). */
static float dot_xs(int64_t n, const uint8_t *group, int r, const rs_block_q8_0p *x) {
    const int64_t nsb = n / 256;
    const uint8_t *rec0 = group + (size_t)nsb * 8 * 256;
    float s = 0;
    for (int64_t sb = 0; sb < nsb; sb++) {
        const uint8_t *rec = rec0 + (size_t)sb * RS_CPU_PACK_XS_SCALES;
        uint16_t d16;
        memcpy(&d16, rec + 2 * r, 2);
        const float d = rs_fp16_to_f32(d16);
        for (int j = 0; j < 8; j++) {
            const int64_t b = 8 * sb + j;
            const uint8_t *pl = group + (size_t)b * 256;
            int sum = 0;
            for (int i = 0; i < 32; i++) sum += x16_value(X16_IQ4_NL, pl, r, i) * x[b].qs[i];
            const float sc = d * (float)(int8_t)rec[32 + 16 * j + r];
            s = fmaf((float)sum, sc * x[b].d, s);
        }
    }
    return s;
}

static void tile_x16(x16_type t, int64_t n, const void *w, size_t w_stride, int nr, const void *x,
                     size_t x_stride, int nc, float *y, size_t y_stride) {
    for (int c = 0; c < nc; c++)
        for (int r = 0; r < nr; r++) {
            const uint8_t *g = (const uint8_t *)w + (size_t)(r / 16) * w_stride;
            const rs_block_q8_0p *xc =
                (const rs_block_q8_0p *)((const uint8_t *)x + (size_t)c * x_stride);
            y[(size_t)c * y_stride + (size_t)r] = t == X16_Q4_K     ? dot_k45(256, n, g, r % 16, xc)
                                                  : t == X16_Q5_K   ? dot_k45(320, n, g, r % 16, xc)
                                                  : t == X16_Q6_K   ? dot_k6(n, g, r % 16, xc)
                                                  : t == X16_IQ4_XS ? dot_xs(n, g, r % 16, xc)
                                                                    : dot_x16(t, n, g, r % 16, xc);
        }
}

/* The table entry rs_cpu_kernel_<name>_x16_ref for type T: tiles of 16 rows x 1 token. */
#define DEFINE_X16_REF(name, T)                                                                    \
    static void tile_##name##_x16(int64_t n, const void *w, size_t ws, int nr, const void *x,      \
                                  size_t xs, int nc, float *y, size_t ys) {                        \
        tile_x16(T, n, w, ws, nr, x, xs, nc, y, ys);                                               \
    }                                                                                              \
    const rs_cpu_kernel rs_cpu_kernel_##name##_x16_ref = {tile_##name##_x16, 16,  1, 16,           \
                                                          RS_SIMD_SCALAR,    NULL}

DEFINE_X16_REF(q8_0, X16_Q8_0);
DEFINE_X16_REF(q4_0, X16_Q4_0);
DEFINE_X16_REF(iq4_nl, X16_IQ4_NL);
DEFINE_X16_REF(q4_K, X16_Q4_K);
DEFINE_X16_REF(q5_K, X16_Q5_K);
DEFINE_X16_REF(q6_K, X16_Q6_K);
DEFINE_X16_REF(iq4_xs, X16_IQ4_XS);

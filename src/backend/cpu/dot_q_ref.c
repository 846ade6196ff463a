/* dot_q_ref.c — scalar reference dot products of the 32-element block types
 * (Q8_0, Q4_0, Q5_0, IQ4_NL against Q8_0 activations; Q4_1, Q5_1 against Q8_1).
 *
 * Each block's integer dot is exact; it is scaled by d_w * d_x in f32 and the
 * blocks are summed in f32. The offset types (x = d*q + m) add m_w * s_x, where
 * s_x = d_x * sum(q_x) comes precomputed with the Q8_1 block. */
#include "backend/cpu/dot_ref.h"
#include "backend/cpu/kernels.h"
#include "dtype/blocks.h"
#include "dtype/fp16.h"

static inline float h2f(uint16_t h) {
    return rs_fp16_to_f32(h);
}

/* 5-bit value j of a Q5 block: nibble | bit j of qh as the 5th bit. */
static inline int q5_val(const uint8_t qs[16], const uint8_t qh[4], int j) {
    uint32_t h =
        (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
    int nib = j < 16 ? (qs[j] & 0x0f) : (qs[j - 16] >> 4);
    return nib | (int)((h >> j) & 1) << 4;
}

static inline int q4_val(const uint8_t qs[16], int j) {
    return j < 16 ? (qs[j] & 0x0f) : (qs[j - 16] >> 4);
}

static float dot_q8_0(int64_t n, const void *w, const void *x) {
    const block_q8_0 *a = w, *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sum = 0;
        for (int j = 0; j < QK8_0; j++) sum += a[i].qs[j] * b[i].qs[j];
        s += h2f(a[i].d) * h2f(b[i].d) * (float)sum;
    }
    return s;
}

static float dot_q4_0(int64_t n, const void *w, const void *x) {
    const block_q4_0 *a = w;
    const block_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        int sum = 0;
        for (int j = 0; j < QK4_0; j++) sum += (q4_val(a[i].qs, j) - 8) * b[i].qs[j];
        s += h2f(a[i].d) * h2f(b[i].d) * (float)sum;
    }
    return s;
}

static float dot_q4_1(int64_t n, const void *w, const void *x) {
    const block_q4_1 *a = w;
    const block_q8_1 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        int sum = 0;
        for (int j = 0; j < QK4_1; j++) sum += q4_val(a[i].qs, j) * b[i].qs[j];
        s += h2f(a[i].d) * h2f(b[i].d) * (float)sum + h2f(a[i].m) * h2f(b[i].s);
    }
    return s;
}

static float dot_q5_0(int64_t n, const void *w, const void *x) {
    const block_q5_0 *a = w;
    const block_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        int sum = 0;
        for (int j = 0; j < QK5_0; j++) sum += (q5_val(a[i].qs, a[i].qh, j) - 16) * b[i].qs[j];
        s += h2f(a[i].d) * h2f(b[i].d) * (float)sum;
    }
    return s;
}

static float dot_q5_1(int64_t n, const void *w, const void *x) {
    const block_q5_1 *a = w;
    const block_q8_1 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        int sum = 0;
        for (int j = 0; j < QK5_1; j++) sum += q5_val(a[i].qs, a[i].qh, j) * b[i].qs[j];
        s += h2f(a[i].d) * h2f(b[i].d) * (float)sum + h2f(a[i].m) * h2f(b[i].s);
    }
    return s;
}

static float dot_iq4_nl(int64_t n, const void *w, const void *x) {
    static const int8_t values[16] = RS_IQ4NL_VALUES;
    const block_iq4_nl *a = w;
    const block_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK4_NL; i++) {
        int sum = 0;
        for (int j = 0; j < QK4_NL; j++) sum += values[q4_val(a[i].qs, j)] * b[i].qs[j];
        s += h2f(a[i].d) * h2f(b[i].d) * (float)sum;
    }
    return s;
}

RS_CPU_REF_TILE(q8_0, dot_q8_0);
RS_CPU_REF_TILE(q4_0, dot_q4_0);
RS_CPU_REF_TILE(q4_1, dot_q4_1);
RS_CPU_REF_TILE(q5_0, dot_q5_0);
RS_CPU_REF_TILE(q5_1, dot_q5_1);
RS_CPU_REF_TILE(iq4_nl, dot_iq4_nl);

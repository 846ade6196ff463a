/* quant_cases.h — test data shapes shared by the quantization tests
 * (test_quant_legacy.c, test_quant_k.c, test_quant_iq4nl.c): pseudo-random
 * rows in several distributions, error measures, and little-endian field reads. */
#ifndef RUSTY_QUANT_CASES_H
#define RUSTY_QUANT_CASES_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dtype/dtype.h"
#include "dtype/fp16.h"
#include "testutil.h"

typedef enum {
    QC_UNIFORM,  /* U[-1, 1) */
    QC_GAUSS,    /* N(0, 1) */
    QC_WEIGHTS,  /* N(0, 0.02^2), like trained weights */
    QC_ZERO,     /* every block all-zero */
    QC_CONST,    /* every element 0.37 */
    QC_NEGCONST, /* every element -1.25 */
    QC_OUTLIER,  /* U[-0.1, 0.1) with one +-10 per block */
    QC_NEGONLY,  /* -(U[0, 1) + 0.1) */
    QC_POSONLY,  /* U[0, 1) + 2 (large offset, small spread) */
    QC_TINY,     /* 1e-6 * U[-1, 1): d lands in fp16 subnormals or underflows */
    QC_COUNT
} qc_kind;

static const char *const qc_names[QC_COUNT] = {"uniform",  "gauss",   "weights", "zero",    "const",
                                               "negconst", "outlier", "negonly", "posonly", "tiny"};

static inline float qc_gauss(uint64_t *s) {
    float u1 = 0.5f * (tu_randf(s) + 1.0f), u2 = tu_randf(s);
    if (u1 < 1e-7f) u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(3.14159265f * u2);
}

/* Fills n values of the given kind; block is the block size (for outliers). */
static inline void qc_fill(qc_kind kind, float *x, int64_t n, int64_t block, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        switch (kind) {
        case QC_UNIFORM:
            x[i] = tu_randf(&s);
            break;
        case QC_GAUSS:
            x[i] = qc_gauss(&s);
            break;
        case QC_WEIGHTS:
            x[i] = 0.02f * qc_gauss(&s);
            break;
        case QC_ZERO:
            x[i] = 0.0f;
            break;
        case QC_CONST:
            x[i] = 0.37f;
            break;
        case QC_NEGCONST:
            x[i] = -1.25f;
            break;
        case QC_OUTLIER:
            x[i] = 0.1f * tu_randf(&s);
            break;
        case QC_NEGONLY:
            x[i] = -(0.5f * (tu_randf(&s) + 1.0f) + 0.1f);
            break;
        case QC_POSONLY:
            x[i] = 0.5f * (tu_randf(&s) + 1.0f) + 2.0f;
            break;
        case QC_TINY:
            x[i] = 1e-6f * tu_randf(&s);
            break;
        default:
            x[i] = 0.0f;
            break;
        }
    }
    if (kind == QC_OUTLIER)
        for (int64_t b = 0; b < n / block; b++) {
            int64_t at = b * block + (int64_t)((tu_randf(&s) + 1.0f) * 0.5f * (float)block) % block;
            x[at] = (b & 1) ? -10.0f : 10.0f;
        }
}

/* sqrt(sum (x - y)^2 / sum x^2) in float64; 0 when x is all zero and y == x. */
static inline double qc_rel_rms(const float *x, const float *y, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)x[i] - (double)y[i];
        num += d * d;
        den += (double)x[i] * (double)x[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return sqrt(num / den);
}

static inline float qc_fp16_at(const uint8_t *p) {
    uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
    return rs_fp16_to_f32(h);
}

/* Quantizes n values of x as type t into a fresh buffer and dequantizes into y. */
static inline uint8_t *qc_round_trip(rs_dtype t, const float *x, float *y, int64_t n) {
    const rs_dtype_traits *tr = rs_dtype_get(t);
    assert_non_null(tr);
    size_t bytes = 0;
    assert_true(rs_dtype_row_size(t, n, &bytes));
    uint8_t *q = malloc(bytes);
    assert_non_null(q);
    tr->from_f32(x, q, n);
    tr->to_f32(q, y, n);
    return q;
}

#endif

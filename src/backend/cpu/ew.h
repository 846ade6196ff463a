/* ew.h — the CPU backend's row-wise element ops (SwiGLU, RMS norm), per SIMD level.
 *
 * swiglu: out[i] = g[i] / (1 + exp(-g[i])) * u[i]. The SIMD versions use a
 * polynomial exp (relative error ~2e-7, inputs clamped to where expf is finite
 * and non-zero) and an exact division; out may alias g or u.
 * rmsnorm: when y is non-NULL, x += y first (in place); then
 * out[i] = x[i] * scale * w[i] with scale = 1 / sqrt(mean(x^2) + eps), the sum
 * of squares accumulated in double, the products in f32 in that order.
 * to_f16: fp16 bits of n floats, rounded to nearest even (rs_f32_to_fp16's
 * results bit for bit; the SIMD versions use F16C). */
#ifndef RUSTY_BACKEND_CPU_EW_H
#define RUSTY_BACKEND_CPU_EW_H

#include <stdint.h>

#include "core/cpu.h"

typedef void (*rs_cpu_swiglu_fn)(const float *g, const float *u, float *out, int64_t n);
typedef void (*rs_cpu_rmsnorm_fn)(float *x, const float *y, const float *w, float eps, int dim,
                                  float *out);

typedef void (*rs_cpu_to_f16_fn)(const float *x, uint16_t *out, int n);

typedef struct rs_cpu_ew {
    rs_cpu_swiglu_fn swiglu;
    rs_cpu_rmsnorm_fn rmsnorm;
    rs_cpu_to_f16_fn to_f16;
} rs_cpu_ew;

/* The functions for a level (lower levels' where a level has none). */
rs_cpu_ew rs_cpu_ew_get(rs_simd_level level);

void rs_cpu_swiglu_ref(const float *g, const float *u, float *out, int64_t n);
void rs_cpu_swiglu_avx2(const float *g, const float *u, float *out, int64_t n);
void rs_cpu_swiglu_avx512(const float *g, const float *u, float *out, int64_t n);
void rs_cpu_to_f16_ref(const float *x, uint16_t *out, int n);
void rs_cpu_to_f16_avx2(const float *x, uint16_t *out, int n);
void rs_cpu_to_f16_avx512(const float *x, uint16_t *out, int n);
void rs_cpu_rmsnorm_ref(float *x, const float *y, const float *w, float eps, int dim, float *out);
void rs_cpu_rmsnorm_avx2(float *x, const float *y, const float *w, float eps, int dim, float *out);
void rs_cpu_rmsnorm_avx512(float *x, const float *y, const float *w, float eps, int dim,
                           float *out);

#endif

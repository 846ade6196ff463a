/* ew_ref.c — portable row-wise element ops and the per-level table (see ew.h). */
#include "backend/cpu/ew.h"

#include <math.h>

#include "dtype/fp16.h"

void rs_cpu_swiglu_ref(const float *g, const float *u, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void rs_cpu_rmsnorm_ref(float *x, const float *y, const float *w, float eps, int dim, float *out) {
    if (y)
        for (int i = 0; i < dim; i++) x[i] += y[i];
    double ss = 0;
    for (int i = 0; i < dim; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / dim + eps));
    for (int i = 0; i < dim; i++) out[i] = x[i] * scale * w[i];
}

void rs_cpu_to_f16_ref(const float *x, uint16_t *out, int n) {
    for (int i = 0; i < n; i++) out[i] = rs_f32_to_fp16(x[i]);
}

rs_cpu_ew rs_cpu_ew_get(rs_simd_level level) {
    if (level >= RS_SIMD_AVX512)
        return (rs_cpu_ew){rs_cpu_swiglu_avx512, rs_cpu_rmsnorm_avx512, rs_cpu_to_f16_avx512};
    if (level == RS_SIMD_AVX2)
        return (rs_cpu_ew){rs_cpu_swiglu_avx2, rs_cpu_rmsnorm_avx2, rs_cpu_to_f16_avx2};
    return (rs_cpu_ew){rs_cpu_swiglu_ref, rs_cpu_rmsnorm_ref, rs_cpu_to_f16_ref};
}

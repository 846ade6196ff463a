/* dot_float_ref.c — scalar reference dot products for F32, F16 and BF16 weights
 * against f32 activations (weights converted on the fly, f32 accumulation). */
#include "backend/cpu/dot_ref.h"
#include "backend/cpu/kernels.h"
#include "dtype/fp16.h"

static float dot_f32(int64_t n, const void *w, const void *x) {
    const float *a = w, *b = x;
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static float dot_f16(int64_t n, const void *w, const void *x) {
    const uint16_t *a = w;
    const float *b = x;
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += rs_fp16_to_f32(a[i]) * b[i];
    return s;
}

static float dot_bf16(int64_t n, const void *w, const void *x) {
    const uint16_t *a = w;
    const float *b = x;
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += rs_bf16_to_f32(a[i]) * b[i];
    return s;
}

RS_CPU_REF_TILE(f32, dot_f32);
RS_CPU_REF_TILE(f16, dot_f16);
RS_CPU_REF_TILE(bf16, dot_bf16);

/* convert_plain.c — element-wise types (F32, F16, BF16, F64, integers, bool)
 * to and from f32.
 *
 * Every element is loaded with memcpy because safetensors data may start at
 * any byte offset; compilers turn these into plain loads. Conversions to f32
 * round to nearest (integers beyond 2^24 and doubles lose precision, as any
 * f32 consumer must accept); f32 -> F16/BF16 rounds to nearest even. */
#include "dtype/quant_internal.h"

void rs_dtype_f32_to_f32(const void *src, float *dst, int64_t n) {
    if (n > 0) memcpy(dst, src, (size_t)n * sizeof(float));
}

void rs_dtype_f32_from_f32(const float *src, void *dst, int64_t n) {
    if (n > 0) memcpy(dst, src, (size_t)n * sizeof(float));
}

void rs_dtype_f16_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, sizeof h);
        dst[i] = rs_fp16_to_f32(h);
    }
}

void rs_dtype_f16_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = rs_f32_to_fp16(src[i]);
        memcpy(p + 2 * i, &h, sizeof h);
    }
}

void rs_dtype_bf16_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, sizeof h);
        dst[i] = rs_bf16_to_f32(h);
    }
}

void rs_dtype_bf16_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = rs_f32_to_bf16(src[i]);
        memcpy(p + 2 * i, &h, sizeof h);
    }
}

void rs_dtype_f64_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        double v;
        memcpy(&v, p + 8 * i, sizeof v);
        dst[i] = (float)v; /* IEEE: rounds to nearest, overflows to +-inf */
    }
}

void rs_dtype_f64_from_f32(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        double v = src[i];
        memcpy(p + 8 * i, &v, sizeof v);
    }
}

void rs_dtype_i8_to_f32(const void *src, float *dst, int64_t n) {
    const int8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = (float)p[i];
}

void rs_dtype_i16_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        int16_t v;
        memcpy(&v, p + 2 * i, sizeof v);
        dst[i] = (float)v;
    }
}

void rs_dtype_i32_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        int32_t v;
        memcpy(&v, p + 4 * i, sizeof v);
        dst[i] = (float)v;
    }
}

void rs_dtype_i64_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        int64_t v;
        memcpy(&v, p + 8 * i, sizeof v);
        dst[i] = (float)v;
    }
}

void rs_dtype_u8_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = (float)p[i];
}

/* safetensors BOOL is one byte per element; any non-zero byte counts as true. */
void rs_dtype_bool_to_f32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = p[i] ? 1.0f : 0.0f;
}

/* quant_internal.h — private helpers and per-type converters behind the dtype table.
 *
 * Only the files in src/dtype include this. The converters are reached by callers
 * through rs_dtype_get(id)->to_f32 / ->from_f32; they are declared here so the
 * table in dtype.c can point at them. All of them take byte pointers with no
 * alignment promise (safetensors data can start at any offset) and read or
 * write every block through memcpy. */
#ifndef RUSTY_QUANT_INTERNAL_H
#define RUSTY_QUANT_INTERNAL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "dtype/blocks.h"
#include "dtype/fp16.h"

/* GGUF and safetensors store little-endian; the block structs are read in place. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rusty's dtype code assumes a little-endian host"
#endif

/* The quantizers must round every f32 operation separately to give ggml's
 * bytes: no fused multiply-add contraction of expressions like x * id + 8.5f.
 * GCC keeps them apart in ISO C mode (-std=c11); clang needs to be told. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* Below this magnitude a group counts as all-zero (ggml's GROUP_MAX_EPS). */
#define RS_GROUP_MAX_EPS 1e-15f

/* Round to nearest with ties to even, as ggml's nearest_int does: adding
 * 1.5 * 2^23 leaves the rounded integer in the low mantissa bits. Exact for
 * |x| < 2^22; outside that range (and for NaN) we saturate instead of
 * returning garbage, so hostile inputs stay defined behaviour. */
static inline int rs_nearest_int(float x) {
    if (!(x > -4194303.0f && x < 4194303.0f)) return x > 0 ? 4194303 : (x < 0 ? -4194303 : 0);
    float v = x + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* C's float -> int conversion (truncation toward zero), saturating instead of
 * undefined behaviour for NaN and huge values. Used where ggml writes
 * (int8_t)(x + 8.5f) and the like. */
static inline int rs_trunc_int(float x) {
    if (!(x > -1073741824.0f && x < 1073741824.0f))
        return x > 0 ? 1073741824 : (x < 0 ? -1073741824 : 0);
    return (int)x;
}

/* roundf (ties away from zero) converted to int, saturating like rs_trunc_int. */
static inline int rs_round_int(float x) {
    return rs_trunc_int(roundf(x));
}

static inline int rs_min_int(int a, int b) {
    return a < b ? a : b;
}
static inline int rs_max_int(int a, int b) {
    return a > b ? a : b;
}
static inline int rs_clamp_int(int v, int lo, int hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

/* ---- plain types (convert_plain.c) ---- */
void rs_dtype_f32_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_f32_from_f32(const float *src, void *dst, int64_t n);
void rs_dtype_f16_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_f16_from_f32(const float *src, void *dst, int64_t n);
void rs_dtype_bf16_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_bf16_from_f32(const float *src, void *dst, int64_t n);
void rs_dtype_f64_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_f64_from_f32(const float *src, void *dst, int64_t n);
void rs_dtype_i8_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_i16_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_i32_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_i64_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_u8_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_bool_to_f32(const void *src, float *dst, int64_t n);

/* ---- 32-element legacy blocks (quant_legacy.c) ---- */
void rs_dtype_q4_0_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_q4_0_from_f32(const float *src, void *dst, int64_t n);
void rs_dtype_q4_1_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_q4_1_from_f32(const float *src, void *dst, int64_t n);
void rs_dtype_q5_0_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_q5_0_from_f32(const float *src, void *dst, int64_t n);
void rs_dtype_q5_1_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_q5_1_from_f32(const float *src, void *dst, int64_t n);
void rs_dtype_q8_0_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_q8_0_from_f32(const float *src, void *dst, int64_t n);
void rs_dtype_q8_1_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_q8_1_from_f32(const float *src, void *dst, int64_t n);

/* ---- 256-element K-quant super-blocks (quant_k.c, quant_k_search.c) ---- */
void rs_dtype_q2_k_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_q2_k_from_f32(const float *src, void *dst, int64_t n);
void rs_dtype_q3_k_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_q3_k_from_f32(const float *src, void *dst, int64_t n);
void rs_dtype_q4_k_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_q4_k_from_f32(const float *src, void *dst, int64_t n);
void rs_dtype_q5_k_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_q5_k_from_f32(const float *src, void *dst, int64_t n);
void rs_dtype_q6_k_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_q6_k_from_f32(const float *src, void *dst, int64_t n);
void rs_dtype_q8_k_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_q8_k_from_f32(const float *src, void *dst, int64_t n);

/* Scale searches of the K-quant reference quantizers (quant_k_search.c).
 * Each fills L with levels for the n values of x and returns the scale; the
 * algorithms are ggml's make_qx_quants / make_q3_quants / make_qkx2_quants. */
/* Symmetric: L in [0, 2*nmax), x ~ scale * (L - nmax); weights x^2 (ggml rmse_type 1). */
float rs_quant_search_sym(int n, int nmax, const float *x, int8_t *L);
/* Symmetric with ggml's iterative per-element refinement (make_q3_quants, do_rmse). */
float rs_quant_search_sym_refine(int n, int nmax, const float *x, int8_t *L);
/* Affine: x ~ scale * L - min with L in [0, nmax]; *min_out receives min (>= 0).
 * Tries nstep+1 scales (rmin + rdelta*is + nmax)/(max - min); use_mad selects
 * absolute instead of squared error. Laux: n bytes of scratch. */
float rs_quant_search_affine(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                             float *min_out, uint8_t *Laux, float rmin, float rdelta, int nstep,
                             bool use_mad);

/* ---- non-linear 4-bit (quant_iq4nl.c) ---- */
void rs_dtype_iq4_nl_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_iq4_nl_from_f32(const float *src, void *dst, int64_t n);
void rs_dtype_iq4_xs_to_f32(const void *src, float *dst, int64_t n);
void rs_dtype_iq4_xs_from_f32(const float *src, void *dst, int64_t n);

#endif

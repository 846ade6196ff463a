/* kernels.h — the CPU dot-product kernel table (internal to the CPU backend).
 *
 * A weight type's matrix product runs in two steps: the f32 activations are
 * converted to the type's companion format (rs_cpu_act: f32 itself for the
 * float types, Q8_0 / Q8_1 / Q8_K for the quantized ones), then a tile kernel
 * computes a small block of outputs directly from the weight blocks (in place
 * in the mmap) and the companion rows. Kernels exist per (weight type, SIMD
 * level); a level without its own kernel for a type falls back to the next
 * lower one, down to the portable scalar reference (*_ref.c). */
#ifndef RUSTY_BACKEND_CPU_KERNELS_H
#define RUSTY_BACKEND_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "core/cpu.h"
#include "dtype/dtype.h"

/* Companion formats of the activations. */
typedef enum rs_cpu_act {
    RS_CPU_ACT_F32 = 0, /* plain f32 (float weights) */
    RS_CPU_ACT_Q8_0,    /* block_q8_0 */
    RS_CPU_ACT_Q8_1,    /* block_q8_1 (s = d * sum q) */
    RS_CPU_ACT_Q8_K,    /* block_q8_K (f32 d, bsums) */
    RS_CPU_ACT_Q8_0P,   /* rs_block_q8_0p (packed-layout kernels) */
    RS_CPU_ACT_COUNT,
} rs_cpu_act;

/* The activations of the packed (x16, packed.h) kernels: Q8_0's values, with
 * the scale as f32 (the same fp16-rounded value Q8_0 stores) and the offset
 * corrections of the unsigned packed weights precomputed, so that a kernel
 * can broadcast each straight from memory. */
typedef struct {
    int8_t qs[32];
    float d;
    int32_t off4;  /* -8 * sum(qs): packed Q4_0 weights are q + 8 */
    int32_t off8;  /* -128 * sum(qs): packed Q8_0 (IQ4_NL) weights are q (value) + 128 */
    int32_t sum16; /* sum(qs[0..15]): packed Q6_K scales each half of the block apart */
} rs_block_q8_0p;

static inline int32_t rs_q8_sum16(const int8_t *qs) {
    int32_t s = 0;
    for (int i = 0; i < 16; i++) s += qs[i];
    return s;
}

/* Converts n f32 values (n a multiple of the format's block size) to the format. */
typedef void (*rs_cpu_quant_fn)(const float *x, void *dst, int64_t n);

/* Computes the nr x nc tile y[c * y_stride + r] = dot(weight row r, activation
 * row c) for r < nr, c < nc, over n elements. Weight row r starts at
 * w + r * w_stride bytes, activation row c (companion format) at x + c * x_stride
 * bytes. 1 <= nc <= the kernel's nc, and 1 <= nr <= its mr (mr1 when nc == 1). */
typedef void (*rs_cpu_tile_fn)(int64_t n, const void *w, size_t w_stride, int nr, const void *x,
                               size_t x_stride, int nc, float *y, size_t y_stride);

typedef struct rs_cpu_kernel {
    rs_cpu_tile_fn tile;
    int mr;              /* largest tile height (weight rows) when nc > 1 */
    int nc;              /* largest tile width (tokens) */
    int mr1;             /* largest tile height for a single token (decode) */
    rs_simd_level level; /* level the kernel was written for */
    /* Optional decode tile (nc = 1) without software prefetches, for when the
     * hardware prefetchers keep up alone (many threads, see matmul.h). */
    rs_cpu_tile_fn tile1_hw;
} rs_cpu_kernel;

/* Block geometry and companion format of a weight type; false when the type
 * has no kernel. */
bool rs_cpu_weight_info(rs_dtype wtype, int64_t *block, size_t *block_bytes, rs_cpu_act *act);
/* Block size (elements) and bytes per block of a companion format. */
int64_t rs_cpu_act_block(rs_cpu_act act);
size_t rs_cpu_act_block_bytes(rs_cpu_act act);
/* Best kernel at or below `level`; NULL when the weight type is unsupported. */
const rs_cpu_kernel *rs_cpu_kernel_get(rs_dtype wtype, rs_simd_level level);
/* Kernel for weights in the packed x16 layout (packed.h): the tile's w points
 * at the group holding its first row, w_stride is the group size in bytes, and
 * mr / mr1 are multiples of 16; activations are RS_CPU_ACT_Q8_0P. NULL when the
 * type has no packed layout. `native` (may be NULL) tells whether the kernel
 * was written for this level (else it is a slower fallback). */
const rs_cpu_kernel *rs_cpu_packed_kernel_get(rs_dtype wtype, rs_simd_level level, bool *native);
/* Best activation quantizer at or below `level`; NULL for RS_CPU_ACT_F32. */
rs_cpu_quant_fn rs_cpu_quant_get(rs_cpu_act act, rs_simd_level level);

/* ---- the kernels, per level (scalar: *_ref.c, else *_<level>.c) ----------- */
/* Each kernel file defines its table entries, so a tile's geometry lives next
 * to the code that depends on it. */
#define RS_CPU_KERNEL_DECL_ALL(type)                                                               \
    extern const rs_cpu_kernel rs_cpu_kernel_##type##_ref;                                         \
    extern const rs_cpu_kernel rs_cpu_kernel_##type##_avx2;                                        \
    extern const rs_cpu_kernel rs_cpu_kernel_##type##_avx512

RS_CPU_KERNEL_DECL_ALL(f32);
RS_CPU_KERNEL_DECL_ALL(f16);
RS_CPU_KERNEL_DECL_ALL(bf16);
RS_CPU_KERNEL_DECL_ALL(q8_0);
RS_CPU_KERNEL_DECL_ALL(q4_0);
RS_CPU_KERNEL_DECL_ALL(q4_1);
RS_CPU_KERNEL_DECL_ALL(q5_0);
RS_CPU_KERNEL_DECL_ALL(q5_1);
RS_CPU_KERNEL_DECL_ALL(iq4_nl);
RS_CPU_KERNEL_DECL_ALL(q2_K);
RS_CPU_KERNEL_DECL_ALL(q3_K);
RS_CPU_KERNEL_DECL_ALL(q4_K);
RS_CPU_KERNEL_DECL_ALL(q5_K);
RS_CPU_KERNEL_DECL_ALL(q6_K);
RS_CPU_KERNEL_DECL_ALL(iq4_xs);
/* Decode tile height of the AVX-512 packed kernels, which the AMX entries share. */
enum { RS_CPU_X16_MR1 = 32 };
extern const rs_cpu_kernel rs_cpu_kernel_q8_0_x16_ref, rs_cpu_kernel_q4_0_x16_ref,
    rs_cpu_kernel_iq4_nl_x16_ref, rs_cpu_kernel_q4_K_x16_ref, rs_cpu_kernel_q5_K_x16_ref,
    rs_cpu_kernel_q6_K_x16_ref, rs_cpu_kernel_iq4_xs_x16_ref;
extern const rs_cpu_kernel rs_cpu_kernel_q8_0_x16_avx512, rs_cpu_kernel_q4_0_x16_avx512,
    rs_cpu_kernel_iq4_nl_x16_avx512, rs_cpu_kernel_q4_K_x16_avx512, rs_cpu_kernel_q5_K_x16_avx512,
    rs_cpu_kernel_q6_K_x16_avx512, rs_cpu_kernel_iq4_xs_x16_avx512;
extern const rs_cpu_kernel rs_cpu_kernel_q8_0_x16_amx, rs_cpu_kernel_q4_0_x16_amx,
    rs_cpu_kernel_iq4_nl_x16_amx, rs_cpu_kernel_q4_K_x16_amx;

/* Fully unrolls a loop over tile rows / tokens / registers, so that tile
 * arrays are indexed by constants and live in registers. */
#define RS_UNROLL _Pragma("GCC unroll 16")

/* Decode tiles stream MR rows at once, each only a few KiB long: too short for
 * the hardware prefetchers to lock on. So the kernels prefetch the next MR
 * rows (contiguous with the current ones) at the pace they consume their own:
 * `bytes` per step from p; returns the next position. */
static inline const uint8_t *rs_cpu_prefetch(const uint8_t *p, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, 0, 3);
    return p + bytes;
}

/* Defines the table entry `rs_cpu_kernel_<name>` for a tile function whose
 * body is `tile_impl(T, MR, NC, ...)` specialised at compile time: one
 * instance for decode (MR1 x 1) and one for the full MR x NC tile (edge tiles
 * repeat their last row / token). */
#define RS_CPU_DEFINE_KERNEL(name, impl, T, MR_, NC_, MR1_, LEVEL)                                 \
    static void tile_##name(int64_t n, const void *w, size_t ws, int nr, const void *x, size_t xs, \
                            int nc, float *y, size_t ys) {                                         \
        if (nc == 1)                                                                               \
            impl(T, MR1_, 1, n, w, ws, nr, x, xs, 1, y, ys);                                       \
        else                                                                                       \
            impl(T, MR_, NC_, n, w, ws, nr, x, xs, nc, y, ys);                                     \
    }                                                                                              \
    const rs_cpu_kernel rs_cpu_kernel_##name = {tile_##name, MR_, NC_, MR1_, LEVEL, NULL}

void rs_cpu_quant_q8_0_ref(const float *x, void *dst, int64_t n);
void rs_cpu_quant_q8_1_ref(const float *x, void *dst, int64_t n);
void rs_cpu_quant_q8_K_ref(const float *x, void *dst, int64_t n);
void rs_cpu_quant_q8_0_avx2(const float *x, void *dst, int64_t n);
void rs_cpu_quant_q8_1_avx2(const float *x, void *dst, int64_t n);
void rs_cpu_quant_q8_K_avx2(const float *x, void *dst, int64_t n);
void rs_cpu_quant_q8_0_avx512(const float *x, void *dst, int64_t n);
void rs_cpu_quant_q8_1_avx512(const float *x, void *dst, int64_t n);
void rs_cpu_quant_q8_K_avx512(const float *x, void *dst, int64_t n);
void rs_cpu_quant_q8_0p_ref(const float *x, void *dst, int64_t n);
void rs_cpu_quant_q8_0p_avx2(const float *x, void *dst, int64_t n);
void rs_cpu_quant_q8_0p_avx512(const float *x, void *dst, int64_t n);

#endif

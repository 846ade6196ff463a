/* matmul.h — quantized matrix products on the CPU: Y[t][o] = sum_i W[o][i] * X[t][i].
 *
 * W is a weight matrix of n_out rows of n_in elements in its GGUF layout (rows
 * packed, ne0 = n_in), used in place (e.g. straight from the mmap); X holds
 * n_tok f32 activation rows, Y receives n_tok f32 output rows. The activations
 * are first converted to the weight type's companion format (Q8_0, Q8_1 or
 * Q8_K; float weights use X as is) in caller-provided scratch memory, then
 * all threads of the pool compute tiles of Y straight from the weight blocks:
 * n_tok == 1 (decode) streams the rows of W split in chunks across threads;
 * n_tok > 1 uses register tiles of several rows x several tokens so that each
 * weight block loaded is reused across tokens.
 *
 * rs_cpu_matmul_multi runs several products that share the same input (the
 * q/k/v projections, gate/up) in one dispatch, quantizing X only once.
 *
 * Weight types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K,
 * Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS; Q4_0, IQ4_NL, Q8_0, Q4_K, Q5_K, Q6_K and IQ4_XS
 * also in the packed x16 layout (packed.h), which the backend makes at load
 * where a native kernel exists (rs_cpu_matmul_pack_useful). Results are
 * deterministic for a given SIMD level: they do not depend on the thread count
 * or on how the work is split. */
#ifndef RUSTY_BACKEND_CPU_MATMUL_H
#define RUSTY_BACKEND_CPU_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/cpu/threadpool.h"
#include "core/cpu.h"
#include "core/status.h"
#include "dtype/dtype.h"

enum { RS_CPU_MATMUL_MAX_W = 8 }; /* most weights in one rs_cpu_matmul_multi call */

/* The shared input of a product. */
typedef struct rs_cpu_matmul_in {
    const float *x;      /* n_tok rows, row t at x + t * x_stride */
    int64_t x_stride;    /* floats between rows, >= n_in */
    int64_t n_in;        /* elements per row; a multiple of the weights' block size */
    int64_t n_tok;       /* rows of X and Y (>= 1); 1 = decode */
    rs_simd_level level; /* kernels to use: rs_cpu_simd_level() or lower */
    void *scratch;       /* for the quantized activations (any alignment) */
    size_t scratch_size; /* >= rs_cpu_matmul_scratch_size(...) */
    /* Decode (n_tok = 1): leave weight streaming to the hardware prefetchers
     * where a kernel offers that (the packed types). Pays with many threads,
     * each of which needs only a few GB/s; with few, software prefetch wins. */
    bool hw_prefetch;
} rs_cpu_matmul_in;

/* How a weight matrix is laid out in memory. */
typedef enum rs_cpu_layout {
    RS_CPU_LAYOUT_GGUF = 0, /* n_out rows of n_in elements, GGUF blocks, rows packed */
    RS_CPU_LAYOUT_X16 = 1,  /* rows interleaved 16 at a time (rs_cpu_pack_supports, packed.h) */
} rs_cpu_layout;

/* One weight matrix and where its output goes. */
// NOLINTNEXTLINE(clang-analyzer-optin.performance.Padding): layout last keeps positional inits
typedef struct rs_cpu_matmul_w {
    rs_dtype type;        /* weight type */
    const void *w;        /* the matrix, in `layout` */
    int64_t n_out;        /* rows of W = columns of Y (>= 1) */
    float *y;             /* n_tok rows, row t at y + t * y_stride; every element written */
    int64_t y_stride;     /* floats between rows, >= n_out */
    rs_cpu_layout layout; /* 0 (GGUF) unless the weights were packed */
} rs_cpu_matmul_w;

/* True when the CPU backend has a kernel for this weight type. */
bool rs_cpu_matmul_supports(rs_dtype type);

/* True when packing weights of this type into the x16 layout pays at this
 * SIMD level (a kernel for the packed layout exists at the level itself). */
bool rs_cpu_matmul_pack_useful(rs_dtype type, rs_simd_level level);

/* Scratch bytes rs_cpu_matmul_multi needs for these weights and input shape
 * (0 for float weights). SIZE_MAX if the size overflows. */
size_t rs_cpu_matmul_scratch_size(const rs_cpu_matmul_w *ws, int n_w, int64_t n_in, int64_t n_tok);

/* Y = X W^T for each of the n_w (1..RS_CPU_MATMUL_MAX_W) weights, all sharing
 * the input; one dispatch on tp (NULL: run on the caller; products under
 * 256 KiB of weight traffic also run on the caller, where waking the pool
 * would cost more than it saves). Fails with
 * RS_ERR_UNSUPPORTED for a weight type without a kernel and RS_ERR_ARG for bad
 * shapes (n_in not a multiple of the block size, strides, scratch too small). */
rs_status rs_cpu_matmul_multi(rs_threadpool *tp, const rs_cpu_matmul_in *in,
                              const rs_cpu_matmul_w *ws, int n_w, rs_error *err);

/* The single-weight case of rs_cpu_matmul_multi. */
rs_status rs_cpu_matmul(rs_threadpool *tp, const rs_cpu_matmul_in *in, const rs_cpu_matmul_w *w,
                        rs_error *err);

#endif

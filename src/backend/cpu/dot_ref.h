/* dot_ref.h — builds a scalar tile kernel from a one-row dot product (internal). */
#ifndef RUSTY_BACKEND_CPU_DOT_REF_H
#define RUSTY_BACKEND_CPU_DOT_REF_H

#include <stddef.h>
#include <stdint.h>

#include "backend/cpu/kernels.h"

/* Defines the scalar table entry rs_cpu_kernel_<name>_ref: a 1 x 1 tile that
 * applies `dot(n, wrow, xrow)`. */
#define RS_CPU_REF_TILE(name, dot)                                                                 \
    static void tile_##name(int64_t n, const void *w, size_t w_stride, int nr, const void *x,      \
                            size_t x_stride, int nc, float *y, size_t y_stride) {                  \
        for (int c = 0; c < nc; c++)                                                               \
            for (int r = 0; r < nr; r++)                                                           \
                y[(size_t)c * y_stride + (size_t)r] =                                              \
                    dot(n, (const uint8_t *)w + (size_t)r * w_stride,                              \
                        (const uint8_t *)x + (size_t)c * x_stride);                                \
    }                                                                                              \
    const rs_cpu_kernel rs_cpu_kernel_##name##_ref = {tile_##name, 1, 1, 1, RS_SIMD_SCALAR, NULL}

#endif

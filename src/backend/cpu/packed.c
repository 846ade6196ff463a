/* packed.c — packing GGUF Q4_0 / Q8_0 rows into the x16 layout and back (see packed.h). */
#include "backend/cpu/packed.h"

#include <string.h>

#include "dtype/blocks.h"

enum { GROUP_ALIGN = 64, SCALE_BYTES = 2 * RS_CPU_PACK_ROWS };

bool rs_cpu_pack_supports(rs_dtype type) {
    return type == RS_DTYPE_Q4_0 || type == RS_DTYPE_Q8_0;
}

size_t rs_cpu_pack_payload_bytes(rs_dtype type) {
    return type == RS_DTYPE_Q8_0 ? 512 : type == RS_DTYPE_Q4_0 ? 256 : 0;
}

size_t rs_cpu_pack_group_bytes(rs_dtype type, int64_t n_in) {
    size_t per_block = rs_cpu_pack_payload_bytes(type) + SCALE_BYTES;
    if (per_block == SCALE_BYTES || n_in < 32 || n_in % 32 != 0) return 0;
    uint64_t nb = (uint64_t)n_in / 32;
    if (nb > (SIZE_MAX - GROUP_ALIGN) / per_block) return 0;
    return ((size_t)nb * per_block + GROUP_ALIGN - 1) / GROUP_ALIGN * GROUP_ALIGN;
}

size_t rs_cpu_pack_size(rs_dtype type, int64_t n_out, int64_t n_in) {
    size_t gb = rs_cpu_pack_group_bytes(type, n_in);
    if (gb == 0 || n_out < 1) return 0;
    uint64_t groups = ((uint64_t)n_out + RS_CPU_PACK_ROWS - 1) / RS_CPU_PACK_ROWS;
    if (groups > SIZE_MAX / gb) return 0;
    return (size_t)groups * gb;
}

/* The GGUF block (row, b) as (d, 32 quant bytes as stored: Q8_0 signed
 * values, Q4_0 the 16 nibble bytes) — or a zero block past the last row. */
static const uint8_t *src_block(rs_dtype type, const uint8_t *src, int64_t n_out, int64_t nb,
                                int64_t row, int64_t b, uint16_t *d) {
    size_t bb = type == RS_DTYPE_Q8_0 ? sizeof(block_q8_0) : sizeof(block_q4_0);
    if (row >= n_out) {
        *d = 0;
        return NULL;
    }
    const uint8_t *p = src + ((size_t)row * (size_t)nb + (size_t)b) * bb;
    memcpy(d, p, 2);
    return p + 2;
}

void rs_cpu_pack_groups(rs_dtype type, const void *src, int64_t n_out, int64_t n_in, void *dst,
                        int64_t g0, int64_t g1) {
    const int64_t nb = n_in / 32;
    const size_t gbytes = rs_cpu_pack_group_bytes(type, n_in),
                 pay = rs_cpu_pack_payload_bytes(type);
    const int words = (int)(pay / 64); /* 32-bit words per row and block */
    for (int64_t g = g0; g < g1; g++) {
        uint8_t *gp = (uint8_t *)dst + (size_t)g * gbytes;
        memset(gp, 0, gbytes);
        uint8_t *scales = gp + (size_t)nb * pay;
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *pl = gp + (size_t)b * pay;
            for (int r = 0; r < RS_CPU_PACK_ROWS; r++) {
                uint16_t d;
                const uint8_t *q = src_block(type, src, n_out, nb, g * RS_CPU_PACK_ROWS + r, b, &d);
                memcpy(scales + (size_t)b * SCALE_BYTES + 2 * (size_t)r, &d, 2);
                for (int j = 0; j < words; j++)
                    for (int m = 0; m < 4; m++) {
                        uint8_t v = q ? q[4 * j + m] : 0;
                        if (type == RS_DTYPE_Q8_0) v = (uint8_t)(v ^ 0x80); /* q + 128 */
                        pl[64 * j + 4 * r + m] = q ? v : (type == RS_DTYPE_Q8_0 ? 0x80 : 0x88);
                    }
            }
        }
    }
}

void rs_cpu_unpack_groups(rs_dtype type, const void *src, int64_t n_out, int64_t n_in, void *dst,
                          int64_t g0, int64_t g1) {
    const int64_t nb = n_in / 32;
    const size_t gbytes = rs_cpu_pack_group_bytes(type, n_in),
                 pay = rs_cpu_pack_payload_bytes(type);
    const size_t bb = type == RS_DTYPE_Q8_0 ? sizeof(block_q8_0) : sizeof(block_q4_0);
    const int words = (int)(pay / 64);
    for (int64_t g = g0; g < g1; g++) {
        const uint8_t *gp = (const uint8_t *)src + (size_t)g * gbytes;
        const uint8_t *scales = gp + (size_t)nb * pay;
        for (int r = 0; r < RS_CPU_PACK_ROWS; r++) {
            int64_t row = g * RS_CPU_PACK_ROWS + r;
            if (row >= n_out) break;
            for (int64_t b = 0; b < nb; b++) {
                uint8_t *o = (uint8_t *)dst + ((size_t)row * (size_t)nb + (size_t)b) * bb;
                memcpy(o, scales + (size_t)b * SCALE_BYTES + 2 * (size_t)r, 2);
                const uint8_t *pl = gp + (size_t)b * pay;
                for (int j = 0; j < words; j++)
                    for (int m = 0; m < 4; m++) {
                        uint8_t v = pl[64 * j + 4 * r + m];
                        o[2 + 4 * j + m] = type == RS_DTYPE_Q8_0 ? (uint8_t)(v ^ 0x80) : v;
                    }
            }
        }
    }
}

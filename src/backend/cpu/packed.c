/* packed.c — packing GGUF Q4_0 / IQ4_NL / Q8_0 rows into the x16 layout and back (packed.h). */
#include "backend/cpu/packed.h"

#include <string.h>

#include "dtype/blocks.h"

enum { GROUP_ALIGN = 64, SCALE_BYTES = 2 * RS_CPU_PACK_ROWS };

/* 4-bit types whose blocks are an fp16 scale then 16 bytes of nibbles (element i
 * in the low nibble of byte i, element 16 + i in the high one): they pack alike. */
static bool nibbles32(rs_dtype type) {
    return type == RS_DTYPE_Q4_0 || type == RS_DTYPE_IQ4_NL;
}

bool rs_cpu_pack_supports(rs_dtype type) {
    return nibbles32(type) || type == RS_DTYPE_Q8_0;
}

size_t rs_cpu_pack_payload_bytes(rs_dtype type) {
    return type == RS_DTYPE_Q8_0 ? 512 : nibbles32(type) ? 256 : 0;
}

static size_t gguf_block_bytes(rs_dtype type) {
    _Static_assert(sizeof(block_iq4_nl) == sizeof(block_q4_0), "IQ4_NL packs as Q4_0");
    return type == RS_DTYPE_Q8_0 ? sizeof(block_q8_0) : sizeof(block_q4_0);
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

void rs_cpu_pack_groups(rs_dtype type, const void *src, int64_t n_out, int64_t n_in, void *dst,
                        int64_t g0, int64_t g1) {
    const bool q8 = type == RS_DTYPE_Q8_0;
    const int64_t nb = n_in / 32;
    const size_t gbytes = rs_cpu_pack_group_bytes(type, n_in),
                 pay = rs_cpu_pack_payload_bytes(type);
    const size_t bb = gguf_block_bytes(type);
    const int words = (int)(pay / 64); /* 32-bit words per row and block */
    /* Q8_0: q + 128 is q with the sign bit flipped; padding rows hold q = 0
     * (and scale 0), which is 0x80 (Q8_0) or nibbles 8 (Q4_0; for IQ4_NL a
     * nonzero value, but the scale 0 zeroes its products just the same) */
    const uint32_t flip = q8 ? 0x80808080u : 0, pad = q8 ? 0x80808080u : 0x88888888u;
    for (int64_t g = g0; g < g1; g++) {
        uint8_t *gp = (uint8_t *)dst + (size_t)g * gbytes;
        uint8_t *scales = gp + (size_t)nb * pay;
        for (int r = 0; r < RS_CPU_PACK_ROWS; r++) {
            int64_t row = g * RS_CPU_PACK_ROWS + r;
            const uint8_t *blk =
                row < n_out ? (const uint8_t *)src + (size_t)row * (size_t)nb * bb : NULL;
            for (int64_t b = 0; b < nb; b++, blk = blk ? blk + bb : NULL) {
                uint8_t *pl = gp + (size_t)b * pay + 4 * (size_t)r;
                uint16_t d = 0;
                if (blk) memcpy(&d, blk, 2);
                memcpy(scales + 32 * (size_t)b + 2 * (size_t)r, &d, 2);
                for (int j = 0; j < words; j++) {
                    uint32_t v = pad;
                    if (blk) {
                        memcpy(&v, blk + 2 + 4 * j, 4);
                        v ^= flip;
                    }
                    memcpy(pl + 64 * (size_t)j, &v, 4);
                }
            }
        }
        size_t used = (size_t)nb * (pay + 32);
        memset(gp + used, 0, gbytes - used);
    }
}

void rs_cpu_unpack_groups(rs_dtype type, const void *src, int64_t n_out, int64_t n_in, void *dst,
                          int64_t g0, int64_t g1) {
    const int64_t nb = n_in / 32;
    const size_t gbytes = rs_cpu_pack_group_bytes(type, n_in),
                 pay = rs_cpu_pack_payload_bytes(type);
    const size_t bb = gguf_block_bytes(type);
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

/* packed.h — the CPU backend's row-interleaved weight layout ("x16") for Q4_0,
 * IQ4_NL, Q8_0, Q4_K, Q5_K, Q6_K and IQ4_XS, made once at load so that the matrix kernels feed
 * vpdpbusd (and AMX tiles) with full-width loads.
 *
 * Rows are taken 16 at a time ("group"; the last group is padded with
 * zero rows of scale 0). A group of n_in elements holds nb = n_in / 32 blocks:
 *
 *   [payload of block 0][payload of block 1]...[payload of block nb-1]
 *   [16 fp16 scales of block 0]...[16 fp16 scales of block nb-1]   (row order)
 *   [zero padding up to a multiple of 64 bytes]
 *
 * A payload is the block's quants of the 16 rows, 4 consecutive elements of
 * one row per 32-bit word, word (j, r) at byte 64 * j + 4 * r:
 *   - Q8_0 (512 bytes, j = 0..7): bytes q[4j..4j+3] + 128 (unsigned), so that
 *     one 64-byte load is the u8 operand of vpdpbusd for elements 4j..4j+3 of
 *     all 16 rows;
 *   - Q4_0 (256 bytes, j = 0..3): the GGUF bytes qs[4j..4j+3], whose low
 *     nibbles are elements 4j..4j+3 and high nibbles elements 16+4j..16+4j+3
 *     (values q + 8, unsigned);
 *   - IQ4_NL (256 bytes): as Q4_0; the nibbles index the type's 16 values.
 *   - Q4_K (256 bytes per 32-element sub-block): as Q4_0, the nibbles being the
 *     sub-block's q (0..15, no offset).
 * Q4_K's scales are per 256 elements ("super-block", 8 sub-blocks) instead:
 *
 *   [16 fp16 d][16 fp16 dmin][8 x 16 bytes: scale of sub-block j, row r]
 *   [8 x 16 bytes: min of sub-block j, row r]               (320 bytes)
 *
 * one such record per super-block after all the payloads; element i of
 * sub-block j of row r is d_r * sc[j][r] * q - dmin_r * m[j][r].
 *   - Q5_K (320 bytes per sub-block): as Q4_K, then a 64-byte plane of the fifth
 *     bits: byte 4 r + m, bit 2 w + h, for element 4 w + m + 16 h; its scales
 *     are Q4_K's record.
 *   - Q6_K (384 bytes per 32-element sub-block): the low 4 bits of q (0..63) as
 *     Q4_0's nibbles (256 bytes), then two 64-byte planes of the high 2 bits:
 *     plane p holds, in byte 4 r + m, the bits of elements 4 w + m and
 *     16 + 4 w + m of the words w = p (at bits 0 and 2) and w = p + 2 (bits 4
 *     and 6), so that a shift and a mask put them beside the nibbles.
 *   Its record per super-block: [16 fp16 d][16 x 16 int8: scale of 16-element
 *   group k, row r] (288 bytes); element e of row r is d_r * sc[e / 16][r] * (q - 32).
 *   - IQ4_XS (256 bytes per 32-element sub-block): as IQ4_NL (its sub-blocks keep
 *     their nibbles as Q4_0 blocks do). Its record per super-block: [16 fp16 d]
 *     [8 x 16 int8: ls - 32 of sub-block j, row r] (160 bytes); element i of
 *     sub-block j of row r is d_r * sc[j][r] * value(q).
 * Everything is 64-byte aligned when the packed buffer is. The size equals the
 * GGUF size up to the padding (rows to 16, groups to 64 bytes; Q4_K +2.8%: its
 * 6-bit scales take a byte each, Q5_K +2.3%, IQ4_XS +1.5%; Q6_K the same size). */
#ifndef RUSTY_BACKEND_CPU_PACKED_H
#define RUSTY_BACKEND_CPU_PACKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype/dtype.h"

enum {
    RS_CPU_PACK_ROWS = 16,
    RS_CPU_PACK_K4_SCALES = 320,
    RS_CPU_PACK_K6_SCALES = 288,
    RS_CPU_PACK_XS_SCALES = 160,
};

/* True for the weight types that have the packed layout (Q4_0, IQ4_NL, Q8_0, Q4_K, Q5_K,
 * Q6_K, IQ4_XS). */
bool rs_cpu_pack_supports(rs_dtype type);
/* Bytes of one block's payload in a group (256 or 512), 0 if unsupported. */
size_t rs_cpu_pack_payload_bytes(rs_dtype type);
/* Bytes of one packed group of 16 rows of n_in elements; 0 if the type is
 * unsupported, n_in is not a positive multiple of its block (32; K-quants, IQ4_XS 256), or
 * the size overflows. */
size_t rs_cpu_pack_group_bytes(rs_dtype type, int64_t n_in);
/* Bytes of a packed n_out x n_in matrix; 0 as above or when n_out < 1. */
size_t rs_cpu_pack_size(rs_dtype type, int64_t n_out, int64_t n_in);

/* Packs groups [g0, g1) of the GGUF matrix src (n_out rows of n_in) into dst
 * (a buffer of rs_cpu_pack_size bytes); groups are independent, so threads
 * can pack disjoint ranges. Arguments must be valid (checked by the caller). */
void rs_cpu_pack_groups(rs_dtype type, const void *src, int64_t n_out, int64_t n_in, void *dst,
                        int64_t g0, int64_t g1);
/* The inverse: rows of groups [g0, g1) back to GGUF blocks in dst (n_out rows). */
void rs_cpu_unpack_groups(rs_dtype type, const void *src, int64_t n_out, int64_t n_in, void *dst,
                          int64_t g0, int64_t g1);

#endif

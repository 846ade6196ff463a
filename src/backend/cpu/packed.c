/* packed.c — packing GGUF Q4_0 / IQ4_NL / Q8_0 / Q4_K / Q5_K / Q6_K / IQ4_XS rows into the x16
 * layout and back (packed.h). */
#include "backend/cpu/packed.h"

#include <string.h>

#include "dtype/blocks.h"

enum { GROUP_ALIGN = 64, SCALE_BYTES = 2 * RS_CPU_PACK_ROWS };

/* 4-bit types whose blocks are an fp16 scale then 16 bytes of nibbles (element i
 * in the low nibble of byte i, element 16 + i in the high one): they pack alike. */
static bool nibbles32(rs_dtype type) {
    return type == RS_DTYPE_Q4_0 || type == RS_DTYPE_IQ4_NL;
}

static bool k45(rs_dtype type) {
    return type == RS_DTYPE_Q4_K || type == RS_DTYPE_Q5_K;
}

/* Types with 256-element super-blocks: a scale record per 8 blocks of 32. */
static bool k_type(rs_dtype type) {
    return k45(type) || type == RS_DTYPE_Q6_K || type == RS_DTYPE_IQ4_XS;
}

bool rs_cpu_pack_supports(rs_dtype type) {
    return nibbles32(type) || type == RS_DTYPE_Q8_0 || k_type(type);
}

size_t rs_cpu_pack_payload_bytes(rs_dtype type) {
    if (type == RS_DTYPE_Q8_0) return 512;
    if (type == RS_DTYPE_Q6_K) return 384;
    if (type == RS_DTYPE_Q5_K) return 320;
    return nibbles32(type) || type == RS_DTYPE_Q4_K || type == RS_DTYPE_IQ4_XS ? 256 : 0;
}

/* Scale bytes of a group per 32 elements: 16 fp16 scales, or a super-block record per 8. */
static size_t scale_bytes(rs_dtype type) {
    if (k45(type)) return RS_CPU_PACK_K4_SCALES / 8;
    if (type == RS_DTYPE_IQ4_XS) return RS_CPU_PACK_XS_SCALES / 8;
    return type == RS_DTYPE_Q6_K ? RS_CPU_PACK_K6_SCALES / 8 : SCALE_BYTES;
}

static size_t gguf_block_bytes(rs_dtype type) {
    _Static_assert(sizeof(block_iq4_nl) == sizeof(block_q4_0), "IQ4_NL packs as Q4_0");
    return type == RS_DTYPE_Q8_0 ? sizeof(block_q8_0) : sizeof(block_q4_0);
}

size_t rs_cpu_pack_group_bytes(rs_dtype type, int64_t n_in) {
    const size_t pay = rs_cpu_pack_payload_bytes(type), per_block = pay + scale_bytes(type);
    const int64_t block = k_type(type) ? QK_K : 32;
    if (pay == 0 || n_in < block || n_in % block != 0) return 0;
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

/* q (0..15) of element i (0..31) of sub-block j (0..7) of a Q4_K block's qs:
 * each 64 elements share 32 bytes, the first 32 in the low nibbles. */
static inline uint8_t k4_nibble(const uint8_t *qs, int j, int i) {
    const uint8_t v = qs[32 * (j / 2) + i];
    return (uint8_t)(j & 1 ? v >> 4 : v & 0x0f);
}

/* Q4_K and Q5_K share d, dmin, the 6-bit scales and the nibbles; Q5_K adds
 * the fifth bit of element 32 j + i as bit j of qh[i]. */
typedef struct {
    const uint16_t *d, *dmin;
    const uint8_t *scales, *qh, *qs; /* qh NULL for Q4_K */
} k45_view;

typedef struct {
    uint16_t *d, *dmin;
    uint8_t *scales, *qh, *qs;
} k45_out;

static k45_view k45_at(rs_dtype type, const void *blk) {
    if (type == RS_DTYPE_Q5_K) {
        const block_q5_K *b = blk;
        return (k45_view){&b->d, &b->dmin, b->scales, b->qh, b->qs};
    }
    const block_q4_K *b = blk;
    return (k45_view){&b->d, &b->dmin, b->scales, NULL, b->qs};
}

static k45_out k45_out_at(rs_dtype type, void *blk) {
    if (type == RS_DTYPE_Q5_K) {
        block_q5_K *b = blk;
        return (k45_out){&b->d, &b->dmin, b->scales, b->qh, b->qs};
    }
    block_q4_K *b = blk;
    return (k45_out){&b->d, &b->dmin, b->scales, NULL, b->qs};
}

/* Row r of group gp (padding rows: src NULL, all zero) from its nsb blocks at src. */
static void pack_k45_row(rs_dtype type, const uint8_t *src, int64_t nsb, uint8_t *gp, int r) {
    const size_t pay = rs_cpu_pack_payload_bytes(type), bb = rs_dtype_get(type)->type_size;
    uint8_t *rec0 = gp + (size_t)nsb * 8 * pay;
    for (int64_t s = 0; s < nsb; s++) {
        uint8_t *rec = rec0 + (size_t)s * RS_CPU_PACK_K4_SCALES;
        const k45_view b = src ? k45_at(type, src + (size_t)s * bb) : (k45_view){0};
        uint16_t d = src ? *b.d : 0, dmin = src ? *b.dmin : 0;
        memcpy(rec + 2 * r, &d, 2);
        memcpy(rec + 32 + 2 * r, &dmin, 2);
        for (int j = 0; j < 8; j++) {
            int sc = 0, m = 0;
            if (src) rs_k4_get_scale_min(j, b.scales, &sc, &m);
            rec[64 + 16 * j + r] = (uint8_t)sc;
            rec[192 + 16 * j + r] = (uint8_t)m;
            uint8_t *pl = gp + (size_t)(8 * s + j) * pay + 4 * (size_t)r;
            for (int i = 0; i < 16; i++)
                pl[64 * (i / 4) + i % 4] =
                    src ? (uint8_t)(k4_nibble(b.qs, j, i) | k4_nibble(b.qs, j, 16 + i) << 4) : 0;
            if (pay == 256) continue;
            /* Q5_K's plane: byte m, bit 2 w + h = the fifth bit of element 4 w + m + 16 h */
            for (int m4 = 0; m4 < 4; m4++) {
                uint8_t v = 0;
                for (int w = 0; w < 4 && src; w++)
                    for (int h = 0; h < 2; h++)
                        v |= (uint8_t)(((b.qh[4 * w + m4 + 16 * h] >> j) & 1) << (2 * w + h));
                pl[256 + m4] = v;
            }
        }
    }
}

static void unpack_k45_row(rs_dtype type, const uint8_t *gp, int64_t nsb, int r, uint8_t *dst) {
    const size_t pay = rs_cpu_pack_payload_bytes(type), bb = rs_dtype_get(type)->type_size;
    const uint8_t *rec0 = gp + (size_t)nsb * 8 * pay;
    for (int64_t s = 0; s < nsb; s++) {
        const uint8_t *rec = rec0 + (size_t)s * RS_CPU_PACK_K4_SCALES;
        const k45_out o = k45_out_at(type, dst + (size_t)s * bb);
        memcpy(o.d, rec + 2 * r, 2);
        memcpy(o.dmin, rec + 32 + 2 * r, 2);
        memset(o.scales, 0, K_SCALE_SIZE);
        if (o.qh) memset(o.qh, 0, QK_K / 8);
        for (int j = 0; j < 8; j++) {
            rs_k4_put_scale_min(j, o.scales, rec[64 + 16 * j + r], rec[192 + 16 * j + r]);
            const uint8_t *pl = gp + (size_t)(8 * s + j) * pay + 4 * (size_t)r;
            for (int i = 0; i < 32; i++) {
                const int w = (i % 16) / 4, m = i % 4, h = i / 16;
                const uint8_t v = pl[64 * w + m], q = h ? v >> 4 : v & 0x0f;
                uint8_t *q4 = &o.qs[32 * (j / 2) + i];
                *q4 = j & 1 ? (uint8_t)(*q4 | q << 4) : q; /* the even sub-block comes first */
                if (o.qh) o.qh[i] |= (uint8_t)(((pl[256 + m] >> (2 * w + h)) & 1) << j);
            }
        }
    }
}

/* Q6_K's q (0..63) of element e (0..255): low 4 bits in ql byte 64 (e / 128) + e % 64
 * (the high nibble when e % 128 >= 64), high 2 in qh byte 32 (e / 128) + e % 32, bits
 * 2 ((e % 128) / 32). */
static inline int k6_q(const block_q6_K *b, int e) {
    const int h = e / 128, r = e % 128;
    const int lo = (b->ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0f;
    const int hi = (b->qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
    return lo | hi << 4;
}

/* Byte offsets, from a row's first payload byte (64 w + 4 r), of element i (0..31) of a
 * packed Q6_K sub-block: its nibble (word w = (i % 16) / 4, byte i % 4, the high nibble
 * for i >= 16) and its 2 high bits (plane w & 1 after the 256 nibble bytes, bit shift
 * 4 (w >> 1) + 2 (i / 16)); see packed.h. */
static inline void k6_at(int i, size_t *nib, int *nshift, size_t *hb, int *hshift) {
    const int w = (i % 16) / 4, m = i % 4, half = i / 16;
    *nib = 64 * (size_t)w + (size_t)m;
    *nshift = 4 * half;
    *hb = 256 + 64 * (size_t)(w & 1) + (size_t)m;
    *hshift = 4 * (w >> 1) + 2 * half;
}

static void pack_k6_row(const block_q6_K *blk, int64_t nsb, uint8_t *gp, int r) {
    uint8_t *rec0 = gp + (size_t)nsb * 8 * 384;
    for (int64_t s = 0; s < nsb; s++) {
        uint8_t *rec = rec0 + (size_t)s * RS_CPU_PACK_K6_SCALES;
        const block_q6_K *b = blk ? blk + s : NULL;
        uint16_t d = b ? b->d : 0;
        memcpy(rec + 2 * r, &d, 2);
        for (int k = 0; k < 16; k++) rec[32 + 16 * k + r] = b ? (uint8_t)b->scales[k] : 0;
        for (int j = 0; j < 8; j++) {
            uint8_t *pl = gp + (size_t)(8 * s + j) * 384 + 4 * (size_t)r;
            for (int w = 0; w < 6; w++) memset(pl + 64 * w, 0, 4);
            for (int i = 0; i < 32; i++) {
                size_t nib, hb;
                int nshift, hshift;
                k6_at(i, &nib, &nshift, &hb, &hshift);
                const int q = b ? k6_q(b, 32 * j + i) : 32; /* padding rows: the value 0 */
                pl[nib] |= (uint8_t)((q & 0x0f) << nshift);
                pl[hb] |= (uint8_t)((q >> 4) << hshift);
            }
        }
    }
}

static void unpack_k6_row(const uint8_t *gp, int64_t nsb, int r, block_q6_K *out) {
    const uint8_t *rec0 = gp + (size_t)nsb * 8 * 384;
    for (int64_t s = 0; s < nsb; s++) {
        const uint8_t *rec = rec0 + (size_t)s * RS_CPU_PACK_K6_SCALES;
        block_q6_K *o = out + s;
        memcpy(&o->d, rec + 2 * r, 2);
        for (int k = 0; k < 16; k++) o->scales[k] = (int8_t)rec[32 + 16 * k + r];
        memset(o->ql, 0, sizeof o->ql);
        memset(o->qh, 0, sizeof o->qh);
        for (int j = 0; j < 8; j++) {
            const uint8_t *pl = gp + (size_t)(8 * s + j) * 384 + 4 * (size_t)r;
            for (int i = 0; i < 32; i++) {
                size_t nib, hb;
                int nshift, hshift;
                k6_at(i, &nib, &nshift, &hb, &hshift);
                const int q = ((pl[nib] >> nshift) & 0x0f) | ((pl[hb] >> hshift) & 3) << 4;
                const int e = 32 * j + i, h = e / 128, rr = e % 128;
                o->ql[64 * h + rr % 64] |= (uint8_t)((q & 0x0f) << (4 * (rr / 64)));
                o->qh[32 * h + rr % 32] |= (uint8_t)((q >> 4) << (2 * (rr / 32)));
            }
        }
    }
}

/* IQ4_XS: each sub-block's 16 qs bytes are a Q4_0 block's nibbles (word w = bytes
 * 4 w..4 w + 3); d and ls - 32 go to the record. Padding rows are all zero (d = 0). */
static void pack_xs_row(const block_iq4_xs *blk, int64_t nsb, uint8_t *gp, int r) {
    uint8_t *rec0 = gp + (size_t)nsb * 8 * 256;
    for (int64_t s = 0; s < nsb; s++) {
        uint8_t *rec = rec0 + (size_t)s * RS_CPU_PACK_XS_SCALES;
        const block_iq4_xs *b = blk ? blk + s : NULL;
        uint16_t d = b ? b->d : 0;
        memcpy(rec + 2 * r, &d, 2);
        for (int j = 0; j < 8; j++) {
            rec[32 + 16 * j + r] = b ? (uint8_t)(int8_t)(rs_iq4_xs_scale(b, j) - 32) : 0;
            uint8_t *pl = gp + (size_t)(8 * s + j) * 256 + 4 * (size_t)r;
            for (int w = 0; w < 4; w++) {
                if (b)
                    memcpy(pl + 64 * w, b->qs + 16 * j + 4 * w, 4);
                else
                    memset(pl + 64 * w, 0, 4);
            }
        }
    }
}

static void unpack_xs_row(const uint8_t *gp, int64_t nsb, int r, block_iq4_xs *out) {
    const uint8_t *rec0 = gp + (size_t)nsb * 8 * 256;
    for (int64_t s = 0; s < nsb; s++) {
        const uint8_t *rec = rec0 + (size_t)s * RS_CPU_PACK_XS_SCALES;
        block_iq4_xs *o = out + s;
        memcpy(&o->d, rec + 2 * r, 2);
        o->scales_h = 0;
        memset(o->scales_l, 0, sizeof o->scales_l);
        for (int j = 0; j < 8; j++) {
            const int ls = (int8_t)rec[32 + 16 * j + r] + 32;
            o->scales_l[j / 2] |= (uint8_t)((ls & 0x0f) << (4 * (j % 2)));
            o->scales_h |= (uint16_t)((ls >> 4) << (2 * j));
            const uint8_t *pl = gp + (size_t)(8 * s + j) * 256 + 4 * (size_t)r;
            for (int w = 0; w < 4; w++) memcpy(o->qs + 16 * j + 4 * w, pl + 64 * w, 4);
        }
    }
}

void rs_cpu_pack_groups(rs_dtype type, const void *src, int64_t n_out, int64_t n_in, void *dst,
                        int64_t g0, int64_t g1) {
    const bool q8 = type == RS_DTYPE_Q8_0, k4 = k45(type);
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
            if (k4) {
                const size_t rb = (size_t)(nb / 8) * rs_dtype_get(type)->type_size;
                pack_k45_row(type, row < n_out ? (const uint8_t *)src + (size_t)row * rb : NULL,
                             nb / 8, gp, r);
                continue;
            }
            if (type == RS_DTYPE_Q6_K) {
                pack_k6_row(row < n_out ? (const block_q6_K *)src + row * (nb / 8) : NULL, nb / 8,
                            gp, r);
                continue;
            }
            if (type == RS_DTYPE_IQ4_XS) {
                pack_xs_row(row < n_out ? (const block_iq4_xs *)src + row * (nb / 8) : NULL, nb / 8,
                            gp, r);
                continue;
            }
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
        size_t used = (size_t)nb * (pay + scale_bytes(type));
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
            if (k45(type)) {
                const size_t rb = (size_t)(nb / 8) * rs_dtype_get(type)->type_size;
                unpack_k45_row(type, gp, nb / 8, r, (uint8_t *)dst + (size_t)row * rb);
                continue;
            }
            if (type == RS_DTYPE_Q6_K) {
                unpack_k6_row(gp, nb / 8, r, (block_q6_K *)dst + row * (nb / 8));
                continue;
            }
            if (type == RS_DTYPE_IQ4_XS) {
                unpack_xs_row(gp, nb / 8, r, (block_iq4_xs *)dst + row * (nb / 8));
                continue;
            }
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

/* test_quant_k.c — Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K: hand-built blocks
 * dequantized against values worked out from the GGUF layouts, and round
 * trips checked two ways: (1) every element must land on the nearest point of
 * its sub-block's grid, read back from the block bytes by an independent
 * decoder of the scales written here; (2) relative RMS error per distribution
 * within bounds derived from each format's step size. */
#include "quant_cases.h"

#include <stdio.h>

static void deq(rs_dtype t, const void *blk, float *out) {
    rs_dtype_get(t)->to_f32(blk, out, 256);
}

static void expect_all(const float *y, float (*want)(int e)) {
    for (int e = 0; e < 256; e++) {
        if (y[e] != want(e)) {
            print_error("element %d: got %.9g, want %.9g\n", e, (double)y[e], (double)want(e));
            fail();
        }
    }
}

/* ---- Q2_K: x = d * (sc & 15) * q - dmin * (sc >> 4), q = 2 bits ----
 * d = 1 (0x3c00), dmin = 0.5 (0x3800). Sub-block s covers elements 16s..16s+15.
 *   scales[0] = 0x21: scale 1, min 2 -> x = q - 1
 *   scales[1] = 0x03: scale 3, min 0 -> x = 3q
 *   scales[5] = 0x12: scale 2, min 1 -> x = 2q - 0.5
 *   scales[15] = 0xf1: scale 1, min 15 -> x = q - 7.5
 * q of element e: qs byte 32*(e/128) + e%32, bits 2*((e%128)/32):
 *   e0   -> qs[0] bits 0-1 = 3            -> 2
 *   e16  -> qs[16] bits 0-1 = 2           -> 6
 *   e80  -> qs[16] bits 4-5 = 3 (0x32)    -> 5.5
 *   e255 -> qs[63] bits 6-7 = 2 (0x80)    -> -5.5
 * all other q are 0: sub 0 -> -1, sub 1 -> 0, sub 5 -> -0.5, sub 15 -> -7.5. */
static float want_q2k(int e) {
    if (e == 0) return 2.0f;
    if (e == 16) return 6.0f;
    if (e == 80) return 5.5f;
    if (e == 255) return -5.5f;
    switch (e / 16) {
    case 0:
        return -1.0f;
    case 5:
        return -0.5f;
    case 15:
        return -7.5f;
    default:
        return 0.0f;
    }
}

static void test_hand_q2_k(void **state) {
    (void)state;
    uint8_t b[84] = {0};
    b[0] = 0x21, b[1] = 0x03, b[5] = 0x12, b[15] = 0xf1; /* scales */
    uint8_t *qs = b + 16;
    qs[0] = 0x03, qs[16] = 0x32, qs[63] = 0x80;
    b[80] = 0x00, b[81] = 0x3c, b[82] = 0x00, b[83] = 0x38; /* d, dmin */
    float y[256];
    deq(RS_DTYPE_Q2_K, b, y);
    expect_all(y, want_q2k);
}

/* ---- Q3_K: x = d * s * (q - (hmask bit ? 0 : 4)), s 6-bit stored + 32 ----
 * d = 2 (0x4000). Stored scale 32 (s = 0) everywhere except:
 *   sub 0:  s = 1  -> 33 = 0b10'0001: low nibble 1 in scales[0] bits 0-3,
 *                      top bits 2 in scales[8] bits 0-1
 *   sub 9:  s = -3 -> 29 = 0b01'1101: low 13 in scales[1] bits 4-7,
 *                      top 1 in scales[9] bits 4-5 (sub 9: byte 8 + 9%4, shift 2*(9/4))
 *   sub 15: s = 31 -> 63: low 15 in scales[7] bits 4-7, top 3 in scales[11] bits 6-7
 * Every other sub-block needs top bits 2, so bytes 8..11 start as 0xaa:
 *   scales = 01 d0 00 00 00 00 00 f0 aa 9a aa ea
 * Elements (q: as Q2_K; high bit: hmask byte e%32, bit e/32):
 *   e0:   q = 1 (qs[0]), hmask[0] bit 0 set       -> 2 * 1 * 1 = 2
 *   e150: q = 3 (qs[54] bits 0-1), bit clear     -> 2 * -3 * (3 - 4) = 6
 *   e151: q = 0, hmask[23] bit 4 set             -> 0
 *   e255: q = 3 (qs[63] bits 6-7), hmask[31] bit 7 -> 2 * 31 * 3 = 186
 * others q = 0, bit clear: sub 0 -> -8, sub 9 -> 24, sub 15 -> -248, rest 0. */
static float want_q3k(int e) {
    if (e == 0) return 2.0f;
    if (e == 150) return 6.0f;
    if (e == 151) return 0.0f;
    if (e == 255) return 186.0f;
    switch (e / 16) {
    case 0:
        return -8.0f;
    case 9:
        return 24.0f;
    case 15:
        return -248.0f;
    default:
        return 0.0f;
    }
}

static void test_hand_q3_k(void **state) {
    (void)state;
    uint8_t b[110] = {0};
    uint8_t *hmask = b, *qs = b + 32, *sc = b + 96;
    hmask[0] = 0x01, hmask[23] = 0x10, hmask[31] = 0x80;
    qs[0] = 0x01, qs[54] = 0x03, qs[63] = 0xc0;
    const uint8_t scales[12] = {0x01, 0xd0, 0, 0, 0, 0, 0, 0xf0, 0xaa, 0x9a, 0xaa, 0xea};
    memcpy(sc, scales, 12);
    b[108] = 0x00, b[109] = 0x40;
    float y[256];
    deq(RS_DTYPE_Q3_K, b, y);
    expect_all(y, want_q3k);
}

/* ---- Q4_K: x = d * sc * q - dmin * m, 8 sub-blocks of 32 ----
 * d = dmin = 1. Sub j < 4: sc = scales[j] & 63, m = scales[j+4] & 63.
 * Sub j >= 4: sc = (scales[j+4] & 15) | (scales[j-4] >> 6) << 4,
 *             m  = (scales[j+4] >> 4) | (scales[j] >> 6) << 4.
 *   sub 1: sc 5, m 2          -> scales[1] = 5, scales[5] = 2
 *   sub 6: sc 37 = 0b10'0101, m 50 = 0b11'0010 -> scales[10] = 0x25,
 *          scales[2] top bits 2 (0x80), scales[6] top bits 3 (0xc0)
 *          (sub 2's own 6-bit fields stay 0)
 * q of element e: qs byte 32*(e/64) + e%32, high nibble when e%64 >= 32:
 *   e40  (sub 1): qs[8] high nibble 7   -> 5*7 - 2 = 33
 *   e200 (sub 6): qs[104] low nibble 15 -> 37*15 - 50 = 505
 * others q = 0: sub 1 -> -2, sub 6 -> -50, rest 0. */
static const uint8_t k_q4k_scales[12] = {0, 5, 0x80, 0, 0, 2, 0xc0, 0, 0, 0, 0x25, 0};

static float want_q4k(int e) {
    if (e == 40) return 33.0f;
    if (e == 200) return 505.0f;
    return e / 32 == 1 ? -2.0f : e / 32 == 6 ? -50.0f : 0.0f;
}

static void test_hand_q4_k(void **state) {
    (void)state;
    uint8_t b[144] = {0x00, 0x3c, 0x00, 0x3c};
    memcpy(b + 4, k_q4k_scales, 12);
    uint8_t *qs = b + 16;
    qs[8] = 0x70, qs[104] = 0x0f;
    float y[256];
    deq(RS_DTYPE_Q4_K, b, y);
    expect_all(y, want_q4k);
}

/* ---- Q5_K: Q4_K plus a fifth bit per element: qh byte e%32, bit e/32 ----
 * Same d, dmin, scales and nibbles as the Q4_K block, plus
 *   qh[8] = 0x42: bit 1 -> e40 gets +16: 5*23 - 2 = 113
 *                 bit 6 -> e200 gets +16: 37*31 - 50 = 1097
 *   qh[9] = 0x02: e41 (sub 1, nibble 0) -> 5*16 - 2 = 78 */
static float want_q5k(int e) {
    if (e == 40) return 113.0f;
    if (e == 41) return 78.0f;
    if (e == 200) return 1097.0f;
    return want_q4k(e);
}

static void test_hand_q5_k(void **state) {
    (void)state;
    uint8_t b[176] = {0x00, 0x3c, 0x00, 0x3c};
    memcpy(b + 4, k_q4k_scales, 12);
    uint8_t *qh = b + 16, *qs = b + 48;
    qh[8] = 0x42, qh[9] = 0x02;
    qs[8] = 0x70, qs[104] = 0x0f;
    float y[256];
    deq(RS_DTYPE_Q5_K, b, y);
    expect_all(y, want_q5k);
}

/* ---- Q6_K: x = d * sc[e/16] * (q - 32), q = 4 low bits | 2 high bits ----
 * d = 0.5 (0x3800); scales[0] = 2, scales[5] = -3, scales[12] = 1, rest 0.
 * Element e, h = e/128, r = e%128: low bits ql[64h + r%64] (high nibble when
 * r >= 64), high bits qh[32h + r%32] bits 2*(r/32).
 *   e0:   ql[0] = 0x0f, qh[0] = 0x03   -> q = 63: 0.5 * 2 * 31 = 31
 *   e80:  ql[16] = 0x50, qh[16] = 0x10 -> q = 5 | 1<<4 = 21: 0.5 * -3 * -11 = 16.5
 *   e200: ql[72] = 0xa0, qh[40] = 0x30 -> q = 10 | 3<<4 = 58: 0.5 * 1 * 26 = 13
 * others q = 0 (-32): sub 0 -> -32, sub 5 -> 48, sub 12 -> -16, rest 0. */
static float want_q6k(int e) {
    if (e == 0) return 31.0f;
    if (e == 80) return 16.5f;
    if (e == 200) return 13.0f;
    return e / 16 == 0 ? -32.0f : e / 16 == 5 ? 48.0f : e / 16 == 12 ? -16.0f : 0.0f;
}

static void test_hand_q6_k(void **state) {
    (void)state;
    uint8_t b[210] = {0};
    uint8_t *ql = b, *qh = b + 128, *sc = b + 192;
    ql[0] = 0x0f, qh[0] = 0x03, ql[16] = 0x50, qh[16] = 0x10, ql[72] = 0xa0, qh[40] = 0x30;
    sc[0] = 2, sc[5] = (uint8_t)-3, sc[12] = 1;
    b[208] = 0x00, b[209] = 0x38;
    float y[256];
    deq(RS_DTYPE_Q6_K, b, y);
    expect_all(y, want_q6k);
}

/* ---- Q8_K: x = d * q, d an f32 (0.25 = 0x3e800000 little-endian) ----
 * q[0] = -128 -> -32, q[100] = 3 -> 0.75, q[255] = 127 -> 31.75; bsums ignored. */
static float want_q8k(int e) {
    return e == 0 ? -32.0f : e == 100 ? 0.75f : e == 255 ? 31.75f : 0;
}

static void test_hand_q8_k(void **state) {
    (void)state;
    uint8_t b[1 + 292] = {0};
    uint8_t *p = b + 1; /* odd address */
    p[2] = 0x80, p[3] = 0x3e;
    p[4] = 0x80, p[4 + 100] = 3, p[4 + 255] = 127;
    p[260] = 0x55, p[291] = 0xaa;
    float y[256];
    deq(RS_DTYPE_Q8_K, p, y);
    expect_all(y, want_q8k);
}

/* ---- round trips ---- */

/* Sub-block grid read from block bytes: values step * l - offset, l in [lo, hi]. */
typedef struct {
    float step, offset;
    int lo, hi;
} grid;

static float f16le(const uint8_t *p) {
    return qc_fp16_at(p);
}

/* Independent decoding of each type's sub-block scale (format description in
 * the hand tests above). Returns the number of elements per sub-block. */
static int subblock_grid(rs_dtype t, const uint8_t *b, int s, grid *g) {
    switch (t) {
    case RS_DTYPE_Q2_K:
        g->step = f16le(b + 80) * (float)(b[s] & 15);
        g->offset = f16le(b + 82) * (float)(b[s] >> 4);
        g->lo = 0, g->hi = 3;
        return 16;
    case RS_DTYPE_Q3_K: {
        const uint8_t *sc = b + 96;
        int low = s < 8 ? sc[s] & 15 : sc[s - 8] >> 4;
        int top = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
        g->step = f16le(b + 108) * (float)((low | top << 4) - 32);
        g->offset = 0, g->lo = -4, g->hi = 3;
        return 16;
    }
    case RS_DTYPE_Q4_K:
    case RS_DTYPE_Q5_K: {
        const uint8_t *sc = b + 4;
        int scale = s < 4 ? sc[s] & 63 : (sc[s + 4] & 15) | (sc[s - 4] >> 6) << 4;
        int min = s < 4 ? sc[s + 4] & 63 : (sc[s + 4] >> 4) | (sc[s] >> 6) << 4;
        g->step = f16le(b) * (float)scale;
        g->offset = f16le(b + 2) * (float)min;
        g->lo = 0, g->hi = t == RS_DTYPE_Q4_K ? 15 : 31;
        return 32;
    }
    case RS_DTYPE_Q6_K:
        g->step = f16le(b + 208) * (float)(int8_t)b[192 + s];
        g->offset = 0, g->lo = -32, g->hi = 31;
        return 16;
    case RS_DTYPE_Q8_K: {
        float d;
        memcpy(&d, b, 4);
        g->step = d, g->offset = 0, g->lo = -127, g->hi = 127;
        return 256;
    }
    default:
        fail();
        return 0;
    }
}

/* Error to the nearest grid point: half a step inside the grid's span, the
 * distance to the span's end outside it. */
static double grid_bound(const grid *g, float x) {
    double a = (double)g->step * g->lo - g->offset, b = (double)g->step * g->hi - g->offset;
    double lo = fmin(a, b), hi = fmax(a, b);
    double out = x < lo ? lo - x : x > hi ? x - hi : 0;
    return fmax(0.5 * fabs((double)g->step), out);
}

typedef struct {
    rs_dtype type;
    double rms_uniform, rms_gauss;
} k_case;

/* Relative RMS bounds: a uniform quantizer's error is step / sqrt(12).
 * U[-1,1) (RMS 1/sqrt(3)): Q2_K 4 levels over a 16-range of ~1.76 -> step
 * 0.59 -> 0.29; Q3_K 8 levels, amax of 16 ~ 0.94 -> step 0.235 -> 0.117;
 * Q4_K 16 levels over a 32-range ~ 1.88 -> 0.063; Q5_K -> 0.030; Q6_K step
 * amax16/32 -> 0.0147; Q8_K amax256/127 -> 0.0039. N(0,1): 16-range ~ 3.5,
 * 32-range ~ 4.1, amax16 ~ 2.1, amax256 ~ 3.2 sigma: 0.337, 0.152, 0.079,
 * 0.038, 0.019, 0.0073. The scale searches beat these simple grids; bounds
 * are the estimates plus 10%, and the 4/6-bit sub-block scales cost a little. */
static const k_case k_cases[] = {
    {RS_DTYPE_Q2_K, 0.32, 0.37},   {RS_DTYPE_Q3_K, 0.129, 0.167},  {RS_DTYPE_Q4_K, 0.069, 0.087},
    {RS_DTYPE_Q5_K, 0.033, 0.042}, {RS_DTYPE_Q6_K, 0.0162, 0.021}, {RS_DTYPE_Q8_K, 0.0043, 0.0080},
};

enum { NB = 16, N = 256 * NB };

static void check_grid(rs_dtype t, const float *x, const float *y, const uint8_t *blk,
                       const char *kind) {
    for (int s = 0, e = 0; e < 256; s++) {
        grid g;
        const int len = subblock_grid(t, blk, s, &g);
        for (int i = 0; i < len; i++, e++) {
            double err = fabs((double)x[e] - y[e]);
            /* roundings of (x + offset) / step and of step * l - offset */
            double slack =
                1e-5 * (fabs((double)x[e]) + fabs((double)g.offset) + fabs((double)g.step) * 32);
            double bound = g.step == 0 ? fabs((double)x[e] + g.offset) : grid_bound(&g, x[e]);
            if (g.step == 0) { /* scale rounded to zero: every value is -offset */
                if (!(y[e] == -g.offset)) {
                    print_error("%s %s e%d: step 0 but y=%g, offset %g\n", rs_dtype_name(t), kind,
                                e, (double)y[e], (double)g.offset);
                    fail();
                }
            } else if (!(err <= bound + slack)) {
                print_error("%s %s e%d: x=%.9g y=%.9g err %.3g > %.3g (step %g, offset %g)\n",
                            rs_dtype_name(t), kind, e, (double)x[e], (double)y[e], err, bound,
                            (double)g.step, (double)g.offset);
                fail();
            }
        }
    }
}

static void test_round_trip(void **state) {
    (void)state;
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    for (size_t ci = 0; ci < sizeof k_cases / sizeof k_cases[0]; ci++) {
        const k_case *c = &k_cases[ci];
        const size_t bsz = rs_dtype_get(c->type)->type_size;
        printf("%-5s rel RMS:", rs_dtype_name(c->type));
        for (int k = 0; k < QC_COUNT; k++) {
            qc_fill((qc_kind)k, x, N, 256, 200 + (uint64_t)k);
            uint8_t *q = qc_round_trip(c->type, x, y, N);
            for (int b = 0; b < NB; b++)
                check_grid(c->type, x + 256 * b, y + 256 * b, q + bsz * (size_t)b, qc_names[k]);
            double r = qc_rel_rms(x, y, N);
            printf(" %s %.5f", qc_names[k], r);
            if (k == QC_UNIFORM) assert_true(r <= c->rms_uniform);
            if (k == QC_GAUSS || k == QC_WEIGHTS) assert_true(r <= c->rms_gauss);
            if (k == QC_ZERO) assert_true(r == 0);
            free(q);
        }
        printf("\n");
    }
    free(x);
    free(y);
}

/* Q8_K's bsums are the sums of each 16 consecutive q, and d = max / -127
 * for the signed largest-magnitude value (so that value becomes q = -127). */
static void test_q8_k_fields(void **state) {
    (void)state;
    float x[512];
    qc_fill(QC_GAUSS, x, 512, 256, 9);
    x[300] = -7.0f; /* block 1's extreme is negative */
    uint8_t q[2 * 292];
    rs_dtype_get(RS_DTYPE_Q8_K)->from_f32(x, q, 512);
    for (int b = 0; b < 2; b++) {
        const uint8_t *p = q + 292 * b;
        float amax = 0, max = 0, d;
        for (int j = 0; j < 256; j++)
            if (fabsf(x[256 * b + j]) > amax) amax = fabsf(x[256 * b + j]), max = x[256 * b + j];
        memcpy(&d, p, 4);
        assert_true(d == 1 / (-127.0f / max));
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += (int8_t)p[4 + 16 * g + j];
            int16_t bs;
            memcpy(&bs, p + 260 + 2 * g, 2);
            assert_int_equal(bs, sum);
        }
    }
    assert_int_equal((int8_t)q[292 + 4 + 300 - 256], -127);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_q2_k),  cmocka_unit_test(test_hand_q3_k),
        cmocka_unit_test(test_hand_q4_k),  cmocka_unit_test(test_hand_q5_k),
        cmocka_unit_test(test_hand_q6_k),  cmocka_unit_test(test_hand_q8_k),
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_q8_k_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

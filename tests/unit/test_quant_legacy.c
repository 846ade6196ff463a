/* test_quant_legacy.c — Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1: hand-built blocks
 * dequantized against values worked out from the format, round-trip error
 * bounds derived from each format, and byte-exact agreement with an
 * independent Python model of ggml's reference quantizers
 * (tests/ref/quant_ref.py -> tests/data/quant_ref.txt; that file also holds
 * IQ4_NL, checked here with the others). */
#include "quant_cases.h"

#include <stdio.h>

static void deq(rs_dtype t, const void *blk, float *out, int64_t n) {
    rs_dtype_get(t)->to_f32(blk, out, n);
}

/* ---- hand-computed blocks ---- */

static void test_hand_q4_0(void **state) {
    (void)state;
    /* d = 0x3800 = 2^-1 = 0.5; x = d * (q - 8).
     * qs[0] = 0x9f: element 0 = low nibble 15 -> 0.5 * 7 = 3.5,
     *               element 16 = high nibble 9 -> 0.5 * 1 = 0.5.
     * qs[1] = 0x08: element 1 = 8 -> 0, element 17 = 0 -> 0.5 * -8 = -4.
     * every other byte 0x88 -> 0. The block is copied to an odd address. */
    uint8_t raw[1 + 18];
    memset(raw, 0x88, sizeof raw);
    raw[1] = 0x00, raw[2] = 0x38, raw[3] = 0x9f, raw[4] = 0x08;
    float y[32];
    deq(RS_DTYPE_Q4_0, raw + 1, y, 32);
    for (int i = 0; i < 32; i++) {
        float want = i == 0 ? 3.5f : i == 16 ? 0.5f : i == 17 ? -4.0f : 0.0f;
        assert_true(y[i] == want);
    }
}

static void test_hand_q4_1(void **state) {
    (void)state;
    /* d = 0x3c00 = 1, m = 0xbc00 = -1; x = d * q + m.
     * qs[0] = 0x2f: element 0 = 15 -> 14, element 16 = 2 -> 1; other bytes 0 -> -1. */
    uint8_t b[20] = {0x00, 0x3c, 0x00, 0xbc, 0x2f};
    float y[32];
    deq(RS_DTYPE_Q4_1, b, y, 32);
    for (int i = 0; i < 32; i++) assert_true(y[i] == (i == 0 ? 14.0f : i == 16 ? 1.0f : -1.0f));
}

static void test_hand_q5_0(void **state) {
    (void)state;
    /* d = 0x4000 = 2; x = d * (q - 16), q = nibble | (bit e of qh) << 4.
     * qh bytes 01 00 01 80 = u32 0x80010001: bits 0, 16 and 31 set.
     * qs[0] = 0x3a: e0 = 10 | 16 = 26 -> 2 * 10 = 20;  e16 = 3 | 16 = 19 -> 6.
     * qs[15] = 0xf0: e15 = 0 (bit 15 clear) -> -32;    e31 = 15 | 16 = 31 -> 30.
     * all other qs 0 and qh bits clear -> q = 0 -> -32. */
    uint8_t b[22] = {0x00, 0x40, 0x01, 0x00, 0x01, 0x80, 0x3a};
    b[6 + 15] = 0xf0;
    float y[32];
    deq(RS_DTYPE_Q5_0, b, y, 32);
    for (int i = 0; i < 32; i++) {
        float want = i == 0 ? 20.0f : i == 16 ? 6.0f : i == 31 ? 30.0f : -32.0f;
        assert_true(y[i] == want);
    }
}

static void test_hand_q5_1(void **state) {
    (void)state;
    /* d = 0x3800 = 0.5, m = 0x4200 = 3; qh = 0x00000002 (element 1's fifth bit).
     * qs[1] = 0x51: e1 = 1 | 16 = 17 -> 8.5 + 3 = 11.5; e17 = 5 -> 2.5 + 3 = 5.5.
     * everything else q = 0 -> 3. */
    uint8_t b[24] = {0x00, 0x38, 0x00, 0x42, 0x02, 0x00, 0x00, 0x00, 0x00, 0x51};
    float y[32];
    deq(RS_DTYPE_Q5_1, b, y, 32);
    for (int i = 0; i < 32; i++) assert_true(y[i] == (i == 1 ? 11.5f : i == 17 ? 5.5f : 3.0f));
}

static void test_hand_q8(void **state) {
    (void)state;
    /* Q8_0, d = 0x2e66: exponent 11 -> 2^-4, mantissa 0x266 = 614 ->
     * d = (1024 + 614) / 1024 / 16 = 1638 / 16384 = 819 / 8192.
     * q = 127 -> 104013 / 8192 = 12.6968994140625, q = -128 -> -12.796875,
     * q = -1 -> -0.0999755859375, q = 0 -> 0 (all exact in f32). */
    uint8_t b[34] = {0x66, 0x2e, 127, 0x80, 0xff};
    float y[32];
    deq(RS_DTYPE_Q8_0, b, y, 32);
    assert_true(y[0] == 12.6968994140625f);
    assert_true(y[1] == -12.796875f);
    assert_true(y[2] == -0.0999755859375f);
    for (int i = 3; i < 32; i++) assert_true(y[i] == 0.0f);
    /* Q8_1: d = 1 (0x3c00), s ignored by dequantization; q[5] = -7, q[31] = 100 */
    uint8_t c[36] = {0x00, 0x3c, 0x12, 0x34};
    c[4 + 5] = (uint8_t)-7, c[4 + 31] = 100;
    deq(RS_DTYPE_Q8_1, c, y, 32);
    for (int i = 0; i < 32; i++) assert_true(y[i] == (i == 5 ? -7.0f : i == 31 ? 100.0f : 0.0f));
}

/* ---- round trip against bounds derived from each format ---- */

enum { NB = 64, N = 32 * NB };

typedef struct {
    rs_dtype type;
    int sym_levels; /* symmetric types: levels -L .. L-1 with d = max / -L; 0 if affine */
    int aff_max;    /* affine types: q in 0 .. aff_max, d = (max - min) / aff_max */
    int q8;         /* Q8_0/Q8_1: q = round(x / d), d = amax / 127 */
    double rms_uniform, rms_gauss; /* relative RMS bounds, see test_round_trip */
} legacy_case;

/* Relative RMS bounds. A uniform quantizer's error is step / sqrt(12).
 * U[-1,1) data (RMS 1/sqrt(3)) in blocks of 32 has amax ~ 0.97 and range
 * ~ 1.9, so relative RMS ~ step / 2 with step = amax/8 (Q4_0), range/15
 * (Q4_1), amax/16 (Q5_0), range/31 (Q5_1), amax/127 (Q8): about 0.061,
 * 0.063, 0.030, 0.031, 0.0038. Gaussian blocks of 32 have E[amax] ~ 2.4
 * sigma and E[max - min] ~ 4.1 sigma: 0.087, 0.079, 0.043, 0.038, 0.0055.
 * Each bound is its estimate plus 10% (measured values sit at or below the
 * estimates; the test prints them). */
static const legacy_case k_cases[] = {
    {RS_DTYPE_Q4_0, 8, 0, 0, 0.067, 0.096},   {RS_DTYPE_Q4_1, 0, 15, 0, 0.069, 0.087},
    {RS_DTYPE_Q5_0, 16, 0, 0, 0.033, 0.048},  {RS_DTYPE_Q5_1, 0, 31, 0, 0.034, 0.042},
    {RS_DTYPE_Q8_0, 0, 0, 1, 0.0042, 0.0061}, {RS_DTYPE_Q8_1, 0, 0, 1, 0.0042, 0.0061},
};

/* Largest error the format allows for element x of a block, given the f32 scale
 * d the reference derives from the block and the stored fp16 values dh, mh. */
static double element_bound(const legacy_case *c, float x, float d, float dh, float min, float mh,
                            float amax) {
    /* in float64; d - dh, a value and its fp16 rounding, is exact in either */
    const double ad = fabs((double)d), d_err = fabs((double)d - dh);
    const double slack = 1e-4 * ad + 1e-6 * amax; /* reciprocal and product roundings */
    if (c->q8) return 0.5 * ad + 127 * d_err + slack;
    if (c->sym_levels) {
        /* x / d lies in [-L, L]; only -L .. L-1 exist, so x / d > L - 1 clamps */
        const int L = c->sym_levels;
        double t = d != 0 ? (double)x / d : 0;
        double units = t > L - 1 ? fmax(0.5, t - (L - 1)) : 0.5;
        return units * ad + L * d_err + slack;
    }
    return 0.5 * ad + c->aff_max * d_err + fabs((double)min - mh) + slack;
}

static void check_block_bounds(const legacy_case *c, const float *x, const float *y,
                               const uint8_t *blk, const char *kind) {
    float amax = 0, smax = 0, min = x[0], max = x[0];
    for (int j = 0; j < 32; j++) {
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]), smax = x[j];
        min = fminf(min, x[j]), max = fmaxf(max, x[j]);
    }
    float d, mh = 0;
    if (c->q8)
        d = amax / 127;
    else if (c->sym_levels)
        d = smax / (float)-c->sym_levels;
    else
        d = (max - min) / (float)c->aff_max, mh = qc_fp16_at(blk + 2);
    const float dh = qc_fp16_at(blk);
    for (int j = 0; j < 32; j++) {
        double err = fabs((double)x[j] - y[j]);
        double bound = element_bound(c, x[j], d, dh, min, mh, amax);
        if (!(err <= bound)) {
            print_error("%s %s: x=%.9g y=%.9g err %.3g > bound %.3g (d=%.6g dh=%.6g)\n",
                        rs_dtype_name(c->type), kind, (double)x[j], (double)y[j], err, bound,
                        (double)d, (double)dh);
            fail();
        }
    }
}

static void test_round_trip(void **state) {
    (void)state;
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    for (size_t ci = 0; ci < sizeof k_cases / sizeof k_cases[0]; ci++) {
        const legacy_case *c = &k_cases[ci];
        const size_t bsz = rs_dtype_get(c->type)->type_size;
        printf("%-5s rel RMS:", rs_dtype_name(c->type));
        for (int k = 0; k < QC_COUNT; k++) {
            qc_fill((qc_kind)k, x, N, 32, 100 + (uint64_t)k);
            uint8_t *q = qc_round_trip(c->type, x, y, N);
            for (int b = 0; b < NB; b++)
                check_block_bounds(c, x + 32 * b, y + 32 * b, q + bsz * (size_t)b, qc_names[k]);
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

/* Q8_1 is Q8_0's quantizer plus s = fp16(d * sum(q)) with the f32 d. */
static void test_q8_1_sum(void **state) {
    (void)state;
    float x[N];
    qc_fill(QC_GAUSS, x, N, 32, 7);
    uint8_t a[NB * 34], b[NB * 36];
    rs_dtype_get(RS_DTYPE_Q8_0)->from_f32(x, a, N);
    rs_dtype_get(RS_DTYPE_Q8_1)->from_f32(x, b, N);
    for (int i = 0; i < NB; i++) {
        const uint8_t *p = a + 34 * i, *r = b + 36 * i;
        assert_memory_equal(p, r, 2);          /* same d */
        assert_memory_equal(p + 2, r + 4, 32); /* same q */
        float amax = 0;
        int sum = 0;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[32 * i + j])), sum += (int8_t)r[4 + j];
        const rs_fp16 s = rs_f32_to_fp16((float)sum * (amax / 127));
        assert_int_equal(r[2] | (r[3] << 8), s);
    }
}

/* ---- byte-exact agreement with the Python model of ggml's reference ---- */

/* Types in tests/data/quant_ref.txt; the file has one line per type and input. */
static const rs_dtype k_ref_types[] = {RS_DTYPE_Q8_0, RS_DTYPE_Q4_0, RS_DTYPE_Q4_1,
                                       RS_DTYPE_Q5_0, RS_DTYPE_Q5_1, RS_DTYPE_IQ4_NL};
enum { NREF = sizeof k_ref_types / sizeof k_ref_types[0], MAXIN = 32 };

static void test_reference_bytes(void **state) {
    (void)state;
    size_t size = 0;
    char *text = tu_read_file(tu_tests("data/quant_ref.txt"), &size);
    assert_non_null(text);
    float input[32] = {0};
    /* all inputs concatenated, with the expected bytes per type, to check
     * that multi-block rows step through blocks correctly too */
    static float all_in[MAXIN * 32];
    static uint8_t all_want[NREF][MAXIN * 36], got_all[MAXIN * 36];
    int n_in = 0, n_checked = 0, n_blocks[NREF] = {0};
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char tag[16], name[64];
        int off = 0;
        assert_int_equal(sscanf(line, "%15s %63s %n", tag, name, &off), 2);
        const char *rest = line + off;
        if (strcmp(tag, "input") == 0) {
            for (int j = 0; j < 32; j++) {
                unsigned bits;
                assert_int_equal(sscanf(rest, "%8x", &bits), 1);
                input[j] = rs_bits_to_f32(bits);
                rest += 9;
            }
            assert_true(n_in < MAXIN);
            memcpy(all_in + 32 * n_in++, input, sizeof input);
            continue;
        }
        rs_dtype t;
        assert_true(rs_dtype_from_name(tag, &t));
        int ti = 0;
        while (ti < NREF && k_ref_types[ti] != t) ti++;
        assert_true(ti < NREF);
        const rs_dtype_traits *tr = rs_dtype_get(t);
        uint8_t want[64], got[64];
        assert_int_equal(tu_parse_hex(rest, want, sizeof want), tr->type_size);
        tr->from_f32(input, got, 32);
        if (memcmp(got, want, tr->type_size) != 0) {
            for (size_t i = 0; i < tr->type_size; i++)
                if (got[i] != want[i])
                    print_error("%s %s: byte %zu is %02x, reference %02x\n", tag, name, i, got[i],
                                want[i]);
            fail();
        }
        memcpy(all_want[ti] + tr->type_size * (size_t)n_blocks[ti]++, want, tr->type_size);
        n_checked++;
    }
    assert_true(n_in >= 15);
    assert_int_equal(n_checked, NREF * n_in);
    for (int ti = 0; ti < NREF; ti++) {
        const rs_dtype_traits *tr = rs_dtype_get(k_ref_types[ti]);
        assert_int_equal(n_blocks[ti], n_in);
        tr->from_f32(all_in, got_all, 32 * n_in);
        assert_memory_equal(got_all, all_want[ti], tr->type_size * (size_t)n_in);
    }
    printf("%d reference blocks matched byte for byte\n", n_checked);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_q4_0), cmocka_unit_test(test_hand_q4_1),
        cmocka_unit_test(test_hand_q5_0), cmocka_unit_test(test_hand_q5_1),
        cmocka_unit_test(test_hand_q8),   cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_q8_1_sum),  cmocka_unit_test(test_reference_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

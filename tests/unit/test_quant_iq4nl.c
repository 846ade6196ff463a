/* test_quant_iq4nl.c — IQ4_NL and IQ4_XS: hand-built blocks, and IQ4_NL round trips
 * where every element must take the code-book value nearest to x / d for the stored
 * d, with relative RMS error bounded per distribution. (Byte-exact agreement with
 * ggml's quantizers for both types is in test_quant_ggml.c.) */
#include "quant_cases.h"

#include "dtype/blocks.h"

#include <stdio.h>

static const int k_book[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                               1,    13,   25,  38,  53,  69,  89,  113};

static void test_hand(void **state) {
    (void)state;
    /* d = 0x3400 = 0.25; x = d * book[nibble], element j low nibble of qs[j],
     * element j + 16 high nibble.
     *   qs[0] = 0xf0: e0 = book[0] = -127 -> -31.75, e16 = book[15] = 113 -> 28.25
     *   qs[3] = 0x78: e3 = book[8] = 1 -> 0.25,   e19 = book[7] = -10 -> -2.5
     *   other bytes 0x5a: low book[10] = 25 -> 6.25, high book[5] = -35 -> -8.75 */
    uint8_t b[1 + 18];
    memset(b, 0x5a, sizeof b);
    b[1] = 0x00, b[2] = 0x34, b[3] = 0xf0, b[6] = 0x78;
    float y[32];
    rs_dtype_get(RS_DTYPE_IQ4_NL)->to_f32(b + 1, y, 32);
    for (int e = 0; e < 32; e++) {
        float want = e == 0    ? -31.75f
                     : e == 16 ? 28.25f
                     : e == 3  ? 0.25f
                     : e == 19 ? -2.5f
                     : e < 16  ? 6.25f
                               : -8.75f;
        assert_true(y[e] == want);
    }
}

/* IQ4_XS: d = 0.5 (0x3800); sub-block 1's scale 53 (low nibble 5 in the high half
 * of scales_l[0], high bits 3 in scales_h bits 2-3): multiplier 21; sub-block 6's
 * scale 0: multiplier -32; every other sub-block's scale 32 (low 0, high 2):
 * multiplier 0. qs bytes 0x1f: element j book[15] = 113, element 16 + j book[1]. */
static void test_hand_xs(void **state) {
    (void)state;
    block_iq4_xs b;
    memset(&b, 0, sizeof b);
    b.d = 0x3800;
    for (int ib = 0; ib < 8; ib++) {
        const int ls = ib == 1 ? 53 : ib == 6 ? 0 : 32;
        b.scales_l[ib / 2] |= (uint8_t)((ls & 15) << (4 * (ib % 2)));
        b.scales_h |= (uint16_t)((ls >> 4) << (2 * ib));
    }
    assert_int_equal(b.scales_l[0], 0x50);
    assert_int_equal(b.scales_h, 0x8aae); /* sub-blocks 0-7: 2, 3, 2, 2, 2, 2, 0, 2 */
    memset(b.qs, 0x1f, sizeof b.qs);
    float y[256];
    rs_dtype_get(RS_DTYPE_IQ4_XS)->to_f32(&b, y, 256);
    for (int e = 0; e < 256; e++) {
        const int ib = e / 32;
        const float mul = ib == 1 ? 21.0f : ib == 6 ? -32.0f : 0.0f;
        const float want = 0.5f * mul * (e % 32 < 16 ? 113.0f : -104.0f);
        assert_true(y[e] == want);
    }
}

enum { NB = 64, N = 32 * NB };

/* Relative RMS bounds. The code book is denser near zero (steps 9-12 around
 * 0, 23-24 at the ends, in units of d ~ amax/127 or amax/113), i.e. 4-bit
 * like Q4_0 but shaped for bell-shaped data: Gaussian blocks should do at
 * least as well as Q4_0 (whose bound is 0.096); uniform data loses a little
 * to a uniform grid: Q4_0's uniform estimate 0.061 with end steps 1.5x wider
 * over a third of the range gives about 0.075. */
static const double k_rms_uniform = 0.083, k_rms_gauss = 0.096;

static void test_round_trip(void **state) {
    (void)state;
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    printf("IQ4_NL rel RMS:");
    for (int k = 0; k < QC_COUNT; k++) {
        qc_fill((qc_kind)k, x, N, 32, 300 + (uint64_t)k);
        uint8_t *q = qc_round_trip(RS_DTYPE_IQ4_NL, x, y, N);
        for (int b = 0; b < NB; b++) {
            const float dh = qc_fp16_at(q + 18 * b);
            for (int j = 0; j < 32; j++) {
                const float xv = x[32 * b + j];
                /* nearest code for the stored scale; codes were picked with the
                 * unrounded f32 d, which differs from dh by <= 2^-11 relative */
                double best = INFINITY;
                for (int c = 0; c < 16; c++) best = fmin(best, fabs(xv - (double)dh * k_book[c]));
                double bound = best + 127.0 * fabs((double)dh) * 0x1p-11 + 1e-6 * fabs((double)xv);
                double err = fabs((double)xv - y[32 * b + j]);
                if (dh == 0) bound = fabs((double)xv); /* all-zero or underflowing block */
                if (!(err <= bound)) {
                    print_error("%s block %d e%d: x=%.9g y=%.9g err %.3g > %.3g\n", qc_names[k], b,
                                j, (double)xv, (double)y[32 * b + j], err, bound);
                    fail();
                }
            }
        }
        double r = qc_rel_rms(x, y, N);
        printf(" %s %.5f", qc_names[k], r);
        if (k == QC_UNIFORM) assert_true(r <= k_rms_uniform);
        if (k == QC_GAUSS || k == QC_WEIGHTS) assert_true(r <= k_rms_gauss);
        if (k == QC_ZERO) assert_true(r == 0);
        free(q);
    }
    printf("\n");
    free(x);
    free(y);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand),
        cmocka_unit_test(test_hand_xs),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

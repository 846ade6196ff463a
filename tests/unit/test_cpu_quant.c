/* test_cpu_quant.c — activation quantizers (f32 -> Q8_0 / Q8_1 / Q8_K) and the
 * K-quant scale unpacking used by the CPU kernels.
 *  - scalar quantizer against its definition, checked element by element:
 *    stored scale = fp16(amax / 127) (f32 for Q8_K), |q| <= 127, and
 *    |x - d*q| <= d/2 (the rounding bound; computed in float64);
 *    Q8_1's s = fp16(d * sum q), Q8_K's bsums = sums of 16 q;
 *  - Q8_0P (packed kernels' activations): Q8_0's values, its scale as f32 and
 *    the offset sums -8 * sum(q), -128 * sum(q);
 *  - every SIMD level bit-identical to the scalar quantizer;
 *  - the word-level scale unpacking equals the byte-level one. */
#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "backend/cpu/kquant_scales.h"
#include "dtype/blocks.h"
#include "dtype/fp16.h"

enum { N = 4096 + 256 };

/* Inputs covering: ordinary values, an outlier per block, an all-zero block,
 * a block whose fp16 scale is subnormal (1e-4) and one where it underflows to
 * 0 (1e-7), exact .5 steps (ties), and one large block. */
static void gen(float *x, uint64_t seed) {
    uint64_t s = seed;
    for (int i = 0; i < N; i++) x[i] = tu_randf(&s) * (i % 29 == 3 ? 10.0f : 1.0f);
    for (int i = 256; i < 512; i++) x[i] = 0;
    for (int i = 512; i < 640; i++) x[i] = tu_randf(&s) * 1e-4f;
    for (int i = 640; i < 768; i++) x[i] = tu_randf(&s) * 1e-7f;
    /* amax 63.5 -> d = 0.5, the others at k * 0.5 + 0.25: x / d = k + 0.5 (ties) */
    for (int i = 768; i < 1024; i++)
        x[i] = i % 32 == 0 ? 63.5f : (float)((i % 64) - 32) * 0.5f + 0.25f;
    for (int i = 1024; i < 1280; i++) x[i] = tu_randf(&s) * 3e4f;
}

static int g_fail;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond) && g_fail++ < 10) print_error(__VA_ARGS__);                                    \
    } while (0)

/* Checks one block of `bs` values quantized with scale d (as stored). */
static void check_block(const float *x, const int8_t *q, int bs, double d, double d_expected,
                        const char *what, int b) {
    CHECK(d == d_expected, "%s block %d: d %.9g, expected %.9g\n", what, b, d, d_expected);
    for (int j = 0; j < bs; j++) {
        double xj = x[j], err = fabs(xj - d * q[j]);
        bool ok;
        if (d == 0) /* scale underflowed (or all zero): everything flushes to 0 */
            ok = q[j] == 0;
        else if (fabs(xj) > 127.5 * d) /* a rounded-down fp16 scale: clamped */
            ok = q[j] == (xj > 0 ? 127 : -127);
        else
            ok = q[j] != -128 && err <= d / 2 * (1 + 1e-6);
        CHECK(ok, "%s block %d: x[%d] = %.9g, d = %.9g, q = %d\n", what, b, j, x[j], d, q[j]);
    }
}

static double amax_of(const float *x, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

static void test_scalar_q8_0_q8_1(void **state) {
    (void)state;
    float x[N];
    gen(x, 11);
    block_q8_0 a[N / 32];
    block_q8_1 c[N / 32];
    rs_cpu_quant_q8_0_ref(x, a, N);
    rs_cpu_quant_q8_1_ref(x, c, N);
    for (int b = 0; b < N / 32; b++) {
        const float *xb = x + 32 * b;
        double want = rs_fp16_to_f32(rs_f32_to_fp16((float)amax_of(xb, 32) / 127.0f));
        check_block(xb, a[b].qs, 32, rs_fp16_to_f32(a[b].d), want, "Q8_0", b);
        check_block(xb, c[b].qs, 32, rs_fp16_to_f32(c[b].d), want, "Q8_1", b);
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += c[b].qs[j];
        float s = rs_fp16_to_f32(rs_f32_to_fp16(rs_fp16_to_f32(c[b].d) * (float)sum));
        CHECK(rs_fp16_to_f32(c[b].s) == s, "Q8_1 block %d: s\n", b);
        CHECK(memcmp(a[b].qs, c[b].qs, 32) == 0, "Q8_0/Q8_1 block %d differ\n", b);
    }
    assert_int_equal(g_fail, 0);
}

static void test_scalar_q8_0p(void **state) {
    (void)state;
    float x[N];
    gen(x, 13);
    block_q8_0 a[N / 32];
    rs_block_q8_0p p[N / 32];
    rs_cpu_quant_q8_0_ref(x, a, N);
    rs_cpu_quant_q8_0p_ref(x, p, N);
    for (int b = 0; b < N / 32; b++) {
        int sum = 0, sum16 = 0;
        for (int j = 0; j < 32; j++) sum += a[b].qs[j];
        for (int j = 0; j < 16; j++) sum16 += a[b].qs[j];
        CHECK(memcmp(a[b].qs, p[b].qs, 32) == 0, "Q8_0P block %d: values differ from Q8_0\n", b);
        CHECK(p[b].d == rs_fp16_to_f32(a[b].d), "Q8_0P block %d: d %g\n", b, p[b].d);
        CHECK(p[b].off4 == -8 * sum && p[b].off8 == -128 * sum && p[b].sum16 == sum16,
              "Q8_0P block %d: sums %d %d %d (sum %d, first half %d)\n", b, p[b].off4, p[b].off8,
              p[b].sum16, sum, sum16);
    }
    assert_int_equal(g_fail, 0);
}

static void test_scalar_q8_K(void **state) {
    (void)state;
    float x[N];
    gen(x, 12);
    block_q8_K k[N / 256];
    rs_cpu_quant_q8_K_ref(x, k, N);
    for (int b = 0; b < N / 256; b++) {
        const float *xb = x + 256 * b;
        float want = (float)amax_of(xb, 256) / 127.0f;
        check_block(xb, k[b].qs, 256, k[b].d, want, "Q8_K", b);
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += k[b].qs[16 * g + j];
            CHECK(k[b].bsums[g] == sum, "Q8_K block %d: bsums[%d] %d != %d\n", b, g, k[b].bsums[g],
                  sum);
        }
    }
    assert_int_equal(g_fail, 0);
}

static void test_levels_bit_identical(void **state) {
    (void)state;
    static const rs_cpu_act acts[4] = {RS_CPU_ACT_Q8_0, RS_CPU_ACT_Q8_1, RS_CPU_ACT_Q8_K,
                                       RS_CPU_ACT_Q8_0P};
    static const char *names[4] = {"scalar", "avx2", "avx512", "amx"};
    float x[N];
    static uint8_t ref[8192], got[8192]; /* > N / 32 * 48 */
    for (int l = 1; l < 4; l++) {
        setenv("RUSTY_SIMD", names[l], 1);
        if (rs_cpu_simd_level() != (rs_simd_level)l) {
            printf("note: SIMD level %s not available, not tested\n", names[l]);
            continue;
        }
        for (int a = 0; a < 4; a++)
            for (uint64_t seed = 1; seed <= 4; seed++) {
                gen(x, seed);
                size_t bytes =
                    (size_t)(N / rs_cpu_act_block(acts[a])) * rs_cpu_act_block_bytes(acts[a]);
                memset(ref, 0xaa, sizeof ref);
                memset(got, 0x55, sizeof got);
                rs_cpu_quant_get(acts[a], RS_SIMD_SCALAR)(x, ref, N);
                rs_cpu_quant_get(acts[a], (rs_simd_level)l)(x, got, N);
                assert_memory_equal(ref, got, bytes);
                /* nothing written past the end */
                assert_int_equal(got[bytes], 0x55);
            }
    }
    unsetenv("RUSTY_SIMD");
}

static void test_scale_unpacking(void **state) {
    (void)state;
    uint64_t s = 3;
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t raw[12];
        for (int i = 0; i < 12; i++) raw[i] = (uint8_t)(tu_randf(&s) * 128 + 128);
        uint8_t sc[8], mn[8];
        rs_kq_unpack_q4k_scales(raw, sc, mn);
        uint64_t wsc, wmn;
        rs_kq_unpack_q4k_words(raw, &wsc, &wmn);
        for (int j = 0; j < 8; j++) {
            assert_int_equal((wsc >> (8 * j)) & 0xff, sc[j]);
            assert_int_equal((wmn >> (8 * j)) & 0xff, mn[j]);
        }
        int8_t s3[16];
        rs_kq_unpack_q3k_scales(raw, s3);
        uint64_t w3[2];
        rs_kq_unpack_q3k_words(raw, w3);
        for (int j = 0; j < 16; j++)
            assert_int_equal((int)((w3[j / 8] >> (8 * (j % 8))) & 0xff) - 32, s3[j]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_q8_0_q8_1), cmocka_unit_test(test_scalar_q8_0p),
        cmocka_unit_test(test_scalar_q8_K),      cmocka_unit_test(test_levels_bit_identical),
        cmocka_unit_test(test_scale_unpacking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

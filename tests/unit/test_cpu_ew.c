/* test_cpu_ew.c — the CPU backend's SwiGLU and RMS-norm row kernels (ew.h) at
 * every SIMD level against float64 references.
 *
 * SwiGLU: g over [-100, 100] plus the edges (0, ±tiny, the exp clamp at
 * ±87/88, ±inf-free large values), lengths with every tail size, and the
 * output aliasing g. Tolerance: 8 ulp relative (2^-20) plus 1e-30 absolute —
 * the exp polynomial is within ~2e-7 relative and silu damps that error,
 * the division and two products add 1.5 ulp; results below ~1e-30 are where
 * exp's clamp and expf's underflow differ (both round to ~0).
 * RMS norm: the sum of squares in double, then float products as documented:
 * within 2 ulp (2^-22 relative) of the float64 value; with a residual, x must
 * become exactly x + y (one float add).
 * to_f16: bit-identical to rs_f32_to_fp16 (itself tested against hand-made
 * values in test_dtype) on specials (±0, ±inf, NaNs, subnormal and overflow
 * edges, rounding ties) and random floats of every magnitude, every tail. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/ew.h"
#include "dtype/fp16.h"

static const char *k_levels[3] = {"scalar", "avx2", "avx512"};

/* Kernels of each available level (n returned). */
static int levels(rs_cpu_ew out[3], const char *names[3]) {
    int n = 0;
    for (int l = 0; l < 3; l++) {
        setenv("RUSTY_SIMD", k_levels[l], 1);
        if (rs_cpu_simd_level() == (rs_simd_level)l) {
            out[n] = rs_cpu_ew_get((rs_simd_level)l);
            names[n++] = k_levels[l];
        } else {
            printf("note: SIMD level %s not available, not tested\n", k_levels[l]);
        }
    }
    unsetenv("RUSTY_SIMD");
    return n;
}

static int g_fail;

static void test_swiglu(void **state) {
    (void)state;
    enum { N = 1000 };
    static const float edges[] = {0.0f,   -0.0f,  1e-30f, -1e-30f, 87.0f,  -87.0f, 88.0f,
                                  -88.0f, 88.5f,  -89.0f, 95.0f,   -95.0f, 1e4f,   -1e4f,
                                  20.0f,  -20.0f, 0.5f,   -0.5f,   1e-38f, 3.0f};
    rs_cpu_ew ew[3];
    const char *names[3];
    int n_lv = levels(ew, names);
    float g[N], u[N], out[N + 1];
    uint64_t s = 42;
    for (int i = 0; i < N; i++) {
        g[i] = i < (int)(sizeof edges / sizeof *edges) ? edges[i] : 100.0f * tu_randf(&s);
        u[i] = i % 7 == 0 ? 1.0f : 4.0f * tu_randf(&s);
    }
    for (int l = 0; l < n_lv; l++)
        for (int n = 0; n <= N; n += n < 40 ? 1 : 321) {
            out[n] = 12345.0f; /* must survive */
            ew[l].swiglu(g, u, out, n);
            for (int i = 0; i < n; i++) {
                double ref = (double)g[i] / (1.0 + exp(-(double)g[i])) * u[i];
                double tol = fabs(ref) * 0x1p-20 + 1e-30;
                if (!(fabs(out[i] - ref) <= tol) && g_fail++ < 10)
                    print_error("%s swiglu n %d: g %.9g u %.9g -> %.9g, want %.9g\n", names[l], n,
                                g[i], u[i], out[i], ref);
            }
            assert_true(out[n] == 12345.0f);
        }
    /* in place (out == g) */
    for (int l = 0; l < n_lv; l++) {
        float gi[N];
        memcpy(gi, g, sizeof gi);
        ew[l].swiglu(gi, u, gi, N);
        for (int i = 0; i < N; i++) {
            double ref = (double)g[i] / (1.0 + exp(-(double)g[i])) * u[i];
            if (!(fabs(gi[i] - ref) <= fabs(ref) * 0x1p-20 + 1e-30) && g_fail++ < 10)
                print_error("%s swiglu in place: element %d\n", names[l], i);
        }
    }
    assert_int_equal(g_fail, 0);
}

static void test_rmsnorm(void **state) {
    (void)state;
    enum { D = 4096 + 7 };
    rs_cpu_ew ew[3];
    const char *names[3];
    int n_lv = levels(ew, names);
    static float x[D], y[D], w[D], xs[D], out[D + 1];
    uint64_t s = 7;
    for (int i = 0; i < D; i++) {
        x[i] = tu_randf(&s) * (i % 97 == 0 ? 50.0f : 1.0f);
        y[i] = tu_randf(&s);
        w[i] = 1.0f + 0.5f * tu_randf(&s);
    }
    static const int dims[] = {1, 7, 16, 17, 64, 4096, D};
    for (int l = 0; l < n_lv; l++)
        for (size_t di = 0; di < sizeof dims / sizeof *dims; di++)
            for (int res = 0; res < 2; res++) {
                int dim = dims[di];
                memcpy(xs, x, sizeof xs);
                out[dim] = 12345.0f;
                ew[l].rmsnorm(xs, res ? y : NULL, w, 1e-5f, dim, out);
                double ss = 0;
                for (int i = 0; i < dim; i++) {
                    float xi = res ? x[i] + y[i] : x[i];
                    /* x + y exactly: one float add, compared bit for bit */
                    // NOLINTNEXTLINE(bugprone-suspicious-memory-comparison)
                    if (memcmp(&xs[i], &xi, sizeof xi) != 0 && g_fail++ < 10)
                        print_error("%s rmsnorm: x[%d] not x + y\n", names[l], i);
                    ss += (double)xi * xi;
                }
                double scale = 1.0 / sqrt(ss / dim + 1e-5);
                for (int i = 0; i < dim; i++) {
                    double ref = (double)xs[i] * scale * w[i];
                    if (!(fabs(out[i] - ref) <= fabs(ref) * 0x1p-22) && g_fail++ < 10)
                        print_error("%s rmsnorm dim %d res %d: out[%d] %.9g want %.9g\n", names[l],
                                    dim, res, i, out[i], ref);
                }
                assert_true(out[dim] == 12345.0f);
            }
    assert_int_equal(g_fail, 0);
}

static void test_to_f16(void **state) {
    (void)state;
    enum { N = 600 };
    static const uint32_t specials[] = {
        0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffc12345u,
        0x477fe000u, 0x477ff000u, 0x477fefffu, 0x38800000u, 0x387fffffu, 0x33000000u, 0x33000001u,
        0x32ffffffu, 0x3f801000u, 0x3f803000u, 0x3f800fffu, 0x00000001u, 0x47800000u};
    rs_cpu_ew ew[3];
    const char *names[3];
    int n_lv = levels(ew, names);
    float x[N];
    uint16_t out[N + 1];
    uint64_t s = 99;
    for (int i = 0; i < N; i++) {
        uint32_t u;
        if (i < (int)(sizeof specials / sizeof *specials)) {
            u = specials[i];
        } else { /* random sign, exponent across the fp16 range and beyond, mantissa */
            uint64_t r = (uint64_t)((tu_randf(&s) + 1) * 1e9) * 2654435761u;
            u = (uint32_t)(r & 0x807fffffu) | (uint32_t)(96 + (r >> 40) % 50) << 23;
        }
        memcpy(&x[i], &u, 4);
    }
    for (int l = 0; l < n_lv; l++)
        for (int n = 0; n <= N; n += n < 40 ? 1 : 280) {
            out[n] = 0x1234;
            ew[l].to_f16(x, out, n);
            for (int i = 0; i < n; i++)
                if (out[i] != rs_f32_to_fp16(x[i]) && g_fail++ < 10)
                    print_error("%s to_f16: %a -> %04x, want %04x\n", names[l], (double)x[i],
                                out[i], rs_f32_to_fp16(x[i]));
            assert_int_equal(out[n], 0x1234);
        }
    assert_int_equal(g_fail, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_to_f16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

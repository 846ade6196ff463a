/* test_cpu_avx512_emu.c — the AVX-512 IQ4_XS kernels (dot_iq4xs_avx512.c, and
 * the packed one in dot_x16_avx512.c) on any x86-64 machine, their intrinsics run
 * by SIMDe's portable implementations.
 *
 * test_cpu_matmul checks the levels the CPU has, so on a machine without
 * AVX-512 (the dev VM this was written on has none) the AVX-512 kernels go
 * untested there. This test compiles the kernels' sources for plain x86-64
 * with SIMDe's native aliases (Debian libsimde-dev) standing in for
 * <immintrin.h>; the intrinsics SIMDe 0.7.4 lacks are modelled below after
 * their documented semantics (the horizontal sum in GCC's order), and the f32
 * FMAs are fused (fmaf), as the hardware's are. The GGUF-layout tile is checked
 * against float64 products of the weights and activations as the dtype module
 * dequantizes them, with test_cpu_matmul's rounding bound, and against the
 * scalar reference tile; the packed tile bit for bit against its scalar
 * reference (dot_x16_ref.c), as test_cpu_matmul demands on AVX-512 hardware.
 * Every tile shape (rows, tokens, decode with and without prefetch), 1, 2 and
 * 17 super-blocks of random bytes (every scale and nibble), and exactly the
 * nr x nc outputs written. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__has_include)
#if __has_include(<simde/x86/avx512.h>) && __has_include(<simde/x86/f16c.h>)
#define EMU_OK 1
#endif
#endif

#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "backend/cpu/packed.h"
#include "dtype/blocks.h"
#include "dtype/dtype.h"
#include "dtype/fp16.h"

#ifdef EMU_OK
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <simde/x86/f16c.h>

/* ---- what SIMDe 0.7.4 lacks ------------------------------------------------- */
static __m512i emu_cvtepi8_epi32(__m128i a) {
    int8_t in[16];
    int32_t out[16];
    memcpy(in, &a, sizeof in);
    for (int i = 0; i < 16; i++) out[i] = in[i];
    __m512i r;
    memcpy(&r, out, sizeof r);
    return r;
}

static __m512 emu_cvtepi32_ps(__m512i a) {
    int32_t in[16];
    float out[16];
    memcpy(in, &a, sizeof in);
    for (int i = 0; i < 16; i++) out[i] = (float)in[i];
    __m512 r;
    memcpy(&r, out, sizeof r);
    return r;
}

static __m512i emu_cvtepu8_epi32(__m128i a) {
    uint8_t in[16];
    int32_t out[16];
    memcpy(in, &a, sizeof in);
    for (int i = 0; i < 16; i++) out[i] = in[i];
    __m512i r;
    memcpy(&r, out, sizeof r);
    return r;
}

static __m512 emu_cvtph_ps(__m256i a) {
    uint16_t in[16];
    float out[16];
    memcpy(in, &a, sizeof in);
    for (int i = 0; i < 16; i++) out[i] = rs_fp16_to_f32(in[i]);
    __m512 r;
    memcpy(&r, out, sizeof r);
    return r;
}

static void emu_mask_storeu_ps(void *p, uint16_t m, __m512 a) {
    float v[16];
    memcpy(v, &a, sizeof v);
    for (int i = 0; i < 16; i++)
        if (m >> i & 1) memcpy((float *)p + i, &v[i], sizeof(float));
}

/* sign -1: fnmadd, -(a b) + c */
static __m512 emu_fma_ps(__m512 a, __m512 b, __m512 c, float sign) {
    float va[16], vb[16], vc[16];
    memcpy(va, &a, sizeof va);
    memcpy(vb, &b, sizeof vb);
    memcpy(vc, &c, sizeof vc);
    for (int i = 0; i < 16; i++) vc[i] = fmaf(sign * va[i], vb[i], vc[i]);
    __m512 r;
    memcpy(&r, vc, sizeof r);
    return r;
}

/* GCC's order: halves of 256, then of 128, then pairs (2, 3) onto (0, 1). */
static float emu_reduce_add_ps(__m512 a) {
    float v[16], t[8], u[4];
    memcpy(v, &a, sizeof v);
    for (int i = 0; i < 8; i++) t[i] = v[i + 8] + v[i];
    for (int i = 0; i < 4; i++) u[i] = t[i + 4] + t[i];
    return (u[0] + u[2]) + (u[1] + u[3]);
}

typedef simde__mmask16 __mmask16; /* SIMDe names the type but not its alias */
#undef _mm512_fmadd_ps
#undef _mm512_fnmadd_ps
#define _mm512_cvtepi8_epi32(a)        emu_cvtepi8_epi32(a)
#define _mm512_cvtepu8_epi32(a)        emu_cvtepu8_epi32(a)
#define _mm512_cvtepi32_ps(a)          emu_cvtepi32_ps(a)
#define _mm512_cvtph_ps(a)             emu_cvtph_ps(a)
#define _mm512_mask_storeu_ps(p, m, a) emu_mask_storeu_ps(p, m, a)
#define _mm512_fmadd_ps(a, b, c)       emu_fma_ps(a, b, c, 1.0f)
#define _mm512_fnmadd_ps(a, b, c)      emu_fma_ps(a, b, c, -1.0f)
#define _mm512_reduce_add_ps(a)        emu_reduce_add_ps(a)
#define _cvtsh_ss(h)                   rs_fp16_to_f32(h)
#define _IMMINTRIN_H_INCLUDED          /* SIMDe's aliases take its place */

/* the kernels under test, under names of their own; both files name their tile
 * geometry MR, NC, MR1, so the first one's get names of their own too */
#define rs_cpu_kernel_iq4_xs_avx512 emu_kernel_iq4_xs_avx512
#define MR                          XS_MR
#define NC                          XS_NC
#define MR1                         XS_MR1
#include "../../src/backend/cpu/dot_iq4xs_avx512.c"
#undef MR
#undef NC
#undef MR1
#define rs_cpu_kernel_q8_0_x16_avx512   emu_kernel_q8_0_x16_avx512
#define rs_cpu_kernel_q4_0_x16_avx512   emu_kernel_q4_0_x16_avx512
#define rs_cpu_kernel_iq4_nl_x16_avx512 emu_kernel_iq4_nl_x16_avx512
#define rs_cpu_kernel_q4_K_x16_avx512   emu_kernel_q4_K_x16_avx512
#define rs_cpu_kernel_q5_K_x16_avx512   emu_kernel_q5_K_x16_avx512
#define rs_cpu_kernel_q6_K_x16_avx512   emu_kernel_q6_K_x16_avx512
#define rs_cpu_kernel_iq4_xs_x16_avx512 emu_kernel_iq4_xs_x16_avx512
#include "../../src/backend/cpu/dot_x16_avx512.c"

/* ---- the test -------------------------------------------------------------- */

enum { N_OUT = 7, N_TOK = 5, YS = N_OUT + 2 }; /* YS: two poisoned columns per token */

static int g_fail;

/* Expected y[t][o] (float64) and its bound: test_cpu_matmul's 2 (blocks + 32)
 * 2^-24 sum |w x̂|, the kernels' f32 rounding. */
typedef struct {
    double ref, tol;
} expect;

static void check_tiles(const rs_cpu_kernel *k, int64_t n, const uint8_t *w, size_t ws,
                        const uint8_t *x, size_t xs, const expect *ex, bool decode) {
    const rs_cpu_kernel *ref = &rs_cpu_kernel_iq4_xs_ref;
    const int mr = decode ? k->mr1 : k->mr, ntok = decode ? 1 : N_TOK;
    for (int nr = 1; nr <= mr; nr++)
        for (int nc = 1; nc <= (decode ? 1 : k->nc); nc++) {
            float y[N_TOK * YS], yr[N_TOK * YS];
            for (int i = 0; i < N_TOK * YS; i++) y[i] = yr[i] = NAN;
            /* rows o0.. and tokens 0.. of the tile: the last row block ends the matrix */
            const int o0 = N_OUT - nr;
            k->tile(n, w + (size_t)o0 * ws, ws, nr, x, xs, nc, y + o0, YS);
            ref->tile(n, w + (size_t)o0 * ws, ws, nr, x, xs, nc, yr + o0, YS);
            for (int t = 0; t < ntok; t++)
                for (int o = 0; o < YS; o++) {
                    const int i = t * YS + o;
                    const bool valid = t < nc && o >= o0 && o < N_OUT;
                    bool ok = !valid && isnan(y[i]);
                    if (valid) {
                        const expect *e = &ex[t * N_OUT + o];
                        ok = fabs(y[i] - e->ref) <= e->tol && fabs(y[i] - yr[i]) <= 2 * e->tol;
                    }
                    if (!ok && g_fail++ < 10)
                        print_error("IQ4_XS AVX-512 (emulated) n %lld nr %d nc %d%s: y[%d][%d] "
                                    "%.9g, scalar %.9g, float64 %.9g\n",
                                    (long long)n, nr, nc, decode ? " decode" : "", t, o, y[i],
                                    yr[i], valid ? ex[t * N_OUT + o].ref : NAN);
                }
        }
}

static void test_iq4xs_emulated(void **state) {
    (void)state;
    static const int nsbs[3] = {1, 2, 17};
    uint64_t s = 4242;
    for (int si = 0; si < 3; si++) {
        const int64_t n = QK_K * (int64_t)nsbs[si];
        const size_t ws = (size_t)nsbs[si] * sizeof(block_iq4_xs),
                     xs = (size_t)nsbs[si] * sizeof(block_q8_K);
        uint8_t *w = malloc(ws * N_OUT), *x = malloc(xs * N_TOK);
        float *f = malloc(sizeof(float) * (size_t)n), *wf = malloc(sizeof(float) * (size_t)n);
        float *xf = malloc(sizeof(float) * (size_t)(n * N_TOK));
        expect *ex = malloc(sizeof(expect) * N_OUT * N_TOK);
        assert_true(w && x && f && wf && xf && ex);
        /* random bytes with d of either sign, 2^-9..2^-5 */
        for (size_t i = 0; i < ws * N_OUT; i++) w[i] = (uint8_t)(tu_randf(&s) * 128 + 128);
        for (size_t b = 0; b < (size_t)nsbs[si] * N_OUT; b++) {
            float d = ldexpf(1.0f + 0.5f * tu_randf(&s), -5 - (int)((tu_randf(&s) + 1) * 2.4f));
            uint16_t h = rs_f32_to_fp16(tu_randf(&s) < 0 ? -d : d);
            memcpy(w + b * sizeof(block_iq4_xs), &h, 2);
        }
        /* activations with an outlier every 37 and an all-zero token 1 (d = 0) */
        for (int t = 0; t < N_TOK; t++) {
            for (int64_t i = 0; i < n; i++)
                f[i] = t == 1 ? 0 : tu_randf(&s) * (i % 37 == 5 ? 8.0f : 1.0f);
            rs_cpu_quant_q8_K_ref(f, x + (size_t)t * xs, n);
            rs_dtype_get(RS_DTYPE_Q8_K)->to_f32(x + (size_t)t * xs, xf + t * n, n);
        }
        for (int o = 0; o < N_OUT; o++) {
            rs_dtype_get(RS_DTYPE_IQ4_XS)->to_f32(w + (size_t)o * ws, wf, n);
            for (int t = 0; t < N_TOK; t++) {
                double ref = 0, S = 0;
                for (int64_t i = 0; i < n; i++) {
                    ref += (double)wf[i] * xf[t * n + i];
                    S += fabs((double)wf[i] * xf[t * n + i]);
                }
                ex[t * N_OUT + o] = (expect){ref, 2.0 * (double)(nsbs[si] + 32) * 0x1p-24 * S};
            }
        }
        check_tiles(&emu_kernel_iq4_xs_avx512, n, w, ws, x, xs, ex, false);
        check_tiles(&emu_kernel_iq4_xs_avx512, n, w, ws, x, xs, ex, true);
        free(w);
        free(x);
        free(f);
        free(wf);
        free(xf);
        free(ex);
    }
    assert_int_equal(g_fail, 0);
}

/* ---- the packed layout ---------------------------------------------------- */

enum { X_OUT = 37, X_TOK = 9, X_YS = 49 }; /* 3 groups, the last partial; X_YS > 48 rows */

/* Tiles from group g0 of the packed p: every (nr, nc) the kernel takes, the
 * decode tile with and without software prefetch, bit for bit as the scalar
 * reference tile, and nothing outside the tile written. */
static void check_x16(const uint8_t *p, size_t gs, int64_t n, const uint8_t *x, size_t xs, int g0) {
    const rs_cpu_kernel *k = &emu_kernel_iq4_xs_x16_avx512, *ref = &rs_cpu_kernel_iq4_xs_x16_ref;
    static const int nrs[5] = {1, 7, 16, 21, 32};
    for (int hw = 0; hw < 2; hw++)
        for (int nc = 1; nc <= (hw ? 1 : k->nc); nc++)
            for (int ri = 0; ri < 5; ri++) {
                const int nr = nrs[ri];
                if (nr > (nc == 1 ? k->mr1 : k->mr)) continue;
                float y[X_TOK * X_YS], yr[X_TOK * X_YS];
                for (int i = 0; i < X_TOK * X_YS; i++) y[i] = yr[i] = NAN;
                const uint8_t *w = p + (size_t)g0 * gs;
                (hw ? k->tile1_hw : k->tile)(n, w, gs, nr, x, xs, nc, y, X_YS);
                ref->tile(n, w, gs, nr, x, xs, nc, yr, X_YS);
                for (int i = 0; i < X_TOK * X_YS; i++) {
                    const int t = i / X_YS, r = i % X_YS;
                    const bool ok =
                        t < nc && r < nr ? memcmp(&y[i], &yr[i], sizeof(float)) == 0 : isnan(y[i]);
                    if (!ok && g_fail++ < 10)
                        print_error(
                            "packed IQ4_XS AVX-512 (emulated) n %lld group %d nr %d nc %d%s: "
                            "y[%d][%d] %.9g, scalar %.9g\n",
                            (long long)n, g0, nr, nc, hw ? " (hw prefetch)" : "", t, r, y[i],
                            yr[i]);
                }
            }
}

static void test_iq4xs_x16_emulated(void **state) {
    (void)state;
    static const int nsbs[3] = {1, 2, 17};
    uint64_t s = 777;
    for (int si = 0; si < 3; si++) {
        const int64_t n = QK_K * (int64_t)nsbs[si], groups = (X_OUT + 15) / 16;
        const size_t row = (size_t)nsbs[si] * sizeof(block_iq4_xs),
                     gs = rs_cpu_pack_group_bytes(RS_DTYPE_IQ4_XS, n),
                     xs = (size_t)(n / 32) * sizeof(rs_block_q8_0p);
        uint8_t *w = malloc(row * X_OUT), *x = malloc(xs * X_TOK);
        uint8_t *p = aligned_alloc(64, rs_cpu_pack_size(RS_DTYPE_IQ4_XS, X_OUT, n));
        float *f = malloc(sizeof(float) * (size_t)n);
        assert_true(w && x && p && f);
        for (size_t i = 0; i < row * X_OUT; i++) w[i] = (uint8_t)(tu_randf(&s) * 128 + 128);
        for (size_t b = 0; b < (size_t)nsbs[si] * X_OUT; b++) {
            float d = ldexpf(1.0f + 0.5f * tu_randf(&s), -5 - (int)((tu_randf(&s) + 1) * 2.4f));
            uint16_t h = rs_f32_to_fp16(tu_randf(&s) < 0 ? -d : d);
            memcpy(w + b * sizeof(block_iq4_xs), &h, 2);
        }
        rs_cpu_pack_groups(RS_DTYPE_IQ4_XS, w, X_OUT, n, p, 0, groups);
        for (int t = 0; t < X_TOK; t++) {
            for (int64_t i = 0; i < n; i++)
                f[i] = t == 1 ? 0 : tu_randf(&s) * (i % 37 == 5 ? 8.0f : 1.0f);
            rs_cpu_quant_q8_0p_ref(f, x + (size_t)t * xs, n);
        }
        for (int g0 = 0; g0 < 2; g0++) check_x16(p, gs, n, x, xs, g0);
        free(w);
        free(x);
        free(p);
        free(f);
    }
    assert_int_equal(g_fail, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iq4xs_emulated),
        cmocka_unit_test(test_iq4xs_x16_emulated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else
int main(void) {
    printf("SKIP: the AVX-512 emulation test needs GCC on x86-64 and SIMDe (libsimde-dev)\n");
    return 77;
}
#endif

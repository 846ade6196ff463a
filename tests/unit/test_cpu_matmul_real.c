/* test_cpu_matmul_real.c — rs_cpu_matmul on real trained weights.
 *
 * Every 2-D tensor of TinyStories-656K as quantized by llama.cpp (Q8_0, IQ4_NL
 * in the "Q2_K" file) and as F16 is multiplied with random activations at
 * every SIMD level, decode and prompt shapes, and compared with a float64
 * product of the weights dequantized by the dtype module and the activations
 * as quantized (X̂, read back with the dtype module). Only f32 rounding
 * separates the two: |err| <= 2 * (blocks + 32) * 2^-24 * sum |w| |x̂|
 * (blocks = elements for F16), the same bound as test_cpu_matmul. The Q8_0
 * matrices are also run packed into the x16 layout (packed.h). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/packed.h"
#include "core/cpu.h"
#include "dtype/dtype.h"
#include "io/gguf.h"

enum { N_TOK = 17 }; /* decode, a VNNI tile edge, an AMX tile + 1 */

static int g_fail;

static rs_cpu_act companion(rs_dtype t) {
    int64_t block;
    size_t bytes;
    rs_cpu_act act = RS_CPU_ACT_F32;
    rs_cpu_weight_info(t, &block, &bytes, &act);
    return act;
}

/* X̂ as doubles: the scalar quantizer's output read back by the dtype module. */
static void dequant_x(rs_cpu_act act, const float *x, int64_t n_in, double *xh) {
    static const rs_dtype as_type[] = {RS_DTYPE_F32, RS_DTYPE_Q8_0, RS_DTYPE_Q8_1, RS_DTYPE_Q8_K};
    float *row = malloc(sizeof(float) * (size_t)n_in);
    uint8_t *q = malloc((size_t)n_in * 2 + 64);
    assert_true(row && q);
    for (int t = 0; t < N_TOK; t++) {
        if (act == RS_CPU_ACT_F32) {
            memcpy(row, x + t * n_in, sizeof(float) * (size_t)n_in);
        } else {
            rs_cpu_quant_get(act, RS_SIMD_SCALAR)(x + t * n_in, q, n_in);
            rs_dtype_get(as_type[act])->to_f32(q, row, n_in);
        }
        for (int64_t i = 0; i < n_in; i++) xh[t * n_in + i] = row[i];
    }
    free(row);
    free(q);
}

static void check_tensor(const rs_tensor_info *ti, const rs_simd_level *lv, int n_lv) {
    int64_t n_in = ti->ne[0], n_out = ti->ne[1];
    const rs_dtype_traits *tr = rs_dtype_get(ti->type);
    size_t row_bytes = (size_t)ti->nbytes / (size_t)n_out;
    float *x = malloc(sizeof(float) * (size_t)(N_TOK * n_in));
    double *xh = malloc(sizeof(double) * (size_t)(N_TOK * n_in));
    double *ref = calloc((size_t)(N_TOK * n_out), sizeof(double));
    double *tol = calloc((size_t)(N_TOK * n_out), sizeof(double));
    float *wrow = malloc(sizeof(float) * (size_t)n_in);
    float *y = malloc(sizeof(float) * (size_t)(N_TOK * n_out));
    assert_true(x && xh && ref && tol && wrow && y);
    uint64_t s = 77;
    for (int64_t i = 0; i < N_TOK * n_in; i++) x[i] = tu_randf(&s) * (i % 19 == 0 ? 6.0f : 1.0f);
    dequant_x(companion(ti->type), x, n_in, xh);
    int64_t n_terms = (tr->block_size == 1 ? n_in : n_in / tr->block_size) + 32;
    for (int64_t o = 0; o < n_out; o++) {
        tr->to_f32((const uint8_t *)ti->data + (size_t)o * row_bytes, wrow, n_in);
        for (int t = 0; t < N_TOK; t++) {
            double acc = 0, mag = 0;
            for (int64_t i = 0; i < n_in; i++) {
                acc += (double)wrow[i] * xh[t * n_in + i];
                mag += fabs((double)wrow[i] * xh[t * n_in + i]);
            }
            ref[t * n_out + o] = acc;
            tol[t * n_out + o] = 2.0 * (double)n_terms * 0x1p-24 * mag;
        }
    }
    static const int ntoks[3] = {1, 5, N_TOK};
    bool packable = rs_cpu_pack_supports(ti->type) && n_in % 32 == 0;
    uint8_t *packed = NULL;
    if (packable) {
        packed = aligned_alloc(64, rs_cpu_pack_size(ti->type, n_out, n_in));
        assert_non_null(packed);
        rs_cpu_pack_groups(ti->type, ti->data, n_out, n_in, packed, 0,
                           (n_out + RS_CPU_PACK_ROWS - 1) / RS_CPU_PACK_ROWS);
    }
    for (int lay = 0; lay < (packable ? 2 : 1); lay++) {
        rs_cpu_matmul_w mw = {ti->type, lay ? packed : ti->data,
                              n_out,    y,
                              n_out,    lay ? RS_CPU_LAYOUT_X16 : RS_CPU_LAYOUT_GGUF};
        size_t ss = rs_cpu_matmul_scratch_size(&mw, 1, n_in, N_TOK);
        void *scratch = malloc(ss + 1);
        for (int l = 0; l < n_lv; l++)
            for (int k = 0; k < 3; k++) {
                int nt = ntoks[k];
                for (int64_t i = 0; i < N_TOK * n_out; i++) y[i] = NAN;
                rs_cpu_matmul_in in = {x, n_in, n_in, nt, lv[l], scratch, ss, false};
                rs_error err = {0};
                assert_int_equal(rs_cpu_matmul(NULL, &in, &mw, &err), RS_OK);
                for (int64_t i = 0; i < nt * n_out; i++)
                    if (!(fabs(y[i] - ref[i]) <= tol[i]) && g_fail++ < 10)
                        print_error("%s (%s%s) %s n_tok %d: y[%lld] = %.9g, float64 %.9g (tol "
                                    "%.3g)\n",
                                    ti->name, tr->name, lay ? ", packed" : "",
                                    rs_simd_level_name(lv[l]), nt, (long long)i, y[i], ref[i],
                                    tol[i]);
            }
        free(scratch);
    }
    free(packed);
    free(x);
    free(xh);
    free(ref);
    free(tol);
    free(wrow);
    free(y);
}

static void run_file(const char *rel) {
    const char *path = tu_shared_or_skip(rel);
    rs_gguf g;
    rs_error err = {0};
    if (rs_gguf_open(&g, path, &err) != RS_OK) fail_msg("%s: %s", path, err.msg);
    static const char *names[4] = {"scalar", "avx2", "avx512", "amx"};
    rs_simd_level lv[4];
    int n_lv = 0;
    for (int l = 0; l < 4; l++) {
        setenv("RUSTY_SIMD", names[l], 1);
        if (rs_cpu_simd_level() == (rs_simd_level)l) lv[n_lv++] = (rs_simd_level)l;
    }
    unsetenv("RUSTY_SIMD");
    int checked = 0;
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const rs_tensor_info *ti = &g.tensors[i];
        if (ti->n_dims != 2 || !ti->data || !rs_cpu_matmul_supports(ti->type)) continue;
        check_tensor(ti, lv, n_lv);
        checked++;
    }
    printf("%s: %d matrices checked at %d SIMD levels\n", rel, checked, n_lv);
    assert_true(checked >= 7);
    rs_gguf_close(&g);
    assert_int_equal(g_fail, 0);
}

static void test_q8_0(void **state) {
    (void)state;
    run_file("models/tinystories-656k-q8_0.gguf");
}

static void test_iq4_nl(void **state) {
    (void)state;
    run_file("models/TinyStories-656K-Q2_K.gguf");
}

static void test_f16(void **state) {
    (void)state;
    run_file("models/TinyStories-656K.f16.gguf");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q8_0),
        cmocka_unit_test(test_iq4_nl),
        cmocka_unit_test(test_f16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

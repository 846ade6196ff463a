/* test_cpu_matmul.c — rs_cpu_matmul for every weight type at every SIMD level.
 *
 * Weights are random bytes (so every bit pattern of the quantized values
 * occurs) with sane fp16 scales; they are dequantized with the dtype module's
 * reference to_f32, and outputs are checked against float64 dot products:
 *  - against W·X̂, X̂ = the activations as quantized (read back with the dtype
 *    module's Q8_0/Q8_1/Q8_K to_f32): only f32 rounding separates them, so the
 *    tolerance is a summation bound (see tol_round);
 *  - against W·X with the original f32 activations: the tolerance adds the
 *    activation quantization error, |x - x̂| <= step/2 per element (tol_act);
 *  - every level against the scalar level.
 * Outputs are poisoned with NaN (including the gaps of the row stride) so
 * unwritten and overwritten elements are caught. Thread counts 1..3 must give
 * bit-identical results, and the multi-weight call must equal separate calls.
 * Q4_0, IQ4_NL, Q8_0, the K-quants Q4_K-Q6_K and IQ4_XS run in the packed x16 layout
 * too (packed.h): packing must round-trip, and the packed products meet the same
 * references (the 32-element types bit-identical to the GGUF layout at the scalar
 * level, which does the same arithmetic). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/packed.h"
#include "backend/cpu/threadpool.h"
#include "core/cpu.h"
#include "dtype/blocks.h"
#include "dtype/dtype.h"
#include "dtype/fp16.h"

static const rs_dtype k_types[] = {
    RS_DTYPE_F32,  RS_DTYPE_F16,  RS_DTYPE_BF16, RS_DTYPE_Q8_0,   RS_DTYPE_Q4_0,
    RS_DTYPE_Q4_1, RS_DTYPE_Q5_0, RS_DTYPE_Q5_1, RS_DTYPE_IQ4_NL, RS_DTYPE_Q2_K,
    RS_DTYPE_Q3_K, RS_DTYPE_Q4_K, RS_DTYPE_Q5_K, RS_DTYPE_Q6_K,   RS_DTYPE_IQ4_XS,
};
enum { N_TYPES = sizeof k_types / sizeof k_types[0] };
static const int k_ntoks[] = {1, 2, 3, 5, 17};
enum { MAX_TOK = 17, X_PAD = 5, Y_PAD = 3 };

/* ---- random data ---------------------------------------------------------- */

static uint64_t rng_u64(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Byte offsets of the fp16 scale fields in a block (d, and m / dmin if any). */
static int f16_fields(rs_dtype t, int off[2]) {
    switch (t) {
    case RS_DTYPE_Q4_0:
    case RS_DTYPE_Q5_0:
    case RS_DTYPE_Q8_0:
    case RS_DTYPE_IQ4_NL:
    case RS_DTYPE_IQ4_XS:
        off[0] = 0;
        return 1;
    case RS_DTYPE_Q4_1:
    case RS_DTYPE_Q5_1:
    case RS_DTYPE_Q4_K:
    case RS_DTYPE_Q5_K:
        off[0] = 0;
        off[1] = 2;
        return 2;
    case RS_DTYPE_Q2_K:
        off[0] = 80;
        off[1] = 82;
        return 2;
    case RS_DTYPE_Q3_K:
        off[0] = 108;
        return 1;
    case RS_DTYPE_Q6_K:
        off[0] = 208;
        return 1;
    default:
        return 0;
    }
}

/* Random weights: floats in [-1, 1), or random block bytes with scales of
 * magnitude 2^-9..2^-5 and either sign. */
static uint8_t *gen_weights(rs_dtype t, int64_t n_out, int64_t n_in, uint64_t seed,
                            size_t *row_bytes) {
    const rs_dtype_traits *tr = rs_dtype_get(t);
    assert_non_null(tr);
    assert_true(rs_dtype_row_size(t, n_in, row_bytes));
    size_t total = *row_bytes * (size_t)n_out;
    uint8_t *w = malloc(total);
    assert_non_null(w);
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    if (t == RS_DTYPE_F32 || t == RS_DTYPE_F16 || t == RS_DTYPE_BF16) {
        for (int64_t i = 0; i < n_out * n_in; i++) {
            float v = tu_randf(&s);
            if (t == RS_DTYPE_F32) memcpy(w + 4 * i, &v, 4);
            uint16_t h = t == RS_DTYPE_F16 ? rs_f32_to_fp16(v) : rs_f32_to_bf16(v);
            if (t != RS_DTYPE_F32) memcpy(w + 2 * i, &h, 2);
        }
        return w;
    }
    for (size_t i = 0; i < total; i++) w[i] = (uint8_t)(rng_u64(&s) >> 32);
    int off[2];
    int nf = f16_fields(t, off);
    for (size_t b = 0; b < total / tr->type_size; b++)
        for (int f = 0; f < nf; f++) {
            float mag = ldexpf(1.0f + 0.5f * tu_randf(&s), -5 - (int)(rng_u64(&s) % 5));
            uint16_t h = rs_f32_to_fp16((rng_u64(&s) & 1) ? mag : -mag);
            memcpy(w + b * tr->type_size + (size_t)off[f], &h, 2);
        }
    return w;
}

/* Activations in [-1, 1) with an outlier every 37 elements (scales then differ
 * between blocks) and an all-zero first block in token 1 (d = 0 path). */
static float *gen_x(int64_t n_tok, int64_t n_in, int64_t stride, uint64_t seed) {
    float *x = malloc(sizeof(float) * (size_t)(n_tok * stride));
    assert_non_null(x);
    uint64_t s = seed + 12345;
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t i = 0; i < stride; i++) {
            float v = tu_randf(&s);
            if (i % 37 == 5) v *= 8;
            if (t == 1 && i < 32) v = 0;
            x[t * stride + i] = i < n_in ? v : NAN; /* the gap must not be read */
        }
    return x;
}

/* ---- float64 references --------------------------------------------------- */

typedef struct {
    double ref_q, ref_x; /* W·X̂ and W·X */
    double tol_q, tol_x;
} expect;

static rs_dtype companion(rs_dtype t) {
    switch (t) {
    case RS_DTYPE_F32:
    case RS_DTYPE_F16:
    case RS_DTYPE_BF16:
        return RS_DTYPE_F32;
    case RS_DTYPE_Q4_1:
    case RS_DTYPE_Q5_1:
        return RS_DTYPE_Q8_1;
    case RS_DTYPE_Q2_K:
    case RS_DTYPE_Q3_K:
    case RS_DTYPE_Q4_K:
    case RS_DTYPE_Q5_K:
    case RS_DTYPE_Q6_K:
    case RS_DTYPE_IQ4_XS:
        return RS_DTYPE_Q8_K;
    default:
        return RS_DTYPE_Q8_0;
    }
}

/* X̂ = the activations quantized by the scalar quantizer (bit-identical at
 * every level, see test_cpu_quant, which also checks |x - x̂| <= step/2) and
 * read back with the dtype module's to_f32. For float weights X̂ = X. */
static void quantized_x(rs_dtype ct, const float *x, int64_t stride, int64_t n_tok, int64_t n_in,
                        double *xh) {
    float *row = malloc(sizeof(float) * (size_t)n_in);
    size_t qbytes;
    assert_true(rs_dtype_row_size(ct, n_in, &qbytes));
    void *q = malloc(qbytes);
    assert_true(row && q);
    rs_cpu_act act = ct == RS_DTYPE_Q8_0   ? RS_CPU_ACT_Q8_0
                     : ct == RS_DTYPE_Q8_1 ? RS_CPU_ACT_Q8_1
                                           : RS_CPU_ACT_Q8_K;
    for (int64_t t = 0; t < n_tok; t++) {
        if (ct == RS_DTYPE_F32) {
            memcpy(row, x + t * stride, sizeof(float) * (size_t)n_in);
        } else {
            rs_cpu_quant_get(act, RS_SIMD_SCALAR)(x + t * stride, q, n_in);
            rs_dtype_get(ct)->to_f32(q, row, n_in);
        }
        for (int64_t i = 0; i < n_in; i++) xh[t * n_in + i] = row[i];
    }
    free(row);
    free(q);
}

/* Magnitude bound on the parts a kernel sums for element i of a weight block
 * whose dequantized value is w: types with a min term compute d*sc*q and
 * dmin*m separately (|d*sc*q| <= |w| + |min|), the min is at most 63*|dmin|
 * (K-quants: 6-bit mins) or |m| (Q4_1, Q5_1). */
static double part_bound(rs_dtype t, const uint8_t *block, double w) {
    int off[2];
    if (f16_fields(t, off) < 2) return fabs(w);
    uint16_t h;
    memcpy(&h, block + off[1], 2);
    double mn =
        fabs((double)rs_fp16_to_f32(h)) * (t == RS_DTYPE_Q4_1 || t == RS_DTYPE_Q5_1 ? 1 : 63);
    return fabs(w) + 2 * mn;
}

/* Expected value and tolerances for output (t, o).
 * tol_q, f32 rounding: the kernels form at most n_terms = (blocks, or elements
 * for float weights) + 32 (lane reduction, scale products) rounded sums of
 * parts bounded by part_bound, so |err| <= 2 * n_terms * 2^-24 * S (S the sum
 * of part bounds times |x̂|). Q8_1 adds the fp16 rounding of s = d*sum(q):
 * relative 2^-10 of sum |x̂| per block, times |m|.
 * tol_x adds the activation quantization: sum |w_i| * step_b / 2 with step_b
 * = amax_b / 127 grown by the fp16 rounding of the stored scale (2^-10;
 * 2^-20 for Q8_K's f32 scale). */
static expect expect_one(rs_dtype t, rs_dtype ct, const uint8_t *wrow, const double *wd,
                         const float *x, const double *xh, int64_t n_in) {
    const rs_dtype_traits *tr = rs_dtype_get(t);
    int64_t wblk = tr->block_size, ablk = rs_dtype_get(ct)->block_size;
    expect e = {0, 0, 0, 0};
    double S = 0, act = 0, s_err = 0;
    for (int64_t i = 0; i < n_in; i++) {
        const uint8_t *blk = wrow + (size_t)(i / wblk) * tr->type_size;
        e.ref_q += wd[i] * xh[i];
        e.ref_x += wd[i] * (double)x[i];
        S += part_bound(t, blk, wd[i]) * fabs(xh[i]);
    }
    if (ct != RS_DTYPE_F32) {
        double grow = ct == RS_DTYPE_Q8_K ? 0x1p-20 : 0x1p-10;
        for (int64_t b = 0; b < n_in / ablk; b++) {
            double amax = 0, sx = 0, sw = 0;
            for (int64_t i = b * ablk; i < (b + 1) * ablk; i++) {
                amax = fmax(amax, fabs((double)x[i]));
                sx += fabs(xh[i]);
                sw += fabs(wd[i]);
            }
            act += sw * amax / 127 * (1 + grow) / 2;
            if (ct == RS_DTYPE_Q8_1) {
                uint16_t h;
                memcpy(&h, wrow + (size_t)b * tr->type_size + 2, 2);
                s_err += fabs((double)rs_fp16_to_f32(h)) * sx * 0x1p-10;
            }
        }
    }
    /* the packed Q4_K kernels (Q8_0 activations) add two terms per 32 elements */
    int64_t n_terms = (wblk == 1 ? n_in : ablk < wblk ? 2 * n_in / ablk : n_in / wblk) + 32;
    e.tol_q = 2.0 * (double)n_terms * 0x1p-24 * S + s_err;
    e.tol_x = e.tol_q + act;
    return e;
}

/* One weight matrix with its float64 view and expected outputs for MAX_TOK tokens. */
typedef struct {
    rs_dtype t;
    int64_t n_in, n_out;
    uint8_t *w;
    size_t row_bytes;
    expect *ex;        /* [MAX_TOK][n_out] */
    expect *ex_packed; /* the same for the packed layout where its activations differ (Q4_K:
                        * Q8_0 against Q8_K), else NULL */
} fixture;

static void fixture_init(fixture *f, rs_dtype t, int64_t n_out, int64_t n_in, const float *x,
                         int64_t stride, uint64_t seed) {
    f->t = t;
    f->n_in = n_in;
    f->n_out = n_out;
    f->w = gen_weights(t, n_out, n_in, seed, &f->row_bytes);
    double *wd = malloc(sizeof(double) * (size_t)n_in);
    double *xh = malloc(sizeof(double) * (size_t)(MAX_TOK * n_in));
    float *row = malloc(sizeof(float) * (size_t)n_in);
    f->ex = malloc(sizeof(expect) * (size_t)(MAX_TOK * n_out));
    assert_true(wd && xh && row && f->ex);
    /* the packed kernels quantize activations as Q8_0 (rs_block_q8_0p's values) */
    const bool own_packed = rs_cpu_pack_supports(t) && companion(t) != RS_DTYPE_Q8_0;
    f->ex_packed = own_packed ? malloc(sizeof(expect) * (size_t)(MAX_TOK * n_out)) : NULL;
    for (int pass = 0; pass < (own_packed ? 2 : 1); pass++) {
        const rs_dtype ct = pass ? RS_DTYPE_Q8_0 : companion(t);
        expect *ex = pass ? f->ex_packed : f->ex;
        assert_non_null(ex);
        quantized_x(ct, x, stride, MAX_TOK, n_in, xh);
        for (int64_t o = 0; o < n_out; o++) {
            const uint8_t *wrow = f->w + (size_t)o * f->row_bytes;
            rs_dtype_get(t)->to_f32(wrow, row, n_in);
            for (int64_t i = 0; i < n_in; i++) wd[i] = row[i];
            for (int64_t tk = 0; tk < MAX_TOK; tk++)
                ex[tk * n_out + o] =
                    expect_one(t, ct, wrow, wd, x + tk * stride, xh + tk * n_in, n_in);
        }
    }
    free(wd);
    free(xh);
    free(row);
}

static void fixture_free(fixture *f) {
    free(f->w);
    free(f->ex);
    free(f->ex_packed);
}

/* ---- running and checking ------------------------------------------------- */

static float *poisoned(int64_t n_tok, int64_t stride) {
    float *y = malloc(sizeof(float) * (size_t)(n_tok * stride));
    assert_non_null(y);
    for (int64_t i = 0; i < n_tok * stride; i++) y[i] = NAN;
    return y;
}

static void *g_scratch;
static size_t g_scratch_size;

static void *scratch_for(const rs_cpu_matmul_w *ws, int n, int64_t n_in, int64_t n_tok,
                         size_t *size) {
    *size = rs_cpu_matmul_scratch_size(ws, n, n_in, n_tok);
    if (*size > g_scratch_size) {
        free(g_scratch);
        g_scratch = malloc(*size);
        g_scratch_size = *size;
        assert_non_null(g_scratch);
    }
    return g_scratch;
}

/* The fixture's weights packed into the x16 layout (64-byte aligned, with the
 * padding poisoned with 0xA5 except what packing writes). */
static uint8_t *packed_copy(const fixture *f) {
    size_t bytes = rs_cpu_pack_size(f->t, f->n_out, f->n_in);
    assert_true(bytes > 0);
    uint8_t *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    assert_non_null(p);
    memset(p, 0xA5, bytes);
    rs_cpu_pack_groups(f->t, f->w, f->n_out, f->n_in, p, 0,
                       (f->n_out + RS_CPU_PACK_ROWS - 1) / RS_CPU_PACK_ROWS);
    return p;
}

/* Y for the first n_tok tokens at a level, on pool tp (NULL: caller only);
 * packed: the weights in the x16 layout (from packed_copy); hw: decode tiles
 * without software prefetch where the kernel has them. */
static float *run_mm_opts(rs_threadpool *tp, const fixture *f, const uint8_t *packed,
                          const float *x, int64_t stride, int64_t n_tok, rs_simd_level level,
                          bool hw) {
    float *y = poisoned(n_tok, f->n_out + Y_PAD);
    rs_cpu_matmul_w w = {
        f->t, packed ? packed : f->w, f->n_out,
        y,    f->n_out + Y_PAD,       packed ? RS_CPU_LAYOUT_X16 : RS_CPU_LAYOUT_GGUF};
    rs_cpu_matmul_in in = {x, stride, f->n_in, n_tok, level, NULL, 0, hw};
    in.scratch = scratch_for(&w, 1, f->n_in, n_tok, &in.scratch_size);
    rs_error err = {0};
    rs_status st = rs_cpu_matmul(tp, &in, &w, &err);
    if (st != RS_OK) fail_msg("matmul %s: %s", rs_dtype_name(f->t), err.msg);
    return y;
}

static float *run_mm_layout(rs_threadpool *tp, const fixture *f, const uint8_t *packed,
                            const float *x, int64_t stride, int64_t n_tok, rs_simd_level level) {
    return run_mm_opts(tp, f, packed, x, stride, n_tok, level, false);
}

static float *run_mm(rs_threadpool *tp, const fixture *f, const float *x, int64_t stride,
                     int64_t n_tok, rs_simd_level level) {
    return run_mm_layout(tp, f, NULL, x, stride, n_tok, level);
}

static int g_failures;

/* Checks Y against the float64 references; the stride gaps must still be NaN. */
/* y of the weights in the GGUF layout, or (packed) in the x16 one. */
static void check_y_as(const fixture *f, const float *y, int64_t n_tok, const char *what,
                       bool packed) {
    const expect *ex = packed && f->ex_packed ? f->ex_packed : f->ex;
    for (int64_t t = 0; t < n_tok; t++) {
        for (int64_t o = 0; o < f->n_out + Y_PAD; o++) {
            float v = y[t * (f->n_out + Y_PAD) + o];
            if (o >= f->n_out) {
                if (!isnan(v) && g_failures++ < 10)
                    print_error("%s %s: gap y[%lld][%lld] overwritten\n", what, rs_dtype_name(f->t),
                                (long long)t, (long long)o);
                continue;
            }
            const expect *e = &ex[t * f->n_out + o];
            if (!(fabs(v - e->ref_q) <= e->tol_q) || !(fabs(v - e->ref_x) <= e->tol_x)) {
                if (g_failures++ < 10)
                    print_error("%s %s n_in %lld n_tok %lld: y[%lld][%lld] = %.9g, W·X̂ = %.9g "
                                "(tol %.3g), W·X = %.9g (tol %.3g)\n",
                                what, rs_dtype_name(f->t), (long long)f->n_in, (long long)n_tok,
                                (long long)t, (long long)o, v, e->ref_q, e->tol_q, e->ref_x,
                                e->tol_x);
            }
        }
    }
}

static void check_y(const fixture *f, const float *y, int64_t n_tok, const char *what) {
    check_y_as(f, y, n_tok, what, false);
}

/* Every level available on this CPU, forced through RUSTY_SIMD as users would. */
static int levels(rs_simd_level out[4]) {
    static const char *names[4] = {"scalar", "avx2", "avx512", "amx"};
    int n = 0;
    for (int l = 0; l < 4; l++) {
        setenv("RUSTY_SIMD", names[l], 1);
        rs_simd_level got = rs_cpu_simd_level();
        if (got == (rs_simd_level)l)
            out[n++] = got;
        else
            printf("note: SIMD level %s not available on this CPU, not tested\n", names[l]);
    }
    unsetenv("RUSTY_SIMD");
    return n;
}

static int64_t block_of(rs_dtype t) {
    return rs_dtype_get(t)->block_size;
}

/* n_in = one block, several blocks, 4096 + one block (float types: odd sizes). */
static void sizes_for(rs_dtype t, int64_t n_in[3]) {
    int64_t b = block_of(t);
    if (b == 1) {
        n_in[0] = 1;
        n_in[1] = 37;
        n_in[2] = 4097;
    } else {
        n_in[0] = b;
        n_in[1] = 3 * b;
        n_in[2] = 4096 + b;
    }
}

static void test_all_types_levels(void **state) {
    (void)state;
    rs_simd_level lv[4];
    int n_lv = levels(lv);
    for (int ti = 0; ti < N_TYPES; ti++) {
        int64_t sizes[3];
        sizes_for(k_types[ti], sizes);
        for (int si = 0; si < 3; si++) {
            int64_t n_in = sizes[si], stride = n_in + X_PAD, n_out = 13;
            float *x = gen_x(MAX_TOK, n_in, stride, (uint64_t)ti * 7 + (uint64_t)si);
            fixture f;
            fixture_init(&f, k_types[ti], n_out, n_in, x, stride, (uint64_t)ti * 31 + (uint64_t)si);
            for (size_t k = 0; k < sizeof k_ntoks / sizeof k_ntoks[0]; k++) {
                int64_t nt = k_ntoks[k];
                float *ys = run_mm(NULL, &f, x, stride, nt, RS_SIMD_SCALAR);
                check_y(&f, ys, nt, "scalar");
                for (int l = 1; l < n_lv; l++) {
                    float *y = run_mm(NULL, &f, x, stride, nt, lv[l]);
                    check_y(&f, y, nt, rs_simd_level_name(lv[l]));
                    /* against the scalar level: both within tol_q of W·X̂ */
                    for (int64_t t = 0; t < nt; t++)
                        for (int64_t o = 0; o < n_out; o++) {
                            double a = y[t * (n_out + Y_PAD) + o], b = ys[t * (n_out + Y_PAD) + o];
                            if (!(fabs(a - b) <= 2 * f.ex[t * n_out + o].tol_q) &&
                                g_failures++ < 10)
                                print_error("%s %s vs scalar: y[%lld][%lld] %.9g vs %.9g\n",
                                            rs_simd_level_name(lv[l]), rs_dtype_name(f.t),
                                            (long long)t, (long long)o, a, b);
                        }
                    free(y);
                }
                free(ys);
            }
            fixture_free(&f);
            free(x);
        }
    }
    assert_int_equal(g_failures, 0);
}

/* Rows longer than the kernels' internal chunks (the decode kernels convert
 * activation scales 256 blocks at a time): 8192 + 3 blocks. */
static void test_long_rows(void **state) {
    (void)state;
    rs_simd_level lv[4];
    int n_lv = levels(lv);
    for (int ti = 0; ti < N_TYPES; ti++) {
        int64_t n_in = 8192 + 3 * block_of(k_types[ti]), stride = n_in + X_PAD;
        float *x = gen_x(MAX_TOK, n_in, stride, 3 + (uint64_t)ti);
        fixture f;
        fixture_init(&f, k_types[ti], 5, n_in, x, stride, 500 + (uint64_t)ti);
        for (int l = 0; l < n_lv; l++)
            for (int64_t nt = 1; nt <= 2; nt++) {
                float *y = run_mm(NULL, &f, x, stride, nt, lv[l]);
                check_y(&f, y, nt, rs_simd_level_name(lv[l]));
                free(y);
            }
        fixture_free(&f);
        free(x);
    }
    assert_int_equal(g_failures, 0);
}

/* Splitting the work over 1, 2 or 3 threads gives bit-identical results, and
 * so do the decode tiles without software prefetch. The sizes keep every
 * product above the size below which the driver runs on the caller alone
 * (256 KiB of weights). */
static void test_threads(void **state) {
    (void)state;
    rs_simd_level best = rs_cpu_simd_level();
    rs_threadpool *tps[3];
    for (int n = 1; n <= 3; n++)
        assert_int_equal(rs_threadpool_create(&tps[n - 1], n, NULL), RS_OK);
    for (int ti = 0; ti < N_TYPES; ti++) {
        rs_dtype t = k_types[ti];
        int64_t n_in = block_of(t) == 1 ? 1000 : 4096 + block_of(t), stride = n_in + X_PAD;
        float *x = gen_x(MAX_TOK, n_in, stride, 99);
        fixture f;
        fixture_init(&f, t, 203, n_in, x, stride, 77 + (uint64_t)ti);
        uint8_t *packed = rs_cpu_pack_supports(t) ? packed_copy(&f) : NULL;
        /* each token count in the GGUF layout, then (Q4_0, IQ4_NL, Q8_0) packed */
        for (int run = 0; run < (packed ? 4 : 2); run++) {
            int64_t nt = run % 2 ? MAX_TOK : 1;
            bool lay = run >= 2;
            const uint8_t *pw = lay ? packed : NULL;
            float *y0 = run_mm_layout(NULL, &f, pw, x, stride, nt, best);
            check_y_as(&f, y0, nt, lay ? "no pool, packed" : "no pool", lay);
            for (int n = 1; n <= 4; n++) {
                /* n = 4: 3 threads, decode tiles leaving prefetch to the hardware */
                float *y = run_mm_opts(tps[n < 4 ? n - 1 : 2], &f, pw, x, stride, nt, best, n == 4);
                size_t bytes = sizeof(float) * (size_t)(nt * (f.n_out + Y_PAD));
                for (size_t i = 0; i < bytes / sizeof(float); i++)
                    /* bit-identical results for any thread count is the property tested */
                    // NOLINTNEXTLINE(bugprone-suspicious-memory-comparison)
                    if (memcmp(&y[i], &y0[i], sizeof(float)) != 0 && g_failures++ < 10)
                        print_error("%s%s %d threads%s n_tok %lld: element %zu differs\n",
                                    rs_dtype_name(t), lay ? " packed" : "", n < 4 ? n : 3,
                                    n == 4 ? " (hw prefetch)" : "", (long long)nt, i);
                free(y);
            }
            free(y0);
        }
        free(packed);
        fixture_free(&f);
        free(x);
    }
    for (int n = 1; n <= 3; n++) rs_threadpool_free(tps[n - 1]);
    assert_int_equal(g_failures, 0);
}

/* Several weights sharing one input (mixed companion formats) in one call equal
 * separate calls, at every level and with a pool. */
static void test_multi(void **state) {
    (void)state;
    enum { NW = 6 }; /* the last one packed */
    static const rs_dtype types[NW] = {RS_DTYPE_Q4_K, RS_DTYPE_Q6_K,   RS_DTYPE_Q8_0,
                                       RS_DTYPE_F16,  RS_DTYPE_IQ4_XS, RS_DTYPE_Q4_0};
    static const int64_t n_outs[NW] = {13, 7, 21, 5, 11, 19};
    int64_t n_in = 512, stride = n_in + X_PAD;
    float *x = gen_x(MAX_TOK, n_in, stride, 5);
    fixture f[NW];
    for (int i = 0; i < NW; i++)
        fixture_init(&f[i], types[i], n_outs[i], n_in, x, stride, 40 + (uint64_t)i);
    uint8_t *packed = packed_copy(&f[NW - 1]);
    rs_threadpool *tp;
    assert_int_equal(rs_threadpool_create(&tp, 2, NULL), RS_OK);
    rs_simd_level lv[4];
    int n_lv = levels(lv);
    for (int l = 0; l < n_lv; l++)
        for (int64_t nt = 1; nt <= 5; nt += 4) {
            rs_cpu_matmul_w ws[NW];
            float *ym[NW];
            for (int i = 0; i < NW; i++) {
                ym[i] = poisoned(nt, n_outs[i] + Y_PAD);
                bool pk = i == NW - 1;
                ws[i] = (rs_cpu_matmul_w){
                    types[i], pk ? packed : f[i].w, n_outs[i],
                    ym[i],    n_outs[i] + Y_PAD,    pk ? RS_CPU_LAYOUT_X16 : RS_CPU_LAYOUT_GGUF};
            }
            rs_cpu_matmul_in in = {x, stride, n_in, nt, lv[l], NULL, 0, false};
            in.scratch = scratch_for(ws, NW, n_in, nt, &in.scratch_size);
            rs_error err = {0};
            assert_int_equal(rs_cpu_matmul_multi(tp, &in, ws, NW, &err), RS_OK);
            for (int i = 0; i < NW; i++) {
                check_y_as(&f[i], ym[i], nt, "multi", i == NW - 1);
                float *y1 =
                    run_mm_layout(NULL, &f[i], i == NW - 1 ? packed : NULL, x, stride, nt, lv[l]);
                assert_memory_equal(y1, ym[i],
                                    sizeof(float) * (size_t)(nt * (n_outs[i] + Y_PAD)) -
                                        sizeof(float) * Y_PAD);
                free(y1);
                free(ym[i]);
            }
        }
    rs_threadpool_free(tp);
    free(packed);
    for (int i = 0; i < NW; i++) fixture_free(&f[i]);
    free(x);
    assert_int_equal(g_failures, 0);
}

/* Unpacking packed copy p of f's weights gives back their GGUF bytes. */
static void check_round_trip(const fixture *f, const uint8_t *p) {
    const size_t bytes = f->row_bytes * (size_t)f->n_out;
    uint8_t *back = malloc(bytes);
    assert_non_null(back);
    memset(back, 0x5A, bytes);
    rs_cpu_unpack_groups(f->t, p, f->n_out, f->n_in, back, 0,
                         (f->n_out + RS_CPU_PACK_ROWS - 1) / RS_CPU_PACK_ROWS);
    assert_memory_equal(back, f->w, bytes);
    free(back);
}

/* Packing round-trips, puts each quant where packed.h says, pads the last
 * group with scale-0 rows, and has the documented size. */
static void test_pack_layout(void **state) {
    (void)state;
    static const rs_dtype types[3] = {RS_DTYPE_Q4_0, RS_DTYPE_Q8_0, RS_DTYPE_IQ4_NL};
    static const int64_t n_outs[5] = {1, 15, 16, 17, 40}, n_ins[3] = {32, 64, 160};
    /* sizes by hand: 2 groups x (2 blocks x (256 + 32) = 576 bytes, a multiple of 64) */
    assert_int_equal(rs_cpu_pack_size(RS_DTYPE_Q4_0, 17, 64), 2 * 576);
    /* 1 group x (5 blocks x 288 = 1440 -> 1472) and Q8_0 5 x 544 = 2720 -> 2752 */
    assert_int_equal(rs_cpu_pack_size(RS_DTYPE_Q4_0, 16, 160), 1472);
    assert_int_equal(rs_cpu_pack_size(RS_DTYPE_Q8_0, 16, 160), 2752);
    /* Q4_K: 8 sub-blocks x (256 + 40) = 2368, a multiple of 64; rows of 160 do not pack */
    assert_int_equal(rs_cpu_pack_size(RS_DTYPE_Q4_K, 16, 256), 2368);
    assert_int_equal(rs_cpu_pack_size(RS_DTYPE_Q4_K, 16, 160), 0);
    assert_int_equal(rs_cpu_pack_size(RS_DTYPE_Q8_0, 16, 48), 0);
    assert_int_equal(rs_cpu_pack_size(RS_DTYPE_Q8_0, 0, 64), 0);
    assert_int_equal(rs_cpu_pack_size(RS_DTYPE_Q8_0, INT64_MAX / 2, INT64_MAX / 64 * 32), 0);
    assert_int_equal(rs_cpu_pack_size(RS_DTYPE_IQ4_NL, 16, 160), 1472);
    for (int ti = 0; ti < 3; ti++)
        for (int oi = 0; oi < 5; oi++)
            for (int ii = 0; ii < 3; ii++) {
                rs_dtype t = types[ti];
                int64_t n_out = n_outs[oi], n_in = n_ins[ii], nb = n_in / 32;
                size_t row, bb = t == RS_DTYPE_Q8_0 ? 34 : 18, pay = t == RS_DTYPE_Q8_0 ? 512 : 256;
                uint8_t *w = gen_weights(
                    t, n_out, n_in, 100 * (uint64_t)ti + 10 * (uint64_t)oi + (uint64_t)ii, &row);
                fixture f = {t, n_in, n_out, w, row, NULL, NULL};
                uint8_t *p = packed_copy(&f);
                size_t gbytes = rs_cpu_pack_group_bytes(t, n_in);
                /* spot checks against the layout description */
                for (int64_t o = 0; o < n_out; o++)
                    for (int64_t b = 0; b < nb; b++) {
                        const uint8_t *blk = w + (size_t)o * row + (size_t)b * bb;
                        const uint8_t *g = p + (size_t)(o / 16) * gbytes;
                        int r = (int)(o % 16);
                        assert_memory_equal(g + (size_t)nb * pay + 32 * (size_t)b + 2 * (size_t)r,
                                            blk, 2);
                        for (int i = 0; i < (int)(pay / 16); i++) {
                            uint8_t v = g[(size_t)b * pay + 64 * (size_t)(i / 4) + 4 * (size_t)r +
                                          (size_t)(i % 4)];
                            uint8_t want =
                                t == RS_DTYPE_Q8_0 ? (uint8_t)(blk[2 + i] + 128) : blk[2 + i];
                            if (v != want && g_failures++ < 10)
                                print_error("%s row %lld block %lld byte %d: %u, want %u\n",
                                            rs_dtype_name(t), (long long)o, (long long)b, i, v,
                                            want);
                        }
                    }
                /* padding rows: scale 0 */
                int64_t groups = (n_out + 15) / 16;
                for (int64_t o = n_out; o < groups * 16; o++)
                    for (int64_t b = 0; b < nb; b++) {
                        const uint8_t *sc = p + (size_t)(o / 16) * gbytes + (size_t)nb * pay +
                                            32 * (size_t)b + 2 * (size_t)(o % 16);
                        assert_true(sc[0] == 0 && sc[1] == 0);
                    }
                check_round_trip(&f, p);
                free(p);
                free(w);
            }
    assert_int_equal(g_failures, 0);
}

/* Packed Q4_K (and IQ4_XS): d, dmin, the 6-bit scales and mins and every nibble where
 * packed.h says, padding rows all zero, and the round trip to the GGUF bytes. */
static void test_pack_layout_k4(void **state) {
    (void)state;
    static const int64_t n_outs[3] = {1, 16, 21}, n_ins[2] = {256, 768};
    for (int oi = 0; oi < 3; oi++)
        for (int ii = 0; ii < 2; ii++) {
            const int64_t n_out = n_outs[oi], n_in = n_ins[ii], nsb = n_in / 256, nb = n_in / 32;
            size_t row;
            uint8_t *w = gen_weights(RS_DTYPE_Q4_K, n_out, n_in,
                                     900 + 10 * (uint64_t)oi + (uint64_t)ii, &row);
            fixture f = {RS_DTYPE_Q4_K, n_in, n_out, w, row, NULL, NULL};
            uint8_t *p = packed_copy(&f);
            const size_t gbytes = rs_cpu_pack_group_bytes(RS_DTYPE_Q4_K, n_in);
            const int64_t groups = (n_out + 15) / 16;
            for (int64_t o = 0; o < groups * 16; o++)
                for (int64_t s = 0; s < nsb; s++) {
                    const block_q4_K *b =
                        o < n_out ? (const block_q4_K *)(w + (size_t)o * row) + s : NULL;
                    const uint8_t *g = p + (size_t)(o / 16) * gbytes;
                    const uint8_t *rec = g + (size_t)nb * 256 + (size_t)s * RS_CPU_PACK_K4_SCALES;
                    const int r = (int)(o % 16);
                    uint16_t d, dmin;
                    memcpy(&d, rec + 2 * r, 2);
                    memcpy(&dmin, rec + 32 + 2 * r, 2);
                    int bad = d != (b ? b->d : 0) || dmin != (b ? b->dmin : 0);
                    for (int j = 0; j < 8; j++) {
                        int sc = 0, m = 0;
                        if (b) rs_k4_get_scale_min(j, b->scales, &sc, &m);
                        bad |= rec[64 + 16 * j + r] != sc || rec[192 + 16 * j + r] != m;
                        const uint8_t *pl = g + (size_t)(8 * s + j) * 256 + 4 * (size_t)r;
                        for (int i = 0; i < 32; i++) {
                            const uint8_t v = pl[64 * ((i % 16) / 4) + i % 4];
                            const int got = i < 16 ? v & 0x0f : v >> 4;
                            /* element 32 j + i of the super-block: byte 32 (j / 2) + i,
                             * low nibble for even j */
                            const int want =
                                b ? (b->qs[32 * (j / 2) + i] >> (j & 1 ? 4 : 0)) & 0x0f : 0;
                            bad |= got != want;
                        }
                    }
                    if (bad && g_failures++ < 10)
                        print_error(
                            "Q4_K n_out %lld n_in %lld row %lld super-block %lld misplaced\n",
                            (long long)n_out, (long long)n_in, (long long)o, (long long)s);
                }
            check_round_trip(&f, p);
            free(p);
            free(w);
        }
    /* IQ4_XS: 8 x 256 + 160 = 2208 -> 2240 per 16 x 256; d, ls - 32 and every nibble
     * where packed.h says, padding rows all zero, and the round trip */
    assert_int_equal(rs_cpu_pack_size(RS_DTYPE_IQ4_XS, 16, 256), 2240);
    assert_int_equal(rs_cpu_pack_size(RS_DTYPE_IQ4_XS, 17, 512), 2 * 4416);
    assert_int_equal(rs_cpu_pack_size(RS_DTYPE_IQ4_XS, 16, 160), 0);
    for (int oi = 0; oi < 3; oi++)
        for (int ii = 0; ii < 2; ii++) {
            const int64_t n_out = n_outs[oi], n_in = n_ins[ii], nsb = n_in / 256, nb = n_in / 32;
            size_t row;
            uint8_t *w = gen_weights(RS_DTYPE_IQ4_XS, n_out, n_in,
                                     990 + 10 * (uint64_t)oi + (uint64_t)ii, &row);
            fixture f = {RS_DTYPE_IQ4_XS, n_in, n_out, w, row, NULL, NULL};
            uint8_t *p = packed_copy(&f);
            const size_t gbytes = rs_cpu_pack_group_bytes(RS_DTYPE_IQ4_XS, n_in);
            const int64_t groups = (n_out + 15) / 16;
            for (int64_t o = 0; o < groups * 16; o++)
                for (int64_t s = 0; s < nsb; s++) {
                    const block_iq4_xs *b =
                        o < n_out ? (const block_iq4_xs *)(w + (size_t)o * row) + s : NULL;
                    const uint8_t *g = p + (size_t)(o / 16) * gbytes;
                    const uint8_t *rec = g + (size_t)nb * 256 + (size_t)s * RS_CPU_PACK_XS_SCALES;
                    const int r = (int)(o % 16);
                    uint16_t d;
                    memcpy(&d, rec + 2 * r, 2);
                    int bad = d != (b ? b->d : 0);
                    for (int j = 0; j < 8; j++) {
                        bad |= (int8_t)rec[32 + 16 * j + r] != (b ? rs_iq4_xs_scale(b, j) - 32 : 0);
                        const uint8_t *pl = g + (size_t)(8 * s + j) * 256 + 4 * (size_t)r;
                        for (int i = 0; i < 16; i++) /* byte i of the sub-block's 16 */
                            bad |= pl[64 * (i / 4) + i % 4] != (b ? b->qs[16 * j + i] : 0);
                    }
                    if (bad && g_failures++ < 10)
                        print_error(
                            "IQ4_XS n_out %lld n_in %lld row %lld super-block %lld misplaced\n",
                            (long long)n_out, (long long)n_in, (long long)o, (long long)s);
                }
            check_round_trip(&f, p);
            free(p);
            free(w);
        }
    /* Q5_K and Q6_K: the documented sizes per 16 x 256 (Q5_K 8 x (320 + 40) = 2880; Q6_K
     * the GGUF size, 8 x (384 + 36) = 3360, to 64 bytes) and the round trip; where each bit
     * goes is the kernels' test (test_packed_levels) */
    assert_int_equal(rs_cpu_pack_size(RS_DTYPE_Q5_K, 16, 256), 2880);
    assert_int_equal(rs_cpu_pack_size(RS_DTYPE_Q6_K, 16, 256), 3392);
    for (int ti = 0; ti < 2; ti++)
        for (int oi = 0; oi < 3; oi++)
            for (int ii = 0; ii < 2; ii++) {
                const rs_dtype t = ti ? RS_DTYPE_Q6_K : RS_DTYPE_Q5_K;
                const int64_t n_out = n_outs[oi], n_in = n_ins[ii];
                size_t row;
                uint8_t *w =
                    gen_weights(t, n_out, n_in,
                                950 + 100 * (uint64_t)ti + 10 * (uint64_t)oi + (uint64_t)ii, &row);
                fixture f = {t, n_in, n_out, w, row, NULL, NULL};
                uint8_t *p = packed_copy(&f);
                check_round_trip(&f, p);
                free(p);
                free(w);
            }
    assert_int_equal(g_failures, 0);
}

/* Packed Q4_0 / Q8_0 / IQ4_NL and the K-quants Q4_K / Q5_K / Q6_K and IQ4_XS at every
 * level: the float64 references, the GGUF layout (bit-identical at the scalar level;
 * not the super-block types, whose GGUF kernels take other activations), AMX
 * bit-identical to AVX-512 (same arithmetic; K-quants: every level bit-identical
 * to their packed scalar references), and shapes around the tile edges (partial groups, token
 * counts around the 4/8-token VNNI and 16-token AMX tiles). */
static void test_packed_levels(void **state) {
    (void)state;
    static const rs_dtype types[7] = {RS_DTYPE_Q4_0, RS_DTYPE_Q8_0, RS_DTYPE_IQ4_NL, RS_DTYPE_Q4_K,
                                      RS_DTYPE_Q5_K, RS_DTYPE_Q6_K, RS_DTYPE_IQ4_XS};
    static const int64_t n_outs[4] = {13, 16, 45, 67}, n_ins[3] = {32, 96, 4096 + 32},
                         n_ins_k[3] = {256, 768, 4096 + 256};
    static const int ntoks[7] = {1, 2, 7, 8, 9, 16, 17};
    rs_simd_level lv[4];
    int n_lv = levels(lv);
    for (int ti = 0; ti < 7; ti++)
        for (int ii = 0; ii < 3; ii++) {
            const bool k4 = types[ti] == RS_DTYPE_Q4_K || types[ti] == RS_DTYPE_Q5_K ||
                            types[ti] == RS_DTYPE_Q6_K || types[ti] == RS_DTYPE_IQ4_XS;
            int64_t n_in = k4 ? n_ins_k[ii] : n_ins[ii], stride = n_in + X_PAD;
            float *x = gen_x(MAX_TOK, n_in, stride, 3 * (uint64_t)ti + (uint64_t)ii);
            for (int oi = 0; oi < 4; oi++) {
                fixture f;
                fixture_init(&f, types[ti], n_outs[oi], n_in, x, stride,
                             50 * (uint64_t)ti + 7 * (uint64_t)ii + (uint64_t)oi);
                uint8_t *p = packed_copy(&f);
                for (int k = 0; k < 7; k++) {
                    int64_t nt = ntoks[k];
                    float *yg = run_mm(NULL, &f, x, stride, nt, RS_SIMD_SCALAR);
                    float *yp =
                        k4 ? run_mm_layout(NULL, &f, p, x, stride, nt, RS_SIMD_SCALAR) : NULL;
                    float *y512 = NULL;
                    for (int l = 0; l < n_lv; l++) {
                        float *y = run_mm_layout(NULL, &f, p, x, stride, nt, lv[l]);
                        size_t bytes = sizeof(float) * (size_t)(nt * (f.n_out + Y_PAD));
                        if (yp && memcmp(y, yp, bytes) != 0 && g_failures++ < 10)
                            print_error("packed %s %s n_out %lld n_in %lld n_tok %lld: differs "
                                        "from its scalar reference\n",
                                        rs_dtype_name(f.t), rs_simd_level_name(lv[l]),
                                        (long long)f.n_out, (long long)n_in, (long long)nt);
                        if (lv[l] == RS_SIMD_AMX && y512 && memcmp(y, y512, bytes) != 0 &&
                            g_failures++ < 10)
                            print_error("packed %s n_out %lld n_in %lld n_tok %lld: AMX differs "
                                        "from AVX-512\n",
                                        rs_dtype_name(f.t), (long long)f.n_out, (long long)n_in,
                                        (long long)nt);
                        check_y_as(&f, y, nt, lv[l] ? "packed" : "packed scalar", true);
                        for (int64_t t = 0; t < nt; t++)
                            for (int64_t o = 0; o < f.n_out; o++) {
                                size_t at = (size_t)(t * (f.n_out + Y_PAD) + o);
                                /* the scalar level must match bit for bit */
                                /* (Q4_K: other activations, checked against its own
                                 * expectations above) */
                                bool ok =
                                    k4 ||
                                    (lv[l] == RS_SIMD_SCALAR
                                         // NOLINTNEXTLINE(bugprone-suspicious-memory-comparison)
                                         ? memcmp(&y[at], &yg[at], sizeof(float)) == 0
                                         : fabs((double)y[at] - yg[at]) <=
                                               2 * f.ex[t * f.n_out + o].tol_q);
                                if (!ok && g_failures++ < 10)
                                    print_error("packed %s %s n_out %lld n_in %lld n_tok %lld: "
                                                "y[%lld][%lld] %.9g vs GGUF scalar %.9g\n",
                                                rs_dtype_name(f.t), rs_simd_level_name(lv[l]),
                                                (long long)f.n_out, (long long)n_in, (long long)nt,
                                                (long long)t, (long long)o, y[at], yg[at]);
                            }
                        if (lv[l] == RS_SIMD_AVX512) /* kept for the AMX level after it */
                            y512 = y;
                        else
                            free(y);
                    }
                    free(y512);
                    free(yg);
                    free(yp);
                }
                free(p);
                fixture_free(&f);
            }
            free(x);
        }
    assert_int_equal(g_failures, 0);
}

static void test_errors(void **state) {
    (void)state;
    float x[64] = {0}, y[64];
    uint8_t w[1024] = {0};
    uint8_t scratch[4096];
    rs_error err = {0};
    rs_cpu_matmul_in in = {x, 64, 64, 1, RS_SIMD_SCALAR, scratch, sizeof scratch, false};
    rs_cpu_matmul_w mw = {RS_DTYPE_IQ2_XXS, w, 2, y, 2, RS_CPU_LAYOUT_GGUF};
    assert_int_equal(rs_cpu_matmul(NULL, &in, &mw, &err), RS_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "IQ2_XXS"));
    mw.type = RS_DTYPE_Q8_K; /* an activation format, not a weight type */
    assert_int_equal(rs_cpu_matmul(NULL, &in, &mw, &err), RS_ERR_UNSUPPORTED);
    mw.type = RS_DTYPE_Q3_K; /* no packed layout */
    mw.layout = RS_CPU_LAYOUT_X16;
    assert_int_equal(rs_cpu_matmul(NULL, &in, &mw, &err), RS_ERR_UNSUPPORTED);
    mw.type = RS_DTYPE_Q8_0;
    mw.layout = (rs_cpu_layout)9;
    assert_int_equal(rs_cpu_matmul(NULL, &in, &mw, &err), RS_ERR_UNSUPPORTED);
    mw.layout = RS_CPU_LAYOUT_GGUF;
    assert_false(rs_cpu_matmul_supports(RS_DTYPE_Q8_1));
    assert_true(rs_cpu_matmul_supports(RS_DTYPE_Q4_K));
    assert_true(rs_cpu_matmul_supports(RS_DTYPE_IQ4_XS));
    /* n_in not a multiple of the block size */
    mw.type = RS_DTYPE_Q4_0;
    in.n_in = 48;
    assert_int_equal(rs_cpu_matmul(NULL, &in, &mw, &err), RS_ERR_ARG);
    assert_non_null(strstr(err.msg, "n_in 48"));
    mw.type = RS_DTYPE_Q4_K; /* 64 is not a multiple of 256 */
    in.n_in = 64;
    assert_int_equal(rs_cpu_matmul(NULL, &in, &mw, &err), RS_ERR_ARG);
    mw.type = RS_DTYPE_IQ4_XS;
    assert_int_equal(rs_cpu_matmul(NULL, &in, &mw, &err), RS_ERR_ARG);
    /* strides, counts, scratch */
    mw.type = RS_DTYPE_Q8_0;
    in.x_stride = 63;
    assert_int_equal(rs_cpu_matmul(NULL, &in, &mw, &err), RS_ERR_ARG);
    in.x_stride = 64;
    mw.y_stride = 1;
    assert_int_equal(rs_cpu_matmul(NULL, &in, &mw, &err), RS_ERR_ARG);
    mw.y_stride = 2;
    in.scratch_size = 10;
    assert_int_equal(rs_cpu_matmul(NULL, &in, &mw, &err), RS_ERR_ARG);
    assert_non_null(strstr(err.msg, "scratch"));
    in.scratch_size = sizeof scratch;
    in.level = (rs_simd_level)7;
    assert_int_equal(rs_cpu_matmul(NULL, &in, &mw, &err), RS_ERR_ARG);
    in.level = RS_SIMD_SCALAR;
    assert_int_equal(rs_cpu_matmul_multi(NULL, &in, &mw, 0, &err), RS_ERR_ARG);
    in.n_tok = 0;
    assert_int_equal(rs_cpu_matmul(NULL, &in, &mw, &err), RS_ERR_ARG);
    in.n_tok = 1;
    /* the valid call works (all-zero weights give zeros) */
    assert_int_equal(rs_cpu_matmul(NULL, &in, &mw, &err), RS_OK);
    assert_true(y[0] == 0 && y[1] == 0);
    /* float weights need no scratch; overflowing sizes saturate */
    mw.type = RS_DTYPE_F32;
    assert_int_equal(rs_cpu_matmul_scratch_size(&mw, 1, 64, 3), 0);
    mw.type = RS_DTYPE_Q8_0;
    assert_int_equal(rs_cpu_matmul_scratch_size(&mw, 1, (int64_t)1 << 40, (int64_t)1 << 40),
                     SIZE_MAX);
}

static int teardown(void **state) {
    (void)state;
    free(g_scratch);
    g_scratch = NULL;
    g_scratch_size = 0;
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_all_types_levels, teardown),
        cmocka_unit_test_teardown(test_long_rows, teardown),
        cmocka_unit_test_teardown(test_threads, teardown),
        cmocka_unit_test_teardown(test_multi, teardown),
        cmocka_unit_test_teardown(test_pack_layout, teardown),
        cmocka_unit_test_teardown(test_pack_layout_k4, teardown),
        cmocka_unit_test_teardown(test_packed_levels, teardown),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_cuda_ops.c — every CUDA backend op against the scalar reference
 * (src/backend/cpu/ops_ref.c, double accumulation) on fresh random inputs.
 *
 * Outputs are poisoned with NaN bytes before each op, so an element the op
 * never writes fails the comparison. Error measure: ||y - ref|| / ||ref||
 * per case (NaN or inf anywhere is a failure). Exits 77 (skipped) when no
 * CUDA device is usable — the case in CI. Tolerances, with their reasons:
 *   TOL_F32   1e-5  f32 arithmetic, different summation order than the reference
 *   TOL_Q8    1.5e-2  quantized matvec: activations rounded to int8 per 32
 *                    (step amax/127, ~0.4% rms of a uniform input)
 *   TOL_H     3e-3  GEMM on F16: weights and activations rounded to f16 (2^-11)
 *   TOL_BF    1.5e-2  GEMM on BF16: activations rounded to bf16 (2^-8)
 *   TOL_ATTN  2e-4  attention: f32 with __expf, versus double
 *   TOL_MMA   2e-3  attention on the tensor cores: q and the softmax weights rounded to f16
 *   TOL_KV16  1e-3  keys/values read back from an F16 cache (2^-11 rounding)
 *   TOL_KVQ8  6e-3  keys/values read back from a Q8_0 cache: step max|v|/127 per 32
 *                   values, rms error step/sqrt(12) against an rms value of about
 *                   max|v|/sqrt(3) for uniform data: 3.9e-3 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/ops_ref.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_internal.h"
#include "dtype/dtype.h"
#include "sampler/sampler.h"

#define CT_SEED 0x9E3779B97F4A7C15ull
#include "cuda_testlib.h"

#define TOL_F32  1e-5
#define TOL_Q8   1.5e-2
#define TOL_H    3e-3
#define TOL_BF   1.5e-2
#define TOL_ATTN 2e-4
#define TOL_KV16 1e-3
#define TOL_MMA  2e-3
#define TOL_KVQ8 6e-3

static const char *kv_name(rs_kv_type t) {
    return t == RS_KV_F16 ? "F16" : t == RS_KV_Q8_0 ? "Q8_0" : t == RS_KV_Q4_0 ? "Q4_0" : "F32";
}

static rs_cuda_tuning tuning_now(void) {
    rs_cuda_tuning t;
    rs_cuda_get_tuning(B, &t);
    return t;
}

/* ---- weights ------------------------------------------------------------------------------ */

static double tol_for(rs_dtype type, int gemm) {
    if (type == RS_DTYPE_F32) return TOL_F32;
    if (type == RS_DTYPE_BF16) return gemm ? TOL_BF : TOL_F32;
    if (type == RS_DTYPE_F16) return gemm ? TOL_H : TOL_F32;
    return gemm ? TOL_H : TOL_Q8;
}

/* ---- matmul -------------------------------------------------------------------------------- */

/* Weight w against several token counts: n <= 4 takes the matvec kernels,
 * larger n the GEMM path; the bias (when given) goes with n == 3 and n == 20.
 * `what` (or "") follows the type in the case names. */
static void check_matmul_w(const tw *w, const char *what, const int *ns, int n_ns, int with_bias) {
    const rs_dtype type = w->w.type;
    const int64_t n_in = w->w.n_in, n_out = w->w.n_out;
    tw b = make_weight(RS_DTYPE_F32, n_out, 1, 1.0f);
    const rs_cuda_tuning base = tuning_now();
    for (int k = 0; k < n_ns; k++) {
        const int n = ns[k], bias = with_bias && (n == 3 || n == 20);
        float *x = host_rand((size_t)(n * n_in), 1.0f);
        float *ref = malloc(sizeof(float) * n * n_out), *y = malloc(sizeof(float) * n * n_out);
        rs_ref_matmul(&w->w, bias ? &b.w : NULL, x, n, ref);
        float *dx = dev_copy(x, sizeof(float) * n * n_in), *dy = dev(sizeof(float) * n * n_out);
        /* variants: one row per warp; two rows per warp (n = 1); GEMM in 128-row slabs */
        for (int v = 0; v < 3; v++) {
            rs_cuda_tuning t = base;
            const char *tag = "";
            t.mv_rows = 1;
            if (v == 1) {
                if (n != 1) continue;
                t.mv_rows = 2, tag = " rows=2";
            } else if (v == 2) {
                if (n <= 4 || !rs_dtype_get(type)->is_quantized) continue;
                t.gemm_chunk = (int)(128 * n_in), tag = " slabs";
            }
            rs_cuda_set_tuning(B, &t);
            poison(dy, sizeof(float) * n * n_out);
            rs_matmul mm = {&w->w, bias ? &b.w : NULL, dy};
            O->matmul(B, &mm, 1, dx, n);
            rs_cuda_set_tuning(B, &base);
            char name[128];
            snprintf(name, sizeof name, "matmul %s%s %lldx%lld n=%d%s%s", rs_dtype_name(type), what,
                     (long long)n_out, (long long)n_in, n, bias ? " +bias" : "", tag);
            if (synced(name)) {
                down(y, dy, sizeof(float) * n * n_out);
                report(name, rel_err(y, ref, (size_t)(n * n_out)), tol_for(type, n > 4));
            }
        }
        O->release(B, dx);
        O->release(B, dy);
        free(x), free(ref), free(y);
    }
    free_weight(&b);
}

/* A random weight of `type` through check_matmul_w. */
static void check_matmul(rs_dtype type, int64_t n_in, int64_t n_out, const int *ns, int n_ns,
                         int with_bias) {
    tw w = make_weight(type, n_in, n_out, 0.5f);
    check_matmul_w(&w, "", ns, n_ns, with_bias);
    free_weight(&w);
}

/* An IQ4_XS weight whose sub-blocks take every 6-bit scale: sub-block j of block b gets
 * ls = (8 b + j) % 64. The quantizer's blocks of uniform data have multipliers ls - 32
 * near -32 or 31 only, whose top bits (scales_h) are 00 or 11: 01 and 10 would go
 * untested. The reference reads the same bytes. */
static tw make_iq4xs_every_scale(int64_t n_in, int64_t n_out) {
    tw t = make_weight(RS_DTYPE_IQ4_XS, n_in, n_out, 0.5f);
    O->weight_unload(B, &t.w);
    const size_t nblk = t.w.nbytes / sizeof(block_iq4_xs);
    for (size_t b = 0; b < nblk; b++) {
        block_iq4_xs blk;
        memcpy(&blk, (unsigned char *)t.bytes + b * sizeof blk, sizeof blk);
        blk.scales_h = 0;
        memset(blk.scales_l, 0, sizeof blk.scales_l);
        for (int j = 0; j < 8; j++) {
            const int ls = (int)((8 * b + (size_t)j) % 64);
            blk.scales_l[j / 2] |= (uint8_t)((ls & 15) << (4 * (j % 2)));
            blk.scales_h |= (uint16_t)((ls >> 4) << (2 * j));
            if (rs_iq4_xs_scale(&blk, j) != ls) die("make_iq4xs_every_scale", NULL);
        }
        memcpy((unsigned char *)t.bytes + b * sizeof blk, &blk, sizeof blk);
    }
    rs_error e = {0};
    if (O->weight_load(B, &t.w, &e)) die("weight_load", &e);
    return t;
}

/* count products of x (n tokens) sharing one call, product 1 with bias1 when
 * given; the worst relative error of any of them is reported as `name`. */
static void check_products(const char *name, tw **w, const rs_weight *bias1, int count, int n,
                           double tol) {
    const int64_t n_in = w[0]->w.n_in;
    float *x = host_rand((size_t)(n * n_in), 1.0f), *dx = dev_copy(x, sizeof(float) * n * n_in);
    rs_matmul mm[4];
    float *dy[4];
    for (int i = 0; i < count; i++) {
        dy[i] = dev(sizeof(float) * n * w[i]->w.n_out);
        poison(dy[i], sizeof(float) * n * w[i]->w.n_out);
        mm[i] = (rs_matmul){&w[i]->w, i == 1 ? bias1 : NULL, dy[i]};
    }
    O->matmul(B, mm, count, dx, n);
    if (synced(name)) {
        double worst = 0;
        for (int i = 0; i < count; i++) {
            const size_t m = (size_t)n * w[i]->w.n_out;
            float *ref = host_alloc(m), *y = host_alloc(m);
            rs_ref_matmul(&w[i]->w, mm[i].bias, x, n, ref);
            down(y, dy[i], sizeof(float) * m);
            const double e = rel_err(y, ref, m);
            worst = e > worst ? e : worst;
            free(ref), free(y);
        }
        report(name, worst, tol);
    }
    for (int i = 0; i < count; i++) O->release(B, dy[i]);
    O->release(B, dx);
    free(x);
}

/* Three products sharing one input, one with a bias: mixed types and
 * heights (separate calls), or one type and height (a batched GEMM for
 * n > 4; `slab` rows per dequantized slab when set). */
static void check_matmul_multi(int n, int same, rs_dtype same_type, int slab) {
    const int64_t n_in = 512, outs[3] = {64, 200, 96};
    const rs_dtype types[3] = {RS_DTYPE_Q4_K, RS_DTYPE_Q6_K, RS_DTYPE_Q4_K};
    tw w[3], b = make_weight(RS_DTYPE_F32, same ? 160 : outs[1], 1, 1.0f), *wp[3];
    for (int i = 0; i < 3; i++) {
        w[i] = make_weight(same ? same_type : types[i], n_in, same ? 160 : outs[i], 0.5f);
        wp[i] = &w[i];
    }
    const rs_cuda_tuning base = tuning_now();
    rs_cuda_tuning t = base;
    t.gemm_chunk = slab ? (int)(slab * n_in) : 0;
    rs_cuda_set_tuning(B, &t);
    char name[96];
    if (same)
        snprintf(name, sizeof name, "matmul x3 %s 160x512 (+bias) n=%d%s", rs_dtype_name(same_type),
                 n, slab ? " slabs" : "");
    else
        snprintf(name, sizeof name, "matmul x3 Q4_K/Q6_K(+bias)/Q4_K n=%d", n);
    check_products(name, wp, &b.w, 3, n, tol_for(same ? same_type : RS_DTYPE_Q4_K, n > 4));
    rs_cuda_set_tuning(B, &base);
    for (int i = 0; i < 3; i++) free_weight(&w[i]);
    free_weight(&b);
}

static void test_matmul(void) {
    static const rs_dtype types[] = {RS_DTYPE_F32,    RS_DTYPE_F16,    RS_DTYPE_BF16, RS_DTYPE_Q8_0,
                                     RS_DTYPE_Q4_0,   RS_DTYPE_Q4_1,   RS_DTYPE_Q5_0, RS_DTYPE_Q5_1,
                                     RS_DTYPE_IQ4_NL, RS_DTYPE_IQ4_XS, RS_DTYPE_Q4_K, RS_DTYPE_Q5_K,
                                     RS_DTYPE_Q6_K,   RS_DTYPE_Q2_K,   RS_DTYPE_Q3_K};
    static const int ns[] = {1, 3, 4, 17, 64};
    static const int ns_odd[] = {1, 20};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        const rs_dtype t = types[i];
        const int64_t blk = rs_dtype_get(t)->block_size;
        check_matmul(t, blk == 256 ? 256 : 96, 37, ns, 5, 0);
        check_matmul(t, blk == 256 ? 1536 : 1024, 515, ns, 5, 1);
        if (blk == 1)
            check_matmul(t, 100, 33, ns_odd, 2, 1); /* rows not a multiple of 8: scalar kernel */
    }
    tw xs = make_iq4xs_every_scale(1536, 515);
    check_matmul_w(&xs, " (every 6-bit scale)", ns, 5, 1);
    free_weight(&xs);
    check_matmul_multi(1, 0, RS_DTYPE_F32, 0);
    check_matmul_multi(2, 0, RS_DTYPE_F32, 0);
    check_matmul_multi(33, 0, RS_DTYPE_F32, 0);
    check_matmul_multi(33, 1, RS_DTYPE_Q4_0, 0);
    check_matmul_multi(33, 1, RS_DTYPE_Q4_0, 128); /* two slabs of 128 rows and one of 32 */
    check_matmul_multi(40, 1, RS_DTYPE_Q6_K, 0);
    check_matmul_multi(33, 1, RS_DTYPE_F16, 0);
    check_matmul_multi(33, 1, RS_DTYPE_BF16, 0);
    check_matmul_multi(20, 1, RS_DTYPE_F32, 0);
    check_matmul_multi(1, 1, RS_DTYPE_Q8_0, 0);
}

/* ---- prepare: weights dequantized ahead on the side stream ------------------------------------
 */

static void prepare(tw **w, int count, int n) {
    const rs_weight *ws[4];
    for (int i = 0; i < count; i++) ws[i] = &w[i]->w;
    O->prepare(B, ws, count, n);
}

/* Which of w[0..count) hold a prepared copy, as a bit mask. */
static int prepared_mask(tw **w, int count) {
    int m = 0;
    for (int i = 0; i < count; i++) m |= rs_cuda_is_prepared(B, &w[i]->w) << i;
    return m;
}

static void test_prepare(void) {
    const rs_cuda_tuning base = tuning_now();
    tw a = make_weight(RS_DTYPE_Q4_0, 512, 160, 0.5f),
       b = make_weight(RS_DTYPE_Q4_0, 512, 160, 0.5f),
       k = make_weight(RS_DTYPE_Q4_K, 512, 96, 0.5f), f = make_weight(RS_DTYPE_F16, 512, 64, 0.5f);
    tw *ab[2] = {&a, &b}, *all[4] = {&a, &b, &k, &f};
    prepare(all, 4, 3);
    report("prepare at decode size (n = 3) makes nothing", prepared_mask(all, 4), 0);
    prepare(all, 4, 33);
    report("prepare at n = 33 copies the quantized weights only", prepared_mask(all, 4) != 7, 0);
    check_products("matmul x2 Q4_0 160x512 n=33 prepared (one batched GEMM)", ab, NULL, 2, 33,
                   TOL_H);
    check_products("matmul Q4_K 96x512 n=40 prepared", &all[2], NULL, 1, 40, TOL_H);
    check_products("matmul F16 64x512 n=33 (plain, beside a prepared set)", &all[3], NULL, 1, 33,
                   TOL_H);
    /* two sets alternate: a third request takes the older one's place */
    prepare(&all[0], 1, 33);
    report("a request the sets already hold is not made again", prepared_mask(all, 4) != 7, 0);
    tw c = make_weight(RS_DTYPE_Q4_0, 512, 160, 0.5f),
       d = make_weight(RS_DTYPE_Q4_0, 512, 160, 0.5f);
    tw *cd[2] = {&c, &d};
    prepare(&cd[0], 1, 64);
    report("a new request fills the other set",
           prepared_mask(all, 4) != 7 || prepared_mask(cd, 2) != 1, 0);
    prepare(&cd[1], 1, 64);
    report("the next one refills the older set",
           prepared_mask(all, 4) != 0 || prepared_mask(cd, 2) != 3, 0);
    check_products("matmul x2 Q4_0 n=33, both sets refilled since (inline dequantization)", ab,
                   NULL, 2, 33, TOL_H);
    tw *bc[2] = {&b, &c};
    check_products("matmul x2 Q4_0 n=33, one prepared one not", bc, NULL, 2, 33, TOL_H);
    check_products("matmul Q4_0 n=64 from the refilled set", &cd[1], NULL, 1, 64, TOL_H);
    free_weight(&c), free_weight(&d);
    /* unloading forgets the copy, even when a new weight reuses the memory */
    free_weight(&b);
    b = make_weight(RS_DTYPE_Q4_0, 512, 160, 0.5f);
    report("an unloaded weight's copy is forgotten", prepared_mask(ab, 2), 0);
    check_products("matmul Q4_0 n=33 after a prepared weight was unloaded", &ab[1], NULL, 1, 33,
                   TOL_H);
    /* switching the side stream's priority makes it again */
    rs_cuda_tuning t = base;
    t.prep_prio = !base.prep_prio;
    rs_cuda_set_tuning(B, &t);
    tw e = make_weight(RS_DTYPE_Q4_0, 512, 1000, 0.5f),
       q8 = make_weight(RS_DTYPE_Q8_0, 512, 77, 0.5f);
    tw *eq[2] = {&e, &q8};
    prepare(eq, 2, 40);
    report("prepare on a side stream made again copies both", prepared_mask(eq, 2) != 3, 0);
    check_products("matmul Q4_0 1000x512 n=40 prepared on the new stream", &eq[0], NULL, 1, 40,
                   TOL_H);
    check_products("matmul Q8_0 77x512 n=40 prepared on the new stream", &eq[1], NULL, 1, 40,
                   TOL_H);
    free_weight(&e), free_weight(&q8);
    t = base;
    t.prep = 0;
    rs_cuda_set_tuning(B, &t);
    prepare(ab, 2, 33);
    report("prepare switched off makes nothing", prepared_mask(ab, 2), 0);
    rs_cuda_set_tuning(B, &base);
    free_weight(&a), free_weight(&b), free_weight(&k), free_weight(&f);
}

/* ---- embed ---------------------------------------------------------------------------------- */

static void test_embed(void) {
    static const rs_dtype types[] = {RS_DTYPE_F32,  RS_DTYPE_F16,  RS_DTYPE_BF16,   RS_DTYPE_Q8_0,
                                     RS_DTYPE_Q4_0, RS_DTYPE_Q5_1, RS_DTYPE_IQ4_NL, RS_DTYPE_IQ4_XS,
                                     RS_DTYPE_Q4_K, RS_DTYPE_Q5_K, RS_DTYPE_Q6_K,   RS_DTYPE_Q2_K,
                                     RS_DTYPE_Q3_K};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        const int64_t n_in = 512, n_out = 77;
        const int n = 5;
        tw w = make_weight(types[i], n_in, n_out, 1.0f);
        int32_t ids[5] = {0, 76, 13, 13, 40};
        float *ref = malloc(sizeof(float) * n * n_in), *y = malloc(sizeof(float) * n * n_in);
        rs_ref_embed(&w.w, ids, n, ref);
        int32_t *dids = dev_copy(ids, sizeof ids);
        float *dy = dev(sizeof(float) * n * n_in);
        poison(dy, sizeof(float) * n * n_in);
        O->embed(B, &w.w, dids, n, dy);
        char name[64];
        snprintf(name, sizeof name, "embed %s", rs_dtype_name(types[i]));
        if (synced(name)) {
            down(y, dy, sizeof(float) * n * n_in);
            report(name, rel_err(y, ref, (size_t)(n * n_in)), 1e-6);
        }
        O->release(B, dids);
        O->release(B, dy);
        free(ref), free(y);
        free_weight(&w);
    }
}

/* ---- norms, swiglu, add
 * ---------------------------------------------------------------------------- */

static void check_norm(int dim, int n, int add) {
    tw w = make_weight(RS_DTYPE_F32, dim, 1, 1.0f);
    const size_t sz = (size_t)dim * n;
    float *x = host_rand(sz, 2.0f), *y = host_rand(sz, 1.0f), *ref = malloc(sz * 4),
          *out = malloc(sz * 4);
    float *dx = dev_copy(x, sz * 4), *dy = dev_copy(y, sz * 4), *dout = dev(sz * 4);
    poison(dout, sz * 4);
    if (add) {
        for (size_t i = 0; i < sz; i++) x[i] += y[i];
        O->add_rmsnorm(B, dx, dy, &w.w, 1e-5f, n, dout);
    } else {
        O->rmsnorm(B, dx, &w.w, 1e-5f, n, dout);
    }
    rs_ref_rmsnorm(x, w.bytes, 1e-5f, n, dim, ref);
    char name[64];
    snprintf(name, sizeof name, "%s dim=%d n=%d", add ? "add_rmsnorm" : "rmsnorm", dim, n);
    if (synced(name)) {
        down(out, dout, sz * 4);
        double e = rel_err(out, ref, sz);
        if (add) {
            float *xs = malloc(sz * 4);
            down(xs, dx, sz * 4);
            double ex = rel_err(xs, x, sz);
            e = ex > e ? ex : e;
            free(xs);
        }
        report(name, e, TOL_F32);
    }
    O->release(B, dx), O->release(B, dy), O->release(B, dout);
    free(x), free(y), free(ref), free(out);
    free_weight(&w);
}

static void check_elementwise(int64_t n) {
    float *g = host_rand((size_t)n, 6.0f), *u = host_rand((size_t)n, 1.0f), *ref = malloc(n * 4),
          *out = malloc(n * 4);
    float *dg = dev_copy(g, n * 4), *du = dev_copy(u, n * 4), *dout = dev(n * 4);
    poison(dout, n * 4);
    rs_ref_swiglu(g, u, n, ref);
    O->swiglu(B, dg, du, n, dout);
    char name[64];
    snprintf(name, sizeof name, "swiglu n=%lld", (long long)n);
    if (synced(name)) {
        down(out, dout, n * 4);
        report(name, rel_err(out, ref, (size_t)n), TOL_F32);
    }
    O->add(B, dg, du, n);
    for (int64_t i = 0; i < n; i++) ref[i] = g[i] + u[i];
    snprintf(name, sizeof name, "add n=%lld", (long long)n);
    if (synced(name)) {
        down(out, dg, n * 4);
        report(name, rel_err(out, ref, (size_t)n), 0.0);
    }
    O->release(B, dg), O->release(B, du), O->release(B, dout);
    free(g), free(u), free(ref), free(out);
}

/* A producer writes the int8 activations the next matvec reuses: compare
 * the pair with the reference pair. */
static void check_fused_pair(int dim, int n_out) {
    tw nw = make_weight(RS_DTYPE_F32, dim, 1, 1.0f),
       w = make_weight(RS_DTYPE_Q4_0, dim, n_out, 0.5f);
    float *x = host_rand(dim, 2.0f), *xn = malloc(dim * 4), *ref = malloc(n_out * 4),
          *y = malloc(n_out * 4);
    float *dx = dev_copy(x, dim * 4), *dxn = dev(dim * 4), *dy = dev(n_out * 4);
    poison(dy, n_out * 4);
    O->rmsnorm(B, dx, &nw.w, 1e-6f, 1, dxn);
    rs_matmul mm = {&w.w, NULL, dy};
    O->matmul(B, &mm, 1, dxn, 1);
    rs_ref_rmsnorm(x, nw.bytes, 1e-6f, 1, dim, xn);
    rs_ref_matmul(&w.w, NULL, xn, 1, ref);
    if (synced("rmsnorm -> matmul Q4_0 (fused int8)")) {
        down(y, dy, n_out * 4);
        report("rmsnorm -> matmul Q4_0 (fused int8)", rel_err(y, ref, n_out), TOL_Q8);
    }
    /* swiglu -> matmul */
    float *u = host_rand(dim, 1.0f), *du = dev_copy(u, dim * 4), *h = malloc(dim * 4);
    poison(dy, n_out * 4);
    O->swiglu(B, dx, du, dim, dxn);
    O->matmul(B, &mm, 1, dxn, 1);
    rs_ref_swiglu(x, u, dim, h);
    rs_ref_matmul(&w.w, NULL, h, 1, ref);
    if (synced("swiglu -> matmul Q4_0 (fused int8)")) {
        down(y, dy, n_out * 4);
        report("swiglu -> matmul Q4_0 (fused int8)", rel_err(y, ref, n_out), TOL_Q8);
    }
    O->release(B, dx), O->release(B, dxn), O->release(B, dy), O->release(B, du);
    free(x), free(xn), free(ref), free(y), free(u), free(h);
    free_weight(&nw), free_weight(&w);
}

static void test_small_ops(void) {
    static const int dims[] = {64, 100, 4096, 5000, 9000};
    for (int i = 0; i < 5; i++)
        for (int n = 1; n <= 7; n += 3) {
            check_norm(dims[i], n, 0);
            check_norm(dims[i], n, 1);
        }
    check_elementwise(1);
    check_elementwise(31);
    check_elementwise(4096);
    check_elementwise(100003);
    check_fused_pair(4096, 300);
    check_fused_pair(11008, 129);
    check_fused_pair(6144, 77); /* eight values per thread, the last two steps past the row */
}

/* ---- rope + cache store ------------------------------------------------------------------------
 */

static float *make_inv_freq(int n_rot) {
    float *f = malloc(sizeof(float) * (n_rot / 2 + 1));
    for (int i = 0; i < n_rot / 2; i++) f[i] = (float)pow(10000.0, -2.0 * i / n_rot);
    return f;
}

/* n <= 4 takes the decode kernel, more the per-token prompt kernel (Q8_0: the decode one) */
static void check_rope(int n_head, int n_kv, int hd, int n_rot, int neox, rs_kv_type kt, float af,
                       int n) {
    const int n_ctx = 2048;
    int32_t pos[64] = {0, 5, 1000, 2047};
    for (int t = 4; t < n; t++) pos[t] = (t * 97) % n_ctx; /* distinct for n <= 64 */
    rs_kv_desc d = {2, n_ctx, n_kv, hd, kt};
    rs_kv *kv = NULL;
    rs_error e = {0};
    if (O->kv_create(B, &d, &kv, &e)) die("kv_create", &e);
    const size_t nq = (size_t)n * n_head * hd, nk = (size_t)n * n_kv * hd;
    float *q = host_rand(nq, 1.0f), *k = host_rand(nk, 1.0f), *v = host_rand(nk, 1.0f);
    float *inv = make_inv_freq(n_rot), *dinv = dev_copy(inv, sizeof(float) * (n_rot / 2 + 1));
    float *dq = dev_copy(q, nq * 4), *dk = dev_copy(k, nk * 4), *dv = dev_copy(v, nk * 4);
    int32_t *dpos = dev_copy(pos, sizeof pos);
    rs_rope rope = {neox != 0, n_rot, dinv, af}, href = {neox != 0, n_rot, inv, af};
    rs_attn at = {n_head, n_kv, hd, 1.0f, 0};
    O->rope_store(B, dq, dk, dv, dpos, n, &rope, &at, kv, 1);
    rs_ref_rope(q, pos, n, n_head, hd, &href);
    rs_ref_rope(k, pos, n, n_kv, hd, &href);
    char name[96];
    snprintf(name, sizeof name, "rope_store %s h=%d/%d hd=%d rot=%d af=%.1f %s n=%d",
             neox ? "neox" : "norm", n_head, n_kv, hd, n_rot, af, kv_name(kt), n);
    if (synced(name)) {
        float *gq = malloc(nq * 4), *gk = malloc(nk * 4);
        down(gq, dq, nq * 4);
        down(gk, dk, nk * 4);
        double err = fmax(rel_err(gq, q, nq), rel_err(gk, k, nk));
        /* the cache at each position holds that token's rotated k and its v */
        float *ck = malloc(sizeof(float) * n_ctx * n_kv * hd),
              *cv = malloc(sizeof(float) * n_ctx * n_kv * hd);
        if (rs_cuda_kv_read(B, kv, 1, n_ctx, ck, cv, &e)) die("kv_read", &e);
        double ec = 0;
        for (int t = 0; t < n; t++) {
            const size_t o = (size_t)pos[t] * n_kv * hd, s = (size_t)t * n_kv * hd;
            if (kt == RS_KV_Q4_0) { /* exactly the CPU's blocks of the values the GPU stored */
                ec = fmax(ec, q4_cache_mismatch(ck + o, gk + s, n_kv, hd));
                ec = fmax(ec, q4_cache_mismatch(cv + o, v + s, n_kv, hd));
                continue;
            }
            ec = fmax(ec, rel_err(ck + o, k + s, (size_t)n_kv * hd));
            ec = fmax(ec, rel_err(cv + o, v + s, (size_t)n_kv * hd));
        }
        report(name, err, TOL_F32);
        snprintf(name, sizeof name, "  ... cache holds rotated k and v at pos (%s)", kv_name(kt));
        report(name, ec,
               kt == RS_KV_F16    ? TOL_KV16
               : kt == RS_KV_Q8_0 ? TOL_KVQ8
               : kt == RS_KV_Q4_0 ? 0
                                  : TOL_F32);
        free(gq), free(gk), free(ck), free(cv);
    }
    O->release(B, dq), O->release(B, dk), O->release(B, dv), O->release(B, dpos),
        O->release(B, dinv);
    O->kv_destroy(B, kv);
    free(q), free(k), free(v), free(inv);
}

/* A prompt's layers share one angle table: layer 1 reads what layer 0 wrote;
 * new positions uploaded in between must not see the stale table. */
static void check_rope_table(void) {
    const int n = 20, n_head = 4, n_kv = 2, hd = 64, n_ctx = 4096;
    rs_kv_desc d = {2, n_ctx, n_kv, hd, RS_KV_F16};
    rs_kv *kv = NULL;
    rs_error e = {0};
    if (O->kv_create(B, &d, &kv, &e)) die("kv_create", &e);
    float *inv = make_inv_freq(hd), *dinv = dev_copy(inv, sizeof(float) * (hd / 2 + 1));
    rs_rope rope = {true, hd, dinv, 1.0f}, href = {true, hd, inv, 1.0f};
    rs_attn at = {n_head, n_kv, hd, 1.0f, 0};
    const size_t nq = (size_t)n * n_head * hd, nk = (size_t)n * n_kv * hd;
    int32_t pos[3][20];
    int32_t *dpos = dev(sizeof pos[0]);
    float *q[3], *k[3], *v[3], *dq[3], *dk[3], *dv[3];
    for (int st = 0; st < 3; st++) { /* all inputs uploaded first: uploads reset the table */
        q[st] = host_rand(nq, 1.0f), k[st] = host_rand(nk, 1.0f), v[st] = host_rand(nk, 1.0f);
        dq[st] = dev_copy(q[st], nq * 4), dk[st] = dev_copy(k[st], nk * 4),
        dv[st] = dev_copy(v[st], nk * 4);
        for (int t = 0; t < n; t++)
            pos[st][t] = st == 1 ? pos[0][t] : (int32_t)((frand() + 1.0f) * 2000.0f);
    }
    double worst = 0;
    for (int st = 0; st < 3; st++) {
        if (st != 1)
            up(dpos, pos[st], sizeof pos[st]); /* step 1 reuses step 0's positions and table */
        O->rope_store(B, dq[st], dk[st], dv[st], dpos, n, &rope, &at, kv, st == 1 ? 1 : 0);
        rs_ref_rope(q[st], pos[st], n, n_head, hd, &href);
        rs_ref_rope(k[st], pos[st], n, n_kv, hd, &href);
    }
    if (synced("rope_store angle table")) {
        for (int st = 0; st < 3; st++) {
            float *gq = malloc(nq * 4), *gk = malloc(nk * 4);
            down(gq, dq[st], nq * 4);
            down(gk, dk[st], nk * 4);
            worst = fmax(worst, fmax(rel_err(gq, q[st], nq), rel_err(gk, k[st], nk)));
            free(gq), free(gk);
        }
    }
    for (int st = 0; st < 3; st++) {
        O->release(B, dq[st]), O->release(B, dk[st]), O->release(B, dv[st]);
        free(q[st]), free(k[st]), free(v[st]);
    }
    report("rope_store prompt: angle table reused by layer 1, rebuilt after an upload", worst,
           TOL_F32);
    O->release(B, dpos), O->release(B, dinv);
    O->kv_destroy(B, kv);
    free(inv);
}

static void test_rope(void) {
    check_rope_table();
    for (int n = 4; n <= 37; n += 33) {
        check_rope(8, 4, 64, 64, 0, RS_KV_F16, 1.0f, n);
        check_rope(8, 4, 64, 32, 1, RS_KV_F16, 1.0f, n);
        check_rope(6, 2, 16, 16, 1, RS_KV_F32, 0.7f, n);
        check_rope(4, 4, 128, 128, 0, RS_KV_F32, 1.0f, n);
        check_rope(32, 8, 128, 128, 1, RS_KV_F16, 1.0f, n);
        check_rope(8, 4, 64, 64, 0, RS_KV_Q8_0, 1.0f, n);
        check_rope(6, 2, 16, 16, 1, RS_KV_Q8_0, 0.7f, n); /* a row shorter than one block */
        check_rope(4, 2, 80, 80, 0, RS_KV_Q8_0, 1.0f, n); /* 32 + 32 + 16 */
        check_rope(4, 2, 80, 48, 0, RS_KV_F16, 1.0f, n);  /* partial rotation */
        check_rope(8, 4, 64, 64, 0, RS_KV_Q4_0, 1.0f, n);
        check_rope(32, 8, 128, 128, 1, RS_KV_Q4_0, 0.7f, n);
        check_rope(4, 2, 96, 64, 0, RS_KV_Q4_0, 1.0f, n); /* three blocks, partial rotation */
    }
}

/* ---- attention
 * ------------------------------------------------------------------------------------ */

/* chunk: positions per decode split, gb: query heads per decode block (0: automatic),
 * mma: prompt attention on the tensor cores (2: its tiles in plain order), ctx_max: the
 * caller's bound on the context (rs_attn.ctx_max; 0: none) */
static void check_attention_at(int n_head, int n_kv, int hd, int n_ctx, int last_pos, int n,
                               rs_kv_type kt, int chunk, int mma, int gb, int ctx_max) {
    rs_kv_desc d = {2, n_ctx, n_kv, hd, kt};
    rs_kv *kv = NULL;
    rs_error e = {0};
    if (O->kv_create(B, &d, &kv, &e)) die("kv_create", &e);
    rs_cuda_kv_fill_random(B, kv, rng++);
    const int n_pos = last_pos + 1;
    float *ck = malloc(sizeof(float) * n_pos * n_kv * hd),
          *cv = malloc(sizeof(float) * n_pos * n_kv * hd);
    if (rs_cuda_kv_read(B, kv, 1, n_pos, ck, cv, &e)) die("kv_read", &e);
    int32_t *pos = malloc(sizeof(int32_t) * n);
    for (int t = 0; t < n; t++) pos[t] = last_pos - (n - 1 - t);
    const size_t nq = (size_t)n * n_head * hd;
    float *q = host_rand(nq, 1.0f), *ref = malloc(nq * 4), *out = malloc(nq * 4);
    rs_attn at = {n_head, n_kv, hd, 1.0f / sqrtf((float)hd), ctx_max};
    float *dq = dev_copy(q, nq * 4), *dout = dev(nq * 4);
    if (attn_int_keys(kt, hd, n)) q8_round_trip(q, (size_t)n * n_head, hd);
    rs_ref_attention(q, ck, cv, pos, n, &at, ref);
    int32_t *dpos = dev_copy(pos, sizeof(int32_t) * n);
    poison(dout, nq * 4);
    rs_cuda_tuning tu, old;
    rs_cuda_get_tuning(B, &old);
    tu = old;
    tu.attn_chunk = chunk;
    tu.attn_mma = mma != 0;
    tu.attn_zig = mma != 2;
    tu.attn_gb = gb;
    rs_cuda_set_tuning(B, &tu);
    O->attention(B, dq, kv, 1, dpos, n, &at, dout);
    rs_cuda_set_tuning(B, &old);
    char name[160];
    const int tensor_cores = mma && kt != RS_KV_F32 && (hd == 64 || hd == 128) && n > 4;
    /* a Q4_0 cache's prompts (and decode shapes the split kernel does not take) read it
     * converted to F16: fp16 rounding of d * (q - 8) */
    const int q4_f16 =
        kt == RS_KV_Q4_0 && (n > 4 || (hd != 32 && hd != 64 && hd != 128 && hd != 256));
    char gbs[32] = "";
    if (gb) snprintf(gbs, sizeof gbs, " %d heads/block", gb);
    char bound[32] = "";
    if (ctx_max) snprintf(bound, sizeof bound, " ctx<=%d", ctx_max);
    snprintf(name, sizeof name, "attention h=%d/%d hd=%d pos..%d n=%d %s%s%s%s%s", n_head, n_kv, hd,
             last_pos, n, kv_name(kt), chunk ? " chunk" : "",
             tensor_cores ? (mma == 2 ? " mma plain order" : " mma") : "", gbs, bound);
    if (synced(name)) {
        down(out, dout, nq * 4);
        report(name, rel_err(out, ref, nq), tensor_cores || q4_f16 ? TOL_MMA : TOL_ATTN);
    }
    if (ctx_max && n <= 4) {
        /* a bounded context may run the short kernel: by default a block per head, here a
         * block per 32-dim slice */
        poison(dout, nq * 4);
        tu.attn_pack = 1;
        rs_cuda_set_tuning(B, &tu);
        O->attention(B, dq, kv, 1, dpos, n, &at, dout);
        rs_cuda_set_tuning(B, &old);
        if (synced("  ... a block per slice")) {
            down(out, dout, nq * 4);
            report("  ... a block per slice", rel_err(out, ref, nq), TOL_ATTN);
        }
    }
    if (tensor_cores && gb == 0) {
        /* the output projection's GEMM reads the F16 copy the kernel wrote beside out */
        tw wo = make_weight(RS_DTYPE_F16, (int64_t)n_head * hd, 48, 0.5f);
        float *dy = dev((size_t)n * 48 * 4), *y = host_alloc((size_t)n * 48),
              *yr = host_alloc((size_t)n * 48);
        rs_matmul mm = {&wo.w, NULL, dy};
        rs_cuda_set_tuning(B, &tu);
        O->attention(B, dq, kv, 1, dpos, n, &at, dout);
        O->matmul(B, &mm, 1, dout, n);
        rs_cuda_set_tuning(B, &old);
        rs_ref_matmul(&wo.w, NULL, ref, n, yr);
        if (synced("  ... F16 GEMM on its output")) {
            down(y, dy, (size_t)n * 48 * 4);
            report("  ... F16 GEMM on its output", rel_err(y, yr, (size_t)n * 48), TOL_MMA + TOL_H);
        }
        O->release(B, dy);
        free(y), free(yr);
        free_weight(&wo);
    }
    O->release(B, dq), O->release(B, dout), O->release(B, dpos);
    O->kv_destroy(B, kv);
    free(ck), free(cv), free(pos), free(q), free(ref), free(out);
}

static void check_attention(int n_head, int n_kv, int hd, int n_ctx, int last_pos, int n,
                            rs_kv_type kt, int chunk, int mma, int gb) {
    check_attention_at(n_head, n_kv, hd, n_ctx, last_pos, n, kt, chunk, mma, gb, 0);
}

static void test_attention(void) {
    /* decode at a bounded context: unsplit where the bound fits the registers of 128 or 256
     * threads (F16 cache; head_dim 128 up to 128 / 256 positions, 64 up to 256 / 512), the
     * split kernel otherwise */
    static const int bounds[] = {32, 64, 128, 256};
    for (int i = 0; i < 4; i++) {
        const int b = bounds[i];
        check_attention_at(32, 32, 128, 4096, b - 1, 1, RS_KV_F16, 0, 0, 0, b);
        check_attention_at(32, 32, 128, 4096, b / 2, 1, RS_KV_F16, 0, 0, 0, b);
        check_attention_at(32, 32, 128, 4096, b - 1, 1, RS_KV_Q8_0, 0, 0, 0, b);
    }
    /* Q8_0 caches of query-head groups, unsplit over twice F16's context (one head a kv
     * head: split) */
    check_attention_at(32, 8, 128, 4096, 511, 1, RS_KV_Q8_0, 0, 0, 0, 512);
    check_attention_at(32, 8, 128, 4096, 300, 2, RS_KV_Q8_0, 0, 0, 0, 512);
    check_attention_at(24, 8, 128, 4096, 400, 1, RS_KV_Q8_0, 0, 0, 0, 512);
    check_attention_at(32, 4, 64, 4096, 1023, 1, RS_KV_Q8_0, 0, 0, 0, 1024);
    check_attention_at(32, 4, 64, 4096, 600, 4, RS_KV_Q8_0, 0, 0, 0, 1024);
    check_attention_at(32, 32, 128, 4096, 511, 1, RS_KV_Q8_0, 0, 0, 0, 512);
    /* Q8_0 caches, unsplit: GQA, two heads a block, head_dim 64, 2-4 tokens */
    check_attention_at(32, 8, 128, 4096, 100, 1, RS_KV_Q8_0, 0, 0, 0, 128);
    check_attention_at(32, 8, 128, 4096, 200, 2, RS_KV_Q8_0, 0, 0, 2, 256);
    check_attention_at(32, 4, 64, 2048, 511, 1, RS_KV_Q8_0, 0, 0, 0, 512);
    check_attention_at(32, 4, 64, 2048, 300, 4, RS_KV_Q8_0, 0, 0, 2, 512);
    check_attention_at(6, 2, 64, 1000, 200, 3, RS_KV_Q8_0, 0, 0, 0, 256);
    /* Q4_0 caches: the short kernel in every band and layout, the split kernel past them
     * (every group width, head sizes 32..256, 2-4 tokens, long contexts), and prompts (and
     * head sizes the decode kernels do not take) over the cache converted to F16 */
    for (int i = 0; i < 4; i++)
        check_attention_at(32, 32, 128, 4096, bounds[i] - 1, 1, RS_KV_Q4_0, 0, 0, 0, bounds[i]);
    check_attention_at(32, 8, 128, 4096, 511, 1, RS_KV_Q4_0, 0, 0, 0, 512);
    check_attention_at(32, 4, 64, 4096, 1023, 2, RS_KV_Q4_0, 0, 0, 0, 1024);
    check_attention_at(32, 8, 128, 4096, 200, 2, RS_KV_Q4_0, 0, 0, 2, 256);
    check_attention_at(6, 2, 64, 1000, 200, 3, RS_KV_Q4_0, 0, 0, 0, 256);
    check_attention(32, 32, 128, 4096, 4095, 1, RS_KV_Q4_0, 0, 0, 0); /* Llama-2-7B, full */
    check_attention(32, 8, 128, 5000, 4321, 1, RS_KV_Q4_0, 0, 0, 0);  /* GQA 4 */
    check_attention(64, 4, 64, 800, 513, 2, RS_KV_Q4_0, 0, 0, 0);     /* GQA 16: two slices */
    for (int gb = 1; gb <= 8; gb *= 2)
        check_attention(32, 4, 128, 3000, 2500, 4, RS_KV_Q4_0, 0, 0, gb);
    /* long bands choose two heads a block: past 16384 positions (a band cut at the cache's
     * size), past 8192 for groups of 8 */
    check_attention_at(32, 8, 128, 17000, 16900, 1, RS_KV_Q4_0, 0, 0, 0, 17000);
    check_attention_at(64, 8, 128, 16384, 9000, 1, RS_KV_Q4_0, 0, 0, 0, 16384);
    check_attention_at(64, 8, 128, 16384, 9000, 1, RS_KV_F16, 0, 0, 0, 16384); /* four */
    check_attention_at(64, 8, 128, 16384, 9000, 2, RS_KV_F16, 0, 0, 0, 16384);
    check_attention(8, 2, 32, 300, 128, 1, RS_KV_Q4_0, 0, 0, 0);
    check_attention(8, 2, 256, 300, 131, 3, RS_KV_Q4_0, 0, 0, 0);
    check_attention(8, 8, 64, 300, 0, 1, RS_KV_Q4_0, 0, 0, 0);      /* a single position */
    check_attention(8, 2, 64, 2048, 1999, 3, RS_KV_Q4_0, 32, 0, 0); /* fixed small chunks */
    check_attention(8, 4, 96, 300, 200, 1, RS_KV_Q4_0, 0, 0, 0);    /* decode through F16 */
    for (int mma = 0; mma <= 1; mma++) {
        check_attention(8, 4, 128, 1200, 1100, 130, RS_KV_Q4_0, 0, mma, 0);
        check_attention(32, 32, 128, 600, 511, 512, RS_KV_Q4_0, 0, mma, 0);
        check_attention(8, 2, 64, 2000, 1500, 100, RS_KV_Q4_0, 0, mma, 0);
    }
    check_attention(4, 2, 160, 400, 300, 20, RS_KV_Q4_0, 0, 1, 0); /* the SIMT prompt kernel */
    check_attention_at(32, 32, 128, 4096, 0, 1, RS_KV_F16, 0, 0, 0, 32);   /* one position */
    check_attention_at(32, 8, 128, 4096, 100, 1, RS_KV_F16, 0, 0, 0, 128); /* GQA 4 */
    check_attention_at(32, 8, 128, 4096, 100, 1, RS_KV_F16, 0, 0, 2, 128); /* two heads a block */
    check_attention_at(32, 8, 128, 4096, 200, 2, RS_KV_F16, 0, 0, 2, 256); /* ... 256 threads */
    check_attention_at(32, 4, 64, 2048, 255, 1, RS_KV_F16, 0, 0, 0, 256);  /* TinyLlama's shape */
    check_attention_at(32, 4, 64, 2048, 37, 3, RS_KV_F16, 0, 0, 2, 64);
    check_attention_at(32, 4, 64, 2048, 511, 1, RS_KV_F16, 0, 0, 0, 512);
    check_attention_at(32, 4, 64, 2048, 300, 4, RS_KV_F16, 0, 0, 2, 512);
    check_attention_at(6, 2, 64, 1000, 200, 4, RS_KV_F16, 0, 0, 0, 256);    /* GQA 3, 4 tokens */
    check_attention_at(7, 7, 128, 100, 99, 2, RS_KV_F16, 0, 0, 0, 100);     /* the cache's size */
    check_attention_at(32, 32, 128, 4096, 300, 1, RS_KV_F16, 0, 0, 0, 512); /* bound too long */
    check_attention_at(8, 4, 128, 900, 100, 2, RS_KV_F32, 0, 0, 0, 128);    /* F32: split */
    check_attention_at(8, 4, 32, 900, 100, 1, RS_KV_F16, 0, 0, 0, 128);     /* head_dim 32 */
    /* decode (flash-decoding), every head size and group width */
    static const int hds[] = {8, 16, 32, 64, 128, 256};
    for (int i = 0; i < 6; i++) check_attention(8, 4, hds[i], 600, 299, 1, RS_KV_F16, 0, 0, 0);
    check_attention(32, 32, 128, 4096, 4095, 1, RS_KV_F16, 0, 0,
                    0);                                             /* Llama-2-7B at full context */
    check_attention(32, 32, 128, 4096, 100, 1, RS_KV_F16, 0, 0, 0); /* ... short context */
    check_attention(32, 8, 128, 5000, 4321, 1, RS_KV_F16, 0, 0, 0); /* GQA 4 */
    check_attention(6, 2, 64, 1000, 777, 1, RS_KV_F16, 0, 0, 0);    /* GQA 3 */
    check_attention(64, 4, 64, 800, 513, 2, RS_KV_F16, 0, 0, 0);    /* GQA 16: two slices */
    check_attention(8, 8, 64, 300, 0, 1, RS_KV_F16, 0, 0, 0);       /* a single position */
    check_attention(8, 2, 64, 300, 31, 1, RS_KV_F16, 0, 0, 0);      /* chunk edges */
    check_attention(8, 2, 64, 300, 32, 1, RS_KV_F16, 0, 0, 0);
    check_attention(8, 2, 64, 300, 128, 1, RS_KV_F16, 0, 0, 0);
    check_attention(8, 2, 64, 2048, 1999, 3, RS_KV_F16, 32, 0, 0);  /* fixed small chunks */
    check_attention(4, 4, 64, 40000, 39999, 1, RS_KV_F16, 0, 0, 0); /* long context, wide chunks */
    check_attention(8, 4, 128, 900, 650, 4, RS_KV_F32, 0, 0, 0);
    check_attention(4, 4, 16, 300, 200, 2, RS_KV_F32, 0, 0, 0);
    /* prefill: SIMT tiles and tensor cores (tiles paired heavy with light per SM, and
     * in plain order), and the fallbacks */
    for (int mma = 0; mma <= 2; mma++) {
        check_attention(8, 4, 64, 300, 69, 70, RS_KV_F16, 0, mma, 0);
        check_attention(8, 4, 128, 1200, 1100, 130, RS_KV_F16, 0, mma, 0);
        check_attention(32, 32, 128, 600, 511, 512, RS_KV_F16, 0, mma, 0);
        check_attention(8, 2, 64, 2000, 1500, 100, RS_KV_F16, 0, mma,
                        0); /* past context before the batch */
        check_attention(4, 4, 128, 100, 9, 5, RS_KV_F16, 0, mma, 0);
    }
    /* 400 (tile, head) items: every other run of one block per SM reversed, the last partial */
    check_attention(40, 8, 64, 700, 650, 600, RS_KV_F16, 0, 1, 0);
    check_attention(4, 1, 256, 200, 150, 17, RS_KV_F16, 0, 1, 0);
    check_attention(4, 2, 16, 100, 40, 41, RS_KV_F32, 0, 1, 0);
    check_attention(8, 4, 128, 300, 100, 20, RS_KV_F32, 0, 1, 0);
    check_attention(8, 4, 8, 100, 64, 65, RS_KV_F16, 0, 1, 0);
    check_attention(8, 4, 80, 300, 200, 1, RS_KV_F16, 0, 1, 0); /* not a power of two */
    check_attention(8, 4, 12, 300, 200, 9, RS_KV_F16, 0, 1, 0); /* multiple of 4 only */
    check_attention(4, 2, 6, 100, 60, 5, RS_KV_F16, 0, 1, 0);   /* generic kernel */
    check_attention(4, 2, 6, 100, 60, 1, RS_KV_F32, 0, 1, 0);
    /* Q8_0 cache: decode, SIMT and tensor-core prefill, generic */
    check_attention(32, 32, 128, 4096, 4095, 1, RS_KV_Q8_0, 0, 0, 0);
    check_attention(32, 8, 128, 5000, 4321, 1, RS_KV_Q8_0, 0, 0, 0);
    check_attention(64, 4, 64, 800, 513, 2, RS_KV_Q8_0, 0, 0, 0);
    check_attention(8, 4, 16, 600, 299, 1, RS_KV_Q8_0, 0, 0, 0); /* one 16-value block per row */
    check_attention(8, 2, 64, 2048, 1999, 3, RS_KV_Q8_0, 32, 0, 0);
    /* every forced width of a decode block's query heads (slices of a wider group) */
    for (int gb = 1; gb <= 8; gb *= 2) {
        check_attention(32, 4, 128, 3000, 2500, 1, RS_KV_F16, 0, 0, gb);
        check_attention(32, 8, 128, 3000, 2999, 2, RS_KV_Q8_0, 0, 0, gb);
    }
    for (int mma = 0; mma <= 1; mma++) {
        check_attention(8, 4, 128, 1200, 1100, 130, RS_KV_Q8_0, 0, mma, 0);
        check_attention(8, 2, 64, 2000, 1500, 100, RS_KV_Q8_0, 0, mma, 0);
    }
    check_attention(8, 4, 80, 300, 200, 9, RS_KV_Q8_0, 0, 1, 0); /* SIMT tiles, 32 + 32 + 16 */
    check_attention(4, 2, 6, 100, 60, 5, RS_KV_Q8_0, 0, 1, 0);   /* generic kernel */
}

/* ---- graph capture and replay
 * ---------------------------------------------------------------------- */

typedef struct mini {
    int dim, n_head, n_kv, hd, n_ff;
    int fused; /* the op sequence of src/model/forward.c (fused ops) rather than the plain ops */
    tw attn_norm, wq, wk, wv, wo, ffn_norm, gate, up, down;
    float *x, *xn, *q, *k, *v, *att, *tmp, *g, *u, *inv;
    int32_t *pos;
    rs_rope rope;
    rs_attn at;
} mini;

/* One Llama layer through the op table: the model's forward pass (fused: its
 * last op leaves the next layer's norm pending in xn), or the plain ops. */
static void mini_layer(mini *m, rs_kv *kv) {
    O->rmsnorm(B, m->x, &m->attn_norm.w, 1e-5f, 1, m->xn);
    rs_matmul qkv[3] = {{&m->wq.w, NULL, m->q}, {&m->wk.w, NULL, m->k}, {&m->wv.w, NULL, m->v}};
    if (m->fused) {
        O->matmul_rope_store(B, qkv, m->xn, 1, m->pos, &m->rope, &m->at, kv, 0);
        O->attention(B, m->q, kv, 0, m->pos, 1, &m->at, m->att);
        O->matmul_residual(B, &m->wo.w, m->att, 1, m->x, &m->ffn_norm.w, 1e-5f, m->xn);
        O->matmul_swiglu(B, &m->gate.w, &m->up.w, m->xn, 1, m->g, m->u);
        O->matmul_residual(B, &m->down.w, m->g, 1, m->x, &m->attn_norm.w, 1e-5f, m->xn);
        return;
    }
    O->matmul(B, qkv, 3, m->xn, 1);
    O->rope_store(B, m->q, m->k, m->v, m->pos, 1, &m->rope, &m->at, kv, 0);
    O->attention(B, m->q, kv, 0, m->pos, 1, &m->at, m->att);
    rs_matmul wo = {&m->wo.w, NULL, m->tmp};
    O->matmul(B, &wo, 1, m->att, 1);
    O->add_rmsnorm(B, m->x, m->tmp, &m->ffn_norm.w, 1e-5f, 1, m->xn);
    rs_matmul ffn[2] = {{&m->gate.w, NULL, m->g}, {&m->up.w, NULL, m->u}};
    O->matmul(B, ffn, 2, m->xn, 1);
    O->swiglu(B, m->g, m->u, m->n_ff, m->g);
    rs_matmul dn = {&m->down.w, NULL, m->tmp};
    O->matmul(B, &dn, 1, m->g, 1);
    O->add(B, m->x, m->tmp, m->dim);
}

static void check_graph(int fused, rs_kv_type kt) {
    mini m = {.dim = 512, .n_head = 8, .n_kv = 2, .hd = 64, .n_ff = 1024, .fused = fused};
    m.attn_norm = make_weight(RS_DTYPE_F32, m.dim, 1, 1.0f);
    m.ffn_norm = make_weight(RS_DTYPE_F32, m.dim, 1, 1.0f);
    m.wq = make_weight(RS_DTYPE_Q4_0, m.dim, m.n_head * m.hd, 0.1f);
    m.wk = make_weight(RS_DTYPE_Q4_K, m.dim, m.n_kv * m.hd, 0.1f);
    m.wv = make_weight(RS_DTYPE_Q8_0, m.dim, m.n_kv * m.hd, 0.1f);
    m.wo = make_weight(RS_DTYPE_Q6_K, m.n_head * m.hd, m.dim, 0.1f);
    m.gate = make_weight(RS_DTYPE_Q4_0, m.dim, m.n_ff, 0.1f);
    m.up = make_weight(RS_DTYPE_Q4_0, m.dim, m.n_ff, 0.1f);
    m.down = make_weight(RS_DTYPE_F16, m.n_ff, m.dim, 0.1f);
    m.x = dev(m.dim * 4), m.xn = dev(m.dim * 4), m.tmp = dev(m.dim * 4);
    m.q = dev(m.n_head * m.hd * 4), m.att = dev(m.n_head * m.hd * 4);
    m.k = dev(m.n_kv * m.hd * 4), m.v = dev(m.n_kv * m.hd * 4);
    m.g = dev(m.n_ff * 4), m.u = dev(m.n_ff * 4), m.pos = dev(4);
    float *inv = make_inv_freq(m.hd);
    m.inv = dev_copy(inv, sizeof(float) * m.hd / 2);
    m.rope = (rs_rope){false, m.hd, m.inv, 1.0f};
    m.at = (rs_attn){m.n_head, m.n_kv, m.hd, 0.125f, 0};
    rs_kv_desc d = {1, 700, m.n_kv, m.hd, kt};
    rs_kv *kv_direct = NULL, *kv_graph = NULL;
    rs_error e = {0};
    if (O->kv_create(B, &d, &kv_direct, &e) || O->kv_create(B, &d, &kv_graph, &e))
        die("kv_create", &e);
    const char *env = getenv("RUSTY_CUDA_GRAPH_STEPS");
    const int STEPS = env ? atoi(env) : 300;
    /* x and xn after the layer, direct (a) and replayed (b) */
    float *xs = host_rand((size_t)STEPS * m.dim, 1.0f), *a = malloc(m.dim * 8),
          *b = malloc(m.dim * 8);
    double worst = 0;
    int mismatch = 0, captured = 0;
    for (int s = 0; s < STEPS; s++) {
        int32_t p = s;
        /* direct */
        up(m.pos, &p, 4);
        up(m.x, xs + (size_t)s * m.dim, m.dim * 4);
        mini_layer(&m, kv_direct);
        down(a, m.x, m.dim * 4);
        down(a + m.dim, m.xn, m.dim * 4);
        /* graph: captured at the first step, replayed with new positions and inputs */
        up(m.pos, &p, 4);
        up(m.x, xs + (size_t)s * m.dim, m.dim * 4);
        if (!captured) {
            if (O->graph_begin(B, 7, &e)) die("graph_begin", &e);
            mini_layer(&m, kv_graph);
            if (O->graph_end(B, 7, &e)) die("graph_end", &e);
            captured = 1;
        }
        if (!O->graph_launch(B, 7)) die("graph_launch", NULL);
        down(b, m.x, m.dim * 4);
        down(b + m.dim, m.xn, m.dim * 4);
        if (!synced("graph replay")) break;
        if (memcmp(a, b, m.dim * 8) != 0) mismatch++;
        worst = fmax(worst, rel_err(b, a, 2 * m.dim));
    }
    printf("     graph replay: %d of %d steps differ bitwise from direct execution\n", mismatch,
           STEPS);
    char name[128];
    snprintf(name, sizeof name,
             "graph capture + %d replays == direct (Q4_0/Q4_K/Q8_0/Q6_K/F16, %s, %s cache)", STEPS,
             fused ? "fused ops" : "plain ops", kv_name(kt));
    report(name, mismatch ? fmax(worst, 1e-30) : 0.0, 0.0);
    O->kv_destroy(B, kv_direct);
    O->kv_destroy(B, kv_graph);
    free(xs), free(a), free(b), free(inv);
    tw *ws[] = {&m.attn_norm, &m.ffn_norm, &m.wq, &m.wk, &m.wv, &m.wo, &m.gate, &m.up, &m.down};
    for (int i = 0; i < 9; i++) free_weight(ws[i]);
    float *bufs[] = {m.x, m.xn, m.tmp, m.q, m.att, m.k, m.v, m.g, m.u, m.inv};
    for (int i = 0; i < 10; i++) O->release(B, bufs[i]);
    O->release(B, m.pos);
}

static void test_graph(void) {
    check_graph(0, RS_KV_F16);
    check_graph(1, RS_KV_F16);
    check_graph(1, RS_KV_Q8_0);
}

/* ---- errors
 * ------------------------------------------------------------------------------------------ */

/* ---- greedy pick and fences ---------------------------------------------------------------
 */

/* One greedy_pick against rs_logits_argmax: the id, its slot in the page-locked ring (the
 * other slots untouched) and the position moved on. */
static void check_pick(const char *what, const float *logits, int n, int pos0) {
    enum { SLOTS = 4 };
    float *dl = dev_copy(logits, (size_t)n * 4);
    int32_t *dids = dev(4), *dpos = dev(4), *ring = NULL;
    rs_error e = {0};
    if (O->host_alloc(B, SLOTS * sizeof *ring, (void **)&ring, &e)) die("host_alloc", &e);
    for (int i = 0; i < SLOTS; i++) ring[i] = -2;
    up(dpos, &pos0, 4);
    poison(dids, 4);
    O->greedy_pick(B, dl, n, NULL, dids, dpos, ring, NULL, SLOTS);
    const int slot = pos0 % SLOTS;
    rs_status st = O->fence_mark(B, slot, &e);
    if (!st) st = O->fence_wait(B, slot, &e);
    const int32_t want = rs_logits_argmax(logits, n), seen = ring[slot]; /* before any sync */
    int32_t id = -1, pos = -1;
    if (st == RS_OK && synced(what)) {
        down(&id, dids, 4);
        down(&pos, dpos, 4);
        int others = 0;
        for (int i = 0; i < SLOTS; i++) others += i != slot && ring[i] != -2;
        const bool ok = id == want && seen == want && pos == pos0 + 1 && !others;
        if (!ok)
            printf("     %s: id %d, ring %d, want %d; pos %d; other slots written %d\n", what, id,
                   seen, want, pos, others);
        report(what, ok ? 0.0 : 1.0, 0.0);
    } else if (st) {
        printf("FAIL %-70s fence: %s\n", what, e.msg);
        n_fail++;
    }
    O->host_free(B, ring);
    O->release(B, dl), O->release(B, dids), O->release(B, dpos);
}

static void test_greedy_pick(void) {
    static const int sizes[] = {1, 31, 1023, 1025, 32000, 151936};
    char name[96];
    for (int k = 0; k < 6; k++) {
        const int n = sizes[k];
        float *l = host_rand((size_t)n, 8.0f);
        snprintf(name, sizeof name, "greedy_pick: random logits, n=%d", n);
        check_pick(name, l, n, 7 + k);
        if (n > 3) { /* two equal maxima: the lower id */
            l[n / 3] = l[n - 2] = 100.0f;
            snprintf(name, sizeof name, "greedy_pick: tie between %d and %d", n / 3, n - 2);
            check_pick(name, l, n, 4096 + k);
            l[n - 1] = 200.0f; /* the last id wins alone */
            snprintf(name, sizeof name, "greedy_pick: maximum at the last id, n=%d", n);
            check_pick(name, l, n, 0);
        }
        free(l);
    }
    enum { N = 9000 }; /* three slices */
    float *l = host_alloc(N);
    for (int i = 0; i < N; i++) l[i] = NAN;
    check_pick("greedy_pick: every logit NaN (id 0)", l, N, 3);
    for (int i = 0; i < N; i++) l[i] = -INFINITY;
    check_pick("greedy_pick: every logit -inf (id 0)", l, N, 5);
    l[2500] = -1e30f;
    l[17] = NAN;
    check_pick("greedy_pick: one finite logit among -inf and NaN", l, N, 6);
    l[1200] = FLT_MAX;
    l[900] = INFINITY; /* +inf counts as FLT_MAX: the lower id, 900, wins */
    l[2900] = INFINITY;
    check_pick("greedy_pick: +inf ties FLT_MAX", l, N, 9);
    free(l);
    rs_error e = {0};
    const bool refused = O->fence_wait(B, RS_FENCES, &e) == RS_ERR_ARG &&
                         O->fence_wait(B, -1, &e) == RS_ERR_ARG &&
                         O->fence_mark(B, RS_FENCES, &e) == RS_ERR_ARG;
    report("fence slots out of range are refused", refused ? 0.0 : 1.0, 0.0);
    report("sync is clean after the refused fences", O->sync(B, &e) == RS_OK ? 0.0 : 1.0, 0.0);
}

/* ---- sample pick --------------------------------------------------------------------------
 */

/* What a chained pick writes: the next token id and position (device), the host's ring of
 * picks and of RNG states after them (page-locked), SLOTS of each. */
enum { SLOTS = 4 };
typedef struct pick_io {
    int32_t *ids, *pos, *ring;
    uint64_t *rngs;
} pick_io;

static pick_io pick_io_open(int pos0) {
    rs_error e = {0};
    pick_io io = {dev(4), dev(4), NULL, NULL};
    if (O->host_alloc(B, SLOTS * sizeof *io.ring, (void **)&io.ring, &e) ||
        O->host_alloc(B, SLOTS * 4 * sizeof *io.rngs, (void **)&io.rngs, &e))
        die("host_alloc", &e);
    up(io.pos, &pos0, 4);
    return io;
}

static void pick_io_close(pick_io *io) {
    O->host_free(B, io->ring);
    O->host_free(B, io->rngs);
    O->release(B, io->ids), O->release(B, io->pos);
}

/* `steps` sample_picks in a row on the same logits against rs_sampler_sample with the same
 * parameters and seed: each token, the RNG state each pick leaves in its ring slot and in
 * the rule, the position moved on. */
static void check_sample(const char *name, const float *logits, int n, rs_sampler_params sp,
                         int steps) {
    char what[160]; /* the draws named: `gpu.sh pick` reads the kernel times by them */
    snprintf(what, sizeof what, "%s (%d draws)", name, steps);
    rs_error e = {0};
    rs_sampler host;
    if (rs_sampler_init(&host, &sp, n, &e)) die("sampler", &e);
    rs_sample_rule rule = {
        .top_k = sp.top_k, .top_p = sp.top_p, .min_p = sp.min_p, .temp = sp.temp};
    memcpy(rule.rng, host.rng, sizeof rule.rng);
    float *dl = dev_copy(logits, (size_t)n * 4);
    rs_sample_rule *drule = dev_copy(&rule, sizeof rule);
    const int pos0 = 5;
    pick_io io = pick_io_open(pos0);
    int32_t *dids = io.ids, *dpos = io.pos, *ring = io.ring;
    uint64_t *rngs = io.rngs;
    int bad = -1, want = -1, seen = -1;
    bool rng_ok = true;
    for (int t = 0; t < steps && bad < 0; t++) {
        poison(dids, 4);
        O->sample_pick(B, dl, n, drule, dids, dpos, ring, rngs, SLOTS);
        const int slot = (pos0 + t) % SLOTS;
        if (O->fence_mark(B, slot, &e) || O->fence_wait(B, slot, &e)) {
            printf("FAIL %-70s fence: %s\n", what, e.msg);
            n_fail++;
            bad = t;
            break;
        }
        want = rs_sampler_sample(&host, logits);
        seen = ring[slot];
        int32_t id = -1;
        down(&id, dids, 4);
        rng_ok = rng_ok && !memcmp(&rngs[4 * slot], host.rng, sizeof host.rng);
        if (id != want || seen != want || !rng_ok) bad = t;
    }
    int32_t pos = -1;
    rs_sample_rule after;
    if (synced(what)) {
        down(&pos, dpos, 4);
        down(&after, drule, sizeof after);
        const bool ok =
            bad < 0 && pos == pos0 + steps && !memcmp(after.rng, host.rng, sizeof host.rng);
        if (!ok)
            printf("     %s: step %d: ring %d, want %d, rng %s; pos %d\n", what, bad, seen, want,
                   rng_ok ? "same" : "differs", pos);
        report(what, ok ? 0.0 : 1.0, 0.0);
    }
    rs_sampler_free(&host);
    pick_io_close(&io);
    O->release(B, dl), O->release(B, drule);
}

static void test_sample_pick(void) {
    if (!O->sample_pick) {
        report("the backend has sample_pick", 1.0, 0.0);
        return;
    }
    rs_sampler_params def = rs_sampler_params_default(), hot = def, cold = def, nucleus = def,
                      minp = def, one = def, all = def, all_minp = def, all_n = def, all_lone = def,
                      all_p9 = def, all_p5 = def, all_p99 = def;
    def.seed = 11;
    hot.temp = 2.5f, hot.top_k = RS_SAMPLE_TOP_K_MAX, hot.top_p = 1.0f, hot.min_p = 0.0f;
    hot.seed = 12;
    cold.temp = 0.05f, cold.seed = 13;
    nucleus.top_k = 200, nucleus.top_p = 0.5f, nucleus.min_p = 0.0f, nucleus.seed = 14;
    minp.top_k = 100, minp.top_p = 1.0f, minp.min_p = 0.3f, minp.seed = 15;
    one.top_k = 1, one.seed = 16;
    /* top-k and top-p off: the whole vocabulary's draw (sampler.c draw_by_id) */
    all.top_k = 0, all.top_p = 1.0f, all.min_p = 0.0f, all.temp = 1.0f, all.seed = 17;
    all_minp.top_k = 0, all_minp.top_p = 1.0f, all_minp.seed = 18; /* min-p 0.05, temp 0.8 */
    all_n.top_k = INT32_MAX, all_n.top_p = 1.0f, all_n.min_p = 0.0f, all_n.temp = 3.0f;
    all_n.seed = 19;
    all_lone.top_k = 0, all_lone.top_p = 1.0f, all_lone.min_p = 0.97f, all_lone.seed = 20;
    /* top-k off with top-p: the nucleus over the whole vocabulary (sampler.c top_p_all) */
    all_p9.top_k = 0, all_p9.top_p = 0.9f, all_p9.min_p = 0.0f, all_p9.temp = 1.0f;
    all_p9.seed = 26;
    all_p5.top_k = 0, all_p5.top_p = 0.5f, all_p5.temp = 1.3f, all_p5.seed = 27; /* min-p 0.05 */
    all_p99.top_k = 0, all_p99.top_p = 0.99f, all_p99.min_p = 0.0f, all_p99.temp = 0.7f;
    all_p99.seed = 28;
    enum { RULES = 13 };
    const rs_sampler_params *ps[RULES] = {&def,    &hot,    &cold,     &nucleus, &minp,
                                          &one,    &all,    &all_minp, &all_n,   &all_lone,
                                          &all_p9, &all_p5, &all_p99};
    const char *pn[RULES] = {"default",
                             "temp 2.5 top-k 256",
                             "temp 0.05",
                             "top-p 0.5",
                             "min-p 0.3",
                             "top-k 1",
                             "all ids, temp 1",
                             "all ids, min-p 0.05",
                             "all ids (top-k above n), temp 3",
                             "all ids, min-p 0.97 (often one left)",
                             "all ids, top-p 0.9",
                             "all ids, top-p 0.5, min-p 0.05, temp 1.3",
                             "all ids, top-p 0.99, temp 0.7"};
    /* one block's slice is 4096 logits: 4097 leaves the second block one */
    static const int sizes[] = {300, 1025, 4097, 32000, 151936};
    char name[128];
    for (int z = 0; z < 5; z++) {
        const int n = sizes[z];
        float *l = host_rand((size_t)n, 4.0f);
        for (int k = 0; k < RULES; k++) {
            snprintf(name, sizeof name, "sample_pick: %s, random logits, n=%d", pn[k], n);
            check_sample(name, l, n, *ps[k], 24);
        }
        /* peaked logits: a nucleus of a few ids, often one (top-p's first pass decides) */
        float *peak = host_alloc((size_t)n);
        for (int i = 0; i < n; i++) peak[i] = l[i] * 6.0f;
        for (int k = RULES - 3; k < RULES; k++) {
            snprintf(name, sizeof name, "sample_pick: %s, peaked logits, n=%d", pn[k], n);
            check_sample(name, peak, n, *ps[k], 24);
        }
        free(peak);
        /* coarse logits: ties everywhere, at the k-th value too; -0 and +0 among them */
        for (int i = 0; i < n; i++) l[i] = roundf(l[i] * 2.0f) * 0.25f;
        for (int i = 0; i < n; i += 7) l[i] = (i / 7) % 2 ? 0.0f : -0.0f;
        for (int k = 0; k < RULES; k++) {
            snprintf(name, sizeof name, "sample_pick: %s, many equal logits, n=%d", pn[k], n);
            check_sample(name, l, n, *ps[k], 24);
        }
        free(l);
    }
    enum { N = 9000 }; /* three slices */
    float *l = host_alloc(N);
    for (int i = 0; i < N; i++) l[i] = -INFINITY;
    check_sample("sample_pick: every logit -inf (uniform over all)", l, N, def, 8);
    check_sample("sample_pick: all ids, every logit -inf (uniform)", l, N, all_minp, 8);
    for (int i = 0; i < N; i++) l[i] = i % 3 ? NAN : -INFINITY;
    check_sample("sample_pick: every logit NaN or -inf", l, N, hot, 8);
    check_sample("sample_pick: all ids, every logit NaN or -inf", l, N, all, 8);
    check_sample("sample_pick: top-p over all ids, every logit NaN or -inf", l, N, all_p9, 8);
    l[8500] = -1e30f, l[17] = 3.0f, l[4200] = 3.0f;
    check_sample("sample_pick: three finite logits, top-k 40 (ties at -inf)", l, N, def, 16);
    check_sample("sample_pick: all ids, three finite logits", l, N, all, 16);
    check_sample("sample_pick: all ids, three finite logits, min-p 0.97", l, N, all_lone, 16);
    check_sample("sample_pick: top-p 0.9 over all ids, three finite logits", l, N, all_p9, 16);
    l[1200] = FLT_MAX, l[900] = INFINITY, l[8900] = INFINITY;
    check_sample("sample_pick: +inf ties FLT_MAX", l, N, hot, 16);
    check_sample("sample_pick: all ids, +inf ties FLT_MAX", l, N, all_n, 16);
    check_sample("sample_pick: top-p 0.99 over all ids, +inf ties FLT_MAX", l, N, all_p99, 16);
    l[900] = 3.0f, l[8900] = 3.0f;
    check_sample("sample_pick: all ids, one FLT_MAX, min-p 0.97 (no draw)", l, N, all_lone, 8);
    /* top-p's cut in the bucket that ends at 0 below a max of 2: tiny logits on both
     * sides of 0 (denormals too), many of them equal */
    for (int i = 0; i < N; i++)
        l[i] = i % 3 == 0 ? 1e-30f * (float)(i % 7) : i % 3 == 1 ? -1e-39f * (float)(i % 5) : -0.0f;
    l[5] = 2.0f, l[6000] = 2.0f;
    check_sample("sample_pick: top-p 0.9 over all ids, tiny logits at a bucket's bound", l, N,
                 all_p9, 16);
    check_sample("sample_pick: top-p 0.5 over all ids, tiny logits at a bucket's bound", l, N,
                 all_p5, 16);
    for (int i = 0; i < N; i++) l[i] = 1.0f;
    check_sample("sample_pick: all equal, top-k 256 (the lowest ids)", l, N, hot, 16);
    check_sample("sample_pick: all ids, all equal", l, N, all, 16);
    check_sample("sample_pick: top-p 0.5 over all ids, all equal (the lowest ids)", l, N, all_p5,
                 16);
    /* the cut's list holds at most 2048 ids: one bucket of exactly that many (listed after
     * the first pass) and of one more (a digit over the grid first) */
    check_sample("sample_pick: top-p 0.5 over all ids, 2048 equal", l, 2048, all_p5, 8);
    check_sample("sample_pick: top-p 0.9 over all ids, 2049 equal", l, 2049, all_p9, 8);
    float lone = 2.0f; /* a vocabulary of one: no draw */
    check_sample("sample_pick: all ids, one token", &lone, 1, all, 4);
    check_sample("sample_pick: top-p over all ids, one token", &lone, 1, all_p9, 4);
    free(l);
}

/* ---- penalties -----------------------------------------------------------------------------
 */

/* `steps` chained picks with penalties against rs_sampler_sample: a host sampler that took
 * `prefill` tokens (repeats from a few ids) and then each of its own picks, and on the
 * device penalize, then greedy_pick (temp <= 0) or sample_pick by a rule that starts from
 * the host's window and RNG; the logits go up again before each step (penalize works in
 * place). Each step: the penalised logits (cleaned) bitwise the host's, the token, the RNG
 * slot; at the end the device's window (len, next, tokens) equal to the host's ring. */
static void check_penalized(const char *name, const float *logits, int n, rs_sampler_params sp,
                            int prefill, int steps) {
    char what[200];
    snprintf(what, sizeof what, "%s (window %d, %d taken before, %d picks)", name, sp.repeat_last_n,
             prefill, steps);
    rs_error e = {0};
    rs_sampler host;
    if (rs_sampler_init(&host, &sp, n, &e)) die("sampler", &e);
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)prefill;
    for (int i = 0; i < prefill; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        rs_sampler_accept(&host, (int32_t)((seed >> 33) % (uint64_t)(n < 40 ? n : 40)), NULL);
    }
    static rs_sample_rule rule;
    memset(&rule, 0, sizeof rule);
    rule.top_k = sp.top_k, rule.top_p = sp.top_p, rule.min_p = sp.min_p, rule.temp = sp.temp;
    memcpy(rule.rng, host.rng, sizeof rule.rng);
    rule.pen.repeat_penalty = sp.repeat_penalty, rule.pen.frequency_penalty = sp.frequency_penalty;
    rule.pen.presence_penalty = sp.presence_penalty, rule.pen.last_n = sp.repeat_last_n;
    rule.pen.len = host.hist_len, rule.pen.next = host.hist_next;
    memcpy(rule.pen.tok, host.hist, (size_t)host.hist_len * sizeof *host.hist);
    float *dl = dev((size_t)n * 4), *pen = host_alloc((size_t)n);
    rs_sample_rule *drule = dev_copy(&rule, sizeof rule);
    const int pos0 = 2;
    pick_io io = pick_io_open(pos0);
    int32_t *dids = io.ids, *dpos = io.pos, *ring = io.ring;
    uint64_t *rngs = io.rngs;
    int bad = -1, want = -1, seen = -1, logit_diff = -1;
    bool rng_ok = true;
    for (int t = 0; t < steps && bad < 0; t++) {
        up(dl, logits, (size_t)n * 4);
        poison(dids, 4);
        O->penalize(B, dl, n, drule);
        if (!synced(what)) {
            bad = t;
            break;
        }
        down(pen, dl, (size_t)n * 4);
        if (sp.temp <= 0.0f)
            O->greedy_pick(B, dl, n, drule, dids, dpos, ring, rngs, SLOTS);
        else
            O->sample_pick(B, dl, n, drule, dids, dpos, ring, rngs, SLOTS);
        const int slot = (pos0 + t) % SLOTS;
        if (O->fence_mark(B, slot, &e) || O->fence_wait(B, slot, &e)) {
            printf("FAIL %-70s fence: %s\n", what, e.msg);
            n_fail++;
            return;
        }
        want = rs_sampler_sample(&host, logits);
        for (int i = 0; i < n && logit_diff < 0; i++) {
            float x = pen[i]; /* the picks clean the logits penalize left alone */
            x = x == x ? (x < FLT_MAX ? x : FLT_MAX) : -INFINITY;
            uint32_t got, ref; /* bitwise: -0 and +0 apart */
            memcpy(&got, &x, sizeof got);
            memcpy(&ref, &host.logit[i], sizeof ref);
            if (got != ref) logit_diff = i;
        }
        seen = ring[slot];
        int32_t id = -1;
        down(&id, dids, 4);
        rng_ok = rng_ok && !memcmp(&rngs[4 * slot], host.rng, sizeof host.rng);
        if (id != want || seen != want || !rng_ok || logit_diff >= 0) bad = t;
        rs_sampler_accept(&host, want, NULL);
    }
    if (synced(what)) {
        static rs_sample_rule after;
        down(&after, drule, sizeof after);
        const rs_sample_window *w = &after.pen;
        const bool window_ok =
            w->len == host.hist_len && w->next == host.hist_next &&
            !memcmp(w->tok, host.hist, (size_t)host.hist_len * sizeof *host.hist);
        const bool ok = bad < 0 && window_ok && !memcmp(after.rng, host.rng, sizeof host.rng);
        if (!ok)
            printf("     %s: step %d: ring %d, want %d, rng %s, first logit differing %d (%g "
                   "against %g); window %s\n",
                   what, bad, seen, want, rng_ok ? "same" : "differs", logit_diff,
                   logit_diff >= 0 ? pen[logit_diff] : 0.0,
                   logit_diff >= 0 ? host.logit[logit_diff] : 0.0, window_ok ? "same" : "differs");
        report(what, ok ? 0.0 : 1.0, 0.0);
    }
    free(pen);
    rs_sampler_free(&host);
    pick_io_close(&io);
    O->release(B, dl), O->release(B, drule);
}

static void test_penalize(void) {
    if (!O->penalize) {
        report("the backend has penalize", 1.0, 0.0);
        return;
    }
    rs_sampler_params rep = rs_sampler_params_default(), hot = rep, greedy = rep, one = rep,
                      wide = rep, all = rep, all_p = rep;
    rep.repeat_penalty = 1.3f, rep.seed = 21;
    hot.temp = 2.5f, hot.top_k = RS_SAMPLE_TOP_K_MAX, hot.top_p = 1.0f, hot.min_p = 0.0f;
    hot.repeat_penalty = 0.8f, hot.frequency_penalty = 0.3f, hot.presence_penalty = -0.5f;
    hot.repeat_last_n = 256, hot.seed = 22;
    greedy.temp = 0.0f, greedy.repeat_penalty = 1.5f, greedy.frequency_penalty = 0.25f;
    greedy.repeat_last_n = 16;
    one.repeat_penalty = 2.0f, one.repeat_last_n = 1, one.seed = 23;
    wide.repeat_penalty = 1.1f, wide.presence_penalty = 0.7f;
    wide.repeat_last_n = RS_SAMPLE_LAST_N_MAX, wide.seed = 24;
    all.top_k = 0, all.top_p = 1.0f, all.min_p = 0.0f, all.temp = 1.2f;
    all.frequency_penalty = 0.5f, all.seed = 25;
    all_p.top_k = 0, all_p.top_p = 0.8f, all_p.repeat_penalty = 1.3f, all_p.seed = 29;
    enum { PEN_RULES = 7 };
    const rs_sampler_params *ps[PEN_RULES] = {&rep, &hot, &greedy, &one, &wide, &all, &all_p};
    const char *pn[PEN_RULES] = {"repeat 1.3",
                                 "hot, repeat 0.8, frequency 0.3, presence -0.5",
                                 "greedy, repeat 1.5, frequency 0.25",
                                 "repeat 2 over one token",
                                 "repeat 1.1, presence 0.7, the widest window",
                                 "all ids, frequency 0.5",
                                 "top-p 0.8 over all ids, repeat 1.3"};
    static const int sizes[] = {300, 32000, 151936};
    char name[160];
    for (int z = 0; z < 3; z++) {
        const int n = sizes[z];
        float *l = host_rand((size_t)n, 4.0f);
        /* the repeated ids hold every kind of logit the cleaning meets */
        l[3] = NAN, l[5] = INFINITY, l[7] = -INFINITY, l[9] = 0.0f, l[11] = -0.0f;
        l[13] = FLT_MAX, l[15] = -FLT_MAX, l[17] = 20.0f, l[19] = -20.0f;
        for (int k = 0; k < PEN_RULES; k++) {
            snprintf(name, sizeof name, "penalize + pick: %s, n=%d", pn[k], n);
            check_penalized(name, l, n, *ps[k], k == 4 ? 1500 : 100, 16);
        }
        snprintf(name, sizeof name, "penalize + pick: repeat 1.3, an empty window, n=%d", n);
        check_penalized(name, l, n, rep, 0, 8);
        free(l);
    }
    rs_error e = {0};
    float *dl = dev(8 * 4);
    O->penalize(B, dl, 8, NULL);
    report("penalize without a rule is refused", O->sync(B, &e) == RS_ERR_ARG ? 0.0 : 1.0, 0.0);
    report("sync is clean after the refused penalize", O->sync(B, &e) == RS_OK ? 0.0 : 1.0, 0.0);
    O->release(B, dl);
}

static void test_errors(void) {
    rs_error e = {0};
    void *p = NULL;
    rs_status st = O->alloc(B, (size_t)1 << 50, &p, &e);
    printf("     alloc 1 PiB: %s\n", e.msg);
    report("alloc of 1 PiB fails with NOMEM and says how much",
           st == RS_ERR_NOMEM && strstr(e.msg, "needed") ? 0 : 1, 0);
    unsigned char blk[292 * 2] = {0};
    rs_weight w = {.name = "q8k",
                   .type = RS_DTYPE_Q8_K,
                   .n_in = 256,
                   .n_out = 2,
                   .nbytes = sizeof blk,
                   .host = blk};
    st = O->weight_load(B, &w, &e);
    printf("     Q8_K weight: %s\n", e.msg);
    report("unsupported weight type is refused", st == RS_ERR_UNSUPPORTED ? 0 : 1, 0);
    double gbps = 0;
    st = O->bandwidth(B, &gbps, &e);
    printf("     device-to-device copy: %.0f GB/s\n", gbps);
    report("bandwidth measures", st == RS_OK && gbps > 100 ? 0 : 1, 0);
    report("sync is clean after the refused calls", O->sync(B, &e) == RS_OK ? 0 : 1, 0);
}

int main(void) {
    rs_error e = {0};
    rs_status st = rs_cuda_backend_create_impl(&B, &e);
    if (st) {
        printf("SKIP: no CUDA device (%s)\n", e.msg);
        return 77;
    }
    O = B->ops;
    const char *only = getenv("RUSTY_CUDA_TEST");
    if (!only || strstr(only, "matmul")) test_matmul();
    if (!only || strstr(only, "prepare")) test_prepare();
    if (!only || strstr(only, "embed")) test_embed();
    if (!only || strstr(only, "small")) test_small_ops();
    if (!only || strstr(only, "rope")) test_rope();
    if (!only || strstr(only, "attention")) test_attention();
    if (!only || strstr(only, "graph")) test_graph();
    if (!only || strstr(only, "pick")) test_greedy_pick();
    if (!only || strstr(only, "pick")) test_sample_pick();
    if (!only || strstr(only, "pick")) test_penalize();
    if (!only || strstr(only, "errors")) test_errors();
    O->destroy(B);
    printf("\n%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}

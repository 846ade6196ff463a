/* test_cuda_fused.c — the CUDA backend's fused ops (matmul_residual,
 * matmul_swiglu, matmul_rope_store) against compositions of the scalar
 * reference ops (src/backend/cpu/ops_ref.c, double accumulation), on fresh
 * random inputs with NaN-poisoned outputs, at decode sizes (the fused kernels)
 * and prompt sizes (the composed path), with fusing on and off, with the
 * fused kernels' inputs split over several blocks per group of outputs, with
 * one-token Q4_0/Q8_0 weights streamed through shared memory or not, and with
 * one-token ops run as one decode-chain launch (compared bitwise with one
 * launch each).
 *
 * matmul_residual leaves its norm pending on the GPU until a matvec consumes
 * it (or anything else settles it), so each case also runs a consumer matmul
 * on the norm's output and compares that product, and reads the output back.
 * Exits 77 without a GPU; RUSTY_CUDA_SMALL=1 skips the Llama-2-7B-sized cases
 * (for compute-sanitizer runs). Tolerances (relative L2 error), with their reasons:
 *   tol(type)   the matmul's own: TOL_F32 1e-5 (f32 weights and activations, F16/BF16
 *               matvec), TOL_Q8 1.5e-2 (int8 activations per 32 values), TOL_H 3e-3 /
 *               TOL_BF 1.5e-2 (GEMM on f16 / bf16 activations, n > 4)
 *   consumers   tol(type) + tol(consumer type): a Q4_0 (or F32) matvec on an input that
 *               carries the first product's error
 *   swiglu      2 tol(type): silu(g) * u carries the errors of both products
 *   Q8_0 cache  + TOL_KVQ8 1e-2: the step is max|v| / 127 per 32 values, an error of rms
 *               max|v| / 440; test_cuda_ops' uniform values give 3.9e-3 relative, but these
 *               are matmul outputs, near-Gaussian, whose block maximum reaches ~3 sigma:
 *               up to ~6.8e-3 (6.05e-3 measured on a 256-value row set, run 343)
 *   Q4_0 cache  0: its contents must equal the CPU quantizer's blocks of the k and v the
 *               GPU computed (q4_cache_mismatch) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/ops_ref.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_internal.h"
#include "dtype/dtype.h"

#define CT_SEED 0x2545F4914F6CDD1Dull
#include "cuda_testlib.h"

#define TOL_F32  1e-5
#define TOL_Q8   1.5e-2
#define TOL_H    3e-3
#define TOL_BF   1.5e-2
#define TOL_KV16 1e-3
#define TOL_KVQ8 1e-2

static rs_cuda_tuning defaults; /* the backend's, read once at the start */

static void set_fuse(int fuse) {
    rs_cuda_tuning t;
    rs_cuda_get_tuning(B, &t);
    t.fuse = fuse;
    rs_cuda_set_tuning(B, &t);
}

/* Blocks per group of 32 outputs in the fused kernels (0 = the backend's choice). */
static void set_split(int split) {
    rs_cuda_tuning t;
    rs_cuda_get_tuning(B, &t);
    t.fz_split = split;
    rs_cuda_set_tuning(B, &t);
}

/* The weight-streaming kernels (cuda_stream.cuh): on/off, stages in flight
 * (0 = automatic), grid (0 = one block per SM). */
static void set_stream(int on, int depth, int blocks) {
    rs_cuda_tuning t;
    rs_cuda_get_tuning(B, &t);
    t.stream = on;
    t.stream_depth = depth;
    t.stream_blocks = blocks;
    rs_cuda_set_tuning(B, &t);
}

static const char *kv_name(rs_kv_type t) {
    return t == RS_KV_F16 ? "F16" : t == RS_KV_Q8_0 ? "Q8_0" : t == RS_KV_Q4_0 ? "Q4_0" : "F32";
}

static double tol_for(rs_dtype type, int n) {
    const int gemm = n > 4;
    if (type == RS_DTYPE_F32) return TOL_F32;
    if (type == RS_DTYPE_BF16) return gemm ? TOL_BF : TOL_F32;
    if (type == RS_DTYPE_F16) return gemm ? TOL_H : TOL_F32;
    return gemm ? TOL_H : TOL_Q8;
}

/* ---- matmul_residual ------------------------------------------------------------------------ */

/* x += a W^T, then (norm) xn = rmsnorm(x) * w; consumer: a Q4_0 matvec on xn
 * (consumer = 1), or xn read back directly (consumer = 0: the settle path). */
static void check_residual(rs_dtype type, int64_t n_in, int64_t width, int n, int norm,
                           int consumer, int fuse) {
    tw w = make_weight(type, n_in, width, 0.5f), nw = make_weight(RS_DTYPE_F32, width, 1, 1.0f);
    /* the consumer: Q4_0 where the width allows its blocks, else F32 (scalar kernel) */
    const rs_dtype ct = width % 32 ? RS_DTYPE_F32 : RS_DTYPE_Q4_0;
    tw cw = make_weight(ct, width, 77, 0.5f);
    const size_t na = (size_t)n * n_in, nx = (size_t)n * width, nc = (size_t)n * 77;
    float *a = host_rand(na, 1.0f), *x0 = host_rand(nx, 2.0f);
    float *y = host_alloc(nx), *x1 = host_alloc(nx), *xn = host_alloc(nx), *cy = host_alloc(nc);
    rs_ref_matmul(&w.w, NULL, a, n, y);
    for (size_t i = 0; i < nx; i++) x1[i] = x0[i] + y[i];
    rs_ref_rmsnorm(x1, nw.bytes, 1e-5f, n, (int)width, xn);
    rs_ref_matmul(&cw.w, NULL, xn, n, cy);
    float *da = dev_copy(a, na * 4), *dx = dev_copy(x0, nx * 4), *dxn = dev(nx * 4),
          *dc = dev(nc * 4);
    poison(dxn, nx * 4);
    poison(dc, nc * 4);
    set_fuse(fuse);
    O->matmul_residual(B, &w.w, da, n, dx, norm ? &nw.w : NULL, 1e-5f, norm ? dxn : NULL);
    if (norm && consumer) {
        rs_matmul mm = {&cw.w, NULL, dc};
        O->matmul(B, &mm, 1, dxn, n);
    }
    set_fuse(1);
    char name[160];
    snprintf(name, sizeof name, "matmul_residual %s %lldx%lld n=%d%s%s%s", rs_dtype_name(type),
             (long long)width, (long long)n_in, n, norm ? " +norm" : "",
             norm ? (consumer ? " ->matvec" : " ->read") : "", fuse ? "" : " (unfused)");
    if (synced(name)) {
        float *gx = host_alloc(nx), *gy = host_alloc(nx);
        down(gx, dx, nx * 4);
        for (size_t i = 0; i < nx; i++) gy[i] = gx[i] - x0[i];
        double e = rel_err(gy, y, nx);
        if (norm) {
            float *gxn = host_alloc(nx);
            down(gxn, dxn, nx * 4);
            e = fmax(e, rel_err(gxn, xn, nx));
            free(gxn);
        }
        report(name, e, tol_for(type, n));
        if (norm && consumer) {
            float *gc = host_alloc(nc);
            down(gc, dc, nc * 4);
            snprintf(name, sizeof name, "  ... %s matvec on the norm's output", rs_dtype_name(ct));
            report(name, rel_err(gc, cy, nc), tol_for(type, n) + tol_for(ct, n));
            free(gc);
        }
        free(gx), free(gy);
    }
    O->release(B, da), O->release(B, dx), O->release(B, dxn), O->release(B, dc);
    free(a), free(x0), free(y), free(x1), free(xn), free(cy);
    free_weight(&w), free_weight(&nw), free_weight(&cw);
}

/* ---- matmul_swiglu -------------------------------------------------------------------------- */

/* h = silu(x Wg^T) * (x Wu^T) into g, then a Q4_0 matvec on h. With
 * pre_norm the input comes from a pending norm (matmul_residual F32). */
static void check_swiglu(rs_dtype type, int64_t n_in, int64_t n_ff, int n, int pre_norm, int fuse) {
    tw wg = make_weight(type, n_in, n_ff, 0.5f), wu = make_weight(type, n_in, n_ff, 0.5f);
    const rs_dtype dt = n_ff % 32 ? RS_DTYPE_F32 : RS_DTYPE_Q4_0; /* the consumer */
    tw dw = make_weight(dt, n_ff, 64, 0.5f);
    tw pw = make_weight(RS_DTYPE_F32, 48, n_in, 0.5f),
       nw = make_weight(RS_DTYPE_F32, n_in, 1, 1.0f);
    const size_t nx = (size_t)n * n_in, nh = (size_t)n * n_ff, nd = (size_t)n * 64;
    float *x = host_rand(nx, 1.0f), *pa = host_rand((size_t)n * 48, 1.0f);
    float *xin = host_alloc(nx), *g = host_alloc(nh), *u = host_alloc(nh), *h = host_alloc(nh),
          *dref = host_alloc(nd);
    if (pre_norm) { /* xin = rmsnorm(x + pa Wp^T) */
        float *t = host_alloc(nx);
        rs_ref_matmul(&pw.w, NULL, pa, n, t);
        for (size_t i = 0; i < nx; i++) t[i] += x[i];
        rs_ref_rmsnorm(t, nw.bytes, 1e-5f, n, (int)n_in, xin);
        free(t);
    } else {
        memcpy(xin, x, nx * 4);
    }
    rs_ref_matmul(&wg.w, NULL, xin, n, g);
    rs_ref_matmul(&wu.w, NULL, xin, n, u);
    rs_ref_swiglu(g, u, (int64_t)nh, h);
    rs_ref_matmul(&dw.w, NULL, h, n, dref);
    float *dx = dev_copy(x, nx * 4), *dxn = dev(nx * 4), *dpa = dev_copy(pa, (size_t)n * 48 * 4);
    float *dg = dev(nh * 4), *du = dev(nh * 4), *dd = dev(nd * 4);
    poison(dg, nh * 4);
    poison(dd, nd * 4);
    set_fuse(fuse);
    const float *in = dx;
    if (pre_norm) {
        O->matmul_residual(B, &pw.w, dpa, n, dx, &nw.w, 1e-5f, dxn);
        in = dxn;
    }
    O->matmul_swiglu(B, &wg.w, &wu.w, in, n, dg, du);
    rs_matmul mm = {&dw.w, NULL, dd};
    O->matmul(B, &mm, 1, dg, n);
    set_fuse(1);
    char name[160];
    snprintf(name, sizeof name, "matmul_swiglu %s 2x%lldx%lld n=%d%s%s", rs_dtype_name(type),
             (long long)n_ff, (long long)n_in, n, pre_norm ? " (pending norm in)" : "",
             fuse ? "" : " (unfused)");
    if (synced(name)) {
        float *gh = host_alloc(nh), *gd = host_alloc(nd);
        down(gh, dg, nh * 4);
        down(gd, dd, nd * 4);
        report(name, rel_err(gh, h, nh), 2 * tol_for(type, n));
        snprintf(name, sizeof name, "  ... %s matvec on h", rs_dtype_name(dt));
        report(name, rel_err(gd, dref, nd), 2 * tol_for(type, n) + tol_for(dt, n));
        free(gh), free(gd);
    }
    O->release(B, dx), O->release(B, dxn), O->release(B, dpa);
    O->release(B, dg), O->release(B, du), O->release(B, dd);
    free(x), free(pa), free(xin), free(g), free(u), free(h), free(dref);
    free_weight(&wg), free_weight(&wu), free_weight(&dw), free_weight(&pw), free_weight(&nw);
}

/* ---- matmul_rope_store ---------------------------------------------------------------------- */

static float *make_inv_freq(int n_rot) {
    float *f = malloc(sizeof(float) * (n_rot / 2 + 1));
    for (int i = 0; i < n_rot / 2; i++) f[i] = (float)pow(10000.0, -2.0 * i / n_rot);
    return f;
}

/* q, k, v = x W^T (+ bias); rope on q and k; k and v stored at pos. The
 * input comes from a pending norm (matmul_residual F32 weights) when
 * pre_norm. types[3]: the q, k, v weight types (mixed types take one launch
 * each). */
static void check_rope_fused(const rs_dtype types[3], int n_head, int n_kv, int hd, int n_rot,
                             int neox, int n, rs_kv_type kt, int bias, int pre_norm, int fuse) {
    const int64_t dim = 256,
                  outs[3] = {(int64_t)n_head * hd, (int64_t)n_kv * hd, (int64_t)n_kv * hd};
    const int n_ctx = 2048;
    static const int32_t pos_all[8] = {0, 5, 1000, 2047, 17, 300, 301, 1999};
    if (n > 8) die("check_rope_fused: at most 8 tokens", NULL);
    int32_t pos[8];
    memcpy(pos, pos_all, sizeof pos);
    tw w[3], b[3];
    for (int i = 0; i < 3; i++) {
        w[i] = make_weight(types[i], dim, outs[i], 0.5f);
        b[i] = make_weight(RS_DTYPE_F32, outs[i], 1, 1.0f);
    }
    tw pw = make_weight(RS_DTYPE_F32, 48, dim, 0.5f), nw = make_weight(RS_DTYPE_F32, dim, 1, 1.0f);
    const size_t nx = (size_t)n * dim;
    float *x = host_rand(nx, 1.0f), *pa = host_rand((size_t)n * 48, 1.0f), *xin = host_alloc(nx);
    if (pre_norm) {
        float *t = host_alloc(nx);
        rs_ref_matmul(&pw.w, NULL, pa, n, t);
        for (size_t i = 0; i < nx; i++) t[i] += x[i];
        rs_ref_rmsnorm(t, nw.bytes, 1e-5f, n, (int)dim, xin);
        free(t);
    } else {
        memcpy(xin, x, nx * 4);
    }
    float *inv = make_inv_freq(n_rot);
    rs_rope href = {neox != 0, n_rot, inv, 1.0f};
    float *ref[3], *dy[3];
    for (int i = 0; i < 3; i++) {
        ref[i] = host_alloc((size_t)n * outs[i]);
        rs_ref_matmul(&w[i].w, bias ? &b[i].w : NULL, xin, n, ref[i]);
        dy[i] = dev((size_t)n * outs[i] * 4);
        poison(dy[i], (size_t)n * outs[i] * 4);
    }
    rs_ref_rope(ref[0], pos, n, n_head, hd, &href);
    rs_ref_rope(ref[1], pos, n, n_kv, hd, &href);
    rs_kv_desc d = {2, n_ctx, n_kv, hd, kt};
    rs_kv *kv = NULL;
    rs_error e = {0};
    if (O->kv_create(B, &d, &kv, &e)) die("kv_create", &e);
    float *dinv = dev_copy(inv, sizeof(float) * (n_rot / 2 + 1));
    rs_rope rope = {neox != 0, n_rot, dinv, 1.0f};
    rs_attn at = {n_head, n_kv, hd, 1.0f, 0};
    float *dx = dev_copy(x, nx * 4), *dxn = dev(nx * 4), *dpa = dev_copy(pa, (size_t)n * 48 * 4);
    int32_t *dpos = dev_copy(pos, sizeof(int32_t) * n);
    set_fuse(fuse);
    const float *in = dx;
    if (pre_norm) {
        O->matmul_residual(B, &pw.w, dpa, n, dx, &nw.w, 1e-5f, dxn);
        in = dxn;
    }
    rs_matmul qkv[3];
    for (int i = 0; i < 3; i++) qkv[i] = (rs_matmul){&w[i].w, bias ? &b[i].w : NULL, dy[i]};
    O->matmul_rope_store(B, qkv, in, n, dpos, &rope, &at, kv, 1);
    set_fuse(1);
    char name[200];
    snprintf(name, sizeof name, "matmul_rope_store %s/%s/%s h=%d/%d hd=%d rot=%d %s n=%d %s%s%s%s",
             rs_dtype_name(types[0]), rs_dtype_name(types[1]), rs_dtype_name(types[2]), n_head,
             n_kv, hd, n_rot, neox ? "neox" : "norm", n, kv_name(kt), bias ? " +bias" : "",
             pre_norm ? " (pending norm in)" : "", fuse ? "" : " (unfused)");
    double tol = fmax(tol_for(types[0], n), fmax(tol_for(types[1], n), tol_for(types[2], n)));
    if (synced(name)) {
        double err = 0;
        float *g[3];
        for (int i = 0; i < 3; i++) {
            g[i] = host_alloc((size_t)n * outs[i]);
            down(g[i], dy[i], (size_t)n * outs[i] * 4);
            err = fmax(err, rel_err(g[i], ref[i], (size_t)n * outs[i]));
        }
        report(name, err, tol);
        float *ck = host_alloc((size_t)n_ctx * n_kv * hd),
              *cv = host_alloc((size_t)n_ctx * n_kv * hd);
        if (rs_cuda_kv_read(B, kv, 1, n_ctx, ck, cv, &e)) die("kv_read", &e);
        double ec = 0;
        for (int t = 0; t < n; t++) {
            const size_t o = (size_t)pos[t] * n_kv * hd, s = (size_t)t * n_kv * hd;
            if (kt == RS_KV_Q4_0) { /* exactly the CPU's blocks of the values the GPU stored */
                ec = fmax(ec, q4_cache_mismatch(ck + o, g[1] + s, n_kv, hd));
                ec = fmax(ec, q4_cache_mismatch(cv + o, g[2] + s, n_kv, hd));
                continue;
            }
            ec = fmax(ec, rel_err(ck + o, ref[1] + s, (size_t)n_kv * hd));
            ec = fmax(ec, rel_err(cv + o, ref[2] + s, (size_t)n_kv * hd));
        }
        report(kt == RS_KV_Q4_0 ? "  ... cache holds the CPU's Q4_0 of rotated k and v at pos"
                                : "  ... cache holds rotated k and v at pos",
               ec,
               kt == RS_KV_Q4_0 ? 0.0
                                : tol + (kt == RS_KV_F16    ? TOL_KV16
                                         : kt == RS_KV_Q8_0 ? TOL_KVQ8
                                                            : 0.0));
        free(ck), free(cv), free(g[0]), free(g[1]), free(g[2]);
    }
    for (int i = 0; i < 3; i++) {
        O->release(B, dy[i]);
        free(ref[i]);
        free_weight(&w[i]), free_weight(&b[i]);
    }
    O->release(B, dx), O->release(B, dxn), O->release(B, dpa), O->release(B, dpos),
        O->release(B, dinv);
    O->kv_destroy(B, kv);
    free(x), free(pa), free(xin), free(inv);
    free_weight(&pw), free_weight(&nw);
}

/* ---- a decode step of n tokens: the cache store, then attention ----------------------------- */

/* matmul_rope_store stores the step's positions and attention reads them right after; under
 * programmatic dependent launch the attention's blocks start while the store's kernel runs,
 * so every token must see the keys and values of the step's earlier tokens as stored, not
 * what the cache held before (random values here, far from the stored ones). F16 weights of
 * a 4096-wide model make the store's kernel long enough to overlap. ctx_max: the bound the
 * attention is told (rs_attn.ctx_max). Reference: double attention over the q and the cache
 * read back, so only the kernel's f32 arithmetic differs (TOL_ATTN). */
#define TOL_ATTN 2e-4
static void check_step_attention(int n_head, int n_kv, int hd, int n, int first, int ctx_max,
                                 rs_kv_type kt) {
    const int64_t dim = 4096,
                  outs[3] = {(int64_t)n_head * hd, (int64_t)n_kv * hd, (int64_t)n_kv * hd};
    const int n_ctx = 2048;
    if (n > 4 || first + n > n_ctx) die("check_step_attention: bad case", NULL);
    tw w[3];
    float *dy[3];
    for (int i = 0; i < 3; i++) {
        w[i] = make_weight(RS_DTYPE_F16, dim, outs[i], 0.5f);
        dy[i] = dev((size_t)n * outs[i] * 4);
    }
    int32_t pos[4];
    for (int t = 0; t < n; t++) pos[t] = first + t;
    float *x = host_rand((size_t)n * dim, 1.0f), *inv = make_inv_freq(hd);
    rs_kv_desc d = {2, n_ctx, n_kv, hd, kt};
    rs_kv *kv = NULL;
    rs_error e = {0};
    if (O->kv_create(B, &d, &kv, &e)) die("kv_create", &e);
    rs_cuda_kv_fill_random(B, kv, rng++);
    const size_t nq = (size_t)n * outs[0];
    float *dinv = dev_copy(inv, sizeof(float) * (hd / 2 + 1)),
          *dx = dev_copy(x, (size_t)n * dim * 4), *dout = dev(nq * 4);
    int32_t *dpos = dev_copy(pos, sizeof(int32_t) * n);
    poison(dout, nq * 4);
    rs_rope rope = {false, hd, dinv, 1.0f};
    rs_attn at = {n_head, n_kv, hd, 1.0f / sqrtf((float)hd), ctx_max};
    rs_matmul qkv[3];
    for (int i = 0; i < 3; i++) qkv[i] = (rs_matmul){&w[i].w, NULL, dy[i]};
    O->matmul_rope_store(B, qkv, dx, n, dpos, &rope, &at, kv, 1);
    O->attention(B, dy[0], kv, 1, dpos, n, &at, dout);
    char name[160];
    snprintf(name, sizeof name, "store then attention h=%d/%d hd=%d n=%d at %d ctx<=%d%s", n_head,
             n_kv, hd, n, first, ctx_max,
             kt == RS_KV_Q8_0   ? " Q8_0"
             : kt == RS_KV_Q4_0 ? " Q4_0"
                                : "");
    if (synced(name)) {
        const int n_pos = first + n;
        float *q = host_alloc(nq), *out = host_alloc(nq), *ref = host_alloc(nq),
              *ck = host_alloc((size_t)n_pos * outs[1]), *cv = host_alloc((size_t)n_pos * outs[1]);
        down(q, dy[0], nq * 4), down(out, dout, nq * 4);
        if (rs_cuda_kv_read(B, kv, 1, n_pos, ck, cv, &e)) die("kv_read", &e);
        if (attn_int_keys(kt, hd, n)) q8_round_trip(q, (size_t)n * n_head, hd);
        rs_ref_attention(q, ck, cv, pos, n, &at, ref);
        report(name, rel_err(out, ref, nq), TOL_ATTN);
        free(q), free(out), free(ref), free(ck), free(cv);
    }
    for (int i = 0; i < 3; i++) O->release(B, dy[i]), free_weight(&w[i]);
    O->release(B, dinv), O->release(B, dx), O->release(B, dout), O->release(B, dpos);
    O->kv_destroy(B, kv);
    free(x), free(inv);
}

static void test_step_attention(void) {
    for (int n = 1; n <= 4; n++) {
        for (int q = 0; q <= 2; q++) {
            const rs_kv_type kt = q == 2 ? RS_KV_Q4_0 : q ? RS_KV_Q8_0 : RS_KV_F16;
            check_step_attention(32, 32, 128, n, 90, 128, kt);  /* unsplit */
            check_step_attention(32, 32, 128, n, 90, 0, kt);    /* split: 4 chunks of 32 */
            check_step_attention(32, 8, 128, n, 1500, 0, kt);   /* GQA, long */
            check_step_attention(32, 4, 64, n, 200, 256, kt);   /* TinyLlama's shape, unsplit */
            check_step_attention(32, 32, 128, n, 250, 256, kt); /* unsplit, 256 threads */
        }
        check_step_attention(32, 8, 128, n, 400, 512, RS_KV_Q8_0); /* Q8_0 GQA: unsplit at 512 */
        check_step_attention(32, 8, 128, n, 400, 512, RS_KV_Q4_0);
    }
}

/* ---- the cases ------------------------------------------------------------------------------ */

static int big_cases(void) {
    const char *e = getenv("RUSTY_CUDA_SMALL");
    return !(e && *e == '1');
}

static void test_residual(void) {
    static const rs_dtype types[] = {RS_DTYPE_F32,    RS_DTYPE_F16,    RS_DTYPE_BF16, RS_DTYPE_Q8_0,
                                     RS_DTYPE_Q4_0,   RS_DTYPE_Q4_1,   RS_DTYPE_Q5_0, RS_DTYPE_Q5_1,
                                     RS_DTYPE_IQ4_NL, RS_DTYPE_IQ4_XS, RS_DTYPE_Q4_K, RS_DTYPE_Q5_K,
                                     RS_DTYPE_Q6_K,   RS_DTYPE_Q2_K,   RS_DTYPE_Q3_K};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        const int64_t n_in = rs_dtype_get(types[i])->block_size == 256 ? 512 : 352;
        check_residual(types[i], n_in, 96, 1, 1, 1, 1);
        check_residual(types[i], n_in, 160, 3, 1, 1, 1);
    }
    if (big_cases()) {
        check_residual(RS_DTYPE_Q4_0, 4096, 4096, 1, 1, 1, 1);  /* Llama-2-7B o_proj */
        check_residual(RS_DTYPE_Q4_0, 11008, 4096, 1, 1, 0, 1); /* down_proj, settled by a read */
        check_residual(RS_DTYPE_F16, 4096, 4096, 1, 1, 1, 1);
    }
    check_residual(RS_DTYPE_Q4_K, 1024, 128, 4, 1, 0, 1);
    check_residual(RS_DTYPE_Q4_0, 352, 96, 1, 0, 0, 1);  /* no norm: only the add */
    check_residual(RS_DTYPE_Q4_0, 352, 100, 2, 1, 1, 1); /* 100 rows: composed path */
    check_residual(RS_DTYPE_Q4_0, 352, 96, 1, 1, 1, 0);
    check_residual(RS_DTYPE_Q6_K, 512, 96, 7, 1, 1, 1); /* GEMM */
    check_residual(RS_DTYPE_F16, 352, 96, 9, 1, 0, 1);
}

static void test_swiglu(void) {
    static const rs_dtype types[] = {RS_DTYPE_F32,  RS_DTYPE_F16,    RS_DTYPE_BF16,  RS_DTYPE_Q8_0,
                                     RS_DTYPE_Q4_0, RS_DTYPE_Q5_1,   RS_DTYPE_Q4_1,  RS_DTYPE_Q5_0,
                                     RS_DTYPE_Q4_K, RS_DTYPE_IQ4_NL, RS_DTYPE_Q5_K,  RS_DTYPE_Q6_K,
                                     RS_DTYPE_Q2_K, RS_DTYPE_Q3_K,   RS_DTYPE_IQ4_XS};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        const int64_t n_in = rs_dtype_get(types[i])->block_size == 256 ? 512 : 256;
        check_swiglu(types[i], n_in, 192, 1, i % 2, 1);
        check_swiglu(types[i], n_in, 64, 3, 1, 1);
    }
    if (big_cases()) check_swiglu(RS_DTYPE_Q4_0, 4096, 11008, 1, 1, 1); /* Llama-2-7B */
    check_swiglu(RS_DTYPE_Q4_0, 256, 100, 1, 0, 1); /* n_ff % 32 != 0: composed */
    check_swiglu(RS_DTYPE_Q4_K, 512, 192, 2, 1, 0);
    check_swiglu(RS_DTYPE_Q8_0, 256, 192, 6, 1, 1);  /* GEMM */
    check_swiglu(RS_DTYPE_Q4_0, 512, 256, 40, 1, 1); /* GEMM: F16 products */
    check_swiglu(RS_DTYPE_F32, 256, 64, 9, 1, 1);    /* F32 weights: SGEMM, F32 products */
    check_swiglu(RS_DTYPE_BF16, 256, 64, 9, 1, 1);   /* BF16: cuBLAS writes no F16 from it */
    check_swiglu(RS_DTYPE_F16, 256, 64, 9, 1, 1);    /* F16: F16 products */
    printf("-- prompt SwiGLU with F32 products\n");
    rs_cuda_tuning t;
    rs_cuda_get_tuning(B, &t);
    t.swiglu_h = 0;
    rs_cuda_set_tuning(B, &t);
    check_swiglu(RS_DTYPE_Q4_0, 512, 256, 40, 1, 1);
    t.swiglu_h = 1;
    rs_cuda_set_tuning(B, &t);
}

static void test_rope(void) {
    const rs_dtype q40[3] = {RS_DTYPE_Q4_0, RS_DTYPE_Q4_0, RS_DTYPE_Q4_0};
    const rs_dtype mixed[3] = {RS_DTYPE_Q4_K, RS_DTYPE_Q4_K, RS_DTYPE_Q6_K};
    const rs_dtype f16[3] = {RS_DTYPE_F16, RS_DTYPE_F16, RS_DTYPE_F16};
    const rs_dtype q80[3] = {RS_DTYPE_Q8_0, RS_DTYPE_IQ4_NL, RS_DTYPE_BF16};
    const rs_dtype iq4[3] = {RS_DTYPE_IQ4_XS, RS_DTYPE_IQ4_XS, RS_DTYPE_IQ4_NL};
    const rs_dtype f32[3] = {RS_DTYPE_F32, RS_DTYPE_F32, RS_DTYPE_F32};
    static const rs_kv_type kts[4] = {RS_KV_F16, RS_KV_F32, RS_KV_Q8_0, RS_KV_Q4_0};
    for (int k = 0; k < 4; k++) {
        check_rope_fused(q40, 8, 4, 64, 64, 0, 1, kts[k], 0, 1, 1);
        check_rope_fused(mixed, 8, 2, 128, 128, 0, 3, kts[k], 1, 1, 1);
        check_rope_fused(f16, 4, 4, 64, 32, 0, 1, kts[k], 0, 0, 1); /* partial rotation */
    }
    check_rope_fused(q80, 6, 2, 32, 32, 0, 4, RS_KV_Q8_0, 1, 1, 1);
    check_rope_fused(iq4, 8, 4, 32, 32, 0, 1, RS_KV_F16, 1, 1, 1); /* IQ4_XS q and k */
    check_rope_fused(iq4, 8, 4, 32, 32, 0, 3, RS_KV_Q8_0, 0, 1, 1);
    check_rope_fused(iq4, 8, 4, 32, 32, 0, 8, RS_KV_F16, 0, 1, 1);  /* GEMM */
    check_rope_fused(f32, 4, 2, 16, 16, 0, 1, RS_KV_F16, 0, 1, 1);  /* heads of 16 */
    check_rope_fused(f32, 4, 2, 16, 16, 0, 2, RS_KV_Q8_0, 0, 1, 1); /* Q8_0 rows of 16: composed */
    check_rope_fused(q40, 8, 4, 64, 64, 1, 1, RS_KV_F16, 0, 1, 1);  /* neox: composed */
    check_rope_fused(q40, 8, 4, 64, 64, 0, 1, RS_KV_Q8_0, 0, 1, 0);
    check_rope_fused(q40, 8, 4, 64, 64, 0, 8, RS_KV_Q8_0, 1, 1, 1); /* GEMM */
    check_rope_fused(q40, 8, 4, 64, 64, 0, 8, RS_KV_Q4_0, 1, 1, 1);
    check_rope_fused(q40, 8, 4, 64, 64, 1, 2, RS_KV_Q4_0, 0, 1, 1); /* neox: composed */
    /* GEMM and the per-token rope (F16/F32 caches, no biases): full and partial
     * rotation, both pair layouts, mixed types in one batched call (n <= 8: the
     * positions this helper has) */
    check_rope_fused(q40, 8, 4, 64, 64, 0, 8, RS_KV_F16, 0, 1, 1);
    check_rope_fused(mixed, 8, 2, 128, 32, 1, 6, RS_KV_F32, 0, 0, 1);
    check_rope_fused(f16, 4, 4, 64, 32, 0, 7, RS_KV_F16, 0, 0, 1);
    if (big_cases()) check_rope_fused(q40, 32, 32, 128, 128, 0, 1, RS_KV_F16, 0, 1, 1); /* 7B qkv */
}

/* Reports whether the fused launches since `before` include a split one. */
static void expect_split(const char *what, long before, int want) {
    const int split = rs_cuda_split_count(B) != before;
    char name[160];
    snprintf(name, sizeof name, "%s %s", what, want ? "split its inputs" : "did not split");
    report(name, split == want ? 0 : 1, 0);
}

/* The fused kernels with every group's inputs split over several blocks
 * (partial sums added by the last block to arrive): float weights, and one
 * token on every quantized type (more tokens on quantized weights never
 * split); 8 splits of a 4-task row leave some blocks without work, and of
 * 22 tasks (704 inputs of Q4_0) some lanes. */
static void test_split(void) {
    static const rs_dtype types[] = {RS_DTYPE_F16,  RS_DTYPE_BF16, RS_DTYPE_F32,   RS_DTYPE_Q4_0,
                                     RS_DTYPE_Q8_0, RS_DTYPE_Q4_1, RS_DTYPE_Q5_0,  RS_DTYPE_Q5_1,
                                     RS_DTYPE_Q4_K, RS_DTYPE_Q5_K, RS_DTYPE_Q6_K,  RS_DTYPE_IQ4_NL,
                                     RS_DTYPE_Q2_K, RS_DTYPE_Q3_K, RS_DTYPE_IQ4_XS};
    const rs_dtype f16[3] = {RS_DTYPE_F16, RS_DTYPE_F16, RS_DTYPE_F16};
    const rs_dtype mixed[3] = {RS_DTYPE_BF16, RS_DTYPE_F32, RS_DTYPE_Q6_K};
    const rs_dtype q40[3] = {RS_DTYPE_Q4_0, RS_DTYPE_Q4_0, RS_DTYPE_Q4_0};
    static const int splits[] = {2, 3, 8};
    for (size_t k = 0; k < sizeof splits / sizeof *splits; k++) {
        printf("-- fused kernels, inputs split over %d blocks per group\n", splits[k]);
        set_split(splits[k]);
        for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
            const int64_t n_in = rs_dtype_get(types[i])->block_size == 256 ? 1024 : 704;
            char what[64];
            snprintf(what, sizeof what, "one-token %s ops", rs_dtype_name(types[i]));
            const long before = rs_cuda_split_count(B);
            check_residual(types[i], n_in, 96, 1, 1, 1, 1);
            check_swiglu(types[i], n_in, 96, 1, 1, 1);
            expect_split(what, before, 1);
            check_residual(types[i], n_in, 64, 3, 1, 0, 1);
            check_swiglu(types[i], n_in, 96, 1 + (int)(i % 2) * 2, 1, 1);
        }
        check_residual(RS_DTYPE_F32, 16, 64, 1, 1, 1, 1); /* 4 tasks per row */
        check_rope_fused(f16, 8, 4, 64, 64, 0, 1, RS_KV_Q8_0, 1, 1, 1);
        check_rope_fused(mixed, 8, 2, 128, 128, 0, 2, RS_KV_F16, 0, 1, 1);
        check_rope_fused(mixed, 8, 2, 128, 128, 0, 1, RS_KV_F16, 1, 1, 1);
        check_rope_fused(q40, 8, 4, 64, 64, 0, 1, RS_KV_Q8_0, 1, 1, 1);
    }
    set_split(0);
}

/* One-token Q4_0/Q8_0 fused ops through the weight-streaming kernels: rings
 * of 1..8 stages, grids of 3 blocks (each block walks several groups, the ring
 * wraps across them), rows whose last stage is partial (40 blocks of 32 inputs:
 * 32 + 8 for Q4_0, 16 + 16 + 8 for Q8_0), and the register kernel they replace. */
static void test_stream(void) {
    static const rs_dtype types[] = {RS_DTYPE_Q4_0, RS_DTYPE_Q8_0};
    const rs_dtype q40[3] = {RS_DTYPE_Q4_0, RS_DTYPE_Q4_0, RS_DTYPE_Q4_0};
    const rs_dtype q80[3] = {RS_DTYPE_Q8_0, RS_DTYPE_Q8_0, RS_DTYPE_Q8_0};
    static const int cfg[][3] = {{1, 1, 3}, {1, 2, 0}, {1, 3, 3}, {1, 8, 3}, {1, 0, 1}, {0, 0, 0}};
    for (size_t k = 0; k < sizeof cfg / sizeof *cfg; k++) {
        printf("-- one-token fused kernels, weights %s (depth %d, grid %d)\n",
               cfg[k][0] ? "streamed" : "register-loaded", cfg[k][1], cfg[k][2]);
        set_stream(cfg[k][0], cfg[k][1], cfg[k][2]);
        for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
            check_residual(types[i], 1280, 160, 1, 1, 1, 1);
            check_residual(types[i], 256, 96, 1, 0, 0, 1);
            check_swiglu(types[i], 1280, 192, 1, 1, 1);
            check_swiglu(types[i], 768, 64, 1, 0, 1);
        }
        check_rope_fused(q40, 8, 4, 64, 64, 0, 1, RS_KV_Q8_0, 1, 1, 1);
        check_rope_fused(q80, 6, 2, 32, 32, 0, 1, RS_KV_F16, 0, 0, 1);
    }
    set_stream(0, 0, 0);
}

/* One-token fused ops on every quantized type through the kernel whose grid
 * walks the groups with a ring of loads (fz_roll, the default): grids of 1, 3
 * and 7 blocks (each block takes several groups, the ring carries a group's
 * last chunk into the next group) and one block per SM (groups <= grid at
 * these sizes); rows of 2 tasks (lanes without one), 40 (a partial chunk) and
 * 125 or 128 (several chunks), with and without a pending norm, a bias, two
 * or three products per launch (mixed types split the launch). Then the same
 * cases through fz_kernel (fz_roll 0), one group per block. */
static void test_roll(void) {
    static const rs_dtype types[] = {RS_DTYPE_Q8_0,   RS_DTYPE_Q4_0, RS_DTYPE_Q4_1,
                                     RS_DTYPE_Q5_0,   RS_DTYPE_Q5_1, RS_DTYPE_IQ4_NL,
                                     RS_DTYPE_IQ4_XS, RS_DTYPE_Q4_K, RS_DTYPE_Q5_K,
                                     RS_DTYPE_Q6_K,   RS_DTYPE_Q2_K, RS_DTYPE_Q3_K};
    const rs_dtype q80[3] = {RS_DTYPE_Q8_0, RS_DTYPE_Q8_0, RS_DTYPE_Q8_0};
    const rs_dtype mixed[3] = {RS_DTYPE_Q4_K, RS_DTYPE_Q4_K, RS_DTYPE_Q6_K};
    /* fz_roll, grid, roll_fit */
    static const int cfg[][3] = {{1, 1, 0}, {1, 3, 0}, {1, 7, 0}, {1, 0, 1}, {1, 0, 0}, {0, 0, 0}};
    for (size_t k = 0; k < sizeof cfg / sizeof *cfg; k++) {
        printf("-- one-token fused kernels, %s (grid %d%s)\n",
               cfg[k][0] ? "walking the groups" : "a group per block", cfg[k][1],
               cfg[k][0] && !cfg[k][1] ? cfg[k][2] ? ", fitted" : ", one block per SM" : "");
        rs_cuda_tuning t = defaults;
        t.fz_roll = cfg[k][0];
        t.roll_grid = cfg[k][1];
        t.roll_fit = cfg[k][2];
        rs_cuda_set_tuning(B, &t);
        const long before = rs_cuda_roll_count(B);
        for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
            const int big = rs_dtype_get(types[i])->block_size == 256;
            check_residual(types[i], 1280, 160, 1, 1, 1, 1);
            check_residual(types[i], big ? 256 : 64, 96, 1, 0, 0, 1);
            check_residual(types[i], big ? 4096 : 4000, 224, 1, 1, 1, 1);
            check_swiglu(types[i], 1280, 192, 1, 1, 1);
            check_swiglu(types[i], big ? 512 : 96, 64, 1, 0, 1);
            if (!cfg[k][1]) { /* more groups than SMs: a fitted grid takes fewer blocks */
                check_residual(types[i], 256, 4544, 1, 1, 1, 1);
                check_swiglu(types[i], 256, 4544, 1, 1, 1);
            }
        }
        check_rope_fused(q80, 8, 4, 64, 64, 0, 1, RS_KV_Q8_0, 1, 1, 1);
        check_rope_fused(q80, 6, 2, 32, 32, 0, 1, RS_KV_F16, 0, 0, 1);
        check_rope_fused(mixed, 8, 2, 128, 128, 0, 1, RS_KV_F16, 1, 1, 1);
        const long ran = rs_cuda_roll_count(B) - before;
        report(cfg[k][0] ? "the cases above ran fr_kernel" : "the cases above ran no fr_kernel",
               cfg[k][0] ? ran == 0 : ran != 0, 0);
    }
    rs_cuda_set_tuning(B, &defaults);
}

/* ---- the decode chain: one-token ops as one persistent launch ------------------------------- */

static int handoff = 1;      /* chain_handoff of the chains set_chain turns on */
static int stage_kib;        /* their chain_stage (0: the default) */
static int chain_min = 2;    /* their chain_min: chains of two ops run, as the mixed cases want */
static int chain_min_in = 1; /* their chain_min_in: products of any width join */

/* The chain on (for Q8_0 and Q4_K too) or off, else the defaults. */
static void set_chain(int on, int ring_kib, int warps) {
    rs_cuda_tuning t = defaults;
    t.chain = on;
    t.chain_q8 = on;
    t.chain_q4k = on;
    t.chain_ring = ring_kib;
    t.chain_warps = warps;
    t.chain_handoff = handoff;
    t.chain_stage = stage_kib;
    t.chain_min = chain_min;
    t.chain_min_in = chain_min_in;
    rs_cuda_set_tuning(B, &t);
}

/* What a sequence of layers leaves behind, read back. */
typedef struct {
    float *x, *xn, *g, *q, *k, *v, *ck, *cv, *c2;
    long launches, phases, handoffs; /* decode-chain launches, their phases, hand-offs */
} layer_out;

/* `layers` decode steps of one layer in the forward pass's order: x += att
 * Wo^T (then the FFN norm), h = silu(xn Wg^T) * (xn Wu^T), x += h Wd^T (then
 * the next norm), the next layer's prepare, q, k, v = xn Wqkv^T with rope and
 * the cache store, attention (the next att), and finally a Q4_0 matvec on xn
 * that launches the waiting chain; with `graph` all of it captured once and
 * replayed twice. Types per matrix (wo, gate/up, down, qkv). */
static layer_out run_layers(const rs_dtype types[4], int64_t dim, int64_t ff, int n_head, int hd,
                            rs_kv_type kvt, int layers, int chain, int ring_kib, int warps,
                            bool graph) {
    const int n_ctx = 16;
    const int64_t nq = (int64_t)n_head * hd;
    tw wo = make_weight(types[0], nq, dim, 0.5f), wg = make_weight(types[1], dim, ff, 0.5f),
       wu = make_weight(types[1], dim, ff, 0.5f), wd = make_weight(types[2], ff, dim, 0.5f);
    tw wq[3];
    for (int i = 0; i < 3; i++) wq[i] = make_weight(types[3], dim, nq, 0.5f);
    tw n1 = make_weight(RS_DTYPE_F32, dim, 1, 1.0f), n2 = make_weight(RS_DTYPE_F32, dim, 1, 1.0f);
    tw cw = make_weight(RS_DTYPE_Q4_0, dim, 64, 0.5f);
    float *att = host_rand((size_t)nq, 1.0f), *x0 = host_rand((size_t)dim, 2.0f);
    float *inv = make_inv_freq(hd);
    const int32_t pos = 5;
    float *da = dev_copy(att, nq * 4), *dx = dev_copy(x0, dim * 4), *dxn = dev(dim * 4),
          *dg = dev(ff * 4), *du = dev(ff * 4), *dq = dev(nq * 4), *dk = dev(nq * 4),
          *dv = dev(nq * 4), *dc = dev(64 * 4), *dinv = dev_copy(inv, sizeof(float) * (hd / 2 + 1));
    int32_t *dpos = dev_copy(&pos, sizeof pos);
    rs_kv_desc d = {1, n_ctx, n_head, hd, kvt};
    rs_kv *kv = NULL;
    rs_error e = {0};
    if (O->kv_create(B, &d, &kv, &e)) die("kv_create", &e);
    rs_cuda_kv_fill_random(B, kv, 99); /* the positions before pos, which attention reads */
    rs_rope rope = {false, hd, dinv, 1.0f};
    rs_attn at = {n_head, n_head, hd, 1.0f, 0};
    rs_matmul qkv[3] = {{&wq[0].w, NULL, dq}, {&wq[1].w, NULL, dk}, {&wq[2].w, NULL, dv}};
    set_chain(chain, ring_kib, warps);
    if (graph && O->graph_begin(B, 7, &e)) die("graph_begin", &e);
    for (int l = 0; l < layers; l++) {
        if (l > 0) /* the forward pass's order: attention between qkv and wo */
            O->attention(B, dq, kv, 0, dpos, 1, &at, da);
        O->matmul_residual(B, &wo.w, da, 1, dx, &n1.w, 1e-5f, dxn);
        O->matmul_swiglu(B, &wg.w, &wu.w, dxn, 1, dg, du);
        O->matmul_residual(B, &wd.w, dg, 1, dx, &n2.w, 1e-5f, dxn);
        const rs_weight *next[3] = {&wq[0].w, &wq[1].w, &wq[2].w};
        O->prepare(B, next, 3, 1); /* as the forward pass does; nothing at one token */
        O->matmul_rope_store(B, qkv, dxn, 1, dpos, &rope, &at, kv, 0);
    }
    rs_matmul mm = {&cw.w, NULL, dc};
    O->matmul(B, &mm, 1, dxn, 1);
    if (graph) { /* captured once, replayed twice: the second replay starts from the first's x */
        if (O->graph_end(B, 7, &e)) die("graph_end", &e);
        for (int r = 0; r < 2; r++)
            if (!O->graph_launch(B, 7)) die("graph_launch", NULL);
    }
    long launches = 0, phases = 0, handoffs = 0;
    rs_cuda_chain_count(B, &launches, &phases, &handoffs);
    rs_cuda_set_tuning(B, &defaults);
    layer_out o = {host_alloc(dim),
                   host_alloc(dim),
                   host_alloc(ff),
                   host_alloc(nq),
                   host_alloc(nq),
                   host_alloc(nq),
                   host_alloc((size_t)n_ctx * nq),
                   host_alloc((size_t)n_ctx * nq),
                   host_alloc(64),
                   launches,
                   phases,
                   handoffs};
    if (synced("decode chain sequence")) {
        down(o.x, dx, dim * 4), down(o.xn, dxn, dim * 4), down(o.g, dg, ff * 4);
        down(o.q, dq, nq * 4), down(o.k, dk, nq * 4), down(o.v, dv, nq * 4), down(o.c2, dc, 64 * 4);
        if (rs_cuda_kv_read(B, kv, 0, n_ctx, o.ck, o.cv, &e)) die("kv_read", &e);
    }
    float *bufs[] = {da, dx, dxn, dg, du, dq, dk, dv, dc, dinv};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) O->release(B, bufs[i]);
    O->release(B, dpos);
    O->kv_destroy(B, kv);
    free_weight(&wo), free_weight(&wg), free_weight(&wu), free_weight(&wd);
    for (int i = 0; i < 3; i++) free_weight(&wq[i]);
    free_weight(&n1), free_weight(&n2), free_weight(&cw);
    free(att), free(x0), free(inv);
    return o;
}

static void free_out(layer_out *o) {
    free(o->x), free(o->xn), free(o->g), free(o->q), free(o->k), free(o->v), free(o->ck);
    free(o->cv), free(o->c2);
}

/* The same weights and inputs with the chain off and on: every output and
 * the cache bitwise equal, x moved by the products (not trivially equal), and
 * the chain really run: one launch of `chained` phases per layer (none off,
 * none at all when `chained` is 0), all but the first taking the phase
 * before's output as a hand-off (none with hand-offs off). */
static void check_chain(const rs_dtype types[4], int64_t dim, int64_t ff, int n_head, int hd,
                        rs_kv_type kvt, int layers, int ring_kib, int warps, bool graph,
                        int chained) {
    const uint64_t seed = rng; /* both runs draw the same weights and inputs */
    layer_out a = run_layers(types, dim, ff, n_head, hd, kvt, layers, 0, 0, 0, graph);
    rng = seed;
    layer_out b = run_layers(types, dim, ff, n_head, hd, kvt, layers, 1, ring_kib, warps, graph);
    const int64_t nq = (int64_t)n_head * hd;
    const size_t sz[] = {dim, dim, ff, nq, nq, nq, 16 * nq, 16 * nq, 64};
    float *pa[] = {a.x, a.xn, a.g, a.q, a.k, a.v, a.ck, a.cv, a.c2};
    float *pb[] = {b.x, b.xn, b.g, b.q, b.k, b.v, b.ck, b.cv, b.c2};
    int differ = 0;
    for (size_t i = 0; i < sizeof sz / sizeof *sz; i++)
        differ += memcmp(pa[i], pb[i], sz[i] * sizeof(float)) != 0;
    double moved = 0;
    for (int64_t i = 0; i < dim; i++) moved += fabsf(a.x[i]);
    char name[200];
    snprintf(name, sizeof name,
             "decode chain = one launch each, bitwise: %s/%s/%s/%s dim %lld ff %lld heads %d x%d, "
             "%s cache, ring %s, %d consumer warps, stage %d KiB%s%s",
             rs_dtype_name(types[0]), rs_dtype_name(types[1]), rs_dtype_name(types[2]),
             rs_dtype_name(types[3]), (long long)dim, (long long)ff, n_head, layers, kv_name(kvt),
             ring_kib ? "2 slots" : "auto", warps ? warps : 8, stage_kib, graph ? ", graph x2" : "",
             handoff ? "" : ", counted");
    const bool ran = a.launches == 0 && b.launches == (chained ? layers : 0) &&
                     b.phases == (long)chained * layers &&
                     b.handoffs == (handoff && chained ? (long)(chained - 1) * layers : 0);
    report(name, differ + (moved == 0 || !isfinite(moved)) + !ran, 0);
    if (!ran)
        printf("     chain launches %ld (%ld phases, %ld hand-offs), off %ld; want %d of %d "
               "phases\n",
               b.launches, b.phases, b.handoffs, a.launches, layers, chained);
    free_out(&a), free_out(&b);
}

/* Chains that fill (4 ops) and run again, break on a type change (a Q4_K
 * qkv after Q8_0 launches on its own), hold blocks without a group in some
 * phases (fewer groups than SMs), wrap a two-slot ring many times, store into
 * F16/F32/Q8_0 caches, take Q4_K stages whose fp16 scales start inside their
 * 16-byte span, and at the 7B shape give blocks several groups. */
static void test_chain(void) {
    const rs_dtype q40[4] = {RS_DTYPE_Q4_0, RS_DTYPE_Q4_0, RS_DTYPE_Q4_0, RS_DTYPE_Q4_0};
    const rs_dtype q80[4] = {RS_DTYPE_Q8_0, RS_DTYPE_Q8_0, RS_DTYPE_Q8_0, RS_DTYPE_Q8_0};
    /* the mixed chain: wo launches alone (the type changes), gate+up and down chain,
     * the Q4_K qkv launches alone */
    const rs_dtype mix[4] = {RS_DTYPE_Q4_0, RS_DTYPE_Q8_0, RS_DTYPE_Q8_0, RS_DTYPE_Q4_K};
    /* Q4_K: rows of 2816 (11 super-blocks) leave their fp16 scales off 16-byte runs */
    const rs_dtype q4k[4] = {RS_DTYPE_Q4_K, RS_DTYPE_Q4_K, RS_DTYPE_Q4_K, RS_DTYPE_Q4_K};
    check_chain(q40, 1024, 2048, 8, 128, RS_KV_F16, 1, 0, 0, false, 4);
    check_chain(q40, 1024, 2048, 8, 128, RS_KV_F16, 3, 0, 0, false, 4);
    check_chain(q40, 1024, 2048, 8, 128, RS_KV_Q8_0, 2, 1, 0, false, 4);
    check_chain(q80, 1024, 3072, 16, 64, RS_KV_F32, 2, 0, 0, false, 4);
    check_chain(q80, 1024, 3072, 16, 64, RS_KV_F16, 2, 1, 0, false, 4);
    check_chain(mix, 1024, 2048, 8, 128, RS_KV_F16, 2, 0, 0, false, 2);
    chain_min = 0; /* the default (3): the mixed layers' pairs launch one kernel per op */
    check_chain(mix, 1024, 2048, 8, 128, RS_KV_F16, 2, 0, 0, false, 0);
    check_chain(q40, 1024, 2048, 8, 128, RS_KV_F16, 2, 0, 0, false, 4);
    chain_min = 2;
    chain_min_in = 0; /* the default (4096): rows of 1024 inputs launch one kernel per op */
    check_chain(q40, 1024, 2048, 8, 128, RS_KV_F16, 2, 0, 0, false, 0);
    chain_min_in = 1;
    check_chain(q4k, 1024, 2048, 8, 128, RS_KV_F16, 2, 0, 0, false, 4);
    check_chain(q4k, 1024, 2816, 8, 128, RS_KV_Q8_0, 3, 1, 0, false, 4);
    /* a warp's rows of a group (every W-th) from stages of 1 row (most warps pass
     * each stage by), of fewer rows than warps, and of several rows per warp
     * (the default for rows of 1024: 16 Q4_0 rows, 8 of Q8_0); 4 and 16 warps */
    check_chain(q40, 1024, 2048, 8, 128, RS_KV_F16, 2, 0, 4, false, 4);
    check_chain(q80, 1024, 3072, 16, 64, RS_KV_F16, 2, 1, 4, false, 4);
    check_chain(q40, 1024, 2048, 8, 128, RS_KV_F16, 2, 0, 16, false, 4);
    check_chain(q4k, 1024, 2816, 8, 128, RS_KV_F16, 2, 0, 4, false, 4);
    check_chain(q4k, 1024, 2816, 8, 128, RS_KV_F16, 2, 0, 16, false, 4);
    stage_kib = 1; /* Q4_K stages of one row of 2816: scales 0, 12, 8, 4 bytes into their span */
    check_chain(q40, 1024, 2048, 8, 128, RS_KV_F16, 2, 0, 0, false, 4);
    check_chain(q80, 1024, 3072, 16, 64, RS_KV_F16, 2, 0, 16, false, 4);
    check_chain(q4k, 1024, 2816, 8, 128, RS_KV_F16, 2, 0, 0, false, 4);
    check_chain(q4k, 1024, 2816, 8, 128, RS_KV_F16, 2, 1, 4, false, 4);
    stage_kib = 3;
    check_chain(q40, 1024, 2048, 8, 128, RS_KV_F16, 2, 0, 0, false, 4);
    check_chain(q80, 1024, 3072, 16, 64, RS_KV_Q8_0, 2, 0, 4, false, 4);
    check_chain(q4k, 1024, 2816, 8, 128, RS_KV_F32, 2, 0, 16, false, 4);
    stage_kib = 0;
    /* phases that wait for every block's counter instead of taking hand-offs */
    handoff = 0;
    check_chain(q40, 1024, 2048, 8, 128, RS_KV_F16, 2, 0, 0, false, 4);
    check_chain(q80, 1024, 3072, 16, 64, RS_KV_Q8_0, 2, 1, 0, true, 4);
    check_chain(q4k, 1024, 2816, 8, 128, RS_KV_F16, 2, 0, 0, false, 4);
    handoff = 1;
    /* captured as a graph (persistent launches with PDL in a capture) and replayed */
    check_chain(q40, 1024, 2048, 8, 128, RS_KV_F16, 3, 0, 0, true, 4);
    check_chain(q80, 1024, 3072, 16, 64, RS_KV_Q8_0, 2, 0, 0, true, 4);
    check_chain(q4k, 1024, 2816, 8, 128, RS_KV_F16, 2, 0, 0, true, 4);
    if (big_cases()) {
        check_chain(q4k, 4096, 11008, 32, 128, RS_KV_F16, 2, 0, 0, false, 4);
        check_chain(q4k, 4096, 11008, 32, 128, RS_KV_Q8_0, 1, 0, 4, true, 4);
        check_chain(q40, 4096, 11008, 32, 128, RS_KV_F16, 2, 0, 0, false, 4);
        chain_min_in = 0; /* the default: the 7B's products are wide enough */
        check_chain(q40, 4096, 11008, 32, 128, RS_KV_F16, 2, 0, 0, false, 4);
        chain_min_in = 1;
        check_chain(q80, 4096, 11008, 32, 128, RS_KV_Q8_0, 2, 0, 0, false, 4);
        check_chain(q40, 4096, 11008, 32, 128, RS_KV_F16, 1, 1, 0, false, 4);
        check_chain(q40, 4096, 11008, 32, 128, RS_KV_F16, 2, 0, 4, false, 4);
        check_chain(q80, 4096, 11008, 32, 128, RS_KV_F16, 1, 0, 4, false, 4);
        stage_kib = 25; /* session 10's default: 8 rows of 4096 Q4_0, 4 of 11008 */
        check_chain(q40, 4096, 11008, 32, 128, RS_KV_F16, 1, 0, 0, false, 4);
        stage_kib = 0;
    }
}

int main(void) {
    rs_error e = {0};
    if (rs_cuda_backend_create_impl(&B, &e)) {
        printf("SKIP: no CUDA device (%s)\n", e.msg);
        return 77;
    }
    O = B->ops;
    rs_cuda_get_tuning(B, &defaults);
    test_residual();
    test_swiglu();
    test_rope();
    test_step_attention();
    test_split();
    test_stream();
    test_roll();
    test_chain();
    O->destroy(B);
    printf("\n%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}

/* cuda_testlib.h — what the CUDA op tests share: the backend under test, the
 * pass/fail counters, a seeded xorshift generator, device buffer helpers that
 * abort the program on failure, random weights quantized on the host and
 * loaded on the backend, and (ct_report.h) the relative-error report.
 *
 * Header-only with static state: each test program is one translation unit
 * and includes it once, after setting its seed with CT_SEED. */
#ifndef RUSTY_TESTS_CUDA_TESTLIB_H
#define RUSTY_TESTS_CUDA_TESTLIB_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "ct_report.h"
#include "dtype/blocks.h"
#include "dtype/dtype.h"
#include "dtype/fp16.h"

#ifndef CT_SEED
#error "define CT_SEED (the random generator's seed) before including cuda_testlib.h"
#endif

static rs_backend *B;
static const rs_backend_ops *O;
static uint64_t rng = CT_SEED;

/* Uniform in [-1, 1). */
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static void die(const char *what, const rs_error *e) __attribute__((noreturn));
static void die(const char *what, const rs_error *e) {
    fprintf(stderr, "FATAL: %s: %s\n", what, e ? e->msg : "");
    exit(1);
}

static float *host_alloc(size_t n) {
    float *p = malloc(n * sizeof *p + 1);
    if (!p) die("malloc", NULL);
    return p;
}

static float *host_rand(size_t n, float scale) {
    float *p = host_alloc(n);
    for (size_t i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}

static void *dev(size_t bytes) {
    void *p = NULL;
    rs_error e = {0};
    if (O->alloc(B, bytes, &p, &e)) die("alloc", &e);
    return p;
}

static void up(void *d, const void *h, size_t n) {
    rs_error e = {0};
    if (O->upload(B, d, h, n, &e)) die("upload", &e);
}

static void down(void *h, const void *d, size_t n) {
    rs_error e = {0};
    if (O->download(B, h, d, n, &e)) die("download", &e);
}

static void *dev_copy(const void *h, size_t n) {
    void *d = dev(n);
    up(d, h, n);
    return d;
}

/* Fills device memory with all-ones bytes (NaN as floats), so an element an
 * op never writes fails its comparison. */
static void poison(void *d, size_t n) {
    unsigned char *p = malloc(n);
    if (!p) die("malloc", NULL);
    memset(p, 0xFF, n);
    up(d, p, n);
    free(p);
}

/* Waits for the device; a recorded device error fails the case `what`. */
static int synced(const char *what) {
    rs_error e = {0};
    if (O->sync(B, &e)) {
        printf("FAIL %-70s device error: %s\n", what, e.msg);
        n_fail++;
        return 0;
    }
    return 1;
}

typedef struct tw {
    rs_weight w;
    void *bytes;
} tw;

/* A random n_out x n_in weight of `type`, quantized on the host and loaded. */
static tw make_weight(rs_dtype type, int64_t n_in, int64_t n_out, float scale) {
    tw t = {0};
    size_t row = 0;
    if (!rs_dtype_row_size(type, n_in, &row)) die("row size", NULL);
    float *f = host_rand((size_t)(n_in * n_out), scale);
    t.bytes = malloc(row * (size_t)n_out);
    rs_dtype_get(type)->from_f32(f, t.bytes, n_in * n_out);
    free(f);
    t.w = (rs_weight){.name = "test",
                      .type = type,
                      .n_in = n_in,
                      .n_out = n_out,
                      .nbytes = row * (size_t)n_out,
                      .host = t.bytes};
    rs_error e = {0};
    if (O->weight_load(B, &t.w, &e)) die("weight_load", &e);
    return t;
}

static void free_weight(tw *t) {
    O->weight_unload(B, &t->w);
    free(t->bytes);
}

/* How far a Q4_0 cache's rows (cache, as kv_read gives them) are from the CPU quantizer's
 * GGUF Q4_0 blocks of the values the GPU stored (src): the largest difference over the
 * largest |src|, 0 when the GPU quantized every value as the CPU does. n_rows rows of hd
 * (a multiple of 32). */
static double q4_cache_mismatch(const float *cache, const float *src, size_t n_rows, int hd) {
    const rs_dtype_traits *tr = rs_dtype_get(RS_DTYPE_Q4_0);
    unsigned char blk[18 * (RS_MAX_HEAD_DIM / 32)];
    float deq[RS_MAX_HEAD_DIM];
    double diff = 0, amax = 0;
    for (size_t r = 0; r < n_rows; r++) {
        tr->from_f32(src + r * hd, blk, hd);
        tr->to_f32(blk, deq, hd);
        for (int i = 0; i < hd; i++) {
            diff = fmax(diff, fabs((double)deq[i] - cache[r * hd + i]));
            amax = fmax(amax, fabs((double)src[r * hd + i]));
        }
    }
    return amax > 0 ? diff / amax : diff;
}

/* True when a decode of n tokens over a kt cache with heads of hd runs the kernels that score
 * keys in integers (attn_dec_kernel, attn_short_kernel over Q8_0 and Q4_0 caches: heads of
 * whole 32-value blocks that a power of two of lanes hold, 16 values a lane for Q8_0, 32 for
 * Q4_0). */
static int attn_int_keys(rs_kv_type kt, int hd, int n) {
    const int dpl = kt == RS_KV_Q4_0 ? 32 : kt == RS_KV_Q8_0 ? 16 : 0;
    if (!dpl || n > 4 || hd % 32 || hd > 256) return 0;
    const int lp = hd / dpl;
    return (lp & (lp - 1)) == 0;
}

/* The query those kernels score with (cuda_attn.cu q_to_i8), in place: each head row of hd in
 * blocks of 32 through the CPU's Q8_0 activation quantizer (act_quant_ref.c, the numerics
 * q_to_i8 repeats), then d * q8. n_rows rows, hd a multiple of 32. */
static void q8_round_trip(float *q, size_t n_rows, int hd) {
    for (size_t r = 0; r < n_rows; r++)
        for (int b = 0; b < hd; b += 32) {
            float *x = q + r * hd + b;
            block_q8_0 y;
            rs_cpu_quant_q8_0_ref(x, &y, 32);
            const float d = rs_fp16_to_f32(y.d);
            for (int i = 0; i < 32; i++) x[i] = d * (float)y.qs[i];
        }
}

#endif

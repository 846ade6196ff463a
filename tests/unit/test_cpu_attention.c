/* test_cpu_attention.c — the CPU backend's attention head kernels (attention.h) for every
 * cache type (F32, F16, Q8_0, Q4_0) at every SIMD level available, against a float64 reference
 * over the values the cache holds (read back through the type's own dequantizer), so only
 * the kernels' f32 arithmetic differs. Quantized caches with heads of whole 32-value blocks
 * score keys against the query as Q8_0 (rs_attn_scores_q8), so there the reference takes the
 * query through the activation quantizer (act_quant_ref.c; its SIMD versions are bitwise
 * equal to it, test_cpu_quant).
 *
 * Cases: head sizes 8..256, among them sizes that are not multiples of 8 or 32 (the SIMD
 * kernels hand those to the portable ones; Q8_0 and Q4_0 rows are padded to whole blocks), 1..777
 * positions, scores spread over several units so the softmax is neither flat nor one-hot,
 * the output poisoned first (and one float past it checked untouched). Tolerance: relative
 * L2 error 1e-5 — the kernels sum in f32, one position after another (the softmax's sum,
 * each output), so rounding grows like sqrt(positions) ulps: the largest measured is
 * 1.6e-6 at 777 positions. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/attention.h"
#include "backend/cpu/kernels.h"
#include "core/cpu.h"
#include "dtype/blocks.h"
#include "dtype/dtype.h"
#include "dtype/fp16.h"

#define TOL 1e-5

static const char *k_levels[3] = {"scalar", "avx2", "avx512"};

/* The SIMD levels this machine runs (n returned). */
static int levels(rs_simd_level out[3]) {
    int n = 0;
    for (int l = 0; l < 3; l++) {
        setenv("RUSTY_SIMD", k_levels[l], 1);
        if (rs_cpu_simd_level() == (rs_simd_level)l)
            out[n++] = (rs_simd_level)l;
        else
            printf("note: SIMD level %s not available, not tested\n", k_levels[l]);
    }
    unsetenv("RUSTY_SIMD");
    return n;
}

/* A cache of n_pos rows of hd values in type t, from src ([n_pos][hd]); back receives the
 * values it holds. Returns the cache (malloc'd). */
static void *make_cache(rs_kv_type t, const float *src, int n_pos, int hd, float *back) {
    const size_t n = (size_t)n_pos * hd;
    if (t == RS_KV_F32) {
        float *c = malloc(n * sizeof *c);
        memcpy(c, src, n * sizeof *c);
        memcpy(back, src, n * sizeof *c);
        return c;
    }
    if (t == RS_KV_F16) {
        rs_fp16 *c = malloc(n * sizeof *c);
        for (size_t i = 0; i < n; i++) {
            c[i] = rs_f32_to_fp16(src[i]);
            back[i] = rs_fp16_to_f32(c[i]);
        }
        return c;
    }
    const rs_dtype_traits *tr = rs_dtype_get(t == RS_KV_Q8_0 ? RS_DTYPE_Q8_0 : RS_DTYPE_Q4_0);
    const int padded = (hd + 31) / 32 * 32;
    const size_t row_bytes = (size_t)padded / 32 * tr->type_size;
    unsigned char *c = malloc((size_t)n_pos * row_bytes);
    float row[RS_MAX_HEAD_DIM], deq[RS_MAX_HEAD_DIM];
    for (int p = 0; p < n_pos; p++) {
        memset(row, 0, sizeof row);
        memcpy(row, src + (size_t)p * hd, (size_t)hd * sizeof *row);
        tr->from_f32(row, c + (size_t)p * row_bytes, padded);
        tr->to_f32(c + (size_t)p * row_bytes, deq, padded);
        memcpy(back + (size_t)p * hd, deq, (size_t)hd * sizeof *deq);
    }
    return c;
}

static double check(rs_attn_head_fn fn, rs_kv_type t, int hd, int n_pos, uint64_t *rng) {
    const size_t n = (size_t)n_pos * hd;
    float *ks = malloc(n * sizeof *ks), *vs = malloc(n * sizeof *vs), *kb = malloc(n * sizeof *kb),
          *vb = malloc(n * sizeof *vb), *scores = malloc((size_t)n_pos * sizeof *scores);
    float q[RS_MAX_HEAD_DIM], out[RS_MAX_HEAD_DIM + 1];
    for (size_t i = 0; i < n; i++) ks[i] = tu_randf(rng), vs[i] = tu_randf(rng);
    /* |q| about 3 sqrt(hd) against keys of rms 1/sqrt(3): scores of a few units after the
     * 1/sqrt(hd) scale, so the weights span several orders of magnitude */
    for (int i = 0; i < hd; i++) q[i] = 5.0f * tu_randf(rng);
    void *kc = make_cache(t, ks, n_pos, hd, kb), *vc = make_cache(t, vs, n_pos, hd, vb);
    const float scale = 1.0f / sqrtf((float)hd);
    for (int i = 0; i <= hd; i++) out[i] = NAN;
    fn(q, kc, vc, n_pos, hd, scale, scores, out);
    /* float64 reference over the cached values; quantized keys of heads of whole blocks are
     * scored against the query as Q8_0 (the activation quantizer's blocks) */
    double qr[RS_MAX_HEAD_DIM];
    for (int i = 0; i < hd; i++) qr[i] = q[i];
    if ((t == RS_KV_Q8_0 || t == RS_KV_Q4_0) && hd % 32 == 0) {
        block_q8_0 xq[RS_MAX_HEAD_DIM / 32];
        rs_cpu_quant_q8_0_ref(q, xq, hd);
        for (int i = 0; i < hd; i++) {
            const block_q8_0 *b = &xq[i / 32];
            qr[i] = (double)rs_fp16_to_f32(b->d) * b->qs[i % 32];
        }
    }
    double *w = malloc((size_t)n_pos * sizeof *w), mx = -INFINITY, sum = 0, err = 0, norm = 0;
    for (int p = 0; p < n_pos; p++) {
        double s = 0;
        for (int i = 0; i < hd; i++) s += qr[i] * kb[(size_t)p * hd + i];
        w[p] = s * scale;
        mx = w[p] > mx ? w[p] : mx;
    }
    for (int p = 0; p < n_pos; p++) sum += (w[p] = exp(w[p] - mx));
    for (int i = 0; i < hd; i++) {
        double ref = 0;
        for (int p = 0; p < n_pos; p++) ref += w[p] / sum * vb[(size_t)p * hd + i];
        err += (out[i] - ref) * (out[i] - ref);
        norm += ref * ref;
    }
    if (!isnan(out[hd])) err = INFINITY; /* wrote past the head */
    free(ks), free(vs), free(kb), free(vb), free(scores), free(kc), free(vc), free(w);
    return isnan(err) ? INFINITY : sqrt(err / norm);
}

static void test_heads(void **state) {
    (void)state;
    static const int hds[] = {8, 16, 24, 32, 40, 64, 96, 128, 256};
    static const int positions[] = {1, 2, 31, 100, 777};
    static const rs_kv_type types[] = {RS_KV_F32, RS_KV_F16, RS_KV_Q8_0, RS_KV_Q4_0};
    static const char *type_names[] = {"F32", "F16", "Q8_0", "Q4_0"};
    rs_simd_level lv[3];
    const int n_lv = levels(lv);
    uint64_t rng = 7;
    int fails = 0;
    for (int l = 0; l < n_lv; l++)
        for (int ti = 0; ti < 4; ti++) {
            const rs_attn_head_fn fn = rs_attn_head_select(types[ti], lv[l]);
            double worst = 0;
            for (size_t h = 0; h < sizeof hds / sizeof *hds; h++)
                for (size_t pi = 0; pi < sizeof positions / sizeof *positions; pi++) {
                    const double e = check(fn, types[ti], hds[h], positions[pi], &rng);
                    worst = e > worst ? e : worst;
                    if (!(e <= TOL) && fails++ < 10)
                        print_error("%s %s hd %d positions %d: relative error %.3g\n",
                                    k_levels[lv[l]], type_names[ti], hds[h], positions[pi], e);
                }
            printf("  %-6s %-4s worst relative error %.3g (tolerance %.0e)\n", k_levels[lv[l]],
                   type_names[ti], worst, TOL);
        }
    assert_int_equal(fails, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

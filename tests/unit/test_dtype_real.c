/* test_dtype_real.c — the converters on real trained weights.
 *
 * TinyStories-656K exists as GGUF F16, as Q8_0 made by llama.cpp, and as a
 * "Q2_K" file that really holds IQ4_NL (plus a Q8_0 token_embd). We quantize
 * the F16 values (as f32) with our Q8_0 and IQ4_NL and compare the bytes with
 * llama.cpp's, and dequantize llama.cpp's tensors to measure the relative L2
 * error against F16 (models README: 0.5% for Q8_0, 7.6% for IQ4_NL).
 *
 * The files are located with a small self-contained GGUF v3 header walk
 * (until the library's reader, being written on branch gguf, is merged). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtype/dtype.h"

/* ---- minimal GGUF v3 index (test-only; bounds-checked, no allocation by count) ---- */

enum { MAXT = 64 };

typedef struct {
    char name[96];
    int type;
    int64_t n;    /* elements */
    uint64_t off; /* offset in the data section */
    const uint8_t *data;
} mini_tensor;

typedef struct {
    uint8_t *buf;
    size_t size;
    int n;
    mini_tensor t[MAXT];
} mini_gguf;

typedef struct {
    const uint8_t *p, *end;
    bool ok;
} cursor;

static uint64_t rd(cursor *c, size_t w) {
    if ((size_t)(c->end - c->p) < w) {
        c->ok = false;
        return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < w; i++) v |= (uint64_t)c->p[i] << (8 * i);
    c->p += w;
    return v;
}

static void cur_skip(cursor *c, uint64_t n) {
    if ((uint64_t)(c->end - c->p) < n)
        c->ok = false;
    else
        c->p += n;
}

static void skip_value(cursor *c, uint32_t type, int depth) {
    static const uint8_t widths[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == 8) {
        cur_skip(c, rd(c, 8));
    } else if (type == 9 && depth == 0) {
        uint32_t et = (uint32_t)rd(c, 4);
        uint64_t cnt = rd(c, 8);
        for (uint64_t i = 0; i < cnt && c->ok; i++) skip_value(c, et, 1);
    } else if (type < 13 && widths[type]) {
        cur_skip(c, widths[type]);
    } else {
        c->ok = false;
    }
}

static bool mini_open(mini_gguf *g, const char *path) {
    memset(g, 0, sizeof *g);
    g->buf = (uint8_t *)tu_read_file(path, &g->size);
    if (!g->buf) return false;
    cursor c = {g->buf, g->buf + g->size, true};
    if (rd(&c, 4) != 0x46554747u || rd(&c, 4) != 3) return false; /* "GGUF", v3 */
    uint64_t nt = rd(&c, 8), nkv = rd(&c, 8), align = 32;
    if (nt > MAXT) return false;
    for (uint64_t i = 0; i < nkv && c.ok; i++) {
        uint64_t klen = rd(&c, 8);
        const uint8_t *key = c.p;
        cur_skip(&c, klen);
        uint32_t type = (uint32_t)rd(&c, 4);
        if (c.ok && type == 4 && klen == 17 && memcmp(key, "general.alignment", 17) == 0)
            align = rd(&c, 4);
        else
            skip_value(&c, type, 0);
    }
    for (uint64_t i = 0; i < nt && c.ok; i++) {
        mini_tensor *t = &g->t[i];
        uint64_t len = rd(&c, 8);
        if (len >= sizeof t->name) return false;
        const uint8_t *nm = c.p;
        cur_skip(&c, len);
        if (!c.ok) return false;
        memcpy(t->name, nm, len);
        uint32_t nd = (uint32_t)rd(&c, 4);
        if (nd == 0 || nd > 4) return false;
        t->n = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t ne = rd(&c, 8);
            if (ne == 0 || ne > (1u << 24)) return false;
            t->n *= (int64_t)ne;
        }
        t->type = (int)rd(&c, 4);
        t->off = rd(&c, 8);
    }
    if (!c.ok || align == 0) return false;
    uint64_t base = ((uint64_t)(c.p - g->buf) + align - 1) / align * align;
    for (uint64_t i = 0; i < nt; i++) {
        mini_tensor *t = &g->t[i];
        size_t bytes;
        uint64_t off = t->off;
        if (!rs_dtype_row_size((rs_dtype)t->type, t->n, &bytes)) return false;
        if (off > g->size || base > g->size - off || bytes > g->size - base - off) return false;
        t->data = g->buf + base + off;
    }
    g->n = (int)nt;
    return true;
}

static const mini_tensor *mini_find(const mini_gguf *g, const char *name) {
    for (int i = 0; i < g->n; i++)
        if (strcmp(g->t[i].name, name) == 0) return &g->t[i];
    return NULL;
}

static float *to_f32_alloc(const mini_tensor *t) {
    float *y = malloc((size_t)t->n * sizeof *y);
    assert_non_null(y);
    const rs_dtype_traits *tr = rs_dtype_get(t->type);
    assert_non_null(tr);
    assert_non_null(tr->to_f32);
    tr->to_f32(t->data, y, t->n);
    return y;
}

/* ---- checks ---- */

typedef struct {
    int64_t blocks, diff_blocks, diff_bytes;
    double err2, ref2;
} stats;

/* Quantizes the F16 tensor's values with type qt, compares with llama.cpp's
 * tensor q bytewise, and accumulates the dequantization error of q vs F16. */
static void compare_tensor(const mini_tensor *f16, const mini_tensor *q, stats *st) {
    const rs_dtype_traits *tr = rs_dtype_get(q->type);
    assert_int_equal(f16->type, RS_DTYPE_F16);
    assert_int_equal(f16->n, q->n);
    float *x = to_f32_alloc(f16);
    size_t bytes;
    assert_true(rs_dtype_row_size((rs_dtype)q->type, q->n, &bytes));
    uint8_t *mine = malloc(bytes);
    assert_non_null(mine);
    tr->from_f32(x, mine, q->n);
    int64_t nb = q->n / tr->block_size;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *a = mine + b * (int64_t)tr->type_size,
                      *r = q->data + b * (int64_t)tr->type_size;
        st->blocks++;
        if (memcmp(a, r, tr->type_size) == 0) continue;
        st->diff_blocks++;
        for (size_t i = 0; i < tr->type_size; i++) st->diff_bytes += a[i] != r[i];
    }
    float *y = to_f32_alloc(q);
    for (int64_t i = 0; i < q->n; i++) {
        double d = (double)x[i] - y[i];
        st->err2 += d * d;
        st->ref2 += (double)x[i] * x[i];
    }
    free(y);
    free(mine);
    free(x);
}

static void run_file(const char *qpath, int want_type, stats *st) {
    mini_gguf f16, qf;
    assert_true(mini_open(&f16, tu_shared_or_skip("models/TinyStories-656K.f16.gguf")));
    assert_true(mini_open(&qf, tu_shared_or_skip(qpath)));
    int used = 0;
    for (int i = 0; i < qf.n; i++) {
        const mini_tensor *q = &qf.t[i];
        if (q->type != want_type) continue;
        const mini_tensor *src = mini_find(&f16, q->name);
        assert_non_null(src);
        compare_tensor(src, q, st);
        used++;
    }
    assert_true(used > 0);
    free(f16.buf);
    free(qf.buf);
}

static void test_q8_0_matches_llama_cpp(void **state) {
    (void)state;
    stats st = {0};
    run_file("models/tinystories-656k-q8_0.gguf", RS_DTYPE_Q8_0, &st);
    double rel = sqrt(st.err2 / st.ref2);
    printf("Q8_0 (tinystories-656k-q8_0.gguf): %lld of %lld blocks differ (%lld bytes); "
           "rel L2 vs F16 %.4f%%\n",
           (long long)st.diff_blocks, (long long)st.blocks, (long long)st.diff_bytes, 100 * rel);
    assert_int_equal(st.diff_blocks, 0);
    /* README: 0.5% measured by a separate tool; Q8_0's own bound for
     * Gaussian-like blocks is ~0.55% (test_quant_legacy.c) */
    assert_true(rel > 0.003 && rel < 0.006);
}

static void test_iq4_nl_matches_llama_cpp(void **state) {
    (void)state;
    stats st = {0}, emb = {0};
    run_file("models/TinyStories-656K-Q2_K.gguf", RS_DTYPE_IQ4_NL, &st);
    run_file("models/TinyStories-656K-Q2_K.gguf", RS_DTYPE_Q8_0, &emb); /* token_embd */
    double rel = sqrt(st.err2 / st.ref2);
    printf("IQ4_NL (TinyStories-656K-Q2_K.gguf): %lld of %lld blocks differ (%lld bytes); "
           "rel L2 vs F16 %.3f%%\n",
           (long long)st.diff_blocks, (long long)st.blocks, (long long)st.diff_bytes, 100 * rel);
    printf("Q8_0 token_embd in the same file: %lld of %lld blocks differ\n",
           (long long)emb.diff_blocks, (long long)emb.blocks);
    assert_int_equal(st.diff_blocks, 0);
    assert_int_equal(emb.diff_blocks, 0);
    /* README: 7.6%; IQ4_NL's Gaussian bound is 9.6% (test_quant_iq4nl.c) */
    assert_true(rel > 0.05 && rel < 0.09);
}

int main(void) {
    tu_shared_or_skip("models/TinyStories-656K.f16.gguf");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q8_0_matches_llama_cpp),
        cmocka_unit_test(test_iq4_nl_matches_llama_cpp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

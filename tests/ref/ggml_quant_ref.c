/* ggml_quant_ref.c — ggml's own quantizers and dequantizers on fixed rows.
 *
 * Writes, to stdout, the reference tests/unit/test_quant_ggml.c reads: for each
 * input row (256 floats, made here from xorshift without libm, so any machine makes
 * the same ones) and each type, the blocks ggml_quantize_chunk writes (no
 * importance matrix: what llama-quantize does without one) and the FNV-1a 64 hash of
 * what the type's to_float makes of those blocks. Built and run against Debian's
 * libggml by tests/ref/make_llamacpp_ref.py; not part of Rusty.
 *
 *   input <case> <256 floats as 8-hex-digit bit patterns>
 *   <TYPE> <case> <blocks in hex> <fnv1a64 of the dequantized floats' bytes>
 */
#include <ggml.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define N 256

static float uniform(uint64_t *s) { /* [-1, 1) */
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return (float)((x >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static const char *const cases[] = {"uniform", "weights", "zero", "const", "negconst",  "outlier",
                                    "negonly", "posonly", "tiny", "huge",  "blockscale"};

static void fill(int c, float *x) {
    uint64_t s = 0x9E3779B97F4A7C15ull * (uint64_t)(c + 1) + 1;
    for (int i = 0; i < N; i++) {
        float u = uniform(&s);
        switch (c) {
        case 0:
            x[i] = u;
            break;
        case 1:
            x[i] = 0.02f * (u + uniform(&s) + uniform(&s));
            break; /* bell-shaped */
        case 2:
            x[i] = 0.0f;
            break;
        case 3:
            x[i] = 0.37f;
            break;
        case 4:
            x[i] = -1.25f;
            break;
        case 5:
            x[i] = (i % 32 == 7) ? (u < 0 ? -10.0f : 10.0f) : 0.1f * u;
            break;
        case 6:
            x[i] = -(0.5f * (u + 1.0f) + 0.1f);
            break;
        case 7:
            x[i] = 0.5f * (u + 1.0f) + 2.0f;
            break;
        case 8:
            x[i] = 1e-6f * u;
            break;
        case 9:
            x[i] = 3e4f * u;
            break;
        default:
            x[i] = u * (float)(1 << (i / 16 % 8)) / 16.0f;
            break; /* scales differ by sub-block */
        }
    }
}

static uint64_t fnv1a64(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

int main(void) {
    static const enum ggml_type types[] = {GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,   GGML_TYPE_Q5_0,
                                           GGML_TYPE_Q5_1, GGML_TYPE_Q8_0,   GGML_TYPE_Q2_K,
                                           GGML_TYPE_Q3_K, GGML_TYPE_Q4_K,   GGML_TYPE_Q5_K,
                                           GGML_TYPE_Q6_K, GGML_TYPE_IQ4_NL, GGML_TYPE_IQ4_XS};
    float x[N], y[N];
    unsigned char q[4 * N];
    printf(
        "# made by tests/ref/make_llamacpp_ref.py with ggml's quantizers; do not edit by hand\n");
    for (int c = 0; c < (int)(sizeof cases / sizeof cases[0]); c++) {
        fill(c, x);
        printf("input %s", cases[c]);
        for (int i = 0; i < N; i++) {
            uint32_t bits;
            memcpy(&bits, &x[i], 4);
            printf(" %08x", bits);
        }
        printf("\n");
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            size_t bytes = ggml_quantize_chunk(types[t], x, q, 0, 1, N, NULL);
            ggml_get_type_traits(types[t])->to_float(q, y, N);
            printf("%s %s ", ggml_type_name(types[t]), cases[c]);
            for (size_t i = 0; i < bytes; i++) printf("%02x", q[i]);
            printf(" %016llx\n", (unsigned long long)fnv1a64(y, sizeof y));
        }
    }
    ggml_quantize_free();
    return 0;
}

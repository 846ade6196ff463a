/* bench_matmul.c — CPU matrix-product benchmark: decode gemv (weight GB/s and
 * its fraction of the measured memory bandwidth) and prompt gemm (GFLOP/s) for
 * every weight type, printed as a markdown table.
 *
 *   bench_matmul [-t threads] [-l scalar|avx2|avx512|amx] [-T type,type,...]
 *                [-m membw_MiB] [-s seconds_per_case] [-n 64,512] [-H] [-G] [-P]
 *
 * -H backs the weights with transparent huge pages (as the bandwidth probe
 * is); by default they use ordinary 4 KiB pages, like a file mmap.
 * Q4_0 and Q8_0 are packed into the x16 layout first where that pays at the
 * level (as the CPU backend does at load); -G keeps the GGUF layout.
 * -P: packed decode tiles without software prefetch (the backend's choice
 * from 8 threads up).
 *
 * Decode streams from memory, not cache: the matrix is replicated until the
 * copies fill a working set larger than the LLC and the runs cycle through
 * them, as a real model's per-token weights do. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend/cpu/matmul.h"
#include "backend/cpu/membw.h"
#include "backend/cpu/packed.h"
#include "backend/cpu/threadpool.h"
#include "core/cpu.h"
#include "dtype/dtype.h"
#include "dtype/fp16.h"

static const char *k_default_types[] = {"F32",  "F16",  "BF16", "Q8_0",   "Q4_0",
                                        "Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "Q2_K",
                                        "Q3_K", "Q4_K", "Q5_K", "Q6_K",   "IQ4_XS"};

typedef struct {
    int threads;
    rs_simd_level level;
    const char *types;
    double membw_mib;
    double seconds;
    int ntoks[4];
    int n_ntoks;
    int huge;        /* back the weights with transparent huge pages */
    int gguf;        /* never pack */
    int hw_prefetch; /* -P */
} options;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random weights that decode to finite values: float types get small floats,
 * quantized types random bytes with the first fp16 field (d) of each block
 * set to a small scale. Speed does not depend on the values otherwise. */
static void fill_weights(rs_dtype t, uint8_t *w, size_t bytes) {
    uint64_t s = 88172645463325252ull;
    const rs_dtype_traits *tr = rs_dtype_get(t);
    if (t == RS_DTYPE_F32) {
        for (size_t i = 0; i + 4 <= bytes; i += 4) {
            float v = (float)(rng(&s) % 2001) / 1000.0f - 1.0f;
            memcpy(w + i, &v, 4);
        }
        return;
    }
    if (t == RS_DTYPE_F16 || t == RS_DTYPE_BF16) {
        for (size_t i = 0; i + 2 <= bytes; i += 2) {
            float v = (float)(rng(&s) % 2001) / 1000.0f - 1.0f;
            uint16_t h = t == RS_DTYPE_F16 ? rs_f32_to_fp16(v) : rs_f32_to_bf16(v);
            memcpy(w + i, &h, 2);
        }
        return;
    }
    for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)(rng(&s) >> 24);
    size_t d_off = t == RS_DTYPE_Q2_K   ? 80
                   : t == RS_DTYPE_Q3_K ? 108
                   : t == RS_DTYPE_Q6_K ? 208
                                        : 0;
    uint16_t d = rs_f32_to_fp16(0.01f);
    for (size_t b = 0; b + tr->type_size <= bytes; b += tr->type_size) memcpy(w + b + d_off, &d, 2);
}

typedef struct {
    rs_threadpool *tp;
    rs_simd_level level;
    double membw;
    double seconds;
    bool hw_prefetch; /* -P: decode tiles without software prefetch */
} bench_env;

/* Seconds per call of the product (best of repeated timings), cycling over
 * n_copies copies of the weights. */
static double time_matmul(const bench_env *env, rs_dtype t, rs_cpu_layout lay, uint8_t *w,
                          size_t w_bytes, int n_copies, int64_t n_out, int64_t n_in, int64_t n_tok,
                          float *x, float *y, void *scratch, size_t scratch_size) {
    rs_cpu_matmul_in in = {x,          n_in,    n_in,         n_tok,
                           env->level, scratch, scratch_size, env->hw_prefetch};
    rs_cpu_matmul_w mw = {t, w, n_out, y, n_out, lay};
    rs_error err = {0};
    double best = 1e30, start = now_s();
    int calls = 0;
    do {
        int batch = n_tok == 1 ? n_copies : 1;
        double t0 = now_s();
        for (int i = 0; i < batch; i++) {
            mw.w = w + (size_t)(calls % n_copies) * w_bytes;
            if (rs_cpu_matmul(env->tp, &in, &mw, &err) != RS_OK) {
                fprintf(stderr, "matmul %s: %s\n", rs_dtype_name(t), err.msg);
                exit(1);
            }
            calls++;
        }
        double dt = (now_s() - t0) / batch;
        if (dt < best) best = dt;
    } while (now_s() - start < env->seconds || calls < 3);
    return best;
}

static void bench_type(const bench_env *env, rs_dtype t, const options *o) {
    static const int64_t shapes[2][2] = {{4096, 4096}, {11008, 4096}};
    size_t ws_bytes = (size_t)(o->membw_mib * 1048576.0) / 2;
    printf("| %-6s |", rs_dtype_name(t));
    fflush(stdout);
    for (int si = 0; si < 2; si++) {
        int64_t n_out = shapes[si][0], n_in = shapes[si][1];
        size_t row;
        rs_dtype_row_size(t, n_in, &row);
        size_t w_bytes = row * (size_t)n_out;
        rs_cpu_layout lay = !o->gguf && rs_cpu_matmul_pack_useful(t, env->level)
                                ? RS_CPU_LAYOUT_X16
                                : RS_CPU_LAYOUT_GGUF;
        size_t gguf_bytes = w_bytes;
        if (lay == RS_CPU_LAYOUT_X16) w_bytes = rs_cpu_pack_size(t, n_out, n_in);
        int n_copies = (int)(ws_bytes / w_bytes) + 1;
        size_t w_total =
            (w_bytes * (size_t)n_copies + ((size_t)2 << 20) - 1) & ~(((size_t)2 << 20) - 1);
        uint8_t *w = aligned_alloc((size_t)2 << 20, w_total);
        if (w && o->huge) madvise(w, w_total, MADV_HUGEPAGE);
        int64_t max_tok = 512;
        float *x = aligned_alloc(64, sizeof(float) * (size_t)(max_tok * n_in));
        float *y = aligned_alloc(64, sizeof(float) * (size_t)(max_tok * n_out));
        rs_cpu_matmul_w mw = {t, w, n_out, y, n_out, lay};
        size_t ss = rs_cpu_matmul_scratch_size(&mw, 1, n_in, max_tok);
        void *scratch = ss ? malloc(ss) : NULL;
        if (!w || !x || !y || (ss && !scratch)) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        if (lay == RS_CPU_LAYOUT_X16) {
            uint8_t *g = malloc(gguf_bytes);
            if (!g) {
                fprintf(stderr, "out of memory\n");
                exit(1);
            }
            fill_weights(t, g, gguf_bytes);
            rs_cpu_pack_groups(t, g, n_out, n_in, w, 0,
                               (n_out + RS_CPU_PACK_ROWS - 1) / RS_CPU_PACK_ROWS);
            free(g);
        } else {
            fill_weights(t, w, w_bytes);
        }
        for (int c = 1; c < n_copies; c++) memcpy(w + (size_t)c * w_bytes, w, w_bytes);
        uint64_t s = 7;
        for (int64_t i = 0; i < max_tok * n_in; i++)
            x[i] = (float)(rng(&s) % 2001) / 1000.0f - 1.0f;
        double dt =
            time_matmul(env, t, lay, w, w_bytes, n_copies, n_out, n_in, 1, x, y, scratch, ss);
        double gbs = (double)gguf_bytes / dt / 1e9; /* GGUF bytes, as rusty bench counts */
        printf(" %6.1f GB/s %3.0f%% |", gbs, 100.0 * gbs / env->membw);
        fflush(stdout);
        if (si == 0)
            for (int k = 0; k < o->n_ntoks; k++) {
                int64_t nt = o->ntoks[k];
                double g =
                    time_matmul(env, t, lay, w, w_bytes, 1, n_out, n_in, nt, x, y, scratch, ss);
                printf(" %7.1f |", 2.0 * (double)n_out * (double)n_in * (double)nt / g / 1e9);
                fflush(stdout);
            }
        free(w);
        free(x);
        free(y);
        free(scratch);
    }
    printf("\n");
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_matmul [-t threads] [-l scalar|avx2|avx512|amx] [-T Q4_0,Q8_0,...] "
            "[-m membw_MiB] [-s seconds] [-n 64,512] [-H] [-G] [-P]\n");
    exit(2);
}

static void parse(int argc, char **argv, options *o) {
    rs_cpu_info ci;
    rs_cpu_detect(&ci);
    o->threads = ci.n_physical;
    o->level = rs_cpu_simd_level();
    o->types = NULL;
    o->membw_mib = (double)rs_membw_default_bytes() / 1048576.0;
    o->seconds = 0.5;
    o->ntoks[0] = 64;
    o->ntoks[1] = 512;
    o->n_ntoks = 2;
    int c;
    o->huge = 0;
    o->gguf = 0;
    o->hw_prefetch = 0;
    while ((c = getopt(argc, argv, "t:l:T:m:s:n:HGP")) != -1) {
        switch (c) {
        case 't':
            o->threads = atoi(optarg);
            break;
        case 'l':
            if (strcmp(optarg, "scalar") == 0)
                o->level = RS_SIMD_SCALAR;
            else if (strcmp(optarg, "avx2") == 0)
                o->level = RS_SIMD_AVX2;
            else if (strcmp(optarg, "avx512") == 0)
                o->level = RS_SIMD_AVX512;
            else if (strcmp(optarg, "amx") == 0)
                o->level = RS_SIMD_AMX;
            else
                usage();
            break;
        case 'T':
            o->types = optarg;
            break;
        case 'H':
            o->huge = 1;
            break;
        case 'G':
            o->gguf = 1;
            break;
        case 'P':
            o->hw_prefetch = 1;
            break;
        case 'm':
            o->membw_mib = atof(optarg);
            break;
        case 's':
            o->seconds = atof(optarg);
            break;
        case 'n': {
            o->n_ntoks = 0;
            for (char *p = strtok(optarg, ","); p && o->n_ntoks < 4; p = strtok(NULL, ","))
                o->ntoks[o->n_ntoks++] = atoi(p);
            break;
        }
        default:
            usage();
        }
    }
    if (o->threads < 1 || o->membw_mib < 1) usage();
}

int main(int argc, char **argv) {
    options o;
    parse(argc, argv, &o);
    if (o.level > rs_cpu_simd_level()) {
        fprintf(stderr, "SIMD level %s not available\n", rs_simd_level_name(o.level));
        return 1;
    }
    bench_env env = {NULL, o.level, 0, o.seconds, o.hw_prefetch};
    rs_error err = {0};
    if (rs_threadpool_create(&env.tp, o.threads, &err) != RS_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if (rs_membw_measure(env.tp, o.level, (size_t)(o.membw_mib * 1048576.0), 5, &env.membw, &err) !=
        RS_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("threads %d, SIMD %s, memory read bandwidth %.1f GB/s (%.0f MiB buffer, best of 5)\n\n",
           o.threads, rs_simd_level_name(o.level), env.membw, o.membw_mib);
    printf("| type   | gemv 4096x4096      | ");
    for (int k = 0; k < o.n_ntoks; k++) printf("gemm n=%-3d GFLOP/s | ", o.ntoks[k]);
    printf("gemv 11008x4096     |\n|--------|---------------------|");
    for (int k = 0; k < o.n_ntoks; k++) printf("-------------------|");
    printf("---------------------|\n");
    char buf[512];
    const char *list[64];
    int n_list = 0;
    if (o.types) {
        snprintf(buf, sizeof buf, "%s", o.types);
        for (char *p = strtok(buf, ","); p && n_list < 64; p = strtok(NULL, ","))
            list[n_list++] = p;
    } else {
        for (size_t i = 0; i < sizeof k_default_types / sizeof *k_default_types; i++)
            list[n_list++] = k_default_types[i];
    }
    for (int i = 0; i < n_list; i++) {
        rs_dtype t;
        if (!rs_dtype_from_name(list[i], &t) || !rs_cpu_matmul_supports(t)) {
            fprintf(stderr, "unsupported type %s\n", list[i]);
            continue;
        }
        bench_type(&env, t, &o);
    }
    rs_threadpool_free(env.tp);
    return 0;
}

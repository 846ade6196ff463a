/* cuda_bench.cu — the CUDA backend's kernel lab.
 *
 *   rusty_cuda_bench [ceil] [matvec] [gemm] [lt] [attn] [prefill] [ring] [pick]
 *                    [model[=F16,Q4_0,Q4_0:q8,...]] [prompt|decode]   (default: all)
 *
 * (pick: greedy_pick and sample_pick on random logits, and sample_pick's phase trace)
 *
 * (prefill: the causal prompt attention alone, LAB_ATTN_N tokens; attn runs it too)
 *
 * (a model type with ":q8" runs with a Q8_0 KV cache instead of F16, ":q4" with Q4_0; a preset
 * ending in _M, or any preset after "@" (@Q2_K), has the types `rusty quantize` gives each matrix)
 *
 * Ceilings first (device-to-device copy GB/s, cuBLAS BF16 GEMM TFLOP/s), then
 * each kernel against them: matvec GB/s per weight type at the Llama-2-7B
 * shapes, GEMM TFLOP/s at n = 512, decode attention GB/s at 4096 positions,
 * and the whole Llama-2-7B-shaped model (random weights made on the GPU)
 * driven through the op table exactly as src/model/forward.c drives it:
 * decode tok/s from a captured graph, prompt (512 tokens) tok/s, and a
 * per-op time breakdown. Weight bytes are rotated through more than the L2
 * holds so no figure measures the cache. Timing: CUDA events, warm-up first,
 * median of 5 batches. */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <functional>
#include <string>
#include <vector>

#include "backend/cuda/cuda_stream.cuh" /* the bulk-copy and mbarrier helpers the ring probe uses */

extern "C" {
#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_internal.h"
#include "convert/quantize.h"
#include "dtype/dtype.h"
}

static rs_backend *B;
static const rs_backend_ops *O;
static cudaStream_t S;
static double copy_gbps;
static bool prompt_only; /* lab argument prompt: the model bench skips decode */
static bool decode_only; /* lab argument decode: it skips the breakdowns and the prompt */

static void die(const char *what, const char *msg) {
    fprintf(stderr, "FATAL: %s: %s\n", what, msg ? msg : "");
    exit(1);
}
static void ck(cudaError_t e, const char *what) {
    if (e != cudaSuccess) die(what, cudaGetErrorString(e));
}
static void sync_or_die(const char *what) {
    rs_error e = {};
    if (O->sync(B, &e)) die(what, e.msg);
}

/* "a,b,c" as integers; {0} when s is NULL or empty. */
static std::vector<int> int_list(const char *s) {
    std::vector<int> v;
    for (const char *p = s; p && *p;) {
        v.push_back(atoi(p));
        p = strchr(p, ',');
        if (p) p++;
    }
    if (v.empty()) v.push_back(0);
    return v;
}

static void *dalloc(size_t n) {
    void *p = NULL;
    rs_error e = {};
    if (O->alloc(B, n, &p, &e)) die("alloc", e.msg);
    return p;
}

static float *drand(size_t n, float scale, uint64_t seed) {
    float *p = (float *)dalloc(n * 4);
    rs_cuda_fill_random_weights(B, p, RS_DTYPE_F32, n * 4, scale, seed);
    return p;
}

/* A weight made on the device: random GGUF blocks, loaded (repacked) like a file's. */
static rs_weight dev_weight(rs_dtype t, int64_t n_in, int64_t n_out, float scale, uint64_t seed) {
    size_t row = 0;
    if (!rs_dtype_row_size(t, n_in, &row)) die("row size", rs_dtype_name(t));
    rs_weight w = {};
    w.name = "bench";
    w.type = t;
    w.n_in = n_in;
    w.n_out = n_out;
    w.nbytes = row * (size_t)n_out;
    void *raw = NULL;
    ck(cudaMalloc(&raw, w.nbytes), "cudaMalloc raw weight");
    rs_cuda_fill_random_weights(B, raw, t, w.nbytes, scale, seed);
    rs_error e = {};
    if (rs_cuda_weight_load_device(B, &w, raw, &e)) die("weight_load_device", e.msg);
    cudaFree(raw);
    return w;
}

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

/* ms per call of f: 2 warm-up calls, then the median of 5 batches of reps. */
static double time_ms(const std::function<void()> &f, int reps) {
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    f();
    f();
    std::vector<double> v;
    for (int k = 0; k < 5; k++) {
        cudaEventRecord(a, S);
        for (int i = 0; i < reps; i++) f();
        cudaEventRecord(b, S);
        ck(cudaEventSynchronize(b), "timing");
        float ms = 0;
        cudaEventElapsedTime(&ms, a, b);
        v.push_back(ms / reps);
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    sync_or_die("timed work");
    return median(v);
}

/* Captures f into graph `key` and returns ms per replay. */
static double time_graph(int key, const std::function<void()> &f, int reps) {
    rs_error e = {};
    if (O->graph_begin(B, key, &e)) die("graph_begin", e.msg);
    f();
    if (O->graph_end(B, key, &e)) die("graph_end", e.msg);
    return time_ms([&] { O->graph_launch(B, key); }, reps);
}

static rs_cuda_tuning tuning(void) {
    rs_cuda_tuning t;
    rs_cuda_get_tuning(B, &t);
    return t;
}

static void set_tuning(int pdl, int fuse, int reuse) {
    rs_cuda_tuning t = tuning();
    t.pdl = pdl;
    t.fuse_q8 = fuse;
    t.reuse_q8 = reuse;
    rs_cuda_set_tuning(B, &t);
}

/* ---- ceilings ---------------------------------------------------------------------------- */

static void bench_ceilings(void) {
    rs_error e = {};
    if (O->bandwidth(B, &copy_gbps, &e)) die("bandwidth", e.msg);
    printf("## ceilings\n\ndevice-to-device copy (2 x 256 MiB, read + write): %.0f GB/s\n",
           copy_gbps);
    cublasHandle_t h;
    cublasCreate(&h);
    cublasSetStream(h, S);
    const int shapes[][3] = {
        {8192, 8192, 8192}, {4096, 512, 4096}, {11008, 512, 4096}, {4096, 512, 11008}};
    for (auto &s : shapes) {
        const int m = s[0], n = s[1], k = s[2];
        void *A = dalloc((size_t)m * k * 2), *Bm = dalloc((size_t)k * n * 2),
             *C = dalloc((size_t)m * n * 4);
        rs_cuda_fill_random_weights(B, A, RS_DTYPE_BF16, (size_t)m * k * 2, 1.0f, 1);
        rs_cuda_fill_random_weights(B, Bm, RS_DTYPE_BF16, (size_t)k * n * 2, 1.0f, 2);
        const float one = 1, zero = 0;
        double ms = time_ms(
            [&] {
                cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, A, CUDA_R_16BF, k, Bm,
                             CUDA_R_16BF, k, &zero, C, CUDA_R_32F, m, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT);
            },
            5);
        printf("cuBLAS BF16 GEMM m=%d n=%d k=%d: %.3f ms, %.0f TFLOP/s\n", m, n, k, ms,
               2.0 * m * n * k / ms / 1e9);
        O->release(B, A), O->release(B, Bm), O->release(B, C);
    }
    cublasDestroy(h);
    printf("\n");
}

/* ---- prompt GEMMs: cuBLAS's default against every cuBLASLt heuristic candidate
 * Weights F16 [m][k], activations F16 [n][k], output F32 [n][m] (beta 0 and 1),
 * as the prompt path calls them. */
static void bench_lt(void) {
    printf("## prompt GEMMs: cublasGemmEx default vs cuBLASLt candidates (F16 x F16 -> F32)\n\n");
    cublasHandle_t h;
    cublasCreate(&h);
    cublasSetStream(h, S);
    cublasLtHandle_t lt;
    cublasLtCreate(&lt);
    size_t ws_bytes = (size_t)64 << 20;
    void *ws = dalloc(ws_bytes);
    const int shapes[][3] = {{4096, 512, 4096},  {11008, 512, 4096}, {4096, 512, 11008},
                             {32000, 512, 4096}, {4096, 2048, 4096}, {11008, 2048, 4096}};
    for (auto &sh : shapes) {
        const int m = sh[0], n = sh[1], k = sh[2];
        void *A = dalloc((size_t)m * k * 2), *Bm = dalloc((size_t)k * n * 2),
             *C = dalloc((size_t)m * n * 4);
        rs_cuda_fill_random_weights(B, A, RS_DTYPE_F16, (size_t)m * k * 2, 1.0f, 1);
        rs_cuda_fill_random_weights(B, Bm, RS_DTYPE_F16, (size_t)k * n * 2, 1.0f, 2);
        const double fl = 2.0 * m * n * k / 1e9;
        for (int acc = 0; acc <= 1; acc++) {
            const float one = 1, beta = acc ? 1.0f : 0.0f;
            const double ms0 = time_ms(
                [&] {
                    cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, A, CUDA_R_16F, k, Bm,
                                 CUDA_R_16F, k, &beta, C, CUDA_R_32F, m, CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT);
                },
                5);
            cublasLtMatmulDesc_t op;
            cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
            cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
            cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
            cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
            cublasLtMatrixLayout_t la, lb, lc;
            cublasLtMatrixLayoutCreate(&la, CUDA_R_16F, k, m, k);
            cublasLtMatrixLayoutCreate(&lb, CUDA_R_16F, k, n, k);
            cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, m, n, m);
            cublasLtMatmulPreference_t pref;
            cublasLtMatmulPreferenceCreate(&pref);
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                 &ws_bytes, sizeof ws_bytes);
            cublasLtMatmulHeuristicResult_t res[32];
            int got = 0;
            cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 32, res, &got);
            double best = 1e30, first = 0;
            int best_i = -1;
            for (int i = 0; i < got; i++) {
                if (res[i].state != CUBLAS_STATUS_SUCCESS) continue;
                const double ms = time_ms(
                    [&] {
                        cublasLtMatmul(lt, op, &one, A, la, Bm, lb, &beta, C, lc, C, lc,
                                       &res[i].algo, ws, ws_bytes, S);
                    },
                    5);
                if (i == 0) first = ms;
                if (ms < best) best = ms, best_i = i;
            }
            printf("m=%d n=%d k=%d beta=%d: GemmEx %.1f us (%.0f TFLOP/s); Lt heuristic #0 %.1f us "
                   "(%.0f); best of %d: #%d %.1f us (%.0f TFLOP/s)\n",
                   m, n, k, acc, ms0 * 1e3, fl / ms0, first * 1e3, fl / first, got, best_i,
                   best * 1e3, fl / best);
            fflush(stdout);
            cublasLtMatmulPreferenceDestroy(pref);
            cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb);
            cublasLtMatrixLayoutDestroy(lc);
            cublasLtMatmulDescDestroy(op);
        }
        O->release(B, A), O->release(B, Bm), O->release(B, C);
    }
    O->release(B, ws);
    cublasLtDestroy(lt);
    /* products sharing one input (q/k/v, gate/up): one batched call (what the
     * prompt path makes), one call each, or one GEMM over the rows laid end to end */
    const int groups[][3] = {{3, 4096, 4096}, {2, 11008, 4096}};
    for (auto &gr : groups) {
        const int cnt = gr[0], m = gr[1], k = gr[2], n = 512;
        void *A = dalloc((size_t)cnt * m * k * 2), *Bm = dalloc((size_t)k * n * 2),
             *C = dalloc((size_t)cnt * m * n * 4);
        rs_cuda_fill_random_weights(B, A, RS_DTYPE_F16, (size_t)cnt * m * k * 2, 1.0f, 1);
        rs_cuda_fill_random_weights(B, Bm, RS_DTYPE_F16, (size_t)k * n * 2, 1.0f, 2);
        const void *hp[3 * 8];
        for (int j = 0; j < cnt; j++) {
            hp[j] = (const char *)A + (size_t)j * m * k * 2;
            hp[8 + j] = Bm;
            hp[16 + j] = (const char *)C + (size_t)j * m * n * 4;
        }
        void **dp = (void **)dalloc(sizeof hp);
        cudaMemcpy(dp, hp, sizeof hp, cudaMemcpyHostToDevice);
        const float one = 1, zero = 0;
        const double fl = 2.0 * cnt * m * n * k / 1e9;
        const double mb = time_ms(
            [&] {
                cublasGemmBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one,
                                    (const void *const *)dp, CUDA_R_16F, k,
                                    (const void *const *)(dp + 8), CUDA_R_16F, k, &zero, dp + 16,
                                    CUDA_R_32F, m, cnt, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
            },
            5);
        const double ms = time_ms(
            [&] {
                for (int j = 0; j < cnt; j++)
                    cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, hp[j], CUDA_R_16F, k,
                                 Bm, CUDA_R_16F, k, &zero, (void *)hp[16 + j], CUDA_R_32F, m,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
            },
            5);
        const double m1 = time_ms(
            [&] {
                cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, cnt * m, n, k, &one, A, CUDA_R_16F, k, Bm,
                             CUDA_R_16F, k, &zero, C, CUDA_R_32F, cnt * m, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT);
            },
            5);
        printf("%d x (m=%d n=%d k=%d): batched %.1f us (%.0f TFLOP/s); separate %.1f us (%.0f); "
               "one GEMM of m=%d %.1f us (%.0f)\n",
               cnt, m, n, k, mb * 1e3, fl / mb, ms * 1e3, fl / ms, cnt * m, m1 * 1e3, fl / m1);
        O->release(B, A), O->release(B, Bm), O->release(B, C), O->release(B, dp);
    }
    cublasDestroy(h);
    printf("\n");
}

/* ---- matvec -----------------------------------------------------------------------------------
 */

static const rs_dtype ALL_TYPES[] = {RS_DTYPE_F16,    RS_DTYPE_BF16,   RS_DTYPE_F32,  RS_DTYPE_Q8_0,
                                     RS_DTYPE_Q4_0,   RS_DTYPE_Q4_1,   RS_DTYPE_Q5_0, RS_DTYPE_Q5_1,
                                     RS_DTYPE_IQ4_NL, RS_DTYPE_IQ4_XS, RS_DTYPE_Q4_K, RS_DTYPE_Q5_K,
                                     RS_DTYPE_Q6_K};
static const int64_t SHAPES[4][2] = {
    {4096, 4096}, {11008, 4096}, {4096, 11008}, {32000, 4096}}; /* n_out, n_in */

static void bench_matvec(void) {
    printf("## matvec, batch 1 (weights rotated over >= 512 MB; int8 activations quantized once "
           "per graph)\n\n");
    printf("| shape (out x in) | type | MB | us | GB/s | of copy |\n|---|---|---|---|---|---|\n");
    set_tuning(1, 1, 1);
    for (auto &sh : SHAPES) {
        const int64_t n_out = sh[0], n_in = sh[1];
        float *x = drand((size_t)n_in, 1.0f, 7), *y = (float *)dalloc((size_t)n_out * 4);
        for (rs_dtype t : ALL_TYPES) {
            size_t row = 0;
            rs_dtype_row_size(t, n_in, &row);
            const size_t bytes = row * (size_t)n_out;
            const int copies =
                (int)std::min<size_t>(64, std::max<size_t>(2, ((size_t)512 << 20) / bytes + 1));
            std::vector<rs_weight> ws;
            for (int i = 0; i < copies; i++)
                ws.push_back(dev_weight(t, n_in, n_out, 0.02f, 100 + i));
            for (int rows = 1; rows <= 2; rows++) {
                rs_cuda_tuning tu = tuning();
                tu.mv_rows = rows;
                rs_cuda_set_tuning(B, &tu);
                const double ms = time_graph(
                                      10,
                                      [&] {
                                          for (auto &w : ws) {
                                              rs_matmul mm = {&w, NULL, y};
                                              O->matmul(B, &mm, 1, x, 1);
                                          }
                                      },
                                      5) /
                                  copies;
                const double gbps = bytes / (ms * 1e-3) / 1e9;
                printf("| %lldx%lld | %s %s | %.1f | %.2f | %.0f | %.0f%% |\n", (long long)n_out,
                       (long long)n_in, rs_dtype_name(t), rows == 2 ? "rows=2" : "rows=1",
                       bytes / 1e6, ms * 1e3, gbps, 100 * gbps / copy_gbps);
                fflush(stdout);
                tu.mv_rows = 0;
                rs_cuda_set_tuning(B, &tu);
            }
            for (auto &w : ws) O->weight_unload(B, &w);
        }
        O->release(B, x), O->release(B, y);
    }
    set_tuning(1, 1, 0);
    printf("\n");
}

/* ---- GEMM
 * ---------------------------------------------------------------------------------------- */

static void bench_gemm(void) {
    const int n = 512;
    static const rs_dtype types[] = {RS_DTYPE_F16,  RS_DTYPE_BF16, RS_DTYPE_Q8_0,  RS_DTYPE_Q4_0,
                                     RS_DTYPE_Q4_K, RS_DTYPE_Q6_K, RS_DTYPE_IQ4_XS};
    printf("## prefill GEMM, n = %d tokens (quantized: dequantize to F16 + cuBLAS)\n\n", n);
    printf("| shape (out x in) | type | ms | TFLOP/s |\n|---|---|---|---|\n");
    for (auto &sh : SHAPES) {
        const int64_t n_out = sh[0], n_in = sh[1];
        float *x = drand((size_t)n * n_in, 1.0f, 9), *y = (float *)dalloc((size_t)n * n_out * 4);
        for (rs_dtype t : types) {
            rs_weight w = dev_weight(t, n_in, n_out, 0.02f, 5);
            rs_matmul mm = {&w, NULL, y};
            for (int chunk : std::vector<int>{0, 8 << 20, 2 << 20}) {
                if (chunk && !rs_dtype_get(t)->is_quantized) continue;
                rs_cuda_tuning tu = tuning();
                tu.gemm_chunk = chunk;
                rs_cuda_set_tuning(B, &tu);
                const double ms = time_ms([&] { O->matmul(B, &mm, 1, x, n); }, 3);
                printf("| %lldx%lld | %s slab=%dMi | %.3f | %.0f |\n", (long long)n_out,
                       (long long)n_in, rs_dtype_name(t), chunk ? chunk >> 20 : 64, ms,
                       2.0 * n * n_in * n_out / ms / 1e9);
                fflush(stdout);
                tu.gemm_chunk = 0;
                rs_cuda_set_tuning(B, &tu);
            }
            O->weight_unload(B, &w);
        }
        O->release(B, x), O->release(B, y);
    }
    printf("\n");
}

/* ---- attention
 * --------------------------------------------------------------------------------------- */

/* Bytes of one cached head row (values and scales). */
static double kv_row_bytes(rs_kv_type t, int hd) {
    return t == RS_KV_Q8_0 ? hd + hd / 32 * 2 : t == RS_KV_Q4_0 ? hd / 2 + hd / 32 * 2 : 2.0 * hd;
}

static void bench_attention(void) {
    printf("## attention\n\n| case | us | GB/s or TFLOP/s |\n|---|---|---|\n");
    struct {
        int n_head, n_kv, ctx;
    } dec[] = {{32, 32, 4096}, {32, 8, 4096}, {32, 4, 4096}, {32, 32, 512},
               {32, 32, 101},  {32, 8, 101},  {32, 8, 16384}};
    const int hd = 128, layers = 8;
    for (rs_kv_type kvt : {RS_KV_F16, RS_KV_Q8_0, RS_KV_Q4_0})
        for (auto &c : dec) {
            const char *kv_name = kvt == RS_KV_F16 ? "F16" : kvt == RS_KV_Q8_0 ? "Q8_0" : "Q4_0";
            rs_kv_desc d = {layers, c.ctx, c.n_kv, hd, kvt};
            rs_kv *kv = NULL;
            rs_error e = {};
            if (O->kv_create(B, &d, &kv, &e)) die("kv_create", e.msg);
            rs_cuda_kv_fill_random(B, kv, 3);
            float *q = drand((size_t)c.n_head * hd, 1.0f, 4),
                  *out = (float *)dalloc((size_t)c.n_head * hd * 4);
            int32_t p = c.ctx - 1, *dp = (int32_t *)dalloc(4);
            O->upload(B, dp, &p, 4, &e);
            rs_attn at = {c.n_head, c.n_kv, hd, 1.0f / sqrtf((float)hd), 0};
            /* chunk, or -(query heads per block), or 1: the context bounded to 128 positions
             * (rs_attn.ctx_max), which runs unsplit */
            for (int var : {0, 32, 64, 128, 256, 512, 1024, -1, -2, -4, -8, 1}) {
                const int chunk = var > 1 ? var : 0, gb = var < 0 ? -var : 0;
                if (kvt == RS_KV_Q8_0 && chunk) continue; /* Q4_0: measured (session 34) */
                if (var == 1 && c.ctx > 128) continue;
                at.ctx_max = var == 1 ? 128 : 0;
                rs_cuda_tuning tu;
                rs_cuda_get_tuning(B, &tu);
                tu.attn_chunk = chunk;
                tu.attn_gb = gb;
                rs_cuda_set_tuning(B, &tu);
                const double ms = time_graph(
                                      11,
                                      [&] {
                                          for (int l = 0; l < layers; l++)
                                              O->attention(B, q, kv, l, dp, 1, &at, out);
                                      },
                                      5) /
                                  layers;
                const double bytes = 2.0 * c.n_kv * kv_row_bytes(kvt, hd) * c.ctx;
                printf("| decode %s h=%d/%d hd=%d ctx=%d chunk=%s heads/block=%s%s | %.1f | %.0f "
                       "GB/s (%.0f%% of copy) |\n",
                       kv_name, c.n_head, c.n_kv, hd, c.ctx,
                       chunk ? std::to_string(chunk).c_str() : "auto",
                       gb ? std::to_string(gb).c_str() : "auto", at.ctx_max ? " ctx<=128" : "",
                       ms * 1e3, bytes / (ms * 1e-3) / 1e9,
                       100 * bytes / (ms * 1e-3) / 1e9 / copy_gbps);
                tu.attn_chunk = tu.attn_gb = 0;
                rs_cuda_set_tuning(B, &tu);
            }
            O->release(B, q), O->release(B, out), O->release(B, dp);
            O->kv_destroy(B, kv);
        }
}

/* Causal prefill attention over n tokens at positions 0..n-1 (LAB_ATTN_N, default 512),
 * 32 heads of 128: SIMT, tensor cores in plain order, tensor cores with heavy and light
 * tiles paired. Graph-timed over 8 calls, so host launch work stays out of the figure. */
static void bench_attn_prefill(void) {
    const int n_head = 32, hd = 128, calls = 8;
    const std::vector<int> ns = int_list(getenv("LAB_ATTN_N") ? getenv("LAB_ATTN_N") : "512");
    int n_max = 0;
    for (int n : ns) n_max = std::max(n_max, n);
    rs_kv_desc d = {1, std::max(n_max, 4096), n_head, hd, RS_KV_F16};
    rs_kv *kv = NULL;
    rs_error e = {};
    if (O->kv_create(B, &d, &kv, &e)) die("kv_create", e.msg);
    rs_cuda_kv_fill_random(B, kv, 3);
    float *q = drand((size_t)n_max * n_head * hd, 1.0f, 4),
          *out = (float *)dalloc((size_t)n_max * n_head * hd * 4);
    std::vector<int32_t> pos(n_max);
    for (int i = 0; i < n_max; i++) pos[i] = i;
    int32_t *dp = (int32_t *)dalloc((size_t)n_max * 4);
    O->upload(B, dp, pos.data(), (size_t)n_max * 4, &e);
    rs_attn at = {n_head, n_head, hd, 1.0f / sqrtf((float)hd)};
    for (int n : ns)
        for (int v = 0; v <= 2; v++) {
            if (v == 0 && n > 1024) continue; /* SIMT: slow and beside the point */
            rs_cuda_tuning tu = tuning();
            tu.attn_mma = v > 0;
            tu.attn_zig = v == 2;
            rs_cuda_set_tuning(B, &tu);
            const double ms = time_graph(
                                  12,
                                  [&] {
                                      for (int i = 0; i < calls; i++)
                                          O->attention(B, q, kv, 0, dp, n, &at, out);
                                  },
                                  3) /
                              calls;
            const double flops = 4.0 * hd * n_head * (double)n * (n + 1) / 2;
            printf("| prefill n=%d h=%d hd=%d causal %s | %.1f | %.1f TFLOP/s |\n", n, n_head, hd,
                   v == 0   ? "SIMT"
                   : v == 1 ? "tensor cores"
                            : "tensor cores, tiles paired",
                   ms * 1e3, flops / ms / 1e9);
            fflush(stdout);
            tu.attn_mma = tu.attn_zig = 1;
            rs_cuda_set_tuning(B, &tu);
        }
    printf("\n");
    O->release(B, q), O->release(B, out), O->release(B, dp);
    O->kv_destroy(B, kv);
}

/* ---- the Llama-2-7B-shaped model
 * ------------------------------------------------------------------------- */

enum {
    L7 = 32,
    DIM = 4096,
    NH = 32,
    NKV = 32,
    HD = 128,
    FF = 11008,
    VOCAB = 32000,
    CTX = 4096,
    NB = 512
};

struct layer7 {
    rs_weight attn_norm, wq, wk, wv, wo, ffn_norm, gate, up, down;
};

struct model7 {
    layer7 l[L7];
    rs_weight out_norm, output;
    float *x, *xn, *q, *k, *v, *att, *tmp, *g, *u, *logits, *inv;
    int32_t *pos;
    rs_kv *kv;
    rs_rope rope;
    rs_attn at;
    size_t weight_bytes;
};

/* op categories for the breakdown (the ops of src/model/forward.c) */
enum { C_NORM, C_QKV, C_ATTN, C_WO, C_FFN_UP, C_DOWN, C_HEAD, C_N };
static const char *CAT[C_N] = {"norm (layer 0)", "qkv+rope+store", "attention", "wo+add+norm",
                               "gate+up+swiglu", "down+add+norm",  "head"};
static cudaEvent_t ev[2];
static double cat_ms[C_N];
static bool breakdown;
static unsigned only_cats; /* not 0: issue only the ops of these categories (bit mask) */

static void mark(int cat, const std::function<void()> &f) {
    if (only_cats && !(only_cats >> cat & 1)) return;
    if (!breakdown) {
        f();
        return;
    }
    cudaEventRecord(ev[0], S);
    f();
    cudaEventRecord(ev[1], S);
    cudaEventSynchronize(ev[1]);
    float ms = 0;
    cudaEventElapsedTime(&ms, ev[0], ev[1]);
    cat_ms[cat] += ms;
}

/* The layer loop and head of src/model/forward.c, verbatim in op order. In a
 * category-alone graph (only_cats) the residual ops run without their norm:
 * with no consumer in the graph, a pending norm would be settled by an extra
 * kernel that the real step never runs. */
static void prepare7(model7 &m, int i, int n) {
    if (i >= L7) return;
    layer7 &L = m.l[i];
    const rs_weight *w[7] = {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down};
    O->prepare(B, w, 7, n);
}

static void forward7(model7 &m, int n) {
    bool normed = false;
    const bool alone = only_cats != 0;
    prepare7(m, 0, n);
    for (int i = 0; i < L7; i++) {
        layer7 &L = m.l[i];
        prepare7(m, i + 1, n);
        mark(C_NORM, [&] {
            if (!normed) O->rmsnorm(B, m.x, &L.attn_norm, 1e-5f, n, m.xn);
        });
        rs_matmul qkv[3] = {{&L.wq, NULL, m.q}, {&L.wk, NULL, m.k}, {&L.wv, NULL, m.v}};
        mark(C_QKV, [&] { O->matmul_rope_store(B, qkv, m.xn, n, m.pos, &m.rope, &m.at, m.kv, i); });
        mark(C_ATTN, [&] { O->attention(B, m.q, m.kv, i, m.pos, n, &m.at, m.att); });
        mark(C_WO, [&] {
            O->matmul_residual(B, &L.wo, m.att, n, m.x, alone ? NULL : &L.ffn_norm, 1e-5f, m.xn);
        });
        mark(C_FFN_UP, [&] { O->matmul_swiglu(B, &L.gate, &L.up, m.xn, n, m.g, m.u); });
        const rs_weight *next = i + 1 < L7 ? &m.l[i + 1].attn_norm : &m.out_norm;
        mark(C_DOWN, [&] {
            O->matmul_residual(B, &L.down, m.g, n, m.x, alone ? NULL : next, 1e-5f, m.xn);
        });
        normed = true;
    }
    mark(C_HEAD, [&] {
        rs_matmul head = {&m.output, NULL, m.logits};
        O->matmul(B, &head, 1, m.xn + (size_t)(n - 1) * DIM, 1);
    });
}

/* Replays graph `key` once with its trace buffer (bytes long) cleared, and dumps the
 * stamps to prefix.N.bin, N counting the dumps. */
static void traced_replay(int key, unsigned long long *trace, size_t bytes, const char *prefix,
                          int *n) {
    ck(cudaMemset(trace, 0, bytes), "trace clear");
    O->graph_launch(B, key);
    sync_or_die("traced replay");
    std::vector<unsigned long long> h(bytes / 8);
    ck(cudaMemcpy(h.data(), trace, bytes, cudaMemcpyDeviceToHost), "trace");
    char path[512];
    snprintf(path, sizeof path, "%s.%d.bin", prefix, (*n)++);
    FILE *f = fopen(path, "wb");
    if (f) fwrite(h.data(), 8, h.size(), f), fclose(f);
    printf("  trace: %s\n", path);
}

/* The type `rusty quantize` (preset ft) writes a tensor of the 7B shape in. */
static rs_dtype preset_type(rs_ftype ft, const char *name, int64_t n_in, int64_t n_out) {
    rs_tensor_info ti = {};
    ti.name = name;
    ti.type = RS_DTYPE_F32;
    ti.n_dims = 2;
    ti.ne[0] = n_in;
    ti.ne[1] = n_out;
    ti.ne[2] = ti.ne[3] = 1;
    rs_quantize_params qp = {};
    qp.ftype = ft;
    return rs_quantize_target_type(&ti, &qp, L7, NH / NKV);
}

/* Weights of type t, or with mix, of preset ft as `rusty quantize` writes them
 * (Q4_K_M puts attn_v and ffn_down of half the layers in Q6_K, the head in Q6_K). */
static void model_create(model7 &m, rs_dtype t, rs_ftype ft, bool mix, rs_kv_type kvt) {
    memset(&m, 0, sizeof m);
    uint64_t seed = 1000;
    for (int i = 0; i < L7; i++) {
        layer7 &L = m.l[i];
        /* layer i's matrix `what` (n_in x n_out) */
        auto weight = [&](const char *what, int64_t n_in, int64_t n_out) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", i, what);
            return dev_weight(mix ? preset_type(ft, name, n_in, n_out) : t, n_in, n_out, 0.02f,
                              seed++);
        };
        L.attn_norm = dev_weight(RS_DTYPE_F32, DIM, 1, 1.0f, seed++);
        L.ffn_norm = dev_weight(RS_DTYPE_F32, DIM, 1, 1.0f, seed++);
        L.wq = weight("attn_q", DIM, NH * HD);
        L.wk = weight("attn_k", DIM, NKV * HD);
        L.wv = weight("attn_v", DIM, NKV * HD);
        L.wo = weight("attn_output", NH * HD, DIM);
        L.gate = weight("ffn_gate", DIM, FF);
        L.up = weight("ffn_up", DIM, FF);
        L.down = weight("ffn_down", FF, DIM);
        m.weight_bytes += L.wq.nbytes + L.wk.nbytes + L.wv.nbytes + L.wo.nbytes + L.gate.nbytes +
                          L.up.nbytes + L.down.nbytes;
    }
    m.out_norm = dev_weight(RS_DTYPE_F32, DIM, 1, 1.0f, seed++);
    m.output = dev_weight(mix ? preset_type(ft, "output.weight", DIM, VOCAB) : t, DIM, VOCAB, 0.02f,
                          seed++);
    m.weight_bytes += m.output.nbytes;
    m.x = drand((size_t)NB * DIM, 1.0f, 1);
    m.xn = (float *)dalloc((size_t)NB * DIM * 4);
    m.tmp = (float *)dalloc((size_t)NB * DIM * 4);
    m.q = (float *)dalloc((size_t)NB * NH * HD * 4);
    m.att = (float *)dalloc((size_t)NB * NH * HD * 4);
    m.k = (float *)dalloc((size_t)NB * NKV * HD * 4);
    m.v = (float *)dalloc((size_t)NB * NKV * HD * 4);
    m.g = (float *)dalloc((size_t)NB * FF * 4);
    m.u = (float *)dalloc((size_t)NB * FF * 4);
    m.logits = (float *)dalloc((size_t)VOCAB * 4);
    m.pos = (int32_t *)dalloc(NB * 4);
    std::vector<float> inv(HD / 2);
    for (int i = 0; i < HD / 2; i++) inv[i] = (float)pow(10000.0, -2.0 * i / HD);
    m.inv = (float *)dalloc(HD / 2 * 4);
    rs_error e = {};
    O->upload(B, m.inv, inv.data(), HD / 2 * 4, &e);
    m.rope = rs_rope{false, HD, m.inv, 1.0f};
    /* LAB_CTX_MAX: the decode graph's bound on the context (rs_attn.ctx_max), as the
     * forward pass's graph for that band has it; time only contexts within it */
    const char *cm = getenv("LAB_CTX_MAX");
    m.at = rs_attn{NH, NKV, HD, 1.0f / sqrtf((float)HD), cm ? atoi(cm) : 0};
    rs_kv_desc d = {L7, CTX, NKV, HD, kvt};
    if (O->kv_create(B, &d, &m.kv, &e)) die("kv_create", e.msg);
    rs_cuda_kv_fill_random(B, m.kv, 77);
    sync_or_die("model setup");
}

static void model_free(model7 &m) {
    for (int i = 0; i < L7; i++) {
        rs_weight *ws[] = {&m.l[i].attn_norm, &m.l[i].wq,   &m.l[i].wk, &m.l[i].wv,  &m.l[i].wo,
                           &m.l[i].ffn_norm,  &m.l[i].gate, &m.l[i].up, &m.l[i].down};
        for (auto *w : ws) O->weight_unload(B, w);
    }
    O->weight_unload(B, &m.out_norm);
    O->weight_unload(B, &m.output);
    float *bufs[] = {m.x, m.xn, m.q, m.k, m.v, m.att, m.tmp, m.g, m.u, m.logits, m.inv};
    for (auto *p : bufs) O->release(B, p);
    O->release(B, m.pos);
    O->kv_destroy(B, m.kv);
}

static void set_pos(model7 &m, int first, int n) {
    std::vector<int32_t> p(n);
    for (int i = 0; i < n; i++) p[i] = first + i;
    rs_error e = {};
    O->upload(B, m.pos, p.data(), (size_t)n * 4, &e);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* LAB_LOOP: what one decode step costs around the graph at ctx 101 — GPU time of
 * back-to-back replays, a replay plus a sync per token (with the host's time inside
 * the launch), and the CLI's step two ways: position and token id uploaded from
 * page-locked memory, replay, logits downloaded into it (before this was one graph);
 * and the same copies recorded into the graph (the forward pass's step since). */
static void loop_costs(model7 &m, int key) {
    rs_error e = {};
    set_pos(m, 100, 1);
    int32_t *hio = NULL, *did = (int32_t *)dalloc(4);
    float *hlog = NULL;
    ck(cudaMallocHost((void **)&hio, 8), "pinned");
    ck(cudaMallocHost((void **)&hlog, VOCAB * 4), "pinned");
    hio[0] = 100, hio[1] = 1;
    const int toks = 64;
    const double gpu = time_ms([&] { O->graph_launch(B, key); }, toks);
    double launch = 0, t0 = now_s();
    for (int i = 0; i < toks; i++) {
        const double a = now_s();
        O->graph_launch(B, key);
        launch += now_s() - a;
        sync_or_die("replay");
    }
    const double sync = (now_s() - t0) / toks;
    t0 = now_s();
    for (int i = 0; i < toks; i++) {
        O->upload(B, m.pos, hio, 4, &e);
        O->upload(B, did, hio + 1, 4, &e);
        O->graph_launch(B, key);
        if (O->download(B, hlog, m.logits, VOCAB * 4, &e)) die("download", e.msg);
    }
    const double apart = (now_s() - t0) / toks;
    const int inside_key = key + 1;
    if (O->graph_begin(B, inside_key, &e)) die("graph_begin", e.msg);
    O->upload(B, m.pos, hio, 4, &e);
    O->upload(B, did, hio + 1, 4, &e);
    forward7(m, 1);
    if (O->download(B, hlog, m.logits, VOCAB * 4, &e)) die("download", e.msg);
    if (O->graph_end(B, inside_key, &e)) die("graph_end", e.msg);
    t0 = now_s();
    for (int i = 0; i < toks; i++) {
        O->graph_launch(B, inside_key);
        sync_or_die("replay");
    }
    const double inside = (now_s() - t0) / toks;
    printf("  step at ctx 101, per token: GPU time %.1f us; replay + sync %.1f us (launch call "
           "%.1f us); the CLI's step (pos and id up, replay, logits down) with the copies apart "
           "%.1f us, inside the graph %.1f us\n",
           gpu * 1e3, sync * 1e6, launch / toks * 1e6, apart * 1e6, inside * 1e6);
    cudaFreeHost(hio);
    cudaFreeHost(hlog);
    O->release(B, did);
}

static void print_breakdown(const char *what, int reps) {
    double total = 0;
    for (int c = 0; c < C_N; c++) total += cat_ms[c];
    printf("  breakdown (%s, separate launches with events, per token-step):", what);
    for (int c = 0; c < C_N; c++) printf(" %s %.3f ms;", CAT[c], cat_ms[c] / reps);
    printf(" total %.3f ms\n", total / reps);
}

static void bench_model(rs_dtype t, rs_ftype ft, bool mix, rs_kv_type kvt) {
    model7 m;
    model_create(m, t, ft, mix, kvt);
    /* bytes per cached position: K and V of every layer and kv head */
    const double kv_pos = 2.0 * L7 * NKV * kv_row_bytes(kvt, HD);
    printf("### %s: %.2f GB of weights (32 layers + output), KV %s %.0f KB/position\n",
           mix ? rs_ftype_name(ft) : rs_dtype_name(t), m.weight_bytes / 1e9,
           kvt == RS_KV_Q8_0   ? "Q8_0"
           : kvt == RS_KV_Q4_0 ? "Q4_0"
                               : "F16",
           kv_pos / 1e3);
    std::vector<float> logits(VOCAB);
    float *hx = (float *)malloc(DIM * 4);
    for (int i = 0; i < DIM; i++) hx[i] = 0.01f * (float)((i * 7919) % 201 - 100);
    rs_error e = {};
    /* (pdl, fused decode ops, fused split over the inputs: 0 automatic, 1 off,
     * weights streamed through shared memory: 0 off, else the stages in flight, 9 automatic,
     * one-token fused ops as one decode-chain launch: 0 off, 1 on, timing only: 2 phases
     * not waiting for each other, 3 nor computing, 4 the bare weight stream, 5 as 2 but
     * no weights streamed, 6 as 2 and the launch not waiting for the kernel before it) */
    const int variants[][5] = {{1, 1, 0, 0, 0}, {1, 1, 0, 0, 1}, {1, 1, 0, 0, 2}, {1, 1, 0, 0, 3},
                               {1, 1, 0, 0, 4}, {1, 1, 0, 9, 0}, {1, 1, 1, 0, 0}, {1, 0, 0, 0, 0},
                               {0, 1, 0, 0, 0}, {1, 1, 0, 0, 5}, {1, 1, 0, 0, 6}};
    /* LAB_VARIANTS: indices of the variants to run (default all); the chain's
     * variants run once per combination of LAB_CHAIN_RING (ring KiB, 0 automatic),
     * LAB_CHAIN_WARPS (consumer warps, 0 automatic), LAB_CHAIN_DEAL (0 whole
     * chain, 1 per phase), LAB_CHAIN_HANDOFF (0 counters, 1 flagged words; unset:
     * the backend's defaults) and LAB_CHAIN_STAGE (KiB per stage, 0 automatic), each a
     * comma list */
    const char *only = getenv("LAB_VARIANTS");
    const std::vector<int> sel = int_list(only);
    const std::vector<int> rings = int_list(getenv("LAB_CHAIN_RING")),
                           warps = int_list(getenv("LAB_CHAIN_WARPS")),
                           deals = getenv("LAB_CHAIN_DEAL") ? int_list(getenv("LAB_CHAIN_DEAL"))
                                                            : std::vector<int>{tuning().chain_deal},
                           hands = getenv("LAB_CHAIN_HANDOFF")
                                       ? int_list(getenv("LAB_CHAIN_HANDOFF"))
                                       : std::vector<int>{tuning().chain_handoff};
    const std::vector<int> stages = int_list(getenv("LAB_CHAIN_STAGE"));
    std::vector<std::array<int, 10>> runs; /* a variant, its chain ring, warps, deal, hand-off,
                                              stage */
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        if (only && *only && std::find(sel.begin(), sel.end(), (int)v) == sel.end()) continue;
        const int *vr = variants[v];
        const std::vector<int> none = {0};
        for (int r : vr[4] ? rings : none)
            for (int w : vr[4] ? warps : none)
                for (int d : vr[4] ? deals : none)
                    for (int h : vr[4] ? hands : none)
                        for (int st : vr[4] ? stages : none)
                            runs.push_back({vr[0], vr[1], vr[2], vr[3], vr[4], r, w, d, h, st});
    }
    for (auto &vr : runs) {
        if (prompt_only) break;
        const int pdl = vr[0], fuse = vr[1], split = vr[2], stream = vr[3], chain = vr[4];
        if (stream && t != RS_DTYPE_Q4_0 && t != RS_DTYPE_Q8_0) continue;
        if (chain && t != RS_DTYPE_Q4_0 && t != RS_DTYPE_Q8_0 && t != RS_DTYPE_Q4_K) continue;
        rs_cuda_tuning tu = tuning();
        tu.pdl = pdl;
        tu.fuse = fuse;
        tu.fz_split = split;
        tu.stream = stream != 0;
        tu.stream_depth = stream == 9 ? 0 : stream;
        tu.chain = chain;
        tu.chain_q8 = tu.chain_q4k = chain != 0;
        if (getenv("LAB_CHAIN_COOP")) tu.chain_coop = atoi(getenv("LAB_CHAIN_COOP"));
        /* LAB_CHAIN_MIN: the fewest ops a chain launch takes (0 automatic) */
        if (getenv("LAB_CHAIN_MIN")) tu.chain_min = atoi(getenv("LAB_CHAIN_MIN"));
        /* LAB_FZ_ROLL: one-token fused kernels walk the groups with a ring of loads (1) */
        if (getenv("LAB_FZ_ROLL")) tu.fz_roll = atoi(getenv("LAB_FZ_ROLL"));
        /* LAB_ROLL_GRID: blocks of those kernels (0 = one per SM) */
        if (getenv("LAB_ROLL_GRID")) tu.roll_grid = atoi(getenv("LAB_ROLL_GRID"));
        /* LAB_ROLL_FIT: their grid shrunk to what their groups need (1) */
        if (getenv("LAB_ROLL_FIT")) tu.roll_fit = atoi(getenv("LAB_ROLL_FIT"));
        /* LAB_ATTN_PACK: short-context attention blocks, one per head (0) or per slice (1) */
        if (getenv("LAB_ATTN_PACK")) tu.attn_pack = atoi(getenv("LAB_ATTN_PACK"));
        /* LAB_ATTN_CHUNK: positions per decode-attention split (0 automatic) */
        if (getenv("LAB_ATTN_CHUNK")) tu.attn_chunk = atoi(getenv("LAB_ATTN_CHUNK"));
        tu.chain_ring = vr[5];
        tu.chain_warps = vr[6];
        tu.chain_deal = vr[7];
        tu.chain_handoff = vr[8];
        tu.chain_stage = vr[9];
        /* LAB_CHAIN_TRACE=prefix: chain launches stamp their phases, dumped after the
         * ctx-101 timing to prefix.N.bin (N counts the traced variants) */
        static unsigned long long *trace;
        static int n_traced;
        const char *tp = getenv("LAB_CHAIN_TRACE");
        const size_t trace_bytes =
            sizeof(unsigned long long) * RS_CUDA_CHAIN_TRACE_LAUNCHES * RS_CUDA_CHAIN_TRACE_WORDS;
        if (tp && chain && !trace) trace = (unsigned long long *)dalloc(trace_bytes);
        tu.chain_trace = tp && chain ? trace : NULL;
        /* LAB_ROLL_TRACE=prefix: the same for fr_kernel launches (variants without the
         * chain): prefix.N.bin, [launch][block][8 words] (cuda_internal.h) */
        static unsigned long long *rtrace;
        static int n_rtraced;
        const char *rp = getenv("LAB_ROLL_TRACE");
        const size_t rtrace_bytes =
            sizeof(unsigned long long) * RS_CUDA_ROLL_TRACE_LAUNCHES * RS_CUDA_ROLL_TRACE_WORDS;
        if (rp && !chain && !rtrace) rtrace = (unsigned long long *)dalloc(rtrace_bytes);
        tu.roll_trace = rp && !chain ? rtrace : NULL;
        if (chain)
            printf("  (chain ring %d KiB, %d consumer warps, deal %s, hand-offs %s, stage %d KiB; "
                   "0 = automatic)\n",
                   vr[5], vr[6], vr[7] ? "per phase" : "whole chain", vr[8] ? "flagged" : "counted",
                   vr[9]);
        const char *sb =
            getenv("LAB_STREAM_BLOCKS"); /* the streamed kernels' grid (0: one per SM) */
        tu.stream_blocks = sb ? atoi(sb) : 0;
        rs_cuda_set_tuning(B, &tu);
        const int key = 20;
        set_pos(m, 100, 1);
        if (O->graph_begin(B, key, &e)) die("graph_begin", e.msg);
        forward7(m, 1);
        if (O->graph_end(B, key, &e)) die("graph_end", e.msg);
        if (getenv("LAB_LOOP")) loop_costs(m, key);
        /* LAB_DECODE_CTX: the context lengths timed (default 101 and the cache's) */
        const std::vector<int> ctxs = getenv("LAB_DECODE_CTX") ? int_list(getenv("LAB_DECODE_CTX"))
                                                               : std::vector<int>{101, (int)CTX};
        for (int ctx : ctxs) {
            set_pos(m, ctx - 1, 1);
            const double ms = time_ms([&] { O->graph_launch(B, key); }, 10);
            const double bytes = m.weight_bytes + kv_pos * ctx;
            const double ideal = copy_gbps * 1e9 / bytes;
            printf("  decode graph (GPU time) pdl=%d fuse=%d split=%s chain=%d stream=%s ctx=%d: "
                   "%.3f ms/token = %.1f tok/s; bytes/token %.2f GB; %.0f GB/s = %.0f%% of copy "
                   "(roofline %.0f tok/s)\n",
                   pdl, fuse, split ? "off" : "auto", chain,
                   stream == 9   ? "auto"
                   : stream == 0 ? "off"
                                 : std::to_string(stream).c_str(),
                   ctx, ms, 1e3 / ms, bytes / 1e9, bytes / (ms * 1e-3) / 1e9,
                   100 * bytes / (ms * 1e-3) / 1e9 / copy_gbps, ideal);
            /* one clean replay, stamped */
            if (tu.roll_trace && ctx == 101)
                traced_replay(key, rtrace, rtrace_bytes, rp, &n_rtraced);
            if (tu.chain_trace && ctx == 101) traced_replay(key, trace, trace_bytes, tp, &n_traced);
        }
        if (pdl && fuse && !split && !stream &&
            !chain) { /* the per-token loop: upload pos and x, replay, fetch logits */
            const int toks = 64;
            const double t0 = now_s();
            for (int i = 0; i < toks; i++) {
                const int32_t p = 200 + i;
                O->upload(B, m.pos, &p, 4, &e);
                O->upload(B, m.x, hx, DIM * 4, &e);
                O->graph_launch(B, key);
                if (O->download(B, logits.data(), m.logits, VOCAB * 4, &e)) die("download", e.msg);
            }
            sync_or_die("decode loop");
            const double dt = (now_s() - t0) / toks;
            printf("  decode loop (upload pos+x, replay, download logits; wall clock) ctx~%d: %.3f "
                   "ms/token = %.1f tok/s\n",
                   200 + toks / 2, dt * 1e3, 1 / dt);
        }
        if (pdl && fuse && !split && !stream &&
            !chain) { /* in-graph cost of each op category: graphs of only that category */
            set_pos(m, 100, 1);
            printf("  in-graph time per category (fuse=%d, 32 layers, ctx 101, category alone):",
                   fuse);
            for (int cat = 0; cat < C_N; cat++) {
                only_cats = 1u << cat;
                const double cms = time_graph(
                    40, [&] { forward7(m, 1); }, 10);
                printf(" %s %.3f ms;", CAT[cat], cms);
            }
            /* neighbours together: what their overlap saves */
            static const unsigned pairs[] = {1u << C_QKV | 1u << C_ATTN, 1u << C_ATTN | 1u << C_WO,
                                             1u << C_QKV | 1u << C_ATTN | 1u << C_WO};
            for (unsigned mask : pairs) {
                only_cats = mask;
                const double cms = time_graph(
                    40, [&] { forward7(m, 1); }, 10);
                printf(" [");
                for (int cat = 0; cat < C_N; cat++)
                    if (mask >> cat & 1)
                        printf("%s%s", mask & ((1u << cat) - 1) ? " + " : "", CAT[cat]);
                printf("] %.3f ms;", cms);
            }
            only_cats = 0;
            printf("\n");
        }
    }
    set_tuning(1, 1, 0);
    if (decode_only) {
        sync_or_die("model bench");
        free(hx);
        model_free(m);
        printf("\n");
        return;
    }
    if (!prompt_only) { /* per-op breakdown at full context, without a graph */
        breakdown = true;
        memset(cat_ms, 0, sizeof cat_ms);
        set_pos(m, CTX - 1, 1);
        for (int r = 0; r < 3; r++) forward7(m, 1);
        memset(cat_ms, 0, sizeof cat_ms);
        for (int r = 0; r < 3; r++) forward7(m, 1);
        print_breakdown("decode ctx=4096", 3);
        breakdown = false;
    }
    /* prompt: 512 tokens at positions 0..511 */
    set_pos(m, 0, NB);
    /* variants: attention on the tensor cores or SIMT; the next layer's quantized
     * weights dequantized ahead on a second stream (prepare) or inline; that
     * stream below the main one's priority or at the same */
    const int pv[][6] = {{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 0}, {1, 1, 1, 1, 0, 1},
                         {1, 1, 0, 1, 1, 1}, {1, 1, 1, 0, 1, 1}, {1, 0, 1, 1, 1, 1},
                         {0, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1}};
    for (auto &v : pv) {
        rs_cuda_tuning tu = tuning();
        tu.attn_mma = v[0];
        tu.prep = v[1];
        tu.prep_prio = v[2];
        tu.attn_zig = v[3];
        tu.swiglu_h = v[4];
        tu.attn_h16 = v[5];
        rs_cuda_set_tuning(B, &tu);
        const double ms = time_ms([&] { forward7(m, NB); }, 3);
        printf(
            "  prompt %d tokens (attention %s%s%s, prepare %s, side priority %s, SwiGLU products "
            "%s): %.2f ms = %.0f tok/s (%.0f TFLOP/s of weight products)\n",
            NB, tu.attn_mma ? "tensor cores" : "SIMT",
            tu.attn_mma && !tu.attn_zig ? " in plain order" : "",
            tu.attn_mma && !tu.attn_h16 ? " without F16 copy" : "", tu.prep ? "on" : "off",
            tu.prep_prio ? "low" : "same", tu.swiglu_h ? "F16" : "F32", ms, NB / (ms * 1e-3),
            2.0 * NB * (L7 * (4.0 * DIM * DIM + 3.0 * DIM * FF)) / ms / 1e9);
    }
    rs_cuda_tuning tu = tuning(); /* back to the defaults */
    tu.attn_mma = tu.prep = tu.prep_prio = tu.attn_zig = tu.swiglu_h = tu.attn_h16 = 1;
    rs_cuda_set_tuning(B, &tu);
    breakdown = true;
    memset(cat_ms, 0, sizeof cat_ms);
    forward7(m, NB);
    print_breakdown("prompt 512", 1);
    breakdown = false;
    sync_or_die("model bench");
    free(hx);
    model_free(m);
    printf("\n");
}

/* ---- shared-memory ring probe
 * -------------------------------------------------------------------------- */

/* Each block streams its own contiguous part of src, `stage` bytes at a time,
 * through a ring of `depth` slots: bulk copies completing on mbarriers (BULK),
 * or plain 16-byte register loads by every thread (the reference). The
 * consumer only touches one word per thread, so this measures the fetch. */
template <bool BULK>
__global__ void ring_probe(const uint8_t *src, size_t per_block, int depth, int stage,
                           unsigned *sink) {
    extern __shared__ __align__(128) uint8_t ring[];
    __shared__ uint64_t bar[FS_MAX_DEPTH];
    const uint8_t *base = src + blockIdx.x * per_block;
    const int n = (int)(per_block / stage);
    unsigned acc = 0;
    if (BULK) {
        if (threadIdx.x == 0) {
            for (int j = 0; j < depth; j++) fs_bar_init(&bar[j], 1);
            fs_bar_fence_init();
            for (int i = 0; i < depth && i < n; i++) {
                fs_bar_expect(&bar[i], stage);
                fs_copy(ring + (size_t)i * stage, base + (size_t)i * stage, stage, &bar[i]);
            }
        }
        __syncthreads();
        int slot = 0;
        unsigned parity = 0;
        for (int i = 0; i < n; i++) {
            fs_bar_wait(&bar[slot], parity);
            acc += ((const unsigned *)(ring + (size_t)slot * stage))[threadIdx.x];
            __syncthreads();
            if (threadIdx.x == 0 && i + depth < n) {
                fs_bar_expect(&bar[slot], stage);
                fs_copy(ring + (size_t)slot * stage, base + (size_t)(i + depth) * stage, stage,
                        &bar[slot]);
            }
            if (++slot == depth) {
                slot = 0;
                parity ^= 1u;
            }
        }
    } else {
#pragma unroll 4
        for (size_t off = threadIdx.x * 16; off < per_block; off += blockDim.x * 16)
            acc += cw_ld_nc(base + off).x;
    }
    if (acc == 0x9E3779B9u) *sink = acc; /* keeps the loads */
}

static void bench_ring(int n_sm) {
    const size_t total = (size_t)1 << 30;
    uint8_t *src = (uint8_t *)dalloc(total);
    unsigned *sink = (unsigned *)dalloc(256);
    ck(cudaMemsetAsync(src, 1, total, S), "memset");
    printf("## shared-memory ring probe: 1 GiB streamed, each block its own contiguous part, "
           "256 threads\n\n| blocks/SM | how | stage KB | depth | GB/s | of copy |\n"
           "|---|---|---|---|---|---|\n");
    for (int bps : {1, 2, 4}) {
        const unsigned grid = (unsigned)(n_sm * bps);
        for (int stage : {4 << 10, 16 << 10, 32 << 10})
            for (int depth : {2, 4, 8}) {
                const size_t smem = (size_t)depth * stage;
                if (smem * bps > (200u << 10)) continue;
                const size_t per_block = total / grid / stage * stage;
                ck(cudaFuncSetAttribute(ring_probe<true>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
                   "ring setup");
                const double ms = time_ms(
                    [&] {
                        ring_probe<true>
                            <<<grid, 256, smem, S>>>(src, per_block, depth, stage, sink);
                    },
                    3);
                const double gbps = (double)per_block * grid / (ms * 1e-3) / 1e9;
                printf("| %d | bulk copy | %d | %d | %.0f | %.0f%% |\n", bps, stage >> 10, depth,
                       gbps, 100 * gbps / copy_gbps);
                fflush(stdout);
            }
        const size_t per_block = total / grid / 4096 * 4096;
        const double ms = time_ms(
            [&] { ring_probe<false><<<grid, 256, 0, S>>>(src, per_block, 0, 4096, sink); }, 3);
        const double gbps = (double)per_block * grid / (ms * 1e-3) / 1e9;
        printf("| %d | register loads | - | - | %.0f | %.0f%% |\n", bps, gbps,
               100 * gbps / copy_gbps);
    }
    ck(cudaGetLastError(), "ring probe");
    O->release(B, src), O->release(B, sink);
    printf("\n");
}

/* ---- token picks ------------------------------------------------------------------------ */

/* greedy_pick and sample_pick: µs a pick with 20 picks in one graph (as chained steps run
 * them, one after another), alone on random logits and each after the 7B's output head
 * (32000 x 4096 Q8_0, writing the logits; the column is then the pair's time less the
 * head's alone). Then sample_pick's phases from the trace (tuning pick_trace): the median
 * time between one stamp and the next in the block that merged. */
static void bench_pick(void) {
    static const char *ev_name[RS_PICK_LAST] = {
        "start",   "waited", "loaded",  "first",  "listed",   "bound",
        "counted", "placed", "arrived", "copied", "selected", "sorted",
        "exps",    "top-p",  "softmax", "drawn",  "stored"};
    enum { PICKS = 20, SLOTS = 4 };
    printf("## token picks (µs a pick, %d in a graph)\n\n", PICKS);
    printf("| vocab | after | rule | greedy_pick | sample_pick |\n|---:|---|---|---:|---:|\n");
    rs_error e = {};
    int32_t *ring = NULL;
    uint64_t *rngs = NULL;
    if (O->host_alloc(B, SLOTS * sizeof *ring, (void **)&ring, &e) ||
        O->host_alloc(B, SLOTS * 4 * sizeof *rngs, (void **)&rngs, &e))
        die("host_alloc", e.msg);
    int32_t *ids = (int32_t *)dalloc(4), *pos = (int32_t *)dalloc(4);
    ck(cudaMemset(pos, 0, 4), "memset");
    enum { RULES = 4 };
    rs_sample_rule rules[RULES] = {{{1, 2, 3, 4}, 40, 0.95f, 0.05f, 0.8f},
                                   {{1, 2, 3, 4}, RS_SAMPLE_TOP_K_MAX, 1.0f, 0.0f, 2.5f},
                                   {{1, 2, 3, 4}, 0, 1.0f, 0.0f, 1.0f},
                                   {{1, 2, 3, 4}, 0, 0.9f, 0.0f, 1.0f}};
    const char *rule_name[RULES] = {"default (k 40, p 0.95, min-p 0.05, t 0.8)", "k 256, t 2.5",
                                    "all ids (k 0, p 1, t 1)",
                                    "top-p over all ids (k 0, p 0.9, t 1)"};
    rs_sample_rule *drule = (rs_sample_rule *)dalloc(sizeof(rs_sample_rule));
    unsigned long long *trace = (unsigned long long *)dalloc((size_t)RS_PICK_TRACE_LAUNCHES *
                                                             RS_PICK_TRACE_WORDS * sizeof *trace);
    std::vector<unsigned long long> host((size_t)RS_PICK_TRACE_LAUNCHES * RS_PICK_TRACE_WORDS);
    float *x = drand(4096, 1.0f, 5);
    rs_weight head = dev_weight(RS_DTYPE_Q8_0, 4096, 32000, 0.05f, 77);
    static const int vocabs[3] = {32000, 128256, 32000};
    int key = 7000;
    for (int v = 0; v < 3; v++) {
        const int n = vocabs[v];
        const bool after_head = v == 2;
        float *logits = drand(n, 4.0f, 99 + v);
        rs_matmul mm = {&head, NULL, logits};
        auto step = [&](const std::function<void()> &pick) {
            return 1e3 *
                   time_graph(
                       key++,
                       [&] {
                           for (int i = 0; i < PICKS; i++) {
                               if (after_head) O->matmul(B, &mm, 1, x, 1);
                               pick();
                           }
                       },
                       20) /
                   PICKS;
        };
        const double base = after_head ? step([] {}) : 0.0;
        const double greedy =
            step([&] { O->greedy_pick(B, logits, n, NULL, ids, pos, ring, NULL, SLOTS); }) - base;
        for (int r = 0; r < RULES; r++) {
            ck(cudaMemcpy(drule, &rules[r], sizeof rules[r], cudaMemcpyHostToDevice), "rule");
            const double sample =
                step([&] { O->sample_pick(B, logits, n, drule, ids, pos, ring, rngs, SLOTS); }) -
                base;
            printf("| %d | %s | %s | %.2f | %.2f |\n", n,
                   after_head ? "the head, 32000x4096 Q8_0" : "—", rule_name[r], greedy, sample);
            /* the trace: PICKS launches outside a graph */
            rs_cuda_tuning t = tuning();
            t.pick_trace = trace;
            rs_cuda_set_tuning(B, &t);
            ck(cudaMemset(trace, 0, host.size() * sizeof *trace), "memset");
            for (int i = 0; i < PICKS; i++) {
                if (after_head) O->matmul(B, &mm, 1, x, 1);
                O->sample_pick(B, logits, n, drule, ids, pos, ring, rngs, SLOTS);
            }
            sync_or_die("traced picks");
            t.pick_trace = NULL;
            rs_cuda_set_tuning(B, &t);
            ck(cudaMemcpy(host.data(), trace, host.size() * sizeof *trace, cudaMemcpyDeviceToHost),
               "trace");
            std::vector<double> d[RS_PICK_LAST + 1];
            for (int l = 0; l < PICKS; l++) {
                const unsigned long long *L = &host[(size_t)l * RS_PICK_TRACE_WORDS];
                for (int b = 0; b < RS_PICK_TRACE_BLOCKS; b++) {
                    const unsigned long long *E = &L[b * RS_PICK_EV];
                    if (E[RS_PICK_LAST] != 1) continue;
                    /* a path stamps some events only: each from the last one stamped */
                    for (int i = 1, prev = 0; i < RS_PICK_LAST; i++) {
                        if (!E[i]) continue;
                        d[i].push_back(((long long)E[i] - (long long)E[prev]) * 1e-3);
                        prev = i;
                    }
                    d[RS_PICK_LAST].push_back((E[RS_PICK_END] - E[RS_PICK_WAITED]) * 1e-3);
                }
            }
            if (d[1].empty()) continue;
            printf("|   |   | trace (µs, median of %zu):", d[1].size());
            for (int i = 1; i < RS_PICK_LAST; i++)
                if (!d[i].empty()) printf(" %s %.2f", ev_name[i], median(d[i]));
            printf("; waited to stored %.2f | | |\n", median(d[RS_PICK_LAST]));
        }
        O->release(B, logits);
    }
    printf("\n");
    /* penalize before a pick: windows of the default 64 tokens and of the most the device
     * keeps, half of them repeats */
    printf("| vocab | window | penalize |\n|---:|---:|---:|\n");
    for (int last_n : {64, (int)RS_SAMPLE_LAST_N_MAX}) {
        const int n = 32000;
        float *logits = drand(n, 4.0f, 123);
        static rs_sample_rule pr;
        pr = rules[0];
        pr.pen.repeat_penalty = 1.1f, pr.pen.frequency_penalty = 0.1f;
        pr.pen.presence_penalty = 0.1f, pr.pen.last_n = last_n, pr.pen.len = last_n;
        for (int i = 0; i < last_n; i++) pr.pen.tok[i] = (i * 7919) % (last_n / 2 + 1) + 3;
        ck(cudaMemcpy(drule, &pr, sizeof pr, cudaMemcpyHostToDevice), "rule");
        const double us = 1e3 *
                          time_graph(
                              key++,
                              [&] {
                                  for (int i = 0; i < PICKS; i++) O->penalize(B, logits, n, drule);
                              },
                              20) /
                          PICKS;
        printf("| %d | %d | %.2f |\n", n, last_n, us);
        O->release(B, logits);
    }
    printf("\n");
    O->weight_unload(B, &head);
    O->release(B, x), O->release(B, trace), O->release(B, drule), O->release(B, ids);
    O->release(B, pos), O->host_free(B, ring), O->host_free(B, rngs);
}

int main(int argc, char **argv) {
    rs_error e = {};
    if (rs_cuda_backend_create_impl(&B, &e)) {
        printf("SKIP: %s\n", e.msg);
        return 77;
    }
    O = B->ops;
    S = (cudaStream_t)rs_cuda_stream(B);
    cudaEventCreate(&ev[0]);
    cudaEventCreate(&ev[1]);
    cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    printf("# rusty CUDA kernel lab — %s, %d SMs, %.0f MB L2\n\n", prop.name,
           prop.multiProcessorCount, prop.l2CacheSize / 1e6);
    auto want = [&](const char *s) {
        if (argc < 2) return true;
        for (int i = 1; i < argc; i++)
            if (!strncmp(argv[i], s, strlen(s))) return true;
        return false;
    };
    bench_ceilings();
    if (want("matvec")) bench_matvec();
    if (want("gemm")) bench_gemm();
    if (want("lt")) bench_lt();
    if (want("attn")) bench_attention();
    if (want("attn") || want("prefill")) bench_attn_prefill();
    if (want("ring")) bench_ring(prop.multiProcessorCount);
    if (want("pick")) bench_pick();
    if (want("model")) {
        const char *list = "F16,Q8_0,Q4_0,Q4_K";
        for (int i = 1; i < argc; i++)
            if (!strncmp(argv[i], "model=", 6)) list = argv[i] + 6;
        for (int i = 1; i < argc; i++) prompt_only |= !strcmp(argv[i], "prompt");
        for (int i = 1; i < argc; i++) decode_only |= !strcmp(argv[i], "decode");
        printf(
            "## Llama-2-7B shape (32 x [4 x 4096^2 + 3 x 4096 x 11008] + 32000 x 4096 output)\n\n");
        char buf[256];
        snprintf(buf, sizeof buf, "%s", list);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            char *kv = strchr(tok, ':');
            rs_kv_type kvt = RS_KV_F16;
            if (kv) {
                *kv++ = 0;
                if (strcmp(kv, "q8") && strcmp(kv, "q4"))
                    die("unknown cache type (want :q8 or :q4)", kv);
                kvt = strcmp(kv, "q8") ? RS_KV_Q4_0 : RS_KV_Q8_0;
            }
            /* a weight type (every matrix in it), or a preset of `rusty quantize`
             * with its mix: a name ending in _M (Q3_K_M, Q4_K_M, Q5_K_M), or any
             * preset after '@' (@Q2_K: the file `rusty quantize Q2_K` writes) */
            rs_dtype t;
            rs_ftype ft = RS_FTYPE_F32;
            const bool at = tok[0] == '@';
            if (at) tok++;
            const bool mix = at || (strlen(tok) > 2 && !strcmp(tok + strlen(tok) - 2, "_M"));
            if (mix) {
                if (!rs_ftype_from_name(tok, &ft)) die("unknown preset", tok);
                t = preset_type(ft, "blk.0.attn_q.weight", DIM, NH * HD);
            } else if (!rs_dtype_from_name(tok, &t)) {
                die("unknown type", tok);
            }
            bench_model(t, ft, mix, kvt);
            fflush(stdout);
        }
    }
    O->destroy(B);
    return 0;
}

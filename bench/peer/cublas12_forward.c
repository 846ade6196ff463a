/* libcublas.so.12 stand-in for the llama.cpp benchmark (bench/peer.sh): Debian's
 * ggml CUDA backend is built against CUDA 12, the GPU machine has CUDA 13 only.
 * The 13 entry points the backend imports keep their signatures in cuBLAS 13, so
 * each forwards to the symbol of the same name in libcublas.so.13, looked up on
 * first use. Not part of Rusty. */
#include <cublas_v2.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

/* The machine's cuBLAS symbol `name`; a missing library or symbol ends the benchmark
 * with a message rather than a call through a null pointer. */
static void *cublas13_symbol(const char *name) {
    static void *lib;
    if (!lib) lib = dlopen("libcublas.so.13", RTLD_NOW | RTLD_GLOBAL);
    void *f = lib ? dlsym(lib, name) : NULL;
    if (!f) {
        fprintf(stderr, "cublas12_forward: %s: %s\n", name, dlerror());
        abort();
    }
    return f;
}

#define FWD(name, ret, params, args)                                                               \
    ret name params {                                                                              \
        static __typeof__(&name) f;                                                                \
        if (!f) f = (__typeof__(&name))cublas13_symbol(#name);                                     \
        return f args;                                                                             \
    }

FWD(cublasCreate_v2, cublasStatus_t, (cublasHandle_t * h), (h))
FWD(cublasDestroy_v2, cublasStatus_t, (cublasHandle_t h), (h))
FWD(cublasSetStream_v2, cublasStatus_t, (cublasHandle_t h, cudaStream_t s), (h, s))
FWD(cublasSetMathMode, cublasStatus_t, (cublasHandle_t h, cublasMath_t m), (h, m))
FWD(cublasSetWorkspace_v2, cublasStatus_t, (cublasHandle_t h, void *w, size_t n), (h, w, n))
FWD(cublasGetStatusString, const char *, (cublasStatus_t s), (s))
FWD(cublasGemmEx, cublasStatus_t,
    (cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
     const void *al, const void *A, cudaDataType at, int lda, const void *B, cudaDataType bt,
     int ldb, const void *be, void *C, cudaDataType ct, int ldc, cublasComputeType_t cp,
     cublasGemmAlgo_t alg),
    (h, ta, tb, m, n, k, al, A, at, lda, B, bt, ldb, be, C, ct, ldc, cp, alg))
FWD(cublasGemmBatchedEx, cublasStatus_t,
    (cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
     const void *al, const void *const A[], cudaDataType at, int lda, const void *const B[],
     cudaDataType bt, int ldb, const void *be, void *const C[], cudaDataType ct, int ldc, int bc,
     cublasComputeType_t cp, cublasGemmAlgo_t alg),
    (h, ta, tb, m, n, k, al, A, at, lda, B, bt, ldb, be, C, ct, ldc, bc, cp, alg))
FWD(cublasGemmStridedBatchedEx, cublasStatus_t,
    (cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
     const void *al, const void *A, cudaDataType at, int lda, long long sa, const void *B,
     cudaDataType bt, int ldb, long long sb, const void *be, void *C, cudaDataType ct, int ldc,
     long long sc, int bc, cublasComputeType_t cp, cublasGemmAlgo_t alg),
    (h, ta, tb, m, n, k, al, A, at, lda, sa, B, bt, ldb, sb, be, C, ct, ldc, sc, bc, cp, alg))
FWD(cublasSgemm_v2, cublasStatus_t,
    (cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
     const float *al, const float *A, int lda, const float *B, int ldb, const float *be, float *C,
     int ldc),
    (h, ta, tb, m, n, k, al, A, lda, B, ldb, be, C, ldc))
FWD(cublasSgemmBatched, cublasStatus_t,
    (cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
     const float *al, const float *const A[], int lda, const float *const B[], int ldb,
     const float *be, float *const C[], int ldc, int bc),
    (h, ta, tb, m, n, k, al, A, lda, B, ldb, be, C, ldc, bc))
FWD(cublasSgemmStridedBatched, cublasStatus_t,
    (cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
     const float *al, const float *A, int lda, long long sa, const float *B, int ldb, long long sb,
     const float *be, float *C, int ldc, long long sc, int bc),
    (h, ta, tb, m, n, k, al, A, lda, sa, B, ldb, sb, be, C, ldc, sc, bc))
FWD(cublasStrsmBatched, cublasStatus_t,
    (cublasHandle_t h, cublasSideMode_t sd, cublasFillMode_t ul, cublasOperation_t tr,
     cublasDiagType_t dg, int m, int n, const float *al, const float *const A[], int lda,
     float *const B[], int ldb, int bc),
    (h, sd, ul, tr, dg, m, n, al, A, lda, B, ldb, bc))

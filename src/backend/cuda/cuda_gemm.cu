/* cuda_gemm.cu — prefill products (n > 4 tokens) on the tensor cores through
 * cuBLAS, and the embedding lookup.
 *
 * F16 and BF16 weights are multiplied in place against activations rounded
 * to the same type; quantized weights are first dequantized to F16, a slab of
 * rows at a time (at most CHUNK_ELEMS values), into a scratch buffer. F32
 * weights use plain f32 SGEMM (those models are tiny; exactness wins).
 * Accumulation is f32 throughout. */
#include <cublas_v2.h>

#include <algorithm>

#include "backend/cuda/cuda_common.cuh"

namespace {

constexpr int64_t CHUNK_ELEMS = (int64_t)64 << 20;

/* ---- dequantization of 32 elements ---------------------------------------------------------- */

union blk32 {
    uint4 v[2];
    uint8_t b[32];
    int8_t s[32];
};

__device__ __forceinline__ uint4 ld16(const uint8_t *p) {
    return *(const uint4 *)p;
}
__device__ __forceinline__ float ldh(const uint8_t *p) {
    return cw_h2f(*(const uint16_t *)p);
}

/* Elements 32*j .. 32*j+31 of row `row` (device layout, see cuda_common.cuh). */
template <int T> __device__ void deq32(const cw_layout &L, int64_t row, int64_t j, float *out) {
    constexpr bool NL = T == RS_DTYPE_IQ4_NL || T == RS_DTYPE_IQ4_XS; /* IQ4_NL's code book */
    if (T == RS_DTYPE_Q4_0 || NL || T == RS_DTYPE_Q4_1 || T == RS_DTYPE_Q5_0 ||
        T == RS_DTYPE_Q5_1) {
        /* IQ4_XS (cuda_common.cuh): 32-value block b as IQ4_NL's, its scale d of
         * super-block b / 8 times multiplier b (sub-block b % 8), exact in f32 */
        const int64_t b = row * (T == RS_DTYPE_IQ4_XS ? 8 * L.nb : L.nb) + j;
        blk32 q;
        q.v[0] = ld16(L.qs + b * 16);
        float d, m = 0.0f;
        uint32_t h = 0;
        if (T == RS_DTYPE_Q4_1 || T == RS_DTYPE_Q5_1) {
            d = ldh(L.dm + b * 4);
            m = ldh(L.dm + b * 4 + 2);
        } else if (T == RS_DTYPE_IQ4_XS) {
            d = ldh(L.dm + (b >> 3) * 2) * (float)((const int8_t *)L.aux)[b];
        } else {
            d = ldh(L.dm + b * 2);
        }
        if (T == RS_DTYPE_Q5_0 || T == RS_DTYPE_Q5_1) h = *(const uint32_t *)(L.aux + b * 4);
        /* IQ4_NL's code book by byte permutes: a table in constant memory serializes a warp's
         * distinct indices (7B pp512 14.7k tok/s with it, 28.5k without; Q4_0 28.8k; runs
         * 420, 422) */
        const uint32_t w[4] = {q.v[0].x, q.v[0].y, q.v[0].z, q.v[0].w};
#pragma unroll
        for (int k = 0; k < 4 && NL; k++) {
            uint32_t lo, hi;
            float f[8];
            cw_iq4nl_lookup(w[k], lo, hi);
            cw_i8x4_to_f32(lo, f);
            cw_i8x4_to_f32(hi, f + 4);
#pragma unroll
            for (int i = 0; i < 4; i++)
                out[4 * k + i] = d * f[i], out[16 + 4 * k + i] = d * f[4 + i];
        }
#pragma unroll
        for (int i = 0; i < 16 && !NL; i++) {
            int lo = q.b[i] & 15, hi = q.b[i] >> 4;
            if (T == RS_DTYPE_Q4_0) {
                out[i] = d * (float)(lo - 8);
                out[i + 16] = d * (float)(hi - 8);
            } else if (T == RS_DTYPE_Q4_1) {
                out[i] = d * (float)lo + m;
                out[i + 16] = d * (float)hi + m;
            } else {
                lo |= ((h >> i) & 1) << 4;
                hi |= ((h >> (i + 16)) & 1) << 4;
                out[i] = T == RS_DTYPE_Q5_0 ? d * (float)(lo - 16) : d * (float)lo + m;
                out[i + 16] = T == RS_DTYPE_Q5_0 ? d * (float)(hi - 16) : d * (float)hi + m;
            }
        }
    } else if (T == RS_DTYPE_Q8_0) {
        const int64_t b = row * L.nb + j;
        blk32 q;
        q.v[0] = ld16(L.qs + b * 32);
        q.v[1] = ld16(L.qs + b * 32 + 16);
        const float d = ldh(L.dm + b * 2);
#pragma unroll
        for (int i = 0; i < 32; i++) out[i] = d * (float)q.s[i];
    } else if (T == RS_DTYPE_Q4_K || T == RS_DTYPE_Q5_K) {
        const int s = (int)(j & 7);
        const int64_t b = row * L.nb + (j >> 3);
        const uint8_t *aux = L.aux + b * (T == RS_DTYPE_Q4_K ? 16 : 48);
        const uint8_t *sm = aux + (T == RS_DTYPE_Q4_K ? 0 : 32) + 4 * (s >> 1) + (s & 1);
        blk32 q, h;
        q.v[0] = ld16(L.qs + b * 128 + 32 * (s >> 1));
        q.v[1] = ld16(L.qs + b * 128 + 32 * (s >> 1) + 16);
        if (T == RS_DTYPE_Q5_K) {
            h.v[0] = ld16(aux);
            h.v[1] = ld16(aux + 16);
        }
        const float d1 = ldh(L.dm + b * 4) * (float)sm[0],
                    m1 = ldh(L.dm + b * 4 + 2) * (float)sm[2];
        const int shift = 4 * (s & 1);
#pragma unroll
        for (int l = 0; l < 32; l++) {
            int v = (q.b[l] >> shift) & 15;
            if (T == RS_DTYPE_Q5_K) v |= ((h.b[l] >> s) & 1) << 4;
            out[l] = d1 * (float)v - m1;
        }
    } else if (T == RS_DTYPE_Q2_K || T == RS_DTYPE_Q3_K) {
        /* group g of 32: qs bytes 32 (g / 4) .. + 31, bits 2 (g % 4); sub-blocks 2g, 2g + 1 */
        const int g = (int)(j & 7), sh = 2 * (g & 3);
        const int64_t b = row * L.nb + (j >> 3);
        blk32 q;
        q.v[0] = ld16(L.qs + b * 64 + 32 * (g >> 2));
        q.v[1] = ld16(L.qs + b * 64 + 32 * (g >> 2) + 16);
        if (T == RS_DTYPE_Q2_K) {
            const float d = ldh(L.dm + b * 4), dmin = ldh(L.dm + b * 4 + 2);
            const uint8_t *sc = L.aux + b * 16 + 2 * g;
            const float d0 = d * (float)(sc[0] & 15), m0 = dmin * (float)(sc[0] >> 4),
                        d1 = d * (float)(sc[1] & 15), m1 = dmin * (float)(sc[1] >> 4);
#pragma unroll
            for (int l = 0; l < 32; l++)
                out[l] = (l < 16 ? d0 : d1) * (float)((q.b[l] >> sh) & 3) - (l < 16 ? m0 : m1);
        } else {
            blk32 h; /* hmask: byte l, bit g */
            h.v[0] = ld16(L.aux + b * 48);
            h.v[1] = ld16(L.aux + b * 48 + 16);
            const float d = ldh(L.dm + b * 2);
            const int8_t *sc = (const int8_t *)L.aux + b * 48 + 32 + 2 * g;
            const float d0 = d * (float)sc[0], d1 = d * (float)sc[1];
#pragma unroll
            for (int l = 0; l < 32; l++) {
                const int v = ((q.b[l] >> sh) & 3) - (((h.b[l] >> g) & 1) ? 0 : 4);
                out[l] = (l < 16 ? d0 : d1) * (float)v;
            }
        }
    } else if (T == RS_DTYPE_Q6_K) {
        const int s = (int)(j & 7), hh = s >> 2;
        const int64_t bi = row * L.nb + (j >> 3);
        const uint8_t *body = L.qs + bi * 208;
        blk32 ql, qh;
        ql.v[0] = ld16(body + 64 * hh + 32 * (s & 1));
        ql.v[1] = ld16(body + 64 * hh + 32 * (s & 1) + 16);
        qh.v[0] = ld16(body + 128 + 32 * hh);
        qh.v[1] = ld16(body + 128 + 32 * hh + 16);
        const float d = ldh(L.dm + bi * 2);
        const float sc0 = d * (float)(int8_t)body[192 + 2 * s],
                    sc1 = d * (float)(int8_t)body[192 + 2 * s + 1];
        const int lsh = 4 * ((s & 3) >> 1), hsh = 2 * (s & 3);
#pragma unroll
        for (int l = 0; l < 32; l++) {
            const int v = ((ql.b[l] >> lsh) & 15) | (((qh.b[l] >> hsh) & 3) << 4);
            out[l] = (l < 16 ? sc0 : sc1) * (float)(v - 32);
        }
    }
}

/* Rows [row0, row0 + rows) of a quantized weight to F16, row-major. Each
 * thread dequantizes 32 values into shared memory (rows padded to 80 bytes,
 * conflict-free); the block then writes its contiguous 16 KB with 16-byte
 * stores that are consecutive across the warp. */
constexpr int DQ_THREADS = 256, DQ_LD = 40; /* halves per padded group */

template <int T>
__global__ void __launch_bounds__(DQ_THREADS)
    deq_f16_kernel(const cw_layout L, int64_t row0, int64_t rows, __half *out) {
    __shared__ __align__(16) __half buf[DQ_THREADS * DQ_LD];
    cw_griddep_launch();
    cw_griddep_wait();
    const int64_t gpr = L.n_in / 32, total = rows * gpr, g0 = (int64_t)blockIdx.x * DQ_THREADS;
    const int64_t g = g0 + threadIdx.x;
    if (g < total) {
        float v[32];
        deq32<T>(L, row0 + g / gpr, g % gpr, v);
        uint4 *o = (uint4 *)(buf + threadIdx.x * DQ_LD);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            __half2 h[4];
#pragma unroll
            for (int k = 0; k < 4; k++)
                h[k] = __floats2half2_rn(v[8 * i + 2 * k], v[8 * i + 2 * k + 1]);
            o[i] = *(const uint4 *)h;
        }
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int chunk = threadIdx.x + DQ_THREADS * i; /* 16-byte piece of the block's output */
        if (g0 + chunk / 4 < total)
            *(uint4 *)(out + 32 * g0 + 8 * (int64_t)chunk) =
                *(const uint4 *)(buf + (chunk / 4) * DQ_LD + 8 * (chunk % 4));
    }
}

/* out[t] = row ids[t]: quantized types, one thread per 32 elements. */
template <int T>
__global__ void embed_q_kernel(const cw_layout L, const int32_t *ids, int n, float *out) {
    cw_griddep_launch();
    cw_griddep_wait();
    const int64_t gpr = L.n_in / 32, g = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= (int64_t)n * gpr) return;
    const int t = (int)(g / gpr);
    const int64_t id = ids[t];
    float v[32];
    if (id >= 0 && id < L.n_out)
        deq32<T>(L, id, g % gpr, v);
    else
        for (int i = 0; i < 32; i++) v[i] = 0.0f;
    float *o = out + 32 * g;
    for (int i = 0; i < 32; i++) o[i] = v[i];
}

__global__ void embed_plain_kernel(const cw_layout L, const int32_t *ids, int n, float *out) {
    cw_griddep_launch();
    cw_griddep_wait();
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)n * L.n_in) return;
    const int64_t t = i / L.n_in, e = i % L.n_in, id = ids[t];
    float v = 0.0f;
    if (id >= 0 && id < L.n_out) {
        const int64_t k = id * L.n_in + e;
        if (L.type == RS_DTYPE_F32)
            v = ((const float *)L.qs)[k];
        else if (L.type == RS_DTYPE_F16)
            v = cw_h2f(((const uint16_t *)L.qs)[k]);
        else
            v = cw_bf2f(((const uint16_t *)L.qs)[k]);
    }
    out[i] = v;
}

__global__ void to_half_kernel(const float *x, int64_t n, __half *xh, __nv_bfloat16 *xb) {
    cw_griddep_launch();
    cw_griddep_wait();
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    if (xh) xh[i] = __float2half_rn(x[i]);
    if (xb) xb[i] = __float2bfloat16_rn(x[i]);
}

template <int T>
void launch_deq(cuda_backend *c, cudaStream_t stream, const cw_layout &L, int64_t row0,
                int64_t rows, __half *out) {
    const int64_t groups = rows * (L.n_in / 32);
    cw_launch_on(c, stream, false, deq_f16_kernel<T>,
                 dim3((unsigned)((groups + DQ_THREADS - 1) / DQ_THREADS)), dim3(DQ_THREADS), 0, L,
                 row0, rows, out);
}

template <int T>
void launch_embed(cuda_backend *c, const cw_layout &L, const int32_t *ids, int n, float *out) {
    const int64_t groups = (int64_t)n * (L.n_in / 32);
    cw_launch(c, true, embed_q_kernel<T>, dim3((unsigned)((groups + 127) / 128)), dim3(128), 0, L,
              ids, n, out);
}

bool cublas_ok(cuda_backend *c, cublasStatus_t s, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS) return true;
    cw_fail(c, RS_ERR_DEVICE, "cuBLAS %s failed: %s", what, cublasGetStatusString(s));
    return false;
}

struct ptr_pack {
    const void *p[3 * 8];
};

/* Device pointer arrays for a batched call, passed by value (no host copy). */
__global__ void set_ptrs_kernel(const void **dst, const ptr_pack pk) {
    if (threadIdx.x < 3 * 8) dst[threadIdx.x] = pk.p[threadIdx.x];
}

/* y_m = x W_m^T for the nm products listed (same type and height): F32 by
 * SGEMM one at a time; F16/BF16 in place; quantized ones dequantized to F16
 * a slab of rows at a time. Several products go as one batched call, which
 * fills the GPU better than a 512-token GEMM alone does. */
bool gemm_group(cuda_backend *c, const rs_matmul *mm, const int *members, int nm, const float *x,
                char *xbuf, size_t half_bytes, int n, int k, bool acc, bool half_out) {
    cublasHandle_t h = (cublasHandle_t)c->cublas;
    const float one = 1.0f, zero = acc ? 1.0f : 0.0f; /* beta: y += or y = */
    const cw_layout *L = (const cw_layout *)mm[members[0]].w->extra;
    const int m = (int)L->n_out;
    if (L->type == RS_DTYPE_F32)
        return cublas_ok(c,
                         cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one,
                                     (const float *)L->qs, k, x, k, &zero, mm[members[0]].y, m),
                         "SGEMM");
    const bool bf = L->type == RS_DTYPE_BF16, plain = bf || L->type == RS_DTYPE_F16;
    const cudaDataType_t dt = bf ? CUDA_R_16BF : CUDA_R_16F,
                         ct = half_out ? CUDA_R_16F : CUDA_R_32F;
    const void *xb = bf ? (const void *)(xbuf + half_bytes) : (const void *)xbuf;
    /* quantized weights that cw_prepare dequantized already: one pass, no slab */
    const __half *pre[8] = {};
    int n_pre = 0;
    for (int j = 0; j < nm && !plain; j++)
        n_pre += (pre[j] = cw_prepared(c, (const cw_layout *)mm[members[j]].w->extra)) != NULL;
    const bool prepared = n_pre == nm && !plain;
    const int64_t chunk = c->tune.gemm_chunk > 0 ? c->tune.gemm_chunk : CHUNK_ELEMS;
    int64_t step = plain || prepared
                       ? L->n_out
                       : std::max<int64_t>(128, chunk / ((int64_t)nm * k) / 128 * 128);
    step = std::min<int64_t>(step, L->n_out);
    __half *wdq = NULL;
    if (!plain && !prepared &&
        !(wdq = (__half *)cw_scratch(c, CW_SCR_WDQ, (size_t)nm * step * k * 2)))
        return false;
    void **dptr = NULL;
    if (nm > 1 && !(dptr = (void **)cw_scratch(c, CW_SCR_PTR, 3 * 8 * sizeof(void *))))
        return false;
    for (int64_t r0 = 0; r0 < L->n_out; r0 += step) {
        const int rows = (int)std::min<int64_t>(step, L->n_out - r0);
        const void *A[8];
        void *C[8];
        for (int j = 0; j < nm; j++) {
            const cw_layout *Lj = (const cw_layout *)mm[members[j]].w->extra;
            C[j] = (char *)mm[members[j]].y + r0 * (half_out ? sizeof(__half) : sizeof(float));
            if (plain) {
                A[j] = Lj->qs;
            } else if (prepared) {
                A[j] = pre[j];
            } else {
                __half *slab = wdq + (size_t)j * rows * k;
                cw_dequant_rows(c, c->stream, Lj, r0, rows, slab);
                A[j] = slab;
            }
        }
        bool ok;
        if (nm == 1) {
            ok =
                cublas_ok(c,
                          cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, rows, n, k, &one, A[0],
                                       plain ? dt : CUDA_R_16F, k, xb, plain ? dt : CUDA_R_16F, k,
                                       &zero, C[0], ct, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                          "GEMM");
        } else {
            ptr_pack pk = {};
            for (int j = 0; j < nm; j++) pk.p[j] = A[j], pk.p[8 + j] = xb, pk.p[16 + j] = C[j];
            cw_launch(c, false, set_ptrs_kernel, dim3(1), dim3(32), 0, (const void **)dptr, pk);
            ok = cublas_ok(c,
                           cublasGemmBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, rows, n, k, &one,
                                               (const void *const *)dptr, plain ? dt : CUDA_R_16F,
                                               k, (const void *const *)(dptr + 8),
                                               plain ? dt : CUDA_R_16F, k, &zero, dptr + 16, ct, m,
                                               nm, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                           "batched GEMM");
        }
        if (!ok) return false;
    }
    return true;
}

} // namespace

void cw_dequant_rows(cuda_backend *c, cudaStream_t stream, const cw_layout *L, int64_t row0,
                     int64_t rows, __half *out) {
    switch (L->type) {
    case RS_DTYPE_Q4_0:
        launch_deq<RS_DTYPE_Q4_0>(c, stream, *L, row0, rows, out);
        break;
    case RS_DTYPE_Q4_1:
        launch_deq<RS_DTYPE_Q4_1>(c, stream, *L, row0, rows, out);
        break;
    case RS_DTYPE_Q5_0:
        launch_deq<RS_DTYPE_Q5_0>(c, stream, *L, row0, rows, out);
        break;
    case RS_DTYPE_Q5_1:
        launch_deq<RS_DTYPE_Q5_1>(c, stream, *L, row0, rows, out);
        break;
    case RS_DTYPE_Q8_0:
        launch_deq<RS_DTYPE_Q8_0>(c, stream, *L, row0, rows, out);
        break;
    case RS_DTYPE_Q2_K:
        launch_deq<RS_DTYPE_Q2_K>(c, stream, *L, row0, rows, out);
        break;
    case RS_DTYPE_Q3_K:
        launch_deq<RS_DTYPE_Q3_K>(c, stream, *L, row0, rows, out);
        break;
    case RS_DTYPE_Q4_K:
        launch_deq<RS_DTYPE_Q4_K>(c, stream, *L, row0, rows, out);
        break;
    case RS_DTYPE_Q5_K:
        launch_deq<RS_DTYPE_Q5_K>(c, stream, *L, row0, rows, out);
        break;
    case RS_DTYPE_Q6_K:
        launch_deq<RS_DTYPE_Q6_K>(c, stream, *L, row0, rows, out);
        break;
    case RS_DTYPE_IQ4_NL:
        launch_deq<RS_DTYPE_IQ4_NL>(c, stream, *L, row0, rows, out);
        break;
    case RS_DTYPE_IQ4_XS:
        launch_deq<RS_DTYPE_IQ4_XS>(c, stream, *L, row0, rows, out);
        break;
    default:
        cw_fail(c, RS_ERR_UNSUPPORTED, "dequantize: type %s", rs_dtype_name(L->type));
        break;
    }
}

void cw_embed(cuda_backend *c, const cw_layout *L, const int32_t *ids, int n, float *out) {
    switch (L->type) {
    case RS_DTYPE_F32:
    case RS_DTYPE_F16:
    case RS_DTYPE_BF16: {
        const int64_t total = (int64_t)n * L->n_in;
        cw_launch(c, true, embed_plain_kernel, dim3((unsigned)((total + 255) / 256)), dim3(256), 0,
                  *L, ids, n, out);
        break;
    }
    case RS_DTYPE_Q4_0:
        launch_embed<RS_DTYPE_Q4_0>(c, *L, ids, n, out);
        break;
    case RS_DTYPE_Q4_1:
        launch_embed<RS_DTYPE_Q4_1>(c, *L, ids, n, out);
        break;
    case RS_DTYPE_Q5_0:
        launch_embed<RS_DTYPE_Q5_0>(c, *L, ids, n, out);
        break;
    case RS_DTYPE_Q5_1:
        launch_embed<RS_DTYPE_Q5_1>(c, *L, ids, n, out);
        break;
    case RS_DTYPE_Q8_0:
        launch_embed<RS_DTYPE_Q8_0>(c, *L, ids, n, out);
        break;
    case RS_DTYPE_Q2_K:
        launch_embed<RS_DTYPE_Q2_K>(c, *L, ids, n, out);
        break;
    case RS_DTYPE_Q3_K:
        launch_embed<RS_DTYPE_Q3_K>(c, *L, ids, n, out);
        break;
    case RS_DTYPE_Q4_K:
        launch_embed<RS_DTYPE_Q4_K>(c, *L, ids, n, out);
        break;
    case RS_DTYPE_Q5_K:
        launch_embed<RS_DTYPE_Q5_K>(c, *L, ids, n, out);
        break;
    case RS_DTYPE_Q6_K:
        launch_embed<RS_DTYPE_Q6_K>(c, *L, ids, n, out);
        break;
    case RS_DTYPE_IQ4_NL:
        launch_embed<RS_DTYPE_IQ4_NL>(c, *L, ids, n, out);
        break;
    case RS_DTYPE_IQ4_XS:
        launch_embed<RS_DTYPE_IQ4_XS>(c, *L, ids, n, out);
        break;
    default:
        cw_fail(c, RS_ERR_UNSUPPORTED, "embed: type %s", rs_dtype_name(L->type));
        break;
    }
}

rs_status cw_gemm_init(cuda_backend *c, rs_error *err) {
    cublasHandle_t h = NULL;
    cublasStatus_t s = cublasCreate(&h);
    if (s != CUBLAS_STATUS_SUCCESS)
        return rs_error_set(err, RS_ERR_DEVICE, "cuBLAS initialisation failed: %s",
                            cublasGetStatusString(s));
    cublasSetStream(h, c->stream);
    c->cublas = h;
    return RS_OK;
}

void cw_gemm_free(cuda_backend *c) {
    if (c->cublas) cublasDestroy((cublasHandle_t)c->cublas);
    c->cublas = NULL;
}

void cw_gemm(cuda_backend *c, const rs_matmul *mm, int count, const float *x, int n, bool acc,
             bool half_out) {
    cw_chain_flush(c); /* cuBLAS works on the stream directly */
    const int64_t n_in = mm[0].w->n_in, elems = (int64_t)n * n_in;
    bool need_h = false, need_b = false;
    for (int i = 0; i < count; i++) {
        const int t = ((const cw_layout *)mm[i].w->extra)->type;
        need_h |= t != RS_DTYPE_F32 && t != RS_DTYPE_BF16;
        need_b |= t == RS_DTYPE_BF16;
    }
    const size_t half_bytes = cw_half_bytes(elems);
    char *xbuf = NULL;
    if (need_h || need_b) {
        if (!(xbuf = (char *)cw_scratch(c, CW_SCR_XH, 2 * half_bytes))) return;
        /* the producer of x may have written its f16 form already */
        const bool have_h = c->h16_src == x && c->h16_elems == elems;
        if ((need_h && !have_h) || need_b)
            cw_launch(c, false, to_half_kernel, dim3((unsigned)((elems + 255) / 256)), dim3(256), 0,
                      x, elems, need_h && !have_h ? (__half *)xbuf : (__half *)NULL,
                      need_b ? (__nv_bfloat16 *)(xbuf + half_bytes) : (__nv_bfloat16 *)NULL);
    }
    const int k = (int)n_in;
    uint64_t done = 0;
    for (int i = 0; i < count; i++) {
        if (i < 64 && (done >> i & 1)) continue;
        /* products of one 16-bit or quantized type and height share a batched call */
        const cw_layout *L = (const cw_layout *)mm[i].w->extra;
        int members[8], nm = 0;
        for (int j = i; j < count && j < 64 && nm < 8; j++) {
            const cw_layout *Lj = (const cw_layout *)mm[j].w->extra;
            if ((done >> j & 1) || Lj->type != L->type || Lj->n_out != L->n_out) continue;
            if (j > i && L->type == RS_DTYPE_F32) continue;
            members[nm++] = j;
            done |= 1ull << j;
        }
        if (nm == 0) members[nm++] = i; /* beyond the tracked 64: alone */
        if (!gemm_group(c, mm, members, nm, x, xbuf, half_bytes, n, k, acc, half_out)) return;
        for (int m = 0; m < nm; m++) {
            const rs_matmul &p = mm[members[m]];
            if (p.bias)
                cw_add_bias(c, p.y, (const float *)((const cw_layout *)p.bias->extra)->qs, n,
                            L->n_out);
        }
    }
}

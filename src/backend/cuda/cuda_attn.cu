/* cuda_attn.cu — causal attention over the KV cache ([kv head][pos][head_dim]).
 *
 * Decode (n <= 4 tokens, head_dim a power of two 8..256): flash-decoding. The
 * context is cut into chunks of C positions; block (chunk, kv head, token)
 * scores its chunk for up to GB query heads sharing that kv head (so GQA
 * reads K and V once), keeps the chunk's softmax max and sum, and writes a
 * partial output. The last block of a (token, kv head) to finish — found with
 * an atomic counter — merges the partials, so there is no second launch. The
 * grid covers the whole cache and blocks past pos[t] exit at once: positions
 * are read from device memory, so one captured graph serves every step.
 *
 * Prefill (n > 4): a tiled online-softmax kernel, 64 queries x 64 keys per
 * step in shared memory, f32 arithmetic. A last-resort generic kernel covers
 * head sizes the tiled one cannot (not a multiple of 4, or above 256). */
#include <algorithm>

#include "backend/cuda/cuda_common.cuh"

namespace {

struct dec_args {
    const float *q;
    const void *k, *v; /* this layer's [kv head][n_ctx][hd] */
    const int32_t *pos;
    float *out;
    float *part_o;   /* [n][n_head][n_split][hd] */
    float2 *part_ml; /* [n][n_head][n_split] (max, sum) */
    unsigned *cnt;   /* [n][n_head_kv][slices] */
    int8_t *xq;      /* int8 copy of out for the next matvec, or NULL */
    float2 *xd;
    int n_head, n_head_kv, G, slices, n_split, C, n_ctx;
    float scale;
};

__device__ __forceinline__ void load8(const __half *p, float *f) {
    const uint4 v = *(const uint4 *)p;
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 t = __half22float2(*(const __half2 *)&w[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}
__device__ __forceinline__ void load8(const float *p, float *f) {
    const float4 a = *(const float4 *)p, b = *(const float4 *)(p + 4);
    f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}
__device__ __forceinline__ float4 load4(const __half *p) {
    const uint2 v = *(const uint2 *)p;
    const float2 a = __half22float2(*(const __half2 *)&v.x), b = __half22float2(*(const __half2 *)&v.y);
    return make_float4(a.x, a.y, b.x, b.y);
}
__device__ __forceinline__ float4 load4(const float *p) { return *(const float4 *)p; }

/* Writes the finished heads of a block (vals [gn][HD], normalized) and their int8 form. */
template <int HD>
__device__ void dec_store(const dec_args &a, const float *vals, int gn, int t, int h0) {
    for (int i = threadIdx.x; i < gn * HD; i += blockDim.x)
        a.out[((size_t)t * a.n_head + h0) * HD + i] = vals[i];
    if (HD % 32 == 0 && a.xq) {
        const int lane = threadIdx.x & 31;
        for (int b = threadIdx.x >> 5; b < gn * HD / 32; b += blockDim.x >> 5) {
            const size_t e = ((size_t)t * a.n_head + h0) * HD + 32 * b;
            cw_q8_block(vals[32 * b + lane], lane, a.xq + e + lane, a.xd + e / 32);
        }
    }
}

template <typename KV, int LP, int GB>
__global__ void __launch_bounds__(128) attn_dec_kernel(const __grid_constant__ dec_args a) {
    constexpr int NT = 128, P = NT / LP, U = GB >= 8 ? 2 : 4, HD = LP * 8;
    extern __shared__ float smem[];
    float *sc = smem;                 /* [GB][C] scores, then weights */
    float *red = sc + GB * a.C;       /* [4][GB][HD] per-warp outputs */
    float *wsp = red + 4 * GB * HD;   /* [GB][n_split] merge weights */
    __shared__ float s_m[GB], s_l[GB];
    __shared__ int s_last;
    cw_griddep_launch();
    cw_griddep_wait();
    const int split = blockIdx.x, kvh = blockIdx.y / a.slices, slice = blockIdx.y % a.slices, t = blockIdx.z;
    const int p_end = max(1, min(a.pos[t] + 1, a.n_ctx)), start = split * a.C;
    if (start >= p_end) return;
    const int end = min(start + a.C, p_end), len = end - start, n_active = (p_end + a.C - 1) / a.C;
    const int g0 = slice * GB, gn = min(GB, a.G - g0), h0 = kvh * a.G + g0;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, li = tid % LP, po = tid / LP;
    const KV *kb = (const KV *)a.k + (size_t)kvh * a.n_ctx * HD + li * 8;
    const KV *vb = (const KV *)a.v + (size_t)kvh * a.n_ctx * HD + li * 8;

    float qr[GB][8];
#pragma unroll
    for (int g = 0; g < GB; g++) {
        if (g < gn) {
            load8(a.q + ((size_t)t * a.n_head + h0 + g) * HD + li * 8, qr[g]);
#pragma unroll
            for (int e = 0; e < 8; e++) qr[g][e] *= a.scale;
        } else {
#pragma unroll
            for (int e = 0; e < 8; e++) qr[g][e] = 0.0f;
        }
    }
    /* scores: LP lanes per position, 8 dims each; U positions in flight */
    for (int base = start; base < end; base += P * U) {
        float kr[U][8];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int p = base + po + u * P;
            if (p < end) load8(kb + (size_t)p * HD, kr[u]);
            else
#pragma unroll
                for (int e = 0; e < 8; e++) kr[u][e] = 0.0f;
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int p = base + po + u * P;
#pragma unroll
            for (int g = 0; g < GB; g++) {
                float d = 0.0f;
#pragma unroll
                for (int e = 0; e < 8; e++) d += qr[g][e] * kr[u][e];
#pragma unroll
                for (int o = LP / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
                if (li == 0 && p < end) sc[g * a.C + p - start] = d;
            }
        }
    }
    __syncthreads();
    for (int g = warp; g < GB; g += NT / 32) {
        float mx = -INFINITY;
        for (int i = lane; i < len; i += 32) mx = fmaxf(mx, sc[g * a.C + i]);
        mx = cw_warp_max(mx);
        float sum = 0.0f;
        for (int i = lane; i < len; i += 32) {
            const float e = __expf(sc[g * a.C + i] - mx);
            sc[g * a.C + i] = e;
            sum += e;
        }
        sum = cw_warp_sum(sum);
        if (lane == 0) {
            s_m[g] = mx;
            s_l[g] = sum;
        }
    }
    __syncthreads();
    /* weighted values */
    float acc[GB][8];
#pragma unroll
    for (int g = 0; g < GB; g++)
#pragma unroll
        for (int e = 0; e < 8; e++) acc[g][e] = 0.0f;
    for (int base = start; base < end; base += P * U) {
        float vr[U][8];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int p = base + po + u * P;
            if (p < end) load8(vb + (size_t)p * HD, vr[u]);
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int p = base + po + u * P;
            if (p >= end) continue;
#pragma unroll
            for (int g = 0; g < GB; g++) {
                const float w = sc[g * a.C + p - start];
#pragma unroll
                for (int e = 0; e < 8; e++) acc[g][e] += w * vr[u][e];
            }
        }
    }
#pragma unroll
    for (int o = LP; o < 32; o <<= 1)
#pragma unroll
        for (int g = 0; g < GB; g++)
#pragma unroll
            for (int e = 0; e < 8; e++) acc[g][e] += __shfl_xor_sync(0xffffffffu, acc[g][e], o);
    if (lane < LP)
#pragma unroll
        for (int g = 0; g < GB; g++)
#pragma unroll
            for (int e = 0; e < 8; e++) red[(warp * GB + g) * HD + li * 8 + e] = acc[g][e];
    __syncthreads();
    for (int i = tid; i < GB * HD; i += NT)
        red[i] = red[i] + red[GB * HD + i] + red[2 * GB * HD + i] + red[3 * GB * HD + i];
    __syncthreads();

    if (n_active == 1) { /* the whole context in one chunk: finish here */
        for (int i = tid; i < gn * HD; i += NT) red[i] /= s_l[i / HD];
        __syncthreads();
        dec_store<HD>(a, red, gn, t, h0);
        return;
    }
    const size_t pbase = ((size_t)t * a.n_head + h0) * a.n_split;
    for (int i = tid; i < gn * HD; i += NT)
        a.part_o[(pbase + (size_t)(i / HD) * a.n_split + split) * HD + i % HD] = red[i];
    if (tid < gn) a.part_ml[pbase + (size_t)tid * a.n_split + split] = make_float2(s_m[tid], s_l[tid]);
    __threadfence();
    __syncthreads();
    if (tid == 0) {
        unsigned *ctr = a.cnt + ((size_t)t * a.n_head_kv + kvh) * a.slices + slice;
        const unsigned prev = atomicAdd(ctr, 1u);
        s_last = prev == (unsigned)n_active - 1;
        if (s_last) *ctr = 0; /* ready for the next launch */
    }
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    /* merge: weight of split s = exp(m_s - M), total L = sum l_s exp(m_s - M) */
    for (int g = warp; g < gn; g += NT / 32) {
        const float2 *ml = a.part_ml + pbase + (size_t)g * a.n_split;
        float M = -INFINITY;
        for (int s = lane; s < n_active; s += 32) M = fmaxf(M, __ldcg(&ml[s]).x);
        M = cw_warp_max(M);
        float L = 0.0f;
        for (int s = lane; s < n_active; s += 32) {
            const float2 v = __ldcg(&ml[s]);
            const float w = __expf(v.x - M);
            wsp[g * a.n_split + s] = w;
            L += v.y * w;
        }
        L = cw_warp_sum(L);
        if (lane == 0) s_l[g] = L;
    }
    __syncthreads();
    for (int i = tid; i < gn * HD; i += NT) {
        const int g = i / HD;
        const float *po_ = a.part_o + (pbase + (size_t)g * a.n_split) * HD + i % HD;
        float o = 0.0f;
        for (int s = 0; s < n_active; s++) o += wsp[g * a.n_split + s] * __ldcg(po_ + (size_t)s * HD);
        red[i] = o / s_l[g];
    }
    __syncthreads();
    dec_store<HD>(a, red, gn, t, h0);
}

struct pre_args {
    const float *q;
    const void *k, *v;
    const int32_t *pos;
    float *out;
    float *scores; /* generic kernel only: [n][n_head][n_ctx] */
    int n, n_head, n_head_kv, hd, n_ctx;
    float scale;
};

constexpr int PB = 64; /* queries and keys per tile */

size_t pre_smem(int hd) { return (size_t)(2 * PB * (hd + 4) + PB * hd + PB * (PB + 1)) * sizeof(float); }

/* Tiled causal attention: block (query tile, head), 256 threads as 16 x 16;
 * thread (ty, tx) owns query rows ty + 16 i and key columns tx + 16 j. */
template <typename KV, int DCH>
__global__ void __launch_bounds__(256) attn_pre_kernel(const __grid_constant__ pre_args a) {
    extern __shared__ float smem[];
    const int hd = a.hd, ldq = hd + 4, hd4 = hd / 4;
    float *Qs = smem, *Ks = Qs + PB * ldq, *Vs = Ks + PB * ldq, *Ps = Vs + PB * hd;
    __shared__ int s_pos[PB];
    __shared__ int s_max;
    cw_griddep_launch();
    cw_griddep_wait();
    const int h = blockIdx.y, kvh = h / (a.n_head / a.n_head_kv);
    const int t0 = ((int)gridDim.x - 1 - (int)blockIdx.x) * PB; /* longest tiles first */
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    for (int i = tid; i < PB * hd4; i += 256) {
        const int r = i / hd4, c4 = i % hd4, t = t0 + r;
        float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (t < a.n) {
            v = *(const float4 *)(a.q + ((size_t)t * a.n_head + h) * hd + 4 * c4);
            v.x *= a.scale, v.y *= a.scale, v.z *= a.scale, v.w *= a.scale;
        }
        *(float4 *)(Qs + r * ldq + 4 * c4) = v;
    }
    if (tid < PB) s_pos[tid] = t0 + tid < a.n ? min(a.pos[t0 + tid], a.n_ctx - 1) : -1;
    __syncthreads();
    if (tid == 0) {
        int m = -1;
        for (int i = 0; i < PB; i++) m = max(m, s_pos[i]);
        s_max = m;
    }
    __syncthreads();
    const int maxp = s_max;
    const KV *kb = (const KV *)a.k + (size_t)kvh * a.n_ctx * hd, *vb = (const KV *)a.v + (size_t)kvh * a.n_ctx * hd;
    float m_r[4], l_r[4];
    float4 o[4][DCH];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        m_r[i] = -INFINITY;
        l_r[i] = 0.0f;
#pragma unroll
        for (int dc = 0; dc < DCH; dc++) o[i][dc] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
    for (int k0 = 0; k0 <= maxp; k0 += PB) {
        __syncthreads();
        for (int i = tid; i < PB * hd4; i += 256) {
            const int r = i / hd4, c4 = i % hd4, p = k0 + r;
            float4 kv = make_float4(0.0f, 0.0f, 0.0f, 0.0f), vv = kv;
            if (p <= maxp) {
                kv = load4(kb + (size_t)p * hd + 4 * c4);
                vv = load4(vb + (size_t)p * hd + 4 * c4);
            }
            *(float4 *)(Ks + r * ldq + 4 * c4) = kv;
            *(float4 *)(Vs + r * hd + 4 * c4) = vv;
        }
        __syncthreads();
        float s[4][4];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) s[i][j] = 0.0f;
        for (int d = 0; d < hd; d += 4) {
            float4 qv[4], kv[4];
#pragma unroll
            for (int i = 0; i < 4; i++) qv[i] = *(const float4 *)(Qs + (ty + 16 * i) * ldq + d);
#pragma unroll
            for (int j = 0; j < 4; j++) kv[j] = *(const float4 *)(Ks + (tx + 16 * j) * ldq + d);
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++)
                    s[i][j] += qv[i].x * kv[j].x + qv[i].y * kv[j].y + qv[i].z * kv[j].z + qv[i].w * kv[j].w;
        }
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int r = ty + 16 * i, rp = s_pos[r];
            float mx = -INFINITY;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                if (k0 + tx + 16 * j > rp) s[i][j] = -INFINITY;
                mx = fmaxf(mx, s[i][j]);
            }
#pragma unroll
            for (int off = 8; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            const float m_new = fmaxf(m_r[i], mx);
            float corr = 1.0f, rs = 0.0f;
            if (m_new == -INFINITY) {
#pragma unroll
                for (int j = 0; j < 4; j++) s[i][j] = 0.0f;
            } else {
                corr = __expf(m_r[i] - m_new);
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    s[i][j] = __expf(s[i][j] - m_new);
                    rs += s[i][j];
                }
            }
#pragma unroll
            for (int off = 8; off > 0; off >>= 1) rs += __shfl_xor_sync(0xffffffffu, rs, off);
            l_r[i] = l_r[i] * corr + rs;
            m_r[i] = m_new;
#pragma unroll
            for (int dc = 0; dc < DCH; dc++) {
                o[i][dc].x *= corr, o[i][dc].y *= corr, o[i][dc].z *= corr, o[i][dc].w *= corr;
            }
#pragma unroll
            for (int j = 0; j < 4; j++) Ps[r * (PB + 1) + tx + 16 * j] = s[i][j];
        }
        __syncthreads();
        for (int cc = 0; cc < PB; cc++) {
            float pr[4];
#pragma unroll
            for (int i = 0; i < 4; i++) pr[i] = Ps[(ty + 16 * i) * (PB + 1) + cc];
#pragma unroll
            for (int dc = 0; dc < DCH; dc++) {
                const int col = 4 * tx + 64 * dc;
                if (col >= hd) continue;
                const float4 vv = *(const float4 *)(Vs + cc * hd + col);
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    o[i][dc].x += pr[i] * vv.x, o[i][dc].y += pr[i] * vv.y;
                    o[i][dc].z += pr[i] * vv.z, o[i][dc].w += pr[i] * vv.w;
                }
            }
        }
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int t = t0 + ty + 16 * i;
        if (t >= a.n || !(l_r[i] > 0.0f)) continue;
        const float inv = 1.0f / l_r[i];
#pragma unroll
        for (int dc = 0; dc < DCH; dc++) {
            const int col = 4 * tx + 64 * dc;
            if (col >= hd) continue;
            const float4 v = o[i][dc];
            *(float4 *)(a.out + ((size_t)t * a.n_head + h) * hd + col) =
                make_float4(v.x * inv, v.y * inv, v.z * inv, v.w * inv);
        }
    }
}

__device__ float block_reduce(float v, bool is_max, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = is_max ? cw_warp_max(v) : cw_warp_sum(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : (is_max ? -INFINITY : 0.0f);
    v = is_max ? cw_warp_max(v) : cw_warp_sum(v);
    __syncthreads();
    return v;
}

/* Any head size: block (token, head), scores through global scratch. */
template <typename KV>
__global__ void __launch_bounds__(128) attn_generic_kernel(const __grid_constant__ pre_args a) {
    __shared__ float red[32];
    cw_griddep_launch();
    cw_griddep_wait();
    const int t = blockIdx.x, h = blockIdx.y, hd = a.hd, kvh = h / (a.n_head / a.n_head_kv);
    const int p_end = max(1, min(a.pos[t] + 1, a.n_ctx));
    const float *qh = a.q + ((size_t)t * a.n_head + h) * hd;
    const KV *kb = (const KV *)a.k + (size_t)kvh * a.n_ctx * hd, *vb = (const KV *)a.v + (size_t)kvh * a.n_ctx * hd;
    float *sc = a.scores + ((size_t)t * a.n_head + h) * a.n_ctx;
    float mx = -INFINITY;
    for (int p = threadIdx.x; p < p_end; p += blockDim.x) {
        float s = 0.0f;
        for (int d = 0; d < hd; d++) s += qh[d] * (float)kb[(size_t)p * hd + d];
        sc[p] = s * a.scale;
        mx = fmaxf(mx, sc[p]);
    }
    mx = block_reduce(mx, true, red);
    float sum = 0.0f;
    for (int p = threadIdx.x; p < p_end; p += blockDim.x) {
        sc[p] = __expf(sc[p] - mx);
        sum += sc[p];
    }
    sum = block_reduce(sum, false, red); /* its barrier also publishes sc */
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.0f;
        for (int p = 0; p < p_end; p++) acc += sc[p] * (float)vb[(size_t)p * hd + d];
        a.out[((size_t)t * a.n_head + h) * hd + d] = acc / sum;
    }
}

template <typename KV, int GB>
void launch_dec_lp(cuda_backend *c, int lp, dim3 grid, size_t smem, const dec_args &a) {
    void (*k)(dec_args) = NULL;
    switch (lp) {
    case 1: k = attn_dec_kernel<KV, 1, GB>; break;
    case 2: k = attn_dec_kernel<KV, 2, GB>; break;
    case 4: k = attn_dec_kernel<KV, 4, GB>; break;
    case 8: k = attn_dec_kernel<KV, 8, GB>; break;
    case 16: k = attn_dec_kernel<KV, 16, GB>; break;
    default: k = attn_dec_kernel<KV, 32, GB>; break;
    }
    if (smem > 48 * 1024)
        cw_check(c, cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), "attention setup");
    cw_launch(c, true, k, grid, dim3(128), smem, a);
}

/* Flash-decoding launch; false when this shape needs another kernel. */
bool attn_decode(cuda_backend *c, const float *q, const rs_kv *kv, size_t layer_off, const int32_t *pos, int n,
                 const rs_attn *at, float *out) {
    const int hd = at->head_dim, lp = hd / 8;
    if (hd % 8 || hd > 256 || (lp & (lp - 1))) return false;
    const int G = at->n_head / at->n_head_kv;
    int GB = G >= 8 ? 8 : (G > 4 ? 8 : (G > 2 ? 4 : G));
    if (kv->d.type == RS_KV_F32) GB = 8;
    const int slices = (G + GB - 1) / GB;
    int C = c->tune.attn_chunk > 0 ? c->tune.attn_chunk : 128;
    while ((kv->d.n_ctx + C - 1) / C > 512) C *= 2;
    const int n_split = (kv->d.n_ctx + C - 1) / C;
    const size_t smem = (size_t)(GB * C + 4 * GB * hd + GB * n_split) * sizeof(float);
    if (smem > c->smem_optin) return false;
    const size_t n_part = (size_t)n * at->n_head * n_split;
    const size_t o_bytes = (n_part * hd * sizeof(float) + 255) / 256 * 256;
    char *part = (char *)cw_scratch(c, CW_SCR_PART, o_bytes + n_part * sizeof(float2));
    unsigned *cnt = (unsigned *)cw_scratch(c, CW_SCR_CNT, (size_t)n * at->n_head_kv * slices * sizeof(unsigned));
    if (!part || !cnt) return true;
    const int64_t elems = (int64_t)n * at->n_head * hd;
    void *q8 = hd % 32 == 0 ? cw_q8_for_producer(c, elems) : NULL;
    dec_args a;
    a.q = q;
    a.k = (const char *)kv->k + layer_off;
    a.v = (const char *)kv->v + layer_off;
    a.pos = pos;
    a.out = out;
    a.part_o = (float *)part;
    a.part_ml = (float2 *)(part + o_bytes);
    a.cnt = cnt;
    a.xq = (int8_t *)q8;
    a.xd = q8 ? cw_q8_scales(q8, elems) : NULL;
    a.n_head = at->n_head, a.n_head_kv = at->n_head_kv, a.G = G, a.slices = slices;
    a.n_split = n_split, a.C = C, a.n_ctx = kv->d.n_ctx, a.scale = at->scale;
    const dim3 grid(n_split, at->n_head_kv * slices, n);
    if (kv->d.type == RS_KV_F32) launch_dec_lp<float, 8>(c, lp, grid, smem, a);
    else if (GB == 1) launch_dec_lp<__half, 1>(c, lp, grid, smem, a);
    else if (GB == 2) launch_dec_lp<__half, 2>(c, lp, grid, smem, a);
    else if (GB == 4) launch_dec_lp<__half, 4>(c, lp, grid, smem, a);
    else launch_dec_lp<__half, 8>(c, lp, grid, smem, a);
    if (q8) {
        c->q8_src = out;
        c->q8_elems = elems;
    }
    return true;
}

template <typename KV>
void launch_pre(cuda_backend *c, const pre_args &a) {
    const size_t smem = pre_smem(a.hd);
    void (*k)(pre_args) = a.hd <= 64 ? attn_pre_kernel<KV, 1> : (a.hd <= 128 ? attn_pre_kernel<KV, 2> : attn_pre_kernel<KV, 4>);
    cw_check(c, cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), "attention setup");
    cw_launch(c, a.n <= CW_MV_MAX_TOK, k, dim3((a.n + PB - 1) / PB, a.n_head), dim3(256), smem, a);
}

} // namespace

void cw_attention(cuda_backend *c, const float *q, rs_kv *kv, int layer, const int32_t *pos, int n,
                  const rs_attn *at, float *out) {
    const size_t layer_off = (size_t)layer * kv->d.n_head_kv * kv->d.n_ctx * kv->d.head_dim * kv->elem;
    if (n <= c->tune.attn_decode_max && attn_decode(c, q, kv, layer_off, pos, n, at, out)) return;
    pre_args a = {};
    a.q = q;
    a.k = (const char *)kv->k + layer_off;
    a.v = (const char *)kv->v + layer_off;
    a.pos = pos;
    a.out = out;
    a.n = n, a.n_head = at->n_head, a.n_head_kv = at->n_head_kv, a.hd = at->head_dim, a.n_ctx = kv->d.n_ctx;
    a.scale = at->scale;
    const bool f16 = kv->d.type == RS_KV_F16;
    if (a.hd % 4 == 0 && a.hd <= 256 && pre_smem(a.hd) <= c->smem_optin) {
        if (f16) launch_pre<__half>(c, a);
        else launch_pre<float>(c, a);
        return;
    }
    a.scores = (float *)cw_scratch(c, CW_SCR_SCORE, (size_t)n * at->n_head * kv->d.n_ctx * sizeof(float));
    if (!a.scores) return;
    const dim3 grid(n, at->n_head);
    if (f16) cw_launch(c, n <= CW_MV_MAX_TOK, attn_generic_kernel<__half>, grid, dim3(128), 0, a);
    else cw_launch(c, n <= CW_MV_MAX_TOK, attn_generic_kernel<float>, grid, dim3(128), 0, a);
}

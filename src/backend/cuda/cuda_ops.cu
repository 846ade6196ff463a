/* cuda_ops.cu — the small per-token kernels: (residual add +) RMSNorm, RoPE
 * on q and k with the KV-cache store (F32, F16 or Q8_0), SiLU * up, adds, the
 * deferred norm's settling; plus the one-time kernels (weight repacking,
 * random fills for the kernel lab, cache reads).
 *
 * The norm and SwiGLU kernels can also write the int8 form of their output
 * (cw_q8_block) so the matvec that follows needs no quantization launch;
 * they then tag the backend (q8_src), which the next matmul checks. */
#include <algorithm>
#include <cfloat>
#include <type_traits>

#include "backend/cuda/cuda_common.cuh"

namespace {

__device__ float block_sum(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = cw_warp_sum(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.0f;
    v = cw_warp_sum(v);
    __syncthreads();
    return v;
}

/* One block per token: x (+= y), then out = x / rms(x) * w (and its int8
 * form). Each thread keeps its (at most E) elements in registers so every
 * load is issued before any store; thread i owns elements i + k * blockDim,
 * so warp w holds whole 32-value blocks for the int8 form. */
template <int E>
__global__ void __launch_bounds__(1024)
    rmsnorm_kernel(float *x, const float *y, const float *w, float eps, int dim, float *out,
                   int8_t *xq, cw_q8s *xd, __half *oh) {
    __shared__ float red[32];
    cw_griddep_launch();
    cw_griddep_wait();
    const size_t t = blockIdx.x;
    const int tid = threadIdx.x, bd = blockDim.x, lane = tid & 31;
    float *xr = x + t * dim;
    float v[E];
    float ss = 0.0f;
#pragma unroll
    for (int e = 0; e < E; e++) {
        const int i = tid + e * bd;
        v[e] = i < dim ? xr[i] : 0.0f;
    }
    if (y) {
#pragma unroll
        for (int e = 0; e < E; e++) {
            const int i = tid + e * bd;
            if (i < dim) v[e] += y[t * dim + i];
        }
#pragma unroll
        for (int e = 0; e < E; e++) {
            const int i = tid + e * bd;
            if (i < dim) xr[i] = v[e];
        }
    }
#pragma unroll
    for (int e = 0; e < E; e++) ss += v[e] * v[e];
    ss = block_sum(ss, red);
    const float scale = 1.0f / sqrtf(ss / (float)dim + eps);
    float o[E];
#pragma unroll
    for (int e = 0; e < E; e++) {
        const int i = tid + e * bd;
        o[e] = i < dim ? v[e] * scale * w[i] : 0.0f;
    }
#pragma unroll
    for (int e = 0; e < E; e++) {
        const int i = tid + e * bd;
        if (i < dim) out[t * dim + i] = o[e];
        if (oh && i < dim) oh[t * dim + i] = __float2half_rn(o[e]);
    }
    if (!xq) return;
    /* int8 form: dim % 32 == 0, so each warp's 32 values of step e are one
     * block, all inside the row or all past it. The E blocks' reductions are
     * interleaved so their shuffles overlap. */
    float am[E];
    int qv[E], sl[E], sh[E];
#pragma unroll
    for (int e = 0; e < E; e++) am[e] = fabsf(o[e]);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
#pragma unroll
        for (int e = 0; e < E; e++) am[e] = fmaxf(am[e], __shfl_xor_sync(0xffffffffu, am[e], off));
#pragma unroll
    for (int e = 0; e < E; e++)
        sl[e] = qv[e] = am[e] > 0.0f ? __float2int_rn(o[e] * (127.0f / am[e])) : 0;
#pragma unroll
    for (int off = 8; off > 0; off >>= 1)
#pragma unroll
        for (int e = 0; e < E; e++) sl[e] += __shfl_xor_sync(0xffffffffu, sl[e], off);
#pragma unroll
    for (int e = 0; e < E; e++) sh[e] = __shfl_sync(0xffffffffu, sl[e], 16);
#pragma unroll
    for (int e = 0; e < E; e++) {
        const int i = tid + e * bd;
        if (e * bd + (tid - lane) >= dim) continue;
        xq[t * dim + i] = (int8_t)qv[e];
        if (lane == 0) {
            const float d = am[e] / 127.0f;
            xd[(t * dim + i) / 32] =
                make_float4(d, d * (float)(sl[e] + sh[e]), d * (float)sl[e], d * (float)sh[e]);
        }
    }
}

/* Rows wider than the register kernel holds. */
__global__ void rmsnorm_wide_kernel(float *x, const float *y, const float *w, float eps, int dim,
                                    float *out, __half *oh) {
    __shared__ float red[32];
    cw_griddep_launch();
    cw_griddep_wait();
    const size_t t = blockIdx.x;
    float *xr = x + t * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = xr[i];
        if (y) {
            v += y[t * dim + i];
            xr[i] = v;
        }
        ss += v * v;
    }
    ss = block_sum(ss, red);
    const float scale = 1.0f / sqrtf(ss / (float)dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        const float o = xr[i] * scale * w[i];
        out[t * dim + i] = o;
        if (oh) oh[t * dim + i] = __float2half_rn(o);
    }
}

template <typename KV> __device__ __forceinline__ KV to_kv(float v);
template <> __device__ __forceinline__ float to_kv<float>(float v) {
    return v;
}
template <> __device__ __forceinline__ __half to_kv<__half>(float v) {
    return __float2half_rn(v);
}

/* One Q8_0 block (32 dims of a head row, past-the-row lanes holding 0) by the
 * whole warp: int8 of v at q (when in the row), the scale from lane 0. */
__device__ __forceinline__ void store_q8(float v, bool in, int lane, int8_t *q, __half *scale) {
    const float amax = cw_warp_max(fabsf(v));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    if (in) *q = (int8_t)max(-127, min(127, (int)roundf(v * id)));
    if (lane == 0) *scale = __float2half_rn(d);
}

/* Block (token, head): heads 0..n_head-1 are q, the rest k. Each thread
 * rotates a pair with its own cos/sin (double-precision angle, as the
 * reference); k heads then store the rotated k and the v head at pos.
 * KV int8_t means a Q8_0 cache (scales ksc/vsc, nsb per row), cw_q4 a Q4_0 cache. */
/* tab_mode: 0 computes each angle; 1 also stores (cos, sin) to tab from the
 * head-0 blocks; 2 reads them from tab (a later layer of the same batch). */
template <typename KV>
__global__ void rope_store_kernel(float *q, float *k, const float *v, const int32_t *pos,
                                  const rs_rope rope, int n_head, int n_head_kv, int hd, KV *kc,
                                  KV *vc, __half *ksc, __half *vsc, int nsb, int n_ctx, float2 *tab,
                                  int tab_mode) {
    cw_griddep_launch();
    cw_griddep_wait();
    const int t = blockIdx.x, h = blockIdx.y, p = pos[t], half = rope.n_rot / 2;
    const bool is_k = h >= n_head;
    const int hk = h - n_head;
    float *base = is_k ? k + ((size_t)t * n_head_kv + hk) * hd : q + ((size_t)t * n_head + h) * hd;
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
        float cs, sn;
        if (tab_mode == 2) {
            const float2 e = tab[(size_t)t * half + j];
            cs = e.x, sn = e.y;
        } else {
            double s, co;
            sincos((double)p * (double)rope.inv_freq[j], &s, &co);
            cs = (float)(co * rope.attn_factor), sn = (float)(s * rope.attn_factor);
            if (tab_mode == 1 && h == 0) tab[(size_t)t * half + j] = make_float2(cs, sn);
        }
        const int ia = rope.neox ? j : 2 * j, ib = rope.neox ? j + half : 2 * j + 1;
        const float x0 = base[ia], x1 = base[ib];
        base[ia] = x0 * cs - x1 * sn;
        base[ib] = x0 * sn + x1 * cs;
    }
    if (!is_k || p < 0 || p >= n_ctx) return; /* uniform in the block */
    __syncthreads();
    const size_t row = (size_t)hk * n_ctx + p, dst = row * hd;
    const float *vs = v + ((size_t)t * n_head_kv + hk) * hd;
    if constexpr (std::is_same<KV, cw_q4>::value) { /* hd % 32 == 0: whole blocks */
        const int lane = threadIdx.x & 31, nw = blockDim.x >> 5;
        uint8_t *kr = (uint8_t *)kc + row * (hd / 2), *vr = (uint8_t *)vc + row * (hd / 2);
        for (int b = threadIdx.x >> 5; b < nsb; b += nw) {
            cw_store_q4(kr + 16 * b, ksc + row * nsb + b, base[32 * b + lane], lane);
            cw_store_q4(vr + 16 * b, vsc + row * nsb + b, vs[32 * b + lane], lane);
        }
    } else if constexpr (std::is_same<KV, int8_t>::value) {
        /* warp w takes the row's blocks w, w + warps, ...: whole warps, so the
         * block maximum is one shuffle reduction */
        const int lane = threadIdx.x & 31, nw = blockDim.x >> 5;
        for (int b = threadIdx.x >> 5; b < nsb; b += nw) {
            const int d = 32 * b + lane;
            const bool in = d < hd;
            store_q8(in ? base[d] : 0.0f, in, lane, kc + dst + d, ksc + row * nsb + b);
            store_q8(in ? vs[d] : 0.0f, in, lane, vc + dst + d, vsc + row * nsb + b);
        }
    } else {
        for (int d = threadIdx.x; d < hd; d += blockDim.x) {
            const float kv = base[d], vv = vs[d];
            kc[dst + d] = to_kv<KV>(kv);
            vc[dst + d] = to_kv<KV>(vv);
        }
    }
}

/* Prompts (F32/F16 cache): block = token, all its heads; the (cos, sin) of
 * each pair computed once per token into shared memory (or read from tab,
 * tab_mode as above). Pair i of the token is head i / half, pair i % half,
 * so consecutive threads touch consecutive values. */
template <typename KV>
__global__ void __launch_bounds__(256)
    rope_tok_kernel(float *q, float *k, const float *v, const int32_t *pos, const rs_rope rope,
                    int n_head, int n_head_kv, int hd, KV *kc, KV *vc, int n_ctx, float2 *tab,
                    int tab_mode) {
    extern __shared__ float2 cs[]; /* [half] (cos, sin) */
    cw_griddep_launch();
    cw_griddep_wait();
    const int t = blockIdx.x, p = pos[t], half = rope.n_rot / 2;
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
        float2 e;
        if (tab_mode == 2) {
            e = tab[(size_t)t * half + j];
        } else {
            double s, co;
            sincos((double)p * (double)rope.inv_freq[j], &s, &co);
            e = make_float2((float)(co * rope.attn_factor), (float)(s * rope.attn_factor));
            if (tab_mode == 1) tab[(size_t)t * half + j] = e;
        }
        cs[j] = e;
    }
    __syncthreads();
    const bool store = p >= 0 && p < n_ctx;
    const int pairs = (n_head + n_head_kv) * half;
#pragma unroll 4
    for (int i = threadIdx.x; i < pairs; i += blockDim.x) {
        const int h = i / half, j = i % half;
        const bool is_k = h >= n_head;
        float *base = is_k ? k + ((size_t)t * n_head_kv + h - n_head) * hd
                           : q + ((size_t)t * n_head + h) * hd;
        const int ia = rope.neox ? j : 2 * j, ib = rope.neox ? j + half : 2 * j + 1;
        const float x0 = base[ia], x1 = base[ib], c = cs[j].x, sn = cs[j].y;
        const float r0 = x0 * c - x1 * sn, r1 = x0 * sn + x1 * c;
        base[ia] = r0;
        base[ib] = r1;
        if (is_k && store) {
            const size_t dst = ((size_t)(h - n_head) * n_ctx + p) * hd;
            kc[dst + ia] = to_kv<KV>(r0);
            kc[dst + ib] = to_kv<KV>(r1);
        }
    }
    if (!store) return;
    /* v, and the dims of k past the rotated ones */
    const float *kt = k + (size_t)t * n_head_kv * hd, *vt = v + (size_t)t * n_head_kv * hd;
    for (int i = threadIdx.x; i < n_head_kv * hd; i += blockDim.x) {
        const int hk = i / hd, d = i % hd;
        const size_t dst = ((size_t)hk * n_ctx + p) * hd + d;
        vc[dst] = to_kv<KV>(vt[i]);
        if (d >= rope.n_rot) kc[dst] = to_kv<KV>(kt[i]);
    }
}

__device__ __forceinline__ float silu_mul(float g, float u) {
    return g / (1.0f + expf(-g)) * u;
}
__device__ __forceinline__ float silu_mul(__half g, __half u) {
    return silu_mul(__half2float(g), __half2float(u));
}

/* In: float, or __half (prompt products written as F16 by cuBLAS). */
template <typename In>
__global__ void swiglu_kernel(const In *g, const In *u, int64_t n, float *out, int8_t *xq,
                              cw_q8s *xd, __half *oh) {
    cw_griddep_launch();
    cw_griddep_wait();
    if (xq) { /* one warp per 32 values */
        const int64_t b = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
        const int lane = threadIdx.x & 31;
        if (b >= n / 32) return;
        const int64_t i = 32 * b + lane;
        const float v = silu_mul(g[i], u[i]);
        out[i] = v;
        cw_q8_block(v, lane, xq + i, xd + b);
        return;
    }
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float h = silu_mul(g[i], u[i]);
        out[i] = h;
        if (oh) oh[i] = __float2half_rn(h);
    }
}

__global__ void add_kernel(float *x, const float *y, int64_t n) {
    cw_griddep_launch();
    cw_griddep_wait();
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        x[i] += y[i];
}

/* One block: the greedy pick by rs_logits_argmax's rule (NaN as -inf, +inf as FLT_MAX, the
 * lowest id among equals, 0 when nothing beats -inf), handed to the next step (ids[0]) and
 * to the host (picks[pos % n_picks], page-locked memory), then the position moved on. With
 * a rule (a greedy chain with penalties) the pick joins its window and the unmoved RNG
 * state goes to rngs, as sample_pick's does. */
__global__ void __launch_bounds__(1024)
    greedy_pick_kernel(const float *logits, int n, rs_sample_rule *rule, int32_t *ids, int32_t *pos,
                       int32_t *picks, uint64_t *rngs, int n_picks) {
    cw_griddep_wait();
    float best = -INFINITY;
    int at = n; /* a thread scans its ids upwards, so only a larger value moves it */
    auto take = [&](float x, int i) {
        x = x == x ? fminf(x, FLT_MAX) : -INFINITY;
        if (x > best) best = x, at = i;
    };
    /* chunks of eight 16-byte loads a thread, all in flight before the compares */
    constexpr int U = 8;
    const int n4 = (reinterpret_cast<uintptr_t>(logits) & 15) ? 0 : n / 4;
    const float4 *l4 = reinterpret_cast<const float4 *>(logits);
    for (int base = 0; base < n4; base += U * (int)blockDim.x) {
        float4 v[U];
#pragma unroll
        for (int u = 0; u < U; u++) /* an index kept in range, so no load waits on a branch */
            v[u] = l4[min(base + u * (int)blockDim.x + (int)threadIdx.x, n4 - 1)];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int j = base + u * (int)blockDim.x + (int)threadIdx.x;
            if (j >= n4) continue;
            take(v[u].x, 4 * j), take(v[u].y, 4 * j + 1), take(v[u].z, 4 * j + 2);
            take(v[u].w, 4 * j + 3);
        }
    }
    for (int i = 4 * n4 + (int)threadIdx.x; i < n; i += blockDim.x) take(logits[i], i);
    __shared__ float s_best[32];
    __shared__ int s_at[32];
    for (int off = 16; off > 0; off >>= 1) {
        const float b = __shfl_xor_sync(0xffffffffu, best, off);
        const int a = __shfl_xor_sync(0xffffffffu, at, off);
        if (b > best || (b == best && a < at)) best = b, at = a;
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) s_best[warp] = best, s_at[warp] = at;
    __syncthreads();
    if (warp != 0) return;
    const int n_warps = blockDim.x >> 5;
    best = lane < n_warps ? s_best[lane] : -INFINITY;
    at = lane < n_warps ? s_at[lane] : n;
    for (int off = 16; off > 0; off >>= 1) {
        const float b = __shfl_xor_sync(0xffffffffu, best, off);
        const int a = __shfl_xor_sync(0xffffffffu, at, off);
        if (b > best || (b == best && a < at)) best = b, at = a;
    }
    if (lane != 0) return;
    const int id = at < n ? at : 0;
    const int p = pos[0];
    ids[0] = id;
    *(volatile int32_t *)&picks[p % n_picks] = id;
    if (rule) {
        cw_window_push(&rule->pen, id);
        for (int j = 0; j < 4; j++) rngs[4 * (p % n_picks) + j] = rule->rng[j];
    }
    __threadfence_system();
    pos[0] = p + 1;
}

__global__ void add_bias_kernel(float *y, const float *b, int64_t total, int64_t n_out) {
    cw_griddep_launch();
    cw_griddep_wait();
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] += b[i % n_out];
}

__device__ __forceinline__ void copy_u16(uint8_t *dst, const uint8_t *src, int bytes) {
    for (int i = 0; i < bytes; i += 2) *(uint16_t *)(dst + i) = *(const uint16_t *)(src + i);
}

/* IQ4_NL / IQ4_XS quant bytes (2-byte aligned) in the device's nibble order (cw_iq4nl_order). */
__device__ __forceinline__ void copy_iq4nl(uint8_t *dst, const uint8_t *src, int bytes) {
    for (int i = 0; i < bytes; i += 4) {
        const uint32_t w =
            *(const uint16_t *)(src + i) | (uint32_t) * (const uint16_t *)(src + i + 2) << 16;
        *(uint32_t *)(dst + i) = cw_iq4nl_order(w);
    }
}

/* The 12 bytes of 6-bit scales and mins of a Q4_K/Q5_K block to the byte
 * layout of cuda_common.cuh: sc[2p] sc[2p+1] m[2p] m[2p+1] per pair p. */
__device__ void unpack_k_scales(const uint8_t *q, uint8_t *sm) {
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        if (j < 4) {
            sc = q[j] & 63;
            m = q[j + 4] & 63;
        } else {
            sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
            m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
        sm[4 * (j >> 1) + (j & 1)] = sc;
        sm[4 * (j >> 1) + 2 + (j & 1)] = m;
    }
}

/* Q3_K's 12 bytes of 6-bit scales (stored + 32) to 16 signed bytes: low
 * nibbles in bytes 0..7 (sub-blocks 0..7 low, 8..15 high), top two bits in
 * bytes 8..11 (sub-block j: byte 8 + j % 4, bits 2 (j / 4)). */
__device__ void unpack_q3_scales(const uint8_t *s, uint8_t *sc) {
    for (int j = 0; j < 16; j++) {
        const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
        const int hi = (s[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
        sc[j] = (uint8_t)(int8_t)((lo | (hi << 4)) - 32);
    }
}

/* IQ4_XS's scales_h (2 bytes) and scales_l[4] to 8 signed bytes, the multipliers of d
 * (ls - 32; rs_iq4_xs_scale). */
__device__ void unpack_iq4xs_scales(const uint8_t *s, uint8_t *sc) {
    const uint32_t h = s[0] | (uint32_t)s[1] << 8;
    for (int j = 0; j < 8; j++) {
        const int ls = ((s[2 + j / 2] >> (4 * (j % 2))) & 0xF) | (int)(((h >> (2 * j)) & 3) << 4);
        sc[j] = (uint8_t)(int8_t)(ls - 32);
    }
}

/* GGUF blocks (all offsets even) to the split arrays of cuda_common.cuh. */
__global__ void repack_kernel(int type, const uint8_t *raw, int64_t nblk, int64_t blk0, int tsize,
                              const cw_layout L) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nblk) return;
    const uint8_t *s = raw + i * tsize;
    const int64_t b = blk0 + i;
    uint8_t *qs = (uint8_t *)L.qs, *aux = (uint8_t *)L.aux, *dm = (uint8_t *)L.dm;
    switch (type) {
    case RS_DTYPE_Q4_0:
        copy_u16(dm + b * 2, s, 2);
        copy_u16(qs + b * 16, s + 2, 16);
        break;
    case RS_DTYPE_IQ4_NL:
        copy_u16(dm + b * 2, s, 2);
        copy_iq4nl(qs + b * 16, s + 2, 16);
        break;
    case RS_DTYPE_Q4_1:
        copy_u16(dm + b * 4, s, 4);
        copy_u16(qs + b * 16, s + 4, 16);
        break;
    case RS_DTYPE_Q5_0:
        copy_u16(dm + b * 2, s, 2);
        copy_u16(aux + b * 4, s + 2, 4);
        copy_u16(qs + b * 16, s + 6, 16);
        break;
    case RS_DTYPE_Q5_1:
        copy_u16(dm + b * 4, s, 4);
        copy_u16(aux + b * 4, s + 4, 4);
        copy_u16(qs + b * 16, s + 8, 16);
        break;
    case RS_DTYPE_Q8_0:
        copy_u16(dm + b * 2, s, 2);
        copy_u16(qs + b * 32, s + 2, 32);
        break;
    case RS_DTYPE_Q6_K:
        copy_u16(qs + b * 208, s, 208);
        copy_u16(dm + b * 2, s + 208, 2);
        break;
    case RS_DTYPE_Q2_K: /* scales[16] qs[64] d dmin */
        copy_u16(aux + b * 16, s, 16);
        copy_u16(qs + b * 64, s + 16, 64);
        copy_u16(dm + b * 4, s + 80, 4);
        break;
    case RS_DTYPE_Q3_K: /* hmask[32] qs[64] scales[12] d */
        copy_u16(aux + b * 48, s, 32);
        copy_u16(qs + b * 64, s + 32, 64);
        unpack_q3_scales(s + 96, aux + b * 48 + 32);
        copy_u16(dm + b * 2, s + 108, 2);
        break;
    case RS_DTYPE_Q4_K:
        copy_u16(dm + b * 4, s, 4);
        unpack_k_scales(s + 4, aux + b * 16);
        copy_u16(qs + b * 128, s + 16, 128);
        break;
    case RS_DTYPE_Q5_K:
        copy_u16(dm + b * 4, s, 4);
        copy_u16(aux + b * 48, s + 16, 32);
        unpack_k_scales(s + 4, aux + b * 48 + 32);
        copy_u16(qs + b * 128, s + 48, 128);
        break;
    case RS_DTYPE_IQ4_XS: /* d scales_h scales_l[4] qs[128] */
        copy_u16(dm + b * 2, s, 2);
        unpack_iq4xs_scales(s + 2, aux + b * 8);
        copy_iq4nl(qs + b * 128, s + 8, 128);
        break;
    default:
        break;
    }
}

__device__ __forceinline__ uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
__device__ __forceinline__ float unit(uint64_t r) {
    return (float)(r >> 40) * (2.0f / 16777216.0f) - 1.0f;
}
__device__ __forceinline__ uint16_t half_bits(float v) {
    return __half_as_ushort(__float2half_rn(v));
}

/* Random weights: uniform [-1, 1) for plain types; quantized blocks of random
 * bits with small positive scales (and negative offsets where the type has them). */
__global__ void fill_kernel(uint8_t *p, int type, size_t n_bytes, size_t tsize, float scale,
                            uint64_t seed) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const uint64_t r = mix64(seed ^ mix64(i));
    if (type == RS_DTYPE_F32) {
        if (i < n_bytes / 4) ((float *)p)[i] = scale * unit(r);
        return;
    }
    if (type == RS_DTYPE_F16 || type == RS_DTYPE_BF16) {
        if (i >= n_bytes / 2) return;
        const float v = scale * unit(r);
        ((uint16_t *)p)[i] =
            type == RS_DTYPE_F16 ? half_bits(v) : (uint16_t)(__float_as_uint(v) >> 16);
        return;
    }
    if (i >= n_bytes / tsize) return;
    uint8_t *b = p + i * tsize;
    uint64_t s = r;
    for (size_t k = 0; k < tsize; k += 2) {
        s = mix64(s);
        *(uint16_t *)(b + k) = (uint16_t)s;
    }
    /* d so that d * (typical quant magnitude) is about `scale` */
    float div = 8.0f;
    if (type == RS_DTYPE_Q8_0)
        div = 64.0f;
    else if (type == RS_DTYPE_Q4_K || type == RS_DTYPE_Q5_K)
        div = 300.0f;
    else if (type == RS_DTYPE_Q6_K)
        div = 1000.0f;
    else if (type == RS_DTYPE_Q2_K)
        div = 12.0f;
    else if (type == RS_DTYPE_Q3_K)
        div = 40.0f;
    else if (type == RS_DTYPE_Q5_0 || type == RS_DTYPE_Q5_1)
        div = 16.0f;
    else if (type == RS_DTYPE_IQ4_NL)
        div = 64.0f;
    else if (type == RS_DTYPE_IQ4_XS) /* random 6-bit scales: multipliers of 16 on average */
        div = 1024.0f;
    const float d = scale * (1.0f + 0.5f * unit(mix64(r + 1))) / div;
    switch (type) {
    case RS_DTYPE_Q4_1:
    case RS_DTYPE_Q5_1:
    case RS_DTYPE_Q4_K:
    case RS_DTYPE_Q5_K:
        *(uint16_t *)b = half_bits(d);
        *(uint16_t *)(b + 2) =
            half_bits(type == RS_DTYPE_Q4_K || type == RS_DTYPE_Q5_K ? d : -8.0f * d);
        break;
    case RS_DTYPE_Q6_K:
        *(uint16_t *)(b + 208) = half_bits(d);
        break;
    case RS_DTYPE_Q2_K:
        *(uint16_t *)(b + 80) = half_bits(d);
        *(uint16_t *)(b + 82) = half_bits(d);
        break;
    case RS_DTYPE_Q3_K:
        *(uint16_t *)(b + 108) = half_bits(d);
        break;
    default:
        *(uint16_t *)b = half_bits(d);
        break;
    }
}

template <typename KV>
__global__ void kv_convert_kernel(const KV *k, const KV *v, const __half *ks, const __half *vs,
                                  int nsb, int n_head_kv, int n_ctx, int hd, int n_pos, float *ko,
                                  float *vo) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)n_pos * n_head_kv * hd) return;
    const int64_t p = i / ((int64_t)n_head_kv * hd), h = (i / hd) % n_head_kv, d = i % hd;
    const int64_t row = h * n_ctx + p, src = row * hd + d;
    if constexpr (std::is_same<KV, int8_t>::value) {
        ko[i] = (float)k[src] * __half2float(ks[row * nsb + d / 32]);
        vo[i] = (float)v[src] * __half2float(vs[row * nsb + d / 32]);
    } else if constexpr (std::is_same<KV, cw_q4>::value) {
        const int64_t byte = row * (hd / 2) + 4 * (d / 8) + d % 4, sh = 4 * ((d / 4) % 2);
        ko[i] = (float)((k[byte].b >> sh & 15) - 8) * __half2float(ks[row * nsb + d / 32]);
        vo[i] = (float)((v[byte].b >> sh & 15) - 8) * __half2float(vs[row * nsb + d / 32]);
    } else {
        ko[i] = (float)k[src];
        vo[i] = (float)v[src];
    }
}

/* Q8_0 cache contents for tests: random int8 in [-127, 127], scales with
 * d * 127 in [0.5, 1), so values lie within [-1, 1]. */
__global__ void fill_q8kv_kernel(int8_t *q, size_t n_q, __half *sc, size_t n_sc, uint64_t seed) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const uint64_t r = mix64(seed ^ mix64(i));
    if (i < n_q) q[i] = (int8_t)((int)(r % 255u) - 127);
    if (i < n_sc) sc[i] = __float2half_rn((0.75f + 0.25f * unit(mix64(r + 7))) / 127.0f);
}

/* Q4_0 cache contents for tests: random nibbles, scales with d * 8 in [0.5, 1), so values
 * lie within [-1, 1]. */
__global__ void fill_q4kv_kernel(uint8_t *q, size_t n_q, __half *sc, size_t n_sc, uint64_t seed) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const uint64_t r = mix64(seed ^ mix64(i));
    if (i < n_q) q[i] = (uint8_t)r;
    if (i < n_sc) sc[i] = __float2half_rn((0.75f + 0.25f * unit(mix64(r + 7))) / 8.0f);
}

/* A layer's Q4_0 keys and values as F16 rows in the same layout (the SIMT prompt kernels'
 * input), for positions 0..pos[n - 1] (a batch's positions ascend): one thread a word of 8
 * values, as the tensor-core kernel converts its tiles (bitwise the same halves). */
__global__ void kv_q4_to_f16_kernel(const uint32_t *k, const uint32_t *v, const __half *ks,
                                    const __half *vs, int n_head_kv, int n_ctx, int hd,
                                    const int32_t *pos, int n, uint4 *ko, uint4 *vo) {
    const int words = hd / 8, p_end = min(pos[n - 1] + 1, n_ctx);
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t row = i / words, p = row % n_ctx;
    if (row >= (int64_t)n_head_kv * n_ctx || p >= p_end) return;
    const int wi = (int)(i % words);
    ko[i] = cw_q4_to_h8(k[i], ks + row * (hd / 32) + wi / 4);
    vo[i] = cw_q4_to_h8(v[i], vs + row * (hd / 32) + wi / 4);
}

/* xn = xw * s per token, s from the deferred norm's partial sums. */
__global__ void settle_kernel(const float *xw, const float *part, int n_part, int64_t dim,
                              float eps, float *xn) {
    __shared__ float s_scale;
    cw_griddep_launch();
    cw_griddep_wait();
    const int t = blockIdx.y;
    if (threadIdx.x < 32) {
        float v = 0.0f;
        for (int i = threadIdx.x; i < n_part; i += 32) v += part[t * n_part + i];
        v = cw_warp_sum(v);
        if (threadIdx.x == 0) s_scale = 1.0f / sqrtf(v / (float)dim + eps);
    }
    __syncthreads();
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < dim) xn[t * dim + i] = xw[t * dim + i] * s_scale;
}

unsigned blocks_for(int64_t n, int per) {
    return (unsigned)std::min<int64_t>((n + per - 1) / per, 65535 * 16);
}

} // namespace

/* Prompt-size activations also get their f16 form for the GEMM that reads
 * them next (CW_SCR_XH, tagged h16_src), or NULL. */
static __half *h16_for_producer(cuda_backend *c, int64_t elems, int n) {
    if (n <= CW_MV_MAX_TOK || n <= c->tune.mv_max_tokens) return NULL;
    return (__half *)cw_scratch(c, CW_SCR_XH, 2 * cw_half_bytes(elems));
}

void cw_rmsnorm(cuda_backend *c, float *x, const float *y, const float *w, float eps, int n,
                int dim, float *out) {
    const int64_t elems = (int64_t)n * dim;
    const int threads = dim > 2048 ? 1024 : (dim > 512 ? 256 : 64);
    const int per = (dim + threads - 1) / threads;
    int slot = 0;
    void *q8 = n <= CW_MV_MAX_TOK && dim % 32 == 0 && per <= 8 ? cw_q8_for_producer(c, elems, &slot)
                                                               : NULL;
    cw_q8s *xd = q8 ? cw_q8_scales(q8, elems) : (cw_q8s *)NULL;
    __half *oh = h16_for_producer(c, elems, n);
    if (per <= 4)
        cw_launch(c, true, rmsnorm_kernel<4>, dim3(n), dim3(threads), 0, x, y, w, eps, dim, out,
                  (int8_t *)q8, xd, oh);
    else if (per <= 8)
        cw_launch(c, true, rmsnorm_kernel<8>, dim3(n), dim3(threads), 0, x, y, w, eps, dim, out,
                  (int8_t *)q8, xd, oh);
    else
        cw_launch(c, true, rmsnorm_wide_kernel, dim3(n), dim3(threads), 0, x, y, w, eps, dim, out,
                  oh);
    if (q8) cw_q8_tag(c, out, elems, slot);
    if (oh) {
        c->h16_src = out;
        c->h16_elems = elems;
    }
}

void cw_rope_store(cuda_backend *c, float *q, float *k, const float *v, const int32_t *pos, int n,
                   const rs_rope *rope, const rs_attn *at, rs_kv *kv, int layer) {
    const size_t layer_elems = (size_t)kv->d.n_head_kv * kv->d.n_ctx * kv->d.head_dim;
    const size_t layer_bytes = cw_kv_layer_bytes(kv);
    const dim3 grid(n, at->n_head + at->n_head_kv), block(at->head_dim > 128 ? 128 : 64);
    /* prompts: the first layer keeps its angles for the others (decode steps
     * compute them, which is cheaper than a table round trip) */
    float2 *tab = NULL;
    int mode = 0;
    if (n > CW_MV_MAX_TOK && rope->n_rot > 0) {
        auto &rt = c->rope_tab;
        if (rt.pos == pos && rt.n == n && rt.inv_freq == rope->inv_freq &&
            rt.n_rot == rope->n_rot && rt.attn_factor == rope->attn_factor) {
            tab = (float2 *)c->scr[CW_SCR_ROPE];
            mode = 2;
        } else if ((tab = (float2 *)cw_scratch(c, CW_SCR_ROPE,
                                               (size_t)n * (rope->n_rot / 2) * sizeof(float2)))) {
            mode = 1;
            rt.pos = pos, rt.n = n, rt.inv_freq = rope->inv_freq, rt.n_rot = rope->n_rot;
            rt.attn_factor = rope->attn_factor, rt.neox = rope->neox;
        }
    }
    const size_t layer_sc = (size_t)kv->d.n_head_kv * kv->d.n_ctx * kv->nsb;
    __half *ksc = kv->ks ? kv->ks + layer * layer_sc : NULL,
           *vsc = kv->vs ? kv->vs + layer * layer_sc : NULL;
    const bool quant = kv->d.type == RS_KV_Q8_0 || kv->d.type == RS_KV_Q4_0;
    if (n > CW_MV_MAX_TOK && !quant) { /* prompts: a block per token */
        const size_t smem = (size_t)(rope->n_rot / 2 + 1) * sizeof(float2);
        if (kv->d.type == RS_KV_F16)
            cw_launch(c, false, rope_tok_kernel<__half>, dim3(n), dim3(256), smem, q, k, v, pos,
                      *rope, at->n_head, at->n_head_kv, at->head_dim,
                      (__half *)kv->k + layer * layer_elems, (__half *)kv->v + layer * layer_elems,
                      kv->d.n_ctx, tab, mode);
        else
            cw_launch(c, false, rope_tok_kernel<float>, dim3(n), dim3(256), smem, q, k, v, pos,
                      *rope, at->n_head, at->n_head_kv, at->head_dim,
                      (float *)kv->k + layer * layer_elems, (float *)kv->v + layer * layer_elems,
                      kv->d.n_ctx, tab, mode);
        return;
    }
    if (kv->d.type == RS_KV_F16)
        cw_launch(c, true, rope_store_kernel<__half>, grid, block, 0, q, k, v, pos, *rope,
                  at->n_head, at->n_head_kv, at->head_dim, (__half *)kv->k + layer * layer_elems,
                  (__half *)kv->v + layer * layer_elems, ksc, vsc, kv->nsb, kv->d.n_ctx, tab, mode);
    else if (kv->d.type == RS_KV_Q8_0)
        cw_launch(c, true, rope_store_kernel<int8_t>, grid, block, 0, q, k, v, pos, *rope,
                  at->n_head, at->n_head_kv, at->head_dim, (int8_t *)kv->k + layer * layer_elems,
                  (int8_t *)kv->v + layer * layer_elems, ksc, vsc, kv->nsb, kv->d.n_ctx, tab, mode);
    else if (kv->d.type == RS_KV_Q4_0)
        cw_launch(c, true, rope_store_kernel<cw_q4>, grid, block, 0, q, k, v, pos, *rope,
                  at->n_head, at->n_head_kv, at->head_dim,
                  (cw_q4 *)((char *)kv->k + layer * layer_bytes),
                  (cw_q4 *)((char *)kv->v + layer * layer_bytes), ksc, vsc, kv->nsb, kv->d.n_ctx,
                  tab, mode);
    else
        cw_launch(c, true, rope_store_kernel<float>, grid, block, 0, q, k, v, pos, *rope,
                  at->n_head, at->n_head_kv, at->head_dim, (float *)kv->k + layer * layer_elems,
                  (float *)kv->v + layer * layer_elems, ksc, vsc, kv->nsb, kv->d.n_ctx, tab, mode);
}

template <typename In>
static void swiglu_launch(cuda_backend *c, const In *g, const In *u, int64_t n, float *out,
                          bool for_gemm) {
    int slot = 0;
    void *q8 = n <= (int64_t)1 << 18 ? cw_q8_for_producer(c, n, &slot) : NULL;
    if (q8) {
        cw_launch(c, true, swiglu_kernel<In>, dim3((unsigned)((n + 255) / 256)), dim3(256), 0, g, u,
                  n, out, (int8_t *)q8, cw_q8_scales(q8, n), (__half *)NULL);
        cw_q8_tag(c, out, n, slot);
        return;
    }
    __half *oh = for_gemm ? (__half *)cw_scratch(c, CW_SCR_XH, 2 * cw_half_bytes(n)) : NULL;
    cw_launch(c, true, swiglu_kernel<In>, dim3(blocks_for(n, 256)), dim3(256), 0, g, u, n, out,
              (int8_t *)NULL, (cw_q8s *)NULL, oh);
    if (oh) {
        c->h16_src = out;
        c->h16_elems = n;
    }
}

void cw_swiglu(cuda_backend *c, const float *g, const float *u, int64_t n, float *out,
               bool for_gemm) {
    swiglu_launch(c, g, u, n, out, for_gemm);
}

void cw_swiglu_h(cuda_backend *c, const __half *g, const __half *u, int64_t n, float *out,
                 bool for_gemm) {
    swiglu_launch(c, g, u, n, out, for_gemm);
}

void cw_add(cuda_backend *c, float *x, const float *y, int64_t n) {
    cw_launch(c, true, add_kernel, dim3(blocks_for(n, 256)), dim3(256), 0, x, y, n);
}

void cw_greedy_pick(cuda_backend *c, const float *logits, int n, rs_sample_rule *rule, int32_t *ids,
                    int32_t *pos, int32_t *picks, uint64_t *rngs, int n_picks) {
    cw_launch(c, true, greedy_pick_kernel, dim3(1), dim3(1024), 0, logits, n, rule, ids, pos, picks,
              rngs, n_picks);
}

void cw_add_bias(cuda_backend *c, float *y, const float *bias, int n, int64_t n_out) {
    const int64_t total = (int64_t)n * n_out;
    cw_launch(c, false, add_bias_kernel, dim3(blocks_for(total, 256)), dim3(256), 0, y, bias, total,
              n_out);
}

void cw_repack(cuda_backend *c, int type, const uint8_t *raw, int64_t rows, int64_t row0,
               const cw_layout *L) {
    const int64_t nblk = rows * L->nb;
    const int tsize = (int)rs_dtype_get(type)->type_size;
    cw_launch(c, false, repack_kernel, dim3((unsigned)((nblk + 255) / 256)), dim3(256), 0, type,
              raw, nblk, row0 * L->nb, tsize, *L);
}

void cw_fill_random(cuda_backend *c, void *dev, int type, size_t n_bytes, float scale,
                    uint64_t seed) {
    const rs_dtype_traits *tr = rs_dtype_get(type);
    const size_t tsize = tr->type_size, blocks = (n_bytes / tsize + 255) / 256;
    cw_launch(c, false, fill_kernel, dim3((unsigned)blocks), dim3(256), 0, (uint8_t *)dev, type,
              n_bytes, tsize, scale, seed);
}

void cw_kv_convert(cuda_backend *c, const rs_kv *kv, int layer, int n_pos, float *k, float *v) {
    const size_t layer_elems = (size_t)kv->d.n_head_kv * kv->d.n_ctx * kv->d.head_dim;
    const size_t layer_sc = (size_t)kv->d.n_head_kv * kv->d.n_ctx * kv->nsb;
    const size_t layer_bytes = cw_kv_layer_bytes(kv);
    const int64_t total = (int64_t)n_pos * kv->d.n_head_kv * kv->d.head_dim;
    const dim3 grid((unsigned)((total + 255) / 256)), block(256);
    const __half *ks = kv->ks ? kv->ks + layer * layer_sc : NULL,
                 *vs = kv->vs ? kv->vs + layer * layer_sc : NULL;
    if (kv->d.type == RS_KV_F16)
        cw_launch(c, false, kv_convert_kernel<__half>, grid, block, 0,
                  (const __half *)kv->k + layer * layer_elems,
                  (const __half *)kv->v + layer * layer_elems, ks, vs, kv->nsb, kv->d.n_head_kv,
                  kv->d.n_ctx, kv->d.head_dim, n_pos, k, v);
    else if (kv->d.type == RS_KV_Q8_0)
        cw_launch(c, false, kv_convert_kernel<int8_t>, grid, block, 0,
                  (const int8_t *)kv->k + layer * layer_elems,
                  (const int8_t *)kv->v + layer * layer_elems, ks, vs, kv->nsb, kv->d.n_head_kv,
                  kv->d.n_ctx, kv->d.head_dim, n_pos, k, v);
    else if (kv->d.type == RS_KV_Q4_0)
        cw_launch(c, false, kv_convert_kernel<cw_q4>, grid, block, 0,
                  (const cw_q4 *)((const char *)kv->k + layer * layer_bytes),
                  (const cw_q4 *)((const char *)kv->v + layer * layer_bytes), ks, vs, kv->nsb,
                  kv->d.n_head_kv, kv->d.n_ctx, kv->d.head_dim, n_pos, k, v);
    else
        cw_launch(c, false, kv_convert_kernel<float>, grid, block, 0,
                  (const float *)kv->k + layer * layer_elems,
                  (const float *)kv->v + layer * layer_elems, ks, vs, kv->nsb, kv->d.n_head_kv,
                  kv->d.n_ctx, kv->d.head_dim, n_pos, k, v);
}

void cw_kv_fill_quant(cuda_backend *c, rs_kv *kv, uint64_t seed) {
    const size_t n_q = (size_t)kv->d.n_layer * cw_kv_layer_bytes(kv);
    const size_t n_sc = (size_t)kv->d.n_layer * kv->d.n_head_kv * kv->d.n_ctx * kv->nsb;
    const dim3 grid((unsigned)((std::max(n_q, n_sc) + 255) / 256)), block(256);
    const uint64_t seed_v = seed ^ 0x9e3779b97f4a7c15ull;
    if (kv->d.type == RS_KV_Q4_0) {
        cw_launch(c, false, fill_q4kv_kernel, grid, block, 0, (uint8_t *)kv->k, n_q, kv->ks, n_sc,
                  seed);
        cw_launch(c, false, fill_q4kv_kernel, grid, block, 0, (uint8_t *)kv->v, n_q, kv->vs, n_sc,
                  seed_v);
        return;
    }
    cw_launch(c, false, fill_q8kv_kernel, grid, block, 0, (int8_t *)kv->k, n_q, kv->ks, n_sc, seed);
    cw_launch(c, false, fill_q8kv_kernel, grid, block, 0, (int8_t *)kv->v, n_q, kv->vs, n_sc,
              seed_v);
}

__half *cw_kv_q4_to_f16(cuda_backend *c, const rs_kv *kv, int layer, const int32_t *pos, int n) {
    const size_t per = (size_t)kv->d.n_head_kv * kv->d.n_ctx * kv->d.head_dim;
    __half *h = (__half *)cw_scratch(c, CW_SCR_KVH, 2 * per * sizeof(__half));
    if (!h) return NULL;
    const size_t layer_sc = (size_t)kv->d.n_head_kv * kv->d.n_ctx * kv->nsb;
    const int64_t words = (int64_t)per / 8;
    cw_launch(c, n <= CW_MV_MAX_TOK, kv_q4_to_f16_kernel, dim3((unsigned)((words + 255) / 256)),
              dim3(256), 0, (const uint32_t *)((const char *)kv->k + layer * cw_kv_layer_bytes(kv)),
              (const uint32_t *)((const char *)kv->v + layer * cw_kv_layer_bytes(kv)),
              kv->ks + layer * layer_sc, kv->vs + layer * layer_sc, kv->d.n_head_kv, kv->d.n_ctx,
              kv->d.head_dim, pos, n, (uint4 *)h, (uint4 *)(h + per));
    return h;
}

void cw_settle(cuda_backend *c) {
    if (!c->defer.xn) return;
    const dim3 grid((unsigned)((c->defer.dim + 255) / 256), c->defer.n), block(256);
    cw_launch(c, true, settle_kernel, grid, block, 0, (const float *)c->defer.xw,
              (const float *)c->defer.part, c->defer.n_part, c->defer.dim, c->defer.eps,
              c->defer.xn);
    if (c->q8_src == c->defer.xn) c->q8_src = NULL;
    c->defer.xn = NULL;
}

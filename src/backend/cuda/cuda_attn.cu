/* cuda_attn.cu — causal attention over the KV cache ([kv head][pos][head_dim]).
 *
 * Decode (n <= 4 tokens, head_dim a power of two 8..256, 16..256 for Q8_0
 * caches, each lane holding 8 dims of a position, 16 for Q8_0): flash-decoding. The
 * context is cut into chunks of C positions; block (chunk, kv head, token)
 * scores its chunk for up to GB query heads sharing that kv head (so GQA
 * reads K and V once), keeps the chunk's softmax max and sum, and writes a
 * partial output. The last block of a (token, kv head) to finish — found with
 * an atomic counter — merges the partials, so there is no second launch. The
 * grid covers the whole cache and blocks past pos[t] exit at once: positions
 * are read from device memory, so one captured graph serves every step.
 * Where the caller bounds the context (rs_attn.ctx_max, the forward pass's
 * graph per band of positions) to 256 positions of head_dim 128 (512 of 64)
 * with an F16 or Q8_0 cache (a Q8_0 cache of query-head groups: twice that),
 * decode runs unsplit instead (attn_short_kernel):
 * each block holds all of its head's keys and the values of its 32 output dims
 * in registers, so there is nothing to merge. Over Q8_0 and Q4_0 caches both
 * kernels score keys in integers: the query becomes int8 in Q8_0 blocks
 * (q_to_i8) and a score is dp4a on the cached bytes; values become floats by byte
 * permutes (cw_i8x4_to_f32, cw_u4x8_to_f32; the split kernel: masked in place as
 * denormals, kv_qrow::get_den), and each position's scale multiplies its score or its
 * weight once.
 *
 * Prefill (n > 4): a tiled online-softmax kernel, 64 queries x 64 keys per
 * step in shared memory, f32 arithmetic. A last-resort generic kernel covers
 * head sizes the tiled one cannot (not a multiple of 4, or above 256).
 *
 * Every kernel reads F32, F16 or Q8_0 caches (KV = float, __half, int8_t: the
 * int8 values with one fp16 scale per 32 of a head row, nsb per row). The decode
 * kernels read Q4_0 caches too (KV = cw_q4: nibbles and the same scales, see
 * cuda_common.cuh), a 32-value block a lane, and so does the tensor-core prompt kernel;
 * the other prompt kernels read them converted to an F16 copy of the layer
 * (cw_kv_q4_to_f16). */
#include <algorithm>
#include <type_traits>

#include "backend/cuda/cuda_common.cuh"

namespace {

struct dec_args {
    const float *q;
    const void *k, *v;     /* this layer's [kv head][n_ctx][hd] */
    const __half *ks, *vs; /* Q8_0: this layer's scales [kv head][n_ctx][nsb] */
    int nsb;
    const int32_t *pos;
    float *out;
    float *part_o;   /* [n][n_head][n_split][hd] */
    float2 *part_ml; /* [n][n_head][n_split] (max, sum) */
    unsigned *cnt;   /* [n][n_head_kv][slices] */
    int8_t *xq;      /* int8 copy of out for the next matvec, or NULL */
    cw_q8s *xd;
    int n_head, n_head_kv, G, slices, n_split, n_ctx;
    int c_min, c_max, s_target; /* chunk = clamp(ceil(positions / s_target), c_min, c_max), x32 */
    float scale;
};

/* Positions per split for a context of p_end positions: enough splits to
 * fill the GPU at short contexts, long chunks (fewer partials) at long ones.
 * Computed on the device from pos, so a replayed graph adapts as it grows. */
__device__ __forceinline__ int dec_chunk(const dec_args &a, int p_end) {
    int c = (p_end + a.s_target - 1) / a.s_target;
    c = (c + 31) & ~31;
    return min(max(c, a.c_min), a.c_max);
}

__device__ __forceinline__ void load8(const float *p, float *f) {
    const float4 a = *(const float4 *)p, b = *(const float4 *)(p + 4);
    f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}
/* 4 int8 values times their scale. */
__device__ __forceinline__ float4 load4q(const int8_t *p, const __half *sc) {
    float f[4];
    cw_i8x4_to_f32(*(const uint32_t *)p, f);
    const float d = __half2float(*sc);
    return make_float4(d * f[0], d * f[1], d * f[2], d * f[3]);
}
__device__ __forceinline__ float4 load4(const __half *p) {
    const uint2 v = *(const uint2 *)p;
    const float2 a = __half22float2(*(const __half2 *)&v.x),
                 b = __half22float2(*(const __half2 *)&v.y);
    return make_float4(a.x, a.y, b.x, b.y);
}
__device__ __forceinline__ float4 load4(const float *p) {
    return *(const float4 *)p;
}

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

/* The split merge of a block of query-head groups (its last split): each lane's first
 * (max, sum) loaded once, and past 16 splits (two rounds of eight loads a thread) the
 * partial outputs dealt to up to four parts of the block's NT threads, so that more of them
 * load at once; the parts' sums meet in red ([part][gn * HD / 4] float4, red holds
 * [4][GB][HD]), part 0's slots then hold the normalized outputs. wsp: [gn][n_split]. */
template <int HD, int NT>
__device__ void dec_merge_grouped(const dec_args &a, size_t pbase, int gn, int n_active, float *wsp,
                                  float *s_l, float *red) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    for (int g = warp; g < gn; g += NT / 32) {
        const float2 *ml = a.part_ml + pbase + (size_t)g * a.n_split;
        const float2 mine = lane < n_active ? __ldcg(&ml[lane]) : make_float2(-INFINITY, 0.0f);
        float M = mine.x;
        for (int s = lane + 32; s < n_active; s += 32) M = fmaxf(M, __ldcg(&ml[s]).x);
        M = cw_warp_max(M);
        float L = 0.0f;
        for (int s = lane; s < n_active; s += 32) {
            const float2 v = s == lane ? mine : __ldcg(&ml[s]);
            const float w = __expf(v.x - M);
            wsp[g * a.n_split + s] = w;
            L += v.y * w;
        }
        L = cw_warp_sum(L);
        if (lane == 0) s_l[g] = L;
    }
    __syncthreads();
    const int W = gn * HD / 4, parts = W >= NT || n_active <= 16 ? 1 : min(4, NT / W);
    for (int i = tid; i < W * parts; i += NT) {
        const int i4 = i % W, part = i / W, g = 4 * i4 / HD, d = 4 * i4 % HD;
        const float *po = a.part_o + (pbase + (size_t)g * a.n_split) * HD + d;
        const float *w = wsp + g * a.n_split;
        float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        for (int s = part; s < n_active; s += 8 * parts) { /* eight loads, the tail predicated */
            float4 v[8];
#pragma unroll
            for (int k = 0; k < 8; k++) {
                const int sk = s + k * parts;
                v[k] = sk < n_active ? __ldcg((const float4 *)(po + (size_t)sk * HD))
                                     : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            }
#pragma unroll
            for (int k = 0; k < 8; k++) {
                const int sk = s + k * parts;
                const float wk = sk < n_active ? w[sk] : 0.0f;
                o.x += wk * v[k].x, o.y += wk * v[k].y, o.z += wk * v[k].z, o.w += wk * v[k].w;
            }
        }
        *(float4 *)(red + 4 * (part * W + i4)) = o;
    }
    __syncthreads();
    for (int i4 = tid; i4 < W; i4 += NT) {
        float4 o = *(const float4 *)(red + 4 * i4);
        for (int p = 1; p < parts; p++) {
            const float4 v = *(const float4 *)(red + 4 * (p * W + i4));
            o.x += v.x, o.y += v.y, o.z += v.z, o.w += v.w;
        }
        const float inv = 1.0f / s_l[4 * i4 / HD];
        red[4 * i4] = o.x * inv, red[4 * i4 + 1] = o.y * inv;
        red[4 * i4 + 2] = o.z * inv, red[4 * i4 + 3] = o.w * inv;
    }
}

/* 2^k for -126 <= k <= 127: its bits (a constant when k is) */
__device__ __forceinline__ float cw_pow2(int k) {
    return __int_as_float((127 + k) << 23);
}
/* Values read as denormals (kv_qrow::get_den) weigh in times 2^DEN_K: weights (at most 1)
 * times scales (fp16, below 2^16) stay below 2^106, a chunk's sum of them (shared memory holds
 * under 2^16 positions) below 2^122; products with the smallest values (2^-149) stay normal
 * down to weight times scale 2^-67. */
constexpr int DEN_K = 90;

/* A lane's cached values of one position (8; 16 for Q8_0, 32 for Q4_0) as loaded (raw,
 * so a load in flight holds few registers), converted at use. */
template <typename KV> struct kv_lane;
template <> struct kv_lane<__half> {
    uint4 v;
    __device__ __forceinline__ void load(const __half *p, const __half *) { v = *(const uint4 *)p; }
    /* past L1: rows this step's previous kernel has just stored */
    __device__ __forceinline__ void load_cg(const __half *p, const __half *) {
        v = __ldcg((const uint4 *)p);
    }
    __device__ __forceinline__ void get(float *f) const {
        const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float2 t = __half22float2(*(const __half2 *)&w[i]);
            f[2 * i] = t.x;
            f[2 * i + 1] = t.y;
        }
    }
};
template <> struct kv_lane<float> {
    float4 a, b;
    __device__ __forceinline__ void load(const float *p, const __half *) {
        a = *(const float4 *)p;
        b = *(const float4 *)(p + 4);
    }
    __device__ __forceinline__ void get(float *f) const {
        f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z,
        f[7] = b.w;
    }
};
/* A lane's N query values (16 or 32) as int8 in their Q8_0 block of 32, for the scores over a
 * quantized cache whose heads are whole blocks (head_dim a multiple of 32; smaller heads, where
 * one block's scale would cover too few values, keep float queries) (llama.cpp's CPU, too, turns
 * the query into Q8_0 for quantized keys): a key's score is then dp4a on its cached bytes, exact in
 * int32, and one float multiply, where converting each cached value took ~2.4 instructions and an
 * FMA (CUDA_NOTES session 35). The numerics are the CPU activation quantizer's (act_quant_ref.c),
 * so both backends score with the same query: d = max|q| / 127 rounded to fp16, q8 = q * (1 / d)
 * clamped to +-127 and rounded half to even, each step one IEEE operation. A lane with 16 values
 * takes the block's maximum with its neighbour (lane ^ 1, the block's other half): every lane of
 * the warp must call this. */
template <int N> struct q_i8 {
    int w[N / 4]; /* the int8 values in order, four a word */
    float d;      /* their scale times the softmax scale */
    int off;      /* 8 * the sum of the int8 values: a Q4_0 byte holds a value plus 8 */
};
template <int N> __device__ __forceinline__ void q_to_i8(const float *q, float scale, q_i8<N> &r) {
    static_assert(N == 16 || N == 32, "a lane holds half or all of a block");
    float amax = 0.0f;
#pragma unroll
    for (int e = 0; e < N; e++) amax = fmaxf(amax, fabsf(q[e]));
    if constexpr (N == 16) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
    const float d = __half2float(__float2half_rn(amax / 127.0f)), id = d > 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
#pragma unroll
    for (int m = 0; m < N / 4; m++) {
        /* v + 1.5 * 2^23 (not fused) holds v rounded in its low mantissa bits: its low byte is
         * the int8, two's complement */
        uint32_t b[4];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const float v = fminf(fmaxf(__fmul_rn(q[4 * m + k], id), -127.0f), 127.0f);
            b[k] = __float_as_uint(__fadd_rn(v, 12582912.0f));
        }
        const uint32_t w =
            __byte_perm(__byte_perm(b[0], b[1], 0x40u), __byte_perm(b[2], b[3], 0x40u), 0x5410u);
        r.w[m] = (int)w;
        sum = __dp4a((int)w, 0x01010101, sum);
    }
    r.d = d * scale;
    r.off = 8 * sum;
}

/* W words (4, 8 or 16 bytes) of a quantized cache row and the scale of their block, as loaded
 * (raw), converted at use and unscaled: the decode kernels apply the scale once per position
 * (to a score, or to a value's weight) instead of per value. E int8_t: Q8_0, four values a
 * word (cw_i8x4_to_f32); cw_q4: Q4_0, eight (cw_u4x8_to_f32). */
template <typename E, int W> struct kv_qrow {
    using vec =
        typename std::conditional<W == 4, uint4,
                                  typename std::conditional<W == 2, uint2, uint32_t>::type>::type;
    static constexpr int PER = std::is_same<E, cw_q4>::value ? 8 : 4; /* values a word */
    vec v;
    __half s;
    __device__ __forceinline__ void load(const E *p, const __half *sc) {
        v = *(const vec *)p;
        s = *sc;
    }
    /* past L1: rows this step's previous kernel has just stored */
    __device__ __forceinline__ void load_cg(const E *p, const __half *sc) {
        v = __ldcg((const vec *)p);
        s = __ldcg(sc);
    }
    __device__ __forceinline__ static void conv(uint32_t w, float *f) {
        if constexpr (PER == 8)
            cw_u4x8_to_f32(w, f);
        else
            cw_i8x4_to_f32(w, f);
    }
    /* the loaded words in order */
    __device__ __forceinline__ void words(uint32_t *w) const {
        if constexpr (W == 1) {
            w[0] = v;
        } else if constexpr (W == 2) {
            w[0] = v.x, w[1] = v.y;
        } else {
            w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
        }
    }
    __device__ __forceinline__ void get_raw(float *f) const {
        uint32_t w[W];
        words(w);
#pragma unroll
        for (int j = 0; j < W; j++) conv(w[j], f + j * PER);
    }
    __device__ __forceinline__ float scale() const {
        return __half2float(s);
    }
    /* The values as stored (unsigned: Q4_0 q + 8, Q8_0 q + 128), each masked in place or
     * shifted once into the low bits of a float with a zero exponent: f[e] is the denormal
     * n_e * 2^(den_shift(e) - 149), exact, with no conversion or subtraction per value (one or
     * two integer operations, against a byte permute and a subtraction). An FMA takes
     * denormal inputs at full rate (no flush: the build has no fast-math); the caller scales
     * each position's weight by 2^DEN_K, counts the weights for the offset and undoes both once
     * (attn_dec_kernel's values). */
    __host__ __device__ static constexpr float den_off() {
        return PER == 8 ? 8.0f : 128.0f;
    }
    __host__ __device__ static constexpr int den_shift(int e) {
        constexpr int q4[8] = {0, 8, 16, 16, 4, 12, 12, 0}, q8[4] = {0, 8, 8, 0};
        return PER == 8 ? q4[e % 8] : q8[e % 4];
    }
    __device__ __forceinline__ static void den(uint32_t w, float *f) {
        if constexpr (PER == 8) { /* value i: the low nibble of byte i, or i - 4's high one */
            const uint32_t t = w >> 8;
            f[0] = __uint_as_float(w & 0xFu), f[4] = __uint_as_float(w & 0xF0u);
            f[1] = __uint_as_float(w & 0xF00u), f[5] = __uint_as_float(w & 0xF000u);
            f[2] = __uint_as_float(w & 0xF0000u), f[6] = __uint_as_float(t & 0xF000u);
            f[3] = __uint_as_float(t & 0xF0000u), f[7] = __uint_as_float(w >> 28);
        } else {
            const uint32_t u = w ^ 0x80808080u;
            f[0] = __uint_as_float(u & 0xFFu), f[1] = __uint_as_float(u & 0xFF00u);
            f[2] = __uint_as_float((u >> 8) & 0xFF00u), f[3] = __uint_as_float(u >> 24);
        }
    }
    __device__ __forceinline__ void get_den(float *f) const {
        uint32_t w[W];
        words(w);
#pragma unroll
        for (int j = 0; j < W; j++) den(w[j], f + j * PER);
    }
    /* The exact integer dot of these values (unscaled) with a lane's int8 query values. Q4_0:
     * low nibbles against values 0-3 of a word, high nibbles masked in place (16 times
     * their value) against 4-7, in two chains; the stored +8 comes off through q.off. */
    template <int N> __device__ __forceinline__ int idot(const q_i8<N> &q) const {
        static_assert(N == PER * W, "one query value per cached value");
        uint32_t w[W];
        words(w);
        int a = 0, b = 0;
        if constexpr (PER == 8) {
#pragma unroll
            for (int j = 0; j < W; j++) {
                a = cw_dp4a_us(w[j] & 0x0F0F0F0Fu, q.w[2 * j], a);
                b = cw_dp4a_us(w[j] & 0xF0F0F0F0u, q.w[2 * j + 1], b);
            }
            return a + (b >> 4) - q.off; /* b is a multiple of 16: the shift is exact */
        } else {
#pragma unroll
            for (int j = 0; j < W; j += 2) {
                a = __dp4a((int)w[j], q.w[j], a);
                if (j + 1 < W) b = __dp4a((int)w[j + 1], q.w[j + 1], b);
            }
            return a + b;
        }
    }
};
/* Q8_0: sixteen values per lane (one 16-byte load and a scale per position), so a lane keeps
 * as many bytes in flight per load as with F16 rows. */
template <> struct kv_lane<int8_t> : kv_qrow<int8_t, 4> {};
/* Q4_0: a whole 32-value block per lane (one 16-byte load and its scale per position): as
 * many bytes in flight per load as F16 and Q8_0 rows, over twice Q8_0's values, and half the
 * lanes a position to reduce its score over. (Sixteen values a lane, 8-byte loads, ran at
 * Q8_0's time per position: 18.2 us for 32/32 heads at 4096 positions against Q8_0's 17.0,
 * run 344.) */
template <> struct kv_lane<cw_q4> : kv_qrow<cw_q4, 4> {};
/* Eight values of a Q8_0 row (a quarter of one scale's block), for the short-context kernel's
 * value slices (F16 rows of eight are kv_lane<__half>), and Q4_0's eight (one word). */
using kv_row8_q8 = kv_qrow<int8_t, 2>;
using kv_row8_q4 = kv_qrow<cw_q4, 1>;
/* Sixteen values of a Q4_0 row (half a block: one 8-byte load), for the short-context
 * kernel's keys: with a whole block a lane it took 3.8 us for 32/32 heads at 101 positions,
 * with half 3.5 (Q8_0 3.4; runs 344-345). */
using kv_row16_q4 = kv_qrow<cw_q4, 2>;

/* Cache types with a scale per 32 values (Q8_0, Q4_0): values converted unscaled, the scale
 * applied to a score or a weight. */
template <typename KV> __host__ __device__ constexpr bool kv_quant() {
    return std::is_same<KV, int8_t>::value || std::is_same<KV, cw_q4>::value;
}
/* Values per cache element (a Q4_0 byte holds two). */
template <typename KV> __host__ __device__ constexpr int kv_per() {
    return std::is_same<KV, cw_q4>::value ? 2 : 1;
}
/* Cached values a lane holds per position. */
template <typename KV> __host__ __device__ constexpr int kv_dpl() {
    return std::is_same<KV, cw_q4>::value ? 32 : kv_quant<KV>() ? 16 : 8;
}

/* Before waiting for the previous kernel, a block reads the position and
 * issues its first pass of K loads (and of V, for GB <= 2 where the registers
 * allow): cached positions before the step's first (pos[0]: a step's
 * positions ascend) are final, and positions are written only by uploads,
 * which precede the step. The step's own positions (just stored by
 * rope_store) are loaded after the wait. */
/* (Q4_0: four blocks an SM, 128 registers. With two query heads a block that is a cap; with
 * one, unbounded, ptxas chose 96 registers and spilled once values were read as denormals
 * (get_den), and bounded it takes 106 without spills (CUDA_NOTES session 35). 0 leaves the
 * other kernels as they were, unbounded by blocks) */
template <typename KV, int LP, int GB>
__global__ void __launch_bounds__(128, (std::is_same<KV, cw_q4>::value && GB <= 2) ? 4 : 0)
    attn_dec_kernel(const __grid_constant__ dec_args a) {
    constexpr bool Q8 = kv_quant<KV>(), PFV = GB <= 2; /* Q8: Q8_0 or Q4_0 */
    /* DPL dims per lane, U positions in flight per lane (16 bytes each), RE cache elements
     * a row */
    constexpr int NT = 128, P = NT / LP, U = GB >= 8 ? 2 : 4, DPL = kv_dpl<KV>(), HD = LP * DPL;
    constexpr int RE = HD / kv_per<KV>();
    extern __shared__ float smem[];
    float *sc = smem;               /* [GB][c_max] scores, then weights */
    float *red = sc + GB * a.c_max; /* [4][GB][HD] per-warp outputs */
    float *wsp = red + 4 * GB * HD; /* [GB][n_split] merge weights */
    __shared__ float s_m[GB], s_l[GB];
    __shared__ int s_last;
    cw_griddep_launch();
    const int split = blockIdx.x, kvh = blockIdx.y / a.slices, slice = blockIdx.y % a.slices,
              t = blockIdx.z;
    const int g0 = slice * GB, gn = min(GB, a.G - g0), h0 = kvh * a.G + g0;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, li = tid % LP, po = tid / LP;
    const int p_end = max(1, min(a.pos[t] + 1, a.n_ctx)), C = dec_chunk(a, p_end),
              start = split * C, fresh = min(a.pos[0], p_end - 1);
    if (start >= p_end) return;
    const int end = min(start + C, p_end), len = end - start, n_active = (p_end + C - 1) / C;
    const KV *kb = (const KV *)a.k + ((size_t)kvh * a.n_ctx * HD + li * DPL) / kv_per<KV>();
    const KV *vb = (const KV *)a.v + ((size_t)kvh * a.n_ctx * HD + li * DPL) / kv_per<KV>();
    /* Q8_0: the scale of this lane's dims, position 0 */
    const __half *ksb = Q8 ? a.ks + (size_t)kvh * a.n_ctx * a.nsb + li * DPL / 32 : NULL;
    const __half *vsb = Q8 ? a.vs + (size_t)kvh * a.n_ctx * a.nsb + li * DPL / 32 : NULL;
    kv_lane<KV> kr[U] = {}, vr[PFV ? U : 1] = {};
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int p = start + po + u * P;
        if (p >= end || p >= fresh) continue;
        kr[u].load(kb + (size_t)p * RE, ksb + (size_t)p * a.nsb);
        if (PFV) vr[u].load(vb + (size_t)p * RE, vsb + (size_t)p * a.nsb);
    }
    cw_griddep_wait();
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int p = start + po + u * P;
        if (p >= end || p < fresh) continue;
        kr[u].load(kb + (size_t)p * RE, ksb + (size_t)p * a.nsb);
        if (PFV) vr[u].load(vb + (size_t)p * RE, vsb + (size_t)p * a.nsb);
    }
    float qr[GB][DPL];
#pragma unroll
    for (int g = 0; g < GB; g++) {
        if (g < gn) {
#pragma unroll
            for (int e = 0; e < DPL; e += 8)
                load8(a.q + ((size_t)t * a.n_head + h0 + g) * HD + li * DPL + e, qr[g] + e);
        } else {
#pragma unroll
            for (int e = 0; e < DPL; e++) qr[g][e] = 0.0f;
        }
    }
    /* keys in integers where a head is whole Q8_0 blocks of the query (quantized caches, heads
     * of 32 or more): the query as int8 (q_to_i8); others: scaled floats */
    constexpr bool IK = Q8 && HD % 32 == 0;
    q_i8<IK ? DPL : 16> qi[IK ? GB : 1];
#pragma unroll
    for (int g = 0; g < GB; g++) {
        if constexpr (IK) {
            q_to_i8(qr[g], a.scale, qi[g]);
        } else {
#pragma unroll
            for (int e = 0; e < DPL; e++) qr[g][e] *= a.scale;
        }
    }
    /* scores: LP lanes per position, DPL dims each; U positions in flight, and the next
     * U loading while these are used */
    for (int base = start; base < end; base += P * U) {
        kv_lane<KV> kn[U] = {};
        if (base + P * U < end) {
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int p = base + P * U + po + u * P;
                if (p < end) kn[u].load(kb + (size_t)p * RE, ksb + (size_t)p * a.nsb);
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int p = base + po + u * P;
            float kf[IK ? 1 : DPL];
            if constexpr (IK) {
            } else if constexpr (Q8) {
                kr[u].get_raw(kf);
            } else {
                kr[u].get(kf);
            }
#pragma unroll
            for (int g = 0; g < GB; g++) {
                float d = 0.0f;
                if constexpr (IK) { /* a lane's dims share a scale */
                    d = (float)kr[u].idot(qi[g]) * (qi[g].d * kr[u].scale());
                } else {
#pragma unroll
                    for (int e = 0; e < DPL; e++) d += qr[g][e] * kf[e];
                    if constexpr (Q8) d *= kr[u].scale();
                }
#pragma unroll
                for (int o = LP / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
                if (li == 0 && p < end) sc[g * C + p - start] = d;
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) kr[u] = kn[u];
    }
    /* the first values in flight across the softmax (loaded at the start where PFV) */
    kv_lane<KV> vl[U] = {};
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int p = start + po + u * P;
        if (p >= end) continue;
        if (PFV)
            vl[u] = vr[PFV ? u : 0];
        else
            vl[u].load(vb + (size_t)p * RE, vsb + (size_t)p * a.nsb);
    }
    __syncthreads();
    for (int g = warp; g < GB; g += NT / 32) {
        float mx = -INFINITY;
        for (int i = lane; i < len; i += 32) mx = fmaxf(mx, sc[g * C + i]);
        mx = cw_warp_max(mx);
        float sum = 0.0f;
        for (int i = lane; i < len; i += 32) {
            const float e = __expf(sc[g * C + i] - mx);
            sc[g * C + i] = e;
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
    float acc[GB][DPL], wsum[Q8 ? GB : 1] = {};
#pragma unroll
    for (int g = 0; g < GB; g++)
#pragma unroll
        for (int e = 0; e < DPL; e++) acc[g][e] = 0.0f;
    for (int base = start; base < end; base += P * U) {
        kv_lane<KV> vn[U] = {};
        if (base + P * U < end) {
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int p = base + P * U + po + u * P;
                if (p < end) vn[u].load(vb + (size_t)p * RE, vsb + (size_t)p * a.nsb);
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int p = base + po + u * P;
            if (p >= end) continue;
            float vf[DPL];
            if constexpr (Q8)
                vl[u].get_den(vf);
            else
                vl[u].get(vf);
            /* quantized: the weight times the position's scale and 2^DEN_K (get_den) */
            float ws = 1.0f;
            if constexpr (Q8) ws = vl[u].scale() * cw_pow2(DEN_K);
#pragma unroll
            for (int g = 0; g < GB; g++) {
                float w = sc[g * C + p - start];
                if constexpr (Q8) {
                    w *= ws;
                    wsum[g] += w;
                }
#pragma unroll
                for (int e = 0; e < DPL; e++) acc[g][e] += w * vf[e];
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) vl[u] = vn[u];
    }
    if constexpr (Q8) { /* undo get_den's powers of two and the stored offset */
#pragma unroll
        for (int g = 0; g < GB; g++) {
            using L = kv_lane<KV>;
            const float off = -L::den_off() * cw_pow2(-DEN_K) * wsum[g];
#pragma unroll
            for (int e = 0; e < DPL; e++)
                acc[g][e] = fmaf(acc[g][e], cw_pow2(149 - DEN_K - L::den_shift(e)), off);
        }
    }
#pragma unroll
    for (int o = LP; o < 32; o <<= 1)
#pragma unroll
        for (int g = 0; g < GB; g++)
#pragma unroll
            for (int e = 0; e < DPL; e++) acc[g][e] += __shfl_xor_sync(0xffffffffu, acc[g][e], o);
    if (lane < LP)
#pragma unroll
        for (int g = 0; g < GB; g++)
#pragma unroll
            for (int e = 0; e < DPL; e++) red[(warp * GB + g) * HD + li * DPL + e] = acc[g][e];
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
    if (tid < gn)
        a.part_ml[pbase + (size_t)tid * a.n_split + split] = make_float2(s_m[tid], s_l[tid]);
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
    /* merge: weight of split s = exp(m_s - M), total L = sum l_s exp(m_s - M). One head a
     * block keeps the plain merge, written out here rather than shared with
     * dec_merge_grouped's first loop: sharing it changes these kernels' PTX, which the 7B's
     * A/B measured as it is; query-head groups deal their splits to parts of the block
     * (CUDA_NOTES session 32). */
    if constexpr (GB == 1) {
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
        /* four dims per thread, eight splits in flight */
        for (int i4 = tid; i4 < gn * HD / 4; i4 += NT) {
            const int g = 4 * i4 / HD, d = 4 * i4 % HD;
            const float *po_ = a.part_o + (pbase + (size_t)g * a.n_split) * HD + d;
            const float *w = wsp + g * a.n_split;
            float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            for (int s = 0; s < n_active;
                 s += 8) { /* eight loads issued together, the tail predicated */
                float4 v[8];
#pragma unroll
                for (int k = 0; k < 8; k++)
                    v[k] = s + k < n_active ? __ldcg((const float4 *)(po_ + (size_t)(s + k) * HD))
                                            : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
                for (int k = 0; k < 8; k++) {
                    const float wk = s + k < n_active ? w[s + k] : 0.0f;
                    o.x += wk * v[k].x, o.y += wk * v[k].y, o.z += wk * v[k].z, o.w += wk * v[k].w;
                }
            }
            const float inv = 1.0f / s_l[g];
            red[4 * i4] = o.x * inv, red[4 * i4 + 1] = o.y * inv;
            red[4 * i4 + 2] = o.z * inv, red[4 * i4 + 3] = o.w * inv;
        }
    } else {
        dec_merge_grouped<HD, NT>(a, pbase, gn, n_active, wsp, s_l, red);
    }
    __syncthreads();
    dec_store<HD>(a, red, gn, t, h0);
}

struct pre_args {
    const float *q;
    const void *k, *v;
    const __half *ks, *vs; /* Q8_0 scales, [kv head][n_ctx][nsb] */
    int nsb;
    const int32_t *pos;
    float *out;
    float *scores; /* generic kernel only: [n][n_head][n_ctx] */
    int n, n_head, n_head_kv, hd, n_ctx;
    float scale;
    int zig;       /* tensor-core kernel: block order reversed every zig blocks (0: no reversal) */
    __half *out_h; /* tensor-core kernel: an F16 copy of out for the next GEMM, or NULL */
};

constexpr int PB = 64; /* queries and keys per tile */

size_t pre_smem(int hd) {
    return (size_t)(2 * PB * (hd + 4) + PB * hd + PB * (PB + 1)) * sizeof(float);
}

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
    const KV *kb = (const KV *)a.k + (size_t)kvh * a.n_ctx * hd,
             *vb = (const KV *)a.v + (size_t)kvh * a.n_ctx * hd;
    constexpr bool Q8 = std::is_same<KV, int8_t>::value;
    const __half *ksb = Q8 ? a.ks + (size_t)kvh * a.n_ctx * a.nsb : NULL,
                 *vsb = Q8 ? a.vs + (size_t)kvh * a.n_ctx * a.nsb : NULL;
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
                if constexpr (Q8) {
                    const size_t si = (size_t)p * a.nsb + 4 * c4 / 32;
                    kv = load4q(kb + (size_t)p * hd + 4 * c4, ksb + si);
                    vv = load4q(vb + (size_t)p * hd + 4 * c4, vsb + si);
                } else {
                    kv = load4(kb + (size_t)p * hd + 4 * c4);
                    vv = load4(vb + (size_t)p * hd + 4 * c4);
                }
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
                    s[i][j] += qv[i].x * kv[j].x + qv[i].y * kv[j].y + qv[i].z * kv[j].z +
                               qv[i].w * kv[j].w;
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
            for (int off = 8; off > 0; off >>= 1)
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
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

/* ---- prefill on the tensor cores (F16, Q8_0 or Q4_0 cache, head_dim 64 or 128) ----------------
 * FlashAttention-2 shape: block (64-query tile, head), 4 warps of 16 query
 * rows; per 64-key tile S = Q K^T and O += P V with mma.sync m16n8k16 (f16
 * operands, f32 accumulators), online softmax in registers. Fragments come
 * from padded shared memory through ldmatrix (.trans for V); a Q8_0 or Q4_0 tile
 * is dequantized to halves there first. */

__device__ __forceinline__ void ldsm_x4(uint32_t *r, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(cw_smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t *r, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(cw_smem_addr(p)));
}
__device__ __forceinline__ void mma16816(float *d, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ uint32_t pack_h2(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *(const uint32_t *)&h;
}

/* 16 bytes global -> shared without registers; src_bytes 0 stores zeros. */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(cw_smem_addr(dst)), "l"(src),
                 "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;");
}
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

constexpr int MB = 64; /* queries and keys per tile */

/* F16: two stages of (K, V): the next tile loads while this one computes; Q
 * passes through stage 1's K on its way to registers, so three blocks fit an
 * SM. Q8_0 and Q4_0 (QT 1 and 2; F16 is 0): Q, one stage of (K, V) in halves, and two stages
 * of the raw tile (int8 or nibble K and V, their scales) that cp.async fills while the
 * previous tile is converted and computed. */
template <int HD, int QT> __host__ __device__ constexpr size_t mma_raw_stage() {
    return (size_t)2 * MB * HD / (QT == 2 ? 2 : 1) + (size_t)2 * MB * (HD / 32) * sizeof(__half);
}
template <int HD, int QT> constexpr size_t mma_smem() {
    return QT ? (size_t)3 * MB * (HD + 8) * sizeof(__half) + 2 * mma_raw_stage<HD, QT>()
              : (size_t)4 * MB * (HD + 8) * sizeof(__half);
}

/* 4 bytes global -> shared (through L1: cp.async.cg takes 16 only); src_bytes 0 stores zeros. */
__device__ __forceinline__ void cp_async4(void *dst, const void *src, int src_bytes) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(cw_smem_addr(dst)), "l"(src),
                 "r"(src_bytes));
}

/* 8 int8 values times their scale, as 8 halves: each offset to unsigned (bias 128). */
__device__ __forceinline__ uint4 q8_to_h8(const int8_t *p, const __half *sc) {
    const uint2 v = *(const uint2 *)p;
    const uint32_t u[2] = {v.x ^ 0x80808080u, v.y ^ 0x80808080u};
    return cw_bytes_to_h8(u, 1152.0f, sc);
}

/* 2^x on the special-function unit; 2^-inf = 0. */
__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

template <int HD, int QT>
__global__ void __launch_bounds__(128, QT ? 2 : 3)
    attn_mma_kernel(const __grid_constant__ pre_args a) {
    constexpr bool Q8 = QT != 0;               /* a quantized cache (Q8_0 or Q4_0), staged raw */
    constexpr int RB = HD / (QT == 2 ? 2 : 1); /* bytes of a raw row's values */
    constexpr int LD = HD + 8;                 /* halves per padded row: conflict-free ldmatrix */
    extern __shared__ __align__(16) unsigned char smem_raw[];
    /* stage st: K at KVs + 2 * st * MB * LD, V after it */
    __half *KVs = (__half *)smem_raw + (Q8 ? MB * LD : 0);
    __half *Qs = Q8 ? (__half *)smem_raw : KVs + 2 * MB * LD;
    __shared__ int s_pos[MB];
    __shared__ int s_wmax[MB / 32];
    cw_griddep_launch();
    cw_griddep_wait();
    /* Blocks take (query tile, head) items heaviest first (causal: a tile's work
     * grows with its index), the order reversed every `zig` blocks: the first
     * zig blocks land one per SM, the next zig fill each SM's second slot, so an
     * SM pairs a heavy tile with a light one instead of two of similar weight. */
    const int n_tiles = (a.n + MB - 1) / MB, n_items = n_tiles * a.n_head;
    int item = (int)blockIdx.x;
    if (a.zig > 0 && (item / a.zig) & 1) {
        const int r0 = item / a.zig * a.zig, len = min(a.zig, n_items - r0);
        item = r0 + len - 1 - (item - r0);
    }
    const int h = item % a.n_head, kvh = h / (a.n_head / a.n_head_kv);
    const int t0 = (n_tiles - 1 - item / a.n_head) * MB;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c4 = lane & 3;
    /* the positions and Q in flight together, then the first key tile while Q converts */
    int p = -1;
    if (tid < MB && t0 + tid < a.n) p = min(a.pos[t0 + tid], a.n_ctx - 1);
    constexpr int QV = MB * HD / 4 / 128; /* float4s of Q per thread */
    float4 qv[QV];
#pragma unroll
    for (int j = 0; j < QV; j++) {
        const int i = tid + 128 * j, t = t0 + i / (HD / 4);
        qv[j] = t < a.n
                    ? *(const float4 *)(a.q + ((size_t)t * a.n_head + h) * HD + 4 * (i % (HD / 4)))
                    : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
    if (tid < MB) { /* warps 0 and 1, whole */
        s_pos[tid] = p;
        const int m = __reduce_max_sync(0xffffffffu, p);
        if (lane == 0) s_wmax[warp] = m;
    }
    __syncthreads();
    const int maxp = max(s_wmax[0], s_wmax[1]);
    const int r0 = warp * 16 + g, pos0 = s_pos[r0], pos1 = s_pos[r0 + 8];
    /* key tiles wholly at or below every row of the warp need no mask (padding rows, -1,
     * keep it on) */
    const int wmin = __reduce_min_sync(0xffffffffu, min(pos0, pos1));
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f; /* l: this lane's columns */
    float o[HD / 8][4];
#pragma unroll
    for (int nt = 0; nt < HD / 8; nt++) o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.0f;
    const __half *kb = (const __half *)a.k + (size_t)kvh * a.n_ctx * HD;
    const __half *vb = (const __half *)a.v + (size_t)kvh * a.n_ctx * HD;
    const int8_t *kq = (const int8_t *)a.k + (size_t)kvh * a.n_ctx * RB;
    const int8_t *vq = (const int8_t *)a.v + (size_t)kvh * a.n_ctx * RB;
    const __half *ksb = Q8 ? a.ks + (size_t)kvh * a.n_ctx * a.nsb : NULL,
                 *vsb = Q8 ? a.vs + (size_t)kvh * a.n_ctx * a.nsb : NULL;
    /* raw stage st: K's and V's rows (RB bytes each), then their scales (NSB per position) */
    constexpr int NSB = HD / 32;
    auto raw = [&](int st) { return (int8_t *)(KVs + 2 * MB * LD) + st * mma_raw_stage<HD, QT>(); };
    /* rows k0 .. k0 + MB of a cache array (row_bytes per position) into shared rows
     * dst_stride bytes apart, 16 bytes per copy; positions past maxp read as zeros */
    auto stage_rows = [&](void *dst, int dst_stride, const void *src, int row_bytes, int k0) {
        const int chunks = row_bytes / 16;
        for (int i = tid; i < MB * chunks; i += 128) {
            const int r = i / chunks, cc = i % chunks, p = k0 + r;
            const bool in = p <= maxp;
            cp_async16((char *)dst + r * dst_stride + 16 * cc,
                       (const char *)src + (size_t)(in ? p : 0) * row_bytes + 16 * cc, in ? 16 : 0);
        }
    };
    /* every type copied by cp.async: F16 into (K, V) stage st, Q8_0 / Q4_0 into raw stage st */
    auto load_tile = [&](int k0, int st) {
        if constexpr (Q8) {
            int8_t *Kq = raw(st), *Vq = Kq + MB * RB;
            __half *Kd = (__half *)(Vq + MB * RB), *Vd = Kd + MB * NSB;
            stage_rows(Kq, RB, kq, RB, k0);
            stage_rows(Vq, RB, vq, RB, k0);
            for (int i = tid; i < MB * NSB / 2; i += 128) { /* two scales per copy */
                const int r = i / (NSB / 2), cc = i % (NSB / 2), p = k0 + r;
                const bool in = p <= maxp;
                const size_t si = (size_t)(in ? p : 0) * a.nsb + 2 * cc;
                cp_async4(Kd + r * NSB + 2 * cc, ksb + si, in ? 4 : 0);
                cp_async4(Vd + r * NSB + 2 * cc, vsb + si, in ? 4 : 0);
            }
        } else {
            __half *Ks = KVs + 2 * st * MB * LD, *Vs = Ks + MB * LD;
            stage_rows(Ks, LD * 2, kb, HD * 2, k0);
            stage_rows(Vs, LD * 2, vb, HD * 2, k0);
        }
        cp_async_commit();
    };
    /* Q8_0 / Q4_0: raw stage st dequantized into the one (K, V) stage in halves */
    auto convert_tile = [&](int st) {
        const int8_t *Kq = raw(st), *Vq = Kq + MB * RB;
        const __half *Kd = (const __half *)(Vq + MB * RB), *Vd = Kd + MB * NSB;
        __half *Ks = KVs, *Vs = KVs + MB * LD;
        for (int i = tid; i < MB * HD / 8; i += 128) {
            const int r = i / (HD / 8), cc = i % (HD / 8);
            if constexpr (QT == 2) { /* a word holds the row's values 8 cc .. 8 cc + 7 */
                *(uint4 *)(Ks + r * LD + 8 * cc) =
                    cw_q4_to_h8(*(const uint32_t *)(Kq + r * RB + 4 * cc), Kd + r * NSB + cc / 4);
                *(uint4 *)(Vs + r * LD + 8 * cc) =
                    cw_q4_to_h8(*(const uint32_t *)(Vq + r * RB + 4 * cc), Vd + r * NSB + cc / 4);
            } else {
                *(uint4 *)(Ks + r * LD + 8 * cc) =
                    q8_to_h8(Kq + r * HD + 8 * cc, Kd + r * NSB + cc / 4);
                *(uint4 *)(Vs + r * LD + 8 * cc) =
                    q8_to_h8(Vq + r * HD + 8 * cc, Vd + r * NSB + cc / 4);
            }
        }
    };
    if (maxp >= 0) load_tile(0, 0);
    /* Q scaled by scale * log2(e): the softmax runs in powers of two */
    const float qscale = a.scale * 1.44269504088896341f;
#pragma unroll
    for (int j = 0; j < QV; j++) {
        const int i = tid + 128 * j, r = i / (HD / 4), cc = i % (HD / 4);
        *(uint2 *)(Qs + r * LD + 4 * cc) = make_uint2(pack_h2(qv[j].x * qscale, qv[j].y * qscale),
                                                      pack_h2(qv[j].z * qscale, qv[j].w * qscale));
    }
    __syncthreads();
    uint32_t qa[HD / 16][4];
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++)
        ldsm_x4(qa[kk], Qs + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + kk * 16 +
                            (lane >> 4) * 8);
    if constexpr (!Q8) __syncthreads(); /* Q's space is stage 1's, which the loop fills */
    for (int k0 = 0, st = 0; k0 <= maxp; k0 += MB, st ^= 1) {
        if (k0 + MB <= maxp) {
            load_tile(k0 + MB, st ^ 1);
            cp_async_wait<1>(); /* this tile's group is complete, the next may fly */
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if constexpr (Q8) {
            convert_tile(st);
            __syncthreads();
        }
        const __half *Ks = KVs + (Q8 ? 0 : 2 * st * MB * LD), *Vs = Ks + MB * LD;
        float s[MB / 8][4];
#pragma unroll
        for (int j = 0; j < MB / 8; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++)
#pragma unroll
            for (int j = 0; j < MB / 8; j += 2) {
                uint32_t b[4];
                ldsm_x4(b, Ks + (j * 8 + (lane & 7) + (lane >> 4) * 8) * LD + kk * 16 +
                               ((lane >> 3) & 1) * 8);
                mma16816(s[j], qa[kk], b[0], b[1]);
                mma16816(s[j + 1], qa[kk], b[2], b[3]);
            }
        if (k0 + MB - 1 > wmin) { /* the diagonal (or padding): mask keys past each row */
#pragma unroll
            for (int j = 0; j < MB / 8; j++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int key = k0 + j * 8 + 2 * c4 + e;
                    if (key > pos0) s[j][e] = -INFINITY;
                    if (key > pos1) s[j][2 + e] = -INFINITY;
                }
        }
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int j = 0; j < MB / 8; j++) {
            mx0 = fmaxf(mx0, fmaxf(s[j][0], s[j][1]));
            mx1 = fmaxf(mx1, fmaxf(s[j][2], s[j][3]));
        }
#pragma unroll
        for (int off = 1; off < 4; off <<= 1) {
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
        }
        const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        /* a row with every key so far masked keeps max -inf: subtract 0 instead, so its
         * weights stay 0 rather than NaN */
        const float sub0 = mn0 == -INFINITY ? 0.0f : mn0, sub1 = mn1 == -INFINITY ? 0.0f : mn1;
        const float cr0 = ex2(m0 - sub0), cr1 = ex2(m1 - sub1);
        float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
        for (int j = 0; j < MB / 8; j++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                s[j][e] = ex2(s[j][e] - sub0);
                s[j][2 + e] = ex2(s[j][2 + e] - sub1);
                rs0 += s[j][e];
                rs1 += s[j][2 + e];
            }
        /* the row sums stay per lane (the four lanes of a row share its max): one
         * reduction at the end instead of one per tile */
        l0 = l0 * cr0 + rs0;
        l1 = l1 * cr1 + rs1;
        m0 = mn0;
        m1 = mn1;
#pragma unroll
        for (int nt = 0; nt < HD / 8; nt++) {
            o[nt][0] *= cr0, o[nt][1] *= cr0;
            o[nt][2] *= cr1, o[nt][3] *= cr1;
        }
#pragma unroll
        for (int kk = 0; kk < MB / 16; kk++) {
            const uint32_t pa[4] = {pack_h2(s[2 * kk][0], s[2 * kk][1]),
                                    pack_h2(s[2 * kk][2], s[2 * kk][3]),
                                    pack_h2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                    pack_h2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int nt = 0; nt < HD / 8; nt += 2) {
                uint32_t b[4];
                ldsm_x4_t(b, Vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + nt * 8 +
                                 (lane >> 4) * 8);
                mma16816(o[nt], pa, b[0], b[1]);
                mma16816(o[nt + 1], pa, b[2], b[3]);
            }
        }
        __syncthreads(); /* the next iteration's loads reuse this stage */
    }
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
        l0 += __shfl_xor_sync(0xffffffffu, l0, off);
        l1 += __shfl_xor_sync(0xffffffffu, l1, off);
    }
    const int ta = t0 + r0, tb = ta + 8;
    const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
#pragma unroll
    for (int nt = 0; nt < HD / 8; nt++) {
        const int col = nt * 8 + 2 * c4;
        const size_t ea = ((size_t)ta * a.n_head + h) * HD + col,
                     eb = ((size_t)tb * a.n_head + h) * HD + col;
        if (ta < a.n && l0 > 0.0f) {
            const float2 v = make_float2(o[nt][0] * inv0, o[nt][1] * inv0);
            *(float2 *)(a.out + ea) = v;
            if (a.out_h) *(__half2 *)(a.out_h + ea) = __floats2half2_rn(v.x, v.y);
        }
        if (tb < a.n && l1 > 0.0f) {
            const float2 v = make_float2(o[nt][2] * inv1, o[nt][3] * inv1);
            *(float2 *)(a.out + eb) = v;
            if (a.out_h) *(__half2 *)(a.out_h + eb) = __floats2half2_rn(v.x, v.y);
        }
    }
}

template <int HD, int QT> void launch_mma(cuda_backend *c, const pre_args &a) {
    const size_t smem = mma_smem<HD, QT>();
    cw_check(c,
             cudaFuncSetAttribute(attn_mma_kernel<HD, QT>,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
             "attention setup");
    pre_args b = a;
    b.zig = c->tune.attn_zig ? c->n_sm : 0;
    cw_launch(c, a.n <= CW_MV_MAX_TOK, attn_mma_kernel<HD, QT>,
              dim3((unsigned)(((a.n + MB - 1) / MB) * a.n_head)), dim3(128), smem, b);
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
    const KV *kb = (const KV *)a.k + (size_t)kvh * a.n_ctx * hd,
             *vb = (const KV *)a.v + (size_t)kvh * a.n_ctx * hd;
    constexpr bool Q8 = std::is_same<KV, int8_t>::value;
    const __half *ksb = Q8 ? a.ks + (size_t)kvh * a.n_ctx * a.nsb : NULL,
                 *vsb = Q8 ? a.vs + (size_t)kvh * a.n_ctx * a.nsb : NULL;
    auto kv_at = [&](const KV *b, const __half *sb, int p, int d) {
        if constexpr (Q8)
            return (float)b[(size_t)p * hd + d] * __half2float(sb[(size_t)p * a.nsb + d / 32]);
        else
            return (float)b[(size_t)p * hd + d];
    };
    float *sc = a.scores + ((size_t)t * a.n_head + h) * a.n_ctx;
    float mx = -INFINITY;
    for (int p = threadIdx.x; p < p_end; p += blockDim.x) {
        float s = 0.0f;
        for (int d = 0; d < hd; d++) s += qh[d] * kv_at(kb, ksb, p, d);
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
        for (int p = 0; p < p_end; p++) acc += sc[p] * kv_at(vb, vsb, p, d);
        a.out[((size_t)t * a.n_head + h) * hd + d] = acc / sum;
    }
}

/* ---- decode at short contexts: no split, no merge ------------------------------------------
 * When the caller bounds the context (rs_attn.ctx_max: a graph captured for a band of
 * positions) to CM positions, block (SB 32-dim slices, kv head x query slice, token) holds
 * every key of its kv head in registers (KU rows of 8 dims a thread; 16 for Q8_0 and Q4_0),
 * scores all positions for its GB query heads, and each group of NT / SB threads sums the values of
 * one slice. Nothing crosses blocks: the split kernel's partials, fence, counter and the last
 * block's reload cost half of a short-context call (CUDA_NOTES, session 17). A block per slice (SB
 * 1) repeats the scores in every slice; a block per head (SB = HD / 32, 512 threads) scores once
 * and takes one SM per head instead of HD / 32 (32 of 132 for Llama-2-7B), so the next matvec's
 * blocks start on the others and load their weights while the attention runs (CUDA_NOTES, session
 * 20). Keys and values of positions before the step's first are final, so their loads are issued
 * before the grid wait; the step's own positions load after it. Registers, not shared memory: a
 * kernel with ~34 KB of shared memory between kernels with almost none made the SMs change their
 * shared memory / L1 split at every layer (Q8_0 decode -14%, CUDA_NOTES session 18). */
__host__ __device__ constexpr int sh_max_ctx(int hd, int nt) {
    return 128 * nt / hd; /* F16: 16 key rows of 8 dims a thread (Q8_0: 8 of 16) */
}

template <typename KV, int HD, int GB, int NT, int CM, int SB>
__global__ void __launch_bounds__(NT) attn_short_kernel(const __grid_constant__ dec_args a) {
    constexpr bool Q8 = kv_quant<KV>(); /* Q8_0 or Q4_0 */
    constexpr bool Q4 = std::is_same<KV, cw_q4>::value;
    constexpr int NW = NT / 32, NS = NT / SB;  /* threads per value slice */
    constexpr int RE = HD / kv_per<KV>();      /* cache elements a row */
    constexpr int KD = Q4 ? 16 : kv_dpl<KV>(); /* dims of a key row a lane holds */
    constexpr int LP = HD / KD;                /* lanes per key row */
    constexpr int KP = NT / LP;                /* key rows per block step */
    constexpr int KU = CM / KP;                /* key rows per thread */
    constexpr int VP = NS / 4;                 /* positions per value pass of a slice */
    constexpr int VU = CM / VP;                /* value rows per thread */
    static_assert(HD % 32 == 0 && LP <= 32 && CM % KP == 0 && CM % VP == 0 && NS % 32 == 0,
                  "head size");
    using row8 = typename std::conditional<
        Q4, kv_row8_q4, typename std::conditional<Q8, kv_row8_q8, kv_lane<__half>>::type>::type;
    __shared__ float sc[GB][CM];
    __shared__ float red[NW][GB][32];
    __shared__ float s_l[GB];
    cw_griddep_launch();
    const int kvh = blockIdx.y / a.slices, slice = blockIdx.y % a.slices, t = blockIdx.z;
    const int g0 = slice * GB, gn = min(GB, a.G - g0), h0 = kvh * a.G + g0;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int p_end = min(max(1, min(a.pos[t] + 1, a.n_ctx)), CM),
              fresh = max(0, min(a.pos[0], p_end - 1));
    /* keys: lane li of row group kp holds dims KD li .. KD li + KD - 1 of rows kp + KP u
     * (Q8_0: with the scale of their 32-dim block) */
    const int li = tid % LP, kp = tid / LP;
    const KV *kb = (const KV *)a.k + ((size_t)kvh * a.n_ctx * HD + KD * li) / kv_per<KV>();
    const __half *ksb = Q8 ? a.ks + (size_t)kvh * a.n_ctx * a.nsb + KD * li / 32 : NULL;
    /* values: quad lane vd of position group vp of the slice's threads holds its dims
     * 8 vd .. 8 vd + 7 (Q8_0: the slice is one scale's block) */
    const int sl = SB == 1 ? 0 : tid / NS, ds = blockIdx.x * SB + sl, vd = tid & 3,
              vp = (SB == 1 ? tid : tid % NS) >> 2;
    const KV *vb = (const KV *)a.v + ((size_t)kvh * a.n_ctx * HD + 32 * ds + 8 * vd) / kv_per<KV>();
    const __half *vsb = Q8 ? a.vs + (size_t)kvh * a.n_ctx * a.nsb + ds : NULL;
    typename std::conditional<Q4, kv_row16_q4, kv_lane<KV>>::type kr[KU];
    row8 vr[VU];
    if constexpr (Q8) { /* rows past p_end stay zero, as F16's do below */
#pragma unroll
        for (int u = 0; u < KU; u++) kr[u] = {};
#pragma unroll
        for (int u = 0; u < VU; u++) vr[u] = {};
    }
#pragma unroll
    for (int u = 0; u < KU; u++) {
        const int p = kp + KP * u;
        if constexpr (Q8) {
            if (p < fresh) kr[u].load(kb + (size_t)p * RE, ksb + (size_t)p * a.nsb);
        } else {
            kr[u].v = p < fresh ? *(const uint4 *)(kb + (size_t)p * RE) : make_uint4(0, 0, 0, 0);
        }
    }
#pragma unroll
    for (int u = 0; u < VU; u++) {
        const int p = vp + VP * u;
        if constexpr (Q8) {
            if (p < fresh) vr[u].load(vb + (size_t)p * RE, vsb + (size_t)p * a.nsb);
        } else {
            vr[u].v = p < fresh ? *(const uint4 *)(vb + (size_t)p * RE) : make_uint4(0, 0, 0, 0);
        }
    }
    cw_griddep_wait();
#pragma unroll
    for (int u = 0; u < KU; u++) {
        const int p = kp + KP * u;
        if (p >= fresh && p < p_end) kr[u].load_cg(kb + (size_t)p * RE, ksb + (size_t)p * a.nsb);
    }
#pragma unroll
    for (int u = 0; u < VU; u++) {
        const int p = vp + VP * u;
        if (p >= fresh && p < p_end) vr[u].load_cg(vb + (size_t)p * RE, vsb + (size_t)p * a.nsb);
    }
    float qr[GB][KD];
#pragma unroll
    for (int g = 0; g < GB; g++) {
        if (g < gn) {
#pragma unroll
            for (int e = 0; e < KD; e += 8)
                load8(a.q + ((size_t)t * a.n_head + h0 + g) * HD + KD * li + e, qr[g] + e);
            if constexpr (!Q8)
#pragma unroll
                for (int e = 0; e < KD; e++) qr[g][e] *= a.scale;
        } else {
#pragma unroll
            for (int e = 0; e < KD; e++) qr[g][e] = 0.0f;
        }
    }
    /* quantized caches: the query as int8 (q_to_i8) */
    q_i8<16> qi[Q8 ? GB : 1];
    if constexpr (Q8) {
        static_assert(KD == 16, "a lane holds 16 dims of a quantized key");
#pragma unroll
        for (int g = 0; g < GB; g++) q_to_i8(qr[g], a.scale, qi[g]);
    }
    /* scores: the LP lanes of a row reduce within their warp */
#pragma unroll
    for (int u = 0; u < KU; u++) {
        if (KP * u >= p_end) break; /* uniform over the block */
        const int p = kp + KP * u;
        float kf[Q8 ? 1 : KD];
        if constexpr (!Q8) kr[u].get(kf);
#pragma unroll
        for (int g = 0; g < GB; g++) {
            float d = 0.0f;
            if constexpr (Q8) {
                d = (float)kr[u].idot(qi[g]) * (qi[g].d * kr[u].scale());
            } else {
#pragma unroll
                for (int e = 0; e < KD; e++) d += qr[g][e] * kf[e];
            }
#pragma unroll
            for (int o = LP / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
            if (li == 0 && p < p_end) sc[g][p] = d;
        }
    }
    __syncthreads();
    for (int g = warp; g < GB; g += NW) {
        float mx = -INFINITY;
        for (int i = lane; i < p_end; i += 32) mx = fmaxf(mx, sc[g][i]);
        mx = cw_warp_max(mx);
        float sum = 0.0f;
        for (int i = lane; i < p_end; i += 32) {
            const float e = __expf(sc[g][i] - mx);
            sc[g][i] = e;
            sum += e;
        }
        sum = cw_warp_sum(sum);
        if (lane == 0) s_l[g] = sum;
    }
    __syncthreads();
    float acc[GB][8];
#pragma unroll
    for (int g = 0; g < GB; g++)
#pragma unroll
        for (int e = 0; e < 8; e++) acc[g][e] = 0.0f;
#pragma unroll
    for (int u = 0; u < VU; u++) {
        const int p = vp + VP * u;
        if (p >= p_end) break;
        float vf[8];
        if constexpr (Q8)
            vr[u].get_raw(vf);
        else
            vr[u].get(vf);
#pragma unroll
        for (int g = 0; g < GB; g++) {
            float wt = sc[g][p];
            if constexpr (Q8) wt *= vr[u].scale();
#pragma unroll
            for (int e = 0; e < 8; e++) acc[g][e] += wt * vf[e];
        }
    }
    /* the warp's eight position groups of each quad lane, then the slice's warps */
#pragma unroll
    for (int o = 4; o < 32; o <<= 1)
#pragma unroll
        for (int g = 0; g < GB; g++)
#pragma unroll
            for (int e = 0; e < 8; e++) acc[g][e] += __shfl_xor_sync(0xffffffffu, acc[g][e], o);
    if (lane < 4)
#pragma unroll
        for (int g = 0; g < GB; g++)
#pragma unroll
            for (int e = 0; e < 8; e++) red[warp][g][8 * lane + e] = acc[g][e];
    __syncthreads();
    /* item i: query head i / SB, slice i % SB, whose warps are NS / 32 in a row */
    for (int i = warp; i < gn * SB; i += NW) {
        const int g = i / SB, is = i % SB;
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < NS / 32; w++) v += red[is * (NS / 32) + w][g][lane];
        v /= s_l[g];
        const size_t e = ((size_t)t * a.n_head + h0 + g) * HD + 32 * (blockIdx.x * SB + is);
        a.out[e + lane] = v;
        if (a.xq) cw_q8_block(v, lane, a.xq + e + lane, a.xd + e / 32);
    }
}

template <typename KV, int GB>
void launch_dec_lp(cuda_backend *c, int lp, dim3 grid, size_t smem, const dec_args &a) {
    /* lanes per row: hd / 16 for Q8_0, hd / 32 for Q4_0 (hd <= 256) */
    constexpr bool q4 = std::is_same<KV, cw_q4>::value, quant = kv_quant<KV>();
    void (*k)(dec_args) = NULL;
    switch (lp) {
    case 1:
        k = attn_dec_kernel<KV, 1, GB>;
        break;
    case 2:
        k = attn_dec_kernel<KV, 2, GB>;
        break;
    case 4:
        k = attn_dec_kernel<KV, 4, GB>;
        break;
    case 8:
        k = attn_dec_kernel<KV, 8, GB>;
        break;
    case 16:
        if constexpr (!q4) k = attn_dec_kernel<KV, 16, GB>;
        break;
    default:
        if constexpr (!quant) k = attn_dec_kernel<KV, 32, GB>;
        break;
    }
    if (!k) { /* not reached: attn_decode checks the shape */
        cw_fail(c, RS_ERR_UNSUPPORTED, "decode attention: no kernel for %d lanes a row", lp);
        return;
    }
    if (smem > 48 * 1024)
        cw_check(c, cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
                 "attention setup");
    cw_launch(c, true, k, grid, dim3(128), smem, a);
}

/* The fields every decode launch sets (the split kernel adds its own; the Q8_0 scales stay
 * NULL for other caches), and the int8 copy of out for the next matvec when head_dim allows
 * (*slot: its slot, for cw_q8_tag). */
dec_args dec_common(cuda_backend *c, const float *q, const rs_kv *kv, size_t layer_off,
                    size_t sc_off, const int32_t *pos, int n, const rs_attn *at, int slices,
                    float *out, int *slot) {
    const int hd = at->head_dim;
    const int64_t elems = (int64_t)n * at->n_head * hd;
    void *q8 = hd % 32 == 0 ? cw_q8_for_producer(c, elems, slot) : NULL;
    dec_args a = {};
    a.q = q;
    a.k = (const char *)kv->k + layer_off;
    a.v = (const char *)kv->v + layer_off;
    a.ks = kv->ks ? kv->ks + sc_off : NULL;
    a.vs = kv->vs ? kv->vs + sc_off : NULL;
    a.nsb = kv->nsb;
    a.pos = pos;
    a.out = out;
    a.xq = (int8_t *)q8;
    a.xd = q8 ? cw_q8_scales(q8, elems) : NULL;
    a.n_head = at->n_head, a.n_head_kv = at->n_head_kv, a.G = at->n_head / at->n_head_kv;
    a.slices = slices, a.n_ctx = kv->d.n_ctx, a.scale = at->scale;
    return a;
}

/* The kernel for a block per head (512 threads) or per 32-dim slice (128, or 256 when
 * wide), over the context 128 or 256 such threads' registers hold. */
using short_fn = void (*)(dec_args);
template <typename KV, int HD, int GB> short_fn attn_short_pick_gb(bool wide, bool per_head) {
    constexpr int C1 = sh_max_ctx(HD, 128), C2 = sh_max_ctx(HD, 256);
    if (per_head)
        return wide ? attn_short_kernel<KV, HD, GB, 512, C2, HD / 32>
                    : attn_short_kernel<KV, HD, GB, 512, C1, HD / 32>;
    return wide ? attn_short_kernel<KV, HD, GB, 256, C2, 1>
                : attn_short_kernel<KV, HD, GB, 128, C1, 1>;
}
template <typename KV, int HD> short_fn attn_short_pick(int gb, bool wide, bool per_head) {
    return gb == 2 ? attn_short_pick_gb<KV, HD, 2>(wide, per_head)
                   : attn_short_pick_gb<KV, HD, 1>(wide, per_head);
}
template <typename KV> short_fn attn_short_pick(int hd, int gb, bool wide, bool per_head) {
    return hd == 64 ? attn_short_pick<KV, 64>(gb, wide, per_head)
                    : attn_short_pick<KV, 128>(gb, wide, per_head);
}
/* Quantized caches of query-head groups past the 256 threads' context: a block per head. */
template <typename KV> short_fn attn_short_wider(int hd) {
    return hd == 64 ? attn_short_kernel<KV, 64, 1, 512, sh_max_ctx(64, 512), 2>
                    : attn_short_kernel<KV, 128, 1, 512, sh_max_ctx(128, 512), 4>;
}

/* The short-context launch (attn_short_kernel): an F16, Q8_0 or Q4_0 cache, head_dim 64 or 128,
 * and a context the caller bounds to what 128 or 256 threads' registers hold; false
 * otherwise. */
bool attn_short(cuda_backend *c, const float *q, const rs_kv *kv, size_t layer_off, size_t sc_off,
                const int32_t *pos, int n, const rs_attn *at, float *out) {
    const int hd = at->head_dim, tg = c->tune.attn_gb, G = at->n_head / at->n_head_kv;
    const bool q4 = kv->d.type == RS_KV_Q4_0, q8 = kv->d.type == RS_KV_Q8_0 || q4,
               per_head = c->tune.attn_pack != 1;
    /* a Q8_0 row takes half an F16 row's registers (Q4_0: a quarter; it keeps Q8_0's
     * bounds), so a block per query head holds twice
     * the context: for query-head groups (whose split calls cost the most) that is faster
     * than flash-decoding (Llama-3-8B and 3B shapes +5% at 384-511 positions, TinyLlama
     * +7.5% at 800-927); one head a kv head measured 0.5% slower (CUDA_NOTES session 33) */
    const bool wider_ok = q8 && per_head && tg != 2 && G > 1;
    if (!c->tune.attn_short || (kv->d.type != RS_KV_F16 && !q8) || (hd != 64 && hd != 128) ||
        (q8 && kv->nsb != hd / 32) || at->ctx_max <= 0 ||
        at->ctx_max > sh_max_ctx(hd, wider_ok ? 512 : 256) || (tg != 0 && tg != 1 && tg != 2))
        return false;
    const bool wide = at->ctx_max > sh_max_ctx(hd, 128), /* 256 threads */
        wider = at->ctx_max > sh_max_ctx(hd, 256);
    /* one query head per block by default: twice the blocks, and the scores of a group
     * cost little next to the latency they hide */
    const int GB = tg == 2 ? 2 : 1, slices = (G + GB - 1) / GB;
    int slot = 0;
    dec_args a = dec_common(c, q, kv, layer_off, sc_off, pos, n, at, slices, out, &slot);
    const dim3 grid(per_head ? 1 : hd / 32, at->n_head_kv * slices, n);
    const short_fn k = wider ? (q4 ? attn_short_wider<cw_q4>(hd) : attn_short_wider<int8_t>(hd))
                       : q4  ? attn_short_pick<cw_q4>(hd, GB, wide, per_head)
                       : q8  ? attn_short_pick<int8_t>(hd, GB, wide, per_head)
                             : attn_short_pick<__half>(hd, GB, wide, per_head);
    cw_launch(c, true, k, grid, dim3(per_head ? 512 : wide ? 256 : 128), 0, a);
    if (a.xq) cw_q8_tag(c, out, (int64_t)n * at->n_head * hd, slot);
    return true;
}

/* Flash-decoding launch; false when this shape needs another kernel. */
bool attn_decode(cuda_backend *c, const float *q, const rs_kv *kv, size_t layer_off, size_t sc_off,
                 const int32_t *pos, int n, const rs_attn *at, float *out) {
    const rs_kv_type kt = kv->d.type;
    const int dpl = kt == RS_KV_Q4_0   ? 32
                    : kt == RS_KV_Q8_0 ? 16
                                       : 8,
              hd = at->head_dim, lp = hd / dpl;
    if (hd % dpl || hd > 256 || (lp & (lp - 1))) return false;
    if (attn_short(c, q, kv, layer_off, sc_off, pos, n, at, out)) return true;
    const int G = at->n_head / at->n_head_kv;
    /* two query heads per block: a group of G reads its K and V G / 2 times, from L2
     * after the first, but twice the blocks fill the GPU and hold fewer registers
     * (G = 4 at 4096 positions: 18.2 us with 4 heads per block, 15.9 with 2; G = 8:
     * 21.1 with 8, 15.3 with 2; docs/CUDA_NOTES.md session 5). Without groups, one
     * (Q8_0 took two until its loads were prefetched: 32/32 heads at 4096 positions
     * 18.5 us with one, 20.0 with two; session 14) */
    int GB = std::min(G, 2);
    const int tg = c->tune.attn_gb;
    if (tg == 1 || tg == 2 || tg == 4 || tg == 8) GB = tg; /* forced (benchmarks, tests) */
    if (kt == RS_KV_F32) GB = 8;
    /* F16, groups of 8 or more past 8192 positions (the band, as for Q4_0 below): four, each
     * kv head's rows read half as often. Llama-3-70B shape tg64 greedy, this rule against
     * two (run 417): depth 8192 56.81 → 57.84, 16384 49.93 → 53.06. Groups of 4 lose
     * (Llama-3-8B shape at 16384 309.4 → 266.6, run 416), as Q8_0 caches do (70B 56.26 →
     * 53.57) */
    if (kt == RS_KV_F16 && tg == 0 && G >= 8 && at->ctx_max > 8192) GB = 4;
    /* Q4_0: one query head a block, or two (a lane's 32 dims of four heads are past the
     * registers). Two, held to 128 registers by the kernel's launch bounds, win only at
     * long contexts, the sooner the larger the group: they are chosen where the step's
     * band of positions (rs_attn.ctx_max: a band (m/2, m], or the last one, cut at the
     * cache's size, starting at the power of two below it) lies past 16384 positions, or
     * past 8192 for groups of 8. tg64 greedy, one head a block → two (run 412): Llama-3-8B
     * shape (G 4) at depth 4096 397.8 → 380.7, 8192 381.1 → 372.2, 16384 349.6 → 354.7;
     * Llama-3-70B shape (G 8) 62.3 → 61.6, 59.6 → 60.3, 55.0 → 57.9. Unbounded calls take
     * one; RUSTY_CUDA_TUNE=attn_gb=1 or 2 forces either */
    if (kt == RS_KV_Q4_0) {
        const int past = G >= 8 ? 8192 : 16384;
        GB = tg == 2 || (tg == 0 && G >= 2 && at->ctx_max > past) ? 2 : 1;
    }
    const int slices = (G + GB - 1) / GB, n_ctx = kv->d.n_ctx;
    /* chunk bounds: a fixed chunk when tuned, else 32..1024 positions with at
     * most 512 splits; s_target splits per head give ~4 blocks per SM */
    int c_min = 32, c_max = 1024;
    /* Q4_0: a chunk at least one load round of the block (lp lanes a row, 128 threads, 4
     * positions in flight a lane: 128 positions for heads of 128), else some of its lanes
     * load nothing: 32/32 heads at 512 positions 9.1 us with 32-position chunks, 7.1 with
     * 128 (run 348) */
    if (kt == RS_KV_Q4_0) c_min = std::max(32, 4 * (128 / lp));
    if (c->tune.attn_chunk > 0) c_min = c_max = (c->tune.attn_chunk + 31) / 32 * 32;
    while ((n_ctx + c_min - 1) / c_min > 512) c_min *= 2;
    c_max = std::max(c_max, c_min);
    while (c_max > c_min && (size_t)GB * c_max * 4 > 32768) c_max /= 2;
    const int s_target = std::min(32, std::max(1, 4 * c->n_sm / (at->n_head_kv * slices * n)));
    /* enough splits for any position: about s_target once chunks grow past
     * c_min, and n_ctx / c_max at the longest chunks (see dec_chunk) */
    const int n_split =
        std::min((n_ctx + c_min - 1) / c_min, std::max(s_target + 1, (n_ctx + c_max - 1) / c_max));
    const size_t smem = (size_t)(GB * c_max + 4 * GB * hd + GB * n_split) * sizeof(float);
    if (smem > c->smem_optin) return false;
    const size_t n_part = (size_t)n * at->n_head * n_split;
    const size_t o_bytes = (n_part * hd * sizeof(float) + 255) / 256 * 256;
    char *part = (char *)cw_scratch(c, CW_SCR_PART, o_bytes + n_part * sizeof(float2));
    unsigned *cnt = (unsigned *)cw_scratch(c, CW_SCR_CNT,
                                           (size_t)n * at->n_head_kv * slices * sizeof(unsigned));
    if (!part || !cnt) return true;
    int slot = 0;
    dec_args a = dec_common(c, q, kv, layer_off, sc_off, pos, n, at, slices, out, &slot);
    a.part_o = (float *)part;
    a.part_ml = (float2 *)(part + o_bytes);
    a.cnt = cnt;
    a.n_split = n_split;
    a.c_min = c_min, a.c_max = c_max, a.s_target = s_target;
    const dim3 grid(n_split, at->n_head_kv * slices, n);
    if (kt == RS_KV_F32)
        launch_dec_lp<float, 8>(c, lp, grid, smem, a);
    else if (kt == RS_KV_Q8_0 && GB == 1)
        launch_dec_lp<int8_t, 1>(c, lp, grid, smem, a);
    else if (kt == RS_KV_Q8_0 && GB == 2)
        launch_dec_lp<int8_t, 2>(c, lp, grid, smem, a);
    else if (kt == RS_KV_Q8_0 && GB == 4)
        launch_dec_lp<int8_t, 4>(c, lp, grid, smem, a);
    else if (kt == RS_KV_Q8_0)
        launch_dec_lp<int8_t, 8>(c, lp, grid, smem, a);
    else if (kt == RS_KV_Q4_0 && GB == 1)
        launch_dec_lp<cw_q4, 1>(c, lp, grid, smem, a);
    else if (kt == RS_KV_Q4_0)
        launch_dec_lp<cw_q4, 2>(c, lp, grid, smem, a);
    else if (GB == 1)
        launch_dec_lp<__half, 1>(c, lp, grid, smem, a);
    else if (GB == 2)
        launch_dec_lp<__half, 2>(c, lp, grid, smem, a);
    else if (GB == 4)
        launch_dec_lp<__half, 4>(c, lp, grid, smem, a);
    else
        launch_dec_lp<__half, 8>(c, lp, grid, smem, a);
    if (a.xq) cw_q8_tag(c, out, (int64_t)n * at->n_head * hd, slot);
    return true;
}

template <typename KV> void launch_pre(cuda_backend *c, const pre_args &a) {
    const size_t smem = pre_smem(a.hd);
    void (*k)(pre_args) = a.hd <= 64
                              ? attn_pre_kernel<KV, 1>
                              : (a.hd <= 128 ? attn_pre_kernel<KV, 2> : attn_pre_kernel<KV, 4>);
    cw_check(c, cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
             "attention setup");
    cw_launch(c, a.n <= CW_MV_MAX_TOK, k, dim3((a.n + PB - 1) / PB, a.n_head), dim3(256), smem, a);
}

} // namespace

void cw_attention(cuda_backend *c, const float *q, rs_kv *kv, int layer, const int32_t *pos, int n,
                  const rs_attn *at, float *out) {
    const size_t layer_off = (size_t)layer * cw_kv_layer_bytes(kv);
    const size_t sc_off = (size_t)layer * kv->d.n_head_kv * kv->d.n_ctx * kv->nsb;
    if (n <= c->tune.attn_decode_max && attn_decode(c, q, kv, layer_off, sc_off, pos, n, at, out))
        return;
    pre_args a = {};
    a.q = q;
    a.k = (const char *)kv->k + layer_off;
    a.v = (const char *)kv->v + layer_off;
    a.ks = kv->ks ? kv->ks + sc_off : NULL;
    a.vs = kv->vs ? kv->vs + sc_off : NULL;
    a.nsb = kv->nsb;
    a.pos = pos;
    a.out = out;
    a.n = n, a.n_head = at->n_head, a.n_head_kv = at->n_head_kv, a.hd = at->head_dim,
    a.n_ctx = kv->d.n_ctx;
    a.scale = at->scale;
    int kt = kv->d.type;
    /* the tensor-core kernel stages Q8_0 and Q4_0 scales as hd / 32 per position */
    if (c->tune.attn_mma && kt != RS_KV_F32 && (a.hd == 64 || a.hd == 128) &&
        (kt != RS_KV_Q8_0 || a.nsb == a.hd / 32)) {
        /* prompts: the output's F16 copy too, which the output projection's GEMM takes
         * instead of converting it (tagged h16_src as the norms and SwiGLU do) */
        const int64_t elems = (int64_t)n * a.n_head * a.hd;
        if (n > CW_MV_MAX_TOK && c->tune.attn_h16)
            a.out_h = (__half *)cw_scratch(c, CW_SCR_XH, 2 * cw_half_bytes(elems));
        if (kt == RS_KV_Q8_0)
            a.hd == 64 ? launch_mma<64, 1>(c, a) : launch_mma<128, 1>(c, a);
        else if (kt == RS_KV_Q4_0)
            a.hd == 64 ? launch_mma<64, 2>(c, a) : launch_mma<128, 2>(c, a);
        else
            a.hd == 64 ? launch_mma<64, 0>(c, a) : launch_mma<128, 0>(c, a);
        if (a.out_h) {
            c->h16_src = out;
            c->h16_elems = elems;
        }
        return;
    }
    if (kt == RS_KV_Q4_0) { /* the other prompt kernels read a Q4_0 cache converted to F16 */
        const __half *h = cw_kv_q4_to_f16(c, kv, layer, pos, n);
        if (!h) return;
        a.k = h;
        a.v = h + (size_t)kv->d.n_head_kv * kv->d.n_ctx * kv->d.head_dim;
        a.ks = a.vs = NULL;
        kt = RS_KV_F16;
    }
    if (a.hd % 4 == 0 && a.hd <= 256 && pre_smem(a.hd) <= c->smem_optin) {
        if (kt == RS_KV_F16)
            launch_pre<__half>(c, a);
        else if (kt == RS_KV_Q8_0)
            launch_pre<int8_t>(c, a);
        else
            launch_pre<float>(c, a);
        return;
    }
    a.scores =
        (float *)cw_scratch(c, CW_SCR_SCORE, (size_t)n * at->n_head * kv->d.n_ctx * sizeof(float));
    if (!a.scores) return;
    const dim3 grid(n, at->n_head);
    if (kt == RS_KV_F16)
        cw_launch(c, n <= CW_MV_MAX_TOK, attn_generic_kernel<__half>, grid, dim3(128), 0, a);
    else if (kt == RS_KV_Q8_0)
        cw_launch(c, n <= CW_MV_MAX_TOK, attn_generic_kernel<int8_t>, grid, dim3(128), 0, a);
    else
        cw_launch(c, n <= CW_MV_MAX_TOK, attn_generic_kernel<float>, grid, dim3(128), 0, a);
}

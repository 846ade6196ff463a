/* cuda_mvt.cuh — the pieces every matvec-family kernel shares (cuda_matvec.cu,
 * cuda_fused.cu): the launch arguments, one "task" per weight type (the unit a
 * lane handles at a time: 16 bytes of quants, 32 for Q8_0, 48 for Q6_K, and
 * the matching activations), and the main loop.
 *
 * Quantized types take the activations as int8 blocks of 32 with a scale
 * (and the scaled sum, for types with an offset), so the inner product is
 * integer dp4a work; the float types (F32/F16/BF16) use the f32 activations.
 * Weights are read before cw_griddep_wait(): they never change, so under
 * programmatic dependent launch their fetch overlaps the previous kernel.
 *
 * A launch may consume a deferred norm (cuda_backend::defer): its input is
 * then x * w, every product is multiplied by s per token, and the kernel
 * writes the norm's real output xn = (x * w) * s on the side. */
#ifndef RUSTY_CUDA_MVT_CUH
#define RUSTY_CUDA_MVT_CUH

#include "backend/cuda/cuda_common.cuh"

namespace {

enum { MV_MAX_PROD = 4, MV_WARPS = 4 };

struct mv_prod {
    cw_layout w;
    float *y;
    const float *bias;
    int64_t row0; /* first row of this product in the launch's row space */
};

struct mv_args {
    mv_prod p[MV_MAX_PROD];
    int np;
    int n;        /* tokens */
    int64_t rows; /* rows of all products */
    int64_t n_in;
    const float *x;   /* [n][n_in] f32 (float types) */
    const int8_t *xq; /* [n][n_in] int8 (quantized types) */
    const cw_q8s *xd; /* [n][n_in / 32] scales of xq */
    /* deferred norm of the input, or npart == NULL: per token t the scale is
     * s = 1 / sqrt(sum(npart[t][0 .. n_npart)) / ndim + neps); xn (when not
     * NULL) receives x * s */
    const float *npart;
    int n_npart;
    float ndim, neps;
    float *xn;
};

constexpr uint32_t M4 = 0x0F0F0F0Fu, ONES = 0x01010101u;

__device__ __forceinline__ int dp4a(uint32_t a, int b, int c) {
    return __dp4a((int)a, b, c);
}

/* Bit k (k < 4) of v to bit 4 of byte k: the fifth bits of Q5_0/Q5_1. */
__device__ __forceinline__ uint32_t spread4(uint32_t v) {
    return (((v & 0xFu) * 0x00204081u) & ONES) << 4;
}

__device__ __forceinline__ int4 ld_x16(const int8_t *p) {
    return *(const int4 *)p;
}

__device__ __forceinline__ int sum_bytes(int4 a) {
    int s = __dp4a(a.x, (int)ONES, 0);
    s = __dp4a(a.y, (int)ONES, s);
    s = __dp4a(a.z, (int)ONES, s);
    return __dp4a(a.w, (int)ONES, s);
}

/* Sum of 32 products: low nibbles of q against x elements 0..15 (a), high
 * nibbles against 16..31 (b) — the legacy block nibble order. Two chains of
 * four dp4a, not one of eight (the chain kernel's consumers stall on the
 * dependency), the high nibbles masked in place: 16 times their values as
 * unsigned bytes, so no shift per word, and the sum is exact, bit for bit. */
__device__ __forceinline__ int dp4a_us(uint32_t a, int b, int c) {
    return cw_dp4a_us(a, b, c);
}
__device__ __forceinline__ int dot_nibbles(uint4 q, int4 a, int4 b) {
    constexpr uint32_t H4 = ~M4;
    int lo = dp4a(q.x & M4, a.x, 0), hi = dp4a_us(q.x & H4, b.x, 0);
    lo = dp4a(q.y & M4, a.y, lo);
    hi = dp4a_us(q.y & H4, b.y, hi);
    lo = dp4a(q.z & M4, a.z, lo);
    hi = dp4a_us(q.z & H4, b.z, hi);
    lo = dp4a(q.w & M4, a.w, lo);
    hi = dp4a_us(q.w & H4, b.w, hi);
    return lo + (hi >> 4);
}

__device__ __forceinline__ int dot_bytes(uint4 q, int4 a) {
    int s = dp4a(q.x, a.x, 0);
    s = dp4a(q.y, a.y, s);
    s = dp4a(q.z, a.z, s);
    return dp4a(q.w, a.w, s);
}

__device__ __forceinline__ uint16_t ld_u16(const uint8_t *p) {
    return __ldg((const unsigned short *)p);
}

/* Q4_K/Q5_K: dx * (d * sc * sum q x - dmin * m * sum x) for the two
 * sub-blocks of a task; sm holds (sc0, sc1, m0, m1) as bytes (the x sums of
 * these 16-element halves come from dp4a: cheaper than loading them; the
 * decode chain keeps them with its activations). */
__device__ __forceinline__ float k_finish(__half2 dm, uint32_t sm, int sum0, int sum1, float sx0,
                                          float sx1, float dx0, float dx1) {
    const float2 d = __half22float2(dm);
    return dx0 *
               (d.x * (float)(sm & 0xFFu) * (float)sum0 - d.y * (float)((sm >> 16) & 0xFFu) * sx0) +
           dx1 * (d.x * (float)((sm >> 8) & 0xFFu) * (float)sum1 - d.y * (float)(sm >> 24) * sx1);
}

/* ---- per-type tasks ----------------------------------------------------------------------------
 *
 * A type's task is split in two so that a warp's rows share their activation
 * loads (the rows of a lane's task k read the same activations): xload reads
 * piece m of task k's activations (X; XM pieces per task), step adds row r's
 * products with piece m to its partial sum p (P), and finish turns p into the
 * task's contribution. Most types read one piece and step sets p outright;
 * the 16-element sub-block K-quants (Q2_K, Q3_K, Q6_K) read four, one per x
 * block they touch, so only one piece is live at a time. mv_dot_rows
 * (below) runs them; the arithmetic per row is the one of a single dot. */

template <int T> struct mvt;

/* One activation piece per task; p is the task's sum. */
struct mvt_one {
    static constexpr int XM = 1;
    using P = float;
    template <typename R> static __device__ float finish(const R &, float p) { return p; }
};

/* Task k = x block k: its two 16-value halves and (d, d * sum, ...). */
struct mvt_x32 : mvt_one {
    struct X {
        int4 a, b;
        cw_q8s s;
    };
    static __device__ X xload(int64_t k, int, const int8_t *xq, const cw_q8s *xd, const float *) {
        return {ld_x16(xq + 32 * k), ld_x16(xq + 32 * k + 16), xd[k]};
    }
};

template <> struct mvt<RS_DTYPE_Q4_0> : mvt_x32 {
    static constexpr int U = 4;
    struct R {
        uint4 q;
        float d;
    };
    static __host__ __device__ int64_t ntask(const cw_layout &L) { return L.nb; }
    static __device__ void load(const cw_layout &L, int64_t row, int64_t k, R &r) {
        const int64_t b = row * L.nb + k;
        r.q = cw_ld_nc(L.qs + b * 16);
        r.d = cw_h2f(ld_u16(L.dm + b * 2));
    }
    static __device__ void step(const R &r, const X &x, int64_t, int, float &p) {
        const int sum = dot_nibbles(r.q, x.a, x.b);
        p = r.d * (x.s.x * (float)sum - 8.0f * x.s.y);
    }
};

template <> struct mvt<RS_DTYPE_IQ4_NL> : mvt<RS_DTYPE_Q4_0> {
    static __device__ void step(const R &r, const X &x, int64_t, int, float &p) {
        int s = cw_iq4nl_dot(r.q.x, x.a.x, x.b.x, 0);
        s = cw_iq4nl_dot(r.q.y, x.a.y, x.b.y, s);
        s = cw_iq4nl_dot(r.q.z, x.a.z, x.b.z, s);
        s = cw_iq4nl_dot(r.q.w, x.a.w, x.b.w, s);
        p = r.d * x.s.x * (float)s;
    }
};

/* IQ4_XS (repacked, cuda_common.cuh): task k = sub-block k % 8 of super-block k / 8 = x
 * block k, whose 16 quant bytes sit as an IQ4_NL block's (at 16 k in the row's qs), so
 * IQ4_NL's step; its scale d * (ls - 32) is made at the load, exact in f32 (an fp16 times
 * a 6-bit integer), as the CPU's dequantizer makes it. The device keeps d per super-block
 * and the multipliers as bytes: 138 bytes per 256 weights, 4.31 bits a weight against the
 * file's 4.25 (decode streams them, bandwidth-bound). An f32 scale per 32 would stream 5.0
 * bits, d and a byte per 32 4.75; the file's packed 6-bit scales would save 1.5% of the
 * bytes for a dozen integer ops per task in a loop that IQ4_NL's lookups already make
 * issue-bound (docs/CUDA_NOTES.md, batch-1 matvec). */
template <> struct mvt<RS_DTYPE_IQ4_XS> : mvt<RS_DTYPE_IQ4_NL> {
    static __host__ __device__ int64_t ntask(const cw_layout &L) { return L.nb * 8; }
    static __device__ void load(const cw_layout &L, int64_t row, int64_t k, R &r) {
        const int64_t b = row * L.nb * 8 + k; /* 32-value block: super-block b / 8 */
        r.q = cw_ld_nc(L.qs + b * 16);
        r.d = cw_h2f(ld_u16(L.dm + (b >> 3) * 2)) * (float)__ldg((const signed char *)L.aux + b);
    }
};

template <> struct mvt<RS_DTYPE_Q4_1> : mvt_x32 {
    static constexpr int U = 4;
    struct R {
        uint4 q;
        float2 dm;
    };
    static __host__ __device__ int64_t ntask(const cw_layout &L) { return L.nb; }
    static __device__ void load(const cw_layout &L, int64_t row, int64_t k, R &r) {
        const int64_t b = row * L.nb + k;
        r.q = cw_ld_nc(L.qs + b * 16);
        r.dm = __half22float2(__ldg((const __half2 *)(L.dm + b * 4)));
    }
    static __device__ void step(const R &r, const X &x, int64_t, int, float &p) {
        const int sum = dot_nibbles(r.q, x.a, x.b);
        p = r.dm.x * x.s.x * (float)sum + r.dm.y * x.s.y;
    }
};

/* Q5_0/Q5_1: nibbles plus the fifth bit of element j at bit j of qh. */
__device__ __forceinline__ int dot_q5(uint4 q, uint32_t h, int4 a, int4 b) {
    int s = 0;
    s = dp4a((q.x & M4) | spread4(h), a.x, s);
    s = dp4a(((q.x >> 4) & M4) | spread4(h >> 16), b.x, s);
    s = dp4a((q.y & M4) | spread4(h >> 4), a.y, s);
    s = dp4a(((q.y >> 4) & M4) | spread4(h >> 20), b.y, s);
    s = dp4a((q.z & M4) | spread4(h >> 8), a.z, s);
    s = dp4a(((q.z >> 4) & M4) | spread4(h >> 24), b.z, s);
    s = dp4a((q.w & M4) | spread4(h >> 12), a.w, s);
    s = dp4a(((q.w >> 4) & M4) | spread4(h >> 28), b.w, s);
    return s;
}

template <> struct mvt<RS_DTYPE_Q5_0> : mvt_x32 {
    static constexpr int U = 4;
    struct R {
        uint4 q;
        uint32_t h;
        float d;
    };
    static __host__ __device__ int64_t ntask(const cw_layout &L) { return L.nb; }
    static __device__ void load(const cw_layout &L, int64_t row, int64_t k, R &r) {
        const int64_t b = row * L.nb + k;
        r.q = cw_ld_nc(L.qs + b * 16);
        r.h = __ldg((const unsigned *)(L.aux + b * 4));
        r.d = cw_h2f(ld_u16(L.dm + b * 2));
    }
    static __device__ void step(const R &r, const X &x, int64_t, int, float &p) {
        const int sum = dot_q5(r.q, r.h, x.a, x.b);
        p = r.d * (x.s.x * (float)sum - 16.0f * x.s.y);
    }
};

template <> struct mvt<RS_DTYPE_Q5_1> : mvt_x32 {
    static constexpr int U = 4;
    struct R {
        uint4 q;
        uint32_t h;
        float2 dm;
    };
    static __host__ __device__ int64_t ntask(const cw_layout &L) { return L.nb; }
    static __device__ void load(const cw_layout &L, int64_t row, int64_t k, R &r) {
        const int64_t b = row * L.nb + k;
        r.q = cw_ld_nc(L.qs + b * 16);
        r.h = __ldg((const unsigned *)(L.aux + b * 4));
        r.dm = __half22float2(__ldg((const __half2 *)(L.dm + b * 4)));
    }
    static __device__ void step(const R &r, const X &x, int64_t, int, float &p) {
        const int sum = dot_q5(r.q, r.h, x.a, x.b);
        p = r.dm.x * x.s.x * (float)sum + r.dm.y * x.s.y;
    }
};

template <> struct mvt<RS_DTYPE_Q8_0> : mvt_one {
    static constexpr int U = 4;
    struct R {
        uint4 a, b;
        float d;
    };
    struct X {
        int4 a, b;
        float d;
    };
    static __host__ __device__ int64_t ntask(const cw_layout &L) { return L.nb; }
    static __device__ void load(const cw_layout &L, int64_t row, int64_t k, R &r) {
        const int64_t b = row * L.nb + k;
        r.a = cw_ld_nc(L.qs + b * 32);
        r.b = cw_ld_nc(L.qs + b * 32 + 16);
        r.d = cw_h2f(ld_u16(L.dm + b * 2));
    }
    static __device__ X xload(int64_t k, int, const int8_t *xq, const cw_q8s *xd, const float *) {
        return {ld_x16(xq + 32 * k), ld_x16(xq + 32 * k + 16), xd[k].x};
    }
    static __device__ void step(const R &r, const X &x, int64_t, int, float &p) {
        const int s = dot_bytes(r.a, x.a) + dot_bytes(r.b, x.b);
        p = r.d * x.d * (float)s;
    }
};

/* Q4_K/Q5_K task on its activations a, b (the same half of x blocks j0 and
 * j0 + 1 of its super-block; sx0, sx1 their sums, dx0, dx1 their scales): the
 * two sub-block sums of 16 elements, nibbles of q plus (Q5_K, H) the fifth bit
 * of sub-blocks j0, j0 + 1 from h, and k_finish. Shared by both types and the
 * decode chain (cuda_chain.cuh); without H the h terms fold away. */
template <bool H>
__device__ __forceinline__ float k_dot_x(uint4 q, uint4 h, int j0, uint32_t sm, __half2 dm, int4 a,
                                         int4 b, float sx0, float sx1, float dx0, float dx1) {
    const uint32_t qv[4] = {q.x, q.y, q.z, q.w}, hv[4] = {h.x, h.y, h.z, h.w};
    const int av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
    int s0 = 0, s1 = 0;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const uint32_t h0 = H ? ((hv[i] >> j0) & ONES) << 4 : 0u,
                       h1 = H ? ((hv[i] >> (j0 + 1)) & ONES) << 4 : 0u;
        s0 = dp4a((qv[i] & M4) | h0, av[i], s0);
        s1 = dp4a(((qv[i] >> 4) & M4) | h1, bv[i], s1);
    }
    return k_finish(dm, sm, s0, s1, sx0, sx1, dx0, dx1);
}

/* Q4_K/Q5_K activations of task (super-block k / 8, chunk c = k % 8): half
 * c & 1 of x blocks xb and xb + 1 (xb = 8 (k / 8) + j0, j0 = 2 (c / 2)), with
 * their sums and scales. */
struct mvt_xk : mvt_one {
    struct X {
        int4 a, b;
        float sx0, sx1, dx0, dx1;
    };
    static __device__ int j0(int64_t k) { return 2 * ((int)(k & 7) >> 1); }
    static __device__ X xload(int64_t k, int, const int8_t *xq, const cw_q8s *xd, const float *) {
        const int h = (int)(k & 1);
        const int64_t xb = (k >> 3) * 8 + j0(k);
        const int4 a = ld_x16(xq + 32 * xb + 16 * h), b = ld_x16(xq + 32 * (xb + 1) + 16 * h);
        return {a, b, (float)sum_bytes(a), (float)sum_bytes(b), xd[xb].x, xd[xb + 1].x};
    }
};

/* Q4_K (repacked, cuda_common.cuh): task (super-block sb, chunk c of 16 qs
 * bytes): elements 16*(c&1)..+15 of sub-blocks 2*(c/2) (low nibbles) and
 * 2*(c/2)+1 (high nibbles). */
template <> struct mvt<RS_DTYPE_Q4_K> : mvt_xk {
    static constexpr int U = 4;
    struct R {
        uint4 q;
        uint32_t sm;
        __half2 dm;
    };
    static __host__ __device__ int64_t ntask(const cw_layout &L) { return L.nb * 8; }
    static __device__ void load(const cw_layout &L, int64_t row, int64_t k, R &r) {
        const int64_t b = row * L.nb + (k >> 3);
        const int c = (int)(k & 7);
        r.q = cw_ld_nc(L.qs + b * 128 + 16 * c);
        r.sm = __ldg((const unsigned *)(L.aux + b * 16 + 4 * (c >> 1)));
        r.dm = __ldg((const __half2 *)(L.dm + b * 4));
    }
    static __device__ void step(const R &r, const X &x, int64_t k, int, float &p) {
        p = k_dot_x<false>(r.q, make_uint4(0, 0, 0, 0), j0(k), r.sm, r.dm, x.a, x.b, x.sx0, x.sx1,
                           x.dx0, x.dx1);
    }
};

/* Q5_K (repacked): as Q4_K plus 16 bytes of qh (bit j of byte e%32 for sub-block j). */
template <> struct mvt<RS_DTYPE_Q5_K> : mvt_xk {
    static constexpr int U = 2;
    struct R {
        uint4 h, q;
        uint32_t sm;
        __half2 dm;
    };
    static __host__ __device__ int64_t ntask(const cw_layout &L) { return L.nb * 8; }
    static __device__ void load(const cw_layout &L, int64_t row, int64_t k, R &r) {
        const int64_t b = row * L.nb + (k >> 3);
        const int c = (int)(k & 7);
        r.h = cw_ld_nc(L.aux + b * 48 + 16 * (c & 1));
        r.q = cw_ld_nc(L.qs + b * 128 + 16 * c);
        r.sm = __ldg((const unsigned *)(L.aux + b * 48 + 32 + 4 * (c >> 1)));
        r.dm = __ldg((const __half2 *)(L.dm + b * 4));
    }
    static __device__ void step(const R &r, const X &x, int64_t k, int, float &p) {
        p = k_dot_x<true>(r.q, r.h, j0(k), r.sm, r.dm, x.a, x.b, x.sx0, x.sx1, x.dx0, x.dx1);
    }
};

/* Task k of the 16-element-sub-block K-quants (Q2_K, Q3_K, Q6_K): super-block
 * k / 4, half hh, run rr; it covers elements 128*hh + 16*rr + {0, 32, 64, 96}
 * + [0, 16), x blocks xb0 + m (m = 0..3), sub-blocks 8*hh + 2*m + rr. */
__device__ __forceinline__ void hr_task(int64_t k, int &hh, int &rr, int64_t &xb0) {
    hh = (int)((k >> 1) & 1);
    rr = (int)(k & 1);
    xb0 = (k >> 2) * 8 + 4 * hh;
}
/* The scale byte of that task's m-th sub-block among the block's 16 (s):
 * byte rr + 2 (m & 1) of word 2 hh + m / 2. */
__device__ __forceinline__ uint32_t hr_scale(uint4 s, int hh, int rr, int m) {
    const uint32_t w = m < 2 ? (hh ? s.z : s.x) : (hh ? s.w : s.y);
    return (w >> (8 * (rr + 2 * (m & 1)))) & 0xFFu;
}

/* Their activations, piece m: the 16 values of x block xb0 + m the task
 * covers, that block's scales, and d * sum over those 16 values (xsum). */
struct mvt_hr {
    static constexpr int XM = 4;
    struct X {
        int4 v;
        float d, xsum;
    };
    static __device__ X xload(int64_t k, int m, const int8_t *xq, const cw_q8s *xd, const float *) {
        int hh, rr;
        int64_t xb0;
        hr_task(k, hh, rr, xb0);
        const cw_q8s s = xd[xb0 + m];
        return {ld_x16(xq + 32 * (xb0 + m) + 16 * rr), s.x, rr ? s.w : s.z};
    }
};

/* Q6_K (repacked body ql[128] qh[64] scales[16]): task hr_task(k). */
template <> struct mvt<RS_DTYPE_Q6_K> : mvt_hr {
    static constexpr int U = 2;
    struct R {
        uint4 a, b, c, s;
        float d;
    };
    using P = float;
    static __host__ __device__ int64_t ntask(const cw_layout &L) { return L.nb * 4; }
    static __device__ void load(const cw_layout &L, int64_t row, int64_t k, R &r) {
        const int64_t blk = row * L.nb + (k >> 2);
        const uint8_t *body = L.qs + blk * 208;
        const int hh = (int)((k >> 1) & 1), rr = (int)(k & 1);
        r.a = cw_ld_nc(body + 64 * hh + 16 * rr);
        r.b = cw_ld_nc(body + 64 * hh + 32 + 16 * rr);
        r.c = cw_ld_nc(body + 128 + 32 * hh + 16 * rr);
        r.s = cw_ld_nc(body + 192);
        r.d = cw_h2f(ld_u16(L.dm + blk * 2));
    }
    static __device__ void step(const R &r, const X &x, int64_t k, int m, float &p) {
        const int hh = (int)((k >> 1) & 1), rr = (int)(k & 1);
        const uint4 lo = (m & 1) ? r.b : r.a;
        const int sh = 4 * (m >> 1), hs = 2 * m;
        int s = 0;
        s = dp4a(((lo.x >> sh) & M4) | (((r.c.x >> hs) & 0x03030303u) << 4), x.v.x, s);
        s = dp4a(((lo.y >> sh) & M4) | (((r.c.y >> hs) & 0x03030303u) << 4), x.v.y, s);
        s = dp4a(((lo.z >> sh) & M4) | (((r.c.z >> hs) & 0x03030303u) << 4), x.v.z, s);
        s = dp4a(((lo.w >> sh) & M4) | (((r.c.w >> hs) & 0x03030303u) << 4), x.v.w, s);
        const int sc = (int)(int8_t)hr_scale(r.s, hh, rr, m);
        /* sum (q - 32) x = dx * sum q x - 32 * (dx * sum x over these 16) */
        p += (float)sc * (x.d * (float)s - 32.0f * x.xsum);
    }
    static __device__ float finish(const R &r, float p) { return r.d * p; }
};

/* Q2_K / Q3_K (repacked, cuda_common.cuh): tasks as Q6_K's (hr_task): 16
 * bytes of qs whose bits 2m..2m+1 are the elements of sub-block
 * 8*hh + 2*m + rr. */
/* Q2_K: x = d * sc * q - dmin * m per sub-block of 16; aux holds the 16
 * scale bytes as stored (sc low nibble, m high). p = (sum of d-scaled
 * products, sum of the mins' terms). */
template <> struct mvt<RS_DTYPE_Q2_K> : mvt_hr {
    static constexpr int U = 2;
    struct R {
        uint4 q, s;
        __half2 dm;
    };
    using P = float2;
    static __host__ __device__ int64_t ntask(const cw_layout &L) { return L.nb * 4; }
    static __device__ void load(const cw_layout &L, int64_t row, int64_t k, R &r) {
        const int64_t b = row * L.nb + (k >> 2);
        r.q = cw_ld_nc(L.qs + b * 64 + 32 * ((k >> 1) & 1) + 16 * (k & 1));
        r.s = cw_ld_nc(L.aux + b * 16);
        r.dm = __ldg((const __half2 *)(L.dm + b * 4));
    }
    static __device__ void step(const R &r, const X &x, int64_t k, int m, float2 &p) {
        const int hh = (int)((k >> 1) & 1), rr = (int)(k & 1), sh = 2 * m;
        int s = 0;
        s = dp4a((r.q.x >> sh) & 0x03030303u, x.v.x, s);
        s = dp4a((r.q.y >> sh) & 0x03030303u, x.v.y, s);
        s = dp4a((r.q.z >> sh) & 0x03030303u, x.v.z, s);
        s = dp4a((r.q.w >> sh) & 0x03030303u, x.v.w, s);
        const uint32_t sc = hr_scale(r.s, hh, rr, m);
        /* sum (d sc q - dmin m) x = d sc dx sum q xq - dmin m (dx sum xq over these 16) */
        p.x += (float)(sc & 15u) * x.d * (float)s;
        p.y += (float)(sc >> 4) * x.xsum;
    }
    static __device__ float finish(const R &r, float2 p) {
        const float2 dm = __half22float2(r.dm);
        return dm.x * p.x - dm.y * p.y;
    }
};

/* Q3_K: x = d * sc * (q - 4 (1 - h)) per sub-block of 16, q the 2 low bits, h
 * the high bit (hmask byte e % 32, bit e / 32); aux holds hmask[32] then the
 * 16 scales unpacked to signed bytes (stored + 32 in the file). */
template <> struct mvt<RS_DTYPE_Q3_K> : mvt_hr {
    static constexpr int U = 2;
    struct R {
        uint4 q, h, s;
        float d;
    };
    using P = float;
    static __host__ __device__ int64_t ntask(const cw_layout &L) { return L.nb * 4; }
    static __device__ void load(const cw_layout &L, int64_t row, int64_t k, R &r) {
        const int64_t b = row * L.nb + (k >> 2);
        r.q = cw_ld_nc(L.qs + b * 64 + 32 * ((k >> 1) & 1) + 16 * (k & 1));
        r.h = cw_ld_nc(L.aux + b * 48 + 16 * (k & 1));
        r.s = cw_ld_nc(L.aux + b * 48 + 32);
        r.d = cw_h2f(ld_u16(L.dm + b * 2));
    }
    static __device__ void step(const R &r, const X &x, int64_t k, int m, float &p) {
        const int hh = (int)((k >> 1) & 1), rr = (int)(k & 1);
        const int sh = 2 * m, hb = 4 * hh + m; /* low bits' shift, high bit's index */
        /* q + 4 h = (q | h << 2): sum (q - 4 + 4 h) x = sum (q | h << 2) x - 4 sum x */
        int s = 0;
        s = dp4a(((r.q.x >> sh) & 0x03030303u) | (((r.h.x >> hb) & ONES) << 2), x.v.x, s);
        s = dp4a(((r.q.y >> sh) & 0x03030303u) | (((r.h.y >> hb) & ONES) << 2), x.v.y, s);
        s = dp4a(((r.q.z >> sh) & 0x03030303u) | (((r.h.z >> hb) & ONES) << 2), x.v.z, s);
        s = dp4a(((r.q.w >> sh) & 0x03030303u) | (((r.h.w >> hb) & ONES) << 2), x.v.w, s);
        const int sc = (int)(int8_t)hr_scale(r.s, hh, rr, m);
        p += (float)sc * (x.d * (float)s - 4.0f * x.xsum);
    }
    static __device__ float finish(const R &r, float p) { return r.d * p; }
};

/* Float types: 8 (F16/BF16) or 4 (F32) elements per task, f32 activations. */
template <> struct mvt<RS_DTYPE_F16> : mvt_one {
    static constexpr int U = 4;
    struct R {
        uint4 w;
    };
    struct X {
        float4 a, b;
    };
    static __host__ __device__ int64_t ntask(const cw_layout &L) { return L.n_in / 8; }
    static __device__ void load(const cw_layout &L, int64_t row, int64_t k, R &r) {
        r.w = cw_ld_nc(L.qs + (row * L.n_in + 8 * k) * 2);
    }
    static __device__ X xload(int64_t k, int, const int8_t *, const cw_q8s *, const float *x) {
        return {*(const float4 *)(x + 8 * k), *(const float4 *)(x + 8 * k + 4)};
    }
    static __device__ float2 pair(uint32_t v) { return __half22float2(*(const __half2 *)&v); }
    static __device__ void step(const R &r, const X &x, int64_t, int, float &p) {
        const float2 w0 = pair(r.w.x), w1 = pair(r.w.y), w2 = pair(r.w.z), w3 = pair(r.w.w);
        p = w0.x * x.a.x + w0.y * x.a.y + w1.x * x.a.z + w1.y * x.a.w + w2.x * x.b.x +
            w2.y * x.b.y + w3.x * x.b.z + w3.y * x.b.w;
    }
};

template <> struct mvt<RS_DTYPE_BF16> : mvt<RS_DTYPE_F16> {
    static __device__ float2 pair(uint32_t v) {
        return make_float2(__uint_as_float(v << 16), __uint_as_float(v & 0xFFFF0000u));
    }
    static __device__ void step(const R &r, const X &x, int64_t, int, float &p) {
        const float2 w0 = pair(r.w.x), w1 = pair(r.w.y), w2 = pair(r.w.z), w3 = pair(r.w.w);
        p = w0.x * x.a.x + w0.y * x.a.y + w1.x * x.a.z + w1.y * x.a.w + w2.x * x.b.x +
            w2.y * x.b.y + w3.x * x.b.z + w3.y * x.b.w;
    }
};

template <> struct mvt<RS_DTYPE_F32> : mvt_one {
    static constexpr int U = 4;
    struct R {
        uint4 w;
    };
    using X = float4;
    static __host__ __device__ int64_t ntask(const cw_layout &L) { return L.n_in / 4; }
    static __device__ void load(const cw_layout &L, int64_t row, int64_t k, R &r) {
        r.w = cw_ld_nc(L.qs + (row * L.n_in + 4 * k) * 4);
    }
    static __device__ X xload(int64_t k, int, const int8_t *, const cw_q8s *, const float *x) {
        return *(const float4 *)(x + 4 * k);
    }
    static __device__ void step(const R &r, const X &x, int64_t, int, float &p) {
        p = __uint_as_float(r.w.x) * x.x + __uint_as_float(r.w.y) * x.y +
            __uint_as_float(r.w.z) * x.z + __uint_as_float(r.w.w) * x.w;
    }
};

/* acc[r] += row r's task k (w[r][u]): the activations loaded once for all R
 * rows. */
template <typename Tr, int R, int U>
__device__ __forceinline__ void mv_dot_rows(const typename Tr::R (&w)[R][U], int u, int64_t k,
                                            const int8_t *xq, const cw_q8s *xd, const float *x,
                                            float (&acc)[R]) {
    typename Tr::P p[R] = {};
#pragma unroll
    for (int m = 0; m < Tr::XM; m++) {
        const typename Tr::X v = Tr::xload(k, m, xq, xd, x);
#pragma unroll
        for (int r = 0; r < R; r++) Tr::step(w[r][u], v, k, m, p[r]);
    }
#pragma unroll
    for (int r = 0; r < R; r++) acc[r] += Tr::finish(w[r][u], p[r]);
}

/* ---- the main loop ------------------------------------------------------------------------- */

__device__ __forceinline__ int find_prod(const mv_args &a, int64_t rg) {
    int p = 0;
    while (p + 1 < a.np && rg >= a.p[p + 1].row0) p++;
    return p;
}

/* A lane's tasks base, base + 32, ..., base + 32 (U - 1) (those below nt) of rows
 * `row` of products p, into w. */
template <typename Tr, int R, int U>
__device__ __forceinline__ void mv_load_tasks(const mv_args &a, const int *p, const int64_t *row,
                                              int64_t base, int64_t nt, typename Tr::R (&w)[R][U]) {
#pragma unroll
    for (int u = 0; u < U; u++)
#pragma unroll
        for (int r = 0; r < R; r++)
            if (base + 32 * u < nt) Tr::load(a.p[p[r]].w, row[r], base + 32 * u, w[r][u]);
}

/* acc[r][t] = row row[r] of product p[r] against token t over the tasks
 * [k0, k1) of the row, summed over the warp (every lane gets the sum). R
 * rows, U tasks each in flight per lane; waits for the previous kernel after
 * issuing the first weight loads. */
template <typename Tr, int NT, int R, int U>
__device__ __forceinline__ void mv_accumulate(const mv_args &a, const int *p, const int64_t *row,
                                              int lane, float (&acc)[R][NT], int64_t k0,
                                              int64_t k1) {
    const int64_t nt = k1, nb32 = a.n_in / 32;
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[r][t] = 0.0f;
    bool waited = false;
    for (int64_t base = k0 + lane; base < nt; base += 32 * U) {
        typename Tr::R w[R][U];
        mv_load_tasks<Tr, R, U>(a, p, row, base, nt, w);
        if (!waited) {
            cw_griddep_wait();
            waited = true;
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t k = base + 32 * u;
            if (k >= nt) break;
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t >= a.n) break;
                float at[R];
#pragma unroll
                for (int r = 0; r < R; r++) at[r] = acc[r][t];
                mv_dot_rows<Tr, R, U>(w, u, k, a.xq + t * a.n_in, a.xd + t * nb32, a.x + t * a.n_in,
                                      at);
#pragma unroll
                for (int r = 0; r < R; r++) acc[r][t] = at[r];
            }
        }
    }
    if (!waited) cw_griddep_wait();
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[r][t] = cw_warp_sum(acc[r][t]);
}

/* The deferred norm's scale per token (1 without one); the whole warp. */
template <int NT>
__device__ __forceinline__ void mv_norm_scale(const mv_args &a, int lane, float (&s)[NT]) {
#pragma unroll
    for (int t = 0; t < NT; t++) {
        s[t] = 1.0f;
        if (!a.npart || t >= a.n) continue;
        float v = 0.0f;
        for (int i = lane; i < a.n_npart; i += 32) v += a.npart[t * a.n_npart + i];
        v = cw_warp_sum(v);
        s[t] = 1.0f / sqrtf(v / a.ndim + a.neps);
    }
}

/* xn = x * s, spread over every thread of the grid. */
template <int NT>
__device__ __forceinline__ void mv_write_xn(const mv_args &a, const float (&s)[NT]) {
    if (!a.xn) return;
    const int64_t total = (int64_t)a.n * a.n_in, step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
        const int t = (int)(i / a.n_in);
        float sc = s[0];
#pragma unroll
        for (int k = 1; k < NT; k++)
            if (t == k) sc = s[k];
        a.xn[i] = a.x[i] * sc;
    }
}

/* ---- host side ----------------------------------------------------------------------------- */

__host__ __device__ constexpr bool mv_is_float(int t) {
    return t == RS_DTYPE_F32 || t == RS_DTYPE_F16 || t == RS_DTYPE_BF16;
}

/* Rows per warp for batch 1 where the tuning leaves it open (0): two for the
 * types that measured faster so (docs/CUDA_NOTES.md, run 2), else one. */
inline int mv_default_rows(int type) {
    return type == RS_DTYPE_Q8_0 || type == RS_DTYPE_Q4_K || type == RS_DTYPE_Q6_K ? 2 : 1;
}

inline void mv_add_prod(mv_args *a, const rs_matmul &m) {
    mv_prod &P = a->p[a->np++];
    P.w = *(const cw_layout *)m.w->extra;
    P.y = m.y;
    P.bias = m.bias ? (const float *)((const cw_layout *)m.bias->extra)->qs : NULL;
    P.row0 = a->rows;
    a->rows += P.w.n_out;
}

/* Whether a launch on x (n tokens of n_in) would consume the pending deferred norm. */
inline bool mv_takes_defer(const cuda_backend *c, const float *x, int n, int64_t n_in) {
    return c->defer.xn && c->defer.xn == x && c->defer.n == n && c->defer.dim == n_in;
}

/* The f32 activations a launch on x reads (x, or a deferred norm's x * w). */
inline const float *mv_source(const cuda_backend *c, const float *x, int n, int64_t n_in) {
    return mv_takes_defer(c, x, n, n_in) ? c->defer.xw : x;
}

/* The input side of a matvec-family launch on x [n][n_in]: fills the
 * activation fields of *a (the int8 form too when need_q8: the producer's,
 * else quantized here) and takes over a pending deferred norm on x (any
 * other pending one is settled first). False when scratch is short (error
 * recorded). */
inline bool mv_input(cuda_backend *c, const float *x, int n, int64_t n_in, bool need_q8,
                     mv_args *a) {
    const int64_t elems = (int64_t)n * n_in;
    const bool def = mv_takes_defer(c, x, n, n_in);
    if (c->defer.xn && !def) cw_settle(c);
    const float *src = def ? c->defer.xw : x;
    a->n = n;
    a->n_in = n_in;
    a->x = src;
    if (def) {
        a->npart = c->defer.part;
        a->n_npart = c->defer.n_part;
        a->ndim = (float)n_in;
        a->neps = c->defer.eps;
        a->xn = c->defer.xn;
    }
    if (need_q8) {
        void *q8;
        if (c->q8_src == x && c->q8_elems == elems) {
            q8 = cw_q8_buf(c, c->q8_slot); /* the producer already wrote it */
        } else {
            const int slot = cw_q8_claim(c);
            if (!(q8 = cw_scratch(c, slot ? CW_SCR_Q8B : CW_SCR_Q8, cw_q8_bytes(elems))))
                return false;
            cw_quantize_q8(c, src, elems, q8, true);
            if (c->tune.reuse_q8 && !def) cw_q8_tag(c, x, elems, slot);
        }
        a->xq = (const int8_t *)q8;
        a->xd = cw_q8_scales(q8, elems);
    }
    if (def) { /* this launch finishes it: x will hold its final values */
        c->defer.xn = NULL;
        if (c->q8_src == x) c->q8_src = NULL;
    }
    return true;
}

} // namespace

#endif

/* cuda_fused.cuh — what the fused decode kernels share (cuda_fused.cu: the
 * register-loaded kernel; cuda_stream.cuh: the weight-streaming one): their
 * launch arguments and the three epilogues, each run by one warp on the 32
 * (SwiGLU: 64) products of a group of outputs for one token. */
#ifndef RUSTY_CUDA_FUSED_CUH
#define RUSTY_CUDA_FUSED_CUH

#include "backend/cuda/cuda_mvt.cuh"

namespace {

enum { FZ_RESID = 0, FZ_SWIGLU = 1, FZ_ROPE = 2, FZ_WARPS = 16 };

struct fz_args {
    mv_args m;
    int64_t width; /* outputs per token: x's width (RESID), n_ff (SWIGLU) */
    int8_t *oq;    /* int8 form of the output (x * w, or h), or NULL */
    cw_q8s *od;
    /* RESID */
    float *x;        /* [n][width] residual stream, += the product */
    const float *wn; /* the next norm's weight, or NULL (then only the add) */
    float *xw;       /* [n][width] x * wn */
    float *part;     /* [n][width / 32] sums of squares of x */
    /* SWIGLU */
    float *h; /* [n][width] */
    /* ROPE */
    const int32_t *pos;
    rs_rope rope;
    int hd, n_ctx, kvt, nsb;
    int role[MV_MAX_PROD]; /* 0 q, 1 k, 2 v */
    void *kc, *vc;         /* this layer's cache */
    __half *ksc, *vsc;     /* its Q8_0 scales */
    /* split over the inputs: blocks per group, [group][split][token][output]
     * partial sums, arrivals per group */
    int nsplit;
    float *spart;
    unsigned *scnt;
    /* streamed kernels (cuda_stream.cuh): the next group to claim, blocks out of
     * groups (both kept zero between launches) */
    unsigned *fs_ctr;
    unsigned long long *trace; /* lab: fr_kernel's stamps (tuning roll_trace), or NULL */
};

__device__ __forceinline__ void fz_stamp(const fz_args &f, int word) {
    if (!f.trace || threadIdx.x != 0) return;
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    f.trace[blockIdx.x * 8 + word] = t;
}

/* What an epilogue wrote for the next matvec (when f.oq): its int8 form, and
 * the group's sum of squares of x (RESID with a next norm). The decode chain
 * hands these to its next phase (cuda_chain.cuh). */
struct fz_out {
    cw_q8v q;
    float ss;
};

/* x[e] + y, written back, and the rest of the residual epilogue on v = the new x;
 * wn_i = the next norm's weight of this lane's output (when f.wn). */
__device__ __forceinline__ fz_out fz_resid_vw(const fz_args &f, int64_t g, int t, int lane, float v,
                                              float wn_i) {
    const int64_t i = 32 * g + lane, e = t * f.width + i;
    fz_out o = {};
    f.x[e] = v;
    if (!f.wn) return o;
    const float w = v * wn_i;
    f.xw[e] = w;
    o.ss = cw_warp_sum(v * v);
    if (lane == 0) f.part[(int64_t)t * (f.width / 32) + g] = o.ss;
    if (f.oq) o.q = cw_q8_block(w, lane, f.oq + e, f.od + e / 32);
    return o;
}

__device__ __forceinline__ void fz_resid(const fz_args &f, int64_t g, int t, int lane,
                                         const float *y) {
    fz_resid_vw(f, g, t, lane, f.x[t * f.width + 32 * g + lane] + y[lane],
                f.wn ? f.wn[32 * g + lane] : 0.0f);
}

__device__ __forceinline__ fz_out fz_swiglu(const fz_args &f, int64_t g, int t, int lane,
                                            const float *y) {
    const int64_t e = t * f.width + 32 * g + lane;
    const float gv = y[lane], u = y[32 + lane];
    const float h = gv / (1.0f + expf(-gv)) * u;
    fz_out o = {};
    f.h[e] = h;
    if (f.oq) o.q = cw_q8_block(h, lane, f.oq + e, f.od + e / 32);
    return o;
}

/* One value of a Q8_0 cache row block held by the whole warp (32 dims of one head). */
__device__ __forceinline__ void fz_store_q8(int8_t *q, __half *scale, float v, int lane) {
    const float amax = cw_warp_max(fabsf(v));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    *q = (int8_t)max(-127, min(127, (int)roundf(v * id)));
    if (lane == 0) *scale = __float2half_rn(d);
}

/* cos and sin (attn_factor applied) of this lane's rope angle in group g at position p;
 * unused where the lane is not rotated (v rows, dims past n_rot). */
__device__ __forceinline__ float2 fz_rope_cs(const fz_args &f, int64_t g, int lane, int p) {
    const mv_args &a = f.m;
    const int64_t rg = 32 * g + lane;
    const int pi = find_prod(a, rg), d = (int)((rg - a.p[pi].row0) % f.hd);
    if (f.role[pi] == 2 || d >= f.rope.n_rot) return make_float2(1.0f, 0.0f);
    double sn, cs;
    sincos((double)p * (double)f.rope.inv_freq[d >> 1], &sn, &cs);
    return make_float2((float)(cs * f.rope.attn_factor), (float)(sn * f.rope.attn_factor));
}

/* Rope groups per block (fr_kernel) or per chain launch (its finisher) whose cos and sin are
 * computed before the grid wait instead of between two groups. */
enum { FZ_ROPE_AHEAD = 4 };

/* Rope and cache store of group g at position p; cs = fz_rope_cs(f, g, lane, p). */
__device__ __forceinline__ void fz_rope_at(const fz_args &f, int64_t g, int t, int lane,
                                           const float *y, int p, float2 cs) {
    const mv_args &a = f.m;
    const int64_t rg = 32 * g + lane;
    const int pi = find_prod(a, rg), role = f.role[pi]; /* uniform in the block */
    const int64_t row = rg - a.p[pi].row0, n_out = a.p[pi].w.n_out;
    const int d = (int)(row % f.hd), head = (int)(row / f.hd);
    float v = y[lane];
    if (role != 2 &&
        d < f.rope.n_rot) { /* pair (d & ~1, d | 1) sits in lanes (lane & ~1, lane | 1) */
        const float o = y[lane ^ 1], c = cs.x, s = cs.y;
        v = (d & 1) ? o * s + v * c : v * c - o * s;
    }
    a.p[pi].y[t * n_out + row] = v;
    if (role == 0 || p < 0 || p >= f.n_ctx) return; /* uniform in the warp */
    const size_t dst = ((size_t)head * f.n_ctx + p) * f.hd + d;
    void *cache = role == 1 ? f.kc : f.vc;
    if (f.kvt == RS_KV_F16)
        ((__half *)cache)[dst] = __float2half_rn(v);
    else if (f.kvt == RS_KV_F32)
        ((float *)cache)[dst] = v;
    else if (f.kvt == RS_KV_Q8_0) /* hd % 32 == 0: the warp holds one scale block */
        fz_store_q8((int8_t *)cache + dst, (role == 1 ? f.ksc : f.vsc) + dst / 32, v, lane);
    else /* Q4_0: the block's 16 bytes start at value dst - lane */
        cw_store_q4((uint8_t *)cache + (dst - lane) / 2, (role == 1 ? f.ksc : f.vsc) + dst / 32, v,
                    lane);
}

__device__ __forceinline__ void fz_rope(const fz_args &f, int64_t g, int t, int lane,
                                        const float *y) {
    const int p = f.pos[t];
    fz_rope_at(f, g, t, lane, y, p, fz_rope_cs(f, g, lane, p));
}

/* The epilogue EPI of token t's sums y of group g, run by one warp. */
template <int EPI>
__device__ __forceinline__ void fz_epilogue(const fz_args &f, int64_t g, int t, int lane,
                                            const float *y) {
    if (EPI == FZ_RESID)
        fz_resid(f, g, t, lane, y);
    else if (EPI == FZ_SWIGLU)
        fz_swiglu(f, g, t, lane, y);
    else
        fz_rope(f, g, t, lane, y);
}

/* What one token's residual epilogue of group g reads besides its sums: x and the next
 * norm's weight, loaded by warp 0 a group ahead (fr_kernel), so that the loads land while
 * the group is summed instead of after its barrier. wn may be loaded before the grid
 * wait, x only after it. */
struct fz_pre {
    float x, wn;
};

__device__ __forceinline__ void fz_pre_wn(const fz_args &f, int64_t g, int lane, fz_pre &pr) {
    pr.wn = f.wn ? f.wn[32 * g + lane] : 0.0f;
}

__device__ __forceinline__ void fz_pre_x(const fz_args &f, int64_t g, int lane, fz_pre &pr) {
    pr.x = f.x[32 * g + lane];
}

/* Product and row of row r (0..31, or 0..63 for SwiGLU: gate, then up) of group g. */
__device__ __forceinline__ void fz_row(const mv_args &a, int epi, int64_t g, int r, int &p,
                                       int64_t &row) {
    if (epi == FZ_SWIGLU) {
        p = r >> 5;
        row = 32 * g + (r & 31);
    } else {
        const int64_t rg = 32 * g + r;
        p = find_prod(a, rg);
        row = rg - a.p[p].row0;
    }
}

/* Products a block holds per token: 32 outputs (64 for SwiGLU: gate and up). */
template <int EPI> __host__ __device__ constexpr int fz_outs() {
    return EPI == FZ_SWIGLU ? 64 : 32;
}
} // namespace

#endif

/* cuda_stream.cuh — an experiment, off by default (tuning field `stream`):
 * the fused decode ops (one token, Q4_0 and Q8_0 weights) with their weights
 * streamed into shared memory by the copy engine.
 *
 * The register-loaded kernel (cuda_fused.cu) keeps as many bytes in flight
 * as its registers hold: 64 per lane, 32 KB per block, and between kernels
 * the memory pipe drains (docs/CUDA_NOTES.md: ~2.5 us per kernel boundary).
 * Here one block per SM walks groups of 32 outputs (64 rows for SwiGLU: gate
 * and up) as stages of a few whole rows (~17-25 KB of quants and fp16
 * scales), fetched by two bulk copies (cp.async.bulk) into a ring of `depth`
 * slots completing on mbarriers. The ring is filled with the block's first
 * group before griddepcontrol.wait (weights never change) and refilled as
 * each slot is used; later groups come from a grid-wide counter. Activations
 * are staged in shared memory once; the epilogues are the register kernel's.
 *
 * Measured (docs/CUDA_NOTES.md, session 6): correct, but slower than the
 * register kernel at every depth and grid tried (Llama-2-7B shape, lab decode
 * graph: Q4_0 516 -> 342-460 tok/s, Q8_0 347 -> 249-296). Inside it one
 * block's stream stays near 12-15 GB/s whatever its depth, though the copy
 * engine streams a whole SM's share from one block (lab `ring` probe: 103% of
 * copy): the streams restart every launch and every stage waits on the whole
 * block. Kept, tested, for the persistent-kernel work that needs it. */
#ifndef RUSTY_CUDA_STREAM_CUH
#define RUSTY_CUDA_STREAM_CUH

#include "backend/cuda/cuda_fused.cuh"

namespace {

enum {
    FS_WARPS = 16,
    FS_MAX_DEPTH = 8,
    FS_PRODUCER = (FS_WARPS - 1) * 32, /* the thread that issues copies: not in warp 0, which runs
                                        * the epilogues */
};

/* ---- bulk copies completing on an mbarrier (sm_90) ---------------------------------------- */

__device__ __forceinline__ void fs_bar_init(uint64_t *bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(cw_smem_addr(bar)), "r"(count));
}

/* Makes initialised barriers visible to the bulk-copy (async) proxy. */
__device__ __forceinline__ void fs_bar_fence_init() {
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

/* The phase's one arrival, announcing the bytes its copies will bring. */
__device__ __forceinline__ void fs_bar_expect(uint64_t *bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(cw_smem_addr(bar)),
                 "r"(bytes)
                 : "memory");
}

__device__ __forceinline__ void fs_bar_wait(uint64_t *bar, unsigned parity) {
    asm volatile("{\n"
                 ".reg .pred done;\n"
                 "FS_WAIT_%=:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
                 "@!done bra FS_WAIT_%=;\n"
                 "}" ::"r"(cw_smem_addr(bar)),
                 "r"(parity)
                 : "memory");
}

/* bytes (a multiple of 16; both addresses 16-aligned) global -> shared, completing on bar. */
__device__ __forceinline__ void fs_copy(void *dst, const void *src, uint32_t bytes, uint64_t *bar) {
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::
            "r"(cw_smem_addr(dst)),
        "l"(src), "r"(bytes), "r"(cw_smem_addr(bar))
        : "memory");
}

/* ---- shapes -------------------------------------------------------------------------------- */

/* How a launch cuts its groups into stages (host-computed): a stage is rs
 * consecutive whole rows of one product (rs divides 32; SwiGLU's 64-row
 * groups list the gate rows, then the up rows), spg stages per group; a slot
 * of the ring holds the stage's quants (q_bytes) then its fp16 scales; wpr
 * warps share each row of a stage. */
struct fs_geo {
    int rs, spg, wpr;
    uint32_t q_bytes, slot_bytes;
};

__host__ __device__ constexpr int fs_qb(int t) {
    return t == RS_DTYPE_Q8_0 ? 32 : 16;
}

__host__ __device__ constexpr bool fs_type_ok(int t) {
    return t == RS_DTYPE_Q4_0 || t == RS_DTYPE_Q8_0;
}

/* Bytes of one row's quants and fp16 scales (nb blocks). */
inline int64_t fs_row_bytes(int type, int64_t nb) {
    return nb * (fs_qb(type) + 2);
}

/* The producer thread: stage si of group g into `slot`, two bulk copies. */
template <int T, int EPI>
__device__ __forceinline__ void fs_copy_stage(const mv_args &a, const fs_geo &geo, int64_t nb,
                                              int64_t g, int si, uint8_t *slot, uint64_t *bar) {
    int p;
    int64_t row;
    fz_row(a, EPI, g, si * geo.rs, p, row);
    const cw_layout &L = a.p[p].w;
    const uint32_t d_bytes = (uint32_t)(geo.rs * nb * 2);
    fs_bar_expect(bar, geo.q_bytes + d_bytes);
    fs_copy(slot, L.qs + row * nb * fs_qb(T), geo.q_bytes, bar);
    fs_copy(slot + geo.q_bytes, L.dm + row * nb * 2, d_bytes, bar);
}

/* The producer thread's walk over the groups: block b starts with group b; later groups
 * come from a counter shared by the grid (so blocks that share an SM, or
 * start late, take less), which the last block to run out resets for the
 * next launch. */
struct fs_walk {
    int64_t g;
    int si;
    bool out;
};

/* The producer: the next stage of the walk into ring slot j (slot_g[j] = its
 * group, or -1 past the end). Claims a new group only when `claim` (after
 * the grid dependency: the counter belongs to the previous launch until then). */
template <int T, int EPI>
__device__ __forceinline__ bool fs_next(const fz_args &f, const fs_geo &geo, int64_t nb,
                                        int64_t groups, fs_walk &w, uint8_t *ring, uint64_t *bar,
                                        int *slot_g, int *slot_si, int j, bool claim) {
    if (!w.out && w.si == geo.spg) {
        if (!claim) return false;
        w.g = gridDim.x + (int64_t)atomicAdd(f.fs_ctr, 1u);
        w.si = 0;
        if (w.g >= groups) {
            w.out = true;
            if (atomicAdd(f.fs_ctr + 1, 1u) == gridDim.x - 1) { /* the last block out */
                f.fs_ctr[0] = 0;
                f.fs_ctr[1] = 0;
            }
        }
    }
    if (w.out) {
        slot_g[j] = -1;
        return true;
    }
    slot_g[j] = (int)w.g;
    slot_si[j] = w.si;
    fs_copy_stage<T, EPI>(f.m, geo, nb, w.g, w.si, ring + (size_t)j * geo.slot_bytes, &bar[j]);
    w.si++;
    return true;
}

/* One task: 32 inputs of one row against the int8 activations (d of x, d * sum x). */
template <int T>
__device__ __forceinline__ float fs_dot(const uint8_t *q, float d, int4 xa, int4 xb, float2 xs) {
    if (T == RS_DTYPE_Q8_0) {
        const int s = dot_bytes(*(const uint4 *)q, xa) + dot_bytes(*(const uint4 *)(q + 16), xb);
        return d * xs.x * (float)s;
    }
    const int s = dot_nibbles(*(const uint4 *)q, xa, xb);
    return d * (xs.x * (float)s - 8.0f * xs.y);
}

/* Shared memory: the ring, then the int8 activations and their (d, d * sum)
 * staged once per launch. */
inline size_t fs_smem_bytes(const fs_geo &geo, int depth, int64_t n_in) {
    return (size_t)depth * geo.slot_bytes + (size_t)n_in + (size_t)(n_in / 32) * sizeof(float2);
}

template <int T, int EPI>
__global__ void __launch_bounds__(FS_WARPS * 32, 2)
    fs_kernel(const __grid_constant__ fz_args f, fs_geo geo, int depth, int64_t groups) {
    constexpr int QB = fs_qb(T), RB = EPI == FZ_SWIGLU ? 64 : 32;
    extern __shared__ __align__(128) uint8_t fs_ring[];
    __shared__ uint64_t bar[FS_MAX_DEPTH];
    __shared__ int slot_g[FS_MAX_DEPTH], slot_si[FS_MAX_DEPTH];
    __shared__ float part[RB][FS_WARPS], ys[RB];
    const mv_args &a = f.m;
    cw_griddep_launch();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t nb = a.p[0].w.nb, n_in = a.n_in;
    fs_walk w = {blockIdx.x, 0, false};
    int issued = 0;
    if (threadIdx.x == FS_PRODUCER) { /* the first group before the wait: weights never change */
        for (int j = 0; j < depth; j++) fs_bar_init(&bar[j], 1);
        fs_bar_fence_init();
        while (issued < depth &&
               fs_next<T, EPI>(f, geo, nb, groups, w, fs_ring, bar, slot_g, slot_si, issued, false))
            issued++;
    }
    cw_griddep_wait();
    if (threadIdx.x == FS_PRODUCER)
        for (; issued < depth; issued++)
            fs_next<T, EPI>(f, geo, nb, groups, w, fs_ring, bar, slot_g, slot_si, issued, true);
    /* the activations, once: int8 values and (d, d * sum) per 32 */
    int8_t *xq = (int8_t *)(fs_ring + (size_t)depth * geo.slot_bytes);
    float2 *xs = (float2 *)(xq + n_in);
    for (int64_t e = threadIdx.x; e < n_in / 16; e += FS_WARPS * 32)
        ((int4 *)xq)[e] = ((const int4 *)a.xq)[e];
    for (int64_t b = threadIdx.x; b < nb; b += FS_WARPS * 32)
        xs[b] = make_float2(a.xd[b].x, a.xd[b].y);
    float sc[1];
    mv_norm_scale<1>(a, lane, sc);
    mv_write_xn<1>(a, sc);
    __syncthreads(); /* barriers, ring slots and activations ready */
    const int r = warp / geo.wpr, sub = warp % geo.wpr;
    int slot = 0;
    unsigned parity = 0;
    for (;;) {
        const int64_t g = slot_g[slot];
        if (g < 0) break;
        const int si = slot_si[slot];
        const uint8_t *st = fs_ring + (size_t)slot * geo.slot_bytes;
        const uint8_t *sq = st + (size_t)r * nb * QB, *sd = st + geo.q_bytes + (size_t)r * nb * 2;
        fs_bar_wait(&bar[slot], parity);
        float acc = 0.0f;
        for (int64_t k = sub * 32 + lane; k < nb; k += geo.wpr * 32) {
            const float d = __half2float(*(const __half *)(sd + 2 * k));
            acc += fs_dot<T>(sq + k * QB, d, *(const int4 *)(xq + 32 * k),
                             *(const int4 *)(xq + 32 * k + 16), xs[k]);
        }
        acc = cw_warp_sum(acc);
        if (lane == 0) part[si * geo.rs + r][sub] = acc;
        __syncthreads();                /* every warp is done with this slot; part complete */
        if (threadIdx.x == FS_PRODUCER) /* refill it (a ring of >= 2: nobody reads slot_g[slot]
                                           until the next sync) */
            fs_next<T, EPI>(f, geo, nb, groups, w, fs_ring, bar, slot_g, slot_si, slot, true);
        if (++slot == depth) {
            slot = 0;
            parity ^= 1u;
        }
        if (si < geo.spg - 1) continue;
        /* the group's last stage: each row's partial sums in a fixed order, then the epilogue */
        if (warp == 0)
            for (int row = lane; row < RB; row += 32) {
                float v = 0.0f;
                for (int s = 0; s < geo.wpr; s++) v += part[row][s];
                int p;
                int64_t prow;
                fz_row(a, EPI, g, row, p, prow);
                const float *bias = a.p[p].bias;
                ys[row] = v * sc[0] + (bias ? bias[prow] : 0.0f);
            }
        __syncthreads(); /* part may be rewritten */
        if (warp == 0) fz_epilogue<EPI>(f, g, 0, lane, ys);
    }
}

/* ---- host side ----------------------------------------------------------------------------- */

/* Whether the streaming kernel takes this launch: one token, a streamed type,
 * whole 16-byte runs of scales per row (blocks per row a multiple of 8),
 * every product of the launch the same width of input. */
inline bool fs_takes(const cuda_backend *c, int type, const fz_args &f) {
    if (!c->tune.stream || f.m.n != 1 || !fs_type_ok(type)) return false;
    for (int i = 0; i < f.m.np; i++)
        if (f.m.p[i].w.nb % 8 || f.m.p[i].w.nb != f.m.p[0].w.nb) return false;
    return true;
}

/* Rows per stage: the most (up to 16) whose bytes stay under ~25 KB. */
inline fs_geo fs_plan(int type, int epi, int64_t nb) {
    const int64_t row = fs_row_bytes(type, nb);
    fs_geo g;
    g.rs = 16;
    while (g.rs > 1 && g.rs * row > 25 * 1024) g.rs /= 2;
    g.spg = (epi == FZ_SWIGLU ? 64 : 32) / g.rs;
    g.wpr = FS_WARPS / g.rs;
    g.q_bytes = (uint32_t)(g.rs * nb * fs_qb(type));
    g.slot_bytes = (uint32_t)(g.rs * row);
    return g;
}

template <int T, int EPI>
void fs_launch_t(cuda_backend *c, const fz_args &f, unsigned groups, const fs_geo &geo, int depth,
                 size_t smem) {
    const unsigned want = c->tune.stream_blocks ? (unsigned)c->tune.stream_blocks : c->n_sm;
    const unsigned grid = std::min(groups, want);
    fz_args fa = f;
    fa.fs_ctr = (unsigned *)cw_scratch(c, CW_SCR_FSCNT, 2 * sizeof(unsigned));
    if (!fa.fs_ctr) return; /* error recorded */
    cw_check(c,
             cudaFuncSetAttribute(fs_kernel<T, EPI>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  (int)smem),
             "streamed matvec setup");
    cw_launch(c, true, fs_kernel<T, EPI>, dim3(grid), dim3(FS_WARPS * 32), smem, fa, geo, depth,
              (int64_t)groups);
}

/* Launches the streaming kernel and returns true, or returns false (then the
 * caller launches the register kernel). */
template <int EPI> bool fs_launch(cuda_backend *c, int type, const fz_args &f, unsigned groups) {
    if (!fs_takes(c, type, f)) return false;
    const fs_geo geo = fs_plan(type, EPI, f.m.p[0].w.nb);
    /* about 96 KB in flight per block: two blocks (this launch's and the next's) fit an SM */
    const int depth = c->tune.stream_depth
                          ? std::max(2, std::min(c->tune.stream_depth, (int)FS_MAX_DEPTH))
                          : (int)std::min<int64_t>(
                                FS_MAX_DEPTH, std::max<int64_t>(2, (96 << 10) / geo.slot_bytes));
    const size_t smem = fs_smem_bytes(geo, depth, f.m.n_in);
    if (smem > (200 << 10)) return false; /* very wide inputs: the register kernel */
    if (type == RS_DTYPE_Q4_0)
        fs_launch_t<RS_DTYPE_Q4_0, EPI>(c, f, groups, geo, depth, smem);
    else
        fs_launch_t<RS_DTYPE_Q8_0, EPI>(c, f, groups, geo, depth, smem);
    return true;
}

} // namespace

#endif

/* cuda_fused.cu — the fused decode ops (1..4 tokens), one kernel each:
 *
 *   matmul_residual    x += a W^T; the next norm is deferred: x * w, the sums
 *                      of squares of x per 32 rows and the int8 form of x * w
 *                      are written, and the consumer applies the scale
 *                      (cuda_backend::defer, cuda_mvt.cuh)
 *   matmul_swiglu      h = silu(x Wg^T) * (x Wu^T) and its int8 form
 *   matmul_rope_store  q, k, v = x W^T; rope on q and k; k and v into the cache
 *
 * A block computes 32 consecutive outputs with 16 warps: two rows per warp,
 * or for SwiGLU the gate and up rows of two outputs. Its epilogue therefore
 * owns whole 32-value blocks: an int8 block of the next matvec's input, a
 * Q8_0 block of a cache row, both rows of every rope pair (adjacent rows,
 * GPT-J order; rotate-half models take the unfused path). The main loop is
 * the one of the plain matvec (cuda_mvt.cuh).
 *
 * For float weights, where there are fewer groups of 32 outputs than the GPU
 * holds blocks (the 4096-row products of a 7B model: 128 groups), each group
 * is split over `nsplit` blocks that take equal parts of the inputs; the last
 * of them to finish adds the partial sums, in split order, and runs the
 * epilogue. One token on quantized weights splits only where tuning fz_split
 * forces it: splitting TinyLlama's 64-group wo and down cost 7-10% against
 * fr_kernel (CUDA_NOTES, session 23).
 *
 * One token on quantized weights runs fr_kernel by default (tuning fz_roll):
 * the same warps, rows and epilogues, but a grid of one block per SM walks
 * the groups, and each lane's loads form a ring that is refilled as it is
 * summed, across chunks and into the next group, so an SM's loads do not
 * drain between waves of blocks. cuda_stream.cuh holds a variant for one
 * token of Q4_0/Q8_0 that streams its weights through shared memory (off by
 * default: slower). */
#include "backend/cuda/cuda_chain.cuh"

namespace {

/* Blocks per SM the register budget is capped for: two (64 registers) where
 * one token's tasks fit unspilled (checked with -Xptxas -v), else one. */
template <int T, int NT> __host__ __device__ constexpr int fz_min_blocks() {
    return NT > 1 || T == RS_DTYPE_Q8_0 || T == RS_DTYPE_Q4_K || T == RS_DTYPE_Q5_K ||
                   T == RS_DTYPE_Q6_K || T == RS_DTYPE_Q2_K || T == RS_DTYPE_Q3_K
               ? 1
               : 2;
}

/* Rows per warp and tasks of each in flight per lane: as many loads per lane
 * as the plain kernel (one row of Tr::U tasks, or two rows for the types it
 * runs two rows per warp). */
template <int T, int NT, int EPI> __host__ __device__ constexpr int fz_rows() {
    return EPI == FZ_SWIGLU ? 4 : 2;
}
template <int T, int NT, int EPI> __host__ __device__ constexpr int fz_tasks() {
    constexpr int RP = NT == 1 && (T == RS_DTYPE_Q8_0 || T == RS_DTYPE_Q4_K) ? 2 : 1,
                  U = mvt<T>::U * RP / fz_rows<T, NT, EPI>();
    return U > 1 ? U : 1;
}

/* A warp's rows of group g: product, row in it, and slot among the group's
 * outputs (SwiGLU: the gate and up rows of outputs 2 warp and 2 warp + 1). */
template <int EPI, int R>
__device__ __forceinline__ void fz_group_rows(const mv_args &a, int64_t g, int warp, int (&p)[R],
                                              int64_t (&row)[R], int (&slot)[R]) {
#pragma unroll
    for (int j = 0; j < R; j++) {
        if (EPI == FZ_SWIGLU) {
            p[j] = j & 1;
            row[j] = 32 * g + 2 * warp + (j >> 1);
            slot[j] = 32 * (j & 1) + 2 * warp + (j >> 1);
        } else {
            const int64_t rg = 32 * g + 2 * warp + j;
            p[j] = find_prod(a, rg);
            row[j] = rg - a.p[p[j]].row0;
            slot[j] = 2 * warp + j;
        }
    }
}

/* Split over the inputs: publishes this block's sums; the last block of the
 * group to arrive adds all of them in split order (the result does not depend
 * on timing) into acc and returns true, the others false. */
template <int R, int NT, int NO>
__device__ __forceinline__ bool fz_gather(const fz_args &f, int64_t g, int sp, int lane,
                                          const int *slot, float (&acc)[R][NT]) {
    __shared__ bool last;
    float *part = f.spart + g * f.nsplit * NT * NO;
    if (lane == 0)
#pragma unroll
        for (int j = 0; j < R; j++)
#pragma unroll
            for (int t = 0; t < NT; t++) part[(sp * NT + t) * NO + slot[j]] = acc[j][t];
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        last = atomicAdd(f.scnt + g, 1u) == (unsigned)f.nsplit - 1;
        if (last) f.scnt[g] = 0; /* ready for the next launch */
    }
    __syncthreads();
    if (!last) return false;
    __threadfence();
    if (lane == 0)
#pragma unroll
        for (int j = 0; j < R; j++)
#pragma unroll
            for (int t = 0; t < NT; t++) {
                float v = 0.0f;
                for (int k = 0; k < f.nsplit; k++) v += __ldcg(part + (k * NT + t) * NO + slot[j]);
                acc[j][t] = v;
            }
    return true;
}

template <int T, int NT, int EPI>
__global__ void __launch_bounds__(FZ_WARPS * 32, fz_min_blocks<T, NT>())
    fz_kernel(const __grid_constant__ fz_args f) {
    using Tr = mvt<T>;
    constexpr int R = fz_rows<T, NT, EPI>(), U = fz_tasks<T, NT, EPI>();
    constexpr int NO = fz_outs<EPI>();
    __shared__ float ys[NT][NO];
    const mv_args &a = f.m;
    cw_griddep_launch();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    /* the split is compiled for float weights and one token: its bookkeeping
     * cost Q8_0 decode 3% (348.8 -> 338.4 tok/s in the kernel lab) where it
     * never split, and one token on quantized weights runs fr_kernel unless
     * forced to split (fz_split) */
    constexpr bool SPLIT = mv_is_float(T) || NT == 1;
    const int64_t g = SPLIT ? blockIdx.x / f.nsplit : blockIdx.x; /* this block's 32 outputs */
    const int sp = SPLIT ? (int)(blockIdx.x % f.nsplit) : 0;
    int p[R], slot[R];
    int64_t row[R];
    fz_group_rows<EPI, R>(a, g, warp, p, row, slot);
    const int64_t nt = Tr::ntask(a.p[p[0]].w);
    float acc[R][NT];
    if (SPLIT)
        mv_accumulate<Tr, NT, R, U>(a, p, row, lane, acc, nt * sp / f.nsplit,
                                    nt * (sp + 1) / f.nsplit);
    else
        mv_accumulate<Tr, NT, R, U>(a, p, row, lane, acc, 0, nt);
    float s[NT];
    mv_norm_scale<NT>(a, lane, s);
    mv_write_xn<NT>(a, s);
    if (SPLIT && f.nsplit > 1 && !fz_gather<R, NT, NO>(f, g, sp, lane, slot, acc)) return;
    if (lane == 0)
#pragma unroll
        for (int j = 0; j < R; j++) {
            const float *bias = a.p[p[j]].bias;
            const float b = bias ? bias[row[j]] : 0.0f;
#pragma unroll
            for (int t = 0; t < NT; t++)
                if (t < a.n) ys[t][slot[j]] = acc[j][t] * s[t] + b;
        }
    __syncthreads();
    const int t = warp; /* warp t finishes token t */
    if (t >= NT || t >= a.n) return;
    fz_epilogue<EPI>(f, g, t, lane, ys[t]);
}

/* Registers one task's loads hold (mvt<T>::R without its padding). */
template <int T> __host__ __device__ constexpr int fr_task_words() {
    switch (T) {
    case RS_DTYPE_Q8_0:
        return 9;
    case RS_DTYPE_Q6_K:
        return 17;
    case RS_DTYPE_Q3_K:
        return 13;
    case RS_DTYPE_Q2_K:
        return 10; /* 9, counted one over: two SwiGLU tasks per row spill (ptxas) */
    case RS_DTYPE_Q5_K:
        return 10;
    case RS_DTYPE_Q5_1:
        return 7;
    case RS_DTYPE_Q4_1:
    case RS_DTYPE_Q5_0:
    case RS_DTYPE_Q4_K:
        return 6;
    default:
        return 5; /* Q4_0, IQ4_NL, IQ4_XS */
    }
}

/* Tasks per row in fr_kernel's ring: as many as LR registers hold, up to
 * fz_kernel's (doubled for the types it runs at two blocks per SM, as
 * fr_kernel runs one) and at least two where they fit, so that a slot is in
 * flight while another is summed. */
template <int T, int EPI, int LR> __host__ __device__ constexpr int fr_tasks() {
    constexpr int R = fz_rows<T, 1, EPI>(), U0 = fz_tasks<T, 1, EPI>() * fz_min_blocks<T, 1>(),
                  most = U0 > 2 ? U0 : 2, fit = LR / (fr_task_words<T>() * R);
    return fit < 1 ? 1 : fit < most ? fit : most;
}

/* One token, quantized weights (tuning fz_roll): a grid of one block per SM
 * walks the groups (blockIdx.x, then + gridDim.x, ...), and each lane keeps
 * its R x U tasks in flight as a ring: a slot is refilled with the task U
 * slots ahead as soon as it has been summed, and in a group's last chunk with
 * the next group's first, so a block's loads do not drain between chunks or
 * while warp 0 runs a group's epilogue. (fz_kernel loads U tasks, waits for
 * all of them, sums and loads again, one group per block: an SM's loads
 * drain at the end of every block.) The sums are fz_kernel's, in its order.
 * Warp 0 loads a residual epilogue's inputs (fz_pre) a group ahead, so a
 * block's last epilogue, on the kernel's tail, waits for no load; the rope's
 * cos and sin of the block's first FZ_ROPE_AHEAD groups are computed before
 * the grid wait (positions, as the attention kernels read them there, are
 * final before a step's first kernel), not by warp 0 between two groups.
 * TRACE: the kernel lab's instance, stamping f.trace (tuning roll_trace); the
 * stamps are compiled out of the others, whose registers they would change. */
template <int T, int EPI, bool TRACE>
__global__ void __launch_bounds__(FZ_WARPS * 32, 1)
    fr_kernel(const __grid_constant__ fz_args f, unsigned groups) {
    using Tr = mvt<T>;
    constexpr int R = fz_rows<T, 1, EPI>(), U = fr_tasks<T, EPI, 72>(), NO = fz_outs<EPI>();
    __shared__ float ys[2][NO];
    const mv_args &a = f.m;
    cw_griddep_launch();
    if (TRACE) fz_stamp(f, RS_ROLL_START);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    unsigned g = blockIdx.x;
    int p[R], slot[R];
    int64_t row[R];
    fz_group_rows<EPI, R>(a, g, warp, p, row, slot);
    const int64_t nt = Tr::ntask(a.p[p[0]].w);
    const int nch = (int)((nt + 32 * U - 1) / (32 * U));
    typename Tr::R w[R][U];
    mv_load_tasks<Tr, R, U>(a, p, row, lane, nt, w);
    /* the epilogues' inputs (fz_pre, rope_cs) */
    fz_pre pre = {};
    if (EPI == FZ_RESID && warp == 0) fz_pre_wn(f, g, lane, pre);
    __shared__ float2 rope_cs[EPI == FZ_ROPE ? FZ_ROPE_AHEAD : 1][32];
    if (EPI == FZ_ROPE && warp < FZ_ROPE_AHEAD && g + warp * gridDim.x < groups)
        rope_cs[warp][lane] = fz_rope_cs(f, g + warp * gridDim.x, lane, f.pos[0]);
    cw_griddep_wait();
    if (TRACE) fz_stamp(f, RS_ROLL_WAITED);
    if (EPI == FZ_RESID && warp == 0) fz_pre_x(f, g, lane, pre);
    float s[1];
    mv_norm_scale<1>(a, lane, s);
    mv_write_xn<1>(a, s);
    for (int buf = 0;; buf ^= 1) {
        const unsigned gn = g + gridDim.x;
        int pn[R], sn[R];
        int64_t rn[R];
        fz_group_rows<EPI, R>(a, gn < groups ? gn : g, warp, pn, rn, sn);
        float acc[R];
#pragma unroll
        for (int r = 0; r < R; r++) acc[r] = 0.0f;
        for (int c = 0; c < nch; c++) {
            const bool last = c + 1 == nch, more = !last || gn < groups;
            const int64_t k0 = lane + 32 * U * c, kn0 = last ? lane : k0 + 32 * U;
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int64_t k = k0 + 32 * u, kn = kn0 + 32 * u;
                if (k < nt) mv_dot_rows<Tr, R, U>(w, u, k, a.xq, a.xd, a.x, acc);
                if (more && kn < nt)
#pragma unroll
                    for (int r = 0; r < R; r++)
                        Tr::load(a.p[last ? pn[r] : p[r]].w, last ? rn[r] : row[r], kn, w[r][u]);
            }
        }
#pragma unroll
        for (int r = 0; r < R; r++) acc[r] = cw_warp_sum(acc[r]);
        if (lane == 0)
#pragma unroll
            for (int r = 0; r < R; r++) {
                const float *bias = a.p[p[r]].bias;
                ys[buf][slot[r]] = acc[r] * s[0] + (bias ? bias[row[r]] : 0.0f);
            }
        /* ys is double-buffered: a warp writes this buffer again only after
         * the next group's barrier, which warp 0 reaches after its epilogue */
        __syncthreads();
        if (warp == 0) {
            if (EPI == FZ_RESID) {
                fz_resid_vw(f, g, 0, lane, pre.x + ys[buf][lane], pre.wn);
                if (gn < groups) { /* the next group's, in flight during its sums */
                    fz_pre_wn(f, gn, lane, pre);
                    fz_pre_x(f, gn, lane, pre);
                }
            } else if (EPI == FZ_SWIGLU) {
                fz_swiglu(f, g, 0, lane, ys[buf]);
            } else {
                const unsigned i = (g - blockIdx.x) / gridDim.x; /* the block's i-th group */
                const int p = f.pos[0];
                fz_rope_at(f, g, 0, lane, ys[buf], p,
                           i < FZ_ROPE_AHEAD ? rope_cs[i][lane] : fz_rope_cs(f, g, lane, p));
            }
        }
        if (gn >= groups) break;
        g = gn;
#pragma unroll
        for (int r = 0; r < R; r++) p[r] = pn[r], row[r] = rn[r], slot[r] = sn[r];
    }
    if (TRACE && threadIdx.x == 0) {
        fz_stamp(f, RS_ROLL_END);
        unsigned sm;
        asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
        f.trace[blockIdx.x * 8 + RS_ROLL_SM] = sm;
    }
}

/* Blocks per group of 32 outputs. Float weights: enough to fill the blocks
 * the GPU holds at once when there are fewer groups than that, as long as
 * every lane keeps its U tasks in flight (at least 32 U tasks per part of a
 * row). Quantized weights measured slower split (Q4_0 512.9 -> 500.1 tok/s,
 * docs/CUDA_NOTES.md), even one token's narrow ops that stream on half the
 * SMs unsplit (TinyLlama's wo and down, session 23). Forced by tuning
 * fz_split wherever the kernel compiles the split. */
template <int T, int NT, int EPI>
int fz_split(const cuda_backend *c, const fz_args &f, unsigned groups) {
    if (!mv_is_float(T) && NT != 1) return 1;
    if (c->tune.fz_split) return c->tune.fz_split;
    if (!mv_is_float(T)) return 1;
    const int64_t nt = mvt<T>::ntask(f.m.p[0].w), cap = (int64_t)fz_min_blocks<T, NT>() * c->n_sm;
    const int64_t s = std::min<int64_t>(cap / groups, nt / (32 * fz_tasks<T, NT, EPI>()));
    return (int)std::max<int64_t>(1, std::min<int64_t>(s, CW_FZ_MAX_SPLIT));
}

template <int EPI, int T, int NT> void fz_launch_n(cuda_backend *c, fz_args f, unsigned groups) {
    f.nsplit = fz_split<T, NT, EPI>(c, f, groups);
    if (f.nsplit > 1) {
        constexpr int NO = fz_outs<EPI>();
        f.spart = (float *)cw_scratch(c, CW_SCR_FZPART,
                                      (size_t)groups * f.nsplit * NT * NO * sizeof(float));
        f.scnt = (unsigned *)cw_scratch(c, CW_SCR_FZCNT, groups * sizeof(unsigned));
        if (!f.spart || !f.scnt) return; /* error recorded */
    }
    cw_launch(c, true, fz_kernel<T, NT, EPI>, dim3(groups * f.nsplit), dim3(FZ_WARPS * 32), 0, f);
    if (f.nsplit > 1) c->split_launches++;
}

template <int EPI, int T> void fz_launch_t(cuda_backend *c, const fz_args &f0, unsigned groups) {
    if (f0.m.n == 1 && !mv_is_float(T) && c->tune.fz_roll &&
        fz_split<T, 1, EPI>(c, f0, groups) == 1) {
        const int want = c->tune.roll_grid > 0 ? c->tune.roll_grid : c->n_sm;
        unsigned grid = std::min<unsigned>(groups, (unsigned)want);
        if (c->tune.roll_fit && c->tune.roll_grid <= 0) {
            /* the fewest blocks that still take at most as many groups each: the SMs
             * left over start the next kernel's blocks (PDL), whose weights load early */
            const unsigned per = (groups + grid - 1) / grid;
            grid = (groups + per - 1) / per;
        }
        /* the lab's trace: the 7B's types only, to keep the module small */
        constexpr bool traced =
            T == RS_DTYPE_Q8_0 || T == RS_DTYPE_Q4_0 || T == RS_DTYPE_Q4_K || T == RS_DTYPE_Q6_K;
        fz_args f = f0;
        if (traced && c->tune.roll_trace && c->roll_traced < RS_CUDA_ROLL_TRACE_LAUNCHES &&
            grid * 8 <= RS_CUDA_ROLL_TRACE_WORDS)
            f.trace = c->tune.roll_trace + c->roll_traced++ * RS_CUDA_ROLL_TRACE_WORDS;
        if (traced && f.trace)
            cw_launch(c, true, fr_kernel<T, EPI, traced>, dim3(grid), dim3(FZ_WARPS * 32), 0, f,
                      groups);
        else
            cw_launch(c, true, fr_kernel<T, EPI, false>, dim3(grid), dim3(FZ_WARPS * 32), 0, f,
                      groups);
        c->roll_launches++;
    } else if (f0.m.n == 1)
        fz_launch_n<EPI, T, 1>(c, f0, groups);
    else
        fz_launch_n<EPI, T, CW_MV_MAX_TOK>(c, f0, groups);
}

/* One launch of its own. */
template <int EPI>
void fz_launch_now(cuda_backend *c, int type, const fz_args &f, unsigned blocks) {
    if (fs_launch<EPI>(c, type, f, blocks)) return;
    switch (type) {
    case RS_DTYPE_F32:
        fz_launch_t<EPI, RS_DTYPE_F32>(c, f, blocks);
        break;
    case RS_DTYPE_F16:
        fz_launch_t<EPI, RS_DTYPE_F16>(c, f, blocks);
        break;
    case RS_DTYPE_BF16:
        fz_launch_t<EPI, RS_DTYPE_BF16>(c, f, blocks);
        break;
    case RS_DTYPE_Q4_0:
        fz_launch_t<EPI, RS_DTYPE_Q4_0>(c, f, blocks);
        break;
    case RS_DTYPE_Q4_1:
        fz_launch_t<EPI, RS_DTYPE_Q4_1>(c, f, blocks);
        break;
    case RS_DTYPE_Q5_0:
        fz_launch_t<EPI, RS_DTYPE_Q5_0>(c, f, blocks);
        break;
    case RS_DTYPE_Q5_1:
        fz_launch_t<EPI, RS_DTYPE_Q5_1>(c, f, blocks);
        break;
    case RS_DTYPE_Q8_0:
        fz_launch_t<EPI, RS_DTYPE_Q8_0>(c, f, blocks);
        break;
    case RS_DTYPE_Q2_K:
        fz_launch_t<EPI, RS_DTYPE_Q2_K>(c, f, blocks);
        break;
    case RS_DTYPE_Q3_K:
        fz_launch_t<EPI, RS_DTYPE_Q3_K>(c, f, blocks);
        break;
    case RS_DTYPE_Q4_K:
        fz_launch_t<EPI, RS_DTYPE_Q4_K>(c, f, blocks);
        break;
    case RS_DTYPE_Q5_K:
        fz_launch_t<EPI, RS_DTYPE_Q5_K>(c, f, blocks);
        break;
    case RS_DTYPE_Q6_K:
        fz_launch_t<EPI, RS_DTYPE_Q6_K>(c, f, blocks);
        break;
    case RS_DTYPE_IQ4_NL:
        fz_launch_t<EPI, RS_DTYPE_IQ4_NL>(c, f, blocks);
        break;
    case RS_DTYPE_IQ4_XS:
        fz_launch_t<EPI, RS_DTYPE_IQ4_XS>(c, f, blocks);
        break;
    default:
        cw_fail(c, RS_ERR_UNSUPPORTED, "fused matvec: type %s", rs_dtype_name(type));
        break;
    }
}

/* Joins the waiting decode chain (cuda_chain.cuh), or launches now. */
template <int EPI> void fz_launch(cuda_backend *c, int type, const fz_args &f, unsigned blocks) {
    if (!dc_add(c, EPI, type, f, blocks)) fz_launch_now<EPI>(c, type, f, blocks);
}

const cw_layout *layout(const rs_weight *w) {
    return (const cw_layout *)w->extra;
}

/* Shapes every fused kernel needs: decode sizes, and 16-byte aligned f32
 * activations for the float types. */
bool fz_ok(const cuda_backend *c, int type, const float *x, int n, int64_t n_in) {
    if (!c->tune.fuse || n < 1 || n > c->tune.mv_max_tokens || n > CW_MV_MAX_TOK) return false;
    const float *src = mv_source(c, x, n, n_in);
    return !mv_is_float(type) || (((uintptr_t)src & 15) == 0 && n_in % 8 == 0);
}

size_t align256(size_t n) {
    return (n + 255) / 256 * 256;
}

} // namespace

bool cw_fz_residual(cuda_backend *c, const rs_weight *w, const float *a, int n, float *x,
                    const float *norm, float eps, float *out) {
    const cw_layout *L = layout(w);
    const int64_t n_in = L->n_in, width = L->n_out, elems = (int64_t)n * width;
    if (!fz_ok(c, L->type, a, n, n_in) || width % 32 || a == x || (norm && !out)) return false;
    fz_args f = {};
    int nslot = 0;
    if (norm) { /* the buffers the pending norm (if any) does not use */
        nslot = c->nrm_flip ^ 1;
        const size_t xw_bytes = align256((size_t)elems * sizeof(float));
        char *buf = (char *)cw_scratch(c, CW_SCR_NRM0 + nslot,
                                       xw_bytes + (size_t)(elems / 32) * sizeof(float));
        if (!buf) return true; /* error recorded */
        f.xw = (float *)buf;
        f.part = (float *)(buf + xw_bytes);
    }
    if (!mv_input(c, a, n, n_in, !mv_is_float(L->type), &f.m)) return true;
    const rs_matmul mm = {w, NULL, x};
    mv_add_prod(&f.m, mm);
    f.width = width;
    f.x = x;
    f.wn = norm;
    int slot = 0;
    void *q8 = norm ? cw_q8_for_producer(c, elems, &slot) : NULL;
    if (q8) {
        f.oq = (int8_t *)q8;
        f.od = cw_q8_scales(q8, elems);
    }
    fz_launch<FZ_RESID>(c, L->type, f, (unsigned)(width / 32));
    cw_untag(c);
    if (norm) {
        c->nrm_flip = nslot;
        c->defer.xn = out;
        c->defer.xw = f.xw;
        c->defer.part = f.part;
        c->defer.n_part = (int)(width / 32);
        c->defer.n = n;
        c->defer.dim = width;
        c->defer.eps = eps;
        if (q8) cw_q8_tag(c, out, elems, slot);
    }
    return true;
}

bool cw_fz_swiglu(cuda_backend *c, const rs_weight *gate, const rs_weight *up, const float *x,
                  int n, float *g) {
    const cw_layout *Lg = layout(gate), *Lu = layout(up);
    const int64_t n_in = Lg->n_in, n_ff = Lg->n_out, elems = (int64_t)n * n_ff;
    if (!fz_ok(c, Lg->type, x, n, n_in) || Lu->type != Lg->type || Lu->n_out != n_ff ||
        Lu->n_in != n_in || n_ff % 32)
        return false;
    fz_args f = {};
    if (!mv_input(c, x, n, n_in, !mv_is_float(Lg->type), &f.m)) return true;
    const rs_matmul mg = {gate, NULL, g}, mu = {up, NULL, NULL};
    mv_add_prod(&f.m, mg);
    mv_add_prod(&f.m, mu);
    f.width = n_ff;
    f.h = g;
    int slot = 0;
    void *q8 = cw_q8_for_producer(c, elems, &slot);
    if (q8) {
        f.oq = (int8_t *)q8;
        f.od = cw_q8_scales(q8, elems);
    }
    fz_launch<FZ_SWIGLU>(c, Lg->type, f, (unsigned)(n_ff / 32));
    cw_untag(c);
    if (q8) cw_q8_tag(c, g, elems, slot);
    return true;
}

bool cw_fz_rope(cuda_backend *c, const rs_matmul *qkv, const float *x, int n, const int32_t *pos,
                const rs_rope *rope, const rs_attn *at, rs_kv *kv, int layer) {
    const int hd = at->head_dim;
    const int64_t n_in = qkv[0].w->n_in;
    if (rope->neox || ((kv->d.type == RS_KV_Q8_0 || kv->d.type == RS_KV_Q4_0) && hd % 32))
        return false;
    bool need_q8 = false;
    for (int i = 0; i < 3; i++) {
        const cw_layout *L = layout(qkv[i].w);
        const int64_t want = (int64_t)(i == 0 ? at->n_head : at->n_head_kv) * hd;
        if (!fz_ok(c, L->type, x, n, n_in) || L->n_in != n_in || L->n_out != want || want % 32)
            return false;
        need_q8 |= !mv_is_float(L->type);
    }
    fz_args base = {};
    if (!mv_input(c, x, n, n_in, need_q8, &base.m)) return true;
    base.pos = pos;
    base.rope = *rope;
    base.hd = hd;
    base.n_ctx = kv->d.n_ctx;
    base.kvt = kv->d.type;
    base.nsb = kv->nsb;
    base.kc = (char *)kv->k + layer * cw_kv_layer_bytes(kv);
    base.vc = (char *)kv->v + layer * cw_kv_layer_bytes(kv);
    if (kv->ks) {
        const size_t layer_sc = (size_t)kv->d.n_head_kv * kv->d.n_ctx * kv->nsb;
        base.ksc = kv->ks + layer * layer_sc;
        base.vsc = kv->vs + layer * layer_sc;
    }
    bool done[3] = {false, false, false};
    for (int i = 0; i < 3; i++) { /* one launch per weight type */
        if (done[i]) continue;
        const int type = layout(qkv[i].w)->type;
        fz_args f = base;
        for (int j = i; j < 3; j++) {
            if (done[j] || layout(qkv[j].w)->type != type) continue;
            done[j] = true;
            f.role[f.m.np] = j;
            mv_add_prod(&f.m, qkv[j]);
        }
        fz_launch<FZ_ROPE>(c, type, f, (unsigned)(f.m.rows / 32));
        base.m.xn = NULL; /* the first launch writes the deferred norm's output */
    }
    cw_untag(c);
    return true;
}

void cw_chain_launch(cuda_backend *c) {
    dc_chain &ch = *(dc_chain *)c->chain;
    dc_args &a = ch.a;
    a.n = c->chain_n;
    a.mode = c->tune.chain;
    c->chain_n = 0; /* first: the launches below flush the chain again */
    const int min_n = c->tune.chain_min > 0 ? c->tune.chain_min : DC_MIN_AUTO;
    size_t smem = a.n >= std::max(min_n, 2) ? dc_plan(c, a, ch.type) : 0;
    if (smem && dc_table_for(ch, a, c->n_sm, c->tune.chain_deal)) {
        /* counters and epoch, then the two hand-off buffers (zero when made) */
        a.ll_groups = dc_handoffs(a, c->tune.chain_handoff);
        char *scr = (char *)cw_scratch(c, CW_SCR_CHAIN,
                                       256 + 2 * (size_t)a.ll_groups * 11 * sizeof(uint64_t));
        if (!scr) return; /* error recorded */
        a.ctr = (unsigned *)scr;
        a.ll = (uint64_t *)(scr + 256);
        a.trace = c->tune.chain_trace && c->chain_launches < RS_CUDA_CHAIN_TRACE_LAUNCHES
                      ? c->tune.chain_trace + c->chain_launches * RS_CUDA_CHAIN_TRACE_WORDS
                      : NULL;
        c->chain_launches++;
        c->chain_phases += a.n;
        for (int i = 0; i < a.n; i++) c->chain_handoffs += a.ph[i].ll_in;
        if (ch.type == RS_DTYPE_Q4_0)
            dc_launch_t<RS_DTYPE_Q4_0>(c, a, smem);
        else if (ch.type == RS_DTYPE_Q4_K)
            dc_launch_t<RS_DTYPE_Q4_K>(c, a, smem);
        else
            dc_launch_t<RS_DTYPE_Q8_0>(c, a, smem);
        return;
    }
    for (int i = 0; i < a.n; i++) { /* too few ops, or too wide for the ring: one launch each */
        if (a.ph[i].epi == FZ_RESID)
            fz_launch_now<FZ_RESID>(c, ch.type, a.f[i], a.ph[i].groups);
        else if (a.ph[i].epi == FZ_SWIGLU)
            fz_launch_now<FZ_SWIGLU>(c, ch.type, a.f[i], a.ph[i].groups);
        else
            fz_launch_now<FZ_ROPE>(c, ch.type, a.f[i], a.ph[i].groups);
    }
}

void cw_chain_free(cuda_backend *c) {
    free(c->chain);
    c->chain = NULL;
    c->chain_n = 0;
}

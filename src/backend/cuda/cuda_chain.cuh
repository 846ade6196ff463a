/* cuda_chain.cuh — the decode chain (tuning field `chain`, on by default for
 * Q4_0 and Q4_K; Q8_0 with `chain_q8`, measured no faster): one-token fused ops issued
 * back to back (a layer's wo, gate+up and down, and the next layer's qkv)
 * run as one persistent launch instead of one kernel each.
 *
 * Why: between two decode kernels the memory pipe drains (~2.5 us per
 * boundary, docs/CUDA_NOTES.md), and a kernel of 9-30 MB of weights never
 * reaches full rate before it ends. Here one block per SM walks the groups of
 * 32 outputs (64 rows for SwiGLU: gate and up) dealt to it in every phase of
 * the chain, and a producer warp streams all of their weights, phase after
 * phase, into a ring of shared-memory slots with bulk copies. Weights never
 * depend on activations, so the stream does not stop at phase boundaries: it
 * stops only when the ring is full. W consumer warps (4, 8 or 16) take the
 * slots; row r of a group belongs to warp r % W, which sums it exactly as
 * the register kernel's warp does (same tasks per lane, same order, same
 * warp reduction), so the chain's results are bitwise those of one launch
 * per op. A consumer lane keeps its activations in registers for the whole
 * phase, and a warp reduces all its rows of a group together at the group's
 * end (dc_rows_reduce). A finisher warp runs each group's epilogue (the register kernel's,
 * cuda_fused.cuh) from a ring of group sums, so the consumers never wait for
 * an epilogue's global memory traffic.
 *
 * A phase takes its int8 input (and the deferred norm's sums) from the phase
 * before as words that carry their own ready flag (dc_llb), so its consumers
 * start once those words are in, not after a fence, a counter and a poll.
 * The counters remain: after its last group of a phase, the finisher adds
 * the block's groups to the phase's counter (one release); the finisher
 * reads plain data of earlier phases (the residual's x, the norm's input)
 * once every earlier counter is full, and a phase whose input is not the
 * previous phase's output waits for them too. Inputs are copied into shared
 * memory from L2 (other SMs wrote them; this SM's L1 may hold old lines). The
 * first phase waits for the previous kernel (griddepcontrol.wait), as every
 * decode kernel does. Every block must be resident at once (a block that
 * waits holds its SM): the grid is one block per SM, which the shared memory
 * leaves room for once (not beside other work that holds SMs: MPS SM limits
 * need tuning chain_coop, a cooperative launch, which measured slower). The
 * host deals the groups out phase by phase, each to the block with the fewest
 * groups of that phase, then the fewest bytes so far, and passes the table in
 * the launch's arguments. The last block out zeroes the counters for the next
 * launch. The ring is 160 KiB by default, not all the shared memory: the
 * decode attention's blocks then fit beside a chain block, so the next
 * layer's weights stream in while attention runs.
 *
 * Measured (docs/CUDA_NOTES.md, sessions 9-11; Llama-2-7B shape, lab decode
 * graph at ctx 101): Q4_0 570 tok/s against 515-518 for one launch per op
 * (CLI tg128 548-550 against 526-528 for session 10's chain); Q8_0 337-339
 * against 348 (so off). The consumers alone (lab timing mode 5, no weights)
 * run at 820 tok/s, the bare stream at 763: what is left is each phase
 * boundary (~1-4 us after the slowest block) and each layer's start (~8 us:
 * the previous chain's tail and the attention kernel). Without any of those
 * waits (timing mode 6) the chain times at 638 tok/s (session 12). Q4_K (session
 * 13): lab 501-503 against 493-496, CLI about even (its consumers are slower:
 * twice the integer work per task; its stages take three copies). */
#ifndef RUSTY_CUDA_CHAIN_CUH
#define RUSTY_CUDA_CHAIN_CUH

#include "backend/cuda/cuda_stream.cuh" /* the mbarrier and bulk-copy helpers */

namespace {

enum {
    DC_MAX = 4,         /* phases per launch */
    DC_MAX_DEPTH = 32,  /* ring slots */
    DC_BAR = 1,         /* the consumers' named barrier */
    DC_STAGE_AUTO = 16, /* KiB a stage may take by default: 4 rows of 4096 Q4_0 weights,
                         * 2 of 11008 (16 of narrow ones). With the consumers' activations in
                         * registers, smaller stages won: 571 tok/s against 557 at 25 KiB
                         * (8 rows) and 543 at 10 or 20 (CUDA_NOTES, session 11) */
    DC_MIN_AUTO = 3,    /* the fewest phases a chain launch takes by default (tuning chain_min) */
    DC_MIN_IN_AUTO = 4096, /* the fewest inputs of a product it takes by default (tuning
                            * chain_min_in): narrower layers' phases are too short for the
                            * chain's boundaries; CLI Q4_0 tg128 with the chain on / off:
                            * 7B (4096) 583 / 567, 3B (3072) 915 / 985, TinyLlama (2048)
                            * 1435 / 1819 (CUDA_NOTES, session 21) */
    DC_MAX_GRID = 160,     /* blocks (SMs) the table has room for */
    DC_MAX_ITEMS = 4096,   /* groups of all phases */
    DC_XU = 4,             /* loads in flight per thread at a phase start */
    DC_RING_AUTO = 160,    /* KiB of ring per block by default (docs/CUDA_NOTES.md, run 88) */
    /* lab trace (tuning chain_trace): per launch, block and phase, DC_TRACE_EV
     * globaltimer stamps: consumers' phase start, wait over, activations in,
     * last stage summed; the finisher's count added; the producer's first and last
     * copy of the phase issued; the finisher's last group's sums in */
    DC_TRACE_EV = 8,
};
static_assert(RS_CUDA_CHAIN_TRACE_WORDS == DC_MAX_GRID * DC_MAX * DC_TRACE_EV,
              "the lab's trace layout (cuda_internal.h)");

struct dc_phase {
    int epi;
    unsigned groups; /* of 32 outputs */
    int rs;          /* rows per stage: 1, 2, 4, 8 or 16 */
    int ll_in;       /* its int8 input (and norm sums) come from the phase before as
                      * flagged words (dc_ll), not through the counters */
};

/* Which groups each block takes: block b's groups of phase ph are
 * items[at[b * DC_MAX + ph] .. at[b * DC_MAX + ph + 1]), in the order it walks them. */
struct dc_table {
    uint16_t at[DC_MAX_GRID * DC_MAX + 1];
    uint16_t items[DC_MAX_ITEMS];
};

struct dc_args {
    fz_args f[DC_MAX];
    dc_phase ph[DC_MAX];
    int n, depth;
    int mode; /* 1; lab timing only: 2 = phases do not wait for each other, 3 = nor sum rows,
               * 4 = the consumers only let the slots go (the bare stream), 5 = as 2 but
               * no weights stream (the consumers' own pace), 6 = as 2 but nor does the
               * launch wait for the kernel before it (the layer start's dependency) */
    uint32_t slot_bytes, x_bytes; /* a ring slot; the int8 activations' room (widest input) */
    unsigned *ctr; /* [DC_MAX] groups done per phase, [DC_MAX] blocks out, [DC_MAX + 1] the
                    * launch's epoch (the flags' high bits) */
    uint64_t *ll;  /* two hand-off buffers of ll_groups groups each (dc_llbuf) */
    uint32_t ll_groups;
    unsigned long long *trace; /* lab: this launch's [grid][DC_MAX][DC_TRACE_EV], or NULL */
    dc_table t;
};

/* Lab trace: event ev of phase ph of this block. */
__device__ __forceinline__ void dc_stamp(const dc_args &c, int ph, int ev) {
    if (!c.trace) return;
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    c.trace[((size_t)blockIdx.x * DC_MAX + ph) * DC_TRACE_EV + ev] = t;
}

/* This block's groups of phase ph: items [*i0, *i1). */
__device__ __forceinline__ void dc_items(const dc_args &c, int ph, int &i0, int &i1) {
    i0 = c.t.at[blockIdx.x * DC_MAX + ph];
    i1 = c.t.at[blockIdx.x * DC_MAX + ph + 1];
}

__host__ __device__ inline int dc_rows(int epi) {
    return epi == FZ_SWIGLU ? 64 : 32;
}

/* W consumer warps (8 or 16), then the producer warp. */
template <int W> __device__ __forceinline__ void dc_bar() {
    asm volatile("bar.sync %0, %1;" ::"r"((int)DC_BAR), "r"(W * 32) : "memory");
}

__device__ __forceinline__ void dc_release(uint64_t *bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(cw_smem_addr(bar)) : "memory");
}

__device__ __forceinline__ unsigned dc_load_acquire(const unsigned *p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

/* ---- the hand-off between phases ---------------------------------------------------------
 * A phase's epilogue writes the next phase's int8 input, its (d, d * sum) and
 * the norm's sum of squares as 64-bit words: 32 bits of data, 32 of flag (as
 * NCCL's LL protocol). A 64-bit store is seen whole or not at all, so a reader
 * that sees the flag it expects has the data: no release fence, no counter,
 * no poll before the copy (session 9's trace put those at ~2 us a boundary;
 * the change measured even, CUDA_NOTES session 10: what remains is memory
 * latency under load). The flag is (epoch << 3) | (phase + 1), the epoch
 * counted by the launches themselves (graphs replay the same arguments).
 * Phase p reads buffer p & 1 and writes the other; phase p + 1 rewrites p's
 * buffer, but only with outputs that need all of p's, and a block reads a
 * phase's hand-off only when it has groups in that phase, whose sums come
 * after its copy. */
struct dc_llb {
    uint64_t *q; /* [groups][8]: 4 int8 values per word */
    uint64_t *d; /* [groups][2]: d, d * sum */
    uint64_t *p; /* [groups]: sum of squares of x */
};

__host__ __device__ inline dc_llb dc_llbuf(uint64_t *ll, uint32_t groups, int b) {
    uint64_t *base = ll + (size_t)b * groups * 11;
    return {base, base + (size_t)groups * 8, base + (size_t)groups * 10};
}

__device__ __forceinline__ unsigned dc_flag(unsigned epoch, int ph) {
    return epoch << 3 | (unsigned)(ph + 1);
}

__device__ __forceinline__ uint64_t dc_ll_word(uint32_t data, unsigned flag) {
    return (uint64_t)flag << 32 | data;
}

__device__ __forceinline__ void dc_ll_st(uint64_t *p, uint64_t v) {
    asm volatile("st.volatile.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
__device__ __forceinline__ void dc_ll_st2(uint64_t *p, uint64_t a, uint64_t b) {
    asm volatile("st.volatile.global.v2.u64 [%0], {%1, %2};" ::"l"(p), "l"(a), "l"(b) : "memory");
}
__device__ __forceinline__ ulonglong2 dc_ll_ld2(const uint64_t *p) {
    ulonglong2 v;
    asm volatile("ld.volatile.global.v2.u64 {%0, %1}, [%2];"
                 : "=l"(v.x), "=l"(v.y)
                 : "l"(p)
                 : "memory");
    return v;
}
__device__ __forceinline__ uint64_t dc_ll_ld(const uint64_t *p) {
    uint64_t v;
    asm volatile("ld.volatile.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ bool dc_ll_ok(ulonglong2 v, unsigned flag) {
    return (unsigned)(v.x >> 32) == flag && (unsigned)(v.y >> 32) == flag;
}

/* The finisher's hand-off of group g (o: what its epilogue quantized). */
__device__ __forceinline__ void dc_ll_put(const dc_llb &L, int64_t g, const fz_out &o,
                                          unsigned flag, bool ss, int lane) {
    const unsigned b = (unsigned)o.q.q & 0xffu;
    unsigned w = 0; /* lane i < 8: the values of lanes 4i .. 4i + 3, little end first */
#pragma unroll
    for (int j = 0; j < 4; j++) w |= __shfl_sync(0xffffffffu, b, (4 * lane + j) & 31) << (8 * j);
    if (lane < 8)
        dc_ll_st(L.q + 8 * g + lane, dc_ll_word(w, flag));
    else if (lane == 8)
        dc_ll_st2(L.d + 2 * g, dc_ll_word(__float_as_uint(o.q.d), flag),
                  dc_ll_word(__float_as_uint(o.q.dsum), flag));
    else if (lane == 9 && ss)
        dc_ll_st(L.p + g, dc_ll_word(__float_as_uint(o.ss), flag));
}

/* A place in the ring: slot j on its lap-th use (counted, not divided out of a
 * sequence number: the depth is known only at run time, and an integer
 * division per stage showed up in the consumers' profile). */
struct dc_pos {
    int j = 0;
    unsigned lap = 0;
    __device__ __forceinline__ void next(int depth) {
        if (++j == depth) j = 0, lap++;
    }
};

/* ---- the weight types ------------------------------------------------------------------------
 * Q4_0, Q8_0 and Q4_K (repacked, cuda_common.cuh). A stage holds rs whole rows
 * of one product: their quants, then (Q4_K) their scales and mins, then their
 * fp16 scales, each copied whole. Q4_K's fp16 pairs (4 bytes a super-block)
 * need not fill 16-byte runs (rows of 11008: 172 bytes), so the stage copies
 * the 16-byte-aligned span around them and its first row's start dc_doff bytes
 * in. Bytes per block, and the register kernel's tasks per block: */
__host__ __device__ constexpr int dc_qb(int t) {
    return t == RS_DTYPE_Q8_0 ? 32 : t == RS_DTYPE_Q4_K ? 128 : 16;
}
__host__ __device__ constexpr int dc_sb(int t) {
    return t == RS_DTYPE_Q4_K ? 16 : 0;
}
__host__ __device__ constexpr int dc_db(int t) {
    return t == RS_DTYPE_Q4_K ? 4 : 2;
}
__host__ __device__ constexpr int dc_tpb(int t) {
    return t == RS_DTYPE_Q4_K ? 8 : 1;
}

/* Bytes of one row's weights (nb blocks). */
inline int64_t dc_row_bytes(int type, int64_t nb) {
    return nb * (dc_qb(type) + dc_sb(type) + dc_db(type));
}

/* Where the fp16 scales of a stage whose first row is row r0 of its group start
 * in their 16-byte span: the product's rows start at multiples of 4 (dc_takes),
 * so r0 stands for the row. Q4_0/Q8_0 rows hold whole runs (dc_takes): 0. */
template <int T> __host__ __device__ inline uint32_t dc_doff(int64_t nb, int r0) {
    return T == RS_DTYPE_Q4_K ? (uint32_t)(r0 * nb * dc_db(T)) & 15u : 0u;
}

/* A ring slot's bytes for stages of rs rows. */
inline uint32_t dc_stage_bytes(int type, int64_t nb, int rs) {
    const int64_t d = rs * nb * dc_db(type) + (type == RS_DTYPE_Q4_K ? 12 : 0);
    return (uint32_t)(rs * nb * (dc_qb(type) + dc_sb(type)) + (d + 15) / 16 * 16);
}

/* The producer (one thread): every stage of the block's groups, phase after
 * phase, into the ring; a slot is refilled once all consumer warps let it go. */
template <int T>
__device__ void dc_produce(const dc_args &c, uint8_t *ring, uint64_t *full, uint64_t *empty) {
    constexpr int QB = dc_qb(T), SB = dc_sb(T), DB = dc_db(T);
    dc_pos at;
    for (int ph = 0; ph < c.n; ph++) {
        const dc_phase &P = c.ph[ph];
        const mv_args &a = c.f[ph].m;
        const int64_t nb = a.p[0].w.nb;
        const uint32_t qb = (uint32_t)(P.rs * nb * QB), sb = (uint32_t)(P.rs * nb * SB);
        int i0, i1;
        dc_items(c, ph, i0, i1);
        for (int it = i0; it < i1; it++)
            for (int r0 = 0; r0 < dc_rows(P.epi); r0 += P.rs, at.next(c.depth)) {
                const int64_t g = c.t.items[it];
                const int j = at.j;
                if (at.lap) fs_bar_wait(&empty[j], (at.lap - 1) & 1u);
                if (it == i0 && r0 == 0) dc_stamp(c, ph, 5);
                if (it == i1 - 1 && r0 + P.rs >= dc_rows(P.epi)) dc_stamp(c, ph, 6);
                int p;
                int64_t row;
                fz_row(a, P.epi, g, r0, p, row);
                const cw_layout &L = a.p[p].w;
                uint8_t *slot = ring + (size_t)j * c.slot_bytes;
                if (c.mode == 5) { /* lab: the slot as it is */
                    dc_release(&full[j]);
                    continue;
                }
                const uint32_t doff = dc_doff<T>(nb, r0),
                               db = (doff + (uint32_t)(P.rs * nb * DB) + 15) / 16 * 16;
                fs_bar_expect(&full[j], qb + sb + db);
                fs_copy(slot, L.qs + row * nb * QB, qb, &full[j]);
                if (SB) fs_copy(slot + qb, L.aux + row * nb * SB, sb, &full[j]);
                fs_copy(slot + qb + sb, L.dm + row * nb * DB - doff, db, &full[j]);
            }
    }
}

/* The activations in shared memory, laid out so that task k of a row loads
 * lo + 16 k, hi + 16 k and ds[k] (conflict-free). Q4_0/Q8_0 task k is block k
 * of 32 int8 values: its first 16, its last 16, its (d, d * sum) (cw_q8s). A
 * Q4_K task k reads the same half, k & 1, of blocks 2 (k >> 1) and
 * 2 (k >> 1) + 1 (mvt<RS_DTYPE_Q4_K>): those halves, and the two blocks' d. */
struct dc_x {
    int8_t *lo, *hi;
    float2 *ds;
};

/* Where half h (16 int8 values) of activation block xb goes. */
template <int T> __device__ __forceinline__ int8_t *dc_xhalf(const dc_x &x, int64_t xb, int h) {
    if (T == RS_DTYPE_Q4_K) return ((xb & 1) ? x.hi : x.lo) + 16 * ((xb & ~(int64_t)1) | h);
    return (h ? x.hi : x.lo) + 16 * xb;
}

/* Where block j's d and d * sum go. */
template <int T>
__device__ __forceinline__ void dc_xscale(const dc_x &x, int64_t j, float d, float dsum) {
    if (T == RS_DTYPE_Q4_K) {
        float *f = (float *)x.ds; /* component j & 1 of tasks (j & ~1) and (j | 1) */
        f[2 * (j & ~(int64_t)1) + (j & 1)] = d;
        f[2 * (j | 1) + (j & 1)] = d;
    } else {
        x.ds[j] = make_float2(d, dsum);
    }
}

/* Task k's activations, loaded once for every row a warp sums; for Q4_K also
 * the sums of its two halves (k_finish's x sums: the same for every row). */
struct dc_xk {
    int4 lo, hi;
    float2 ds;
    float sx0, sx1;
};
template <int T> __device__ __forceinline__ dc_xk dc_xload(const dc_x &x, int k) {
    dc_xk v = {*(const int4 *)(x.lo + 16 * k), *(const int4 *)(x.hi + 16 * k), x.ds[k], 0.0f, 0.0f};
    if (T == RS_DTYPE_Q4_K) v.sx0 = (float)sum_bytes(v.lo), v.sx1 = (float)sum_bytes(v.hi);
    return v;
}

/* One task: mvt<T>::load from a ring slot (a row's quants sq, scales and mins
 * ss, fp16 scales sd) and mvt<T>::step on the activations, the same arithmetic
 * in the same order (bitwise equal). */
__device__ __forceinline__ float dc_dot(const uint8_t *sq, const uint8_t *, const uint8_t *sd,
                                        int k, const dc_xk &x, mvt<RS_DTYPE_Q4_0> *) {
    const uint4 q = *(const uint4 *)(sq + 16 * k);
    const float d = cw_h2f(*(const uint16_t *)(sd + 2 * k));
    const int sum = dot_nibbles(q, x.lo, x.hi);
    return d * (x.ds.x * (float)sum - 8.0f * x.ds.y);
}
__device__ __forceinline__ float dc_dot(const uint8_t *sq, const uint8_t *, const uint8_t *sd,
                                        int k, const dc_xk &x, mvt<RS_DTYPE_Q8_0> *) {
    const uint4 a = *(const uint4 *)(sq + 32 * k), b = *(const uint4 *)(sq + 32 * k + 16);
    const float d = cw_h2f(*(const uint16_t *)(sd + 2 * k));
    const int s = dot_bytes(a, x.lo) + dot_bytes(b, x.hi);
    return d * x.ds.x * (float)s;
}
/* Task k = (super-block k >> 3, chunk k & 7). */
__device__ __forceinline__ float dc_dot(const uint8_t *sq, const uint8_t *ss, const uint8_t *sd,
                                        int k, const dc_xk &x, mvt<RS_DTYPE_Q4_K> *) {
    const uint4 q = *(const uint4 *)(sq + 16 * k);
    const uint32_t sm = *(const uint32_t *)(ss + 4 * (k >> 1));
    const __half2 dm = *(const __half2 *)(sd + 4 * (k >> 3));
    return k_dot_x<false>(q, make_uint4(0, 0, 0, 0), 0, sm, dm, x.lo, x.hi, x.sx0, x.sx1, x.ds.x,
                          x.ds.y);
}

/* Tasks whose activations a consumer lane keeps in registers for a whole
 * phase (block k = lane + 32 t for t < TK; the rest are loaded per row), as
 * many as fit without spilling: at W = 8 (168 registers a thread) 4, rows of
 * 4096 whole and 4 of the 11 tasks of rows of 11008 (6 spill for Q8_0). */
template <int W> __host__ __device__ constexpr int dc_tk() {
    return W <= 4 ? 12 : W <= 8 ? 4 : 2;
}

/* A lane's part of one row's sum: the register kernel's tasks in its order
 * (lane, lane + 32, ...), the activations from registers (xr) where they are. */
template <int T, int TK>
__device__ __forceinline__ float dc_row(const uint8_t *sq, const uint8_t *ss, const uint8_t *sd,
                                        int nt, const dc_xk (&xr)[TK], const dc_x &x) {
    const int lane = threadIdx.x & 31;
    float v = 0.0f;
#pragma unroll
    for (int t = 0; t < TK; t++)
        if (lane + 32 * t < nt) v += dc_dot(sq, ss, sd, lane + 32 * t, xr[t], (mvt<T> *)nullptr);
    for (int k = lane + 32 * TK; k < nt; k += 32)
        v += dc_dot(sq, ss, sd, k, dc_xload<T>(x, k), (mvt<T> *)nullptr);
    return v;
}

/* The warp sums of M rows at once (v[m]: this lane's part of row m): each
 * step of the butterfly halves the rows a lane keeps (lanes with the step's
 * bit set keep the upper half), so M rows cost M - 1 + 5 - log2 M shuffles
 * instead of 5 M. Every sum is the butterfly's, pair by pair (a + b == b + a),
 * so bitwise cw_warp_sum's. Row m's total ends in lanes m * 32 / M ... */
template <int M> __device__ __forceinline__ float dc_rows_reduce(float (&v)[M]) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int h = M / 2, o = 16; h >= 1; h /= 2, o /= 2) {
        const bool up = lane & o;
#pragma unroll
        for (int i = 0; i < h; i++) {
            const float keep = up ? v[i + h] : v[i], send = up ? v[i] : v[i + h];
            v[i] = keep + __shfl_xor_sync(0xffffffffu, send, o);
        }
    }
    float t = v[0];
#pragma unroll
    for (int o = 16 / M; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
    return t;
}

/* Waits until every earlier phase is done with all its writes (lane i < ph
 * polls phase i's counter with acquire loads; __syncwarp orders the other
 * lanes' reads after them, no fence: a fence per lane made the chain 2%
 * slower, CUDA_NOTES session 10); one warp. No wait in the lab's timing modes. */
__device__ __forceinline__ void dc_wait_done(const dc_args &c, int ph, int lane) {
    if (ph == 0 || c.mode != 1) return;
    if (lane < ph) /* every counter, not only ph - 1's: hand-offs carry no ordering */
        while (dc_load_acquire(c.ctr + lane) < c.ph[lane].groups) {
        }
    __syncwarp();
}

/* After the previous kernel (every thread): this launch's epoch. */
__device__ __forceinline__ unsigned dc_start(const dc_args &c) {
    if (c.mode != 6) cw_griddep_wait();
    return __ldcg(c.ctr + DC_MAX + 1);
}

/* The consumers' copy of a plain int8 input, from L2 (other SMs wrote it;
 * this SM's L1 may hold old lines): 16-byte items, the int8 values (each half
 * block where dc_xhalf puts it), then the (d, d * sum) of each block;
 * DC_XU loads in flight per thread before any store (about one L2 round trip). */
template <int T, int W> __device__ __forceinline__ void dc_copy(const mv_args &a, const dc_x &x) {
    const int64_t n16 = a.n_in / 16, items = n16 + a.n_in / 32;
    for (int64_t i0 = threadIdx.x; i0 < items; i0 += DC_XU * W * 32) {
        float4 v[DC_XU];
#pragma unroll
        for (int u = 0; u < DC_XU; u++) {
            const int64_t i = i0 + (int64_t)u * W * 32;
            if (i < n16)
                v[u] = __ldcg((const float4 *)a.xq + i);
            else if (i < items)
                v[u] = __ldcg(a.xd + (i - n16));
        }
#pragma unroll
        for (int u = 0; u < DC_XU; u++) {
            const int64_t i = i0 + (int64_t)u * W * 32;
            if (i < n16)
                *(float4 *)dc_xhalf<T>(x, i >> 1, (int)(i & 1)) = v[u];
            else if (i < items)
                dc_xscale<T>(x, i - n16, v[u].x, v[u].y);
        }
    }
}

/* The same from the previous phase's flagged words: 16-byte items of two
 * words (8 int8 values, or a block's d and d * sum), each waited for until
 * its flags are this phase's (not in the lab's timing modes). */
template <int T, int W>
__device__ __forceinline__ void dc_copy_ll(const dc_args &c, int ph, const dc_x &x, unsigned flag) {
    const dc_llb L = dc_llbuf(c.ll, c.ll_groups, ph & 1);
    const int64_t n_in = c.f[ph].m.n_in, nq = n_in / 8, items = nq + n_in / 32;
    for (int64_t i0 = threadIdx.x; i0 < items; i0 += DC_XU * W * 32) {
        ulonglong2 v[DC_XU];
#pragma unroll
        for (int u = 0; u < DC_XU; u++) {
            const int64_t i = i0 + (int64_t)u * W * 32;
            if (i < items) v[u] = dc_ll_ld2(i < nq ? L.q + 2 * i : L.d + 2 * (i - nq));
        }
#pragma unroll
        for (int u = 0; u < DC_XU; u++) {
            const int64_t i = i0 + (int64_t)u * W * 32;
            if (i >= items) continue;
            while (c.mode == 1 && !dc_ll_ok(v[u], flag))
                v[u] = dc_ll_ld2(i < nq ? L.q + 2 * i : L.d + 2 * (i - nq));
            if (i < nq) /* values 8 (i & 1) .. + 7 of half (i >> 1) & 1 of block i >> 2 */
                *(uint2 *)(dc_xhalf<T>(x, i >> 2, (int)((i >> 1) & 1)) + 8 * (i & 1)) =
                    make_uint2((uint32_t)v[u].x, (uint32_t)v[u].y);
            else
                dc_xscale<T>(x, i - nq, __uint_as_float((uint32_t)v[u].x),
                             __uint_as_float((uint32_t)v[u].y));
        }
    }
}

/* Consumers' phase start: the int8 activations into shared memory, from the
 * previous phase's hand-off, or once the phases before are done; not when the
 * block has no groups in the phase (dc_llb: why). */
template <int T, int W>
__device__ __forceinline__ void dc_inputs(const dc_args &c, int ph, bool has, const dc_x &x,
                                          unsigned &epoch) {
    const bool ll = c.ph[ph].ll_in;
    if (threadIdx.x == 0) dc_stamp(c, ph, 0);
    if (ph == 0) epoch = dc_start(c);
    if (!has) return;
    if (ph > 0 && !ll && threadIdx.x < 32) dc_wait_done(c, ph, threadIdx.x);
    if (threadIdx.x == 0) dc_stamp(c, ph, 1);
    dc_bar<W>(); /* every warp done with the old activations */
    if (ll)
        dc_copy_ll<T, W>(c, ph, x, dc_flag(epoch, ph - 1));
    else
        dc_copy<T, W>(c.f[ph].m, x);
    dc_bar<W>();
    if (threadIdx.x == 0) dc_stamp(c, ph, 2);
}

/* Finisher's phase start, beside the consumers' copy: the deferred norm's
 * scale (mv_norm_scale's sum: from the hand-off, or from L2 once the phases
 * before are done; the hand-off only when the block has groups in the phase,
 * as in dc_inputs) and this block's share of its output (mv_write_xn). On
 * return every earlier phase is done (the residual's x may be read). */
__device__ __forceinline__ float dc_norm(const dc_args &c, int ph, bool has, int lane,
                                         unsigned epoch) {
    const mv_args &a = c.f[ph].m;
    const bool ll = c.ph[ph].ll_in && has;
    if (!ll) dc_wait_done(c, ph, lane);
    float s = 1.0f;
    if (a.npart) {
        const uint64_t *lp = dc_llbuf(c.ll, c.ll_groups, ph & 1).p;
        const unsigned flag = dc_flag(epoch, ph - 1);
        float v = 0.0f; /* mv_norm_scale's order, DC_XU loads in flight */
        for (int i0 = lane; i0 < a.n_npart; i0 += 32 * DC_XU) {
            float t[DC_XU];
#pragma unroll
            for (int u = 0; u < DC_XU; u++) {
                const int i = i0 + 32 * u;
                if (i >= a.n_npart) {
                    t[u] = 0.0f;
                } else if (!ll) {
                    t[u] = __ldcg(a.npart + i);
                } else {
                    uint64_t w = dc_ll_ld(lp + i);
                    while (c.mode == 1 && (unsigned)(w >> 32) != flag) w = dc_ll_ld(lp + i);
                    t[u] = __uint_as_float((uint32_t)w);
                }
            }
#pragma unroll
            for (int u = 0; u < DC_XU; u++)
                if (i0 + 32 * u < a.n_npart) v += t[u];
        }
        v = cw_warp_sum(v);
        s = 1.0f / sqrtf(v / a.ndim + a.neps);
    }
    if (ll) dc_wait_done(c, ph, lane); /* behind the hand-off: the consumers go ahead */
    if (a.xn) {
        const int64_t n_in = a.n_in, per = (n_in + gridDim.x - 1) / gridDim.x,
                      i0 = blockIdx.x * per, i1 = min(n_in, i0 + per);
        for (int64_t i = i0 + lane; i < i1; i += 32) a.xn[i] = __ldcg(a.x + i) * s;
    }
    return s;
}

/* The group's outputs from the row sums (in ys) and its epilogue; one warp.
 * x_old, wn_i: the residual's x and next norm weight of this lane's output;
 * rope_cs: the rope's cos and sin of the group's lanes (fz_rope_cs), or NULL;
 * out: the next phase's hand-off (flag), or NULL. */
__device__ __forceinline__ void dc_finish(const dc_args &c, int ph, int64_t g, float *ys, float s,
                                          float x_old, float wn_i, const float2 *rope_cs,
                                          const dc_llb *out, unsigned flag, int lane) {
    const fz_args &f = c.f[ph];
    const mv_args &a = f.m;
    const int epi = c.ph[ph].epi;
    for (int r = lane; r < dc_rows(epi); r += 32) {
        int p;
        int64_t row;
        fz_row(a, epi, g, r, p, row);
        const float *bias = a.p[p].bias;
        ys[r] = ys[r] * s + (bias ? bias[row] : 0.0f);
    }
    __syncwarp();
    fz_out o = {};
    if (epi == FZ_RESID)
        o = fz_resid_vw(f, g, 0, lane, x_old + ys[lane], wn_i);
    else if (epi == FZ_SWIGLU)
        o = fz_swiglu(f, g, 0, lane, ys);
    else if (rope_cs)
        fz_rope_at(f, g, 0, lane, ys, f.pos[0], rope_cs[lane]);
    else
        fz_rope(f, g, 0, lane, ys);
    if (out) dc_ll_put(*out, g, o, flag, epi == FZ_RESID, lane);
}

/* The ring of group sums between the consumer warps and the finisher warp:
 * buffer b holds group ng's sums when ng % DC_SUMS == b; `ready` completes
 * when all consumer warps wrote their rows, `free` when the finisher is done. */
enum { DC_SUMS = 4, DC_END_BAR = 2 };

/* rope_cs: the finisher's cos and sin for the first FZ_ROPE_AHEAD groups of the launch's
 * first rope phase, computed while the consumers sum its first phase's groups. */
struct dc_shared {
    uint64_t full[DC_MAX_DEPTH], empty[DC_MAX_DEPTH], ready[DC_SUMS], free[DC_SUMS];
    float ysum[DC_SUMS][64];
    float2 rope_cs[FZ_ROPE_AHEAD][32];
};

/* A consumer warp lets ring slot at.j go, once it has landed (in: waited
 * for already), and moves on to the next: every warp lets every stage go,
 * its rows in it or not. */
__device__ __forceinline__ void dc_pass(dc_shared &sh, dc_pos &at, bool &in, int &st, int depth) {
    if (!in) fs_bar_wait(&sh.full[at.j], at.lap & 1u);
    in = false;
    __syncwarp();
    if ((threadIdx.x & 31) == 0) dc_release(&sh.empty[at.j]);
    at.next(depth);
    st++;
}

/* Consumer warps and finisher meet once at the end: the block is out. */
template <int W> __device__ __forceinline__ void dc_end_bar() {
    asm volatile("bar.sync %0, %1;" ::"r"((int)DC_END_BAR), "r"((W + 1) * 32) : "memory");
}

template <int T, int W>
__device__ void dc_consume(const dc_args &c, uint8_t *ring, dc_shared &sh, const dc_x &x) {
    constexpr int QB = dc_qb(T), SB = dc_sb(T), DB = dc_db(T), TK = dc_tk<W>(),
                  MR = 64 / W; /* MR: a warp's rows of a group */
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    dc_pos at;
    unsigned ng = 0, epoch = 0;
    for (int ph = 0; ph < c.n; ph++) {
        const dc_phase &P = c.ph[ph];
        const mv_args &a = c.f[ph].m;
        const int64_t nb = a.p[0].w.nb;
        int i0, i1;
        dc_items(c, ph, i0, i1);
        if (c.mode == 4) { /* lab: the bare stream */
            for (int it = i0; it < i1; it++)
                for (int r0 = 0; r0 < dc_rows(P.epi); r0 += P.rs, at.next(c.depth)) {
                    fs_bar_wait(&sh.full[at.j], at.lap & 1u);
                    __syncwarp();
                    if (lane == 0) dc_release(&sh.empty[at.j]);
                }
            continue;
        }
        dc_inputs<T, W>(c, ph, i1 > i0, x, epoch);
        const int nbi = (int)nb, nt = nbi * dc_tpb(T), rows = dc_rows(P.epi), rs = P.rs,
                  rs_log = __ffs(rs) - 1;
        /* a row's bytes of each kind; where the stage's scales and mins, fp16 scales start */
        const int qrow = nbi * QB, srow = nbi * SB, drow = nbi * DB, s0 = rs * qrow,
                  d0 = s0 + rs * srow;
        dc_xk xr[TK]; /* this lane's activations, for every row of the phase */
#pragma unroll
        for (int t = 0; t < TK; t++)
            if (i1 > i0 && lane + 32 * t < nt) xr[t] = dc_xload<T>(x, lane + 32 * t);
        for (int it = i0; it < i1; it++, ng++) {
            const int b = (int)(ng % DC_SUMS);
            if (ng >= DC_SUMS) fs_bar_wait(&sh.free[b], (ng / DC_SUMS - 1) & 1u);
            /* this warp's rows of the group, warp + W m, each summed by its lanes
             * from whichever stage holds it; the warp sums all at the group's end.
             * The row loop stays rolled, one copy of the row's code: unrolled eight
             * times it measured 489 tok/s against 552 (the instruction cache, we think) */
            float v[MR];
            int st = 0;      /* stages of the group passed */
            bool in = false; /* stage st has landed (waited for) */
#pragma unroll
            for (int m = 0; m < MR; m++) v[m] = 0.0f;
#pragma unroll 1
            for (int m = 0; m < MR && warp + W * m < rows; m++) {
                const int r = warp + W * m;
                while (st < r >> rs_log) dc_pass(sh, at, in, st, c.depth);
                if (!in) fs_bar_wait(&sh.full[at.j], at.lap & 1u), in = true;
                const uint8_t *sq = ring + (size_t)at.j * c.slot_bytes;
                const int ri = r & (rs - 1);
                const uint8_t *sd = sq + d0 + dc_doff<T>(nbi, r - ri) + ri * drow;
                const float p =
                    c.mode != 3 ? dc_row<T, TK>(sq + ri * qrow, sq + s0 + ri * srow, sd, nt, xr, x)
                                : 0.0f;
#pragma unroll
                for (int i = 0; i < MR; i++)
                    v[i] = i == m ? p : v[i]; /* selects: v stays in registers */
            }
            while (st < rows >> rs_log) dc_pass(sh, at, in, st, c.depth);
            float *ys = sh.ysum[b];
            if (rows == 64) {
                const float t = dc_rows_reduce<MR>(v);
                if (!(lane & (32 / MR - 1))) ys[warp + W * (lane / (32 / MR))] = t;
            } else {
                float h[MR / 2];
#pragma unroll
                for (int m = 0; m < MR / 2; m++) h[m] = v[m];
                const float t = dc_rows_reduce<MR / 2>(h);
                if (!(lane & (64 / MR - 1))) ys[warp + W * (lane / (64 / MR))] = t;
            }
            __syncwarp();
            if (lane == 0) dc_release(&sh.ready[b]); /* this warp's rows of the group are in */
        }
        if (threadIdx.x == 0) dc_stamp(c, ph, 3);
    }
    dc_end_bar<W>();
}

/* The finisher warp: each group's epilogue once its sums are in, in the
 * consumers' order, so they never wait for an epilogue's global writes. */
template <int W> __device__ void dc_finisher(const dc_args &c, dc_shared &sh) {
    const int lane = threadIdx.x & 31;
    /* the rope's double-precision sincos off the path between two groups' epilogues,
     * before the grid wait (positions are final before a step's first kernel) */
    int rope_ph = -1;
    for (int ph = 0; ph < c.n && rope_ph < 0; ph++)
        if (c.ph[ph].epi == FZ_ROPE) rope_ph = ph;
    if (rope_ph >= 0) {
        int i0, i1;
        dc_items(c, rope_ph, i0, i1);
        for (int k = 0; k < FZ_ROPE_AHEAD && i0 + k < i1; k++)
            sh.rope_cs[k][lane] =
                fz_rope_cs(c.f[rope_ph], c.t.items[i0 + k], lane, c.f[rope_ph].pos[0]);
    }
    const unsigned epoch = dc_start(c);
    unsigned ng = 0;
    for (int ph = 0; ph < c.n && c.mode != 4; ph++) {
        int i0, i1;
        dc_items(c, ph, i0, i1);
        const float s = dc_norm(c, ph, i1 > i0, lane, epoch);
        const fz_args &f = c.f[ph];
        const dc_llb L = dc_llbuf(c.ll, c.ll_groups, (ph + 1) & 1);
        const dc_llb *out = ph + 1 < c.n && c.ph[ph + 1].ll_in ? &L : nullptr;
        for (int it = i0; it < i1; it++, ng++) {
            const int b = (int)(ng % DC_SUMS);
            const int64_t g = c.t.items[it];
            /* the residual's x is final once the phase began (an earlier phase wrote it, maybe
             * on another SM: from L2): fetched before the sums are in */
            const bool resid = c.ph[ph].epi == FZ_RESID;
            const float x_old = resid ? __ldcg(f.x + 32 * g + lane) : 0.0f;
            const float wn_i = resid && f.wn ? f.wn[32 * g + lane] : 0.0f;
            fs_bar_wait(&sh.ready[b], (ng / DC_SUMS) & 1u);
            if (lane == 0 && it == i1 - 1) dc_stamp(c, ph, 7);
            const float2 *rcs =
                ph == rope_ph && it - i0 < FZ_ROPE_AHEAD ? sh.rope_cs[it - i0] : nullptr;
            dc_finish(c, ph, g, sh.ysum[b], s, x_old, wn_i, rcs, out, dc_flag(epoch, ph), lane);
            __syncwarp();
            if (lane == 0) dc_release(&sh.free[b]);
        }
        /* the phase's count, once per block: released after the whole warp's
         * epilogue writes (CUTLASS's generic barrier: a barrier, then one thread's
         * release fence and add) */
        __syncwarp();
        if (lane == 0 && i1 > i0) {
            asm volatile(
                "fence.acq_rel.gpu;\n\tred.relaxed.gpu.global.add.u32 [%0], %1;" ::"l"(c.ctr + ph),
                "r"((unsigned)(i1 - i0))
                : "memory");
            dc_stamp(c, ph, 4);
        }
    }
    dc_end_bar<W>(); /* the consumers are done waiting on counters too */
    if (lane == 0 && atomicAdd(c.ctr + DC_MAX, 1u) == gridDim.x - 1) {
        for (int i = 0; i <= DC_MAX; i++)
            c.ctr[i] = 0; /* the last block out: for the next launch */
        c.ctr[DC_MAX + 1] = epoch + 1;
    }
}

/* Warps: W consumers, the finisher, the producer. */
template <int T, int W>
__global__ void __launch_bounds__((W + 2) * 32, 1) dc_kernel(const __grid_constant__ dc_args c) {
    extern __shared__ __align__(128) uint8_t dc_smem[];
    __shared__ dc_shared sh;
    cw_griddep_launch();
    uint8_t *ring = dc_smem;
    int8_t *xs = (int8_t *)(ring + (size_t)c.depth * c.slot_bytes);
    const dc_x x = {xs, xs + c.x_bytes / 2, (float2 *)(xs + c.x_bytes)};
    if (threadIdx.x == 0) {
        for (int j = 0; j < c.depth; j++) {
            fs_bar_init(&sh.full[j], 1);
            fs_bar_init(&sh.empty[j], W);
        }
        for (int b = 0; b < DC_SUMS; b++) {
            fs_bar_init(&sh.ready[b], W);
            fs_bar_init(&sh.free[b], 1);
        }
        fs_bar_fence_init();
    }
    __syncthreads();
    const int warp = threadIdx.x >> 5;
    if (warp < W)
        dc_consume<T, W>(c, ring, sh, x);
    else if (warp == W)
        dc_finisher<W>(c, sh);
    else if (threadIdx.x == (W + 1) * 32)
        dc_produce<T>(c, ring, sh.full, sh.empty);
}

/* ---- host side ------------------------------------------------------------------------------ */

/* A dealt table, kept for the next chain of the same shape (every layer's). */
struct dc_dealt {
    int n, type, grid, per_phase;
    int epi[DC_MAX];
    unsigned groups[DC_MAX];
    int64_t nb[DC_MAX];
    dc_table t;
};

enum { DC_TABLES = 4 };

struct dc_chain {
    dc_args a;
    int type;
    dc_dealt dealt[DC_TABLES];
    int n_dealt, next_dealt;
};

/* Whether a one-token fused launch can join a chain: Q4_0 (Q8_0 with chain_q8,
 * Q4_K with chain_q4k) with the int8 input, 16-byte aligned arrays, every
 * product the same width of input, at least chain_min_in wide; Q4_0/Q8_0 rows
 * with whole 16-byte runs of scales (blocks per row a multiple of 8), Q4_K
 * products starting at rows that are multiples of 4 (dc_doff). */
inline bool dc_takes(const cuda_backend *c, int type, const fz_args &f) {
    const bool k4 = type == RS_DTYPE_Q4_K;
    const int64_t min_in = c->tune.chain_min_in > 0 ? c->tune.chain_min_in : DC_MIN_IN_AUTO;
    if (!c->tune.chain || f.m.n != 1 || !f.m.xq || f.m.n_in < min_in ||
        !(type == RS_DTYPE_Q4_0 || (type == RS_DTYPE_Q8_0 && c->tune.chain_q8) ||
          (k4 && c->tune.chain_q4k)))
        return false;
    for (int i = 0; i < f.m.np; i++) {
        const cw_layout &L = f.m.p[i].w;
        const uintptr_t addr = (uintptr_t)L.qs | (uintptr_t)L.dm | (k4 ? (uintptr_t)L.aux : 0);
        if ((k4 ? f.m.p[i].row0 % 4 : L.nb % 8) || L.nb != f.m.p[0].w.nb || addr & 15) return false;
    }
    /* the widest stage (one row) and the activations must fit beside two slots */
    const size_t row = dc_stage_bytes(type, f.m.p[0].w.nb, 1);
    return 2 * row + (size_t)f.m.n_in * 2 + 4096 <= c->smem_optin;
}

/* Queues a one-token fused launch on the waiting chain (true), or says it
 * must launch on its own (false). */
inline bool dc_add(cuda_backend *c, int epi, int type, const fz_args &f, unsigned groups) {
    if (!dc_takes(c, type, f)) return false; /* its own launch flushes the chain first */
    if (!c->chain && !(c->chain = calloc(1, sizeof(dc_chain)))) return false;
    dc_chain &ch = *(dc_chain *)c->chain;
    if (c->chain_n && (ch.type != type || c->chain_n == DC_MAX)) cw_chain_flush(c);
    const int i = c->chain_n;
    ch.type = type;
    ch.a.f[i] = f;
    ch.a.ph[i].epi = epi;
    ch.a.ph[i].groups = groups;
    c->chain_n = i + 1;
    return true;
}

/* Whether phase `cur` reads exactly what the phase before (prev, epilogue
 * epi) quantized for it, so it can take it as a hand-off (dc_llb). */
inline bool dc_ll_pair(const fz_args &prev, int epi, const mv_args &cur) {
    if (!prev.oq || prev.oq != cur.xq || prev.od != cur.xd || prev.width != cur.n_in) return false;
    if (epi == FZ_SWIGLU) return !cur.npart;
    return epi == FZ_RESID && prev.wn &&
           (!cur.npart || (cur.npart == prev.part && cur.n_npart == prev.width / 32));
}

/* Marks the phases that take hand-offs (none when `on` is 0); the groups a
 * hand-off buffer needs. */
inline uint32_t dc_handoffs(dc_args &a, int on) {
    uint32_t groups = 0;
    for (int i = 0; i < a.n; i++) {
        a.ph[i].ll_in = on && i > 0 && dc_ll_pair(a.f[i - 1], a.ph[i - 1].epi, a.f[i].m);
        if (a.ph[i].ll_in) groups = std::max(groups, (uint32_t)(a.f[i].m.n_in / 32));
    }
    return groups;
}

/* Deals the groups of a.n phases to `grid` blocks: phase by phase, each
 * group to the block with the fewest bytes so far (the lowest on a tie).
 * False when the table has no room. */
inline bool dc_deal(const dc_args &a, int type, int grid, int per_phase, dc_table &t) {
    unsigned total = 0;
    for (int ph = 0; ph < a.n; ph++) total += a.ph[ph].groups;
    if (total > DC_MAX_ITEMS || grid > DC_MAX_GRID || grid < 1) return false;
    uint16_t owner[DC_MAX_ITEMS];
    int64_t load[DC_MAX_GRID] = {0};
    unsigned count[DC_MAX_GRID * DC_MAX + 1] = {0};
    for (int ph = 0, i = 0; ph < a.n; ph++) {
        const int64_t bytes = dc_rows(a.ph[ph].epi) * dc_row_bytes(type, a.f[ph].m.p[0].w.nb);
        for (unsigned g = 0; g < a.ph[ph].groups; g++, i++) {
            int b = 0; /* per_phase: fewest groups of this phase first */
            for (int k = 1; k < grid; k++) {
                const unsigned nk = count[k * DC_MAX + ph], nb = count[b * DC_MAX + ph];
                if (per_phase && nk != nb) {
                    if (nk < nb) b = k;
                } else if (load[k] < load[b]) {
                    b = k;
                }
            }
            owner[i] = (uint16_t)b;
            load[b] += bytes;
            count[b * DC_MAX + ph]++;
        }
    }
    unsigned at = 0; /* each (block, phase) run starts where the one before ends */
    for (int k = 0; k <= grid * DC_MAX; k++) {
        const unsigned n = k < grid * DC_MAX ? count[k] : 0;
        t.at[k] = (uint16_t)at;
        count[k] = at; /* now the next free place of run k */
        at += n;
    }
    for (int ph = 0, i = 0; ph < a.n; ph++)
        for (unsigned g = 0; g < a.ph[ph].groups; g++, i++)
            t.items[count[owner[i] * DC_MAX + ph]++] = (uint16_t)g;
    return true;
}

/* a.t for the queued phases: a kept table of the same shape, or a new deal. */
inline bool dc_table_for(dc_chain &ch, dc_args &a, int grid, int per_phase) {
    for (int i = 0; i < ch.n_dealt; i++) {
        const dc_dealt &d = ch.dealt[i];
        bool same = d.n == a.n && d.type == ch.type && d.grid == grid && d.per_phase == per_phase;
        for (int ph = 0; same && ph < a.n; ph++)
            same = d.epi[ph] == a.ph[ph].epi && d.groups[ph] == a.ph[ph].groups &&
                   d.nb[ph] == a.f[ph].m.p[0].w.nb;
        if (same) {
            a.t = d.t;
            return true;
        }
    }
    if (!dc_deal(a, ch.type, grid, per_phase, a.t)) return false;
    dc_dealt &d = ch.dealt[ch.next_dealt];
    ch.next_dealt = (ch.next_dealt + 1) % DC_TABLES;
    if (ch.n_dealt < DC_TABLES) ch.n_dealt++;
    d.n = a.n;
    d.type = ch.type;
    d.grid = grid;
    d.per_phase = per_phase;
    for (int ph = 0; ph < a.n; ph++) {
        d.epi[ph] = a.ph[ph].epi;
        d.groups[ph] = a.ph[ph].groups;
        d.nb[ph] = a.f[ph].m.p[0].w.nb;
    }
    d.t = a.t;
    return true;
}

/* Stage sizes, ring depth and shared memory for the queued phases; 0 when
 * they do not fit. */
inline size_t dc_plan(const cuda_backend *c, dc_args &a, int type) {
    const int stage_kib = c->tune.chain_stage > 0 ? c->tune.chain_stage : DC_STAGE_AUTO;
    uint32_t slot = 0;
    int64_t widest = 0;
    for (int i = 0; i < a.n; i++) {
        dc_phase &P = a.ph[i];
        const int64_t nb = a.f[i].m.p[0].w.nb, row = dc_row_bytes(type, nb);
        P.rs = 16;
        while (P.rs > 1 && P.rs * row > (int64_t)stage_kib << 10) P.rs /= 2;
        slot = std::max(slot, (dc_stage_bytes(type, nb, P.rs) + 127) / 128 * 128);
        widest = std::max(widest, a.f[i].m.n_in);
    }
    a.slot_bytes = slot;
    a.x_bytes = (uint32_t)((widest + 127) / 128 * 128);
    const size_t act = a.x_bytes + (size_t)(widest / 32) * sizeof(float2);
    size_t ring = c->smem_optin - act - 2048; /* room for the static shared memory */
    /* automatic: DC_RING_AUTO, which leaves room on each SM for the decode attention's
     * blocks, so they run beside a chain that streams the next layer's weights */
    const int kib = c->tune.chain_ring > 0 ? c->tune.chain_ring : DC_RING_AUTO;
    ring = std::min(ring, (size_t)kib << 10);
    a.depth = (int)std::min<size_t>(DC_MAX_DEPTH, ring / slot);
    if (a.depth < 2) a.depth = 2;
    const size_t smem = (size_t)a.depth * slot + act;
    return smem + 2048 <= c->smem_optin ? smem : 0;
}

/* One block per SM, after the previous kernel (PDL); with tuning chain_coop a
 * cooperative launch, which the driver refuses (an error, not a hang) where the
 * grid cannot be resident at once, e.g. under MPS SM limits. */
template <int T, int W> void dc_launch_w(cuda_backend *c, dc_args &a, size_t smem) {
    cw_check(c,
             cudaFuncSetAttribute(dc_kernel<T, W>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  (int)smem),
             "decode chain setup");
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(c->n_sm);
    cfg.blockDim = dim3((W + 2) * 32);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = c->stream;
    cudaLaunchAttribute attr[2];
    attr[0].id = cudaLaunchAttributeCooperative;
    attr[0].val.cooperative = 1;
    attr[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[1].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = c->tune.chain_coop ? attr : attr + 1;
    cfg.numAttrs = (c->tune.chain_coop ? 1 : 0) + (c->tune.pdl ? 1 : 0);
    cw_check(c, cudaLaunchKernelEx(&cfg, dc_kernel<T, W>, a), "decode chain launch");
}
template <int T> void dc_launch_t(cuda_backend *c, dc_args &a, size_t smem) {
    if (c->tune.chain_warps == 16)
        dc_launch_w<T, 16>(c, a, smem);
    else if (c->tune.chain_warps == 4)
        dc_launch_w<T, 4>(c, a, smem);
    else
        dc_launch_w<T, 8>(c, a, smem);
}

} // namespace

#endif

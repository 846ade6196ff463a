/* cuda_sample.cu — sample_pick: one chained step's token drawn on the device by the
 * sampler's own chain (src/sampler/sampler.h: top-k, top-p, min-p, temperature, one
 * xoshiro256** draw), so that temperature sampling, like greedy picking, never makes the
 * GPU wait for the host between two steps.
 *
 * The token must be the one rs_sampler_sample would return for the same logits and RNG
 * state, so the kernel keeps the host's arithmetic where it decides anything:
 *   - candidates: the k best logits in the host's total order (cleaned value descending,
 *     then id ascending), which is the order of one unique 64-bit key per logit;
 *   - probabilities: float64, each exp and each division on its own thread (both are
 *     correctly rounded or the same routine wherever they run), every sum taken by one
 *     thread in the host's order, so the rounding is the host's;
 *   - the draw: the same xoshiro256** step and 53-bit uniform (sampler/xoshiro.h).
 * Only exp and log come from a different library (CUDA's, within 1 ulp of glibc's): a
 * last-bit difference can flip a draw only when it lands within ~1e-16 of a boundary, the
 * reproducibility caveat sampler.h already states across libms.
 *
 * Finding the k best without passing over the vocabulary more than once:
 *   1. every block takes a slice of SP_SLICE logits into registers, 16 a thread, and takes
 *      as its bound the k-th largest of its 256 threads' maxima: those k maxima are k
 *      logits at or above the bound, so the slice's k-th best, and with it the whole
 *      vocabulary's, is not below it. On random logits ~1.1 k of the slice reach it; where
 *      many more do (a large k, ties) a radix select over those finds the slice's k-th
 *      best itself. The slice's logits at or above the bound go to a scratch list;
 *   2. the last block to finish copies the list into shared memory (when it fits), selects
 *      its k best by a radix select on unique 64-bit keys, sorts them and draws.
 * With top-k off the candidates are the whole vocabulary in id order (sa_pick): every block
 * finds the largest logit; with top-p the blocks then find the nucleus's last id together
 * (sn_find_cut: integer masses, nucleus.h, histograms added across the grid pass by pass,
 * the last digits inside a list of the few ids left);
 * each takes its slice's masses, 0 for ids outside the nucleus, up the host's sum tree
 * (mass_tree.h) and leaves the sums in the scratch; the last walks down the tree from one
 * draw. No k-best search, no sort: in a graph 9 µs a pick at 32 000 ids, 14 at 128 256
 * (top-k 40: 12 and 14; kernel lab, run 383); with top-p 0.9 on flat logits, the cut's
 * worst case, 28 and 36 (run 395).
 * The scratch's tally of arrivals and entries is zero between launches: the last block
 * resets it. */
#include <float.h>

#include "backend/cuda/cuda_common.cuh"
#include "sampler/mass_tree.h"
#include "sampler/nucleus.h"
#include "sampler/xoshiro.h"

namespace {

constexpr int SP_THREADS = 256, SP_WARPS = SP_THREADS / 32, SP_PER = 16;
constexpr int SP_SLICE = SP_THREADS * SP_PER; /* logits a block reads */
constexpr int SP_K = RS_SAMPLE_TOP_K_MAX, SP_BINS = 256;
static_assert(SP_K <= SP_THREADS, "one candidate a thread");
static_assert(SP_BINS == SP_THREADS, "one histogram bin a thread");
typedef unsigned long long sp_u64; /* the type CUDA's 64-bit atomics and loads take */

/* The host's cleaned logit: NaN as -inf, +inf as FLT_MAX. */
__device__ __forceinline__ float sp_clean(float x) {
    return x == x ? fminf(x, FLT_MAX) : -INFINITY;
}

/* The host's order as an unsigned key: the cleaned logit (sp_clean, and -0 as +0 so equal
 * values give equal keys) with its bits arranged so that a larger value gives a larger key.
 * No logit's key is 0 (-inf's is 0x007fffff), so 0 marks "none". */
__device__ __forceinline__ uint32_t sp_key(float x) {
    x = sp_clean(x);
    if (x == 0.0f) x = 0.0f;
    const uint32_t u = __float_as_uint(x);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float sp_value(uint32_t key) {
    return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

/* The whole order in one key: the value's key above, the complement of the id below (a
 * lower id ranks higher), so no two logits tie. */
__device__ __forceinline__ sp_u64 sp_rank_key(uint32_t key, int id) {
    return ((sp_u64)key << 32) | (uint32_t) ~(uint32_t)id;
}

/* The lab's trace (tuning pick_trace): globaltimer after phase ev of this block, read once
 * `after` is known. */
__device__ __forceinline__ void sp_stamp(sp_u64 *trace, int ev, uint32_t after = 0) {
    if (!trace || threadIdx.x != 0) return;
    sp_u64 t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t) : "r"(after));
    trace[blockIdx.x * RS_PICK_EV + ev] = t;
}

/* Top-p over the whole vocabulary (sn_cut): the passes' bins, in the scratch. A pass is a
 * histogram of the nucleus masses (nucleus.h) over 256 bins, bin 0 the best: first over
 * buckets of 1/8 nat below the max (the last bucket takes every logit 32 nats or more
 * below), then over 8-bit digits of the rank keys in the bucket where the nucleus ends. */
constexpr int SN_BUCKETS = 256, SN_PASSES = 9; /* the buckets, then up to 8 digits */
constexpr double SN_PER_NAT = 8.0;
constexpr int SP_LIST_SHARED = 4096; /* list entries the last block keeps in shared memory */
/* Ids of the edge bucket listed once few enough remain: keys, then masses, in sh.list */
constexpr int SN_LIST_MAX = SP_LIST_SHARED / 2;
struct sn_area {
    unsigned bar;    /* blocks arrived at the grid barriers, zero between launches */
    unsigned listed; /* entries in key and lmass, zero between launches */
    sp_u64 mass[SN_PASSES][SN_BUCKETS]; /* zero between launches */
    unsigned cnt[SN_PASSES][SN_BUCKETS];
    sp_u64 key[SN_LIST_MAX], lmass[SN_LIST_MAX]; /* the listed ids' rank keys and masses */
};

/* The scratch: a tally, zero between launches (the blocks arrived in its high 32 bits, the
 * entries they listed in the low 32), top-p's passes, then the list of rank keys. */
struct sp_scratch {
    sp_u64 tally;
    sn_area nuc;
    sp_u64 list[1]; /* n_vocab entries at most */
};

constexpr sp_u64 SP_ARRIVAL = 1ull << 32;

/* atomicAdd with release and acquire order at the GPU scope: the block's writes before it
 * (ordered by a barrier) are seen by the block that sees the sum, and its reads after it
 * see theirs. */
__device__ __forceinline__ sp_u64 sp_add_acq_rel(sp_u64 *p, sp_u64 v) {
    sp_u64 old;
    asm volatile("atom.acq_rel.gpu.global.add.u64 %0, [%1], %2;"
                 : "=l"(old)
                 : "l"(p), "l"(v)
                 : "memory");
    return old;
}

/* The whole vocabulary's draw (top-k and top-p off) sums the masses in sampler.c's tree
 * (mass_tree.h): a thread's 16 ids are a node of level 1, a half-warp's 256 one of level 2,
 * a block's slice one of level 3. The last block keeps level 3 and the levels above. */
constexpr int SA_BLOCKS_MAX = RS_SAMPLE_ALL_VOCAB_MAX / SP_SLICE;
static_assert(SP_PER == RS_TREE_FAN && SP_THREADS == RS_TREE_FAN * RS_TREE_FAN,
              "a thread sums a node of level 1, a half-warp one of level 2, a block level 3's");
struct sa_tree {
    double lvl3[SA_BLOCKS_MAX]; /* the blocks' sums */
    double up[SA_BLOCKS_MAX / RS_TREE_FAN + SA_BLOCKS_MAX / (RS_TREE_FAN * RS_TREE_FAN) + 2];
    double part[SP_THREADS];               /* level 1: the threads' sums */
    double half[SP_THREADS / RS_TREE_FAN]; /* level 2: the half-warps' */
    double leaf[SP_PER];                   /* level 0 of the thread drawn in */
    double base;                           /* the draw's running sum before the node chosen */
    int node;                              /* ... that node */
    unsigned kept;                         /* the block's candidates (min-p keeps them) */
};

struct sp_shared {
    unsigned part[SP_WARPS];
    /* top-p's pass: the block's masses by bin, zero between passes, as two 32-bit sums (a
     * 64-bit atomic on shared memory is a compare-and-swap loop): the low 20 bits of each
     * mass and the rest. A mass is at most 2^36 and a pass adds at most 4096 of them, so
     * neither sum overflows (sn_hmass) */
    unsigned hlo[SP_BINS], hhi[SP_BINS];
    int sn_bin;      /* ... the bin where the nucleus ends, its ids, the mass still */
    unsigned sn_cnt; /* wanted there */
    sp_u64 sn_need;
    uint32_t sorted[SP_THREADS]; /* the threads' maxima while they are sorted */
    unsigned hist[SP_BINS];      /* zero between digits */
    sp_u64 prefix, mask;         /* radix select: the key bits chosen so far */
    unsigned need;               /* ... keys still wanted among those matching prefix */
    unsigned at_bin;             /* ... keys matching it (after a digit: in the chosen bin) */
    sp_u64 warp_lo[SP_WARPS], warp_hi[SP_WARPS]; /* the list's extremes by warp */
    uint32_t bound;
    unsigned total; /* a block's logits at or above its bound; in the last, the list's length */
    unsigned base;  /* ... their place in the list */
    bool last;
    int n_cand;
    union {
        sp_u64 list[SP_LIST_SHARED]; /* the list */
        double f_sums[SP_K];         /* after the k best are found: the final exps' sums */
        sa_tree tree;                /* the whole vocabulary's draw */
    };
    sp_u64 cand[SP_K];
    float w[SP_K]; /* the candidates best first: cleaned logits, ids */
    int id[SP_K];
    double e[SP_K], f[SP_K], q[SP_K]; /* top-p's and the final softmax's exps, quotients */
    double z;
    int n_keep; /* candidates top-p and min-p leave */
    int pick;   /* the token drawn */
};

/* Inclusive block-wide sum of v in thread order. */
__device__ unsigned sp_scan(sp_shared &sh, unsigned v) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const unsigned t = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += t;
    }
    if (lane == 31) sh.part[warp] = v;
    __syncthreads();
    unsigned before = 0;
    for (int w = 0; w < warp; w++) before += sh.part[w];
    __syncthreads(); /* part is reused by the next scan */
    return v + before;
}

/* Block-wide descending bitonic sort of one value a thread; returns the thread's value
 * after it (thread t holds the (t+1)-th largest). Strides within a warp go by shuffles. */
__device__ uint32_t sp_sort_desc(sp_shared &sh, uint32_t v) {
    const int t = threadIdx.x;
#pragma unroll
    for (int size = 2; size <= SP_THREADS; size <<= 1) {
#pragma unroll
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            uint32_t o;
            if (stride >= 32) {
                sh.sorted[t] = v;
                __syncthreads();
                o = sh.sorted[t ^ stride];
                __syncthreads();
            } else {
                o = __shfl_xor_sync(0xffffffffu, v, stride);
            }
            /* runs of `size` alternate direction; the last run is the whole block, descending */
            const bool desc = (t & size) == 0, low = (t & stride) == 0;
            v = low == desc ? max(v, o) : min(v, o);
        }
    }
    return v;
}

/* ---- radix select: the need-th largest of some keys, 8 bits a pass ------------------------
 * The keys are visited by each(f), which calls f(key, valid). */

/* Thread 0 starts a select of the need-th largest among count keys in [lo, hi]; returns the
 * shift of the first digit, the one whose top bit is their highest differing bit (at least
 * low), so that the first pass spreads them over the bins. */
__device__ int sp_select_begin(sp_shared &sh, sp_u64 hi, sp_u64 lo, unsigned need, unsigned count,
                               int low) {
    const sp_u64 diff = hi ^ lo;
    const int shift = max(low, diff ? 63 - __clzll((long long)diff) - 7 : 0);
    __syncthreads(); /* every thread has read what it passed from sh */
    if (threadIdx.x == 0) {
        sh.mask = shift >= 56 ? 0 : ~0ull << (shift + 8);
        sh.prefix = hi & sh.mask;
        sh.need = need, sh.at_bin = count;
    }
    __syncthreads();
    return shift;
}

/* One digit: the histogram of (key >> shift) & 255 over the keys matching the prefix, then
 * the bin, counted from the top, that holds the need-th largest of them; the prefix takes
 * its digit and need what is left of it. Warp 0 reads the histogram and clears it. */
template <typename Each> __device__ void sp_digit(sp_shared &sh, int shift, Each each) {
    constexpr int PER = SP_BINS / 32;
    const int lane = threadIdx.x & 31;
    const sp_u64 prefix = sh.prefix, mask = sh.mask;
    each([&](sp_u64 c, bool ok) {
        if (ok && (c & mask) == prefix)
            atomicAdd(&sh.hist[(unsigned)(c >> shift) & (SP_BINS - 1)], 1u);
    });
    __syncthreads();
    if (threadIdx.x < 32) { /* lane i: the PER bins from the top after i * PER */
        unsigned cnt[PER], sum = 0;
#pragma unroll
        for (int j = 0; j < PER; j++) {
            const int bin = SP_BINS - 1 - (lane * PER + j);
            cnt[j] = sh.hist[bin], sh.hist[bin] = 0;
            sum += cnt[j];
        }
        unsigned incl = sum; /* keys in this lane's bins and the ones above */
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned t = __shfl_up_sync(0xffffffffu, incl, o);
            if (lane >= o) incl += t;
        }
        const unsigned need = sh.need;
        unsigned above = incl - sum;
        if (above < need && need <= incl) {
#pragma unroll
            for (int j = 0; j < PER; j++) {
                if (above < need && need <= above + cnt[j]) {
                    const unsigned bin = SP_BINS - 1 - (lane * PER + j);
                    sh.prefix = prefix | ((sp_u64)bin << shift);
                    sh.mask = mask | ((sp_u64)(SP_BINS - 1) << shift);
                    sh.need = need - above;
                    sh.at_bin = cnt[j];
                }
                above += cnt[j];
            }
        }
    }
    __syncthreads();
}

/* Digits from shift down to low (the last may overlap bits already chosen) until the keys
 * matching the prefix are exactly the ones still wanted. The wanted keys are then those
 * >= sh.prefix (its bits below the mask are 0), with ties only where the digits ran out
 * above bit 0. */
template <typename Each> __device__ void sp_select(sp_shared &sh, int shift, int low, Each each) {
    while (sh.at_bin != sh.need) {
        sp_digit(sh, shift, each);
        if (shift == low) break;
        shift = max(shift - 8, low);
    }
}

/* ---- stage 1 -------------------------------------------------------------------------- */

/* This block's slice: its logits at or above the bound appended to the list. */
__device__ void sp_list_slice(sp_shared &sh, sp_scratch *scr, const float *logits, int n, int k,
                              sp_u64 *trace) {
    const int t = threadIdx.x, start = blockIdx.x * SP_SLICE;
    uint32_t key[SP_PER], top = 0;
    float x[SP_PER];
#pragma unroll
    for (int j = 0; j < SP_PER; j++) /* an index kept in range: every load in flight at once */
        x[j] = logits[min(start + j * SP_THREADS + t, n - 1)];
#pragma unroll
    for (int j = 0; j < SP_PER; j++) {
        key[j] = start + j * SP_THREADS + t < n ? sp_key(x[j]) : 0u;
        top = max(top, key[j]);
    }
    sp_stamp(trace, RS_PICK_LOADED, top);
    const uint32_t sorted = sp_sort_desc(sh, top);
    if (t == 0) sh.sorted[0] = sorted; /* the slice's largest, after the sort's last barrier */
    if (t == k - 1) sh.bound = max(sorted, 1u); /* 1: a slice of fewer than k logits keeps all */
    __syncthreads();
    uint32_t bound = sh.bound;
    const uint32_t slice_top = sh.sorted[0];
    sp_stamp(trace, RS_PICK_BOUND);
    unsigned mine = 0;
#pragma unroll
    for (int j = 0; j < SP_PER; j++) mine += key[j] >= bound;
    unsigned incl = sp_scan(sh, mine);
    if (t == SP_THREADS - 1) sh.total = incl;
    __syncthreads();
    if (sh.total > 2u * k + 32u) { /* a loose bound: the slice's k-th key itself */
        const int shift =
            sp_select_begin(sh, (sp_u64)slice_top << 32, (sp_u64)bound << 32, k, sh.total, 32);
        sp_select(sh, shift, 32, [&](auto f) {
#pragma unroll
            for (int j = 0; j < SP_PER; j++) f((sp_u64)key[j] << 32, key[j] >= bound);
        });
        bound = (uint32_t)(sh.prefix >> 32);
        mine = 0;
#pragma unroll
        for (int j = 0; j < SP_PER; j++) mine += key[j] >= bound;
        incl = sp_scan(sh, mine);
    }
    sp_stamp(trace, RS_PICK_COUNTED);
    if (t == SP_THREADS - 1) sh.base = (unsigned)atomicAdd(&scr->tally, (sp_u64)incl);
    __syncthreads();
    sp_stamp(trace, RS_PICK_PLACED);
    unsigned at = sh.base + incl - mine;
#pragma unroll
    for (int j = 0; j < SP_PER; j++)
        if (key[j] >= bound) scr->list[at++] = sp_rank_key(key[j], start + j * SP_THREADS + t);
}

/* ---- stage 2 -------------------------------------------------------------------------- */

/* The k best of the list into sh.w / sh.id, best first; returns how many. */
__device__ int sp_best(sp_shared &sh, const sp_u64 *list, unsigned n, int k, sp_u64 *trace) {
    /* one pass over the list: into shared memory if it fits, and its extremes */
    constexpr int PER = SP_LIST_SHARED / SP_THREADS;
    const bool shared = n <= (unsigned)SP_LIST_SHARED;
    sp_u64 hi = 0, lo = ~0ull;
    for (unsigned base = 0; base < n; base += SP_LIST_SHARED) { /* PER loads in flight */
        sp_u64 c[PER];
#pragma unroll
        for (int j = 0; j < PER; j++)
            c[j] = __ldcg(&list[min(base + j * SP_THREADS + threadIdx.x, n - 1)]);
#pragma unroll
        for (int j = 0; j < PER; j++) {
            const unsigned e = base + j * SP_THREADS + threadIdx.x;
            if (e >= n) continue;
            if (shared) sh.list[e] = c[j];
            hi = max(hi, c[j]), lo = min(lo, c[j]);
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        hi = max(hi, __shfl_xor_sync(0xffffffffu, hi, o));
        lo = min(lo, __shfl_xor_sync(0xffffffffu, lo, o));
    }
    const int warp = threadIdx.x >> 5;
    if ((threadIdx.x & 31) == 0) sh.warp_hi[warp] = hi, sh.warp_lo[warp] = lo;
    if (threadIdx.x == 0) sh.n_cand = 0;
    __syncthreads();
#pragma unroll
    for (int w = 0; w < SP_WARPS; w++) hi = max(hi, sh.warp_hi[w]), lo = min(lo, sh.warp_lo[w]);
    sp_stamp(trace, RS_PICK_COPIED);
    auto load = [&](unsigned e) { return shared ? sh.list[e] : __ldcg(&list[e]); };
    /* the keys are unique, so the last digit leaves one key for need = 1 */
    const int shift = sp_select_begin(sh, hi, lo, k, n, 0);
    sp_select(sh, shift, 0, [&](auto f) {
        for (unsigned base = 0; base < n; base += SP_THREADS) { /* warps stay converged */
            const unsigned e = base + threadIdx.x;
            f(e < n ? load(e) : 0, e < n);
        }
    });
    sp_stamp(trace, RS_PICK_SELECTED);
    const sp_u64 least = sh.prefix;
    for (unsigned e = threadIdx.x; e < n; e += SP_THREADS) {
        const sp_u64 c = load(e);
        if (c >= least) {
            const int at = atomicAdd(&sh.n_cand, 1);
            if (at < SP_K) sh.cand[at] = c;
        }
    }
    __syncthreads();
    const int n_cand = min(sh.n_cand, k);
    if ((int)threadIdx.x < n_cand) { /* a candidate's place: how many rank above it */
        const sp_u64 c = sh.cand[threadIdx.x];
        int place = 0;
#pragma unroll 8
        for (int j = 0; j < n_cand; j++) place += sh.cand[j] > c;
        sh.w[place] = sp_value((uint32_t)(c >> 32));
        sh.id[place] = (int)~(uint32_t)c;
    }
    __syncthreads();
    sp_stamp(trace, RS_PICK_SORTED);
    return n_cand;
}

/* Thread 0's running sums in the host's order, eight loads in flight: the total of
 * e[0..n), and every prefix sum of f (the final softmax's total over any n_keep), two
 * independent chains. */
__device__ double sp_sums(const double *e, const double *f, double *f_sums, int n) {
    double z = 0.0, acc = 0.0;
    for (int i = 0; i < n; i += 8) {
        double a[8], b[8];
#pragma unroll
        for (int u = 0; u < 8; u++)
            a[u] = i + u < n ? e[i + u] : 0.0, b[u] = i + u < n ? f[i + u] : 0.0;
#pragma unroll
        for (int u = 0; u < 8; u++)
            if (i + u < n) z += a[u], acc += b[u], f_sums[i + u] = acc;
    }
    return z;
}

/* Thread 0's running sum of v[0..n) in the host's order: the first i whose sum through
 * v[i] reaches target (-1: none). strict: the host's draw (target < sum); else top-p's cut
 * (sum >= target). The sums past it are taken too, so no branch waits on a compare. */
__device__ int sp_first_reaching(const double *v, int n, double target, bool strict) {
    double cum = 0.0;
    int first = -1;
    for (int i = 0; i < n; i += 8) {
        double a[8];
#pragma unroll
        for (int u = 0; u < 8; u++) a[u] = i + u < n ? v[i + u] : 0.0;
#pragma unroll
        for (int u = 0; u < 8; u++) {
            cum += a[u];
            const bool hit = i + u < n && (strict ? target < cum : cum >= target);
            first = first < 0 && hit ? i + u : first;
        }
    }
    return first;
}

/* The draw's parameters, read from the rule once (not its penalty window). */
struct sp_rule {
    uint64_t rng[4];
    int top_k;
    float top_p, min_p, temp;
};

/* Thread 0: the host's draw when every logit is -inf or NaN, uniform over all n of them
 * (no draw for one); moves rule->rng. */
__device__ int sp_uniform(rs_sample_rule *rule, const sp_rule &r, int n) {
    if (n <= 1) return 0;
    uint64_t st[4] = {r.rng[0], r.rng[1], r.rng[2], r.rng[3]};
    const double u = rs_xoshiro_uniform(st), p = 1.0 / n;
    double cum = 0.0;
    int pick = n - 1;
    for (int i = 0; i < n; i++) {
        cum += p;
        if (u < cum) {
            pick = i;
            break;
        }
    }
    for (int j = 0; j < 4; j++) rule->rng[j] = st[j];
    return pick;
}

/* rs_sampler_sample over the k candidates in sh (best first): thread 0 leaves the token
 * in sh.pick and the RNG state after the draw in rule->rng. The exps of top-p and of the
 * final softmax and min-p's cut are computed at once (min-p keeps a prefix of the sorted
 * candidates, so it cuts top-p's prefix where it cuts the whole list); only the sums in
 * the host's order wait for one another. */
__device__ void sp_draw(sp_shared &sh, rs_sample_rule *rule, const sp_rule &r, int n, int k,
                        sp_u64 *trace) {
    const int tid = threadIdx.x;
    const double vmax = (double)sh.w[0]; /* the host's max over the whole vocabulary */
    if (vmax == -INFINITY) { /* every logit -inf or NaN: uniform over all of them, as the host */
        if (tid == 0) sh.pick = sp_uniform(rule, r, n);
        return;
    }
    const bool cand = tid < k;
    const double d = cand ? (double)sh.w[tid] - vmax : 0.0;
    if (cand) {
        sh.e[tid] = exp(d);                  /* top_p_sorted */
        sh.f[tid] = exp(d / (double)r.temp); /* final_softmax */
    }
    /* apply_min_p: the candidates it keeps, a prefix */
    const int n_min_p = __syncthreads_count(cand && !(r.min_p > 0.0f && d < log((double)r.min_p)));
    if (tid == 0) sh.z = sp_sums(sh.e, sh.f, sh.f_sums, k);
    __syncthreads();
    sp_stamp(trace, RS_PICK_EXPS);
    int n_top_p = k;
    if (r.top_p < 1.0f) {
        if (cand) sh.q[tid] = sh.e[tid] / sh.z;
        __syncthreads();
        if (tid == 0) {
            const int i = sp_first_reaching(sh.q, k, (double)r.top_p, false);
            n_top_p = i < 0 ? k : i + 1;
        }
    }
    sp_stamp(trace, RS_PICK_TOP_P);
    if (tid == 0) { /* both keep the best candidate: n_keep >= 1 */
        const int n_keep = min(n_top_p, n_min_p);
        sh.n_keep = n_keep, sh.z = sh.f_sums[n_keep - 1];
    }
    __syncthreads();
    const int n_keep = sh.n_keep;
    if (tid < n_keep) sh.q[tid] = sh.f[tid] / sh.z;
    __syncthreads();
    sp_stamp(trace, RS_PICK_SOFTMAX);
    if (tid == 0) {
        int pick = 0;
        if (n_keep > 1) { /* one survivor takes no draw */
            uint64_t st[4] = {r.rng[0], r.rng[1], r.rng[2], r.rng[3]};
            const double u = rs_xoshiro_uniform(st);
            pick = sp_first_reaching(sh.q, n_keep, u, true);
            for (int i = n_keep - 1; i > 0 && pick < 0; i--)
                if (sh.q[i] > 0.0) pick = i;
            if (pick < 0) pick = 0;
            for (int j = 0; j < 4; j++) rule->rng[j] = st[j];
        }
        sh.pick = sh.id[pick];
    }
    sp_stamp(trace, RS_PICK_DRAWN);
}

/* ---- the whole vocabulary: sampler.c draw_by_id ---------------------------------------- */

/* The largest cleaned logit's key. Every block reads all n logits, so none waits for
 * another before its exps (no block spins on another, whatever shares the GPU). The max
 * is taken on the floats (fmaxf skips NaN) and cleaned once: sp_key is monotone, so the
 * key of the max is the max of the keys; keys per logit took twice as long (run 381).
 * SA_LOADS float4 loads a thread in flight; 16 measured the same (run 379). */
constexpr int SA_LOADS = 8;
__device__ uint32_t sa_top_key(sp_shared &sh, const float *logits, int n) {
    float top = -INFINITY;
    const int n4 = ((uintptr_t)logits & 15) ? 0 : n / 4;
    const float4 *v = (const float4 *)logits;
    for (int base = threadIdx.x; base < n4; base += SP_THREADS * SA_LOADS) {
        float4 a[SA_LOADS];
#pragma unroll
        for (int j = 0; j < SA_LOADS; j++) {
            const int i = base + j * SP_THREADS;
            a[j] = i < n4 ? v[i] : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
        }
#pragma unroll
        for (int j = 0; j < SA_LOADS; j++)
            top = fmaxf(top, fmaxf(fmaxf(a[j].x, a[j].y), fmaxf(a[j].z, a[j].w)));
    }
    for (int i = 4 * n4 + threadIdx.x; i < n; i += SP_THREADS) top = fmaxf(top, logits[i]);
    uint32_t key = __reduce_max_sync(0xffffffffu, sp_key(top));
    if ((threadIdx.x & 31) == 0) sh.part[threadIdx.x >> 5] = key;
    __syncthreads();
#pragma unroll
    for (int w = 0; w < SP_WARPS; w++) key = max(key, sh.part[w]);
    __syncthreads(); /* part is reused */
    return key;
}

/* A thread's 16 logits, ids id0 .. id0 + 16 (past n: the last one again), as stored. */
__device__ __forceinline__ void sa_load16(const float *logits, int n, int id0, float x[SP_PER]) {
    if (!((uintptr_t)logits & 15) && id0 + SP_PER <= n) { /* 64 bytes in four loads */
#pragma unroll
        for (int j = 0; j < SP_PER; j += 4) {
            const float4 a = *(const float4 *)&logits[id0 + j];
            x[j] = a.x, x[j + 1] = a.y, x[j + 2] = a.z, x[j + 3] = a.w;
        }
    } else {
#pragma unroll
        for (int j = 0; j < SP_PER; j++) x[j] = logits[min(id0 + j, n - 1)];
    }
}

/* A logit's distance below the largest: draw_by_id's d. */
__device__ __forceinline__ double sa_gap(float x, double vmax) {
    return (double)sp_clean(x) - vmax;
}

/* A candidate's mass in the final softmax: draw_by_id's, 0 where min-p drops it. The exp is
 * taken either way, so a thread's 16 have no branches around them. */
__device__ __forceinline__ double sa_mass(double d, double temp, double cut) {
    const double e = exp(d / temp);
    return d < cut ? 0.0 : e;
}

/* ---- top-p over the whole vocabulary: sampler.c top_p_all --------------------------------
 * The nucleus ends at the first candidate, best first, whose inclusive prefix sum of
 * integer masses reaches the target (nucleus.h); integer sums do not depend on their order.
 * Every block takes its slice's masses once, into registers, and the blocks find that
 * candidate together, pass by pass: each adds its histogram into the pass's bins, waits for
 * the others at a grid barrier, and reads the bins to choose the one holding it; the first
 * pass bins by bucket, the next ones by 8-bit digits of the rank key inside the chosen
 * bucket, until one id is left. Once at most SN_LIST_MAX ids remain, the blocks list them
 * once and each takes the remaining digits from its own copy of the list, in shared
 * memory, with no more grid barriers. The blocks must all be resident at once, as the decode
 * chain's are (cuda_chain.cuh): the session keeps the grid at RS_SAMPLE_NUCLEUS_VOCAB_MAX /
 * 4096 blocks of 256 threads, and a pick only waits on blocks that have passed the grid
 * dependency, when the kernel before has left the GPU. */

/* The nucleus: the ids in buckets before edge, and those in it whose rank key, masked,
 * is at least prefix. edge = SN_BUCKETS: every id. */
struct sn_cut {
    int edge;
    sp_u64 prefix, mask;
    int passes; /* bins of the scratch to clear */
};

/* A cleaned logit's bucket: 1/8 nat a bucket below the max, the last one open. */
__device__ __forceinline__ int sn_bucket(float xc, double vmax) {
    const double d = (vmax - (double)xc) * SN_PER_NAT;
    return d < SN_BUCKETS - 1 ? (int)d : SN_BUCKETS - 1;
}

/* Whether a cleaned logit xc of bucket b, id id, is in the nucleus c. */
__device__ __forceinline__ bool sn_in(const sn_cut &c, int b, float xc, int id) {
    return b < c.edge || (b == c.edge && (sp_rank_key(sp_key(xc), id) & c.mask) >= c.prefix);
}

__device__ __forceinline__ bool sn_member(const sn_cut &c, float xc, int id, double vmax) {
    return c.edge >= SN_BUCKETS || sn_in(c, sn_bucket(xc, vmax), xc, id);
}

/* All blocks have added their pass (goal: blocks times passes so far). */
__device__ void sn_grid_wait(unsigned *bar, unsigned goal) {
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        atomicAdd(bar, 1u);
        unsigned now;
        do asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(now) : "l"(bar) : "memory");
        while (now < goal);
    }
    __syncthreads();
}

/* The block's histogram: a mass into bin, bin i's total, and clearing bin i. */
constexpr int SN_LO_BITS = 20;
static_assert(SN_LIST_MAX <= SP_SLICE && SP_SLICE * ((1ull << SN_LO_BITS) - 1) <= 0xffffffffull &&
                  SP_SLICE * ((sp_u64)RS_NUCLEUS_UNIT >> SN_LO_BITS) <= 0xffffffffull,
              "a pass's masses (at most RS_NUCLEUS_UNIT each) fit the two 32-bit sums");
__device__ __forceinline__ void sn_hadd(sp_shared &sh, int bin, sp_u64 m) {
    atomicAdd(&sh.hlo[bin], (unsigned)(m & ((1u << SN_LO_BITS) - 1)));
    atomicAdd(&sh.hhi[bin], (unsigned)(m >> SN_LO_BITS));
}
__device__ __forceinline__ sp_u64 sn_hmass(const sp_shared &sh, int i) {
    return (sp_u64)sh.hlo[i] + ((sp_u64)sh.hhi[i] << SN_LO_BITS);
}
__device__ __forceinline__ void sn_hclear(sp_shared &sh, int i) {
    sh.hist[i] = 0, sh.hlo[i] = 0, sh.hhi[i] = 0;
}

/* Warp 0: the bin, from bin 0, where the prefix sum of the masses reaches need (with
 * need = 0: the target of top_p over the bins' total), left in sh.sn_bin / sn_cnt / sn_need
 * (what is still wanted inside it). cnt_of(i), mass_of(i): bin i's ids and mass, the grid's
 * or the block's. */
template <typename Cnt, typename Mass>
__device__ void sn_scan(sp_shared &sh, Cnt cnt_of, Mass mass_of, sp_u64 need, float top_p) {
    constexpr int PER = SN_BUCKETS / 32;
    const int lane = threadIdx.x & 31;
    sp_u64 m[PER], sum = 0;
#pragma unroll
    for (int j = 0; j < PER; j++) {
        sum += m[j] = mass_of(lane * PER + j);
    }
    sp_u64 incl = sum;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const sp_u64 v = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += v;
    }
    if (need == 0) need = rs_nucleus_target(__shfl_sync(0xffffffffu, incl, 31), top_p);
    sp_u64 above = incl - sum;
    if (above < need && need <= incl) {
#pragma unroll
        for (int j = 0; j < PER; j++) {
            if (above < need && need <= above + m[j]) {
                const int i = lane * PER + j;
                sh.sn_bin = i;
                sh.sn_cnt = cnt_of(i);
                sh.sn_need = need - above;
            }
            above += m[j];
        }
    }
}

/* One pass over the grid: adds the block's shared histogram (hist, hlo, hhi) into pass ps's
 * bins and clears it, waits for every block (barrier ps), then chooses the bin (sn_scan). */
__device__ void sn_choose(sp_shared &sh, sn_area *a, int ps, sp_u64 need, float top_p) {
    const int t = threadIdx.x;
    __syncthreads(); /* the block's histogram is complete */
    if (sh.hist[t]) {
        atomicAdd(&a->cnt[ps][t], sh.hist[t]);
        atomicAdd(&a->mass[ps][t], sn_hmass(sh, t));
    }
    sn_hclear(sh, t);
    sn_grid_wait(&a->bar, gridDim.x * (ps + 1));
    if (t < 32)
        sn_scan(
            sh, [&](int i) { return __ldcg(&a->cnt[ps][i]); },
            [&](int i) { return __ldcg(&a->mass[ps][i]); }, need, top_p);
    __syncthreads();
}

/* The bins a token adds itself to: one atomic a token, except in the last bucket, where
 * most of a real vocabulary lands, whose tokens a warp adds at once. */
__device__ __forceinline__ void sn_add(sp_shared &sh, int bin, sp_u64 m) {
    const bool open = bin == SN_BUCKETS - 1;
    if (bin >= 0 && !open) {
        atomicAdd(&sh.hist[bin], 1u);
        if (m) sn_hadd(sh, bin, m);
    }
    const unsigned n_open = __reduce_add_sync(0xffffffffu, open ? 1u : 0u);
    if (!n_open) return;
    /* the parts summed apart, as sn_hadd adds them: each sum stays what it would be */
    const unsigned lo = __reduce_add_sync(0xffffffffu,
                                          open ? (unsigned)(m & ((1u << SN_LO_BITS) - 1)) : 0u),
                   hi = __reduce_add_sync(0xffffffffu, open ? (unsigned)(m >> SN_LO_BITS) : 0u);
    if ((threadIdx.x & 31) == 0) {
        atomicAdd(&sh.hist[SN_BUCKETS - 1], n_open);
        atomicAdd(&sh.hlo[SN_BUCKETS - 1], lo);
        atomicAdd(&sh.hhi[SN_BUCKETS - 1], hi);
    }
}

/* The ids still in the running (bucket c.edge, masked rank key c.prefix), at most
 * SN_LIST_MAX in the grid, into the scratch's list: one atomic a block for its place;
 * then, past barrier nbar, every block copies the whole list (n <= SN_LIST_MAX entries)
 * into sh.list, keys then masses. */
__device__ void sn_list(sp_shared &sh, sn_area *a, const sn_cut &c, const float x[SP_PER],
                        const sp_u64 m[SP_PER], const int bk[SP_PER], int id0, int nbar,
                        unsigned n) {
    const int t = threadIdx.x;
    unsigned in = 0;
#pragma unroll
    for (int j = 0; j < SP_PER; j++)
        in |=
            (unsigned)(bk[j] == c.edge && (sp_rank_key(sp_key(x[j]), id0 + j) & c.mask) == c.prefix)
            << j;
    const unsigned mine = __popc(in), incl = sp_scan(sh, mine);
    if (t == SP_THREADS - 1) sh.base = atomicAdd(&a->listed, incl);
    __syncthreads();
    unsigned at = sh.base + incl - mine;
#pragma unroll
    for (int j = 0; j < SP_PER; j++) {
        if (!(in >> j & 1u)) continue;
        if (at < SN_LIST_MAX) a->key[at] = sp_rank_key(sp_key(x[j]), id0 + j), a->lmass[at] = m[j];
        at++;
    }
    sn_grid_wait(&a->bar, gridDim.x * nbar);
    for (unsigned i = t; i < n; i += SP_THREADS)
        sh.list[i] = __ldcg(&a->key[i]), sh.list[SN_LIST_MAX + i] = __ldcg(&a->lmass[i]);
    __syncthreads();
}

/* The digit of the bin chosen at shift into c; need and cnt: what is wanted and left in it.
 * True when one id is left, else shift moves to the next digit. */
__device__ __forceinline__ bool sn_take(const sp_shared &sh, sn_cut &c, int &shift, sp_u64 &need,
                                        unsigned &cnt) {
    c.prefix |= (sp_u64)(SN_BUCKETS - 1 - sh.sn_bin) << shift;
    c.mask |= (sp_u64)255 << shift;
    need = sh.sn_need, cnt = sh.sn_cnt;
    if (cnt == 1 || shift == 0) return true;
    shift = max(shift - 8, 0);
    return false;
}

/* The passes after the first while the edge bucket c.edge holds more than one id: 8-bit
 * digits of the rank key inside it, into c's prefix and mask, until one id is left. While
 * more than SN_LIST_MAX ids are in the running a digit is a pass over the grid (sn_choose);
 * then the blocks list those ids once (sn_list) and each takes the remaining digits from
 * its copy of the list, in shared memory, with no grid barrier between them (every block
 * reads the same entries, so every block chooses the same bins). The thread's 16 ids:
 * cleaned logits x, masses m, buckets bk (-1 past n). */
__device__ __forceinline__ void sn_digits(sp_shared &sh, sn_area *a, int n, double vmax,
                                          float top_p, const float x[SP_PER],
                                          const sp_u64 m[SP_PER], const int bk[SP_PER], int id0,
                                          sn_cut &c, sp_u64 *trace) {
    const int e = c.edge, t = threadIdx.x;
    /* the bucket's keys lie in [lo, hi], so they share every bit above the highest one
     * where lo and hi differ: the digits start there. A logit x is in bucket e when
     * (vmax - x) * 8, rounded, is in [e, e + 1); below 32 nats the subtraction is off by
     * at most ~4e-15, so bounds widened by 1e-13 and rounded outwards hold every such x,
     * tiny ones beside a bound at 0 too */
    const float hi_f = nextafterf((float)(vmax - e / SN_PER_NAT + 1e-13), INFINITY);
    const float lo_f = e == SN_BUCKETS - 1
                           ? -INFINITY
                           : nextafterf((float)(vmax - (e + 1) / SN_PER_NAT - 1e-13), -INFINITY);
    const sp_u64 hi = ((sp_u64)sp_key(hi_f) << 32) | 0xffffffffull,
                 lo = ((sp_u64)sp_key(lo_f) << 32) | (uint32_t) ~(uint32_t)(n - 1);
    int shift = max(0, 63 - __clzll((long long)(hi ^ lo)) - 7);
    c.mask = shift >= 56 ? 0 : ~0ull << (shift + 8);
    c.prefix = hi & c.mask;
    sp_u64 need = sh.sn_need;
    unsigned cnt = sh.sn_cnt;
    int ps = 1;
    for (; cnt > SN_LIST_MAX; ps++) {
#pragma unroll
        for (int j = 0; j < SP_PER; j++) {
            const sp_u64 rk = sp_rank_key(sp_key(x[j]), id0 + j);
            const bool mine = bk[j] == e && (rk & c.mask) == c.prefix;
            sn_add(sh, mine ? SN_BUCKETS - 1 - (int)((rk >> shift) & 255) : -1, m[j]);
        }
        sn_choose(sh, a, ps, need, top_p);
        c.passes = ps + 1;
        if (sn_take(sh, c, shift, need, cnt)) return;
    }
    const unsigned n_list = min(cnt, (unsigned)SN_LIST_MAX);
    sn_list(sh, a, c, x, m, bk, id0, ps + 1, n_list); /* barriers 1 .. ps were the passes' */
    sp_stamp(trace, RS_PICK_LISTED);
    const sp_u64 *lk = sh.list, *lm = sh.list + SN_LIST_MAX;
    for (bool done = false; !done;) {
        for (unsigned i = t; i < n_list; i += SP_THREADS)
            if ((lk[i] & c.mask) == c.prefix) {
                const int bin = SN_BUCKETS - 1 - (int)((lk[i] >> shift) & 255);
                atomicAdd(&sh.hist[bin], 1u);
                if (lm[i]) sn_hadd(sh, bin, lm[i]);
            }
        __syncthreads();
        if (t < 32)
            sn_scan(
                sh, [&](int i) { return sh.hist[i]; }, [&](int i) { return sn_hmass(sh, i); }, need,
                top_p);
        __syncthreads();
        done = sn_take(sh, c, shift, need, cnt);
        sn_hclear(sh, t);
        __syncthreads(); /* cleared, and sh.sn_* read, before the next digit */
    }
}

/* The nucleus of top_p over the n logits (their largest vmax, finite): every block of the
 * grid calls it, with its slice's SP_SLICE ids. Bit j of *keep: the thread's id j is in it. */
__device__ sn_cut sn_find_cut(sp_shared &sh, sn_area *a, const float *logits, int n, double vmax,
                              float top_p, unsigned *keep, sp_u64 *trace) {
    const int t = threadIdx.x, id0 = blockIdx.x * SP_SLICE + t * SP_PER;
    sn_hclear(sh, t);
    float x[SP_PER];
    sp_u64 m[SP_PER];
    int bk[SP_PER];
    sa_load16(logits, n, id0, x);
#pragma unroll
    for (int j = 0; j < SP_PER; j++) x[j] = sp_clean(x[j]);
    __syncthreads(); /* the histogram is clear */
#pragma unroll
    for (int j = 0; j < SP_PER; j++) {
        const bool in = id0 + j < n;
        bk[j] = in ? sn_bucket(x[j], vmax) : -1;
        m[j] = in ? rs_nucleus_mass((double)x[j] - vmax) : 0;
        sn_add(sh, bk[j], m[j]);
    }
    sn_choose(sh, a, 0, 0, top_p);
    sp_stamp(trace, RS_PICK_FIRST);
    sn_cut c = {sh.sn_bin, 0, 0, 1};
    if (sh.sn_cnt > 1) sn_digits(sh, a, n, vmax, top_p, x, m, bk, id0, c, trace);
    *keep = 0;
#pragma unroll
    for (int j = 0; j < SP_PER; j++)
        *keep |= (unsigned)(bk[j] >= 0 && sn_in(c, bk[j], x[j], id0 + j)) << j;
    return c;
}

/* The masses of ids id0 .. id0 + 16 into m (0 past n and where bit j of keep, the nucleus,
 * is clear); adds those the nucleus and min-p keep to *kept. */
__device__ void sa_masses(const float *logits, int n, int id0, double vmax, double temp, double cut,
                          unsigned keep, double m[SP_PER], unsigned *kept) {
    float x[SP_PER];
    sa_load16(logits, n, id0, x);
#pragma unroll
    for (int j = 0; j < SP_PER; j++) {
        const double d = sa_gap(x[j], vmax), mass = sa_mass(d, temp, cut);
        const bool in = id0 + j < n && (keep >> j & 1u);
        m[j] = in ? mass : 0.0;
        *kept += in && !(d < cut);
    }
}

/* Block b's slice: level 1 into tree.part and into parts (the last block descends through
 * them without taking the exps again), level 2 into tree.half; returns level 3's node
 * (thread 0's value) and, in thread 0, counts the slice's candidates into tree.kept. */
__device__ double sa_slice(sp_shared &sh, const float *logits, int n, int b, double vmax,
                           double temp, double cut, unsigned keep, sp_u64 *parts) {
    sa_tree &tr = sh.tree;
    const int t = threadIdx.x;
    double m[SP_PER], sum = 0.0;
    unsigned kept = 0;
    sa_masses(logits, n, b * SP_SLICE + t * SP_PER, vmax, temp, cut, keep, m, &kept);
#pragma unroll
    for (int j = 0; j < SP_PER; j++) sum += m[j]; /* rs_tree_up's sum: past n, + 0 */
    tr.part[t] = sum;
    parts[t] = (sp_u64)__double_as_longlong(sum);
    kept = __reduce_add_sync(0xffffffffu, kept);
    if ((t & 31) == 0) sh.part[t >> 5] = kept;
    __syncthreads();
    if (t % RS_TREE_FAN == 0) rs_tree_up(&tr.part[t], RS_TREE_FAN, &tr.half[t / RS_TREE_FAN]);
    __syncthreads();
    double block = 0.0;
    if (t == 0) {
        rs_tree_up(tr.half, SP_THREADS / RS_TREE_FAN, &block);
        tr.kept = 0;
        for (int w = 0; w < SP_WARPS; w++) tr.kept += sh.part[w];
    }
    return block;
}

/* rs_sampler_sample when top-k is off (draw_by_id): with top-p the blocks first find the
 * nucleus together (sn_find_cut); each block sums its slice's masses (0 outside the nucleus
 * and below min-p) up to level 3 and leaves level 1 and its sum in the scratch list; the last block
 * sums the levels above, walks down to a block, through that block's level 1 (and the
 * level 2 it sums again) to a thread's 16 ids, whose masses 16 lanes take again, and to
 * the id. With one candidate (min-p) it walks to the only mass with target 0 and draws
 * nothing, as the host does. Returns true in the last block, with the token in sh.pick.
 * Scratch list: the blocks' sums, then SP_THREADS level-1 sums a block. */
__device__ bool sa_pick(sp_shared &sh, sp_scratch *scr, const float *logits, int n,
                        rs_sample_rule *rule, const sp_rule &r, sp_u64 *trace) {
    sa_tree &tr = sh.tree;
    const int tid = threadIdx.x, nb = gridDim.x;
    const double vmax = (double)sp_value(sa_top_key(sh, logits, n)); /* barriers inside */
    sp_stamp(trace, RS_PICK_LOADED);
    const double temp = (double)r.temp,
                 cut = r.min_p > 0.0f ? log((double)r.min_p) : -(double)INFINITY;
    const bool finite = vmax != -(double)INFINITY;
    sn_cut nuc = {SN_BUCKETS, 0, 0, 0}; /* every id */
    unsigned keep = (1u << SP_PER) - 1; /* the thread's ids in the nucleus */
    if (finite && r.top_p < 1.0f)
        nuc = sn_find_cut(sh, &scr->nuc, logits, n, vmax, r.top_p, &keep, trace);
    sp_stamp(trace, RS_PICK_BOUND);
    double block = 0.0;
    sp_u64 *parts = &scr->list[nb];
    if (finite)
        block = sa_slice(sh, logits, n, blockIdx.x, vmax, temp, cut, keep,
                         &parts[blockIdx.x * SP_THREADS]);
    sp_stamp(trace, RS_PICK_COUNTED);
    if (tid == 0) {
        scr->list[blockIdx.x] = (sp_u64)__double_as_longlong(block);
        const sp_u64 add = SP_ARRIVAL + tr.kept, old = sp_add_acq_rel(&scr->tally, add) + add;
        sh.last = old >> 32 == (sp_u64)nb, sh.total = (unsigned)old;
    }
    __syncthreads();
    sp_stamp(trace, RS_PICK_ARRIVED);
    if (!sh.last) return false;
    if (tid == 0) scr->tally = 0, scr->nuc.bar = 0, scr->nuc.listed = 0; /* all have arrived */
    for (int ps = 0; ps < nuc.passes; ps++) scr->nuc.mass[ps][tid] = 0, scr->nuc.cnt[ps][tid] = 0;
    if (!finite) { /* every logit -inf or NaN: uniform over the vocabulary */
        if (tid == 0) sh.pick = sp_uniform(rule, r, n);
        return true;
    }
    double target = 0.0;
    const int nb_kept = min(nb, SA_BLOCKS_MAX); /* the session keeps n within the bound */
    for (int b = tid; b < nb_kept; b += SP_THREADS)
        tr.lvl3[b] = __longlong_as_double((long long)__ldcg(&scr->list[b]));
    __syncthreads();
    if (tid == 0) { /* the levels above level 3, then down to a block */
        const double *level[RS_TREE_LEVELS] = {tr.lvl3};
        int64_t len[RS_TREE_LEVELS] = {nb_kept};
        const int top = rs_tree_build(level, len, tr.up);
        if (sh.total > 1) {
            uint64_t st[4] = {r.rng[0], r.rng[1], r.rng[2], r.rng[3]};
            target = rs_xoshiro_uniform(st) * level[top][0];
            for (int j = 0; j < 4; j++) rule->rng[j] = st[j];
        }
        double base;
        tr.node = (int)rs_tree_walk(level, len, top, target, &base);
        tr.base = base;
    }
    __syncthreads();
    sp_stamp(trace, RS_PICK_SELECTED);
    const int b = tr.node;
    tr.part[tid] = __longlong_as_double((long long)__ldcg(&parts[b * SP_THREADS + tid]));
    __syncthreads();
    if (tid % RS_TREE_FAN == 0) rs_tree_up(&tr.part[tid], RS_TREE_FAN, &tr.half[tid / RS_TREE_FAN]);
    __syncthreads();
    sp_stamp(trace, RS_PICK_SOFTMAX);
    if (tid < 32) { /* warp 0: lane 0 walks down to a thread's ids, 16 lanes take their masses */
        double base = tr.base;
        int id0 = 0;
        if (tid == 0) {
            const int64_t h = rs_tree_down(tr.half, SP_THREADS / RS_TREE_FAN, 0, target, &base);
            id0 = b * SP_SLICE + (int)rs_tree_down(tr.part, SP_THREADS, h, target, &base) * SP_PER;
        }
        id0 = __shfl_sync(0xffffffffu, id0, 0);
        if (tid < SP_PER && id0 + tid < n)
            tr.leaf[tid] = sn_member(nuc, sp_clean(logits[id0 + tid]), id0 + tid, vmax)
                               ? sa_mass(sa_gap(logits[id0 + tid], vmax), temp, cut)
                               : 0.0;
        __syncwarp();
        if (tid == 0)
            sh.pick = id0 + (int)rs_tree_down(tr.leaf, min(SP_PER, n - id0), 0, target, &base);
    }
    sp_stamp(trace, RS_PICK_DRAWN);
    return true;
}

/* rs_sampler_sample (sampler.c) for one token: see the file comment. (One block an SM is all
 * the grid needs; without the bound ptxas held the kernel to 128 registers and spilled.) */
__global__ void __launch_bounds__(SP_THREADS, 1)
    sample_pick_kernel(const float *logits, int n, rs_sample_rule *rule, int32_t *ids, int32_t *pos,
                       int32_t *picks, uint64_t *rngs, int n_picks, sp_scratch *scr,
                       sp_u64 *trace) {
    __shared__ sp_shared sh;
    sp_stamp(trace, RS_PICK_START);
    cw_griddep_wait();
    sp_stamp(trace, RS_PICK_WAITED);
    const int tid = threadIdx.x;
    const sp_rule r = {{rule->rng[0], rule->rng[1], rule->rng[2], rule->rng[3]},
                       rule->top_k,
                       rule->top_p,
                       rule->min_p,
                       rule->temp};
    if (r.top_k <= 0 || r.top_k >= n) { /* top-k off: top-p (sn_find_cut), min-p, by id */
        if (!sa_pick(sh, scr, logits, n, rule, r, trace)) return;
    } else {
        /* the session chains rules with 1 <= top_k < n (backend.h); a clamp keeps any
         * other one inside the buffers */
        const int k = min(r.top_k, SP_K);
        sh.hist[tid] = 0; /* the first digit's barrier comes after the bound's */
        sp_list_slice(sh, scr, logits, n, k, trace);
        __syncthreads(); /* the block's list entries before its arrival */
        if (tid == 0) {
            /* every block adds its entries before it arrives: the last sees them all */
            const sp_u64 old = sp_add_acq_rel(&scr->tally, SP_ARRIVAL) + SP_ARRIVAL;
            sh.last = old >> 32 == gridDim.x, sh.total = (unsigned)old;
        }
        __syncthreads();
        sp_stamp(trace, RS_PICK_ARRIVED);
        if (!sh.last) return;
        const int n_cand = sp_best(sh, scr->list, sh.total, k, trace);
        if (tid == 0) scr->tally = 0; /* every block has arrived */
        sp_draw(sh, rule, r, n, n_cand, trace);
    }
    __syncthreads();
    if (tid != 0) return;
    const int id = sh.pick, p = pos[0], slot = p % n_picks;
    ids[0] = id;
    /* the host reads them after an event that follows the kernel: no fence needed */
    picks[slot] = id;
    for (int j = 0; j < 4; j++) rngs[4 * slot + j] = rule->rng[j];
    cw_window_push(&rule->pen, id);
    pos[0] = p + 1;
    sp_stamp(trace, RS_PICK_END);
    if (trace) trace[blockIdx.x * RS_PICK_EV + RS_PICK_LAST] = 1;
}

/* Stage 1 of rs_sampler_sample (sampler.c apply_penalties) on the logits in place. Thread i
 * takes window entry i into a shared-memory hash of the window's tokens (open addressing,
 * twice as many slots as entries), which counts each token and keeps its first entry; the
 * thread of that entry penalises the token's logit with the host's float operations, each
 * rounded on its own (no contraction into an FMA). */
constexpr int PEN_SLOTS = 2 * RS_SAMPLE_LAST_N_MAX;
static_assert(PEN_SLOTS == 1 << 11, "the hash keeps the top 11 bits of the product");

__device__ __forceinline__ float pen_clean(float x) {
    x = x == x ? x : -INFINITY;
    return x < FLT_MAX ? x : FLT_MAX;
}

__global__ void __launch_bounds__(RS_SAMPLE_LAST_N_MAX)
    penalize_kernel(float *logits, int n, const rs_sample_rule *rule) {
    __shared__ int key[PEN_SLOTS], count[PEN_SLOTS], first[PEN_SLOTS];
    cw_griddep_launch();
    for (int j = threadIdx.x; j < PEN_SLOTS; j += blockDim.x)
        key[j] = -1, count[j] = 0, first[j] = INT_MAX;
    cw_griddep_wait(); /* the window was last written by the previous step's pick */
    const rs_sample_window *w = &rule->pen;
    const int len = min(max(min(w->len, w->last_n), 0), RS_SAMPLE_LAST_N_MAX), i = threadIdx.x;
    const int t = i < len ? w->tok[i] : -1;
    __syncthreads();
    int h = -1;
    if (t >= 0 && t < n) { /* other ids are not reached: windows hold picks and checked uploads */
        h = (int)(((uint32_t)t * 2654435761u) >> 21) & (PEN_SLOTS - 1);
        for (;;) {
            const int was = atomicCAS(&key[h], -1, t);
            if (was == -1 || was == t) break;
            h = (h + 1) & (PEN_SLOTS - 1);
        }
        atomicAdd(&count[h], 1);
        atomicMin(&first[h], i);
    }
    __syncthreads();
    if (h < 0 || first[h] != i) return;
    const float c = (float)count[h];
    float x = pen_clean(logits[t]);
    x = x <= 0.0f ? __fmul_rn(x, w->repeat_penalty) : __fdiv_rn(x, w->repeat_penalty);
    x = __fsub_rn(x, __fadd_rn(__fmul_rn(c, w->frequency_penalty), w->presence_penalty));
    logits[t] = pen_clean(x);
}

} // namespace

void cw_penalize(cuda_backend *c, float *logits, int n, const rs_sample_rule *rule) {
    cw_launch(c, true, penalize_kernel, dim3(1), dim3(RS_SAMPLE_LAST_N_MAX), 0, logits, n, rule);
}

void cw_sample_pick(cuda_backend *c, const float *logits, int n, rs_sample_rule *rule, int32_t *ids,
                    int32_t *pos, int32_t *picks, uint64_t *rngs, int n_picks) {
    const int blocks = (n + SP_SLICE - 1) / SP_SLICE;
    /* the list: the k-best path's entries, or the whole vocabulary's block and level-1 sums
     * (sa_pick) */
    const size_t entries = std::max((size_t)n, (size_t)(1 + SP_THREADS) * blocks);
    sp_scratch *scr =
        (sp_scratch *)cw_scratch(c, CW_SCR_PICK, sizeof(sp_scratch) + entries * sizeof(sp_u64));
    if (!scr) return;
    sp_u64 *trace = NULL;
    if (c->tune.pick_trace && c->pick_traced < RS_PICK_TRACE_LAUNCHES &&
        blocks <= RS_PICK_TRACE_BLOCKS)
        trace = c->tune.pick_trace + c->pick_traced++ * RS_PICK_TRACE_WORDS;
    cw_launch(c, true, sample_pick_kernel, dim3(blocks), dim3(SP_THREADS), 0, logits, n, rule, ids,
              pos, picks, rngs, n_picks, scr, trace);
}

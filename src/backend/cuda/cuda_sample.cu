/* cuda_sample.cu — sample_pick: one chained step's token drawn on the device by the
 * sampler's own chain (src/sampler/sampler.h: top-k, top-p, min-p, temperature, one
 * xoshiro256** draw), so that temperature sampling, like greedy picking, never makes the
 * GPU wait for the host between two steps.
 *
 * The token must be the one rs_sampler_sample would return for the same logits and RNG
 * state, so the kernel keeps the host's arithmetic where it decides anything:
 *   - candidates: the k best logits in the host's total order (cleaned value descending,
 *     then id ascending), found by a radix select on an order-preserving 32-bit key
 *     (12 + 12 + 8 bits, one block-wide histogram per digit), ties at the k-th value
 *     resolved by the lowest ids;
 *   - probabilities: float64, each exp computed by its own thread, but every sum taken by
 *     one thread in the host's order, so the rounding is the host's;
 *   - the draw: the same xoshiro256** step and 53-bit uniform.
 * Only exp and log come from a different library (CUDA's, within 1 ulp of glibc's): a
 * last-bit difference can flip a draw only when it lands within ~1e-16 of a boundary, the
 * reproducibility caveat sampler.h already states across libms.
 *
 * One block of 1024 threads reads the logits (from L2: the output head just wrote them)
 * four times: three digit passes and the collection. */
#include <float.h>

#include "backend/cuda/cuda_common.cuh"

namespace {

constexpr int SP_THREADS = 1024, SP_WARPS = SP_THREADS / 32, SP_BINS = 4096, SP_LOADS = 8;
constexpr int SP_K = RS_SAMPLE_TOP_K_MAX;

/* The host's order as an unsigned key: the cleaned logit (NaN as -inf, +inf as FLT_MAX,
 * -0 as +0 so equal values give equal keys) with its bits arranged so that a larger value
 * gives a larger key. */
__device__ __forceinline__ uint32_t sp_key(float x) {
    x = x == x ? fminf(x, FLT_MAX) : -INFINITY;
    if (x == 0.0f) x = 0.0f;
    const uint32_t u = __float_as_uint(x);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float sp_value(uint32_t key) {
    return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

__device__ __forceinline__ uint64_t sp_rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

/* sampler.c's xoshiro_next. */
__device__ uint64_t sp_next(uint64_t st[4]) {
    const uint64_t out = sp_rotl(st[1] * 5, 7) * 9, t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = sp_rotl(st[3], 45);
    return out;
}

struct sp_shared {
    unsigned hist[SP_BINS];
    unsigned part[SP_WARPS];
    uint32_t prefix, mask; /* the key bits chosen so far */
    int need;              /* candidates still wanted among keys matching prefix */
    unsigned at_bin;       /* keys in the chosen bin of the last pass (= the k-th key's) */
    int n_cand;
    uint32_t ckey[SP_K];
    int cid[SP_K];
    float w[SP_K]; /* the candidates best first: cleaned logits, ids */
    int id[SP_K];
    double e[SP_K];
    int n_keep; /* candidates top-p and min-p leave */
    int pick;   /* the token drawn */
};

/* Calls f(x, i, valid) for every logit, each thread's loads in flight together. Every
 * thread makes the same number of calls (f may use warp votes); valid is false for the
 * padding ones. */
template <typename F> __device__ __forceinline__ void sp_each(const float *l, int n, F f) {
    const int n4 = (reinterpret_cast<uintptr_t>(l) & 15) ? 0 : n / 4;
    const float4 *l4 = reinterpret_cast<const float4 *>(l);
    for (int base = 0; base < n4; base += SP_LOADS * SP_THREADS) {
        float4 v[SP_LOADS];
#pragma unroll
        for (int u = 0; u < SP_LOADS; u++) {
            const int j = base + u * SP_THREADS + (int)threadIdx.x;
            v[u] = j < n4 ? l4[j] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
#pragma unroll
        for (int u = 0; u < SP_LOADS; u++) {
            const int j = base + u * SP_THREADS + (int)threadIdx.x;
            const bool ok = j < n4;
            f(v[u].x, 4 * j, ok), f(v[u].y, 4 * j + 1, ok);
            f(v[u].z, 4 * j + 2, ok), f(v[u].w, 4 * j + 3, ok);
        }
    }
    for (int base = 4 * n4; base < n; base += SP_THREADS) {
        const int i = base + (int)threadIdx.x;
        f(i < n ? l[i] : 0.0f, i, i < n);
    }
}

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
    if (warp == 0) {
        unsigned p = sh.part[lane];
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned t = __shfl_up_sync(0xffffffffu, p, o);
            if (lane >= o) p += t;
        }
        sh.part[lane] = p;
    }
    __syncthreads();
    const unsigned r = v + (warp ? sh.part[warp - 1] : 0u);
    __syncthreads(); /* part is reused by the next scan */
    return r;
}

/* One digit of the radix select: the histogram of digit (key >> shift) & (2^bits - 1)
 * over the keys matching the prefix, then the bin, counted from the top, that holds the
 * need-th largest of them; the prefix takes its digit and need what is left of it. */
__device__ void sp_digit(const float *l, int n, sp_shared &sh, int shift, int bits) {
    const int nb = 1 << bits, lane = threadIdx.x & 31;
    for (int i = threadIdx.x; i < nb; i += SP_THREADS) sh.hist[i] = 0;
    __syncthreads();
    const uint32_t prefix = sh.prefix, mask = sh.mask, need = (unsigned)sh.need;
    sp_each(l, n, [&](float x, int, bool ok) {
        const uint32_t key = sp_key(x);
        const bool in = ok && (key & mask) == prefix;
        const unsigned bin = (key >> shift) & (unsigned)(nb - 1);
        const unsigned act = __ballot_sync(0xffffffffu, in);
        if (in) { /* one atomic per distinct bin in the warp: logits crowd a few bins */
            const unsigned same = __match_any_sync(act, bin);
            if (lane == __ffs(same) - 1) atomicAdd(&sh.hist[bin], (unsigned)__popc(same));
        }
    });
    __syncthreads();
    /* thread t sums the bins at positions [t * per, (t + 1) * per) counted from the top */
    const int per = (nb + SP_THREADS - 1) / SP_THREADS, q0 = threadIdx.x * per;
    unsigned mine = 0;
    for (int q = q0; q < q0 + per && q < nb; q++) mine += sh.hist[nb - 1 - q];
    const unsigned incl = sp_scan(sh, mine);
    if (incl - mine < need && need <= incl) {
        unsigned above = incl - mine;
        for (int q = q0;; q++) {
            const unsigned bin = (unsigned)(nb - 1 - q), c = sh.hist[bin];
            if (above + c >= need) {
                sh.prefix = prefix | (bin << shift);
                sh.mask = mask | ((unsigned)(nb - 1) << shift);
                sh.need = (int)(need - above);
                sh.at_bin = c;
                break;
            }
            above += c;
        }
    }
    __syncthreads();
}

/* rs_sampler_sample (sampler.c) for one token: see the file comment. */
__global__ void __launch_bounds__(SP_THREADS)
    sample_pick_kernel(const float *logits, int n, rs_sample_rule *rule, int32_t *ids, int32_t *pos,
                       int32_t *picks, uint64_t *rngs, int n_picks) {
    __shared__ sp_shared sh;
    cw_griddep_wait();
    const int tid = threadIdx.x;
    const rs_sample_rule r = *rule;
    /* the session only chains rules with 1 <= top_k < n (backend.h); a clamp keeps any
     * other one inside the buffers */
    const int k = max(1, min(min(r.top_k, SP_K), n));
    if (tid == 0) sh.prefix = 0, sh.mask = 0, sh.need = k, sh.n_cand = 0;
    __syncthreads();
    sp_digit(logits, n, sh, 20, 12);
    sp_digit(logits, n, sh, 8, 12);
    sp_digit(logits, n, sh, 0, 8);
    /* the k-th key is T = prefix; need of the at_bin keys equal to it are candidates */
    const uint32_t T = sh.prefix;
    const bool all_ties = sh.at_bin == (unsigned)sh.need;
    sp_each(logits, n, [&](float x, int i, bool ok) {
        const uint32_t key = sp_key(x);
        if (ok && (key > T || (all_ties && key == T))) {
            const int at = atomicAdd(&sh.n_cand, 1);
            sh.ckey[at] = key, sh.cid[at] = i;
        }
    });
    __syncthreads();
    if (!all_ties && tid < 32) { /* the lowest ids among the keys equal to T, in id order */
        int have = sh.n_cand;
        for (int base = 0; base < n && have < k; base += 32) {
            const int i = base + tid;
            const bool eq = i < n && sp_key(logits[i]) == T;
            const unsigned b = __ballot_sync(0xffffffffu, eq);
            const int rank = __popc(b & ((1u << tid) - 1u));
            if (eq && have + rank < k) sh.ckey[have + rank] = T, sh.cid[have + rank] = i;
            have = min(k, have + __popc(b));
        }
        if (tid == 0) sh.n_cand = have;
    }
    __syncthreads();
    /* best first: a candidate's place is the number that rank above it */
    if (tid < k) {
        const uint32_t key = sh.ckey[tid];
        const int id = sh.cid[tid];
        int place = 0;
        for (int j = 0; j < k; j++)
            place += sh.ckey[j] > key || (sh.ckey[j] == key && sh.cid[j] < id);
        sh.w[place] = sp_value(key), sh.id[place] = id;
    }
    __syncthreads();
    const double vmax = (double)sh.w[0]; /* the host's max over the whole vocabulary */
    if (vmax == -INFINITY) { /* every logit -inf or NaN: uniform over all of them, as the host */
        if (tid == 0) {
            uint64_t st[4] = {r.rng[0], r.rng[1], r.rng[2], r.rng[3]};
            const double u = (double)(sp_next(st) >> 11) * 0x1p-53, p = 1.0 / n;
            double cum = 0.0;
            int pick = n - 1;
            for (int i = 0; i < n; i++) {
                cum += p;
                if (u < cum) {
                    pick = i;
                    break;
                }
            }
            sh.pick = pick;
            for (int j = 0; j < 4; j++) rule->rng[j] = st[j];
        }
    } else {
        int n_keep = k;
        if (r.top_p < 1.0f) { /* top_p_sorted */
            if (tid < k) sh.e[tid] = exp((double)sh.w[tid] - vmax);
            __syncthreads();
            if (tid == 0) {
                double z = 0.0, cum = 0.0;
                for (int i = 0; i < k; i++) z += sh.e[i];
                int m = k;
                for (int i = 0; i < k; i++) {
                    cum += sh.e[i] / z;
                    if (cum >= r.top_p) {
                        m = i + 1;
                        break;
                    }
                }
                sh.n_keep = m;
            }
            __syncthreads();
            n_keep = sh.n_keep;
        }
        if (r.min_p > 0.0f) { /* apply_min_p over sorted candidates */
            if (tid == 0) {
                const double cut = log((double)r.min_p);
                int kept = 0;
                while (kept < n_keep && (double)sh.w[kept] - vmax >= cut) kept++;
                sh.n_keep = kept;
            }
            __syncthreads();
            n_keep = sh.n_keep;
        }
        const double temp = (double)r.temp; /* final_softmax */
        if (tid < n_keep) sh.e[tid] = exp(((double)sh.w[tid] - vmax) / temp);
        __syncthreads();
        if (tid == 0) {
            int pick = 0;
            if (n_keep > 1) { /* one survivor takes no draw */
                uint64_t st[4] = {r.rng[0], r.rng[1], r.rng[2], r.rng[3]};
                const double u = (double)(sp_next(st) >> 11) * 0x1p-53;
                double z = 0.0, cum = 0.0;
                for (int i = 0; i < n_keep; i++) z += sh.e[i];
                pick = -1;
                for (int i = 0; i < n_keep && pick < 0; i++) {
                    cum += sh.e[i] / z;
                    if (u < cum) pick = i;
                }
                for (int i = n_keep - 1; i > 0 && pick < 0; i--)
                    if (sh.e[i] / z > 0.0) pick = i;
                if (pick < 0) pick = 0;
                for (int j = 0; j < 4; j++) rule->rng[j] = st[j];
            }
            sh.pick = sh.id[pick];
        }
    }
    if (tid != 0) return;
    const int id = sh.pick, p = pos[0], slot = p % n_picks;
    ids[0] = id;
    *(volatile int32_t *)&picks[slot] = id;
    for (int j = 0; j < 4; j++) ((volatile uint64_t *)rngs)[4 * slot + j] = rule->rng[j];
    __threadfence_system();
    pos[0] = p + 1;
}

} // namespace

void cw_sample_pick(cuda_backend *c, const float *logits, int n, rs_sample_rule *rule, int32_t *ids,
                    int32_t *pos, int32_t *picks, uint64_t *rngs, int n_picks) {
    cw_launch(c, true, sample_pick_kernel, dim3(1), dim3(SP_THREADS), 0, logits, n, rule, ids, pos,
              picks, rngs, n_picks);
}

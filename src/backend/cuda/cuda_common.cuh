/* cuda_common.cuh — what the CUDA backend's translation units share: the
 * backend object, the device layout of weights, scratch buffers, the launch
 * helper (programmatic dependent launch) and small device functions.
 *
 * Error model: ops are asynchronous; every CUDA call goes through cw_check,
 * which records the first failure in the backend; sync() returns it. */
#ifndef RUSTY_CUDA_COMMON_CUH
#define RUSTY_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <utility>

extern "C" {
#include "backend/backend.h"
#include "backend/cuda/cuda_internal.h"
#include "dtype/blocks.h"
}

/* ---- weights on the device -------------------------------------------------------- */

/* How a weight's bytes sit in device memory. Most types keep the GGUF blocks;
 * types whose blocks are not 16-byte multiples are split at upload into
 * aligned arrays (see cuda_backend.cu, repack) so every kernel load is 16 B:
 *   Q4_0          qs[b][16]        dm: half d[b]
 *   IQ4_NL        qs[b][16]        dm: half d[b]
 *                 qs: each 4-byte word's nibbles reordered (cw_iq4nl_order):
 *                 elements k..k+3 in nibbles 0-3, 16+k..16+k+3 in nibbles 4-7
 *   IQ4_XS        qs[b][128] aux: i8 sc[b][8]   dm: half d[b]
 *                 qs: sub-block j's 16 bytes at 16 j, as IQ4_NL's (reordered);
 *                 sc: the 6-bit scales unpacked, minus 32
 *   Q4_1          qs[b][16]        dm: half2 (d, m)[b]
 *   Q5_0          qs[b][16]  aux: u32 qh[b]   dm: half d[b]
 *   Q5_1          qs[b][16]  aux: u32 qh[b]   dm: half2 (d, m)[b]
 *   Q8_0          qs[b][32]        dm: half d[b]
 *   Q6_K          qs[b][208] = ql[128] qh[64] scales[16]   dm: half d[b]
 *   Q2_K          qs[b][64]  aux: u8 scales[b][16] (as stored)   dm: half2 (d, dmin)[b]
 *   Q3_K          qs[b][64]  aux: u8 hmask[b][32] i8 sc[16]  dm: half d[b]
 *                 sc: the 6-bit scales unpacked, minus 32
 *   Q4_K          qs[b][128] aux: u8 sm[b][16]          dm: half2 (d, dmin)[b]
 *   Q5_K          qs[b][128] aux: u8 qh[b][32] sm[16]   dm: half2 (d, dmin)[b]
 *                 sm: the 6-bit scales and mins unpacked to bytes, four per
 *                 pair p of sub-blocks: sc[2p] sc[2p+1] m[2p] m[2p+1]
 *   F32/F16/BF16  plain rows
 * b = row * nb + block. Vectors (n_out == 1) are always stored as F32. */
struct cw_layout {
    int type; /* rs_dtype of the device bytes */
    int64_t n_in, n_out;
    int64_t nb; /* blocks per row (elements per row for plain types) */
    const uint8_t *qs, *aux, *dm;
};

/* ---- the backend object --------------------------------------------------------------- */

enum {
    CW_MAX_GRAPHS = 32,
    CW_MV_MAX_TOK = 4,   /* the matvec kernels handle up to this many tokens at once */
    CW_FZ_MAX_SPLIT = 8, /* most blocks a fused matvec splits one group of outputs over */
    CW_N_SCRATCH = 18,
};
enum cw_scratch_slot {
    CW_SCR_Q8 = 0,    /* int8 activations + (d, d*sum) per 32 (slot 0 of two) */
    CW_SCR_XH = 1,    /* f16/bf16 activations for GEMM */
    CW_SCR_WDQ = 2,   /* dequantized weight rows for GEMM */
    CW_SCR_PART = 3,  /* flash-decoding partial results */
    CW_SCR_CNT = 4,   /* flash-decoding arrival counters (kept zero between launches) */
    CW_SCR_SCORE = 5, /* generic attention: scores */
    CW_SCR_PTR = 6,   /* pointer arrays for batched GEMM */
    CW_SCR_ROPE = 7,  /* rope (cos, sin) per token and pair, shared by the layers of a batch */
    CW_SCR_Q8B = 8,   /* int8 activations, slot 1 */
    CW_SCR_NRM0 = 9,  /* deferred norm: x * w and per-block sums of squares (slot 0 of two) */
    CW_SCR_NRM1 = 10,
    CW_SCR_TMP = 11,    /* matmul_residual's product when it is not fused */
    CW_SCR_FZPART = 12, /* fused matvecs split over the inputs: partial sums */
    CW_SCR_FZCNT = 13,  /* their arrival counters per output group (kept zero between launches) */
    CW_SCR_FSCNT = 14,  /* streamed fused matvecs: group counter (kept zero between launches) */
    CW_SCR_CHAIN = 15,  /* the decode chain: phase counters (kept zero between launches), its
                         * epoch and hand-off buffers */
    CW_SCR_PICK = 16,   /* sample_pick: a tally (kept zero between launches), its list */
    CW_SCR_KVH = 17,    /* a layer's Q4_0 keys and values as F16 for the prompt kernels */
};

/* Quantized weights dequantized to F16 ahead of their prompt GEMMs (cuda_prepare.cu):
 * the side stream fills one set while the main stream's GEMMs read the other. A
 * refill starts where the main stream was when it was asked for (cuda_backend::
 * prep_now): every GEMM that can still read the set's old contents was issued
 * before that. */
enum { CW_PREP_MAX = 16 };
struct cw_prep_set {
    __half *buf;
    size_t cap; /* bytes */
    int n;
    const cw_layout *L[CW_PREP_MAX]; /* the weights it holds, whole, row-major */
    size_t off[CW_PREP_MAX];         /* their offsets in buf, in halves */
    cudaEvent_t ready;               /* recorded on the side stream after the dequantization */
};

struct cw_graph {
    int key;
    bool used;
    cudaGraphExec_t exec;
};

struct cuda_backend {
    rs_backend base;
    int device;
    int n_sm;
    size_t smem_optin; /* max dynamic shared memory per block */
    cudaStream_t stream;
    void *cublas; /* cublasHandle_t */
    rs_cuda_tuning tune;

    rs_status status; /* first failure since the last sync */
    rs_error err;

    void *scr[CW_N_SCRATCH];
    size_t scr_size[CW_N_SCRATCH];
    int64_t max_n_in; /* widest matrix row loaded so far (sizes the int8 activations) */
    int n_quant;      /* quantized matrices loaded: none, no int8 activations are needed */

    /* int8 copy of an activation written by the op that produced it, for the
     * next matmul: valid while q8_src != NULL (every other op clears it); it
     * lies in slot q8_slot (0: CW_SCR_Q8, 1: CW_SCR_Q8B). Each writer claims
     * the slot after the last claimed one, so a kernel can read one int8
     * input and write its int8 output. */
    const float *q8_src;
    int64_t q8_elems;
    int q8_slot, q8_flip;

    /* A norm whose scale is not applied yet: matmul_residual at decode sizes
     * leaves xw = x * w in `xw` and sums of squares of x per 32 rows in
     * `part`; out = xw * s, s = 1 / sqrt(sum(part) / dim + eps), is written by
     * the matvec that consumes it (which multiplies its products by s), or by
     * cw_settle before any other op. Pending while xn != NULL. */
    struct {
        float *xn, *xw, *part;
        int n_part, n;
        int64_t dim;
        float eps;
    } defer;
    int nrm_flip; /* slot of the next deferred norm's buffers (CW_SCR_NRM0 + nrm_flip) */

    /* f16 copy of a prompt-size activation in CW_SCR_XH, written by its
     * producer (norm, SwiGLU) for the GEMM that reads it next: valid while
     * h16_src != NULL (cleared like q8_src) */
    const float *h16_src;
    int64_t h16_elems;

    void *pinned[2]; /* staging for weight upload */
    cudaEvent_t pinned_done[2];
    size_t pinned_size;

    bool capturing;
    cw_graph graphs[CW_MAX_GRAPHS];
    cudaEvent_t fence[RS_FENCES]; /* fence_mark's slots, made on first use */
    /* The rope table in CW_SCR_ROPE holds these positions (valid until the
     * next upload or graph boundary, which may change them). */
    struct {
        const int32_t *pos;
        const float *inv_freq;
        int n, n_rot;
        float attn_factor;
        bool neox;
    } rope_tab;
    /* one-token fused ops waiting to run as one decode-chain launch (cuda_chain.cuh):
     * how many, and their arguments (allocated there) */
    int chain_n;
    void *chain;
    /* persistent chain launches, their phases and hand-offs since set_tuning (tests; lab
     * trace slots) */
    long chain_launches, chain_phases, chain_handoffs;
    long roll_launches;  /* fr_kernel launches since the backend was made (tests) */
    long split_launches; /* fz_kernel launches split over the inputs, the same */
    long roll_traced;    /* fr_kernel launches traced since set_tuning (tuning roll_trace) */
    long pick_traced;    /* sample_pick launches traced since set_tuning (tuning pick_trace) */
    cudaStream_t side;   /* created on the first prepare */
    bool side_low;       /* ... at the lowest priority (tune.prep_prio when it was made) */
    bool side_busy;      /* work issued on it since the last sync */
    cw_prep_set prep[2];
    cudaEvent_t prep_now; /* the main stream's point where the last refill began */
    int prep_next;        /* the set the next prepare fills */
    bool prep_off;        /* its memory could not be had: prepare is a no-op */
    /* scratch buffers outgrown while a graph may still use them: freed at destroy */
    void **retired;
    int n_retired;
};

/* The KV cache: [layer][kv head][position][head_dim], F16 or F32; Q8_0 as
 * int8 values in that layout plus fp16 scales [layer][kv head][position][nsb],
 * one per 32 values of a head row (nsb = ceil(head_dim / 32)); Q4_0 as nibbles
 * (cw_q4, head_dim / 2 bytes a row, head_dim a multiple of 32) and the same scales. */
struct rs_kv {
    rs_kv_desc d;
    size_t row; /* bytes of one head row's values */
    void *k, *v;
    __half *ks, *vs; /* Q8_0 / Q4_0 scales, else NULL */
    int nsb;
};

/* Bytes of one layer's keys (or values). */
static inline size_t cw_kv_layer_bytes(const rs_kv *kv) {
    return (size_t)kv->d.n_head_kv * kv->d.n_ctx * kv->row;
}

/* ---- host helpers (cuda_backend.cu) ------------------------------------------------- */

/* Records e (if an error) as the backend's first failure; returns e == cudaSuccess. */
bool cw_check(cuda_backend *c, cudaError_t e, const char *what);
/* Records a non-CUDA failure (unsupported shape, ...). */
void cw_fail(cuda_backend *c, rs_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Scratch slot of at least `bytes` (grown on demand, contents not kept);
 * NULL (and a recorded error) if it cannot be allocated. */
void *cw_scratch(cuda_backend *c, int slot, size_t bytes);
/* The layout of a loaded weight, or NULL (and a recorded error) when w was
 * not loaded by this backend. */
const cw_layout *cw_weight_layout(cuda_backend *c, const rs_weight *w);

/* cuda_fused.cu: launches the fused ops waiting in c->chain. */
void cw_chain_launch(cuda_backend *c);
void cw_chain_free(cuda_backend *c);
/* Anything that touches the stream first launches the waiting chain, so the
 * stream runs the ops in the order they were called. */
static inline void cw_chain_flush(cuda_backend *c) {
    if (c->chain_n) cw_chain_launch(c);
}

/* The backend of an op: every op but the chainable fused ones starts here. */
static inline cuda_backend *cw(rs_backend *b) {
    cuda_backend *c = (cuda_backend *)b;
    if (c) cw_chain_flush(c);
    return c;
}
/* ... the fused one-token ops, which may join the waiting chain. */
static inline cuda_backend *cw_chainable(rs_backend *b) {
    return (cuda_backend *)b;
}

/* The int8 form of activations: int8 values, then per 32 of them
 * (d, d * sum q, d * sum of the first 16 q, d * sum of the last 16 q). */
typedef float4 cw_q8s;
/* Bytes of int8 activations for `elems` values. */
static inline size_t cw_q8_bytes(int64_t elems) {
    return ((size_t)elems + 255) / 256 * 256 + (size_t)(elems / 32) * sizeof(cw_q8s);
}
static inline cw_q8s *cw_q8_scales(void *q8, int64_t elems) {
    return (cw_q8s *)((char *)q8 + ((size_t)elems + 255) / 256 * 256);
}
/* Forgets the int8 and f16 copies of activations (any op that may change them). */
static inline void cw_untag(cuda_backend *c) {
    c->q8_src = NULL;
    c->h16_src = NULL;
}

/* Bytes of each half of CW_SCR_XH (f16, then bf16 activations) for `elems` values. */
static inline size_t cw_half_bytes(int64_t elems) {
    return ((size_t)elems * 2 + 255) / 256 * 256;
}

/* The device buffer of int8 slot k. */
static inline void *cw_q8_buf(cuda_backend *c, int k) {
    return c->scr[k ? CW_SCR_Q8B : CW_SCR_Q8];
}
/* Claims the next int8 slot (not the one the last claim returned). */
static inline int cw_q8_claim(cuda_backend *c) {
    c->q8_flip ^= 1;
    return c->q8_flip;
}
/* The int8 activation buffer a producer may fill for `elems` values (its slot
 * in *slot), or NULL when fusing is off or it would not fit (producers never
 * allocate). */
static inline void *cw_q8_for_producer(cuda_backend *c, int64_t elems, int *slot) {
    const size_t fit = c->scr_size[CW_SCR_Q8] < c->scr_size[CW_SCR_Q8B] ? c->scr_size[CW_SCR_Q8]
                                                                        : c->scr_size[CW_SCR_Q8B];
    if (!c->tune.fuse_q8 || c->n_quant == 0 || elems % 32 != 0 || cw_q8_bytes(elems) > fit ||
        elems > (int64_t)CW_MV_MAX_TOK * c->max_n_in)
        return NULL;
    *slot = cw_q8_claim(c);
    return cw_q8_buf(c, *slot);
}
/* Says that slot `slot` holds the int8 form of out (elems values). */
static inline void cw_q8_tag(cuda_backend *c, const float *out, int64_t elems, int slot) {
    c->q8_src = out;
    c->q8_elems = elems;
    c->q8_slot = slot;
}

/* Launches a kernel on `stream` (cw_launch: the backend's stream); with `pdl` (and the tuning
 * switch on) the launch may begin before the previous kernel ends — kernels
 * launched this way call cw_griddep_wait() before touching activations. */
template <typename... KArgs, typename... Args>
static inline void cw_launch_on(cuda_backend *c, cudaStream_t stream, bool pdl,
                                void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                                Args &&...args) {
    cw_chain_flush(c);
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = (pdl && c->tune.pdl) ? 1 : 0;
    cw_check(c, cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...), "kernel launch");
}
template <typename... KArgs, typename... Args>
static inline void cw_launch(cuda_backend *c, bool pdl, void (*kernel)(KArgs...), dim3 grid,
                             dim3 block, size_t smem, Args &&...args) {
    cw_launch_on(c, c->stream, pdl, kernel, grid, block, smem, std::forward<Args>(args)...);
}

/* ---- per-file entry points ----------------------------------------------------------- */

/* cuda_matvec.cu */
void cw_matvec(cuda_backend *c, const rs_matmul *mm, int count, const float *x, int n);
void cw_quantize_q8(cuda_backend *c, const float *x, int64_t elems, void *q8, bool pdl);
/* cuda_fused.cu: the fused decode ops; false (nothing issued) when the shapes
 * or the tuning rule the fused kernels out */
bool cw_fz_residual(cuda_backend *c, const rs_weight *w, const float *a, int n, float *x,
                    const float *norm, float eps, float *out);
bool cw_fz_swiglu(cuda_backend *c, const rs_weight *gate, const rs_weight *up, const float *x,
                  int n, float *g);
bool cw_fz_rope(cuda_backend *c, const rs_matmul *qkv, const float *x, int n, const int32_t *pos,
                const rs_rope *rope, const rs_attn *at, rs_kv *kv, int layer);
/* cuda_gemm.cu */
/* y = x W^T (+ bias), or y += x W^T with acc; with half_out the y are F16
 * arrays (cast to float *), no bias, no F32 weights */
void cw_gemm(cuda_backend *c, const rs_matmul *mm, int count, const float *x, int n, bool acc,
             bool half_out = false);
void cw_embed(cuda_backend *c, const cw_layout *L, const int32_t *ids, int n, float *out);
void cw_dequant_rows(cuda_backend *c, cudaStream_t stream, const cw_layout *L, int64_t row0,
                     int64_t rows, __half *out);
rs_status cw_gemm_init(cuda_backend *c, rs_error *err);
void cw_gemm_free(cuda_backend *c);
/* cuda_prepare.cu */
void cw_prepare(cuda_backend *c, const rs_weight *const *w, int count, int n);
/* The F16 copy of L made by cw_prepare, or NULL; the main stream waits for it. */
const __half *cw_prepared(cuda_backend *c, const cw_layout *L);
/* Drops copies of L (its weight is being unloaded). */
void cw_prepare_forget(cuda_backend *c, const cw_layout *L);
void cw_prepare_sync(cuda_backend *c);
void cw_prepare_free(cuda_backend *c);
/* cuda_ops.cu */
void cw_rmsnorm(cuda_backend *c, float *x, const float *y, const float *w, float eps, int n,
                int dim, float *out);
void cw_rope_store(cuda_backend *c, float *q, float *k, const float *v, const int32_t *pos, int n,
                   const rs_rope *rope, const rs_attn *at, rs_kv *kv, int layer);
/* for_gemm: a GEMM reads out next (prompt sizes): write its f16 form too */
void cw_swiglu(cuda_backend *c, const float *g, const float *u, int64_t n, float *out,
               bool for_gemm);
/* the same from F16 products (the prompt path's cuBLAS output) */
void cw_swiglu_h(cuda_backend *c, const __half *g, const __half *u, int64_t n, float *out,
                 bool for_gemm);
void cw_add(cuda_backend *c, float *x, const float *y, int64_t n);
void cw_add_bias(cuda_backend *c, float *y, const float *bias, int n, int64_t n_out);
/* the backend's greedy_pick op (backend.h); picks and rngs: device-usable pointers */
void cw_greedy_pick(cuda_backend *c, const float *logits, int n, rs_sample_rule *rule, int32_t *ids,
                    int32_t *pos, int32_t *picks, uint64_t *rngs, int n_picks);
/* cuda_sample.cu: the backend's sample_pick op; picks and rngs: device-usable pointers */
void cw_sample_pick(cuda_backend *c, const float *logits, int n, rs_sample_rule *rule, int32_t *ids,
                    int32_t *pos, int32_t *picks, uint64_t *rngs, int n_picks);
/* cuda_sample.cu: the backend's penalize op */
void cw_penalize(cuda_backend *c, float *logits, int n, const rs_sample_rule *rule);
/* A pick joins the penalties' window, as rs_sampler_accept adds a token to its ring (one
 * thread; the next step's penalize reads it after its grid wait). */
static __device__ __forceinline__ void cw_window_push(rs_sample_window *w, int id) {
    const int cap = w->last_n;
    if (cap <= 0 || cap > RS_SAMPLE_LAST_N_MAX) return;
    const int at = min(max(w->next, 0), cap - 1);
    w->tok[at] = id;
    if (w->len < cap) w->len = w->len + 1;
    w->next = at + 1 == cap ? 0 : at + 1;
}
void cw_repack(cuda_backend *c, int type, const uint8_t *raw, int64_t rows, int64_t row0,
               const cw_layout *L);
void cw_fill_random(cuda_backend *c, void *dev, int type, size_t n_bytes, float scale,
                    uint64_t seed);
void cw_kv_convert(cuda_backend *c, const rs_kv *kv, int layer, int n_pos, float *k, float *v);
/* Random Q8_0 or Q4_0 cache contents (tests, benchmarks). */
void cw_kv_fill_quant(cuda_backend *c, rs_kv *kv, uint64_t seed);
/* A layer's Q4_0 keys and values as F16 ([kv head][n_ctx][head_dim] keys, then values) in
 * scratch, positions 0..pos[n - 1]; NULL when the scratch cannot be had. */
__half *cw_kv_q4_to_f16(cuda_backend *c, const rs_kv *kv, int layer, const int32_t *pos, int n);
/* Writes a pending deferred norm's output (see cuda_backend::defer). */
void cw_settle(cuda_backend *c);
/* cuda_attn.cu */
void cw_attention(cuda_backend *c, const float *q, rs_kv *kv, int layer, const int32_t *pos, int n,
                  const rs_attn *at, float *out);

/* ---- device helpers ------------------------------------------------------------------- */

#ifdef __CUDACC__

/* Programmatic dependent launch: wait for the previous kernel's results, and
 * let the next kernel start its prologue early. No-ops without the attribute. */
__device__ __forceinline__ void cw_griddep_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void cw_griddep_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* The shared-memory address of p, as the PTX instructions that take one want it. */
__device__ __forceinline__ uint32_t cw_smem_addr(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* 16-byte load of immutable data (weights), not kept in L1. */
__device__ __forceinline__ uint4 cw_ld_nc(const void *p) {
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
}

__device__ __forceinline__ float cw_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float cw_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ int cw_warp_sum_int(int v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float cw_h2f(uint16_t h) {
    return __half2float(__ushort_as_half(h));
}
__device__ __forceinline__ float cw_bf2f(uint16_t h) {
    return __uint_as_float((uint32_t)h << 16);
}
/* Four int8 values (a word, byte 0 first) as floats, exactly, without the conversion unit
 * (16 results a clock an SM on Hopper, against 64-128 for integer and float arithmetic):
 * each byte, offset to unsigned, becomes the low mantissa byte of 2^23, and subtracting
 * 2^23 + 128 leaves the value. */
__device__ __forceinline__ void cw_i8x4_to_f32(uint32_t w, float *f) {
    const uint32_t u = w ^ 0x80808080u;
#pragma unroll
    for (int i = 0; i < 4; i++)
        f[i] = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7540u + i)) - 8388736.0f;
}

/* IQ4_NL and IQ4_XS quant words on the device: a GGUF word holds elements k..k+3
 * (low nibbles) and 16+k..16+k+3 (high nibbles) interleaved byte by byte; the upload
 * gathers the low nibbles into bits 0-15 and the high ones into 16-31, so each half
 * is one byte_perm selector. */
__host__ __device__ __forceinline__ uint32_t cw_iq4nl_order(uint32_t w) {
    uint32_t lo = w & 0x0F0F0F0Fu, hi = (w >> 4) & 0x0F0F0F0Fu;
    lo = (lo | lo >> 4) & 0x00FF00FFu;
    hi = (hi | hi >> 4) & 0x00FF00FFu;
    return ((lo | lo >> 8) & 0xFFFFu) | ((hi | hi >> 8) & 0xFFFFu) << 16;
}

/* IQ4_NL's code book v (-127 ... 113) for four nibbles q (a selector's low 16 bits) as
 * two byte vectors whose bytes sum to v[q]: byte_perm's sign mode (selector bit 3) does
 * the choosing. l = L[q] for q < 8, else the sign of an L entry, 0xFF = -1 (all of v[0..7]
 * are negative); h = v[q] + 1 for q >= 8, else 0 (the sign of a positive entry), looked up
 * with bit 3 flipped. So v[q] = l + h, and a dot product is two dp4a: 2 permutes and 2 dp4a
 * per 4 weights, where a select between the two halves took 3 permutes and 1 dp4a plus
 * the selectors' arithmetic. */
__device__ __forceinline__ uint32_t cw_prmt(uint32_t a, uint32_t b, uint32_t sel) {
    uint32_t d; /* PTX's default mode, whose sign replication the lookups below rely on */
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
    return d;
}
__device__ __forceinline__ void cw_iq4nl_parts(uint32_t q, uint32_t &l, uint32_t &h) {
    constexpr uint32_t L0 = 0xBFAD9881u; /* -127 -104 -83 -65 (bytes, little-endian) */
    constexpr uint32_t L1 = 0xF6EADDCFu; /* -49 -35 -22 -10 */
    constexpr uint32_t H0 = 0x271A0E02u; /* 1+1 13+1 25+1 38+1 */
    constexpr uint32_t H1 = 0x725A4636u; /* 53+1 69+1 89+1 113+1 */
    l = cw_prmt(L0, L1, q);
    h = cw_prmt(H0, H1, q ^ 0x8888u);
}

/* Sum of the 8 weights of device word w (cw_iq4nl_order) times int8 activations a
 * (elements k..k+3) and b (16+k..16+k+3), plus s. */
__device__ __forceinline__ int cw_iq4nl_dot(uint32_t w, int a, int b, int s) {
    uint32_t l, h;
    cw_iq4nl_parts(w, l, h);
    s = __dp4a((int)l, a, s);
    s = __dp4a((int)h, a, s);
    cw_iq4nl_parts(w >> 16, l, h);
    s = __dp4a((int)l, b, s);
    return __dp4a((int)h, b, s);
}

/* The code-book bytes of device word w: lo for elements k..k+3, hi for 16+k..16+k+3. */
__device__ __forceinline__ void cw_iq4nl_lookup(uint32_t w, uint32_t &lo, uint32_t &hi) {
    uint32_t l, h;
    cw_iq4nl_parts(w, l, h);
    lo = __vadd4(l, h); /* per byte, no carries: -1 + (v + 1) */
    cw_iq4nl_parts(w >> 16, l, h);
    hi = __vadd4(l, h);
}

/* Unsigned bytes of a times signed bytes of b, plus c. */
__device__ __forceinline__ int cw_dp4a_us(uint32_t a, int b, int c) {
    int d;
    asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}

/* A Q4_0 cache row on the GPU: each 32-value block is 16 bytes and one fp16 scale (apart, as
 * for Q8_0), and each 4-byte word holds 8 consecutive values: value i of the word's 8 in
 * the low nibble of byte i (i < 4) or the high nibble of byte i - 4, stored as q + 8 (0..15).
 * So a word becomes 8 floats in order with two masks and eight byte permutes, and a lane's
 * 16 or 32 consecutive values are one 8- or 16-byte load. Value d of a row: byte
 * 4 (d / 8) + d % 4, nibble (d / 4) % 2. */
struct cw_q4 {
    uint8_t b; /* a byte of nibbles: the cache's element type, two values each */
};

/* The 8 values of a Q4_0 cache word as floats, unscaled (q - 8), exactly and without the
 * conversion unit, as cw_i8x4_to_f32. */
__device__ __forceinline__ void cw_u4x8_to_f32(uint32_t w, float *f) {
    const uint32_t lo = w & 0x0F0F0F0Fu, hi = (w >> 4) & 0x0F0F0F0Fu;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        f[i] = __uint_as_float(__byte_perm(lo, 0x4B000000u, 0x7540u + i)) - 8388616.0f;
        f[i + 4] = __uint_as_float(__byte_perm(hi, 0x4B000000u, 0x7540u + i)) - 8388616.0f;
    }
}

/* 8 small unsigned bytes (u[0]'s four, then u[1]'s, each under 0x64) times a scale, as 8
 * halves, without the conversion unit: a byte is the low mantissa byte of 1024 as a half,
 * subtracting off (1024 + the bytes' bias) leaves the value exactly, and one half multiply
 * rounds d * value once, as rounding the exact f32 product to f16 would. */
__device__ __forceinline__ uint4 cw_bytes_to_h8(const uint32_t u[2], float off, const __half *sc) {
    const __half2 d = __half2half2(*sc), o = __float2half2_rn(off);
    uint32_t h[4];
#pragma unroll
    for (int i = 0; i < 4; i++) { /* halves 2i and 2i + 1: bytes (0, 1) or (2, 3) of a word */
        const uint32_t b = __byte_perm(u[i / 2], 0x64646464u, i % 2 ? 0x4342u : 0x4140u);
        const __half2 r = __hmul2(__hsub2(*(const __half2 *)&b, o), d);
        h[i] = *(const uint32_t *)&r;
    }
    return make_uint4(h[0], h[1], h[2], h[3]);
}

/* A Q4_0 cache word's 8 values times their scale, as 8 halves: nibbles biased by 8. */
__device__ __forceinline__ uint4 cw_q4_to_h8(uint32_t w, const __half *sc) {
    const uint32_t nib[2] = {w & 0x0F0F0F0Fu, (w >> 4) & 0x0F0F0F0Fu}; /* values 0-3, 4-7 */
    return cw_bytes_to_h8(nib, 1032.0f, sc);
}

/* One value of a Q4_0 cache block held by the whole warp (lane = the value's index in the
 * block), quantized as the CPU's GGUF quantizer does (the signed value of largest
 * magnitude m, the first on ties, gives d = m / -8; q = trunc(v / d + 8.5) in 0..15, no
 * fused multiply-add): bytes at blk (16), the scale from lane 0. */
__device__ __forceinline__ void cw_store_q4(uint8_t *blk, __half *scale, float v, int lane) {
    const float amax = cw_warp_max(fabsf(v));
    const unsigned hit = __ballot_sync(0xffffffffu, fabsf(v) == amax);
    const float m = __shfl_sync(0xffffffffu, v, __ffs(hit) - 1);
    const float d = m / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    const int q = min(15, max(0, (int)__fadd_rn(__fmul_rn(v, id), 8.5f)));
    const int o = __shfl_xor_sync(0xffffffffu, q, 4); /* value d + 4 shares d's byte */
    if (!(lane & 4)) blk[4 * (lane >> 3) + (lane & 3)] = (uint8_t)(q | o << 4);
    if (lane == 0) *scale = __float2half_rn(d);
}

/* What cw_q8_block wrote: this lane's int8 value, the block's d and d * sum. */
struct cw_q8v {
    int q;
    float d, dsum;
};

/* Quantizes one 32-value block held one value per lane (the whole warp):
 * writes the int8 value of this lane and, from lane 0, the block's scales. */
__device__ __forceinline__ cw_q8v cw_q8_block(float v, int lane, int8_t *q_out, cw_q8s *ds_out) {
    const float amax = cw_warp_max(fabsf(v));
    const float d = amax / 127.0f;
    const int q = amax > 0.0f ? __float2int_rn(v * (127.0f / amax)) : 0;
    int s = q;
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o); /* per half-warp */
    const int hi = __shfl_sync(0xffffffffu, s, 16);
    *q_out = (int8_t)q;
    const float dsum = d * (float)(s + hi);
    if (lane == 0) *ds_out = make_float4(d, dsum, d * (float)s, d * (float)hi);
    return {q, d, dsum};
}

#endif /* __CUDACC__ */

#endif

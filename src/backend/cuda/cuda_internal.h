/* cuda_internal.h — hooks into the CUDA backend for its tests and the kernel
 * lab (bench/cuda_bench.cu). Not used by the model code. C-compatible. */
#ifndef RUSTY_CUDA_INTERNAL_H
#define RUSTY_CUDA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Run-time switches, for A/B measurements and for testing every path. Each
 * int is also named in cuda_tune.c's table ($RUSTY_CUDA_TUNE). */
typedef struct rs_cuda_tuning {
    int pdl;             /* programmatic dependent launch between decode kernels (1 = on) */
    int fuse_q8;         /* producers also write int8 activations for the next matvec (1 = on) */
    int mv_max_tokens;   /* matmuls with n <= this use the matvec kernels, else GEMM (1..4) */
    int attn_chunk;      /* positions per flash-decoding split (0 = automatic) */
    int attn_decode_max; /* attention with n <= this uses the split (decode) kernel (0..4) */
    int reuse_q8;        /* benchmarks only: matmuls on the same x reuse its int8 form */
    int mv_rows;         /* rows per warp in the batch-1 matvec: 1, 2, or 0 = per type */
    int gemm_chunk;      /* quantized GEMM: weight values dequantized per slab (0 = 64 Mi) */
    int attn_mma;      /* prefill attention on the tensor cores (F16/Q8_0 cache, head_dim 64/128) */
    int fuse;          /* decode-size matmul_residual/_swiglu/_rope_store as one kernel each */
    int fz_split;      /* fused matvecs on float weights or one token: blocks per 32 outputs,
                        * splitting the inputs (0 = automatic) */
    int prep;          /* prepare() dequantizes the next weights for prompt GEMMs on a second
                        * stream (1 = on) */
    int attn_gb;       /* decode attention: query heads per block (1, 2, 4, 8; 0 = automatic) */
    int attn_short;    /* decode attention over a context bounded by rs_attn.ctx_max to what
                        * registers hold runs unsplit, without a merge (1 = on; F16 and
                        * Q8_0 caches) */
    int attn_pack;     /* its blocks: one per head, 512 threads, leaving most SMs to the next
                        * matvec's early weight loads (0, the default), or one per 32-dim
                        * slice of a head, the scores repeated in each (1) */
    int stream;        /* one-token fused matvecs on Q4_0/Q8_0 stream their weights through shared
                        * memory (cuda_stream.cuh; 1 = on, 0 = off: the default, measured slower) */
    int stream_depth;  /* stages in flight per block of those (1..8; 0 = automatic) */
    int stream_blocks; /* their grid (0 = one block per SM) */
    int prep_prio;     /* the prepare stream runs at a lower priority than the main one, so the
                        * GEMMs' blocks are placed first and dequantization fills the gaps */
    int attn_zig;      /* prompt attention on the tensor cores pairs heavy and light tiles per
                        * SM (1 = on) */
    int swiglu_h;      /* prompt matmul_swiglu: cuBLAS writes the gate and up products as F16
                        * (1 = on; 0: F32) */
    int attn_h16;      /* prompt attention (tensor cores) also writes the F16 copy the next
                        * GEMM reads (1 = on) */
    int chain;         /* one-token Q4_0 (and with chain_q8, Q8_0) fused ops issued back to back
                        * run as one persistent launch, weights streamed ahead through shared
                        * memory (cuda_chain.cuh; 1 = on, the default; lab timing only, wrong
                        * results: 2 = phases do not wait for each other, 3 = nor compute,
                        * 4 = the bare weight stream, 5 = as 2 without the weights: the
                        * consumers' own pace, 6 = as 2 and the launch does not wait for
                        * the kernel before it: launches may overlap, so the chain's shared
                        * counters can be left out of step for the launches after it) */
    int fz_roll;       /* one-token fused ops on quantized weights that run as kernels of their
                        * own: a grid of one block per SM walks the groups, each lane's loads a
                        * ring refilled across chunks and groups (1 = on, the default: Q8_0
                        * tg128 354 -> 369 tok/s, CUDA_NOTES session 19) */
    int roll_grid;     /* their grid (0 = one block per SM; tests take fewer) */
    int roll_fit;      /* their grid shrunk to the fewest blocks that take at most as many
                        * groups each as one block per SM would, the SMs left over starting
                        * the next kernel early (1 = on, the default) */
    int chain_q8;      /* Q8_0 ops join it too (0 = off, the default: measured no faster) */
    int chain_q4k;     /* Q4_K ops join it too (1 = on; off by default since session 19: one
                        * kernel per op with fz_roll measured faster, lab 512 against 500
                        * tok/s, CLI Q4_K_M tg128 488 against 476-478) */
    int chain_coop;    /* it is a cooperative launch (1): the driver refuses, rather than hangs,
                        * where the grid cannot be resident at once (a GPU shared under MPS SM
                        * limits); 0, the default: measured 4% slower for Q4_0 (545 -> 524 tok/s),
                        * the launch waits for the SMs instead of overlapping attention */
    int chain_ring;    /* its shared-memory ring per block in KiB (0 = automatic: 160) */
    int chain_warps;   /* its consumer warps: 4, 8 (0 = automatic) or 16 */
    int chain_stage;   /* the most KiB of weights in one stage of its ring (0 = automatic:
                        * 16); a stage holds 1-16 whole rows */
    int chain_deal;    /* its groups go to the block with the fewest bytes so far over the
                        * whole chain (0) or in their own phase first (1) */
    int chain_min;     /* the fewest ops a chain launch takes (0 = automatic: 3); shorter runs
                        * of chainable ops (a Q4_K_M layer's Q6_K v and down cut its chain into
                        * pairs) launch one kernel each: lab Q4_K_M 440-443 tok/s with pairs
                        * chained, 456-459 without, CLI 432-436 -> 457-459 (CUDA_NOTES,
                        * session 16) */
    int chain_min_in;  /* the fewest inputs of a product the chain takes (0 = automatic:
                        * 4096): narrower layers run faster one kernel per op (TinyLlama
                        * Q4_0 tg128 1435 -> 1819 tok/s, CUDA_NOTES session 21) */
    int chain_handoff; /* a phase takes its input from the phase before as flagged words
                        * (1, the default) or once every block's counter says it is done
                        * (0) */
    unsigned long long *chain_trace; /* lab only: device buffer the chain launches write
                                      * timestamps to (cuda_chain.cuh), or NULL: the first
                                      * RS_CUDA_CHAIN_TRACE_LAUNCHES launches after set_tuning,
                                      * RS_CUDA_CHAIN_TRACE_WORDS each */
    unsigned long long *roll_trace;  /* lab only: the same for fr_kernel launches (fz_roll):
                                      * per launch [160 blocks][8 words] (RS_ROLL_*); grids
                                      * of more blocks go untraced */
    unsigned long long *pick_trace;  /* lab only: the same for sample_pick launches: per
                                      * launch [RS_PICK_TRACE_BLOCKS][RS_PICK_EV] (RS_PICK_*) */
} rs_cuda_tuning;

/* The chain trace's layout: per launch [160 blocks][4 phases][8 events]. */
enum { RS_CUDA_CHAIN_TRACE_LAUNCHES = 64, RS_CUDA_CHAIN_TRACE_WORDS = 160 * 4 * 8 };
/* fr_kernel's trace (Q8_0, Q4_0, Q4_K and Q6_K launches), per launch and block:
 * globaltimer at the block's start, when its wait for the kernel before returned
 * and at its end, then the SM it ran on. */
enum {
    RS_CUDA_ROLL_TRACE_LAUNCHES = 160,
    RS_CUDA_ROLL_TRACE_WORDS = 160 * 8,
    RS_ROLL_START = 0,
    RS_ROLL_WAITED = 1,
    RS_ROLL_END = 2,
    RS_ROLL_SM = 3,
};
/* sample_pick's trace, per launch and block: globaltimer after each phase (the merge's
 * phases in the last block only), and RS_PICK_LAST = 1 in the block that merged. */
enum {
    RS_PICK_TRACE_LAUNCHES = 64,
    RS_PICK_TRACE_BLOCKS = 64,
    RS_PICK_START = 0, /* the block began */
    RS_PICK_WAITED,    /* ... the kernel before it has finished */
    RS_PICK_LOADED,    /* the slice in registers (all ids: the largest logit found) */
    RS_PICK_FIRST,     /* all ids with top-p: the cut's first pass (buckets) chosen */
    RS_PICK_LISTED,    /* ... the ids left in its bucket listed and copied */
    RS_PICK_BOUND,     /* its bound: the threads' maxima sorted (all ids: top-p's cut) */
    RS_PICK_COUNTED,   /* the logits at or above it counted (all ids: the slice summed) */
    RS_PICK_PLACED,    /* their place in the list taken */
    RS_PICK_ARRIVED,   /* written, the arrival counted (a release) */
    RS_PICK_COPIED,    /* merge: the list in shared memory, its extremes */
    RS_PICK_SELECTED,  /* ... the k-th key found (all ids: the slice to draw in) */
    RS_PICK_SORTED,    /* ... the candidates best first */
    RS_PICK_EXPS,      /* ... top-p's and the softmax's exps, min-p's cut */
    RS_PICK_TOP_P,     /* ... top-p's cut */
    RS_PICK_SOFTMAX,   /* ... the probabilities (all ids: that slice summed again) */
    RS_PICK_DRAWN,     /* ... the draw */
    RS_PICK_END,       /* ... the pick and RNG state stored */
    RS_PICK_LAST,
    RS_PICK_EV = 20,
    RS_PICK_TRACE_WORDS = RS_PICK_TRACE_BLOCKS * RS_PICK_EV,
};

void rs_cuda_get_tuning(rs_backend *b, rs_cuda_tuning *t);

/* Decode-chain launches (persistent kernels, not single ops launched on their
 * own), the phases they held and the phases that took their input as a
 * hand-off from the phase before, issued since the last rs_cuda_set_tuning. */
void rs_cuda_chain_count(rs_backend *b, long *launches, long *phases, long *handoffs);
/* fr_kernel launches (one-token fused ops walking the groups, tuning fz_roll)
 * issued since the backend was made. */
long rs_cuda_roll_count(rs_backend *b);
/* fused-op launches whose groups split their inputs over several blocks
 * (tuning fz_split), the same. */
long rs_cuda_split_count(rs_backend *b);
void rs_cuda_set_tuning(rs_backend *b, const rs_cuda_tuning *t);

/* Sets the switches a spec names, "name=value[,name=value...]" with the
 * fields' names above and integer values, in t (cuda_tune.c); t is left as
 * it was if any part is malformed or names no switch (RS_ERR_ARG). A CUDA
 * backend applies $RUSTY_CUDA_TUNE this way when it is made. */
rs_status rs_cuda_tuning_parse(const char *spec, rs_cuda_tuning *t, rs_error *err);

/* The backend's stream (a cudaStream_t), for timing with events. */
void *rs_cuda_stream(rs_backend *b);

/* 1 if prepare() left an F16 copy of w for the prompt GEMMs, else 0. */
int rs_cuda_is_prepared(rs_backend *b, const rs_weight *w);

/* weight_load from bytes already on the device (GGUF layout, w->nbytes long):
 * w->host is ignored. For benchmarks with weights made on the GPU. */
rs_status rs_cuda_weight_load_device(rs_backend *b, rs_weight *w, const void *dev_raw,
                                     rs_error *err);

/* Copies positions [0, n_pos) of layer `layer` of a cache to host f32 arrays
 * k, v laid out [pos][n_head_kv][head_dim] (the reference layout). */
rs_status rs_cuda_kv_read(rs_backend *b, rs_kv *kv, int layer, int n_pos, float *k, float *v,
                          rs_error *err);

/* Fills a cache's every layer and position with random values in [-1, 1)
 * (Q8_0: random int8 values and scales, within [-1, 1]). */
void rs_cuda_kv_fill_random(rs_backend *b, rs_kv *kv, uint64_t seed);

/* Fills n_bytes of device memory at dev with random GGUF blocks of `type`:
 * plain types get uniform values in [-scale, scale); quantized blocks random
 * quants with scales giving values of about that size. */
void rs_cuda_fill_random_weights(rs_backend *b, void *dev, rs_dtype type, size_t n_bytes,
                                 float scale, uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif

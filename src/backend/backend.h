/* backend.h — the compute interface the model's forward pass is written against.
 *
 * One forward pass (src/model/forward.c) drives every backend through this
 * vtable; CPU and CUDA differ only below it. The ops are deliberately coarse
 * (fused add+norm, rope+cache store, whole attention) so a backend can fuse
 * kernels without the model code knowing.
 *
 * Memory: every pointer an op receives (activations, positions, token ids)
 * lives in the backend's own memory (host memory for the CPU, device memory
 * for CUDA). Ops are asynchronous on devices; they report no errors directly —
 * a backend records the first failure and returns it from sync().
 *
 * Shapes: activations are row-major [n tokens][width]; a weight W with
 * ne = {n_in, n_out} is applied as y[t][o] = sum_i W[o][i] * x[t][i]. */
#ifndef RUSTY_BACKEND_H
#define RUSTY_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "dtype/dtype.h"

/* Head sizes above this are rejected at load (real models use <= 256); lets
 * kernels keep per-head buffers on the stack. */
enum { RS_MAX_HEAD_DIM = 1024 };

/* Fence slots a backend with fence_mark keeps. */
enum { RS_FENCES = 4 };

/* How sample_pick draws a chained step's token, in backend memory: rs_sampler_sample's
 * chain (sampler.h) with these parameters, temp > 0 and either 1 <= top_k <=
 * RS_SAMPLE_TOP_K_MAX, top_k < n_vocab, or top-k off (top_k <= 0 or >= n_vocab) with
 * n_vocab <= RS_SAMPLE_ALL_VOCAB_MAX (the whole vocabulary's draw), and <=
 * RS_SAMPLE_NUCLEUS_VOCAB_MAX when top_p < 1 (its blocks wait for each other). rng is
 * the xoshiro256** state the next draw starts from. pen is stage 1's window (the
 * penalties' parameters and the last accepted tokens, rs_sampler's ring as it is:
 * tok[next] is the next token's slot, the oldest leaving when len == last_n), applied by
 * penalize; with pen.last_n > 0 greedy_pick and sample_pick append their pick to it, as
 * rs_sampler_accept does, so the next step sees it. */
enum {
    RS_SAMPLE_TOP_K_MAX = 256,
    RS_SAMPLE_LAST_N_MAX = 1024,
    RS_SAMPLE_ALL_VOCAB_MAX = 1 << 22,
    RS_SAMPLE_NUCLEUS_VOCAB_MAX = 1 << 18,
};
typedef struct rs_sample_window {
    float repeat_penalty, frequency_penalty, presence_penalty;
    int32_t last_n;    /* 0 (no window) .. RS_SAMPLE_LAST_N_MAX */
    int32_t len, next; /* tokens in tok[0 .. len), the slot the next one goes to */
    int32_t tok[RS_SAMPLE_LAST_N_MAX];
} rs_sample_window;
typedef struct rs_sample_rule {
    uint64_t rng[4];
    int32_t top_k;
    float top_p, min_p, temp;
    rs_sample_window pen; /* last: an upload may stop after the window's len tokens */
} rs_sample_rule;

typedef struct rs_backend rs_backend;
typedef struct rs_kv rs_kv; /* a backend's KV cache (opaque, layout is the backend's choice) */

/* A weight matrix or vector as a backend sees it. The model fills the host
 * fields; weight_load() makes `data` usable by the backend (the CPU keeps the
 * mmap pointer, CUDA uploads). */
typedef struct rs_weight {
    const char *name;
    rs_dtype type;
    int64_t n_in;  /* ne[0]: elements per row */
    int64_t n_out; /* ne[1]: rows (1 for vectors) */
    size_t nbytes;
    const void *host;    /* bytes in host memory (the mapping) */
    void *data;          /* backend-resident bytes, set by weight_load */
    void *extra;         /* backend-private (e.g. a repacked copy) */
    rs_backend *backend; /* the backend that loaded it */
} rs_weight;

/* One product of a multi-matmul: y = x W^T (+ bias). */
typedef struct rs_matmul {
    const rs_weight *w;
    const rs_weight *bias; /* F32 vector of n_out, or NULL */
    float *y;              /* [n][w->n_out] */
} rs_matmul;

/* Rotary embedding, already resolved by the model from the hyper-parameters. */
typedef struct rs_rope {
    bool neox;             /* rotate-half pairs (i, i + n_rot/2) instead of adjacent (2i, 2i+1) */
    int n_rot;             /* rotated dimensions per head (<= head_dim), even */
    const float *inv_freq; /* [n_rot / 2] per-pair frequency, scaling folded in; backend memory */
    float attn_factor;     /* multiplies cos and sin (YaRN mscale); 1 otherwise */
} rs_rope;

/* KV cache element types. Q8_0 and Q4_0 cut each head row into blocks of 32 values (the
 * last one zero-padded when head_dim % 32 != 0), each with one fp16 scale, quantized as
 * GGUF does: Q8_0 int8 (d = max|v| / 127, v ~ d * q), Q4_0 4-bit (d = -m / 8 where m is
 * the value of largest magnitude, v ~ d * (q - 8)). The CUDA backend takes Q4_0 only for
 * head_dim a multiple of 32. */
typedef enum rs_kv_type { RS_KV_F32 = 0, RS_KV_F16 = 1, RS_KV_Q8_0 = 2, RS_KV_Q4_0 = 3 } rs_kv_type;

typedef struct rs_kv_desc {
    int n_layer; /* layers held by this cache (the backend's share) */
    int n_ctx;   /* positions per sequence */
    int n_head_kv;
    int head_dim;
    rs_kv_type type;
} rs_kv_desc;

/* Attention geometry shared by the attention ops. */
typedef struct rs_attn {
    int n_head;
    int n_head_kv;
    int head_dim;
    float scale; /* usually 1/sqrt(head_dim) */
    /* an upper bound on pos[t] + 1 over the calls made with this geometry (a graph
     * captured for a band of positions replays them), so a backend may pick kernels for
     * short contexts; 0: no bound but the cache's size */
    int ctx_max;
} rs_attn;

typedef struct rs_backend_ops {
    const char *name;
    void (*destroy)(rs_backend *b);

    /* memory */
    rs_status (*alloc)(rs_backend *b, size_t bytes, void **out, rs_error *err);
    void (*release)(rs_backend *b, void *p);
    rs_status (*upload)(rs_backend *b, void *dst, const void *src, size_t n, rs_error *err);
    rs_status (*download)(rs_backend *b, void *dst, const void *src, size_t n, rs_error *err);
    /* waits for queued work; returns the first error any op hit since the last sync */
    rs_status (*sync)(rs_backend *b, rs_error *err);

    /* weights and caches */
    rs_status (*weight_load)(rs_backend *b, rs_weight *w, rs_error *err);
    void (*weight_unload)(rs_backend *b, rs_weight *w);
    rs_status (*kv_create)(rs_backend *b, const rs_kv_desc *d, rs_kv **out, rs_error *err);
    void (*kv_destroy)(rs_backend *b, rs_kv *kv);

    /* compute */
    /* out[t] = row ids[t] of table (any supported type), as f32 */
    void (*embed)(rs_backend *b, const rs_weight *table, const int32_t *ids, int n, float *out);
    /* out[t] = x[t] / rms(x[t]) * w */
    void (*rmsnorm)(rs_backend *b, const float *x, const rs_weight *w, float eps, int n,
                    float *out);
    /* x[t] += y[t]; out[t] = rmsnorm(x[t]) * w   (residual add fused with the next norm) */
    void (*add_rmsnorm)(rs_backend *b, float *x, const float *y, const rs_weight *w, float eps,
                        int n, float *out);
    /* count products sharing one input x [n][n_in] */
    void (*matmul)(rs_backend *b, const rs_matmul *mm, int count, const float *x, int n);
    /* rotates q [n][n_head][hd] and k [n][n_head_kv][hd] in place at positions pos[n],
     * then stores k and v [n][n_head_kv][hd] into layer `layer` of kv at those positions */
    void (*rope_store)(rs_backend *b, float *q, float *k, const float *v, const int32_t *pos, int n,
                       const rs_rope *rope, const rs_attn *at, rs_kv *kv, int layer);
    /* causal attention: token t attends to cache positions 0..pos[t];
     * out [n][n_head][hd] */
    void (*attention)(rs_backend *b, const float *q, rs_kv *kv, int layer, const int32_t *pos,
                      int n, const rs_attn *at, float *out);
    /* out = silu(g) * u, elementwise over n_elems */
    void (*swiglu)(rs_backend *b, const float *g, const float *u, int64_t n_elems, float *out);
    /* x += y */
    void (*add)(rs_backend *b, float *x, const float *y, int64_t n_elems);

    /* Fused forms of op sequences the forward pass always issues together, so a
     * backend can run each as one kernel at decode sizes (the CPU composes them).
     *
     * x[t] += a[t] W^T (no bias); then, when norm != NULL, out[t] = rmsnorm(x[t]) * norm.
     * (A block's output projection, the residual add and the next block's norm.) */
    void (*matmul_residual)(rs_backend *b, const rs_weight *w, const float *a, int n, float *x,
                            const rs_weight *norm, float eps, float *out);
    /* g[t] = silu(x[t] Wg^T) * (x[t] Wu^T); u [n][n_out] is scratch whose contents
     * are left undefined. */
    void (*matmul_swiglu)(rs_backend *b, const rs_weight *gate, const rs_weight *up, const float *x,
                          int n, float *g, float *u);
    /* matmul(qkv, 3, x, n) for the products q, k, v (in that order), then
     * rope_store(qkv[0].y, qkv[1].y, qkv[2].y, ...). */
    void (*matmul_rope_store)(rs_backend *b, const rs_matmul *qkv, const float *x, int n,
                              const int32_t *pos, const rs_rope *rope, const rs_attn *at, rs_kv *kv,
                              int layer);

    /* Optional: the memory bandwidth this backend's weights stream from, measured
     * now (GB/s, 1e9 bytes/s), for roofline figures in benchmarks. */
    rs_status (*bandwidth)(rs_backend *b, double *gbps, rs_error *err);

    /* Optional (NULL if unsupported): record the ops issued between graph_begin and
     * graph_end under `key` and replay them later with graph_launch. Pointers and
     * sizes must not change between replays; data in backend memory may. Uploads
     * and downloads issued while recording must use host_alloc memory: each
     * replay reads or fills it when its copy runs (a recorded download returns
     * at once; read its bytes after sync). */
    rs_status (*graph_begin)(rs_backend *b, int key, rs_error *err);
    rs_status (*graph_end)(rs_backend *b, int key, rs_error *err);
    bool (*graph_launch)(rs_backend *b, int key); /* false if no graph for key */

    /* Optional (NULL if unneeded): products with these weights follow soon, on n
     * tokens per call. A hint with no effect on results: a backend may start
     * converting the weights now (CUDA dequantizes quantized ones for its prompt
     * GEMMs while the current layer computes). */
    void (*prepare)(rs_backend *b, const rs_weight *const *w, int count, int n);

    /* Optional (NULL: plain malloc serves): host memory this backend copies to
     * and from fastest (CUDA: page-locked, so copies go straight to it). An
     * upload from such memory reads it when the copy runs: leave it unchanged
     * until the next sync. */
    rs_status (*host_alloc)(rs_backend *b, size_t bytes, void **out, rs_error *err);
    void (*host_free)(rs_backend *b, void *p);
    /* Optional (NULL: the session picks greedy tokens on the host), with the fences below:
     * one greedy step handing its token to the next without the host. ids[0] = the argmax
     * of logits[n_vocab] by rs_logits_argmax's rule (NaN as -inf, +inf as FLT_MAX, the
     * lowest id among equals); picks[pos[0] % n_picks] = ids[0]; then pos[0] += 1. logits,
     * ids and pos live in backend memory; picks is host_alloc memory that the op writes
     * when it runs (read it after fence_wait). With a rule (a greedy chain with penalties;
     * else NULL, and rngs too) the pick joins rule->pen's window and rule->rng, unmoved,
     * goes to rngs as sample_pick's does. */
    void (*greedy_pick)(rs_backend *b, const float *logits, int n_vocab, rs_sample_rule *rule,
                        int32_t *ids, int32_t *pos, int32_t *picks, uint64_t *rngs, int n_picks);
    /* Optional (NULL: the session samples on the host): greedy_pick's contract, but ids[0]
     * is the token rs_sampler_sample draws from logits with rule's parameters and RNG state
     * (backend memory). rule->rng moves on as that draw moves the sampler's (not at all when
     * one candidate is left), and the state after it also goes to rngs[4 * slot .. + 4]
     * (host_alloc memory, slot = pos[0] % n_picks). */
    void (*sample_pick)(rs_backend *b, const float *logits, int n_vocab, rs_sample_rule *rule,
                        int32_t *ids, int32_t *pos, int32_t *picks, uint64_t *rngs, int n_picks);
    /* Optional (NULL: penalties are applied on the host): stage 1 of rs_sampler_sample
     * (sampler.h) on logits[n_vocab] in place, by rule->pen: each distinct token of the
     * window once, its logit cleaned (NaN as -inf, +inf as FLT_MAX), penalised with the
     * host's float operations, and cleaned again. The other logits are left as they are
     * (the picks clean them). */
    void (*penalize)(rs_backend *b, float *logits, int n_vocab, const rs_sample_rule *rule);
    /* fence_mark notes in `slot` (< RS_FENCES) how far the queued work has come;
     * fence_wait returns once the work queued before that mark is done (later work may
     * still run), with the first error any op hit since the last sync. */
    rs_status (*fence_mark)(rs_backend *b, int slot, rs_error *err);
    rs_status (*fence_wait)(rs_backend *b, int slot, rs_error *err);
} rs_backend_ops;

struct rs_backend {
    const rs_backend_ops *ops;
    bool is_host; /* its memory is ordinary host memory (the CPU backend) */
};

#endif

/* ops_ref.h — plain scalar reference implementations of every backend op.
 *
 * The oracle that fast CPU and CUDA ops are tested against: the simplest
 * loops that read like the math, accumulating in double. Single-threaded,
 * f32 in/out, the KV "cache" given as plain f32 arrays [pos][n_head_kv][hd].
 * Never used on a hot path. */
#ifndef RUSTY_OPS_REF_H
#define RUSTY_OPS_REF_H

#include <stdint.h>

#include "backend/backend.h"

/* y[t][o] = sum_i W[o][i] x[t][i] (+ bias[o]); W of any type with a to_f32. */
void rs_ref_matmul(const rs_weight *w, const rs_weight *bias, const float *x, int n, float *y);
void rs_ref_embed(const rs_weight *table, const int32_t *ids, int n, float *out);
void rs_ref_rmsnorm(const float *x, const float *w, float eps, int n, int dim, float *out);
/* rotates x [n][n_heads][hd] in place */
void rs_ref_rope(float *x, const int32_t *pos, int n, int n_heads, int hd, const rs_rope *rope);
/* k, v: [n_ctx][n_head_kv][hd]; token t sees positions 0..pos[t] */
void rs_ref_attention(const float *q, const float *k, const float *v, const int32_t *pos, int n,
                      const rs_attn *at, float *out);
void rs_ref_swiglu(const float *g, const float *u, int64_t n, float *out);

#endif

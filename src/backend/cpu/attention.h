/* attention.h — one (token, head) of causal attention over a CPU KV cache.
 *
 * The cache holds each KV head's keys and values contiguously by position
 * ([pos][head_dim] f32 or f16, or [pos][head_dim / 32] GGUF Q8_0 or Q4_0 blocks), so
 * one call streams K once and V once. Kernels exist as portable C and
 * AVX2+F16C (quantized keys: the matmul kernels of each level), chosen once per backend. */
#ifndef RUSTY_CPU_ATTENTION_H
#define RUSTY_CPU_ATTENTION_H

#include <stdint.h>

#include "backend/backend.h"
#include "core/cpu.h"

/* out[hd] = softmax(scale * q.K[0..n_pos)) V[0..n_pos); scores is scratch of n_pos floats. */
typedef void (*rs_attn_head_fn)(const float *q, const void *k, const void *v, int n_pos, int hd,
                                float scale, float *scores, float *out);

void rs_attn_head_f32_scalar(const float *q, const void *k, const void *v, int n_pos, int hd,
                             float scale, float *scores, float *out);
void rs_attn_head_f16_scalar(const float *q, const void *k, const void *v, int n_pos, int hd,
                             float scale, float *scores, float *out);
void rs_attn_head_q8_0_scalar(const float *q, const void *k, const void *v, int n_pos, int hd,
                              float scale, float *scores, float *out);
void rs_attn_head_q4_0_scalar(const float *q, const void *k, const void *v, int n_pos, int hd,
                              float scale, float *scores, float *out);
void rs_attn_head_f32_avx2(const float *q, const void *k, const void *v, int n_pos, int hd,
                           float scale, float *scores, float *out);
void rs_attn_head_f16_avx2(const float *q, const void *k, const void *v, int n_pos, int hd,
                           float scale, float *scores, float *out);
void rs_attn_head_q8_0_avx2(const float *q, const void *k, const void *v, int n_pos, int hd,
                            float scale, float *scores, float *out);
void rs_attn_head_q4_0_avx2(const float *q, const void *k, const void *v, int n_pos, int hd,
                            float scale, float *scores, float *out);

void rs_attn_head_q8_0_avx512(const float *q, const void *k, const void *v, int n_pos, int hd,
                              float scale, float *scores, float *out);
void rs_attn_head_q4_0_avx512(const float *q, const void *k, const void *v, int n_pos, int hd,
                              float scale, float *scores, float *out);

/* scores[p] = scale * q.K[p] for the n_pos key rows of a Q8_0 or Q4_0 cache with hd a
 * multiple of 32, as the matmul kernels of `level` compute a matrix-vector product: the query
 * quantized to Q8_0 (the activation quantizer, act_quant_ref.c), one integer dot per block.
 * llama.cpp's CPU scores quantized keys this way, and the CUDA kernels quantize the query with
 * the same numerics. Smaller heads (8, 16, 24: one scale would cover too few values; on
 * TinyStories-656K, heads of 16, it took the Q8_0 cache's logits from 0.0068 to 0.017 of
 * HF's) keep float queries. */
void rs_attn_scores_q8(rs_kv_type type, rs_simd_level level, const float *q, const void *k,
                       int n_pos, int hd, float scale, float *scores);

/* scores[p] = exp(scores[p] - max) in place; returns their sum. */
float rs_attn_softmax_inplace(float *scores, int n_pos);

/* The kernel for a cache type at a SIMD level. */
rs_attn_head_fn rs_attn_head_select(rs_kv_type type, rs_simd_level level);

#endif

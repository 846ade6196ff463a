/* attention_avx2.c — AVX2 + F16C attention kernels (see attention.h).
 * Head sizes that are not a multiple of 8 (32 for Q8_0 and Q4_0 caches) fall back to the
 * portable kernels. */
#include <immintrin.h>
#include <math.h>

#include "backend/cpu/attention.h"
#include "dtype/blocks.h"

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m256 load8(const void *base, size_t idx, int f16) {
    if (f16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + idx)));
    return _mm256_loadu_ps((const float *)base + idx);
}

/* Shared body: f16 selects the cache element type (a constant after inlining). */
static inline void attn_head(const float *q, const void *k, const void *v, int n_pos, int hd,
                             float scale, float *scores, float *out, int f16) {
    float mx = -INFINITY;
    for (int p = 0; p < n_pos; p++) {
        __m256 acc = _mm256_setzero_ps();
        for (int i = 0; i < hd; i += 8)
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8(k, (size_t)p * hd + i, f16), acc);
        float s = hsum256(acc) * scale;
        scores[p] = s;
        mx = s > mx ? s : mx;
    }
    float sum = 0;
    for (int p = 0; p < n_pos; p++) sum += (scores[p] = expf(scores[p] - mx));
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    /* V in column chunks of 64 kept in 8 registers, streaming each row once per chunk */
    int c = 0;
    for (; c + 64 <= hd; c += 64) {
        __m256 acc[8];
        for (int j = 0; j < 8; j++) acc[j] = _mm256_setzero_ps();
        for (int p = 0; p < n_pos; p++) {
            __m256 w = _mm256_set1_ps(scores[p]);
            for (int j = 0; j < 8; j++)
                acc[j] = _mm256_fmadd_ps(w, load8(v, (size_t)p * hd + c + 8 * j, f16), acc[j]);
        }
        for (int j = 0; j < 8; j++) _mm256_storeu_ps(out + c + 8 * j, _mm256_mul_ps(acc[j], inv));
    }
    for (; c < hd; c += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int p = 0; p < n_pos; p++)
            acc =
                _mm256_fmadd_ps(_mm256_set1_ps(scores[p]), load8(v, (size_t)p * hd + c, f16), acc);
        _mm256_storeu_ps(out + c, _mm256_mul_ps(acc, inv));
    }
}

void rs_attn_head_f32_avx2(const float *q, const void *k, const void *v, int n_pos, int hd,
                           float scale, float *scores, float *out) {
    if (hd % 8) {
        rs_attn_head_f32_scalar(q, k, v, n_pos, hd, scale, scores, out);
        return;
    }
    attn_head(q, k, v, n_pos, hd, scale, scores, out, 0);
}

void rs_attn_head_f16_avx2(const float *q, const void *k, const void *v, int n_pos, int hd,
                           float scale, float *scores, float *out) {
    if (hd % 8) {
        rs_attn_head_f16_scalar(q, k, v, n_pos, hd, scale, scores, out);
        return;
    }
    attn_head(q, k, v, n_pos, hd, scale, scores, out, 1);
}

/* The 32 values of a Q8_0 block as floats, unscaled; its scale in *d. */
static inline void q8_block(const void *p, __m256 v[4], float *d) {
    const block_q8_0 *blk = p;
    for (int j = 0; j < 4; j++)
        v[j] = _mm256_cvtepi32_ps(
            _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk->qs + 8 * j))));
    *d = _cvtsh_ss(blk->d);
}

/* The 32 values of a Q4_0 block as floats, unscaled (q - 8): v[0..1] the low nibbles (values
 * 0..15), v[2..3] the high ones (16..31), as GGUF lays them out; its scale in *d. */
static inline void q4_block(const void *p, __m256 v[4], float *d) {
    const block_q4_0 *blk = p;
    const __m128i raw = _mm_loadu_si128((const __m128i *)blk->qs), m = _mm_set1_epi8(0x0F);
    const __m128i eight = _mm_set1_epi8(8);
    const __m128i lo = _mm_sub_epi8(_mm_and_si128(raw, m), eight);
    const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), m), eight);
    v[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
    v[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
    v[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    v[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
    *d = _cvtsh_ss(blk->d);
}

/* A Q4_0 (q4) or Q8_0 block, as q4_block / q8_block. */
static inline void load_block(const void *p, int q4, __m256 v[4], float *d) {
    if (q4)
        q4_block(p, v, d);
    else
        q8_block(p, v, d);
}

/* Rows of hd / 32 blocks of bsize bytes, q4 choosing the block type (a constant after
 * inlining): keys scored in integers by the matmul kernels of `level` (rs_attn_scores_q8);
 * each value block's 32 values widened to floats, its scale applied once to the position's
 * weight. */
static inline void attn_head_blocks(const float *q, const void *kv, const void *vv, int n_pos,
                                    int hd, float scale, float *scores, float *out, int q4,
                                    rs_simd_level level) {
    const int nb = hd / 32;
    const size_t bsize = q4 ? sizeof(block_q4_0) : sizeof(block_q8_0);
    const unsigned char *v = vv;
    rs_attn_scores_q8(q4 ? RS_KV_Q4_0 : RS_KV_Q8_0, level, q, kv, n_pos, hd, scale, scores);
    const __m256 inv = _mm256_set1_ps(1.0f / rs_attn_softmax_inplace(scores, n_pos));
    /* V a block (32 columns) at a time in 4 registers, streaming each row once per block */
    for (int b = 0; b < nb; b++) {
        __m256 acc[4];
        for (int j = 0; j < 4; j++) acc[j] = _mm256_setzero_ps();
        for (int p = 0; p < n_pos; p++) {
            __m256 x[4];
            float d;
            load_block(v + ((size_t)p * nb + b) * bsize, q4, x, &d);
            const __m256 w = _mm256_set1_ps(scores[p] * d);
            for (int j = 0; j < 4; j++) acc[j] = _mm256_fmadd_ps(w, x[j], acc[j]);
        }
        for (int j = 0; j < 4; j++)
            _mm256_storeu_ps(out + 32 * b + 8 * j, _mm256_mul_ps(acc[j], inv));
    }
}

/* Q8_0 (q4 0) or Q4_0 (q4 1) at a level: rows whose head is not whole blocks go portable. */
static void attn_head_quant(const float *q, const void *kv, const void *vv, int n_pos, int hd,
                            float scale, float *scores, float *out, int q4, rs_simd_level level) {
    if (hd % 32 == 0)
        attn_head_blocks(q, kv, vv, n_pos, hd, scale, scores, out, q4, level);
    else if (q4)
        rs_attn_head_q4_0_scalar(q, kv, vv, n_pos, hd, scale, scores, out);
    else
        rs_attn_head_q8_0_scalar(q, kv, vv, n_pos, hd, scale, scores, out);
}

void rs_attn_head_q8_0_avx2(const float *q, const void *kv, const void *vv, int n_pos, int hd,
                            float scale, float *scores, float *out) {
    attn_head_quant(q, kv, vv, n_pos, hd, scale, scores, out, 0, RS_SIMD_AVX2);
}

void rs_attn_head_q4_0_avx2(const float *q, const void *kv, const void *vv, int n_pos, int hd,
                            float scale, float *scores, float *out) {
    attn_head_quant(q, kv, vv, n_pos, hd, scale, scores, out, 1, RS_SIMD_AVX2);
}

/* The keys through the AVX-512 matmul kernels, the values as at AVX2. */
void rs_attn_head_q8_0_avx512(const float *q, const void *kv, const void *vv, int n_pos, int hd,
                              float scale, float *scores, float *out) {
    attn_head_quant(q, kv, vv, n_pos, hd, scale, scores, out, 0, RS_SIMD_AVX512);
}

void rs_attn_head_q4_0_avx512(const float *q, const void *kv, const void *vv, int n_pos, int hd,
                              float scale, float *scores, float *out) {
    attn_head_quant(q, kv, vv, n_pos, hd, scale, scores, out, 1, RS_SIMD_AVX512);
}

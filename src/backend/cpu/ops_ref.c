/* ops_ref.c — scalar reference ops (see ops_ref.h). */
#include "backend/cpu/ops_ref.h"

#include <math.h>
#include <stdlib.h>

/* Dequantizes row r of w into out[n_in]. */
static void weight_row(const rs_weight *w, int64_t r, float *out) {
    const rs_dtype_traits *tr = rs_dtype_get(w->type);
    size_t row_bytes = 0;
    rs_dtype_row_size(w->type, w->n_in, &row_bytes);
    tr->to_f32((const unsigned char *)w->host + (size_t)r * row_bytes, out, w->n_in);
}

void rs_ref_matmul(const rs_weight *w, const rs_weight *bias, const float *x, int n, float *y) {
    float *row = malloc((size_t)w->n_in * sizeof *row);
    float *b = NULL;
    if (bias) {
        b = malloc((size_t)bias->n_in * sizeof *b);
        weight_row(bias, 0, b);
    }
    for (int64_t o = 0; o < w->n_out; o++) {
        weight_row(w, o, row);
        for (int t = 0; t < n; t++) {
            double acc = 0;
            for (int64_t i = 0; i < w->n_in; i++)
                acc += (double)row[i] * x[(size_t)t * w->n_in + i];
            y[(size_t)t * w->n_out + o] = (float)(acc + (b ? b[o] : 0.0));
        }
    }
    free(row);
    free(b);
}

void rs_ref_embed(const rs_weight *table, const int32_t *ids, int n, float *out) {
    for (int t = 0; t < n; t++) weight_row(table, ids[t], out + (size_t)t * table->n_in);
}

void rs_ref_rmsnorm(const float *x, const float *w, float eps, int n, int dim, float *out) {
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * dim;
        double ss = 0;
        for (int i = 0; i < dim; i++) ss += (double)xt[i] * xt[i];
        double scale = 1.0 / sqrt(ss / dim + eps);
        for (int i = 0; i < dim; i++) out[(size_t)t * dim + i] = (float)(xt[i] * scale * w[i]);
    }
}

void rs_ref_rope(float *x, const int32_t *pos, int n, int n_heads, int hd, const rs_rope *rope) {
    int half = rope->n_rot / 2;
    for (int t = 0; t < n; t++) {
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * hd;
            for (int i = 0; i < half; i++) {
                double theta = (double)pos[t] * rope->inv_freq[i];
                double c = cos(theta) * rope->attn_factor, s = sin(theta) * rope->attn_factor;
                int a = rope->neox ? i : 2 * i;
                int b = rope->neox ? i + half : 2 * i + 1;
                double x0 = v[a], x1 = v[b];
                v[a] = (float)(x0 * c - x1 * s);
                v[b] = (float)(x0 * s + x1 * c);
            }
        }
    }
}

void rs_ref_attention(const float *q, const float *k, const float *v, const int32_t *pos, int n,
                      const rs_attn *at, float *out) {
    int hd = at->head_dim, group = at->n_head / at->n_head_kv;
    int max_pos = 0;
    for (int t = 0; t < n; t++)
        if (pos[t] > max_pos) max_pos = pos[t];
    double *w = malloc(((size_t)max_pos + 1) * sizeof *w);
    for (int t = 0; t < n; t++) {
        for (int h = 0; h < at->n_head; h++) {
            const float *qh = q + ((size_t)t * at->n_head + h) * hd;
            int hk = h / group;
            double mx = -INFINITY, sum = 0;
            for (int p = 0; p <= pos[t]; p++) {
                const float *kp = k + ((size_t)p * at->n_head_kv + hk) * hd;
                double s = 0;
                for (int i = 0; i < hd; i++) s += (double)qh[i] * kp[i];
                w[p] = s * at->scale;
                if (w[p] > mx) mx = w[p];
            }
            for (int p = 0; p <= pos[t]; p++) sum += (w[p] = exp(w[p] - mx));
            float *o = out + ((size_t)t * at->n_head + h) * hd;
            for (int i = 0; i < hd; i++) {
                double acc = 0;
                for (int p = 0; p <= pos[t]; p++)
                    acc += w[p] * v[((size_t)p * at->n_head_kv + hk) * hd + i];
                o[i] = (float)(acc / sum);
            }
        }
    }
    free(w);
}

void rs_ref_swiglu(const float *g, const float *u, int64_t n, float *out) {
    for (int64_t i = 0; i < n; i++) {
        double x = g[i];
        out[i] = (float)(x / (1.0 + exp(-x)) * u[i]);
    }
}

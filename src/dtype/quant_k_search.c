/* quant_k_search.c — the per-group scale searches of the K-quant reference
 * quantizers (ggml's make_qx_quants, make_q3_quants and make_qkx2_quants).
 *
 * Each one picks a scale (and for the affine form a min) for a small group of
 * values by trying a few candidate scales and keeping the one with the least
 * weighted error. The arithmetic is f32 in the same order as ggml's so the
 * chosen levels agree with its reference quantizers. */
#include "dtype/quant_internal.h"

/* Largest-magnitude value, keeping its sign (first one on ties). */
static float group_signed_max(int n, const float *x, float *amax_out) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    *amax_out = amax;
    return max;
}

/* Levels in [-nmax, nmax - 1] for one candidate inverse scale, with the
 * x^2-weighted sums that give the least-squares scale sumlx / suml2. */
static void sym_sums(int n, int nmax, const float *x, float iscale, float *sumlx, float *suml2) {
    float slx = 0.0f, sl2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = rs_clamp_int(rs_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        const float w = x[i] * x[i];
        slx += w * x[i] * (float)l;
        sl2 += w * (float)l * (float)l;
    }
    *sumlx = slx;
    *suml2 = sl2;
}

static void sym_levels(int n, int nmax, const float *x, float iscale, int8_t *L) {
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(nmax + rs_clamp_int(rs_nearest_int(iscale * x[i]), -nmax, nmax - 1));
}

float rs_quant_search_sym(int n, int nmax, const float *x, int8_t *L) {
    float amax;
    const float max = group_signed_max(n, x, &amax);
    if (amax < RS_GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    /* the signed extreme maps to level -nmax; then try 18 nearby scales */
    float iscale = (float)-nmax / max;
    float sumlx, suml2;
    sym_sums(n, nmax, x, iscale, &sumlx, &suml2);
    sym_levels(n, nmax, x, iscale, L);
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sym_sums(n, nmax, x, iscale, &sumlx, &suml2);
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            sym_levels(n, nmax, x, iscale, L);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

float rs_quant_search_sym_refine(int n, int nmax, const float *x, int8_t *L) {
    float amax;
    const float max = group_signed_max(n, x, &amax);
    if (amax < RS_GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = (float)-nmax / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = rs_clamp_int(rs_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    /* Move one element at a time to the level that is best for the scale the
     * others imply; keep the move when the fit sumlx^2 / suml2 improves. */
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * (float)L[i] * (float)L[i];
                const int new_l = rs_clamp_int(rs_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * (float)new_l;
                    sl2 += w * (float)new_l * (float)new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (n_changed == 0) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

static float affine_error(float diff, bool use_mad) {
    return use_mad ? fabsf(diff) : diff * diff;
}

float rs_quant_search_affine(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                             float *min_out, uint8_t *Laux, float rmin, float rdelta, int nstep,
                             bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if (min > 0) min = 0; /* the offset only ever moves the grid down */
    if (max == min) {
        memset(L, 0, (size_t)n);
        *min_out = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)rs_clamp_int(rs_nearest_int(iscale * (x[i] - min)), 0, nmax);
        best_error += weights[i] * affine_error(scale * (float)L[i] + min - x[i], use_mad);
    }
    if (nstep < 1) {
        *min_out = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        /* levels for a trial scale, then the weighted least-squares scale and
         * offset for those levels (min clamped to <= 0) */
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = rs_clamp_int(rs_nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * (float)l;
            sum_l2 += w * (float)l * (float)l;
            sum_xl += w * (float)l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++)
                cur_error += weights[i] *
                             affine_error(this_scale * (float)Laux[i] + this_min - x[i], use_mad);
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *min_out = -min;
    return scale;
}

/* cuda_matvec.cu — decode products y = W x for 1..4 tokens, fused with the
 * dequantization of W: one warp per output row (two for some types), 16-byte
 * weight loads issued U at a time before any is used, activations read from
 * L1. The per-type tasks and the main loop are in cuda_mvt.cuh. */
#include "backend/cuda/cuda_mvt.cuh"

namespace {

/* ---- kernels ----------------------------------------------------------------------------------
 */

__device__ __forceinline__ void store_rows(const mv_args &a, int p, int64_t row, const float *acc,
                                           const float *s, int nt) {
    const mv_prod &P = a.p[p];
    const float b = P.bias ? P.bias[row] : 0.0f;
    for (int t = 0; t < nt && t < a.n; t++) P.y[(int64_t)t * P.w.n_out + row] = acc[t] * s[t] + b;
}

/* Warp w computes rows R*w .. R*w+R-1 of the launch (each may belong to a
 * different product) for up to NT tokens. */
template <typename Tr, int NT, int R>
__global__ void __launch_bounds__(MV_WARPS * 32) mv_kernel(const __grid_constant__ mv_args a) {
    cw_griddep_launch();
    const int lane = threadIdx.x & 31;
    const int64_t rg0 = ((int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5)) * R;
    const bool active = rg0 < a.rows; /* uniform in the warp */
    if (!active && !a.xn) return;
    int p[R];
    int64_t row[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int64_t rg =
            rg0 + r < a.rows ? rg0 + r : rg0; /* a missing last row recomputes the first */
        p[r] = active ? find_prod(a, rg) : 0;
        row[r] = active ? rg - a.p[p[r]].row0 : 0;
    }
    float acc[R][NT];
    if (active)
        mv_accumulate<Tr, NT, R, Tr::U>(a, p, row, lane, acc, 0, Tr::ntask(a.p[p[0]].w));
    else
        cw_griddep_wait();
    float s[NT];
    mv_norm_scale<NT>(a, lane, s);
    mv_write_xn<NT>(a, s);
    if (active && lane == 0)
#pragma unroll
        for (int r = 0; r < R; r++)
            if (rg0 + r < a.rows) store_rows(a, p[r], row[r], acc[r], s, NT);
}

/* Float weights whose rows or activations are not 16-byte aligned. */
template <int T>
__global__ void __launch_bounds__(MV_WARPS * 32)
    mv_scalar_kernel(const __grid_constant__ mv_args a) {
    cw_griddep_launch();
    const int lane = threadIdx.x & 31;
    const int64_t rg = (int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    const bool active = rg < a.rows;
    if (!active && !a.xn) return;
    cw_griddep_wait();
    float s[CW_MV_MAX_TOK];
    mv_norm_scale<CW_MV_MAX_TOK>(a, lane, s);
    mv_write_xn<CW_MV_MAX_TOK>(a, s);
    if (!active) return;
    const int p = find_prod(a, rg);
    const cw_layout &L = a.p[p].w;
    const int64_t row = rg - a.p[p].row0;
    float acc[CW_MV_MAX_TOK] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t i = lane; i < a.n_in; i += 32) {
        const int64_t e = row * a.n_in + i;
        float w;
        if (T == RS_DTYPE_F32)
            w = ((const float *)L.qs)[e];
        else if (T == RS_DTYPE_F16)
            w = cw_h2f(((const uint16_t *)L.qs)[e]);
        else
            w = cw_bf2f(((const uint16_t *)L.qs)[e]);
        for (int t = 0; t < a.n; t++) acc[t] += w * a.x[t * a.n_in + i];
    }
    for (int t = 0; t < CW_MV_MAX_TOK; t++) acc[t] = cw_warp_sum(acc[t]);
    if (lane == 0) store_rows(a, p, row, acc, s, CW_MV_MAX_TOK);
}

__global__ void q8_kernel(const float *x, int64_t nblk, int8_t *xq, cw_q8s *xd) {
    cw_griddep_launch();
    cw_griddep_wait();
    const int64_t b = (int64_t)blockIdx.x * 8 + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (b >= nblk) return;
    cw_q8_block(x[32 * b + lane], lane, xq + 32 * b + lane, xd + b);
}

template <int T> void launch_mv(cuda_backend *c, const mv_args &a) {
    const dim3 block(MV_WARPS * 32), grid1((unsigned)((a.rows + MV_WARPS - 1) / MV_WARPS));
    const int rows = c->tune.mv_rows ? c->tune.mv_rows : mv_default_rows(T);
    if (a.n == 1 && rows == 2)
        cw_launch(c, true, mv_kernel<mvt<T>, 1, 2>,
                  dim3((unsigned)((a.rows + 2 * MV_WARPS - 1) / (2 * MV_WARPS))), block, 0, a);
    else if (a.n == 1)
        cw_launch(c, true, mv_kernel<mvt<T>, 1, 1>, grid1, block, 0, a);
    else
        cw_launch(c, true, mv_kernel<mvt<T>, CW_MV_MAX_TOK, 1>, grid1, block, 0, a);
}

void launch_by_type(cuda_backend *c, int type, bool vec_ok, const mv_args &a) {
    const dim3 grid((unsigned)((a.rows + MV_WARPS - 1) / MV_WARPS)), block(MV_WARPS * 32);
    switch (type) {
    case RS_DTYPE_F32:
        if (vec_ok)
            launch_mv<RS_DTYPE_F32>(c, a);
        else
            cw_launch(c, true, mv_scalar_kernel<RS_DTYPE_F32>, grid, block, 0, a);
        break;
    case RS_DTYPE_F16:
        if (vec_ok)
            launch_mv<RS_DTYPE_F16>(c, a);
        else
            cw_launch(c, true, mv_scalar_kernel<RS_DTYPE_F16>, grid, block, 0, a);
        break;
    case RS_DTYPE_BF16:
        if (vec_ok)
            launch_mv<RS_DTYPE_BF16>(c, a);
        else
            cw_launch(c, true, mv_scalar_kernel<RS_DTYPE_BF16>, grid, block, 0, a);
        break;
    case RS_DTYPE_Q4_0:
        launch_mv<RS_DTYPE_Q4_0>(c, a);
        break;
    case RS_DTYPE_Q4_1:
        launch_mv<RS_DTYPE_Q4_1>(c, a);
        break;
    case RS_DTYPE_Q5_0:
        launch_mv<RS_DTYPE_Q5_0>(c, a);
        break;
    case RS_DTYPE_Q5_1:
        launch_mv<RS_DTYPE_Q5_1>(c, a);
        break;
    case RS_DTYPE_Q8_0:
        launch_mv<RS_DTYPE_Q8_0>(c, a);
        break;
    case RS_DTYPE_Q2_K:
        launch_mv<RS_DTYPE_Q2_K>(c, a);
        break;
    case RS_DTYPE_Q3_K:
        launch_mv<RS_DTYPE_Q3_K>(c, a);
        break;
    case RS_DTYPE_Q4_K:
        launch_mv<RS_DTYPE_Q4_K>(c, a);
        break;
    case RS_DTYPE_Q5_K:
        launch_mv<RS_DTYPE_Q5_K>(c, a);
        break;
    case RS_DTYPE_Q6_K:
        launch_mv<RS_DTYPE_Q6_K>(c, a);
        break;
    case RS_DTYPE_IQ4_NL:
        launch_mv<RS_DTYPE_IQ4_NL>(c, a);
        break;
    case RS_DTYPE_IQ4_XS:
        launch_mv<RS_DTYPE_IQ4_XS>(c, a);
        break;
    default:
        cw_fail(c, RS_ERR_UNSUPPORTED, "matvec: type %s", rs_dtype_name(type));
        break;
    }
}

} // namespace

void cw_quantize_q8(cuda_backend *c, const float *x, int64_t elems, void *q8, bool pdl) {
    const int64_t nblk = elems / 32;
    cw_launch(c, pdl, q8_kernel, dim3((unsigned)((nblk + 7) / 8)), dim3(256), 0, x, nblk,
              (int8_t *)q8, cw_q8_scales(q8, elems));
}

void cw_matvec(cuda_backend *c, const rs_matmul *mm, int count, const float *x, int n) {
    const int64_t n_in = mm[0].w->n_in;
    bool need_q8 = false;
    for (int i = 0; i < count; i++)
        need_q8 |= !mv_is_float(((const cw_layout *)mm[i].w->extra)->type);
    mv_args base = {};
    if (!mv_input(c, x, n, n_in, need_q8, &base)) return;
    const bool vec_ok = ((uintptr_t)base.x & 15) == 0 && n_in % 8 == 0;
    /* one launch per weight type, up to MV_MAX_PROD products each */
    uint64_t done = 0; /* products already launched (the first 64; later ones go alone) */
    for (int i = 0; i < count; i++) {
        if (i < 64 && (done >> i & 1)) continue;
        const int type = ((const cw_layout *)mm[i].w->extra)->type;
        mv_args a = base;
        for (int j = i; j < count && a.np < MV_MAX_PROD; j++) {
            const cw_layout *L = (const cw_layout *)mm[j].w->extra;
            if (L->type != type || (j < 64 && (done >> j & 1)) || (j >= 64 && j != i)) continue;
            if (j < 64) done |= 1ull << j;
            mv_add_prod(&a, mm[j]);
        }
        launch_by_type(c, type, vec_ok, a);
        base.xn = NULL; /* the first launch writes the deferred norm's output */
    }
}

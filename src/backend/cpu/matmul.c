/* matmul.c — the CPU matrix-product driver: validation, scratch layout, work
 * split and the threaded job (see matmul.h).
 *
 * One dispatch does everything: the threads first quantize the activations
 * (pieces of rows spread over threads), meet at a barrier, then pull work
 * units from a shared counter. A unit is (token block, weight, row chunk); the
 * row tile x token tile loops inside it keep a few weight rows hot in L1 while
 * the token block's activations stay in L2. */
#include "backend/cpu/matmul.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "backend/cpu/packed.h"

enum {
    QUANT_PIECE = 4096,      /* elements of one activation-quantization work piece */
    TOKEN_BLOCK = 64,        /* tokens per gemm unit: their activations stay in L2 */
    CHUNKS_PER_THREAD = 8,   /* work units per thread, for load balance */
    GEMV_MIN_CHUNK = 16384,  /* bytes of weights per decode chunk, at least */
    GEMV_MAX_CHUNK = 262144, /* ... and at most */
    GEMM_MAX_ROWS = 64,      /* weight rows per gemm chunk, at most */
    SERIAL_BYTES = 262144,   /* below this much weight traffic (bytes x tokens) one
                                thread is faster than waking the others (~1.5 us) */
    SCRATCH_ALIGN = 64,
};

typedef struct {
    rs_cpu_act act;
    rs_cpu_quant_fn quant; /* NULL for f32 */
    size_t row_bytes;      /* companion row (aligned) */
    uint8_t *data;         /* n_tok rows */
} mm_act;

typedef struct {
    const rs_cpu_kernel *k;
    rs_cpu_tile_fn tile; /* k->tile, or k->tile1_hw for decode with hardware prefetch */
    const uint8_t *w;
    size_t w_row;     /* bytes per weight row (GGUF) or per group of 16 rows (x16) */
    size_t row_bytes; /* bytes per row, for traffic and chunk sizes */
    bool packed;      /* x16 layout */
    int64_t n_out;
    float *y;
    size_t y_stride;
    int act;          /* index into mm_job.acts */
    int64_t chunk;    /* rows per chunk (a multiple of k->mr) */
    int64_t n_chunks; /* chunks per token block */
    int64_t first;    /* first unit index of this weight within a token block */
} mm_weight;

typedef struct {
    rs_threadpool *tp;
    const rs_cpu_matmul_in *in;
    mm_act acts[RS_CPU_MATMUL_MAX_W];
    int n_acts;
    mm_weight ws[RS_CPU_MATMUL_MAX_W];
    int n_w;
    int64_t tok_block, n_tok_blocks, units_per_tb, n_units;
    int64_t pieces_per_row;
    _Atomic int64_t next_unit;
} mm_job;

static inline int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}
static inline int64_t max64(int64_t a, int64_t b) {
    return a > b ? a : b;
}
static inline int64_t round_up(int64_t a, int64_t m) {
    return (a + m - 1) / m * m;
}

/* Block size, bytes per block and companion format of a weight in its layout. */
static bool layout_info(const rs_cpu_matmul_w *w, int64_t *block, size_t *bytes, rs_cpu_act *act) {
    if (w->layout == RS_CPU_LAYOUT_GGUF) return rs_cpu_weight_info(w->type, block, bytes, act);
    if (w->layout != RS_CPU_LAYOUT_X16 || !rs_cpu_pack_supports(w->type)) return false;
    rs_cpu_weight_info(w->type, block, bytes, act);
    *act = RS_CPU_ACT_Q8_0P;
    return true;
}

bool rs_cpu_matmul_pack_useful(rs_dtype type, rs_simd_level level) {
    bool native = false;
    return rs_cpu_packed_kernel_get(type, level, &native) && native;
}

bool rs_cpu_matmul_supports(rs_dtype type) {
    int64_t block;
    size_t bytes;
    rs_cpu_act act;
    return rs_cpu_weight_info(type, &block, &bytes, &act);
}

/* Bytes of one companion row of n_in elements, rounded up for alignment;
 * 0 when it does not fit. */
static size_t act_row_bytes(rs_cpu_act act, int64_t n_in) {
    int64_t blk = rs_cpu_act_block(act);
    size_t bb = rs_cpu_act_block_bytes(act);
    if (n_in <= 0 || (uint64_t)(n_in / blk) > (SIZE_MAX - 2 * SCRATCH_ALIGN) / bb) return 0;
    size_t bytes = ((size_t)(n_in / blk) * bb + SCRATCH_ALIGN - 1) & ~(size_t)(SCRATCH_ALIGN - 1);
    /* a row stride of a multiple of 1 KiB would put the same block of every
     * token of a tile into the same few L1 sets: one more cache line */
    if (bytes % 1024 == 0) bytes += SCRATCH_ALIGN;
    return bytes;
}

size_t rs_cpu_matmul_scratch_size(const rs_cpu_matmul_w *ws, int n_w, int64_t n_in, int64_t n_tok) {
    bool seen[RS_CPU_ACT_COUNT] = {false};
    size_t total = SCRATCH_ALIGN; /* slack to align the caller's pointer */
    for (int i = 0; i < n_w; i++) {
        int64_t block;
        size_t bytes;
        rs_cpu_act act;
        if (!layout_info(&ws[i], &block, &bytes, &act)) continue;
        if (act == RS_CPU_ACT_F32 || seen[act]) continue;
        seen[act] = true;
        size_t row = act_row_bytes(act, n_in);
        if (n_tok < 0 || (n_tok > 0 && row > (SIZE_MAX - total) / (uint64_t)n_tok)) return SIZE_MAX;
        total += row * (size_t)n_tok;
    }
    return total == SCRATCH_ALIGN ? 0 : total;
}

static rs_status check_weight(const rs_cpu_matmul_in *in, const rs_cpu_matmul_w *w, int i,
                              rs_error *err) {
    int64_t block;
    size_t bytes;
    rs_cpu_act act;
    if (!layout_info(w, &block, &bytes, &act))
        return rs_error_set(err, RS_ERR_UNSUPPORTED,
                            "matmul: weight %d has type %s (%d) in layout %d, which "
                            "has no CPU kernel",
                            i, rs_dtype_name(w->type), (int)w->type, (int)w->layout);
    int64_t ablock = rs_cpu_act_block(act);
    if (in->n_in % block != 0 || in->n_in % ablock != 0)
        return rs_error_set(err, RS_ERR_ARG,
                            "matmul: weight %d: n_in %lld is not a multiple of "
                            "the %s block size %lld",
                            i, (long long)in->n_in, rs_dtype_name(w->type),
                            (long long)max64(block, ablock));
    if (!w->w || !w->y || w->n_out < 1 || w->y_stride < w->n_out)
        return rs_error_set(err, RS_ERR_ARG,
                            "matmul: weight %d: bad output (n_out %lld, "
                            "y_stride %lld, w %p, y %p)",
                            i, (long long)w->n_out, (long long)w->y_stride, w->w, (void *)w->y);
    if (w->layout == RS_CPU_LAYOUT_X16 && rs_cpu_pack_size(w->type, w->n_out, in->n_in) == 0)
        return rs_error_set(err, RS_ERR_ARG, "matmul: weight %d: packed %lld x %lld too large", i,
                            (long long)w->n_out, (long long)in->n_in);
    if ((uint64_t)(in->n_in / block) > SIZE_MAX / 2 / bytes)
        return rs_error_set(err, RS_ERR_ARG, "matmul: weight %d: row of %lld elements too large", i,
                            (long long)in->n_in);
    return RS_OK;
}

static rs_status check_args(const rs_cpu_matmul_in *in, const rs_cpu_matmul_w *ws, int n_w,
                            rs_error *err) {
    if (!in || !ws || n_w < 1 || n_w > RS_CPU_MATMUL_MAX_W)
        return rs_error_set(err, RS_ERR_ARG, "matmul: need 1..%d weights, got %d",
                            RS_CPU_MATMUL_MAX_W, n_w);
    if (!in->x || in->n_in < 1 || in->n_tok < 1 || in->x_stride < in->n_in)
        return rs_error_set(err, RS_ERR_ARG,
                            "matmul: bad input (n_in %lld, n_tok %lld, "
                            "x_stride %lld)",
                            (long long)in->n_in, (long long)in->n_tok, (long long)in->x_stride);
    if (in->level < RS_SIMD_SCALAR || in->level > RS_SIMD_AMX)
        return rs_error_set(err, RS_ERR_ARG, "matmul: bad SIMD level %d", (int)in->level);
    for (int i = 0; i < n_w; i++) {
        rs_status st = check_weight(in, &ws[i], i, err);
        if (st != RS_OK) return st;
    }
    size_t need = rs_cpu_matmul_scratch_size(ws, n_w, in->n_in, in->n_tok);
    if (need == SIZE_MAX || in->scratch_size < need || (need > 0 && !in->scratch))
        return rs_error_set(err, RS_ERR_ARG, "matmul: scratch of %zu bytes, need %zu",
                            in->scratch_size, need);
    return RS_OK;
}

/* Phase 1: quantize the activations; piece p of the flat (token, piece) range
 * goes to thread p % nth. */
static void quantize_phase(mm_job *j, int ith, int nth) {
    const rs_cpu_matmul_in *in = j->in;
    int64_t total = in->n_tok * j->pieces_per_row;
    for (int64_t p = ith; p < total; p += nth) {
        int64_t t = p / j->pieces_per_row, piece = p % j->pieces_per_row;
        int64_t e0 = piece * QUANT_PIECE, ne = min64(QUANT_PIECE, in->n_in - e0);
        const float *x = in->x + t * in->x_stride + e0;
        for (int a = 0; a < j->n_acts; a++) {
            const mm_act *ma = &j->acts[a];
            if (!ma->quant) continue;
            size_t off = (size_t)(e0 / rs_cpu_act_block(ma->act)) * rs_cpu_act_block_bytes(ma->act);
            ma->quant(x, ma->data + (size_t)t * ma->row_bytes + off, ne);
        }
    }
}

/* Runs one work unit: rows [r0, r1) of weight `wi` for the tokens of block tb. */
static void run_unit(const mm_job *j, int64_t unit) {
    int64_t tb = unit / j->units_per_tb, u = unit % j->units_per_tb;
    int wi = 0;
    while (wi + 1 < j->n_w && j->ws[wi + 1].first <= u) wi++;
    const mm_weight *mw = &j->ws[wi];
    const mm_act *ma = &j->acts[mw->act];
    const rs_cpu_kernel *k = mw->k;
    int64_t r0 = (u - mw->first) * mw->chunk, r1 = min64(r0 + mw->chunk, mw->n_out);
    int64_t t0 = tb * j->tok_block, t1 = min64(t0 + j->tok_block, j->in->n_tok);
    int64_t mr = j->in->n_tok == 1 ? k->mr1 : k->mr;
    for (int64_t r = r0; r < r1; r += mr) {
        int nr = (int)min64(mr, r1 - r);
        /* x16: r is a multiple of 16 (chunks and tiles are) */
        const uint8_t *w = mw->w + (size_t)(mw->packed ? r / RS_CPU_PACK_ROWS : r) * mw->w_row;
        for (int64_t t = t0; t < t1; t += k->nc) {
            int nc = (int)min64(k->nc, t1 - t);
            mw->tile(j->in->n_in, w, mw->w_row, nr, ma->data + (size_t)t * ma->row_bytes,
                     ma->row_bytes, nc, mw->y + (size_t)t * mw->y_stride + (size_t)r, mw->y_stride);
        }
    }
}

static void mm_worker(void *ctx, int ith, int nth) {
    mm_job *j = ctx;
    if (j->pieces_per_row > 0) {
        quantize_phase(j, ith, nth);
        if (j->tp) rs_threadpool_barrier(j->tp);
    }
    for (;;) {
        int64_t u = atomic_fetch_add_explicit(&j->next_unit, 1, memory_order_relaxed);
        if (u >= j->n_units) break;
        run_unit(j, u);
    }
}

/* Finds or adds the companion activation buffer for a weight; returns its index. */
static int add_act(mm_job *j, rs_cpu_act act, uint8_t **scratch) {
    for (int a = 0; a < j->n_acts; a++)
        if (j->acts[a].act == act) return a;
    const rs_cpu_matmul_in *in = j->in;
    mm_act *ma = &j->acts[j->n_acts];
    ma->act = act;
    if (act == RS_CPU_ACT_F32) {
        ma->quant = NULL;
        ma->row_bytes = (size_t)in->x_stride * sizeof(float);
        ma->data = (uint8_t *)in->x; /* only read: F32 activations need no quantizing */
    } else {
        ma->quant = rs_cpu_quant_get(act, in->level);
        ma->row_bytes = act_row_bytes(act, in->n_in);
        ma->data = *scratch;
        *scratch += ma->row_bytes * (size_t)in->n_tok;
        j->pieces_per_row = (in->n_in + QUANT_PIECE - 1) / QUANT_PIECE;
    }
    return j->n_acts++;
}

/* Rows per work unit for one weight: decode chunks are sized in bytes for
 * streaming and load balance, gemm chunks in rows. */
static int64_t chunk_rows(const mm_weight *mw, int64_t n_tok, int nth) {
    int64_t mr = n_tok == 1 ? mw->k->mr1 : mw->k->mr, rows;
    if (n_tok == 1) {
        int64_t target = (int64_t)mw->row_bytes * mw->n_out / (nth * CHUNKS_PER_THREAD);
        target = min64(max64(target, GEMV_MIN_CHUNK), GEMV_MAX_CHUNK);
        rows = target / (int64_t)mw->row_bytes;
    } else {
        rows = min64(mw->n_out / (nth * CHUNKS_PER_THREAD), GEMM_MAX_ROWS);
    }
    return round_up(max64(rows, 1), mr);
}

rs_status rs_cpu_matmul_multi(rs_threadpool *tp, const rs_cpu_matmul_in *in,
                              const rs_cpu_matmul_w *ws, int n_w, rs_error *err) {
    rs_status st = check_args(in, ws, n_w, err);
    if (st != RS_OK) return st;
    mm_job j;
    memset(&j, 0, sizeof j);
    j.in = in;
    j.n_w = n_w;
    uint8_t *scratch = in->scratch; /* aligned up to SCRATCH_ALIGN (NULL when none is needed) */
    if (scratch) scratch += -(uintptr_t)scratch & (SCRATCH_ALIGN - 1);
    uint64_t traffic = 0;
    for (int i = 0; i < n_w; i++) {
        mm_weight *mw = &j.ws[i];
        int64_t block = 1;
        size_t bytes = 1;
        rs_cpu_act act = RS_CPU_ACT_F32;
        layout_info(&ws[i], &block, &bytes, &act); /* checked above */
        mw->packed = ws[i].layout == RS_CPU_LAYOUT_X16;
        /* AMX tiles are 16 tokens wide: decode takes the AVX-512 kernel they delegate to */
        rs_simd_level lv = in->n_tok == 1 && in->level == RS_SIMD_AMX ? RS_SIMD_AVX512 : in->level;
        mw->k = mw->packed ? rs_cpu_packed_kernel_get(ws[i].type, lv, NULL)
                           : rs_cpu_kernel_get(ws[i].type, lv);
        mw->tile =
            in->n_tok == 1 && in->hw_prefetch && mw->k->tile1_hw ? mw->k->tile1_hw : mw->k->tile;
        mw->w = ws[i].w;
        mw->row_bytes = (size_t)(in->n_in / block) * bytes;
        mw->w_row = mw->packed ? rs_cpu_pack_group_bytes(ws[i].type, in->n_in) : mw->row_bytes;
        mw->n_out = ws[i].n_out;
        mw->y = ws[i].y;
        mw->y_stride = (size_t)ws[i].y_stride;
        mw->act = add_act(&j, act, &scratch);
        traffic += (uint64_t)mw->row_bytes * (uint64_t)mw->n_out * (uint64_t)in->n_tok;
    }
    if (traffic < SERIAL_BYTES) tp = NULL;
    j.tp = tp;
    int nth = tp ? rs_threadpool_size(tp) : 1;
    j.tok_block = in->n_tok == 1 ? 1 : TOKEN_BLOCK;
    j.n_tok_blocks = (in->n_tok + j.tok_block - 1) / j.tok_block;
    for (int i = 0; i < n_w; i++) {
        mm_weight *mw = &j.ws[i];
        mw->chunk = chunk_rows(mw, in->n_tok, nth);
        mw->n_chunks = (mw->n_out + mw->chunk - 1) / mw->chunk;
        mw->first = j.units_per_tb;
        j.units_per_tb += mw->n_chunks;
    }
    j.n_units = j.units_per_tb * j.n_tok_blocks;
    atomic_init(&j.next_unit, 0);
    if (tp)
        rs_threadpool_run(tp, mm_worker, &j);
    else
        mm_worker(&j, 0, 1);
    return RS_OK;
}

rs_status rs_cpu_matmul(rs_threadpool *tp, const rs_cpu_matmul_in *in, const rs_cpu_matmul_w *w,
                        rs_error *err) {
    return rs_cpu_matmul_multi(tp, in, w, 1, err);
}

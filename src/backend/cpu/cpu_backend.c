/* cpu_backend.c — the backend interface on the CPU: a thread pool, the quantized
 * matmul kernels (matmul.h), and the small per-token ops.
 *
 * Memory is plain host memory. Weights stay in the file mapping, except Q4_0,
 * IQ4_NL, Q8_0, Q4_K/Q5_K/Q6_K and IQ4_XS matrices where the packed x16 layout
 * pays (packed.h): those are packed at load into an anonymous huge-page copy,
 * and the mapping's pages of the tensor are dropped, so the copy replaces the
 * file pages in memory rather than adding to them (RUSTY_CPU_PACK=0 keeps every
 * weight in the mapping). The KV cache keeps each KV head's positions contiguous
 * ([layer][head][pos][row]) so attention streams it linearly; a row is
 * head_dim f32 or f16 values, or ceil(head_dim / 32) GGUF Q8_0 or Q4_0 blocks (the
 * last one zero-padded). The fused ops of the interface are composed from the
 * plain ones here.
 *
 * RUSTY_CPU_PROFILE=1 times every op (wall time on the calling thread, which
 * waits for the pool) and prints a per-op table to stderr when the backend is
 * destroyed: batches (n > 1) and single tokens separately. */
#include "backend/cpu/cpu_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "backend/cpu/attention.h"
#include "backend/cpu/ew.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/membw.h"
#include "backend/cpu/packed.h"
#include "backend/cpu/threadpool.h"
#include "core/arena.h"
#include "core/cpu.h"
#include "dtype/blocks.h"
#include "dtype/fp16.h"

/* Per-op time accounting (RUSTY_CPU_PROFILE). */
enum { P_EMBED, P_NORM, P_MATMUL, P_ROPE, P_ATTN, P_SWIGLU, P_ADD, P_OPS };
enum { P_SHAPES = 8 }; /* matmul shapes told apart: (count, n_in, n_out) */
typedef struct {
    double ms[2][P_OPS]; /* [batch?][op] */
    long calls[2][P_OPS];
    struct {
        int count;
        int64_t n_in, n_out;
        double ms[2];
    } shape[P_SHAPES];
    int n_shapes;
    int batch; /* the last op with a token count had n > 1 */
} cpu_profile;

/* Memory for packed weights: 2 MiB-aligned anonymous slabs backed by
 * transparent huge pages, handed out in order. Weights share slabs so that
 * small matrices do not each round up to a huge page; slabs live until the
 * backend is destroyed. */
typedef struct pack_slab {
    struct pack_slab *next;
    uint8_t *base;
    size_t size, used;
} pack_slab;

typedef struct cpu_backend {
    rs_backend base;
    pack_slab *slabs; /* newest first */
    rs_threadpool *tp;
    int n_threads;
    rs_simd_level level;
    rs_cpu_ew ew;     /* element-wise kernels for the level */
    bool pack;        /* pack Q4_0 / IQ4_NL / Q8_0 / K-quant matrices at load where it pays */
    bool hw_prefetch; /* decode streams left to the hardware prefetchers (matmul.h) */
    void *scratch;    /* quantized activations for matmul */
    size_t scratch_size;
    float *tmp; /* matmul_residual's product before the add */
    size_t tmp_size;
    rs_status status; /* first failure since the last sync */
    rs_error err;
    cpu_profile *prof; /* NULL unless RUSTY_CPU_PROFILE is set */
    /* cos and sin of the rotary angles of the current forward's positions,
     * [token][cos half | sin half]: computed at layer 0, reused by the others */
    float *rope_tab;
    size_t rope_cap; /* floats */
    struct {
        const int32_t *pos;
        const rs_rope *rope;
        int n, first, last;
    } rope_key;
} cpu_backend;

struct rs_kv {
    rs_kv_desc d;
    size_t row;           /* bytes per cached head row */
    unsigned char *k, *v; /* [layer][head][pos][head_dim] */
    float *scores;        /* [n_threads][n_ctx] attention scratch */
    rs_attn_head_fn head; /* attention kernel for this cache type */
};

static cpu_backend *cpu(rs_backend *b) {
    return (cpu_backend *)b;
}

static void record(cpu_backend *c, rs_status st, const rs_error *e) {
    if (st == RS_OK || c->status != RS_OK) return;
    c->status = st;
    c->err = *e;
}

/* ---- profiling ----------------------------------------------------------------- */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static double prof_start(const cpu_backend *c) {
    return c->prof ? now_ms() : 0;
}

/* n: tokens of the op, or 0 for the element-wise ops (which count as part of
 * whatever the last token op was) */
static void prof_end(cpu_backend *c, int op, int n, double t0) {
    if (!c->prof) return;
    double dt = now_ms() - t0;
    if (n > 0) c->prof->batch = n > 1;
    c->prof->ms[c->prof->batch][op] += dt;
    c->prof->calls[c->prof->batch][op]++;
}

static void prof_matmul(cpu_backend *c, int count, int64_t n_in, int64_t n_out, int n, double t0) {
    if (!c->prof) return;
    cpu_profile *p = c->prof;
    double dt = now_ms() - t0;
    for (int i = 0; i < p->n_shapes; i++)
        if (p->shape[i].count == count && p->shape[i].n_in == n_in && p->shape[i].n_out == n_out) {
            p->shape[i].ms[n > 1] += dt;
            return;
        }
    if (p->n_shapes == P_SHAPES) return;
    p->shape[p->n_shapes].count = count;
    p->shape[p->n_shapes].n_in = n_in;
    p->shape[p->n_shapes].n_out = n_out;
    p->shape[p->n_shapes].ms[0] = p->shape[p->n_shapes].ms[1] = 0;
    p->shape[p->n_shapes++].ms[n > 1] = dt;
}

static void prof_print(const cpu_profile *p) {
    static const char *names[P_OPS] = {"embed",     "rmsnorm", "matmul", "rope+store",
                                       "attention", "swiglu",  "add"};
    for (int b = 1; b >= 0; b--) {
        double total = 0;
        for (int i = 0; i < P_OPS; i++) total += p->ms[b][i];
        if (total == 0) continue;
        fprintf(stderr, "rusty cpu profile, %s: %.1f ms in ops\n",
                b ? "batches (n > 1)" : "single tokens", total);
        for (int i = 0; i < P_OPS; i++)
            if (p->calls[b][i])
                fprintf(stderr, "  %-12s %8ld calls %10.1f ms %5.1f%%\n", names[i], p->calls[b][i],
                        p->ms[b][i], 100 * p->ms[b][i] / total);
        for (int i = 0; i < p->n_shapes; i++)
            if (p->shape[i].ms[b] > 0)
                fprintf(stderr, "    matmul x%d %6lld -> %6lld %10.1f ms %5.1f%%\n",
                        p->shape[i].count, (long long)p->shape[i].n_in,
                        (long long)p->shape[i].n_out, p->shape[i].ms[b],
                        100 * p->shape[i].ms[b] / total);
    }
}

/* ---- data-parallel helper ------------------------------------------------------ */

typedef void (*range_fn)(void *ctx, int64_t begin, int64_t end, int ith);

typedef struct range_job {
    range_fn fn;
    void *ctx;
    int64_t n;
} range_job;

static void range_worker(void *p, int ith, int nth) {
    range_job *j = p;
    int64_t begin = j->n * ith / nth, end = j->n * (ith + 1) / nth;
    if (begin < end) j->fn(j->ctx, begin, end, ith);
}

/* Runs fn over [0, n) split across the pool; small n runs on the caller. */
static void parallel(cpu_backend *c, int64_t n, int64_t min_per_thread, range_fn fn, void *ctx) {
    if (c->n_threads == 1 || n < 2 * min_per_thread) {
        fn(ctx, 0, n, 0);
        return;
    }
    range_job j = {fn, ctx, n};
    rs_threadpool_run(c->tp, range_worker, &j);
}

/* ---- memory -------------------------------------------------------------------- */

static rs_status cpu_alloc(rs_backend *b, size_t bytes, void **out, rs_error *err) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        return rs_error_set(err, RS_ERR_NOMEM, "cannot allocate %zu bytes of host memory", bytes);
    *out = p;
    return RS_OK;
}

static void cpu_release(rs_backend *b, void *p) {
    free(p);
}

static rs_status cpu_copy(rs_backend *b, void *dst, const void *src, size_t n, rs_error *err) {
    if (n) memmove(dst, src, n);
    return RS_OK;
}

static rs_status cpu_sync(rs_backend *b, rs_error *err) {
    cpu_backend *c = cpu(b);
    rs_status st = c->status;
    if (st && err) *err = c->err;
    c->status = RS_OK;
    return st;
}

/* ---- weights and caches ----------------------------------------------------------- */

enum { HUGE_PAGE = 2 << 20, SLAB_BYTES = 64 << 20, PACK_ALIGN = 64 };

/* A 2 MiB-aligned anonymous mapping of `bytes` (a multiple of HUGE_PAGE)
 * backed by transparent huge pages where the kernel allows; NULL on failure. */
static void *huge_alloc(size_t bytes) {
    uint8_t *raw =
        mmap(NULL, bytes + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    uint8_t *p = raw + (-(uintptr_t)raw & (HUGE_PAGE - 1)); /* aligned up */
    if (p > raw) munmap(raw, (size_t)(p - raw));
    if (p + bytes < raw + bytes + HUGE_PAGE)
        munmap(p + bytes, (size_t)(raw + bytes + HUGE_PAGE - (p + bytes)));
    madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

/* `bytes` of packed-weight memory, 64-byte aligned, from the newest slab or
 * a new one; NULL when out of memory. */
static void *slab_alloc(cpu_backend *c, size_t bytes) {
    bytes = (bytes + PACK_ALIGN - 1) / PACK_ALIGN * PACK_ALIGN;
    pack_slab *s = c->slabs;
    if (!s || s->size - s->used < bytes) {
        if (bytes > SIZE_MAX / 2) return NULL;
        size_t size = bytes > SLAB_BYTES ? (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE
                                         : (size_t)SLAB_BYTES;
        s = malloc(sizeof *s);
        if (!s) return NULL;
        s->base = huge_alloc(size);
        if (!s->base) {
            free(s);
            return NULL;
        }
        s->size = size;
        s->used = 0;
        s->next = c->slabs;
        c->slabs = s;
    }
    void *p = s->base + s->used;
    s->used += bytes;
    return p;
}

static void slabs_free(cpu_backend *c) {
    while (c->slabs) {
        pack_slab *s = c->slabs;
        c->slabs = s->next;
        munmap(s->base, s->size);
        free(s);
    }
}

/* True when [p, p + n) lies in one file-backed mapping of this process, whose
 * pages can be dropped and will read back from the file if touched again
 * (dropping pages of anonymous memory would zero them). */
static bool file_backed(const void *p, size_t n) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return false;
    char line[512];
    bool yes = false;
    uintptr_t a = (uintptr_t)p;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi, inode;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s %*s %*s %lu", &lo, &hi, perms, &inode) != 4) continue;
        if (a >= lo && a < hi) {
            yes = inode != 0 && a + n <= hi;
            break;
        }
    }
    fclose(f);
    return yes;
}

/* Drops the file pages wholly inside [p, p + n) from this process. */
static void drop_file_pages(const void *p, size_t n) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uint8_t *lo = (const uint8_t *)p + (-(uintptr_t)p & (page - 1)); /* aligned up */
    const uint8_t *hi = (const uint8_t *)p + n;
    hi -= (uintptr_t)hi & (page - 1); /* aligned down */
    /* the mapping is read-only and private: dropping its pages writes nothing */
    if (hi > lo && file_backed(p, n)) madvise((void *)lo, (size_t)(hi - lo), MADV_DONTNEED);
}

typedef struct pack_ctx {
    const rs_weight *w;
    void *dst;
} pack_ctx;

static void pack_range(void *p, int64_t b, int64_t e, int ith) {
    pack_ctx *c = p;
    rs_cpu_pack_groups(c->w->type, c->w->host, c->w->n_out, c->w->n_in, c->dst, b, e);
}

/* Packs a Q4_0 / IQ4_NL / Q8_0 matrix into the x16 layout (w->extra = w->data = the
 * copy). Falls back to the mapping when memory for the copy is short. */
static void pack_weight(cpu_backend *c, rs_weight *w) {
    void *dst = slab_alloc(c, rs_cpu_pack_size(w->type, w->n_out, w->n_in));
    if (!dst) return;
    pack_ctx pc = {w, dst};
    int64_t groups = (w->n_out + RS_CPU_PACK_ROWS - 1) / RS_CPU_PACK_ROWS;
    parallel(c, groups, 4, pack_range, &pc);
    drop_file_pages(w->host, w->nbytes);
    w->data = dst;
    w->extra = dst;
}

static rs_status cpu_weight_load(rs_backend *b, rs_weight *w, rs_error *err) {
    cpu_backend *c = cpu(b);
    bool vector = w->n_out == 1;
    if (vector ? w->type != RS_DTYPE_F32 : !rs_cpu_matmul_supports(w->type))
        return rs_error_set(err, RS_ERR_UNSUPPORTED, "tensor '%s': type %s has no CPU kernel",
                            w->name, rs_dtype_name(w->type));
    w->data = (void *)w->host;
    w->extra = NULL;
    w->backend = b;
    if (!vector && c->pack && rs_cpu_matmul_pack_useful(w->type, c->level) &&
        rs_cpu_pack_size(w->type, w->n_out, w->n_in) > 0)
        pack_weight(c, w);
    return RS_OK;
}

/* A packed copy's memory goes back with its slab when the backend is destroyed. */
static void cpu_weight_unload(rs_backend *b, rs_weight *w) {
    w->extra = NULL;
    w->data = NULL;
    w->backend = NULL;
}

static void cpu_kv_destroy(rs_backend *b, rs_kv *kv) {
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    free(kv->scores);
    free(kv);
}

static rs_status cpu_kv_create(rs_backend *b, const rs_kv_desc *d, rs_kv **out, rs_error *err) {
    cpu_backend *c = cpu(b);
    if (d->type != RS_KV_F32 && d->type != RS_KV_F16 && d->type != RS_KV_Q8_0 &&
        d->type != RS_KV_Q4_0)
        return rs_error_set(err, RS_ERR_ARG, "unknown KV cache type %d", (int)d->type);
    if (d->head_dim <= 0 || d->head_dim > RS_MAX_HEAD_DIM)
        return rs_error_set(err, RS_ERR_ARG, "KV cache head_dim %d out of range", d->head_dim);
    rs_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    kv->d = *d;
    kv->row = d->type == RS_KV_Q8_0   ? (size_t)(d->head_dim + 31) / 32 * sizeof(block_q8_0)
              : d->type == RS_KV_Q4_0 ? (size_t)(d->head_dim + 31) / 32 * sizeof(block_q4_0)
              : d->type == RS_KV_F32  ? (size_t)d->head_dim * 4
                                      : (size_t)d->head_dim * 2;
    size_t rows = (size_t)d->n_layer * d->n_head_kv * d->n_ctx;
    kv->k = rs_malloc_array(rows, kv->row);
    kv->v = rs_malloc_array(rows, kv->row);
    kv->scores = rs_malloc_array((size_t)c->n_threads * d->n_ctx, sizeof(float));
    kv->head = rs_attn_head_select(d->type, c->level);
    if (!kv->k || !kv->v || !kv->scores) {
        double mib = 2.0 * rows * kv->row / (1 << 20);
        cpu_kv_destroy(b, kv);
        return rs_error_set(err, RS_ERR_NOMEM, "cannot allocate a KV cache of %.1f MiB", mib);
    }
    *out = kv;
    return RS_OK;
}

/* Start of the cached rows of (layer, kv head). */
static size_t kv_offset(const rs_kv *kv, int layer, int head) {
    return (((size_t)layer * kv->d.n_head_kv + head) * kv->d.n_ctx) * kv->row;
}

/* ---- compute ------------------------------------------------------------------------- */

typedef struct embed_ctx {
    const rs_weight *table;
    const int32_t *ids;
    float *out;
    size_t row_bytes;
} embed_ctx;

static void embed_range(void *p, int64_t b, int64_t e, int ith) {
    embed_ctx *c = p;
    const rs_dtype_traits *tr = rs_dtype_get(c->table->type);
    for (int64_t t = b; t < e; t++)
        tr->to_f32((const unsigned char *)c->table->host + (size_t)c->ids[t] * c->row_bytes,
                   c->out + t * c->table->n_in, c->table->n_in);
}

static void cpu_embed(rs_backend *b, const rs_weight *table, const int32_t *ids, int n,
                      float *out) {
    double t0 = prof_start(cpu(b));
    embed_ctx c = {table, ids, out, 0};
    rs_dtype_row_size(table->type, table->n_in, &c.row_bytes);
    parallel(cpu(b), n, 16, embed_range, &c);
    prof_end(cpu(b), P_EMBED, n, t0);
}

typedef struct norm_ctx {
    float *x;
    const float *y; /* residual to add first, or NULL */
    const float *w;
    float eps;
    int dim;
    float *out;
    rs_cpu_rmsnorm_fn fn;
} norm_ctx;

static void norm_range(void *p, int64_t b, int64_t e, int ith) {
    norm_ctx *c = p;
    for (int64_t t = b; t < e; t++)
        c->fn(c->x + t * c->dim, c->y ? c->y + t * c->dim : NULL, c->w, c->eps, c->dim,
              c->out + t * c->dim);
}

static void cpu_rmsnorm(rs_backend *b, const float *x, const rs_weight *w, float eps, int n,
                        float *out) {
    double t0 = prof_start(cpu(b));
    norm_ctx c = {(float *)x, NULL, w->data, eps, (int)w->n_in, out, cpu(b)->ew.rmsnorm};
    parallel(cpu(b), n, 4, norm_range, &c);
    prof_end(cpu(b), P_NORM, n, t0);
}

static void cpu_add_rmsnorm(rs_backend *b, float *x, const float *y, const rs_weight *w, float eps,
                            int n, float *out) {
    double t0 = prof_start(cpu(b));
    norm_ctx c = {x, y, w->data, eps, (int)w->n_in, out, cpu(b)->ew.rmsnorm};
    parallel(cpu(b), n, 4, norm_range, &c);
    prof_end(cpu(b), P_NORM, n, t0);
}

static void cpu_matmul(rs_backend *b, const rs_matmul *mm, int count, const float *x, int n) {
    cpu_backend *c = cpu(b);
    double t0 = prof_start(c);
    rs_error err = {0};
    rs_cpu_matmul_w ws[RS_CPU_MATMUL_MAX_W];
    int64_t n_in = mm[0].w->n_in;
    for (int i = 0; i < count; i++)
        ws[i] = (rs_cpu_matmul_w){
            mm[i].w->type, mm[i].w->data,  mm[i].w->n_out,
            mm[i].y,       mm[i].w->n_out, mm[i].w->extra ? RS_CPU_LAYOUT_X16 : RS_CPU_LAYOUT_GGUF};
    size_t need = rs_cpu_matmul_scratch_size(ws, count, n_in, n);
    if (need > c->scratch_size) {
        free(c->scratch);
        c->scratch = malloc(need);
        c->scratch_size = c->scratch ? need : 0;
        if (!c->scratch) {
            rs_error_set(&err, RS_ERR_NOMEM, "cannot allocate %zu bytes of matmul scratch", need);
            record(c, RS_ERR_NOMEM, &err);
            return;
        }
    }
    rs_cpu_matmul_in in = {x, n_in, n_in, n, c->level, c->scratch, c->scratch_size, c->hw_prefetch};
    rs_status st = rs_cpu_matmul_multi(c->tp, &in, ws, count, &err);
    record(c, st, &err);
    for (int i = 0; i < count; i++) {
        if (!mm[i].bias) continue;
        const float *bias = mm[i].bias->data;
        int64_t n_out = mm[i].w->n_out;
        for (int t = 0; t < n; t++)
            for (int64_t o = 0; o < n_out; o++) mm[i].y[t * n_out + o] += bias[o];
    }
    prof_end(c, P_MATMUL, n, t0);
    prof_matmul(c, count, n_in, mm[0].w->n_out, n, t0);
}

typedef struct rope_ctx {
    float *q, *k;
    const float *v;
    const int32_t *pos;
    const rs_rope *rope;
    const rs_attn *at;
    rs_kv *kv;
    int layer;
    rs_cpu_to_f16_fn to_f16;
    float *tab; /* [n][2 * half] cos, sin */
} rope_ctx;

static void rotate(float *v, const rs_rope *r, const float *cs, const float *sn) {
    int half = r->n_rot / 2;
    for (int i = 0; i < half; i++) {
        int a = r->neox ? i : 2 * i, b = r->neox ? i + half : 2 * i + 1;
        float x0 = v[a], x1 = v[b];
        v[a] = x0 * cs[i] - x1 * sn[i];
        v[b] = x0 * sn[i] + x1 * cs[i];
    }
}

static void store_row(rs_kv *kv, unsigned char *base, int head, int pos, const float *src,
                      rs_cpu_to_f16_fn to_f16) {
    size_t off = kv_offset(kv, 0, head) + (size_t)pos * kv->row;
    if (kv->d.type == RS_KV_F32) {
        memcpy(base + off, src, (size_t)kv->d.head_dim * sizeof(float));
        return;
    }
    if (kv->d.type == RS_KV_Q8_0 || kv->d.type == RS_KV_Q4_0) {
        /* whole blocks: the tail of the last one is zero */
        float pad[RS_MAX_HEAD_DIM + 32] = {0};
        memcpy(pad, src, (size_t)kv->d.head_dim * sizeof(float));
        const rs_dtype type = kv->d.type == RS_KV_Q8_0 ? RS_DTYPE_Q8_0 : RS_DTYPE_Q4_0;
        rs_dtype_get(type)->from_f32(pad, base + off, (kv->d.head_dim + 31) / 32 * 32);
        return;
    }
    to_f16(src, (uint16_t *)(base + off), kv->d.head_dim);
}

/* The (cos, sin) rows of tokens [b, e). */
static void rope_table_range(void *p, int64_t b, int64_t e, int ith) {
    rope_ctx *c = p;
    int half = c->rope->n_rot / 2;
    for (int64_t t = b; t < e; t++) {
        float *cs = c->tab + (size_t)t * 2 * (size_t)half, *sn = cs + half;
        for (int i = 0; i < half; i++) {
            double theta = (double)c->pos[t] * c->rope->inv_freq[i];
            cs[i] = (float)(cos(theta) * c->rope->attn_factor);
            sn[i] = (float)(sin(theta) * c->rope->attn_factor);
        }
    }
}

/* Items [b, e) of the (token, head) range: per token first the query heads
 * (rotated), then the KV heads (k rotated, k and v stored). Heads rather than
 * tokens are the unit so that a single decode token spreads over the pool:
 * its q, k, v rows were written by every thread's matmul share. */
static void rope_range(void *p, int64_t b, int64_t e, int ith) {
    rope_ctx *c = p;
    const rs_attn *at = c->at;
    int hd = at->head_dim, half = c->rope->n_rot / 2, per_tok = at->n_head + at->n_head_kv;
    size_t layer_off = kv_offset(c->kv, c->layer, 0);
    for (int64_t item = b; item < e; item++) {
        int64_t t = item / per_tok;
        int h = (int)(item % per_tok);
        const float *cs = c->tab + (size_t)t * 2 * (size_t)half, *sn = cs + half;
        if (h < at->n_head) {
            rotate(c->q + (t * at->n_head + h) * hd, c->rope, cs, sn);
            continue;
        }
        h -= at->n_head;
        float *kh = c->k + (t * at->n_head_kv + h) * hd;
        rotate(kh, c->rope, cs, sn);
        store_row(c->kv, c->kv->k + layer_off, h, c->pos[t], kh, c->to_f16);
        store_row(c->kv, c->kv->v + layer_off, h, c->pos[t], c->v + (t * at->n_head_kv + h) * hd,
                  c->to_f16);
    }
}

static void cpu_rope_store(rs_backend *b, float *q, float *k, const float *v, const int32_t *pos,
                           int n, const rs_rope *rope, const rs_attn *at, rs_kv *kv, int layer) {
    cpu_backend *cb = cpu(b);
    double t0 = prof_start(cb);
    size_t need = (size_t)n * (size_t)(rope->n_rot / 2) * 2;
    if (need > cb->rope_cap) {
        float *tab = realloc(cb->rope_tab, (need ? need : 1) * sizeof(float));
        if (!tab) {
            rs_error err = {0};
            rs_error_set(&err, RS_ERR_NOMEM, "cannot allocate the rotary table");
            record(cb, RS_ERR_NOMEM, &err);
            return;
        }
        cb->rope_tab = tab;
        cb->rope_cap = need;
        cb->rope_key.rope = NULL; /* contents invalid */
    }
    bool fill = layer == 0 || cb->rope_key.pos != pos || cb->rope_key.rope != rope ||
                cb->rope_key.n != n || cb->rope_key.first != pos[0] ||
                cb->rope_key.last != pos[n - 1];
    rope_ctx c = {q, k, v, pos, rope, at, kv, layer, cb->ew.to_f16, cb->rope_tab};
    if (fill) {
        cb->rope_key.pos = pos;
        cb->rope_key.rope = rope;
        cb->rope_key.n = n;
        cb->rope_key.first = pos[0];
        cb->rope_key.last = pos[n - 1];
        parallel(cb, n, 16, rope_table_range, &c);
    }
    parallel(cb, (int64_t)n * (at->n_head + at->n_head_kv), 8, rope_range, &c);
    prof_end(cb, P_ROPE, n, t0);
}

typedef struct attn_ctx {
    const float *q;
    rs_kv *kv;
    int layer;
    const int32_t *pos;
    const rs_attn *at;
    float *out;
} attn_ctx;

static void attn_range(void *p, int64_t b, int64_t e, int ith) {
    attn_ctx *c = p;
    const rs_attn *at = c->at;
    int hd = at->head_dim, group = at->n_head / at->n_head_kv;
    float *scores = c->kv->scores + (size_t)ith * c->kv->d.n_ctx;
    for (int64_t item = b; item < e; item++) {
        int64_t t = item / at->n_head;
        int h = (int)(item % at->n_head);
        size_t off = kv_offset(c->kv, c->layer, h / group);
        c->kv->head(c->q + (t * at->n_head + h) * hd, c->kv->k + off, c->kv->v + off, c->pos[t] + 1,
                    hd, at->scale, scores, c->out + (t * at->n_head + h) * hd);
    }
}

static void cpu_attention(rs_backend *b, const float *q, rs_kv *kv, int layer, const int32_t *pos,
                          int n, const rs_attn *at, float *out) {
    double t0 = prof_start(cpu(b));
    attn_ctx c = {q, kv, layer, pos, at, out};
    parallel(cpu(b), (int64_t)n * at->n_head, 1, attn_range, &c);
    prof_end(cpu(b), P_ATTN, n, t0);
}

typedef struct ew_ctx {
    const float *a, *b;
    float *out;
    rs_cpu_swiglu_fn swiglu;
} ew_ctx;

static void swiglu_range(void *p, int64_t b, int64_t e, int ith) {
    ew_ctx *c = p;
    c->swiglu(c->a + b, c->b + b, c->out + b, e - b);
}

static void add_range(void *p, int64_t b, int64_t e, int ith) {
    ew_ctx *c = p;
    for (int64_t i = b; i < e; i++) c->out[i] = c->a[i] + c->b[i];
}

static void cpu_swiglu(rs_backend *b, const float *g, const float *u, int64_t n, float *out) {
    double t0 = prof_start(cpu(b));
    ew_ctx c = {g, u, out, cpu(b)->ew.swiglu};
    parallel(cpu(b), n, 4096, swiglu_range, &c);
    prof_end(cpu(b), P_SWIGLU, 0, t0);
}

static void cpu_add(rs_backend *b, float *x, const float *y, int64_t n) {
    double t0 = prof_start(cpu(b));
    ew_ctx c = {x, y, x, NULL};
    parallel(cpu(b), n, 16384, add_range, &c);
    prof_end(cpu(b), P_ADD, 0, t0);
}

static void cpu_matmul_residual(rs_backend *b, const rs_weight *w, const float *a, int n, float *x,
                                const rs_weight *norm, float eps, float *out) {
    cpu_backend *c = cpu(b);
    size_t need = (size_t)n * (size_t)w->n_out;
    if (need > c->tmp_size) {
        free(c->tmp);
        c->tmp = rs_malloc_array(need, sizeof(float));
        c->tmp_size = c->tmp ? need : 0;
        if (!c->tmp) {
            rs_error e = {0};
            rs_error_set(&e, RS_ERR_NOMEM, "cannot allocate %zu floats of matmul output", need);
            record(c, RS_ERR_NOMEM, &e);
            return;
        }
    }
    rs_matmul mm = {w, NULL, c->tmp};
    cpu_matmul(b, &mm, 1, a, n);
    if (norm)
        cpu_add_rmsnorm(b, x, c->tmp, norm, eps, n, out);
    else
        cpu_add(b, x, c->tmp, (int64_t)need);
}

static void cpu_matmul_swiglu(rs_backend *b, const rs_weight *gate, const rs_weight *up,
                              const float *x, int n, float *g, float *u) {
    rs_matmul mm[2] = {{gate, NULL, g}, {up, NULL, u}};
    cpu_matmul(b, mm, 2, x, n);
    cpu_swiglu(b, g, u, (int64_t)n * gate->n_out, g);
}

static void cpu_matmul_rope_store(rs_backend *b, const rs_matmul *qkv, const float *x, int n,
                                  const int32_t *pos, const rs_rope *rope, const rs_attn *at,
                                  rs_kv *kv, int layer) {
    cpu_matmul(b, qkv, 3, x, n);
    cpu_rope_store(b, qkv[0].y, qkv[1].y, qkv[2].y, pos, n, rope, at, kv, layer);
}

static rs_status cpu_bandwidth(rs_backend *b, double *gbps, rs_error *err) {
    cpu_backend *c = cpu(b);
    return rs_membw_measure(c->tp, c->level, 0, 3, gbps, err);
}

static void cpu_destroy(rs_backend *b) {
    cpu_backend *c = cpu(b);
    if (c->prof) prof_print(c->prof);
    free(c->prof);
    free(c->rope_tab);
    slabs_free(c);
    rs_threadpool_free(c->tp);
    free(c->scratch);
    free(c->tmp);
    free(c);
}

static const rs_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .upload = cpu_copy,
    .download = cpu_copy,
    .sync = cpu_sync,
    .weight_load = cpu_weight_load,
    .weight_unload = cpu_weight_unload,
    .kv_create = cpu_kv_create,
    .kv_destroy = cpu_kv_destroy,
    .embed = cpu_embed,
    .rmsnorm = cpu_rmsnorm,
    .add_rmsnorm = cpu_add_rmsnorm,
    .matmul = cpu_matmul,
    .rope_store = cpu_rope_store,
    .attention = cpu_attention,
    .swiglu = cpu_swiglu,
    .add = cpu_add,
    .matmul_residual = cpu_matmul_residual,
    .matmul_swiglu = cpu_matmul_swiglu,
    .matmul_rope_store = cpu_matmul_rope_store,
    .bandwidth = cpu_bandwidth,
};

rs_status rs_cpu_backend_create(rs_backend **out, int n_threads, rs_error *err) {
    *out = NULL;
    if (n_threads < 1 || n_threads > RS_THREADPOOL_MAX)
        return rs_error_set(err, RS_ERR_ARG, "thread count %d out of range [1, %d]", n_threads,
                            RS_THREADPOOL_MAX);
    cpu_backend *c = calloc(1, sizeof *c);
    if (!c) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    rs_status st = rs_threadpool_create(&c->tp, n_threads, err);
    if (st) {
        free(c);
        return st;
    }
    c->base.ops = &cpu_ops;
    c->base.is_host = true;
    c->n_threads = n_threads;
    c->level = rs_cpu_simd_level();
    c->ew = rs_cpu_ew_get(c->level);
    const char *pack = getenv("RUSTY_CPU_PACK");
    c->pack = !(pack && strcmp(pack, "0") == 0);
    /* Measured at the two ends only: 2 threads (dev VM) stream faster with
     * software prefetch, 16 (Xeon server) without; see docs/CPU.md. */
    const char *pf = getenv("RUSTY_CPU_PREFETCH");
    c->hw_prefetch = pf && *pf ? strcmp(pf, "0") == 0 : n_threads >= 8;
    const char *prof = getenv("RUSTY_CPU_PROFILE");
    if (prof && strcmp(prof, "0") != 0) c->prof = calloc(1, sizeof *c->prof);
    *out = &c->base;
    return RS_OK;
}

/* cuda_backend.cu — the backend interface on an NVIDIA GPU: device memory,
 * weight upload (streamed from the mapping through pinned staging buffers and
 * repacked into 16-byte-aligned arrays), the KV cache, error recording, CUDA
 * graphs and the op table. The kernels live in cuda_{matvec,gemm,ops,attn}.cu.
 *
 * Everything runs in order on one non-blocking stream. Ops never return
 * errors: the first CUDA failure is recorded and returned by sync(). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>

#include "backend/cuda/cuda_common.cuh"

extern "C" {
#include "backend/cuda/cuda_backend.h"
}

enum { PINNED_BYTES = 16 << 20 };

/* ---- errors -------------------------------------------------------------------------- */

bool cw_check(cuda_backend *c, cudaError_t e, const char *what) {
    if (e == cudaSuccess) return true;
    if (c->status == RS_OK) {
        c->status = e == cudaErrorMemoryAllocation ? RS_ERR_NOMEM : RS_ERR_DEVICE;
        rs_error_set(&c->err, c->status, "CUDA error in %s: %s (%s)", what, cudaGetErrorName(e),
                     cudaGetErrorString(e));
    }
    return false;
}

void cw_fail(cuda_backend *c, rs_status st, const char *fmt, ...) {
    if (c->status != RS_OK) return;
    char msg[RS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->status = st;
    rs_error_set(&c->err, st, "%s", msg);
}

/* cudaMalloc with an out-of-memory message that says how much was needed. */
static rs_status dev_malloc(cuda_backend *c, void **out, size_t bytes, const char *what,
                            rs_error *err) {
    *out = NULL;
    cudaError_t e = cudaMalloc(out, bytes ? bytes : 256);
    if (e == cudaSuccess) return RS_OK;
    cudaGetLastError(); /* allocation failures are not sticky: clear them */
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    if (e == cudaErrorMemoryAllocation)
        return rs_error_set(err, RS_ERR_NOMEM,
                            "CUDA out of memory allocating %s: needed %zu bytes (%.1f MiB), "
                            "%.1f MiB free of %.1f MiB",
                            what, bytes, bytes / 1048576.0, free_b / 1048576.0,
                            total_b / 1048576.0);
    return rs_error_set(err, RS_ERR_DEVICE, "cudaMalloc of %zu bytes for %s failed: %s", bytes,
                        what, cudaGetErrorString(e));
}

void *cw_scratch(cuda_backend *c, int slot, size_t bytes) {
    if (bytes <= c->scr_size[slot]) return c->scr[slot];
    /* grow with headroom so slowly growing requests do not reallocate each time */
    size_t want = std::max(bytes, c->scr_size[slot] + c->scr_size[slot] / 2);
    cw_chain_flush(c); /* a waiting launch may point at the old buffer */
    if (c->scr[slot]) {
        bool graphs = c->capturing;
        for (int i = 0; i < CW_MAX_GRAPHS; i++) graphs |= c->graphs[i].used;
        void **r = graphs ? (void **)realloc(c->retired, (c->n_retired + 1) * sizeof *r) : NULL;
        if (r) { /* a captured graph may point at it: keep it until destroy */
            c->retired = r;
            c->retired[c->n_retired++] = c->scr[slot];
        } else {
            cw_check(c, cudaStreamSynchronize(c->stream), "scratch resize");
            cudaFree(c->scr[slot]);
        }
    }
    c->scr[slot] = NULL;
    c->scr_size[slot] = 0;
    rs_error e = {};
    if (dev_malloc(c, &c->scr[slot], want, "scratch buffer", &e) != RS_OK) {
        if (c->status == RS_OK) {
            c->status = e.code;
            c->err = e;
        }
        return NULL;
    }
    c->scr_size[slot] = want;
    if (slot == CW_SCR_CNT || slot == CW_SCR_FZCNT || slot == CW_SCR_FSCNT ||
        slot == CW_SCR_CHAIN || slot == CW_SCR_PICK) {
        if (!c->capturing) {
            cw_check(c, cudaMemsetAsync(c->scr[slot], 0, want, c->stream), "memset");
        } else { /* on the captured stream the memset would join the graph and run at every
                  * replay: zero it now on a stream of its own */
            cudaStream_t z = NULL;
            if (cw_check(c, cudaStreamCreateWithFlags(&z, cudaStreamNonBlocking),
                         "memset stream")) {
                cw_check(c, cudaMemsetAsync(c->scr[slot], 0, want, z), "memset");
                cw_check(c, cudaStreamSynchronize(z), "memset");
                cudaStreamDestroy(z);
            }
        }
    }
    return c->scr[slot];
}

const cw_layout *cw_weight_layout(cuda_backend *c, const rs_weight *w) {
    if (!w || w->backend != &c->base || !w->extra) {
        cw_fail(c, RS_ERR_ARG, "tensor '%s' is not loaded on the CUDA backend",
                w && w->name ? w->name : "?");
        return NULL;
    }
    return (const cw_layout *)w->extra;
}

/* ---- memory ---------------------------------------------------------------------------- */

static rs_status cu_alloc(rs_backend *b, size_t bytes, void **out, rs_error *err) {
    return dev_malloc(cw(b), out, bytes, "buffers", err);
}

static void cu_release(rs_backend *b, void *p) {
    if (!p) return;
    cw_settle(cw(b)); /* a pending norm may still have to write into p */
    cudaStreamSynchronize(cw(b)->stream);
    cudaFree(p);
}

static rs_status cu_host_alloc(rs_backend *b, size_t bytes, void **out, rs_error *err) {
    (void)b;
    cudaError_t e = cudaMallocHost(out, bytes);
    if (e == cudaSuccess) return RS_OK;
    cudaGetLastError(); /* the caller falls back to pageable memory: not a sticky error */
    *out = NULL;
    return rs_error_set(err, RS_ERR_NOMEM, "page-locked host buffer of %zu bytes: %s", bytes,
                        cudaGetErrorString(e));
}

static void cu_host_free(rs_backend *b, void *p) {
    (void)b;
    if (p) cudaFreeHost(p); /* waits for the device: no copy can still be reading p */
}

static rs_status cu_upload(rs_backend *b, void *dst, const void *src, size_t n, rs_error *err) {
    cuda_backend *c = cw(b);
    cw_settle(c);
    cw_untag(c);
    c->rope_tab.pos = NULL; /* the upload may overwrite positions */
    if (!n) return RS_OK;
    /* pageable source: the call returns once src has been staged; page-locked
     * (cu_host_alloc): the copy reads src when it runs. Either way it stays
     * ordered with the kernels. */
    cudaError_t e = cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, c->stream);
    if (e != cudaSuccess)
        return rs_error_set(err, RS_ERR_DEVICE, "upload of %zu bytes failed: %s", n,
                            cudaGetErrorString(e));
    return RS_OK;
}

static rs_status cu_download(rs_backend *b, void *dst, const void *src, size_t n, rs_error *err) {
    cuda_backend *c = cw(b);
    cw_settle(c);
    if (!n) return RS_OK;
    cudaError_t e = cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, c->stream);
    /* recorded into a graph, the copy runs at each replay: nothing to wait for now */
    if (e == cudaSuccess && !c->capturing) e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess) {
        cw_check(c, e, "download");
        return rs_error_set(err, RS_ERR_DEVICE, "download of %zu bytes failed: %s", n,
                            cudaGetErrorString(e));
    }
    return RS_OK;
}

static rs_status cu_sync(rs_backend *b, rs_error *err) {
    cuda_backend *c = cw(b);
    cw_settle(c);
    cw_check(c, cudaStreamSynchronize(c->stream), "stream synchronize");
    cw_prepare_sync(c);
    rs_status st = c->status;
    if (st && err) *err = c->err;
    c->status = RS_OK;
    return st;
}

/* ---- weights ------------------------------------------------------------------------------ */

static bool type_supported(int t) {
    switch (t) {
    case RS_DTYPE_Q2_K:
    case RS_DTYPE_Q3_K:
    case RS_DTYPE_F32:
    case RS_DTYPE_F16:
    case RS_DTYPE_BF16:
    case RS_DTYPE_Q8_0:
    case RS_DTYPE_Q4_0:
    case RS_DTYPE_Q4_1:
    case RS_DTYPE_Q5_0:
    case RS_DTYPE_Q5_1:
    case RS_DTYPE_Q4_K:
    case RS_DTYPE_Q5_K:
    case RS_DTYPE_Q6_K:
    case RS_DTYPE_IQ4_NL:
    case RS_DTYPE_IQ4_XS:
        return true;
    default:
        return false;
    }
}

/* Bytes per block of the split arrays (qs, aux, dm); 0 for types kept as is. */
static void split_sizes(int t, size_t *qs, size_t *aux, size_t *dm) {
    *qs = *aux = *dm = 0;
    switch (t) {
    case RS_DTYPE_Q4_0:
    case RS_DTYPE_IQ4_NL:
        *qs = 16;
        *dm = 2;
        break;
    case RS_DTYPE_Q4_1:
        *qs = 16;
        *dm = 4;
        break;
    case RS_DTYPE_Q5_0:
        *qs = 16;
        *aux = 4;
        *dm = 2;
        break;
    case RS_DTYPE_Q5_1:
        *qs = 16;
        *aux = 4;
        *dm = 4;
        break;
    case RS_DTYPE_Q8_0:
        *qs = 32;
        *dm = 2;
        break;
    case RS_DTYPE_Q6_K:
        *qs = 208;
        *dm = 2;
        break;
    case RS_DTYPE_Q2_K:
        *qs = 64;
        *aux = 16;
        *dm = 4;
        break;
    case RS_DTYPE_Q3_K:
        *qs = 64;
        *aux = 48;
        *dm = 2;
        break;
    case RS_DTYPE_Q4_K:
        *qs = 128;
        *aux = 16;
        *dm = 4;
        break;
    case RS_DTYPE_Q5_K:
        *qs = 128;
        *aux = 48;
        *dm = 4;
        break;
    case RS_DTYPE_IQ4_XS:
        *qs = 128;
        *aux = 8;
        *dm = 2;
        break;
    default:
        break;
    }
}

static size_t align256(size_t n) {
    return (n + 255) / 256 * 256;
}

static rs_status ensure_pinned(cuda_backend *c, size_t bytes, rs_error *err) {
    if (bytes <= c->pinned_size) return RS_OK;
    for (int i = 0; i < 2; i++) {
        if (c->pinned[i]) {
            cudaEventSynchronize(c->pinned_done[i]);
            cudaFreeHost(c->pinned[i]);
            c->pinned[i] = NULL;
        }
    }
    c->pinned_size = 0;
    for (int i = 0; i < 2; i++) {
        cudaError_t e = cudaHostAlloc(&c->pinned[i], bytes, cudaHostAllocDefault);
        if (e != cudaSuccess) {
            cudaGetLastError();
            return rs_error_set(err, RS_ERR_NOMEM,
                                "cannot allocate %zu bytes of pinned staging memory: %s", bytes,
                                cudaGetErrorString(e));
        }
    }
    c->pinned_size = bytes;
    return RS_OK;
}

/* Streams rows of raw GGUF bytes to the device: from host memory through two
 * pinned buffers (copying one while the other is in flight), or from device
 * memory directly. Split layouts go through a device staging area and the
 * repack kernel; the rest land in place. */
static rs_status upload_rows(cuda_backend *c, const cw_layout *L, uint8_t *dst, size_t row_bytes,
                             const void *host, const void *dev_raw, rs_error *err) {
    size_t qs_b, aux_b, dm_b;
    split_sizes(L->type, &qs_b, &aux_b, &dm_b);
    const bool repack = qs_b != 0;
    size_t chunk_rows = std::max<size_t>(1, PINNED_BYTES / row_bytes);
    rs_status st = RS_OK;
    if (host && (st = ensure_pinned(c, std::max<size_t>(PINNED_BYTES, row_bytes), err))) return st;
    chunk_rows = std::max<size_t>(1, std::max(c->pinned_size, (size_t)PINNED_BYTES) / row_bytes);
    uint8_t *stage = NULL;
    if (repack && host) {
        stage = (uint8_t *)cw_scratch(c, CW_SCR_WDQ, 2 * chunk_rows * row_bytes);
        if (!stage) return rs_error_set(err, c->err.code, "%s", c->err.msg);
    }
    const int64_t rows = L->n_out;
    for (int64_t r0 = 0, i = 0; r0 < rows; r0 += (int64_t)chunk_rows, i++) {
        const int64_t nr = std::min<int64_t>((int64_t)chunk_rows, rows - r0);
        const size_t bytes = (size_t)nr * row_bytes, off = (size_t)r0 * row_bytes;
        const uint8_t *src_dev;
        if (host) {
            const int k = (int)(i & 1);
            cw_check(c, cudaEventSynchronize(c->pinned_done[k]), "weight upload");
            memcpy(c->pinned[k], (const uint8_t *)host + off, bytes);
            uint8_t *to = repack ? stage + (size_t)k * chunk_rows * row_bytes : dst + off;
            cw_check(c, cudaMemcpyAsync(to, c->pinned[k], bytes, cudaMemcpyHostToDevice, c->stream),
                     "weight upload");
            cw_check(c, cudaEventRecord(c->pinned_done[k], c->stream), "weight upload");
            src_dev = to;
        } else {
            src_dev = (const uint8_t *)dev_raw + off;
            if (!repack)
                cw_check(
                    c,
                    cudaMemcpyAsync(dst + off, src_dev, bytes, cudaMemcpyDeviceToDevice, c->stream),
                    "weight copy");
        }
        if (repack) cw_repack(c, L->type, src_dev, nr, r0, L);
    }
    cw_check(c, cudaStreamSynchronize(c->stream), "weight upload");
    if (c->status) {
        rs_status s = c->status;
        if (err) *err = c->err;
        c->status = RS_OK;
        return s;
    }
    return RS_OK;
}

/* A vector (norm weight, bias) is kept as F32 whatever its file type. */
static rs_status load_vector(cuda_backend *c, rs_weight *w, cw_layout *L, const void *dev_raw,
                             rs_error *err) {
    const int64_t n = w->n_in;
    L->type = RS_DTYPE_F32;
    L->nb = n;
    void *d = NULL;
    rs_status st = dev_malloc(c, &d, (size_t)n * 4, w->name ? w->name : "vector", err);
    if (st) return st;
    cudaError_t e;
    if (dev_raw) {
        if (w->type != RS_DTYPE_F32) {
            cudaFree(d);
            return rs_error_set(err, RS_ERR_UNSUPPORTED, "tensor '%s': device vectors must be F32",
                                w->name);
        }
        e = cudaMemcpy(d, dev_raw, (size_t)n * 4, cudaMemcpyDeviceToDevice);
    } else if (w->type == RS_DTYPE_F32) {
        e = cudaMemcpy(d, w->host, (size_t)n * 4, cudaMemcpyHostToDevice);
    } else {
        float *tmp = (float *)malloc((size_t)n * 4);
        if (!tmp) {
            cudaFree(d);
            return rs_error_set(err, RS_ERR_NOMEM, "out of memory converting tensor '%s'", w->name);
        }
        rs_dtype_get(w->type)->to_f32(w->host, tmp, n);
        e = cudaMemcpy(d, tmp, (size_t)n * 4, cudaMemcpyHostToDevice);
        free(tmp);
    }
    if (e != cudaSuccess) {
        cudaFree(d);
        return rs_error_set(err, RS_ERR_DEVICE, "upload of tensor '%s' failed: %s", w->name,
                            cudaGetErrorString(e));
    }
    L->qs = (const uint8_t *)d;
    return RS_OK;
}

static rs_status weight_load_impl(cuda_backend *c, rs_weight *w, const void *dev_raw,
                                  rs_error *err) {
    const char *name = w->name ? w->name : "?";
    if (!type_supported(w->type))
        return rs_error_set(err, RS_ERR_UNSUPPORTED, "tensor '%s': type %s has no CUDA kernel",
                            name, rs_dtype_name(w->type));
    size_t row_bytes = 0;
    if (w->n_in <= 0 || w->n_out <= 0 || !rs_dtype_row_size(w->type, w->n_in, &row_bytes) ||
        (uint64_t)w->n_out > SIZE_MAX / row_bytes || w->nbytes < row_bytes * (size_t)w->n_out)
        return rs_error_set(
            err, RS_ERR_FORMAT, "tensor '%s': shape %lld x %lld does not match %zu bytes of %s",
            name, (long long)w->n_in, (long long)w->n_out, w->nbytes, rs_dtype_name(w->type));
    if (!dev_raw && !w->host) return rs_error_set(err, RS_ERR_ARG, "tensor '%s' has no data", name);
    cw_layout *L = (cw_layout *)calloc(1, sizeof *L);
    if (!L) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    L->type = w->type;
    L->n_in = w->n_in;
    L->n_out = w->n_out;
    rs_status st;
    if (w->n_out == 1) {
        st = load_vector(c, w, L, dev_raw, err);
    } else {
        const rs_dtype_traits *tr = rs_dtype_get(w->type);
        L->nb = w->n_in / tr->block_size;
        const size_t nblk = (size_t)L->nb * (size_t)w->n_out;
        size_t qs_b, aux_b, dm_b;
        split_sizes(w->type, &qs_b, &aux_b, &dm_b);
        size_t total = qs_b ? align256(nblk * qs_b) + align256(nblk * aux_b) + align256(nblk * dm_b)
                            : row_bytes * (size_t)w->n_out;
        void *base = NULL;
        st = dev_malloc(c, &base, total, name, err);
        if (!st) {
            uint8_t *p = (uint8_t *)base;
            L->qs = p;
            if (qs_b) {
                L->aux = p + align256(nblk * qs_b);
                L->dm = (const uint8_t *)L->aux + align256(nblk * aux_b);
            }
            st = upload_rows(c, L, p, row_bytes, dev_raw ? NULL : w->host, dev_raw, err);
            if (st) cudaFree(base);
        }
        if (!st && w->n_in > c->max_n_in) {
            c->max_n_in = w->n_in;
            /* size the int8 activations now, never during a graph capture */
            const size_t q8b = cw_q8_bytes((int64_t)CW_MV_MAX_TOK * w->n_in);
            if (!cw_scratch(c, CW_SCR_Q8, q8b) || !cw_scratch(c, CW_SCR_Q8B, q8b)) {
                st = c->status;
                if (err) *err = c->err;
                c->status = RS_OK;
            }
        }
    }
    if (st) {
        free(L);
        return rs_error_prefix(err, "CUDA");
    }
    w->data = (void *)L->qs;
    w->extra = L;
    w->backend = &c->base;
    if (L->n_out > 1 && rs_dtype_get(L->type)->is_quantized) c->n_quant++;
    return RS_OK;
}

static rs_status cu_weight_load(rs_backend *b, rs_weight *w, rs_error *err) {
    return weight_load_impl(cw(b), w, NULL, err);
}

static void cu_weight_unload(rs_backend *b, rs_weight *w) {
    cuda_backend *c = cw(b);
    if (w->backend != b) return;
    cudaStreamSynchronize(c->stream);
    const cw_layout *L = (const cw_layout *)w->extra;
    if (L) cw_prepare_forget(c, L);
    if (L && L->n_out > 1 && rs_dtype_get(L->type)->is_quantized) c->n_quant--;
    cudaFree(w->data);
    free(w->extra);
    w->data = NULL;
    w->extra = NULL;
    w->backend = NULL;
}

/* ---- KV cache ------------------------------------------------------------------------------ */

static void cu_kv_destroy(rs_backend *b, rs_kv *kv) {
    if (!kv) return;
    cudaStreamSynchronize(cw(b)->stream);
    cudaFree(kv->k);
    cudaFree(kv->v);
    cudaFree(kv->ks);
    cudaFree(kv->vs);
    free(kv);
}

static rs_status cu_kv_create(rs_backend *b, const rs_kv_desc *d, rs_kv **out, rs_error *err) {
    cuda_backend *c = cw(b);
    *out = NULL;
    if (d->n_layer <= 0 || d->n_ctx <= 0 || d->n_head_kv <= 0 || d->head_dim <= 0 ||
        d->head_dim > RS_MAX_HEAD_DIM ||
        (d->type != RS_KV_F32 && d->type != RS_KV_F16 && d->type != RS_KV_Q8_0 &&
         d->type != RS_KV_Q4_0))
        return rs_error_set(err, RS_ERR_ARG,
                            "bad KV cache shape: %d layers, %d positions, %d heads of %d",
                            d->n_layer, d->n_ctx, d->n_head_kv, d->head_dim);
    if (d->type == RS_KV_Q4_0 && d->head_dim % 32)
        return rs_error_set(err, RS_ERR_UNSUPPORTED,
                            "a Q4_0 KV cache on the GPU needs head_dim a multiple of 32 (this "
                            "model's is %d): use -ctk q8_0 or f16",
                            d->head_dim);
    const bool quant = d->type == RS_KV_Q8_0 || d->type == RS_KV_Q4_0;
    rs_kv *kv = (rs_kv *)calloc(1, sizeof *kv);
    if (!kv) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    kv->d = *d;
    kv->row = d->type == RS_KV_F32    ? 4 * (size_t)d->head_dim
              : d->type == RS_KV_F16  ? 2 * (size_t)d->head_dim
              : d->type == RS_KV_Q8_0 ? (size_t)d->head_dim
                                      : (size_t)d->head_dim / 2;
    const size_t rows = (size_t)d->n_layer * d->n_head_kv * d->n_ctx;
    size_t per = rows * kv->row;
    rs_status st = dev_malloc(c, &kv->k, per, "the KV cache (keys)", err);
    if (!st) st = dev_malloc(c, &kv->v, per, "the KV cache (values)", err);
    size_t sc = 0;
    if (!st && quant) {
        kv->nsb = (d->head_dim + 31) / 32;
        sc = rows * kv->nsb * sizeof(__half);
        void *ks = NULL, *vs = NULL;
        st = dev_malloc(c, &ks, sc, "the KV cache (key scales)", err);
        kv->ks = (__half *)ks;
        if (!st) st = dev_malloc(c, &vs, sc, "the KV cache (value scales)", err);
        kv->vs = (__half *)vs;
    }
    if (st) {
        cu_kv_destroy(b, kv);
        return st;
    }
    cudaMemsetAsync(kv->k, 0, per, c->stream);
    cudaMemsetAsync(kv->v, 0, per, c->stream);
    if (sc) {
        cudaMemsetAsync(kv->ks, 0, sc, c->stream);
        cudaMemsetAsync(kv->vs, 0, sc, c->stream);
    }
    *out = kv;
    return RS_OK;
}

/* ---- compute ops (each clears the int8-activation tag unless it sets it) ------------------------
 */

static void cu_embed(rs_backend *b, const rs_weight *table, const int32_t *ids, int n, float *out) {
    cuda_backend *c = cw(b);
    cw_settle(c);
    cw_untag(c);
    const cw_layout *L = cw_weight_layout(c, table);
    if (L && n > 0) cw_embed(c, L, ids, n, out);
}

static const float *vector_of(cuda_backend *c, const rs_weight *w, int64_t dim) {
    const cw_layout *L = cw_weight_layout(c, w);
    if (!L) return NULL;
    if (L->n_out != 1 || L->n_in != dim) {
        cw_fail(c, RS_ERR_ARG, "tensor '%s': expected a vector of %lld", w->name ? w->name : "?",
                (long long)dim);
        return NULL;
    }
    return (const float *)L->qs;
}

static void cu_rmsnorm(rs_backend *b, const float *x, const rs_weight *w, float eps, int n,
                       float *out) {
    cuda_backend *c = cw(b);
    cw_settle(c);
    cw_untag(c);
    const float *wv = vector_of(c, w, w->n_in);
    if (wv && n > 0) cw_rmsnorm(c, (float *)x, NULL, wv, eps, n, (int)w->n_in, out);
}

static void cu_add_rmsnorm(rs_backend *b, float *x, const float *y, const rs_weight *w, float eps,
                           int n, float *out) {
    cuda_backend *c = cw(b);
    cw_settle(c);
    cw_untag(c);
    const float *wv = vector_of(c, w, w->n_in);
    if (wv && n > 0) cw_rmsnorm(c, x, y, wv, eps, n, (int)w->n_in, out);
}

/* Checks the products of a matmul; false (error recorded) when one is not usable. */
static bool matmul_ok(cuda_backend *c, const rs_matmul *mm, int count) {
    for (int i = 0; i < count; i++) {
        const cw_layout *L = cw_weight_layout(c, mm[i].w);
        if (!L) return false;
        if (L->n_in != mm[0].w->n_in) {
            cw_fail(c, RS_ERR_ARG, "matmul: tensor '%s' has rows of %lld, not %lld", mm[i].w->name,
                    (long long)L->n_in, (long long)mm[0].w->n_in);
            return false;
        }
        if (mm[i].bias && !vector_of(c, mm[i].bias, L->n_out)) return false;
    }
    return true;
}

/* A checked matmul: matvec kernels at decode sizes, else GEMM. */
static void matmul_run(cuda_backend *c, const rs_matmul *mm, int count, const float *x, int n) {
    if (n <= c->tune.mv_max_tokens) {
        cw_matvec(c, mm, count, x, n);
    } else {
        cw_settle(c);
        cw_gemm(c, mm, count, x, n, false);
    }
    if (!c->tune.reuse_q8) c->q8_src = NULL;
    c->h16_src = NULL;
}

static void cu_matmul(rs_backend *b, const rs_matmul *mm, int count, const float *x, int n) {
    cuda_backend *c = cw(b);
    if (count <= 0 || n <= 0) {
        cw_settle(c);
        cw_untag(c);
        return;
    }
    if (matmul_ok(c, mm, count)) matmul_run(c, mm, count, x, n);
}

static bool rope_ok(cuda_backend *c, const rs_rope *rope, const rs_attn *at, const rs_kv *kv,
                    int layer) {
    if (layer < 0 || layer >= kv->d.n_layer || at->head_dim != kv->d.head_dim ||
        at->n_head_kv != kv->d.n_head_kv || rope->n_rot > at->head_dim || rope->n_rot % 2) {
        cw_fail(c, RS_ERR_ARG, "rope_store: layer %d or geometry does not match the KV cache",
                layer);
        return false;
    }
    return true;
}

static void cu_rope_store(rs_backend *b, float *q, float *k, const float *v, const int32_t *pos,
                          int n, const rs_rope *rope, const rs_attn *at, rs_kv *kv, int layer) {
    cuda_backend *c = cw(b);
    cw_settle(c);
    cw_untag(c);
    if (n <= 0) return;
    if (rope_ok(c, rope, at, kv, layer)) cw_rope_store(c, q, k, v, pos, n, rope, at, kv, layer);
}

static void cu_attention(rs_backend *b, const float *q, rs_kv *kv, int layer, const int32_t *pos,
                         int n, const rs_attn *at, float *out) {
    cuda_backend *c = cw(b);
    cw_settle(c);
    cw_untag(c);
    if (n <= 0) return;
    if (layer < 0 || layer >= kv->d.n_layer || at->head_dim != kv->d.head_dim ||
        at->n_head_kv != kv->d.n_head_kv || at->n_head_kv <= 0 || at->n_head % at->n_head_kv) {
        cw_fail(c, RS_ERR_ARG, "attention: layer %d or geometry does not match the KV cache",
                layer);
        return;
    }
    cw_attention(c, q, kv, layer, pos, n, at, out);
}

static void cu_swiglu(rs_backend *b, const float *g, const float *u, int64_t n, float *out) {
    cuda_backend *c = cw(b);
    cw_settle(c);
    cw_untag(c);
    if (n > 0) cw_swiglu(c, g, u, n, out, false);
}

static void cu_add(rs_backend *b, float *x, const float *y, int64_t n) {
    cuda_backend *c = cw(b);
    cw_settle(c);
    cw_untag(c);
    if (n > 0) cw_add(c, x, y, n);
}

/* ---- fused ops: one kernel each at decode sizes (cuda_fused.cu), else composed ------------------
 */

static void cu_matmul_residual(rs_backend *b, const rs_weight *w, const float *a, int n, float *x,
                               const rs_weight *norm, float eps, float *out) {
    cuda_backend *c = cw_chainable(b); /* one token: may join the waiting chain */
    if (n != 1) cw_chain_flush(c);
    if (n <= 0) return;
    const cw_layout *L = cw_weight_layout(c, w);
    const float *wn = norm ? vector_of(c, norm, norm->n_in) : NULL;
    if (!L || (norm && !wn)) return;
    if (norm && norm->n_in != L->n_out) {
        cw_fail(c, RS_ERR_ARG, "matmul_residual: norm '%s' has %lld values for rows of %lld",
                norm->name ? norm->name : "?", (long long)norm->n_in, (long long)L->n_out);
        return;
    }
    if (cw_fz_residual(c, w, a, n, x, wn, eps, out)) return;
    if (n > c->tune.mv_max_tokens && a != x) { /* cuBLAS adds into x (beta = 1) */
        cw_settle(c);
        const rs_matmul mm = {w, NULL, x};
        cw_gemm(c, &mm, 1, a, n, true);
        cw_untag(c);
        if (wn) cw_rmsnorm(c, x, NULL, wn, eps, n, (int)L->n_out, out);
        return;
    }
    const int64_t elems = (int64_t)n * L->n_out;
    float *tmp = (float *)cw_scratch(c, CW_SCR_TMP, (size_t)elems * sizeof(float));
    if (!tmp) return;
    const rs_matmul mm = {w, NULL, tmp};
    matmul_run(c, &mm, 1, a, n);
    cw_untag(c);
    if (wn)
        cw_rmsnorm(c, x, tmp, wn, eps, n, (int)L->n_out, out);
    else
        cw_add(c, x, tmp, elems);
}

static void cu_matmul_swiglu(rs_backend *b, const rs_weight *gate, const rs_weight *up,
                             const float *x, int n, float *g, float *u) {
    cuda_backend *c = cw_chainable(b); /* one token: may join the waiting chain */
    if (n != 1) cw_chain_flush(c);
    if (n <= 0) return;
    const rs_matmul mm[2] = {{gate, NULL, g}, {up, NULL, u}};
    if (!matmul_ok(c, mm, 2)) return;
    if (gate->n_out != up->n_out) {
        cw_fail(c, RS_ERR_ARG, "matmul_swiglu: gate has %lld rows, up %lld", (long long)gate->n_out,
                (long long)up->n_out);
        return;
    }
    if (cw_fz_swiglu(c, gate, up, x, n, g)) return;
    const int64_t elems = (int64_t)n * gate->n_out;
    /* cuBLAS writes F16 from F16 operands (quantized weights are dequantized to F16), not
     * from BF16 ones (CUBLAS_STATUS_NOT_SUPPORTED): F32 and BF16 weights take F32 products */
    const bool f16_in = gate->type != RS_DTYPE_F32 && gate->type != RS_DTYPE_BF16 &&
                        up->type != RS_DTYPE_F32 && up->type != RS_DTYPE_BF16;
    if (n > c->tune.mv_max_tokens && c->tune.swiglu_h && f16_in && elems % 8 == 0) {
        /* prompt: cuBLAS writes both products as F16 into u's memory (2 x 2 bytes per
         * value fit its 4), halving the traffic of the products and of SwiGLU's reads */
        __half *g16 = (__half *)u, *u16 = g16 + elems;
        const rs_matmul mh[2] = {{gate, NULL, (float *)g16}, {up, NULL, (float *)u16}};
        cw_settle(c);
        cw_gemm(c, mh, 2, x, n, false, true);
        cw_untag(c);
        cw_swiglu_h(c, g16, u16, elems, g, true);
        return;
    }
    matmul_run(c, mm, 2, x, n);
    cw_untag(c);
    cw_swiglu(c, g, u, elems, g, n > c->tune.mv_max_tokens);
}

static void cu_matmul_rope_store(rs_backend *b, const rs_matmul *qkv, const float *x, int n,
                                 const int32_t *pos, const rs_rope *rope, const rs_attn *at,
                                 rs_kv *kv, int layer) {
    cuda_backend *c = cw_chainable(b); /* one token: may join the waiting chain */
    if (n != 1) cw_chain_flush(c);
    if (n <= 0) return;
    if (!matmul_ok(c, qkv, 3) || !rope_ok(c, rope, at, kv, layer)) return;
    if (cw_fz_rope(c, qkv, x, n, pos, rope, at, kv, layer)) return;
    matmul_run(c, qkv, 3, x, n);
    cw_untag(c);
    cw_rope_store(c, qkv[0].y, qkv[1].y, qkv[2].y, pos, n, rope, at, kv, layer);
}

/* ---- bandwidth
 * ------------------------------------------------------------------------------------ */

/* Device-to-device copy of 2 x 256 MiB, bytes read plus written over the
 * median of 9 timed copies. */
static rs_status cu_bandwidth(rs_backend *b, double *gbps, rs_error *err) {
    cuda_backend *c = cw(b);
    const size_t bytes = (size_t)256 << 20;
    void *src = NULL, *dst = NULL;
    rs_status st = dev_malloc(c, &src, bytes, "bandwidth test", err);
    if (!st) st = dev_malloc(c, &dst, bytes, "bandwidth test", err);
    cudaEvent_t e0 = NULL, e1 = NULL;
    float ms[9];
    if (!st) {
        cudaEventCreate(&e0);
        cudaEventCreate(&e1);
        cudaMemsetAsync(src, 1, bytes, c->stream);
        for (int i = 0; i < 2; i++)
            cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream);
        for (int i = 0; i < 9; i++) {
            cudaEventRecord(e0, c->stream);
            cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream);
            cudaEventRecord(e1, c->stream);
            cudaEventSynchronize(e1);
            cudaEventElapsedTime(&ms[i], e0, e1);
        }
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess)
            st = rs_error_set(err, RS_ERR_DEVICE, "bandwidth test failed: %s",
                              cudaGetErrorString(e));
        std::sort(ms, ms + 9);
        *gbps = 2.0 * bytes / (ms[4] * 1e-3) / 1e9;
    }
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(src);
    cudaFree(dst);
    return st;
}

/* ---- graphs -------------------------------------------------------------------------------------
 */

static cw_graph *find_graph(cuda_backend *c, int key) {
    for (int i = 0; i < CW_MAX_GRAPHS; i++)
        if (c->graphs[i].used && c->graphs[i].key == key) return &c->graphs[i];
    return NULL;
}

static rs_status cu_graph_begin(rs_backend *b, int key, rs_error *err) {
    cuda_backend *c = cw(b);
    if (c->capturing)
        return rs_error_set(err, RS_ERR_ARG, "graph_begin: a capture is already open");
    cw_settle(c);
    if (c->status) {
        if (err) *err = c->err;
        return c->status;
    }
    cw_untag(c); /* a graph must not read state produced before it */
    c->rope_tab.pos = NULL;
    /* relaxed: lazily grown scratch buffers may be allocated while capturing */
    cudaError_t e = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeRelaxed);
    if (e != cudaSuccess)
        return rs_error_set(err, RS_ERR_DEVICE, "cannot begin graph capture: %s",
                            cudaGetErrorString(e));
    c->capturing = true;
    return RS_OK;
}

static rs_status cu_graph_end(rs_backend *b, int key, rs_error *err) {
    cuda_backend *c = cw(b);
    if (!c->capturing) return rs_error_set(err, RS_ERR_ARG, "graph_end without graph_begin");
    cw_settle(c); /* inside the graph: its replays leave every output written */
    c->capturing = false;
    cw_untag(c);
    c->rope_tab.pos = NULL;
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &g);
    if (c->status || e != cudaSuccess) {
        if (g) cudaGraphDestroy(g);
        cudaGetLastError();
        if (c->status) {
            if (err) *err = c->err;
            c->status = RS_OK;
            return rs_error_prefix(err, "during graph capture");
        }
        return rs_error_set(err, RS_ERR_DEVICE, "graph capture failed: %s", cudaGetErrorString(e));
    }
    cudaGraphExec_t exec = NULL;
    e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess)
        return rs_error_set(err, RS_ERR_DEVICE, "graph instantiation failed: %s",
                            cudaGetErrorString(e));
    cw_graph *slot = find_graph(c, key);
    if (!slot)
        for (int i = 0; i < CW_MAX_GRAPHS && !slot; i++)
            if (!c->graphs[i].used) slot = &c->graphs[i];
    if (!slot) {
        cudaGraphExecDestroy(exec);
        return rs_error_set(err, RS_ERR_RANGE, "too many captured graphs (at most %d)",
                            CW_MAX_GRAPHS);
    }
    if (slot->used) cudaGraphExecDestroy(slot->exec);
    *slot = cw_graph{key, true, exec};
    return RS_OK;
}

static bool cu_graph_launch(rs_backend *b, int key) {
    cuda_backend *c = cw(b);
    cw_graph *g = find_graph(c, key);
    if (!g || c->capturing) return false;
    cw_settle(c);
    cw_untag(c);
    c->rope_tab.pos = NULL;
    return cw_check(c, cudaGraphLaunch(g->exec, c->stream), "graph launch");
}

/* ---- greedy steps chained on the device ---------------------------------------------------- */

/* What greedy_pick and sample_pick do before their kernel: check the sizes, settle pending
 * work, forget the rope table's positions (the pick moves them on). */
static bool pick_begin(cuda_backend *c, const char *op, int n_vocab, int n_picks) {
    if (n_vocab <= 0 || n_picks <= 0) {
        cw_fail(c, RS_ERR_ARG, "%s over %d logits into %d slots", op, n_vocab, n_picks);
        return false;
    }
    cw_settle(c);
    c->rope_tab.pos = NULL;
    return true;
}

/* The device address of page-locked host memory (under UVA the same address). */
static void *mapped(cuda_backend *c, void *host, const char *what) {
    void *dev = NULL;
    return cw_check(c, cudaHostGetDevicePointer(&dev, host, 0), what) ? dev : NULL;
}

static void cu_greedy_pick(rs_backend *b, const float *logits, int n_vocab, rs_sample_rule *rule,
                           int32_t *ids, int32_t *pos, int32_t *picks, uint64_t *rngs,
                           int n_picks) {
    cuda_backend *c = cw(b);
    if (!pick_begin(c, "greedy_pick", n_vocab, n_picks)) return;
    if (!rule != !rngs) {
        cw_fail(c, RS_ERR_ARG, "greedy_pick: a rule needs an RNG ring, and only a rule one");
        return;
    }
    int32_t *dev = (int32_t *)mapped(c, picks, "greedy pick buffer");
    uint64_t *dev_rngs = rngs && dev ? (uint64_t *)mapped(c, rngs, "greedy rng buffer") : NULL;
    if (dev && (!rngs || dev_rngs))
        cw_greedy_pick(c, logits, n_vocab, rule, ids, pos, dev, dev_rngs, n_picks);
}

static void cu_sample_pick(rs_backend *b, const float *logits, int n_vocab, rs_sample_rule *rule,
                           int32_t *ids, int32_t *pos, int32_t *picks, uint64_t *rngs,
                           int n_picks) {
    cuda_backend *c = cw(b);
    if (!pick_begin(c, "sample_pick", n_vocab, n_picks)) return;
    int32_t *dev_picks = (int32_t *)mapped(c, picks, "sample pick buffer");
    uint64_t *dev_rngs = dev_picks ? (uint64_t *)mapped(c, rngs, "sample rng buffer") : NULL;
    if (dev_rngs) cw_sample_pick(c, logits, n_vocab, rule, ids, pos, dev_picks, dev_rngs, n_picks);
}

static void cu_penalize(rs_backend *b, float *logits, int n_vocab, const rs_sample_rule *rule) {
    cuda_backend *c = cw(b);
    if (n_vocab <= 0 || !rule) {
        cw_fail(c, RS_ERR_ARG, "penalize over %d logits%s", n_vocab, rule ? "" : " without a rule");
        return;
    }
    cw_settle(c);
    cw_penalize(c, logits, n_vocab, rule);
}

static rs_status cu_fence_mark(rs_backend *b, int slot, rs_error *err) {
    cuda_backend *c = cw(b);
    if (slot < 0 || slot >= RS_FENCES || c->capturing)
        return rs_error_set(err, RS_ERR_ARG, "fence_mark: slot %d%s", slot,
                            c->capturing ? " during a graph capture" : " out of range");
    cw_settle(c);
    cudaError_t e = cudaSuccess;
    if (!c->fence[slot]) e = cudaEventCreateWithFlags(&c->fence[slot], cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventRecord(c->fence[slot], c->stream);
    if (e != cudaSuccess) {
        cw_check(c, e, "fence");
        return rs_error_set(err, RS_ERR_DEVICE, "fence_mark: %s", cudaGetErrorString(e));
    }
    return RS_OK;
}

static rs_status cu_fence_wait(rs_backend *b, int slot, rs_error *err) {
    cuda_backend *c = cw(b);
    if (slot < 0 || slot >= RS_FENCES || !c->fence[slot])
        return rs_error_set(err, RS_ERR_ARG, "fence_wait: slot %d was never marked", slot);
    cw_check(c, cudaEventSynchronize(c->fence[slot]), "fence wait");
    rs_status st = c->status;
    if (st && err) *err = c->err;
    c->status = RS_OK;
    return st;
}

/* ---- lifetime
 * --------------------------------------------------------------------------------------- */

static void cu_destroy(rs_backend *b) {
    cuda_backend *c = cw(b);
    if (!c) return;
    cudaStreamSynchronize(c->stream);
    for (int i = 0; i < CW_MAX_GRAPHS; i++)
        if (c->graphs[i].used) cudaGraphExecDestroy(c->graphs[i].exec);
    for (int i = 0; i < RS_FENCES; i++)
        if (c->fence[i]) cudaEventDestroy(c->fence[i]);
    for (int i = 0; i < CW_N_SCRATCH; i++) cudaFree(c->scr[i]);
    for (int i = 0; i < c->n_retired; i++) cudaFree(c->retired[i]);
    free(c->retired);
    for (int i = 0; i < 2; i++) {
        if (c->pinned[i]) cudaFreeHost(c->pinned[i]);
        if (c->pinned_done[i]) cudaEventDestroy(c->pinned_done[i]);
    }
    cw_prepare_free(c);
    cw_gemm_free(c);
    cw_chain_free(c);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
}

static void cu_prepare(rs_backend *b, const rs_weight *const *w, int count, int n) {
    cw_prepare(cw_chainable(b), w, count, n); /* it launches the waiting chain if it works */
}

static const rs_backend_ops cuda_ops = {
    /* .name = */ "cuda",
    /* .destroy = */ cu_destroy,
    /* .alloc = */ cu_alloc,
    /* .release = */ cu_release,
    /* .upload = */ cu_upload,
    /* .download = */ cu_download,
    /* .sync = */ cu_sync,
    /* .weight_load = */ cu_weight_load,
    /* .weight_unload = */ cu_weight_unload,
    /* .kv_create = */ cu_kv_create,
    /* .kv_destroy = */ cu_kv_destroy,
    /* .embed = */ cu_embed,
    /* .rmsnorm = */ cu_rmsnorm,
    /* .add_rmsnorm = */ cu_add_rmsnorm,
    /* .matmul = */ cu_matmul,
    /* .rope_store = */ cu_rope_store,
    /* .attention = */ cu_attention,
    /* .swiglu = */ cu_swiglu,
    /* .add = */ cu_add,
    /* .matmul_residual = */ cu_matmul_residual,
    /* .matmul_swiglu = */ cu_matmul_swiglu,
    /* .matmul_rope_store = */ cu_matmul_rope_store,
    /* .bandwidth = */ cu_bandwidth,
    /* .graph_begin = */ cu_graph_begin,
    /* .graph_end = */ cu_graph_end,
    /* .graph_launch = */ cu_graph_launch,
    /* .prepare = */ cu_prepare,
    /* .host_alloc = */ cu_host_alloc,
    /* .host_free = */ cu_host_free,
    /* .greedy_pick = */ cu_greedy_pick,
    /* .sample_pick = */ cu_sample_pick,
    /* .penalize = */ cu_penalize,
    /* .fence_mark = */ cu_fence_mark,
    /* .fence_wait = */ cu_fence_wait,
};

/* t into c->tune, the switches with a range clamped to it. */
static void tune_store(cuda_backend *c, const rs_cuda_tuning *t) {
    c->tune = *t;
    c->tune.mv_max_tokens = std::min(std::max(t->mv_max_tokens, 0), (int)CW_MV_MAX_TOK);
    c->tune.attn_decode_max = std::min(std::max(t->attn_decode_max, 0), (int)CW_MV_MAX_TOK);
    c->tune.mv_rows = t->mv_rows == 1 || t->mv_rows == 2 ? t->mv_rows : 0;
    c->tune.gemm_chunk = std::max(t->gemm_chunk, 0);
    c->tune.fz_split = std::min(std::max(t->fz_split, 0), (int)CW_FZ_MAX_SPLIT);
    c->tune.stream_depth = std::min(std::max(t->stream_depth, 0), 8);
    c->tune.stream_blocks = std::max(t->stream_blocks, 0);
}

extern "C" rs_status rs_cuda_backend_create_impl(rs_backend **out, rs_error *err) {
    *out = NULL;
    int n_dev = 0;
    cudaError_t e = cudaGetDeviceCount(&n_dev);
    if (e != cudaSuccess || n_dev == 0) {
        cudaGetLastError();
        return rs_error_set(err, RS_ERR_DEVICE, "no usable CUDA device: %s",
                            e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    }
    cudaDeviceProp prop;
    if ((e = cudaGetDeviceProperties(&prop, 0)) != cudaSuccess ||
        (e = cudaSetDevice(0)) != cudaSuccess)
        return rs_error_set(err, RS_ERR_DEVICE, "CUDA device 0: %s", cudaGetErrorString(e));
    if (prop.major < 9)
        return rs_error_set(
            err, RS_ERR_DEVICE,
            "CUDA device 0 (%s) has compute capability %d.%d; this build needs 9.0 (Hopper)",
            prop.name, prop.major, prop.minor);
    cuda_backend *c = (cuda_backend *)calloc(1, sizeof *c);
    if (!c) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    c->base.ops = &cuda_ops;
    c->base.is_host = false;
    c->n_sm = prop.multiProcessorCount;
    c->smem_optin = prop.sharedMemPerBlockOptin;
    c->tune = rs_cuda_tuning{}; /* the defaults; every other switch is off (0 = automatic) */
    c->tune.pdl = c->tune.fuse_q8 = c->tune.fuse = c->tune.attn_mma = c->tune.attn_short = 1;
    c->tune.mv_max_tokens = c->tune.attn_decode_max = CW_MV_MAX_TOK;
    c->tune.prep = c->tune.prep_prio = c->tune.attn_zig = c->tune.swiglu_h = c->tune.attn_h16 = 1;
    c->tune.chain = c->tune.chain_deal = c->tune.chain_handoff = c->tune.fz_roll = 1;
    c->tune.roll_fit = 1;
    /* switches by name, to measure one binary both ways (cuda_tune.c) */
    const char *spec = getenv("RUSTY_CUDA_TUNE");
    if (spec && *spec) {
        rs_cuda_tuning t = c->tune;
        if (rs_status bad = rs_cuda_tuning_parse(spec, &t, err)) {
            free(c);
            return bad;
        }
        tune_store(c, &t);
    }
    rs_status st = RS_OK;
    /* the main stream at the highest priority: prepare's side stream may run below it */
    int prio_least = 0, prio_greatest = 0;
    cudaDeviceGetStreamPriorityRange(&prio_least, &prio_greatest);
    if ((e = cudaStreamCreateWithPriority(&c->stream, cudaStreamNonBlocking, prio_greatest)) !=
            cudaSuccess ||
        (e = cudaEventCreateWithFlags(&c->pinned_done[0], cudaEventDisableTiming)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&c->pinned_done[1], cudaEventDisableTiming)) != cudaSuccess)
        st = rs_error_set(err, RS_ERR_DEVICE, "CUDA setup on %s: %s", prop.name,
                          cudaGetErrorString(e));
    if (!st) st = cw_gemm_init(c, err);
    if (st) {
        cu_destroy(&c->base);
        return st;
    }
    *out = &c->base;
    return RS_OK;
}

/* ---- hooks for tests and the kernel lab (cuda_internal.h)
 * ----------------------------------------- */

extern "C" void rs_cuda_get_tuning(rs_backend *b, rs_cuda_tuning *t) {
    *t = cw(b)->tune;
}

extern "C" void rs_cuda_set_tuning(rs_backend *b, const rs_cuda_tuning *t) {
    cuda_backend *c = cw(b);
    tune_store(c, t);
    c->chain_launches = c->chain_phases = c->chain_handoffs = 0;
    c->roll_traced = c->pick_traced = 0;
    if (c->side && !!t->prep_prio != c->side_low) cw_prepare_free(c); /* its stream is made again */
    cw_settle(c);
    cw_untag(c);
}

extern "C" void rs_cuda_chain_count(rs_backend *b, long *launches, long *phases, long *handoffs) {
    const cuda_backend *c = cw(b); /* a waiting chain counts once launched */
    *launches = c->chain_launches;
    *phases = c->chain_phases;
    *handoffs = c->chain_handoffs;
}

extern "C" long rs_cuda_roll_count(rs_backend *b) {
    return cw(b)->roll_launches;
}

extern "C" long rs_cuda_split_count(rs_backend *b) {
    return cw(b)->split_launches;
}

extern "C" void *rs_cuda_stream(rs_backend *b) {
    return cw(b)->stream;
}

extern "C" rs_status rs_cuda_weight_load_device(rs_backend *b, rs_weight *w, const void *dev_raw,
                                                rs_error *err) {
    return weight_load_impl(cw(b), w, dev_raw, err);
}

extern "C" rs_status rs_cuda_kv_read(rs_backend *b, rs_kv *kv, int layer, int n_pos, float *k,
                                     float *v, rs_error *err) {
    cuda_backend *c = cw(b);
    if (layer < 0 || layer >= kv->d.n_layer || n_pos <= 0 || n_pos > kv->d.n_ctx)
        return rs_error_set(err, RS_ERR_ARG, "kv_read: layer %d / %d positions out of range", layer,
                            n_pos);
    size_t bytes = (size_t)n_pos * kv->d.n_head_kv * kv->d.head_dim * sizeof(float);
    void *tmp = NULL;
    rs_status st = dev_malloc(c, &tmp, 2 * bytes, "kv_read", err);
    if (st) return st;
    cw_kv_convert(c, kv, layer, n_pos, (float *)tmp, (float *)((char *)tmp + bytes));
    cw_check(c, cudaMemcpyAsync(k, tmp, bytes, cudaMemcpyDeviceToHost, c->stream), "kv_read");
    cw_check(c, cudaMemcpyAsync(v, (char *)tmp + bytes, bytes, cudaMemcpyDeviceToHost, c->stream),
             "kv_read");
    st = cu_sync(b, err);
    cudaFree(tmp);
    return st;
}

extern "C" void rs_cuda_kv_fill_random(rs_backend *b, rs_kv *kv, uint64_t seed) {
    cuda_backend *c = cw(b);
    if (kv->d.type == RS_KV_Q8_0 || kv->d.type == RS_KV_Q4_0) {
        cw_kv_fill_quant(c, kv, seed);
        return;
    }
    size_t per = (size_t)kv->d.n_layer * cw_kv_layer_bytes(kv);
    int type = kv->d.type == RS_KV_F32 ? RS_DTYPE_F32 : RS_DTYPE_F16;
    cw_fill_random(c, kv->k, type, per, 1.0f, seed);
    cw_fill_random(c, kv->v, type, per, 1.0f, seed ^ 0x9e3779b97f4a7c15ull);
}

extern "C" void rs_cuda_fill_random_weights(rs_backend *b, void *dev, rs_dtype type, size_t n_bytes,
                                            float scale, uint64_t seed) {
    cw_fill_random(cw(b), dev, type, n_bytes, scale, seed);
}

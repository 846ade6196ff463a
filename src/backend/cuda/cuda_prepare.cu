/* cuda_prepare.cu — quantized weights dequantized to F16 ahead of their prompt
 * GEMMs, on a second stream.
 *
 * A prompt-size product of a quantized weight is a cuBLAS F16 GEMM on a
 * dequantized copy; made inline, the copy (memory-bound: a 7B Q4_0 layer writes
 * 405 MB of F16) runs between compute-bound GEMMs with the tensor cores idle.
 * The forward pass names the next layer's weights (prepare) while the current
 * one runs; the side stream dequantizes them into one of two sets, the main
 * stream's GEMMs read the other. Events order the two: a GEMM waits for its
 * set's `ready`, a refill for the main stream to reach the point where it was
 * asked for.
 *
 * Purely an optimisation: when memory is short, the request is not for a
 * prompt, or a stream is being captured, nothing is prepared and the GEMM
 * dequantizes inline as before. */
#include "backend/cuda/cuda_common.cuh"

namespace {

/* Device memory left after a set this size must stay above this: scratch
 * buffers and caches grow later and must not fail because of a hint. */
constexpr size_t HEADROOM = (size_t)512 << 20;

bool wanted(cuda_backend *c, const rs_weight *w) {
    if (!w || w->backend != &c->base || !w->extra) return false;
    const cw_layout *L = (const cw_layout *)w->extra;
    return L->n_out > 1 && rs_dtype_get(L->type)->is_quantized;
}

int find(const cw_prep_set &s, const cw_layout *L) {
    for (int i = 0; i < s.n; i++)
        if (s.L[i] == L) return i;
    return -1;
}

bool holds_all(const cw_prep_set &s, cuda_backend *c, const rs_weight *const *w, int count) {
    for (int i = 0; i < count; i++)
        if (wanted(c, w[i]) && find(s, (const cw_layout *)w[i]->extra) < 0) return false;
    return true;
}

/* Creates the side stream and the sets' events once; false (prepare off) on failure. */
bool setup(cuda_backend *c) {
    if (c->side) return true;
    int least = 0, greatest = 0;
    cudaDeviceGetStreamPriorityRange(&least, &greatest);
    c->side_low = c->tune.prep_prio != 0;
    bool ok = cudaStreamCreateWithPriority(&c->side, cudaStreamNonBlocking,
                                           c->side_low ? least : greatest) == cudaSuccess;
    for (int i = 0; i < 2 && ok; i++)
        ok = cudaEventCreateWithFlags(&c->prep[i].ready, cudaEventDisableTiming) == cudaSuccess;
    ok = ok && cudaEventCreateWithFlags(&c->prep_now, cudaEventDisableTiming) == cudaSuccess;
    if (!ok) {
        cudaGetLastError();
        c->prep_off = true;
    }
    return ok;
}

/* Grows set s to `bytes`; false (and prepare off for good) when the memory is not there. */
bool reserve(cuda_backend *c, cw_prep_set &s, size_t bytes) {
    if (bytes <= s.cap) return true;
    cudaStreamSynchronize(c->side);
    cudaStreamSynchronize(c->stream);
    cudaFree(s.buf);
    s.buf = NULL;
    s.cap = 0;
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess || free_b < bytes + HEADROOM ||
        cudaMalloc((void **)&s.buf, bytes) != cudaSuccess) {
        cudaGetLastError(); /* not the caller's failure: the GEMMs dequantize inline */
        s.buf = NULL;
        c->prep_off = true;
        return false;
    }
    s.cap = bytes;
    return true;
}

} // namespace

void cw_prepare(cuda_backend *c, const rs_weight *const *w, int count, int n) {
    /* decode sizes prepare nothing and leave the waiting chain alone (the forward
     * pass prepares the next layer before that layer's qkv joins the chain) */
    if (!c->tune.prep || c->prep_off || c->capturing || n <= c->tune.mv_max_tokens) return;
    cw_chain_flush(c);
    size_t bytes = 0;
    int wanted_n = 0;
    for (int i = 0; i < count; i++) {
        if (!wanted(c, w[i])) continue;
        const cw_layout *L = (const cw_layout *)w[i]->extra;
        bytes += (size_t)L->n_out * L->n_in * sizeof(__half);
        wanted_n++;
    }
    if (wanted_n == 0 || wanted_n > CW_PREP_MAX) return;
    for (int k = 0; k < 2; k++)
        if (holds_all(c->prep[k], c, w, count)) return; /* still there from the last pass */
    if (!setup(c)) return;
    cw_prep_set &s = c->prep[c->prep_next];
    s.n = 0; /* forgotten before anything can fail: a half-made set is never read */
    if (!reserve(c, s, bytes)) return;
    c->prep_next ^= 1;
    cw_check(c, cudaEventRecord(c->prep_now, c->stream), "prepare: record");
    cw_check(c, cudaStreamWaitEvent(c->side, c->prep_now, 0), "prepare: wait");
    size_t off = 0;
    for (int i = 0; i < count; i++) {
        if (!wanted(c, w[i])) continue;
        const cw_layout *L = (const cw_layout *)w[i]->extra;
        cw_dequant_rows(c, c->side, L, 0, L->n_out, s.buf + off);
        s.L[s.n] = L;
        s.off[s.n++] = off;
        off += (size_t)L->n_out * L->n_in;
    }
    cw_check(c, cudaEventRecord(s.ready, c->side), "prepare: record");
    c->side_busy = true;
}

const __half *cw_prepared(cuda_backend *c, const cw_layout *L) {
    if (!c->tune.prep || c->capturing) return NULL; /* a graph must not wait on the side stream */
    for (int k = 0; k < 2; k++) {
        const int i = find(c->prep[k], L);
        if (i < 0) continue;
        cw_check(c, cudaStreamWaitEvent(c->stream, c->prep[k].ready, 0), "prepared: wait");
        return c->prep[k].buf + c->prep[k].off[i];
    }
    return NULL;
}

void cw_prepare_forget(cuda_backend *c, const cw_layout *L) {
    for (int k = 0; k < 2; k++)
        if (find(c->prep[k], L) >= 0) {
            cudaStreamSynchronize(c->side); /* its dequantization may still read L */
            c->prep[k].n = 0;
        }
}

void cw_prepare_sync(cuda_backend *c) {
    if (!c->side_busy) return; /* decode steps never touch the side stream: no call per token */
    cw_check(c, cudaStreamSynchronize(c->side), "side stream synchronize");
    c->side_busy = false;
}

void cw_prepare_free(cuda_backend *c) {
    if (c->side) cudaStreamSynchronize(c->side);
    for (int k = 0; k < 2; k++) {
        cw_prep_set &s = c->prep[k];
        cudaFree(s.buf);
        if (s.ready) cudaEventDestroy(s.ready);
        s = cw_prep_set{};
    }
    if (c->prep_now) cudaEventDestroy(c->prep_now);
    c->prep_now = NULL;
    if (c->side) cudaStreamDestroy(c->side);
    c->side = NULL;
}

extern "C" int rs_cuda_is_prepared(rs_backend *b, const rs_weight *w) {
    cuda_backend *c = cw(b);
    if (!w || w->backend != b || !w->extra) return 0;
    for (int k = 0; k < 2; k++)
        if (find(c->prep[k], (const cw_layout *)w->extra) >= 0) return 1;
    return 0;
}

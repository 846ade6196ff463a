/* membw.c — memory read bandwidth probe (see membw.h). */
#include "backend/cpu/membw.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum { CHUNK_ALIGN = 4096, SWEEP_CHUNK = 65536 };

typedef struct {
    uint8_t *buf;
    size_t bytes;
    rs_simd_level level;
    int fill;    /* 1: first-touch the pages (write), 0: read */
    int streams; /* sequential streams per thread when reading; 0: the sweep */
    uint64_t sums[RS_THREADPOOL_MAX];
} membw_job;

uint64_t rs_membw_read_scalar(const void *p, size_t n_bytes) {
    const uint64_t *v = p;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i < n_bytes / 8; i += 4) {
        a0 += v[i];
        a1 += v[i + 1];
        a2 += v[i + 2];
        a3 += v[i + 3];
    }
    return a0 + a1 + a2 + a3;
}

/* This thread's page-aligned slice of the buffer. */
static void slice(const membw_job *j, int ith, int nth, size_t *off, size_t *len) {
    size_t pages = j->bytes / CHUNK_ALIGN;
    size_t a = pages * (size_t)ith / (size_t)nth, b = pages * (size_t)(ith + 1) / (size_t)nth;
    *off = a * CHUNK_ALIGN;
    *len = (b - a) * CHUNK_ALIGN;
}

static void membw_worker(void *ctx, int ith, int nth) {
    membw_job *j = ctx;
    size_t off, len;
    slice(j, ith, nth, &off, &len);
    if (j->fill) {
        /* first touch by the thread that will read the pages (NUMA locality) */
        for (size_t i = 0; i < len; i += 8) {
            uint64_t v = (off + i) * 0x9e3779b97f4a7c15ull;
            memcpy(j->buf + off + i, &v, 8);
        }
        return;
    }
    uint64_t (*read)(const void *, size_t) = rs_membw_read_scalar;
    if (j->level >= RS_SIMD_AVX512)
        read = rs_membw_read_avx512;
    else if (j->level == RS_SIMD_AVX2)
        read = rs_membw_read_avx2;
    uint64_t s = 0;
    if (j->streams == 0) {
        /* the sweep: 64 KiB chunks dealt round-robin, so that the threads move
         * through the buffer together as decode's work units do */
        for (size_t o = (size_t)ith * SWEEP_CHUNK; o < j->bytes; o += (size_t)nth * SWEEP_CHUNK)
            s += read(j->buf + o, j->bytes - o < SWEEP_CHUNK ? j->bytes - o : SWEEP_CHUNK);
        j->sums[ith] = s;
        return;
    }
    /* the slice as `streams` parts read a page of each in turn */
    size_t part = len / CHUNK_ALIGN / (size_t)j->streams * CHUNK_ALIGN;
    for (size_t o = 0; o < part; o += CHUNK_ALIGN)
        for (int k = 0; k < j->streams; k++)
            s += read(j->buf + off + (size_t)k * part + o, CHUNK_ALIGN);
    s += read(j->buf + off + part * (size_t)j->streams, len - part * (size_t)j->streams);
    j->sums[ith] = s;
}

size_t rs_membw_default_bytes(void) {
    /* Far larger than any last-level cache (a 1 GiB buffer read 141 GB/s on a server
     * with 300 MiB of L3: the cache served part of it), but at most a quarter of RAM. */
    size_t bytes = (size_t)4 << 30;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0 && bytes > (size_t)pages * (size_t)page / 4)
        bytes = (size_t)pages * (size_t)page / 4;
    if (bytes < ((size_t)256 << 20)) bytes = (size_t)256 << 20;
    return bytes;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

rs_status rs_membw_measure(rs_threadpool *tp, rs_simd_level level, size_t bytes, int runs,
                           double *gbps, rs_error *err) {
    *gbps = 0;
    if (bytes == 0) bytes = rs_membw_default_bytes();
    int nth = rs_threadpool_size(tp);
    bytes = bytes / ((size_t)CHUNK_ALIGN * (size_t)nth) * (size_t)CHUNK_ALIGN * (size_t)nth;
    if (bytes == 0 || runs < 1)
        return rs_error_set(err, RS_ERR_ARG, "membw: need at least %d bytes per thread and 1 run",
                            CHUNK_ALIGN);
    membw_job *j = calloc(1, sizeof *j);
    if (!j) return rs_error_set(err, RS_ERR_NOMEM, "membw: cannot allocate the job");
    j->buf =
        aligned_alloc((size_t)2 << 20, (bytes + ((size_t)2 << 20) - 1) & ~(((size_t)2 << 20) - 1));
    if (!j->buf) {
        free(j);
        return rs_error_set(err, RS_ERR_NOMEM, "membw: cannot allocate %zu bytes", bytes);
    }
#ifdef MADV_HUGEPAGE
    madvise(j->buf, bytes, MADV_HUGEPAGE); /* fewer TLB misses; best effort */
#endif
    j->bytes = bytes;
    j->level = level;
    j->fill = 1;
    rs_threadpool_run(tp, membw_worker, j);
    j->fill = 0;
    double best = 0;
    for (int r = 0; r < runs; r++) {
        for (int k = 0; k < 3; k++) {
            j->streams = k == 2 ? 0 : k ? 4 : 1;
            double t0 = now_s();
            rs_threadpool_run(tp, membw_worker, j);
            double rate = (double)bytes / (now_s() - t0) / 1e9;
            if (rate > best) best = rate;
        }
    }
    /* use the sums so the reads cannot be optimized away */
    volatile uint64_t sink = 0;
    for (int i = 0; i < nth; i++) sink += j->sums[i];
    (void)sink;
    free(j->buf);
    free(j);
    *gbps = best;
    return RS_OK;
}

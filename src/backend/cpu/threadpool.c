/* threadpool.c — persistent worker pool with spin-then-futex waits (see threadpool.h).
 *
 * Dispatch protocol: the caller publishes fn/ctx, sets `pending` to n - 1 and
 * bumps the generation counter `seq` (release). Workers notice the new
 * generation (acquire), run the job and decrement `pending`; the last one
 * wakes the caller if it went to sleep. Sleepers announce themselves in a
 * counter before re-checking the word they sleep on, and wakers read that
 * counter after publishing, so (all seq_cst) a wake-up is never lost and the
 * futex syscall is skipped while everybody is still spinning. */
#include "backend/cpu/threadpool.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define RS_CPU_RELAX() _mm_pause()
#else
#define RS_CPU_RELAX() ((void)0)
#endif

/* How long a waiter spins before it sleeps. A decode step dispatches a job
 * every few microseconds, so this keeps workers hot across a whole token while
 * an idle pool falls asleep quickly. After PAUSE_NS of pure pause-spinning the
 * waiter yields between polls, so that on an oversubscribed machine the thread
 * it waits for can run. */
enum { SPIN_NS = 200 * 1000, PAUSE_NS = 20 * 1000 };

/* A 32-bit word padded to its own cache line (no false sharing between the
 * words that different threads hammer). */
typedef struct {
    alignas(64) _Atomic uint32_t v;
    char pad[64 - sizeof(_Atomic uint32_t)];
} padded_u32;

struct rs_threadpool {
    int n;
    _Atomic int stop; /* set once, at shutdown; here it fills n's padding */
    pthread_t *threads;
    rs_threadpool_fn fn; /* current job, published by the seq bump */
    void *ctx;
    padded_u32 seq;          /* job generation; workers wait for it to change */
    padded_u32 pending;      /* workers still running the current job */
    padded_u32 n_sleeping;   /* workers asleep on seq */
    padded_u32 main_waiting; /* 1 while the caller sleeps on pending */
    padded_u32 bar_count;    /* threads arrived at the current barrier */
    padded_u32 bar_gen;      /* barrier generation */
    padded_u32 bar_sleeping; /* threads asleep on bar_gen */
};

typedef struct {
    rs_threadpool *tp;
    int ith;
} worker_arg;

static void futex_wait(_Atomic uint32_t *addr, uint32_t expected) {
#ifdef __linux__
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
#else
    (void)addr;
    (void)expected;
    struct timespec ts = {0, 50 * 1000};
    nanosleep(&ts, NULL);
#endif
}

static void futex_wake_all(_Atomic uint32_t *addr) {
#ifdef __linux__
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)addr;
#endif
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Spins until *word != old or the spin budget is spent; returns the last value seen. */
static uint32_t spin_while_equal(_Atomic uint32_t *word, uint32_t old) {
    uint64_t start = 0;
    bool yield = false;
    for (uint32_t i = 1;; i++) {
        uint32_t v = atomic_load_explicit(word, memory_order_acquire);
        if (v != old) return v;
        if (yield) {
            sched_yield();
        } else {
            RS_CPU_RELAX();
            if ((i & 63) != 0) continue;
        }
        uint64_t t = now_ns();
        if (start == 0) start = t;
        if (t - start > SPIN_NS) return v;
        yield = t - start > PAUSE_NS;
    }
}

/* Waits until *word != old: spin, then sleep (announced in *sleepers). */
static uint32_t wait_while_equal(_Atomic uint32_t *word, uint32_t old, _Atomic uint32_t *sleepers) {
    uint32_t v = spin_while_equal(word, old);
    if (v != old) return v;
    atomic_fetch_add(sleepers, 1);
    while ((v = atomic_load(word)) == old) futex_wait(word, old);
    atomic_fetch_sub(sleepers, 1);
    atomic_thread_fence(memory_order_acquire);
    return v;
}

static void *worker_main(void *p) {
    worker_arg *a = p;
    rs_threadpool *tp = a->tp;
    int ith = a->ith;
    free(a);
    uint32_t seen = 0;
    for (;;) {
        seen = wait_while_equal(&tp->seq.v, seen, &tp->n_sleeping.v);
        if (atomic_load_explicit(&tp->stop, memory_order_acquire)) break;
        tp->fn(tp->ctx, ith, tp->n);
        if (atomic_fetch_sub(&tp->pending.v, 1) == 1 && atomic_load(&tp->main_waiting.v))
            futex_wake_all(&tp->pending.v);
    }
    return NULL;
}

static void stop_workers(rs_threadpool *tp, int n_started) {
    atomic_store(&tp->stop, 1);
    atomic_fetch_add(&tp->seq.v, 1);
    futex_wake_all(&tp->seq.v);
    for (int i = 0; i < n_started; i++) pthread_join(tp->threads[i], NULL);
}

rs_status rs_threadpool_create(rs_threadpool **out, int n, rs_error *err) {
    *out = NULL;
    if (n < 1 || n > RS_THREADPOOL_MAX)
        return rs_error_set(err, RS_ERR_ARG, "thread pool size %d is outside 1..%d", n,
                            RS_THREADPOOL_MAX);
    rs_threadpool *tp = aligned_alloc(64, sizeof *tp);
    if (!tp) return rs_error_set(err, RS_ERR_NOMEM, "cannot allocate a thread pool");
    memset(tp, 0, sizeof *tp);
    tp->n = n;
    if (n > 1) {
        tp->threads = calloc((size_t)(n - 1), sizeof *tp->threads);
        if (!tp->threads) {
            free(tp);
            return rs_error_set(err, RS_ERR_NOMEM, "cannot allocate %d thread handles", n - 1);
        }
    }
    for (int i = 1; i < n; i++) {
        worker_arg *a = malloc(sizeof *a);
        int rc = a ? 0 : -1;
        if (a) {
            a->tp = tp;
            a->ith = i;
            rc = pthread_create(&tp->threads[i - 1], NULL, worker_main, a);
            if (rc != 0) free(a);
        }
        if (rc != 0) {
            stop_workers(tp, i - 1);
            free(tp->threads);
            free(tp);
            return rs_error_set(err, RS_ERR_NOMEM, "cannot start thread %d of %d (error %d)", i, n,
                                rc);
        }
    }
    *out = tp;
    return RS_OK;
}

void rs_threadpool_free(rs_threadpool *tp) {
    if (!tp) return;
    stop_workers(tp, tp->n - 1);
    free(tp->threads);
    free(tp);
}

int rs_threadpool_size(const rs_threadpool *tp) {
    return tp->n;
}

void rs_threadpool_run(rs_threadpool *tp, rs_threadpool_fn fn, void *ctx) {
    if (tp->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    tp->fn = fn;
    tp->ctx = ctx;
    atomic_store_explicit(&tp->pending.v, (uint32_t)(tp->n - 1), memory_order_relaxed);
    atomic_fetch_add(&tp->seq.v, 1); /* publishes fn, ctx, pending */
    if (atomic_load(&tp->n_sleeping.v) > 0) futex_wake_all(&tp->seq.v);
    fn(ctx, 0, tp->n);
    /* wait for the workers: spin while they make progress, then sleep on pending */
    for (;;) {
        uint32_t left = atomic_load_explicit(&tp->pending.v, memory_order_acquire);
        if (left == 0) break;
        if (spin_while_equal(&tp->pending.v, left) != left) continue;
        atomic_store(&tp->main_waiting.v, 1);
        while ((left = atomic_load(&tp->pending.v)) != 0) futex_wait(&tp->pending.v, left);
        atomic_store(&tp->main_waiting.v, 0);
        break;
    }
    atomic_thread_fence(memory_order_acquire);
}

void rs_threadpool_barrier(rs_threadpool *tp) {
    if (tp->n == 1) return;
    uint32_t gen = atomic_load(&tp->bar_gen.v);
    if (atomic_fetch_add(&tp->bar_count.v, 1) == (uint32_t)(tp->n - 1)) {
        /* last to arrive: nobody can re-enter before gen moves, so reset first */
        atomic_store(&tp->bar_count.v, 0);
        atomic_fetch_add(&tp->bar_gen.v, 1);
        if (atomic_load(&tp->bar_sleeping.v) > 0) futex_wake_all(&tp->bar_gen.v);
        return;
    }
    wait_while_equal(&tp->bar_gen.v, gen, &tp->bar_sleeping.v);
}

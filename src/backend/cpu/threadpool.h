/* threadpool.h — a persistent pool of worker threads for data-parallel kernels.
 *
 * The pool has n threads in total: the thread that calls rs_threadpool_run is
 * worker 0 and n - 1 pool threads are workers 1..n-1. A job is a function run
 * once on every worker with (ctx, ith, nth); rs_threadpool_run returns when all
 * have finished. Idle workers spin briefly (so the next dispatch of a decode
 * step starts within a microsecond) and then sleep on a futex, so an idle pool
 * burns no CPU.
 *
 * One job at a time: rs_threadpool_run must not be called concurrently or from
 * inside a job. The pool holds no global state. */
#ifndef RUSTY_BACKEND_CPU_THREADPOOL_H
#define RUSTY_BACKEND_CPU_THREADPOOL_H

#include "core/status.h"

typedef struct rs_threadpool rs_threadpool;

/* A job body: ith is this worker's index in [0, nth). */
typedef void (*rs_threadpool_fn)(void *ctx, int ith, int nth);

enum { RS_THREADPOOL_MAX = 1024 };

/* Creates a pool of n threads in total (1 <= n <= RS_THREADPOOL_MAX); n == 1
 * creates no threads and runs jobs on the caller. */
rs_status rs_threadpool_create(rs_threadpool **tp, int n, rs_error *err);
/* Stops and joins the workers; NULL is a no-op. */
void rs_threadpool_free(rs_threadpool *tp);
/* Number of threads (including the caller). */
int rs_threadpool_size(const rs_threadpool *tp);
/* Runs fn(ctx, ith, nth) on every thread and returns when all are done. */
void rs_threadpool_run(rs_threadpool *tp, rs_threadpool_fn fn, void *ctx);
/* Inside a job: waits until every thread of the job has reached the barrier. */
void rs_threadpool_barrier(rs_threadpool *tp);

#endif

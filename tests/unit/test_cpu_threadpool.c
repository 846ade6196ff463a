/* test_cpu_threadpool.c — the CPU thread pool: every worker runs each job once
 * with its own index, jobs see the caller's writes and the caller sees theirs,
 * barriers hold everybody back, idle pools wake up again, bad sizes fail. */
#include "testutil.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/threadpool.h"

typedef struct {
    rs_threadpool *tp;
    int round;
    int seen[8];          /* round number each thread saw */
    _Atomic int calls[8]; /* how often each ith was called */
    int phase[8];
    _Atomic int errors;
} job_ctx;

static void job_mark(void *p, int ith, int nth) {
    job_ctx *c = p;
    if (ith < 0 || ith >= nth || nth > 8) {
        atomic_fetch_add(&c->errors, 1);
        return;
    }
    c->seen[ith] = c->round; /* plain write, visible to the caller after run */
    atomic_fetch_add(&c->calls[ith], 1);
}

/* Every thread writes its phase, meets the others, then checks that all
 * threads have written it; a missing barrier shows up as a stale phase. */
static void job_barrier(void *p, int ith, int nth) {
    job_ctx *c = p;
    for (int step = 1; step <= 50; step++) {
        c->phase[ith] = step;
        rs_threadpool_barrier(c->tp);
        for (int k = 0; k < nth; k++)
            if (c->phase[k] != step) atomic_fetch_add(&c->errors, 1);
        rs_threadpool_barrier(c->tp);
    }
}

static void test_runs_every_thread(void **state) {
    (void)state;
    for (int n = 1; n <= 4; n++) {
        rs_threadpool *tp = NULL;
        rs_error err = {0};
        assert_int_equal(rs_threadpool_create(&tp, n, &err), RS_OK);
        assert_int_equal(rs_threadpool_size(tp), n);
        job_ctx c;
        memset(&c, 0, sizeof c);
        c.tp = tp;
        /* few rounds when oversubscribing the (possibly 2-core) test machine */
        int rounds = n <= 2 ? 2000 : 200;
        for (int r = 1; r <= rounds; r++) {
            c.round = r;
            rs_threadpool_run(tp, job_mark, &c);
            for (int i = 0; i < n; i++) assert_int_equal(c.seen[i], r);
        }
        for (int i = 0; i < n; i++) assert_int_equal(atomic_load(&c.calls[i]), rounds);
        for (int i = n; i < 8; i++) assert_int_equal(atomic_load(&c.calls[i]), 0);
        assert_int_equal(atomic_load(&c.errors), 0);
        rs_threadpool_free(tp);
    }
}

static void test_barrier(void **state) {
    (void)state;
    for (int n = 1; n <= 3; n++) {
        rs_threadpool *tp = NULL;
        assert_int_equal(rs_threadpool_create(&tp, n, NULL), RS_OK);
        job_ctx c;
        memset(&c, 0, sizeof c);
        c.tp = tp;
        for (int r = 0; r < 20; r++) rs_threadpool_run(tp, job_barrier, &c);
        assert_int_equal(atomic_load(&c.errors), 0);
        rs_threadpool_free(tp);
    }
}

/* After the spin budget the workers sleep on the futex; a job must still wake them. */
static void test_wakes_after_sleep(void **state) {
    (void)state;
    rs_threadpool *tp = NULL;
    assert_int_equal(rs_threadpool_create(&tp, 3, NULL), RS_OK);
    job_ctx c;
    memset(&c, 0, sizeof c);
    c.tp = tp;
    for (int r = 1; r <= 3; r++) {
        struct timespec ts = {0, 30 * 1000 * 1000};
        nanosleep(&ts, NULL);
        c.round = r;
        rs_threadpool_run(tp, job_mark, &c);
        for (int i = 0; i < 3; i++) assert_int_equal(c.seen[i], r);
    }
    rs_threadpool_run(tp, job_barrier, &c);
    assert_int_equal(atomic_load(&c.errors), 0);
    rs_threadpool_free(tp);
    rs_threadpool_free(NULL);
}

static void test_bad_size(void **state) {
    (void)state;
    rs_threadpool *tp = (rs_threadpool *)&tp;
    rs_error err = {0};
    assert_int_equal(rs_threadpool_create(&tp, 0, &err), RS_ERR_ARG);
    assert_null(tp);
    assert_non_null(strstr(err.msg, "thread pool size 0"));
    assert_int_equal(rs_threadpool_create(&tp, RS_THREADPOOL_MAX + 1, &err), RS_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_every_thread),
        cmocka_unit_test(test_barrier),
        cmocka_unit_test(test_wakes_after_sleep),
        cmocka_unit_test(test_bad_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

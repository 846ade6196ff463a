/* test_cuda_tune.c — the CUDA backend's tuning switches by name
 * (rs_cuda_tuning_parse, the form of $RUSTY_CUDA_TUNE): plain C, no GPU. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "backend/cuda/cuda_internal.h"

static rs_cuda_tuning base(void) {
    rs_cuda_tuning t;
    memset(&t, 0, sizeof t);
    t.chain = 1;
    t.fz_roll = 1;
    return t;
}

static void sets_the_named_switches(void **state) {
    (void)state;
    rs_cuda_tuning t = base(), want = base();
    rs_error err = {0};
    assert_int_equal(rs_cuda_tuning_parse("chain=0,fz_roll=-1,roll_grid=115", &t, &err), RS_OK);
    want.chain = 0;
    want.fz_roll = -1;
    want.roll_grid = 115;
    assert_memory_equal(&t, &want, sizeof t);
    /* the first and last fields of the table, and a repeated name: the last wins */
    assert_int_equal(rs_cuda_tuning_parse("pdl=0,chain_handoff=7,pdl=2", &t, &err), RS_OK);
    assert_int_equal(t.pdl, 2);
    assert_int_equal(t.chain_handoff, 7);
    assert_int_equal(rs_cuda_tuning_parse("", &t, &err), RS_OK);
    assert_int_equal(t.pdl, 2);
}

/* Each malformed spec fails with RS_ERR_ARG, a message that quotes it, and t as it was. */
static void rejects_malformed_specs(void **state) {
    (void)state;
    static const char *bad[] = {
        "chain",             /* no value */
        "=1",                /* no name */
        "chain=",            /* empty value */
        "chain=1x",          /* trailing junk */
        "chain=0x10",        /* not decimal */
        "chain=1,",          /* trailing comma */
        "chain=1,,pdl=0",    /* empty item */
        "chian=1",           /* unknown name */
        "chain_trace=1",     /* a pointer, not a switch */
        "chain=99999999999", /* beyond int */
        "fz_roll=1 ",        /* space */
        "chain=1,pdl=0,zz=3",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rs_cuda_tuning t = base(), before = base();
        rs_error err = {0};
        assert_int_equal(rs_cuda_tuning_parse(bad[i], &t, &err), RS_ERR_ARG);
        assert_non_null(strstr(err.msg, bad[i]));
        assert_memory_equal(&t, &before, sizeof t);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sets_the_named_switches),
        cmocka_unit_test(rejects_malformed_specs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

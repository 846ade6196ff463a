/* test_meta.c — typed metadata container: setters, getters, range checks, deep copy. */
#include "testutil.h"

#include <string.h>

#include "io/meta.h"

static void test_scalars(void **state) {
    (void)state;
    rs_meta m;
    rs_meta_init(&m);
    assert_int_equal(rs_meta_set_uint(&m, "a.u32", RS_V_U32, 4000000000u), RS_OK);
    assert_int_equal(rs_meta_set_int(&m, "a.neg", RS_V_I32, -5), RS_OK);
    assert_int_equal(rs_meta_set_float(&m, "a.f32", RS_V_F32, 0.1), RS_OK);
    assert_int_equal(rs_meta_set_bool(&m, "a.b", true), RS_OK);
    assert_int_equal(rs_meta_set_str(&m, "a.s", "hi\0x", 4), RS_OK);

    uint64_t u;
    uint32_t u32;
    int64_t i;
    double f;
    bool b;
    rs_str s;
    rs_error err = {0};
    assert_int_equal(rs_meta_get_u64(&m, "a.u32", &u, &err), RS_OK);
    assert_int_equal(u, 4000000000u);
    assert_int_equal(rs_meta_get_u32(&m, "a.u32", &u32, &err), RS_OK);
    assert_int_equal(rs_meta_get_i64(&m, "a.neg", &i, &err), RS_OK);
    assert_int_equal(i, -5);
    /* a negative value is not an unsigned one */
    assert_int_equal(rs_meta_get_u64(&m, "a.neg", &u, &err), RS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "a.neg"));
    assert_int_equal(rs_meta_get_f64(&m, "a.f32", &f, &err), RS_OK);
    assert_true(f == (double)0.1f); /* stored with f32 precision */
    assert_int_equal(rs_meta_get_bool(&m, "a.b", &b, &err), RS_OK);
    assert_true(b);
    assert_int_equal(rs_meta_get_str(&m, "a.s", &s, &err), RS_OK);
    assert_int_equal(s.len, 4);
    assert_memory_equal(s.ptr, "hi\0x", 4);
    /* wrong type and missing key */
    assert_int_equal(rs_meta_get_str(&m, "a.b", &s, &err), RS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "expected str"));
    assert_int_equal(rs_meta_get_u64(&m, "nope", &u, &err), RS_ERR_NOT_FOUND);
    /* replacing keeps position, removing shifts */
    assert_int_equal(rs_meta_set_uint(&m, "a.u32", RS_V_U8, 7), RS_OK);
    assert_string_equal(m.kv[0].key, "a.u32");
    assert_int_equal(m.kv[0].value.type, RS_V_U8);
    rs_meta_remove(&m, "a.u32");
    assert_int_equal(m.n, 4);
    assert_string_equal(m.kv[0].key, "a.neg");
    rs_meta_free(&m);
}

static void test_arrays(void **state) {
    (void)state;
    rs_meta m, m2;
    rs_meta_init(&m);
    rs_meta_init(&m2);
    int16_t vals[3] = {-1, 300, -32768};
    assert_int_equal(rs_meta_set_arr(&m, "arr.i16", RS_V_I16, vals, 3), RS_OK);
    rs_str strs[2] = {{"ab", 2}, {"", 0}};
    assert_int_equal(rs_meta_set_str_arr(&m, "arr.s", strs, 2), RS_OK);
    rs_array a;
    rs_error err;
    assert_int_equal(rs_meta_get_arr(&m, "arr.i16", &a, &err), RS_OK);
    assert_int_equal(a.n, 3);
    assert_int_equal(rs_array_get_i64(&a, 0), -1);
    assert_int_equal(rs_array_get_i64(&a, 1), 300);
    assert_int_equal(rs_array_get_i64(&a, 2), -32768);
    assert_true(rs_array_get_f64(&a, 2) == -32768.0);
    assert_int_equal(rs_meta_get_arr(&m, "arr.s", &a, &err), RS_OK);
    assert_int_equal(rs_array_get_str(&a, 0).len, 2);

    /* nested array of arrays, deep-copied into another meta */
    rs_value inner[2];
    uint8_t bytes[2] = {1, 2};
    inner[0] = (rs_value){.type = RS_V_ARR, .arr = {RS_V_U8, 2, bytes}};
    inner[1] = (rs_value){.type = RS_V_ARR, .arr = {RS_V_STR, 2, strs}};
    rs_value outer = {.type = RS_V_ARR, .arr = {RS_V_ARR, 2, inner}};
    assert_int_equal(rs_meta_set_value(&m, "nested", &outer), RS_OK);
    for (size_t k = 0; k < m.n; k++)
        assert_int_equal(rs_meta_set_value(&m2, m.kv[k].key, &m.kv[k].value), RS_OK);
    for (size_t k = 0; k < m.n; k++)
        assert_true(rs_value_equal(&m.kv[k].value, rs_meta_find(&m2, m.kv[k].key)));
    bytes[1] = 9; /* the copy must not alias the source */
    assert_false(rs_value_equal(&outer, rs_meta_find(&m2, "nested")));
    rs_meta_free(&m);
    rs_meta_free(&m2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_arrays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

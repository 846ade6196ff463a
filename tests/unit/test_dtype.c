/* test_dtype.c — the dtype table (geometry of every GGML id, names, row sizes)
 * and the element-wise conversions: fp16 and bf16 against float64 arithmetic
 * (all 65536 patterns each way plus rounding cases), integers, F64, bool. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dtype/dtype.h"
#include "dtype/fp16.h"

/* Geometry typed in from ggml-common.h / ggml.c's type_traits (not from our
 * table): id, name, elements per block, bytes per block, block-quantized. */
// NOLINTNEXTLINE(clang-analyzer-optin.performance.Padding): a test table, in reading order
static const struct {
    int id;
    const char *name;
    int64_t block;
    size_t bytes;
    bool quant;
} k_expected[] = {
    {0, "F32", 1, 4, false},        {1, "F16", 1, 2, false},        {2, "Q4_0", 32, 18, true},
    {3, "Q4_1", 32, 20, true},      {6, "Q5_0", 32, 22, true},      {7, "Q5_1", 32, 24, true},
    {8, "Q8_0", 32, 34, true},      {9, "Q8_1", 32, 36, true},      {10, "Q2_K", 256, 84, true},
    {11, "Q3_K", 256, 110, true},   {12, "Q4_K", 256, 144, true},   {13, "Q5_K", 256, 176, true},
    {14, "Q6_K", 256, 210, true},   {15, "Q8_K", 256, 292, true},   {16, "IQ2_XXS", 256, 66, true},
    {17, "IQ2_XS", 256, 74, true},  {18, "IQ3_XXS", 256, 98, true}, {19, "IQ1_S", 256, 50, true},
    {20, "IQ4_NL", 32, 18, true},   {21, "IQ3_S", 256, 110, true},  {22, "IQ2_S", 256, 82, true},
    {23, "IQ4_XS", 256, 136, true}, {24, "I8", 1, 1, false},        {25, "I16", 1, 2, false},
    {26, "I32", 1, 4, false},       {27, "I64", 1, 8, false},       {28, "F64", 1, 8, false},
    {29, "IQ1_M", 256, 56, true},   {30, "BF16", 1, 2, false},      {34, "TQ1_0", 256, 54, true},
    {35, "TQ2_0", 256, 66, true},   {39, "MXFP4", 32, 17, true},    {64, "U8", 1, 1, false},
    {65, "BOOL", 1, 1, false},
};

/* Types we promise to read / write. */
static const char *k_readable[] = {"F32",  "F16",  "BF16", "F64",  "I8",     "I16",
                                   "I32",  "I64",  "U8",   "BOOL", "Q4_0",   "Q4_1",
                                   "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K",   "Q3_K",
                                   "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ4_NL", "IQ4_XS"};
static const char *k_writable[] = {"F32",  "F16",  "BF16", "F64",  "Q4_0",   "Q4_1",
                                   "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K",   "Q3_K",
                                   "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ4_NL", "IQ4_XS"};

static bool in_list(const char *name, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0) return true;
    return false;
}

static void test_table(void **state) {
    (void)state;
    size_t n_exp = sizeof k_expected / sizeof k_expected[0];
    int known = 0;
    for (int id = -3; id < RS_DTYPE_COUNT + 3; id++) {
        const rs_dtype_traits *t = rs_dtype_get(id);
        size_t k = 0;
        while (k < n_exp && k_expected[k].id != id) k++;
        if (k == n_exp) { /* unused or out of range */
            assert_null(t);
            assert_string_equal(rs_dtype_name(id), "?");
            assert_false(rs_dtype_supports(id));
            continue;
        }
        known++;
        assert_non_null(t);
        assert_string_equal(t->name, k_expected[k].name);
        assert_string_equal(rs_dtype_name(id), k_expected[k].name);
        assert_int_equal(t->block_size, k_expected[k].block);
        assert_int_equal(t->type_size, k_expected[k].bytes);
        assert_int_equal(t->is_quantized, k_expected[k].quant);
        bool rd = in_list(t->name, k_readable, sizeof k_readable / sizeof *k_readable);
        bool wr = in_list(t->name, k_writable, sizeof k_writable / sizeof *k_writable);
        assert_int_equal(t->to_f32 != NULL, rd);
        assert_int_equal(t->from_f32 != NULL, wr);
        assert_int_equal(rs_dtype_supports(id), rd);
        rs_dtype got;
        assert_true(rs_dtype_from_name(k_expected[k].name, &got));
        assert_int_equal(got, id);
    }
    assert_int_equal(known, (int)n_exp);
    /* ids below RS_DTYPE_GGML_COUNT are GGML's; the safetensors-only ones are above */
    for (size_t k = 0; k < n_exp; k++)
        assert_int_equal(k_expected[k].id < RS_DTYPE_GGML_COUNT,
                         strcmp(k_expected[k].name, "U8") != 0 &&
                             strcmp(k_expected[k].name, "BOOL") != 0);
}

static void test_names(void **state) {
    (void)state;
    rs_dtype t = RS_DTYPE_F32;
    assert_true(rs_dtype_from_name("q4_k", &t));
    assert_int_equal(t, RS_DTYPE_Q4_K);
    assert_true(rs_dtype_from_name("iq4_nl", &t));
    assert_int_equal(t, RS_DTYPE_IQ4_NL);
    assert_true(rs_dtype_from_name("Bf16", &t));
    assert_int_equal(t, RS_DTYPE_BF16);
    t = RS_DTYPE_F16;
    assert_false(rs_dtype_from_name("Q4_2", &t)); /* removed from GGML */
    assert_false(rs_dtype_from_name("", &t));
    assert_false(rs_dtype_from_name("Q4_", &t));
    assert_false(rs_dtype_from_name("Q4_0 ", &t));
    assert_false(rs_dtype_from_name("?", &t));
    assert_false(rs_dtype_from_name(NULL, &t));
    assert_int_equal(t, RS_DTYPE_F16); /* untouched on failure */
}

static void test_row_size(void **state) {
    (void)state;
    size_t b = 0;
    assert_true(rs_dtype_row_size(RS_DTYPE_Q4_0, 64, &b));
    assert_int_equal(b, 36);
    assert_true(rs_dtype_row_size(RS_DTYPE_Q6_K, 512, &b));
    assert_int_equal(b, 420);
    assert_true(rs_dtype_row_size(RS_DTYPE_F16, 7, &b));
    assert_int_equal(b, 14);
    assert_true(rs_dtype_row_size(RS_DTYPE_IQ1_M, 256, &b)); /* geometry-only types too */
    assert_int_equal(b, 56);
    assert_true(rs_dtype_row_size(RS_DTYPE_Q8_0, 0, &b));
    assert_int_equal(b, 0);
    assert_false(rs_dtype_row_size(RS_DTYPE_Q4_0, 33, &b));
    assert_false(rs_dtype_row_size(RS_DTYPE_Q4_K, 128, &b)); /* 128 % 256 != 0 */
    assert_false(rs_dtype_row_size(RS_DTYPE_F32, -4, &b));
    assert_false(rs_dtype_row_size((rs_dtype)4, 32, &b)); /* removed Q4_2 */
    assert_false(rs_dtype_row_size((rs_dtype)200, 32, &b));
    /* overflow of size_t: 8 * (INT64_MAX) does not fit in 64 bits */
    assert_false(rs_dtype_row_size(RS_DTYPE_F64, INT64_MAX, &b));
    assert_true(rs_dtype_row_size(RS_DTYPE_F64, (int64_t)(SIZE_MAX / 8), &b));
    assert_int_equal(b, (SIZE_MAX / 8) * 8);
    assert_false(rs_dtype_row_size(RS_DTYPE_F64, (int64_t)(SIZE_MAX / 8) + 1, &b));
}

/* ---- fp16 ---- */

/* Value of an fp16 pattern from the IEEE formula, in float64. */
static double fp16_formula(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp(m, -24);
    else
        v = ldexp(1024 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

/* f32 -> fp16 value by float64 arithmetic: scale to units of the fp16 ulp at
 * x's exponent, round to nearest even with nearbyint, overflow above 65504. */
static double fp16_round_ref(float xf) {
    double x = xf, a = fabs(x);
    if (isinf(a)) return x;
    double r = 0;
    if (a > 0) {
        int e;
        frexp(a, &e); /* a in [2^(e-1), 2^e) */
        int E = e - 1 < -14 ? -14 : e - 1;
        double ulp = ldexp(1, E - 10);
        r = nearbyint(a / ulp) * ulp;
        if (r > 65504) r = INFINITY;
    }
    return signbit(x) ? -r : r;
}

static void test_fp16_all_patterns(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = rs_fp16_to_f32((rs_fp16)h);
        double want = fp16_formula((uint16_t)h);
        if (isnan(want)) {
            assert_true(isnan(f));
            rs_fp16 back = rs_f32_to_fp16(f);
            /* stays NaN, same sign, quiet bit set (as F16C does) */
            assert_int_equal(back & 0x7c00, 0x7c00);
            assert_true((back & 0x03ff) != 0);
            assert_int_equal(back & 0x8000, h & 0x8000);
            assert_int_equal(back & 0x0200, 0x0200);
            continue;
        }
        assert_true((double)f == want);
        assert_int_equal(signbit(f) != 0, (h & 0x8000) != 0);
        assert_int_equal(rs_f32_to_fp16(f), h);
    }
}

static void check_fp16_round(float x) {
    rs_fp16 h = rs_f32_to_fp16(x);
    double want = fp16_round_ref(x);
    double got = fp16_formula(h);
    if (!(got == want && (signbit(got) != 0) == (signbit(want) != 0))) {
        print_error("fp16(%.9g = 0x%08x): got 0x%04x (%.9g), want %.9g\n", (double)x,
                    rs_f32_to_bits(x), h, got, want);
        fail();
    }
}

static void test_fp16_rounding(void **state) {
    (void)state;
    /* exact halfway points between neighbours, and one f32 ulp either side */
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double lo = fp16_formula((uint16_t)h), hi = fp16_formula((uint16_t)(h + 1));
        float mid = (float)((lo + hi) / 2); /* exact: 12 significant bits */
        assert_true((double)mid == (lo + hi) / 2);
        check_fp16_round(mid);
        check_fp16_round(-mid);
        check_fp16_round(nextafterf(mid, 0));
        check_fp16_round(nextafterf(mid, INFINITY));
    }
    /* named cases */
    assert_int_equal(rs_f32_to_fp16(1.0f + 0x1p-11f), 0x3c00);         /* tie -> even */
    assert_int_equal(rs_f32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);     /* tie -> even */
    assert_int_equal(rs_f32_to_fp16(0x1p-25f), 0x0000);                /* tie with 0 */
    assert_int_equal(rs_f32_to_fp16(nextafterf(0x1p-25f, 1)), 0x0001); /* just above */
    assert_int_equal(rs_f32_to_fp16(3 * 0x1p-25f), 0x0002);            /* subnormal tie */
    assert_int_equal(rs_f32_to_fp16(0x1p-14f), 0x0400);                /* smallest normal */
    assert_int_equal(rs_f32_to_fp16(65504.0f), 0x7bff);
    assert_int_equal(rs_f32_to_fp16(65519.99f), 0x7bff);
    assert_int_equal(rs_f32_to_fp16(65520.0f), 0x7c00); /* tie above max -> inf */
    assert_int_equal(rs_f32_to_fp16(-1e10f), 0xfc00);
    assert_int_equal(rs_f32_to_fp16(INFINITY), 0x7c00);
    assert_int_equal(rs_f32_to_fp16(-0.0f), 0x8000);
    assert_int_equal(rs_f32_to_fp16(1e-30f), 0x0000);
    assert_int_equal(rs_f32_to_fp16(FLT_TRUE_MIN), 0x0000);
    /* random f32 bit patterns: half near the fp16 range, half anywhere */
    uint64_t s = 0x1234567;
    for (int i = 0; i < 1000000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        uint32_t bits = (uint32_t)(s >> 16);
        if (i & 1) bits = (bits & 0x807fffffu) | ((uint32_t)(95 + (s >> 56) % 50) << 23);
        float x = rs_bits_to_f32(bits);
        if (isnan(x)) continue;
        check_fp16_round(x);
    }
}

/* ---- bf16 ---- */

static double bf16_formula(uint16_t b) {
    int e = (b >> 7) & 255, m = b & 127;
    double v;
    if (e == 255)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp(m, -133);
    else
        v = ldexp(128 + m, e - 134);
    return (b & 0x8000) ? -v : v;
}

static double bf16_round_ref(float xf) {
    double x = xf, a = fabs(x);
    if (isinf(a)) return x;
    double r = 0;
    if (a > 0) {
        int e;
        frexp(a, &e);
        int E = e - 1 < -126 ? -126 : e - 1;
        double ulp = ldexp(1, E - 7);
        r = nearbyint(a / ulp) * ulp;
        if (r >= 0x1p128) r = INFINITY;
    }
    return signbit(x) ? -r : r;
}

static void test_bf16(void **state) {
    (void)state;
    for (uint32_t b = 0; b < 65536; b++) {
        float f = rs_bf16_to_f32((rs_bf16)b);
        double want = bf16_formula((uint16_t)b);
        if (isnan(want)) {
            assert_true(isnan(f));
            rs_bf16 back = rs_f32_to_bf16(f);
            assert_int_equal(back & 0x7f80, 0x7f80);
            assert_true((back & 0x7f) != 0);
            assert_int_equal(back & 0x8000, b & 0x8000);
            continue;
        }
        assert_true((double)f == want);
        assert_int_equal(rs_f32_to_bf16(f), b);
    }
    assert_int_equal(rs_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);     /* tie -> even */
    assert_int_equal(rs_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82); /* tie -> even */
    assert_int_equal(rs_f32_to_bf16(FLT_MAX), 0x7f80);            /* rounds up to inf */
    assert_int_equal(rs_f32_to_bf16(rs_bits_to_f32(0x7f7f7fffu)), 0x7f7f);
    assert_int_equal(rs_f32_to_bf16(rs_bits_to_f32(0x7fa00000u)) & 0x7fc0,
                     0x7fc0); /* sNaN quieted */
    uint64_t s = 0x89abcdef;
    for (int i = 0; i < 1000000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        float x = rs_bits_to_f32((uint32_t)(s >> 20));
        if (isnan(x)) continue;
        rs_bf16 b = rs_f32_to_bf16(x);
        double want = bf16_round_ref(x), got = bf16_formula(b);
        if (!(got == want && (signbit(got) != 0) == (signbit(want) != 0))) {
            print_error("bf16(0x%08x): got 0x%04x, want %.9g\n", rs_f32_to_bits(x), b, want);
            fail();
        }
    }
}

/* ---- element-wise row converters through the table ---- */

static void to_f32(rs_dtype t, const void *src, float *dst, int64_t n) {
    const rs_dtype_traits *tr = rs_dtype_get(t);
    assert_non_null(tr);
    assert_non_null(tr->to_f32);
    tr->to_f32(src, dst, n);
}

static void test_plain_rows(void **state) {
    (void)state;
    /* every source starts at an odd address: safetensors offsets are arbitrary */
    unsigned char buf[1 + 8 * 4];
    float out[4];

    const int16_t i16[4] = {-32768, -1, 0, 32767};
    memcpy(buf + 1, i16, sizeof i16);
    to_f32(RS_DTYPE_I16, buf + 1, out, 4);
    assert_true(out[0] == -32768.0f && out[1] == -1.0f && out[2] == 0.0f && out[3] == 32767.0f);

    const int32_t i32[4] = {INT32_MIN, -7, 16777217, INT32_MAX};
    memcpy(buf + 1, i32, sizeof i32);
    to_f32(RS_DTYPE_I32, buf + 1, out, 4);
    /* 2^24 + 1 and INT32_MAX are not f32 values: nearest even */
    assert_true(out[0] == -0x1p31f && out[1] == -7.0f && out[2] == 16777216.0f &&
                out[3] == 0x1p31f);

    const int64_t i64[4] = {INT64_MIN, -3, 0, (int64_t)1 << 40};
    memcpy(buf + 1, i64, sizeof i64);
    to_f32(RS_DTYPE_I64, buf + 1, out, 4);
    assert_true(out[0] == -0x1p63f && out[1] == -3.0f && out[2] == 0.0f && out[3] == 0x1p40f);

    const int8_t i8[4] = {-128, -1, 1, 127};
    memcpy(buf + 1, i8, sizeof i8);
    to_f32(RS_DTYPE_I8, buf + 1, out, 4);
    assert_true(out[0] == -128.0f && out[1] == -1.0f && out[2] == 1.0f && out[3] == 127.0f);

    const uint8_t u8[4] = {0, 1, 128, 255};
    memcpy(buf + 1, u8, sizeof u8);
    to_f32(RS_DTYPE_U8, buf + 1, out, 4);
    assert_true(out[0] == 0.0f && out[1] == 1.0f && out[2] == 128.0f && out[3] == 255.0f);

    const uint8_t bools[4] = {0, 1, 2, 255};
    memcpy(buf + 1, bools, sizeof bools);
    to_f32(RS_DTYPE_BOOL, buf + 1, out, 4);
    assert_true(out[0] == 0.0f && out[1] == 1.0f && out[2] == 1.0f && out[3] == 1.0f);

    const double f64[4] = {0.1, -1e300, 1e-50, 3.0};
    memcpy(buf + 1, f64, sizeof f64);
    to_f32(RS_DTYPE_F64, buf + 1, out, 4);
    assert_true(out[0] == 0.1f && isinf(out[1]) && out[1] < 0 && out[2] == 0.0f && out[3] == 3.0f);
    float f64_src[2] = {0.1f, -2.5f};
    double f64_back[2];
    rs_dtype_get(RS_DTYPE_F64)->from_f32(f64_src, f64_back, 2);
    assert_true(f64_back[0] == (double)0.1f && f64_back[1] == -2.5);

    /* F16 / BF16 rows: little-endian pairs, unaligned */
    const uint8_t f16[8] = {0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00, 0xff, 0x7b};
    memcpy(buf + 1, f16, sizeof f16);
    to_f32(RS_DTYPE_F16, buf + 1, out, 4);
    assert_true(out[0] == 1.0f && out[1] == -2.0f && out[2] == 0x1p-24f && out[3] == 65504.0f);
    unsigned char back[9];
    rs_dtype_get(RS_DTYPE_F16)->from_f32(out, back + 1, 4);
    assert_memory_equal(back + 1, f16, 8);

    const uint8_t bf[8] = {0x80, 0x3f, 0x49, 0x40, 0x80, 0xbf, 0x80, 0x7f};
    memcpy(buf + 1, bf, sizeof bf);
    to_f32(RS_DTYPE_BF16, buf + 1, out, 4);
    assert_true(out[0] == 1.0f && out[1] == 3.140625f && out[2] == -1.0f && isinf(out[3]));
    rs_dtype_get(RS_DTYPE_BF16)->from_f32(out, back + 1, 4);
    assert_memory_equal(back + 1, bf, 8);

    const float f32v[3] = {1.5f, -0.0f, 1e-40f};
    memcpy(buf + 1, f32v, sizeof f32v);
    to_f32(RS_DTYPE_F32, buf + 1, out, 3);
    assert_memory_equal(out, f32v, sizeof f32v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),         cmocka_unit_test(test_names),
        cmocka_unit_test(test_row_size),      cmocka_unit_test(test_fp16_all_patterns),
        cmocka_unit_test(test_fp16_rounding), cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_plain_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

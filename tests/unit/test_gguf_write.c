/* test_gguf_write.c — the streaming GGUF writer.
 *
 * Checked against handwritten bytes (a tiny file built with gb_* from the GGUF
 * spec), against the shared real files (written by llama.cpp's / gguf-py's
 * writers: our output must reproduce them byte for byte), and by round trips
 * through the reader for every value type, nested arrays and every tensor type. */
#include "testutil.h"

#include <string.h>
#include <unistd.h>

#include "gguf_testlib.h"
#include "io/gguf.h"

/* Shared files are optional: a test needing an absent one is skipped, the
 * others still run, and the program exits 77 (ctest "skipped") at the end. */
static int shared_missing;
static const char *shared_or_skip(const char *rel) {
    const char *p = tu_shared(rel);
    if (!p) {
        printf("SKIP: %s not found (shared models absent)\n", rel);
        shared_missing = 1;
        skip();
    }
    return p;
}

static bool exists(const char *path) {
    return access(path, F_OK) == 0;
}

static const char *tmp_name(const char *path) {
    static char buf[8500];
    snprintf(buf, sizeof buf, "%s.tmp", path);
    return buf;
}

/* One key and one F32 tensor; the expected bytes are spelled out field by field. */
static void test_exact_bytes(void **state) {
    (void)state;
    rs_meta m;
    rs_meta_init(&m);
    assert_int_equal(rs_meta_set_uint(&m, "a", RS_V_U32, 7), RS_OK);
    float data[2] = {1.0f, 2.0f};
    rs_tensor_info t = {.name = "t",
                        .type = RS_DTYPE_F32,
                        .n_dims = 1,
                        .ne = {2, 1, 1, 1},
                        .nbytes = 8,
                        .data = data};
    const char *path = tu_tmp("exact.gguf");
    rs_error err = {0};
    assert_int_equal(rs_gguf_write(path, &m, &t, 1, &err), RS_OK);

    gb want = {0};
    gb_raw(&want, "GGUF", 4);
    gb_u32(&want, 3);
    gb_u64(&want, 1); /* tensors */
    gb_u64(&want, 1); /* kvs */
    gb_str(&want, "a");
    gb_u32(&want, 4); /* u32 */
    gb_u32(&want, 7);
    gb_str(&want, "t");
    gb_u32(&want, 1);           /* n_dims */
    gb_u64(&want, 2);           /* ne[0] */
    gb_u32(&want, 0);           /* F32 */
    gb_u64(&want, 0);           /* offset */
    gb_pad(&want, 32);          /* data section aligned */
    gb_u32(&want, 0x3f800000u); /* 1.0f */
    gb_u32(&want, 0x40000000u); /* 2.0f */
    gb_pad(&want, 32);          /* ggml pads the last tensor too */

    size_t n;
    char *got = tu_read_file(path, &n);
    assert_non_null(got);
    assert_int_equal(n, want.n);
    assert_memory_equal(got, want.p, n);
    assert_false(exists(tmp_name(path)));
    free(got);
    gb_free(&want);
    remove(path);
    rs_meta_free(&m);
}

static void assert_same_file(const rs_gguf *a, const rs_gguf *b) {
    assert_int_equal(a->meta.n, b->meta.n);
    for (size_t i = 0; i < a->meta.n; i++) {
        assert_string_equal(a->meta.kv[i].key, b->meta.kv[i].key);
        assert_true(rs_value_equal(&a->meta.kv[i].value, &b->meta.kv[i].value));
    }
    assert_int_equal(a->n_tensors, b->n_tensors);
    for (uint64_t i = 0; i < a->n_tensors; i++) {
        const rs_tensor_info *x = &a->tensors[i], *y = &b->tensors[i];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->type, y->type);
        assert_int_equal(x->n_dims, y->n_dims);
        for (int j = 0; j < RS_MAX_DIMS; j++) assert_int_equal(x->ne[j], y->ne[j]);
        assert_int_equal(x->nbytes, y->nbytes);
        assert_int_equal(x->offset, y->offset);
        if (x->nbytes) assert_memory_equal(x->data, y->data, x->nbytes);
    }
}

/* Read, write, read back: same metadata in the same order, same tensor bytes.
 * For the v3 files (written by ggml / gguf-py) the output must equal the
 * original file byte for byte, up to the zero padding after the last tensor. */
static void test_roundtrip_shared(void **state) {
    (void)state;
    static const char *files[] = {
        "models/stories260K.gguf",
        "models/tinyllamas-stories-260k-f32.v1.gguf",
        "models/TinyStories-656K.f16.gguf",
        "models/tinystories-656k-q8_0.gguf",
        "models/TinyStories-656K-Q2_K.gguf",
        "tokenizer-tests/ggml-vocab-llama-spm.gguf",
        "tokenizer-tests/ggml-vocab-bert-bge.gguf",
        "tokenizer-tests/ggml-vocab-gpt-2.gguf",
        "tokenizer-tests/ggml-vocab-deepseek-llm.gguf",
    };
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        const char *src = shared_or_skip(files[f]);
        rs_gguf a, b;
        rs_error err = {0};
        assert_int_equal(rs_gguf_open(&a, src, &err), RS_OK);
        const char *out = tu_tmp("roundtrip.gguf");
        rs_status st = rs_gguf_write(out, &a.meta, a.tensors, a.n_tensors, &err);
        if (st) fprintf(stderr, "%s\n", err.msg);
        assert_int_equal(st, RS_OK);
        assert_int_equal(rs_gguf_open(&b, out, &err), RS_OK);
        assert_int_equal(b.version, 3);
        assert_same_file(&a, &b);
        if (a.version == 3) {
            size_t keep = a.map.size < b.map.size ? a.map.size : b.map.size;
            assert_memory_equal(a.map.data, b.map.data, keep);
            for (size_t i = keep; i < b.map.size; i++) assert_int_equal(b.map.data[i], 0);
        }
        printf("  %s: %zu -> %zu bytes, identical content\n", files[f], a.map.size, b.map.size);
        rs_gguf_close(&a);
        rs_gguf_close(&b);
        remove(out);
    }
}

/* Block geometry from the GGUF/ggml spec (elements per block, bytes per block). */
static const struct {
    rs_dtype t;
    int64_t block;
    uint64_t bytes;
} geometry[] = {
    {RS_DTYPE_F32, 1, 4},        {RS_DTYPE_F16, 1, 2},        {RS_DTYPE_Q4_0, 32, 18},
    {RS_DTYPE_Q4_1, 32, 20},     {RS_DTYPE_Q5_0, 32, 22},     {RS_DTYPE_Q5_1, 32, 24},
    {RS_DTYPE_Q8_0, 32, 34},     {RS_DTYPE_Q8_1, 32, 36},     {RS_DTYPE_Q2_K, 256, 84},
    {RS_DTYPE_Q3_K, 256, 110},   {RS_DTYPE_Q4_K, 256, 144},   {RS_DTYPE_Q5_K, 256, 176},
    {RS_DTYPE_Q6_K, 256, 210},   {RS_DTYPE_Q8_K, 256, 292},   {RS_DTYPE_IQ2_XXS, 256, 66},
    {RS_DTYPE_IQ2_XS, 256, 74},  {RS_DTYPE_IQ3_XXS, 256, 98}, {RS_DTYPE_IQ1_S, 256, 50},
    {RS_DTYPE_IQ4_NL, 32, 18},   {RS_DTYPE_IQ3_S, 256, 110},  {RS_DTYPE_IQ2_S, 256, 82},
    {RS_DTYPE_IQ4_XS, 256, 136}, {RS_DTYPE_I8, 1, 1},         {RS_DTYPE_I16, 1, 2},
    {RS_DTYPE_I32, 1, 4},        {RS_DTYPE_I64, 1, 8},        {RS_DTYPE_F64, 1, 8},
    {RS_DTYPE_IQ1_M, 256, 56},   {RS_DTYPE_BF16, 1, 2},       {RS_DTYPE_TQ1_0, 256, 54},
    {RS_DTYPE_TQ2_0, 256, 66},   {RS_DTYPE_MXFP4, 32, 17},
};
#define N_GEOM (sizeof geometry / sizeof geometry[0])

static void fill_meta_all_types(rs_meta *m) {
    assert_int_equal(rs_meta_set_uint(m, "general.alignment", RS_V_U32, 64), RS_OK);
    assert_int_equal(rs_meta_set_uint(m, "u8", RS_V_U8, 255), RS_OK);
    assert_int_equal(rs_meta_set_int(m, "i8", RS_V_I8, -128), RS_OK);
    assert_int_equal(rs_meta_set_uint(m, "u16", RS_V_U16, 65535), RS_OK);
    assert_int_equal(rs_meta_set_int(m, "i16", RS_V_I16, -32768), RS_OK);
    assert_int_equal(rs_meta_set_uint(m, "u32", RS_V_U32, 4294967295u), RS_OK);
    assert_int_equal(rs_meta_set_int(m, "i32", RS_V_I32, INT32_MIN), RS_OK);
    assert_int_equal(rs_meta_set_float(m, "f32", RS_V_F32, -0.1), RS_OK);
    assert_int_equal(rs_meta_set_bool(m, "bool", true), RS_OK);
    assert_int_equal(rs_meta_set_str(m, "str", "a\0b\xff", 4), RS_OK);
    assert_int_equal(rs_meta_set_str(m, "empty.str", "", 0), RS_OK);
    assert_int_equal(rs_meta_set_uint(m, "u64", RS_V_U64, UINT64_MAX), RS_OK);
    assert_int_equal(rs_meta_set_int(m, "i64", RS_V_I64, INT64_MIN), RS_OK);
    assert_int_equal(rs_meta_set_float(m, "f64", RS_V_F64, -0.0), RS_OK);
    /* one array per scalar element type, packed little-endian */
    unsigned char raw[64];
    for (int i = 0; i < 64; i++) raw[i] = (unsigned char)(i * 37 + 1);
    for (rs_vtype t = RS_V_U8; t <= RS_V_F64; t++) {
        if (t == RS_V_STR || t == RS_V_ARR) continue;
        char key[32];
        snprintf(key, sizeof key, "arr.%s", rs_vtype_name(t));
        if (t == RS_V_BOOL) {
            const unsigned char b[5] = {1, 0, 0, 1, 1};
            assert_int_equal(rs_meta_set_arr(m, key, t, b, 5), RS_OK);
        } else {
            assert_int_equal(rs_meta_set_arr(m, key, t, raw, 64 / rs_vtype_size(t)), RS_OK);
        }
    }
    assert_int_equal(rs_meta_set_arr(m, "arr.empty", RS_V_I32, NULL, 0), RS_OK);
    rs_str strs[3] = {{"x", 1}, {"", 0}, {"\0\n", 2}};
    assert_int_equal(rs_meta_set_str_arr(m, "arr.str", strs, 3), RS_OK);
    /* arrays of arrays: [[u16 x2], [str x3], [[], [i8 x1]]] */
    const uint16_t u16s[2] = {1, 65535};
    const int8_t i8s[1] = {-1};
    rs_value inner2[2] = {{.type = RS_V_ARR, .arr = {RS_V_I8, 0, NULL}},
                          {.type = RS_V_ARR, .arr = {RS_V_I8, 1, i8s}}};
    rs_value outer[3] = {{.type = RS_V_ARR, .arr = {RS_V_U16, 2, u16s}},
                         {.type = RS_V_ARR, .arr = {RS_V_STR, 3, strs}},
                         {.type = RS_V_ARR, .arr = {RS_V_ARR, 2, inner2}}};
    rs_value nested = {.type = RS_V_ARR, .arr = {RS_V_ARR, 3, outer}};
    assert_int_equal(rs_meta_set_value(m, "arr.nested", &nested), RS_OK);
}

/* Every value type and every tensor type, alignment 64, padding checked. */
static void test_all_types_roundtrip(void **state) {
    (void)state;
    rs_meta m;
    rs_meta_init(&m);
    fill_meta_all_types(&m);
    rs_tensor_info t[N_GEOM + 2];
    unsigned char *bufs[N_GEOM + 2];
    uint64_t seed = 12345;
    size_t n = 0;
    for (size_t i = 0; i < N_GEOM; i++, n++) {
        const rs_dtype_traits *tr = rs_dtype_get((int)geometry[i].t);
        assert_non_null(tr); /* the library's table agrees with the spec */
        assert_int_equal(tr->block_size, geometry[i].block);
        assert_int_equal(tr->type_size, geometry[i].bytes);
        char *name = malloc(32);
        snprintf(name, 32, "t.%s", tr->name);
        t[n] = (rs_tensor_info){.name = name,
                                .type = geometry[i].t,
                                .n_dims = 3,
                                .ne = {geometry[i].block * 2, 3, 1, 1},
                                .nbytes = geometry[i].bytes * 2 * 3};
    }
    /* 6 bytes (padding needed) and an empty tensor */
    t[n++] = (rs_tensor_info){
        .name = strdup("odd"), .type = RS_DTYPE_F16, .n_dims = 1, .ne = {3, 1, 1, 1}, .nbytes = 6};
    t[n++] = (rs_tensor_info){.name = strdup("empty"),
                              .type = RS_DTYPE_F32,
                              .n_dims = 2,
                              .ne = {0, 5, 1, 1},
                              .nbytes = 0};
    for (size_t i = 0; i < n; i++) {
        bufs[i] = malloc(t[i].nbytes + 1);
        for (uint64_t j = 0; j < t[i].nbytes; j++)
            bufs[i][j] = (unsigned char)(tu_randf(&seed) * 127);
        t[i].data = bufs[i];
    }
    const char *path = tu_tmp("alltypes.gguf");
    rs_error err = {0};
    rs_status st = rs_gguf_write(path, &m, t, n, &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, RS_OK);

    rs_gguf g;
    st = rs_gguf_open(&g, path, &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, RS_OK);
    assert_int_equal(g.alignment, 64);
    assert_int_equal(g.data_offset % 64, 0);
    assert_int_equal(g.meta.n, m.n);
    for (size_t i = 0; i < m.n; i++) {
        assert_string_equal(g.meta.kv[i].key, m.kv[i].key);
        assert_true(rs_value_equal(&g.meta.kv[i].value, &m.kv[i].value));
    }
    assert_int_equal(g.n_tensors, n);
    uint64_t end = 0;
    for (size_t i = 0; i < n; i++) {
        const rs_tensor_info *r = &g.tensors[i];
        assert_string_equal(r->name, t[i].name);
        assert_int_equal(r->type, t[i].type);
        assert_int_equal(r->n_dims, t[i].n_dims);
        assert_int_equal(r->nbytes, t[i].nbytes);
        assert_int_equal(r->offset % 64, 0);
        assert_int_equal(r->offset, end); /* padding is the minimum */
        if (r->nbytes) assert_memory_equal(r->data, t[i].data, r->nbytes);
        end = r->offset + (r->nbytes + 63) / 64 * 64;
        for (uint64_t p = r->offset + r->nbytes; p < end; p++)
            assert_int_equal(g.map.data[g.data_offset + p], 0);
    }
    assert_int_equal(g.map.size, g.data_offset + end);
    rs_gguf_close(&g);
    remove(path);
    for (size_t i = 0; i < n; i++) {
        free((void *)t[i].name);
        free(bufs[i]);
    }
    rs_meta_free(&m);
}

/* A vocab-only file: no tensors, header padded like ggml does. */
static void test_no_tensors(void **state) {
    (void)state;
    rs_meta m;
    rs_meta_init(&m);
    assert_int_equal(rs_meta_set_str(&m, "general.name", "v", 1), RS_OK);
    const char *path = tu_tmp("vocab.gguf");
    rs_error err = {0};
    assert_int_equal(rs_gguf_write(path, &m, NULL, 0, &err), RS_OK);
    rs_gguf g;
    assert_int_equal(rs_gguf_open(&g, path, &err), RS_OK);
    assert_int_equal(g.n_tensors, 0);
    assert_int_equal(g.map.size, 64); /* 4+4+8+8 + 8+12 + 4 + 8+1 = 57 -> 64 */
    rs_gguf_close(&g);
    remove(path);
    rs_meta_free(&m);
}

/* Streaming: the file appears only at close; misuse is refused; abort cleans up. */
static void test_streaming_and_abort(void **state) {
    (void)state;
    rs_meta m;
    rs_meta_init(&m);
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
    rs_tensor_info t[2] = {
        {.name = "a", .type = RS_DTYPE_F32, .n_dims = 1, .ne = {4, 1, 1, 1}, .nbytes = 16},
        {.name = "b", .type = RS_DTYPE_F32, .n_dims = 1, .ne = {2, 1, 1, 1}, .nbytes = 8},
    };
    const char *p = tu_tmp("stream.gguf");
    char path[4200];
    snprintf(path, sizeof path, "%s", p);
    rs_error err = {0};
    rs_gguf_writer *w;

    assert_int_equal(rs_gguf_writer_open(&w, path, &m, t, 2, &err), RS_OK);
    assert_true(exists(tmp_name(path)));
    assert_false(exists(path));
    assert_int_equal(rs_gguf_writer_put(w, 1, b, 8, &err), RS_ERR_ARG); /* out of order */
    assert_non_null(strstr(err.msg, "out of order"));
    assert_int_equal(rs_gguf_writer_put(w, 0, a, 12, &err), RS_ERR_ARG); /* wrong size */
    assert_non_null(strstr(err.msg, "expected 16"));
    assert_int_equal(rs_gguf_writer_put(w, 0, a, 16, &err), RS_OK);
    rs_gguf_writer_abort(w);
    assert_false(exists(tmp_name(path)));
    assert_false(exists(path));

    /* closing early fails and removes the partial file */
    assert_int_equal(rs_gguf_writer_open(&w, path, &m, t, 2, &err), RS_OK);
    assert_int_equal(rs_gguf_writer_put(w, 0, a, 16, &err), RS_OK);
    assert_int_equal(rs_gguf_writer_close(w, &err), RS_ERR_ARG);
    assert_non_null(strstr(err.msg, "1 of 2"));
    assert_false(exists(tmp_name(path)));
    assert_false(exists(path));

    /* the full sequence */
    assert_int_equal(rs_gguf_writer_open(&w, path, &m, t, 2, &err), RS_OK);
    assert_int_equal(rs_gguf_writer_put(w, 0, a, 16, &err), RS_OK);
    assert_int_equal(rs_gguf_writer_put(w, 1, b, 8, &err), RS_OK);
    assert_int_equal(rs_gguf_writer_close(w, &err), RS_OK);
    assert_false(exists(tmp_name(path)));
    rs_gguf g;
    assert_int_equal(rs_gguf_open(&g, path, &err), RS_OK);
    assert_memory_equal(rs_gguf_find_tensor(&g, "b")->data, b, 8);
    assert_int_equal(rs_gguf_find_tensor(&g, "b")->offset, 32);
    rs_gguf_close(&g);
    remove(path);

    /* a directory that does not exist */
    assert_int_equal(rs_gguf_writer_open(&w, "/nonexistent/dir/x.gguf", &m, t, 2, &err), RS_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/dir/x.gguf.tmp"));
    rs_meta_free(&m);
}

/* Bad input is refused at open, naming the culprit, and no file is created. */
static void expect_refused(const rs_meta *m, const rs_tensor_info *t, uint64_t n,
                           const char *needle) {
    const char *path = tu_tmp("refused.gguf");
    rs_error err = {0};
    rs_gguf_writer *w = (rs_gguf_writer *)1;
    assert_int_equal(rs_gguf_writer_open(&w, path, m, t, n, &err), RS_ERR_ARG);
    assert_null(w);
    if (!strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
    assert_false(exists(path));
    assert_false(exists(tmp_name(path)));
}

static void test_invalid_inputs(void **state) {
    (void)state;
    rs_meta m;
    rs_meta_init(&m);
    rs_tensor_info ok = {
        .name = "w", .type = RS_DTYPE_Q8_0, .n_dims = 2, .ne = {64, 2, 1, 1}, .nbytes = 2 * 2 * 34};
    rs_tensor_info t[2] = {ok, ok};

    t[1].name = "w";
    expect_refused(&m, t, 2, "duplicate tensor name 'w'");
    t[1] = ok;
    char long_name[65];
    memset(long_name, 'x', 64);
    long_name[64] = '\0';
    t[1].name = long_name;
    expect_refused(&m, t, 2, "at most 63");
    t[1] = ok;
    t[1].name = "";
    expect_refused(&m, t, 2, "has no name");
    t[0].nbytes = 100;
    expect_refused(&m, t, 1, "nbytes 100 does not match");
    t[0] = ok;
    t[0].ne[0] = 48;
    expect_refused(&m, t, 1, "not a multiple of the Q8_0 block size 32");
    t[0] = ok;
    t[0].type = (rs_dtype)4;
    expect_refused(&m, t, 1, "cannot be stored");
    t[0].type = RS_DTYPE_U8;
    expect_refused(&m, t, 1, "cannot be stored");
    t[0] = ok;
    t[0].n_dims = 5;
    expect_refused(&m, t, 1, "5 dimensions");
    t[0] = ok;
    t[0].ne[1] = -2;
    expect_refused(&m, t, 1, "negative");

    assert_int_equal(rs_meta_set_uint(&m, "general.alignment", RS_V_U64, 32), RS_OK);
    expect_refused(&m, NULL, 0, "general.alignment");
    assert_int_equal(rs_meta_set_uint(&m, "general.alignment", RS_V_U32, 48), RS_OK);
    expect_refused(&m, NULL, 0, "power of two");
    rs_meta_remove(&m, "general.alignment");

    assert_int_equal(rs_meta_set_uint(&m, "small", RS_V_U8, 300), RS_OK);
    expect_refused(&m, NULL, 0, "key #0 'small': value 300 does not fit u8");
    rs_meta_remove(&m, "small");
    assert_int_equal(rs_meta_set_int(&m, "small", RS_V_I16, -40000), RS_OK);
    expect_refused(&m, NULL, 0, "does not fit i16");
    rs_meta_remove(&m, "small");
    const unsigned char bad_bools[2] = {1, 2};
    assert_int_equal(rs_meta_set_arr(&m, "bools", RS_V_BOOL, bad_bools, 2), RS_OK);
    expect_refused(&m, NULL, 0, "bool element #1 is 2");
    rs_meta_remove(&m, "bools");

    /* nesting: 8 levels are fine, 9 are not */
    rs_value levels[10];
    levels[0] = (rs_value){.type = RS_V_ARR, .arr = {RS_V_U8, 0, NULL}};
    for (int d = 1; d < 10; d++)
        levels[d] = (rs_value){.type = RS_V_ARR, .arr = {RS_V_ARR, 1, &levels[d - 1]}};
    assert_int_equal(rs_meta_set_value(&m, "deep", &levels[7]), RS_OK);
    const char *path = tu_tmp("deep.gguf");
    rs_error err = {0};
    assert_int_equal(rs_gguf_write(path, &m, NULL, 0, &err), RS_OK);
    rs_gguf g;
    assert_int_equal(rs_gguf_open(&g, path, &err), RS_OK);
    assert_true(rs_value_equal(rs_meta_find(&g.meta, "deep"), &levels[7]));
    rs_gguf_close(&g);
    remove(path);
    assert_int_equal(rs_meta_set_value(&m, "deep", &levels[8]), RS_OK);
    expect_refused(&m, NULL, 0, "nested deeper than 8");
    rs_meta_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_bytes),    cmocka_unit_test(test_all_types_roundtrip),
        cmocka_unit_test(test_no_tensors),     cmocka_unit_test(test_streaming_and_abort),
        cmocka_unit_test(test_invalid_inputs), cmocka_unit_test(test_roundtrip_shared),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed ? failed : shared_missing ? 77 : 0;
}

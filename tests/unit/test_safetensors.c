/* test_safetensors.c — safetensors reader, writer and sharded sets.
 *
 * References: the byte-exact outputs of the reference implementation's own tests
 * (huggingface/safetensors tensor.rs: test_serialization, test_empty), the real
 * TinyStories-656K file (header facts and values read with Python's json/struct
 * when this test was written), and hand-written hostile headers. */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/safetensors.h"

#define TS_DIR  "models/TinyStories-656K-hf"
#define TS_FILE TS_DIR "/model.safetensors"

/* Shared files are optional: a test needing an absent one is skipped, the others
 * still run, and the program exits 77 (ctest "skipped") at the end. */
static int shared_missing;

static const char *shared_or_skip(const char *rel) {
    const char *p = tu_shared(rel);
    if (!p) {
        shared_missing = 1;
        skip();
    }
    return p;
}

/* ---- helpers ----------------------------------------------------------------------- */

/* A safetensors image: length prefix + header text + data_len bytes (value i & 0xff). */
static unsigned char *make_image(const char *header, size_t data_len, size_t *size) {
    size_t n = strlen(header);
    *size = 8 + n + data_len;
    unsigned char *p = malloc(*size ? *size : 1);
    assert_non_null(p);
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(p + 8, header, n); // NOLINT(bugprone-not-null-terminated-result): a binary image
    for (size_t i = 0; i < data_len; i++) p[8 + n + i] = (unsigned char)i;
    return p;
}

/* Opens an image from an exact-size heap copy, so ASan sees any over-read. */
static rs_status open_bytes(rs_safetensors *st, const unsigned char *bytes, size_t size,
                            rs_error *err, unsigned char **copy) {
    *copy = malloc(size ? size : 1);
    assert_non_null(*copy);
    if (size) memcpy(*copy, bytes, size);
    return rs_safetensors_open_memory(st, *copy, size, err);
}

static void expect_fail(const char *header, size_t data_len, rs_status want, const char *needle1,
                        const char *needle2) {
    size_t size;
    unsigned char *img = make_image(header, data_len, &size), *copy;
    rs_safetensors st;
    rs_error err = {0};
    rs_status s = open_bytes(&st, img, size, &err, &copy);
    if (s != want || (needle1 && !strstr(err.msg, needle1)) ||
        (needle2 && !strstr(err.msg, needle2)))
        fail_msg("header %s\n  got status %d, message: %s\n  want status %d with '%s' '%s'", header,
                 (int)s, err.msg, (int)want, needle1 ? needle1 : "", needle2 ? needle2 : "");
    assert_non_null(strstr(err.msg, "<memory>")); /* names the source */
    assert_null(strchr(err.msg, '\n'));           /* one line */
    rs_safetensors_close(&st);
    free(copy);
    free(img);
}

static void expect_ok(const char *header, size_t data_len, rs_safetensors *st,
                      unsigned char **keep) {
    size_t size;
    unsigned char *img = make_image(header, data_len, &size);
    rs_error err = {0};
    rs_status s = open_bytes(st, img, size, &err, keep);
    free(img);
    if (s) fail_msg("header %s: %s", header, err.msg);
}

/* ---- reference bytes --------------------------------------------------------------- */

/* huggingface/safetensors tensor.rs test_serialization: attn.0, F32, shape [1,2,3], 0..5. */
static const unsigned char ref_attn[] = {
    64,  0,   0,   0,   0,   0,  0,  0,  123, 34, 97,  116, 116, 110, 46,  48,  34,  58,  123, 34,
    100, 116, 121, 112, 101, 34, 58, 34, 70,  51, 50,  34,  44,  34,  115, 104, 97,  112, 101, 34,
    58,  91,  49,  44,  50,  44, 51, 93, 44,  34, 100, 97,  116, 97,  95,  111, 102, 102, 115, 101,
    116, 115, 34,  58,  91,  48, 44, 50, 52,  93, 125, 125, 0,   0,   0,   0,   0,   0,   128, 63,
    0,   0,   0,   64,  0,   0,  64, 64, 0,   0,  128, 64,  0,   0,   160, 64};
/* test_empty, without and with metadata {"framework": "pt"} */
static const unsigned char ref_empty[] = {8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32};
static const unsigned char ref_empty_meta[] = {
    40,  0,   0,   0,  0,  0,  0,   0,   123, 34,  95,  95,  109, 101, 116, 97,
    100, 97,  116, 97, 95, 95, 34,  58,  123, 34,  102, 114, 97,  109, 101, 119,
    111, 114, 107, 34, 58, 34, 112, 116, 34,  125, 125, 32,  32,  32,  32,  32};

static void assert_file_equals(const char *path, const unsigned char *want, size_t n) {
    size_t size;
    char *got = tu_read_file(path, &size);
    assert_non_null(got);
    assert_int_equal(size, n);
    assert_memory_equal(got, want, n);
    free(got);
}

static void test_reference_bytes(void **state) {
    (void)state;
    /* reader: the reference's own output */
    rs_safetensors st;
    rs_error err = {0};
    unsigned char *copy;
    assert_int_equal(open_bytes(&st, ref_attn, sizeof ref_attn, &err, &copy), RS_OK);
    assert_int_equal(st.n_tensors, 1);
    const rs_tensor_info *t = rs_safetensors_find(&st, "attn.0");
    assert_non_null(t);
    assert_int_equal(t->type, RS_DTYPE_F32);
    assert_int_equal(t->n_dims, 3);
    assert_int_equal(t->ne[0], 3); /* innermost first */
    assert_int_equal(t->ne[1], 2);
    assert_int_equal(t->ne[2], 1);
    assert_int_equal(t->ne[3], 1);
    assert_int_equal(t->nbytes, 24);
    float v[6];
    memcpy(v, t->data, sizeof v);
    for (int i = 0; i < 6; i++) assert_true(v[i] == (float)i);

    /* writer: byte-identical to the reference */
    const char *path = tu_tmp("ref_attn.safetensors");
    assert_int_equal(rs_safetensors_write(path, NULL, t, 1, &err), RS_OK);
    assert_file_equals(path, ref_attn, sizeof ref_attn);
    rs_safetensors_close(&st);
    free(copy);

    path = tu_tmp("ref_empty.safetensors");
    assert_int_equal(rs_safetensors_write(path, NULL, NULL, 0, &err), RS_OK);
    assert_file_equals(path, ref_empty, sizeof ref_empty);
    rs_meta m;
    rs_meta_init(&m);
    assert_int_equal(rs_meta_set_str(&m, "framework", "pt", 2), RS_OK);
    path = tu_tmp("ref_empty_meta.safetensors");
    assert_int_equal(rs_safetensors_write(path, &m, NULL, 0, &err), RS_OK);
    assert_file_equals(path, ref_empty_meta, sizeof ref_empty_meta);
    rs_meta_free(&m);

    /* and both read back */
    assert_int_equal(open_bytes(&st, ref_empty_meta, sizeof ref_empty_meta, &err, &copy), RS_OK);
    assert_int_equal(st.n_tensors, 0);
    assert_int_equal(st.meta.n, 1);
    assert_string_equal(st.meta.kv[0].key, "framework");
    rs_safetensors_close(&st);
    free(copy);
}

/* ---- the real file -------------------------------------------------------------------- */

typedef struct ts_fact {
    const char *name;
    int64_t rows, cols; /* HF shape [rows, cols] ([cols] for 1-D: rows = 0) */
    uint64_t begin;
    float first[2];
} ts_fact;

/* From Python: json.loads(header), struct.unpack('<2f', data[begin:begin+8]). */
static const ts_fact ts_facts[] = {
    {"lm_head.weight", 2048, 128, 0, {-0.68359375f, -0.02587890625f}},
    {"model.layers.0.input_layernorm.weight", 0, 128, 1048576, {0.177734375f, 0.203125f}},
    {"model.layers.0.mlp.down_proj.weight", 128, 384, 1049088, {-0.03369140625f, 0.2314453125f}},
    {"model.layers.0.self_attn.k_proj.weight", 64, 128, 1639424, {-1.1328125f, -0.267578125f}},
    {"model.layers.1.mlp.gate_proj.weight", 384, 128, 2033152, {-0.3359375f, 0.72265625f}},
    {"model.layers.1.self_attn.v_proj.weight", 64, 128, 2590720, {1.09375f, -0.359375f}},
    {"model.norm.weight", 0, 128, 2623488, {0.640625f, 0.69921875f}},
};

static void check_ts_facts(const rs_tensor_info *(*find)(const void *, const char *),
                           const void *h) {
    for (size_t i = 0; i < sizeof ts_facts / sizeof ts_facts[0]; i++) {
        const ts_fact *f = &ts_facts[i];
        const rs_tensor_info *t = find(h, f->name);
        assert_non_null(t);
        assert_int_equal(t->type, RS_DTYPE_F32);
        assert_int_equal(t->n_dims, f->rows ? 2 : 1);
        assert_int_equal(t->ne[0], f->cols);
        assert_int_equal(t->ne[1], f->rows ? f->rows : 1);
        assert_int_equal(t->nbytes, 4 * f->cols * (f->rows ? f->rows : 1));
        float v[2];
        memcpy(v, t->data, sizeof v);
        assert_true(v[0] == f->first[0] && v[1] == f->first[1]);
    }
}

static const rs_tensor_info *find_st(const void *h, const char *name) {
    return rs_safetensors_find(h, name);
}
static const rs_tensor_info *find_set(const void *h, const char *name) {
    return rs_safetensors_set_find(h, name);
}

static void test_tinystories(void **state) {
    (void)state;
    const char *path = shared_or_skip(TS_FILE);
    rs_safetensors st;
    rs_error err = {0};
    assert_int_equal(rs_safetensors_open(&st, path, &err), RS_OK);
    assert_int_equal(st.header_len, 2160);
    assert_int_equal(st.data_offset, 2168);
    assert_int_equal(st.data_size, 2624000);
    /* 20 stored (lm_head, 9 per layer x 2, norm; the models README says 19, but
     * Python's json.loads of the header lists 20), + the embed_tokens alias */
    assert_int_equal(st.n_stored, 20);
    assert_int_equal(st.n_tensors, 21);
    for (uint64_t i = 0; i < st.n_tensors; i++) assert_int_equal(st.tensors[i].type, RS_DTYPE_F32);
    /* metadata in file order */
    assert_int_equal(st.meta.n, 2);
    assert_string_equal(st.meta.kv[0].key, "format");
    assert_int_equal(st.meta.kv[0].value.str.len, 2);
    assert_memory_equal(st.meta.kv[0].value.str.ptr, "pt", 2);
    assert_string_equal(st.meta.kv[1].key, "model.embed_tokens.weight");
    check_ts_facts(find_st, &st);
    /* the alias shares lm_head's data */
    const rs_tensor_info *head = rs_safetensors_find(&st, "lm_head.weight");
    const rs_tensor_info *embd = rs_safetensors_find(&st, "model.embed_tokens.weight");
    assert_non_null(embd);
    assert_ptr_equal(embd->data, head->data);
    assert_int_equal(embd->ne[0], 128);
    assert_int_equal(embd->ne[1], 2048);
    assert_true(rs_safetensors_is_alias(&st, (uint64_t)(embd - st.tensors)));
    assert_false(rs_safetensors_is_alias(&st, (uint64_t)(head - st.tensors)));
    assert_null(rs_safetensors_find(&st, "format"));
    assert_null(rs_safetensors_find(&st, "nope"));
    rs_safetensors_close(&st);
}

/* Read -> write -> the writer reproduces the file byte for byte (same tensor order,
 * same compact JSON, same padding as the reference writer), and reads back equal. */
static void test_roundtrip_tinystories(void **state) {
    (void)state;
    const char *path = shared_or_skip(TS_FILE);
    rs_safetensors a, b;
    rs_error err = {0};
    assert_int_equal(rs_safetensors_open(&a, path, &err), RS_OK);
    char out[4096];
    snprintf(out, sizeof out, "%s", tu_tmp("roundtrip.safetensors"));
    assert_int_equal(rs_safetensors_write(out, &a.meta, a.tensors, a.n_stored, &err), RS_OK);
    size_t n1, n2;
    char *orig = tu_read_file(path, &n1), *mine = tu_read_file(out, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(orig, mine, n1);
    free(orig);
    free(mine);

    assert_int_equal(rs_safetensors_open(&b, out, &err), RS_OK);
    assert_int_equal(a.n_tensors, b.n_tensors);
    assert_int_equal(a.n_stored, b.n_stored);
    assert_int_equal(a.meta.n, b.meta.n);
    for (size_t i = 0; i < a.meta.n; i++) {
        assert_string_equal(a.meta.kv[i].key, b.meta.kv[i].key);
        assert_true(rs_value_equal(&a.meta.kv[i].value, &b.meta.kv[i].value));
    }
    for (uint64_t i = 0; i < a.n_tensors; i++) {
        const rs_tensor_info *x = &a.tensors[i], *y = &b.tensors[i];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->type, y->type);
        assert_int_equal(x->n_dims, y->n_dims);
        assert_memory_equal(x->ne, y->ne, sizeof x->ne);
        assert_int_equal(x->nbytes, y->nbytes);
        assert_memory_equal(x->data, y->data, x->nbytes);
    }
    rs_safetensors_close(&a);
    rs_safetensors_close(&b);
}

/* ---- shapes and types ------------------------------------------------------------------ */

static void test_scalar_empty_and_dtypes(void **state) {
    (void)state;
    rs_safetensors st;
    unsigned char *keep;
    /* 0-dim scalar, a zero-size tensor (sharing offset 8 with the next), every type */
    const char *h = "{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},"
                    "\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[8,8]},"
                    "\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[12,14]},"
                    "\"c\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[14,16]},"
                    "\"d\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[16,20]},"
                    "\"e\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[20,24]},"
                    "\"f\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[24,32]},"
                    "\"g\":{\"dtype\":\"U8\",\"shape\":[1,1,1,2],\"data_offsets\":[32,34]},"
                    "\"h\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[34,36]}}";
    expect_ok(h, 36, &st, &keep);
    static const struct {
        const char *name;
        rs_dtype t;
        uint32_t nd;
    } want[] = {{"s", RS_DTYPE_F64, 0},  {"z", RS_DTYPE_F32, 2}, {"a", RS_DTYPE_F16, 1},
                {"b", RS_DTYPE_BF16, 1}, {"c", RS_DTYPE_I8, 1},  {"d", RS_DTYPE_I16, 1},
                {"e", RS_DTYPE_I32, 1},  {"f", RS_DTYPE_I64, 1}, {"g", RS_DTYPE_U8, 4},
                {"h", RS_DTYPE_BOOL, 1}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const rs_tensor_info *t = rs_safetensors_find(&st, want[i].name);
        assert_non_null(t);
        assert_int_equal(t->type, want[i].t);
        assert_int_equal(t->n_dims, want[i].nd);
    }
    const rs_tensor_info *s = rs_safetensors_find(&st, "s"), *z = rs_safetensors_find(&st, "z");
    assert_int_equal(rs_tensor_nelements(s), 1);
    for (int i = 0; i < 4; i++) assert_int_equal(s->ne[i], 1);
    assert_int_equal(z->ne[0], 3);
    assert_int_equal(z->ne[1], 0);
    assert_int_equal(rs_tensor_nelements(z), 0);
    assert_int_equal(z->nbytes, 0);
    const rs_tensor_info *g = rs_safetensors_find(&st, "g");
    assert_int_equal(g->ne[0], 2);
    assert_int_equal(g->ne[3], 1);
    /* header order kept */
    assert_string_equal(st.tensors[0].name, "s");
    assert_string_equal(st.tensors[9].name, "h");

    /* round trip through the writer */
    rs_safetensors back;
    rs_error err = {0};
    const char *path = tu_tmp("dtypes.safetensors");
    assert_int_equal(rs_safetensors_write(path, NULL, st.tensors, st.n_tensors, &err), RS_OK);
    assert_int_equal(rs_safetensors_open(&back, path, &err), RS_OK);
    assert_int_equal(back.header_len % 8, 0);
    for (uint64_t i = 0; i < st.n_tensors; i++) {
        assert_string_equal(back.tensors[i].name, st.tensors[i].name);
        assert_int_equal(back.tensors[i].type, st.tensors[i].type);
        assert_int_equal(back.tensors[i].n_dims, st.tensors[i].n_dims);
        assert_memory_equal(back.tensors[i].ne, st.tensors[i].ne, sizeof st.tensors[i].ne);
        assert_memory_equal(back.tensors[i].data, st.tensors[i].data, st.tensors[i].nbytes);
    }
    rs_safetensors_close(&back);
    rs_safetensors_close(&st);
    free(keep);
}

static void test_writer_rejects(void **state) {
    (void)state;
    float x[2] = {1, 2};
    rs_tensor_info t[2] = {{.name = "a",
                            .type = RS_DTYPE_F32,
                            .n_dims = 1,
                            .ne = {2, 1, 1, 1},
                            .nbytes = 8,
                            .data = x},
                           {.name = "a",
                            .type = RS_DTYPE_F32,
                            .n_dims = 1,
                            .ne = {2, 1, 1, 1},
                            .nbytes = 8,
                            .data = x}};
    rs_error err = {0};
    const char *path = tu_tmp("reject.safetensors");
    assert_int_equal(rs_safetensors_write(path, NULL, t, 2, &err), RS_ERR_ARG);
    assert_non_null(strstr(err.msg, "'a' given twice"));
    t[0].nbytes = 4;
    assert_int_equal(rs_safetensors_write(path, NULL, t, 1, &err), RS_ERR_ARG);
    assert_non_null(strstr(err.msg, "nbytes"));
    t[0].nbytes = 8;
    t[0].type = RS_DTYPE_Q8_0;
    assert_int_equal(rs_safetensors_write(path, NULL, t, 1, &err), RS_ERR_ARG);
    t[0].type = RS_DTYPE_F32;
    rs_meta m;
    rs_meta_init(&m);
    assert_int_equal(rs_meta_set_uint(&m, "n", RS_V_U32, 3), RS_OK);
    assert_int_equal(rs_safetensors_write(path, &m, t, 1, &err), RS_ERR_ARG);
    assert_non_null(strstr(err.msg, "only strings"));
    rs_meta_free(&m);
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0); /* nothing left behind */
}

/* ---- hostile headers ---------------------------------------------------------------------- */

#define T1_ENTRY "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
#define T1       "{" T1_ENTRY "}"

static void test_hostile_headers(void **state) {
    (void)state;
    static const struct {
        const char *header;
        size_t data;
        rs_status want;
        const char *n1, *n2;
    } cases[] = {
        /* structure */
        {"[1]", 0, RS_ERR_FORMAT, "start with '{'", NULL},
        {"{\"t\":", 0, RS_ERR_FORMAT, "invalid JSON", NULL},
        {T1 " x", 8, RS_ERR_FORMAT, "after the JSON value", NULL},
        {"{\"t\xff\":1}", 0, RS_ERR_FORMAT, "invalid UTF-8", NULL},
        {"{\"t\xed\xa0\x80\":1}", 0, RS_ERR_FORMAT, "invalid UTF-8", NULL}, /* surrogate */
        {"{\"a\\u0000b\":1}", 0, RS_ERR_FORMAT, "\\u0000", NULL},
        {"{\"a\tb\":1}", 0, RS_ERR_FORMAT, "control byte 0x09", NULL},
        /* an escaped newline in a name is valid, but the message stays one line */
        {"{\"a\\nb\":[]}", 0, RS_ERR_FORMAT, "'a?b'", "expected an object"},
        {"{\"t\":[]}", 0, RS_ERR_FORMAT, "'t'", "expected an object"},
        /* fields */
        {"{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, RS_ERR_FORMAT, "'t'",
         "missing field 'dtype'"},
        {"{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, RS_ERR_FORMAT, "'t'", "'shape'"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, RS_ERR_FORMAT, "'t'", "'data_offsets'"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8,
         RS_ERR_FORMAT, "'t'", "unknown field 'x'"},
        {"{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
         RS_ERR_FORMAT, "'t'", "twice"},
        {"{\"t\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, RS_ERR_FORMAT, "'t'",
         "dtype is a number"},
        {"{\"t\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, RS_ERR_FORMAT,
         "'t'", "unknown dtype 'F33'"},
        {"{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
         RS_ERR_UNSUPPORTED, "'t'", "F8_E4M3"},
        {"{\"t\":{\"dtype\":\"U32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, RS_ERR_UNSUPPORTED,
         "'t'", "U32"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, RS_ERR_FORMAT, "'t'",
         "shape is a number"},
        /* shapes */
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, RS_ERR_FORMAT,
         "'t'", "shape[0] is negative"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8, RS_ERR_FORMAT,
         "'t'", "shape[0] is not an integer"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, RS_ERR_FORMAT,
         "'t'", "shape[0] is a string"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[9007199254740992],\"data_offsets\":[0,8]}}", 8,
         RS_ERR_FORMAT, "'t'", "too large"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 8, RS_ERR_FORMAT,
         "'t'", "too large"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
         RS_ERR_FORMAT, "'t'", "overflows"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
         RS_ERR_UNSUPPORTED, "'t'", "5 dimensions"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, RS_ERR_FORMAT,
         "'2.0'", "plain"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,8]}}", 8, RS_ERR_FORMAT,
         "'2e0'", NULL},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", 8, RS_ERR_FORMAT,
         "'02'", NULL},
        /* offsets */
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, RS_ERR_FORMAT, "'t'",
         "1 elements, expected 2"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", 8, RS_ERR_FORMAT,
         "'t'", "expected 2"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, RS_ERR_FORMAT,
         "'t'", "end is before begin"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, RS_ERR_FORMAT,
         "'t'", "past the end"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12, RS_ERR_FORMAT,
         "'t'", "needs 8"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,-8]}}", 8, RS_ERR_FORMAT,
         "'t'", "data_offsets[1] is negative"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.5,8]}}", 8, RS_ERR_FORMAT,
         "'t'", "not an integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, RS_ERR_FORMAT, "'b'", "overlap tensor 'a'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         8, RS_ERR_FORMAT, "overlap", NULL},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, RS_ERR_FORMAT,
         "[0, 4)", "hole before tensor 't'"},
        {T1, 9, RS_ERR_FORMAT, "cover 8 bytes", "holds 9"},
        {"{}", 1, RS_ERR_FORMAT, "cover 0 bytes", NULL},
        /* names and metadata */
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, RS_ERR_FORMAT, "'t' appears twice", NULL},
        {"{\"__metadata__\":[],\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
         RS_ERR_FORMAT, "__metadata__ is a array", NULL},
        {"{\"__metadata__\":{\"k\":1}}", 0, RS_ERR_FORMAT, "__metadata__ key 'k'",
         "expected a string"},
        {"{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, RS_ERR_FORMAT, "key 'k' appears twice",
         NULL},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, RS_ERR_FORMAT, "appears twice", NULL},
        /* an alias (weight name -> weight name) whose target is not stored */
        {"{\"__metadata__\":{\"model.embed_tokens.weight\":\"lm_head.weight\"}," T1_ENTRY "}", 8,
         RS_ERR_FORMAT, "'model.embed_tokens.weight'", "'lm_head.weight' is not stored"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_fail(cases[i].header, cases[i].data, cases[i].want, cases[i].n1, cases[i].n2);
}

static void test_hostile_lengths(void **state) {
    (void)state;
    rs_safetensors st;
    rs_error err = {0};
    unsigned char *copy;
    unsigned char b[16] = {0};
    /* shorter than the length prefix */
    for (size_t n = 0; n < 8; n++) {
        assert_int_equal(open_bytes(&st, b, n, &err, &copy), RS_ERR_FORMAT);
        assert_non_null(strstr(err.msg, "too short"));
        free(copy);
    }
    /* header length: huge, past EOF, zero */
    uint64_t lens[] = {UINT64_MAX, 100000001ull, 9, 0};
    const char *want[] = {"exceeds", "exceeds", "past the end", "start with"};
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < 8; i++) b[i] = (unsigned char)(lens[k] >> (8 * i));
        b[8] = '{';
        b[9] = '}';
        assert_int_equal(open_bytes(&st, b, 16, &err, &copy), RS_ERR_FORMAT);
        assert_non_null(strstr(err.msg, want[k]));
        free(copy);
    }
    /* a missing file */
    assert_int_equal(rs_safetensors_open(&st, "/nonexistent/x.safetensors", &err), RS_ERR_IO);
    rs_safetensors_close(&st); /* safe after failure */
}

/* Every prefix of a real header+data must fail cleanly (never crash, never accept). */
static void test_truncations(void **state) {
    (void)state;
    const char *path = shared_or_skip(TS_FILE);
    size_t size;
    unsigned char *all = (unsigned char *)tu_read_file(path, &size);
    assert_non_null(all);
    size_t cuts = 0;
    for (size_t n = 0; n < size; n += (n < 2300 ? 1 : 65537)) {
        rs_safetensors st;
        rs_error err = {0};
        unsigned char *copy;
        rs_status s = open_bytes(&st, all, n, &err, &copy);
        if (s != RS_ERR_FORMAT) fail_msg("prefix of %zu bytes: status %d (%s)", n, (int)s, err.msg);
        free(copy);
        cuts++;
    }
    assert_true(cuts > 2300);
    /* random byte corruption in the header (3 bytes, restored after each try):
     * a clean success or a clean error */
    uint64_t rng = 12345;
    for (int it = 0; it < 300; it++) {
        size_t at[3];
        unsigned char old[3];
        for (int k = 0; k < 3; k++) {
            at[k] = 8 + (size_t)((tu_randf(&rng) + 1.0f) * 0.5f * 2159);
            old[k] = all[at[k]];
            all[at[k]] = (unsigned char)((tu_randf(&rng) + 1.0f) * 128);
        }
        rs_safetensors st;
        rs_error err = {0};
        rs_status s = rs_safetensors_open_memory(&st, all, size, &err);
        assert_true(s == RS_OK || s == RS_ERR_FORMAT || s == RS_ERR_UNSUPPORTED);
        rs_safetensors_close(&st);
        for (int k = 2; k >= 0; k--) all[at[k]] = old[k];
    }
    free(all);
}

/* ---- sharded sets ------------------------------------------------------------------------ */

static void write_text(const char *path, const char *text) {
    assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
}

static off_t file_size(const char *path) {
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_size;
}

/* Splits TinyStories over two shards (the aliased lm_head in the second) + index.json. */
static void make_sharded(const rs_safetensors *src, const char *dir) {
    char p[4400], idx[8192];
    mkdir(dir, 0755);
    rs_error err = {0};
    uint64_t cut = 10;
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    assert_int_equal(rs_safetensors_write(p, NULL, src->tensors + 1, cut - 1, &err), RS_OK);
    rs_tensor_info second[24];
    uint64_t n2 = 0;
    second[n2++] = src->tensors[0]; /* lm_head */
    for (uint64_t i = cut; i < src->n_stored; i++) second[n2++] = src->tensors[i];
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    assert_int_equal(rs_safetensors_write(p, &src->meta, second, n2, &err), RS_OK);
    size_t at = (size_t)snprintf(idx, sizeof idx,
                                 "{\"metadata\":{\"total_size\":2624000},\"weight_map\":{");
    for (uint64_t i = 0; i < src->n_stored; i++)
        at += (size_t)snprintf(idx + at, sizeof idx - at,
                               "%s\"%s\":\"model-0000%d-of-00002.safetensors\"", i ? "," : "",
                               src->tensors[i].name, (i >= 1 && i < cut) ? 1 : 2);
    snprintf(idx + at, sizeof idx - at, "}}");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_text(p, idx);
}

static void test_sharded(void **state) {
    (void)state;
    const char *path = shared_or_skip(TS_FILE);
    rs_safetensors one;
    rs_error err = {0};
    assert_int_equal(rs_safetensors_open(&one, path, &err), RS_OK);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_tmp("sharded"));
    make_sharded(&one, dir);

    rs_safetensors_set set;
    if (rs_safetensors_set_open(&set, dir, &err)) fail_msg("%s", err.msg);
    assert_int_equal(set.n_shards, 2);
    assert_string_equal(set.shard_names[0], "model-00002-of-00002.safetensors"); /* first mention */
    assert_int_equal(set.n_tensors, one.n_tensors);
    for (uint64_t i = 0; i < one.n_tensors; i++) {
        const rs_tensor_info *x = &one.tensors[i], *y = rs_safetensors_set_find(&set, x->name);
        assert_non_null(y);
        assert_int_equal(x->type, y->type);
        assert_int_equal(x->n_dims, y->n_dims);
        assert_memory_equal(x->ne, y->ne, sizeof x->ne);
        assert_int_equal(x->nbytes, y->nbytes);
        assert_memory_equal(x->data, y->data, x->nbytes);
    }
    check_ts_facts(find_set, &set);
    assert_ptr_equal(rs_safetensors_set_find(&set, "model.embed_tokens.weight")->data,
                     rs_safetensors_set_find(&set, "lm_head.weight")->data);
    char p[4200];
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    off_t total = file_size(p);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    total += file_size(p);
    assert_int_equal(set.file_bytes, (uint64_t)total);
    uint64_t ts;
    assert_int_equal(rs_meta_get_u64(&set.meta, "total_size", &ts, &err), RS_OK);
    assert_int_equal(ts, 2624000);
    rs_safetensors_set_close(&set);

    /* the single file as a set: same tensors, its metadata */
    assert_int_equal(rs_safetensors_set_open(&set, path, &err), RS_OK);
    assert_int_equal(set.n_tensors, 21);
    assert_int_equal(set.file_bytes, 2626168);
    assert_non_null(rs_meta_find(&set.meta, "format"));
    rs_safetensors_set_close(&set);
    rs_safetensors_close(&one);
}

static void expect_index_fail(const char *dir, const char *index, rs_status want, const char *n1,
                              const char *n2) {
    char p[4200];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_text(p, index);
    rs_safetensors_set set;
    rs_error err = {0};
    rs_status s = rs_safetensors_set_open(&set, dir, &err);
    if (s != want || (n1 && !strstr(err.msg, n1)) || (n2 && !strstr(err.msg, n2)))
        fail_msg("index %s\n  got %d: %s\n  want %d '%s' '%s'", index, (int)s, err.msg, (int)want,
                 n1 ? n1 : "", n2 ? n2 : "");
    rs_safetensors_set_close(&set);
}

static void test_sharded_hostile(void **state) {
    (void)state;
    char dir[4096], p[4200];
    snprintf(dir, sizeof dir, "%s", tu_tmp("badindex"));
    mkdir(dir, 0755);
    /* two tiny shards: a.safetensors holds x, b.safetensors holds y and, again, x */
    float v[2] = {1, 2};
    rs_tensor_info x = {
        .name = "x", .type = RS_DTYPE_F32, .n_dims = 1, .ne = {2, 1, 1, 1}, .nbytes = 8, .data = v};
    rs_tensor_info y = x, xy[2];
    y.name = "y";
    xy[0] = y;
    xy[1] = x;
    rs_error err = {0};
    snprintf(p, sizeof p, "%s/a.safetensors", dir);
    assert_int_equal(rs_safetensors_write(p, NULL, &x, 1, &err), RS_OK);
    snprintf(p, sizeof p, "%s/b.safetensors", dir);
    assert_int_equal(rs_safetensors_write(p, NULL, xy, 2, &err), RS_OK);
    snprintf(p, sizeof p, "%s/c.safetensors", dir);
    assert_int_equal(rs_safetensors_write(p, NULL, &y, 1, &err), RS_OK);

    expect_index_fail(dir, "{\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"c.safetensors\"}}",
                      RS_OK, NULL, NULL);
    expect_index_fail(dir, "{\"weight_map\":{\"x\":\"missing.safetensors\"}}", RS_ERR_IO,
                      "missing.safetensors", "cannot open");
    expect_index_fail(dir, "{\"weight_map\":{\"y\":\"a.safetensors\"}}", RS_ERR_FORMAT, "'y'",
                      "a.safetensors, which does not hold it");
    expect_index_fail(dir, "{\"weight_map\":{\"x\":\"../a.safetensors\"}}", RS_ERR_FORMAT,
                      "'../a.safetensors'", "leaves the folder");
    expect_index_fail(dir, "{\"weight_map\":{\"x\":\"sub/a.safetensors\"}}", RS_ERR_FORMAT,
                      "leaves the folder", NULL);
    expect_index_fail(dir, "{\"weight_map\":{\"x\":\"\"}}", RS_ERR_FORMAT, "empty", NULL);
    expect_index_fail(dir, "{\"weight_map\":{\"x\":\"a.safetensors\",\"x\":\"a.safetensors\"}}",
                      RS_ERR_FORMAT, "lists tensor 'x' twice", NULL);
    expect_index_fail(dir, "{\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"b.safetensors\"}}",
                      RS_ERR_FORMAT, "'x' is stored in both", NULL);
    expect_index_fail(dir, "{\"weight_map\":{\"x\":3}}", RS_ERR_FORMAT,
                      "weight_map['x'] is a number", NULL);
    expect_index_fail(dir, "{\"weight_map\":[]}", RS_ERR_FORMAT, "\"weight_map\" is array", NULL);
    expect_index_fail(dir, "{\"metadata\":{}}", RS_ERR_FORMAT, "\"weight_map\" is missing", NULL);
    expect_index_fail(dir, "{\"weight_map\":{\"x\":\"a.safetensors\"", RS_ERR_FORMAT, "index.json",
                      "invalid JSON");
    expect_index_fail(dir, "{\"metadata\":5,\"weight_map\":{}}", RS_ERR_FORMAT,
                      "\"metadata\" is a number", NULL);
    /* an empty folder */
    snprintf(p, sizeof p, "%s/empty", dir);
    mkdir(p, 0755);
    rs_safetensors_set set;
    assert_int_equal(rs_safetensors_set_open(&set, p, &err), RS_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "holds neither"));
}

/* ---- fuzz regressions ----------------------------------------------------------------------- */

/* Replays tests/fuzz/seeds/safetensors/ (valid files: must open) and
 * tests/fuzz/regress/safetensors/ (past fuzz findings: must open or fail cleanly). */
static void test_fuzz_regressions(void **state) {
    (void)state;
    const char *sub[] = {"fuzz/seeds/safetensors", "fuzz/regress/safetensors"};
    int replayed = 0;
    for (int k = 0; k < 2; k++) {
        char d[4096];
        snprintf(d, sizeof d, "%s", tu_tests(sub[k]));
        DIR *dir = opendir(d);
        assert_non_null(dir);
        struct dirent *e;
        while ((e = readdir(dir))) {
            if (e->d_name[0] == '.' || strstr(e->d_name, ".md")) continue;
            char p[8192];
            snprintf(p, sizeof p, "%s/%s", d, e->d_name);
            size_t n;
            unsigned char *bytes = (unsigned char *)tu_read_file(p, &n), *copy;
            assert_non_null(bytes);
            rs_safetensors st;
            rs_error err = {0};
            rs_status s = open_bytes(&st, bytes, n, &err, &copy);
            if (k == 0 && s != RS_OK) fail_msg("seed %s: %s", e->d_name, err.msg);
            if (s != RS_OK) assert_null(strchr(err.msg, '\n')); /* one line */
            assert_true(s == RS_OK || s == RS_ERR_FORMAT || s == RS_ERR_UNSUPPORTED);
            rs_safetensors_close(&st);
            free(copy);
            free(bytes);
            replayed++;
        }
        closedir(dir);
    }
    assert_true(replayed >= 4); /* the committed seeds at least */
    printf("replayed %d fuzz inputs\n", replayed);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_bytes),
        cmocka_unit_test(test_scalar_empty_and_dtypes),
        cmocka_unit_test(test_writer_rejects),
        cmocka_unit_test(test_hostile_headers),
        cmocka_unit_test(test_hostile_lengths),
        cmocka_unit_test(test_sharded_hostile),
        cmocka_unit_test(test_fuzz_regressions),
        cmocka_unit_test(test_tinystories),
        cmocka_unit_test(test_roundtrip_tinystories),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_sharded),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed ? failed : shared_missing ? 77 : 0;
}

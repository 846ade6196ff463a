/* test_gguf_corrupt.c — the GGUF reader against hostile input.
 *
 * A small valid file is handcrafted byte by byte (gb_*), with the position of
 * every interesting field recorded; each case patches one field and expects a
 * clean RS_ERR_FORMAT whose message names the problem (and, where stated, the
 * byte offset). Then: every truncation of small files, strided truncations and
 * seeded random bit flips of the shared files, and a replay of the fuzzer's
 * regression inputs and seeds. Every image is parsed from an exact-size heap
 * copy so ASan reports any read past its end. */
#include "testutil.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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

/* Field positions in the base image. */
typedef struct base_pos {
    size_t version, n_tensors, n_kv;
    size_t key0_len, align_type, align_val;
    size_t name_type, name_key;
    size_t flag_key, flag_val;
    size_t tok_elem_type, tok_len, tok_str0_len;
    size_t nest_inner_type;
    size_t t0_name, t0_ndims, t0_ne0, t0_ne1, t0_type, t0_off;
    size_t t1_name, t1_ne0, t1_type, t1_off;
    size_t data;
} base_pos;

/* GGUF v3: 5 keys (alignment, a string, a bool, a string array, an array of
 * arrays) and 2 tensors: "w" Q8_0 [32, 2] (68 bytes, padded to 96) and "b" F32 [4]
 * at offset 96. The file ends right after b's data (no trailing padding). */
static void build_base(gb *b, base_pos *p) {
    memset(b, 0, sizeof *b);
    gb_raw(b, "GGUF", 4);
    p->version = b->n;
    gb_u32(b, 3);
    p->n_tensors = b->n;
    gb_u64(b, 2);
    p->n_kv = b->n;
    gb_u64(b, 5);
    p->key0_len = b->n;
    gb_str(b, "general.alignment");
    p->align_type = b->n;
    gb_u32(b, RS_V_U32);
    p->align_val = b->n;
    gb_u32(b, 32);
    p->name_key = b->n + 8;
    gb_str(b, "name");
    p->name_type = b->n;
    gb_u32(b, RS_V_STR);
    gb_str(b, "tiny");
    p->flag_key = b->n + 8;
    gb_str(b, "flag");
    gb_u32(b, RS_V_BOOL);
    p->flag_val = b->n;
    gb_u8(b, 1);
    gb_str(b, "tokens");
    gb_u32(b, RS_V_ARR);
    p->tok_elem_type = b->n;
    gb_u32(b, RS_V_STR);
    p->tok_len = b->n;
    gb_u64(b, 3);
    p->tok_str0_len = b->n;
    gb_str(b, "a");
    gb_str(b, "bc");
    gb_str(b, "");
    gb_str(b, "nested");
    gb_u32(b, RS_V_ARR);
    gb_u32(b, RS_V_ARR);
    gb_u64(b, 1);
    p->nest_inner_type = b->n;
    gb_u32(b, RS_V_U8);
    gb_u64(b, 2);
    gb_u8(b, 1);
    gb_u8(b, 2);
    p->t0_name = b->n + 8;
    gb_str(b, "w");
    p->t0_ndims = b->n;
    gb_u32(b, 2);
    p->t0_ne0 = b->n;
    gb_u64(b, 32);
    p->t0_ne1 = b->n;
    gb_u64(b, 2);
    p->t0_type = b->n;
    gb_u32(b, RS_DTYPE_Q8_0);
    p->t0_off = b->n;
    gb_u64(b, 0);
    p->t1_name = b->n + 8;
    gb_str(b, "b");
    gb_u32(b, 1);
    p->t1_ne0 = b->n;
    gb_u64(b, 4);
    p->t1_type = b->n;
    gb_u32(b, RS_DTYPE_F32);
    p->t1_off = b->n;
    gb_u64(b, 96);
    gb_pad(b, 32);
    p->data = b->n;
    for (int i = 0; i < 96 + 16; i++) gb_u8(b, (uint8_t)(i < 68 || i >= 96 ? i + 1 : 0));
}

static void patch(gb *b, size_t pos, uint64_t v, unsigned w) {
    for (unsigned i = 0; i < w; i++) b->p[pos + i] = (unsigned char)(v >> (8 * i));
}

/* Parses an exact-size copy of the first n bytes. */
static rs_status parse_n(const void *img, size_t n, rs_error *err, uint64_t *walk) {
    unsigned char *c = gb_exact(img, n);
    rs_gguf g;
    rs_status st = rs_gguf_open_memory(&g, c, n, err);
    if (!st && walk) *walk = gguf_walk(&g);
    rs_gguf_close(&g);
    free(c);
    return st;
}

static void expect_fail(const gb *b, const char *needle, const char *needle2) {
    rs_error err = {0};
    rs_status st = parse_n(b->p, b->n, &err, NULL);
    if (st != RS_ERR_FORMAT) fail_msg("expected a format error with '%s', got %d", needle, st);
    if (!strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
    if (needle2 && !strstr(err.msg, needle2)) fail_msg("message '%s' lacks '%s'", err.msg, needle2);
    if (strchr(err.msg, '\n')) fail_msg("message spans lines: '%s'", err.msg);
}

/* Applies one patch to a fresh base image and expects the given failure. */
static void case_patch(size_t (*field)(const base_pos *), uint64_t v, unsigned w,
                       const char *needle, const char *needle2) {
    gb b;
    base_pos p;
    build_base(&b, &p);
    patch(&b, field(&p), v, w);
    expect_fail(&b, needle, needle2);
    gb_free(&b);
}

#define FIELD(name)                                                                                \
    static size_t f_##name(const base_pos *p) {                                                    \
        return p->name;                                                                            \
    }
FIELD(version)
FIELD(n_tensors)
FIELD(n_kv)
FIELD(key0_len)
FIELD(align_type)
FIELD(align_val)
FIELD(name_type)
FIELD(name_key)
FIELD(flag_key)
FIELD(flag_val)
FIELD(tok_elem_type)
FIELD(tok_len)
FIELD(tok_str0_len)
FIELD(nest_inner_type)
FIELD(t0_name)
FIELD(t0_ndims)
FIELD(t0_ne0)
FIELD(t0_ne1)
FIELD(t0_type)
FIELD(t0_off)
FIELD(t1_name)
FIELD(t1_ne0)
FIELD(t1_type)
FIELD(t1_off)

static void test_base_is_valid(void **state) {
    (void)state;
    gb b;
    base_pos p;
    build_base(&b, &p);
    rs_gguf g;
    rs_error err = {0};
    unsigned char *c = gb_exact(b.p, b.n);
    assert_int_equal(rs_gguf_open_memory(&g, c, b.n, &err), RS_OK);
    assert_int_equal(g.version, 3);
    assert_int_equal(g.meta.n, 5);
    assert_int_equal(g.n_tensors, 2);
    assert_int_equal(g.data_offset, p.data);
    const rs_tensor_info *w = rs_gguf_find_tensor(&g, "w"), *bt = rs_gguf_find_tensor(&g, "b");
    assert_int_equal(w->nbytes, 68);
    assert_int_equal(bt->nbytes, 16);
    assert_ptr_equal(bt->data, c + p.data + 96);
    rs_array toks;
    assert_int_equal(rs_meta_get_arr(&g.meta, "tokens", &toks, NULL), RS_OK);
    assert_int_equal(toks.n, 3);
    assert_int_equal(rs_array_get_str(&toks, 1).len, 2);
    assert_memory_equal(rs_array_get_str(&toks, 1).ptr, "bc", 2);
    assert_ptr_equal(rs_array_get_str(&toks, 1).ptr, (const char *)c + p.tok_str0_len + 8 + 1 + 8);
    const rs_value *nest = rs_meta_find(&g.meta, "nested");
    assert_int_equal(nest->arr.type, RS_V_ARR);
    const rs_array *inner = &((const rs_value *)nest->arr.data)[0].arr;
    assert_int_equal(inner->n, 2);
    assert_int_equal(rs_array_get_u64(inner, 1), 2);
    rs_gguf_close(&g);
    free(c);
    gb_free(&b);
}

static void test_header(void **state) {
    (void)state;
    gb b;
    base_pos p;
    build_base(&b, &p);
    memcpy(b.p, "GGUX", 4);
    expect_fail(&b, "bad magic 'GGUX' (expected 'GGUF')", "(at byte 0)");
    memcpy(b.p, "\0\xffGU", 4);
    expect_fail(&b, "bad magic '??GU'", NULL);
    expect_fail(&(gb){b.p, 3, 3}, "3 bytes, too short", NULL);
    expect_fail(&(gb){b.p, 6, 6}, "bad magic", NULL);
    gb_free(&b);
    case_patch(f_version, 0, 4, "unsupported GGUF version 0", "(at byte 4)");
    case_patch(f_version, 4, 4, "unsupported GGUF version 4", NULL);
    case_patch(f_version, 0x03000000u, 4, "unsupported GGUF version 50331648", NULL);
    case_patch(f_version, 0x00030000u, 4, "big-endian", NULL);
    case_patch(f_version, UINT32_MAX, 4, "unsupported GGUF version 4294967295", NULL);
    case_patch(f_n_kv, UINT64_MAX, 8, "key/value count 18446744073709551615 exceeds", NULL);
    case_patch(f_n_kv, 1ull << 40, 8, "key/value count 1099511627776 exceeds", NULL);
    case_patch(f_n_tensors, UINT64_MAX, 8, "tensor count 18446744073709551615 exceeds", NULL);
    case_patch(f_n_tensors, 100, 8, "tensor count 100 exceeds", NULL);
    /* a count that fits the bound but not the content: parsing runs into garbage cleanly */
    case_patch(f_n_kv, 6, 8, "", NULL);
    case_patch(f_n_tensors, 3, 8, "", NULL);
}

static void test_keys_and_values(void **state) {
    (void)state;
    case_patch(f_key0_len, UINT64_MAX, 8,
               "key #0: key length 18446744073709551615 exceeds remaining", "(at byte 24)");
    case_patch(f_name_type, 13, 4, "key #1 'name': invalid value type 13", NULL);
    case_patch(f_name_type, UINT32_MAX, 4, "invalid value type 4294967295", NULL);
    case_patch(f_flag_val, 2, 1, "key #2 'flag': bool value 2 is neither 0 nor 1", NULL);
    case_patch(f_tok_elem_type, 13, 4, "key #3 'tokens': invalid array element type 13", NULL);
    case_patch(f_tok_len, UINT64_MAX, 8,
               "key #3 'tokens': array length 18446744073709551615 exceeds remaining", NULL);
    case_patch(f_tok_len, 1000, 8, "array length 1000 exceeds remaining", NULL);
    case_patch(f_tok_str0_len, 1ull << 62, 8, "string element #0: length 4611686018427387904",
               NULL);
    case_patch(f_nest_inner_type, 99, 4, "key #4 'nested': invalid array element type 99", NULL);
    case_patch(f_name_key, 'f' | 'l' << 8 | 'a' << 16 | (uint64_t)'g' << 24, 4,
               "key #2 'flag': duplicate key (first defined as key #1)", NULL);
    case_patch(f_flag_key, 'n' | 'a' << 8 | 'm' << 16 | (uint64_t)'e' << 24, 4,
               "key #2 'name': duplicate key (first defined as key #1)", NULL);
    case_patch(f_flag_key, 'f' | 'l' << 8, 4, "key contains a NUL byte", NULL);
    /* general.alignment: type u32 and a power of two, as ggml requires */
    case_patch(f_align_type, RS_V_I32, 4, "'general.alignment': must be u32, found i32", NULL);
    case_patch(f_align_type, RS_V_F32, 4, "must be u32, found f32", NULL);
    case_patch(f_align_val, 0, 4, "alignment 0 is not a power of two", NULL);
    case_patch(f_align_val, 3, 4, "alignment 3 is not a power of two", NULL);
    case_patch(f_align_val, 48, 4, "alignment 48 is not a power of two", NULL);
    /* a valid but different alignment moves the data: b's offset 96 is no longer aligned */
    case_patch(f_align_val, 64, 4,
               "tensor #1 'b': data offset 96 is not a multiple of the alignment 64", NULL);
}

static void test_tensor_infos(void **state) {
    (void)state;
    gb b;
    base_pos p;
    build_base(&b, &p);
    char at[64];
    snprintf(at, sizeof at, "(at byte %zu)", p.t0_type);
    gb_free(&b);
    case_patch(f_t0_type, 4, 4, "tensor #0 'w': unknown tensor type id 4", at);
    case_patch(f_t0_type, 31, 4, "unknown tensor type id 31", NULL);
    case_patch(f_t0_type, 40, 4, "unknown tensor type id 40", NULL);
    case_patch(f_t0_type, 64, 4, "unknown tensor type id 64", NULL); /* safetensors-only U8 */
    case_patch(f_t0_type, UINT32_MAX, 4, "unknown tensor type id 4294967295", NULL);
    case_patch(f_t0_ndims, 5, 4, "tensor #0 'w': 5 dimensions (at most 4)", NULL);
    case_patch(f_t0_ndims, UINT32_MAX, 4, "4294967295 dimensions", NULL);
    case_patch(f_t0_ne0, 33, 8, "ne[0] = 33 is not a multiple of the Q8_0 block size 32", NULL);
    case_patch(f_t0_ne1, UINT64_MAX, 8, "dimension 1 is negative (-1)", NULL);
    case_patch(f_t0_ne1, 1ull << 62, 8, "has more than 2^63-1 elements", NULL);
    case_patch(f_t1_ne0, 1ull << 62, 8,
               "tensor #1 'b': F32 tensor of 4611686018427387904 elements: byte size overflows",
               NULL);
    case_patch(f_t0_name, 'b', 1, "tensor #1 'b': duplicate tensor name", NULL);
    case_patch(f_t1_name, 'w', 1, "tensor #1 'w': duplicate tensor name (first used by tensor #0)",
               NULL);
    case_patch(f_t1_name, 0, 1, "tensor name contains a NUL byte", NULL);
    /* layout: offsets aligned, in order, packed (what ggml's gguf.cpp requires) */
    case_patch(f_t1_off, 100, 8, "data offset 100 is not a multiple of the alignment 32", NULL);
    case_patch(f_t1_off, 64, 8,
               "tensor #1 'b': data offset 64 overlaps tensor 'w', which ends at 96", NULL);
    case_patch(f_t1_off, 0, 8, "overlaps tensor 'w'", NULL);
    case_patch(f_t1_off, 128, 8,
               "data offset 128 leaves a gap after the previous tensor: expected 96", NULL);
    case_patch(f_t0_off, 1ull << 40, 8, "leaves a gap", NULL);
    case_patch(f_t1_off, UINT64_MAX - 31, 8, "leaves a gap", NULL);
    /* data past the end of the file */
    case_patch(f_t1_ne0, 8, 8, "tensor 'b': data [offset 96, 32 bytes]",
               "extends past end of file");
    case_patch(f_t1_type, RS_DTYPE_F64, 4, "extends past end of file", NULL);
    /* w grows to 102 bytes, padded to 128: b at 96 now overlaps it */
    case_patch(f_t0_ne1, 3, 8, "overlaps tensor 'w', which ends at 128", NULL);
}

/* Handcrafted images that need a different structure than the base. */
static void header3(gb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    memset(b, 0, sizeof *b);
    gb_raw(b, "GGUF", 4);
    gb_u32(b, version);
    gb_le(b, n_tensors, version == 1 ? 4 : 8);
    gb_le(b, n_kv, version == 1 ? 4 : 8);
}

static void test_structural(void **state) {
    (void)state;
    gb b;
    /* empty key */
    header3(&b, 3, 0, 1);
    gb_str(&b, "");
    gb_u32(&b, RS_V_U8);
    gb_u8(&b, 1);
    gb_u64(&b, 0); /* slack: an empty key is below the per-key minimum the count is bounded by */
    expect_fail(&b, "key #0: empty key", "(at byte 24)");
    gb_free(&b);
    /* empty tensor name */
    header3(&b, 3, 1, 0);
    gb_str(&b, "");
    gb_u32(&b, 1);
    gb_u64(&b, 4);
    gb_u32(&b, 0);
    gb_u64(&b, 0);
    expect_fail(&b, "tensor #0: empty tensor name", NULL);
    gb_free(&b);
    /* arrays nested 8 deep are accepted, 9 are not */
    for (int depth = 8; depth <= 9; depth++) {
        header3(&b, 3, 0, 1);
        gb_str(&b, "deep");
        gb_u32(&b, RS_V_ARR);
        for (int d = 1; d < depth; d++) {
            gb_u32(&b, RS_V_ARR);
            gb_u64(&b, 1);
        }
        gb_u32(&b, RS_V_I16);
        gb_u64(&b, 1);
        gb_le(&b, 0xfffe, 2);
        if (depth == 8) {
            uint64_t walk = 0;
            rs_error err = {0};
            assert_int_equal(parse_n(b.p, b.n, &err, &walk), RS_OK);
        } else {
            expect_fail(&b, "key #0 'deep': arrays nested deeper than 8 levels", NULL);
        }
        gb_free(&b);
    }
    /* a deep chain whose outer length is huge: refused by the length bound */
    header3(&b, 3, 0, 1);
    gb_str(&b, "k");
    gb_u32(&b, RS_V_ARR);
    gb_u32(&b, RS_V_ARR);
    gb_u64(&b, UINT64_MAX / 2);
    expect_fail(&b, "array length 9223372036854775807 exceeds remaining 0 bytes", NULL);
    gb_free(&b);
    /* bool array with a 2 in it */
    header3(&b, 3, 0, 1);
    gb_str(&b, "bools");
    gb_u32(&b, RS_V_ARR);
    gb_u32(&b, RS_V_BOOL);
    gb_u64(&b, 3);
    gb_u8(&b, 0);
    gb_u8(&b, 1);
    gb_u8(&b, 2);
    expect_fail(&b, "bool element #2 is 2", NULL);
    gb_free(&b);
    /* tensors present but the infos end after the file: the data section starts past EOF */
    header3(&b, 3, 1, 0);
    gb_str(&b, "t");
    gb_u32(&b, 1);
    gb_u64(&b,
           0); /* zero elements: nothing to store, but the section must still start in the file */
    gb_u32(&b, 0);
    gb_u64(&b, 0);
    expect_fail(&b, "data section would start at byte 64", "past the end of the file (size 57)");
    gb_pad(&b, 32);
    rs_error err = {0};
    assert_int_equal(parse_n(b.p, b.n, &err, NULL), RS_OK); /* now it is fine */
    gb_free(&b);
}

/* Versions 1 and 2, and a vocab-only file ending before the aligned data offset. */
static void test_versions(void **state) {
    (void)state;
    gb b;
    header3(&b, 1, 1, 2);
    gb_u32(&b, 4); /* v1 strings: u32 length */
    gb_raw(&b, "name", 4);
    gb_u32(&b, RS_V_STR);
    gb_u32(&b, 2);
    gb_raw(&b, "v1", 2);
    gb_u32(&b, 4);
    gb_raw(&b, "toks", 4);
    gb_u32(&b, RS_V_ARR);
    gb_u32(&b, RS_V_STR);
    gb_u32(&b, 2); /* v1 array length: u32 */
    gb_u32(&b, 1);
    gb_raw(&b, "x", 1);
    gb_u32(&b, 2);
    gb_raw(&b, "yz", 2);
    gb_u32(&b, 1);
    gb_raw(&b, "t", 1);
    gb_u32(&b, 2);
    gb_u32(&b, 2); /* v1 dims: u32 */
    gb_u32(&b, 3);
    gb_u32(&b, RS_DTYPE_F16);
    gb_u64(&b, 0); /* offsets are u64 in every version */
    gb_pad(&b, 32);
    size_t data = b.n;
    for (int i = 0; i < 12; i++) gb_u8(&b, (uint8_t)i);
    unsigned char *c = gb_exact(b.p, b.n);
    rs_gguf g;
    rs_error err = {0};
    rs_status st = rs_gguf_open_memory(&g, c, b.n, &err);
    if (st) fail_msg("%s", err.msg);
    assert_int_equal(g.version, 1);
    assert_int_equal(g.data_offset, data);
    rs_str s;
    assert_int_equal(rs_meta_get_str(&g.meta, "name", &s, NULL), RS_OK);
    assert_memory_equal(s.ptr, "v1", 2);
    rs_array a;
    assert_int_equal(rs_meta_get_arr(&g.meta, "toks", &a, NULL), RS_OK);
    assert_int_equal(a.n, 2);
    assert_memory_equal(rs_array_get_str(&a, 1).ptr, "yz", 2);
    assert_int_equal(g.tensors[0].ne[0], 2);
    assert_int_equal(g.tensors[0].ne[1], 3);
    assert_int_equal(g.tensors[0].nbytes, 12);
    rs_gguf_close(&g);
    free(c);
    /* a v1 string length is 32 bits: 0xffffffff is huge, not -1 */
    patch(&b, 16, UINT32_MAX, 4);
    expect_fail(&b, "key length 4294967295 exceeds remaining", "(at byte 16)");
    gb_free(&b);

    /* version 2 has the v3 layout */
    header3(&b, 2, 0, 1);
    gb_str(&b, "k");
    gb_u32(&b, RS_V_F64);
    gb_u64(&b, 0x3ff0000000000000ull); /* 1.0 */
    assert_int_equal(parse_n(b.p, b.n, &err, NULL), RS_OK);
    /* vocab-only: no tensors, the file stops right after the keys (57 bytes, offset 64) */
    c = gb_exact(b.p, b.n);
    assert_int_equal(rs_gguf_open_memory(&g, c, b.n, &err), RS_OK);
    assert_int_equal(g.version, 2);
    assert_true(g.data_offset > b.n);
    double d;
    assert_int_equal(rs_meta_get_f64(&g.meta, "k", &d, NULL), RS_OK);
    assert_true(d == 1.0);
    rs_gguf_close(&g);
    free(c);
    gb_free(&b);
}

static void test_memory_name(void **state) {
    (void)state;
    rs_gguf g;
    rs_error err = {0};
    assert_int_equal(rs_gguf_open_memory(&g, NULL, 0, &err), RS_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "<memory>: file is 0 bytes"));
    assert_null(rs_gguf_find_tensor(&g, "x")); /* closed state is usable */
}

/* Strict prefixes of a file must be refused cleanly. */
/* Every prefix shorter than `every`, then one every `s1` bytes up to `mid`, then
 * one every `s2` bytes (the data region needs only a few). */
static void truncations(const unsigned char *img, size_t size, size_t every, size_t mid, size_t s1,
                        size_t s2) {
    rs_error err = {0};
    clock_t c0 = clock();
    size_t count = 0;
    for (size_t n = 0; n < size; n += (n < every ? 1 : n < mid ? s1 : s2), count++) {
        rs_status st = parse_n(img, n, &err, NULL);
        if (st != RS_ERR_FORMAT) fail_msg("prefix of %zu/%zu bytes: status %d", n, size, st);
        assert_true(err.msg[0] != '\0');
    }
    printf("  %zu truncations of a %zu-byte file refused (%.0f ms CPU)\n", count, size,
           (double)(clock() - c0) * 1e3 / CLOCKS_PER_SEC);
}

static void test_truncation_base(void **state) {
    (void)state;
    gb b;
    base_pos p;
    build_base(&b, &p);
    truncations(b.p, b.n, b.n, b.n, 1, 1);
    gb_free(&b);
}

static unsigned char *load_shared(const char *rel, size_t *n) {
    char *raw = tu_read_file(shared_or_skip(rel), n);
    assert_non_null(raw);
    unsigned char *c = gb_exact(raw, *n);
    free(raw);
    return c;
}

static void test_truncation_shared(void **state) {
    (void)state;
    size_t n;
    /* every byte through the header region (+ a little data), then a stride */
    unsigned char *img = load_shared("models/stories260K.gguf", &n);
    truncations(img, n, 14176 + 64, n, 65521, 65521);
    free(img);
    img = load_shared("models/tinyllamas-stories-260k-f32.v1.gguf", &n);
    truncations(img, n, 11456 + 64, n, 65521, 65521);
    free(img);
    img = load_shared("models/TinyStories-656K-Q2_K.gguf", &n);
    truncations(img, n, 4096, 50848 + 64, 97, 65521);
    free(img);
    img = load_shared("tokenizer-tests/ggml-vocab-llama-spm.gguf", &n);
    truncations(img, n, 2048, n, 7919, 7919);
    free(img);
}

/* Random bit flips in the header region: a clean error or a parse, never a crash. */
static void flips(const char *rel, size_t region, int trials, uint64_t seed) {
    size_t n;
    unsigned char *img = load_shared(rel, &n);
    if (region > n) region = n;
    int ok = 0, bad = 0;
    clock_t c0 = clock();
    for (int t = 0; t < trials; t++) {
        size_t pos[3];
        unsigned char bit[3];
        int k = 1 + t % 3;
        for (int j = 0; j < k; j++) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            pos[j] = (size_t)(seed % region);
            bit[j] = (unsigned char)(1u << ((seed >> 32) % 8));
            img[pos[j]] ^= bit[j];
        }
        rs_gguf g;
        rs_error err = {0};
        rs_status st = rs_gguf_open_memory(&g, img, n, &err);
        if (st == RS_OK) {
            gguf_walk(&g);
            ok++;
        } else {
            if (st != RS_ERR_FORMAT && st != RS_ERR_NOMEM) fail_msg("status %d: %s", st, err.msg);
            assert_true(err.msg[0] != '\0' && !strchr(err.msg, '\n'));
            bad++;
        }
        rs_gguf_close(&g);
        for (int j = k - 1; j >= 0; j--) img[pos[j]] ^= bit[j];
    }
    printf("  %s: %d bit-flip trials, %d parsed, %d refused (%.0f ms CPU)\n", rel, trials, ok, bad,
           (double)(clock() - c0) * 1e3 / CLOCKS_PER_SEC);
    free(img);
}

static void test_bit_flips(void **state) {
    (void)state;
    flips("models/stories260K.gguf", 14176, 800, 1);
    flips("models/tinyllamas-stories-260k-f32.v1.gguf", 11456, 800, 2);
    flips("models/TinyStories-656K.f16.gguf", 50784, 500, 3);
    flips("models/tinystories-656k-q8_0.gguf", 50336, 500, 4);
    flips("models/TinyStories-656K-Q2_K.gguf", 50848, 500, 5);
    flips("tokenizer-tests/ggml-vocab-bert-bge.gguf", 4096, 200, 6); /* keys before the vocab */
}

/* Replays every file in a folder; returns how many parsed. */
static int replay_dir(const char *dir, int *total) {
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot open %s", dir);
    struct dirent *e;
    int ok = 0;
    *total = 0;
    while ((e = readdir(d))) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || (len > 3 && strcmp(e->d_name + len - 3, ".md") == 0)) continue;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        size_t n;
        char *raw = tu_read_file(path, &n);
        assert_non_null(raw);
        rs_error err = {0};
        uint64_t walk;
        rs_status s = parse_n(raw, n, &err, &walk);
        if (s != RS_OK && s != RS_ERR_FORMAT) fail_msg("%s: status %d: %s", path, s, err.msg);
        ok += s == RS_OK;
        (*total)++;
        free(raw);
    }
    closedir(d);
    return ok;
}

static void test_fuzz_regressions(void **state) {
    (void)state;
    int total;
    int ok = replay_dir(tu_tests("fuzz/regress/gguf"), &total);
    printf("  regress: %d files replayed, %d parsed\n", total, ok);
    ok = replay_dir(tu_tests("fuzz/seeds/gguf"), &total);
    printf("  seeds: %d files, %d parsed\n", total, ok);
    assert_true(total > 0);
    assert_int_equal(ok, total); /* seeds are valid files */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_is_valid),    cmocka_unit_test(test_header),
        cmocka_unit_test(test_keys_and_values),  cmocka_unit_test(test_tensor_infos),
        cmocka_unit_test(test_structural),       cmocka_unit_test(test_versions),
        cmocka_unit_test(test_memory_name),      cmocka_unit_test(test_truncation_base),
        cmocka_unit_test(test_fuzz_regressions), cmocka_unit_test(test_truncation_shared),
        cmocka_unit_test(test_bit_flips),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed ? failed : shared_missing ? 77 : 0;
}

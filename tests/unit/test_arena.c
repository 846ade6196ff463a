/* test_arena.c — rs_arena: alignment, bump placement, chunk growth, limits.
 *
 * Expected addresses are computed here from the previous pointer with plain
 * integer arithmetic (round up to the alignment), independently of the
 * arena's own pointer arithmetic. */
#include "testutil.h"

#include <stdint.h>
#include <string.h>

#include "core/arena.h"

static uintptr_t round_up(uintptr_t p, size_t align) {
    return (p + align - 1) / align * align;
}

static void test_bad_align_and_size(void **state) {
    (void)state;
    rs_arena a = {0};
    assert_null(rs_arena_alloc(&a, 8, 0));
    assert_null(rs_arena_alloc(&a, 8, 3));
    assert_null(rs_arena_alloc(&a, 8, 24));
    assert_null(rs_arena_alloc(&a, 8, 8192)); /* above the 4096 limit */
    assert_null(rs_arena_alloc(&a, SIZE_MAX, 1));
    assert_null(rs_arena_alloc(&a, SIZE_MAX / 2, 8));
    assert_null(rs_arena_calloc(&a, SIZE_MAX / 4 + 1, 4)); /* n * size overflows */
    assert_int_equal(a.total, 0);
    rs_arena_free(&a);
}

/* Consecutive pieces in one chunk: each starts at the previous end rounded up
 * to its alignment (the bump), and is aligned. */
static void test_bump_placement(void **state) {
    (void)state;
    rs_arena a = {0};
    static const size_t sizes[] = {3, 8, 1, 5, 64, 2, 7, 100, 1};
    static const size_t aligns[] = {1, 8, 1, 16, 64, 2, 4096, 4, 32};
    size_t total = 0;
    unsigned char *prev = rs_arena_alloc(&a, 1, 1);
    assert_non_null(prev);
    total += 1;
    size_t prev_size = 1;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = rs_arena_alloc(&a, sizes[i], aligns[i]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % aligns[i], 0);
        /* 64 KiB default chunks hold all of these, so no new chunk is started */
        assert_int_equal((uintptr_t)p, round_up((uintptr_t)prev + prev_size, aligns[i]));
        prev = p;
        prev_size = sizes[i];
        total += sizes[i];
    }
    assert_int_equal(a.total, total);
    rs_arena_free(&a);
    assert_null(a.head);
}

/* Small chunks force new ones (also for pieces larger than a chunk); every piece
 * stays aligned, and no piece overlaps another (each keeps its fill byte). */
static void test_chunks_no_overlap(void **state) {
    (void)state;
    enum { N = 200 };
    rs_arena a = {0};
    a.chunk_size = 64;
    unsigned char *p[N];
    size_t n[N];
    for (int i = 0; i < N; i++) {
        size_t align = (size_t)1 << (i % 8); /* 1 .. 128 */
        n[i] = (size_t)(i * 7 % 150);        /* 0 .. 149, some larger than a chunk */
        p[i] = rs_arena_alloc(&a, n[i], align);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t)p[i] % align, 0);
        memset(p[i], i & 0xff, n[i]);
    }
    for (int i = 0; i < N; i++)
        for (size_t k = 0; k < n[i]; k++) assert_int_equal(p[i][k], i & 0xff);
    rs_arena_free(&a);
}

static void test_calloc_and_strndup(void **state) {
    (void)state;
    rs_arena a = {0};
    unsigned char *junk = rs_arena_alloc(&a, 256, 1);
    assert_non_null(junk);
    memset(junk, 0xab, 256);
    uint32_t *z = rs_arena_calloc(&a, 10, sizeof *z);
    assert_non_null(z);
    assert_int_equal((uintptr_t)z % _Alignof(max_align_t), 0);
    for (int i = 0; i < 10; i++) assert_int_equal(z[i], 0);
    char *s = rs_arena_strndup(&a, "hello world", 5);
    assert_non_null(s);
    assert_string_equal(s, "hello");
    char *e = rs_arena_strndup(&a, "xyz", 0);
    assert_non_null(e);
    assert_string_equal(e, "");
    rs_arena_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_align_and_size),
        cmocka_unit_test(test_bump_placement),
        cmocka_unit_test(test_chunks_no_overlap),
        cmocka_unit_test(test_calloc_and_strndup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* testutil.h — helpers shared by the unit tests (cmocka). */
#ifndef RUSTY_TESTUTIL_H
#define RUSTY_TESTUTIL_H

#include <setjmp.h> /* cmocka needs these before its header */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#ifdef __clang_analyzer__
/* A failed cmocka check never returns (it long-jumps out of the test), but
 * cmocka 1.1.5 does not say so: _fail (behind fail() and fail_msg()) is not
 * declared noreturn and the assert_* macros call functions that return. For the
 * static analyzer only, model the common checks with the same comparisons, so
 * that it does not follow paths past a failed one. Compiled tests are unaffected. */
void _fail(const char *const file, const int line) __attribute__((noreturn));
#undef assert_true
#define assert_true(c) ((c) ? (void)0 : _fail(__FILE__, __LINE__))
#undef assert_false
#define assert_false(c) ((c) ? _fail(__FILE__, __LINE__) : (void)0)
#undef assert_non_null
#define assert_non_null(c) assert_true((c) != NULL)
#undef assert_null
#define assert_null(c) assert_true((c) == NULL)
#undef assert_int_equal
#define assert_int_equal(a, b) assert_true((uintmax_t)(a) == (uintmax_t)(b))
#undef assert_int_not_equal
#define assert_int_not_equal(a, b) assert_true((uintmax_t)(a) != (uintmax_t)(b))
#endif

/* Path of a file under ../shared (e.g. "models/stories260K.gguf") in a static
 * buffer, or NULL when the shared folder (env RUSTY_SHARED) is absent. */
const char *tu_shared(const char *rel);
/* Path of a file under tests/ (env RUSTY_TESTS), e.g. "data/ref.bin". */
const char *tu_tests(const char *rel);
/* A fresh scratch path under the build's tmp folder: <tmp>/<name>. */
const char *tu_tmp(const char *name);
/* Like tu_shared but, when ../shared is missing, prints a visible SKIP line and
 * exits 77 (ctest's "skipped"). Use at the start of tests needing real models. */
const char *tu_shared_or_skip(const char *rel);
/* Reads a whole file into malloc'd memory (+ NUL); NULL on failure. */
char *tu_read_file(const char *path, size_t *size);
/* Writes bytes to a file; returns 0 on success. */
int tu_write_file(const char *path, const void *data, size_t size);
/* Runs a shell command line, captures stdout (malloc'd, NUL-terminated) and
 * returns the exit status (-1 if it could not run). */
int tu_run(const char *cmdline, char **out);
/* Deterministic uniform floats in [-1, 1) (xorshift; state in *s). */
float tu_randf(uint64_t *s);
/* Bytes from lower-case hex digits, at most cap; stops at the first non-hex pair.
 * Returns the count written. */
size_t tu_parse_hex(const char *s, uint8_t *out, size_t cap);
/* FNV-1a 64 of n bytes (the hash the reference makers in tests/ref/ record). */
uint64_t tu_fnv1a64(const void *p, size_t n);

#endif

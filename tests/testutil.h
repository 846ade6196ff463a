/* testutil.h — helpers shared by the unit tests (cmocka). */
#ifndef RUSTY_TESTUTIL_H
#define RUSTY_TESTUTIL_H

#include <setjmp.h> /* cmocka needs these before its header */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

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

#endif

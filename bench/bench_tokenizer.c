/* bench_tokenizer.c — tokenizer throughput on one core.
 *
 * Encodes tinyshakespeare.txt with each shared vocabulary (byte-level BPE
 * gpt-2, SentencePiece llama-spm, and deepseek-llm / bert-bge when present),
 * best of 5 runs, and reports MB/s of input text; also whole-sequence decode.
 *
 *   build/bench_tokenizer [SHARED_DIR]     (default: $RUSTY_SHARED or ../shared) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = b ? (size_t)len : 0;
    return b;
}

static int bench(const char *shared, const char *vocab, const char *text, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer-tests/ggml-vocab-%s.gguf", shared, vocab);
    rs_gguf g;
    rs_error err = {0};
    if (rs_gguf_open(&g, path, &err)) {
        printf("%-14s skipped (%s)\n", vocab, err.msg);
        return 0;
    }
    rs_tokenizer *t;
    double t0 = now();
    rs_status st = rs_tokenizer_load_meta(&t, &g.meta, &err);
    double load_s = now() - t0;
    rs_gguf_close(&g);
    if (st) {
        printf("%-14s load failed: %s\n", vocab, err.msg);
        return 1;
    }
    rs_tokens ids = {0};
    double best = 1e30, best_dec = 1e30;
    for (int r = 0; r < 5; r++) {
        ids.n = 0;
        double a = now();
        if (rs_tokenizer_encode(t, text, n, false, false, &ids, &err)) {
            printf("%-14s encode failed: %s\n", vocab, err.msg);
            return 1;
        }
        double d = now() - a;
        if (d < best) best = d;
        rs_bytes out = {0};
        a = now();
        rs_tokenizer_decode(t, ids.ids, ids.n, 0, &out, &err);
        d = now() - a;
        if (d < best_dec) best_dec = d;
        rs_bytes_free(&out);
    }
    printf("%-14s %8zu tokens  encode %7.2f MB/s  decode %8.1f MB/s  (load %.0f ms)\n", vocab,
           ids.n, (double)n / best / 1e6, (double)n / best_dec / 1e6, load_s * 1e3);
    rs_tokens_free(&ids);
    rs_tokenizer_free(t);
    return 0;
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : getenv("RUSTY_SHARED");
    if (!shared || !*shared) shared = "../shared";
    char path[4096];
    snprintf(path, sizeof path, "%s/data/tinyshakespeare.txt", shared);
    size_t n;
    char *text = read_file(path, &n);
    if (!text) {
        fprintf(stderr, "bench_tokenizer: cannot read %s\n", path);
        return 1;
    }
    printf("tinyshakespeare.txt: %zu bytes, one thread, best of 5\n", n);
    int rc = 0;
    const char *vocabs[] = {"gpt-2", "llama-spm", "deepseek-llm", "bert-bge"};
    for (int i = 0; i < 4; i++) rc |= bench(shared, vocabs[i], text, n);
    free(text);
    return rc;
}

/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *env_or(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

const char *tu_shared(const char *rel) {
    static char buf[4096];
    const char *root = env_or("RUSTY_SHARED", "../shared");
    snprintf(buf, sizeof buf, "%s/%s", root, rel);
    struct stat st;
    if (stat(buf, &st) != 0) return NULL;
    return buf;
}

const char *tu_shared_or_skip(const char *rel) {
    const char *p = tu_shared(rel);
    if (!p) {
        printf("SKIP: %s/%s not found (shared models absent)\n",
               env_or("RUSTY_SHARED", "../shared"), rel);
        fflush(stdout);
        exit(77);
    }
    return p;
}

const char *tu_tests(const char *rel) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", env_or("RUSTY_TESTS", "tests"), rel);
    return buf;
}

const char *tu_tmp(const char *name) {
    static char buf[4096];
    const char *root = env_or("RUSTY_TMP", "/tmp/rusty-tests");
    mkdir(root, 0755);
    snprintf(buf, sizeof buf, "%s/%d-%s", root, (int)getpid(), name);
    return buf;
}

char *tu_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) {
            free(buf);
            fclose(f);
            return NULL;
        }
        buf = nb;
    }
    fclose(f);
    buf[n] = '\0';
    if (size) *size = n;
    return buf;
}

int tu_write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, size, f);
    int rc = fclose(f);
    return (w == size && rc == 0) ? 0 : -1;
}

int tu_run(const char *cmdline, char **out) {
    FILE *p = popen(cmdline, "r");
    if (!p) return -1;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (cap - n < 2) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) break;
            buf = nb;
        }
    }
    if (buf) buf[n] = '\0';
    int st = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

float tu_randf(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return (float)((x >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static int hex_nibble(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;
}

size_t tu_parse_hex(const char *s, uint8_t *out, size_t cap) {
    size_t n = 0;
    while (s[0] && s[1] && n < cap) {
        const int hi = hex_nibble(s[0]), lo = hex_nibble(s[1]);
        if (hi < 0 || lo < 0) break;
        out[n++] = (uint8_t)(hi << 4 | lo);
        s += 2;
    }
    return n;
}

uint64_t tu_fnv1a64(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

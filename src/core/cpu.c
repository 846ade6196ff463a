/* cpu.c — CPU feature and core-count detection (see cpu.h). */
#include "core/cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* Counts distinct (physical id, core id) pairs in /proc/cpuinfo. */
static int count_physical_cores(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return 0;
    enum { MAX_CORES = 1024 };
    static const int none = -1;
    int seen_pkg[MAX_CORES], seen_core[MAX_CORES];
    int n = 0, pkg = none, core = none;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "physical id : %d", &pkg) == 1) continue;
        if (sscanf(line, "core id : %d", &core) == 1) {
            int dup = 0;
            for (int i = 0; i < n; i++) dup |= (seen_pkg[i] == pkg && seen_core[i] == core);
            if (!dup && n < MAX_CORES) {
                seen_pkg[n] = pkg;
                seen_core[n] = core;
                n++;
            }
        }
    }
    fclose(f);
    return n;
}

void rs_cpu_detect(rs_cpu_info *info) {
    memset(info, 0, sizeof *info);
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    info->avx2 = __builtin_cpu_supports("avx2");
    info->fma = __builtin_cpu_supports("fma");
    /* clang 14's __builtin_cpu_supports does not know "f16c": read CPUID.1:ECX bit 29 */
    unsigned a, b, c, d;
    info->f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
    info->avx512f = __builtin_cpu_supports("avx512f");
    info->avx512bw = __builtin_cpu_supports("avx512bw");
    info->avx512vl = __builtin_cpu_supports("avx512vl");
    info->avx512dq = __builtin_cpu_supports("avx512dq");
    info->avx512vnni = __builtin_cpu_supports("avx512vnni");
    info->avx512bf16 = __builtin_cpu_supports("avx512bf16");
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    info->n_logical = n > 0 ? (int)n : 1;
    int phys = count_physical_cores();
    info->n_physical = (phys > 0 && phys <= info->n_logical) ? phys : info->n_logical;
}

rs_simd_level rs_cpu_simd_level(void) {
    rs_cpu_info c;
    rs_cpu_detect(&c);
    rs_simd_level best = RS_SIMD_SCALAR;
    if (c.avx2 && c.fma && c.f16c) best = RS_SIMD_AVX2;
    if (best == RS_SIMD_AVX2 && c.avx512f && c.avx512bw && c.avx512vl && c.avx512dq && c.avx512vnni)
        best = RS_SIMD_AVX512;
    const char *cap = getenv("RUSTY_SIMD");
    if (cap) {
        rs_simd_level want = best;
        if (strcmp(cap, "scalar") == 0) want = RS_SIMD_SCALAR;
        if (strcmp(cap, "avx2") == 0) want = RS_SIMD_AVX2;
        if (strcmp(cap, "avx512") == 0) want = RS_SIMD_AVX512;
        if (want < best) best = want;
    }
    return best;
}

const char *rs_simd_level_name(rs_simd_level l) {
    switch (l) {
    case RS_SIMD_SCALAR: return "scalar";
    case RS_SIMD_AVX2: return "AVX2";
    case RS_SIMD_AVX512: return "AVX-512";
    }
    return "?";
}

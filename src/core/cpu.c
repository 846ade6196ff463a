/* cpu.c — CPU feature and core-count detection (see cpu.h). */
#include "core/cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
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
    /* CPUID.(7,0):EDX bits 24 (AMX-TILE) and 25 (AMX-INT8); XCR0 bits 17-18
     * (tile config and data state) set by the OS, readable once OSXSAVE is */
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (3u << 24)) == (3u << 24) &&
        __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 27))) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        info->amx_int8 = (lo & (3u << 17)) == (3u << 17);
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    info->n_logical = n > 0 ? (int)n : 1;
    int phys = count_physical_cores();
    info->n_physical = (phys > 0 && phys <= info->n_logical) ? phys : info->n_logical;
}

/* Asks Linux for permission to use the AMX tile data state (needed before the
 * first tile instruction; granted per process, repeat requests are no-ops). */
static bool request_amx(void) {
#if defined(__x86_64__) && defined(__linux__)
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return false;
#endif
}

rs_simd_level rs_cpu_simd_level(void) {
    rs_cpu_info c;
    rs_cpu_detect(&c);
    rs_simd_level best = RS_SIMD_SCALAR;
    if (c.avx2 && c.fma && c.f16c) best = RS_SIMD_AVX2;
    if (best == RS_SIMD_AVX2 && c.avx512f && c.avx512bw && c.avx512vl && c.avx512dq && c.avx512vnni)
        best = RS_SIMD_AVX512;
    bool amx = best == RS_SIMD_AVX512 && c.amx_int8;
    const char *cap = getenv("RUSTY_SIMD");
    if (cap) {
        rs_simd_level want = amx ? RS_SIMD_AMX : best;
        if (strcmp(cap, "scalar") == 0) want = RS_SIMD_SCALAR;
        if (strcmp(cap, "avx2") == 0) want = RS_SIMD_AVX2;
        if (strcmp(cap, "avx512") == 0) want = RS_SIMD_AVX512;
        if (want < RS_SIMD_AMX) amx = false;
        if (want < best) best = want;
    }
    if (amx && request_amx()) best = RS_SIMD_AMX;
    return best;
}

const char *rs_simd_level_name(rs_simd_level l) {
    switch (l) {
    case RS_SIMD_SCALAR:
        return "scalar";
    case RS_SIMD_AVX2:
        return "AVX2";
    case RS_SIMD_AVX512:
        return "AVX-512";
    case RS_SIMD_AMX:
        return "AMX";
    }
    return "?";
}

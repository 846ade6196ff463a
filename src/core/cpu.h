/* cpu.h — what the CPU we run on can do, for choosing kernels at run time. */
#ifndef RUSTY_CPU_H
#define RUSTY_CPU_H

#include <stdbool.h>

typedef enum rs_simd_level {
    RS_SIMD_SCALAR = 0, /* portable C */
    RS_SIMD_AVX2 = 1,   /* AVX2 + FMA + F16C */
    RS_SIMD_AVX512 = 2, /* AVX-512 F/BW/VL/DQ + VNNI (bf16 not required) */
    RS_SIMD_AMX = 3,    /* the above + AMX-TILE/AMX-INT8, enabled by the OS for this process */
} rs_simd_level;

typedef struct rs_cpu_info {
    bool avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512bf16;
    bool amx_int8;  /* AMX-TILE + AMX-INT8 in CPUID and tile state enabled in XCR0 */
    int n_logical;  /* online logical CPUs */
    int n_physical; /* physical cores (best effort; = n_logical when unknown) */
} rs_cpu_info;

void rs_cpu_detect(rs_cpu_info *info);
/* Best level this CPU supports; env RUSTY_SIMD=scalar|avx2|avx512|amx caps it (for
 * tests). Reaching RS_SIMD_AMX asks Linux for the AMX tile state permission
 * (arch_prctl ARCH_REQ_XCOMP_PERM, once per process, idempotent); without it
 * the level stays AVX-512. */
rs_simd_level rs_cpu_simd_level(void);
const char *rs_simd_level_name(rs_simd_level l);

#endif

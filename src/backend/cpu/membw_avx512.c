/* membw_avx512.c — AVX-512 streaming read kernel for the bandwidth probe (see membw.h). */
#include "backend/cpu/membw.h"

#include <immintrin.h>

uint64_t rs_membw_read_avx512(const void *p, size_t n_bytes) {
    const __m512i *v = p;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n_bytes / 64; i += 4) {
        a0 = _mm512_add_epi64(a0, _mm512_load_si512(v + i));
        a1 = _mm512_add_epi64(a1, _mm512_load_si512(v + i + 1));
        a2 = _mm512_add_epi64(a2, _mm512_load_si512(v + i + 2));
        a3 = _mm512_add_epi64(a3, _mm512_load_si512(v + i + 3));
    }
    /* reduce in unsigned arithmetic: the intrinsic reduction adds as signed (UB on overflow) */
    uint64_t out[8], sum = 0;
    _mm512_storeu_si512(out, _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
    for (int i = 0; i < 8; i++) sum += out[i];
    return sum;
}

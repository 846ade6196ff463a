/* membw.h — measures the machine's achievable memory read bandwidth.
 *
 * Every thread of the pool streams over its slice of a buffer much larger than
 * the last-level cache, summing it with the widest loads the CPU has, in three
 * patterns: its own slice as one sequential stream, as four interleaved ones,
 * and all threads sweeping the buffer together in 64 KiB chunks dealt
 * round-robin (decode reads several streams per thread, spread as the last;
 * on a 16-core Xeon VM the first pattern alone read less than decode moved).
 * The best of all runs is reported. Decode benchmarks divide their weight-streaming
 * rate by this figure. */
#ifndef RUSTY_BACKEND_CPU_MEMBW_H
#define RUSTY_BACKEND_CPU_MEMBW_H

#include <stddef.h>
#include <stdint.h>

#include "backend/cpu/threadpool.h"
#include "core/cpu.h"
#include "core/status.h"

/* Buffer size used when the caller passes 0: 4 GiB (over 10x any L3 we run on),
 * at most a quarter of physical memory, never less than 256 MiB. */
size_t rs_membw_default_bytes(void);

/* Streams `bytes` (0 = rs_membw_default_bytes()) `runs` times (>= 1) in each
 * pattern with all threads of tp at SIMD level `level`; *gbps = best rate in
 * 1e9 bytes/s. */
rs_status rs_membw_measure(rs_threadpool *tp, rs_simd_level level, size_t bytes, int runs,
                           double *gbps, rs_error *err);

/* Read kernels (sum of 64-bit words; n_bytes a multiple of 256, p 64-aligned).
 * Internal: exposed for the per-level files. */
uint64_t rs_membw_read_scalar(const void *p, size_t n_bytes);
uint64_t rs_membw_read_avx2(const void *p, size_t n_bytes);
uint64_t rs_membw_read_avx512(const void *p, size_t n_bytes);

#endif

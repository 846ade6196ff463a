/* xoshiro.h — the sampler's random stream, one definition for the host (sampler.c) and
 * the device (cuda_sample.cu draws the same numbers): xoshiro256** and its 53-bit
 * uniform. */
#ifndef RUSTY_XOSHIRO_H
#define RUSTY_XOSHIRO_H

#include <stdint.h>

#ifdef __CUDACC__
#define RS_HOST_DEVICE __host__ __device__
#else
#define RS_HOST_DEVICE
#endif

static inline RS_HOST_DEVICE uint64_t rs_rotl64(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

/* The next output; moves the state st on. */
static inline RS_HOST_DEVICE uint64_t rs_xoshiro_next(uint64_t st[4]) {
    const uint64_t out = rs_rotl64(st[1] * 5, 7) * 9;
    const uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rs_rotl64(st[3], 45);
    return out;
}

/* Uniform in [0, 1): the top 53 bits, so every value is an exact double. */
static inline RS_HOST_DEVICE double rs_xoshiro_uniform(uint64_t st[4]) {
    return (double)(rs_xoshiro_next(st) >> 11) * 0x1p-53;
}

#endif

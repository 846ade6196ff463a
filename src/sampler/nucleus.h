/* nucleus.h — top-p over the whole vocabulary (top-k off), one definition for the host
 * (sampler.c) and the device (cuda_sample.cu finds the same cut in parallel).
 *
 * The nucleus is the shortest prefix of the candidates, best first (logit descending,
 * then id ascending), whose temperature-1 mass reaches top_p of the total. Summed as
 * doubles, that prefix depends on the order of the additions, which a GPU cannot follow.
 * So each mass is an integer, exp(logit - max) in units of 2^-36 rounded to nearest, and
 * every sum is exact in any order: the cut is the first candidate whose inclusive prefix
 * sum reaches rs_nucleus_target(total). A mass below 2^-37 counts as 0 (a logit more than
 * ~25 nats under the max), so such candidates join the nucleus only behind one that has
 * mass. With at most 2^24 ids (RS_SAMPLER_VOCAB_MAX) the total stays below 2^60. */
#ifndef RUSTY_NUCLEUS_H
#define RUSTY_NUCLEUS_H

#include <math.h>
#include <stdint.h>

#include "sampler/xoshiro.h" /* RS_HOST_DEVICE */

#define RS_NUCLEUS_UNIT 68719476736.0 /* 2^36: one mass of the max logit */

/* A candidate's top-p mass; d = its logit minus the largest (<= 0, or -inf). */
static inline RS_HOST_DEVICE uint64_t rs_nucleus_mass(double d) {
    return (uint64_t)rint(exp(d) * RS_NUCLEUS_UNIT);
}

/* The prefix sum the nucleus must reach: ceil(top_p * total), within [1, total]. */
static inline RS_HOST_DEVICE uint64_t rs_nucleus_target(uint64_t total, float top_p) {
    const double t = ceil((double)top_p * (double)total);
    if (t < 1.0) return 1;
    return t >= (double)total ? total : (uint64_t)t;
}

#endif

/* mass_tree.h — how a draw over the whole vocabulary adds its probability masses, one
 * definition for the host (sampler.c) and the device (cuda_sample.cu takes the same sums).
 *
 * When top-k and top-p are off, the candidates are the vocabulary in id order (min-p may
 * zero some). Summing 32 000-150 000 masses one after another is a chain the GPU cannot
 * split, so the sums go up a tree of fan-in RS_TREE_FAN instead: level 0 is the masses by
 * id, node i of level k + 1 is the left-to-right sum of level k's nodes FAN i .. FAN i +
 * FAN - 1 (fewer at the end), and the top level's one node is the total. With FAN = 16 a
 * GPU thread sums 16 ids, a half-warp 256 and a block of 256 threads 4096, each level in
 * the host's order. The draw then walks down from the total: at each node, the first child
 * whose running sum, started from the mass before the node, exceeds u times the total.
 * Every operation is one IEEE double add or compare, so both sides get the same token. */
#ifndef RUSTY_MASS_TREE_H
#define RUSTY_MASS_TREE_H

#include <stdint.h>

#include "sampler/xoshiro.h" /* RS_HOST_DEVICE */

/* Levels a tree over up to 16^7 leaves has, the leaves included. */
enum { RS_TREE_FAN = 16, RS_TREE_LEVELS = 8 };

/* Writes the level above src[0 .. len) into dst; returns its length. */
static inline RS_HOST_DEVICE int64_t rs_tree_up(const double *src, int64_t len, double *dst) {
    const int64_t m = (len + RS_TREE_FAN - 1) / RS_TREE_FAN;
    for (int64_t i = 0; i < m; i++) {
        const int64_t end = len < (i + 1) * RS_TREE_FAN ? len : (i + 1) * RS_TREE_FAN;
        double sum = 0.0;
        for (int64_t j = i * RS_TREE_FAN; j < end; j++) sum += src[j];
        dst[i] = sum;
    }
    return m;
}

/* One step down from node `node`, whose children are child[FAN node ..) of a level of len
 * nodes: the first child whose running sum from *base exceeds target; when rounding keeps
 * every sum at or below it, the last child with mass. *base becomes the running sum before
 * the child returned. The node must have mass (so one of its children has). */
static inline RS_HOST_DEVICE int64_t rs_tree_down(const double *child, int64_t len, int64_t node,
                                                  double target, double *base) {
    const int64_t first = node * RS_TREE_FAN;
    const int64_t end = len < first + RS_TREE_FAN ? len : first + RS_TREE_FAN;
    double cum = *base;
    for (int64_t i = first; i < end; i++) {
        const double before = cum;
        cum += child[i];
        if (target < cum) {
            *base = before;
            return i;
        }
    }
    int64_t last = first;
    double last_base = *base;
    cum = *base;
    for (int64_t i = first; i < end; i++) {
        if (child[i] > 0.0) last = i, last_base = cum;
        cum += child[i];
    }
    *base = last_base;
    return last;
}

/* Builds the levels above level[0] (len[0] nodes) one after another into up, filling
 * level[] and len[]; returns the top level's index (its one node is the total). */
static inline RS_HOST_DEVICE int rs_tree_build(const double *level[RS_TREE_LEVELS],
                                               int64_t len[RS_TREE_LEVELS], double *up) {
    int top = 0;
    for (; len[top] > 1; top++) {
        level[top + 1] = up;
        len[top + 1] = rs_tree_up(level[top], len[top], up);
        up += len[top + 1];
    }
    return top;
}

/* Walks from the total at level top down to a node of level 0 for target; *base starts at 0
 * and ends as the running sum before that node. */
static inline RS_HOST_DEVICE int64_t rs_tree_walk(const double *const level[RS_TREE_LEVELS],
                                                  const int64_t len[RS_TREE_LEVELS], int top,
                                                  double target, double *base) {
    int64_t node = 0;
    *base = 0.0;
    for (int k = top; k > 0; k--) node = rs_tree_down(level[k - 1], len[k - 1], node, target, base);
    return node;
}

#endif

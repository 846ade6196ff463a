#!/usr/bin/env python3
"""Summarises an fr_kernel trace from the kernel lab (LAB_ROLL_TRACE=prefix,
bench/cuda_bench.cu): when each one-token fused launch's blocks started, got past
their wait for the kernel before, and ended.

The dump is [160 launches][160 blocks][8 words] (RS_ROLL_* in cuda_internal.h):
globaltimer nanoseconds at the block's start, wait over and end (0 = not
stamped), then its SM. Q8_0, Q4_0, Q4_K and Q6_K launches are traced. With the
7B shape and no chain the launches go qkv, wo, gate+up, down per layer (the
attention runs between qkv and wo, untraced); a "waited" stamp is late where the
block's loads before the wait stalled its issue.

usage: roll_trace.py FILE.bin [per-layer launches (4)] [layers to show (4..7)]
"""
import array
import statistics
import sys

LAUNCHES, GRID, W = 160, 160, 8
NAMES = ["qkv", "wo", "gate+up", "down"]


def summarise(path, per_layer=4, layers=range(4, 8)):
    t = array.array("Q")
    with open(path, "rb") as f:
        t.frombytes(f.read())
    assert len(t) == LAUNCHES * GRID * W, "not a roll trace"

    def blocks(launch):  # [(block, words)] of the blocks that ran
        base = launch * GRID * W
        return [(b, t[base + b * W: base + (b + 1) * W]) for b in range(GRID)
                if t[base + b * W] > 0]

    for layer in layers:
        first = layer * per_layer
        if first + per_layer > LAUNCHES or not blocks(first):
            break
        t0 = min(w[0] for _, w in blocks(first))
        print(f"layer {layer} (us from its first launch's first block start)")
        for k in range(per_layer):
            bl = blocks(first + k)
            if not bl:
                continue
            rel = [[(w[i] - t0) / 1e3 for i in range(3)] for _, w in bl]
            start, waited, end = [[r[i] for r in rel] for i in range(3)]
            # blocks that started before the first block got past its wait: they
            # loaded ahead while the kernel before was still running
            early = sum(1 for s in start if s < min(waited))
            name = NAMES[k] if per_layer == 4 else str(k)
            print(f"  {name:8s} blocks {len(bl):3d} start {min(start):6.2f}..{max(start):6.2f}  "
                  f"waited {min(waited):6.2f}..{max(waited):6.2f}  "
                  f"end {min(end):6.2f}..{max(end):6.2f} (median {statistics.median(end):6.2f})  "
                  f"early {early:3d}")
            last = sorted(range(len(bl)), key=lambda j: end[j])[-4:]
            print("           last to end: " + ", ".join(
                f"b{bl[j][0]} sm{bl[j][1][3]} start {start[j]:.2f} end {end[j]:.2f}" for j in last))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    per = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    print(sys.argv[1])
    summarise(sys.argv[1], per)

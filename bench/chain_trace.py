#!/usr/bin/env python3
"""Summarises a decode-chain trace from the kernel lab (LAB_CHAIN_TRACE=prefix,
bench/cuda_bench.cu): where a chain launch's time goes at each phase boundary.

The dump is [64 launches][160 blocks][4 phases][8 events] (RS_CUDA_CHAIN_TRACE_*
in cuda_internal.h) of globaltimer nanoseconds (0 = not stamped), events as in
cuda_chain.cuh (DC_TRACE_EV):
0 consumers' phase start, 1 wait over, 2 activations in, 3 last stage summed,
4 finisher's count added, 5/6 producer's first/last copy issued, 7 the
finisher's last group's sums in.

usage: chain_trace.py FILE.bin [...]
"""
import sys

import numpy as np

LAUNCHES, GRID, PHASES, EV = 64, 160, 4, 8


def summarise(path):
    t = np.fromfile(path, dtype=np.uint64).reshape(LAUNCHES, GRID, PHASES, EV).astype(np.float64)
    rows = []
    for L in range(LAUNCHES):
        tl = t[L]
        live = tl[:, 0, 0] > 0  # blocks that started phase 0
        if not live.any():
            continue
        tl = tl[live]
        n_ph = int(max(k + 1 for k in range(PHASES) if (tl[:, k, 0] > 0).any()))
        t0 = tl[:, 0, 0].min()
        ph = []
        for k in range(n_ph):
            e = tl[:, k, :]
            has = e[:, 4] > 0  # blocks with groups in this phase
            done = e[has, 4].max() if has.any() else np.nan
            r = {
                "blocks": int(has.sum()),
                "start_med": np.median(e[:, 2]) - t0,
                "end_med": np.median(e[has, 3]) - t0 if has.any() else np.nan,
                "end_max": e[has, 3].max() - t0 if has.any() else np.nan,
                "done": done - t0,
                "x_copy": np.median(e[:, 2] - e[:, 1]),
                "lead": np.median(e[has, 0] - e[has, 5]) if has.any() else np.nan,
                "epi": np.median(e[has, 4] - e[has, 7]) if has.any() else np.nan,
                "fin_lag": np.median(e[has, 7] - e[has, 3]) if has.any() else np.nan,
            }
            if k > 0:
                prev_done = ph[k - 1]["done"] + t0
                r["detect_med"] = np.median(e[:, 1] - prev_done)
                r["detect_max"] = (e[:, 1] - prev_done).max()
                # consumers idle from their own end of the previous phase to work in this one
                prev_end = tl[:, k - 1, 3]
                r["idle_med"] = np.median(e[:, 2] - prev_end)
                r["idle_mean"] = np.mean(e[:, 2] - prev_end)
            ph.append(r)
        rows.append(ph)
    print(f"{path}: {len(rows)} launches")
    if not rows:
        return
    n_ph = max(len(p) for p in rows)
    keys = ["blocks", "start_med", "end_med", "end_max", "done", "x_copy", "lead", "epi",
            "fin_lag", "detect_med", "detect_max", "idle_med", "idle_mean"]
    print("phase " + " ".join(f"{k:>10}" for k in keys) + "   (ns, medians over launches)")
    for k in range(n_ph):
        vals = []
        for key in keys:
            xs = [p[k][key] for p in rows if len(p) > k and key in p[k]]
            vals.append(np.nanmedian(xs) if xs else np.nan)
        print(f"{k:>5} " + " ".join(f"{v:>10.0f}" for v in vals))
    full = [p[-1]["done"] for p in rows if len(p) == n_ph]
    print(f"{n_ph}-phase launches: first start to last count, median {np.median(full):.0f} ns")


if __name__ == "__main__":
    for f in sys.argv[1:]:
        summarise(f)

#!/usr/bin/env bash
# cpu.sh — the CPU benchmarks, in one go (`make bench` runs it).
#
#   bench/cpu.sh [SHAPE] [TYPES]
#     SHAPE  synthetic model shape for the rusty bench rows (default tinyllama-1b;
#            llama2-7b on a big machine), see bench/synth_model.c
#     TYPES  comma-separated weight types (default Q4_0,Q8_0)
# Env: THREADS (default: physical cores), OUT (results folder, default build/bench-out),
#      PP (default 64), TG (default 32), REPS (default 3), SHARED (default ../shared).
# Prints markdown tables; copy the figures with machine/date/commit into bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SHAPE=${1:-tinyllama-1b}
TYPES=${2:-Q4_0,Q8_0}
OUT=${OUT:-build/bench-out}
SHARED=${SHARED:-../shared}
PP=${PP:-64} TG=${TG:-32} REPS=${REPS:-3}
mkdir -p "$OUT"
B=build/rusty
T=()
[[ -n ${THREADS:-} ]] && T=(-t "$THREADS")

echo "## machine"
echo "- $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs; commit $(git rev-parse --short HEAD); $(date -u +%F)"
echo "- $($B --version | tr '\n' ' ')"

echo
echo "## matmul kernels (bench_matmul)"
build/bench/bench_matmul

if [[ -d $SHARED/tokenizer-tests ]]; then
    echo
    echo "## tokenizer (bench_tokenizer, one core)"
    build/bench/bench_tokenizer "$SHARED"
fi

echo
echo "## rusty bench: $SHAPE, random weights"
for ty in ${TYPES//,/ }; do
    f=$OUT/$SHAPE-$ty.gguf
    [[ -f $f ]] || build/bench/synth_model "$SHAPE" "$ty" "$f" >/dev/null
    $B bench -m "$f" --device cpu "${T[@]}" -p "$PP" -n "$TG" -r "$REPS" | tail -n +$([[ $ty == ${TYPES%%,*} ]] && echo 1 || echo 3)
done

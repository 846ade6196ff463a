#!/usr/bin/env bash
# gpu.sh — everything the GPU machine runs, in one call.
#
# The GPU machine has CUDA and Python/torch but none of our build dependencies
# (cJSON, PCRE2, utf8proc, cmocka), so everything is built HERE and shipped:
#
#   bench/gpu.sh stage [lean]          # here: make build, pack binaries + runtime libs into .stage-gpu/
#                                      # (lean: rusty and synth_model only, for bench/ab/peer)
#   (device) cd .stage-gpu && ./gpu.sh test|bench|cpu|hf|all   # there, with carry [".stage-gpu", ".models"]
#
# test   CUDA op tests + end-to-end GPU-vs-CPU tests, compute-sanitizer on a decode loop
# qmodels  (part of test) CPU-vs-GPU logits of synthetic 60M models of QM_TYPES (every quantized type)
# bench  synthesizes Llama-2-7B-shaped models (random weights) and runs `rusty bench --greedy
#        --sampled` on the GPU (tg rows four times: host-synchronous steps, chained greedy steps,
#        the default sampler on the host, and drawn by chained steps): F16, Q8_0, Q4_0, Q4_K (Q4_K_S), Q4_K_M at pp512/tg128, Q4_0 at depth 4096 (and with a Q8_0 cache at 0 and 4096),
#        then Q8_0 and Q4_0 of a 3B and the TinyLlama-1.1B shape
# big    the Llama-3-70B shape (8192 wide, 28672-wide FFN, 64 query heads over 8 kv heads):
#        greedy tokens CPU against GPU and memcheck on two of its layers (BIG_CHECK_TYPES;
#        empty: none), then `rusty bench --greedy` on the whole 80 layers (BIG_TYPES; each
#        file ~40 GB, its layers repeating the first's bytes (synth_model --repeat-layers: one
#        layer quantized, so K-quants fit one call), removed after; BIG_DEPTH=D adds rows at
#        depth D with F16, Q8_0 and Q4_0 caches)
# formats  every weight type the decode kernels take, one Llama-2-7B-shaped file each
#        (FORMAT_TYPES; layers repeating the first's bytes, removed after): pp512 and tg128
# cpu    the same models' Q4_0/Q8_0 on the machine's CPU cores (pp64, tg32)
# hf     HF transformers on the same GPU (bench/hf_bench.py)
# lab    the kernel lab (bench/cuda_bench.cu) with LAB_ARGS (default: the decode model table)
# prof   Nsight Compute on one layer's decode kernels of the kernel lab (PROF_TYPES), or on
#        PROF_KERNELS of another lab run (PROF_LAB="attn", PROF_NAME_BASE=mangled for templates)
# peer   llama.cpp (Debian's build, packed by `bench/peer.sh stage`, carried as .stage-peer)
#        and `rusty bench` on the same GGUFs, interleaved: PEER_TYPES of PEER_SHAPE at
#        pp512/tg128, PEER_CPU_TYPES on the host's CPU (pp64/tg32), then the 7B's
#        Q4_0 at depth 4096; PEER_REPEAT=1 synthesizes files whose layers repeat the first's
#        bytes, as big does
# pick   sample_pick's op tests under Nsight Compute: the median kernel time of each case
# ab     A/B: `rusty bench $AB_ARGS` on AB_TYPES (AB_SHAPE: a synth_model shape) with an older stage's binaries
#        (carried as .stage-base: `cp -r .stage-gpu .stage-base` before the change)
#        and this one's, interleaved over AB_ROUNDS rounds, in one invocation; or, with
#        AB_TUNE_BASE / AB_TUNE_NEW, this stage's binaries under two RUSTY_CUDA_TUNE settings;
#        or, with AB_MODULE_BASE (a librusty_cuda.so, .xz allowed, in the stage), this stage's
#        CLI with that CUDA module as the base
# Logs go to $OUT (the device tool returns them).
set -uo pipefail

if [[ ${1:-} == stage ]]; then
    cd "$(dirname "$0")/.."
    make build >/dev/null || exit 1
    T=$(mktemp -d)
    mkdir -p "$T/bin" "$T/lib" "$T/tests"
    cp build/rusty build/librusty_cuda.so build/bench/synth_model build/bench/bench_matmul "$T/bin/"
    if [[ ${2:-} != lean ]]; then
        find build -maxdepth 3 -type f -name 'test_cuda*' -perm -u+x -exec cp {} "$T/tests/" \;
        [[ -f build/rusty_cuda_bench ]] && cp build/rusty_cuda_bench "$T/bin/"
    fi
    cp -r tests/data "$T/tests/"
    cp bench/hf_bench.py "$T/"
    for l in libcjson.so.1 libcmocka.so.0 libutf8proc.so.2 libpcre2-8.so.0; do
        cp -L "/usr/lib/x86_64-linux-gnu/$l" "$T/lib/"
    done
    strip "$T"/bin/* "$T"/tests/test_* 2>/dev/null
    # every CUDA-linked program carries the 15 MB fat binary: ship them compressed, with a
    # dictionary (-9: 64 MiB) that spans several binaries, so the copies compress to one
    rm -rf .stage-gpu && mkdir -p .stage-gpu
    XZ_OPT='-9 -T1' tar cJf .stage-gpu/payload.tar.xz -C "$T" . && rm -rf "$T"
    cp bench/gpu.sh .stage-gpu/
    [[ -d .models ]] || { mkdir -p .models && cp -r ../shared/models/* .models/; }
    du -sh .stage-gpu .models
    exit 0
fi

# ---- on the GPU machine --------------------------------------------------------
cd "$(dirname "$0")"
[[ -d bin ]] || tar xJf payload.tar.xz
export LD_LIBRARY_PATH=$PWD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export RUSTY_SHARED=$PWD/..
export RUSTY_CUDA_MODULE=$PWD/bin/librusty_cuda.so # the test programs live in tests/, not beside it
OUT=${OUT:-/tmp/out}
M=${MODELS:-/tmp/rusty-models}
mkdir -p "$OUT" "$M"
B=bin/rusty
what=${1:-all}
say() { echo "=== $* ($(date -u +%T))"; }

# shared models under $RUSTY_SHARED/models: the carried .models folder stands in for ../shared/models
[[ -e ../models ]] || ln -s "$PWD/../.models" ../models 2>/dev/null

synth() { # type [shape] [--repeat-layers] -> path (cached)
    local shape=${2:-llama2-7b}
    local f=$M/$shape-$1${3:+-rep}.gguf
    # sync: the file's dirty pages must not be written back while we measure
    [[ -f $f ]] || { bin/synth_model "$shape" "$1" "$f" ${3:-} >&2 && sync; } || return 1
    echo "$f"
}

run_tests() {
    say "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader)"
    for t in tests/test_cuda*; do
        [[ -x $t ]] || continue
        say "$t"
        RUSTY_TESTS=$PWD/tests "$t" 2>&1 | tail -40
    done
    say "compute-sanitizer memcheck on a decode loop"
    compute-sanitizer --tool memcheck --error-exitcode 9 $B run -m "$RUSTY_SHARED/models/TinyStories-656K.f16.gguf" \
        -p "Once upon a time" -n 24 --temp 0 2>&1 | tail -6
    echo "memcheck exit: ${PIPESTATUS[0]}"
    say "compute-sanitizer memcheck on a sampled decode loop (tokens drawn on the device)"
    compute-sanitizer --tool memcheck --error-exitcode 9 $B run -m "$RUSTY_SHARED/models/TinyStories-656K.f16.gguf" \
        -p "Once upon a time" -n 24 --temp 0.8 --seed 5 2>&1 | tail -6
    echo "memcheck exit: ${PIPESTATUS[0]}"
    say "compute-sanitizer memcheck on a sampled decode loop over the whole vocabulary (top-k 0)"
    compute-sanitizer --tool memcheck --error-exitcode 9 $B run -m "$RUSTY_SHARED/models/TinyStories-656K.f16.gguf" \
        -p "Once upon a time" -n 24 --temp 1 --top-k 0 --top-p 1 --seed 5 2>&1 | tail -6
    echo "memcheck exit: ${PIPESTATUS[0]}"
    say "compute-sanitizer memcheck on a sampled decode loop with top-p over the whole vocabulary"
    compute-sanitizer --tool memcheck --error-exitcode 9 $B run -m "$RUSTY_SHARED/models/TinyStories-656K.f16.gguf" \
        -p "Once upon a time" -n 24 --temp 1 --top-k 0 --top-p 0.9 --seed 5 2>&1 | tail -6
    echo "memcheck exit: ${PIPESTATUS[0]}"
    for t in 0.8 0; do
        say "compute-sanitizer memcheck on a decode loop with penalties (temp $t; window on the device)"
        compute-sanitizer --tool memcheck --error-exitcode 9 $B run -m "$RUSTY_SHARED/models/TinyStories-656K.f16.gguf" \
            -p "Once upon a time" -n 24 --temp $t --seed 5 --repeat-penalty 1.3 --frequency-penalty 0.1 2>&1 | tail -6
        echo "memcheck exit: ${PIPESTATUS[0]}"
    done
    # the decode chain takes products of 4096 inputs or more: two layers of the 7B shape
    # in Q4_0, random weights, run it
    say "compute-sanitizer memcheck on a decode loop of the chain (7B shape, 2 layers, Q4_0)"
    local f
    if f=$(synth Q4_0 llama2-7b-2l); then
        compute-sanitizer --tool memcheck --error-exitcode 9 $B run -m "$f" -p "Once upon a time" \
            -n 24 --temp 0 2>&1 | tail -4
        echo "memcheck exit: ${PIPESTATUS[0]}"
        say "compute-sanitizer memcheck on the same model with top-p over its 32 000 ids (8 blocks, the cut's list)"
        compute-sanitizer --tool memcheck --error-exitcode 9 $B run -m "$f" -p "Once upon a time" \
            -n 24 --temp 1 --top-k 0 --top-p 0.9 --seed 5 2>&1 | tail -4
        echo "memcheck exit: ${PIPESTATUS[0]}"
        say "compute-sanitizer memcheck on the same decode loop over a Q8_0 cache (short-context kernel)"
        compute-sanitizer --tool memcheck --error-exitcode 9 $B run -m "$f" -p "Once upon a time" \
            -n 24 --temp 0 -ctk q8_0 2>&1 | tail -4
        echo "memcheck exit: ${PIPESTATUS[0]}"
        say "compute-sanitizer memcheck on the same decode loop over a Q4_0 cache"
        compute-sanitizer --tool memcheck --error-exitcode 9 $B run -m "$f" -p "Once upon a time" \
            -n 24 --temp 0 -ctk q4_0 2>&1 | tail -4
        echo "memcheck exit: ${PIPESTATUS[0]}"
        # the same model's greedy tokens on the CPU and the GPU: the pruned last layer of
        # the prompt gives the first, the decode chain the rest. Random weights leave near
        # ties (run 175: tokens 1-15 equal, the 16th not), so only the first must match.
        # ~470 prompt tokens: the steps after them run the split (flash-decoding) kernel
        local long
        long="$(yes 'Once upon a time there was a little dog' | head -8 | tr '\n' ' ')"
        for c in q4_0 q8_0; do
            say "compute-sanitizer memcheck on the same model's split decode attention over a ${c^^} cache"
            compute-sanitizer --tool memcheck --error-exitcode 9 $B run -m "$f" -p "$long" -n 24 \
                --temp 0 -ctk $c -c 1024 2>&1 | tail -3
            echo "memcheck exit: ${PIPESTATUS[0]}"
        done
        say "greedy tokens, CPU against GPU (7B shape, 2 layers, Q4_0, decode chain)"
        greedy_check "$f"
    fi
    run_qmodels
}

# Synthetic 60M-shape models of every weight type (no shared model holds most of them):
# logits, CPU against GPU
run_qmodels() {
    local -a qm=()
    for ty in ${QM_TYPES:-F32 BF16 F16 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q3_K_M Q4_K_M Q5_K_M Q6_K IQ4_NL IQ4_XS Q8_0}; do
        f=$(synth $ty small) && qm+=("$f")
    done
    say "tests/test_cuda_model on synthetic models: ${qm[*]##*/}"
    tests/test_cuda_model "${qm[@]}" 2>&1 | tail -50
}

# Greedy tokens of model $1 on the CPU and the GPU: how many of the first 16 agree.
greedy_check() {
    local p="The quick brown fox jumps over the lazy dog and then it runs away into the forest"
    local -a c g # the output's words; synthetic models' tokens print as " tokN"
    read -r -d "" -a c <<<"$($B run -m "$1" -p "$p" -n 16 --temp 0 --device cpu 2>/dev/null)"
    read -r -d "" -a g <<<"$($B run -m "$1" -p "$p" -n 16 --temp 0 --device cuda 2>/dev/null)"
    c=("${c[@]: -16}") g=("${g[@]: -16}")
    local i=0
    while ((i < 16)) && [[ ${c[i]} == "${g[i]}" ]]; do i=$((i + 1)); done
    if ((i == 0)); then
        echo "greedy: FIRST TOKEN DIFFERS (cpu ${c[0]}, gpu ${g[0]})"
    else
        echo "greedy: the first $i of 16 tokens equal"
    fi
}

run_bench() {
    say "GPU benchmarks, Llama-2-7B shape, random weights"
    local first=1
    for ty in ${GPU_TYPES:-F16 Q8_0 Q4_0 Q4_K Q4_K_M}; do
        f=$(synth $ty) || { echo "synth $ty failed"; continue; }
        $B bench -m "$f" -p 512 -n 128 -r 3 --greedy --sampled 2>>"$OUT/bench.err" | tail -n +$((first ? 1 : 3))
        first=0
    done
    if f=$(synth Q4_0); then
        echo "(the default sampler with --repeat-penalty 1.1: host rows download each step's logits)"
        $B bench -m "$f" -p 0 -n 128 -r 3 --sampled --repeat-penalty 1.1 2>>"$OUT/bench.err" | tail -n +3
        echo "(temperature 1 over the whole vocabulary: --top-k 0 --top-p 1 --min-p 0)"
        $B bench -m "$f" -p 0 -n 128 -r 3 --sampled --temp 1 --top-k 0 --top-p 1 --min-p 0 2>>"$OUT/bench.err" | tail -n +3
        echo "(top-p 0.9 over the whole vocabulary: --top-k 0 --top-p 0.9 --min-p 0)"
        $B bench -m "$f" -p 0 -n 128 -r 3 --sampled --temp 1 --top-k 0 --top-p 0.9 --min-p 0 2>>"$OUT/bench.err" | tail -n +3
    fi
    if [[ -z ${NO_DEPTH:-} ]] && f=$(synth Q4_0); then
        echo "(depth 4096 with the F16 KV cache, then -ctk q8_0 and -ctk q4_0 at depths 0 and 4096)"
        $B bench -m "$f" -p 512 -n 128 -d 4096 -r 3 --greedy 2>>"$OUT/bench.err" | tail -n +3
        $B bench -m "$f" -p 512 -n 128 -d 0,4096 -r 3 -ctk q8_0 --greedy 2>>"$OUT/bench.err" | tail -n +3
        $B bench -m "$f" -p 512 -n 128 -d 0,4096 -r 3 -ctk q4_0 --greedy 2>>"$OUT/bench.err" | tail -n +3
    fi
    if [[ -z ${NO_SMALL:-} ]]; then
        echo "(smaller shapes: Llama-3.2-3B's layers with a 32k vocabulary, then TinyLlama-1.1B)"
        for sh in llama-3b tinyllama-1b; do
            for ty in Q8_0 Q4_0; do
                f=$(synth $ty $sh) && $B bench -m "$f" -p 512 -n 128 -r 3 --greedy --sampled 2>>"$OUT/bench.err" | tail -n +3
            done
        done
    fi
}

run_cpu() {
    say "CPU benchmarks, Llama-2-7B shape: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
    # The host is shared: rounds interleave the types (and, with CPU_AB=1, the
    # software-prefetch decode tiles) so that its noise falls on each alike.
    # Each row's bandwidth column is against the probe of its own invocation.
    local first=1
    for r in $(seq "${CPU_ROUNDS:-3}"); do
        for ty in ${CPU_TYPES:-Q4_0 Q8_0}; do
            f=$(synth $ty) || continue
            for pf in "" ${CPU_AB:+1}; do
                echo "(round $r, $ty${pf:+, RUSTY_CPU_PREFETCH=$pf}, probe: $(env ${pf:+RUSTY_CPU_PREFETCH=$pf} \
                    $B bench -m "$f" --device cpu -p ${CPU_PP:-64} -n ${CPU_TG:-32} -r 3 2>&1 >"$OUT/cpu.row" |
                    sed -n 's/.*memory bandwidth: \([0-9.]* GB\/s\).*/\1/p'))"
                tail -n +$((first ? 1 : 3)) "$OUT/cpu.row"
                first=0
            done
        done
    done
    rm -f "$OUT/cpu.row"
}

# The largest shape one H100 holds in 4 bits: widths, head groups and a vocabulary no
# other shape has, then its speed on the whole model.
run_big() {
    local f
    for ty in ${BIG_CHECK_TYPES-Q4_0 Q4_K_M}; do
        f=$(synth "$ty" llama3-70b-2l) || { echo "synth $ty failed"; continue; }
        say "greedy tokens, CPU against GPU (70B shape, 2 layers, $ty)"
        greedy_check "$f"
        # ~470 prompt tokens: the steps after them run the split kernel, 8 query heads a kv head
        say "compute-sanitizer memcheck on its split decode attention (70B shape, 2 layers, $ty)"
        compute-sanitizer --tool memcheck --error-exitcode 9 $B run -m "$f" -n 8 --temp 0 -c 1024 \
            -p "$(yes 'Once upon a time there was a little dog' | head -8 | tr '\n' ' ')" 2>&1 | tail -3
        echo "memcheck exit: ${PIPESTATUS[0]}"
    done
    for ty in ${BIG_TYPES:-Q4_0}; do
        f=$(synth "$ty" llama3-70b --repeat-layers) || { echo "synth $ty failed"; rm -f "$M/llama3-70b-$ty-rep.gguf"; continue; }
        say "Llama-3-70B shape, $ty ($(du -h "$f" | cut -f1))"
        $B bench -m "$f" -p 512 -n 128 -r 3 --greedy 2>>"$OUT/bench.err"
        if [[ -n ${BIG_DEPTH:-} ]]; then # long contexts: F16, Q8_0 and Q4_0 caches
            echo "(depth $BIG_DEPTH with an F16 KV cache, then -ctk q8_0 and -ctk q4_0)"
            for ct in f16 q8_0 q4_0; do
                $B bench -m "$f" -c $((BIG_DEPTH + 640)) -p 512 -n 128 -d "$BIG_DEPTH" -r 2 \
                    -ctk $ct --greedy 2>>"$OUT/bench.err" | tail -n +3
            done
        fi
        [[ -n ${BIG_KEEP:-} ]] || rm -f "$f"
    done
}

run_hf() {
    say "HF transformers, same GPU"
    PYTHONUNBUFFERED=1 python3 hf_bench.py 2>"$OUT/hf.err"
}

run_prof() {
    # The lab's first decode graph replays after capture: skip layer 0's kernels,
    # profile one layer's five (qkv+rope+store, attention, wo, gate+up, down).
    # PROF_LAB: other lab arguments (e.g. "attn" with a PROF_KERNELS regex on mangled names)
    for ty in ${PROF_TYPES:-Q4_0 Q4_K Q8_0}; do
        say "ncu: decode kernels of one layer, $ty"
        timeout 300 ncu --clock-control none --kill yes --kernel-name-base ${PROF_NAME_BASE:-function} \
            -k "regex:${PROF_KERNELS:-fz_|fr_|fs_|attn_dec|attn_short|mv_kernel}" \
            --launch-skip ${PROF_SKIP:-40} --launch-count ${PROF_COUNT:-5} \
            --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats \
            --section Occupancy --section LaunchStats --section SchedulerStats \
            --section ComputeWorkloadAnalysis --section InstructionStats \
            bin/rusty_cuda_bench ${PROF_LAB:-model=$ty} 2>&1 | grep -v '^==PROF==' | tail -n +6
    done
}

# The issue's list of weight types, each as a whole model: how far from the copy rate.
run_formats() {
    local f
    for ty in ${FORMAT_TYPES:-F32 BF16 F16 Q8_0 Q6_K Q5_K Q5_1 Q5_0 Q4_1 IQ4_NL IQ4_XS Q4_0 Q4_K}; do
        f=$(synth "$ty" "${FORMAT_SHAPE:-llama2-7b}" --repeat-layers) || { echo "synth $ty failed"; continue; }
        say "$ty ($(du -h "$f" | cut -f1))"
        $B bench -m "$f" -p 512 -n 128 -r 3 --greedy 2>>"$OUT/bench.err" | tail -n +3
        rm -f "$f"
    done
}

# llama.cpp beside Rusty on the same GGUF files: both tools' own tables, interleaved by type.
run_peer() {
    local P=$PWD/../.stage-peer
    [[ -f $P/peer.tar.xz ]] || { echo "peer: no ../.stage-peer (bench/peer.sh stage, then carry it)"; return 1; }
    (cd "$P" && { [[ -d peer ]] || tar xJf peer.tar.xz; })
    P=$P/peer
    # sid's loader and libraries first; the machine's for libcuda.so.1 and libcublas.so.13
    local lp=$P/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
    # the backend's compute_90 PTX is JIT-compiled on first use and cached for later runs
    export CUDA_CACHE_PATH=/tmp/rusty-peer-jit CUDA_CACHE_MAXSIZE=4294967296
    local -a llama=("$P/lib/ld-linux-x86-64.so.2" --library-path "$lp" "$P/bin/llama-bench")
    say "llama.cpp: $(paste -sd';' "$P/VERSIONS")"
    local f t0 rc
    for ty in ${PEER_TYPES:-F16 Q8_0 Q4_0 Q4_K_M}; do
        f=$(synth "$ty" "${PEER_SHAPE:-llama2-7b}" ${PEER_REPEAT:+--repeat-layers}) || { echo "synth $ty failed"; continue; }
        t0=$SECONDS
        timeout "${PEER_JIT_S:-400}" "${llama[@]}" -m "$f" -p 512 -n 16 -r 1 -fa on,off >/dev/null 2>>"$OUT/peer.err"
        rc=$?
        echo "($ty: llama.cpp warm-up, JIT included: $((SECONDS - t0)) s, exit $rc)"
        for r in $(seq "${PEER_ROUNDS:-1}"); do
            timeout 300 "${llama[@]}" -m "$f" -p 512 -n 128 -r 3 -fa on,off 2>>"$OUT/peer.err"
            $B bench -m "$f" -p 512 -n 128 -r 3 2>>"$OUT/peer.err"
        done
    done
    for ty in ${PEER_CPU_TYPES:-}; do # the host's CPU (the GPU hidden from llama.cpp)
        f=$(synth "$ty" "${PEER_SHAPE:-llama2-7b}") || continue
        for r in $(seq "${PEER_ROUNDS:-1}"); do
            echo "(round $r, $ty on the CPU, $(nproc) threads)"
            CUDA_VISIBLE_DEVICES= timeout 300 "${llama[@]}" -m "$f" -p 64 -n 32 -r 3 -t "$(nproc)" 2>>"$OUT/peer.err"
            $B bench -m "$f" --device cpu -p 64 -n 32 -r 3 2>>"$OUT/peer.err"
        done
    done
    if [[ -z ${NO_DEPTH:-} ]] && f=$(synth Q4_0); then
        echo "(Q4_0 at depth 4096 with an F16 KV cache, then Q8_0 and Q4_0 caches at depths 0 and 4096)"
        timeout 300 "${llama[@]}" -m "$f" -p 512 -n 128 -d 4096 -r 3 -fa on,off 2>>"$OUT/peer.err"
        $B bench -m "$f" -p 512 -n 128 -d 4096 -r 3 2>>"$OUT/peer.err"
        timeout 300 "${llama[@]}" -m "$f" -p 512 -n 128 -d 0,4096 -r 3 -fa on -ctk q8_0 -ctv q8_0 2>>"$OUT/peer.err"
        $B bench -m "$f" -p 512 -n 128 -d 0,4096 -r 3 -ctk q8_0 2>>"$OUT/peer.err"
        timeout 300 "${llama[@]}" -m "$f" -p 512 -n 128 -d 0,4096 -r 3 -fa on -ctk q4_0 -ctv q4_0 2>>"$OUT/peer.err"
        $B bench -m "$f" -p 512 -n 128 -d 0,4096 -r 3 -ctk q4_0 2>>"$OUT/peer.err"
    fi
}

# The kernel time of every sample_pick launch in the op tests, summarized per test case
# (the launches before a case's "ok"/"FAIL" line are that case's).
run_pick() {
    say "ncu: sample_pick in the op tests (median and max per case, µs)"
    RUSTY_CUDA_TEST=pick RUSTY_TESTS=$PWD/tests timeout 500 stdbuf -oL ncu --clock-control none \
        -k regex:sample_pick --metrics gpu__time_duration.sum "$PWD/tests/test_cuda_ops" >"$OUT/pick-ncu.log" 2>&1
    echo "(ncu exit $?; its whole output: pick-ncu.log)"
    python3 -c '
import re, sys
t, cases = [], []  # ncu prints its results at the end: launches in order, cases in order
for line in sys.stdin:
    f = line.split()
    if "gpu__time_duration.sum" in line and len(f) >= 3:
        t.append(float(f[2].replace(",", "")) * {"n": 1e-3, "u": 1.0, "m": 1e3}.get(f[1][:1], 1.0))
    m = re.match(r"(ok  |FAIL) (sample_pick: .*) \((\d+) draws\)", line)
    if m:
        cases.append((m.group(1) + " " + m.group(2), int(m.group(3))))
    elif " passed, " in line:
        print(line.rstrip())
i = 0
print("median     max  (µs, %d launches)" % len(t))
for name, d in cases:
    g = sorted(t[i:i + d])
    i += d
    print("%7.1f %7.1f  %s" % (g[len(g) // 2], g[-1], name) if g else name)' <"$OUT/pick-ncu.log"
}

run_ab() {
    local base=$PWD/../.stage-base
    if [[ -n ${AB_MODULE_BASE:-} ]]; then
        base=$PWD/ab-base # this stage's CLI, the given module
        mkdir -p "$base/bin" && ln -sfn "$PWD/bin/rusty" "$base/bin/rusty"
        if [[ $AB_MODULE_BASE == *.xz ]]; then
            xz -dc "$AB_MODULE_BASE" >"$base/bin/librusty_cuda.so"
        else
            cp "$AB_MODULE_BASE" "$base/bin/librusty_cuda.so"
        fi
        say "A/B: rusty bench ${AB_ARGS:=-p 0 -n 128 -r 3}; base = this CLI with $AB_MODULE_BASE, new = this stage"
    elif [[ -n ${AB_TUNE_BASE:-}${AB_TUNE_NEW:-} ]]; then
        base=$PWD # one binary, two sets of switches (RUSTY_CUDA_TUNE)
        say "A/B: rusty bench ${AB_ARGS:=-p 0 -n 128 -r 3}; base = RUSTY_CUDA_TUNE='${AB_TUNE_BASE:-}', new = '${AB_TUNE_NEW:-}'"
    else
        [[ -f $base/payload.tar.xz ]] || { echo "ab: no ../.stage-base (carry it) and no AB_TUNE_*"; return 1; }
        (cd "$base" && { [[ -d bin ]] || tar xJf payload.tar.xz; })
        say "A/B: rusty bench ${AB_ARGS:=-p 0 -n 128 -r 3}; base = .stage-base, new = this stage"
    fi
    for r in $(seq "${AB_ROUNDS:-2}"); do
        for ty in ${AB_TYPES:-Q4_0 Q8_0}; do
            f=$(synth $ty "${AB_SHAPE:-llama2-7b}") || continue
            for v in base new; do
                local d=$PWD tune=${AB_TUNE_NEW:-}
                [[ $v == base ]] && d=$base tune=${AB_TUNE_BASE:-}
                # shellcheck disable=SC2086 # AB_ARGS is a list of flags
                # every result row (pp and tg), one line each
                RUSTY_CUDA_TUNE=$tune RUSTY_CUDA_MODULE=$d/bin/librusty_cuda.so $d/bin/rusty bench -m "$f" $AB_ARGS 2>&1 |
                    grep -E '^\| .*\| (pp|tg)[0-9]' | sed "s/^/round $r $v $ty: /"
            done
        done
    done
}

case $what in
lab) say "kernel lab: ${LAB_ARGS:-model}"; bin/rusty_cuda_bench ${LAB_ARGS:-model} ;;
prof) run_prof ;;
pick) run_pick ;;
ab) run_ab ;;
peer) run_peer ;;
big) run_big ;;
formats) run_formats ;;
test) run_tests ;;
qmodels) run_qmodels ;;
bench) run_bench ;;
cpu) run_cpu ;;
hf) run_hf ;;
all) run_tests; run_bench; run_cpu ;;
*) echo "usage: gpu.sh stage|test|bench|big|formats|cpu|hf|lab|prof|pick|ab|peer|all"; exit 2 ;;
esac 2>&1 | tee -a "$OUT/gpu-$what.log"

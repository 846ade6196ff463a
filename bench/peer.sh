#!/usr/bin/env bash
# peer.sh stage — pack llama.cpp for the GPU machine, to measure it beside Rusty.
#
# The GPU machine cannot fetch anything and has CUDA 13 only; llama.cpp is not in
# bookworm. Debian sid builds it (in 2026-11: llama.cpp 0.7.0+dfsg, ggml 0.27.0, the
# CUDA backend in contrib against CUDA 12.4), and apt can fetch its binary packages
# here. Three things make them run there:
#   - sid's own loader and C/C++ runtime travel with them (they need glibc 2.43);
#   - the CUDA backend's 555 MB of device code is cut to what an H100 runs: its sm_90
#     cubins if the package has them, else (as in 0.27.0) the compute_90 PTX that the
#     driver JIT-compiles anyway (fatbin_keep.py), so it packs to ~29 MB;
#   - libcublas.so.12 is a 13-function forwarder to the machine's libcublas.so.13
#     (peer/cublas12_forward.c); libcudart.so.12 (170 kB) travels as it is.
# Result: .stage-peer/peer.tar.xz; on the device `./gpu.sh peer` (carry .stage-peer).
#
# peer.sh cpu [SHAPE] [TYPES] — here, on this machine's CPU: llama-bench and `rusty
# bench --device cpu` on the same synth_model files, one after the other per type,
# ROUNDS rounds (default 2). SHAPE default llama2-7b, TYPES default Q4_0,Q8_0; env
# THREADS (default 2), PP (64), TG (32), MODELS (folder for the files, /tmp/rusty-models).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ${1:-} == cpu ]]; then
    [[ -f .stage-peer/peer.tar.xz ]] || { echo "peer.sh cpu: run bench/peer.sh stage first"; exit 1; }
    P=$(mktemp -d)
    trap 'rm -rf "$P"' EXIT
    tar xJf .stage-peer/peer.tar.xz -C "$P"
    llama=("$P/peer/lib/ld-linux-x86-64.so.2" --library-path "$P/peer/lib" "$P/peer/bin/llama-bench")
    shape=${2:-llama2-7b} M=${MODELS:-/tmp/rusty-models} t=${THREADS:-2}
    mkdir -p "$M"
    echo "$(lscpu | sed -n 's/^Model name: *//p' | head -1), $t threads; commit $(git rev-parse --short HEAD); $(date -u +%F)"
    for r in $(seq "${ROUNDS:-2}"); do
        for ty in $(echo "${3:-Q4_0,Q8_0}" | tr , ' '); do
            f=$M/$shape-$ty.gguf
            [[ -f $f ]] || build/bench/synth_model "$shape" "$ty" "$f"
            echo "## round $r, $shape $ty"
            "${llama[@]}" -m "$f" -p "${PP:-64}" -n "${TG:-32}" -r 3 -t "$t" 2>/dev/null | grep -E "pp|tg"
            build/rusty bench -m "$f" --device cpu -t "$t" -p "${PP:-64}" -n "${TG:-32}" -r 3 2>/dev/null | tail -2
        done
    done
    exit 0
fi
[[ ${1:-} == stage ]] || { echo "usage: bench/peer.sh stage | cpu [SHAPE] [TYPES]"; exit 2; }

PKGS="llama.cpp-tools libllama0 libggml0 libggml0-backend-cuda libcudart12
      libc6 libstdc++6 libgcc-s1 libgomp1 libssl3t64 libllama-dev libggml-dev"
A=${PEER_APT:-/tmp/rusty-peer-apt}
mkdir -p "$A/lists/partial" "$A/debs"
cat >"$A/sources.list" <<'EOF'
deb http://deb.debian.org/debian sid main contrib non-free
EOF
o=(-o Dir::Etc::sourcelist="$A/sources.list" -o Dir::Etc::sourceparts=-
    -o Dir::State::Lists="$A/lists" -o APT::Get::List-Cleanup=0)
# sid moves: lists older than a day name packages the mirror no longer has
[[ -n $(find "$A/lists/.fetched" -mtime -1 2>/dev/null) ]] ||
    { apt-get "${o[@]}" update -qq && touch "$A/lists/.fetched"; }
rm -f "$A"/debs/*.deb # one version of each package
# shellcheck disable=SC2086 # PKGS is a list
(cd "$A/debs" && apt-get "${o[@]}" download $PKGS) 2>&1 | { grep -v unsandboxed || true; }

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
for d in "$A"/debs/*.deb; do dpkg-deb -x "$d" "$T/root"; done
L=$T/root/usr/lib/x86_64-linux-gnu
mkdir -p "$T/peer/bin" "$T/peer/lib"
cp "$T/root/usr/bin/llama-bench" "$T/peer/bin/"
cp -r "$T/root/usr/include" "$T/peer/" # for tests/ref/llamacpp_logits.c
cp -a "$L"/*.so* "$L"/llama/libllama-bench-impl.so "$T/peer/lib/"
# ggml picks the best CPU variant for the host; these cover x86-64 servers
for v in x64 haswell skylakex icelake sapphirerapids zen4; do
    cp "$L/ggml/backends0/libggml-cpu-$v.so" "$T/peer/lib/"
done
cuda=$L/ggml/backends0/libggml-cuda.so
python3 bench/peer/fatbin_keep.py "$cuda" "$T/peer/lib/libggml-cuda.so" elf 90 2>/dev/null ||
    python3 bench/peer/fatbin_keep.py "$cuda" "$T/peer/lib/libggml-cuda.so" ptx 90
gcc -O2 -shared -fPIC -I/usr/local/cuda/include -Wl,-soname,libcublas.so.12 \
    -Wl,--version-script=bench/peer/cublas12.map -o "$T/peer/lib/libcublas.so.12" \
    bench/peer/cublas12_forward.c -ldl
# provenance: which packages, which versions
for d in "$A"/debs/*.deb; do dpkg-deb -f "$d" Package Version | paste -sd' '; done >"$T/peer/VERSIONS"
rm -rf .stage-peer && mkdir -p .stage-peer
tar cJf .stage-peer/peer.tar.xz -C "$T" peer
du -sh .stage-peer

#!/usr/bin/env bash
# fuzz.sh — run every libFuzzer target in a build folder for a while.
# Usage: scripts/fuzz.sh BUILD_DIR SECONDS
#
# For each BUILD_DIR/fuzz_<target> binary, the corpus is tests/fuzz/corpus/<target>/
# (git-ignored scratch), seeded from the committed tests/fuzz/seeds/<target>/ and
# tests/fuzz/regress/<target>/, and from ../shared files of the matching kind when
# present. Crashing inputs land in tests/fuzz/artifacts/<target>/ (git-ignored):
# minimize them, keep them under tests/fuzz/regress/<target>/ and fix the bug.
# Exits non-zero if any target found a crash.
set -uo pipefail

build=${1:?usage: scripts/fuzz.sh BUILD_DIR SECONDS}
seconds=${2:?usage: scripts/fuzz.sh BUILD_DIR SECONDS}
root=$(cd "$(dirname "$0")/.." && pwd)
# ../shared beside the main checkout; a worktree under /work/wt/<name> finds it one level up.
shared=${RUSTY_SHARED:-$root/../shared}
[[ -d $shared || -n ${RUSTY_SHARED:-} ]] || shared=$root/../../shared
jobs=${FUZZ_JOBS:-1}

# Shared files that make good seeds for a target (by file pattern).
seed_shared() {
    local target=$1 corpus=$2
    [[ -d $shared ]] || return 0
    case $target in
    gguf) find "$shared" -name '*.gguf' -size -8M -exec cp -n {} "$corpus"/ \; ;;
    safetensors) find "$shared" -name '*.safetensors' -size -8M -exec cp -n {} "$corpus"/ \; ;;
    hf_config) find "$shared" -name '*.json' -size -8M -exec cp -n {} "$corpus"/ \; ;;
    esac
}

shopt -s nullglob
targets=("$build"/fuzz_*)
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "fuzz.sh: no fuzz_* binaries in $build (configure with -DRUSTY_FUZZ=ON and clang)" >&2
    exit 1
fi

status=0
for bin in "${targets[@]}"; do
    [[ -x $bin && -f $bin ]] || continue
    target=$(basename "$bin")
    target=${target#fuzz_}
    corpus=$root/tests/fuzz/corpus/$target
    artifacts=$root/tests/fuzz/artifacts/$target
    mkdir -p "$corpus" "$artifacts"
    for dir in "$root/tests/fuzz/seeds/$target" "$root/tests/fuzz/regress/$target"; do
        [[ -d $dir ]] && find "$dir" -maxdepth 1 -type f ! -name '*.md' -exec cp -n {} "$corpus"/ \;
    done
    seed_shared "$target" "$corpus"
    # Large enough for a whole small model header (vocab arrays run to megabytes).
    max_len=${FUZZ_MAX_LEN:-$((4 * 1024 * 1024))}
    echo "fuzz.sh: $target for ${seconds}s ($(find "$corpus" -type f | wc -l) corpus files)"
    par=()
    [[ $jobs -gt 1 ]] && par=(-fork="$jobs")
    if ! "$bin" "$corpus" "${par[@]}" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 \
        -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$artifacts/" \
        >"$artifacts/last.log" 2>&1; then
        echo "fuzz.sh: $target FAILED: see $artifacts/last.log and $artifacts/" >&2
        tail -40 "$artifacts/last.log" >&2
        status=1
    else
        grep -E '^(stat::|#[0-9]+ +DONE)' "$artifacts/last.log" | tail -8
    fi
done
exit $status

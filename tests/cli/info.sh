#!/usr/bin/env bash
# info.sh — `rusty info` on every shared model and vocabulary (human, JSON,
# --tensors, --meta), facts checked against the models README, and hostile
# files (truncated, wrong magic, random bit flips) rejected with exit 1 and one
# message — never a crash.
source "$(dirname "$0")/lib.bash"
need_shared models/stories260K.gguf tokenizer-tests

json() { # file, python expression over `d`
    "$B" info "$1" --json | python3 -c "import json,sys; d=json.load(sys.stdin); print($2)"
}

for f in "$S"/models/*.gguf "$S"/models/TinyStories-656K-hf "$S"/tokenizer-tests/*.gguf; do
    n=$(basename "$f")
    check "info $n" 0 "$(code "$B" info "$f")"
    check "info --tensors --meta $n" 0 "$(code "$B" info "$f" --tensors --meta)"
    check "info --json $n parses" ok "$(json "$f" '"ok"')"
done

# facts from ../shared/models/README.md
M=$S/models
check "stories260K params" 292800 "$(json "$M/stories260K.gguf" 'd["n_params"]')"
check "stories260K layers/heads" "5 8 4" "$(json "$M/stories260K.gguf" \
    '" ".join(str(d["hparams"][k]) for k in ("block_count","attention.head_count","attention.head_count_kv"))')"
check "stories260K vocab" "llama 512" "$(json "$M/stories260K.gguf" 'd["tokenizer"]["model"], d["tokenizer"]["n_vocab"]' | tr -d "(),'")"
check "stories260K tensors" "48 F32" "$(json "$M/stories260K.gguf" 'd["n_tensors"], list(d["types"])[0]' | tr -d "(),'")"
check "v1 file version" 1 "$(json "$M/tinyllamas-stories-260k-f32.v1.gguf" 'd["gguf_version"]')"
check "v1 same params" 292800 "$(json "$M/tinyllamas-stories-260k-f32.v1.gguf" 'd["n_params"]')"
check "f16 types" "15 5" "$(json "$M/TinyStories-656K.f16.gguf" 'd["types"]["F16"]["tensors"], d["types"]["F32"]["tensors"]' | tr -d "(),")"
check "q8_0 types" "15 5" "$(json "$M/tinystories-656k-q8_0.gguf" 'd["types"]["Q8_0"]["tensors"], d["types"]["F32"]["tensors"]' | tr -d "(),")"
check "Q2_K file really IQ4_NL" "14 1" "$(json "$M/TinyStories-656K-Q2_K.gguf" 'd["types"]["IQ4_NL"]["tensors"], d["types"]["Q8_0"]["tensors"]' | tr -d "(),")"
check "HF folder" "hf 656000 llama 2048" "$(json "$M/TinyStories-656K-hf" 'd["format"], d["n_params"], d["architecture"], d["tokenizer"]["n_vocab"]' | tr -d "(),'")"
check "HF context" 512 "$(json "$M/TinyStories-656K-hf" 'd["hparams"]["context_length"]')"
check "special tokens" "1 <|start_story|>" "$(json "$M/TinyStories-656K.f16.gguf" 'd["tokenizer"]["special"]["BOS"]["id"], d["tokenizer"]["special"]["BOS"]["text"]' | tr -d "(),'")"
check "human summary" "parameters:   292.80K" "$("$B" info "$M/stories260K.gguf" | grep '^parameters:')"
check "tensor listing" "blk.0.attn_q.weight F32 [64, 64]" "$("$B" info "$M/stories260K.gguf" --tensors | grep -m1 'blk.0.attn_q.weight' | awk '{print $1, $2, $3, $4}')"

# usage errors
rejects "no model" "$B" info
rejects "two models" "$B" info a b
rejects "bad flag" "$B" info "$M/stories260K.gguf" --nope
rejects "missing file" "$B" info "$T/nope.gguf"
mkdir -p "$T/emptydir"
rejects "folder without config.json" "$B" info "$T/emptydir"

# hostile files: truncations, wrong magic, huge counts, bit flips
G=$M/stories260K.gguf
size=$(stat -c %s "$G")
for cut in 0 3 4 7 8 15 23 24 40 100 400 1000 3000 6000 20000 100000 $((size - 1)); do
    head -c "$cut" "$G" >"$T/cut.gguf"
    rejects "truncated at $cut" "$B" info "$T/cut.gguf"
done
{ printf 'GGUX'; tail -c +5 "$G"; } >"$T/magic.gguf"
rejects "wrong magic" "$B" info "$T/magic.gguf"
{ head -c 4 "$G"; printf '\x07\x00\x00\x00'; tail -c +9 "$G"; } >"$T/version.gguf"
rejects "unknown version" "$B" info "$T/version.gguf"
{ head -c 8 "$G"; printf '\xff\xff\xff\xff\xff\xff\xff\x7f'; tail -c +17 "$G"; } >"$T/count.gguf"
rejects "huge tensor count" "$B" info "$T/count.gguf"
# random bit flips in the header region: a clean answer (0) or a clean error (1), never a crash
python3 - "$G" "$T" <<'PY'
import random, sys
src, tmp = sys.argv[1], sys.argv[2]
data = bytearray(open(src, "rb").read())
rng = random.Random(20261122)
for i in range(30):
    d = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randrange(0, 8000)
        d[pos] ^= 1 << rng.randrange(8)
    open(f"{tmp}/flip{i}.gguf", "wb").write(d)
PY
bad=0
for i in $(seq 0 29); do
    rc=$(code "$B" info "$T/flip$i.gguf" --tensors --meta --json)
    [[ $rc -eq 0 || $rc -eq 1 ]] || { echo "FAIL bit flip $i: exit $rc"; bad=$((bad + 1)); }
done
check "30 bit-flipped headers: exit 0 or 1" 0 "$bad"
fails=$((fails + bad))
finish

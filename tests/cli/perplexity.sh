#!/usr/bin/env bash
# perplexity.sh — `rusty perplexity` output format and argument checks.
source "$(dirname "$0")/lib.bash"
need_shared models/stories260K.gguf data/tinyshakespeare.txt
M=$S/models/stories260K.gguf
head -c 6000 "$S/data/tinyshakespeare.txt" >"$T/text.txt"
out=$("$B" perplexity -m "$M" -f "$T/text.txt" -c 128 2>/dev/null)
check "exit" 0 "$?"
final=$(echo "$out" | grep '^Final estimate: PPL = ')
check "final line" 1 "$(echo "$final" | grep -cE '^Final estimate: PPL = [0-9]+\.[0-9]{4} \+/- [0-9]+\.[0-9]{5}$')"
check "running values" 1 "$(echo "$out" | grep -cE '^\[1\][0-9.]+,\[2\][0-9.]+,')"
# against PyTorch (tests/ref/make_ppl_ref.py: HF transformers in float64, llama.cpp's chunking):
# same token count and chunks, PPL and its error within 1e-4 relative (f32 vs f64 arithmetic)
need_shared models/TinyStories-656K-hf
read -r c n_tok n_chunk ppl err <"${RUSTY_TESTS:?}/data/ref/TinyStories-656K.ppl.txt"
head -c 12000 "$S/data/tinyshakespeare.txt" >"$T/t12k.txt"
"$B" perplexity -m "$S/models/TinyStories-656K-hf" -f "$T/t12k.txt" -c "$c" >"$T/ppl.out" 2>"$T/ppl.err"
check "token and chunk count" "$n_tok tokens, $n_chunk chunks" "$(grep -o '[0-9]* tokens, [0-9]* chunks' "$T/ppl.err")"
read -r ours ours_err <<<"$(sed -n 's/^Final estimate: PPL = \([0-9.]*\) +\/- \([0-9.]*\)$/\1 \2/p' "$T/ppl.out")"
check "PPL vs PyTorch ($ours vs $ppl)" ok "$(awk -v a="$ours" -v b="$ppl" -v e="$ours_err" -v f="$err" \
    'BEGIN { print ((a-b)/b < 1e-4 && (b-a)/b < 1e-4 && (e-f)/f < 1e-3 && (f-e)/f < 1e-3) ? "ok" : "off" }')"

head -c 200 "$S/data/tinyshakespeare.txt" >"$T/short.txt"
rejects "too short" "$B" perplexity -m "$M" -f "$T/short.txt" -c 128
rejects "no file" "$B" perplexity -m "$M"
rejects "no model" "$B" perplexity -f "$T/text.txt"
finish

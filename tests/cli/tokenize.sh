#!/usr/bin/env bash
# tokenize.sh — rusty tokenize / detokenize on the shared vocabularies: ids,
# flags, round trips and usage errors (exit 1).
set -u
B=${RUSTY_BIN:?}
S=${RUSTY_SHARED:-../shared}
T=${RUSTY_TMP:-/tmp}/tokenize-$$
mkdir -p "$T"
SPM=$S/tokenizer-tests/ggml-vocab-llama-spm.gguf
GPT2=$S/tokenizer-tests/ggml-vocab-gpt-2.gguf
HF=$S/models/TinyStories-656K-hf
if [[ ! -f $SPM || ! -f $GPT2 || ! -d $HF ]]; then
    echo "SKIP: shared vocabularies not found under $S"
    exit 77
fi
fails=0
check() { # name, expected, actual
    if [[ "$2" == "$3" ]]; then echo "ok   $1"; else echo "FAIL $1: expected [$2] got [$3]"; fails=$((fails + 1)); fi
}
code() { "$@" >/dev/null 2>&1; echo $?; }

# ids from the llama.cpp vectors (ggml-vocab-*.gguf.out)
check "spm ids"        "15043 3186"       "$($B tokenize -m "$SPM" -p 'Hello world')"
check "spm add-special" "1 15043 3186"    "$($B tokenize -m "$SPM" -p 'Hello world' --add-special)"
check "gpt2 ids"       "15496 995"        "$($B tokenize -m "$GPT2" -p 'Hello world')"
check "count"          "2"                "$($B tokenize -m "$GPT2" -p 'Hello world' --count)"
# special text is plain text unless parsed
check "plain <|endoftext|>" "27 91 437 1659 5239 91 29" "$($B tokenize -m "$GPT2" -p '<|endoftext|>')"
check "parse-special"  "50256"            "$($B tokenize -m "$GPT2" -p '<|endoftext|>' --parse-special)"
check "pieces"         "$(printf '15496\tHello\n995\t world')" "$($B tokenize -m "$GPT2" -p 'Hello world' --pieces)"
# -f tokenizes the exact bytes of the file (a trailing newline included)
printf 'Hello world\n' > "$T/in.txt"
check "file"           "15496 995 198"    "$($B tokenize -m "$GPT2" -f "$T/in.txt")"

# detokenize: ids as arguments, one quoted list, or stdin
check "detok args"     "Hello world"      "$($B detokenize -m "$SPM" 15043 3186)"
check "detok list"     "Hello world"      "$($B detokenize -m "$SPM" '15043 3186')"
check "detok stdin"    "Hello world"      "$(echo 15043,3186 | $B detokenize -m "$SPM")"
check "detok special"  "<s> Hello"        "$($B detokenize -m "$SPM" --special 1 15043)"
check "detok keep"     " Hello"           "$($B detokenize -m "$SPM" --keep-space 15043)"

# round trips through the CLI (HF folder and GGUF), byte-exact
printf 'Once upon a time, there was a little girl.\n  Two spaces,\ttab; émoji 🦙!' > "$T/rt.txt"
for m in "$SPM" "$GPT2"; do
    ids=$($B tokenize -m "$m" -f "$T/rt.txt")
    $B detokenize -m "$m" "$ids" > "$T/rt.out"
    if cmp -s "$T/rt.txt" "$T/rt.out"; then echo "ok   round trip $(basename "$m")"; else echo "FAIL round trip $m"; fails=$((fails + 1)); fi
done
# an HF folder (tokenizer.json); its vocabulary has no byte tokens, so ASCII only
ids=$($B tokenize -m "$HF" -p 'Once upon a time, there was a little girl.')
check "hf folder"      "Once upon a time, there was a little girl." "$($B detokenize -m "$HF" "$ids")"
check "hf bos"         "1"                "$($B tokenize -m "$HF" -p 'Once' --add-special | cut -d' ' -f1)"

# usage errors exit 1 with a message; help exits 0
check "help"           "0" "$(code $B tokenize --help)"
check "help detok"     "0" "$(code $B detokenize --help)"
check "no model"       "1" "$(code $B tokenize -p hi)"
check "no text"        "1" "$(code $B tokenize -m "$SPM")"
check "both texts"     "1" "$(code $B tokenize -m "$SPM" -p a -f "$T/in.txt")"
check "bad flag"       "1" "$(code $B tokenize -m "$SPM" -p a --nope)"
check "missing value"  "1" "$(code $B tokenize -m)"
check "bad id"         "1" "$(code $B detokenize -m "$SPM" 12x)"
check "id range"       "1" "$(code $B detokenize -m "$SPM" 999999)"
check "no such model"  "1" "$(code $B tokenize -m "$T/nope.gguf" -p a)"
check "no such file"   "1" "$(code $B tokenize -m "$SPM" -f "$T/nope.txt")"
msg=$($B tokenize -p hi 2>&1)
case "$msg" in *"missing -m MODEL"*) echo "ok   usage message";; *) echo "FAIL usage message: $msg"; fails=$((fails + 1));; esac

rm -rf "$T"
[[ $fails -eq 0 ]] || { echo "$fails check(s) failed"; exit 1; }
echo "all tokenize CLI checks passed"

#!/usr/bin/env bash
# chat.sh — `rusty chat` driven through stdin: turns, /reset, end of input,
# the plain-format fallback warning for a model without a chat template.
source "$(dirname "$0")/lib.bash"
need_shared models/stories260K.gguf
M=$S/models/stories260K.gguf
printf 'Once upon a time\nThe end\n/reset\nHello\n' | "$B" chat -m "$M" -n 12 --temp 0 >"$T/out" 2>"$T/err"
check "exit" 0 "$?"
check "a prompt per line read, and one at end of input" 5 "$(grep -o '> ' "$T/out" | wc -l)"
check "three replies timed" 3 "$(grep -c 'tok/s generation' "$T/err")"
check "fallback warning" 1 "$(grep -c 'no recognised chat template' "$T/err")"
# the second turn reuses the first turn's cache: fewer new prompt tokens than the whole conversation
first=$(grep -o '\[[0-9]* new prompt tokens' "$T/err" | sed -n 1p | tr -dc 0-9)
second=$(grep -o '\[[0-9]* new prompt tokens' "$T/err" | sed -n 2p | tr -dc 0-9)
total=$("$B" tokenize -m "$M" --count -p "$(printf 'user: Once upon a time\nassistant: x\nuser: The end\nassistant:')")
[[ $second -lt $total ]] && echo "ok   cache reuse ($first then $second new tokens)" || { echo "FAIL no cache reuse: $second"; fails=$((fails + 1)); }
# greedy answers are deterministic
printf 'Hello\n' | "$B" chat -m "$M" -n 12 --temp 0 >"$T/a" 2>/dev/null
printf 'Hello\n' | "$B" chat -m "$M" -n 12 --temp 0 >"$T/b" 2>/dev/null
check "deterministic" "$(cat "$T/a")" "$(cat "$T/b")"
# a small context: the turn that does not fit is refused with a hint, the chat goes on
printf 'Once upon a time there was\nand then she went to the park with her mom and dad\n/reset\nHello\n' |
    "$B" chat -m "$M" -c 40 -n 8 --temp 0 >"$T/out" 2>"$T/err"
check "full context: exit" 0 "$?"
check "full context: refused with a hint" 1 "$(grep -c 'the context is 40: /reset starts over' "$T/err")"
check "full context: the turns around it replied" 2 "$(grep -c 'tok/s generation' "$T/err")"
rejects "bad flag" "$B" chat --nope
check "help" 0 "$(code "$B" chat --help)"
finish

#!/usr/bin/env bash
# bench.sh — `rusty bench` prints a llama-bench style table (demo model, tiny sizes).
source "$(dirname "$0")/lib.bash"
out=$("$B" bench -p 16,32 -n 4 -r 2 -t 1 2>/dev/null)
check "exit" 0 "$?"
check "header" "| model | size | params | backend | threads | test | t/s | GB/s | BW % |" "$(echo "$out" | head -1)"
check "rows" "pp16 pp32 tg4" "$(echo "$out" | awk -F'|' 'NR>2 {gsub(/ /,"",$7); printf "%s ", $7}' | sed 's/ $//')"
check "depth" "tg4@d8" "$("$B" bench -p 0 -n 4 -d 8 -r 1 2>/dev/null | awk -F'|' 'NR>2 {gsub(/ /,"",$7); print $7}')"
check "greedy rows" "tg4 tg4greedy tg4@d8 tg4@d8greedy" "$("$B" bench -p 0 -n 4 -d 0,8 -r 1 --greedy 2>/dev/null | awk -F'|' 'NR>2 {gsub(/ /,"",$7); printf "%s ", $7}' | sed 's/ $//')"
check "sampled rows" "tg4 tg4sampledhost tg4sampled" "$("$B" bench -p 0 -n 4 -r 1 --sampled 2>/dev/null | awk -F'|' 'NR>2 {gsub(/ /,"",$7); printf "%s ", $7}' | sed 's/ $//')"
kq=$("$B" bench -p 0 -n 4 -r 1 -ctk q4_0 2>/dev/null)
check "type_k header" "type_k" "$(echo "$kq" | awk -F'|' 'NR==1 {gsub(/ /,"",$7); print $7}')"
check "type_k row" "q4_0 tg4" "$(echo "$kq" | awk -F'|' 'NR>2 {gsub(/ /,"",$7); gsub(/ /,"",$8); print $7 " " $8}')"
rejects "bad list" "$B" bench -p 1,x
rejects "bad reps" "$B" bench -r 0
check "help" 0 "$(code "$B" bench --help)"
finish

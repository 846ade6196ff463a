# lib.bash — helpers for the CLI tests (sourced, not a test). Provides B (the rusty binary),
# S (the shared folder), T (a scratch folder), check/code/finish, and
# need_shared to skip (exit 77) when the shared models are absent.
set -u
B=${RUSTY_BIN:?RUSTY_BIN must name the rusty binary}
S=${RUSTY_SHARED:-../shared}
T=${RUSTY_TMP:-/tmp}/cli-$(basename "$0" .sh)-$$
mkdir -p "$T"
fails=0

need_shared() { # paths under $S that must exist
    for p in "$@"; do
        if [[ ! -e $S/$p ]]; then
            echo "SKIP: $S/$p not found (shared models absent)"
            exit 77
        fi
    done
}
check() { # name, expected, actual
    if [[ "$2" == "$3" ]]; then echo "ok   $1"; else echo "FAIL $1: expected [$2] got [$3]"; fails=$((fails + 1)); fi
}
code() { "$@" >/dev/null 2>&1; echo $?; }
# A failing command must exit 1 and say why in exactly one stderr line "rusty ...: ...".
rejects() { # name, command...
    local name=$1
    shift
    "$@" >/dev/null 2>"$T/err"
    local rc=$? lines
    lines=$(wc -l <"$T/err")
    if [[ $rc -eq 1 && $lines -ge 1 ]] && grep -q '^rusty' "$T/err"; then
        echo "ok   $name"
    else
        echo "FAIL $name: exit $rc, stderr: $(head -c 300 "$T/err")"
        fails=$((fails + 1))
    fi
}
finish() {
    rm -rf "$T"
    if [[ $fails -ne 0 ]]; then
        echo "$fails check(s) failed"
        exit 1
    fi
    echo "all checks passed"
}

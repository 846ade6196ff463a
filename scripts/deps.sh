#!/usr/bin/env bash
# deps.sh — make sure the Debian packages Rusty builds against are installed.
# Usage: scripts/deps.sh [--fuzz]
# As root, missing packages are installed with apt-get; otherwise the exact
# apt-get line is printed and the script fails.
set -euo pipefail

pkgs=(make cmake gcc pkg-config libcjson-dev libpcre2-dev libutf8proc-dev libcmocka-dev
      libsimde-dev)
if [[ "${1:-}" == "--fuzz" ]]; then
    pkgs+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

line="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
    echo "rusty: missing Debian packages: ${missing[*]}" >&2
    echo "rusty: run as root:  $line" >&2
    exit 1
fi
echo "rusty: installing missing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2

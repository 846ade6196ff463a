#!/usr/bin/env python3
"""Zero every fat-binary payload of a shared library except one kind/architecture.

Debian's libggml-cuda.so (ggml 0.27.0) carries 555 MB of device code: PTX for
compute_50..90 and cubins for sm_86/89, no sm_90 cubin, so an H100 JIT-compiles the
compute_90 PTX anyway. Zeroing the rest keeps the file's layout (offsets, headers)
and lets xz shrink it from 94 MB to ~29 MB, small enough to carry to the GPU machine.

usage: fatbin_keep.py IN OUT [ptx|elf] [ARCH]     (default: ptx 90)
"""
import struct
import subprocess
import sys

FATBIN_MAGIC = 0xBA55ED50
KINDS = {"ptx": 1, "elf": 2}


def section(path, name):
    out = subprocess.run(["readelf", "-S", "-W", path], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        f = line.replace("[ ", "[").split()
        if len(f) > 5 and f[1] == name:
            return int(f[4], 16), int(f[5], 16)
    sys.exit(f"{path}: no {name} section")


def entries(data, off, size):
    """(payload offset, payload size, kind, arch) of every entry of every fat binary."""
    p, end = off, off + size
    while p + 16 <= end:
        magic, _ver, hsz, fsz = struct.unpack_from("<IHHQ", data, p)
        if magic != FATBIN_MAGIC:
            p += 8  # fat binaries are 8-byte aligned within the section
            continue
        q, qend = p + hsz, p + hsz + fsz
        if qend > end:
            sys.exit(f"fat binary at {p:#x} runs past its section")
        while q < qend:
            kind, _ev, ehs, padded = struct.unpack_from("<HHIQ", data, q)
            arch = struct.unpack_from("<I", data, q + 28)[0]
            if ehs < 32 or q + ehs + padded > qend:
                sys.exit(f"bad fat binary entry at {q:#x}")
            yield q + ehs, padded, kind, arch
            q += ehs + padded
        p = qend


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    kind = KINDS[sys.argv[3]] if len(sys.argv) > 3 else KINDS["ptx"]
    arch = int(sys.argv[4]) if len(sys.argv) > 4 else 90
    data = bytearray(open(src, "rb").read())
    kept = zeroed = 0
    for p, n, k, a in entries(data, *section(src, ".nv_fatbin")):
        if (k, a) == (kind, arch):
            kept += n
        else:
            data[p : p + n] = bytes(n)
            zeroed += n
    if kept == 0:
        sys.exit(f"{src}: no payload of kind {kind} for arch {arch}; nothing would run")
    open(dst, "wb").write(data)
    print(f"{dst}: kept {kept >> 20} MiB, zeroed {zeroed >> 20} MiB")


main()

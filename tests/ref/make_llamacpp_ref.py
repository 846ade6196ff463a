#!/usr/bin/env python3
"""make_llamacpp_ref.py — references made by llama.cpp / ggml themselves.

1. tests/data/ggml_quant.txt: ggml's quantizer and dequantizer on fixed rows, every
   type we write (tests/ref/ggml_quant_ref.c; read by tests/unit/test_quant_ggml.c).
2. llama.cpp's logits for the quantized TinyStories-656K files (below).

HF transformers (make_logits_ref.py) can only give the unquantized model's logits, so
quantized files were checked against them with tolerances as wide as the
quantization error (IQ4_NL: 2.5e-1). llama.cpp reads the same quantized bytes,
so its logits are a reference for the quantized arithmetic itself. Made here on
the CPU with Debian's llama.cpp (bench/peer.sh stage packs it; its build is named
in each file), run through tests/ref/llamacpp_logits.c.

    bench/peer.sh stage
    python3 tests/ref/make_llamacpp_ref.py ../shared/models tests/data/ref

Files, each tests/data/ref/TinyStories-656K-<TYPE>.llamacpp.bin:
  * Q8_0, IQ4_NL: the shared files tinystories-656k-q8_0.gguf and
    TinyStories-656K-Q2_K.gguf (whose matrices are IQ4_NL and Q8_0: 128-wide rows
    take no K-quant).
  * Q4_0, Q4_1, Q5_0, Q5_1: `rusty quantize TinyStories-656K.f16.gguf OUT TYPE
    --pure`, which the test repeats; the file's size and FNV-1a 64 hash are stored
    so that a test whose quantizer output changed says so instead of comparing.

Format: RSREF1 as make_logits_ref.py writes it (the first case of
TinyStories-656K.logits.bin, its ids), plus "reference" and, for the quantized
ones, "quantized": {"from", "type", "size", "fnv1a64"}.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED_FILES = {"Q8_0": "tinystories-656k-q8_0.gguf", "IQ4_NL": "TinyStories-656K-Q2_K.gguf"}
QUANTIZED = ["Q4_0", "Q4_1", "Q5_0", "Q5_1"]
N_GREEDY = 64


def fnv1a64(path):
    h = 0xCBF29CE484222325
    for b in open(path, "rb").read():  # files of ~0.5 MB: fast enough in plain Python
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def read_cases(path):
    blob = open(path, "rb").read()
    assert blob[:8] == b"RSREF1\0\0"
    (n,) = struct.unpack_from("<Q", blob, 8)
    return json.loads(blob[16 : 16 + n])["cases"]


def build(peer, tmp, name):
    """Compiles tests/ref/<name>.c against the packed libraries; the command that runs it."""
    exe = os.path.join(tmp, name)
    lib = os.path.join(peer, "lib")
    # sid's libraries need glibc 2.43: link without resolving their glibc symbols,
    # then run under sid's own loader
    subprocess.run(["gcc", "-O2", "-std=c11", "-I", os.path.join(peer, "include"),
                    os.path.join(ROOT, f"tests/ref/{name}.c"), "-o", exe, "-L", lib,
                    "-l:libllama.so.0", "-l:libggml.so.0", "-l:libggml-base.so.0",
                    "-Wl,--unresolved-symbols=ignore-in-shared-libs"], check=True)
    return [os.path.join(lib, "ld-linux-x86-64.so.2"), "--library-path", lib, exe]


def run_llamacpp(dumper, model, ids, tmp):
    out = os.path.join(tmp, "logits.f32")
    r = subprocess.run(dumper + [model, out, str(N_GREEDY)] + [str(i) for i in ids],
                       check=True, capture_output=True, text=True)
    lines = dict(l.split(" ", 1) for l in r.stdout.strip().splitlines())
    logits = open(out, "rb").read()  # float32 [len(ids)][n_vocab], little-endian
    return logits, [int(t) for t in lines["greedy"].split()], float(lines["margin"])


def write_ref(path, header, logits):
    case = header["cases"][0]
    case["logits"] = {"offset": 0, "shape": [len(case["ids"]), len(logits) // 4 // len(case["ids"])]}
    js = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(b"RSREF1\0\0" + struct.pack("<Q", len(js)) + js + logits)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    models, out_dir = sys.argv[1], sys.argv[2]
    ids = read_cases(os.path.join(ROOT, "tests/data/ref/TinyStories-656K.logits.bin"))[0]["ids"]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["tar", "xJf", os.path.join(ROOT, ".stage-peer/peer.tar.xz"), "-C", tmp],
                       check=True)
        peer = os.path.join(tmp, "peer")
        version = open(os.path.join(peer, "VERSIONS")).read().split("\n")
        version = "; ".join(v for v in version if "llama" in v or "ggml0 " in v)
        quant = subprocess.run(build(peer, tmp, "ggml_quant_ref"), check=True,
                               capture_output=True, text=True).stdout
        path = os.path.join(ROOT, "tests/data/ggml_quant.txt")
        open(path, "w").write(quant)
        print(f"{path}: {quant.count(chr(10))} lines")
        dumper = build(peer, tmp, "llamacpp_logits")
        jobs = [(t, os.path.join(models, f), None) for t, f in SHARED_FILES.items()]
        for t in QUANTIZED:
            q = os.path.join(tmp, f"656K-{t}.gguf")
            subprocess.run([os.path.join(ROOT, "build/rusty"), "quantize",
                            os.path.join(models, "TinyStories-656K.f16.gguf"), q, t, "--pure"],
                           check=True, capture_output=True)
            jobs.append((t, q, {"from": "models/TinyStories-656K.f16.gguf", "type": t,
                                "size": os.path.getsize(q), "fnv1a64": fnv1a64(q)}))
        for t, model, quantized in jobs:
            logits, greedy, margin = run_llamacpp(dumper, model, ids, tmp)
            header = {"model": os.path.basename(model) if not quantized else f"656K-{t}",
                      "reference": f"llama.cpp (Debian: {version}), CPU, 1 thread, F32 KV cache",
                      "dtype": "float32",
                      "cases": [{"ids": ids, "greedy": greedy, "greedy_min_margin": margin}]}
            if quantized:
                header["quantized"] = quantized
            path = os.path.join(out_dir, f"TinyStories-656K-{t}.llamacpp.bin")
            write_ref(path, header, logits)
            print(f"{path}: {len(logits)} bytes of logits, greedy margin {margin:.3g}")


main()

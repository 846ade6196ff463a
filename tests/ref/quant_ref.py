#!/usr/bin/env python3
"""quant_ref.py - an independent model of ggml's reference quantizers for Q8_0,
Q4_0, Q4_1, Q5_0 and Q5_1 (quantize_row_*_ref) and of the IQ4_NL quantizer
llama-quantize runs without an importance matrix (quantize_iq4_nl: weights
x^2, 7 trial scales each side), written from the algorithm descriptions, in
pure Python.

Every f32 operation of the C reference is reproduced as "compute in double,
round to f32" (exact for + - * / of f32 operands), fp16 stores use struct's
'e' format (round to nearest even; overflow becomes inf here), roundf rounds
ties away from zero and (int8_t) casts truncate toward zero.

Writes tests/data/quant_ref.txt, which tests/unit/test_quant_legacy.c reads:
    input <name> <32 f32 bit patterns, 8 hex digits each>
    <TYPE> <name> <block bytes in hex>
Run from the repository root:  python3 tests/ref/quant_ref.py
"""
import math
import os
import struct
import sys

FLT_MAX = struct.unpack("<f", struct.pack("<I", 0x7F7FFFFF))[0]


def f32(x):
    """Round a double to the nearest f32 (as C does for a float result);
    results beyond the f32 range become infinities, as in C."""
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def fp16_bytes(x):
    """IEEE binary16 bytes of an f32 value, ties to even, overflow to inf."""
    try:
        return struct.pack("<e", x)
    except OverflowError:
        return struct.pack("<H", 0xFC00 if x < 0 else 0x7C00)


def roundf(x):
    """C roundf: nearest integer, halfway cases away from zero."""
    return math.copysign(math.floor(abs(x) + 0.5), x)


def trunc_int(x):
    """C (int) conversion of a float: toward zero."""
    return int(x)


def signed_absmax(xs):
    amax, mx = 0.0, 0.0
    for v in xs:
        if amax < abs(v):
            amax, mx = abs(v), v
    return mx


def min_max(xs):
    mn, mx = FLT_MAX, -FLT_MAX
    for v in xs:
        if v < mn:
            mn = v
        if v > mx:
            mx = v
    return mn, mx


def inverse(d):
    return f32(1.0 / d) if d != 0.0 else 0.0


def q4_0(xs):
    d = f32(signed_absmax(xs) / -8.0)
    idv = inverse(d)
    qs = bytearray(16)
    for j in range(16):
        a = min(15, trunc_int(f32(f32(xs[j] * idv) + 8.5)))
        b = min(15, trunc_int(f32(f32(xs[j + 16] * idv) + 8.5)))
        qs[j] = a | (b << 4)
    return fp16_bytes(d) + bytes(qs)


def q4_1(xs):
    mn, mx = min_max(xs)
    d = f32(f32(mx - mn) / 15.0)
    idv = inverse(d)
    qs = bytearray(16)
    for j in range(16):
        a = min(15, trunc_int(f32(f32(f32(xs[j] - mn) * idv) + 0.5)))
        b = min(15, trunc_int(f32(f32(f32(xs[j + 16] - mn) * idv) + 0.5)))
        qs[j] = a | (b << 4)
    return fp16_bytes(d) + fp16_bytes(mn) + bytes(qs)


def pack5(levels):
    qh = 0
    qs = bytearray(16)
    for j in range(16):
        a, b = levels[j], levels[j + 16]
        qs[j] = (a & 15) | ((b & 15) << 4)
        qh |= ((a >> 4) & 1) << j
        qh |= ((b >> 4) & 1) << (j + 16)
    return struct.pack("<I", qh) + bytes(qs)


def q5_0(xs):
    d = f32(signed_absmax(xs) / -16.0)
    idv = inverse(d)
    levels = [min(31, trunc_int(f32(f32(v * idv) + 16.5))) for v in xs]
    return fp16_bytes(d) + pack5(levels)


def q5_1(xs):
    mn, mx = min_max(xs)
    d = f32(f32(mx - mn) / 31.0)
    idv = inverse(d)
    levels = [trunc_int(f32(f32(f32(v - mn) * idv) + 0.5)) for v in xs]
    return fp16_bytes(d) + fp16_bytes(mn) + pack5(levels)


def q8_0(xs):
    amax = 0.0
    for v in xs:
        amax = amax if amax > abs(v) else abs(v)
    d = f32(amax / 127.0)
    idv = inverse(d)
    qs = [int(roundf(f32(v * idv))) for v in xs]
    return fp16_bytes(d) + bytes(q & 0xFF for q in qs)


IQ4NL_VALUES = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]


def iq4nl_index(x):
    """Nearest code-book entry; exact midpoint ties go to the larger value."""
    best = 0
    for i in range(1, 16):
        if 2.0 * x >= IQ4NL_VALUES[i - 1] + IQ4NL_VALUES[i]:
            best = i
    return best


def iq4nl_fit(xs, ws, idv):
    sqx, sq2 = 0.0, 0.0
    for x, w in zip(xs, ws):
        q = float(IQ4NL_VALUES[iq4nl_index(f32(idv * x))])
        sqx = f32(sqx + f32(f32(w * q) * x))
        sq2 = f32(sq2 + f32(f32(w * q) * q))
    return sqx, sq2


def iq4_nl(xs):
    ws = [f32(x * x) for x in xs]
    amax, mx = 0.0, 0.0
    for x in xs:
        if abs(x) > amax:
            amax, mx = abs(x), x
    d = 0.0
    if amax >= f32(1e-15):
        # first guess maps the extreme onto +127, then least squares
        sqx, sq2 = iq4nl_fit(xs, ws, f32(1.0 / f32(-mx / -127.0)))
        d = f32(sqx / sq2) if sq2 > 0 else 0.0
        best = f32(d * sqx)
        for itry in range(-7, 8):
            sqx, sq2 = iq4nl_fit(xs, ws, f32(float(itry - 127) / mx))
            if sq2 > 0 and f32(sqx * sqx) > f32(best * sq2):
                d = f32(sqx / sq2)
                best = f32(d * sqx)
    idv = f32(1.0 / d) if d != 0.0 else 0.0
    idx = [iq4nl_index(f32(idv * x)) for x in xs]
    qs = bytes(idx[j] | (idx[j + 16] << 4) for j in range(16))
    return fp16_bytes(d) + qs


QUANTIZERS = [("Q8_0", q8_0), ("Q4_0", q4_0), ("Q4_1", q4_1), ("Q5_0", q5_0), ("Q5_1", q5_1),
              ("IQ4_NL", iq4_nl)]


class XorShift:
    """Small deterministic generator (xorshift64*), independent of the C tests."""

    def __init__(self, seed):
        self.s = seed

    def next(self):
        s = self.s
        s ^= (s >> 12)
        s ^= (s << 25) & 0xFFFFFFFFFFFFFFFF
        s ^= (s >> 27)
        self.s = s
        return (s * 0x2545F4914F6CDD1D) & 0xFFFFFFFFFFFFFFFF

    def uniform(self):  # [-1, 1)
        return (self.next() >> 11) / float(1 << 52) - 1.0

    def gauss(self):
        u1 = ((self.next() >> 11) + 1) / float(1 << 53)
        u2 = (self.next() >> 11) / float(1 << 53)
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def inputs():
    rng = XorShift(0x9E3779B97F4A7C15)
    cases = []
    cases.append(("uniform", [rng.uniform() for _ in range(32)]))
    cases.append(("gauss", [0.02 * rng.gauss() for _ in range(32)]))
    cases.append(("zeros", [0.0] * 32))
    cases.append(("negzeros", [-0.0] * 32))
    cases.append(("const", [0.3] * 32))
    cases.append(("negconst", [-1.7] * 32))
    outl = [0.01 * rng.uniform() for _ in range(32)]
    outl[13] = 50.0
    cases.append(("outlier", outl))
    negmax = [0.5 * rng.uniform() for _ in range(32)]
    negmax[21] = -3.0
    cases.append(("negmax", negmax))
    negonly = [-abs(rng.uniform()) - 0.25 for _ in range(32)]
    cases.append(("negonly", negonly))
    # magnitudes tie: the first one sets the sign of d for Q4_0 / Q5_0
    eq = [0.25 * rng.uniform() for _ in range(32)]
    eq[3], eq[17] = 0.75, -0.75
    cases.append(("equal_extremes", eq))
    # amax 127 -> d = 1: exact .5 products, roundf rounds them away from zero
    t8 = [127.0, -2.5, 2.5, 0.5, -0.5, 1.5, -1.5, 126.5, -126.5, 3.5, -3.5, 64.5]
    t8 += [float(k) + 0.5 for k in range(-10, 10)]
    cases.append(("ties_q8", t8[:32]))
    # Q4_0 with max -8 -> d = 1, id = 1: x + 8.5 lands on integers and halves
    t4 = [-8.0, 8.0, 0.5, -0.5, 1.5, -1.5, 7.0, 7.5, -7.5, 6.5, 0.0, -0.0, 3.25, -3.75]
    t4 += [k * 0.5 for k in range(-9, 9)]
    cases.append(("ties_q4", t4[:32]))
    # Q4_1 / Q5_1 with min 0: d = 1 (Q4_1, max 15) and 15/31 (Q5_1)
    t41 = [0.0, 15.0] + [k + 0.5 for k in range(15)] + [float(k) for k in range(15)]
    cases.append(("ties_q4_1", t41[:32]))
    # Q5_0 with max -16 -> d = 1
    t5 = [-16.0, 16.0, 15.5, -15.5, 0.5, -0.5] + [k + 0.5 for k in range(-13, 13)]
    cases.append(("ties_q5", t5[:32]))
    cases.append(("tiny", [1e-20 * rng.uniform() for _ in range(32)]))
    # small positive-biased values: fp16 d near its subnormal range
    cases.append(("small", [2e-6 * rng.gauss() + 1e-6 for _ in range(32)]))
    # d overflows fp16 for the 4/5-bit types (stored as inf), not for Q8_0
    cases.append(("huge", [1.0e6 * rng.uniform() for _ in range(32)]))
    return [(name, [f32(v) for v in xs]) for name, xs in cases]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "data", "quant_ref.txt")
    lines = ["# generated by tests/ref/quant_ref.py; do not edit by hand"]
    for name, xs in inputs():
        assert len(xs) == 32
        bits = " ".join("%08x" % struct.unpack("<I", struct.pack("<f", v))[0] for v in xs)
        lines.append("input %s %s" % (name, bits))
        for tname, fn in QUANTIZERS:
            lines.append("%s %s %s" % (tname, name, fn(xs).hex()))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s (%d lines)" % (path, len(lines)), file=sys.stderr)


if __name__ == "__main__":
    main()

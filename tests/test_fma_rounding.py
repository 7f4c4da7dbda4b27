"""FMA3 rounding under every MXCSR.RC mode, against exact arithmetic.

A fused multiply-add rounds a*m + c once.  bttool computes the nearest
result with LLVM's fma and, when MXCSR.RC is directed, the exact error's
sign with error-free transformations (sse_fpcore.fused); this test draws
the operands where that is hard -- cancellation down to exact zeros,
products and results among the subnormals, products too small to matter
beside the addend, overflow -- and checks every lane against the exact
value a*m + c (Python's Fraction) rounded by the mode, with the IEEE sign
rules for exact zeros.  Being exact arithmetic, the oracle needs no FMA on
the host; where the host has one, its results are checked against the
oracle too (so the oracle itself is tested).

NaN and infinity operands are left to test_avx_semantics (their rule is
the CPU's, not arithmetic's).
"""
from __future__ import annotations

import os
import random
import struct
import sys
from fractions import Fraction

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import native as N  # noqa: E402
from bttool.translator import cpumodel  # noqa: E402

pytestmark = pytest.mark.skipif(not N.have_toolchain(), reason="needs GNU as, objcopy and nm")

# ymm0 = ymm1*ymm2 + ymm0 (f64); ymm3 = -(ymm4*ymm3) - ymm5 (f32);
# xmm6[63:0] = xmm6*xmm8 - xmm7 (f64, the rest of xmm6 kept)
CODE_LINES = ["vfmadd231pd ymm0, ymm1, ymm2", "vfnmsub213ps ymm3, ymm4, ymm5",
              "vfmsub132sd xmm6, xmm7, xmm8"]
RUNS_PER_MODE = 40

# (precision, minimum normal exponent, maximum exponent) of binary64 and binary32
FORMATS = {64: (53, -1022, 1023), 32: (24, -126, 127)}
RC_NAMES = ("nearest", "down", "up", "toward zero")


# ---------------------------------------------------------------------------
# the exact oracle

def _bits_of(x: float, bits: int) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0] if bits == 64 else \
        struct.unpack("<I", struct.pack("<f", x))[0]


def _float_of(v: int, bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", v))[0] if bits == 64 else \
        struct.unpack("<f", struct.pack("<I", v))[0]


def _neg(x: float) -> bool:
    return struct.pack("<d", x)[7] >= 0x80


def round_fraction(q: Fraction, bits: int, rc: int) -> int:
    """Non-zero ``q`` rounded to the format of ``bits`` by mode ``rc`` (0
    nearest even, 1 down, 2 up, 3 toward zero), as the format's bits."""
    p, emin, emax = FORMATS[bits]
    neg, x = q < 0, abs(q)
    e = x.numerator.bit_length() - x.denominator.bit_length()
    if Fraction(2) ** e > x:
        e -= 1
    quantum = Fraction(2) ** (max(e, emin) - p + 1)
    n = x / quantum
    whole = n.numerator // n.denominator
    rem = n - whole
    away = {0: rem > Fraction(1, 2) or (rem == Fraction(1, 2) and whole % 2 == 1),
            1: neg and rem > 0, 2: not neg and rem > 0, 3: False}[rc]
    mag = (whole + away) * quantum
    big = (2 - Fraction(2) ** (1 - p)) * Fraction(2) ** emax
    if mag > big:       # overflow: infinity, or the largest finite value
        to_inf = {0: True, 1: neg, 2: not neg, 3: False}[rc]
        mag = None if to_inf else big
    value = float("inf") if mag is None else float(mag)
    return _bits_of(-value if neg else value, bits)


def fma_exact(a: float, m: float, c: float, bits: int, rc: int) -> int:
    """x86 FMA's a*m + c (finite operands) rounded once by ``rc``."""
    q = Fraction(a) * Fraction(m) + Fraction(c)
    if q != 0:
        return round_fraction(q, bits, rc)
    prod_neg = _neg(a) != _neg(m)
    if a * m == 0 and c == 0 and prod_neg == _neg(c):
        neg = prod_neg                       # +0 + +0, -0 + -0
    else:
        neg = rc == 1                        # an exact zero sum: -0 rounding down
    return _bits_of(-0.0 if neg else 0.0, bits)


# ---------------------------------------------------------------------------
# operands

def _to(x: float, bits: int) -> float:
    """``x`` rounded to the format (floats are binary64 already)."""
    return x if bits == 64 else _float_of(_bits_of(x, 32), 32)


def _random_finite(rng: random.Random, bits: int, lo: int, hi: int) -> float:
    p, emin, emax = FORMATS[bits]
    mant = rng.getrandbits(p - 1) | 1 << (p - 1)
    e = rng.randint(max(lo, emin - p + 1), min(hi, emax))
    x = mant * 2.0 ** (e - p + 1) if e - p + 1 > -1074 else float(Fraction(mant) * Fraction(2) ** (e - p + 1))
    return _to(-x if rng.random() < 0.5 else x, bits)


def _ulps(x: float, k: int, bits: int) -> float:
    """``x`` moved ``k`` units in the last place (through zero if need be)."""
    v = _bits_of(x, bits)
    top = 1 << (bits - 1)
    signed = -(v & (top - 1)) if v & top else v
    signed += k
    return _float_of((top | -signed) if signed < 0 else signed, bits)


def operands(rng: random.Random, bits: int) -> tuple[float, float, float]:
    """(a, m, c) from one of the hard regimes."""
    p, emin, emax = FORMATS[bits]
    sub = emin - p + 1                                   # the smallest subnormal's exponent
    kind = rng.randrange(8)
    if kind == 0:        # ordinary
        return tuple(_random_finite(rng, bits, -20, 20) for _ in range(3))
    if kind == 1:        # cancellation: c is -a*m rounded, moved a few ulps
        a, m = _random_finite(rng, bits, -30, 30), _random_finite(rng, bits, -30, 30)
        c = _ulps(-_to(a * m, bits), rng.randint(-3, 3), bits)
        return a, m, c
    if kind == 2:        # an exact zero: a*m and c cancel exactly
        a = _to(float(rng.randint(-1000, 1000)), bits)
        m = _to(float(rng.choice([-1, 1]) * rng.randint(0, 64)) / 8, bits)
        c = -a * m
        return a, m, (c if rng.random() < 0.5 else -c) if a * m else rng.choice([0.0, -0.0])
    if kind == 3:        # the product among the subnormals, a tiny addend
        a = _random_finite(rng, bits, sub // 2 - 5, sub // 2 + 40)
        m = _random_finite(rng, bits, sub // 2 - 5, sub // 2 + 40)
        c = rng.choice([0.0, -0.0, _random_finite(rng, bits, sub, emin + 3)])
        return a, m, _to(c, bits)
    if kind == 4:        # a result among the subnormals by cancellation
        a, m = _random_finite(rng, bits, emin // 2, emin // 2 + 8), _random_finite(rng, bits, emin // 2, emin // 2 + 8)
        return a, m, _ulps(-_to(a * m, bits), rng.randint(-2, 2), bits)
    if kind == 5:        # a product too small to matter beside the addend
        a = _random_finite(rng, bits, sub // 2 - 20, sub // 2)
        m = _random_finite(rng, bits, sub // 2 - 20, sub // 2)
        return a, m, _random_finite(rng, bits, sub, emax)
    if kind == 6:        # near overflow
        a = _random_finite(rng, bits, emax // 2 - 2, emax // 2 + 2)
        m = _random_finite(rng, bits, emax // 2 - 2, emax // 2 + 2)
        return a, m, _random_finite(rng, bits, emax - 3, emax)
    # zeros and small integers (exact results, signed zeros)
    pick = [0.0, -0.0, 1.0, -1.0, 2.0, 0.5]
    return tuple(_to(rng.choice(pick), bits) for _ in range(3))


# ---------------------------------------------------------------------------
# runs

def _pack(values: list[float], bits: int) -> int:
    return sum(_bits_of(v, bits) << (i * bits) for i, v in enumerate(values))


def _lane(v: int, i: int, bits: int) -> int:
    return (v >> (i * bits)) & ((1 << bits) - 1)


def case(rng: random.Random, rc: int):
    """One starting state and, per checked lane, (register, lane, bits,
    expected bits, operands)."""
    ymm = [0] * 16
    expect = []
    f64 = [operands(rng, 64) for _ in range(4)]           # ymm0 = ymm1*ymm2 + ymm0
    ymm[1], ymm[2], ymm[0] = (_pack([t[i] for t in f64], 64) for i in range(3))
    expect += [(0, i, 64, fma_exact(*t, 64, rc), t) for i, t in enumerate(f64)]
    f32 = [operands(rng, 32) for _ in range(8)]           # ymm3 = -(ymm4*ymm3) - ymm5
    ymm[4], ymm[3], ymm[5] = (_pack([t[i] for t in f32], 32) for i in range(3))
    expect += [(3, i, 32, fma_exact(-a, m, -c, 32, rc), (a, m, c)) for i, (a, m, c) in enumerate(f32)]
    a, m, c = operands(rng, 64)                           # xmm6 = xmm6*xmm8 - xmm7
    keep = rng.getrandbits(64)
    ymm[6], ymm[8], ymm[7] = _pack([a, 0.0], 64) | keep << 64, _bits_of(m, 64), _bits_of(-c, 64)
    expect.append((6, 0, 64, fma_exact(a, m, c, 64, rc), (a, m, c)))
    expect.append((6, 1, 64, keep, "kept"))
    inp = N.Input(ymm=ymm, mxcsr=0x1F80 | rc << 13)
    return inp, expect


def _mismatches(out: N.Outcome, expect, who: str, rc: int) -> list[str]:
    bad = []
    for reg, i, bits, want, ops in expect:
        got = _lane(out.ymm[reg], i, bits)
        if got != want:
            bad.append(f"{who}, {RC_NAMES[rc]}: ymm{reg} lane {i} ({bits}-bit) = {got:#x}, "
                       f"exact {want:#x}; operands {ops}")
    return bad


@pytest.fixture(scope="module")
def code() -> bytes:
    return N.assemble(["\n".join(CODE_LINES)])[0]


@pytest.mark.usefixtures("isa_tier")
@pytest.mark.parametrize("rc", range(4), ids=RC_NAMES)
def test_fma_rounds_exactly(code: bytes, rc: int) -> None:
    rng = random.Random(1000 + rc)
    host = N.NATIVE_YMM and N.missing_host_feature(code) is None
    bad = []
    with N.cpu_model(cpumodel.V3):
        for _ in range(RUNS_PER_MODE):
            inp, expect = case(rng, rc)
            bad += _mismatches(N.run_translated(code, **vars(inp)), expect, "translated", rc)
            if host:
                bad += _mismatches(N.run_native(code, **vars(inp)), expect, "host", rc)
    assert not bad, f"{len(bad)} lanes differ:\n" + "\n".join(bad[:12])


def test_oracle_rounds_like_python() -> None:
    """The exact oracle agrees with Python's own (correctly rounded) float
    arithmetic where that applies: round to nearest, binary64."""
    rng = random.Random(7)
    for _ in range(2000):
        a, m, c = _random_finite(rng, 64, -60, 60), _random_finite(rng, 64, -60, 60), 0.0
        assert fma_exact(a, m, c, 64, 0) == _bits_of(a * m, 64)
        assert fma_exact(a, 1.0, m, 64, 0) == _bits_of(a + m, 64)

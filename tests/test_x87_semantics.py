"""x87 semantics against the host CPU.

Every test runs one instruction sequence natively and under translation
(tests/native.py) over a table of records and compares the records byte
for byte.  A record is REC bytes at rsi: inputs at fixed offsets, outputs
written by the body; the snippet loops over the records (``rcx`` of them),
so one translation checks many operand sets.

Record layout (offsets from rsi):
  +0, +16   IN0, IN1: 80-bit inputs (10 bytes used)
  +32       F32: a float; +36 I32: an int32 (its low half is the m16int)
  +40       F64: a double, also read as an int64
  +48+16k   OUT(k), k = 0..9: 80-bit (or smaller) outputs
  +208      FLAGS: rflags after the body (arithmetic flags compared)
  +216..231 INTS: integer outputs
  +232+2k   SW(k), k = 0..7: status words (C0-C3 and TOP compared; C1 too
            where the instruction defines it exactly -- the "rounded up"
            C1 and the sticky exception bits are not modelled)
  +248      CW: a control word the body may load (rounding control tests)

The modelled behaviour and what is left out are described in
bttool/translator/semantics/x87.py.
"""
from __future__ import annotations

import struct
import sys
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis_profiles import examples  # noqa: E402
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import native as N  # noqa: E402
from native import DATA_ADDR, DATA_SIZE  # noqa: E402

pytestmark = [pytest.mark.skipif(not N.have_toolchain(), reason="needs GNU as, objcopy and nm"),
              pytest.mark.usefixtures("isa_tier")]      # every test runs under every tier

REC = 256
MAX_RECORDS = DATA_SIZE // REC - 1
IN0, IN1, F32, I32, F64 = 0, 16, 32, 36, 40
FLAGS, INTS, CW = 208, 216, 248
FXAREA = 256     # fxsave images (records of the fxsave test are larger)
REC_FXSAVE = 1536


def OUT(k: int) -> int:
    return 48 + 16 * k


def SW(k: int) -> int:
    return 232 + 2 * k


SW_CC_TOP = 0x7F00          # C0 C1 C2 C3 and TOP
SW_NO_C1 = 0x7D00           # ... without C1 (rounding indication)
ARITH_FLAGS = 0x8D5

# -- 80-bit values --------------------------------------------------------------
SIGN = 1 << 79
INT_BIT = 1 << 63
BIAS = 16383


def f80(sign: int, exp: int, mant: int) -> int:
    return (sign << 79) | (exp << 64) | (mant & ((1 << 64) - 1))


def int_to_f80(n: int) -> int:
    """Exact for |n| < 2^64."""
    if n == 0:
        return 0
    s, a = (1, -n) if n < 0 else (0, n)
    e = a.bit_length() - 1
    return f80(s, BIAS + e, a << (63 - e))


def float_to_f80(x: float) -> int:
    bits, = struct.unpack("<Q", struct.pack("<d", x))
    s, e, frac = bits >> 63, (bits >> 52) & 0x7FF, bits & ((1 << 52) - 1)
    if e == 0x7FF:
        return f80(s, 0x7FFF, INT_BIT | (frac << 11))
    if e == 0:
        if frac == 0:
            return f80(s, 0, 0)
        sh = 53 - frac.bit_length()          # normalise the denormal
        return f80(s, BIAS - 1022 - sh, (frac << sh) << 11)
    return f80(s, e - 1023 + BIAS, INT_BIT | (frac << 11))


INF = f80(0, 0x7FFF, INT_BIT)
INDEF = f80(1, 0x7FFF, 0xC000_0000_0000_0000)
QNAN = f80(0, 0x7FFF, 0xC000_0000_0000_1234)
SNAN = f80(1, 0x7FFF, 0x8000_0000_0000_4321)
ONE = f80(0, BIAS, INT_BIT)
MAXF = f80(0, 0x7FFE, (1 << 64) - 1)
MINN = f80(0, 1, INT_BIT)
MIND = f80(0, 0, 1)

SPECIALS = [
    0, SIGN, INF, INF | SIGN, INDEF, QNAN, SNAN, ONE, ONE | SIGN, MAXF, MAXF | SIGN,
    MINN, MIND | SIGN, f80(0, 0, 0x4000_0000_0000_0000), f80(0, BIAS + 63, INT_BIT),
    f80(1, BIAS + 63, INT_BIT), f80(0, BIAS - 1, INT_BIT), f80(1, BIAS + 1, INT_BIT | 1 << 62),
    f80(0, BIAS + 62, (1 << 64) - 1), int_to_f80(3), int_to_f80(-7), float_to_f80(0.1),
    float_to_f80(1e300), float_to_f80(-2.5), float_to_f80(1.5),
]


def _normal(exp_lo: int, exp_hi: int):
    return st.builds(lambda s, e, m: f80(s, e, INT_BIT | m), st.integers(0, 1),
                     st.integers(exp_lo, exp_hi), st.integers(0, (1 << 63) - 1))


_HALVES = st.integers(-(1 << 40), 1 << 40).map(lambda n: float_to_f80(n + 0.5))
_NEAR_INT_LIMITS = st.builds(
    lambda k, d, s: int_to_f80((-1 if s else 1) * ((1 << k) + d)),
    st.sampled_from([15, 16, 31, 32, 63]), st.integers(-3, 2), st.booleans())

fp80_any = st.one_of(
    st.sampled_from(SPECIALS),
    _normal(1, 0x7FFE),
    _normal(BIAS - 70, BIAS + 70),
    _normal(BIAS - 3, BIAS + 3),
    st.builds(lambda s, m: f80(s, 0, m), st.integers(0, 1), st.integers(1, (1 << 63) - 1)),
    st.builds(lambda s, q, m: f80(s, 0x7FFF, INT_BIT | (q << 62) | m), st.integers(0, 1),
              st.integers(0, 1), st.integers(1, (1 << 62) - 1)),
    st.floats(width=64).map(float_to_f80),
    st.integers(-(1 << 64) + 1, (1 << 64) - 1).map(int_to_f80),
    _HALVES,
    _NEAR_INT_LIMITS,
    # unsupported encodings: unnormals, pseudo-NaN/infinity; pseudo-denormals
    st.builds(lambda s, e, m: f80(s, e, m), st.integers(0, 1), st.sampled_from([1, BIAS, 0x7FFF]),
              st.integers(0, INT_BIT - 1)),
    st.builds(lambda s, m: f80(s, 0, INT_BIT | m), st.integers(0, 1), st.integers(0, 3)),
)
# moderate values for the integer conversions and rounding
fp80_intish = st.one_of(_HALVES, _NEAR_INT_LIMITS, _normal(BIAS - 3, BIAS + 66),
                        st.sampled_from(SPECIALS))
cw_rc = st.sampled_from([0x037F, 0x077F, 0x0B7F, 0x0F7F])


@st.composite
def records(draw, values=fp80_any, cw=None, same_prob=True):
    a = draw(values)
    b = draw(st.one_of(values, st.just(a), st.just(a ^ SIGN))) if same_prob else draw(values)
    return {
        "in0": a, "in1": b,
        "f32": draw(st.floats(width=32)),
        "i32": draw(st.integers(-(1 << 31), (1 << 31) - 1)),
        "f64": draw(st.one_of(st.floats(), st.integers(-(1 << 63), (1 << 63) - 1))),
        "cw": draw(cw) if cw is not None else 0x037F,
    }


def pack(recs: list[dict], size: int = REC) -> bytes:
    out = bytearray()
    for r in recs:
        rec = bytearray(size)
        rec[IN0:IN0 + 10] = r["in0"].to_bytes(10, "little")
        rec[IN1:IN1 + 10] = r["in1"].to_bytes(10, "little")
        rec[F32:F32 + 4] = struct.pack("<f", r.get("f32", 0.0))
        rec[I32:I32 + 4] = struct.pack("<i", r.get("i32", 0))
        f = r.get("f64", 0.0)
        rec[F64:F64 + 8] = struct.pack("<q", f) if isinstance(f, int) else struct.pack("<d", f)
        rec[CW:CW + 2] = struct.pack("<H", r.get("cw", 0x037F))
        for off, raw in r.get("raw", {}).items():
            rec[off:off + len(raw)] = raw
        out += rec
    return bytes(out)


# -- snippets ---------------------------------------------------------------
def _t(i):  # tbyte operand
    return f"tbyte ptr [rsi+{i}]"


def _arith_body(op: str) -> str:
    """All forms of one arithmetic operation."""
    return f"""
    fld {_t(IN1)}
    fld {_t(IN0)}
    {op} st, st(1)
    fstp {_t(OUT(0))}
    fstp {_t(OUT(1))}
    fld {_t(IN1)}
    fld {_t(IN0)}
    {op} st(1), st
    fstp {_t(OUT(2))}
    fstp {_t(OUT(3))}
    fld {_t(IN1)}
    fld {_t(IN0)}
    {op}p st(1), st
    fstp {_t(OUT(4))}
    fld {_t(IN0)}
    {op} dword ptr [rsi+{F32}]
    fstp {_t(OUT(5))}
    fld {_t(IN0)}
    {op} qword ptr [rsi+{F64}]
    fstp {_t(OUT(6))}
    fld {_t(IN0)}
    fi{op[1:]} dword ptr [rsi+{I32}]
    fstp {_t(OUT(7))}
    fld {_t(IN0)}
    fi{op[1:]} word ptr [rsi+{I32}]
    fstp {_t(OUT(8))}
    fld {_t(IN1)}
    fld {_t(IN0)}
    fxch
    {op}p st(1), st
    fstp {_t(OUT(9))}
    fnstsw ax
    mov [rsi+{SW(0)}], ax
    """


_COMPARE = f"""
    fld {_t(IN1)}
    fld {_t(IN0)}
    fcom st(1)
    fnstsw ax
    mov [rsi+{SW(0)}], ax
    fucom st(1)
    fnstsw ax
    mov [rsi+{SW(1)}], ax
    fcom dword ptr [rsi+{F32}]
    fnstsw ax
    mov [rsi+{SW(2)}], ax
    fcom qword ptr [rsi+{F64}]
    fnstsw ax
    mov [rsi+{SW(3)}], ax
    ficom dword ptr [rsi+{I32}]
    fnstsw ax
    mov [rsi+{SW(4)}], ax
    ftst
    fnstsw ax
    mov [rsi+{SW(5)}], ax
    fcomi st, st(1)
    pushfq
    pop qword ptr [rsi+{FLAGS}]
    fucomi st, st(1)
    pushfq
    pop rax
    mov [rsi+{INTS}], rax
    fld st(0)
    fcomp st(2)
    fld st(0)
    fucomp st(2)
    fnstsw ax
    mov [rsi+{SW(6)}], ax
    fld st(0)
    fld st(2)
    fcompp
    fld st(0)
    fld st(2)
    fucompp
    fld st(0)
    ficomp word ptr [rsi+{I32}]
    fld st(0)
    fld st(2)
    fxch
    fcomip st, st(1)
    pushfq
    pop rax
    mov [rsi+{INTS}+8], rax
    fucomip st, st(1)
    fnstsw ax
    mov [rsi+{SW(7)}], ax
    fstp st(0)
    fstp st(0)
    """

_FXAM = f"""
    fld {_t(IN0)}
    fxam
    fnstsw ax
    mov [rsi+{SW(0)}], ax
    fchs
    fxam
    fnstsw ax
    mov [rsi+{SW(1)}], ax
    fstp {_t(OUT(0))}
    fxam
    fnstsw ax
    mov [rsi+{SW(2)}], ax
    fld {_t(IN1)}
    fabs
    fxam
    fnstsw ax
    mov [rsi+{SW(3)}], ax
    fstp {_t(OUT(1))}
    fldz
    fld1
    fld st(1)
    ffree st(1)
    fxam
    fnstsw ax
    mov [rsi+{SW(4)}], ax
    fincstp
    fxam
    fnstsw ax
    mov [rsi+{SW(5)}], ax
    fdecstp
    fstp st(0)
    fstp st(0)
    fstp st(0)
    fnstsw ax
    mov [rsi+{SW(6)}], ax
    """

_INTCONV = f"""
    fldcw word ptr [rsi+{CW}]
    fld {_t(IN0)}
    fist word ptr [rsi+{INTS}]
    fist dword ptr [rsi+{INTS}+2]
    fistp qword ptr [rsi+{INTS}+6]
    fld {_t(IN0)}
    fistp word ptr [rsi+{OUT(0)}]
    fld {_t(IN0)}
    fistp dword ptr [rsi+{OUT(0)}+2]
    fld {_t(IN0)}
    fisttp word ptr [rsi+{OUT(1)}]
    fld {_t(IN0)}
    fisttp dword ptr [rsi+{OUT(1)}+2]
    fld {_t(IN0)}
    fisttp qword ptr [rsi+{OUT(1)}+6]
    fld {_t(IN0)}
    frndint
    fstp {_t(OUT(2))}
    fld {_t(IN1)}
    fistp qword ptr [rsi+{OUT(3)}]
    fld {_t(IN1)}
    frndint
    fstp {_t(OUT(4))}
    fldpi
    fstp {_t(OUT(5))}
    fldl2e
    fldl2t
    fldlg2
    fldln2
    fstp {_t(OUT(6))}
    fstp {_t(OUT(7))}
    fstp {_t(OUT(8))}
    fstp {_t(OUT(9))}
    fnstcw word ptr [rsi+{SW(1)}]
    fnstsw ax
    mov [rsi+{SW(0)}], ax
    mov word ptr [rsi+{SW(2)}], 0x037f
    fldcw word ptr [rsi+{SW(2)}]
    """

_LOADSTORE = f"""
    fld dword ptr [rsi+{F32}]
    fld qword ptr [rsi+{F64}]
    fild word ptr [rsi+{I32}]
    fild dword ptr [rsi+{I32}]
    fild qword ptr [rsi+{F64}]
    fld {_t(IN0)}
    fst dword ptr [rsi+{INTS}]
    fst qword ptr [rsi+{INTS}+4]
    fstp {_t(OUT(0))}
    fstp {_t(OUT(1))}
    fstp {_t(OUT(2))}
    fstp {_t(OUT(3))}
    fstp {_t(OUT(4))}
    fstp {_t(OUT(5))}
    fld {_t(IN1)}
    fstp dword ptr [rsi+{OUT(6)}]
    fld {_t(IN1)}
    fstp qword ptr [rsi+{OUT(6)}+4]
    fld {_t(IN1)}
    fld {_t(IN0)}
    fst st(1)
    fstp {_t(OUT(7))}
    fstp {_t(OUT(8))}
    fnstsw ax
    mov [rsi+{SW(0)}], ax
    """

_STACKOPS = f"""
    mov eax, [rsi+{I32}]
    fld {_t(IN1)}
    fld {_t(IN0)}
    fldpi
    fxch st(2)
    fld st(1)
    fstp st(3)
    fld st(2)
    fld st(1)
    fucomi st, st(1)
    fcmovb st, st(2)
    fcmove st, st(3)
    fstp {_t(OUT(0))}
    fld st(0)
    fucomi st, st(2)
    fcmovu st, st(2)
    fcmovnbe st, st(1)
    fstp {_t(OUT(1))}
    fld st(1)
    fucomi st, st(3)
    fcmovnb st, st(3)
    fcmovne st, st(2)
    fstp {_t(OUT(2))}
    fld st(1)
    fucomi st, st(1)
    fcmovbe st, st(1)
    fcmovnu st, st(3)
    fstp {_t(OUT(3))}
    test eax, 1
    fld st(2)
    fcmove st, st(1)
    fcmovne st, st(2)
    fstp {_t(OUT(4))}
    fstp {_t(OUT(5))}
    fstp {_t(OUT(6))}
    fstp {_t(OUT(7))}
    fstp {_t(OUT(8))}
    fnstsw ax
    mov [rsi+{SW(0)}], ax
    fld1
    fldz
    ffreep st(1)
    fxam
    fnstsw ax
    mov [rsi+{SW(1)}], ax
    fincstp
    fnstsw word ptr [rsi+{SW(2)}]
    """

_MISC = f"""
    fld {_t(IN1)}
    fld {_t(IN0)}
    fscale
    fstp {_t(OUT(0))}
    fld {_t(IN0)}
    fsqrt
    fstp {_t(OUT(1))}
    fld {_t(IN0)}
    fxtract
    fstp {_t(OUT(2))}
    fstp {_t(OUT(3))}
    fld {_t(IN0)}
    fchs
    fstp {_t(OUT(4))}
    fld {_t(IN1)}
    fabs
    fstp {_t(OUT(5))}
    fstp {_t(OUT(6))}
    fnstsw ax
    mov [rsi+{SW(0)}], ax
    """

_FPREM = f"""
    fld {_t(IN1)}
    fld {_t(IN0)}
    fprem
    fnstsw ax
    mov [rsi+{SW(0)}], ax
    fstp {_t(OUT(0))}
    fld {_t(IN0)}
    fprem1
    fnstsw ax
    mov [rsi+{SW(1)}], ax
    fstp {_t(OUT(1))}
    fld {_t(IN0)}
    xor edx, edx
2:
    inc edx
    cmp edx, 2000
    ja 4f
    fprem
    fnstsw ax
    test ah, 4
    jnz 2b
4:
    mov [rsi+{SW(2)}], ax
    fstp {_t(OUT(2))}
    fld {_t(IN0)}
3:
    inc edx
    cmp edx, 4000
    ja 5f
    fprem1
    fnstsw ax
    sahf
    jp 3b
5:
    mov [rsi+{SW(3)}], ax
    mov [rsi+{INTS}], edx
    fstp {_t(OUT(3))}
    fstp st(0)
    """

_TRANSCENDENTAL = f"""
    fld {_t(IN0)}
    fsin
    fnstsw ax
    mov [rsi+{SW(0)}], ax
    fstp {_t(OUT(0))}
    fld {_t(IN0)}
    fcos
    fstp {_t(OUT(1))}
    fld {_t(IN0)}
    fptan
    fnstsw ax
    mov [rsi+{SW(1)}], ax
    test ah, 4
    jnz 4f
    fstp {_t(OUT(9))}
4:
    fstp {_t(OUT(2))}
    fld {_t(IN0)}
    fsincos
    fnstsw ax
    mov [rsi+{SW(2)}], ax
    test ah, 4
    jnz 5f
    fstp {_t(OUT(4))}
5:
    fstp {_t(OUT(3))}
    fld {_t(IN1)}
    fld {_t(IN0)}
    fpatan
    fstp {_t(OUT(5))}
    fld {_t(IN1)}
    fld {_t(IN0)}
    fyl2x
    fstp {_t(OUT(6))}
    fld {_t(IN1)}
    fld {_t(IN0)}
    fyl2xp1
    fstp {_t(OUT(7))}
    fld {_t(IN0)}
    f2xm1
    fstp {_t(OUT(8))}
    fnstsw ax
    mov [rsi+{SW(3)}], ax
    """

_ENV = f"""
    fld {_t(IN0)}
    fld {_t(IN1)}
    fldz
    fldcw word ptr [rsi+{CW}]
    fnstenv [rsi+{OUT(0)}]
    fnstcw word ptr [rsi+{SW(0)}]
    fldenv [rsi+{OUT(0)}]
    fnstcw word ptr [rsi+{SW(1)}]
    fnstsw ax
    mov [rsi+{SW(2)}], ax
    fstp {_t(OUT(2))}
    fldcw word ptr [rsi+{OUT(0)}]
    fnstenv [rsi+{OUT(4)}]
    fldenv [rsi+{OUT(0)}]
    fnstsw ax
    mov [rsi+{SW(3)}], ax
    fstp {_t(OUT(6))}
    fstp {_t(OUT(7))}
    fstp {_t(OUT(8))}
    fninit
    fnstsw ax
    mov [rsi+{SW(4)}], ax
    fnstcw word ptr [rsi+{SW(5)}]
    """

_FLDENV = f"""
    fld {_t(IN0)}
    fld {_t(IN1)}
    fldenv [rsi+{OUT(5)}]
    fnstenv [rsi+{OUT(0)}]
    fnstsw ax
    mov [rsi+{SW(0)}], ax
    fxam
    fnstsw word ptr [rsi+{SW(1)}]
    fninit
    """

_SAVE = f"""
    fld {_t(IN0)}
    fld {_t(IN1)}
    fldpi
    fldz
    fld1
    fld dword ptr [rsi+{F32}]
    fld qword ptr [rsi+{F64}]
    fld st(3)
    fnsave [rsi+{OUT(0)}]
    fnstsw ax
    mov [rsi+{SW(0)}], ax
    fld1
    fld1
    frstor [rsi+{OUT(0)}]
    fnstsw ax
    mov [rsi+{SW(1)}], ax
    fstp st(0)
    fstp st(0)
    fstp st(0)
    fstp st(0)
    fstp st(0)
    fstp st(0)
    fstp st(0)
    fld {_t(IN1)}
    fxch st(1)
    fnstsw ax
    mov [rsi+{SW(2)}], ax
    fstp {_t(OUT(7))}
    fstp {_t(OUT(8))}
    """

_FXSAVE = f"""
    fld {_t(IN0)}
    fldz
    fld {_t(IN1)}
    fincstp
    fxsave [rsi+{FXAREA}]
    fld1
    fld1
    fninit
    fxrstor [rsi+{FXAREA}]
    fxsave64 [rsi+{FXAREA}+512]
    fxrstor64 [rsi+{FXAREA}+512]
    fdecstp
    fstp {_t(OUT(0))}
    fnstsw ax
    mov [rsi+{SW(0)}], ax
    fstp st(0)
    fstp st(0)
    """

_STACK_FAULTS = f"""
    fld {_t(IN0)}
    fld st(1)
    fstp {_t(OUT(0))}
    fld1
    fld1
    fld1
    fld1
    fld1
    fld1
    fld1
    fld {_t(IN1)}
    fstp {_t(OUT(1))}
    fstp {_t(OUT(2))}
    fstp {_t(OUT(3))}
    ffree st(0)
    fadd st, st(1)
    fnstsw ax
    mov [rsi+{SW(0)}], ax
    fninit
    """

_BCD = f"""
    fldcw word ptr [rsi+{CW}]
    fbld tbyte ptr [rsi+{IN1}]
    fld st(0)
    fstp {_t(OUT(0))}
    fbstp tbyte ptr [rsi+{OUT(1)}]
    fld {_t(IN0)}
    fbstp tbyte ptr [rsi+{OUT(2)}]
    fbld tbyte ptr [rsi+{OUT(2)}]
    fstp {_t(OUT(3))}
    fld {_t(IN0)}
    fchs
    fbstp tbyte ptr [rsi+{OUT(4)}]
    fnstsw ax
    mov [rsi+{SW(0)}], ax
    mov word ptr [rsi+{SW(2)}], 0x037f
    fldcw word ptr [rsi+{SW(2)}]
    """

_UNSUPPORTED = f"""
    fld {_t(IN1)}
    fld {_t(IN0)}
    fadd st, st(1)
    fstp {_t(OUT(0))}
    fld {_t(IN0)}
    fmul st, st(1)
    fstp {_t(OUT(1))}
    fld {_t(IN0)}
    fsqrt
    fstp {_t(OUT(2))}
    fld {_t(IN0)}
    frndint
    fstp {_t(OUT(3))}
    fld {_t(IN0)}
    fistp qword ptr [rsi+{INTS}]
    fld {_t(IN0)}
    fscale
    fstp {_t(OUT(4))}
    fld {_t(IN0)}
    fxtract
    fstp {_t(OUT(5))}
    fstp {_t(OUT(6))}
    fld {_t(IN0)}
    fprem
    fstp {_t(OUT(7))}
    fld {_t(IN0)}
    fcom st(1)
    fnstsw ax
    mov [rsi+{SW(1)}], ax
    fstp dword ptr [rsi+{OUT(8)}]
    fld {_t(IN0)}
    fstp qword ptr [rsi+{OUT(8)}+4]
    fld {_t(IN0)}
    fchs
    fstp {_t(OUT(9))}
    fld st(0)
    fld {_t(IN0)}
    fprem1
    fstp st(1)
    fscale
    fstp {_t(INTS)}
    fstp st(0)
    fnstsw ax
    mov [rsi+{SW(0)}], ax
    """

ARITH_OPS = ("fadd", "fsub", "fsubr", "fmul", "fdiv", "fdivr")

# the control word back to the default after a body that loads another
_DEFAULT_CW = f"""
    mov word ptr [rsi+{INTS}+12], 0x037F
    fldcw word ptr [rsi+{INTS}+12]
    """


def _controlled_body(op: str) -> str:
    """Every form of ``op`` under the record's control word (precision
    and rounding control), and fst to m32/m64 of its result."""
    return f"""
    fldcw word ptr [rsi+{CW}]
    {_arith_body(op)}
    fld {_t(IN1)}
    fld {_t(IN0)}
    {op} st, st(1)
    fst dword ptr [rsi+{INTS}]
    fstp qword ptr [rsi+{INTS}+4]
    fstp st(0)
    {_DEFAULT_CW}
    """


_CONTROLLED_MISC = f"""
    fldcw word ptr [rsi+{CW}]
    fld {_t(IN0)}
    fsqrt
    fstp {_t(OUT(0))}
    fld {_t(IN1)}
    fsqrt
    fstp {_t(OUT(1))}
    fld {_t(IN0)}
    fst dword ptr [rsi+{OUT(2)}]
    fst qword ptr [rsi+{OUT(2)}+4]
    fstp {_t(OUT(3))}
    fld {_t(IN1)}
    fstp dword ptr [rsi+{OUT(4)}]
    fld {_t(IN1)}
    fstp qword ptr [rsi+{OUT(4)}+4]
    fnstsw ax
    mov [rsi+{SW(0)}], ax
    {_DEFAULT_CW}
    """

BODIES = {f"arith_{op}": _arith_body(op) for op in ARITH_OPS}
BODIES.update({f"controlled_{op}": _controlled_body(op) for op in ARITH_OPS})
BODIES["controlled_misc"] = _CONTROLLED_MISC
BODIES.update(compare=_COMPARE, fxam=_FXAM, intconv=_INTCONV, loadstore=_LOADSTORE,
              stackops=_STACKOPS, misc=_MISC, fprem=_FPREM, transcendental=_TRANSCENDENTAL,
              env=_ENV, save=_SAVE, fxsave=_FXSAVE, stack_faults=_STACK_FAULTS,
              bcd=_BCD, fldenv=_FLDENV,
              unsupported=_UNSUPPORTED)


REC_OF = {"fxsave": REC_FXSAVE}


def _loop(body: str, size: int) -> str:
    return f"""
1:
{body}
    add rsi, {size}
    dec ecx
    jnz 1b
    """


@lru_cache(maxsize=1)
def _code() -> dict[str, bytes]:
    return dict(zip(BODIES, N.assemble([_loop(v, REC_OF.get(k, REC)) for k, v in BODIES.items()])))


# -- running and comparing ----------------------------------------------------
def _masks(sw_mask: int, extra: dict[tuple[int, int], int] | None, size: int) -> bytes:
    m = bytearray(b"\xff" * size)
    for k in range(8):
        m[SW(k):SW(k) + 2] = sw_mask.to_bytes(2, "little")
    m[FLAGS:FLAGS + 8] = ARITH_FLAGS.to_bytes(8, "little")
    for (off, size), mask in (extra or {}).items():
        m[off:off + size] = mask.to_bytes(size, "little")
    return bytes(m)


def run_both(name: str, recs: list[dict], sw_mask: int = SW_CC_TOP,
             extra_masks: dict[tuple[int, int], int] | None = None) -> None:
    size = REC_OF.get(name, REC)
    assert 0 < len(recs) * size < DATA_SIZE
    code = _code()[name]
    data = pack(recs, size)
    regs = {"rcx": len(recs), "rsi": DATA_ADDR}
    ndata = N.run_native(code, regs, data=data).data
    res = N.run_translated(code, regs, data=data, reuse=False)
    assert res.fault == 0 and res.host_signal == 0, (res.fault, res.host_signal)
    assert not res.untranslatable, res.untranslatable
    mask = _masks(sw_mask, extra_masks, size)
    for i, r in enumerate(recs):
        a = ndata[i * size:(i + 1) * size]
        b = res.data[i * size:(i + 1) * size]
        bad = [j for j in range(size) if (a[j] ^ b[j]) & mask[j]]
        if bad:
            lo, hi = bad[0] & ~15, (bad[-1] | 15) + 1
            raise AssertionError(
                f"{name}: record {i} (in0={r['in0']:#022x} in1={r['in1']:#022x} "
                f"f32={r.get('f32')} i32={r.get('i32')} f64={r.get('f64')} cw={r.get('cw', 0):#x}) "
                f"differs at offsets {bad[:12]}\n native: {a[lo:hi].hex(' ', 2)}\n transl: {b[lo:hi].hex(' ', 2)}")
    end = len(recs) * size
    assert ndata[end:end + size] == res.data[end:end + size]


def corner_records(values=SPECIALS, **extra) -> list[dict]:
    recs = [dict(in0=a, in1=b, f32=-1.5, i32=-3, f64=0.25, cw=0x037F, **extra)
            for a in values for b in values]
    return recs


def _chunks(recs: list[dict], n: int = MAX_RECORDS):
    for i in range(0, len(recs), n):
        yield recs[i:i + n]


PROPERTY = settings(max_examples=examples(15), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
RECORD_LISTS = st.lists(records(), min_size=1, max_size=40)

# -- tests ----------------------------------------------------------------------


@pytest.mark.parametrize("op", ARITH_OPS)
def test_arith_corners(op):
    for chunk in _chunks(corner_records()):
        run_both(f"arith_{op}", chunk, sw_mask=SW_NO_C1)


# NaNs in memory (m64 and m32, signalling and quiet, of both signs and
# several significands) against NaNs and numbers in ST(0): between two
# NaNs the x87 chooses by kind, then significand, then sign, from the
# operands as they were, before widening quieted the memory one.
_MEM_NANS = [(0x7FF4_0000_0000_0000, 0x7FA0_0000), (0xFFF4_0000_0000_0000, 0xFFA0_0000),
             (0x7FF0_0000_0000_0001, 0x7F80_0001), (0xFFF7_FFFF_FFFF_FFFF, 0xFFBF_FFFF),
             (0x7FF8_0000_0000_0000, 0x7FC0_0000), (0xFFFC_0000_0000_0001, 0xFFE0_0001)]
_ST0_NANS = [QNAN, SNAN, QNAN | SIGN, INDEF, ONE, f80(0, 0x7FFF, 0xA000_0000_0000_0000),
             f80(1, 0x7FFF, 0xBFFF_FFFF_FFFF_FFFF), f80(0, 0x7FFF, 0xFFFF_FFFF_FFFF_F800)]


@pytest.mark.parametrize("op", ARITH_OPS)
def test_arith_memory_nans(op):
    recs = [dict(in0=a, in1=ONE, cw=0x037F,
                 raw={F64: m64.to_bytes(8, "little"), F32: m32.to_bytes(4, "little")})
            for a in _ST0_NANS for m64, m32 in _MEM_NANS]
    for chunk in _chunks(recs):
        run_both(f"arith_{op}", chunk, sw_mask=SW_NO_C1)


@pytest.mark.parametrize("op", ARITH_OPS)
@PROPERTY
@given(recs=RECORD_LISTS)
def test_arith(op, recs):
    run_both(f"arith_{op}", recs, sw_mask=SW_NO_C1)


# every precision control (24, reserved, 53, 64 bits) with every rounding
# control, exceptions masked
CW_PC_RC = [0x007F | pc << 8 | rc << 10 for pc in (0, 1, 2, 3) for rc in (0, 1, 2, 3)]
_ROUNDING_VALUES = [ONE, ONE ^ SIGN, f80(0, BIAS, INT_BIT | 0x5555_5555_5555_5555),
                    f80(1, BIAS + 40, INT_BIT | 0x0000_0000_0123_4567),
                    f80(0, BIAS - 1, INT_BIT | 0x7FFF_FFFF_FFFF_FFFF),
                    f80(0, 1, INT_BIT | 3), f80(1, 0, 0x4000_0000_0000_0001),
                    f80(0, 0x7FFE, INT_BIT | 0xFFFF_FFFF_FFFF_FFFF), QNAN, INF]


@pytest.mark.parametrize("op", ARITH_OPS)
def test_controlled_arith_corners(op):
    """Precision and rounding control of the arithmetic and of fst m32/m64
    (the host's x87 under the guest's control word, out of line)."""
    recs = [dict(in0=a, in1=b, f32=0.1, i32=7, f64=1.0 / 3, cw=cw)
            for cw in CW_PC_RC for a in _ROUNDING_VALUES for b in _ROUNDING_VALUES[::3]]
    for chunk in _chunks(recs):
        run_both(f"controlled_{op}", chunk, sw_mask=SW_NO_C1)


@pytest.mark.parametrize("op", ARITH_OPS)
@PROPERTY
@given(recs=st.lists(records(cw=st.sampled_from(CW_PC_RC)), min_size=1, max_size=40))
def test_controlled_arith(op, recs):
    run_both(f"controlled_{op}", recs, sw_mask=SW_NO_C1)


@PROPERTY
@given(recs=st.lists(records(cw=st.sampled_from(CW_PC_RC)), min_size=1, max_size=40))
def test_controlled_sqrt_and_stores(recs):
    recs += [dict(in0=a, in1=a ^ SIGN, cw=cw) for cw in CW_PC_RC for a in _ROUNDING_VALUES]
    for chunk in _chunks(recs):
        run_both("controlled_misc", chunk, sw_mask=SW_NO_C1)


def test_compare_corners():
    for chunk in _chunks(corner_records()):
        run_both("compare", chunk)


@PROPERTY
@given(recs=RECORD_LISTS)
def test_compare(recs):
    run_both("compare", recs)


# fxam of an empty register reports the stale register's sign in C1
_FXAM_MASKS = {(SW(2), 2): SW_NO_C1, (SW(4), 2): SW_NO_C1, (SW(5), 2): SW_NO_C1}
_STACKOPS_MASKS = {(SW(1), 2): SW_NO_C1}


@settings(max_examples=examples(4), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=st.lists(records(), min_size=1, max_size=60))
def test_fxam(recs):
    recs = recs + corner_records()[:len(SPECIALS)]
    unsupported = [f80(0, 5, 1), f80(1, 0x7FFF, 0x4000_0000_0000_0001), f80(0, 0x7FFF, 0),
                   f80(0, 0, INT_BIT)]   # unnormal, pseudo-NaN, pseudo-inf, pseudo-denormal
    recs += [dict(in0=v, in1=v) for v in unsupported]
    run_both("fxam", recs, extra_masks=_FXAM_MASKS)


def test_intconv_corners():
    vals = SPECIALS + [int_to_f80(n) for n in (32767, -32768, 32768, -32769, (1 << 31) - 1,
                                               -(1 << 31), 1 << 31, (1 << 63) - 1, -(1 << 63))]
    vals += [float_to_f80(x) for x in (0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999, 1e-10, -1e-10,
                                       32767.5, -32768.5, -32767.5, 2147483647.5, 1e19, -1e19)]
    vals += [f80(0, BIAS + 62, (1 << 64) - 1), f80(1, BIAS + 62, (1 << 64) - 1),
             f80(1, BIAS + 63, INT_BIT | 1), f80(1, BIAS + 62, INT_BIT | 1)]
    recs = [dict(in0=v, in1=v ^ SIGN, cw=cw) for v in vals
            for cw in (0x037F, 0x077F, 0x0B7F, 0x0F7F)]
    for chunk in _chunks(recs):
        run_both("intconv", chunk, sw_mask=SW_NO_C1)


@PROPERTY
@given(recs=st.lists(records(values=fp80_intish, cw=cw_rc), min_size=1, max_size=60))
def test_intconv(recs):
    run_both("intconv", recs, sw_mask=SW_NO_C1)


@PROPERTY
@given(recs=RECORD_LISTS)
def test_loadstore(recs):
    run_both("loadstore", recs + corner_records()[::len(SPECIALS) + 1], sw_mask=SW_NO_C1)


@PROPERTY
@given(recs=st.lists(records(), min_size=1, max_size=60))
def test_stackops(recs):
    run_both("stackops", recs + corner_records()[::7], extra_masks=_STACKOPS_MASKS)


def test_misc_corners():
    for chunk in _chunks(corner_records()):
        run_both("misc", chunk, sw_mask=SW_NO_C1)


@PROPERTY
@given(recs=RECORD_LISTS)
def test_misc(recs):
    run_both("misc", recs, sw_mask=SW_NO_C1)


_FPREM_VALUES = st.one_of(fp80_any, _normal(BIAS - 200, BIAS + 200), _normal(BIAS - 70, BIAS + 70))


def test_fprem_corners():
    vals = SPECIALS + [float_to_f80(x) for x in (5.0, 3.0, -7.5, 2.0, 0.75, 1e30, 6.0, 4.5)]
    vals += [f80(0, BIAS + 64, INT_BIT), f80(0, BIAS + 200, INT_BIT | 12345)]
    for chunk in _chunks(corner_records(vals)):
        run_both("fprem", chunk)


@PROPERTY
@given(recs=st.lists(records(values=_FPREM_VALUES), min_size=1, max_size=40))
def test_fprem(recs):
    run_both("fprem", recs)


# C1 after the transcendental instructions is the host's rounding indication:
# the translation runs the very host instruction, so it is compared too.
@settings(max_examples=examples(4), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=st.lists(records(), min_size=1, max_size=40))
def test_transcendental(recs):
    run_both("transcendental", recs + corner_records()[::5])


_ENV_MASKS = {
    # fnstenv: instruction/operand pointers and opcode are not tracked
    (OUT(0) + 12, 12): 0, (OUT(0) + 24, 2): 0,
    (OUT(4) + 12, 12): 0, (OUT(4) + 24, 2): 0,
    # and the sticky exception bits are not modelled
    (OUT(0) + 4, 2): SW_CC_TOP, (OUT(4) + 4, 2): SW_CC_TOP,
}


@PROPERTY
@given(recs=st.lists(records(cw=st.integers(0, 0xFFFF)), min_size=1, max_size=40))
def test_env(recs):
    run_both("env", recs + corner_records()[::9], extra_masks=_ENV_MASKS)


@settings(max_examples=examples(3), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=st.lists(records(), min_size=1, max_size=40))
def test_save(recs):
    run_both("save", recs + corner_records()[::11],
             extra_masks={(OUT(0) + 12, 12): 0, (OUT(0) + 24, 2): 0,
                          (OUT(0) + 4, 2): SW_CC_TOP})


def test_fxsave():
    recs = corner_records()[::17]
    # FOP, FIP, FDP are not tracked; MXCSR_MASK is host-specific
    masks = {}
    for img in (FXAREA, FXAREA + 512):
        masks.update({(img + 6, 18): 0, (img + 28, 4): 0, (img + 2, 2): SW_CC_TOP})
    run_both("fxsave", recs, extra_masks=masks)


def test_stack_faults():
    # the sticky IE/SF bits and C1 of stack faults are not modelled
    run_both("stack_faults", corner_records()[::4], sw_mask=SW_NO_C1)


def bcd(sign: int, digits: list[int]) -> int:
    v = sign << 79
    for k, d in enumerate(digits):
        v |= d << (4 * k)
    return v


_BCD_VALUES = st.builds(bcd, st.integers(0, 1), st.lists(st.integers(0, 9), min_size=18, max_size=18))
_BIG_INTS = st.one_of(st.integers(-(10 ** 18) - 5, 10 ** 18 + 5).map(int_to_f80),
                      st.sampled_from([int_to_f80(10 ** 18), int_to_f80(10 ** 18 - 1),
                                       int_to_f80(-(10 ** 18) + 1), float_to_f80(999999999999999999.5),
                                       float_to_f80(-0.4)]))


@PROPERTY
@given(recs=st.lists(st.builds(lambda a, b, cw: dict(in0=a, in1=b, cw=cw),
                               st.one_of(fp80_intish, _BIG_INTS, fp80_any), _BCD_VALUES, cw_rc),
                     min_size=1, max_size=60))
def test_bcd(recs):
    recs += [dict(in0=v, in1=bcd(v & 1, [9] * 18), cw=0x037F) for v in SPECIALS]
    run_both("bcd", recs, sw_mask=SW_NO_C1)


def _env_image(cw: int, sw: int, tw: int) -> bytes:
    # all exceptions masked and no error summary: nothing may fault natively
    return struct.pack("<IIIIIII", cw | 0x3F | 0xFFFF0000, sw & 0x7F7F | 0xFFFF0000,
                       tw | 0xFFFF0000, 0, 0, 0, 0xFFFF0000)


@PROPERTY
@given(recs=st.lists(st.builds(
    lambda a, b, cw, sw, tw: dict(in0=a, in1=b, raw={OUT(5): _env_image(cw, sw, tw)}),
    fp80_any, fp80_any, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
    min_size=1, max_size=40))
def test_fldenv(recs):
    # fxam may look at an empty register (stale sign in C1)
    run_both("fldenv", recs, extra_masks={**_ENV_MASKS, (SW(1), 2): SW_NO_C1})


UNSUPPORTED = [f80(0, 5, 1), f80(1, BIAS, 0x4000_0000_0000_0000), f80(0, BIAS + 3, 0),
               f80(1, 0x7FFF, 0x4000_0000_0000_0001), f80(0, 0x7FFF, 0),
               f80(0, 0x7FFF, 0x0000_0000_0000_0001), f80(0, 0, INT_BIT), f80(1, 0, INT_BIT | 5)]


def test_unsupported_encodings():
    """Unnormals, pseudo-NaN/infinity and pseudo-denormals as operands."""
    vals = SPECIALS[:12]
    recs = [dict(in0=u, in1=v) for u in UNSUPPORTED for v in vals]
    recs += [dict(in0=v, in1=u) for u in UNSUPPORTED for v in vals]
    run_both("unsupported", recs, sw_mask=SW_NO_C1)

"""Differential tests of the VEX-encoded AVX, AVX2, FMA and F16C forms
(translator/vex.py, avxtable.py, semantics/avx.py) under the x86-64-v3 CPU
model: each form runs on the host CPU (native.py's oracle, which saves and
loads whole ymm registers with xsave/xrstor) and translated from the same
state; the GPRs, the flags, ymm0-15 (xmm and upper halves: a VEX.128 write
zeroes bits 255:128 of its destination, a legacy SSE write keeps them),
MXCSR (but its exception flags) and the data area must agree.

The forms are one table, ``FORMS`` (a failing form names itself: its test
id is its assembly text).  Each runs from ``INPUTS`` states drawn by a
Random seeded with the form's text, so every run (and every host) sees the
same inputs: all 16 ymm registers with lanes weighted towards edge values
(all-ones, sign bits, 0x80, boundaries; NaNs, infinities, denormals, -0.0
for the float forms), shared lanes between registers (so compares and
min/max meet equal values), a data area of the same values at ``DATA_ADDR``
(rsi points at it, rdi 0x100 bytes in, r8 0x100 bytes in for gathers), the
arithmetic flags and, for the float forms, MXCSR.RC.

Recorded oracles: ``tests/data/avx_expected.json`` holds, per case
(``"<form> #<input>"``), what the native run changed of the starting state
(the GPRs, ymm registers, flags, MXCSR and data bytes that differ, as hex)
and a checksum of the code and input (``in``).  A case the host CPU cannot
run (no AVX2, FMA, F16C, ...; or ``BTTOOL_AVX_RECORDED=1``) is compared
against the recording instead; ``test_recording_agrees_with_host`` checks
every recorded case against the host when it has the features, so the file
cannot go stale silently.  Regenerate it on such a host with
``python tests/record_avx.py``.

Also here: a VEX instruction under x86-64-v2 is #UD (SIGILL), and ``xgetbv``
and CPUID's AVX/AVX2 bits follow the model (translated only: the host's
answers are its own).
"""
from __future__ import annotations

import json
import os
import random
import signal
import struct
import sys
import zlib
from dataclasses import dataclass, field
from typing import Callable

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import native as N  # noqa: E402
from bttool.ir import state as S  # noqa: E402
from bttool.runtime import cpuid  # noqa: E402
from bttool.translator import cpumodel  # noqa: E402

pytestmark = pytest.mark.skipif(not N.have_toolchain(), reason="needs GNU as, objcopy and nm")

INPUTS = 4                              # input states per form (recorded: do not change lightly)
RECORDING = os.path.join(_HERE, "data", "avx_expected.json")
FORCE_RECORDED = os.environ.get("BTTOOL_AVX_RECORDED", "") not in ("", "0")
ALL_FLAGS = N.ARITH | N.DF
M8, M16, M32, M64, M128, M256 = ((1 << b) - 1 for b in (8, 16, 32, 64, 128, 256))
STORE_OFF = 0x100                        # rdi (stores) and r8 (gather base) point here
DATA_LEN = 0x200                         # the part of the data area the inputs fill


@pytest.fixture(scope="module", autouse=True)
def v3_model():
    """Translate under x86-64-v3, and restore the previous model afterwards."""
    with N.cpu_model(cpumodel.V3):
        yield


# ---------------------------------------------------------------------------
# lane values


def _f32(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def _f64(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


_NICE = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, 2.5, -2.5, 3.0, 0.1, 1 / 3, -7.75, 1e10, -1e-10,
         2.0 ** 31, -2.0 ** 31, 2.0 ** 31 - 1, -2.0 ** 31 - 1, 2.0 ** 31 - 0.5, 2.0 ** 63,
         -2.0 ** 63, 2.0 ** 32, 4294967295.5, 1e300, -1e300, 1e-300, 65504.0, 65520.0, 6e-8]
# finite specials (no NaN, no infinity): for forms whose NaN choice is left
# to the implementation (vdpps: tests/implementation_defined.py)
FIN_F32 = sorted({_f32(x) for x in _NICE if abs(x) < 3e38 and (x == 0 or abs(x) > 1e-38)} | {
    0x00000001, 0x80000001, 0x007FFFFF, 0x00800000, 0x80800000, 0x7F7FFFFF, 0xFF7FFFFF})
SPECIAL_F32 = sorted(set(FIN_F32) | {0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7FA00001,
                                      0xFF800001, 0x7FFFFFFF, 0x7FC12345})
FIN_F64 = sorted({_f64(x) for x in _NICE} | {
    0x0000000000000001, 0x8000000000000001, 0x000FFFFFFFFFFFFF, 0x0010000000000000,
    0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF, 0x43E0000000000000, 0xC3E0000000000000,
    0x41E0000000000000, 0xC1E0000000000000, 0x3FF0000000000001, 0x47EFFFFFE0000000,
    0x36A0000000000000})
SPECIAL_F64 = sorted(set(FIN_F64) | {
    0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000000, 0xFFF8000000000000,
    0x7FF4000000000001, 0xFFF0000000000001, 0x7FF8000000000123})
SPECIAL_F16 = [0x0000, 0x8000, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0xFE00,
               0x7D00, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3555, 0x4248, 0x7E01]
STR8 = [0, 0, 0x41, 0x42, 0x43, 0x61, 0x30, 0x7F, 0x80, 0xFF]
STR16 = [0, 0, 0x41, 0x42, 0x4142, 0x7FFF, 0x8000, 0xFFFF, 0x8041]


def _int_edges(bits: int) -> list[int]:
    m = (1 << bits) - 1
    top = 1 << (bits - 1)
    return sorted({v & m for v in (0, 1, 2, m, m - 1, top, top - 1, top + 1, 0x7F, 0x80, 0xFF,
                                   0x100, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000)})


_EDGES = {b: _int_edges(b) for b in (8, 16, 32, 64)}


def _pack(lanes: list[int], bits: int) -> int:
    return sum((x & ((1 << bits) - 1)) << (i * bits) for i, x in enumerate(lanes))


def _lanes(v: int, bits: int) -> list[int]:
    return [(v >> (i * bits)) & ((1 << bits) - 1) for i in range(256 // bits)]


def _nice_float(rng: random.Random) -> float:
    r = rng.random()
    if r < 0.3:
        return float(rng.randint(-300, 300))
    if r < 0.5:
        return rng.randint(-40, 40) + 0.5
    return rng.choice([-1, 1]) * rng.uniform(1, 2) * 2.0 ** rng.randint(-30, 40)


def _float_lane(rng: random.Random, bits: int, specials: list[int]) -> int:
    if rng.random() < 0.45:
        return rng.choice(specials)
    x = _nice_float(rng)
    return _f32(x) if bits == 32 else _f64(x)


def _count_lane(rng: random.Random, bits: int) -> int:
    """A per-lane shift count: mostly in range, sometimes at or past the width."""
    r = rng.random()
    if r < 0.7:
        return rng.randint(0, bits - 1)
    if r < 0.85:
        return rng.choice([bits, bits + 1, 255, 1 << (bits - 1)])
    return rng.getrandbits(bits)


def _value(rng: random.Random, kind: str, base: int) -> int:
    """One 256-bit register or memory value of ``kind``.  ``base``: the
    input's shared value, whose lane (at the same position) each lane
    takes with some probability, so that registers meet equal lanes."""
    if kind == "int":
        bits = rng.choice([8, 16, 32, 64])
        if rng.random() < 0.15:
            return rng.getrandbits(256)
        out = []
        for i, b in enumerate(_lanes(base, bits)):
            r = rng.random()
            out.append(b if r < 0.25 else rng.choice(_EDGES[bits]) if r < 0.6
                       else rng.getrandbits(bits))
        return _pack(out, bits)
    if kind in ("f32", "f64", "f32fin", "f64fin"):
        bits = 32 if kind.startswith("f32") else 64
        specials = {"f32": SPECIAL_F32, "f64": SPECIAL_F64, "f32fin": FIN_F32,
                    "f64fin": FIN_F64}[kind]
        return _pack([b if rng.random() < 0.3 else _float_lane(rng, bits, specials)
                      for b in _lanes(base, bits)], bits)
    if kind == "f16":
        return _pack([rng.choice(SPECIAL_F16) if rng.random() < 0.5 else rng.getrandbits(16)
                      for _ in range(16)], 16)
    if kind == "count":         # a shift count in the low quadword (vpsllw ... xmm)
        lo = rng.choice([rng.randint(0, 70), rng.randint(0, 16), rng.randint(0, 33),
                         rng.choice([127, 128, 255, 1 << 32, M64])])
        return lo | rng.getrandbits(192) << 64
    if kind in ("vcount32", "vcount64"):
        bits = int(kind[-2:])
        return _pack([_count_lane(rng, bits) for _ in range(256 // bits)], bits)
    if kind in ("str8", "str16"):
        bits = int(kind[3:])
        return _pack([rng.choice(STR8 if bits == 8 else STR16) for _ in range(256 // bits)], bits)
    if kind in ("mask32", "mask64"):
        bits = int(kind[4:])
        return _pack([rng.choice([0, (1 << bits) - 1, 1 << (bits - 1), (1 << (bits - 1)) - 1,
                                  rng.getrandbits(bits)]) for _ in range(256 // bits)], bits)
    raise ValueError(kind)


def _base(rng: random.Random, kind: str) -> int:
    if kind.startswith("f32"):
        return _pack([_float_lane(rng, 32, SPECIAL_F32 if kind == "f32" else FIN_F32)
                      for _ in range(8)], 32)
    if kind.startswith("f64"):
        return _pack([_float_lane(rng, 64, SPECIAL_F64 if kind == "f64" else FIN_F64)
                      for _ in range(4)], 64)
    return rng.getrandbits(256)


def _gpr(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.3:
        return rng.choice([0, 1, M64, 0x80000000, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 63, (1 << 63) - 1,
                           0xFFFFFFFF80000000, 0x100000000, 12345, 0x80, 0xFF7F])
    if r < 0.6:
        return rng.randint(-100000, 100000) & M64
    return rng.getrandbits(64)


# ---------------------------------------------------------------------------
# the forms


@dataclass
class Form:
    asm: str
    kind: str = "int"                       # ymm and data values
    over: dict = field(default_factory=dict)    # ymm index -> kind
    data_kind: str | None = None            # default: kind
    rc: bool = False                        # draw MXCSR.RC
    prep: Callable | None = None            # prep(rng, inp, k): fixes up input k
    flags: int = ALL_FLAGS                  # rflags bits that must agree
    tag: str = ""                           # tells apart forms with the same text

    @property
    def name(self) -> str:
        return self.asm + (f" [{self.tag}]" if self.tag else "")


FORMS: list[Form] = []
# register numbers for (d, a, b, c) of a template, chosen by the template's
# text: high registers, and some with a destination that is also a source
_REGSETS = [(1, 2, 3, 4), (9, 14, 4, 0), (15, 0, 8, 11), (3, 11, 12, 5), (6, 6, 7, 2),
            (10, 5, 13, 1), (12, 3, 3, 9), (0, 15, 1, 6), (7, 8, 2, 14), (13, 4, 10, 15),
            (8, 13, 6, 3), (11, 9, 5, 12), (2, 10, 9, 8), (14, 1, 11, 7), (5, 7, 15, 13),
            (4, 12, 0, 10)]


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


def _regs_of(tmpl: str, width: int, salt: object = "") -> tuple[int, int, int, int]:
    return _REGSETS[_crc(f"{tmpl}/{width}{salt}") % len(_REGSETS)]


def _expand(tmpl: str, width: int, salt: object = "") -> str:
    """``tmpl`` with its operands filled in (see ``V``); ``salt`` picks
    other registers for the same template."""
    d, a, b, c = _regs_of(tmpl, width, salt)
    p = "xmm" if width == 128 else "ymm"
    size = "xmmword" if width == 128 else "ymmword"
    return tmpl.format(d=f"{p}{d}", a=f"{p}{a}", b=f"{p}{b}", c=f"{p}{c}",
                       xd=f"xmm{d}", xa=f"xmm{a}", xb=f"xmm{b}", xc=f"xmm{c}",
                       M=f"{size} ptr [rsi+0x20]", S=f"{size} ptr [rdi+0x20]")


def F(asm: str, kind: str = "int", **kw) -> None:
    """One form, written out."""
    FORMS.append(Form(asm, kind, **kw))


def V(tmpl: str, kind: str = "int", widths: tuple = (128, 256), mem: bool | int = True,
      roles: dict | None = None, **kw) -> None:
    """A template in its 128- and 256-bit forms: ``{d} {a} {b} {c}`` are
    registers of the width (``{xd}`` ...: the xmm of the same number),
    ``{M}`` a memory source of the width, ``{S}`` a memory destination.
    ``mem``: also the form with ``{b}`` as a memory source (True: the
    widest form only; 2: every width).
    ``roles``: value kinds of operands by role ("b": "vcount32", ...)."""
    for w in widths:
        forms = [tmpl]
        if mem and "{b}" in tmpl and (mem == 2 or w == max(widths)):
            forms.append(tmpl.replace("{b}", "{M}"))
        for t in forms:
            regs = dict(zip("dabc", _regs_of(t, w)))
            over = {regs[r]: k for r, k in (roles or {}).items()}
            FORMS.append(Form(_expand(t, w), kind, over=over, **kw))


# ---- moves
for op, kind in (("vmovdqu", "int"), ("vmovdqa", "int"), ("vmovups", "f32"), ("vmovaps", "f32"),
                 ("vmovupd", "f64"), ("vmovapd", "f64")):
    V(op + " {d}, {b}", kind, mem=2)
    V(op + " {S}, {a}", kind)
    if op.endswith("u") or op in ("vmovups", "vmovupd"):
        F(op + " ymm5, ymmword ptr [rsi+3]", kind)
        F(op + " xmmword ptr [rdi+0x9], xmm14", kind)
F("vmovd xmm1, eax")
F("vmovd xmm9, dword ptr [rsi+4]")
F("vmovd ecx, xmm3")
F("vmovd dword ptr [rdi+8], xmm12")
F("vmovq xmm1, rax")
F("vmovq xmm10, qword ptr [rsi+8]")
F("vmovq rcx, xmm3")
F("vmovq qword ptr [rdi], xmm5")
F("vmovq xmm2, xmm7")
for op, kind in (("vmovss", "f32"), ("vmovsd", "f64")):
    size = "dword" if op == "vmovss" else "qword"
    F(f"{op} xmm1, {size} ptr [rsi+4]", kind)
    F(f"{op} xmm13, {size} ptr [rsi+0x18]", kind)
    F(f"{op} {size} ptr [rdi+4], xmm9", kind)
    F(f"{op} xmm3, xmm4, xmm5", kind)
    F(f"{op} xmm8, xmm8, xmm15", kind)

# ---- integer arithmetic, compares, logic
for op in ("vpaddb", "vpaddw", "vpaddd", "vpaddq", "vpsubb", "vpsubw", "vpsubd", "vpsubq",
           "vpaddsb", "vpaddusb", "vpsubusw", "vpcmpeqb", "vpcmpeqw", "vpcmpeqd", "vpcmpeqq",
           "vpcmpgtb", "vpcmpgtw", "vpcmpgtd", "vpcmpgtq", "vpminub", "vpminsb", "vpmaxub",
           "vpmaxsd", "vpminud", "vpand", "vpandn", "vpor", "vpxor"):
    V(op + " {d}, {a}, {b}")
F("vpxor xmm3, xmm3, xmm3")
F("vpxor ymm11, ymm11, ymm11")
F("vpcmpeqd ymm4, ymm4, ymm4")
for op, kind in (("vandps", "f32"), ("vorpd", "f64"), ("vxorps", "f32")):
    V(op + " {d}, {a}, {b}", kind)
F("vxorps ymm4, ymm4, ymm4")
F("vxorps xmm15, xmm15, xmm15")
F("vpmovmskb eax, xmm3")
F("vpmovmskb ecx, ymm12")
F("vpmovmskb r9d, ymm0")
F("vmovmskps eax, xmm5", "f32")
F("vmovmskps edx, ymm9", "f32")
F("vmovmskpd ecx, xmm2", "f64")
F("vmovmskpd eax, ymm14", "f64")


def _ptest_prep(d: int, s: int) -> Callable:
    def prep(rng, inp, k):
        if k == 0:
            inp.ymm[s] = 0                                  # ZF and CF
        elif k == 1:
            inp.ymm[s] = inp.ymm[d] & rng.getrandbits(256)  # CF only
        elif k == 2:
            inp.ymm[s] = ~inp.ymm[d] & M256                 # ZF only
    return prep


F("vptest xmm1, xmm2", prep=_ptest_prep(1, 2))
F("vptest ymm1, ymm2", prep=_ptest_prep(1, 2))
F("vptest ymm13, ymm7", prep=_ptest_prep(13, 7))
F("vptest ymm6, ymmword ptr [rsi+0x20]")
F("vptest xmm9, xmmword ptr [rsi]")

# ---- shuffles, permutes, packs, unpacks
V("vpshufb {d}, {a}, {b}")
V("vpshufd {d}, {b}, 0x1b")
V("vpshufd {d}, {b}, 0x4e", mem=False)
V("vpshufhw {d}, {b}, 0x1b", mem=False)
V("vpshuflw {d}, {b}, 0x93")
for imm in (0, 5, 16, 20):
    V(f"vpalignr {{d}}, {{a}}, {{b}}, {imm}", mem=imm == 5)
for op in ("vpunpcklbw", "vpunpckhbw", "vpunpckldq", "vpunpckhqdq", "vpacksswb", "vpackuswb",
           "vpackusdw"):
    V(op + " {d}, {a}, {b}")

# ---- shifts
for op, imms in (("vpsllw", (3, 16)), ("vpslld", (7, 32)), ("vpsllq", (1, 63)),
                 ("vpsrlw", (15, 17)), ("vpsrld", (31, 1)), ("vpsrlq", (40, 64)),
                 ("vpsraw", (9, 16)), ("vpsrad", (31, 33))):
    for imm in imms:
        V(f"{op} {{d}}, {{a}}, {imm}")
    # the count: the low quadword of an xmm register (of any width form)
    V(op + " {d}, {a}, {xc}", mem=False, roles={"c": "count"})
for w in (128, 256):
    F(_expand("vpsrlq {d}, {a}, xmmword ptr [rsi+0x20]", w), data_kind="count")
    F(_expand("vpsraw {d}, {a}, xmmword ptr [rsi]", w), data_kind="count")
for op, imms in (("vpslldq", (3, 16)), ("vpsrldq", (5, 15))):
    for imm in imms:
        V(f"{op} {{d}}, {{a}}, {imm}")
for op, kind in (("vpsllvd", "vcount32"), ("vpsllvq", "vcount64"), ("vpsrlvd", "vcount32"),
                 ("vpsrlvq", "vcount64"), ("vpsravd", "vcount32")):
    V(op + " {d}, {a}, {b}", roles={"b": kind}, data_kind=kind)

# ---- multiplies and other integer arithmetic
for op in ("vpmullw", "vpmulld", "vpmulhuw", "vpmuludq", "vpmaddwd", "vpsadbw", "vpavgb",
           "vpsignb", "vphaddd"):
    V(op + " {d}, {a}, {b}")
for op in ("vpabsb", "vpabsw", "vpabsd"):
    V(op + " {d}, {b}")

# ---- blends
V("vpblendw {d}, {a}, {b}, 0xa5")
V("vpblendvb {d}, {a}, {b}, {c}")
V("vpblendd {d}, {a}, {b}, 0x5c")
V("vpblendd {d}, {a}, {b}, 0x03", mem=False)
V("vblendps {d}, {a}, {b}, 0x35", "f32")
V("vblendpd {d}, {a}, {b}, 0x6", "f64")
V("vblendvps {d}, {a}, {b}, {c}", "f32")
V("vblendvpd {d}, {a}, {b}, {c}", "f64", mem=False)

# ---- broadcasts, inserts, extracts, lane permutes
for op, size in (("vpbroadcastb", "byte"), ("vpbroadcastw", "word"), ("vpbroadcastd", "dword"),
                 ("vpbroadcastq", "qword")):
    V(op + " {d}, {xb}", mem=False)
    F(f"{op} xmm4, {size} ptr [rsi+0x13]")
    F(f"{op} ymm12, {size} ptr [rsi+0x22]")
F("vbroadcastss xmm3, dword ptr [rsi+4]", "f32")
F("vbroadcastss ymm10, dword ptr [rsi+0x1c]", "f32")
V("vbroadcastss {d}, {xb}", "f32", mem=False)
F("vbroadcastsd ymm2, qword ptr [rsi+8]", "f64")
F("vbroadcastsd ymm15, xmm6", "f64")
F("vbroadcasti128 ymm7, xmmword ptr [rsi+0x10]")
F("vbroadcastf128 ymm1, xmmword ptr [rsi+0x30]", "f32")
for op in ("vinserti128", "vinsertf128"):
    for imm in (0, 1):
        F(_expand(f"{op} {{d}}, {{a}}, {{xb}}, {imm}", 256, imm))
    F(f"{op} ymm9, ymm2, xmmword ptr [rsi+0x10], 1")
for op in ("vextracti128", "vextractf128"):
    for imm in (0, 1):
        F(_expand(f"{op} {{xd}}, {{b}}, {imm}", 256, imm))
    F(f"{op} xmmword ptr [rdi+0x10], ymm6, 1")
for imm in (0x31, 0x20, 0x08, 0x83, 0x12):
    F(_expand(f"vperm2i128 {{d}}, {{a}}, {{b}}, {imm:#x}", 256, imm))
    F(_expand(f"vperm2f128 {{d}}, {{a}}, {{b}}, {imm:#x}", 256, imm), "f32")
F("vperm2i128 ymm3, ymm4, ymmword ptr [rsi+0x20], 0x13")
F("vperm2f128 ymm8, ymm12, ymmword ptr [rsi], 0x30", "f64")
F("vpermq ymm1, ymm2, 0x1b")
F("vpermq ymm13, ymmword ptr [rsi+0x20], 0xd8")
F("vpermd ymm3, ymm4, ymm5")
F("vpermd ymm11, ymm11, ymmword ptr [rsi]")
F("vpermpd ymm6, ymm7, 0x4e", "f64")
F("vpermpd ymm0, ymmword ptr [rsi+0x20], 0x93", "f64")
F("vpermps ymm8, ymm9, ymm10", "f32", over={9: "int"})
F("vpermps ymm2, ymm1, ymmword ptr [rsi]", "f32", over={1: "int"})
V("vpermilps {d}, {b}, 0x1b", "f32")
V("vpermilps {d}, {a}, {b}", "f32", roles={"b": "int"}, data_kind="int")
V("vpermilpd {d}, {b}, 0x5", "f64")
V("vpermilpd {d}, {a}, {b}", "f64", roles={"b": "int"}, data_kind="int")

# ---- extensions, inserts and extracts of elements
for op, half in (("vpmovzxbw", "xmmword"), ("vpmovzxbd", "qword"), ("vpmovsxwd", "xmmword"),
                 ("vpmovzxdq", "xmmword"), ("vpmovsxbq", "dword")):
    V(op + " {d}, {xb}", mem=False)
    msize = {"xmmword": "qword", "qword": "dword", "dword": "word"}[half]
    F(f"{op} xmm6, {msize} ptr [rsi+0x8]")
    F(f"{op} ymm14, {half} ptr [rsi+0x10]")
F("vpinsrb xmm1, xmm2, eax, 5")
F("vpinsrb xmm11, xmm11, byte ptr [rsi+3], 15")
F("vpinsrd xmm3, xmm12, ecx, 3")
F("vpinsrd xmm0, xmm7, dword ptr [rsi+4], 0")
F("vpinsrq xmm9, xmm4, rdx, 1")
F("vpinsrq xmm5, xmm6, qword ptr [rsi+8], 0")
F("vpextrb eax, xmm3, 15")
F("vpextrb byte ptr [rdi+1], xmm13, 7")
F("vpextrd ecx, xmm2, 2")
F("vpextrd dword ptr [rdi+4], xmm8, 3")
F("vpextrq rdx, xmm10, 1")
F("vpextrq qword ptr [rdi+8], xmm1, 0")

# ---- floating-point arithmetic
for op, kind in (("vaddps", "f32"), ("vaddpd", "f64"), ("vsubps", "f32"), ("vmulps", "f32"),
                 ("vdivpd", "f64"), ("vminps", "f32"), ("vmaxpd", "f64")):
    V(op + " {d}, {a}, {b}", kind, rc=True)
V("vsqrtps {d}, {b}", "f32", rc=True)
V("vsqrtpd {d}, {b}", "f64", rc=True)
for op, kind in (("vaddss", "f32"), ("vaddsd", "f64"), ("vmulsd", "f64"), ("vdivss", "f32"),
                 ("vsqrtsd", "f64")):
    size = "dword" if kind == "f32" else "qword"
    F(f"{op} xmm1, xmm2, xmm3", kind, rc=True)
    F(f"{op} xmm12, xmm5, xmm12", kind, rc=True)
    F(f"{op} xmm7, xmm14, {size} ptr [rsi+8]", kind, rc=True)
for imm in (0, 1, 3, 4, 7, 8, 0x0b, 0x0d, 0x0f, 0x10, 0x13, 0x1a, 0x1c, 0x1e, 0x1f):
    F(_expand(f"vcmpps {{d}}, {{a}}, {{b}}, {imm:#x}", 256, imm), "f32")
for imm in (2, 0x0c, 0x15):
    F(_expand(f"vcmpps {{d}}, {{a}}, {{b}}, {imm:#x}", 128, imm), "f32")
for imm in (2, 5, 6, 9, 0x0c, 0x12, 0x1d):
    F(_expand(f"vcmppd {{d}}, {{a}}, {{b}}, {imm:#x}", 256, imm), "f64")
for imm in (0, 0x14):
    F(_expand(f"vcmppd {{d}}, {{a}}, {{b}}, {imm:#x}", 128, imm), "f64")
F("vcmpps ymm2, ymm3, ymmword ptr [rsi+0x20], 0x11", "f32")
for imm in (0, 4, 0x0e, 0x19, 0x1b):
    F(f"vcmpss xmm{imm % 16}, xmm{(imm + 3) % 16}, xmm{(imm + 7) % 16}, {imm:#x}", "f32")
F("vcmpss xmm4, xmm5, dword ptr [rsi+4], 0x1", "f32")


def _equal_scalar_prep(a: int, b: int, bits: int) -> Callable:
    def prep(rng, inp, k):
        if k == 1:              # equal operands: ZF
            m = (1 << bits) - 1
            inp.ymm[b] = inp.ymm[b] & ~m | inp.ymm[a] & m
    return prep


F("vcomiss xmm1, xmm2", "f32", prep=_equal_scalar_prep(1, 2, 32))
F("vcomiss xmm11, dword ptr [rsi+4]", "f32")
F("vucomisd xmm3, xmm14", "f64", prep=_equal_scalar_prep(3, 14, 64))
F("vucomisd xmm9, qword ptr [rsi+8]", "f64")

# ---- conversions
V("vcvtdq2ps {d}, {b}", rc=True)
V("vcvtps2dq {d}, {b}", "f32", rc=True)
V("vcvttps2dq {d}, {b}", "f32")
F("vcvtdq2pd xmm1, xmm2")
F("vcvtdq2pd ymm9, xmm3")
F("vcvtdq2pd ymm4, xmmword ptr [rsi+0x10]")
F("vcvtpd2ps xmm5, xmm6", "f64", rc=True)
F("vcvtpd2ps xmm12, ymm7", "f64", rc=True)
F("vcvtpd2ps xmm0, ymmword ptr [rsi+0x20]", "f64", rc=True)
F("vcvtps2pd xmm8, xmm9", "f32")
F("vcvtps2pd ymm10, xmm11", "f32")
F("vcvtps2pd ymm3, xmmword ptr [rsi]", "f32")
F("vcvtsi2sd xmm1, xmm2, rax", "f64", rc=True)
F("vcvtsi2sd xmm13, xmm4, ecx", "f64")
F("vcvtsi2sd xmm5, xmm5, qword ptr [rsi+8]", "f64", rc=True, data_kind="int")
F("vcvtsd2si eax, xmm3", "f64", rc=True)
F("vcvtsd2si rcx, xmm14", "f64", rc=True)
F("vcvttss2si edx, xmm6", "f32")
F("vcvttss2si r10, xmm7", "f32")
F("vcvttss2si rax, dword ptr [rsi+4]", "f32")
F("vcvtsd2ss xmm1, xmm2, xmm3", "f64", rc=True)
F("vcvtsd2ss xmm9, xmm10, qword ptr [rsi]", "f64", rc=True)
F("vcvtss2sd xmm4, xmm5, xmm6", "f32")
F("vcvtss2sd xmm11, xmm12, dword ptr [rsi+4]", "f32")
for imm in (4, 9, 0xa, 0xb):
    V(f"vroundps {{d}}, {{b}}, {imm:#x}", "f32", rc=True, mem=imm == 4)
for imm in (4, 1, 0xc):
    F(_expand(f"vroundsd {{d}}, {{a}}, {{b}}, {imm:#x}", 128, imm), "f64", rc=True)
F("vroundsd xmm2, xmm3, qword ptr [rsi+8], 0x2", "f64")

# ---- other float shuffles and arithmetic
V("vdpps {d}, {a}, {b}, 0xf1", "f32fin", rc=True)
F("vdpps ymm4, ymm5, ymm6, 0x7c", "f32fin", rc=True)
V("vhaddps {d}, {a}, {b}", "f32", rc=True)
V("vunpcklps {d}, {a}, {b}", "f32")
V("vunpckhpd {d}, {a}, {b}", "f64")
V("vshufps {d}, {a}, {b}, 0x1b", "f32")
V("vshufps {d}, {a}, {b}, 0xe4", "f32", mem=False)
V("vshufpd {d}, {a}, {b}, 0x5", "f64")
F("vmovlhps xmm1, xmm2, xmm3", "f32")
F("vmovlhps xmm9, xmm9, xmm14", "f32")
F("vmovhlps xmm4, xmm5, xmm6", "f32")
F("vmovlps xmm7, xmm8, qword ptr [rsi+8]", "f32")
F("vmovlps qword ptr [rdi+8], xmm10", "f32")
F("vmovhpd xmm11, xmm12, qword ptr [rsi+0x18]", "f64")
F("vmovhpd qword ptr [rdi], xmm13", "f64")
for imm in (0x00, 0x05, 0x2d, 0x3f):   # the upper lane's offsets are imm8[5:3]
    V(f"vmpsadbw {{d}}, {{a}}, {{b}}, {imm:#x}", mem=imm == 0x2d)
V("vmovddup {d}, {b}", "f64")
F("vmovddup xmm2, qword ptr [rsi+8]", "f64")
V("vmovshdup {d}, {b}", "f32")
V("vmovsldup {d}, {b}", "f32")
F("vlddqu xmm6, xmmword ptr [rsi+1]")
F("vlddqu ymm12, ymmword ptr [rsi+7]")


# ---- packed string compares (128 only), AES, carry-less multiply


def _len_prep(rng, inp, k):
    for r in ("rax", "rdx"):
        inp.regs[r] = rng.choice([rng.randint(-20, 20), rng.randint(0, 16),
                                  rng.getrandbits(64)]) & M64


for imm in (0x0c, 0x18, 0x44):
    F(f"vpcmpestri xmm1, xmm2, {imm:#x}", "str8", prep=_len_prep)
F("vpcmpestri xmm9, xmm14, 0x0d", "str16", prep=_len_prep)
F("vpcmpestri xmm3, xmmword ptr [rsi+0x10], 0x08", "str8", prep=_len_prep)
for imm in (0x08, 0x3a, 0x4a):
    F(f"vpcmpistri xmm4, xmm5, {imm:#x}", "str8")
F("vpcmpistri xmm12, xmm7, 0x09", "str16")
F("vpcmpistri xmm6, xmmword ptr [rsi+0x20], 0x1a", "str8")
for imm in (0x0c, 0x44, 0x5a):     # the mask forms write xmm0 and zero ymm0's upper half
    F(f"vpcmpestrm xmm3, xmm11, {imm:#x}", "str8", prep=_len_prep)
F("vpcmpestrm xmm8, xmmword ptr [rsi+0x10], 0x41", "str16", prep=_len_prep)
for imm in (0x08, 0x4a):
    F(f"vpcmpistrm xmm13, xmm2, {imm:#x}", "str8")
F("vpcmpistrm xmm0, xmmword ptr [rsi+0x20], 0x19", "str16")
F("vaesenc xmm1, xmm2, xmm3")
F("vaesenc xmm10, xmm10, xmmword ptr [rsi+0x10]")
for imm in (0x00, 0x11, 0x01):
    F(f"vpclmulqdq xmm{imm % 7 + 4}, xmm{imm % 5 + 9}, xmm{imm % 3 + 1}, {imm:#x}")
F("vpclmulqdq xmm0, xmm15, xmmword ptr [rsi], 0x10")

# ---- vzeroupper, vzeroall, and legacy SSE writes (upper halves kept)
F("vzeroupper")
F("vzeroall")
for asm in ("paddb xmm1, xmm2", "movaps xmm3, xmm4", "pxor xmm5, xmm5", "movq xmm6, rax",
            "cvtsi2sd xmm7, rax", "addss xmm8, xmm9", "pshufb xmm10, xmmword ptr [rsi]",
            "movss xmm11, dword ptr [rsi+4]", "movd xmm12, ecx", "xorps xmm13, xmm13",
            "pinsrw xmm14, eax, 3", "movhps xmm15, qword ptr [rsi+8]"):
    F(asm)
F("vpaddd ymm1, ymm2, ymm3; paddd xmm1, xmm4")
F("vmovdqu ymm0, ymmword ptr [rsi]; vmovdqu ymmword ptr [rdi], ymm0; vzeroupper")
F("vaddps ymm5, ymm6, ymm7; vzeroupper; addps xmm5, xmm8", "f32")
F("vpxor xmm2, xmm2, xmm2; vpcmpeqb ymm3, ymm3, ymm3; vpsubb ymm4, ymm2, ymm3")

# ---- masked loads and stores (masked-off lanes never fault)
END = N.DATA_SIZE                       # offset of the end of the data area


def _mask_prep(m: int, bits: int, width: int, live: int | None = None) -> Callable:
    """ymm ``m``: a mask whose lanes from ``live`` on are off (their
    addresses are past the data area); the others random."""
    def prep(rng, inp, k):
        n = width // bits
        lanes = [rng.choice([0, 1 << (bits - 1), (1 << bits) - 1, rng.getrandbits(bits)])
                 if live is None or i < live else rng.getrandbits(bits - 1)
                 for i in range(n)]
        if k == 0 and live is None:
            lanes = [(1 << bits) - 1] * n
        inp.ymm[m] = inp.ymm[m] & ~((1 << width) - 1) & M256 | _pack(lanes, bits)
        if live is not None:            # the last 16 bytes of the data area
            inp.regs["r9"] = N.DATA_ADDR + END - 16
            inp.data = inp.data.ljust(END - 16, b"\0") + rng.getrandbits(128).to_bytes(16, "little")
    return prep


F("vpmaskmovd xmm1, xmm2, xmmword ptr [rsi+0x10]", prep=_mask_prep(2, 32, 128))
F("vpmaskmovd ymm3, ymm4, ymmword ptr [rsi+0x20]", prep=_mask_prep(4, 32, 256))
F("vpmaskmovd ymm5, ymm6, ymmword ptr [r9]", prep=_mask_prep(6, 32, 256, live=4), tag="end")
F("vpmaskmovd xmmword ptr [rdi+0x10], xmm7, xmm8", prep=_mask_prep(7, 32, 128))
F("vpmaskmovd ymmword ptr [rdi], ymm9, ymm10", prep=_mask_prep(9, 32, 256))
F("vpmaskmovd ymmword ptr [r9], ymm11, ymm12", prep=_mask_prep(11, 32, 256, live=4), tag="end")
F("vmaskmovps xmm13, xmm14, xmmword ptr [rsi]", "f32", prep=_mask_prep(14, 32, 128))
F("vmaskmovps ymm15, ymm0, ymmword ptr [rsi+0x40]", "f32", prep=_mask_prep(0, 32, 256))
F("vmaskmovps ymm1, ymm2, ymmword ptr [r9]", "f32", prep=_mask_prep(2, 32, 256, live=4),
  tag="end")
F("vmaskmovps xmmword ptr [rdi+0x20], xmm3, xmm4", "f32", prep=_mask_prep(3, 32, 128))
F("vmaskmovps ymmword ptr [rdi+0x40], ymm5, ymm6", "f32", prep=_mask_prep(5, 32, 256))
F("vmaskmovps ymmword ptr [r9], ymm7, ymm8", "f32", prep=_mask_prep(7, 32, 256, live=4),
  tag="end")
F("vmaskmovpd ymm9, ymm10, ymmword ptr [r9]", "f64", prep=_mask_prep(10, 64, 256, live=2),
  tag="end")
F("vpmaskmovq ymmword ptr [r9], ymm11, ymm12", prep=_mask_prep(11, 64, 256, live=2), tag="end")


def _fault_prep(rng, inp, k):
    """A live lane past the end of the data area: a page fault."""
    inp.ymm[2] = _pack([rng.getrandbits(32) for _ in range(7)] + [1 << 31], 32)
    inp.regs["r9"] = N.DATA_ADDR + END - 16


F("vpmaskmovd ymm1, ymm2, ymmword ptr [r9]", prep=_fault_prep, tag="fault")


# ---- gathers (the mask register is all zero afterwards)


def _gather_prep(idx: int, mask: int, ibits: int, ebits: int, width: int) -> Callable:
    """ymm ``idx``: indices into the data area around r8 (some negative);
    ymm ``mask``: element masks (sign bits) of ``ebits``."""
    def prep(rng, inp, k):
        n = 256 // ibits
        inp.ymm[idx] = _pack([rng.randint(-30, 60) for _ in range(n)], ibits)
        m = 256 // ebits
        lanes = [rng.choice([0, (1 << ebits) - 1, 1 << (ebits - 1), rng.getrandbits(ebits)])
                 for _ in range(m)]
        if k == 0:
            lanes = [(1 << ebits) - 1] * m
        inp.ymm[mask] = _pack(lanes, ebits)
        inp.regs["r8"] = N.DATA_ADDR + STORE_OFF
    return prep


F("vpgatherdd ymm1, [r8+ymm2*4], ymm3", prep=_gather_prep(2, 3, 32, 32, 256))
F("vpgatherdd xmm4, [r8+xmm5*1+2], xmm6", prep=_gather_prep(5, 6, 32, 32, 128))
F("vgatherdps ymm7, [r8+ymm8*4+8], ymm9", "f32", prep=_gather_prep(8, 9, 32, 32, 256))
F("vgatherdps xmm10, [r8+xmm11*2], xmm12", "f32", prep=_gather_prep(11, 12, 32, 32, 128))
F("vpgatherqq ymm13, [r8+ymm14*8], ymm15", prep=_gather_prep(14, 15, 64, 64, 256))
F("vpgatherqq xmm0, [r8+xmm1*4-0x10], xmm2", prep=_gather_prep(1, 2, 64, 64, 128))

# ---- FMA3
for op, kind in (("vfmadd132ps", "f32"), ("vfmadd213pd", "f64"), ("vfnmadd213ps", "f32"),
                 ("vfnmsub132pd", "f64"), ("vfmaddsub231ps", "f32"), ("vfmsubadd213pd", "f64")):
    V(op + " {d}, {a}, {b}", kind, rc=True)
for op, kind in (("vfmadd231ss", "f32"), ("vfmsub231sd", "f64")):
    size = "dword" if kind == "f32" else "qword"
    F(f"{op} xmm1, xmm2, xmm3", kind, rc=True)
    F(f"{op} xmm11, xmm11, xmm6", kind, rc=True)
    F(f"{op} xmm7, xmm14, {size} ptr [rsi+8]", kind, rc=True)

# ---- F16C
F("vcvtph2ps xmm1, xmm2", "f16")
F("vcvtph2ps ymm9, xmm3", "f16")
F("vcvtph2ps ymm4, xmmword ptr [rsi+0x10]", "f16")
F("vcvtph2ps xmm12, qword ptr [rsi+8]", "f16")
for imm in (0, 4, 3):
    F(f"vcvtps2ph xmm{imm + 5}, xmm{imm + 10}, {imm}", "f32", rc=True)
    F(f"vcvtps2ph xmm{imm + 1}, ymm{(imm + 13) % 16}, {imm}", "f32", rc=True)
F("vcvtps2ph xmmword ptr [rdi+0x10], ymm7, 0", "f32")
F("vcvtps2ph qword ptr [rdi+8], xmm8, 4", "f32", rc=True)

_names = [f.name for f in FORMS]
assert len(set(_names)) == len(_names), [n for n in _names if _names.count(n) > 1]


# ---------------------------------------------------------------------------
# inputs and cases


def inputs(form: Form) -> list[N.Input]:
    """The form's INPUTS starting states (the same on every run and host)."""
    rng = random.Random(_crc(form.name))
    out = []
    for k in range(INPUTS):
        base = _base(rng, form.kind)
        ymm = [_value(rng, form.over.get(i, form.kind), base) for i in range(16)]
        dk = form.data_kind or form.kind
        data = b"".join(_value(rng, dk, base).to_bytes(32, "little")
                        for _ in range(DATA_LEN // 32))
        regs = {g: _gpr(rng) for g in N.GPRS if g != "rsp"}
        regs["rsi"] = N.DATA_ADDR
        regs["rdi"] = N.DATA_ADDR + STORE_OFF
        rflags = 0x202 | sum(f for f in (N.CF, N.PF, N.AF, N.ZF, N.SF, N.OF)
                             if rng.random() < 0.5)
        mxcsr = 0x1F80 | ((k + rng.randint(0, 1)) % 4 << 13 if form.rc else 0)
        inp = N.Input(regs=regs, rflags=rflags, ymm=ymm, data=data, mxcsr=mxcsr)
        if form.prep:
            form.prep(rng, inp, k)
        out.append(inp)
    return out


def case_id(form: Form, k: int) -> str:
    return f"{form.name} #{k}"


_code_cache: dict[str, bytes] = {}


def code_of(form: Form) -> bytes:
    if not _code_cache:         # one `as` run for the whole table
        for f, c in zip(FORMS, N.assemble([f.asm for f in FORMS])):
            _code_cache[f.asm] = c
    if form.asm not in _code_cache:
        _code_cache[form.asm] = N.assemble([form.asm])[0]
    return _code_cache[form.asm]


def input_sum(code: bytes, inp: N.Input) -> str:
    """A checksum of the code and a starting state (the recording's ``in``)."""
    text = repr((code.hex(), sorted(inp.regs.items()), inp.rflags, inp.ymm, inp.mxcsr))
    return f"{zlib.crc32(inp.data, zlib.crc32(text.encode())):08x}"


def host_is_oracle(code: bytes) -> bool:
    """The host CPU runs ``code`` and the harness sees its ymm state."""
    return not FORCE_RECORDED and N.NATIVE_YMM and N.missing_host_feature(code) is None


# ---------------------------------------------------------------------------
# recorded oracles: what a native run changed


def _data_runs(a: bytes, b: bytes) -> list:
    """[offset, hex] of the runs of bytes where ``b`` differs from ``a``
    (runs at most 2 equal bytes apart are one run)."""
    runs: list = []
    if a == b:
        return runs
    for blk in range(0, len(a), 256):
        if a[blk:blk + 256] == b[blk:blk + 256]:
            continue
        for i in range(blk, min(blk + 256, len(a))):
            if a[i] == b[i]:
                continue
            if runs and runs[-1][0] + runs[-1][1] + 2 >= i:
                runs[-1][1] = i + 1 - runs[-1][0]
            else:
                runs.append([i, 1])
    return [[o, b[o:o + n].hex()] for o, n in runs]


def record_of(code: bytes, inp: N.Input, nat: N.Outcome | None,
              fault: N.NativeFault | None = None) -> dict:
    """The recording of one case: ``in`` (input_sum), and either ``sig``
    (the native fault's signal) or what the run changed: ``r`` GPRs, ``y``
    ymm registers (by number), ``f`` flags (ARITH|DF), ``m`` MXCSR (but
    the exception flags), ``d`` data runs ([offset, bytes])."""
    rec: dict = {"in": input_sum(code, inp)}
    if fault is not None:
        rec["sig"] = int(fault.signo)
        return rec
    before = N.initial_outcome(code, **vars(inp))
    regs = {r: f"{nat.regs[r]:x}" for r in N.GPRS if nat.regs[r] != before.regs[r]}
    if regs:
        rec["r"] = regs
    ymm = {str(i): f"{a:x}" for i, (a, b) in enumerate(zip(nat.ymm, before.ymm)) if a != b}
    if ymm:
        rec["y"] = ymm
    if (nat.rflags ^ before.rflags) & ALL_FLAGS:
        rec["f"] = f"{nat.rflags & ALL_FLAGS:x}"
    if (nat.mxcsr ^ before.mxcsr) & ~N.MXCSR_EXCEPTIONS:
        rec["m"] = f"{nat.mxcsr & ~N.MXCSR_EXCEPTIONS:x}"
    runs = _data_runs(before.data, nat.data)
    if runs:
        rec["d"] = runs
    return rec


def outcome_of_record(code: bytes, inp: N.Input, rec: dict) -> N.Outcome:
    """The native outcome a recording describes (the starting state plus
    what the recording says changed)."""
    out = N.initial_outcome(code, **vars(inp))
    for r, v in rec.get("r", {}).items():
        out.regs[r] = int(v, 16)
    for i, v in rec.get("y", {}).items():
        y = int(v, 16)
        out.xmm[int(i)], out.ymmh[int(i)] = y & M128, y >> 128
    if "f" in rec:
        out.rflags = out.rflags & ~ALL_FLAGS | int(rec["f"], 16)
    if "m" in rec:
        out.mxcsr = int(rec["m"], 16)
    data = bytearray(out.data)
    for off, hx in rec.get("d", []):
        b = bytes.fromhex(hx)
        data[off:off + len(b)] = b
    out.data = bytes(data)
    return out


_recorded: dict | None = None


def recorded() -> dict:
    global _recorded
    if _recorded is None:
        try:
            with open(RECORDING) as f:
                _recorded = json.load(f)
        except FileNotFoundError:
            _recorded = {}
    return _recorded


def native_record(form: Form, k: int, inp: N.Input) -> dict:
    """Run case ``k`` of ``form`` on the host; its recording."""
    code = code_of(form)
    try:
        nat = N.run_native(code, **vars(inp))
    except N.NativeFault as f:
        return record_of(code, inp, None, f)
    return record_of(code, inp, nat)


def write_recording(path: str = RECORDING) -> tuple[int, int]:
    """Record every case the host runs (keeping the recordings of those it
    cannot); returns (recorded, kept)."""
    old = recorded() if path == RECORDING else {}
    out, kept = {}, 0
    for form in FORMS:
        code = code_of(form)
        for k, inp in enumerate(inputs(form)):
            cid = case_id(form, k)
            if N.missing_host_feature(code) is None:
                out[cid] = native_record(form, k, inp)
            elif cid in old:
                out[cid] = old[cid]
                kept += 1
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}"
                                   for k, v in sorted(out.items())) + "\n}\n")
    return len(out) - kept, kept


# ---------------------------------------------------------------------------
# the checks

_SIGNAL_OF_FAULT = {S.FAULT_DE: signal.SIGFPE, S.FAULT_UD: signal.SIGILL,
                    S.FAULT_GP: signal.SIGSEGV, S.FAULT_BP: signal.SIGTRAP,
                    S.FAULT_PF: signal.SIGSEGV}


def _fmt_input(inp: N.Input, form: Form) -> str:
    regs = sorted({int(t[3:]) for t in form.asm.replace(",", " ").replace(";", " ")
                   .replace("[", " ").replace("+", " ").replace("*", " ").split()
                   if t[:3] in ("xmm", "ymm") and t[3:].isdigit()})
    parts = [f"ymm{i}={inp.ymm[i]:064x}" for i in regs]
    parts += [f"rflags={inp.rflags:#x}", f"mxcsr={inp.mxcsr:#x}"]
    if "ptr" in form.asm:
        parts.append(f"data[0:0x60]={inp.data[:0x60].hex()}")
    return "  ".join(parts)


def check_case(form: Form, k: int, inp: N.Input) -> str | None:
    """None when case ``k`` of ``form`` agrees with its oracle (the host,
    or the recording), else a report."""
    code = code_of(form)
    cid = case_id(form, k)
    fault = None
    if host_is_oracle(code):
        try:
            nat = N.run_native(code, **vars(inp))
        except N.NativeFault as f:
            nat, fault = None, int(f.signo)
    else:
        rec = recorded().get(cid)
        if rec is None or rec["in"] != input_sum(code, inp):
            return (f"{cid}: no oracle: the host cannot run it and the recording is "
                    f"{'missing' if rec is None else 'stale'} (python tests/record_avx.py)")
        fault = rec.get("sig")
        nat = None if fault else outcome_of_record(code, inp, rec)
    tr = N.run_translated(code, **vars(inp))
    if tr.notes and not fault:          # the values are no news then
        return f"{cid}: {'; '.join(tr.notes)}"
    if fault:
        got = tr.host_signal or _SIGNAL_OF_FAULT.get(tr.fault, 0)
        if got != fault:
            return (f"{cid}: native {signal.Signals(fault).name}, translated "
                    + (signal.Signals(got).name if got else "runs")
                    + (f" ({'; '.join(tr.notes)})" if tr.notes else ""))
        return None
    try:
        N.compare(nat, tr, flag_mask=form.flags, what=cid)
    except AssertionError as e:
        return f"{e}\n  input: {_fmt_input(inp, form)}"
    return None


@pytest.mark.usefixtures("isa_tier")
@pytest.mark.parametrize("form", FORMS, ids=[f.name for f in FORMS])
def test_form(form: Form) -> None:
    errs = [e for k, inp in enumerate(inputs(form)) if (e := check_case(form, k, inp))]
    if errs:
        pytest.fail("\n".join(errs))


def test_recording_agrees_with_host() -> None:
    """Every case the host can run is recorded, as the host runs it (so
    tests/data/avx_expected.json cannot go stale unnoticed)."""
    if not N.NATIVE_YMM:
        pytest.skip("the host has no AVX: the recording is the oracle here")
    rec = recorded()
    ids, bad = set(), []
    ran = 0
    for form in FORMS:
        code = code_of(form)
        for k, inp in enumerate(inputs(form)):
            cid = case_id(form, k)
            ids.add(cid)
            if N.missing_host_feature(code) is not None:
                continue
            ran += 1
            want = native_record(form, k, inp)
            if rec.get(cid) != want:
                bad.append(f"{cid}: recorded {rec.get(cid)}, host {want}")
    extra = sorted(set(rec) - ids)
    if ran == 0:
        pytest.skip("the host runs none of the forms")
    assert not bad and not extra, (
        "tests/data/avx_expected.json disagrees with the host (python tests/record_avx.py):\n"
        + "\n".join(bad[:20] + [f"{c}: recorded, but no such case" for c in extra[:20]]))


@pytest.mark.usefixtures("isa_tier")
def test_harness_ymm_state() -> None:
    """The oracle itself: whole ymm registers in and out on both sides; a
    VEX.128 write zeroes the destination's upper half, a legacy SSE write
    keeps it, vzeroupper clears them all; components the host leaves in
    their init state (XSTATE_BV) read as such."""
    ymm = [(0xC0DE0000 + i) << 200 | (0xF00D << 128) | i for i in range(16)]
    nop, vex, sse, vzu, fin = N.assemble(["nop", "vpaddb xmm1, xmm2, xmm3", "paddb xmm1, xmm2",
                                          "vzeroupper", "fninit"])
    want = {nop: ymm, fin: ymm,      # fninit: the host's XSAVE header says x87 is in init state
            vex: ymm[:1] + [5] + ymm[2:],
            sse: ymm[:1] + [ymm[1] & ~M128 | 3] + ymm[2:],
            vzu: [v & M128 for v in ymm]}
    for code, expect in want.items():
        assert N.run_translated(code, ymm=ymm).ymm == expect
        assert outcome_of_record(code, N.Input(ymm=ymm), record_of(
            code, N.Input(ymm=ymm), N.initial_outcome(code, ymm=ymm))).ymm == ymm
        if N.NATIVE_YMM:
            assert N.run_native(code, ymm=ymm).ymm == expect
    if N.NATIVE_YMM:           # xmm-only inputs: upper halves start at zero
        assert N.run_native(nop, xmm=ymm).ymmh == [0] * 16


def test_forms_cover_ymm_registers() -> None:
    """Every ymm register is some form's operand (the table's spread)."""
    used = set()
    for f in FORMS:
        for t in f.asm.replace(",", " ").replace("[", " ").replace("+", " ").replace("*", " ") \
                .split():
            if t[:3] == "ymm" and t[3:].isdigit():
                used.add(int(t[3:]))
    assert used == set(range(16))


# ---------------------------------------------------------------------------
# the CPU model: no VEX on v2; xgetbv and CPUID follow the model


@pytest.fixture
def model_v2():
    with N.cpu_model(cpumodel.V2):
        yield


V2_UD = ["vpxor xmm1, xmm2, xmm3", "vaddps ymm1, ymm2, ymm3", "vzeroupper",
         "vmovdqu ymm0, ymmword ptr [rsi]", "vfmadd231ps xmm1, xmm2, xmm3",
         "vcvtph2ps ymm1, xmm2", "vpbroadcastd ymm1, xmm2", "vmovd xmm1, eax",
         # BMI1 and BMI2 are VEX-encoded too, and outside v2
         "andn ecx, ebx, edx", "blsr rcx, rdx", "shlx rax, rbx, rcx", "pdep rax, rbx, rcx",
         "rorx eax, ebx, 3"]


@pytest.mark.usefixtures("isa_tier")
@pytest.mark.parametrize("asm", V2_UD)
def test_vex_is_ud_on_v2(model_v2, asm: str) -> None:
    """Under x86-64-v2, a CPU without AVX: #UD (SIGILL) at the instruction,
    after the instruction before it ran."""
    code, = N.assemble([f"inc eax; {asm}"])
    ymm = [(0xA5 << 248) | i for i in range(16)]
    tr = N.run_translated(code, regs={"rax": 41, "rsi": N.DATA_ADDR}, ymm=ymm)
    assert tr.fault == S.FAULT_UD, (tr.fault, tr.host_signal, tr.untranslatable)
    assert tr.regs["rip"] == N.CODE_ADDR + 2            # inc eax is 2 bytes
    assert tr.regs["rax"] == 42
    assert tr.ymm == ymm


def _run_tr(asm: str, **kw) -> N.Outcome:
    code, = N.assemble([asm])
    tr = N.run_translated(code, **kw)
    assert not tr.notes, tr.notes
    return tr


@pytest.mark.usefixtures("isa_tier")
@pytest.mark.parametrize("model,xcr0", [(cpumodel.V2, 3), (cpumodel.V3, 7)])
def test_xgetbv_follows_model(model: str, xcr0: int) -> None:
    cpuid.select(model)
    N.forget_translation()
    try:
        tr = _run_tr("xor ecx, ecx; xgetbv", regs={"rax": M64, "rdx": M64})
    finally:
        cpuid.select(cpumodel.V3)
        N.forget_translation()
    assert (tr.regs["rax"], tr.regs["rdx"]) == (xcr0, 0)


@pytest.mark.usefixtures("isa_tier")
@pytest.mark.parametrize("model", [cpumodel.V2, cpumodel.V3, cpumodel.V3 + "+adx"])
def test_cpuid_avx_bits_follow_model(model: str) -> None:
    cpuid.select(model)
    N.forget_translation()
    try:
        one = _run_tr("mov eax, 1; xor ecx, ecx; cpuid")
        seven = _run_tr("mov eax, 7; xor ecx, ecx; cpuid")
    finally:
        cpuid.select(cpumodel.V3)
        N.forget_translation()
    v3 = model.startswith(cpumodel.V3)
    ecx1, ebx7 = one.regs["rcx"], seven.regs["rbx"]
    assert one.regs["rax"] == (0x306C3 if v3 else 0x206C2), "the base model's signature"
    assert bool(ebx7 >> 19 & 1) == model.endswith("+adx"), f"CPUID.7.0:EBX.ADX {ebx7:#x}"
    assert bool(ecx1 >> 28 & 1) == v3, f"CPUID.1:ECX.AVX {ecx1:#x}"
    assert bool(ecx1 >> 27 & 1) == v3, f"CPUID.1:ECX.OSXSAVE {ecx1:#x}"
    assert bool(ecx1 >> 12 & 1) == v3, f"CPUID.1:ECX.FMA {ecx1:#x}"
    assert bool(ecx1 >> 29 & 1) == v3, f"CPUID.1:ECX.F16C {ecx1:#x}"
    assert bool(ebx7 >> 5 & 1) == v3, f"CPUID.7.0:EBX.AVX2 {ebx7:#x}"


LOOP = """
    mov ecx, 37
1:  vpaddd ymm0, ymm0, ymm1
    test ecx, 1
    jz 2f
    paddd xmm0, xmm2
    movdqa xmm6, xmm0
2:  vpxor ymm3, ymm3, ymm0
    movdqa xmm4, xmm3
    vpermq ymm5, ymm3, 0x1b
    pshufd xmm5, xmm5, 0x4e
    vmovdqu ymmword ptr [rsi + 0x40], ymm5
    dec ecx
    jnz 1b
"""


@pytest.mark.usefixtures("isa_tier")
@pytest.mark.parametrize("precise", [False, True], ids=["plain", "commits"])
def test_ymm_values_across_a_loop(precise: bool) -> None:
    """A loop mixing 256-bit VEX and legacy SSE writes of the same
    registers (a legacy write keeps bits 255:128): with 256-bit code in the
    region each ymm register is one value in the translation (the
    emitter's whole_ymm slots), split into xmm and upper half only at
    write-back and commits; every register and the stores agree with the
    host after 37 iterations."""
    code, = N.assemble([LOOP])
    rng = random.Random(5)
    inp = N.Input(ymm=[rng.getrandbits(256) for _ in range(16)], regs={"rsi": N.DATA_ADDR},
                  data=bytes(256))
    native = N.run_native(code, **vars(inp))
    N.compare(native, N.run_translated(code, **vars(inp), precise_faults=precise),
              what="ymm loop")


# LOOP with SHA-NI instructions among its legacy writes (sha256rnds2 reads
# xmm0 implicitly): OpenSSL's sha256_block_data_order is one region holding
# its SHA-NI loop and its AVX2 sibling.
SHA_LOOP = LOOP.replace("    movdqa xmm4, xmm3\n",
                        "    movdqa xmm4, xmm3\n    sha256rnds2 xmm4, xmm6\n"
                        "    sha256msg1 xmm7, xmm4\n")


def test_ymm_halves_stay_apart_where_the_host_runs_sha_legacy_encoded() -> None:
    """A region with 256-bit instructions keeps each ymm register whole
    unless the host runs one of its instructions in a legacy SSE encoding
    (SHA-NI has no VEX form): there every xmm write to a whole ymm would be
    a 256-bit blend, and each host SHA instruction after one paid an Intel
    state transition (OpenSSL's SHA-256 ran 40 times native)."""
    from bttool.translator.decoder import Decoder
    from bttool.translator.lifter import whole_ymm_slots
    assert "sha256rnds2" in SHA_LOOP
    code, plain = N.assemble([SHA_LOOP, LOOP])
    insns, plain_insns = (list(Decoder(64).decode_all(c, 0x1000)) for c in (code, plain))
    host = frozenset({"+avx", "+avx2", "+sha"})
    assert not whole_ymm_slots(insns, 64, host)
    assert whole_ymm_slots(insns, 64, host - {"+sha"}), "generic SHA IR: no legacy encoding"
    assert whole_ymm_slots(plain_insns, 64, host)
    assert not whole_ymm_slots([i for i in insns if i.mnemonic.startswith("sha")], 64, host)


@pytest.mark.usefixtures("isa_tier")
def test_ymm_loop_with_sha_agrees_with_the_host() -> None:
    """SHA_LOOP, translated with the ymm halves apart (on a host with SHA)
    or whole (without), leaves every register and the stores as the host
    does."""
    code, = N.assemble([SHA_LOOP])
    rng = random.Random(7)
    inp = N.Input(ymm=[rng.getrandbits(256) for _ in range(16)], regs={"rsi": N.DATA_ADDR},
                  data=bytes(256))
    native = N.run_native(code, **vars(inp))
    N.compare(native, N.run_translated(code, **vars(inp)), what="ymm loop with sha")

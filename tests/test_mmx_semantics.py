"""MMX semantics against the host CPU (translator/semantics/mmx*.py and the
64-bit forms of the sse*.py functions).

Every test runs one snippet natively and under translation (tests/native.py:
both start from the state ``fninit`` leaves) over a table of records at rsi,
and compares the records byte for byte, as tests/test_x87_semantics.py does.
Each record's snippet ends with ``fnsave``, so every test also compares the
x87 view of the MMX work: the tag word, TOP, and all eight registers as
80-bit values (an mm write sets bits 64-79 to ones), and starts the next
record from the initialised x87 state.

The snippets loop over the records with rcx (they must not change it).

Record layout (offsets from rsi):
  +0, +8      A, B: 64-bit inputs (mm sources, memory operands, shift counts)
  +16         XIN: 16 bytes (floats for the conversions, an 80-bit value)
  +32         MX: the MXCSR the conversions run under
  +64+8k      OUT(k), k = 0..15: 64-bit outputs
  +192+16k    XOUT(k), k = 0..3: 128-bit outputs
  +256        FLAGS: rflags after the body (arithmetic flags compared)
  +272        SAVE: the fnsave image (108 bytes; FIP/FDP/FOP not compared)
  +384+32k    ENV(k), k = 0..3: fnstenv images (pointers not compared)
  +512        MASKED: 16 bytes that maskmovq/maskmovdqu store into
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
from test_sse_semantics import SPECIAL_F32, SPECIAL_F64  # noqa: E402
from native import DATA_ADDR, DATA_SIZE  # noqa: E402

pytestmark = [pytest.mark.skipif(not N.have_toolchain(), reason="needs GNU as, objcopy and nm"),
              pytest.mark.usefixtures("isa_tier")]      # every test runs under every tier

REC = 576
MAX_RECORDS = DATA_SIZE // REC - 1
A, B, XIN, MX = 0, 8, 16, 32
FLAGS, SAVE, MASKED = 256, 272, 512
ARITH_FLAGS = 0x8D5
SW_NO_C1 = 0x7D00       # C0 C2 C3 and TOP: stack faults set C1 and IE/SF natively only
M64 = (1 << 64) - 1


def OUT(k: int) -> int:
    return 64 + 8 * k


def XOUT(k: int) -> int:
    return 192 + 16 * k


def ENV(k: int) -> int:
    return 384 + 32 * k


# -- values -------------------------------------------------------------------
def splat(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return sum(v << (bits * i) for i in range(64 // bits))


def _edges(bits: int) -> list[int]:
    h = 1 << (bits - 1)
    return [0, 1, -1, h - 1, -h, h - 2, -h + 1, h >> 1, 2, 0x55]


EDGES = sorted({splat(v, w) for w in (8, 16, 32) for v in _edges(w)} | {
    0x7F80017FFF00FF01, 0x80007FFF0001FFFF, 0x0123456789ABCDEF, 0xFEDCBA9876543210,
    0x8000000000000000, 0x7FFFFFFFFFFFFFFF, 0x00FF00FF00FF00FF, 0x8001800180018001})
# counts around every lane width, and huge ones (the whole quadword counts)
# pairs of these are every test's corner cases: saturation boundaries, signs
CORNERS = sorted({splat(v, w) for w in (8, 16, 32) for v in _edges(w)[1:5]} | {
    0, 0x0123456789ABCDEF, 0xFEDCBA9876543210, 0x7F80017FFF00FF01})
SHIFT_COUNTS = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256, 1 << 32, M64]
SHIFT_IMMS = [0, 1, 7, 8, 15, 16, 31, 32, 63, 64, 200]


def _lanes(bits: int):
    lane = st.one_of(st.sampled_from(_edges(bits)),
                     st.integers(-(1 << (bits - 1)), (1 << bits) - 1))
    return st.lists(lane, min_size=64 // bits, max_size=64 // bits).map(
        lambda xs: sum((x & ((1 << bits) - 1)) << (bits * i) for i, x in enumerate(xs)))


quad = st.one_of(st.sampled_from(EDGES), st.integers(0, M64), _lanes(8), _lanes(16), _lanes(32))
count = st.one_of(st.sampled_from(SHIFT_COUNTS), st.integers(0, 70), st.integers(0, M64))
f32x4 = st.lists(st.one_of(st.sampled_from(SPECIAL_F32), st.integers(0, (1 << 32) - 1)),
                 min_size=4, max_size=4).map(
    lambda xs: sum(x << (32 * i) for i, x in enumerate(xs)))
f64x2 = st.lists(st.one_of(st.sampled_from(SPECIAL_F64), st.integers(0, M64)),
                 min_size=2, max_size=2).map(lambda xs: xs[0] | xs[1] << 64)
MXCSRS = [0x1F80, 0x3F80, 0x5F80, 0x7F80]     # the four rounding modes


@st.composite
def records(draw, b=quad, xin=st.one_of(f32x4, f64x2)):
    return {"a": draw(quad), "b": draw(b), "xin": draw(xin), "mx": draw(st.sampled_from(MXCSRS)),
            "masked": draw(st.integers(0, (1 << 128) - 1))}


def pack(recs: list[dict]) -> bytes:
    out = bytearray()
    for r in recs:
        rec = bytearray(REC)
        struct.pack_into("<QQ", rec, A, r["a"] & M64, r["b"] & M64)
        rec[XIN:XIN + 16] = (r.get("xin", 0) & ((1 << 128) - 1)).to_bytes(16, "little")
        struct.pack_into("<I", rec, MX, r.get("mx", 0x1F80))
        rec[MASKED:MASKED + 16] = r.get("masked", 0).to_bytes(16, "little")
        out += rec
    return bytes(out)


def corner_records(bs=CORNERS) -> list[dict]:
    return [dict(a=a, b=b, xin=(a | b << 64), masked=~a & ((1 << 128) - 1))
            for a in CORNERS for b in bs]


# -- snippets -------------------------------------------------------------------
_END = f"""
    pushfq
    pop qword ptr [rsi+{FLAGS}]
    fnsave [rsi+{SAVE}]
"""


def _q(off: int) -> str:
    return f"qword ptr [rsi+{off}]"


def _binary(op: str) -> str:
    """Register and memory source; the memory form into another register."""
    return f"""
    movq mm0, {_q(A)}
    movq mm5, {_q(B)}
    {op} mm0, mm5
    movq {_q(OUT(0))}, mm0
    movq mm3, {_q(A)}
    {op} mm3, {_q(B)}
    movq {_q(OUT(1))}, mm3
    movq mm7, {_q(A)}
    {op} mm7, mm7
    movq {_q(OUT(2))}, mm7
    """ + _END


def _unpack_low(op: str) -> str:
    """punpckl*: the memory form reads a doubleword."""
    return _binary(op).replace(f"{op} mm3, {_q(B)}", f"{op} mm3, dword ptr [rsi+{B}]")


def _shift(op: str) -> str:
    body = [f"movq mm1, {_q(A)}", f"movq mm2, {_q(B)}", f"{op} mm1, mm2", f"movq {_q(OUT(0))}, mm1",
            f"movq mm6, {_q(A)}", f"{op} mm6, {_q(B)}", f"movq {_q(OUT(1))}, mm6"]
    for k, imm in enumerate(SHIFT_IMMS):
        body += [f"movq mm{k % 8}, {_q(A)}", f"{op} mm{k % 8}, {imm}",
                 f"movq {_q(OUT(2 + k))}, mm{k % 8}"]
    return "\n".join(body) + _END


def _with_imm(op: str, imms: list[int]) -> str:
    body = []
    for k, imm in enumerate(imms):
        body += [f"movq mm2, {_q(A)}", f"movq mm4, {_q(B)}", f"{op} mm2, mm4, {imm}",
                 f"movq {_q(OUT(2 * k))}, mm2",
                 f"movq mm1, {_q(A)}", f"{op} mm1, {_q(B)}, {imm}",
                 f"movq {_q(OUT(2 * k + 1))}, mm1"]
    return "\n".join(body) + _END


_PSHUFW = "\n".join(
    f"movq mm3, {_q(B)}\npshufw mm{k}, mm3, {imm}\nmovq {_q(OUT(2 * k))}, mm{k}\n"
    f"pshufw mm{k}, {_q(B)}, {imm}\nmovq {_q(OUT(2 * k + 1))}, mm{k}"
    for k, imm in enumerate([0x00, 0x1B, 0xE4, 0x4E, 0xB1, 0xFF, 0x39])) + _END

_INSERT_EXTRACT = "\n".join(
    [f"movq mm1, {_q(A)}\nmov rax, {_q(B)}\npinsrw mm1, eax, {imm}\nmovq {_q(OUT(k))}, mm1\n"
     f"pinsrw mm1, word ptr [rsi+{B + 2}], {imm ^ 1}\nmovq {_q(OUT(6 + k))}, mm1\n"
     f"mov rax, -1\npextrw eax, mm1, {imm}\nmov {_q(OUT(12 + k % 4))}, rax"
     for k, imm in enumerate([0, 1, 2, 3, 5, 0xFE])]) + _END

_MOVES = f"""
    mov rax, -1
    movd mm0, dword ptr [rsi+{A}]
    movq {_q(OUT(0))}, mm0
    mov r8, {_q(B)}
    movd mm1, r8d
    movq {_q(OUT(1))}, mm1
    movq mm2, r8
    movq {_q(OUT(2))}, mm2
    movq mm3, {_q(A)}
    movd eax, mm3
    mov {_q(OUT(3))}, rax
    movq rdx, mm3
    mov {_q(OUT(4))}, rdx
    mov {_q(OUT(5))}, rax
    movd dword ptr [rsi+{OUT(5)}], mm2
    movq mm4, mm3
    movq {_q(OUT(6))}, mm4
    movq mm5, {_q(B)}
    movntq {_q(OUT(7))}, mm5
    movq mm6, {_q(A)}
    pmovmskb eax, mm6
    mov {_q(OUT(8))}, rax
    movdqu xmm1, [rsi+{XIN}]
    movdq2q mm7, xmm1
    movq {_q(OUT(9))}, mm7
    movdqu xmm2, [rsi+{XIN}]
    movq2dq xmm2, mm6
    movdqu [rsi+{XOUT(0)}], xmm2
    pcmpeqb mm0, mm0
    movq {_q(OUT(10))}, mm0
    pxor mm1, mm1
    movq {_q(OUT(11))}, mm1
""" + _END

_MASKMOV = f"""
    lea rdi, [rsi+{MASKED}]
    movq mm0, {_q(A)}
    movq mm1, {_q(B)}
    maskmovq mm0, mm1
    lea rdi, [rsi+{MASKED + 8}]
    maskmovq mm1, mm0
    movdqu xmm0, [rsi+{A}]
    movdqu xmm1, [rsi+{XIN}]
    lea rdi, [rsi+{XOUT(0)}]
    maskmovdqu xmm0, xmm1
    lea rdi, [rsi+{XOUT(1)}]
    maskmovdqu xmm1, xmm0
""" + _END

_CONVERT = f"""
    ldmxcsr [rsi+{MX}]
    movdqu xmm1, [rsi+{XIN}]
    movq mm2, {_q(A)}
    movdqu xmm0, [rsi+{XIN}]
    cvtpi2ps xmm0, mm2
    movdqu [rsi+{XOUT(0)}], xmm0
    movdqu xmm0, [rsi+{XIN}]
    cvtpi2ps xmm0, {_q(B)}
    movdqu [rsi+{XOUT(1)}], xmm0
    cvtpi2pd xmm3, mm2
    movdqu [rsi+{XOUT(2)}], xmm3
    cvtpi2pd xmm3, {_q(B)}
    movdqu [rsi+{XOUT(3)}], xmm3
    cvtps2pi mm4, xmm1
    movq {_q(OUT(0))}, mm4
    cvtps2pi mm4, qword ptr [rsi+{XIN + 8}]
    movq {_q(OUT(1))}, mm4
    cvttps2pi mm5, xmm1
    movq {_q(OUT(2))}, mm5
    cvttps2pi mm5, qword ptr [rsi+{XIN + 8}]
    movq {_q(OUT(3))}, mm5
    cvtpd2pi mm6, xmm1
    movq {_q(OUT(4))}, mm6
    cvtpd2pi mm6, xmmword ptr [rsi+{XIN}]
    movq {_q(OUT(5))}, mm6
    cvttpd2pi mm7, xmm1
    movq {_q(OUT(6))}, mm7
    cvttpd2pi mm7, xmmword ptr [rsi+{XIN}]
    movq {_q(OUT(7))}, mm7
""" + _END

# Which instructions switch the x87 unit to MMX state: the memory forms of
# cvtpi2ps/cvtpi2pd name no mm register and leave TOP and the tags alone.
_TRANSITION = f"""
    fld1
    cvtpi2ps xmm0, {_q(B)}
    fnstenv [rsi+{ENV(0)}]
    fldcw [rsi+{ENV(0)}]
    fld1
    cvtpi2pd xmm0, {_q(B)}
    fnstenv [rsi+{ENV(1)}]
    fldcw [rsi+{ENV(1)}]
    fld1
    cvtpi2ps xmm0, mm1
    fnstenv [rsi+{ENV(2)}]
    fldcw [rsi+{ENV(2)}]
    fninit
    fld1
    fld1
    cvtps2pi mm3, {_q(B)}
    fnstenv [rsi+{ENV(3)}]
    fldcw [rsi+{ENV(3)}]
""" + _END

# The aliasing in both directions, and emms.
_ALIAS = f"""
    movq mm0, {_q(A)}
    movq mm3, {_q(B)}
    paddb mm0, mm3
    fstp tbyte ptr [rsi+{OUT(0)}]
    fnstenv [rsi+{ENV(0)}]
    fldcw [rsi+{ENV(0)}]
    fninit
    fld tbyte ptr [rsi+{XIN}]
    movq {_q(OUT(2))}, mm7
    fnstenv [rsi+{ENV(1)}]
    fldcw [rsi+{ENV(1)}]
    fld qword ptr [rsi+{A}]
    fstp tbyte ptr [rsi+{OUT(4)}]
    movq mm1, {_q(A)}
    movq mm0, {_q(B)}
    fadd st(0), st(1)
    fstp tbyte ptr [rsi+{OUT(6)}]
    emms
    fnstenv [rsi+{ENV(2)}]
    fldcw [rsi+{ENV(2)}]
    fld qword ptr [rsi+{B}]
    fld1
    faddp st(1), st
    fstp qword ptr [rsi+{OUT(8)}]
    movq mm6, {_q(A)}
    movq mm2, {_q(B)}
    emms
    fnstenv [rsi+{ENV(3)}]
    fldcw [rsi+{ENV(3)}]
    fld st(6)
    fstp tbyte ptr [rsi+{OUT(10)}]
    movq mm5, {_q(A)}
""" + _END

BINARY = ["paddb", "paddw", "paddd", "paddq", "paddsb", "paddsw", "paddusb", "paddusw",
          "psubb", "psubw", "psubd", "psubq", "psubsb", "psubsw", "psubusb", "psubusw",
          "pmullw", "pmulhw", "pmulhuw", "pmuludq", "pmaddwd",
          "pcmpeqb", "pcmpeqw", "pcmpeqd", "pcmpgtb", "pcmpgtw", "pcmpgtd",
          "pand", "pandn", "por", "pxor",
          "packsswb", "packssdw", "packuswb", "punpckhbw", "punpckhwd", "punpckhdq",
          "pavgb", "pavgw", "pminub", "pmaxub", "pminsw", "pmaxsw", "psadbw",
          # SSSE3 on mm registers
          "pshufb", "phaddw", "phaddd", "phaddsw", "phsubw", "phsubd", "phsubsw",
          "psignb", "psignw", "psignd", "pabsb", "pabsw", "pabsd", "pmulhrsw", "pmaddubsw"]
UNPACK_LOW = ["punpcklbw", "punpcklwd", "punpckldq"]
SHIFTS = ["psllw", "pslld", "psllq", "psrlw", "psrld", "psrlq", "psraw", "psrad"]
PALIGNR_IMMS = [0, 1, 3, 7, 8, 9, 15, 16, 17]

BODIES = {**{op: _binary(op) for op in BINARY}, **{op: _unpack_low(op) for op in UNPACK_LOW},
          **{op: _shift(op) for op in SHIFTS}, "palignr": _with_imm("palignr", PALIGNR_IMMS[:8]),
          "palignr_high": _with_imm("palignr", PALIGNR_IMMS[8:] + [31, 255]),
          "pshufw": _PSHUFW, "insert_extract": _INSERT_EXTRACT, "moves": _MOVES,
          "maskmov": _MASKMOV, "convert": _CONVERT, "transition": _TRANSITION, "alias": _ALIAS}


def _loop(body: str) -> str:
    return f"""
1:
{body}
    add rsi, {REC}
    dec ecx
    jnz 1b
    """


@lru_cache(maxsize=1)
def _code() -> dict[str, bytes]:
    return dict(zip(BODIES, N.assemble([_loop(v) for v in BODIES.values()])))


# -- running and comparing ----------------------------------------------------------
def _mask() -> bytes:
    m = bytearray(b"\xff" * REC)
    m[FLAGS:FLAGS + 8] = ARITH_FLAGS.to_bytes(8, "little")
    for env in [SAVE] + [ENV(k) for k in range(4)]:
        m[env + 4:env + 6] = SW_NO_C1.to_bytes(2, "little")
        m[env + 12:env + 28] = bytes(16)      # FIP, FCS, FOP, FDP, FDS: not tracked
    return bytes(m)


MASK = _mask()


def run_both(name: str, recs: list[dict]) -> None:
    assert 0 < len(recs) <= MAX_RECORDS
    code = _code()[name]
    data = pack(recs)
    regs = {"rcx": len(recs), "rsi": DATA_ADDR}
    ndata = N.run_native(code, regs, data=data).data
    res = N.run_translated(code, regs, data=data, reuse=False)
    assert res.fault == 0 and res.host_signal == 0, (res.fault, res.host_signal)
    assert not res.untranslatable, res.untranslatable
    for i, r in enumerate(recs):
        a = ndata[i * REC:(i + 1) * REC]
        b = res.data[i * REC:(i + 1) * REC]
        bad = [j for j in range(REC) if (a[j] ^ b[j]) & MASK[j]]
        if bad:
            lo, hi = bad[0] & ~15, (bad[-1] | 15) + 1
            raise AssertionError(
                f"{name}: record {i} (a={r['a']:#018x} b={r['b']:#018x} xin={r.get('xin', 0):#x} "
                f"mx={r.get('mx', 0x1F80):#x}) differs at offsets {bad[:12]}\n"
                f" native: {a[lo:hi].hex(' ', 2)}\n transl: {b[lo:hi].hex(' ', 2)}")
    end = len(recs) * REC
    assert ndata[end:end + REC] == res.data[end:end + REC]


def _chunks(recs: list[dict]):
    for i in range(0, len(recs), MAX_RECORDS):
        yield recs[i:i + MAX_RECORDS]


PROPERTY = settings(max_examples=examples(4), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- tests ------------------------------------------------------------------------------
@pytest.mark.parametrize("op", BINARY + UNPACK_LOW)
def test_binary_corners(op):
    """Every pair of lane-edge values (saturation boundaries, signs, zero)."""
    for chunk in _chunks(corner_records()):
        run_both(op, chunk)


@pytest.mark.parametrize("op", BINARY + UNPACK_LOW)
@PROPERTY
@given(recs=st.lists(records(), min_size=1, max_size=MAX_RECORDS))
def test_binary(op, recs):
    run_both(op, recs)


@pytest.mark.parametrize("op", SHIFTS)
def test_shift_counts(op):
    """Counts at and beyond the lane width, from a register, memory and imm8."""
    run_both(op, [dict(a=a, b=c) for a in EDGES[::3] for c in SHIFT_COUNTS][:MAX_RECORDS])


@pytest.mark.parametrize("op", SHIFTS)
@PROPERTY
@given(recs=st.lists(records(b=count), min_size=1, max_size=MAX_RECORDS))
def test_shift(op, recs):
    run_both(op, recs)


OTHER = ["palignr", "palignr_high", "pshufw", "insert_extract", "moves", "maskmov", "alias"]


@pytest.mark.parametrize("name", OTHER)
def test_other_corners(name):
    for chunk in _chunks(corner_records()):
        run_both(name, chunk)


@pytest.mark.parametrize("name", OTHER)
@PROPERTY
@given(recs=st.lists(records(), min_size=1, max_size=MAX_RECORDS))
def test_other(name, recs):
    run_both(name, recs)


@PROPERTY
@given(recs=st.lists(records(), min_size=1, max_size=MAX_RECORDS))
def test_convert(recs):
    """cvtpi2ps/cvtpi2pd/cvt(t)ps2pi/cvt(t)pd2pi, both forms, every rounding mode."""
    run_both("convert", recs)


def test_convert_corners():
    recs = [dict(a=a, b=b, xin=x, mx=mx) for mx in MXCSRS
            for a, b, x in zip(EDGES, reversed(EDGES),
                               SPECIAL_F32 + [x | y << 64 for x, y in zip(SPECIAL_F64,
                                                                          reversed(SPECIAL_F64))])]
    for chunk in _chunks(recs):
        run_both("convert", chunk)


def test_transition():
    """Only instructions that name an mm register switch to MMX state."""
    run_both("transition", corner_records(CORNERS[:4])[:16])


def test_alias_corners():
    """mm writes seen by x87 code (fstp m80, fadd of the pseudo-values,
    fnstenv's tag word, stack overflow after the switch), x87 values seen
    as mm registers, emms then x87 code."""
    vals = [0, 1 << 63, M64, (1 << 63) - 1, 0xC000000000000000, 0x4000000000000001]
    recs = [dict(a=a, b=b, xin=x) for a in vals for b in vals
            for x in (0x3FFF_8000000000000000, 0xC005_C000000000000001, 0x7FFF_C000000000000000)]
    for chunk in _chunks(recs):
        run_both("alias", chunk)


_FXSAVE = {"fxsave": f"""
    fld1
    movq mm2, {_q(A)}
    fxsave [rsi+512]
    emms
    fxsave [rsi+1024]
    fld1
    fld1
    fxsave [rsi+1536]
"""}


def test_fxsave_after_mmx():
    """fxsave's abridged tag byte, TOP and registers after an MMX write and
    after emms (x87_env.py builds the image from the same state)."""
    for a in (0, 1 << 63, M64, 0x0123456789ABCDEF):
        data = pack([dict(a=a, b=0)])
        code, = N.assemble([_FXSAVE["fxsave"]])
        ndata = N.run_native(code, {"rsi": DATA_ADDR}, data=data).data
        res = N.run_translated(code, {"rsi": DATA_ADDR}, data=data, reuse=False)
        assert res.fault == 0 and not res.untranslatable
        for base in (512, 1024, 1536):
            for what, off, n, mask in (("fcw", 0, 2, 0xFFFF), ("fsw", 2, 2, SW_NO_C1),
                                       ("ftw", 4, 1, 0xFF)):
                nv = int.from_bytes(ndata[base + off:base + off + n], "little") & mask
                tv = int.from_bytes(res.data[base + off:base + off + n], "little") & mask
                assert nv == tv, (hex(a), base, what, hex(nv), hex(tv))
            for i in range(8):
                r = base + 32 + 16 * i
                assert ndata[r:r + 10] == res.data[r:r + 10], (hex(a), base, f"st{i}")

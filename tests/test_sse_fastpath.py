"""Differential tests of the fast paths of SSE arithmetic
(translator/semantics/sse_fpcore.py) in multi-instruction regions: the
rounding-mode check folded into the NaN check (``rc_nan``) and the host's own
instructions (``host_op``), each against the host CPU (see native.py).

Every snippet changes MXCSR.RC with ldmxcsr between its operations (also
inside a loop), so a mode read too early or hoisted too far shows up; the
operands are mostly NaNs (quiet and signalling, with payloads, in either or
both operands), infinities, zeros, denormals and inexact quotients.  Both
lowerings run: the host instructions (x86 targets with AVX-512F) and the
generic IR used elsewhere.
"""
from __future__ import annotations

import os
import random
import struct
import sys

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import native as N  # noqa: E402

pytestmark = pytest.mark.skipif(not N.have_toolchain(), reason="needs GNU as, objcopy and nm")

INPUTS = int(os.environ.get("BTTOOL_SSE_FASTPATH_INPUTS", "120"))
M32, M64 = (1 << 32) - 1, (1 << 64) - 1
MXCSR_MASKS = 0x1F80

SNIPPETS = {
    "scalar double": "addsd xmm1, xmm2; ldmxcsr dword ptr [rsi]; subsd xmm3, xmm4; "
                     "mulsd xmm5, xmm6; divsd xmm7, xmm8; sqrtsd xmm9, xmm10; "
                     "ldmxcsr dword ptr [rsi+4]; addsd xmm11, xmm12; "
                     "divsd xmm13, qword ptr [rsi+16]; mulsd xmm14, xmm14",
    "scalar single": "addss xmm1, xmm2; ldmxcsr dword ptr [rsi]; subss xmm3, xmm4; "
                     "mulss xmm5, xmm6; divss xmm7, xmm8; sqrtss xmm9, xmm10; "
                     "ldmxcsr dword ptr [rsi+4]; addss xmm11, xmm12; "
                     "divss xmm13, dword ptr [rsi+16]; mulss xmm14, xmm14",
    "packed": "addpd xmm1, xmm2; ldmxcsr dword ptr [rsi]; subpd xmm3, xmm4; mulps xmm5, xmm6; "
              "divpd xmm7, xmm8; sqrtps xmm9, xmm10; ldmxcsr dword ptr [rsi+4]; "
              "addps xmm11, xmm12; divps xmm13, xmmword ptr [rsi+16]; sqrtpd xmm14, xmm14",
    # NaNs and directed results flowing from one operation into the next
    "chain": "mulsd xmm1, xmm2; addsd xmm1, xmm3; ldmxcsr dword ptr [rsi]; divsd xmm1, xmm4; "
             "sqrtsd xmm2, xmm1; subsd xmm2, xmm1; mulpd xmm3, xmm1; ldmxcsr dword ptr [rsi+4]; "
             "addpd xmm3, xmm4; divsd xmm4, xmm3",
    # a loop whose every iteration runs in another rounding mode
    "loop": "mov ecx, 4; 1: addsd xmm1, xmm2; mulpd xmm3, xmm4; "
            "ldmxcsr dword ptr [rsi+rcx*4-4]; divsd xmm5, xmm6; subps xmm7, xmm8; "
            "sqrtsd xmm9, xmm5; dec ecx; jnz 1b",
}

_F64_SPECIAL = [0x7FF8000000000000, 0xFFF8000000000000, 0x7FF4000000000001, 0xFFF0000000000123,
                0x7FF8000000000ABC, 0xFFFC00000000BEEF, 0x7FF0000000000000, 0xFFF0000000000000,
                0, 1 << 63, 1, 0x000FFFFFFFFFFFFF, 0x8000000000000001, 0x3FF0000000000000,
                0xBFF0000000000000, 0x7FEFFFFFFFFFFFFF, 0x4008000000000000, 0x3FD5555555555555]
_F32_SPECIAL = [0x7FC00000, 0xFFC00000, 0x7FA00001, 0xFF800123, 0x7FC00ABC, 0xFFE0BEEF,
                0x7F800000, 0xFF800000, 0, 1 << 31, 1, 0x007FFFFF, 0x80000001, 0x3F800000,
                0xBF800000, 0x7F7FFFFF, 0x40400000, 0x3EAAAAAB]


def _lane(rng: random.Random, bits: int) -> int:
    """Mostly special values (a third NaNs), else inexact finite ones."""
    r = rng.random()
    if r < 0.55:
        return rng.choice(_F64_SPECIAL if bits == 64 else _F32_SPECIAL)
    if r < 0.7:
        return rng.getrandbits(bits)
    x = rng.uniform(-1, 1) * 10.0 ** rng.randint(-30, 30) / rng.choice([1, 3, 7])
    return struct.unpack("<Q", struct.pack("<d", x))[0] if bits == 64 else \
        struct.unpack("<I", struct.pack("<f", x))[0]


def _xmm(rng: random.Random) -> int:
    bits = rng.choice([32, 64])
    return sum(_lane(rng, bits) << (bits * i) for i in range(128 // bits))


def _input(rng: random.Random) -> N.Input:
    xmm = [_xmm(rng) for _ in range(16)]
    modes = b"".join(struct.pack("<I", MXCSR_MASKS | rng.randint(0, 3) << 13) for _ in range(4))
    data = modes + b"".join(_xmm(rng).to_bytes(16, "little") for _ in range(3))
    regs = {g: rng.getrandbits(64) for g in N.GPRS if g not in ("rsp", "rsi")}
    regs["rsi"] = N.DATA_ADDR
    return N.Input(xmm=xmm, regs=regs, mxcsr=MXCSR_MASKS | rng.randint(0, 3) << 13, data=data)


def _differences(nat: N.Outcome, tr: N.Outcome) -> list[str]:
    errs = list(tr.notes)
    errs += [f"xmm{i}: native {nat.xmm[i]:032x} translated {tr.xmm[i]:032x}"
             for i in range(16) if nat.xmm[i] != tr.xmm[i]]
    if (nat.mxcsr ^ tr.mxcsr) & ~0x3F:       # exception flags are not modelled
        errs.append(f"mxcsr: native {nat.mxcsr:#x} translated {tr.mxcsr:#x}")
    if nat.data != tr.data:
        errs.append("data area differs")
    if nat.regs["rcx"] != tr.regs["rcx"]:
        errs.append(f"rcx: native {nat.regs['rcx']:#x} translated {tr.regs['rcx']:#x}")
    return errs


@pytest.fixture(params=["host", "generic"])
def lowering(request, monkeypatch) -> str:
    """Translate with the host's instructions or with the generic IR (each
    snippet is translated afresh for either: LiftOptions.host_instructions)."""
    monkeypatch.setattr(N, "HOST_INSTRUCTIONS", request.param == "host")
    return request.param


@pytest.mark.usefixtures("isa_tier")
@pytest.mark.parametrize("name", list(SNIPPETS))
def test_rounding_changes_and_nans_in_region(name: str, lowering: str) -> None:
    code = N.assemble([SNIPPETS[name]])[0]
    rng = random.Random(f"{name}/{lowering}")
    for _ in range(INPUTS):
        inp = _input(rng)
        errs = _differences(N.run_native(code, **vars(inp)), N.run_translated(code, **vars(inp)))
        if errs:
            pytest.fail(f"{SNIPPETS[name]}\n  mxcsr={inp.mxcsr:#x} modes={inp.data[:16].hex()}\n  "
                        + "\n  ".join(errs))


def _region_ir(code: bytes) -> str:
    """The optimised IR of the region function translated from ``code``
    for the host (without the cold functions it calls)."""
    from bttool.ir import codegen
    from bttool.runtime.window import user_options
    from bttool.translator.translate import translate
    code += b"\xcc\x0f\x0b"

    def read(addr: int, n: int) -> bytes:
        return code[addr - 0x1000:addr - 0x1000 + n]
    text = translate([0x1000], read, user_options(), codegen.host_target(2),
                     want_ir=True).ir_text
    return next(f for f in text.split("\ndefine ")
                if f.split("(")[0].split("@")[-1].startswith("bt_"))


@pytest.mark.parametrize("name", ["scalar double", "scalar single"])
def test_host_instructions_are_used(name: str) -> None:
    """On an AVX-512F host the scalar forms are the host's instructions with
    static rounding and no NaN check.  An IR-shape test guarding a
    performance property: the generic IR gives the same results, only
    slower (and the "host" lowering of the results test above would compare
    the generic IR twice)."""
    from bttool.ir import codegen
    if "+avx512f" not in codegen.host_target().features.split(","):
        pytest.skip("host without AVX-512F")
    text = _region_ir(N.assemble([SNIPPETS[name]])[0])
    sfx = "sd" if "double" in name else "ss"
    for op in ("add", "sub", "mul", "div"):
        assert f"@llvm.x86.avx512.mask.{op}.{sfx}.round(" in text, op
    assert f"@llvm.x86.avx512.mask.sqrt.{sfx}(" in text
    assert "fcmp uno" not in text       # (the cold exact functions test NaNs)


# A pair loaded for one of its halves right after a store to the other (as
# gcc does for struct fields).  The 16-byte load is one access, as natively
# (guest loads are volatile, ir/memory.py: a half that nobody reads is not
# dropped, since it may fault; tests/test_isa_corners.py).
PAIR_LOAD = ("movsd qword ptr [rsi+16], xmm1; movupd xmm2, xmmword ptr [rsi+16]; "
             "unpckhpd xmm2, xmm2; addsd xmm3, xmm2; movdqu xmm4, xmmword ptr [rsi+32]; "
             "movups xmm5, xmmword ptr [rsi+8]")


@pytest.mark.usefixtures("isa_tier")
def test_pair_load_results() -> None:
    code = N.assemble([PAIR_LOAD])[0]
    N.forget_translation()
    rng = random.Random("pair")
    for _ in range(INPUTS):
        inp = _input(rng)
        errs = _differences(N.run_native(code, **vars(inp)), N.run_translated(code, **vars(inp)))
        assert not errs, errs

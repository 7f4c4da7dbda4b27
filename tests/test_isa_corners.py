"""Differential tests (host CPU as oracle) for corners of the ISA that real
programs hit (issue 23: libgcc's unwinder runs ``rdsspq``):

* the hint and reserved-NOP spaces ``0F 18``-``0F 1F`` (any ModRM, any
  prefixes) and ``0F 0D`` (prefetch*): NOPs that touch neither registers,
  flags nor memory, and never fault on a bad address; LOCK, the register
  form of ``0F 0D`` and the CET instructions outside the hint space raise
  SIGILL, natively (checked in a forked child) and translated;
* segment-register reads (``mov r/m, Sreg``, ``push fs/gs``) and loads;
* ``enter`` at every nesting level, 16-bit ``leave``/``push``/``pop``/
  ``call``/``ret``;
* the undocumented x87 aliases (fxch4/7, fcom2, fcomp3/5, fstp1/8/9).

Faulting code never runs natively in the test process: ``native_signal``
runs it in a forked child and reports the signal that killed it.
"""
from __future__ import annotations

import os
import random
import signal
import sys

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import native as N  # noqa: E402
from bttool.ir import state as S  # noqa: E402
from native import CODE_ADDR, DATA_ADDR, STACK_TOP  # noqa: E402

M64 = (1 << 64) - 1
ALL_FLAGS = N.ARITH | N.DF


def bad_pointer_regs(seed: int) -> dict[str, int]:
    """Every GPR but rsp points nowhere (non-canonical or unmapped), so a
    hint NOP that accessed memory would fault natively and translated."""
    rnd = random.Random(seed)
    regs = {}
    for i, r in enumerate(N.GPRS):
        regs[r] = (rnd.choice([0x8000_0000_0000_0000, 0x0000_7F00_0000_0000, 0xFFFF_8000_0000_0000,
                               0x0000_0000_0000_0000]) | rnd.getrandbits(40)) & M64
    regs["rsp"] = STACK_TOP - 256
    return regs


def native_signal(code: bytes, regs: dict[str, int] | None = None) -> int:
    """Run ``code`` natively in a forked child: the signal that killed it, or 0."""
    pid = os.fork()
    if pid == 0:
        try:
            for s in (signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGTRAP):
                signal.signal(s, signal.SIG_DFL)
            N.run_native(code, regs)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0


def same_as_host(code: bytes, regs: dict[str, int], rflags: int = 0x202, data: bytes = b"",
                 flag_mask: int = ALL_FLAGS, what: str = "", stack_check: tuple | None = None):
    nat = N.run_native(code, regs, rflags, data=data)
    nat_stack = N.stack_bytes(*stack_check) if stack_check else None
    tr = N.run_translated(code, regs, rflags, data=data)
    N.compare(nat, tr, flag_mask=flag_mask, what=what or code.hex())
    if stack_check:
        from bttool.runtime import snippet
        mem, _ = snippet._machine()
        got = mem.read(*stack_check)
        assert got == nat_stack, f"{what or code.hex()}: stack native {nat_stack.hex()} " \
                                 f"translated {got.hex()}"
    return nat, tr


def expect_ud(code: bytes, regs: dict[str, int], at: int = 0, what: str = "") -> None:
    """``code`` raises SIGILL at offset ``at`` natively and #UD translated,
    changing nothing before."""
    sig = native_signal(code, regs)
    assert sig == signal.SIGILL, f"{what} [{code.hex()}]: native signal {sig}, expected SIGILL"
    r = N.run_translated(code, regs)
    assert r.fault == S.FAULT_UD, f"{what} [{code.hex()}]: translated fault {r.fault}"
    assert r.regs["rip"] == CODE_ADDR + at, f"{what}: rip {r.regs['rip']:#x}"


# ---------------------------------------------------------------------------
# 1. the hint space

PREFIXES = [b"", b"\x66", b"\xf3", b"\xf2", b"\x48", b"\xf3\x48", b"\x66\x48", b"\xf2\x41",
            b"\x67", b"\x66\xf3\x4d", b"\x2e\x3e\x64", b"\x48\x66"]


def _modrm_tail(modrm: int, rnd: random.Random) -> bytes:
    """Random SIB and displacement bytes for ``modrm``."""
    mod, rm = modrm >> 6, modrm & 7
    if mod == 3:
        return b""
    out = b""
    if rm == 4:
        sib = rnd.randrange(256)
        out += bytes([sib])
        if mod == 0 and sib & 7 == 5:
            out += rnd.randbytes(4)
    elif mod == 0 and rm == 5:
        out += rnd.randbytes(4)
    return out + rnd.randbytes({0: 0, 1: 1, 2: 4}[mod])


def hint_sequence(prefix: bytes, opcode: int, seed: int) -> bytes:
    """Every ModRM of ``0F opcode`` (memory forms only for 0F 0D) behind
    ``prefix``, one after another."""
    rnd = random.Random(seed)
    code = b""
    for modrm in range(256):
        if opcode == 0x0D and modrm >> 6 == 3:
            continue
        code += prefix + bytes([0x0F, opcode, modrm]) + _modrm_tail(modrm, rnd)
    return code


@pytest.mark.parametrize("opcode", [0x0D] + list(range(0x18, 0x20)), ids=lambda o: f"0f{o:02x}")
@pytest.mark.parametrize("prefix", PREFIXES, ids=lambda p: p.hex() or "none")
def test_hint_space_is_nop(prefix, opcode):
    seed = opcode * 1000 + PREFIXES.index(prefix)
    code = hint_sequence(prefix, opcode, seed)
    regs = bad_pointer_regs(seed)
    rflags = 0x202 | (random.Random(seed).getrandbits(12) & ALL_FLAGS)
    data = random.Random(seed).randbytes(256)
    nat, tr = same_as_host(code, regs, rflags, data=data, what=f"{prefix.hex()} 0f {opcode:02x}")
    assert nat.regs == {**regs, "rip": CODE_ADDR + len(code)}


NAMED_HINTS = ["endbr64", "endbr32", "rdsspd eax", "rdsspq rax", "rdsspq r15", "nop dword ptr [rax]",
               "nop word ptr [rax+rax*1+0x12345678]", "prefetcht0 [rax]", "prefetchnta [rip+0x7fff0000]",
               "prefetchw [rbx]", "prefetchwt1 [rcx]", "prefetch [rdx]", "cldemote [rax]",
               "bndmov bnd0, bnd1", "bndcl bnd0, [rax]", "bndmk bnd1, [rax+8]", "bndldx bnd0, [rax]",
               "bndstx [rax], bnd3", "nop eax", "nop rax", "nop word ptr [rsp]"]


def test_named_hints_are_nops():
    codes = N.assemble(NAMED_HINTS)
    seqs = [b"".join(codes), b"".join(reversed(codes))]
    # each one also alone, after something that sets registers and flags
    prep, = N.assemble(["mov rax, 0x123456789; add rax, rbx"])
    for seed, code in enumerate(seqs + [prep + c for c in codes]):
        regs = bad_pointer_regs(seed)
        same_as_host(code, regs, 0x202 | N.CF | N.ZF, what=code.hex())


def test_rdssp_keeps_its_destination():
    """rdssp with shadow stacks off is a NOP: libgcc's unwinder reads 0 (the
    register was zeroed before) and skips its shadow-stack unwinding."""
    code, = N.assemble(["xor eax, eax; rdsspq rax; mov rbx, -1; rdsspd ebx"])
    same_as_host(code, {"rax": 5}, what="rdssp")


UD_FORMS = {
    "lock nop": b"\xf0\x0f\x1f\x00", "lock 66 nop": b"\xf0\x66\x0f\x1f\x00",
    "lock prefetchnta": b"\xf0\x0f\x18\x00", "lock prefetch": b"\xf0\x0f\x0d\x00",
    "lock endbr64": b"\xf0\xf3\x0f\x1e\xfa",
    "0f0d reg /0": b"\x0f\x0d\xc0", "0f0d reg /1": b"\x0f\x0d\xc8", "0f0d reg /7": b"\x0f\x0d\xff",
    "setssbsy": b"\xf3\x0f\x01\xe8", "saveprevssp": b"\xf3\x0f\x01\xea",
    "rstorssp": b"\xf3\x0f\x01\x2e", "wrssd": b"\x0f\x38\xf6\x07", "wrssq": b"\x48\x0f\x38\xf6\x07",
    "wrussd": b"\x66\x0f\x38\xf5\x07", "wrussq": b"\x66\x48\x0f\x38\xf5\x07",
    "clrssbsy": b"\xf3\x0f\xae\x37", "incsspd": b"\xf3\x0f\xae\xe8", "incsspq": b"\xf3\x48\x0f\xae\xe8",
}


@pytest.mark.parametrize("name", list(UD_FORMS))
def test_cet_and_locked_hints_raise_sigill(name):
    regs = N.default_regs()
    regs["rsi"] = regs["rdi"] = DATA_ADDR
    pre, = N.assemble(["add rax, rbx"])
    expect_ud(pre + UD_FORMS[name], regs, at=len(pre), what=name)

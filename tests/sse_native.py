"""Native and translated execution of SSE snippets for tests/test_sse_semantics.py.

``run_native(code, inp)`` runs raw x86-64 code on the host CPU (the oracle):
a trampoline assembled once per session with GNU ``as`` (+ ``objcopy -O
binary``) loads xmm0-15, mxcsr, rflags and the GPRs from a context block,
calls the code (followed by ``ret``) and stores everything back.  Memory
operands address the data area through ``rsi`` (``BASE``): natively it
points at an anonymous mapping, under translation at ``DATA_ADDR``; rsi is
therefore never compared.  Snippets must not fault or touch the stack.

``run_translated(code, inp)`` is ``bttool.runtime.snippet.run_snippet`` but
keeps the translation while the code bytes stay the same, so many examples
of one instruction cost one translation.

``assemble(lines)`` turns Intel-syntax instructions into one byte string
each with a single ``as`` call.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache

from bttool.ir import intrinsics, state as st
from bttool.runtime import snippet
from bttool.runtime.snippet import DATA_ADDR, STACK_ADDR, STACK_SIZE
from bttool.translator.guestcode import UnmappedCode
from native import skip_unless_host_runs

GPRS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
BASE = "rsi"
CMP_GPRS = tuple(g for g in GPRS if g not in ("rsp", BASE))
DATA_BYTES = 640         # bytes of the data area the snippets use and compare
CF, PF, AF, ZF, SF, DF, OF = 1, 4, 16, 64, 128, 1024, 2048
ARITH = CF | PF | AF | ZF | SF | OF

# context block: xmm0-15 | 16 GPRs | rflags | mxcsr
_XMM_OFF, _GPR_OFF, _FL_OFF, _MX_OFF, _CTX_SIZE = 0, 256, 384, 392, 400

_TRAMPOLINE = """
    .intel_syntax noprefix
    .text
    .globl run
run:                                # rdi = context, rsi = code
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    sub rsp, 8
    stmxcsr [rsp]
    push rdi
    push rsi
{load_xmm}
    ldmxcsr [rdi+{mx}]
    push qword ptr [rdi+{fl}]
    popfq
{load_gpr}
    mov rdi, [rdi+{rdi}]
    call qword ptr [rsp]
    pushfq
    push rdi
    mov rdi, [rsp+24]
{store_gpr}
    pop rax
    mov [rdi+{rdi}], rax
    pop rax
    mov [rdi+{fl}], rax
{store_xmm}
    stmxcsr [rdi+{mx}]
    add rsp, 16
    ldmxcsr [rsp]
    add rsp, 8
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    cld
    ret
"""


def _gpr_off(name: str) -> int:
    return _GPR_OFF + 8 * GPRS.index(name)


def _trampoline_source() -> str:
    movable = [g for g in GPRS if g not in ("rsp", "rdi")]
    return _TRAMPOLINE.format(
        load_xmm="\n".join(f"    movdqu xmm{i}, [rdi+{_XMM_OFF + 16 * i}]" for i in range(16)),
        store_xmm="\n".join(f"    movdqu [rdi+{_XMM_OFF + 16 * i}], xmm{i}" for i in range(16)),
        load_gpr="\n".join(f"    mov {g}, [rdi+{_gpr_off(g)}]" for g in movable),
        store_gpr="\n".join(f"    mov [rdi+{_gpr_off(g)}], {g}" for g in movable),
        mx=_MX_OFF, fl=_FL_OFF, rdi=_gpr_off("rdi"))


def have_toolchain() -> bool:
    return shutil.which("as") is not None and shutil.which("objcopy") is not None


def _as(source: str) -> tuple[bytes, str]:
    """Assemble ``source``: (flat .text bytes, ``nm`` output)."""
    with tempfile.TemporaryDirectory() as d:
        s, o, bin_ = (os.path.join(d, n) for n in ("a.s", "a.o", "a.bin"))
        with open(s, "w") as f:
            f.write(source)
        r = subprocess.run(["as", "--64", "-o", o, s], capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"as failed: {r.stderr}")
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", o, bin_], check=True,
                       capture_output=True)
        with open(bin_, "rb") as f:
            text = f.read()
        syms = subprocess.run(["nm", o], check=True, capture_output=True, text=True).stdout
    return text, syms


def assemble(lines: list[str]) -> list[bytes]:
    """Each Intel-syntax line (``;`` separates instructions within one
    snippet) to its machine code, with one ``as`` run."""
    src = [".intel_syntax noprefix", ".text"]
    for i, line in enumerate(lines):
        src.append(f"L{i}:")
        src.extend("    " + part.strip() for part in line.split(";"))
    src.append(f"L{len(lines)}:")
    text, syms = _as("\n".join(src) + "\n")
    offs = {}
    for line in syms.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].startswith("L") and parts[2][1:].isdigit():
            offs[int(parts[2][1:])] = int(parts[0], 16)
    return [text[offs[i]:offs[i + 1]] for i in range(len(lines))]


@dataclass
class Input:
    xmm: list[int]
    regs: dict[str, int]
    rflags: int = 0x202
    mxcsr: int = 0x1F80
    data: bytes = b""


@dataclass
class Output:
    xmm: list[int]
    regs: dict[str, int]
    rflags: int
    mxcsr: int
    data: bytes
    notes: list = field(default_factory=list)


class _Native:
    def __init__(self) -> None:
        tramp = assemble_trampoline()
        self.code_map = mmap.mmap(-1, 0x2000, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self.code_addr = ctypes.addressof(ctypes.c_char.from_buffer(self.code_map))
        self.code_map[0x1000:0x1000 + len(tramp)] = tramp
        self.data_map = mmap.mmap(-1, 0x1000, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.data_addr = ctypes.addressof(ctypes.c_char.from_buffer(self.data_map))
        self.ctx = ctypes.create_string_buffer(_CTX_SIZE + 64)
        self.ctx_addr = (ctypes.addressof(self.ctx) + 63) & -64
        self.fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(self.code_addr + 0x1000)

    def run(self, code: bytes, inp: Input) -> Output:
        assert len(code) < 0xF00
        self.code_map[0:len(code) + 1] = code + b"\xc3"
        self.data_map[0:DATA_BYTES] = inp.data.ljust(DATA_BYTES, b"\0")[:DATA_BYTES]
        buf = bytearray(_CTX_SIZE)
        for i, v in enumerate(inp.xmm):
            buf[16 * i:16 * i + 16] = (v & ((1 << 128) - 1)).to_bytes(16, "little")
        regs = dict(inp.regs)
        regs[BASE] = self.data_addr
        for g in GPRS:
            struct.pack_into("<Q", buf, _gpr_off(g), regs.get(g, 0) & ((1 << 64) - 1))
        struct.pack_into("<QI", buf, _FL_OFF, inp.rflags, inp.mxcsr)
        ctypes.memmove(self.ctx_addr, bytes(buf), _CTX_SIZE)
        self.fn(self.ctx_addr, self.code_addr)
        out = ctypes.string_at(self.ctx_addr, _CTX_SIZE)
        return Output(
            xmm=[int.from_bytes(out[16 * i:16 * i + 16], "little") for i in range(16)],
            regs={g: struct.unpack_from("<Q", out, _gpr_off(g))[0] for g in GPRS},
            rflags=struct.unpack_from("<Q", out, _FL_OFF)[0],
            mxcsr=struct.unpack_from("<I", out, _MX_OFF)[0],
            data=bytes(self.data_map[0:DATA_BYTES]))


@lru_cache(maxsize=1)
def assemble_trampoline() -> bytes:
    return _as(_trampoline_source())[0]


@lru_cache(maxsize=1)
def _native() -> _Native:
    return _Native()


def run_native(code: bytes, inp: Input) -> Output:
    """Run ``code`` on the host CPU; code needing a feature the host lacks
    skips the calling test (``native.skip_unless_host_runs``)."""
    skip_unless_host_runs(code)
    return _native().run(code, inp)


_last_code: list = [None]


def run_translated(code: bytes, inp: Input) -> Output:
    """run_snippet, reusing the previous translation when ``code`` is unchanged."""
    mem, ex = snippet._machine()
    if _last_code[0] != code:
        seen = len(ex.stats.untranslatable)
        r = snippet.run_snippet(code, regs={**inp.regs, BASE: DATA_ADDR}, rflags=inp.rflags,
                                xmm=inp.xmm, data=inp.data, mxcsr=inp.mxcsr)
        _last_code[0] = code
        if r.fault or r.host_signal:
            _last_code[0] = None
        notes = []
        if r.fault or r.host_signal:
            notes.append(f"fault={r.fault} signal={r.host_signal}")
        if r.untranslatable[seen:]:
            notes.append(f"untranslatable {r.untranslatable[seen:]}")
        return Output(r.xmm, r.regs, r.rflags, r.mxcsr, r.data[:DATA_BYTES], notes)
    s = ex.state
    st.reset(s)         # (keeps the runtime's links in the state)
    for name, value in {**inp.regs, BASE: DATA_ADDR}.items():
        setattr(s, name, value & 0xFFFFFFFFFFFFFFFF)
    if "rsp" not in inp.regs:
        s.rsp = STACK_ADDR + STACK_SIZE - 256
    st.set_rflags(s, inp.rflags)
    s.mxcsr = inp.mxcsr
    if hasattr(s, "fpu_cw"):
        s.fpu_cw = 0x037F
    for i, v in enumerate(inp.xmm):
        st.set_xmm(s, i, v)
    mem.write_force(DATA_ADDR, inp.data.ljust(DATA_BYTES, b"\0")[:DATA_BYTES])
    end = snippet.CODE_ADDR + len(code)
    s.rip = snippet.CODE_ADDR
    int3 = intrinsics.TABLE["int3"].id
    notes = []
    for _ in range(1000):
        reason = ex.run_once()
        if reason == st.EXIT_MISS:
            try:
                ex.ensure(s.rip)
            except UnmappedCode:
                notes.append("page fault")
                break
            continue
        if reason == st.EXIT_HOT:     # the reused translation's counter: stay in this tier
            continue
        if reason == st.EXIT_INTRINSIC and intrinsics.split_exit_info(int(s.exit_info))[0].id == int3 \
                and s.rip == end:
            break
        notes.append(f"exit {reason} info {s.exit_info} at {s.rip:#x}")
        break
    if notes:
        _last_code[0] = None
    return Output([st.get_xmm(s, i) for i in range(16)],
                  {n: getattr(s, n) for n in GPRS}, st.rflags(s), s.mxcsr,
                  mem.read(DATA_ADDR, DATA_BYTES), notes)


__all__ = ["assemble", "run_native", "run_translated", "Input", "Output"]

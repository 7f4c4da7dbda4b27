"""The oracle harness: one instruction snippet run on the host CPU and under
translation from one starting state, each returning the state afterwards as
the same ``Outcome``, so differential tests compare like with like.

``run_native`` runs raw x86-64 machine code in this very process with the
architectural starting state ``run_translated`` (``run_snippet``) gives
translated code:

* the code is copied to ``CODE_ADDR`` (where translated snippets run, so
  rip-relative operands and pushed return addresses are the same numbers),
  followed by a ``jmp`` to the trampoline's epilogue;
* the data area is mapped at ``DATA_ADDR`` and the stack at ``STACK_ADDR``
  (MAP_FIXED_NOREPLACE), so pointers into them are the same numbers too;
* the trampoline (assembled once per session) saves the host's
  callee-saved registers and its x87/SSE state, loads the snippet's
  context - ``xrstor`` (x87, SSE and AVX components) of the x87 registers,
  control/status/tag words, MXCSR and ymm0-15, then rflags and all 16
  GPRs - jumps to the code, and afterwards stores everything back (rflags
  before it clears DF; ``xsave``) and returns to C.

The context is one ctypes structure, ``Context``; its x87/SSE/AVX part is
a standard-format XSAVE area and comes last, 64-byte aligned: ``fx``
(``FxArea``, the fxsave image, the area's 512-byte legacy region), then
``xsave_header`` (``XsaveHeader``) and ``ymmh`` (the YMM_Hi128 component,
bits 255:128 of ymm0-15, 576 bytes into the area).  The translated side
reads its final state into the same fxsave image
(``bttool.runtime.fpstate.fxsave_image``) plus the upper halves of its
``ymmh0..15`` fields, and both outcomes are decoded by one function
(``_outcome``, which also reads the XSAVE header: a component the host
left in its init state reads as its init values).  On a host without AVX
(``NATIVE_YMM`` false; ``BTTOOL_NATIVE_FXSAVE=1`` forces it) the
trampoline uses ``fxsave``/``fxrstor`` as before: native outcomes then
have ``ymmh`` None and ``compare`` leaves the upper halves alone.

Both sides start from the x87 state ``fninit`` leaves (control word 0x37F,
every register +0 and empty), as ``run_snippet`` does; xmm registers (or
whole ymm registers: ``ymm``, 256-bit values; the upper halves are zero
otherwise) and MXCSR come from the arguments.  Registers missing from
``regs`` start at 0, rsp near the stack top.

Code that faults natively (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP) does
not kill the test process: while it runs, a handler of the trampoline's
own (on an alternate stack: the code's rsp may be anything) records the
signal and resumes in the epilogue, and ``run_native`` raises
``NativeFault``.  A test that expects a fault catches it; any other test
fails with the signal and where it came from, instead of taking pytest down
(an instruction that one vendor runs and the other refuses, say).
Asynchronous signals are blocked while the guest code runs, because the
kernel would push a signal frame onto whatever rsp the code left.

``run_translated`` keeps the translation while consecutive calls run
identical code bytes (see its docstring; BTTOOL_ISA_FRESH=1 translates
every run afresh).  ``compare`` checks a translated outcome against a
native one with a readable report; ``assemble`` turns Intel-syntax snippets
into bytes with one ``as`` call.
"""
from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field

from bttool.ir import state as st
from bttool.runtime import fpstate, snippet
from bttool.runtime.snippet import (CODE_ADDR, DATA_ADDR, DATA_SIZE, STACK_ADDR, STACK_SIZE,
                                    run_snippet)

__all__ = [
    "CODE_ADDR", "DATA_ADDR", "DATA_SIZE", "STACK_ADDR", "STACK_SIZE", "STACK_TOP",
    "EPILOGUE_ADDR", "SPARE_ADDR", "SPARE_SIZE",
    "GPRS", "CF", "PF", "AF", "ZF", "SF", "DF", "OF", "ARITH", "FLAG_NAMES",
    "Context", "FxArea", "XsaveHeader", "Input", "Outcome", "X87", "NATIVE_YMM",
    "assemble", "have_toolchain", "run_native", "NativeFault", "install_fault_guard",
    "FAULT_SIGNALS", "run_translated", "forget_translation",
    "ensure_native", "compare", "default_regs", "flag_str", "initial_outcome",
    "host_flags", "missing_host_feature", "skip_unless_host_runs",
]

GPRS = st.GPR_NAMES
# rflags bits (architectural)
CF, PF, AF, ZF, SF, DF, OF = 1 << 0, 1 << 2, 1 << 4, 1 << 6, 1 << 7, 1 << 10, 1 << 11
ARITH = CF | PF | AF | ZF | SF | OF
FLAG_NAMES = {CF: "CF", PF: "PF", AF: "AF", ZF: "ZF", SF: "SF", DF: "DF", OF: "OF"}
# rflags bits the tests may set on input: the arithmetic flags and DF (never
# TF, AC, ...), plus the always-one bit 1 and IF.
INPUT_FLAGS = ARITH | DF
FIXED_FLAGS = 0x202
MXCSR_EXCEPTIONS = 0x3F         # MXCSR's sticky exception flags (not modelled)
STACK_TOP = STACK_ADDR + STACK_SIZE
M64 = (1 << 64) - 1
M128 = (1 << 128) - 1
M256 = (1 << 256) - 1

# The native side saves and loads ymm state (xsave/xrstor) when the host and
# its kernel support AVX (the kernel shows the avx flag only when XCR0
# enables the AVX state); BTTOOL_NATIVE_FXSAVE=1 forces the fxsave path.
XSAVE_MASK = 0x7                    # x87 | SSE | AVX
XSAVE_AVX_OFFSET = 576              # the YMM_Hi128 component, standard format


# ---------------------------------------------------------------------------
# the context: one layout for the trampoline and for Python

class FxArea(ctypes.Structure):
    """The x87 and SSE state as fxsave stores it and fxrstor loads it: the
    legacy region of an XSAVE area (Intel SDM vol. 1, 10.5.1 and 13.4.1),
    ``bttool.runtime.fpstate``'s image.  ``ftw`` is the abridged tag (bit i:
    physical register i is valid); ``st[i]`` is ST(i) in a 16-byte slot."""
    _fields_ = [("fcw", ctypes.c_uint16), ("fsw", ctypes.c_uint16), ("ftw", ctypes.c_uint8),
                ("_reserved0", ctypes.c_uint8), ("fop", ctypes.c_uint16),
                ("fip", ctypes.c_uint64), ("fdp", ctypes.c_uint64),
                ("mxcsr", ctypes.c_uint32), ("mxcsr_mask", ctypes.c_uint32),
                ("st", (ctypes.c_uint8 * 16) * 8), ("xmm", (ctypes.c_uint8 * 16) * st.XMM_COUNT),
                ("_reserved1", ctypes.c_uint8 * 96)]


assert ctypes.sizeof(FxArea) == fpstate.SIZE and FxArea.xmm.offset == 160


class XsaveHeader(ctypes.Structure):
    """The XSAVE header (SDM vol. 1, 13.4.2), after the legacy region:
    XSTATE_BV bit i set = component i is loaded from (or was saved to) the
    area, clear = in its init state; XCOMP_BV 0 = the standard format."""
    _fields_ = [("xstate_bv", ctypes.c_uint64), ("xcomp_bv", ctypes.c_uint64),
                ("_reserved", ctypes.c_uint8 * 48)]


class Context(ctypes.Structure):
    """What the trampoline loads before the snippet and stores after it.
    ``entry``: where it jumps (CODE_ADDR).  ``host_*``: the caller's rsp and
    x87/SSE state meanwhile.  ``fx`` must stay last and 64-byte aligned (an
    XSAVE area's alignment), followed by the rest of the XSAVE area: its
    header and the YMM_Hi128 component (``ymmh``, bits 255:128 of ymm0-15).
    ``host_fx`` is only ever an fxsave image (the host's upper halves are
    the caller's to lose: every vector register is call-clobbered)."""
    _fields_ = [("gpr", ctypes.c_uint64 * 16), ("rflags", ctypes.c_uint64),
                ("entry", ctypes.c_uint64), ("host_rsp", ctypes.c_uint64),
                # the fault guard's: armed (1 while the code runs), the
                # signal it caught, and the rip of the fault
                ("fault_armed", ctypes.c_uint32), ("fault_signo", ctypes.c_uint32),
                ("fault_rip", ctypes.c_uint64),
                ("_pad", ctypes.c_uint8 * 24),
                ("host_fx", FxArea), ("fx", FxArea), ("xsave_header", XsaveHeader),
                ("ymmh", (ctypes.c_uint8 * 16) * st.XMM_COUNT)]


assert Context.host_fx.offset % 64 == 0 and Context.fx.offset % 64 == 0
assert Context.ymmh.offset - Context.fx.offset == XSAVE_AVX_OFFSET
XSAVE_SIZE = XSAVE_AVX_OFFSET + 16 * st.XMM_COUNT             # 832 bytes
assert ctypes.sizeof(Context) - Context.fx.offset == XSAVE_SIZE

# Native layout (all below DATA_ADDR, all free in a normal process).
TRAMP_ADDR = 0x20000                 # trampoline code
EPILOGUE_ADDR = TRAMP_ADDR + 0x400   # its epilogue (.org in the source)
SPARE_ADDR = TRAMP_ADDR + 0x1000     # RWX, left alone by the harness: a test's own
SPARE_SIZE = 0x1000                  # native helpers
CTX_ADDR = 0x22000                   # the Context ...
CTX_SIZE = 0x2000                    # ... whose page's upper part is a scratch stack
CODE_LIMIT = 0x10000 - 16            # room for the code and the jmp back


def _vector_inputs(xmm: list[int] | None, ymm: list[int] | None) -> list[int]:
    """The starting ymm0.. values (256 bits) from run_native's ``xmm``
    (upper halves zero) or ``ymm`` arguments."""
    if xmm is not None and ymm is not None:
        raise ValueError("give xmm or ymm values, not both")
    if ymm is not None:
        return [v & M256 for v in ymm]
    return [v & M128 for v in xmm or []]


def _initial_area(vectors: list[int], mxcsr: int) -> bytes:
    """The XSAVE area of run_snippet's starting state: fninit's x87 state
    (the control word bttool's reset gives, every register +0, all empty),
    ``mxcsr`` and ymm0.. from ``vectors`` (missing ones zero); every
    component loaded from the area (XSTATE_BV = x87|SSE|AVX).  Its first
    512 bytes are the fxsave image of that state."""
    fx = FxArea(fcw=fpstate.INIT_FCW, mxcsr=mxcsr)
    image = bytearray(fx) + bytearray(XSAVE_SIZE - ctypes.sizeof(FxArea))
    at = FxArea.xmm.offset
    image[at:at + 16 * len(vectors)] = b"".join((v & M128).to_bytes(16, "little")
                                                for v in vectors)
    image[512:520] = XSAVE_MASK.to_bytes(8, "little")
    at = XSAVE_AVX_OFFSET
    image[at:at + 16 * len(vectors)] = b"".join((v >> 128).to_bytes(16, "little")
                                                for v in vectors)
    return bytes(image)


@dataclass
class X87:
    """The x87 part of an outcome, as fxsave stores it (FOP, FIP and FDP are
    left out: the translator does not track them)."""
    fcw: int
    fsw: int            # with TOP in bits 11-13
    ftw: int            # abridged: bit i set = physical register i valid
    st: list[int]       # ST(0)..ST(7), 80-bit values


@dataclass
class Input:
    """A starting state; its fields are the arguments of ``run_native`` and
    ``run_translated`` (``run_native(code, **vars(inp))``)."""
    regs: dict[str, int] = field(default_factory=dict)
    rflags: int = 0x202
    xmm: list[int] | None = None
    data: bytes = b""
    mxcsr: int = 0x1F80
    stack: bytes | None = None
    ymm: list[int] | None = None        # instead of xmm: 256-bit ymm0.. values


@dataclass
class Outcome:
    """The state after a run, native or translated.  ``regs``: the 16 GPRs
    and rip; ``stack``: the stack area, when the run was given one;
    ``ymmh``: bits 255:128 of ymm0-15 (None natively on a host without AVX,
    ``NATIVE_YMM``); the rest describes how a translated run ended (always
    0/empty natively)."""
    regs: dict[str, int]
    rflags: int
    xmm: list[int]
    mxcsr: int
    x87: X87
    data: bytes
    stack: bytes | None = None
    fault: int = 0             # 0, or an st.FAULT_* kind
    host_signal: int = 0       # SIGSEGV/SIGBUS from a guest memory access
    fault_addr: int = 0        # with host_signal: the guest address it reports
    untranslatable: list = field(default_factory=list)
    ymmh: list[int] | None = None
    spurious_faults: int = 0   # host signals the guest code did not raise (run_snippet)

    @property
    def ymm(self) -> list[int]:
        """ymm0-15, 256 bits each (xmm below, ``ymmh`` above)."""
        if self.ymmh is None:
            raise ValueError("no ymm upper halves: the host has no AVX (NATIVE_YMM)")
        return [x | h << 128 for x, h in zip(self.xmm, self.ymmh)]

    def stack_at(self, addr: int, size: int) -> bytes:
        """``size`` bytes of the stack area from address ``addr``."""
        assert self.stack is not None and STACK_ADDR <= addr and addr + size <= STACK_TOP
        return self.stack[addr - STACK_ADDR:addr - STACK_ADDR + size]

    @property
    def notes(self) -> list[str]:
        """What went wrong in a translated run (a fault, untranslatable code)."""
        out = []
        if self.fault or self.host_signal:
            out.append(f"translated run faulted: fault={self.fault} host_signal={self.host_signal}")
        if self.untranslatable:
            out.append(f"untranslatable: {self.untranslatable}")
        if self.spurious_faults:
            out.append(f"the translated code faulted {self.spurious_faults} time(s) where the guest "
                       "instructions, replayed one at a time, did not")
        return out


def _outcome(regs: dict[str, int], rflags: int, fx: bytes, data: bytes,
             stack: bytes | None, ymmh: list[int] | None = None, **end) -> Outcome:
    """Either side's state, decoded from the same fxsave image layout.
    ``fx`` may be a whole XSAVE area (the native side's with NATIVE_YMM):
    then the upper halves come from it, and a component its XSTATE_BV says
    is in its init state reads as the init values, whatever the area holds
    there (x87: fninit's state; SSE: xmm zero; AVX: upper halves zero)."""
    if len(fx) > ctypes.sizeof(FxArea):
        bv = int.from_bytes(fx[512:520], "little")
        image = bytearray(fx[:ctypes.sizeof(FxArea)])
        if not bv & 1:
            head, lo, hi = FxArea.mxcsr.offset, FxArea.st.offset, FxArea.xmm.offset
            image[:head] = bytes(FxArea(fcw=fpstate.INIT_FCW))[:head]
            image[lo:hi] = bytes(hi - lo)
        if not bv & 2:
            at = FxArea.xmm.offset
            image[at:at + 16 * st.XMM_COUNT] = bytes(16 * st.XMM_COUNT)
        at = XSAVE_AVX_OFFSET
        ymmh = [int.from_bytes(fx[at + 16 * i:at + 16 * i + 16], "little") if bv & 4 else 0
                for i in range(st.XMM_COUNT)]
        fx = bytes(image)
    area = FxArea.from_buffer_copy(fx)
    at = FxArea.xmm.offset
    xmm = [int.from_bytes(fx[at + 16 * i:at + 16 * i + 16], "little") for i in range(st.XMM_COUNT)]
    at = FxArea.st.offset
    x87 = X87(area.fcw, area.fsw, area.ftw,
              [int.from_bytes(fx[at + 16 * i:at + 16 * i + 10], "little") for i in range(8)])
    return Outcome(regs, rflags, xmm, area.mxcsr, x87, data, stack, ymmh=ymmh, **end)


def _complete(regs: dict[str, int] | None) -> dict[str, int]:
    full = {r: 0 for r in GPRS}
    full["rsp"] = STACK_TOP - 256
    full.update(regs or {})
    return {r: v & M64 for r, v in full.items()}


def initial_outcome(code: bytes, regs: dict[str, int] | None = None, rflags: int = 0x202,
                    xmm: list[int] | None = None, data: bytes = b"", mxcsr: int = 0x1F80,
                    stack: bytes | None = None, *, ymm: list[int] | None = None) -> Outcome:
    """The starting state ``run_native`` and ``run_translated`` give ``code``
    from these arguments, as the Outcome of a run that changed nothing (rip
    at the end of the code): what recorded expectations are relative to."""
    full = _complete(regs)
    full["rip"] = CODE_ADDR + len(code)
    vectors = _vector_inputs(xmm, ymm)
    vectors += [0] * (st.XMM_COUNT - len(vectors))
    return Outcome(full, (rflags & INPUT_FLAGS) | FIXED_FLAGS, [v & M128 for v in vectors], mxcsr,
                   X87(fpstate.INIT_FCW, 0, 0, [0] * 8), data.ljust(DATA_SIZE, b"\0")[:DATA_SIZE],
                   None if stack is None else stack.ljust(STACK_SIZE, b"\0")[:STACK_SIZE],
                   ymmh=[v >> 128 for v in vectors])


def default_regs() -> dict[str, int]:
    """Distinct, recognisable values for every GPR; rsp near the stack top."""
    regs = {r: 0x0101010101010101 * (i + 1) ^ 0x8040201008040201 for i, r in enumerate(GPRS)}
    regs["rsp"] = STACK_TOP - 256
    return regs


# ---------------------------------------------------------------------------
# GNU binutils

_TOOLS = ("as", "objcopy", "nm")


def have_toolchain() -> bool:
    """GNU as, objcopy and nm, which ``assemble`` and the trampoline need."""
    return all(shutil.which(t) for t in _TOOLS)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} (GNU binutils) is required for the native oracle")
    return path


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{p.stderr}")
    return p


def _assemble_text(source: str) -> tuple[bytes, dict[str, int]]:
    """Assemble ``source`` (a whole GNU as file); return the raw .text bytes
    and the offsets of its symbols in .text."""
    with tempfile.TemporaryDirectory(prefix="bt-as-") as tmp:
        src, obj, binf = (os.path.join(tmp, n) for n in ("a.s", "a.o", "a.bin"))
        with open(src, "w") as f:
            f.write(source)
        _run([_tool("as"), "--64", "-o", obj, src], "as")
        _run([_tool("objcopy"), "-O", "binary", "-j", ".text", obj, binf], "objcopy")
        with open(binf, "rb") as f:
            text = f.read()
        syms: dict[str, int] = {}
        out = _run([_tool("nm"), "--defined-only", obj], "nm").stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "tT":
                syms[parts[2]] = int(parts[0], 16)
    return text, syms


_asm_cache: dict[str, bytes] = {}


def assemble(lines: list[str]) -> list[bytes]:
    """Assemble Intel-syntax (``noprefix``) snippets in one ``as`` call.

    Each element is one instruction, or a sequence separated by newlines or
    ``;`` (use numeric local labels, ``1:`` / ``jmp 1f``, for branches
    inside a snippet).  Returns the bytes of each element; each text is
    assembled once per session."""
    todo = [s for s in dict.fromkeys(lines) if s not in _asm_cache]
    if todo:
        src = [".intel_syntax noprefix", ".text"]
        for i, s in enumerate(todo):
            src += [f"bt_s{i}:", s, f"bt_e{i}:", "nop"]  # nop: keeps each end label distinct
        try:
            text, syms = _assemble_text("\n".join(src) + "\n")
        except RuntimeError as e:
            raise RuntimeError(f"{e}\nwhile assembling:\n" + "\n".join(todo)) from None
        for i, s in enumerate(todo):
            _asm_cache[s] = text[syms[f"bt_s{i}"]:syms[f"bt_e{i}"]]
    return [_asm_cache[s] for s in lines]


# ---------------------------------------------------------------------------
# host CPU features: the oracle can only run what the host implements

# capstone 5's instruction groups -> the /proc/cpuinfo flag they need
_GROUP_FLAGS = {
    "sse1": "sse", "sse2": "sse2", "sse3": "pni", "ssse3": "ssse3", "sse41": "sse4_1",
    "sse42": "sse4_2", "sse4a": "sse4a", "aes": "aes", "pclmul": "pclmulqdq", "sha": "sha_ni",
    "avx": "avx", "avx2": "avx2", "avx512": "avx512f", "fma": "fma", "fma4": "fma4",
    "f16c": "f16c", "bmi": "bmi1", "bmi2": "bmi2", "adx": "adx", "tbm": "tbm", "xop": "xop",
    "cmov": "cmov", "mmx": "mmx", "3dnow": "3dnow", "rtm": "rtm", "hle": "hle", "fpu": "fpu",
    "bwi": "avx512bw", "dqi": "avx512dq", "cdi": "avx512cd", "vlx": "avx512vl",
    "eri": "avx512er", "pfi": "avx512pf", "fsgsbase": "fsgsbase",
}
# mnemonics whose feature capstone does not put in a group, or not in one
# that names it (these entries replace the groups).  lzcnt and tzcnt are the
# dangerous ones: a host without them runs them as bsr/bsf, with other
# results and no fault.
_MNEMONIC_FLAGS = {
    "popcnt": "popcnt", "lzcnt": "abm", "tzcnt": "bmi1", "movbe": "movbe", "crc32": "sse4_2",
    "cmpxchg16b": "cx16", "rdtscp": "rdtscp", "rdrand": "rdrand", "rdseed": "rdseed",
    "rdpid": "rdpid", "fisttp": "pni", "clflushopt": "clflushopt", "clwb": "clwb",
    "prefetchw": "3dnowprefetch", "prefetch": "3dnowprefetch", "prefetchwt1": "3dnowprefetch",
    "lahf": "lahf_lm", "sahf": "lahf_lm",
    "andn": "bmi1", "bextr": "bmi1", "blsi": "bmi1", "blsmsk": "bmi1", "blsr": "bmi1",
    "bzhi": "bmi2", "mulx": "bmi2", "pdep": "bmi2", "pext": "bmi2", "rorx": "bmi2",
    "sarx": "bmi2", "shlx": "bmi2", "shrx": "bmi2", "adcx": "adx", "adox": "adx",
}
_host_flags: set[str] | None = None


def host_flags() -> set[str]:
    """The host CPU's feature flags as /proc/cpuinfo names them."""
    global _host_flags
    if _host_flags is None:
        _host_flags = set()
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("flags"):
                        _host_flags = set(line.split(":", 1)[1].split())
                        break
        except OSError:
            pass
    return _host_flags


_missing_cache: dict[bytes, str | None] = {}


def missing_host_feature(code: bytes) -> str | None:
    """Why the host CPU cannot be the oracle for ``code`` ("the host CPU
    lacks FLAG for MNEMONIC"), or None when it implements every instruction
    in it.  (With no /proc/cpuinfo nothing is assumed missing.)"""
    if code in _missing_cache:
        return _missing_cache[code]
    import capstone
    why = None
    have = host_flags()
    if have:
        md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        md.detail = True
        for insn in md.disasm(code, 0):
            name = insn.mnemonic.split()[-1]          # without lock/rep
            if name in _MNEMONIC_FLAGS:
                need = {_MNEMONIC_FLAGS[name]}
            else:
                need = {_GROUP_FLAGS.get(insn.group_name(g)) for g in insn.groups}
            lacking = sorted(f for f in need if f and f not in have)
            if lacking:
                why = f"the host CPU lacks {', '.join(lacking)} for {insn.mnemonic}: no oracle here"
                break
    _missing_cache[code] = why
    return why


def _host_has_ymm() -> bool:
    if os.environ.get("BTTOOL_NATIVE_FXSAVE", "") not in ("", "0"):
        return False
    have = host_flags()
    return "avx" in have and "xsave" in have


# run_native saves and loads the ymm registers (xsave/xrstor), and its
# outcomes have their upper halves
NATIVE_YMM = _host_has_ymm()


def skip_unless_host_runs(code: bytes) -> None:
    """The host CPU is the oracle: a test whose code needs a feature the host
    lacks is skipped with the reason, never failed (nor killed by SIGILL)."""
    why = missing_host_feature(code)
    if why:
        import pytest
        pytest.skip(why)


# ---------------------------------------------------------------------------
# the native side

def _trampoline_source() -> str:
    def at(name: str, index: int = 0, size: int = 8) -> str:
        return f"[{CTX_ADDR + getattr(Context, name).offset + index * size:#x}]"
    rsp = GPRS.index("rsp")
    load = [f"    mov {r}, qword ptr {at('gpr', i)}" for i, r in enumerate(GPRS) if r != "rsp"]
    store = [f"    mov qword ptr {at('gpr', i)}, {r}" for i, r in enumerate(GPRS)]
    return "\n".join([
        ".intel_syntax noprefix",
        ".text",
        "bt_entry:",
        "    push rbx", "    push rbp", "    push r12", "    push r13", "    push r14", "    push r15",
        f"    mov qword ptr {at('host_rsp')}, rsp",
        f"    fxsave {at('host_fx')}",
        "    fninit",                   # FOP/FIP/FDP 0 also where fxrstor keeps them (AMD)
        *([f"    mov eax, {XSAVE_MASK}", "    xor edx, edx", f"    xrstor {at('fx')}"]
          if NATIVE_YMM else [f"    fxrstor {at('fx')}"]),
        f"    push qword ptr {at('rflags')}",
        "    popfq",
        *load,
        f"    mov rsp, qword ptr {at('gpr', rsp)}",
        f"    jmp qword ptr {at('entry')}",
        f".org {EPILOGUE_ADDR - TRAMP_ADDR:#x}, 0xcc",
        "bt_epilogue:",
        *store,
        f"    mov rsp, {CTX_ADDR + CTX_SIZE:#x}",       # scratch stack: the guest's is untouched
        "    pushfq",
        f"    pop qword ptr {at('rflags')}",
        "    cld",
        *([f"    mov eax, {XSAVE_MASK}", "    xor edx, edx", f"    xsave {at('fx')}"]
          if NATIVE_YMM else [f"    fxsave {at('fx')}"]),
        f"    fxrstor {at('host_fx')}",
        # the guest's upper halves are no state of the host's (and dirty
        # ones slow its SSE code down)
        *(["    vzeroupper"] if NATIVE_YMM else []),
        f"    mov rsp, qword ptr {at('host_rsp')}",
        "    pop r15", "    pop r14", "    pop r13", "    pop r12", "    pop rbp", "    pop rbx",
        "    ret",
        # the fault guard (SA_SIGINFO: rdi = signo, rdx = ucontext, whose
        # gregs start at 40: REG_RIP at 168, REG_EFL at 176); a fault while
        # not armed is the test process's own: it exits with 100 + signo
        "bt_fault:",
        f"    cmp dword ptr {at('fault_armed', size=4)}, 0",
        "    je 1f",
        f"    mov dword ptr {at('fault_signo', size=4)}, edi",
        f"    mov dword ptr {at('fault_armed', size=4)}, 0",
        "    mov rax, qword ptr [rdx + 168]",
        f"    mov qword ptr {at('fault_rip')}, rax",
        f"    mov rax, {EPILOGUE_ADDR:#x}",
        "    mov qword ptr [rdx + 168], rax",
        "    and qword ptr [rdx + 176], -0x40101",       # TF and AC off
        "    ret",
        "1:  add edi, 100",
        "    mov eax, 231",                             # exit_group
        "    syscall",
    ]) + "\n"


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FIXED_NOREPLACE = 0x100000
_RWX = mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC
_RW = mmap.PROT_READ | mmap.PROT_WRITE


def _map_fixed(addr: int, size: int, prot: int) -> None:
    got = _libc.mmap(addr, size, prot, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_FIXED_NOREPLACE,
                     -1, 0)
    if got == addr:
        return
    err = ctypes.get_errno()
    if got not in (None, ctypes.c_void_p(-1).value):
        _libc.munmap(got, size)   # an old kernel ignoring NOREPLACE: not where we need it
    raise OSError(err, f"cannot map {size:#x} bytes at {addr:#x} for the native oracle: "
                       f"{os.strerror(err)}")


_ctx: Context | None = None
_fault_handler = 0              # address of bt_fault once loaded
_guard_kept = False             # install_fault_guard: the guard stays in place
_altstack: list = []


class NativeFault(Exception):
    """The host CPU raised a fault signal running the code natively."""

    def __init__(self, signo: int, rip: int) -> None:
        super().__init__(f"natively, {signal.Signals(signo).name} at {rip:#x}"
                         + (f" (code offset {rip - CODE_ADDR:#x})"
                            if CODE_ADDR <= rip < CODE_ADDR + CODE_LIMIT else ""))
        self.signo = signo
        self.rip = rip


class _SigAction(ctypes.Structure):
    """glibc's struct sigaction on x86-64."""
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_uint64 * 16),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]


class _StackT(ctypes.Structure):
    _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]


FAULT_SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGTRAP)
_SA_SIGINFO, _SA_ONSTACK = 0x4, 0x08000000


def _set_actions(new: list, old: list | None = None) -> None:
    for i, sig in enumerate(FAULT_SIGNALS):
        if _libc.sigaction(int(sig), ctypes.byref(new[i]),
                           ctypes.byref(old[i]) if old is not None else None) != 0:
            raise OSError(ctypes.get_errno(), "sigaction")


def _guard_actions() -> list:
    sa = _SigAction()
    sa.handler = _fault_handler
    sa.flags = _SA_SIGINFO | _SA_ONSTACK
    return [sa] * len(FAULT_SIGNALS)


def install_fault_guard() -> None:
    """Keep the fault guard in place for good (forked workers that run
    nothing but native code: tests/opcode_sweep.py), instead of around each
    native run."""
    global _guard_kept
    ensure_native()
    _set_actions(_guard_actions())
    _guard_kept = True


def ensure_native() -> Context:
    """Map the native code, data and stack areas and load the trampoline
    (once); the Context at CTX_ADDR.  Also gives this thread an alternate
    signal stack for the fault guard."""
    global _ctx, _fault_handler
    if _ctx is None:
        text, syms = _assemble_text(_trampoline_source())
        assert TRAMP_ADDR + syms["bt_epilogue"] == EPILOGUE_ADDR, syms
        assert len(text) <= SPARE_ADDR - TRAMP_ADDR
        assert ctypes.sizeof(Context) <= CTX_SIZE // 2
        _map_fixed(CODE_ADDR, 0x10000, _RWX)
        _map_fixed(TRAMP_ADDR, CTX_ADDR - TRAMP_ADDR + CTX_SIZE, _RWX)
        _map_fixed(DATA_ADDR, DATA_SIZE, _RW)
        _map_fixed(STACK_ADDR, STACK_SIZE, _RW)
        ctypes.memmove(TRAMP_ADDR, text, len(text))
        _fault_handler = TRAMP_ADDR + syms["bt_fault"]
        # private: Python's anonymous mmap is shared by default, and the
        # opcode sweep's forked native workers would then take their fault
        # signals on one stack, each overwriting the other's frame
        buf = mmap.mmap(-1, 1 << 16, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        _altstack.append(buf)
        ss = _StackT(ctypes.addressof(ctypes.c_char.from_buffer(buf)), 0, 1 << 16)
        if _libc.sigaltstack(ctypes.byref(ss), None) != 0:
            raise OSError(ctypes.get_errno(), "sigaltstack")
        _ctx = Context.from_address(CTX_ADDR)
    return _ctx


_trampoline = ctypes.CFUNCTYPE(None)(TRAMP_ADDR)
_ALL_SIGNALS = set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP, signal.SIGSEGV,
                                      signal.SIGBUS, signal.SIGFPE, signal.SIGILL,
                                      signal.SIGTRAP}


def run_native(code: bytes, regs: dict[str, int] | None = None, rflags: int = 0x202,
               xmm: list[int] | None = None, data: bytes = b"", mxcsr: int = 0x1F80,
               stack: bytes | None = None, *, ymm: list[int] | None = None,
               check_features: bool = True) -> Outcome:
    """Run ``code`` on the host CPU from the given state.  ``xmm``: xmm0..
    (the ymm upper halves start at zero), or ``ymm``: ymm0.. as 256-bit
    values (their upper halves are ignored on a host without AVX,
    ``NATIVE_YMM``).  ``stack`` (optional) initialises the stack area, and
    the outcome then has the stack area afterwards.  Code the host CPU has
    no feature for skips the calling test (``skip_unless_host_runs``),
    unless ``check_features`` is false (the opcode sweep runs such code on
    purpose).  Raises NativeFault when the code faults (see the module
    docstring)."""
    if check_features:
        skip_unless_host_runs(code)
    ctx = ensure_native()
    if len(code) > CODE_LIMIT:
        raise ValueError("snippet too long")
    if rflags & ~(INPUT_FLAGS | FIXED_FLAGS):
        raise ValueError(f"refusing to load rflags {rflags:#x} natively (TF/AC/...)")
    jmp_from = CODE_ADDR + len(code) + 5
    tail = b"\xe9" + (EPILOGUE_ADDR - jmp_from).to_bytes(4, "little", signed=True)
    ctypes.memmove(CODE_ADDR, code + tail, len(code) + 5)
    ctypes.memmove(DATA_ADDR, data.ljust(DATA_SIZE, b"\0")[:DATA_SIZE], DATA_SIZE)
    if stack is not None:
        ctypes.memmove(STACK_ADDR, stack.ljust(STACK_SIZE, b"\0")[:STACK_SIZE], STACK_SIZE)
    full = _complete(regs)
    for i, r in enumerate(GPRS):
        ctx.gpr[i] = full[r]
    ctx.rflags = (rflags & INPUT_FLAGS) | FIXED_FLAGS
    ctx.entry = CODE_ADDR
    ctypes.memmove(CTX_ADDR + Context.fx.offset, _initial_area(_vector_inputs(xmm, ymm), mxcsr),
                   XSAVE_SIZE)
    saved = None
    if not _guard_kept:
        saved = [_SigAction() for _ in FAULT_SIGNALS]
        _set_actions(_guard_actions(), saved)
    ctx.fault_signo = 0
    ctx.fault_armed = 1
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _ALL_SIGNALS)
    try:
        _trampoline()
    finally:
        ctx.fault_armed = 0
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        if saved is not None:
            _set_actions(saved)
    if ctx.fault_signo:
        raise NativeFault(ctx.fault_signo, ctx.fault_rip)
    out_regs = {r: ctx.gpr[i] for i, r in enumerate(GPRS)}
    out_regs["rip"] = CODE_ADDR + len(code)  # where the translated run stops
    return _outcome(out_regs, ctx.rflags,
                    ctypes.string_at(CTX_ADDR + Context.fx.offset,
                                     XSAVE_SIZE if NATIVE_YMM else ctypes.sizeof(FxArea)),
                    ctypes.string_at(DATA_ADDR, DATA_SIZE),
                    ctypes.string_at(STACK_ADDR, STACK_SIZE) if stack is not None else None)


# ---------------------------------------------------------------------------
# the translated side

class _KeepDict(dict):
    """``ex.known`` while a translation is reused: run_snippet's clear() is a no-op."""

    def clear(self) -> None:
        pass


_last_code: list[tuple | None] = [None]
REUSE_TRANSLATIONS = os.environ.get("BTTOOL_ISA_FRESH", "") == ""
# run_translated's default: translate with the host's own instructions where
# bttool has such lowerings (LiftOptions.host_instructions); tests of the
# generic IR switch it off.
HOST_INSTRUCTIONS = True
# The tier whose code run_translated runs: "compiled" (tier 1 compiled by
# LLVM), "stitched" (tier 1 stitched from stencils, translator/stitch.py;
# what a linux-user run starts with) or "optimised" (tier 2: its IR,
# without counters, at O2).  The conftest's ``isa_tier`` fixture sets it, and
# the differential tests run under each.
TIERS = ("compiled", "stitched", "optimised")
TIER = os.environ.get("BTTOOL_ISA_TIER", "compiled")


@contextlib.contextmanager
def cpu_model(name: str):
    """Translate for virtual CPU model ``name`` (translator/cpumodel.py)
    inside the block: the snippet runner takes the runtime's model.  The
    previous model comes back afterwards; kept translations are dropped
    both times."""
    from bttool.runtime import cpuid
    before = cpuid.model().name
    cpuid.select(name)
    forget_translation()
    try:
        yield
    finally:
        cpuid.select(before)
        forget_translation()


def forget_translation() -> None:
    """The next ``run_translated`` translates afresh (after a change to the
    translator's settings, which a kept translation would not see)."""
    _last_code[0] = None


def run_translated(code: bytes, regs: dict[str, int] | None = None, rflags: int = 0x202,
                   xmm: list[int] | None = None, data: bytes = b"", mxcsr: int = 0x1F80,
                   stack: bytes | None = None, *, ymm: list[int] | None = None,
                   reuse: bool | None = None,
                   precise_faults: bool = False, hot_counters: bool = True,
                   host_instructions: bool | None = None) -> Outcome:
    """``run_snippet`` from the state ``run_native`` starts from (every GPR
    given explicitly; ``xmm`` or ``ymm`` as run_native's; ``stack``, when
    given, initialises the stack area and the outcome has it afterwards).
    ``precise_faults``, ``hot_counters`` and ``host_instructions`` are
    run_snippet's (the last by default ``HOST_INSTRUCTIONS``, which
    fixtures switch to test the generic IR).

    ``reuse`` (default: on unless BTTOOL_ISA_FRESH is set): when ``code`` is
    the very code of the previous call (with the same options), keep its
    translation instead of translating it again (run_snippet drops all
    translations each time).  The first run of each code is always freshly
    translated, so this only trades the recompilation of identical bytes
    for speed; it also checks that translated code can be re-entered with
    other inputs.  (A kept translation may have been retranslated as hot
    code meanwhile: pass reuse=False where the tier matters.)"""
    mem, ex = snippet._machine()
    if host_instructions is None:
        host_instructions = HOST_INSTRUCTIONS
    if reuse is None:
        reuse = REUSE_TRANSLATIONS
    key = (code, precise_faults, hot_counters, host_instructions, TIER)
    reuse = reuse and _last_code[0] == key
    _last_code[0] = key
    if stack is not None:
        mem.write_force(STACK_ADDR, stack.ljust(STACK_SIZE, b"\0")[:STACK_SIZE])
    if reuse:
        ex.known = _KeepDict(ex.known)
        ex.clear_table = lambda: None
    try:
        vectors = _vector_inputs(xmm, ymm)
        r = run_snippet(code, _complete(regs), rflags, None, data, mxcsr,
                        precise_faults=precise_faults, hot_counters=hot_counters,
                        host_instructions=host_instructions, ymm=vectors,
                        stencils=TIER == "stitched", optimised=TIER == "optimised")
    finally:
        if reuse:
            ex.known = dict(ex.known)
            del ex.clear_table
    return _outcome(r.regs, r.rflags, fpstate.fxsave_image(ex.state), r.data,
                    mem.read(STACK_ADDR, STACK_SIZE) if stack is not None else None,
                    ymmh=r.ymmh, fault=r.fault, host_signal=r.host_signal,
                    fault_addr=r.fault_addr, untranslatable=r.untranslatable,
                    spurious_faults=r.spurious_faults)


# ---------------------------------------------------------------------------
# comparison

def flag_str(v: int) -> str:
    return " ".join(n for b, n in sorted(FLAG_NAMES.items()) if v & b) or "-"


def _data_diff(a: bytes, b: bytes, limit: int = 6) -> str:
    lines = []
    i = 0
    n = min(len(a), len(b))
    while i < n and len(lines) < limit:
        if a[i] != b[i]:
            j = i
            while j < n and j - i < 16 and a[j] != b[j]:
                j += 1
            lines.append(f"  data[{i:#x}:{j:#x}] native {a[i:j].hex()} translated {b[i:j].hex()}")
            i = j
        else:
            i += 1
    return "\n".join(lines)


def compare(native: Outcome, trans: Outcome, flag_mask: int = ARITH | DF,
            reg_mask: dict[str, int] | None = None, check_data: bool = True,
            what: str = "") -> None:
    """Assert that the translated run ended like the native one: no fault,
    the GPRs, the rflags bits in ``flag_mask`` (leave out what the SDM calls
    undefined), xmm0-15 and the upper halves of ymm0-15 (when both outcomes
    have them), MXCSR but its exception flags (not modelled) and the data
    area.  ``reg_mask``: per GPR, the bits that must agree
    (default: all bits of all 16)."""
    problems = list(trans.notes)
    for r in GPRS:
        m = (reg_mask or {}).get(r, M64)
        if (native.regs[r] ^ trans.regs[r]) & m:
            problems.append(f"  {r:4}: native {native.regs[r]:#018x} translated "
                            f"{trans.regs[r]:#018x}" + ("" if m == M64 else f" (mask {m:#x})"))
    diff = (native.rflags ^ trans.rflags) & flag_mask
    if diff:
        problems.append(f"  flags differ in [{flag_str(diff)}]: "
                        f"native [{flag_str(native.rflags & flag_mask)}] "
                        f"translated [{flag_str(trans.rflags & flag_mask)}]")
    for i, (a, b) in enumerate(zip(native.xmm, trans.xmm)):
        if a != b:
            problems.append(f"  xmm{i}: native {a:#034x} translated {b:#034x}")
    if native.ymmh is not None and trans.ymmh is not None:
        for i, (a, b) in enumerate(zip(native.ymmh, trans.ymmh)):
            if a != b:
                problems.append(f"  ymm{i}[255:128]: native {a:#034x} translated {b:#034x}")
    if (native.mxcsr ^ trans.mxcsr) & ~MXCSR_EXCEPTIONS:
        problems.append(f"  mxcsr: native {native.mxcsr:#x} translated {trans.mxcsr:#x}")
    if check_data and native.data != trans.data:
        problems.append(_data_diff(native.data, trans.data))
    if problems:
        raise AssertionError((what + "\n" if what else "") + "\n".join(problems))

"""Native execution of instruction snippets: the host CPU as the oracle for
differential tests of the translator (see ``bttool/runtime/snippet.py``).

``run_native`` runs raw x86-64 machine code in this very process with exactly
the same architectural starting state as ``run_snippet`` gives translated
code, and returns the state afterwards in the same shape:

* the test code is copied to ``CODE_ADDR`` (0x10000, the address translated
  snippets run at, so rip-relative operands and pushed return addresses are
  the same numbers), followed by a ``jmp`` to the trampoline's epilogue;
* the data area is mapped at ``DATA_ADDR`` and the stack at ``STACK_ADDR``
  (MAP_FIXED_NOREPLACE), so pointers into them are the same numbers too;
* a trampoline (assembled once per session with GNU ``as``) saves the
  callee-saved host registers, loads mxcsr, xmm0-15, rflags and all 16 GPRs
  from a context block at a fixed address, jumps to the code, and afterwards
  stores everything back (rflags before it clears DF), then returns to C.

Never run code natively that faults (division by zero, unmapped accesses):
it would kill the test process.  Asynchronous signals are blocked while the
guest code runs, because the kernel would push a signal frame onto whatever
rsp the code left.

``run_translated`` is ``run_snippet`` with all GPRs given explicitly; it
keeps the translation while consecutive calls run identical code bytes (see
its docstring; BTTOOL_ISA_FRESH=1 translates every run afresh).  ``compare``
checks a translated result against a native one (GPRs, a flag mask, the
data area) with a readable report.

``assemble`` turns Intel-syntax snippets into bytes with one ``as`` call.

The native data area and stack may already be mapped by another harness of
the same test session (tests/x87_native.py uses the same data address):
plain read-write memory there is shared, since every run rewrites it.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field

from bttool.ir import state as st
from bttool.runtime import snippet
from bttool.runtime.snippet import (CODE_ADDR, DATA_ADDR, DATA_SIZE, STACK_ADDR, STACK_SIZE,
                                    SnippetResult, run_snippet)

__all__ = [
    "CODE_ADDR", "DATA_ADDR", "DATA_SIZE", "STACK_ADDR", "STACK_SIZE", "STACK_TOP",
    "GPRS", "CF", "PF", "AF", "ZF", "SF", "DF", "OF", "ARITH", "FLAG_NAMES",
    "assemble", "run_native", "run_translated", "Outcome", "compare", "default_regs",
    "flag_str", "stack_bytes", "host_flags", "missing_host_feature", "skip_unless_host_runs",
]

GPRS = st.GPR_NAMES
CF, PF, AF, ZF, SF, DF, OF = 1 << 0, 1 << 2, 1 << 4, 1 << 6, 1 << 7, 1 << 10, 1 << 11
ARITH = CF | PF | AF | ZF | SF | OF
FLAG_NAMES = {CF: "CF", PF: "PF", AF: "AF", ZF: "ZF", SF: "SF", DF: "DF", OF: "OF"}
# rflags bits the tests may set on input: the arithmetic flags and DF (never
# TF, AC, ...), plus the always-one bit 1 and IF.
INPUT_FLAGS = ARITH | DF
FIXED_FLAGS = 0x202
STACK_TOP = STACK_ADDR + STACK_SIZE

# Native layout (all below DATA_ADDR, all free in a normal process).
TRAMP_ADDR = 0x20000                 # trampoline code
EPILOGUE_OFF = 0x400                 # its epilogue (.org in the source)
CTX_ADDR = 0x22000                   # context block
CTX_SIZE = 0x2000                    # ... whose upper part is a scratch stack
_C_GPR, _C_RFLAGS, _C_HOST_RSP, _C_MXCSR, _C_HOST_MXCSR, _C_ENTRY, _C_XMM = (
    0x000, 0x080, 0x088, 0x090, 0x094, 0x098, 0x100)
CODE_LIMIT = 0x10000 - 16            # room for the code and the jmp back


# ---------------------------------------------------------------------------
# GNU binutils helpers

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

    Each element is one instruction, or a short sequence separated by
    newlines or ``;`` (use numeric local labels, ``1:`` / ``jmp 1f``, for
    branches inside a snippet).  Returns the bytes of each element."""
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


def skip_unless_host_runs(code: bytes) -> None:
    """The host CPU is the oracle: a test whose code needs a feature the host
    lacks is skipped with the reason, never failed (nor killed by SIGILL)."""
    why = missing_host_feature(code)
    if why:
        import pytest
        pytest.skip(why)


# ---------------------------------------------------------------------------
# the trampoline

def _trampoline_source() -> str:
    ctx = CTX_ADDR
    load = [f"    mov {r}, qword ptr [{ctx + _C_GPR + 8 * i:#x}]"
            for i, r in enumerate(GPRS) if r != "rsp"]
    store = [f"    mov qword ptr [{ctx + _C_GPR + 8 * i:#x}], {r}" for i, r in enumerate(GPRS)]
    xload = [f"    movdqu xmm{i}, xmmword ptr [{ctx + _C_XMM + 16 * i:#x}]" for i in range(16)]
    xstore = [f"    movdqu xmmword ptr [{ctx + _C_XMM + 16 * i:#x}], xmm{i}" for i in range(16)]
    rsp_slot = ctx + _C_GPR + 8 * GPRS.index("rsp")
    return "\n".join([
        ".intel_syntax noprefix",
        ".text",
        "bt_entry:",
        "    push rbx", "    push rbp", "    push r12", "    push r13", "    push r14", "    push r15",
        f"    mov qword ptr [{ctx + _C_HOST_RSP:#x}], rsp",
        f"    stmxcsr dword ptr [{ctx + _C_HOST_MXCSR:#x}]",
        *xload,
        f"    ldmxcsr dword ptr [{ctx + _C_MXCSR:#x}]",
        f"    push qword ptr [{ctx + _C_RFLAGS:#x}]",
        "    popfq",
        *load,
        f"    mov rsp, qword ptr [{rsp_slot:#x}]",
        f"    jmp qword ptr [{ctx + _C_ENTRY:#x}]",
        f".org {EPILOGUE_OFF:#x}, 0xcc",
        "bt_epilogue:",
        *store,
        f"    mov rsp, {ctx + CTX_SIZE:#x}",       # scratch stack: the guest's is untouched
        "    pushfq",
        f"    pop qword ptr [{ctx + _C_RFLAGS:#x}]",
        "    cld",
        *xstore,
        f"    stmxcsr dword ptr [{ctx + _C_MXCSR:#x}]",
        f"    ldmxcsr dword ptr [{ctx + _C_HOST_MXCSR:#x}]",
        f"    mov rsp, qword ptr [{ctx + _C_HOST_RSP:#x}]",
        "    pop r15", "    pop r14", "    pop r13", "    pop r12", "    pop rbp", "    pop rbx",
        "    ret",
    ]) + "\n"


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FIXED_NOREPLACE = 0x100000
_RWX = mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC
_RW = mmap.PROT_READ | mmap.PROT_WRITE


def _covered_rw(addr: int, size: int) -> bool:
    """Is [addr, addr+size) already mapped read-write (e.g. by another test
    harness that placed its data area at the same address)?"""
    spans = []
    with open("/proc/self/maps") as f:
        for line in f:
            rng, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in rng.split("-"))
            if perms.startswith("rw"):
                spans.append((lo, hi))
    at = addr
    for lo, hi in sorted(spans):
        if lo <= at < hi:
            at = hi
    return at >= addr + size


def _map_fixed(addr: int, size: int, prot: int, shareable: bool = False) -> None:
    got = _libc.mmap(addr, size, prot, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_FIXED_NOREPLACE,
                     -1, 0)
    if got == addr:
        return
    err = ctypes.get_errno()
    if got not in (None, ctypes.c_void_p(-1).value):
        _libc.munmap(got, size)   # an old kernel ignoring NOREPLACE: not where we need it
    # Plain data memory that is already there (another harness's data area)
    # serves as well: every run rewrites all of it.
    if shareable and err == 17 and _covered_rw(addr, size):   # EEXIST
        return
    raise OSError(err, f"cannot map {size:#x} bytes at {addr:#x} for the native oracle: "
                       f"{os.strerror(err)}")


class _NativeCPU:
    """The fixed native mappings and the trampoline, created once."""

    def __init__(self) -> None:
        text, syms = _assemble_text(_trampoline_source())
        assert syms["bt_epilogue"] == EPILOGUE_OFF, syms
        assert len(text) <= CTX_ADDR - TRAMP_ADDR
        _map_fixed(CODE_ADDR, 0x10000, _RWX)
        _map_fixed(TRAMP_ADDR, CTX_ADDR - TRAMP_ADDR + CTX_SIZE, _RWX)
        _map_fixed(DATA_ADDR, DATA_SIZE, _RW, shareable=True)
        _map_fixed(STACK_ADDR, STACK_SIZE, _RW, shareable=True)
        ctypes.memmove(TRAMP_ADDR, text, len(text))
        self.fn = ctypes.CFUNCTYPE(None)(TRAMP_ADDR)
        self.epilogue = TRAMP_ADDR + EPILOGUE_OFF
        self.ctx = (ctypes.c_uint8 * CTX_SIZE).from_address(CTX_ADDR)
        self.gpr = (ctypes.c_uint64 * 16).from_address(CTX_ADDR + _C_GPR)
        self.u64 = lambda off: ctypes.c_uint64.from_address(CTX_ADDR + off)
        self.u32 = lambda off: ctypes.c_uint32.from_address(CTX_ADDR + off)


_cpu: _NativeCPU | None = None


def _native_cpu() -> _NativeCPU:
    global _cpu
    if _cpu is None:
        _cpu = _NativeCPU()
    return _cpu


@dataclass
class Outcome:
    """The state after a run, native or translated (SnippetResult's shape)."""
    regs: dict[str, int]
    rflags: int
    xmm: list[int]
    data: bytes
    mxcsr: int
    fault: int = 0
    host_signal: int = 0
    untranslatable: list = field(default_factory=list)


_ALL_SIGNALS = set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP, signal.SIGSEGV,
                                      signal.SIGBUS, signal.SIGFPE, signal.SIGILL,
                                      signal.SIGTRAP}


def default_regs() -> dict[str, int]:
    """Distinct, recognisable values for every GPR; rsp near the stack top."""
    regs = {r: 0x0101010101010101 * (i + 1) ^ 0x8040201008040201 for i, r in enumerate(GPRS)}
    regs["rsp"] = STACK_TOP - 256
    return regs


def _complete(regs: dict[str, int] | None) -> dict[str, int]:
    full = {r: 0 for r in GPRS}
    full["rsp"] = STACK_TOP - 256
    full.update(regs or {})
    return {r: v & 0xFFFFFFFFFFFFFFFF for r, v in full.items()}


def run_native(code: bytes, regs: dict[str, int] | None = None, rflags: int = 0x202,
               xmm: list[int] | None = None, data: bytes = b"", mxcsr: int = 0x1F80,
               stack: bytes | None = None, check_features: bool = True) -> Outcome:
    """Run ``code`` on the host CPU from the given state.  Registers missing
    from ``regs`` start at 0 (rsp near the stack top), as in ``run_snippet``.
    ``stack`` (optional) initialises the stack area.  Code the host CPU has
    no feature for skips the calling test (``skip_unless_host_runs``),
    unless ``check_features`` is false (the opcode sweep runs such code on
    purpose, in a child that catches its SIGILL)."""
    if check_features:
        skip_unless_host_runs(code)
    cpu = _native_cpu()
    if len(code) > CODE_LIMIT:
        raise ValueError("snippet too long")
    if rflags & ~(INPUT_FLAGS | FIXED_FLAGS):
        raise ValueError(f"refusing to load rflags {rflags:#x} natively (TF/AC/...)")
    full = _complete(regs)
    jmp_from = CODE_ADDR + len(code) + 5
    tail = b"\xe9" + (cpu.epilogue - jmp_from).to_bytes(4, "little", signed=True)
    ctypes.memmove(CODE_ADDR, code + tail, len(code) + 5)
    ctypes.memmove(DATA_ADDR, data.ljust(DATA_SIZE, b"\0")[:DATA_SIZE], DATA_SIZE)
    if stack is not None:
        ctypes.memmove(STACK_ADDR, stack.ljust(STACK_SIZE, b"\0")[:STACK_SIZE], STACK_SIZE)
    for i, r in enumerate(GPRS):
        cpu.gpr[i] = full[r]
    cpu.u64(_C_RFLAGS).value = (rflags & INPUT_FLAGS) | FIXED_FLAGS
    cpu.u64(_C_ENTRY).value = CODE_ADDR
    cpu.u32(_C_MXCSR).value = mxcsr
    xs = list(xmm or []) + [0] * (16 - len(xmm or []))
    ctypes.memmove(CTX_ADDR + _C_XMM, b"".join((v & ((1 << 128) - 1)).to_bytes(16, "little")
                                                for v in xs), 256)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _ALL_SIGNALS)
    try:
        cpu.fn()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    out_regs = {r: cpu.gpr[i] for i, r in enumerate(GPRS)}
    out_regs["rip"] = CODE_ADDR + len(code)  # where the translated run stops
    xbytes = ctypes.string_at(CTX_ADDR + _C_XMM, 256)
    return Outcome(
        regs=out_regs,
        rflags=cpu.u64(_C_RFLAGS).value,
        xmm=[int.from_bytes(xbytes[16 * i:16 * i + 16], "little") for i in range(16)],
        data=ctypes.string_at(DATA_ADDR, DATA_SIZE),
        mxcsr=cpu.u32(_C_MXCSR).value,
    )


def stack_bytes(start: int, length: int) -> bytes:
    """Bytes of the native stack area (after ``run_native``)."""
    assert STACK_ADDR <= start and start + length <= STACK_TOP
    return ctypes.string_at(start, length)


# ---------------------------------------------------------------------------
# the translated side

class _KeepDict(dict):
    """``ex.known`` while a translation is reused: run_snippet's clear() is a no-op."""

    def clear(self) -> None:
        pass


_last_code: list[tuple[bytes, bool] | None] = [None]
REUSE_TRANSLATIONS = os.environ.get("BTTOOL_ISA_FRESH", "") == ""


def run_translated(code: bytes, regs: dict[str, int] | None = None, rflags: int = 0x202,
                   xmm: list[int] | None = None, data: bytes = b"",
                   mxcsr: int = 0x1F80, reuse: bool | None = None,
                   precise_faults: bool = False) -> SnippetResult:
    """``run_snippet`` with every GPR given explicitly (as ``run_native``).

    run_snippet ends the code with int3, which does not end a region for the
    translator (a SIGTRAP handler may return past it), so whatever lies
    after it in the code page - zeros, i.e. ``add [rax], al`` x hundreds -
    would be decoded and compiled too.  A ud2 right after the int3 keeps
    each snippet's region small (and the run ~40x faster).

    ``reuse`` (default: on unless BTTOOL_ISA_FRESH is set): when ``code`` is
    the very code of the previous call, keep its translation instead of
    translating it again (run_snippet drops all translations each time).
    The first run of each code is always freshly translated, so this only
    trades the recompilation of identical bytes for speed; it also checks
    that translated code can be re-entered with other inputs.

    ``untranslatable`` of the result lists only what this run added (the
    executor's list is cumulative over the process)."""
    mem, ex = snippet._machine()
    if reuse is None:
        reuse = REUSE_TRANSLATIONS
    reuse = reuse and _last_code[0] == (code, precise_faults)
    _last_code[0] = (code, precise_faults)
    mem.write_force(CODE_ADDR + len(code) + 1, b"\x0f\x0b")
    before = len(ex.stats.untranslatable)
    if reuse:
        ex.known = _KeepDict(ex.known)
        ex.clear_table = lambda: None
    try:
        r = run_snippet(code, _complete(regs), rflags, xmm, data, mxcsr,
                        precise_faults=precise_faults)
    finally:
        if reuse:
            ex.known = dict(ex.known)
            del ex.clear_table
    r.untranslatable = r.untranslatable[before:]
    return r


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


def compare(native: Outcome, trans: SnippetResult, flag_mask: int = ARITH | DF,
            reg_mask: dict[str, int] | None = None, check_data: bool = True,
            what: str = "") -> None:
    """Assert that the translated run ended like the native one.

    ``flag_mask``: the rflags bits that must agree (leave out what the SDM
    calls undefined).  ``reg_mask``: per register, the bits that must agree
    (default: all bits of all 16 GPRs)."""
    problems = []
    if trans.fault or trans.host_signal:
        problems.append(f"translated run faulted: fault={trans.fault} "
                        f"host_signal={trans.host_signal}")
    if trans.untranslatable:
        problems.append(f"untranslatable: {trans.untranslatable}")
    for r in GPRS:
        m = (reg_mask or {}).get(r, 0xFFFFFFFFFFFFFFFF)
        if (native.regs[r] ^ trans.regs[r]) & m:
            problems.append(f"  {r:4}: native {native.regs[r]:#018x} translated "
                            f"{trans.regs[r]:#018x}" + ("" if m == 2**64 - 1 else f" (mask {m:#x})"))
    diff = (native.rflags ^ trans.rflags) & flag_mask
    if diff:
        problems.append(f"  flags differ in [{flag_str(diff)}]: "
                        f"native [{flag_str(native.rflags & flag_mask)}] "
                        f"translated [{flag_str(trans.rflags & flag_mask)}]")
    if check_data and native.data != trans.data:
        problems.append(_data_diff(native.data, trans.data))
    if problems:
        raise AssertionError((what + "\n" if what else "") + "\n".join(problems))

"""The guest CPU state layout, defined once.

Generated code addresses the state by byte offset; the Python runtime reads
and writes the very same bytes through a ctypes structure.  Both views are
derived from ``FIELDS`` below, so adding a register means adding one line.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

GPR_NAMES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
FLAG_NAMES = ("cf", "pf", "af", "zf", "sf", "of", "df")
# The six that arithmetic sets (DF only cld/std, and the ABI reads it everywhere)
ARITHMETIC_FLAGS = frozenset(FLAG_NAMES) - {"df"}
# RFLAGS, the architectural layout: the bit of each flag the state keeps (in
# bit order), and the bits only the system-mode virtual CPU keeps
# (runtime/system/vcpu.py).  Bit 1 is reserved and always one; user code
# always sees IF set.
FLAG_BITS = (("cf", 0), ("pf", 2), ("af", 4), ("zf", 6), ("sf", 7), ("df", 10), ("of", 11))
FLAGS_MASK = sum(1 << bit for _, bit in FLAG_BITS)   # CF PF AF ZF SF DF OF
RFLAGS_RESERVED, RFLAGS_TF, RFLAGS_IF = 1 << 1, 1 << 8, 1 << 9
RFLAGS_IOPL_SHIFT = 12
RFLAGS_NT, RFLAGS_RF, RFLAGS_AC, RFLAGS_ID = 1 << 14, 1 << 16, 1 << 18, 1 << 21
RFLAGS_USER_FIXED = RFLAGS_RESERVED | RFLAGS_IF
# Not CPU state: the addresses of the runtime's tables in the support object
# (runtime/nativeloop.py), which translated code reads through the state pointer.
# LLVM's fast instruction selector (tier 1) cannot address an external
# global under the JIT code model and hands every block that does to the
# slow selector.  The runtime sets them (runtime/dispatcher.py); ``reset``
# keeps them.
RUNTIME_LINKS = ("table_base", "counters_base", "targets_base")
XMM_COUNT = 16

# Why the translated code stopped and handed control back to the runtime.
EXIT_NONE = 0        # keep running (the native dispatcher never returns this)
EXIT_MISS = 1        # no translation for state.rip
EXIT_SYSCALL = 2     # `syscall` executed; rip already points after it
EXIT_INTRINSIC = 3   # an intrinsic implemented in Python; exit_info = its id
EXIT_FAULT = 4       # guest fault; exit_info = fault kind, rip = faulting insn
EXIT_HOST_SIGNAL = 5  # a host SIGSEGV/SIGBUS hit guest memory (fault_addr set)
# (6 is free: hlt is an intrinsic, EXIT_INTRINSIC)
EXIT_HOT = 7         # a tier-1 counter passed its threshold at rip (retranslate)
EXIT_IRQ = 8         # an interrupt (system) or a caught host signal (user) is pending; rip is where to resume

# The MXCSR bits the virtual CPU accepts (fxsave's MXCSR_MASK, as on Intel
# CPUs with DAZ): bits 0-15.  (AMD hosts also accept bit 17, MM.)
MXCSR_MASK = 0xFFFF

# exit_info values for EXIT_FAULT
FAULT_DE = 1    # divide error -> SIGFPE
FAULT_UD = 2    # invalid opcode / untranslatable -> SIGILL
FAULT_GP = 3    # general protection (privileged insn in user mode) -> SIGSEGV
FAULT_BP = 4    # int3 -> SIGTRAP
FAULT_PF = 5    # page fault -> SIGSEGV


# Software TLB geometry (system mode).  A tag is a virtual page number
# (address >> 12); TLB_INVALID never matches one.  ``addend`` turns a virtual
# address of that page into the offset of its physical page in guest memory.
TLB_ENTRIES = 4096

SIGINFO_SIZE = 128      # Linux's siginfo_t, the same on host and guest (x86-64)
TLB_ENTRY_SIZE = 24
TLB_READ, TLB_WRITE, TLB_ADDEND = 0, 8, 16
TLB_INVALID = 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True)
class Field:
    name: str
    size: int      # bytes
    align: int
    offset: int = -1


def _layout(specs: list[tuple[str, int, int]]) -> tuple[dict[str, Field], int]:
    fields: dict[str, Field] = {}
    off = 0
    for name, size, align in specs:
        off = (off + align - 1) & -align
        fields[name] = Field(name, size, align, off)
        off += size
    return fields, (off + 63) & -64


_SPECS: list[tuple[str, int, int]] = (
    [(n, 8, 8) for n in GPR_NAMES]
    + [("rip", 8, 8)]
    + [(f, 1, 1) for f in FLAG_NAMES]
    + [("fs_base", 8, 8), ("gs_base", 8, 8),
       ("exit_reason", 4, 4), ("mxcsr", 4, 4),
       ("exit_info", 8, 8), ("fault_addr", 8, 8)]
    + [(n, 8, 8) for n in RUNTIME_LINKS]
    + [
       # x87: control word, status word (C0-C3 and exception bits; TOP is
       # kept apart in fpu_top), tag bits (one per physical register, 1 = empty)
       ("fpu_cw", 2, 2), ("fpu_sw", 2, 2), ("fpu_top", 1, 1), ("fpu_tag", 1, 1)]
    # linux-user mode: the selectors last loaded into DS, ES, FS, GS (CS and
    # SS are Linux's constants; semantics/dataxfer.py)
    + [(f"{r}_sel", 2, 2) for r in ("ds", "es", "fs", "gs")]
    + [(f"xmm{i}", 16, 16) for i in range(XMM_COUNT)]
    # AVX: bits 255:128 of ymm0..ymm15, apart from the xmm halves, as the
    # XSAVE area keeps them (its YMM_Hi128 component), so legacy SSE code,
    # fxsave images and signal frames see xmm as before
    + [(f"ymmh{i}", 16, 16) for i in range(XMM_COUNT)]
    # x87 physical registers R0..R7, each an 80-bit extended value in a
    # 16-byte slot (ST(i) is R[(fpu_top + i) & 7])
    + [(f"fpr{i}", 16, 16) for i in range(8)]
    # Set by the virtual interrupt controller when an interrupt is
    # deliverable (system mode: pending, unmasked, IF=1) or by the host
    # handler that caught a signal for the guest (linux-user, runtime/nativeloop.py
    # bt_async); translated code polls it at back edges and region exits.
    + [("irq_pending", 4, 4)]
    # System mode software TLB, consulted inline by every guest memory access
    # (ir/memory.py): TLB_ENTRIES entries of (read tag, write tag, addend).
    + [("tlb", TLB_ENTRIES * TLB_ENTRY_SIZE, 64)]
    # The host side of the guest thread that runs on this state
    # (runtime/nativeloop.py): bt_run's jump buffer, whether translated code is
    # running, the last host fault's signal, si_code and x86 page-fault
    # error code, and the signals bt_async caught for this thread (a bit
    # each) with their siginfo.  Per state, because each guest thread runs
    # on its own host thread with its own state.
    + [("host_jmpbuf", 256, 16), ("in_guest", 4, 4), ("fault_sig", 4, 4), ("fault_code", 4, 4),
       ("fault_err", 8, 8), ("async_pending", 8, 8), ("siginfo", 64 * SIGINFO_SIZE, 16)]
)

FIELDS, STATE_SIZE = _layout(_SPECS)


def _layout_digest() -> str:
    """Fingerprint of everything generated code bakes in about the state
    (field offsets and sizes, exit codes, TLB geometry); part of every cache
    key, so changing the layout can never reuse stale translations."""
    import hashlib
    text = repr(sorted((f.name, f.offset, f.size) for f in FIELDS.values())) + repr(
        (TLB_ENTRIES, TLB_ENTRY_SIZE, TLB_READ, TLB_WRITE, TLB_ADDEND, EXIT_IRQ, EXIT_HOT))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


LAYOUT_DIGEST = _layout_digest()


def offset(name: str) -> int:
    return FIELDS[name].offset


def _ctype(f: Field):
    return {1: ctypes.c_uint8, 2: ctypes.c_uint16, 4: ctypes.c_uint32,
            8: ctypes.c_uint64}.get(f.size, ctypes.c_uint8 * f.size)


def _make_struct() -> type:
    cfields = []
    pos = 0
    for i, f in enumerate(sorted(FIELDS.values(), key=lambda f: f.offset)):
        if f.offset > pos:
            cfields.append((f"_pad{i}", ctypes.c_uint8 * (f.offset - pos)))
        cfields.append((f.name, _ctype(f)))
        pos = f.offset + f.size
    if STATE_SIZE > pos:
        cfields.append(("_tail", ctypes.c_uint8 * (STATE_SIZE - pos)))
    return type("CpuState", (ctypes.Structure,), {"_fields_": cfields})


CpuState = _make_struct()
assert ctypes.sizeof(CpuState) == STATE_SIZE


def new_state() -> "CpuState":
    """A zeroed state, 64-byte aligned (SSE stores to xmm fields need 16)."""
    raw = ctypes.create_string_buffer(STATE_SIZE + 64)
    addr = (ctypes.addressof(raw) + 63) & -64
    st = CpuState.from_address(addr)
    st._keepalive = raw  # type: ignore[attr-defined]
    reset(st)
    return st


def reset(st: "CpuState") -> None:
    """The power-on CPU state, in place (translated code holds its
    address); the runtime links stay."""
    links = [getattr(st, n) for n in RUNTIME_LINKS]
    ctypes.memset(ctypes.addressof(st), 0, STATE_SIZE)
    for n, v in zip(RUNTIME_LINKS, links):
        setattr(st, n, v)
    st.mxcsr = 0x1F80
    st.fpu_cw = 0x037F
    st.fpu_tag = 0xFF


def get_xmm(st: "CpuState", i: int) -> int:
    return int.from_bytes(bytes(getattr(st, f"xmm{i}")), "little")


def set_xmm(st: "CpuState", i: int, value: int) -> None:
    getattr(st, f"xmm{i}")[:] = list((value & ((1 << 128) - 1)).to_bytes(16, "little"))


def get_ymm(st: "CpuState", i: int) -> int:
    """ymm register ``i`` (256 bits): xmm ``i`` below, ``ymmh{i}`` above."""
    return get_xmm(st, i) | int.from_bytes(bytes(getattr(st, f"ymmh{i}")), "little") << 128


def set_ymm(st: "CpuState", i: int, value: int) -> None:
    set_xmm(st, i, value)
    getattr(st, f"ymmh{i}")[:] = list(((value >> 128) & ((1 << 128) - 1)).to_bytes(16, "little"))


def rflags(st: "CpuState") -> int:
    """Compose the architectural RFLAGS value from the separate flag bytes."""
    v = RFLAGS_USER_FIXED
    for name, bit in FLAG_BITS:
        if getattr(st, name):
            v |= 1 << bit
    return v


def set_rflags(st: "CpuState", value: int) -> None:
    for name, bit in FLAG_BITS:
        setattr(st, name, (value >> bit) & 1)

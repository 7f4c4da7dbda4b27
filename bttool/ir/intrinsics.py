"""The intrinsic table: every privileged or sensitive operation, declared once.

Translated code never executes such an instruction itself.  Each entry says
what the operation means, whether it is privileged (a user-mode guest gets
#GP, i.e. SIGSEGV, as Linux would deliver), and where it is implemented:

* ``native``: expanded inline into IR by its semantic function
  (translator/semantics/system.py; cheap, hot);
* ``runtime``: the unit ends with ``EXIT_INTRINSIC``, rip at the instruction
  and ``exit_info`` = the intrinsic id and the instruction's length
  (``exit_info``/``split_exit_info`` below); the runtime (runtime/linux.py for
  user mode, runtime/system/instructions.py for system mode) performs it
  and advances rip.

System mode reuses the same entries; only the runtime implementations differ
(runtime/system/instructions.py).  Entries marked ``system_only`` are
ordinary instructions in linux-user mode (their semantic functions inline
them) that system mode must route to the runtime, because they read or
write virtual-CPU state (IF, IOPL, segment registers, the TSC).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Intrinsic:
    id: int
    name: str
    mnemonics: tuple[str, ...]
    privileged: bool
    impl: str          # "native" or "runtime"
    doc: str
    system_only: bool = False   # runtime in system mode only (see module docstring)


_ENTRIES = [
    # name, mnemonics, privileged, impl, doc
    ("syscall", ("syscall",), False, "runtime", "system call (exits with EXIT_SYSCALL in linux-user mode)"),
    ("cpuid", ("cpuid",), False, "runtime", "CPU identification from the virtual CPU model"),
    ("rdtsc", ("rdtsc", "rdtscp"), False, "native", "time-stamp counter (llvm.readcyclecounter)"),
    ("xgetbv", ("xgetbv",), False, "runtime", "read XCR0 of the virtual CPU"),
    ("hlt", ("hlt",), True, "runtime", "halt until the next interrupt"),
    ("cli", ("cli",), True, "runtime", "clear the virtual IF"),
    ("sti", ("sti",), True, "runtime", "set the virtual IF"),
    ("in", ("in", "insb", "insw", "insd"), True, "runtime", "port input from a virtual device"),
    ("out", ("out", "outsb", "outsw", "outsd"), True, "runtime", "port output to a virtual device"),
    ("mov_cr", (), True, "runtime", "mov to/from control registers (capstone: mov with a CRn operand)"),
    ("mov_dr", (), True, "runtime", "mov to/from debug registers"),
    ("lgdt", ("lgdt",), True, "runtime", "load the virtual GDTR"),
    ("lidt", ("lidt",), True, "runtime", "load the virtual IDTR"),
    ("lldt", ("lldt",), True, "runtime", "load the virtual LDTR"),
    ("ltr", ("ltr",), True, "runtime", "load the virtual task register"),
    ("rdmsr", ("rdmsr",), True, "runtime", "read a virtual MSR"),
    ("wrmsr", ("wrmsr",), True, "runtime", "write a virtual MSR"),
    ("invlpg", ("invlpg",), True, "runtime", "flush one virtual TLB entry"),
    ("wbinvd", ("wbinvd", "invd"), True, "runtime", "cache flush (no-op on the VM)"),
    ("swapgs", ("swapgs",), True, "runtime", "swap GS base with KERNEL_GS_BASE"),
    ("sysret", ("sysret", "sysretq"), True, "runtime", "return from a system call to CPL 3"),
    ("iret", ("iretq", "iretd", "iret"), True, "runtime", "return from an interrupt"),
    ("clts", ("clts",), True, "runtime", "clear CR0.TS"),
    ("lmsw", ("lmsw",), True, "runtime", "load the machine status word"),
    ("int", ("int", "into"), False, "runtime", "software interrupt (user mode as Linux: int 0x80 is an i386 system call, int 3 SIGTRAP, others SIGSEGV)"),
    ("int3", ("int3",), False, "runtime", "breakpoint (user mode: SIGTRAP)"),
    ("int1", ("int1",), False, "runtime", "ICEBP: debug trap, #DB without a gate check (user mode: SIGTRAP)"),
    # Sensitive but unprivileged: must show the virtual state, never the host's
    # (user mode: the dummy values of Linux's UMIP emulation, runtime/linux.py).
    ("sgdt", ("sgdt",), False, "runtime", "store the virtual GDTR"),
    ("sidt", ("sidt",), False, "runtime", "store the virtual IDTR"),
    ("sldt", ("sldt",), False, "runtime", "store the virtual LDTR selector"),
    ("str", ("str",), False, "runtime", "store the virtual task register selector"),
    ("smsw", ("smsw",), False, "runtime", "store the virtual machine status word"),
    ("far", ("ljmp", "lcall", "retf", "retfq"), False, "runtime",
     "far jump, call or return: loads CS from the virtual GDT (may switch 32/64-bit mode)"),
    ("rdrand", ("rdrand", "rdseed"), False, "runtime",
     "random bits from the host's entropy (os.urandom) into a general register, CF=1: the "
     "virtual CPU's source never runs dry, and the guest never reaches the host's instruction"),
]

# Ordinary in linux-user mode, intrinsics in system mode.
_SYSTEM_ONLY = [
    ("pushf", ("pushf", "pushfd", "pushfq"), False, "runtime",
     "push RFLAGS with the virtual IF and IOPL"),
    ("popf", ("popf", "popfd", "popfq"), False, "runtime",
     "pop RFLAGS: IF changes only at CPL <= IOPL, IOPL only at CPL 0 (no fault otherwise)"),
    ("mov_seg", (), False, "runtime", "mov to/from a segment register (virtual selectors)"),
    ("rdtsc_vm", (), False, "runtime", "time-stamp counter of the virtual CPU (rdtsc, rdtscp)"),
]

TABLE: dict[str, Intrinsic] = {
    name: Intrinsic(i + 1, name, mn, priv, impl, doc, i >= len(_ENTRIES))
    for i, (name, mn, priv, impl, doc) in enumerate(_ENTRIES + _SYSTEM_ONLY)
}
BY_ID: dict[int, Intrinsic] = {e.id: e for e in TABLE.values()}

# exit_info of EXIT_INTRINSIC: the id in the low bits, the instruction's
# length above them, so the runtime can step over the instruction without
# decoding it (a warm run then never loads the decoder).
_SIZE_SHIFT = 16


# And, for an intrinsic that writes a general register (rdrand, rdseed),
# that register above the length: its number in GPR_NAMES (ir/state.py)
# and its width in bytes, so the runtime needs no decoder for it either.
_REG_SHIFT = 24


def exit_info(entry: Intrinsic, insn_size: int, register: tuple[int, int] | None = None) -> int:
    """``register``: (number in GPR_NAMES, width in bytes) of the general
    register the intrinsic writes, if it writes one."""
    info = entry.id | (insn_size << _SIZE_SHIFT)
    if register is not None:
        number, width = register
        info |= (number | width << 4) << _REG_SHIFT
    return info


def split_exit_info(info: int) -> tuple[Intrinsic, int]:
    """(the intrinsic, the length of its instruction) from ``exit_info``."""
    return BY_ID[info & ((1 << _SIZE_SHIFT) - 1)], (info >> _SIZE_SHIFT) & 0xFF


def exit_register(info: int) -> tuple[int, int]:
    """(number in GPR_NAMES, width in bytes) of the register that
    ``exit_info`` names (see ``exit_info``)."""
    code = info >> _REG_SHIFT
    return code & 0xF, code >> 4

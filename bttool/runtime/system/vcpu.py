"""The virtual CPU of the system-mode machine: system registers, MSRs,
segment selectors, privilege level, RFLAGS.IF/IOPL, and the long-mode
interrupt and exception delivery through the guest's IDT.

General registers, rip and the arithmetic flags live in the CPU state that
translated code uses (ir/state.py); everything here is touched only by
runtime intrinsics, so it is plain Python.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from bttool.ir import state as st
from bttool.runtime.system.controlbits import CR0_ET, EFER_LMA
from bttool.runtime.system.mmu import MMU, PageFault

# RFLAGS bits kept here (the arithmetic ones and DF live in the CPU state)
TF, IF, NT, RF, AC, ID = (st.RFLAGS_TF, st.RFLAGS_IF, st.RFLAGS_NT, st.RFLAGS_RF,
                          st.RFLAGS_AC, st.RFLAGS_ID)
IOPL_SHIFT = st.RFLAGS_IOPL_SHIFT
ARITH_MASK = st.FLAGS_MASK       # CF PF AF ZF SF OF and DF
SYS_WRITABLE = TF | IF | (3 << IOPL_SHIFT) | NT | RF | AC | ID

# exception vectors
DE, DB, NMI, BP, OF, BR, UD, NM, DF = range(9)
TS, NP, SS, GP, PF = range(10, 15)
_HAS_ERROR_CODE = {DF, TS, NP, SS, GP, PF, 17}
_CONTRIBUTORY = {DE, TS, NP, SS, GP}

# MSRs
MSR_TSC, MSR_APIC_BASE, MSR_PAT, MSR_MISC_ENABLE = 0x10, 0x1B, 0x277, 0x1A0
MSR_EFER, MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_FMASK = (0xC0000080, 0xC0000081, 0xC0000082,
                                                       0xC0000083, 0xC0000084)
MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE, MSR_TSC_AUX = (0xC0000100, 0xC0000101,
                                                             0xC0000102, 0xC0000103)
# MSRs the virtual CPU has (others: #GP): the above, MTRRs, and a few a kernel probes
KNOWN_MSRS = ({MSR_TSC, MSR_APIC_BASE, MSR_PAT, MSR_MISC_ENABLE, MSR_EFER, MSR_STAR, MSR_LSTAR,
               MSR_CSTAR, MSR_FMASK, MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE, MSR_TSC_AUX,
               0x8B, 0x3A, 0xFE, 0x2FF, 0x48, 0x49}
              | set(range(0x200, 0x210)) | set(range(0x250, 0x270)))
MASK64 = (1 << 64) - 1


class GuestException(Exception):
    """An exception to raise in the guest: (vector, error code or None)."""

    def __init__(self, vector: int, error: int | None = None, cr2: int | None = None) -> None:
        super().__init__(f"exception {vector} error {error}")
        self.vector = vector
        self.error = error
        self.cr2 = cr2


class TripleFault(Exception):
    pass


def gp(error: int = 0) -> GuestException:
    return GuestException(GP, error)


@dataclass
class DescriptorTable:
    base: int = 0
    limit: int = 0xFFFF


@dataclass
class VirtualCpu:
    """System state of the one virtual CPU (power-on values)."""
    cr0: int = CR0_ET
    cr2: int = 0
    cr3: int = 0
    cr4: int = 0
    cr8: int = 0
    efer: int = 0
    gdtr: DescriptorTable = field(default_factory=DescriptorTable)
    idtr: DescriptorTable = field(default_factory=DescriptorTable)
    ldtr: int = 0
    tr: int = 0
    tr_base: int = 0
    tr_limit: int = 0
    cpl: int = 0
    mode: int = 64                 # code size of CS: 64 (long mode) or 32
    rflags_sys: int = 0x2          # TF IF IOPL NT RF AC ID (+ reserved bit 1)
    selectors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("cs", "ds", "es", "fs", "gs", "ss"), 0))
    msrs: dict[int, int] = field(default_factory=dict)
    dr: list[int] = field(default_factory=lambda: [0, 0, 0, 0, 0, 0, 0xFFFF0FF0, 0x400])
    tsc_offset: int = 0
    halted: bool = False

    @property
    def interrupts_enabled(self) -> bool:
        return bool(self.rflags_sys & IF)

    @property
    def iopl(self) -> int:
        return (self.rflags_sys >> IOPL_SHIFT) & 3

    def msr(self, index: int) -> int:
        return self.msrs.get(index, 0)


def read_rflags(s, cpu: VirtualCpu) -> int:
    """Architectural RFLAGS: arithmetic flags from the CPU state, the rest
    from the virtual CPU."""
    return (st.rflags(s) & ARITH_MASK) | cpu.rflags_sys | 0x2


def write_rflags(s, cpu: VirtualCpu, value: int, sys_mask: int = SYS_WRITABLE) -> None:
    st.set_rflags(s, value)
    cpu.rflags_sys = (cpu.rflags_sys & ~sys_mask) | (value & sys_mask) | 0x2


class Descriptors:
    """Reads the guest's GDT and TSS, and delivers interrupts in long mode."""

    def __init__(self, cpu: VirtualCpu, mmu: MMU, state) -> None:
        self.cpu = cpu
        self.mmu = mmu
        self.state = state

    # -- descriptor tables ------------------------------------------------------
    def descriptor(self, selector: int) -> int:
        """The 8-byte GDT (or LDT, not modelled) descriptor of ``selector``."""
        idx = selector & ~7
        if selector & 4 or idx + 7 > self.cpu.gdtr.limit:
            raise gp(selector & ~3)
        return self.mmu.read_u64(self.cpu.gdtr.base + idx, user=False)

    def system_descriptor_base(self, selector: int) -> tuple[int, int]:
        """(base, limit) of a 16-byte long-mode system descriptor (TSS, LDT)."""
        lo = self.descriptor(selector)
        hi = self.mmu.read_u64(self.cpu.gdtr.base + (selector & ~7) + 8, user=False) \
            if self.cpu.efer & EFER_LMA else 0
        base = ((lo >> 16) & 0xFFFFFF) | (((lo >> 56) & 0xFF) << 24) | ((hi & 0xFFFFFFFF) << 32)
        limit = (lo & 0xFFFF) | (((lo >> 48) & 0xF) << 16)
        if lo & (1 << 55):
            limit = (limit << 12) | 0xFFF
        return base, limit

    @staticmethod
    def code_bits(desc: int) -> int:
        if desc & (1 << 53):           # L
            return 64
        return 32 if desc & (1 << 54) else 16

    @staticmethod
    def dpl(desc: int) -> int:
        return (desc >> 45) & 3

    def tss_stack(self, which: str, n: int) -> int:
        """RSPn or ISTn from the 64-bit TSS."""
        off = 4 + 8 * n if which == "rsp" else 36 + 8 * (n - 1)
        if off + 7 > self.cpu.tr_limit:
            raise GuestException(TS, self.cpu.tr & ~3)
        return self.mmu.read_u64(self.cpu.tr_base + off, user=False)

    # -- interrupt delivery -------------------------------------------------------
    def deliver(self, vector: int, error: int | None, return_rip: int, software: bool = False,
                on_cpl_change=None) -> None:
        """Enter the guest's handler for ``vector`` as a long-mode CPU does:
        read the gate, switch stacks on a privilege change (or to an IST
        stack), push SS, RSP, RFLAGS, CS, RIP (and the error code), clear IF
        for interrupt gates."""
        cpu, s = self.cpu, self.state
        if not cpu.efer & EFER_LMA or cpu.mode != 64:
            raise TripleFault(f"exception {vector} outside 64-bit mode (no protected-mode IDT)")
        if vector * 16 + 15 > cpu.idtr.limit:
            raise gp(vector * 8 + 2)
        raw = self.mmu.read_virtual(cpu.idtr.base + vector * 16, 16, user=False)
        lo, hi = struct.unpack("<QQ", raw)
        offset = (lo & 0xFFFF) | (((lo >> 48) & 0xFFFF) << 16) | ((hi & 0xFFFFFFFF) << 32)
        selector = (lo >> 16) & 0xFFFF
        ist = (lo >> 32) & 7
        gate_type = (lo >> 40) & 0xF
        gate_dpl = (lo >> 45) & 3
        if not lo & (1 << 47):
            raise GuestException(NP, vector * 8 + 2)
        if gate_type not in (0xE, 0xF):
            raise gp(vector * 8 + 2)
        if software and gate_dpl < cpu.cpl:
            raise gp(vector * 8 + 2)
        code = self.descriptor(selector)
        if not code & (1 << 47) or not code & (1 << 43):
            raise gp(selector & ~3)
        new_cpl = self.dpl(code) if not code & (1 << 42) else cpu.cpl
        old_ss, old_rsp, old_cs = cpu.selectors["ss"], s.rsp, cpu.selectors["cs"]
        rflags = read_rflags(s, cpu)
        if ist:
            rsp = self.tss_stack("ist", ist)
        elif new_cpl < cpu.cpl:
            rsp = self.tss_stack("rsp", new_cpl)
        else:
            rsp = old_rsp
        rsp &= ~0xF & MASK64
        frame = [old_ss, old_rsp, rflags, old_cs, return_rip]
        if error is not None:
            frame.append(error)
        rsp = (rsp - 8 * len(frame)) & MASK64
        # the frame is written with supervisor rights, as the CPU does
        self.mmu.write_virtual(rsp, struct.pack(f"<{len(frame)}Q", *reversed(frame)), user=False)
        if new_cpl != cpu.cpl:
            cpu.selectors["ss"] = new_cpl       # null selector with RPL = new CPL
            cpu.cpl = new_cpl
            if on_cpl_change:
                on_cpl_change()
        cpu.selectors["cs"] = (selector & ~3) | new_cpl
        s.rsp = rsp
        s.rip = offset
        cpu.rflags_sys &= ~(TF | NT | RF)
        if gate_type == 0xE:
            cpu.rflags_sys &= ~IF

    @staticmethod
    def combine(first: int, second: int) -> bool:
        """Whether an exception raised while delivering ``first`` becomes a
        double fault (SDM Vol. 3 Table 6-5)."""
        if first == DF:
            return True
        if first in _CONTRIBUTORY and second in _CONTRIBUTORY:
            return True
        return first == PF and (second in _CONTRIBUTORY or second == PF)

    @staticmethod
    def has_error_code(vector: int) -> bool:
        return vector in _HAS_ERROR_CODE


__all__ = ["VirtualCpu", "Descriptors", "GuestException", "TripleFault", "PageFault",
           "read_rflags", "write_rflags", "gp"]

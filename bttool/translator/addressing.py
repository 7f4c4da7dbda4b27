"""How an x86 instruction forms the address of a memory operand: the one
reading of capstone's memory operand that both translated code
(translator/operands.py emits it as IR) and the runtime (which performs a
few instructions in Python: system-mode intrinsics, Linux's UMIP emulation)
use, so the two can never disagree about rip-relative targets, 32-bit
address wrap-around or which segment bases count.

The address is ``base + index * scale + disp``, wrapped to 32 bits under a
32-bit address size, plus the FS or GS base (the only segments with a base
in 64-bit mode; system mode's flat 32-bit segments have none either).  A
rip-relative operand is the next instruction's address plus ``disp``.
"""
from __future__ import annotations

from dataclasses import dataclass

from capstone import x86_const as X

from bttool.translator.decoder import RegInfo, reg_table

_REGS = reg_table()
_SEGMENT_BASES = {X.X86_REG_FS: "fs_base", X.X86_REG_GS: "gs_base"}
MASK64 = (1 << 64) - 1


class UnknownAddressRegister(Exception):
    """A memory operand names a register the CPU state does not hold."""


@dataclass(frozen=True)
class AddressForm:
    """The parts of one memory operand's address."""
    base: RegInfo | None        # None: no base register (or rip-relative)
    index: RegInfo | None
    scale: int
    disp: int                   # signed
    rip_target: int | None      # rip-relative: next instruction + disp (before wrapping)
    wrap32: bool                # the address is taken modulo 2**32
    segment_base: str | None    # "fs_base" / "gs_base": state field added last

    def linear(self, state) -> int:
        """The address, segment base included, in CPU state ``state`` (the
        runtime's ctypes state: one attribute per field)."""
        def reg(info: RegInfo) -> int:
            return (getattr(state, info.field) >> info.shift) & ((1 << info.bits) - 1)
        if self.rip_target is not None:
            addr = self.rip_target
        else:
            addr = self.disp
            if self.base is not None:
                addr += reg(self.base)
            if self.index is not None:
                addr += reg(self.index) * self.scale
        addr &= 0xFFFFFFFF if self.wrap32 else MASK64
        if self.segment_base is not None:
            addr += getattr(state, self.segment_base)
        return addr & MASK64


def address_form(insn, mem, mode: int = 64) -> AddressForm:
    """The address of memory operand ``mem`` (capstone's ``op.mem``) of
    ``insn`` decoded in ``mode`` (64 or 32)."""
    wrap32 = mode == 32 or getattr(insn, "addr_size", mode // 8) == 4 or mem.base == X.X86_REG_EIP
    segment = _SEGMENT_BASES.get(mem.segment)
    if mem.base in (X.X86_REG_RIP, X.X86_REG_EIP):
        return AddressForm(None, None, 1, mem.disp, insn.address + insn.size + mem.disp, wrap32, segment)
    return AddressForm(_register(insn, mem.base), _register(insn, mem.index), mem.scale, mem.disp,
                       None, wrap32, segment)


def _register(insn, reg_id: int) -> RegInfo | None:
    if reg_id == X.X86_REG_INVALID:
        return None
    info = _REGS.get(reg_id)
    if info is None:
        raise UnknownAddressRegister(f"register {insn.reg_name(reg_id)}")
    return info

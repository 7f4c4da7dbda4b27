"""Jump tables: the targets of an indirect `jmp` when the pattern is clear.

    cmp idx, N ; ja default ; ... ; jmp [idx*8 + TABLE]                (absolute)
    cmp idx, N ; ja default ; lea base, [rip+T] ; movsxd r, [base+idx*4] ;
        add r, base ; jmp r                                            (PIC)

The bound check usually ends the previous block (``bound_after``).  Used by
ahead-of-time discovery and by region formation, which turns a resolved
table into an IR switch so the dispatch stays inside the region.

When the table address is set up outside the code seen (an interpreter
loop's table base is loaded once before the loop), the run time can offer
the base register's current value (``reg_value``): a guess, which is safe
because the switch compares the computed target with every candidate and
anything else leaves through the lookup table as usual.
"""
from __future__ import annotations

import struct
from typing import Callable

from capstone import x86_const as X

from bttool.translator.decoder import reg_table

Reader = Callable[[int, int], bytes]
MAX_ENTRIES = 4096


def bound_after(insns) -> int | None:
    """Entries of the table guarded by a block ending `cmp idx, N; ja/jae`."""
    if not insns or insns[-1].id not in (X.X86_INS_JA, X.X86_INS_JAE):
        return None
    last = insns[-1]
    for insn in reversed(insns[:-1]):
        if insn.id == X.X86_INS_CMP and len(insn.operands) == 2 \
                and insn.operands[1].type == X.X86_OP_IMM:
            return insn.operands[1].imm + (1 if last.id == X.X86_INS_JA else 0)
    return None


RegValue = Callable[[str], "int | None"]   # 64-bit register (state field name) -> current value


def targets(insns, read_data: Reader, executable: Callable[[int], bool],
            bound: int | None, context=(), reg_value: RegValue | None = None) -> list[int]:
    """Targets of the table ending this block (in table order, deduplicated).
    ``context``: other instructions of the region, where a hoisted table
    address may be set up; ``reg_value``: a guess of register values (see
    the module docstring)."""
    if not insns or insns[-1].id != X.X86_INS_JMP or not insns[-1].operands \
            or insns[-1].operands[0].type == X.X86_OP_IMM:
        return []
    own = _bounded_by_own_cmp(insns)
    n = own if own is not None else bound
    if n is None:
        return []
    return list(dict.fromkeys(_read_table(insns, read_data, executable, n, context, reg_value)))


def _bounded_by_own_cmp(insns) -> int | None:
    """A bound checked inside the jump block itself (rare), or None."""
    for insn in reversed(insns[:-1]):
        if insn.id == X.X86_INS_CMP and len(insn.operands) == 2 and insn.operands[1].type == X.X86_OP_IMM:
            return insn.operands[1].imm + 1
    return None


def _table_lea(insns, reg: int):
    """The one `lea reg, [rip+T]` among ``insns`` (None if none or several):
    compilers hoist the table address out of interpreter loops."""
    leas = {(i.address + i.size + i.operands[1].mem.disp) for i in insns
            if i.id == X.X86_INS_LEA and i.operands[0].reg == reg
            and i.operands[1].mem.base == X.X86_REG_RIP}
    if len(leas) != 1:
        return None
    return next(i for i in insns if i.id == X.X86_INS_LEA and i.operands[0].reg == reg
                and i.operands[1].mem.base == X.X86_REG_RIP)


def _base_unchanged(insns, movsxd, base: int) -> bool:
    """The jump block does not write ``base`` before the movsxd (so its
    value there is the one the block was entered with)."""
    for insn in insns:
        if insn is movsxd:
            return True
        if insn.operands and insn.operands[0].type == X.X86_OP_REG \
                and insn.operands[0].reg == base:
            return False
    return True


def _read_table(insns, read: Reader, executable, bound: int, context=(),
                reg_value: RegValue | None = None) -> list[int]:
    last = insns[-1]
    op = last.operands[0]
    out: list[int] = []
    if bound <= 0 or bound > MAX_ENTRIES:
        return []
    if op.type == X.X86_OP_MEM and op.mem.base == 0 and op.mem.scale == 8 and op.mem.disp:
        table = op.mem.disp & 0xFFFFFFFFFFFFFFFF
        raw = read(table, 8 * bound)
        for i in range(len(raw) // 8):
            t = struct.unpack_from("<Q", raw, 8 * i)[0]
            if executable(t):
                out.append(t)
        return out
    if op.type == X.X86_OP_REG:
        movsxd = next((i for i in reversed(insns) if i.id == X.X86_INS_MOVSXD
                       and i.operands[1].type == X.X86_OP_MEM), None)
        if movsxd is None:
            return []
        base = movsxd.operands[1].mem.base
        lea = _table_lea(insns, base) or _table_lea(context, base)
        if lea is not None:
            table = lea.address + lea.size + lea.operands[1].mem.disp
        elif reg_value is not None and _base_unchanged(insns, movsxd, base):
            info = reg_table().get(base)
            table = reg_value(info.field) if info is not None and info.bits == 64 \
                and not info.field.startswith("xmm") else None
            if table is None:
                return []
        else:
            return []
        raw = read(table, 4 * bound)
        for i in range(len(raw) // 4):
            t = (table + struct.unpack_from("<i", raw, 4 * i)[0]) & 0xFFFFFFFFFFFFFFFF
            if executable(t):
                out.append(t)
    return out



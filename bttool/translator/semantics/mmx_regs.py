"""MMX registers: mm0-mm7 are the x87 physical registers R0-R7 (Intel SDM
vol. 1, 9.5).  This module is the one place for that aliasing rule; it
registers no instruction.

* Reading mmN reads the low 64 bits of RN (its significand).
* Writing mmN writes those 64 bits and sets bits 64-79 (sign and exponent)
  to all ones, so x87 code later sees a negative NaN or infinity there.
* Every instruction that names an mm register switches the x87 unit to
  MMX state: TOP = 0 and all eight tags valid.  Reads and writes below do
  it, so no semantic function can forget it.  An instruction that names no
  mm register makes no switch (``cvtpi2ps xmm, m64``: the SDM says the
  memory forms of cvtpi2ps/cvtpi2pd do not switch).
* ``emms`` (mmx.py) marks every tag empty, and sets TOP = 0 too: "each
  time an MMX instruction is executed, the TOS value is set to 000B" (SDM
  vol. 3, 12.2), and this AMD host's emms does so
  (tests/test_mmx_semantics.py, test_alias_corners).

The physical registers stay in the state's ``fpr`` slots in memory (x87.py
reaches them by a dynamic index, so they are never promoted to SSA values
by the emitter): MMX code addresses the very bytes x87 code does, and the
two views can never disagree.  ``fpu_top`` and ``fpu_tag`` are ordinary
promoted fields.
"""
from __future__ import annotations

from llvmlite import ir
from capstone import x86_const as X

from bttool.ir import state
from bttool.ir.emitter import I8, I64, const
from bttool.translator.operands import Insn

_FPR0 = state.offset("fpr0")
_FPR_STRIDE = 16
_EXPONENT_ONES = 0xFFFF          # bits 64-79 of an x87 register written by MMX code
_MM_IDS = {getattr(X, f"X86_REG_MM{i}"): i for i in range(8)}


def mm_number(reg_id: int) -> int | None:
    """N for capstone's register id of mmN, else None."""
    return _MM_IDS.get(reg_id)


def is_mm(ctx: Insn, i: int) -> bool:
    """Is operand ``i`` an mm register?"""
    return ctx.is_reg(i) and ctx.ops[i].reg in _MM_IDS


def names_mm(ctx: Insn) -> bool:
    """Does the instruction name an mm register in any operand?"""
    return any(is_mm(ctx, i) for i in range(len(ctx.ops)))


def _ptr(ctx: Insn, n: int, byte: int = 0) -> ir.Value:
    off = const(64, _FPR0 + _FPR_STRIDE * n + byte)
    return ctx.b.gep(ctx.em.state_ptr, [off], inbounds=True, source_etype=I8)


def enter_mmx_state(ctx: Insn) -> None:
    """The x87-to-MMX transition: TOP = 0, every tag valid."""
    ctx.em.set("fpu_top", const(8, 0))
    ctx.em.set("fpu_tag", const(8, 0))


def read_mm(ctx: Insn, n: int) -> ir.Value:
    """mmN as an i64 (the significand of RN)."""
    enter_mmx_state(ctx)
    ctx.em.note_register_file(write=False)
    v = ctx.b.load(_ptr(ctx, n), typ=I64)
    v.align = 8
    return v


def write_mm(ctx: Insn, n: int, value: ir.Value) -> None:
    """Set mmN to the i64 ``value``: RN's significand, exponent and sign all ones."""
    enter_mmx_state(ctx)
    ctx.em.note_register_file(write=True)
    s = ctx.b.store(value, _ptr(ctx, n))
    s.align = 8
    s = ctx.b.store(const(16, _EXPONENT_ONES), _ptr(ctx, n, 8))
    s.align = 8


def leave_mmx_state(ctx: Insn) -> None:
    """emms: TOP = 0 and every x87 register empty (their contents kept)."""
    ctx.em.set("fpu_top", const(8, 0))
    ctx.em.set("fpu_tag", const(8, 0xFF))


__all__ = ["mm_number", "is_mm", "names_mm", "enter_mmx_state", "read_mm", "write_mm",
           "leave_mmx_state"]

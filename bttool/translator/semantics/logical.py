"""Bitwise logic family: and or xor test not andn."""
from __future__ import annotations

from bttool.translator import flags
from bttool.translator.operands import Insn
from bttool.translator.registry import semantic


def _logic(ctx: Insn, op: str, store: bool = True) -> None:
    if store and ctx.locked:     # lock and/or/xor: atomically, flags from the result
        b = ctx.read_sx(1, ctx.bits(0))
        old = ctx.atomic_rmw(op.rstrip("_"), b)
        flags.set_logic(ctx, getattr(ctx.b, op)(old, b))
        return
    a, b = ctx.read(0), ctx.read_sx(1, ctx.bits(0))
    r = getattr(ctx.b, op)(a, b)
    flags.set_logic(ctx, r)
    if store:
        ctx.write(0, r)


@semantic("and")
def and_(ctx: Insn) -> None:
    _logic(ctx, "and_")


@semantic("or")
def or_(ctx: Insn) -> None:
    _logic(ctx, "or_")


@semantic("xor")
def xor(ctx: Insn) -> None:
    if ctx.is_reg(0) and ctx.is_reg(1) and ctx.ops[0].reg == ctx.ops[1].reg:
        zero = ctx.c(ctx.bits(0), 0)
        flags.set_logic(ctx, zero)
        ctx.write(0, zero)
        return
    _logic(ctx, "xor")


@semantic("test")
def test(ctx: Insn) -> None:
    _logic(ctx, "and_", store=False)


@semantic("not")
def not_(ctx: Insn) -> None:
    if ctx.locked:
        ctx.atomic_rmw("xor", ctx.c(ctx.bits(0), -1))
        return
    ctx.write(0, ctx.b.not_(ctx.read(0)))

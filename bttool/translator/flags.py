"""Arithmetic flag helpers shared by all instruction families.

Flags are separate i1 values (see ir/emitter.py), so a flag computed here and
overwritten before anyone reads it is deleted by LLVM.
"""
from __future__ import annotations

from llvmlite import ir

from bttool.ir.emitter import I1, I8
from bttool.translator import conditions
from bttool.translator.operands import Insn


def _zero(v: ir.Value) -> ir.Constant:
    return ir.Constant(v.type, 0)


def sign(ctx: Insn, v: ir.Value) -> ir.Value:
    return ctx.b.icmp_signed("<", v, _zero(v))


def parity(ctx: Insn, v: ir.Value) -> ir.Value:
    """PF: set when the low byte has an even number of one bits.

    Tier 1 (hot counters) folds the byte with shifts and xors: LLVM's fast
    instruction selector has no rule for ctpop and would hand the whole
    block to the slow one.  Tier 2 keeps ctpop, which the x86 back end
    turns into a test of the host's own parity flag."""
    b = ctx.b
    low = b.trunc(v, I8) if v.type.width > 8 else v
    if ctx.em.hot_counters:
        for k in (4, 2, 1):
            low = b.xor(low, b.lshr(low, ir.Constant(I8, k)))
        cnt = low
    else:
        cnt = ctx.em.intrinsic("llvm.ctpop.i8", I8, [low])
    return b.icmp_unsigned("==", b.and_(cnt, ir.Constant(I8, 1)), ir.Constant(I8, 0))


def set_zsp(ctx: Insn, res: ir.Value) -> None:
    ctx.set_flag("zf", lambda: ctx.b.icmp_unsigned("==", res, _zero(res)))
    ctx.set_flag("sf", lambda: sign(ctx, res))
    ctx.set_flag("pf", lambda: parity(ctx, res))


def set_logic(ctx: Insn, res: ir.Value) -> None:
    """and/or/xor/test: CF=OF=0, AF cleared (undefined), ZF/SF/PF from result."""
    f = ir.Constant(I1, 0)
    ctx.set_flag("cf", f)
    ctx.set_flag("of", f)
    ctx.set_flag("af", f)
    set_zsp(ctx, res)


def _af(ctx: Insn, a: ir.Value, b: ir.Value, res: ir.Value) -> ir.Value:
    x = ctx.b.xor(ctx.b.xor(a, b), res)
    return ctx.b.trunc(ctx.b.lshr(x, ir.Constant(x.type, 4)), I1)


def set_add(ctx: Insn, a: ir.Value, b: ir.Value, res: ir.Value,
            carry_in: ir.Value | None = None) -> None:
    bb = ctx.b

    def cf() -> ir.Value:
        c = bb.icmp_unsigned("<", res, a)
        if carry_in is not None:
            c = bb.or_(c, bb.and_(carry_in, bb.icmp_unsigned("==", res, a)))
        return c
    ctx.set_flag("cf", cf)
    ctx.set_flag("of", lambda: sign(ctx, bb.and_(bb.xor(a, res), bb.xor(b, res))))
    ctx.set_flag("af", lambda: _af(ctx, a, b, res))
    set_zsp(ctx, res)


def set_sub(ctx: Insn, a: ir.Value, b: ir.Value, res: ir.Value,
            borrow_in: ir.Value | None = None) -> None:
    bb = ctx.b

    def cf() -> ir.Value:
        c = bb.icmp_unsigned("<", a, b)
        if borrow_in is not None:
            c = bb.or_(c, bb.and_(borrow_in, bb.icmp_unsigned("==", a, b)))
        return c
    ctx.set_flag("cf", cf)
    ctx.set_flag("of", lambda: sign(ctx, bb.and_(bb.xor(a, b), bb.xor(a, res))))
    ctx.set_flag("af", lambda: _af(ctx, a, b, res))
    set_zsp(ctx, res)


def condition(ctx: Insn, cc: str) -> ir.Value:
    """The i1 value of an x86 condition code suffix (e, ne, l, a, ...;
    the table is conditions.py)."""
    b = ctx.b
    base, neg = conditions.test(cc)
    ored, signed = conditions.TESTS[base]
    v = None
    for name in ored:
        v = ctx.flag(name) if v is None else b.or_(v, ctx.flag(name))
    if signed:
        lt = b.xor(ctx.flag("sf"), ctx.flag("of"))
        v = lt if v is None else b.or_(v, lt)
    return b.not_(v) if neg else v

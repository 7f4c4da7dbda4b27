"""Multiply and divide family: mul imul div idiv.

Division faults (#DE) on a zero divisor or a quotient that does not fit;
both are checked before the LLVM division, whose behaviour would be
undefined otherwise.
"""
from __future__ import annotations

from llvmlite import ir

from bttool.ir.state import EXIT_FAULT, FAULT_DE
from bttool.translator.operands import Insn
from bttool.translator.registry import semantic

I64 = ir.IntType(64)

# Where each width keeps its double-width product/dividend: (low, high).
_PAIR = {8: None, 16: ("rax", "rdx"), 32: ("rax", "rdx"), 64: ("rax", "rdx")}


def _get_wide(ctx: Insn, w: int) -> ir.Value:
    b = ctx.b
    wide = ir.IntType(2 * w)
    if w == 8:
        return ctx.gpr("rax", 16)
    lo = b.zext(ctx.gpr("rax", w), wide)
    hi = b.zext(ctx.gpr("rdx", w), wide)
    return b.or_(b.shl(hi, ir.Constant(wide, w)), lo)


def _set_pair(ctx: Insn, w: int, lo: ir.Value, hi: ir.Value) -> None:
    if w == 8:
        b = ctx.b
        ax = b.or_(b.shl(b.zext(hi, ir.IntType(16)), ir.Constant(ir.IntType(16), 8)),
                   b.zext(lo, ir.IntType(16)))
        ctx.set_gpr("rax", ax)
        return
    ctx.set_gpr("rax", lo)
    ctx.set_gpr("rdx", hi)


def _split(ctx: Insn, v: ir.Value, w: int) -> tuple[ir.Value, ir.Value]:
    b = ctx.b
    ty = ir.IntType(w)
    return b.trunc(v, ty), b.trunc(b.lshr(v, ir.Constant(v.type, w)), ty)


def _mul_flags(ctx: Insn, overflow: ir.Value, low: ir.Value) -> None:
    ctx.set_flag("cf", overflow)
    ctx.set_flag("of", overflow)
    # SF, ZF, AF, PF are undefined; hardware reports SF/ZF/PF of the low half.
    from bttool.translator import flags
    flags.set_zsp(ctx, low)
    ctx.set_flag("af", ir.Constant(ir.IntType(1), 0))


@semantic("mul")
def mul(ctx: Insn) -> None:
    b = ctx.b
    src = ctx.read(0)
    w = src.type.width
    wide = ir.IntType(2 * w)
    p = b.mul(b.zext(ctx.gpr("rax", w), wide), b.zext(src, wide))
    lo, hi = _split(ctx, p, w)
    _set_pair(ctx, w, lo, hi)
    _mul_flags(ctx, b.icmp_unsigned("!=", hi, ir.Constant(hi.type, 0)), lo)


@semantic("imul")
def imul(ctx: Insn) -> None:
    b = ctx.b
    if len(ctx.ops) == 1:
        src = ctx.read(0)
        w = src.type.width
        wide = ir.IntType(2 * w)
        p = b.mul(b.sext(ctx.gpr("rax", w), wide), b.sext(src, wide))
        lo, hi = _split(ctx, p, w)
        _set_pair(ctx, w, lo, hi)
        _mul_flags(ctx, b.icmp_unsigned("!=", p, b.sext(lo, wide)), lo)
        return
    w = ctx.bits(0)
    wide = ir.IntType(2 * w)
    if len(ctx.ops) == 2:
        a, c = ctx.read(0), ctx.read_sx(1, w)
    else:
        a, c = ctx.read_sx(1, w), ctx.read_sx(2, w)
    p = b.mul(b.sext(a, wide), b.sext(c, wide))
    lo = b.trunc(p, ir.IntType(w))
    _mul_flags(ctx, b.icmp_unsigned("!=", p, b.sext(lo, wide)), lo)
    ctx.write(0, lo)


def _fault_if(ctx: Insn, cond: ir.Value) -> None:
    with ctx.b.if_then(cond, likely=False):
        ctx.leave(ctx.pc, EXIT_FAULT, FAULT_DE)


def _divide(ctx: Insn, signed: bool) -> None:
    b = ctx.b
    src = ctx.read(0)
    w = src.type.width
    zero = ir.Constant(src.type, 0)
    _fault_if(ctx, b.icmp_unsigned("==", src, zero))
    if w != 64:
        lo, rem = _divide_wide(ctx, signed, src)
        _set_pair(ctx, w, lo, rem)
        return
    # 64-bit: when rdx is only the extension of rax (cqo / xor edx, edx), a
    # 64-bit division gives the same result without a 128-bit library call.
    lo_in, hi_in = ctx.gpr("rax", 64), ctx.gpr("rdx", 64)
    ext = b.ashr(lo_in, ir.Constant(I64, 63)) if signed else ir.Constant(I64, 0)
    fast, slow, join = (ctx.em.new_block(n) for n in ("div.narrow", "div.wide", "div.join"))
    b.cbranch(b.icmp_unsigned("==", hi_in, ext), fast, slow)
    b.position_at_end(fast)
    if signed:
        minus1 = b.icmp_signed("==", src, ir.Constant(I64, -1))
        d = b.select(minus1, ir.Constant(I64, 1), src)
        q = b.select(minus1, b.sub(ir.Constant(I64, 0), lo_in), b.sdiv(lo_in, d))
        r = b.srem(lo_in, d)
        _fault_if(ctx, b.and_(minus1, b.icmp_unsigned("==", lo_in, ir.Constant(I64, 1 << 63))))
    else:
        q, r = b.udiv(lo_in, src), b.urem(lo_in, src)
    fast_end = b.block
    b.branch(join)
    b.position_at_end(slow)
    q2, r2 = _divide_wide(ctx, signed, src)
    slow_end = b.block
    b.branch(join)
    b.position_at_end(join)
    pq, pr = b.phi(I64), b.phi(I64)
    pq.add_incoming(q, fast_end)
    pq.add_incoming(q2, slow_end)
    pr.add_incoming(r, fast_end)
    pr.add_incoming(r2, slow_end)
    _set_pair(ctx, w, pq, pr)


def _divide_wide(ctx: Insn, signed: bool, src: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(quotient, remainder) of the double-width dividend by ``src`` (not
    zero), faulting when the quotient does not fit."""
    b = ctx.b
    w = src.type.width
    wide = ir.IntType(2 * w)
    dividend = _get_wide(ctx, w)
    if signed:
        minus1 = b.icmp_signed("==", src, ir.Constant(src.type, -1))
        d = b.sext(b.select(minus1, ir.Constant(src.type, 1), src), wide)
        q = b.sdiv(dividend, d)
        r = b.srem(dividend, d)
        q = b.select(minus1, b.sub(ir.Constant(wide, 0), dividend), q)
        lo = b.trunc(q, src.type)
        _fault_if(ctx, b.icmp_unsigned("!=", b.sext(lo, wide), q))
    else:
        d = b.zext(src, wide)
        q = b.udiv(dividend, d)
        r = b.urem(dividend, d)
        lo = b.trunc(q, src.type)
        _fault_if(ctx, b.icmp_unsigned("!=", b.zext(lo, wide), q))
    return lo, b.trunc(r, src.type)


@semantic("div")
def div(ctx: Insn) -> None:
    _divide(ctx, signed=False)


@semantic("idiv")
def idiv(ctx: Insn) -> None:
    _divide(ctx, signed=True)

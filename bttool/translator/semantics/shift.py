"""Shift and rotate family: shl sal shr sar rol ror rcl rcr shld shrd.

A masked count of zero leaves every flag untouched, so each flag update is a
select on ``count != 0``; LLVM folds it away for constant counts.
"""
from __future__ import annotations

from llvmlite import ir

from bttool.ir.emitter import I1
from bttool.translator import flags
from bttool.translator.operands import Insn
from bttool.translator.registry import semantic


def _count(ctx: Insn, i: int, width: int) -> ir.Value:
    """The shift count operand, masked as the CPU does, in the operand type."""
    if len(ctx.ops) > i and ctx.is_imm(i):
        # capstone reports the implicit 1 of some "D0 /r m8, 1" forms
        # (e.g. rcl byte ptr [m], 1) with an operand size of 0
        c = ctx.c(8, ctx.ops[i].imm)
    elif len(ctx.ops) > i:
        c = ctx.read(i)
    else:
        c = ctx.c(8, 1)  # "shl r/m, 1" encodings with an implicit count
    ty = ir.IntType(width)
    c = ctx.b.zext(c, ty) if c.type.width < width else ctx.b.trunc(c, ty) if c.type.width > width else c
    return ctx.b.and_(c, ir.Constant(ty, 0x3F if width == 64 else 0x1F))


def _update(ctx: Insn, nonzero: ir.Value, name: str, value: ir.Value) -> None:
    ctx.set_flag(name, ctx.b.select(nonzero, value, ctx.flag(name)))


def _bit(ctx: Insn, v: ir.Value, n: ir.Value | int) -> ir.Value:
    n = ir.Constant(v.type, n) if isinstance(n, int) else n
    return ctx.b.trunc(ctx.b.lshr(v, n), I1)


def _msb(ctx: Insn, v: ir.Value) -> ir.Value:
    return _bit(ctx, v, v.type.width - 1)


@semantic("shl", "sal")
def shl(ctx: Insn) -> None:
    b = ctx.b
    a = ctx.read(0)
    w = a.type.width
    cnt = _count(ctx, 1, w)
    nz = b.icmp_unsigned("!=", cnt, ir.Constant(a.type, 0))
    if w < 64:
        wide = b.shl(b.zext(a, ir.IntType(64)), b.zext(cnt, ir.IntType(64)))
        r = b.trunc(wide, a.type)
        cf = _bit(ctx, wide, w)
    else:
        r = b.shl(a, cnt)
        cf = _bit(ctx, a, b.sub(ir.Constant(a.type, w), cnt))
    _update(ctx, nz, "cf", cf)
    _update(ctx, nz, "of", b.xor(_msb(ctx, r), cf))
    _update(ctx, nz, "af", ir.Constant(I1, 0))
    _update(ctx, nz, "zf", b.icmp_unsigned("==", r, ir.Constant(a.type, 0)))
    _update(ctx, nz, "sf", _msb(ctx, r))
    _update(ctx, nz, "pf", flags.parity(ctx, r))
    ctx.write(0, r)


def _right(ctx: Insn, arith: bool) -> None:
    b = ctx.b
    a = ctx.read(0)
    w = a.type.width
    i64 = ir.IntType(64)
    cnt = _count(ctx, 1, w)
    nz = b.icmp_unsigned("!=", cnt, ir.Constant(a.type, 0))
    wa = (b.sext(a, i64) if arith else b.zext(a, i64)) if w < 64 else a
    wc = b.zext(cnt, i64) if w < 64 else cnt
    shifted = b.ashr(wa, wc) if arith else b.lshr(wa, wc)
    r = b.trunc(shifted, a.type) if w < 64 else shifted
    one = ir.Constant(wa.type, 1)
    before = b.ashr(wa, b.sub(wc, one)) if arith else b.lshr(wa, b.sub(wc, one))
    cf = b.trunc(before, I1)
    # Counts past the width (8/16-bit operands only) shift out copies of
    # the sign (sar) or zeros (shr).
    _update(ctx, nz, "cf", cf)
    _update(ctx, nz, "of", ir.Constant(I1, 0) if arith else _msb(ctx, a))
    _update(ctx, nz, "af", ir.Constant(I1, 0))
    _update(ctx, nz, "zf", b.icmp_unsigned("==", r, ir.Constant(a.type, 0)))
    _update(ctx, nz, "sf", _msb(ctx, r))
    _update(ctx, nz, "pf", flags.parity(ctx, r))
    ctx.write(0, r)


@semantic("shr")
def shr(ctx: Insn) -> None:
    _right(ctx, arith=False)


@semantic("sar")
def sar(ctx: Insn) -> None:
    _right(ctx, arith=True)


@semantic("rol", "ror")
def rotate(ctx: Insn) -> None:
    b = ctx.b
    a = ctx.read(0)
    w = a.type.width
    cnt = _count(ctx, 1, w)
    nz = b.icmp_unsigned("!=", cnt, ir.Constant(a.type, 0))
    left = ctx.mnemonic.startswith("rol")
    fn = f"llvm.{'fshl' if left else 'fshr'}.i{w}"
    r = ctx.em.intrinsic(fn, a.type, [a, a, cnt])
    if left:
        cf = b.trunc(r, I1)
        of = b.xor(_msb(ctx, r), cf)
    else:
        cf = _msb(ctx, r)
        of = b.xor(cf, _bit(ctx, r, w - 2))
    _update(ctx, nz, "cf", cf)
    _update(ctx, nz, "of", of)
    ctx.write(0, r)


@semantic("rcl", "rcr")
def rotate_carry(ctx: Insn) -> None:
    b = ctx.b
    a = ctx.read(0)
    w = a.type.width
    wt = ir.IntType(w + 1)
    cnt = _count(ctx, 1, w)
    nz = b.icmp_unsigned("!=", cnt, ir.Constant(a.type, 0))
    rot = b.urem(b.zext(cnt, wt), ir.Constant(wt, w + 1))
    v = b.or_(b.shl(b.zext(ctx.flag("cf"), wt), ir.Constant(wt, w)), b.zext(a, wt))
    if ctx.mnemonic.startswith("rcl"):
        shifted = b.or_(b.shl(v, rot), b.lshr(v, b.sub(ir.Constant(wt, w + 1), rot)))
    else:
        shifted = b.or_(b.lshr(v, rot), b.shl(v, b.sub(ir.Constant(wt, w + 1), rot)))
    is_zero = b.icmp_unsigned("==", rot, ir.Constant(wt, 0))
    v2 = b.select(is_zero, v, shifted)
    r = b.trunc(v2, a.type)
    cf = _bit(ctx, v2, w)
    if ctx.mnemonic.startswith("rcl"):
        of = b.xor(_msb(ctx, r), cf)
    else:
        of = b.xor(_msb(ctx, a), ctx.flag("cf"))
    _update(ctx, nz, "of", of)
    _update(ctx, nz, "cf", cf)
    ctx.write(0, r)


@semantic("shld", "shrd")
def double_shift(ctx: Insn) -> None:
    b = ctx.b
    dst, src = ctx.read(0), ctx.read(1)
    w = dst.type.width
    cnt = _count(ctx, 2, w)
    nz = b.icmp_unsigned("!=", cnt, ir.Constant(dst.type, 0))
    left = ctx.mnemonic.startswith("shld")
    if w == 16:
        # The count is masked to 5 bits, so a 16-bit count of 16 is valid
        # (result: src); funnel shifts would take it modulo 16.  Shift the
        # 32-bit concatenation instead (counts 17..31 are undefined).
        i32 = ir.IntType(32)
        c32 = b.zext(cnt, i32)
        sixteen = ir.Constant(i32, 16)
        hi, lo = (dst, src) if left else (src, dst)
        wide = b.or_(b.shl(b.zext(hi, i32), sixteen), b.zext(lo, i32))
        r = (b.lshr(b.shl(wide, c32), sixteen) if left else b.lshr(wide, c32))
        r = b.trunc(r, dst.type)
    elif left:
        r = ctx.em.intrinsic(f"llvm.fshl.i{w}", dst.type, [dst, src, cnt])
    else:
        r = ctx.em.intrinsic(f"llvm.fshr.i{w}", dst.type, [src, dst, cnt])
    if left:
        cf = _bit(ctx, dst, b.sub(ir.Constant(dst.type, w), cnt))
    else:
        cf = _bit(ctx, dst, b.sub(cnt, ir.Constant(dst.type, 1)))
    _update(ctx, nz, "cf", cf)
    _update(ctx, nz, "of", b.xor(_msb(ctx, r), _msb(ctx, dst)))
    _update(ctx, nz, "af", ir.Constant(I1, 0))
    _update(ctx, nz, "zf", b.icmp_unsigned("==", r, ir.Constant(dst.type, 0)))
    _update(ctx, nz, "sf", _msb(ctx, r))
    _update(ctx, nz, "pf", flags.parity(ctx, r))
    ctx.write(0, r)

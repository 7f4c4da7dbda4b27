"""Flag register family: clc stc cmc cld std lahf sahf pushf popf."""
from __future__ import annotations

from llvmlite import ir

from bttool.ir.emitter import I1
from bttool.ir.state import FLAG_BITS, RFLAGS_USER_FIXED
from bttool.translator.operands import Insn
from bttool.translator.registry import semantic
from bttool.translator.semantics.system import exit_to_runtime


def compose_rflags(ctx: Insn, bits: int = 64) -> ir.Value:
    b = ctx.b
    ty = ir.IntType(bits)
    v = ir.Constant(ty, RFLAGS_USER_FIXED)
    for name, bit in FLAG_BITS:
        v = b.or_(v, b.shl(b.zext(ctx.flag(name), ty), ir.Constant(ty, bit)))
    return v


def scatter_rflags(ctx: Insn, v: ir.Value, names=None) -> None:
    b = ctx.b
    for name, bit in FLAG_BITS:
        if names is None or name in names:
            ctx.set_flag(name, b.trunc(b.lshr(v, ir.Constant(v.type, bit)), I1))


@semantic("clc")
def clc(ctx: Insn) -> None:
    ctx.set_flag("cf", ir.Constant(I1, 0))


@semantic("stc")
def stc(ctx: Insn) -> None:
    ctx.set_flag("cf", ir.Constant(I1, 1))


@semantic("cmc")
def cmc(ctx: Insn) -> None:
    ctx.set_flag("cf", ctx.b.not_(ctx.flag("cf")))


@semantic("cld")
def cld(ctx: Insn) -> None:
    ctx.set_flag("df", ir.Constant(I1, 0))


@semantic("std")
def std(ctx: Insn) -> None:
    ctx.set_flag("df", ir.Constant(I1, 1))


@semantic("lahf")
def lahf(ctx: Insn) -> None:
    v = ctx.b.trunc(compose_rflags(ctx, 16), ir.IntType(8))
    ctx.set_part("rax", 8, v, shift=8)  # ah


@semantic("sahf")
def sahf(ctx: Insn) -> None:
    ah = ctx.b.trunc(ctx.b.lshr(ctx.gpr("rax"), ir.Constant(ir.IntType(64), 8)), ir.IntType(8))
    scatter_rflags(ctx, ah, names=("cf", "pf", "af", "zf", "sf"))


@semantic("pushfq", "pushf")
def pushf(ctx: Insn) -> None:
    if not ctx.user_mode:
        exit_to_runtime(ctx, "pushf")
        return
    ctx.push(compose_rflags(ctx, 64 if ctx.mnemonic == "pushfq" else 16))


@semantic("popfq", "popf")
def popf(ctx: Insn) -> None:
    if not ctx.user_mode:
        exit_to_runtime(ctx, "popf")
        return
    v = ctx.pop(64 if ctx.mnemonic == "popfq" else 16)
    scatter_rflags(ctx, v)

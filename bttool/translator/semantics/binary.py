"""Integer add/subtract family: add adc sub sbb cmp neg inc dec xadd cmpxchg."""
from __future__ import annotations

from llvmlite import ir

from bttool.ir.state import EXIT_FAULT, FAULT_GP
from bttool.translator import flags
from bttool.translator.operands import Insn
from bttool.translator.registry import semantic


@semantic("add")
def add(ctx: Insn) -> None:
    a, b = ctx.read(0), ctx.read_sx(1, ctx.bits(0))
    r = ctx.b.add(a, b)
    flags.set_add(ctx, a, b, r)
    ctx.write(0, r)


@semantic("adc")
def adc(ctx: Insn) -> None:
    a, b = ctx.read(0), ctx.read_sx(1, ctx.bits(0))
    cin = ctx.flag("cf")
    r = ctx.b.add(ctx.b.add(a, b), ctx.b.zext(cin, a.type))
    flags.set_add(ctx, a, b, r, carry_in=cin)
    ctx.write(0, r)


@semantic("sub")
def sub(ctx: Insn) -> None:
    a, b = ctx.read(0), ctx.read_sx(1, ctx.bits(0))
    r = ctx.b.sub(a, b)
    flags.set_sub(ctx, a, b, r)
    ctx.write(0, r)


@semantic("sbb")
def sbb(ctx: Insn) -> None:
    a, b = ctx.read(0), ctx.read_sx(1, ctx.bits(0))
    bin_ = ctx.flag("cf")
    r = ctx.b.sub(ctx.b.sub(a, b), ctx.b.zext(bin_, a.type))
    flags.set_sub(ctx, a, b, r, borrow_in=bin_)
    ctx.write(0, r)


@semantic("cmp")
def cmp(ctx: Insn) -> None:
    a, b = ctx.read(0), ctx.read_sx(1, ctx.bits(0))
    flags.set_sub(ctx, a, b, ctx.b.sub(a, b))


@semantic("neg")
def neg(ctx: Insn) -> None:
    a = ctx.read(0)
    zero = ir.Constant(a.type, 0)
    r = ctx.b.sub(zero, a)
    flags.set_sub(ctx, zero, a, r)
    ctx.write(0, r)


def _inc_dec(ctx: Insn, delta: int) -> None:
    a = ctx.read(0)
    one = ir.Constant(a.type, 1)
    cf = ctx.flag("cf")  # inc/dec leave CF alone
    if delta > 0:
        r = ctx.b.add(a, one)
        flags.set_add(ctx, a, one, r)
    else:
        r = ctx.b.sub(a, one)
        flags.set_sub(ctx, a, one, r)
    ctx.set_flag("cf", cf)
    ctx.write(0, r)


@semantic("inc")
def inc(ctx: Insn) -> None:
    _inc_dec(ctx, 1)


@semantic("dec")
def dec(ctx: Insn) -> None:
    _inc_dec(ctx, -1)


@semantic("xadd")
def xadd(ctx: Insn) -> None:
    a, b = ctx.read(0), ctx.read(1)
    r = ctx.b.add(a, b)
    flags.set_add(ctx, a, b, r)
    ctx.write(1, a)
    ctx.write(0, r)


@semantic("cmpxchg")
def cmpxchg(ctx: Insn) -> None:
    bits = ctx.bits(0)
    acc = ctx.gpr("rax", bits)
    dst = ctx.read(0)
    src = ctx.read(1)
    eq = ctx.b.icmp_unsigned("==", acc, dst)
    flags.set_sub(ctx, acc, dst, ctx.b.sub(acc, dst))
    if ctx.is_mem(0):
        # The processor always writes the destination (old value on failure).
        ctx.write(0, ctx.b.select(eq, src, dst))
        with ctx.b.if_then(ctx.b.not_(eq)):
            ctx.set_gpr("rax", dst)
        return
    with ctx.b.if_else(eq) as (then, otherwise):
        with then:
            ctx.write(0, src)
        with otherwise:
            ctx.set_gpr("rax", dst)


def _cmpxchg_pair(ctx: Insn, half: int) -> None:
    b = ctx.b
    wide = ir.IntType(2 * half)
    addr = ctx.ea(0)
    if half == 64:
        # cmpxchg16b: a memory operand not aligned to 16 bytes is #GP
        misaligned = b.icmp_unsigned("!=", b.and_(addr, ir.Constant(addr.type, 15)),
                                     ir.Constant(addr.type, 0))
        with b.if_then(misaligned, likely=False):
            ctx.leave(ctx.pc, EXIT_FAULT, FAULT_GP)
    mem = ctx.load(addr, 2 * half)

    def pair(hi: str, lo: str) -> ir.Value:
        h = b.zext(ctx.gpr(hi, half), wide)
        return b.or_(b.shl(h, ir.Constant(wide, half)), b.zext(ctx.gpr(lo, half), wide))

    expected, new = pair("rdx", "rax"), pair("rcx", "rbx")
    eq = b.icmp_unsigned("==", mem, expected)
    ctx.set_flag("zf", eq)
    ctx.store(addr, b.select(eq, new, mem))
    with b.if_then(b.not_(eq)):
        ctx.set_gpr("rax", b.trunc(mem, ir.IntType(half)))
        ctx.set_gpr("rdx", b.trunc(b.lshr(mem, ir.Constant(wide, half)), ir.IntType(half)))


@semantic("cmpxchg8b")
def cmpxchg8b(ctx: Insn) -> None:
    _cmpxchg_pair(ctx, 32)


@semantic("cmpxchg16b")
def cmpxchg16b(ctx: Insn) -> None:
    _cmpxchg_pair(ctx, 64)

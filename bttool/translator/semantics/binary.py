"""Integer add/subtract family: add adc sub sbb cmp neg inc dec xadd cmpxchg.

With LOCK on a memory destination the read-modify-write is one atomic
access (Insn.atomic_rmw, Emitter.atomic_cmpxchg) and the flags come from
the old value it returns."""
from __future__ import annotations

from llvmlite import ir

from bttool.ir.state import EXIT_FAULT, FAULT_GP
from bttool.translator import flags
from bttool.translator.operands import Insn
from bttool.translator.registry import semantic


def _locked_add_sub(ctx: Insn, carry: bool, sub: bool) -> None:
    """lock add/adc/sub/sbb: the memory operand changes by one atomic add
    or subtract of the source (plus the carry); flags from the old value."""
    b = ctx.read_sx(1, ctx.bits(0))
    cin = ctx.flag("cf") if carry else None
    delta = ctx.b.add(b, ctx.b.zext(cin, b.type)) if carry else b
    a = ctx.atomic_rmw("sub" if sub else "add", delta)
    if sub:
        r = ctx.b.sub(a, delta)
        flags.set_sub(ctx, a, b, r, **({"borrow_in": cin} if carry else {}))
    else:
        r = ctx.b.add(a, delta)
        flags.set_add(ctx, a, b, r, **({"carry_in": cin} if carry else {}))


@semantic("add")
def add(ctx: Insn) -> None:
    if ctx.locked:
        return _locked_add_sub(ctx, False, False)
    a, b = ctx.read(0), ctx.read_sx(1, ctx.bits(0))
    r = ctx.b.add(a, b)
    flags.set_add(ctx, a, b, r)
    ctx.write(0, r)


@semantic("adc")
def adc(ctx: Insn) -> None:
    if ctx.locked:
        return _locked_add_sub(ctx, True, False)
    a, b = ctx.read(0), ctx.read_sx(1, ctx.bits(0))
    cin = ctx.flag("cf")
    r = ctx.b.add(ctx.b.add(a, b), ctx.b.zext(cin, a.type))
    flags.set_add(ctx, a, b, r, carry_in=cin)
    ctx.write(0, r)


@semantic("sub")
def sub(ctx: Insn) -> None:
    if ctx.locked:
        return _locked_add_sub(ctx, False, True)
    a, b = ctx.read(0), ctx.read_sx(1, ctx.bits(0))
    r = ctx.b.sub(a, b)
    flags.set_sub(ctx, a, b, r)
    ctx.write(0, r)


@semantic("sbb")
def sbb(ctx: Insn) -> None:
    if ctx.locked:
        return _locked_add_sub(ctx, True, True)
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
    if ctx.locked:
        a = _locked_update(ctx, lambda old: ctx.b.neg(old))
    else:
        a = ctx.read(0)
    zero = ir.Constant(a.type, 0)
    r = ctx.b.sub(zero, a)
    flags.set_sub(ctx, zero, a, r)
    if not ctx.locked:
        ctx.write(0, r)


def _locked_update(ctx: Insn, fn) -> ir.Value:
    """An atomic update with no atomicrmw of its own (lock neg): compare
    and exchange until no other writer came between; returns the old
    value."""
    b = ctx.b
    addr = ctx.ea(0)
    first = ctx.load(addr, ctx.bits(0))
    start = b.block
    loop = ctx.em.new_block("lock.retry")
    done = ctx.em.new_block("lock.done")
    b.branch(loop)
    b.position_at_end(loop)
    old = b.phi(first.type)
    old.add_incoming(first, start)
    seen, ok = ctx.em.atomic_cmpxchg(addr, old, fn(old))
    old.add_incoming(seen, loop)
    b.cbranch(ok, done, loop)
    b.position_at_end(done)
    return old


def _inc_dec(ctx: Insn, delta: int) -> None:
    if ctx.locked:
        one = ctx.c(ctx.bits(0), 1)
        a = ctx.atomic_rmw("add" if delta > 0 else "sub", one)
    else:
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
    if not ctx.locked:
        ctx.write(0, r)


@semantic("inc")
def inc(ctx: Insn) -> None:
    _inc_dec(ctx, 1)


@semantic("dec")
def dec(ctx: Insn) -> None:
    _inc_dec(ctx, -1)


@semantic("xadd")
def xadd(ctx: Insn) -> None:
    b = ctx.read(1)
    a = ctx.atomic_rmw("add", b) if ctx.locked else ctx.read(0)
    r = ctx.b.add(a, b)
    flags.set_add(ctx, a, b, r)
    ctx.write(1, a)
    if not ctx.locked:
        ctx.write(0, r)


@semantic("cmpxchg")
def cmpxchg(ctx: Insn) -> None:
    bits = ctx.bits(0)
    acc = ctx.gpr("rax", bits)
    dst = ctx.read(0)
    src = ctx.read(1)
    if ctx.locked:
        dst, eq = ctx.em.atomic_cmpxchg(ctx.ea(0), acc, src)
        flags.set_sub(ctx, acc, dst, ctx.b.sub(acc, dst))
        with ctx.b.if_then(ctx.b.not_(eq)):
            ctx.set_gpr("rax", dst)
        return
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

    def pair(hi: str, lo: str) -> ir.Value:
        h = b.zext(ctx.gpr(hi, half), wide)
        return b.or_(b.shl(h, ir.Constant(wide, half)), b.zext(ctx.gpr(lo, half), wide))

    expected, new = pair("rdx", "rax"), pair("rcx", "rbx")
    if ctx.lock:
        mem, eq = ctx.em.atomic_cmpxchg(addr, expected, new)
    else:
        mem = ctx.load(addr, 2 * half)
        eq = b.icmp_unsigned("==", mem, expected)
        ctx.store(addr, b.select(eq, new, mem))
    ctx.set_flag("zf", eq)
    with b.if_then(b.not_(eq)):
        ctx.set_gpr("rax", b.trunc(mem, ir.IntType(half)))
        ctx.set_gpr("rdx", b.trunc(b.lshr(mem, ir.Constant(wide, half)), ir.IntType(half)))


@semantic("cmpxchg8b")
def cmpxchg8b(ctx: Insn) -> None:
    _cmpxchg_pair(ctx, 32)


@semantic("cmpxchg16b")
def cmpxchg16b(ctx: Insn) -> None:
    _cmpxchg_pair(ctx, 64)

"""lar, lsl, verr, verw in 64-bit user mode: checks of a selector against
Linux's GDT as a user process sees it (translator/linux_gdt.py), inline:
ZF says whether the selector passes; lar/lsl write the access rights or
the limit only then (a 32-bit destination is zero-extended; a failed check
leaves all of it alone, upper half included, as on the host).  Only ZF
changes.  The selector is the low 16 bits of a register, or a 16-bit
memory operand.  System mode would need the virtual GDT: untranslatable
there (#UD)."""
from __future__ import annotations

from typing import Callable

from llvmlite import ir

from bttool.translator.linux_gdt import LINUX_USER_GDT, UserDescriptor
from bttool.translator.operands import Insn, UnsupportedOperand
from bttool.translator.registry import semantic


def _selector(ctx: Insn, i: int) -> ir.Value:
    if not ctx.user_mode:
        raise UnsupportedOperand("lar/lsl/verr/verw against the virtual GDT")
    v = ctx.read(i)
    return v if v.type.width == 16 else ctx.b.trunc(v, ir.IntType(16))


def _match(ctx: Insn, sel: ir.Value,
           keep: Callable[[UserDescriptor], bool]) -> tuple[ir.Value, list]:
    """(selector passes, [(matches entry, entry)] for the entries ``keep``
    accepts); RPL is ignored (every entry has DPL 3)."""
    b = ctx.b
    key = b.and_(sel, ctx.c(16, 0xFFFC))
    hits = [(b.icmp_unsigned("==", key, ctx.c(16, d.selector)), d)
            for d in LINUX_USER_GDT if keep(d)]
    ok = ctx.c(1, 0)
    for hit, _d in hits:
        ok = b.or_(ok, hit)
    return ok, hits


def _load_descriptor_field(ctx: Insn, field: str) -> None:
    b = ctx.b
    ok, hits = _match(ctx, _selector(ctx, 1), lambda d: True)
    value = ctx.c(32, 0)
    for hit, d in hits:
        value = b.select(hit, ctx.c(32, getattr(d, field)), value)
    info = ctx.reg_info(ctx.ops[0].reg)
    old = ctx.em.get(info.field)
    if info.bits == 16:
        new = b.select(ok, b.trunc(value, ir.IntType(16)), ctx.get_reg(ctx.ops[0].reg))
        ctx.set_part(info.field, 16, new)
    else:
        ctx.em.set(info.field, b.select(ok, b.zext(value, old.type), old))
    ctx.set_flag("zf", ok)


@semantic("lar")
def lar(ctx: Insn) -> None:
    _load_descriptor_field(ctx, "access")


@semantic("lsl")
def lsl(ctx: Insn) -> None:
    _load_descriptor_field(ctx, "limit")


@semantic("verr")
def verr(ctx: Insn) -> None:
    ctx.set_flag("zf", _match(ctx, _selector(ctx, 0), lambda d: d.readable)[0])


@semantic("verw")
def verw(ctx: Insn) -> None:
    ctx.set_flag("zf", _match(ctx, _selector(ctx, 0), lambda d: d.writable)[0])

"""Control transfer family: jmp jcc call ret loop jrcxz.

Every control transfer ends the guest block.  A direct target inside the
region is an IR branch to its block; any other target sets rip and leaves
through the exit block, which chains to the next translation through the
lookup table (ir/emitter.py ``leave``/``finish``).  An indirect one with
likely targets known (tier 2, jump tables, in-region returns) is a switch
over them first.
"""
from __future__ import annotations

from llvmlite import ir

from bttool.ir.emitter import I64
from bttool.translator import conditions, flags
from bttool.translator.operands import Insn
from bttool.translator.registry import semantic


def near16(ctx: Insn) -> bool:
    """A near branch with a 16-bit operand size (66, no REX.W, 64-bit mode).
    On the host (AMD Zen 4) it truncates the target to 16 bits and call/ret
    push/pop 2 bytes; Intel CPUs ignore 66 there.  decoder.Near16 carries
    the relative forms (rel16 for E8/E9/0F 8x), already truncated."""
    if ctx.mode != 64:
        return False
    if getattr(ctx.insn, "near16", False):
        return True
    from bttool.translator.semantics.dataxfer import operand_size
    return operand_size(ctx) == 16


def _target(ctx: Insn) -> ir.Value:
    if ctx.is_imm(0):
        if getattr(ctx.insn, "near16", False):    # an absolute 16-bit IP
            return ctx.c(64, ctx.ops[0].imm)
        return ctx.em.guest_addr(ctx.ops[0].imm)
    if near16(ctx):
        return ctx.b.zext(ctx.read(0, 16), I64)
    v = ctx.read(0)
    return ctx.b.zext(v, I64) if v.type.width < 64 else v


def _imm_target(ctx: Insn):
    """A direct target: the guest pc, or an IR value for a Near16 one (not
    relocated with a position-independent image)."""
    return _target(ctx) if getattr(ctx.insn, "near16", False) else ctx.ops[0].imm


@semantic("jmp", terminal=True)
def jmp(ctx: Insn) -> None:
    if ctx.is_imm(0):
        ctx.leave(_imm_target(ctx))
    elif ctx.pc in ctx.em.indirect_targets:
        ctx.em.switch_leave(_target(ctx), ctx.em.indirect_targets[ctx.pc])
    else:
        target = _target(ctx)
        ctx.em.profile_target(target)
        ctx.leave(target)


def _jcc(cc: str):
    def fn(ctx: Insn) -> None:
        if getattr(ctx.insn, "near16", False):
            _cond_leave16(ctx, flags.condition(ctx, cc))
            return
        ctx.em.cond_leave(flags.condition(ctx, cc), ctx.ops[0].imm, ctx.next_pc)
    return fn


def _cond_leave16(ctx: Insn, cond: ir.Value) -> None:
    with ctx.b.if_then(cond, likely=False):
        ctx.leave(_target(ctx))
    ctx.leave(ctx.next_pc)


for _cc in conditions.CODES:
    semantic("j" + _cc, terminal=True)(_jcc(_cc))


@semantic("call", terminal=True)
def call(ctx: Insn) -> None:
    target = _imm_target(ctx) if ctx.is_imm(0) else _target(ctx)  # read before rsp moves
    if near16(ctx):
        ctx.push(ctx.c(16, ctx.next_pc & 0xFFFF))
    else:
        ctx.push(ctx.em.guest_addr(ctx.next_pc) if ctx.mode == 64 else ctx.c(32, ctx.next_pc))
    if isinstance(target, int):
        ctx.leave(target)
    elif ctx.pc in ctx.em.indirect_targets:    # likely targets (tier 2's guess)
        ctx.em.switch_leave(target, ctx.em.indirect_targets[ctx.pc])
    else:
        ctx.em.profile_target(target)
        ctx.leave(target)


@semantic("ret", terminal=True)
def ret(ctx: Insn) -> None:
    target = ctx.pop(16 if near16(ctx) else ctx.mode)
    if target.type.width < 64:
        target = ctx.b.zext(target, I64)
    if ctx.ops:
        ctx.set_gpr("rsp", ctx.b.add(ctx.gpr("rsp"), ctx.c(64, ctx.ops[0].imm)))
    if ctx.pc in ctx.em.indirect_targets and target.type.width == 64 and not near16(ctx):
        ctx.em.switch_leave(target, ctx.em.indirect_targets[ctx.pc])
    else:
        ctx.leave(target)


def _count_reg(ctx: Insn) -> tuple[str, int]:
    return "rcx", 64 if ctx.insn.addr_size == 8 else 32


@semantic("loop", "loope", "loopne", terminal=True)
def loop(ctx: Insn) -> None:
    b = ctx.b
    _, bits = _count_reg(ctx)
    cnt = b.sub(ctx.gpr("rcx", bits), ctx.c(bits, 1))
    ctx.set_gpr("rcx", cnt)
    go = ctx.is_true(cnt)
    if ctx.mnemonic == "loope":
        go = b.and_(go, ctx.flag("zf"))
    elif ctx.mnemonic == "loopne":
        go = b.and_(go, b.not_(ctx.flag("zf")))
    if getattr(ctx.insn, "near16", False):
        _cond_leave16(ctx, go)
    else:
        ctx.em.cond_leave(go, ctx.ops[0].imm, ctx.next_pc)


@semantic("jrcxz", "jecxz", terminal=True)
def jrcxz(ctx: Insn) -> None:
    bits = 64 if ctx.mnemonic == "jrcxz" else 32
    z = ctx.b.icmp_unsigned("==", ctx.gpr("rcx", bits), ctx.c(bits, 0))
    if getattr(ctx.insn, "near16", False):
        _cond_leave16(ctx, z)
    else:
        ctx.em.cond_leave(z, ctx.ops[0].imm, ctx.next_pc)

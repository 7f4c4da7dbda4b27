"""Data transfer family: mov movzx movsx lea xchg cmov setcc push pop bswap
sign extensions, leave, and the no-ops (nop, endbr64, pause, prefetch, fences).
"""
from __future__ import annotations

from llvmlite import ir

from bttool.ir.state import EXIT_FAULT, FAULT_UD
from bttool.translator import flags
from bttool.translator.decoder import encoding
from bttool.translator.operands import Insn
from bttool.translator.registry import semantic
from bttool.translator.semantics.system import exit_to_runtime

_CC = ("a", "ae", "b", "be", "e", "g", "ge", "l", "le", "ne", "no", "np", "ns", "o", "p", "s")


_SEGMENT_REGS = ("cs", "ds", "es", "fs", "gs", "ss")


@semantic("mov", "movabs")
def mov(ctx: Insn) -> None:
    for i, op in enumerate(ctx.ops):
        if ctx.is_reg(i):
            name = ctx.insn.reg_name(op.reg)
            if name.startswith(("cr", "dr")):
                exit_to_runtime(ctx, "mov_" + name[:2])
                return
            if name in _SEGMENT_REGS and not ctx.user_mode:
                exit_to_runtime(ctx, "mov_seg")
                return
    ctx.write(0, ctx.read(1, ctx.bits(0)))


@semantic("movzx")
def movzx(ctx: Insn) -> None:
    ctx.write(0, ctx.b.zext(ctx.read(1), ir.IntType(ctx.bits(0))))


@semantic("movsx", "movsxd")
def movsx(ctx: Insn) -> None:
    v = ctx.read(1)
    w = ctx.bits(0)
    if v.type.width < w:
        v = ctx.b.sext(v, ir.IntType(w))
    ctx.write(0, v)


@semantic("lea")
def lea(ctx: Insn) -> None:
    addr = ctx.ea(1, segment=False)
    w = ctx.bits(0)
    ctx.write(0, ctx.b.trunc(addr, ir.IntType(w)) if w < 64 else addr)


@semantic("xchg")
def xchg(ctx: Insn) -> None:
    a, b = ctx.read(0), ctx.read(1)
    ctx.write(0, b)
    ctx.write(1, a)


def _cmov(cc: str):
    def fn(ctx: Insn) -> None:
        cond = flags.condition(ctx, cc)
        ctx.write(0, ctx.b.select(cond, ctx.read(1), ctx.read(0)))
    return fn


def _setcc(cc: str):
    def fn(ctx: Insn) -> None:
        ctx.write(0, ctx.b.zext(flags.condition(ctx, cc), ir.IntType(8)))
    return fn


for _cc in _CC:
    semantic("cmov" + _cc)(_cmov(_cc))
    semantic("set" + _cc)(_setcc(_cc))


@semantic("push")
def push(ctx: Insn) -> None:
    bits = ctx.bits(0)
    v = ctx.read(0, bits) if not ctx.is_imm(0) else ctx.c(bits, ctx.ops[0].imm)
    ctx.push(v)


@semantic("pop")
def pop(ctx: Insn) -> None:
    v = ctx.pop(ctx.bits(0))
    ctx.write(0, v)


@semantic("leave")
def leave(ctx: Insn) -> None:
    ctx.set_gpr("rsp", ctx.gpr("rbp"))
    ctx.set_gpr("rbp", ctx.pop(ctx.mode))


@semantic("bswap")
def bswap(ctx: Insn) -> None:
    v = ctx.read(0)
    ctx.write(0, ctx.em.intrinsic(f"llvm.bswap.i{v.type.width}", v.type, [v]))


@semantic("cbw", "cwde", "cdqe")
def sign_extend_acc(ctx: Insn) -> None:
    w = {"cbw": 16, "cwde": 32, "cdqe": 64}[ctx.mnemonic]
    ctx.set_gpr("rax", ctx.b.sext(ctx.gpr("rax", w // 2), ir.IntType(w)))


@semantic("cwd", "cdq", "cqo")
def sign_spread(ctx: Insn) -> None:
    w = {"cwd": 16, "cdq": 32, "cqo": 64}[ctx.mnemonic]
    a = ctx.gpr("rax", w)
    ctx.set_gpr("rdx", ctx.b.ashr(a, ir.Constant(a.type, w - 1)))


@semantic("nop", "endbr64", "endbr32", "pause", "prefetch", "prefetcht0", "prefetcht1",
          "prefetcht2", "prefetchnta", "prefetchw", "lfence", "mfence", "sfence")
def nop(ctx: Insn) -> None:
    """Hint-space instructions reach here as decoder.HintNop (no operands,
    whatever capstone calls them).  LOCK makes any of these #UD."""
    enc = encoding(bytes(ctx.insn.bytes), ctx.mode)
    if enc is None or 0xF0 in enc.prefixes:
        ctx.leave(ctx.pc, EXIT_FAULT, FAULT_UD)


@semantic("movbe")
def movbe(ctx: Insn) -> None:
    v = ctx.read(1)
    ctx.write(0, ctx.em.intrinsic(f"llvm.bswap.i{v.type.width}", v.type, [v]))


@semantic("xlatb")
def xlatb(ctx: Insn) -> None:
    b = ctx.b
    addr = b.add(ctx.gpr("rbx"), b.zext(ctx.gpr("rax", 8), ir.IntType(64)))
    ctx.set_part("rax", 8, ctx.load(addr, 8))


@semantic("enter")
def enter(ctx: Insn) -> None:
    from bttool.translator.operands import UnsupportedOperand
    size, level = ctx.ops[0].imm & 0xFFFF, ctx.ops[1].imm & 0x1F
    if level:
        raise UnsupportedOperand("enter with a nesting level")
    ctx.push(ctx.gpr("rbp"))
    frame = ctx.gpr("rsp")
    ctx.set_gpr("rbp", frame)
    ctx.set_gpr("rsp", ctx.b.sub(frame, ctx.c(64, size)))


@semantic("clflush", "clflushopt", "clwb")
def cache_line_flush(ctx: Insn) -> None:
    ctx.load(ctx.ea(0), 8)   # faults like the real one on unmapped memory; no other effect

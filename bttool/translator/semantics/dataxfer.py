"""Data transfer family: mov movzx movsx lea xchg cmov setcc push pop bswap
sign extensions, leave, and the no-ops (nop, endbr64, pause, prefetch, fences).
"""
from __future__ import annotations

from llvmlite import ir

from bttool.ir.state import EXIT_FAULT, FAULT_GP, FAULT_UD
from bttool.translator import conditions, flags
from bttool.translator.decoder import encoding
from bttool.translator.linux_gdt import DATA_LOADABLE, STACK_LOADABLE
from bttool.translator.operands import Insn
from bttool.translator.registry import semantic
from bttool.translator.semantics.system import exit_to_runtime


_SEGMENT_REGS = ("cs", "ds", "es", "fs", "gs", "ss")
# The control and debug registers of x86-64: a mov from/to any other (CR1,
# CR5-7, CR9-15, DR8-15) is #UD at every privilege level, before the
# privilege check that makes the existing ones #GP in user mode (checked
# natively: SIGILL against SIGSEGV, tests/test_isa_corners.py).
_EXISTING_CR_DR = frozenset(["cr0", "cr2", "cr3", "cr4", "cr8"] + [f"dr{i}" for i in range(8)])


@semantic("mov", "movabs")
def mov(ctx: Insn) -> None:
    for i, op in enumerate(ctx.ops):
        if ctx.is_reg(i):
            name = ctx.insn.reg_name(op.reg)
            if name.startswith(("cr", "dr")):
                if name not in _EXISTING_CR_DR:
                    ctx.leave(ctx.pc, EXIT_FAULT, FAULT_UD)
                else:
                    exit_to_runtime(ctx, "mov_" + name[:2])
                return
            if name in _SEGMENT_REGS and not ctx.user_mode:
                exit_to_runtime(ctx, "mov_seg")
                return
            if name in _SEGMENT_REGS:
                if i == 0:
                    load_segment(ctx, name, ctx.read(1, 16))
                else:
                    read_segment_to(ctx, name)
                return
    ctx.write(0, ctx.read(1, ctx.bits(0)))


# -- segment registers in 64-bit user mode ---------------------------------
# Linux's selectors (checked natively in tests/test_isa_corners.py): CS is
# __USER_CS and SS __USER_DS, constants here (CS cannot be loaded, SS only
# with __USER_DS); DS, ES, FS, GS start null and keep what a load puts in
# them (state fields ds_sel...: the kernel preserves them).
USER_SELECTORS = {"cs": 0x33, "ss": 0x2B}


def operand_size(ctx: Insn) -> int:
    """Operand size of a stack/branch instruction: 16 with a 66 prefix
    (unless REX.W), else the mode's (64 or 32)."""
    enc = encoding(bytes(ctx.insn.bytes), ctx.mode)
    if enc is not None and 0x66 in enc.prefixes and not enc.rex & 8:
        return 16
    return ctx.mode


def segment_selector(ctx: Insn, name: str) -> ir.Value:
    """The selector in segment register ``name`` (i16), user mode."""
    if name in USER_SELECTORS:
        return ctx.c(16, USER_SELECTORS[name])
    return ctx.em.get(name + "_sel")


def read_segment_to(ctx: Insn, name: str) -> None:
    """mov r/m, Sreg: a register takes the selector zero-extended with a
    32/64-bit operand size (its low 16 bits only with 66); memory always
    takes 16 bits."""
    sel = segment_selector(ctx, name)
    if ctx.is_mem(0):
        ctx.store(ctx.ea(0), sel)
    else:
        ctx.write(0, ctx.b.zext(sel, ir.IntType(ctx.bits(0))))


def load_segment(ctx: Insn, name: str, value: ir.Value) -> None:
    """mov/pop Sreg in user mode: #GP (SIGSEGV) for a selector Linux's GDT
    refuses (translator/linux_gdt.py; CS is not loadable at all: #UD); an
    accepted load into FS or GS clears that base, as on the host (AMD: a
    null selector clears it too; every loadable descriptor has base 0).
    DS, ES, FS, GS keep the selector as loaded (RPL included)."""
    b = ctx.b
    if name == "cs":
        ctx.leave(ctx.pc, EXIT_FAULT, FAULT_UD)
        return
    if name == "ss":
        ok = ctx.c(1, 0)
        for sel in STACK_LOADABLE:
            ok = b.or_(ok, b.icmp_unsigned("==", value, ctx.c(16, sel)))
    else:
        masked = b.and_(value, ctx.c(16, 0xFFFC))
        ok = ctx.c(1, 0)
        for sel in DATA_LOADABLE:
            ok = b.or_(ok, b.icmp_unsigned("==", masked, ctx.c(16, sel)))
    with b.if_then(b.not_(ok), likely=False):
        ctx.leave(ctx.pc, EXIT_FAULT, FAULT_GP)
    if name != "ss":
        ctx.em.set(name + "_sel", value)
    if name in ("fs", "gs"):
        ctx.em.set(name + "_base", ctx.c(64, 0))


@semantic("movzx")
def movzx(ctx: Insn) -> None:
    ctx.write(0, ctx.b.zext(ctx.read(1), ir.IntType(ctx.bits(0))))


@semantic("movsx", "movsxd")
def movsx(ctx: Insn) -> None:
    """movsx, and movsxd: with a 66 prefix (16-bit destination) movsxd
    still reads 32 bits (a 4-byte memory access, as on the host) and
    keeps the low 16."""
    v = ctx.read(1)
    w = ctx.bits(0)
    if v.type.width < w:
        v = ctx.b.sext(v, ir.IntType(w))
    elif v.type.width > w:
        v = ctx.b.trunc(v, ir.IntType(w))
    ctx.write(0, v)


@semantic("lea")
def lea(ctx: Insn) -> None:
    addr = ctx.ea(1, segment=False)
    w = ctx.bits(0)
    ctx.write(0, ctx.b.trunc(addr, ir.IntType(w)) if w < 64 else addr)


@semantic("xchg")
def xchg(ctx: Insn) -> None:
    """With a memory operand xchg is locked, prefix or not (one atomic
    exchange)."""
    if ctx.is_mem(0) or ctx.is_mem(1):
        m, r = (0, 1) if ctx.is_mem(0) else (1, 0)
        ctx.write(r, ctx.atomic_rmw("xchg", ctx.read(r), m))
        return
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


for _cc in conditions.CODES:
    semantic("cmov" + _cc)(_cmov(_cc))
    semantic("set" + _cc)(_setcc(_cc))


def _segment_operand(ctx: Insn) -> str | None:
    if ctx.ops and ctx.is_reg(0):
        name = ctx.insn.reg_name(ctx.ops[0].reg)
        if name in _SEGMENT_REGS:
            return name
    return None


@semantic("push")
def push(ctx: Insn) -> None:
    seg = _segment_operand(ctx)
    if seg is not None:      # push fs/gs: the selector zero-extended (2 bytes with 66)
        ctx.push(ctx.b.zext(segment_selector(ctx, seg), ir.IntType(operand_size(ctx))))
        return
    bits = ctx.bits(0)
    v = ctx.read(0, bits) if not ctx.is_imm(0) else ctx.c(bits, ctx.ops[0].imm)
    ctx.push(v)


@semantic("pop")
def pop(ctx: Insn) -> None:
    seg = _segment_operand(ctx)
    if seg is not None:      # pop fs/gs: a selector load (see load_segment)
        if not ctx.user_mode:
            from bttool.translator.operands import UnsupportedOperand
            raise UnsupportedOperand("pop of a segment register in system mode")
        bits = operand_size(ctx)
        rsp = ctx.gpr("rsp")
        load_segment(ctx, seg, ctx.load(rsp, 16))
        ctx.set_gpr("rsp", ctx.b.add(rsp, ctx.c(64, bits // 8)))
        return
    v = ctx.pop(ctx.bits(0))
    ctx.write(0, v)


@semantic("leave")
def leave(ctx: Insn) -> None:
    """With 66: RSP = RBP, then BP (16 bits) is popped."""
    bits = operand_size(ctx)
    ctx.set_gpr("rsp", ctx.gpr("rbp"))
    ctx.set_gpr("rbp", ctx.pop(bits))


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
    whatever capstone calls them).  LOCK makes any of these #UD.  The
    fences are LLVM fences: mfence a sequentially consistent one (the host's
    mfence), lfence and sfence acquire-release ones, which keep LLVM from
    moving guest accesses across them and cost no instruction on an x86
    host (its own order already is what they promise for ordinary
    accesses)."""
    enc = encoding(bytes(ctx.insn.bytes), ctx.mode)
    if enc is None or 0xF0 in enc.prefixes:
        ctx.leave(ctx.pc, EXIT_FAULT, FAULT_UD)
        return
    if ctx.mnemonic in ("mfence", "lfence", "sfence"):
        ctx.b.fence("seq_cst" if ctx.mnemonic == "mfence" else "acq_rel")


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
    """enter size, level (level mod 32), as the SDM's pseudo-code: push
    RBP; with a level, push level-1 frame pointers copied from [RBP - n*k]
    (RBP itself stepping down) and then the new frame pointer; RBP = the
    new frame, RSP -= size, the byte there probed.  With 66 every push and the copies are 2 bytes
    and only BP is written; addresses stay 64-bit."""
    size, level = ctx.ops[0].imm & 0xFFFF, ctx.ops[1].imm & 0x1F
    bits = operand_size(ctx)
    step = bits // 8
    b = ctx.b
    rbp = ctx.gpr("rbp")
    ctx.push(ctx.gpr("rbp", bits))
    frame = ctx.gpr("rsp")
    if level:
        for i in range(1, level):       # a copy may read what a push just wrote
            ctx.push(ctx.load(b.sub(rbp, ctx.c(64, step * i)), bits))
        ctx.push(b.trunc(frame, ir.IntType(bits)) if bits < 64 else frame)
    ctx.set_gpr("rbp", b.trunc(frame, ir.IntType(bits)) if bits < 64 else frame)
    new_rsp = b.sub(ctx.gpr("rsp"), ctx.c(64, size))
    if size:     # the host (AMD Zen 4) faults when the byte at the new RSP is not mapped
        ctx.probe(new_rsp)
    ctx.set_gpr("rsp", new_rsp)


@semantic("clflush", "clflushopt", "clwb")
def cache_line_flush(ctx: Insn) -> None:
    ctx.probe(ctx.ea(0))     # faults like the real one on unmapped memory; no other effect

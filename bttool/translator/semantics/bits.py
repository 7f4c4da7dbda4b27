"""Bit family: bt bts btr btc bsf bsr tzcnt lzcnt popcnt."""
from __future__ import annotations

from llvmlite import ir

from bttool.ir.emitter import I1, I64
from bttool.translator.operands import Insn
from bttool.translator.registry import semantic


@semantic("bt", "bts", "btr", "btc")
def bit_test(ctx: Insn) -> None:
    b = ctx.b
    w = ctx.bits(0)
    ty = ir.IntType(w)
    if ctx.is_mem(0) and ctx.is_reg(1):
        # A register bit offset addresses a bit string around the operand.
        off = b.sext(ctx.read(1), I64) if ctx.bits(1) < 64 else ctx.read(1)
        addr = b.add(ctx.ea(0), b.mul(b.ashr(off, ir.Constant(I64, {16: 4, 32: 5, 64: 6}[w])),
                                       ir.Constant(I64, w // 8)))
        bit = b.and_(b.trunc(off, ty), ir.Constant(ty, w - 1))
        val = ctx.load(addr, w)
    else:
        addr = ctx.ea(0) if ctx.is_mem(0) else None
        val = ctx.load(addr, w) if addr is not None else ctx.read(0)
        raw = ctx.read(1, w) if not ctx.is_imm(1) else ir.Constant(ty, ctx.ops[1].imm)
        bit = b.and_(raw, ir.Constant(ty, w - 1))
    mask = b.shl(ir.Constant(ty, 1), bit)
    op = ctx.mnemonic.split()[-1]   # capstone spells "lock bts"
    if ctx.locked and op != "bt":   # one atomic and/or/xor of the bit's word
        rmw, arg = {"bts": ("or", mask), "btr": ("and", b.not_(mask)), "btc": ("xor", mask)}[op]
        val = ctx.em.atomic_rmw(rmw, addr, arg)
        ctx.set_flag("cf", b.trunc(b.lshr(val, bit), I1))
        return
    ctx.set_flag("cf", b.trunc(b.lshr(val, bit), I1))
    if op == "bt":
        return
    new = {"bts": lambda: b.or_(val, mask), "btr": lambda: b.and_(val, b.not_(mask)),
           "btc": lambda: b.xor(val, mask)}[op]()
    if addr is not None:
        ctx.store(addr, new)
    else:
        ctx.write(0, new)


@semantic("bsf", "bsr")
def bit_scan(ctx: Insn) -> None:
    b = ctx.b
    # the source has the destination's width (capstone 5 gives a memory
    # source 2 or 4 bytes when 66 or F2 stand beside REX.W, which wins)
    src = ctx.read(1, 8 * ctx.ops[0].size)
    ty = src.type
    w = ty.width
    zero = b.icmp_unsigned("==", src, ir.Constant(ty, 0))
    if ctx.mnemonic == "bsf":
        idx = ctx.em.intrinsic(f"llvm.cttz.i{w}", ty, [src, ir.Constant(I1, 1)])
    else:
        lz = ctx.em.intrinsic(f"llvm.ctlz.i{w}", ty, [src, ir.Constant(I1, 1)])
        idx = b.sub(ir.Constant(ty, w - 1), lz)
    ctx.set_flag("zf", zero)
    if w == 32 and ctx.is_reg(0):
        # A zero source leaves the whole 64-bit destination unchanged (the
        # upper half is not cleared as by other 32-bit writes), as the CPU does.
        field = ctx.reg_info(ctx.ops[0].reg).field
        ctx.em.set(field, b.select(zero, ctx.em.get(field), b.zext(idx, I64)))
        return
    ctx.write(0, b.select(zero, ctx.read(0), idx))


def _count(ctx: Insn, intr: str) -> None:
    b = ctx.b
    src = ctx.read(1)
    ty = src.type
    r = ctx.em.intrinsic(f"llvm.{intr}.i{ty.width}", ty, [src, ir.Constant(I1, 0)])
    ctx.set_flag("cf", b.icmp_unsigned("==", src, ir.Constant(ty, 0)))
    ctx.set_flag("zf", b.icmp_unsigned("==", r, ir.Constant(ty, 0)))
    ctx.write(0, r)


@semantic("tzcnt")
def tzcnt(ctx: Insn) -> None:
    _count(ctx, "cttz")


@semantic("lzcnt")
def lzcnt(ctx: Insn) -> None:
    _count(ctx, "ctlz")


@semantic("popcnt")
def popcnt(ctx: Insn) -> None:
    b = ctx.b
    src = ctx.read(1)
    ty = src.type
    r = ctx.em.intrinsic(f"llvm.ctpop.i{ty.width}", ty, [src])
    off = ir.Constant(I1, 0)
    for f in ("cf", "of", "sf", "af", "pf"):
        ctx.set_flag(f, off)
    ctx.set_flag("zf", b.icmp_unsigned("==", src, ir.Constant(ty, 0)))
    ctx.write(0, r)


@semantic("crc32")
def crc32(ctx: Insn) -> None:
    """SSE4.2 crc32: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78)
    of the source bytes, accumulated into the low 32 bits of the destination."""
    b = ctx.b
    i32 = ir.IntType(32)
    crc = ctx.read(0, 32) if ctx.bits(0) == 64 else ctx.read(0)
    src = ctx.read(1)
    poly = ir.Constant(i32, 0x82F63B78)
    one = ir.Constant(i32, 1)
    for byte in range(src.type.width // 8):
        v = b.trunc(b.lshr(src, ir.Constant(src.type, 8 * byte)), ir.IntType(8)) if src.type.width > 8 else src
        crc = b.xor(crc, b.zext(v, i32))
        for _ in range(8):
            low = b.and_(crc, one)
            crc = b.xor(b.lshr(crc, one), b.and_(poly, b.sub(ir.Constant(i32, 0), low)))
    ctx.write(0, b.zext(crc, I64) if ctx.bits(0) == 64 else crc)

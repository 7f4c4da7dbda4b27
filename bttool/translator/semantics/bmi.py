"""Bit manipulation: BMI1 (andn bextr blsi blsmsk blsr), BMI2 (bzhi mulx
pdep pext rorx sarx shlx shrx) and ADX (adcx adox).

The VEX-encoded ones name a second source in VEX.vvvv and, except for the
flag-setting BMI1 forms and bzhi, leave every flag alone: what compilers
use them for (shlx/sarx/rorx free the shift count from cl and the flags
from the shift; mulx and adcx/adox make two independent carry chains for
big-number multiplication, GMP's and OpenSSL's).  Flags the manual leaves
undefined (AF and PF everywhere here, SF and PF of bextr) are left as they
were.  pdep and pext are the host's instruction when it has BMI2
(LiftOptions.host_instructions), else a bit-by-bit sequence.
"""
from __future__ import annotations

from llvmlite import ir

from bttool.ir.emitter import I1
from bttool.translator.operands import Insn
from bttool.translator.registry import semantic


def _zero(ctx: Insn, v: ir.Value) -> ir.Value:
    return ctx.b.icmp_unsigned("==", v, ir.Constant(v.type, 0))


def _sign(ctx: Insn, v: ir.Value) -> ir.Value:
    return ctx.b.icmp_signed("<", v, ir.Constant(v.type, 0))


def _result_flags(ctx: Insn, r: ir.Value, cf: ir.Value | None = None, sf: bool = True) -> None:
    """ZF (and SF) from ``r``, OF clear, CF as given (clear by default)."""
    ctx.set_flag("zf", _zero(ctx, r))
    if sf:
        ctx.set_flag("sf", _sign(ctx, r))
    ctx.set_flag("of", ir.Constant(I1, 0))
    ctx.set_flag("cf", cf if cf is not None else ir.Constant(I1, 0))


@semantic("andn")
def andn(ctx: Insn) -> None:
    b = ctx.b
    r = b.and_(b.not_(ctx.read(1)), ctx.read(2))
    _result_flags(ctx, r)
    ctx.write(0, r)


@semantic("bextr")
def bextr(ctx: Insn) -> None:
    """Bits [start, start+len) of the source, start and len the control's
    bytes 0 and 1; a start past the width gives 0, a length past it all
    the bits from start."""
    b = ctx.b
    src, ctl = ctx.read(1), ctx.read(2)
    ty = src.type
    w = ir.Constant(ty, ty.width)
    start = b.and_(ctl, ir.Constant(ty, 0xFF))
    length = b.and_(b.lshr(ctl, ir.Constant(ty, 8)), ir.Constant(ty, 0xFF))
    inside = b.icmp_unsigned("<", start, w)
    shifted = b.select(inside, b.lshr(src, b.select(inside, start, ir.Constant(ty, 0))),
                       ir.Constant(ty, 0))
    short = b.icmp_unsigned("<", length, w)
    mask = b.sub(b.shl(ir.Constant(ty, 1), b.select(short, length, ir.Constant(ty, 0))),
                 ir.Constant(ty, 1))
    r = b.select(short, b.and_(shifted, mask), shifted)
    _result_flags(ctx, r, sf=False)
    ctx.write(0, r)


@semantic("blsi", "blsmsk", "blsr")
def lowest_set_bit(ctx: Insn) -> None:
    """blsi: the lowest set bit alone; blsmsk: the bits up to and including
    it; blsr: the source without it.  CF: the source was not zero (blsi),
    was zero (blsmsk, blsr); blsmsk clears ZF whatever the result."""
    b = ctx.b
    src = ctx.read(1)
    ty = src.type
    minus1 = b.sub(src, ir.Constant(ty, 1))
    zero_src = _zero(ctx, src)
    op = ctx.mnemonic
    if op == "blsi":
        r = b.and_(b.neg(src), src)
        _result_flags(ctx, r, b.not_(zero_src))
    elif op == "blsmsk":
        r = b.xor(minus1, src)
        _result_flags(ctx, r, zero_src)
        ctx.set_flag("zf", ir.Constant(I1, 0))
    else:
        r = b.and_(minus1, src)
        _result_flags(ctx, r, zero_src)
    ctx.write(0, r)


@semantic("bzhi")
def bzhi(ctx: Insn) -> None:
    """The source with the bits from index n up cleared (n the control's low
    byte); CF: n was past the top bit (the source is kept whole)."""
    b = ctx.b
    src, ctl = ctx.read(1), ctx.read(2)
    ty = src.type
    n = b.and_(ctl, ir.Constant(ty, 0xFF))
    past = b.icmp_unsigned(">=", n, ir.Constant(ty, ty.width))
    mask = b.sub(b.shl(ir.Constant(ty, 1), b.select(past, ir.Constant(ty, 0), n)),
                 ir.Constant(ty, 1))
    r = b.select(past, src, b.and_(src, mask))
    _result_flags(ctx, r, past)
    ctx.write(0, r)


@semantic("mulx")
def mulx(ctx: Insn) -> None:
    """Unsigned rdx (edx) times the source, high half to the first operand,
    low half to the second, flags untouched; with both the same register
    it holds the high half."""
    b = ctx.b
    src = ctx.read(2)
    ty = src.type
    wide = ir.IntType(2 * ty.width)
    p = b.mul(b.zext(ctx.gpr("rdx", ty.width), wide), b.zext(src, wide))
    ctx.write(1, b.trunc(p, ty))
    ctx.write(0, b.trunc(b.lshr(p, ir.Constant(wide, ty.width)), ty))


@semantic("rorx")
def rorx(ctx: Insn) -> None:
    b = ctx.b
    src = ctx.read(1)
    ty = src.type
    n = ctx.ops[2].imm & (ty.width - 1)
    r = src if n == 0 else b.or_(b.lshr(src, ir.Constant(ty, n)),
                                 b.shl(src, ir.Constant(ty, ty.width - n)))
    ctx.write(0, r)


@semantic("sarx", "shlx", "shrx")
def shift_x(ctx: Insn) -> None:
    """Shift by the second source, masked to the width, flags untouched."""
    b = ctx.b
    src, cnt = ctx.read(1), ctx.read(2)
    ty = src.type
    n = b.and_(cnt, ir.Constant(ty, ty.width - 1))
    op = {"sarx": b.ashr, "shlx": b.shl, "shrx": b.lshr}[ctx.mnemonic]
    ctx.write(0, op(src, n))


def _bit_by_bit(ctx: Insn, src: ir.Value, mask: ir.Value, deposit: bool) -> ir.Value:
    """pdep (``deposit``: the low bits of ``src``, in order, at the set bits
    of ``mask``) or pext (the bits of ``src`` at the set bits of ``mask``,
    packed into the low bits) without the host's instruction: bit i of the
    mask moves one bit between position i and position k, the number of
    set mask bits below i."""
    b = ctx.b
    ty = src.type
    one = ir.Constant(ty, 1)
    r, k = ir.Constant(ty, 0), ir.Constant(ty, 0)
    for i in range(ty.width):
        at = ir.Constant(ty, i)
        m = b.and_(b.lshr(mask, at), one)
        bit = b.and_(b.lshr(src, k if deposit else at), m)
        r = b.or_(r, b.shl(bit, at if deposit else k))
        k = b.add(k, m)
    return r


@semantic("pdep", "pext")
def pdep_pext(ctx: Insn) -> None:
    src, mask = ctx.read(1), ctx.read(2)
    w = src.type.width
    if "+bmi2" in ctx.em.host_features:
        r = ctx.em.intrinsic(f"llvm.x86.bmi.{ctx.mnemonic}.{w}", src.type, [src, mask])
    else:
        r = _bit_by_bit(ctx, src, mask, ctx.mnemonic == "pdep")
    ctx.write(0, r)


@semantic("adcx", "adox")
def add_carry_x(ctx: Insn) -> None:
    """dest + src + CF (adcx) or OF (adox), the carry out to that same flag
    alone: two additions chains that do not disturb each other."""
    b = ctx.b
    flag = "cf" if ctx.mnemonic == "adcx" else "of"
    d, s = ctx.read(0), ctx.read(1)
    ty = d.type
    wide = ir.IntType(ty.width + 1)
    total = b.add(b.add(b.zext(d, wide), b.zext(s, wide)), b.zext(ctx.flag(flag), wide))
    ctx.set_flag(flag, b.trunc(b.lshr(total, ir.Constant(wide, ty.width)), I1))
    ctx.write(0, b.trunc(total, ty))

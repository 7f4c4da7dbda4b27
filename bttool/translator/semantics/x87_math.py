"""x87 floating point, part 2: rounding to integers (frndint, fist, fistp,
fisttp), fscale, fprem, fprem1, fxtract, packed BCD (fbld, fbstp) and the
transcendental instructions.  See x87.py for the model.

frndint, the fist family and fbstp honour the rounding control; fscale, fprem,
fprem1 and fxtract are exact bit-level implementations (fscale rounds once,
through an x87 multiply, when its result is denormal).  fprem/fprem1 do the
partial reduction of the hardware for exponent differences of 64 or more
(N = 32 + (D mod 32), C2 = 1), so the usual ``fprem; fnstsw; sahf; jp``
loops run the same number of rounds.

f2xm1, fyl2x, fyl2xp1, fptan, fpatan, fsin, fcos and fsincos run the very
host instruction through inline assembly: their results are
implementation-specific approximations, and the host FPU (default control
word) is the reference.  Like x86_fp80 itself this needs an x86 host.
"""
from __future__ import annotations

from llvmlite import ir

from bttool.ir.emitter import I1, I16, I32, I64, const
from bttool.translator.operands import Insn
from bttool.translator.registry import semantic
from bttool.translator.semantics.x87 import (
    BIAS, FP80, I80, I128, INDEFINITE, INT_BIT, X87, classify, fp80_const, fp80_imm,
    is_nan, join, quiet, split, to_bits, with_sign,
)


def _ctlz(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    w = v.type.width
    return b.call(_intrinsic(b, f"llvm.ctlz.i{w}", v.type, [v.type, I1]), [v, ir.Constant(I1, 0)])


def _intrinsic(b: ir.IRBuilder, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    module = b.module
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, args), name=name)
    return fn


def _smin(b, a, c):
    return b.select(b.icmp_signed("<", a, c), a, c)


def _smax(b, a, c):
    return b.select(b.icmp_signed(">", a, c), a, c)


def _normalize(b: ir.IRBuilder, exp: ir.Value, mant: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(exponent i32, significand with bit 63 set) of a nonzero finite value:
    denormals (biased exponent 0, weighted like 1) are shifted up."""
    sh = _ctlz(b, mant)
    e = b.sub(_smax(b, exp, const(32, 1)), b.trunc(sh, I32))
    return e, b.shl(mant, sh)


# -- rounding to an integer ---------------------------------------------------
def round_to_int(b: ir.IRBuilder, v: ir.Value, rc: ir.Value | int) -> ir.Value:
    """v rounded to an integral value by rounding control rc (0 nearest-even,
    1 down, 2 up, 3 toward zero), exactly and without libm.  Infinities and
    values of magnitude >= 2^63 are returned unchanged, NaNs quieted."""
    bits = to_bits(b, v)
    sign, exp, mant = split(b, bits)
    e = b.sub(_smax(b, exp, const(32, 1)), const(32, BIAS))
    big = b.icmp_signed(">=", e, const(32, 63))
    # fraction bits: k = 63 - e, in [1, 65] (65 and beyond: all fraction)
    k = _smax(b, _smin(b, b.sub(const(32, 63), e), const(32, 65)), const(32, 1))
    k = b.zext(k, I128)
    m = b.zext(mant, I128)
    one = ir.Constant(I128, 1)
    ip = b.lshr(m, k)
    rem = b.and_(m, b.sub(b.shl(one, k), one))
    half = b.shl(one, b.sub(k, one))
    nz = b.icmp_unsigned("!=", rem, ir.Constant(I128, 0))
    odd = b.trunc(ip, I1)
    nearest = b.or_(b.icmp_unsigned(">", rem, half),
                    b.and_(b.icmp_unsigned("==", rem, half), odd))
    if isinstance(rc, int):
        rc = const(16, rc)
    inc = b.select(b.icmp_unsigned("==", rc, const(16, 0)), nearest,
                   b.select(b.icmp_unsigned("==", rc, const(16, 1)), b.and_(sign, nz),
                            b.select(b.icmp_unsigned("==", rc, const(16, 2)),
                                     b.and_(b.not_(sign), nz), ir.Constant(I1, 0))))
    n = b.add(b.trunc(ip, I64), b.zext(inc, I64))       # <= 2^63: fits u64
    # n as fp80 by hand (uitofp would need a constant-pool correction term)
    nz_n = b.icmp_unsigned("!=", n, const(64, 0))
    lz = _ctlz(b, b.select(nz_n, n, const(64, 1)))
    rexp = b.select(nz_n, b.sub(const(32, BIAS + 63), b.trunc(lz, I32)), const(32, 0))
    r = join(b, sign, rexp, b.shl(n, lz))
    orig = b.select(is_nan(b, v), quiet(b, v), v)
    r = b.select(big, orig, r)
    # unnormals, pseudo-NaNs and pseudo-infinities are invalid operands
    return b.select(classify(b, v)[6], fp80_imm(b, INDEFINITE), r)


@semantic("frndint")
def frndint(ctx: Insn) -> None:
    x = X87(ctx)
    x.set_st(0, round_to_int(ctx.b, x.st(0), x.rc()))
    x.set_cc(c1=False)


def _to_int(ctx: Insn, x: X87, rc) -> None:
    """Store ST0 as a memory integer of the operand's width; NaN and
    out-of-range values store the integer indefinite (masked #IA)."""
    b = ctx.b
    bits = ctx.ops[0].size * 8
    r = round_to_int(b, x.st(0), rc)
    lo = fp80_imm(b, _fp80_int(-(1 << (bits - 1))))
    hi = fp80_imm(b, _fp80_int(1 << (bits - 1)))
    ok = b.and_(b.fcmp_ordered(">=", r, lo), b.fcmp_ordered("<", r, hi))
    iv = b.fptosi(r, I64)
    if bits < 64:
        iv = b.trunc(iv, ir.IntType(bits))
    ctx.store(ctx.ea(0), b.select(ok, iv, const(bits, 1 << (bits - 1))))
    x.set_cc(c1=False)


def _fp80_int(n: int) -> int:
    """80-bit pattern of the integer n (exactly representable)."""
    if n == 0:
        return 0
    sign = 1 if n < 0 else 0
    a = abs(n)
    e = a.bit_length() - 1
    mant = a << (63 - e) if e <= 63 else a >> (e - 63)
    return (sign << 79) | ((BIAS + e) << 64) | mant


@semantic("fist", "fistp")
def fist(ctx: Insn) -> None:
    x = X87(ctx)
    _to_int(ctx, x, x.rc())
    if ctx.mnemonic == "fistp":
        x.pop()


@semantic("fisttp")
def fisttp(ctx: Insn) -> None:
    x = X87(ctx)
    _to_int(ctx, x, 3)
    x.pop()


# -- fscale -------------------------------------------------------------------
def _pow2(b: ir.IRBuilder, e: ir.Value) -> ir.Value:
    """2^e (i32 e within the normal exponent range) as fp80."""
    return join(b, ir.Constant(I1, 0), b.add(e, const(32, BIAS)), const(64, INT_BIT))


@semantic("fscale")
def fscale(ctx: Insn) -> None:
    """ST0 = ST0 * 2^trunc(ST1), one rounding at most (denormal results)."""
    b = ctx.b
    x = X87(ctx)
    a, s = x.st(0), x.st(1)
    sign, exp, mant = split(b, to_bits(b, a))
    _, azero, _, _, ainf, anan, _ = classify(b, a)
    _, _, _, _, sinf, snan, _ = classify(b, s)
    s_neg = b.fcmp_ordered("<", s, fp80_const(0))
    # n = trunc(ST1) clamped to +-2^16 (enough to overflow/underflow anything)
    lim = fp80_imm(b, 0x400F_8000_0000_0000_0000)       # 65536.0
    nlim = fp80_imm(b, 0xC00F_8000_0000_0000_0000)
    sc = b.select(b.or_(snan, sinf), fp80_const(0), s)
    sc = b.select(b.fcmp_ordered(">", sc, lim), lim, sc)
    sc = b.select(b.fcmp_ordered("<", sc, nlim), nlim, sc)
    n = b.fptosi(sc, I32)
    # finite nonzero ST0: exact exponent arithmetic
    safe_mant = b.select(b.icmp_unsigned("==", mant, const(64, 0)), const(64, 1), mant)
    e, m = _normalize(b, exp, safe_mant)
    t = b.add(e, n)
    infv = join(b, sign, const(32, 0x7FFF), const(64, INT_BIT))
    normal = join(b, sign, t, m)
    # denormal result: (ST0 with exponent 1) * 2^(t-1), rounded once
    at1 = join(b, sign, const(32, 1), m)
    tiny = b.fmul(at1, _pow2(b, _smax(b, b.sub(t, const(32, 1)), const(32, -70))))
    r = b.select(b.icmp_signed(">=", t, const(32, 0x7FFF)), infv,
                 b.select(b.icmp_signed(">=", t, const(32, 1)), normal, tiny))
    # special operands
    zero_res = join(b, sign, const(32, 0), const(64, 0))
    indef = fp80_imm(b, INDEFINITE)
    r = b.select(b.or_(azero, ainf), a, r)
    # ST1 = +inf: 0 * inf invalid, otherwise inf; ST1 = -inf: inf invalid, otherwise 0
    r_pinf = b.select(azero, indef, infv)
    r_ninf = b.select(ainf, indef, zero_res)
    r = b.select(sinf, b.select(s_neg, r_ninf, r_pinf), r)
    r = b.select(b.or_(anan, snan), b.fadd(a, s), r)
    r = b.select(b.or_(classify(b, a)[6], classify(b, s)[6]), indef, r)
    x.set_st(0, r)
    x.set_cc(c1=False)


# -- fxtract ------------------------------------------------------------------
@semantic("fxtract")
def fxtract(ctx: Insn) -> None:
    """ST0 = exponent, then push the significand (exponent 0)."""
    b = ctx.b
    x = X87(ctx)
    a = x.st(0)
    sign, exp, mant = split(b, to_bits(b, a))
    _, zero, _, _, inf, nan, _ = classify(b, a)
    safe_mant = b.select(b.icmp_unsigned("==", mant, const(64, 0)), const(64, 1), mant)
    e, m = _normalize(b, exp, safe_mant)
    expo = b.sitofp(b.sub(e, const(32, BIAS)), FP80)
    sig = join(b, sign, const(32, BIAS), m)
    qa = quiet(b, a)
    pinf = fp80_imm(b, 0x7FFF_8000_0000_0000_0000)
    ninf = fp80_imm(b, 0xFFFF_8000_0000_0000_0000)
    expo = b.select(nan, qa, b.select(inf, pinf, b.select(zero, ninf, expo)))
    sig = b.select(b.or_(nan, b.or_(inf, zero)), b.select(nan, qa, a), sig)
    unsupported = classify(b, a)[6]
    indef = fp80_imm(b, INDEFINITE)
    expo = b.select(unsupported, indef, expo)
    sig = b.select(unsupported, indef, sig)
    # stack overflow (no free register for the push): both are the indefinite
    overflow = b.not_(x.is_empty(x.phys(7)))
    expo = b.select(overflow, indef, expo)
    x.set_st(0, expo)
    x.push(sig)
    x.set_cc(c1=False)


# -- fprem / fprem1 -------------------------------------------------------------
@semantic("fprem", "fprem1")
def fprem(ctx: Insn) -> None:
    """ST0 = remainder of ST0 / ST1: truncated quotient (fprem) or rounded
    to nearest-even (fprem1, IEEE).  Exponent differences >= 64 give a
    partial remainder (C2 = 1, quotient bits 0).  Otherwise C0, C3, C1 =
    quotient bits 2, 1, 0."""
    b = ctx.b
    x = X87(ctx)
    ieee = ctx.mnemonic == "fprem1"
    a, d = x.st(0), x.st(1)
    sa, ea, ma = split(b, to_bits(b, a))
    _, eb_, mb = split(b, to_bits(b, d))
    _, azero, _, _, ainf, anan, aunsup = classify(b, a)
    _, dzero, _, _, dinf, dnan, dunsup = classify(b, d)
    one64 = const(64, 1)
    # (a zero significand -- zeros, pseudo-infinities, unnormals -- is
    # replaced by 1 so that the division below can never trap)
    zero64 = const(64, 0)
    ea_n, na = _normalize(b, ea, b.select(b.icmp_unsigned("==", ma, zero64), one64, ma))
    eb_n, nb = _normalize(b, eb_, b.select(b.icmp_unsigned("==", mb, zero64), one64, mb))
    diff = b.sub(ea_n, eb_n)
    partial = b.icmp_signed(">=", diff, const(32, 64))
    shift = b.select(partial, b.add(const(32, 32), b.and_(diff, const(32, 31))), diff)
    # quotient and remainder of (na << shift) / nb, computed as
    # (na << (shift+1)) / (nb << 1) so that fprem1 also covers diff = -1
    sh1 = b.zext(_smax(b, b.add(shift, const(32, 1)), const(32, 0)), I128)
    dividend = b.shl(b.zext(na, I128), sh1)
    divisor = b.shl(b.zext(nb, I128), ir.Constant(I128, 1))
    q = b.udiv(dividend, divisor)
    r = b.sub(dividend, b.mul(q, divisor))
    neg = ir.Constant(I1, 0)
    if ieee:
        twice = b.shl(r, ir.Constant(I128, 1))
        up = b.or_(b.icmp_unsigned(">", twice, divisor),
                   b.and_(b.icmp_unsigned("==", twice, divisor), b.trunc(q, I1)))
        up = b.and_(up, b.not_(partial))
        r = b.select(up, b.sub(divisor, r), r)
        q = b.add(q, b.zext(up, I128))
        neg = up
    # r * 2^(ea_n - shift - 1) (in units where the significand is an integer
    # scaled by 2^-63): normalize to 64 bits, exact by construction
    rz = b.icmp_unsigned("==", r, ir.Constant(I128, 0))
    lz = b.trunc(_ctlz(b, b.select(rz, ir.Constant(I128, 1), r)), I32)
    top = b.trunc(b.lshr(b.shl(r, b.zext(lz, I128)), ir.Constant(I128, 64)), I64)
    rexp = b.sub(b.add(b.sub(ea_n, b.add(shift, const(32, 1))), const(32, 64)), lz)
    den_sh = b.sub(const(32, 1), rexp)   # > 0: denormal result
    den_mant = b.lshr(top, b.zext(_smin(b, _smax(b, den_sh, const(32, 0)), const(32, 63)), I64))
    den_mant = b.select(b.icmp_signed(">", den_sh, const(32, 63)), const(64, 0), den_mant)
    is_den = b.icmp_signed(">", den_sh, const(32, 0))
    rsign = b.xor(sa, neg)
    res = join(b, rsign, b.select(is_den, const(32, 0), rexp), b.select(is_den, den_mant, top))
    res = b.select(rz, join(b, sa, const(32, 0), const(64, 0)), res)
    qbits = b.trunc(q, I32)
    # operands that leave ST0 alone: |ST0| < |ST1| (fprem), < |ST1|/2 (fprem1),
    # ST0 zero, or ST1 infinite with ST0 finite
    small = b.icmp_signed("<", diff, const(32, -1 if ieee else 0))
    keep = b.or_(b.or_(azero, small), dinf)
    invalid = b.or_(b.or_(ainf, dzero), b.or_(aunsup, dunsup))
    nan = b.or_(anan, dnan)
    special = b.or_(b.or_(keep, invalid), nan)
    # ST0 itself, canonical: a pseudo-denormal comes back with exponent 1
    pseudo = b.and_(b.icmp_unsigned("==", ea, const(32, 0)), b.icmp_signed("<", ma, const(64, 0)))
    a_canon = join(b, sa, b.select(pseudo, const(32, 1), ea), ma)
    res = b.select(keep, a_canon, res)
    res = b.select(invalid, fp80_imm(b, INDEFINITE), res)
    res = b.select(nan, b.fadd(a, d), res)
    res = b.select(b.or_(aunsup, dunsup), fp80_imm(b, INDEFINITE), res)
    partial = b.and_(partial, b.not_(special))
    # the host reports no quotient bits for a partial remainder
    qbits = b.select(b.or_(special, partial), const(32, 0), qbits)
    x.set_st(0, res)
    old = x.sw()

    def bit(n: int, sw_bit: int) -> ir.Value:
        # NaN operands and invalid operations leave C0, C1, C3 as they were
        # (as the host does)
        q = b.trunc(b.lshr(qbits, const(32, n)), I1)
        prev = b.icmp_unsigned("!=", b.and_(old, const(16, sw_bit)), const(16, 0))
        return b.select(invalid_only, prev, q)

    invalid_only = b.or_(invalid, nan)
    x.set_cc(c0=bit(2, 0x100), c1=bit(0, 0x200), c2=partial, c3=bit(1, 0x4000))


# -- transcendental instructions: run the host instruction ----------------------
def _asm(b: ir.IRBuilder, ret: ir.Type, args: list[ir.Value], text: str, constraints: str):
    ty = ir.FunctionType(ret, [a.type for a in args])
    return b.call(ir.InlineAsm(ty, text, constraints, side_effect=False), args)


_CLOBBERS = "~{dirflag},~{fpsr},~{flags}"


@semantic("f2xm1", "fsin", "fcos")
def funary(ctx: Insn) -> None:
    """ST0 = f(ST0); fsin/fcos leave ST0 alone and set C2 when |ST0| >= 2^63.
    C1 is the host's (rounding indication)."""
    b = ctx.b
    x = X87(ctx)
    ret = ir.LiteralStructType([FP80, I16])
    res = _asm(b, ret, [x.st(0)], f"{ctx.mnemonic}\n\tfnstsw %ax",
               "={st},={ax},0," + _CLOBBERS)
    x.set_st(0, b.extract_value(res, 0))
    sw = b.extract_value(res, 1)
    # C0 and C3 (and C2 for f2xm1) are left alone, as on the host
    c2 = b.trunc(b.lshr(sw, const(16, 10)), I1) if ctx.mnemonic != "f2xm1" else None
    x.set_cc(c1=b.trunc(b.lshr(sw, const(16, 9)), I1), c2=c2)


@semantic("fyl2x", "fyl2xp1", "fpatan")
def fbinary(ctx: Insn) -> None:
    """ST1 = f(ST1, ST0), pop."""
    b = ctx.b
    x = X87(ctx)
    ret = ir.LiteralStructType([FP80, I16])
    res = _asm(b, ret, [x.st(0), x.st(1)], f"{ctx.mnemonic}\n\tfnstsw %ax",
               "={st},={ax},0,{st(1)},~{st(1)}," + _CLOBBERS)
    x.set_st(1, b.extract_value(res, 0))
    x.pop()
    sw = b.extract_value(res, 1)
    x.set_cc(c1=b.trunc(b.lshr(sw, const(16, 9)), I1))


@semantic("fptan", "fsincos")
def fpair(ctx: Insn) -> None:
    """fptan: ST0 = tan(ST0), push 1.0; fsincos: ST0 = sin, push cos.  With
    |ST0| >= 2^63 (C2 = 1) nothing changes."""
    b = ctx.b
    x = X87(ctx)
    ret = ir.LiteralStructType([FP80, FP80, I16])
    # leave two values on the host stack either way: out of range, duplicate
    text = (f"{ctx.mnemonic}\n\tfnstsw %ax\n\ttestb $$4, %ah\n\tjz 1f\n\t"
            "fld %st(0)\n1:")
    res = _asm(b, ret, [x.st(0)], text, "={st},={st(1)},={ax},0," + _CLOBBERS)
    top_v, second, sw = (b.extract_value(res, i) for i in range(3))
    c2 = b.trunc(b.lshr(sw, const(16, 10)), I1)
    # in range the host stack holds (1.0 | cos) over (tan | sin)
    with b.if_then(b.not_(c2)):
        x.set_st(0, second)
        x.push(top_v)
    x.set_cc(c1=b.trunc(b.lshr(sw, const(16, 9)), I1), c2=c2)


# -- packed BCD -------------------------------------------------------------------
BCD_DIGITS = 18
BCD_INDEFINITE = 0xFFFF_C000_0000_0000_0000


@semantic("fbld")
def fbld(ctx: Insn) -> None:
    """Push an 18-digit packed BCD integer (byte 9 bit 7 = sign)."""
    b = ctx.b
    x = X87(ctx)
    bits = ctx.load(ctx.ea(0), 80)
    n = const(64, 0)
    for k in reversed(range(BCD_DIGITS)):
        d = b.and_(b.trunc(b.lshr(bits, ir.Constant(I80, 4 * k)), I64), const(64, 15))
        n = b.add(b.mul(n, const(64, 10)), d)
    sign = b.trunc(b.lshr(bits, ir.Constant(I80, 79)), I1)
    x.push(with_sign(b, b.sitofp(n, FP80), sign))
    x.set_cc(c1=False)


@semantic("fbstp")
def fbstp(ctx: Insn) -> None:
    """Store ST0 rounded by the rounding control as packed BCD and pop;
    NaN, infinity and values of 10^18 or more store the BCD indefinite."""
    b = ctx.b
    x = X87(ctx)
    r = round_to_int(b, x.st(0), x.rc())
    sign, _, _ = split(b, to_bits(b, r))
    mag = with_sign(b, r, ir.Constant(I1, 0))
    ok = b.fcmp_ordered("<", mag, fp80_imm(b, _fp80_int(10 ** BCD_DIGITS)))
    n = b.select(ok, b.fptosi(b.select(ok, mag, fp80_const(0)), I64), const(64, 0))
    bcd = ir.Constant(I80, 0)
    for k in range(BCD_DIGITS):
        d = b.urem(n, const(64, 10))
        n = b.udiv(n, const(64, 10))
        bcd = b.or_(bcd, b.shl(b.zext(d, I80), ir.Constant(I80, 4 * k)))
    bcd = b.or_(bcd, b.shl(b.zext(sign, I80), ir.Constant(I80, 79)))
    ctx.store(ctx.ea(0), b.select(ok, bcd, ir.Constant(I80, BCD_INDEFINITE)))
    x.set_cc(c1=False)
    x.pop()

"""Floating-point building blocks shared by sse_float.py and sse_convert.py
(registers nothing).

x86 results are produced exactly with generic IR, independent of how the
host treats NaNs:

* NaN propagation (``nan_fix``): if the first source is a NaN it is returned
  quieted, else the second source's NaN quieted, else an invalid operation
  gives the x86 default NaN (negative quiet NaN, "real indefinite").
* MXCSR.RC: LLVM arithmetic rounds to nearest.  When MXCSR.RC is not
  nearest, a (well predicted) branch computes the exact error of the
  nearest result (TwoSum for add/sub, an FMA residual for mul/div/sqrt, a
  conversion back for narrowing conversions) and moves the result one ulp
  when the directed mode asks for it (``with_rounding``/``directed``).  The
  error term of tiny results is computed after an exact power-of-two
  scaling, so it cannot underflow.
* Not modelled: MXCSR exception flags (bits 0-5, never set), exception
  unmasking, DAZ and FTZ (denormals are always honoured).
"""
from __future__ import annotations

from typing import Callable

from llvmlite import ir

from bttool.translator.operands import Insn
from bttool.translator.semantics.sse_common import (
    F32, F64, I1, I32, call, elem, int_of, lanes_of, mask_i32, merge_low, mxcsr_rc, splat)


def fbits(ty: ir.Type) -> int:
    return 32 if elem(ty) == F32 else 64


def sign_bit(ty: ir.Type) -> int:
    return 1 << (fbits(ty) - 1)


def quiet_bit(ty: ir.Type) -> int:
    return 1 << (22 if fbits(ty) == 32 else 51)


def default_nan(ty: ir.Type) -> int:
    return 0xFFC00000 if fbits(ty) == 32 else 0xFFF8000000000000


def as_int(ctx: Insn, v: ir.Value) -> ir.Value:
    return ctx.b.bitcast(v, int_of(v.type))


def as_float(ctx: Insn, v: ir.Value, fty: ir.Type) -> ir.Value:
    return ctx.b.bitcast(v, fty)


def isnan(ctx: Insn, v: ir.Value) -> ir.Value:
    return ctx.b.fcmp_unordered("uno", v, v)


def fabs(ctx: Insn, v: ir.Value) -> ir.Value:
    return call(ctx, "fabs", v.type, [v])


def isinf(ctx: Insn, v: ir.Value) -> ir.Value:
    return ctx.b.fcmp_ordered("oeq", fabs(ctx, v), splat(v.type, float("inf")))


def isfinite(ctx: Insn, v: ir.Value) -> ir.Value:
    return ctx.b.fcmp_ordered("olt", fabs(ctx, v), splat(v.type, float("inf")))


def bsplat(ctx: Insn, cond: ir.Value, like: ir.Type) -> ir.Value:
    """Broadcast an i1 to the lane count of ``like`` (no-op for scalars)."""
    n = lanes_of(like)
    if n == 0:
        return cond
    b = ctx.b
    vt = ir.VectorType(I1, n)
    v = b.insert_element(ir.Constant(vt, None), cond, ir.Constant(I32, 0))
    return b.shuffle_vector(v, ir.Constant(vt, None), mask_i32([0] * n))


def nan_fix(ctx: Insn, r: ir.Value, a: ir.Value, s: ir.Value | None = None) -> ir.Value:
    """x86 NaN result rules for ``r = op(a[, s])``."""
    b = ctx.b
    ity = int_of(r.type)
    q = splat(ity, quiet_bit(r.type))
    res = b.select(isnan(ctx, r), splat(ity, default_nan(r.type)), as_int(ctx, r))
    if s is not None:
        res = b.select(isnan(ctx, s), b.or_(as_int(ctx, s), q), res)
    res = b.select(isnan(ctx, a), b.or_(as_int(ctx, a), q), res)
    return as_float(ctx, res, r.type)


# -- MXCSR rounding -------------------------------------------------------------------
def with_rounding(ctx: Insn, nearest: ir.Value, slow: Callable[[ir.Value], ir.Value]) -> ir.Value:
    """``nearest`` when MXCSR.RC is round-to-nearest, else ``slow(rc)`` (built
    in a separate block, so the common case pays one compare and branch)."""
    b = ctx.b
    rc = mxcsr_rc(ctx)
    pre = b.block
    slow_bb = ctx.em.new_block("rc.directed")
    join = ctx.em.new_block("rc.join")
    b.cbranch(b.icmp_unsigned("!=", rc, ir.Constant(I32, 0)), slow_bb, join)
    b.position_at_end(slow_bb)
    v = slow(rc)
    end = b.block
    b.branch(join)
    b.position_at_end(join)
    phi = b.phi(nearest.type)
    phi.add_incoming(nearest, pre)
    phi.add_incoming(v, end)
    return phi


def directed(ctx: Insn, rc: ir.Value, r: ir.Value, above: ir.Value, below: ir.Value) -> ir.Value:
    """Adjust the round-to-nearest result ``r`` for directed mode ``rc``
    (1 down, 2 up, 3 toward zero) given whether the exact result lies
    ``above`` or ``below`` it (i1 or i1 vectors; both false when exact)."""
    b = ctx.b
    ity = int_of(r.type)
    ri = as_int(ctx, r)
    sbit = splat(ity, sign_bit(r.type))
    neg = b.icmp_signed("<", ri, splat(ity, 0))
    zero = b.icmp_unsigned("==", b.and_(ri, b.not_(sbit)), splat(ity, 0))
    one = splat(ity, 1)
    inc, dec = b.add(ri, one), b.sub(ri, one)
    next_up = b.select(neg, b.select(zero, one, dec), inc)
    next_down = b.select(neg, inc, b.select(zero, b.or_(sbit, one), dec))
    is_down = bsplat(ctx, b.icmp_unsigned("==", rc, ir.Constant(I32, 1)), r.type)
    is_up = bsplat(ctx, b.icmp_unsigned("==", rc, ir.Constant(I32, 2)), r.type)
    is_tz = bsplat(ctx, b.icmp_unsigned("==", rc, ir.Constant(I32, 3)), r.type)
    want_up = b.and_(above, b.or_(is_up, b.and_(is_tz, neg)))
    want_down = b.and_(below, b.or_(is_down, b.and_(is_tz, b.not_(neg))))
    res = b.select(want_up, next_up, b.select(want_down, next_down, ri))
    return as_float(ctx, res, r.type)


def _sign_of(ctx: Insn, v: ir.Value) -> tuple[ir.Value, ir.Value]:
    z = splat(v.type, 0.0)
    return ctx.b.fcmp_ordered("ogt", v, z), ctx.b.fcmp_ordered("olt", v, z)


# Error terms of tiny operations are computed after scaling by _SCALE (an
# exact power of two that can neither overflow nor lose bits there).
_TINY = {32: 2.0 ** -100, 64: 2.0 ** -900}
_SCALE = {32: 2.0 ** 60, 64: 2.0 ** 700}
_SCALE_ROOT = {32: 2.0 ** 30, 64: 2.0 ** 350}
_DIV_LIMIT = {32: 2.0 ** 60, 64: 2.0 ** 300}
_MUL_TINY = {32: 2.0 ** -50, 64: 2.0 ** -500}
_MUL_SCALE = {32: 2.0 ** 90, 64: 2.0 ** 600}


def fma(ctx: Insn, x: ir.Value, y: ir.Value, z: ir.Value) -> ir.Value:
    return call(ctx, "fma", x.type, [x, y, z])


def arith(ctx: Insn, op: str, a: ir.Value, s: ir.Value) -> ir.Value:
    """x86 ``a op s`` for op in add/sub/mul/div (scalar or vector floats):
    MXCSR rounding and NaN rules included."""
    b = ctx.b
    near = {"add": b.fadd, "sub": b.fsub, "mul": b.fmul, "div": b.fdiv}[op](a, s)

    def slow(rc: ir.Value) -> ir.Value:
        if op in ("add", "sub"):
            s2 = s if op == "add" else b.fneg(s)
            bb = b.fsub(near, a)
            err = b.fadd(b.fsub(a, b.fsub(near, bb)), b.fsub(s2, bb))
            above_e, below_e = _sign_of(ctx, err)
            ovf = b.and_(isinf(ctx, near), b.and_(isfinite(ctx, a), isfinite(ctx, s2)))
            pos, negr = _sign_of(ctx, near)
            above = b.or_(above_e, b.and_(ovf, negr))
            below = b.or_(below_e, b.and_(ovf, pos))
            r = directed(ctx, rc, near, above, below)
            # An exact zero sum is -0 when rounding down (unless both are +0).
            ity = int_of(a.type)
            both_pz = b.and_(b.icmp_unsigned("==", as_int(ctx, a), splat(ity, 0)),
                             b.icmp_unsigned("==", as_int(ctx, s2), splat(ity, 0)))
            is_zero = b.fcmp_ordered("oeq", near, splat(a.type, 0.0))
            down = bsplat(ctx, b.icmp_unsigned("==", rc, ir.Constant(I32, 1)), a.type)
            fix = b.and_(b.and_(is_zero, down), b.not_(both_pz))
            return b.select(fix, splat(a.type, -0.0), r)
        # The FMA residual below is exact unless it underflows; where it
        # could, scale by a power of two first (all scalings are exact).
        bits = fbits(a.type)
        big = splat(a.type, _SCALE[bits])
        small = splat(a.type, _TINY[bits])
        if op == "mul":
            # tiny product: scale each tiny factor (and the product alike)
            tiny = b.fcmp_ordered("olt", fabs(ctx, near), small)
            up = splat(a.type, _MUL_SCALE[bits])
            lim = splat(a.type, _MUL_TINY[bits])
            sa = b.and_(tiny, b.fcmp_ordered("olt", fabs(ctx, a), lim))
            ss = b.and_(tiny, b.fcmp_ordered("olt", fabs(ctx, s), lim))
            a2 = b.select(sa, b.fmul(a, up), a)
            s2 = b.select(ss, b.fmul(s, up), s)
            p2 = b.select(sa, b.fmul(near, up), near)
            p2 = b.select(ss, b.fmul(p2, up), p2)
            err = fma(ctx, a2, s2, b.fneg(p2))
            above, below = _sign_of(ctx, err)
            return directed(ctx, rc, near, above, below)
        # div: the sign of (a - q*s) / s; scale a and s when a is tiny
        # (and s small enough not to overflow)
        tiny = b.and_(b.fcmp_ordered("olt", fabs(ctx, a), small),
                      b.fcmp_ordered("olt", fabs(ctx, s), splat(a.type, _DIV_LIMIT[bits])))
        a2 = b.select(tiny, b.fmul(a, big), a)
        s2 = b.select(tiny, b.fmul(s, big), s)
        rem = fma(ctx, b.fneg(near), s2, a2)
        rp, rn = _sign_of(ctx, rem)
        sp, sn = _sign_of(ctx, s)
        above = b.or_(b.and_(rp, sp), b.and_(rn, sn))
        below = b.or_(b.and_(rn, sp), b.and_(rp, sn))
        return directed(ctx, rc, near, above, below)

    r = with_rounding(ctx, near, slow)
    return nan_fix(ctx, r, a, s)


def sqrt(ctx: Insn, x: ir.Value) -> ir.Value:
    b = ctx.b
    near = call(ctx, "sqrt", x.type, [x])

    def slow(rc: ir.Value) -> ir.Value:
        bits = fbits(x.type)
        tiny = b.fcmp_ordered("olt", x, splat(x.type, _TINY[bits]))
        x2 = b.select(tiny, b.fmul(x, splat(x.type, _SCALE[bits])), x)
        s2 = b.select(tiny, b.fmul(near, splat(x.type, _SCALE_ROOT[bits])), near)
        rem = fma(ctx, b.fneg(s2), s2, x2)
        above, below = _sign_of(ctx, rem)
        return directed(ctx, rc, near, above, below)

    return nan_fix(ctx, with_rounding(ctx, near, slow), x)


def round_static(ctx: Insn, x: ir.Value, mode: int) -> ir.Value:
    name = ("roundeven", "floor", "ceil", "trunc")[mode]
    return call(ctx, name, x.type, [x])


def round_dynamic(ctx: Insn, x: ir.Value) -> ir.Value:
    """Round to an integral value by MXCSR.RC."""
    b = ctx.b
    rc = mxcsr_rc(ctx)
    r = round_static(ctx, x, 3)
    for mode in (2, 1, 0):
        sel = bsplat(ctx, b.icmp_unsigned("==", rc, ir.Constant(I32, mode)), x.type)
        r = b.select(sel, round_static(ctx, x, mode), r)
    return r


def fp_to_int(ctx: Insn, x: ir.Value, ibits: int, truncate: bool) -> ir.Value:
    """cvt(t)*2si / cvt(t)*2dq: out of range or NaN gives the integer
    indefinite value (the most negative integer)."""
    b = ctx.b
    r = round_static(ctx, x, 3) if truncate else round_dynamic(ctx, x)
    lo, hi = splat(x.type, -float(1 << (ibits - 1))), splat(x.type, float(1 << (ibits - 1)))
    ok = b.and_(b.fcmp_ordered("oge", r, lo), b.fcmp_ordered("olt", r, hi))
    safe = b.select(ok, r, splat(x.type, 0.0))
    it = ir.IntType(ibits)
    ity = ir.VectorType(it, x.type.count) if lanes_of(x.type) else it
    v = b.fptosi(safe, ity)
    return b.select(ok, v, splat(ity, 1 << (ibits - 1)))


def int_to_fp(ctx: Insn, x: ir.Value, fty: ir.Type) -> ir.Value:
    """Signed integer (vector) to float (vector), rounded by MXCSR.RC."""
    b = ctx.b
    near = b.sitofp(x, fty)
    ibits = elem(x.type).width
    if ibits == 32 and fbits(fty) == 64:
        return near     # always exact

    def slow(rc: ir.Value) -> ir.Value:
        big = b.fcmp_ordered("oge", near, splat(fty, float(1 << (ibits - 1))))
        back = b.fptosi(b.select(big, splat(fty, 0.0), near), x.type)
        above = b.and_(b.icmp_signed(">", x, back), b.not_(big))
        below = b.or_(b.icmp_signed("<", x, back), big)
        return directed(ctx, rc, near, above, below)

    return with_rounding(ctx, near, slow)


def narrow(ctx: Insn, d: ir.Value, fty: ir.Type) -> ir.Value:
    """double (vector) -> float (vector), rounded by MXCSR.RC, NaNs quieted
    with their payload truncated."""
    b = ctx.b
    near = b.fptrunc(d, fty)

    def slow(rc: ir.Value) -> ir.Value:
        back = b.fpext(near, d.type)
        return directed(ctx, rc, near, b.fcmp_ordered("ogt", d, back), b.fcmp_ordered("olt", d, back))

    r = with_rounding(ctx, near, slow)
    di = as_int(ctx, d)
    ity = int_of(fty)
    sign = b.trunc(b.lshr(di, splat(di.type, 32)), ity)
    sign = b.and_(sign, splat(ity, 0x80000000))
    payload = b.trunc(b.lshr(b.and_(di, splat(di.type, (1 << 52) - 1)), splat(di.type, 29)), ity)
    nan = b.or_(b.or_(sign, splat(ity, 0x7FC00000)), payload)
    return as_float(ctx, b.select(isnan(ctx, d), nan, as_int(ctx, r)), fty)


def widen(ctx: Insn, f: ir.Value, dty: ir.Type) -> ir.Value:
    """float (vector) -> double (vector): exact; NaNs quieted, payload kept."""
    b = ctx.b
    fi = as_int(ctx, f)
    ity = int_of(dty)
    wide = b.zext(fi, ity)
    sign = b.shl(b.and_(wide, splat(ity, 0x80000000)), splat(ity, 32))
    payload = b.shl(b.and_(wide, splat(ity, (1 << 23) - 1)), splat(ity, 29))
    nan = b.or_(b.or_(sign, splat(ity, 0x7FF8000000000000)), payload)
    return as_float(ctx, b.select(isnan(ctx, f), nan, as_int(ctx, b.fpext(f, dty))), dty)


# -- scalar / packed operand plumbing ----------------------------------------------------------
def to_float(ctx: Insn, v128: ir.Value, bits: int, packed: bool) -> ir.Value:
    b = ctx.b
    ft = F32 if bits == 32 else F64
    if packed:
        return b.bitcast(v128, ir.VectorType(ft, 128 // bits))
    return b.bitcast(b.trunc(v128, ir.IntType(bits)), ft)


def from_float(ctx: Insn, old128: ir.Value, r: ir.Value, packed: bool) -> ir.Value:
    b = ctx.b
    if packed:
        return b.bitcast(r, ir.IntType(128))
    return merge_low(ctx, old128, b.bitcast(r, int_of(r.type)))


__all__ = ["F64"]

"""Floating-point building blocks shared by sse_float.py and sse_convert.py
(registers nothing).

x86 results are produced exactly, with generic IR on any host (whatever it
does with NaNs) or, on x86 hosts, with the host's own instructions:

* NaN propagation (``nan_fix``): if the first source is a NaN it is returned
  quieted, else the second source's NaN quieted, else an invalid operation
  gives the x86 default NaN (negative quiet NaN, "real indefinite").
* MXCSR.RC: LLVM arithmetic rounds to nearest.  When MXCSR.RC is not
  nearest, the exact error of the nearest result is computed (TwoSum for
  add/sub, an FMA residual for mul/div/sqrt, a conversion back for narrowing
  conversions) and the result moves one ulp when the directed mode asks for
  it (``directed``).  The error term of tiny results is computed after an
  exact power-of-two scaling, so it cannot underflow.
* Both rules cost one compare and branch in the common case: the generated
  code computes LLVM's nearest result and branches (predicted not taken) to
  an out-of-line cold function only when MXCSR.RC is not nearest or the
  result is a NaN (``guarded``; one unordered compare tests both, see
  ``rc_nan``).
* On x86 targets with AVX-512F the scalar add/sub/mul/div/sqrt are the
  host's own instructions with a static round-to-nearest ({rn-sae}), which
  LLVM neither reorders nor folds: their NaN results are the guest's by
  construction, so only MXCSR.RC is checked (``host_op``).  Packed ops
  do the same on AMD hosts, through the 512-bit forms.  LLVM's own
  fadd & co. may commute operands and may return any input NaN or a
  positive default NaN, so their results need the NaN check.
* Not modelled: MXCSR exception flags (bits 0-5, never set), exception
  unmasking, DAZ and FTZ (denormals are always honoured).
"""
from __future__ import annotations

from typing import Callable

from llvmlite import ir

from bttool.translator.operands import Insn
from bttool.translator.semantics.sse_common import (
    F32, F64, HALF, I1, I32, call, elem, int_of, lanes_of, mangle, mask_i32, merge_low, mxcsr_rc,
    splat)


def fbits(ty: ir.Type) -> int:
    e = elem(ty)
    return 32 if e == F32 else 16 if e == HALF else 64


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


def nan_fix(ctx: Insn, r: ir.Value, a: ir.Value, *rest: ir.Value | None) -> ir.Value:
    """x86 NaN result rules for ``r = op(a, ...)``: the first NaN operand in
    the order given, made quiet; else the default NaN if ``r`` is one."""
    b = ctx.b
    ity = int_of(r.type)
    q = splat(ity, quiet_bit(r.type))
    res = b.select(isnan(ctx, r), splat(ity, default_nan(r.type)), as_int(ctx, r))
    for x in reversed((a,) + tuple(x for x in rest if x is not None)):
        res = b.select(isnan(ctx, x), b.or_(as_int(ctx, x), q), res)
    return as_float(ctx, res, r.type)


# -- MXCSR rounding and the common case ----------------------------------------------
# Every rounded operation is compiled for the common case only: round to
# nearest and no NaN result.  Then LLVM's own operation is the x86 result
# (IEEE arithmetic is exact up to rounding, and only NaN payloads differ
# between hosts).  Anything else -- a directed MXCSR.RC, a NaN result -- takes
# a predicted-not-taken branch to an out-of-line, cold function that computes
# the exact x86 result from the operands (``guarded``), so the hot code stays
# as small as the guest's.

class _OutlineCtx:
    """Enough of ``Insn`` (``b``, ``em.intrinsic``, ``em.new_block``) for the
    building blocks below, building into an out-of-line function."""

    def __init__(self, module: ir.Module, b: ir.IRBuilder) -> None:
        self.b = b
        self.em = self
        self.module = module

    def intrinsic(self, name: str, ret: ir.Type, args: list[ir.Value]) -> ir.Value:
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ret, [a.type for a in args]), name=name)
        return self.b.call(fn, args)

    def new_block(self, name: str = "") -> ir.Block:
        return self.b.function.append_basic_block(name)


def outlined(ctx: Insn, name: str, ret: ir.Type, args: list[ir.Value],
             body: Callable[..., ir.Value]) -> ir.Value:
    """Call ``body(octx, *params)`` built once per module as an internal,
    cold, never-inlined function called ``name``."""
    module = ctx.em.module
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, [a.type for a in args]), name=name)
        fn.linkage = "internal"
        fn.attributes.add("noinline")
        fn.attributes.add("cold")
        fn.attributes.add("nounwind")
        ob = ir.IRBuilder(fn.append_basic_block("entry"))
        ob.ret(body(_OutlineCtx(module, ob), *fn.args))
    return ctx.b.call(fn, args)


def any_nan(ctx: Insn, v: ir.Value) -> ir.Value:
    """i1: ``v`` (or any lane of it) is a NaN."""
    return any_unordered(ctx, v, v)


def any_unordered(ctx: Insn, v: ir.Value, w: ir.Value) -> ir.Value:
    """i1: ``v`` or ``w`` (or any lane of either) is a NaN."""
    b = ctx.b
    c = b.fcmp_unordered("uno", v, w)
    n = lanes_of(v.type)
    if n == 0:
        return c
    return b.icmp_unsigned("!=", b.bitcast(c, ir.IntType(n)), ir.Constant(ir.IntType(n), 0))


def rc_nan(ctx: Insn, ty: ir.Type) -> ir.Value:
    """A float (vector) of ``ty``'s type that is a NaN exactly when MXCSR.RC
    is not round-to-nearest (+inf otherwise): ``r uno rc_nan`` then tests
    "r is a NaN or the rounding is directed" with one compare and branch
    (an ``or`` of two conditions becomes two branches).  Built from the
    current MXCSR, so an ldmxcsr earlier in the region is seen."""
    b = ctx.b
    bits = fbits(ty)
    ity = ir.IntType(bits)
    inf = 0x7F800000 if bits == 32 else 0x7FF0000000000000
    rc = mxcsr_rc(ctx)
    k = b.bitcast(b.or_(rc if bits == 32 else b.zext(rc, ity), ir.Constant(ity, inf)), elem(ty))
    n = lanes_of(ty)
    if n == 0:
        return k
    v = b.insert_element(ir.Constant(ty, None), k, ir.Constant(I32, 0))
    return b.shuffle_vector(v, ir.Constant(ty, None), mask_i32([0] * n))


def _needs_exact(ctx: Insn, near: ir.Value, nan_possible: bool, rounded: bool) -> ir.Value:
    """i1: ``near`` is not the x86 result: MXCSR.RC is directed (when
    ``rounded``) or ``near`` (a lane of it) is a NaN (when ``nan_possible``)."""
    b = ctx.b
    if nan_possible and rounded:
        return any_unordered(ctx, near, rc_nan(ctx, near.type))
    if nan_possible:
        return any_nan(ctx, near)
    if rounded:
        return b.icmp_unsigned("!=", mxcsr_rc(ctx), ir.Constant(I32, 0))
    return ir.Constant(I1, 0)


def guarded(ctx: Insn, key: str, near: ir.Value, args: list[ir.Value],
            exact: Callable[..., ir.Value], nan_possible: bool = True,
            rounded: bool = True) -> ir.Value:
    """``near`` when MXCSR.RC is round-to-nearest and ``near`` is not a NaN
    (when ``nan_possible``), else ``exact(octx, rc, *args)`` computed out of
    line (in a cold function shared by the module).  ``exact`` must give the
    complete x86 result for any rc (including 0).  ``rounded``: whether the
    result depends on MXCSR.RC at all."""
    rc = mxcsr_rc(ctx)
    cond = _needs_exact(ctx, near, nan_possible, rounded)
    name = "bt.fp." + key + "." + mangle(near.type) + "." + ".".join(mangle(a.type) for a in args)
    return unless_cold(ctx, cond, near,
                       lambda: outlined(ctx, name, near.type, [rc, *args],
                                        lambda octx, orc, *params: exact(octx, orc, *params)),
                       "fp.exact")


def unless_cold(ctx: Insn, cond: ir.Value, near: ir.Value, slow: Callable[[], ir.Value],
                label: str) -> ir.Value:
    """``near``, or where ``cond`` holds (predicted not to) the value
    ``slow()`` builds in a block of its own (``label``): the shape of every
    common-case-only operation here and in x87.py."""
    b = ctx.b
    pre = b.block
    slow_bb = ctx.em.new_block(label)
    join = ctx.em.new_block(label + ".join")
    br = b.cbranch(cond, slow_bb, join)
    br.set_weights([1, 4096])
    b.position_at_end(slow_bb)
    v = slow()
    end = b.block
    b.branch(join)
    b.position_at_end(join)
    phi = b.phi(near.type)
    phi.add_incoming(near, pre)
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


_NEAR_OPS = {"add": "fadd", "sub": "fsub", "mul": "fmul", "div": "fdiv"}


def _near(ctx: Insn, op: str, a: ir.Value, s: ir.Value) -> ir.Value:
    return getattr(ctx.b, _NEAR_OPS[op])(a, s)


def _past_max(ctx: Insn, near: ir.Value, operands: tuple[ir.Value, ...], above: ir.Value,
              below: ir.Value) -> tuple[ir.Value, ir.Value]:
    """``above``/``below`` with overflow: a nearest result that is an
    infinity from finite operands lies beyond the exact one, which a
    directed mode then rounds to the largest finite value."""
    b = ctx.b
    ovf = isinf(ctx, near)
    for x in operands:
        ovf = b.and_(ovf, isfinite(ctx, x))
    pos, negr = _sign_of(ctx, near)
    return b.or_(above, b.and_(ovf, negr)), b.or_(below, b.and_(ovf, pos))


def _zero_sum_sign(ctx: Insn, rc: ir.Value, r: ir.Value, exact_zero: ir.Value,
                   both_pz: ir.Value) -> ir.Value:
    """``r``, but an exact zero sum is -0 when rounding down (IEEE 754
    6.3), unless both terms are +0 (``both_pz``)."""
    b = ctx.b
    down = bsplat(ctx, b.icmp_unsigned("==", rc, ir.Constant(I32, 1)), r.type)
    return b.select(b.and_(b.and_(exact_zero, down), b.not_(both_pz)), splat(r.type, -0.0), r)


def _directed_arith(ctx: Insn, op: str, rc: ir.Value, a: ir.Value, s: ir.Value,
                    near: ir.Value) -> ir.Value:
    """``a op s`` rounded by ``rc`` (any mode), from its nearest result."""
    b = ctx.b
    if op in ("add", "sub"):
        s2 = s if op == "add" else b.fneg(s)
        bb = b.fsub(near, a)
        err = b.fadd(b.fsub(a, b.fsub(near, bb)), b.fsub(s2, bb))
        above, below = _past_max(ctx, near, (a, s2), *_sign_of(ctx, err))
        r = directed(ctx, rc, near, above, below)
        ity = int_of(a.type)
        both_pz = b.and_(b.icmp_unsigned("==", as_int(ctx, a), splat(ity, 0)),
                         b.icmp_unsigned("==", as_int(ctx, s2), splat(ity, 0)))
        # a zero sum of finite terms is always exact
        return _zero_sum_sign(ctx, rc, r, b.fcmp_ordered("oeq", near, splat(a.type, 0.0)), both_pz)
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


# -- fused multiply-add ------------------------------------------------------------
def _two_sum(ctx: Insn, x: ir.Value, y: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(s, t) with s = RN(x + y) and x + y = s + t exactly (Knuth's TwoSum:
    exact for any finite x, y whose sum does not overflow, subnormals too)."""
    b = ctx.b
    s = b.fadd(x, y)
    bb = b.fsub(s, x)
    return s, b.fadd(b.fsub(x, b.fsub(s, bb)), b.fsub(y, bb))


def _signs(ctx: Insn, e: ir.Value, tie: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(positive, negative) of ``e``, or of ``tie`` where ``e`` is zero."""
    b = ctx.b
    ep, en = _sign_of(ctx, e)
    tp, tn = _sign_of(ctx, tie)
    is_zero = b.fcmp_ordered("oeq", e, splat(e.type, 0.0))
    return b.or_(ep, b.and_(is_zero, tp)), b.or_(en, b.and_(is_zero, tn))


def _fma_error_f32(ctx: Insn, a, m, c, near) -> tuple[ir.Value, ir.Value]:
    """Where a*m + c lies from its nearest float ``near``, in double: the
    product of two floats is exact there, TwoSum gives the sum exactly as
    s + t, and s - near is exact (Sterbenz: both round the same value), so
    the sign of (s - near) + t is the sign of the error.  A float's whole
    exponent range, subnormals and overflow included, is normal in double."""
    b = ctx.b
    dty = ir.VectorType(F64, a.type.count) if lanes_of(a.type) else F64
    p = b.fmul(b.fpext(a, dty), b.fpext(m, dty))
    s, t = _two_sum(ctx, p, b.fpext(c, dty))
    return _sign_of(ctx, b.fadd(b.fsub(s, b.fpext(near, dty)), t))


# f64 thresholds (see _fma_error_f64)
_FMA_TINY_PRODUCT = 2.0 ** -900
_FMA_TINY_RESULT = 2.0 ** -969
_FMA_SMALL_ADDEND = 2.0 ** -600
_FMA_FACTOR_SCALE = 2.0 ** 450
_FMA_SUM_SCALE = 2.0 ** 900
_FMA_NEGLIGIBLE = 2.0 ** -177


def _fma_error_f64(ctx: Insn, a, m, c, near) -> tuple[ir.Value, ir.Value]:
    """Where a*m + c lies from its nearest double ``near``, for finite
    operands: Boldo and Muller's ErrFma ("Exact and approximated error of
    the FMA", 2011) writes a*m + c = r1 + r2 + r3 exactly with r1 the FMA's
    nearest result, provided nothing underflows.  Three regimes:

    * product tiny (< 2^-900) beside an addend >= 2^-600: the result is the
      addend and the error is the product, whose sign is that of a*m;
    * product or result tiny, addend < 2^-600: then |a*m| < 2^-599 and
      everything is scaled by 2^900 (each factor by 2^450: the larger one
      is below 2^475 since the smaller is at least 2^-1074; a zero factor
      leaves the result exact, and NaNs make no adjustment), which is
      exact and lifts every non-zero value of the exact computation (a
      multiple of 2^-1183) into the normal range; the error is then
      (r1' - near') + r2' + r3', r1' - near' being exact (Sterbenz), unless
      the scaled product is still below 2^-177, when |a*m| < 2^-1077 is
      less than half the smallest subnormal and the error is the product
      again;
    * otherwise ErrFma applies as it is."""
    b = ctx.b
    ty = a.type

    def lt(x, k):
        return b.fcmp_ordered("olt", fabs(ctx, x), splat(ty, k))

    small_c = lt(c, _FMA_SMALL_ADDEND)
    tiny_product = lt(b.fmul(a, m), _FMA_TINY_PRODUCT)
    scale = b.and_(b.or_(tiny_product, lt(near, _FMA_TINY_RESULT)), small_c)

    def scaled(x, k):
        return b.select(scale, b.fmul(x, splat(ty, k)), x)

    a2, m2 = scaled(a, _FMA_FACTOR_SCALE), scaled(m, _FMA_FACTOR_SCALE)
    c2, n2 = scaled(c, _FMA_SUM_SCALE), scaled(near, _FMA_SUM_SCALE)
    u1 = b.fmul(a2, m2)
    u2 = fma(ctx, a2, m2, b.fneg(u1))                 # a2*m2 = u1 + u2
    alpha1, z = _two_sum(ctx, c2, u2)
    beta1, beta2 = _two_sum(ctx, u1, alpha1)
    r1 = fma(ctx, a2, m2, c2)
    gamma = b.fadd(b.fsub(beta1, r1), beta2)
    r2 = b.fadd(gamma, z)                              # Fast2Sum(gamma, z)
    r3 = b.fsub(z, b.fsub(r2, gamma))
    above, below = _signs(ctx, b.fadd(b.fsub(r1, n2), r2), r3)

    # the product alone decides
    by_product = b.or_(b.and_(tiny_product, b.not_(small_c)), b.and_(scale, lt(u1, _FMA_NEGLIGIBLE)))
    ity = int_of(ty)
    nonzero = b.and_(b.fcmp_unordered("une", a, splat(ty, 0.0)), b.fcmp_unordered("une", m, splat(ty, 0.0)))
    neg = b.icmp_signed("<", b.xor(as_int(ctx, a), as_int(ctx, m)), splat(ity, 0))
    return (b.select(by_product, b.and_(nonzero, b.not_(neg)), above),
            b.select(by_product, b.and_(nonzero, neg), below))


def _directed_fma(ctx: Insn, rc: ir.Value, a: ir.Value, m: ir.Value, c: ir.Value,
                  near: ir.Value) -> ir.Value:
    """a*m + c rounded once by ``rc`` (any mode), from its nearest result."""
    b = ctx.b
    ty = a.type
    error = _fma_error_f32 if fbits(ty) == 32 else _fma_error_f64
    above, below = _past_max(ctx, near, (a, m, c), *error(ctx, a, m, c, near))
    r = directed(ctx, rc, near, above, below)
    # the product is +0 (a zero factor, factors of one sign) and so is c
    ity = int_of(ty)
    zero = splat(ty, 0.0)
    product_pz = b.and_(b.or_(b.fcmp_ordered("oeq", a, zero), b.fcmp_ordered("oeq", m, zero)),
                        b.icmp_signed(">=", b.xor(as_int(ctx, a), as_int(ctx, m)), splat(ity, 0)))
    both_pz = b.and_(product_pz, b.icmp_unsigned("==", as_int(ctx, c), splat(ity, 0)))
    exact_zero = b.and_(b.fcmp_ordered("oeq", near, zero), b.not_(b.or_(above, below)))
    return _zero_sum_sign(ctx, rc, r, exact_zero, both_pz)


def fused(ctx: Insn, a: ir.Value, m: ir.Value, c: ir.Value) -> ir.Value:
    """x86 FMA3's a*m + c, rounded once by MXCSR.RC (NaN operands give
    LLVM's result: callers apply ``nan_fix`` in their operand order)."""
    def exact(octx: Insn, rc: ir.Value, a: ir.Value, m: ir.Value, c: ir.Value) -> ir.Value:
        return _directed_fma(octx, rc, a, m, c, fma(octx, a, m, c))

    return guarded(ctx, "fma", fma(ctx, a, m, c), [a, m, c], exact, nan_possible=False)


# -- the host's own instructions -----------------------------------------------------
# The AVX-512 rounding operand {rn-sae}: round to nearest, exceptions
# suppressed.  Not 4 ("current direction"): LLVM turns that form back into
# a generic fadd & co.
_RN_SAE = 8


def _wide_is_cheap(feats: frozenset[str]) -> bool:
    """Whether a 512-bit operation costs what a 128-bit one does: on AMD
    cores (Zen 4 on, the only AMD parts with AVX-512; SSE4a marks AMD) it
    does, while Intel's AVX-512 cores lower their clock for heavy 512-bit
    work (LLVM tunes them to prefer 256-bit vectors for the same reason)."""
    return "+sse4a" in feats


def host_op(ctx: Insn, op: str, args: list[ir.Value]) -> ir.Value | None:
    """The host's SSE/AVX-512 instruction for ``op`` (add sub mul div sqrt)
    on ``args`` with static round-to-nearest, or None when the target has
    no such instruction.  An intrinsic with an explicit rounding operand is
    opaque to LLVM (not commuted, not folded), so the result, NaNs included,
    is the host's -- which is the guest's: the same operation, operands in
    the guest's order."""
    feats = ctx.em.host_features      # none without LiftOptions.host_instructions
    if "+avx512f" not in feats:
        return None
    if not lanes_of(args[0].type):
        return _host_scalar(ctx, op, args)
    if _wide_is_cheap(feats):
        return _host_packed(ctx, op, args)
    return None


def _host_scalar(ctx: Insn, op: str, args: list[ir.Value]) -> ir.Value:
    """vaddsd & co. {rn-sae} on lane 0 (the other lanes are don't-care)."""
    b = ctx.b
    ty = args[0].type
    sfx = "ss" if ty == F32 else "sd"
    vt = ir.VectorType(ty, 4 if ty == F32 else 2)
    undef = ir.Constant(vt, ir.Undefined)
    lanes = [b.insert_element(undef, a, ir.Constant(I32, 0)) for a in args]
    if op == "sqrt":
        name, lanes = f"llvm.x86.avx512.mask.sqrt.{sfx}", [undef, lanes[0]]
    else:
        name = f"llvm.x86.avx512.mask.{op}.{sfx}.round"
    r = ctx.em.intrinsic(name, vt, [*lanes, undef, ir.Constant(ir.IntType(8), -1),
                                    ir.Constant(I32, _RN_SAE)])
    return b.extract_element(r, ir.Constant(I32, 0))


def _host_packed(ctx: Insn, op: str, args: list[ir.Value]) -> ir.Value:
    """vaddpd & co. {rn-sae}: only the 512-bit forms take a rounding
    operand, so the 128-bit operands are widened (upper lanes don't-care)."""
    b = ctx.b
    ty = args[0].type
    n = ty.count
    wide = ir.VectorType(ty.element, 512 // fbits(ty))
    undef = ir.Constant(ty, ir.Undefined)
    widen = mask_i32(list(range(n)) + [n] * (wide.count - n))
    ws = [b.shuffle_vector(a, undef, widen) for a in args]
    name = f"llvm.x86.avx512.{op}.{'ps' if ty.element == F32 else 'pd'}.512"
    r = ctx.em.intrinsic(name, wide, [*ws, ir.Constant(I32, _RN_SAE)])
    return b.shuffle_vector(r, ir.Constant(wide, ir.Undefined), mask_i32(list(range(n))))


def _fast(ctx: Insn, key: str, args: list[ir.Value], generic: Callable[[], ir.Value],
          exact: Callable[..., ir.Value]) -> ir.Value:
    """The x86 result of rounded operation ``key`` on ``args``: the host's
    instruction when there is one (then only MXCSR.RC is checked), else
    LLVM's ``generic()`` result, checked for NaNs too."""
    host = host_op(ctx, key, args)
    if host is not None:
        return guarded(ctx, key, host, args, exact, nan_possible=False)
    return guarded(ctx, key, generic(), args, exact)


def arith(ctx: Insn, op: str, a: ir.Value, s: ir.Value) -> ir.Value:
    """x86 ``a op s`` for op in add/sub/mul/div (scalar or vector floats):
    MXCSR rounding and NaN rules included."""
    def exact(octx: Insn, rc: ir.Value, a: ir.Value, s: ir.Value) -> ir.Value:
        near = _near(octx, op, a, s)
        return nan_fix(octx, _directed_arith(octx, op, rc, a, s, near), a, s)

    return _fast(ctx, op, [a, s], lambda: _near(ctx, op, a, s), exact)


def _directed_sqrt(ctx: Insn, rc: ir.Value, x: ir.Value, near: ir.Value) -> ir.Value:
    b = ctx.b
    bits = fbits(x.type)
    tiny = b.fcmp_ordered("olt", x, splat(x.type, _TINY[bits]))
    x2 = b.select(tiny, b.fmul(x, splat(x.type, _SCALE[bits])), x)
    s2 = b.select(tiny, b.fmul(near, splat(x.type, _SCALE_ROOT[bits])), near)
    rem = fma(ctx, b.fneg(s2), s2, x2)
    above, below = _sign_of(ctx, rem)
    return directed(ctx, rc, near, above, below)


def sqrt(ctx: Insn, x: ir.Value) -> ir.Value:
    def exact(octx: Insn, rc: ir.Value, x: ir.Value) -> ir.Value:
        near = call(octx, "sqrt", x.type, [x])
        return nan_fix(octx, _directed_sqrt(octx, rc, x, near), x)

    return _fast(ctx, "sqrt", [x], lambda: call(ctx, "sqrt", x.type, [x]), exact)


def round_static(ctx: Insn, x: ir.Value, mode: int) -> ir.Value:
    name = ("roundeven", "floor", "ceil", "trunc")[mode]
    return call(ctx, name, x.type, [x])


def round_dynamic(ctx: Insn, x: ir.Value) -> ir.Value:
    """Round to an integral value by MXCSR.RC (NaNs pass through as LLVM's
    rounding functions give them; callers apply the NaN rules)."""
    def exact(octx: Insn, rc: ir.Value, x: ir.Value) -> ir.Value:
        b = octx.b
        r = round_static(octx, x, 3)
        for mode in (2, 1, 0):
            sel = bsplat(octx, b.icmp_unsigned("==", rc, ir.Constant(I32, mode)), x.type)
            r = b.select(sel, round_static(octx, x, mode), r)
        return r

    return guarded(ctx, "rint", round_static(ctx, x, 0), [x], exact, nan_possible=False)


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

    def exact(octx: Insn, rc: ir.Value, x: ir.Value) -> ir.Value:
        b = octx.b
        near = b.sitofp(x, fty)
        big = b.fcmp_ordered("oge", near, splat(fty, float(1 << (ibits - 1))))
        back = b.fptosi(b.select(big, splat(fty, 0.0), near), x.type)
        above = b.and_(b.icmp_signed(">", x, back), b.not_(big))
        below = b.or_(b.icmp_signed("<", x, back), big)
        return directed(octx, rc, near, above, below)

    return guarded(ctx, "sitofp", near, [x], exact, nan_possible=False)


def narrow(ctx: Insn, d: ir.Value, fty: ir.Type) -> ir.Value:
    """double (vector) -> float (vector), rounded by MXCSR.RC, NaNs quieted
    with their payload truncated."""
    def exact(octx: Insn, rc: ir.Value, d: ir.Value) -> ir.Value:
        b = octx.b
        near = b.fptrunc(d, fty)
        back = b.fpext(near, d.type)
        r = directed(octx, rc, near, b.fcmp_ordered("ogt", d, back), b.fcmp_ordered("olt", d, back))
        di = as_int(octx, d)
        ity = int_of(fty)
        sign = b.trunc(b.lshr(di, splat(di.type, 32)), ity)
        sign = b.and_(sign, splat(ity, 0x80000000))
        payload = b.trunc(b.lshr(b.and_(di, splat(di.type, (1 << 52) - 1)), splat(di.type, 29)), ity)
        nan = b.or_(b.or_(sign, splat(ity, 0x7FC00000)), payload)
        return as_float(octx, b.select(isnan(octx, d), nan, as_int(octx, r)), fty)

    return guarded(ctx, "fptrunc", ctx.b.fptrunc(d, fty), [d], exact)


def to_half(ctx: Insn, x: ir.Value, rc: int | None) -> ir.Value:
    """float (vector) -> half (vector) rounded by mode ``rc`` (0 nearest, 1
    down, 2 up, 3 toward zero), or by MXCSR.RC when ``rc`` is None
    (vcvtps2ph's imm8).  The nearest half, converted back (exactly), says
    where ``x`` lay."""
    hty = ir.VectorType(HALF, x.type.count) if lanes_of(x.type) else HALF

    def exact(octx: Insn, rc: ir.Value, x: ir.Value) -> ir.Value:
        b = octx.b
        near = b.fptrunc(x, hty)
        back = b.fpext(near, x.type)
        return directed(octx, rc, near, b.fcmp_ordered("ogt", x, back), b.fcmp_ordered("olt", x, back))

    near = ctx.b.fptrunc(x, hty)
    if rc is None:
        return guarded(ctx, "fptrunc", near, [x], exact, nan_possible=False)
    if rc == 0:
        return near
    return exact(ctx, ir.Constant(I32, rc), x)


def widen(ctx: Insn, f: ir.Value, dty: ir.Type) -> ir.Value:
    """float (vector) -> double (vector): exact; NaNs quieted, payload kept."""
    def exact(octx: Insn, rc: ir.Value, f: ir.Value) -> ir.Value:
        b = octx.b
        fi = as_int(octx, f)
        ity = int_of(dty)
        wide = b.zext(fi, ity)
        sign = b.shl(b.and_(wide, splat(ity, 0x80000000)), splat(ity, 32))
        payload = b.shl(b.and_(wide, splat(ity, (1 << 23) - 1)), splat(ity, 29))
        nan = b.or_(b.or_(sign, splat(ity, 0x7FF8000000000000)), payload)
        return as_float(octx, b.select(isnan(octx, f), nan, as_int(octx, b.fpext(f, dty))), dty)

    return guarded(ctx, "fpext", ctx.b.fpext(f, dty), [f], exact, rounded=False)


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
    return merge_low(ctx, old128, r)


__all__ = ["F64"]

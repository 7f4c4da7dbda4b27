"""SSE floating point: add sub mul div sqrt min max (ss sd ps pd), cmp* with
all 8 predicates, comis*/ucomis*, round*, rcp*/rsqrt*, hadd/hsub/addsub,
dpps/dppd.

Rounding and NaN rules: see sse_fpcore.py.  rcpss/rcpps/rsqrtss/rsqrtps are
approximations on hardware (with vendor-specific tables); here they return
the correctly rounded 1/x and 1/sqrt(x) (well within the architectural
1.5*2^-12 relative error), with denormal inputs read as zero and tiny
results flushed to zero as the SDM specifies.
"""
from __future__ import annotations

from llvmlite import ir

from bttool.translator.operands import Insn, UnsupportedOperand
from bttool.translator.registry import semantic
from bttool.translator.semantics import sse_fpcore as fp
from bttool.translator.semantics.sse_common import (
    I1, I32, call, int_of, mask_i32, rd, splat, wr)

_KIND = {"ss": (32, False), "sd": (64, False), "ps": (32, True), "pd": (64, True)}


def _kind(ctx: Insn) -> tuple[int, bool]:
    return _KIND[ctx.mnemonic[-2:]]


def _operands(ctx: Insn, bits: int, packed: bool):
    a128 = rd(ctx, 0)
    s128 = rd(ctx, 1, 128 if packed else bits)
    return a128, fp.to_float(ctx, a128, bits, packed), fp.to_float(ctx, s128, bits, packed)


def _binary(op: str):
    def fn(ctx: Insn) -> None:
        bits, packed = _kind(ctx)
        a128, a, s = _operands(ctx, bits, packed)
        wr(ctx, 0, fp.from_float(ctx, a128, fp.arith(ctx, op, a, s), packed))
    return fn


def _minmax(is_max: bool):
    def fn(ctx: Insn) -> None:
        bits, packed = _kind(ctx)
        a128, a, s = _operands(ctx, bits, packed)
        # x86: the second operand unless the first is strictly smaller/greater
        # (so NaNs and +-0 pairs give the second operand).
        cmp = ctx.b.fcmp_ordered("ogt" if is_max else "olt", a, s)
        wr(ctx, 0, fp.from_float(ctx, a128, ctx.b.select(cmp, a, s), packed))
    return fn


for _sfx in _KIND:
    for _op in ("add", "sub", "mul", "div"):
        semantic(_op + _sfx)(_binary(_op))
    semantic("min" + _sfx)(_minmax(False))
    semantic("max" + _sfx)(_minmax(True))


@semantic("sqrtss", "sqrtsd", "sqrtps", "sqrtpd")
def sqrt_(ctx: Insn) -> None:
    bits, packed = _kind(ctx)
    a128, _, s = _operands(ctx, bits, packed)
    wr(ctx, 0, fp.from_float(ctx, a128, fp.sqrt(ctx, s), packed))


def _recip(ctx: Insn, x: ir.Value, root: bool) -> ir.Value:
    b = ctx.b
    ity = int_of(x.type)
    xi = fp.as_int(ctx, x)
    # denormal inputs count as zero (keeping the sign)
    denorm = b.icmp_unsigned("==", b.and_(xi, splat(ity, 0x7F800000)), splat(ity, 0))
    x = b.select(denorm, fp.as_float(ctx, b.and_(xi, splat(ity, 0x80000000)), x.type), x)
    if root:
        x = call(ctx, "sqrt", x.type, [x])
    r = b.fdiv(splat(x.type, 1.0), x)
    ri = fp.as_int(ctx, r)
    tiny = b.icmp_unsigned("==", b.and_(ri, splat(ity, 0x7F800000)), splat(ity, 0))
    r = b.select(tiny, fp.as_float(ctx, b.and_(ri, splat(ity, 0x80000000)), x.type), r)
    return fp.nan_fix(ctx, r, x)


def _recip_fn(root: bool):
    def fn(ctx: Insn) -> None:
        bits, packed = _kind(ctx)
        a128, _, s = _operands(ctx, bits, packed)
        wr(ctx, 0, fp.from_float(ctx, a128, _recip(ctx, s, root), packed))
    return fn


semantic("rcpss", "rcpps")(_recip_fn(False))
semantic("rsqrtss", "rsqrtps")(_recip_fn(True))


# -- compares -------------------------------------------------------------------------
_PREDICATES = ("eq", "lt", "le", "unord", "neq", "nlt", "nle", "ord")
# imm8 0-7 (SSE), and 8-15 of the VEX forms (EQ_UQ NGE_US NGT_US FALSE_OQ
# NEQ_OQ GE_OS GT_OS TRUE_UQ); 16-31 repeat 0-15 with the other signalling
# behaviour, which changes no result
_FCMP = ("oeq", "olt", "ole", "uno", "une", "uge", "ugt", "ord",
         "ueq", "ult", "ule", "false", "one", "oge", "ogt", "true")


def cmp_fp(ctx: Insn) -> None:
    """cmp{ps,pd,ss,sd} and the capstone forms with the predicate in the
    mnemonic (cmpltsd, cmpunordps, ...)."""
    m = ctx.mnemonic
    sfx = m[-2:]
    if sfx not in _KIND or not m.startswith("cmp"):
        raise UnsupportedOperand(f"compare {m}")
    pred_name = m[3:-2]
    vex = getattr(ctx, "vex", None) is not None
    pred = _PREDICATES.index(pred_name) if pred_name else _imm(ctx) & (0xF if vex else 7)
    bits, packed = _KIND[sfx]
    a128, a, s = _operands(ctx, bits, packed)
    c = ctx.b.fcmp_unordered(_FCMP[pred], a, s) if _FCMP[pred][0] in "ut" \
        else ctx.b.fcmp_ordered(_FCMP[pred], a, s)
    mask = ctx.b.sext(c, int_of(a.type))
    wr(ctx, 0, fp.from_float(ctx, a128, ctx.b.bitcast(mask, a.type), packed))


def _imm(ctx: Insn) -> int:
    from bttool.translator.semantics.sse_common import imm8
    return imm8(ctx)


semantic("cmpps", "cmppd", "cmpss")(cmp_fp)


def _comis(bits: int):
    def fn(ctx: Insn) -> None:
        b = ctx.b
        a = fp.to_float(ctx, rd(ctx, 0), bits, False)
        s = fp.to_float(ctx, rd(ctx, 1, bits), bits, False)
        uno = b.fcmp_unordered("uno", a, s)
        ctx.set_flag("zf", b.fcmp_unordered("ueq", a, s))
        ctx.set_flag("pf", uno)
        ctx.set_flag("cf", b.fcmp_unordered("ult", a, s))
        f = ir.Constant(I1, 0)
        for fl in ("of", "sf", "af"):
            ctx.set_flag(fl, f)
    return fn


semantic("comiss", "ucomiss")(_comis(32))
semantic("comisd", "ucomisd")(_comis(64))


# -- rounding -----------------------------------------------------------------------------
@semantic("roundss", "roundsd", "roundps", "roundpd")
def round_(ctx: Insn) -> None:
    bits, packed = _kind(ctx)
    imm = _imm(ctx)
    a128, _, s = _operands(ctx, bits, packed)
    r = fp.round_dynamic(ctx, s) if imm & 4 else fp.round_static(ctx, s, imm & 3)
    wr(ctx, 0, fp.from_float(ctx, a128, fp.nan_fix(ctx, r, s), packed))


# -- horizontal and alternating ----------------------------------------------------------------
def _horizontal(op: str):
    def fn(ctx: Insn) -> None:
        b = ctx.b
        bits, _ = _kind(ctx)
        _, a, s = _operands(ctx, bits, True)
        n = a.type.count
        ev = b.shuffle_vector(a, s, mask_i32(range(0, 2 * n, 2)))
        od = b.shuffle_vector(a, s, mask_i32(range(1, 2 * n, 2)))
        wr(ctx, 0, fp.arith(ctx, op, ev, od))
    return fn


semantic("haddps", "haddpd")(_horizontal("add"))
semantic("hsubps", "hsubpd")(_horizontal("sub"))


@semantic("addsubps", "addsubpd")
def addsub(ctx: Insn) -> None:
    b = ctx.b
    bits, _ = _kind(ctx)
    _, a, s = _operands(ctx, bits, True)
    n = a.type.count
    add = fp.arith(ctx, "add", a, s)
    sub = fp.arith(ctx, "sub", a, s)
    wr(ctx, 0, b.shuffle_vector(sub, add, mask_i32([i if i % 2 == 0 else n + i for i in range(n)])))


# -- dot products ---------------------------------------------------------------------------
def _dot(ctx: Insn, bits: int) -> None:
    """dpps/dppd: masked products, summed pairwise (the SDM's order), then
    broadcast to the lanes selected by imm8[3:0]."""
    b = ctx.b
    imm = _imm(ctx)
    _, a, s = _operands(ctx, bits, True)
    n = a.type.count
    zero = splat(a.type, 0.0)
    prod = fp.arith(ctx, "mul", a, s)
    keep = [(imm >> (4 + i)) & 1 for i in range(n)]
    prod = b.shuffle_vector(prod, zero, mask_i32([i if keep[i] else n + i for i in range(n)]))
    lane = [b.extract_element(prod, ir.Constant(I32, i)) for i in range(n)]
    if n == 2:
        total = fp.arith(ctx, "add", lane[0], lane[1])
    else:
        total = fp.arith(ctx, "add", fp.arith(ctx, "add", lane[0], lane[1]),
                         fp.arith(ctx, "add", lane[2], lane[3]))
    vec = b.insert_element(zero, total, ir.Constant(I32, 0))
    vec = b.shuffle_vector(vec, zero, mask_i32([0 if (imm >> i) & 1 else n + i for i in range(n)]))
    wr(ctx, 0, vec)


@semantic("dpps")
def dpps(ctx: Insn) -> None:
    _dot(ctx, 32)


@semantic("dppd")
def dppd(ctx: Insn) -> None:
    _dot(ctx, 64)


__all__ = ["cmp_fp"]

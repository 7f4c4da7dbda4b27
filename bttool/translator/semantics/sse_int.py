"""SSE integer arithmetic: add/sub (wrapping and saturating), compares,
min/max, multiplies, pmaddwd/pmaddubsw, psadbw/mpsadbw, pavg, pabs/psign,
horizontal add/sub, shifts (bit and byte), packs, pmovzx/pmovsx, pshufb,
palignr, ptest, phminposuw.

The MMX forms (mm registers, 64 bits) share these functions: lanes are
typed with ``lanes(ctx, bits)``, which follows the instruction's width
(sse_common.vec_bits).
"""
from __future__ import annotations

from llvmlite import ir

from bttool.translator.operands import Insn, UnsupportedOperand
from bttool.translator.registry import semantic
from bttool.translator.semantics.sse_common import (
    I1, I8, I16, I32, I64, I128, V16I8, V8I16, call, cast, fit, imm8, is_vreg, lanes, mask_i32,
    qwords, rd, retype, sat_signed, sat_unsigned, splat, vec, vec_bits, width_generic, wr)


def _ab(ctx: Insn, bits: int) -> tuple[ir.Value, ir.Value]:
    """Destination and source as vectors of ``bits``-wide lanes."""
    if not is_vreg(ctx, 0):
        raise UnsupportedOperand("vector destination expected")
    ty = lanes(ctx, bits)
    return cast(ctx, rd(ctx, 0), ty), cast(ctx, rd(ctx, 1), ty)


def _binop(bits: int, op):
    @width_generic
    def fn(ctx: Insn) -> None:
        a, s = _ab(ctx, bits)
        wr(ctx, 0, op(ctx, a, s))
    return fn


def _suffix_bits(s: str) -> int:
    return {"b": 8, "w": 16, "d": 32, "q": 64}[s]


# -- add / sub -------------------------------------------------------------------
for _s in "bwdq":
    semantic("padd" + _s)(_binop(_suffix_bits(_s), lambda c, a, s: c.b.add(a, s)))
    semantic("psub" + _s)(_binop(_suffix_bits(_s), lambda c, a, s: c.b.sub(a, s)))

for _s in "bw":
    _bits = _suffix_bits(_s)
    for _m, _intr in (("padds", "sadd.sat"), ("paddus", "uadd.sat"),
                      ("psubs", "ssub.sat"), ("psubus", "usub.sat")):
        semantic(_m + _s)(_binop(_bits, lambda c, a, s, _i=_intr: call(c, _i, a.type, [a, s])))


# -- compares ----------------------------------------------------------------------
def _mask(ctx: Insn, cond: ir.Value, ty) -> ir.Value:
    return ctx.b.sext(cond, ty)


for _s in "bwdq":
    semantic("pcmpeq" + _s)(_binop(_suffix_bits(_s),
                                   lambda c, a, s: _mask(c, c.b.icmp_unsigned("==", a, s), a.type)))
    semantic("pcmpgt" + _s)(_binop(_suffix_bits(_s),
                                   lambda c, a, s: _mask(c, c.b.icmp_signed(">", a, s), a.type)))


# -- min / max -----------------------------------------------------------------------
def _minmax(bits: int, signed: bool, is_max: bool):
    op = ">" if is_max else "<"

    def f(c: Insn, a, s):
        cmp = c.b.icmp_signed(op, a, s) if signed else c.b.icmp_unsigned(op, a, s)
        return c.b.select(cmp, a, s)
    return _binop(bits, f)


for _s in "bwd":
    for _signed in (True, False):
        for _max in (True, False):
            _name = ("pmax" if _max else "pmin") + ("s" if _signed else "u") + _s
            semantic(_name)(_minmax(_suffix_bits(_s), _signed, _max))


# -- multiplies -------------------------------------------------------------------------
def _widen(ctx: Insn, v: ir.Value, bits: int, signed: bool) -> ir.Value:
    ty = retype(v.type, bits)
    return ctx.b.sext(v, ty) if signed else ctx.b.zext(v, ty)


@semantic("pmullw")
def pmullw(ctx: Insn) -> None:
    a, s = _ab(ctx, 16)
    wr(ctx, 0, ctx.b.mul(a, s))


@semantic("pmulld")
def pmulld(ctx: Insn) -> None:
    a, s = _ab(ctx, 32)
    wr(ctx, 0, ctx.b.mul(a, s))


def _mulhi(signed: bool):
    def fn(ctx: Insn) -> None:
        b = ctx.b
        a, s = _ab(ctx, 16)
        p = b.mul(_widen(ctx, a, 32, signed), _widen(ctx, s, 32, signed))
        wr(ctx, 0, b.trunc(b.lshr(p, splat(p.type, 16)), a.type))
    return fn


semantic("pmulhw")(_mulhi(True))
semantic("pmulhuw")(_mulhi(False))


@semantic("pmulhrsw")
def pmulhrsw(ctx: Insn) -> None:
    b = ctx.b
    a, s = _ab(ctx, 16)
    p = b.mul(_widen(ctx, a, 32, True), _widen(ctx, s, 32, True))
    p = b.add(b.ashr(p, splat(p.type, 14)), splat(p.type, 1))
    wr(ctx, 0, b.trunc(b.ashr(p, splat(p.type, 1)), a.type))


def _muldq(signed: bool):
    def fn(ctx: Insn) -> None:
        b = ctx.b
        a, s = _ab(ctx, 64)
        if signed:
            sh = splat(a.type, 32)
            a = b.ashr(b.shl(a, sh), sh)
            s = b.ashr(b.shl(s, sh), sh)
        else:
            m = splat(a.type, 0xFFFFFFFF)
            a, s = b.and_(a, m), b.and_(s, m)
        wr(ctx, 0, b.mul(a, s))
    return fn


semantic("pmuludq")(_muldq(False))
semantic("pmuldq")(_muldq(True))


def _even_odd(ctx: Insn, v: ir.Value) -> tuple[ir.Value, ir.Value]:
    n = v.type.count
    b = ctx.b
    return (b.shuffle_vector(v, v, mask_i32(range(0, n, 2))),
            b.shuffle_vector(v, v, mask_i32(range(1, n, 2))))


@semantic("pmaddwd")
def pmaddwd(ctx: Insn) -> None:
    b = ctx.b
    a, s = _ab(ctx, 16)
    p = b.mul(_widen(ctx, a, 32, True), _widen(ctx, s, 32, True))
    ev, od = _even_odd(ctx, p)
    wr(ctx, 0, b.add(ev, od))


@semantic("pmaddubsw")
def pmaddubsw(ctx: Insn) -> None:
    b = ctx.b
    a, s = _ab(ctx, 8)
    p = b.mul(_widen(ctx, a, 32, False), _widen(ctx, s, 32, True))
    ev, od = _even_odd(ctx, p)
    wr(ctx, 0, sat_signed(ctx, b.add(ev, od), 16))


# -- absolute differences, averages ------------------------------------------------------
def _absdiff16(ctx: Insn, a: ir.Value, s: ir.Value) -> ir.Value:
    """|a - s| of unsigned byte vectors, as i16 lanes."""
    b = ctx.b
    a16, s16 = _widen(ctx, a, 16, False), _widen(ctx, s, 16, False)
    d = b.sub(a16, s16)
    return b.select(b.icmp_signed("<", d, splat(d.type, 0)), b.sub(splat(d.type, 0), d), d)


@semantic("psadbw")
def psadbw(ctx: Insn) -> None:
    """One sum of absolute differences per group of eight bytes, in the
    group's quadword."""
    b = ctx.b
    a, s = _ab(ctx, 8)
    d = _absdiff16(ctx, a, s)
    r = ir.Constant(lanes(ctx, 64), None)
    for q in range(d.type.count // 8):
        part = b.shuffle_vector(d, d, mask_i32(range(8 * q, 8 * q + 8)))
        sad = call(ctx, "vector.reduce.add", part.type, [part], ret=I16)
        r = b.insert_element(r, b.zext(sad, I64), ir.Constant(I32, q))
    wr(ctx, 0, r)


@semantic("mpsadbw")
def mpsadbw(ctx: Insn) -> None:
    """Run per 128-bit lane for vmpsadbw ymm: the upper lane takes its
    offsets from imm8[5:3]."""
    b = ctx.b
    imm = imm8(ctx) >> (3 * (getattr(ctx, "lane", None) or 0))
    a, s = _ab(ctx, 8)
    off_a = ((imm >> 2) & 1) * 4
    off_s = (imm & 3) * 4
    acc = None
    for k in range(4):
        ak = b.shuffle_vector(a, a, mask_i32([off_a + i + k for i in range(8)]))
        sk = b.shuffle_vector(s, s, mask_i32([off_s + k] * 8))
        d = _absdiff16(ctx, ak, sk)
        acc = d if acc is None else b.add(acc, d)
    wr(ctx, 0, acc)


def _pavg(bits: int):
    def fn(ctx: Insn) -> None:
        b = ctx.b
        a, s = _ab(ctx, bits)
        w = b.add(b.add(_widen(ctx, a, 2 * bits, False), _widen(ctx, s, 2 * bits, False)),
                  splat(retype(a.type, 2 * bits), 1))
        wr(ctx, 0, b.trunc(b.lshr(w, splat(w.type, 1)), a.type))
    return fn


semantic("pavgb")(_pavg(8))
semantic("pavgw")(_pavg(16))


def _pabs(bits: int):
    def fn(ctx: Insn) -> None:
        b = ctx.b
        s = cast(ctx, rd(ctx, 1), lanes(ctx, bits))
        neg = b.icmp_signed("<", s, splat(s.type, 0))
        wr(ctx, 0, b.select(neg, b.sub(splat(s.type, 0), s), s))
    return fn


def _psign(bits: int):
    def fn(ctx: Insn) -> None:
        b = ctx.b
        a, s = _ab(ctx, bits)
        zero = splat(a.type, 0)
        r = b.select(b.icmp_signed("<", s, zero), b.sub(zero, a), a)
        wr(ctx, 0, b.select(b.icmp_unsigned("==", s, zero), zero, r))
    return fn


for _s in "bwd":
    semantic("pabs" + _s)(_pabs(_suffix_bits(_s)))
    semantic("psign" + _s)(_psign(_suffix_bits(_s)))


# -- horizontal add / sub ---------------------------------------------------------------
def _hop(bits: int, kind: str):
    def fn(ctx: Insn) -> None:
        b = ctx.b
        a, s = _ab(ctx, bits)
        n = a.type.count
        ev = b.shuffle_vector(a, s, mask_i32(range(0, 2 * n, 2)))
        od = b.shuffle_vector(a, s, mask_i32(range(1, 2 * n, 2)))
        if kind == "add":
            r = b.add(ev, od)
        elif kind == "sub":
            r = b.sub(ev, od)
        elif kind == "adds":
            r = call(ctx, "sadd.sat", ev.type, [ev, od])
        else:
            r = call(ctx, "ssub.sat", ev.type, [ev, od])
        wr(ctx, 0, r)
    return fn


semantic("phaddw")(_hop(16, "add"))
semantic("phaddd")(_hop(32, "add"))
semantic("phsubw")(_hop(16, "sub"))
semantic("phsubd")(_hop(32, "sub"))
semantic("phaddsw")(_hop(16, "adds"))
semantic("phsubsw")(_hop(16, "subs"))


# -- shifts ---------------------------------------------------------------------------------
def _shift(bits: int, kind: str):
    """psll/psrl/psra with an imm8 or a register/memory count (its low
    quadword; mm/m64 in the MMX forms, xmm/m128 in the SSE ones)."""
    def fn(ctx: Insn) -> None:
        b = ctx.b
        ty = lanes(ctx, bits)
        a = cast(ctx, rd(ctx, 0), ty)
        if ctx.is_imm(1):
            cnt = imm8(ctx)
            if cnt >= bits:
                if kind == "sra":
                    r = b.ashr(a, splat(ty, bits - 1))
                else:
                    r = ir.Constant(ty, [ir.Constant(ty.element, 0)] * ty.count)
            elif cnt == 0:
                r = a
            else:
                op = {"sll": b.shl, "srl": b.lshr, "sra": b.ashr}[kind]
                r = op(a, splat(ty, cnt))
            wr(ctx, 0, r)
            return
        cnt = fit(ctx, rd(ctx, 1), 64)
        big = b.icmp_unsigned(">", cnt, ir.Constant(I64, bits - 1))
        if kind == "sra":
            c = b.select(big, ir.Constant(I64, bits - 1), cnt)
        else:
            c = b.select(big, ir.Constant(I64, 0), cnt)
        c = b.trunc(c, ty.element) if bits < 64 else c
        cv = b.insert_element(ir.Constant(ty, None), c, ir.Constant(I32, 0))
        cv = b.shuffle_vector(cv, cv, mask_i32([0] * ty.count))
        op = {"sll": b.shl, "srl": b.lshr, "sra": b.ashr}[kind]
        r = op(a, cv)
        if kind != "sra":
            r = b.select(big, splat(ty, 0), r)
        wr(ctx, 0, r)
    return fn


for _s in "wdq":
    semantic("psll" + _s)(_shift(_suffix_bits(_s), "sll"))
    semantic("psrl" + _s)(_shift(_suffix_bits(_s), "srl"))
for _s in "wd":
    semantic("psra" + _s)(_shift(_suffix_bits(_s), "sra"))


def _zero_bytes(ctx: Insn) -> ir.Constant:
    return splat(lanes(ctx, 8), 0)


@semantic("pslldq")
def pslldq(ctx: Insn) -> None:
    """(xmm only)"""
    n = min(imm8(ctx), 16)
    a = cast(ctx, rd(ctx, 0), V16I8)
    # result byte i = a[i - n] (or 0): shuffle (zero, a) -> index 16 + i - n
    wr(ctx, 0, ctx.b.shuffle_vector(splat(V16I8, 0), a, mask_i32(
        [16 + i - n if i >= n else 0 for i in range(16)])))


@semantic("psrldq")
def psrldq(ctx: Insn) -> None:
    """(xmm only)"""
    n = min(imm8(ctx), 16)
    a = cast(ctx, rd(ctx, 0), V16I8)
    wr(ctx, 0, ctx.b.shuffle_vector(a, splat(V16I8, 0), mask_i32([i + n for i in range(16)])))


@semantic("palignr")
def palignr(ctx: Insn) -> None:
    """The concatenation dst:src shifted right by imm8 bytes, low half kept."""
    imm = imm8(ctx)
    a, s = _ab(ctx, 8)
    b = ctx.b
    n = a.type.count
    zero = _zero_bytes(ctx)
    if imm >= 2 * n:
        r = zero
    elif imm >= n:
        r = b.shuffle_vector(a, zero, mask_i32([imm - n + i for i in range(n)]))
    else:
        r = b.shuffle_vector(s, a, mask_i32([imm + i for i in range(n)]))
    wr(ctx, 0, r)


@semantic("pshufb")
def pshufb(ctx: Insn) -> None:
    """Byte i = dst[src[i] mod n], or 0 where src[i] has its top bit set."""
    b = ctx.b
    a, s = _ab(ctx, 8)
    ty = a.type
    idx = b.and_(s, splat(ty, ty.count - 1))
    r = ir.Constant(ty, None)
    for i in range(ty.count):
        k = b.extract_element(idx, ir.Constant(I32, i))
        r = b.insert_element(r, b.extract_element(a, k), ir.Constant(I32, i))
    neg = b.icmp_signed("<", s, splat(ty, 0))
    wr(ctx, 0, b.select(neg, splat(ty, 0), r))


# -- packs ------------------------------------------------------------------------------------
def _pack(bits: int, signed_sat: bool):
    def fn(ctx: Insn) -> None:
        b = ctx.b
        a, s = _ab(ctx, bits)
        n = a.type.count
        both = b.shuffle_vector(a, s, mask_i32(range(2 * n)))
        sat = sat_signed if signed_sat else sat_unsigned
        wr(ctx, 0, sat(ctx, both, bits // 2))
    return fn


semantic("packsswb")(_pack(16, True))
semantic("packssdw")(_pack(32, True))
semantic("packuswb")(_pack(16, False))
semantic("packusdw")(_pack(32, False))


# -- pmovzx / pmovsx -----------------------------------------------------------------------------
def _pmovx(src_bits: int, dst_bits: int, signed: bool):
    n = 128 // dst_bits

    def fn(ctx: Insn) -> None:
        b = ctx.b
        v = rd(ctx, 1, src_bits * n)
        v = b.bitcast(b.trunc(v, ir.IntType(src_bits * n)), vec(src_bits, n))
        wr(ctx, 0, b.sext(v, vec(dst_bits, n)) if signed else b.zext(v, vec(dst_bits, n)))
    return fn


for _pair in ("bw", "bd", "bq", "wd", "wq", "dq"):
    _sb, _db = _suffix_bits(_pair[0]), _suffix_bits(_pair[1])
    semantic("pmovzx" + _pair)(_pmovx(_sb, _db, False))
    semantic("pmovsx" + _pair)(_pmovx(_sb, _db, True))


# -- ptest, phminposuw --------------------------------------------------------------------------
@semantic("ptest")
@width_generic
def ptest(ctx: Insn) -> None:
    test_flags(ctx, (1 << 64) - 1)


def test_flags(ctx: Insn, lane_mask: int) -> None:
    """ptest, vtestps, vtestpd: ZF = (dest & src) is zero, CF = (~dest &
    src) is zero, in the bits ``lane_mask`` selects of every 64-bit lane
    (all of them, or the sign bits); AF, OF, PF, SF cleared.  The logic on
    64-bit lanes, then one wide compare: LLVM turns that into ptest."""
    b = ctx.b
    a, s = qwords(ctx, 0), qwords(ctx, 1)
    m = splat(a.type, lane_mask)
    wide = ir.IntType(vec_bits(ctx))
    zero = ir.Constant(wide, 0)
    for flag, x in (("zf", a), ("cf", b.not_(a))):
        ctx.set_flag(flag, b.icmp_unsigned("==", b.bitcast(b.and_(b.and_(x, s), m), wide), zero))
    f = ir.Constant(I1, 0)
    for fl in ("af", "of", "pf", "sf"):
        ctx.set_flag(fl, f)


@semantic("phminposuw")
def phminposuw(ctx: Insn) -> None:
    b = ctx.b
    s = cast(ctx, rd(ctx, 1), V8I16)
    m = call(ctx, "vector.reduce.umin", V8I16, [s], ret=I16)
    splat_m = b.shuffle_vector(b.insert_element(ir.Constant(V8I16, None), m, ir.Constant(I32, 0)),
                               ir.Constant(V8I16, None), mask_i32([0] * 8))
    hits = b.bitcast(b.icmp_unsigned("==", s, splat_m), I8)
    idx = ctx.em.intrinsic("llvm.cttz.i8", I8, [hits, ir.Constant(I1, 0)])
    r = b.or_(b.zext(m, I128), b.shl(b.zext(idx, I128), ir.Constant(I128, 16)))
    wr(ctx, 0, r)


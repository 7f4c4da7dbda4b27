"""SSE data movement, logic, shuffles, blends, insert/extract and MXCSR.

movd movq mov{a,u}p{s,d} movdq{a,u} lddqu movnt* movss movsd(xmm) mov{h,l}p{s,d}
movhlps movlhps movddup movs{h,l}dup movmskp{s,d} pmovmskb
pand pandn por pxor and{,n}p{s,d} orp{s,d} xorp{s,d}
pshufd pshuf{l,h}w shufp{s,d} unpck{l,h}p{s,d} punpck{l,h}{bw,wd,dq,qdq}
pblendw blendp{s,d} pblendvb blendvp{s,d} insertps extractps pextr{b,w,d,q}
pinsr{b,w,d,q} ldmxcsr stmxcsr; and the MMX forms of movd/movq, pmovmskb,
the logic operations, punpck*, pextrw and pinsrw (64-bit lanes through
sse_common.lanes; the MMX-only instructions are in mmx.py).

Alignment checks of the aligned forms (movaps, movdqa, SSE memory operands)
are not modelled: an unaligned operand works instead of raising #GP.
Non-temporal stores are plain stores.
"""
from __future__ import annotations

from llvmlite import ir
from capstone import x86_const as X

from bttool.translator.operands import Insn, UnsupportedOperand
from bttool.translator.registry import semantic
from bttool.translator.semantics.sse_common import (
    I32, I128, V2I64, V4I32, V8I16, cast, fit, has_xmm, imm8, is_vreg, is_xmm, lanes,
    mask_i32, merge_low, qwords, rd, set_mxcsr, splat, vec, vec_bits, width_generic, wr)

# -- plain moves -----------------------------------------------------------------
@semantic("movaps", "movapd", "movups", "movupd", "movdqa", "movdqu", "lddqu",
          "movntdq", "movntps", "movntpd", "movntdqa")
@width_generic
def mov128(ctx: Insn) -> None:
    v = rd(ctx, 1)
    if is_xmm(ctx, 0):
        wr(ctx, 0, v)
    else:
        ctx.store(ctx.ea(0), v)


@semantic("movnti")
def movnti(ctx: Insn) -> None:
    ctx.write(0, ctx.read(1))


@semantic("movd", "movq")
def movd_movq(ctx: Insn) -> None:
    """To a vector register: zero-extended (from a GPR, memory, an mm or the
    low quadword of an xmm); from one: its low 32/64 bits."""
    bits = 64 if ctx.mnemonic == "movq" else 32
    if is_vreg(ctx, 0):
        wr(ctx, 0, fit(ctx, rd(ctx, 1, bits=bits), vec_bits(ctx)))
    elif is_vreg(ctx, 1):
        ctx.write(0, rd(ctx, 1, bits=bits))
    else:
        raise UnsupportedOperand("movd/movq without a vector register")


def _move_scalar(ctx: Insn, bits: int) -> None:
    """movss/movsd: reg-reg merges the low lane, a load zeroes the rest."""
    b = ctx.b
    if is_xmm(ctx, 0) and is_xmm(ctx, 1):
        wr(ctx, 0, merge_low(ctx, rd(ctx, 0), b.trunc(rd(ctx, 1), ir.IntType(bits))))
    elif is_xmm(ctx, 0):
        wr(ctx, 0, rd(ctx, 1, bits))
    else:
        ctx.store(ctx.ea(0), b.trunc(rd(ctx, 1), ir.IntType(bits)))


@semantic("movss")
def movss(ctx: Insn) -> None:
    _move_scalar(ctx, 32)


def movsd_xmm(ctx: Insn) -> None:
    """SSE2 movsd (capstone shares the id with the string movsd; see string.py)."""
    _move_scalar(ctx, 64)


def cmpsd_xmm(ctx: Insn) -> None:
    """SSE2 cmpsd (capstone shares the id with the string cmpsd; see string.py)."""
    from bttool.translator.semantics import sse_float
    sse_float.cmp_fp(ctx)


def _halves(ctx: Insn, v128: ir.Value) -> tuple[ir.Value, ir.Value]:
    b = ctx.b
    v = b.bitcast(v128, V2I64)
    return b.extract_element(v, ir.Constant(I32, 0)), b.extract_element(v, ir.Constant(I32, 1))


def _join(ctx: Insn, lo: ir.Value, hi: ir.Value) -> ir.Value:
    b = ctx.b
    v = b.insert_element(ir.Constant(V2I64, None), lo, ir.Constant(I32, 0))
    return b.bitcast(b.insert_element(v, hi, ir.Constant(I32, 1)), I128)


@semantic("movhps", "movhpd")
def movhp(ctx: Insn) -> None:
    if is_xmm(ctx, 0):
        lo, _ = _halves(ctx, rd(ctx, 0))
        wr(ctx, 0, _join(ctx, lo, ctx.load(ctx.ea(1), 64)))
    else:
        ctx.store(ctx.ea(0), _halves(ctx, rd(ctx, 1))[1])


@semantic("movlps", "movlpd")
def movlp(ctx: Insn) -> None:
    if is_xmm(ctx, 0):
        wr(ctx, 0, merge_low(ctx, rd(ctx, 0), ctx.load(ctx.ea(1), 64)))
    else:
        ctx.store(ctx.ea(0), _halves(ctx, rd(ctx, 1))[0])


@semantic("movhlps")
def movhlps(ctx: Insn) -> None:
    _, dhi = _halves(ctx, rd(ctx, 0))
    _, shi = _halves(ctx, rd(ctx, 1))
    wr(ctx, 0, _join(ctx, shi, dhi))


@semantic("movlhps")
def movlhps(ctx: Insn) -> None:
    dlo, _ = _halves(ctx, rd(ctx, 0))
    slo, _ = _halves(ctx, rd(ctx, 1))
    wr(ctx, 0, _join(ctx, dlo, slo))


@semantic("movddup")
def movddup(ctx: Insn) -> None:
    lo, _ = _halves(ctx, rd(ctx, 1, 64))
    wr(ctx, 0, _join(ctx, lo, lo))


def _shuffle(ctx: Insn, a: ir.Value, b_: ir.Value | None, idx) -> ir.Value:
    """shufflevector of two same-typed vectors (``b_`` None: undef-free, a twice)."""
    return ctx.b.shuffle_vector(a, a if b_ is None else b_, mask_i32(idx))


@semantic("movshdup")
def movshdup(ctx: Insn) -> None:
    s = cast(ctx, rd(ctx, 1), V4I32)
    wr(ctx, 0, _shuffle(ctx, s, None, [1, 1, 3, 3]))


@semantic("movsldup")
def movsldup(ctx: Insn) -> None:
    s = cast(ctx, rd(ctx, 1), V4I32)
    wr(ctx, 0, _shuffle(ctx, s, None, [0, 0, 2, 2]))


def _sign_mask(ctx: Insn, v: ir.Value, lane_bits: int) -> ir.Value:
    """The sign bits of the lanes of integer ``v`` (128 or 64 bits), as an integer."""
    b = ctx.b
    n = v.type.width // lane_bits
    v = cast(ctx, v, vec(lane_bits, n))
    neg = b.icmp_signed("<", v, splat(v.type, 0))
    return b.bitcast(neg, ir.IntType(n))


def _write_gpr_zext(ctx: Insn, i: int, v: ir.Value) -> None:
    bits = ctx.bits(i)
    ctx.write(i, ctx.b.zext(v, ir.IntType(bits)) if v.type.width < bits else v)


@semantic("movmskps")
@width_generic
def movmskps(ctx: Insn) -> None:
    _write_gpr_zext(ctx, 0, _sign_mask(ctx, rd(ctx, 1), 32))


@semantic("movmskpd")
@width_generic
def movmskpd(ctx: Insn) -> None:
    _write_gpr_zext(ctx, 0, _sign_mask(ctx, rd(ctx, 1), 64))


@semantic("pmovmskb")
@width_generic
def pmovmskb(ctx: Insn) -> None:
    _write_gpr_zext(ctx, 0, _sign_mask(ctx, rd(ctx, 1), 8))


# -- logic ------------------------------------------------------------------------
@semantic("pand", "andps", "andpd")
@width_generic
def pand(ctx: Insn) -> None:
    wr(ctx, 0, ctx.b.and_(qwords(ctx, 0), qwords(ctx, 1)))


@semantic("pandn", "andnps", "andnpd")
@width_generic
def pandn(ctx: Insn) -> None:
    wr(ctx, 0, ctx.b.and_(ctx.b.not_(qwords(ctx, 0)), qwords(ctx, 1)))


@semantic("por", "orps", "orpd")
@width_generic
def por(ctx: Insn) -> None:
    wr(ctx, 0, ctx.b.or_(qwords(ctx, 0), qwords(ctx, 1)))


@semantic("pxor", "xorps", "xorpd")
@width_generic
def pxor(ctx: Insn) -> None:
    if is_vreg(ctx, 1) and ctx.ops[0].reg == ctx.ops[1].reg:
        wr(ctx, 0, ir.Constant(ir.IntType(vec_bits(ctx)), 0))   # zeroing idiom
        return
    wr(ctx, 0, ctx.b.xor(qwords(ctx, 0), qwords(ctx, 1)))


# -- shuffles and unpacks ---------------------------------------------------------
@semantic("pshufd")
def pshufd(ctx: Insn) -> None:
    imm = imm8(ctx)
    s = cast(ctx, rd(ctx, 1), V4I32)
    wr(ctx, 0, _shuffle(ctx, s, None, [(imm >> (2 * i)) & 3 for i in range(4)]))


@semantic("pshuflw")
def pshuflw(ctx: Insn) -> None:
    imm = imm8(ctx)
    s = cast(ctx, rd(ctx, 1), V8I16)
    wr(ctx, 0, _shuffle(ctx, s, None, [(imm >> (2 * i)) & 3 for i in range(4)] + [4, 5, 6, 7]))


@semantic("pshufhw")
def pshufhw(ctx: Insn) -> None:
    imm = imm8(ctx)
    s = cast(ctx, rd(ctx, 1), V8I16)
    wr(ctx, 0, _shuffle(ctx, s, None, [0, 1, 2, 3] + [4 + ((imm >> (2 * i)) & 3) for i in range(4)]))


@semantic("shufps")
def shufps(ctx: Insn) -> None:
    imm = imm8(ctx)
    a = cast(ctx, rd(ctx, 0), V4I32)
    s = cast(ctx, rd(ctx, 1), V4I32)
    wr(ctx, 0, _shuffle(ctx, a, s, [imm & 3, (imm >> 2) & 3, 4 + ((imm >> 4) & 3), 4 + ((imm >> 6) & 3)]))


@semantic("shufpd")
def shufpd(ctx: Insn) -> None:
    imm = imm8(ctx)
    a = cast(ctx, rd(ctx, 0), V2I64)
    s = cast(ctx, rd(ctx, 1), V2I64)
    wr(ctx, 0, _shuffle(ctx, a, s, [imm & 1, 2 + ((imm >> 1) & 1)]))


def _unpack(lane_bits: int, high: bool):
    """Interleave the low (or high) halves of destination and source.  The
    MMX low forms read only 32 bits of a memory source."""
    def fn(ctx: Insn) -> None:
        ty = lanes(ctx, lane_bits)
        n = ty.count
        a = cast(ctx, rd(ctx, 0), ty)
        mem_bits = 32 if vec_bits(ctx) == 64 and not high else None
        s = cast(ctx, rd(ctx, 1, mem_bits), ty)
        base = n // 2 if high else 0
        idx = []
        for i in range(n // 2):
            idx += [base + i, n + base + i]
        wr(ctx, 0, _shuffle(ctx, a, s, idx))
    return fn


for _name, _bits in (("bw", 8), ("wd", 16), ("dq", 32), ("qdq", 64)):
    semantic("punpckl" + _name)(_unpack(_bits, False))
    semantic("punpckh" + _name)(_unpack(_bits, True))
semantic("unpcklps")(_unpack(32, False))
semantic("unpckhps")(_unpack(32, True))
semantic("unpcklpd")(_unpack(64, False))
semantic("unpckhpd")(_unpack(64, True))


# -- blends -------------------------------------------------------------------------
def _blend_imm(ctx: Insn, lane_bits: int, imm: int) -> None:
    n = 128 // lane_bits
    ty = vec(lane_bits, n)
    a = cast(ctx, rd(ctx, 0), ty)
    s = cast(ctx, rd(ctx, 1), ty)
    wr(ctx, 0, _shuffle(ctx, a, s, [n + i if (imm >> i) & 1 else i for i in range(n)]))


@semantic("pblendw")
def pblendw(ctx: Insn) -> None:
    _blend_imm(ctx, 16, imm8(ctx))


@semantic("blendps")
def blendps(ctx: Insn) -> None:
    _blend_imm(ctx, 32, imm8(ctx) & 0xF)


@semantic("blendpd")
def blendpd(ctx: Insn) -> None:
    _blend_imm(ctx, 64, imm8(ctx) & 3)


def _blend_var(ctx: Insn, lane_bits: int) -> None:
    b = ctx.b
    ty = vec(lane_bits, 128 // lane_bits)
    a = cast(ctx, rd(ctx, 0), ty)
    s = cast(ctx, rd(ctx, 1), ty)
    m = cast(ctx, ctx.xmm(0), ty)
    wr(ctx, 0, b.select(b.icmp_signed("<", m, splat(ty, 0)), s, a))


@semantic("pblendvb")
def pblendvb(ctx: Insn) -> None:
    _blend_var(ctx, 8)


@semantic("blendvps")
def blendvps(ctx: Insn) -> None:
    _blend_var(ctx, 32)


@semantic("blendvpd")
def blendvpd(ctx: Insn) -> None:
    _blend_var(ctx, 64)


# -- insert / extract ------------------------------------------------------------
def _extract(ctx: Insn, lane_bits: int, index: int) -> ir.Value:
    """Lane ``index`` (modulo the lane count) of operand 1."""
    ty = lanes(ctx, lane_bits)
    v = cast(ctx, rd(ctx, 1), ty)
    return ctx.b.extract_element(v, ir.Constant(I32, index % ty.count))


def _store_or_zext(ctx: Insn, v: ir.Value) -> None:
    if ctx.is_mem(0):
        ctx.store(ctx.ea(0), v)
    else:
        _write_gpr_zext(ctx, 0, v)


@semantic("pextrb")
def pextrb(ctx: Insn) -> None:
    _store_or_zext(ctx, _extract(ctx, 8, imm8(ctx) & 15))


@semantic("pextrw")
def pextrw(ctx: Insn) -> None:
    _store_or_zext(ctx, _extract(ctx, 16, imm8(ctx)))


@semantic("pextrd", "extractps")
def pextrd(ctx: Insn) -> None:
    _store_or_zext(ctx, _extract(ctx, 32, imm8(ctx) & 3))


@semantic("pextrq")
def pextrq(ctx: Insn) -> None:
    _store_or_zext(ctx, _extract(ctx, 64, imm8(ctx) & 1))


def _insert(ctx: Insn, lane_bits: int, index: int) -> None:
    """Lane ``index`` (modulo the lane count) of the destination from a GPR
    or memory."""
    b = ctx.b
    ty = lanes(ctx, lane_bits)
    index %= ty.count
    a = cast(ctx, rd(ctx, 0), ty)
    if ctx.is_mem(1):
        v = ctx.load(ctx.ea(1), lane_bits)
    else:
        v = ctx.read(1)
        v = b.trunc(v, ir.IntType(lane_bits)) if v.type.width > lane_bits else v
    wr(ctx, 0, b.insert_element(a, v, ir.Constant(I32, index)))


@semantic("pinsrb")
def pinsrb(ctx: Insn) -> None:
    _insert(ctx, 8, imm8(ctx) & 15)


@semantic("pinsrw")
def pinsrw(ctx: Insn) -> None:
    _insert(ctx, 16, imm8(ctx))


@semantic("pinsrd")
def pinsrd(ctx: Insn) -> None:
    _insert(ctx, 32, imm8(ctx) & 3)


@semantic("pinsrq")
def pinsrq(ctx: Insn) -> None:
    _insert(ctx, 64, imm8(ctx) & 1)


@semantic("insertps")
def insertps(ctx: Insn) -> None:
    b = ctx.b
    imm = imm8(ctx)
    a = cast(ctx, rd(ctx, 0), V4I32)
    if ctx.is_mem(1):
        v = ctx.load(ctx.ea(1), 32)
    else:
        v = b.extract_element(cast(ctx, rd(ctx, 1), V4I32), ir.Constant(I32, (imm >> 6) & 3))
    r = b.insert_element(a, v, ir.Constant(I32, (imm >> 4) & 3))
    zmask = imm & 0xF
    if zmask:
        r = b.and_(r, ir.Constant(V4I32, [ir.Constant(I32, 0 if (zmask >> i) & 1 else 0xFFFFFFFF)
                                          for i in range(4)]))
    wr(ctx, 0, r)


# -- MXCSR ---------------------------------------------------------------------------
@semantic("ldmxcsr")
def ldmxcsr(ctx: Insn) -> None:
    set_mxcsr(ctx, ctx.load(ctx.ea(0), 32))


@semantic("stmxcsr")
def stmxcsr(ctx: Insn) -> None:
    ctx.store(ctx.ea(0), ctx.em.get("mxcsr"))


# -- capstone id aliasing of the SSE compare pseudo-ops ---------------------------------
# capstone 5 decodes "cmp<pred>{ps,pd,ss,sd}" (predicate folded into the mnemonic)
# with the ids CMPPD, CMPPS, CMPSB, CMPSD, CMPSQ, CMPSS, CMPSW, CMPXCHG16B for
# predicates 0..7, whatever the operand type.  CMPPD/CMPPS/CMPSS are registered by
# sse_float, CMPSD by string.py (dispatching to cmpsd_xmm); the other four belong to
# the string and cmpxchg16b semantics, so wrap those to divert xmm forms here.
_ALIASED = ("cmpsb", "cmpsw", "cmpsq", "cmpxchg16b")


def _install_cmp_alias_shim() -> None:
    from bttool.translator import registry
    from bttool.translator.semantics import binary, string  # noqa: F401  (register first)
    from bttool.translator.semantics import sse_float

    for name in _ALIASED:
        iid = getattr(X, "X86_INS_" + name.upper())
        orig = registry._TABLE.get(iid)
        if orig is None or getattr(orig, "_sse_cmp_shim", False):
            continue

        def shim(ctx: Insn, _orig=orig) -> None:
            if has_xmm(ctx):
                sse_float.cmp_fp(ctx)
            else:
                _orig(ctx)
        shim._sse_cmp_shim = True  # type: ignore[attr-defined]
        registry._TABLE[iid] = shim


_install_cmp_alias_shim()

__all__ = ["movsd_xmm", "cmpsd_xmm"]

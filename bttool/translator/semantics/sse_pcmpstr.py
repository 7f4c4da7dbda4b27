"""SSE4.2 packed string compares: pcmpistri pcmpistrm pcmpestri pcmpestrm.

General semantics (SDM vol. 2B "PCMPxSTRx", vol. 1 4.1): byte or word
elements, signed or unsigned, the four aggregations (equal any, ranges,
equal each, equal ordered), the four polarities, least/most significant
index or bit/expanded mask output, and CF ZF SF OF (AF = PF = 0).

The immediate is known at translation time, so only the data-dependent
part is emitted: the comparison matrix is built row by row with vector
compares (one splat of a needle element against the whole haystack per
row), then reduced with vector and/or; all generic IR.

When the code is compiled for an x86 target with SSE4.2 (the module says so,
see translate.py), the host's own instruction does the work instead, through
LLVM's ``llvm.x86.sse42.pcmp[ei]str*128`` intrinsics (one instruction
instead of dozens); the generic IR remains for every other target.
"""
from __future__ import annotations

from llvmlite import ir

from bttool.translator.operands import Insn
from bttool.translator.registry import semantic
from bttool.translator.semantics.sse_common import (
    I1, I32, I128, cast, imm8, mask_i32, rd, splat, vec, vconst, write_ymm)


def _broadcast(ctx: Insn, v: ir.Value, i: int, n: int) -> ir.Value:
    return ctx.b.shuffle_vector(v, v, mask_i32([i] * n))


def _implicit_len(ctx: Insn, v: ir.Value, n: int) -> ir.Value:
    """Index of the first zero element (n when none), as i32."""
    b = ctx.b
    z = b.bitcast(b.icmp_unsigned("==", v, splat(v.type, 0)), ir.IntType(n))
    z = b.or_(b.zext(z, I32), ir.Constant(I32, 1 << n))
    return ctx.em.intrinsic("llvm.cttz.i32", I32, [z, ir.Constant(I1, 0)])


def _explicit_len(ctx: Insn, reg: str, wide: bool, n: int) -> ir.Value:
    """|rax| or |rdx| (32 or 64 bits) saturated to n, as i32."""
    b = ctx.b
    v = ctx.gpr(reg, 64 if wide else 32)
    neg = b.icmp_signed("<", v, ir.Constant(v.type, 0))
    mag = b.select(neg, b.sub(ir.Constant(v.type, 0), v), v)
    big = b.icmp_unsigned(">", mag, ir.Constant(v.type, n))
    mag = b.select(big, ir.Constant(v.type, n), mag)
    return b.trunc(mag, I32) if v.type.width > 32 else mag


def _wide_lengths(ctx: Insn) -> bool:
    """pcmpestr*: lengths in rax/rdx (REX.W, or VEX.W for the VEX forms)
    rather than eax/edx."""
    vex = getattr(ctx, "vex", None)
    if vex is not None:
        return bool(vex.w)
    return bool(ctx.insn.rex & 0x8) if hasattr(ctx.insn, "rex") else False


def _write_mask(ctx: Insn, v128: ir.Value) -> None:
    """pcmp?strm's result to xmm0; the VEX forms zero bits 255:128 of ymm0."""
    if getattr(ctx, "vex", None) is not None:
        write_ymm(ctx, 0, v128)
    else:
        ctx.set_xmm(0, v128)


def _host_sse42(ctx: Insn) -> bool:
    """Whether the host's own pcmpXstrX may be used (LiftOptions.host_instructions)."""
    return "+sse4.2" in ctx.em.host_features


def _pcmpstr_host(ctx: Insn, explicit: bool, want_index: bool) -> None:
    """The host's pcmpXstrX: same instruction, same results."""
    b = ctx.b
    imm = imm8(ctx)
    n = 8 if imm & 1 else 16
    v16 = vec(8, 16)
    a = cast(ctx, rd(ctx, 0), v16)
    s = cast(ctx, rd(ctx, 1), v16)
    i8imm = ir.Constant(ir.IntType(8), imm)
    kind = "e" if explicit else "i"
    if explicit:
        # the saturated lengths (in range, the hardware reads them the same)
        wide = _wide_lengths(ctx)
        args = [a, _explicit_len(ctx, "rax", wide, n), s, _explicit_len(ctx, "rdx", wide, n), i8imm]
    else:
        args = [a, s, i8imm]

    def op(suffix: str, ret: ir.Type) -> ir.Value:
        return ctx.em.intrinsic(f"llvm.x86.sse42.pcmp{kind}str{suffix}128", ret, args)

    ctx.set_flag("cf", lambda: b.trunc(op("ic", I32), I1))
    ctx.set_flag("zf", lambda: b.trunc(op("iz", I32), I1))
    ctx.set_flag("sf", lambda: b.trunc(op("is", I32), I1))
    ctx.set_flag("of", lambda: b.trunc(op("io", I32), I1))
    ctx.set_flag("af", ir.Constant(I1, 0))
    ctx.set_flag("pf", ir.Constant(I1, 0))
    if want_index:
        ctx.set_gpr("rcx", op("i", I32))
    else:
        _write_mask(ctx, b.bitcast(op("m", v16), I128))


def _pcmpstr(ctx: Insn, explicit: bool, want_index: bool) -> None:
    if _host_sse42(ctx):
        _pcmpstr_host(ctx, explicit, want_index)
        return
    b = ctx.b
    imm = imm8(ctx)
    words = imm & 1
    signed = (imm >> 1) & 1
    agg = (imm >> 2) & 3
    polarity = (imm >> 4) & 3
    msb = (imm >> 6) & 1
    n = 8 if words else 16
    ety = vec(16 if words else 8, n)
    bty = ir.VectorType(I1, n)
    a = cast(ctx, rd(ctx, 0), ety)          # the "needle" / set / ranges (xmm1)
    s = cast(ctx, rd(ctx, 1), ety)          # the "haystack" (xmm2/m128)

    if explicit:
        wide = _wide_lengths(ctx)
        la = _explicit_len(ctx, "rax", wide, n)
        lb = _explicit_len(ctx, "rdx", wide, n)
    else:
        la = _implicit_len(ctx, a, n)
        lb = _implicit_len(ctx, s, n)

    iota = vconst(vec(32, n), range(n))

    def valid(length: ir.Value) -> ir.Value:
        ins = b.insert_element(ir.Constant(vec(32, n), None), length, ir.Constant(I32, 0))
        return b.icmp_unsigned("<", iota, b.shuffle_vector(ins, ins, mask_i32([0] * n)))

    va = valid(la)          # <n x i1>: element j of a is valid
    vb = valid(lb)          # element i of s is valid
    true_v = ir.Constant(bty, [ir.Constant(I1, 1)] * n)
    false_v = ir.Constant(bty, [ir.Constant(I1, 0)] * n)

    def a_valid(j: int) -> ir.Value:
        return _broadcast(ctx, va, j, n)

    def cmp(op: str, x, y):
        return b.icmp_signed(op, x, y) if signed else b.icmp_unsigned(op, x, y)

    if agg == 0:        # equal any: res[i] = OR_j (a[j] == s[i]), both valid
        acc = false_v
        for j in range(n):
            row = b.and_(b.icmp_unsigned("==", s, _broadcast(ctx, a, j, n)), a_valid(j))
            acc = b.or_(acc, row)
        res = b.and_(acc, vb)
    elif agg == 1:      # ranges: res[i] = OR_{j even} a[j] <= s[i] <= a[j+1]
        acc = false_v
        for j in range(0, n, 2):
            ge = b.and_(cmp(">=", s, _broadcast(ctx, a, j, n)), a_valid(j))
            le = b.and_(cmp("<=", s, _broadcast(ctx, a, j + 1, n)), a_valid(j + 1))
            acc = b.or_(acc, b.and_(ge, le))
        res = b.and_(acc, vb)
    elif agg == 2:      # equal each: res[i] = a[i] == s[i]; both invalid -> true
        eq = b.icmp_unsigned("==", a, s)
        both = b.and_(b.and_(va, vb), eq)
        neither = b.and_(b.xor(va, true_v), b.xor(vb, true_v))
        res = b.or_(both, neither)
    else:               # equal ordered: res[i] = AND_j (a[j] == s[i+j]) over valid a[j]
        acc = true_v
        for j in range(n):
            # eq_j[k] = s[k] valid and == a[j]; shifted so lane i reads k = i + j,
            # lanes past the end of s read true
            eq = b.and_(b.icmp_unsigned("==", s, _broadcast(ctx, a, j, n)), vb)
            if j:
                eq = b.shuffle_vector(eq, true_v, mask_i32([i + j for i in range(n)]))
            term = b.or_(eq, b.xor(a_valid(j), true_v))
            acc = b.and_(acc, term)
        res = acc

    if polarity == 1:
        res = b.xor(res, true_v)
    elif polarity == 3:
        res = b.xor(res, vb)

    nty = ir.IntType(n)
    bits = b.bitcast(res, nty)

    ctx.set_flag("cf", b.icmp_unsigned("!=", bits, ir.Constant(nty, 0)))
    ctx.set_flag("zf", b.icmp_unsigned("<", lb, ir.Constant(I32, n)))
    ctx.set_flag("sf", b.icmp_unsigned("<", la, ir.Constant(I32, n)))
    ctx.set_flag("of", b.trunc(bits, I1))
    ctx.set_flag("af", ir.Constant(I1, 0))
    ctx.set_flag("pf", ir.Constant(I1, 0))

    if want_index:
        wide_bits = b.or_(b.zext(bits, I32), ir.Constant(I32, 1 << n))   # n when none
        if msb:
            lz = ctx.em.intrinsic("llvm.ctlz.i32", I32, [b.zext(bits, I32), ir.Constant(I1, 0)])
            idx = b.sub(ir.Constant(I32, 31), lz)
            idx = b.select(b.icmp_unsigned("==", bits, ir.Constant(nty, 0)), ir.Constant(I32, n), idx)
        else:
            idx = ctx.em.intrinsic("llvm.cttz.i32", I32, [wide_bits, ir.Constant(I1, 0)])
        ctx.set_gpr("rcx", idx)
    elif msb:
        _write_mask(ctx, b.bitcast(b.sext(res, ety), I128))
    else:
        _write_mask(ctx, b.zext(bits, I128))


@semantic("pcmpistri")
def pcmpistri(ctx: Insn) -> None:
    _pcmpstr(ctx, explicit=False, want_index=True)


@semantic("pcmpistrm")
def pcmpistrm(ctx: Insn) -> None:
    _pcmpstr(ctx, explicit=False, want_index=False)


@semantic("pcmpestri")
def pcmpestri(ctx: Insn) -> None:
    _pcmpstr(ctx, explicit=True, want_index=True)


@semantic("pcmpestrm")
def pcmpestrm(ctx: Insn) -> None:
    _pcmpstr(ctx, explicit=True, want_index=False)


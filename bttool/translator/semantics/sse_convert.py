"""SSE conversions: cvtsi2ss cvtsi2sd cvtss2sd cvtsd2ss cvt(t)ss2si
cvt(t)sd2si cvtdq2pd cvtdq2ps cvtps2pd cvtpd2ps cvt(t)ps2dq cvt(t)pd2dq.

Conversions without "t" round by MXCSR.RC, as do the inexact int->float and
double->float ones; float->int results out of range (or NaN) are the integer
indefinite value 0x80000000 / 0x8000000000000000.  The MMX-era forms
(cvtpi2ps, cvtpi2pd, cvt(t)ps2pi, cvt(t)pd2pi) convert between two int32
lanes of an mm register (or m64) and an xmm register (or memory).
"""
from __future__ import annotations

from llvmlite import ir

from bttool.translator.operands import Insn, UnsupportedOperand
from bttool.translator.registry import semantic
from bttool.translator.semantics import sse_fpcore as fp
from bttool.translator.semantics.sse_common import (
    F32, F64, I32, I64, V2F64, V4F32, V4I32, cast, fvec, is_xmm, merge_low, rd, vec, wr,
    zext128)


def _xmm_dst(ctx: Insn) -> None:
    if not is_xmm(ctx, 0):
        raise UnsupportedOperand("MMX conversion")


@semantic("cvtsi2ss", "cvtsi2sd")
def cvtsi2f(ctx: Insn) -> None:
    _xmm_dst(ctx)
    b = ctx.b
    if ctx.is_mem(1):
        bits = ctx.ops[1].size * 8
        x = ctx.load(ctx.ea(1), bits if bits in (32, 64) else 32)
    else:
        x = ctx.read(1)
    ft = F32 if ctx.mnemonic.endswith("ss") else F64
    r = fp.int_to_fp(ctx, x, ft)
    wr(ctx, 0, merge_low(ctx, rd(ctx, 0), b.bitcast(r, ir.IntType(32 if ft == F32 else 64))))


@semantic("cvtss2sd")
def cvtss2sd(ctx: Insn) -> None:
    b = ctx.b
    f = fp.to_float(ctx, rd(ctx, 1, 32), 32, False)
    r = fp.widen(ctx, f, F64)
    wr(ctx, 0, merge_low(ctx, rd(ctx, 0), b.bitcast(r, I64)))


@semantic("cvtsd2ss")
def cvtsd2ss(ctx: Insn) -> None:
    b = ctx.b
    d = fp.to_float(ctx, rd(ctx, 1, 64), 64, False)
    r = fp.narrow(ctx, d, F32)
    wr(ctx, 0, merge_low(ctx, rd(ctx, 0), b.bitcast(r, I32)))


def _f2si(src_bits: int, truncate: bool):
    def fn(ctx: Insn) -> None:
        x = fp.to_float(ctx, rd(ctx, 1, src_bits), src_bits, False)
        ctx.write(0, fp.fp_to_int(ctx, x, ctx.bits(0), truncate))
    return fn


semantic("cvtss2si")(_f2si(32, False))
semantic("cvttss2si")(_f2si(32, True))
semantic("cvtsd2si")(_f2si(64, False))
semantic("cvttsd2si")(_f2si(64, True))


@semantic("cvtdq2pd")
def cvtdq2pd(ctx: Insn) -> None:
    _xmm_dst(ctx)
    b = ctx.b
    v = b.bitcast(b.trunc(rd(ctx, 1, 64), I64), vec(32, 2))
    wr(ctx, 0, fp.int_to_fp(ctx, v, V2F64))


@semantic("cvtdq2ps")
def cvtdq2ps(ctx: Insn) -> None:
    _xmm_dst(ctx)
    wr(ctx, 0, fp.int_to_fp(ctx, cast(ctx, rd(ctx, 1), V4I32), V4F32))


@semantic("cvtps2pd")
def cvtps2pd(ctx: Insn) -> None:
    _xmm_dst(ctx)
    b = ctx.b
    v = b.bitcast(b.trunc(rd(ctx, 1, 64), I64), ir.VectorType(F32, 2))
    wr(ctx, 0, fp.widen(ctx, v, V2F64))


@semantic("cvtpd2ps")
def cvtpd2ps(ctx: Insn) -> None:
    b = ctx.b
    r = fp.narrow(ctx, cast(ctx, rd(ctx, 1), V2F64), ir.VectorType(F32, 2))
    wr(ctx, 0, zext128(ctx, b.bitcast(r, I64)))


def _ps2dq(truncate: bool):
    def fn(ctx: Insn) -> None:
        _xmm_dst(ctx)
        wr(ctx, 0, fp.fp_to_int(ctx, cast(ctx, rd(ctx, 1), V4F32), 32, truncate))
    return fn


def _pd2dq(truncate: bool):
    def fn(ctx: Insn) -> None:
        _xmm_dst(ctx)
        b = ctx.b
        r = fp.fp_to_int(ctx, cast(ctx, rd(ctx, 1), V2F64), 32, truncate)
        wr(ctx, 0, zext128(ctx, b.bitcast(r, I64)))
    return fn


semantic("cvtps2dq")(_ps2dq(False))
semantic("cvttps2dq")(_ps2dq(True))
semantic("cvtpd2dq")(_pd2dq(False))
semantic("cvttpd2dq")(_pd2dq(True))


# -- the MMX-era forms: two int32 lanes in an mm register or m64 -----------------------------
_V2I32 = vec(32, 2)


@semantic("cvtpi2ps")
def cvtpi2ps(ctx: Insn) -> None:
    """Two int32 to two floats in the low quadword; the high one is kept."""
    b = ctx.b
    r = fp.int_to_fp(ctx, cast(ctx, rd(ctx, 1, bits=64), _V2I32), fvec(32, 2))
    wr(ctx, 0, merge_low(ctx, rd(ctx, 0, bits=128), b.bitcast(r, I64)))


@semantic("cvtpi2pd")
def cvtpi2pd(ctx: Insn) -> None:
    wr(ctx, 0, fp.int_to_fp(ctx, cast(ctx, rd(ctx, 1, bits=64), _V2I32), V2F64))


def _to_pi(src_bits: int, truncate: bool):
    """cvt(t)ps2pi (two floats of xmm/m64) and cvt(t)pd2pi (two doubles of
    xmm/m128) to two int32 in an mm register."""
    def fn(ctx: Insn) -> None:
        x = cast(ctx, rd(ctx, 1, bits=2 * src_bits), fvec(src_bits, 2))
        wr(ctx, 0, fp.fp_to_int(ctx, x, 32, truncate))
    return fn


semantic("cvtps2pi")(_to_pi(32, False))
semantic("cvttps2pi")(_to_pi(32, True))
semantic("cvtpd2pi")(_to_pi(64, False))
semantic("cvttpd2pi")(_to_pi(64, True))

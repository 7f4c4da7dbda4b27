"""The MMX instructions that have no SSE twin to share a semantic function
with: emms, pshufw, movq2dq, movdq2q, movntq, and the byte-masked stores
maskmovq and maskmovdqu (the SSE2 one shares the masked-store rule).

Everything else with an mm operand (padd*, pcmp*, shifts, packs, movd/movq,
the SSSE3 forms, cvtpi2ps...) runs the SSE semantic functions at 64 bits
(sse_common.vec_bits); the aliasing of mm registers onto the x87 registers
is kept in mmx_regs.py.  3DNow! (0F 0F, femms) is not implemented: the
virtual CPU model (runtime/cpuid.py) does not advertise it.
"""
from __future__ import annotations

from llvmlite import ir

from bttool.ir.emitter import I64
from bttool.translator.operands import Insn
from bttool.translator.registry import semantic
from bttool.translator.semantics.mmx_regs import leave_mmx_state
from bttool.translator.semantics.sse_common import (
    cast, imm8, lanes, mask_i32, rd, splat, wr, zext_to)

_SEGMENT_PREFIX_BASE = {0x64: "fs_base", 0x65: "gs_base"}


@semantic("emms")
def emms(ctx: Insn) -> None:
    leave_mmx_state(ctx)


@semantic("pshufw")
def pshufw(ctx: Insn) -> None:
    """Word i of the result = source word (imm8 >> 2i) & 3."""
    imm = imm8(ctx)
    s = cast(ctx, rd(ctx, 1), lanes(ctx, 16))
    wr(ctx, 0, ctx.b.shuffle_vector(s, s, mask_i32([(imm >> (2 * i)) & 3 for i in range(4)])))


@semantic("movq2dq")
def movq2dq(ctx: Insn) -> None:
    """xmm = mm zero-extended."""
    wr(ctx, 0, zext_to(ctx, rd(ctx, 1, bits=64), 128))


@semantic("movdq2q")
def movdq2q(ctx: Insn) -> None:
    """mm = the low quadword of an xmm."""
    wr(ctx, 0, rd(ctx, 1, bits=64))


@semantic("movntq")
def movntq(ctx: Insn) -> None:
    """A non-temporal store is a plain store here."""
    ctx.store(ctx.ea(0), rd(ctx, 1))


def _rdi_address(ctx: Insn) -> ir.Value:
    """DS:rDI, the implicit destination of maskmovq/maskmovdqu (EDI with a
    67 prefix; FS/GS base with a segment override)."""
    b = ctx.b
    if ctx.insn.addr_size == 4:
        addr = b.zext(ctx.gpr("rdi", 32), I64)
    else:
        addr = ctx.gpr("rdi")
    seg = _SEGMENT_PREFIX_BASE.get(ctx.insn.prefix[1])
    return b.add(addr, ctx.em.get(seg)) if seg else addr


@semantic("maskmovq", "maskmovdqu")
def maskmov(ctx: Insn) -> None:
    """Store the bytes of the first operand whose byte in the second has
    its top bit set to [rDI]; the other bytes of memory are not touched."""
    b = ctx.b
    ty = lanes(ctx, 8)
    data = cast(ctx, rd(ctx, 0), ty)
    select = b.icmp_signed("<", cast(ctx, rd(ctx, 1), ty), splat(ty, 0))
    ctx.em.masked_store(_rdi_address(ctx), data, select)


__all__ = ["emms", "pshufw", "movq2dq", "movdq2q", "movntq", "maskmov"]

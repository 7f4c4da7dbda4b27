"""XSAVE family: xsave, xrstor (and their REX.W forms), xsaveopt, xsavec.

The XSAVE area in its standard (non-compacted) format (Intel SDM vol. 1,
ch. 13): the legacy region (bytes 0-511, the fxsave image: x87 state, MXCSR
and MXCSR_MASK, xmm0-15), the XSAVE header at 512 (XSTATE_BV at 512,
XCOMP_BV at 520) and the AVX state (YMM_Hi128: bits 255:128 of ymm0-15,
``ymmh0-15``) at 576.  The virtual CPU's XCR0 is x87|SSE|AVX (7) on a model
with AVX, else x87|SSE (runtime/cpuid.py); the requested-feature bitmap is
RFBM = EDX:EAX & XCR0 (XCR0 has no bit in EDX).

* The whole family is #UD unless the model has XSAVE (x86-64-v3 has;
  x86-64-v2 has not), and #GP when the area is not 64-byte aligned.
* xsave: writes every component RFBM names (the x87 part of the legacy
  region for bit 0, xmm for bit 1, MXCSR and MXCSR_MASK for bit 1 or 2,
  ymmh for bit 2; the legacy region's bytes 416-511 and the header's other
  fields are not written), and XSTATE_BV = (old & ~RFBM) | (XINUSE & RFBM).
  XINUSE, which components are not in their initial configuration, is
  decided from the values, as the AMD hosts this was compared with do: x87
  unless FCW is 0x37F, FSW 0, every register empty and all of R0-R7 zero
  (FOP/FIP/FDP are not tracked: 0); SSE unless every xmm register is 0
  (MXCSR does not count); AVX unless every ymmh is 0.  (Intel CPUs track
  XINUSE by use instead; both are what the SDM allows: XSTATE_BV[i] = 0
  only for a component in its initial configuration.)
* xrstor, standard form (XCOMP_BV bit 63 clear): #GP when XCOMP_BV or the
  header's bytes 16-23 are not 0, when XSTATE_BV has a bit outside XCR0,
  or when MXCSR (loaded if RFBM bit 1 or 2 is set, whatever XSTATE_BV
  says) has a reserved bit; then each RFBM component is loaded when its
  XSTATE_BV bit is set and initialised when not (x87: FCW 0x37F, FSW 0,
  TOP 0, all empty, R0-R7 zero; SSE: xmm 0; AVX: ymmh 0).
* xrstor, compacted form (XCOMP_BV bit 63 set; only on a model with
  XSAVEC, else #GP as above): #GP when XCOMP_BV names a component outside
  XCR0, when XSTATE_BV has a bit XCOMP_BV lacks, when any of the header's
  bytes 16-63 is not 0, or when MXCSR is loaded (RFBM bit 1 and XSTATE_BV
  bit 1 both set; RFBM bit 2 does not count) with a reserved bit; an SSE
  component initialised sets MXCSR to 0x1F80 too.  With components up to
  AVX, the compacted layout puts AVX where the standard one does (576).
* xsaveopt: as xsave (XSAVEOPT may skip components, never must), #UD
  unless the model has "xsaveopt" (x86-64-v3 has, as Haswell).
* xsavec (a model with "xsavec": ``x86-64-v3+xsavec``): the compacted
  format with the init optimisation, as the SDM's pseudocode has it: the
  components saved are RFBM & XINUSE, plus SSE when RFBM bit 1 is set and
  MXCSR is not 0x1F80 (MXCSR and MXCSR_MASK are saved with SSE, and only
  with it); XSTATE_BV = those components, XCOMP_BV = RFBM | 1 << 63; the
  header's bytes 16-63 and the legacy region's bytes 416-511 are not
  written.
* xsaves, xrstors: #UD, as on both models, which report neither (they are
  privileged: the kernel's, not a user program's).
"""
from __future__ import annotations

from llvmlite import ir

from bttool.ir.emitter import I64, const
from bttool.ir.state import EXIT_FAULT, FAULT_GP, FAULT_UD
from bttool.translator.cpumodel import (XCR0_AVX, XCR0_SSE, XCR0_X87, XSAVE_AVX_OFFSET,
                                       XSAVE_HEADER)
from bttool.translator.operands import Insn, UnsupportedOperand
from bttool.translator.registry import semantic
from bttool.translator.semantics.x87 import X87
from bttool.translator.semantics.x87_env import (load_mxcsr_part, load_x87_part, load_xmm_part,
                                                 raw_phys, set_raw_phys, store_mxcsr_part,
                                                 store_x87_part, store_xmm_part, xmm_count)

X87_BIT, SSE_BIT, AVX_BIT = XCR0_X87, XCR0_SSE, XCR0_AVX
HEADER, AVX_OFFSET = XSAVE_HEADER, XSAVE_AVX_OFFSET


def xcr0(ctx: Insn) -> int:
    """The virtual CPU's XCR0 (cpumodel.CpuModel.xcr0)."""
    return ctx.model.xcr0


def _addr(ctx: Insn, base: ir.Value, off: int) -> ir.Value:
    return ctx.b.add(base, const(64, off)) if off else base


def _gated(ctx: Insn, feature: str) -> bool:
    """#UD unless the model has ``feature``; True when the path goes on."""
    if ctx.model.has(feature):
        return True
    ctx.leave(ctx.pc, EXIT_FAULT, FAULT_UD)
    return False


def _area(ctx: Insn) -> ir.Value:
    """The area's address; #GP unless it is 64-byte aligned."""
    b = ctx.b
    base = ctx.ea(0)
    misaligned = b.icmp_unsigned("!=", b.and_(base, const(64, 63)), const(64, 0))
    with b.if_then(misaligned, likely=False):
        ctx.leave(ctx.pc, EXIT_FAULT, FAULT_GP)
    return base


def _rfbm(ctx: Insn) -> ir.Value:
    """EDX:EAX & XCR0, as an i64 (XCR0 fits in EAX)."""
    b = ctx.b
    return b.and_(b.zext(ctx.gpr("rax", 32), I64), const(64, xcr0(ctx)))


def _has(ctx: Insn, mask: ir.Value, bits: int) -> ir.Value:
    b = ctx.b
    return b.icmp_unsigned("!=", b.and_(mask, const(64, bits)), const(64, 0))


def _all_zero(ctx: Insn, values: list[ir.Value]) -> ir.Value:
    b = ctx.b
    acc = values[0]
    for v in values[1:]:
        acc = b.or_(acc, v)
    return b.icmp_unsigned("==", acc, ir.Constant(acc.type, 0))


def xinuse(ctx: Insn) -> ir.Value:
    """Which components are not in their initial configuration (i64 bits)."""
    b = ctx.b
    x = X87(ctx)
    n = xmm_count(ctx)
    x87_init = b.and_(b.and_(b.icmp_unsigned("==", x.cw(), const(16, 0x037F)),
                             b.icmp_unsigned("==", x.status_word(), const(16, 0))),
                      b.and_(b.icmp_unsigned("==", x.tag(), const(8, 0xFF)),
                             _all_zero(ctx, [raw_phys(x, j) for j in range(8)])))
    sse_init = _all_zero(ctx, [ctx.em.get(f"xmm{i}") for i in range(n)])
    bits = b.or_(b.select(x87_init, const(64, 0), const(64, X87_BIT)),
                 b.select(sse_init, const(64, 0), const(64, SSE_BIT)))
    if xcr0(ctx) & AVX_BIT:
        avx_init = _all_zero(ctx, [ctx.em.get(f"ymmh{i}") for i in range(n)])
        bits = b.or_(bits, b.select(avx_init, const(64, 0), const(64, AVX_BIT)))
    return bits


def _when(ctx: Insn, cond: ir.Value, then) -> None:
    with ctx.b.if_then(cond):
        then()


def _save(ctx: Insn) -> None:
    b = ctx.b
    base = _area(ctx)
    rfbm = _rfbm(ctx)
    x = X87(ctx)
    _when(ctx, _has(ctx, rfbm, X87_BIT), lambda: store_x87_part(ctx, x, base))
    _when(ctx, _has(ctx, rfbm, SSE_BIT | AVX_BIT), lambda: store_mxcsr_part(ctx, base))
    _when(ctx, _has(ctx, rfbm, SSE_BIT), lambda: store_xmm_part(ctx, base))
    if xcr0(ctx) & AVX_BIT:
        def avx() -> None:
            for i in range(xmm_count(ctx)):
                ctx.store(_addr(ctx, base, AVX_OFFSET + 16 * i), ctx.em.get(f"ymmh{i}"))
        _when(ctx, _has(ctx, rfbm, AVX_BIT), avx)
    bv_addr = _addr(ctx, base, HEADER)
    old = ctx.load(bv_addr, 64)
    kept = b.and_(old, b.xor(rfbm, const(64, -1)))
    ctx.store(bv_addr, b.or_(kept, b.and_(xinuse(ctx), rfbm)))


def _init_x87(ctx: Insn, x: X87) -> None:
    """The x87 initial configuration (XRSTOR's, which also zeroes R0-R7)."""
    ctx.em.set("fpu_cw", const(16, 0x037F))
    x.set_sw(const(16, 0))
    ctx.em.set("fpu_top", const(8, 0))
    x.set_tag(const(8, 0xFF))
    for j in range(8):
        set_raw_phys(x, j, ir.Constant(ir.IntType(80), 0))


COMPACTED = 1 << 63         # XCOMP_BV bit 63: the area is in the compacted format
MXCSR_INIT = 0x1F80


def _restore(ctx: Insn) -> None:
    b = ctx.b
    base = _area(ctx)
    rfbm = _rfbm(ctx)
    bv = ctx.load(_addr(ctx, base, HEADER), 64)
    comp = ctx.load(_addr(ctx, base, HEADER + 8), 64)
    if not ctx.model.has("xsavec"):
        _restore_standard(ctx, base, rfbm, bv, comp)
        return
    compacted = _has(ctx, comp, COMPACTED)
    with b.if_else(compacted) as (then, otherwise):
        with then:
            _restore_compacted(ctx, base, rfbm, bv, comp)
        with otherwise:
            _restore_standard(ctx, base, rfbm, bv, comp)


def _restore_standard(ctx: Insn, base: ir.Value, rfbm: ir.Value, bv: ir.Value,
                      comp: ir.Value) -> None:
    b = ctx.b
    reserved = ctx.load(_addr(ctx, base, HEADER + 16), 64)
    bad = b.or_(b.icmp_unsigned("!=", b.or_(comp, reserved), const(64, 0)),
                _has(ctx, bv, ~xcr0(ctx)))
    with b.if_then(bad, likely=False):
        ctx.leave(ctx.pc, EXIT_FAULT, FAULT_GP)
    # MXCSR first: it may #GP, and then nothing may have changed
    _when(ctx, _has(ctx, rfbm, SSE_BIT | AVX_BIT), lambda: load_mxcsr_part(ctx, base))
    _load_components(ctx, base, rfbm, bv)


def _restore_compacted(ctx: Insn, base: ir.Value, rfbm: ir.Value, bv: ir.Value,
                       comp: ir.Value) -> None:
    b = ctx.b
    reserved = [ctx.load(_addr(ctx, base, HEADER + off), 64) for off in range(16, 64, 8)]
    bad = b.or_(_has(ctx, comp, ~(xcr0(ctx) | COMPACTED)),
                b.or_(_has_outside(ctx, bv, comp),
                      b.not_(_all_zero(ctx, reserved))))
    with b.if_then(bad, likely=False):
        ctx.leave(ctx.pc, EXIT_FAULT, FAULT_GP)
    sse_load = _has(ctx, b.and_(rfbm, bv), SSE_BIT)
    sse_init = _has(ctx, b.and_(rfbm, b.xor(bv, const(64, -1))), SSE_BIT)
    # MXCSR first, as in the standard form; only SSE's own bits decide
    _when(ctx, sse_load, lambda: load_mxcsr_part(ctx, base))
    _when(ctx, sse_init, lambda: ctx.em.set("mxcsr", const(32, MXCSR_INIT)))
    _load_components(ctx, base, rfbm, bv)


def _has_outside(ctx: Insn, bits: ir.Value, allowed: ir.Value) -> ir.Value:
    """``bits`` has a bit that ``allowed`` lacks (i1)."""
    b = ctx.b
    return b.icmp_unsigned("!=", b.and_(bits, b.xor(allowed, const(64, -1))), const(64, 0))


def _load_components(ctx: Insn, base: ir.Value, rfbm: ir.Value, bv: ir.Value) -> None:
    """Each RFBM component loaded from the area where XSTATE_BV has it, set
    to its initial configuration where not (AVX at 576 in both formats)."""
    b = ctx.b
    load = b.and_(rfbm, bv)
    init = b.and_(rfbm, b.xor(bv, const(64, -1)))
    x = X87(ctx)
    _when(ctx, _has(ctx, load, X87_BIT), lambda: load_x87_part(ctx, x, base))
    _when(ctx, _has(ctx, init, X87_BIT), lambda: _init_x87(ctx, x))
    n = xmm_count(ctx)
    zero = ir.Constant(ir.IntType(128), 0)

    def init_xmm() -> None:
        for i in range(n):
            ctx.em.set(f"xmm{i}", zero)
    _when(ctx, _has(ctx, load, SSE_BIT), lambda: load_xmm_part(ctx, base))
    _when(ctx, _has(ctx, init, SSE_BIT), init_xmm)
    if xcr0(ctx) & AVX_BIT:
        def load_avx() -> None:
            for i in range(n):
                ctx.em.set(f"ymmh{i}", ctx.load(_addr(ctx, base, AVX_OFFSET + 16 * i), 128))

        def init_avx() -> None:
            for i in range(n):
                ctx.em.set(f"ymmh{i}", zero)
        _when(ctx, _has(ctx, load, AVX_BIT), load_avx)
        _when(ctx, _has(ctx, init, AVX_BIT), init_avx)


@semantic("xsave", "xsave64")
def xsave(ctx: Insn) -> None:
    if _gated(ctx, "xsave"):
        _save(ctx)


@semantic("xsaveopt", "xsaveopt64")
def xsaveopt(ctx: Insn) -> None:
    if _gated(ctx, "xsave") and _gated(ctx, "xsaveopt"):
        _save(ctx)


@semantic("xrstor", "xrstor64")
def xrstor(ctx: Insn) -> None:
    if _gated(ctx, "xsave"):
        _restore(ctx)


def _save_compacted(ctx: Insn) -> None:
    b = ctx.b
    base = _area(ctx)
    rfbm = _rfbm(ctx)
    mxcsr_set = b.icmp_unsigned("!=", ctx.em.get("mxcsr"), const(32, MXCSR_INIT))
    saved = b.and_(rfbm, b.or_(xinuse(ctx), b.select(mxcsr_set, const(64, SSE_BIT), const(64, 0))))
    x = X87(ctx)
    _when(ctx, _has(ctx, saved, X87_BIT), lambda: store_x87_part(ctx, x, base))

    def sse() -> None:
        store_mxcsr_part(ctx, base)
        store_xmm_part(ctx, base)
    _when(ctx, _has(ctx, saved, SSE_BIT), sse)
    if xcr0(ctx) & AVX_BIT:
        def avx() -> None:
            for i in range(xmm_count(ctx)):
                ctx.store(_addr(ctx, base, AVX_OFFSET + 16 * i), ctx.em.get(f"ymmh{i}"))
        _when(ctx, _has(ctx, saved, AVX_BIT), avx)
    ctx.store(_addr(ctx, base, HEADER), saved)
    ctx.store(_addr(ctx, base, HEADER + 8), b.or_(rfbm, const(64, COMPACTED)))


@semantic("xsavec", "xsavec64")
def xsavec(ctx: Insn) -> None:
    if _gated(ctx, "xsave") and _gated(ctx, "xsavec"):
        _save_compacted(ctx)


# privileged instructions of a feature neither model has
@semantic("xsaves", "xsaves64", "xrstors", "xrstors64")
def supervisor(ctx: Insn) -> None:
    if _gated(ctx, "xsave") and _gated(ctx, "xsaves"):
        raise UnsupportedOperand(f"{ctx.mnemonic}: supervisor state")


__all__ = ["xcr0", "xinuse", "HEADER", "AVX_OFFSET"]

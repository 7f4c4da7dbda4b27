"""x87 floating point, part 3: environment and state images.

* fnstenv / fldenv: the 28-byte protected-mode image (what 64-bit mode uses
  without an operand-size prefix; the 14-byte format an operand-size prefix
  selects is not implemented and traps): control, status (with TOP) and full
  tag words, each in a dword whose upper half reads 0xFFFF as on the hardware.
  The last-instruction/operand pointers and the opcode are not tracked and
  are stored as 0 (fldenv ignores them).  fnstenv then masks all exceptions.
* fnsave / frstor: the environment followed by ST0..ST7 (10 bytes each), 108
  bytes; fnsave then reinitialises the FPU.
* fxsave / fxrstor (and the REX.W forms): the 512-byte image with the
  abridged tag byte, MXCSR, MXCSR_MASK (0xFFFF), ST0..ST7 in 16-byte slots and
  xmm0..xmm15 (xmm0..xmm7 in 32-bit mode); bytes 416-511 are not written.
  FOP/FIP/FDP are stored as 0.  A loaded MXCSR with a reserved bit set is
  #GP; the 16-byte alignment is not checked.  The image is the legacy region
  of an XSAVE area, and XSAVE/XRSTOR (xsave.py) save and load it by the same
  three parts: ``store_x87_part``/``load_x87_part`` (bytes 0-23 and
  ST0..ST7), ``store_mxcsr_part`` (bytes 24-31) and
  ``store_xmm_part``/``load_xmm_part`` (bytes 160-415).  They copy the
  registers' 80 bits as integers, so no x86_fp80 value is involved.
"""
from __future__ import annotations

from llvmlite import ir

from bttool.ir.emitter import I16, I32, I128, const
from bttool.translator.operands import Insn, UnsupportedOperand
from bttool.translator.registry import semantic
from bttool.translator.semantics.sse_common import MXCSR_MASK, set_mxcsr
from bttool.translator.semantics.x87 import FP80, I80, X87, classify, reset

ENV_SIZE = 28


def _env_base(ctx: Insn) -> ir.Value:
    """Address of the environment image; the 16-bit (14-byte) format chosen
    by an operand-size prefix is not implemented (the insn traps)."""
    if ctx.insn.prefix[2] == 0x66:
        raise UnsupportedOperand("16-bit x87 environment format")
    return ctx.ea(0)


def _addr(ctx: Insn, base: ir.Value, off: int) -> ir.Value:
    return ctx.b.add(base, const(64, off)) if off else base


def full_tag_word(x: X87) -> ir.Value:
    """Two bits per physical register: 00 valid, 01 zero, 10 special
    (NaN, infinity, denormal, unsupported), 11 empty."""
    b = x.b
    tw = const(16, 0)
    tag = x.tag()
    for j in range(8):
        _, zero, _, normal, _, _, _ = classify(b, x.load_phys(j))
        empty = b.trunc(b.lshr(tag, const(8, j)), ir.IntType(1))
        t = b.select(zero, const(16, 1), b.select(normal, const(16, 0), const(16, 2)))
        t = b.select(empty, const(16, 3), t)
        tw = b.or_(tw, b.shl(t, const(16, 2 * j)))
    return tw


def load_full_tag_word(x: X87, tw: ir.Value) -> None:
    b = x.b
    tag = const(8, 0)
    for j in range(8):
        t = b.and_(b.lshr(tw, const(16, 2 * j)), const(16, 3))
        empty = b.icmp_unsigned("==", t, const(16, 3))
        tag = b.or_(tag, b.select(empty, const(8, 1 << j), const(8, 0)))
    x.set_tag(tag)


def store_env(ctx: Insn, x: X87, base: ir.Value) -> None:
    b = ctx.b
    hi = const(32, 0xFFFF0000)

    def word(v: ir.Value) -> ir.Value:
        return b.or_(b.zext(v, I32), hi)

    ctx.store(base, word(x.cw()))
    ctx.store(_addr(ctx, base, 4), word(x.status_word()))
    ctx.store(_addr(ctx, base, 8), word(full_tag_word(x)))
    ctx.store(_addr(ctx, base, 12), const(64, 0))    # FIP, FCS + FOP
    ctx.store(_addr(ctx, base, 20), const(32, 0))    # FDP
    ctx.store(_addr(ctx, base, 24), hi)              # FDS


def load_env(ctx: Insn, x: X87, base: ir.Value) -> None:
    x.load_cw(ctx.load(base, 16))
    x.load_status_word(ctx.load(_addr(ctx, base, 4), 16))
    load_full_tag_word(x, ctx.load(_addr(ctx, base, 8), 16))


@semantic("fnstenv")
def fnstenv(ctx: Insn) -> None:
    x = X87(ctx)
    store_env(ctx, x, _env_base(ctx))
    ctx.em.set("fpu_cw", ctx.b.or_(x.cw(), const(16, 0x3F)))


@semantic("fldenv")
def fldenv(ctx: Insn) -> None:
    load_env(ctx, X87(ctx), _env_base(ctx))


@semantic("fnsave")
def fnsave(ctx: Insn) -> None:
    x = X87(ctx)
    base = _env_base(ctx)
    store_env(ctx, x, base)
    for i in range(8):
        ctx.store(_addr(ctx, base, ENV_SIZE + 10 * i), x.load_phys(x.phys(i)))
    reset(x)


@semantic("frstor")
def frstor(ctx: Insn) -> None:
    x = X87(ctx)
    base = _env_base(ctx)
    load_env(ctx, x, base)
    for i in range(8):
        x.store_phys(x.phys(i), ctx.em.load(_addr(ctx, base, ENV_SIZE + 10 * i), FP80))


def xmm_count(ctx: Insn) -> int:
    """The xmm registers of the mode: 16 in 64-bit mode, 8 in 32-bit mode."""
    return 16 if ctx.mode == 64 else 8


# the legacy region: MXCSR and MXCSR_MASK, ST0 (16 bytes each), xmm0 (16 each)
LEGACY_MXCSR, LEGACY_ST0, LEGACY_XMM0 = 24, 32, 160


def raw_phys(x: X87, j: int | ir.Value) -> ir.Value:
    """Physical register ``j``'s 80 bits as an integer."""
    x.em.note_register_file(write=False)
    v = x.b.load(x.reg_ptr(j), typ=I80)
    v.align = 16
    return v


def set_raw_phys(x: X87, j: int | ir.Value, v: ir.Value) -> None:
    """Set physical register ``j`` to the 80 bits of integer ``v`` (its
    slot's other 6 bytes 0, as a loaded image leaves them)."""
    x.em.note_register_file(write=True)
    s = x.b.store(x.b.zext(v, I128), x.reg_ptr(j))
    s.align = 16


def store_x87_part(ctx: Insn, x: X87, base: ir.Value) -> None:
    """The x87 state into the legacy region at ``base``: FCW, FSW, the
    abridged tag byte, FOP/FIP/FDP (0) and ST0..ST7 (80 bits, then 6 zero
    bytes)."""
    b = ctx.b
    ctx.store(base, x.cw())
    ctx.store(_addr(ctx, base, 2), x.status_word())
    ctx.store(_addr(ctx, base, 4), b.zext(b.xor(x.tag(), const(8, 0xFF)), I16))
    ctx.store(_addr(ctx, base, 6), const(16, 0))       # FOP
    ctx.store(_addr(ctx, base, 8), const(128, 0))      # FIP, FDP
    for i in range(8):
        ctx.store(_addr(ctx, base, LEGACY_ST0 + 16 * i), b.zext(raw_phys(x, x.phys(i)), I128))


def load_x87_part(ctx: Insn, x: X87, base: ir.Value) -> None:
    """The x87 state from the legacy region at ``base`` (FOP/FIP/FDP are
    ignored)."""
    b = ctx.b
    x.load_cw(ctx.load(base, 16))
    x.load_status_word(ctx.load(_addr(ctx, base, 2), 16))
    x.set_tag(b.xor(ctx.load(_addr(ctx, base, 4), 8), const(8, 0xFF)))
    for i in range(8):
        set_raw_phys(x, x.phys(i), ctx.load(_addr(ctx, base, LEGACY_ST0 + 16 * i), 80))


def store_mxcsr_part(ctx: Insn, base: ir.Value) -> None:
    ctx.store(_addr(ctx, base, LEGACY_MXCSR), ctx.em.get("mxcsr"))
    ctx.store(_addr(ctx, base, LEGACY_MXCSR + 4), const(32, MXCSR_MASK))


def load_mxcsr_part(ctx: Insn, base: ir.Value) -> None:
    """MXCSR from the legacy region; #GP for a reserved bit (sse_common.
    set_mxcsr), so before any other write of the instruction."""
    set_mxcsr(ctx, ctx.load(_addr(ctx, base, LEGACY_MXCSR), 32))


def store_xmm_part(ctx: Insn, base: ir.Value) -> None:
    for i in range(xmm_count(ctx)):
        ctx.store(_addr(ctx, base, LEGACY_XMM0 + 16 * i), ctx.em.get(f"xmm{i}"))


def load_xmm_part(ctx: Insn, base: ir.Value) -> None:
    for i in range(xmm_count(ctx)):
        ctx.em.set(f"xmm{i}", ctx.load(_addr(ctx, base, LEGACY_XMM0 + 16 * i), 128))


@semantic("fxsave", "fxsave64")
def fxsave(ctx: Insn) -> None:
    base = ctx.ea(0)
    store_x87_part(ctx, X87(ctx), base)
    store_mxcsr_part(ctx, base)
    store_xmm_part(ctx, base)


@semantic("fxrstor", "fxrstor64")
def fxrstor(ctx: Insn) -> None:
    base = ctx.ea(0)
    load_mxcsr_part(ctx, base)      # first: it may #GP
    load_x87_part(ctx, X87(ctx), base)
    load_xmm_part(ctx, base)


__all__ = ["store_env", "load_env", "full_tag_word", "xmm_count", "raw_phys", "set_raw_phys",
           "store_x87_part", "load_x87_part", "store_mxcsr_part", "load_mxcsr_part",
           "store_xmm_part", "load_xmm_part"]

"""Helpers shared by the SSE and MMX family modules (sse*.py, mmx.py);
registers nothing.

xmm registers live in the state as i128 values.  The SSE modules bitcast
them to LLVM vectors (``<16 x i8>``, ``<4 x float>`` ...) to compute and back
to i128 to store, so every operation is generic IR that LLVM lowers to SSE on
an x86 host and to NEON on AArch64.

The same integer semantics serve the MMX forms (mm registers, 64 bits):
``vec_bits`` is 64 for an instruction that names an mm register, and
``rd``/``wr`` read and write integers of that width (mm registers through
mmx_regs.py, which keeps the x87 aliasing rule), so a semantic function
that types its lanes with ``lanes(ctx, bits)`` works at both widths.

Memory operand sizes are never taken from capstone (it reports 16 bytes for
e.g. ``comisd xmm, qword ptr``): every instruction states how many bits its
memory source reads.
"""
from __future__ import annotations

from llvmlite import ir
from capstone import x86_const as X

from bttool.ir.emitter import I1, I8, I16, I32, I64, I128
from bttool.ir.state import EXIT_FAULT, FAULT_GP, MXCSR_MASK
from bttool.translator.operands import Insn, UnsupportedOperand
from bttool.translator.semantics.mmx_regs import is_mm, mm_number, names_mm, read_mm, write_mm

F32 = ir.FloatType()
F64 = ir.DoubleType()
HALF = ir.HalfType()


def vec(bits: int, n: int) -> ir.VectorType:
    return ir.VectorType(ir.IntType(bits), n)


def fvec(bits: int, n: int) -> ir.VectorType:
    return ir.VectorType(F32 if bits == 32 else F64, n)


V16I8, V8I16, V4I32, V2I64 = vec(8, 16), vec(16, 8), vec(32, 4), vec(64, 2)
V4F32, V2F64 = fvec(32, 4), fvec(64, 2)


def fty(bits: int, n: int = 0) -> ir.Type:
    """Float type of ``bits`` (32/64), scalar when ``n`` is 0."""
    s = F32 if bits == 32 else F64
    return s if n == 0 else ir.VectorType(s, n)


# -- constants ---------------------------------------------------------------
def elem(ty: ir.Type) -> ir.Type:
    return ty.element if isinstance(ty, ir.VectorType) else ty


def lanes_of(ty: ir.Type) -> int:
    return ty.count if isinstance(ty, ir.VectorType) else 0


def splat(ty: ir.Type, value) -> ir.Constant:
    """Constant ``value`` of scalar type ``ty`` or in every lane of vector ``ty``."""
    e = elem(ty)
    if isinstance(e, ir.IntType):
        value = int(value) & ((1 << e.width) - 1)
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [ir.Constant(e, value)] * ty.count)
    return ir.Constant(ty, value)


def vconst(ty: ir.VectorType, values) -> ir.Constant:
    e = ty.element
    return ir.Constant(ty, [ir.Constant(e, (int(v) & ((1 << e.width) - 1))
                                        if isinstance(e, ir.IntType) else v) for v in values])


def mask_i32(indices) -> ir.Constant:
    """A shufflevector mask."""
    return ir.Constant(vec(32, len(indices)), [ir.Constant(I32, int(i)) for i in indices])


def int_of(ty: ir.Type) -> ir.Type:
    """The integer (vector) type with the same lane widths as float (vector) ``ty``."""
    e = elem(ty)
    bits = 32 if e == F32 else 64 if e == F64 else 16 if e == HALF else e.width
    it = ir.IntType(bits)
    return ir.VectorType(it, ty.count) if isinstance(ty, ir.VectorType) else it


def float_of(ty: ir.Type) -> ir.Type:
    e = elem(ty)
    ft = F32 if e.width == 32 else F64
    return ir.VectorType(ft, ty.count) if isinstance(ty, ir.VectorType) else ft


def mangle(ty: ir.Type) -> str:
    """LLVM intrinsic type suffix: i32, f64, v4f32, v16i8."""
    def one(t):
        if t == F32:
            return "f32"
        if t == F64:
            return "f64"
        if t == HALF:
            return "f16"
        return f"i{t.width}"
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{one(ty.element)}"
    return one(ty)


def call(ctx: Insn, name: str, ty: ir.Type, args: list, ret: ir.Type | None = None) -> ir.Value:
    """Overloaded LLVM intrinsic ``llvm.<name>.<mangle(ty)>``."""
    return ctx.em.intrinsic(f"llvm.{name}.{mangle(ty)}", ret or ty, args)


# -- operands ------------------------------------------------------------------
_XMM0, _YMM0 = X.X86_REG_XMM0, X.X86_REG_YMM0


def vreg_number(reg_id: int) -> tuple[int, int] | None:
    """(register number, width in bits) of an xmm or ymm register id."""
    if _XMM0 <= reg_id < _XMM0 + 16:
        return reg_id - _XMM0, 128
    if _YMM0 <= reg_id < _YMM0 + 16:
        return reg_id - _YMM0, 256
    return None


def is_xmm(ctx: Insn, i: int) -> bool:
    """Is operand ``i`` a register of the xmm/ymm file?"""
    return ctx.is_reg(i) and vreg_number(ctx.ops[i].reg) is not None


def is_vreg(ctx: Insn, i: int) -> bool:
    """Is operand ``i`` a vector register (xmm, ymm or mm)?"""
    return is_xmm(ctx, i) or is_mm(ctx, i)


def has_xmm(ctx: Insn) -> bool:
    return any(is_xmm(ctx, i) for i in range(len(ctx.ops)))


def width_generic(fn):
    """Mark semantic ``fn`` as written for any vector width (it types its
    values with ``lanes``/``vec_bits``), so a 256-bit VEX form runs it once
    on the whole register instead of once per 128-bit lane (vex.run)."""
    fn.width_generic = True
    return fn


def vec_bits(ctx: Insn) -> int:
    """The width of the instruction's vector operation: 64 for the MMX
    forms (any operand an mm register), 256 for a VEX.256 form, else 128."""
    if names_mm(ctx):
        return 64
    return getattr(ctx, "vex_bits", 128)


def lanes(ctx: Insn, bits: int) -> ir.VectorType:
    """The integer vector of ``bits``-wide lanes filling ``vec_bits(ctx)``."""
    return vec(bits, vec_bits(ctx) // bits)


def imm8(ctx: Insn) -> int:
    """The immediate byte (always the last byte of an SSE instruction)."""
    for op in ctx.ops:
        if op.type == X.X86_OP_IMM:
            return op.imm & 0xFF
    return ctx.insn.bytes[-1]


def read_vreg(ctx: Insn, n: int, bits: int = 256) -> ir.Value:
    """Vector register ``n``: ymm as an i256 (xmm ``n`` below ``ymmh{n}``)
    when ``bits`` is 256, else xmm as an i128."""
    if bits != 256:
        return ctx.em.get(f"xmm{n}")
    return concat_lanes(ctx, ctx.em.get(f"xmm{n}"), ctx.em.get(f"ymmh{n}"))


def concat_lanes(ctx: Insn, lo: ir.Value, hi: ir.Value) -> ir.Value:
    """Two 128-bit values as one i256 (a vector shuffle: LLVM keeps it in
    vector registers)."""
    b = ctx.b
    lo, hi = b.bitcast(as_int(ctx, lo), V2I64), b.bitcast(as_int(ctx, hi), V2I64)
    return b.bitcast(b.shuffle_vector(lo, hi, mask_i32([0, 1, 2, 3])), ir.IntType(256))


def half(ctx: Insn, v256: ir.Value, which: int) -> ir.Value:
    """The low (0) or high (1) 128 bits of a 256-bit value, as an i128."""
    b = ctx.b
    v = b.bitcast(as_int(ctx, v256), vec(64, 4))
    return b.bitcast(b.shuffle_vector(v, v, mask_i32([2 * which, 2 * which + 1])), I128)


def as_int(ctx: Insn, v: ir.Value) -> ir.Value:
    """A vector value as the integer of its width."""
    if isinstance(v.type, ir.VectorType):
        e = v.type.element
        width = (32 if e == F32 else 64 if e == F64 else e.width) * v.type.count
        return ctx.b.bitcast(v, ir.IntType(width))
    return v


def rd(ctx: Insn, i: int, mem_bits: int | None = None, bits: int | None = None) -> ir.Value:
    """Operand i as an integer of ``bits`` (default ``vec_bits(ctx)``): a
    vector register in full (its low ``bits`` when it is wider: the low
    quadword of an xmm in an MMX form), a memory operand of ``mem_bits``
    (default ``bits``) zero-extended, a GPR zero-extended.  While a VEX.256
    form runs per 128-bit lane, a 256-bit operand reads as that lane."""
    bits = bits or vec_bits(ctx)
    op = ctx.ops[i]
    lane = getattr(ctx, "lane", None)
    wide = lane is not None and op.size == 32
    if op.type == X.X86_OP_MEM:
        addr = ctx.ea(i)
        if wide and lane:
            addr = ctx.b.add(addr, ir.Constant(I64, 16 * lane))
        v = ctx.load(addr, mem_bits or bits)
    elif op.type == X.X86_OP_REG:
        n = mm_number(op.reg)
        vr = vreg_number(op.reg)
        if n is not None:
            v = read_mm(ctx, n)
        elif vr is not None and vr[1] == 256:
            v = ctx.em.get(f"{'ymmh' if lane else 'xmm'}{vr[0]}") if wide else read_vreg(ctx, vr[0])
        elif vr is not None:
            v = read_vreg(ctx, vr[0], 128)
        else:
            v = ctx.get_reg(op.reg)
    else:
        raise UnsupportedOperand("SSE immediate source")
    return fit(ctx, v, bits)


def qwords(ctx: Insn, i: int) -> ir.Value:
    """Operand ``i`` as a vector of 64-bit lanes, for bitwise logic: on an
    i128/i256 LLVM's x86 backend splits the value into 64-bit GPR pieces
    and rebuilds the vector byte by byte (measured: 70 instructions for one
    vpand ymm feeding a vpminub)."""
    return cast(ctx, rd(ctx, i), lanes(ctx, 64))


def wr(ctx: Insn, i: int, value: ir.Value) -> None:
    """Write a vector-register destination: an xmm (i128 or any 128-bit
    vector) or an mm register (i64 or any 64-bit vector).  A VEX form
    writes its destination register (vex.VexInsn.dest) whole: a 128-bit
    result zeroes bits 255:128 (a legacy SSE write leaves them)."""
    dest = getattr(ctx, "dest", None)
    if dest is not None and i == 0:
        value = as_int(ctx, value)
        if ctx.lane is not None:
            ctx.lane_out[ctx.lane] = fit(ctx, value, 128)
            return
        vr = vreg_number(dest.reg) if dest.type == X.X86_OP_REG else None
        if vr is None:
            raise UnsupportedOperand("VEX destination is not a vector register")
        write_ymm(ctx, vr[0], value)
    elif is_mm(ctx, i):
        write_mm(ctx, mm_number(ctx.ops[i].reg), cast(ctx, value, I64))
    elif is_xmm(ctx, i):
        ctx.em.set(f"xmm{vreg_number(ctx.ops[i].reg)[0]}", cast(ctx, value, I128))
    else:
        raise UnsupportedOperand("SSE destination is not a vector register")


def write_ymm(ctx: Insn, n: int, value: ir.Value) -> None:
    """ymm ``n`` = ``value`` (an integer of 256 bits, or fewer: zero-extended)."""
    value = as_int(ctx, value)
    if value.type.width == 256:
        ctx.em.set(f"xmm{n}", half(ctx, value, 0))
        ctx.em.set(f"ymmh{n}", half(ctx, value, 1))
    else:
        ctx.em.set(f"xmm{n}", fit(ctx, value, 128))
        ctx.em.set(f"ymmh{n}", ir.Constant(I128, 0))


def cast(ctx: Insn, v: ir.Value, ty: ir.Type) -> ir.Value:
    return v if v.type == ty else ctx.b.bitcast(v, ty)


def low(ctx: Insn, v128: ir.Value, bits: int) -> ir.Value:
    return ctx.b.trunc(v128, ir.IntType(bits))


def fit(ctx: Insn, v: ir.Value, bits: int) -> ir.Value:
    """Integer ``v`` truncated or zero-extended to ``bits``."""
    if v.type.width > bits:
        return ctx.b.trunc(v, ir.IntType(bits))
    return zext_to(ctx, v, bits)


def merge_low(ctx: Insn, old128: ir.Value, new: ir.Value) -> ir.Value:
    """``old128`` with its low bits replaced by ``new`` (an integer, or a
    float inserted as a float lane: an integer lane insert of a bitcast
    float makes LLVM move it through a general register)."""
    b = ctx.b
    if new.type in (F32, F64):
        vt = fvec(32 if new.type == F32 else 64, 4 if new.type == F32 else 2)
        return b.bitcast(b.insert_element(b.bitcast(old128, vt), new, ir.Constant(I32, 0)), I128)
    bits = new.type.width
    if bits in (8, 16, 32, 64):     # a lane insert keeps it in a vector register
        vt = vec(bits, 128 // bits)
        return b.bitcast(b.insert_element(b.bitcast(old128, vt), new, ir.Constant(I32, 0)), I128)
    keep = b.and_(old128, ir.Constant(I128, ((1 << 128) - 1) ^ ((1 << bits) - 1)))
    return b.or_(keep, b.zext(new, I128))


def zext_to(ctx: Insn, v: ir.Value, to_bits: int) -> ir.Value:
    """``v`` zero-extended to ``to_bits`` (a lane insert into zero for
    8-64 bits, which keeps a vector value in a vector register)."""
    bits = v.type.width
    if bits == to_bits:
        return v
    if bits in (8, 16, 32, 64):
        vt = vec(bits, to_bits // bits)
        return ctx.b.bitcast(ctx.b.insert_element(splat(vt, 0), v, ir.Constant(I32, 0)),
                             ir.IntType(to_bits))
    return ctx.b.zext(v, ir.IntType(to_bits))


def zext128(ctx: Insn, v: ir.Value) -> ir.Value:
    """``v`` zero-extended to i128."""
    return zext_to(ctx, v, 128)




def set_mxcsr(ctx: Insn, value: ir.Value) -> None:
    """Load MXCSR (ldmxcsr, fxrstor): a value with a reserved bit set is
    #GP (SIGSEGV, as natively), and the instruction then changes nothing,
    so call this before any other write of the instruction."""
    b = ctx.b
    bad = b.icmp_unsigned("!=", b.and_(value, ir.Constant(I32, ~MXCSR_MASK & 0xFFFFFFFF)),
                          ir.Constant(I32, 0))
    with b.if_then(bad, likely=False):
        ctx.leave(ctx.pc, EXIT_FAULT, FAULT_GP)
    ctx.em.set("mxcsr", value)


def mxcsr_rc(ctx: Insn) -> ir.Value:
    """MXCSR.RC (bits 13-14) as an i32: 0 nearest, 1 down, 2 up, 3 toward zero."""
    b = ctx.b
    m = ctx.em.get("mxcsr")
    return b.and_(b.lshr(m, ir.Constant(I32, 13)), ir.Constant(I32, 3))


def sat_signed(ctx: Insn, v: ir.Value, to_bits: int) -> ir.Value:
    """Signed saturation of integer (vector) ``v`` to ``to_bits`` lanes."""
    b = ctx.b
    lo, hi = -(1 << (to_bits - 1)), (1 << (to_bits - 1)) - 1
    v = b.select(b.icmp_signed("<", v, splat(v.type, lo)), splat(v.type, lo), v)
    v = b.select(b.icmp_signed(">", v, splat(v.type, hi)), splat(v.type, hi), v)
    return b.trunc(v, retype(v.type, to_bits))


def sat_unsigned(ctx: Insn, v: ir.Value, to_bits: int) -> ir.Value:
    """Signed input saturated to the unsigned range of ``to_bits``."""
    b = ctx.b
    hi = (1 << to_bits) - 1
    v = b.select(b.icmp_signed("<", v, splat(v.type, 0)), splat(v.type, 0), v)
    v = b.select(b.icmp_signed(">", v, splat(v.type, hi)), splat(v.type, hi), v)
    return b.trunc(v, retype(v.type, to_bits))


def retype(ty: ir.Type, bits: int) -> ir.Type:
    it = ir.IntType(bits)
    return ir.VectorType(it, ty.count) if isinstance(ty, ir.VectorType) else it


__all__ = ["F32", "F64", "I1", "I8", "I16", "I32", "I64", "I128", "V16I8", "V8I16", "V4I32",
           "V2I64", "V4F32", "V2F64"]

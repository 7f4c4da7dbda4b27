"""x87 floating point, part 1: the register stack and the everyday
instructions (loads, stores, arithmetic, compares, fxam, fcmov, constants,
control and status words, fninit/fnclex/ffree/fincstp/wait).  Rounding to
integers (frndint, fist, fisttp), fscale, fprem, fxtract, packed BCD and the
transcendental instructions are in x87_math.py; environment and state images
(fnstenv, fnsave, fxsave and their loads) in x87_env.py.

Model
-----
* Values are LLVM ``x86_fp80`` (exact 80-bit extended precision).  The
  physical registers R0..R7 stay in the in-memory CPU state (``fpr0`` + 16*i,
  10 bytes used) and are reached by a dynamic index: ST(i) = R[(top+i) & 7].
  ``fpu_top``, ``fpu_tag`` (bit i set = Ri empty), ``fpu_sw`` (TOP bits kept
  zero: TOP lives in ``fpu_top``) and ``fpu_cw`` go through the emitter's
  promoted fields.
* The MMX registers mm0-mm7 are R0-R7 (their low 64 bits); how MMX
  instructions write them and switch TOP and the tags is in mmx_regs.py.
* Arithmetic, square root, compares and the m32/m64/integer conversions are
  LLVM's x86_fp80 operations, i.e. the host x87 unit running with its
  default control word: round to nearest, 64-bit significand (so NaN
  propagation, denormals and unsupported encodings behave exactly as on the
  host).  The guest's rounding control (fpu_cw bits 10-11) is honoured by
  frndint, fist/fistp, fbstp and the fld<constant> instructions; its
  precision control (bits 8-9) and rounding control by the arithmetic
  (fadd, fsub(r), fmul, fdiv(r) in every form, fsqrt) and by fst/fstp to
  m32/m64: when the control word asks for anything but 64-bit precision
  rounded to nearest, the operation runs out of line on the host's x87
  with the guest's precision and rounding (``controlled``), so its
  results are the x87's by construction; the common case costs one test
  of the control word.  fscale, fprem and the transcendental
  instructions keep their 64-bit, nearest results.
* Exceptions are always masked: the sticky exception bits (IE..PE, SF, ES,
  B) of the status word are never set by translated code (fnclex, fninit,
  fldenv... still clear or load them), so fetestexcept-style code sees no
  x87 exceptions.  C1 is 0 after every instruction that defines it except
  fxam (sign), fprem/fprem1 (quotient bit 0) and the transcendental
  instructions (host value): the "rounded up" indication is not modelled.
  C0/C2/C3 where the manual leaves them undefined are left unchanged.
* Stack faults are modelled only by their masked results: reading an empty
  register gives the QNaN indefinite and a push onto a full register stores
  the indefinite (fxtract: both results); no IE/SF bit, no C1 indication.
* Unsupported encodings (unnormals, pseudo-NaN, pseudo-infinity) are
  invalid operands (indefinite results) in the bit-level helpers too
  (frndint, fist, fscale, fprem, fxtract); pseudo-denormals are accepted.
* FP literals other than +-0.0/+-1.0 are never emitted (see fp80_imm).
"""
from __future__ import annotations

from llvmlite import ir

from bttool.ir import state
from bttool.ir.emitter import I1, I8, I16, I32, I64, const
from bttool.translator.operands import Insn
from bttool.translator.registry import semantic
from bttool.translator.semantics.sse_fpcore import outlined, unless_cold


class X86FP80Type(ir.Type):
    """LLVM's 80-bit x87 type (llvmlite has no class for it).  Constants are
    written in LLVM's ``0xK`` hex form from the 80-bit pattern."""

    null = "0xK00000000000000000000"
    intrinsic_name = "f80"

    def _to_string(self) -> str:
        return "x86_fp80"

    def __eq__(self, other) -> bool:
        return isinstance(other, X86FP80Type)

    def __hash__(self) -> int:
        return hash("x86_fp80")

    def format_constant(self, value) -> str:
        return "0xK%020X" % (int(value) & ((1 << 80) - 1))


FP80 = X86FP80Type()
I80 = ir.IntType(80)
I128 = ir.IntType(128)
F32 = ir.FloatType()
F64 = ir.DoubleType()

SIGN80 = 1 << 79
INT_BIT = 1 << 63
BIAS = 16383
INDEFINITE = 0xFFFF_C000_0000_0000_0000   # the QNaN "real indefinite"

# status word bits
SW_C0 = 0x0100
SW_C1 = 0x0200
SW_C2 = 0x0400
SW_C3 = 0x4000
SW_TOP = 0x3800

FPR0 = state.offset("fpr0")


def fp80_const(bits: int) -> ir.Constant:
    """A literal x86_fp80 constant.  Only 0.0 and 1.0 (and their negations)
    are used as literals: LLVM materialises them with fldz/fld1, while any
    other FP constant goes to a constant pool -- see fp80_imm."""
    return ir.Constant(FP80, bits)


_LITERAL_OK = {0, 1 << 79, (0x3FFF << 64) | (1 << 63), (0xBFFF << 64) | (1 << 63)}


def launder64(b: ir.IRBuilder, value: int) -> ir.Value:
    """The i64 ``value`` made opaque to the optimiser (an empty inline asm),
    so that FP constants built from it are never folded back into literals."""
    fnty = ir.FunctionType(I64, [I64])
    return b.call(ir.InlineAsm(fnty, "", "=r,0", side_effect=False), [const(64, value)],
                  attrs=("nounwind", "readnone"))


def fp80_imm(b: ir.IRBuilder, bits: int) -> ir.Value:
    """The x86_fp80 value with the 80-bit pattern ``bits``, built at run time
    from integer immediates.  FP literals other than +-0/+-1 would be loaded
    from a constant pool, which the JIT (large code model, PIC) mislocates in
    every object loaded after one with GOT entries (GOTOFF64 relocations);
    building them from immediates avoids constant pools altogether."""
    if bits in _LITERAL_OK:
        return fp80_const(bits)
    lo = launder64(b, bits & ((1 << 64) - 1))
    v = b.or_(b.zext(lo, I80), ir.Constant(I80, (bits >> 64) << 64))
    return b.bitcast(v, FP80)


def fp80_of(mant: int, exp: int, sign: int = 0) -> int:
    """80-bit pattern from an explicit 64-bit significand and biased exponent."""
    return (sign << 79) | (exp << 64) | mant


ONE = fp80_of(INT_BIT, BIAS)


class X87:
    """The x87 register stack of one instruction being lifted."""

    def __init__(self, ctx: Insn):
        self.ctx = ctx
        self.em = ctx.em
        self.b = ctx.b

    # -- fields ----------------------------------------------------------
    def top(self) -> ir.Value:
        return self.em.get("fpu_top")

    def set_top(self, v: ir.Value) -> None:
        self.em.set("fpu_top", self.b.and_(v, const(8, 7)))

    def tag(self) -> ir.Value:
        return self.em.get("fpu_tag")

    def set_tag(self, v: ir.Value) -> None:
        self.em.set("fpu_tag", v)

    def sw(self) -> ir.Value:
        return self.em.get("fpu_sw")

    def set_sw(self, v: ir.Value) -> None:
        self.em.set("fpu_sw", v)

    def cw(self) -> ir.Value:
        return self.em.get("fpu_cw")

    def load_cw(self, v: ir.Value) -> None:
        """Load the control word as the hardware does: bit 6 reads as 1,
        bits 7 and 13-15 as 0."""
        b = self.b
        self.em.set("fpu_cw", b.or_(b.and_(v, const(16, 0x1F3F)), const(16, 0x40)))

    def rc(self) -> ir.Value:
        """Rounding control (cw bits 10-11) as i16: 0 nearest, 1 down, 2 up,
        3 toward zero."""
        return self.b.and_(self.b.lshr(self.cw(), const(16, 10)), const(16, 3))

    def status_word(self) -> ir.Value:
        """The architectural status word: fpu_sw with TOP composed in."""
        b = self.b
        top = b.shl(b.zext(self.top(), I16), const(16, 11))
        return b.or_(b.and_(self.sw(), const(16, ~SW_TOP & 0xFFFF)), top)

    def load_status_word(self, v: ir.Value) -> None:
        b = self.b
        self.set_top(b.trunc(b.lshr(v, const(16, 11)), I8))
        self.set_sw(b.and_(v, const(16, ~SW_TOP & 0xFFFF)))

    def set_cc(self, c0=None, c1=None, c2=None, c3=None) -> None:
        """Set condition bits; each is None (unchanged), a Python bool or an
        i1 value."""
        b = self.b
        mask = 0
        fixed = 0
        dyn = []
        for v, bit in ((c0, SW_C0), (c1, SW_C1), (c2, SW_C2), (c3, SW_C3)):
            if v is None:
                continue
            mask |= bit
            if isinstance(v, (bool, int)):
                fixed |= bit if v else 0
            else:
                dyn.append(b.select(v, const(16, bit), const(16, 0)))
        if not mask:
            return
        sw = b.and_(self.sw(), const(16, ~mask & 0xFFFF))
        sw = b.or_(sw, const(16, fixed)) if fixed else sw
        for d in dyn:
            sw = b.or_(sw, d)
        self.set_sw(sw)

    # -- physical registers ----------------------------------------------
    def phys(self, i: int) -> ir.Value:
        """Physical index (i8) of ST(i)."""
        t = self.top()
        if i:
            t = self.b.add(t, const(8, i))
        return self.b.and_(t, const(8, 7))

    def reg_ptr(self, phys: ir.Value | int) -> ir.Value:
        b = self.b
        if isinstance(phys, int):
            off = const(64, FPR0 + 16 * phys)
        else:
            off = b.add(const(64, FPR0), b.shl(b.zext(phys, I64), const(64, 4)))
        return b.gep(self.em.state_ptr, [off], inbounds=True, source_etype=I8)

    def load_phys(self, phys: ir.Value | int) -> ir.Value:
        self.em.note_register_file(write=False)
        v = self.b.load(self.reg_ptr(phys), typ=FP80)
        v.align = 16
        return v

    def store_phys(self, phys: ir.Value | int, v: ir.Value) -> None:
        self.em.note_register_file(write=True)
        s = self.b.store(v, self.reg_ptr(phys))
        s.align = 16

    def is_empty(self, phys: ir.Value) -> ir.Value:
        b = self.b
        bit = b.lshr(self.tag(), phys)
        return b.trunc(bit, I1)

    def mark_valid(self, phys: ir.Value) -> None:
        b = self.b
        self.set_tag(b.and_(self.tag(), b.xor(b.shl(const(8, 1), phys), const(8, 0xFF))))

    def mark_empty(self, phys: ir.Value) -> None:
        b = self.b
        self.set_tag(b.or_(self.tag(), b.shl(const(8, 1), phys)))

    # -- the stack -------------------------------------------------------
    def st(self, i: int) -> ir.Value:
        """ST(i); an empty register reads as the indefinite (masked #IS)."""
        p = self.phys(i)
        v = self.load_phys(p)
        return self.b.select(self.is_empty(p), fp80_imm(self.b, INDEFINITE), v)

    def set_st(self, i: int, v: ir.Value) -> None:
        p = self.phys(i)
        self.store_phys(p, v)
        self.mark_valid(p)

    def push(self, v: ir.Value) -> None:
        b = self.b
        p = b.and_(b.sub(self.top(), const(8, 1)), const(8, 7))
        # overflow (the new top is in use): the indefinite is pushed instead
        v = b.select(self.is_empty(p), v, fp80_imm(b, INDEFINITE))
        self.store_phys(p, v)
        self.mark_valid(p)
        self.set_top(p)

    def pop(self, n: int = 1) -> None:
        for _ in range(n):
            p = self.phys(0)
            self.mark_empty(p)
            self.set_top(self.b.add(p, const(8, 1)))


# -- bit-level helpers shared by the x87 modules ----------------------------
def to_bits(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    return b.bitcast(v, I80)


def from_bits(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    return b.bitcast(v, FP80)


def split(b: ir.IRBuilder, bits: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
    """(sign i1, biased exponent i32, significand i64) of an i80 pattern."""
    sign = b.trunc(b.lshr(bits, ir.Constant(I80, 79)), I1)
    exp = b.and_(b.trunc(b.lshr(bits, ir.Constant(I80, 64)), I32), const(32, 0x7FFF))
    mant = b.trunc(bits, I64)
    return sign, exp, mant


def join(b: ir.IRBuilder, sign: ir.Value, exp: ir.Value, mant: ir.Value) -> ir.Value:
    """fp80 value from sign (i1), biased exponent (i32, 0..0x7fff), significand (i64)."""
    if isinstance(mant, ir.Constant):
        mant = launder64(b, int(mant.constant))   # see fp80_imm
    v = b.zext(mant, I80)
    e = b.shl(b.zext(b.and_(exp, const(32, 0x7FFF)), I80), ir.Constant(I80, 64))
    s = b.shl(b.zext(sign, I80), ir.Constant(I80, 79))
    return from_bits(b, b.or_(b.or_(v, e), s))


def is_nan(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    return b.fcmp_unordered("uno", v, v)


def quiet(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    """v with the quiet bit set (a QNaN stays, an SNaN becomes quiet)."""
    return from_bits(b, b.or_(to_bits(b, v), ir.Constant(I80, 1 << 62)))


def flip_sign(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    return from_bits(b, b.xor(to_bits(b, v), ir.Constant(I80, SIGN80)))


def with_sign(b: ir.IRBuilder, v: ir.Value, sign: ir.Value) -> ir.Value:
    """|v| with the sign bit taken from the i1 ``sign``."""
    bits = b.and_(to_bits(b, v), ir.Constant(I80, SIGN80 - 1))
    s = b.shl(b.zext(sign, I80), ir.Constant(I80, 79))
    return from_bits(b, b.or_(bits, s))


# -- instruction decoding helpers -------------------------------------------
def opcode(ctx: Insn) -> int:
    return ctx.insn.opcode[0] & 0xFF


def modrm(ctx: Insn) -> int:
    return ctx.insn.modrm & 0xFF


def reg_form(ctx: Insn) -> bool:
    return modrm(ctx) >= 0xC0


def sti(ctx: Insn) -> int:
    return modrm(ctx) & 7


def load_mem_fp(ctx: Insn, i: int = 0) -> ir.Value:
    """Memory operand i (m32fp, m64fp or m80fp) as fp80."""
    size = ctx.ops[i].size
    addr = ctx.ea(i)
    if size == 10:
        return ctx.em.load(addr, FP80)
    ty = F32 if size == 4 else F64
    return ctx.b.fpext(ctx.em.load(addr, ty), FP80)


def load_mem_int(ctx: Insn, i: int = 0) -> ir.Value:
    """Memory operand i (m16int, m32int or m64int) as fp80 (exact)."""
    v = ctx.read(i)
    return ctx.b.sitofp(v, FP80)


# -- loads and stores -------------------------------------------------------
@semantic("fld")
def fld(ctx: Insn) -> None:
    x = X87(ctx)
    v = x.st(sti(ctx)) if reg_form(ctx) else load_mem_fp(ctx)
    x.push(v)
    x.set_cc(c1=False)


@semantic("fild")
def fild(ctx: Insn) -> None:
    x = X87(ctx)
    x.push(load_mem_int(ctx))
    x.set_cc(c1=False)


@semantic("fst", "fstp", "fstpnce")
def fst(ctx: Insn) -> None:
    x = X87(ctx)
    v = x.st(0)
    if reg_form(ctx):
        x.set_st(sti(ctx), v)
    else:
        size = ctx.ops[0].size
        if size != 10:
            v = rounded_store_value(ctx, x, v, F32 if size == 4 else F64)
        ctx.store(ctx.ea(0), v)
    x.set_cc(c1=False)
    if ctx.mnemonic != "fst":
        x.pop()


@semantic("fxch")
def fxch(ctx: Insn) -> None:
    x = X87(ctx)
    i = sti(ctx)
    a, c = x.st(0), x.st(i)
    x.set_st(0, c)
    x.set_st(i, a)
    x.set_cc(c1=False)


_CONSTS = {
    # mnemonic: (rounded down, rounded up, nearest is up?)
    "fld1": (ONE, ONE, False),
    "fldz": (0, 0, False),
    "fldpi": (fp80_of(0xC90FDAA22168C234, 0x4000), fp80_of(0xC90FDAA22168C235, 0x4000), True),
    "fldl2e": (fp80_of(0xB8AA3B295C17F0BB, 0x3FFF), fp80_of(0xB8AA3B295C17F0BC, 0x3FFF), True),
    "fldl2t": (fp80_of(0xD49A784BCD1B8AFE, 0x4000), fp80_of(0xD49A784BCD1B8AFF, 0x4000), False),
    "fldlg2": (fp80_of(0x9A209A84FBCFF798, 0x3FFD), fp80_of(0x9A209A84FBCFF799, 0x3FFD), True),
    "fldln2": (fp80_of(0xB17217F7D1CF79AB, 0x3FFE), fp80_of(0xB17217F7D1CF79AC, 0x3FFE), True),
}


@semantic(*_CONSTS)
def fld_const(ctx: Insn) -> None:
    """The constants are rounded by the rounding control (all positive, so
    'down' and 'toward zero' agree)."""
    x = X87(ctx)
    lo, hi, nearest_up = _CONSTS[ctx.mnemonic]
    b = ctx.b
    if lo == hi:
        v = fp80_const(lo)
    else:
        rc = x.rc()
        up = b.icmp_unsigned("==", rc, const(16, 2))
        if nearest_up:
            up = b.or_(up, b.icmp_unsigned("==", rc, const(16, 0)))
        # lo and hi differ in the last significand bit only
        mant = b.add(launder64(b, lo & ((1 << 64) - 1)), b.zext(up, I64))
        v = join(b, ir.Constant(I1, 0), const(32, lo >> 64), mant)
    x.push(v)
    x.set_cc(c1=False)


@semantic("fcmovb", "fcmove", "fcmovbe", "fcmovu",
          "fcmovnb", "fcmovne", "fcmovnbe", "fcmovnu")
def fcmov(ctx: Insn) -> None:
    """ST(0) = ST(i) if the condition holds; an empty ST(0) or ST(i) is a
    stack underflow whatever the condition, whose masked result is the
    indefinite in ST(0) (as the host does)."""
    b = ctx.b
    x = X87(ctx)
    kind = (modrm(ctx) >> 3) & 3
    cond = {0: lambda: ctx.flag("cf"), 1: lambda: ctx.flag("zf"),
            2: lambda: b.or_(ctx.flag("cf"), ctx.flag("zf")), 3: lambda: ctx.flag("pf")}[kind]()
    if opcode(ctx) == 0xDB:
        cond = b.not_(cond)
    src = x.st(sti(ctx))
    dst = x.st(0)
    underflow = b.or_(x.is_empty(x.phys(0)), x.is_empty(x.phys(sti(ctx))))
    x.set_st(0, b.select(underflow, fp80_imm(b, INDEFINITE), b.select(cond, src, dst)))
    x.set_cc(c1=False)


# -- precision and rounding control ------------------------------------------
# The host's own x87 instruction for each operation, run with the guest's
# control word (exceptions masked) by ``controlled``: ``.byte`` encodings,
# so the assembler's AT&T operand order for fsub/fdiv cannot swap them.
# st0 = dst, st1 = src when they run.
_HOST_OP = {0: ".byte 0xd8, 0xc1",      # fadd st0, st1
            1: ".byte 0xd8, 0xc9",      # fmul st0, st1
            4: ".byte 0xd8, 0xe1",      # fsub st0, st1: dst - src
            5: ".byte 0xd8, 0xe9",      # fsubr st0, st1: src - dst
            6: ".byte 0xd8, 0xf1",      # fdiv st0, st1: dst / src
            7: ".byte 0xd8, 0xf9",      # fdivr st0, st1: src / dst
            "sqrt": "fsqrt"}
# the control word LLVM's x86_fp80 code assumes: 64-bit precision, nearest
DEFAULT_PC_RC = 0x0300
PC_RC = 0x0F00
RC_BITS = 0x0C00


def _host_x87(ctx: Insn, name: str, cw: ir.Value, a: ir.Value, c: ir.Value | None, body: str,
              ret: ir.Type = FP80) -> ir.Value:
    """``body`` run on the host's x87 under control word ``cw`` (all
    exceptions masked; the host's own word restored after, its sticky flags
    cleared), with ``a`` in st0 and ``c`` (if any) in st1 and st0 left as
    the result of type ``ret``: a cold function of the module (outlined)."""
    store = {FP80: "fstpt", F64: "fstpl", F32: "fstps"}[ret]

    def build(octx, ocw, oa, *rest) -> ir.Value:
        b = octx.b
        slots = b.alloca(FP80, 2)
        words = b.alloca(I16, 2)
        b.store(b.or_(ocw, const(16, 0x3F)), words)
        b.store(oa, slots)
        src = b.gep(slots, [const(64, 1)])
        out = b.alloca(ret)
        loads = "fldt ($0)"
        if rest:
            b.store(rest[0], src)
            loads = "fldt ($1)\n\tfldt ($0)"
        text = (f"fnstcw 2($2)\n\tfldcw ($2)\n\t{loads}\n\t{body}\n\t{store} ($3)\n\t"
                + ("fstp %st(0)\n\t" if rest else "") + "fnclex\n\tfldcw 2($2)")
        fnty = ir.FunctionType(ir.VoidType(), [slots.type, src.type, words.type, out.type])
        b.call(ir.InlineAsm(fnty, text, "r,r,r,r,~{memory},~{dirflag},~{fpsr},~{fpcr},~{flags}",
                            side_effect=True), [slots, src, words, out])
        return b.load(out)
    args = [cw, a] + ([c] if c is not None else [])
    return outlined(ctx, name, ret, args, build)


def controlled(ctx: Insn, x: "X87", kind, dst: ir.Value, src: ir.Value | None,
               near: ir.Value) -> ir.Value:
    """``near`` (LLVM's result: 64-bit precision, rounded to nearest) when
    the guest's control word asks for that, else the host x87's result of
    operation ``kind`` (a ``_HOST_OP`` key) under the guest's precision and
    rounding control."""
    b = ctx.b
    cw = x.cw()
    odd = b.icmp_unsigned("!=", b.and_(cw, const(16, PC_RC)), const(16, DEFAULT_PC_RC))
    return unless_cold(ctx, odd, near,
                       lambda: _host_x87(ctx, f"bt.x87.{kind}", cw, dst, src, _HOST_OP[kind]), "x87.cw")


def rounded_store_value(ctx: Insn, x: "X87", v: ir.Value, ty: ir.Type) -> ir.Value:
    """``v`` narrowed to m32/m64 ``ty`` as fst rounds it: by the guest's
    rounding control (LLVM's fptrunc rounds to nearest; a directed mode
    runs the host's fst under the guest's control word)."""
    b = ctx.b
    cw = x.cw()
    directed = b.icmp_unsigned("!=", b.and_(cw, const(16, RC_BITS)), const(16, 0))
    name = "bt.x87.fst" + ("32" if ty == F32 else "64")
    return unless_cold(ctx, directed, b.fptrunc(v, ty),
                       lambda: _host_x87(ctx, name, cw, v, None, "", ret=ty), "x87.rc")


# -- arithmetic -------------------------------------------------------------
def _apply(b: ir.IRBuilder, kind: int, dst: ir.Value, src: ir.Value) -> ir.Value:
    """dst OP src for the modrm.reg operation kinds of D8/DC/DA/DE."""
    if kind == 0:
        return b.fadd(dst, src)
    if kind == 1:
        return b.fmul(dst, src)
    if kind == 4:
        return b.fsub(dst, src)
    if kind == 5:
        return b.fsub(src, dst)
    if kind == 6:
        return b.fdiv(dst, src)
    if kind == 7:
        return b.fdiv(src, dst)
    raise AssertionError(kind)


def _memory_nan_rule(b: ir.IRBuilder, dst: ir.Value, src: ir.Value, raw: ir.Value, size: int,
                     result: ir.Value) -> ir.Value:
    """``result`` of ST(0) OP m32fp/m64fp, with the x87's choice between two
    NaNs when the memory operand is a signalling NaN.  The host computes
    ``result`` after widening the operand to fp80, which quiets it, but the
    x87 picks from the operands as they were: an SNaN against a QNaN gives
    the QNaN (ST(0)); two SNaNs give the one with the larger significand
    (the positive one when the significands are equal), quieted.  (LLVM at
    O2 folds the load into the host's own fmul m64, which then agrees;
    compiled tier 1 and stencils load and widen first.)  ``src``: the
    operand widened; ``raw``: its bits, ``size`` bytes."""
    mbits = 23 if size == 4 else 52
    ebits = 8 if size == 4 else 11
    ity = ir.IntType(8 * size)
    exp_all = b.icmp_unsigned("==", b.and_(b.lshr(raw, ir.Constant(ity, mbits)),
                                          ir.Constant(ity, (1 << ebits) - 1)),
                              ir.Constant(ity, (1 << ebits) - 1))
    mant = b.and_(raw, ir.Constant(ity, (1 << mbits) - 1))
    quiet_bit = b.icmp_unsigned("!=", b.and_(raw, ir.Constant(ity, 1 << (mbits - 1))), ir.Constant(ity, 0))
    src_snan = b.and_(b.and_(exp_all, b.icmp_unsigned("!=", mant, ir.Constant(ity, 0))), b.not_(quiet_bit))
    # the operand's significand as fp80's (integer bit set), not quieted
    src_sig = b.or_(b.shl(b.zext(mant, I64), const(64, 63 - mbits)), const(64, INT_BIT))
    dsign, _dexp, dsig = split(b, to_bits(b, dst))
    dst_quiet = b.icmp_unsigned("!=", b.and_(dsig, const(64, 1 << 62)), const(64, 0))
    keep_dst = b.or_(b.or_(dst_quiet, b.icmp_unsigned(">", dsig, src_sig)),
                     b.and_(b.icmp_unsigned("==", dsig, src_sig), b.not_(dsign)))
    pick = b.select(keep_dst, quiet(b, dst), quiet(b, src))
    return b.select(b.and_(src_snan, is_nan(b, dst)), pick, result)


@semantic("fadd", "fiadd", "fmul", "fmulp", "fimul",
          "fsub", "fsubp", "fisub", "fsubr", "fsubrp", "fisubr",
          "fdiv", "fdivp", "fidiv", "fdivr", "fdivrp", "fidivr")
def farith(ctx: Insn) -> None:
    """D8 (m32 / ST0,ST(i)), DC (m64 / ST(i),ST0), DA (m32int), DE (m16int /
    ST(i),ST0 and pop).  In the ST(i),ST0 forms of DC/DE the 'reverse' kinds
    swap (DC E0+i is fsubr: ST(i) = ST0 - ST(i))."""
    x = X87(ctx)
    op = opcode(ctx)
    kind = (modrm(ctx) >> 3) & 7

    def result(k: int, dst: ir.Value, src: ir.Value) -> ir.Value:
        return controlled(ctx, x, k, dst, src, _apply(ctx.b, k, dst, src))
    if op in (0xDA, 0xDE) and not reg_form(ctx):
        dst = x.st(0)
        x.set_st(0, result(kind, dst, load_mem_int(ctx)))
    elif not reg_form(ctx):
        size = ctx.ops[0].size
        raw = ctx.em.load(ctx.ea(0), ir.IntType(8 * size))
        dst = x.st(0)
        src = ctx.b.fpext(ctx.b.bitcast(raw, F32 if size == 4 else F64), FP80)
        x.set_st(0, _memory_nan_rule(ctx.b, dst, src, raw, size, result(kind, dst, src)))
    elif op == 0xD8:
        x.set_st(0, result(kind, x.st(0), x.st(sti(ctx))))
    else:
        if kind >= 4:
            kind ^= 1
        i = sti(ctx)
        x.set_st(i, result(kind, x.st(i), x.st(0)))
        if op == 0xDE:
            x.pop()
    x.set_cc(c1=False)


@semantic("fchs")
def fchs(ctx: Insn) -> None:
    x = X87(ctx)
    x.set_st(0, flip_sign(ctx.b, x.st(0)))
    x.set_cc(c1=False)


@semantic("fabs")
def fabs(ctx: Insn) -> None:
    x = X87(ctx)
    b = ctx.b
    x.set_st(0, from_bits(b, b.and_(to_bits(b, x.st(0)), ir.Constant(I80, SIGN80 - 1))))
    x.set_cc(c1=False)


@semantic("fsqrt")
def fsqrt(ctx: Insn) -> None:
    x = X87(ctx)
    a = x.st(0)
    x.set_st(0, controlled(ctx, x, "sqrt", a, None, ctx.em.intrinsic("llvm.sqrt.f80", FP80, [a])))
    x.set_cc(c1=False)


# -- compares ---------------------------------------------------------------
def _relation(b: ir.IRBuilder, a: ir.Value, c: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
    """(less, equal, unordered) of a against c."""
    return (b.fcmp_ordered("<", a, c), b.fcmp_ordered("==", a, c), b.fcmp_unordered("uno", a, c))


def _set_compare(x: X87, a: ir.Value, c: ir.Value) -> None:
    b = x.b
    lt, eq, uno = _relation(b, a, c)
    x.set_cc(c0=b.or_(lt, uno), c1=False, c2=uno, c3=b.or_(eq, uno))


@semantic("fcom", "fcomp", "fcompp", "fucom", "fucomp", "fucompp", "ficom", "ficomp")
def fcom(ctx: Insn) -> None:
    """fcom vs fucom differ only in raising invalid for QNaNs (not modelled)."""
    x = X87(ctx)
    op = opcode(ctx)
    m = ctx.mnemonic
    if m in ("fcompp", "fucompp"):
        other, pops = x.st(1), 2
    else:
        if reg_form(ctx):
            other = x.st(sti(ctx))
        elif op in (0xDA, 0xDE):
            other = load_mem_int(ctx)
        else:
            other = load_mem_fp(ctx)
        pops = 1 if m.endswith("p") else 0
    _set_compare(x, x.st(0), other)
    x.pop(pops)


@semantic("ftst")
def ftst(ctx: Insn) -> None:
    x = X87(ctx)
    _set_compare(x, x.st(0), fp80_const(0))


@semantic("fcomi", "fcompi", "fucomi", "fucompi")
def fcomi(ctx: Insn) -> None:
    x = X87(ctx)
    b = ctx.b
    lt, eq, uno = _relation(b, x.st(0), x.st(sti(ctx)))
    ctx.set_flag("zf", b.or_(eq, uno))
    ctx.set_flag("pf", uno)
    ctx.set_flag("cf", b.or_(lt, uno))
    false = ir.Constant(I1, 0)
    for f in ("of", "sf", "af"):
        ctx.set_flag(f, false)
    x.set_cc(c1=False)
    if ctx.mnemonic.endswith("pi"):
        x.pop()


def classify(b: ir.IRBuilder, v: ir.Value):
    """(sign, is_zero, is_denormal, is_normal, is_inf, is_nan, unsupported)
    of an fp80 value from its bits."""
    sign, exp, mant = split(b, to_bits(b, v))
    e0 = b.icmp_unsigned("==", exp, const(32, 0))
    emax = b.icmp_unsigned("==", exp, const(32, 0x7FFF))
    mzero = b.icmp_unsigned("==", mant, const(64, 0))
    ibit = b.icmp_unsigned("!=", b.and_(mant, const(64, INT_BIT)), const(64, 0))
    frac0 = b.icmp_unsigned("==", b.and_(mant, const(64, INT_BIT - 1)), const(64, 0))
    zero = b.and_(e0, mzero)
    denormal = b.and_(e0, b.not_(mzero))
    mid = b.not_(b.or_(e0, emax))
    normal = b.and_(mid, ibit)
    inf = b.and_(b.and_(emax, ibit), frac0)
    nan = b.and_(b.and_(emax, ibit), b.not_(frac0))
    unsupported = b.and_(b.not_(e0), b.not_(ibit))
    return sign, zero, denormal, normal, inf, nan, unsupported


@semantic("fxam")
def fxam(ctx: Insn) -> None:
    """C3 C2 C0: unsupported 000, NaN 001, normal 010, infinity 011,
    zero 100, empty 101, denormal 110; C1 = sign."""
    x = X87(ctx)
    b = ctx.b
    p = x.phys(0)
    v = x.load_phys(p)
    empty = x.is_empty(p)
    sign, zero, denormal, normal, inf, nan, _ = classify(b, v)
    c0 = b.or_(empty, b.or_(nan, inf))
    c2 = b.and_(b.not_(empty), b.or_(normal, b.or_(inf, denormal)))
    c3 = b.or_(empty, b.and_(b.not_(empty), b.or_(zero, denormal)))
    x.set_cc(c0=c0, c1=sign, c2=c2, c3=c3)


# -- control ----------------------------------------------------------------
@semantic("fnstsw")
def fnstsw(ctx: Insn) -> None:
    v = X87(ctx).status_word()
    if ctx.is_reg(0):
        ctx.set_gpr("rax", v)
    else:
        ctx.store(ctx.ea(0), v)


@semantic("fnstcw")
def fnstcw(ctx: Insn) -> None:
    ctx.store(ctx.ea(0), X87(ctx).cw())


@semantic("fldcw")
def fldcw(ctx: Insn) -> None:
    X87(ctx).load_cw(ctx.load(ctx.ea(0), 16))


def reset(x: X87) -> None:
    """The fninit state."""
    x.em.set("fpu_cw", const(16, 0x037F))
    x.set_sw(const(16, 0))
    x.em.set("fpu_top", const(8, 0))
    x.set_tag(const(8, 0xFF))


@semantic("fninit")
def fninit(ctx: Insn) -> None:
    reset(X87(ctx))


@semantic("fnclex")
def fnclex(ctx: Insn) -> None:
    x = X87(ctx)
    x.set_sw(ctx.b.and_(x.sw(), const(16, 0x7F00)))


@semantic("wait", "fnop", "fsetpm", "feni8087_nop", "fdisi8087_nop")
def fwait(ctx: Insn) -> None:
    """No pending unmasked exceptions are ever recorded, so wait is a no-op
    (as are fnop and the 287-era fsetpm/feni/fdisi on a 387 and later)."""


@semantic("ffree", "ffreep")
def ffree(ctx: Insn) -> None:
    x = X87(ctx)
    x.mark_empty(x.phys(sti(ctx)))
    if ctx.mnemonic == "ffreep":
        x.pop()


@semantic("fincstp", "fdecstp")
def fincstp(ctx: Insn) -> None:
    x = X87(ctx)
    step = 1 if ctx.mnemonic == "fincstp" else 7
    x.set_top(ctx.b.add(x.top(), const(8, step)))
    x.set_cc(c1=False)

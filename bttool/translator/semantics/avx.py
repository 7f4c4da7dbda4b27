"""AVX and AVX2 instructions that extend no SSE instruction: vzeroupper,
vzeroall, broadcasts, 128-bit lane inserts, extracts and permutes, full-width
permutes, dword blends, blends by a register in imm8[7:4], per-element
shifts, zero/sign extensions to 256 bits, and FMA3.

Their rows of the decode table are ``ROWS`` here (the same notation as
translator/avxtable.py's, which reads both), their functions ``SEMANTICS``,
by the name a row gives.  Operands come as translator/vex.py's VexInsn gives
them: without the destination when the form has a VEX.vvvv source, and
``wr(ctx, 0, ...)`` writes the destination, zeroing it above the result.
"""
from __future__ import annotations

from typing import Callable

from capstone import x86_const as X
from llvmlite import ir

from bttool.translator.operands import Insn
from bttool.translator.semantics import sse_fpcore as fp
from bttool.translator.semantics.sse_int import test_flags
from bttool.translator.semantics.sse_common import (
    HALF, I32, I64, I128, cast, concat_lanes, half, imm8, mask_i32, rd, read_vreg, splat, vec,
    vec_bits, vreg_number, wr, write_ymm)

AVX, AVX2, AVX_AVX2 = "AVX", "AVX2", "AVX/AVX2"

# encoding                  mnemonic and operands              semantic        feature
ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("0F.L1 77",              "vzeroall",                        "vzeroall",     AVX),
    ("66.0F38.W0 18 /r",      "vbroadcastss Vx,Md",              "broadcast32",  AVX),
    ("66.0F38.W0 18 /r",      "vbroadcastss Vx,Udq",             "broadcast32",  AVX2),
    ("66.0F38.W0 19 /r",      "vbroadcastsd Vqq,Mq",             "broadcast64",  AVX),
    ("66.0F38.W0 19 /r",      "vbroadcastsd Vqq,Udq",            "broadcast64",  AVX2),
    ("66.0F38.W0 1A /r",      "vbroadcastf128 Vqq,Mdq",          "broadcast128", AVX),
    ("66.0F38.W0 5A /r",      "vbroadcasti128 Vqq,Mdq",          "broadcast128", AVX2),
    ("66.0F38.W0 78 /r",      "vpbroadcastb Vx,Wb",              "broadcast8",   AVX2),
    ("66.0F38.W0 79 /r",      "vpbroadcastw Vx,Ww",              "broadcast16",  AVX2),
    ("66.0F38.W0 58 /r",      "vpbroadcastd Vx,Wd",              "broadcast32",  AVX2),
    ("66.0F38.W0 59 /r",      "vpbroadcastq Vx,Wq",              "broadcast64",  AVX2),
    ("66.0F3A.W0 18 /r ib",   "vinsertf128 Vqq,Hqq,Wdq,Ib",      "insert128",    AVX),
    ("66.0F3A.W0 38 /r ib",   "vinserti128 Vqq,Hqq,Wdq,Ib",      "insert128",    AVX2),
    ("66.0F3A.W0 19 /r ib",   "vextractf128 Wdq,Vqq,Ib",         "extract128",   AVX),
    ("66.0F3A.W0 39 /r ib",   "vextracti128 Wdq,Vqq,Ib",         "extract128",   AVX2),
    ("66.0F3A.W0 06 /r ib",   "vperm2f128 Vqq,Hqq,Wqq,Ib",       "perm2x128",    AVX),
    ("66.0F3A.W0 46 /r ib",   "vperm2i128 Vqq,Hqq,Wqq,Ib",       "perm2x128",    AVX2),
    ("66.0F3A.W1 00 /r ib",   "vpermq Vqq,Wqq,Ib",               "permq",        AVX2),
    ("66.0F3A.W1 01 /r ib",   "vpermpd Vqq,Wqq,Ib",              "permq",        AVX2),
    ("66.0F38.W0 36 /r",      "vpermd Vqq,Hqq,Wqq",              "permd",        AVX2),
    ("66.0F38.W0 16 /r",      "vpermps Vqq,Hqq,Wqq",             "permd",        AVX2),
    ("66.0F3A.W0 04 /r ib",   "vpermilps Vx,Wx,Ib",              "permilps_imm", AVX),
    ("66.0F3A.W0 05 /r ib",   "vpermilpd Vx,Wx,Ib",              "permilpd_imm", AVX),
    ("66.0F38.W0 0C /r",      "vpermilps Vx,Hx,Wx",              "permilps",     AVX),
    ("66.0F38.W0 0D /r",      "vpermilpd Vx,Hx,Wx",              "permilpd",     AVX),
    ("66.0F3A.W0 02 /r ib",   "vpblendd Vx,Hx,Wx,Ib",            "blend32",      AVX2),
    ("66.0F3A 0C /r ib",      "vblendps Vx,Hx,Wx,Ib",            "blend32",      AVX),
    ("66.0F3A 0D /r ib",      "vblendpd Vx,Hx,Wx,Ib",            "blend64",      AVX),
    ("66.0F3A.W0 4C /r is4",  "vpblendvb Vx,Hx,Wx,Lx",           "blendv8",      AVX_AVX2),
    ("66.0F3A.W0 4A /r is4",  "vblendvps Vx,Hx,Wx,Lx",           "blendv32",     AVX),
    ("66.0F3A.W0 4B /r is4",  "vblendvpd Vx,Hx,Wx,Lx",           "blendv64",     AVX),
    ("66.0F38.W0 47 /r",      "vpsllvd Vx,Hx,Wx",                "sllv32",       AVX2),
    ("66.0F38.W1 47 /r",      "vpsllvq Vx,Hx,Wx",                "sllv64",       AVX2),
    ("66.0F38.W0 45 /r",      "vpsrlvd Vx,Hx,Wx",                "srlv32",       AVX2),
    ("66.0F38.W1 45 /r",      "vpsrlvq Vx,Hx,Wx",                "srlv64",       AVX2),
    ("66.0F38.W0 46 /r",      "vpsravd Vx,Hx,Wx",                "srav32",       AVX2),
    ("66.0F38.W0 0E /r",      "vtestps Vx,Wx",                   "test32",       AVX),
    ("66.0F38.W0 0F /r",      "vtestpd Vx,Wx",                   "test64",       AVX),
    ("66.0F38 20 /r",         "vpmovsxbw Vx,Wh",                 "sx8_16",       AVX_AVX2),
    ("66.0F38 21 /r",         "vpmovsxbd Vx,Wq",                 "sx8_32",       AVX_AVX2),
    ("66.0F38 22 /r",         "vpmovsxbq Vx,Wd",                 "sx8_64",       AVX_AVX2),
    ("66.0F38 23 /r",         "vpmovsxwd Vx,Wh",                 "sx16_32",      AVX_AVX2),
    ("66.0F38 24 /r",         "vpmovsxwq Vx,Wq",                 "sx16_64",      AVX_AVX2),
    ("66.0F38 25 /r",         "vpmovsxdq Vx,Wh",                 "sx32_64",      AVX_AVX2),
    ("66.0F38 30 /r",         "vpmovzxbw Vx,Wh",                 "zx8_16",       AVX_AVX2),
    ("66.0F38 31 /r",         "vpmovzxbd Vx,Wq",                 "zx8_32",       AVX_AVX2),
    ("66.0F38 32 /r",         "vpmovzxbq Vx,Wd",                 "zx8_64",       AVX_AVX2),
    ("66.0F38 33 /r",         "vpmovzxwd Vx,Wh",                 "zx16_32",      AVX_AVX2),
    ("66.0F38 34 /r",         "vpmovzxwq Vx,Wq",                 "zx16_64",      AVX_AVX2),
    ("66.0F38 35 /r",         "vpmovzxdq Vx,Wh",                 "zx32_64",      AVX_AVX2),
    ("66.0F38.W0 8C /r",      "vpmaskmovd Vx,Hx,Mx",             "maskload32",   AVX2),
    ("66.0F38.W1 8C /r",      "vpmaskmovq Vx,Hx,Mx",             "maskload64",   AVX2),
    ("66.0F38.W0 8E /r",      "vpmaskmovd Mx,Hx,Vx",             "maskstore32",  AVX2),
    ("66.0F38.W1 8E /r",      "vpmaskmovq Mx,Hx,Vx",             "maskstore64",  AVX2),
    ("66.0F38.W0 2C /r",      "vmaskmovps Vx,Hx,Mx",             "maskload32",   AVX),
    ("66.0F38.W0 2D /r",      "vmaskmovpd Vx,Hx,Mx",             "maskload64",   AVX),
    ("66.0F38.W0 2E /r",      "vmaskmovps Mx,Hx,Vx",             "maskstore32",  AVX),
    ("66.0F38.W0 2F /r",      "vmaskmovpd Mx,Hx,Vx",             "maskstore64",  AVX),
    ("66.0F38.W0 90 /r",      "vpgatherdd Vx,Mx,Hx",             "gather_d32",   AVX2),
    ("66.0F38.W1 90 /r",      "vpgatherdq Vx,Mx,Hx",             "gather_d64",   AVX2),
    ("66.0F38.W0 91 /r",      "vpgatherqd Vx,Mx,Hx",             "gather_q32",   AVX2),
    ("66.0F38.W1 91 /r",      "vpgatherqq Vx,Mx,Hx",             "gather_q64",   AVX2),
    ("66.0F38.W0 92 /r",      "vgatherdps Vx,Mx,Hx",             "gather_d32",   AVX2),
    ("66.0F38.W1 92 /r",      "vgatherdpd Vx,Mx,Hx",             "gather_d64",   AVX2),
    ("66.0F38.W0 93 /r",      "vgatherqps Vx,Mx,Hx",             "gather_q32",   AVX2),
    ("66.0F38.W1 93 /r",      "vgatherqpd Vx,Mx,Hx",             "gather_q64",   AVX2),
    ("66.0F38.W0 13 /r",      "vcvtph2ps Vx,Wh",                 "cvtph2ps",     "F16C"),
    ("66.0F3A.W0 1D /r ib",   "vcvtps2ph Wh,Vx,Ib",              "cvtps2ph",     "F16C"),
    ("F3.0F E6 /r",           "vcvtdq2pd Vqq,Wdq",               "cvtdq2pd256",  AVX),
    ("0F 5A /r",              "vcvtps2pd Vqq,Wdq",               "cvtps2pd256",  AVX),
    ("66.0F 5A /r",           "vcvtpd2ps Vdq,Wqq",               "cvtpd2ps256",  AVX),
    ("F2.0F E6 /r",           "vcvtpd2dq Vdq,Wqq",               "cvtpd2dq256",  AVX),
    ("66.0F E6 /r",           "vcvttpd2dq Vdq,Wqq",              "cvttpd2dq256", AVX),
) + tuple(
    # FMA3: 0F38 96-9F (132), A6-AF (213), B6-BF (231); W0 single, W1 double
    (f"66.0F38.W{w}{'.LIG' if scalar else ''} {base + low:02X} /r",
     f"v{op}{order}{('s' if scalar else 'p') + ('d' if w else 's')} "
     + ("Vdq,Hdq,W" + ("sd" if w else "ss") if scalar else "Vx,Hx,Wx"),
     f"fma_{op}_{order}_{'s' if scalar else 'p'}", "FMA")
    for base, order in ((0x90, "132"), (0xA0, "213"), (0xB0, "231"))
    for low, op, scalar in ((6, "fmaddsub", False), (7, "fmsubadd", False), (8, "fmadd", False),
                            (9, "fmadd", True), (0xA, "fmsub", False), (0xB, "fmsub", True),
                            (0xC, "fnmadd", False), (0xD, "fnmadd", True), (0xE, "fnmsub", False),
                            (0xF, "fnmsub", True))
    for w in (0, 1)
)

SEMANTICS: dict[str, Callable[[Insn], None]] = {}


def _named(*names: str):
    def register(fn):
        fn.width_generic = True
        for n in names:
            SEMANTICS[n] = fn
        return fn
    return register


# -- vzeroupper, vzeroall -----------------------------------------------------------
@_named("vzeroupper")
def vzeroupper(ctx: Insn) -> None:
    for n in range(16):
        ctx.em.set(f"ymmh{n}", ir.Constant(I128, 0))


@_named("vzeroall")
def vzeroall(ctx: Insn) -> None:
    for n in range(16):
        ctx.em.set(f"xmm{n}", ir.Constant(I128, 0))
        ctx.em.set(f"ymmh{n}", ir.Constant(I128, 0))


# -- broadcasts ------------------------------------------------------------------------
def _broadcast(bits: int):
    def fn(ctx: Insn) -> None:
        b = ctx.b
        x = b.trunc(rd(ctx, 1, mem_bits=bits, bits=max(bits, 128)), ir.IntType(bits))
        ty = vec(bits, vec_bits(ctx) // bits)
        v = b.insert_element(ir.Constant(ty, ir.Undefined), x, ir.Constant(I32, 0))
        wr(ctx, 0, b.shuffle_vector(v, v, mask_i32([0] * ty.count)))
    return fn


for _bits in (8, 16, 32, 64):
    _named(f"broadcast{_bits}")(_broadcast(_bits))


@_named("broadcast128")
def broadcast128(ctx: Insn) -> None:
    x = rd(ctx, 1, bits=128)
    wr(ctx, 0, concat_lanes(ctx, x, x))


# -- 128-bit lanes: insert, extract, permute --------------------------------------------
def _lanes_of(ctx: Insn, i: int) -> tuple[ir.Value, ir.Value]:
    v = rd(ctx, i, bits=256)
    return half(ctx, v, 0), half(ctx, v, 1)


@_named("insert128")
def insert128(ctx: Insn) -> None:
    lo, hi = _lanes_of(ctx, 0)
    x = rd(ctx, 1, bits=128)
    wr(ctx, 0, concat_lanes(ctx, lo, x) if imm8(ctx) & 1 else concat_lanes(ctx, x, hi))


@_named("extract128")
def extract128(ctx: Insn) -> None:
    """vextract[fi]128 Wdq, Vqq, Ib: to an xmm register (zeroing its upper
    half) or to memory.  No VEX.vvvv: operand 0 is the destination."""
    x = _lanes_of(ctx, 1)[imm8(ctx) & 1]
    if ctx.is_mem(0):
        ctx.store(ctx.ea(0), x)
    else:
        write_ymm(ctx, vreg_number(ctx.ops[0].reg)[0], x)


@_named("perm2x128")
def perm2x128(ctx: Insn) -> None:
    srcs = _lanes_of(ctx, 0) + _lanes_of(ctx, 1)
    imm = imm8(ctx)
    zero = ir.Constant(I128, 0)
    out = [zero if (imm >> (4 * k + 3)) & 1 else srcs[(imm >> (4 * k)) & 3] for k in (0, 1)]
    wr(ctx, 0, concat_lanes(ctx, out[0], out[1]))


@_named("permq")
def permq(ctx: Insn) -> None:
    v = cast(ctx, rd(ctx, 1, bits=256), vec(64, 4))
    imm = imm8(ctx)
    wr(ctx, 0, ctx.b.shuffle_vector(v, v, mask_i32([(imm >> (2 * k)) & 3 for k in range(4)])))


def _variable_shuffle(ctx: Insn, v: ir.Value, idx: ir.Value) -> ir.Value:
    """Lanes of ``v`` picked by the lanes of ``idx`` (already in range)."""
    b = ctx.b
    out = ir.Constant(v.type, ir.Undefined)
    for k in range(v.type.count):
        out = b.insert_element(out, b.extract_element(v, b.extract_element(idx, ir.Constant(I32, k))),
                               ir.Constant(I32, k))
    return out


@_named("permd")
def permd(ctx: Insn) -> None:
    """vpermd/vpermps ymm1, ymm2 (indices), ymm3/m256 (table)."""
    idx = ctx.b.and_(cast(ctx, rd(ctx, 0, bits=256), vec(32, 8)), splat(vec(32, 8), 7))
    wr(ctx, 0, _variable_shuffle(ctx, cast(ctx, rd(ctx, 1, bits=256), vec(32, 8)), idx))


@_named("permilps_imm")
def permilps_imm(ctx: Insn) -> None:
    n = vec_bits(ctx) // 32
    v = cast(ctx, rd(ctx, 1), vec(32, n))
    imm = imm8(ctx)
    wr(ctx, 0, ctx.b.shuffle_vector(v, v, mask_i32([(k & ~3) + ((imm >> (2 * (k & 3))) & 3)
                                                    for k in range(n)])))


@_named("permilpd_imm")
def permilpd_imm(ctx: Insn) -> None:
    n = vec_bits(ctx) // 64
    v = cast(ctx, rd(ctx, 1), vec(64, n))
    imm = imm8(ctx)
    wr(ctx, 0, ctx.b.shuffle_vector(v, v, mask_i32([(k & ~1) + ((imm >> k) & 1) for k in range(n)])))


@_named("permilps")
def permilps(ctx: Insn) -> None:
    """vpermilps x1, x2 (table), x3/m (control: bits 1:0 of each dword pick
    within its 128-bit lane)."""
    b = ctx.b
    n = vec_bits(ctx) // 32
    ty = vec(32, n)
    ctl = b.and_(cast(ctx, rd(ctx, 1), ty), splat(ty, 3))
    idx = b.add(ctl, ir.Constant(ty, [ir.Constant(I32, k & ~3) for k in range(n)]))
    wr(ctx, 0, _variable_shuffle(ctx, cast(ctx, rd(ctx, 0), ty), idx))


@_named("permilpd")
def permilpd(ctx: Insn) -> None:
    """vpermilpd: bit 1 of each qword of the control picks within its lane."""
    b = ctx.b
    n = vec_bits(ctx) // 64
    ty = vec(64, n)
    ctl = b.and_(b.lshr(cast(ctx, rd(ctx, 1), ty), splat(ty, 1)), splat(ty, 1))
    idx = b.add(ctl, ir.Constant(ty, [ir.Constant(I64, k & ~1) for k in range(n)]))
    wr(ctx, 0, _variable_shuffle(ctx, cast(ctx, rd(ctx, 0), ty), b.trunc(idx, vec(32, n))))


# -- blends --------------------------------------------------------------------------
def _blend_imm(bits: int):
    def fn(ctx: Insn) -> None:
        n = vec_bits(ctx) // bits
        ty = vec(bits, n)
        a, s = cast(ctx, rd(ctx, 0), ty), cast(ctx, rd(ctx, 1), ty)
        imm = imm8(ctx)
        # vpblendd/vblendps: bit k picks lane k (eight lanes at most)
        wr(ctx, 0, ctx.b.shuffle_vector(a, s, mask_i32([k + n if (imm >> (k % 8)) & 1 else k
                                                        for k in range(n)])))
    return fn


_named("blend32")(_blend_imm(32))
_named("blend64")(_blend_imm(64))


def _mask_register(ctx: Insn) -> ir.Value:
    """The register imm8[7:4] names (the is4 operand), at the operation's width."""
    n = imm8(ctx) >> 4
    return read_vreg(ctx, n, vec_bits(ctx))


def _blend_var(bits: int):
    def fn(ctx: Insn) -> None:
        b = ctx.b
        ty = vec(bits, vec_bits(ctx) // bits)
        a, s = cast(ctx, rd(ctx, 0), ty), cast(ctx, rd(ctx, 1), ty)
        m = cast(ctx, _mask_register(ctx), ty)
        wr(ctx, 0, b.select(b.icmp_signed("<", m, splat(ty, 0)), s, a))
    return fn


_named("blendv8")(_blend_var(8))
_named("blendv32")(_blend_var(32))
_named("blendv64")(_blend_var(64))


# -- per-element shifts -----------------------------------------------------------------
def _shift_v(bits: int, kind: str):
    def fn(ctx: Insn) -> None:
        b = ctx.b
        ty = vec(bits, vec_bits(ctx) // bits)
        a, n = cast(ctx, rd(ctx, 0), ty), cast(ctx, rd(ctx, 1), ty)
        big = b.icmp_unsigned(">=", n, splat(ty, bits))
        if kind == "sra":
            r = b.ashr(a, b.select(big, splat(ty, bits - 1), n))
        else:
            safe = b.select(big, splat(ty, 0), n)
            r = b.select(big, splat(ty, 0), b.shl(a, safe) if kind == "sll" else b.lshr(a, safe))
        wr(ctx, 0, r)
    return fn


for _bits in (32, 64):
    _named(f"sllv{_bits}")(_shift_v(_bits, "sll"))
    _named(f"srlv{_bits}")(_shift_v(_bits, "srl"))
_named("srav32")(_shift_v(32, "sra"))


# -- vtestps, vtestpd -----------------------------------------------------------------------
def _test(bits: int):
    """vtestps/vtestpd: ptest's flags on the sign bits of each element."""
    sign = sum(1 << (k * bits + bits - 1) for k in range(64 // bits))   # in a 64-bit lane

    def fn(ctx: Insn) -> None:
        test_flags(ctx, sign)
    return fn


_named("test32")(_test(32))
_named("test64")(_test(64))


# -- vpmovsx, vpmovzx -----------------------------------------------------------------------
def _extend(src_bits: int, dst_bits: int, signed: bool):
    def fn(ctx: Insn) -> None:
        b = ctx.b
        n = vec_bits(ctx) // dst_bits
        v = rd(ctx, 1, mem_bits=n * src_bits, bits=max(128, n * src_bits))
        v = b.trunc(v, ir.IntType(n * src_bits)) if v.type.width > n * src_bits else v
        v = b.bitcast(v, vec(src_bits, n))
        wr(ctx, 0, (b.sext if signed else b.zext)(v, vec(dst_bits, n)))
    return fn


for _s, _d in ((8, 16), (8, 32), (8, 64), (16, 32), (16, 64), (32, 64)):
    _named(f"sx{_s}_{_d}")(_extend(_s, _d, True))
    _named(f"zx{_s}_{_d}")(_extend(_s, _d, False))


# -- FMA3 -------------------------------------------------------------------------------
def _fma(op: str, order: str, scalar: bool):
    """v{op}{order}{p,s}{s,d}: operands x1 (the destination), x2 (VEX.vvvv),
    x3 (r/m); 132: x1*x3+x2, 213: x2*x1+x3, 231: x2*x3+x1, one rounding.
    A NaN operand gives the first NaN of the two factors and the addend, in
    that order, made quiet (not negated by fnmadd/fnmsub): for 132 that is
    x1, x3, x2 (measured on the host).  Rounded by MXCSR.RC (sse_fpcore.fused)."""
    def fn(ctx: Insn) -> None:
        b = ctx.b
        fbits = 64 if ctx.vex.w else 32
        width = 128 if scalar else vec_bits(ctx)
        n = width // fbits
        fty = ir.VectorType(ir.DoubleType() if fbits == 64 else ir.FloatType(), n)
        x1 = b.bitcast(read_vreg(ctx, vreg_number(ctx.dest.reg)[0], width), fty)   # also a source
        x2 = b.bitcast(rd(ctx, 0, bits=width), fty)
        x3 = b.bitcast(rd(ctx, 1, mem_bits=fbits if scalar else width, bits=width), fty)
        a, m, c = {"132": (x1, x3, x2), "213": (x2, x1, x3), "231": (x2, x3, x1)}[order]
        nan_order = (a, m, c)
        neg_c = b.fneg(c)
        if op in ("fnmadd", "fnmsub"):
            a = b.fneg(a)
        if op in ("fmaddsub", "fmsubadd"):
            plus, minus = fp.fused(ctx, a, m, c), fp.fused(ctx, a, m, neg_c)
            # fmaddsub subtracts in even lanes, fmsubadd in odd ones
            even_sub = op == "fmaddsub"
            r = b.shuffle_vector(minus if even_sub else plus, plus if even_sub else minus,
                                 mask_i32([k if k % 2 == 0 else k + n for k in range(n)]))
        else:
            r = fp.fused(ctx, a, m, neg_c if op in ("fmsub", "fnmsub") else c)
        r = fp.nan_fix(ctx, r, *nan_order)
        if scalar:
            r = b.insert_element(x1, b.extract_element(r, ir.Constant(I32, 0)), ir.Constant(I32, 0))
        wr(ctx, 0, r)
    return fn


for _order in ("132", "213", "231"):
    for _op in ("fmadd", "fmsub", "fnmadd", "fnmsub", "fmaddsub", "fmsubadd"):
        for _scalar in ((False, True) if _op in ("fmadd", "fmsub", "fnmadd", "fnmsub") else (False,)):
            _named(f"fma_{_op}_{_order}_{'s' if _scalar else 'p'}")(_fma(_op, _order, _scalar))


# -- conversions between 128 and 256 bits -----------------------------------------------
F32V4, F64V4 = ir.VectorType(ir.FloatType(), 4), ir.VectorType(ir.DoubleType(), 4)


@_named("cvtdq2pd256")
def cvtdq2pd256(ctx: Insn) -> None:
    wr(ctx, 0, fp.int_to_fp(ctx, cast(ctx, rd(ctx, 1, bits=128), vec(32, 4)), F64V4))


@_named("cvtps2pd256")
def cvtps2pd256(ctx: Insn) -> None:
    wr(ctx, 0, fp.widen(ctx, cast(ctx, rd(ctx, 1, bits=128), F32V4), F64V4))


@_named("cvtpd2ps256")
def cvtpd2ps256(ctx: Insn) -> None:
    wr(ctx, 0, fp.narrow(ctx, cast(ctx, rd(ctx, 1, bits=256), F64V4), F32V4))


def _pd2dq256(truncate: bool):
    def fn(ctx: Insn) -> None:
        wr(ctx, 0, fp.fp_to_int(ctx, cast(ctx, rd(ctx, 1, bits=256), F64V4), 32, truncate))
    return fn


_named("cvtpd2dq256")(_pd2dq256(False))
_named("cvttpd2dq256")(_pd2dq256(True))


# -- masked moves ----------------------------------------------------------------------
def _mask_bits(ctx: Insn, mask: ir.Value, bits: int) -> ir.Value:
    """``<n x i1>``: the sign bit of each ``bits``-wide lane of ``mask``."""
    ty = vec(bits, vec_bits(ctx) // bits)
    return ctx.b.icmp_signed("<", cast(ctx, mask, ty), splat(ty, 0))


def _maskload(bits: int):
    def fn(ctx: Insn) -> None:
        """v(p)maskmov load: Vx = lanes of Mx where Hx's lane is negative, else 0."""
        m = _mask_bits(ctx, rd(ctx, 0), bits)
        wr(ctx, 0, ctx.em.masked_load(ctx.ea(1), vec(bits, vec_bits(ctx) // bits), m))
    return fn


def _maskstore(bits: int):
    def fn(ctx: Insn) -> None:
        """v(p)maskmov store: lanes of Vx where Hx's lane is negative go to Mx.
        Operands: Mx (the destination, not dropped: it is no register), Hx, Vx."""
        ops = ctx.insn.operands
        n = vreg_number(ops[1].reg)[0]
        mask = read_vreg(ctx, n, vec_bits(ctx))
        v = vreg_number(ops[2].reg)[0]
        value = read_vreg(ctx, v, vec_bits(ctx))
        ty = vec(bits, vec_bits(ctx) // bits)
        ctx.em.masked_store(ctx.ea_of(ops[0]), cast(ctx, value, ty), _mask_bits(ctx, mask, bits))
    return fn


for _bits in (32, 64):
    _named(f"maskload{_bits}")(_maskload(_bits))
    _named(f"maskstore{_bits}")(_maskstore(_bits))


# -- gathers ---------------------------------------------------------------------------
def _gather(index_bits: int, elem_bits: int):
    def fn(ctx: Insn) -> None:
        """v(p)gather{d,q}{d,q,ps,pd} Vx, [base + index*scale + disp], Hx:
        each element whose mask lane is negative is loaded from its address,
        the others keep the destination's; the mask register becomes zero.
        A fault partway leaves what the CPU would only if it is the first
        lane's (no partial progress is kept)."""
        b = ctx.b
        ops = ctx.insn.operands
        dest_n = vreg_number(ops[0].reg)[0]
        mask_n = vreg_number(ops[2].reg)[0]
        mem = ops[1].mem
        idx_n, idx_width = vreg_number(mem.index)
        count = (128 << ctx.vex.l) // max(index_bits, elem_bits)
        elem_ty = vec(elem_bits, count)
        out_bits = count * elem_bits
        old = read_vreg(ctx, dest_n, out_bits)
        maskv = read_vreg(ctx, mask_n, out_bits)
        old = cast(ctx, b.trunc(old, ir.IntType(out_bits)) if old.type.width > out_bits else old,
                   elem_ty)
        maskv = b.trunc(maskv, ir.IntType(out_bits)) if maskv.type.width > out_bits else maskv
        sel = b.icmp_signed("<", cast(ctx, maskv, elem_ty), splat(elem_ty, 0))
        index = read_vreg(ctx, idx_n, idx_width)
        index = cast(ctx, b.trunc(index, ir.IntType(count * index_bits))
                     if index.type.width > count * index_bits else index, vec(index_bits, count))
        base = _vsib_base(ctx, mem)
        addrs = []
        for k in range(count):
            i = b.extract_element(index, ir.Constant(I32, k))
            i = b.sext(i, I64) if index_bits == 32 else i
            a = b.mul(i, ir.Constant(I64, mem.scale))
            a = b.add(a, base) if base is not None else a
            addrs.append(b.add(a, ir.Constant(I64, mem.disp & 0xFFFFFFFFFFFFFFFF)) if mem.disp else a)
        got = ctx.em.masked_gather(addrs, elem_ty, sel, old)
        write_ymm(ctx, dest_n, got)
        write_ymm(ctx, mask_n, ir.Constant(I128, 0))
    return fn


def _vsib_base(ctx: Insn, mem) -> ir.Value | None:
    """The base register plus the FS/GS base of a VSIB memory operand (its
    index is a vector register, which translator/addressing.py does not
    take)."""
    b = ctx.b
    base = None
    if mem.base != X.X86_REG_INVALID:
        base = ctx.get_reg(mem.base)
        if base.type.width != 64:
            base = b.zext(base, I64)
    seg = {X.X86_REG_FS: "fs_base", X.X86_REG_GS: "gs_base"}.get(mem.segment)
    if seg is not None:
        base = ctx.em.get(seg) if base is None else b.add(base, ctx.em.get(seg))
    return base


for _i in (32, 64):
    for _e in (32, 64):
        _named(f"gather_{'d' if _i == 32 else 'q'}{_e}")(_gather(_i, _e))


# -- F16C --------------------------------------------------------------------------------
@_named("cvtph2ps")
def cvtph2ps(ctx: Insn) -> None:
    b = ctx.b
    n = vec_bits(ctx) // 32
    v = rd(ctx, 1, mem_bits=16 * n, bits=128)
    v = b.trunc(v, ir.IntType(16 * n)) if 16 * n < 128 else v
    wr(ctx, 0, b.fpext(b.bitcast(v, ir.VectorType(HALF, n)), ir.VectorType(ir.FloatType(), n)))


@_named("cvtps2ph")
def cvtps2ph(ctx: Insn) -> None:
    """vcvtps2ph Wh, Vx, Ib: to an xmm (zeroing the rest) or memory, rounded
    by imm8[1:0], or by MXCSR.RC when imm8 bit 2 is set."""
    imm = imm8(ctx)
    n = vec_bits(ctx) // 32
    src = cast(ctx, rd(ctx, 1), ir.VectorType(ir.FloatType(), n))
    h = ctx.b.bitcast(fp.to_half(ctx, src, None if imm & 4 else imm & 3), ir.IntType(16 * n))
    if ctx.is_mem(0):
        ctx.store(ctx.ea(0), h)
    else:
        write_ymm(ctx, vreg_number(ctx.ops[0].reg)[0], h)


__all__ = ["ROWS", "SEMANTICS"]

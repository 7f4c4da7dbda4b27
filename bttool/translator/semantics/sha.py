"""SHA extensions: sha1rnds4 sha1nexte sha1msg1 sha1msg2 and sha256rnds2
sha256msg1 sha256msg2, on which OpenSSL's SHA-1 and SHA-256 (and so HMAC
and PBKDF2) run when cpuid advertises them.

On a host with them (LiftOptions.host_instructions: "+sha") each is the
host's own instruction through LLVM's ``llvm.x86.sha*`` intrinsics; the
generic IR below follows the SDM's pseudocode (vol. 2, "SHA1RNDS4" ...),
on the four dwords of each operand: dword 3 (bits 127:96) is the SDM's
first variable (A, W0...), dword 0 the last.
"""
from __future__ import annotations

from llvmlite import ir

from bttool.translator.operands import Insn
from bttool.translator.registry import semantic
from bttool.translator.semantics.sse_common import I8, I32, cast, imm8, rd, vec, wr

V4 = vec(32, 4)


def _dwords(ctx: Insn, v: ir.Value) -> list[ir.Value]:
    """Dwords 3, 2, 1, 0 of a 128-bit value (the SDM's order)."""
    v4 = cast(ctx, v, V4)
    return [ctx.b.extract_element(v4, ir.Constant(I32, i)) for i in (3, 2, 1, 0)]


def _pack(ctx: Insn, hi_to_lo: list[ir.Value]) -> ir.Value:
    out = ir.Constant(V4, ir.Undefined)
    for i, d in zip((3, 2, 1, 0), hi_to_lo):
        out = ctx.b.insert_element(out, d, ir.Constant(I32, i))
    return out


def _rol(ctx: Insn, x: ir.Value, n: int) -> ir.Value:
    b = ctx.b
    return b.or_(b.shl(x, ir.Constant(I32, n)), b.lshr(x, ir.Constant(I32, 32 - n)))


def _ror(ctx: Insn, x: ir.Value, n: int) -> ir.Value:
    return _rol(ctx, x, 32 - n)


def _xor(ctx: Insn, *xs: ir.Value) -> ir.Value:
    r = xs[0]
    for x in xs[1:]:
        r = ctx.b.xor(r, x)
    return r


def _add(ctx: Insn, *xs: ir.Value) -> ir.Value:
    r = xs[0]
    for x in xs[1:]:
        r = ctx.b.add(r, x)
    return r


def _host(ctx: Insn, name: str, extra: list[ir.Value] | None = None) -> bool:
    """The host's instruction, if it has SHA: done."""
    if "+sha" not in ctx.em.host_features:
        return False
    args = [cast(ctx, rd(ctx, 0), V4), cast(ctx, rd(ctx, 1), V4)] + (extra or [])
    wr(ctx, 0, ctx.em.intrinsic(f"llvm.x86.{name}", V4, args))
    return True


# -- SHA-1 -------------------------------------------------------------------

_SHA1_K = (0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xCA62C1D6)


def _sha1_f(ctx: Insn, kind: int, x: ir.Value, y: ir.Value, z: ir.Value) -> ir.Value:
    b = ctx.b
    if kind == 0:
        return b.xor(b.and_(x, y), b.and_(b.not_(x), z))
    if kind == 2:
        return _xor(ctx, b.and_(x, y), b.and_(x, z), b.and_(y, z))
    return _xor(ctx, x, y, z)


@semantic("sha1rnds4")
def sha1rnds4(ctx: Insn) -> None:
    """Four SHA-1 rounds of the function and constant the immediate picks,
    from state A B C D and the words W0+E, W1, W2, W3."""
    kind = imm8(ctx) & 3
    if _host(ctx, "sha1rnds4", [ir.Constant(I8, kind)]):
        return
    a, bb, c, d = _dwords(ctx, rd(ctx, 0))
    w = _dwords(ctx, rd(ctx, 1))
    k = ir.Constant(I32, _SHA1_K[kind])
    e = None
    for i in range(4):
        t = _add(ctx, _sha1_f(ctx, kind, bb, c, d), _rol(ctx, a, 5), w[i], k)
        if e is not None:
            t = ctx.b.add(t, e)
        a, bb, c, d, e = t, a, _rol(ctx, bb, 30), c, d
    wr(ctx, 0, _pack(ctx, [a, bb, c, d]))


@semantic("sha1nexte")
def sha1nexte(ctx: Insn) -> None:
    """The next E (A rotated left 30) added to the source's dword 3."""
    if _host(ctx, "sha1nexte"):
        return
    a = _dwords(ctx, rd(ctx, 0))[0]
    w = _dwords(ctx, rd(ctx, 1))
    wr(ctx, 0, _pack(ctx, [ctx.b.add(w[0], _rol(ctx, a, 30))] + w[1:]))


@semantic("sha1msg1")
def sha1msg1(ctx: Insn) -> None:
    if _host(ctx, "sha1msg1"):
        return
    w0, w1, w2, w3 = _dwords(ctx, rd(ctx, 0))
    w4, w5, _, _ = _dwords(ctx, rd(ctx, 1))
    b = ctx.b
    wr(ctx, 0, _pack(ctx, [b.xor(w2, w0), b.xor(w3, w1), b.xor(w4, w2), b.xor(w5, w3)]))


@semantic("sha1msg2")
def sha1msg2(ctx: Insn) -> None:
    if _host(ctx, "sha1msg2"):
        return
    b = ctx.b
    s = _dwords(ctx, rd(ctx, 0))
    _, w13, w14, w15 = _dwords(ctx, rd(ctx, 1))
    w16 = _rol(ctx, b.xor(s[0], w13), 1)
    w17 = _rol(ctx, b.xor(s[1], w14), 1)
    w18 = _rol(ctx, b.xor(s[2], w15), 1)
    w19 = _rol(ctx, b.xor(s[3], w16), 1)
    wr(ctx, 0, _pack(ctx, [w16, w17, w18, w19]))


# -- SHA-256 -----------------------------------------------------------------

@semantic("sha256rnds2")
def sha256rnds2(ctx: Insn) -> None:
    """Two SHA-256 rounds: state C D G H in the destination, A B E F in the
    source, the two message-plus-constant words in xmm0's low dwords."""
    xmm0 = ctx.xmm(0)
    if _host(ctx, "sha256rnds2", [cast(ctx, xmm0, V4)]):
        return
    b = ctx.b
    c, d, g, h = _dwords(ctx, rd(ctx, 0))
    a, bb, e, f = _dwords(ctx, rd(ctx, 1))
    wk = _dwords(ctx, xmm0)[::-1]           # dword 0, then dword 1
    for i in range(2):
        ch = b.xor(b.and_(e, f), b.and_(b.not_(e), g))
        maj = _xor(ctx, b.and_(a, bb), b.and_(a, c), b.and_(bb, c))
        s0 = _xor(ctx, _ror(ctx, a, 2), _ror(ctx, a, 13), _ror(ctx, a, 22))
        s1 = _xor(ctx, _ror(ctx, e, 6), _ror(ctx, e, 11), _ror(ctx, e, 25))
        t = _add(ctx, ch, s1, wk[i], h)
        a, bb, c, d, e, f, g, h = b.add(_add(ctx, t, maj), s0), a, bb, c, b.add(t, d), e, f, g
    wr(ctx, 0, _pack(ctx, [a, bb, e, f]))


def _sigma(ctx: Insn, x: ir.Value, r1: int, r2: int, sh: int) -> ir.Value:
    return _xor(ctx, _ror(ctx, x, r1), _ror(ctx, x, r2), ctx.b.lshr(x, ir.Constant(I32, sh)))


@semantic("sha256msg1")
def sha256msg1(ctx: Insn) -> None:
    """W[i] + sigma0(W[i+1]) for the four words W0..W3 (W4 from the source)."""
    if _host(ctx, "sha256msg1"):
        return
    w3, w2, w1, w0 = _dwords(ctx, rd(ctx, 0))
    w4 = _dwords(ctx, rd(ctx, 1))[3]
    b = ctx.b
    s0 = [_sigma(ctx, x, 7, 18, 3) for x in (w4, w3, w2, w1)]
    wr(ctx, 0, _pack(ctx, [b.add(w3, s0[0]), b.add(w2, s0[1]), b.add(w1, s0[2]),
                           b.add(w0, s0[3])]))


@semantic("sha256msg2")
def sha256msg2(ctx: Insn) -> None:
    """The next four message words, each needing sigma1 of the one two
    before (W14, W15 from the source, then the new W16, W17)."""
    if _host(ctx, "sha256msg2"):
        return
    b = ctx.b
    s = _dwords(ctx, rd(ctx, 0))[::-1]       # dwords 0..3
    w15, w14, _, _ = _dwords(ctx, rd(ctx, 1))
    w16 = b.add(s[0], _sigma(ctx, w14, 17, 19, 10))
    w17 = b.add(s[1], _sigma(ctx, w15, 17, 19, 10))
    w18 = b.add(s[2], _sigma(ctx, w16, 17, 19, 10))
    w19 = b.add(s[3], _sigma(ctx, w17, 17, 19, 10))
    wr(ctx, 0, _pack(ctx, [w19, w18, w17, w16]))

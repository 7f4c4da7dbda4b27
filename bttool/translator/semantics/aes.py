"""AES-NI (aesenc aesenclast aesdec aesdeclast aesimc aeskeygenassist) and
PCLMULQDQ: the instructions OpenSSL's AES and AES-GCM, and zlib-ng's and
the kernel's CRC folding, are built on.

On a host with them (LiftOptions.host_instructions: "+aes", "+pclmul")
each is the host's own instruction through LLVM's ``llvm.x86.aesni.*`` and
``llvm.x86.pclmulqdq`` intrinsics.  Elsewhere the generic IR below
computes the same from FIPS-197: the state is 16 bytes, column-major (byte
``r + 4c`` is row r of column c), ShiftRows a byte shuffle, SubBytes one
table load per byte, MixColumns GF(2^8) arithmetic on the whole vector.
"""
from __future__ import annotations

import functools

from llvmlite import ir

from bttool.translator.operands import Insn
from bttool.translator.registry import semantic
from bttool.translator.semantics.sse_common import (
    I1, I8, I32, I64, I128, cast, imm8, mask_i32, rd, splat, vec, wr)

V16 = vec(8, 16)
V2 = vec(64, 2)


@functools.cache
def sboxes() -> tuple[list[int], list[int]]:
    """The AES S-box and its inverse (FIPS-197 5.1.1): the multiplicative
    inverse in GF(2^8) mod x^8+x^4+x^3+x+1 (from powers of the generator
    3), then the affine map.  Made on first use: only the generic IR needs
    them, and a translator process should not pay for them at import."""
    exp, log = [0] * 255, [0] * 256
    x = 1
    for i in range(255):
        exp[i], log[x] = x, i
        x ^= (x << 1) ^ (0x11B if x & 0x80 else 0)      # x * 3
    box = []
    for a in range(256):
        inv = exp[(255 - log[a]) % 255] if a else 0
        s = inv
        for k in range(1, 5):
            s ^= ((inv << k) | (inv >> (8 - k))) & 0xFF
        box.append(s ^ 0x63)
    back = [0] * 256
    for a, s in enumerate(box):
        back[s] = a
    return box, back


# ShiftRows and its inverse as byte permutations: row r moves left (right)
# by r columns
SHIFT_ROWS = [r + 4 * ((c + r) % 4) for c in range(4) for r in range(4)]
INV_SHIFT_ROWS = [r + 4 * ((c - r) % 4) for c in range(4) for r in range(4)]


def _table(ctx: Insn, name: str, values: list[int]) -> ir.GlobalVariable:
    module = ctx.em.module
    g = module.globals.get(name)
    if g is None:
        ty = ir.ArrayType(I8, 256)
        g = ir.GlobalVariable(module, ty, name)
        g.linkage = "private"
        g.global_constant = True
        g.initializer = ir.Constant(ty, [ir.Constant(I8, v) for v in values])
    return g


def _sub_bytes(ctx: Insn, v: ir.Value, inverse: bool = False) -> ir.Value:
    b = ctx.b
    table = _table(ctx, "bt_aes_inv_sbox" if inverse else "bt_aes_sbox", sboxes()[inverse])
    out = ir.Constant(V16, ir.Undefined)
    zero = ir.Constant(I64, 0)
    for i in range(16):
        byte = b.extract_element(v, ir.Constant(I32, i))
        slot = b.gep(table, [zero, b.zext(byte, I64)], inbounds=True)
        out = b.insert_element(out, b.load(slot, typ=I8), ir.Constant(I32, i))
    return out


def _permute(ctx: Insn, v: ir.Value, order: list[int]) -> ir.Value:
    return ctx.b.shuffle_vector(v, v, mask_i32(order))


def _rotate_rows(ctx: Insn, v: ir.Value, k: int) -> ir.Value:
    """Each column's bytes moved up by k rows: byte r of a column becomes
    the column's byte r + k."""
    return _permute(ctx, v, [(r + k) % 4 + 4 * c for c in range(4) for r in range(4)])


def _xtime(ctx: Insn, v: ir.Value) -> ir.Value:
    """Every byte times x in GF(2^8)."""
    b = ctx.b
    carry = b.ashr(v, splat(V16, 7))                    # 0xFF where the top bit was set
    return b.xor(b.shl(v, splat(V16, 1)), b.and_(carry, splat(V16, 0x1B)))


def _mix_columns(ctx: Insn, v: ir.Value) -> ir.Value:
    """b_r = 2 a_r + 3 a_(r+1) + a_(r+2) + a_(r+3) per column."""
    b = ctx.b
    r1 = _rotate_rows(ctx, v, 1)
    two = _xtime(ctx, v)
    three_next = b.xor(_xtime(ctx, r1), r1)
    return b.xor(b.xor(two, three_next), b.xor(_rotate_rows(ctx, v, 2), _rotate_rows(ctx, v, 3)))


def _inv_mix_columns(ctx: Insn, v: ir.Value) -> ir.Value:
    """b_r = 14 a_r + 11 a_(r+1) + 13 a_(r+2) + 9 a_(r+3) per column."""
    b = ctx.b
    x2 = _xtime(ctx, v)
    x4 = _xtime(ctx, x2)
    x8 = _xtime(ctx, x4)
    m9 = b.xor(x8, v)
    m11 = b.xor(m9, x2)
    m13 = b.xor(m9, x4)
    m14 = b.xor(b.xor(x8, x4), x2)
    return b.xor(b.xor(m14, _rotate_rows(ctx, m11, 1)),
                 b.xor(_rotate_rows(ctx, m13, 2), _rotate_rows(ctx, m9, 3)))


def _host(ctx: Insn, feature: str) -> bool:
    return feature in ctx.em.host_features


@semantic("aesenc", "aesenclast", "aesdec", "aesdeclast")
def aes_round(ctx: Insn) -> None:
    """One round: (Inv)ShiftRows, (Inv)SubBytes, (Inv)MixColumns except in
    the last round, then the round key (the second operand) xored in."""
    b = ctx.b
    op = ctx.mnemonic
    state, key = rd(ctx, 0), rd(ctx, 1)
    if _host(ctx, "+aes"):
        r = ctx.em.intrinsic(f"llvm.x86.aesni.{op}", V2, [cast(ctx, state, V2), cast(ctx, key, V2)])
        wr(ctx, 0, r)
        return
    dec = op.startswith("aesdec")
    s = _permute(ctx, cast(ctx, state, V16), INV_SHIFT_ROWS if dec else SHIFT_ROWS)
    s = _sub_bytes(ctx, s, inverse=dec)
    if not op.endswith("last"):
        s = (_inv_mix_columns if dec else _mix_columns)(ctx, s)
    wr(ctx, 0, b.xor(s, cast(ctx, key, V16)))


@semantic("aesimc")
def aesimc(ctx: Insn) -> None:
    """InvMixColumns of the source (decryption round keys from encryption's)."""
    src = rd(ctx, 1)
    if _host(ctx, "+aes"):
        wr(ctx, 0, ctx.em.intrinsic("llvm.x86.aesni.aesimc", V2, [cast(ctx, src, V2)]))
        return
    wr(ctx, 0, _inv_mix_columns(ctx, cast(ctx, src, V16)))


@semantic("aeskeygenassist")
def aeskeygenassist(ctx: Insn) -> None:
    """SubWord of source dwords 1 and 3, each also rotated right by 8 bits
    and xored with the immediate: the key-expansion step."""
    b = ctx.b
    src = rd(ctx, 1)
    imm = imm8(ctx)
    if _host(ctx, "+aes"):
        r = ctx.em.intrinsic("llvm.x86.aesni.aeskeygenassist", V2,
                             [cast(ctx, src, V2), ir.Constant(I8, imm)])
        wr(ctx, 0, r)
        return
    sub = b.bitcast(_sub_bytes(ctx, cast(ctx, src, V16)), vec(32, 4))
    out = ir.Constant(vec(32, 4), ir.Undefined)
    for k, lane in enumerate((1, 3)):
        w = b.extract_element(sub, ir.Constant(I32, lane))
        rot = b.or_(b.lshr(w, ir.Constant(I32, 8)), b.shl(w, ir.Constant(I32, 24)))
        out = b.insert_element(out, w, ir.Constant(I32, 2 * k))
        out = b.insert_element(out, b.xor(rot, ir.Constant(I32, imm)), ir.Constant(I32, 2 * k + 1))
    wr(ctx, 0, out)


@semantic("pclmulqdq")
def pclmulqdq(ctx: Insn) -> None:
    """The carry-less product of a quadword of each operand (the
    immediate's bits 0 and 4 pick the high ones): 128 bits."""
    b = ctx.b
    dst, src = rd(ctx, 0), rd(ctx, 1)
    imm = imm8(ctx)
    if _host(ctx, "+pclmul"):
        r = ctx.em.intrinsic("llvm.x86.pclmulqdq", V2,
                             [cast(ctx, dst, V2), cast(ctx, src, V2), ir.Constant(I8, imm)])
        wr(ctx, 0, r)
        return

    def half(v: ir.Value, high: int) -> ir.Value:
        return b.trunc(b.lshr(v, ir.Constant(I128, 64)) if high else v, I64)
    a = b.zext(half(dst, imm & 1), I128)
    x = half(src, imm >> 4 & 1)
    r = ir.Constant(I128, 0)
    for i in range(64):
        bit = b.trunc(b.lshr(x, ir.Constant(I64, i)), I1)
        r = b.xor(r, b.select(bit, b.shl(a, ir.Constant(I128, i)), ir.Constant(I128, 0)))
    wr(ctx, 0, r)

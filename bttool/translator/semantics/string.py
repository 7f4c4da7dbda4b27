"""String family: movs stos lods cmps scas with rep/repe/repne and DF.

Each is an IR loop over rcx (when repeated); the direction flag picks the
step sign.  ``rep movs`` and ``rep stos`` first move whole 32-byte chunks
where that gives the loop's result (``_wide_prefix``).  ``movsd``/``cmpsd``
share capstone ids with the SSE scalar double instructions, so they
dispatch on their operands.
"""
from __future__ import annotations

from llvmlite import ir

from bttool.ir.emitter import I64
from bttool.translator import flags
from bttool.translator.decoder import encoding, reg_table
from bttool.translator.operands import Insn
from bttool.translator.registry import semantic

_SIZE = {"b": 1, "w": 2, "d": 4, "q": 8}


def _has_xmm(ctx: Insn) -> bool:
    regs = reg_table()
    return any(ctx.is_reg(i) and regs.get(op.reg) is not None and regs[op.reg].field.startswith("xmm")
               for i, op in enumerate(ctx.ops))


def _rep_prefix(ctx: Insn) -> int:
    """0xF3 (rep/repe), 0xF2 (repne) or 0.  capstone 5 drops the F2 of
    ``F2 A5`` (it is SSE movsd's mandatory prefix; the CPU runs rep movsd),
    so without a prefix from capstone the bytes decide: the last F2/F3."""
    if ctx.rep:
        return 0xF3
    if ctx.repne:
        return 0xF2
    enc = encoding(bytes(ctx.insn.bytes))
    reps = [p for p in (enc.prefixes if enc is not None else b"") if p in (0xF2, 0xF3)]
    return reps[-1] if reps else 0


def _string_op(ctx: Insn, size: int, kind: str) -> None:
    """With 32-bit address size (67h) the count is ECX and the pointers are
    ESI/EDI; every write of them zero-extends to 64 bits, and a repeated
    form that starts with ECX = 0 writes none of them (RCX, RSI, RDI keep
    bits 63:32): the SDM's pseudocode, and what AMD family 25 does for every
    string instruction with rep, repe and repne (tests/implementation_defined.py:
    other CPUs zero-extend them anyway)."""
    b = ctx.b
    bits = size * 8
    abits = 64 if ctx.insn.addr_size == 8 else 32
    prefix = _rep_prefix(ctx)
    repeated = prefix != 0
    step = b.select(ctx.flag("df"), ctx.c(64, -size), ctx.c(64, size))

    if prefix == 0xF3 and kind in ("movs", "stos") and abits == 64 and _wide_ok(ctx):
        _wide_prefix(ctx, size, kind)
        b = ctx.b
    done = ctx.em.new_block("str.done")
    body = ctx.em.new_block("str.body")
    if repeated:
        b.cbranch(ctx.is_true(ctx.gpr("rcx", abits)), body, done)
    else:
        b.branch(body)
    b.position_at_end(body)

    def addr(reg: str) -> ir.Value:
        v = ctx.gpr(reg, abits)
        return v if abits == 64 else b.zext(v, I64)

    def advance(reg: str) -> None:
        ctx.set_gpr(reg, b.trunc(b.add(addr(reg), step), ir.IntType(abits)) if abits < 64
                    else b.add(addr(reg), step))

    cmp_result = None
    if kind == "movs":
        ctx.store(addr("rdi"), ctx.load(addr("rsi"), bits))
        advance("rsi")
        advance("rdi")
    elif kind == "stos":
        ctx.store(addr("rdi"), ctx.gpr("rax", bits))
        advance("rdi")
    elif kind == "lods":
        ctx.set_part("rax", bits, ctx.load(addr("rsi"), bits))
        advance("rsi")
    elif kind == "cmps":
        a, c = ctx.load(addr("rsi"), bits), ctx.load(addr("rdi"), bits)
        flags.set_sub(ctx, a, c, b.sub(a, c))
        cmp_result = True
        advance("rsi")
        advance("rdi")
    elif kind == "scas":
        a, c = ctx.gpr("rax", bits), ctx.load(addr("rdi"), bits)
        flags.set_sub(ctx, a, c, b.sub(a, c))
        cmp_result = True
        advance("rdi")

    if repeated:
        cnt = b.sub(ctx.gpr("rcx", abits), ctx.c(abits, 1))
        ctx.set_gpr("rcx", cnt)
        more = ctx.is_true(cnt)
        if cmp_result:
            zf = ctx.flag("zf")
            more = b.and_(more, zf if prefix == 0xF3 else b.not_(zf))
        b.cbranch(more, body, done)
    else:
        b.branch(done)
    b.position_at_end(done)


# rep movs/stos move whole chunks of this many bytes while they can
# (_wide_prefix); the per-element loop does the rest.
CHUNK = 32
_CHUNK_TYPE = ir.VectorType(I64, CHUNK // 8)


def _wide_ok(ctx: Insn) -> bool:
    """Whether the chunked prefix may be used: linux-user code without
    precise faults.  A fault inside a chunk leaves RCX, RSI and RDI as
    they were before the instruction rather than at the faulting element,
    which only a guest's SIGSEGV/SIGBUS handler could see, and such a
    guest gets code with precise faults (ir/commits.py)."""
    em = ctx.em
    return not em.system and em.commits is None


def _wide_prefix(ctx: Insn, size: int, kind: str) -> None:
    """``rep movs``/``rep stos`` with DF clear: copy or fill whole
    ``CHUNK``-byte pieces first, one vector load and store each, and
    advance RSI, RDI and RCX past them, leaving the rest (fewer than a
    chunk's elements, or all of them where chunks would give another
    result) to the element loop.  A forward copy in chunks gives the
    element loop's result unless the destination starts inside the
    source (dst > src and dst < src + n: the element loop then repeats a
    pattern); otherwise it reads each source byte before any store
    reaches it.  glibc's memcpy, memmove and memset use rep movsb/stosb
    for large sizes on CPUs with ERMS (the x86-64-v3 model has it)."""
    b = ctx.b
    per = CHUNK // size                           # elements per chunk
    count = ctx.gpr("rcx")
    chunks = b.lshr(count, ctx.c(64, per.bit_length() - 1))
    ok = b.and_(b.not_(ctx.flag("df")), ctx.is_true(chunks))
    if kind == "movs":
        src, dst = ctx.gpr("rsi"), ctx.gpr("rdi")
        n = b.shl(count, ctx.c(64, size.bit_length() - 1))
        inside = b.and_(b.icmp_unsigned(">", dst, src), b.icmp_unsigned("<", b.sub(dst, src), n))
        ok = b.and_(ok, b.not_(inside))
    start = b.block
    loop, after = ctx.em.new_block("str.chunk"), ctx.em.new_block("str.chunked")
    b.cbranch(ok, loop, after)
    b.position_at_end(loop)
    i = b.phi(I64)
    i.add_incoming(ctx.c(64, 0), start)
    off = b.shl(i, ctx.c(64, CHUNK.bit_length() - 1))
    if kind == "movs":
        value = ctx.em.load(b.add(ctx.gpr("rsi"), off), _CHUNK_TYPE)
    else:
        value = b.bitcast(_splat(ctx, size), _CHUNK_TYPE)
    ctx.em.store(b.add(ctx.gpr("rdi"), off), value)
    nxt = b.add(i, ctx.c(64, 1))
    back = b.block
    i.add_incoming(nxt, back)
    b.cbranch(b.icmp_unsigned("<", nxt, chunks), loop, after)
    b.position_at_end(after)
    moved = b.phi(I64)
    moved.add_incoming(ctx.c(64, 0), start)
    moved.add_incoming(chunks, back)
    nbytes = b.shl(moved, ctx.c(64, CHUNK.bit_length() - 1))
    if kind == "movs":
        ctx.set_gpr("rsi", b.add(ctx.gpr("rsi"), nbytes))
    ctx.set_gpr("rdi", b.add(ctx.gpr("rdi"), nbytes))
    ctx.set_gpr("rcx", b.sub(count, b.mul(moved, ctx.c(64, per))))


def _splat(ctx: Insn, size: int) -> ir.Value:
    """The chunk ``rep stos`` writes: AL, AX, EAX or RAX repeated."""
    b = ctx.b
    vty = ir.VectorType(ir.IntType(size * 8), CHUNK // size)
    one = b.insert_element(ir.Constant(vty, None), ctx.gpr("rax", size * 8), ctx.c(32, 0))
    lanes = ir.Constant(ir.VectorType(ir.IntType(32), CHUNK // size), None)   # all lane 0
    return b.shuffle_vector(one, ir.Constant(vty, None), lanes)


def _make(kind: str):
    def fn(ctx: Insn) -> None:
        size = ctx.ops[0].size if ctx.ops else _SIZE[ctx.mnemonic[-1]]
        _string_op(ctx, size, kind)
    return fn


for _kind in ("movs", "stos", "lods", "cmps", "scas"):
    for _suffix in "bwq":
        semantic(_kind + _suffix)(_make(_kind))
    if _kind not in ("movs", "cmps"):
        semantic(_kind + "d")(_make(_kind))


@semantic("movsd")
def movsd(ctx: Insn) -> None:
    if _has_xmm(ctx):
        from bttool.translator.semantics import sse
        sse.movsd_xmm(ctx)
    else:
        _string_op(ctx, 4, "movs")


@semantic("cmpsd")
def cmpsd(ctx: Insn) -> None:
    if _has_xmm(ctx):
        from bttool.translator.semantics import sse
        sse.cmpsd_xmm(ctx)
    else:
        _string_op(ctx, 4, "cmps")

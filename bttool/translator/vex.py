"""VEX-encoded instructions: the fields of the VEX prefix, read from the
instruction's bytes, which key the AVX decode table (translator/avxtable.py).

Capstone decodes VEX instructions, and bttool keeps its operands (registers,
the memory operand's address); but its instruction ids and opcode bytes do
not say which encoding form an instruction is, and the table needs exactly
that: opcode map, mandatory prefix (pp), VEX.L, VEX.W, the ModRM reg field
(``/digit``) and whether r/m names a register or memory.  SDM vol. 2, 2.3.
"""
from __future__ import annotations

from dataclasses import dataclass

from bttool.translator.operands import Insn, UnsupportedOperand

# Legacy prefixes that may precede VEX; with 66, F2, F3 or LOCK the
# instruction is #UD (SDM vol. 2, 2.3.2), and so is a REX prefix.
_SEGMENT_OR_ADDR = frozenset((0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x67))
_UD_PREFIXES = frozenset((0x66, 0xF0, 0xF2, 0xF3))
MAPS = {1: "0F", 2: "0F38", 3: "0F3A"}
PP = {0: "", 1: "66", 2: "F3", 3: "F2"}


@dataclass(frozen=True)
class Vex:
    """The encoding fields of one VEX instruction."""
    map: int            # 1: 0F, 2: 0F38, 3: 0F3A (other values: #UD)
    pp: int             # implied prefix: 0 none, 1 66, 2 F3, 3 F2
    l: int              # VEX.L: 0 for 128 bits, 1 for 256
    w: int              # VEX.W
    vvvv: int           # the register VEX.vvvv names (already inverted)
    opcode: int
    modrm: int | None   # None when the bytes end before it
    bad_prefix: bool    # 66/F2/F3/LOCK/REX before VEX: #UD

    @property
    def reg(self) -> int:
        """ModRM.reg (the ``/digit`` of an opcode extension)."""
        return ((self.modrm or 0) >> 3) & 7

    @property
    def register_form(self) -> bool:
        """ModRM.mod == 3: r/m names a register."""
        return self.modrm is not None and self.modrm >> 6 == 3


def is_evex(code: bytes) -> bool:
    """Whether the 64-bit-mode instruction at the start of ``code`` is
    EVEX-encoded (AVX-512: no model of bttool's has it)."""
    i = 0
    while i < len(code) and (code[i] in _SEGMENT_OR_ADDR or code[i] in _UD_PREFIXES):
        i += 1
    return i < len(code) and code[i] == 0x62


def parse(code: bytes, mode: int = 64) -> Vex | None:
    """The VEX fields of the instruction at the start of ``code``, or None
    when it is not VEX-encoded."""
    i, bad = 0, False
    while i < len(code) and (code[i] in _SEGMENT_OR_ADDR or code[i] in _UD_PREFIXES):
        bad |= code[i] in _UD_PREFIXES
        i += 1
    if mode == 64 and i < len(code) and 0x40 <= code[i] <= 0x4F:
        bad, i = True, i + 1
    if i + 2 >= len(code) or code[i] not in (0xC4, 0xC5):
        return None
    if mode != 64 and code[i + 1] >> 6 != 3:      # LES/LDS outside 64-bit mode
        return None
    if code[i] == 0xC5:
        b1 = code[i + 1]
        m, w, rest = 1, 0, i + 2
        tail = b1
    else:
        if i + 3 >= len(code):
            return None
        m, w, rest = code[i + 1] & 0x1F, code[i + 2] >> 7, i + 3
        tail = code[i + 2]
    vvvv = (~tail >> 3) & 0xF
    if mode != 64:
        vvvv &= 7
    modrm = code[rest + 1] if rest + 1 < len(code) else None
    return Vex(m, tail & 3, (tail >> 2) & 1, w, vvvv, code[rest], modrm, bad)


class VexInsn(Insn):
    """The lifting context of a VEX instruction, as its semantic sees it.

    A legacy SSE semantic reads its destination-and-first-source as operand
    0 and its second source as operand 1, and writes operand 0.  VEX puts
    the first source in VEX.vvvv (a form with an H operand), so here the
    operands a semantic reads are capstone's without the destination, and
    ``dest`` is where ``wr`` writes (zeroing the register above the
    operation's width: sse_common.wr).  ``bits`` is the operation's width,
    128 or 256; ``lane`` is set while a 128-bit semantic runs on one half of
    a 256-bit operation (``run``).  ``mnemonic`` is the semantic's name, the
    legacy mnemonic an SSE semantic may look at."""

    def __init__(self, em, insn, mode: int, user_mode: bool, model, vex: Vex, form) -> None:
        super().__init__(em, insn, mode, user_mode, model)
        self.vex = vex
        self.form = form
        self.vex_bits: int = form.width(vex)
        self.lane: int | None = None
        self.lane_out: list = [None, None]
        self.dest = insn.operands[0] if insn.operands else None
        if form.vector_source_in_vvvv:
            self.ops = insn.operands[1:]
        self.mnemonic = form.semantic or form.mnemonic


def run(fn, ctx: VexInsn, per_lane: bool) -> None:
    """Lift ``ctx`` with semantic ``fn``: once, or, for a 256-bit form of a
    semantic written for 128 bits, once per 128-bit lane, writing the two
    halves together."""
    if not per_lane:
        fn(ctx)
        return
    from bttool.translator.semantics.sse_common import concat_lanes, wr
    bits = ctx.vex_bits
    ctx.vex_bits = 128
    for lane in (0, 1):
        ctx.lane = lane
        fn(ctx)
    ctx.lane, ctx.vex_bits = None, bits
    if ctx.lane_out[0] is None or ctx.lane_out[1] is None:
        raise UnsupportedOperand("a per-lane semantic wrote no vector register")
    wr(ctx, 0, concat_lanes(ctx, ctx.lane_out[0], ctx.lane_out[1]))

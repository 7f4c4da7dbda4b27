"""Liveness of the arithmetic flags across the blocks of a region.

Flags are separate fields that the lifter sets lazily (ir/emitter.py): a flag
overwritten before the end of its IR block is never computed.  At the end of
a guest block, though, every pending flag used to be computed and stored,
since a successor might read it; most successors overwrite all six flags
first (a compare before a jump), so most of that code was dead.  Here the
region's blocks say which flags a block's end can leave out: those that
every path from there overwrites before any read, without leaving the
region (code outside sees the whole state, so every flag is live at an
exit).  The dropped flags are never computed at all, in either tier.

The rule per instruction is conservative and lives in one table: a mnemonic
this module does not know reads every flag; an instruction counts as writing
a flag only if its semantics always set it.  tests/test_flaglive.py checks
the tables against what the lifter actually reads and writes.

Only for user mode: in system mode an interrupt or fault between any two
instructions pushes RFLAGS, so every flag is always live.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bttool.ir.state import ARITHMETIC_FLAGS
from bttool.translator import conditions

_X86_OP_MEM = 3         # capstone's X86_OP_MEM (x86_const), without importing capstone here

if TYPE_CHECKING:  # pragma: no cover
    from bttool.translator.blocks import Block, Region

# The six arithmetic flags (DF is never left out: string instructions and
# the ABI read it everywhere).
ALL = ARITHMETIC_FLAGS
NONE: frozenset[str] = frozenset()


# Instructions whose semantics set these flags on every path (binary.py,
# logical.py, flags.set_add/set_sub/set_logic); inc/dec read CF to keep it.
_WRITES = {m: (NONE, ALL) for m in ("add", "sub", "cmp", "and", "or", "xor", "test", "neg")}
_WRITES.update({m: (frozenset({"cf"}), ALL) for m in ("inc", "dec")})

# Instructions that neither read nor write any of the six flags, or write
# some of them only on some paths (shifts by a zero count keep them): for
# liveness both are transparent.
_TRANSPARENT = frozenset("""
    mov movabs movzx movsx movsxd lea push pop nop endbr64 endbr32 bswap not
    cdqe cqo cdq cwd cwde cbw xchg shl shr sar sal rol ror shld shrd imul mul div idiv
    bt bsf bsr tzcnt lzcnt popcnt call ret jmp leave
    movq movd movaps movapd movups movupd movdqa movdqu movss movsd movlps movhps movlpd
    movhpd movntdq movntps movnti movhlps movlhps movmskps movmskpd pmovmskb
    addss addsd subss subsd mulss mulsd divss divsd sqrtss sqrtsd minss minsd maxss maxsd
    addps addpd subps subpd mulps mulpd divps divpd andps andpd andnps andnpd orps orpd
    xorps xorpd cvtsi2sd cvtsi2ss cvttsd2si cvttss2si cvtsd2ss cvtss2sd cvtsd2si cvtss2si
    unpcklps unpcklpd unpckhps unpckhpd shufps shufpd
    pxor por pand pandn paddb paddw paddd paddq psubb psubw psubd psubq pcmpeqb pcmpeqw
    pcmpeqd pcmpgtb pcmpgtw pcmpgtd pminub pmaxub pshufd pshufb pshuflw pshufhw palignr
    punpcklbw punpcklwd punpckldq punpcklqdq punpckhbw punpckhwd punpckhdq punpckhqdq
    psrldq pslldq psrlw psrld psrlq psllw pslld psllq psraw psrad
    prefetcht0 prefetcht1 prefetcht2 prefetchnta prefetchw
""".split())


def effects(insn) -> tuple[frozenset[str], frozenset[str]]:
    """(flags the instruction may read, flags it always writes)."""
    m = insn.mnemonic
    hit = _WRITES.get(m)
    if hit is not None:
        return hit
    if m in _TRANSPARENT:
        return NONE, NONE
    for prefix in ("j", "set", "cmov"):
        if m.startswith(prefix) and m[len(prefix):] in conditions.READS:
            return conditions.READS[m[len(prefix):]], NONE
    return ALL, NONE


def _ends_inside(block: "Block", region: "Region") -> bool:
    """Whether every way out of the block's end is a direct branch (or the
    fall-through) to a block of the region, else the flags are live there.
    Discovery (blocks.py) lists only those as ``successors``: calls, exits
    to the runtime and returns leave ``entries`` or nothing, and indirect
    jumps ``table_targets``."""
    if block.bad_at is not None or not block.insns or block.table_targets or block.entries:
        return False
    return bool(block.successors) and all(s in region.blocks for s in block.successors)


def _live_in(block: "Block", live_out: frozenset[str], precise: bool) -> frozenset[str]:
    live = live_out
    for insn in reversed(block.insns):
        reads, writes = effects(insn)
        live = (live - writes) | (ALL if precise and _touches_memory(insn) else reads)
    return live


@dataclass(frozen=True)
class RegionFlags:
    """What the lifter needs to know of a region's flags (``liveness``).

    ``dead_at_end``: block start -> the flags dead at the block's end
    (never read again before being overwritten); blocks with none are left
    out.  ``live_at_entry``: the flags the region may read, or leave with,
    before overwriting them: what its translation needs the state to hold
    when it is entered (ir/unitabi.py, the unit's flags mark)."""
    dead_at_end: dict[int, frozenset[str]]
    live_at_entry: frozenset[str]


def liveness(region: "Region", precise: bool = False) -> RegionFlags:
    """The flags' liveness over the region's blocks, to the least fixed
    point.  ``precise`` (code with precise faults, ir/commits.py): an
    instruction that may fault on a memory access counts as reading every
    flag, since a handler sees them all there."""
    inside = {pc: _ends_inside(b, region) for pc, b in region.blocks.items()}
    live_in = {pc: NONE for pc in region.blocks}

    def live_out(pc: int) -> frozenset[str]:
        if not inside[pc]:
            return ALL
        return frozenset().union(*(live_in[s] for s in region.blocks[pc].successors))
    changed = True
    while changed:
        changed = False
        for pc, block in region.blocks.items():
            new = _live_in(block, live_out(pc), precise)
            if new != live_in[pc]:
                live_in[pc] = new
                changed = True
    return RegionFlags({pc: ALL - out for pc in region.blocks if (out := live_out(pc)) != ALL},
                       live_in[region.entry])


# Instructions that touch memory without naming it in an operand.
_IMPLICIT_MEMORY = ("push", "pop", "call", "ret", "leave", "enter", "movs", "stos", "lods",
                    "scas", "cmps", "xlat", "ins", "outs", "iret", "syscall", "int")


def _touches_memory(insn) -> bool:
    """Whether the instruction may access guest memory (and so fault)."""
    m = insn.mnemonic
    if m.startswith(_IMPLICIT_MEMORY) or m.split(" ")[-1].startswith(_IMPLICIT_MEMORY):
        return True
    if m in ("lea", "nop") or m.startswith(("nop", "prefetch")):
        return False
    try:
        return any(op.type == _X86_OP_MEM for op in insn.operands)
    except Exception:       # noqa: BLE001 -- no details: assume it does
        return True


def dead_for_commit(block: "Block", index: int, dead_at_end: frozenset[str]) -> frozenset[str]:
    """Flags a commit before ``block.insns[index]`` (ir/commits.py) need not
    compute or store: the instructions from there overwrite them before
    anything reads them and before any of them could fault on a memory
    access (a replay from that commit, or a handler, never sees them), or
    they are dead at the block's end (``RegionFlags.dead_at_end``) with
    nothing in between reading them or touching memory."""
    dead: set[str] = set()
    pending = set(ALL)
    for insn in block.insns[index:]:
        if _touches_memory(insn):
            return frozenset(dead)
        reads, writes = effects(insn)
        pending -= reads
        dead |= writes & pending
        pending -= writes
        if not pending:
            return frozenset(dead)
    if block.bad_at is None:
        dead |= pending & dead_at_end
    return frozenset(dead)


def droppable_at_end(block: "Block", dead: frozenset[str]) -> frozenset[str]:
    """Flags whose pending values the last instruction of ``block`` may
    leave uncomputed when its IR block ends: dead at the block's end and
    not read by that instruction itself (after an IR branch inside it),
    except a conditional jump, which reads before its final branch."""
    last = block.insns[-1]
    if last.mnemonic.startswith("j"):
        return dead
    return dead - effects(last)[0]

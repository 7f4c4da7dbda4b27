"""Discovering guest code: basic blocks and single-entry regions.

A block runs from its start to the first terminal instruction (a control
transfer or an exit to the runtime), an undecodable byte sequence, or a size
bound.  A region is the entry block plus blocks reachable from it through
direct branches, bounded in count; it is compiled as one LLVM module.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from capstone import x86_const as X

from bttool.translator import conditions, registry
from bttool.translator.decoder import MAX_INSN_LEN, Decoder
from bttool.translator.guestcode import CodeReader, UnmappedCode


MAX_BLOCK_INSNS = 200
# Jumps and calls whose target may be an immediate (relative) operand.
_DIRECT = {X.X86_INS_JMP, X.X86_INS_CALL} | {
    getattr(X, "X86_INS_" + n) for n in (
        *("J" + cc.upper() for cc in conditions.CODES),
        "LOOP", "LOOPE", "LOOPNE", "JRCXZ", "JECXZ")}
_NO_FALLTHROUGH = {X.X86_INS_JMP, X.X86_INS_RET, X.X86_INS_UD2}
_NO_RESUME = {X.X86_INS_HLT, X.X86_INS_INT3}


@dataclass
class Block:
    start: int
    insns: list = field(default_factory=list)
    bad_at: int | None = None     # address of an undecodable instruction that ends it
    successors: list[int] = field(default_factory=list)   # jump targets (may join the region)
    entries: list[int] = field(default_factory=list)      # re-entered via the table
    table_targets: list[int] = field(default_factory=list)  # of a final jump-table jmp

    @property
    def end(self) -> int:
        if self.bad_at is not None:
            return self.bad_at + 1
        return self.insns[-1].address + self.insns[-1].size if self.insns else self.start

    @property
    def code_size(self) -> int:
        return self.end - self.start


def decode_block(decoder: Decoder, read: CodeReader, pc: int,
                 max_insns: int = MAX_BLOCK_INSNS, end: int | None = None) -> Block:
    """Decode the block at ``pc``.  Raises ``UnmappedCode`` when ``pc`` itself
    cannot be fetched.  With ``end``, no instruction starting at or after it
    joins the block (the block falls through to it)."""
    block = Block(pc)
    cur = pc
    while len(block.insns) < max_insns and (end is None or cur < end or cur == pc):
        code = read(cur, MAX_INSN_LEN)
        if not code:
            if cur == pc:
                raise UnmappedCode(pc)
            block.bad_at = cur
            return block
        insn = decoder.decode_one(code, cur)
        if insn is None:
            block.bad_at = cur
            return block
        block.insns.append(insn)
        cur = insn.address + insn.size
        if registry.is_terminal(insn.id) or not registry.known(insn.id):
            _add_successors(block, insn)
            return block
    block.successors.append(cur)
    return block


def direct_target(insn) -> int | None:
    """The target of a direct jump or call (an immediate operand, which
    capstone gives absolute), else None."""
    if insn.id not in _DIRECT:
        return None         # (before reading operands, which capstone builds on first use)
    ops = insn.operands
    return ops[0].imm if ops and ops[0].type == X.X86_OP_IMM else None


def _range_end(within: Sequence[tuple[int, int]], pc: int) -> int | None:
    """The end of the range of ``within`` that holds ``pc``, or None."""
    return next((hi for lo, hi in within if lo <= pc < hi), None)


def _add_successors(block: Block, insn) -> None:
    """Successors are the targets of jumps, which a region may contain.  A
    call's target and return site, and the instruction after an exit to the
    runtime, are entered through the lookup table instead: they are
    ``entries`` (future region entries), not successors."""
    target = direct_target(insn)
    nxt = insn.address + insn.size
    if insn.id == X.X86_INS_CALL:
        if target is not None:
            block.entries.append(target)
        block.entries.append(nxt)
        return
    if target is not None:
        block.successors.append(target)
        if insn.id != X.X86_INS_JMP:
            block.successors.append(nxt)
        return
    if insn.id not in _NO_FALLTHROUGH and insn.id not in _NO_RESUME and registry.known(insn.id):
        block.entries.append(nxt)


# A callee joins a tier-2 region whole or not at all: at most this many
# blocks and instructions, and no calls or indirect jumps of its own.
_LEAF_BLOCKS = 12
_LEAF_INSNS = 100


def _small_leaf(decoder: Decoder, read: CodeReader, entry: int,
                within: Sequence[tuple[int, int]] | None) -> bool:
    """Whether the code at ``entry`` is a small leaf function: every block
    reachable from it decodes, lies in ``within`` (when given), and ends in
    a direct branch or a ``ret`` (no call, no indirect jump, no exit to the
    runtime), within _LEAF_BLOCKS blocks and _LEAF_INSNS instructions."""
    seen: set[int] = set()
    todo, total = [entry], 0
    while todo:
        pc = todo.pop()
        if pc in seen:
            continue
        seen.add(pc)
        end = None
        if within is not None:
            end = _range_end(within, pc)
            if end is None:
                return False
        try:
            blk = decode_block(decoder, read, pc, end=end)
        except UnmappedCode:
            return False
        total += len(blk.insns)
        if blk.bad_at is not None or blk.entries or not blk.insns or len(seen) > _LEAF_BLOCKS \
                or total > _LEAF_INSNS:
            return False
        last = blk.insns[-1]
        if last.id == X.X86_INS_CALL or (not blk.successors and last.id != X.X86_INS_RET):
            return False
        todo.extend(blk.successors)
    return True


@dataclass
class Region:
    entry: int
    blocks: dict[int, Block]

    @property
    def insn_count(self) -> int:
        return sum(len(b.insns) for b in self.blocks.values())


def discover_region(decoder: Decoder, read: CodeReader, entry: int,
                    max_blocks: int = 24, max_insns: int = 600,
                    known: Callable[[int], bool] = lambda pc: False,
                    read_data: CodeReader | None = None,
                    reg_value: Callable[[str], int | None] | None = None,
                    follow_calls: bool = False,
                    guess_target: Callable[[int], int | None] | None = None,
                    within: Sequence[tuple[int, int]] | None = None,
                    known_tables: Callable[[int], Sequence[int] | None] | None = None) -> Region:
    """The entry block and blocks it reaches by direct branches (breadth
    first), skipping blocks that are already translated (``known``).  With
    ``read_data``, a jump table ending a block is resolved and its targets
    become successors (the lifter turns the jump into a switch);
    ``reg_value`` may guess a table base register (jumptables.targets).
    With ``follow_calls`` (tier 2), a call's return site joins the region
    too (the lifter turns returns into a switch over the region's return
    sites), so a loop around a call stays in the region and a recursive call
    to the region's entry is an IR branch.  A direct callee is taken in only
    when it is a small leaf function (``_small_leaf``), whose ``ret`` then
    becomes a branch back through that switch: a call and return between
    regions cost two state write-backs, reloads and table probes (a loop
    calling a one-line function ran 5 times native, 2.5 with it inside);
    a larger callee would bring its cold paths along and crowd the
    region's own blocks out (malloc: slower).  ``guess_target`` may name the
    likely target of an indirect call or jump by its address (a run-time
    profile): it joins the region and the lifter switches on it.  With
    ``within`` = [(lo, hi), ...], only blocks starting in one of those
    ranges join, and none extends past its range's hi (system mode: one
    guest page; user mode: the code units).  ``known_tables(address)``:
    the targets of the jump table the indirect jump at ``address`` uses,
    resolved elsewhere (ahead-of-time discovery, in a region that saw the
    table's base set up), for a jump this region cannot resolve itself."""
    from bttool.translator import jumptables
    blocks: dict[int, Block] = {}
    leaves: dict[int, bool] = {}       # callee -> _small_leaf
    todo = [entry]
    total = 0
    bounds: dict[int, int] = {}
    while todo and len(blocks) < max_blocks and total < max_insns:
        pc = todo.pop(0)
        if pc in blocks or (pc != entry and known(pc)):
            continue
        end = None
        if within is not None:
            end = _range_end(within, pc)
            if end is None and pc != entry:
                continue
        try:
            blk = decode_block(decoder, read, pc, end=end)
        except UnmappedCode:
            if pc == entry:
                raise
            continue
        blocks[pc] = blk
        total += len(blk.insns)
        if follow_calls and blk.insns and blk.insns[-1].id == X.X86_INS_CALL:
            blk.successors.append(blk.end)     # the return site
            callee = direct_target(blk.insns[-1])
            if callee is not None and callee not in blocks:
                small = leaves.get(callee)
                if small is None:
                    small = leaves[callee] = _small_leaf(decoder, read, callee, within)
                if small:
                    blk.successors.append(callee)
        if read_data is not None:
            bound = jumptables.bound_after(blk.insns)
            if bound is not None:
                for succ in blk.successors:
                    bounds[succ] = bound
            blk.table_targets = jumptables.targets(
                blk.insns, read_data, lambda a: bool(read(a, 1)), bounds.get(pc),
                [i for b in blocks.values() for i in b.insns], reg_value)
            if not blk.table_targets and known_tables is not None and blk.insns \
                    and blk.insns[-1].id == X.X86_INS_JMP:
                blk.table_targets = list(known_tables(blk.insns[-1].address) or ())
            blk.successors.extend(blk.table_targets)
        last = blk.insns[-1] if blk.insns else None
        if guess_target is not None and last is not None and not blk.table_targets \
                and last.id in (X.X86_INS_CALL, X.X86_INS_JMP) and last.operands \
                and last.operands[0].type != X.X86_OP_IMM:
            g = guess_target(last.address)
            if g and read(g, 1):
                blk.table_targets = [g]
                blk.successors.append(g)
        todo.extend(blk.successors)
    return Region(entry, blocks)

"""Which fields an exit of a translated function writes back: those stored
to their slots on some path from the entry to that exit.

The emitter keeps every guest register or flag it touches in an alloca
(ir/emitter.py), initialised from the CPU state in the entry block.  A slot
that no path to an exit stores to still holds the value the state holds,
so writing it back there is a store of what memory already has; and LLVM
cannot see that once the value has gone through a phi (a loop, a join), so
it kept such stores, and the entry value they needed stayed live, often
spilled, through the whole function.  A forward data flow over the IR's
blocks finds, for each exit, the slots stored on some path to it.  Exact:
a slot's only stores outside the entry block are the emitter's writes of
new values (commits write the slot's value back, they never store to it).
"""
from __future__ import annotations

from llvmlite import ir


def successors(block: ir.Block) -> list[ir.Block]:
    """The blocks ``block``'s terminator may go to."""
    term = block.terminator
    if term is None:
        return []
    out = [op for op in term.operands if isinstance(op, ir.Block)]
    if isinstance(term, ir.SwitchInstr):
        out += [term.default] + [blk for _, blk in term.cases]
    out += getattr(term, "destinations", [])
    return out


def stored_before(fn: ir.Function, entry: ir.Block, slots: dict[int, int],
                  exits: list[ir.Block]) -> dict[int, int]:
    """For each block of ``exits`` (by id), the union of the bit masks
    ``slots[id(slot)]`` of the slots stored to on some path from ``entry``
    to it (the entry block's own stores, the initial values, not
    counted).  The exit blocks must not be filled yet."""
    gen: dict[int, int] = {}
    for bb in fn.blocks:
        if bb is entry:
            continue
        mask = 0
        for instr in bb.instructions:
            if instr.opname == "store":
                mask |= slots.get(id(instr.operands[1]), 0)
        gen[id(bb)] = mask
    into: dict[int, int] = {id(bb): 0 for bb in fn.blocks}
    work = [entry]
    seen = {id(entry)}
    while work:
        bb = work.pop()
        out = into[id(bb)] | gen.get(id(bb), 0)
        for nxt in successors(bb):
            k = id(nxt)
            if k not in seen or into[k] | out != into[k]:
                seen.add(k)
                into[k] |= out
                work.append(nxt)
    return {id(bb): into[id(bb)] for bb in exits}

"""Commit points: where linux-user code writes the guest state back in the
middle of a region, so that every host fault can be made precise.

Translated code keeps guest registers in SSA values and writes them to the
CPU state only where a region exits.  A guest access that faults on the host
therefore leaves the state of some earlier point in memory, and the runtime
finds the state at the faulting instruction by running again, one
instruction at a time, from that point (runtime/precisefault.py).  That is
exact only if the instructions run twice read the same memory the second
time as the first: a read-modify-write of memory (``add [m], 1``), or a load
followed by a store that may overwrite what it read, breaks that (the
second run reads the new value).  The x87 and MMX register file lives in the
state itself and behaves like memory here.

So, where such a *write after read* happens, the code commits: right after
the writing instruction it stores every guest register that may differ
from the state in memory, and rip (the next instruction), between two
compiler-only fences (``fence syncscope("singlethread")``: no instruction on
the host, but no memory access moves across it, and the stores are not
deleted).  A replay starts at the last commit, and between a commit and any
later fault no memory location is written after being read, so the replay
is exact.  Code that never writes what it has read since the last commit
(pushes, stores to fresh locations, pure computation) commits nothing.

Whether a store may overwrite an earlier read is decided from the address
expressions: two accesses off the same SSA base with displacements whose
ranges do not overlap (``[rsp+8]`` and ``[rsp+16]``, a push below a load
from the frame) are disjoint; anything else may overlap.  What code before
the current guest block read is not known here, so a block's stores commit
unless they lie below rsp as it was where the block started (pushes, calls,
a new frame): code before it read nothing there, short of reading the red
zone and pushing over it in the next block, which this does not cover.

Commits cost the fault-free path (the stores, and flags computed that would
otherwise be dropped), so only code translated with
``LiftOptions.precise_faults`` has them: what a guest with a SIGSEGV or
SIGBUS handler gets (runtime/guestsignals.py).

Which registers a commit stores is decided when the function is finished,
by a data flow over the region's guest blocks: the registers set since the
last commit on some path that reaches it (on entry, the state in memory is
the region's entry state, so nothing).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from llvmlite import ir

from bttool.ir.memory import constant_offsets

_M64 = (1 << 64) - 1
# The root of accesses to the state's x87/MMX register file (any index).
REGISTER_FILE = object()
# The root of absolute (constant) guest addresses.
_ABSOLUTE = object()
# A read carried over from another block whose address is not known here.
_UNKNOWN = object()
# Carried-over reads beyond this many are summed up as one unknown.
_MAX_CARRIED = 64


def split_address(addr: ir.Value) -> tuple[object, int]:
    """(root, d) with addr == root + d: the adds and subtracts of constants
    that built ``addr`` taken apart (memory.constant_offsets, all the way);
    a constant address has the root ``_ABSOLUTE``."""
    for x, d in constant_offsets(addr):
        pass
    if isinstance(x, ir.Constant) and isinstance(x.constant, int):
        return _ABSOLUTE, (x.constant + d) & _M64
    d &= _M64
    return x, d - (1 << 64) if d >> 63 else d


def _may_overlap(r1: object, lo1: int, hi1: int, r2: object, lo2: int, hi2: int) -> bool:
    """Whether two accesses (root, [lo, hi)) may touch the same bytes: never
    between the register file and memory; off one root (or both absolute)
    only if the ranges meet; off different roots, maybe."""
    if (r1 is REGISTER_FILE) != (r2 is REGISTER_FILE):
        return False
    if r1 is REGISTER_FILE:
        return True
    if r1 is r2:
        return lo1 < hi2 and lo2 < hi1
    return True


@dataclass
class _Block:
    """One guest block of the region as the commits see it."""
    committed: bool = False                              # a commit so far in the block
    since: set[str] = field(default_factory=set)         # set since that commit (or the block's start)


@dataclass
class _Commit:
    block: ir.Block          # filled by the emitter when the function is finished
    cont: ir.Block
    rip: int
    at: int                  # the guest block it is in
    first: bool              # the block's first commit: registers dirty on entry count too
    since: frozenset[str]
    skip: frozenset[str]     # left out: overwritten before anything could see them


class CommitPoints:
    """Tracks, while a function is lifted, the reads since the last commit,
    whether the current instruction needs a commit after it, and the
    registers each commit must store."""

    def __init__(self) -> None:
        # (root, lo, hi) of the reads since the last commit in this block
        self._reads: list[tuple[object, int, int]] = []
        # the reads since the last commit made before the block began, as
        # (register name, lo, hi) relative to the register's value at the
        # block's start (or _ABSOLUTE, REGISTER_FILE, _UNKNOWN); None:
        # anything (a block that a later-lifted block may branch to)
        self._inherited: list[tuple[object, int, int]] | None = []
        # id of a register's value at the block's start -> its name
        self.block_values: dict[int, str] = {}
        self._set_in_block: set[str] = set()
        # blocks that a block lifted at or after them may branch to
        self.late: frozenset[int] = frozenset()
        self._incoming: dict[int, list[tuple[object, int, int]] | None] = {}
        self.due = False
        self._block = _Block()
        self._at = -1
        self._blocks: dict[int, _Block] = {-1: self._block}
        self._edges: list[tuple[int, int, bool, frozenset[str]]] = []   # from, to, committed, since
        self.commits: list[_Commit] = []
        self._solved: dict[int, frozenset[str]] | None = None

    # -- while lifting ---------------------------------------------------
    def begin_block(self, pc: int) -> None:
        """A guest block starts: what was read before it is what the
        branches to it carried (all of them lifted already, unless a later
        block may branch here; entered from outside, nothing)."""
        self._at = pc
        self._block = self._blocks.setdefault(pc, _Block())
        self._reads = []
        carried = self._incoming.get(pc, [])
        self._inherited = None if pc in self.late or carried is None else list(carried)
        self.block_values = {}
        self._set_in_block = set()
        self.due = False

    def block_value(self, value: ir.Value, name: str) -> None:
        """``value`` is register ``name`` as it was where the block began."""
        self.block_values[id(value)] = name

    def note_read(self, root: object, lo: int, size: int) -> None:
        self._reads.append((root, lo, lo + size))

    def note_write(self, root: object, lo: int, size: int, below_block_stack: bool = False) -> None:
        """A write: a commit is due after this instruction if it may
        overwrite something read since the last commit.
        ``below_block_stack``: the address lies below rsp as it was where
        the guest block started (a push, a call, a new frame), where code
        before the block read nothing (see the module docstring)."""
        if self.due:
            return
        hi = lo + size
        if any(_may_overlap(r, a, b, root, lo, hi) for r, a, b in self._reads):
            self.due = True
        elif self._inherited is None:
            self.due = not below_block_stack
        else:
            self.due = any(self._may_overlap_carried(r, a, b, root, lo, hi, below_block_stack)
                           for r, a, b in self._inherited)

    def _may_overlap_carried(self, r: object, lo1: int, hi1: int, root: object, lo2: int,
                             hi2: int, below_block_stack: bool) -> bool:
        """Whether a write (root, [lo2, hi2)) may meet a read carried from
        before the block (r, [lo1, hi1))."""
        if r is _UNKNOWN:
            return not below_block_stack
        if r is _ABSOLUTE or r is REGISTER_FILE:
            return _may_overlap(r, lo1, hi1, root, lo2, hi2)
        if root is REGISTER_FILE:
            return False
        if self.block_values.get(id(root)) == r:
            return lo1 < hi2 and lo2 < hi1
        return True

    def note_read_write(self) -> None:
        """An access that reads and writes the same location at once (an
        atomic read-modify-write)."""
        self.due = True

    def note_set(self, name: str) -> None:
        self._block.since.add(name)
        self._set_in_block.add(name)

    def committed(self, block: ir.Block, cont: ir.Block, rip: int,
                  skip: frozenset[str] = frozenset()) -> None:
        """A commit was emitted (branch to ``block``, which goes on to
        ``cont``); ``skip``: fields it leaves out (flags nothing can see)."""
        b = self._block
        self.commits.append(_Commit(block, cont, rip, self._at, not b.committed,
                                    frozenset(b.since), skip))
        b.committed, b.since = True, set()
        self._reads, self._inherited = [], []
        self.due = False

    def edge(self, target: int, holder: Callable[[ir.Value], str | None]) -> None:
        """A branch from the current guest block to the region's block at
        ``target``; ``holder(v)``: the register that holds SSA value ``v``
        at the branch, if any."""
        b = self._block
        self._edges.append((self._at, target, b.committed, frozenset(b.since)))
        if target in self._incoming and self._incoming[target] is None:
            return
        carried = self._carried(holder)
        have = self._incoming.setdefault(target, [])
        if carried is None or len(have) + len(carried) > _MAX_CARRIED:
            self._incoming[target] = None if carried is None else [(_UNKNOWN, 0, 0)]
        else:
            have.extend(c for c in carried if c not in have)

    def _carried(self, holder: Callable[[ir.Value], str | None]) -> list | None:
        """The reads since the last commit as a successor block sees them."""
        if self._inherited is None:
            return None
        out = []
        for r, a, b in self._inherited:
            if r is _UNKNOWN or r is _ABSOLUTE or r is REGISTER_FILE or r not in self._set_in_block:
                out.append((r, a, b))
            else:
                out.append((_UNKNOWN, 0, 0))
        for root, a, b in self._reads:
            if root is _ABSOLUTE or root is REGISTER_FILE:
                out.append((root, a, b))
                continue
            name = holder(root)
            if name is None:
                start = self.block_values.get(id(root))
                name = start if start is not None and start not in self._set_in_block else None
            out.append((name, a, b) if name is not None else (_UNKNOWN, 0, 0))
        return out

    # -- when finished ---------------------------------------------------
    def fields(self, commit: _Commit) -> frozenset[str]:
        """The registers ``commit`` must store: set since the previous
        commit on some path to it."""
        if not commit.first:
            return commit.since - commit.skip
        return (commit.since | self._dirty_on_entry().get(commit.at, frozenset())) - commit.skip

    def _dirty_on_entry(self) -> dict[int, frozenset[str]]:
        """Per guest block: registers that may differ from the state in
        memory where it starts (a fixed point over the recorded branches;
        the block where lifting started is entered with nothing dirty)."""
        if self._solved is not None:
            return self._solved
        entry: dict[int, frozenset[str]] = {}
        changed = True
        while changed:
            changed = False
            for src, dst, committed, since in self._edges:
                out = since if committed else since | entry.get(src, frozenset())
                have = entry.get(dst, frozenset())
                if not out <= have:
                    entry[dst] = have | out
                    changed = True
        self._solved = entry
        return entry

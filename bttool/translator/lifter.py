"""Lifting: a region of guest blocks -> one LLVM IR function.

The region becomes one ``void @<name>(ptr state, ptr mem)`` (ir/emitter.py)
entered at the region's entry; each guest block is a labelled IR block of it
and direct branches between them are IR branches.
An instruction without semantics, or one whose operands cannot be expressed,
becomes a #UD exit at its address, so it traps only if it is reached.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from capstone import x86_const as X
from capstone.x86_const import X86_INS_CALL, X86_INS_RET
from llvmlite import ir

from bttool.ir.emitter import FunctionEmitter
from bttool.ir.state import EXIT_FAULT, FAULT_UD
from bttool.translator import avxtable, cpumodel, flaglive, registry
from bttool.translator.blocks import Block, Region
from bttool.translator.guestcode import Span, foreign_base_symbol
from bttool.translator.operands import Insn, UnsupportedOperand
from bttool.translator.options import LiftOptions


@dataclass
class LiftResult:
    module: ir.Module
    entries: dict[int, str]                               # guest pc -> symbol
    untranslatable: list[tuple[int, str]] = field(default_factory=list)  # (pc, text)
    insn_count: int = 0


def uses_ymm(insns: Iterable, mode: int) -> bool:
    """Whether any of ``insns`` is a 256-bit VEX instruction (VEX.L=1; the
    emitter then keeps each ymm register as one value)."""
    from bttool.translator import vex
    for insn in insns:
        raw = bytes(insn.bytes)
        if 0xC4 in raw[:6] or 0xC5 in raw[:6]:
            v = vex.parse(raw, mode)
            if v is not None and v.l:
                return True
    return False


# Guest instructions that become a host instruction with no VEX form when
# the host has the feature (semantics/sha.py): LLVM emits them in their
# legacy SSE encoding even for an AVX target.
_LEGACY_ONLY_ON_HOST = {"+sha": frozenset((
    X.X86_INS_SHA1RNDS4, X.X86_INS_SHA1NEXTE, X.X86_INS_SHA1MSG1, X.X86_INS_SHA1MSG2,
    X.X86_INS_SHA256RNDS2, X.X86_INS_SHA256MSG1, X.X86_INS_SHA256MSG2))}


def whole_ymm_slots(insns: Sequence, mode: int, host_features: frozenset[str]) -> bool:
    """Whether a region of ``insns`` keeps each ymm register as one value
    (emitter ``whole_ymm``): when it has 256-bit instructions, unless the
    host runs one of them legacy-encoded.  In whole-ymm slots every xmm
    write is a 256-bit blend, which leaves the host's upper ymm state dirty,
    and on Intel hosts each legacy SSE instruction after such a write pays a
    state transition: OpenSSL's SHA-NI loop, in one region with its AVX2
    sibling, ran some 120 cycles per SHA instruction (46 times native) on
    an Emerald Rapids host."""
    if not uses_ymm(insns, mode):
        return False
    legacy = frozenset().union(*(ids for feat, ids in _LEGACY_ONLY_ON_HOST.items()
                                 if feat in host_features))
    return not any(i.id in legacy for i in insns)


def lift_region(region: Region, options: LiftOptions, module: ir.Module, name: str,
                foreign: Sequence[Span] = (), host_features: frozenset[str] = frozenset()) -> LiftResult:
    """Lift ``region`` into ``module`` as one function called ``name``,
    entered at ``region.entry``; direct branches between its blocks are IR
    branches.  ``foreign``: the other code units some of its blocks lie in
    (translate.lift).  ``host_features``: the target's LLVM features
    ("+sse4.2", ...) that the code may use as the host's own instructions
    (none: generic IR only)."""
    result = LiftResult(module, {})
    em = FunctionEmitter(module, name, options.pic_base, options.hot_counters,
                          system=not options.user_mode, entry_pc=region.entry,
                          precise_faults=options.precise_faults, host_features=host_features,
                          clamp=options.clamp,
                          foreign=[(u.start, u.end, u.base, foreign_base_symbol(name, u.image))
                                   for u in foreign],
                          whole_ymm=whole_ymm_slots([i for b in region.blocks.values()
                                                     for i in b.insns],
                                                    options.mode, host_features))
    labels = {pc: em.new_block(f"g_{pc:x}") for pc in sorted(region.blocks)}
    em.local_targets = labels
    em.indirect_targets = {b.insns[-1].address: b.table_targets
                           for b in region.blocks.values() if b.table_targets}
    # Returns to call sites inside the region: a switch over those sites.
    sites = sorted({b.end for b in region.blocks.values()
                    if b.insns and b.insns[-1].id == X86_INS_CALL and b.end in region.blocks})
    if sites:
        for b in region.blocks.values():
            if b.insns and b.insns[-1].id == X86_INS_RET:
                em.indirect_targets[b.insns[-1].address] = sites
    if options.hot_counters:
        em.count_execution(region.entry)
    if em.commits is not None:
        em.commits.late = _late_targets(region, sites)
    em.b.branch(labels[region.entry])
    dead: dict[int, frozenset[str]] = {}
    if options.user_mode:
        flags = flaglive.liveness(region, options.precise_faults)
        dead = flags.dead_at_end
        em.note_flags_at_entry(flags.live_at_entry)
    for pc, block in sorted(region.blocks.items()):
        em.b.position_at_end(labels[pc])
        lift_block(em, block, options, result, dead.get(pc, flaglive.NONE))
    em.seal_open_blocks()
    em.finish()
    result.entries[region.entry] = name
    return result


def _late_targets(region: Region, return_sites: list[int]) -> frozenset[int]:
    """Blocks that a block lifted at or after them (in address order) may
    branch to (ir/commits.py): loop heads, called blocks, and return sites
    (any return may go there)."""
    late = set(return_sites)
    for b in region.blocks.values():
        for s in list(b.successors) + list(b.table_targets) + list(b.entries):
            if s in region.blocks and s <= b.start:
                late.add(s)
    return frozenset(late)


# Instructions that take a LOCK prefix (SDM Vol. 2, "LOCK"), and only with a
# memory destination; LOCK anywhere else is #UD.
_LOCKABLE = frozenset(getattr(X, "X86_INS_" + m) for m in (
    "ADD", "ADC", "AND", "BTC", "BTR", "BTS", "CMPXCHG", "CMPXCHG8B", "CMPXCHG16B", "DEC", "INC",
    "NEG", "NOT", "OR", "SBB", "SUB", "XOR", "XADD", "XCHG"))
_PREFIX_LOCK = 0xF0
_CALL_RET = frozenset((X86_INS_CALL, X86_INS_RET))


def lock_is_invalid(insn) -> bool:
    """A LOCK prefix the CPU rejects with #UD: on an instruction that cannot
    be locked, or on a lockable one whose destination is a register."""
    prefix = getattr(insn, "prefix", None)
    if not prefix or prefix[0] != _PREFIX_LOCK:
        return False
    ops = getattr(insn, "operands", ())
    return insn.id not in _LOCKABLE or not ops or ops[0].type != X.X86_OP_MEM


def lift_block(em: FunctionEmitter, block: Block, options: LiftOptions, result: LiftResult,
               dead_flags: frozenset[str] = flaglive.NONE) -> None:
    """Lift one guest block at the builder's current position.
    ``dead_flags``: flags no successor reads (translator/flaglive.py); the
    block's end leaves them uncomputed."""
    last = block.insns[-1] if block.insns else None
    model = cpumodel.get(options.cpu)
    em.begin_block(block.start)
    for index, insn in enumerate(block.insns):
        result.insn_count += 1
        if em.commits is not None:
            em.dead_at_commit = functools.partial(flaglive.dead_for_commit, block, index, dead_flags)
        em.begin_insn(insn.address)
        # a call or return that stays in the region is no loop of its own
        # (a loop around it has its own back edge): no signal poll there
        em.poll_back_edges = insn.id not in _CALL_RET
        em.unneeded_at_end = flaglive.droppable_at_end(block, dead_flags) \
            if insn is last and dead_flags else flaglive.NONE
        if lock_is_invalid(insn):
            em.leave(insn.address, EXIT_FAULT, FAULT_UD)
            return
        lift_insn = avxtable.bind(em, insn, options, model)
        if lift_insn == "ud":         # what the virtual CPU does with it: no gap of bttool's
            em.leave(insn.address, EXIT_FAULT, FAULT_UD)
            return
        if lift_insn is None:
            fn = registry.lookup(insn.id)
            if fn is None:
                result.untranslatable.append((insn.address, f"{insn.mnemonic} {insn.op_str}".strip()))
                em.leave(insn.address, EXIT_FAULT, FAULT_UD)
                return
            lift_insn = functools.partial(fn, Insn(em, insn, options.mode, options.user_mode, model))
        try:
            lift_insn()
        except UnsupportedOperand:
            # Abandon this instruction: branch to a block that traps at it
            # (blocks the instruction opened are sealed as unreachable).
            result.untranslatable.append((insn.address, f"{insn.mnemonic} {insn.op_str}".strip()))
            ud = em.new_block("ud")
            if not em.b.block.is_terminated:
                em.b.branch(ud)
            em.b.position_at_end(ud)
            em.leave(insn.address, EXIT_FAULT, FAULT_UD)
            return
        if em.b.block.is_terminated:
            return
    if block.bad_at is not None:
        result.untranslatable.append((block.bad_at, "(undecodable)"))
        em.leave(block.bad_at, EXIT_FAULT, FAULT_UD)
    else:
        em.leave(block.end)

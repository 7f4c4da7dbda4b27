"""Lifting: guest blocks -> LLVM IR functions, one per block of a region.

Each block becomes ``void @bt_<pc>(ptr state, ptr mem)`` (see ir/emitter.py).
An instruction without semantics, or one whose operands cannot be expressed,
becomes a #UD exit at its address, so it traps only if it is reached.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from llvmlite import ir

from bttool.ir.emitter import FunctionEmitter
from bttool.ir.state import EXIT_FAULT, FAULT_UD
from bttool.translator import registry
from bttool.translator.blocks import Block, Region
from bttool.translator.operands import Insn, UnsupportedOperand


@dataclass(frozen=True)
class LiftOptions:
    mode: int = 64          # CPU mode: 64-bit long mode or 32-bit protected mode
    user_mode: bool = True  # linux-user (privileged insns fault) or system mode


@dataclass
class LiftResult:
    module: ir.Module
    entries: dict[int, str]                               # guest pc -> symbol
    untranslatable: list[tuple[int, str]] = field(default_factory=list)  # (pc, text)
    insn_count: int = 0


def symbol_for(region_entry: int, pc: int) -> str:
    """Symbols are unique per region, so two cached objects that both hold
    a block never clash when loaded into one engine."""
    return f"bt_{region_entry:x}_{pc:x}"


def lift_region(region: Region, options: LiftOptions, module_name: str = "region") -> LiftResult:
    module = ir.Module(name=module_name)
    result = LiftResult(module, {})
    for pc, block in sorted(region.blocks.items()):
        name = symbol_for(region.entry, pc)
        lift_block(module, block, options, result, name)
        result.entries[pc] = name
    return result


def lift_block(module: ir.Module, block: Block, options: LiftOptions, result: LiftResult,
               name: str) -> None:
    em = FunctionEmitter(module, name)
    for insn in block.insns:
        result.insn_count += 1
        fn = registry.lookup(insn.id)
        if fn is None:
            result.untranslatable.append((insn.address, f"{insn.mnemonic} {insn.op_str}".strip()))
            em.leave(insn.address, EXIT_FAULT, FAULT_UD)
            break
        ctx = Insn(em, insn, options.mode, options.user_mode)
        try:
            fn(ctx)
        except UnsupportedOperand:
            # Throw away what was emitted for this insn: restart from a fresh
            # IR block that traps (the partial one becomes unreachable).
            result.untranslatable.append((insn.address, f"{insn.mnemonic} {insn.op_str}".strip()))
            ud = em.new_block("ud")
            if not em.b.block.is_terminated:
                em.b.branch(ud)
            em.b.position_at_end(ud)
            em.leave(insn.address, EXIT_FAULT, FAULT_UD)
            _seal_orphans(em)
            break
        if em.b.block.is_terminated:
            break
    else:
        if block.bad_at is not None:
            result.untranslatable.append((block.bad_at, "(undecodable)"))
            em.leave(block.bad_at, EXIT_FAULT, FAULT_UD)
        else:
            em.leave(block.end)
    em.finish()


def _seal_orphans(em: FunctionEmitter) -> None:
    """Terminate any block left open by an aborted instruction."""
    for bb in em.fn.blocks:
        if not bb.is_terminated and bb.name != "exit":
            ir.IRBuilder(bb).unreachable()

"""System family: syscall, cpuid, rdtsc, xgetbv, the privileged and
sensitive instructions (all through the intrinsic table), ud2.
"""
from __future__ import annotations

from bttool.ir import intrinsics
from bttool.ir.emitter import I64
from bttool.ir.state import (EXIT_FAULT, EXIT_INTRINSIC, EXIT_SYSCALL, FAULT_GP, FAULT_UD,
                             GPR_NAMES)
from bttool.translator.operands import Insn
from bttool.translator.registry import semantic


def exit_to_runtime(ctx: Insn, name: str, register: tuple[int, int] | None = None) -> None:
    """End the unit so the runtime performs intrinsic ``name`` at this pc
    (``register``: intrinsics.exit_info's)."""
    entry = intrinsics.TABLE[name]
    if entry.privileged and ctx.user_mode:
        ctx.leave(ctx.pc, EXIT_FAULT, FAULT_GP)
    else:
        ctx.leave(ctx.pc, EXIT_INTRINSIC, intrinsics.exit_info(entry, ctx.size, register))


@semantic("syscall", terminal=True)
def syscall(ctx: Insn) -> None:
    ctx.leave(ctx.next_pc, EXIT_SYSCALL)


def _runtime_intrinsic(name: str):
    def fn(ctx: Insn) -> None:
        exit_to_runtime(ctx, name)
    return fn


for _entry in intrinsics.TABLE.values():
    if _entry.impl == "runtime" and _entry.name not in ("syscall", "rdrand") \
            and not _entry.system_only:
        for _m in _entry.mnemonics:
            semantic(_m, terminal=True)(_runtime_intrinsic(_entry.name))


@semantic("rdrand", "rdseed", terminal=True)
def rdrand(ctx: Insn) -> None:
    """The runtime fills the register (runtime/randomsource.py); the exit
    names it, so a warm run decodes nothing."""
    info = ctx.reg_info(ctx.ops[0].reg)
    exit_to_runtime(ctx, "rdrand", (GPR_NAMES.index(info.field), info.bits // 8))


@semantic("rdtsc", "rdtscp")
def rdtsc(ctx: Insn) -> None:
    if not ctx.user_mode:
        exit_to_runtime(ctx, "rdtsc_vm")
        return
    b = ctx.b
    t = ctx.em.intrinsic("llvm.readcyclecounter", I64, [])
    ctx.set_gpr("rax", b.trunc(t, ctx.c(32, 0).type))
    ctx.set_gpr("rdx", b.trunc(b.lshr(t, ctx.c(64, 32)), ctx.c(32, 0).type))
    if ctx.mnemonic == "rdtscp":
        ctx.set_gpr("rcx", ctx.c(32, 0))


@semantic("sysexit", "sysexitq", terminal=True)
def sysexit(ctx: Insn) -> None:
    """Privileged: #GP at CPL 3 (SIGSEGV, as natively).  The virtual CPU
    has no SYSENTER MSRs, so system mode gets #UD."""
    ctx.leave(ctx.pc, EXIT_FAULT, FAULT_GP if ctx.user_mode else FAULT_UD)


@semantic("ud2", "ud0", "ud1", terminal=True)
def ud2(ctx: Insn) -> None:
    ctx.leave(ctx.pc, EXIT_FAULT, FAULT_UD)

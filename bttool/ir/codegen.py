"""LLVM side of translation: target machines, optimisation, object emission.

Producing objects (here) is separate from loading them (runtime/engine.py),
so the persistent cache sits between the two.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import llvmlite.binding as llvm

if TYPE_CHECKING:  # pragma: no cover
    from llvmlite import ir

_init_lock = threading.Lock()
_initialised = False


def init_llvm() -> None:
    global _initialised
    with _init_lock:
        if not _initialised:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            llvm.initialize_native_asmparser()
            _initialised = True


def init_all_targets() -> None:
    init_llvm()
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()


@dataclass(frozen=True)
class Target:
    """What the generated code is for; every field is part of the cache key."""
    triple: str
    cpu: str
    features: str
    opt_level: int = 2     # 1: tier-1 quick pipeline, 2: full O2

    def key(self) -> str:
        return f"{self.triple}|{self.cpu}|{self.features}|O{self.opt_level}|llvm{llvm.llvm_version_info}"


@lru_cache(maxsize=4)
def host_target(opt_level: int = 1) -> Target:
    init_llvm()
    return Target(llvm.get_process_triple(), llvm.get_host_cpu_name(),
                  llvm.get_host_cpu_features().flatten(), opt_level)


@lru_cache(maxsize=8)
def target_machine(target: Target) -> llvm.TargetMachine:
    if target.triple != llvm.get_process_triple():
        init_all_targets()
    else:
        init_llvm()
    t = llvm.Target.from_triple(target.triple)
    # Tier 1 (opt_level 1) uses the fast instruction selector and register
    # allocator; tier 2 the full code generator.
    return t.create_target_machine(cpu=target.cpu, features=target.features,
                                   opt=0 if target.opt_level < 2 else target.opt_level,
                                   reloc="static", codemodel="jitdefault")


def _quick_pipeline(tm: llvm.TargetMachine) -> llvm.ModulePassManager:
    """Tier 1: turn the state allocas into SSA values and merge trivial
    blocks; nothing else.  Tier-1 code runs a region at most a few thousand
    times before tier 2 replaces it, so what instcombine and dead-store
    elimination saved at run time (6% of code size) cost more in
    translation (a third of this pipeline's time and ~10% of all tier-1
    translation); dead flags are left out by the lifter already
    (translator/flaglive.py)."""
    mpm = llvm.create_new_module_pass_manager()
    mpm.add_sroa_pass()
    mpm.add_simplify_cfg_pass()
    return mpm


def compile_module(module: "ir.Module | str", target: Target,
                   want_ir: bool = False) -> tuple[bytes, str | None]:
    """Optimise and emit an object file; returns (object bytes, optimised IR
    text when ``want_ir``)."""
    tm = target_machine(target)
    ref = llvm.parse_assembly(module if isinstance(module, str) else str(module))
    ref.triple = target.triple
    ref.data_layout = str(tm.target_data)
    ref.verify()
    if target.opt_level >= 2:
        pto = llvm.create_pipeline_tuning_options(speed_level=target.opt_level)
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(ref, pb)
    elif target.opt_level == 1:
        _quick_pipeline(tm).run(ref, llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(1)))
    return tm.emit_object(ref), (str(ref) if want_ir else None)

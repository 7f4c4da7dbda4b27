"""LLVM side of translation: target machines, optimisation, object emission.

Producing objects (here) is separate from loading them (runtime/engine.py),
so the persistent cache sits between the two.  LLVM itself (llvmlite's
library: tens of milliseconds to import and some 45 MB of memory) is loaded
only when something is compiled: a warm run whose code all comes from the
cache never loads it, and learns the host's target description (part of
every cache key) from a small file that the first run on the machine wrote
(``remember_host_in``).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import llvmlite.binding
    from llvmlite import ir

_init_lock = threading.Lock()
_initialised = False


def _llvm():
    """llvmlite's binding, imported on first use."""
    import llvmlite.binding as llvm
    return llvm


def init_llvm() -> None:
    global _initialised
    with _init_lock:
        if not _initialised:
            llvm = _llvm()
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            llvm.initialize_native_asmparser()
            _initialised = True


def init_all_targets() -> None:
    init_llvm()
    _llvm().initialize_all_targets()
    _llvm().initialize_all_asmprinters()


@dataclass(frozen=True)
class Target:
    """What the generated code is for; every field is part of the cache key."""
    triple: str
    cpu: str
    features: str
    opt_level: int = 2     # 1: tier-1 quick pipeline, 2: full O2

    def key(self) -> str:
        return f"{self.triple}|{self.cpu}|{self.features}|O{self.opt_level}|llvm{_host()['llvm']}"


# -- the host's description, remembered --------------------------------------
_host_memo_dir: str | None = None
_host_desc: dict[str, str] | None = None
_HOST_MEMO = "host-target.json"


def remember_host_in(directory: str | None) -> None:
    """Keep the host's target description in ``directory`` (the run's
    translation cache): later processes read it there instead of loading
    LLVM to ask.  Call before the first ``host_target``."""
    global _host_memo_dir
    _host_memo_dir = directory


def _fingerprint() -> str:
    """What the host description depends on: the CPU as the kernel reports
    it (vendor, family, model, stepping, feature flags) and the LLVM library
    (llvmlite's shared object, by path, size and modification time)."""
    h = hashlib.sha256()
    try:
        with open("/proc/cpuinfo", "rb") as f:
            first = f.read(1 << 16).split(b"\n\n", 1)[0]
        h.update(b"\n".join(line for line in first.splitlines()
                            if line.split(b":")[0].strip() in
                            (b"vendor_id", b"cpu family", b"model", b"stepping", b"flags", b"microcode")))
    except OSError:
        h.update(b"no cpuinfo")
    spec = importlib.util.find_spec("llvmlite")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        lib = os.path.join(loc, "binding", "libllvmlite.so")
        try:
            st = os.stat(lib)
        except OSError:
            continue
        h.update(f"{lib}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _host() -> dict[str, str]:
    """The host's triple, CPU name, CPU features and LLVM version: from the
    memo when it matches this machine, else from LLVM (and then written)."""
    global _host_desc
    if _host_desc is not None:
        return _host_desc
    path = os.path.join(_host_memo_dir, _HOST_MEMO) if _host_memo_dir else None
    fp = _fingerprint() if path else ""
    if path:
        try:
            with open(path) as f:
                memo = json.load(f)
            if memo.get("fingerprint") == fp and all(isinstance(memo.get(k), str)
                                                     for k in ("triple", "cpu", "features", "llvm")):
                _host_desc = memo
                return memo
        except (OSError, ValueError, AttributeError):
            pass
    llvm = _llvm()
    init_llvm()
    desc = {"fingerprint": fp, "triple": llvm.get_process_triple(), "cpu": llvm.get_host_cpu_name(),
            "features": llvm.get_host_cpu_features().flatten(), "llvm": str(llvm.llvm_version_info)}
    if path:
        try:
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump(desc, f)
            os.replace(tmp, path)
        except OSError:
            pass
    _host_desc = desc
    return desc


@lru_cache(maxsize=4)
def host_target(opt_level: int = 1) -> Target:
    h = _host()
    return Target(h["triple"], h["cpu"], h["features"], opt_level)


@lru_cache(maxsize=8)
def target_machine(target: Target) -> "llvmlite.binding.TargetMachine":
    llvm = _llvm()
    if target.triple != _host()["triple"]:
        init_all_targets()
    else:
        init_llvm()
    t = llvm.Target.from_triple(target.triple)
    # Tier 1 (opt_level 1) uses the fast instruction selector and register
    # allocator; tier 2 the full code generator.
    return t.create_target_machine(cpu=target.cpu, features=target.features,
                                   opt=0 if target.opt_level < 2 else target.opt_level,
                                   reloc="static", codemodel="jitdefault")


def _quick_pipeline(tm: "llvmlite.binding.TargetMachine") -> "llvmlite.binding.ModulePassManager":
    """Tier 1: turn the state allocas into SSA values and merge trivial
    blocks; nothing else.  Tier-1 code runs a region at most a few thousand
    times before tier 2 replaces it, so what instcombine and dead-store
    elimination saved at run time (6% of code size) cost more in
    translation (a third of this pipeline's time and ~10% of all tier-1
    translation); dead flags are left out by the lifter already
    (translator/flaglive.py)."""
    mpm = _llvm().create_new_module_pass_manager()
    mpm.add_sroa_pass()
    mpm.add_simplify_cfg_pass()
    return mpm


def compile_module(module: "ir.Module | str", target: Target,
                   want_ir: bool = False) -> tuple[bytes, str | None]:
    """Optimise and emit an object file; returns (object bytes, optimised IR
    text when ``want_ir``)."""
    llvm = _llvm()
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

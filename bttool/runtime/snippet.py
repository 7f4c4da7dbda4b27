"""Run a bare instruction sequence under translation (for differential tests
against the host CPU and for `bttool` debugging).

The code is placed at ``CODE_ADDR`` followed by ``int3``; a read-write data
area of ``DATA_SIZE`` bytes sits at ``DATA_ADDR``.  Execution starts at the
first instruction with the given registers, flags, xmm (or whole ymm) values
and data bytes and stops at the trailing int3 (or at a fault).  ``cpuid``
and ``xgetbv`` are answered from the selected CPU model (runtime/cpuid.py),
as the Linux runtime answers them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from bttool.ir import codegen, intrinsics, state as st
from bttool.runtime import cpuid, randomsource
from bttool.runtime.dispatcher import Executor
from bttool.runtime.memory import PROT_EXEC, PROT_READ, PROT_WRITE, GuestMemory
from bttool.runtime.window import user_options
from bttool.translator.guestcode import UnmappedCode

CODE_ADDR = 0x10000
DATA_ADDR = 0x200000
DATA_SIZE = 0x10000
STACK_ADDR = 0x400000
STACK_SIZE = 0x10000


@dataclass
class SnippetResult:
    regs: dict[str, int]
    rflags: int
    xmm: list[int]
    data: bytes
    mxcsr: int
    fault: int = 0            # 0, or an st.FAULT_* kind
    host_signal: int = 0      # SIGSEGV/SIGBUS from a guest memory access
    fault_addr: int = 0       # with host_signal: the guest address it reports
    untranslatable: list = field(default_factory=list)
    ymmh: list[int] = field(default_factory=list)   # bits 255:128 of ymm0..15
    # host signals in translated code that the guest's instructions, run
    # one at a time, did not raise again: the run went on (as a program's
    # would), but the translation faulted where the guest does not
    spurious_faults: int = 0

    @property
    def ymm(self) -> list[int]:
        """ymm0..15, 256 bits each (xmm below, ``ymmh`` above)."""
        return [x | h << 128 for x, h in zip(self.xmm, self.ymmh)]


_executor_cache: dict[str, tuple[GuestMemory, Executor]] = {}


def _machine() -> tuple[GuestMemory, Executor]:
    """One guest memory and engine reused by every snippet of a process."""
    if "m" not in _executor_cache:
        mem = GuestMemory()
        mem.map(CODE_ADDR, 0x10000, PROT_READ | PROT_EXEC)
        mem.map(DATA_ADDR, DATA_SIZE, PROT_READ | PROT_WRITE)
        mem.map(STACK_ADDR, STACK_SIZE, PROT_READ | PROT_WRITE)
        state = st.new_state()
        ex = Executor(state, mem, user_options(hot_counters=True))
        from bttool.runtime.hostsignals import install_fault_handler
        install_fault_handler(ex.engine.signal_handler)
        _executor_cache["m"] = (mem, ex)
    return _executor_cache["m"]


def run_snippet(code: bytes, regs: dict[str, int] | None = None, rflags: int = st.RFLAGS_USER_FIXED,
                xmm: list[int] | None = None, data: bytes = b"", mxcsr: int = 0x1F80,
                max_exits: int = 10000, hot_counters: bool = True,
                precise_faults: bool = False, host_instructions: bool = True,
                pic: bool = False, ymm: list[int] | None = None,
                stencils: bool = False, optimised: bool = False) -> SnippetResult:
    """``xmm``: starting values of xmm0.. (128 bits each; the upper halves of
    the ymm registers start at zero); or ``ymm``: of ymm0.. (256 bits each),
    not both.  Registers not given start at zero."""
    if xmm is not None and ymm is not None:
        raise ValueError("run_snippet takes xmm or ymm values, not both")
    mem, ex = _machine()
    # ``hot_counters``: the code of the run-time tier 1 (execution counters,
    # and the IR it prefers for LLVM's fast instruction selector); without,
    # the IR of tier 2 (compiled quickly all the same).  ``precise_faults``:
    # code with commits (LiftOptions), what a guest with a SIGSEGV handler
    # runs.  ``host_instructions``: LiftOptions' (off: generic IR only).
    # ``pic``: translated as position-independent code whose unit starts
    # at the snippet (what a PIE or shared library gets).  ``stencils``:
    # tier 1 stitched from stencils (translator/stitch.py).  ``optimised``:
    # tier 2's code, its IR (no counters) compiled at O2 as tier 2 is.
    if optimised:
        hot_counters = stencils = False
    ex.target = ex.target2 if optimised else codegen.host_target(1)    # (the Executor's tier 1)
    ex.options = user_options(CODE_ADDR if pic else None, hot_counters=hot_counters,
                              precise_faults=precise_faults, host_instructions=host_instructions,
                              stencils=stencils)
    s = ex.state
    st.reset(s)
    for name, value in (regs or {}).items():
        setattr(s, name, value & 0xFFFFFFFFFFFFFFFF)
    if "rsp" not in (regs or {}):
        s.rsp = STACK_ADDR + STACK_SIZE - 256
    st.set_rflags(s, rflags)
    s.mxcsr = mxcsr
    s.fpu_cw = 0x037F
    s.fpu_tag = 0xFF
    for i, v in enumerate(xmm or []):
        st.set_xmm(s, i, v)
    for i, v in enumerate(ymm or []):
        st.set_ymm(s, i, v)
    mem.write_force(DATA_ADDR, data.ljust(DATA_SIZE, b"\0")[:DATA_SIZE])
    # Fresh translations for every snippet: the code page is rewritten.
    ex.known.clear()
    ex.clear_table()
    # int3 ends the snippet; ud2 after it stops region discovery there.
    mem.write_force(CODE_ADDR, code + b"\xcc\x0f\x0b")
    ex.stats.untranslatable.clear()
    end = CODE_ADDR + len(code)
    s.rip = CODE_ADDR
    int3, rdrand = intrinsics.TABLE["int3"].id, intrinsics.TABLE["rdrand"].id
    result_fault = 0
    host_sig = 0
    replay = None
    spurious = 0
    pending: int | None = None
    for _ in range(max_exits):
        reason, pending = (pending, None) if pending is not None else (ex.run_once(), None)
        if reason == st.EXIT_HOST_SIGNAL and replay is None:
            # the state before the faulting instruction (runtime/precisefault.py),
            # as a guest handler would see it; a fault that does not come
            # back is no fault
            from bttool.runtime.precisefault import FaultReplay
            replay = FaultReplay(ex)
            pending = replay.replay()
            if pending == st.EXIT_NONE:
                pending = None
            if pending not in (st.EXIT_HOST_SIGNAL, st.EXIT_FAULT):
                spurious += 1
            continue
        if reason == st.EXIT_MISS:
            try:
                ex.ensure(s.rip)
            except UnmappedCode:
                result_fault = st.FAULT_PF
                break
            continue
        if reason == st.EXIT_INTRINSIC:
            entry, size = intrinsics.split_exit_info(int(s.exit_info))
            if entry.id == int3 and s.rip == end:
                break
            if entry.id == rdrand:          # as runtime/linux.py serves it
                randomsource.rdrand(s, int(s.exit_info))
                s.rip += size
                continue
            if entry.name in ("cpuid", "xgetbv"):     # as runtime/linux.py serves them
                if not cpuid.execute(entry.name, s):
                    result_fault = st.FAULT_GP
                    break
                s.rip += size
                continue
        if reason == st.EXIT_HOT:
            continue            # a long loop: stays in this tier
        if reason == st.EXIT_FAULT:
            result_fault = int(s.exit_info)
            break
        if reason == st.EXIT_HOST_SIGNAL:
            host_sig = int(s.exit_info)
            break
        raise RuntimeError(f"snippet exit {reason} at {s.rip:#x}")
    else:
        raise RuntimeError("snippet did not finish")
    return SnippetResult(
        regs={n: getattr(s, n) for n in st.GPR_NAMES + ("rip",)},
        rflags=st.rflags(s), xmm=[st.get_xmm(s, i) for i in range(16)],
        data=mem.read(DATA_ADDR, DATA_SIZE), mxcsr=s.mxcsr, fault=result_fault,
        host_signal=host_sig,
        fault_addr=(mem.guest_address(s.fault_addr) or 0) if host_sig else 0,
        untranslatable=list(ex.stats.untranslatable), spurious_faults=spurious,
        ymmh=[int.from_bytes(bytes(getattr(s, f"ymmh{i}")), "little") for i in range(16)])

"""The precise guest state at a host fault, recovered by replaying one
instruction at a time.

Translated code keeps guest registers in host registers and writes them
back only where a region exits (and, in code translated with precise faults,
at its commits: ir/commits.py), so when a guest memory access faults on the
host, the state in memory is the one at the region's entry or its last
commit.  A guest handler must see the state before the faulting instruction
(rip at it, every register as it was), and a handler that fixes the cause
and returns must resume at that instruction.  So after a fault the runtime
runs the code again from there, each instruction translated on its own and
run by ``bt_step`` (runtime/nativeloop.py) with the state written back after it,
until the fault happens again: the state is then exact.

Running the instructions before the fault twice is exact only if none of
them reads memory (or an x87 register) which it or a later one among them
wrote: ``add [m], 1`` would add twice.  Code with precise faults commits
after every such write, so between the last commit and the fault there is
none; other code (a guest with no SIGSEGV/SIGBUS handler, whose fault ends
the process anyway) may be off there.  When the replay takes another path
and does not fault, the guest simply goes on from where it is, which is
exact.
"""
from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

from bttool.ir import state as st

if TYPE_CHECKING:  # pragma: no cover
    from bttool.runtime.dispatcher import Executor

# Steps before the replay gives up looking for the fault and lets the
# guest go on normally from where it is (a consistent boundary).
MAX_STEPS = 2_000_000


class FaultReplay:
    """Single-instruction translations of one run, and the replay loop."""

    def __init__(self, executor: "Executor") -> None:
        self.ex = executor
        self._steps: dict[int, int] = {}       # pc -> address of its one-instruction function

    def _step_function(self, pc: int) -> int:
        fn = self._steps.get(pc)
        if fn is None:
            from bttool.translator.translate import lift
            ex = self.ex
            options = ex.options_for(pc).tier2()        # no counters, no profiling
            # within (pc, pc + 1): the block ends after its first instruction
            lifted = lift([pc], ex.memory.read_code, options, ex.target, known=lambda p: True,
                          max_blocks=1, within=[(pc, pc + 1)])
            t = lifted.compile()
            ex.engine.load_object(t.object_code)
            fn = self._steps[pc] = ex.engine.address(t.regions[0].symbol)
        return fn

    def forget(self, addr: int, length: int) -> None:
        """Guest code in [addr, addr+length) changed: its one-instruction
        translations go (15 bytes before: an instruction may start there)."""
        self._steps = {pc: fn for pc, fn in self._steps.items()
                       if not addr - 15 < pc < addr + length}

    def step(self) -> int:
        """Run the one instruction at state.rip; its exit reason (EXIT_NONE:
        done, rip at the next)."""
        return self._run(1)

    def replay(self) -> int:
        """Run from state.rip (a region's entry or last commit, the state as
        it was there)
        one instruction at a time until an exit other than "next
        instruction": EXIT_HOST_SIGNAL when the fault came back (the state
        is then the one before the faulting instruction), or whatever else
        ended a step (a system call, an intrinsic, a translated fault), or
        EXIT_NONE after MAX_STEPS."""
        return self._run(MAX_STEPS)

    def _run(self, steps: int) -> int:
        ex = self.ex
        s = ex.state
        saved = s.table_base
        s.table_base = ex.empty_table       # no chaining out of a step
        try:
            for _ in range(steps):
                fn = self._step_function(s.rip)
                s.exit_reason = st.EXIT_NONE
                r = ex.engine.step_fn(ctypes.addressof(s), ex.memory.arg_base, fn)
                s.exit_reason = st.EXIT_NONE
                if r not in (st.EXIT_NONE, st.EXIT_IRQ):
                    return r
            return st.EXIT_NONE
        finally:
            s.table_base = saved

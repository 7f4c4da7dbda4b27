"""The bttool that a guest ``execve`` turns into.

``Syscalls.execve`` replaces the host process by an isolated host Python
(``runtime/hostpython.py``) running this module with one argument, the
descriptor of the handoff (``runtime/exechandoff.py``) that carries the
program, the guest's argv and environment, and the run's options.
"""
from __future__ import annotations

import os
import sys
import time


def main() -> None:
    from bttool.runtime.runend import finish_run
    from bttool.errors import EXIT_INTERNAL, BttoolError
    from bttool.runtime import exechandoff
    from bttool.runtime.session import run_program
    t0 = time.perf_counter()
    try:
        h = exechandoff.read(int(sys.argv[1]))
    except (IndexError, ValueError) as e:
        print(f"bttool: error: not started by a guest execve ({e})", file=sys.stderr)
        sys.exit(EXIT_INTERNAL)
    opts = h.options
    argv0 = os.fsdecode(h.argv[0]) if h.argv else os.fsdecode(h.program)
    try:
        status, sig, st = run_program(os.fsdecode(h.program), [os.fsdecode(a) for a in h.argv[1:]],
                                      cache_dir=opts.get("cache_dir"),
                                      use_cache=bool(opts.get("use_cache")),
                                      verbose=bool(opts.get("verbose")), argv0=argv0, envp=h.envp,
                                      ignored=set(h.ignored), sigmask=h.sigmask, parked=h.parked,
                                      rlimits=opts.get("rlimits"), sysroot_dir=opts.get("sysroot"),
                                      cpu=opts.get("cpu"),
                                      end=lambda s, g, r: finish_run(s, g, r, t0))
    except BttoolError as e:
        print(f"bttool: error: {e}", file=sys.stderr)
        sys.exit(e.status)
    finish_run(status, sig, st, t0)


if __name__ == "__main__":
    from bttool.errors import run_guarded
    run_guarded(main)

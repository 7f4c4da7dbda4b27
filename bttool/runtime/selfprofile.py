"""Profiling bttool's own Python work in a run: ``BTTOOL_PROFILE=FILE``
writes a cProfile of the run (the main thread, from the command's start
to the guest's exit) to FILE, for ``python -m pstats FILE``.

Why not ``python -m cProfile``: a run ends with ``os._exit`` (runtime/
runend.py: no interpreter shutdown, guest threads may still run native
code), so cProfile's own dump at exit never happens.  Time inside
translated guest code shows as the native call that runs it
(``Engine.run_fn``)."""
from __future__ import annotations

import os

ENV = "BTTOOL_PROFILE"
_profiler = None
_pid = 0


def start() -> None:
    """Start profiling when BTTOOL_PROFILE names a file."""
    global _profiler, _pid
    if os.environ.get(ENV) and _profiler is None:
        import cProfile
        _pid = os.getpid()
        _profiler = cProfile.Profile()
        _profiler.enable()


def dump() -> None:
    """Write the profile (if one runs) to the file BTTOOL_PROFILE names;
    only the process that started it writes (a forked child inherits the
    profiler but not the right to the file)."""
    global _profiler
    if _profiler is None or os.getpid() != _pid:
        return
    _profiler.disable()
    path = os.environ.get(ENV, "")
    try:
        _profiler.dump_stats(path)
    except OSError as e:
        import sys
        print(f"bttool: warning: cannot write the profile {path}: {e.strerror}", file=sys.stderr)
    _profiler = None

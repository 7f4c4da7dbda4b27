"""How bttool's run path uses Python's cyclic garbage collector.

By the time the guest starts, the heap holds a few hundred thousand
long-lived objects (the modules of llvmlite, capstone, click, lief and
bttool, the image).  Each full collection walks all of them again although
none will ever be garbage; during a cold run the collector ran six full
and sixty-seven middle collections (crc32), mostly prompted by the objects
that translation builds and drops.  So the start-up heap is frozen (moved
out of the collector's sight: ``gc.freeze``), and translation releases its
IR explicitly (ir/lifetime.py), leaving the collector little to do.  And
every bttool process collects rarely from its first import on
(``collect_rarely``): the default, a collection every 700 new container
objects, ran some 60 times in a warm start (imports, cache rows: 8.5 ms of
a dynamically linked program's 200) and 1,460 times (155 ms) in a cold run
of it.
"""
from __future__ import annotations

import atexit
import gc


_frozen = False


def freeze_startup_heap() -> None:
    """Call when start-up is over and the guest is about to run (again
    for each program an execve starts in the process)."""
    global _frozen
    gc.freeze()
    if not _frozen:
        # At exit the frozen objects must be ordinary again: extension
        # modules (lief's nanobind) report objects still alive at shutdown
        # as leaks, on the guest's stderr.
        atexit.register(gc.unfreeze)
        _frozen = True


def collect_rarely() -> None:
    """Call once, at the process's first import of bttool (bttool/__init__.py):
    the youngest generation is collected after 100,000 new container
    objects instead of 700 (bttool makes few reference cycles)."""
    gc.set_threshold(100_000, 50, 100)

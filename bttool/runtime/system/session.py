"""One `bttool run --system`: load the kernel, build the machine, wire the
translation cache, run until power-off, map the outcome to an exit status."""
from __future__ import annotations

import os
import sys

from bttool.runtime.dispatcher import Stats

EXIT_RESET_LIMIT = 123     # the guest reset more often than --max-resets allows


def run_kernel(path: str, args: list[str], memory_size: int, max_resets: int,
               cache_dir: str | None, use_cache: bool, verbose: bool) -> tuple[int, Stats]:
    """Returns (exit status, statistics of the last boot's executors)."""
    from bttool.runtime.hostsignals import install_fault_handler
    from bttool.runtime.system.boot import load_kernel
    from bttool.runtime.system.layout import check_layout
    from bttool.runtime.system.machine import Machine, ResetLimit

    log = (lambda m: print(f"bttool: {m}", file=sys.stderr, flush=True)) if verbose else None
    kernel = load_kernel(path)
    check_layout(kernel, memory_size)
    store = None
    if use_cache:
        from bttool.runtime.cache import open_store
        store = open_store(cache_dir, log)

    def cache_factory(ex):
        from bttool.runtime.cache import RunCache
        return RunCache(store, kernel.sha256, os.path.abspath(path),
                        [(ex.target2.key(), ex.options.tier2().key()),
                         (ex.target.key(), ex.options.key())],
                        ex.target.triple, ex.options.mode_key(), 0, log)

    machine = Machine(kernel, memory_size, " ".join(args).encode(), max_resets, verbose,
                      cache_factory=cache_factory if store is not None else None)
    machine.on_new_executor = lambda ex: install_fault_handler(ex.engine.signal_handler)
    # The guest runs natively with the GIL released: Python could only act
    # on ^C between bytecodes, so give the host's signals their default
    # actions (a guest `cli` never makes bttool itself deaf to them).
    import signal
    for sig in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    from bttool.runtime.heap import freeze_startup_heap
    freeze_startup_heap()
    try:
        status, why = machine.run()
        if verbose or why.startswith("guest halted"):
            print(f"bttool: {why}", file=sys.stderr, flush=True)
    except ResetLimit as e:
        print(f"bttool: {e}", file=sys.stderr, flush=True)
        status = EXIT_RESET_LIMIT
    stats = Stats()
    for ex in machine.executors.values():
        if ex.cache is not None:
            ex.cache.finish()
        for k, v in vars(ex.stats).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                setattr(stats, k, getattr(stats, k) + v)
            elif isinstance(v, list):
                getattr(stats, k).extend(v)
    for ex in machine.executors.values():
        if ex.cache is not None:
            ex.cache.close()        # (a store shared by executors closes once, quietly)
    return status, stats


def parse_memory(text: str) -> int:
    """'128M', '1G', '65536K' or bytes -> bytes (page multiple, >= 2 MiB)."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    n = int(t[:-1] if t[-1:] in "KMG" else t, 0) * mult
    if n < (2 << 20) or n > (64 << 30):
        raise ValueError("guest memory must be between 2 MiB and 64 GiB")
    return n & ~0xFFF

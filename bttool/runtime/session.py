"""One `bttool run`: load the image, start the guest, map the outcome."""
from __future__ import annotations

import os
import sys

from bttool.errors import BttoolError
from bttool.runtime.dispatcher import Stats


def run_program(path: str, args: list[str], cache_dir: str | None, use_cache: bool,
                verbose: bool) -> tuple[int, int, Stats]:
    """Returns (exit status, fatal signal or 0, statistics)."""
    from bttool.runtime.hostsignals import install_fault_handler
    from bttool.runtime.linux import GuestDeath, LinuxProcess
    from bttool.translator.loader import load_image

    image = load_image(path)
    cache = None
    if use_cache:
        from bttool.runtime.cache import open_cache
        cache = open_cache(cache_dir, image, log=(lambda m: print(f"bttool: {m}", file=sys.stderr))
                           if verbose else None)
    argv = [os.fsencode(path)] + [os.fsencode(a) for a in args]
    envp = [k + b"=" + v for k, v in os.environb.items()]
    proc = LinuxProcess(image, argv, envp, cache=cache, verbose=verbose)
    install_fault_handler(proc.executor.engine.signal_handler)
    try:
        status = proc.run()
        return status, 0, proc.executor.stats
    except GuestDeath as d:
        if d.note:
            print(f"bttool: {d.note}", file=sys.stderr, flush=True)
        return 128 + d.sig, d.sig, proc.executor.stats
    except BttoolError:
        raise

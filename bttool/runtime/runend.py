"""How a run of a guest program ends: the ``--stats``/``--stats-json``
report, then bttool's own exit as the guest's (its status, or killed by
its fatal signal).  Shared by `bttool run` and the bttool a guest execve
starts (runtime/execstart.py)."""
from __future__ import annotations

import json
import os
import sys
import time


def finish_run(status: int, sig: int, st, t0: float, stats: bool = False,
               stats_json: str | None = None) -> None:
    """Report a finished run (--stats, --stats-json) and end bttool as the
    guest ended: with its exit status, or killed by its fatal signal."""
    wall = time.perf_counter() - t0
    from bttool.runtime import selfprofile
    selfprofile.dump()
    summary = {
        "regions_translated": st.regions_translated,
        "regions_from_cache": st.regions_from_cache,
        "guest_instructions_translated": st.guest_instructions_translated,
        "translate_seconds": round(st.translate_seconds, 6),
        "cache_load_seconds": round(st.cache_load_seconds, 6),
        "cache_dropped": getattr(st, "cache_dropped", 0),
        "cache_rows_read": getattr(st, "cache_rows_read", 0),
        "background_compiles": getattr(st, "background_compiles", 0),
        "background_fallbacks": getattr(st, "background_fallbacks", 0),
        "compile_wait_seconds": round(getattr(st, "compile_wait_seconds", 0.0), 6),
        # whether this process loaded LLVM (a warm run whose code all came
        # from the cache does not: runtime/objloader.py, ir/codegen.py)
        "llvm_loaded": "llvmlite.binding" in sys.modules,
        "exits_to_python": st.exits_to_python,
        # guest execve served in this process (runtime/execinplace.py); the
        # figures above are the last program's
        "execs_in_place": getattr(st, "execs_in_place", 0),
        # of regions_from_cache: installed as the program the execve
        # replaced had them (runtime/keptcode.py)
        "regions_kept": getattr(st, "regions_kept", 0),
        "syscalls": st.syscalls,
        "untranslatable_instructions": len(st.untranslatable),
        "wall_seconds": round(wall, 6),
        "exit_status": status,
        "threads": getattr(st, "threads", 1),
        "signal": sig,
        "images": {path: {"regions_translated": n[0], "regions_from_cache": n[1]}
                   for path, n in sorted(getattr(st, "by_image", {}).items())},
    }
    if stats:
        print("bttool: " + ", ".join(f"{k}={v}" for k, v in summary.items() if k != "images"),
              file=sys.stderr, flush=True)
    if stats_json:
        try:
            with open(stats_json, "w") as f:
                json.dump(summary, f, indent=2, sort_keys=True)
        except OSError as e:
            print(f"bttool: warning: cannot write {stats_json}: {e.strerror}", file=sys.stderr,
                  flush=True)
    if sig:
        from bttool.runtime.hostsignals import die_with_signal
        die_with_signal(sig)
    # No interpreter shutdown: guest threads may still run native code, and
    # there is nothing left to finalise (the cache is written and every
    # write of it committed, runtime/cache.py RunCache.finish; guest output
    # went to its descriptors unbuffered; the session closed the cache's
    # index).  Finalising the heap of a warm run (tearing down modules, a
    # last full collection over the hundreds of thousands of objects that
    # llvmlite, capstone, lief and the loaded translations leave) took
    # 21 ms of a dynamically linked program's 242 ms start-to-exit and
    # 28 ms of a static one's 183 (medians of 10, interleaved).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)

"""One `bttool run`: load the image, start the guest, map the outcome."""
from __future__ import annotations

import os
import sys
from typing import Callable

from bttool.runtime import cpuid, sysroot
from bttool.runtime.dispatcher import Stats


def initial_environment() -> list[bytes]:
    """The environment bttool was started with, entry for entry, for the
    guest.  Not os.environ: Python adds to it at start-up (LC_CTYPE=C.UTF-8
    when the locale is C, PEP 538), and it cannot hold entries without '='
    or repeated names, which a native program would see.  The kernel's copy
    of the original block is in /proc/self/environ."""
    try:
        with open("/proc/self/environ", "rb") as f:
            data = f.read()
    except OSError:
        return [k + b"=" + v for k, v in os.environb.items()]
    return data[:-1].split(b"\0") if data.endswith(b"\0") else []


def load_interpreter(image, known_info=None):
    """The ELF interpreter (ld.so) that a dynamically linked ``image``
    names, from the host's file system; NotFound as Linux's ENOENT when it
    is missing (a shell then says "No such file or directory", status 127)."""
    from bttool.errors import CannotRun, NotFound
    from bttool.runtime import imagememo
    if not image.interpreter:   # Linux opens "" as the working directory: EACCES
        raise CannotRun(f"{image.path}: bad interpreter: empty name")
    try:
        interp = imagememo.load(sysroot.resolve(image.interpreter), known_info, as_interpreter=True)
    except NotFound:
        raise NotFound(f"{image.path}: interpreter {image.interpreter}: no such file") from None
    except CannotRun as e:
        raise CannotRun(f"{image.path}: bad interpreter: {e}") from None
    return interp


# Images whose parsed headers this process found in the cache or stored
# there: a program an execve starts in this process (or in one forked from
# it) does not ask again (a busybox sh child would open the cache's index
# for nothing else: runtime/cache.py, reopen_later).
_INFO_STORED: set[str] = set()


def _give_back(proc) -> None:
    """hostfds.give_back's hook: the guest needs the numbers of bttool's
    descriptors.  Background compilations still under way are collected
    (into the cache), the compile server is dropped (later compilations
    run here) and the cache index closed (the run goes on without it;
    RunCache.finish stores what was translated since if it can open the
    index again at exit)."""
    ex = proc.executor
    if ex.background is not None:
        ex.collect(wait=True)
        ex.background.release()
    if ex.cache is not None and ex.cache.store is not None:
        ex.cache.flush()
        ex.cache.store.release()
    if ex.background is None:           # (imported only now: there was no room before)
        from bttool.runtime.background import BackgroundCompiler
        ex.background = BackgroundCompiler(ex.log)
        ex.background.release()


def run_program(path: str, args: list[str], cache_dir: str | None, use_cache: bool,
                verbose: bool, argv0: str | None = None,
                envp: list[bytes] | None = None, ignored: set[int] | None = None,
                sigmask: int = 0,
                end: "Callable[[int, int, Stats], None] | None" = None,
                parked: dict | None = None, rlimits: dict | None = None,
                sysroot_dir: str | None = None, cpu: str | None = None) -> tuple[int, int, Stats]:
    """Returns (exit status, fatal signal or 0, statistics).  The guest's
    environment is ``envp``, or bttool's own when it is None (a first run
    passes its environment on, as a shell's exec would); ``ignored`` and
    ``sigmask`` are the signals it starts with ignored and blocked (what a
    guest execve kept; a first run takes the ignored ones bttool inherited).
    ``parked``: the guest's descriptors the execve parked (runtime/fdpark.py),
    put back in place before the guest starts, once bttool has given up
    its own (the guest holds every number then).  ``rlimits``: the
    guest's own RLIMIT_AS and RLIMIT_DATA that an execve passes on
    (runtime/guestlimits.py).  ``sysroot_dir``: where the guest's absolute
    paths are looked up first (runtime/sysroot.py).  ``cpu``: the virtual
    CPU model (translator/cpumodel.py; None: BTTOOL_CPU or the default).
    A guest execve served
    in this process (runtime/execinplace.py) starts the new program here;
    what is returned is then the last program's."""
    from bttool.runtime.execinplace import ExecInPlace
    from bttool.runtime.hostsignals import ignored_at_start

    sysroot.set_root(sysroot_dir)
    cpuid.select(cpu)
    from bttool.runtime.hostfds import make_room
    make_room()         # before bttool opens anything of its own (the cache)
    from bttool.runtime import guestlimits
    guestlimits.start(rlimits)
    log = (lambda m: print(f"bttool: {m}", file=sys.stderr, flush=True)) if verbose else None
    store = None
    if use_cache:
        from bttool.runtime.cache import open_store
        store = open_store(cache_dir, log)
    argv = [os.fsencode(argv0 if argv0 is not None else path)] + [os.fsencode(a) for a in args]
    if envp is None:
        envp = initial_environment()
    # the guest's signals start as Linux starts them after exec: ignored
    # ones stay ignored, the rest take their default actions, so bttool ends
    # as the guest would
    if ignored is None:
        ignored = ignored_at_start()
    running: list = []          # the LinuxProcess running now
    from bttool.runtime import hostfds
    hostfds.on_give_back(lambda: _give_back(running[0]))
    options = {"cache_dir": cache_dir, "use_cache": use_cache, "verbose": verbose, "log": log}
    arriving: ExecInPlace | None = None
    execs = 0
    while True:
        try:
            return _run_image(path, argv, envp, ignored, sigmask, store, options, running, end,
                              parked, arriving, execs)
        except ExecInPlace as request:
            path, argv, envp = request.program, request.argv, request.envp
            # (not its traceback: the old guest's frames would live on)
            ignored, sigmask, parked, arriving = request.ignored, request.mask, None, \
                request.with_traceback(None)
            execs += 1


def _run_image(path: str, argv: list[bytes], envp: list[bytes], ignored: set[int], sigmask: int,
               store, options: dict, running: list, end, parked: dict | None,
               arriving, execs: int) -> tuple[int, int, Stats]:
    """Load and run one program in this process (run_program's loop), the
    ``execs``-th execve served in place (``arriving``: its request); an
    execve served in place leaves it by ExecInPlace, the old guest taken
    down (execinplace.leave)."""
    from bttool.runtime.execinplace import ExecInPlace, arrive, engine_left, leave
    from bttool.runtime.heap import freeze_startup_heap
    from bttool.runtime.hostsignals import install_fault_handler, start_guest_dispositions
    from bttool.runtime import imagememo
    from bttool.runtime.linux import GuestDeath, LinuxProcess

    cache_dir, use_cache, verbose, log = (options[k] for k in ("cache_dir", "use_cache", "verbose", "log"))
    cached_info: dict[str, dict | None] = {}

    def known_info(sha: str) -> dict | None:
        if sha in _INFO_STORED:     # (an earlier program of this process: no query)
            cached_info[sha] = {}
        else:
            cached_info[sha] = store.image_info(sha)
        return cached_info[sha]
    if arriving is not None and arriving.image is not None:
        image, interpreter = arriving.image, arriving.interpreter       # (execinplace.load)
        for img in (image, interpreter):
            if store is not None and img is not None:
                known_info(img.sha256)
    else:
        image = imagememo.load(path, known_info if store else None)
        interpreter = None
        if image.interpreter is not None:
            interpreter = load_interpreter(image, known_info if store else None)
    for img in (image, interpreter):
        if store is not None and img is not None and cached_info.get(img.sha256) is None:
            try:
                store.store_image_info(img.sha256, os.path.abspath(img.path), img.info())
            except Exception as e:  # noqa: BLE001 - a read-only cache still runs
                print(f"bttool: warning: cache directory {store.root} not writable ({e}); "
                      "running without caching", file=sys.stderr)
                store = None
        if store is not None and img is not None:
            _INFO_STORED.add(img.sha256)
    from bttool.errors import ExecFault
    try:
        proc = LinuxProcess(image, argv, envp, verbose=verbose,
                            compile_support=store.support_object if store is not None else None,
                            interpreter=interpreter, engine=engine_left(arriving))
    except ExecFault as e:     # Linux kills the program during the exec
        print(f"bttool: {e}", file=sys.stderr, flush=True)
        return 128 + e.signal, e.signal, Stats()
    # what a guest execve needs to start the new program under bttool too
    proc.exec_options = {"cache_dir": cache_dir, "use_cache": use_cache, "verbose": verbose,
                         "sysroot": sysroot.root(), "cpu": cpuid.model().name}
    if store is not None:
        from bttool.runtime.cache import RunCache
        import dataclasses
        ex = proc.executor
        variants: dict[tuple[bool, bool], tuple[list[tuple[str, str]], str]] = {}

        def unit_variants(pic: bool) -> tuple[list[tuple[str, str]], str]:
            """The cache variants (best tier first) and code-map key for a
            code unit's kind of code (with the options in force now: a
            guest's SIGSEGV handler makes them precise, Executor.require_precise_faults)."""
            k = (pic, ex.options.precise_faults)
            if k not in variants:
                opts = dataclasses.replace(ex.options, pic_base=0 if pic else None)
                variants[k] = ([(ex.target2.key(), opts.tier2().key()), (ex.target.key(), opts.key())],
                               opts.mode_key())
            return variants[k]
        ex.cache = RunCache(store, image.sha256, os.path.abspath(path), [], ex.target.triple, "",
                            proc.load_base, log, units=proc.units, unit_variants=unit_variants)
        proc.known_file_digest = store.known_file_digest
        proc.remember_file_digest = store.remember_file_digest
    running[:] = [proc]
    install_fault_handler(proc.executor.engine.signal_handler)
    start_guest_dispositions(ignored)
    proc.start_signals(ignored, sigmask)
    if arriving is not None:
        arrive(arriving, proc)
    if parked:
        from bttool.runtime import fdpark, hostfds
        hostfds.give_back()
        hostfds.preload()
        try:
            fdpark.restore(parked)
        except OSError as e:
            from bttool.errors import BttoolError
            raise BttoolError(f"cannot put the guest's descriptors back after its execve ({e})") from None
    freeze_startup_heap()

    def conclude(status: int, sig: int) -> tuple[int, int, Stats]:
        if proc.executor.cache is not None:
            proc.executor.collect(wait=True)    # tier-2 compilations still under way go into it
            proc.executor.cache.finish()
            proc.executor.cache.close()
            proc.executor.stats.cache_dropped = proc.executor.cache.dropped
            proc.executor.stats.cache_rows_read = proc.executor.cache.rows_read
        if proc.executor.background is not None:
            proc.executor.stats.background_compiles = proc.executor.background.compiled_by_server
            proc.executor.stats.background_fallbacks = proc.executor.background.compiled_here
        proc.executor.stats.threads = proc.threads.started
        proc.executor.stats.execs_in_place = execs
        return status, sig, proc.executor.stats
    if end is not None:
        proc.end_process = lambda status, sig: end(*conclude(status, sig))
    try:
        status, sig = proc.run(), 0
    except GuestDeath as d:
        if d.note:
            print(f"bttool: {d.note}", file=sys.stderr, flush=True)
        status, sig = 128 + d.sig, d.sig
    except ExecInPlace as request:
        leave(proc, request)
        raise
    return conclude(status, sig)

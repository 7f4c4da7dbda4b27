"""A guest ``execve`` served inside this host process.

The other way to serve an execve (``Syscalls.execve``: the host process
becomes a new isolated Python running ``runtime/execstart.py``) pays for a
Python start, bttool's imports and the cache's opening on every exec: about
0.2 s, where the exec itself costs a millisecond natively.  A shell script
makes one exec per command, so that cost is what a user of bttool sees.

Here the same Python goes on: the old guest is taken down as Linux's exec
takes down the old image, and ``session.run_program`` starts the new
program with the cache, the compile server and the modules already there.
What Linux's exec does and bttool must therefore do itself:

* the guest's close-on-exec descriptors are closed (bttool's own stay);
* signals the guest handled go back to their default action; ignored
  ones stay ignored, the mask stays, and signals caught but not yet
  delivered stay pending (put back into the host's pending set);
* the address space is new: the old guest window is unmapped, and the
  lookup table that led to its translations emptied (the translations stay
  loaded for the new program to reuse where its code is the same).

What the process keeps is kept by construction: pid, cwd, umask, rlimits,
timers, other descriptors, the parent.  It is served here only when that
is all there is to it: a single guest thread that never started another
(Linux kills the others; the host process route does it by exec), a cache
that still holds its descriptors (after a give-back the guest holds every
number, and the new process route parks them), and not when the user asks
for the other route with ``BTTOOL_EXEC=process``.
"""
from __future__ import annotations

import errno
import os
import threading
from dataclasses import dataclass, field

from bttool.runtime import hostfds, hostsignals, keptcode


@dataclass
class ExecInPlace(Exception):
    """Raised by ``Syscalls.execve`` past the point of no return; caught by
    ``session.run_program``, which starts ``program`` in this process."""
    program: str                # the host path of the ELF to run
    argv: list[bytes]           # the new guest's argv, argv[0] included
    envp: list[bytes]           # and its environment
    # set by leave(): what the new guest inherits
    ignored: set[int] = field(default_factory=set)
    mask: int = 0
    caught: list[tuple[int, bytes]] = field(default_factory=list)
    old: object = None          # the LinuxProcess left, until retire()
    kept: object = None         # what its translations leave the new one (keptcode.take)
    # set by load(): the program's image and its interpreter's, when known
    image: object = None
    interpreter: object = None


def possible(proc) -> bool:
    """Whether ``proc``'s execve can be served in this process."""
    if os.environ.get("BTTOOL_EXEC") == "process":
        return False
    if threading.current_thread() is not threading.main_thread() or proc.threads.started != 1:
        return False
    if hostfds.swept_foreign:
        return False
    cache = proc.executor.cache
    return not (cache is not None and cache.store is not None and cache.store.released)


def load(request: ExecInPlace) -> int:
    """Load the new program and its ELF interpreter before the point of no
    return, as Linux does (for either route): a missing interpreter is
    execve's ENOENT, which the caller gets (a shell says so and goes on).
    0, or that errno.  An image bttool cannot run (where Linux might) is
    left to the session, which says why and ends as before."""
    from bttool.errors import CannotRun, NotFound
    from bttool.runtime import imagememo
    from bttool.runtime.session import load_interpreter
    try:
        image = imagememo.load(request.program)
    except (CannotRun, NotFound):
        return 0
    try:
        interpreter = load_interpreter(image) if image.interpreter is not None else None
    except NotFound:
        return errno.ENOENT
    except CannotRun:
        return 0
    request.image, request.interpreter = image, interpreter
    return 0


def leave(proc, request: ExecInPlace) -> None:
    """Take the old guest down as far as the new one must not see it (its
    descriptors and signal dispositions); its memory goes in ``retire``,
    once the new guest's fault handler is in place."""
    proc.before_exec()
    request.ignored, request.mask, request.caught = proc.signals.leave_for_exec()
    hostfds.close_on_exec()
    request.old = proc
    request.kept = keptcode.take(proc.executor)


def engine_left(request: ExecInPlace | None):
    """The old guest's engine (its loaded translations and support code),
    for the new guest's executor to go on with, or None.  Keeping it costs
    nothing (after a shell's fork the pages are shared with the shell) and
    saves reading and linking again every object both programs use: a
    busybox applet that busybox sh execs, libc.so for dynamic programs."""
    return request.old.executor.engine if request is not None and request.old is not None else None


def arrive(request: ExecInPlace, proc) -> None:
    """The new guest ``proc`` is set up (its signal dispositions and fault
    handler too): give it the compile server, the old guest's loaded
    objects and the translations of code it holds unchanged
    (runtime/keptcode.py), unmap the old guest's memory, and put the
    signals that were pending back."""
    old = request.old
    request.old = None
    if old is not None:
        ex, old_ex = proc.executor, old.executor
        if old_ex.background is not None and ex.background is None:
            ex.background = old_ex.background
            ex.background.adopt(ex.log)
        if old_ex.engine is ex.engine:
            ex.loaded_objects |= old_ex.loaded_objects
        keptcode.settle(request.kept, ex, old.memory)
        retire(old)
    for sig, info in request.caught:
        hostsignals.requeue(sig, info)


def retire(old) -> None:
    """Unmap the old guest's memory, and drop what refers to it and to the
    rest of the old guest: the start-up heap is frozen (runtime/heap.py),
    so the old process's reference cycles would otherwise keep it all
    alive."""
    old.memory.close()
    for obj in (old.executor, old.signals, old.syscalls, old):
        vars(obj).clear()

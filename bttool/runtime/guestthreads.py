"""Guest threads: each runs on a host thread of its own, in parallel.

A guest ``clone`` of a thread (CLONE_VM|CLONE_THREAD) starts a host thread
with a CPU state of its own.  Translated code holds no Python lock while it
runs (ctypes releases the GIL around ``bt_run``), so two guest threads use
two cores.  Everything else, the Python side of the runtime (translating,
installing, the cache, system calls, signal delivery), runs under one lock,
the ``RuntimeLock``: a thread holds it whenever it is in Python and gives it
up around native code and around host system calls that may block (a futex
wait must not keep the thread that would wake it out of Python).  Before the
first clone there is one thread and the lock costs nothing.

What belongs to one thread (its CPU state, signal mask, alternate stack,
clear-child-tid address, robust list) is a ``PerThread`` attribute of the
object that owns it: the same attribute name reads each thread's own value.
"""
from __future__ import annotations

import ctypes
import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

_libc = ctypes.CDLL(None, use_errno=True)

# Linux's robust futex list (kernel/futex/core.c): the owner-died bit a
# dead owner's lock gets, the waiters bit, and the owner's tid in the rest.
FUTEX_WAITERS = 0x80000000
FUTEX_OWNER_DIED = 0x40000000
FUTEX_TID_MASK = 0x3FFFFFFF
ROBUST_LIST_LIMIT = 2048


class PerThread:
    """A data descriptor: an attribute whose value is the current host
    thread's own (one ``threading.local`` per owning object).  A thread
    that never set it reads the ``default``."""

    def __init__(self, default: object = None) -> None:
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def _local(self, obj: object) -> threading.local:
        d = obj.__dict__
        loc = d.get("_per_thread")
        if loc is None:
            loc = d.setdefault("_per_thread", threading.local())
        return loc

    def __get__(self, obj: object, owner: type | None = None):
        if obj is None:
            return self
        return getattr(self._local(obj), self.name, self.default)

    def __set__(self, obj: object, value: object) -> None:
        setattr(self._local(obj), self.name, value)


class RuntimeLock:
    """The one lock of the runtime's Python side (see the module docstring).
    Inactive (free) until a second thread exists."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.shared = False

    def share(self) -> None:
        """A second thread is about to start: from now on the caller, and
        every thread in Python, holds the lock."""
        if not self.shared:
            self._lock.acquire()
            self.shared = True

    def acquire(self) -> None:
        self._lock.acquire()

    def release(self) -> None:
        self._lock.release()

    @contextmanager
    def released(self) -> Iterator[None]:
        """Give the lock up around native code or a blocking host call."""
        if not self.shared:
            yield
            return
        self._lock.release()
        try:
            yield
        finally:
            self._lock.acquire()


# The one runtime lock of this process (a guest process is one host process).
LOCK = RuntimeLock()


def gettid() -> int:
    return _libc.syscall(186)


def block_all_signals() -> set:
    """Block every signal but the faults on this host thread (one that runs
    no guest code: a signal for the guest must go to a thread that does);
    returns the old mask."""
    return signal.pthread_sigmask(signal.SIG_BLOCK,
                                  signal.valid_signals() - {signal.SIGSEGV, signal.SIGBUS})


class ThreadGroup:
    """The live guest threads of one process, and how the last one ends."""

    def __init__(self) -> None:
        self.started = 1            # threads ever run (the first included)
        self.live = {gettid()}
        self._done = threading.Condition(threading.Lock())
        self._status: int | None = None
        # whether the host thread that started the run waits in ``wait``
        # (else the thread that ends last must end the process itself)
        self.waiting = False

    def start(self, body: Callable[[], None], name: str) -> None:
        """Run ``body`` on a new host thread (the caller holds the lock;
        ``body`` takes it before it touches anything shared but ``live``,
        which it joins while the caller waits for it)."""
        LOCK.share()
        threading.Thread(target=body, name=name, daemon=True).start()     # RuntimeError: no thread
        self.started += 1

    def joined(self, tid: int) -> None:
        self.live.add(tid)

    def left(self, tid: int) -> bool:
        """Thread ``tid`` is ending; True when it was the last (its status
        then ends the process: ``last_ended``).  Taken before the thread
        wakes its joiners, as Linux counts a thread out of its group before
        it clears its child tid: else a joiner that then exits would not
        be the last, and the process would end with the other's status."""
        self.live.discard(tid)
        return not self.live

    def last_ended(self, status: int) -> None:
        """The last thread ended with ``exit(status)``: so ends the
        process (``wait``)."""
        with self._done:
            self._status = status
            self._done.notify_all()

    def wait(self) -> int:
        """On the host's main thread, whose guest thread has ended while
        others run: wait, outside the lock and with every signal blocked,
        for the last to end; its exit status."""
        block_all_signals()
        self.waiting = True
        with LOCK.released(), self._done:
            while self._status is None:
                self._done.wait()
        return self._status

    def after_fork(self) -> None:
        """In a forked child only the thread that forked lives."""
        self.live = {gettid()}
        self._done = threading.Condition(threading.Lock())
        self._status = None
        self.waiting = False

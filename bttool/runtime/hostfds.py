"""bttool's own descriptors, kept out of the guest's way.

A linux-user guest shares bttool's descriptor table: its ``open`` gets the
lowest free number, and its ``dup2`` may name any number.  So bttool's own
descriptors (the cache database with its WAL and shared-memory files, the
compile server's socket) live near the top of the descriptor limit: the
guest's first ``open`` returns 3 as it does natively, and a ``dup2`` onto a
low number (a shell's ``exec 3>file``) cannot make the cache write its
pages into the guest's file (``samples/descriptors.c``).  The numbers up
there are the guest's only if it asks for them by number.
"""
from __future__ import annotations

import fcntl
import os
import resource
from contextlib import contextmanager
from typing import Iterator


def floor() -> int:
    """Where bttool's descriptors start: 64 below the soft limit, or below
    1024 (the usual soft limit) when it is higher, so that opening_high
    never needs more than about a thousand placeholders."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return max(3, min(soft, 1024) - 64)


def move_high(fd: int) -> int:
    """``fd`` moved to floor() or above, close-on-exec (itself if that fails)."""
    try:
        new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor())
    except OSError:
        return fd
    os.close(fd)
    return new


@contextmanager
def opening_high() -> Iterator[None]:
    """Descriptors opened inside this block get numbers from floor() up,
    for code that opens files itself (SQLite): every free number below is
    held by a placeholder meanwhile (~1 ms for a limit of 1024)."""
    lo = floor()
    held: list[int] = []
    try:
        fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        while fd < lo:
            held.append(fd)
            fd = os.dup(fd)
        os.close(fd)
    except OSError:
        pass            # out of descriptors: the block opens where it can
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)

"""How a guest ``execve`` hands the new program to the bttool that replaces
this process.

The new bttool needs the program, the guest's argv and environment exactly as
the guest passed them, and this run's options.  None of it may travel in the
host process's environment (the guest's ``LD_PRELOAD`` or ``PYTHONPATH``
would then steer the host Python) nor leave a trace in what the guest sees
afterwards.  So it is written to an anonymous memory file whose descriptor
the new process inherits, reads and closes before the guest starts: the guest
finds its descriptor table exactly as exec left it.
"""
from __future__ import annotations

import marshal
import os
from dataclasses import dataclass, field

from bttool.runtime.hostfds import high_copy

_MAGIC = b"bttool-exec-3\0"


@dataclass
class Handoff:
    program: bytes                 # the path the guest passed to execve
    argv: list[bytes]              # the guest's argv, argv[0] included
    envp: list[bytes]              # the guest's environment, NAME=value
    options: dict = field(default_factory=dict)   # cache_dir, use_cache, verbose
    ignored: list[int] = field(default_factory=list)   # signals exec keeps ignored
    sigmask: int = 0                                    # and the blocked ones
    parked: dict = field(default_factory=dict)          # the guest's descriptors exec could
                                                        # not leave in place (runtime/fdpark.py)


def write(h: Handoff) -> int:
    """A descriptor (inheritable, high up where bttool's own go: hostfds)
    holding ``h``."""
    fd = os.memfd_create("bttool-exec", 0)
    try:
        os.write(fd, _MAGIC + marshal.dumps((h.program, h.argv, h.envp, h.options, h.ignored, h.sigmask,
                                             h.parked)))
        os.lseek(fd, 0, os.SEEK_SET)
        high = high_copy(fd, cloexec=False)
    except BaseException:
        os.close(fd)
        raise
    if high is None:
        high = fd
    else:
        os.close(fd)
    os.set_inheritable(high, True)
    return high


def read(fd: int) -> Handoff:
    """The handoff in ``fd``, which is closed (ValueError if it is not one)."""
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"descriptor {fd}: {e.strerror}") from None
    if not data.startswith(_MAGIC):
        raise ValueError(f"descriptor {fd} holds no exec handoff")
    program, argv, envp, options, ignored, sigmask, parked = marshal.loads(data[len(_MAGIC):])
    return Handoff(program, argv, envp, options, ignored, sigmask, parked)

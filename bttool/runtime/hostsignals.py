"""Host signal plumbing: catching faults of translated code, and ending
bttool with the guest's fatal signal."""
from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys

_libc = ctypes.CDLL(None, use_errno=True)
SA_SIGINFO = 0x4
SA_NODEFER = 0x40000000
SA_ONSTACK = 0x08000000


class _SigAction(ctypes.Structure):
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_uint64 * 16),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]


def install_fault_handler(handler_address: int) -> None:
    """Route SIGSEGV/SIGBUS/SIGFPE to the native handler (ir/support.py)."""
    for sig in (signal.SIGSEGV, signal.SIGBUS):
        sa = _SigAction()
        sa.handler = handler_address
        sa.flags = SA_SIGINFO | SA_NODEFER
        if _libc.sigaction(int(sig), ctypes.byref(sa), None) != 0:
            raise OSError(ctypes.get_errno(), "sigaction failed")


def die_with_signal(sig: int) -> None:
    """End this process by ``sig`` as the guest would have ended, without a
    core dump, so a parent sees the same wait status as for a native run."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass
    signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
    os.kill(os.getpid(), sig)
    os._exit(128 + sig)

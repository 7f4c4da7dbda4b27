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


# bttool's own (faults of translated code), and those nobody can change
_NOT_MIRRORED = {signal.SIGSEGV, signal.SIGBUS, signal.SIGKILL, signal.SIGSTOP}
# signals the host Python changes at its start-up, so their inherited
# disposition is not known here (Python ignores SIGPIPE and SIGXFSZ)
_SET_BY_PYTHON = {signal.SIGPIPE, signal.SIGXFSZ}
# given their default action for the guest (Python turns SIGINT into an
# exception raised between bytecodes; the guest runs natively)
_RESET_FOR_GUEST = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def ignored_at_start() -> set[int]:
    """Signals this process inherited ignored (``nohup``, a shell's
    ``trap '' INT`` before a background job), which the guest inherits too."""
    out = set()
    for sig in range(1, signal.NSIG):
        if sig in _SET_BY_PYTHON or sig in _NOT_MIRRORED:
            continue
        try:
            if signal.getsignal(sig) == signal.SIG_IGN:
                out.add(sig)
        except (ValueError, OSError):
            pass
    return out


def start_guest_dispositions(ignored: set[int]) -> None:
    """The host dispositions a guest starts with: the ``ignored`` ones
    ignored, the signals Python changes at start-up back to default."""
    for sig in _RESET_FOR_GUEST:
        signal.signal(sig, signal.SIG_IGN if sig in ignored else signal.SIG_DFL)
    for sig in ignored:
        mirror_disposition(sig, True)


def mirror_disposition(sig: int, ignored: bool) -> None:
    """The host disposition of ``sig`` follows the guest's sigaction: an
    ignored signal is ignored by the host process (a write to a closed pipe
    is EPIPE, not death; SIGCHLD ignored reaps children; it survives exec as
    Linux keeps it); otherwise the default action (guest handlers are not
    run yet)."""
    if sig in _NOT_MIRRORED:
        return
    try:
        signal.signal(sig, signal.SIG_IGN if ignored else signal.SIG_DFL)
    except (ValueError, OSError):      # glibc's reserved real-time signals
        pass


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

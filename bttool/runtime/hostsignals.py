"""Host signal plumbing: catching faults of translated code, the host
dispositions and mask that mirror the guest's (runtime/guestsignals.py),
and ending bttool with the guest's fatal signal."""
from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
import threading

from bttool.runtime.guestthreads import gettid

_libc = ctypes.CDLL(None, use_errno=True)
SA_SIGINFO = 0x4
SA_NODEFER = 0x40000000
SA_ONSTACK = 0x08000000


class _SigAction(ctypes.Structure):
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_uint64 * 16),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]


def _set_disposition(sig: int, handler: int, flags: int = 0, block_all: bool = False) -> None:
    """sigaction through libc, not signal.signal: any guest thread may
    change a disposition (Python's works on its main thread only).  An
    invalid signal (glibc's reserved real-time ones) is left alone."""
    sa = _SigAction()
    sa.handler = handler
    sa.flags = flags
    if block_all:
        for i in range(16):
            sa.mask[i] = 0xFFFFFFFFFFFFFFFF
    _libc.sigaction(int(sig), ctypes.byref(sa), None)


def install_fault_handler(handler_address: int) -> None:
    """Route SIGSEGV and SIGBUS to the native handler (runtime/nativeloop.py).
    Not SIGFPE: translated code never raises it on the host; div and idiv
    test the divisor and the quotient's range first and exit with FAULT_DE
    (translator/semantics/muldiv.py)."""
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
    Linux keeps it); otherwise the default action (``catch_for_guest`` is
    the third case)."""
    if sig in _NOT_MIRRORED:
        return
    _set_disposition(sig, 1 if ignored else 0)   # SIG_IGN, SIG_DFL


# never blocked on the host: bttool's own fault signals, and glibc's
# internal ones (thread cancellation, setxid), which the host Python needs
_NEVER_BLOCKED = (1 << (signal.SIGSEGV - 1)) | (1 << (signal.SIGBUS - 1)) | (1 << 31) | (1 << 32)
_SIG_SETMASK = 2


def _syscall(nr: int, *args: int) -> int:
    r = _libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return -ctypes.get_errno() if r == -1 else r


def catch_for_guest(sig: int, catcher: int) -> None:
    """``sig`` has a guest handler: the host catches it with ``catcher``
    (runtime/nativeloop.py bt_async), every signal blocked while it runs.  No
    SA_RESTART: a blocking call returns EINTR and the guest's own flags
    decide about the restart (runtime/guestsignals.py)."""
    if sig in _NOT_MIRRORED:
        return
    _set_disposition(sig, catcher, SA_SIGINFO, block_all=True)


def host_mask(guest_mask: int) -> int:
    """The host's blocked set for a guest's: the same, except the signals in
    ``_NEVER_BLOCKED``."""
    return guest_mask & ~_NEVER_BLOCKED & 0xFFFFFFFFFFFFFFFF


def set_host_mask(guest_mask: int) -> None:
    """The host thread blocks what the guest blocks (so the host kernel
    keeps those pending)."""
    buf = ctypes.c_uint64(host_mask(guest_mask))
    _syscall(14, _SIG_SETMASK, ctypes.addressof(buf), 0, 8)


def requeue(sig: int, info: bytes) -> None:
    """Put a caught signal back into the host's pending set, siginfo and
    all (rt_tgsigqueueinfo to this thread; it is blocked now)."""
    buf = ctypes.create_string_buffer(info, len(info))
    _syscall(297, os.getpid(), gettid(), sig, ctypes.addressof(buf))


def stop_self(sig: int) -> None:
    """A stop signal with the default action: the host process stops (the
    host's disposition of it is the default too) until SIGCONT."""
    os.kill(os.getpid(), sig)


def die_with_signal(sig: int) -> None:
    """End this process by ``sig`` as the guest would have ended, without a
    core dump, so a parent sees the same wait status as for a native run."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass
    _set_disposition(sig, 0)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
    # to this thread, so it arrives before the call returns (sent to the
    # process, another thread might take it after os._exit below)
    signal.pthread_kill(threading.get_ident(), sig)
    os._exit(128 + sig)

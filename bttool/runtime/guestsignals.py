"""A linux-user guest's signals: dispositions, the blocked mask, the
alternate stack, delivery into guest handlers through Linux's x86-64
signal frame, and rt_sigreturn.

The host kernel keeps the books where it can.  The host's signal mask
follows the guest's, so a blocked signal stays pending in the host kernel
and rt_sigpending, rt_sigtimedwait, signalfd and rt_sigsuspend pass
through.  A signal the guest handles is caught on the host by ``bt_async``
(runtime/nativeloop.py), which records its siginfo, leaves the signal
blocked on the host thread and raises the state's poll flag: translated
code leaves at its next back edge or region exit, a blocking host system
call returns EINTR (or does not start, when the signal came after the
guest's call left translated code: Syscalls.raw), and ``deliver_pending``
builds the guest's frame at that instruction boundary and gives the host
thread the guest's mask again.  Until then further instances of the signal stay in the host
kernel's queue, so real-time signals queue (each instance delivered with
its value, in order) and nothing a native run would deliver is merged.
Signals with the default action keep the host's default action, so the
host kernel stops, continues or ends bttool exactly as it would the guest.
Synchronous signals (guest faults, int3) are delivered here directly with
Linux's forced semantics.
"""
from __future__ import annotations

import ctypes
import errno
import signal
import struct
from typing import TYPE_CHECKING

from bttool.ir import state as st
from bttool.ir.state import SIGINFO_SIZE
from bttool.runtime.guestthreads import PerThread
from bttool.runtime import cpuid, fpstate, hostsignals
from bttool.runtime.memory import GuestMemoryError

if TYPE_CHECKING:  # pragma: no cover
    from bttool.runtime.linux import LinuxProcess

SA_SIGINFO, SA_ONSTACK, SA_RESTART = 0x4, 0x08000000, 0x10000000
SA_NODEFER, SA_RESETHAND, SA_RESTORER = 0x40000000, 0x80000000, 0x04000000
SS_ONSTACK, SS_DISABLE, SS_AUTODISARM = 1, 2, 1 << 31
MINSIGSTKSZ = 2048
SI_KERNEL, SI_TKILL = 0x80, -6
SEGV_MAPERR, SEGV_ACCERR, ILL_ILLOPN, FPE_INTDIV, TRAP_BRKPT = 1, 2, 2, 1, 1
# Linux's rt_sigframe: pretcode, the ucontext (flags, link, stack_t, the
# 256-byte sigcontext, the 8-byte kernel sigset) and the siginfo.
_UC, _INFO, FRAME_SIZE = 8, 8 + 304, 8 + 304 + SIGINFO_SIZE
_MCONTEXT = _UC + 40
# sigcontext's general registers, in order (then eflags and the selectors)
_SC_REGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp",
            "rbx", "rdx", "rax", "rcx", "rsp", "rip")
UC_FP_XSTATE, UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS = 1, 2, 4
USER_CS, USER_SS = 0x33, 0x2B
# RFLAGS bits rt_sigreturn takes from the frame (Linux's FIX_EFLAGS; the
# virtual CPU keeps CF PF AF ZF SF DF OF)
_FIX_EFLAGS = 0x40DD5
_REDZONE = 128
_KILL_STOP = (1 << (signal.SIGKILL - 1)) | (1 << (signal.SIGSTOP - 1))
_DEFAULT_IGNORE = {signal.SIGCHLD, signal.SIGURG, signal.SIGWINCH, signal.SIGCONT}
_DEFAULT_STOP = {signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}
# Taken before the others, as Linux's dequeue does (SYNCHRONOUS_MASK)
_SYNCHRONOUS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGTRAP, signal.SIGFPE,
                signal.SIGSYS)
# Calls that end with EINTR after a handler ran even under SA_RESTART
# (signal(7): the ones with timeouts and the waits for signals)
NEVER_RESTARTED = {7, 23, 34, 35, 128, 130, 230, 232, 270, 271, 281, 441, 64, 68, 69, 220, 208}
_SYSCALL_INSN_SIZE = 2      # syscall (0F 05) and int 0x80 (CD 80)


class FrameError(Exception):
    """The signal frame could not be written (or read back)."""


def siginfo(sig: int, code: int, addr: int = 0, pid: int = 0, uid: int = 0) -> bytes:
    """A siginfo_t: for faults the address at offset 16, for kill-like
    signals pid and uid there."""
    if addr or code > 0 and sig in _SYNCHRONOUS:
        body = struct.pack("<iiiiQ", sig, 0, code, 0, addr)
    else:
        body = struct.pack("<iiiiiI", sig, 0, code, 0, pid, uid)
    return body.ljust(SIGINFO_SIZE, b"\0")


class GuestSignals:
    """Signal state of one guest process: the actions are the process's,
    the mask, alternate stack and last trap each thread's own
    (runtime/guestthreads.py)."""

    mask = PerThread(0)
    altstack = PerThread((0, SS_DISABLE, 0))    # sp, flags as given, size
    # (trapno, error code, cr2) of the last fault signal: what Linux leaves
    # in the thread and copies into every later frame
    trap = PerThread((0, 0, 0))
    # rt_sigsuspend's: the mask to restore after the handler it waited for
    saved_mask = PerThread(None)
    # deliver_pending is setting up frames: the host mask is set once, after
    # the last of them
    delivering = PerThread(False)

    def __init__(self, proc: "LinuxProcess") -> None:
        self.proc = proc
        self.actions: dict[int, bytes] = {}     # the kernel's struct sigaction, 32 bytes
        self._engine = None
        self._table = 0
        self._catcher = 0

    def attach(self, executor, state) -> None:
        """Connect to the support object's catcher (runtime/nativeloop.py), which
        records what it catches in the state of the thread it interrupts,
        and bind ``state`` to this host thread."""
        self._engine = executor.engine
        self._table = state.table_base
        self._catcher = executor.engine.address("bt_async")
        self.bind(state)

    def bind(self, state) -> None:
        """This host thread runs the guest thread of ``state``: a signal
        caught on it is that thread's."""
        self._engine.bind(state)

    def after_fork(self) -> None:
        """In a forked child: what ``bt_async`` caught before the fork was
        the parent's (a child starts with no pending signals), and the
        host thread gets the guest's mask again (bt_async may have left a
        caught signal blocked)."""
        if self._engine is not None:
            self._engine.take_async(ctypes.addressof(self.proc.state))
        hostsignals.set_host_mask(self.mask)

    # -- dispositions ------------------------------------------------------
    def handler(self, sig: int) -> int:
        """0 (SIG_DFL), 1 (SIG_IGN) or the address of the guest's handler."""
        act = self.actions.get(sig)
        return struct.unpack_from("<Q", act)[0] if act else 0

    def action(self, sig: int) -> bytes:
        return self.actions.get(sig, bytes(32))

    def set_action(self, sig: int, act: bytes) -> None:
        """Record the guest's sigaction and give the host the matching
        disposition: ignored, default, or caught for the guest."""
        self.actions[sig] = act
        h = self.handler(sig)
        if h in (0, 1):
            hostsignals.mirror_disposition(sig, h == 1)
        else:
            hostsignals.catch_for_guest(sig, self._catcher)
            if sig in (signal.SIGSEGV, signal.SIGBUS) and self._engine is not None:
                # its handler will see the state of a host fault: translate
                # with commits from now on (ir/commits.py)
                self.proc.executor.require_precise_faults()

    @staticmethod
    def default_kills(sig: int) -> bool:
        """Whether the default action of ``sig`` ends the process."""
        return sig not in _DEFAULT_IGNORE and sig not in _DEFAULT_STOP

    def will_handle(self, sig: int) -> bool:
        """Whether a synchronous ``sig`` now would run a guest handler."""
        return self.handler(sig) not in (0, 1) and not self.blocked(sig)

    def ignored(self) -> set[int]:
        return {sig for sig in self.actions if self.handler(sig) == 1}

    # -- the mask ----------------------------------------------------------
    def set_mask(self, mask: int) -> None:
        """The guest's blocked set, mirrored to the host's (see the module
        docstring)."""
        self.mask = mask & ~_KILL_STOP & 0xFFFFFFFFFFFFFFFF
        if not self.delivering:
            hostsignals.set_host_mask(self.mask)

    def begin_suspend(self, mask: int) -> int:
        """rt_sigsuspend: ``mask`` is the guest's while it waits (the host
        call swaps the host's atomically); the old one comes back after the
        handler that ends the wait (``saved_mask``).  Returns the mask."""
        self.saved_mask = self.mask
        self.mask = mask & ~_KILL_STOP & 0xFFFFFFFFFFFFFFFF
        return self.mask

    def blocked(self, sig: int) -> bool:
        return bool(self.mask >> (sig - 1) & 1)

    # -- the alternate stack ------------------------------------------------
    def on_altstack(self, sp: int) -> bool:
        ss_sp, flags, size = self.altstack
        if flags & SS_AUTODISARM:
            return False
        return sp > ss_sp and sp - ss_sp <= size

    def altstack_flags(self, sp: int) -> int:
        """sas_ss_flags: SS_DISABLE, SS_ONSTACK or 0."""
        if not self.altstack[2]:
            return SS_DISABLE
        return SS_ONSTACK if self.on_altstack(sp) else 0

    def sigaltstack(self, new: tuple[int, int, int] | None) -> int:
        """do_sigaltstack: ``new`` is (sp, flags, size) or None; 0 or -errno."""
        if new is None:
            return 0
        sp, flags, size = new
        if self.on_altstack(self.proc.state.rsp):
            return -errno.EPERM
        mode = flags & ~SS_AUTODISARM & 0xFFFFFFFF
        if mode not in (0, SS_ONSTACK, SS_DISABLE):
            return -errno.EINVAL
        if mode == SS_DISABLE:
            self.altstack = (0, flags & 0xFFFFFFFF, 0)
        elif size < MINSIGSTKSZ:
            return -errno.ENOMEM
        else:
            self.altstack = (sp, flags & 0xFFFFFFFF, size)
        return 0

    def old_altstack(self) -> tuple[int, int, int]:
        sp, flags, size = self.altstack
        return sp, self.altstack_flags(self.proc.state.rsp) | flags, size

    # -- delivery ----------------------------------------------------------
    def poll(self) -> bool:
        """Whether a caught host signal waits (the state's poll flag)."""
        return bool(self.proc.state.irq_pending)

    def deliver_pending(self, restart: int | None = None) -> None:
        """Deliver what ``bt_async`` caught.  ``restart``: the number of the
        system call that just returned EINTR because of it (restarted after
        the handler when its action says SA_RESTART, as Linux does)."""
        s = self.proc.state
        s.irq_pending = 0
        s.table_base = self._table          # chaining again (bt_async emptied it)
        if s.irq_pending:                   # caught between the two
            s.table_base = self.proc.executor.empty_table
        # bt_async left what it caught blocked on this host thread, and the
        # host mask stays as it is until every frame is set up: a handler's
        # mask that unblocked a caught signal before its own frame was made
        # would let its next instance in ahead of it
        self.delivering = True
        try:
            for sig, info in self.take_caught():
                if self.blocked(sig):
                    # blocked since it was caught: back into the host's pending set
                    hostsignals.requeue(sig, info)
                    continue
                self.deliver(sig, info, restart=restart)
                restart = None
        finally:
            self.delivering = False
            hostsignals.set_host_mask(self.mask)

    def take_caught(self) -> list[tuple[int, bytes]]:
        """What ``bt_async`` caught on this thread and nobody took yet,
        (signal, siginfo) in Linux's order of delivery: the synchronous
        ones, then by number (each frame goes on top of the last, so the
        last set up runs first, and each handler's mask may block the ones
        after it)."""
        s = self.proc.state
        bits = self._engine.take_async(ctypes.addressof(s)) if self._engine is not None else 0
        order = [sig for sig in _SYNCHRONOUS if bits >> (sig - 1) & 1] + \
            [sig for sig in range(1, 65) if bits >> (sig - 1) & 1 and sig not in _SYNCHRONOUS]
        return [(sig, ctypes.string_at(ctypes.addressof(s) + st.offset("siginfo") + (sig - 1) * SIGINFO_SIZE,
                                       SIGINFO_SIZE)) for sig in order]

    def leave_for_exec(self) -> tuple[set[int], int, list[tuple[int, bytes]]]:
        """An execve in this host process (runtime/execinplace.py): what
        Linux's exec keeps of the signal state, (the ignored signals, the
        mask, the signals caught and not yet delivered, which stay
        pending); every signal the guest handled gets the host's default
        disposition back (the new program has no handler yet)."""
        caught = self.take_caught()
        for sig in list(self.actions):
            if self.handler(sig) not in (0, 1):
                hostsignals.mirror_disposition(sig, False)
        return self.ignored(), self.mask, caught

    def end_suspend(self) -> None:
        """After a system call: an rt_sigsuspend that no handler ended
        (one that did left its mask in the frame) gives the old mask back."""
        if self.saved_mask is not None:
            self.set_mask(self.saved_mask)
            self.saved_mask = None

    def deliver_fault(self, sig: int, code: int, addr: int = 0,
                      trap: tuple[int, int, int] | None = None, note: str = "") -> None:
        """A synchronous signal for the instruction at state.rip (Linux's
        force_sig_fault): a handler runs unless the signal is blocked or
        ignored, in which case it takes the default action."""
        if trap is not None:
            self.trap = trap
        h = self.handler(sig)
        if self.blocked(sig) or h == 1:
            self.set_action(sig, bytes(32))
            self.set_mask(self.mask & ~(1 << (sig - 1)))
            h = 0
        if h == 0:
            self._default_action(sig, note)
            return
        self.deliver(sig, siginfo(sig, code, addr), note=note)

    def deliver(self, sig: int, info: bytes, restart: int | None = None, note: str = "") -> None:
        """Set up the guest's handler for ``sig`` (or take the default action)."""
        from bttool.runtime.linux import GuestDeath
        h = self.handler(sig)
        if h == 1 or h == 0 and sig in _DEFAULT_IGNORE:
            return
        if h == 0:
            self._default_action(sig, note)
            return
        act = self.action(sig)
        _, flags, restorer, sa_mask = struct.unpack("<QQQQ", act)
        s = self.proc.state
        if restart is not None:
            self._fix_restart(restart, flags)
        try:
            self._setup_frame(sig, info, flags, restorer)
        except FrameError:
            # Linux's force_sigsegv: a SIGSEGV handler that cannot get a
            # frame is reset, and the process dies of SIGSEGV
            if sig == signal.SIGSEGV:
                raise GuestDeath(signal.SIGSEGV, note + " (no room for the signal frame)")
            self.deliver_fault(signal.SIGSEGV, SI_KERNEL, note=note)
            return
        s.rip = struct.unpack_from("<Q", act)[0]
        new_mask = self.mask | sa_mask
        if not flags & SA_NODEFER:
            new_mask |= 1 << (sig - 1)
        self.saved_mask = None
        self.set_mask(new_mask)
        if flags & SA_RESETHAND:
            self.set_action(sig, bytes(32))

    def _fix_restart(self, nr: int, flags: int) -> None:
        """Linux's restart rule for a call a handler interrupted: back to
        the syscall instruction when SA_RESTART allows, else EINTR."""
        s = self.proc.state
        if s.rax == (-errno.EINTR) & 0xFFFFFFFFFFFFFFFF and flags & SA_RESTART \
                and nr not in NEVER_RESTARTED:
            s.rax = nr
            s.rip -= _SYSCALL_INSN_SIZE

    def _default_action(self, sig: int, note: str) -> None:
        from bttool.runtime.linux import GuestDeath
        if sig in _DEFAULT_IGNORE:
            return
        if sig in _DEFAULT_STOP:
            hostsignals.stop_self(sig)
            return
        raise GuestDeath(sig, note)

    def _setup_frame(self, sig: int, info: bytes, flags: int, restorer: int) -> None:
        """Write Linux's rt_sigframe (arch/x86/kernel/signal{,_64}.c) and
        point the registers at the handler."""
        s = self.proc.state
        mem = self.proc.memory
        if not flags & SA_RESTORER:
            raise FrameError("x86-64 handlers need SA_RESTORER")
        orig_sp = s.rsp
        on_stack = self.on_altstack(orig_sp)
        sp = orig_sp - _REDZONE
        entering = False
        if flags & SA_ONSTACK and self.altstack_flags(sp) == 0:
            sp = self.altstack[0] + self.altstack[2]
            entering = True
        # the FPU state, 64-byte aligned below the frame: the XSAVE area on
        # a CPU with XSAVE (x86-64-v3), else the fxsave image
        xsave, xcr0 = cpuid.model().has("xsave"), cpuid.xcr0()
        buf_fx = (sp - fpstate.sigframe_size(xsave, xcr0)) & ~63
        frame = ((buf_fx - FRAME_SIZE) & ~15) - 8
        if (on_stack or entering) and not self.on_altstack(frame):
            raise FrameError("the alternate signal stack overflowed")
        ss_sp, ss_flags, ss_size = self.altstack
        uc_stack = struct.pack("<Qi4xQ", ss_sp, self.altstack_flags(orig_sp) | ss_flags, ss_size)
        trapno, err, cr2 = self.trap
        uc_mask = self.mask if self.saved_mask is None else self.saved_mask
        regs = [getattr(s, r) for r in _SC_REGS]
        sc = struct.pack(f"<{len(regs)}QQHHHHQQQQQ", *regs, st.rflags(s), USER_CS, 0, 0, USER_SS,
                         err, trapno, uc_mask, cr2, buf_fx) + bytes(64)
        uc_flags = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS | (UC_FP_XSTATE if xsave else 0)
        uc = struct.pack("<QQ", uc_flags, 0) + uc_stack + sc + struct.pack("<Q", uc_mask)
        try:
            fpu = fpstate.sigframe_xstate(s, xcr0) if xsave else fpstate.fxsave_image(s)
            mem.write(buf_fx, fpu)
            mem.write(frame, struct.pack("<Q", restorer) + uc + info)
        except (GuestMemoryError, OverflowError) as e:
            raise FrameError(str(e)) from None
        if ss_flags & SS_AUTODISARM:
            self.altstack = (0, SS_DISABLE, 0)
        s.rsp = frame
        s.rdi, s.rsi, s.rdx, s.rax = sig, frame + _INFO, frame + _UC, 0
        s.df = 0
        fpstate.reset_for_handler(s)

    def sigreturn(self) -> None:
        """rt_sigreturn: the registers, FPU state, mask and alternate stack
        from the frame the handler returned through (rsp is just past its
        pretcode).  A frame that cannot be read is SIGSEGV; so is an FPU
        state that cannot be loaded, after the mask and the registers were
        (the FPU is then reset, and the alternate stack stays), as Linux
        does."""
        s = self.proc.state
        mem = self.proc.memory
        frame = (s.rsp - 8) & 0xFFFFFFFFFFFFFFFF
        try:
            uc = mem.read(frame + _UC, _INFO - _UC)
        except (GuestMemoryError, OverflowError):
            self.deliver_fault(signal.SIGSEGV, SI_KERNEL, note="rt_sigreturn with a bad frame")
            return
        n = len(_SC_REGS)
        vals = struct.unpack_from(f"<{n}QQ", uc, 40)
        fp = struct.unpack_from("<Q", uc, 40 + 184)[0]
        self.set_mask(struct.unpack_from("<Q", uc, 40 + 256)[0])
        for name, v in zip(_SC_REGS, vals):
            setattr(s, name, v)
        flags = (st.rflags(s) & ~_FIX_EFLAGS) | (vals[n] & _FIX_EFLAGS)
        st.set_rflags(s, flags)
        if not self._restore_fpu(fp):
            fpstate.reset_for_handler(s)
            self.deliver_fault(signal.SIGSEGV, SI_KERNEL, note="rt_sigreturn with a bad FPU state")
            return
        ss_sp, ss_flags, ss_size = struct.unpack_from("<Qi4xQ", uc, 16)
        self.sigaltstack((ss_sp, ss_flags & 0xFFFFFFFF, ss_size))

    def _restore_fpu(self, fp: int) -> bool:
        """Load the FPU state of a frame from guest address ``fp`` (0: the
        init state); False where Linux fails (fpstate.restore_sigframe)."""
        s = self.proc.state
        mem = self.proc.memory
        if not fp:
            fpstate.reset_for_handler(s)
            return True
        try:
            if cpuid.model().has("xsave"):
                return fpstate.restore_sigframe(s, fp, mem.read, cpuid.xcr0())
            return not fp & 15 and fpstate.load_fxsave_image(s, mem.read(fp, fpstate.SIZE))
        except (GuestMemoryError, OverflowError):
            return False

"""The linux-user personality: one guest process running under translation.

It owns the guest memory and CPU state, starts the image, and serves every
exit of translated code: system calls, runtime intrinsics (cpuid, xgetbv,
int3 ...), and guest faults, which become the signal Linux would deliver.
"""
from __future__ import annotations

import errno
import os
import signal
import struct
import sys
import threading
from dataclasses import dataclass
from typing import Callable

from bttool.errors import EXIT_INTERNAL
from bttool.ir import intrinsics, state as st
from bttool.runtime import cpuid, guestthreads, randomsource
from bttool.runtime.codepages import CodePages
from bttool.runtime.codeunits import CodeUnit, CodeUnits, file_digest
from bttool.runtime.dispatcher import Executor
from bttool.runtime.engine import Engine, SupportCompiler
from bttool.runtime.guestsignals import (FPE_INTDIV, ILL_ILLOPN, SEGV_ACCERR, SEGV_MAPERR, SI_KERNEL,
                                         TRAP_BRKPT, GuestSignals)
from bttool.runtime.guestthreads import LOCK, PerThread, ThreadGroup, gettid
from bttool.runtime.memory import PROT_WRITE, GuestMemory, GuestMemoryError
from bttool.runtime.precisefault import FaultReplay
from bttool.runtime.process import (STACK_RANDOM, build_stack, image_span, map_image, program_window,
                                    stack_randomised)
from bttool.runtime.procview import ProcView
from bttool.runtime.syscalls import GuestExit, Syscalls, ThreadExit
from bttool.runtime.syscalls_i386 import I386Syscalls
from bttool.translator.guestcode import UnmappedCode
from bttool.translator.loader import GuestImage

# The legacy vsyscall page (see LinuxProcess._vsyscall).
VSYSCALL_PAGE = 0xFFFFFFFFFF600000
# What Linux's UMIP emulation (arch/x86/kernel/umip.c) gives a 64-bit process:
# the dummy GDT and IDT bases (limit 0), CR0_STATE (PE MP ET NE WP AM PG), no
# LDT (bttool offers no modify_ldt) and GDT_ENTRY_TSS * 8.
_UMIP = {"sgdt": 0xFFFFFFFFFFFE0000, "sidt": 0xFFFFFFFFFFFF0000, "smsw": 0x80050033,
         "sldt": 0, "str": 0x40}
_FAULT_SIGNAL = {st.FAULT_DE: signal.SIGFPE, st.FAULT_UD: signal.SIGILL,
                 st.FAULT_GP: signal.SIGSEGV, st.FAULT_BP: signal.SIGTRAP,
                 st.FAULT_PF: signal.SIGSEGV}


def breakpoint_trap(name: str, code: bytes) -> bool:
    """Whether runtime intrinsic ``name``, its instruction's bytes ``code``,
    is a debug or breakpoint trap, which Linux delivers to user mode as
    SIGTRAP with rip after the instruction: int3 (CC), int 3 (CD 03) and
    int1 (F1, ICEBP).  (Measured natively: si_code SI_KERNEL for the int3
    forms, TRAP_BRKPT for int1.  Also the sweep's snippet runner's rule, tests/opcode_sweep.py.)"""
    return name in ("int3", "int1") or (name == "int" and code[-1:] == b"\x03"
                                        and code[-2:-1] == b"\xcd")


class _Delivered(Exception):
    """A synchronous signal was delivered: what raised it does not finish
    (the guest goes on in its handler)."""


@dataclass
class GuestDeath(Exception):
    """The guest was terminated by a signal (no handler installed)."""
    sig: int
    note: str = ""


def _end_now(status: int, sig: int) -> None:
    """End the host process as the guest ended (LinuxProcess.end_process)."""
    from bttool.runtime.hostsignals import die_with_signal
    sys.stdout.flush()
    sys.stderr.flush()
    if sig:
        die_with_signal(sig)
    os._exit(status)


def _auxv_at(memory: GuestMemory, rsp: int, argc: int, envc: int) -> bytes:
    """The auxiliary vector of the initial stack at ``rsp`` (through AT_NULL)."""
    pos = rsp + 8 * (1 + argc + 1 + envc + 1)
    out = b""
    while True:
        pair = memory.read(pos, 16)
        out += pair
        pos += 16
        if pair[:8] == bytes(8):
            return out


class LinuxProcess:
    """One guest process: its memory, code and system calls are shared by
    its threads (runtime/guestthreads.py); these are each thread's own."""

    clear_child_tid = PerThread(0)      # set_tid_address, CLONE_CHILD_CLEARTID
    robust_list = PerThread((0, 0))     # set_robust_list: (head, length)

    @property
    def state(self):
        """The calling thread's CPU state (the executor keeps each thread's)."""
        return self.executor.state

    def __init__(self, image: GuestImage, argv: list[bytes], envp: list[bytes],
                 verbose: bool = False, compile_support: SupportCompiler | None = None,
                 interpreter: GuestImage | None = None, engine: Engine | None = None) -> None:
        """``interpreter``: the ELF interpreter (ld.so) a dynamically linked
        ``image`` names; it is mapped below the mmap area's top, as Linux
        maps it, and the guest starts at its entry point.  ``engine``: the
        loaded code an execve in this process leaves (Executor)."""
        self.image = image
        self.exe_path = image.path
        self.verbose = verbose
        self.memory = GuestMemory(program_window(image, interpreter))
        state = st.new_state()
        self.signals = GuestSignals(self)
        self.replay: FaultReplay | None = None      # made on the first handled host fault
        self.threads = ThreadGroup()
        # How the run ends when the guest ends on a thread other than the
        # one that called run() (exit_group, a fatal signal): (exit status,
        # signal) -> never returns.  The session gives one that reports the
        # run as the main thread would; this default just ends.
        self.end_process: Callable[[int, int], None] = _end_now
        base, image_end = map_image(self.memory, image)
        self.executor = Executor(state, self.memory,
                                 self.memory.window.options(base if image.pie else None,
                                                            hot_counters=True),
                                 None, self.log, compile_support, engine)
        self.signals.attach(self.executor, state)
        self.codepages = CodePages(self.memory, self.code_changed)
        self.executor.on_code = self.codepages.watch
        self.memory.before_write = self.codepages.release
        self.syscalls = Syscalls(self)
        self.syscalls_i386 = I386Syscalls(self.syscalls)
        self.memory.brk_start = self.memory.brk_cur = image_end
        lo = min(s.vaddr for s in image.segments) + base
        self.units = CodeUnits(CodeUnit(lo, image_end, base if image.pie else 0, image.sha256,
                                        os.path.abspath(image.path), image.pie))
        self.executor.units = self.units
        # a file's digest as the cache remembers it (set by the session)
        self.known_file_digest: Callable[[tuple], str | None] | None = None
        self.remember_file_digest: Callable[[tuple, str], None] | None = None
        interp_base, entry = 0, base + image.entry
        if interpreter is not None:
            # an ET_DYN interpreter goes where there is room; an ET_EXEC
            # one at its own addresses, with AT_BASE 0, as Linux maps them
            interp_base = self.memory.find_free(image_span(interpreter)) if interpreter.pie else 0
            _, interp_end = map_image(self.memory, interpreter, interp_base)
            entry = interp_base + interpreter.entry
            self.units.add(CodeUnit(interp_base + min(s.vaddr for s in interpreter.segments),
                                    interp_end, interp_base, interpreter.sha256,
                                    os.path.abspath(interpreter.path), interpreter.pie))
        shift = int.from_bytes(os.urandom(2), "little") % STACK_RANDOM if stack_randomised() else 0
        rsp = build_stack(self.memory, image, base, argv, envp,
                          os.fsencode(image.path), os.urandom(16), interp_base, shift)
        self.state.rsp = rsp
        # what the guest's /proc/self shows (runtime/procview.py)
        self.argv, self.envp = list(argv), list(envp)
        self.auxv_bytes = _auxv_at(self.memory, rsp, len(argv), len(envp))
        self.procview = ProcView(self)
        self.state.rip = entry
        self.load_base = base

    # this run's options, for the bttool that a guest execve becomes
    exec_options: dict = {"cache_dir": None, "use_cache": False, "verbose": False}

    def start_signals(self, ignored: set[int], sigmask: int) -> None:
        """The dispositions and mask exec left: ignored signals read back as
        SIG_IGN (a struct sigaction whose handler is 1)."""
        for sig in ignored:
            self.signals.actions[sig] = struct.pack("<Q", 1) + bytes(24)
        self.signals.set_mask(sigmask)

    @property
    def sigmask(self) -> int:
        return self.signals.mask

    def ignored_signals(self) -> set[int]:
        """What an execve keeps ignored (handlers become the default)."""
        return self.signals.ignored()

    def before_exec(self) -> None:
        """Background compilations finish here (exec would lose them)."""
        self._settle(wait=True)

    def before_fork(self) -> None:
        """Background compilations go on: the parent installs and caches
        them as they arrive, and the child, which drops its copy of the
        connection (``after_fork``), promotes their code again if it gets
        hot there.  Waiting for them here held every fork of a cold run (a
        shell starting its commands) until the compile server was idle."""
        self._settle(wait=False)

    def _settle(self, wait: bool) -> None:
        """Nothing of bttool's own may be buffered twice: what finished
        compiling is installed (everything, waiting, with ``wait``) and
        what waits to go into the cache is written, then bttool's streams
        are flushed."""
        self.executor.collect(wait=wait, store=True)
        sys.stdout.flush()
        sys.stderr.flush()

    def after_fork(self) -> None:
        """In a forked child: an SQLite connection must not cross fork(), nor
        the compile server's socket; only the thread that forked lives, and
        no signal is pending."""
        self.threads.after_fork()
        self.signals.after_fork()
        if self.executor.background is not None:
            self.executor.background.after_fork()
            self.executor.forget_compiling()
        cache = self.executor.cache
        if cache is not None and cache.store is not None:
            cache.store.reopen_later()

    def log(self, msg: str) -> None:
        if self.verbose:
            print(f"bttool: {msg}", file=sys.stderr, flush=True)

    def file_mapped(self, start: int, length: int, fd: int, offset: int) -> None:
        """An executable mapping of file ``fd`` at ``start`` (a library that
        ld.so or dlopen mapped): its code is a unit of its own, identified
        by the file's digest and translated relative to where the file's
        offset 0 would be."""
        try:
            sha, _ = file_digest(fd, self.known_file_digest, self.remember_file_digest)
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return          # not a file we can read: its code stays absolute
        self.units.add(CodeUnit(start, start + length, start - offset, sha, path, True))

    def code_unmapped(self, addr: int, length: int) -> None:
        """Guest memory in [addr, addr+length) was unmapped or replaced."""
        self.units.remove_range(addr, addr + length)
        self.codepages.forget(addr, length)
        self.code_changed(addr, length)

    def protection_changed(self, addr: int, length: int, prot: int) -> None:
        """The guest's mprotect of [addr, addr+length) to ``prot``:
        translated code there that became (or stays) writable is watched
        (W^X JITs write between two mprotects), the rest is not."""
        self.codepages.reprotect(addr, length)
        if not prot & PROT_WRITE:
            return              # nothing there can be written now
        self.codepages.new_aliases(addr, length)
        end = addr + length
        code = self.executor.code_ranges
        self.codepages.watch([(max(s, addr), min(e, end)) for pc in code.touching(addr, end)
                              for s, e in code[pc] if s < end and addr < e])

    def code_changed(self, addr: int, length: int) -> None:
        """Guest code in [addr, addr+length) went away or changed."""
        # Translations are looked up by pc; a region unmapped and later
        # remapped with other code must not run stale code.
        ex = self.executor
        end = addr + length
        if self.replay is not None:
            self.replay.forget(addr, length)
        ex.forget([pc for pc in ex.code_ranges.touching(addr, end) if pc in ex.known]
                  + ex.compiling_over(addr, end))                   # tier 2 under way

    # -- main loop -------------------------------------------------------------
    def run(self) -> int:
        """Run to completion, on the thread that runs the guest's first
        thread; returns the exit status or raises GuestDeath."""
        try:
            status = self._run_thread()
        except GuestExit as e:
            return e.status
        if status is None:          # this thread ended, others run on
            status = self.threads.wait()
        return status

    def _run_thread(self) -> int | None:
        """Run the calling host thread's guest thread until it calls exit:
        the process's exit status when it was the last thread, else None.
        exit_group (GuestExit) and death by a signal (GuestDeath) propagate."""
        ex = self.executor
        while True:
            try:
                try:
                    self._exit(ex.run())
                except UnmappedCode as e:
                    self._fetch_fault(e.args[0])
            except ThreadExit as e:
                return e.status if self._thread_ended(e.status) else None
            except _Delivered:
                pass            # the guest goes on in its handler

    def start_thread(self, flags: int, stack: int, ptid: int, ctid: int, tls: int) -> int:
        """clone of a thread: a host thread running a copy of the caller's
        state (rax 0, the new stack and TLS), with the caller's signal mask
        and no alternate stack, as Linux starts one; returns its tid."""
        CLONE_SETTLS, CLONE_PARENT_SETTID = 0x80000, 0x100000
        CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID = 0x200000, 0x1000000
        child = self.executor.new_thread_state()
        child.rax = 0
        child.rcx = child.rip               # the syscall instruction's side effects
        child.r11 = st.rflags(child)
        if stack:
            child.rsp = stack
        if flags & CLONE_SETTLS:
            child.fs_base = tls
        mask = self.signals.mask
        started = threading.Event()
        tid_box: list[int] = []

        def body() -> None:
            self.executor.state = child
            self.clear_child_tid = ctid if flags & CLONE_CHILD_CLEARTID else 0
            self.signals.bind(child)
            tid_box.append(gettid())
            self.threads.joined(tid_box[0])
            started.set()
            self._thread_main(mask)
        # the new host thread starts with every signal blocked, until it
        # runs its guest thread's mask (a signal caught before would be lost)
        old = guestthreads.block_all_signals()
        try:
            self.threads.start(body, f"guest-{len(self.threads.live)}")
            started.wait()
        except RuntimeError:            # the host could not start a thread (RLIMIT_NPROC...)
            return -errno.EAGAIN        # pthread_create's answer too
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        tid = tid_box[0]
        for flag, where in ((CLONE_PARENT_SETTID, ptid), (CLONE_CHILD_SETTID, ctid)):
            if flags & flag and where:
                try:
                    self.memory.write(where, struct.pack("<i", tid))
                except GuestMemoryError:
                    pass        # Linux ignores failing tid stores too
        return tid

    def _thread_main(self, mask: int) -> None:
        """The body of a guest thread's host thread (not the first's)."""
        LOCK.acquire()
        try:
            self.signals.set_mask(mask)
            try:
                status = self._run_thread()
                if status is not None and not self.threads.waiting:
                    self.end_process(status, 0)     # the last thread of a forked child
            except GuestDeath as d:
                if d.note:
                    print(f"bttool: {d.note}", file=sys.stderr, flush=True)
                self.end_process(128 + d.sig, d.sig)
            except GuestExit as e:
                self.end_process(e.status, 0)
        except SystemExit as e:         # a forked child's only thread ended the run
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(e.code if isinstance(e.code, int) else EXIT_INTERNAL)
        except BaseException as e:     # noqa: BLE001 - bttool's own failure: end it all, in one line
            if os.environ.get("BTTOOL_DEBUG"):
                import traceback
                traceback.print_exc()
            print(f"bttool: internal error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            os._exit(EXIT_INTERNAL)
        finally:
            LOCK.release()

    def _thread_ended(self, status: int) -> bool:
        """The calling thread called exit: what Linux does at a thread's
        end (the robust futexes it held marked and woken, its
        clear-child-tid word zeroed and woken, where pthread_join waits);
        True when it was the last thread (the process ends with ``status``)."""
        last = self.threads.left(gettid())      # before the wake lets a joiner run
        self._release_robust_futexes()
        addr = self.clear_child_tid
        if addr:
            try:
                self.memory.write(addr, bytes(4))
                self.syscalls.raw(202, self.syscalls.ptr(addr, 4), 1, 1)     # FUTEX_WAKE, 1
            except GuestMemoryError:
                pass
        if last:
            self.threads.last_ended(status)
        return last

    def _release_robust_futexes(self) -> None:
        """Linux's exit_robust_list: each futex on the thread's robust list
        (and its pending one) that the thread still owns gets
        FUTEX_OWNER_DIED, and a waiter is woken."""
        head, length = self.robust_list
        if not head or length != 24:
            return
        mem = self.memory
        try:
            entry, offset, pending = struct.unpack("<QqQ", mem.read(head, 24))
        except GuestMemoryError:
            return
        seen = 0
        while entry != head and seen < guestthreads.ROBUST_LIST_LIMIT:
            nxt = self._robust_next(entry)
            if entry != pending:
                self._owner_died(entry + offset)
            if nxt is None:
                break
            entry, seen = nxt, seen + 1
        if pending:
            self._owner_died(pending + offset)

    def _robust_next(self, entry: int) -> int | None:
        try:
            return struct.unpack("<Q", self.memory.read(entry & ~1, 8))[0]
        except GuestMemoryError:
            return None

    def _owner_died(self, addr: int) -> None:
        tid = gettid()
        try:
            word = struct.unpack("<I", self.memory.read(addr, 4))[0]
        except GuestMemoryError:
            return
        if word & guestthreads.FUTEX_TID_MASK != tid:
            return
        new = (word & guestthreads.FUTEX_WAITERS) | guestthreads.FUTEX_OWNER_DIED
        try:
            self.memory.write(addr, struct.pack("<I", new))
        except GuestMemoryError:
            return
        if word & guestthreads.FUTEX_WAITERS:
            self.syscalls.raw(202, self.syscalls.ptr(addr, 4), 1, 1)        # FUTEX_WAKE, 1

    def _fetch_fault(self, pc: int) -> None:
        """Control went to ``pc``, where no code can be fetched: the
        vsyscall page's emulation, else a page fault (instruction fetch,
        with the present bit when something is mapped there)."""
        if not self._vsyscall(pc):
            self._page_fault(pc, 0x14 | (self.memory.find(pc) is not None),
                             f"instruction fetch from unmapped address {pc:#x}")

    def _exit(self, reason: int) -> None:
        """Serve one exit of translated code."""
        s = self.state
        if reason == st.EXIT_SYSCALL:
            self._syscall()
        elif reason == st.EXIT_INTRINSIC:
            self._intrinsic(*intrinsics.split_exit_info(int(s.exit_info)))
        elif reason == st.EXIT_FAULT:
            self._fault(int(s.exit_info))
        elif reason == st.EXIT_HOST_SIGNAL:
            self._host_signal()
        elif reason == st.EXIT_IRQ:
            self.signals.deliver_pending()
        elif reason != st.EXIT_NONE:
            raise RuntimeError(f"unexpected exit reason {reason}")

    def _syscall(self) -> None:
        s = self.state
        self.executor.stats.syscalls += 1
        nr = s.rax
        if nr == 15:            # rt_sigreturn: every register from the frame
            self.signals.sigreturn()
        else:
            args = [s.rdi, s.rsi, s.rdx, s.r10, s.r8, s.r9]
            r = self.syscalls.dispatch(nr, args)
            s.rax = r & 0xFFFFFFFFFFFFFFFF
            s.rcx = s.rip       # the syscall instruction's architectural side effects
            s.r11 = st.rflags(s)
        # (a context rt_sigreturn restored is never a call to restart: its
        # rax may well be -EINTR, from the call the handler interrupted)
        self._after_syscall(nr, restartable=nr != 15)

    def _after_syscall(self, nr: int, restartable: bool = True) -> None:
        """Signals caught during the call are delivered before the guest
        goes on (a call they interrupted may be restarted)."""
        sig = self.signals
        if sig.poll():
            sig.deliver_pending(restart=nr if restartable else None)
        sig.end_suspend()

    def _intrinsic(self, entry: intrinsics.Intrinsic, size: int) -> None:
        s = self.state
        if entry.name in ("cpuid", "xgetbv"):
            if not cpuid.execute(entry.name, s):
                self._general_protection("xgetbv with an invalid XCR index")
        elif entry.name == "rdrand":
            randomsource.rdrand(s, int(s.exit_info))
        elif breakpoint_trap(entry.name, self.memory.read_code(s.rip, size)):
            s.rip += size
            # measured natively: SI_KERNEL for the int3 forms, TRAP_BRKPT for int1
            self._signal(signal.SIGTRAP, TRAP_BRKPT if entry.name == "int1" else SI_KERNEL, 0,
                         (1 if entry.name == "int1" else 3, 0, 0), f"{entry.name} breakpoint")
        elif entry.name == "int":
            nr = self._int(size)
            s.rip += size
            if nr is not None:
                self._after_syscall(nr, restartable=False)
            return
        elif entry.name in _UMIP:
            self._umip(entry.name, size)
        else:
            # int n and sensitive instructions with no user-mode meaning here
            self._general_protection(f"{entry.name} at {s.rip:#x} (general protection)")
        s.rip += size

    def _int(self, size: int) -> int | None:
        """``int n`` but int 3 (``breakpoint_trap``): the gates Linux gives
        user mode are int 0x80 (the i386 system call ABI, also from 64-bit
        code; its number is returned) and the overflow trap (SIGSEGV); any
        other vector is a #GP (error code: the IDT entry)."""
        s = self.state
        code = self.memory.read_code(s.rip, size)
        vector = code[-1] if len(code) == size else -1
        if vector == 0x80:
            self.executor.stats.syscalls += 1
            # eax = the i386 number (the upper half of rax is ignored),
            # arguments in ebx, ecx, edx, esi, edi, ebp (zero-extended);
            # every register but rax is preserved (no rcx/r11 clobber) and
            # rax receives the 64-bit result.
            nr = s.rax & 0xFFFFFFFF
            args = [r & 0xFFFFFFFF for r in (s.rbx, s.rcx, s.rdx, s.rsi, s.rdi, s.rbp)]
            s.rax = self.syscalls_i386.dispatch(nr - (1 << 32) if nr >> 31 else nr,
                                                args) & 0xFFFFFFFFFFFFFFFF
            return nr
        self._general_protection(f"int {vector:#x} at {s.rip:#x} (general protection)",
                                 vector * 8 + 2 if vector >= 0 else 0)
        return None

    def _umip(self, name: str, size: int) -> None:
        """sgdt, sidt, smsw, sldt, str at CPL 3 as Linux emulates them on a
        UMIP CPU (arch/x86/kernel/umip.c): dummy values; a register operand
        receives the operand size's low bytes (the rest of the register is
        kept, as the kernel's memcpy into the saved register does), a
        memory operand 2 bytes (sgdt/sidt: limit 0 and the 8-byte base).
        An unwritable destination is SIGSEGV."""
        s = self.state
        from bttool.translator.decoder import Decoder, reg_table   # rare: decode lazily
        from capstone import x86_const as X
        insn = Decoder(64).decode_one(self.memory.read_code(s.rip, 15), s.rip)
        op = insn.operands[0] if insn is not None and len(insn.operands) == 1 else None
        if op is None or (name in ("sgdt", "sidt") and op.type != X.X86_OP_MEM):
            self._general_protection(f"{name} at {s.rip:#x} (general protection)")
        value = _UMIP[name]
        if op.type == X.X86_OP_REG:
            info = reg_table()[op.reg]
            mask = (1 << info.bits) - 1
            setattr(s, info.field, (getattr(s, info.field) & ~mask) | (value & mask))
        else:
            if name in ("sgdt", "sidt"):
                data = struct.pack("<HQ", 0, value)
            else:
                data = struct.pack("<H", value & 0xFFFF)
            from bttool.translator.addressing import address_form
            addr = address_form(insn, op.mem).linear(s)
            try:
                self.memory.write(addr, data)
            except (GuestMemoryError, OverflowError):
                self._page_fault(addr, 0x6, f"{name} at {s.rip:#x}: cannot write {addr:#x}")

    def _vsyscall(self, pc: int) -> bool:
        """A jump or call to the legacy vsyscall page, emulated as Linux's
        default vsyscall=xonly does (arch/x86/entry/vsyscall/vsyscall_64.c):
        at the three entry points the kernel performs gettimeofday, time or
        getcpu and returns to the address on top of the stack (popping it),
        leaving every other register alone; any other address in the page,
        an unreadable stack or a bad pointer argument is SIGSEGV.  False
        when ``pc`` is not in the page."""
        if not VSYSCALL_PAGE <= pc < VSYSCALL_PAGE + 0x1000:
            return False
        s = self.state
        nr = {0: 96, 0x400: 201, 0x800: 309}.get(pc - VSYSCALL_PAGE)
        if nr is None:
            self._general_protection(f"misaligned vsyscall at {pc:#x}")
        try:
            caller = self.memory.u64(s.rsp)
        except GuestMemoryError:
            self._general_protection(f"vsyscall at {pc:#x} with a bad stack")
        self.executor.stats.syscalls += 1
        if nr == 309:       # getcpu(cpu, node, NULL): the kernel passes no cache
            sc = self.syscalls
            try:
                r = sc.raw(309, sc.ptr(s.rdi, 4), sc.ptr(s.rsi, 4), 0)
            except GuestMemoryError:
                r = -errno.EFAULT
        else:
            r = self.syscalls.dispatch(nr, [s.rdi, s.rsi, 0, 0, 0, 0])
        if r == -errno.EFAULT:
            self._general_protection(f"vsyscall at {pc:#x}: bad pointer argument")
        s.rax = r & 0xFFFFFFFFFFFFFFFF
        s.rip = caller
        s.rsp = (s.rsp + 8) & 0xFFFFFFFFFFFFFFFF
        return True

    def _fault(self, kind: int) -> None:
        """A fault translated code detected at the instruction at rip (the
        state is the one before it)."""
        s = self.state
        sig = _FAULT_SIGNAL[kind]
        code = self.memory.read_code(s.rip, 15)
        from bttool.translator.decoder import Decoder  # only on the way to a signal
        insn = Decoder(64).decode_one(code, s.rip) if code else None
        text = f"{insn.mnemonic} {insn.op_str}".strip() if insn else "(undecodable)"
        raw = (code[:insn.size] if insn else code[:8]).hex(" ")
        what = {st.FAULT_DE: "divide error", st.FAULT_UD: "invalid or untranslatable instruction",
                st.FAULT_GP: "general protection fault (privileged instruction)",
                st.FAULT_BP: "breakpoint", st.FAULT_PF: "page fault"}[kind]
        note = f"{what} at {s.rip:#x}: {raw}: {text}"
        if kind == st.FAULT_PF:
            self._page_fault(s.rip, 0x14, note)
        elif kind == st.FAULT_GP:
            self._general_protection(note)
        si_code, trapno, addr = {st.FAULT_DE: (FPE_INTDIV, 0, s.rip), st.FAULT_UD: (ILL_ILLOPN, 6, s.rip),
                                 st.FAULT_BP: (SI_KERNEL, 3, 0)}[kind]
        self._signal(sig, si_code, addr, (trapno, 0, 0), note)

    def _host_signal(self) -> None:
        """A guest memory access faulted on the host.  When the guest will
        see the signal in a handler, the state is first made precise
        (runtime/precisefault.py); a fault that does not come back is no
        fault (the replay's exit is served instead)."""
        s = self.state
        sig = int(s.exit_info)
        guest_addr = self._fault_host_address()
        if sig == signal.SIGSEGV and self.codepages.watched(guest_addr):
            self._code_write()
            return
        where = "in the block at"
        if self.signals.will_handle(sig):
            if not self._replay_to_fault():
                return
            sig, where, guest_addr = int(s.exit_info), "at", self._fault_host_address()
        note = f"segmentation fault: access to {guest_addr:#x} {where} {s.rip:#x}"
        if guest_addr >= 1 << 47 and guest_addr >> 47 != (1 << 17) - 1:
            self._general_protection(note + " (non-canonical)")     # #GP, no address
        if sig == signal.SIGBUS:
            self._signal(sig, s.fault_code, guest_addr, (14, 0, guest_addr), note)
        self._page_fault(guest_addr, s.fault_err, note)

    def _code_write(self) -> None:
        """A guest store hit a page of translated code (runtime/codepages.py):
        find the store (the precise replay), let it alone write, drop the
        page's translations, and go on after it, so the next instruction is
        translated from the new bytes (x86 guarantees no more, and no less,
        for code that modifies itself)."""
        if not self._replay_to_fault():
            return
        addr = self._fault_host_address()
        if not self.codepages.watched(addr):
            self._host_signal()         # another fault on the way to it
            return
        self.codepages.release(addr, 1)
        self._exit(self.replay.step())

    def _replay_to_fault(self) -> bool:
        """Replay from the region's entry (or last commit) to the host fault
        (runtime/precisefault.py): True with the state precise at the
        faulting instruction; False when the fault did not come back (the
        exit the replay ended with is served instead)."""
        if self.replay is None:
            self.replay = FaultReplay(self.executor)
        reason = self.replay.replay()
        if reason == st.EXIT_HOST_SIGNAL:
            return True
        self._exit(reason)
        return False

    def _fault_host_address(self) -> int:
        """The guest address of the last host fault; a fault outside the
        guest region is bttool's own failure, never the guest's."""
        s = self.state
        guest_addr = self.memory.guest_address(s.fault_addr)
        if guest_addr is None:
            raise RuntimeError(f"host fault at {s.fault_addr:#x} outside the guest region "
                               f"(block {s.rip:#x}): sandbox violation")
        return guest_addr

    def _page_fault(self, addr: int, error: int, note: str) -> None:
        """SIGSEGV for a page fault at guest ``addr`` (``error``: the x86
        page-fault error code): SEGV_MAPERR where nothing is mapped, else
        SEGV_ACCERR."""
        code = SEGV_ACCERR if self.memory.find(addr) is not None else SEGV_MAPERR
        self._signal(signal.SIGSEGV, code, addr, (14, error, addr), note)

    def _general_protection(self, note: str, error: int = 0) -> None:
        """SIGSEGV for a #GP: si_code SI_KERNEL, no address."""
        self._signal(signal.SIGSEGV, SI_KERNEL, 0, (13, error, 0), note)

    def _signal(self, sig: int, code: int, addr: int, trap: tuple[int, int, int], note: str) -> None:
        """Deliver a synchronous signal for the current instruction; the
        guest continues in its handler (or dies: GuestDeath)."""
        self.signals.deliver_fault(sig, code, addr, trap, note)
        raise _Delivered

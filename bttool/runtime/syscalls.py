"""Linux x86-64 system calls for linux-user guests.

Most calls pass through to the host kernel: ``PASSTHROUGH`` says, per call,
which arguments are guest pointers (translated into the guest region, their
extent checked against the guest window; NULL stays NULL).  The host kernel
then reads and writes guest memory itself and reports EFAULT for unmapped
guest pages just as Linux would.  Calls that touch the address space, the
CPU state, the process identity as the guest sees it, or signal state are
implemented in ``Syscalls`` methods.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import resource as resource_module
import stat
import struct
from typing import TYPE_CHECKING, Callable

from bttool.runtime import guestlimits, hostfds, hostsignals, sysroot
from bttool.runtime.guestthreads import LOCK, gettid
from bttool.runtime.memory import (MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_GROWSDOWN, MAP_SHARED,
                                   PROT_EXEC, PROT_WRITE, PAGE, GuestMemoryError, MappedFile, page_up)
from bttool.runtime.procview import in_this_process
from bttool.runtime.nativeloop import NOT_STARTED
from bttool.runtime.syscall_table import (ARCH_GET_CPUID, ARCH_GET_FS, ARCH_GET_GS, ARCH_SET_FS,
                                          ARCH_SET_GS, AT_SYMLINK_NOFOLLOW, FCNTL, FOLLOWS_LINK, FUTEX,
                                          IOCTL, MADVISE, MAY_BLOCK, PARSED, PASSTHROUGH, PRCTL,
                                          TASK_SIZE_MAX, WAIT_ALWAYS, WAIT_COMMANDS, WAIT_ON_FD,
                                          WAIT_UNLESS_FLAG, parse)  # noqa: F401

if TYPE_CHECKING:  # pragma: no cover
    from bttool.runtime.linux import LinuxProcess

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# What every argument of every system call is: runtime/syscall_table.py.
EBADF = errno.EBADF
AT_FDCWD = -100
O_CLOEXEC = 0o2000000


def _fd(v: int) -> int:
    """A descriptor argument as the kernel reads it (a 32-bit int)."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


ENOSYS = errno.ENOSYS


def _passed_fds(control: bytes) -> list[int]:
    """The descriptors in the SCM_RIGHTS messages of control data."""
    fds, off = [], 0
    while off + 16 <= len(control):
        length, level, kind = struct.unpack_from("<Qii", control, off)
        if length < 16:
            break
        if level == 1 and kind == 1:            # SOL_SOCKET, SCM_RIGHTS
            data = control[off + 16:off + min(length, len(control) - off)]
            fds += [_fd(v) for (v,) in struct.iter_unpack("<i", data[:len(data) // 4 * 4])]
        off += (length + 7) & ~7
    return fds


def _host_call(nr: int, cargs: list) -> int:
    """Host call ``nr`` through libc: its result, or -errno."""
    r = _libc.syscall(ctypes.c_long(nr), *cargs)
    return -ctypes.get_errno() if r == -1 else r


def waits_for_signal(nr: int, args: tuple[int, ...]) -> bool:
    """Whether host call ``nr`` with ``args`` (host values) is one a signal
    interrupts: it may wait, and Linux would end the wait for a signal
    (syscall_table's WAIT_ tables)."""
    if nr in WAIT_ALWAYS:
        return True
    if nr in WAIT_ON_FD:
        try:
            mode = os.fstat(_fd(args[0])).st_mode
        except OSError:
            return False            # the call itself answers EBADF
        return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISBLK(mode))
    if nr in WAIT_UNLESS_FLAG:
        i, flag = WAIT_UNLESS_FLAG[nr]
        return not args[i] & flag
    if nr in WAIT_COMMANDS:
        i, mask, commands = WAIT_COMMANDS[nr]
        return args[i] & mask in commands
    return False


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


# Calls with their own handlers whose argument i is a descriptor: EBADF for
# bttool's own before the handler runs.
_SPECIAL_FD_ARG = {0: 0, 1: 0, 8: 0, 16: 0, 17: 0, 18: 0, 19: 0, 20: 0, 72: 0, 295: 0, 296: 0,
                   3: 0}


# Calls that return one new descriptor (fcntl: F_DUPFD and F_DUPFD_CLOEXEC
# only) and calls that write two into an int[2] (pipe, pipe2, socketpair: the
# argument index of the array): while bttool keeps room above the guest's
# RLIMIT_NOFILE (hostfds.make_room), a number at or above the guest's limit
# is EMFILE, as Linux gives it.
_NEW_FD = frozenset({2, 85, 257, 437, 32, 41, 43, 288, 213, 291, 284, 290, 282, 289, 283, 253,
                     294, 319, 434, 438, 323, 298, 300, 304, 425, 428, 430, 432, 433, 240, 447})
_NEW_FD_PAIR = {22: 0, 293: 0, 53: 3}
F_DUPFD, F_DUPFD_CLOEXEC = 0, 1030
# Free descriptor numbers the bttool that an execve starts needs (ld.so, the
# imports, the cache's index and spares) besides the handoff
# (Syscalls._park_for_exec).
EXEC_ROOM = 12


def _makes_fd(nr: int, args: list[int]) -> bool:
    """Whether call ``nr`` makes new descriptors (and so may be EMFILE)."""
    if nr == 72:
        return args[1] & 0xFFFFFFFF in (F_DUPFD, F_DUPFD_CLOEXEC)
    return nr in _NEW_FD or nr in _NEW_FD_PAIR
RLIMIT_NOFILE = 7
RLIM_INFINITY = (1 << 64) - 1

_FUTEX_SPECS = {op: parse("p:4 i i " + kinds) for op, kinds in FUTEX.items()}
_FCNTL_SPECS = {cmd: parse("f i " + kind) for cmd, kind in FCNTL.items()}
_IOCTL_SPECS = {req: parse("f i " + kind) for req, kind in IOCTL.items()}


class GuestExit(Exception):
    """The guest called exit_group (or exit in its last thread)."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class ThreadExit(GuestExit):
    """The guest called exit: the calling thread ends (the process with it
    when it was the last)."""


# The system calls the runtime performs itself, by number: the method that
# does (the others pass through to the host: syscall_table.PASSTHROUGH).
HANDLERS: dict[int, str] = {
    9: "mmap", 10: "mprotect", 11: "munmap", 12: "brk", 13: "rt_sigaction", 14: "rt_sigprocmask",
    19: "readv", 20: "writev", 25: "mremap", 60: "exit_thread", 231: "exit", 62: "kill", 200: "tkill",
    234: "tgkill", 89: "readlink", 267: "readlinkat", 157: "prctl", 158: "arch_prctl",
    218: "set_tid_address", 273: "set_robust_list", 131: "sigaltstack", 130: "rt_sigsuspend",
    16: "ioctl", 72: "fcntl", 28: "madvise", 26: "msync", 295: "preadv", 296: "pwritev", 56: "clone",
    57: "fork", 58: "fork", 59: "execve", 435: "clone3", 2: "open", 257: "openat", 437: "openat2",
    3: "close", 0: "read", 1: "write", 17: "pread64", 18: "pwrite64", 8: "lseek", 33: "dup2",
    292: "dup3", 23: "select", 270: "pselect6", 202: "futex", 436: "close_range", 217: "getdents64",
    78: "getdents", 46: "sendmsg", 47: "recvmsg", 299: "recvmmsg", 307: "sendmmsg", 101: "ptrace",
    310: "process_vm_readv", 311: "process_vm_writev", 97: "getrlimit", 160: "setrlimit",
    302: "prlimit64"
}


class Syscalls:
    """System call dispatch for one linux-user process."""

    def __init__(self, proc: "LinuxProcess"):
        self.proc = proc
        self.mem = proc.memory
        self._safe_call = proc.executor.engine.safe_syscall
        # the working directory, read at the first relative path after a
        # chdir/fchdir (_proc_dir)
        self._cwd: str | None = None
        self._special: dict[int, Callable[..., int]] = {nr: getattr(self, name)
                                                       for nr, name in HANDLERS.items()}

    # -- dispatch ---------------------------------------------------------
    def dispatch(self, nr: int, args: list[int]) -> int:
        r = self._dispatch(nr, args)
        if r == -errno.EMFILE and _makes_fd(nr, args) and hostfds.holding() and hostfds.give_back():
            # bttool's own descriptors took numbers the guest gets natively
            # (soft = hard RLIMIT_NOFILE): they are given back, and the
            # call (which had no effect) is tried once more
            self.proc.log(f"syscall {nr}: EMFILE; bttool gave its descriptors back")
            r = self._dispatch(nr, args)
        return r

    def _dispatch(self, nr: int, args: list[int]) -> int:
        if nr in (80, 81):              # chdir, fchdir
            self._cwd = None
        fn = self._special.get(nr)
        try:
            if fn is not None:
                i = _SPECIAL_FD_ARG.get(nr)
                if i is not None and hostfds.is_own(_fd(args[i])):
                    return -EBADF           # bttool's own: never the guest's
                r = fn(*args)
            else:
                spec = PARSED.get(nr)
                if spec is None:
                    self.proc.log(f"unknown syscall {nr} -> ENOSYS")
                    return -ENOSYS
                r = self.passthrough(nr, spec, args)
        except GuestMemoryError as e:
            return -(e.errno or errno.EFAULT)
        except OSError as e:
            # bttool's own part of a call that makes a descriptor (a memfd
            # for a /proc file) found no free number: the guest's EMFILE
            if e.errno != errno.EMFILE or not _makes_fd(nr, args):
                raise
            return -errno.EMFILE
        if hostfds.guest_limit is not None and r >= 0:
            return self._within_nofile(nr, args, r)
        return r

    def _within_nofile(self, nr: int, args: list[int], r: int) -> int:
        """The result of call ``nr`` as Linux would give it under the
        guest's RLIMIT_NOFILE, which bttool's own limit exceeds (see
        hostfds.make_room): a new descriptor at or above the guest's limit
        is closed again and the call is EMFILE."""
        limit = hostfds.guest_limit
        if nr in _NEW_FD and (nr != 72 or args[1] & 0xFFFFFFFF in (F_DUPFD, F_DUPFD_CLOEXEC)):
            if r >= limit:
                self.raw(3, r)
                return -errno.EMFILE
        elif nr in _NEW_FD_PAIR:
            where = args[_NEW_FD_PAIR[nr]]
            try:
                pair = struct.unpack("<ii", self.mem.read(where, 8))
            except GuestMemoryError:
                return r
            if max(pair) >= limit:
                for fd in pair:
                    self.raw(3, fd)
                return -errno.EMFILE
        return r

    def ptr(self, addr: int, length: int = 1) -> int:
        """The host address the kernel is to use for guest buffer
        [addr, addr+length): NULL stays NULL; one not wholly inside the
        window becomes an address in the guard below it, where nothing is
        ever mapped, so the host kernel answers EFAULT exactly where (and in
        the order) Linux would, and never touches anything else.  One
        that Linux would not take for a user address at all (past the user
        address space, or wrapping) is given as one the host refuses too."""
        if addr == 0:
            return 0
        if addr + max(length, 0) > TASK_SIZE_MAX:
            return 1 << 63      # no user address at all: the host's access_ok fails too
        if not self.mem.window.holds(addr, length):
            return self.mem.reservation[0]
        self.proc.codepages.release(addr, length)     # the host kernel may write there
        return self.mem.base + addr

    def fd(self, v: int) -> int:
        """A descriptor argument for the host: bttool's own become -1 (EBADF
        wherever Linux would check it, as for one the guest never opened)."""
        return -1 if hostfds.is_own(_fd(v)) else v

    def passthrough(self, nr: int, spec, args: list[int]) -> int:
        """The host call ``nr`` with ``args`` translated as ``spec`` (a
        syscall_table spec, parsed or not) says."""
        if isinstance(spec, str):
            spec = parse(spec)
        real = list(args)
        keep: list = []
        for i, (kind, n, size) in enumerate(spec):
            if kind == "p":
                real[i] = self.ptr(args[i], size if n < 0 else args[n] * size)
            elif kind == "s":
                dirfd = args[i - 1] if i and spec[i - 1][0] == "f" else AT_FDCWD   # the *at calls
                if self._hidden_path(args[i], dirfd):
                    return -errno.ENOENT
                real[i] = self._own_exe(nr, args, i, keep) or self.path(args[i], keep)
            elif kind == "f":
                real[i] = self.fd(args[i])
            elif kind == "l":
                lenp = args[n]
                length = struct.unpack("<I", self.mem.read(lenp, 4))[0] if lenp and self.mem.readable(lenp, 4) else 1
                real[i] = self.ptr(args[i], max(length, 1))
        return self.raw(nr, *real)

    def path(self, addr: int, keep: list) -> int:
        """The host pointer for the guest's path argument at ``addr``: the
        guest's string, or with a sysroot (runtime/sysroot.py) that has
        the absolute path, a buffer holding the path there (appended to
        ``keep``, which the caller holds until the host call returns)."""
        real = self.ptr(addr, 1)
        if sysroot.active() and addr:
            try:
                host = sysroot.host_path(self.mem.read_cstring(addr))
            except GuestMemoryError:
                return real             # the host call answers EFAULT
            if host is not None:
                keep.append(ctypes.create_string_buffer(host))
                return ctypes.addressof(keep[-1])
        return real

    def _own_exe(self, nr: int, args: list[int], i: int, keep: list) -> int | None:
        """For a call that follows symbolic links (syscall_table.FOLLOWS_LINK)
        given the guest's /proc/self/exe (or /proc/PID/exe) as argument
        ``i``: a host pointer to the guest program's path (held in
        ``keep``), so stat and access describe the program, as natively;
        else None."""
        if nr not in FOLLOWS_LINK:
            return None
        flags_at = FOLLOWS_LINK[nr]
        if flags_at is not None and args[flags_at] & AT_SYMLINK_NOFOLLOW:
            return None
        try:
            if self.mem.read(args[i], 6) != b"/proc/":
                return None
            exe = self.proc.procview.readlink(self.mem.read_cstring(args[i]))
        except GuestMemoryError:
            return None
        if exe is None:
            return None
        keep.append(ctypes.create_string_buffer(exe))
        return ctypes.addressof(keep[-1])

    def _hidden_path(self, addr: int, dirfd: int = -100) -> bool:
        """Whether the guest's path at ``addr`` (relative to ``dirfd``) is
        the /proc entry of one of bttool's descriptors
        (procview.ProcView.hides); a bad pointer is left for the host call
        to refuse.  Only a path in /proc is read whole."""
        hides = self.proc.procview.hides
        try:
            if self.mem.read(addr, 1) == b"/":
                return self.mem.read(addr, 6) == b"/proc/" and hides(self.mem.read_cstring(addr))
            base = self._proc_dir(dirfd)
            return base is not None and hides(base + b"/" + self.mem.read_cstring(addr))
        except GuestMemoryError:
            return False

    def _resolved(self, dirfd: int, name: bytes) -> bytes:
        """A relative ``name`` as an absolute path when ``dirfd`` (AT_FDCWD:
        the working directory) is a directory in /proc, so that the guest's
        own /proc view (runtime/procview.py) applies to "mem" opened in
        /proc/self or "5" in /proc/self/fd as it does to the full paths;
        anything else is returned as it is."""
        if name.startswith(b"/") or not name:
            return name
        base = self._proc_dir(dirfd)
        return name if base is None else base + b"/" + name

    def _proc_dir(self, dirfd: int) -> bytes | None:
        """The directory ``dirfd`` (AT_FDCWD: the working directory) when
        it is in /proc, else None.  The working directory is read once per
        chdir/fchdir, not at every relative path."""
        try:
            if _fd(dirfd) == AT_FDCWD:
                if self._cwd is None:
                    self._cwd = os.getcwd()
                base = self._cwd
            else:
                base = os.readlink(f"/proc/self/fd/{_fd(dirfd)}")
        except OSError:
            return None
        return os.fsencode(base) if base.startswith("/proc/") else None

    def getdents64(self, fd: int, buf: int, count: int, *_: int) -> int:
        """Our fd/ and fdinfo/ listings leave bttool's descriptors out
        (procview); a batch that held only those is followed by the next,
        so an empty answer still means the end."""
        return self._listing(217, fd, buf, count, 19)

    def getdents(self, fd: int, buf: int, count: int, *_: int) -> int:
        """The old getdents (linux_dirent records), filtered the same way."""
        return self._listing(78, fd, buf, count, 18)

    def _listing(self, nr: int, fd: int, buf: int, count: int, name_at: int) -> int:
        while True:
            n = self.passthrough(nr, PARSED[nr], [fd, buf, count])
            if n <= 0:
                return n
            kept = self.proc.procview.filter_listing(_fd(fd), buf, n, name_at)
            if kept:
                return kept

    def raw(self, nr: int, *args: int) -> int:
        """The host call, as is.  One that may block runs outside the
        runtime lock (runtime/guestthreads.py), so other guest threads go
        on, and the one that would wake this one can; and through
        ``bt_safe_syscall`` (runtime/nativeloop.py), which does not start
        it once a signal for the guest was caught since the guest's call
        left translated code.  Such a call, when a signal interrupts it
        (``waits_for_signal``), ends with EINTR as if the signal had come
        during the wait, and the signal is delivered (restarting the call
        under SA_RESTART: GuestSignals); any other is made all the same
        (the signal is delivered after it, as Linux does)."""
        cargs = [ctypes.c_long(a - (1 << 64) if a >= 1 << 63 else a) for a in args]
        if nr not in MAY_BLOCK:
            return _host_call(nr, cargs)
        if LOCK.shared:
            with LOCK.released():
                return self._blocking(nr, args, cargs)
        return self._blocking(nr, args, cargs)

    def _blocking(self, nr: int, args: tuple[int, ...], cargs: list) -> int:
        r = self._safe_call(nr, *cargs, *[0] * (6 - len(cargs)))
        if r != -NOT_STARTED:
            return r
        if waits_for_signal(nr, args):
            return -errno.EINTR
        return _host_call(nr, cargs)

    # -- memory -----------------------------------------------------------
    def brk(self, addr: int, *_: int) -> int:
        mem = self.mem
        if addr == 0 or addr < mem.brk_start:
            return mem.brk_cur
        old_top = page_up(mem.brk_cur)
        new_top = page_up(addr)
        try:
            if new_top > old_top:
                if not mem.is_free(old_top, new_top) or not self._may_expand(new_top - old_top, True):
                    return mem.brk_cur
                mem.map(old_top, new_top - old_top, 3, name="[heap]")
            elif new_top < old_top:
                mem.unmap(new_top, old_top - new_top)
        except GuestMemoryError:
            return mem.brk_cur
        mem.brk_cur = addr
        return addr

    def mmap(self, addr: int, length: int, prot: int, flags: int, fd: int, offset: int) -> int:
        mem = self.mem
        if length == 0 or length >= 1 << 47:
            return -errno.EINVAL if length == 0 else -errno.ENOMEM
        if offset % PAGE:
            return -errno.EINVAL
        fd = fd - (1 << 64) if fd >= 1 << 63 else fd
        length = page_up(length)
        if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
            if addr % PAGE:
                return -errno.EINVAL
            if flags & MAP_FIXED_NOREPLACE and not mem.is_free(addr, addr + length):
                return -errno.EEXIST
            start = addr
        else:
            start = mem.find_free(length, addr)
        anon = bool(flags & MAP_ANONYMOUS)
        if not anon and hostfds.is_own(_fd(fd)):
            return -EBADF
        replaced = not mem.is_free(start, start + length)
        more = length - (mem.usage_in(start, start + length)[0] if replaced else 0)
        if not self._may_expand(more, bool(prot & PROT_WRITE) and not flags & (MAP_SHARED | MAP_GROWSDOWN)):
            return -errno.ENOMEM
        mem.map(start, length, prot, name="" if anon else f"fd{fd}",
                fd=-1 if anon else fd, offset=offset if not anon else 0,
                shared=bool(flags & MAP_SHARED), source=None if anon else MappedFile.of_descriptor(_fd(fd)))
        if replaced:        # MAP_FIXED over earlier code: its translations go
            self.proc.code_unmapped(start, length)
        if not anon and flags & MAP_SHARED:     # a writable view of translated code?
            self.proc.codepages.new_aliases(start, length)
        if not anon and prot & PROT_EXEC:
            self.proc.file_mapped(start, length, fd, offset)
        return start

    def _may_expand(self, size: int, data: bool) -> bool:
        """Whether the guest may map ``size`` more bytes (``data``: private
        and writable) under its own RLIMIT_AS and RLIMIT_DATA
        (runtime/guestlimits.py), as Linux's may_expand_vm decides."""
        as_limit = guestlimits.soft(guestlimits.RLIMIT_AS)
        data_limit = guestlimits.soft(guestlimits.RLIMIT_DATA)
        if size <= 0 or as_limit == guestlimits.INF and (data_limit == guestlimits.INF or not data):
            return True
        total, data_vm = self.mem.usage()
        pages = size // PAGE
        if total // PAGE + pages > as_limit // PAGE:
            return False
        return not data or data_vm // PAGE + pages <= data_limit // PAGE

    def munmap(self, addr: int, length: int, *_: int) -> int:
        if addr % PAGE or length == 0:
            return -errno.EINVAL
        self.mem.unmap(addr, page_up(length))
        self.proc.code_unmapped(addr, page_up(length))
        return 0

    def mprotect(self, addr: int, length: int, prot: int, *_: int) -> int:
        if addr % PAGE:
            return -errno.EINVAL
        if length == 0:
            return 0
        self.mem.protect(addr, page_up(length), prot)
        self.proc.protection_changed(addr, page_up(length), prot)
        return 0

    def mremap(self, old: int, old_len: int, new_len: int, flags: int, new_addr: int, *_: int) -> int:
        mem = self.mem
        if old % PAGE or new_len == 0:
            return -errno.EINVAL
        old_len, new_len = page_up(old_len), page_up(new_len)
        m = mem.find(old)
        if m is None:
            return -errno.EFAULT
        if new_len <= old_len:
            if new_len < old_len:
                mem.unmap(old + new_len, old_len - new_len)
            return old
        if not self._may_expand(new_len - old_len, bool(m.prot & PROT_WRITE) and not m.shared
                                and m.name != "[stack]"):
            return -errno.ENOMEM
        if mem.is_free(old + old_len, old + new_len):
            mem.map(old + old_len, new_len - old_len, m.prot, name=m.name)
            return old
        if not flags & 1:  # MREMAP_MAYMOVE
            return -errno.ENOMEM
        dest = new_addr if flags & 2 else mem.find_free(new_len)
        data = mem.read(old, old_len)
        mem.map(dest, new_len, m.prot | 3, name=m.name)
        mem.write(dest, data)
        if not m.prot & 2:
            mem.protect(dest, new_len, m.prot)
        mem.unmap(old, old_len)
        return dest

    def _range(self, nr: int, addr: int, length: int, *rest: int) -> int:
        """A call on the guest's pages [addr, addr+length) (already checked
        as Linux checks it: page aligned, no wrap, not empty): the host
        call on the window's part, ENOMEM where the guest has nothing mapped
        (as Linux), never a host address outside the window."""
        end = addr + page_up(length)
        window = self.mem.window
        if not window.holds(addr, 1):
            return -errno.ENOMEM
        r = self.raw(nr, self.mem.base + addr, min(end, window.end) - addr, *rest)
        if r == 0 and (end > window.end or not self.mem.mapped(addr, end - addr)):
            return -errno.ENOMEM
        return r

    def madvise(self, addr: int, length: int, advice: int, *_: int) -> int:
        how = MADVISE.get(advice & 0xFFFFFFFF)
        if how is None or addr % PAGE or (length and not page_up(length) & ((1 << 64) - 1)):
            return -errno.EINVAL
        if addr + page_up(length) >= 1 << 64:
            return -errno.EINVAL
        if how == "eperm":
            return -errno.EPERM
        if page_up(length) == 0:
            return 0
        if how == "noop":
            return 0 if self.mem.mapped(addr, page_up(length)) else -errno.ENOMEM
        return self._range(28, addr, length, advice)

    def msync(self, addr: int, length: int, flags: int, *_: int) -> int:
        MS_ASYNC, MS_INVALIDATE, MS_SYNC = 1, 2, 4
        if flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC) or addr % PAGE \
                or (flags & MS_ASYNC and flags & MS_SYNC):
            return -errno.EINVAL
        if addr + page_up(length) >= 1 << 64:
            return -errno.ENOMEM
        if page_up(length) == 0:
            return 0
        return self._range(26, addr, length, flags)

    # -- vectors ------------------------------------------------------------
    def _iovec(self, iov: int, cnt: int) -> ctypes.Array:
        if cnt < 0 or cnt > 1024:
            raise GuestMemoryError(errno.EINVAL, "iovcnt")
        raw = self.mem.read(iov, 16 * cnt) if cnt else b""
        arr = (ctypes.c_uint64 * (2 * cnt))()
        for i in range(cnt):
            base, ln = struct.unpack_from("<QQ", raw, 16 * i)
            arr[2 * i] = self.ptr(base, ln) if ln else 0
            arr[2 * i + 1] = ln
        return arr

    def process_vm_readv(self, pid: int, local: int, lcnt: int, remote: int, rcnt: int,
                         flags: int) -> int:
        return self._process_vm(310, pid, local, lcnt, remote, rcnt, flags)

    def process_vm_writev(self, pid: int, local: int, lcnt: int, remote: int, rcnt: int,
                          flags: int) -> int:
        return self._process_vm(311, pid, local, lcnt, remote, rcnt, flags)

    def _process_vm(self, nr: int, pid: int, local: int, lcnt: int, remote: int, rcnt: int,
                    flags: int) -> int:
        """process_vm_readv/writev on the guest's own process (its pid or a
        thread's tid): the host call on it with both iovec arrays
        translated, so the kernel's own rules (partial transfers, EFAULT) hold and nothing but
        the guest window is reached.  Another process is EPERM, as ptrace
        access is (see ``ptrace``); a missing one ESRCH."""
        if flags:
            return -errno.EINVAL
        arrays = self._iovec(local, lcnt), self._iovec(remote, rcnt)
        pid = _fd(pid)
        if not in_this_process(pid):
            return -errno.ESRCH if pid <= 0 or not _process_exists(pid) else -errno.EPERM
        return self.raw(nr, pid, ctypes.addressof(arrays[0]), lcnt, ctypes.addressof(arrays[1]), rcnt, 0)

    def ptrace(self, request: int, pid: int, *_: int) -> int:
        """As on a host whose Yama policy forbids tracing (ptrace_scope 3):
        PTRACE_TRACEME, PTRACE_ATTACH and PTRACE_SEIZE are EPERM, so no
        process is ever this one's tracee and every other request is
        ESRCH.  (A guest debugger would need guest-level tracing, which
        bttool does not offer.)"""
        PTRACE_TRACEME, PTRACE_ATTACH, PTRACE_SEIZE = 0, 16, 0x4206
        if _fd(request) in (PTRACE_TRACEME, PTRACE_ATTACH, PTRACE_SEIZE):
            return -errno.EPERM
        return -errno.ESRCH

    # struct msghdr: name, namelen, iov, iovlen, control, controllen, flags
    _MSGHDR = struct.Struct("<QI4xQQQQI4x")

    def sendmsg(self, fd: int, msg: int, flags: int, *_: int) -> int:
        host, keep = self._msghdr(msg)
        if keep is None:
            return -EBADF               # it passes one of bttool's descriptors
        return self.raw(46, self.fd(fd), ctypes.addressof(host), flags)

    def recvmsg(self, fd: int, msg: int, flags: int, *_: int) -> int:
        host, keep = self._msghdr(msg)
        r = self.raw(47, self.fd(fd), ctypes.addressof(host), flags)
        if r >= 0:                      # what the kernel writes back: the lengths and flags
            out = self._MSGHDR.unpack(bytes(host))
            self.mem.write(msg + 8, struct.pack("<I", out[1]))
            self.mem.write(msg + 40, struct.pack("<QI", *self._rights_within_nofile(msg, out[5], out[6])))
        return r

    def _rights_within_nofile(self, msg: int, controllen: int, flags: int) -> tuple[int, int]:
        """After a host recvmsg into the guest's msghdr at ``msg`` that
        wrote ``controllen`` bytes of control data and ``flags``: while
        bttool keeps room above the guest's RLIMIT_NOFILE (hostfds.make_room)
        the host may have installed SCM_RIGHTS descriptors at or above the
        guest's limit, which Linux would not: it installs them in order
        while it can, drops the rest and sets MSG_CTRUNC (scm_detach_fds).
        So do we: the descriptors past the limit (each the lowest free
        number, so the last ones) are closed, the message shortened to the
        ones kept (left out when none is), and the lengths and flags Linux
        would give are returned."""
        limit = hostfds.guest_limit
        if limit is None or controllen < 16:
            return controllen, flags
        control = struct.unpack("<Q", self.mem.read(msg + 32, 8))[0]
        try:
            data = self.mem.read(control, controllen)
        except GuestMemoryError:
            return controllen, flags
        off = 0
        while off + 16 <= len(data):
            length, level, kind = struct.unpack_from("<Qii", data, off)
            if length < 16:
                break
            if level == 1 and kind == 1:        # SOL_SOCKET, SCM_RIGHTS (the kernel puts it last)
                body = data[off + 16:off + length]
                fds = [v for (v,) in struct.iter_unpack("<i", body[:len(body) // 4 * 4])]
                keep = [fd for fd in fds if fd < limit]
                if len(keep) == len(fds):
                    return controllen, flags
                for fd in fds[len(keep):]:
                    self.raw(3, fd)
                MSG_CTRUNC = 8
                if keep:
                    self.mem.write(control + off, struct.pack("<Q", 16 + 4 * len(keep)))
                    return min(controllen, off + ((16 + 4 * len(keep) + 7) & ~7)), flags | MSG_CTRUNC
                return off, flags | MSG_CTRUNC
            off += (length + 7) & ~7
        return controllen, flags

    _MMSGHDR_SIZE = 64      # struct mmsghdr: a msghdr and its unsigned msg_len, padded

    def sendmmsg(self, fd: int, vec: int, vlen: int, flags: int, *_: int) -> int:
        return self._mmsg(307, fd, vec, vlen, flags, 0)

    def recvmmsg(self, fd: int, vec: int, vlen: int, flags: int, timeout: int, *_: int) -> int:
        return self._mmsg(299, fd, vec, vlen, flags, timeout)

    def _mmsg(self, nr: int, fd: int, vec: int, vlen: int, flags: int, timeout: int) -> int:
        """sendmmsg/recvmmsg: each msghdr of the vector translated as for
        sendmsg/recvmsg (at most UIO_MAXIOV of them, the kernel's cap);
        each message's length, and what recvmsg writes back, returned to
        the guest's entries."""
        size = self._MMSGHDR_SIZE
        n = min(vlen & 0xFFFFFFFF, 1024)
        host = (ctypes.c_char * (size * max(n, 1)))()
        keep = []
        for i in range(n):
            one, arr = self._msghdr(vec + size * i)
            if arr is None:
                return -EBADF           # it passes one of bttool's descriptors
            keep.append(arr)
            ctypes.memmove(ctypes.addressof(host) + size * i, one, self._MSGHDR.size)
        args = [self.fd(fd), ctypes.addressof(host), n, flags]
        if nr == 299:
            args.append(self.ptr(timeout, 16))
        r = self.raw(nr, *args)
        for i in range(max(r, 0)):
            entry = bytes(host[size * i:size * (i + 1)])
            self.mem.write(vec + size * i + self._MSGHDR.size, entry[self._MSGHDR.size:self._MSGHDR.size + 4])
            if nr == 299:
                out = self._MSGHDR.unpack(entry[:self._MSGHDR.size])
                self.mem.write(vec + size * i + 8, struct.pack("<I", out[1]))
                self.mem.write(vec + size * i + 40, struct.pack(
                    "<QI", *self._rights_within_nofile(vec + size * i, out[5], out[6])))
        return r

    def _msghdr(self, msg: int) -> tuple[ctypes.Array, ctypes.Array | None]:
        """The guest's msghdr as the host's, every pointer in it translated
        (the iovec array copied, as for readv); the iovec array is returned
        to be kept alive, or None when the control data passes one of
        bttool's own descriptors (SCM_RIGHTS)."""
        name, namelen, iov, iovlen, control, controllen, flags = self._MSGHDR.unpack(
            self.mem.read(msg, self._MSGHDR.size))
        if iovlen > 1024:
            raise GuestMemoryError(errno.EMSGSIZE, "iovlen")
        arr = self._iovec(iov, iovlen)
        if control and controllen and self.mem.readable(control, controllen) \
                and any(hostfds.is_own(fd) for fd in _passed_fds(self.mem.read(control, controllen))):
            return (ctypes.c_char * self._MSGHDR.size)(), None
        host = (ctypes.c_char * self._MSGHDR.size).from_buffer_copy(self._MSGHDR.pack(
            self.ptr(name, namelen) if name else 0, namelen, ctypes.addressof(arr), iovlen,
            self.ptr(control, controllen) if control else 0, controllen, flags))
        return host, arr

    def readv(self, fd: int, iov: int, cnt: int, *_: int) -> int:
        arr = self._iovec(iov, cnt)
        return self.raw(19, fd, ctypes.addressof(arr), cnt)

    def writev(self, fd: int, iov: int, cnt: int, *_: int) -> int:
        arr = self._iovec(iov, cnt)
        return self.raw(20, fd, ctypes.addressof(arr), cnt)

    def preadv(self, fd: int, iov: int, cnt: int, lo: int, hi: int, *_: int) -> int:
        arr = self._iovec(iov, cnt)
        return self.raw(295, fd, ctypes.addressof(arr), cnt, lo, hi)

    def pwritev(self, fd: int, iov: int, cnt: int, lo: int, hi: int, *_: int) -> int:
        arr = self._iovec(iov, cnt)
        return self.raw(296, fd, ctypes.addressof(arr), cnt, lo, hi)

    # -- files needing care ---------------------------------------------------
    def ioctl(self, fd: int, req: int, arg: int, *_: int) -> int:
        req &= 0xFFFFFFFF
        spec = _IOCTL_SPECS.get(req)
        if spec is None:
            self.proc.log(f"ioctl {req:#x} not supported -> ENOTTY")
            return -errno.ENOTTY
        return self.passthrough(16, spec, [fd, req, arg])

    def fcntl(self, fd: int, cmd: int, arg: int, *_: int) -> int:
        cmd &= 0xFFFFFFFF
        if cmd in (F_DUPFD, F_DUPFD_CLOEXEC) and self._past_nofile(arg) and _fd(arg) >= 0:
            return -EBADF if self.raw(72, self.fd(fd), 1, 0) == -EBADF else -errno.EINVAL
        spec = _FCNTL_SPECS.get(cmd)
        if spec is None:
            if self.raw(72, fd, 1, 0) == -EBADF:      # F_GETFD: a bad descriptor comes first
                return -EBADF
            self.proc.log(f"fcntl command {cmd} not supported -> EINVAL")
            return -errno.EINVAL
        return self.passthrough(72, spec, [fd, cmd, arg])

    def select(self, n: int, rd: int, wr: int, ex: int, tv: int, *_: int) -> int:
        size = self._fdset_size(n)
        return self.passthrough(23, f"i p:{size} p:{size} p:{size} p:16", [n, rd, wr, ex, tv])

    @staticmethod
    def _fdset_size(n: int) -> int:
        n = _fd(n)
        return (min(max(n, 0), 1 << 20) + 63) // 64 * 8     # the kernel reads whole longs

    def pselect6(self, n: int, rd: int, wr: int, ex: int, ts: int, sig: int, *_: int) -> int:
        """Its sixth argument points at {sigset pointer, sigset size}: the
        structure is read here and the embedded pointer translated too."""
        size = self._fdset_size(n)
        holder = None
        if sig:
            if not self.mem.readable(sig, 16) or not self.mem.window.holds(sig, 16):
                host_sig = self.mem.reservation[0]      # the guard: EFAULT where Linux gives it
            else:
                sp, ss = struct.unpack("<QQ", self.mem.read(sig, 16))
                holder = (ctypes.c_uint64 * 2)(self.ptr(sp, min(ss, 8) or 1) if sp else 0, ss)
                host_sig = ctypes.addressof(holder)
        else:
            host_sig = 0
        real = [n, self.ptr(rd, size) if rd else 0, self.ptr(wr, size) if wr else 0,
                self.ptr(ex, size) if ex else 0, self.ptr(ts, 16), host_sig]
        return self.raw(270, *real)

    def futex(self, uaddr: int, op: int, val: int, a4: int, uaddr2: int, val3: int) -> int:
        kinds = FUTEX.get(op & 127)
        if kinds is None:
            return -ENOSYS                  # as Linux for an unknown operation
        return self.passthrough(202, _FUTEX_SPECS[op & 127], [uaddr, op, val, a4, uaddr2, val3])

    def _readlink_common(self, path: bytes, buf: int, size: int) -> int | None:
        if self.proc.procview.hides(path):
            return -errno.ENOENT
        target = self.proc.procview.readlink(path)
        if target is None:
            return None
        if size <= 0:
            return -errno.EINVAL
        target = target[:size]
        self.mem.write(buf, target)
        return len(target)

    # -- files: the guest's own /proc entries (runtime/procview.py) -------------
    def open(self, path: int, flags: int, mode: int, *_: int) -> int:
        r = self.proc.procview.open(self._resolved(AT_FDCWD, self.mem.read_cstring(path)), flags)
        keep: list = []
        return r if r is not None else self._opened(self.raw(2, self.path(path, keep), flags, mode), flags)

    def openat(self, dirfd: int, path: int, flags: int, mode: int, *_: int) -> int:
        name = self._resolved(dirfd, self.mem.read_cstring(path))
        r = self.proc.procview.open(name, flags) if name.startswith(b"/") else None
        if r is not None:
            return r
        keep: list = []
        return self._opened(self.raw(257, self.fd(dirfd), self.path(path, keep), flags, mode), flags)

    def openat2(self, dirfd: int, path: int, how: int, size: int, *_: int) -> int:
        name = self._resolved(dirfd, self.mem.read_cstring(path))
        flags = self.mem.u64(how) if size >= 8 and self.mem.readable(how, 8) else None
        r = self.proc.procview.open(name, flags) if name.startswith(b"/") and flags is not None else None
        if r is not None:
            return r
        keep: list = []
        fd = self.raw(437, self.fd(dirfd), self.path(path, keep), self.ptr(how, size), size)
        return self._opened(fd, flags or 0)

    def _opened(self, fd: int, flags: int) -> int:
        """After a host open that gave ``fd``: when the guest's name reached
        one of our own /proc entries by another way than naming it (a
        symlink to /proc/self/mem, a descriptor of /proc/self with
        "mem", /proc/self/cwd/../..), the guest gets what naming it gives
        (procview), never the host's file.  The number is the same: the
        host's is closed first, and the lowest free one is taken again."""
        if fd < 0:
            return fd
        try:
            where = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return fd
        if not where.startswith("/proc/") or not self.proc.procview.serves(os.fsencode(where)):
            return fd
        os.close(fd)
        return self.proc.procview.open(os.fsencode(where), flags)

    def close(self, fd: int, *_: int) -> int:
        # (bttool's own descriptors are EBADF: see dispatch)
        self.proc.procview.closed(fd)
        return self.raw(3, fd)

    def _dup_onto(self, old: int, new: int) -> int | None:
        """Before the guest's dup2/dup3 of ``old`` onto ``new``: EBADF for
        bttool's own ``old``; bttool's own ``new`` is moved out of the way
        first (hostfds.vacate), since for Linux it is a free number."""
        if hostfds.is_own(_fd(old)):
            return -EBADF
        if hostfds.is_own(_fd(new)):
            if self.raw(72, old, 1, 0) < 0:         # F_GETFD: the dup would fail anyway
                return -EBADF
            if not hostfds.vacate(_fd(new)):
                self.proc.log(f"dup onto bttool's descriptor {_fd(new)} refused -> EBUSY")
                return -errno.EBUSY
        return None

    @staticmethod
    def _past_nofile(fd: int) -> bool:
        """Whether descriptor number ``fd`` is at or above the guest's
        RLIMIT_NOFILE while bttool keeps room above it (hostfds.make_room)."""
        return hostfds.guest_limit is not None and _fd(fd) >= hostfds.guest_limit

    def dup2(self, old: int, new: int, *_: int) -> int:
        if _fd(old) != _fd(new) and self._past_nofile(new):
            return -EBADF                   # as Linux: newfd past the limit
        r = self._dup_onto(old, new)
        if r is not None:
            return r
        r = self.raw(33, old, new)
        if r >= 0 and old != new:
            self.proc.procview.closed(new)      # what was there is closed
        return r

    def dup3(self, old: int, new: int, flags: int, *_: int) -> int:
        if flags & ~O_CLOEXEC or _fd(old) == _fd(new):
            return -errno.EINVAL
        if self._past_nofile(new):
            return -EBADF
        r = self._dup_onto(old, new)
        if r is not None:
            return r
        r = self.raw(292, old, new, flags)
        if r >= 0:
            self.proc.procview.closed(new)
        return r

    def close_range(self, first: int, last: int, flags: int, *_: int) -> int:
        """close_range over the guest's descriptors only: bttool's own in
        the range are passed over (a daemon closing everything keeps its
        translator working)."""
        first &= 0xFFFFFFFF
        last &= 0xFFFFFFFF
        CLOSE_RANGE_UNSHARE, CLOSE_RANGE_CLOEXEC = 2, 4
        if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or first > last:
            return -errno.EINVAL
        lo = first
        for fd in hostfds.own():
            if fd < lo or fd > last:
                continue
            if fd > lo:
                r = self.raw(436, lo, fd - 1, flags)
                if r < 0:
                    return r
            lo = fd + 1
        r = self.raw(436, lo, last, flags) if lo <= last else 0
        if r == 0 and not flags & CLOSE_RANGE_CLOEXEC:
            for fd in list(self.proc.procview.mem_fds):
                if first <= fd <= last:
                    self.proc.procview.closed(fd)
        return r

    def read(self, fd: int, buf: int, count: int, *_: int) -> int:
        if fd in self.proc.procview.mem_fds:
            return self.proc.procview.read(fd, buf, count)
        return self.raw(0, fd, self.ptr(buf, count), count)

    def write(self, fd: int, buf: int, count: int, *_: int) -> int:
        if fd in self.proc.procview.mem_fds:
            return self.proc.procview.write(fd, buf, count)
        return self.raw(1, fd, self.ptr(buf, count), count)

    def pread64(self, fd: int, buf: int, count: int, offset: int, *_: int) -> int:
        if fd in self.proc.procview.mem_fds:
            return self.proc.procview.pread(fd, buf, count, offset)
        return self.raw(17, fd, self.ptr(buf, count), count, offset)

    def pwrite64(self, fd: int, buf: int, count: int, offset: int, *_: int) -> int:
        if fd in self.proc.procview.mem_fds:
            return self.proc.procview.pwrite(fd, buf, count, offset)
        return self.raw(18, fd, self.ptr(buf, count), count, offset)

    def lseek(self, fd: int, offset: int, whence: int, *_: int) -> int:
        if fd in self.proc.procview.mem_fds:
            return self.proc.procview.lseek(fd, offset, whence)
        return self.raw(8, fd, offset, whence)

    def readlink(self, path: int, buf: int, size: int, *_: int) -> int:
        if _fd(size) <= 0:
            return -errno.EINVAL
        r = self._readlink_common(self._resolved(AT_FDCWD, self.mem.read_cstring(path)), buf, size)
        if r is not None:
            return r
        keep: list = []
        return self.raw(89, self.path(path, keep), self.ptr(buf, size), size)

    def readlinkat(self, dirfd: int, path: int, buf: int, size: int, *_: int) -> int:
        if _fd(size) <= 0:
            return -errno.EINVAL
        r = self._readlink_common(self._resolved(dirfd, self.mem.read_cstring(path)), buf, size)
        if r is not None:
            return r
        keep: list = []
        return self.raw(267, self.fd(dirfd), self.path(path, keep), self.ptr(buf, size), size)

    # -- resource limits --------------------------------------------------------
    def getrlimit(self, resource: int, rlim: int, *_: int) -> int:
        if guestlimits.managed(resource):
            self.mem.write(rlim, struct.pack("<QQ", *guestlimits.get(resource)))
            return 0
        if hostfds.guest_limit is None or resource & 0xFFFFFFFF != RLIMIT_NOFILE:
            return self.passthrough(97, PARSED[97], [resource, rlim])
        self.mem.write(rlim, struct.pack("<QQ", *self._nofile()))       # EFAULT for NULL too
        return 0

    def setrlimit(self, resource: int, rlim: int, *_: int) -> int:
        if guestlimits.managed(resource):
            return guestlimits.set_limit(resource, *struct.unpack("<QQ", self.mem.read(rlim, 16)))
        if hostfds.guest_limit is None or resource & 0xFFFFFFFF != RLIMIT_NOFILE:
            return self.passthrough(160, PARSED[160], [resource, rlim])
        return hostfds.set_guest_limit(*struct.unpack("<QQ", self.mem.read(rlim, 16)))

    def _nofile(self) -> tuple[int, int]:
        """The guest's RLIMIT_NOFILE: its own soft limit, the host's hard."""
        hard = resource_module.getrlimit(resource_module.RLIMIT_NOFILE)[1]
        return hostfds.guest_limit, RLIM_INFINITY if hard == resource_module.RLIM_INFINITY else hard

    def prlimit64(self, pid: int, resource: int, new: int, old: int, *_: int) -> int:
        """The guest's own RLIMIT_NOFILE is the one it set (or started
        with), not bttool's, which keeps room above it for bttool's own
        descriptors (hostfds.make_room); every other limit, and every other
        process's, is the host's.  So are its RLIMIT_AS and RLIMIT_DATA
        (runtime/guestlimits.py)."""
        if guestlimits.managed(resource) and _fd(pid) in (0, os.getpid()):
            want = struct.unpack("<QQ", self.mem.read(new, 16)) if new else None
            current = guestlimits.get(resource)
            if want is not None:
                r = guestlimits.set_limit(resource, *want)
                if r < 0:
                    return r
            if old:
                self.mem.write(old, struct.pack("<QQ", *current))
            return 0
        if hostfds.guest_limit is None or resource & 0xFFFFFFFF != RLIMIT_NOFILE \
                or _fd(pid) not in (0, os.getpid()):
            return self.passthrough(302, PARSED[302], [pid, resource, new, old])
        want = struct.unpack("<QQ", self.mem.read(new, 16)) if new else None
        current = self._nofile()
        if want is not None:
            r = hostfds.set_guest_limit(*want)
            if r < 0:
                return r
        if old:
            self.mem.write(old, struct.pack("<QQ", *current))
        return 0

    # -- process --------------------------------------------------------------
    def exit(self, status: int, *_: int) -> int:
        raise GuestExit(status & 0xFF)

    def exit_thread(self, status: int, *_: int) -> int:
        raise ThreadExit(status & 0xFF)

    def arch_prctl(self, code: int, addr: int, *_: int) -> int:
        st = self.proc.state
        code &= 0xFFFFFFFF
        if code in (ARCH_SET_FS, ARCH_SET_GS):
            if addr >= TASK_SIZE_MAX:       # kernel and non-canonical bases
                return -errno.EPERM
            if code == ARCH_SET_FS:
                st.fs_base = addr
            else:
                st.gs_base = addr
        elif code in (ARCH_GET_FS, ARCH_GET_GS):
            self.mem.write(addr, struct.pack("<Q", st.fs_base if code == ARCH_GET_FS else st.gs_base))
        elif code == ARCH_GET_CPUID:
            return 1                        # cpuid does not fault
        else:
            return -errno.EINVAL
        return 0

    def prctl(self, option: int, a2: int, a3: int = 0, a4: int = 0, a5: int = 0, *_: int) -> int:
        option &= 0xFFFFFFFF
        how = PRCTL.get(option)
        if how is None:
            self.proc.log(f"prctl option {option} not supported -> EINVAL")
            return -errno.EINVAL
        if how == "name":
            if option == 15:    # PR_SET_NAME: at most 15 bytes are read
                name = b""
                while len(name) < 15:
                    b = self.mem.read(a2 + len(name), 1)
                    if b == b"\0":
                        break
                    name += b
                self.proc.comm = name
                return 0
            comm = getattr(self.proc, "comm", None)     # PR_GET_NAME
            if comm is None:
                comm = os.path.basename(self.proc.exe_path).encode()[:15]
            self.mem.write(a2, comm + b"\0")
            return 0
        spec = "i p:4 i i i" if how == "host p:4" else "i i i i i"
        return self.passthrough(157, spec, [option, a2, a3, a4, a5])

    def set_tid_address(self, addr: int, *_: int) -> int:
        self.proc.clear_child_tid = addr
        return gettid()

    def set_robust_list(self, head: int, length: int, *_: int) -> int:
        self.proc.robust_list = (head, length)
        return 0

    # -- processes --------------------------------------------------------------
    def fork(self, *_: int) -> int:
        """fork/vfork: the host process forks; the child carries on with the
        very same guest (memory, translations) and sees 0.  A forked
        child usually execs: what execve imports is imported here first
        (each child would import it again, and write the pages it lands
        on), and what it keeps of the translations worked out
        (runtime/keptcode.py)."""
        self.proc.before_fork()
        from bttool.runtime import binfmtscript, exechandoff, execinplace, hostpython, keptcode  # noqa: F401
        keptcode.prepare(self.proc.executor)
        try:
            pid = os.fork()
        except OSError as e:        # RLIMIT_NPROC, no memory: the guest gets what Linux says
            return -(e.errno or errno.EAGAIN)
        if pid == 0:
            self.proc.after_fork()
        return pid

    def clone(self, flags: int, stack: int, ptid: int, ctid: int, tls: int, *_: int) -> int:
        CLONE_VM, CLONE_VFORK, CLONE_THREAD = 0x100, 0x4000, 0x10000
        CLONE_SETTLS, CLONE_PARENT_SETTID = 0x80000, 0x100000
        CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID = 0x200000, 0x1000000
        if flags & CLONE_THREAD or (flags & CLONE_VM and not flags & CLONE_VFORK):
            return self._clone_thread(flags, stack, ptid, ctid, tls)
        pid = self.fork()
        if pid == 0:
            me = os.getpid()
            if stack:
                self.proc.state.rsp = stack
            if flags & CLONE_SETTLS:
                self.proc.state.fs_base = tls
            if flags & CLONE_CHILD_SETTID and ctid:
                self.mem.write(ctid, struct.pack("<i", me))
            if flags & CLONE_CHILD_CLEARTID:
                self.proc.clear_child_tid = ctid
        elif flags & CLONE_PARENT_SETTID and ptid:
            try:
                self.mem.write(ptid, struct.pack("<i", pid))
            except GuestMemoryError:
                pass            # Linux ignores a failing parent-tid store too
        return pid

    def _clone_thread(self, flags: int, stack: int, ptid: int, ctid: int, tls: int) -> int:
        """A thread (runtime/guestthreads.py).  The flags Linux requires of
        one: CLONE_THREAD needs CLONE_SIGHAND, which needs CLONE_VM; a
        CLONE_VM child without CLONE_THREAD (a process sharing memory) is
        not offered."""
        CLONE_VM, CLONE_SIGHAND, CLONE_THREAD = 0x100, 0x800, 0x10000
        if flags & CLONE_THREAD and not flags & CLONE_SIGHAND or \
                flags & CLONE_SIGHAND and not flags & CLONE_VM:
            return -errno.EINVAL
        if not flags & CLONE_THREAD:
            self.proc.log("clone of a process sharing memory (CLONE_VM without CLONE_THREAD) -> ENOSYS")
            return -errno.ENOSYS
        return self.proc.start_thread(flags, stack, ptid, ctid, tls)

    def clone3(self, args: int, size: int, *_: int) -> int:
        return -errno.ENOSYS      # glibc falls back to clone

    def execve(self, path: int, argv: int, envp: int, *_: int, pointer_size: int = 8) -> int:
        """Replace the guest by the new program, translated too (guest code
        never runs natively).  Served in this process where it can be
        (runtime/execinplace.py: the session starts the new program in the
        same Python); otherwise the host process becomes a new bttool: an
        isolated Python with bttool's environment, the guest's argv and
        environment in a handoff descriptor (runtime/exechandoff.py), so the
        new guest gets exactly what this one passed and nothing of bttool's.
        ``pointer_size``: of the argv and envp arrays (4 for the i386 call,
        int 0x80)."""
        from bttool.runtime import binfmtscript, exechandoff, execinplace, hostpython
        prog = self.mem.read_cstring(path)
        args = self._string_array(argv, pointer_size)
        env = self._string_array(envp, pointer_size)
        try:
            # a #! script runs its interpreter, as Linux's binfmt_script decides
            prog, args = binfmtscript.resolve(prog, args, self._exec_host_path)
        except OSError as e:
            return -(e.errno or errno.ENOEXEC)
        request = execinplace.ExecInPlace(os.fsdecode(prog), args, env)
        err = execinplace.load(request)         # (a missing ELF interpreter: ENOENT)
        if err:
            return -err
        if execinplace.possible(self.proc):
            raise request
        self.proc.before_exec()
        options = dict(self.proc.exec_options, rlimits=guestlimits.for_exec())
        handoff = exechandoff.Handoff(prog, args, env, options,
                                      sorted(self.proc.ignored_signals()), self.proc.sigmask)
        handoff.parked = self._park_for_exec()
        try:
            with hostfds.spares_released():     # the guest may hold every other number
                fd = exechandoff.write(handoff)
        except OSError as e:
            self._unpark(handoff.parked)
            return -(e.errno or errno.ENOMEM)
        cmd = hostpython.command("bttool.runtime.execstart", str(fd))
        try:
            os.execve(cmd[0], cmd, hostpython.host_environment())
        except OSError as e:
            os.close(fd)
            self._unpark(handoff.parked)
            return -(e.errno or errno.ENOEXEC)
        return 0  # not reached

    def _exec_host_path(self, path: bytes) -> bytes:
        """Where the host finds a program the guest execs: /proc/self/exe
        (and its aliases) is the guest's own program; an absolute path may
        lie in the sysroot."""
        own = self.proc.procview.readlink(path)
        if own is not None:
            return own
        return sysroot.host_path(path) or path

    def _park_for_exec(self) -> dict:
        """Room for the bttool an execve starts, which needs EXEC_ROOM free
        numbers (Python's libraries and modules, the cache) besides the
        handoff: when the guest leaves fewer (free, or close-on-exec), its
        highest descriptors are parked for the new bttool to put back
        (runtime/fdpark.py).  {} when there is room, or no way to park."""
        from bttool.runtime import fdpark
        soft = resource_module.getrlimit(resource_module.RLIMIT_NOFILE)[0]
        soft = min(soft, 1 << 30) if soft != resource_module.RLIM_INFINITY else 1 << 30
        need = EXEC_ROOM + 1
        room, keep = 0, []            # numbers free after the exec; descriptors it keeps
        for n in range(soft):
            try:
                flags = fcntl.fcntl(n, fcntl.F_GETFD)
            except OSError:
                flags = -1
            if flags < 0 or flags & fcntl.FD_CLOEXEC:
                room += 1
                if room >= need:
                    return {}
            elif n >= 3:
                keep.append(n)
        if not fdpark.available():
            return {}
        deficit = need + 1 - room       # (the parking instance takes a number)
        chosen = keep[-deficit:] if deficit < len(keep) else keep
        try:
            return fdpark.park(chosen)
        except OSError as e:
            self.proc.log(f"execve: cannot park descriptors ({e}); the new bttool may lack room")
            return {}

    def _unpark(self, parked: dict) -> None:
        """The exec failed: the parked descriptors back in place."""
        if parked:
            from bttool.runtime import fdpark
            hostfds.preload()           # while numbers are free: the process goes on
            fdpark.restore(parked)

    def _string_array(self, addr: int, pointer_size: int = 8) -> list[bytes]:
        out = []
        while addr:
            p = int.from_bytes(self.mem.read(addr, pointer_size), "little")
            if p == 0:
                break
            out.append(self.mem.read_cstring(p))
            addr += pointer_size
        return out

    # -- signals (state in runtime/guestsignals.py) ---------------------------
    def rt_sigaction(self, sig: int, act: int, oldact: int, sigsetsize: int, *_: int) -> int:
        sig = _fd(sig)
        if sigsetsize != 8 or not 1 <= sig <= 64 or sig in (9, 19) and act:
            return -errno.EINVAL
        signals = self.proc.signals
        old = signals.action(sig)
        if act:
            signals.set_action(sig, self.mem.read(act, 32))
        if oldact:
            self.mem.write(oldact, old)
        return 0

    def rt_sigprocmask(self, how: int, nset: int, oset: int, sigsetsize: int, *_: int) -> int:
        # as Linux: the size, then the new set is read and applied, then the
        # old one written (EFAULT then, with the new mask in force).  Signals
        # it unblocks are caught on the host at once and delivered after it.
        if sigsetsize != 8:
            return -errno.EINVAL
        old = cur = self.proc.signals.mask
        if nset:
            new = struct.unpack("<Q", self.mem.read(nset, 8))[0]
            how = _fd(how)
            if how not in (0, 1, 2):
                return -errno.EINVAL
            if how == 0:
                cur |= new
            elif how == 1:
                cur &= ~new
            else:
                cur = new
            self.proc.signals.set_mask(cur)
        if oset:
            self.mem.write(oset, struct.pack("<Q", old))
        return 0

    def rt_sigsuspend(self, mask: int, sigsetsize: int, *_: int) -> int:
        """Waits in the host's rt_sigsuspend with the guest's mask; the
        handler that ends it runs with that mask and returns to the old one
        (GuestSignals.saved_mask)."""
        if sigsetsize != 8:
            return -errno.EINVAL
        new = struct.unpack("<Q", self.mem.read(mask, 8))[0]
        host = ctypes.c_uint64(hostsignals.host_mask(self.proc.signals.begin_suspend(new)))
        return self.raw(130, ctypes.addressof(host), 8)

    def sigaltstack(self, ss: int, old: int, *_: int) -> int:
        """Read, checked and applied as Linux does (runtime/guestsignals.py),
        then the old one written."""
        new = struct.unpack("<Qi4xQ", self.mem.read(ss, 24)) if ss else None
        signals = self.proc.signals
        prev = signals.old_altstack()
        r = signals.sigaltstack(new)
        if r == 0 and old:
            self.mem.write(old, struct.pack("<Qi4xQ", prev[0], prev[1], prev[2]))
        return r

    def _fatal_to_self(self, sig: int) -> bool:
        """A signal to the guest itself that ends it by default: bttool ends
        the way the guest would (GuestDeath), without a core dump of its own."""
        signals = self.proc.signals
        return 1 <= sig <= 64 and signals.handler(sig) == 0 and not signals.blocked(sig) \
            and signals.default_kills(sig)

    def _die_of(self, sig: int) -> int:
        from bttool.runtime.guestsignals import siginfo
        self.proc.signals.deliver(sig, siginfo(sig, 0, pid=os.getpid(), uid=os.getuid()))
        return 0

    def kill(self, pid: int, sig: int, *_: int) -> int:
        if _fd(pid) == os.getpid() and self._fatal_to_self(_fd(sig)):
            return self._die_of(_fd(sig))
        return self.raw(62, pid, sig)

    def tkill(self, tid: int, sig: int, *_: int) -> int:
        if _fd(tid) == gettid() and self._fatal_to_self(_fd(sig)):
            return self._die_of(_fd(sig))
        return self.raw(200, tid, sig)

    def tgkill(self, tgid: int, tid: int, sig: int, *_: int) -> int:
        if _fd(tgid) == os.getpid() and _fd(tid) == gettid() and self._fatal_to_self(_fd(sig)):
            return self._die_of(_fd(sig))
        return self.raw(234, tgid, tid, sig)


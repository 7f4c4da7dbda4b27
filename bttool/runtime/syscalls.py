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
import os
import struct
from typing import TYPE_CHECKING, Callable

from bttool.runtime.memory import (MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_SHARED, PROT_EXEC,
                                   PAGE, GuestMemoryError, page_up)

if TYPE_CHECKING:  # pragma: no cover
    from bttool.runtime.linux import LinuxProcess

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# Argument kinds: "i" integer, "p" pointer (extent unknown), "pN" pointer whose
# byte length is argument N, "s" C string, "-" unused.
PASSTHROUGH: dict[int, tuple[str, str]] = {
    0: ("read", "i p2 i"), 1: ("write", "i p2 i"), 2: ("open", "s i i"), 3: ("close", "i"),
    4: ("stat", "s p"), 5: ("fstat", "i p"), 6: ("lstat", "s p"), 7: ("poll", "p i i"),
    8: ("lseek", "i i i"), 16: ("ioctl", None), 17: ("pread64", "i p2 i i"),
    18: ("pwrite64", "i p2 i i"), 21: ("access", "s i"), 22: ("pipe", "p"),
    23: ("select", "i p p p p"), 24: ("sched_yield", ""), 26: ("msync", None),
    28: ("madvise", None), 32: ("dup", "i"), 33: ("dup2", "i i"), 34: ("pause", ""),
    35: ("nanosleep", "p p"), 36: ("getitimer", "i p"), 37: ("alarm", "i"),
    38: ("setitimer", "i p p"), 39: ("getpid", ""), 40: ("sendfile", "i i p i"),
    41: ("socket", "i i i"), 42: ("connect", "i p2 i"),
    61: ("wait4", "i p i p"), 63: ("uname", "p"), 72: ("fcntl", None),
    73: ("flock", "i i"), 74: ("fsync", "i"), 75: ("fdatasync", "i"), 76: ("truncate", "s i"),
    77: ("ftruncate", "i i"), 78: ("getdents", "i p2 i"), 79: ("getcwd", "p1 i"),
    80: ("chdir", "s"), 81: ("fchdir", "i"), 82: ("rename", "s s"), 83: ("mkdir", "s i"),
    84: ("rmdir", "s"), 85: ("creat", "s i"), 86: ("link", "s s"), 87: ("unlink", "s"),
    88: ("symlink", "s s"), 90: ("chmod", "s i"), 91: ("fchmod", "i i"),
    92: ("chown", "s i i"), 93: ("fchown", "i i i"), 94: ("lchown", "s i i"), 95: ("umask", "i"),
    96: ("gettimeofday", "p p"), 97: ("getrlimit", "i p"), 98: ("getrusage", "i p"),
    99: ("sysinfo", "p"), 100: ("times", "p"), 102: ("getuid", ""), 104: ("getgid", ""),
    105: ("setuid", "i"), 106: ("setgid", "i"), 107: ("geteuid", ""), 108: ("getegid", ""),
    109: ("setpgid", "i i"), 110: ("getppid", ""), 111: ("getpgrp", ""), 112: ("setsid", ""),
    115: ("getgroups", "i p"), 121: ("getpgid", "i"), 124: ("getsid", "i"),
    132: ("utime", "s p"), 137: ("statfs", "s p"), 138: ("fstatfs", "i p"),
    140: ("getpriority", "i i"), 160: ("setrlimit", "i p"), 161: ("chroot", "s"),
    162: ("sync", ""), 186: ("gettid", ""), 191: ("getxattr", "s s p3 i"),
    192: ("lgetxattr", "s s p3 i"), 193: ("fgetxattr", "i s p3 i"), 194: ("listxattr", "s p2 i"),
    195: ("llistxattr", "s p2 i"), 196: ("flistxattr", "i p2 i"), 201: ("time", "p"),
    202: ("futex", "p i i p p i"), 204: ("sched_getaffinity", "i i p1"),
    217: ("getdents64", "i p2 i"), 228: ("clock_gettime", "i p"), 229: ("clock_getres", "i p"),
    230: ("clock_nanosleep", "i i p p"), 235: ("utimes", "s p"), 257: ("openat", "i s i i"),
    258: ("mkdirat", "i s i"), 259: ("mknodat", "i s i i"), 260: ("fchownat", "i s i i i"),
    262: ("newfstatat", "i s p i"), 263: ("unlinkat", "i s i"), 264: ("renameat", "i s i s"),
    265: ("linkat", "i s i s i"), 266: ("symlinkat", "s i s"), 268: ("fchmodat", "i s i"),
    269: ("faccessat", "i s i"), 270: ("pselect6", "i p p p p p"), 271: ("ppoll", "p i p p i"),
    280: ("utimensat", "i s p i"), 285: ("fallocate", "i i i i"), 292: ("dup3", "i i i"),
    293: ("pipe2", "p i"), 302: ("prlimit64", "i i p p"), 316: ("renameat2", "i s i s i"),
    318: ("getrandom", "p1 i i"), 326: ("copy_file_range", "i p i p i i"),
    332: ("statx", "i s i i p"), 439: ("faccessat2", "i s i i"),
}

# ioctl requests whose third argument is a pointer (all others: an integer).
_IOCTL_POINTER = {0x5401, 0x5402, 0x5403, 0x5404, 0x5413, 0x5414, 0x540F, 0x5410, 0x541B,
                  0x5421, 0x5429, 0x80045430}
_IOCTL_ALLOWED = _IOCTL_POINTER | {0x5409, 0x540B, 0x540A}
# fcntl commands whose third argument is a pointer (struct flock and friends).
_FCNTL_POINTER = {5, 6, 7, 36, 37, 38}

ENOSYS = errno.ENOSYS


class GuestExit(Exception):
    """The guest called exit/exit_group."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class Syscalls:
    """System call dispatch for one linux-user process."""

    def __init__(self, proc: "LinuxProcess"):
        self.proc = proc
        self.mem = proc.memory
        self._special: dict[int, Callable[..., int]] = {
            9: self.mmap, 10: self.mprotect, 11: self.munmap, 12: self.brk,
            13: self.rt_sigaction, 14: self.rt_sigprocmask, 19: self.readv, 20: self.writev,
            25: self.mremap, 60: self.exit, 231: self.exit, 62: self.kill, 200: self.tkill,
            234: self.tgkill, 89: self.readlink, 267: self.readlinkat, 157: self.prctl,
            158: self.arch_prctl, 218: self.set_tid_address, 273: self.set_robust_list,
            131: self.sigaltstack, 127: self.rt_sigpending, 16: self.ioctl, 72: self.fcntl,
            28: self.madvise, 26: self.msync, 295: self.preadv, 296: self.pwritev,
            56: self.clone, 57: self.fork, 58: self.fork, 59: self.execve, 435: self.clone3,
            2: self.open, 257: self.openat, 3: self.close, 0: self.read, 1: self.write,
            17: self.pread64, 18: self.pwrite64, 8: self.lseek, 33: self.dup2, 292: self.dup3,
        }

    # -- dispatch ---------------------------------------------------------
    def dispatch(self, nr: int, args: list[int]) -> int:
        fn = self._special.get(nr)
        try:
            if fn is not None:
                return fn(*args)
            spec = PASSTHROUGH.get(nr)
            if spec is None or spec[1] is None:
                self.proc.log(f"unknown syscall {nr} -> ENOSYS")
                return -ENOSYS
            return self.passthrough(nr, spec[1], args)
        except GuestMemoryError as e:
            return -(e.errno or errno.EFAULT)

    def ptr(self, addr: int, length: int = 1) -> int:
        if addr == 0:
            return 0
        return self.mem.host(addr, max(length, 0))

    def passthrough(self, nr: int, spec: str, args: list[int]) -> int:
        kinds = spec.split()
        real = list(args)
        for i, kind in enumerate(kinds):
            if kind[0] in "ps":
                length = args[int(kind[1:])] if len(kind) > 1 else 1
                real[i] = self.ptr(args[i], length)
        return self.raw(nr, *real)

    @staticmethod
    def raw(nr: int, *args: int) -> int:
        cargs = [ctypes.c_long(a - (1 << 64) if a >= 1 << 63 else a) for a in args]
        r = _libc.syscall(ctypes.c_long(nr), *cargs)
        if r == -1:
            return -ctypes.get_errno()
        return r

    # -- memory -----------------------------------------------------------
    def brk(self, addr: int, *_: int) -> int:
        mem = self.mem
        if addr == 0 or addr < mem.brk_start:
            return mem.brk_cur
        old_top = page_up(mem.brk_cur)
        new_top = page_up(addr)
        try:
            if new_top > old_top:
                if not mem.is_free(old_top, new_top):
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
        replaced = not mem.is_free(start, start + length)
        mem.map(start, length, prot, name="" if anon else f"fd{fd}",
                fd=-1 if anon else fd, offset=offset if not anon else 0,
                shared=bool(flags & MAP_SHARED))
        if replaced:        # MAP_FIXED over earlier code: its translations go
            self.proc.code_unmapped(start, length)
        if not anon and prot & PROT_EXEC:
            self.proc.file_mapped(start, length, fd, offset)
        return start

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

    def madvise(self, addr: int, length: int, advice: int, *_: int) -> int:
        if addr % PAGE:
            return -errno.EINVAL
        return self.raw(28, self.ptr(addr, length) if addr else 0, length, advice)

    def msync(self, addr: int, length: int, flags: int, *_: int) -> int:
        return self.raw(26, self.ptr(addr, length), length, flags)

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
        if req not in _IOCTL_ALLOWED:
            self.proc.log(f"ioctl {req:#x} not supported -> ENOTTY")
            return -errno.ENOTTY
        return self.raw(16, fd, req, self.ptr(arg) if req in _IOCTL_POINTER else arg)

    def fcntl(self, fd: int, cmd: int, arg: int, *_: int) -> int:
        return self.raw(72, fd, cmd, self.ptr(arg) if cmd in _FCNTL_POINTER else arg)

    def _readlink_common(self, path: bytes, buf: int, size: int) -> int | None:
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
        r = self.proc.procview.open(self.mem.read_cstring(path), flags)
        return r if r is not None else self.raw(2, self.ptr(path), flags, mode)

    def openat(self, dirfd: int, path: int, flags: int, mode: int, *_: int) -> int:
        name = self.mem.read_cstring(path)
        r = self.proc.procview.open(name, flags) if name.startswith(b"/") else None
        return r if r is not None else self.raw(257, dirfd, self.ptr(path), flags, mode)

    def close(self, fd: int, *_: int) -> int:
        self.proc.procview.closed(fd)
        return self.raw(3, fd)

    def dup2(self, old: int, new: int, *_: int) -> int:
        r = self.raw(33, old, new)
        if r >= 0 and old != new:
            self.proc.procview.closed(new)      # what was there is closed
        return r

    def dup3(self, old: int, new: int, flags: int, *_: int) -> int:
        r = self.raw(292, old, new, flags)
        if r >= 0:
            self.proc.procview.closed(new)
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
        r = self._readlink_common(self.mem.read_cstring(path), buf, size)
        if r is not None:
            return r
        return self.raw(89, self.ptr(path), self.ptr(buf, size), size)

    def readlinkat(self, dirfd: int, path: int, buf: int, size: int, *_: int) -> int:
        r = self._readlink_common(self.mem.read_cstring(path), buf, size)
        if r is not None:
            return r
        return self.raw(267, dirfd, self.ptr(path), self.ptr(buf, size), size)

    # -- process --------------------------------------------------------------
    def exit(self, status: int, *_: int) -> int:
        raise GuestExit(status & 0xFF)

    def arch_prctl(self, code: int, addr: int, *_: int) -> int:
        st = self.proc.state
        if code == 0x1002:      # ARCH_SET_FS
            st.fs_base = addr
        elif code == 0x1001:    # ARCH_SET_GS
            st.gs_base = addr
        elif code in (0x1003, 0x1004):
            self.mem.write(addr, struct.pack("<Q", st.fs_base if code == 0x1003 else st.gs_base))
        else:
            return -errno.EINVAL
        return 0

    def prctl(self, option: int, a2: int, *_: int) -> int:
        if option == 15:   # PR_SET_NAME
            return 0
        if option == 16:   # PR_GET_NAME
            self.mem.write(a2, os.path.basename(self.proc.exe_path).encode()[:15] + b"\0")
            return 0
        return -errno.EINVAL

    def set_tid_address(self, addr: int, *_: int) -> int:
        self.proc.clear_child_tid = addr
        return os.getpid()

    def set_robust_list(self, head: int, length: int, *_: int) -> int:
        self.proc.robust_list = (head, length)
        return 0

    # -- processes --------------------------------------------------------------
    def fork(self, *_: int) -> int:
        """fork/vfork: the host process forks; the child carries on with the
        very same guest (memory, translations) and sees 0."""
        self.proc.before_fork_or_exec()
        pid = os.fork()
        if pid == 0:
            self.proc.after_fork()
        return pid

    def clone(self, flags: int, stack: int, ptid: int, ctid: int, tls: int, *_: int) -> int:
        CLONE_VM, CLONE_VFORK, CLONE_THREAD = 0x100, 0x4000, 0x10000
        CLONE_SETTLS, CLONE_PARENT_SETTID = 0x80000, 0x100000
        CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID = 0x200000, 0x1000000
        if flags & CLONE_THREAD or (flags & CLONE_VM and not flags & CLONE_VFORK):
            self.proc.log("clone of a thread: threads are not supported -> ENOSYS")
            return -errno.ENOSYS
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
            self.mem.write(ptid, struct.pack("<i", pid))
        return pid

    def clone3(self, args: int, size: int, *_: int) -> int:
        return -errno.ENOSYS      # glibc falls back to clone

    def execve(self, path: int, argv: int, envp: int, *_: int) -> int:
        """Replace this process by bttool running the new program (the new
        image is translated too: guest code never runs natively).  The new
        host process is bttool's own: an isolated Python with bttool's
        environment; the guest's argv and environment travel in a handoff
        descriptor (runtime/exechandoff.py), so the new guest gets exactly
        what this one passed and nothing of bttool's."""
        from bttool.runtime import exechandoff, hostpython
        prog = self.mem.read_cstring(path)
        args = self._string_array(argv)
        env = self._string_array(envp)
        own = self.proc.procview.readlink(prog)
        if own is not None:                 # /proc/self/exe and its aliases
            prog = own
        if not os.path.exists(prog):
            return -errno.ENOENT
        if not os.access(prog, os.X_OK):
            return -errno.EACCES
        self.proc.before_fork_or_exec()
        fd = exechandoff.write(exechandoff.Handoff(prog, args, env, dict(self.proc.exec_options)))
        cmd = hostpython.command("bttool.runtime.execstart", str(fd))
        try:
            os.execve(cmd[0], cmd, hostpython.host_environment())
        except OSError as e:
            return -(e.errno or errno.ENOEXEC)
        finally:
            os.close(fd)
        return 0  # not reached

    def _string_array(self, addr: int) -> list[bytes]:
        out = []
        while addr:
            p = self.mem.u64(addr)
            if p == 0:
                break
            out.append(self.mem.read_cstring(p))
            addr += 8
        return out

    # -- signals (recorded; delivery is the personality's job) ---------------
    def rt_sigaction(self, sig: int, act: int, oldact: int, sigsetsize: int, *_: int) -> int:
        if not 1 <= sig <= 64 or sig in (9, 19) and act:
            return -errno.EINVAL
        old = self.proc.sigactions.get(sig, b"\0" * 32)
        if act:
            self.proc.sigactions[sig] = self.mem.read(act, 32)
        if oldact:
            self.mem.write(oldact, old)
        return 0

    def rt_sigprocmask(self, how: int, nset: int, oset: int, sigsetsize: int, *_: int) -> int:
        cur = self.proc.sigmask
        if oset:
            self.mem.write(oset, struct.pack("<Q", cur))
        if nset:
            new = struct.unpack("<Q", self.mem.read(nset, 8))[0]
            if how == 0:
                cur |= new
            elif how == 1:
                cur &= ~new
            elif how == 2:
                cur = new
            else:
                return -errno.EINVAL
            self.proc.sigmask = cur & ~((1 << 8) | (1 << 18))  # SIGKILL, SIGSTOP
            self.proc.check_pending()
        return 0

    def rt_sigpending(self, out: int, *_: int) -> int:
        self.mem.write(out, b"\0" * 8)
        return 0

    def sigaltstack(self, ss: int, old: int, *_: int) -> int:
        if old:
            self.mem.write(old, struct.pack("<QiiQ", 0, 2, 0, 0))  # SS_DISABLE
        return 0

    def kill(self, pid: int, sig: int, *_: int) -> int:
        if pid in (0, os.getpid()) or pid == (1 << 64) - 1:
            return self.proc.raise_signal(sig)
        return self.raw(62, pid, sig)

    def tkill(self, tid: int, sig: int, *_: int) -> int:
        if tid == os.getpid():
            return self.proc.raise_signal(sig)
        return -errno.ESRCH

    def tgkill(self, tgid: int, tid: int, sig: int, *_: int) -> int:
        if tid == os.getpid():
            return self.proc.raise_signal(sig)
        return -errno.ESRCH

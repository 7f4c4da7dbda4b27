"""The i386 system-call ABI of a 64-bit process: ``int 0x80``.

Linux runs ``int 0x80`` from 64-bit code through its ia32 table: eax is an
i386 number, the arguments are ebx, ecx, edx, esi, edi, ebp truncated to
32 bits (so pointers reach the low 4 GiB only), every register but rax is
preserved and rax gets the 64-bit result (a negative errno sign-extended).
bttool's linux personality (``LinuxProcess._int``) hands such calls here.

Calls whose arguments mean the same on both ABIs go to the x86-64 handler
(``SAME``, with the arguments that are signed 32-bit values sign-extended);
calls with 32-bit structure layouts (time32, timeval32, timespec32,
stat64, compat iovec, rusage, sigaction, mmap_arg_struct, execve's 32-bit
argv and envp, socketcall's argument block) are converted here.  Every
other number is -ENOSYS (set_thread_area among them): nothing is passed
through blind.
"""
from __future__ import annotations

import ctypes
import errno
import struct
from typing import TYPE_CHECKING, Callable

from bttool.runtime.memory import MAP_FIXED, MAP_FIXED_NOREPLACE, PAGE, GuestMemoryError, page_up

if TYPE_CHECKING:  # pragma: no cover
    from bttool.runtime.syscalls import Syscalls

ENOSYS = errno.ENOSYS
_M64 = (1 << 64) - 1

# i386 number -> (x86-64 number, indices of arguments that are signed 32-bit
# values and must be sign-extended: off_t).  Integer arguments the kernel
# takes as int (fds, pids, flags) need no care: the x86-64 kernel truncates
# them as well.
SAME: dict[int, tuple[int, tuple[int, ...]]] = {
    1: (60, ()), 252: (231, ()),                                    # exit, exit_group
    2: (57, ()), 190: (58, ()),                                     # fork, vfork
    3: (0, ()), 4: (1, ()), 5: (2, ()), 6: (3, ()), 8: (85, ()),    # read write open close creat
    9: (86, ()), 10: (87, ()), 12: (80, ()), 15: (90, ()),          # link unlink chdir chmod
    19: (8, (1,)), 20: (39, ()), 27: (37, ()), 29: (34, ()),        # lseek getpid alarm pause
    33: (21, ()), 36: (162, ()), 37: (62, ()), 38: (82, ()),        # access sync kill rename
    39: (83, ()), 40: (84, ()), 41: (32, ()), 42: (22, ()),         # mkdir rmdir dup pipe
    45: (12, ()), 54: (16, ()), 57: (109, ()), 60: (95, ()),        # brk ioctl setpgid umask
    63: (33, ()), 64: (110, ()), 65: (111, ()), 66: (112, ()),      # dup2 getppid getpgrp setsid
    83: (88, ()), 85: (89, ()), 91: (11, ()), 92: (76, (1,)),       # symlink readlink munmap truncate
    93: (77, ()), 94: (91, ()), 118: (74, ()), 122: (63, ()),       # ftruncate fchmod fsync uname
    125: (10, ()), 132: (121, ()), 133: (81, ()), 147: (124, ()),   # mprotect getpgid fchdir getsid
    148: (75, ()), 158: (24, ()), 168: (7, ()), 175: (14, ()),      # fdatasync sched_yield poll rt_sigprocmask
    183: (79, ()), 199: (102, ()), 200: (104, ()), 201: (107, ()),  # getcwd getuid32 getgid32 geteuid32
    202: (108, ()), 220: (217, ()), 224: (186, ()), 238: (200, ()), # getegid32 getdents64 gettid tkill
    258: (218, ()), 270: (234, ()), 295: (257, ()), 296: (258, ()), # set_tid_address tgkill openat mkdirat
    301: (263, ()), 302: (264, ()), 303: (265, ()), 304: (266, ()), # unlinkat renameat linkat symlinkat
    305: (267, ()), 306: (268, ()), 307: (269, ()), 330: (292, ()), # readlinkat fchmodat faccessat dup3
    331: (293, ()), 353: (316, ()), 355: (318, ()), 439: (439, ()), # pipe2 renameat2 getrandom faccessat2
    403: (228, ()), 406: (229, ()),                                 # clock_gettime64 clock_getres_time64
    359: (41, ()), 360: (53, ()), 361: (49, ()), 362: (42, ()),     # socket socketpair bind connect
    363: (50, ()), 369: (44, ()), 373: (48, ()),                    # listen sendto shutdown
}

# socketcall(call, args): the i386 multiplexer of the socket calls, onto the
# x86-64 calls (so it offers what they offer): call -> (x86-64 number, how
# many 32-bit words of ``args`` it takes, words appended: send and recv are
# sendto and recvfrom without an address).  Calls with 32-bit structures
# (setsockopt/getsockopt with timevals, sendmsg, recvmsg, recvmmsg,
# sendmmsg) are -ENOSYS; a call number past the table -EINVAL, as Linux.
SOCKETCALL: dict[int, tuple[int, int, tuple[int, ...]]] = {
    1: (41, 3, ()), 2: (49, 3, ()), 3: (42, 3, ()), 4: (50, 2, ()), 5: (43, 3, ()),
    6: (51, 3, ()), 7: (52, 3, ()), 8: (53, 4, ()), 9: (44, 4, (0, 0)), 10: (45, 4, (0, 0)),
    11: (44, 6, ()), 12: (45, 6, ()), 13: (48, 2, ()), 18: (288, 4, ()),
}
_SOCKETCALL_MAX = 20

# fcntl commands with integer arguments (struct flock differs: not offered).
_FCNTL_INT = {0, 1, 2, 3, 4, 1030, 1031, 1032}
# the 16-bit uid/gid calls: getuid, getgid, geteuid, getegid
_ID16 = {24: 102, 47: 104, 49: 107, 50: 108}
_MMAP32_TOP = 0xFFFFE000          # ia32 task size: compat mmaps stay below


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


class I386Syscalls:
    """i386 system calls of one linux-user process, on its x86-64 ones."""

    def __init__(self, syscalls: "Syscalls"):
        self.sc = syscalls
        self.mem = syscalls.mem
        self._special: dict[int, Callable[..., int]] = {
            7: self.waitpid, 13: self.time, 55: self.fcntl, 221: self.fcntl,
            78: self.gettimeofday, 90: self.old_mmap, 114: self.wait4, 140: self.llseek,
            145: self.readv, 146: self.writev, 162: self.nanosleep, 174: self.rt_sigaction,
            180: self.pread64, 181: self.pwrite64, 192: self.mmap2,
            195: self.stat64, 196: self.lstat64, 197: self.fstat64, 300: self.fstatat64,
            265: self.clock_gettime, 266: self.clock_getres,
            11: self.execve, 120: self.clone, 102: self.socketcall,
        }

    def dispatch(self, nr: int, args: list[int]) -> int:
        """Perform i386 call ``nr`` with 32-bit ``args`` (zero-extended);
        the result as the kernel returns it (negative errno)."""
        args = [a & 0xFFFFFFFF for a in args] + [0] * (6 - len(args))
        same = SAME.get(nr)
        if same is not None:
            nr64, signed = same
            return self.sc.dispatch(nr64, [_s32(a) & _M64 if i in signed else a
                                           for i, a in enumerate(args)])
        if nr in _ID16:
            r = self.sc.dispatch(_ID16[nr], [])
            return 65534 if r > 0xFFFF else r       # high2lowuid: the overflow id
        fn = self._special.get(nr)
        if fn is None:
            self.sc.proc.log(f"unknown i386 syscall {nr} (int 0x80) -> ENOSYS")
            return -ENOSYS
        try:
            return fn(*args)
        except GuestMemoryError as e:
            return -(e.errno or errno.EFAULT)

    # -- helpers ------------------------------------------------------------
    def _host_call(self, nr: int, size: int, *args: int) -> tuple[int, bytes]:
        """x86-64 call ``nr`` whose last pointer argument is a host buffer of
        ``size`` bytes (appended to ``args``): (result, buffer)."""
        buf = ctypes.create_string_buffer(size)
        r = self.sc.raw(nr, *args, ctypes.addressof(buf))
        return r, buf.raw

    # -- time -----------------------------------------------------------------
    def time(self, tloc: int, *_: int) -> int:
        _, ts = self._host_call(228, 16, 0)         # CLOCK_REALTIME
        t = _s32(struct.unpack_from("<q", ts)[0])   # old_time32_t
        if tloc:
            self.mem.write(tloc, struct.pack("<i", t))
        return t

    def gettimeofday(self, tv: int, tz: int, *_: int) -> int:
        tv64 = (ctypes.c_int64 * 2)()
        tz64 = (ctypes.c_int32 * 2)()
        r = self.sc.raw(96, ctypes.addressof(tv64), ctypes.addressof(tz64))
        if r < 0:
            return r
        if tv:
            self.mem.write(tv, struct.pack("<ii", _s32(tv64[0]), tv64[1]))
        if tz:
            self.mem.write(tz, struct.pack("<ii", tz64[0], tz64[1]))
        return 0

    def _timespec32(self, addr: int, data: bytes) -> None:
        sec, nsec = struct.unpack_from("<qq", data)
        self.mem.write(addr, struct.pack("<ii", _s32(sec), nsec))

    def clock_gettime(self, clk: int, tp: int, *_: int) -> int:
        r, buf = self._host_call(228, 16, _s32(clk))
        if r == 0:
            self._timespec32(tp, buf)
        return r

    def clock_getres(self, clk: int, tp: int, *_: int) -> int:
        r, buf = self._host_call(229, 16, _s32(clk))
        if r == 0 and tp:
            self._timespec32(tp, buf)
        return r

    def nanosleep(self, req: int, rem: int, *_: int) -> int:
        sec, nsec = struct.unpack("<ii", self.mem.read(req, 8))
        ts = (ctypes.c_int64 * 2)(sec, nsec)
        out = (ctypes.c_int64 * 2)()
        r = self.sc.raw(35, ctypes.addressof(ts), ctypes.addressof(out))
        if r == -errno.EINTR and rem:
            self.mem.write(rem, struct.pack("<ii", out[0], out[1]))
        return r

    # -- files ----------------------------------------------------------------
    def fcntl(self, fd: int, cmd: int, arg: int, *_: int) -> int:
        if cmd not in _FCNTL_INT:
            self.sc.proc.log(f"i386 fcntl command {cmd} (struct layout) not supported -> EINVAL")
            return -errno.EINVAL
        return self.sc.dispatch(72, [fd, cmd, arg, 0, 0, 0])

    def llseek(self, fd: int, hi: int, lo: int, result: int, whence: int, *_: int) -> int:
        r = self.sc.dispatch(8, [fd, ((hi << 32) | lo) & _M64, whence, 0, 0, 0])
        if r < 0:
            return r
        self.mem.write(result, struct.pack("<q", r))
        return 0

    def pread64(self, fd: int, buf: int, count: int, lo: int, hi: int, *_: int) -> int:
        return self.sc.dispatch(17, [fd, buf, count, (hi << 32) | lo, 0, 0])

    def pwrite64(self, fd: int, buf: int, count: int, lo: int, hi: int, *_: int) -> int:
        return self.sc.dispatch(18, [fd, buf, count, (hi << 32) | lo, 0, 0])

    def _iovec(self, iov: int, cnt: int) -> ctypes.Array:
        if cnt > 1024:
            raise GuestMemoryError(errno.EINVAL, "iovcnt")
        raw = self.mem.read(iov, 8 * cnt) if cnt else b""
        arr = (ctypes.c_uint64 * (2 * cnt + 1))()
        for i in range(cnt):
            base, ln = struct.unpack_from("<II", raw, 8 * i)
            arr[2 * i] = self.sc.ptr(base, ln) if ln else 0
            arr[2 * i + 1] = ln
        return arr

    def readv(self, fd: int, iov: int, cnt: int, *_: int) -> int:
        arr = self._iovec(iov, cnt)         # alive until the call returns
        return self.sc.raw(19, fd, ctypes.addressof(arr), cnt)

    def writev(self, fd: int, iov: int, cnt: int, *_: int) -> int:
        arr = self._iovec(iov, cnt)
        return self.sc.raw(20, fd, ctypes.addressof(arr), cnt)

    def _stat64(self, r: int, st: bytes, out: int) -> int:
        """struct stat64 of i386 (96 bytes, packed) from an x86-64 struct
        stat, written as cp_stat64 does (the padding is left alone)."""
        if r < 0:
            return r
        (dev, ino, nlink, mode, uid, gid, _pad, rdev, size, blksize, blocks,
         at, atn, mt, mtn, ct, ctn) = struct.unpack_from("<QQQIIIIQqqqqqqqqq", st)
        m = self.mem
        data = bytearray(m.read(out, 96)) if m.readable(out, 96) else bytearray(96)
        struct.pack_into("<Q", data, 0, dev)
        struct.pack_into("<IIIII", data, 12, ino & 0xFFFFFFFF, mode, nlink & 0xFFFFFFFF, uid, gid)
        struct.pack_into("<Q", data, 32, rdev)
        struct.pack_into("<qIQ", data, 44, size, blksize, blocks)
        struct.pack_into("<IIIIIIQ", data, 64, at & 0xFFFFFFFF, atn, mt & 0xFFFFFFFF, mtn,
                         ct & 0xFFFFFFFF, ctn, ino)
        m.write(out, bytes(data))
        return 0

    def stat64(self, path: int, out: int, *_: int) -> int:
        r, st = self._host_call(4, 144, self.sc.ptr(path))
        return self._stat64(r, st, out)

    def lstat64(self, path: int, out: int, *_: int) -> int:
        r, st = self._host_call(6, 144, self.sc.ptr(path))
        return self._stat64(r, st, out)

    def fstat64(self, fd: int, out: int, *_: int) -> int:
        r, st = self._host_call(5, 144, fd)
        return self._stat64(r, st, out)

    def fstatat64(self, dirfd: int, path: int, out: int, flags: int, *_: int) -> int:
        buf = ctypes.create_string_buffer(144)
        r = self.sc.raw(262, _s32(dirfd), self.sc.ptr(path), ctypes.addressof(buf), flags)
        return self._stat64(r, buf.raw, out)

    # -- processes ------------------------------------------------------------
    def waitpid(self, pid: int, status: int, options: int, *_: int) -> int:
        return self.sc.dispatch(61, [_s32(pid) & _M64, status, options, 0, 0, 0])

    def execve(self, path: int, argv: int, envp: int, *_: int) -> int:
        """argv and envp are arrays of 32-bit pointers."""
        return self.sc.execve(path, argv, envp, pointer_size=4)

    def clone(self, flags: int, stack: int, ptid: int, tls: int, ctid: int, *_: int) -> int:
        """i386 argument order (flags, stack, parent_tid, tls, child_tid).
        CLONE_SETTLS takes an i386 ``struct user_desc`` (a GDT TLS entry,
        as set_thread_area), which bttool does not offer: -ENOSYS."""
        if flags & 0x80000:
            self.sc.proc.log("i386 clone with CLONE_SETTLS (set_thread_area) -> ENOSYS")
            return -ENOSYS
        return self.sc.clone(flags, stack, ptid, ctid, 0)

    def socketcall(self, call: int, args: int, *_: int) -> int:
        if not 1 <= call <= _SOCKETCALL_MAX:
            return -errno.EINVAL
        entry = SOCKETCALL.get(call)
        if entry is None:
            self.sc.proc.log(f"i386 socketcall {call} (32-bit structures) -> ENOSYS")
            return -ENOSYS
        nr, n, extra = entry
        words = struct.unpack(f"<{n}I", self.mem.read(args, 4 * n)) if n else ()
        return self.sc.dispatch(nr, (list(words) + list(extra) + [0] * 6)[:6])

    def wait4(self, pid: int, status: int, options: int, rusage: int, *_: int) -> int:
        if not rusage:
            return self.waitpid(pid, status, options)
        buf = ctypes.create_string_buffer(144)
        r = self.sc.raw(61, _s32(pid), self.sc.ptr(status), options, ctypes.addressof(buf))
        if r >= 0:
            v = struct.unpack("<18q", buf.raw)
            self.mem.write(rusage, struct.pack("<18i", *(_s32(x) for x in v)))
        return r

    def rt_sigaction(self, sig: int, act: int, oldact: int, sigsetsize: int, *_: int) -> int:
        """struct sigaction of i386: handler, flags, restorer (32 bits each)
        and the 64-bit mask; kept in the x86-64 layout the process records."""
        if sigsetsize != 8:
            return -errno.EINVAL
        proc = self.sc.proc
        if not 1 <= sig <= 64 or sig in (9, 19) and act:
            return -errno.EINVAL
        old = proc.signals.action(sig)
        if act:
            handler, flags, restorer, mask = struct.unpack("<IIIQ", self.mem.read(act, 20))
            new = struct.pack("<QQQQ", handler, flags, restorer, mask)
        if oldact:
            handler, flags, restorer, mask = struct.unpack("<QQQQ", old)
            self.mem.write(oldact, struct.pack("<IIIQ", handler & 0xFFFFFFFF, flags & 0xFFFFFFFF,
                                               restorer & 0xFFFFFFFF, mask))
        if act:
            proc.signals.set_action(sig, new)
        return 0

    # -- memory ---------------------------------------------------------------
    def _below_4g(self, length: int) -> int | None:
        """A free range of ``length`` bytes below the ia32 task size, top
        down (where a compat mmap lands), or None."""
        length = page_up(length)
        top = _MMAP32_TOP
        while top - length >= 0x10000:
            start = top - length
            m = self._highest_overlap(start, top)
            if m is None:
                return start
            top = m & ~(PAGE - 1)
        return None

    def _highest_overlap(self, start: int, end: int) -> int | None:
        """The start of the highest mapping overlapping [start, end)."""
        mem = self.mem
        if mem.is_free(start, end):
            return None
        lo, hi = start, end          # bisect for the highest mapped page
        while hi - lo > PAGE:
            mid = ((lo + hi) // 2) & ~(PAGE - 1)
            if mem.is_free(mid, hi):
                hi = mid
            else:
                lo = mid
        m = mem.find(lo)
        return m.start if m is not None else lo

    def mmap2(self, addr: int, length: int, prot: int, flags: int, fd: int, pgoff: int) -> int:
        return self._mmap(addr, length, prot, flags, fd, pgoff * PAGE)

    def old_mmap(self, argp: int, *_: int) -> int:
        addr, length, prot, flags, fd, offset = struct.unpack("<6I", self.mem.read(argp, 24))
        if offset % PAGE:
            return -errno.EINVAL
        return self._mmap(addr, length, prot, flags, fd, offset)

    def _mmap(self, addr: int, length: int, prot: int, flags: int, fd: int, offset: int) -> int:
        if not flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) and length:
            if not (addr and self.mem.is_free(addr & ~(PAGE - 1),
                                              (addr & ~(PAGE - 1)) + page_up(length))):
                addr = self._below_4g(length)
                if addr is None:
                    return -errno.ENOMEM
        return self.sc.dispatch(9, [addr, length, prot, flags, _s32(fd) & _M64, offset])

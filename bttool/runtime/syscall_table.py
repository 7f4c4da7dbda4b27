"""Every system call bttool serves, and what each of its arguments is.

A guest pointer given to the host kernel untranslated would make the kernel
read or write bttool's own memory at that address; one translated without
its extent checked could reach past the guest window.  So nothing reaches
the host kernel unless this table (or a handler in syscalls.py) says what
every argument is:

``PASSTHROUGH[nr] = (name, spec)``: ``spec`` is one kind per argument,
space separated:

* ``i``      an integer, passed as is;
* ``f``      a descriptor: one of bttool's own (hostfds.py) is EBADF, as a
             descriptor the guest never opened would be;
* ``s``      a C string (the kernel reads it; the guard pages above the
             window stop it there);
* ``pN``     a buffer whose byte length is argument N;
* ``pN*K``   a buffer of K-byte elements, argument N of them;
* ``p:K``    a buffer of fixed size K bytes (a struct stat is 144 bytes);
* ``lN``     a buffer whose byte length is the 32-bit value that argument N
             points to (a socket address with its ``socklen_t *``: accept,
             getsockname, recvfrom, getsockopt);

and ``None`` instead of a spec when the call has its own handler in
``syscalls.Syscalls`` (per-command tables below, embedded pointers).  A
pointer's whole extent must lie inside the guest window (else EFAULT, as the
kernel says for an address it cannot reach); NULL stays NULL, and the host
kernel then finds every unmapped or read-only guest page as unmapped or
read-only as Linux would, because the window's host protection is the
guest's.  A call this table does not know is ENOSYS, never passed through.

The per-command tables (FCNTL, IOCTL, PRCTL, ARCH_PRCTL, MADVISE, FUTEX)
work the same way for a call whose arguments depend on a command: a command
they do not know is EINVAL (ENOTTY for ioctl), as the kernel answers a
command it does not implement.
"""
from __future__ import annotations

import re

from bttool.translator.loader import TASK_SIZE

STAT = "p:144"      # struct stat
TIMESPEC = "p:16"   # struct timespec, struct timeval
RLIMIT = "p:16"
RUSAGE = "p:144"
STATFS = "p:120"
EPOLL_EVENT = 12    # struct epoll_event: packed on x86-64
ITIMERSPEC = "p:32"

PASSTHROUGH: dict[int, tuple[str, str | None]] = {
    0: ("read", "f p2 i"), 1: ("write", "f p2 i"), 2: ("open", "s i i"), 3: ("close", None),
    4: ("stat", f"s {STAT}"), 5: ("fstat", f"f {STAT}"), 6: ("lstat", f"s {STAT}"),
    7: ("poll", "p1*8 i i"), 8: ("lseek", "f i i"), 16: ("ioctl", None),
    17: ("pread64", "f p2 i i"), 18: ("pwrite64", "f p2 i i"), 21: ("access", "s i"),
    22: ("pipe", "p:8"), 23: ("select", None), 24: ("sched_yield", ""), 26: ("msync", None),
    28: ("madvise", None), 32: ("dup", "f"), 33: ("dup2", None), 34: ("pause", ""),
    35: ("nanosleep", f"{TIMESPEC} {TIMESPEC}"), 36: ("getitimer", "i p:32"), 37: ("alarm", "i"),
    38: ("setitimer", "i p:32 p:32"), 39: ("getpid", ""), 40: ("sendfile", "f f p:8 i"),
    41: ("socket", "i i i"), 42: ("connect", "f p2 i"), 43: ("accept", "f l2 p:4"),
    44: ("sendto", "f p2 i i p5 i"), 45: ("recvfrom", "f p2 i i l5 p:4"), 46: ("sendmsg", None),
    47: ("recvmsg", None), 299: ("recvmmsg", None), 307: ("sendmmsg", None), 48: ("shutdown", "f i"), 49: ("bind", "f p2 i"), 50: ("listen", "f i"),
    51: ("getsockname", "f l2 p:4"), 52: ("getpeername", "f l2 p:4"),
    53: ("socketpair", "i i i p:8"), 54: ("setsockopt", "f i i p4 i"),
    55: ("getsockopt", "f i i l4 p:4"),
    61: ("wait4", f"i p:4 i {RUSAGE}"), 63: ("uname", "p:390"), 72: ("fcntl", None),
    73: ("flock", "f i"), 74: ("fsync", "f"), 75: ("fdatasync", "f"), 76: ("truncate", "s i"),
    77: ("ftruncate", "f i"), 78: ("getdents", "f p2 i"), 79: ("getcwd", "p1 i"),
    80: ("chdir", "s"), 81: ("fchdir", "f"), 82: ("rename", "s s"), 83: ("mkdir", "s i"),
    84: ("rmdir", "s"), 85: ("creat", "s i"), 86: ("link", "s s"), 87: ("unlink", "s"),
    88: ("symlink", "s s"), 90: ("chmod", "s i"), 91: ("fchmod", "f i"),
    92: ("chown", "s i i"), 93: ("fchown", "f i i"), 94: ("lchown", "s i i"), 95: ("umask", "i"),
    96: ("gettimeofday", f"{TIMESPEC} p:8"), 97: ("getrlimit", f"i {RLIMIT}"),
    98: ("getrusage", f"i {RUSAGE}"), 99: ("sysinfo", "p:112"), 100: ("times", "p:32"),
    101: ("ptrace", None), 102: ("getuid", ""), 104: ("getgid", ""), 105: ("setuid", "i"),
    106: ("setgid", "i"),
    107: ("geteuid", ""), 108: ("getegid", ""), 109: ("setpgid", "i i"), 110: ("getppid", ""),
    111: ("getpgrp", ""), 112: ("setsid", ""), 115: ("getgroups", "i p0*4"),
    121: ("getpgid", "i"), 127: ("rt_sigpending", "p:8 i"),
    128: ("rt_sigtimedwait", "p:8 p:128 p:16 i"), 129: ("rt_sigqueueinfo", "i i p:128"), 124: ("getsid", "i"), 132: ("utime", "s p:16"),
    137: ("statfs", f"s {STATFS}"), 138: ("fstatfs", f"f {STATFS}"),
    140: ("getpriority", "i i"), 160: ("setrlimit", f"i {RLIMIT}"), 161: ("chroot", "s"),
    162: ("sync", ""), 186: ("gettid", ""), 191: ("getxattr", "s s p3 i"),
    192: ("lgetxattr", "s s p3 i"), 193: ("fgetxattr", "f s p3 i"), 194: ("listxattr", "s p2 i"),
    195: ("llistxattr", "s p2 i"), 196: ("flistxattr", "f p2 i"), 201: ("time", "p:8"),
    202: ("futex", None), 204: ("sched_getaffinity", "i i p1"), 213: ("epoll_create", "i"),
    217: ("getdents64", "f p2 i"), 221: ("fadvise64", "f i i i"),
    228: ("clock_gettime", f"i {TIMESPEC}"),
    229: ("clock_getres", f"i {TIMESPEC}"), 230: ("clock_nanosleep", f"i i {TIMESPEC} {TIMESPEC}"),
    232: ("epoll_wait", f"f p2*{EPOLL_EVENT} i i"), 233: ("epoll_ctl", f"f i f p:{EPOLL_EVENT}"),
    235: ("utimes", "s p:32"), 253: ("inotify_init", ""), 254: ("inotify_add_watch", "f s i"),
    255: ("inotify_rm_watch", "f i"), 257: ("openat", "f s i i"),
    258: ("mkdirat", "f s i"), 259: ("mknodat", "f s i i"), 260: ("fchownat", "f s i i i"),
    262: ("newfstatat", f"f s {STAT} i"), 263: ("unlinkat", "f s i"), 264: ("renameat", "f s f s"),
    265: ("linkat", "f s f s i"), 266: ("symlinkat", "s f s"), 268: ("fchmodat", "f s i"),
    269: ("faccessat", "f s i"), 270: ("pselect6", None),
    271: ("ppoll", f"p1*8 i {TIMESPEC} p4 i"), 275: ("splice", "f p:8 f p:8 i i"),
    276: ("tee", "f f i i"), 277: ("sync_file_range", "f i i i"),
    280: ("utimensat", "f s p:32 i"), 281: ("epoll_pwait", f"f p2*{EPOLL_EVENT} i i p5 i"),
    282: ("signalfd", "f p:8 i"), 283: ("timerfd_create", "i i"), 284: ("eventfd", "i"), 285: ("fallocate", "f i i i"),
    286: ("timerfd_settime", f"f i {ITIMERSPEC} {ITIMERSPEC}"), 287: ("timerfd_gettime", f"f {ITIMERSPEC}"),
    288: ("accept4", "f l2 p:4 i"), 289: ("signalfd4", "f p:8 i i"), 290: ("eventfd2", "i i"), 291: ("epoll_create1", "i"),
    292: ("dup3", None), 293: ("pipe2", "p:8 i"), 294: ("inotify_init1", "i"),
    297: ("rt_tgsigqueueinfo", "i i i p:128"), 302: ("prlimit64", f"i i {RLIMIT} {RLIMIT}"),
    309: ("getcpu", "p:4 p:4 i"),     # (the third argument is ignored by Linux)
    310: ("process_vm_readv", None), 311: ("process_vm_writev", None),
    316: ("renameat2", "f s f s i"), 318: ("getrandom", "p1 i i"), 319: ("memfd_create", "s i"),
    326: ("copy_file_range", "f p:8 f p:8 i i"),
    332: ("statx", "f s i i p:256"), 436: ("close_range", None), 437: ("openat2", None),
    439: ("faccessat2", "f s i i"), 441: ("epoll_pwait2", f"f p2*{EPOLL_EVENT} i {TIMESPEC} p5 i"),
}

# Path calls that follow a symbolic link their path ends in: nr -> the index
# of the flags argument whose AT_SYMLINK_NOFOLLOW (0x100) says they do not
# (None: always follow).  Given the guest's /proc/self/exe, these act on the
# guest program (the host's link names bttool's Python); lstat and the
# like see the link itself, which is the host's as well.
FOLLOWS_LINK: dict[int, int | None] = {4: None, 21: None, 262: 3, 269: None, 332: 2, 439: 3}
AT_SYMLINK_NOFOLLOW = 0x100

# fcntl(fd, cmd, arg): what ``arg`` is per command ("i" an integer, "p:K" a
# K-byte structure).  F_SETPIPE_SZ & co. take integers.
FCNTL: dict[int, str] = {
    0: "i", 1: "i", 2: "i", 3: "i", 4: "i",          # F_DUPFD F_GETFD F_SETFD F_GETFL F_SETFL
    5: "p:32", 6: "p:32", 7: "p:32",                 # F_GETLK F_SETLK F_SETLKW (struct flock)
    8: "i", 9: "i", 10: "i", 11: "i",                # F_SETOWN F_GETOWN F_SETSIG F_GETSIG
    15: "p:8", 16: "p:8",                            # F_SETOWN_EX F_GETOWN_EX (struct f_owner_ex)
    17: "p:8",                                       # F_GETOWNER_UIDS (two uid_t)
    36: "p:32", 37: "p:32", 38: "p:32",              # F_OFD_GETLK F_OFD_SETLK F_OFD_SETLKW
    1024: "i", 1025: "i", 1026: "i", 1029: "i",      # F_SETLEASE F_GETLEASE F_NOTIFY F_CANCELLK
    1030: "i", 1031: "i", 1032: "i", 1033: "i", 1034: "i",  # F_DUPFD_CLOEXEC, pipe size, seals
    1035: "p:8", 1036: "p:8", 1037: "p:8", 1038: "p:8",     # F_{GET,SET}_{,FILE_}RW_HINT (u64)
}
F_DUPFD, F_DUPFD_CLOEXEC = 0, 1030

# ioctl(fd, request, arg) requests served (anything else is ENOTTY).
IOCTL: dict[int, str] = {
    0x5401: "p:36", 0x5402: "p:36", 0x5403: "p:36", 0x5404: "p:36",  # TCGETS TCSETS{,W,F}
    0x5409: "i", 0x540A: "i", 0x540B: "i",            # TCSBRK TCXONC TCFLSH
    0x540F: "p:4", 0x5410: "p:4",                     # TIOCGPGRP TIOCSPGRP
    0x5413: "p:8", 0x5414: "p:8",                     # TIOCGWINSZ TIOCSWINSZ
    0x541B: "p:4", 0x5421: "p:4", 0x5429: "p:4",      # FIONREAD FIONBIO TIOCGSID
    0x80045430: "p:4",                                # TIOCGPTN
}

# prctl(option, arg2, ...): options served.  "host": passed to the host
# kernel with integer arguments; "host p:4": arg2 is an int the kernel
# writes; "name": PR_SET_NAME/PR_GET_NAME, kept by bttool.  Anything else
# (seccomp filters, which would apply to bttool itself, among them) is EINVAL.
PRCTL: dict[int, str] = {
    1: "host",              # PR_SET_PDEATHSIG
    2: "host p:4",          # PR_GET_PDEATHSIG
    3: "host", 4: "host",   # PR_GET_DUMPABLE PR_SET_DUMPABLE
    15: "name", 16: "name",  # PR_SET_NAME PR_GET_NAME
    23: "host",             # PR_CAPBSET_READ
    29: "host", 30: "host",  # PR_SET_TIMERSLACK PR_GET_TIMERSLACK
    36: "host",             # PR_SET_CHILD_SUBREAPER
    37: "host p:4",         # PR_GET_CHILD_SUBREAPER
    39: "host",             # PR_GET_NO_NEW_PRIVS
}

# arch_prctl codes served (all by bttool: the guest's fs/gs are its CPU state).
ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004
ARCH_GET_CPUID = 0x1011
ARCH_PRCTL = {ARCH_SET_GS: "i", ARCH_SET_FS: "i", ARCH_GET_FS: "p:8", ARCH_GET_GS: "p:8",
              ARCH_GET_CPUID: "i"}
# the first address past the user address space (4-level paging): Linux
# refuses fs/gs bases at or above it with EPERM
TASK_SIZE_MAX = TASK_SIZE

# madvise advice values served; "host" passed to the host kernel for the
# guest's range; "noop" accepted and not applied.  MADV_DONTFORK would
# leave a hole in the guest window of a forked child where host memory could
# then be mapped, so it is accepted but not applied (the child keeps the
# pages).  MADV_HWPOISON/SOFT_OFFLINE need privileges: EPERM.
MADVISE: dict[int, str] = {
    0: "host", 1: "host", 2: "host", 3: "host", 4: "host",   # NORMAL RANDOM SEQUENTIAL WILLNEED DONTNEED
    8: "host", 9: "host", 10: "noop", 11: "host",            # FREE REMOVE DONTFORK DOFORK
    12: "host", 13: "host", 14: "host", 15: "host",          # (UN)MERGEABLE (NO)HUGEPAGE
    16: "host", 17: "host", 18: "host", 19: "host",          # DONTDUMP DODUMP WIPEONFORK KEEPONFORK
    20: "host", 21: "host", 22: "host", 23: "host",          # COLD PAGEOUT POPULATE_READ/WRITE
    24: "host", 25: "host",                                  # DONTNEED_LOCKED COLLAPSE
    100: "eperm", 101: "eperm",                              # HWPOISON SOFT_OFFLINE
}

# futex(uaddr, op, val, arg4, uaddr2, val3) per operation (op & 127): the
# kinds of arg4, uaddr2 and val3 (uaddr is always a 4-byte word).
FUTEX: dict[int, str] = {
    0: "p:16 i i",      # FUTEX_WAIT: timeout
    1: "i i i",         # FUTEX_WAKE
    3: "i p:4 i",       # FUTEX_REQUEUE: val2, uaddr2
    4: "i p:4 i",       # FUTEX_CMP_REQUEUE
    5: "i p:4 i",       # FUTEX_WAKE_OP
    6: "p:16 i i",      # FUTEX_LOCK_PI: timeout
    7: "i i i",         # FUTEX_UNLOCK_PI
    8: "i i i",         # FUTEX_TRYLOCK_PI
    9: "p:16 i i",      # FUTEX_WAIT_BITSET
    10: "i i i",        # FUTEX_WAKE_BITSET
    11: "p:16 p:4 i",   # FUTEX_WAIT_REQUEUE_PI
    12: "i p:4 i",      # FUTEX_CMP_REQUEUE_PI
    13: "p:16 i i",     # FUTEX_LOCK_PI2
}

# Calls that may wait (for a descriptor, a child, another guest thread, a
# signal, time): they run outside the runtime lock (runtime/guestthreads.py;
# Syscalls.raw), so a futex wait never keeps out the thread that would wake
# it.  The rest are quick and keep the lock.  Those a signal interrupts
# are the WAIT_ tables below.
MAY_BLOCK = frozenset({
    0, 1, 2, 7, 16, 17, 18, 19, 20, 23, 24, 34, 35, 40, 42, 43, 44, 45, 46, 47,   # read ... recvmsg
    61, 65, 69, 70, 72, 73, 74, 75,             # wait4 semop msgsnd msgrcv fcntl flock fsync fdatasync
    128, 130, 202, 208, 220, 230, 232, 242, 243, 247,   # rt_sigtimedwait ... waitid
    257, 270, 271, 275, 276, 277, 281, 288, 295, 296, 299, 307,     # openat ... sendmmsg
    326, 327, 328, 437, 441, 449,               # copy_file_range ... futex_waitv
})

# Of those, the calls a signal interrupts (EINTR, or a restart under
# SA_RESTART), so one caught as the call starts must end it rather than be
# held until it returns (Syscalls.raw; Linux's signal(7), "Interruption of
# system calls").  The other MAY_BLOCK calls never wait for a signal's sake
# (a regular file's read, an open, fsync, FUTEX_WAKE, sched_yield) and run
# to the end first, as in Linux.
WAIT_ALWAYS = frozenset({
    7, 23, 34, 35, 42, 43, 65, 69, 70, 128, 130, 208, 220, 230,     # poll ... clock_nanosleep
    232, 242, 243, 270, 271, 275, 276, 281, 288, 441, 449,          # epoll_wait ... futex_waitv
})
# wait only when argument 0 is a descriptor that can keep them waiting (a
# pipe, socket, terminal or other character device; not a regular file, a
# directory or a block device): read, write and their vector and socket forms
WAIT_ON_FD = frozenset({0, 1, 17, 18, 19, 20, 40, 44, 45, 46, 47, 295, 296, 299, 307, 327, 328})
# wait unless a flag says not to: number -> (argument, flag): wait4 and
# waitid WNOHANG, flock LOCK_NB
WAIT_UNLESS_FLAG = {61: (2, 1), 247: (3, 1), 73: (1, 4)}
# wait for some commands only: number -> (argument, command mask, commands):
# fcntl F_SETLKW and F_OFD_SETLKW; futex's waits (WAIT, LOCK_PI,
# WAIT_BITSET, WAIT_REQUEUE_PI, LOCK_PI2; the mask drops PRIVATE and
# CLOCK_REALTIME)
WAIT_COMMANDS = {72: (1, 0xFFFFFFFF, frozenset({7, 38})), 202: (1, 0x7F, frozenset({0, 6, 9, 11, 13}))}

_KIND = re.compile(r"^(?:i|f|s|p(\d)(?:\*(\d+))?|p:(\d+)|l(\d))$")


def parse(spec: str) -> tuple[tuple[str, int, int], ...]:
    """``spec`` as (kind, length argument or -1, element size or fixed size)
    per argument; ValueError for a kind this module does not define."""
    out = []
    for kind in spec.split():
        m = _KIND.match(kind)
        if m is None:
            raise ValueError(f"unknown argument kind {kind!r}")
        if kind[0] == "l":
            out.append(("l", int(m.group(4)), 1))
        elif kind[0] != "p":
            out.append((kind, -1, 0))
        elif m.group(3) is not None:
            out.append(("p", -1, int(m.group(3))))
        else:
            out.append(("p", int(m.group(1)), int(m.group(2) or 1)))
    return tuple(out)


PARSED: dict[int, tuple[tuple[str, int, int], ...]] = {
    nr: parse(spec) for nr, (_, spec) in PASSTHROUGH.items() if spec is not None}

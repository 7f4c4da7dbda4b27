"""The guest's own view of /proc/self.

The guest and bttool are one host process, so the host's /proc/self
describes bttool: the Python executable, the host's mappings (the 1 TiB
reservation, Python, LLVM), bttool's own command line and auxiliary vector,
and through /proc/self/mem the whole host address space.  A program that
reads its own /proc entries (ld.so's $ORIGIN, `ps`, sanitizers, language
runtimes finding their own image) must see itself, and a hostile guest must
not reach bttool's memory.  Opening one of these paths (as /proc/self/X,
/proc/thread-self/X, /proc/N/X or /proc/N/task/M/X where N and M are this
process's pid or the tid of any of its threads, as Linux accepts them) gives:

* ``exe``: the guest's executable (readlink gives its path);
* ``maps``, ``auxv``, ``cmdline``, ``environ``: the guest's own, as a
  read-only snapshot taken at open (as a read of the real file would);
* ``mem``: a descriptor whose reads and writes at offset X reach guest
  address X only (through GuestMemory, which checks every address), EIO
  where nothing is mapped, as Linux answers;
* ``fd`` and ``fdinfo``: the host's directories without bttool's own
  descriptors (runtime/hostfds.py): a listing leaves them out, and their
  entries (``/proc/self/fd/N``) do not exist, as for a descriptor the guest
  never opened;
* anything else under our own /proc directory is the host's file.

Another process's ``mem`` (a forked guest's, which is another bttool
process, or any other) is EACCES, as Linux answers when ptrace access is
refused (bttool's ``ptrace`` is Yama's ptrace_scope 3): through it a guest
would reach that process's host memory.  The rest of another process's
/proc is the host's (README, "The sandbox").
"""
from __future__ import annotations

import dataclasses
import errno
import os
import re
import struct
from typing import TYPE_CHECKING

from bttool.runtime import hostfds
from bttool.runtime.memory import PROT_EXEC, PROT_READ, PROT_WRITE, GuestMemoryError, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from bttool.runtime.linux import LinuxProcess

_SNAPSHOTS = ("maps", "auxv", "cmdline", "environ")
_SERVED = ("exe", "mem") + _SNAPSHOTS
_MAX_IO = 1 << 20        # bytes one read or write of /proc/self/mem moves (short counts are fine)
O_ACCMODE, O_CLOEXEC, O_DIRECTORY = 3, 0o2000000, 0o200000


def in_this_process(n: int) -> bool:
    """Whether ``n`` is this process's pid or the tid of one of its threads
    (guest threads are host threads of this process, with their own tids,
    and Linux serves /proc/TID/... and /proc/PID/task/TID/... for each)."""
    return n == os.getpid() or (n > 0 and os.path.isdir(f"/proc/self/task/{n}"))


def _proc_entry(path: bytes, rest: str) -> tuple[bool, re.Match] | None:
    """(whether it is this process's, the match) when ``path`` is
    /proc/{self,thread-self,N}[/task/M]/ followed by ``rest`` (a regex)."""
    p = os.path.normpath(path.decode("utf-8", "surrogateescape"))
    m = re.fullmatch(r"/proc/(self|thread-self|\d+)(?:/task/(\d+))?/" + rest, p)
    if m is None:
        return None
    who, task = m.group(1), m.group(2)
    ours = (who in ("self", "thread-self") or in_this_process(int(who))) \
        and (task is None or in_this_process(int(task)))
    return ours, m


def own_entry(path: bytes) -> str | None:
    """The entry name when ``path`` names this process's /proc/.../NAME
    (NAME of a single component), else None."""
    e = _proc_entry(path, r"([^/]+)")
    return e[1].group(3) if e is not None and e[0] else None


def own_descriptor_entry(path: bytes) -> int | None:
    """N when ``path`` names this process's /proc/.../fd/N or fdinfo/N."""
    e = _proc_entry(path, r"fd(?:info)?/(\d+)")
    return int(e[1].group(3)) if e is not None and e[0] else None


def foreign_memory(path: bytes) -> bool:
    """Whether ``path`` names another process's (or thread's) /proc/.../mem."""
    e = _proc_entry(path, "mem")
    return e is not None and not e[0]


class ProcView:
    """Serves the guest's own /proc entries and its /proc/self/mem descriptors."""

    def __init__(self, proc: "LinuxProcess") -> None:
        self.proc = proc
        self.mem_fds: set[int] = set()       # descriptors that read guest memory
        self.offsets: dict[int, int] = {}    # their file positions

    # -- paths ------------------------------------------------------------------
    def readlink(self, path: bytes) -> bytes | None:
        if own_entry(path) == "exe":
            return os.fsencode(os.path.abspath(self.proc.exe_path))
        return None

    def serves(self, path: bytes) -> bool:
        """Whether opening ``path`` is answered here, not by the host."""
        return self.hides(path) or foreign_memory(path) or own_entry(path) in _SERVED

    def hides(self, path: bytes) -> bool:
        """Whether ``path`` is the /proc entry of one of bttool's own
        descriptors, which for the guest does not exist (ENOENT)."""
        if not path.startswith(b"/proc/"):
            return False
        n = own_descriptor_entry(path)
        return n is not None and hostfds.is_own(n)

    def filter_listing(self, fd: int, buf: int, n: int, name_at: int = 19) -> int:
        """After getdents64 on ``fd`` put ``n`` bytes of linux_dirent64
        records at guest ``buf`` (``name_at`` 19; the old getdents's
        linux_dirent: 18): when ``fd`` is our fd/ or fdinfo/ directory,
        bttool's descriptors are taken out of the records (the others close
        up); returns the new length."""
        try:
            where = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return n
        e = _proc_entry(os.fsencode(where), r"fd(?:info)?")
        if e is None or not e[0]:
            return n
        data, kept, off = self.proc.memory.read(buf, n), [], 0
        while off + name_at <= n:
            reclen = struct.unpack_from("<H", data, off + 16)[0]
            if reclen == 0:
                break
            name = data[off + name_at:off + reclen].split(b"\0", 1)[0]
            if not (name.isdigit() and hostfds.is_own(int(name))):
                kept.append(data[off:off + reclen])
            off += reclen
        out = b"".join(kept)
        if len(out) != n:
            self.proc.memory.write(buf, out)
        return len(out)

    def open(self, path: bytes, flags: int) -> int | None:
        """A descriptor (or -errno) for one of our own entries; None: not ours."""
        if self.hides(path):
            return -errno.ENOENT
        if foreign_memory(path):
            return -errno.EACCES
        name = own_entry(path)
        if name is None:
            return None
        cloexec = os.O_CLOEXEC if flags & O_CLOEXEC else 0
        if name == "exe":
            try:
                return os.open(self.proc.exe_path, os.O_RDONLY | cloexec)
            except OSError as e:
                return -(e.errno or errno.EACCES)
        if name in _SNAPSHOTS:
            if flags & O_ACCMODE != os.O_RDONLY:
                return -errno.EACCES
            return self._snapshot(name, getattr(self, "_" + name)(), cloexec)
        if name == "mem":
            fd = self._snapshot("mem", b"", cloexec)
            self.mem_fds.add(fd)
            self.offsets[fd] = 0
            return fd
        return None

    def _snapshot(self, name: str, data: bytes, cloexec: int) -> int:
        fd = os.memfd_create(name, os.MFD_CLOEXEC if cloexec else 0)
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    # -- contents ---------------------------------------------------------------
    def _maps(self) -> bytes:
        """The guest's mappings as Linux lists them: each file's path,
        device, inode and offset; neighbours that Linux would have merged
        into one area (the heap grown by brk, adjacent anonymous maps,
        consecutive pages of one file) as one line."""
        mem = self.proc.memory
        merged: list[Mapping] = []
        for m in mem.mappings():
            if m.name == "[stack]":     # as far as Linux would have grown it
                m = dataclasses.replace(m, start=mem.stack_low(m))
            prev = merged[-1] if merged else None
            if prev is not None and _continues(prev, m):
                merged[-1] = dataclasses.replace(prev, end=m.end)
            else:
                merged.append(m)
        return "".join(_maps_line(m) for m in merged).encode()

    def _auxv(self) -> bytes:
        return self.proc.auxv_bytes

    def _cmdline(self) -> bytes:
        return b"".join(a + b"\0" for a in self.proc.argv)

    def _environ(self) -> bytes:
        return b"".join(e + b"\0" for e in self.proc.envp)

    # -- /proc/self/mem descriptors -------------------------------------------
    def closed(self, fd: int) -> None:
        self.mem_fds.discard(fd)
        self.offsets.pop(fd, None)

    def pread(self, fd: int, buf: int, count: int, offset: int) -> int:
        if offset >= 1 << 63 or count >= 1 << 63:
            return -errno.EINVAL                        # a negative off_t or size
        count = min(count, _MAX_IO)
        mem = self.proc.memory
        if not mem.mapped(buf, count) or not mem.mapped(offset, count):
            return -errno.EIO if mem.mapped(buf, count) else -errno.EFAULT
        try:
            data = mem.read(offset, count)
        except (GuestMemoryError, OverflowError, ValueError):
            return -errno.EIO
        mem.write(buf, data)
        return len(data)

    def pwrite(self, fd: int, buf: int, count: int, offset: int) -> int:
        if offset >= 1 << 63 or count >= 1 << 63:
            return -errno.EINVAL
        count = min(count, _MAX_IO)
        mem = self.proc.memory
        data = mem.read(buf, count)
        if not mem.mapped(offset, count):
            return -errno.EIO
        try:
            mem.write_force(offset, data)       # as ptrace would: ignores protection
        except (GuestMemoryError, OverflowError, ValueError):
            return -errno.EIO
        self.proc.code_changed(offset, count)            # code written this way runs anew
        return len(data)

    def read(self, fd: int, buf: int, count: int) -> int:
        n = self.pread(fd, buf, count, self.offsets[fd])
        if n > 0:
            self.offsets[fd] += n
        return n

    def write(self, fd: int, buf: int, count: int) -> int:
        n = self.pwrite(fd, buf, count, self.offsets[fd])
        if n > 0:
            self.offsets[fd] += n
        return n

    def lseek(self, fd: int, offset: int, whence: int) -> int:
        if whence == os.SEEK_SET:
            new = offset
        elif whence == os.SEEK_CUR:
            new = self.offsets[fd] + offset
        else:
            return -errno.EINVAL
        new &= (1 << 64) - 1            # Linux's mem_lseek takes any position
        self.offsets[fd] = new
        return new


def _shown_name(m: Mapping) -> str:
    """What /proc/self/maps names a mapping by: its file, or [heap] and
    [stack], or nothing (bttool's own names for anonymous memory)."""
    if m.source is not None:
        return m.source.path
    return m.name if m.name.startswith("[") else ""


def _continues(prev: Mapping, m: Mapping) -> bool:
    """Whether Linux would keep ``m`` in the same area as ``prev``."""
    return (prev.end == m.start and prev.prot == m.prot and prev.shared == m.shared
            and prev.source == m.source and _shown_name(prev) == _shown_name(m)
            and (m.source is None or prev.offset + (prev.end - prev.start) == m.offset
                 and prev.was_writable == m.was_writable))


def _maps_line(m: Mapping) -> str:
    perms = (("r" if m.prot & PROT_READ else "-") + ("w" if m.prot & PROT_WRITE else "-")
             + ("x" if m.prot & PROT_EXEC else "-") + ("s" if m.shared else "p"))
    src = m.source
    dev, inode, offset = (src.dev, src.inode, m.offset) if src is not None else (0, 0, 0)
    head = f"{m.start:08x}-{m.end:08x} {perms} {offset:08x} {os.major(dev):02x}:{os.minor(dev):02x} {inode} "
    name = _shown_name(m)
    return (head.ljust(72) + " " + name if name else head) + "\n"

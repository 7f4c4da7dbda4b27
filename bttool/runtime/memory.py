"""The guest address space: one reserved host region and what is mapped in it.

The guest window and its guard ranges (runtime/window.py) are reserved once
(PROT_NONE, no swap reservation).  Guest mappings are host mappings placed at
``base + guest_address`` with MAP_FIXED inside that reservation, below
the window's end; unmapping puts PROT_NONE back, so the reservation is never given
up and generated code (which clamps addresses into it, see ir/memory.py)
cannot reach anything else.  Pointers a system call receives are translated
here, with their length checked against the window; the host kernel then
reports EFAULT for unmapped guest pages exactly as Linux would for the guest.
"""
from __future__ import annotations

import bisect
import ctypes
import errno
import os
import resource
from dataclasses import dataclass
from typing import Callable

from bttool.runtime.window import LOW, RESERVE_BELOW, RESERVE_SIZE, Window

PAGE = 4096
PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = 0, 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
MAP_NORESERVE, MAP_FIXED_NOREPLACE, MAP_POPULATE = 0x4000, 0x100000, 0x8000
MAP_GROWSDOWN, MAP_STACK = 0x0100, 0x20000

# Guest layout: offsets from the window's low end (all inside the window).
# As in Linux, the stack is at the top and mmap allocations grow down from
# below it, so an image at the window's bottom (where a program linked
# above the usual window gets its window: runtime/window.py) lies below both.
MMAP_TOP = 0x7F_0000_0000           # mmap allocations grow down from here
STACK_TOP = 0xFF_7FFF_0000          # just below the window's end (MAP_LIMIT)
STACK_SIZE = 8 << 20                # the stack when RLIMIT_STACK cannot be had
# The most stack a guest gets (RLIMIT_STACK unlimited or larger): far below
# the room between MMAP_TOP and STACK_TOP, mapped without swap reservation.
STACK_MAX = 64 << 30
PIE_BASE = 0x5_5555_4000            # where a static-PIE image is placed
# BTTOOL_PIE_BASE (hex or decimal, page aligned) moves it: a testing knob that
# shows position-independent translations hit the cache at any load base.
if os.environ.get("BTTOOL_PIE_BASE"):
    PIE_BASE = int(os.environ["BTTOOL_PIE_BASE"], 0) & ~0xFFF
MIN_MMAP_ADDR = 0x10000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
# What Linux maps of a new process's stack below its arguments
# (setup_arg_pages' stack_expand); the stack grows from there as it is touched.
STACK_EXPAND = 128 << 10
# Pages mincore looks at in one call (stack_low)
_MINCORE_CHUNK = 1 << 18
_MAP_FAILED = ctypes.c_void_p(-1).value


class GuestMemoryError(OSError):
    """A guest memory operation failed; ``errno`` is what the guest sees."""


def stack_size() -> int:
    """How far the guest's stack may reach below STACK_TOP: RLIMIT_STACK,
    as the kernel lets the stack grow down to the soft limit (at least a
    page; STACK_MAX when unlimited or larger).  The whole range is mapped
    at once, without swap reservation, so pages cost only when touched."""
    soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
    if soft == resource.RLIM_INFINITY or soft > STACK_MAX:
        return STACK_MAX
    return max(PAGE, page_up(soft))


def page_down(x: int) -> int:
    return x & ~(PAGE - 1)


def page_up(x: int) -> int:
    return (x + PAGE - 1) & ~(PAGE - 1)


def _vm_size() -> int:
    """Bytes of address space this process uses now (VmSize), 0 if unknown."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _reservation_error(err: int) -> Exception | None:
    """The one-line error for a guest window that RLIMIT_AS (ulimit -v)
    leaves no room for: the window (runtime/window.py) is a fixed layout that
    translated code relies on, so it cannot shrink to fit; the message names
    the limit and what to raise it to.  None for any other failure."""
    from bttool.errors import BttoolError
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if err != errno.ENOMEM or soft == resource.RLIM_INFINITY:
        return None
    need_kib = -(-(RESERVE_SIZE + _vm_size() + (1 << 30)) // (1 << 30)) << 20
    return BttoolError(f"the guest address space needs {RESERVE_SIZE >> 30} GiB of virtual memory "
                       f"(reserved, not committed), more than RLIMIT_AS allows ({soft >> 10} KiB): "
                       f"raise it to at least {need_kib} KiB (ulimit -v {need_kib}) or unlimited")


@dataclass
class Mapping:
    start: int
    end: int
    prot: int
    name: str = ""
    shared: bool = False
    # a MAP_SHARED mapping of a file (memfd included): its (st_dev, st_ino)
    # and the file offset at ``start``; other mappings of the same file
    # pages are aliases of it (runtime/codepages.py)
    file: tuple[int, int] | None = None
    offset: int = 0
    # the file it maps or was loaded from, as /proc/self/maps names it
    # (offset above is its file offset then)
    source: "MappedFile | None" = None
    # ever writable: Linux keeps such a private file area apart from a
    # neighbour that never was (RELRO beside read-only data)
    was_writable: bool = False

    def file_page(self, addr: int) -> tuple[tuple[int, int], int] | None:
        """(file, offset in it) of ``addr`` in a shared file mapping, else None."""
        return None if self.file is None else (self.file, self.offset + (addr - self.start))

    def piece(self, start: int, end: int, prot: int | None = None) -> "Mapping":
        """The part [start, end) of this mapping (its file offset kept)."""
        prot = self.prot if prot is None else prot
        return Mapping(start, end, prot, self.name, self.shared, self.file, self.offset + (start - self.start),
                       self.source, self.was_writable or bool(prot & PROT_WRITE))


@dataclass(frozen=True)
class MappedFile:
    """A file behind guest memory: its device, inode and the path the
    guest knows it by."""
    dev: int
    inode: int
    path: str

    @staticmethod
    def of_descriptor(fd: int) -> "MappedFile | None":
        """The file open on host descriptor ``fd`` (None if it cannot be
        told)."""
        from bttool.runtime import sysroot
        try:
            st = os.fstat(fd)
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
        return MappedFile(st.st_dev, st.st_ino, sysroot.guest_path(path))


class GuestMemory:
    """Guest address space for one guest (see module docstring)."""

    def __init__(self, window: Window = LOW) -> None:
        """``window``: which guest addresses it holds (runtime/window.py)."""
        self.window = window
        start = _libc.mmap(None, RESERVE_SIZE, PROT_NONE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        if start in (None, _MAP_FAILED):
            err = ctypes.get_errno()
            raise _reservation_error(err) or GuestMemoryError(err, "cannot reserve the guest address space")
        self.reservation: tuple[int, int] = (start, start + RESERVE_SIZE)
        # the host address of guest 0 (of the window's low end, less low)
        self.base: int = start + RESERVE_BELOW - window.low
        # the memory argument of translated code (see runtime/window.py)
        self.arg_base: int = self.base - window.clamp.bias
        # where the stack ends and mmap allocations start, top down
        self.stack_top = window.low + STACK_TOP
        self.mmap_top = window.low + MMAP_TOP
        self._starts: list[int] = []
        self._maps: list[Mapping] = []
        self.brk_start = 0
        self.brk_cur = 0
        # the stack's lowest address as Linux has it at exec (page_down of
        # the initial rsp less STACK_EXPAND), set by process.build_stack
        self.stack_start = 0
        # told of every write bttool makes on the guest's behalf, before it
        # (runtime/codepages.py: a page of translated code must be released)
        self.before_write: Callable[[int, int], None] | None = None

    # -- bookkeeping -------------------------------------------------------
    def mappings(self) -> list[Mapping]:
        return list(self._maps)

    def _remove_range(self, start: int, end: int) -> None:
        out: list[Mapping] = []
        for m in self._maps:
            if m.end <= start or m.start >= end:
                out.append(m)
                continue
            if m.start < start:
                out.append(m.piece(m.start, start))
            if m.end > end:
                out.append(m.piece(end, m.end))
        self._set(out)

    def _set(self, maps: list[Mapping]) -> None:
        maps.sort(key=lambda m: m.start)
        self._maps = maps
        self._starts = [m.start for m in maps]

    def _add(self, start: int, end: int, prot: int, name: str, shared: bool = False,
             file: tuple[int, int] | None = None, offset: int = 0,
             source: MappedFile | None = None) -> None:
        self._remove_range(start, end)
        self._maps.append(Mapping(start, end, prot, name, shared, file, offset, source, bool(prot & PROT_WRITE)))
        self._set(self._maps)

    def find(self, addr: int) -> Mapping | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and self._maps[i].start <= addr < self._maps[i].end:
            return self._maps[i]
        return None

    def is_free(self, start: int, end: int) -> bool:
        i = bisect.bisect_left(self._starts, end) - 1
        return not (i >= 0 and self._maps[i].end > start)

    def stack_low(self, m: Mapping) -> int:
        """Where the ``[stack]`` mapping ``m`` (mapped whole to RLIMIT_STACK
        at start: process._map_stack) begins as Linux would show it: the
        lowest page the guest has touched (resident, mincore), or the
        initial extent when it has touched nothing below it."""
        low = max(m.start, min(self.stack_start or m.start, m.end))
        pos = m.start
        while pos < low:
            n = min(_MINCORE_CHUNK, (low - pos) // PAGE)
            vec = ctypes.create_string_buffer(n)
            if _libc.mincore(self.base + pos, n * PAGE, vec) != 0:
                return low
            raw = vec.raw
            rest = raw.lstrip(b"\0")
            if rest:
                return pos + (n - len(rest)) * PAGE
            pos += n * PAGE
        return low

    def usage(self) -> tuple[int, int]:
        """The guest's (total_vm, data_vm) in bytes as Linux counts them:
        every mapping (the stack as far as stack_low), and the private
        writable ones that are not the stack."""
        total = data = 0
        for m in self._maps:
            if m.name == "[stack]":
                total += m.end - self.stack_low(m)
                continue
            total += m.end - m.start
            if m.prot & PROT_WRITE and not m.shared:
                data += m.end - m.start
        return total, data

    def usage_in(self, start: int, end: int) -> tuple[int, int]:
        """(total, data) bytes of the guest's mappings within [start, end)
        (what a MAP_FIXED mapping there replaces)."""
        total = data = 0
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        for m in self._maps[i:]:
            if m.start >= end:
                break
            n = min(m.end, end) - max(m.start, start)
            if n <= 0:
                continue
            total += n
            if m.prot & PROT_WRITE and not m.shared and m.name != "[stack]":
                data += n
        return total, data

    # -- host operations ----------------------------------------------------
    def _check_range(self, start: int, length: int) -> None:
        if start % PAGE or length <= 0 or start < 0:
            raise GuestMemoryError(errno.EINVAL, "bad guest range")
        if not self.window.holds(start, length):
            raise GuestMemoryError(errno.ENOMEM, "guest range outside the window")

    @staticmethod
    def host_prot(prot: int) -> int:
        # Guest code is never executed by the host; exec means readable for
        # the translator.
        p = prot & (PROT_READ | PROT_WRITE)
        if prot & PROT_EXEC:
            p |= PROT_READ
        return p

    def map(self, start: int, length: int, prot: int, name: str = "",
            fd: int = -1, offset: int = 0, shared: bool = False, noreserve: bool = False,
            source: MappedFile | None = None) -> int:
        """Map [start, start+length) (page aligned) in the guest, MAP_FIXED
        (``noreserve``: without swap reservation, MAP_NORESERVE);
        ``source``: the file /proc/self/maps names, at ``offset``."""
        length = page_up(length)
        self._check_range(start, length)
        flags = MAP_FIXED | (MAP_SHARED if shared else MAP_PRIVATE) | (MAP_NORESERVE if noreserve else 0)
        if fd < 0:
            flags |= MAP_ANONYMOUS
        r = _libc.mmap(self.base + start, length, self.host_prot(prot), flags, fd, offset)
        if r in (None, _MAP_FAILED):
            raise GuestMemoryError(ctypes.get_errno(), "mmap failed")
        file = None
        if shared and fd >= 0:
            st = os.fstat(fd)
            file = (st.st_dev, st.st_ino)
        self._add(start, start + length, prot, name, shared, file, offset, source)
        return start

    def map_filled(self, start: int, length: int, data: bytes, at: int, prot: int, name: str = "",
                   source: MappedFile | None = None, offset: int = 0) -> None:
        """Map [start, start+length) (page aligned) private, holding the
        bytes of ``data`` from ``at`` on and zeros after its end (an
        image's file pages, copied in without an intermediate copy;
        ``source`` and ``offset`` as for ``map``).  The host pages come in
        one call (MAP_POPULATE) instead of a page fault each: busybox's
        image took a thousand at every exec."""
        length = page_up(length)
        self._check_range(start, length)
        r = _libc.mmap(self.base + start, length, PROT_READ | PROT_WRITE,
                       MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0)
        if r in (None, _MAP_FAILED):
            raise GuestMemoryError(ctypes.get_errno(), "mmap failed")
        n = max(0, min(len(data) - at, length))
        ctypes.memmove(self.base + start, ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value + at, n)
        if self.host_prot(prot) != PROT_READ | PROT_WRITE:
            _libc.mprotect(self.base + start, length, self.host_prot(prot))
        self._add(start, start + length, prot, name, False, None, offset, source)

    def aliases(self, page: int) -> list[tuple[int, Mapping]]:
        """The other guest pages that map the same file page as ``page``,
        each with its mapping (MAP_SHARED mappings of one file or memfd: a
        JIT's writable view of its executable code)."""
        m = self.find(page)
        key = m.file_page(page) if m is not None else None
        if key is None:
            return []
        file, at = key
        out = []
        for o in self._maps:
            if o.file == file and o.offset <= at < o.offset + (o.end - o.start):
                alias = o.start + (at - o.offset)
                if alias != page:
                    out.append((alias, o))
        return out

    def unmap(self, start: int, length: int) -> None:
        length = page_up(length)
        self._check_range(start, length)
        r = _libc.mmap(self.base + start, length, PROT_NONE,
                       MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        if r in (None, _MAP_FAILED):
            raise GuestMemoryError(ctypes.get_errno(), "munmap failed")
        self._remove_range(start, start + length)

    def protect(self, start: int, length: int, prot: int) -> None:
        length = page_up(length)
        self._check_range(start, length)
        pos = start
        end = start + length
        while pos < end:
            m = self.find(pos)
            if m is None:
                raise GuestMemoryError(errno.ENOMEM, "mprotect of unmapped memory")
            pos = m.end
        if _libc.mprotect(self.base + start, length, self.host_prot(prot)) != 0:
            raise GuestMemoryError(ctypes.get_errno(), "mprotect failed")
        pieces = []
        for m in self._maps:
            if m.end > start and m.start < end:
                pieces.append(m.piece(max(m.start, start), min(m.end, end), prot))
        self._remove_range(start, end)
        self._set(self._maps + pieces)

    def find_free(self, length: int, hint: int = 0) -> int:
        """A free, page-aligned range of ``length`` bytes (top-down)."""
        length = page_up(length)
        low = self.window.low + MIN_MMAP_ADDR
        if hint and hint >= low and self.window.holds(hint, length) \
                and self.is_free(page_down(hint), page_down(hint) + length):
            return page_down(hint)
        top = self.mmap_top
        for m in reversed(self._maps):
            if m.start >= top:
                continue
            if m.end <= top - length:
                return top - length
            top = m.start
        if top - length >= low:
            return top - length
        raise GuestMemoryError(errno.ENOMEM, "guest address space exhausted")

    # -- access from the runtime ------------------------------------------------
    def guest_address(self, host_addr: int) -> int | None:
        """The guest address a host fault address in the reservation stands
        for (the guards below base wrap, as the address computation did), or
        None when it is outside the reservation."""
        lo, hi = self.reservation
        if not lo <= host_addr < hi:
            return None
        return (host_addr - self.base) & 0xFFFFFFFFFFFFFFFF

    def host(self, addr: int, length: int = 0) -> int:
        """Host address of a guest pointer; EFAULT outside the window."""
        if not self.window.holds(addr, max(length, 1)):
            raise GuestMemoryError(errno.EFAULT, "pointer outside the guest")
        return self.base + addr

    def _covered(self, addr: int, length: int, prot: int) -> bool:
        """Whether every byte of [addr, addr+length) is mapped with one of
        the ``prot`` bits (with any protection when ``prot`` is 0)."""
        pos = addr
        while pos < addr + length:
            m = self.find(pos)
            if m is None or prot and not m.prot & prot:
                return False
            pos = m.end
        return True

    def readable(self, addr: int, length: int) -> bool:
        return self._covered(addr, length, PROT_READ | PROT_EXEC)

    def executable(self, addr: int, length: int) -> bool:
        return self._covered(addr, length, PROT_EXEC)

    def read(self, addr: int, length: int) -> bytes:
        if not self.readable(addr, length):
            raise GuestMemoryError(errno.EFAULT, "read of unmapped guest memory")
        return ctypes.string_at(self.host(addr, length), length)

    def mapped(self, addr: int, length: int) -> bool:
        """Whether every byte of [addr, addr+length) is mapped (any protection)."""
        return self._covered(addr, length, 0)

    def write(self, addr: int, data: bytes) -> None:
        """Write as the kernel writes a system call's results: EFAULT unless
        every byte is mapped writable (a read-only page would otherwise fault
        in bttool itself)."""
        pos = addr
        while pos < addr + len(data):
            m = self.find(pos)
            if m is None or not m.prot & PROT_WRITE:
                raise GuestMemoryError(errno.EFAULT, "write to unmapped or read-only guest memory")
            pos = m.end
        if self.before_write is not None:
            self.before_write(addr, len(data))
        ctypes.memmove(self.host(addr, len(data)), data, len(data))

    def write_force(self, addr: int, data: bytes) -> None:
        """Write during image loading, ignoring the guest protection."""
        host = self.host(addr, len(data))
        start, end = page_down(addr), page_up(addr + len(data))
        _libc.mprotect(self.base + start, end - start, PROT_READ | PROT_WRITE)
        ctypes.memmove(host, data, len(data))
        pos = start
        while pos < end:
            m = self.find(pos)
            nxt = min(m.end, end) if m else pos + PAGE
            if m:
                _libc.mprotect(self.base + pos, nxt - pos, self.host_prot(m.prot))
            pos = nxt

    def read_code(self, addr: int, length: int) -> bytes:
        """Up to ``length`` bytes of executable guest memory at ``addr``
        (short at the end of an executable mapping; empty if none)."""
        out = b""
        pos = addr
        while len(out) < length:
            m = self.find(pos)
            if m is None or not (m.prot & PROT_EXEC):
                break
            n = min(m.end - pos, length - len(out))
            out += ctypes.string_at(self.base + pos, n)
            pos += n
        return out

    def read_cstring(self, addr: int, limit: int = 1 << 20) -> bytes:
        out = bytearray()
        while len(out) < limit:
            m = self.find(addr + len(out))
            if m is None or not m.prot & (PROT_READ | PROT_EXEC):
                raise GuestMemoryError(errno.EFAULT, "string in unmapped memory")
            chunk = ctypes.string_at(self.base + addr + len(out), min(m.end - addr - len(out), 4096))
            i = chunk.find(b"\0")
            if i >= 0:
                out += chunk[:i]
                return bytes(out)
            out += chunk
        raise GuestMemoryError(errno.ENAMETOOLONG, "string too long")

    def u64(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 8), "little")

    def close(self) -> None:
        _libc.munmap(self.reservation[0], RESERVE_SIZE)


"""Host addresses for guest accesses that one TLB entry cannot serve.

Translated code makes every guest access as one host load or store at
``ram.base + offset`` (ir/memory.py).  Two kinds of access have no such
offset in RAM: one that spans two virtual pages whose frames are not
physically adjacent, and one that touches guest-physical addresses beyond
RAM.  On a PC the first reads and writes each part in its own frame, and
the second reads all ones while its writes go nowhere.

An access window is two host pages, inside the guest reservation past the
physical window, at which the runtime maps the frames such an access
touches side by side: a RAM frame is a second mapping of the same memfd
page (so reads and writes reach RAM itself, atomics included), a frame
beyond RAM is a private page filled with 0xFF just before the access (what
the access writes there is thrown away with it).  bt_mmu_fill returns the
window's offset; no TLB entry ever points at a window, so every such
access comes back through bt_mmu_fill and gets a freshly prepared one.

Translated code uses the pointer of one bt_mmu_fill before it asks for
the next (emitter: pointer, then the load, store or atomic); the windows
are still used round robin, several of them, so that a pointer is never
remapped while it could be in use.
"""
from __future__ import annotations

import ctypes

from bttool.runtime.memory import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
    _libc,
)

PAGE = 4096
WINDOWS = 8
VOID = -1                       # a frame beyond RAM: reads all ones, writes are discarded


class AccessWindows:
    """WINDOWS two-page windows at ``base + offset`` (see the module
    docstring); RAM is the memfd ``fd`` of ``ram_size`` bytes."""

    def __init__(self, base: int, offset: int, fd: int, ram_size: int) -> None:
        self.base = base
        self.offset = offset
        self.fd = fd
        self.ram_size = ram_size
        self._frames: list[list[int | None]] = [[None, None] for _ in range(WINDOWS)]
        self._next = 0

    def place(self, paddr: int, second_frame: int | None) -> int:
        """Offset from ``base`` at which an access starting at physical
        ``paddr`` (and continuing, when ``second_frame`` is given, at the
        start of that physical frame) reads and writes as on a PC."""
        want = [self._frame(paddr), None if second_frame is None else self._frame(second_frame)]
        if VOID not in want:
            for i, frames in enumerate(self._frames):
                if frames[0] == want[0] and (want[1] is None or frames[1] == want[1]):
                    return self._window(i) + (paddr & (PAGE - 1))
        i = self._next
        self._next = (i + 1) % WINDOWS
        for slot, frame in enumerate(want):
            if frame is not None:
                self._map(i, slot, frame)
        return self._window(i) + (paddr & (PAGE - 1))

    def _frame(self, paddr: int) -> int:
        frame = paddr & ~(PAGE - 1)
        return frame if frame + PAGE <= self.ram_size else VOID

    def _window(self, i: int) -> int:
        return self.offset + 2 * PAGE * i

    def _map(self, i: int, slot: int, frame: int) -> None:
        addr = self.base + self._window(i) + slot * PAGE
        if frame == VOID:
            if self._frames[i][slot] != VOID:
                self._mmap(addr, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            ctypes.memset(addr, 0xFF, PAGE)
        elif self._frames[i][slot] != frame:
            self._mmap(addr, MAP_SHARED, self.fd, frame)
        self._frames[i][slot] = frame

    @staticmethod
    def _mmap(addr: int, flags: int, fd: int, offset: int) -> None:
        got = _libc.mmap(addr, PAGE, PROT_READ | PROT_WRITE, flags | MAP_FIXED, fd, offset)
        if got != addr:
            raise OSError(ctypes.get_errno(), "cannot map a guest access window")

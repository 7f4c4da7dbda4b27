"""Guest pages that hold translated code and that the guest may write:
the host maps them read-only, so a store into translated code faults and
the runtime drops the stale translations before the guest runs the new
bytes (self-modifying and generated code).

A page is watched when code on it is translated and its guest mapping is
writable; code in read-only or execute-only pages (every program's text)
costs nothing.  The watch ends when the page is written (by the guest's
store, which then runs: runtime/linux.py, by bttool itself on the guest's
behalf, or by a system call, which would otherwise get EFAULT), unmapped,
remapped or made read-only.  Not covered: a write through a second mapping
of the same file or memfd.
"""
from __future__ import annotations

import ctypes
from typing import Callable

from bttool.runtime.memory import PAGE, PROT_WRITE, GuestMemory

_libc = ctypes.CDLL(None, use_errno=True)
_PROT_READ = 1


class CodePages:
    """The watched pages of one guest (page addresses)."""

    def __init__(self, memory: GuestMemory, changed: Callable[[int, int], None]) -> None:
        """``changed(addr, length)``: guest code there changed (translations go)."""
        self.memory = memory
        self.changed = changed
        self.pages: set[int] = set()

    def watch(self, ranges: list[tuple[int, int]]) -> None:
        """Code in ``ranges`` was translated: watch its writable pages."""
        mem = self.memory
        for start, end in ranges:
            page = start & ~(PAGE - 1)
            while page < end:
                if page not in self.pages:
                    m = mem.find(page)
                    if m is not None and m.prot & PROT_WRITE:
                        self._host_protect(page, _PROT_READ)
                        self.pages.add(page)
                page += PAGE

    def _host_protect(self, page: int, prot: int) -> None:
        _libc.mprotect(ctypes.c_void_p(self.memory.base + page), PAGE, prot)

    def watched(self, addr: int) -> bool:
        return addr & ~(PAGE - 1) in self.pages

    def release(self, addr: int, length: int) -> None:
        """[addr, addr+length) is about to be written: its watched pages
        become writable again and their translations go."""
        if not self.pages or length <= 0:
            return
        page = addr & ~(PAGE - 1)
        while page < addr + length:
            if page in self.pages:
                self.pages.discard(page)
                m = self.memory.find(page)
                self._host_protect(page, self.memory.host_prot(m.prot) if m is not None else 0)
                self.changed(page, PAGE)
            page += PAGE

    def reprotect(self, addr: int, length: int) -> None:
        """The guest changed the protection of [addr, addr+length): watched
        pages there that stay writable are read-only on the host again, the
        others are no longer watched."""
        for page in [p for p in self.pages if addr <= p < addr + length]:
            m = self.memory.find(page)
            if m is not None and m.prot & PROT_WRITE:
                self._host_protect(page, _PROT_READ)
            else:
                self.pages.discard(page)

    def forget(self, addr: int, length: int) -> None:
        """The mapping of [addr, addr+length) changed (unmapped, remapped,
        protected anew): its pages are not watched any more (the new host
        protection stands; translations there went with the change)."""
        if self.pages:
            end = addr + length
            self.pages = {p for p in self.pages if not addr <= p < end}

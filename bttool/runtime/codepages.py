"""Guest pages that hold translated code and that the guest may write:
the host maps them read-only, so a store into translated code faults and
the runtime drops the stale translations before the guest runs the new
bytes (self-modifying and generated code).

A page is watched when code on it is translated and its guest mapping is
writable; code in read-only or execute-only pages (every program's text)
costs nothing.  A page of a MAP_SHARED file or memfd mapping has
*aliases*: other guest pages mapping the same file page (a JIT that writes
its code through a writable view and runs it through an executable one).
Each writable alias is watched too, now and when it is mapped later, and a
store there drops the translations of the code page it aliases.  The watch
ends when the page is written (by the guest's store, which then runs:
runtime/linux.py, by bttool itself on the guest's behalf, or by a system
call, which would otherwise get EFAULT), unmapped, remapped or made
read-only.  Not covered: a write by another process to a file or memory
shared with the guest.
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
        # watched page -> the pages of translated code a store there changes
        # (the page itself, or the code pages it is an alias of)
        self.pages: dict[int, set[int]] = {}
        # (file, file offset) of code pages in shared file mappings -> those
        # pages: a later mapping of the same file page is an alias to watch
        self._shared_code: dict[tuple[tuple[int, int], int], set[int]] = {}

    def watch(self, ranges: list[tuple[int, int]]) -> None:
        """Code in ``ranges`` was translated: watch its writable pages and
        the writable aliases of its pages."""
        mem = self.memory
        pages = {page for start, end in ranges for page in range(start & ~(PAGE - 1), end, PAGE)}
        for page in sorted(pages):
            m = mem.find(page)
            if m is not None:
                if m.prot & PROT_WRITE:
                    self._watch(page, page)
                key = m.file_page(page)
                if key is not None:
                    self._shared_code.setdefault(key, set()).add(page)
                    for alias, a in mem.aliases(page):
                        if a.prot & PROT_WRITE:
                            self._watch(alias, page)

    def new_aliases(self, start: int, length: int) -> None:
        """[start, start+length) was just mapped, or made writable: its
        writable pages that alias translated code are watched."""
        if not self._shared_code:
            return
        mem = self.memory
        for page in range(start, start + length, PAGE):
            m = mem.find(page)
            if m is None or not m.prot & PROT_WRITE:
                continue
            for code in self._shared_code.get(m.file_page(page), ()):
                self._watch(page, code)

    def _watch(self, page: int, code: int) -> None:
        codes = self.pages.get(page)
        if codes is None:
            self._host_protect(page, _PROT_READ)
            codes = self.pages[page] = set()
        codes.add(code)

    def _host_protect(self, page: int, prot: int) -> None:
        _libc.mprotect(ctypes.c_void_p(self.memory.base + page), PAGE, prot)

    def watched(self, addr: int) -> bool:
        return addr & ~(PAGE - 1) in self.pages

    def release(self, addr: int, length: int) -> None:
        """[addr, addr+length) is about to be written: its watched pages
        become writable again and the translations of the code they hold
        or alias go."""
        if not self.pages or length <= 0:
            return
        page = addr & ~(PAGE - 1)
        while page < addr + length:
            codes = self.pages.pop(page, None)
            if codes is not None:
                m = self.memory.find(page)
                self._host_protect(page, self.memory.host_prot(m.prot) if m is not None else 0)
                for code in sorted(codes):
                    self.changed(code, PAGE)
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
                del self.pages[page]

    def forget(self, addr: int, length: int) -> None:
        """The mapping of [addr, addr+length) changed (unmapped, remapped,
        protected anew): its pages are not watched any more (the new host
        protection stands; translations there went with the change)."""
        end = addr + length
        if self.pages:
            self.pages = {p: c for p, c in self.pages.items() if not addr <= p < end}
        if self._shared_code:
            for codes in self._shared_code.values():
                codes.difference_update([c for c in codes if addr <= c < end])
            self._shared_code = {k: v for k, v in self._shared_code.items() if v}

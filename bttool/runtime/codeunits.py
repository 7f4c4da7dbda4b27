"""Code units: which file a piece of guest code comes from, and where that
file's translations are relative to.

A unit is the program image, its ELF interpreter, or an executable mapping
of a file (a shared library that the guest's ld.so mapped, a dlopen'ed
module).  A translation of code in a unit is identified by the content
digest of the unit's file and the code's offset from the unit's base (the
address where the file's offset 0 is, for a library mapping: its start
minus its file offset), and is translated position-independently against
that base.  So the translation of libc.so.6 made while one program ran is
served to every other program, at whatever address its libraries are
placed.  Code outside every unit (anonymous executable memory: JIT code)
belongs to the program's unit with absolute addresses, as before units.

File digests are kept in the cache with the file's device, inode, size and
modification time (``files`` table), so a library is hashed once per
change, not once per run.
"""
from __future__ import annotations

import bisect
import hashlib
import os
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class CodeUnit:
    start: int          # guest range the unit's code occupies
    end: int
    base: int           # translations are relative to it (0 for absolute code)
    image: str          # sha256 of the file's content
    path: str
    pic: bool           # position-independent: translated relative to base

    def contains(self, pc: int) -> bool:
        return self.start <= pc < self.end


@dataclass
class CodeUnits:
    """The units of one guest process, by address; ``default`` serves code
    outside all of them."""
    default: CodeUnit
    _starts: list[int] = field(default_factory=list)
    _units: list[CodeUnit] = field(default_factory=list)
    # told of units that went away (their translations must not run again)
    on_remove: Callable[[CodeUnit], None] | None = None

    def add(self, unit: CodeUnit) -> None:
        self.remove_range(unit.start, unit.end)
        i = bisect.bisect_left(self._starts, unit.start)
        self._starts.insert(i, unit.start)
        self._units.insert(i, unit)

    def remove_range(self, start: int, end: int) -> None:
        """Forget every unit overlapping [start, end) (unmapped or replaced)."""
        gone = [u for u in self._units if u.start < end and start < u.end]
        for u in gone:
            i = self._units.index(u)
            del self._units[i], self._starts[i]
            if self.on_remove is not None:
                self.on_remove(u)

    def find(self, pc: int) -> CodeUnit:
        i = bisect.bisect_right(self._starts, pc) - 1
        if i >= 0 and self._units[i].contains(pc):
            return self._units[i]
        return self.default

    def by_image(self, image: str) -> CodeUnit | None:
        """The unit mapped from the file with digest ``image`` (the first,
        by address, if the file is mapped twice), or None."""
        return next((u for u in [self.default] + self._units if u.image == image), None)

    def all(self) -> list[CodeUnit]:
        return [self.default] + [u for u in self._units if u != self.default]


def file_digest(fd: int, known: Callable[[tuple], str | None] | None = None,
                remember: Callable[[tuple, str], None] | None = None) -> tuple[str, tuple]:
    """(sha256 of the open file's content, its identity (dev, inode, size,
    mtime_ns)).  ``known(identity)`` may return a digest computed before;
    ``remember`` is told of a new one.  Reads with pread: the descriptor's
    offset (the guest's) does not move."""
    st = os.fstat(fd)
    ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if known is not None:
        sha = known(ident)
        if sha:
            return sha, ident
    h = hashlib.sha256()
    pos = 0
    while True:
        chunk = os.pread(fd, 1 << 20, pos)
        if not chunk:
            break
        h.update(chunk)
        pos += len(chunk)
    sha = h.hexdigest()
    if remember is not None:
        remember(ident, sha)
    return sha, ident

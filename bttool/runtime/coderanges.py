"""Which guest bytes each installed translation was made from, indexed so
that an munmap or mprotect finds the translations it touches without
looking at all of them.

CPython returns its arenas with munmap; with 14,000 regions loaded, a scan
of every region's ranges at each munmap cost a warm run of the
``python`` benchmark about a second.  The index maps each 64 KiB chunk of
the guest address space to the entries whose code (or entry pc) lies in
it, so a query costs what the chunks it covers hold.
"""
from __future__ import annotations

CHUNK_BITS = 16

Ranges = list[tuple[int, int]]


def _chunks(pc: int, ranges: Ranges) -> set[int]:
    out = {pc >> CHUNK_BITS}
    for s, e in ranges:
        out.update(range(s >> CHUNK_BITS, ((max(e, s + 1) - 1) >> CHUNK_BITS) + 1))
    return out


class CodeRanges:
    """entry pc -> the guest byte ranges ([start, end) pairs) its
    translation covers, with a chunk index for ``touching``."""

    def __init__(self) -> None:
        self._ranges: dict[int, Ranges] = {}
        self._by_chunk: dict[int, set[int]] = {}

    def __setitem__(self, pc: int, ranges: Ranges) -> None:
        self.pop(pc)
        self._ranges[pc] = ranges
        for c in _chunks(pc, ranges):
            self._by_chunk.setdefault(c, set()).add(pc)

    def __getitem__(self, pc: int) -> Ranges:
        return self._ranges[pc]

    def __contains__(self, pc: object) -> bool:
        return pc in self._ranges

    def __len__(self) -> int:
        return len(self._ranges)

    def pop(self, pc: int, default: Ranges | None = None) -> Ranges | None:
        ranges = self._ranges.pop(pc, None)
        if ranges is None:
            return default
        for c in _chunks(pc, ranges):
            pcs = self._by_chunk.get(c)
            if pcs is not None:
                pcs.discard(pc)
                if not pcs:
                    del self._by_chunk[c]
        return ranges

    def merge(self, other: "CodeRanges", pcs: list[int]) -> None:
        """Take ``other``'s entries at ``pcs`` (none of them here yet),
        chunk index and all: an execve that keeps the translations of the
        program it replaces (runtime/keptcode.py) takes hundreds at once."""
        wanted = set(pcs)
        self._ranges.update((pc, other._ranges[pc]) for pc in pcs)
        for c, group in other._by_chunk.items():
            add = group & wanted
            if add:
                self._by_chunk.setdefault(c, set()).update(add)

    def clear(self) -> None:
        self._ranges.clear()
        self._by_chunk.clear()

    def touching(self, addr: int, end: int) -> list[int]:
        """The entries whose pc or code lies (in part) in [addr, end)."""
        if end <= addr or not self._by_chunk:
            return []
        lo, hi = addr >> CHUNK_BITS, (end - 1) >> CHUNK_BITS
        if hi - lo < len(self._by_chunk):
            groups = [self._by_chunk[c] for c in range(lo, hi + 1) if c in self._by_chunk]
        else:
            groups = [pcs for c, pcs in self._by_chunk.items() if lo <= c <= hi]
        found = set().union(*groups) if groups else set()
        return [pc for pc in found
                if addr <= pc < end or any(s < end and addr < e for s, e in self._ranges[pc])]

"""The translations a guest execve served in this process
(runtime/execinplace.py) keeps for the new program: those of code units
that come back unchanged.

A shell runs a command by fork and exec, and busybox's shell execs busybox
itself (an applet): the new program is the same file at the same
addresses, and nearly every region the old guest had installed is one the
new one needs at once.  Installing them again from the warm pack (read,
compared with memory, one table entry, code range and watch each) cost
each command about 22 ms.  The old guest's lookup entries are exact for
its memory (a store into translated code, an munmap or mprotect over it
dropped them: runtime/codepages.py), so an entry is still right for the
new guest wherever the new memory holds the same bytes at the same
addresses in the same unit.

``take`` (when the old guest leaves) says which entries are candidates;
``settle`` (when the new guest is set up, the old memory still mapped)
compares the executable memory of each unit the new guest has already
(the program, its interpreter) with the old guest's and installs the
entries on equal pages at once; for a unit mapped later (a library that
the new guest's ld.so maps) it copies the old bytes, and
``Executor._install_warm`` compares them when that unit's code first
runs.  Entries on pages that differ are dropped (looked up as always).
When the candidates are all the old lookup table held and all are kept
(a static program execing itself or another applet of its file), the
table is left as it is, not emptied and filled again.

Kept are the regions whose run-cache record (RunCache.keep_records: the
regions a run checked or made, all of whose code lies in their unit) is
the translation installed at their pc: a region with code of another
unit (whose base the new guest may have elsewhere) or outside every unit
(JIT code) is never kept.
"""
from __future__ import annotations

import bisect
import ctypes
import dataclasses
from dataclasses import dataclass
from typing import Callable

from bttool.runtime.coderanges import CodeRanges
from bttool.runtime.memory import PAGE, PROT_EXEC

Ranges = list[tuple[int, int]]
UnitKey = tuple[str, int, int]          # (image, base, start), as Executor._install_warm keys units
Entries = dict[int, tuple[int, bool]]   # entry pc -> (host address, whether tier 2 made it)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.memcmp.restype = ctypes.c_int
_libc.memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]


@dataclass
class KeptUnit:
    """One code unit's translations as the old guest had them installed."""
    key: UnitKey
    end: int
    entries: Entries
    # the old guest's code ranges (runtime/coderanges.py), index and all
    index: CodeRanges
    # the unit's executable memory in the old guest, and (copied by
    # ``settle`` for a unit the new guest maps later) its bytes
    runs: Ranges
    code: list[bytes] | None = None
    # the run cache's records of the regions (RunCache.keep_records)
    records: object = None

    def matches(self, unit) -> bool:
        return (unit.image, unit.base, unit.start, unit.end) == self.key + (self.end,)

    def usable(self, read: Callable[[int, int], bytes]) -> Entries:
        """The entries whose code the new guest holds too, compared with
        the copy ``settle`` made (``read``: the new guest's executable
        memory)."""
        assert self.code is not None
        bad: set[int] = set()
        for (start, _), data in zip(self.runs, self.code):
            now = read(start, len(data))
            if now != data:
                bad.update(_pages_differing(start, data, now))
        return self._without(bad)

    def _without(self, bad: set[int]) -> Entries:
        """The entries with no code on pages ``bad``."""
        if not bad:
            return self.entries
        starts = [s for s, _ in self.runs]

        def fine(s: int, e: int) -> bool:
            i = bisect.bisect_right(starts, s) - 1
            return i >= 0 and e <= self.runs[i][1] and not any(
                p in bad for p in range(s & ~(PAGE - 1), e, PAGE))
        return {pc: e for pc, e in self.entries.items() if all(fine(s, end) for s, end in self.index[pc])}

    def pages(self) -> Ranges:
        """Its executable memory (runtime/codepages.py watches the writable
        pages there)."""
        return self.runs


@dataclass
class Kept:
    """What ``take`` kept of one guest, for the guest its execve starts."""
    units: dict[UnitKey, KeptUnit]
    options: object                     # the old guest's lift options
    engine: object
    whole_table: bool                   # the old table held these entries and no others
    # then: the old executor's known entries and tier-2 pcs, which the new
    # one takes over as they are (Executor.keep)
    installed: tuple | None = None

    def compatible(self, new) -> bool:
        """Whether executor ``new`` may run the old translations: the same
        engine and lift options (a translation made with precise faults
        serves a guest without them, not the reverse)."""
        if new.engine is not self.engine or new.units is None:
            return False
        old = self.options
        return dataclasses.replace(old, precise_faults=new.options.precise_faults) == new.options \
            and not (new.options.precise_faults and not old.precise_faults)


def prepare(old) -> None:
    """Work out ``take``'s candidates for executor ``old`` now, unless
    nothing was installed or dropped since they were last worked out
    (``Executor.generation``).  Called in the parent at a fork: a shell
    forks from the same state for every command, and each child that
    execs then takes them as they are, instead of going over every entry
    (and writing the pages of every object it touches, which the fork
    shares with the parent: 3 ms and 600 page faults a command)."""
    if old.units is None or old.cache is None:
        return
    if old.kept_memo is not None and old.kept_memo[0] == old.generation:
        return
    known, address = old.known, old.engine.address
    candidates = []
    for unit, records in old.cache.keep_records(old.units):
        entries: Entries = {}
        for region in records.regions():
            pc = unit.base + region.entry
            addr = known.get(pc)
            if addr is not None and addr == address(region.symbol) and pc not in old.imprecise \
                    and pc in old.code_ranges and old.code_ranges[pc]:
                entries[pc] = (addr, pc in old.promoted)
        if entries:
            records.only(entries)
            ranges = [old.code_ranges[pc] for pc in entries]
            span = (min(min(r)[0] for r in ranges), max(e for r in ranges for _, e in r))
            candidates.append((unit, entries, records, span))
    old.kept_memo = (old.generation, candidates)


def take(old) -> Kept:
    """The candidates among executor ``old``'s installed translations, by
    unit; none when the old run had no cache (whose records say which
    translation is which region's)."""
    out: dict[UnitKey, KeptUnit] = {}
    prepare(old)
    if old.kept_memo is None:
        return Kept(out, old.options, old.engine, False)
    taken = 0
    for unit, entries, records, span in old.kept_memo[1]:
        key = (unit.image, unit.base, unit.start)
        out[key] = KeptUnit(key, unit.end, entries, old.code_ranges, _executable(old.memory, unit, span),
                            records=records)
        taken += len(entries)
    kept = Kept(out, old.options, old.engine, len(out) == 1 and taken == len(old.known))
    if kept.whole_table:
        kept.installed = (old.known, old.promoted)
    return kept


def settle(kept: Kept | None, new, old_memory) -> None:
    """Give executor ``new`` (set up, no guest code run yet) what it keeps
    of ``kept``, while the old guest's memory is still mapped: the units
    the new guest has now are compared and installed, the others copied
    for later (``new.kept``).  The lookup table, which still holds the old
    guest's entries, is emptied unless every one of them is kept."""
    units = kept.units if kept is not None and kept.compatible(new) else {}
    now: list[tuple[KeptUnit, object, Entries]] = []
    for k in units.values():
        unit = new.units.find(k.key[2])
        if k.matches(unit):
            bad: set[int] = set()
            for s, e in k.runs:
                bad |= _differing(old_memory, new.memory, s, e)
            now.append((k, unit, k._without(bad)))
        else:
            k.code = [ctypes.string_at(old_memory.base + s, e - s) for s, e in k.runs]
            new.kept[k.key] = k
    in_place = (kept is not None and kept.whole_table and len(now) == 1 == len(units)
                and len(now[0][2]) == len(now[0][0].entries))
    if not in_place:
        new.clear_table()
    for k, unit, entries in now:
        new.keep(k, unit, entries, kept.installed if in_place else None)


def _differing(old_memory, new_memory, start: int, end: int) -> set[int]:
    """The pages of [start, end) whose bytes differ between the two guests'
    memories, or that are not executable in the new one."""
    if not new_memory.executable(start, end - start):
        return set(range(start & ~(PAGE - 1), end, PAGE))
    if _libc.memcmp(old_memory.base + start, new_memory.base + start, end - start) == 0:
        return set()
    return _pages_differing(start, ctypes.string_at(old_memory.base + start, end - start),
                            ctypes.string_at(new_memory.base + start, end - start))


def _pages_differing(start: int, old: bytes, new: bytes) -> set[int]:
    """The pages where ``new`` (read at ``start``, maybe shorter) is not ``old``."""
    first = start & ~(PAGE - 1)
    out = set()
    for page in range(first, start + len(old), PAGE):
        lo, hi = max(page, start) - start, min(page + PAGE, start + len(old)) - start
        if new[lo:hi] != old[lo:hi]:
            out.add(page)
    return out


def _executable(memory, unit, span: tuple[int, int]) -> Ranges:
    """The executable guest memory in ``unit``'s range, from the page of
    the lowest translated code to the page of the highest (``span``):
    never the pages of a segment past the end of its file, which are
    mapped to raise SIGBUS and hold no code that ran."""
    lo, hi = max(unit.start, span[0] & ~(PAGE - 1)), min(unit.end, (span[1] + PAGE - 1) & ~(PAGE - 1))
    return [(max(m.start, lo), min(m.end, hi)) for m in memory.mappings()
            if m.prot & PROT_EXEC and m.start < hi and lo < m.end]

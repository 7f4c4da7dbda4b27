"""A program's warm set, packed: the regions its next run installs at once
(RunCache.warm_hits), with the guest code they were made from, per code
unit.

Checking each region as a lookup does (its index row's checksum, its spans
parsed, a digest of its guest bytes) cost a warm run of CPython 0.55 s for
14,000 regions, and a dynamically linked program that returns 0 a tenth of
its start-up.  A pack replaces all that for a unit by one comparison: the
unit's guest memory, read in a few large pieces, must hold exactly the
bytes its regions were translated from (which the pack carries).  Equal
bytes are a stronger check than equal digests; a unit whose memory differs
anywhere (a changed file is another image and has no part here; code
patched before it first ran) gets nothing from the pack, and its regions
are checked one by one as before.  The pack is trusted only whole: a
checksum over everything after its header, which also names the format
(marshal's, of this Python).

The bytes recorded are those a region was checked or translated against
(never memory read at the end of a run, which the guest may have changed
since).  Regions holding code of another unit (a foreign span) stay out:
their check needs both units mapped.
"""
from __future__ import annotations

import bisect
import hashlib
import marshal
from dataclasses import dataclass, field
from typing import Callable, Iterable, NamedTuple

MAGIC = b"bttool warm pack 2 marshal %d\n" % marshal.version
_SUM = 32       # blake2b digest size of the body

Runs = list[tuple[int, bytes]]      # code as (start, bytes), relative to the unit's base


class PackedRegion(NamedTuple):
    """One region as a pack holds it (addresses relative to its unit's base;
    a named tuple: a warm run of CPython reads 14,000)."""
    entry: int
    key: str
    object_id: str
    symbol: str
    insns: int
    target: str
    options: str
    spans: tuple[tuple[int, int], ...]


def runs(spans: tuple[tuple[int, int], ...], code: bytes) -> Runs:
    """A region's code as runs: ``code`` holds its spans' bytes
    concatenated in the order of ``spans``; spans that touch are joined
    (as ``UnitPart.runs_of`` joins them)."""
    pieces, at = [], 0
    for s, e in spans:
        pieces.append((s, e, code[at:at + e - s]))
        at += e - s
    pieces.sort(key=lambda p: p[0])
    ordered = b"".join(d for _, _, d in pieces)
    out, at = [], 0
    for s, e in _joined((s, e) for s, e, _ in pieces):
        out.append((s, ordered[at:at + e - s]))
        at += e - s
    return out


@dataclass
class UnitPart:
    """What a pack holds for one unit: its regions, and the code they need
    to find in memory, as sorted disjoint runs."""
    regions: list[PackedRegion]
    code: Runs
    _starts: list[int] | None = field(default=None, repr=False)

    def holds_here(self, read: Callable[[int, int], bytes], base: int) -> bool:
        """Whether the unit's memory (at ``base`` in this run) holds the
        code the regions were made from."""
        return all(read(base + start, len(data)) == data for start, data in self.code)

    def runs_of(self, region: PackedRegion) -> Runs | None:
        """``region``'s code as runs (None if the pack does not cover it)."""
        if self._starts is None:
            self._starts = [start for start, _ in self.code]
        out = []
        for s, e in _joined(region.spans):
            i = bisect.bisect_right(self._starts, s) - 1
            if i < 0:
                return None
            start, data = self.code[i]
            if e - start > len(data):
                return None
            out.append((s, data[s - start:e - start]))
        return out


def pack(units: dict[str, Iterable[tuple[PackedRegion, Runs]]]) -> bytes:
    """The pack of ``units`` (image -> its regions, each with its code).
    Where two regions' code overlaps with different bytes (code changed
    between their translations), the regions that disagree with the
    merged code are left out."""
    variants: dict[tuple[str, str], int] = {}
    parts = {}
    for image, items in units.items():
        items = list(items)
        part = UnitPart([], _merged(code for _, code in items))
        regions = []
        for r, code in items:
            if part.runs_of(r) == code:
                v = variants.setdefault((r.target, r.options), len(variants))
                regions.append((r.entry, r.key, r.object_id, r.symbol, r.insns, v,
                                tuple(x for span in r.spans for x in span)))
        if regions:
            parts[image] = (tuple(part.code), tuple(regions))
    body = marshal.dumps((tuple(sorted(variants, key=variants.__getitem__)), parts))
    return MAGIC + hashlib.blake2b(body, digest_size=_SUM).digest() + body


def unpack(data: bytes) -> dict[str, UnitPart] | None:
    """The parts of a pack by unit image, or None when ``data`` is not a
    pack as ``pack`` writes it (damaged, truncated, another version)."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _SUM:
        return None
    at = len(MAGIC)
    body = data[at + _SUM:]
    if hashlib.blake2b(body, digest_size=_SUM).digest() != data[at:at + _SUM]:
        return None
    try:
        variants, parts = marshal.loads(body)
        out = {}
        for image, (code, regions) in parts.items():
            out[image] = UnitPart(
                [PackedRegion(entry, key, obj, sym, insns, *variants[v], tuple(zip(flat[::2], flat[1::2])))
                 for entry, key, obj, sym, insns, v, flat in regions], list(code))
        return out
    except (ValueError, TypeError, EOFError, IndexError):
        return None


def _joined(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for s, e in sorted(spans):
        if out and out[-1][1] == s:
            out[-1][1] = e
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _merged(codes: Iterable[Runs]) -> Runs:
    """All runs as sorted disjoint runs, touching or overlapping ones
    merged; where runs overlap, the later one's bytes."""
    out: list[tuple[int, bytearray]] = []
    for s, d in sorted((run for code in codes for run in code), key=lambda x: x[0]):
        if out and s <= out[-1][0] + len(out[-1][1]):
            start, buf = out[-1]
            end = s + len(d)
            if end > start + len(buf):
                buf.extend(bytes(end - start - len(buf)))
            buf[s - start:end - start] = d
        else:
            out.append((s, bytearray(d)))
    return [(s, bytes(b)) for s, b in out]

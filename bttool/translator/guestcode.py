"""Guest code as the runtime sees it before any decoding: how it is read,
the error for a fetch from unmapped memory, and the digests that tie a
cached translation to the guest bytes and settings it was made from.

Kept free of capstone and llvmlite so a warm run (everything from the
cache) never imports the translator.
"""
from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Callable, NamedTuple

if TYPE_CHECKING:  # pragma: no cover
    from bttool.ir.codegen import Target
    from bttool.translator.options import LiftOptions

CodeReader = Callable[[int, int], bytes]   # (address, max_len) -> bytes (may be short)


class UnmappedCode(Exception):
    """Instruction fetch from an address that is not mapped executable."""


class Span(NamedTuple):
    """Guest bytes a translation was made from: [start, end) at the address
    they have in this run, in the code unit whose base is ``base``
    (runtime/codeunits.py).  ``image`` is "" for the unit the region's
    entry is in, else the file digest of a *foreign* unit: a tier-2 region
    may take in a function of another file that an indirect call there
    usually reaches (a comparison function of the program called by libc's
    qsort), and that code is placed relative to the foreign unit's base in
    this run (``foreign_base_symbol``).  A named tuple, not a dataclass:
    a warm run makes one per span of each of some 550 regions it checks,
    and a frozen dataclass costs four times as much to make."""
    start: int
    end: int
    base: int = 0
    image: str = ""


def foreign_base_symbol(function: str, image: str) -> str:
    """The i64 global in the object of the translation ``function`` that
    holds the run's base of its foreign unit ``image``; the runtime writes
    it before the translation is installed.  (The one place for the name.)"""
    return f"{function}.base.{image[:16]}"


def _digest_update(h, rel: int, length: int, data: bytes, image: str) -> None:
    h.update(rel.to_bytes(8, "little", signed=True) + length.to_bytes(4, "little"))
    if image:
        h.update(b"@" + image.encode())
    h.update(data)


# spans closer together than this are read in one piece (guest_code)
_COVER_MAX = 1 << 16


def guest_digest(read: CodeReader, spans: list[Span]) -> str:
    """Digest of the guest bytes a translation was made from (each span's
    addresses relative to its unit's base, so a moved PIE image or library
    digests the same; a foreign span also names its file)."""
    return digest_of(spans, guest_code(read, spans))


def guest_code(read: CodeReader, spans: list[Span]) -> list[bytes]:
    """The guest bytes of each span.  A region's blocks usually lie close
    together: they are read with one call when they fit in _COVER_MAX
    bytes (a warm run reads every region it takes from the cache one by
    one unless a warm pack covers it), each on its own otherwise or where
    that read came back short (a gap that is not executable)."""
    lo = min(s.start for s in spans) if spans else 0
    hi = max(s.end for s in spans) if spans else 0
    whole = read(lo, hi - lo) if len(spans) > 1 and hi - lo <= _COVER_MAX else b""
    out = []
    for s in spans:
        if s.end - lo <= len(whole):
            out.append(whole[s.start - lo:s.end - lo])
        else:
            out.append(read(s.start, s.end - s.start))
    return out


def digest_of(spans: list[Span], datas: list[bytes]) -> str:
    """``guest_digest`` of the bytes ``datas`` read at ``spans``."""
    h = hashlib.sha256()
    for s, data in zip(spans, datas):
        _digest_update(h, s.start - s.base, s.end - s.start, data, s.image)
    return h.hexdigest()


def spans_json(spans: list[Span]) -> str:
    """How the cache stores a region's spans: ``[start, end]`` relative to
    the base of the region's own unit, ``[start, end, image]`` relative to
    a foreign unit's base, in digest order."""
    return json.dumps([[s.start - s.base, s.end - s.base] + ([s.image] if s.image else [])
                       for s in spans])


def parse_spans(text: object) -> list[tuple[int, int, str]]:
    """The stored spans (``spans_json``) as (start, end, image) relative to
    their unit's base; ValueError when ``text`` is not that."""
    try:
        items = json.loads(text)     # type: ignore[arg-type]
        out = []
        for item in items:         # a warm run parses some 550 of these
            if len(item) == 2:
                (start, end), image = item, ""
            else:
                start, end, image = item
            if not (isinstance(start, int) and isinstance(end, int) and isinstance(image, str)
                    and start < end):
                raise ValueError(item)
            out.append((start, end, image))
        return out
    except (TypeError, AttributeError, json.JSONDecodeError) as e:
        raise ValueError(str(e)) from None


def stored_digest(spans: list[tuple[int, int, str]], guest_code: bytes) -> str:
    """``guest_digest`` of stored spans and their concatenated bytes (what
    `cache verify` checks a row's guest code with); ValueError when the
    bytes do not fill the spans exactly."""
    h = hashlib.sha256()
    pos = 0
    for start, end, image in spans:
        _digest_update(h, start, end - start, guest_code[pos:pos + end - start], image)
        pos += end - start
    if pos != len(guest_code):
        raise ValueError("guest code does not match its ranges")
    return h.hexdigest()


def region_key(digest: str, entry_rel: int, options: "LiftOptions", target: "Target") -> str:
    """The content address of a translation: everything that changes the
    generated code (the translator's identity is in ``options.key()``), and
    for position-independent code the file it belongs to
    (``options.unit_image``).  (The one place this rule lives.)"""
    parts = [target.key(), options.key(), f"{entry_rel:x}", digest]
    if options.pic_base is not None and options.unit_image:
        parts.append(options.unit_image)
    text = "|".join(parts)
    return hashlib.sha256(text.encode()).hexdigest()

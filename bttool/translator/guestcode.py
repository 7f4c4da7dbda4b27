"""Guest code as the runtime sees it before any decoding: how it is read,
the error for a fetch from unmapped memory, and the digests that tie a
cached translation to the guest bytes and settings it was made from.

Kept free of capstone and llvmlite so a warm run (everything from the
cache) never imports the translator.
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from bttool.ir.codegen import Target
    from bttool.translator.options import LiftOptions

CodeReader = Callable[[int, int], bytes]   # (address, max_len) -> bytes (may be short)


class UnmappedCode(Exception):
    """Instruction fetch from an address that is not mapped executable."""


def guest_digest(read: CodeReader, ranges: list[tuple[int, int]], base: int) -> str:
    """Digest of the guest bytes a translation was made from (addresses
    relative to the image base, so a moved PIE image digests the same)."""
    h = hashlib.sha256()
    for start, end in ranges:
        h.update((start - base).to_bytes(8, "little", signed=True) + (end - start).to_bytes(4, "little"))
        h.update(read(start, end - start))
    return h.hexdigest()


def region_key(digest: str, entry_rel: int, options: "LiftOptions", target: "Target") -> str:
    """The content address of a translation: everything that changes the
    generated code (the translator's identity is in ``options.key()``).
    (The one place this rule lives.)"""
    text = "|".join([target.key(), options.key(), f"{entry_rel:x}", digest])
    return hashlib.sha256(text.encode()).hexdigest()

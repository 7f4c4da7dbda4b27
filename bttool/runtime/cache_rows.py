"""Checksums of the translation cache's rows.

SQLite checks its own structure only when asked (`PRAGMA integrity_check`),
and a flipped bit inside a row's value passes even that: an entry point,
a symbol name or a range list would be served as stored.  So every row a
run relies on carries a checksum of the columns it is read for, computed
when the row is written and verified before the row is used; a row that
fails is dropped and its code translated again.  Objects are checked by
the SHA-256 of their bytes (their id is a prefix of it).

Statistics (hit counts, last-use times, the counters table) are not
covered: they are updated in place by SQL and change nothing a run does.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

# table -> the columns its ``checksum`` column covers, in order
COVERED: dict[str, tuple[str, ...]] = {
    "regions": ("key", "image", "image_path", "target", "triple", "options", "entry", "ranges",
                "digest", "insn_count", "object", "symbol", "host_bytes"),
    "images": ("sha256", "path", "info"),
    "codemap": ("image", "options", "entry"),
    "files": ("dev", "inode", "size", "mtime_ns", "sha256"),
}


def _encoded(value: object) -> bytes:
    """A value as typed bytes: a column whose storage class changed (a
    flipped bit in a record header) no longer matches."""
    t = type(value)         # the types SQLite gives back first (a warm run checks ~550 rows)
    if t is str:
        body = value.encode("utf-8", "surrogateescape")     # type: ignore[attr-defined]
        return b"s" + len(body).to_bytes(4, "little") + body
    if t is int:
        body = str(value).encode()
        return b"i" + len(body).to_bytes(4, "little") + body
    if isinstance(value, bool) or not isinstance(value, (int, str, bytes, float)) and value is not None:
        body, tag = repr(value).encode(), b"?"
    elif value is None:
        body, tag = b"", b"n"
    elif isinstance(value, int):
        body, tag = str(value).encode(), b"i"
    elif isinstance(value, float):
        body, tag = value.hex().encode(), b"f"
    elif isinstance(value, str):
        body, tag = value.encode("utf-8", "surrogateescape"), b"s"
    else:
        body, tag = value, b"b"
    return tag + len(body).to_bytes(4, "little") + body


def row_checksum(values: Iterable[object]) -> int:
    """The checksum of a row's covered values (a signed 64-bit integer,
    what an SQLite INTEGER holds)."""
    h = hashlib.blake2b(b"".join(map(_encoded, values)), digest_size=8, person=b"bttool-row")
    return int.from_bytes(h.digest(), "little", signed=True)


def row_ok(values: Sequence[object], checksum: object) -> bool:
    """Whether a row read back (its covered values, in COVERED order) is
    the row that was written."""
    return isinstance(checksum, int) and row_checksum(values) == checksum


def object_id_of(sha256: str) -> str:
    """An object's id: its bytes' sha256 (hex), shortened."""
    return sha256[:32]


def object_ok(object_id: object, sha256: object, size: object, data: object) -> bool:
    """Whether an object row is intact: its bytes digest to its sha256, its
    id is that digest's prefix, its size is theirs."""
    return (isinstance(data, bytes) and isinstance(sha256, str) and isinstance(object_id, str)
            and len(sha256) == 64 and object_id == object_id_of(sha256) and size == len(data)
            and hashlib.sha256(data).hexdigest() == sha256)


def guest_code_ok(ranges_json: object, guest_code: object, digest: object) -> bool:
    """Whether a region's stored guest bytes are the ones its digest was
    made from (translator/guestcode.guest_digest, over spans relative to
    their unit's base): what `cache show` disassembles is what was translated."""
    from bttool.translator.guestcode import parse_spans, stored_digest
    if not isinstance(guest_code, bytes):
        return False
    try:
        return stored_digest(parse_spans(ranges_json), guest_code) == digest
    except (ValueError, OverflowError):
        return False


def text_value(raw: bytes) -> str:
    """How the cache's connections decode TEXT (sqlite3 text_factory): bytes
    that are not UTF-8 (a flipped bit) become a string that fails its row's
    checksum instead of an exception in the middle of a query."""
    return raw.decode("utf-8", "surrogateescape")


def pack_ir(text: str | None) -> bytes:
    """The LLVM IR an object was compiled from, as stored beside it:
    zlib-compressed (IR text is repetitive: about a tenth of its size), its
    Adler-32 check guarding it; empty when not known."""
    import zlib
    return zlib.compress(text.encode(), 1) if text else b""


def unpack_ir(blob: object) -> str | None:
    """``pack_ir``'s text again; None when absent or failing its check."""
    import zlib
    if not isinstance(blob, bytes) or not blob:
        return None
    try:
        return zlib.decompress(blob).decode()
    except (zlib.error, UnicodeDecodeError):
        return None

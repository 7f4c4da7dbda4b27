"""Stencils kept on disk (translator/stitch.py): compiled once per machine
and kind of code, served to every later run and program.

A stencil is a pure function of its key and of the kind of code, so one
store serves every translation cache of a user (``stencil_root``): a run
with a new or cleared cache, another ``--cache-dir``, or a test's own
cache, still stitches from the stencils earlier runs made.  One
append-only file per kind of code (the lift options' and the target's
keys, which carry the translator's identity, and the Python version, whose
``marshal`` format the records use) under the store's ``stencils/``.  Each
record is a length, a CRC-32 and a marshalled list of (key, stencil)
pairs, written with one ``write`` under an exclusive ``flock`` on a
descriptor opened with O_APPEND, so processes that add stencils at once
never interleave inside a record.  A record that fails its check ends the
reading (a torn tail after a crash, or one being written): the file is
cut there under the same lock, once the record is still bad with the lock
held, so later appends are read again; its stencils are compiled anew,
never run.
"""
from __future__ import annotations

import fcntl
import hashlib
import marshal
import os
import struct
import sys
import zlib

_HEADER = struct.Struct("<II")


def stencil_root() -> str:
    """The directory whose ``stencils/`` holds the user's stencils:
    ``BTTOOL_STENCIL_DIR``, else the default translation cache's (so
    ``bttool cache clear`` of that cache clears them too)."""
    from bttool.runtime.cache import resolve_cache_dir
    return os.environ.get("BTTOOL_STENCIL_DIR") or resolve_cache_dir(None)


class StencilFile:
    """The stencils of one kind of code in one store."""

    def __init__(self, root: str, kind: str) -> None:
        tag = hashlib.sha256(f"{kind}|py{sys.version_info[:2]}".encode()).hexdigest()[:24]
        self.path = os.path.join(root, "stencils", tag + ".bin")

    def load(self) -> list[tuple[object, object]]:
        """Every (key, stencil) pair of the intact records, in order; a torn
        tail is cut off."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError:
            return []
        out, at = self._parse(data)
        if at < len(data):
            try:
                with open(self.path, "r+b") as f:
                    fcntl.flock(f, fcntl.LOCK_EX)
                    out, at = self._parse(f.read())
                    f.truncate(at)
            except OSError:
                pass
        return out

    @staticmethod
    def _parse(data: bytes) -> tuple[list[tuple[object, object]], int]:
        """The pairs of the intact records at the start of ``data``, and
        where they end."""
        out, at = [], 0
        while at + _HEADER.size <= len(data):
            size, crc = _HEADER.unpack_from(data, at)
            body = data[at + _HEADER.size:at + _HEADER.size + size]
            if len(body) != size or zlib.crc32(body) != crc:
                break
            try:
                out.extend(marshal.loads(body))
            except (ValueError, EOFError, TypeError):
                break
            at += _HEADER.size + size
        return out, at

    def append(self, pairs: list[tuple[object, object]]) -> None:
        """Add a record of (key, stencil) pairs; a failure to write loses
        nothing but the time to compile them again."""
        if not pairs:
            return
        body = marshal.dumps(pairs)
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, _HEADER.pack(len(body), zlib.crc32(body)) + body)
            finally:
                os.close(fd)
        except OSError:
            pass

"""A simple persistent translation cache (one object file per region).

Layout: ``<cache dir>/<key>/<entry pc>.o`` with a JSON sidecar holding the
entry symbols, the guest code ranges, a digest of the guest bytes and a
checksum of the object.  ``<key>`` (see ``cache_key``) covers the translator
version, the LLVM version, the host triple, CPU and features, and the lift
options; the guest bytes are checked on every lookup, so a stale or corrupt
entry is a miss, never run.  Writes go to a temporary file and are renamed
into place, so a reader never sees half an entry.  A cache directory that
cannot be written degrades to running without caching, with one warning.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from typing import Callable

from bttool import TRANSLATOR_VERSION
from bttool.ir import codegen
from bttool.translator.blocks import CodeReader
from bttool.translator.lifter import LiftOptions
from bttool.translator.loader import GuestImage
from bttool.translator.translate import Translation


def default_cache_dir() -> str:
    import platformdirs
    return platformdirs.user_cache_dir("bttool")


def cache_key(target: codegen.Target, options: LiftOptions) -> str:
    """The one place that decides which translations are interchangeable."""
    text = "|".join([TRANSLATOR_VERSION, target.key(), f"mode{options.mode}",
                     "user" if options.user_mode else "system"])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class DiskCache:
    def __init__(self, root: str, target: codegen.Target, options: LiftOptions,
                 log: Callable[[str], None] | None = None) -> None:
        self.dir = os.path.join(root, cache_key(target, options))
        self.log = log or (lambda m: None)
        self.writable = True
        self.hits = 0
        self.misses = 0

    def _paths(self, entry: int) -> tuple[str, str]:
        base = os.path.join(self.dir, f"{entry:x}")
        return base + ".o", base + ".json"

    def lookup(self, entry: int, read: CodeReader) -> Translation | None:
        obj_path, meta_path = self._paths(entry)
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            with open(obj_path, "rb") as f:
                obj = f.read()
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError) as e:
            self.log(f"cache entry {entry:#x} unreadable ({e}); retranslating")
            self.misses += 1
            return None
        try:
            if hashlib.sha256(obj).hexdigest() != meta["object_sha256"]:
                self.log(f"cache entry {entry:#x} corrupt (checksum); retranslating")
                self.misses += 1
                return None
            t = Translation(entry, obj, {int(k, 16): v for k, v in meta["entries"].items()},
                            meta["insn_count"], [tuple(r) for r in meta["code_ranges"]])
        except (KeyError, TypeError, ValueError):
            self.log(f"cache entry {entry:#x} corrupt (index); retranslating")
            self.misses += 1
            return None
        if t.guest_digest(read) != meta["guest_sha256"]:
            self.log(f"cache entry {entry:#x} stale (guest code changed); retranslating")
            self.misses += 1
            return None
        self.hits += 1
        return t

    def store(self, t: Translation, read: CodeReader) -> None:
        if not self.writable:
            return
        obj_path, meta_path = self._paths(t.entry)
        meta = {
            "entry": f"{t.entry:x}",
            "entries": {f"{pc:x}": sym for pc, sym in t.entries.items()},
            "insn_count": t.insn_count,
            "code_ranges": [list(r) for r in t.code_ranges],
            "guest_sha256": t.guest_digest(read),
            "object_sha256": hashlib.sha256(t.object_code).hexdigest(),
        }
        try:
            os.makedirs(self.dir, exist_ok=True)
            _atomic_write(obj_path, t.object_code)
            _atomic_write(meta_path, json.dumps(meta).encode())
        except OSError as e:
            self.writable = False
            print(f"bttool: warning: cache directory {self.dir} not writable ({e.strerror}); "
                  "running without caching", file=sys.stderr)


def _atomic_write(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def open_cache(cache_dir: str | None, image: GuestImage,
               log: Callable[[str], None] | None = None) -> DiskCache:
    root = cache_dir or default_cache_dir()
    return DiskCache(root, codegen.host_target(), LiftOptions(64, True), log)

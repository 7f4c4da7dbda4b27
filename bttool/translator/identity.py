"""The translator's identity, part of every cache key: a digest of the
sources that shape a translation and of the libraries that take part in it.

A hand-bumped version number was forgotten by most commits that changed the
lifter, so a cache filled before a semantics fix could still serve the old,
wrong code.  As numba's cache index does, the identity is derived from the
code itself: the content of every module of ``translator/`` and ``ir/`` and of
the CPU model (``runtime/cpuid.py``), plus the installed versions of llvmlite
and capstone.  (LLVM's own version, the host triple and CPU are in the
target's key.)  Any edit, even a comment, makes earlier entries misses;
they are never served.

Cheap enough for every warm run (about 2 ms): no import of capstone or of
importlib.metadata, whose loading alone costs 25 ms.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent        # bttool/
# what shapes generated code (relative to bttool/)
SHAPING_SOURCES = ("translator", "ir", "runtime/cpuid.py")
# libraries whose behaviour is part of a translation
SHAPING_LIBRARIES = ("llvmlite", "capstone")


def _source_files() -> list[Path]:
    files: list[Path] = []
    for name in SHAPING_SOURCES:
        p = _PACKAGE / name
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return files


def library_version(name: str) -> str:
    """Installed version of ``name`` from its dist-info directory beside the
    package (without importing it); the slower importlib.metadata when the
    layout is unusual; "unknown" when it is not installed."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return "unknown"
    pkg_dir = Path(next(iter(spec.submodule_search_locations)))
    prefix = name + "-"
    try:
        for entry in os.listdir(pkg_dir.parent):
            if entry.startswith(prefix) and entry.endswith((".dist-info", ".egg-info")):
                return entry[len(prefix):].rsplit(".", 1)[0]
    except OSError:
        pass
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


@functools.lru_cache(maxsize=None)
def translator_identity() -> str:
    """16 hex digits naming this translator: sources and library versions."""
    h = hashlib.sha256()
    for f in _source_files():
        h.update(f.relative_to(_PACKAGE).as_posix().encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    for lib in SHAPING_LIBRARIES:
        h.update(f"{lib}={library_version(lib)}\0".encode())
    return h.hexdigest()[:16]

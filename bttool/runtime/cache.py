"""The persistent translation cache: one SQLite database (WAL).

Layout of a cache directory::

    index.sqlite            regions, objects (native object code: one region
                            at run time, or a batch of regions from `bttool
                            translate`), images, code maps, counters
    support/<sha>.o         the compiled run-time support (ir/support.py),
                            named by the digest of its IR and target

Objects are rows, not files: a cold run stores a few hundred objects of a
few kilobytes, and a file each (a directory, a temporary file, a rename)
cost about 1.5 ms apiece here, 0.3 s of a 3 s run; a row costs a few
microseconds and commits with its regions atomically.

A region is found by (target, options, entry relative to the image base) and
is used only if the guest bytes it was made from (its ``ranges``, digested by
translate.guest_digest) equal the bytes now in guest memory; the row's
``key`` (translate.region_key) is the content address over everything that
changes the code.  So a changed guest byte misses only the regions that
contain it, a changed option or target misses everything, and a
position-independent image hits wherever it is loaded.  Objects carry a
SHA-256 checksum; a corrupt, truncated or unreadable object or index row is
dropped and the region retranslated.  An object and its regions are
committed in one transaction, so a reader never sees half an entry.  A
cache that cannot be written degrades to running without caching, with one
warning line.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

from bttool.ir import codegen, objfile
from bttool.ir.codegen import Target
from bttool.runtime.hostfds import hold, opening_high, standard_fds_held
from bttool.translator.guestcode import CodeReader, guest_digest

if TYPE_CHECKING:  # pragma: no cover
    from bttool.runtime.codeunits import CodeUnits
    from bttool.translator.translate import Translation

SCHEMA_VERSION = 3
_DERIVED_SCHEMAS = {"1", "2"}           # older layouts, rebuilt empty (_rebuild_if_derived)
DEFAULT_MAX_SIZE = 2 << 30           # bytes; BTTOOL_CACHE_MAX_SIZE overrides

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS objects (
    id TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    target TEXT NOT NULL, created REAL NOT NULL, last_used REAL NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS regions (
    key TEXT PRIMARY KEY, image TEXT NOT NULL, image_path TEXT NOT NULL,
    target TEXT NOT NULL, triple TEXT NOT NULL, options TEXT NOT NULL,
    entry INTEGER NOT NULL, ranges TEXT NOT NULL, guest_code BLOB NOT NULL,
    digest TEXT NOT NULL, insn_count INTEGER NOT NULL, object TEXT NOT NULL,
    symbol TEXT NOT NULL, host_bytes INTEGER NOT NULL, created REAL NOT NULL,
    last_used REAL NOT NULL, hits INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS regions_by_entry ON regions (target, options, entry);
CREATE INDEX IF NOT EXISTS regions_by_object ON regions (object);
CREATE TABLE IF NOT EXISTS images (
    sha256 TEXT PRIMARY KEY, path TEXT NOT NULL, info TEXT NOT NULL, last_used REAL NOT NULL);
CREATE TABLE IF NOT EXISTS codemap (
    image TEXT NOT NULL, options TEXT NOT NULL, entry INTEGER NOT NULL,
    PRIMARY KEY (image, options, entry));
CREATE TABLE IF NOT EXISTS files (
    dev INTEGER NOT NULL, inode INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL, PRIMARY KEY (dev, inode));
CREATE TABLE IF NOT EXISTS counters (
    target TEXT PRIMARY KEY, hits INTEGER NOT NULL DEFAULT 0, misses INTEGER NOT NULL DEFAULT 0);
"""


def default_cache_dir() -> str:
    import platformdirs
    return platformdirs.user_cache_dir("bttool")


def resolve_cache_dir(cache_dir: str | None) -> str:
    return cache_dir or os.environ.get("BTTOOL_CACHE_DIR") or default_cache_dir()


def max_size_default() -> int:
    v = os.environ.get("BTTOOL_CACHE_MAX_SIZE")
    return parse_size(v) if v else DEFAULT_MAX_SIZE


def parse_size(text: str) -> int:
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if t and t[-1] in mult:
        return int(float(t[:-1]) * mult[t[-1]])
    return int(t)


class CacheError(Exception):
    """The cache directory or index cannot be used at all."""


@dataclass
class CachedRegion:
    key: str
    object_id: str
    symbol: str
    insn_count: int
    rank: int = 0      # index of the variant it belongs to (0 = best tier)
    ranges: list[tuple[int, int]] | None = None     # its guest code, at this run's addresses


# connections replaced by CacheStore.reopen, kept from finalisation
_REPLACED_CONNECTIONS: list["_Index"] = []


class _Index:
    """The index connection.  Every call runs with descriptors 0-2 held
    (hostfds.standard_fds_held): the guest shares bttool's descriptor table,
    and SQLite may open files (another connection, a journal) at any call."""

    def __init__(self, path: str) -> None:
        with standard_fds_held():
            self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 30000")
            self._db.execute("PRAGMA temp_store = MEMORY")     # no temporary files either

    def execute(self, sql: str, args: tuple | list = ()) -> sqlite3.Cursor:
        with standard_fds_held():
            return self._db.execute(sql, args)

    def executemany(self, sql: str, rows: Iterable) -> sqlite3.Cursor:
        with standard_fds_held():
            return self._db.executemany(sql, rows)

    def executescript(self, script: str) -> sqlite3.Cursor:
        with standard_fds_held():
            return self._db.executescript(script)

    def close(self) -> None:
        with standard_fds_held():
            self._db.close()


class CacheStore:
    """Low-level access to one cache directory (index + objects)."""

    def __init__(self, root: str, create: bool = True) -> None:
        self.root = root
        self.index_path = os.path.join(root, "index.sqlite")
        if create:
            os.makedirs(root, exist_ok=True)
        elif not os.path.exists(self.index_path):
            raise CacheError(f"no cache at {root}")
        try:
            with opening_high(self._relocate):    # the database, its WAL and shared memory
                self.db = _Index(self.index_path)
                if create:
                    self.db.execute("PRAGMA journal_mode = WAL")
                    self._rebuild_if_derived()
                    self.db.executescript(_SCHEMA)
                    self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                self.db.execute("PRAGMA synchronous = NORMAL")
                row = self.db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        except sqlite3.DatabaseError as e:
            raise CacheError(f"cache index {self.index_path} unusable: {e}") from None
        if row is None or row[0] != str(SCHEMA_VERSION):
            raise CacheError(f"cache index {self.index_path} has another schema")

    def _rebuild_if_derived(self) -> None:
        """A cache made by an earlier bttool (a schema in _DERIVED_SCHEMAS)
        holds nothing but translations, which can be made again: it is
        emptied and takes the current schema, instead of leaving every
        later run uncached.  Every run opens the cache, so the usual answer
        (not derived) costs a read, not a write lock."""
        if self._schema() not in _DERIVED_SCHEMAS:
            return
        with self.transaction():
            if self._schema() not in _DERIVED_SCHEMAS:     # another process rebuilt it
                return
            for (table,) in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                self.db.execute(f'DROP TABLE "{table}"')
        shutil.rmtree(os.path.join(self.root, "objects"), ignore_errors=True)   # schema 1's files

    def _schema(self) -> str | None:
        """The schema recorded in the database (None in a new, empty one)."""
        try:
            row = self.db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        except sqlite3.OperationalError:        # no meta table yet
            return None
        return row[0] if row else None

    def _relocate(self, fd: int) -> None:
        """The guest dups onto ``fd``, one of the connection's descriptors
        (hostfds.vacate): the connection is reopened at other numbers."""
        self.db.close()
        hold(fd)
        self.reopen()
        self.db.execute("PRAGMA synchronous = NORMAL")

    def reopen(self) -> None:
        """A fresh connection (in a forked child; the parent's stays its own).
        The connection being replaced is kept, never finalised: in a forked
        child it is the parent's, and closing it here would run SQLite's
        last-connection work (checkpoint, WAL removal) on the parent's files
        with lock records that are not this process's."""
        _REPLACED_CONNECTIONS.append(self.db)
        with opening_high(self._relocate):
            self.db = _Index(self.index_path)
            try:
                self.db.execute("SELECT value FROM meta").fetchall()    # opens the WAL files here
            except sqlite3.DatabaseError:
                pass        # later accesses report it, as they would have

    # -- objects ------------------------------------------------------------
    def read_object(self, object_id: str) -> bytes | None:
        """The object's bytes, or None if missing or failing its checksum."""
        row = self.db.execute("SELECT sha256, data FROM objects WHERE id = ?", (object_id,)).fetchone()
        if row is None or not isinstance(row[1], bytes) or hashlib.sha256(row[1]).hexdigest() != row[0]:
            return None
        return row[1]

    def write_translation(self, t: Translation, image: str, image_path: str, target_key: str,
                          triple: str, options_key: str, base: int) -> str:
        """Store an object and its regions; returns the object id."""
        data = t.object_code
        digest = hashlib.sha256(data).hexdigest()
        object_id = digest[:32]
        now = time.time()
        try:
            sizes = {n: sym.size for n, sym in objfile.symbols(data).items()}
        except (ValueError, struct.error, IndexError):
            sizes = {}
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?,?,?)",
                            (object_id, digest, len(data), target_key, now, now, data))
            for r in t.regions:
                self.db.execute(
                    "INSERT OR REPLACE INTO regions (key, image, image_path, target, triple, options,"
                    " entry, ranges, guest_code, digest, insn_count, object, symbol, host_bytes, created,"
                    " last_used, hits) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0)",
                    (r.key, image, image_path, target_key, triple, options_key, r.entry_rel,
                     json.dumps([[s - base, e - base] for s, e in r.ranges]), r.guest_code,
                     r.digest, r.insn_count, object_id, r.symbol, sizes.get(r.symbol, 0), now, now))
        return object_id

    def transaction(self):
        return _Transaction(self.db)

    def drop_object(self, object_id: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM regions WHERE object = ?", (object_id,))
            self.db.execute("DELETE FROM objects WHERE id = ?", (object_id,))

    def drop_region(self, key: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM regions WHERE key = ?", (key,))

    def total_size(self) -> int:
        return self.db.execute("SELECT COALESCE(SUM(size), 0) FROM objects").fetchone()[0]

    def gc(self, max_size: int) -> tuple[int, int]:
        """Evict least-recently-used objects (with their regions) until the
        objects take at most ``max_size`` bytes.  Returns (objects, bytes) freed."""
        total = self.total_size()
        freed = n = 0
        if total <= max_size:
            return 0, 0
        rows = self.db.execute("SELECT id, size FROM objects ORDER BY last_used ASC, created ASC").fetchall()
        for object_id, size in rows:
            if total - freed <= max_size:
                break
            self.drop_object(object_id)
            freed += size
            n += 1
        return n, freed

    def support_object(self, ir_text: str, target: Target) -> bytes:
        """The support module compiled for ``target``: from the cache when
        an intact copy exists (it is content-addressed by its IR, so it can
        never be stale), else compiled and stored.  Saves every run the
        ~15 ms of compiling it."""
        name = hashlib.sha256(f"{target.key()}\n{ir_text}".encode()).hexdigest()
        path = os.path.join(self.root, "support", name + ".o")
        try:
            with open(path, "rb") as f:
                data = f.read()
            body, check = data[:-32], data[-32:]
            if len(data) > 32 and hashlib.sha256(body).digest() == check:
                return body
        except OSError:
            pass
        body = codegen.compile_module(ir_text, target)[0]
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(body + hashlib.sha256(body).digest())
            os.replace(tmp, path)
        except OSError:
            pass   # a read-only cache still runs; it compiles every time
        return body

    def compact(self) -> None:
        """Give the room of deleted objects back to the file system (they
        are rows: deleting them only frees pages inside the database).  This
        rewrites the database, so only the explicit `cache clear` and `cache
        gc` do it; a run's own eviction leaves the pages for reuse."""
        try:
            self.db.execute("VACUUM")
        except sqlite3.DatabaseError:
            pass        # another process is using it: the pages stay free inside

    def clear(self) -> None:
        with self.transaction():
            for table in ("regions", "objects", "images", "codemap", "counters", "files"):
                self.db.execute(f"DELETE FROM {table}")
        for dirpath, _, files in os.walk(os.path.join(self.root, "support")):
            for f in files:
                try:
                    os.unlink(os.path.join(dirpath, f))
                except OSError:
                    pass

    # -- images and code maps ------------------------------------------------
    def image_info(self, sha: str) -> dict | None:
        row = self.db.execute("SELECT info FROM images WHERE sha256 = ?", (sha,)).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except ValueError:
            return None

    def store_image_info(self, sha: str, path: str, info: dict) -> None:
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO images VALUES (?,?,?,?)",
                            (sha, path, json.dumps(info), time.time()))

    def known_file_digest(self, ident: tuple) -> str | None:
        """The content digest recorded for a file (dev, inode, size, mtime_ns)
        whose identity has not changed since (runtime/codeunits.py)."""
        try:
            row = self.db.execute("SELECT size, mtime_ns, sha256 FROM files WHERE dev = ? AND inode = ?",
                                  ident[:2]).fetchone()
        except sqlite3.DatabaseError:
            return None
        return row[2] if row is not None and tuple(row[:2]) == tuple(ident[2:]) else None

    def remember_file_digest(self, ident: tuple, sha: str) -> None:
        try:
            with self.transaction():
                self.db.execute("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?)", (*ident, sha))
        except (sqlite3.DatabaseError, OSError):
            pass        # a read-only cache: the digest is computed again next time

    def codemap(self, image: str, options_key: str) -> list[int]:
        return [r[0] for r in self.db.execute(
            "SELECT entry FROM codemap WHERE image = ? AND options = ? ORDER BY entry", (image, options_key))]

    def add_codemap(self, image: str, options_key: str, entries: Iterable[int]) -> None:
        with self.transaction():
            self.db.executemany("INSERT OR IGNORE INTO codemap VALUES (?,?,?)",
                                [(image, options_key, e) for e in entries])

    def close(self) -> None:
        self.db.close()


class _Transaction:
    def __init__(self, db: "_Index") -> None:
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        return False


class RunCache:
    """The cache as one run sees it (what the dispatcher uses).

    Code belongs to code units (runtime/codeunits.py): the program, its
    interpreter, each library.  A unit's candidate regions (for its kind of
    code: the acceptable target and options keys, best tier first) are read
    in one query when its code is first looked up; lookups then cost a dict
    access and a digest of the region's guest bytes.  Hit counts, last-use
    times and each unit's code map are written once, at the end of the run.

    Without ``units`` the run has one unit: the image ``image_sha`` at
    ``base`` with ``variants`` (system mode, AOT)."""

    def __init__(self, store: CacheStore | None, image_sha: str, image_path: str,
                 variants: list[tuple[str, str]], triple: str, mode_key: str, base: int,
                 log: Callable[[str], None] | None = None, units: "CodeUnits | None" = None,
                 unit_variants: Callable[[bool], tuple[list[tuple[str, str]], str]] | None = None
                 ) -> None:
        """``variants``: acceptable (target key, options key) pairs, best
        first (the optimised tier before the quick tier).  ``mode_key``
        (LiftOptions.mode_key) names the code map.  ``unit_variants(pic)``
        gives both for a unit of ``units``."""
        from bttool.runtime.codeunits import CodeUnit, CodeUnits
        self.store = store
        if units is None:
            units = CodeUnits(CodeUnit(0, 1 << 64, base, image_sha, image_path, False))
            unit_variants = (lambda pic: (variants, mode_key))
        self.units = units
        self.unit_variants = unit_variants
        self.triple = triple
        self.log = log or (lambda m: None)
        self.hits = 0
        self.misses = 0
        self.used: list[str] = []
        # (image, mode key) -> entries executed (relative to the unit's base)
        self.executed: dict[tuple[str, str], set[int]] = {}
        self._candidates: dict[tuple[str, bool], dict[int, list[tuple]]] = {}

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def _loaded_candidates(self, unit) -> dict[int, list[tuple]]:
        """The unit's candidates by entry, read from the index on first use."""
        k = (unit.image, unit.pic)
        cands = self._candidates.get(k)
        if cands is None:
            cands = self._candidates[k] = self._load_candidates(unit)
        return cands

    def _load_candidates(self, unit) -> dict[int, list[tuple]]:
        """Position-independent code: the unit's own file's regions.
        Absolute code: every image's (its own first), since static programs
        linked with the same libc share code at the same addresses; the
        digest check makes a foreign region safe."""
        cands: dict[int, list[tuple]] = {}
        variants, _ = self.unit_variants(unit.pic)
        where = "image = ? AND" if unit.pic else "image = ? OR"
        try:
            rows = []
            for rank, (target, options) in enumerate(variants):
                rows += [r + (rank,) for r in self.store.db.execute(
                    "SELECT entry, key, ranges, digest, object, symbol, insn_count, image = ? AS mine"
                    f" FROM regions WHERE ({where} 1) AND target = ? AND options = ?",
                    (unit.image, unit.image, target, options)).fetchall()]
            rows.sort(key=lambda r: (not r[7], r[8]))
        except sqlite3.DatabaseError as e:
            self._disable(f"cache index unreadable ({e})")
            return {}
        for row in rows:
            cands.setdefault(row[0], []).append(row[1:7] + row[8:])
        return cands

    def lookup(self, pc: int, read: CodeReader, tier: int | None = None) -> CachedRegion | None:
        """The best valid cached region at ``pc`` (only of variant ``tier``
        when given)."""
        if self.store is None:
            return None
        unit = self.units.find(pc)
        base = unit.base
        self.executed.setdefault((unit.image, self.unit_variants(unit.pic)[1]), set()).add(pc - base)
        for key, ranges_json, digest, object_id, symbol, insns, rank in \
                self._loaded_candidates(unit).get(pc - base, ()):
            if tier is not None and rank != tier:
                continue
            try:
                ranges = [(s + base, e + base) for s, e in json.loads(ranges_json)]
            except (ValueError, TypeError):
                self.log(f"cache entry {key[:12]} corrupt (index); retranslating")
                continue
            if not all(unit.contains(s) and unit.contains(e - 1) for s, e in ranges):
                continue            # the unit is smaller here (another file version)
            if guest_digest(read, ranges, base) != digest:
                continue
            self.hits += 1
            self.used.append(key)
            return CachedRegion(key, object_id, symbol, insns, rank, ranges)
        self.misses += 1
        return None

    def has_entry(self, pc: int) -> bool:
        """Whether some cached region (valid or not) starts at ``pc``."""
        if self.store is None:
            return False
        unit = self.units.find(pc)
        return pc - unit.base in self._loaded_candidates(unit)

    def read_object(self, hit: CachedRegion) -> bytes | None:
        data = self.store.read_object(hit.object_id) if self.store else None
        if data is None:
            self.log(f"cache object {hit.object_id[:12]} corrupt or missing; retranslating")
            self._forget_object(hit.object_id)
            try:
                if self.store:
                    self.store.drop_object(hit.object_id)
            except (sqlite3.DatabaseError, OSError):
                pass
        return data

    def _forget_object(self, object_id: str) -> None:
        for cands in self._candidates.values():
            for lst in cands.values():
                lst[:] = [c for c in lst if c[3] != object_id]
        self.hits -= 1
        self.misses += 1

    def store_translation(self, t: Translation, target_key: str, options_key: str) -> None:
        if self.store is None:
            return
        unit = self.units.find(t.regions[0].entry)
        try:
            self.store.write_translation(t, unit.image, unit.path, target_key,
                                         self.triple, options_key, unit.base)
        except (OSError, sqlite3.DatabaseError) as e:
            self._disable(f"cache directory {self.store.root} not writable ({e})")

    def _disable(self, why: str) -> None:
        print(f"bttool: warning: {why}; running without caching", file=sys.stderr)
        self.store = None

    def finish(self) -> None:
        """Record hits, last use and the code maps; evict past the size cap."""
        if self.store is None:
            return
        now = time.time()
        try:
            with self.store.transaction() as db:
                if self.used:
                    db.executemany("UPDATE regions SET hits = hits + 1, last_used = ? WHERE key = ?",
                                   [(now, k) for k in self.used])
                    db.execute("UPDATE objects SET last_used = ? WHERE id IN (SELECT object FROM regions"
                               f" WHERE key IN ({','.join('?' * len(self.used))}))", [now, *self.used])
                target = self.unit_variants(self.units.default.pic)[0][-1][0]
                db.execute("INSERT OR IGNORE INTO counters (target) VALUES (?)", (target,))
                db.execute("UPDATE counters SET hits = hits + ?, misses = misses + ? WHERE target = ?",
                           (self.hits, self.misses, target))
                for (image, mode_key), entries in self.executed.items():
                    db.executemany("INSERT OR IGNORE INTO codemap VALUES (?,?,?)",
                                   [(image, mode_key, e) for e in entries])
            if self.store.total_size() > max_size_default():
                self.store.gc(max_size_default())
        except (OSError, sqlite3.DatabaseError) as e:
            print(f"bttool: warning: could not update the cache index ({e})", file=sys.stderr)


def open_store(cache_dir: str | None, log: Callable[[str], None] | None = None,
               warn: bool = True) -> CacheStore | None:
    """Open (creating) the cache; None with one warning if it is unusable."""
    root = resolve_cache_dir(cache_dir)
    try:
        return CacheStore(root)
    except (OSError, CacheError, sqlite3.DatabaseError) as e:
        if warn:
            msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            print(f"bttool: warning: cache directory {root} unusable ({msg}); running without caching",
                  file=sys.stderr)
        return None

"""The persistent translation cache: one SQLite database (WAL).

Layout of a cache directory::

    index.sqlite            regions, objects (native object code: one region
                            at run time, or a batch of regions from `bttool
                            translate`), images, code maps, counters
    support/<sha>.o         the compiled run-time support (runtime/nativeloop.py),
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
position-independent image hits wherever it is loaded.  An object and its
regions are committed in one transaction, so a reader never sees half an
entry.

Nothing read from the cache is used unchecked: objects carry their SHA-256,
every other row a checksum of the columns a run reads (cache_rows.py); a
row or object that fails is dropped, counted (``counters.dropped``) and
its code translated again in the same run.  A damaged index (cache_index.py)
is moved aside and rebuilt from the rows that still verify, with one
warning.  An index in a directory this process cannot write is read (a
system-wide cache prepared by `bttool translate` and mounted read-only) and
never written.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, TypeVar

from bttool.ir import codegen, objfile
from bttool.ir.codegen import Target
from bttool.runtime import cache_index, cache_rows, warmpack
from bttool.runtime.hostfds import hold, opening_high, standard_fds_held
from bttool.translator.guestcode import CodeReader, Span, digest_of, guest_code, parse_spans, spans_json

if TYPE_CHECKING:  # pragma: no cover
    from bttool.runtime.codeunits import CodeUnits
    from bttool.translator.translate import Translation

SCHEMA_VERSION = 8
# older layouts, rebuilt empty (_open): 3 had no row checksums, 4 no source
# IR, 5 no index by image, 6 recorded each use in the region's own row
# (a warm run of CPython rewrote 14,000 rows, guest code and all: 0.25 s),
# 7 still had those rows' (unused) last_used and hits columns
_DERIVED_SCHEMAS = {"1", "2", "3", "4", "5", "6", "7"}
DEFAULT_MAX_SIZE = 2 << 30           # bytes; BTTOOL_CACHE_MAX_SIZE overrides
# translations a run writes to the index in one transaction (RunCache.flush)
WRITE_BATCH = 64

# objects and regions are written once; a run records its uses in
# region_use, a small row per region (RunCache.finish; CacheStore.gc and
# `cache ls` read it)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS objects (
    id TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    target TEXT NOT NULL, created REAL NOT NULL, data BLOB NOT NULL, ir BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS regions (
    key TEXT PRIMARY KEY, image TEXT NOT NULL, image_path TEXT NOT NULL,
    target TEXT NOT NULL, triple TEXT NOT NULL, options TEXT NOT NULL,
    entry INTEGER NOT NULL, ranges TEXT NOT NULL, guest_code BLOB NOT NULL,
    digest TEXT NOT NULL, insn_count INTEGER NOT NULL, object TEXT NOT NULL,
    symbol TEXT NOT NULL, host_bytes INTEGER NOT NULL, created REAL NOT NULL,
    checksum INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS regions_by_entry ON regions (target, options, entry);
CREATE INDEX IF NOT EXISTS regions_by_image ON regions (image, target, options);
CREATE INDEX IF NOT EXISTS regions_by_object ON regions (object);
CREATE TABLE IF NOT EXISTS images (
    sha256 TEXT PRIMARY KEY, path TEXT NOT NULL, info TEXT NOT NULL, last_used REAL NOT NULL,
    checksum INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS codemap (
    image TEXT NOT NULL, options TEXT NOT NULL, entry INTEGER NOT NULL, checksum INTEGER NOT NULL,
    PRIMARY KEY (image, options, entry));
CREATE TABLE IF NOT EXISTS files (
    dev INTEGER NOT NULL, inode INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL, checksum INTEGER NOT NULL, PRIMARY KEY (dev, inode));
CREATE TABLE IF NOT EXISTS region_use (
    key TEXT PRIMARY KEY, hits INTEGER NOT NULL, last_used REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    target TEXT PRIMARY KEY, hits INTEGER NOT NULL DEFAULT 0, misses INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0);
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


class CacheDamaged(CacheError):
    """The index is damaged and was not rebuilt (verification without
    repair, or a directory this process cannot write)."""


@dataclass
class CachedRegion:
    key: str
    object_id: str
    symbol: str
    insn_count: int
    rank: int = 0      # index of the variant it belongs to (0 = best tier)
    ranges: list[tuple[int, int]] | None = None     # its guest code, at this run's addresses
    # its foreign units (translator/guestcode.Span): file digest -> base in this run
    foreign: dict[str, int] = field(default_factory=dict)


# connections replaced by CacheStore.reopen, kept from finalisation
_REPLACED_CONNECTIONS: list["_Index"] = []

T = TypeVar("T")


class _Index:
    """The index connection.  Every call runs with descriptors 0-2 held
    (hostfds.standard_fds_held): the guest shares bttool's descriptor table,
    and SQLite may open files (another connection, a journal) at any call."""

    def __init__(self, target: str) -> None:
        with standard_fds_held():
            self._db = cache_index.connect(target)

    def execute(self, sql: str, args: tuple | list = ()) -> sqlite3.Cursor:
        with standard_fds_held():
            return self._db.execute(sql, args)

    def executemany(self, sql: str, rows: Iterable) -> sqlite3.Cursor:
        with standard_fds_held():
            return self._db.executemany(sql, rows)

    def close(self) -> None:
        with standard_fds_held():
            self._db.close()


@functools.lru_cache(maxsize=1)
def _expected_schema() -> frozenset:
    return frozenset(cache_index.expected_schema(_SCHEMA))


def _create_schema(db) -> None:
    """The current schema, in a database that has none (inside the caller's
    transaction)."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))


def _warn_stderr(msg: str) -> None:
    print(f"bttool: warning: {msg}", file=sys.stderr, flush=True)


class CacheStore:
    """Low-level access to one cache directory (index + support objects).

    Whatever happens to the index under a run, its methods neither raise
    nor return unchecked data: rows are verified (cache_rows.py), a damaged
    index is rebuilt once (cache_index.py) with one warning, an index that
    cannot be written is still read (writes are skipped), and an index that
    stays unusable turns the store off (``disabled``) with one warning.
    ``repair=False`` (`cache verify`) raises CacheDamaged instead of
    rebuilding at open."""

    def __init__(self, root: str, create: bool = True, repair: bool = True,
                 warn: Callable[[str], None] | None = _warn_stderr,
                 log: Callable[[str], None] | None = None) -> None:
        self.root = root
        self.index_path = os.path.join(root, "index.sqlite")
        self._warn_fn = warn or (lambda m: None)
        self.log = log or (lambda m: None)
        self.warned = False
        self.disabled = False
        self.released = False                # its descriptors were given to the guest (release)
        self.rebuilt: str | None = None      # why this process rebuilt the index
        self.dropped_rows = 0                # rows that failed their checksum
        self._ident: tuple[int, int] | None = None
        self._db: _Index | None = None
        self._connect_on_use = False         # reopen_later: connect at the next access
        # warm set files as read, by path, with the file's identity: a
        # program that an execve starts in this process (or in a forked
        # child) reads them again only if they changed
        self._warm_sets_read: dict[str, tuple[tuple, tuple[frozenset[str], frozenset[str]]]] = {}
        if create:
            try:
                os.makedirs(root, exist_ok=True)
            except OSError:
                if not os.path.isdir(root):
                    raise
        elif not os.path.lexists(self.index_path):
            raise CacheError(f"no cache at {root}")
        self.readonly = not cache_index.writable(root)
        problem = self._open()
        if problem is not None:
            if not repair or self.readonly:
                raise CacheDamaged(f"cache index {self.index_path} is damaged ({problem})")
            if not self._rebuild(problem):
                raise CacheError(f"cache index {self.index_path} is damaged ({problem}) and could not "
                                 "be rebuilt")

    @property
    def db(self) -> _Index:
        """The connection (opened now if ``reopen_later`` asked for it; an
        error doing so is the access's, which ``guarded`` handles)."""
        if self._connect_on_use:
            self._connect_on_use = False
            self._connect()
            if not self.readonly:
                self._db.execute("PRAGMA synchronous = NORMAL")
        return self._db

    @db.setter
    def db(self, connection: _Index) -> None:
        self._db = connection

    # -- opening, rebuilding -----------------------------------------------
    def _open(self) -> str | None:
        """Connect and check the structure cheaply (a regular file, SQLite's
        header, the expected tables and indexes, the schema version; a new
        or older-layout index gets the current schema).  Returns what is
        damaged, or None."""
        problem = cache_index.file_problem(self.index_path)
        if problem is not None:
            return problem
        if self.readonly and not os.path.exists(self.index_path):
            raise CacheError(f"no cache at {self.root} (read-only)")
        try:
            self._connect()
            state = self._schema_state()
            if state in ("empty", "derived"):
                if self.readonly:
                    raise CacheError(f"cache index {self.index_path} is of an older bttool (read-only)")
                self._create(state)
            elif state != "ok":
                return state
            if not self.readonly:
                self.db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as e:
            if cache_index.error_kind(e) == "damage":
                return str(e)
            raise CacheError(f"cache index {self.index_path} unusable: {e}") from None
        return None

    def _connect(self) -> None:
        """A new connection (the previous one, if any, is the caller's to
        close or keep), opened under the shared index lock so that the
        files it opens (database, WAL, shared memory) are one index's."""
        with opening_high(self._relocate):    # the database, its WAL and shared memory
            if self.readonly:
                self.db = self._connect_readonly()
                return
            with cache_index.index_lock(self.root, exclusive=False):
                self._ident = cache_index.identity(self.index_path)
                self.db = _Index(cache_index.uri(self.index_path, None))
                self.db.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()     # opens the WAL

    def _connect_readonly(self) -> _Index:
        """A read-only connection: ``mode=ro`` sees a WAL someone else
        writes; a directory nobody can write in has none to see, and there
        SQLite cannot create the shared-memory file ``mode=ro`` needs, so
        the index is opened immutable."""
        self._ident = cache_index.identity(self.index_path)
        error: sqlite3.DatabaseError | None = None
        for mode in ("ro", "immutable"):
            db = _Index(cache_index.uri(self.index_path, mode))
            try:
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
                return db
            except sqlite3.DatabaseError as e:
                db.close()
                if cache_index.error_kind(e) == "damage":
                    raise
                error = e
        assert error is not None
        raise error

    def _schema_state(self) -> str:
        """"ok", "empty" (a new file), "derived" (an older bttool's layout)
        or what is wrong with the schema."""
        have = cache_index.schema_of(self.db)
        if not have:
            return "empty"
        version = self._schema()
        if version in _DERIVED_SCHEMAS:
            return "derived"
        if version == str(SCHEMA_VERSION) and have == _expected_schema():
            return "ok"
        return f"unknown schema (version {version!r}, {len(have)} tables and indexes)"

    def _create(self, state: str) -> None:
        """Give a new index the current schema; an index of an older layout
        holds nothing but translations, which can be made again: it is
        emptied (quietly: it is not damaged).  The WAL and shared-memory
        files this opens go high, out of the guest's way, as _connect's."""
        with opening_high(self._relocate):
            self.db.execute("PRAGMA journal_mode = WAL")
            with self.transaction():
                again = self._schema_state()         # another process may have done it meanwhile
                if again == "ok":
                    return
                if again == "derived":
                    for (kind, name) in self.db.execute(
                            "SELECT type, name FROM sqlite_master WHERE type = 'table'"
                            " AND name NOT LIKE 'sqlite_%'").fetchall():
                        self.db.execute(f'DROP TABLE "{name}"')
                elif again != "empty":
                    return                           # _open's caller sees it on the next check
                _create_schema(self.db)
        shutil.rmtree(os.path.join(self.root, "objects"), ignore_errors=True)   # schema 1's files

    def _schema(self) -> str | None:
        """The schema recorded in the database (None in a new, empty one)."""
        try:
            row = self.db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        except sqlite3.OperationalError:        # no meta table yet
            return None
        return row[0] if row else None

    def _rebuild(self, problem: str) -> bool:
        """The index is damaged: move it aside and build a new one from the
        rows that verify (unless another process replaced it since this
        one opened it), with one warning.  False (and the store disabled)
        when that fails."""
        if self.readonly:
            self._give_up(f"cache index {self.index_path} is damaged ({problem}) and read-only")
            return False
        self._close_quietly()
        result = None
        try:
            with opening_high(), cache_index.index_lock(self.root, exclusive=True):
                if cache_index.identity(self.index_path) == self._ident or self._ident is None:
                    result = cache_index.rebuild(self.index_path, _create_schema)
            again = self._open()
        except (OSError, sqlite3.DatabaseError, CacheError) as e:
            self._give_up(f"cache index {self.index_path} is damaged ({problem}) and could not be "
                          f"rebuilt ({e})")
            return False
        if again is not None:
            self._give_up(f"cache index {self.index_path} is damaged ({problem}); the rebuilt one "
                          f"is too ({again})")
            return False
        if result is not None:
            aside, kept, seen = result
            self.rebuilt = problem
            self.warn(f"cache index {self.index_path} was damaged ({problem}); moved aside to "
                      f"{os.path.basename(aside)} and rebuilt, keeping {kept} of {seen} regions")
        return True

    def rebuild_now(self, why: str) -> bool:
        """Rebuild the index from the rows that verify (`cache verify
        --repair` after a failed integrity check)."""
        self._ident = cache_index.identity(self.index_path)
        return self._rebuild(why)

    def _close_quietly(self) -> None:
        self._connect_on_use = False
        db = self._db
        if db is not None:
            try:
                db.close()
            except sqlite3.Error:
                pass

    def warn(self, msg: str) -> None:
        """One warning line per run: later ones go to the log (-v)."""
        if self.warned:
            self.log(msg)
            return
        self.warned = True
        self._warn_fn(msg)

    def _give_up(self, why: str) -> None:
        self.disabled = True
        self.warn(f"{why}; running without caching")

    def _relocate(self, fd: int) -> None:
        """The guest dups onto ``fd``, one of the connection's descriptors
        (hostfds.vacate): the connection is reopened at other numbers.  When
        the guest holds every other number, the store is released instead
        (as by hostfds.give_back).  Before ``reopen_later``'s connection
        is made, the descriptor is the replaced connection's, which is
        never used again: it is closed."""
        if self._connect_on_use:
            os.close(fd)
            hold(fd)
            return
        self.db.close()
        hold(fd)
        if not self.reopen():
            self.release()
            return
        if not self.readonly:
            self.db.execute("PRAGMA synchronous = NORMAL")

    def reopen(self) -> bool:
        """A fresh connection (in a forked child; the parent's stays its own).
        The connection being replaced is kept, never finalised: in a forked
        child it is the parent's, and closing it here would run SQLite's
        last-connection work (checkpoint, WAL removal) on the parent's files
        with lock records that are not this process's.  Whether it could be
        opened (a released store is not)."""
        if self.released:
            return False
        if self._db is not None:
            _REPLACED_CONNECTIONS.append(self._db)
        self._connect_on_use = False
        try:
            self._connect()
        except sqlite3.DatabaseError:
            return False    # later accesses report it, as they would have
        return True

    def reopen_later(self) -> None:
        """As ``reopen``, with the connection made at the next access (a
        forked child: most are busybox sh's, which exec at once and may
        not need the index at all; connecting cost each 3.5 ms)."""
        if self.released or self._connect_on_use:
            return
        if self._db is not None:
            _REPLACED_CONNECTIONS.append(self._db)
        self._db = None
        self._connect_on_use = True

    def release(self) -> None:
        """Give the index's descriptors to the guest, which needs their
        numbers (hostfds.give_back): the connection is closed and the store
        turned off, without a warning (RunCache keeps what it would have
        stored).  Replaced connections (a forked child's copy of its
        parent's) keep their objects forever: give_back closes their
        descriptors, and SQLite must never use or finalise them again."""
        if self.released:
            return
        self.released = True
        self.disabled = True
        self._close_quietly()
        for conn in _REPLACED_CONNECTIONS:
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(conn))

    # -- guarded access --------------------------------------------------------
    def guarded(self, what: str, op: Callable[[], T], default: T, write: bool = False) -> T:
        """``op()``, or ``default`` when the index cannot answer: a damaged
        index is rebuilt and ``op`` tried again, a read-only one skips
        writes from then on, vanished WAL files get a new connection, and a
        busy one skips this access."""
        for attempt in (0, 1):
            if self.disabled or (write and self.readonly):
                return default
            try:
                return op()
            except sqlite3.DatabaseError as e:
                kind = cache_index.error_kind(e)
                if kind == "readonly":
                    self.readonly = True
                    self.log(f"cache index read-only from now on ({e})")
                    return default
                if attempt == 0 and kind == "damage" and self._rebuild(str(e)):
                    continue
                if attempt == 0 and kind == "io":
                    self.log(f"cache index: {e}; opening it again")
                    self.reopen()
                    continue
                if kind == "busy":
                    self.log(f"cache {what} skipped ({e})")
                else:
                    self._give_up(f"cache index {self.index_path} unusable ({e})")
                return default
        return default

    def rows(self, what: str, sql: str, args: tuple | list = ()) -> list[tuple]:
        return self.guarded(what, lambda: self.db.execute(sql, args).fetchall(), [])

    def write(self, what: str, op: Callable[[], object]) -> bool:
        """Run ``op`` (which writes, in a transaction of its own); whether it did."""
        return self.guarded(what, lambda: (op(), True)[1], False, write=True)

    # -- objects ------------------------------------------------------------
    def read_source_ir(self, object_id: str) -> str | None:
        """The LLVM IR that object ``object_id`` was compiled from, or None
        when the object is missing or its IR unreadable (not kept)."""
        found = self.rows("read", "SELECT ir FROM objects WHERE id = ?", (object_id,))
        return cache_rows.unpack_ir(found[0][0]) if found else None

    def read_object(self, object_id: str) -> bytes | None:
        """The object's bytes, or None if missing or failing its checksum."""
        return self.read_objects([object_id]).get(object_id)

    def read_objects(self, object_ids: Iterable[str]) -> dict[str, bytes]:
        """Several objects in one query each 500 (a warm run's start-up
        reads hundreds): those present and intact, by id."""
        ids = sorted(set(object_ids))
        out: dict[str, bytes] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for row in self.rows("read", "SELECT id, sha256, size, data FROM objects WHERE id IN"
                                 f" ({','.join('?' * len(chunk))})", chunk):
                if cache_rows.object_ok(*row):
                    out[row[0]] = row[3]
        return out

    def objects_present(self, object_ids: Iterable[str]) -> set[str]:
        """Which of the objects have a row, intact or not."""
        ids = sorted(set(object_ids))
        out: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            out.update(r[0] for r in self.rows("read", "SELECT id FROM objects WHERE id IN"
                                                       f" ({','.join('?' * len(chunk))})", chunk))
        return out

    # -- warm sets -------------------------------------------------------------
    def _warm_path(self, program: str) -> str:
        return os.path.join(self.root, "warm", program[:32])

    def warm_sets(self, program: str) -> tuple[frozenset[str], frozenset[str]]:
        """The warm sets of the last two runs of ``program`` (its image
        digest), the latest first: the keys of the regions each took from
        the cache or made.  A hint for the next run, which installs
        those that check out as a lookup would in one go
        (RunCache.warm_hits).  Empty when there is none or it is not
        readable as written."""
        path = self._warm_path(program)
        try:
            ident = _file_identity(os.stat(path))
            known = self._warm_sets_read.get(path)
            if known is not None and known[0] == ident:
                return known[1]
            with open(path, "rb") as f:
                ident = _file_identity(os.fstat(f.fileno()))
                data = f.read(1 << 23)
        except OSError:
            return frozenset(), frozenset()
        parts = (data.decode("ascii", "replace").split("--\n", 1) + [""])[:2]
        last, before = (frozenset(k for k in p.split() if len(k) <= 64 and k.isalnum()) for p in parts)
        self._warm_sets_read[path] = (ident, (last, before))
        return last, before

    def write_warm_sets(self, program: str, last: Iterable[str], before: Iterable[str]) -> None:
        """Record the warm sets of ``program``'s last two runs."""
        self._replace(self._warm_path(program), ("".join(k + "\n" for k in sorted(last)) + "--\n"
                                                 + "".join(k + "\n" for k in sorted(before))).encode())

    def warm_pack(self, program: str) -> bytes:
        """``program``'s warm pack (runtime/warmpack.py) as written, or b""."""
        try:
            with open(self._warm_path(program) + ".pack", "rb") as f:
                return f.read(1 << 28)
        except OSError:
            return b""

    def write_warm_pack(self, program: str, data: bytes) -> None:
        self._replace(self._warm_path(program) + ".pack", data)

    def _replace(self, path: str, data: bytes) -> None:
        """Write the file at ``path`` whole (a reader sees the old one or
        the new one)."""
        if self.readonly or self.disabled:
            return
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with tempfile.NamedTemporaryFile("wb", dir=os.path.dirname(path), delete=False,
                                             prefix=".warm-") as f:
                f.write(data)
            os.replace(f.name, path)
        except OSError as e:
            self.log(f"cache {os.path.basename(path)} not written ({e})")

    def write_translation(self, t: Translation, image: str, image_path: str, target_key: str,
                          triple: str, options_key: str) -> str:
        """Store an object and its regions (each with its row checksum);
        returns the object id."""
        return self.write_translations([(t, image, image_path, target_key, triple, options_key)])[0]

    def write_translations(self, entries: list[tuple]) -> list[str]:
        """``write_translation`` of each entry (its arguments), all in one
        transaction (a commit per region cost a cold run of ls 0.3 s);
        returns the object ids."""
        made = [self._translation_rows(*e) for e in entries]

        def op() -> None:
            with self.transaction():
                for obj, rows in made:
                    self.db.execute("INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?,?,?)", obj)
                    self.db.executemany(
                        f"INSERT OR REPLACE INTO regions ({', '.join(cache_rows.COVERED['regions'])},"
                        " guest_code, created, checksum) VALUES"
                        f" ({','.join('?' * (len(cache_rows.COVERED['regions']) + 3))})", rows)
        if made:
            self.write("store", op)
        return [obj[0] for obj, _rows in made]

    def _translation_rows(self, t: Translation, image: str, image_path: str, target_key: str,
                          triple: str, options_key: str) -> tuple[tuple, list[tuple]]:
        """The objects row of a translation and its regions rows."""
        data = t.object_code
        digest = hashlib.sha256(data).hexdigest()
        object_id = cache_rows.object_id_of(digest)
        now = time.time()
        try:
            sizes = {n: sym.size for n, sym in objfile.symbols(data).items()}
        except (ValueError, struct.error, IndexError):
            sizes = {}
        rows = []
        for r in t.regions:
            covered = (r.key, image, image_path, target_key, triple, options_key, r.entry_rel,
                       spans_json(r.spans), r.digest,
                       r.insn_count, object_id, r.symbol, sizes.get(r.symbol, 0))
            rows.append(covered + (r.guest_code, now, cache_rows.row_checksum(covered)))

        source_ir = cache_rows.pack_ir(t.source_ir)
        return (object_id, digest, len(data), target_key, now, data, source_ir), rows

    def transaction(self):
        return _Transaction(self.db)

    def drop_object(self, object_id: str) -> None:
        def op() -> None:
            with self.transaction():
                self.db.execute("DELETE FROM region_use WHERE key IN"
                                " (SELECT key FROM regions WHERE object = ?)", (object_id,))
                self.db.execute("DELETE FROM regions WHERE object = ?", (object_id,))
                self.db.execute("DELETE FROM objects WHERE id = ?", (object_id,))
        self.write("drop", op)

    def drop_region(self, key: str) -> None:
        self.drop_row("regions", "key", key)

    def drop_row(self, table: str, column: str, value: object) -> None:
        """Delete the rows of ``table`` whose ``column`` is ``value`` (a row
        that failed its check: by rowid, since its key may be the damage)."""
        def op() -> None:
            with self.transaction():
                self.db.execute(f"DELETE FROM {table} WHERE {column} = ?", (value,))
        self.write("drop", op)

    def may_exceed(self, max_size: int) -> bool:
        """Whether the objects may take more than ``max_size`` bytes: not
        when the index file and its write-ahead log (which hold them) are
        smaller.  Summing the objects' sizes reads every object row (20 ms
        at each run's end in a cache of 20,000 regions)."""
        held = 0
        for path in (self.index_path, self.index_path + "-wal"):
            try:
                held += os.path.getsize(path)
            except OSError:
                pass
        return held > max_size and self.total_size() > max_size

    def total_size(self) -> int:
        """Bytes the objects take, with the IR kept beside them."""
        found = self.rows("size", "SELECT COALESCE(SUM(size + length(ir)), 0) FROM objects")
        return found[0][0] if found else 0

    def gc(self, max_size: int) -> tuple[int, int]:
        """Evict least-recently-used objects (with their regions) until the
        objects take at most ``max_size`` bytes.  Returns (objects, bytes)
        freed.  An object was last used when the latest of its regions was
        (a run records its use on the regions only, RunCache.finish)."""
        total = self.total_size()
        freed = n = 0
        if total <= max_size or self.readonly:
            return 0, 0
        for object_id, size, _ in self.rows(
                "gc", "SELECT o.id, o.size + length(o.ir), MAX(o.created, COALESCE("
                      "(SELECT MAX(u.last_used) FROM regions r JOIN region_use u ON u.key = r.key"
                      " WHERE r.object = o.id), 0)) AS used"
                      " FROM objects o ORDER BY used ASC, o.created ASC"):
            if total - freed <= max_size:
                break
            self.drop_object(object_id)
            freed += size if isinstance(size, int) else 0
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
        if self.readonly or self.disabled:
            return
        try:
            self.db.execute("VACUUM")
        except sqlite3.DatabaseError:
            pass        # another process is using it: the pages stay free inside

    def clear(self) -> None:
        def op() -> None:
            with self.transaction():
                for table in ("regions", "objects", "images", "codemap", "counters", "files"):
                    self.db.execute(f"DELETE FROM {table}")
        self.write("clear", op)
        shutil.rmtree(os.path.join(self.root, "warm"), ignore_errors=True)
        shutil.rmtree(os.path.join(self.root, "stencils"), ignore_errors=True)
        for dirpath, _, files in os.walk(os.path.join(self.root, "support")):
            for f in files:
                try:
                    os.unlink(os.path.join(dirpath, f))
                except OSError:
                    pass

    # -- images, files and code maps -------------------------------------------
    def _checked(self, table: str, where: str, args: tuple) -> list[tuple]:
        """The rows of ``table`` matching ``where``, covered columns first,
        without those that fail their checksum (dropped on the way)."""
        cols = cache_rows.COVERED[table]
        out = []
        for row in self.rows(table, f"SELECT {', '.join(cols)}, checksum, rowid FROM {table} WHERE {where}",
                             args):
            if cache_rows.row_ok(row[:-2], row[-2]):
                out.append(row[:-2])
            else:
                self.log(f"cache {table} row {row[-1]} corrupt; dropped")
                self.dropped_rows += 1
                self.drop_row(table, "rowid", row[-1])
        return out

    def _put(self, table: str, values: tuple, extra: tuple = (), how: str = "REPLACE") -> None:
        """Write one row of ``table`` (covered values, then ``extra``
        columns) with its checksum."""
        cols = cache_rows.COVERED[table] + (("last_used",) if extra else ()) + ("checksum",)
        sql = (f"INSERT OR {how} INTO {table} ({', '.join(cols)}) VALUES ({','.join('?' * len(cols))})")

        def op() -> None:
            with self.transaction():
                self.db.execute(sql, values + extra + (cache_rows.row_checksum(values),))
        self.write(table, op)

    def image_info(self, sha: str) -> dict | None:
        rows = self._checked("images", "sha256 = ?", (sha,))
        if not rows:
            return None
        try:
            return json.loads(rows[0][2])
        except ValueError:
            return None

    def store_image_info(self, sha: str, path: str, info: dict) -> None:
        self._put("images", (sha, path, json.dumps(info)), (time.time(),))

    def known_file_digest(self, ident: tuple) -> str | None:
        """The content digest recorded for a file (dev, inode, size, mtime_ns)
        whose identity has not changed since (runtime/codeunits.py)."""
        rows = self._checked("files", "dev = ? AND inode = ?", tuple(ident[:2]))
        return rows[0][4] if rows and tuple(rows[0][2:4]) == tuple(ident[2:]) else None

    def remember_file_digest(self, ident: tuple, sha: str) -> None:
        self._put("files", (*ident, sha))

    def codemap(self, image: str, options_key: str) -> list[int]:
        return sorted(r[2] for r in self._checked("codemap", "image = ? AND options = ?", (image, options_key)))

    def codemap_rows(self, image: str, options_key: str, entries: Iterable[int]) -> list[tuple]:
        """Rows for the code map (with their checksums), for RunCache.finish."""
        return [(image, options_key, e, cache_rows.row_checksum((image, options_key, e))) for e in entries]

    def close(self) -> None:
        self._close_quietly()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on an exception (a failed
    COMMIT included, so the connection is never left inside a transaction)."""

    def __init__(self, db: "_Index") -> None:
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
                return False
            except sqlite3.Error:
                self._rollback()
                raise
        self._rollback()
        return False

    def _rollback(self) -> None:
        try:
            self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass


@dataclass
class KeptRecords:
    """RunCache.keep_records: a unit's regions as a run that ends by an
    execve in the same process saw them."""
    program: str
    image: str                          # the unit's
    base: int                           # and where it was
    records: dict[str, tuple]           # key -> RunCache._checked's entry
    part: "warmpack.UnitPart | None"    # the unit's part of that run's pack
    pack: "dict[str, warmpack.UnitPart] | None"

    def regions(self) -> list[warmpack.PackedRegion]:
        return [rec[1] for rec in self.records.values()]

    def only(self, pcs) -> None:
        """Keep the records of the regions at ``pcs`` alone."""
        self.records = {k: rec for k, rec in self.records.items() if self.base + rec[1].entry in pcs}


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
        self._candidates: dict[tuple, dict[int, list[tuple]]] = {}
        self._verified: set[int] = set()        # rowids of candidate rows that passed their check
        self._dropped = 0
        # translations not written yet (``flush``)
        self.pending: list[tuple] = []
        # The program's warm sets (CacheStore.warm_sets), read before the
        # guest runs (it opens a file).  This run installs at once what
        # both of the last two runs used (all of the last one's after a
        # single run): busybox's applets share one image, and installing
        # the previous applet's regions for the next one made four
        # alternating applets 8% slower.  Also: the keys of the
        # regions this run made.
        self.program = image_sha
        last, before = store.warm_sets(image_sha) if self.enabled else (frozenset(), frozenset())
        self._warm_last, self._warm_before = last, before
        self._warm = last & before if before else last
        self.made: list[str] = []
        # regions installed as the program this one's execve replaced had
        # them (adopt_records), by key: in the next warm set, but not
        # cache hits
        self.kept: list[dict[str, tuple]] = []
        # warm rows by key, as read (None: not in the index, or dropped)
        self._warm_row_cache: dict[str, tuple | None] = {}
        # the program's warm pack (runtime/warmpack.py) by unit image, read
        # when a unit's code first runs; the units whose memory did not
        # hold its code; the regions this run checked or made, with the
        # bytes they were checked or made against (what the next pack holds)
        self._pack: dict[str, warmpack.UnitPart] | None = None
        self._pack_failed: set[str] = set()
        self._checked: dict[str, tuple[str, warmpack.PackedRegion, warmpack.Runs | None]] = {}
        self._present: set[str] = set()         # objects with a row (or loaded), asked once
        # pack parts of units a program that this one's execve replaced
        # had from its pack (adopt_records), for regions it kept
        self._kept_parts: dict[str, warmpack.UnitPart] = {}
        # per unit (_candidates_at): lookups that queried the index, and
        # the units whose rows were all read
        self._queries: dict[tuple, int] = {}
        self._complete: set[tuple] = set()
        # region rows read from the index (--stats-json cache_rows_read): a
        # warm run reads its warm set's, however many other programs the
        # cache serves
        self.rows_read = 0

    @property
    def enabled(self) -> bool:
        return self.store is not None and not self.store.disabled

    @property
    def dropped(self) -> int:
        """Cache rows and objects this run found corrupt and dropped."""
        return self._dropped + (self.store.dropped_rows if self.store is not None else 0)

    def _candidates_at(self, unit, entry: int) -> list[tuple]:
        """The unit's candidate rows at ``entry`` (relative to its base),
        best first, read from the index on first use (again when the
        variants change: precise faults, Executor.require_precise_faults).
        Position-independent code: the unit's own file's regions.
        Absolute code: every image's (its own first), since static programs
        linked with the same libc share code at the same addresses; the
        digest check makes a foreign region safe.  Rows are verified when
        they are first considered (``_intact``).  One query per entry, by
        the index on entries: reading all of a unit's rows at its first
        lookup cost every start in proportion to the cache (a static
        program that returns 0 started in 229 ms instead of 112 beside
        CPython's 12,000 absolute regions; libc's rows, from every
        program that used it, slowed every dynamically linked start).
        A run that keeps looking up (a cold one: some 8 lookups per region
        translated, at ~35 us a query) reads the unit's rows in one go once
        they are fewer than four times the lookups made so far."""
        variants, _ = self.unit_variants(unit.pic)
        k = (unit.image, unit.pic, tuple(variants))
        cands = self._candidates.setdefault(k, {})
        rows = cands.get(entry)
        if rows is not None or k in self._complete or not self.enabled:
            return rows or []
        n = self._queries[k] = self._queries.get(k, 0) + 1
        if n % _BULK_CHECK == 0 and self._count(unit, variants) <= 4 * n:
            self._complete.add(k)
            cands.clear()
            for row in self._select(unit, variants):
                cands.setdefault(row[_ENTRY], []).append(row)
            return cands.get(entry, [])
        rows = cands[entry] = self._select(unit, variants, entry)
        return rows

    def _where(self, unit, entry: int | None) -> str:
        return ("target = ? AND options = ?" + ("" if entry is None else " AND entry = ?")
                + (" AND image = ?" if unit.pic else ""))

    def _select(self, unit, variants: list[tuple[str, str]], entry: int | None = None) -> list[tuple]:
        """The unit's candidate rows (at ``entry``, or all), best first."""
        rows = []
        for rank, (target, options) in enumerate(variants):
            args = (unit.image, target, options) + (() if entry is None else (entry,)) \
                + ((unit.image,) if unit.pic else ())
            rows += [r + (rank,) for r in self.store.rows(
                "lookup", f"SELECT {_REGION_COLUMNS}, checksum, rowid, image = ? AS mine FROM regions"
                f" WHERE {self._where(unit, entry)}", args)]
        self.rows_read += len(rows)
        rows.sort(key=lambda r: (not r[_MINE], r[_RANK]))
        return rows

    def _count(self, unit, variants: list[tuple[str, str]]) -> int:
        n = 0
        for target, options in variants:
            found = self.store.rows("lookup", f"SELECT COUNT(*) FROM regions WHERE {self._where(unit, None)}",
                                    (target, options) + ((unit.image,) if unit.pic else ()))
            n += found[0][0] if found else 0
        return n

    def _warm_rows(self) -> list[tuple]:
        """The rows of the warm set's regions (any unit, any variant) that
        the warm pack does not serve, read in one query each 500 keys when
        a unit's code first runs (again for a unit whose pack part failed):
        a warm run reads what it will use, not every row of its units."""
        pack = self._pack_parts()
        packed = {r.key for image, part in pack.items() if image not in self._pack_failed
                  for r in part.regions}
        want = sorted(self._warm - packed)
        missing = [k for k in want if k not in self._warm_row_cache]
        for i in range(0, len(missing), 500):
            chunk = missing[i:i + 500]
            for k in chunk:
                self._warm_row_cache[k] = None
            rows = self.store.rows("lookup", f"SELECT {_REGION_COLUMNS}, checksum, rowid FROM regions"
                                             f" WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            self.rows_read += len(rows)
            for row in rows:
                self._warm_row_cache[row[0]] = row
        return [row for row in map(self._warm_row_cache.get, want) if row is not None]

    def _pack_parts(self) -> dict[str, warmpack.UnitPart]:
        """The program's warm pack by unit image ({} when there is none or
        it is damaged), read once."""
        if self._pack is None:
            data = self.store.warm_pack(self.program) if self.enabled and self._warm else b""
            self._pack = warmpack.unpack(data) if data else {}
            if self._pack is None:
                self.log("cache warm pack damaged; its regions are checked one by one")
                self._pack = {}
        return self._pack

    def _pack_hits(self, unit, read: CodeReader, skip: Callable[[int], bool]) -> list[tuple[int, CachedRegion]]:
        """(pc, region) for the regions of ``unit`` that the warm pack
        serves: all of its part, when the unit's memory holds the code they
        were made from (the best tier of each entry, except at pcs ``skip``
        names); none otherwise.  Not yet counted as hits."""
        part = self._pack_parts().get(unit.image)
        if part is None or unit.image in self._pack_failed:
            return []
        if not part.holds_here(read, unit.base):
            self._pack_failed.add(unit.image)
            self.log(f"cache warm pack: the code of {unit.path} differs; its regions are checked one by one")
            return []
        rank_of = {v: rank for rank, v in enumerate(self.unit_variants(unit.pic)[0])}
        best: dict[int, tuple[int, warmpack.PackedRegion]] = {}
        for r in part.regions:
            rank = rank_of.get((r.target, r.options))
            if rank is not None and r.key in self._warm and (r.entry not in best or rank < best[r.entry][0]):
                best[r.entry] = (rank, r)
        out = []
        for entry, (rank, r) in best.items():
            if skip(unit.base + entry):
                continue
            self._checked[r.key] = (unit.image, r, None)     # its code is the pack's (_write_pack)
            out.append((unit.base + entry, CachedRegion(r.key, r.object_id, r.symbol, r.insns, rank,
                                                        [(unit.base + s, unit.base + e) for s, e in r.spans])))
        return out

    def _intact(self, row: tuple) -> bool:
        """Whether a candidate row passes its checksum; one that fails is
        dropped from the index and never considered again."""
        rowid = row[_ROWID]
        if rowid in self._verified:
            return True
        if cache_rows.row_ok(row[:_CHECKSUM], row[_CHECKSUM]):
            self._verified.add(rowid)
            return True
        self.log(f"cache entry {str(row[0])[:12]} corrupt (index row {rowid}); retranslating")
        self._dropped += 1
        for cands in self._candidates.values():
            lst_for = cands.get(row[_ENTRY])
            if lst_for is not None and row in lst_for:
                lst_for.remove(row)
        if self._warm_row_cache.get(row[0]) is not None and self._warm_row_cache[row[0]][_ROWID] == rowid:
            self._warm_row_cache[row[0]] = None
        self.store.drop_row("regions", "rowid", rowid)
        return False

    def lookup(self, pc: int, read: CodeReader, tier: int | None = None) -> CachedRegion | None:
        """The best valid cached region at ``pc`` (only of variant ``tier``
        when given)."""
        if not self.enabled:
            return None
        unit = self.units.find(pc)
        base = unit.base
        self.executed.setdefault((unit.image, self.unit_variants(unit.pic)[1]), set()).add(pc - base)
        for row in list(self._candidates_at(unit, pc - base)):
            if tier is not None and row[_RANK] != tier:
                continue
            hit = self._hit(row, unit, read)
            if hit is not None:
                return hit
        self.misses += 1
        return None

    def _hit(self, row: tuple, unit, read: CodeReader) -> CachedRegion | None:
        """The region of candidate ``row`` of ``unit`` if it is intact and
        its guest code is the code there now (counted as a hit), else None."""
        if not self._intact(row):
            return None
        spans = self._spans_here(row[_RANGES], unit)
        if spans is None:
            return None
        datas = guest_code(read, spans)
        if digest_of(spans, datas) != row[_DIGEST]:
            return None
        key = row[0]
        self.hits += 1
        self.used.append(key)
        if _packable(spans, unit):
            rel = tuple((sp.start - sp.base, sp.end - sp.base) for sp in spans)
            self._checked[key] = (unit.image, warmpack.PackedRegion(
                row[_ENTRY], key, row[_OBJECT], row[_SYMBOL], row[_INSNS], row[_TARGET], row[_OPTIONS], rel),
                warmpack.runs(rel, b"".join(datas)))
        return CachedRegion(key, row[_OBJECT], row[_SYMBOL], row[_INSNS], row[_RANK],
                            [(s.start, s.end) for s in spans],
                            {s.image: s.base for s in spans if s.image})

    def warm_hits(self, unit, read: CodeReader, skip: Callable[[int], bool],
                  loaded: frozenset[str] | set[str] = frozenset()) -> list[tuple[int, CachedRegion]]:
        """(pc, region) for the regions of ``unit`` in the program's warm
        set (see __init__) that are valid here now, the best tier
        of each entry, except at pcs ``skip`` names, and those of a packed
        region only when its object is still there or among those ``loaded``
        names (already in the engine: a program an execve started in the
        same process, runtime/execinplace.py).  A warm run's
        dispatcher installs them all at once when the unit's code first
        runs, instead of one exit, lookup and object read per region."""
        if not self.enabled or not self._warm:
            return []
        base = unit.base
        packed = self._pack_hits(unit, read, skip)
        taken = {pc: h.rank for pc, h in packed}
        variants, _ = self.unit_variants(unit.pic)
        rank_of = {v: rank for rank, v in enumerate(variants)}
        best: dict[int, list[tuple]] = {}
        for row in self._warm_rows():
            rank = rank_of.get((row[_TARGET], row[_OPTIONS]))
            mine = row[_IMAGE] == unit.image
            if rank is not None and (mine or not unit.pic) and isinstance(row[_ENTRY], int):
                best.setdefault(row[_ENTRY], []).append(row + (mine, rank))
        # A row of a better tier than the pack's region at its entry wins:
        # the pack is rewritten only when it changes by more than a
        # sixteenth, so it may still hold the tier-1 region of an entry
        # whose tier-2 region a later run made; served from the pack, that
        # entry ran tier-1 code until it went hot again and was promoted
        # (through a lookup) in every run (CPython: 206 entries a run).
        chosen, replaced = [], set()
        for entry, rows in best.items():
            pc = base + entry
            if skip(pc):
                continue
            for row in sorted(rows, key=lambda r: (r[_RANK], not r[_MINE])):
                if pc in taken and row[_RANK] >= taken[pc]:
                    break
                hit = self._hit(row, unit, read)
                if hit is not None:
                    chosen.append((pc, hit))
                    if pc in taken:
                        replaced.add(pc)
                    break
        if replaced:
            for pc, h in packed:
                if pc in replaced:
                    self._checked.pop(h.key, None)
            packed = [(pc, h) for pc, h in packed if pc not in replaced]
        # Only whether each packed region's object has a row is asked here
        # (the index answers without reading a blob); the objects are read
        # by ``read_objects`` in batches that the dispatcher loads one at a
        # time, so a warm CPython does not hold its 15,000 objects (65 MB)
        # at once.  A packed region whose object is gone (evicted since the
        # pack was written) is not served; one whose object is damaged is,
        # so that reading it drops and counts it as a row's would be.
        self._present.update(loaded.intersection(h.object_id for _, h in packed))
        asked = {h.object_id for _, h in packed} - self._present
        if asked:
            self._present.update(self.store.objects_present(asked))
            packed = [(pc, h) for pc, h in packed if h.object_id in self._present]
        self.hits += len(packed)
        self.used.extend(h.key for _, h in packed)
        return packed + chosen

    def keep_records(self, units) -> "list[tuple[object, KeptRecords]]":
        """What this run knows of the regions it checked or made, per unit
        of ``units`` (code units of one unit only: warm pack material), for
        a program an execve starts in this process that keeps them
        (runtime/keptcode.py, ``adopt_records``): an execve ends this run
        without ``finish``, so the new run puts them in its warm set."""
        by_image: dict[str, dict[str, tuple]] = {}
        for key, rec in self._checked.items():
            by_image.setdefault(rec[0], {})[key] = rec
        out = []
        for image, records in by_image.items():
            unit = units.by_image(image)
            if unit is not None:
                part = self._pack.get(image) if self._pack and image not in self._pack_failed else None
                out.append((unit, KeptRecords(self.program, image, unit.base, records, part, self._pack)))
        return out

    def adopt_records(self, kept: "KeptRecords") -> None:
        """The regions ``kept`` describes are installed in this run without
        a lookup (keep_records): they go into the next warm set and pack
        with the code they were checked or made against (their use is the
        old run's, not a hit of this one: the shell that forked it records
        its own).  The same program's pack, as the old run read it, serves
        this run too (without it, ``finish`` would find no pack and write a
        new one)."""
        if self._checked:
            self._checked.update(kept.records)
        else:           # (taken over, not copied: see keptcode.prepare)
            self._checked = kept.records
        self.kept.append(kept.records)
        if kept.part is not None:
            self._kept_parts.setdefault(kept.image, kept.part)
        if self._pack is None and kept.program == self.program and kept.pack is not None:
            self._pack = kept.pack

    def _spans_here(self, stored: str, unit) -> list[Span] | None:
        """A candidate's spans at this run's addresses, or None when its code
        cannot be here: a unit smaller than the file version it was made
        from, or a foreign unit (translator/guestcode.Span) that this
        process has not mapped."""
        try:
            rel = parse_spans(stored)
        except ValueError:
            return None         # intact as written: not spans is not ours
        spans = []
        for start, end, image in rel:
            u = self.units.by_image(image) if image else unit
            if u is None:
                return None
            s = Span(start + u.base, end + u.base, u.base, image)
            if not (u.contains(s.start) and u.contains(s.end - 1)):
                return None
            spans.append(s)
        return spans

    def has_entry(self, pc: int) -> bool:
        """Whether some cached region (valid or not) starts at ``pc``."""
        if not self.enabled:
            return False
        unit = self.units.find(pc)
        return bool(self._candidates_at(unit, pc - unit.base))

    def read_object(self, hit: CachedRegion) -> bytes | None:
        """The object of a hit, verified; a corrupt or missing one is
        dropped with its regions (counted), and the caller translates."""
        return self.read_objects([hit]).get(hit.object_id)

    def read_objects(self, hits: Iterable[CachedRegion]) -> dict[str, bytes]:
        """The objects of several hits by id, verified, in one query per
        500; each corrupt or missing one is dropped as ``read_object``
        drops it."""
        ids = {h.object_id for h in hits}
        found = self.store.read_objects(ids) if self.enabled else {}
        for object_id in sorted(ids - found.keys()):
            self.log(f"cache object {object_id[:12]} corrupt or missing; retranslating")
            self._dropped += 1
            self._forget_object(object_id)
            if self.enabled:
                self.store.drop_object(object_id)
        return found

    def _forget_object(self, object_id: str) -> None:
        for cands in self._candidates.values():
            for lst in cands.values():
                lst[:] = [c for c in lst if c[_OBJECT] != object_id]
        for k, r in self._warm_row_cache.items():
            if r is not None and r[_OBJECT] == object_id:
                self._warm_row_cache[k] = None
        self.hits -= 1
        self.misses += 1

    def store_translation(self, t: Translation, target_key: str, options_key: str) -> None:
        released = self.store is not None and self.store.released
        if not (self.enabled or released) or self.store.readonly:
            return
        unit = self.units.find(t.regions[0].entry)
        self.made.extend(r.key for r in t.regions)
        self._record_made(t, unit, target_key, options_key)
        self.pending.append((t, unit.image, unit.path, target_key, self.triple, options_key))
        if len(self.pending) >= WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        """Write the translations made since the last flush (``pending``),
        in one transaction; kept for ``finish`` while the store is
        released.  The dispatcher flushes before fork, exec and exit; a run
        killed outright loses at most WRITE_BATCH - 1 translations."""
        if self.pending and self.store is not None and not self.store.released:
            if self.enabled and not self.store.readonly:
                self.store.write_translations(self.pending)
            self.pending.clear()

    def _record_made(self, t: Translation, unit, target_key: str, options_key: str) -> None:
        """Keep the code each region of ``t`` was made from, for the next
        warm pack (regions of the unit alone: runtime/warmpack.py)."""
        object_id = cache_rows.object_id_of(hashlib.sha256(t.object_code).hexdigest())
        for r in t.regions:
            if not _packable(r.spans, unit):
                continue
            rel = tuple((sp.start - sp.base, sp.end - sp.base) for sp in r.spans)
            self._checked[r.key] = (unit.image, warmpack.PackedRegion(
                r.entry_rel, r.key, object_id, r.symbol, r.insn_count, target_key, options_key, rel),
                warmpack.runs(rel, r.guest_code))

    def _write_pack(self, store: CacheStore, warm: frozenset[str]) -> None:
        """The warm pack for the next run, which installs ``warm`` (the
        regions this run used or made) as far as the run before used them
        too.  Written when this run had no pack it could use, or when the
        pack would change by more than a sixteenth: a run of CPython that
        translates a few regions more changes its set, and packing 14,000
        regions again costs 0.25 s; what the pack lacks is checked one by
        one, what it holds beyond the set is not installed."""
        following = warm & self._warm_last if self._warm_last else warm
        keys = sorted(k for k in following if k in self._checked)
        served = {r.key for image, part in (self._pack or {}).items() if image not in self._pack_failed
                  for r in part.regions}
        differ = len(served.symmetric_difference(keys))
        if differ == 0 or served and differ <= max(64, len(keys) // 16):
            return
        units: dict[str, list] = {}
        for key in keys:
            image, region, code = self._checked[key]
            if code is None:
                part = (self._pack or {}).get(image) or self._kept_parts.get(image)
                code = part.runs_of(region) if part is not None else None
            if code is not None:
                units.setdefault(image, []).append((region, code))
        store.write_warm_pack(self.program, warmpack.pack(units))

    def _reopened(self) -> CacheStore | None:
        """After the store was released: the index opened again (at exit,
        when the guest has left descriptors free), quietly; None if it
        cannot be, or must not be (give_back closed SQLite descriptors
        behind SQLite's back, which a new connection might reuse)."""
        from bttool.runtime import hostfds
        if hostfds.swept_foreign:
            return None
        try:
            store = CacheStore(self.store.root, warn=None, log=self.log)
        except (OSError, CacheError, sqlite3.DatabaseError):
            return None
        if store.disabled or store.readonly:
            store.close()
            return None
        return store

    def finish(self) -> None:
        """Record hits, last use, the corrupt entries dropped and the code
        maps; evict past the size cap.  A run whose store was released
        stores what it translated since, if the index opens again."""
        if self.store is not None and self.store.released:
            store = self._reopened()
            if store is None:
                return
            self.store = store
        self.flush()
        if not self.enabled or self.store.readonly:
            return
        now = time.time()
        store = self.store
        target = self.unit_variants(self.units.default.pic)[0][-1][0]
        codemap = [row for (image, mode_key), entries in self.executed.items()
                   for row in store.codemap_rows(image, mode_key, entries)]

        def op() -> None:
            if not (self.used or codemap or self.hits or self.misses or self.dropped):
                return
            with store.transaction() as db:
                if self.used:
                    # in region_use, not the regions' or objects' rows: an
                    # update rewrites a whole row, blobs and all
                    db.executemany("INSERT INTO region_use VALUES (?, 1, ?) ON CONFLICT (key)"
                                   " DO UPDATE SET hits = hits + 1, last_used = excluded.last_used",
                                   [(k, now) for k in self.used])
                db.execute("INSERT OR IGNORE INTO counters (target) VALUES (?)", (target,))
                db.execute("UPDATE counters SET hits = hits + ?, misses = misses + ?, dropped = dropped + ?"
                           " WHERE target = ?", (self.hits, self.misses, self.dropped, target))
                db.executemany("INSERT OR IGNORE INTO codemap VALUES (?,?,?,?)", codemap)
        store.write("finish", op)
        # what the next run will want at once: the regions this one took
        # from the cache or made (also those made along with others, which
        # may not have run: which of them ran is not known without lookups)
        warm = frozenset(self.used).union(self.made, *self.kept)
        if (warm, self._warm_last) != (self._warm_last, self._warm_before):
            store.write_warm_sets(self.program, warm, self._warm_last)
        self._write_pack(store, warm)
        if store.may_exceed(max_size_default()):
            store.gc(max_size_default())

    def close(self) -> None:
        """At the end of a run, after ``finish``: close the index, so that
        SQLite checkpoints the write-ahead log into the file and removes
        it.  bttool ends with os._exit (runtime/runend.py), which closes
        nothing: the log grew by every warm run's updates (25 MB after a
        few dozen runs) and each start read through it (8 ms)."""
        if self.store is not None:
            self.store.close()


# the candidate rows of RunCache: the regions' covered columns, then these
_REGION_COLUMNS = ", ".join(cache_rows.COVERED["regions"])
_ENTRY, _RANGES, _DIGEST, _INSNS, _OBJECT, _SYMBOL = (
    cache_rows.COVERED["regions"].index(c) for c in ("entry", "ranges", "digest", "insn_count", "object",
                                                      "symbol"))
_TARGET, _OPTIONS, _IMAGE = (cache_rows.COVERED["regions"].index(c) for c in ("target", "options", "image"))
_CHECKSUM = len(cache_rows.COVERED["regions"])
_ROWID, _MINE, _RANK = _CHECKSUM + 1, _CHECKSUM + 2, _CHECKSUM + 3
# lookups of a unit between checks whether reading all its rows is cheaper
_BULK_CHECK = 64


def _file_identity(st: os.stat_result) -> tuple:
    """What tells a replaced or rewritten file from the one read before."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _packable(spans: list[Span], unit) -> bool:
    """Whether a region with ``spans`` can go into ``unit``'s part of a
    warm pack: all its code in the unit itself (not a foreign unit's, not
    code outside every unit, such as a JIT's, which the default unit
    serves)."""
    return all(not s.image and s.base == unit.base and unit.contains(s.start) and unit.contains(s.end - 1)
               for s in spans)


def _out_of_descriptors() -> bool:
    """Whether this process has too few free descriptor numbers left for
    the index (hostfds.scarce)."""
    from bttool.runtime import hostfds
    return hostfds.scarce()


def open_store(cache_dir: str | None, log: Callable[[str], None] | None = None,
               warn: bool = True) -> CacheStore | None:
    """Open (creating) the cache; None with one warning if it is unusable.
    A damaged index is rebuilt (one warning); one that cannot be written
    is opened read-only."""
    root = resolve_cache_dir(cache_dir)
    try:
        store = CacheStore(root, warn=_warn_stderr if warn else None, log=log)
        codegen.remember_host_in(root)      # so a warm run needs no LLVM
        return store
    except (OSError, CacheError, sqlite3.DatabaseError) as e:
        if _out_of_descriptors():
            # the guest holds every number (it execed with all of them
            # taken): the run goes on without a cache, as after give_back
            if log is not None:
                log(f"cache directory {root} not opened: no free descriptor ({e})")
            return None
        if warn:
            msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            _warn_stderr(f"cache directory {root} unusable ({msg}); running without caching")
        return None

"""The cache index as a file: telling a damaged index from a busy or
read-only one, and rebuilding a damaged one.

A damaged index (bytes flipped, truncated, garbage, a directory in its
place, a schema this bttool does not know) is not worked around run after
run: the run that finds it moves it aside (``index.damaged.sqlite``, one
copy, replaced by the next) and builds a new index holding every row of the
old one that still verifies (cache_rows.py).  Rebuilding takes an exclusive
lock on ``index.lock``; opening the index takes it shared, so no process
opens the index by name while it is being replaced, and the WAL and
shared-memory files always belong to the database beside them.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import stat
from contextlib import contextmanager
from typing import Callable, Iterator

from bttool.runtime.cache_rows import COVERED, guest_code_ok, object_ok, row_ok, text_value

DAMAGED_NAME = "index.damaged.sqlite"
_REBUILD_NAME = "index.rebuild.sqlite"
_LOCK_NAME = "index.lock"
SIDE_FILES = ("-wal", "-shm", "-journal")


def error_kind(e: sqlite3.DatabaseError) -> str:
    """What an SQLite error means for the cache: "damage" (the file is not a
    sound index: rebuild it), "readonly" (it cannot be written: keep
    reading), "io" (its files changed under it, e.g. a WAL deleted: open it
    again), or "busy" (another process holds it, or anything else: skip)."""
    name = getattr(e, "sqlite_errorname", None) or ""
    text = str(e).lower()
    if name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB" or "malformed" in text \
            or "not a database" in text or "no such table" in text or "no such column" in text:
        return "damage"
    if name.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        return "readonly"
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in text:
        return "io"
    return "busy"


def file_problem(path: str) -> str | None:
    """Why ``path`` cannot be an index (None when it is a regular file or
    absent)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        return e.strerror or str(e)
    if stat.S_ISDIR(st.st_mode):
        return "a directory is in its place"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return None


def identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of ``path``: which index a damage report was about."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def writable(root: str) -> bool:
    """Whether this process may create and replace files in ``root`` (a
    read-only mount or a directory it lacks permission on is not)."""
    return os.access(root, os.W_OK | os.X_OK)


def uri(path: str, mode: str | None) -> str:
    """The SQLite URI of ``path`` opened read-write (None), read-only
    ("ro", sees other writers' WAL) or "immutable" (no locks, no WAL: a
    directory nobody can write in)."""
    query = {"ro": "?mode=ro", "immutable": "?mode=ro&immutable=1"}.get(mode or "", "")
    quoted = os.path.abspath(path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    return "file:" + quoted + query


def connect(target: str) -> sqlite3.Connection:
    """A connection as the cache uses them: autocommit, usable from the
    runtime's threads (serialised by its lock), TEXT decoded without
    raising."""
    db = sqlite3.connect(target, timeout=30, isolation_level=None, uri=True, check_same_thread=False)
    db.text_factory = text_value
    db.execute("PRAGMA busy_timeout = 30000")
    db.execute("PRAGMA temp_store = MEMORY")     # no temporary files either
    return db


@contextmanager
def index_lock(root: str, exclusive: bool) -> Iterator[None]:
    """Hold ``index.lock`` (shared to open the index, exclusive to replace
    it).  Without a writable directory there is nothing to lock: such an
    index is never replaced."""
    try:
        fd = os.open(os.path.join(root, _LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def expected_schema(script: str) -> set[tuple[str, str, str]]:
    """(type, name, sql) of every table and index ``script`` creates, as
    SQLite records them in sqlite_master."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(script)
        return schema_of(db)
    finally:
        db.close()


def schema_of(db) -> set[tuple[str, str, str]]:
    return {tuple(r) for r in db.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()}


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def move_aside(index_path: str) -> str:
    """Move the index and its side files to index.damaged.sqlite (replacing
    an earlier damaged copy); returns the new path."""
    dest = os.path.join(os.path.dirname(index_path), DAMAGED_NAME)
    for suffix in ("",) + SIDE_FILES:
        _remove(dest + suffix)
    for suffix in ("",) + SIDE_FILES:
        try:
            os.rename(index_path + suffix, dest + suffix)
        except FileNotFoundError:
            pass
    return dest


def salvage(src_path: str, dst: sqlite3.Connection) -> tuple[int, int]:
    """Copy every row of the index at ``src_path`` that verifies into
    ``dst`` (a new index with the current schema); returns (regions kept,
    regions seen).  Reading stops at the first error of each table: what
    was read before it is kept.  A truncated index, which SQLite refuses
    as a whole, is read through a copy whose header claims only the pages
    that are there."""
    if file_problem(src_path) is not None or not os.path.exists(src_path):
        return 0, 0
    kept, seen = _salvage_from(src_path, dst)
    if seen == 0:
        fixed = _truncation_fixed_copy(src_path)
        if fixed is not None:
            try:
                kept, seen = _salvage_from(fixed, dst)
            finally:
                for suffix in ("",) + SIDE_FILES:
                    _remove(fixed + suffix)
    return kept, seen


def _truncation_fixed_copy(src_path: str) -> str | None:
    """A copy of a truncated index (header page count beyond the file's
    end), with the header's page count set to the whole pages present and
    the WAL flag cleared; None when the file is not such an index."""
    try:
        with open(src_path, "rb") as f:
            data = bytearray(f.read())
    except OSError:
        return None
    if len(data) < 100 or not data.startswith(b"SQLite format 3\0"):
        return None
    page_size = int.from_bytes(data[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1) or len(data) < page_size:
        return None
    pages = len(data) // page_size
    if int.from_bytes(data[28:32], "big") <= pages:
        return None
    del data[pages * page_size:]
    data[28:32] = pages.to_bytes(4, "big")
    data[18] = data[19] = 1             # rollback-journal mode: the WAL is not this file's any more
    data[92:96] = data[24:28]           # the page count is valid for this change counter
    copy = os.path.join(os.path.dirname(src_path), "index.salvage.sqlite")
    try:
        with open(copy, "wb") as f:
            f.write(data)
    except OSError:
        return None
    return copy


def _salvage_from(src_path: str, dst: sqlite3.Connection) -> tuple[int, int]:
    try:
        src = connect(uri(src_path, "ro"))
    except sqlite3.DatabaseError:
        return 0, 0
    objects: set[str] = set()
    seen = kept = 0
    try:
        for object_id, sha, size, target, created, data, ir in _rows(
                src, "SELECT id, sha256, size, target, created, data, ir FROM objects"):
            if object_ok(object_id, sha, size, data):
                dst.execute("INSERT OR IGNORE INTO objects VALUES (?,?,?,?,?,?,?)",
                            (object_id, sha, size, target, created, data,
                             ir if isinstance(ir, bytes) else b""))
                objects.add(object_id)
        cols = COVERED["regions"]
        rest = ("guest_code", "created", "checksum")
        for row in _rows(src, f"SELECT {', '.join(cols + rest)} FROM regions"):
            seen += 1
            values = row[:len(cols)]
            if row_ok(values, row[-1]) and values[cols.index("object")] in objects \
                    and guest_code_ok(values[cols.index("ranges")], row[len(cols)], values[cols.index("digest")]):
                dst.execute(f"INSERT OR IGNORE INTO regions ({', '.join(cols + rest)})"
                            f" VALUES ({','.join('?' * len(row))})", row)
                kept += 1
        for table in ("images", "codemap", "files"):
            extra = ("last_used",) if table == "images" else ()
            names = COVERED[table] + extra + ("checksum",)
            for row in _rows(src, f"SELECT {', '.join(names)} FROM {table}"):
                if row_ok(row[:len(COVERED[table])], row[-1]):
                    dst.execute(f"INSERT OR IGNORE INTO {table} ({', '.join(names)})"
                                f" VALUES ({','.join('?' * len(row))})", row)
        # uses are statistics (no checksum): kept when they read as such
        for key, hits, last_used in _rows(src, "SELECT key, hits, last_used FROM region_use"):
            if isinstance(key, str) and isinstance(hits, int) and isinstance(last_used, (int, float)):
                dst.execute("INSERT OR IGNORE INTO region_use VALUES (?,?,?)", (key, hits, last_used))
    finally:
        src.close()
    return kept, seen


def _rows(db: sqlite3.Connection, sql: str) -> Iterator[tuple]:
    """The rows of ``sql`` until the first error (a damaged page, a table
    that is not there or has other columns)."""
    try:
        cur = db.execute(sql)
        while True:
            row = cur.fetchone()
            if row is None:
                return
            yield row
    except sqlite3.DatabaseError:
        return


def rebuild(index_path: str, create_schema: Callable[[sqlite3.Connection], None],
            keep_rows: bool = True) -> tuple[str, int, int]:
    """Build a new index beside the damaged one from the rows that verify,
    move the damaged one aside and put the new one in its place.  The
    caller holds the exclusive lock.  Returns (where the damaged index went,
    regions kept, regions seen)."""
    tmp = os.path.join(os.path.dirname(index_path), _REBUILD_NAME)
    for suffix in ("",) + SIDE_FILES:
        _remove(tmp + suffix)
    new = connect(uri(tmp, None))
    try:
        new.execute("BEGIN")
        create_schema(new)
        kept, seen = salvage(index_path, new) if keep_rows else (0, 0)
        new.execute("COMMIT")
        new.execute("PRAGMA journal_mode = WAL")
    finally:
        new.close()
    aside = move_aside(index_path)
    os.rename(tmp, index_path)
    return aside, kept, seen

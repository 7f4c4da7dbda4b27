"""Looking inside the translation cache: listing, showing, statistics and
verification (the logic behind `bttool cache ...`)."""
from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass
from typing import Callable

from bttool.ir import codegen, objfile
from bttool.ir.stencil import is_stitched_listing
from bttool.runtime import cache_rows
from bttool.runtime.cache import CacheStore
from bttool.translator.guestcode import parse_spans

# a region's row with its uses (region_use: RunCache.finish)
_ROW = ("r.key, r.image, r.image_path, r.target, r.triple, r.options, r.entry, r.ranges, r.insn_count,"
        " r.host_bytes, r.object, r.symbol, r.created, MAX(r.created, COALESCE(u.last_used, 0)) AS last_used,"
        " COALESCE(u.hits, 0), r.guest_code")
_FROM = "regions r LEFT JOIN region_use u ON u.key = r.key"


def _row_dict(r) -> dict:
    try:
        spans = parse_spans(r[7])
    except ValueError:
        spans = []          # a corrupt row (`cache verify` names it): listed, not parsed
    ranges = [(s, e) for s, e, image in spans if not image]
    return {
        "key": r[0], "image": r[1], "image_path": r[2], "target": r[3], "triple": r[4],
        "options": r[5], "entry": r[6], "guest_start": min((s for s, _ in ranges), default=r[6]),
        "guest_end": max((e for _, e in ranges), default=r[6]), "ranges": ranges, "spans": spans,
        "insn_count": r[8],
        "host_bytes": r[9], "object": r[10], "symbol": r[11], "created": r[12],
        "last_used": r[13], "hits": r[14], "guest_code": r[15],
    }


def list_regions(store: CacheStore, image_sha: str | None = None) -> list[dict]:
    q = f"SELECT {_ROW} FROM {_FROM}"
    args: tuple = ()
    if image_sha:
        q += " WHERE r.image = ?"
        args = (image_sha,)
    q += " ORDER BY r.image_path, r.entry"
    out = []
    for r in store.db.execute(q, args):
        d = _row_dict(r)
        d.pop("guest_code")
        d.pop("ranges")
        # files whose code the region also holds (translator/guestcode.Span)
        d["foreign_images"] = sorted({image for _, _, image in d.pop("spans") if image})
        out.append(d)
    return out


def find_region(store: CacheStore, ident: str, image_sha: str | None, pie_base: int) -> dict | None:
    """A region by key (prefix) or by guest address within an image."""
    if image_sha is None:
        rows = store.db.execute(f"SELECT {_ROW} FROM {_FROM} WHERE r.key LIKE ? ORDER BY last_used DESC",
                                (ident.lower() + "%",)).fetchall()
        return _row_dict(rows[0]) if rows else None
    addr = int(ident, 0)
    for entry in (addr, addr - pie_base):
        rows = store.db.execute(f"SELECT {_ROW} FROM {_FROM} WHERE r.image = ? AND r.entry = ?"
                                " ORDER BY last_used DESC", (image_sha, entry)).fetchall()
        if rows:
            return _row_dict(rows[0])
    # an address inside a region
    for r in store.db.execute(f"SELECT {_ROW} FROM {_FROM} WHERE r.image = ?", (image_sha,)):
        d = _row_dict(r)
        for a in (addr, addr - pie_base):
            if any(s <= a < e for s, e in d["ranges"]):
                return d
    return None


def region_mode(region: dict) -> int:
    """CPU mode (64 or 32) a cached region was translated for."""
    return 32 if region["options"].startswith("mode32") else 64


def guest_disassembly(region: dict) -> str:
    from bttool.translator.decoder import Decoder
    dec = Decoder(region_mode(region))
    code = region["guest_code"]
    lines = []
    pos = 0
    for start, end, image in region["spans"]:
        chunk = code[pos:pos + end - start]
        pos += end - start
        # a foreign span's addresses are relative to its own file's base
        lines.append(f"{start:#x}:" + (f"  (in file {image[:12]})" if image else ""))
        for insn in dec.decode_all(chunk, start):
            lines.append(f"  {insn.address:#10x}  {insn.bytes.hex():<24} {insn.mnemonic} {insn.op_str}")
    return "\n".join(lines)


def region_target(region: dict) -> codegen.Target:
    """The code-generation target a cached region was compiled for, from
    its target key (codegen.Target.key)."""
    triple, cpu, features, opt = region["target"].split("|")[:4]
    return codegen.Target(triple, cpu, features, int(opt[1:]))


def source_ir(store: CacheStore, region: dict, optimised: bool = False) -> str | None:
    """The LLVM IR module that the region's object was compiled from (the
    cache keeps it with the object; a module may hold several regions), or
    with ``optimised`` that module after the optimisation passes of the
    region's target, run again as its compilation ran them.  A region
    stitched from stencils has its listing instead
    (ir/stencil.STITCHED_HEADER), with or without ``optimised``.  None
    when the IR is missing or unreadable."""
    text = store.read_source_ir(region["object"])
    if text is None or not optimised or is_stitched_listing(text):
        return text
    return codegen.compile_module(text, region_target(region), want_ir=True)[1]


def host_disassembly(store: CacheStore, region: dict) -> str:
    import capstone
    data = store.read_object(region["object"])
    if data is None:
        return "(object missing or corrupt)"
    sym = objfile.symbols(data).get(region["symbol"])
    if sym is None:
        return "(symbol not found in object)"
    code = objfile.symbol_code(data, sym)
    arch = objfile.machine(data)
    if arch == "aarch64":
        cs = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    else:
        cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    return "\n".join(f"  {i.address:#8x}  {i.mnemonic} {i.op_str}" for i in cs.disasm(code, 0))


def stats(store: CacheStore) -> dict:
    db = store.db
    by_target = {}
    for triple, target, n, insns, hbytes in db.execute(
            "SELECT triple, target, COUNT(*), SUM(insn_count), SUM(host_bytes) FROM regions"
            " GROUP BY target"):
        by_target[target] = {"triple": triple, "regions": n, "guest_instructions": insns or 0,
                             "host_code_bytes": hbytes or 0, "hits": 0, "misses": 0, "dropped": 0}
    for target, hits, misses, dropped in db.execute("SELECT target, hits, misses, dropped FROM counters"):
        entry = by_target.setdefault(target, {"triple": target.split("|")[0], "regions": 0,
                                              "guest_instructions": 0, "host_code_bytes": 0})
        entry["hits"], entry["misses"], entry["dropped"] = hits, misses, dropped
    objects, obytes, irbytes = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0),"
                                          " COALESCE(SUM(length(ir)), 0) FROM objects").fetchone()
    return {
        "directory": store.root,
        "entries": sum(t["regions"] for t in by_target.values()),
        "objects": objects,
        "bytes": obytes,
        "ir_bytes": irbytes,            # the compressed IR kept with the objects
        "images": db.execute("SELECT COUNT(DISTINCT image) FROM regions").fetchone()[0],
        "hits": sum(t.get("hits", 0) for t in by_target.values()),
        "misses": sum(t.get("misses", 0) for t in by_target.values()),
        "dropped": sum(t.get("dropped", 0) for t in by_target.values()),
        "read_only": store.readonly,
        "by_target": by_target,
    }


@dataclass
class Problem:
    what: str                       # "index", "object", "region", "images", "codemap", "files"
    detail: str
    object_id: str | None = None    # repair: drop this object (and its regions)
    rowid: int | None = None        # repair: drop this row of table ``what``
    path: str | None = None         # repair: delete this file


def verify(store: CacheStore, repair: bool = False) -> list[Problem]:
    """Recheck the index (SQLite's integrity check) and every checksum:
    objects, region rows, their guest bytes and symbols, images, code maps
    and file digests.  With ``repair``, remove what is bad (a structurally
    damaged index is rebuilt from the rows that verify).  Returns the
    problems found (before repairing)."""
    try:
        problems = _check(store)
    except sqlite3.DatabaseError as e:
        problems = [Problem("index", str(e))]
    if repair and problems:
        _repair(store, problems)
    return problems


def _check(store: CacheStore) -> list[Problem]:
    db = store.db
    rows = db.execute("PRAGMA integrity_check").fetchall()
    problems = [Problem("index", f"integrity check: {r[0]}") for r in rows if r[0] != "ok"]
    objects: dict[str, bytes] = {}
    for object_id, sha, size, data, ir in db.execute("SELECT id, sha256, size, data, ir FROM objects"):
        if not cache_rows.object_ok(object_id, sha, size, data):
            problems.append(Problem("object", f"{str(object_id)[:32]}: checksum mismatch",
                                    object_id=object_id))
        elif ir and cache_rows.unpack_ir(ir) is None:
            problems.append(Problem("object", f"{str(object_id)[:32]}: its IR fails its check",
                                    object_id=object_id))
        else:
            objects[object_id] = data
    symbols: dict[str, set[str]] = {}
    cols = cache_rows.COVERED["regions"]
    for row in db.execute(f"SELECT {', '.join(cols)}, checksum, guest_code, rowid FROM regions"):
        values, checksum, code, rowid = row[:len(cols)], row[-3], row[-2], row[-1]
        key, object_id, symbol = str(values[0])[:16], values[cols.index("object")], values[cols.index("symbol")]
        if not cache_rows.row_ok(values, checksum):
            why = "checksum mismatch"
        elif object_id not in objects:
            why = f"object {object_id} missing or corrupt"
        elif not cache_rows.guest_code_ok(values[cols.index("ranges")], code, values[cols.index("digest")]):
            why = "guest bytes do not match their digest"
        elif symbol not in _symbols_of(symbols, object_id, objects[object_id]):
            why = f"symbol {symbol} not in its object"
        else:
            continue
        problems.append(Problem("region", f"{key}: {why}", rowid=rowid))
    for table in ("images", "codemap", "files"):
        cols = cache_rows.COVERED[table]
        for row in db.execute(f"SELECT {', '.join(cols)}, checksum, rowid FROM {table}"):
            if not cache_rows.row_ok(row[:-2], row[-2]):
                problems.append(Problem(table, f"row {row[-1]}: checksum mismatch", rowid=row[-1]))
    return problems + _check_support(store) + _check_warm_packs(store)


def _check_support(store: CacheStore) -> list[Problem]:
    """The compiled support modules (files ending in the SHA-256 of their
    body, CacheStore.support_object)."""
    return _check_files(store, "support", "support", "",
                        lambda data: len(data) > 32 and hashlib.sha256(data[:-32]).digest() == data[-32:])


def _check_warm_packs(store: CacheStore) -> list[Problem]:
    """The programs' warm packs (runtime/warmpack.py): a damaged one is
    ignored by runs, and named here."""
    from bttool.runtime import warmpack
    return _check_files(store, "warm", "warm pack", ".pack", lambda data: warmpack.unpack(data) is not None)


def _check_files(store: CacheStore, folder: str, what: str, suffix: str,
                 intact: Callable[[bytes], bool]) -> list[Problem]:
    """A problem for each file of ``folder`` ending in ``suffix`` that
    cannot be read or is not ``intact``."""
    problems = []
    where = os.path.join(store.root, folder)
    for name in sorted(os.listdir(where)) if os.path.isdir(where) else ():
        if not name.endswith(suffix):
            continue
        path = os.path.join(where, name)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            problems.append(Problem(what, f"{name}: {e.strerror}", path=path))
            continue
        if not intact(data):
            problems.append(Problem(what, f"{name}: checksum mismatch", path=path))
    return problems


def _symbols_of(cache: dict[str, set[str]], object_id: str, data: bytes) -> set[str]:
    if object_id not in cache:
        try:
            cache[object_id] = set(objfile.symbols(data))
        except Exception:  # noqa: BLE001 - an object that does not parse has no symbols
            cache[object_id] = set()
    return cache[object_id]


def _repair(store: CacheStore, problems: list[Problem]) -> None:
    if any(p.what == "index" for p in problems):
        store.rebuild_now(problems[0].detail)
        return
    for p in problems:
        if p.path is not None:
            try:
                os.unlink(p.path)
            except OSError:
                pass
        elif p.object_id is not None:
            store.drop_object(p.object_id)
        elif p.rowid is not None:
            store.drop_row("regions" if p.what == "region" else p.what, "rowid", p.rowid)

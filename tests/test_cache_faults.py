"""The translation cache under faults (issue 24): corrupted rows, objects
and index files, WAL and shared-memory files deleted under a run, a
read-only cache, and bttool killed with SIGKILL in the middle of
`translate` and `run`.  After each, runs print what the native run prints,
`bttool cache verify` tells the truth, `--repair` leaves a cache that
verifies, and no helper process outlives the bttool that started it."""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest
import programs as harness  # noqa: E402  (the module)

from bttool.runtime import cache_rows

# Freestanding (quick to translate) and covering every kind of cache entry:
# run-time tier-1 objects, a loop hot enough for tier 2 (an object compiled
# by the background compile server), a function only `translate` finds (an
# ahead-of-time batch object), an executable mapping of a file (a `files`
# row and a code unit of its own), the image and its code map.
PROGRAM = r"""
typedef unsigned long u64;
static long sys6(long n, long a, long b, long c, long d, long e, long f) {
    long r;
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
    __asm__ volatile ("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                      : "rcx", "r11", "memory");
    return r;
}
static void put(const char *s) { long n = 0; while (s[n]) n++; sys6(1, 1, (long)s, n, 0, 0, 0); }
__attribute__((noinline)) static int classify(int x) {
    switch (x % 7) {
    case 0: return x * 3; case 1: return x + 11; case 2: return x ^ 0x55; case 3: return x - 4;
    case 4: return x << 2; case 5: return x / 3; default: return -x;
    }
}
__attribute__((noinline, used)) int never_called(int x) { return classify(x) * 5 + 1; }
void _start(void) {
    unsigned acc = 0;
    for (int i = 0; i < 60000; i++) acc = acc * 31 + (unsigned)classify(i);
    long fd = sys6(2, (long)SELF, 0, 0, 0, 0, 0);
    if (fd >= 0) {
        sys6(9, 0, 4096, 5 /* PROT_READ|PROT_EXEC */, 2 /* MAP_PRIVATE */, fd, 0);
        sys6(3, fd, 0, 0, 0, 0, 0);
    }
    char buf[32]; int p = 31; buf[p] = 0; u64 v = acc;
    do { buf[--p] = '0' + v % 10; v /= 10; } while (v);
    put("faults "); put(buf + p); put(fd >= 0 ? " mapped\n" : " unmapped\n");
    sys6(60, (acc >> 3) & 0x3f, 0, 0, 0, 0, 0);
}
"""

KILLS = int(os.environ.get("BTTOOL_TEST_KILLS", "10"))


def bttool(*args, timeout=300, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(harness.bttool_argv(*map(str, args)), capture_output=True, env=harness.guest_env(),
                       cwd=harness.work_dir(), timeout=timeout, **kw)
    assert b"Traceback" not in r.stderr, r.stderr.decode()
    return r


def run(cache: Path, prog: Path) -> tuple[subprocess.CompletedProcess, dict]:
    out = cache.parent / f"stats-{os.urandom(4).hex()}.json"
    r = bttool("run", "--cache-dir", cache, "--stats-json", out, prog)
    return r, json.loads(out.read_text())


def warnings(r: subprocess.CompletedProcess) -> list[str]:
    return [line for line in r.stderr.decode().splitlines() if line.startswith("bttool: warning")]


def verify(cache: Path, *extra: str) -> subprocess.CompletedProcess:
    return bttool("cache", "--cache-dir", cache, "verify", *extra)


@pytest.fixture(scope="module")
def prog(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("faultprog")
    (d / "faults.c").write_text(PROGRAM)
    exe = d / "faults"
    subprocess.run(["gcc", "-O2", "-static", "-nostdlib", "-fno-stack-protector", "-fno-builtin",
                    "-fno-tree-loop-distribute-patterns", f'-DSELF="{exe}"', "-o", str(exe),
                    str(d / "faults.c")], check=True)
    return exe


@pytest.fixture(scope="module")
def native(prog) -> subprocess.CompletedProcess:
    r = subprocess.run([str(prog)], capture_output=True)
    assert r.stdout.startswith(b"faults ") and r.stdout.endswith(b" mapped\n")
    return r


def same(r: subprocess.CompletedProcess, native: subprocess.CompletedProcess) -> None:
    assert (r.returncode, r.stdout) == (native.returncode, native.stdout), r.stderr.decode()


@pytest.fixture(scope="module")
def warm(prog, native, tmp_path_factory) -> Path:
    """A cache holding every kind of entry: a cold run (tier 1 and tier 2),
    `translate` (a batch), and a warm run that serves everything."""
    cache = tmp_path_factory.mktemp("warm") / "cache"
    r, s = run(cache, prog)
    same(r, native)
    t = bttool("translate", "--cache-dir", cache, "--json", prog)
    assert t.returncode == 0 and json.loads(t.stdout)["regions_translated"] > 0, t.stderr
    r, s = run(cache, prog)
    same(r, native)
    assert s["regions_translated"] == 0 and s["regions_from_cache"] > 0
    db = sqlite3.connect(cache / "index.sqlite")
    counts = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
              for t in ("objects", "regions", "images", "codemap", "files")}
    options = {o for (o,) in db.execute("SELECT DISTINCT options FROM regions")}
    db.close()
    assert all(counts.values()), counts
    assert len(options) == 2, options           # tier 1 (with hot counters) and tier 2
    assert list((cache / "support").glob("*.o"))
    assert not (cache / "index.sqlite-wal").exists()
    return cache


# -- corruptions --------------------------------------------------------------

def _flip_text(s: str) -> str:
    """One bit of the string's middle character (stays ASCII)."""
    i = len(s) // 2
    return s[:i] + chr(ord(s[i]) ^ 1) + s[i + 1:]


def _update_all(cache: Path, table: str, column: str, change: Callable) -> None:
    """Damage the column in every row, except a row whose damaged value
    another row's key holds already (the index would refuse it: codemap
    entries e and e^0x40 both exist when a region ends where another
    begins 64 bytes on)."""
    db = sqlite3.connect(cache / "index.sqlite")
    rows = db.execute(f"SELECT rowid, {column} FROM {table}").fetchall()
    changed = 0
    for r, v in rows:
        try:
            db.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (change(v), r))
            changed += 1
        except sqlite3.IntegrityError:
            pass
    assert changed >= len(rows) / 2 > 0
    db.commit()
    db.close()


def _flip_blob(b: bytes) -> bytes:
    i = len(b) // 2
    return b[:i] + bytes([b[i] ^ 0x10]) + b[i + 1:]


def _raw_flip(cache: Path, offset: int, mask: int = 0x04) -> None:
    path = cache / "index.sqlite"
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def _object_bytes_in_file(cache: Path) -> None:
    """Flip a bit inside an object's bytes, in the database file itself."""
    db = sqlite3.connect(cache / "index.sqlite")
    data = max((d for (d,) in db.execute("SELECT data FROM objects")), key=len)
    db.close()
    at = (cache / "index.sqlite").read_bytes().find(data[200:264])
    assert at > 0
    _raw_flip(cache, at + 10)


def _table_page(cache: Path, table: str = "regions") -> None:
    """Clobber the b-tree page header of a table's root page."""
    db = sqlite3.connect(cache / "index.sqlite")
    root, = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    page_size, = db.execute("PRAGMA page_size").fetchone()
    db.close()
    _raw_flip(cache, (root - 1) * page_size + (100 if root == 1 else 0), 0xff)


def _truncate(cache: Path) -> None:
    path = cache / "index.sqlite"
    os.truncate(path, path.stat().st_size // 2)


def _garbage(cache: Path) -> None:
    (cache / "index.sqlite").write_bytes(random.Random(24).randbytes(50_000))


def _directory(cache: Path) -> None:
    (cache / "index.sqlite").unlink()
    (cache / "index.sqlite").mkdir()
    (cache / "index.sqlite" / "x").write_text("x")


def _sql(*statements: str) -> Callable[[Path], None]:
    def apply(cache: Path) -> None:
        db = sqlite3.connect(cache / "index.sqlite")
        for s in statements:
            db.execute(s)
        db.commit()
        db.close()
    return apply


def _support(cache: Path) -> None:
    for f in (cache / "support").glob("*.o"):
        f.write_bytes(_flip_blob(f.read_bytes()))


# name -> (corrupt(cache), the run that meets it rebuilds the index: one warning)
CORRUPTIONS: dict[str, tuple[Callable[[Path], None], bool]] = {
    "objects.data bit": (lambda c: _update_all(c, "objects", "data", _flip_blob), False),
    "objects.data truncated": (lambda c: _update_all(c, "objects", "data", lambda b: b[:len(b) // 3]), False),
    "objects.data garbage": (lambda c: _update_all(c, "objects", "data", lambda b: bytes(len(b))), False),
    "regions.symbol bit": (lambda c: _update_all(c, "regions", "symbol", _flip_text), False),
    "regions.entry bit": (lambda c: _update_all(c, "regions", "entry", lambda v: v ^ 0x10), False),
    "regions.ranges bit": (lambda c: _update_all(c, "regions", "ranges", _flip_text), False),
    "regions.object bit": (lambda c: _update_all(c, "regions", "object", _flip_text), False),
    "regions.digest bit": (lambda c: _update_all(c, "regions", "digest", _flip_text), False),
    "regions.guest_code bit": (lambda c: _update_all(c, "regions", "guest_code", _flip_blob), False),
    "images.info bit": (lambda c: _update_all(c, "images", "info", _flip_text), False),
    "codemap.entry bit": (lambda c: _update_all(c, "codemap", "entry", lambda v: v ^ 0x40), False),
    "files.sha256 bit": (lambda c: _update_all(c, "files", "sha256", _flip_text), False),
    "support object bit": (_support, False),
    "file: object bytes": (_object_bytes_in_file, False),
    "file: table page": (_table_page, True),
    "file: header magic": (lambda c: _raw_flip(c, 3), True),
    "file: truncated": (_truncate, True),
    "file: garbage": (_garbage, True),
    "file: a directory": (_directory, True),
    "schema: unknown version": (_sql("UPDATE meta SET value = '99' WHERE name = 'schema'"), True),
    "schema: a table missing": (_sql("DROP TABLE codemap"), True),
    "schema: a column missing": (_sql("ALTER TABLE files DROP COLUMN checksum"), True),
}


def oracle_sound(cache: Path) -> bool:
    """Independently of bttool's verification: SQLite's integrity check
    passes, every object digests to its sha256, every covered row to its
    checksum, every region's object is there and its guest bytes digest to
    its digest, every support module to its trailer."""
    index = cache / "index.sqlite"
    if not index.exists():
        return True
    if not index.is_file():
        return False
    try:
        db = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
        db.text_factory = cache_rows.text_value
        if db.execute("PRAGMA integrity_check").fetchall() != [("ok",)]:
            return False
        for object_id, sha, data in db.execute("SELECT id, sha256, data FROM objects"):
            if hashlib.sha256(data).hexdigest() != sha or object_id != sha[:32]:
                return False
        for table, cols in cache_rows.COVERED.items():
            for row in db.execute(f"SELECT {', '.join(cols)}, checksum FROM {table}"):
                if cache_rows.row_checksum(row[:-1]) != row[-1]:
                    return False
        if db.execute("SELECT COUNT(*) FROM regions WHERE object NOT IN (SELECT id FROM objects)").fetchone()[0]:
            return False
        for ranges, code, digest in db.execute("SELECT ranges, guest_code, digest FROM regions"):
            if _guest_digest(json.loads(ranges), code) != digest:
                return False
    except (sqlite3.DatabaseError, ValueError, TypeError):
        return False
    for f in (cache / "support").glob("*"):
        data = f.read_bytes()
        if hashlib.sha256(data[:-32]).digest() != data[-32:]:
            return False
    return True


def _guest_digest(ranges: list, code: bytes) -> str:
    """translator/guestcode.guest_digest over stored bytes (ranges relative
    to the image base)."""
    h = hashlib.sha256()
    pos = 0
    for start, end in ranges:
        h.update(start.to_bytes(8, "little", signed=True) + (end - start).to_bytes(4, "little"))
        h.update(code[pos:pos + end - start])
        pos += end - start
    return h.hexdigest()


def _without_warm_pack(warm: Path, cache: Path) -> Path:
    """A copy of the warm cache without its warm pack, which would serve
    every region from itself and the objects (runtime/warmpack.py), never
    reading a region row or the table they are in: these tests damage the
    index, which the run must then read, find out and repair.  (The pack's
    own damage: tests/test_cache.py.)"""
    shutil.copytree(warm, cache)
    packs = list((cache / "warm").glob("*.pack"))
    assert packs
    for p in packs:
        p.unlink()
    return cache


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corrupted_cache_runs_natively_and_verify_tells(name, warm, prog, native, tmp_path):
    corrupt, rebuilds = CORRUPTIONS[name]
    cache = _without_warm_pack(warm, tmp_path / "cache")
    corrupt(cache)
    before = verify(cache)
    assert before.returncode == 1, before.stdout.decode()
    r, s = run(cache, prog)
    same(r, native)
    assert len(warnings(r)) == (1 if rebuilds else 0), r.stderr.decode()
    if rebuilds:
        assert "rebuilt" in warnings(r)[0]
        assert (cache / "index.damaged.sqlite").exists()
    after = verify(cache)
    assert (after.returncode == 0) == oracle_sound(cache), after.stdout.decode()
    again, s2 = run(cache, prog)
    same(again, native)
    assert not warnings(again), again.stderr.decode()
    assert s2["regions_translated"] == 0 and s2["regions_from_cache"] > 0, s2
    repaired = verify(cache, "--repair")
    assert repaired.returncode == 0, repaired.stdout.decode()
    final = verify(cache)
    assert final.returncode == 0 and oracle_sound(cache), final.stdout.decode()


def test_corrupt_rows_are_dropped_and_counted(warm, prog, native, tmp_path):
    """Every region row is bad: the run uses none, and each one it
    considers is dropped from the index and counted; `cache verify` still
    names the bad rows of code that never ran (never_called's, from
    `translate`), and no others."""
    cache = _without_warm_pack(warm, tmp_path / "cache")
    rows = len(json.loads(bttool("cache", "--cache-dir", cache, "ls", "--json").stdout))
    _update_all(cache, "regions", "symbol", _flip_text)
    r, s = run(cache, prog)
    same(r, native)
    assert s["regions_from_cache"] == 0 and s["regions_translated"] > 0, s
    assert s["cache_dropped"] > 0, s                            # this run's count
    st = json.loads(bttool("cache", "--cache-dir", cache, "stats", "--json").stdout)
    assert st["dropped"] == s["cache_dropped"]                  # the warm cache had dropped none
    left = json.loads(verify(cache, "--json").stdout)
    assert [q["what"] for q in left] == ["region"] * (rows - s["cache_dropped"]), left


def test_verify_repair_rebuilds_a_damaged_index_keeping_what_verifies(warm, prog, native, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(warm, cache)
    _sql("UPDATE meta SET value = '99' WHERE name = 'schema'")(cache)
    bad = verify(cache)
    assert bad.returncode == 1 and b"schema" in bad.stdout
    fixed = verify(cache, "--repair")
    assert fixed.returncode == 0 and b"repaired" in fixed.stdout, fixed.stdout.decode()
    r, s = run(cache, prog)
    same(r, native)
    assert s["regions_translated"] == 0 and s["regions_from_cache"] > 0


def _delete_side_files(cache: Path, proc: subprocess.Popen) -> int:
    deleted = 0
    while proc.poll() is None:
        for suffix in ("-wal", "-shm"):
            try:
                os.unlink(cache / f"index.sqlite{suffix}")
                deleted += 1
            except FileNotFoundError:
                pass
        time.sleep(0.005)
    return deleted


@pytest.mark.parametrize("start", ["cold", "warm"])
def test_wal_and_shm_deleted_while_a_run_writes(start, warm, prog, native, tmp_path):
    cache = tmp_path / "cache"
    if start == "warm":
        shutil.copytree(warm, cache)
    proc = subprocess.Popen(harness.bttool_argv("run", "--cache-dir", str(cache), str(prog)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=harness.guest_env(),
                            cwd=harness.work_dir())
    deleted = _delete_side_files(cache, proc)
    out, err = proc.communicate()
    assert (proc.returncode, out) == (native.returncode, native.stdout), err.decode()
    assert deleted > 0
    assert len([line for line in err.decode().splitlines() if "warning" in line]) <= 1, err.decode()
    v = verify(cache)
    assert (v.returncode == 0) == oracle_sound(cache), v.stdout.decode()
    assert verify(cache, "--repair").returncode == 0
    assert verify(cache).returncode == 0
    r, _ = run(cache, prog)
    same(r, native)


# -- a read-only cache -----------------------------------------------------------

def _readonly_prefix(mechanism: str, cache: Path) -> list[str]:
    """argv prefix under which ``cache`` cannot be written: a read-only bind
    mount in a private mount namespace, or file permissions (root loses
    CAP_DAC_OVERRIDE, which would ignore them)."""
    if mechanism == "mount":
        probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind {cache} {cache} && "
                                f"mount -o remount,ro,bind {cache} && ! touch {cache}/probe"],
                               capture_output=True)
        if probe.returncode != 0:
            pytest.skip(f"no read-only bind mount here: {probe.stderr.decode().strip()[:200]}")
        return ["unshare", "-m", "sh", "-c", f'mount --bind {cache} {cache} && '
                f'mount -o remount,ro,bind {cache} && exec "$@"', "sh"]
    subprocess.run(["chmod", "-R", "a-w", str(cache)], check=True)
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root ignores file permissions and setpriv is missing")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--inh-caps", "-all", "--"]


def _snapshot(d: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob("*")}


@pytest.mark.parametrize("mechanism", ["mount", "permissions"])
def test_read_only_warm_cache_serves(mechanism, warm, prog, native, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(warm, cache)
    before = _snapshot(cache)
    stats = tmp_path / "stats.json"
    prefix = _readonly_prefix(mechanism, cache)
    try:
        r = subprocess.run(prefix + harness.bttool_argv("run", "--cache-dir", str(cache), "--stats-json",
                                                       str(stats), str(prog)),
                           capture_output=True, env=harness.guest_env(), cwd=harness.work_dir(), timeout=300)
        same(r, native)
        assert not warnings(r), r.stderr.decode()
        s = json.loads(stats.read_text())
        assert s["regions_translated"] == 0 and s["regions_from_cache"] > 0, s
        st = subprocess.run(prefix + harness.bttool_argv("cache", "--cache-dir", str(cache), "stats", "--json"),
                            capture_output=True, env=harness.guest_env(), cwd=harness.work_dir(), timeout=300)
        assert json.loads(st.stdout)["read_only"] is True
        v = subprocess.run(prefix + harness.bttool_argv("cache", "--cache-dir", str(cache), "verify"),
                           capture_output=True, env=harness.guest_env(), cwd=harness.work_dir(), timeout=300)
        assert v.returncode == 0, v.stdout.decode()
        t = subprocess.run(prefix + harness.bttool_argv("translate", "--cache-dir", str(cache), str(prog)),
                           capture_output=True, env=harness.guest_env(), cwd=harness.work_dir(), timeout=300)
        assert t.returncode != 0 and t.stderr.decode().count("\n") == 1, t.stderr.decode()
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(cache)], check=True)
    assert _snapshot(cache) == before


# -- kill -9 -------------------------------------------------------------------

def many_functions_source(n: int) -> str:
    """A freestanding program with ``n`` functions (jump tables), each
    called hot in turn: a cold run keeps the compile server busy with tier-2
    jobs for seconds, and `translate` keeps its workers busy."""
    funcs = "".join(
        f"__attribute__((noinline)) unsigned f{i}(unsigned x) {{ switch (x % 5) {{ case 0: return x * {i + 3}u;"
        f" case 1: return x ^ {i * 7 + 1}u; case 2: return x + {i}u; case 3: return x >> 1;"
        f" default: return x * x + {i}u; }} }}\n" for i in range(n))
    table = "static unsigned (*const table[])(unsigned) = {" + ", ".join(f"f{i}" for i in range(n)) + "};\n"
    return r"""
static long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile ("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}
""" + funcs + table + r"""
void _start(void) {
    unsigned acc = 1;
    for (int f = 0; f < (int)(sizeof table / sizeof table[0]); f++)
        for (int i = 0; i < 30000; i++) acc = acc * 33 + table[f](acc + i);
    char buf[16]; int p = 15; buf[p] = '\n';
    do { buf[--p] = '0' + acc % 10; acc /= 10; } while (acc);
    sys3(1, 1, (long)(buf + p), 16 - p);
    sys3(60, 0, 0, 0);
}
"""


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("many")
    (d / "many.c").write_text(many_functions_source(120))
    subprocess.run(["gcc", "-O2", "-static", "-nostdlib", "-fno-stack-protector", "-fno-builtin",
                    "-fno-tree-loop-distribute-patterns", "-o", str(d / "many"), str(d / "many.c")], check=True)
    return d / "many"


def _leftovers(pid: int, marker: str) -> list[str]:
    """Processes still running that belong to the killed bttool ``pid``:
    its compile server (which names its client's pid) and anything whose
    command line holds ``marker`` (translate's workers, forked from it)."""
    return [f"{p}: {' '.join(args)[-160:]}" for p, args in harness.processes()
            if p != pid and (any(marker in a for a in args) or harness.compile_server_of(args, pid))]


def _kill_cases(n: int, many: Path, tmp_path: Path) -> None:
    """``n`` cold `run`s and `translate`s (alternately), each killed with
    SIGKILL at a random moment: within two seconds nothing they started is
    left, and the cache they were writing verifies."""
    rng = random.Random(24)
    for i in range(n):
        cache = tmp_path / f"kill{i}"
        command = "translate" if i % 2 else "run"
        delay = rng.uniform(0.3, 1.6 if command == "translate" else 3.0)
        proc = subprocess.Popen(harness.bttool_argv(command, "--cache-dir", str(cache), str(many)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=harness.guest_env(),
                                cwd=harness.work_dir())
        time.sleep(delay)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 2
        while (left := _leftovers(proc.pid, str(cache))) and time.monotonic() < deadline:
            time.sleep(0.05)
        for entry in left:                 # never leave them to the rest of the session
            try:
                os.kill(int(entry.split(":")[0]), 9)
            except OSError:
                pass
        assert not left, f"{command} killed after {delay:.2f} s left {left}"
        v = verify(cache)
        assert v.returncode == 0, f"{command} killed after {delay:.2f} s: {v.stdout.decode()}"


def test_kill_9_leaves_no_orphans_and_a_sound_cache(many, tmp_path):
    _kill_cases(KILLS, many, tmp_path)


@pytest.mark.slow
def test_kill_9_fifty_times(many, tmp_path):
    _kill_cases(50, many, tmp_path)


SERVER_PROBE = r"""
import select, socket, subprocess, sys, time
from bttool.runtime.compileserver import encode_request
from bttool.runtime import hostpython
mine, theirs = socket.socketpair()
server = subprocess.Popen(hostpython.command("bttool.runtime.compileserver"), stdin=theirs.fileno(),
                          stdout=theirs.fileno(), stderr=subprocess.DEVNULL)
theirs.close()
mine.sendall(encode_request(1, {"triple": "x86_64-unknown-linux-gnu", "cpu": "", "features": "",
                                "opt_level": 1}, "this is not LLVM IR"))
assert select.select([mine], [], [], 60)[0], "no reply"
mine.close()                 # the client dies with the reply (an error) unread: ECONNRESET
try:
    server.wait(timeout=5)
    print("server exited")
except subprocess.TimeoutExpired:
    server.kill()
    print("server still running")
"""


def test_compile_server_ends_when_its_client_dies_with_replies_unread():
    """The reader thread of the server died on ECONNRESET and left the
    server waiting for work forever (the orphans of `kill -9`)."""
    r = subprocess.run([str(harness.installed_bttool().python), "-c", SERVER_PROBE], capture_output=True,
                       cwd=harness.work_dir(), env=harness.guest_env(), timeout=120)
    assert r.stdout.decode().split() == ["server", "exited"], r.stderr.decode()

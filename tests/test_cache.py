"""The persistent translation cache, `bttool translate` and `bttool cache`,
checked on real programs against their native runs."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
import programs as harness  # noqa: E402  (the module; 'programs' is a fixture here)

REPO = Path(__file__).resolve().parent.parent

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static int work(int n) { int s = 0; for (int i = 0; i < n; i++) s += (i * 7) ^ (s >> 3); return s; }
int main(int argc, char **argv) {
    volatile int k = 5;
    char buf[64];
    snprintf(buf, sizeof buf, "k=%d work=%d", k, work(1000 + argc));
    puts(buf);
    return (int)strlen(buf) % 7;
}
"""


def bttool(*args, env=None, check_ok=True, **kw):
    r = subprocess.run(harness.bttool_argv(*args), capture_output=True,
                       env={**harness.guest_env(), **(env or {})}, cwd=harness.work_dir(), timeout=900,
                       **kw)
    assert b"Traceback" not in r.stderr, r.stderr.decode()
    return r


def stats_run(cache, prog, tmp_path, *args, env=None):
    out = tmp_path / f"stats-{os.urandom(4).hex()}.json"
    r = bttool("run", "--cache-dir", cache, "--stats-json", out, prog, *args, env=env)
    return r, json.loads(out.read_text())


def native(prog, *args):
    return subprocess.run([str(prog), *args], capture_output=True)


def same(a, b):
    assert (a.returncode, a.stdout) == (b.returncode, b.stdout)


TINY_FLAGS = ["-O2", "-static", "-nostdlib", "-fno-stack-protector", "-fno-builtin",
              "-fno-tree-loop-distribute-patterns"]


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """p/pie: small glibc programs; tiny*: freestanding (no libc), so that
    translating the whole program ahead of time takes a second."""
    d = tmp_path_factory.mktemp("cacheprogs")
    (d / "p.c").write_text(PROGRAM)
    subprocess.run(["gcc", "-O2", "-static", "-o", str(d / "p"), str(d / "p.c")], check=True)
    subprocess.run(["gcc", "-O2", "-static-pie", "-o", str(d / "pie"), str(d / "p.c")], check=True)
    tiny = str(REPO / "tests" / "tiny.c")
    subprocess.run(["gcc", *TINY_FLAGS, "-o", str(d / "tiny"), tiny], check=True)
    # stripped, with .eh_frame: functions are found through their FDEs
    subprocess.run(["gcc", *TINY_FLAGS, "-s", "-o", str(d / "tiny-eh"), tiny], check=True)
    # stripped, no unwind tables: `twice` is reached only through a pointer
    subprocess.run(["gcc", *TINY_FLAGS, "-s", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables",
                    "-o", str(d / "tiny-bare"), tiny], check=True)
    return d


def _patch_immediate(src: Path, dst: Path) -> None:
    """Copy ``src`` changing the constant of `volatile int k = 5` (movl $5)."""
    data = bytearray(src.read_bytes())
    needle = bytes.fromhex("c7442c0c05000000")
    idx = -1
    for pat in (needle,) + tuple(bytes.fromhex(f"c74424{o:02x}05000000") for o in range(0, 0x80, 4)):
        idx = data.find(pat)
        if idx >= 0:
            data[idx + len(pat) - 4] = 9
            break
    assert idx >= 0, "movl $5 not found"
    dst.write_bytes(bytes(data))
    dst.chmod(0o755)


def test_warm_run_translates_nothing(programs, tmp_path):
    prog = programs / "p"
    r1, s1 = stats_run(tmp_path / "c", prog, tmp_path)
    same(r1, native(prog))
    r2, s2 = stats_run(tmp_path / "c", prog, tmp_path)
    same(r2, native(prog))
    assert s1["regions_translated"] > 10
    assert s2["regions_translated"] == 0
    # a few regions translated along with others may never run (the
    # return site after a call to exit): the warm run loads only what runs
    assert 0.9 * s1["regions_translated"] <= s2["regions_from_cache"] <= s1["regions_translated"]
    # bttool ends with os._exit but closes the index first: the write-ahead
    # log is checkpointed and gone, not left to grow with every run
    assert not (tmp_path / "c" / "index.sqlite-wal").exists()


def test_warm_runs_record_their_uses_without_rewriting_regions(programs, tmp_path):
    """A run's uses go into region_use (a small row each), not into the
    regions' rows, which hold their guest code: those stay as written,
    while `cache ls` counts every use and gives the last."""
    prog, cache = programs / "p", tmp_path / "c"
    stats_run(cache, prog, tmp_path)

    def regions():
        with sqlite3.connect(cache / "index.sqlite") as db:
            return sorted(db.execute("SELECT * FROM regions"))
    written = regions()
    before = {r["key"]: r for r in json.loads(bttool("cache", "--cache-dir", cache, "ls", "--json").stdout)}
    _, s2 = stats_run(cache, prog, tmp_path)
    _, s3 = stats_run(cache, prog, tmp_path)
    assert regions() == written
    after = json.loads(bttool("cache", "--cache-dir", cache, "ls", "--json").stdout)
    used_twice = [r for r in after if r["hits"] == before[r["key"]]["hits"] + 2]
    assert len(used_twice) >= min(s2["regions_from_cache"], s3["regions_from_cache"])
    assert all(r["last_used"] > before[r["key"]]["last_used"] for r in used_twice)


def test_a_warm_start_reads_its_own_rows_however_full_the_cache(programs, tmp_path):
    """A warm run reads the index rows of its warm set (and one query's
    for each other entry it looks up), not every row that could serve its
    code: all absolute regions of every program for a static one, all of
    libc's from every program for a dynamically linked one.  That made
    every start slower as the cache filled (a static program that returns
    0: 112 -> 229 ms beside CPython's regions).  Another static program
    (p with 4 KiB more code before libc, so all at other addresses) adds
    as many rows again, and p's warm run reads no more rows than alone."""
    prog, cache = programs / "p", tmp_path / "c"
    stats_run(cache, prog, tmp_path)
    stats_run(cache, prog, tmp_path)
    _, alone = stats_run(cache, prog, tmp_path)

    def rows():
        with sqlite3.connect(cache / "index.sqlite") as db:
            return db.execute("SELECT COUNT(*) FROM regions").fetchone()[0]
    before = rows()
    (tmp_path / "shifted.c").write_text(PROGRAM + 'void pad(void) { __asm__ volatile (".skip 4096, 0x90"); }\n')
    subprocess.run(["gcc", "-O2", "-static", "-o", str(tmp_path / "shifted"), str(tmp_path / "shifted.c")],
                   check=True)
    stats_run(cache, tmp_path / "shifted", tmp_path)
    assert rows() - before > alone["cache_rows_read"] / 2
    r, beside = stats_run(cache, prog, tmp_path)
    same(r, native(prog))
    assert beside["regions_translated"] == 0 and beside["regions_from_cache"] > 10
    # (the index holds as many rows again, all of which could serve p)
    assert beside["cache_rows_read"] <= alone["cache_rows_read"] < rows() / 1.5, (alone, beside)


def _pack_of(cache: Path) -> Path:
    packs = list((cache / "warm").glob("*.pack"))
    assert len(packs) == 1, packs
    return packs[0]


def test_a_warm_run_takes_its_regions_from_the_warm_pack(programs, tmp_path):
    """Once the warm set settles, a run installs it from the program's warm
    pack (runtime/warmpack.py): its unit's memory compared with the code
    the regions were made from, no index row read or checked one by one."""
    prog, cache = programs / "p", tmp_path / "c"
    for _ in range(3):
        stats_run(cache, prog, tmp_path)
    r, s = stats_run(cache, prog, tmp_path)
    same(r, native(prog))
    assert s["regions_translated"] == 0 and s["regions_from_cache"] > 10
    assert s["cache_rows_read"] == 0, s
    assert _pack_of(cache).stat().st_size > 0


LOOP = r"""
#include <stdio.h>
#include <stdlib.h>
static __attribute__((noinline)) long work(long n)
{ long s = 0; for (long i = 0; i < n; i++) s += (i * 7) ^ (s >> 3); return s; }
int main(int argc, char **argv) {
    long calls = argc > 1 ? atol(argv[1]) : 5, s = 0;
    for (long c = 0; c < calls; c++) s += work(10 + (c & 3));
    printf("%ld\n", s);
    return 0;
}
"""


def test_a_better_tier_made_after_the_pack_was_written_replaces_the_packs_region(tmp_path):
    """A pack is rewritten only when the warm set changes by more than a
    sixteenth, so it can hold the tier-1 region of an entry whose tier-2
    region a later run made.  Once both are in the warm set, the run
    installs the tier-2 region at start: the pack's tier-1 region of that
    entry is not used (its hits stay), where it used to run until it went
    hot again and was promoted through a lookup, in every run."""
    src, prog, cache = tmp_path / "loop.c", tmp_path / "loop", tmp_path / "c"
    src.write_text(LOOP)
    subprocess.run(["gcc", "-O2", "-static", "-o", str(prog), str(src)], check=True)
    for _ in range(2):                  # few calls: tier 1 only, and the pack is written
        stats_run(cache, prog, tmp_path)
    _, s = stats_run(cache, prog, tmp_path, "300000")        # `work` is promoted: tier 2 made
    assert s["regions_translated"] > 0, s
    pack = _pack_of(cache).read_bytes()

    def regions():
        return json.loads(bttool("cache", "--cache-dir", cache, "ls", "--json").stdout)
    for _ in range(2):                  # the tier-2 region joins the warm set (used in two runs)
        stats_run(cache, prog, tmp_path, "300000")
    assert _pack_of(cache).read_bytes() == pack             # not rewritten: a region's difference
    by_entry: dict[int, list[dict]] = {}
    for row in regions():
        by_entry.setdefault(row["entry"], []).append(row)
    both = {e: rows for e, rows in by_entry.items()
            if {("|O2|" in r["target"]) for r in rows} == {True, False}}
    assert both, "no entry with a tier-1 and a tier-2 region"
    before = {r["key"]: r["hits"] for rows in both.values() for r in rows}
    r, s = stats_run(cache, prog, tmp_path, "300000")
    same(r, native(prog, "300000"))
    assert s["regions_translated"] == 0, s
    after = {r["key"]: r["hits"] for r in regions() if r["key"] in before}
    for rows in both.values():
        for row in rows:
            grew = after[row["key"]] > before[row["key"]]
            assert grew == ("|O2|" in row["target"]), (row["entry"], row["target"][-20:], before, after)


def test_a_damaged_warm_pack_is_not_used(programs, tmp_path):
    """A pack that fails its checksum is ignored (`cache verify` names it):
    the run checks its regions one by one, and writes a good pack for the
    next."""
    prog, cache = programs / "p", tmp_path / "c"
    for _ in range(3):
        stats_run(cache, prog, tmp_path)
    pack = _pack_of(cache)
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0x40
    pack.write_bytes(bytes(data))
    told = bttool("cache", "--cache-dir", cache, "verify")
    assert told.returncode == 1 and b"warm pack" in told.stdout, told.stdout
    r, s = stats_run(cache, prog, tmp_path)
    same(r, native(prog))
    assert s["regions_translated"] == 0 and s["cache_rows_read"] > 10, s
    _, s = stats_run(cache, prog, tmp_path)
    assert s["regions_translated"] == 0 and s["cache_rows_read"] == 0, s
    assert bttool("cache", "--cache-dir", cache, "verify").returncode == 0


def test_a_warm_pack_whose_code_differs_from_memory_serves_nothing(programs, tmp_path):
    """A pack intact as written whose code is not what the program's
    memory holds (one byte changed, as if the code had been patched before
    it ran) serves no region of that unit: each is checked one by one
    against memory, as without a pack, and the run is still right."""
    from bttool.runtime import warmpack
    prog, cache = programs / "p", tmp_path / "c"
    for _ in range(3):
        stats_run(cache, prog, tmp_path)
    path = _pack_of(cache)
    parts = warmpack.unpack(path.read_bytes())
    assert parts
    units = {}
    for image, part in parts.items():
        at = part.code[0][0]             # this byte is different in every region holding it
        units[image] = [(r, [(s, d if not s <= at < s + len(d) else
                               d[:at - s] + bytes([d[at - s] ^ 0xFF]) + d[at - s + 1:])
                             for s, d in part.runs_of(r)]) for r in part.regions]
    path.write_bytes(warmpack.pack(units))
    r, s = stats_run(cache, prog, tmp_path)
    same(r, native(prog))
    assert s["regions_translated"] == 0 and s["regions_from_cache"] > 10
    assert s["cache_rows_read"] >= s["regions_from_cache"], s


def test_warm_run_installs_the_warm_set_at_once(programs, tmp_path):
    """A warm run takes the regions the last run of the program used in one
    go (RunCache.warm_hits), not one exit, lookup and object read each; a
    warm set that is damaged or belongs to other code is only a hint: every
    region is still checked, and the output stays the native one."""
    prog, cache = programs / "p", tmp_path / "c"
    stats_run(cache, prog, tmp_path)                   # cold
    _, s2 = stats_run(cache, prog, tmp_path)          # warm: what runs, looked up
    warm_dir = cache / "warm"
    (sets,) = [f for f in warm_dir.iterdir() if f.suffix != ".pack"]
    keys = sets.read_text().split("--\n")[0].split()     # the last run's set
    assert len(keys) >= s2["regions_from_cache"]
    r3, s3 = stats_run(cache, prog, tmp_path)
    same(r3, native(prog))
    assert s3["regions_translated"] == 0
    assert s3["regions_from_cache"] >= s2["regions_from_cache"]
    # a region each used to cost an exit to Python; now the warm set is one
    assert s3["exits_to_python"] < s3["regions_from_cache"] / 4, s3
    # garbage, keys of nothing, and another program's set change nothing
    sets.write_bytes(b"\x00\xff not a key\n" + b"f" * 200 + b"\n" + "\n".join(keys[:5]).encode())
    r4, s4 = stats_run(cache, prog, tmp_path)
    same(r4, native(prog))
    assert s4["regions_translated"] == 0 and s4["cache_dropped"] == 0
    bttool("cache", "--cache-dir", cache, "clear")
    assert not warm_dir.exists()


def test_warm_run_never_loads_the_translator(programs, tmp_path):
    """A warm run takes everything from the cache, so it must not pay for
    importing the decoder (capstone) or the lifter: that is most of the
    start-up a short program sees."""
    prog = programs / "p"
    stats_run(tmp_path / "c", prog, tmp_path)
    r = subprocess.run([harness.installed_bttool().python, "-X", "importtime", "-m", "bttool", "run",
                        "--cache-dir", tmp_path / "c", prog], capture_output=True, cwd=harness.work_dir(),
                       env=harness.guest_env(), timeout=300)
    same(r, native(prog))
    imported = {line.split("|")[-1].strip() for line in r.stderr.decode().splitlines()
                if line.startswith("import time:")}
    assert "bttool.runtime.dispatcher" in imported
    assert not {"capstone", "bttool.translator.translate", "bttool.translator.lifter",
                "llvmlite.binding"} & imported


def test_a_warm_run_loads_no_llvm(programs, tmp_path):
    """Cached code is linked by bttool itself (runtime/objloader.py) and the
    host's target description is remembered in the cache, so a warm run
    never loads LLVM; a memo that does not match this machine, or is
    damaged, is asked again, never trusted."""
    prog, cache = programs / "pie", tmp_path / "c"
    r, cold = stats_run(cache, prog, tmp_path)
    same(r, native(prog))
    assert cold["regions_translated"] > 0 and cold["llvm_loaded"]
    memo = cache / "host-target.json"
    good = json.loads(memo.read_text())
    assert good["triple"].startswith("x86_64") and good["cpu"] and good["features"]
    r, warm = stats_run(cache, prog, tmp_path)
    same(r, native(prog))
    assert warm["regions_translated"] == 0 and not warm["llvm_loaded"]
    for damaged in ({**good, "fingerprint": "another machine", "features": "-sse2"}, "{not json"):
        memo.write_text(damaged if isinstance(damaged, str) else json.dumps(damaged))
        r, s = stats_run(cache, prog, tmp_path)
        same(r, native(prog))
        assert s["regions_translated"] == 0 and s["llvm_loaded"]
        assert json.loads(memo.read_text()) == good


def test_support_object_is_cached_and_checked(programs, tmp_path):
    """The run-time support module is compiled once per cache; a damaged copy
    is recompiled and replaced, never loaded."""
    prog = programs / "p"
    cache = tmp_path / "c"
    stats_run(cache, prog, tmp_path)
    [support] = (cache / "support").glob("*.o")
    good = support.read_bytes()
    support.write_bytes(good[:100])
    r, s = stats_run(cache, prog, tmp_path)
    same(r, native(prog))
    assert s["regions_translated"] == 0
    assert support.read_bytes() == good


def test_changed_guest_byte_misses_only_its_region(programs, tmp_path):
    """Tier 2 compiles synchronously here: in the background, which hot
    code is promoted depends on when each compilation ends (a pc inside a
    region being compiled is not promoted), so on a loaded machine a run
    may promote, and miss, a region the runs before it never made.  Both
    programs lie in one directory with names of one length: the strings
    of argv and the environment then lie at the same addresses, and libc
    (strlen and the like) takes the same paths through its code."""
    prog = tmp_path / "p1"
    shutil.copy(programs / "p", prog)
    patched = tmp_path / "p2"
    _patch_immediate(prog, patched)
    sync = {"BTTOOL_BACKGROUND_COMPILE": "0"}
    stats_run(tmp_path / "c", prog, tmp_path, env=sync)
    _, warm = stats_run(tmp_path / "c", prog, tmp_path, env=sync)     # what a run of prog loads
    r2, s2 = stats_run(tmp_path / "c", patched, tmp_path, env=sync)
    same(r2, native(patched))
    assert b"k=9" in r2.stdout
    assert 1 <= s2["regions_translated"] <= 2
    # the rest came from the cache (a warm run of prog also installs, from
    # its warm set, regions that were made along with others and need not
    # run, which the patched program's lookups never ask for)
    assert s2["regions_from_cache"] >= 0.95 * warm["regions_from_cache"] - 2


def test_changed_target_misses(programs, tmp_path):
    """Objects made for another CPU (a different cache key) are never used
    for this host."""
    prog = programs / "tiny"
    r = bttool("translate", "--cache-dir", tmp_path / "c", "--host-cpu", "x86-64", "--json", prog)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["regions_translated"] > 0
    r2, s2 = stats_run(tmp_path / "c", prog, tmp_path)
    same(r2, native(prog))
    assert s2["regions_from_cache"] == 0


def test_pie_hits_at_another_load_base(programs, tmp_path):
    prog = programs / "pie"
    r1, s1 = stats_run(tmp_path / "c", prog, tmp_path)
    same(r1, native(prog))
    r2, s2 = stats_run(tmp_path / "c", prog, tmp_path, env={"BTTOOL_PIE_BASE": "0x7000000000"})
    same(r2, native(prog))
    assert s1["regions_translated"] > 10
    assert s2["regions_translated"] == 0


@pytest.mark.parametrize("pack", [False, True], ids=["rows", "warm-pack"])
def test_corrupt_entries_are_rebuilt(programs, tmp_path, pack):
    """Damaged objects and rows are dropped, counted and translated again.
    Through the warm pack (which carries what it needs of the rows: a
    damaged row is left to `cache verify`), damaged objects are dropped and
    counted as well; a missing one is what an eviction leaves, and is
    translated again without a word."""
    prog = programs / "p"
    cache = tmp_path / "c"
    stats_run(cache, prog, tmp_path)
    if not pack:
        _pack_of(cache).unlink()
    db = sqlite3.connect(cache / "index.sqlite")
    objects = [r[0] for r in db.execute("SELECT id FROM objects ORDER BY id")]
    assert len(objects) > 3
    db.execute("UPDATE objects SET data = substr(data, 1, 40) WHERE id = ?", (objects[0],))  # truncated
    db.execute("UPDATE objects SET data = zeroblob(64) WHERE id = ?", (objects[1],))        # garbage
    db.execute("DELETE FROM objects WHERE id = ?", (objects[2],))                           # missing
    if not pack:
        db.execute("UPDATE regions SET ranges = '{not json' WHERE rowid = (SELECT MIN(rowid) FROM regions)")
    db.commit()
    db.close()
    r, s = stats_run(cache, prog, tmp_path)
    same(r, native(prog))
    # every region is in the warm set, so every object is read: the bad
    # ones and the bad row are each dropped and counted (without the pack:
    # three when the row's region is the only one of a bad object), and
    # translated again
    assert s["cache_dropped"] >= (2 if pack else 3), s
    assert s["regions_translated"] >= 3, s
    assert bttool("cache", "--cache-dir", cache, "verify").returncode == 0
    # what was translated again is in the cache: the next run is warm
    r2, s2 = stats_run(cache, prog, tmp_path)
    same(r2, native(prog))
    assert s2["regions_translated"] == 0 and s2["cache_dropped"] == 0, s2


def test_a_cache_of_the_older_file_layout_is_rebuilt(programs, tmp_path):
    """Schema 1 kept objects as files under objects/; such a cache is
    emptied and reused, not left unusable."""
    prog = programs / "p"
    cache = tmp_path / "c"
    (cache / "objects" / "ab").mkdir(parents=True)
    (cache / "objects" / "ab" / "ab01.o").write_bytes(b"old object")
    db = sqlite3.connect(cache / "index.sqlite")
    db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO meta VALUES ('schema', '1')")
    db.execute("CREATE TABLE objects (id TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL,"
               " target TEXT NOT NULL, created REAL NOT NULL, last_used REAL NOT NULL)")
    db.commit()
    db.close()
    r, s1 = stats_run(cache, prog, tmp_path)
    same(r, native(prog))
    assert b"warning" not in r.stderr and s1["regions_translated"] > 0
    assert not (cache / "objects").exists()
    _, s2 = stats_run(cache, prog, tmp_path)
    assert s2["regions_translated"] == 0 and s2["regions_from_cache"] > 0
    assert bttool("cache", "--cache-dir", cache, "verify").returncode == 0


def test_gc_evicts_what_was_used_least_recently(programs, tmp_path):
    """`cache gc` evicts by last use, and a warm run's use counts though a
    run records it on the regions only (not on the objects, whose rows
    carry their code: RunCache.finish): p is translated, then pie, then p
    runs warm again; a gc down to p's size evicts pie's translations and
    keeps p's."""
    cache = tmp_path / "c"
    stats_run(cache, programs / "p", tmp_path)
    st = json.loads(bttool("cache", "--cache-dir", cache, "stats", "--json").stdout)
    only_p = st["bytes"] + st["ir_bytes"]          # what --max-size counts
    stats_run(cache, programs / "pie", tmp_path)
    _, warm = stats_run(cache, programs / "p", tmp_path)
    assert warm["regions_translated"] == 0
    assert bttool("cache", "--cache-dir", cache, "gc", "--max-size", str(only_p)).returncode == 0
    _, p_after = stats_run(cache, programs / "p", tmp_path)
    _, pie_after = stats_run(cache, programs / "pie", tmp_path)
    assert p_after["regions_translated"] == 0 and p_after["regions_from_cache"] > 10
    assert pie_after["regions_translated"] > 10


def test_two_processes_share_an_empty_cache(programs, tmp_path):
    prog = programs / "p"
    cache = tmp_path / "c"
    cmd = harness.bttool_argv("run", "--cache-dir", cache, prog)
    procs = [subprocess.Popen(cmd, cwd=harness.work_dir(), env=harness.guest_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=600) + (p.returncode,) for p in procs]
    nat = native(prog)
    for out, err, rc in outs:
        assert (rc, out) == (nat.returncode, nat.stdout), err
    v = bttool("cache", "--cache-dir", cache, "verify")
    assert v.returncode == 0, v.stdout
    _, s = stats_run(cache, prog, tmp_path)
    assert s["regions_translated"] == 0


def test_translate_ahead_of_time_then_run(programs, tmp_path):
    prog = programs / "tiny"
    cache = tmp_path / "c"
    r = bttool("translate", "--cache-dir", cache, "--json", prog)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["functions"] >= 4 and summary["jump_tables"] == 1
    assert summary["regions_translated"] > 5
    r2, s2 = stats_run(cache, prog, tmp_path)
    same(r2, native(prog))
    assert s2["regions_translated"] == 0 and s2["regions_from_cache"] > 5
    again = json.loads(bttool("translate", "--cache-dir", cache, "--json", prog).stdout)
    assert again["regions_translated"] == 0 and again["regions_already_cached"] == summary["regions_translated"]


@pytest.mark.parametrize("opt", ["1", "2"])
def test_translate_keeps_a_switch_in_its_region(programs, tmp_path, opt):
    """Ahead of time, the region of a function that dispatches through a
    jump table (tiny's classify: a switch of seven cases) takes the cases
    in, as tier 2 does at run time, instead of stopping at each case (they
    are region entries of their own too): without, an interpreter's
    dispatch left through the lookup table at every bytecode, and bench
    interp translated with --opt 2 ran 2.2 s where 0.87 s was possible."""
    prog = programs / "tiny"
    cache = tmp_path / "c"
    bttool("translate", "--cache-dir", cache, "--opt", opt, prog)
    nm = subprocess.run(["nm", str(prog)], capture_output=True, text=True, check=True).stdout
    classify = next(int(ln.split()[0], 16) for ln in nm.splitlines() if ln.endswith(" classify"))
    ls = json.loads(bttool("cache", "--cache-dir", cache, "ls", "--json").stdout)
    keys = [r["key"] for r in ls if r["entry"] == classify]
    assert len(keys) == 1
    guest = bttool("cache", "--cache-dir", cache, "show", keys[0][:12], "--section", "guest").stdout
    blocks = [ln for ln in guest.decode().splitlines() if ln.startswith("0x") and ln.endswith(":")]
    assert len(blocks) >= 1 + 7, guest.decode()
    r, s = stats_run(cache, prog, tmp_path)
    same(r, native(prog))
    assert s["regions_translated"] == 0


def test_translate_finds_functions_through_eh_frame(programs, tmp_path):
    r = bttool("translate", "--cache-dir", tmp_path / "c", "--json", programs / "tiny-eh")
    assert json.loads(r.stdout)["functions"] >= 4        # no symbols: FDEs only
    _, s = stats_run(tmp_path / "c", programs / "tiny-eh", tmp_path)
    assert s["regions_translated"] <= 1   # `hidden`'s return site may need one


def test_translate_uses_the_code_map_of_earlier_runs(programs, tmp_path):
    """`hidden` is reached only through an address computed at run time, in
    a stripped binary without unwind tables: static discovery misses it, a
    run records it, and the next `translate` picks it up from the code map."""
    prog = programs / "tiny-bare"
    first = json.loads(bttool("translate", "--cache-dir", tmp_path / "a", "--json", prog).stdout)
    _, s = stats_run(tmp_path / "a", prog, tmp_path)
    assert s["regions_translated"] >= 1                 # what discovery missed
    # a fresh cache that only knows the code map: copy the index, drop regions
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    db = sqlite3.connect(tmp_path / "b" / "index.sqlite")
    db.execute("DELETE FROM regions")
    db.commit()
    db.close()
    second = json.loads(bttool("translate", "--cache-dir", tmp_path / "b", "--json", prog).stdout)
    assert second["codemap_entries"] > 0
    assert second["regions_translated"] > first["regions_translated"]
    r, s2 = stats_run(tmp_path / "b", prog, tmp_path)
    same(r, native(prog))
    assert s2["regions_translated"] == 0


def test_translate_for_aarch64_stores_aarch64_objects(programs, tmp_path):
    import capstone

    from bttool.ir import objfile
    cache = tmp_path / "c"
    r = bttool("translate", "--cache-dir", cache, "--target", "aarch64-linux-gnu", "--json", programs / "tiny")
    assert r.returncode == 0, r.stderr
    db = sqlite3.connect(cache / "index.sqlite")
    rows = db.execute("SELECT DISTINCT object, symbol FROM regions WHERE triple = 'aarch64-linux-gnu'"
                      " LIMIT 20").fetchall()
    assert rows
    cs = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    for object_id, symbol in rows:
        data, = db.execute("SELECT data FROM objects WHERE id = ?", (object_id,)).fetchone()
        assert data[:4] == b"\x7fELF" and objfile.machine(data) == "aarch64"
        code = objfile.symbol_code(data, objfile.symbols(data)[symbol])
        insns = list(cs.disasm(code, 0))
        assert len(insns) == len(code) // 4 > 0
    # and a host run ignores them
    _, s = stats_run(cache, programs / "tiny", tmp_path)
    assert s["regions_from_cache"] == 0


def _shown_ir(cache, key: str, *options: str, header: str = "== LLVM IR") -> str:
    out = bttool("cache", "--cache-dir", cache, "show", key, "--section", "ir", *options).stdout.decode()
    shown, text = out.split(" ==\n", 1)
    assert header in shown
    return text


def test_cache_show_ir_is_the_ir_the_stored_code_was_compiled_from(programs, tmp_path):
    """`cache show --section ir` gives the very module each stored object
    was compiled from: compiled again for the region's target it yields
    the stored object byte for byte, for tier-1 code made by a run (with
    its execution counters) and tier-2 code made ahead of time.  An IR blob
    that fails its check is named by `cache verify`."""
    from llvmlite import binding as llvm

    from bttool.ir import codegen
    from bttool.runtime.cache_inspect import region_target
    cache = tmp_path / "c"
    stats_run(cache, programs / "p", tmp_path, env={"BTTOOL_TIER1": "llvm"})
    bttool("translate", "--cache-dir", cache, "--opt", "2", programs / "tiny")
    ls = json.loads(bttool("cache", "--cache-dir", cache, "ls", "--json").stdout)
    db = sqlite3.connect(cache / "index.sqlite")
    for tier in ("|O1|", "|O2|"):
        regions = [r for r in ls if tier in r["target"]][:6]
        assert regions, tier
        for r in regions:
            text = _shown_ir(cache, r["key"])
            stored = db.execute("SELECT data FROM objects WHERE id = ?", (r["object"],)).fetchone()[0]
            assert codegen.compile_module(text, region_target(r))[0] == stored, (tier, r["key"])
            optimised = llvm.parse_assembly(_shown_ir(cache, r["key"], "--optimised"))
            assert optimised.get_function(r["symbol"]).name == r["symbol"]
    db.execute("UPDATE objects SET ir = x'789c0badcafe' WHERE rowid = (SELECT MIN(rowid) FROM objects)")
    db.commit()
    db.close()
    bad = bttool("cache", "--cache-dir", cache, "verify")
    assert bad.returncode == 1 and b"IR fails its check" in bad.stdout


def test_cache_show_lists_the_stencils_of_a_stitched_region(programs, tmp_path):
    """A region stitched from stencils was made by no LLVM module: `cache
    show --section ir` lists, in host-code order, the stencil copied for
    each of its guest instructions (after the counter of its entries),
    with the key and hole values of each, with or without --optimised."""
    cache = tmp_path / "c"
    r, _ = stats_run(cache, programs / "p", tmp_path, env={"BTTOOL_TIER1": "stencils"})
    same(r, native(programs / "p"))
    ls = json.loads(bttool("cache", "--cache-dir", cache, "ls", "--json").stdout)
    shown = 0
    for region in sorted(ls, key=lambda r: -r["insn_count"])[:10]:       # (a show takes 0.5 s)
        out = bttool("cache", "--cache-dir", cache, "show", region["key"]).stdout.decode()
        if "== stencils" not in out:
            continue
        guest = out.split("== guest code ==\n")[1].split("\n\n")[0]
        listing = out.split("== stencils")[1].split("\n", 1)[1].split("\n\n")[0]
        addresses = sorted(int(line.split()[0], 16) for line in guest.splitlines()
                           if line.startswith("    "))
        rows = [line.split() for line in listing.splitlines() if not line.startswith(";")]
        assert rows[0][2:5] == ["(counts", "the", "region's"] and int(rows[0][1], 16) == region["entry"]
        copies = [row for row in rows if not row[2].startswith("(")]
        assert sorted(int(row[1], 16) for row in copies) == addresses
        assert len(copies) == region["insn_count"]
        offsets = [int(row[0], 16) for row in rows]
        assert offsets == sorted(offsets) and offsets[-1] < region["host_bytes"]
        assert all({"[bytes", "[abstract", "[pinned"} & set(row) for row in copies)
        assert _shown_ir(cache, region["key"], "--optimised", header="== stencils") \
            == _shown_ir(cache, region["key"], header="== stencils")
        shown += 1
    assert shown >= 6


def test_cache_tools(programs, tmp_path):
    prog = programs / "p"
    cache = tmp_path / "c"
    stats_run(cache, prog, tmp_path)
    ls = json.loads(bttool("cache", "--cache-dir", cache, "ls", "--json").stdout)
    assert ls and all(r["insn_count"] > 0 and r["host_bytes"] > 0 for r in ls)
    mine = json.loads(bttool("cache", "--cache-dir", cache, "ls", "--image", prog, "--json").stdout)
    assert len(mine) == len(ls)
    table = bttool("cache", "--cache-dir", cache, "ls").stdout.decode()
    assert "KEY" in table and len(table.splitlines()) == len(ls) + 1

    entry = ls[0]
    show = bttool("cache", "--cache-dir", cache, "show", entry["key"][:12]).stdout.decode()
    assert "== guest code ==" in show and "== host code" in show
    assert ("== LLVM IR" in show) != ("== stencils" in show)     # compiled, or stitched
    by_addr = bttool("cache", "--cache-dir", cache, "show", hex(entry["entry"]), "--image", prog,
                     "--section", "guest").stdout.decode()
    assert "== guest code ==" in by_addr and "== host code" not in by_addr

    st = json.loads(bttool("cache", "--cache-dir", cache, "stats", "--json").stdout)
    assert st["entries"] == len(ls) and st["images"] == 1 and st["bytes"] > 0
    # a miss translates its region and maybe the callee and return site of
    # its entry block along (translator/translate.py)
    assert 0.5 * len(ls) < st["misses"]

    assert bttool("cache", "--cache-dir", cache, "verify").returncode == 0
    db = sqlite3.connect(cache / "index.sqlite")
    db.execute("UPDATE objects SET data = x'6272006b656e' WHERE rowid = (SELECT MIN(rowid) FROM objects)")
    db.commit()
    db.close()
    bad = bttool("cache", "--cache-dir", cache, "verify")
    assert bad.returncode == 1 and b"checksum" in bad.stdout
    assert bttool("cache", "--cache-dir", cache, "verify", "--repair").returncode == 0
    assert bttool("cache", "--cache-dir", cache, "verify").returncode == 0

    before = json.loads(bttool("cache", "--cache-dir", cache, "stats", "--json").stdout)["bytes"]
    index_size = (cache / "index.sqlite").stat().st_size
    gc = bttool("cache", "--cache-dir", cache, "gc", "--max-size", str(before // 2))
    assert gc.returncode == 0
    after = json.loads(bttool("cache", "--cache-dir", cache, "stats", "--json").stdout)
    assert 0 < after["bytes"] <= before // 2
    assert (cache / "index.sqlite").stat().st_size < index_size - before // 3   # objects are rows
    _, s = stats_run(cache, prog, tmp_path)          # evicted regions come back
    assert s["regions_translated"] > 0 and s["regions_from_cache"] > 0

    assert bttool("cache", "--cache-dir", cache, "clear").returncode == 0
    assert json.loads(bttool("cache", "--cache-dir", cache, "stats", "--json").stdout)["entries"] == 0
    assert not list(cache.rglob("*.o"))
    assert (cache / "index.sqlite").stat().st_size < 100_000


BUSYBOX = shutil.which("busybox") or "/bin/busybox"


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="busybox-static not installed")
def test_translate_busybox_then_run_applets(tmp_path):
    """Slow (the whole of busybox); test_translate_ahead_of_time_then_run
    covers the same code on a small program in the default run."""
    cache = tmp_path / "c"
    r = bttool("translate", "--cache-dir", cache, "--json", BUSYBOX)
    assert r.returncode == 0, r.stderr
    (tmp_path / "in.txt").write_text("b\na\nc\na\n")
    for args in (["sort", tmp_path / "in.txt"], ["wc", "-l", tmp_path / "in.txt"],
                 ["md5sum", tmp_path / "in.txt"], ["echo", "hi"]):
        rr, s = stats_run(cache, BUSYBOX, tmp_path, *args)
        same(rr, subprocess.run([BUSYBOX, *map(str, args)], capture_output=True))
        assert s["regions_translated"] <= 10, (args, s)


IDENTITY_RUNNER = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
                   "from bttool.cli import entry; sys.argv[0] = 'bttool'; entry()")


def test_an_edited_translator_never_gets_old_entries(programs, tmp_path):
    """Cache keys carry an identity derived from the translator's sources
    (translator/identity.py): after a semantics module of a copy of the
    package is edited, nothing cached before is served; an edit to a module
    that does not shape translations (the command line) keeps them."""
    pkg = tmp_path / "pkg"
    site = next((harness.installed_bttool().venv / "lib").glob("python3*/site-packages"))
    shutil.copytree(site / "bttool", pkg / "bttool", ignore=shutil.ignore_patterns("__pycache__"))
    prog, cache = programs / "p", tmp_path / "cache"

    def run() -> dict:
        out = tmp_path / f"stats-{os.urandom(4).hex()}.json"
        r = subprocess.run([harness.installed_bttool().python, "-I", "-c", IDENTITY_RUNNER, pkg, "run",
                            "--cache-dir", cache, "--stats-json", out, prog], capture_output=True,
                           cwd=harness.work_dir(), env=harness.guest_env(), timeout=600)
        same(r, native(prog))
        return json.loads(out.read_text())

    first = run()
    assert first["regions_translated"] > 0
    warm = run()
    assert warm["regions_translated"] == 0 and warm["regions_from_cache"] > 0, warm
    with open(pkg / "bttool" / "cli.py", "a") as f:
        f.write("\n# an edit that changes no translation\n")
    still = run()
    assert still["regions_translated"] == 0 and still["regions_from_cache"] > 0, still
    with open(pkg / "bttool" / "translator" / "semantics" / "logical.py", "a") as f:
        f.write("\n# an edit to the semantics\n")
    edited = run()
    assert edited["regions_from_cache"] == 0 and edited["regions_translated"] > 0, edited


CLOSED_STDIN_PROBE = r"""
import os, sys
from bttool.runtime.cache import CacheStore
store = CacheStore(sys.argv[1])
store.store_image_info("ab" * 32, "/x", {"k": 1})
pid = os.fork()                          # a guest fork: the child reopens the index
if pid == 0:
    store.reopen()
    os.close(0)                          # as tar's child does before dup(fd), expecting 0
    for i in range(50):                  # translations the child then caches
        store.store_image_info("%064x" % i, "/y", {"i": i})
    assert store.image_info("%064x" % 49) == {"i": 49}
    try:
        os.fstat(0)
        print("fd 0 taken:", os.readlink("/proc/self/fd/0"), flush=True)
    except OSError:
        print("fd 0 free", flush=True)
    os._exit(0)
for i in range(50):                      # the parent carries on with the cache
    store.store_image_info("%064x" % (1000 + i), "/y", {"i": i})
_, status = os.waitpid(pid, 0)
print("child status", status, store.image_info("ab" * 32))
"""


def test_cache_never_takes_a_descriptor_the_guest_freed(tmp_path):
    """SQLite fills a free 0-2 with /dev/null for good when one of its opens
    lands there; in a forked child that had closed its stdin, tar's
    `close(0); dup(fd) == 0` check then failed and it aborted.  The cache
    must leave the guest's freed descriptors free (fails without
    hostfds.standard_fds_held around the index's calls)."""
    python = harness.installed_bttool().python
    r = subprocess.run([str(python), "-c", CLOSED_STDIN_PROBE, str(tmp_path / "cache")],
                       capture_output=True, cwd=harness.work_dir(), env=harness.guest_env(), timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().splitlines() == ["fd 0 free", "child status 0 {'k': 1}"]

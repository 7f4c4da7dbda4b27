"""Guest threads (runtime/guestthreads.py): samples/threads.c under bttool
prints what it prints natively, with the same exit status, in every mode,
cold (threads racing to translate the same code) and warm.  Its pingpong
mode ends only if neither thread, spinning in translated code, keeps the
other out (no lock is held while translated code runs); the parallel
speed-up itself is a benchmark (bench/threads)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import programs  # noqa: E402
from programs import bttool_cache, samples_dir  # noqa: E402,F401  (fixtures)

MODES = ["", "pingpong", "exitgroup", "mainexit", "signals", "detach", "robust", "segv", "fork",
         "compute 3 300000"]
# run cold first, in a cache of their own: threads racing to translate
COLD_FIRST = {"", "compute 3 300000"}


@pytest.mark.parametrize("mode", MODES, ids=[m.split()[0] if m else "basic" for m in MODES])
def test_threads_like_native(samples_dir, bttool_cache, tmp_path, mode):
    """Each mode as natively (the session's cache: warm after the first);
    some cold first, then warm from their own cache.  A fault that kills
    the process is reported in one bttool: line."""
    argv = [str(samples_dir / "threads")] + mode.split()
    caches = [tmp_path / "cache"] * 2 if mode in COLD_FIRST else [bttool_cache]
    for cache in caches:
        native, _ = programs.compare_run(argv, cache, cwd=tmp_path, timeout=300,
                                         bttool_lines=1 if mode == "segv" else 0)
    assert native.returncode == {"exitgroup": 7, "segv": -11}.get(mode, 0)


def test_stats_count_the_threads(samples_dir, bttool_cache, tmp_path):
    stats = tmp_path / "stats.json"
    r = programs.run_bttool([samples_dir / "threads"], bttool_cache,
                            options=["--stats-json", str(stats)], cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(stats.read_text())["threads"] == 1 + 4


def test_debian_sort_in_parallel(bttool_cache, tmp_path):
    """A dynamically linked Debian program that starts a thread of its own
    (GNU sort sorts 600,000 lines in memory with two threads) gives the
    native bytes."""
    data = b"".join(b"%d\n" % ((i * 7919) % 1000003) for i in range(600000))
    (tmp_path / "in.txt").write_bytes(data)
    stats = tmp_path / "stats.json"
    programs.compare_run(["/usr/bin/sort", "--parallel=2", "in.txt"], bttool_cache, cwd=tmp_path,
                         options=["--stats-json", str(stats)], timeout=300)
    assert json.loads(stats.read_text())["threads"] == 2

"""Guest threads (runtime/guestthreads.py): samples/threads.c under bttool
prints what it prints natively, with the same exit status, in every mode,
cold (threads racing to translate the same code) and warm; and two guest
threads really run on two host cores at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import programs  # noqa: E402
from programs import bttool_cache, samples_dir  # noqa: E402,F401  (fixtures)

MODES = ["", "exitgroup", "mainexit", "signals", "detach", "robust", "fork", "compute 3 300000"]


@pytest.mark.parametrize("mode", MODES, ids=[m.split()[0] if m else "basic" for m in MODES])
def test_threads_like_native(samples_dir, tmp_path, mode):
    """Cold (a cache of its own: the threads translate concurrently), then
    warm from that cache."""
    argv = [str(samples_dir / "threads")] + mode.split()
    cache = tmp_path / "cache"
    for _ in range(2):
        programs.compare_run(argv, cache, cwd=tmp_path, timeout=300)


def test_stats_count_the_threads(samples_dir, bttool_cache, tmp_path):
    stats = tmp_path / "stats.json"
    r = programs.run_bttool([samples_dir / "threads"], bttool_cache,
                            options=["--stats-json", str(stats)], cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(stats.read_text())["threads"] == 1 + 4


def _cpu_and_wall(argv: list[str]) -> tuple[float, float]:
    """(CPU seconds of the process and its threads, wall seconds)."""
    t0 = time.perf_counter()
    before = os.times()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=programs.guest_env())
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return cpu, time.perf_counter() - t0


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two host cores")
def test_two_threads_use_two_cores(samples_dir, bttool_cache):
    """While two guest threads compute, the bttool process uses more than
    one core: translated code holds no Python lock.  (The speed-up itself
    is measured by bench/threads.)"""
    argv = programs.bttool_command([samples_dir / "threads", "compute", "2", "20000000"], bttool_cache)
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=programs.guest_env())  # warm up
    cpu, wall = _cpu_and_wall(argv)
    assert cpu > 1.3 * wall, f"{cpu:.2f} s of CPU in {wall:.2f} s"

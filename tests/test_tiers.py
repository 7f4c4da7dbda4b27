"""Tier 2 and the regions it shares (runtime/dispatcher.py promote).

A loop that calls a function is re-entered at the call's return site; that
block is already inside the tier-2 region of the loop, so when it gets hot
on its own the runtime installs that region for it (a region's function can
be entered at any of its blocks) instead of translating the same code again,
and notes the alias in the cache so the next run finds it.  The guest must
not notice: its output is compared with the native run's, cold and warm.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import programs  # noqa: E402


def _bttool(program, cache, stats):
    return subprocess.run([sys.executable, "-m", "bttool", "run", "-v", "--cache-dir", str(cache),
                           "--stats-json", str(stats), str(program)],
                          capture_output=True, timeout=600, cwd=programs.REPO,
                          env=dict(os.environ, PYTHONPATH=str(programs.REPO)))


def test_hot_blocks_inside_tier2_regions_share_them(tmp_path):
    program = programs.build_samples() / "sortheavy"
    native = subprocess.run([str(program)], capture_output=True, timeout=600)
    cold = _bttool(program, tmp_path / "cache", tmp_path / "cold.json")
    assert (cold.returncode, cold.stdout) == (native.returncode, native.stdout)
    log = cold.stderr.decode()
    assert "(O2)" in log, "nothing got hot enough for tier 2"
    assert "entered inside the tier-2 region" in log, "no block was served by a tier-2 region"
    warm = _bttool(program, tmp_path / "cache", tmp_path / "warm.json")
    assert (warm.returncode, warm.stdout) == (native.returncode, native.stdout)
    stats = json.loads((tmp_path / "warm.json").read_text())
    assert stats["regions_translated"] == 0, warm.stderr.decode()[-2000:]

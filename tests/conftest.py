"""Shared pytest configuration.

* tests/ is importable (the harness modules programs, native, installed ...).
* The checkout is importable too, for the in-process tests that drive the
  translator's parts directly (snippets, IR shapes).  Program-level tests
  never use it: they run bttool as installed from its wheel into a fresh
  virtual environment (tests/installed.py, tests/programs.py).
* Hypothesis is derandomised unless ``--hypothesis-profile=deep``
  (tests/hypothesis_profiles.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
for p in (str(TESTS), str(REPO)):
    if p not in sys.path:
        sys.path.insert(0, p)

import hypothesis_profiles  # noqa: E402,F401  (registers "default" and "deep")

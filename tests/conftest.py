"""Shared pytest configuration.

* tests/ is importable (the harness modules programs, native, installed ...).
* The checkout is importable too, for the in-process tests that drive the
  translator's parts directly (snippets, IR shapes).  Program-level tests
  never use it: they run bttool as installed from its wheel into a fresh
  virtual environment (tests/installed.py, tests/programs.py).
* Hypothesis is derandomised unless ``--hypothesis-profile=deep``
  (tests/hypothesis_profiles.py).
* Stencils (translator/stitch.py), kept per user whatever the translation
  cache, are kept for the tests in a directory of their own under the
  system's temporary directory, shared by the suite's runs and workers,
  never in the user's cache.
* Programs start with SIGINT and SIGQUIT at their defaults, as from an
  interactive shell, even when the suite itself was started in the
  background by a non-interactive one (which ignores both): the signal
  tests compare what a program inherits.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
for p in (str(TESTS), str(REPO)):
    if p not in sys.path:
        sys.path.insert(0, p)

import hypothesis_profiles  # noqa: E402,F401  (registers "default" and "deep")

os.environ.setdefault("BTTOOL_STENCIL_DIR",
                      os.path.join(tempfile.gettempdir(), f"bttool-test-stencils-{os.getuid()}"))

import signal  # noqa: E402

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGQUIT) == signal.SIG_IGN:
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)

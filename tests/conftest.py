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
* The differential ISA tests take the ``isa_tier`` fixture (by
  ``pytest.mark.usefixtures("isa_tier")``): each runs under every tier, the
  translated side being tier 1 compiled by LLVM, tier 1 stitched from
  stencils, or tier 2 (tests/native.py TIER).
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

import hypothesis_profiles  # noqa: E402  (registers "default" and "deep")

os.environ.setdefault("BTTOOL_STENCIL_DIR",
                      os.path.join(tempfile.gettempdir(), f"bttool-test-stencils-{os.getuid()}"))

import re  # noqa: E402
import signal  # noqa: E402
import zlib  # noqa: E402

import pytest  # noqa: E402

import native  # noqa: E402


_GIVEN_SETTINGS: dict = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    """Draw the share of examples the test's tier takes
    (hypothesis_profiles.TIER_SHARE), and give a parametrised ``@given``
    test its own settings back before each invocation: Hypothesis's pytest
    plugin wraps the function's settings in a new child at every
    parametrised call, so the chain grows by one per invocation, and past
    about a thousand invocations of one function (test_sse_semantics'
    test_insn under every tier) reading ``settings.database`` through it
    overflows the stack."""
    callspec = getattr(item, "callspec", None)
    share = hypothesis_profiles.TIER_SHARE[callspec.params["isa_tier"]] \
        if callspec is not None and "isa_tier" in callspec.params else 1.0
    hypothesis_profiles.share[0] = share
    fn = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
    settings = getattr(fn, "_hypothesis_internal_use_settings", None)
    if settings is not None:
        own = _GIVEN_SETTINGS.setdefault(fn, settings)
        if share != 1.0:
            from hypothesis import settings as Settings
            own = Settings(parent=own, max_examples=max(1, round(own.max_examples * share)))
        fn._hypothesis_internal_use_settings = own


_TIER_WORD = re.compile(r"\b(?:" + "|".join(native.TIERS) + r")\b")


def pytest_collection_modifyitems(config, items) -> None:
    """Cases of a differential test that is not a Hypothesis test (a
    parametrised list of cases) take the tiers in turn, by a checksum of
    the case's id, so every tier runs a third of the cases, each case once:
    under every tier each, they made the ISA tests 1.55 times as long
    (398 s against 256 s with two workers) for code the three tiers
    share.  A test with fewer than three cases runs each under every
    tier, and Hypothesis tests draw their examples under every tier
    (hypothesis_profiles.TIER_SHARE).  BTTOOL_ISA_ALL_TIERS=1 runs every
    case under every tier."""
    if os.environ.get("BTTOOL_ISA_ALL_TIERS"):
        return
    cases: dict[tuple[str, str], str] = {}      # (function, case id without the tier) -> tier
    rotated = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "isa_tier" not in callspec.params \
                or getattr(item.obj, "is_hypothesis_test", False):
            continue
        case = _TIER_WORD.sub("", item.nodeid)
        fn = item.nodeid.split("[", 1)[0]
        rotated.append((item, fn, case))
        cases.setdefault((fn, case), native.TIERS[zlib.crc32(case.encode()) % len(native.TIERS)])
    per_test: dict[str, int] = {}
    for fn, _case in cases:
        per_test[fn] = per_test.get(fn, 0) + 1
    drop = {id(item) for item, fn, case in rotated
            if per_test[fn] >= 3 and item.callspec.params["isa_tier"] != cases[(fn, case)]}
    if drop:
        config.hook.pytest_deselected(items=[i for i in items if id(i) in drop])
        items[:] = [i for i in items if id(i) not in drop]


@pytest.fixture(params=native.TIERS)
def isa_tier(request, monkeypatch) -> str:
    """The tier whose code ``native.run_translated`` runs in this test."""
    monkeypatch.setattr(native, "TIER", request.param)
    native.forget_translation()
    yield request.param
    native.forget_translation()

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGQUIT) == signal.SIG_IGN:
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)

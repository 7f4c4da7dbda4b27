"""Hypothesis profiles for the differential ISA tests.

* ``default`` (every run, CI included): derandomised (a fixed seed), so the
  same cases run every time and a red run is reproduced by running it again;
  no example database, no deadline.
* ``deep`` (``pytest --hypothesis-profile=deep``): random, with ten times
  the examples; run it before calling an instruction family done.  A
  failure prints its ``@reproduce_failure`` blob.

Tests that set their own ``max_examples`` write ``examples(n)``: ``n`` scaled
by the active profile (max_examples / 100: 1 for default, 10 for deep, and
so for any profile registered elsewhere).  They must not set
``derandomize`` themselves.  Imported by conftest.py, before the hypothesis
plugin loads the profile named on the command line (the plugin loads it in
pytest_configure; test modules are imported later, at collection).
"""
from __future__ import annotations

from hypothesis import HealthCheck, settings

BASE_EXAMPLES = 100          # max_examples of the default profile
DEEP_FACTOR = 10

_COMMON = dict(database=None, deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
settings.register_profile("default", derandomize=True, max_examples=BASE_EXAMPLES, **_COMMON)
settings.register_profile("deep", derandomize=False, max_examples=BASE_EXAMPLES * DEEP_FACTOR,
                          **_COMMON)
settings.load_profile("default")


def factor() -> float:
    """How many times the default profile's examples the active one draws."""
    return settings.default.max_examples / BASE_EXAMPLES


# The share of its examples a differential test draws under each tier
# (conftest.py's ``isa_tier`` fixture): half under stitched tier 1, the code a
# linux-user run starts with, a quarter each under compiled tier 1 (the
# same lifter IR, compiled whole) and tier 2 (its own IR, at O2).  Each
# tier draws inputs of its own (its seed comes from the test's id, which
# names the tier), so a case still meets as many inputs as it did under
# one tier, the instruction semantics the tiers share are tested as hard
# as before, and the suite stays within CI's time.  conftest.py applies
# it to a test's ``@settings`` and sets ``share`` for the ``examples`` of
# settings made while the test runs.
TIER_SHARE = {"stitched": 0.5, "compiled": 0.25, "optimised": 0.25}
share = [1.0]


def examples(n: int) -> int:
    """``n`` examples in the default profile, scaled by the active profile's
    ``factor()`` and the running test's tier ``share`` (at least 1).  Read
    when the settings are made: at import for module-level settings, which
    is after the profile is loaded (conftest.py scales those per tier)."""
    return max(1, round(n * factor() * share[0]))

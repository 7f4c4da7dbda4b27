"""Hypothesis profiles for the differential ISA tests.

* ``default`` (every run, CI included): derandomised, so the same cases run
  every time and a red run can be reproduced by running it again.
* ``deep`` (``pytest --hypothesis-profile=deep``): random, with ten times the
  examples; run it before calling an instruction family done.

Tests that set their own ``max_examples`` scale it with ``examples(n)``.
Imported by conftest.py, before the hypothesis plugin loads the profile
named on the command line.
"""
from __future__ import annotations

from hypothesis import HealthCheck, settings

_COMMON = dict(database=None, deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
settings.register_profile("default", derandomize=True, **_COMMON)
settings.register_profile("deep", derandomize=False, max_examples=1000, **_COMMON)
settings.load_profile("default")

DEEP_FACTOR = 10


def examples(n: int) -> int:
    """``n`` examples in the default profile, DEEP_FACTOR times as many in
    ``deep`` (read when a test module is imported, after the profile is
    loaded)."""
    return n * DEEP_FACTOR if not settings.default.derandomize else n

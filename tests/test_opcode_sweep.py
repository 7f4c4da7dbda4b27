"""The opcode sweep of issue 23 (tests/opcode_sweep.py): every opcode of the
one-, two- and three-byte maps with the prefixes that change its meaning,
natively and under bttool.  Fails when an encoding the host runs is
untranslatable or ends differently under bttool (registers, flags the SDM
defines, xmm, MXCSR control, data area, stack, or the signal), unless
``opcode_sweep.EXCEPTIONS`` / ``_exception_for`` or the CPU model explain it
or ``opcode_sweep.KNOWN_GAPS`` pins it as an open gap of issue 23; and fails
when a ``KNOWN_GAPS`` entry is no longer a gap (the table only shrinks).

The result table is printed (``pytest -s``) and written to
``opcode_sweep.txt`` in the session's temporary directory; set
BTTOOL_SWEEP_JSON=FILE for every encoding's class as JSON.  ~1 minute on
two cores: the encodings are split over forked workers, one per core."""
from __future__ import annotations

import fcntl
import json
import os
import pickle
import sys

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import opcode_sweep as O  # noqa: E402

# KNOWN_GAPS and the vendor rules were measured on these kinds of CPU;
# several rules are vendor behaviour (AMD's lock-mov-cr8 alias, 66-prefixed
# branches, aliases capstone cannot decode, Intel's reserved-NOP 0F 0D
# register forms).  Elsewhere the strict checks are skipped with the
# reason: the verdicts must hold on any host.
PINNED_ON = (("AuthenticAMD", "25"), ("GenuineIntel", "6"))


def _host_cpu() -> tuple[str, str]:
    vendor = family = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "vendor_id":
                    vendor = value.strip()
                elif key.strip() == "cpu family":
                    family = value.strip()
                    break
    except OSError:
        pass
    return vendor, family


def _pinned_here() -> None:
    host = _host_cpu()
    if host not in PINNED_ON:
        pinned = ", ".join(f"{v} family {f}" for v, f in PINNED_ON)
        pytest.skip(f"KNOWN_GAPS was pinned on {pinned}; this host is {host[0]} family "
                    f"{host[1]}: run `python3 tests/opcode_sweep.py --list` here and pin its "
                    "gaps per vendor")


def _shared_sweep(tmp_path_factory) -> "O.Sweep":
    """The sweep, made once per test run: under pytest-xdist each worker
    that runs a test of this module would sweep again on its own (a
    module fixture is per process), so the first makes it under a lock in
    the run's temporary directory, which the workers share, and the others
    read it from there."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent          # .../pytest-N, above each worker's popen-gwK
    lock_path, kept = base / "opcode_sweep.lock", base / "opcode_sweep.pickle"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if kept.exists():
            with open(kept, "rb") as f:
                return pickle.load(f)
        s = O.sweep()
        with open(kept, "wb") as f:
            pickle.dump(s, f)
        return s


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    s = _shared_sweep(tmp_path_factory)
    text = s.table() + "\n\n" + s.listing() + f"\n\n{len(s.rows)} encodings in {s.seconds:.1f} s\n"
    out = tmp_path_factory.mktemp("sweep") / "opcode_sweep.txt"
    out.write_text(text)
    print("\n" + text + f"(written to {out})")
    if os.environ.get("BTTOOL_SWEEP_JSON"):
        with open(os.environ["BTTOOL_SWEEP_JSON"], "w") as f:
            json.dump(s.to_json(), f, indent=1)
    return s


def test_sweep_covers_the_maps(sweep):
    counts = sweep.counts()
    maps = {e.map for e, c, _d in sweep.rows if c != "skipped"}
    assert maps == {"1", "0F", "0F38", "0F3A"}
    assert counts["same"] > 3000, counts
    # every run encoding got a class, none was lost to a worker
    assert sum(counts.values()) == len(sweep.rows)


def test_nothing_untranslatable_that_runs_natively(sweep):
    _pinned_here()
    bad = [(e, d) for e, d in sweep.by_class("untranslatable")]
    assert not bad, (f"{len(bad)} encodings the host runs (or faults on differently) are "
                     f"untranslatable and not in KNOWN_GAPS:\n" + sweep.listing(("untranslatable",)))


def test_nothing_differs(sweep):
    _pinned_here()
    bad = sweep.by_class("differs")
    assert not bad, (f"{len(bad)} encodings differ and are not in KNOWN_GAPS:\n"
                     + sweep.listing(("differs",)))


def test_known_gaps_are_still_gaps(sweep):
    """Every KNOWN_GAPS key is swept and still ends as the class it is
    pinned as; a fixed one must be deleted from the table."""
    _pinned_here()
    assert sweep.complete
    assert not sweep.stale_gaps(), sweep.stale_message()
    assert sweep.counts()["known-gap"] == len(O.KNOWN_GAP_KEYS)


def test_classification_of_known_encodings():
    """The harness itself: add runs as natively, ud2 and a division by zero
    fault alike, an unmapped load faults alike."""
    s = O.sweep(maps=("1", "0F"), only=["4801c3", "0f0b", "f7f1", "45d80b"])
    got = {e.key: c for e, c, _d in s.rows}
    assert got.get("4801c3") == "same"
    assert got.get("0f0b") == "same-signal"

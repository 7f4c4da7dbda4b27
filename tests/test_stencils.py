"""Tier 1 by copy and patch (translator/stitch.py): regions stitched from
per-instruction stencils compute what the host computes, sample programs
behave as natively, and stencils kept in the cache serve later runs."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import native as N  # noqa: E402
import programs  # noqa: E402
from programs import bttool_cache, samples_dir  # noqa: E402,F401  (fixtures)
from test_isa_integer import CASES, Case, check_case  # noqa: E402

from bttool.runtime.stencilstore import StencilFile  # noqa: E402
from bttool.translator.decoder import Decoder  # noqa: E402
from bttool.translator.stitch import stencil_key  # noqa: E402


def _insn(hexcode: str, pc: int = 0x401000):
    return Decoder(64).decode_one(bytes.fromhex(hexcode), pc)


@pytest.mark.parametrize("a,b", [
    ("7405", "747f"),                      # je rel8, two displacements
    ("0f8412345678", "0f84fffffff0"),      # je rel32
    ("e800000010", "e8f0ffffff"),          # call rel32
    ("488b0510000000", "488b05f0ffffff"),  # mov rax, [rip+d]
    ("8d0510000000", "8d05f0ffffff"),      # lea eax, [rip+d]
])
def test_displacements_are_holes(a, b):
    """Branch and rip-relative displacements are left out of the key, so
    those instructions share a stencil wherever they are."""
    assert stencil_key(_insn(a)) == stencil_key(_insn(b))
    assert stencil_key(_insn(a, 0x401000)) == stencil_key(_insn(a, 0x7f0000123000))


@pytest.mark.parametrize("a,b", [
    ("4883c001", "4883c301"),              # add rax, 1 / add rbx, 1
    ("4883c001", "4883c002"),              # the immediate
    ("488b4308", "488b4310"),              # a displacement off a register
    ("7405", "7505"),                      # je / jne
])
def test_other_bytes_are_kept(a, b):
    assert stencil_key(_insn(a)) != stencil_key(_insn(b))


@pytest.fixture
def stitched(monkeypatch):
    monkeypatch.setattr(N, "STENCILS", True)


# Every third integer case of test_isa_integer (each family has several), two
# inputs each, stitched; every case of the families runs compiled there.
@pytest.mark.parametrize("c", CASES[::3], ids=[c.id for c in CASES[::3]])
def test_integer_case_stitched(stitched, c: Case) -> None:
    check_case(c, 2)


PLAIN = ["hello", "jumps", "strings", "sighandlers", "atomics", "jit", "segv", "divzero"]


@pytest.mark.parametrize("name", PLAIN)
def test_sample_stitched(samples_dir, bttool_cache, tmp_path, monkeypatch, name):
    """Whole programs (loops, signal handlers, faults, code written at run
    time) run stitched as natively."""
    monkeypatch.setenv("BTTOOL_TIER1", "stencils")
    lines = 1 if name in ("segv", "divzero") else 0
    programs.compare_run([str(samples_dir / name)], bttool_cache, cwd=tmp_path, bttool_lines=lines)


def _stencil_bytes(cache: Path) -> int:
    return sum(f.stat().st_size for f in (cache / "stencils").glob("*.bin"))


def test_stencils_are_kept_for_later_runs(samples_dir, bttool_cache, tmp_path, monkeypatch):
    """A run with a new translation cache but the stencils of earlier runs
    (and the host's description and support object, which any cache keeps)
    stitches its regions from them: it compiles no stencil (the stencil
    file does not grow, and LLVM is never loaded) and still translates
    every region itself."""
    monkeypatch.setenv("BTTOOL_TIER1", "stencils")
    argv = [str(samples_dir / "hello")]
    native = programs.run_native(argv, cwd=tmp_path)
    programs.assert_same(native, programs.run_bttool(argv, bttool_cache, cwd=tmp_path))
    fresh = tmp_path / "fresh"
    for kept in ("stencils", "support"):
        shutil.copytree(Path(bttool_cache) / kept, fresh / kept)
    shutil.copy(Path(bttool_cache) / "host-target.json", fresh)
    size = _stencil_bytes(fresh)
    stats = tmp_path / "stats.json"
    run = programs.run_bttool(argv, fresh, cwd=tmp_path, options=["--stats-json", str(stats)])
    programs.assert_same(native, run)
    report = json.loads(stats.read_text())
    assert report["regions_translated"] > 0
    assert report["llvm_loaded"] is False
    assert _stencil_bytes(fresh) == size


def test_stencil_file_keeps_intact_records(tmp_path):
    """Records are read back in order; one cut short (a crash while
    appending) is dropped, never misread, and cut off, so what is appended
    next is read again."""
    f = StencilFile(str(tmp_path), "kind")
    f.append([(b"a", (b"code", [], b"", [], None, ["next"], ["next"], False))])
    f.append([(b"b", None), ((0x1000, b"\x90"), (b"x", [], b"", [], (0, 0), [], [], True))])
    assert [k for k, _ in f.load()] == [b"a", b"b", (0x1000, b"\x90")]
    whole = Path(f.path).read_bytes()
    Path(f.path).write_bytes(whole[:-3])
    assert [k for k, _ in f.load()] == [b"a"]
    Path(f.path).write_bytes(whole[:-3] + b"more garbage")
    assert [k for k, _ in f.load()] == [b"a"]
    f.append([(b"c", None)])
    assert [k for k, _ in f.load()] == [b"a", b"c"]
    assert StencilFile(str(tmp_path), "other kind").load() == []

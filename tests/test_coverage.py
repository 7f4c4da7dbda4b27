"""``bttool coverage``: the instructions of a program that bttool cannot
translate (translator/coverage.py), through the installed script.

A hand-written program holds one of each case: instructions bttool
translates, an AVX2 instruction twice (a feature x86-64-v2 lacks: SIGILL
as on such a CPU, apart from bttool's own gaps; it translates on
x86-64-v3, the default), a 16-bit ``fnstenv``
(a semantic that refuses the operand form), a LOCK prefix the CPU rejects
(no gap: the decoder finds no instruction there and bttool raises #UD as
the CPU does; the sweep counts the byte as undecodable and goes on) and a
byte that is no instruction in 64-bit mode.  Addresses come from the symbol table (nm), counts from the source.
Then the gaps the report names are checked against what running them does:
the program dies with SIGILL at the reported address under bttool.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import programs  # noqa: E402
from programs import bttool_cache  # noqa: E402,F401  (fixture)

GAPS_S = r"""
    .globl _start
    .text
_start:
    mov $1, %eax
    add %ebx, %eax
    imul $7, %eax, %ecx
avx:
    vpaddd %ymm1, %ymm2, %ymm3
    vpaddd %ymm4, %ymm5, %ymm6
fnstenv16:
    .byte 0x66, 0xd9, 0x34, 0x24        # data16 fnstenv (%rsp)
badlock:
    .byte 0xf0, 0x01, 0xd8              # lock add %ebx, %eax: #UD on the CPU
    mov $60, %eax
    xor %edi, %edi
    syscall
salc:
    .byte 0xd6                          # salc: no instruction in 64-bit mode
"""

CLEAN_S = r"""
    .globl _start
    .text
_start:
    mov $60, %eax
    mov $3, %edi
    syscall
"""


def _build(d: Path, name: str, src: str) -> Path:
    (d / f"{name}.s").write_text(src)
    subprocess.run(["gcc", "-nostdlib", "-static", "-o", str(d / name), str(d / f"{name}.s")],
                   check=True, capture_output=True)
    return d / name


def _symbols(path: Path) -> dict[str, int]:
    out = subprocess.run(["nm", str(path)], check=True, capture_output=True, text=True).stdout
    return {f[2]: int(f[0], 16) for f in (line.split() for line in out.splitlines()) if len(f) == 3}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("coverage")
    return {"gaps": _build(d, "gaps", GAPS_S), "clean": _build(d, "clean", CLEAN_S)}


def _coverage(*args) -> subprocess.CompletedProcess:
    return subprocess.run(programs.bttool_argv("coverage", *args), capture_output=True, timeout=300)


def test_report_names_each_gap_with_its_count_and_address(built):
    path = built["gaps"]
    sym = _symbols(path)
    r = _coverage("--json", "--cpu", "x86-64-v2", path)
    assert r.returncode == 1, r
    [report] = json.loads(r.stdout)
    gaps = {g["mnemonic"]: g for g in report["gaps"]}
    assert set(gaps) == {"vpaddd", "fnstenv"}, gaps
    assert (gaps["vpaddd"]["count"], gaps["vpaddd"]["reason"], gaps["vpaddd"]["example"],
            gaps["vpaddd"]["outside_model"]) == (2, "not in x86-64-v2 (avx2)", sym["avx"], True)
    assert "ymm" in gaps["vpaddd"]["text"]
    assert (gaps["fnstenv"]["count"], gaps["fnstenv"]["reason"], gaps["fnstenv"]["example"]) \
        == (1, "operand form", sym["fnstenv16"])
    # mov add imul vpaddd*2 fnstenv (lock) add mov xor syscall; the lock and salc bytes
    assert report["instructions"] == 10 and report["undecodable_bytes"] == 2
    assert report["untranslatable"] == 1 and report["outside_model"] == 2


def test_the_cpu_model_decides_what_is_outside_it(built):
    """On x86-64-v3 (the default) the AVX2 instruction translates: only
    bttool's gap is left."""
    r = _coverage("--json", built["gaps"])
    assert r.returncode == 1, r
    [report] = json.loads(r.stdout)
    assert [g["mnemonic"] for g in report["gaps"]] == ["fnstenv"]
    assert report["untranslatable"] == 1 and report["outside_model"] == 0


def test_text_report_and_status(built):
    r = _coverage("--cpu", "x86-64-v2", built["clean"], built["gaps"])
    out = r.stdout.decode()
    assert r.returncode == 1, r
    assert f"{built['clean']}: 3 instructions, 0 untranslatable" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("2 ") and "vpaddd" in ln)
    assert "not in x86-64-v2 (avx2)" in line and "vpaddd ymm3, ymm2, ymm1" in line
    clean = _coverage(built["clean"])
    assert clean.returncode == 0 and b"0 untranslatable" in clean.stdout


def test_a_reported_gap_is_what_running_it_meets(built, bttool_cache, tmp_path):
    """The first gap in execution order is where the run stops: SIGILL at
    the reported address, as on a CPU without the instruction."""
    path = built["gaps"]
    res = programs.run_bttool([str(path)], bttool_cache, cwd=tmp_path,
                              options=["--cpu", "x86-64-v2"])
    assert res.returncode == -4, res          # SIGILL
    assert f"{_symbols(path)['avx']:#x}".encode() in res.stderr, res.stderr


@pytest.mark.parametrize("arg,status", [("/nonexistent/prog", 127), (__file__, 126)])
def test_bad_input_is_one_line(arg, status):
    r = _coverage(arg)
    assert r.returncode == status and len(r.stderr.splitlines()) == 1, r
    assert r.stderr.startswith(b"bttool: error: ")

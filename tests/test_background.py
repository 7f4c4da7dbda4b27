"""Background compilation of tier-2 regions (runtime/background.py and the
compile server, runtime/compileserver.py): the server's objects are the ones this
process would make, every job completes whatever happens to the server, and
a real run compiles its hot code there, still caching both tiers."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import native as N  # noqa: E402
from bttool.ir import codegen  # noqa: E402
from bttool.runtime.background import BackgroundCompiler  # noqa: E402
from bttool.runtime.window import user_options  # noqa: E402
from bttool.translator.translate import Lifted, lift  # noqa: E402
import programs  # noqa: E402

_SNIPPETS = [
    "mov eax, 1; 1: add eax, ecx; dec ecx; jnz 1b; ret",
    "xor eax, eax; 1: imul rax, rdx; add rax, 7; cmp rax, rdi; jb 1b; ret",
    "mov rax, [rdi]; add rax, [rdi + 8]; mov [rsi], rax; ret",
]


def _lifted(text: str) -> Lifted:
    code, = N.assemble([text])
    base = 0x1000
    read = lambda a, n: code[a - base:a - base + n] if 0 <= a - base < len(code) else b""  # noqa: E731
    return lift([base], read, user_options().tier2(), codegen.host_target(2))


def test_server_objects_are_byte_identical_to_local_ones():
    bc = BackgroundCompiler()
    got = {}
    for i, text in enumerate(_SNIPPETS):
        bc.submit(_lifted(text), lambda t, i=i: got.__setitem__(i, t))
    assert bc.pending == len(_SNIPPETS)     # nothing was compiled here
    bc.drain()
    assert bc.pending == 0
    for i, text in enumerate(_SNIPPETS):
        assert got[i].object_code == _lifted(text).compile().object_code
        assert got[i].regions[0].entry == 0x1000
        assert got[i].seconds > 0


def test_jobs_complete_when_the_server_goes_away():
    bc = BackgroundCompiler()
    got = []
    bc.submit(_lifted(_SNIPPETS[0]), got.append)
    bc.submit(_lifted(_SNIPPETS[1]), got.append)
    bc._sock.shutdown(socket.SHUT_RDWR)      # as if the server had died
    bc.drain()
    assert [t.object_code for t in got] == [_lifted(s).compile().object_code for s in _SNIPPETS[:2]]
    bc.submit(_lifted(_SNIPPETS[2]), got.append)   # from now on compiled at once, here
    assert bc.pending == 0 and len(got) == 3


def test_a_server_error_is_raised_here():
    """The server reports an error; compiling here raises it, as a local
    compilation would have."""
    bad = _lifted(_SNIPPETS[0])
    bad.module = "define void @f() { ret i32 0 }"       # invalid IR
    bc = BackgroundCompiler()
    bc.submit(bad, lambda t: None)
    with pytest.raises(RuntimeError):
        bc.drain()


def test_switched_off_compiles_at_once(monkeypatch):
    monkeypatch.setenv("BTTOOL_BACKGROUND_COMPILE", "0")
    bc = BackgroundCompiler()
    got = []
    bc.submit(_lifted(_SNIPPETS[0]), got.append)
    assert bc.pending == 0 and len(got) == 1 and bc._sock is None


def _bttool(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(programs.bttool_argv(*args), capture_output=True,
                          cwd=programs.work_dir(), env={**programs.guest_env(), **(env or {})})


def test_a_cold_run_compiles_hot_code_in_the_server_and_caches_both_tiers(tmp_path, samples_dir):
    """Both tiers reach the cache.  The next run is warm, though not always
    entirely: it installs each tier-2 region as soon as its code gets hot,
    where the cold run ran tier-1 code until the compilation arrived, so
    its path can leave a tier-2 region at a few places that the cold run
    never reached as region entries."""
    exe = str(samples_dir / "sortheavy")
    native = subprocess.run([exe], capture_output=True)
    stats = tmp_path / "stats.json"
    cold = _bttool("run", "-v", "--cache-dir", str(tmp_path / "c"), "--stats-json", str(stats), exe)
    assert (cold.returncode, cold.stdout) == (native.returncode, native.stdout)
    log = cold.stderr.decode()
    assert "compile server started" in log
    assert log.count("(O2)") >= 5 and "compiling here" not in log
    cold_regions = json.loads(stats.read_text())["regions_translated"]
    warm = _bttool("run", "--cache-dir", str(tmp_path / "c"), "--stats-json", str(stats), exe)
    assert (warm.returncode, warm.stdout) == (native.returncode, native.stdout)
    s = json.loads(stats.read_text())
    assert s["regions_from_cache"] > 50
    assert s["regions_translated"] <= cold_regions // 20, (s, cold_regions)


def test_a_server_that_cannot_start_means_compiling_here(monkeypatch):
    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")
    monkeypatch.setattr(os, "fork", no_fork)
    logged = []
    bc = BackgroundCompiler(logged.append)
    got = []
    bc.submit(_lifted(_SNIPPETS[0]), got.append)
    assert bc.pending == 0 and len(got) == 1
    assert got[0].object_code == _lifted(_SNIPPETS[0]).compile().object_code
    assert any("cannot start the compile server" in m for m in logged)


@pytest.fixture(scope="module")
def samples_dir() -> Path:
    import programs
    return programs.build_samples()

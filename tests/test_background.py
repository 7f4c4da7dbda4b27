"""Background compilation of tier-2 regions (runtime/background.py and the
compile server, runtime/compileserver.py): the server's objects are the ones this
process would make, every job completes whatever happens to the server, and
a real run compiles its hot code there, still caching both tiers."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


def _servers() -> set[int]:
    """The compile servers serving this process (a dead one, a zombie, has
    no command line)."""
    return {pid for pid, args in programs.processes() if programs.compile_server_of(args, os.getpid())}


def _started_since(before: set[int], seconds: float = 30) -> set[int]:
    """The compile servers that appeared since ``before`` was taken, waiting
    for one up to ``seconds`` (it is forked, then runs Python)."""
    deadline = time.monotonic() + seconds
    while not (new := _servers() - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    return new


def _wait_dead(pid: int, seconds: float = 30) -> None:
    """Until process ``pid`` has ended (a zombie, or reaped): its
    descriptors are closed then."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.01)
    pytest.fail(f"compile server {pid} still running {seconds} s after SIGKILL")


def test_jobs_complete_when_the_server_goes_away():
    before = _servers()
    bc = BackgroundCompiler()
    got = []
    bc.submit(_lifted(_SNIPPETS[0]), got.append)
    bc.submit(_lifted(_SNIPPETS[1]), got.append)
    server, = _started_since(before)
    os.kill(server, signal.SIGKILL)
    _wait_dead(server)
    bc.drain()
    assert [t.object_code for t in got] == [_lifted(s).compile().object_code for s in _SNIPPETS[:2]]
    bc.submit(_lifted(_SNIPPETS[2]), got.append)   # from now on compiled at once, here
    assert bc.pending == 0 and len(got) == 3
    assert not _started_since(before, seconds=1)    # and no other server was started


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
    before = _servers()
    bc = BackgroundCompiler()
    got = []
    bc.submit(_lifted(_SNIPPETS[0]), got.append)
    assert bc.pending == 0 and len(got) == 1
    assert got[0].object_code == _lifted(_SNIPPETS[0]).compile().object_code
    assert not _started_since(before, seconds=1)      # no server (one would be up by now)


def _bttool(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(programs.bttool_argv(*args), capture_output=True,
                          cwd=programs.work_dir(), env={**programs.guest_env(), **(env or {})})


def _cached_regions(cache: Path) -> list[dict]:
    """`bttool cache ls --json`: every region in the cache, with its target
    (which holds ``|O2|`` for tier 2), entry and hits."""
    r = _bttool("cache", "--cache-dir", str(cache), "ls", "--json")
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def _tier2(row: dict) -> bool:
    return "|O2|" in row["target"]


def test_a_cold_run_compiles_hot_code_in_the_server_and_caches_both_tiers(tmp_path, samples_dir):
    """Both tiers reach the cache, and the next run takes its hot code at
    tier 2 from there.  That run is warm, though not always entirely: it
    installs each tier-2 region as soon as its code gets hot, where the
    cold run ran tier-1 code until the compilation arrived, so its path
    can leave a tier-2 region at a few places that the cold run never
    reached as region entries."""
    exe = str(samples_dir / "sortheavy")
    native = subprocess.run([exe], capture_output=True)
    stats = tmp_path / "stats.json"
    cache = tmp_path / "c"
    cold = _bttool("run", "--cache-dir", str(cache), "--stats-json", str(stats), exe)
    assert (cold.returncode, cold.stdout) == (native.returncode, native.stdout)
    c = json.loads(stats.read_text())
    # the server compiled the hot code, and nothing had to be compiled here
    assert c["background_compiles"] >= 5 and c["background_fallbacks"] == 0, c
    cold_regions = c["regions_translated"]
    made = _cached_regions(cache)
    hot = {(r["image"], r["entry"]) for r in made if _tier2(r)}
    assert len(hot) >= 5 and len(made) - len(hot) > 50, (len(hot), len(made))
    hits = {r["key"]: r["hits"] for r in made}
    warm = _bttool("run", "--cache-dir", str(cache), "--stats-json", str(stats), exe)
    assert (warm.returncode, warm.stdout) == (native.returncode, native.stdout)
    s = json.loads(stats.read_text())
    assert s["regions_from_cache"] > 50
    assert s["regions_translated"] <= cold_regions // 20, (s, cold_regions)
    # the warm run took each hot entry's tier-2 code from the cache
    used = {(r["image"], r["entry"]) for r in _cached_regions(cache)
            if _tier2(r) and r["hits"] > hits.get(r["key"], 0)}
    assert hot <= used, sorted(hex(entry) for _, entry in hot - used)


def test_a_server_that_cannot_start_means_compiling_here(monkeypatch):
    forks = []

    def no_fork():
        forks.append(1)
        raise BlockingIOError(11, "Resource temporarily unavailable")
    monkeypatch.setattr(os, "fork", no_fork)
    bc = BackgroundCompiler()
    got = []
    bc.submit(_lifted(_SNIPPETS[0]), got.append)
    assert bc.pending == 0 and len(got) == 1
    assert got[0].object_code == _lifted(_SNIPPETS[0]).compile().object_code
    # from now on compiled here, without trying to start a server again
    bc.submit(_lifted(_SNIPPETS[1]), got.append)
    assert bc.pending == 0 and len(got) == 2 and len(forks) == 1


@pytest.fixture(scope="module")
def samples_dir() -> Path:
    import programs
    return programs.build_samples()


FORK_WHILE_COMPILING = r"""
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
__attribute__((noinline)) static unsigned long spin(unsigned long n)
{
    unsigned long x = 1;
    for (unsigned long i = 0; i < n; i++)
        x = x * 6364136223846793005ul + i;
    return x;
}
int main(void)
{
    unsigned long a = spin(20000);      /* hot: its tier-2 job is sent ... */
    printf("before %lx\n", a);          /* (so the call cannot move past the fork) */
    fflush(stdout);
    pid_t pid = fork();                 /* ... and still under way here */
    if (pid == 0) {
        printf("child %lx\n", spin(50000000));
        return 0;
    }
    int status;
    waitpid(pid, &status, 0);
    printf("parent %lx %d\n", a, status);
    return 0;
}
"""


def test_a_fork_right_after_hot_code_runs_as_natively(tmp_path):
    """A fork no longer waits for the tier-2 compilations under way (the
    parent installs them as they arrive; runtime/linux.py before_fork):
    a program that forks right after its code got hot, and whose child
    runs that code hot again, behaves as natively.  (Whether a job is
    still under way at the fork depends on the compile server's speed;
    the next test pins what the child does with one.)"""
    src, exe = tmp_path / "forkhot.c", tmp_path / "forkhot"
    src.write_text(FORK_WHILE_COMPILING)
    subprocess.run(["gcc", "-O1", "-static", "-o", str(exe), str(src)], check=True)
    native = subprocess.run([str(exe)], capture_output=True)
    r = _bttool("run", "--cache-dir", str(tmp_path / "c"), str(exe))
    assert (r.returncode, r.stdout, r.stderr) == (native.returncode, native.stdout, b"")


def test_a_forked_child_forgets_the_parents_compilations():
    """In a forked child the compilations under way are the parent's:
    their entries leave ``promoted`` (so the child promotes that code
    itself when it gets hot there) and nothing stays marked as compiling
    or stale; other promoted entries stay."""
    from types import SimpleNamespace

    from bttool.runtime.dispatcher import Executor
    ex = SimpleNamespace(compiling={7: (0x1000, [(0x1000, 0x1010)]), 8: (0x3000, [(0x3000, 0x3004)])},
                         promoted={0x1000, 0x2000, 0x3000}, stale={8})
    Executor.forget_compiling(ex)
    assert (ex.compiling, ex.stale, ex.promoted) == ({}, set(), {0x2000})

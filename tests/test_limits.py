"""Resource limits give Linux's answers (issue 24): samples/limits.c run
natively and under bttool with the same limit (set in the child before it
starts), output and exit status compared byte for byte.

RLIMIT_NPROC binds no root process, so the fork storm runs with real uid
nobody and without CAP_SYS_RESOURCE/CAP_SYS_ADMIN (effective uid 0 stays,
so both runs can read the venv and the samples)."""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import programs  # noqa: E402
from programs import samples_dir  # noqa: E402,F401  (fixture)

TIMEOUT = 120
GiB = 1 << 30


def _limited(limits: dict[int, tuple[int, int]], nobody: bool = False):
    """A preexec_fn: its own process group (killed whole at the end), no
    core files, ``limits``; ``nobody``: real uid 65534 without the
    capabilities that lift RLIMIT_NPROC (execve recomputes them from the
    bounding set)."""
    def setup() -> None:
        os.setpgid(0, 0)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if nobody:
            libc = ctypes.CDLL(None, use_errno=True)
            for cap in (21, 24):                    # CAP_SYS_ADMIN, CAP_SYS_RESOURCE
                libc.prctl(24, cap, 0, 0, 0)        # PR_CAPBSET_DROP
            os.setresuid(65534, 0, 0)
        for which, value in limits.items():
            resource.setrlimit(which, value)
    return setup


def _run(argv: list[str], limits: dict[int, tuple[int, int]], cwd: Path,
         nobody: bool = False) -> programs.Result:
    """Run ``argv`` under ``limits``; whatever it leaves behind in its
    process group is killed."""
    proc = subprocess.Popen([os.fspath(a) for a in argv], cwd=cwd, env=programs.guest_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_limited(limits, nobody))
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        out, err = b"", b"timed out"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
    return programs.Result(proc.returncode, out, err, tuple(map(str, argv)))


def _make_cache(where: Path, samples_dir: Path) -> Path:
    """A cache directory that has an index already (the runs compare a
    warm cache's descriptors; test_new_cache_keeps_low_descriptors_free
    checks a new one)."""
    cache = where / "cache"
    os.mkdir(cache, 0o777)
    os.chmod(cache, 0o777)
    r = _run(programs.bttool_command([samples_dir / "limits", "rlimits"], cache), {}, where)
    assert r.returncode == 0, r.stderr
    for f in cache.iterdir():
        os.chmod(f, 0o777 if f.is_dir() else 0o666)
    return cache


_shared: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def _shared_dir(samples_dir):
    """One warm cache for the module's runs, in a directory that real uid
    nobody can reach (bttool checks the cache's access with the real uid;
    tmp_path is root's alone)."""
    with tempfile.TemporaryDirectory(prefix="bttool-limits-") as where:
        os.chmod(where, 0o777)
        _make_cache(Path(where), samples_dir)
        _shared.append(Path(where))
        yield
        _shared.clear()


def _compare(samples_dir: Path, tmp_path: Path, args: list[str], limits: dict[int, tuple[int, int]],
             nobody: bool = False, bttool_lines: int = 0) -> tuple[programs.Result, programs.Result]:
    argv = [str(samples_dir / "limits")] + args
    where = _shared[0]
    native = _run(argv, limits, where, nobody)
    translated = _run(programs.bttool_command(argv, where / "cache"), limits, where, nobody)
    programs.assert_same(native, translated, bttool_lines=bttool_lines, what=" ".join(args))
    return native, translated


def test_fork_storm_gets_eagain(samples_dir, tmp_path):
    """ulimit -u 50: fork fails with EAGAIN, the program reaps its children
    and forks again (was: internal error: BlockingIOError)."""
    native, _ = _compare(samples_dir, tmp_path, ["fork", "300"],
                         {resource.RLIMIT_NPROC: (50, 50)}, nobody=True)
    assert b"fork: EAGAIN" in native.stdout, native.stdout


NOFILE_ROOM = (32, 4096)        # ulimit -Sn 32: bttool keeps its own above 32


@pytest.mark.parametrize("action", ["", "fork", "exec", "kill", "abort"])
def test_files_until_emfile(samples_dir, tmp_path, action):
    """open until EMFILE gets exactly the native count and numbers, and
    what the program does next with every descriptor taken (fork, exec,
    a fatal signal) works as natively: bttool needs no new descriptor."""
    _compare(samples_dir, tmp_path, ["files"] + ([action] if action else []),
             {resource.RLIMIT_NOFILE: NOFILE_ROOM})


def test_files_until_emfile_then_fault(samples_dir, tmp_path):
    """A fault with every descriptor taken: the decoder bttool imports on
    the way to the signal loads (one bttool: line names the fault)."""
    _compare(samples_dir, tmp_path, ["files", "segv"], {resource.RLIMIT_NOFILE: NOFILE_ROOM},
             bttool_lines=1)


def test_guest_sees_its_own_nofile_limit(samples_dir, tmp_path):
    _compare(samples_dir, tmp_path, ["rlimits"], {resource.RLIMIT_NOFILE: (40, 4096)})


# every action at a small and a larger limit with the warm cache; the cold
# start (an empty cache) for the two where bttool itself needs most room
_SOFT_HARD_CASES = [(a, n, "warm") for n in (16, 256)
                    for a in ("", "fork", "exec", "kill", "abort", "segv")] + \
                   [(a, 32, "empty") for a in ("", "exec")]


@pytest.mark.parametrize("action,limit,cache", _SOFT_HARD_CASES)
def test_files_with_soft_equal_to_hard(samples_dir, tmp_path, action, limit, cache):
    """ulimit -n N (soft = hard): bttool cannot keep its descriptors above
    the guest's, so they take the top numbers and are given back when the
    guest finds no other (runtime/hostfds.py, give_back): the guest gets
    every number, each the lowest free one, and EMFILE where Linux gives it;
    what it does next with every descriptor taken works as natively (exec:
    the new bttool starts, and the guest's descriptors stay where they
    were), with a warm cache and with an empty one."""
    where = _shared[0] if cache == "warm" else tmp_path
    if cache == "empty":
        os.chmod(tmp_path, 0o777)
    argv = [str(samples_dir / "limits"), "files"] + ([action] if action else [])
    limits = {resource.RLIMIT_NOFILE: (limit, limit)}
    native = _run(argv, limits, where)
    translated = _run(programs.bttool_command(argv, where / "cache"), limits, where)
    programs.assert_same(native, translated, bttool_lines=1 if action == "segv" else 0,
                         what=f"files {action} under ulimit -n {limit}")
    assert b"each the lowest free number: yes" in native.stdout


@pytest.mark.parametrize("stack_mib,depth", [(16, 12), (8, 12), (64, 40)])
def test_stack_follows_rlimit_stack(samples_dir, tmp_path, stack_mib, depth):
    """12 MiB deep returns under ulimit -s 16m and dies of SIGSEGV under
    8m, as natively (one bttool: line for the fault)."""
    native, _ = _compare(samples_dir, tmp_path, ["recurse", str(depth)],
                         {resource.RLIMIT_STACK: (stack_mib << 20, resource.RLIM_INFINITY)},
                         bttool_lines=1 if depth >= stack_mib else 0)
    assert native.returncode == (-signal.SIGSEGV if depth >= stack_mib else 0)


def test_address_space_limit_is_one_clear_line(samples_dir, tmp_path):
    """ulimit -v 4g leaves no room for the guest window: one bttool: error
    line naming RLIMIT_AS and what to raise it to, status 125."""
    argv = programs.bttool_command([samples_dir / "limits", "mmap", "1"], tmp_path / "cache")
    r = _run(argv, {resource.RLIMIT_AS: (4 * GiB, 4 * GiB)}, tmp_path)
    assert r.returncode == 125, r
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(b"bttool: error: "), r.stderr
    assert b"RLIMIT_AS" in lines[0] and b"ulimit -v" in lines[0]
    need = int(lines[0].split(b"ulimit -v ")[1].split(b")")[0])
    ok = _run(argv, {resource.RLIMIT_AS: (need << 10, need << 10)}, tmp_path)
    assert ok.returncode == 0 and ok.stdout == b"mmap 1 MiB: ok\n", ok


def test_enomem_for_large_mmaps_and_brk(samples_dir, tmp_path):
    """mmap and brk beyond what the host commits (and beyond the address
    space) are ENOMEM, the break unchanged, as natively."""
    _compare(samples_dir, tmp_path, ["mmap", "1", "1024", str(1 << 16), str(1 << 22)], {})
    _compare(samples_dir, tmp_path, ["brk", "1", "1024", str(1 << 16), "100000000"], {})


def test_new_cache_keeps_low_descriptors_free(samples_dir, tmp_path):
    argv = [str(samples_dir / "limits"), "files"]
    limits = {resource.RLIMIT_NOFILE: NOFILE_ROOM}
    native = _run(argv, limits, tmp_path)
    translated = _run(programs.bttool_command(argv, tmp_path / "new-cache"), limits, tmp_path)
    programs.assert_same(native, translated)


# The guest's own RLIMIT_AS and RLIMIT_DATA (runtime/guestlimits.py): set by
# the program itself, they hold its mmap and brk where Linux would, and never
# bttool (whose window alone is larger than any of these limits); a forked
# child keeps them, and so does the program an execve starts.
_AS_DATA_CASES = [
    ["as", "64", "mmap", "16", "32", "32", "8"],
    ["data", "32", "brk", "8", "16", "16"],
    ["data", "32", "mmap", "8", "16", "16", "4"],
    ["as", "64", "child", "mmap", "16", "32", "32"],
    ["as", "64", "exec", "mmap", "16", "64"],
    ["as", "64", "data", "48", "exec", "rlimits"],
]


@pytest.mark.parametrize("args", _AS_DATA_CASES, ids=lambda a: "-".join(a))
def test_guest_address_space_and_data_limits(samples_dir, tmp_path, args):
    native, _ = _compare(samples_dir, tmp_path, args, {})
    assert b"ENOMEM" in native.stdout or b"as: 67108864" in native.stdout, native.stdout


def test_scm_rights_past_the_nofile_limit_are_truncated(samples_dir, tmp_path):
    """Four descriptors sent with two numbers left below the guest's
    RLIMIT_NOFILE (bttool's own limit is higher): two are received, the
    others dropped, MSG_CTRUNC set, as natively."""
    native, _ = _compare(samples_dir, tmp_path, ["scm"], {resource.RLIMIT_NOFILE: NOFILE_ROOM})
    assert b"truncated: yes" in native.stdout and b"2 descriptors" in native.stdout, native.stdout


def test_stack_in_proc_maps_is_what_was_used(samples_dir, tmp_path):
    """/proc/self/maps shows the stack as far as it has grown (about 132 KiB
    at start, 2 MiB more after recursing that deep), not the whole
    RLIMIT_STACK that bttool maps at start."""
    native, _ = _compare(samples_dir, tmp_path, ["stack"],
                         {resource.RLIMIT_STACK: (64 << 20, resource.RLIM_INFINITY)})
    assert native.stdout == b"stack at start: at most 1 MiB\nstack after 2 MiB deep: 2 to 4 MiB\n", \
        native.stdout

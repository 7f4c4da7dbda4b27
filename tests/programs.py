"""Shared helpers for the program-level tests (test_samples, test_busybox,
test_bad_input): build the samples, run a program natively and under
``bttool run``, and compare the two runs byte for byte.

The native run is the oracle.  Both runs get the same argv, environment, cwd
layout and stdin; only the launcher differs.  Nothing here knows what bttool
prints, except the documented contract: guest faults add lines starting with
``bttool:`` to stderr, and bttool's own errors are single ``bttool: error:``
lines.

Environment knobs:

* ``BTTOOL_TEST_TIMEOUT``   seconds per program run (default 300)
* ``BTTOOL_SAMPLES_BUILD``  where samples/build.sh puts binaries
                            (default samples/build)
* ``BTTOOL_TEST_CACHE_DIR`` reuse this translation cache instead of a fresh
                            per-session one (faster local iterations)
"""

from __future__ import annotations

import difflib
import os
import resource
import shlex
import signal
import struct
import subprocess
from pathlib import Path
from typing import IO, Iterable, Mapping, Sequence, Union

import pytest

import installed

REPO = Path(__file__).resolve().parent.parent
SAMPLES_SRC = REPO / "samples"
BUILD_SCRIPT = SAMPLES_SRC / "build.sh"
TIMEOUT = float(os.environ.get("BTTOOL_TEST_TIMEOUT", "300"))

# what bttool adds to stderr on a guest fault (see assert_same)
BTTOOL_PREFIX = b"bttool:"

# stdin for a run: None (/dev/null), bytes (through a pipe), a path (opened
# afresh for each run, so both runs read it from the start), or an open file
Stdin = Union[None, bytes, os.PathLike, IO[bytes], int]


class Result(tuple):
    """Outcome of one run: a (returncode, stdout, stderr) tuple that also
    remembers the command line in ``argv``."""

    def __new__(cls, returncode: int, stdout: bytes, stderr: bytes, argv: Sequence[str] = ()):
        self = super().__new__(cls, (returncode, stdout, stderr))
        self.argv = tuple(argv)
        return self

    returncode = property(lambda self: self[0])
    stdout = property(lambda self: self[1])
    stderr = property(lambda self: self[2])

    def __repr__(self) -> str:  # keep pytest's assertion output short
        return (
            f"Result({describe_status(self.returncode)}, stdout={len(self.stdout)} bytes, "
            f"stderr={self.stderr[:200]!r})"
        )


# --------------------------------------------------------------------------
# building the samples

_built: dict[Path, Path] = {}


def build_samples(outdir: os.PathLike | str | None = None) -> Path:
    """Run samples/build.sh (once per process and output directory) and
    return the directory holding the binaries."""
    if outdir is None:
        outdir = os.environ.get("BTTOOL_SAMPLES_BUILD") or SAMPLES_SRC / "build"
    out = Path(outdir).resolve()
    if out in _built:
        return out
    try:
        proc = subprocess.run(
            ["bash", str(BUILD_SCRIPT), str(out)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=600,
        )
    except FileNotFoundError as exc:  # no bash
        pytest.fail(f"cannot run {BUILD_SCRIPT}: {exc}", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(
            f"{BUILD_SCRIPT} failed with status {proc.returncode} (gcc and libc6-dev needed)\n"
            f"stdout:\n{proc.stdout.decode(errors='replace')}\n"
            f"stderr:\n{proc.stderr.decode(errors='replace')}",
            pytrace=False,
        )
    _built[out] = out
    return out


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """Directory with every sample binary, built with samples/build.sh."""
    return build_samples()


@pytest.fixture(scope="session")
def bttool_cache(tmp_path_factory) -> Path:
    """Translation cache shared by every bttool run of the session."""
    fixed = os.environ.get("BTTOOL_TEST_CACHE_DIR")
    if fixed:
        path = Path(fixed).resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("bttool-cache")


# --------------------------------------------------------------------------
# running programs


def guest_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for both the native and the translated run.

    It is the test process's environment with a fixed locale and time zone,
    and without BTTOOL_SAMPLE_* and PYTHON* variables: bttool runs as
    installed (tests/installed.py), so nothing may point it at the checkout.
    The same dict goes to both runs, so the guest sees the same environment
    either way."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BTTOOL_SAMPLE_", "PYTHON", "LC_"))}
    env.update(LC_ALL="C", LANG="C", TZ="UTC")
    if extra:
        env.update(extra)
    return env


_outside: list[Path] = []


def work_dir() -> Path:
    """Where programs run unless a test says otherwise: a directory outside
    the checkout, so nothing can be imported from it."""
    if not _outside:
        _outside.append(installed.outside_dir())
    return _outside[0]


def _child_setup() -> None:
    # no core files from the fault samples; own process group so that a
    # timeout can kill the whole tree
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.setpgid(0, 0)


def run_command(
    cmd: Sequence[str],
    *,
    cwd: os.PathLike | str | None = None,
    env: Mapping[str, str] | None = None,
    stdin: Stdin = None,
    timeout: float | None = None,
) -> Result:
    """Run any command line the way run_native/run_bttool do."""
    if env is None:
        env = guest_env()
    if cwd is None:
        cwd = work_dir()
    if timeout is None:
        timeout = TIMEOUT
    data = None
    if isinstance(stdin, (bytes, bytearray)):
        data, stdin = bytes(stdin), subprocess.PIPE
    elif stdin is None:
        stdin = subprocess.DEVNULL
    elif isinstance(stdin, os.PathLike):
        with open(stdin, "rb") as f:
            return run_command(cmd, cwd=cwd, env=env, stdin=f, timeout=timeout)
    cmd = [os.fspath(c) for c in cmd]
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=dict(env),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_child_setup,
    )
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        pytest.fail(
            f"timed out after {timeout:g}s: {_shell(cmd)}\n"
            f"stdout (last 2000 bytes): {out[-2000:]!r}\nstderr (last 2000 bytes): {err[-2000:]!r}",
            pytrace=False,
        )
    return Result(proc.returncode, out, err, tuple(cmd))


def run_native(
    argv: Sequence[str],
    *,
    cwd: os.PathLike | str | None = None,
    env: Mapping[str, str] | None = None,
    stdin: Stdin = None,
    timeout: float | None = None,
) -> Result:
    """Run ``argv`` directly.  ``stdin`` is bytes, a file, or None (/dev/null)."""
    return run_command(argv, cwd=cwd, env=env, stdin=stdin, timeout=timeout)


def installed_bttool() -> installed.Installed:
    """bttool as installed from its wheel into a fresh virtual environment."""
    try:
        return installed.installed()
    except installed.InstallError as e:
        pytest.fail(f"cannot install bttool from a wheel: {e}", pytrace=False)


def bttool_argv(*args: os.PathLike | str) -> list[str]:
    """Command line of the installed ``bttool`` console script with ARGS."""
    return [str(installed_bttool().bttool)] + [os.fspath(a) for a in args]


def bttool_command(
    argv: Sequence[str], cache_dir: os.PathLike | str | None, options: Iterable[str] = ()
) -> list[str]:
    cmd = bttool_argv("run")
    if cache_dir is not None:
        cmd += ["--cache-dir", os.fspath(cache_dir)]
    cmd += list(options)
    return cmd + [os.fspath(a) for a in argv]


def run_bttool(
    argv: Sequence[str],
    cache_dir: os.PathLike | str | None,
    *,
    options: Iterable[str] = (),
    cwd: os.PathLike | str | None = None,
    env: Mapping[str, str] | None = None,
    stdin: Stdin = None,
    timeout: float | None = None,
) -> Result:
    """Run ``python -m bttool run --cache-dir CACHE [options] argv...``.

    Guest arguments follow the program path directly (no ``--``), as in the
    CLI contract ``bttool run [OPTIONS] PROGRAM [ARGS]...``."""
    return run_command(
        bttool_command(argv, cache_dir, options), cwd=cwd, env=env, stdin=stdin, timeout=timeout
    )


# --------------------------------------------------------------------------
# comparing runs


def processes() -> list[tuple[int, list[str]]]:
    """(pid, argv) of every process with a command line (a zombie has
    none), read from /proc: how tests find the compile servers and workers
    a bttool started."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if args:
            out.append((int(entry), args))
    return out


def compile_server_of(args: list[str], pid: int) -> bool:
    """Whether command line ``args`` is a compile server serving ``pid``
    (runtime/compileserver.py names its client's pid last)."""
    return "bttool.runtime.compileserver" in args and args[-1] == str(pid)


def describe_status(rc: int) -> str:
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return f"killed by {name} ({rc})"
    return f"exit status {rc}"


def _shell(cmd: Sequence[str]) -> str:
    return " ".join(shlex.quote(str(c)) for c in cmd)


def _looks_binary(data: bytes) -> bool:
    if b"\0" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _hexline(data: bytes, start: int, mark: int) -> str:
    chunk = data[start : start + 16]
    cells = []
    for i, b in enumerate(chunk):
        cells.append(f"[{b:02x}]" if start + i == mark else f"{b:02x}")
    return f"  {start:08x}: " + " ".join(cells)


def diff_bytes(expected: bytes, actual: bytes, what: str, limit: int = 60) -> str:
    """Readable description of how ``actual`` differs from ``expected``."""
    head = f"--- {what}: native {len(expected)} bytes, bttool {len(actual)} bytes"
    if not (_looks_binary(expected) or _looks_binary(actual)):
        lines = list(
            difflib.unified_diff(
                expected.decode("utf-8").splitlines(keepends=True),
                actual.decode("utf-8").splitlines(keepends=True),
                fromfile=f"{what} (native)",
                tofile=f"{what} (bttool)",
                n=2,
            )
        )
        shown = [ln if ln.endswith("\n") else ln + "\\ no newline at end\n" for ln in lines[:limit]]
        more = f"  ... {len(lines) - limit} more diff lines\n" if len(lines) > limit else ""
        return head + "\n" + "".join(shown) + more
    n = min(len(expected), len(actual))
    first = next((i for i in range(n) if expected[i] != actual[i]), n)
    row = first - first % 16
    out = [head, f"  first difference at offset {first} (0x{first:x})", " native:"]
    for r in range(max(0, row - 16), row + 32, 16):
        if r < len(expected):
            out.append(_hexline(expected, r, first))
    out.append(" bttool:")
    for r in range(max(0, row - 16), row + 32, 16):
        if r < len(actual):
            out.append(_hexline(actual, r, first))
    return "\n".join(out) + "\n"


def split_bttool_lines(stderr: bytes) -> tuple[bytes, list[bytes]]:
    """Separate lines starting with ``bttool:`` from the rest of stderr."""
    kept, ours = [], []
    for line in stderr.splitlines(keepends=True):
        (ours if line.startswith(BTTOOL_PREFIX) else kept).append(line)
    return b"".join(kept), ours


def assert_same(
    native: Result,
    translated: Result,
    *,
    bttool_lines: int | Sequence[int] = 0,
    what: str = "",
) -> None:
    """Fail unless both runs have the same status, stdout and stderr.

    ``bttool_lines`` is how many ``bttool:`` lines bttool may add to stderr
    (an int, or a collection of allowed counts); they are removed before
    stderr is compared.  0 (the default) means stderr must match exactly."""
    allowed = {bttool_lines} if isinstance(bttool_lines, int) else set(bttool_lines)
    if allowed == {0}:
        err, ours = translated.stderr, []
    else:
        err, ours = split_bttool_lines(translated.stderr)
    problems = []
    if native.returncode != translated.returncode:
        problems.append(
            f"--- status: native {describe_status(native.returncode)}, "
            f"bttool {describe_status(translated.returncode)}\n"
        )
    if native.stdout != translated.stdout:
        problems.append(diff_bytes(native.stdout, translated.stdout, "stdout"))
    if native.stderr != err:
        problems.append(diff_bytes(native.stderr, err, "stderr"))
    if len(ours) not in allowed:
        problems.append(
            f"--- expected {' or '.join(map(str, sorted(allowed)))} line(s) starting with "
            f"'bttool:' on stderr, got {len(ours)}: {ours!r}\n"
        )
    if b"Traceback (most recent call last)" in translated.stderr and not (
        b"Traceback (most recent call last)" in native.stderr
    ):
        problems.append("--- bttool printed a Python traceback\n")
    if problems:
        title = f"{what}: " if what else ""
        pytest.fail(
            f"{title}native and bttool runs differ\n"
            f"native: {_shell(native.argv)}\nbttool: {_shell(translated.argv)}\n"
            + "".join(problems)
            + (
                f"--- full bttool stderr (last 3000 bytes):\n"
                f"{translated.stderr[-3000:].decode(errors='replace')}"
                if translated.stderr != native.stderr
                else ""
            ),
            pytrace=False,
        )


def compare_run(
    argv: Sequence[str],
    cache_dir: os.PathLike | str,
    *,
    cwd: os.PathLike | str | None = None,
    bttool_cwd: os.PathLike | str | None = None,
    env: Mapping[str, str] | None = None,
    stdin: Stdin = None,
    options: Iterable[str] = (),
    bttool_lines: int | Sequence[int] = 0,
    timeout: float | None = None,
) -> tuple[Result, Result]:
    """Run natively and under bttool and assert_same().  ``bttool_cwd``
    defaults to ``cwd``; pass it when the program writes files, so that each
    side works in its own copy of the inputs."""
    native = run_native(argv, cwd=cwd, env=env, stdin=stdin, timeout=timeout)
    translated = run_bttool(
        argv,
        cache_dir,
        options=options,
        cwd=cwd if bttool_cwd is None else bttool_cwd,
        env=env,
        stdin=stdin,
        timeout=timeout,
    )
    assert_same(native, translated, bttool_lines=bttool_lines, what=_shell(argv))
    return native, translated


def snapshot_tree(root: os.PathLike | str) -> dict[str, tuple[str, bytes]]:
    """Relative path -> (kind, content) for everything under ``root``:
    file bytes, symlink targets, and directories (empty content)."""
    root = Path(root)
    snap: dict[str, tuple[str, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                snap[rel] = ("symlink", os.readlink(p).encode())
            elif p.is_dir():
                snap[rel] = ("dir", b"")
            else:
                snap[rel] = ("file", p.read_bytes())
    return snap


def assert_same_tree(native_root: os.PathLike | str, bttool_root: os.PathLike | str) -> None:
    """Fail unless both directory trees have the same names, kinds and contents."""
    a, b = snapshot_tree(native_root), snapshot_tree(bttool_root)
    problems = []
    for name in sorted(set(a) | set(b)):
        if name not in b:
            problems.append(f"only after the native run: {name}\n")
        elif name not in a:
            problems.append(f"only after the bttool run: {name}\n")
        elif a[name][0] != b[name][0]:
            problems.append(f"{name}: native {a[name][0]}, bttool {b[name][0]}\n")
        elif a[name][1] != b[name][1]:
            problems.append(diff_bytes(a[name][1], b[name][1], name, limit=30))
    if problems:
        pytest.fail("files left behind differ\n" + "".join(problems[:20]), pytrace=False)


# --------------------------------------------------------------------------
# ELF helpers


def elf_info(path: os.PathLike | str) -> dict:
    """Minimal ELF header/program header facts: class, machine, type,
    whether there is a PT_INTERP (dynamically linked)."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF":
        raise ValueError(f"{path}: not an ELF file")
    is64 = data[4] == 2
    endian = "<" if data[5] == 1 else ">"
    e_type, e_machine = struct.unpack_from(endian + "HH", data, 16)
    if is64:
        e_phoff = struct.unpack_from(endian + "Q", data, 32)[0]
        e_phentsize, e_phnum = struct.unpack_from(endian + "HH", data, 54)
    else:
        e_phoff = struct.unpack_from(endian + "I", data, 28)[0]
        e_phentsize, e_phnum = struct.unpack_from(endian + "HH", data, 42)
    interp = False
    for i in range(e_phnum):
        (p_type,) = struct.unpack_from(endian + "I", data, e_phoff + i * e_phentsize)
        interp |= p_type == 3  # PT_INTERP
    return {"class": 64 if is64 else 32, "machine": e_machine, "type": e_type, "interp": interp}


def is_static_x86_64(path: os.PathLike | str) -> bool:
    try:
        info = elf_info(path)
    except (OSError, ValueError, struct.error):
        return False
    return info["class"] == 64 and info["machine"] == 62 and not info["interp"]

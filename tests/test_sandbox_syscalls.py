"""Issue 21: system calls given what an attacker gives them (samples/sandbox/
sysattack.c), compared byte for byte with the native run: bad, read-only,
NULL, huge and wrapping pointers, pointer-taking fcntl commands and
pselect6's embedded sigset pointer, arch_prctl bases Linux refuses, and a
program that closes or overwrites every descriptor (bttool's own among
them: the cache keeps working).  And the system-call table itself
(runtime/syscall_table.py): every pointer has a size."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import programs  # noqa: E402
from programs import bttool_cache  # noqa: E402,F401  (fixture)

SANDBOX_SRC = _HERE.parent / "samples" / "sandbox"


@pytest.fixture(scope="session")
def sandbox_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sandbox-bin")
    proc = subprocess.run(["bash", str(_HERE.parent / "samples" / "build.sh"), str(out), str(SANDBOX_SRC)],
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return out


# Each case runs in the guest process itself (sysattack CASE), so that a
# crash of bttool shows as a different status and stderr.
CASES = ["crashes", "pointers", "fsbase", "close", "close_range", "dup2", "dup3", "procfd", "procvm", "procmem",
         "threadmem"]


@pytest.mark.parametrize("case", CASES)
def test_attack_answers_as_linux(sandbox_dir: Path, bttool_cache: Path, tmp_path: Path, case: str) -> None:
    native, translated = programs.compare_run([str(sandbox_dir / "sysattack"), case], bttool_cache,
                                              cwd=tmp_path)
    assert b"== " + case.encode() in native.stdout
    assert b"internal error" not in translated.stderr


def test_another_process_memory_is_out_of_reach(sandbox_dir: Path, bttool_cache: Path, tmp_path: Path) -> None:
    """A forked child is another bttool process: its /proc/PID/mem, by name,
    through its task directory, a symlink or a descriptor of /proc/PID, is
    EACCES (runtime/procview.py), where the host would have given the
    parent the child's host memory.  Natively the parent reads the child's
    variable (unless the host's own ptrace policy forbids it)."""
    argv = [str(sandbox_dir / "sysattack"), "othermem"]
    native = programs.run_native(argv, cwd=tmp_path)
    translated = programs.run_bttool(argv, bttool_cache, cwd=tmp_path)
    lines = translated.stdout.decode().splitlines()
    ways = ["child", "child rw", "child task", "child symlink", "child dirfd"]
    assert [ln for ln in lines if ln.startswith("child ") or ln.startswith("child:")] \
        == [f"{w}: open EACCES" for w in ways] + ["child: exit 0"], translated
    assert translated.returncode == native.returncode == 0 and not translated.stderr


def test_procfd_with_soft_equal_to_hard(sandbox_dir: Path, bttool_cache: Path, tmp_path: Path) -> None:
    """With soft = hard RLIMIT_NOFILE bttool's own descriptors sit among the
    guest's numbers (runtime/hostfds.py): /proc/self/fd read through the
    old getdents, and entries opened relative to a /proc/self/fd descriptor
    or working directory, still show the guest's descriptors alone."""
    import os
    import resource

    def limit() -> None:
        os.setpgid(0, 0)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    argv = [str(sandbox_dir / "sysattack"), "procfd"]
    runs = [subprocess.run(cmd, capture_output=True, cwd=tmp_path, env=programs.guest_env(),
                           preexec_fn=limit, timeout=300)
            for cmd in (argv, programs.bttool_command(argv, bttool_cache))]
    native, translated = [(r.returncode, r.stdout, r.stderr) for r in runs]
    assert b"getdents /proc/self/fd" in native[1]
    assert translated == native


def test_table_knows_every_pointer() -> None:
    from bttool.runtime import syscall_table as t
    from bttool.runtime.syscalls import HANDLERS, Syscalls
    for nr, (name, spec) in t.PASSTHROUGH.items():
        if spec is None:
            continue
        kinds = t.parse(spec)           # raises on an unknown kind
        assert "p" not in spec.split(), f"{name}: a pointer without a size"
        for kind, n, _ in kinds:
            if kind == "p" and n >= 0:
                assert n < len(kinds) and kinds[n][0] == "i", f"{name}: length argument {n}"
    for table in (t.FCNTL, t.IOCTL, t.FUTEX):
        for spec in table.values():
            t.parse(spec)
    # every call the table leaves to a handler has one, a method of Syscalls
    handled = {nr for nr, (_, spec) in t.PASSTHROUGH.items() if spec is None}
    assert handled <= set(HANDLERS), sorted(handled - set(HANDLERS))
    assert all(callable(getattr(Syscalls, name, None)) for name in HANDLERS.values())


# Calls left out of the sweep, with why: called with zeroed structures they
# would end or stall the sweep itself, natively as under bttool.
SWEEP_SKIP = {
    160: "setrlimit: a zeroed struct rlimit (read-only or writable class) sets RLIMIT_CPU to 0",
    302: "prlimit64: likewise",
    271: "ppoll: NULL fds and a NULL timeout wait forever",
}


def test_every_table_entry_answers_as_linux(sandbox_dir: Path, bttool_cache: Path, tmp_path: Path) -> None:
    """Every passed-through call of the system-call table with a pointer
    argument, with each pointer class (NULL, unmapped, read-only, writable,
    past user space, kernel, wrapping, the top edge) in all its pointer
    arguments at once (samples/sandbox/tablesweep.c): the same answers as
    Linux, line by line, with bttool alive."""
    from bttool.runtime import syscall_table as t
    lines = []
    for nr, (_, spec) in sorted(t.PASSTHROUGH.items()):
        if spec is None or nr in SWEEP_SKIP or not any(k[0] in "spl" for k in spec.split()):
            continue
        lines.append(f"{nr} {spec}\n")
    assert len(lines) > 80
    native, translated = programs.compare_run([str(sandbox_dir / "tablesweep")], bttool_cache,
                                              stdin="".join(lines).encode(), cwd=tmp_path)
    assert native.stdout.count(b"\n") == 8 * len(lines)
    assert b"internal error" not in translated.stderr

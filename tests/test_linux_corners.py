"""Linux corners of a 64-bit process, run natively and under ``bttool run``
and compared byte for byte (stdout, stderr, exit status or signal):

* ``int 0x80``: the i386 system-call ABI from 64-bit code
  (runtime/syscalls_i386.py), ``int 3``, ``int1`` (ICEBP) and other vectors;
* the legacy vsyscall page (gettimeofday, time, getcpu; SIGSEGV otherwise);
* sgdt, sidt, smsw, sldt, str as Linux's UMIP emulation answers them.

The programs are samples/corners/*.c, built with samples/build.sh.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import programs  # noqa: E402
from programs import bttool_cache  # noqa: E402,F401  (fixture)

CORNERS = programs.SAMPLES_SRC / "corners"
SIGSEGV, SIGTRAP = -11, -5


@pytest.fixture(scope="module")
def corners(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corners")
    proc = subprocess.run(["bash", str(programs.BUILD_SCRIPT), str(out), str(CORNERS)],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"building samples/corners failed:\n{proc.stderr.decode(errors='replace')}",
                    pytrace=False)
    return out


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _has_vsyscall_page() -> bool:
    try:
        return "[vsyscall]" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def run(corners: Path, cache: Path, tmp_path: Path, name: str, *args: str,
        status: int = 0, bttool_lines=0):
    native, _ = programs.compare_run([str(corners / name), *args], cache, cwd=tmp_path,
                                     bttool_lines=bttool_lines)
    # guard against a broken oracle
    assert native.returncode == status, programs.describe_status(native.returncode)
    return native


# ---------------------------------------------------------------------------
# int 0x80

def test_int80_i386_abi(corners, bttool_cache, tmp_path):
    """write/getpid/time/stat64/_llseek/writev/uname/mmap2/rt_sigaction/
    socketcall/clone... through int 0x80, an unknown number (-ENOSYS), the
    upper register halves ignored, every register but rax preserved,
    exit(0x2a)."""
    native = run(corners, bttool_cache, tmp_path, "int80", status=42)
    assert b"enosys ffffffffffffffda\n" in native.stdout
    assert b"r11 0a0a0a0a0a0a0a0a\n" in native.stdout
    assert b"socketcall socketpair 0\nsocketcall send 5\nread 5 hello\n" in native.stdout
    assert b"clone child\nclone waitpid same 1 status 700\n" in native.stdout


def test_int80_execve(corners, bttool_cache, tmp_path):
    """execve through int 0x80: 32-bit argv and envp arrays; a missing
    program is -ENOENT."""
    native = run(corners, bttool_cache, tmp_path, "int80", "exec")
    assert native.stdout.endswith(b"execd: argc 2 argv0 int80\nenv INT80_ENV=compat\nenv B=2\n")


@pytest.mark.parametrize("mode,status", [("trap", SIGTRAP), ("icebp", SIGTRAP), ("gp", SIGSEGV)])
def test_int_vectors(corners, bttool_cache, tmp_path, mode, status):
    run(corners, bttool_cache, tmp_path, "int80", mode, status=status, bttool_lines=1)


# ---------------------------------------------------------------------------
# the vsyscall page

needs_vsyscall = pytest.mark.skipif(not _has_vsyscall_page(),
                                    reason="this host's kernel has no vsyscall page (vsyscall=none)")


@needs_vsyscall
def test_vsyscall_calls(corners, bttool_cache, tmp_path):
    native = run(corners, bttool_cache, tmp_path, "vsyscall")
    assert b"after call: rcx 1111111111111111 r11 2222222222222222" in native.stdout


@needs_vsyscall
@pytest.mark.parametrize("mode", ["read", "write", "misaligned", "offset", "badptr", "badtime"])
def test_vsyscall_faults(corners, bttool_cache, tmp_path, mode):
    run(corners, bttool_cache, tmp_path, "vsyscall", mode, status=SIGSEGV, bttool_lines=1)


# ---------------------------------------------------------------------------
# UMIP

needs_umip = pytest.mark.skipif("umip" not in _cpu_flags(),
                                reason="no UMIP on this CPU: natively the real tables show")


@needs_umip
def test_umip_values(corners, bttool_cache, tmp_path):
    native = run(corners, bttool_cache, tmp_path, "umip")
    assert b"smsw k      1122334480050033\n" in native.stdout


@needs_umip
@pytest.mark.parametrize("mode", ["ro-sgdt", "ro-smsw"])
def test_umip_unwritable(corners, bttool_cache, tmp_path, mode):
    run(corners, bttool_cache, tmp_path, "umip", mode, status=SIGSEGV, bttool_lines=1)

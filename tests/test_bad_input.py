"""``bttool run`` on things it cannot run.

Contract: a program that is not found exits 127; a program that exists but
that bttool cannot run (a directory, an empty file, a truncated ELF, a 32-bit
ELF, a non-x86 ELF, a script, ...) exits 126, a missing program or ELF interpreter 127.  In
both cases stderr is exactly one line starting with ``bttool: error: ``,
there is no Python traceback, and nothing is written to stdout."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import programs  # noqa: E402
from programs import bttool_cache, samples_dir  # noqa: E402,F401  (fixtures)

EM_386, EM_X86_64, EM_AARCH64 = 3, 62, 183


def _make_executable(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o755)
    return path


def elf32_i386() -> bytes:
    """A complete, minimal 32-bit i386 ELF executable (exit(0) via int 0x80),
    crafted by hand so that no multilib toolchain is needed."""
    base = 0x08048000
    ehsize, phentsize = 52, 32
    code = bytes.fromhex("b801000000" "31db" "cd80")  # mov eax,1; xor ebx,ebx; int 0x80
    entry = base + ehsize + phentsize
    filesz = ehsize + phentsize + len(code)
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)  # ELFCLASS32, LSB, version 1, SysV
    header = ident + struct.pack(
        "<HHIIIIIHHHHHH",
        2,  # e_type ET_EXEC
        EM_386,
        1,  # e_version
        entry,
        ehsize,  # e_phoff
        0,  # e_shoff
        0,  # e_flags
        ehsize,
        phentsize,
        1,  # e_phnum
        0,  # e_shentsize
        0,  # e_shnum
        0,  # e_shstrndx
    )
    phdr = struct.pack("<IIIIIIII", 1, 0, base, base, filesz, filesz, 5, 0x1000)  # PT_LOAD, R+X
    data = header + phdr + code
    assert len(header) == ehsize and len(phdr) == phentsize
    return data


@pytest.fixture(scope="module")
def bad_programs(samples_dir, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad-input")
    hello = (samples_dir / "hello").read_bytes()
    assert programs.is_static_x86_64(samples_dir / "hello")
    progs: dict[str, Path] = {}

    progs["missing"] = d / "does-not-exist"
    progs["missing-in-missing-dir"] = d / "no-such-dir" / "prog"

    progs["directory"] = d / "a-directory"
    progs["directory"].mkdir()

    progs["empty-file"] = _make_executable(d / "empty", b"")

    progs["truncated-elf"] = _make_executable(d / "truncated", hello[:100])

    progs["elf-header-only"] = _make_executable(d / "header-only", hello[:64])

    progs["elf32-i386"] = _make_executable(d / "elf32", elf32_i386())

    aarch64 = bytearray(hello)
    struct.pack_into("<H", aarch64, 18, EM_AARCH64)
    progs["elf64-aarch64"] = _make_executable(d / "aarch64", bytes(aarch64))

    progs["shell-script"] = _make_executable(d / "script.sh", b"#!/bin/sh\necho should not run\n")

    progs["text-file"] = _make_executable(d / "text", b"just some text, not a program\n")

    garbage = bytes((i * 131 + 7) % 251 for i in range(4096))
    progs["garbage"] = _make_executable(d / "garbage", garbage)

    src = programs.SAMPLES_SRC / "hello.c"
    dyn = d / "hello-dynamic"
    subprocess.run(["gcc", "-O2", "-o", str(dyn), str(src)], check=True, capture_output=True)
    assert programs.elf_info(dyn)["interp"], "gcc did not produce a dynamically linked binary"
    # a dynamically linked program whose interpreter does not exist: Linux's
    # execve fails with ENOENT, which a shell reports with status 127
    data = dyn.read_bytes()
    interp = b"/lib64/ld-linux-x86-64.so.2\0"
    assert interp in data, "unexpected interpreter"
    missing = b"/nonexistent/ld-linux-x86.s\0"
    assert len(missing) == len(interp)
    progs["missing-interpreter"] = _make_executable(d / "missing-interp", data.replace(interp, missing, 1))

    obj = d / "hello.o"
    subprocess.run(["gcc", "-O2", "-c", "-o", str(obj), str(src)], check=True, capture_output=True)
    obj.chmod(0o755)
    progs["relocatable-object"] = obj
    return progs


# (case, expected exit status)
CASES = [
    ("missing", 127),
    ("missing-in-missing-dir", 127),
    ("directory", 126),
    ("empty-file", 126),
    ("truncated-elf", 126),
    ("elf-header-only", 126),
    ("elf32-i386", 126),
    ("elf64-aarch64", 126),
    ("shell-script", 126),
    ("text-file", 126),
    ("garbage", 126),
    ("missing-interpreter", 127),
    ("relocatable-object", 126),
]


@pytest.mark.parametrize("name,status", CASES, ids=[c[0] for c in CASES])
def test_bad_program(bad_programs, bttool_cache, tmp_path, name, status):
    prog = bad_programs[name]
    result = programs.run_bttool([str(prog), "arg1"], bttool_cache, cwd=tmp_path, timeout=120)
    err = result.stderr.decode("utf-8", errors="replace")
    assert "Traceback" not in err, f"Python traceback on stderr:\n{err}"
    assert result.returncode == status, (
        f"expected exit status {status}, got {programs.describe_status(result.returncode)}; "
        f"stderr:\n{err}"
    )
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and result.stderr.endswith(b"\n"), (
        f"expected exactly one line on stderr, got {len(lines)}:\n{err}"
    )
    assert lines[0].startswith(b"bttool: error: "), f"stderr line has the wrong form: {err!r}"
    assert len(lines[0]) > len(b"bttool: error: "), "the error message is empty"
    assert result.stdout == b"", f"unexpected stdout: {result.stdout[:500]!r}"


def test_bad_program_not_run_natively_by_mistake(bad_programs, bttool_cache, tmp_path):
    """The script must not be handed to /bin/sh: its output never appears."""
    result = programs.run_bttool([str(bad_programs["shell-script"])], bttool_cache, cwd=tmp_path)
    assert b"should not run" not in result.stdout + result.stderr


def test_elf32_is_well_formed(bad_programs):
    """Oracle check: the hand-made 32-bit ELF is what it claims to be."""
    info = programs.elf_info(bad_programs["elf32-i386"])
    assert info == {"class": 32, "machine": EM_386, "type": 2, "interp": False}
    file_cmd = shutil.which("file")
    if file_cmd:
        out = subprocess.run([file_cmd, "-b", str(bad_programs["elf32-i386"])], capture_output=True)
        assert out.stdout.startswith(b"ELF 32-bit LSB executable, Intel 80386"), out.stdout


def test_aarch64_copy_is_well_formed(bad_programs):
    info = programs.elf_info(bad_programs["elf64-aarch64"])
    assert info["class"] == 64 and info["machine"] == EM_AARCH64



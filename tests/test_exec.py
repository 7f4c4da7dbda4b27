"""A guest's execve, compared with the host kernel's: ``#!`` scripts as
fs/binfmt_script.c runs them (interpreter, optional argument, nesting,
ENOEXEC/ENOENT/EACCES/ELOOP), and both ways bttool serves an exec, in its
own process (runtime/execinplace.py, the default) and as a new bttool
process (``BTTOOL_EXEC=process``), which must give the guest the same."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import programs
from programs import bttool_cache, samples_dir  # noqa: F401  (fixtures)
from test_samples import sample

# The exec routes: bttool's environment for each (the variable reaches the
# guest too, so the native run gets it as well).
ROUTES = {"in-place": {}, "new-process": {"BTTOOL_EXEC": "process"}}
BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def _env(route: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "LANG": "C", **ROUTES[route]}


def _write(path: Path, data: bytes, mode: int = 0o755) -> str:
    path.write_bytes(data)
    path.chmod(mode)
    return str(path)


def _scripts(d: Path, interp: str) -> list[str]:
    """Scripts (and non-scripts) whose exec the kernel decides: each case
    of load_script, in the order execscript runs them."""
    i = interp.encode()
    out = [
        _write(d / "plain", b"#!" + i + b"\nignored\n"),
        _write(d / "with-arg", b"#!" + i + b"  one arg  with spaces \t\nignored\n"),
        _write(d / "blanks-and-tab", b"#! \t " + i + b"\tx\n"),
        _write(d / "no-newline", b"#!" + i + b" -x"),
        _write(d / "trailing-blank-no-newline", b"#!" + i + b" "),
        _write(d / "cut-off-argument", b"#!" + i + b" " + b"y" * 400),
        _write(d / "cut-off-name", b"#!/" + b"z" * 400),
        _write(d / "empty-line", b"#!\n"),
        _write(d / "missing-interpreter", b"#!/nonexistent/interpreter\n"),
        _write(d / "not-executable", b"#!" + i + b"\n", 0o644),
        _write(d / "text", b"echo not a script for the kernel\n"),
        _write(d / "empty", b""),
    ]
    # nested scripts: the kernel follows five, and refuses a sixth
    prev = i
    for n in range(1, 7):
        prev = _write(d / f"nested-{n}", b"#!" + prev + b" level" + str(n).encode() + b"\n").encode()
    out += [str(d / "nested-1"), str(d / "nested-5"), str(d / "nested-6")]
    # an ELF whose ELF interpreter is missing: ENOENT from execve itself
    dyn = Path(shutil.which("true") or "/bin/true").read_bytes()
    ld_so = b"/lib64/ld-linux-x86-64.so.2"
    assert ld_so in dyn
    out.append(_write(d / "missing-elf-interpreter", dyn.replace(ld_so, ld_so[:-1] + b"9")))
    # a relative interpreter is found from the working directory
    shutil.copy(interp, d / "interp-copy")
    out.append(_write(d / "relative", b"#!./interp-copy rel\n"))
    return out


@pytest.mark.parametrize("route", ROUTES)
def test_scripts_run_as_the_kernel_runs_them(samples_dir, bttool_cache, tmp_path, route):
    """execscript execs each file: the program that ran prints its argv
    (echo_args), or execve's errno is printed; bttool must match the host
    kernel case for case."""
    files = _scripts(tmp_path, sample(samples_dir, "echo_args"))
    native, _ = programs.compare_run([sample(samples_dir, "execscript")] + files, bttool_cache,
                                     cwd=tmp_path, env=_env(route))
    out = native.stdout.decode()
    # the cases are what they claim to be (the kernel is the oracle)
    assert "== plain\nargc=4\n" in out and "argv[1]=[" + files[0] + "]" in out
    assert "argv[1]=[one arg  with spaces]" in out
    for errno_case in ("== cut-off-name\nexecve: ENOEXEC", "== missing-interpreter\nexecve: ENOENT",
                       "== not-executable\nexecve: EACCES", "== text\nexecve: ENOEXEC",
                       "== nested-6\nexecve: ELOOP", "== missing-elf-interpreter\nexecve: ENOENT"):
        assert errno_case in out
    assert "== nested-5\nargc=13\n" in out and "== trailing-blank-no-newline\nargc=5\nargv[0]" in out


@pytest.mark.parametrize("route", ROUTES)
def test_a_shell_runs_scripts_and_falls_back_on_enoexec(bttool_cache, tmp_path, route):
    """busybox sh runs a #! script through the kernel's exec, and a file
    without #! (ENOEXEC) itself, as its own script."""
    script = _write(tmp_path / "hello.sh", f"#!{BUSYBOX} sh\necho script $0 \"$@\"; exit 3\n".encode())
    bare = _write(tmp_path / "bare.sh", b"echo bare script $0 $1\n")
    programs.compare_run([BUSYBOX, "sh", "-c", f"{script} a 'b c'; echo status $?; {bare} x; echo $?"],
                         bttool_cache, cwd=tmp_path, env=_env(route))


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", ["execchain", "sigdisp"])
def test_exec_samples_by_either_route(samples_dir, bttool_cache, tmp_path, route, name):
    """execchain (environment, argv, descriptors, close-on-exec across four
    execs) and sigdisp (dispositions and mask across an exec) by each route."""
    programs.compare_run([sample(samples_dir, name)], bttool_cache, cwd=tmp_path, env=_env(route))


def test_execs_are_served_in_place(bttool_cache, tmp_path):
    """Each exec of a chain is served in the process that made it (no new
    bttool: --stats-json, which only the first bttool knows of, counts them
    and reports the last program); BTTOOL_EXEC=process turns that off."""
    stats = tmp_path / "stats.json"
    cmd = [BUSYBOX, "sh", "-c", f"exec {BUSYBOX} sh -c 'exec {BUSYBOX} echo done'"]
    r = programs.run_bttool(cmd, bttool_cache, cwd=tmp_path, options=["--stats-json", str(stats)],
                            env=_env("in-place"))
    assert (r.returncode, r.stdout) == (0, b"done\n"), r.stderr
    assert json.loads(stats.read_text())["execs_in_place"] == 2
    stats.unlink()
    r = programs.run_bttool(cmd, bttool_cache, cwd=tmp_path, options=["--stats-json", str(stats)],
                            env=_env("new-process"))
    assert (r.returncode, r.stdout) == (0, b"done\n"), r.stderr
    assert not stats.exists()       # the bttool that knew of the file was replaced


def test_a_trap_is_reset_by_exec(bttool_cache, tmp_path):
    """A shell's trap (a guest handler) is gone after the exec: the signal
    the new program sends itself takes the default action and kills it."""
    script = ("trap 'echo handled' USR1; "
              f"exec {BUSYBOX} sh -c 'echo before kill; kill -USR1 $$; echo not reached'")
    native, _ = programs.compare_run([BUSYBOX, "sh", "-c", script], bttool_cache, cwd=tmp_path,
                                     env=_env("in-place"))
    assert native.returncode in (-10, 138) and native.stdout == b"before kill\n"


@pytest.mark.parametrize("route", ROUTES)
def test_an_exec_never_keeps_translations_of_code_the_new_program_lacks(samples_dir, bttool_cache,
                                                                       tmp_path, route):
    """execkeep patches one of its functions, runs it, and execs itself: the
    new program has the file's code again and must run that, not the kept
    translation of the patched code (runtime/keptcode.py); its other code
    is kept (--stats-json: regions_kept), and each of its own execs of
    the unchanged program keeps what it had."""
    stats = tmp_path / "stats.json"
    native, result = programs.compare_run([sample(samples_dir, "execkeep")], bttool_cache, cwd=tmp_path,
                                          env=_env(route), options=["--stats-json", str(stats)])
    assert native.stdout.count(b"child: patched() = 1,") == 3
    assert b"after patch: patched() = 7," in native.stdout
    if route == "in-place":
        summary = json.loads(stats.read_text())
        assert summary["execs_in_place"] == 3
        assert summary["regions_kept"] > 100


def test_a_shell_exec_of_busybox_keeps_its_translations(bttool_cache, tmp_path):
    """busybox sh execs a busybox applet: the same file at the same
    addresses, so the new program starts with the regions the shell had
    installed (no warm-set install), and a warm run of it translates
    nothing."""
    stats = tmp_path / "stats.json"
    cmd = [BUSYBOX, "sh", "-c", f"exec {BUSYBOX} echo kept"]
    for _ in range(3):
        r = programs.run_bttool(cmd, bttool_cache, cwd=tmp_path, options=["--stats-json", str(stats)],
                                env=_env("in-place"))
        assert (r.returncode, r.stdout) == (0, b"kept\n"), r.stderr
    summary = json.loads(stats.read_text())
    assert summary["execs_in_place"] == 1 and summary["regions_translated"] == 0
    assert summary["regions_kept"] > 300
    assert summary["regions_kept"] > 0.8 * summary["regions_from_cache"]

"""What a user installs: the wheel holds every module of the package, and
its console script, run from outside the checkout with no PYTHONPATH, runs a
sample program, a busybox pipeline and a sample kernel as expected.

tests/installed.py builds the wheel and the fresh virtual environment once
per session; every program-level test runs that script.
"""
from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import pytest

import installed
import programs
from programs import bttool_cache, samples_dir  # noqa: F401  (fixtures)

BUSYBOX = "/bin/busybox"
KERNELS = programs.REPO / "samples" / "kernels"


def test_the_wheel_ships_every_module_of_the_package():
    """A subpackage without __init__.py (or any module setup.cfg leaves out)
    is missing from the wheel: name it."""
    shipped = installed.wheel_modules(programs.installed_bttool().wheel)
    missing = sorted(installed.package_modules() - shipped)
    assert not missing, f"modules missing from the wheel: {missing}"


def test_each_layer_imports_only_the_layers_below_it(tmp_path):
    """cli above runtime above translator above ir (setup.cfg's import-linter
    contract): ir/ builds LLVM IR and knows nothing of the translator or the
    runtime, the translator nothing of the runtime, and nothing imports the
    command line (an exec'd bttool ends its run through runtime/runend.py).
    Imports inside functions count too."""
    import shutil
    import sys
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        lint = Path(shutil.which("lint-imports") or "lint-imports")
    r = subprocess.run([str(lint), "--config", str(programs.REPO / "setup.cfg"), "--no-cache"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "1 kept, 0 broken" in r.stdout, r.stdout[-2000:]


def test_every_semantics_family_is_listed():
    """The registry imports the families it is given (translator/semantics
    FAMILIES), not what a directory listing finds: the list must name every
    family module in the package, no more."""
    files = sorted(p.stem for p in (programs.REPO / "bttool" / "translator" / "semantics").glob("*.py")
                   if p.stem != "__init__")
    text = (programs.REPO / "bttool" / "translator" / "semantics" / "__init__.py").read_text()
    start = text.index("(", text.index("FAMILIES = ("))
    listed = ast.literal_eval(text[start:text.index(")", start) + 1])
    assert list(listed) == files


def test_the_installed_package_is_imported_not_the_checkout():
    inst = programs.installed_bttool()
    r = subprocess.run([str(inst.python), "-c", "import bttool, sys; print(bttool.__file__)"],
                       capture_output=True, text=True, cwd=programs.work_dir(), env=programs.guest_env(),
                       check=True)
    where = Path(r.stdout.strip()).resolve()
    assert inst.venv.resolve() in where.parents, where
    assert programs.REPO not in where.parents, where


def test_installed_script_runs_a_sample_from_outside_the_checkout(samples_dir, bttool_cache):
    cwd = programs.work_dir()
    assert programs.REPO not in cwd.resolve().parents
    env = programs.guest_env()
    assert not any(k.startswith("PYTHON") for k in env)
    programs.compare_run([samples_dir / "echo_args", "one", "two words", ""], bttool_cache,
                         cwd=cwd, env=env)
    programs.compare_run([samples_dir / "hello"], bttool_cache, cwd=cwd, env=env)


def test_a_linux_user_run_imports_nothing_of_system_mode(samples_dir, bttool_cache):
    """The command line decides between the modes by a look at the file
    (runtime/programkind.py) and loads system mode only for a kernel: a
    Linux program's run imports no module of runtime/system (``python -X
    importtime`` names every module a run imports, on stderr)."""
    inst = programs.installed_bttool()
    r = subprocess.run([str(inst.python), "-X", "importtime", "-m", "bttool", "run", "--cache-dir",
                        str(bttool_cache), str(samples_dir / "hello")],
                       capture_output=True, cwd=programs.work_dir(), env=programs.guest_env())
    assert r.returncode == 0 and r.stdout == b"Hello, world!\n", r.stderr[-2000:]
    assert b"bttool.runtime.programkind" in r.stderr       # the listing is there
    assert b"bttool.runtime.system" not in r.stderr


@pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="busybox-static not installed")
def test_installed_script_runs_a_busybox_pipeline(bttool_cache):
    """A pipeline forks and execs: every child is bttool again, started
    from the installed package."""
    script = "busybox echo c b a | busybox tr ' ' '\\n' | busybox sort | busybox head -n 2; echo $?"
    programs.compare_run([BUSYBOX, "sh", "-c", script], bttool_cache)


@pytest.fixture(scope="module")
def kernels(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kernels")
    subprocess.run([str(KERNELS / "build.sh"), str(out)], check=True, stdout=subprocess.DEVNULL)
    return out


def test_installed_script_boots_a_sample_kernel(kernels, bttool_cache):
    r = programs.run_bttool([kernels / "hello.elf"], bttool_cache, options=["--system"], timeout=120)
    assert r.stdout.decode() == (KERNELS / "expected" / "hello.txt").read_text(), r.stderr
    assert r.returncode == 0, r.stderr

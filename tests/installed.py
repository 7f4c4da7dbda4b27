"""bttool as a user installs it: the program-level tests run this, never the
checkout.

Once per test session the checkout is copied, built into a wheel
(``pip wheel``, with build isolation, as ``pip install .`` would), and the
wheel is installed non-editable, with its dependencies, into a fresh virtual
environment.  Tests run that environment's ``bttool`` console script from
directories outside the checkout with no ``PYTHONPATH`` (``programs.guest_env``
removes every ``PYTHON*`` variable), so a module left out of the wheel, a
missing dependency or an import that only works from the checkout fails them.

``BTTOOL_TEST_VENV=DIR`` keeps the environment in DIR and reuses it while the
package's sources are unchanged (faster local iterations; CI never sets it).
"""
from __future__ import annotations

import atexit
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# what goes into the wheel: the package and the files that describe it
PACKAGE_INPUTS = ("bttool", "setup.cfg", "pyproject.toml", "README.md")
_STAMP = ".bttool-source-digest"


@dataclass(frozen=True)
class Installed:
    venv: Path
    python: Path          # the environment's interpreter
    bttool: Path          # the console script
    wheel: Path           # the wheel it was installed from (kept in the venv)


_installed: Installed | None = None


class InstallError(RuntimeError):
    pass


def source_files() -> list[Path]:
    """Every file of the checkout that the wheel is built from."""
    out = []
    for name in PACKAGE_INPUTS:
        p = REPO / name
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and "__pycache__" not in f.parts
                          and f.suffix not in (".pyc", ".pyo"))
        elif p.exists():
            out.append(p)
    return out


def package_modules() -> set[str]:
    """The checkout's Python modules, as paths inside a wheel
    (``bttool/runtime/system/boot.py``)."""
    return {f.relative_to(REPO).as_posix() for f in source_files()
            if f.suffix == ".py" and f.parts[len(REPO.parts)] == "bttool"}


def wheel_modules(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return {n for n in z.namelist() if n.startswith("bttool/") and n.endswith(".py")}


def _digest() -> str:
    h = hashlib.sha256()
    for f in source_files():
        h.update(f.relative_to(REPO).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _run(cmd: list[str], **kw) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, **kw)
    if r.returncode:
        raise InstallError(f"{' '.join(cmd)} failed with status {r.returncode}:\n{r.stdout[-3000:]}"
                           f"\n{r.stderr[-3000:]}")


def build_wheel(dest: Path) -> Path:
    """Copy the package's inputs to a scratch tree (the checkout stays
    clean), build the wheel there, return its path."""
    src = dest / "src"
    for name in PACKAGE_INPUTS:
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif p.exists():
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
          "-w", str(dest / "dist"), str(src)], cwd=dest)
    wheels = sorted((dest / "dist").glob("bttool-*.whl"))
    if len(wheels) != 1:
        raise InstallError(f"pip wheel made {wheels!r}")
    shutil.rmtree(src)
    return wheels[0]


def create_venv(venv: Path, wheel: Path) -> Installed:
    """A fresh virtual environment with ``wheel`` installed (not editable)."""
    if venv.exists():
        shutil.rmtree(venv)
    _run([sys.executable, "-m", "venv", str(venv)], cwd=venv.parent)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
         cwd=venv.parent)
    (venv / "wheel").mkdir()
    kept = Path(shutil.copy2(wheel, venv / "wheel"))
    return Installed(venv, python, venv / "bin" / "bttool", kept)


def installed() -> Installed:
    """The installed bttool of this test session (built on first use)."""
    global _installed
    if _installed is not None:
        return _installed
    fixed = os.environ.get("BTTOOL_TEST_VENV")
    if fixed:
        venv = Path(fixed).resolve()
        # pytest-xdist's workers share it: one checks and rebuilds at a time
        with open(venv.parent / f".{venv.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return _fixed_venv(venv)
    work = Path(tempfile.mkdtemp(prefix="bttool-installed-"))
    atexit.register(shutil.rmtree, work, True)
    _installed = create_venv(work / "venv", build_wheel(work))
    return _installed


def _fixed_venv(venv: Path) -> Installed:
    """BTTOOL_TEST_VENV's environment, rebuilt if the sources changed."""
    global _installed
    digest = _digest()
    stamp = venv / _STAMP
    wheels = sorted((venv / "wheel").glob("bttool-*.whl"))
    if stamp.exists() and stamp.read_text() == digest and (venv / "bin" / "bttool").exists() \
            and len(wheels) == 1:
        _installed = Installed(venv, venv / "bin" / "python", venv / "bin" / "bttool", wheels[0])
        return _installed
    work = Path(tempfile.mkdtemp(prefix="bttool-wheel-"))
    try:
        _installed = create_venv(venv, build_wheel(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stamp.write_text(digest)
    return _installed


def outside_dir() -> Path:
    """A directory outside the checkout to run programs from."""
    d = Path(tempfile.mkdtemp(prefix="bttool-cwd-"))
    atexit.register(shutil.rmtree, d, True)
    return d

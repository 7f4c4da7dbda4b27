"""The bttool the benchmarks time: the installed console script, never the
checkout (what users run, with its bytecode compiled at install time).

It is ``--bttool PATH`` or ``$BTTOOL`` when given, else ``bttool`` on PATH
(README.md's setup command installs it into .venv).  Standard library only.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys


def bttool_script(explicit: str | None = None) -> str:
    """Path of the installed console script; exits with a clear message
    when there is none."""
    path = explicit or os.environ.get("BTTOOL") or shutil.which("bttool")
    if not path or not os.access(path, os.X_OK):
        sys.exit("bench: no installed bttool (run README.md's setup command, which installs it "
                 "into .venv, and activate that; or pass --bttool PATH / set BTTOOL)")
    return os.path.abspath(path)


def clean_env(extra: dict | None = None) -> dict:
    """The benchmark's environment without PYTHON* variables (nothing may
    point the installed bttool at the checkout) or bttool settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTHON") and k not in ("BTTOOL_CACHE_DIR", "BTTOOL_UNSAFE_NO_CLAMP")}
    env.update(extra or {})
    return env


def describe(script: str) -> str:
    """One line saying which bttool is timed (version and where it lives)."""
    r = subprocess.run([script, "--version"], capture_output=True, text=True, env=clean_env())
    return f"{script} ({r.stdout.strip() or r.stderr.strip()})"

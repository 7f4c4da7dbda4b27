"""Starting another host Python that runs bttool's own code: the compile
server, and the bttool that a guest ``execve`` turns into.

Such a process belongs to bttool, so nothing the guest controls may choose
the code it loads.  The guest picks its working directory, its environment
and its argv; so the host Python starts isolated (``-I``: no ``PYTHON*``
variables, neither the working directory nor a script directory on
``sys.path``, no user site-packages), is given the directory bttool itself
was imported from, and gets bttool's own environment (what bttool was
started with, which the guest cannot change), never the guest's.  The guest's
environment reaches the new bttool through ``runtime/exechandoff.py``.
"""
from __future__ import annotations

import os
import sys

# python -I -c BOOT ROOT MODULE ARGS...: put ROOT first on sys.path and run
# MODULE as __main__ with argv [MODULE's file, ARGS...]
_BOOT = ("import sys, runpy; sys.path.insert(0, sys.argv.pop(1)); "
         "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)")


def package_root() -> str:
    """The directory that holds the running ``bttool`` package (site-packages
    for an installed bttool, the checkout for a development run)."""
    import bttool
    return os.path.dirname(os.path.dirname(os.path.abspath(bttool.__file__)))


def command(module: str, *args: str) -> list[str]:
    """argv that runs ``python -m MODULE ARGS...`` in an isolated host Python
    importing this very bttool."""
    return [sys.executable, "-I", "-c", _BOOT, package_root(), module, *args]


def host_environment() -> dict[bytes, bytes]:
    """The environment bttool itself runs with (the guest's lives in guest
    memory; a guest ``setenv`` never reaches this)."""
    return dict(os.environb)

"""The guest's root directory for absolute paths (``--sysroot DIR``,
``BTTOOL_SYSROOT``), as qemu-user's ``-L``: when the guest's libraries and
interpreter live elsewhere than the host's (another distribution's
userland, a build tree).

An absolute path the guest names (the ELF interpreter, a library ld.so
opens, any path a system call takes, a program it execs) is looked up
under DIR first and used from there when it exists there; otherwise it is
the host's path, so /proc, /dev, /tmp and the user's files stay reachable.
Like qemu's, this is a lookup prefix, not a jail: a symbolic link inside DIR
whose target is absolute is followed by the host kernel on the host's side,
and ``..`` can leave DIR.
"""
from __future__ import annotations

import os

_root: bytes = b""      # b"" when there is none


def set_root(path: str | None) -> None:
    """Make ``path`` the guest's sysroot for this process (None: none)."""
    global _root
    _root = os.fsencode(os.path.abspath(path)).rstrip(b"/") if path else b""


def active() -> bool:
    """Whether a sysroot is in force (checked before any path is read)."""
    return bool(_root)


def root() -> str | None:
    """The sysroot in force (what a guest execve passes on), or None."""
    return os.fsdecode(_root) if _root else None


def host_path(path: bytes) -> bytes | None:
    """Where the guest's absolute ``path`` is on the host when the sysroot
    has it, else None (the path is used as it is)."""
    if not _root or not path.startswith(b"/"):
        return None
    candidate = _root + path
    return candidate if os.path.lexists(candidate) else None


def resolve(path: str) -> str:
    """``path`` as the host opens it for the guest (for bttool's own
    opens: the interpreter, an exec'd program)."""
    found = host_path(os.fsencode(path))
    return os.fsdecode(found) if found is not None else path


def guest_path(host: str) -> str:
    """A host path as the guest names it: without the sysroot's prefix
    when the file lies under the sysroot (/proc/self/maps)."""
    root = os.fsdecode(_root)
    return host[len(root):] if root and host.startswith(root + "/") else host

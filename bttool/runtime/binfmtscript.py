"""What a guest ``execve`` of a ``#!`` script runs, as Linux's
fs/binfmt_script.c decides it.

The kernel, not the shell, starts a script's interpreter: ``./configure``,
a ``#!/bin/sh`` helper that make runs, a Python tool on PATH.  bttool must
do the same for its guest, or every such exec fails (the ELF loader refuses
a script).  Linux reads the first BINPRM_BUF_SIZE bytes; the interpreter's
name ends at the first space, tab or NUL, and whatever follows on the line
(trimmed of spaces and tabs at both ends) is one optional argument.  The
new argv is the interpreter's name, that argument, the path the caller
passed to execve, then the caller's argv without its argv[0].  The
interpreter may be a script itself, up to a depth that ends in ELOOP.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import Callable

BINPRM_BUF_SIZE = 256
# fs/exec.c exec_binprm: a program reached through more nested scripts than
# this ends in ELOOP
MAX_DEPTH = 5
_SPACE_TAB = b" \t"


def interpreter_line(head: bytes) -> tuple[bytes, bytes | None] | None:
    """(interpreter name, optional argument) from a file's first bytes,
    None when they do not start a script Linux would run (ENOEXEC).  Follows
    load_script step by step: the buffer is zero-filled past the file's end,
    and a line the buffer cuts off is used when the name provably ends
    inside it (its last byte is then lost)."""
    buf = head[:BINPRM_BUF_SIZE].ljust(BINPRM_BUF_SIZE, b"\0")
    if not buf.startswith(b"#!"):
        return None
    last = BINPRM_BUF_SIZE - 1
    end = buf.find(b"\n")
    if end < 0:
        first = _next_non_spacetab(buf, 2, last)
        if first is None or _next_terminator(buf, first, last) is None:
            return None
        end = last
    while buf[end - 1] in _SPACE_TAB:
        end -= 1
    name_at = _next_non_spacetab(buf, 2, end)
    if name_at is None:
        return None
    sep = _next_terminator(buf, name_at, end)
    arg = None
    if sep is not None and buf[sep] != 0:
        arg_at = _next_non_spacetab(buf, sep, end)
        if arg_at is not None:
            arg = buf[arg_at:end].split(b"\0", 1)[0]
    name = buf[name_at:end if sep is None else sep].split(b"\0", 1)[0]
    return name, arg


def _next_non_spacetab(buf: bytes, i: int, end: int) -> int | None:
    while i < end:
        if buf[i] not in _SPACE_TAB:
            return i
        i += 1
    return None


def _next_terminator(buf: bytes, i: int, end: int) -> int | None:
    while i < end:
        if buf[i] in b" \t\0":
            return i
        i += 1
    return None


def resolve(path: bytes, argv: list[bytes], host_path: Callable[[bytes], bytes]) -> tuple[bytes, list[bytes]]:
    """The program an execve of ``path`` with ``argv`` runs, and its argv:
    ``path`` itself when it is no script, else its interpreter (followed
    through nested scripts).  ``host_path`` maps a guest path to where the
    host opens it (the sysroot).  Raises OSError with the errno execve
    returns: ENOENT, EACCES, ENOEXEC (neither ELF nor script), ELOOP."""
    for depth in range(MAX_DEPTH + 1):
        host = host_path(path)
        head = _head(host)
        if head is None or head.startswith(b"\x7fELF"):
            return host, argv
        line = interpreter_line(head)
        if line is None:
            raise OSError(errno.ENOEXEC, os.strerror(errno.ENOEXEC))
        if depth == MAX_DEPTH:
            break
        name, arg = line
        argv = [name] + ([arg] if arg is not None else []) + [path] + argv[1:]
        path = name
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))


def _head(host: bytes) -> bytes | None:
    """The first bytes of the executable file ``host``; None when no
    descriptor is free to read them (the guest holds every number: the
    program is taken as it is and the exec route finds out what it is).
    OSError ENOENT/EACCES as execve gives them."""
    if not stat.S_ISREG(os.stat(host).st_mode) or not os.access(host, os.X_OK):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))
    try:
        fd = os.open(host, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.EMFILE, errno.ENFILE):
            return None
        raise
    try:
        return os.pread(fd, BINPRM_BUF_SIZE, 0)
    finally:
        os.close(fd)

"""Reading a kernel image file without ever blocking on it.

``open()`` of a FIFO waits for a writer and a read of a character device
such as /dev/zero never ends, so a kernel "image" that is not a regular
file would hang bttool before anything could be said about it.  The file
is opened with O_NONBLOCK (which makes opening a FIFO return at once), its
type is checked on the open descriptor (no race between a stat and the
open), and at most MAX_IMAGE_BYTES are read.
"""
from __future__ import annotations

import os
import stat

from bttool.errors import CannotRun as BadProgram

# The whole image is read into bttool's memory: an enormous file is refused
# instead.  Real kernels, symbols and debug information included, are tens
# of MiB.
MAX_IMAGE_BYTES = 1 << 30

_KINDS = {stat.S_IFDIR: "is a directory", stat.S_IFIFO: "is a FIFO, not a kernel image file",
          stat.S_IFCHR: "is a character device, not a kernel image file",
          stat.S_IFBLK: "is a block device, not a kernel image file",
          stat.S_IFSOCK: "is a socket, not a kernel image file"}


def _open_regular(path: str) -> int:
    """A descriptor of ``path`` opened for reading; BadProgram (one line)
    if it cannot be opened or is not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as e:
        raise BadProgram(f"{path}: {e.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError as e:
        os.close(fd)
        raise BadProgram(f"{path}: {e.strerror}") from None
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise BadProgram(f"{path}: {_KINDS.get(stat.S_IFMT(mode), 'is not a regular file')}")
    return fd


def read_image(path: str, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """The contents of kernel image ``path`` (a regular file of at most
    ``limit`` bytes); BadProgram otherwise."""
    fd = _open_regular(path)
    try:
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 24, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as e:
        raise BadProgram(f"{path}: {e.strerror}") from None
    finally:
        os.close(fd)
    if total > limit:
        raise BadProgram(f"{path}: kernel image larger than {limit >> 20} MiB")
    return b"".join(chunks)


def read_head(path: str, n: int) -> bytes | None:
    """The first ``n`` bytes of ``path`` if it is a readable regular file,
    else None (never blocks: used to sniff a Multiboot header)."""
    try:
        fd = _open_regular(path)
    except BadProgram:
        return None
    try:
        return os.read(fd, n)
    except OSError:
        return None
    finally:
        os.close(fd)

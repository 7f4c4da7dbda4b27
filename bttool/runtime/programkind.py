"""Which kind of run a program file asks for, decided before anything of
either mode is imported: a kernel to boot on a virtual machine when it
carries a Multiboot v1 header in its first 8 KiB (as GRUB and QEMU's
-kernel recognise one), else a Linux executable.  The header's format is
defined here once; system/boot.py loads such kernels.
"""
from __future__ import annotations

import struct

from bttool.runtime.imagefile import read_head

MULTIBOOT_MAGIC = 0x1BADB002
MULTIBOOT_SEARCH = 8192         # the header lies in the first 8 KiB, 4-byte aligned


def find_multiboot_header(raw: bytes) -> tuple[int, int] | None:
    """(offset, flags) of a valid Multiboot v1 header in the first 8 KiB."""
    for off in range(0, min(len(raw), MULTIBOOT_SEARCH) - 11, 4):
        magic, flags, checksum = struct.unpack_from("<III", raw, off)
        if magic == MULTIBOOT_MAGIC and (magic + flags + checksum) & 0xFFFFFFFF == 0:
            return off, flags
    return None


def is_multiboot(path: str) -> bool:
    """Whether ``path`` carries a Multiboot header (then it is booted
    without --system).  Never blocks: anything but a readable regular file
    is no."""
    head = read_head(path, MULTIBOOT_SEARCH)
    return head is not None and find_multiboot_header(head) is not None

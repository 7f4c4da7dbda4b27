"""Whether a parsed kernel can be placed in the machine it is to boot on.

Checked once, before the machine is built, so that a kernel whose segments
do not fit, collide with each other or with what the loader writes, or
whose entry point is not among the bytes it loads, is one error line
(status 126) instead of a guest that runs zeroed or absent memory until
someone kills it.  A PC's loader (GRUB) refuses such images too.
"""
from __future__ import annotations

from itertools import pairwise

from bttool.errors import CannotRun as BadProgram
from bttool.runtime.system.boot import LOADER_END, KernelImage, Segment

FOUR_GIB = 1 << 32


def _describe(seg: Segment) -> str:
    return f"segment {seg.paddr:#x}-{seg.paddr + seg.memsz:#x}"


def check_layout(image: KernelImage, memory_size: int) -> None:
    """BadProgram (one line) unless every segment lies in guest RAM above
    the loader's structures, no two segments overlap, and the entry point
    is a loaded byte of the image (reachable: below 4 GiB, which both boot
    protocols enter identity-mapped or with paging off)."""
    path = image.path
    segs = sorted(image.segments, key=lambda s: s.paddr)
    for seg in segs:
        end = seg.paddr + seg.memsz
        if end > memory_size:
            raise BadProgram(f"{path}: {_describe(seg)} does not fit in "
                             f"{memory_size >> 20} MiB of guest memory")
        if image.protocol == "multiboot" and end > FOUR_GIB:
            raise BadProgram(f"{path}: {_describe(seg)} lies above 4 GiB (Multiboot loads "
                             "into 32-bit physical memory)")
        if seg.paddr < LOADER_END:
            raise BadProgram(f"{path}: {_describe(seg)} overlaps the boot structures the "
                             f"loader builds below {LOADER_END:#x}")
    for a, b in pairwise(segs):
        if b.paddr < a.paddr + a.memsz:
            raise BadProgram(f"{path}: {_describe(a)} and {_describe(b)} overlap")
    entry = image.entry
    if entry >= FOUR_GIB or not any(s.paddr <= entry < s.paddr + len(s.data) for s in segs):
        raise BadProgram(f"{path}: entry point {entry:#x} is outside the loaded bytes of the "
                         "image")

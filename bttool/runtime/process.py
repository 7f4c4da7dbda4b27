"""Starting a linux-user guest: place the image and build the initial stack.

The stack follows the x86-64 System V ABI process entry layout: argc, argv
pointers, NULL, envp pointers, NULL, the auxiliary vector, then the strings
and the 16 AT_RANDOM bytes above them.
"""
from __future__ import annotations

import os
import struct

from bttool.runtime import cpuid
from bttool.runtime.memory import (PAGE, PIE_BASE, PROT_EXEC, PROT_READ, PROT_WRITE,
                                   STACK_SIZE, STACK_TOP, GuestMemory, page_down, page_up)
from bttool.translator.loader import PF_R, PF_W, PF_X, GuestImage

AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_MINSIGSTKSZ = 23, 25, 26, 31, 51


def _prot(flags: int) -> int:
    return ((PROT_READ if flags & PF_R else 0) | (PROT_WRITE if flags & PF_W else 0)
            | (PROT_EXEC if flags & PF_X else 0))


def load_base(image: GuestImage) -> int:
    return PIE_BASE if image.pie else 0


def image_span(image: GuestImage) -> int:
    """Bytes of address space the image's segments cover (from base 0)."""
    return page_up(max(s.vaddr + s.memsz for s in image.segments))


def map_image(mem: GuestMemory, image: GuestImage, base: int | None = None) -> tuple[int, int]:
    """Map every PT_LOAD segment at ``base`` (default: where the image goes
    as a program); returns (load base, end of the image)."""
    if base is None:
        base = load_base(image)
    page_prot: dict[int, int] = {}
    for seg in image.segments:
        start = page_down(base + seg.vaddr)
        end = page_up(base + seg.vaddr + seg.memsz)
        for p in range(start, end, PAGE):
            page_prot[p] = page_prot.get(p, 0) | _prot(seg.flags)
    # Map runs of pages with equal protection.
    pages = sorted(page_prot)
    run_start = None
    for i, p in enumerate(pages):
        if run_start is None:
            run_start = p
        nxt = pages[i + 1] if i + 1 < len(pages) else None
        if nxt != p + PAGE or page_prot[nxt] != page_prot[p]:
            mem.map(run_start, p + PAGE - run_start, page_prot[p], name=os.path.basename(image.path))
            run_start = None
    for seg in image.segments:
        if seg.filesz:
            mem.write_force(base + seg.vaddr, image.data[seg.offset:seg.offset + seg.filesz])
    image_end = max(page_up(base + s.vaddr + s.memsz) for s in image.segments)
    return base, image_end


def build_stack(mem: GuestMemory, image: GuestImage, base: int, argv: list[bytes],
                envp: list[bytes], execfn: bytes, random16: bytes, interp_base: int = 0) -> int:
    """Map the stack and lay out argc/argv/envp/auxv; returns the initial rsp.
    ``interp_base`` is where the program's interpreter (ld.so) was mapped
    (AT_BASE), 0 for a static program."""
    mem.map(STACK_TOP - STACK_SIZE, STACK_SIZE, PROT_READ | PROT_WRITE, name="[stack]")
    top = STACK_TOP - 16  # a little headroom, like the kernel's end marker
    blobs = [execfn + b"\0"] + [a + b"\0" for a in argv] + [e + b"\0" for e in envp] \
        + [b"x86_64\0", random16]
    total = sum(len(b) for b in blobs)
    pos = (top - total) & ~15
    addrs = []
    cur = pos
    for blob in blobs:
        addrs.append(cur)
        mem.write(cur, blob)
        cur += len(blob)
    execfn_addr = addrs[0]
    argv_addrs = addrs[1:1 + len(argv)]
    envp_addrs = addrs[1 + len(argv):1 + len(argv) + len(envp)]
    platform_addr, random_addr = addrs[-2], addrs[-1]

    auxv = [
        (AT_PHDR, base + image.phdr_vaddr), (AT_PHENT, image.phentsize), (AT_PHNUM, image.phnum),
        (AT_PAGESZ, PAGE), (AT_BASE, interp_base), (AT_FLAGS, 0), (AT_ENTRY, base + image.entry),
        (AT_UID, os.getuid()), (AT_EUID, os.geteuid()), (AT_GID, os.getgid()),
        (AT_EGID, os.getegid()), (AT_PLATFORM, platform_addr), (AT_HWCAP, cpuid.hwcap()),
        (AT_CLKTCK, os.sysconf("SC_CLK_TCK")), (AT_SECURE, 0), (AT_RANDOM, random_addr),
        (AT_HWCAP2, 0), (AT_EXECFN, execfn_addr), (AT_MINSIGSTKSZ, 2048), (AT_NULL, 0),
    ]
    words = [len(argv)] + argv_addrs + [0] + envp_addrs + [0]
    for k, v in auxv:
        words += [k, v]
    size = len(words) * 8
    sp = (pos - size) & ~15
    mem.write(sp, struct.pack(f"<{len(words)}Q", *words))
    return sp

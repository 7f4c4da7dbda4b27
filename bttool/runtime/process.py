"""Starting a linux-user guest: place the image and build the initial stack.

The stack follows the x86-64 System V ABI process entry layout: argc, argv
pointers, NULL, envp pointers, NULL, the auxiliary vector, then the strings
and the 16 AT_RANDOM bytes above them.
"""
from __future__ import annotations

import errno
import os
import struct

from bttool.errors import CannotRun, ExecFault
from bttool.runtime.window import LOW, Window, windows_for
from bttool.runtime import cpuid, fpstate
from bttool.runtime.memory import (MMAP_TOP, PAGE, PIE_BASE, PROT_EXEC, PROT_READ, PROT_WRITE,
                                   STACK_EXPAND, STACK_SIZE, STACK_TOP, GuestMemory, GuestMemoryError, MappedFile,
                                   page_down, page_up, stack_size)
from bttool.translator.loader import PF_R, PF_W, PF_X, GuestImage

AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_MINSIGSTKSZ = 23, 25, 26, 31, 51


def _prot(flags: int) -> int:
    return ((PROT_READ if flags & PF_R else 0) | (PROT_WRITE if flags & PF_W else 0)
            | (PROT_EXEC if flags & PF_X else 0))


_U64 = (1 << 64) - 1


def _span(image: GuestImage, base: int) -> list[tuple[int, int]]:
    """The guest ranges the image's segments occupy at ``base``."""
    return [(page_down(base + s.vaddr), page_up(base + s.vaddr + max(s.memsz, s.filesz)))
            for s in image.segments if s.memsz or s.filesz]


def _outside(image: GuestImage, base: int, window: Window = LOW) -> int | None:
    """The first segment address that bttool cannot map at ``base`` (outside
    the guest window, or over the stack), or None when all fit."""
    stack_hi = window.low + STACK_TOP
    stack_lo = stack_hi - stack_size()
    for lo, hi in _span(image, base):
        if not window.holds(lo, hi - lo) or (lo < stack_hi and hi > stack_lo):
            return lo
    return None


def program_window(image: GuestImage, interpreter: GuestImage | None = None) -> Window:
    """The guest window (runtime/window.py) of a program: the usual one,
    unless its image or its interpreter has fixed addresses (ET_EXEC) that
    only a higher window holds beside the stack.  An image that no window
    holds gets the usual one, where map_image refuses it as Linux would or
    says why."""
    fixed = [im for im in (image, interpreter) if im is not None and not im.pie and im.segments]
    spans = [r for im in fixed for r in _span(im, 0)]
    if not spans:
        return LOW
    for window in windows_for(min(lo for lo, _ in spans)):
        if all(_outside(im, 0, window) is None for im in fixed):
            return window
    return LOW


def load_base(image: GuestImage) -> int:
    """Where the image goes as a program: at its addresses (ET_EXEC), or
    shifted to PIE_BASE (ET_DYN; or, when its addresses do not fit there,
    with its lowest page at PIE_BASE, or at its own addresses)."""
    if not image.pie or not image.segments:
        return 0
    lo = min(page_down(s.vaddr) for s in image.segments)
    for base in (PIE_BASE, PIE_BASE - lo, 0):
        if base >= 0 and _outside(image, base) is None:
            return base
    return PIE_BASE


def _check_exec(image: GuestImage) -> None:
    if image.exec_fault:
        raise ExecFault(f"{image.path}: {image.exec_fault}: killed by SIGSEGV during exec, "
                        "as Linux kills it")


def image_span(image: GuestImage) -> int:
    """Bytes of address space the image's segments cover (from base 0)."""
    _check_exec(image)
    span = page_up(max(s.vaddr + s.memsz for s in image.segments))
    if span > MMAP_TOP // 2:
        raise CannotRun(f"{image.path}: its segments span {span:#x} bytes, more than bttool's "
                        "guest address space holds")
    return span


def map_image(mem: GuestMemory, image: GuestImage, base: int | None = None) -> tuple[int, int]:
    """Map every PT_LOAD segment at ``base`` (default: where the image goes
    as a program) as Linux's elf_load does, segment after segment (a later
    segment replaces the pages of an earlier one): the file pages (whole
    pages of the file, zero past its end within the last page, SIGBUS on
    pages wholly past it) with the segment's protection, the rest of the
    last file page cleared when the segment is writable and has bss, and
    the bss pages past it read-write (executable with PF_X), as vm_brk
    maps them.  Returns (load base, end of the image).  ExecFault where
    Linux kills the program during the exec (including memory it cannot
    commit), CannotRun where the image does not fit in the guest window.
    A constant number of host calls per segment, whatever its size."""
    _check_exec(image)
    if base is None:
        base = load_base(image)
    bad = _outside(image, base, mem.window)
    if bad is not None:
        if not all(_host_commits(n) for n in _commit_sizes(image)):
            raise ExecFault(f"{image.path}: cannot commit the memory of its segments: killed by "
                            "SIGSEGV during exec, as Linux kills it")
        raise CannotRun(f"{image.path}: a PT_LOAD segment at {bad:#x} lies outside bttool's guest "
                        f"address space ({mem.window.low:#x} to {mem.window.end:#x}, the stack "
                        "excluded; a program's fixed addresses may span at most that much)")
    name = os.path.basename(image.path)
    source = _image_file(image.path)
    data = image.data
    eof_page = page_up(len(data))
    try:
        for seg in image.segments:
            va = base + seg.vaddr
            start = page_down(va)
            prot = _prot(seg.flags)
            bss_prot = PROT_READ | PROT_WRITE | (prot & PROT_EXEC)
            if seg.filesz:
                fend = page_up(va + seg.filesz)
                foff = seg.offset - (va - start)    # page aligned (else exec_fault)
                backed = max(0, min(fend - start, eof_page - foff))
                if backed:
                    mem.map_filled(start, backed, data, foff, prot, name=name, source=source, offset=foff)
                if start + backed < fend:
                    _map_past_eof(mem, start + backed, fend - (start + backed), prot, name,
                                  source, foff + backed)
                if seg.memsz > seg.filesz:
                    zs = va + seg.filesz
                    if zs % PAGE and prot & PROT_WRITE and zs < start + backed:
                        mem.write_force(zs, bytes(page_up(zs) - zs))
                    ze = page_up(va + seg.memsz)
                    if ze > fend:
                        mem.map(fend, ze - fend, bss_prot, name=name)
            elif seg.memsz:
                mem.map(start, page_up(va + seg.memsz) - start, bss_prot, name=name)
    except GuestMemoryError as e:
        if e.errno != errno.ENOMEM:
            raise
        raise ExecFault(f"{image.path}: cannot commit the memory of its segments: killed by "
                        "SIGSEGV during exec, as Linux kills it") from None
    image_end = max(page_up(base + s.vaddr + s.memsz) for s in image.segments)
    return base, image_end


def _commit_sizes(image: GuestImage) -> list[int]:
    """The sizes of the mappings Linux charges to the commit limit when it
    maps the image: the writable file pages and the bss pages (vm_brk)."""
    out = []
    for seg in image.segments:
        pgoff = seg.vaddr % PAGE
        fend = page_up(pgoff + seg.filesz) if seg.filesz else 0
        if seg.filesz and seg.flags & PF_W:
            out.append(fend)
        bss = page_up(pgoff + seg.memsz) - fend if seg.memsz > seg.filesz else 0
        if bss > 0:
            out.append(bss)
    return out


def _host_commits(size: int) -> bool:
    """Whether the host kernel commits a private writable mapping of
    ``size`` bytes (what Linux's overcommit policy decides for the guest's
    mapping too); nothing is touched."""
    import mmap
    try:
        m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                      prot=mmap.PROT_READ | mmap.PROT_WRITE)
    except (OSError, OverflowError, ValueError):
        return False
    m.close()
    return True


def _image_file(path: str) -> MappedFile | None:
    """The program's or interpreter's file as /proc/self/maps names the
    mappings of its segments (the kernel's path: symbolic links resolved)."""
    from bttool.runtime import sysroot
    try:
        st = os.stat(path)
    except OSError:
        return None
    return MappedFile(st.st_dev, st.st_ino, sysroot.guest_path(os.path.realpath(path)))


def _map_past_eof(mem: GuestMemory, start: int, length: int, prot: int, name: str,
                  source: MappedFile | None, offset: int) -> None:
    """File pages wholly past the end of the file: mapped from an empty
    file, so that touching them raises SIGBUS (and a system call given
    them fails with EFAULT), as in Linux."""
    fd = os.memfd_create("bttool-past-eof", os.MFD_CLOEXEC)
    try:
        mem.map(start, length, prot, name=name, fd=fd, source=source, offset=offset)
    finally:
        os.close(fd)


def _map_stack(mem: GuestMemory) -> None:
    """The guest's stack: RLIMIT_STACK below the window's stack top (memory.stack_size),
    where Linux lets the stack grow, so a guest recursing as deep as its
    limit allows returns, and one going deeper gets SIGSEGV there; when the
    host refuses that much, the 8 MiB default."""
    size = stack_size()
    try:
        mem.map(mem.stack_top - size, size, PROT_READ | PROT_WRITE, name="[stack]", noreserve=True)
    except GuestMemoryError:
        mem.map(mem.stack_top - STACK_SIZE, STACK_SIZE, PROT_READ | PROT_WRITE, name="[stack]")


ADDR_NO_RANDOMIZE = 0x0040000     # personality flag (setarch -R)
STACK_RANDOM = 8192                # arch_align_stack's range on x86


def stack_randomised() -> bool:
    """Whether Linux would start this exec's stack at a random offset below
    the argument strings (x86's arch_align_stack): unless ASLR is off
    (/proc/sys/kernel/randomize_va_space 0) or bttool runs with
    ADDR_NO_RANDOMIZE (``setarch -R``).  Without it, where rsp starts
    depends only on the sizes of argv and the environment, and a guest's
    speed can too (bench recurse: 1.13 or 1.30 s by the environment's size
    alone, where native runs, randomised, do not vary)."""
    try:
        with open("/proc/sys/kernel/randomize_va_space") as f:
            if f.read().strip() == "0":
                return False
    except OSError:
        pass
    import ctypes
    try:
        persona = ctypes.CDLL(None).personality(0xFFFFFFFF)
    except (OSError, AttributeError):
        return True
    return persona == -1 or not persona & ADDR_NO_RANDOMIZE


def build_stack(mem: GuestMemory, image: GuestImage, base: int, argv: list[bytes],
                envp: list[bytes], execfn: bytes, random16: bytes, interp_base: int = 0,
                shift: int = 0) -> int:
    """Map the stack and lay out argc/argv/envp/auxv; returns the initial rsp.
    ``interp_base`` is where the program's interpreter (ld.so) was mapped
    (AT_BASE), 0 for a static program.  As Linux's create_elf_tables: the
    strings at the top, then ``shift`` bytes (below STACK_RANDOM: the random
    offset of ``stack_randomised``), the platform string and AT_RANDOM's
    bytes, then the vectors."""
    _map_stack(mem)
    top = mem.stack_top - 16  # a little headroom, like the kernel's end marker
    strings = [execfn + b"\0"] + [a + b"\0" for a in argv] + [e + b"\0" for e in envp]
    pos = (top - sum(len(b) for b in strings)) & ~15
    # what Linux maps of the stack at exec: the argument pages and
    # STACK_EXPAND below them (the rest appears as the guest touches it)
    mem.stack_start = page_down(pos) - STACK_EXPAND
    extras = [b"x86_64\0", random16]
    below = ((pos - shift) & ~15) - sum(len(b) for b in extras)
    addrs = []
    for start, blobs in ((pos, strings), (below, extras)):
        cur = start
        for blob in blobs:
            addrs.append(cur)
            mem.write(cur, blob)
            cur += len(blob)
    execfn_addr = addrs[0]
    argv_addrs = addrs[1:1 + len(argv)]
    envp_addrs = addrs[1 + len(argv):1 + len(argv) + len(envp)]
    platform_addr, random_addr = addrs[-2], addrs[-1]

    min_sigstk = fpstate.min_signal_stack(cpuid.model().has("xsave"), cpuid.xcr0())
    auxv = [
        (AT_PHDR, base + image.phdr_vaddr), (AT_PHENT, image.phentsize), (AT_PHNUM, image.phnum),
        (AT_PAGESZ, PAGE), (AT_BASE, interp_base), (AT_FLAGS, 0), (AT_ENTRY, base + image.entry),
        (AT_UID, os.getuid()), (AT_EUID, os.geteuid()), (AT_GID, os.getgid()),
        (AT_EGID, os.getegid()), (AT_PLATFORM, platform_addr), (AT_HWCAP, cpuid.hwcap()),
        (AT_CLKTCK, os.sysconf("SC_CLK_TCK")), (AT_SECURE, 0), (AT_RANDOM, random_addr),
        (AT_HWCAP2, 0), (AT_EXECFN, execfn_addr), (AT_MINSIGSTKSZ, min_sigstk), (AT_NULL, 0),
    ]
    words = [len(argv)] + argv_addrs + [0] + envp_addrs + [0]
    for k, v in auxv:
        words += [k, v & _U64]
    size = len(words) * 8
    sp = (below - size) & ~15
    mem.write(sp, struct.pack(f"<{len(words)}Q", *words))
    return sp

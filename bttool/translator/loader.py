"""Loading guest images: ELF64 x86-64 executables (ET_EXEC, PIE, static or
with an interpreter) and the interpreter itself (an ET_DYN image).

The ELF header and program headers are parsed by hand and validated as
Linux's execve validates them (fs/binfmt_elf.c, load_elf_binary): what
Linux refuses (ENOEXEC, EIO...) is CannotRun, what it accepts runs, and
what makes Linux kill the program during the exec itself (SIGSEGV past the
point of no return: a segment outside the address space, p_filesz >
p_memsz, p_offset not congruent to p_vaddr...) is recorded in
``GuestImage.exec_fault`` for the runtime.  The result, ``GuestImage``, is
plain data.
"""
from __future__ import annotations

import hashlib
import os
import stat
import struct
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

from bttool.errors import CannotRun, NotFound

PF_X, PF_W, PF_R = 1, 2, 4
EM_X86_64 = 62
_MACHINES = {3: "x86 (i386)", 40: "ARM", 183: "AArch64", 243: "RISC-V", 8: "MIPS",
             20: "PowerPC", 21: "PowerPC64", 22: "S/390", 2: "SPARC", 62: "x86-64"}


@dataclass(frozen=True)
class Segment:
    vaddr: int       # relative to the load base for PIE images
    memsz: int
    filesz: int
    offset: int
    flags: int       # PF_R | PF_W | PF_X


@dataclass
class GuestImage:
    path: str
    pie: bool
    entry: int                      # relative to the load base for PIE
    segments: list[Segment]
    phoff: int
    phentsize: int
    phnum: int
    interpreter: str | None
    data: bytes = field(repr=False)
    tls: tuple[int, int, int, int] | None = None   # vaddr, filesz, memsz, align
    # why Linux would kill the program during execve itself (SIGSEGV), or None
    exec_fault: str | None = None

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def info(self) -> dict:
        """Everything but the bytes, as JSON-able data (kept in the cache so
        a warm run needs no ELF parser)."""
        return {"pie": self.pie, "entry": self.entry, "phoff": self.phoff,
                "phentsize": self.phentsize, "phnum": self.phnum, "interpreter": self.interpreter,
                "tls": list(self.tls) if self.tls else None, "exec_fault": self.exec_fault,
                "segments": [[s.vaddr, s.memsz, s.filesz, s.offset, s.flags] for s in self.segments]}

    @classmethod
    def from_info(cls, path: str, data: bytes, info: dict) -> "GuestImage":
        return cls(path=path, pie=info["pie"], entry=info["entry"],
                   segments=[Segment(*s) for s in info["segments"]], phoff=info["phoff"],
                   phentsize=info["phentsize"], phnum=info["phnum"],
                   interpreter=info["interpreter"], data=data,
                   tls=tuple(info["tls"]) if info["tls"] else None,
                   exec_fault=info.get("exec_fault"))

    @property
    def phdr_vaddr(self) -> int:
        """Where the program headers appear in memory (for AT_PHDR): in the
        last PT_LOAD whose file range holds them, as Linux computes it."""
        addr = 0
        for s in self.segments:
            if s.offset <= self.phoff < s.offset + s.filesz:
                addr = (s.vaddr + (self.phoff - s.offset)) & ((1 << 64) - 1)
        return addr


def load_image(path: str, known_info: Callable[[str], dict | None] | None = None,
               as_interpreter: bool = False) -> GuestImage:
    """Read and validate an executable as Linux's execve does
    (fs/binfmt_elf.c); raises NotFound/CannotRun where execve fails.
    Conditions under which Linux accepts the file but kills the program
    during the exec itself (past its point of no return) are recorded in
    ``GuestImage.exec_fault``.  ``as_interpreter``: the image is a
    program's ELF interpreter (its own PT_INTERP is ignored, as Linux
    ignores it).  ``known_info(sha256)`` is told the digest of the image
    (the session remembers which images its cache knows); the headers are
    always parsed here, by hand, which costs microseconds."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except (OSError, ValueError) as e:
        raise CannotRun(f"{path}: {getattr(e, 'strerror', None) or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise CannotRun(f"{path}: is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise CannotRun(f"{path}: not a regular file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CannotRun(f"{path}: {e.strerror}") from None
    image = parse_image(path, data, as_interpreter)
    if known_info is not None:
        known_info(image.sha256)
    return image


# Linux x86-64 (4-level paging): the user address space ends here.
TASK_SIZE = 0x7FFF_FFFF_F000
PAGE = 4096
_U64 = (1 << 64) - 1
PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_TLS = 1, 2, 3, 7
PATH_MAX = 4096
MAX_LFS_FILESIZE = (1 << 63) - 1


def _pagestart(x: int) -> int:
    return x & ~(PAGE - 1) & _U64


def _pagealign(x: int) -> int:
    return (x + PAGE - 1) & ~(PAGE - 1) & _U64


def _check_ident(path: str, data: bytes, check_type: bool = True) -> None:
    """What Linux checks before it reads the program headers (the file is
    no ELF, or not one for x86-64: ENOEXEC).  Linux looks at neither the
    ELF class nor the byte order nor the versions: e_machine and the
    program headers decide."""
    if not data:
        raise CannotRun(f"{path}: empty file, not an executable")
    if data[:2] == b"#!":
        raise CannotRun(f"{path}: a script, not an ELF executable (run its interpreter under bttool)")
    if data[:4] != b"\x7fELF":
        raise CannotRun(f"{path}: not an ELF executable")
    if len(data) < 64:
        raise CannotRun(f"{path}: truncated ELF file ({len(data)} bytes)")
    etype = int.from_bytes(data[16:18], "little")
    machine = int.from_bytes(data[18:20], "little")
    if machine != EM_X86_64:
        if data[4] == 1:
            raise CannotRun(f"{path}: 32-bit ELF is not supported (x86-64 only)")
        if data[5] == 2:
            raise CannotRun(f"{path}: big-endian ELF is not supported")
        name = _MACHINES.get(machine, f"machine {machine}")
        raise CannotRun(f"{path}: ELF for {name}, not x86-64")
    if check_type and etype not in (2, 3):
        raise CannotRun(f"{path}: not an executable (ELF type {etype})")


def _read_phdrs(path: str, data: bytes) -> tuple[int, int, int, list[tuple[int, ...]]]:
    """load_elf_phdrs: e_phentsize must be 56, the table 1..65536 bytes,
    and all of it in the file."""
    phoff = int.from_bytes(data[32:40], "little")
    phentsize = int.from_bytes(data[54:56], "little")
    phnum = int.from_bytes(data[56:58], "little")
    size = phentsize * phnum
    if phentsize != 56 or size == 0 or size > 65536:
        raise CannotRun(f"{path}: corrupt ELF program headers "
                        f"(e_phentsize {phentsize}, e_phnum {phnum})")
    if phoff + size > len(data):
        raise CannotRun(f"{path}: truncated ELF file (program headers past the end of the file)")
    phdrs = [struct.unpack_from("<IIQQQQQQ", data, phoff + 56 * i) for i in range(phnum)]
    return phoff, phentsize, phnum, phdrs


def parse_image(path: str, data: bytes, as_interpreter: bool = False) -> GuestImage:
    """The validated image of ``data`` (see load_image)."""
    # Linux checks an interpreter's magic, machine and program headers
    # before the exec's point of no return (ELIBBAD), its type after it
    _check_ident(path, data, check_type=not as_interpreter)
    etype = int.from_bytes(data[16:18], "little")
    entry = int.from_bytes(data[24:32], "little")
    phoff, phentsize, phnum, phdrs = _read_phdrs(path, data)
    segments: list[Segment] = []
    interp = None
    tls = None
    aligns: list[int] = []
    for p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, p_align in phdrs:
        if p_type == PT_LOAD:
            segments.append(Segment(p_vaddr, p_memsz, p_filesz, p_offset, p_flags))
            aligns.append(p_align)
        elif p_type == PT_INTERP and interp is None and not as_interpreter:
            if p_filesz > PATH_MAX or p_filesz < 2:
                raise CannotRun(f"{path}: bad PT_INTERP segment (size {p_filesz})")
            if p_offset + p_filesz > len(data):
                raise CannotRun(f"{path}: truncated ELF file (PT_INTERP past the end of the file)")
            raw = data[p_offset:p_offset + p_filesz]
            if raw[-1] != 0:
                raise CannotRun(f"{path}: bad PT_INTERP segment (not NUL-terminated)")
            interp = os.fsdecode(raw.split(b"\0", 1)[0])
        elif p_type == PT_TLS and tls is None:
            tls = (p_vaddr, p_filesz, p_memsz, p_align)
    pie = etype == 3
    fault = None
    if etype not in (2, 3):
        fault = f"interpreter of ELF type {etype}"
    elif not segments:
        # Linux maps nothing and jumps to e_entry: the program faults
        fault = "no loadable segments"
    else:
        fault = _exec_fault(segments, pie, len(data))
    return GuestImage(path=path, pie=pie, entry=entry, segments=segments, phoff=phoff,
                      phentsize=phentsize, phnum=phnum, interpreter=interp, data=data, tls=tls,
                      exec_fault=fault)


def _exec_fault(segments: list[Segment], pie: bool, file_size: int) -> str | None:
    """Why Linux would kill the program while mapping these PT_LOAD
    segments (elf_load/elf_map/vm_mmap/vm_brk and the TASK_SIZE checks of
    load_elf_binary and load_elf_interp), or None.  Whether the kernel can
    commit the memory is left to the host mapping (runtime/process.py)."""
    for s in segments:
        if s.vaddr >= TASK_SIZE or s.filesz > s.memsz or s.memsz > TASK_SIZE \
                or TASK_SIZE - s.memsz < s.vaddr:
            return (f"PT_LOAD segment at {s.vaddr:#x} (p_filesz {s.filesz:#x}, p_memsz {s.memsz:#x}) "
                    "outside the user address space")
    lo = min(_pagestart(s.vaddr) for s in segments)
    total = max(s.vaddr + s.memsz for s in segments) - lo
    if pie and total == 0:
        return "empty PT_LOAD segments"
    for i, s in enumerate(segments):
        if not s.filesz:
            continue
        pgoff = s.vaddr & (PAGE - 1)
        if (s.offset - s.vaddr) % PAGE:
            return f"PT_LOAD p_offset {s.offset:#x} and p_vaddr {s.vaddr:#x} differ modulo the page size"
        off = (s.offset - pgoff) & _U64
        size = _pagealign(s.filesz + pgoff)
        if pie and i == 0:
            size = _pagealign(total)
        if off + size > MAX_LFS_FILESIZE:
            return f"PT_LOAD p_offset {s.offset:#x} beyond the largest file offset"
        if s.memsz > s.filesz and s.flags & PF_W and (s.vaddr + s.filesz) % PAGE:
            # padzero: the rest of the last file page is cleared, which
            # faults when that page lies past the end of the file
            if _pagestart(off + pgoff + s.filesz) >= _pagealign(file_size):
                return "PT_LOAD segment's last page past the end of the file"
    return None

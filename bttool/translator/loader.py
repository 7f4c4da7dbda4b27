"""Loading guest images: ELF64 x86-64 executables (ET_EXEC, PIE, static or
with an interpreter) and the interpreter itself (an ET_DYN image).

The file's identity is checked by hand first (cheap, and gives precise
messages for foreign or truncated files); lief then parses the program
headers.  The result, ``GuestImage``, is plain data so later stages (and a
cache) never need lief again.
"""
from __future__ import annotations

import hashlib
import os
import stat
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

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def info(self) -> dict:
        """Everything but the bytes, as JSON-able data (kept in the cache so
        a warm run needs no ELF parser)."""
        return {"pie": self.pie, "entry": self.entry, "phoff": self.phoff,
                "phentsize": self.phentsize, "phnum": self.phnum, "interpreter": self.interpreter,
                "tls": list(self.tls) if self.tls else None,
                "segments": [[s.vaddr, s.memsz, s.filesz, s.offset, s.flags] for s in self.segments]}

    @classmethod
    def from_info(cls, path: str, data: bytes, info: dict) -> "GuestImage":
        return cls(path=path, pie=info["pie"], entry=info["entry"],
                   segments=[Segment(*s) for s in info["segments"]], phoff=info["phoff"],
                   phentsize=info["phentsize"], phnum=info["phnum"],
                   interpreter=info["interpreter"], data=data,
                   tls=tuple(info["tls"]) if info["tls"] else None)

    @property
    def phdr_vaddr(self) -> int:
        """Where the program headers appear in memory (for AT_PHDR)."""
        for s in self.segments:
            if s.offset <= self.phoff < s.offset + s.filesz:
                return s.vaddr + (self.phoff - s.offset)
        return 0


def load_image(path: str, known_info: Callable[[str], dict | None] | None = None) -> GuestImage:
    """Read and validate an executable; raises NotFound/CannotRun.
    ``known_info(sha256)`` may supply a parse remembered from an earlier run
    (see GuestImage.info), which skips lief entirely."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except OSError as e:
        raise CannotRun(f"{path}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise CannotRun(f"{path}: is a directory")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CannotRun(f"{path}: {e.strerror}") from None
    _check_ident(path, data)
    if known_info is not None:
        sha = hashlib.sha256(data).hexdigest()
        info = known_info(sha)
        if info is not None:
            try:
                image = GuestImage.from_info(path, data, info)
                image.__dict__["sha256"] = sha
                return image
            except (KeyError, TypeError, ValueError):
                pass
    return _parse(path, data)


def _check_ident(path: str, data: bytes) -> None:
    if not data:
        raise CannotRun(f"{path}: empty file, not an executable")
    if data[:2] == b"#!":
        raise CannotRun(f"{path}: a script, not an ELF executable (run its interpreter under bttool)")
    if data[:4] != b"\x7fELF":
        raise CannotRun(f"{path}: not an ELF executable")
    if len(data) < 64:
        raise CannotRun(f"{path}: truncated ELF file ({len(data)} bytes)")
    if data[4] != 2:
        raise CannotRun(f"{path}: 32-bit ELF is not supported (x86-64 only)")
    if data[5] != 1:
        raise CannotRun(f"{path}: big-endian ELF is not supported")
    machine = int.from_bytes(data[18:20], "little")
    if machine != EM_X86_64:
        name = _MACHINES.get(machine, f"machine {machine}")
        raise CannotRun(f"{path}: ELF for {name}, not x86-64")
    etype = int.from_bytes(data[16:18], "little")
    if etype not in (2, 3):
        raise CannotRun(f"{path}: not an executable (ELF type {etype})")
    phoff = int.from_bytes(data[32:40], "little")
    phentsize = int.from_bytes(data[54:56], "little")
    phnum = int.from_bytes(data[56:58], "little")
    if phentsize != 56 or phoff + phnum * phentsize > len(data) or phnum == 0:
        raise CannotRun(f"{path}: truncated or corrupt ELF program headers")


def _parse(path: str, data: bytes) -> GuestImage:
    import lief  # slow to import (~1 s): only when an image is really loaded
    lief.logging.disable()
    elf = lief.ELF.parse(path)
    if elf is None:
        raise CannotRun(f"{path}: corrupt ELF file")
    segments: list[Segment] = []
    interp = None
    tls = None
    has_dynamic = False
    for ph in elf.segments:
        t = ph.type
        if t == lief.ELF.Segment.TYPE.LOAD:
            seg = Segment(ph.virtual_address, ph.virtual_size, ph.physical_size,
                          ph.file_offset, int(ph.flags))
            if seg.offset + seg.filesz > len(data):
                raise CannotRun(f"{path}: truncated ELF file (segment past end of file)")
            segments.append(seg)
        elif t == lief.ELF.Segment.TYPE.INTERP:
            interp = bytes(ph.content).split(b"\0")[0].decode(errors="replace")
        elif t == lief.ELF.Segment.TYPE.TLS:
            tls = (ph.virtual_address, ph.physical_size, ph.virtual_size, ph.alignment)
        elif t == lief.ELF.Segment.TYPE.DYNAMIC:
            has_dynamic = True
    if not segments:
        raise CannotRun(f"{path}: no loadable segments")
    pie = elf.header.file_type == lief.ELF.Header.FILE_TYPE.DYN
    if pie and not has_dynamic:
        raise CannotRun(f"{path}: shared object without a dynamic section")
    hdr = elf.header
    return GuestImage(path=path, pie=pie, entry=hdr.entrypoint, segments=segments,
                      phoff=hdr.program_header_offset, phentsize=hdr.program_header_size,
                      phnum=hdr.numberof_segments, interpreter=interp, data=data, tls=tls)

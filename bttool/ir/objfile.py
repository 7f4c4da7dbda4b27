"""Reading the ELF objects that LLVM emits: sections, symbols, relocations.

A few lines of struct parsing (ELF64 little-endian relocatable objects) so
that the runtime loads cached code itself (runtime/objloader.py) and the
cache reports host code sizes and disassembles cached code, without
importing lief or LLVM on any hot path.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

EM_NAMES = {62: "x86_64", 183: "aarch64"}


@dataclass(frozen=True)
class ObjSymbol:
    name: str
    section: int
    value: int
    size: int


class Section(NamedTuple):
    """One section header of an object (the fields a loader needs; names
    are not read: types and flags say what a section is)."""
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    align: int
    entsize: int


class SymbolEntry(NamedTuple):
    """One symbol table entry, undefined ones included."""
    name: str
    info: int       # binding << 4 | type
    section: int    # SHN_UNDEF (0), SHN_ABS (0xfff1) or a section index
    value: int
    size: int


SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS, SHT_X86_64_UNWIND = 1, 2, 3, 4, 8, 0x70000001
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
STB_LOCAL, STB_GLOBAL, STT_FUNC, STT_SECTION = 0, 1, 2, 3
# Relocation types (System V x86-64 psABI) that LLVM's large code model and
# the support object's assembly produce (runtime/objloader.py applies them,
# translator/stitch.py patches stencils with them).
R_X86_64_64, R_X86_64_PC32, R_X86_64_PLT32, R_X86_64_32, R_X86_64_32S, R_X86_64_PC64 = 1, 2, 4, 10, 11, 24


def sections(data: bytes) -> list[Section]:
    """The section headers of an ELF64 little-endian object."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not an ELF64 little-endian object")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    if shentsize != 64 or shoff + 64 * shnum > len(data):
        raise ValueError("truncated or not an ELF64 object (section headers)")
    # (name and address skipped: a warm CPython reads 15,000 objects' headers)
    secs = list(map(Section._make, struct.iter_unpack("<4xIQ8xQQIIQQ", data[shoff:shoff + 64 * shnum])))
    end = len(data)
    for sec in secs:
        if sec.offset + sec.size > end and sec.type != SHT_NOBITS:
            raise ValueError("truncated object (a section runs past its end)")
    return secs


def symbol_table(data: bytes, secs: list[Section]) -> list[SymbolEntry]:
    """Every entry of the object's symbol table, in index order (relocations
    name symbols by that index)."""
    for sec in secs:
        if sec.type == SHT_SYMTAB:
            at = secs[sec.link].offset
            find = data.index
            return [SymbolEntry(data[at + name:find(b"\0", at + name)].decode() if name else "",
                                info, shndx, value, size)
                    for name, info, _other, shndx, value, size
                    in struct.iter_unpack("<IBBHQQ", data[sec.offset:sec.offset + sec.size])]
    return []


def relocations(data: bytes, sec: Section) -> list[tuple[int, int, int, int]]:
    """(offset, symbol index, type, addend) of each entry of a RELA section."""
    return [(off, info >> 32, info & 0xFFFFFFFF, addend)
            for off, info, addend in struct.iter_unpack("<QQq", data[sec.offset:sec.offset + sec.size])]


def machine(data: bytes) -> str:
    return EM_NAMES.get(struct.unpack_from("<H", data, 18)[0], "unknown")


def symbols(data: bytes) -> dict[str, ObjSymbol]:
    """Defined symbols of an ELF64 object, by name."""
    return {sym.name: ObjSymbol(sym.name, sym.section, sym.value, sym.size)
            for sym in symbol_table(data, sections(data)) if sym.section and sym.name}


def symbol_code(data: bytes, sym: ObjSymbol) -> bytes:
    off = sections(data)[sym.section].offset
    return data[off + sym.value: off + sym.value + sym.size]

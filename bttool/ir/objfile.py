"""Reading the ELF objects that LLVM emits: symbols and their code bytes.

A few lines of struct parsing (ELF64 little-endian relocatable objects, as
MCJIT consumes them) so the cache can report host code sizes and disassemble
cached code without importing lief on any hot path.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

EM_NAMES = {62: "x86_64", 183: "aarch64"}


@dataclass(frozen=True)
class ObjSymbol:
    name: str
    section: int
    value: int
    size: int


def _sections(data: bytes) -> list[tuple]:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not an ELF64 little-endian object")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    out = []
    for i in range(shnum):
        name, typ, flags, addr, off, size, link, info, align, entsize = struct.unpack_from(
            "<IIQQQQIIQQ", data, shoff + i * shentsize)
        out.append((name, typ, off, size, link, entsize))
    return out


def machine(data: bytes) -> str:
    return EM_NAMES.get(struct.unpack_from("<H", data, 18)[0], "unknown")


def symbols(data: bytes) -> dict[str, ObjSymbol]:
    """Defined symbols of an ELF64 object, by name."""
    secs = _sections(data)
    out: dict[str, ObjSymbol] = {}
    for name, typ, off, size, link, entsize in secs:
        if typ != 2:  # SHT_SYMTAB
            continue
        str_off = secs[link][2]
        for j in range(size // (entsize or 24)):
            st_name, st_info, st_other, st_shndx, st_value, st_size = struct.unpack_from(
                "<IBBHQQ", data, off + j * 24)
            if st_shndx == 0 or st_name == 0:
                continue
            end = data.index(b"\0", str_off + st_name)
            out[data[str_off + st_name:end].decode()] = ObjSymbol(
                data[str_off + st_name:end].decode(), st_shndx, st_value, st_size)
    return out


def symbol_code(data: bytes, sym: ObjSymbol) -> bytes:
    secs = _sections(data)
    off = secs[sym.section][2]
    return data[off + sym.value: off + sym.value + sym.size]

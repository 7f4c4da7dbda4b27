"""Loading translated code ourselves: a small linker for LLVM's objects.

Every translation is an ELF64 relocatable object that bttool's own code
generator made (ir/codegen.py: x86-64, the large code model, no PIC), so
the objects use a handful of relocation types, almost all of them
R_X86_64_64.  Linking them here instead of through LLVM's MCJIT means a
warm run, whose code all comes from the cache, needs no LLVM in the
process: importing llvmlite's library costs tens of milliseconds and some
45 MB of resident memory in every bttool process.

A batch of objects is laid out in two fresh anonymous mappings: one for
the sections that are not writable (code, read-only data, jump tables),
made read+execute once relocated, and one read+write for the writable and
zero-filled ones (a translation's foreign-base cells, the support object's
tables).  No page is ever writable and executable at once, and after a
fork both processes keep their own copies, as with any private memory.
Unwind tables are not loaded: nothing unwinds through translated code.

An undefined symbol resolves, as the MCJIT resolved it, to a global symbol
of an earlier object or of the same batch (one namespace per Linker, i.e.
per engine), else to one the runtime defined (``add_symbol``, for the whole
process), else to the host's libraries (libgcc's 128-bit division helpers,
libc's setjmp and pthread calls that the support code makes).
"""
from __future__ import annotations

import ctypes
import mmap
import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from bttool.ir import objfile
from bttool.ir.objfile import (R_X86_64_32, R_X86_64_32S, R_X86_64_64, R_X86_64_PC32, R_X86_64_PC64,
                               R_X86_64_PLT32, SHF_ALLOC, SHF_WRITE, SHT_NOBITS, SHT_RELA,
                               SHT_X86_64_UNWIND, STB_LOCAL)

SHN_ABS, SHN_COMMON = 0xFFF1, 0xFFF2
_PAGE = mmap.PAGESIZE
_STUB = 16        # jmp *0(%rip); .quad target  (6 + 8 bytes, 16-aligned)
_M64 = (1 << 64) - 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


class ObjectLoadError(Exception):
    """An object this loader cannot link (a relocation or symbol it does
    not know): a bug of bttool's code generator, never of the guest."""


class LoadedSymbol(NamedTuple):
    """A global symbol a batch defined (a named tuple: a warm CPython loads
    15,000 objects at start)."""
    name: str
    address: int
    size: int
    function: bool


def _align(n: int, a: int) -> int:
    return (n + a - 1) & -a if a > 1 else n


def _host_symbol(name: str) -> int | None:
    """A symbol of the host's libraries (libgcc_s by its soname for the
    128-bit division helpers LLVM may call, else the process's libc)."""
    for lib in _host_libraries():
        try:
            return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
        except AttributeError:
            continue
    return None


_libs: list[ctypes.CDLL] | None = None


def _host_libraries() -> list[ctypes.CDLL]:
    global _libs
    if _libs is None:
        _libs = [_libc]
        try:
            _libs.insert(0, ctypes.CDLL("libgcc_s.so.1"))
        except OSError:
            pass
    return _libs


_runtime_symbols: dict[str, int] = {}


def add_symbol(name: str, address: int) -> None:
    """Make ``name`` resolve to ``address`` in every object loaded from now
    on (the runtime's callbacks, e.g. system mode's bt_mmu_fill)."""
    _runtime_symbols[name] = address


@dataclass
class _Placed:
    """One object of a batch: its parsed tables and where its sections went."""
    data: bytes
    secs: list[objfile.Section]
    syms: list[objfile.SymbolEntry]
    # (index of the section they apply to, its entries), per RELA section
    relas: list[tuple[int, list[tuple[int, int, int, int]]]]
    base: dict[int, int] = field(default_factory=dict)   # section index -> address (loaded ones)
    stubs: int = 0                # stub slots reserved for it in the code mapping


class Linker:
    """The process's loaded translated code and its symbol namespace."""

    def __init__(self) -> None:
        self._symbols: dict[str, int] = {}
        self._maps: list[mmap.mmap] = []     # kept alive: the code lives in them

    def address(self, name: str) -> int | None:
        return self._symbols.get(name)

    def load(self, datas: list[bytes]) -> list[LoadedSymbol]:
        """Link and load a batch of objects (they may refer to each other);
        returns the global symbols they define."""
        placed, code_size, data_size = [], 0, 0
        layout: list[tuple[_Placed, int, bool, int]] = []   # (object, section, writable, offset)
        for data in datas:
            try:
                if data[16:20] != b"\x01\x00\x3e\x00":     # ET_REL, EM_X86_64
                    raise ObjectLoadError("not an x86-64 relocatable object")
                secs = objfile.sections(data)
                p = _Placed(data, secs, objfile.symbol_table(data, secs),
                            [(sec.info, objfile.relocations(data, sec)) for sec in secs
                             if sec.type == SHT_RELA and sec.size])
                p.stubs = sum(1 for _i, entries in p.relas for _o, sym, typ, _a in entries
                              if typ in (R_X86_64_PC32, R_X86_64_PLT32) and p.syms[sym].section == 0)
            except (ValueError, IndexError, struct.error) as e:
                raise ObjectLoadError(f"not a readable object ({e})") from None
            for i, sec in enumerate(secs):
                if not sec.flags & SHF_ALLOC or not sec.size or sec.type == SHT_X86_64_UNWIND:
                    continue
                if sec.flags & SHF_WRITE:
                    data_size = _align(data_size, sec.align or 1)
                    layout.append((p, i, True, data_size))
                    data_size += sec.size
                else:
                    code_size = _align(code_size, sec.align or 1)
                    layout.append((p, i, False, code_size))
                    code_size += sec.size
            placed.append(p)
        stub_at = code_size = _align(code_size, _STUB)
        code_size += _STUB * sum(p.stubs for p in placed)
        code, code_addr = self._map(code_size)
        data_map, data_addr = self._map(data_size)
        for p, i, writable, off in layout:
            sec = p.secs[i]
            p.base[i] = (data_addr if writable else code_addr) + off
            if sec.type != SHT_NOBITS:
                (data_map if writable else code)[off:off + sec.size] = p.data[sec.offset:sec.offset + sec.size]
        defined: list[LoadedSymbol] = []
        for p in placed:
            for sym in p.syms:
                if sym.info >> 4 != STB_LOCAL and sym.section and sym.name:
                    addr = self._value(p, sym)
                    self._symbols.setdefault(sym.name, addr)
                    defined.append(LoadedSymbol(sym.name, addr, sym.size, sym.info & 0xF == 2))
        for p in placed:
            stub_at = self._relocate(p, code, code_addr, stub_at)
        if code_size:
            self._protect(code_addr, code_size, mmap.PROT_READ | mmap.PROT_EXEC)
        return defined

    def _map(self, size: int) -> tuple[mmap.mmap | None, int]:
        if not size:
            return None, 0
        # private: Python's anonymous mmap is shared by default, and a forked
        # guest process must not see its parent's tables change (or the reverse)
        m = mmap.mmap(-1, _align(size, _PAGE), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                      prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self._maps.append(m)
        return m, ctypes.addressof(ctypes.c_char.from_buffer(m))

    @staticmethod
    def _protect(addr: int, size: int, prot: int) -> None:
        if _libc.mprotect(addr, _align(size, _PAGE), prot) != 0:
            raise OSError(ctypes.get_errno(), "mprotect of loaded code failed")

    def _value(self, p: _Placed, sym: objfile.SymbolEntry) -> int:
        if sym.section == SHN_ABS:
            return sym.value
        if sym.section == SHN_COMMON or sym.section not in p.base:
            raise ObjectLoadError(f"symbol {sym.name or '?'} lies in a section that is not loaded")
        return p.base[sym.section] + sym.value

    def _resolve(self, p: _Placed, index: int) -> int:
        sym = p.syms[index]
        if sym.section:
            return self._value(p, sym)
        addr = self._symbols.get(sym.name)
        if addr is None:
            addr = _runtime_symbols.get(sym.name)
        if addr is None:
            addr = _host_symbol(sym.name)
        if addr is None:
            raise ObjectLoadError(f"undefined symbol {sym.name}")
        return addr

    def _relocate(self, p: _Placed, code: mmap.mmap, code_addr: int, stub_at: int) -> int:
        """Apply ``p``'s relocations (written through the mappings before
        the code becomes executable); ``stub_at``: the offset of the next
        free stub slot in the code mapping, returned updated.  Each symbol
        is resolved once, and the common case (R_X86_64_64 into code, how
        the large code model addresses its constants) is written inline: a
        warm CPython applies 135,000 relocations at start."""
        resolved: dict[int, int] = {}
        pack_into = struct.pack_into
        for applies_to, entries in p.relas:
            if applies_to not in p.base:
                continue            # an unloaded section's (.eh_frame)
            place0 = p.base[applies_to]
            buf = code if not p.secs[applies_to].flags & SHF_WRITE else None
            for off, index, typ, addend in entries:
                s = resolved.get(index)
                if s is None:
                    s = resolved[index] = self._resolve(p, index)
                place = place0 + off
                if typ == R_X86_64_64:
                    if buf is not None:
                        pack_into("<Q", buf, place - code_addr, (s + addend) & _M64)
                    else:
                        self._put(None, place, code_addr, "<Q", (s + addend) & _M64)
                elif typ == R_X86_64_PC64:
                    self._put(buf, place, code_addr, "<Q", (s + addend - place) & _M64)
                elif typ in (R_X86_64_PC32, R_X86_64_PLT32):
                    v = s + addend - place
                    if not -2**31 <= v < 2**31 and p.syms[index].section == 0:
                        # a far host function: through a stub beside the code
                        struct.pack_into("<6sQ", code, stub_at, b"\xff\x25\0\0\0\0", s)
                        s, stub_at = code_addr + stub_at, stub_at + _STUB
                        v = s + addend - place
                    if not -2**31 <= v < 2**31:
                        raise ObjectLoadError(f"32-bit pc-relative relocation out of range ({p.syms[index].name})")
                    self._put(buf, place, code_addr, "<i", v)
                elif typ in (R_X86_64_32, R_X86_64_32S):
                    v = s + addend
                    if not (0 <= v < 2**32 if typ == R_X86_64_32 else -2**31 <= v < 2**31):
                        raise ObjectLoadError(f"32-bit absolute relocation out of range ({p.syms[index].name})")
                    self._put(buf, place, code_addr, "<I" if typ == R_X86_64_32 else "<i", v)
                else:
                    raise ObjectLoadError(f"relocation type {typ} is not supported")
        return stub_at

    @staticmethod
    def _put(code: mmap.mmap | None, place: int, code_addr: int, fmt: str, value: int) -> None:
        """Write a relocated value: through the code mapping (not yet
        executable) or straight into writable data."""
        if code is not None:
            struct.pack_into(fmt, code, place - code_addr, value)
        else:
            packed = struct.pack(fmt, value)
            ctypes.memmove(place, packed, len(packed))

"""Stencils: machine code for one guest instruction, compiled once by LLVM
and then copied and patched for every instruction that shares its form
(copy-and-patch, Xu and Kjolstad, OOPSLA 2021; CPython 3.13's JIT).

A stencil is an ordinary translated function of one instruction
(ir/emitter.py's ``stencil`` mode) that leaves two kinds of things open:

* *holes*: i64 values that differ from one instance to the next (a guest
  address's offset from the instruction, a profiling slot).  In the IR a
  hole is ``ptrtoint (ptr @bt_hole_N to i64)``; the code generator turns
  each use into a relocation against ``bt_hole_N``, and the stitcher
  writes the instance's value there.
* *register holes*: for an instruction whose explicit registers are
  abstracted (translator/stitch.py ``abstract_form``), each such register
  is a virtual state field (``VIRTUAL_PREFIX`` and its number) whose offset
  in the state is a hole, so one stencil serves ``add rax, rbx`` and
  ``add rsi, r9``; likewise a memory operand's displacement (of at most
  ``DISPLACEMENT_BOUND`` either way) can be a hole.
* *continuations*: where control goes on after the instruction, one per
  static target (``musttail call @bt_cont_K``).  The stitcher points each
  at the next stencil of the region or at a return to ``bt_run``; when the
  next stencil follows directly, the final ``movabs; jmp`` is cut off.

Stencils are compiled in batches (one LLVM module, one object); this
module takes each function's bytes and relocations out of that object
(``extract``) and writes the stitched region as an ELF relocatable object
of its own (``write_object``) that runtime/objloader.py loads like any
other translation, so the cache and the loader need nothing new.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from llvmlite import ir

from bttool.ir import objfile, unitabi
from bttool.ir.memory import bounded_displacement
from bttool.ir.state import FIELDS
from bttool.ir.objfile import (R_X86_64_32, R_X86_64_32S, R_X86_64_64, SHF_ALLOC, SHF_EXECINSTR,
                               SHF_WRITE, SHT_PROGBITS, SHT_RELA, SHT_STRTAB, SHT_SYMTAB, STB_GLOBAL,
                               STT_FUNC, STT_SECTION)

HOLE_PREFIX = "bt_hole_"
CONT_PREFIX = "bt_cont_"
_I8, _I64, _PTR, _VOID = ir.IntType(8), ir.IntType(64), ir.PointerType(), ir.VoidType()


VIRTUAL_PREFIX = "vr"
# the largest displacement a stencil takes as a hole (either way): far
# below the clamp's guard, so the hole is added after the clamp
# (ir/memory.bounded_displacement)
DISPLACEMENT_BOUND = 1 << 24


# the first line of a stitched region's listing, which the cache keeps
# where a compiled region's LLVM IR is (`bttool cache show --section ir`)
STITCHED_HEADER = "; stitched from stencils (tier 1 by copy and patch): no LLVM module made this code"


def is_stitched_listing(text: str) -> bool:
    return text.startswith(STITCHED_HEADER)


def virtual_register(k: int) -> str:
    """The state-field name of a stencil's k-th abstracted register."""
    return f"{VIRTUAL_PREFIX}{k}"


def is_virtual(field_name: str) -> bool:
    return field_name.startswith(VIRTUAL_PREFIX)


class StencilPorts:
    """What one stencil leaves open, recorded while it is lifted: its holes
    (kind and the value the lifted instance has) and the guest target of
    each continuation (for the lifted instance).

    ``renames``: the instance's abstracted registers (state field -> virtual
    field), which operand accesses go through (translator/operands.py);
    ``fixed``: the general registers the stencil accesses by name all the
    same (implicit operands such as mul's rdx:rax).  An instance whose
    abstracted registers include one of those cannot use the stencil: two
    names for one register would each keep their own copy.
    ``displacement``: the instance's memory displacement when it is a hole
    (added to the address of the memory operand with registers, 0
    included), else None; ``immediate`` likewise its immediate operand's
    value (for the instructions that only ever read it as a value)."""

    def __init__(self, module: ir.Module, renames: dict[str, str] | None = None,
                 displacement: int | None = None, immediate: int | None = None) -> None:
        self.module = module
        self.holes: list[tuple[str, int]] = []
        self.conts: list[int] = []
        self.renames = dict(renames or {})
        self.fixed: set[str] = set()
        self.displacement = displacement
        self.immediate = immediate

    def hole(self, kind: str, value: int) -> ir.Constant:
        """A new hole: an i64 the stitcher fills per instance.  ``kind``
        says how (translator/stitch.py); ``value`` is this instance's."""
        name = f"{HOLE_PREFIX}{len(self.holes)}"
        self.holes.append((kind, value))
        g = self.module.globals.get(name)
        if g is None:
            g = ir.GlobalVariable(self.module, _I8, name)
        return g.ptrtoint(_I64)

    def register_hole(self, virtual: str) -> ir.Constant:
        """The state offset of abstracted register ``virtual`` as a hole
        whose kind is that name (the stitcher fills it with the offset of
        the instance's register for that placeholder)."""
        real = next(r for r, v in self.renames.items() if v == virtual)
        return self.hole(virtual, FIELDS[real].offset)

    def displacement_hole(self) -> ir.Constant:
        """The memory displacement as a hole, bounded for the clamp."""
        return bounded_displacement(self.hole("disp", self.displacement), DISPLACEMENT_BOUND)

    def immediate_hole(self) -> ir.Constant:
        """The immediate operand as a hole (i64, sign-extended)."""
        return self.hole("imm", self.immediate)

    def continuation(self, k: int) -> ir.Function:
        name = f"{CONT_PREFIX}{k}"
        fn = self.module.globals.get(name)
        if fn is None:
            fn = unitabi.unit_function(self.module, name)
        return fn


# What a relocation of a stencil refers to.
HOLE, CONT, DATA, SELF, SYMBOL = "hole", "cont", "data", "self", "sym"


@dataclass
class StencilCode:
    """One stencil's machine code: ``code`` with relocations (offset, ELF
    type, (what, index or name), addend), and the read-only data it refers
    to (constant pools, jump tables) with relocations of its own."""
    code: bytes
    relocs: list[tuple[int, int, tuple[str, object], int]]
    data: bytes = b""
    data_relocs: list[tuple[int, int, tuple[str, object], int]] = field(default_factory=list)
    # set when the code ends in ``movabs reg, cont K; jmp reg``: (where
    # those bytes start, K); a next stencil laid out right there makes them
    # needless
    tail_cont: tuple[int, int] | None = None
    # the alignment ``data`` must start at: its sections' largest (a
    # 32-byte constant that vmovaps loads must lie on 32 bytes)
    data_align: int = 1


class StencilError(Exception):
    """A stencil whose object uses something the stitcher cannot place."""


def _classify(name: str, sec_index: int) -> tuple[str, object] | None:
    if name.startswith(HOLE_PREFIX) and sec_index == 0:
        return HOLE, int(name[len(HOLE_PREFIX):])
    if name.startswith(CONT_PREFIX) and sec_index == 0:
        return CONT, int(name[len(CONT_PREFIX):])
    if sec_index == 0:
        return SYMBOL, name
    return None


def extract(obj: bytes, names: list[str]) -> dict[str, StencilCode | StencilError]:
    """Each named function's stencil out of a compiled object (or the
    reason it cannot be one)."""
    secs = objfile.sections(obj)
    syms = objfile.symbol_table(obj, secs)
    by_name = {s.name: s for s in syms if s.name and s.section}
    relas = {sec.info: objfile.relocations(obj, sec) for sec in secs if sec.type == SHT_RELA and sec.size}
    out: dict[str, StencilCode | StencilError] = {}
    for name in names:
        sym = by_name.get(name)
        if sym is None:
            out[name] = StencilError(f"{name} is not in the object")
            continue
        try:
            out[name] = _one(obj, secs, syms, relas, sym)
        except StencilError as e:
            out[name] = e
    return out


def _one(obj, secs, syms, relas, sym) -> StencilCode:
    text = secs[sym.section]
    lo, hi = sym.value, sym.value + sym.size
    code = obj[text.offset + lo:text.offset + hi]
    data = bytearray()
    align = 1
    placed: dict[int, int] = {}        # data section index -> offset in data
    relocs, data_relocs = [], []

    def target(index: int, addend: int, in_data: bool) -> tuple[tuple[str, object], int]:
        s = syms[index]
        what = _classify(s.name, s.section)
        if what is not None:
            return what, addend
        if s.section == sym.section:          # the stencil's own code (jump tables)
            off = s.value + addend
            if not lo <= off < hi:
                raise StencilError("a reference to code outside the stencil")
            return (SELF, None), off - lo
        sec = secs[s.section] if s.section < len(secs) else None
        if sec is None or not sec.flags & SHF_ALLOC or sec.flags & SHF_WRITE:
            raise StencilError("a reference to writable or unknown data")
        if in_data:
            raise StencilError("read-only data that refers to other data")
        if s.section not in placed:
            nonlocal align
            align = max(align, sec.align)
            while len(data) % max(sec.align, 1):
                data.append(0)
            placed[s.section] = len(data)
            data.extend(obj[sec.offset:sec.offset + sec.size])
            for off, i, typ, a in relas.get(s.section, []):
                data_relocs.append((placed[s.section] + off, typ, *target(i, a, True)))
        return (DATA, None), placed[s.section] + s.value + addend

    for off, index, typ, addend in relas.get(sym.section, []):
        if lo <= off < hi:
            what, a = target(index, addend, False)
            _check_placeable(what[0], typ)
            relocs.append((off - lo, typ, what, a))
    for _off, typ, what, _a in data_relocs:
        if what[0] not in (SELF, SYMBOL):
            raise StencilError(f"read-only data that refers to a {what[0]}")
    tail = None
    end = len(code)
    for off, typ, what, a in relocs:
        # movabs r64, imm64 (REX.W B8+r) then jmp r64 (FF E0+r, with REX.B
        # for r8-r15) as the stencil's last bytes
        if what[0] == CONT and typ == R_X86_64_64 and a == 0 and off >= 2 and code[off - 2] in (0x48, 0x49) \
                and 0xB8 <= code[off - 1] <= 0xBF:
            reg = (code[off - 1] - 0xB8) | (8 if code[off - 2] == 0x49 else 0)
            jmp = bytes([0xFF, 0xE0 | (reg & 7)]) if reg < 8 else bytes([0x41, 0xFF, 0xE0 | (reg & 7)])
            if code[off + 8:] == jmp and off + 8 + len(jmp) == end:
                tail = (off - 2, what[1])
    return StencilCode(code, relocs, bytes(data), data_relocs, tail, align)


def _check_placeable(what: str, typ: int) -> None:
    """The stitcher writes a hole's value into the code (64 bits, or 32 when
    it fits), and makes a reference to a continuation, to the stencil's own
    code or to its data a 64-bit relocation against the stitched section;
    external symbols keep whatever relocation the code generator chose."""
    ok = {HOLE: (R_X86_64_64, R_X86_64_32, R_X86_64_32S), SYMBOL: None}.get(what, (R_X86_64_64,))
    if ok is not None and typ not in ok:
        raise StencilError(f"relocation type {typ} against a {what}")


# -- the stitched region as an ELF relocatable object ------------------------


def write_object(code: bytes, symbol: str, relocs: list[tuple[int, int, str | None, int]],
                 align: int = 16, entry: int = 0) -> bytes:
    """An x86-64 ELF relocatable object with one code section holding
    ``code`` and one global function ``symbol`` at offset ``entry`` in it,
    loaded at a multiple of ``align``.  ``relocs``: (offset, type, symbol
    name or None for the section itself, addend)."""
    externals = sorted({name for _o, _t, name, _a in relocs if name is not None})
    strtab = bytearray(b"\0")

    def add_str(s: str) -> int:
        at = len(strtab)
        strtab.extend(s.encode() + b"\0")
        return at
    # symbols: null, the section, the function, then undefined externals
    symtab = bytearray(24)
    symtab += struct.pack("<IBBHQQ", 0, STT_SECTION, 0, 1, 0, 0)
    symtab += struct.pack("<IBBHQQ", add_str(symbol), STB_GLOBAL << 4 | STT_FUNC, 0, 1, entry,
                          len(code) - entry)
    index = {}
    for n, name in enumerate(externals):
        index[name] = 3 + n
        symtab += struct.pack("<IBBHQQ", add_str(name), STB_GLOBAL << 4, 0, 0, 0, 0)
    rela = b"".join(struct.pack("<QQq", off, (1 if name is None else index[name]) << 32 | typ, a)
                    for off, typ, name, a in relocs)
    shstr = b"\0.text\0.rela.text\0.symtab\0.strtab\0.shstrtab\0"
    parts = [bytes(code), rela, bytes(symtab), bytes(strtab), shstr]
    offsets, at = [], 64
    for p in parts:
        at = (at + 15) & ~15
        offsets.append(at)
        at += len(p)
    shoff = (at + 7) & ~7
    out = bytearray(shoff + 64 * 6)
    out[0:64] = struct.pack("<4sBBBBB7xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, 1, 62, 1, 0, 0,
                            shoff, 0, 64, 0, 0, 64, 6, 5)
    for p, o in zip(parts, offsets):
        out[o:o + len(p)] = p
    headers = [
        (0, 0, 0, 0, 0, 0, 0, 0, 0),
        (1, SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, offsets[0], len(code), 0, 0, align, 0),
        (7, SHT_RELA, 0, offsets[1], len(rela), 3, 1, 8, 24),
        (18, SHT_SYMTAB, 0, offsets[2], len(symtab), 4, 2, 8, 24),
        (26, SHT_STRTAB, 0, offsets[3], len(strtab), 0, 0, 1, 0),
        (34, SHT_STRTAB, 0, offsets[4], len(shstr), 0, 0, 1, 0),
    ]
    for n, (name, typ, flags, off, size, link, info, align, entsize) in enumerate(headers):
        struct.pack_into("<IIQQQQIIQQ", out, shoff + 64 * n, name, typ, flags, 0, off, size, link, info,
                         align, entsize)
    return bytes(out)


def emit_counter_stencil(module: ir.Module, name: str, ports: StencilPorts, poll: bool) -> None:
    """The stencil a stitched region begins with (and, with ``poll``, one
    before each loop head): count this run of the code at rip (hole 0: its
    counter's offset, tables.counter_slot) and return with EXIT_HOT past the
    threshold, as compiled tier-1 code does; with ``poll``, return with
    EXIT_IRQ when a caught signal is pending (a loop must not spin past
    it); else go on.  rip is the code's pc throughout."""
    from bttool.ir import state, tables
    i32 = ir.IntType(32)
    fn = unitabi.unit_function(module, name)
    st, mem = unitabi.unit_params(fn)
    b = ir.IRBuilder(fn.append_basic_block("entry"))

    def field(n: str) -> ir.Value:
        return b.gep(st, [ir.Constant(_I64, state.offset(n))], inbounds=True, source_etype=_I8)

    def leave(reason: int) -> None:
        b.store(ir.Constant(i32, reason), field("exit_reason"))
        b.ret_void()
    tables.emit_hot_check(b, st, 0, lambda: leave(state.EXIT_HOT), ports.hole("counter_slot", 0),
                          tables.STITCHED_HOT_THRESHOLD)
    if poll:
        pending = b.load_atomic(field("irq_pending"), "monotonic", 4, typ=i32)
        with b.if_then(b.icmp_unsigned("!=", pending, ir.Constant(i32, 0)), likely=False):
            leave(state.EXIT_IRQ)
    unitabi.tail_call_unit(b, ports.continuation(0), st, mem)

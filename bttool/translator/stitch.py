"""Tier 1 by copy and patch: a region is stitched together from stencils,
one per guest instruction (ir/stencil.py), instead of being compiled.

A stencil is what the lifter makes of one instruction on its own, entered
with rip at that instruction: it loads the registers it reads from the
state, stores what it writes and rip (the next instruction's), and goes on
through a continuation.  Its code depends on the instruction's bytes, not
on where the instruction lies: every guest address it uses is rip plus a
hole.  So instructions with the same bytes, apart from their branch
displacement or rip-relative displacement, share one stencil, and a
region costs a decode, a dictionary lookup and a copy per instruction once
its stencils exist.

The stitched code is slower than a compiled region (every instruction goes
through the state in memory, and computes every flag it writes), which is
what tier 1 is for: code that has run ``HOT_THRESHOLD`` times is compiled
by LLVM at tier 2 (the region's first stencil counts its entries, and one
before each loop head counts and polls for signals, as compiled tier-1
code does).  State in memory at every instruction boundary also makes
every fault precise: rip is exact when any instruction faults.

How a hole's value is found for another instance: when the stencil is
lifted, each hole and continuation records its value for the instance
lifted; the value is matched against what it can be for any instruction
(its length, its branch target, its rip-relative address, each minus its
address).  A value that matches exactly one of those is filled in that way
for every instance; one that matches none or several pins the stencil to
the one address it was lifted at.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Sequence

from capstone import CsInsn, x86_const as X
from llvmlite import ir

from bttool.ir import codegen, tables
from bttool.ir.emitter import FunctionEmitter
from bttool.ir.objfile import R_X86_64_32, R_X86_64_32S, R_X86_64_64
from bttool.ir.stencil import (CONT, DATA, HOLE, SELF, StencilCode, StencilError, StencilPorts,
                               emit_counter_stencil, extract, write_object)
from bttool.translator import flaglive
from bttool.translator.blocks import DIRECT, Block, Region
from bttool.translator.lifter import LiftResult, lift_block, uses_ymm
from bttool.translator.options import LiftOptions

_M64 = (1 << 64) - 1


def _branch_target(insn) -> int | None:
    """The target of a direct jump or call (capstone gives it absolute)."""
    ops = insn.operands
    return ops[0].imm if insn.id in DIRECT and ops and ops[0].type == X.X86_OP_IMM else None


def _rip_disp(insn) -> int | None:
    """The displacement of a rip-relative memory operand, if any."""
    return next((op.mem.disp for op in insn.operands
                 if op.type == X.X86_OP_MEM and op.mem.base == X.X86_REG_RIP), None)


def _features(insn) -> dict[str, int]:
    """What an instance's holes can be, each relative to its address."""
    f = {"here": 0, "next": insn.size}
    if isinstance(insn, CsInsn):
        target, disp = _branch_target(insn), _rip_disp(insn)
        if target is not None:
            f["target"] = target - insn.address
        if disp is not None:
            f["riprel"] = insn.size + disp
    return f


def stencil_key(insn) -> bytes:
    """The instruction's bytes with its branch or rip-relative displacement
    left out (the parts that holes carry)."""
    raw = bytearray(insn.bytes)
    if isinstance(insn, CsInsn):
        if _branch_target(insn) is not None and insn.imm_size:
            raw[insn.imm_offset:insn.imm_offset + insn.imm_size] = bytes(insn.imm_size)
        if _rip_disp(insn) is not None and insn.disp_size:
            raw[insn.disp_offset:insn.disp_offset + insn.disp_size] = bytes(insn.disp_size)
    return bytes(raw)


@dataclass
class Stencil:
    code: StencilCode
    holes: list[str]        # per hole: a feature name, "slot", "=value" (pinned) or "counter"
    conts: list[str]        # per continuation: a feature name or "=delta" (pinned)
    pinned: bool


def _pinned_key(insn) -> tuple[int, bytes]:
    """The key of a stencil that holds only for this instruction at this
    address: the address and its whole bytes."""
    return insn.address, bytes(insn.bytes)


def _resolve(value: int, feats: dict[str, int]) -> str | None:
    names = [n for n, v in feats.items() if v & _M64 == value & _M64]
    return names[0] if len(names) == 1 else None


def _to_record(st: Stencil | None) -> tuple | None:
    """A stencil as plain data (runtime/stencilstore.py marshals it)."""
    if st is None:
        return None
    c = st.code
    return (c.code, c.relocs, c.data, c.data_relocs, c.tail_cont, st.holes, st.conts, st.pinned)


def _from_record(rec) -> Stencil | None:
    if rec is None:
        return None
    code, relocs, data, data_relocs, tail, holes, conts, pinned = rec
    return Stencil(StencilCode(code, [(o, t, tuple(w), a) for o, t, w, a in relocs], data,
                               [(o, t, tuple(w), a) for o, t, w, a in data_relocs],
                               tuple(tail) if tail is not None else None),
                   list(holes), list(conts), pinned)


def _counter_key(poll: bool) -> tuple[str, bool]:
    """The key of a counter stencil (no instruction's key is a str pair)."""
    return "counter", poll


class StencilLibrary:
    """The stencils of one run, for one kind of code (lift options and
    target), by key.  A key maps to a Stencil, or to None when the
    instruction cannot be a stencil (its region is compiled instead)."""

    def __init__(self, options: LiftOptions, target: codegen.Target,
                 host_features: frozenset[str] = frozenset(), store=None) -> None:
        """``store``: where stencils are kept between runs
        (runtime/stencilstore.StencilFile: ``load`` and ``append`` of
        (key, record) pairs), or None."""
        self.options = options
        self.target = target
        self.host_features = host_features
        self.stencils: dict[bytes | tuple, Stencil | None] = {}
        self.store = store
        if store is not None:
            for k, rec in store.load():
                self.stencils[k if isinstance(k, bytes) else tuple(k)] = _from_record(rec)

    def _key(self, raw: bytes, insn) -> bytes | tuple[int, bytes]:
        """The key a stencil for these (masked) bytes is kept under: the
        masked bytes, or (when the stencil lifted for them is pinned) the
        instruction's own bytes and address."""
        st = self.stencils.get(raw)
        if st is not None and st.pinned:
            return _pinned_key(insn)
        return raw

    def stencils_for(self, insns: Sequence) -> list[Stencil | None]:
        """The stencil of each instruction, compiling (in one module) those
        not made yet."""
        raws = [stencil_key(i) for i in insns]
        todo: dict[bytes | tuple[int, bytes], object] = {}
        for raw, insn in zip(raws, insns):
            if raw not in self.stencils:
                todo.setdefault(raw, insn)
            elif self.stencils[raw] is not None and self.stencils[raw].pinned:
                pk = _pinned_key(insn)
                if pk not in self.stencils:
                    todo.setdefault(pk, insn)
        if todo:
            self._compile(todo)
        return [self.stencils.get(self._key(raw, i)) for raw, i in zip(raws, insns)]

    def _compile(self, todo: dict) -> None:
        module = ir.Module(name="stencils")
        lifted = []
        for n, (k, insn) in enumerate(todo.items()):
            ports = StencilPorts(module)
            name = f"st_{n}"
            try:
                result = self._lift(module, name, insn, ports)
            except Exception:       # noqa: BLE001 -- any lifting failure: compile the region
                self.stencils[k] = None
                continue
            lifted.append((k, insn, name, ports, result))
        if not lifted:
            return
        obj, _ = codegen.compile_module(str(module), self.target)
        codes = extract(obj, [name for _k, _i, name, _p, _r in lifted])
        made = [k for k, *_ in lifted]
        for k, insn, name, ports, result in lifted:
            code = codes[name]
            if isinstance(code, StencilError) or result.untranslatable:
                self.stencils[k] = None
                continue
            feats = _features(insn)
            holes = ["slot" if kind == "target_slot" else _resolve(v, feats) for kind, v in ports.holes]
            conts = [_resolve(pc - insn.address, feats) for pc in ports.conts]
            pinned = None in holes or None in conts
            if pinned:
                holes = ["slot" if kind == "target_slot" else f"={v}" for kind, v in ports.holes]
                conts = [f"={pc - insn.address}" for pc in ports.conts]
                if k == stencil_key(insn):        # first met unpinned: mark it
                    self.stencils[k] = Stencil(code, holes, conts, True)
                    k = _pinned_key(insn)
                    made.append(k)
            self.stencils[k] = Stencil(code, holes, conts, pinned)
        self._keep(made)

    def _keep(self, keys: list) -> None:
        if self.store is not None:
            self.store.append([(k, _to_record(self.stencils.get(k))) for k in keys])

    def _lift(self, module: ir.Module, name: str, insn, ports: StencilPorts) -> LiftResult:
        o = self.options
        block = Block(insn.address, [insn])
        em = FunctionEmitter(module, name, insn.address, True, system=False, entry_pc=insn.address,
                             precise_faults=o.precise_faults, host_features=self.host_features,
                             clamp=o.clamp,
                             whole_ymm=uses_ymm([insn], o.mode),
                             stencil=ports)
        result = LiftResult(module, {})
        body = em.new_block("g")
        em.b.branch(body)
        em.b.position_at_end(body)
        lift_block(em, block, o, result, flaglive.NONE)
        em.seal_open_blocks()
        em.finish()
        return result

    def counter(self, poll: bool) -> StencilCode:
        """The stencil that counts a region's entries (or, with ``poll``,
        a loop head's runs, and polls for signals there); kept like the
        others, so a run whose stencils all exist needs no LLVM."""
        k = _counter_key(poll)
        st = self.stencils.get(k)
        if st is None:
            module = ir.Module(name="counter")
            emit_counter_stencil(module, "counter", StencilPorts(module), poll)
            obj, _ = codegen.compile_module(str(module), self.target)
            code = extract(obj, ["counter"])["counter"]
            if isinstance(code, StencilError):
                raise code
            st = self.stencils[k] = Stencil(code, ["counter"], ["next"], False)
            self._keep([k])
        return st.code


@dataclass
class _Piece:
    """One stencil instance laid out in the stitched code."""
    code: StencilCode
    holes: list[int]                 # their values
    conts: list[int | None]          # guest pc of each continuation (None: the next piece)
    pc: int
    block: int | None = None         # the block it begins


_EXIT = -1


def stitch(region: Region, library: StencilLibrary, symbol: str, unit_base: int) -> bytes | None:
    """The region as one object (ir/stencil.write_object), or None when one
    of its instructions has no stencil (or a hole value does not fit).  ``unit_base``: the translation-time
    base its profiling slots are relative to."""
    blocks = sorted(region.blocks.values(), key=lambda b: (b.start != region.entry, b.start))
    if any(b.bad_at is not None or not b.insns for b in blocks):
        return None
    insns = [i for b in blocks for i in b.insns]
    stencils = library.stencils_for(insns)
    if any(st is None for st in stencils):
        return None
    feats = [_features(i) for i in insns]
    conts = [[i.address + (int(c[1:]) if c[0] == "=" else f[c]) for c in st.conts]
             for i, st, f in zip(insns, stencils, feats)]
    starts = {b.start for b in blocks}
    # loop heads: block starts that an instruction at or after them jumps to
    heads = {t for i, cs in zip(insns, conts) for t in cs if t in starts and t <= i.address}
    slot = lambda pc: tables.counter_slot(pc - unit_base)      # noqa: E731
    pieces = [_Piece(library.counter(False), [slot(region.entry)], [None], region.entry)]
    n = 0
    for b in blocks:
        if b.start in heads:
            pieces.append(_Piece(library.counter(True), [slot(b.start)], [None], b.start, b.start))
        for i in b.insns:
            st, f = stencils[n], feats[n]
            holes = [tables.target_slot(i.address - unit_base) if h == "slot"
                     else int(h[1:]) if h[0] == "=" else f[h] for h in st.holes]
            pieces.append(_Piece(st.code, holes, conts[n], i.address,
                                 b.start if i is b.insns[0] and b.start not in heads else None))
            n += 1
    first = {p.block: n for n, p in enumerate(pieces) if p.block is not None}

    def dest(n: int, t: int | None) -> int:
        """The piece a continuation of piece n goes to (_EXIT: leave)."""
        if t is None:
            return n + 1
        if t in first:
            return first[t]
        if n + 1 < len(pieces) and pieces[n + 1].pc == t:
            return n + 1
        return _EXIT
    # offsets: a continuation to the piece laid out next drops the
    # stencil's final jump; after the code, one ``ret`` (where every
    # continuation that leaves the region goes), then each piece's data
    cut, piece_at, at = [], [], 0
    for n, p in enumerate(pieces):
        tail = p.code.tail_cont
        c = tail is not None and dest(n, p.conts[tail[1]]) == n + 1
        cut.append(c)
        piece_at.append(at)
        at += tail[0] if c else len(p.code.code)
    ret_at = at
    data_at: dict[int, int] = {}
    at += 1
    for n, p in enumerate(pieces):
        if p.code.data:
            at = (at + 15) & ~15
            data_at[n] = at
            at += len(p.code.data)
    text = bytearray(at)
    text[ret_at] = 0xC3
    relocs: list[tuple[int, int, str | None, int]] = []
    for n, p in enumerate(pieces):
        code, base = p.code, piece_at[n]
        keep = code.tail_cont[0] if cut[n] else len(code.code)
        text[base:base + keep] = code.code[:keep]
        for off, typ, (what, idx), addend in code.relocs:
            if off >= keep:
                continue
            if what == HOLE:
                if not _patch(text, base + off, typ, p.holes[idx] + addend):
                    return None
            elif what == CONT:
                d = dest(n, p.conts[idx])
                relocs.append((base + off, typ, None, (ret_at if d == _EXIT else piece_at[d]) + addend))
            elif what == SELF:
                relocs.append((base + off, typ, None, base + addend))
            elif what == DATA:
                relocs.append((base + off, typ, None, data_at[n] + addend))
            else:
                relocs.append((base + off, typ, idx, addend))
        if code.data:
            text[data_at[n]:data_at[n] + len(code.data)] = code.data
            for off, typ, (what, idx), addend in code.data_relocs:   # SELF or SYMBOL (extract)
                relocs.append((data_at[n] + off, typ, None if what == SELF else idx,
                               base + addend if what == SELF else addend))
    return write_object(bytes(text), symbol, relocs)


def _patch(text: bytearray, place: int, typ: int, value: int) -> bool:
    """Write a hole's value; False when it does not fit the relocation
    (the region is then compiled instead)."""
    if typ == R_X86_64_64:
        struct.pack_into("<Q", text, place, value & _M64)
    elif typ == R_X86_64_32S and -2**31 <= value < 2**31:
        struct.pack_into("<i", text, place, value)
    elif typ == R_X86_64_32 and 0 <= value < 2**32:
        struct.pack_into("<I", text, place, value)
    else:
        return False
    return True

"""Tier 1 by copy and patch: a region is stitched together from stencils,
one per guest instruction (ir/stencil.py), instead of being compiled.

A stencil is what the lifter makes of one instruction on its own, entered
with rip at that instruction: it loads the registers it reads from the
state, stores what it writes and rip (the next instruction's), and goes on
through a continuation.  Its code depends on the instruction's bytes, not
on where the instruction lies: every guest address it uses is rip plus a
hole.  Most instructions are also lifted in an abstract form
(``abstract_form``): their explicit general registers (by width and
pattern of equal ones), their memory displacement and the immediate of
the plain ALU instructions are holes too, so ``mov rax, [rbx+8]`` and
``mov rdx, [rsi+0x40]`` share one stencil (a program's libc has some 15,000
distinct instruction byte strings, 6,000 with registers abstracted and
about 2,000 in abstract form).  A region costs a decode, a dictionary lookup
and a copy per instruction once its stencils exist.

The stitched code is slower than a compiled region (every instruction goes
through the state in memory, and computes every flag it writes), which is
what tier 1 is for: code that has run ``HOT_THRESHOLD`` times is compiled
by LLVM at tier 2 (the region's first stencil counts its entries, and one
before each loop head counts and polls for signals, as compiled tier-1
code does).  State in memory at every instruction boundary also makes
every fault precise: rip is exact when any instruction faults.

How a hole's value is found for another instance: a register,
displacement or immediate hole says which it is; for a guest address, the
value the lifted instance had is matched against what it can be for any
instruction (its length, its branch target, its rip-relative address, each
minus its address).  A value that matches exactly one of those is filled in
that way for every instance; one that matches none or several pins the
stencil to the one address it was lifted at.
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
from bttool.ir.state import FIELDS, GPR_NAMES
from bttool.ir.unitabi import FLAGS_NEEDED, MARK_BYTES
from bttool.ir.stencil import (CONT, DATA, DISPLACEMENT_BOUND, HOLE, SELF, STITCHED_HEADER, StencilCode,
                               StencilError, StencilPorts, emit_counter_stencil, extract, is_virtual,
                               virtual_register, write_object)
from bttool.translator import flaglive
from bttool.translator.blocks import Block, Region, direct_target
from bttool.translator.decoder import reg_table
from bttool.translator.encoding import encoding
from bttool.translator.lifter import LiftResult, lift_block, uses_ymm
from bttool.translator.options import LiftOptions

_M64 = (1 << 64) - 1


def _rip_disp(insn) -> int | None:
    """The displacement of a rip-relative memory operand, if any."""
    return next((op.mem.disp for op in insn.operands
                 if op.type == X.X86_OP_MEM and op.mem.base == X.X86_REG_RIP), None)


def _features(insn) -> dict[str, int]:
    """What an instance's holes can be, each relative to its address."""
    f = {"here": 0, "next": insn.size}
    if isinstance(insn, CsInsn):
        target, disp = direct_target(insn), _rip_disp(insn)
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
        if direct_target(insn) is not None and insn.imm_size:
            raw[insn.imm_offset:insn.imm_offset + insn.imm_size] = bytes(insn.imm_size)
        if _rip_disp(insn) is not None and insn.disp_size:
            raw[insn.disp_offset:insn.disp_offset + insn.disp_size] = bytes(insn.disp_size)
    return bytes(raw)


# general registers a stencil may take as a hole: all but rsp, which push,
# call and the rest use by name (so it would rarely be abstract anyway)
_ABSTRACT = frozenset(GPR_NAMES) - {"rsp"}
_REGS = reg_table()
_PLUS_R = (range(0x50, 0x60), range(0x90, 0x98), range(0xB0, 0xC0))     # one-byte opcodes
_VEX_LIKE = (0xC4, 0xC5, 0x62, 0x8F)
_X87 = range(0xD8, 0xE0)        # their semantics read ModRM.reg (semantics/x87.py)
# instructions whose semantics read an immediate operand only as a value
# (Insn.read), so it can be a hole
_IMMEDIATE_VALUE = frozenset((X.X86_INS_MOV, X.X86_INS_MOVABS, X.X86_INS_ADD, X.X86_INS_SUB,
                              X.X86_INS_AND, X.X86_INS_OR, X.X86_INS_XOR, X.X86_INS_CMP,
                              X.X86_INS_TEST, X.X86_INS_ADC, X.X86_INS_SBB))


@dataclass(frozen=True)
class AbstractForm:
    """An instruction with its explicit general registers and its memory
    displacement abstracted.  ``key``: the stencil key (the bytes with
    every register field and the displacement left out, the instruction
    id, and each operand's type, size and registers, each register as a
    placeholder number with its width and byte position, or as itself);
    ``fields``: the state field of each placeholder in this instance;
    ``disp``, ``imm``: the instance's displacement and immediate when
    they are holes."""
    key: tuple
    fields: tuple[str, ...]
    disp: int | None
    imm: int | None = None

    def ports(self, module: ir.Module) -> StencilPorts:
        """The ports to lift this instance's stencil with: its registers
        renamed to virtual ones, its displacement and immediate as holes."""
        return StencilPorts(module, {f: virtual_register(k) for k, f in enumerate(self.fields)},
                            self.disp, self.imm)

    def features(self) -> dict[str, int]:
        """The values of this instance's holes: each virtual register's
        state offset, the displacement and the immediate."""
        f = {virtual_register(k): FIELDS[name].offset for k, name in enumerate(self.fields)}
        if self.disp is not None:
            f["disp"] = self.disp
        if self.imm is not None:
            f["imm"] = self.imm
        return f


def abstract_form(insn) -> AbstractForm | None:
    """The instruction's abstract form, or None when it has nothing to
    abstract or an encoding whose fields this does not know to leave out
    (VEX and the like).  Two instructions with one key differ only in
    which register each placeholder is, in their displacement and in their
    immediate, so one stencil with those as holes serves both."""
    if not isinstance(insn, CsInsn):
        return None
    raw = bytearray(stencil_key(insn))
    enc = encoding(bytes(raw))
    if enc is None or (not enc.escape and enc.opcode in _VEX_LIKE) \
            or sum(op.type == X.X86_OP_MEM for op in insn.operands) > 1:
        return None                 # (string instructions: two memory operands, no displacement)
    shape, fields, disp, imm = _operands(insn, True)
    if fields:
        masked = _without_registers(raw, insn, enc)
        if masked is None:                   # a register implied by the opcode
            shape, fields, disp, imm = _operands(insn, False)
        else:
            raw = masked
    if not fields and disp is None and imm is None:
        return None
    if disp is not None:
        raw[insn.disp_offset:insn.disp_offset + insn.disp_size] = bytes(insn.disp_size)
    if imm is not None:
        raw[insn.imm_offset:insn.imm_offset + insn.imm_size] = bytes(insn.imm_size)
    return AbstractForm(("r", bytes(raw), insn.id, tuple(shape)), tuple(fields), disp, imm)


def _operands(insn, registers: bool) -> tuple[list, list[str], int | None, int | None]:
    """Each operand's shape (type, size, and registers: a placeholder when
    ``registers`` and it may be one, else itself), the placeholders' state
    fields, and the displacement and immediate that can be holes."""
    fields: list[str] = []

    def ref(reg_id: int):
        info = _REGS.get(reg_id)
        if not registers or info is None or info.field not in _ABSTRACT:
            return reg_id
        if info.field not in fields:
            fields.append(info.field)
        return fields.index(info.field), info.bits, info.shift
    shape, disp, imm = [], None, None
    for op in insn.operands:
        if op.type == X.X86_OP_REG:
            shape.append((op.size, ref(op.reg)))
        elif op.type == X.X86_OP_MEM:
            m = op.mem
            shape.append((op.size, ref(m.base), ref(m.index), m.scale, m.segment))
            if (m.base not in (X.X86_REG_INVALID, X.X86_REG_RIP, X.X86_REG_EIP) or m.index != X.X86_REG_INVALID) \
                    and insn.disp_size and abs(m.disp) < DISPLACEMENT_BOUND:
                disp = m.disp
        else:
            shape.append((op.size, op.type))
            if op.type == X.X86_OP_IMM and insn.id in _IMMEDIATE_VALUE and insn.imm_size:
                imm = op.imm
    return shape, fields, disp, imm


def _without_registers(raw: bytearray, insn, enc) -> bytearray | None:
    """``raw`` with its register fields zeroed (REX.RXB, ModRM.reg and .rm,
    SIB.index and .base, or the register in a one-byte opcode); None when
    the instruction has none of those, or capstone's reading of where the
    ModRM byte is disagrees with ours."""
    raw = bytearray(raw)
    if enc.rex:
        at = enc.opcode_at - 1 - enc.escape
        if raw[at] != enc.rex:
            return None
        raw[at] &= 0xF8
    if insn.modrm_offset:
        at = enc.opcode_at + 1 + (enc.escape and enc.opcode in (0x38, 0x3A))
        if insn.modrm_offset != at or raw[at] != insn.modrm:
            return None
        modrm = raw[at]
        x87 = not enc.escape and enc.opcode in _X87
        raw[at] &= 0xF8 if x87 else 0xC0      # ModRM.rm (and .reg, not x87's)
        if modrm >> 6 != 3 and modrm & 7 == 4:
            raw[at + 1] &= 0xC0               # SIB.index and .base
        return raw
    if not enc.escape and any(enc.opcode in r for r in _PLUS_R) or enc.escape and 0xC8 <= enc.opcode <= 0xCF:
        raw[enc.opcode_at] &= 0xF8
        return raw
    return None


@dataclass
class Stencil:
    code: StencilCode
    holes: list[str]        # per hole: a feature name, "slot", "=value" (pinned) or "counter"
    conts: list[str]        # per continuation: a feature name or "=delta" (pinned)
    pinned: bool
    # the general registers it uses by name (StencilPorts.fixed): no
    # instance may have one of them as an abstracted register
    fixed: tuple[str, ...] = ()


def describe_key(k: bytes | tuple) -> str:
    """A stencil key for a reader: which kind it is and its bytes."""
    if isinstance(k, bytes):
        return f"bytes {k.hex()}"
    if k[0] == "r":
        return f"abstract {k[1].hex()}"
    if isinstance(k[0], int) and isinstance(k[1], bytes):
        return f"pinned {k[1].hex()} at {k[0]:#x}"
    return "/".join(map(str, k))


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
    return (c.code, c.relocs, c.data, c.data_relocs, c.tail_cont, c.data_align, st.holes, st.conts,
            st.pinned, st.fixed)


def _from_record(rec) -> Stencil | None:
    if rec is None:
        return None
    code, relocs, data, data_relocs, tail, data_align, holes, conts, pinned, fixed = rec
    return Stencil(StencilCode(code, [(o, t, tuple(w), a) for o, t, w, a in relocs], data,
                               [(o, t, tuple(w), a) for o, t, w, a in data_relocs],
                               tuple(tail) if tail is not None else None, data_align),
                   list(holes), list(conts), pinned, tuple(fixed))


def _counter_key(poll: bool) -> tuple[str, bool]:
    """The key of a counter stencil (no instruction's key is a str pair)."""
    return "counter", poll


_MISSING = object()


class StencilLibrary:
    """The stencils of one run, for one kind of code (lift options and
    target), by key.  A key maps to a Stencil, or to None when the
    instruction cannot be a stencil (its region is compiled instead).

    An instruction is looked up under up to three keys, each tried when
    the one before gives nothing it can use: its abstract form's (shared
    by every choice of its registers, displacement and immediate), its
    bytes' (stencil_key),
    and its address and bytes' (a pinned stencil, whose holes hold only
    there)."""

    def __init__(self, options: LiftOptions, target: codegen.Target,
                 host_features: frozenset[str] = frozenset(), store=None) -> None:
        """``store``: where stencils are kept between runs
        (runtime/stencilstore.StencilFile: ``load`` and ``append`` of
        (key, record) pairs), or None."""
        self.options = options
        self.target = target
        self.host_features = host_features
        self.stencils: dict[bytes | tuple, Stencil | None] = {}
        # what an instruction's bytes say about its stencil (``_describe``)
        self._described: dict[tuple[type, bytes], tuple] = {}
        self.store = store
        if store is not None:
            for k, rec in store.load():
                self.stencils[k if isinstance(k, bytes) else tuple(k)] = _from_record(rec)

    def _describe(self, insn) -> tuple[AbstractForm | None, bytes, dict[str, int]]:
        """The instruction's abstract form, its key by bytes and the values
        of its holes' features: all of them relative to its address, so
        found once for each distinct instruction (a region's instructions
        repeat a few thousand byte strings) and then looked up."""
        k = (type(insn), bytes(insn.bytes))
        found = self._described.get(k)
        if found is None:
            form = abstract_form(insn)
            found = self._described[k] = (form, stencil_key(insn),
                                           {**_features(insn), **(form.features() if form else {})})
        return found

    def _key(self, insn, form: AbstractForm | None, raw: bytes) -> tuple[bytes | tuple, AbstractForm | None]:
        """The first key of the instruction whose stencil is usable or not
        made yet, and the abstract form the stencil is (to be) lifted with
        (None: as the instruction is); ``raw``: its key by bytes."""
        if form is not None:
            st = self.stencils.get(form.key, _MISSING)
            if st is _MISSING:
                return form.key, form
            if st is not None and not st.pinned and not set(st.fixed) & set(form.fields):
                return form.key, form
        st = self.stencils.get(raw, _MISSING)
        if st is not _MISSING and st is not None and st.pinned:
            return _pinned_key(insn), None
        return raw, None

    def stencils_for(self, insns: Sequence) -> list[tuple[Stencil, dict[str, int], bytes | tuple] | None]:
        """The stencil of each instruction with the values of its holes'
        features there and its key, compiling (in one module per round)
        those not made yet; None for an instruction that has none."""
        described = [self._describe(i) for i in insns]
        for _round in range(4):          # a key that turns out unusable leads to the next
            keys = [self._key(i, form, raw) for i, (form, raw, _f) in zip(insns, described)]
            todo: dict = {}
            for (k, form), insn in zip(keys, insns):
                if k not in self.stencils:
                    todo.setdefault(k, (insn, form))
            if not todo:
                break
            self._compile(todo)
        out = []
        for (k, form), (_form, _raw, feats) in zip(keys, described):
            st = self.stencils.get(k)
            out.append(None if st is None else (st, feats, k))    # (a stencil reads the holes it has)
        return out

    def _compile(self, todo: dict) -> None:
        module = ir.Module(name="stencils")
        lifted = []
        for n, (k, (insn, form)) in enumerate(todo.items()):
            ports = form.ports(module) if form is not None else StencilPorts(module)
            name = f"st_{n}"
            try:
                result = self._lift(module, name, insn, ports)
            except Exception:       # noqa: BLE001 -- any lifting failure: compile the region
                module.globals.pop(name, None)      # what it left half made
                self.stencils[k] = None
                continue
            lifted.append((k, insn, form, name, ports, result))
        made = list(todo)
        if lifted:
            obj, _ = codegen.compile_module(str(module), self.target)
            codes = extract(obj, [name for _k, _i, _f, name, _p, _r in lifted])
        for k, insn, form, name, ports, result in lifted:
            code = codes[name]
            if isinstance(code, StencilError) or result.untranslatable:
                self.stencils[k] = None
                continue
            feats = _features(insn)
            # a pc hole is whichever pc feature has its value; the others
            # say which feature they are
            holes = [_resolve(v, feats) if kind == "pc" else "slot" if kind == "target_slot"
                     else kind for kind, v in ports.holes]
            conts = [_resolve(pc - insn.address, feats) for pc in ports.conts]
            fixed = tuple(sorted(ports.fixed))
            pinned = None in holes or None in conts
            if pinned:
                # marks this key: the instance's own key holds the stencil
                self.stencils[k] = Stencil(code, [], [], True)
                if form is not None:
                    continue                # lifted again as it is
                holes = ["slot" if kind == "target_slot" else f"={v}" for kind, v in ports.holes]
                conts = [f"={pc - insn.address}" for pc in ports.conts]
                k = _pinned_key(insn)
                made.append(k)
            self.stencils[k] = Stencil(code, holes, conts, pinned, fixed)
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
    what: str = ""                   # for the listing: the instruction and its stencil's key
    names: tuple[str, ...] = ()      # for the listing: each hole's kind


_EXIT = -1


def stitch(region: Region, library: StencilLibrary, symbol: str,
           unit_base: int) -> tuple[bytes, str] | None:
    """The region as one object (ir/stencil.write_object) and its listing
    (``_listing``), or None when one of its instructions has no stencil
    (or a hole value does not fit).  ``unit_base``: the translation-time
    base its profiling slots are relative to."""
    blocks = sorted(region.blocks.values(), key=lambda b: (b.start != region.entry, b.start))
    if any(b.bad_at is not None or not b.insns for b in blocks):
        return None
    insns = [i for b in blocks for i in b.insns]
    found = library.stencils_for(insns)
    if any(f is None for f in found):
        return None
    stencils, feats = [st for st, _f, _k in found], [f for _st, f, _k in found]
    conts = [[i.address + (int(c[1:]) if c[0] == "=" else f[c]) for c in st.conts]
             for i, st, f in zip(insns, stencils, feats)]
    starts = {b.start for b in blocks}
    # loop heads: block starts that an instruction at or after them jumps to
    heads = {t for i, cs in zip(insns, conts) for t in cs if t in starts and t <= i.address}
    slot = lambda pc: tables.counter_slot(pc - unit_base)      # noqa: E731
    pieces = [_Piece(library.counter(False), [slot(region.entry)], [None], region.entry,
                     what="(counts the region's entries)", names=("counter",))]
    n = 0
    for b in blocks:
        if b.start in heads:
            pieces.append(_Piece(library.counter(True), [slot(b.start)], [None], b.start, b.start,
                                 "(counts the loop head's runs, polls for signals)", ("counter",)))
        for i in b.insns:
            st, f = stencils[n], feats[n]
            holes = [tables.target_slot(i.address - unit_base) if h == "slot"
                     else int(h[1:]) if h[0] == "=" else f[h] for h in st.holes]
            pieces.append(_Piece(st.code, holes, conts[n], i.address,
                                 b.start if i is b.insns[0] and b.start not in heads else None,
                                 f"{i.mnemonic} {i.op_str}".strip() + f"  [{describe_key(found[n][2])}]",
                                 tuple(st.holes)))
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
    cut, piece_at, at = [], [], MARK_BYTES      # (the flags mark before the entry)
    for n, p in enumerate(pieces):
        tail = p.code.tail_cont
        c = tail is not None and dest(n, p.conts[tail[1]]) == n + 1
        cut.append(c)
        piece_at.append(at)
        at += tail[0] if c else len(p.code.code)
    ret_at = at
    data_at: dict[int, int] = {}
    at += 1
    align = 16
    for n, p in enumerate(pieces):
        if p.code.data:
            a = max(16, p.code.data_align)
            align = max(align, a)
            at = (at + a - 1) & -a
            data_at[n] = at
            at += len(p.code.data)
    text = bytearray(at)
    text[MARK_BYTES - 1] = FLAGS_NEEDED     # tier 1 counts at entry: it may leave at once
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
    return (write_object(bytes(text), symbol, relocs, align, MARK_BYTES),
            _listing(pieces, [at - MARK_BYTES for at in piece_at]))


_GPR_AT = {FIELDS[name].offset: name for name in GPR_NAMES}


def _listing(pieces: list[_Piece], piece_at: list[int]) -> str:
    """What a stitched region is made of, one line per stencil copy: its
    offset in the host code, the guest instruction, its stencil's key and
    the value written into each hole (a register hole as the register).
    The cache keeps it where a compiled region's IR is."""
    lines = [STITCHED_HEADER, ";   host  guest pc    instruction  [stencil key]  holes"]
    for p, at in zip(pieces, piece_at):
        holes = " ".join(f"{k}={_GPR_AT.get(v, hex(v))}" if is_virtual(k) else
                         f"{'pinned' if k[0] == '=' else k}={v:#x}" for k, v in zip(p.names, p.holes))
        lines.append(f"  {at:#06x}  {p.pc:#x}  {p.what}" + (f"  {holes}" if holes else ""))
    return "\n".join(lines) + "\n"


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

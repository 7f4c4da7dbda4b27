"""Static code discovery for ahead-of-time translation.

Starting points: the entry point, every function start named by the symbol
table, and every FDE of ``.eh_frame`` (which stripped binaries keep).  From
there a worklist follows what the runtime would: region exits, call targets
and return sites, the instruction after an exit to the runtime, and the
targets of jump tables whose pattern is clear:

    cmp idx, N ; ja default ; ... ; jmp [idx*8 + TABLE]                (ET_EXEC)
    cmp idx, N ; ja default ; lea base, [rip+T] ; movsxd r, [base+idx*4] ;
        add r, base ; jmp r                                            (PIC)
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from capstone import x86_const as X

from bttool.translator import jumptables
from bttool.translator.blocks import discover_region
from bttool.translator.decoder import Decoder
from bttool.translator.guestcode import CodeReader, UnmappedCode


@dataclass
class Discovery:
    function_starts: set[int] = field(default_factory=set)
    entries: list[int] = field(default_factory=list)      # region entries, in discovery order
    insn_count: int = 0
    jump_tables: int = 0
    # jump instruction -> its table's targets, wherever the table was resolved
    # (a region starting at the function entry sees the lea of the table's
    # base; one starting at the loop head that holds the same jump does not)
    site_targets: dict[int, list[int]] = field(default_factory=dict)
    # entries (not cases themselves) whose region jumps through a resolved
    # jump table (a switch's dispatch: ahead-of-time translation keeps the
    # cases in such a region instead of leaving through the lookup table
    # at every case)
    dispatchers: set[int] = field(default_factory=set)


def eh_frame_functions(data: bytes, section_addr: int) -> list[int]:
    """Initial locations of every FDE in an .eh_frame section."""
    starts = []
    cie_enc: dict[int, int] = {}
    off = 0
    while off + 4 <= len(data):
        length = struct.unpack_from("<I", data, off)[0]
        if length == 0:
            break
        hdr = 4
        if length == 0xFFFFFFFF:
            length = struct.unpack_from("<Q", data, off + 4)[0]
            hdr = 12
        rec = off + hdr
        end = rec + length
        if end > len(data):
            break
        cie_id = struct.unpack_from("<I", data, rec)[0]
        if cie_id == 0:
            cie_enc[off] = _cie_fde_encoding(data, rec + 4, end)
        else:
            cie_off = rec - cie_id
            enc = cie_enc.get(cie_off, 0x1B)
            pos = rec + 4
            addr = _read_encoded(data, pos, enc, section_addr)
            if addr:
                starts.append(addr)
        off = end
    return starts


def _uleb(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, pos


def _cie_fde_encoding(data: bytes, pos: int, end: int) -> int:
    try:
        pos += 1                                  # version
        aug_end = data.index(b"\0", pos)
        aug = data[pos:aug_end].decode()
        pos = aug_end + 1
        _, pos = _uleb(data, pos)                 # code alignment
        _, pos = _uleb(data, pos)                 # data alignment (sleb; skipping is the same)
        pos += 1                                  # return address register
        if not aug.startswith("z"):
            return 0x1B
        _, pos = _uleb(data, pos)                 # augmentation length
        for ch in aug[1:]:
            if ch == "R":
                return data[pos]
            if ch == "P":
                penc = data[pos]
                pos += 1
                pos += {0x00: 8, 0x03: 4, 0x0B: 4, 0x04: 8, 0x0C: 8, 0x1B: 4, 0x9B: 4}.get(penc, 4)
            elif ch == "L":
                pos += 1
    except (IndexError, ValueError):
        pass
    return 0x1B


def _read_encoded(data: bytes, pos: int, enc: int, section_addr: int) -> int:
    fmt = enc & 0x0F
    size, signed = {0x00: (8, False), 0x03: (4, False), 0x04: (8, False), 0x0B: (4, True),
                    0x0C: (8, True), 0x02: (2, False), 0x0A: (2, True)}.get(fmt, (4, True))
    raw = int.from_bytes(data[pos:pos + size], "little", signed=signed)
    if enc & 0x70 == 0x10:                        # pcrel
        raw += section_addr + pos
    return raw & 0xFFFFFFFFFFFFFFFF


def _code_references(insns, executable) -> list[int]:
    """Code addresses an instruction materialises (`lea reg, [rip+f]`,
    `mov reg, imm`): function pointers handed to qsort, atexit, tables."""
    out = []
    for insn in insns:
        if insn.id == X.X86_INS_LEA:
            m = insn.operands[1].mem
            if m.base == X.X86_REG_RIP and m.index == 0:
                t = insn.address + insn.size + m.disp
                if executable(t):
                    out.append(t)
        elif insn.id in (X.X86_INS_MOV, X.X86_INS_PUSH) and insn.operands \
                and insn.operands[-1].type == X.X86_OP_IMM:
            t = insn.operands[-1].imm & 0xFFFFFFFFFFFFFFFF
            if t > 0x10000 and executable(t):
                out.append(t)
    return out


def discover(read: CodeReader, starts: list[int], executable, mode: int = 64,
             limit: int = 2_000_000, read_data: CodeReader | None = None) -> Discovery:
    """The region entries the runtime would ask for, starting at ``starts``:
    each region is formed as at run time (discover_region), and its exits,
    call targets, return sites, resume points and jump-table targets become
    further entries."""
    decoder = Decoder(mode)
    read_data = read_data or read      # jump tables usually live in .rodata
    disc = Discovery(function_starts=set(starts))
    entry_set: set[int] = set()
    todo = [s for s in dict.fromkeys(starts) if executable(s)]
    todo.reverse()
    entry_set.update(todo)
    sites: dict[int, list[int]] = {}        # entry -> its region's indirect jumps
    while todo and disc.insn_count < limit:
        pc = todo.pop()
        try:
            region = discover_region(decoder, read, pc, known=lambda p: p in entry_set and p != pc,
                                     read_data=read_data)
        except UnmappedCode:
            continue
        disc.entries.append(pc)
        disc.insn_count += region.insn_count
        nxt: list[int] = []
        bounds: dict[int, int] = {}
        for block in region.blocks.values():
            nxt.extend(s for s in block.successors if s not in region.blocks)
            nxt.extend(block.entries)
            nxt.extend(_code_references(block.insns, executable))
            bound = jumptables.bound_after(block.insns)
            if bound is not None:
                for succ in block.successors:
                    bounds[succ] = bound
        for block in region.blocks.values():
            targets = block.table_targets or jumptables.targets(
                block.insns, read_data, executable, bounds.get(block.start),
                [i for b in region.blocks.values() for i in b.insns])
            last = block.insns[-1] if block.insns else None
            if last is not None and last.id == X.X86_INS_JMP and last.operands \
                    and last.operands[0].type != X.X86_OP_IMM:
                sites.setdefault(pc, []).append(last.address)
            if targets:
                disc.jump_tables += 1
                disc.site_targets[last.address] = targets
                nxt.extend(targets)
        for t in nxt:
            if t not in entry_set and executable(t):
                entry_set.add(t)
                todo.append(t)
    # (not for the cases themselves: each reaches the dispatch again through
    # the loop, and a copy of the whole loop per case is only cost)
    cases = {t for targets in disc.site_targets.values() for t in targets}
    disc.dispatchers = {pc for pc, jumps in sites.items()
                        if pc not in cases and any(j in disc.site_targets for j in jumps)}
    return disc

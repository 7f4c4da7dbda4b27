"""x86 decoding with capstone, parameterised by CPU mode (64 or 32 bit)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import capstone
from capstone import x86_const as X

from bttool.translator import conditions, twins
from bttool.translator.encoding import MAX_INSN_LEN, Encoding, encoding, modrm_length  # noqa: F401

@dataclass(frozen=True)
class RegInfo:
    """Where a capstone register lives in the CPU state."""
    field: str      # state field name (rax, xmm3, rip, fs_base ...)
    bits: int       # width of the architectural register
    shift: int = 0  # 8 for ah/ch/dh/bh


_GPR64 = {"rax": "rax", "rbx": "rbx", "rcx": "rcx", "rdx": "rdx",
          "rsi": "rsi", "rdi": "rdi", "rbp": "rbp", "rsp": "rsp"}


def _reg_info_for(name: str) -> RegInfo | None:
    legacy = {"a": "rax", "b": "rbx", "c": "rcx", "d": "rdx"}
    if name in _GPR64:
        return RegInfo(name, 64)
    if len(name) == 3 and name[0] == "e" and name[1:] in ("ax", "bx", "cx", "dx", "si", "di", "bp", "sp"):
        return RegInfo("r" + name[1:], 32)
    if name in ("ax", "bx", "cx", "dx", "si", "di", "bp", "sp"):
        return RegInfo("r" + name, 16)
    if len(name) == 2 and name[1] == "l" and name[0] in legacy:
        return RegInfo(legacy[name[0]], 8)
    if len(name) == 2 and name[1] == "h" and name[0] in legacy:
        return RegInfo(legacy[name[0]], 8, 8)
    if name in ("sil", "dil", "bpl", "spl"):
        return RegInfo("r" + name[:2], 8)
    if name.startswith("r") and name[1:].rstrip("bwd").isdigit():
        num = name[1:].rstrip("bwd")
        suffix = name[1 + len(num):]
        bits = {"": 64, "d": 32, "w": 16, "b": 8}[suffix]
        return RegInfo("r" + num, bits)
    if name.startswith("xmm") and name[3:].isdigit() and int(name[3:]) < 16:
        return RegInfo(name, 128)
    if name == "rip":
        return RegInfo("rip", 64)
    if name == "eip":
        return RegInfo("rip", 32)
    return None


@lru_cache(maxsize=None)
def _cs(mode: int) -> capstone.Cs:
    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64 if mode == 64 else capstone.CS_MODE_32)
    cs.detail = True
    return cs


@lru_cache(maxsize=None)
def reg_table() -> dict[int, RegInfo]:
    cs = _cs(64)
    table = {}
    for rid in range(1, X.X86_REG_ENDING):
        name = cs.reg_name(rid)
        info = _reg_info_for(name) if name else None
        if info is not None:
            table[rid] = info
    return table


class HintNop:
    """A reserved-NOP (hint space) instruction as the translator sees it:
    capstone's instruction shape with id NOP and no operands, so it reads
    and writes nothing (hint NOPs never access memory, a bad address in
    their ModRM does not fault).  ``text`` is capstone's reading of the
    bytes, when it has one (rdsspq, endbr64, bndmov, cldemote, ...)."""

    id = X.X86_INS_NOP
    mnemonic = "nop"
    operands: tuple = ()
    rex = 0
    eflags = 0
    groups: tuple = ()

    def __init__(self, code: bytes, address: int, size: int, mode: int, text: str):
        self.address = address
        self.size = size
        self.bytes = bytearray(code[:size])
        self.op_str = f"(hint space: {text})" if text else "(hint space)"
        self.prefix = [0, 0, 0, 0]
        self.addr_size = mode // 8
        self.text = text

    def reg_name(self, reg_id: int) -> str:
        return _cs(64).reg_name(reg_id)

    def __repr__(self) -> str:
        return f"<HintNop {self.address:#x} {self.bytes.hex()} {self.text}>"


def hint_nop_size(code: bytes, mode: int = 64, enc: Encoding | None = None) -> int | None:
    """Length of the instruction at ``code`` if it is one that executes as
    a NOP on the modelled CPU without ever touching memory, else None.

    The x86 hint space ``0F 18``-``0F 1F`` with any ModRM (register forms
    too) and any prefixes but LOCK: multi-byte NOP, prefetch hints,
    endbr32/64, rdsspd/q (CET shadow stacks are off), the MPX bnd*
    instructions (no MPX), cldemote, reserved NOPs.  ``0F 0D`` (prefetch,
    prefetchw, prefetchwt1 and its /2-/7 aliases) only with a memory
    operand: its register form is #UD on the host (AMD Zen 4), as is LOCK
    with any of them (tests/test_isa_corners.py checks both natively).
    ``enc``: ``encoding(code, mode)``, when the caller has it."""
    enc = enc or encoding(code, mode)
    if enc is None or not enc.escape or 0xF0 in enc.prefixes:
        return None
    op = enc.opcode
    if not (0x18 <= op <= 0x1F or op == 0x0D):
        return None
    addr_override = 0x67 in enc.prefixes
    n = modrm_length(code, enc.opcode_at + 1, addr32=mode == 32 or addr_override,
                     addr16=mode == 32 and addr_override)
    if n is None:
        return None
    if op == 0x0D and code[enc.opcode_at + 1] >> 6 == 3:
        return None
    size = enc.opcode_at + 1 + n
    return size if size <= MAX_INSN_LEN else None


class _Imm:
    type = X.X86_OP_IMM
    size = 2

    def __init__(self, imm: int):
        self.imm = imm


_JCC_IDS = [getattr(X, "X86_INS_J" + cc.upper()) for cc in conditions.CODES]


class Near16:
    """A relative near branch with a 66 prefix (and no REX.W) in 64-bit
    mode, as the host (AMD Zen 4) executes it: 16-bit operand size, so
    ``E8``/``E9``/``0F 8x`` take a rel16 (capstone decodes Intel's rel32,
    for which 66 is ignored), the target is truncated to 16 bits (IP), and
    call pushes a 2-byte return address (control.py).  ``operands[0].imm``
    is the truncated target."""

    near16 = True
    addr_size = 8
    rex = 0
    eflags = 0
    groups: tuple = ()

    def __init__(self, code: bytes, address: int, size: int, insn_id: int, mnemonic: str,
                 target: int):
        self.address = address
        self.size = size
        self.bytes = bytearray(code[:size])
        self.id = insn_id
        self.mnemonic = mnemonic
        self.op_str = f"{target:#x}"
        self.operands = (_Imm(target),)
        self.prefix = [0, 0, 0x66, 0]

    def reg_name(self, reg_id: int) -> str:
        return _cs(64).reg_name(reg_id)


def near16_branch(code: bytes, address: int, enc: Encoding | None = None) -> Near16 | None:
    """The 16-bit relative branch at ``code`` (64-bit mode), or None.
    ``enc``: ``encoding(code)``, when the caller has it."""
    enc = enc or encoding(code)
    if enc is None or 0x66 not in enc.prefixes or enc.rex & 8:
        return None
    op, at = enc.opcode, enc.opcode_at + 1
    if enc.escape:
        if not 0x80 <= op <= 0x8F:
            return None
        insn_id, width = _JCC_IDS[op - 0x80], 2
    elif op in (0xE8, 0xE9):
        insn_id, width = (X.X86_INS_CALL if op == 0xE8 else X.X86_INS_JMP), 2
    elif op == 0xEB:
        insn_id, width = X.X86_INS_JMP, 1
    elif 0x70 <= op <= 0x7F:
        insn_id, width = _JCC_IDS[op - 0x70], 1
    elif 0xE0 <= op <= 0xE3:
        addr32 = 0x67 in enc.prefixes
        insn_id = (X.X86_INS_LOOPNE, X.X86_INS_LOOPE, X.X86_INS_LOOP,
                   X.X86_INS_JECXZ if addr32 else X.X86_INS_JRCXZ)[op - 0xE0]
        width = 1
    else:
        return None
    size = at + width
    if size > len(code) or size > MAX_INSN_LEN:
        return None
    rel = int.from_bytes(code[at:size], "little", signed=True)
    target = (address + size + rel) & 0xFFFF
    name = _cs(64).insn_name(insn_id)
    return Near16(code, address, size, insn_id, name, target)


class Decoder:
    """Decodes guest instructions for one CPU mode (64 or 32)."""

    def __init__(self, mode: int = 64):
        if mode not in (32, 64):
            raise ValueError(f"unsupported CPU mode {mode}")
        self.mode = mode
        self.cs = _cs(mode)

    def decode_one(self, code: bytes, pc: int):
        """The instruction at ``pc`` (``code`` starts there), or None.
        Hint-space NOPs (``hint_nop_size``) are recognised from their bytes
        first: capstone decodes them to many mnemonics or not at all."""
        size = None
        enc = encoding(code, self.mode)     # each check reads it; none holds without it
        if enc is not None:
            size = hint_nop_size(code, self.mode, enc)
            if size is None and self.mode == 64:
                near = near16_branch(code, pc, enc)
                if near is not None:
                    return near
            if size is None:
                twin = twins.twin(code, self.mode, enc)
                if twin is not None:     # decoded as the twin (its bytes, mnemonic)
                    code = twin
        first = None
        for insn in self.cs.disasm(code, pc, 1):
            first = insn
            break
        if size is not None:
            text = f"{first.mnemonic} {first.op_str}".strip() \
                if first is not None and first.size == size else ""
            return HintNop(code, pc, size, self.mode, text)
        return first

    def decode_all(self, code: bytes, pc: int):
        return self.cs.disasm(code, pc)


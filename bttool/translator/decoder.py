"""x86 decoding with capstone, parameterised by CPU mode (64 or 32 bit)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import capstone
from capstone import x86_const as X

MAX_INSN_LEN = 15


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


class Decoder:
    """Decodes guest instructions for one CPU mode (64 or 32)."""

    def __init__(self, mode: int = 64):
        if mode not in (32, 64):
            raise ValueError(f"unsupported CPU mode {mode}")
        self.mode = mode
        self.cs = _cs(mode)

    def decode_one(self, code: bytes, pc: int):
        """The instruction at ``pc`` (``code`` starts there), or None."""
        for insn in self.cs.disasm(code, pc, 1):
            return insn
        return None

    def decode_all(self, code: bytes, pc: int):
        return self.cs.disasm(code, pc)


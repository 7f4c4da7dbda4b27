"""What the bytes of an x86 instruction say before any decoder has its say:
legacy prefixes, REX, the opcode and the length of a ModRM operand.  Used
where capstone's reading is not the CPU's (translator/decoder.py,
translator/twins.py) and by semantics that depend on the raw prefixes."""
from __future__ import annotations

from dataclasses import dataclass

MAX_INSN_LEN = 15

_LEGACY_PREFIXES = frozenset((0x66, 0x67, 0xF2, 0xF3, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65, 0xF0))


@dataclass(frozen=True)
class Encoding:
    """What the bytes of one instruction say before capstone has its say:
    legacy prefixes, REX (64-bit mode), the opcode after 0F (or None for a
    one-byte opcode) and the length of everything up to the opcode."""
    prefixes: bytes
    rex: int
    escape: bool          # a 0F two-byte opcode
    opcode: int
    opcode_at: int        # offset of the opcode byte (after 0F when ``escape``)


def encoding(code: bytes, mode: int = 64) -> Encoding | None:
    """Prefixes and opcode of the instruction at the start of ``code``
    (None when they run past ``code`` or 15 bytes).  A REX byte counts only
    right before the opcode, as on the CPU."""
    i, rex, prefixes = 0, 0, bytearray()
    while i < min(len(code), MAX_INSN_LEN):
        c = code[i]
        if c in _LEGACY_PREFIXES:
            prefixes.append(c)
            rex = 0
        elif mode == 64 and 0x40 <= c <= 0x4F:
            rex = c
        else:
            break
        i += 1
    if i >= len(code):
        return None
    if code[i] == 0x0F:
        if i + 1 >= len(code):
            return None
        return Encoding(bytes(prefixes), rex, True, code[i + 1], i + 1)
    return Encoding(bytes(prefixes), rex, False, code[i], i)


def modrm_length(code: bytes, at: int, addr32: bool, addr16: bool = False) -> int | None:
    """Bytes taken by the ModRM byte at ``code[at]`` with its SIB and
    displacement (None if ``code`` ends first)."""
    if at >= len(code):
        return None
    modrm = code[at]
    mod, rm = modrm >> 6, modrm & 7
    if mod == 3:
        return 1
    if addr16:                       # 16-bit addressing (32-bit mode with 67)
        n = 1 + {0: 2 if rm == 6 else 0, 1: 1, 2: 2}[mod]
    else:
        n = 1
        if rm == 4:                  # SIB
            if at + 1 >= len(code):
                return None
            n += 1
            if mod == 0 and code[at + 1] & 7 == 5:
                n += 4
        elif mod == 0 and rm == 5:   # rip-relative (64-bit) / disp32 (32-bit)
            n += 4
        n += {0: 0, 1: 1, 2: 4}[mod]
    return n if at + n <= len(code) else None
